// SPDX-License-Identifier: GPL-2.0
/*
 * KSM accounting test.  One process holds a known workload: N pages of one
 * content, M unique pages and Z zero-filled pages in a MADV_MERGEABLE area.
 * Once merged, /proc/self/ksm_stat, /proc/self/ksm_merging_pages, the "KSM:"
 * line of /proc/self/smaps_rollup and the global pages_shared/pages_sharing/
 * ksm_zero_pages must show exactly the expected values, first with
 * use_zero_pages=0 (zero pages merge into one KSM page) and then with
 * use_zero_pages=1 (zero pages map the kernel zero page).  Writing into
 * merged pages must count cow_ksm in /proc/vmstat and drop the counters;
 * run=2 must leave nothing shared and every byte intact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#define NR_PAGES	64	/* idx % 4: 0,2 same, 1 unique, 3 zero */
#define N_SAME		(NR_PAGES / 2)
#define N_UNIQ		(NR_PAGES / 4)
#define N_ZERO		(NR_PAGES / 4)
#define N_COW_SAME	4
#define N_COW_ZERO	2

enum kind { SAME, UNIQ, ZERO };

static long page_size;
static struct ksm_knobs saved;
static char *area;
static enum kind kinds[NR_PAGES];
static int mod_off[NR_PAGES];		/* -1: unmodified */
static unsigned char mod_val[NR_PAGES];

/* ---- content ---- */

static uint64_t pat_word(uint64_t id, size_t i)
{
	uint64_t x = (id + 1) * 0x9E3779B97F4A7C15ULL ^ (i * 0xBF58476D1CE4E5B9ULL);

	return x ^ (x >> 31) ^ 0x0101010101010101ULL;
}

static uint64_t page_id(int idx)
{
	return kinds[idx] == SAME ? 1000 : 2000 + idx;
}

static unsigned char expected_byte(int idx, size_t off)
{
	uint64_t w;

	if (mod_off[idx] == (int)off)
		return mod_val[idx];
	if (kinds[idx] == ZERO)
		return 0;
	w = pat_word(page_id(idx), off / 8);
	return (w >> (8 * (off % 8))) & 0xff;	/* little endian x86 */
}

static void fill_page(int idx)
{
	uint64_t *w = (uint64_t *)(area + idx * page_size);

	mod_off[idx] = -1;
	if (kinds[idx] == ZERO) {
		memset(w, 0, page_size);
		return;
	}
	for (size_t i = 0; i < page_size / 8; i++)
		w[i] = pat_word(page_id(idx), i);
}

/* Checks every byte; returns the number of bad pages. */
static int verify_all(const char *when)
{
	int bad = 0;

	for (int idx = 0; idx < NR_PAGES; idx++) {
		const unsigned char *p = (unsigned char *)area + idx * page_size;

		for (size_t off = 0; off < page_size; off++) {
			unsigned char e = expected_byte(idx, off);

			if (p[off] != e) {
				ksft_print_msg("%s: page %d (%d) byte %zu: want %#x got %#x\n",
					       when, idx, kinds[idx], off, e, p[off]);
				bad++;
				break;
			}
		}
	}
	return bad;
}

/* Write one byte into page @idx (COW if merged). */
static void modify_page(int idx)
{
	int off = (idx * 97 + 13) % page_size;
	unsigned char v = 0xa5 ^ idx;

	if (v == expected_byte(idx, off))
		v ^= 0xff;
	area[idx * page_size + off] = v;
	mod_off[idx] = off;
	mod_val[idx] = v;
}

/* ---- counters ---- */

/* A /proc/self/ksm_stat field as text ("key value" or "key: value"). */
static bool stat_str(const char *key, char *out, size_t len)
{
	char line[256];
	size_t klen = strlen(key);
	bool found = false;
	FILE *f = fopen("/proc/self/ksm_stat", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *v = line + klen;

		if (strncmp(line, key, klen) || (*v != ' ' && *v != ':'))
			continue;
		while (*v == ':' || *v == ' ')
			v++;
		v[strcspn(v, "\n")] = '\0';
		snprintf(out, len, "%s", v);
		found = true;
		break;
	}
	fclose(f);
	return found;
}

static long stat_num(const char *key)
{
	char v[64];

	return stat_str(key, v, sizeof(v)) ? strtol(v, NULL, 10) : -1;
}

static long vmstat_read(const char *key)
{
	char name[64];
	long val;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", name, &val) == 2) {
		if (!strcmp(name, key)) {
			fclose(f);
			return val;
		}
	}
	fclose(f);
	return -1;
}

