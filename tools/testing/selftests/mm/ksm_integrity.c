// SPDX-License-Identifier: GPL-2.0
/*
 * KSM data integrity across processes.  Four processes (the parent and three
 * children) each hold a region of pages drawn from four shared patterns plus
 * unique and zero pages; two enable KSM with MADV_MERGEABLE, two with
 * PR_SET_MEMORY_MERGE.  Once ksmd merged every candidate page, every byte of
 * every page of every process is checked after each phase: the merge, COW
 * writes into merged pages, forked children that verify, write and exit,
 * run=2, merging again, and per-process unmerging (MADV_UNMERGEABLE or
 * PR_SET_MEMORY_MERGE 0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
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

#define WAIT_S		180	/* bound only: TCG under load is slow */
#define REPLY_S		240	/* a verify of a slow debug guest */
#define NPROC		4
#define NPAGES		128	/* per process */

enum kind { PAT, UNIQ, ZERO };

/* per process state (each process has its own copy after fork) */
static long page_size;
static int me;				/* process index */
static uint64_t *region;
static enum kind kinds[NPAGES];
static uint64_t base_id[NPAGES];
static int mod_word[NPAGES];		/* -1: unmodified */
static uint64_t mod_tag[NPAGES];

static struct ksm_knobs saved;
static pid_t pids[NPROC];
static int cmd_fd[NPROC], res_fd[NPROC];
static uintptr_t addrs[NPROC];

/* ---- content ---- */

static uint64_t pat_word(uint64_t id, size_t i)
{
	uint64_t x = (id + 3) * 0x9E3779B97F4A7C15ULL ^ (i * 0xBF58476D1CE4E5B9ULL);

	return x ^ (x >> 30) ^ 0x8080808080808080ULL;
}

static void layout(void)
{
	for (int i = 0; i < NPAGES; i++) {
		int k = i % 8;

		mod_word[i] = -1;
		if (k <= 3 || k == 7) {
			kinds[i] = PAT;
			base_id[i] = k == 7 ? 0 : k;
		} else if (k == 6) {
			kinds[i] = ZERO;
			base_id[i] = 0;
		} else {
			kinds[i] = UNIQ;
			base_id[i] = 1000 + me * NPAGES + i;
		}
	}
}

static int nr_mergeable(void)
{
	int n = 0;

	for (int i = 0; i < NPAGES; i++)
		n += kinds[i] != UNIQ && mod_word[i] < 0;
	return n;
}

static uint64_t *page_at(int i)
{
	return region + i * (page_size / 8);
}

static uint64_t expected_word(int i, size_t w)
{
	if (mod_word[i] == (int)w)
		return mod_tag[i];
	if (kinds[i] == ZERO)
		return 0;
	return pat_word(base_id[i], w);
}

static void fill(void)
{
	for (int i = 0; i < NPAGES; i++) {
		uint64_t *p = page_at(i);

		for (size_t w = 0; w < page_size / 8; w++)
			p[w] = expected_word(i, w);
	}
}

/* Every word of every page; returns the number of bad pages. */
static int verify(const char *when)
{
	int bad = 0;

	for (int i = 0; i < NPAGES; i++) {
		const uint64_t *p = page_at(i);

		for (size_t w = 0; w < page_size / 8; w++) {
			uint64_t e = expected_word(i, w);

			if (p[w] != e) {
				if (bad < 8)
					ksft_print_msg("proc %d %s: page %d word %zu: %llx!=%llx\n",
						       me, when, i, w,
						       (unsigned long long)e,
						       (unsigned long long)p[w]);
				bad++;
				break;
			}
		}
	}
	return bad;
}

/* One 8-byte write, unique to (process, page, @gen), into page @i. */
static void modify(int i, int gen)
{
	int w = (i * 37 + me * 11 + gen * 5) % (page_size / 8);
	uint64_t tag = 0xC0DE000000000000ULL | (uint64_t)gen << 32 |
		       (uint64_t)me << 16 | (uint64_t)i;

	page_at(i)[w] = tag;
	mod_word[i] = w;
	mod_tag[i] = tag;
}

