// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: a `run=2` whose writer is killed part way leaves every KSM
 * page that is still mapped tracked.
 *
 * NPROC processes hold the same NR pages, merged into KSM pages.  A child
 * writes 2 to /sys/kernel/mm/ksm/run and is SIGKILLed once the first of the
 * processes is partly unmerged.  Then, in every process, the KSM pages it
 * maps (the "KSM:" line of /proc/PID/smaps_rollup) must not outnumber the
 * pages KSM tracks for it (ksm_merging_pages of /proc/PID/ksm_stat): an
 * untracked KSM mapping is a page KSM forgot, which nothing can unmerge or
 * account any more.  A final, uninterrupted run=2 must leave no KSM page
 * mapped in any process, and every byte intact.
 *
 * Unmerging is too quick under emulation to be caught part way; the debug
 * kernel's fault injection knob (debugfs ksm/race_delay_us) slows it down
 * page by page.  Without the knob the rounds still run, as a smoke test.
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
#include <sys/mount.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_common.h"

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

#define WAIT_S		120	/* bound only: TCG under load is slow */
#define NPROC		3
#define NR		512	/* pages per process */
#define ROUNDS		3
#define DELAY_US	300	/* per unmerged page, with the knob */
#define ID_BASE		9100

static long page_size;
static pid_t child[NPROC];
static int cmd_fd[NPROC];	/* write end: tell the child to verify */
static bool have_knob;

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

/* ---- per-process counts ---- */

static long proc_field(pid_t pid, const char *file, const char *key, char sep)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	return ksm_file_field(path, key, sep);
}

/* KSM pages @pid maps, from its smaps_rollup; -1 if unreadable. */
static long mapped_ksm(pid_t pid)
{
	long kb = proc_field(pid, "smaps_rollup", "KSM", ':');

	return kb < 0 ? -1 : kb * 1024 / page_size;
}

/* KSM pages KSM tracks for @pid, from its ksm_stat; -1 if unreadable. */
static long tracked_ksm(pid_t pid)
{
	return proc_field(pid, "ksm_stat", "ksm_merging_pages", ' ');
}

/* ---- the processes ---- */

