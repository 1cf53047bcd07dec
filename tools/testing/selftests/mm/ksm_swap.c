// SPDX-License-Identifier: GPL-2.0
/*
 * KSM and swap.  The test moves itself into a fresh memory cgroup (cgroup
 * v2) so it can push its own merged pages out with memory.reclaim
 * (MADV_PAGEOUT leaves pages mapped more than once alone, and every KSM page
 * is).
 *
 * swap_merged: merged pages are swapped out (every PTE of the region becomes
 * a swap entry in /proc/self/pagemap), faulted back in with every byte
 * intact, merge again to the exact expected counts, writes afterwards are
 * private; swapped-out sharers written while swapped out stay private too.
 *
 * memory_max: merged pages swapped out, then read back under a memory.max
 * far below the region size, so swap-in, reclaim and ksmd re-merging churn
 * together: every byte stays intact, writes stay private, no OOM kill, and
 * run=2 then unmerges everything intact.
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
#include <sys/stat.h>

#include "kselftest.h"
#include "vm_util.h"
#include "ksm_common.h"

#define WAIT_S 180	/* bound only: TCG under load is slow */
#define CG_ROOT "/sys/fs/cgroup"

static long page_size;
static int kmsg_fd = -1;
static struct ksm_knobs saved;
static char cg_dir[256];		/* our cgroup */
static char cg_home[512];		/* where we came from */
static bool cg_enabled_memory;		/* we wrote +memory to the root */

/* ---- cgroup v2 ---- */

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		err = -errno;
	close(fd);
	return err;
}

static int cg_write(const char *file, const char *val)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", cg_dir, file);
	return write_file(path, val);
}

static bool file_has_word(const char *path, const char *word)
{
	char buf[512] = "";
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f)) {
		for (char *t = strtok(buf, "\n\t "); t; t = strtok(NULL, "\n\t "))
			found |= !strcmp(t, word);
	}
	fclose(f);
	return found;
}

/* "key value" from a cgroup flat-keyed file; -1 when missing. */
static long cg_key(const char *file, const char *key)
{
	char path[512], line[256];
	size_t klen = strlen(key);
	long val = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cg_dir, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			val = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static void cg_cleanup(void)
{
	char path[600];

	if (!cg_dir[0])
		return;
	snprintf(path, sizeof(path), "%s%s/cgroup.procs", CG_ROOT, cg_home);
	if (write_file(path, "0"))
		write_file(CG_ROOT "/cgroup.procs", "0");
	/* our charges may take a moment to leave the group */
	for (int i = 0; i < 100 && rmdir(cg_dir) && errno == EBUSY; i++)
		usleep(10000);
	if (cg_enabled_memory)
		write_file(CG_ROOT "/cgroup.subtree_control", "-memory");
	cg_dir[0] = '\0';
}

/* Returns NULL on success, or why the cgroup set-up is not possible. */
static const char *cg_setup(void)
{
	char line[512];
	FILE *f;

	if (!file_has_word(CG_ROOT "/cgroup.controllers", "memory"))
		return "no cgroup v2 memory controller";
	f = fopen("/proc/self/cgroup", "r");
	if (!f)
		return "no /proc/self/cgroup";
	snprintf(cg_home, sizeof(cg_home), "/");
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(cg_home, sizeof(cg_home), "%s", line + 3);
		}
	}
	fclose(f);
	if (!file_has_word(CG_ROOT "/cgroup.subtree_control", "memory")) {
		if (write_file(CG_ROOT "/cgroup.subtree_control", "+memory"))
			return "cannot enable the memory controller";
		cg_enabled_memory = true;
	}
	snprintf(cg_dir, sizeof(cg_dir), CG_ROOT "/ksm_swap_test.%d", getpid());
	if (mkdir(cg_dir, 0755) && errno != EEXIST) {
		cg_dir[0] = '\0';
		return "cannot create a cgroup";
	}
	snprintf(line, sizeof(line), "%s/memory.reclaim", cg_dir);
	if (access(line, F_OK)) {
		cg_cleanup();
		return "no memory.reclaim";
	}
	if (cg_write("cgroup.procs", "0")) {
		cg_cleanup();
		return "cannot join the cgroup";
	}
	return NULL;
}

