// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: estimate mode reads a page again when it may have come back
 * read-only and clean with other content.  ksmd takes a page whose PTE
 * stayed read-only and clean since it read it as unchanged; zero pages so
 * taken count as zero pages without a compare.  Three ways map a written
 * page read-only and clean again without a write fault: swapoff
 * (unuse_pte()); a read fault that swaps a page in under soft-dirty
 * tracking (clear_refs 4); and a read fault that swaps in a page shared
 * over fork, which a read-only pin (process_vm_readv()) makes the
 * process's own again once the child is gone.  In each, 64 zero pages are
 * estimated, ksmd is stopped, the pages are written unique, swapped out
 * and back in that way, and ksmd runs again: within three full scans none
 * of them may count as a zero page.  (Taken unread, about 13 in 16 of them
 * still would: ksmd reads a page that stayed read-only only every 16th
 * scan.)  Skips on a kernel without estimate mode, without swap, or (the
 * second way) without soft-dirty.
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
#include <sys/resource.h>
#include <sys/swap.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_common.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define WAIT_S		240	/* bound only: TCG under load is slow */
#define NPAGES		64
#define SCANS		3

#define PM_PRESENT	BIT_ULL(63)
#define PM_SWAP		BIT_ULL(62)
#define PM_EXCLUSIVE	BIT_ULL(56)
#define PM_SOFT_DIRTY	BIT_ULL(55)

static size_t page_size;

/* The first swap device in /proc/swaps, or false if none. */
static bool swap_device(char *dev, size_t len)
{
	char line[512], fmt[32];
	bool found = false;
	FILE *f = fopen("/proc/swaps", "r");

	if (!f)
		return false;
	snprintf(fmt, sizeof(fmt), "%%%zus", len - 1);
	if (fgets(line, sizeof(line), f) && fgets(line, sizeof(line), f))
		found = sscanf(line, fmt, dev) == 1;
	fclose(f);
	return found;
}

static char *map_zero_pages(void)
{
	char *p = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	madvise(p, NPAGES * page_size, MADV_NOHUGEPAGE);
	/* Real zero-filled pages, not the zero page: a store to each. */
	for (int i = 0; i < NPAGES; i++)
		WRITE_ONCE(p[i * page_size], 0);
	if (madvise(p, NPAGES * page_size, MADV_MERGEABLE))
		ksft_exit_fail_msg("MADV_MERGEABLE: %s\n", strerror(errno));
	return p;
}

/* Write the pages unique and swap them out; false if they did not go. */
static bool write_and_swap_out(char *p)
{
	struct rusage ru;
	long f;
	int out;

	getrusage(RUSAGE_SELF, &ru);
	f = ru.ru_minflt;
	for (int i = 0; i < NPAGES; i++)
		ksm_fill_page(p + i * page_size, 3000 + i);
	getrusage(RUSAGE_SELF, &ru);
	/* each write-protected by the estimate: one fault each */
	ksft_print_msg("%ld minor faults writing %d pages\n",
		       ru.ru_minflt - f, NPAGES);
	if (madvise(p, NPAGES * page_size, MADV_PAGEOUT))
		return false;
	out = ksm_pagemap_count(p, NPAGES, PM_SWAP);
	ksft_print_msg("%d of %d pages swapped out\n", out, NPAGES);
	return out == NPAGES;
}

/*
 * Write the pages unique, swap them out and fork a child, which shares the
 * swap entries (so they are not the parent's own any more), and let the
 * child go.  A read fault then maps each page back read-only, and not
 * exclusive; a read-only pin unshares it, which makes it exclusive and
 * leaves the PTE as it is.
 */
static bool fork_swap_pin(char *p)
{
	char *buf = malloc(page_size);
	int out, ready[2];
	pid_t pid;
	char ch;

	for (int i = 0; i < NPAGES; i++)
		ksm_fill_page(p + i * page_size, 3000 + i);
	if (!buf || pipe(ready))
		ksft_exit_fail_msg("malloc or pipe\n");
	madvise(p, NPAGES * page_size, MADV_PAGEOUT);
	out = ksm_pagemap_count(p, NPAGES, PM_SWAP);
	pid = fork();
	if (pid < 0)
		ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	if (!pid) {
		close(ready[0]);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	if (read(ready[0], &ch, 1) != 1)
		ksft_exit_fail_msg("child died\n");
	close(ready[0]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ksft_print_msg("%d of %d pages swapped out before the fork\n", out,
		       NPAGES);
	for (int i = 0; i < NPAGES; i++) {
		struct iovec l = { buf, page_size };
		struct iovec r = { p + i * page_size, page_size };

		(void)READ_ONCE(p[i * page_size]);
		if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) !=
		    (ssize_t)page_size)
			ksft_exit_fail_msg("process_vm_readv: %s\n",
					   strerror(errno));
	}
	free(buf);
	return out == NPAGES;
}

