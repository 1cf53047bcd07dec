// SPDX-License-Identifier: GPL-2.0
/*
 * `make bench` in-guest workloads. One workload per invocation:
 *
 *   ksm_bench merge K MIB            K processes x MIB MiB of identical content
 *   ksm_bench unique MIB SMART WARM SCANS [R]
 *                                    ksmd CPU per full scan of unique pages
 *                                    (R consecutive windows of SCANS scans)
 *   ksm_bench largetree P D [R]      P distinct pages merged (stable tree),
 *                                    then D more duplicates of them (R times)
 *   ksm_bench mixed MIB              duplicates, uniques, zero and volatile
 *                                    pages after a fixed budget of full scans
 *   ksm_bench advisor MIB SECONDS    advisor_mode=scan-time over a candidate
 *                                    set that grows, then shrinks
 *
 * Results are lines "BENCH <metric> <value> <unit>"; context lines start with
 * "BENCHINFO". The exit status is 0 when the workload completed, 1 when it
 * failed (a timeout waiting for KSM, a failed syscall, ...), 2 on bad usage,
 * 4 (KSFT_SKIP) without arguments. Every knob that
 * is changed is restored and nothing is left merged.
 *
 * ksmd CPU comes from /proc/<ksmd pid>/stat (utime + stime); wall times are
 * CLOCK_MONOTONIC taken here. Workload memory is MADV_NOHUGEPAGE so that THP
 * splitting does not blur what is measured.
 */
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/wait.h>
#include "ksm_common.h"

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

static long page_size;
static long hz;
static struct ksm_knobs saved;
static pid_t kids[16];
static int nkids;

static void __attribute__((format(printf, 1, 2)))
bench_info(const char *fmt, ...)
{
	va_list ap;

	printf("BENCHINFO ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* KSM_BENCH_DOMAINS=2: the same workload, its metrics named *_domains2. */
static const char *metric_suffix = "";

static void result(const char *metric, double val, const char *unit)
{
	printf("BENCH %s%s %.6g %s\n", metric, metric_suffix, val, unit);
	fflush(stdout);
}

#ifndef PR_SET_MEMORY_MERGE_DOMAIN
#define PR_SET_MEMORY_MERGE_DOMAIN	0x6b736d01
#define PR_MEMORY_MERGE_DOMAIN_NEW	(~0UL)
#endif

/*
 * Run the workload with merge_domains=2, its processes in one fresh domain
 * (they are forked by us after we took it), to show what domains cost.  A
 * kernel without domains runs it as it is, under the same metric names.
 */
static void bench_domains(void)
{
	const char *want = getenv("KSM_BENCH_DOMAINS");

	if (!want || strcmp(want, "2"))
		return;
	metric_suffix = "_domains2";
	if (ksm_read("merge_domains") < 0) {
		bench_info("domains: none in this kernel, workload run as is");
		return;
	}
	if (ksm_write("merge_domains", 2) ||
	    prctl(PR_SET_MEMORY_MERGE_DOMAIN, PR_MEMORY_MERGE_DOMAIN_NEW,
		  0, 0, 0) <= 0) {
		printf("BENCHFAIL cannot set up merge domains: %s\n",
		       strerror(errno));
		exit(1);
	}
	bench_info("domains: merge_domains=2, workload in domain %d",
		   prctl(0x6b736d02, 0, 0, 0, 0));
}

static void kill_kids(void)
{
	int i;

	for (i = 0; i < nkids; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	nkids = 0;
}

static void knobs_reset_extra(void);

static void __attribute__((noreturn)) finish(int ok)
{
	kill_kids();
	knobs_reset_extra();
	ksm_restore(&saved);
	exit(ok ? 0 : 1);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	printf("BENCHFAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" (shared=%ld sharing=%ld unshared=%ld volatile=%ld full_scans=%ld)\n",
	       ksm_read("pages_shared"), ksm_read("pages_sharing"),
	       ksm_read("pages_unshared"), ksm_read("pages_volatile"),
	       ksm_read("full_scans"));
	fflush(stdout);
	finish(0);
}

/* ksmd CPU time (utime + stime) in seconds, from /proc/<pid>/stat. */
static double ksmd_cpu(void)
{
	static char path[300];
	char buf[512], *s;
	unsigned long ut = 0, st = 0;
	FILE *f;

	if (!path[0]) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char p[300], comm[64] = "";

			if (e->d_name[0] < '0' || e->d_name[0] > '9')
				continue;
			snprintf(p, sizeof(p), "/proc/%s/comm", e->d_name);
			f = fopen(p, "r");
			if (!f)
				continue;
			if (fgets(comm, sizeof(comm), f) && !strcmp(comm, "ksmd\n"))
				snprintf(path, sizeof(path), "/proc/%s/stat",
					 e->d_name);
			fclose(f);
		}
		if (d)
			closedir(d);
		if (!path[0])
			fail("no ksmd thread found");
	}
	f = fopen(path, "r");
	if (!f)
		fail("cannot open %s", path);
	if (!fgets(buf, sizeof(buf), f) || !(s = strrchr(buf, ')')) ||
	    sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) != 2) {
		fclose(f);
		fail("cannot parse %s", path);
	}
	fclose(f);
	return (double)(ut + st) / hz;
}

