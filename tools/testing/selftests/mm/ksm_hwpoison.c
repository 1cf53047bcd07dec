// SPDX-License-Identifier: GPL-2.0
/*
 * KSM and memory errors.
 *
 * MADV_SOFT_OFFLINE on a merged page migrates the KSM page away from the
 * offlined frame: every sharer keeps its data and stays merged (all sharers
 * map the same new frame), and writes afterwards stay private.
 *
 * MADV_HWPOISON on a merged page, injected by a forked child that shares
 * the KSM pages: the child may get SIGBUS and the poisoned page must not be
 * readable in it; in the child and the parent, pages of every other content
 * must stay readable and intact, and sharers of the poisoned content may get
 * SIGBUS but must never read wrong data.  The parent then drops the poisoned
 * entries, rewrites them, and they merge again.  No kernel splat anywhere.
 *
 * MADV_HWPOISON permanently takes a page frame out of use; set
 * KSM_HWPOISON_NO_INJECT=1 to skip that part when not running in a
 * throw-away VM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
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
#include "vm_util.h"
#include "ksm_common.h"

#ifndef MADV_HWPOISON
#define MADV_HWPOISON 100
#endif
#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101
#endif

#define WAIT_S 180	/* bound only: TCG under load is slow */
#define GROUPS 4
#define DUPS 64			/* pages 0..DUPS-1: content i % GROUPS */
#define NPAGES (DUPS + 8)	/* then 8 pages of unique content */

static long page_size;
static int kmsg_fd = -1;
static struct ksm_knobs saved;

/* ---- expected contents and counts ---- */

static uint64_t page_id(size_t i)
{
	return i < DUPS ? i % GROUPS : 100 + i;
}

static const struct ksm_expect merged = {
	.shared = GROUPS, .sharing = DUPS - GROUPS, .merging = DUPS,
};

/* ---- reading a page that may be poisoned ---- */

enum { P_OK, P_SIGBUS, P_CORRUPT };

static sigjmp_buf probe_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(probe_jmp, 1);
}