/* "KSM:" of the VMA of /proc/@pid/smaps that starts at @addr; -1 if none. */
static long vma_ksm_kb(pid_t pid, uintptr_t addr)
{
	char path[64], line[512];
	bool in = false;
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;

		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = start <= addr && addr < end;
			continue;
		}
		if (in && !strncmp(line, "KSM:", 4)) {
			kb = strtol(line + 4, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* ---- phases run inside every process ---- */

static bool uses_prctl(void)
{
	return me >= 2;
}

static int do_setup(void)
{
	int bad = 0;

	if (uses_prctl()) {
		if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
			ksft_print_msg("proc %d: PR_SET_MEMORY_MERGE: %s\n", me,
				       strerror(errno));
			bad++;
		} else if (prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != 1) {
			ksft_print_msg("proc %d: PR_GET_MEMORY_MERGE != 1\n", me);
			bad++;
		}
	}
	region = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) {
		ksft_print_msg("proc %d: mmap: %s\n", me, strerror(errno));
		return bad + 1;
	}
	madvise(region, NPAGES * page_size, MADV_NOHUGEPAGE);
	layout();
	fill();
	if (!uses_prctl() &&
	    madvise(region, NPAGES * page_size, MADV_MERGEABLE)) {
		ksft_print_msg("proc %d: MADV_MERGEABLE: %s\n", me,
			       strerror(errno));
		bad++;
	}
	return bad;
}

/* COW: write into merged pages of every kind, then check everything. */
static int do_cow(void)
{
	for (int i = 0; i < NPAGES; i++) {
		if ((i % 16 == 0) ||		/* pattern 0 */
		    (i % 32 == 1) ||		/* pattern 1 */
		    (i % 16 == 6) ||		/* zero */
		    (i % 32 == 4))		/* unique */
			modify(i, 1);
	}
	return verify("after COW writes");
}

/*
 * A forked child checks the inherited (merged) memory, writes into merged
 * pages, checks again and exits; then this process checks its own copy.
 */
static int do_fork(void)
{
	double deadline = ksm_now() + REPLY_S;
	pid_t pid;
	int st, bad;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		ksft_print_msg("proc %d: fork: %s\n", me, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		bad = verify("forked child, inherited");
		for (int i = 0; i < NPAGES; i++)
			if (i % 8 == 7 || i % 8 == 2 || i % 32 == 14 ||
			    i % 32 == 5)
				modify(i, 2);
		bad += verify("forked child, after writes");
		fflush(stdout);
		_exit(bad ? 1 : 0);
	}
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (ksm_now() > deadline) {
			ksft_print_msg("proc %d: forked child %d hangs\n", me, pid);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return 1;
		}
		usleep(10000);
	}
	bad = !WIFEXITED(st) || WEXITSTATUS(st);
	if (bad)
		ksft_print_msg("proc %d: forked child failed (status %#x)\n", me,
			       st);
	return bad + verify("after forked child exited");
}

/* Leave KSM the way this process entered it; nothing may stay merged. */
static int do_unmerge(void)
{
	int bad = 0;
	long kb;

	if (uses_prctl()) {
		if (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0) ||
		    prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != 0) {
			ksft_print_msg("proc %d: PR_SET_MEMORY_MERGE 0: %s\n", me,
				       strerror(errno));
			bad++;
		}
	} else if (madvise(region, NPAGES * page_size, MADV_UNMERGEABLE)) {
		ksft_print_msg("proc %d: MADV_UNMERGEABLE: %s\n", me,
			       strerror(errno));
		bad++;
	}
	kb = vma_ksm_kb(getpid(), (uintptr_t)region);
	if (kb != 0) {
		ksft_print_msg("proc %d: KSM: %ld kB after unmerging\n", me, kb);
		bad++;
	}
	return bad + verify("after per-process unmerge");
}

