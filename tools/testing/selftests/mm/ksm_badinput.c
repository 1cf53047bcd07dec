// SPDX-License-Identifier: GPL-2.0
/*
 * KSM bad-input test: invalid writes to every /sys/kernel/mm/ksm file,
 * MADV_MERGEABLE/MADV_UNMERGEABLE on ranges KSM cannot or must not handle,
 * PR_SET/GET_MEMORY_MERGE with bad arguments, and concurrent in-range sysfs
 * writers racing each other and ksmd.  Every rejected input must return the
 * errno upstream 6.12 returns and leave the value unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
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
#include "vm_util.h"
#include "ksm_common.h"

#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif

static long page_size;
static int kmsg_fd = -1;
static struct ksm_all_knobs saved;

/* ---- invalid sysfs writes ---- */

enum ktype { K_UINT, K_RUN, K_BOOL, K_MAN, K_MPS, K_ULONG, K_ULONG1, K_ADV };

struct knob {
	const char *name;
	enum ktype type;
};

static const struct knob knobs[] = {
	{ "run", K_RUN },
	{ "pages_to_scan", K_UINT },
	{ "sleep_millisecs", K_UINT },
	{ "merge_across_nodes", K_MAN },
	{ "use_zero_pages", K_BOOL },
	{ "smart_scan", K_BOOL },
	{ "max_page_sharing", K_MPS },
	{ "stable_node_chains_prune_millisecs", K_UINT },
	{ "advisor_mode", K_ADV },
	{ "advisor_max_cpu", K_ULONG },
	{ "advisor_min_pages_to_scan", K_ULONG },
	{ "advisor_max_pages_to_scan", K_ULONG },
	{ "advisor_target_scan_time", K_ULONG1 },
};

static const char * const ro_stats[] = {
	"pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
	"pages_skipped", "pages_scanned", "full_scans", "ksm_zero_pages",
	"general_profit", "stable_node_chains", "stable_node_dups",
};

/* errno masks */
#define E_INVAL		BIT(0)
#define E_RANGE		BIT(1)
#define E_OK0		BIT(2)	/* write() returned 0 (empty write) */

static int nr_bad_writes, nr_bad_fail;

/* One invalid write: must fail with an errno in @ok and change nothing. */
static void bad_write(const char *name, const char *val, size_t len,
		      unsigned int ok, const char *what)
{
	char before[128], after[128];
	long ret;

	if (ksm_read_str(name, before, sizeof(before))) {
		ksft_print_msg("%s: cannot read\n", name);
		nr_bad_fail++;
		return;
	}
	ret = ksm_raw_write(name, val, len);
	nr_bad_writes++;
	if (ksm_read_str(name, after, sizeof(after)))
		after[0] = '\0';
	if (strcmp(before, after)) {
		ksft_print_msg("%s: %s write changed value '%s' -> '%s'\n",
			       name, what, before, after);
		nr_bad_fail++;
		return;
	}
	if (ret == 0 && (ok & E_OK0))
		return;
	if (ret == -EINVAL && (ok & E_INVAL))
		return;
	if (ret == -ERANGE && (ok & E_RANGE))
		return;
	ksft_print_msg("%s: %s write (%.24s%s, %zu bytes) returned %s\n", name,
		       what, val, len > 24 ? "..." : "", len,
		       ret > 0 ? "success" : ret == 0 ? "0" : strerror(-ret));
	nr_bad_fail++;
}

