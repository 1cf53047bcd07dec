// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: ksmd never merges into the old folio of a KSM page that
 * migration just replaced.
 *
 * Each round, P1 holds NC KSM pages (two mappings of each of NC contents)
 * and moves each of them between two NUMA nodes in a loop, one thread per
 * page.  Meanwhile P3 registers one page of each content, which ksmd merges
 * into P1's KSM pages through the stable tree.  Then P1 exits: its KSM
 * pages live on only through P3.  In P3, every KSM page it maps must be
 * tracked (smaps_rollup "KSM:" <= ksm_stat ksm_merging_pages), its pages
 * can be migrated, unmerged and read back intact, and the kernel logs no
 * splat (a KSM page mapped through the migrated-away folio keeps pointing
 * at a stable node that is freed once the new folio goes: use after free).
 *
 * On debug kernels the fault injection knob debugfs ksm/race_delay_us keeps
 * each migration between its refcount check and the move of the stable
 * node, and ksmd between its stable tree lookup and the merge, long enough
 * for the two to meet.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

#define WAIT_S		60	/* bound only: TCG under load is slow */
#define STEP_S		15	/* bound for one step of a round */
#define RUN_S		35	/* no new round after this */
#define MAX_ROUNDS	8
#define NC		4	/* contents (KSM pages) per round */
#define DELAY_US	3000
#define ID_BASE		77000

static long page_size;
static int node[2];
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

static long move_to(char *p, int nid)
{
	void *page = p;
	int status = 0;

	return syscall(SYS_move_pages, 0, 1UL, &page, &nid, &status,
		       MPOL_MF_MOVE_ALL);
}

/* ---- per-process counts ---- */

static long proc_field(pid_t pid, const char *file, const char *key, char sep)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	return ksm_file_field(path, key, sep);
}

static long mapped_ksm(pid_t pid)
{
	long kb = proc_field(pid, "smaps_rollup", "KSM", ':');

	return kb < 0 ? -1 : kb * 1024 / page_size;
}

static long tracked_ksm(pid_t pid)
{
	return proc_field(pid, "ksm_stat", "ksm_merging_pages", ' ');
}

struct proc {
	pid_t pid;
	int cmd;		/* write end: commands */
	int ack;		/* read end: replies */
};

static bool send(struct proc *p, char c)
{
	return write(p->cmd, &c, 1) == 1;
}

/* The next reply of @p; 0 on EOF or error. */
static char ack(struct proc *p)
{
	char c;

	return read(p->ack, &c, 1) == 1 ? c : 0;
}

static bool start(struct proc *p, void (*fn)(int, int, int), int round)
{
	int cmd[2], ackp[2];

	if (pipe(cmd))
		return false;
	if (pipe(ackp))
		return false;
	p->pid = fork();
	if (p->pid < 0)
		return false;
	if (!p->pid) {
		close(cmd[1]);
		close(ackp[0]);
		fn(cmd[0], ackp[1], round);
		_exit(0);
	}
	close(cmd[0]);
	close(ackp[1]);
	p->cmd = cmd[1];
	p->ack = ackp[0];
	return true;
}

/* Exit status of @p (reaped); -1 if it had to be killed. */
static int finish(struct proc *p)
{
	double deadline = ksm_now() + STEP_S;
	int status = 0;

	close(p->cmd);
	close(p->ack);
	while (ksm_now() < deadline) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
		usleep(20000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &status, 0);
	return -1;
}

static char *pages(int n, int round)
{
	char *a = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (a == MAP_FAILED)
		_exit(10);
	madvise(a, n * page_size, MADV_NOHUGEPAGE);
	for (int i = 0; i < n; i++)
		ksm_fill_page(a + i * page_size, ID_BASE + round * NC + i % NC);
	if (madvise(a, n * page_size, MADV_MERGEABLE))
		_exit(11);
	return a;
}

static int verify(char *a, int n, int round, const char *what)
{
	int bad = 0;

	for (int i = 0; i < n; i++)
		bad += !ksm_check_page(a + i * page_size,
				       ID_BASE + round * NC + i % NC, what, i);
	return bad;
}

/* ---- P1: the KSM pages and their movers ---- */

static int stop_movers;
static char *p1_area;

static void *mover(void *arg)
{
	char *p = p1_area + (long)arg * page_size;

	for (int k = 0; !READ_ONCE(stop_movers); k++)
		move_to(p, node[k & 1]);
	return NULL;
}

/* 'm': start the movers; 's': stop them, verify, exit. */
static void p1_main(int cmd, int ackfd, int round)
{
	pthread_t th[NC];
	char c;

	p1_area = pages(2 * NC, round);
	if (write(ackfd, "r", 1) != 1 || read(cmd, &c, 1) != 1 || c != 'm')
		_exit(12);
	for (long i = 0; i < NC; i++)
		if (pthread_create(&th[i], NULL, mover, (void *)i))
			_exit(13);
	if (write(ackfd, "m", 1) != 1)
		_exit(14);
	if (read(cmd, &c, 1) < 0)
		_exit(15);
	WRITE_ONCE(stop_movers, 1);
	for (int i = 0; i < NC; i++)
		pthread_join(th[i], NULL);
	_exit(verify(p1_area, 2 * NC, round, "P1") ? 1 : 0);
}

