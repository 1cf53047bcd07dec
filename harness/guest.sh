#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the guest initramfs (busybox + static tests). Prints its path.
. "$(dirname "$0")/lib.sh"
"$TOP/harness/tree.sh" pristine
if [ ! -f "$HDR/linux/prctl.h" ]; then
	note "installing 6.12 uapi headers"
	make -s -C "$PRISTINE" O="$OUT/hdr" headers_install \
		INSTALL_HDR_PATH="$OUT/hdr" >"$OUT/hdr.log" 2>&1 ||
		{ tail "$OUT/hdr.log" >&2; die "headers_install failed"; }
fi
make -s -f "$TOP/harness/guest.mk" -j"$JOBS" TOP="$TOP" OUT="$OUT" \
	PRISTINE="$PRISTINE" HDR="$HDR" >&2 || die "guest userland build failed"
echo "$OUT/guest/initramfs.cpio.gz"
