#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install whatever the harness needs and is missing (apt-get, as root, without
# recommends), then check every command it calls. Idempotent, silent when
# everything is already there.
#
# Usage: deps.sh          what every target needs (make test, run, ...)
#        deps.sh fresh    what `make fresh-check` needs on the host
#        deps.sh plot     what the pictures of make run and make bench need
#
# Everything not listed comes with a Debian minbase (Essential/required):
# bash, coreutils (timeout, truncate, tail, sha1sum, nproc, whoami, ...),
# sed, grep, mawk, gzip, tar, findutils, diffutils (cmp), util-linux (flock),
# dpkg, apt. A fresh machine needs `make` and `git` before this can run (to
# clone the repo and type `make`); see README.md.
. "$(dirname "$0")/lib.sh"

mode=${1:-harness}
case "$mode" in
harness)
	# package             what for
	#   linux-source-6.12   the base tree ($TARBALL)
	#   qemu-system-x86     qemu-system-x86_64
	#   busybox-static      /bin/busybox, the guest's userland
	#   gcc libc6-dev       kernel, host tools, static guest programs (libc.a;
	#                       gcc only recommends libc6-dev)
	#   make flex bison bc  kernel build
	#   perl python3        kernel scripts, checkpatch; report.py
	#   libelf-dev          objtool
	#   libssl-dev          kernel host tools (certs, sign-file)
	#   cpio gzip xz-utils  initramfs; tarball and CONFIG_KERNEL_XZ
	#   rsync               make headers_install
	#   patch               patches/*.patch onto the ours tree
	#   git                 owned file list, patches.sh (git am)
	#   libnuma-dev         -lnuma for the selftests
	#   procps              pkill (qemu.sh)
	#   ccache sparse       faster rebuilds; make check-style (C=1)
	#   kmod dwarves        depmod, pahole (kernel build, if configured)
	PKGS="linux-source-6.12 qemu-system-x86 busybox-static gcc libc6-dev make
	flex bison bc perl python3 libelf-dev libssl-dev cpio gzip xz-utils rsync
	patch git libnuma-dev procps ccache sparse kmod dwarves"
	CMDS="bash make gcc ld as git patch perl python3 flex bison bc cpio gzip
	xz tar rsync qemu-system-x86_64 timeout flock truncate pkill tail tee sed
	awk grep cut sort cmp find sha1sum nproc whoami uname pahole depmod ccache
	sparse"
	FILES="$TARBALL /bin/busybox /usr/include/stdio.h"
	;;
fresh)
	# debootstrap builds the fresh root; chroot and mount come with minbase.
	PKGS="debootstrap git"
	CMDS="debootstrap chroot mount umount git"
	FILES=""
	;;
plot)
	# gnuplot-nox: out/run/saving.png (make run), the make bench charts
	PKGS="gnuplot-nox"
	CMDS="gnuplot"
	FILES=""
	;;
*)
	die "deps.sh: unknown mode '$mode' (use harness, fresh or plot)"
	;;
esac

# shellcheck disable=SC2086
installed=" $(dpkg-query -W -f='${Package} ${Status}\n' $PKGS 2>/dev/null |
	awk '/ install ok installed$/{print $1}' | tr '\n' ' ' || true) "
missing=""
for p in $PKGS; do
	case "$installed" in
	*" $p "*) ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		die "missing packages:$missing (need root and apt-get to install them)"
	fi
	note "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	log=$(mktemp /tmp/ksm-harness-apt.XXXXXX)
	apt-get update >"$log" 2>&1 ||
		{ tail -20 "$log" >&2; die "apt-get update failed"; }
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >>"$log" 2>&1 ||
		{ tail -20 "$log" >&2; die "apt-get install failed:$missing"; }
	rm -f "$log"
fi

# Whatever the packages say, what counts is what the harness then finds.
gone=""
for c in $CMDS; do
	command -v "$c" >/dev/null 2>&1 || gone="$gone $c"
done
for f in $FILES; do
	[ -e "$f" ] || gone="$gone $f"
done
[ -z "$gone" ] || die "still missing after installing the harness's packages:$gone"
exit 0
