// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: estimate mode (/sys/kernel/mm/ksm/estimate).  With
 * estimate=1 ksmd scans three processes whose pages merge unequally (a
 * group larger than max_page_sharing, so chains, a small group, zero pages
 * with use_zero_pages, unique pages) without changing one mapping: every
 * page keeps its physical frame and nothing is shared.  The estimate after
 * N full scans must equal what merging achieves after N full scans within
 * 2%, system-wide and per process (ksm_estimate_saved_bytes against
 * ksm_saved_bytes), and the per-process estimates must add up to
 * estimate_profit within 1%.  Bad values get EINVAL, estimate=1 while KSM
 * pages exist gets EBUSY, and neither changes the knob.  Skips on a kernel
 * without estimate mode (upstream).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_common.h"

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

#define WAIT_S		240	/* bound only: TCG under load is slow */
#define NPROC		3
#define MAX_SHARING	16
#define SCANS		3	/* full scans each mode gets */
#define PFN_MASK	((1ULL << 55) - 1)
#define PM_PRESENT	BIT_ULL(63)

/* pages of content X, of content Y, zero pages, unique pages */
static const int layout[NPROC][4] = {
	{ 40, 0, 8, 0 },
	{ 24, 0, 0, 4 },
	{ 0, 8, 8, 8 },
};

/* X: 64 pages on 4 KSM pages; Y: 8 on 1; 16 zero pages */
#define WANT_SHARED	5
#define WANT_SHARING	(64 - 4 + 8 - 1)
#define WANT_ZERO	16

struct shared {
	int ready[NPROC];
	uintptr_t addr[NPROC];
	int pages[NPROC];
};

static size_t page_size;
static struct shared *sh;

static void child(int idx)
{
	const int *l = layout[idx];
	int n = l[0] + l[1] + l[2] + l[3], i = 0;
	char *p = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(1);
	madvise(p, n * page_size, MADV_NOHUGEPAGE);
	for (int j = 0; j < l[0]; j++)
		ksm_fill_page(p + i++ * page_size, 111);
	for (int j = 0; j < l[1]; j++)
		ksm_fill_page(p + i++ * page_size, 222);
	for (int j = 0; j < l[2]; j++) {
		ksm_fill_page(p + i * page_size, 333);
		memset(p + i++ * page_size, 0, page_size);
	}
	for (int j = 0; j < l[3]; j++)
		ksm_fill_page(p + i++ * page_size, 1000 + idx * 100 + j);
	if (madvise(p, n * page_size, MADV_MERGEABLE))
		_exit(1);
	sh->addr[idx] = (uintptr_t)p;
	sh->pages[idx] = n;
	WRITE_ONCE(sh->ready[idx], 1);
	for (;;)
		pause();
}

static long field_of(pid_t pid, const char *key)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	return ksm_file_field(path, key, ' ');
}

/* The frames of child @idx's pages into @pfn; false if one is missing. */
static bool frames_of(pid_t pid, int idx, uint64_t *pfn)
{
	char path[64];
	bool ok = true;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	for (int i = 0; i < sh->pages[idx] && ok; i++) {
		uint64_t e;
		off_t off = (sh->addr[idx] / page_size + i) * sizeof(e);

		ok = pread(fd, &e, sizeof(e), off) == sizeof(e) &&
		     (e & PM_PRESENT) && (e & PFN_MASK);
		pfn[i] = e & PFN_MASK;
	}
	close(fd);
	return ok;
}

static bool within(long a, long b, int pct)
{
	return labs(a - b) * 100 <= labs(b) * pct;
}

/* Writing @val to estimate fails with @err and leaves it at @keep. */
static bool refused(const char *val, int err, long keep)
{
	int r = ksm_write_str("estimate", val);

	if (r != -err || ksm_read("estimate") != keep) {
		ksft_print_msg("estimate <- \"%s\": %d (want %d), now %ld (want %ld)\n",
			       val, r, -err, ksm_read("estimate"), keep);
		return false;
	}
	return true;
}

