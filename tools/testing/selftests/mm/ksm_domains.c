// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: merge domains (PR_SET_MEMORY_MERGE_DOMAIN,
 * /sys/kernel/mm/ksm/merge_domains).  The ABI rules (EINVAL, EPERM,
 * inheritance over fork and exec, unmerge on change, EBUSY on a mode
 * change while pages are shared, ENOSPC once no fresh id is left), and
 * isolation checked by physical frame: with domains on, no frame is
 * shared by processes of two domains, while processes of one domain still
 * share all their identical pages.
 * Skips on a kernel without merge domains (upstream).
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>

#include "kselftest.h"
#include "ksm_common.h"

#ifndef PR_SET_MEMORY_MERGE_DOMAIN
#define PR_SET_MEMORY_MERGE_DOMAIN	0x6b736d01
#define PR_GET_MEMORY_MERGE_DOMAIN	0x6b736d02
#define PR_MEMORY_MERGE_DOMAIN_NEW	(~0UL)
#endif
#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

#define WAIT_S		180	/* bound only: TCG under load is slow */
#define NR		32	/* pages per process */
#define PAT		4242	/* the content every process holds */
#define MAXP		4

static size_t page_size;

/* Filled by the children, read by the parent. */
struct shared {
	int ready[MAXP];
	int go_exit;
	int domain[MAXP];
	uint64_t pfn[MAXP][NR];
};

static struct shared *sh;

static long set_domain(unsigned long id)
{
	return prctl(PR_SET_MEMORY_MERGE_DOMAIN, id, 0, 0, 0);
}

static long get_domain(void)
{
	return prctl(PR_GET_MEMORY_MERGE_DOMAIN, 0, 0, 0, 0);
}

static char *mergeable_area(uint64_t id, bool zero)
{
	char *p = mmap(NULL, NR * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, NR * page_size, MADV_NOHUGEPAGE);
	for (int i = 0; i < NR; i++) {
		ksm_fill_page(p + i * page_size, id);
		if (zero)
			memset(p + i * page_size, 0, page_size);
	}
	if (madvise(p, NR * page_size, MADV_MERGEABLE)) {
		munmap(p, NR * page_size);
		return NULL;
	}
	return p;
}

/* Drop CAP_SYS_RESOURCE from the effective set of this process. */
static int drop_sys_resource(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	data[CAP_SYS_RESOURCE / 32].effective &= ~(1U << (CAP_SYS_RESOURCE % 32));
	data[CAP_SYS_RESOURCE / 32].permitted &= ~(1U << (CAP_SYS_RESOURCE % 32));
	return syscall(SYS_capset, &hdr, data);
}

/* ---- ABI ---------------------------------------------------------- */

static int test_einval(void)
{
	long before = get_domain();
	int bad = 0;

	if (prctl(PR_SET_MEMORY_MERGE_DOMAIN, 5, 1, 0, 0) != -1 || errno != EINVAL) {
		ksft_print_msg("SET with arg3 != 0: not EINVAL\n");
		bad++;
	}
	if (prctl(PR_SET_MEMORY_MERGE_DOMAIN, 5, 0, 0, 1) != -1 || errno != EINVAL) {
		ksft_print_msg("SET with arg5 != 0: not EINVAL\n");
		bad++;
	}
	if (set_domain(0x80000000UL) != -1 || errno != EINVAL) {
		ksft_print_msg("SET id 2^31: not EINVAL\n");
		bad++;
	}
	if (set_domain(0x100000005UL) != -1 || errno != EINVAL) {
		ksft_print_msg("SET id 2^32+5: not EINVAL\n");
		bad++;
	}
	if (prctl(PR_GET_MEMORY_MERGE_DOMAIN, 1, 0, 0, 0) != -1 || errno != EINVAL) {
		ksft_print_msg("GET with arg2 != 0: not EINVAL\n");
		bad++;
	}
	if (get_domain() != before) {
		ksft_print_msg("domain changed by rejected calls\n");
		bad++;
	}
	return bad ? KSFT_FAIL : KSFT_PASS;
}

