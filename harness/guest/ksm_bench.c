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
 *   ksm_bench estimate MIB           estimate mode against merging (ours)
 *   ksm_bench thrash K MIB SECONDS   merged pages rewritten, restored, again
 *   ksm_bench sparse GIB MIB         MIB MiB in 2 MiB islands over GIB GiB
 *   ksm_bench scaling MIB MIB...     unique-scan CPU per page at each size
 *   ksm_bench vms N MIB SECONDS      N real QEMU guests of MIB MiB booting
 *                                    the kernel in /vm (full bench only)
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
#include "nested_vm.h"

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

static long page_size;
static long hz;
static struct ksm_knobs saved;
static pid_t kids[16];
static int kids_go[16];		/* thrash: the "go" pipe of each kid */
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
/* merge_domains before bench_domains() changed it, or -1. */
static long saved_domains = -1;

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
	saved_domains = ksm_read("merge_domains");
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
	/* The workloads after this one must not run isolated (needs run=2). */
	if (saved_domains >= 0 && ksm_settle(60))
		ksm_write("merge_domains", saved_domains);
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

/* A counter of /proc/vmstat, -1 if it has none. */
static long vmstat(const char *name)
{
	char line[128], key[64];
	long v, ret = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld", key, &v) == 2 && !strcmp(key, name))
			ret = v;
	fclose(f);
	return ret;
}

static uint64_t rnd64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Thrash: K processes with the same MIB MiB.  Once it is merged, every
 * 2 s each process writes its own data over a random 20% of its pages and
 * puts the common content back on the pages it wrote the round before (a
 * guest that frees and reuses pages: they keep becoming mergeable again
 * and being written again).  Over SECONDS: COW faults on KSM pages per
 * second (vmstat cow_ksm), ksmd CPU % and the average saving.
 */
static void bench_thrash(long k, long mib, long seconds)
{
	long n = mib * 1048576 / page_size, i, samples = 0;
	double t0, c0, sum = 0, c;
	long cow0, cow1;

	if (vmstat("cow_ksm") < 0)
		fail("no cow_ksm in /proc/vmstat");
	ksm_write("run", 0);
	knobs(1000, 20, 1);
	for (i = 0; i < k; i++) {
		int ready[2], go[2];
		pid_t pid;
		char ch = 0;

		if (pipe(ready) || pipe(go))
			fail("pipe");
		pid = fork();
		if (pid < 0)
			fail("fork");
		if (!pid) {
			char *p = map_pages(n);
			unsigned char *dirty = calloc(n, 1);
			uint64_t rng = 12345 + i, round;

			if (!dirty)
				_exit(2);
			close(go[1]);
			for (long j = 0; j < n; j++)
				fill_page(p + j * page_size, 80000000 + j);
			mergeable(p, n);
			if (write(ready[1], &ch, 1) != 1)
				_exit(4);
			/* the parent says go once everything is merged */
			if (read(go[0], &ch, 1) != 1)
				_exit(5);
			for (round = 1;; round++) {
				for (long j = 0; j < n; j++)
					if (dirty[j]) {
						fill_page(p + j * page_size,
							  80000000 + j);
						dirty[j] = 0;
					}
				for (long j = 0; j < n; j++)
					if (rnd64(&rng) % 5 == 0) {
						*(volatile uint64_t *)(p + j * page_size) =
							((uint64_t)getpid() << 32) + round;
						dirty[j] = 1;
					}
				usleep(2000000);
			}
		}
		close(ready[1]);
		close(go[0]);
		kids[nkids++] = pid;
		kids_go[nkids - 1] = go[1];
		if (read(ready[0], &ch, 1) != 1)
			fail("workload process %d died while setting up", pid);
		close(ready[0]);
	}
	ksm_write("run", 1);
	wait_merged(n, (k - 1) * n, 300);
	bench_info("thrash: %ld procs x %ld pages merged; each now rewrites 20%% every 2 s",
		   k, n);
	for (i = 0; i < nkids; i++)
		if (write(kids_go[i], "g", 1) != 1)
			fail("cannot start process %d", kids[i]);
	t0 = ksm_now();
	c0 = ksmd_cpu();
	cow0 = vmstat("cow_ksm");
	while (ksm_now() - t0 < seconds) {
		usleep(500000);
		sum += nmerged() + (ksm_read("ksm_zero_pages") > 0 ?
				    ksm_read("ksm_zero_pages") : 0);
		samples++;
	}
	c = ksmd_cpu() - c0;
	cow1 = vmstat("cow_ksm");
	t0 = ksm_now() - t0;
	bench_info("thrash: %.1f s: %ld cow_ksm faults, ksmd %.2f s CPU, average %.0f pages saved of %ld at the start",
		   t0, cow1 - cow0, c, sum / samples, (k - 1) * n);
	result("thrash_cow_faults", (cow1 - cow0) / t0, "faults/s");
	result("thrash_ksmd_cpu", 100.0 * c / t0, "%");
	result("thrash_saving", sum / samples * page_size / 1048576.0, "MiB");
	finish(1);
}