static void test_sysfs_invalid(void)
{
	static const char * const common_bad[] = {
		"abc", "\n", "12abc", " 5", "0x10", "5 5", "1.5", "--1", "+",
	};
	static char garbage[5000];
	int before_fail = nr_bad_fail;

	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = "Z@#%^&*()_-=[]{};:ZzQq"[i % 22];

	for (size_t k = 0; k < ARRAY_SIZE(knobs); k++) {
		const struct knob *kb = &knobs[k];
		/* kstrtoul/kstrtoint errors are passed through by upstream */
		unsigned int ovf = E_INVAL | E_RANGE;
		size_t i;

		/* common garbage: never a valid number/bool/mode */
		if (kb->type != K_BOOL)
			for (i = 0; i < ARRAY_SIZE(common_bad); i++)
				bad_write(kb->name, common_bad[i],
					  strlen(common_bad[i]), E_INVAL, "garbage");
		bad_write(kb->name, garbage, 4096, E_INVAL, "4KiB garbage");
		bad_write(kb->name, garbage, sizeof(garbage), E_INVAL,
			  "5000B garbage");
		/* an empty write is a no-op for sysfs */
		bad_write(kb->name, "", 0, E_OK0 | E_INVAL, "empty");

		switch (kb->type) {
		case K_RUN:
			bad_write(kb->name, "3", 1, E_INVAL, "out of range");
			bad_write(kb->name, "-1", 2, E_INVAL, "negative");
			bad_write(kb->name, "4294967298", 10, ovf, "overflow");
			break;
		case K_UINT:
			bad_write(kb->name, "-1", 2, E_INVAL, "negative");
			bad_write(kb->name, "4294967296", 10, ovf, "overflow");
			bad_write(kb->name, "99999999999999999999999", 23, ovf,
				  "overflow");
			break;
		case K_MAN:
			bad_write(kb->name, "2", 1, E_INVAL, "out of range");
			bad_write(kb->name, "-1", 2, E_INVAL, "negative");
			bad_write(kb->name, "18446744073709551617", 20, ovf,
				  "overflow");
			break;
		case K_MPS:
			bad_write(kb->name, "1", 1, E_INVAL, "out of range");
			bad_write(kb->name, "0", 1, E_INVAL, "out of range");
			bad_write(kb->name, "-2", 2, E_INVAL, "negative");
			bad_write(kb->name, "2147483648", 10, ovf, "overflow");
			break;
		case K_ULONG1:
			bad_write(kb->name, "0", 1, E_INVAL, "out of range");
			fallthrough;
		case K_ULONG:
			bad_write(kb->name, "-1", 2, E_INVAL, "negative");
			bad_write(kb->name, "18446744073709551616", 20, ovf,
				  "overflow");
			break;
		case K_BOOL:
			bad_write(kb->name, "2", 1, E_INVAL, "not a bool");
			bad_write(kb->name, "-1", 2, E_INVAL, "not a bool");
			bad_write(kb->name, "abc", 3, E_INVAL, "not a bool");
			bad_write(kb->name, "\n", 1, E_INVAL, "not a bool");
			bad_write(kb->name, "ox", 2, E_INVAL, "not a bool");
			break;
		case K_ADV:
			bad_write(kb->name, "scan", 4, E_INVAL, "bad mode");
			bad_write(kb->name, "nonee", 5, E_INVAL, "bad mode");
			bad_write(kb->name, "scan-time-x", 11, E_INVAL,
				  "bad mode");
			bad_write(kb->name, "[none]", 6, E_INVAL, "bad mode");
			bad_write(kb->name, "1", 1, E_INVAL, "bad mode");
			break;
		}
	}
	ksft_test_result(nr_bad_fail == before_fail,
			 "sysfs invalid writes rejected, values unchanged (%d writes)\n",
			 nr_bad_writes);
}

static void test_sysfs_readonly(void)
{
	int fails = 0;

	for (size_t i = 0; i < ARRAY_SIZE(ro_stats); i++) {
		char path[256];
		int fd;

		snprintf(path, sizeof(path), KSM_SYSFS "%s", ro_stats[i]);
		if (access(path, F_OK)) {
			ksft_print_msg("%s: missing\n", ro_stats[i]);
			fails++;
			continue;
		}
		fd = open(path, O_WRONLY);
		if (fd >= 0) {
			ssize_t n = write(fd, "0", 1);

			ksft_print_msg("%s: opened for write, write -> %zd (%s)\n",
				       ro_stats[i], n, n < 0 ? strerror(errno) : "ok");
			close(fd);
			fails++;
		} else if (errno != EACCES) {
			ksft_print_msg("%s: open(O_WRONLY): %s, want EACCES\n",
				       ro_stats[i], strerror(errno));
			fails++;
		}
	}
	ksft_test_result(!fails, "read-only stats refuse writes with EACCES\n");
}

