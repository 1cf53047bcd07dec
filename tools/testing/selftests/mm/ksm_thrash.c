// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: the thrash back-off of smart_scan.  Area A's pages merge
 * with identical area B's; then every page of A is written (a COW fault
 * on each KSM page) and its content put back, right after the merge, round
 * after round.  With smart_scan=1 a merge broken that soon makes the page
 * sit out its next 1, then 3, then 7 visits (full scans), so the re-merge
 * takes longer each round; a merge that lasts ends the back-off.  With
 * smart_scan=0 every round takes as long.  The bytes of both areas are
 * checked every round.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "kselftest.h"
#include "ksm_common.h"

#define WAIT_S		180	/* bound only: TCG under load is slow */
#define NR		64	/* pages in each area */
#define ROUNDS		3	/* breaks soon after a merge, in a row */
#define ID_BASE		9100
#define INCONCLUSIVE	(-2)	/* a round the test itself stalled */

static size_t page_size;
static char *a, *b;

static char *area(void)
{
	return ksm_map_patterns(NR, ID_BASE);
}

/*
 * By the page tables (smaps "KSM:"), not ksm_merging_pages: that one
 * only drops when ksmd next visits a page a write took off its KSM page.
 */
static bool all_merged(void *arg)
{
	(void)arg;
	return ksm_smaps_rollup_kb("KSM") >= (long)(2 * NR * page_size / 1024);
}

static int verify(const char *what)
{
	int bad = 0;

	for (int i = 0; i < NR; i++) {
		bad += !ksm_check_page(a + i * page_size, ID_BASE + i, what, i);
		bad += !ksm_check_page(b + i * page_size, ID_BASE + i, what, i);
	}
	return bad;
}

/*
 * Break every merge of A (a write to each page, then its bytes back) and
 * return the full scans until all of A is merged again, -1 on timeout.
 */
static long break_and_remerge(int *bad)
{
	long scans0, written;

	scans0 = ksm_read("full_scans");
	for (int i = 0; i < NR; i++) {
		uint64_t *w = (uint64_t *)(a + i * page_size);

		/* a COW fault on the KSM page, then the bytes of B's again */
		WRITE_ONCE(w[7], READ_ONCE(w[7]) ^ 1);
		WRITE_ONCE(w[7], READ_ONCE(w[7]) ^ 1);
	}
	/*
	 * A test stalled for two full scans between the merge and the
	 * writes (a loaded TCG guest) broke no merge "soon": inconclusive.
	 */
	written = ksm_read("full_scans");
	if (!ksm_wait_for(all_merged, NULL, WAIT_S))
		return -1;
	*bad += verify("re-merged");
	if (written - scans0 >= 2)
		return INCONCLUSIVE;
	return ksm_read("full_scans") - scans0;
}

/* Rounds of breaks right after each merge; @d[ROUNDS] after a lasting one. */
static int run(long smart, long *d)
{
	int bad = 0;

	if (!ksm_settle(WAIT_S) || ksm_write("smart_scan", smart) ||
	    ksm_write("run", 1))
		return -1;
	a = area();
	b = area();
	if (!a || !b)
		return -1;
	if (!ksm_wait_for(all_merged, NULL, WAIT_S)) {
		ksft_print_msg("smart_scan=%ld: A and B not merged in %d s\n",
			       smart, WAIT_S);
		return -1;
	}
	for (int r = 0; r < ROUNDS; r++)
		d[r] = break_and_remerge(&bad);
	/* A merge that lasts (4 full scans) ends the back-off. */
	if (!ksm_wait_scans(4, WAIT_S))
		bad++;
	d[ROUNDS] = break_and_remerge(&bad);
	ksft_print_msg("smart_scan=%ld: full scans to re-merge: %ld %ld %ld\n",
		       smart, d[0], d[1], d[2]);
	ksft_print_msg("smart_scan=%ld: after a lasting merge: %ld\n",
		       smart, d[3]);
	munmap(a, NR * page_size);
	munmap(b, NR * page_size);
	for (int r = 0; r <= ROUNDS; r++) {
		if (d[r] == INCONCLUSIVE)
			return INCONCLUSIVE;
		if (d[r] < 0)
			bad++;
	}
	return bad;
}

int main(void)
{
	struct ksm_knobs saved;
	long on[ROUNDS + 1], off[ROUNDS + 1];
	int bad_on, bad_off;

	ksft_print_header();
	ksft_set_plan(2);
	page_size = sysconf(_SC_PAGESIZE);
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable (not root, or no KSM)\n");
	if (ksm_read("smart_scan") < 0)
		ksft_exit_skip("no smart_scan knob\n");
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("cannot reset KSM\n");
	/*
	 * About one full scan per wakeup (ksmd counts a pass once it starts
	 * the next), five a second: "right after the merge" is well within
	 * THRASH_SCANS, and the rounds count in whole scans.
	 */
	if (ksm_write("pages_to_scan", 2 * NR + 32) ||
	    ksm_write("sleep_millisecs", 200)) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("pages_to_scan/sleep_millisecs refused\n");
	}

	/* Ours only: an upstream 6.12 kernel (no merge_domains) has none. */
	if (access(KSM_SYSFS "merge_domains", F_OK)) {
		ksft_test_result_skip("no thrash back-off in this kernel\n");
		goto off;
	}
	bad_on = run(1, on);
	/* 1, 3 then 7 scans sat out: the third round waits 6 scans longer. */
	if (bad_on >= 0 && on[2] < on[0] + 4) {
		ksft_print_msg("smart_scan=1: no back-off: re-merges took %ld then %ld scans\n",
			       on[0], on[2]);
		bad_on++;
	}
	if (bad_on >= 0 && on[ROUNDS] > on[0] + 1) {
		ksft_print_msg("smart_scan=1: not forgotten: %ld scans (first %ld)\n",
			       on[ROUNDS], on[0]);
		bad_on++;
	}
	if (bad_on == INCONCLUSIVE)
		ksft_test_result_skip("smart_scan=1: the test stalled, inconclusive\n");
	else
		ksft_test_result(bad_on == 0,
				 "smart_scan=1 backs off from merges broken soon\n");

off:
	bad_off = run(0, off);
	if (bad_off >= 0 && (off[2] > off[0] + 2 || off[1] > off[0] + 2)) {
		ksft_print_msg("smart_scan=0: a back-off: %ld, %ld, %ld scans\n",
			       off[0], off[1], off[2]);
		bad_off++;
	}
	if (bad_off == INCONCLUSIVE)
		ksft_test_result_skip("smart_scan=0: the test stalled, inconclusive\n");
	else
		ksft_test_result(bad_off == 0, "smart_scan=0 does not back off\n");

	ksm_restore(&saved);
	ksft_finished();
}