static bool swap_present(void)
{
	char line[512];
	int lines = 0;
	FILE *f = fopen("/proc/swaps", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	return lines > 1;
}

/* ---- pagemap ---- */

#define PM_SWAP_BIT BIT_ULL(62)

/* Number of pages of [a, a + n pages) whose PTE is a swap entry; -1 on error. */
static long count_swapped(char *a, long n)
{
	return ksm_pagemap_count(a, n, PM_SWAP_BIT);
}

/*
 * memory.reclaim until every page of the region is swapped out, or the
 * deadline passes.  Returns the number of swapped-out pages.
 */
static long swap_out(char *a, long n)
{
	double deadline = ksm_now() + WAIT_S;
	long sw;

	do {
		int err = cg_write("memory.reclaim", "16M");

		if (err && err != -EAGAIN) {
			ksft_print_msg("memory.reclaim: %s\n", strerror(-err));
			return count_swapped(a, n);
		}
		sw = count_swapped(a, n);
		if (sw >= n)
			return sw;
	} while (ksm_now() < deadline);
	return count_swapped(a, n);
}

/* ---- the region: @groups duplicated contents, then @uniq unique pages ---- */

struct region {
	char *a;
	long n, groups, uniq;
	uint64_t *id;		/* current content id of each page */
};

static bool region_init(struct region *r, long n, long groups, long uniq)
{
	r->n = n;
	r->groups = groups;
	r->uniq = uniq;
	r->id = calloc(n, sizeof(*r->id));
	r->a = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!r->id || r->a == MAP_FAILED) {
		ksft_print_msg("out of memory\n");
		free(r->id);
		return false;
	}
	for (long i = 0; i < n; i++) {
		r->id[i] = i < n - uniq ? i % groups : 1000 + i;
		ksm_fill_page(r->a + i * page_size, r->id[i]);
	}
	if (madvise(r->a, n * page_size, MADV_MERGEABLE)) {
		ksft_print_msg("MADV_MERGEABLE: %s\n", strerror(errno));
		munmap(r->a, n * page_size);
		free(r->id);
		return false;
	}
	return true;
}

static void region_free(struct region *r)
{
	munmap(r->a, r->n * page_size);
	free(r->id);
}

static bool region_verify(struct region *r, const char *what)
{
	for (long i = 0; i < r->n; i++)
		if (!ksm_check_page(r->a + i * page_size, r->id[i], what, i))
			return false;
	return true;
}

static bool region_merged(struct region *r, const char *what)
{
	long dups = r->n - r->uniq;
	struct ksm_expect e = {
		.shared = r->groups, .sharing = dups - r->groups,
		.merging = dups,
	};

	if (ksm_wait_for(ksm_counts_reached, &e, WAIT_S))
		return true;
	ksm_print_counts(what, &e);
	return false;
}

/* Write a new private content into one page of every group. */
static void region_write_one_per_group(struct region *r, long first,
				       uint64_t base)
{
	for (long g = 0; g < r->groups; g++) {
		long i = first * r->groups + g;

		r->id[i] = base + i;
		ksm_fill_page(r->a + i * page_size, r->id[i]);
	}
}

static bool swap_all(struct region *r, const char *what)
{
	long sw = swap_out(r->a, r->n);

	if (sw != r->n) {
		ksft_print_msg("%s: %ld of %ld pages swapped out (Swap %ld kB, cgroup anon %ld)\n",
			       what, sw, r->n, ksm_vma_smaps_kb(r->a, "Swap"),
			       cg_key("memory.stat", "anon"));
		return false;
	}
	return true;
}

