#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build what a plan needs, boot it, report.
# Usage: run.sh PLAN   (env: KERNEL, FLAVOR, TIMEOUT, ONLY, DURATION, SEED,
#                     VMS=1: the demo's QEMU act)
. "$(dirname "$0")/lib.sh"
plan=$1
kernel=${KERNEL:-ours}
flavor=${FLAVOR:-debug}
check_kernel "$kernel"
check_flavor "$flavor"
"$TOP/harness/deps.sh"
mkdir -p "$OUT/locks"
# One build+boot per kernel/flavor at a time; others may run in parallel.
exec 9>"$OUT/locks/$kernel-$flavor"
flock 9
kimg=$("$TOP/harness/build.sh" "$kernel" "$flavor" | tail -n 1)
initrd=$(flock "$OUT/locks/guest" "$TOP/harness/guest.sh" | tail -n 1)
rundir=$OUT/runs/$kernel-$flavor-$plan
rm -rf "$rundir"
mkdir -p "$rundir"
acts=
if [ "$plan" = demo ] && [ "${VMS:-0}" = 1 ]; then
	# Real QEMU guests inside the test guest: QEMU and a nested kernel
	# appended to the initramfs (the kernel unpacks both archives).
	note "adding QEMU and a nested guest to the initramfs (VMS=1)"
	vmsarc=$("$TOP/harness/vms.sh" "$kimg" | tail -n 1)
	cat "$initrd" "$vmsarc" >"$rundir/initramfs.cpio.gz"
	initrd=$rundir/initramfs.cpio.gz
	acts=workers,vms,qemu
fi
seed=${SEED:-}
if [ "$plan" = test ] || [ "$plan" = stress ]; then
	[ -n "$seed" ] && [ "$seed" != 0 ] || seed=$(( $(date +%s) % 1000000 + 1 ))
fi
only=${ONLY:-}
only=${only// /,}
host=()
if [ "$plan" = test ]; then
	if "$TOP/harness/patches.sh" --check; then
		host=(--host "patch-series=pass")
	else
		host=(--host "patch-series=fail")
	fi
fi
note "booting $kernel-$flavor (base $(base_version)), plan $plan${seed:+, seed $seed}"
start=$(date +%s)
set +e
TIMEOUT=${TIMEOUT:-2400} "$TOP/harness/qemu.sh" "$kimg" "$initrd" "$rundir" "$plan" \
	"only=$only" "duration=${DURATION:-}" "seed=$seed" "retry=${RETRY:-1}" "scen=${SCENARIOS:-}" "opsoff=${OPS_OFF:-}" "kernel=$kernel" "acts=$acts"
qrc=$?
set -e
note "guest ran $(( $(date +%s) - start ))s; console log: $rundir/console.log"
expect=()
if [ "$kernel" = ours ] && [ -z "$only" ] && [ -f "$TOP/tests/expected-pass-ours.txt" ]; then
	expect=(--expect "$TOP/tests/expected-pass-ours.txt")
fi
[ "$plan" = test ] || [ "$plan" = conformance ] || expect=()
set +e
python3 "$TOP/harness/report.py" "$rundir/console.log" "${expect[@]}" "${host[@]}" \
	--label "$kernel-$flavor plan=$plan${seed:+ seed=$seed}" --base "$(base_version)" |
	tee "$rundir/report.txt"
rc=${PIPESTATUS[0]}
set -e
[ "$qrc" = 0 ] || rc=1
exit "$rc"
