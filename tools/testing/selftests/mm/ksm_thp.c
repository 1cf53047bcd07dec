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
#define WAIT_S 60

static long page_size;
static size_t pmd_size;
static int kmsg_fd = -1;
static struct ksm_knobs saved;
static char thp_enabled_saved[32];

/* ---- patterns: every 8-byte word of a page depends on (id, word) ---- */

static uint64_t pat_word(uint64_t id, size_t i)
{
	uint64_t x = (id + 1) * 0x9E3779B97F4A7C15ULL ^ (i * 0xBF58476D1CE4E5B9ULL);

	return x ^ (x >> 29);
}

static void fill_page(char *p, uint64_t id)
{
	uint64_t *w = (uint64_t *)p;

	for (size_t i = 0; i < page_size / 8; i++)
		w[i] = pat_word(id, i);
}

/* True when the page holds pattern @id; reports the first bad word. */
static bool check_page(const char *p, uint64_t id, const char *what, size_t idx)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < page_size / 8; i++) {
		if (w[i] != pat_word(id, i)) {
			ksft_print_msg("%s: page %zu word %zu: expected %#llx found %#llx\n",
				       what, idx, i,
				       (unsigned long long)pat_word(id, i),
				       (unsigned long long)w[i]);
			return false;
		}
	}
	return true;
}

/* ---- kernel log watch ---- */

static void kmsg_start(void)
{
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
}

static int kmsg_splats(void)
{
	static const char * const bad[] = {
		"WARNING:", "BUG:", "Oops", "KASAN", "UBSAN", "kernel BUG",
		"possible circular locking", "possible recursive locking",
		"general protection fault", "list_add corruption",
		"list_del corruption", "page dumped because", "Bad page",
	};
	char rec[8192];
	int found = 0;

	if (kmsg_fd < 0)
		return 0;
	for (;;) {
		ssize_t n = read(kmsg_fd, rec, sizeof(rec) - 1);

		if (n < 0) {
			if (errno == EPIPE)
				continue;
			break;
		}
		rec[n] = '\0';
		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			if (strstr(rec, bad[i])) {
				ksft_print_msg("kernel log: %s", rec);
				found++;
				break;
			}
		}
	}
	return found;
}

/* ---- /proc helpers ---- */

/* "Key: N kB" of the /proc/self/smaps entry of the VMA containing @addr. */
static long vma_smaps_kb(const void *addr, const char *key)
{
	unsigned long a = (unsigned long)addr, start, end;
	size_t klen = strlen(key);
	bool in = false;
	char line[512];
	long val = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			if (in)
				break;
			in = a >= start && a < end;
			continue;
		}
		if (in && !strncmp(line, key, klen) && line[klen] == ':') {
			val = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static long merging_pages(void)
{
	return ksm_stat_field("ksm_merging_pages");
}

struct expect {
	long shared, sharing, merging;
};

static bool counts_reached(void *arg)
{
	const struct expect *e = arg;

	return ksm_read("pages_shared") == e->shared &&
	       ksm_read("pages_sharing") == e->sharing &&
	       merging_pages() == e->merging;
}

static void print_counts(const char *what, const struct expect *e)
{
	ksft_print_msg("%s: pages_shared %ld (want %ld) pages_sharing %ld (want %ld)\n",
		       what, ksm_read("pages_shared"), e->shared,
		       ksm_read("pages_sharing"), e->sharing);
	ksft_print_msg("%s: ksm_merging_pages %ld (want %ld) full_scans %ld\n",
		       what, merging_pages(), e->merging, ksm_read("full_scans"));
}

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

		if (!check_page(a + i * page_size, id, what, i))
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
	struct expect e = { 0 };
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
		fill_page(a + i * page_size, page_id(i, groups, unique));
	for (size_t i = 0; i < npages; i++)
		n_unique += unique && i % 16 == 5;

	ahp = vma_smaps_kb(a, "AnonHugePages");
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
	if (!ksm_wait_for(counts_reached, &e, WAIT_S)) {
		print_counts(name, &e);
		goto out;
	}
	ahp = vma_smaps_kb(a, "AnonHugePages");
	if (ahp != 0) {
		ksft_print_msg("%s: merged region still PMD-mapped: AnonHugePages %ld kB\n",
			       name, ahp);
		goto out;
	}
	if (vma_smaps_kb(a, "KSM") >= 0 &&
	    vma_smaps_kb(a, "KSM") != e.merging * (page_size >> 10)) {
		ksft_print_msg("%s: smaps KSM %ld kB, want %ld kB\n", name,
			       vma_smaps_kb(a, "KSM"),
			       e.merging * (page_size >> 10));
		goto out;
	}
	if (!verify_all(a, npages, groups, unique, NULL, "after merge"))
		goto out;

	/* Writes to one page of each group (and to a unique page) are private. */
	for (int g = 0; g < groups; g++) {
		size_t i = g + 16 * (g + 1);	/* page_id(i) == i % groups == g */

		override[i] = 5000 + i;
		fill_page(a + i * page_size, override[i]);
	}
	if (unique) {
		override[5] = 6000;
		fill_page(a + 5 * page_size, override[5]);
	}
	if (!verify_all(a, npages, groups, unique, override, "after write"))
		goto out;

	/* run=2 unmerges everything and the data survives. */
	if (!ksm_settle(WAIT_S)) {
		e = (struct expect){ 0 };
		print_counts("run=2", &e);
		goto out;
	}
	if (merging_pages() != 0) {
		ksft_print_msg("%s: ksm_merging_pages %ld after run=2\n", name,
			       merging_pages());
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

static void report(int r, const char *name)
{
	if (r == KSFT_PASS)
		ksft_test_result_pass("%s\n", name);
	else if (r == KSFT_SKIP)
		ksft_test_result_skip("%s\n", name);
	else
		ksft_test_result_fail("%s\n", name);
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
	kmsg_start();
	ksm_save(&saved);
	if (!ksm_settle(WAIT_S) || ksm_fast()) {
		ksm_restore(&saved);
		if (thp_changed)
			thp_enabled_write(thp_enabled_saved);
		ksft_exit_fail_msg("cannot set up KSM\n");
	}

	report(test_thp("thp_all_duplicates", 8, false),
	       "THP of 8 duplicated contents is split and merged");
	report(test_thp("thp_mostly_duplicates", 4, true),
	       "THP of 4 duplicated contents plus unique pages is split and merged");

	ksm_restore(&saved);
	if (thp_changed)
		thp_enabled_write(thp_enabled_saved);
	splats = kmsg_splats();
	ksft_test_result(splats == 0 && ksm_nothing_shared(NULL),
			 "no kernel splat, no KSM page left\n");
	ksft_finished();
}
