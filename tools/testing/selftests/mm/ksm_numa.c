// SPDX-License-Identifier: GPL-2.0
/*
 * KSM and NUMA: identical pages bound (mbind) half to one node and half to
 * another.
 *
 * merge_across_nodes=0: pages merge only within a node, so one content
 * gives exactly one KSM page per node (pages_shared == 2), each on its own
 * node.  merge_across_nodes=1: they all merge into a single KSM page.
 * move_pages(MPOL_MF_MOVE_ALL) of merged pages to the other node reports the
 * new node, keeps every byte, and the pages stay (or become again) merged;
 * with merge_across_nodes=0 the moved KSM page stays merged next to the one
 * already on the target node (or is merged into it).  run=2 then unmerges everything intact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "kselftest.h"
#include "vm_util.h"
#include "ksm_common.h"

#ifndef MPOL_BIND
#define MPOL_BIND 2
#endif
#ifndef MPOL_MF_STRICT
#define MPOL_MF_STRICT BIT(0)
#define MPOL_MF_MOVE BIT(1)
#define MPOL_MF_MOVE_ALL BIT(2)
#endif

#define WAIT_S 180	/* bound only: TCG under load is slow */
#define PER_NODE 64		/* pages per node; below max_page_sharing */
#define NPAGES (2 * PER_NODE)
#define CONTENT 7

static long page_size;
static int kmsg_fd = -1;
static struct ksm_knobs saved;
static int node[2];		/* the two nodes used */

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
			if (n < 63)
				node[found++] = n;
		s = *end == ',' ? end + 1 : end;
	}
	return found;
}

static long sys_mbind(void *addr, unsigned long len, int mode,
		      const unsigned long *mask, unsigned long maxnode,
		      unsigned int flags)
{
	return syscall(SYS_mbind, addr, len, mode, mask, maxnode, flags);
}

static long sys_move_pages(unsigned long count, void **pages,
			   const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, 0, count, pages, nodes, status, flags);
}

/* Node of each page of @a (move_pages query); false on error. */
static bool query_nodes(char *a, int *status)
{
	void *pages[NPAGES];

	for (int i = 0; i < NPAGES; i++)
		pages[i] = a + i * page_size;
	if (sys_move_pages(NPAGES, pages, NULL, status, 0)) {
		ksft_print_msg("move_pages query: %s\n", strerror(errno));
		return false;
	}
	return true;
}

/* Pages [from, to) are all on node @nid. */
static bool on_node(char *a, int from, int to, int nid, const char *what)
{
	int status[NPAGES];

	if (!query_nodes(a, status))
		return false;
	for (int i = from; i < to; i++) {
		if (status[i] != nid) {
			ksft_print_msg("%s: page %d on node %d, want node %d\n",
				       what, i, status[i], nid);
			return false;
		}
	}
	return true;
}

/* Pages [from, to) all map one frame; returns it, 0 if they do not. */
static uint64_t one_frame(char *a, int from, int to, const char *what)
{
	uint64_t pfn = ksm_pfn_of(a + from * page_size);

	for (int i = from; i < to; i++) {
		uint64_t p = ksm_pfn_of(a + i * page_size);

		if (!p || p != pfn) {
			ksft_print_msg("%s: page %d on pfn %#llx, page %d on pfn %#llx\n",
				       what, from, (unsigned long long)pfn, i,
				       (unsigned long long)p);
			return 0;
		}
	}
	return pfn;
}

static bool verify_region(char *a, const char *what)
{
	for (int i = 0; i < NPAGES; i++)
		if (!ksm_check_page(a + i * page_size, CONTENT, what, i))
			return false;
	return true;
}

/* Unmerge all, set merge_across_nodes, run again. */
static bool set_man(int val)
{
	int err;

	if (!ksm_settle(WAIT_S)) {
		ksft_print_msg("run=2 did not unmerge everything\n");
		return false;
	}
	err = ksm_write("merge_across_nodes", val);
	if (err) {
		ksft_print_msg("merge_across_nodes=%d: %s\n", val, strerror(-err));
		return false;
	}
	return !ksm_fast();
}

