#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make run VMS=1`: an initramfs addition with what real QEMU guests inside
# the test guest need: qemu-system-x86_64 and the libraries it loads, its
# TCG accelerator module, the firmware it opens, and, for the nested
# guests, a kernel (the one the test guest boots) and a tiny initramfs.
# The kernel unpacks concatenated archives, so the result is appended to
# the guest initramfs.  Usage: vms.sh BZIMAGE  -> prints the archive path.
. "$(dirname "$0")/lib.sh"
kimg=$1
[ -f "$kimg" ] || die "vms.sh: no kernel image '$kimg'"
qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 is missing"
moddir=/usr/lib/x86_64-linux-gnu/qemu
d=$OUT/guest/vms
out=$OUT/guest/vms.cpio.gz
rm -rf "$d"
mkdir -p "$d/vm" "$d/usr/bin" "$d/usr/share/qemu" "$d$moddir"
cp -L "$qemu" "$d/usr/bin/qemu-system-x86_64"
cp -L "$moddir/accel-tcg-x86_64.so" "$d$moddir/"
# Every shared object the binary and the module load, at its own path.
for f in "$qemu" "$moddir/accel-tcg-x86_64.so"; do
	ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u | while read -r lib; do
	mkdir -p "$d$(dirname "$lib")"
	cp -L "$lib" "$d$lib"
done
# Firmware, wherever Debian keeps it (seabios has its own package).
for fw in bios-256k.bin linuxboot_dma.bin kvmvapic.bin; do
	src=
	for dir in /usr/share/qemu /usr/share/seabios; do
		[ -n "$src" ] || [ ! -f "$dir/$fw" ] || src=$dir/$fw
	done
	[ -n "$src" ] || die "QEMU firmware $fw not found"
	cp -L "$src" "$d/usr/share/qemu/$fw"
done
cp "$kimg" "$d/vm/bzImage"
# The nested guests' userland: busybox, print that it is up, idle.
n=$OUT/guest/vms-nested
rm -rf "$n"
mkdir -p "$n/bin" "$n/proc" "$n/sys" "$n/dev"
cp /bin/busybox "$n/bin/busybox"
ln -s busybox "$n/bin/sh"
cat >"$n/init" <<'INIT'
#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo "nested guest up: $(/bin/busybox cut -d' ' -f1 /proc/uptime) s"
while :; do /bin/busybox sleep 3600; done
INIT
chmod 755 "$n/init"
(cd "$n" && find . | cpio -o -H newc --quiet | gzip -1) >"$d/vm/initrd.gz"
(cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
