# SPDX-License-Identifier: GPL-2.0
# `make bench`: the identical workloads, in the same order, on every boot.
# harness/bench_report.py reads the results ("BENCH metric value unit" lines
# and ksm_tests' own output) from the console, test by test; a test named
# NAME#i is repetition i of NAME (the report keeps each boot's best one).
# ksmtest.quick=1 selects the smaller sizes of `make bench QUICK=1`.
RETRY=0
if [ "$(arg quick)" = 1 ]; then
	REPS=2			# repetitions of the short workloads
	KT_REPS=1		# repetitions of ksm_tests -P/-H/-D
	MERGE="4 64"		# K processes x M MiB
	UNIQ=64			# MiB of unique pages
	LTREE="40000 10000"	# distinct stable pages, new duplicates
	MIXED=32		# MiB per process (2 processes)
	ADVISOR="32 10"		# MiB at the peak, seconds
	THRASH="4 32 16"	# K processes x M MiB, seconds of rewriting
	SPARSE="64 32"		# GiB mapped, MiB touched in 2 MiB islands
	SCALING="16 64 256"	# MiB of unique pages, 16x apart
else
	REPS=3
	KT_REPS=2
	MERGE="4 128"
	UNIQ=128
	LTREE="120000 30000"
	MIXED=64
	ADVISOR="64 30"
	THRASH="4 64 30"
	SPARSE="256 64"
	SCALING="64 256 1024"
fi
KT_MIB=100			# ksm_tests -P/-H/-D -s, as the issue asks
echo "@@KSMT note bench quick=$(arg quick) boot=$(arg boot) reps=$REPS merge=[$MERGE] ksm_tests_mib=$KT_MIB unique=$UNIQ largetree=[$LTREE] mixed=$MIXED advisor=[$ADVISOR] thrash=[$THRASH] sparse=[$SPARSE] scaling=[$SCALING]"

# rep N NAME TIMEOUT CMD...: run CMD N times as NAME#1..NAME#N
rep() {
	_n=$1 _name=$2
	shift 2
	_i=1
	while [ $_i -le "$_n" ]; do
		ksmt_run "$_name#$_i" "$@"
		_i=$((_i + 1))
	done
}

# pair N NAME TIMEOUT CMD...: NAME#i, then NAME_domains2#i (the same CMD
# with merge_domains=2), for i in 1..N: the cost of merge domains, measured
# side by side so that both see the guest in the same state.
pair() {
	_n=$1 _name=$2 _t=$3
	shift 3
	_i=1
	while [ $_i -le "$_n" ]; do
		ksmt_run "$_name#$_i" "$_t" "$@"
		ksmt_run "${_name}_domains2#$_i" "$_t" env KSM_BENCH_DOMAINS=2 "$@"
		_i=$((_i + 1))
	done
}

# shellcheck disable=SC2086
{
pair $REPS merge_throughput 300 ksm_bench merge $MERGE
rep $KT_REPS ksm_tests-P 300 ksm_tests -P -s $KT_MIB
rep $KT_REPS ksm_tests-H 300 ksm_tests -H -s $KT_MIB
ksmt_run unique_scan_cpu 400 ksm_bench unique $UNIQ 0 3 5 $REPS
ksmt_run unique_scan_cpu_domains2 400 env KSM_BENCH_DOMAINS=2 ksm_bench unique $UNIQ 0 3 5 $REPS
rep $REPS unique_scan_cpu_smart 300 ksm_bench unique $UNIQ 1 3 16
ksmt_run large_tree 600 ksm_bench largetree $LTREE $REPS
# -C times only 2000 write faults: three runs per boot.
rep 3 ksm_tests-C 300 ksm_tests -C -p 2000
rep $KT_REPS ksm_tests-D 300 ksm_tests -D -s $KT_MIB -p 2000
ksmt_run dedup_outcome 300 ksm_bench mixed $MIXED
ksmt_run advisor_steady_cpu 300 ksm_bench advisor $ADVISOR
# Estimate mode (ours only): the estimate against what merging achieves.
ksmt_run estimate 600 ksm_bench estimate $MIXED
# Round two: where KSM hurts in production.
ksmt_run thrash 600 ksm_bench thrash $THRASH
ksmt_run sparse 900 ksm_bench sparse $SPARSE
ksmt_run scaling 900 ksm_bench scaling $SCALING
# Real guests (QEMU TCG inside this guest): full bench only, see vms.sh.
[ "$(arg quick)" = 1 ] || ksmt_run vms 600 ksm_bench vms 3 128 400
}