/* Page content for a key: distinct keys give pages that differ in word 0. */
static void fill_page(char *p, uint64_t key)
{
	uint64_t *w = (uint64_t *)p, k = key * 0x9e3779b97f4a7c15ULL + 1;
	size_t i;

	for (i = 0; i < page_size / sizeof(*w); i++)
		w[i] = k + i * 0xbf58476d1ce4e5b9ULL;
}

static char *map_pages(long npages)
{
	char *p = mmap(NULL, npages * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap %ld pages: %s", npages, strerror(errno));
	madvise(p, npages * page_size, MADV_NOHUGEPAGE);
	return p;
}

static void mergeable(char *p, long npages)
{
	if (madvise(p, npages * page_size, MADV_MERGEABLE))
		fail("MADV_MERGEABLE: %s", strerror(errno));
}

/* Advisor knobs, not covered by ksm_save()/ksm_restore(). */
static long saved_target_scan_time = -1, saved_min_pages = -1;

static void knobs_reset_extra(void)
{
	if (saved_target_scan_time > 0 || saved_min_pages > 0)
		ksm_write_str("advisor_mode", "none");
	if (saved_target_scan_time > 0)
		ksm_write("advisor_target_scan_time", saved_target_scan_time);
	if (saved_min_pages > 0)
		ksm_write("advisor_min_pages_to_scan", saved_min_pages);
}

/*
 * pages_to_scan "at its maximum": 100000, more than a full scan of any of
 * our workloads in one batch, so ksmd never sleeps mid-scan (larger values
 * only make ksmd hold its mutex over several full scans). Smaller fallbacks
 * for a kernel that caps the knob.
 */
static long set_pages_to_scan_max(void)
{
	static const long cand[] = { 100000, 65536, 32768, 10000, 5000 };
	size_t i;

	for (i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (!ksm_write("pages_to_scan", cand[i]))
			return cand[i];
	fail("no large pages_to_scan value accepted");
}

static void knobs(long pages_to_scan, long sleep_ms, long smart)
{
	ksm_write_str("advisor_mode", "none");
	if (ksm_write("pages_to_scan", pages_to_scan))
		fail("pages_to_scan=%ld refused", pages_to_scan);
	if (ksm_write("sleep_millisecs", sleep_ms))
		fail("sleep_millisecs=%ld refused", sleep_ms);
	if (smart >= 0 && ksm_write("smart_scan", smart))
		fail("smart_scan=%ld refused", smart);
}

/*
 * Fork a child that maps @npages, fills page i with key base + i * step (or
 * zeroes when step < 0), opts in, reports ready and sleeps until killed. With
 * @volatile_pages, the child keeps rewriting that many pages at the end of
 * its range with changing content.
 */
static void spawn(long npages, uint64_t base, long step, long volatile_pages)
{
	int fds[2];
	pid_t pid;
	char c = 0;

	if (pipe(fds))
		fail("pipe");
	pid = fork();
	if (pid < 0)
		fail("fork");
	if (!pid) {
		long i, round = 0;
		char *p = mmap(NULL, npages * page_size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			_exit(2);
		madvise(p, npages * page_size, MADV_NOHUGEPAGE);
		for (i = 0; i < npages; i++) {
			if (step < 0)
				memset(p + i * page_size, 0, page_size);
			else
				fill_page(p + i * page_size, base + i * step);
		}
		if (madvise(p, npages * page_size, MADV_MERGEABLE))
			_exit(3);
		if (write(fds[1], &c, 1) != 1)
			_exit(4);
		if (!volatile_pages)
			for (;;)
				pause();
		for (;; round++) {
			for (i = npages - volatile_pages; i < npages; i++)
				*(volatile uint64_t *)(p + i * page_size) =
					((uint64_t)getpid() << 32) + round;
			usleep(5000);
		}
	}
	close(fds[1]);
	kids[nkids++] = pid;
	if (read(fds[0], &c, 1) != 1)
		fail("workload process %d died while setting up", pid);
	close(fds[0]);
}

static long nmerged(void)
{
	return ksm_read("pages_sharing");
}

/* Wait until pages_shared >= @shared and pages_sharing >= @sharing. */
static double wait_merged(long shared, long sharing, double timeout_s)
{
	double t0 = ksm_now();

	while (ksm_read("pages_shared") < shared || nmerged() < sharing) {
		if (ksm_now() - t0 > timeout_s)
			fail("not merged within %.0f s (want shared>=%ld sharing>=%ld)",
			     timeout_s, shared, sharing);
		usleep(2000);
	}
	return ksm_now() - t0;
}

/* Wait for @n more full scans; returns the ksmd CPU they took. */
static double cpu_over_scans(long n, double timeout_s, double *wall)
{
	long f0 = ksm_read("full_scans"), f;
	double t0 = ksm_now(), c0;

	/* Start on a scan boundary. */
	while ((f = ksm_read("full_scans")) == f0) {
		if (ksm_now() - t0 > timeout_s)
			fail("no full scan completed within %.0f s", timeout_s);
		usleep(1000);
	}
	c0 = ksmd_cpu();
	t0 = ksm_now();
	while (ksm_read("full_scans") < f + n) {
		if (ksm_now() - t0 > timeout_s)
			fail("%ld full scans not done within %.0f s", n, timeout_s);
		usleep(1000);
	}
	*wall = ksm_now() - t0;
	return ksmd_cpu() - c0;
}

static void wait_scans_or_fail(long n, double timeout_s)
{
	if (!ksm_wait_scans(n, timeout_s))
		fail("%ld full scans not done within %.0f s", n, timeout_s);
}

/* Slab bytes held by caches whose name starts with "ksm_". */
static long ksm_slab_bytes(void)
{
	char line[512], name[128];
	long active, total, objsize, sum = 0;
	FILE *f = fopen("/proc/slabinfo", "r");

	if (!f)
		fail("no /proc/slabinfo");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%127s %ld %ld %ld", name, &active, &total,
			   &objsize) != 4 || strncmp(name, "ksm_", 4))
			continue;
		bench_info("slab %s active_objs=%ld objsize=%ld bytes=%ld",
			   name, active, objsize, active * objsize);
		sum += active * objsize;
	}
	fclose(f);
	return sum;
}

