// SPDX-License-Identifier: GPL-2.0
/*
 * KSM max_page_sharing test.  With max_page_sharing=2 (set while nothing is
 * shared) K identical pages must end up in exactly K/2 KSM pages of two
 * mappings each, all of them duplicates of one content (stable_node_dups ==
 * pages_shared, stable_node_chains >= 1); an odd group of 5 gives 2 KSM pages
 * and one page left unmerged.  With max_page_sharing=4 no KSM page may have
 * more than 4 mappings.  Every byte stays intact through merging, writes
 * into merged pages and run=2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
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

#define WAIT_S		180	/* bound only: TCG under load is slow */
#define K_A		64	/* pages of content A (even) */
#define K_B		5	/* pages of content B (odd) */
#define NR_PAGES	(K_A + K_B)

static long page_size;
static struct ksm_knobs saved;
static char *area;
static uint64_t ids[NR_PAGES];
static int mod_off[NR_PAGES];
static unsigned char mod_val[NR_PAGES];

static uint64_t pat_word(uint64_t id, size_t i)
{
	uint64_t x = (id + 7) * 0x9E3779B97F4A7C15ULL ^ (i * 0xBF58476D1CE4E5B9ULL);

	return x ^ (x >> 27);
}

static unsigned char expected_byte(int idx, size_t off)
{
	if (mod_off[idx] == (int)off)
		return mod_val[idx];
	return (pat_word(ids[idx], off / 8) >> (8 * (off % 8))) & 0xff;
}

static void fill_all(void)
{
	for (int idx = 0; idx < NR_PAGES; idx++) {
		uint64_t *w = (uint64_t *)(area + idx * page_size);

		/* A and B interleaved over the area */
		ids[idx] = (idx % 14 == 3 && idx / 14 < K_B) ? 2 : 1;
		mod_off[idx] = -1;
		for (size_t i = 0; i < page_size / 8; i++)
			w[i] = pat_word(ids[idx], i);
	}
}

static int verify_all(const char *when)
{
	int bad = 0;

	for (int idx = 0; idx < NR_PAGES; idx++) {
		const unsigned char *p = (unsigned char *)area + idx * page_size;

		for (size_t off = 0; off < page_size; off++) {
			if (p[off] != expected_byte(idx, off)) {
				ksft_print_msg("%s: page %d byte %zu: expected %#x found %#x\n",
					       when, idx, off,
					       expected_byte(idx, off), p[off]);
				bad++;
				break;
			}
		}
	}
	return bad;
}

static void modify_page(int idx)
{
	int off = (idx * 131 + 5) % page_size;
	unsigned char v = expected_byte(idx, off) ^ 0x5a;

	area[idx * page_size + off] = v;
	mod_off[idx] = off;
	mod_val[idx] = v;
}

struct want {
	long shared, sharing, merging;
};

static bool reached(void *arg)
{
	struct want *w = arg;

	return ksm_read("pages_shared") == w->shared &&
	       ksm_read("pages_sharing") == w->sharing &&
	       ksm_self_merging() == w->merging;
}

static void show(const char *when)
{
	ksft_print_msg("%s: shared %ld sharing %ld unshared %ld chains %ld dups %ld merging %ld\n",
		       when, ksm_read("pages_shared"), ksm_read("pages_sharing"),
		       ksm_read("pages_unshared"), ksm_read("stable_node_chains"),
		       ksm_read("stable_node_dups"), ksm_self_merging());
}

/* Sets max_page_sharing while nothing is shared, then starts ksmd. */
static bool start(long limit)
{
	long ret;

	if (!ksm_settle(WAIT_S)) {
		ksft_print_msg("cannot unmerge: pages_shared %ld\n",
			       ksm_read("pages_shared"));
		return false;
	}
	ret = ksm_write("max_page_sharing", limit);
	if (ret || ksm_read("max_page_sharing") != limit) {
		ksft_print_msg("max_page_sharing=%ld: %s, reads %ld\n", limit,
			       strerror(-ret), ksm_read("max_page_sharing"));
		return false;
	}
	fill_all();
	return ksm_fast() == 0;
}