static int run_cmd(char c)
{
	switch (c) {
	case 'V':
		return verify("verify");
	case 'W':
		return do_cow();
	case 'F':
		return do_fork();
	case 'U':
		return do_unmerge();
	}
	return 1;
}

struct reply {
	uintptr_t addr;
	int bad;
	int mergeable;
};

static void child_main(int cfd, int rfd)
{
	struct reply r = { 0 };
	char c;

	r.bad = do_setup();
	r.addr = (uintptr_t)region;
	r.mergeable = nr_mergeable();
	fflush(stdout);
	if (write(rfd, &r, sizeof(r)) != sizeof(r))
		_exit(2);
	while (read(cfd, &c, 1) == 1) {
		if (c == 'Q')
			_exit(0);
		r.bad = run_cmd(c);
		r.mergeable = nr_mergeable();
		fflush(stdout);
		if (write(rfd, &r, sizeof(r)) != sizeof(r))
			_exit(2);
	}
	_exit(3);
}

/* ---- parent side ---- */

static int mergeable[NPROC];

static bool get_reply(int p, struct reply *r)
{
	struct pollfd pfd = { .fd = res_fd[p], .events = POLLIN };

	if (poll(&pfd, 1, REPLY_S * 1000) != 1 ||
	    read(res_fd[p], r, sizeof(*r)) != sizeof(*r)) {
		ksft_print_msg("proc %d (pid %d): no reply in %d s\n", p, pids[p],
			       REPLY_S);
		return false;
	}
	mergeable[p] = r->mergeable;
	return true;
}

/* Runs @c in every process (children in parallel); number of failures. */
static int all(char c)
{
	struct reply r;
	int bad = 0;

	for (int p = 1; p < NPROC; p++)
		if (write(cmd_fd[p], &c, 1) != 1)
			bad++;
	bad += run_cmd(c) ? 1 : 0;
	mergeable[0] = nr_mergeable();
	for (int p = 1; p < NPROC; p++) {
		if (!get_reply(p, &r))
			bad++;
		else if (r.bad)
			bad++;
	}
	return bad;
}

static bool all_merged(void *arg)
{
	for (int p = 0; p < NPROC; p++)
		if (vma_ksm_kb(pids[p], addrs[p]) !=
		    mergeable[p] * (page_size / 1024))
			return false;
	return true;
}

static bool none_merged(void *arg)
{
	for (int p = 0; p < NPROC; p++)
		if (vma_ksm_kb(pids[p], addrs[p]) != 0)
			return false;
	return ksm_nothing_shared(NULL);
}

static void show_ksm(const char *when)
{
	for (int p = 0; p < NPROC; p++)
		ksft_print_msg("%s: proc %d KSM: %ld kB, expected %ld kB\n", when,
			       p, vma_ksm_kb(pids[p], addrs[p]),
			       mergeable[p] * (page_size / 1024));
	ksft_print_msg("%s: pages_shared %ld pages_sharing %ld full_scans %ld\n",
		       when, ksm_read("pages_shared"), ksm_read("pages_sharing"),
		       ksm_read("full_scans"));
}

static int wait_merged(const char *when)
{
	if (ksm_wait_for(all_merged, NULL, WAIT_S))
		return 0;
	show_ksm(when);
	return 1;
}

static void stop_children(void)
{
	char q = 'Q';

	for (int p = 1; p < NPROC; p++) {
		if (pids[p] <= 0)
			continue;
		if (write(cmd_fd[p], &q, 1) != 1)
			kill(pids[p], SIGKILL);
	}
}

static int reap_children(void)
{
	int bad = 0, st;

	for (int p = 1; p < NPROC; p++) {
		double deadline = ksm_now() + WAIT_S;
		pid_t r;

		if (pids[p] <= 0)
			continue;
		while ((r = waitpid(pids[p], &st, WNOHANG)) == 0 &&
		       ksm_now() < deadline)
			usleep(10000);
		if (r == 0) {
			kill(pids[p], SIGKILL);
			waitpid(pids[p], &st, 0);
			bad++;
		} else if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			bad++;
		}
	}
	return bad;
}