/* ---- P3: merges into P1's KSM pages, then outlives them ---- */

/* 'x': exercise (migrate, verify, unmerge, verify) and exit. */
static void p3_main(int cmd, int ackfd, int round)
{
	char *a = pages(NC, round);
	int bad = 0;
	char c;

	if (write(ackfd, "r", 1) != 1 || read(cmd, &c, 1) != 1 || c != 'x')
		_exit(12);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < NC; i++)
			move_to(a + i * page_size, node[k & 1]);
	bad += verify(a, NC, round, "P3 after move_pages");
	if (madvise(a, NC * page_size, MADV_UNMERGEABLE))
		_exit(20);
	if (ksm_vma_smaps_kb(a, "KSM") != 0) {
		ksft_print_msg("P3: smaps KSM: %ld kB after MADV_UNMERGEABLE\n",
			       ksm_vma_smaps_kb(a, "KSM"));
		bad++;
	}
	bad += verify(a, NC, round, "P3 after unmerge");
	_exit(bad ? 1 : 0);
}

struct want {
	pid_t pid;
	long n;
};

static bool merged(void *arg)
{
	struct want *w = arg;

	return tracked_ksm(w->pid) == w->n && mapped_ksm(w->pid) == w->n;
}

static bool merged_some(void *arg)
{
	struct want *w = arg;

	return tracked_ksm(w->pid) >= w->n || mapped_ksm(w->pid) >= w->n;
}

/* One round; false when it failed. */
static bool one_round(int round, int kmsg)
{
	struct proc p1, p3;
	struct want w;
	long m, t;
	bool ok = true;
	int st;

	race_delay_off();
	if (!start(&p1, p1_main, round) || ack(&p1) != 'r')
		return false;
	w.pid = p1.pid;
	w.n = 2 * NC;
	if (!ksm_wait_for(merged, &w, STEP_S)) {
		ksft_print_msg("round %d: P1's pages did not merge (%ld tracked)\n",
			       round, tracked_ksm(p1.pid));
		finish(&p1);
		return false;
	}
	if (have_knob)
		ksm_race_delay_set(DELAY_US);
	if (!send(&p1, 'm') || ack(&p1) != 'm' ||
	    !start(&p3, p3_main, round) || ack(&p3) != 'r') {
		finish(&p1);
		return false;
	}
	/* P3 merges into P1's KSM pages while they move */
	w.pid = p3.pid;
	w.n = NC;
	if (!ksm_wait_for(merged_some, &w, STEP_S))
		ksft_print_msg("round %d: P3 merged %ld of %d pages\n", round,
			       tracked_ksm(p3.pid), NC);
	send(&p1, 's');
	st = finish(&p1);
	race_delay_off();
	if (st) {
		ksft_print_msg("round %d: P1 exit status %d\n", round, st);
		ok = false;
	}

	/* ksmd sweeps stale nodes at the start of a scan, every 2 s or so */
	ksm_wait_scans(2, STEP_S);
	usleep(2500 * 1000);
	ksm_wait_scans(2, STEP_S);
	m = mapped_ksm(p3.pid);
	t = tracked_ksm(p3.pid);
	ksft_print_msg("round %d: P3 maps %ld KSM pages, %ld tracked\n",
		       round, m, t);
	if (m < 0 || t < 0 || m > t) {
		ksft_print_msg("round %d: P3 maps %ld KSM pages KSM does not track\n",
			       round, m - t);
		ok = false;
	}
	send(&p3, 'x');
	st = finish(&p3);
	if (st) {
		ksft_print_msg("round %d: P3 exit status %d\n", round, st);
		ok = false;
	}
	if (ksm_kmsg_splats(kmsg) > 0)
		ok = false;
	return ok;
}

int main(void)
{
	struct ksm_knobs saved;
	int kmsg, rounds = 0;
	double end;
	bool ok = true;

	ksft_print_header();
	ksft_set_plan(2);
	page_size = sysconf(_SC_PAGESIZE);
	if (geteuid())
		ksft_exit_skip("must run as root\n");
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable\n");
	if (access("/proc/self/ksm_stat", R_OK) ||
	    ksm_smaps_rollup_kb("KSM") < 0)
		ksft_exit_skip("no ksm_stat or no KSM: line in smaps_rollup\n");
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

	end = ksm_now() + RUN_S;
	while (ok && rounds < MAX_ROUNDS && ksm_now() < end)
		ok = one_round(rounds++, kmsg);
	ksft_test_result(ok, "%d rounds: KSM pages stay tracked, migrate, unmerge intact\n",
			 rounds);

	race_delay_off();
	ksm_restore(&saved);
	ksft_test_result(ksm_kmsg_splats(kmsg) <= 0 && ksm_nothing_shared(NULL),
			 "no kernel splat, nothing left shared\n");
	ksft_finished();
}