/* ---- madvise ---- */

/* First VMA of ours whose VmFlags carry @flag; NULL when none. */
static void *find_vma_with_flag(const char *flag)
{
	unsigned long s = 0, t, e, found = 0;
	char line[512];
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return NULL;
	while (!found && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmFlags:", 8)) {
			char *tok, *save = NULL;

			for (tok = strtok_r(line + 8, "\n ", &save); tok;
			     tok = strtok_r(NULL, "\n ", &save))
				if (!strcmp(tok, flag))
					found = s;
		} else if (sscanf(line, "%lx-%lx ", &t, &e) == 2 &&
			   line[strspn(line, "0123456789abcdef")] == '-') {
			s = t;
		}
	}
	fclose(f);
	return (void *)found;
}

static bool expect_madv(void *addr, size_t len, int advice, int want_errno,
			const char *what)
{
	int ret = madvise(addr, len, advice);
	int err = ret ? errno : 0;

	if (err != want_errno) {
		ksft_print_msg("%s: madvise(%s) = %s, want %s\n", what,
			       advice == MADV_MERGEABLE ? "MERGEABLE" : "UNMERGEABLE",
			       err ? strerror(err) : "0",
			       want_errno ? strerror(want_errno) : "0");
		return false;
	}
	return true;
}

static bool expect_flag(void *addr, int want, const char *what)
{
	int got = ksm_vma_has_flag(addr, "mg");

	if (got != want) {
		ksft_print_msg("%s: VM_MERGEABLE at %p is %d, want %d\n",
			       what, addr, got, want);
		return false;
	}
	return true;
}

static void test_madv_unaligned(void)
{
	char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool ok = true;

	if (p == MAP_FAILED) {
		ksft_test_result_fail("unaligned: mmap: %s\n", strerror(errno));
		return;
	}
	ok &= expect_madv(p + 1, page_size, MADV_MERGEABLE, EINVAL, "unaligned");
	ok &= expect_madv(p + page_size / 2, page_size, MADV_MERGEABLE, EINVAL,
			  "unaligned");
	ok &= expect_flag(p, 0, "unaligned");
	ok &= expect_madv(p, (size_t)-page_size, MADV_MERGEABLE, EINVAL,
			  "wrapping length");
	ok &= expect_flag(p, 0, "wrapping length");
	/* zero length is a successful no-op */
	ok &= expect_madv(p, 0, MADV_MERGEABLE, 0, "zero length");
	ok &= expect_flag(p, 0, "zero length");
	ok &= expect_madv(p + 1, page_size, MADV_UNMERGEABLE, EINVAL,
			  "unaligned");
	munmap(p, 4 * page_size);
	ksft_test_result(ok, "madvise on unaligned/wrapping ranges: EINVAL, no change\n");
}