static long tracked_pages(void)
{
	return ksm_read("pages_shared") + ksm_read("pages_sharing") +
	       ksm_read("pages_unshared") + ksm_read("pages_volatile");
}

/* K processes x MIB MiB of identical content, merged flat out. */
static void bench_merge(long k, long mib)
{
	long n = mib * 1048576 / page_size, pts, i;
	double t, c0, c;

	ksm_write("run", 0);
	for (i = 0; i < k; i++)
		spawn(n, 1000, 1, 0);
	pts = set_pages_to_scan_max();
	knobs(pts, 0, -1);
	c0 = ksmd_cpu();
	ksm_write("run", 1);
	t = wait_merged(n, (k - 1) * n, 180);
	c = ksmd_cpu() - c0;
	bench_info("merge %ld procs x %ld MiB (%ld pages each), pages_to_scan=%ld sleep=0: %.3f s, ksmd %.2f s CPU",
		   k, mib, n, pts, t, c);
	result("merge_throughput", k * mib / t, "MiB/s");
	result("merge_ksmd_cpu_per_mib", c / (k * mib) * 1000, "ms/MiB");
	finish(1);
}

/* ksmd CPU per full scan of MIB MiB of unique pages. */
static void bench_unique(long mib, long smart, long warm, long scans, long reps)
{
	long n = mib * 1048576 / page_size, r;
	double cpu, wall;

	ksm_write("run", 0);
	spawn(n, 1u << 30, 1, 0);
	knobs(n / 4 > 100 ? n / 4 : 100, 0, smart);
	ksm_write("run", 1);
	wait_scans_or_fail(warm, 180);
	for (r = 0; r < reps; r++) {
		cpu = cpu_over_scans(scans, 180, &wall);
		bench_info("unique %ld MiB smart_scan=%ld: %ld scans after %ld warm-up + %ld windows: %.2f s CPU in %.2f s wall, unshared=%ld",
			   mib, smart, scans, warm, r, cpu, wall,
			   ksm_read("pages_unshared"));
		if (nmerged())
			fail("unique pages were merged (%ld sharing)", nmerged());
		result(smart ? "unique_scan_cpu_smart" : "unique_scan_cpu",
		       cpu / scans, "s/scan");
	}
	finish(1);
}

