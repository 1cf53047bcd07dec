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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>

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

/* Knobs for a fast, deterministic test: scan flat out. */
static inline int ksm_fast(void)
{
	int err = ksm_write_str("advisor_mode", "none");

	err = err ? err : ksm_write("pages_to_scan", 5000);
	err = err ? err : ksm_write("sleep_millisecs", 0);
	err = err ? err : ksm_write("run", 1);
	return err;
}

/* Sum of one "Key:  N kB" field over /proc/self/smaps_rollup. */
static inline long ksm_smaps_rollup_kb(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long val = -1;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			val = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/* One field of /proc/self/ksm_stat ("name value"); -1 when missing. */
static inline long ksm_stat_field(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long val = -1;
	FILE *f = fopen("/proc/self/ksm_stat", "r");

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

#endif /* KSM_COMMON_H */
