/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by our KSM selftests: sysfs knobs, bounded waits for ksmd,
 * and saving/restoring the global KSM state so one test never leaks merged
 * pages or changed knobs into the next.
 */
#ifndef KSM_COMMON_H
#define KSM_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "kselftest.h"

#ifndef MADV_MERGEABLE
#define MADV_MERGEABLE 12
#endif
#ifndef MADV_UNMERGEABLE
#define MADV_UNMERGEABLE 13
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

#define KSM_SYSFS "/sys/kernel/mm/ksm/"

/* The kernel's bit helpers; vm_util.h may already provide BIT_ULL(). */
#ifndef BIT
#define BIT(nr)		(1UL << (nr))
#endif
#ifndef BIT_ULL
#define BIT_ULL(nr)	(1ULL << (nr))
#endif

/* The kernel's pseudo-keyword for a case that goes on into the next one. */
#ifndef fallthrough
#define fallthrough	__attribute__((__fallthrough__))
#endif

/*
 * READ_ONCE()/WRITE_ONCE() for user space: one untorn access the compiler
 * may neither elide, merge nor repeat.  Relaxed __atomic builtins on a
 * naturally aligned int/long/u64 are lock-free, so they also work on
 * MAP_SHARED memory between processes.  Use them for flags polled in a
 * loop and for accesses that must really reach memory (e.g. to trigger a
 * fault); they do not order other memory accesses.
 */
#ifndef READ_ONCE
#define READ_ONCE(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#endif
#ifndef WRITE_ONCE
#define WRITE_ONCE(x, val)	__atomic_store_n(&(x), (val), __ATOMIC_RELAXED)
#endif

/* Read a KSM sysfs file as a number; -1 (errno set) on failure. */
static inline long ksm_read(const char *name)
{
	char path[256], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), KSM_SYSFS "%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/* Read a KSM sysfs file as text (trailing newline stripped). */
static inline int ksm_read_str(const char *name, char *out, size_t len)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), KSM_SYSFS "%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, out, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	out[n] = '\0';
	if (n && out[n - 1] == '\n')
		out[n - 1] = '\0';
	return 0;
}