struct snap {
	long rmap, zero, merging, profit, merging_file, ksm_kb;
	long shared, sharing, unshared, volatil, gzero;
};

static void take(struct snap *s)
{
	s->rmap = stat_num("ksm_rmap_items");
	s->zero = stat_num("ksm_zero_pages");
	s->merging = stat_num("ksm_merging_pages");
	s->profit = stat_num("ksm_process_profit");
	s->merging_file = ksm_self_merging();
	s->ksm_kb = ksm_smaps_rollup_kb("KSM");
	s->shared = ksm_read("pages_shared");
	s->sharing = ksm_read("pages_sharing");
	s->unshared = ksm_read("pages_unshared");
	s->volatil = ksm_read("pages_volatile");
	s->gzero = ksm_read("ksm_zero_pages");
}

static struct snap base;	/* global counters with nothing of ours merged */

struct expect {
	long merging, zero, shared, sharing, gzero;
	long rmap_min, rmap_max;
};

/* Number of mismatches against @e; prints them when @verbose. */
static int mismatches(const struct expect *e, bool verbose)
{
	long kb = page_size / 1024;
	struct snap s;
	int bad = 0;

	take(&s);
#define CHECK(cond, fmt, ...) do {					\
		if (!(cond)) {						\
			bad++;						\
			if (verbose)					\
				ksft_print_msg(fmt "\n", ##__VA_ARGS__);\
		}							\
	} while (0)
	CHECK(s.merging == e->merging, "ksm_stat ksm_merging_pages %ld, expected %ld",
	      s.merging, e->merging);
	CHECK(s.merging_file == e->merging,
	      "/proc/self/ksm_merging_pages %ld, expected %ld",
	      s.merging_file, e->merging);
	CHECK(s.zero == e->zero, "ksm_stat ksm_zero_pages %ld, expected %ld",
	      s.zero, e->zero);
	CHECK(s.ksm_kb == e->merging * kb, "smaps_rollup KSM: %ld kB, expected %ld kB",
	      s.ksm_kb, e->merging * kb);
	CHECK(s.shared - base.shared == e->shared,
	      "pages_shared delta %ld, expected %ld", s.shared - base.shared,
	      e->shared);
	CHECK(s.sharing - base.sharing == e->sharing,
	      "pages_sharing delta %ld, expected %ld", s.sharing - base.sharing,
	      e->sharing);
	CHECK(s.gzero - base.gzero == e->gzero,
	      "global ksm_zero_pages delta %ld, expected %ld",
	      s.gzero - base.gzero, e->gzero);
	CHECK(s.rmap >= e->rmap_min && s.rmap <= e->rmap_max,
	      "ksm_rmap_items %ld, expected %ld..%ld", s.rmap, e->rmap_min,
	      e->rmap_max);
#undef CHECK
	return bad;
}

static bool matches(void *arg)
{
	return !mismatches(arg, false);
}

/*
 * The doc's profit formulas: process_profit =~ (ksm_merging_pages +
 * ksm_zero_pages) * PAGE_SIZE - ksm_rmap_items * sizeof(rmap_item), and
 * the sum pages_shared + pages_sharing + pages_unshared + pages_volatile
 * counts all rmap_items (we are the only KSM user).
 */
static int check_profit(const char *when)
{
	struct snap s;
	long saved_b, meta;
	int bad = 0;

	/*
	 * The global counters are read one file at a time: stop ksmd (the
	 * write returns once it is between batches) so they agree.
	 */
	if (ksm_write("run", 0)) {
		ksft_print_msg("%s: cannot stop ksmd\n", when);
		return 1;
	}
	take(&s);
	if (ksm_write("run", 1)) {
		ksft_print_msg("%s: cannot restart ksmd\n", when);
		bad++;
	}
	saved_b = (s.merging + s.zero) * page_size;
	meta = saved_b - s.profit;
	if (s.rmap <= 0 || meta <= 0 || meta > s.rmap * 512) {
		ksft_print_msg("%s: profit %ld: saved %ld, %ld items: %ld B not in (0,512/item]\n",
			       when, s.profit, saved_b, s.rmap, meta);
		bad++;
	} else {
		ksft_print_msg("%s: profit %ld = %ld B saved - %ld B metadata (%.1f B/rmap_item)\n",
			       when, s.profit, saved_b, meta,
			       (double)meta / s.rmap);
	}
	if (s.shared + s.sharing + s.unshared + s.volatil -
	    (base.shared + base.sharing + base.unshared + base.volatil) != s.rmap) {
		ksft_print_msg("%s: shared+sharing+unshared+volatile %ld != ksm_rmap_items %ld\n",
			       when, s.shared + s.sharing + s.unshared + s.volatil -
			       (base.shared + base.sharing + base.unshared +
				base.volatil), s.rmap);
		bad++;
	}
	return bad;
}