static int child_eperm(void)
{
	long id, id2;

	if (drop_sys_resource())
		return 2;
	if (set_domain(5) != -1 || errno != EPERM) {
		ksft_print_msg("unprivileged SET 5: not EPERM\n");
		return 1;
	}
	if (set_domain(0) != -1 || errno != EPERM) {
		ksft_print_msg("unprivileged SET 0: not EPERM\n");
		return 1;
	}
	if (get_domain() != 0) {
		ksft_print_msg("EPERM changed the domain\n");
		return 1;
	}
	id = set_domain(PR_MEMORY_MERGE_DOMAIN_NEW);
	if (id <= 0) {
		ksft_print_msg("unprivileged NEW: %ld (%s)\n", id, strerror(errno));
		return 1;
	}
	if (get_domain() != id || ksm_stat_field("ksm_merge_domain") != id) {
		ksft_print_msg("NEW returned %ld, GET %ld, ksm_stat %ld\n", id,
			       get_domain(), ksm_stat_field("ksm_merge_domain"));
		return 1;
	}
	/* int -1 as variadic argument: NEW as well. */
	id2 = prctl(PR_SET_MEMORY_MERGE_DOMAIN, (unsigned long)(unsigned int)-1,
		    0, 0, 0);
	if (id2 <= 0 || id2 == id) {
		ksft_print_msg("second NEW: %ld after %ld\n", id2, id);
		return 1;
	}
	return 0;
}

static int run_child(int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return KSFT_FAIL;
	if (!pid)
		_exit(fn());
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return KSFT_FAIL;
	if (WEXITSTATUS(status) == 2)
		return KSFT_SKIP;
	return WEXITSTATUS(status) ? KSFT_FAIL : KSFT_PASS;
}

static const char *self_exe;

static int child_inherit(void)
{
	char buf[32];
	int status;
	pid_t pid;

	if (set_domain(77))
		return 1;
	pid = fork();
	if (!pid)
		_exit(get_domain() == 77 ? 0 : 1);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		ksft_print_msg("fork child not in domain 77\n");
		return 1;
	}
	pid = fork();
	if (!pid) {
		snprintf(buf, sizeof(buf), "%d", 77);
		execl(self_exe, self_exe, "--expect-domain", buf, NULL);
		_exit(3);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		ksft_print_msg("exec'd child not in domain 77 (status %d)\n",
			       status);
		return 1;
	}
	/* A fresh domain is kept over exec too. */
	long id = set_domain(PR_MEMORY_MERGE_DOMAIN_NEW);

	if (id <= 0)
		return 1;
	pid = fork();
	if (!pid) {
		snprintf(buf, sizeof(buf), "%ld", id);
		execl(self_exe, self_exe, "--expect-domain", buf, NULL);
		_exit(3);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		ksft_print_msg("exec'd child not in fresh domain %ld\n", id);
		return 1;
	}
	return 0;
}

static bool self_merged(void *arg)
{
	return ksm_self_merging() >= *(long *)arg;
}