/* Write a string to a KSM sysfs file; 0 or -errno. */
static inline int ksm_write_str(const char *name, const char *val)
{
	char path[256];
	ssize_t n;
	int fd, err = 0;

	snprintf(path, sizeof(path), KSM_SYSFS "%s", name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

static inline int ksm_write(const char *name, long val)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", val);
	return ksm_write_str(name, buf);
}

static inline double ksm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Wait until ksmd has completed @scans more full scans, at most @timeout_s
 * seconds. Returns true when it did.
 */
static inline bool ksm_wait_scans(int scans, double timeout_s)
{
	long start = ksm_read("full_scans");
	double deadline = ksm_now() + timeout_s;

	while (ksm_now() < deadline) {
		if (ksm_read("full_scans") >= start + scans)
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * Poll until @cond(@arg) holds, at most @timeout_s seconds; it is polled every
 * 10 ms. Returns true when the condition held.
 */
static inline bool ksm_wait_for(bool (*cond)(void *), void *arg,
				double timeout_s)
{
	double deadline = ksm_now() + timeout_s;

	do {
		if (cond(arg))
			return true;
		usleep(10000);
	} while (ksm_now() < deadline);
	return cond(arg);
}

/* The knobs a test may change; saved at start, restored at the end. */
struct ksm_knobs {
	long run, pages_to_scan, sleep_millisecs, merge_across_nodes;
	long use_zero_pages, max_page_sharing, smart_scan;
	long stable_node_chains_prune_millisecs;
	char advisor_mode[32];
};

static inline void ksm_save(struct ksm_knobs *k)
{
	k->run = ksm_read("run");
	k->pages_to_scan = ksm_read("pages_to_scan");
	k->sleep_millisecs = ksm_read("sleep_millisecs");
	k->merge_across_nodes = ksm_read("merge_across_nodes");
	k->use_zero_pages = ksm_read("use_zero_pages");
	k->max_page_sharing = ksm_read("max_page_sharing");
	k->smart_scan = ksm_read("smart_scan");
	k->stable_node_chains_prune_millisecs =
		ksm_read("stable_node_chains_prune_millisecs");
	if (ksm_read_str("advisor_mode", k->advisor_mode,
			 sizeof(k->advisor_mode)))
		k->advisor_mode[0] = '\0';
	/* "[none] scan-time" -> the bracketed word */
	if (strstr(k->advisor_mode, "[scan-time]"))
		snprintf(k->advisor_mode, sizeof(k->advisor_mode), "scan-time");
	else if (k->advisor_mode[0])
		snprintf(k->advisor_mode, sizeof(k->advisor_mode), "none");
}

static inline bool ksm_nothing_shared(void *unused)
{
	(void)unused;
	return ksm_read("pages_shared") == 0 && ksm_read("pages_sharing") == 0;
}

/*
 * Unmerge everything (run=2) and wait until no KSM page is left, so knobs
 * that are EBUSY while pages are shared can be written. Returns true when
 * nothing is shared any more.
 */
static inline bool ksm_settle(double timeout_s)
{
	if (ksm_write("run", 2))
		return false;
	return ksm_wait_for(ksm_nothing_shared, NULL, timeout_s);
}

static inline void ksm_restore(const struct ksm_knobs *k)
{
	ksm_settle(60);
	/* Ours only; an upstream kernel has no such file. */
	if (!access(KSM_SYSFS "estimate", F_OK))
		ksm_write("estimate", 0);
	if (k->advisor_mode[0])
		ksm_write_str("advisor_mode", k->advisor_mode);
	ksm_write("merge_across_nodes", k->merge_across_nodes);
	ksm_write("max_page_sharing", k->max_page_sharing);
	ksm_write("pages_to_scan", k->pages_to_scan);
	ksm_write("sleep_millisecs", k->sleep_millisecs);
	ksm_write("use_zero_pages", k->use_zero_pages);
	ksm_write("smart_scan", k->smart_scan);
	ksm_write("stable_node_chains_prune_millisecs",
		  k->stable_node_chains_prune_millisecs);
	ksm_write("run", k->run);
}

/* Skip unless KSM can be driven and has estimate mode (ours, not upstream). */
static inline void ksm_require_estimate(void)
{
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable (not root, or no KSM)\n");
	if (access(KSM_SYSFS "estimate", F_OK))
		ksft_exit_skip("no estimate mode (/sys/kernel/mm/ksm/estimate)\n");
}

/* Knobs for a fast, deterministic test: scan flat out. */
static inline int ksm_fast(void)
{
	int err = ksm_write_str("advisor_mode", "none");

	err = err ? err : ksm_write("pages_to_scan", 5000);
	err = err ? err : ksm_write("sleep_millisecs", 0);
	err = err ? err : ksm_write("run", 1);
	return err;
}

/*
 * Save the knobs to @saved, unmerge everything and scan flat out.  On
 * failure the knobs are restored and false is returned.
 */
static inline bool ksm_begin(struct ksm_knobs *saved, double timeout_s)
{
	ksm_save(saved);
	if (!ksm_settle(timeout_s) || ksm_fast()) {
		ksm_restore(saved);
		return false;
	}
	return true;
}

/*
 * The number after "@key@sep" on the first line of @path that starts so;
 * -1 when the file or the line is missing.
 */
static inline long ksm_file_field(const char *path, const char *key, char sep)
{
	char line[256];
	size_t klen = strlen(key);
	long val = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == sep) {
			val = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/* Sum of one "Key:  N kB" field over /proc/self/smaps_rollup. */
static inline long ksm_smaps_rollup_kb(const char *key)
{
	return ksm_file_field("/proc/self/smaps_rollup", key, ':');
}

/* One field of /proc/self/ksm_stat ("name value"); -1 when missing. */
static inline long ksm_stat_field(const char *key)
{
	return ksm_file_field("/proc/self/ksm_stat", key, ' ');
}

/* The first number in the file at @path; -1 when it cannot be read. */
static inline long ksm_read_long_file(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* This process's KSM pages, from /proc/self/ksm_merging_pages. */
static inline long ksm_self_merging(void)
{
	return ksm_read_long_file("/proc/self/ksm_merging_pages");
}

/* This process's KSM pages, from the ksm_merging_pages of /proc/self/ksm_stat. */
static inline long ksm_merging_pages(void)
{
	return ksm_stat_field("ksm_merging_pages");
}

/* The advisor tunables, which ksm_save()/ksm_restore() leave alone. */
static const char * const ksm_adv_knobs[] = {
	"advisor_max_cpu", "advisor_min_pages_to_scan",
	"advisor_max_pages_to_scan", "advisor_target_scan_time",
};

#define KSM_NR_ADV ARRAY_SIZE(ksm_adv_knobs)

/* Every knob a test may change, the advisor tunables included. */
struct ksm_all_knobs {
	struct ksm_knobs k;
	char adv[KSM_NR_ADV][32];
};

static inline void ksm_save_all(struct ksm_all_knobs *s)
{
	ksm_save(&s->k);
	for (size_t i = 0; i < KSM_NR_ADV; i++)
		if (ksm_read_str(ksm_adv_knobs[i], s->adv[i], sizeof(s->adv[i])))
			s->adv[i][0] = '\0';
}

static inline void ksm_restore_all(const struct ksm_all_knobs *s)
{
	/* advisor_mode resets pages_to_scan: ksm_restore orders that */
	ksm_restore(&s->k);
	for (size_t i = 0; i < KSM_NR_ADV; i++)
		if (s->adv[i][0])
			ksm_write_str(ksm_adv_knobs[i], s->adv[i]);
}

/*
 * One write() of @len bytes to KSM_SYSFS/@name.  Returns the write() result
 * (bytes written, possibly 0) or -errno (also when open fails).
 */
static inline long ksm_raw_write(const char *name, const char *val, size_t len)
{
	char path[256];
	ssize_t n;
	long ret;
	int fd;

	snprintf(path, sizeof(path), KSM_SYSFS "%s", name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	ret = n < 0 ? -errno : n;
	close(fd);
	return ret;
}

/* ---- page contents: every 8-byte word depends on (id, word) ---- */

static inline uint64_t ksm_pat_word(uint64_t id, size_t i)
{
	uint64_t x = (id + 1) * 0x9E3779B97F4A7C15ULL ^ (i * 0xBF58476D1CE4E5B9ULL);

	return x ^ (x >> 29);
}

static inline void ksm_fill_page(char *p, uint64_t id)
{
	size_t words = sysconf(_SC_PAGESIZE) / 8;
	uint64_t *w = (uint64_t *)p;

	for (size_t i = 0; i < words; i++)
		w[i] = ksm_pat_word(id, i);
}

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

/*
 * @n small pages (a THP split would only blur what is measured), page i
 * holding pattern @id + i, made mergeable; NULL on failure.
 */
static inline char *ksm_map_patterns(size_t n, uint64_t id)
{
	size_t ps = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, n * ps, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < n; i++)
		ksm_fill_page(p + i * ps, id + i);
	if (madvise(p, n * ps, MADV_MERGEABLE)) {
		munmap(p, n * ps);
		return NULL;
	}
	return p;
}

/* True when the page holds pattern @id; reports the first bad word. */
static inline bool ksm_check_page(const char *p, uint64_t id, const char *what,
				  size_t idx)
{
	size_t words = sysconf(_SC_PAGESIZE) / 8;
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < words; i++) {
		if (w[i] != ksm_pat_word(id, i)) {
			ksft_print_msg("%s: page %zu word %zu: expected %#llx found %#llx\n",
				       what, idx, i,
				       (unsigned long long)ksm_pat_word(id, i),
				       (unsigned long long)w[i]);
			return false;
		}
	}
	return true;
}

/* How many of the @n pages at @p do not hold patterns @id, @id + 1, ... */
static inline int ksm_check_patterns(const char *p, size_t n, uint64_t id,
				     const char *what)
{
	size_t ps = sysconf(_SC_PAGESIZE);
	int bad = 0;

	for (size_t i = 0; i < n; i++)
		bad += !ksm_check_page(p + i * ps, id + i, what, i);
	return bad;
}

/* At least @arg (a long *) pages of ours are mapped to KSM pages. */
static inline bool ksm_self_merging_reached(void *arg)
{
	return ksm_self_merging() >= *(long *)arg;
}

/* ---- kernel log watch: no WARNING/BUG/KASAN splat while we run ---- */

/* /dev/kmsg positioned at its end, or -1 when it cannot be opened. */
static inline int ksm_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/*
 * Reports and counts the splat records logged since ksm_kmsg_open()
 * returned @fd; -1 when @fd is not open.
 */
static inline int ksm_kmsg_splats(int fd)
{
	static const char * const bad[] = {
		"WARNING:", "BUG:", "Oops", "KASAN", "UBSAN", "kernel BUG",
		"possible circular locking", "possible recursive locking",
		"general protection fault", "list_add corruption",
		"list_del corruption", "page dumped because", "Bad page",
	};
	char rec[8192];
	int found = 0;

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);

		if (n < 0) {
			if (errno == EPIPE)	/* overwritten records */
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

/* ---- /proc/self/smaps and pagemap ---- */

/* "Key: N kB" of the /proc/self/smaps entry of the VMA containing @addr. */
static inline long ksm_vma_smaps_kb(const void *addr, const char *key)
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

/*
 * Does the VMA containing @addr carry the VmFlags word @flag (e.g. "mg")?
 * -1 when there is no such VMA.
 */
static inline int ksm_vma_has_flag(const void *addr, const char *flag)
{
	unsigned long a = (unsigned long)addr, s, e;
	char line[512];
	bool in = false;
	int ret = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 &&
		    line[strspn(line, "0123456789abcdef")] == '-') {
			in = a >= s && a < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			char *tok, *save = NULL;

			ret = 0;
			for (tok = strtok_r(line + 8, "\n ", &save); tok;
			     tok = strtok_r(NULL, "\n ", &save))
				if (!strcmp(tok, flag))
					ret = 1;
			break;
		}
	}
	fclose(f);
	return ret;
}

/* The pagemap PFN of @addr, 0 when not present or unreadable. */
/*
 * How many of the @n pages at @p have every pagemap bit in @bits (one read
 * of /proc/self/pagemap for the range); -1 on error.
 */
static inline long ksm_pagemap_count(const void *p, long n, uint64_t bits)
{
	size_t psz = sysconf(_SC_PAGESIZE);
	uint64_t *e = calloc(n, sizeof(*e));
	int fd = open("/proc/self/pagemap", O_RDONLY);
	long c = -1;

	if (fd >= 0 && e &&
	    pread(fd, e, n * sizeof(*e), (uintptr_t)p / psz * sizeof(*e)) ==
	    (ssize_t)(n * sizeof(*e))) {
		c = 0;
		for (long i = 0; i < n; i++)
			c += (e[i] & bits) == bits;
	}
	if (fd >= 0)
		close(fd);
	free(e);
	return c;
}

static inline uint64_t ksm_pfn_of(const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e),
		  (unsigned long)addr / sysconf(_SC_PAGESIZE) * sizeof(e)) != sizeof(e))
		e = 0;
	close(fd);
	if (!(e & (1ULL << 63)))
		return 0;
	return e & ((1ULL << 55) - 1);
}

