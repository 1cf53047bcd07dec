#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the console logs of `make bench` boots into out/bench/report.md and
out/bench/report.json.

Usage: bench_report.py --base 6.12.N --out DIR [--quick 0|1]
           [--kernel-ours K] [--kernel-upstream K] [--qemu TEXT]
           [--build-secs S] [--boot-secs S] [--total-secs S]
           SIDE:BOOT:RUNDIR ...
SIDE is "ours" or "upstream"; RUNDIR holds console.log and qemu.rc.
Exit status: 0 when every workload of every boot produced its numbers, 1 when
any failed (the report says which metric of which boot).
"""
import argparse
import json
import os
import re
import statistics
import sys

# name, unit, better, test (ksmt_run name), goal (ratio) or None, what
METRICS = [
    ("merge_throughput", "MiB/s", "higher", "merge_throughput", 2.0,
     "K processes x M MiB identical content merged, pages_to_scan max, sleep 0"),
    ("ksm_tests_P", "MiB/s", "higher", "ksm_tests-P", None,
     "upstream selftest `ksm_tests -P -s S`, its own Average speed"),
    ("ksm_tests_H", "MiB/s", "higher", "ksm_tests-H", None,
     "upstream selftest `ksm_tests -H -s S` (THP), its own Average speed"),
    ("merge_ksmd_cpu_per_mib", "ms/MiB", "lower", "merge_throughput", None,
     "ksmd CPU spent in the merge_throughput workload per MiB"),
    ("unique_scan_cpu", "s/scan", "lower", "unique_scan_cpu", 0.6,
     "ksmd CPU per full scan of unique pages, smart_scan=0"),
    ("unique_scan_cpu_smart", "s/scan", "lower", "unique_scan_cpu_smart", 0.6,
     "ksmd CPU per full scan of unique pages, smart_scan=1"),
    ("large_tree_merge_cpu", "us/page", "lower", "large_tree", 0.5,
     "ksmd CPU per newly merged duplicate with P pages in the stable tree"),
    ("cow_latency", "us/fault", "lower", "ksm_tests-C", 1.0,
     "`ksm_tests -C` (3 runs per boot): mean write-fault time on merged pages"),
    ("unmerge_time", "s", "lower", "ksm_tests-D", None,
     "`ksm_tests -D -s S`: MADV_UNMERGEABLE of S MiB of merged pages"),
    ("metadata_bytes_per_page", "B/page", "lower", "large_tree", 0.75,
     "ksm_* slab bytes (active_objs x objsize) per mergeable page of the "
     "large-tree workload (2 P + R x D pages, the same denominator for both "
     "kernels) at its steady state"),
    ("dedup_outcome", "pages", "higher", "dedup_outcome", 1.0,
     "pages saved on a mixed workload after 2 full scans"),
    ("advisor_steady_cpu", "%", "lower", "advisor_steady_cpu", 1.0,
     "ksmd CPU % with advisor_mode=scan-time, candidate set grows then shrinks"),
    ("merge_throughput_domains2", "MiB/s", "higher",
     "merge_throughput_domains2", None,
     "merge_throughput with merge_domains=2, the processes in one domain "
     "(upstream, without domains: the plain workload); compare ours with "
     "ours' merge_throughput"),
    ("unique_scan_cpu_domains2", "s/scan", "lower",
     "unique_scan_cpu_domains2", None,
     "unique_scan_cpu with merge_domains=2 (upstream: plain); compare ours "
     "with ours' unique_scan_cpu"),
    ("domains_merge_cost", "ratio", "higher", "merge_throughput_domains2",
     None,
     "merge_throughput_domains2 over merge_throughput, boot by boot (each "
     "boot's best of each, run side by side); upstream has no domains, so "
     "its column is what the same comparison gives when nothing differs"),
    ("domains_unique_cost", "ratio", "lower", "unique_scan_cpu_domains2",
     None,
     "unique_scan_cpu_domains2 over unique_scan_cpu, boot by boot, as "
     "domains_merge_cost"),
    ("estimate_accuracy", "ratio", "higher", "estimate", None,
     "ours only: estimate_pages_sharing + estimate_zero_pages after 3 full "
     "scans in estimate mode, over pages_sharing + ksm_zero_pages after 3 "
     "full scans of merging from the same start (goal: 0.98-1.02)"),
    ("estimate_scan_cpu", "s/scan", "lower", "estimate", None,
     "ours only: ksmd CPU per full scan in estimate mode, same workload"),
    ("estimate_cpu_vs_merge", "ratio", "lower", "estimate", None,
     "ours only: estimate-mode ksmd CPU over merge-mode ksmd CPU for the "
     "same 3 full scans (goal: <= 1)"),
    ("thrash_cow_faults", "faults/s", "lower", "thrash", 0.3,
     "4 processes with the same memory, merged; then each rewrites a random "
     "20% of its pages every 2 s and restores the ones of the round before: "
     "COW faults on KSM pages (vmstat cow_ksm) per second"),
    ("thrash_ksmd_cpu", "%", "lower", "thrash", 0.5,
     "ksmd CPU % during the thrash workload"),
    ("thrash_saving", "MiB", "higher", "thrash", 0.9,
     "average saving (pages_sharing + ksm_zero_pages) during the thrash "
     "workload"),
    ("sparse_scan_cpu", "s/scan", "lower", "sparse", 0.5,
     "ksmd CPU of one full scan of a huge MAP_NORESERVE mergeable mapping "
     "with a little memory touched in 2 MiB islands (sizes: sparse=[GiB MiB])"),
    ("sparse_unmerge_time", "s", "lower", "sparse", 0.05,
     "MADV_UNMERGEABLE over the whole sparse mapping"),
    ("unique_scan_ns_per_page_smallest", "ns/page", "lower", "scaling", 1.0,
     "ksmd CPU per page of a full scan of unique pages (smart_scan=0), "
     "smallest size of scaling=[...]"),
    ("unique_scan_ns_per_page_largest", "ns/page", "lower", "scaling", 1.0,
     "the same at the largest size (16x the smallest)"),
    ("unique_scan_growth", "ratio", "lower", "scaling", None,
     "per-page cost at the largest size over the smallest (goal: ours <= "
     "1.3, a log n tree)"),
    ("vms_saving_60s", "MiB", "higher", "vms", 1.3,
     "full bench only: 3 QEMU TCG guests of 128 MiB booting the same kernel "
     "inside the test guest (QEMU opts their RAM in): saved MiB 60 s after "
     "the launch"),
    ("vms_saving_final", "MiB", "higher", "vms", 1.0,
     "the same at the end: three full scans after the last guest is up"),
    ("vms_ksmd_cpu", "%", "lower", "vms", None,
     "ksmd CPU % over the vms workload, launch to end"),
    ("floor_ratio", "ratio", "lower", "merge_throughput", None,
     "ksmd CPU ns per merged page of merge_throughput over the floor, a "
     "user program in the same guest that xxh64-hashes every page and "
     "memcmps every duplicate once (goal: ours <= 3)"),
]
# The cost of merge domains: (row, plain metric, merge_domains=2 metric).
DOMAIN_COSTS = [
    ("domains_merge_cost", "merge_throughput", "merge_throughput_domains2"),
    ("domains_unique_cost", "unique_scan_cpu", "unique_scan_cpu_domains2"),
]
# Rows of workloads only the full bench runs.
FULL_ONLY = {"vms_saving_60s", "vms_saving_final", "vms_ksmd_cpu"}
# Rows only our kernel has: upstream boots give no value and owe none.
OURS_ONLY = {"estimate_accuracy", "estimate_scan_cpu", "estimate_cpu_vs_merge"}
SPLAT = re.compile(r"\] (BUG|WARNING|Oops|Kernel panic|general protection|"
                   r"KASAN|Unable to handle|list_add corruption|"
                   r"watchdog: BUG: soft lockup|INFO: task .* blocked)")


def parse_console(path):
    """-> dict: tests {name: {status, rc, secs, lines}}, begun, done, splats, note."""
    res = {"tests": {}, "order": [], "done": False, "splats": [], "note": "",
           "open": None}
    try:
        with open(path, errors="replace") as f:
            lines = [ln.rstrip("\r\n").replace("\r", "") for ln in f]
    except OSError:
        return res
    cur = None
    for ln in lines:
        if SPLAT.search(ln):
            res["splats"].append(ln.strip())
        m = re.match(r"^@@KSMT (\w+) ?(.*)$", ln)
        if m:
            kind, rest = m.group(1), m.group(2)
            if kind == "begin":
                cur = rest.strip()
                res["tests"][cur] = {"status": None, "rc": None, "secs": None,
                                     "lines": []}
                res["order"].append(cur)
            elif kind == "end":
                f = rest.split()
                name = f[0] if f else cur
                t = res["tests"].setdefault(name, {"lines": []})
                t["status"] = f[1] if len(f) > 1 else "?"
                for kv in f[2:]:
                    if kv.startswith("rc="):
                        t["rc"] = kv[3:]
                    elif kv.startswith("secs="):
                        t["secs"] = kv[5:]
                cur = None
            elif kind == "done":
                res["done"] = True
            elif kind == "note" and rest.startswith("bench "):
                res["note"] = re.sub(r" boot=\S*", "", rest)
            continue
        if cur is not None:
            res["tests"][cur]["lines"].append(ln)
    res["open"] = cur
    return res


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def metrics_of(test, lines):
    """Numbers a test's output yields: {metric: [values]}."""
    out = {}
    test = test.split("#")[0]
    if test.startswith("ksm_tests-"):
        mode = test[len("ksm_tests-"):][:1]
        speed = [num(m.group(1)) for ln in lines
                 for m in [re.search(r"Average speed:\s+([0-9.]+) MiB/s", ln)] if m]
        times = [num(m.group(1)) for ln in lines
                 for m in [re.search(r"Total time:\s+([0-9.]+) s", ln)] if m]
        if mode in "PH" and speed:
            out["ksm_tests_" + mode] = [speed[-1]]
        elif mode == "D" and times:
            out["unmerge_time"] = [times[-1]]
        elif mode == "C" and len(times) >= 2:
            # 4000 pages, every other one written: 2000 write faults on
            # merged pages (the first time is of writes that do not fault).
            out["cow_latency"] = [times[1] / 2000 * 1e6]
        return out
    for ln in lines:
        m = re.match(r"^BENCH (\S+) (\S+) (\S+)", ln)
        if m and num(m.group(2)) is not None:
            out.setdefault(m.group(1), []).append(num(m.group(2)))
    return out


