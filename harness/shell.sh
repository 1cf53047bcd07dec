#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make shell`: build, then boot the guest with an interactive shell on this
# terminal (Ctrl-A X quits QEMU).
. "$(dirname "$0")/lib.sh"
kernel=${KERNEL:-ours}
flavor=${FLAVOR:-release}
kimg=$("$TOP/harness/build.sh" "$kernel" "$flavor" | tail -n 1)
initrd=$("$TOP/harness/guest.sh" | tail -n 1)
exec env INTERACTIVE=1 "$TOP/harness/qemu.sh" "$kimg" "$initrd" \
	"$OUT/runs/$kernel-$flavor-shell" shell