static void test_madv_unmapped(void)
{
	char *p = mmap(NULL, 3 * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool ok = true;

	if (p == MAP_FAILED) {
		ksft_test_result_fail("unmapped: mmap: %s\n", strerror(errno));
		return;
	}
	/* hole in the middle: ENOMEM, but the mapped parts are advised */
	munmap(p + page_size, page_size);
	ok &= expect_madv(p, 3 * page_size, MADV_MERGEABLE, ENOMEM, "hole");
	ok &= expect_flag(p, 1, "hole (head)");
	ok &= expect_flag(p + 2 * page_size, 1, "hole (tail)");
	ok &= expect_madv(p, 3 * page_size, MADV_UNMERGEABLE, ENOMEM, "hole");
	ok &= expect_flag(p, 0, "hole (head)");
	ok &= expect_flag(p + 2 * page_size, 0, "hole (tail)");
	/* completely unmapped */
	ok &= expect_madv(p + page_size, page_size, MADV_MERGEABLE, ENOMEM,
			  "unmapped");
	ok &= expect_madv(p + page_size, page_size, MADV_UNMERGEABLE, ENOMEM,
			  "unmapped");
	munmap(p, 3 * page_size);
	ksft_test_result(ok, "madvise over unmapped ranges: ENOMEM\n");
}

/* Incompatible VMAs: the advice is silently ignored (returns 0). */
static bool madv_ignored(void *p, size_t len, const char *what)
{
	bool ok = true;

	ok &= expect_madv(p, len, MADV_MERGEABLE, 0, what);
	ok &= expect_flag(p, 0, what);
	ok &= expect_madv(p, len, MADV_UNMERGEABLE, 0, what);
	ok &= expect_flag(p, 0, what);
	return ok;
}

static void test_madv_shared(void)
{
	char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	bool ok;

	if (p == MAP_FAILED) {
		ksft_test_result_fail("shared: mmap: %s\n", strerror(errno));
		return;
	}
	memset(p, 0x5a, 4 * page_size);
	ok = madv_ignored(p, 4 * page_size, "MAP_SHARED");
	for (long i = 0; i < 4 * page_size; i++)
		if (p[i] != 0x5a) {
			ksft_print_msg("MAP_SHARED content changed at %ld\n", i);
			ok = false;
			break;
		}
	munmap(p, 4 * page_size);
	ksft_test_result(ok, "madvise on MAP_SHARED: ignored (0), not mergeable\n");
}

static void test_madv_hugetlb(void)
{
	const char *nr = "/proc/sys/vm/nr_hugepages";
	long orig = -1, hps = default_huge_page_size();
	char buf[32];
	bool ok = false, changed = false;
	char *p = MAP_FAILED;
	FILE *f;

	if (hps <= 0) {
		ksft_test_result_skip("hugetlb: no default huge page size\n");
		return;
	}
	f = fopen(nr, "r");
	if (f) {
		if (fscanf(f, "%ld", &orig) != 1)
			orig = -1;
		fclose(f);
	}
	if (orig >= 0 && get_free_hugepages() < 1) {
		int fd = open(nr, O_WRONLY);

		if (fd >= 0) {
			snprintf(buf, sizeof(buf), "%ld", orig + 1);
			changed = write(fd, buf, strlen(buf)) > 0;
			close(fd);
		}
	}
	p = mmap(NULL, hps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED) {
		ksft_test_result_skip("hugetlb: cannot map a huge page: %s\n",
				      strerror(errno));
		goto out;
	}
	memset(p, 0x33, hps);
	ok = madv_ignored(p, hps, "hugetlb");
	if (p[hps - 1] != 0x33 || p[0] != 0x33) {
		ksft_print_msg("hugetlb content changed\n");
		ok = false;
	}
	munmap(p, hps);
	ksft_test_result(ok, "madvise on hugetlb: ignored (0), not mergeable\n");
out:
	if (changed) {
		int fd = open(nr, O_WRONLY);

		if (fd >= 0) {
			snprintf(buf, sizeof(buf), "%ld", orig);
			if (write(fd, buf, strlen(buf)) < 0)
				ksft_perror("restore nr_hugepages");
			close(fd);
		}
	}
}

static void test_madv_pfnmap(void)
{
	/* [vvar] (x86) is VM_IO | VM_PFNMAP: present in every process */
	void *p = find_vma_with_flag("pf");
	bool ok;

	if (!p) {
		ksft_test_result_skip("PFNMAP: no VM_PFNMAP mapping found\n");
		return;
	}
	ok = madv_ignored(p, page_size, "PFNMAP");
	ksft_test_result(ok, "madvise on VM_PFNMAP (%p): ignored (0), not mergeable\n",
			 p);
}

/* ---- prctl ---- */

static int prctl_child(void)
{
	bool ok = true;
	long r;

#define CHECK_PRCTL(call, want_ret, want_errno) do {			\
	long exp_ret = (want_ret);					\
	int exp_err = (want_errno);					\
									\
	errno = 0;							\
	r = call;							\
	if (r != exp_ret || (r < 0 && errno != exp_err)) {		\
		ksft_print_msg("%s = %ld (%s), want %ld (%s)\n", #call,	\
			       r, strerror(errno), exp_ret,		\
			       strerror(exp_err));			\
		ok = false;						\
	}								\
} while (0)

	CHECK_PRCTL(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0), 0, 0);
	CHECK_PRCTL(prctl(PR_SET_MEMORY_MERGE, 1, 1, 0, 0), -1, EINVAL);
	CHECK_PRCTL(prctl(PR_SET_MEMORY_MERGE, 1, 0, 1, 0), -1, EINVAL);
	CHECK_PRCTL(prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 1), -1, EINVAL);
	CHECK_PRCTL(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0), 0, 0);
	CHECK_PRCTL(prctl(PR_GET_MEMORY_MERGE, 1, 0, 0, 0), -1, EINVAL);
	CHECK_PRCTL(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 1), -1, EINVAL);
	CHECK_PRCTL(prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0), 0, 0);
	CHECK_PRCTL(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0), 1, 0);
	CHECK_PRCTL(prctl(PR_SET_MEMORY_MERGE, 0, 7, 0, 0), -1, EINVAL);
	CHECK_PRCTL(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0), 1, 0);
	CHECK_PRCTL(prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0), 0, 0);
	CHECK_PRCTL(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0), 0, 0);
	/* enabling twice, disabling twice: idempotent */
	CHECK_PRCTL(prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0), 0, 0);
	CHECK_PRCTL(prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0), 0, 0);
	CHECK_PRCTL(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0), 1, 0);
	CHECK_PRCTL(prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0), 0, 0);
	CHECK_PRCTL(prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0), 0, 0);
	CHECK_PRCTL(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0), 0, 0);
