#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make run`: the demonstration on the release kernel, streamed to this
# terminal, then a picture of the saving over time.
# Env: KERNEL=ours|upstream (default ours), COMPARE=1 runs both kernels and
# draws both in one picture.
. "$(dirname "$0")/lib.sh"
if [ "${COMPARE:-0}" = 1 ]; then
	kernels="ours upstream"
else
	kernels=${KERNEL:-ours}
	check_kernel "$kernels"
fi
"$TOP/harness/deps.sh"
"$TOP/harness/deps.sh" plot
rc=0
logs=()
for k in $kernels; do
	KERNEL=$k FLAVOR=${FLAVOR:-release} STREAM=1 "$TOP/harness/run.sh" demo || rc=1
	log=$OUT/runs/$k-${FLAVOR:-release}-demo/console.log
	[ -f "$log" ] && logs+=("$k=$log")
done
mkdir -p "$OUT/run"
rm -f "$OUT/run/saving.png" "$OUT"/run/samples-*.csv
if [ ${#logs[@]} -gt 0 ]; then
	python3 "$TOP/harness/demo_plot.py" "$OUT/run" "${logs[@]}" >&2 || rc=1
fi
exit "$rc"
