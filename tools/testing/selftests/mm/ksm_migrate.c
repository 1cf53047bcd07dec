// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: unmerging does not overlook KSM pages under migration.
 *
 * Two processes hold the same NR pages, merged into KSM pages.  In each, a
 * thread moves the pages between two NUMA nodes (move_pages with
 * MPOL_MF_MOVE_ALL) in a loop, while the main thread unmerges the range
 * (MADV_UNMERGEABLE), checks every page and every byte, registers it again
 * (MADV_MERGEABLE), and every fourth round moves it away and back with
 * mremap (which unmerges it too).  Each round, the mover pauses until the
 * pages merged again (bounded), and gets a head start on the unmerge.
 *
 * Once MADV_UNMERGEABLE has returned, no page of the range may be a KSM page
 * (the VMA's smaps "KSM:", which counts migration entries to KSM pages
 * too): nothing merges into a VMA that is not mergeable.  (/proc/kpageflags
 * cannot tell: 6.12 sets KPF_KSM for every anonymous page.)  A KSM page
 * whose PTE was
 * a migration entry when it was unmerged must have been waited for, not
 * skipped; one that is skipped stays mapped without tracking, and after an
 * mremap its migration entry is never restored (a kernel BUG on access).
 *
 * On debug kernels the fault injection knob debugfs ksm/race_delay_us keeps
 * pages under migration (and unmerging page by page) long enough to meet.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_common.h"

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif
#ifndef MPOL_MF_MOVE_ALL
#define MPOL_MF_MOVE_ALL BIT(2)
#endif
#ifndef MREMAP_FIXED
#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2
#endif

#define WAIT_S		120	/* bound only: TCG under load is slow */
#define RUN_S		25	/* rounds of each process */
#define MAX_ROUNDS	400
#define MERGE_WAIT_S	3	/* for the pages to merge again, per round */
#define NPROC		2
#define NR		256
#define DELAY_US	500
#define MOVE_HEAD_START_US 30000	/* the mover starts a batch first */
#define ID_BASE		5300

static long page_size;
static int node[2];
static bool have_knob;
static int stop_mover;
static int pause_mover;		/* while the pages merge again */
static char *area;		/* the range the mover moves */

/* ---- debugfs race_delay_us ---- */

static void race_delay_off(void)
{
	if (have_knob)
		ksm_race_delay_set(0);
}