#undef CHECK_PRCTL
	fflush(stdout);
	return ok ? 0 : 1;
}

static void test_prctl(void)
{
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		ksft_test_result_fail("prctl: fork: %s\n", strerror(errno));
		return;
	}
	if (!pid)
		_exit(prctl_child());
	waitpid(pid, &status, 0);
	ksft_test_result(WIFEXITED(status) && !WEXITSTATUS(status),
			 "prctl PR_SET/GET_MEMORY_MERGE bad args: EINVAL, state kept\n");
}

/* ---- concurrent writers ---- */

#define RACE_PAGES 512

static int race_stop;
static int race_unexpected;
static pthread_mutex_t race_lock = PTHREAD_MUTEX_INITIALIZER;

struct racer {
	int id;
	unsigned int seed;
	long writes, transient;
};

static void race_write(struct racer *r, const char *name, long val,
		       bool einval_ok)
{
	int err = ksm_write(name, val);

	r->writes++;
	if (!err)
		return;
	if (err == -EBUSY || err == -EINTR || err == -ENOMEM ||
	    err == -EAGAIN || (einval_ok && err == -EINVAL)) {
		r->transient++;
		return;
	}
	pthread_mutex_lock(&race_lock);
	if (race_unexpected++ < 10)
		ksft_print_msg("racer %d: %s=%ld: %s\n", r->id, name, val,
			       strerror(-err));
	pthread_mutex_unlock(&race_lock);
}

static void race_write_str(struct racer *r, const char *name,
			   const char *val)
{
	int err = ksm_write_str(name, val);

	r->writes++;
	if (err) {
		pthread_mutex_lock(&race_lock);
		if (race_unexpected++ < 10)
			ksft_print_msg("racer %d: %s=%s: %s\n", r->id, name,
				       val, strerror(-err));
		pthread_mutex_unlock(&race_lock);
	}
}