static void child_main(int ready_fd, int cmd)
{
	char *a = mmap(NULL, NR * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char c = 'r';
	int bad = 0;

	if (a == MAP_FAILED)
		_exit(2);
	madvise(a, NR * page_size, MADV_NOHUGEPAGE);
	for (int i = 0; i < NR; i++)
		ksm_fill_page(a + i * page_size, ID_BASE + i);
	if (madvise(a, NR * page_size, MADV_MERGEABLE))
		_exit(3);
	if (write(ready_fd, &c, 1) != 1)
		_exit(4);
	close(ready_fd);
	/* EOF (the parent died) or a byte: verify and exit */
	if (read(cmd, &c, 1) < 0)
		_exit(5);
	for (int i = 0; i < NR; i++)
		bad += !ksm_check_page(a + i * page_size, ID_BASE + i,
				       "child", i);
	_exit(bad ? 1 : 0);
}

static bool start_children(void)
{
	int ready[2];
	char c;

	if (pipe(ready))
		return false;
	for (int p = 0; p < NPROC; p++) {
		int cmd[2];

		if (pipe(cmd))
			return false;
		child[p] = fork();
		if (child[p] < 0)
			return false;
		if (!child[p]) {
			close(ready[0]);
			close(cmd[1]);
			child_main(ready[1], cmd[0]);
		}
		close(cmd[0]);
		cmd_fd[p] = cmd[1];
		/* one at a time: they enter the KSM list in this order */
		if (read(ready[0], &c, 1) != 1)
			return false;
	}
	close(ready[0]);
	close(ready[1]);
	return true;
}

/* Tell every child to verify its pages; false if one found a bad byte. */
static bool stop_children(void)
{
	bool ok = true;

	for (int p = 0; p < NPROC; p++) {
		int status;

		if (child[p] <= 0)
			continue;
		if (write(cmd_fd[p], "v", 1) != 1)
			kill(child[p], SIGKILL);
		close(cmd_fd[p]);
		if (waitpid(child[p], &status, 0) != child[p] ||
		    !WIFEXITED(status) || WEXITSTATUS(status)) {
			ksft_print_msg("child %d: status %#x (bad bytes or error)\n",
				       child[p], status);
			ok = false;
		}
		child[p] = 0;
	}
	return ok;
}

static void kill_children(void)
{
	for (int p = 0; p < NPROC; p++) {
		if (child[p] > 0) {
			kill(child[p], SIGKILL);
			waitpid(child[p], NULL, 0);
			child[p] = 0;
		}
	}
}

static bool all_merged(void *unused)
{
	(void)unused;
	for (int p = 0; p < NPROC; p++)
		if (tracked_ksm(child[p]) != NR || mapped_ksm(child[p]) != NR)
			return false;
	return true;
}

/* ---- one round ---- */

/* Some KSM pages of @pid are unmerged, not all of them. */
static bool partly_unmerged(pid_t pid)
{
	long m = mapped_ksm(pid);

	return m > 0 && m < NR;
}

/*
 * A child writes run=2; it is killed once one process is partly unmerged.
 * Returns 1 if it was killed part way, 0 if the window was missed.
 */
static int killed_run2(int *victim)
{
	double deadline = ksm_now() + WAIT_S;
	int status, caught = 0;
	pid_t w = fork();

	if (w < 0)
		return 0;
	if (!w)
		_exit(ksm_write("run", 2) ? 1 : 0);
	*victim = -1;
	while (ksm_now() < deadline && *victim < 0) {
		if (waitpid(w, &status, WNOHANG) == w) {
			w = 0;
			break;
		}
		for (int p = 0; p < NPROC && *victim < 0; p++)
			if (partly_unmerged(child[p]))
				*victim = p;
		if (*victim < 0)
			usleep(2000);
	}
	if (w) {
		kill(w, SIGKILL);
		waitpid(w, &status, 0);
		caught = *victim >= 0;
		if (caught)
			ksft_print_msg("run=2 writer killed: process %d has %ld of %d KSM pages\n",
				       *victim, mapped_ksm(child[*victim]), NR);
	}
	if (!caught)
		ksft_print_msg("run=2 finished before it could be killed part way\n");
	return caught;
}

/* Every process maps no more KSM pages than KSM tracks for it. */
static bool mapped_tracked(const char *what)
{
	bool ok = true;

	for (int p = 0; p < NPROC; p++) {
		long m = mapped_ksm(child[p]), t = tracked_ksm(child[p]);

		ksft_print_msg("%s: process %d maps %ld KSM pages, %ld tracked\n",
			       what, p, m, t);
		if (m < 0 || t < 0 || m > t) {
			ksft_print_msg("%s: process %d maps %ld KSM pages KSM does not track\n",
				       what, p, m - t);
			ok = false;
		}
	}
	return ok;
}

int main(void)
{
	struct ksm_knobs saved;
	int bad = 0, caught = 0, kmsg, splats;
	bool ok;

	ksft_print_header();
	ksft_set_plan(3);
	page_size = sysconf(_SC_PAGESIZE);
	if (geteuid())
		ksft_exit_skip("must run as root\n");
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable\n");
	if (access("/proc/self/ksm_stat", R_OK) ||
	    ksm_smaps_rollup_kb("KSM") < 0)
		ksft_exit_skip("no ksm_stat or no KSM: line in smaps_rollup\n");
	have_knob = race_delay_probe();
	if (!have_knob)
		ksft_print_msg("no %s: unmerging at full speed\n", RACE_DELAY);
	atexit(race_delay_off);
	kmsg = ksm_kmsg_open();
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("cannot set up KSM\n");
	if (!start_children()) {
		kill_children();
		ksm_restore(&saved);
		ksft_exit_fail_msg("cannot start the processes: %s\n",
				   strerror(errno));
	}

	ok = true;
	for (int r = 0; r < ROUNDS && ok; r++) {
		char what[32];
		int victim;

		snprintf(what, sizeof(what), "round %d", r);
		race_delay_off();
		if (ksm_write("run", 1) ||
		    !ksm_wait_for(all_merged, NULL, WAIT_S)) {
			ksft_print_msg("%s: pages did not merge\n", what);
			for (int p = 0; p < NPROC; p++)
				ksft_print_msg("process %d: %ld mapped, %ld tracked, want %d\n",
					       p, mapped_ksm(child[p]),
					       tracked_ksm(child[p]), NR);
			bad++;
			break;
		}
		if (have_knob)
			ksm_race_delay_set(DELAY_US);
		caught += killed_run2(&victim);
		race_delay_off();
		ok = mapped_tracked(what);
		if (!ok)
			bad++;
	}
	ksft_test_result(ok, "killed run=2 leaves KSM pages tracked (%d/%d killed)\n",
			 caught, ROUNDS);

	ok = ksm_settle(WAIT_S);
	if (!ok)
		ksft_print_msg("final run=2: pages_shared %ld pages_sharing %ld\n",
			       ksm_read("pages_shared"),
			       ksm_read("pages_sharing"));
	for (int p = 0; p < NPROC; p++) {
		long m = mapped_ksm(child[p]);

		if (m) {
			ksft_print_msg("after run=2: process %d maps %ld KSM pages\n",
				       p, m);
			ok = false;
		}
	}
	ok &= stop_children();
	ksft_test_result(ok, "a final run=2 leaves no KSM page mapped, data intact\n");
	bad += !ok;

	kill_children();
	ksm_restore(&saved);
	splats = ksm_kmsg_splats(kmsg);
	ksft_test_result(splats <= 0, "no kernel splat\n");
	if (!have_knob && !bad)
		ksft_print_msg("without race_delay_us the window is seldom hit\n");
	ksft_finished();
}