def why_failed(t):
    for ln in t["lines"]:
        if ln.startswith("BENCHFAIL"):
            return ln[len("BENCHFAIL "):]
    for ln in reversed(t["lines"]):
        if re.search(r"not ok|Bail out|error|fail", ln, re.I):
            return ln.strip()
    return "rc=%s" % t.get("rc")


def fmt(v):
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return "%.0f" % v
    if a >= 100:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3g" % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="6.12.?")
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", default="0")
    ap.add_argument("--kernel-ours", default="ours")
    ap.add_argument("--kernel-upstream", default="upstream")
    ap.add_argument("--qemu", default="")
    ap.add_argument("--build-secs", type=int, default=None)
    ap.add_argument("--boot-secs", type=int, default=None)
    ap.add_argument("--total-secs", type=int, default=None)
    ap.add_argument("runs", nargs="*")
    a = ap.parse_args()

    better = {m[0]: m[2] for m in METRICS}
    vals = {"ours": {}, "upstream": {}}     # metric -> per-boot best
    raw = {"ours": {}, "upstream": {}}      # metric -> every measurement
    failures = []
    boots = {"ours": 0, "upstream": 0}
    notes = []
    boot_secs = {"ours": [], "upstream": []}
    details = {}
    loads = []
    for spec in a.runs:
        side, boot, rd = spec.split(":", 2)
        boots[side] += 1
        kern = a.kernel_ours if side == "ours" else a.kernel_upstream
        where = "boot %s of %s (%s)" % (boot, side, kern)
        con = parse_console(os.path.join(rd, "console.log"))
        qrc, secs = "?", None
        try:
            with open(os.path.join(rd, "qemu.rc")) as f:
                qrc, secs = f.read().split()[:2]
                boot_secs[side].append(int(secs))
        except (OSError, ValueError):
            pass
        if con["note"] and con["note"] not in notes:
            notes.append(con["note"])
        got = {}
        if side not in details:
            # What the workloads saw, from the first complete boot of a side.
            info = []
            for name in con["order"]:
                for ln in con["tests"][name]["lines"]:
                    if ln.startswith("BENCHINFO ") and re.search(
                            r"^BENCHINFO (slab |metadata:|advisor:|mixed |"
                            r"largetree: \d+ distinct|largetree: steady)", ln):
                        info.append("%s: %s" % (name, ln[len("BENCHINFO "):]))
            if info and con["done"]:
                details[side] = (boot, info)
        for name in con["order"]:
            t = con["tests"][name]
            if t["status"] is None:
                continue
            if t["status"] != "pass":
                failures.append("%s: %s %s (%s)" % (where, name, t["status"],
                                                   why_failed(t)))
                continue
            for k, v in metrics_of(name, t["lines"]).items():
                got.setdefault(k, []).extend(v)
        # Host contention only ever slows a TCG guest down: each boot counts
        # with its best repetition.
        for k, v in got.items():
            raw[side].setdefault(k, []).extend(v)
            best = max(v) if better.get(k) == "higher" else min(v)
            vals[side].setdefault(k, []).append(best)
        for row, plain, dom in DOMAIN_COSTS:
            pick = max if better.get(plain) == "higher" else min
            if got.get(plain) and got.get(dom) and pick(got[plain]):
                r = pick(got[dom]) / pick(got[plain])
                raw[side].setdefault(row, []).append(r)
                vals[side].setdefault(row, []).append(r)
        try:
            with open(os.path.join(rd, "host.load")) as f:
                loads.extend(float(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
        if con["open"]:
            failures.append("%s: %s never finished: the guest crashed or hung "
                            "there (qemu rc=%s; see %s/console.log)"
                            % (where, con["open"], qrc, rd))
        elif not con["done"]:
            failures.append("%s: the guest did not complete the plan (qemu rc=%s; "
                            "see %s/console.log)" % (where, qrc, rd))
        for s in con["splats"][:5]:
            failures.append("%s: kernel splat: %s" % (where, s))

    # Tests every boot must have run (to name a missing metric's test).
    table = []
    short = []
    for name, unit, better, test, goal, what in METRICS:
        # QUICK boots run no vms workload: no row rather than NO RESULT.
        if name in FULL_ONLY and a.quick == "1":
            continue
        o = vals["ours"].get(name, [])
        u = vals["upstream"].get(name, [])
        ro = raw["ours"].get(name, [])
        ru = raw["upstream"].get(name, [])
        mo = statistics.median(o) if o else None
        mu = statistics.median(u) if u else None
        ratio = (mo / mu) if (mo is not None and mu) else None
        if goal is None:
            verdict = ""
        elif ratio is None:
            verdict = "NO RESULT"
        elif (better == "higher" and ratio >= goal) or \
             (better == "lower" and ratio <= goal):
            verdict = "meets goal"
        else:
            verdict = "SHORT of goal"
        if goal is not None and verdict != "meets goal":
            short.append((name, ratio, goal, better, verdict))
        for side, lst in (("ours", o), ("upstream", u)):
            if name in OURS_ONLY and (side == "upstream" or
                                      a.kernel_ours != "ours"):
                continue
            if boots[side] and len(lst) < boots[side]:
                failures.append("%s: %s has %d of %d boots with a result"
                                % (side, name, len(lst), boots[side]))
        table.append({
            "name": name, "unit": unit, "better": better,
            "ours": mo, "upstream": mu, "ratio": ratio,
            "ours_min": min(ro) if ro else None,
            "ours_max": max(ro) if ro else None,
            "upstream_min": min(ru) if ru else None,
            "upstream_max": max(ru) if ru else None,
            "ours_boots": o, "upstream_boots": u,
            "ours_all": ro, "upstream_all": ru,
            "goal": (("<= " if better == "lower" else ">= ") + str(goal))
            if goal is not None else None,
            "verdict": verdict or None, "what": what,
            "reason": None,
        })
    # Keep failure lines unique but in order.
    seen = set()
    failures = [f for f in failures if not (f in seen or seen.add(f))]
    # A metric without a value says why.
    tests = {m[0]: m[3] for m in METRICS}
    for m in table:
        if m["name"] in OURS_ONLY and m["ours"] is not None:
            m["reason"] = "ours only (upstream has no estimate mode)"
        elif m["ours"] is None or m["upstream"] is None:
            why = [f for f in failures if (tests[m["name"]] + "#") in f or
                   (": " + tests[m["name"]] + " ") in f or "never finished" in f
                   or "did not complete" in f]
            sides = [s_ for s_ in ("ours", "upstream") if m[s_] is None]
            m["reason"] = "no result for %s%s" % (
                " and ".join(sides), ": " + "; ".join(why[:3]) if why else "")

    qemu = re.sub(r"^qemu: ", "", a.qemu) or "TCG, 2 vCPUs"
    validation = a.kernel_ours != "ours" or a.kernel_upstream != "upstream"
    rep = {
        "base": a.base,
        "qemu": qemu,
        "mode": qemu.split()[0] if qemu else "TCG",
        "vcpus": 2,
        "flavor": "release",
        "quick": a.quick == "1",
        "kernels": {"ours": a.kernel_ours, "upstream": a.kernel_upstream},
        "boots": boots,
        "order": "alternating, ours first (A B A B ...)",
        "sizes": notes,
        "durations_s": {"build": a.build_secs, "boots": a.boot_secs,
                        "total": a.total_secs,
                        "per_boot_ours": boot_secs["ours"],
                        "per_boot_upstream": boot_secs["upstream"]},
        "host_load": {"samples": len(loads),
                      "median": statistics.median(loads) if loads else None,
                      "max": max(loads) if loads else None},
        "metrics": table,
        "details": {k: v[1] for k, v in details.items()},
        "failures": failures,
        "ok": not failures,
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(rep, f, indent=1)
        f.write("\n")

    md = []
    md.append("# KSM benchmark: ours vs upstream %s" % a.base)
    md.append("")
    if validation:
        md.append("**Validation run**: the \"ours\" column is `%s`, the \"upstream\" "
                  "column is `%s`; ratios near 1.0 show the method's noise, they say "
                  "nothing about our KSM." % (a.kernel_ours, a.kernel_upstream))
        md.append("")
    md.append("- Base: Linux %s (Debian linux-source-6.12), release flavor, identical "
              "config for both kernels" % a.base)
    md.append("- QEMU: %s" % qemu)
    md.append("- Boots: %d of ours and %d of upstream, alternating (A B A B ...), "
              "identical workloads in each boot%s" % (
                  boots["ours"], boots["upstream"],
                  " (QUICK: smaller sizes)" if a.quick == "1" else ""))
    for n in notes:
        md.append("- Sizes: `%s`" % n)
    if a.total_secs is not None:
        md.append("- Duration: %ss total (builds %ss, boots %ss)" % (
            a.total_secs, a.build_secs, a.boot_secs))
    md.append("")
    if loads:
        md.append("- Host load average during the boots: median %.1f, max %.1f on %d "
                  "host CPUs%s" % (
                      statistics.median(loads), max(loads), os.cpu_count() or 0,
                      " (**contended**: other work competed with the guest; "
                      "expect more noise)" if statistics.median(loads) >
                      (os.cpu_count() or 2) + 0.5 else ""))
    md.append("")
    md.append("TCG times are not hardware times: the ratio ours/upstream of the "
              "medians, taken in the same run, is the result. A cell is the median over "
              "the boots of each boot's best repetition [min - max of every "
              "repetition]. Host contention only slows a TCG guest down, hence best "
              "of each boot.")
    md.append("")
    md.append("| metric | unit | better | ours | upstream | ratio | goal | verdict |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in table:
        def cell(side):
            if m[side] is None:
                return "n/a"
            return "%s [%s - %s]" % (fmt(m[side]), fmt(m[side + "_min"]),
                                     fmt(m[side + "_max"]))
        md.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            m["name"], m["unit"], m["better"], cell("ours"), cell("upstream"),
            ("%.2fx" % m["ratio"]) if m["ratio"] is not None else "n/a",
            m["goal"] + "x" if m["goal"] else "-", m["verdict"] or "-"))
    md.append("")
    if short:
        md.append("## Where ours falls short")
        md.append("")
        for name, ratio, goal, better, verdict in short:
            if ratio is None:
                r_ = [m["reason"] for m in table if m["name"] == name][0]
                md.append("- %s: no ratio, %s" % (name, r_ or "no result"))
            else:
                md.append("- %s: %.2fx upstream, the goal is %s %.2fx" % (
                    name, ratio, "at most" if better == "lower" else "at least", goal))
        md.append("")
    else:
        md.append("Every metric with a goal meets it.")
        md.append("")
    if failures:
        md.append("## Failures")
        md.append("")
        for f_ in failures:
            md.append("- " + f_)
        md.append("")
    if details:
        md.append("## What the workloads saw (first complete boot of each kernel)")
        md.append("")
        for side in ("ours", "upstream"):
            if side in details:
                md.append("%s, boot %s:" % (side, details[side][0]))
                md.append("")
                md.append("```")
                md.extend(details[side][1])
                md.append("```")
                md.append("")
    md.append("## What is measured")
    md.append("")
    for m in table:
        md.append("- `%s`: %s." % (m["name"], m["what"]))
    md.append("")
    md.append("ksmd CPU is utime+stime of /proc/<ksmd pid>/stat in the guest (clock "
              "ticks of 10 ms, scaled by the kernel to the precise runtime); wall times "
              "are CLOCK_MONOTONIC in the workload; slab sizes are active_objs x objsize "
              "of the /proc/slabinfo caches named ksm_* (slab merging is off in both "
              "configs). The large stable tree (largetree=[P D] in Sizes) holds P "
              "distinct pages: 120k in the full run (40k with QUICK), not the ~200k of "
              "the issue, because both copies of every distinct page are resident "
              "before they merge (2 P pages) in the 2 GiB guest.")
    md.append("")
    text = "\n".join(md)
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(text)
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