static bool race_delay_probe(void)
{
	if (access(RACE_DELAY, F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	return !access(RACE_DELAY, W_OK) && !ksm_race_delay_set(0);
}

/* ---- NUMA ---- */

/* The first two nodes in /sys/devices/system/node/has_memory. */
static int find_two_nodes(void)
{
	char buf[256], *s;
	int found = 0;
	FILE *f = fopen("/sys/devices/system/node/has_memory", "r");

	if (!f)
		f = fopen("/sys/devices/system/node/online", "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	for (s = buf; *s && found < 2;) {
		char *end;
		long lo = strtol(s, &end, 10), hi = lo;

		if (end == s)
			break;
		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		for (long n = lo; n <= hi && found < 2; n++)
			node[found++] = n;
		s = *end == ',' ? end + 1 : end;
	}
	return found;
}

static long sys_move_pages(unsigned long count, void **pages,
			   const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, 0, count, pages, nodes, status, flags);
}

/* Moves every page of the area to the other node, over and over. */
static void *mover(void *arg)
{
	long *moves = arg;
	int nodes[NR], status[NR];
	void *pages[NR];

	for (int k = 0; !READ_ONCE(stop_mover); k++) {
		char *a = READ_ONCE(area);

		if (READ_ONCE(pause_mover)) {
			usleep(1000);
			continue;
		}
		for (int i = 0; i < NR; i++) {
			pages[i] = a + i * page_size;
			nodes[i] = node[k & 1];
		}
		if (sys_move_pages(NR, pages, nodes, status,
				   MPOL_MF_MOVE_ALL) >= 0)
			(*moves)++;
	}
	return NULL;
}

/* ---- page checks ---- */

/* 1: a KSM page is mapped at @p, 0: another page, -1: nothing present. */
struct result {
	long rounds, unmerges_of_merged, moves, remaps;
	long ksm_left, bad_pages;
};

/* After an unmerge: no page of @a is a KSM page, every byte is right. */
static void check_unmerged(char *a, struct result *r, const char *what)
{
	long smaps_kb;

	smaps_kb = ksm_vma_smaps_kb(a, "KSM");
	if (smaps_kb > 0) {
		ksft_print_msg("%s: round %ld: smaps KSM: %ld kB right after unmerging\n",
			       what, r->rounds, smaps_kb);
		r->ksm_left += smaps_kb * 1024 / page_size;
	}
	for (int i = 0; i < NR; i++)
		r->bad_pages += !ksm_check_page(a + i * page_size, ID_BASE + i,
						what, i);
	smaps_kb = ksm_vma_smaps_kb(a, "KSM");
	if (smaps_kb > 0) {
		ksft_print_msg("%s: round %ld: smaps KSM: %ld kB after reading it\n",
			       what, r->rounds, smaps_kb);
		r->ksm_left += smaps_kb * 1024 / page_size;
	}
}

static bool some_merged(void *unused)
{
	(void)unused;
	return ksm_merging_pages() >= NR / 2;
}

/* One process: the mover thread and the unmerge rounds. */
static int worker(int idx, char *spare)
{
	size_t len = NR * page_size;
	struct result r = { 0 };
	char what[32];
	double end;
	pthread_t th;
	char *a;

	snprintf(what, sizeof(what), "process %d", idx);
	a = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return 2;
	madvise(a, len, MADV_NOHUGEPAGE);
	for (int i = 0; i < NR; i++)
		ksm_fill_page(a + i * page_size, ID_BASE + i);
	if (madvise(a, len, MADV_MERGEABLE))
		return 3;
	area = a;
	if (pthread_create(&th, NULL, mover, &r.moves))
		return 4;

	end = ksm_now() + RUN_S;
	for (r.rounds = 0; r.rounds < MAX_ROUNDS && ksm_now() < end;
	     r.rounds++) {
		/* let them merge, then unmerge while they move */
		WRITE_ONCE(pause_mover, 1);
		if (ksm_wait_for(some_merged, NULL, MERGE_WAIT_S))
			r.unmerges_of_merged++;
		WRITE_ONCE(pause_mover, 0);
		usleep(MOVE_HEAD_START_US);
		if (madvise(a, len, MADV_UNMERGEABLE)) {
			ksft_print_msg("%s: MADV_UNMERGEABLE: %s\n", what,
				       strerror(errno));
			r.bad_pages++;
			break;
		}
		check_unmerged(a, &r, what);
		if (r.rounds % 4 == 3) {
			/* away to @spare and back: mremap unmerges too */
			if (mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
				   spare) != spare ||
			    mremap(spare, len, len,
				   MREMAP_MAYMOVE | MREMAP_FIXED, a) != a) {
				ksft_print_msg("%s: mremap: %s\n", what,
					       strerror(errno));
				r.bad_pages++;
				break;
			}
			r.remaps++;
			check_unmerged(a, &r, what);
		}
		if (madvise(a, len, MADV_MERGEABLE)) {
			ksft_print_msg("%s: MADV_MERGEABLE: %s\n", what,
				       strerror(errno));
			r.bad_pages++;
			break;
		}
	}
	WRITE_ONCE(stop_mover, 1);
	pthread_join(th, NULL);
	ksft_print_msg("%s: %ld rounds (%ld of merged pages), %ld moves, %ld mremaps\n",
		       what, r.rounds, r.unmerges_of_merged, r.moves, r.remaps);
	ksft_print_msg("%s: %ld KSM pages left mapped after unmerging, %ld bad pages\n",
		       what, r.ksm_left, r.bad_pages);
	if (r.ksm_left || r.bad_pages)
		return 1;
	/* everything once more, in peace */
	if (madvise(a, len, MADV_UNMERGEABLE))
		return 5;
	check_unmerged(a, &r, what);
	return r.ksm_left || r.bad_pages ? 1 : 0;
}

int main(void)
{
	struct ksm_knobs saved;
	int kmsg, splats, ok = 1;
	pid_t pid[NPROC];
	double deadline;

	ksft_print_header();
	ksft_set_plan(2);
	page_size = sysconf(_SC_PAGESIZE);
	if (geteuid())
		ksft_exit_skip("must run as root\n");
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable\n");
	if (find_two_nodes() < 2)
		ksft_exit_skip("needs two NUMA nodes with memory\n");
	have_knob = race_delay_probe();
	if (!have_knob)
		ksft_print_msg("no %s: the race window stays narrow\n",
			       RACE_DELAY);
	atexit(race_delay_off);
	kmsg = ksm_kmsg_open();
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("cannot set up KSM\n");
	if (have_knob)
		ksm_race_delay_set(DELAY_US);

	for (int p = 0; p < NPROC; p++) {
		char *spare = mmap(NULL, NR * page_size, PROT_NONE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		pid[p] = spare == MAP_FAILED ? -1 : fork();
		if (!pid[p])
			_exit(worker(p, spare));
		if (pid[p] < 0)
			ksft_print_msg("fork: %s\n", strerror(errno));
	}
	deadline = ksm_now() + RUN_S + WAIT_S;
	for (int p = 0; p < NPROC; p++) {
		int status = 0;
		pid_t w = 0;

		if (pid[p] < 0) {
			ok = 0;
			continue;
		}
		while (ksm_now() < deadline) {
			w = waitpid(pid[p], &status, WNOHANG);
			if (w)
				break;
			usleep(50000);
		}
		if (w != pid[p]) {
			ksft_print_msg("process %d did not finish: killed\n", p);
			kill(pid[p], SIGKILL);
			waitpid(pid[p], &status, 0);
			ok = 0;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			ksft_print_msg("process %d: wait status %#x\n", p,
				       status);
			ok = 0;
		}
	}
	race_delay_off();
	ksft_test_result(ok, "no KSM page left after MADV_UNMERGEABLE/mremap, data intact\n");

	ksm_restore(&saved);
	splats = ksm_kmsg_splats(kmsg);
	ksft_test_result(splats <= 0, "no kernel splat\n");
	ksft_finished();
}