static int test_swap_merged(void)
{
	const char *name = "swap_merged";
	struct region r;
	int ret = KSFT_FAIL;

	/* 240 pages of 4 contents, 16 unique pages */
	if (!region_init(&r, 256, 4, 16))
		goto out;
	if (!region_merged(&r, "merged"))
		goto out_free;
	if (!swap_all(&r, "swap out merged"))
		goto out_free;
	ksft_print_msg("%s: region swapped out, smaps Swap %ld kB\n", name,
		       ksm_vma_smaps_kb(r.a, "Swap"));
	if (!region_verify(&r, "after swap-in"))
		goto out_free;
	if (!region_merged(&r, "merged again after swap-in"))
		goto out_free;

	/* writes after swap-in are private */
	region_write_one_per_group(&r, 1, 2000);
	if (!region_verify(&r, "after write"))
		goto out_free;

	/* writes to swapped-out sharers are private as well */
	if (!swap_all(&r, "swap out again"))
		goto out_free;
	region_write_one_per_group(&r, 2, 3000);
	if (!region_verify(&r, "after write to swapped-out pages"))
		goto out_free;

	if (!ksm_settle(WAIT_S) || ksm_merging_pages() != 0) {
		ksft_print_msg("%s: run=2 left pages_shared %ld ksm_merging_pages %ld\n",
			       name, ksm_read("pages_shared"), ksm_merging_pages());
		goto out_free;
	}
	if (!region_verify(&r, "after run=2"))
		goto out_free;
	ret = KSFT_PASS;
out_free:
	region_free(&r);
out:
	ksm_reset(&ret, name, WAIT_S);
	return ret;
}

static int test_memory_max(void)
{
	const char *name = "memory_max";
	long oom_before = cg_key("memory.events", "oom_kill");
	struct region r;
	int ret = KSFT_FAIL;
	int err;

	/* 4 MiB of 8 contents under a 1 MiB limit */
	if (!region_init(&r, 1024, 8, 0))
		goto out;
	if (!region_merged(&r, "merged"))
		goto out_free;
	if (!swap_all(&r, "swap out merged"))
		goto out_free;
	err = cg_write("memory.max", "1M");
	if (err) {
		ksft_print_msg("memory.max: %s\n", strerror(-err));
		goto out_free;
	}
	if (!region_verify(&r, "swap-in under memory.max"))
		goto out_restore;
	region_write_one_per_group(&r, 3, 4000);
	if (!region_verify(&r, "after write under memory.max"))
		goto out_restore;
	/* let ksmd work on the churning pages for a few scans */
	ksm_wait_scans(2, WAIT_S);
	if (!region_verify(&r, "after scans under memory.max"))
		goto out_restore;
	if (cg_key("memory.events", "oom_kill") != oom_before) {
		ksft_print_msg("%s: OOM kill in the cgroup\n", name);
		goto out_restore;
	}
	ret = KSFT_PASS;
out_restore:
	cg_write("memory.max", "max");
	if (!ksm_settle(WAIT_S)) {
		ksft_print_msg("%s: run=2 left pages_shared %ld\n", name,
			       ksm_read("pages_shared"));
		ret = KSFT_FAIL;
	} else if (!region_verify(&r, "after run=2")) {
		ret = KSFT_FAIL;
	}
out_free:
	region_free(&r);
out:
	ksm_reset(&ret, name, WAIT_S);
	return ret;
}

int main(void)
{
	const char *why;
	int splats;

	ksft_print_header();
	page_size = sysconf(_SC_PAGESIZE);

	if (geteuid())
		ksft_exit_skip("must run as root\n");
	if (access(KSM_SYSFS "run", F_OK))
		ksft_exit_skip("KSM not available\n");
	if (!swap_present())
		ksft_exit_skip("no swap in /proc/swaps\n");
	why = cg_setup();
	if (why)
		ksft_exit_skip("%s\n", why);

	ksft_set_plan(3);
	kmsg_fd = ksm_kmsg_open();
	if (!ksm_begin(&saved, WAIT_S)) {
		cg_cleanup();
		ksft_exit_fail_msg("cannot set up KSM\n");
	}

	ksm_report(test_swap_merged(),
		   "merged pages swap out and back intact, merge again, stay private");
	ksm_report(test_memory_max(),
		   "merged pages swapped under a small memory.max stay intact");

	ksm_restore(&saved);
	cg_cleanup();
	splats = ksm_kmsg_splats(kmsg_fd);
	ksft_test_result(splats <= 0 && ksm_nothing_shared(NULL),
			 "no kernel splat, no KSM page left\n");
	ksft_finished();
}