/* ---- expected merge counts ---- */

struct ksm_expect {
	long shared, sharing, merging;
};

/* Global pages_shared/pages_sharing and our ksm_merging_pages are as @arg. */
static inline bool ksm_counts_reached(void *arg)
{
	const struct ksm_expect *e = arg;

	return ksm_read("pages_shared") == e->shared &&
	       ksm_read("pages_sharing") == e->sharing &&
	       ksm_merging_pages() == e->merging;
}

static inline void ksm_print_counts(const char *what, const struct ksm_expect *e)
{
	ksft_print_msg("%s: pages_shared %ld (want %ld) pages_sharing %ld (want %ld)\n",
		       what, ksm_read("pages_shared"), e->shared,
		       ksm_read("pages_sharing"), e->sharing);
	ksft_print_msg("%s: ksm_merging_pages %ld (want %ld) full_scans %ld\n",
		       what, ksm_merging_pages(), e->merging, ksm_read("full_scans"));
}

/* ---- test results ---- */

/* Unmerge everything and scan flat out again; a failure fails the test. */
static inline void ksm_reset(int *ret, const char *name, double timeout_s)
{
	if (!ksm_settle(timeout_s) || ksm_fast()) {
		ksft_print_msg("%s: could not reset KSM\n", name);
		*ret = KSFT_FAIL;
	}
}

/* Reports a KSFT_PASS/KSFT_SKIP/KSFT_FAIL result as a TAP line. */
static inline void ksm_report(int r, const char *name)
{
	if (r == KSFT_PASS)
		ksft_test_result_pass("%s\n", name);
	else if (r == KSFT_SKIP)
		ksft_test_result_skip("%s\n", name);
	else
		ksft_test_result_fail("%s\n", name);
}

/* Debug kernels' fault injection knob (debugfs), for race tests. */
#define RACE_DELAY	"/sys/kernel/debug/ksm/race_delay_us"

/* Set race_delay_us; 0 or -errno. */
static inline int ksm_race_delay_set(unsigned int us)
{
	char buf[32];
	int fd, n, err = 0;

	fd = open(RACE_DELAY, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%u", us);
	if (write(fd, buf, n) != n)
		err = -errno;
	close(fd);
	return err;
}

#endif /* KSM_COMMON_H */
