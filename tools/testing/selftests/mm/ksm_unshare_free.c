// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: unmerging must not leave a private copy that reclaim may
 * throw away for a process that never gave it up.
 *
 * Unmerge breaks COW with an unsharing fault: the copy gets a clean,
 * read-only PTE.  Shared by fork, such a copy looks to MADV_FREE in one
 * process like memory nobody wrote, so it is marked lazyfree for both,
 * and reclaim then discards it under the other process too, which reads
 * zeroes afterwards.  Found by ksm_torture's mixed scenario (fork, exec
 * and madvise together), on upstream 6.12 as well.
 *
 * Two areas of identical pages merge; the first is unmerged; a child is
 * forked; the parent MADV_FREEs the area and unmaps it, so the child is
 * left the only mapper; the child pages it out (MADV_PAGEOUT) and must
 * still read every byte it had.
 */
#define _GNU_SOURCE
#include <errno.h>
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

#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define WAIT_S		180	/* bound only: TCG under load is slow */
#define NR		64
#define ID_BASE		9100
#define NAME		"unmerged copy kept by a forked child after the parent's MADV_FREE"

static size_t page_size;

static int verify(const char *a, const char *what)
{
	return ksm_check_patterns(a, NR, ID_BASE, what);
}

/* The child: wait for the parent to let go, page the area out, check it. */
static int child_main(char *a, int rfd)
{
	char c;
	int bad;

	if (read(rfd, &c, 1) != 1)
		return 2;
	if (madvise(a, NR * page_size, MADV_PAGEOUT))
		return errno == EINVAL ? 3 : 2;
	bad = verify(a, "child after pageout");
	if (bad)
		ksft_print_msg("child: %d of %d pages lost\n", bad, NR);
	fflush(stdout);
	return bad ? 1 : 0;
}

static int run(void)
{
	long want = 2 * NR;
	int pfd[2], status;
	char *a, *b;
	pid_t pid;

	a = ksm_map_patterns(NR, ID_BASE);
	b = ksm_map_patterns(NR, ID_BASE);
	if (!a || !b) {
		ksft_print_msg("mmap: %s\n", strerror(errno));
		return KSFT_FAIL;
	}
	if (!ksm_wait_for(ksm_self_merging_reached, &want, WAIT_S)) {
		ksft_print_msg("areas did not merge in %d s (merging %ld)\n",
			       WAIT_S, ksm_self_merging());
		return KSFT_FAIL;
	}
	if (madvise(a, NR * page_size, MADV_UNMERGEABLE)) {
		ksft_print_msg("MADV_UNMERGEABLE: %s\n", strerror(errno));
		return KSFT_FAIL;
	}
	if (verify(a, "after unmerge"))
		return KSFT_FAIL;
	if (pipe(pfd))
		return KSFT_FAIL;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return KSFT_FAIL;
	if (pid == 0) {
		close(pfd[1]);
		_exit(child_main(a, pfd[0]));
	}
	close(pfd[0]);
	/* Our copy may go; the child's must not. */
	if (madvise(a, NR * page_size, MADV_FREE) ||
	    munmap(a, NR * page_size)) {
		ksft_print_msg("MADV_FREE/munmap: %s\n", strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return KSFT_FAIL;
	}
	if (write(pfd[1], "g", 1) != 1)
		return KSFT_FAIL;
	close(pfd[1]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return KSFT_FAIL;
	switch (WEXITSTATUS(status)) {
	case 0:
		return KSFT_PASS;
	case 3:
		ksft_print_msg("no MADV_PAGEOUT (kernel < 5.4)\n");
		return KSFT_SKIP;
	default:
		return KSFT_FAIL;
	}
}

int main(void)
{
	struct ksm_knobs saved;
	int r;

	ksft_print_header();
	ksft_set_plan(1);
	page_size = sysconf(_SC_PAGESIZE);
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable (not root, or no KSM)\n");
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("cannot reset KSM\n");
	r = run();
	ksm_restore(&saved);
	/*
	 * Upstream 6.12 has the core-mm bug (our patch 0005 fixes it): the
	 * harness says which kernel runs, and there the loss is expected.
	 */
	if (r == KSFT_FAIL && getenv("KSMT_KERNEL") &&
	    !strcmp(getenv("KSMT_KERNEL"), "upstream"))
		ksft_test_result_xfail("%s (upstream 6.12 core-mm bug, fixed by patch 0005)\n",
				       NAME);
	else
		ksm_report(r, NAME);
	ksft_finished();
}