static void test_limit2(void)
{
	/* A: K_A/2 pairs; B: 2 pairs and one page nobody may share with */
	struct want w = {
		.shared = K_A / 2 + K_B / 2,
		.sharing = K_A / 2 + K_B / 2,
		.merging = K_A + K_B - 1,
	};
	long chains, dups;
	int bad = 0;

	if (!start(2)) {
		ksft_test_result_fail("max_page_sharing=2: setup\n");
		ksft_test_result_skip("max_page_sharing=2: writes and run=2\n");
		return;
	}
	if (!ksm_wait_for(reached, &w, WAIT_S)) {
		ksft_print_msg("not reached in %d s: want shared %ld sharing %ld merging %ld\n",
			       WAIT_S, w.shared, w.sharing, w.merging);
		bad++;
	}
	show("max_page_sharing=2");
	chains = ksm_read("stable_node_chains");
	dups = ksm_read("stable_node_dups");
	if (chains < 1 || chains > w.shared) {
		ksft_print_msg("stable_node_chains %ld, expected 1..%ld\n",
			       chains, w.shared);
		bad++;
	}
	if (dups != ksm_read("pages_shared")) {
		ksft_print_msg("stable_node_dups %ld != pages_shared %ld\n",
			       dups, ksm_read("pages_shared"));
		bad++;
	}
	bad += verify_all("max_page_sharing=2 merged");
	ksft_test_result(!bad, "max_page_sharing=2: %d+%d pages: shared %ld, sharing %ld, dups\n",
			 K_A, K_B, w.shared, w.sharing);

	/* a write into each of the first 4 A pages breaks one pair each */
	bad = 0;
	for (int idx = 0, n = 0; idx < NR_PAGES && n < 4; idx++) {
		if (ids[idx] == 1) {
			modify_page(idx);
			n++;
		}
	}
	bad += verify_all("after writes");
	if (!ksm_settle(WAIT_S)) {
		show("run=2");
		bad++;
	}
	if (ksm_self_merging() != 0) {
		ksft_print_msg("ksm_merging_pages %ld after run=2\n",
			       ksm_self_merging());
		bad++;
	}
	if (ksm_read("stable_node_chains") || ksm_read("stable_node_dups")) {
		show("run=2");
		bad++;
	}
	bad += verify_all("after run=2");
	ksft_test_result(!bad, "max_page_sharing=2: writes and run=2 keep data\n");
}

static void test_limit4(void)
{
	long shared, sharing, merging;
	struct want w;
	int bad = 0;

	if (!start(4)) {
		ksft_test_result_fail("max_page_sharing=4: setup\n");
		return;
	}
	/*
	 * 64 A pages need >= 16 KSM pages; B gets one full KSM page of 4 and
	 * one page left over.  How A is split is up to the implementation,
	 * but nothing may stay unmerged except that one B page.
	 */
	w.merging = K_A + 4;
	for (double dl = ksm_now() + WAIT_S; ksm_now() < dl; usleep(20000))
		if (ksm_self_merging() == w.merging)
			break;
	/* give ksmd one more pass to settle the counters */
	ksm_wait_scans(2, WAIT_S);
	shared = ksm_read("pages_shared");
	sharing = ksm_read("pages_sharing");
	merging = ksm_self_merging();
	show("max_page_sharing=4");
	if (merging != w.merging || shared + sharing != w.merging) {
		ksft_print_msg("merged %ld (pages_shared + pages_sharing %ld), expected %ld\n",
			       merging, shared + sharing, w.merging);
		bad++;
	}
	if (shared < (K_A + 3) / 4 + 1 || sharing > 3 * shared ||
	    sharing < shared) {
		ksft_print_msg("shared %ld sharing %ld: not 2..4 mappings per KSM page\n",
			       shared, sharing);
		bad++;
	}
	if (ksm_read("stable_node_chains") < 1) {
		ksft_print_msg("stable_node_chains 0 with A split over several KSM pages\n");
		bad++;
	}
	bad += verify_all("max_page_sharing=4 merged");
	if (!ksm_settle(WAIT_S))
		bad++;
	bad += verify_all("max_page_sharing=4 after run=2");
	ksft_test_result(!bad, "max_page_sharing=4: <= 4 mappings per KSM page, data intact\n");
}

int main(void)
{
	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	if (geteuid())
		ksft_exit_skip("needs root\n");
	if (access(KSM_SYSFS "max_page_sharing", R_OK))
		ksft_exit_skip("no KSM max_page_sharing\n");

	ksft_set_plan(3);
	ksm_save(&saved);
	area = mmap(NULL, NR_PAGES * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	madvise(area, NR_PAGES * page_size, MADV_NOHUGEPAGE);
	fill_all();
	if (madvise(area, NR_PAGES * page_size, MADV_MERGEABLE))
		ksft_exit_fail_msg("MADV_MERGEABLE: %s\n", strerror(errno));
	if (ksm_write("merge_across_nodes", 1) && ksm_settle(WAIT_S))
		ksm_write("merge_across_nodes", 1);

	test_limit2();
	test_limit4();

	ksm_restore(&saved);
	if (ksm_read("max_page_sharing") != saved.max_page_sharing)
		ksft_print_msg("max_page_sharing not restored: %ld (was %ld)\n",
			       ksm_read("max_page_sharing"),
			       saved.max_page_sharing);
	munmap(area, NR_PAGES * page_size);
	ksft_finished();
}
