// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: a full scan ends in bounded time however fast mergeable
 * processes are forked.
 *
 * A keeper process with PR_SET_MEMORY_MERGE (inherited over fork) keeps a
 * storm of short-lived workers going: each touches WORKER_PAGES pages of
 * its own and exits soon after.  ksmd is throttled so that it walks fewer
 * pages a second than the storm brings in.  If every new mm joins the scan
 * ahead of the cursor, the pass never reaches its end and full_scans
 * stalls; it must advance by at least two while the storm runs.
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
#include <sys/prctl.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_common.h"

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

#define WAIT_S		120	/* bound only: TCG under load is slow */
#define STORM_S		45	/* two full scans must end within this */
#define SCANS		2
#define PAGES_TO_SCAN	32	/* with SLEEP_MS: 640 pages/s at most */
#define SLEEP_MS	50
#define WORKER_PAGES	256	/* 1 MiB per worker */
#define NLIVE		8	/* workers alive at once */
#define LIFE_MS		1000	/* a worker's life after touching its pages */

static long page_size;
static int stop;		/* set by SIGTERM */

static void on_term(int sig)
{
	(void)sig;
	WRITE_ONCE(stop, 1);
}

/* A worker: touch pages of its own (unique), live a little, exit. */
static void worker(bool madv)
{
	char *a = mmap(NULL, WORKER_PAGES * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t tag = (uint64_t)getpid() << 32;

	if (a == MAP_FAILED)
		_exit(1);
	madvise(a, WORKER_PAGES * page_size, MADV_NOHUGEPAGE);
	if (madv && madvise(a, WORKER_PAGES * page_size, MADV_MERGEABLE))
		_exit(2);
	for (long i = 0; i < WORKER_PAGES; i++)
		*(uint64_t *)(a + i * page_size) = tag | i;
	usleep(LIFE_MS * 1000);
	_exit(0);
}

/*
 * The keeper: keep NLIVE workers alive until SIGTERM, then reap them all.
 * Reports the number of workers it forked through @count_fd.
 */
static void keeper(int count_fd, bool madv)
{
	struct sigaction sa = { .sa_handler = on_term };
	long forked = 0;
	int live = 0;

	sigaction(SIGTERM, &sa, NULL);
	while (!READ_ONCE(stop)) {
		pid_t pid;

		while (live < NLIVE && !READ_ONCE(stop)) {
			pid = fork();
			if (pid < 0)
				break;
			if (!pid)
				worker(madv);
			live++;
			forked++;
		}
		pid = waitpid(-1, NULL, 0);
		if (pid > 0)
			live--;
		else if (errno != EINTR)
			usleep(10000);
	}
	while (live > 0 && waitpid(-1, NULL, 0) > 0)
		live--;
	if (write(count_fd, &forked, sizeof(forked)) != sizeof(forked))
		_exit(1);
	_exit(0);
}

int main(void)
{
	long scans0, scans, scanned0, forked = 0;
	struct ksm_knobs saved;
	int kmsg, fds[2], splats;
	double t0, took;
	bool madv = false;
	char *own;
	pid_t k;

	ksft_print_header();
	ksft_set_plan(3);
	page_size = sysconf(_SC_PAGESIZE);
	if (geteuid())
		ksft_exit_skip("must run as root\n");
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable\n");
	kmsg = ksm_kmsg_open();
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("cannot set up KSM\n");
	if (ksm_write("pages_to_scan", PAGES_TO_SCAN) ||
	    ksm_write("sleep_millisecs", SLEEP_MS)) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("cannot throttle ksmd\n");
	}
	/*
	 * Without the storm, throttled ksmd ends passes over this process's
	 * few pages (with nothing registered, ksmd would not scan at all).
	 */
	own = mmap(NULL, 16 * page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (own == MAP_FAILED || madvise(own, 16 * page_size, MADV_MERGEABLE)) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("own mergeable area: %s\n", strerror(errno));
	}
	memset(own, 1, 16 * page_size);
	if (!ksm_wait_scans(1, 30)) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("no full scan without a storm\n");
	}
	if (pipe(fds)) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("pipe: %s\n", strerror(errno));
	}

	k = fork();
	if (k < 0) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	}
	if (!k) {
		close(fds[0]);
		if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
			madv = true;	/* no prctl: workers opt in themselves */
		keeper(fds[1], madv);
	}
	close(fds[1]);

	/* Let the storm build up, then count scans while it runs. */
	sleep(2);
	scans0 = ksm_read("full_scans");
	scanned0 = ksm_read("pages_scanned");
	t0 = ksm_now();
	ksm_wait_scans(SCANS, STORM_S);
	took = ksm_now() - t0;
	scans = ksm_read("full_scans") - scans0;
	ksft_print_msg("storm: %ld full scans, %ld pages scanned in %.1f s\n",
		       scans, ksm_read("pages_scanned") - scanned0, took);

	kill(k, SIGTERM);
	if (read(fds[0], &forked, sizeof(forked)) != sizeof(forked))
		forked = -1;
	waitpid(k, NULL, 0);
	ksft_print_msg("storm: %ld mergeable workers forked (%s)\n", forked,
		       madv ? "MADV_MERGEABLE" : "PR_SET_MEMORY_MERGE");
	ksft_test_result(forked > 2 * NLIVE,
			 "the storm ran (%ld workers)\n", forked);
	ksft_test_result(scans >= SCANS,
			 "full_scans advanced by %ld (want %d) in %.1f s of fork storm\n",
			 scans, SCANS, took);

	ksm_restore(&saved);
	splats = ksm_kmsg_splats(kmsg);
	ksft_test_result(splats <= 0, "no kernel splat\n");
	ksft_finished();
}