/* Changing domain unmerges the process first; EBUSY on a mode change. */
static int child_unmerge(void)
{
	long want = NR;
	char *p = mergeable_area(PAT, false);

	if (!p)
		return 1;
	if (!ksm_wait_for(self_merged, &want, WAIT_S)) {
		ksft_print_msg("pages did not merge: %ld\n", ksm_self_merging());
		return 1;
	}
	if (ksm_write("merge_domains", 2) != -EBUSY ||
	    ksm_read("merge_domains") != 1) {
		ksft_print_msg("mode change while shared: not EBUSY\n");
		return 1;
	}
	/* ksmd stopped, else it merges the pages again at once. */
	ksm_write("run", 0);
	if (set_domain(31)) {
		ksft_print_msg("SET 31: %s\n", strerror(errno));
		return 1;
	}
	if (ksm_self_merging() != 0 || ksm_vma_smaps_kb(p, "KSM") > 0) {
		ksft_print_msg("after the change: %ld KSM pages, KSM %ld kB\n",
			       ksm_self_merging(), ksm_vma_smaps_kb(p, "KSM"));
		return 1;
	}
	for (int i = 0; i < NR; i++)
		if (!ksm_check_page(p + i * page_size, PAT, "unmerged", i))
			return 1;
	/* They merge again, in the new domain. */
	ksm_write("run", 1);
	if (!ksm_wait_for(self_merged, &want, WAIT_S)) {
		ksft_print_msg("no merge in the new domain: %ld\n",
			       ksm_self_merging());
		return 1;
	}
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
}

/* A signal during the unmerge: the error comes back, the domain stays. */
static int child_interrupted(void)
{
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	long want = NR, r;
	char *p = mergeable_area(PAT + 1, false);

	if (!p)
		return 1;
	if (!ksm_wait_for(self_merged, &want, WAIT_S))
		return 1;
	sigaction(SIGUSR1, &sa, NULL);
	if (ksm_race_delay_set(100000))
		return 2;
	if (!fork()) {
		usleep(300000);
		kill(getppid(), SIGUSR1);
		_exit(0);
	}
	r = set_domain(41);
	ksm_race_delay_set(0);
	wait(NULL);
	if (r != -1 || errno != EINTR) {
		ksft_print_msg("interrupted SET returned %ld (%s)\n", r,
			       strerror(errno));
		return 1;
	}
	if (get_domain() != 0) {
		ksft_print_msg("domain %ld after a failed change\n",
			       get_domain());
		return 1;
	}
	for (int i = 0; i < NR; i++)
		if (!ksm_check_page(p + i * page_size, PAT + 1, "interrupted", i))
			return 1;
	return 0;
}

/* ---- every fresh id handed out ------------------------------------ */

/* Debug kernels: the next fresh domain id; 0 as if all were handed out. */
#define NEXT_DOMAIN	"/sys/kernel/debug/ksm/next_domain"

/* Read NEXT_DOMAIN, then write @set unless it is < 0; old value or -1. */
static long next_domain(long set)
{
	char buf[32];
	long old = ksm_read_long_file(NEXT_DOMAIN);
	int fd, n;

	if (old < 0 || set < 0)
		return old;
	fd = open(NEXT_DOMAIN, O_WRONLY);
	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld", set);
	if (write(fd, buf, n) != n)
		old = -1;
	close(fd);
	return old;
}

/* The process never registered with KSM: not under merge_domains=2. */
static bool unregistered(void)
{
	bool ok = true;

	if (ksm_write("merge_domains", 2)) {
		ksft_print_msg("merge_domains=2 refused: %s\n", strerror(errno));
		return false;
	}
	/* registered, it would have been given a domain of its own */
	if (get_domain() != 0) {
		ksft_print_msg("a failed NEW left the process registered (domain %ld)\n",
			       get_domain());
		ok = false;
	}
	ksm_write("merge_domains", 0);
	return ok;
}

static bool unshared_stable(void *arg)
{
	return ksm_read("pages_unshared") >= *(long *)arg;
}

/*
 * No fresh id left: NEW fails with ENOSPC and leaves the process out of
 * KSM, and merge_domains=2 fails with ENOSPC and keeps ksmd's unstable
 * trees.
 */