/* ksm_merge_any / ksm_mergeable appeared after 6.12: check when present. */
static int check_flags(const char *merge_any, const char *mergeable)
{
	char v[32];
	int bad = 0;

	if (stat_str("ksm_merge_any", v, sizeof(v)) && strcmp(v, merge_any)) {
		ksft_print_msg("ksm_merge_any '%s', expected '%s'\n", v, merge_any);
		bad++;
	}
	if (stat_str("ksm_mergeable", v, sizeof(v)) && strcmp(v, mergeable)) {
		ksft_print_msg("ksm_mergeable '%s', expected '%s'\n", v, mergeable);
		bad++;
	}
	return bad;
}

static bool unmerged(void *unused)
{
	return ksm_nothing_shared(NULL) && stat_num("ksm_merging_pages") == 0 &&
	       stat_num("ksm_zero_pages") == 0 &&
	       ksm_read("ksm_zero_pages") == base.gzero;
}

static int unmerge_and_check(const char *when)
{
	int bad = 0;

	if (ksm_write("run", 2) || !ksm_wait_for(unmerged, NULL, WAIT_S)) {
		ksft_print_msg("%s: shared %ld sharing %ld merging %ld zero %ld (all %ld/%ld)\n",
			       when, ksm_read("pages_shared"),
			       ksm_read("pages_sharing"),
			       stat_num("ksm_merging_pages"),
			       stat_num("ksm_zero_pages"),
			       ksm_read("ksm_zero_pages"), base.gzero);
		bad++;
	}
	if (ksm_smaps_rollup_kb("KSM") != 0) {
		ksft_print_msg("%s: smaps_rollup KSM: %ld kB after run=2\n", when,
			       ksm_smaps_rollup_kb("KSM"));
		bad++;
	}
	bad += verify_all(when);
	return bad;
}

/* Phase with use_zero_pages=@uzp; the area holds its original content. */
static void phase(int uzp)
{
	struct expect e;
	long cow0, cow1;
	int bad = 0, i, n;

	if (ksm_write("use_zero_pages", uzp) || ksm_fast()) {
		ksft_test_result_fail("use_zero_pages=%d: cannot set knobs\n", uzp);
		ksft_test_result_skip("use_zero_pages=%d: cow\n", uzp);
		ksft_test_result_skip("use_zero_pages=%d: run=2\n", uzp);
		return;
	}
	if (uzp) {
		e = (struct expect){ .merging = N_SAME, .zero = N_ZERO,
			.shared = 1, .sharing = N_SAME - 1, .gzero = N_ZERO,
			.rmap_min = N_SAME + N_UNIQ,
			.rmap_max = N_SAME + N_UNIQ + N_ZERO };
	} else {
		e = (struct expect){ .merging = N_SAME + N_ZERO, .zero = 0,
			.shared = 2, .sharing = N_SAME - 1 + N_ZERO - 1,
			.gzero = 0,
			.rmap_min = NR_PAGES, .rmap_max = NR_PAGES };
	}
	if (!ksm_wait_for(matches, &e, WAIT_S)) {
		ksft_print_msg("use_zero_pages=%d: not at the expected values after %d s:\n",
			       uzp, WAIT_S);
		bad += mismatches(&e, true);
	}
	bad += check_profit(uzp ? "use_zero_pages=1" : "use_zero_pages=0");
	bad += check_flags("no", "yes");
	bad += verify_all("merged");
	ksft_test_result(!bad, "use_zero_pages=%d: exact ksm_stat, merging_pages, smaps, globals\n",
			 uzp);

	/*
	 * ksmd keeps running: it may only notice a COWed page on its next
	 * visit, and no written page can merge again (each is unique now).
	 */
	bad = 0;
	cow0 = vmstat_read("cow_ksm");
	for (i = 0, n = 0; i < NR_PAGES && n < N_COW_SAME; i++)
		if (kinds[i] == SAME) {
			modify_page(i);
			n++;
		}
	cow1 = vmstat_read("cow_ksm");
	if (cow0 < 0 || cow1 - cow0 < N_COW_SAME) {
		ksft_print_msg("cow_ksm %ld -> %ld after %d writes to KSM pages\n",
			       cow0, cow1, N_COW_SAME);
		bad++;
	}
	e.merging -= N_COW_SAME;
	e.sharing -= N_COW_SAME;
	for (i = 0, n = 0; i < NR_PAGES && n < N_COW_ZERO; i++)
		if (kinds[i] == ZERO) {
			modify_page(i);
			n++;
		}
	if (uzp) {
		e.zero -= N_COW_ZERO;
		e.gzero -= N_COW_ZERO;
	} else {
		e.merging -= N_COW_ZERO;
		e.sharing -= N_COW_ZERO;
		cow1 = vmstat_read("cow_ksm");
		if (cow1 - cow0 < N_COW_SAME + N_COW_ZERO) {
			ksft_print_msg("cow_ksm %ld -> %ld after %d writes to KSM pages\n",
				       cow0, cow1, N_COW_SAME + N_COW_ZERO);
			bad++;
		}
	}
	/* the rmap_item count may or may not follow the COW at once */
	e.rmap_min -= N_COW_SAME + N_COW_ZERO;
	if (!ksm_wait_for(matches, &e, WAIT_S)) {
		ksft_print_msg("%d s after %d + %d writes into merged pages:\n",
			       WAIT_S, N_COW_SAME, N_COW_ZERO);
		bad += mismatches(&e, true);
	}
	bad += verify_all("after cow");
	ksft_test_result(!bad, "use_zero_pages=%d: writes to merged pages: cow_ksm, counters\n",
			 uzp);

	bad = unmerge_and_check("run=2");
	ksft_test_result(!bad, "use_zero_pages=%d: run=2 leaves nothing merged, data intact\n",
			 uzp);
	for (i = 0; i < NR_PAGES; i++)
		fill_page(i);
}