static void catch_sigbus(void)
{
	struct sigaction sa = { .sa_handler = on_sigbus };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

static int probe_page(const char *p, uint64_t id)
{
	const uint64_t *w = (const uint64_t *)p;

	if (sigsetjmp(probe_jmp, 1))
		return P_SIGBUS;
	/* READ_ONCE: every word is really loaded, so a poisoned page faults */
	for (size_t i = 0; i < page_size / 8; i++)
		if (READ_ONCE(w[i]) != ksm_pat_word(id, i))
			return P_CORRUPT;
	return P_OK;
}

/* A fresh region of NPAGES, filled, mergeable and merged; NULL on failure. */
static char *merged_region(const char *name)
{
	struct ksm_expect e = merged;
	char *a = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (a == MAP_FAILED) {
		ksft_print_msg("%s: mmap: %s\n", name, strerror(errno));
		return NULL;
	}
	for (size_t i = 0; i < NPAGES; i++)
		ksm_fill_page(a + i * page_size, page_id(i));
	if (madvise(a, NPAGES * page_size, MADV_MERGEABLE)) {
		ksft_print_msg("%s: MADV_MERGEABLE: %s\n", name, strerror(errno));
		goto fail;
	}
	if (!ksm_wait_for(ksm_counts_reached, &e, WAIT_S)) {
		ksm_print_counts(name, &e);
		goto fail;
	}
	return a;
fail:
	munmap(a, NPAGES * page_size);
	return NULL;
}

static bool verify_region(char *a, const char *what)
{
	for (size_t i = 0; i < NPAGES; i++)
		if (!ksm_check_page(a + i * page_size, page_id(i), what, i))
			return false;
	return true;
}

/* Every page of content group @g maps frame @pfn (the pages are merged). */
static bool group_on_pfn(char *a, int g, uint64_t pfn, const char *what)
{
	for (size_t i = g; i < DUPS; i += GROUPS) {
		uint64_t p = ksm_pfn_of(a + i * page_size);

		if (p != pfn) {
			ksft_print_msg("%s: page %zu maps pfn %#llx, want %#llx\n",
				       what, i, (unsigned long long)p,
				       (unsigned long long)pfn);
			return false;
		}
	}
	return true;
}

static int test_soft_offline(void)
{
	const char *name = "soft_offline";
	struct ksm_expect e = merged;
	uint64_t old_pfn, new_pfn;
	int ret = KSFT_FAIL, err = 0;
	char *a = merged_region(name);

	if (!a)
		goto out;
	old_pfn = ksm_pfn_of(a);
	if (!old_pfn) {
		ksft_print_msg("%s: no PFN in pagemap\n", name);
		goto out_unmap;
	}
	if (!group_on_pfn(a, 0, old_pfn, "before soft offline"))
		goto out_unmap;

	/* the page may sit in a per-CPU LRU batch for a moment: retry EBUSY */
	for (int tries = 0; tries < 50; tries++) {
		err = madvise(a, page_size, MADV_SOFT_OFFLINE) ? errno : 0;
		if (err != EBUSY)
			break;
		usleep(20000);
	}
	/*
	 * EINVAL: no CONFIG_MEMORY_FAILURE; EPERM: no CAP_SYS_ADMIN.  A kernel
	 * without madvise() at all never gets here: MADV_MERGEABLE failed.
	 */
	if (err == EINVAL || err == EPERM) {
		ksft_print_msg("%s: MADV_SOFT_OFFLINE: %s\n", name, strerror(err));
		ret = KSFT_SKIP;
		goto out_unmap;
	}
	if (err) {
		ksft_print_msg("%s: MADV_SOFT_OFFLINE on a merged page: %s\n",
			       name, strerror(err));
		goto out_unmap;
	}

	if (!verify_region(a, "after soft offline"))
		goto out_unmap;
	new_pfn = ksm_pfn_of(a);
	if (!new_pfn || new_pfn == old_pfn) {
		ksft_print_msg("%s: page still on pfn %#llx (now %#llx)\n",
			       name, (unsigned long long)old_pfn,
			       (unsigned long long)new_pfn);
		goto out_unmap;
	}
	/* the KSM page moved as a whole: all sharers still share one frame */
	if (!group_on_pfn(a, 0, new_pfn, "after soft offline"))
		goto out_unmap;
	if (!ksm_wait_for(ksm_counts_reached, &e, WAIT_S)) {
		ksm_print_counts("after soft offline", &e);
		goto out_unmap;
	}

	/* a write to one sharer is private */
	ksm_fill_page(a + GROUPS * page_size, 999);
	if (!ksm_check_page(a + GROUPS * page_size, 999, "written page", GROUPS))
		goto out_unmap;
	for (size_t i = 0; i < NPAGES; i++)
		if (i != GROUPS &&
		    !ksm_check_page(a + i * page_size, page_id(i), "after write", i))
			goto out_unmap;
	ret = KSFT_PASS;
out_unmap:
	munmap(a, NPAGES * page_size);
out:
	ksm_reset(&ret, name, WAIT_S);
	return ret;
}

/* What the child saw, in a MAP_SHARED page. */
struct child_report {
	int madv_err;		/* errno of MADV_HWPOISON, 0 on success */
	int madv_sigbus;	/* SIGBUS delivered during the madvise */
	int state[NPAGES];	/* P_* of each page afterwards */
	int done;
};

#define POISON_PAGE (GROUPS + 1)	/* a sharer of content group 1 */

static void child_inject(char *a, struct child_report *r)
{
	catch_sigbus();
	if (sigsetjmp(probe_jmp, 1)) {
		r->madv_sigbus = 1;
	} else {
		r->madv_err = madvise(a + POISON_PAGE * page_size, page_size,
				      MADV_HWPOISON) ? errno : 0;
	}
	for (size_t i = 0; i < NPAGES; i++)
		r->state[i] = probe_page(a + i * page_size, page_id(i));
	r->done = 1;
	_exit(0);
}

/* Pages of group 1 may be gone (SIGBUS); all others must be intact. */
static bool judge(const int *state, const char *who, bool self_poisoned)
{
	bool ok = true;
	int lost = 0;

	for (size_t i = 0; i < NPAGES; i++) {
		bool poisoned_content = i < DUPS && i % GROUPS == 1;

		if (state[i] == P_CORRUPT) {
			ksft_print_msg("%s: page %zu reads wrong data\n", who, i);
			ok = false;
		} else if (state[i] == P_SIGBUS && !poisoned_content) {
			ksft_print_msg("%s: page %zu (content %llu) gets SIGBUS\n",
				       who, i, (unsigned long long)page_id(i));
			ok = false;
		}
		lost += state[i] == P_SIGBUS;
	}
	if (self_poisoned && state[POISON_PAGE] != P_SIGBUS) {
		ksft_print_msg("%s: the poisoned page %d is still readable\n",
			       who, POISON_PAGE);
		ok = false;
	}
	ksft_print_msg("%s: %d of %d sharers of the poisoned content get SIGBUS\n",
		       who, lost, DUPS / GROUPS);
	return ok;
}

static int test_hwpoison(void)
{
	const char *name = "hwpoison";
	struct ksm_expect e = merged;
	struct child_report *r;
	int ret = KSFT_FAIL, status = 0, state[NPAGES];
	double deadline;
	pid_t pid, w;
	char *a;

	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return KSFT_FAIL;
	a = merged_region(name);
	if (!a)
		goto out;

	pid = fork();
	if (pid < 0) {
		ksft_print_msg("%s: fork: %s\n", name, strerror(errno));
		goto out_unmap;
	}
	if (!pid)
		child_inject(a, r);

	deadline = ksm_now() + WAIT_S;
	do {
		w = waitpid(pid, &status, WNOHANG);
		if (!w)
			usleep(10000);
	} while (!w && ksm_now() < deadline);
	if (w != pid) {
		ksft_print_msg("%s: child did not finish\n", name);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		goto out_unmap;
	}
	if (!r->done) {
		ksft_print_msg("%s: child died: status %#x\n", name, status);
		goto out_unmap;
	}
	/* as for soft offline: no MEMORY_FAILURE or no CAP_SYS_ADMIN */
	if (!r->madv_sigbus &&
	    (r->madv_err == EINVAL || r->madv_err == EPERM)) {
		ksft_print_msg("%s: MADV_HWPOISON: %s\n", name,
			       strerror(r->madv_err));
		ret = KSFT_SKIP;
		goto out_unmap;
	}
	if (r->madv_err) {
		ksft_print_msg("%s: MADV_HWPOISON on a merged page: %s\n", name,
			       strerror(r->madv_err));
		goto out_unmap;
	}
	ksft_print_msg("%s: child %s SIGBUS on injection\n", name,
		       r->madv_sigbus ? "got" : "did not get");
	if (!judge(r->state, "child", true))
		goto out_unmap;

	/* the parent still maps the same KSM pages */
	catch_sigbus();
	for (size_t i = 0; i < NPAGES; i++)
		state[i] = probe_page(a + i * page_size, page_id(i));
	signal(SIGBUS, SIG_DFL);
	if (!judge(state, "parent", false))
		goto out_unmap;

	/* drop the poisoned entries, rewrite them: they merge again */
	for (size_t i = 1; i < DUPS; i += GROUPS) {
		if (madvise(a + i * page_size, page_size, MADV_DONTNEED)) {
			ksft_print_msg("%s: MADV_DONTNEED: %s\n", name,
				       strerror(errno));
			goto out_unmap;
		}
		ksm_fill_page(a + i * page_size, page_id(i));
	}
	if (!verify_region(a, "after recovery"))
		goto out_unmap;
	if (!ksm_wait_for(ksm_counts_reached, &e, WAIT_S)) {
		ksm_print_counts("after recovery", &e);
		goto out_unmap;
	}
	if (!verify_region(a, "after re-merge"))
		goto out_unmap;
	ret = KSFT_PASS;
out_unmap:
	munmap(a, NPAGES * page_size);
out:
	munmap(r, sizeof(*r));
	ksm_reset(&ret, name, WAIT_S);
	return ret;
}

int main(void)
{
	const char *no_inject = getenv("KSM_HWPOISON_NO_INJECT");
	int splats;

	ksft_print_header();
	page_size = sysconf(_SC_PAGESIZE);

	if (geteuid())
		ksft_exit_skip("must run as root\n");
	if (access(KSM_SYSFS "run", F_OK))
		ksft_exit_skip("KSM not available\n");

	ksft_set_plan(3);
	kmsg_fd = ksm_kmsg_open();
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("cannot set up KSM\n");

	ksm_report(test_soft_offline(),
		   "MADV_SOFT_OFFLINE of a merged page keeps data and merging");
	if (no_inject && *no_inject && strcmp(no_inject, "0"))
		ksft_test_result_skip("MADV_HWPOISON: KSM_HWPOISON_NO_INJECT set\n");
	else
		ksm_report(test_hwpoison(),
			   "MADV_HWPOISON of a merged page in a forked child");

	ksm_restore(&saved);
	splats = ksm_kmsg_splats(kmsg_fd);
	ksft_test_result(splats <= 0 && ksm_nothing_shared(NULL),
			 "no kernel splat, no KSM page left\n");
	ksft_finished();
}