/* Run ksmd again: none of the written pages may count as zero. */
static void check_zero(const char *what, char *p, long zero_before)
{
	long zero, want = zero_before - NPAGES;

	/*
	 * Slow passes (two batches each), so that the wait below sees about
	 * three and not the dozens a fast ksmd runs meanwhile: pages taken
	 * unread would be read again by the 16th.
	 */
	ksm_write("pages_to_scan", NPAGES + NPAGES / 2);
	ksm_write("sleep_millisecs", 100);
	if (ksm_write("run", 1))
		ksft_exit_fail_msg("run=1 refused\n");
	if (!ksm_wait_scans(SCANS, WAIT_S))
		ksft_print_msg("fewer than %d full scans\n", SCANS);
	zero = ksm_read("estimate_zero_pages");
	ksft_print_msg("after %s: estimate_zero_pages %ld (want at most %ld)\n",
		       what, zero, want);
	for (int i = 0; i < NPAGES; i++)
		if (!ksm_check_page(p + i * page_size, 3000 + i, what, i))
			ksft_exit_fail_msg("%s: content lost\n", what);
	ksm_report(zero <= want ? KSFT_PASS : KSFT_FAIL, what);
}

int main(void)
{
	struct ksm_knobs saved;
	char *a, *b, *c, dev[256];
	long zero;

	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	ksm_require_estimate();
	if (!swap_device(dev, sizeof(dev)))
		ksft_exit_skip("no swap device\n");
	ksft_set_plan(4);
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("setup failed\n");
	/* every visit a real one, so that three scans are enough */
	ksm_write("smart_scan", 0);
	ksm_write("use_zero_pages", 1);
	if (ksm_write("estimate", 1))
		ksft_exit_fail_msg("estimate=1 refused on a clean start\n");

	a = map_zero_pages();
	b = map_zero_pages();
	c = map_zero_pages();
	if (!ksm_wait_scans(SCANS, WAIT_S))
		ksft_exit_fail_msg("fewer than %d full scans\n", SCANS);
	zero = ksm_read("estimate_zero_pages");
	ksft_print_msg("estimate_zero_pages %ld\n", zero);
	ksm_report(zero >= 3 * NPAGES ? KSFT_PASS : KSFT_FAIL,
		   "zero pages are counted");

	/* 1: swapoff maps each page back read-only and clean. */
	ksm_write("run", 0);
	if (!write_and_swap_out(a)) {
		ksm_report(KSFT_SKIP, "swapoff (pages not swapped out)");
	} else if (swapoff(dev)) {
		ksft_print_msg("swapoff %s: %s\n", dev, strerror(errno));
		ksm_report(KSFT_SKIP, "swapoff");
	} else {
		if (swapon(dev, 0))
			ksft_exit_fail_msg("swapon %s: %s\n", dev,
					   strerror(errno));
		ksft_print_msg("%ld of %d pages present again, %ld exclusive\n",
			       ksm_pagemap_count(a, NPAGES, PM_PRESENT), NPAGES,
			       ksm_pagemap_count(a, NPAGES,
						 PM_PRESENT | PM_EXCLUSIVE));
		check_zero("swapoff", a, zero);
		zero -= NPAGES;
	}

	/* 2: a read fault keeps a swapped-in page read-only for soft-dirty. */
	ksm_write("run", 0);
	if (ksm_pagemap_count(b, NPAGES, PM_SOFT_DIRTY) < NPAGES) {
		/* a written page is soft-dirty where soft-dirty is built */
		ksm_report(KSFT_SKIP, "soft-dirty swap-in (no soft-dirty)");
	} else if (!write_and_swap_out(b)) {
		ksm_report(KSFT_SKIP, "soft-dirty swap-in (not swapped out)");
	} else {
		int fd = open("/proc/self/clear_refs", O_WRONLY);

		if (fd < 0 || write(fd, "4", 1) != 1)
			ksft_exit_fail_msg("clear_refs 4: %s\n",
					   strerror(errno));
		close(fd);
		for (int i = 0; i < NPAGES; i++)
			(void)READ_ONCE(b[i * page_size]);
		check_zero("soft-dirty swap-in", b, zero);
		zero -= NPAGES;
	}

	/* 3: swapped out shared over fork, in alone, then pinned read-only. */
	ksm_write("run", 0);
	if (!fork_swap_pin(c))
		ksm_report(KSFT_SKIP, "fork, swap-in, read-only pin (no swap-out)");
	else
		check_zero("fork, swap-in, read-only pin", c, zero);

	munmap(a, NPAGES * page_size);
	munmap(b, NPAGES * page_size);
	munmap(c, NPAGES * page_size);
	ksm_restore(&saved);
	ksft_finished();
}
