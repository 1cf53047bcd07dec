// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: pages that stayed unique for many scans, so that smart_scan
 * backs off their visits as far as it goes, still merge with identical
 * partners that show up later.  A partner only merges in a scan that visits
 * both pages; a back-off of a fixed length could keep the two out of phase
 * for good.
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
#define NR		256	/* pages in each of the two areas */
#define AGE_SCANS	40	/* enough for the longest back-off */
#define ID_BASE		7000

static size_t page_size;

static char *area(void)
{
	return ksm_map_patterns(NR, ID_BASE);
}

static int verify(const char *a, const char *what)
{
	return ksm_check_patterns(a, NR, ID_BASE, what);
}

int main(void)
{
	struct ksm_knobs saved;
	long skipped0, want = 2 * NR;
	char *a, *b;
	int bad = 0;

	ksft_print_header();
	ksft_set_plan(1);
	page_size = sysconf(_SC_PAGESIZE);
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable (not root, or no KSM)\n");
	if (ksm_read("smart_scan") < 0)
		ksft_exit_skip("no smart_scan knob\n");
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("cannot reset KSM\n");
	if (ksm_write("smart_scan", 1)) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("smart_scan=1 refused\n");
	}

	a = area();
	if (!a) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("first area: %s\n", strerror(errno));
	}
	skipped0 = ksm_read("pages_skipped");
	if (!ksm_wait_scans(AGE_SCANS, WAIT_S)) {
		ksft_print_msg("ksmd did not complete %d scans in %d s\n",
			       AGE_SCANS, WAIT_S);
		bad++;
	}
	ksft_print_msg("%d unique pages aged over %d scans, %ld visits skipped\n",
		       NR, AGE_SCANS, ksm_read("pages_skipped") - skipped0);
	if (ksm_read("pages_skipped") == skipped0) {
		ksft_print_msg("smart_scan skipped nothing: the test proves nothing\n");
		bad++;
	}

	b = area();
	if (!b) {
		ksm_restore(&saved);
		ksft_exit_fail_msg("second area: %s\n", strerror(errno));
	}
	if (!ksm_wait_for(ksm_self_merging_reached, &want, WAIT_S)) {
		ksft_print_msg("ksm_merging_pages %ld after %d s, want %d\n",
			       ksm_self_merging(), WAIT_S, 2 * NR);
		bad++;
	}
	bad += verify(a, "first area");
	bad += verify(b, "second area");
	ksft_test_result(!bad, "pages unique for %d scans merge with late partners\n",
			 AGE_SCANS);

	munmap(a, NR * page_size);
	munmap(b, NR * page_size);
	ksm_restore(&saved);
	ksft_finished();
}
