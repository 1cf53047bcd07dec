#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build one kernel. Usage: build.sh KERNEL FLAVOR -> last line: bzImage path
. "$(dirname "$0")/lib.sh"
kernel=$1 flavor=$2
check_kernel "$kernel"
check_flavor "$flavor"
if [ "$kernel" = ours ]; then
	for f in mm/ksm.c include/linux/ksm.h; do
		[ -f "$TOP/$f" ] || die "our kernel needs the repo's own $f (missing)"
	done
fi
"$TOP/harness/tree.sh" "$([ "$kernel" = ours ] && echo ours || echo pristine)"
src=$([ "$kernel" = ours ] && echo "$OURS" || echo "$PRISTINE")
cfg=$("$TOP/harness/kconfig.sh" "$flavor")
bdir=$(builddir "$kernel" "$flavor")
mkdir -p "$bdir"
if ! cmp -s "$cfg" "$bdir/.config.want"; then
	cp "$cfg" "$bdir/.config"
	cp "$cfg" "$bdir/.config.want"
fi
cc=gcc
if command -v ccache >/dev/null 2>&1; then
	cc="ccache gcc"
	export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-20G}
	# The ours tree lives at another path than pristine; let ccache share.
	export CCACHE_BASEDIR=$OUT/src
	export CCACHE_NOHASHDIR=1
fi
note "building $kernel-$flavor kernel (base $(base_version), log in $bdir/build.log)"
start=$(date +%s)
if ! make -C "$src" O="$bdir" CC="$cc" HOSTCC=gcc -j"$JOBS" ${KBUILD_EXTRA:-} bzImage \
	>"$bdir/build.log" 2>&1; then
	grep -E 'error|Error' "$bdir/build.log" | head -30 >&2
	die "kernel build failed ($kernel-$flavor), see $bdir/build.log"
fi
note "built $kernel-$flavor in $(( $(date +%s) - start ))s"
echo "$bdir/arch/x86/boot/bzImage"