int main(void)
{
	struct reply r;
	int bad;

	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	if (geteuid())
		ksft_exit_skip("needs root\n");
	if (access(KSM_SYSFS "run", R_OK))
		ksft_exit_skip("no KSM\n");
	if (prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) < 0)
		ksft_exit_skip("no PR_GET_MEMORY_MERGE: %s\n", strerror(errno));

	ksft_set_plan(8);
	ksm_save(&saved);
	if (!ksm_settle(WAIT_S) || ksm_write("use_zero_pages", 0) ||
	    ksm_write("merge_across_nodes", 1)) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("cannot reset KSM state\n");
	}

	/* children first, so none of them inherits the parent's region */
	bad = 0;
	pids[0] = getpid();
	for (int p = 1; p < NPROC; p++) {
		int c[2], res[2];

		if (pipe(c) || pipe(res)) {
			ksm_restore(&saved);
			ksft_exit_fail_msg("pipe: %s\n", strerror(errno));
		}
		fflush(stdout);
		pids[p] = fork();
		if (pids[p] < 0) {
			stop_children();
			reap_children();
			ksm_restore(&saved);
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		}
		if (pids[p] == 0) {
			for (int q = 1; q < p; q++) {
				close(cmd_fd[q]);
				close(res_fd[q]);
			}
			close(c[1]);
			close(res[0]);
			me = p;
			child_main(c[0], res[1]);
		}
		close(c[0]);
		close(res[1]);
		cmd_fd[p] = c[1];
		res_fd[p] = res[0];
	}
	me = 0;
	bad += do_setup();
	addrs[0] = (uintptr_t)region;
	mergeable[0] = nr_mergeable();
	for (int p = 1; p < NPROC; p++) {
		if (!get_reply(p, &r) || r.bad)
			bad++;
		addrs[p] = r.addr;
	}
	ksft_test_result(!bad, "setup: 2 processes MADV_MERGEABLE, 2 PR_SET_MEMORY_MERGE\n");
	if (bad)
		goto out;

	if (ksm_fast()) {
		ksft_test_result_fail("cannot start ksmd\n");
		goto out;
	}
	bad = wait_merged("initial merge");
	if (!bad)
		ksft_print_msg("merged: pages_shared %ld pages_sharing %ld\n",
			       ksm_read("pages_shared"), ksm_read("pages_sharing"));
	ksft_test_result(!bad, "every candidate page of every process merged\n");

	ksft_test_result(!all('V'), "every byte intact after merging\n");

	/* writes into merged pages, checked while ksmd keeps scanning */
	bad = all('W');
	if (!ksm_wait_scans(2, WAIT_S)) {
		ksft_print_msg("ksmd did not complete 2 full scans in %d s\n",
			       WAIT_S);
		bad++;
	}
	bad += all('V');
	ksft_test_result(!bad, "COW writes into merged pages: every byte intact\n");

	ksft_test_result(!all('F'), "forked children verify, write, exit: parents intact\n");

	bad = 0;
	if (ksm_write("run", 2) || !ksm_wait_for(none_merged, NULL, WAIT_S)) {
		show_ksm("run=2");
		bad++;
	}
	bad += all('V');
	ksft_test_result(!bad, "run=2: nothing merged, every byte intact\n");

	/* merge again: the written pages are unique now, the rest merges */
	bad = ksm_fast() ? 1 : wait_merged("merge again");
	bad += all('V');
	ksft_test_result(!bad, "merged again after run=2, every byte intact\n");

	bad = all('U');
	ksft_test_result(!bad, "MADV_UNMERGEABLE / PR_SET_MEMORY_MERGE 0: unmerged, intact\n");

out:
	stop_children();
	if (reap_children())
		ksft_print_msg("a child process failed or hung\n");
	ksm_restore(&saved);
	ksft_finished();
}
