// SPDX-License-Identifier: GPL-2.0
/*
 * KSM and transparent huge pages: a PMD-aligned MADV_HUGEPAGE region that is
 * backed by a THP and filled with duplicate content is made mergeable.  KSM
 * has to split the THP and merge its subpages: the global and per-process
 * counters must reach the exact expected values, the region must no longer
 * be PMD-mapped, every byte must stay intact, writes after the merge must be
 * private to the written page, and run=2 must unmerge everything intact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "kselftest.h"
#include "vm_util.h"
#include "ksm_common.h"

#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif

#define THP_SYSFS "/sys/kernel/mm/transparent_hugepage/"
#define WAIT_S 180	/* bound only: TCG under load is slow */

static long page_size;
static size_t pmd_size;
static int kmsg_fd = -1;
static struct ksm_knobs saved;
static char thp_enabled_saved[32];

/* ---- THP set-up ---- */

/* Returns the bracketed word of THP "enabled", or "" if THP is absent. */
static void thp_enabled_read(char *out, size_t len)
{
	char buf[128] = "";
	char *l, *r;
	int fd = open(THP_SYSFS "enabled", O_RDONLY);
	ssize_t n;

	out[0] = '\0';
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (!l || !r || (size_t)(r - l) >= len)
		return;
	memcpy(out, l + 1, r - l - 1);
	out[r - l - 1] = '\0';
}