static void *racer_fn(void *arg)
{
	struct racer *r = arg;

	while (!READ_ONCE(race_stop)) {
		unsigned int x = rand_r(&r->seed);

		switch (r->id) {
		case 0:
			/* EINVAL while advisor_mode is scan-time */
			race_write(r, "pages_to_scan", 1 + x % 5000, true);
			race_write(r, "sleep_millisecs", x % 20, false);
			race_write(r, "stable_node_chains_prune_millisecs",
				   x % 5000, false);
			break;
		case 1:
			race_write(r, "run", x % 3, false);
			race_write(r, "use_zero_pages", x & 1, false);
			race_write(r, "smart_scan", (x >> 1) & 1, false);
			break;
		case 2:
			race_write(r, "max_page_sharing", 2 + x % 300, false);
			if (access(KSM_SYSFS "merge_across_nodes", F_OK) == 0)
				race_write(r, "merge_across_nodes", x & 1, false);
			break;
		case 3:
			race_write_str(r, "advisor_mode",
				       (x & 3) ? "none" : "scan-time");
			race_write(r, "advisor_max_cpu", 1 + x % 100, false);
			race_write(r, "advisor_target_scan_time", 1 + x % 500,
				   false);
			race_write(r, "advisor_min_pages_to_scan",
				   100 + x % 500, false);
			race_write(r, "advisor_max_pages_to_scan",
				   1000 + x % 30000, false);
			break;
		}
		/* keep the debug guest responsive */
		if ((x & 7) == 0)
			usleep(1000);
	}
	return NULL;
}

/* Mergeable memory that keeps being scanned while the racers run. */
static void race_victim(int ready_fd, int stop_fd)
{
	char *p = mmap(NULL, RACE_PAGES * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned int seed = getpid();
	long bad = 0;
	char c;

	if (p == MAP_FAILED)
		_exit(2);
	for (long i = 0; i < RACE_PAGES; i++)
		memset(p + i * page_size, (i % 4) ? 'a' + i % 4 : 0, page_size);
	if (madvise(p, RACE_PAGES * page_size, MADV_MERGEABLE))
		_exit(3);
	if (write(ready_fd, "r", 1) != 1)
		_exit(4);
	fcntl(stop_fd, F_SETFL, O_NONBLOCK);
	while (read(stop_fd, &c, 1) != 1) {
		long i = rand_r(&seed) % RACE_PAGES;

		/* COW-write the same value back: content must not change */
		p[i * page_size + rand_r(&seed) % page_size] =
			(i % 4) ? 'a' + i % 4 : 0;
		usleep(500);
	}
	for (long i = 0; i < RACE_PAGES; i++) {
		char want = (i % 4) ? 'a' + i % 4 : 0;

		for (long j = 0; j < page_size; j++)
			if (p[i * page_size + j] != want) {
				if (bad++ < 5)
					ksft_print_msg("victim: page %ld+%ld: %#x want %#x\n",
						       i, j, p[i * page_size + j], want);
				break;
			}
	}
	fflush(stdout);
	_exit(bad ? 1 : 0);
}

static bool knob_valid(const char *name, long lo, long hi)
{
	long v;

	errno = 0;
	v = ksm_read(name);
	if (v < lo || v > hi) {
		ksft_print_msg("after race: %s = %ld, want [%ld, %ld]\n",
			       name, v, lo, hi);
		return false;
	}
	return true;
}

static void test_concurrent(double secs)
{
	struct racer r[4];
	pthread_t th[4];
	int ready[2], stop[2], status, i;
	long writes = 0, transient = 0;
	bool ok = true;
	char mode[64], c;
	pid_t pid;

	if (pipe(ready) || pipe(stop)) {
		ksft_test_result_fail("concurrent: pipe\n");
		return;
	}
	ksm_fast();
	pid = fork();
	if (pid < 0) {
		ksft_test_result_fail("concurrent: fork\n");
		return;
	}
	if (!pid)
		race_victim(ready[1], stop[0]);
	if (read(ready[0], &c, 1) != 1) {
		ksft_test_result_fail("concurrent: victim did not start\n");
		waitpid(pid, NULL, 0);
		return;
	}
	ksm_wait_scans(2, 20);

	WRITE_ONCE(race_stop, 0);
	for (i = 0; i < 4; i++) {
		r[i] = (struct racer){ .id = i, .seed = 1234 + i };
		pthread_create(&th[i], NULL, racer_fn, &r[i]);
	}
	usleep((useconds_t)(secs * 1e6));
	WRITE_ONCE(race_stop, 1);
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		writes += r[i].writes;
		transient += r[i].transient;
	}

	/* every knob holds a value in range */
	ok &= knob_valid("run", 0, 2);
	ok &= knob_valid("pages_to_scan", 0, UINT32_MAX);
	ok &= knob_valid("sleep_millisecs", 0, 19);
	ok &= knob_valid("stable_node_chains_prune_millisecs", 0, 4999);
	ok &= knob_valid("use_zero_pages", 0, 1);
	ok &= knob_valid("smart_scan", 0, 1);
	ok &= knob_valid("max_page_sharing", 2, 301);
	if (access(KSM_SYSFS "merge_across_nodes", F_OK) == 0)
		ok &= knob_valid("merge_across_nodes", 0, 1);
	ok &= knob_valid("advisor_max_cpu", 1, 100);
	ok &= knob_valid("advisor_target_scan_time", 1, 500);
	ok &= knob_valid("advisor_min_pages_to_scan", 100, 599);
	ok &= knob_valid("advisor_max_pages_to_scan", 1000, 30999);
	if (ksm_read_str("advisor_mode", mode, sizeof(mode)) ||
	    (strcmp(mode, "[none] scan-time") &&
	     strcmp(mode, "none [scan-time]"))) {
		ksft_print_msg("after race: advisor_mode '%s'\n", mode);
		ok = false;
	}
	/* counters are consistent once everything is unmerged */
	if (!ksm_settle(60)) {
		ksft_print_msg("after race: still shared %ld/%ld after run=2\n",
			       ksm_read("pages_shared"), ksm_read("pages_sharing"));
		ok = false;
	}
	if (write(stop[1], "s", 1) != 1)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		ksft_print_msg("victim process failed (status %#x)\n", status);
		ok = false;
	}
	close(ready[0]); close(ready[1]); close(stop[0]); close(stop[1]);
	if (race_unexpected)
		ok = false;
	ksft_test_result(ok,
			 "concurrent sysfs writers (%ld writes, %ld busy/transient) leave valid knobs\n",
			 writes, transient);
}