/*
 * PER_NODE pages bound to node[0], PER_NODE to node[1], all with the same
 * content, mergeable.  NULL on failure.
 */
static char *numa_region(void)
{
	char *a = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t half = PER_NODE * page_size;

	if (a == MAP_FAILED) {
		ksft_print_msg("mmap: %s\n", strerror(errno));
		return NULL;
	}
	for (int h = 0; h < 2; h++) {
		unsigned long mask = 1UL << node[h];

		if (sys_mbind(a + h * half, half, MPOL_BIND, &mask,
			      8 * sizeof(mask), MPOL_MF_STRICT)) {
			ksft_print_msg("mbind node %d: %s\n", node[h],
				       strerror(errno));
			goto fail;
		}
	}
	for (int i = 0; i < NPAGES; i++)
		ksm_fill_page(a + i * page_size, CONTENT);
	if (!on_node(a, 0, PER_NODE, node[0], "bound") ||
	    !on_node(a, PER_NODE, NPAGES, node[1], "bound"))
		goto fail;
	if (madvise(a, NPAGES * page_size, MADV_MERGEABLE)) {
		ksft_print_msg("MADV_MERGEABLE: %s\n", strerror(errno));
		goto fail;
	}
	return a;
fail:
	munmap(a, NPAGES * page_size);
	return NULL;
}

static bool wait_counts(long shared, long merging, const char *what)
{
	struct ksm_expect e = {
		.shared = shared, .sharing = merging - shared, .merging = merging,
	};

	if (ksm_wait_for(ksm_counts_reached, &e, WAIT_S))
		return true;
	ksm_print_counts(what, &e);
	return false;
}

/* Unmerge: nothing left shared, data intact. */
static bool unmerge_check(char *a, const char *what)
{
	if (!ksm_settle(WAIT_S)) {
		ksft_print_msg("%s: run=2: pages_shared %ld pages_sharing %ld\n",
			       what, ksm_read("pages_shared"),
			       ksm_read("pages_sharing"));
		return false;
	}
	if (ksm_merging_pages() != 0) {
		ksft_print_msg("%s: ksm_merging_pages %ld after run=2\n", what,
			       ksm_merging_pages());
		return false;
	}
	return verify_region(a, what);
}

/*
 * Move every page of [from, to) to @nid with MPOL_MF_MOVE_ALL (a KSM page is
 * mapped many times).  Migration can fail transiently (e.g. while ksmd
 * holds a reference to the page: move_pages then returns the number of
 * pages not moved), so retry for a bounded time until every status is @nid.
 */
static bool move_all_to(char *a, int from, int to, int nid, const char *what)
{
	double deadline = ksm_now() + 20;
	int nodes[NPAGES], status[NPAGES], n = to - from, tries = 0;
	void *pages[NPAGES];
	bool done;
	long ret;

	/* ksmd keeps scanning, but not flat out, while pages move */
	ksm_write("sleep_millisecs", 20);
	do {
		for (int i = 0; i < n; i++) {
			pages[i] = a + (from + i) * page_size;
			nodes[i] = nid;
			status[i] = INT_MIN;
		}
		tries++;
		ret = sys_move_pages(n, pages, nodes, status, MPOL_MF_MOVE_ALL);
		if (ret < 0) {
			ksft_print_msg("%s: move_pages: %s\n", what,
				       strerror(errno));
			return false;
		}
		done = !ret;
		for (int i = 0; i < n; i++)
			done &= status[i] == nid;
		if (!done)
			usleep(20000);
	} while (!done && ksm_now() < deadline);
	ksm_write("sleep_millisecs", 0);

	if (tries > 1)
		ksft_print_msg("%s: move_pages needed %d calls\n", what, tries);
	for (int i = 0; i < n; i++) {
		if (status[i] != nid) {
			ksft_print_msg("%s: move_pages status of page %d: %d, want node %d\n",
				       what, from + i, status[i], nid);
			ksft_print_msg("%s: move_pages returned %ld\n", what, ret);
			return false;
		}
	}
	return true;
}