static int thp_enabled_write(const char *val)
{
	int fd = open(THP_SYSFS "enabled", O_WRONLY);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* A PMD-aligned, PMD-sized MADV_HUGEPAGE anonymous area, or NULL. */
static char *map_pmd_aligned(void **raw)
{
	size_t len = 2 * pmd_size;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	*raw = p;
	a = (char *)(((unsigned long)p + pmd_size - 1) & ~(pmd_size - 1));
	if (madvise(a, pmd_size, MADV_HUGEPAGE)) {
		ksft_print_msg("MADV_HUGEPAGE: %s\n", strerror(errno));
		munmap(p, len);
		return NULL;
	}
	return a;
}

/*
 * Content of page @i: groups of duplicates (id 0..groups-1), and with
 * @unique, every 16th page (i % 16 == 5) holds a page-unique pattern.
 */
static uint64_t page_id(size_t i, int groups, bool unique)
{
	if (unique && i % 16 == 5)
		return 1000 + i;
	return i % groups;
}

static bool verify_all(char *a, size_t npages, int groups, bool unique,
		       const uint64_t *override, const char *what)
{
	for (size_t i = 0; i < npages; i++) {
		uint64_t id = override && override[i] ? override[i] :
			      page_id(i, groups, unique);

		if (!ksm_check_page(a + i * page_size, id, what, i))
			return false;
	}
	return true;
}

/*
 * One THP, @groups contents repeated over its subpages, optionally with
 * unique pages mixed in.  Returns KSFT_PASS/KSFT_FAIL/KSFT_SKIP.
 */
static int test_thp(const char *name, int groups, bool unique)
{
	size_t npages = pmd_size / page_size;
	uint64_t *override = calloc(npages, sizeof(*override));
	struct ksm_expect e = { 0 };
	long n_unique = 0, ahp;
	int ret = KSFT_FAIL;
	void *raw = NULL;
	char *a;

	if (!override)
		return KSFT_FAIL;
	a = map_pmd_aligned(&raw);
	if (!a) {
		free(override);
		return KSFT_FAIL;
	}
	for (size_t i = 0; i < npages; i++)
		ksm_fill_page(a + i * page_size, page_id(i, groups, unique));
	for (size_t i = 0; i < npages; i++)
		n_unique += unique && i % 16 == 5;

	ahp = ksm_vma_smaps_kb(a, "AnonHugePages");
	if (ahp < (long)(pmd_size >> 10)) {
		ksft_print_msg("%s: no THP backs the region (AnonHugePages %ld kB)\n",
			       name, ahp);
		ret = KSFT_SKIP;
		goto out;
	}

	/* Each group of N duplicates is one KSM page plus N - 1 sharers. */
	e.shared = groups;
	e.merging = npages - n_unique;
	e.sharing = e.merging - groups;

	if (madvise(a, pmd_size, MADV_MERGEABLE)) {
		ksft_print_msg("%s: MADV_MERGEABLE: %s\n", name, strerror(errno));
		goto out;
	}
	if (!ksm_wait_for(ksm_counts_reached, &e, WAIT_S)) {
		ksm_print_counts(name, &e);
		goto out;
	}
	ahp = ksm_vma_smaps_kb(a, "AnonHugePages");
	if (ahp != 0) {
		ksft_print_msg("%s: merged region still PMD-mapped: AnonHugePages %ld kB\n",
			       name, ahp);
		goto out;
	}
	if (ksm_vma_smaps_kb(a, "KSM") >= 0 &&
	    ksm_vma_smaps_kb(a, "KSM") != e.merging * (page_size >> 10)) {
		ksft_print_msg("%s: smaps KSM %ld kB, want %ld kB\n", name,
			       ksm_vma_smaps_kb(a, "KSM"),
			       e.merging * (page_size >> 10));
		goto out;
	}
	if (!verify_all(a, npages, groups, unique, NULL, "after merge"))
		goto out;

	/* Writes to one page of each group (and to a unique page) are private. */
	for (int g = 0; g < groups; g++) {
		size_t i = g + 16 * (g + 1);	/* page_id(i) == i % groups == g */

		override[i] = 5000 + i;
		ksm_fill_page(a + i * page_size, override[i]);
	}
	if (unique) {
		override[5] = 6000;
		ksm_fill_page(a + 5 * page_size, override[5]);
	}
	if (!verify_all(a, npages, groups, unique, override, "after write"))
		goto out;

	/* run=2 unmerges everything and the data survives. */
	if (!ksm_settle(WAIT_S)) {
		e = (struct ksm_expect){ 0 };
		ksm_print_counts("run=2", &e);
		goto out;
	}
	if (ksm_merging_pages() != 0) {
		ksft_print_msg("%s: ksm_merging_pages %ld after run=2\n", name,
			       ksm_merging_pages());
		goto out;
	}
	if (!verify_all(a, npages, groups, unique, override, "after run=2"))
		goto out;
	ret = KSFT_PASS;
out:
	munmap(raw, 2 * pmd_size);
	free(override);
	/* back to a clean, running KSM for the next case */
	if (!ksm_settle(WAIT_S) || ksm_fast()) {
		ksft_print_msg("%s: could not reset KSM\n", name);
		ret = KSFT_FAIL;
	}
	return ret;
}

int main(void)
{
	bool thp_changed = false;
	int splats;

	ksft_print_header();
	page_size = sysconf(_SC_PAGESIZE);

	if (geteuid())
		ksft_exit_skip("must run as root\n");
	if (access(KSM_SYSFS "run", F_OK))
		ksft_exit_skip("KSM not available\n");
	thp_enabled_read(thp_enabled_saved, sizeof(thp_enabled_saved));
	if (!thp_enabled_saved[0])
		ksft_exit_skip("THP not available\n");
	pmd_size = read_pmd_pagesize();
	if (!pmd_size || pmd_size % page_size)
		ksft_exit_skip("cannot read the THP size\n");
	if (!strcmp(thp_enabled_saved, "never")) {
		if (thp_enabled_write("madvise"))
			ksft_exit_skip("THP disabled and cannot be enabled\n");
		thp_changed = true;
	}

	ksft_set_plan(3);
	kmsg_fd = ksm_kmsg_open();
	if (!ksm_begin(&saved, WAIT_S)) {
		if (thp_changed)
			thp_enabled_write(thp_enabled_saved);
		ksft_exit_fail_msg("cannot set up KSM\n");
	}

	ksm_report(test_thp("thp_all_duplicates", 8, false),
		   "THP of 8 duplicated contents is split and merged");
	ksm_report(test_thp("thp_mostly_duplicates", 4, true),
		   "THP of 4 duplicated contents plus unique pages is split and merged");

	ksm_restore(&saved);
	if (thp_changed)
		thp_enabled_write(thp_enabled_saved);
	splats = ksm_kmsg_splats(kmsg_fd);
	ksft_test_result(splats <= 0 && ksm_nothing_shared(NULL),
			 "no kernel splat, no KSM page left\n");
	ksft_finished();
}