int main(void)
{
	int splats;

	ksft_print_header();
	page_size = sysconf(_SC_PAGESIZE);
	if (access(KSM_SYSFS "run", F_OK))
		ksft_exit_skip("KSM sysfs not available\n");
	if (geteuid())
		ksft_exit_skip("must run as root\n");
	ksft_set_plan(11);
	kmsg_fd = ksm_kmsg_open();
	ksm_save_all(&saved);
	if (ksm_write_str("advisor_mode", "none"))
		ksft_print_msg("cannot set advisor_mode none\n");

	test_sysfs_invalid();
	test_sysfs_readonly();
	test_madv_unaligned();
	test_madv_unmapped();
	test_madv_shared();
	test_madv_hugetlb();
	test_madv_pfnmap();
	test_prctl();
	test_concurrent(3.0);

	ksm_restore_all(&saved);
	ksft_test_result(ksm_nothing_shared(NULL) && ksm_read("run") == saved.k.run &&
			 ksm_read("max_page_sharing") == saved.k.max_page_sharing &&
			 ksm_read("pages_to_scan") == saved.k.pages_to_scan,
			 "knobs restored, nothing left merged\n");
	splats = ksm_kmsg_splats(kmsg_fd);
	if (splats < 0)
		ksft_test_result_skip("no /dev/kmsg to check for splats\n");
	else
		ksft_test_result(!splats, "no kernel splat logged (%d)\n", splats);
	ksft_finished();
}