int main(void)
{
	uint64_t *before[NPROC], *after[NPROC];
	long est[4], got[4], est_saved[NPROC];
	struct ksm_knobs saved;
	pid_t pid[NPROC];
	int ret = KSFT_PASS;
	long sum = 0;

	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	ksm_require_estimate();
	ksft_set_plan(5);
	sh = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || !ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("setup failed\n");
	ksm_write("use_zero_pages", 1);
	ksm_write("max_page_sharing", MAX_SHARING);

	ksm_report(refused("2", EINVAL, 0) && refused("x", EINVAL, 0) &&
		   refused("-1", EINVAL, 0) ? KSFT_PASS : KSFT_FAIL,
		   "bad values get EINVAL and change nothing");

	if (ksm_write("estimate", 1))
		ksft_exit_fail_msg("estimate=1 refused on a clean start\n");
	for (int i = 0; i < NPROC; i++) {
		pid[i] = fork();
		if (!pid[i])
			child(i);
	}
	for (int i = 0; i < NPROC; i++) {
		while (!READ_ONCE(sh->ready[i]))
			usleep(10000);
		before[i] = calloc(sh->pages[i], sizeof(uint64_t));
		after[i] = calloc(sh->pages[i], sizeof(uint64_t));
		if (!before[i] || !after[i] || !frames_of(pid[i], i, before[i]))
			ksft_exit_fail_msg("cannot read the frames of child %d\n", i);
	}

	/* ---- estimate ---- */
	if (!ksm_wait_scans(SCANS + 1, WAIT_S))
		ksft_print_msg("estimate: fewer than %d full scans\n", SCANS + 1);
	est[0] = ksm_read("estimate_pages_shared");
	est[1] = ksm_read("estimate_pages_sharing");
	est[2] = ksm_read("estimate_zero_pages");
	est[3] = ksm_read("estimate_profit");
	ksft_print_msg("estimate: shared %ld sharing %ld zero %ld profit %ld\n",
		       est[0], est[1], est[2], est[3]);
	{
		bool same = true;

		for (int i = 0; i < NPROC; i++) {
			if (!frames_of(pid[i], i, after[i]))
				same = false;
			for (int j = 0; same && j < sh->pages[i]; j++)
				same = before[i][j] == after[i][j];
		}
		if (!same || ksm_read("pages_shared") ||
		    ksm_read("ksm_zero_pages")) {
			ksft_print_msg("mapping changed: frames %s, shared %ld, zero %ld\n",
				       same ? "kept" : "changed",
				       ksm_read("pages_shared"),
				       ksm_read("ksm_zero_pages"));
			ret = KSFT_FAIL;
		}
		ksm_report(ret, "estimate mode changes no mapping");
	}
	for (int i = 0; i < NPROC; i++) {
		est_saved[i] = field_of(pid[i], "ksm_estimate_saved_bytes");
		ksft_print_msg("pid %d: ksm_estimate_saved_bytes %ld\n",
			       pid[i], est_saved[i]);
		sum += est_saved[i];
	}
	ksft_print_msg("sum of the estimates %ld, estimate_profit %ld\n",
		       sum, est[3]);
	ksm_report(est[3] > 0 && within(sum, est[3], 1) ? KSFT_PASS : KSFT_FAIL,
		   "per-process estimates add up to estimate_profit");

	/* ---- merge, from the same start ---- */
	if (ksm_write("estimate", 0) || !ksm_settle(WAIT_S) ||
	    ksm_write("run", 1))
		ksft_exit_fail_msg("cannot switch to merging\n");
	if (!ksm_wait_scans(SCANS, WAIT_S))
		ksft_print_msg("merge: fewer than %d full scans\n", SCANS);
	got[0] = ksm_read("pages_shared");
	got[1] = ksm_read("pages_sharing");
	got[2] = ksm_read("ksm_zero_pages");
	got[3] = ksm_read("general_profit");
	ksft_print_msg("merged:   shared %ld sharing %ld zero %ld profit %ld (want %d %d %d)\n",
		       got[0], got[1], got[2], got[3], WANT_SHARED,
		       WANT_SHARING, WANT_ZERO);
	{
		bool ok = got[0] == WANT_SHARED && got[1] == WANT_SHARING &&
			  got[2] == WANT_ZERO;

		for (int i = 0; i < 4; i++)
			ok = ok && within(est[i], got[i], 2);
		for (int i = 0; i < NPROC; i++) {
			long s = field_of(pid[i], "ksm_saved_bytes");

			ksft_print_msg("pid %d: ksm_saved_bytes %ld, estimated %ld\n",
				       pid[i], s, est_saved[i]);
			ok = ok && within(est_saved[i], s, 2);
		}
		ksm_report(ok ? KSFT_PASS : KSFT_FAIL,
			   "the estimate is what merging achieves, within 2%");
	}
	ksm_report(refused("1", EBUSY, 0) ? KSFT_PASS : KSFT_FAIL,
		   "estimate=1 while KSM pages exist gets EBUSY");

	for (int i = 0; i < NPROC; i++) {
		kill(pid[i], SIGKILL);
		waitpid(pid[i], NULL, 0);
	}
	ksm_restore(&saved);
	ksft_finished();
}
