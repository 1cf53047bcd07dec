// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: estimate mode reads a page again only once somebody may
 * have written it.  ksmd write-protects a page before it reads it for the
 * estimate, keeping the page where it is and the process's own, and takes
 * a page whose PTE stayed read-only as unchanged.  So every way of
 * writing a page must leave a mark that ksmd sees: a store, a write
 * through /proc/PID/mem (FOLL_FORCE), process_vm_writev() (GUP for
 * writing), and a FOLL_FORCE write into a mapping made read-only, which
 * takes no fault at all.  32 unique pages are estimated; then each way in
 * turn makes a group of 8 of them identical: the estimate must find each
 * group whole (7 more pages sharing) within three full scans.  A page
 * trusted unread would stay out of its group (ksmd still reads one page
 * in 16 of them each scan, so a group would come out 5 or 6 pages short).
 * Skips on a kernel without estimate mode (upstream).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>

#include "kselftest.h"
#include "ksm_common.h"

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

#define WAIT_S		240	/* bound only: TCG under load is slow */
#define NPAGES		32
#define GROUP		8
#define SCANS		3

static size_t page_size;
static char *area;

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* Write page @i to hold pattern @id, the way @how says. */
static bool write_page(int how, int i, uint64_t id)
{
	char *buf = malloc(page_size), *p = area + i * page_size;
	bool ok = true;
	int fd;

	if (!buf)
		return false;
	ksm_fill_page(buf, id);
	switch (how) {
	case 0:			/* a store */
		memcpy(p, buf, page_size);
		break;
	case 1:			/* /proc/self/mem: GUP with FOLL_FORCE */
	case 3:			/* the same, into a read-only mapping */
		fd = open("/proc/self/mem", O_RDWR);
		ok = fd >= 0 && pwrite(fd, buf, page_size, (uintptr_t)p) ==
				(ssize_t)page_size;
		if (fd >= 0)
			close(fd);
		break;
	case 2: {		/* process_vm_writev(): remote GUP for writing */
		struct iovec l = { buf, page_size }, r = { p, page_size };

		ok = process_vm_writev(getpid(), &l, 1, &r, 1, 0) ==
		     (ssize_t)page_size;
		break;
	}
	}
	free(buf);
	return ok;
}

int main(void)
{
	static const char * const how[] = {
		"a store", "a write through /proc/self/mem",
		"process_vm_writev()",
		"a /proc/self/mem write into a read-only mapping",
	};
	struct ksm_knobs saved;
	uint64_t pfn;
	long sharing, f;

	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	ksm_require_estimate();
	ksft_set_plan(2 + 4);
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("setup failed\n");
	/* every visit a real one, so that three scans are enough */
	ksm_write("smart_scan", 0);
	if (ksm_write("estimate", 1))
		ksft_exit_fail_msg("estimate=1 refused on a clean start\n");

	area = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	madvise(area, NPAGES * page_size, MADV_NOHUGEPAGE);
	for (int i = 0; i < NPAGES; i++)
		ksm_fill_page(area + i * page_size, 5000 + i);
	if (madvise(area, NPAGES * page_size, MADV_MERGEABLE))
		ksft_exit_fail_msg("MADV_MERGEABLE: %s\n", strerror(errno));

	if (!ksm_wait_scans(SCANS, WAIT_S))
		ksft_exit_fail_msg("fewer than %d full scans\n", SCANS);
	sharing = ksm_read("estimate_pages_sharing");
	ksm_report(sharing == 0 ? KSFT_PASS : KSFT_FAIL,
		   "unique pages: nothing to share");

	/* The write-protection shows as a fault on the first store. */
	pfn = ksm_pfn_of(area);
	f = minflt();
	WRITE_ONCE(*(uint64_t *)area, READ_ONCE(*(uint64_t *)area));
	f = minflt() - f;
	ksft_print_msg("a store after the estimate: %ld minor fault(s), frame %s\n",
		       f, ksm_pfn_of(area) == pfn ? "kept" : "changed");
	ksm_report(f >= 1 && pfn && ksm_pfn_of(area) == pfn ?
		   KSFT_PASS : KSFT_FAIL,
		   "counted pages are write-protected in place");

	for (int g = 0; g < 4; g++) {
		long want = sharing + GROUP - 1;
		bool ok = true;

		if (g == 3 && mprotect(area + g * GROUP * page_size,
				       GROUP * page_size, PROT_READ))
			ksft_exit_fail_msg("mprotect: %s\n", strerror(errno));
		for (int i = g * GROUP; i < (g + 1) * GROUP; i++)
			ok = ok && write_page(g, i, 9000 + g);
		if (!ok) {
			ksft_print_msg("%s: %s\n", how[g], strerror(errno));
			ksm_report(KSFT_SKIP, how[g]);
			continue;
		}
		for (int i = g * GROUP; i < (g + 1) * GROUP; i++)
			if (!ksm_check_page(area + i * page_size, 9000 + g,
					    how[g], i))
				ksft_exit_fail_msg("%s did not write\n", how[g]);
		/* a full scan that began after the writes, and more */
		if (!ksm_wait_scans(SCANS, WAIT_S))
			ksft_print_msg("fewer than %d full scans\n", SCANS);
		sharing = ksm_read("estimate_pages_sharing");
		ksft_print_msg("after %s: estimate_pages_sharing %ld (want %ld)\n",
			       how[g], sharing, want);
		ksm_report(sharing == want ? KSFT_PASS : KSFT_FAIL, how[g]);
		sharing = want;
	}

	munmap(area, NPAGES * page_size);
	ksm_restore(&saved);
	ksft_finished();
}