static int child_exhausted(void)
{
	long saved, want = NR, r, unshared = 0;
	int ret = 0, err;
	char *p;

	saved = next_domain(0);
	if (saved < 0)
		return 2;
	r = set_domain(PR_MEMORY_MERGE_DOMAIN_NEW);
	err = errno;
	next_domain(saved);
	if (r != -1 || err != ENOSPC) {
		ksft_print_msg("NEW with no id left returned %ld (%s)\n", r,
			       strerror(err));
		return 1;
	}
	if (!unregistered())
		return 1;

	/* unique pages stay in the unstable tree only while visited */
	ksm_write("smart_scan", 0);
	p = ksm_map_patterns(NR, PAT + 100);
	if (!p || !ksm_wait_for(unshared_stable, &want, WAIT_S)) {
		ksft_print_msg("%d unique pages never reached the unstable tree\n", NR);
		ksm_write("smart_scan", 1);
		return 1;
	}
	/* A pass may just have begun: stop ksmd where the tree holds some. */
	for (int i = 0; i < 100 && unshared < 1; i++) {
		ksm_write("run", 1);
		ksm_wait_for(unshared_stable, &want, WAIT_S);
		ksm_write("run", 0);
		unshared = ksm_read("pages_unshared");
	}
	if (unshared < 1) {
		ksft_print_msg("ksmd never stopped with pages in the unstable tree\n");
		ksm_write("run", 1);
		ksm_write("smart_scan", 1);
		return 1;
	}
	saved = next_domain(0);
	r = ksm_write("merge_domains", 2);
	next_domain(saved);
	if (r != -ENOSPC || ksm_read("merge_domains") != 0) {
		ksft_print_msg("merge_domains=2 with no id left: %ld, now %ld\n",
			       r, ksm_read("merge_domains"));
		ret = 1;
	}
	if (ksm_read("pages_unshared") != unshared) {
		ksft_print_msg("unstable tree dropped by a failed write (%ld -> %ld)\n",
			       unshared, ksm_read("pages_unshared"));
		ret = 1;
	}
	ksm_write("run", 1);
	ksm_write("smart_scan", 1);
	return ret;
}

/* ---- isolation by frame ------------------------------------------- */

/*
 * Child @idx: join @domain (>= 0), or stay (-1), or register first and
 * fork (-2 as the parent of idx+1 under merge_domains=2); fill NR pages of
 * the common content, publish its frames once asked to exit.
 */
static void worker_publish(int idx, char *p);

static void worker(int idx, long domain, bool zero)
{
	char *p;

	if (domain >= 0 && set_domain(domain))
		_exit(1);
	p = mergeable_area(PAT, zero);
	if (!p)
		_exit(1);
	worker_publish(idx, p);
}

/* Publish @p's frames once asked to exit, then exit when told. */
static void worker_publish(int idx, char *p)
{
	sh->domain[idx] = get_domain();
	WRITE_ONCE(sh->ready[idx], 1);
	while (!READ_ONCE(sh->go_exit))
		usleep(10000);
	for (int i = 0; i < NR; i++)
		sh->pfn[idx][i] = ksm_pfn_of(p + i * page_size);
	WRITE_ONCE(sh->ready[idx], 2);
	while (READ_ONCE(sh->go_exit) != 2)
		usleep(10000);
	_exit(0);
}

struct counts {
	long shared, sharing, zero;
};

static bool counts_reached(void *arg)
{
	struct counts *c = arg;

	return ksm_read("pages_shared") == c->shared &&
	       ksm_read("pages_sharing") == c->sharing &&
	       ksm_read("ksm_zero_pages") == c->zero;
}

static bool all_ready(int n, int state)
{
	double deadline = ksm_now() + 60;

	while (ksm_now() < deadline) {
		int ok = 0;

		for (int i = 0; i < n; i++)
			ok += READ_ONCE(sh->ready[i]) == state;
		if (ok == n)
			return true;
		usleep(10000);
	}
	return false;
}

static bool share_frame(int a, int b)
{
	for (int i = 0; i < NR; i++)
		for (int j = 0; j < NR; j++)
			if (sh->pfn[a][i] && sh->pfn[a][i] == sh->pfn[b][j])
				return true;
	return false;
}