/*
 * P distinct pages, twice (two processes): P stable tree entries. Then D
 * pages duplicating existing entries appear: ksmd CPU per merged page.
 */
static void bench_largetree(long p, long d, long reps)
{
	long pts, i, k, stride = 7919;
	double t, cpu, wall, c0, base;
	char *r;

	ksm_write("run", 0);
	/*
	 * Two copies of P distinct pages, both present from the start: 2 P
	 * resident pages before they merge, hence P is sized to fit the guest.
	 * (Adding the duplicates later, a part at a time, would fit more, but
	 * then smart_scan's skipping of long-unique pages decides when they
	 * merge, not the stable tree.)
	 */
	spawn(p, 5000000, 1, 0);
	spawn(p, 5000000, 1, 0);
	pts = set_pages_to_scan_max();
	knobs(pts, 0, -1);
	ksm_write("run", 1);
	t = wait_merged(p, p, 300);
	bench_info("largetree: %ld distinct pages x2 merged in %.1f s", p, t);
	/* Baseline: a full scan of the merged set without new work. */
	base = cpu_over_scans(1, 180, &wall);
	bench_info("largetree: steady full scan of %ld merged pages: %.3f s CPU, %.3f s wall",
		   2 * p, base, wall);
	/*
	 * Round k: a fresh region of D pages duplicating other stable
	 * contents. Earlier rounds' regions stay merged (no unmerge: its
	 * counters catch up only lazily), so round k is done when
	 * pages_sharing reaches P + (k + 1) D.
	 */
	r = map_pages(d * reps);
	for (k = 0; k < reps; k++) {
		char *rk = r + k * d * page_size;

		for (i = 0; i < d; i++)
			fill_page(rk + i * page_size,
				  5000000 + (i * stride + k * 104729) % p);
		c0 = ksmd_cpu();
		mergeable(rk, d);
		t = wait_merged(p, p + (k + 1) * d, 180);
		cpu = ksmd_cpu() - c0;
		bench_info("largetree: round %ld: %ld new duplicates of stable pages merged in %.2f s, ksmd %.3f s CPU (steady scan alone %.3f s)",
			   k, d, t, cpu, base);
		result("large_tree_merge_cpu", cpu / d * 1e6, "us/page");
	}
	/* Steady state: everything merged, nothing volatile. */
	wait_scans_or_fail(1, 180);
	{
		/*
		 * Per page of the workload's mergeable memory (2 P + R D), the
		 * same denominator for both kernels whatever their counters
		 * say; the counters' sum is logged beside it.
		 */
		long bytes = ksm_slab_bytes(), tracked = 2 * p + reps * d;

		bench_info("metadata: %ld slab bytes, %ld mergeable pages in the workload; counters: shared+sharing+unshared+volatile = %ld (shared %ld sharing %ld unshared %ld volatile %ld)",
			   bytes, tracked, tracked_pages(),
			   ksm_read("pages_shared"), ksm_read("pages_sharing"),
			   ksm_read("pages_unshared"), ksm_read("pages_volatile"));
		if (bytes <= 0)
			fail("no ksm_* slab caches in /proc/slabinfo");
		result("metadata_bytes_per_page", (double)bytes / tracked, "B/page");
	}
	munmap(r, d * reps * page_size);
	finish(1);
}

/*
 * Two processes, each MIB MiB: 50% duplicates (same in both), 20% unique,
 * 15% zero, 15% volatile (rewritten every few ms). Budget: 2 full scans at
 * pages_to_scan = a quarter of the set, sleep 0. Outcome: pages saved.
 */
