#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: ours vs upstream KSM on the same workloads in one run.
# Builds the release flavor of both kernels (identical config), boots them
# alternately (A B A B ...) under identical QEMU settings with the `bench`
# plan, then harness/bench_report.py writes out/bench/report.md and
# out/bench/report.json (medians, min, max, ratio ours/upstream) and
# harness/bench_plot.py the charts beside them (metrics.png, merge_saving.png).
# Env: QUICK=1 (2 boots each, smaller sizes; default 3 boots each),
#      BOOTS=n (boots per kernel), TIMEOUT (s per boot),
#      ONLY="name#1,name#2,..." (only those workloads, by their plan names:
#      a partial report, whose other rows say they have no result),
#      BENCH_A / BENCH_B (hidden: the kernels in the "ours" and "upstream"
#      columns; BENCH_A=upstream BENCH_B=upstream validates the method, the
#      ratios must come out ~1.0).
. "$(dirname "$0")/lib.sh"
"$TOP/harness/deps.sh" plot
quick=${QUICK:-0}
[ "$quick" = 1 ] || quick=0
a=${BENCH_A:-ours}
b=${BENCH_B:-upstream}
check_kernel "$a"
check_kernel "$b"
boots=${BOOTS:-$([ "$quick" = 1 ] && echo 2 || echo 3)}
# A boot took ~1.5 min (QUICK) or ~3 min under TCG before the round-two
# workloads (thrash, sparse, scaling, and in the full bench vms) added
# minutes; a hung guest must not eat the whole time budget.
to=${TIMEOUT:-$([ "$quick" = 1 ] && echo 720 || echo 1800)}
bdir=$OUT/bench
start=$(date +%s)
rm -rf "$bdir"
mkdir -p "$bdir/img" "$bdir/runs" "$OUT/locks"

# Build, then keep private copies: another engineer rebuilding a kernel or
# the initramfs during the run must not change what the later boots use.
for k in $(printf '%s\n' "$a" "$b" | sort -u); do
	t0=$(date +%s)
	# One retry: another engineer's build may re-prepare out/src/ours under us.
	if ! img=$(flock "$OUT/locks/$k-release" "$TOP/harness/build.sh" "$k" release | tail -n 1) ||
	   [ ! -f "$img" ]; then
		note "bench: $k-release build failed; retrying once in 60 s"
		sleep 60
		if ! img=$(flock "$OUT/locks/$k-release" "$TOP/harness/build.sh" "$k" release | tail -n 1) ||
		   [ ! -f "$img" ]; then
			echo "bench: the $k-release kernel does not build; no benchmark" >&2
			exit 1
		fi
	fi
	cp "$img" "$bdir/img/$k.bzImage"
	echo "$k $(( $(date +%s) - t0 ))" >>"$bdir/build-secs.txt"
done
initrd=$(flock "$OUT/locks/guest" "$TOP/harness/guest.sh" | tail -n 1)
cp "$initrd" "$bdir/img/initramfs.cpio.gz"
# The vms workload (full bench only): QEMU and a nested guest booting
# kernel A, the same nested guests for both sides.
if [ "$quick" = 0 ]; then
	vmsarc=$("$TOP/harness/vms.sh" "$bdir/img/$a.bzImage" | tail -n 1)
	cat "$vmsarc" >>"$bdir/img/initramfs.cpio.gz"
fi
build_secs=$(( $(date +%s) - start ))
note "bench: $a vs $b, release, $boots boots each (A B A B ...), quick=$quick, base $(base_version); builds took ${build_secs}s"

runs=()
boot_start=$(date +%s)
for i in $(seq 1 "$boots"); do
	for side in A B; do
		if [ $side = A ]; then k=$a col=ours; else k=$b col=upstream; fi
		rd=$bdir/runs/$(printf '%02d' "$i")-$col-$k
		note "bench: boot $i/$boots of $col ($k-release)"
		t0=$(date +%s)
		mkdir -p "$rd"
		cut -d' ' -f1 /proc/loadavg >"$rd/host.load"
		set +e
		TIMEOUT=$to "$TOP/harness/qemu.sh" "$bdir/img/$k.bzImage" \
			"$bdir/img/initramfs.cpio.gz" "$rd" bench \
			"quick=$quick" "boot=$i" "side=$col" \
			${ONLY:+"only=${ONLY// /,}"} 2> >(tee "$rd.stderr" >&2)
		rc=$?
		set -e
		echo "$rc $(( $(date +%s) - t0 ))" >"$rd/qemu.rc"
		cut -d' ' -f1 /proc/loadavg >>"$rd/host.load"
		note "bench: boot $i $col finished in $(( $(date +%s) - t0 ))s (qemu rc=$rc)"
		runs+=("$col:$i:$rd")
	done
done
total=$(( $(date +%s) - start ))
set +e
python3 "$TOP/harness/bench_report.py" --base "$(base_version)" --quick "$quick" \
	--kernel-ours "$a" --kernel-upstream "$b" --out "$bdir" \
	--qemu "$(cat "$bdir/runs/01-ours-$a/qemu.txt" 2>/dev/null | sed 's/; cmdline.*//')" \
	--build-secs "$build_secs" --boot-secs "$(( $(date +%s) - boot_start ))" \
	--total-secs "$total" "${runs[@]}"
rc=$?
python3 "$TOP/harness/bench_plot.py" "$bdir" >&2 || rc=1
set -e
note "bench: report in $bdir/report.md and $bdir/report.json, charts beside them (total $(( $(date +%s) - start ))s)"
exit $rc