static bool one_frame(int a, int b)
{
	for (int i = 0; i < NR; i++)
		if (!sh->pfn[a][i] || sh->pfn[a][i] != sh->pfn[a][0] ||
		    sh->pfn[b][i] != sh->pfn[a][0])
			return false;
	return true;
}

/*
 * Run @n workers (domains @dom, -1 for none) under merge_domains=@mode,
 * wait for @want, then check frames: @same pairs share one frame, every
 * other pair shares none.
 */
static int isolation(const char *what, int mode, int n, const long *dom,
		     struct counts want, const int (*same)[2], int nsame,
		     bool zero)
{
	pid_t pid[MAXP];
	int ret = KSFT_PASS;

	memset(sh, 0, sizeof(*sh));
	ksm_reset(&ret, what, WAIT_S);
	if (ksm_write("merge_domains", mode) ||
	    ksm_write("use_zero_pages", zero)) {
		ksft_print_msg("%s: cannot set merge_domains=%d\n", what, mode);
		return KSFT_FAIL;
	}
	for (int i = 0; i < n; i++) {
		pid[i] = fork();
		if (!pid[i])
			worker(i, dom[i], zero);
	}
	if (!all_ready(n, 1)) {
		ksft_print_msg("%s: workers not ready\n", what);
		ret = KSFT_FAIL;
	} else if (!ksm_wait_for(counts_reached, &want, WAIT_S)) {
		ksft_print_msg("%s: shared %ld (%ld) sharing %ld (%ld) zero %ld (%ld)\n",
			       what, ksm_read("pages_shared"), want.shared,
			       ksm_read("pages_sharing"), want.sharing,
			       ksm_read("ksm_zero_pages"), want.zero);
		ret = KSFT_FAIL;
	}
	WRITE_ONCE(sh->go_exit, 1);
	if (!all_ready(n, 2))
		ret = KSFT_FAIL;
	for (int a = 0; a < n && ret == KSFT_PASS && !zero; a++) {
		for (int b = a + 1; b < n; b++) {
			bool must = false;

			for (int k = 0; k < nsame; k++)
				must |= (same[k][0] == a && same[k][1] == b);
			if (must && !one_frame(a, b)) {
				ksft_print_msg("%s: %d, %d (domains %d, %d) not in one frame\n",
					       what, a, b, sh->domain[a], sh->domain[b]);
				ret = KSFT_FAIL;
			}
			if (!must && share_frame(a, b)) {
				ksft_print_msg("%s: %d, %d (domains %d, %d) share a frame\n",
					       what, a, b, sh->domain[a], sh->domain[b]);
				ret = KSFT_FAIL;
			}
		}
	}
	WRITE_ONCE(sh->go_exit, 2);
	for (int i = 0; i < n; i++)
		waitpid(pid[i], NULL, 0);
	ksm_reset(&ret, what, WAIT_S);
	ksm_write("use_zero_pages", 0);
	ksm_write("merge_domains", 0);
	return ret;
}