static void bench_mixed(long mib)
{
	long n = mib * 1048576 / page_size, ndup = n / 2, nuni = n / 5;
	long nzero = n * 15 / 100, nvol = n - ndup - nuni - nzero, i, saved_pages;
	long budget = 2;
	double t0, c0;

	ksm_write("run", 0);
	for (i = 0; i < 2; i++) {
		spawn(ndup, 9000000, 1, 0);
		spawn(nuni, 20000000 + i * 1000000, 1, 0);
		spawn(nzero, 0, -1, 0);
		spawn(nvol, 30000000 + i * 1000000, 1, nvol);
	}
	knobs(2 * n / 4, 0, 1);
	ksm_write("run", 1);
	t0 = ksm_now();
	c0 = ksmd_cpu();
	wait_scans_or_fail(budget, 180);
	ksm_write("run", 0);
	saved_pages = ksm_read("pages_sharing") + (ksm_read("ksm_zero_pages") > 0 ?
						   ksm_read("ksm_zero_pages") : 0);
	bench_info("mixed 2 x %ld pages (dup %ld, unique %ld, zero %ld, volatile %ld): after %ld full scans (%.2f s, ksmd %.2f s CPU) saved %ld pages (ideal %ld); shared=%ld sharing=%ld zero=%ld volatile=%ld",
		   n, ndup, nuni, nzero, nvol, budget, ksm_now() - t0,
		   ksmd_cpu() - c0, saved_pages, ndup + 2 * nzero - 1,
		   ksm_read("pages_shared"), ksm_read("pages_sharing"),
		   ksm_read("ksm_zero_pages"), ksm_read("pages_volatile"));
	result("dedup_outcome", saved_pages, "pages");
	finish(1);
}

/*
 * Estimate mode (ours only): two processes of MIB MiB each, half of it the
 * same in both, a fifth unique, the rest zero (use_zero_pages=1), scanned
 * SCANS full scans with estimate=1, then, from the same start (run=2),
 * merged for as many full scans.  Reports the estimate over what merging
 * achieved, and ksmd CPU per full scan in each mode.
 */
static void bench_estimate(long mib)
{
	long n = mib * 1048576 / page_size, ndup = n / 2, nuni = n / 5;
	long nzero = n - ndup - nuni, i, scans = 3, est, got;
	double ce, cm, wall;

	if (ksm_read("estimate") < 0) {
		bench_info("no estimate mode in this kernel: nothing to measure");
		finish(1);
	}
	ksm_write("run", 0);
	ksm_write("use_zero_pages", 1);
	for (i = 0; i < 2; i++) {
		spawn(ndup, 60000000, 1, 0);
		spawn(nuni, 70000000 + i * 1000000, 1, 0);
		spawn(nzero, 0, -1, 0);
	}
	knobs(2 * n / 4, 0, 1);
	if (ksm_write("estimate", 1))
		fail("estimate=1 refused");
	ksm_write("run", 1);
	/* From a scan boundary, as merging below starts from run=2. */
	ce = cpu_over_scans(scans, 300, &wall);
	est = ksm_read("estimate_pages_sharing") +
	      ksm_read("estimate_zero_pages");
	bench_info("estimate: %ld full scans in %.2f s, ksmd %.2f s CPU: sharing %ld zero %ld profit %ld",
		   scans, wall, ce, ksm_read("estimate_pages_sharing"),
		   ksm_read("estimate_zero_pages"), ksm_read("estimate_profit"));
	if (ksm_read("pages_shared") || ksm_read("ksm_zero_pages") > 0)
		fail("estimate mode merged pages");
	if (ksm_write("estimate", 0) || !ksm_settle(120))
		fail("cannot switch from estimate to merging");
	ksm_write("run", 1);
	cm = cpu_over_scans(scans, 300, &wall);
	got = ksm_read("pages_sharing") + ksm_read("ksm_zero_pages");
	bench_info("merge: %ld full scans in %.2f s, ksmd %.2f s CPU: sharing %ld zero %ld (ideal %ld)",
		   scans, wall, cm, ksm_read("pages_sharing"),
		   ksm_read("ksm_zero_pages"), ndup + 2 * nzero);
	ksm_write("run", 0);
	if (got <= 0)
		fail("nothing merged");
	result("estimate_accuracy", (double)est / got, "ratio");
	result("estimate_scan_cpu", ce / scans, "s/scan");
	result("estimate_cpu_vs_merge", cm > 0 ? ce / cm : 0, "ratio");
	finish(1);
}