/* merge_across_nodes=0: one KSM page per node, each on its node. */
static int test_per_node(void)
{
	const char *name = "merge_across_nodes=0";
	int ret = KSFT_FAIL;
	uint64_t p0, p1;
	char *a;

	if (!set_man(0))
		return KSFT_FAIL;
	a = numa_region();
	if (!a)
		return KSFT_FAIL;
	if (!wait_counts(2, NPAGES, name))
		goto out;
	p0 = one_frame(a, 0, PER_NODE, name);
	p1 = one_frame(a, PER_NODE, NPAGES, name);
	if (!p0 || !p1)
		goto out;
	if (p0 == p1) {
		ksft_print_msg("%s: both nodes map pfn %#llx\n", name,
			       (unsigned long long)p0);
		goto out;
	}
	if (!on_node(a, 0, PER_NODE, node[0], name) ||
	    !on_node(a, PER_NODE, NPAGES, node[1], name))
		goto out;
	if (!verify_region(a, name))
		goto out;
	if (!unmerge_check(a, name))
		goto out;
	if (!on_node(a, 0, PER_NODE, node[0], "after run=2") ||
	    !on_node(a, PER_NODE, NPAGES, node[1], "after run=2"))
		goto out;
	ret = KSFT_PASS;
out:
	munmap(a, NPAGES * page_size);
	return ret;
}

/*
 * merge_across_nodes=1: a single KSM page for both nodes; then move_pages
 * of all of them to the other node: a plain MPOL_MF_MOVE may refuse a page
 * mapped many times, MPOL_MF_MOVE_ALL moves it; still one KSM page.
 */
static int test_across_nodes(void)
{
	const char *name = "merge_across_nodes=1";
	int ret = KSFT_FAIL, status[NPAGES], src, dst, st;
	void *page;
	char *a;

	if (!set_man(1))
		return KSFT_FAIL;
	a = numa_region();
	if (!a)
		return KSFT_FAIL;
	if (!wait_counts(1, NPAGES, name))
		goto out;
	if (!one_frame(a, 0, NPAGES, name) || !verify_region(a, name))
		goto out;
	if (!query_nodes(a, status))
		goto out;
	src = status[0];
	dst = src == node[0] ? node[1] : node[0];
	if (!on_node(a, 0, NPAGES, src, name))
		goto out;

	/* without MOVE_ALL: refused (-EACCES) or moved, never corrupted */
	page = a;
	st = 0;
	if (sys_move_pages(1, &page, &dst, &st, MPOL_MF_MOVE) < 0) {
		ksft_print_msg("%s: move_pages(MPOL_MF_MOVE): %s\n", name,
			       strerror(errno));
		goto out;
	}
	ksft_print_msg("%s: MPOL_MF_MOVE of a merged page: status %d\n",
		       name, st);
	if (st != -EACCES && st != dst && st != -EBUSY) {
		ksft_print_msg("%s: unexpected status %d\n", name, st);
		goto out;
	}
	if (!verify_region(a, "after MPOL_MF_MOVE"))
		goto out;

	if (!move_all_to(a, 0, NPAGES, dst, name))
		goto out;
	if (!on_node(a, 0, NPAGES, dst, "after move") ||
	    !verify_region(a, "after move"))
		goto out;
	if (!wait_counts(1, NPAGES, "after move"))
		goto out;
	if (!one_frame(a, 0, NPAGES, "after move") ||
	    !on_node(a, 0, NPAGES, dst, "after move, merged"))
		goto out;
	if (!unmerge_check(a, "after move, run=2"))
		goto out;
	ret = KSFT_PASS;
out:
	munmap(a, NPAGES * page_size);
	return ret;
}

/*
 * merge_across_nodes=0, then move node[0]'s pages (its KSM page) to node[1]:
 * status reports node[1], data intact, and all pages, now on node[1],
 * stay merged: into the two KSM pages there were, or fewer.
 */
