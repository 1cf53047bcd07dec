#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Boot a kernel with the guest initramfs and run one plan.
# Usage: qemu.sh BZIMAGE INITRAMFS RUNDIR PLAN [key=value ...]
#   key=value pairs become ksmtest.key=value on the kernel command line.
# Env: TIMEOUT (s, whole boot), KVM=1 to use KVM (default TCG), INTERACTIVE=1
# for a console on this terminal. Exit 0 when the guest powered off by itself,
# 124 when it timed out (the console tail is printed).
. "$(dirname "$0")/lib.sh"
kimg=$1 initrd=$2 rundir=$3 plan=$4
shift 4
mkdir -p "$rundir"
log=$rundir/console.log
# acpi=noirq: PCI interrupts come from the BIOS PIRQ table.  Evaluating the
# ACPI _PRT loop under TCG takes ~9 s of one vCPU on an idle host; on a busy
# host it ran past 26 s and tripped the soft-lockup watchdog during boot.
cmdline="console=ttyS0,115200 loglevel=5 panic=-1 mitigations=off acpi=noirq ksmtest.plan=$plan"
for kv in "$@"; do
	[ -n "${kv#*=}" ] && cmdline="$cmdline ksmtest.$kv"
done
accel=tcg
if [ "${KVM:-0}" = 1 ]; then
	accel=kvm
fi
# Every guest gets its own sparse swap disk: two guests never share one.
rm -f "$rundir/swap.img"
truncate -s 768M "$rundir/swap.img"
qemu=(qemu-system-x86_64 -accel "$accel" -cpu max -machine pc
	-smp 2,sockets=2 -m 2G
	-object memory-backend-ram,id=m0,size=1G
	-object memory-backend-ram,id=m1,size=1G
	-numa node,nodeid=0,cpus=0,memdev=m0
	-numa node,nodeid=1,cpus=1,memdev=m1
	-kernel "$kimg" -initrd "$initrd" -append "$cmdline"
	-drive "file=$rundir/swap.img,if=virtio,format=raw,cache=unsafe"
	-nodefaults -display none -vga none -no-reboot)
echo "qemu: ${accel^^} 2 vCPUs (2 sockets), 2 NUMA nodes x 1 GiB, swap 768 MiB; cmdline: $cmdline" >"$rundir/qemu.txt"
if [ "${INTERACTIVE:-0}" = 1 ]; then
	exec "${qemu[@]}" -serial mon:stdio
fi
to=${TIMEOUT:-1800}
# The serial console goes straight to a file: a pipe that fills up while the
# host is busy made QEMU stall the guest's UART for good (the guest then
# blocks in a tty write, silently).  Progress is followed from the file.
: >"$log"
# STREAM=1 (make run) shows every line the tests print, not only progress.
stream=()
[ "${STREAM:-0}" = 1 ] && stream=(--all)
tail -n +1 -F "$log" 2>/dev/null | python3 -u "$TOP/harness/stream.py" "${stream[@]}" &
set +e
timeout -k 15 "$to" "${qemu[@]}" -serial "file:$log" -monitor none </dev/null 2>"$rundir/qemu.err"
rc=$?
set -e
sleep 1
pkill -f -x "tail -n \+1 -F $log" 2>/dev/null || true
wait 2>/dev/null || true
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	echo "error: guest did not power off within ${to}s (hung); console tail:" >&2
	tail -n 40 "$log" >&2
	exit 124
fi
if [ "$rc" != 0 ]; then
	cat "$rundir/qemu.err" >&2
	die "qemu exited with $rc"
fi
exit 0