/*
 * advisor_mode=scan-time: the candidate set grows in steps to MIB MiB over
 * SECONDS/2, then shrinks back over SECONDS/2. ksmd CPU % over the period.
 */
static void bench_advisor(long mib, long seconds)
{
	long n = mib * 1048576 / page_size, steps = 8, chunk = n / steps, i;
	double t0, c0, c, step_s = seconds / 2.0 / steps;
	char *r;

	ksm_write("run", 0);
	saved_target_scan_time = ksm_read("advisor_target_scan_time");
	saved_min_pages = ksm_read("advisor_min_pages_to_scan");
	if (saved_target_scan_time <= 0 || saved_min_pages <= 0)
		fail("no advisor_target_scan_time or advisor_min_pages_to_scan");
	knobs(100, 20, -1);
	if (ksm_write("advisor_target_scan_time", 2))
		fail("advisor_target_scan_time=2 refused");
	if (ksm_write("advisor_min_pages_to_scan", 100))
		fail("advisor_min_pages_to_scan=100 refused");
	if (ksm_write_str("advisor_mode", "scan-time"))
		fail("advisor_mode=scan-time refused");
	r = map_pages(n);
	for (i = 0; i < n; i++)	/* half pairs of duplicates, half unique */
		fill_page(r + i * page_size, i < n / 2 ? 40000000 + i / 2 :
			  50000000 + i);
	ksm_write("run", 1);
	t0 = ksm_now();
	c0 = ksmd_cpu();
	for (i = 0; i < steps; i++) {
		mergeable(r + i * chunk * page_size, chunk);
		usleep(step_s * 1e6);
	}
	bench_info("advisor: grown to %ld pages, pages_to_scan now %ld, full_scans %ld, sharing %ld",
		   steps * chunk, ksm_read("pages_to_scan"),
		   ksm_read("full_scans"), nmerged());
	for (i = steps - 1; i >= 0; i--) {
		if (madvise(r + i * chunk * page_size, chunk * page_size,
			    MADV_UNMERGEABLE))
			fail("MADV_UNMERGEABLE: %s", strerror(errno));
		usleep(step_s * 1e6);
	}
	c = ksmd_cpu() - c0;
	bench_info("advisor: %ld MiB grown and shrunk in %.1f s, ksmd %.2f s CPU, pages_to_scan at end %ld",
		   mib, ksm_now() - t0, c, ksm_read("pages_to_scan"));
	result("advisor_steady_cpu", 100.0 * c / (ksm_now() - t0), "%");
	munmap(r, n * page_size);
	finish(1);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		/* Run with no arguments (a plan looping over /tests/ksm_*). */
		printf("ksm_bench: a benchmark workload, not a test: skipped\n");
		return 4;
	}
	page_size = sysconf(_SC_PAGESIZE);
	hz = sysconf(_SC_CLK_TCK);
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksm_save(&saved);
	if (saved.run < 0) {
		printf("BENCHFAIL no KSM in this kernel\n");
		return 1;
	}
	if (!ksm_settle(120)) {
		printf("BENCHFAIL KSM pages still shared before the workload\n");
		return 1;
	}
	bench_domains();
	if (argc == 4 && !strcmp(argv[1], "merge"))
		bench_merge(atol(argv[2]), atol(argv[3]));
	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "unique"))
		bench_unique(atol(argv[2]), atol(argv[3]), atol(argv[4]),
			     atol(argv[5]), argc == 7 ? atol(argv[6]) : 1);
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "largetree"))
		bench_largetree(atol(argv[2]), atol(argv[3]),
				argc == 5 ? atol(argv[4]) : 1);
	if (argc == 3 && !strcmp(argv[1], "mixed"))
		bench_mixed(atol(argv[2]));
	if (argc == 4 && !strcmp(argv[1], "advisor"))
		bench_advisor(atol(argv[2]), atol(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "estimate"))
		bench_estimate(atol(argv[2]));
	fprintf(stderr, "usage: ksm_bench merge K MIB | unique MIB SMART WARM SCANS [R] | largetree P D [R] | mixed MIB | advisor MIB SECONDS | estimate MIB\n");
	ksm_restore(&saved);
	return 2;
}