static bool all_merged_in_two(void *unused)
{
	long shared = ksm_read("pages_shared");

	return shared >= 1 && shared <= 2 &&
	       ksm_read("pages_sharing") == NPAGES - shared &&
	       ksm_merging_pages() == NPAGES;
}

/* Number of distinct frames the region maps; -1 if a page is not present. */
static int distinct_frames(char *a)
{
	uint64_t pfn[NPAGES];
	int n = 0;

	for (int i = 0; i < NPAGES; i++) {
		uint64_t p = ksm_pfn_of(a + i * page_size);
		int j;

		if (!p)
			return -1;
		for (j = 0; j < n && pfn[j] != p; j++)
			;
		if (j == n)
			pfn[n++] = p;
	}
	return n;
}

#define MOVE_COUNTS_FMT \
	"after move: pages_shared %ld pages_sharing %ld ksm_merging_pages %ld\n"

static int test_move_per_node(void)
{
	const char *name = "merge_across_nodes=0 move";
	int ret = KSFT_FAIL, frames;
	char *a;

	if (!set_man(0))
		return KSFT_FAIL;
	a = numa_region();
	if (!a)
		return KSFT_FAIL;
	if (!wait_counts(2, NPAGES, name))
		goto out;
	if (!move_all_to(a, 0, PER_NODE, node[1], name))
		goto out;
	if (!on_node(a, 0, NPAGES, node[1], "after move") ||
	    !verify_region(a, "after move"))
		goto out;
	/*
	 * Upstream keeps the moved KSM page as a second copy (a stable node
	 * chain) on the new node; merging both into one is also correct.
	 */
	if (!ksm_wait_for(all_merged_in_two, NULL, WAIT_S)) {
		ksft_print_msg("after move: want all %d pages merged into 1 or 2 KSM pages\n",
			       NPAGES);
		ksft_print_msg(MOVE_COUNTS_FMT, ksm_read("pages_shared"),
			       ksm_read("pages_sharing"), ksm_merging_pages());
		goto out;
	}
	frames = distinct_frames(a);
	if (frames != ksm_read("pages_shared")) {
		ksft_print_msg("after move: pages map %d frames, pages_shared %ld\n",
			       frames, ksm_read("pages_shared"));
		goto out;
	}
	ksft_print_msg("%s: %d KSM page(s) on node %d after the move\n", name,
		       frames, node[1]);
	if (!on_node(a, 0, NPAGES, node[1], "after move, merged") ||
	    !verify_region(a, "after move, merged"))
		goto out;
	if (!unmerge_check(a, "after move, run=2"))
		goto out;
	ret = KSFT_PASS;
out:
	munmap(a, NPAGES * page_size);
	return ret;
}

int main(void)
{
	int splats;

	ksft_print_header();
	page_size = sysconf(_SC_PAGESIZE);

	if (geteuid())
		ksft_exit_skip("must run as root\n");
	if (access(KSM_SYSFS "merge_across_nodes", F_OK))
		ksft_exit_skip("KSM with NUMA support not available\n");
	if (find_two_nodes() < 2)
		ksft_exit_skip("needs two NUMA nodes with memory\n");

	ksft_set_plan(4);
	kmsg_fd = ksm_kmsg_open();
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("cannot set up KSM\n");

	ksm_report(test_per_node(),
		   "merge_across_nodes=0: one KSM page per node");
	ksm_report(test_across_nodes(),
		   "merge_across_nodes=1: one KSM page; move_pages keeps it merged");
	ksm_report(test_move_per_node(),
		   "merge_across_nodes=0: moved pages stay merged on the new node");

	ksm_restore(&saved);
	splats = ksm_kmsg_splats(kmsg_fd);
	ksft_test_result(splats <= 0 && ksm_nothing_shared(NULL) &&
			 ksm_read("merge_across_nodes") == saved.merge_across_nodes,
			 "no kernel splat, no KSM page left, knobs restored\n");
	ksft_finished();
}
