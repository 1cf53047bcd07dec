// SPDX-License-Identifier: GPL-2.0
/*
 * `make run` demonstration: several processes hold identical, unique and
 * zero memory and opt in with prctl(PR_SET_MEMORY_MERGE). Once a second we
 * print what KSM has merged, how much memory that saves and what ksmd costs,
 * then a summary. Exits 0 when the expected saving was reached.
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include "ksm_common.h"

#define NPROC		4
#define DUP_MIB		16	/* identical in every process */
#define UNIQUE_MIB	4	/* different in every page */
#define ZERO_MIB	4	/* all zero */
#define MAX_SECONDS	300

static long page_size;

static void fill(char *p, size_t len, int proc, int unique)
{
	size_t off;

	for (off = 0; off < len; off += page_size) {
		uint64_t *w = (uint64_t *)(p + off);
		size_t i;

		for (i = 0; i < page_size / sizeof(*w); i++)
			w[i] = unique ? ((uint64_t)proc << 48) ^ (off << 8) ^ i :
					(off / page_size) * 0x9e3779b97f4a7c15ULL + i;
	}
}

/* A worker: map, fill, opt in, then wait to be killed. */
static void worker(int proc, int ready_fd)
{
	size_t dup = (size_t)DUP_MIB << 20, uniq = (size_t)UNIQUE_MIB << 20;
	size_t zero = (size_t)ZERO_MIB << 20;
	char *p = mmap(NULL, dup + uniq + zero, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(1);
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		_exit(2);
	/*
	 * Small pages for the zero part: a zero-filled THP that KSM splits
	 * has its zero subpages remapped to the shared zero page by the THP
	 * code itself, which ksm_zero_pages does not count.
	 */
	madvise(p + dup + uniq, zero, MADV_NOHUGEPAGE);
	fill(p, dup, proc, 0);
	fill(p + dup, uniq, proc, 1);
	memset(p + dup + uniq, 0, zero);
	if (write(ready_fd, "x", 1) != 1)
		_exit(3);
	for (;;)
		pause();
}

static long ksmd_ticks(void)
{
	static char path[300];
	char buf[512], *s;
	long ut = 0, st = 0;
	FILE *f;

	if (!path[0]) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char p[300], comm[64] = "";

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
	}
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f)) {
		s = strrchr(buf, ')');
		if (s)
			sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld",
			       &ut, &st);
	}
	fclose(f);
	return ut + st;
}

int main(void)
{
	long hz = sysconf(_SC_CLK_TCK), t0_ticks, last_ticks, saved_pages;
	long dup_saving = ((long)NPROC - 1) * (DUP_MIB << 20) / sysconf(_SC_PAGESIZE);
	long expect = dup_saving + (long)NPROC * (ZERO_MIB << 20) / sysconf(_SC_PAGESIZE);
	long prev_saved = -1, scans_at_change = 0;
	double t0, last, reached = -1, settled = -1;
	struct ksm_knobs saved;
	pid_t pids[NPROC];
	int fds[2], i, ok;
	char c;

	page_size = sysconf(_SC_PAGESIZE);
	ksm_save(&saved);
	if (pipe(fds))
		return 1;
	printf("KSM demo: %d processes x (%d MiB identical + %d MiB unique + %d MiB zero), prctl(PR_SET_MEMORY_MERGE)\n",
	       NPROC, DUP_MIB, UNIQUE_MIB, ZERO_MIB);
	for (i = 0; i < NPROC; i++) {
		pids[i] = fork();
		if (!pids[i])
			worker(i, fds[1]);
	}
	for (i = 0; i < NPROC; i++)
		if (read(fds[0], &c, 1) != 1)
			return 1;
	ksm_write("use_zero_pages", 1);
	ksm_write_str("advisor_mode", "none");
	ksm_write("pages_to_scan", 2000);
	ksm_write("sleep_millisecs", 20);
	t0 = ksm_now();
	t0_ticks = ksmd_ticks();
	last = t0;
	last_ticks = t0_ticks;
	ksm_write("run", 1);
	printf("expecting %ld pages (%.1f MiB) to be saved\n", expect,
	       expect * page_size / 1048576.0);
	printf("%6s %10s %10s %10s %10s %8s\n", "time", "shared", "sharing",
	       "zero", "saved MiB", "ksmd %");
	do {
		double now;
		long ticks;

		usleep(1000000);
		now = ksm_now();
		ticks = ksmd_ticks();
		saved_pages = ksm_read("pages_sharing") + ksm_read("ksm_zero_pages");
		printf("%5.0fs %10ld %10ld %10ld %10.1f %7.1f%%\n", now - t0,
		       ksm_read("pages_shared"), ksm_read("pages_sharing"),
		       ksm_read("ksm_zero_pages"),
		       saved_pages * page_size / 1048576.0,
		       100.0 * (ticks - last_ticks) / hz / (now - last));
		fflush(stdout);
		last = now;
		last_ticks = ticks;
		if (saved_pages >= expect && reached < 0)
			reached = now - t0;
		/* Settled: no progress over three full scans. */
		if (saved_pages != prev_saved) {
			prev_saved = saved_pages;
			scans_at_change = ksm_read("full_scans");
			settled = now - t0;
		} else if (ksm_read("full_scans") >= scans_at_change + 3) {
			break;
		}
	} while (reached < 0 && ksm_now() - t0 < MAX_SECONDS);
	if (reached < 0 && saved_pages >= dup_saving)
		reached = settled;
	ok = reached >= 0;
	printf("summary: saved %.1f MiB of %.1f MiB expected (%ld KSM pages, %ld sharing, %ld zero) ",
	       saved_pages * page_size / 1048576.0, expect * page_size / 1048576.0,
	       ksm_read("pages_shared"), ksm_read("pages_sharing"),
	       ksm_read("ksm_zero_pages"));
	if (ok)
		printf("in %.1f s, ksmd used %.2f s CPU, general_profit %ld bytes\n",
		       reached, (double)(last_ticks - t0_ticks) / hz,
		       ksm_read("general_profit"));
	else
		printf("NOT reached (the identical memory alone should save %.1f MiB)\n",
		       dup_saving * page_size / 1048576.0);
	for (i = 0; i < NPROC; i++) {
		kill(pids[i], SIGKILL);
		waitpid(pids[i], NULL, 0);
	}
	ksm_restore(&saved);
	return ok ? 0 : 1;
}