/* Mode 2: worker 0 registers and forks worker 1: they share. */
static int isolate_forks(void)
{
	struct counts want = { .shared = 2, .sharing = 3 * NR - 2 };
	pid_t pid[3];
	int ret = KSFT_PASS;
	char *p;

	memset(sh, 0, sizeof(*sh));
	ksm_reset(&ret, "mode 2", WAIT_S);
	if (ksm_write("merge_domains", 2))
		return KSFT_FAIL;
	pid[0] = fork();
	if (!pid[0]) {
		/* Register, then fork: the child is in our domain. */
		p = mergeable_area(PAT + 7, false);
		if (!p)
			_exit(1);
		pid[1] = fork();
		if (!pid[1])
			worker(1, -1, false);
		worker(0, -1, false);
	}
	pid[2] = fork();
	if (!pid[2])
		worker(2, -1, false);
	/* The PAT + 7 area of worker 0 (and its copy in 1) adds one KSM page. */
	want.shared++;
	want.sharing += 2 * NR - 1;
	if (!all_ready(3, 1) || !ksm_wait_for(counts_reached, &want, WAIT_S)) {
		ksft_print_msg("mode 2: shared %ld (want %ld) sharing %ld (want %ld)\n",
			       ksm_read("pages_shared"), want.shared,
			       ksm_read("pages_sharing"), want.sharing);
		ret = KSFT_FAIL;
	}
	WRITE_ONCE(sh->go_exit, 1);
	if (!all_ready(3, 2))
		ret = KSFT_FAIL;
	if (ret == KSFT_PASS) {
		if (sh->domain[0] <= 0 || sh->domain[0] != sh->domain[1] ||
		    sh->domain[2] <= 0 || sh->domain[2] == sh->domain[0]) {
			ksft_print_msg("mode 2 domains: %d %d %d\n", sh->domain[0],
				       sh->domain[1], sh->domain[2]);
			ret = KSFT_FAIL;
		}
		if (!one_frame(0, 1) || share_frame(0, 2) || share_frame(1, 2)) {
			ksft_print_msg("mode 2: fork pair not in one frame, or shared\n");
			ret = KSFT_FAIL;
		}
	}
	WRITE_ONCE(sh->go_exit, 2);
	waitpid(pid[2], NULL, 0);
	waitpid(pid[0], NULL, 0);
	ksm_reset(&ret, "mode 2", WAIT_S);
	ksm_write("merge_domains", 0);
	return ret;
}

/*
 * Mode 1: worker 0 fills its pages and forks worker 1 before ksmd runs;
 * worker 1 moves to a fresh domain.  Worker 2, in worker 0's domain,
 * holds the same content.  Merging must not turn a page that 0 and 1
 * still share (copy-on-write) into a KSM page in place, or 1 would share
 * it with domain 0: 0 and 2 end up on one KSM page, 1 on its own, and 1
 * shares no frame with either.
 */
static int fork_isolate(void)
{
	struct counts want = { .shared = 2, .sharing = 3 * NR - 2 };
	pid_t pid[3];
	int ret = KSFT_PASS;
	char *p;

	memset(sh, 0, sizeof(*sh));
	ksm_reset(&ret, "fork", WAIT_S);
	if (ksm_write("run", 0) || ksm_write("merge_domains", 1))
		return KSFT_FAIL;
	pid[0] = fork();
	if (!pid[0]) {
		p = mergeable_area(PAT, false);
		if (!p)
			_exit(1);
		pid[1] = fork();
		if (!pid[1]) {
			if (set_domain(PR_MEMORY_MERGE_DOMAIN_NEW) <= 0)
				_exit(1);
			worker_publish(1, p);
		}
		worker_publish(0, p);
	}
	/*
	 * Worker 2 registers after 0, so that ksmd meets 0's pages first
	 * and would merge them with each other, in place, if it may.
	 */
	if (!all_ready(2, 1)) {
		ksft_print_msg("fork: workers 0, 1 not ready\n");
		ret = KSFT_FAIL;
	}
	pid[2] = fork();
	if (!pid[2])
		worker(2, -1, false);
	if (!all_ready(3, 1) || ksm_write("run", 1) ||
	    !ksm_wait_for(counts_reached, &want, WAIT_S))
		ksft_print_msg("fork: shared %ld (want %ld) sharing %ld (want %ld)\n",
			       ksm_read("pages_shared"), want.shared,
			       ksm_read("pages_sharing"), want.sharing);
	WRITE_ONCE(sh->go_exit, 1);
	if (!all_ready(3, 2))
		ret = KSFT_FAIL;
	if (ret == KSFT_PASS) {
		if (sh->domain[1] <= 0 || sh->domain[0] || sh->domain[2]) {
			ksft_print_msg("fork domains: %d %d %d\n", sh->domain[0],
				       sh->domain[1], sh->domain[2]);
			ret = KSFT_FAIL;
		}
		if (share_frame(1, 0) || share_frame(1, 2)) {
			ksft_print_msg("fork: child in domain %d shares a frame with domain 0\n",
				       sh->domain[1]);
			ret = KSFT_FAIL;
		}
		if (!one_frame(0, 2)) {
			ksft_print_msg("fork: 0 and 2 (domain 0) not on one KSM page\n");
			ret = KSFT_FAIL;
		}
	}
	WRITE_ONCE(sh->go_exit, 2);
	waitpid(pid[2], NULL, 0);
	waitpid(pid[0], NULL, 0);
	ksm_reset(&ret, "fork", WAIT_S);
	ksm_write("merge_domains", 0);
	return ret;
}

