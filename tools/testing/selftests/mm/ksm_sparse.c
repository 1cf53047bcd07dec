// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: a huge, sparse mergeable mapping is walked quickly and
 * without starving the process that owns it.
 *
 * One MAP_NORESERVE mapping of tens of TiB is made mergeable, and only
 * NTOUCH pages spread over it are touched (all with the same content, so
 * they merge).  ksmd must skip the empty page table levels: while it makes
 * SCANS full scans, another thread of the process keeps taking the mmap
 * lock for writing (mprotect of a small mapping), and no such call may wait
 * longer than MAX_WAIT_S.  A walk one PMD at a time under the mmap lock,
 * with no lock break or resched, blocks it for many seconds (and can set
 * off the soft lockup detector).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "kselftest.h"
#include "ksm_common.h"

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

#define WAIT_S		120	/* bound only: TCG under load is slow */
#define SCANS_S		45	/* bound for SCANS full scans */
#define SCANS		2
#define MAX_WAIT_S	3.0	/* longest an mprotect() may wait */
#define NTOUCH		8
#define CONTENT		4242
#define TIB		BIT_ULL(40)
#define MAX_SIZE	(64 * TIB)
#define MIN_SIZE	(4 * TIB)

static long page_size;
static char *small;		/* the other thread's mapping */
static int done;		/* tells the other thread to stop */
static long call_start_us;	/* of the mprotect() in progress, or 0 */
static double max_wait;
static long calls;

static void *locker(void *unused)
{
	(void)unused;
	while (!READ_ONCE(done)) {
		double t = ksm_now(), dt;

		WRITE_ONCE(call_start_us, (long)(t * 1e6));
		mprotect(small, page_size, PROT_READ);
		mprotect(small, page_size, PROT_READ | PROT_WRITE);
		dt = ksm_now() - t;
		WRITE_ONCE(call_start_us, 0);
		if (dt > max_wait)
			max_wait = dt;
		calls++;
		usleep(2000);
	}
	return NULL;
}

static bool merged(void *unused)
{
	(void)unused;
	return ksm_merging_pages() == NTOUCH;
}

int main(void)
{
	unsigned long long size;
	struct ksm_knobs saved;
	int kmsg, splats, bad = 0;
	long scans0, scans;
	double t0, took, pending;
	pthread_t th;
	char *a = MAP_FAILED;

	ksft_print_header();
	ksft_set_plan(4);
	page_size = sysconf(_SC_PAGESIZE);
	if (geteuid())
		ksft_exit_skip("must run as root\n");
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable\n");

	for (size = MAX_SIZE; size >= MIN_SIZE; size /= 2) {
		a = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (a != MAP_FAILED)
			break;
	}
	if (a == MAP_FAILED)
		ksft_exit_skip("cannot map %llu TiB: %s\n", MIN_SIZE / TIB,
			       strerror(errno));
	small = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (small == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	ksft_print_msg("%llu TiB mapping at %p, %d pages touched\n",
		       size / TIB, a, NTOUCH);

	kmsg = ksm_kmsg_open();
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("cannot set up KSM\n");
	madvise(a, size, MADV_NOHUGEPAGE);
	if (madvise(a, size, MADV_MERGEABLE)) {
		munmap(a, size);
		ksm_restore(&saved);
		ksft_exit_fail_msg("MADV_MERGEABLE: %s\n", strerror(errno));
	}
	for (int i = 0; i < NTOUCH; i++) {
		unsigned long long off = size / NTOUCH * i + size / NTOUCH / 2;

		ksm_fill_page(a + off, CONTENT);
	}

	if (pthread_create(&th, NULL, locker, NULL)) {
		munmap(a, size);
		ksm_restore(&saved);
		ksft_exit_fail_msg("pthread_create\n");
	}
	scans0 = ksm_read("full_scans");
	t0 = ksm_now();
	ksm_wait_scans(SCANS, SCANS_S);
	took = ksm_now() - t0;
	scans = ksm_read("full_scans") - scans0;
	pending = READ_ONCE(call_start_us) / 1e6;
	pending = pending ? ksm_now() - pending : 0;
	WRITE_ONCE(done, 1);
	pthread_join(th, NULL);
	if (pending > max_wait)
		max_wait = pending;

	ksft_print_msg("%ld full scans in %.1f s; %ld mprotect pairs, longest %.3f s\n",
		       scans, took, calls, max_wait);
	ksft_test_result(scans >= SCANS, "%d full scans of the sparse mapping within %d s\n",
			 SCANS, SCANS_S);
	ksft_test_result(max_wait <= MAX_WAIT_S,
			 "mmap lock never held by the walk for more than %.0f s\n",
			 MAX_WAIT_S);
	if (!ksm_wait_for(merged, NULL, 10)) {
		ksft_print_msg("ksm_merging_pages %ld, want %d\n",
			       ksm_merging_pages(), NTOUCH);
		bad++;
	}
	for (int i = 0; i < NTOUCH; i++) {
		unsigned long long off = size / NTOUCH * i + size / NTOUCH / 2;

		bad += !ksm_check_page(a + off, CONTENT, "sparse", i);
	}
	ksft_test_result(!bad, "the spread pages merged, data intact\n");

	/* Never unmerge the huge mapping page by page: unmap it first. */
	munmap(a, size);
	munmap(small, page_size);
	ksm_restore(&saved);
	splats = ksm_kmsg_splats(kmsg);
	ksft_test_result(splats <= 0, "no kernel splat\n");
	ksft_finished();
}
