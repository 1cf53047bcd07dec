# SPDX-License-Identifier: GPL-2.0
# Guest-side test runner, sourced by /init and the plans.
# Every test is framed on the console by
#   @@KSMT begin NAME
#   ... the test's own TAP output ...
#   @@KSMT end NAME STATUS rc=N secs=S
# STATUS is pass, fail, skip or flaky (failed once, passed on the retry).

KSM=/sys/kernel/mm/ksm

# Put KSM back to its boot defaults with nothing merged, so one test's
# leftovers never break the next (merge_across_nodes is EBUSY while pages are
# shared). Bounded: 120 s at most. A negative ksm_zero_pages is upstream's
# fork drift (see TORTURE_OPTS), not a page left to unmerge.
ksmt_settle() {
	ksmt_knob advisor_mode none
	ksmt_knob run 2
	i=0
	while [ $i -lt 1200 ]; do
		if [ "$(cat $KSM/pages_shared)" = 0 ] &&
		   [ "$(cat $KSM/pages_sharing)" = 0 ] &&
		   [ "$(cat $KSM/ksm_zero_pages 2>/dev/null || echo 0)" -le 0 ]; then
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	if [ $i -ge 1200 ]; then
		echo "@@KSMT note settle: pages still shared" \
			"shared=$(cat $KSM/pages_shared) sharing=$(cat $KSM/pages_sharing)"
		ksmt_dump "settle"
	fi
	[ ! -e $KSM/merge_domains ] || echo 0 >$KSM/merge_domains 2>/dev/null
	[ ! -e $KSM/estimate ] || echo 0 >$KSM/estimate 2>/dev/null
	echo 1 >$KSM/merge_across_nodes 2>/dev/null
	echo 256 >$KSM/max_page_sharing 2>/dev/null
	echo 0 >$KSM/use_zero_pages 2>/dev/null
	echo 1 >$KSM/smart_scan 2>/dev/null
	echo 100 >$KSM/pages_to_scan 2>/dev/null
	echo 20 >$KSM/sleep_millisecs 2>/dev/null
	echo 2000 >$KSM/stable_node_chains_prune_millisecs 2>/dev/null
	echo 0 >$KSM/run
}

# Where every task not idle sleeps or runs in the kernel: printed when a
# test or a settle step overruns, so that a hang leaves evidence.
ksmt_dump() {
	echo "@@KSMT note $1: kernel stacks of running and blocked tasks"
	for p in /proc/[0-9]*; do
		st=$(sed -n 's/^State:[[:space:]]*//p' "$p/status" 2>/dev/null)
		comm=$(cat "$p/comm" 2>/dev/null)
		case "$st:$comm" in
		R*|D*|*:ksmd) ;;
		*) continue ;;
		esac
		echo "@@KSMT stack ${p#/proc/} $comm $st"
		sed 's/^/@@KSMT stack   /' "$p/stack" 2>/dev/null
	done
}

# ksmt_once TIMEOUT CMD... -> exit status of CMD (137 on timeout, after a
# stack dump)
ksmt_once() {
	t=$1
	shift
	"$@" </dev/null &
	pid=$!
	n=0
	while kill -0 "$pid" 2>/dev/null; do
		if [ $n -ge $((t * 5)) ]; then
			ksmt_dump "timeout after ${t}s: $*"
			kill -9 "$pid" 2>/dev/null
			break
		fi
		sleep 0.2
		n=$((n + 1))
	done
	wait "$pid"
}

# ksmt_knob FILE VALUE: a sysfs write that must not hang silently (run=2
# unmerges everything and may take a while; 120 s is far beyond that).
ksmt_knob() {
	(echo "$2" >"$KSM/$1") 2>/dev/null &
	kpid=$!
	k=0
	while kill -0 "$kpid" 2>/dev/null; do
		if [ $k -ge 600 ]; then
			ksmt_dump "writing $2 to $1 takes over 120 s"
			return 1
		fi
		sleep 0.2
		k=$((k + 1))
	done
	wait "$kpid"
}

# ksmt_run NAME TIMEOUT CMD...
ksmt_run() {
	name=$1
	t=$2
	shift 2
	if [ -n "$ONLY" ]; then
		case ",$ONLY," in
		*",$name,"*) ;;
		*) return 0 ;;
		esac
	fi
	if ! command -v "$1" >/dev/null 2>&1; then
		echo "@@KSMT begin $name"
		echo "@@KSMT end $name skip rc=127 secs=0 (no binary $1)"
		return 0
	fi
	echo "@@KSMT begin $name"
	s0=$(date +%s)
	ksmt_once "$t" "$@"
	rc=$?
	ksmt_settle
	st=fail
	case $rc in
	0) st=pass ;;
	4) st=skip ;;
	esac
	if [ $st = fail ] && [ "$RETRY" != 0 ]; then
		echo "@@KSMT retry $name rc=$rc"
		ksmt_once "$t" "$@"
		rc2=$?
		ksmt_settle
		[ $rc2 = 0 ] && st=flaky
	fi
	echo "@@KSMT end $name $st rc=$rc secs=$(( $(date +%s) - s0 ))"
	# Memory left after each test: a leak or a thrashing guest shows here.
	echo "@@KSMT mem $(awk '/^(MemFree|MemAvailable|SwapFree|Shmem|Unevictable|HugePages_Total):/ { printf "%s%s ", $1, $2 }' /proc/meminfo)"
}

ONLY=$(arg only)
RETRY=$(arg retry)
DURATION=$(arg duration)
SEED=$(arg seed)
SCEN=$(arg scen)
OPSOFF=$(arg opsoff)
# Upstream 6.12 lets ksm_zero_pages drift on fork (dup_mm() copies the
# parent's count before dup_mmap() locks the parent); ours counts under the
# lock.  The torture suite reports that drift as XFAIL on upstream only.
TORTURE_OPTS=
[ "$(arg kernel)" = upstream ] && TORTURE_OPTS=-z
# Which kernel runs: a test may report a known upstream bug as XFAIL there.
KSMT_KERNEL=$(arg kernel)
export KSMT_KERNEL
ksmt_settle