/*
 * Sparse: a GIB GiB MAP_NORESERVE mergeable mapping, with MIB MiB touched
 * in 2 MiB islands spread evenly over it (pairs of islands identical, so
 * there is merged memory to unmerge).  One full scan's time and ksmd CPU,
 * then the time of MADV_UNMERGEABLE over the whole mapping.
 */
static void bench_sparse(long gib, long mib)
{
	size_t len = (size_t)gib << 30, island = 2UL << 20;
	long nisl = mib / 2, per = island / page_size, i, j;
	size_t gap = len / nisl;
	double cpu, wall, t;
	char *p;

	ksm_write("run", 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap %ld GiB: %s", gib, strerror(errno));
	madvise(p, len, MADV_NOHUGEPAGE);
	for (i = 0; i < nisl; i++)
		for (j = 0; j < per; j++)
			fill_page(p + i * gap + j * page_size,
				  90000000 + (i / 2) * per + j);
	mergeable(p, len / page_size);
	knobs(set_pages_to_scan_max(), 0, 0);
	ksm_write("run", 1);
	wait_merged(nisl / 2 * per, nisl / 2 * per, 600);
	cpu = cpu_over_scans(1, 600, &wall);
	bench_info("sparse: %ld GiB mapping, %ld islands of 2 MiB (%ld MiB): one full scan %.3f s wall, %.3f s ksmd CPU",
		   gib, nisl, mib, wall, cpu);
	result("sparse_scan_cpu", cpu, "s/scan");
	ksm_write("run", 0);
	t = ksm_now();
	if (madvise(p, len, MADV_UNMERGEABLE))
		fail("MADV_UNMERGEABLE: %s", strerror(errno));
	t = ksm_now() - t;
	bench_info("sparse: MADV_UNMERGEABLE of %ld GiB: %.3f s", gib, t);
	result("sparse_unmerge_time", t, "s");
	munmap(p, len);
	finish(1);
}

/*
 * Scaling: ksmd CPU per page of a full scan of unique pages (smart_scan=0)
 * at each size in MIB..., and the growth from the smallest to the largest.
 */
static void bench_scaling(int nsizes, char **sizes)
{
	double first = 0, pp = 0, cpu, wall;

	for (int s = 0; s < nsizes; s++) {
		long mib = atol(sizes[s]), n = mib * 1048576 / page_size;

		ksm_write("run", 0);
		spawn(n, (2ULL << 30) + s * (1ULL << 28), 1, 0);
		knobs(n / 4 > 100 ? n / 4 : 100, 0, 0);
		ksm_write("run", 1);
		wait_scans_or_fail(2, 600);
		cpu = cpu_over_scans(2, 600, &wall);
		pp = cpu / 2 / n * 1e9;
		bench_info("scaling: %ld MiB unique: %.3f s CPU per full scan, %.0f ns per page",
			   mib, cpu / 2, pp);
		/* the report's rows name the sizes by rank, QUICK has others */
		if (!s || s == nsizes - 1)
			result(s ? "unique_scan_ns_per_page_largest" :
				   "unique_scan_ns_per_page_smallest", pp,
			       "ns/page");
		if (!s)
			first = pp;
		kill_kids();
		if (!ksm_settle(120))
			fail("pages left shared");
	}
	if (first > 0)
		result("unique_scan_growth", pp / first, "ratio");
	finish(1);
}

#define VM_LOGS	"/tmp/bench-vm-"	/* nested_vm.h: /tmp/bench-vm-<i>.log */

/* Saved MiB as the thrash rows count it: pages_sharing + ksm_zero_pages. */
static double vms_saved_mib(void)
{
	long zero = ksm_read("ksm_zero_pages");

	return (nmerged() + (zero > 0 ? zero : 0)) * (double)page_size /
	       1048576;
}

/*
 * N QEMU TCG guests of MIB MiB inside this guest, all booting the same
 * kernel; QEMU itself opts their RAM in (mem-merge=on, its default).
 * The saving 60 s after the launch and at the end: three full scans after
 * the last guest is up, but not before the 60 s sample (at most SECONDS
 * after the launch); and ksmd CPU over the run.  The knobs are
 * fixed, the same for every kernel: a fast scan, as on a VM host that
 * wants its saving soon after the guests start.
 */
static void bench_vms(long n, long mib, long seconds)
{
	double t0, c0, at60 = -1, t, final, c;
	char log[64];
	long scans_up = -1;
	int i, up;

	if (access("/vm/bzImage", R_OK))
		fail("no /vm/bzImage: the initramfs lacks harness/vms.sh's archive");
	ksm_write("run", 0);
	knobs(1000, 20, 1);
	ksm_write("run", 1);
	t0 = ksm_now();
	c0 = ksmd_cpu();
	for (i = 0; i < n; i++) {
		pid_t pid;

		nested_vm_log(log, sizeof(log), VM_LOGS, i);
		unlink(log);
		pid = fork();
		if (pid < 0)
			fail("fork");
		if (!pid) {
			int fd = open("/tmp/bench-vm.err",
				      O_WRONLY | O_CREAT | O_APPEND, 0644);

			/* QEMU's warnings (no epoll here) off the console */
			if (fd >= 0)
				dup2(fd, 2);
			nested_vm_exec(VM_LOGS, i, mib);
			_exit(127);
		}
		kids[nkids++] = pid;
	}
	bench_info("vms: %ld QEMU guests x %ld MiB launched; pages_to_scan=1000 sleep=20",
		   n, mib);
	for (;;) {
		usleep(500000);
		t = ksm_now() - t0;
		for (i = 0; i < nkids; i++)
			if (waitpid(kids[i], NULL, WNOHANG) == kids[i]) {
				kids[i] = kids[--nkids];
				fail("a QEMU guest exited after %.0f s (see /tmp/bench-vm-*.log)", t);
			}
		if (at60 < 0 && t >= 60) {
			at60 = vms_saved_mib();
			bench_info("vms: %.0f s: %.1f MiB saved, %d of %ld guests up",
				   t, at60, nested_vms_up(VM_LOGS, n), n);
		}
		/* Running guests keep changing: three full scans once all are up. */
		if (scans_up < 0 && nested_vms_up(VM_LOGS, n) == n) {
			scans_up = ksm_read("full_scans");
			bench_info("vms: all %ld guests up after %.0f s", n, t);
		}
		if (t >= seconds || (at60 >= 0 && scans_up >= 0 &&
				     ksm_read("full_scans") >= scans_up + 3))
			break;
	}
	final = vms_saved_mib();
	c = ksmd_cpu() - c0;
	up = nested_vms_up(VM_LOGS, n);
	bench_info("vms: %.0f s: %.1f MiB saved, %d of %ld guests up, ksmd %.1f s CPU",
		   t, final, up, n, c);
	if (up < n)
		fail("only %d of %ld nested guests booted within %ld s", up, n,
		     seconds);
	result("vms_saving_60s", at60, "MiB");
	result("vms_saving_final", final, "MiB");
	result("vms_ksmd_cpu", 100.0 * c / t, "%");
	finish(1);
}

/* XXH64 (the public algorithm), for the floor: what any dedup must do. */
#define XP1 0x9E3779B185EBCA87ULL
#define XP2 0xC2B2AE3D27D4EB4FULL
#define XP3 0x165667B19E3779F9ULL
#define XP4 0x85EBCA77C2B2AE63ULL
#define XP5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t xround(uint64_t acc, uint64_t in)
{
	return rotl64(acc + in * XP2, 31) * XP1;
}

static inline uint64_t xmerge(uint64_t h, uint64_t v)
{
	return (h ^ xround(0, v)) * XP1 + XP4;
}

/* XXH64 of a page (a multiple of 32 bytes), seed 0. */
static uint64_t xxh64_page(const void *buf, size_t len)
{
	const uint64_t *w = buf;
	uint64_t v1 = XP1 + XP2, v2 = XP2, v3 = 0, v4 = -XP1, h;

	for (size_t i = 0; i < len / 8; i += 4) {
		v1 = xround(v1, w[i]);
		v2 = xround(v2, w[i + 1]);
		v3 = xround(v3, w[i + 2]);
		v4 = xround(v4, w[i + 3]);
	}
	h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
	h = xmerge(xmerge(xmerge(xmerge(h, v1), v2), v3), v4);
	h += len;
	h ^= h >> 33;
	h *= XP2;
	h ^= h >> 29;
	h *= XP3;
	return h ^ (h >> 32);
}

/*
 * The floor of the merge workload: K copies of N pages, each page hashed
 * once and each duplicate compared once with its first copy.  ns per
 * merged page ((K - 1) N of them).
 */
static double merge_floor_ns(long k, long n)
{
	char *a = map_pages(n), *b = map_pages(n);
	volatile uint64_t sink = 0;
	double t;
	long i, r;

	for (i = 0; i < n; i++) {
		fill_page(a + i * page_size, 1000 + i);
		fill_page(b + i * page_size, 1000 + i);
	}
	t = ksm_now();
	for (i = 0; i < n; i++)
		sink += xxh64_page(a + i * page_size, page_size);
	for (r = 1; r < k; r++)
		for (i = 0; i < n; i++) {
			sink += xxh64_page(b + i * page_size, page_size);
			sink += !memcmp(a + i * page_size, b + i * page_size,
					page_size);
		}
	t = ksm_now() - t;
	munmap(a, n * page_size);
	munmap(b, n * page_size);
	(void)sink;
	return t / ((k - 1) * n) * 1e9;
}

#define SERIES_MAX	4096

/*
 * wait_merged() that also keeps the saving over time, printed after the
 * measurement (a console line per sample would cost the guest CPU while
 * it is being timed): the "saved MiB over time" chart of make bench.
 */
static double wait_merged_series(long shared, long sharing, double timeout_s)
{
	static float st[SERIES_MAX], sv[SERIES_MAX];
	double t0 = ksm_now(), t, last = -1;
	int ns = 0;

	while (ksm_read("pages_shared") < shared || nmerged() < sharing) {
		t = ksm_now() - t0;
		if (t > timeout_s)
			fail("not merged within %.0f s (want shared>=%ld sharing>=%ld)",
			     timeout_s, shared, sharing);
		/* poll as wait_merged() does; keep a sample every 20 ms */
		if (ns < SERIES_MAX && t - last >= 0.02) {
			last = t;
			st[ns] = t;
			sv[ns++] = nmerged() * (double)page_size / 1048576;
		}
		usleep(2000);
	}
	t = ksm_now() - t0;
	for (int i = 0; i < ns; i++)
		bench_info("series merge t=%.3f saved_mib=%.2f", st[i], sv[i]);
	bench_info("series merge t=%.3f saved_mib=%.2f", t,
		   nmerged() * (double)page_size / 1048576);
	return t;
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
	t = wait_merged_series(n, (k - 1) * n, 180);
	c = ksmd_cpu() - c0;
	bench_info("merge %ld procs x %ld MiB (%ld pages each), pages_to_scan=%ld sleep=0: %.3f s, ksmd %.2f s CPU",
		   k, mib, n, pts, t, c);
	result("merge_throughput", k * mib / t, "MiB/s");
	result("merge_ksmd_cpu_per_mib", c / (k * mib) * 1000, "ms/MiB");
	if (!*metric_suffix) {
		/* merged: the workload's pages are no longer resident twice */
		double floor = merge_floor_ns(k, n);

		bench_info("floor: hash every page, compare every duplicate: %.0f ns per merged page; ksmd %.0f ns",
			   floor, c / ((k - 1) * n) * 1e9);
		result("floor_ratio", c / ((k - 1) * n) * 1e9 / floor, "ratio");
	}
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
	if (argc == 5 && !strcmp(argv[1], "thrash"))
		bench_thrash(atol(argv[2]), atol(argv[3]), atol(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "sparse"))
		bench_sparse(atol(argv[2]), atol(argv[3]));
	if (argc >= 4 && !strcmp(argv[1], "scaling"))
		bench_scaling(argc - 2, argv + 2);
	if (argc == 5 && !strcmp(argv[1], "vms"))
		bench_vms(atol(argv[2]), atol(argv[3]), atol(argv[4]));
	fprintf(stderr, "usage: ksm_bench merge K MIB | unique MIB SMART WARM SCANS [R] | largetree P D [R] | mixed MIB | advisor MIB SECONDS | estimate MIB | thrash K MIB SECONDS | sparse GIB MIB | scaling MIB MIB... | vms N MIB SECONDS\n");
	ksm_restore(&saved);
	return 2;
}