/* PR_SET_MEMORY_MERGE shows in ksm_merge_any (kernels that have it). */
static void test_merge_any(void)
{
	char v[32];
	pid_t pid;
	int st;

	if (!stat_str("ksm_merge_any", v, sizeof(v))) {
		ksft_test_result_skip("ksm_merge_any: no such ksm_stat field (6.12)\n");
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int bad = 0;

		if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
			_exit(1);
		bad += check_flags("yes", "yes");
		if (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0))
			_exit(1);
		if (stat_str("ksm_merge_any", v, sizeof(v)) && strcmp(v, "no")) {
			ksft_print_msg("ksm_merge_any '%s' after disabling\n", v);
			bad++;
		}
		fflush(stdout);
		_exit(bad ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid) {
		ksft_test_result_fail("ksm_merge_any: fork/wait\n");
		return;
	}
	ksft_test_result(WIFEXITED(st) && !WEXITSTATUS(st),
			 "ksm_merge_any follows PR_SET_MEMORY_MERGE\n");
}

int main(void)
{
	int i;

	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	if (geteuid())
		ksft_exit_skip("needs root\n");
	if (access(KSM_SYSFS "run", R_OK))
		ksft_exit_skip("no KSM\n");
	if (access("/proc/self/ksm_stat", R_OK))
		ksft_exit_skip("no /proc/self/ksm_stat\n");
	if (vmstat_read("cow_ksm") < 0)
		ksft_exit_skip("no cow_ksm in /proc/vmstat\n");

	ksft_set_plan(7);
	ksm_save(&saved);
	if (!ksm_settle(WAIT_S)) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("cannot unmerge existing KSM pages first\n");
	}
	/* known sharing limits: every page of one content in one KSM page */
	if (ksm_write("max_page_sharing", 256) ||
	    ksm_write("merge_across_nodes", 1)) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("cannot set max_page_sharing, merge_across_nodes\n");
	}
	take(&base);

	area = mmap(NULL, NR_PAGES * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	}
	madvise(area, NR_PAGES * page_size, MADV_NOHUGEPAGE);
	for (i = 0; i < NR_PAGES; i++) {
		kinds[i] = (i % 4 == 1) ? UNIQ : (i % 4 == 3) ? ZERO : SAME;
		fill_page(i);
	}
	if (madvise(area, NR_PAGES * page_size, MADV_MERGEABLE)) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("MADV_MERGEABLE: %s\n", strerror(errno));
	}

	phase(0);
	phase(1);
	test_merge_any();

	ksm_restore(&saved);
	munmap(area, NR_PAGES * page_size);
	ksft_finished();
}