int main(int argc, char **argv)
{
	struct ksm_knobs saved;
	int r;

	page_size = sysconf(_SC_PAGESIZE);
	if (argc == 3 && !strcmp(argv[1], "--expect-domain"))
		return get_domain() == atol(argv[2]) ? 0 : 1;
	self_exe = argv[0];

	ksft_print_header();
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable (not root, or no KSM)\n");
	if (ksm_read("merge_domains") < 0)
		ksft_exit_skip("no merge domains (not our KSM)\n");
	ksft_set_plan(11);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || !ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("setup failed\n");

	ksm_report(run_child(test_einval), "EINVAL on bad arguments, nothing changed");
	ksm_report(run_child(child_eperm), "EPERM without CAP_SYS_RESOURCE; NEW needs none");
	ksm_report(run_child(child_inherit), "domain inherited over fork and kept over exec");

	ksm_write("merge_domains", 1);
	ksm_report(run_child(child_unmerge),
		   "changing domain unmerges first; EBUSY on mode change");
	r = access(RACE_DELAY, W_OK) ? KSFT_SKIP : run_child(child_interrupted);
	ksm_report(r, "a signal during the change: EINTR, domain unchanged");
	{
		int ret = KSFT_PASS;

		ksm_reset(&ret, "unmerge", WAIT_S);
		ksm_write("merge_domains", 0);
	}
	r = access(NEXT_DOMAIN, W_OK) ? KSFT_SKIP : run_child(child_exhausted);
	ksm_report(r, "no fresh id left: ENOSPC, nothing changed");
	{
		int ret = KSFT_PASS;

		ksm_reset(&ret, "exhausted", WAIT_S);
	}

	{
		/* 0, 2 in domain 11, 1 in 12, 3 chose none (domain 0). */
		static const long dom[] = { 11, 12, 11, -1 };
		static const int same[][2] = { { 0, 2 } };
		struct counts want = { .shared = 3, .sharing = 4 * NR - 3 };

		ksm_report(isolation("mode 1", 1, 4, dom, want, same, 1, false),
			   "merge_domains=1: frames shared only within a domain");
	}
	ksm_report(isolate_forks(),
		   "merge_domains=2: separate processes isolated, forks share");
	ksm_report(fork_isolate(),
		   "a fork that changed domain shares no page with its parent's domain");
	{
		static const long dom[] = { 11, 12, -1, 12 };
		static const int same[][2] = { { 0, 1 }, { 0, 2 }, { 0, 3 },
					       { 1, 2 }, { 1, 3 }, { 2, 3 } };
		struct counts want = { .shared = 1, .sharing = 4 * NR - 1 };

		ksm_report(isolation("mode 0", 0, 4, dom, want, same, 6, false),
			   "merge_domains=0: domains ignored, all share");
	}
	{
		static const long dom[] = { 11, 12 };
		struct counts want = { .zero = 2 * NR };

		ksm_report(isolation("zero", 1, 2, dom, want, NULL, 0, true),
			   "zero pages merge across domains (use_zero_pages)");
	}

	ksm_restore(&saved);
	ksm_write("merge_domains", 0);
	ksft_finished();
}
