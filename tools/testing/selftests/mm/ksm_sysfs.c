// SPDX-License-Identifier: GPL-2.0
/*
 * KSM sysfs contract test: every file of /sys/kernel/mm/ksm exists and is
 * readable; every writable knob takes valid values and reads them back;
 * invalid values fail with EINVAL (ERANGE also accepted for overflow) and
 * leave the value unchanged; read-only statistics refuse writes;
 * merge_across_nodes and max_page_sharing are EBUSY while KSM pages exist
 * and writable again after run=2; pages_to_scan is refused while
 * advisor_mode=scan-time.  Also PR_SET/GET_MEMORY_MERGE argument checking
 * and MADV_MERGEABLE on unaligned, unmapped and MAP_SHARED ranges.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_common.h"

#define WAIT_S		180	/* bound only: TCG under load is slow */
#define BUSY_PAGES	64
#define CTRL_PAGES	16

static long page_size;
static struct ksm_all_knobs saved;

/* ---- raw sysfs access ---- */

static const char *ret_str(long ret)
{
	static char buf[64];

	if (ret >= 0)
		snprintf(buf, sizeof(buf), "success (%ld bytes)", ret);
	else
		snprintf(buf, sizeof(buf), "%s", strerror(-ret));
	return buf;
}

/* The selected word of "[none] scan-time" style files, else the text. */
static void current_value(const char *name, char *out, size_t len)
{
	char buf[128], *l, *r;

	if (ksm_read_str(name, buf, sizeof(buf))) {
		snprintf(out, len, "<unreadable: %s>", strerror(errno));
		return;
	}
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (l && r) {
		*r = '\0';
		snprintf(out, len, "%s", l + 1);
	} else {
		snprintf(out, len, "%s", buf);
	}
}

/* ---- the file set ---- */

static const char * const rw_files[] = {
	"run", "pages_to_scan", "sleep_millisecs", "merge_across_nodes",
	"use_zero_pages", "max_page_sharing",
	"stable_node_chains_prune_millisecs", "smart_scan", "advisor_mode",
	"advisor_max_cpu", "advisor_min_pages_to_scan",
	"advisor_max_pages_to_scan", "advisor_target_scan_time",
};

static const char * const ro_files[] = {
	"pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
	"pages_skipped", "pages_scanned", "full_scans", "ksm_zero_pages",
	"general_profit", "stable_node_chains", "stable_node_dups",
};

static bool known_file(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(rw_files); i++)
		if (!strcmp(name, rw_files[i]))
			return true;
	for (size_t i = 0; i < ARRAY_SIZE(ro_files); i++)
		if (!strcmp(name, ro_files[i]))
			return true;
	return false;
}

static void test_files_present(void)
{
	int bad = 0;
	struct dirent *de;
	DIR *d;

	for (int pass = 0; pass < 2; pass++) {
		const char * const *set = pass ? ro_files : rw_files;
		size_t n = pass ? ARRAY_SIZE(ro_files) : ARRAY_SIZE(rw_files);

		for (size_t i = 0; i < n; i++) {
			char path[256], buf[128];
			struct stat st;

			snprintf(path, sizeof(path), KSM_SYSFS "%s", set[i]);
			if (stat(path, &st)) {
				ksft_print_msg("%s: missing: %s\n", set[i],
					       strerror(errno));
				bad++;
				continue;
			}
			if (ksm_read_str(set[i], buf, sizeof(buf)) || !buf[0]) {
				ksft_print_msg("%s: not readable\n", set[i]);
				bad++;
				continue;
			}
			/* writable by root only, readable by all */
			if (!(st.st_mode & 0004) || (st.st_mode & 0022) ||
			    !!(st.st_mode & 0200) != !pass) {
				ksft_print_msg("%s: mode %o\n", set[i],
					       st.st_mode & 0777);
				bad++;
			}
		}
	}
	d = opendir(KSM_SYSFS);
	if (d) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.' && !known_file(de->d_name))
				ksft_print_msg("note: extra file %s (not in 6.12)\n",
					       de->d_name);
		closedir(d);
	}
	ksft_test_result(!bad, "all 6.12 files present, readable, right modes\n");
}

static void test_ro_refuse(void)
{
	int bad = 0;

	for (size_t i = 0; i < ARRAY_SIZE(ro_files); i++) {
		long ret = ksm_raw_write(ro_files[i], "0", 1);

		if (ret >= 0) {
			ksft_print_msg("%s: write accepted\n", ro_files[i]);
			bad++;
		} else if (ret != -EACCES && ret != -EPERM && ret != -EIO) {
			ksft_print_msg("%s: write refused with %s (expected EACCES)\n",
				       ro_files[i], strerror(-ret));
		}
	}
	ksft_test_result(!bad, "read-only statistics refuse writes\n");
}

/* ---- valid writes ---- */

struct valid {
	const char *name;
	const char *vals[6];	/* written values, NULL terminated */
	const char *reads[6];	/* what each must read back as */
	bool settle;		/* needs no KSM page in the system */
};

static const struct valid valid_tab[] = {
	{ "run", { "1", "0", "2", "0\n" }, { "1", "0", "2", "0" } },
	{ "pages_to_scan", { "1", "4294967295", "777\n" },
	  { "1", "4294967295", "777" } },
	{ "sleep_millisecs", { "0", "12345", "4294967295", "7\n" },
	  { "0", "12345", "4294967295", "7" } },
	{ "merge_across_nodes", { "0", "1", "0\n", "1\n" },
	  { "0", "1", "0", "1" }, true },
	{ "use_zero_pages", { "1", "0", "1\n", "0\n" },
	  { "1", "0", "1", "0" } },
	{ "max_page_sharing", { "2", "1000", "2147483647", "256\n" },
	  { "2", "1000", "2147483647", "256" }, true },
	{ "stable_node_chains_prune_millisecs", { "0", "1", "98765\n" },
	  { "0", "1", "98765" } },
	{ "smart_scan", { "0", "1", "0\n", "1\n" }, { "0", "1", "0", "1" } },
	{ "advisor_mode", { "scan-time", "none", "scan-time\n", "none\n" },
	  { "scan-time", "none", "scan-time", "none" } },
	{ "advisor_max_cpu", { "1", "100", "55\n" }, { "1", "100", "55" } },
	{ "advisor_min_pages_to_scan", { "1", "123456", "600\n" },
	  { "1", "123456", "600" } },
	{ "advisor_max_pages_to_scan", { "1", "999999", "40000\n" },
	  { "1", "999999", "40000" } },
	{ "advisor_target_scan_time", { "1", "3600", "150\n" },
	  { "1", "3600", "150" } },
};

static void test_valid(const struct valid *v)
{
	char orig[128], now[128];
	int bad = 0;

	if (v->settle && !ksm_settle(WAIT_S)) {
		ksft_test_result_fail("valid writes: %s (could not unmerge)\n",
				      v->name);
		return;
	}
	current_value(v->name, orig, sizeof(orig));
	for (int i = 0; v->vals[i]; i++) {
		long ret = ksm_raw_write(v->name, v->vals[i], strlen(v->vals[i]));

		current_value(v->name, now, sizeof(now));
		if (ret != (long)strlen(v->vals[i]) ||
		    strcmp(now, v->reads[i])) {
			ksft_print_msg("%s: write '%s': %s, reads '%s' (expected '%s')\n",
				       v->name, v->vals[i], ret_str(ret), now,
				       v->reads[i]);
			bad++;
		}
	}
	/* back to where it was */
	if (ksm_write_str(v->name, orig))
		ksft_print_msg("%s: cannot restore '%s'\n", v->name, orig);
	current_value(v->name, now, sizeof(now));
	if (strcmp(now, orig)) {
		ksft_print_msg("%s: restore: reads '%s' (expected '%s')\n",
			       v->name, now, orig);
		bad++;
	}
	ksft_test_result(!bad, "valid writes take effect: %s\n", v->name);
}

/* ---- invalid writes ---- */

enum kind { K_UINT, K_RUN, K_BOOL, K_MAN, K_MPS, K_ULONG, K_TST, K_ADV };

struct invalid {
	const char *name;
	enum kind kind;
};

static const struct invalid invalid_tab[] = {
	{ "run", K_RUN },
	{ "pages_to_scan", K_UINT },
	{ "sleep_millisecs", K_UINT },
	{ "merge_across_nodes", K_MAN },
	{ "use_zero_pages", K_BOOL },
	{ "max_page_sharing", K_MPS },
	{ "stable_node_chains_prune_millisecs", K_UINT },
	{ "smart_scan", K_BOOL },
	{ "advisor_mode", K_ADV },
	{ "advisor_max_cpu", K_ULONG },
	{ "advisor_min_pages_to_scan", K_ULONG },
	{ "advisor_max_pages_to_scan", K_ULONG },
	{ "advisor_target_scan_time", K_TST },
};

static char garbage[4096];

/*
 * One invalid write.  It must fail with EINVAL (or ERANGE when @range_ok),
 * an empty write may also return 0; the value must not change.
 */
static int bad_write(const char *name, const char *val, size_t len,
		     bool range_ok, const char *what)
{
	char before[128], after[128];
	long ret;

	current_value(name, before, sizeof(before));
	ret = ksm_raw_write(name, val, len);
	current_value(name, after, sizeof(after));
	if (strcmp(before, after)) {
		ksft_print_msg("%s: %s write changed the value '%s' -> '%s'\n",
			       name, what, before, after);
		ksm_write_str(name, before);
		return 1;
	}
	if (ret == -EINVAL || (range_ok && ret == -ERANGE) ||
	    (len == 0 && ret == 0))
		return 0;
	ksft_print_msg("%s: %s write '%.20s%s' (%zu bytes): %s, expected %s\n",
		       name, what, val, len > 20 ? "..." : "", len,
		       ret_str(ret), range_ok ? "EINVAL or ERANGE" : "EINVAL");
	return 1;
}

static int bad_str(const char *name, const char *val, bool range_ok)
{
	return bad_write(name, val, strlen(val), range_ok, "invalid");
}

static void test_invalid(const struct invalid *k)
{
	const char *name = k->name;
	bool num = k->kind != K_ADV;
	int bad = 0;

	/* common to every knob */
	bad += bad_write(name, "", 0, false, "empty");
	bad += bad_str(name, "\n", false);
	bad += bad_str(name, "-1", false);
	bad += bad_str(name, "abc", false);
	bad += bad_str(name, " x1", false);
	bad += bad_write(name, garbage, sizeof(garbage), false, "4 KiB garbage");
	if (num)
		bad += bad_str(name, "99999999999999999999999", true);

	/* trailing garbage: kstrtobool() style parsers take "1x", skip them */
	if (num && k->kind != K_BOOL) {
		bad += bad_str(name, "1x", false);
		bad += bad_str(name, "2 3", false);
		bad += bad_str(name, "0x10", false);
		bad += bad_str(name, "3.5", false);
	}

	switch (k->kind) {
	case K_UINT:
	case K_RUN:
		bad += bad_str(name, "4294967296", true);
		if (k->kind == K_RUN) {
			bad += bad_str(name, "3", false);
			bad += bad_str(name, "4", false);
			bad += bad_str(name, "100", false);
		}
		break;
	case K_BOOL:
		bad += bad_str(name, "2", false);
		bad += bad_str(name, "x", false);
		break;
	case K_MAN:
		bad += bad_str(name, "2", false);
		bad += bad_str(name, "4294967296", true);
		break;
	case K_MPS:
		bad += bad_str(name, "1", false);
		bad += bad_str(name, "0", false);
		bad += bad_str(name, "-5", false);
		bad += bad_str(name, "2147483648", true);
		bad += bad_str(name, "-2147483649", true);
		break;
	case K_ULONG:
		bad += bad_str(name, "18446744073709551616", true);
		break;
	case K_TST:
		bad += bad_str(name, "0", false);
		bad += bad_str(name, "18446744073709551616", true);
		break;
	case K_ADV:
		bad += bad_str(name, "foo", false);
		bad += bad_str(name, "nonex", false);
		bad += bad_str(name, "scan-time-x", false);
		bad += bad_str(name, "scan", false);
		bad += bad_str(name, "0", false);
		bad += bad_str(name, "[none]", false);
		break;
	}
	ksft_test_result(!bad, "invalid writes refused, value unchanged: %s\n",
			 name);
}

/* ---- EBUSY while KSM pages exist ---- */

static bool self_merging_at_least(void *arg)
{
	return ksm_self_merging() >= *(long *)arg;
}

static void fill(char *p, size_t pages, unsigned char seed)
{
	for (size_t i = 0; i < pages * page_size; i++)
		p[i] = (char)(seed + i % 251);
}

static size_t check_fill(const char *p, size_t pages, unsigned char seed)
{
	size_t bad = 0;

	for (size_t i = 0; i < pages * page_size; i++) {
		char want = (char)(seed + (i % page_size) % 251);

		if (p[i] != want) {
			if (!bad)
				ksft_print_msg("byte %zu: expected %#x found %#x\n",
					       i, (unsigned char)want,
					       (unsigned char)p[i]);
			bad++;
		}
	}
	return bad;
}

static void test_ebusy(void)
{
	long want = BUSY_PAGES, man, mps, ret;
	char *p;
	int bad = 0;

	if (!ksm_settle(WAIT_S)) {
		ksft_test_result_fail("EBUSY while KSM pages exist (could not unmerge first)\n");
		ksft_test_result_skip("knobs writable after run=2\n");
		return;
	}
	p = mmap(NULL, BUSY_PAGES * page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		ksft_test_result_fail("EBUSY: mmap: %s\n", strerror(errno));
		ksft_test_result_skip("knobs writable after run=2\n");
		return;
	}
	/* every page identical */
	for (int i = 0; i < BUSY_PAGES; i++)
		fill(p + i * page_size, 1, 0x5a);
	if (madvise(p, BUSY_PAGES * page_size, MADV_MERGEABLE) || ksm_fast()) {
		ksft_test_result_fail("EBUSY: madvise/ksm_fast: %s\n",
				      strerror(errno));
		ksft_test_result_skip("knobs writable after run=2\n");
		munmap(p, BUSY_PAGES * page_size);
		return;
	}
	if (!ksm_wait_for(self_merging_at_least, &want, WAIT_S)) {
		ksft_print_msg("not merged in %d s: ksm_merging_pages %ld, expected %d\n",
			       WAIT_S, ksm_self_merging(), BUSY_PAGES);
		ksft_test_result_fail("EBUSY while KSM pages exist (no merge)\n");
		ksft_test_result_skip("knobs writable after run=2\n");
		munmap(p, BUSY_PAGES * page_size);
		return;
	}
	/* stop ksmd but keep the merged pages */
	ksm_write("run", 0);

	man = ksm_read("merge_across_nodes");
	mps = ksm_read("max_page_sharing");
	ret = ksm_raw_write("merge_across_nodes", man ? "0" : "1", 1);
	if (ret != -EBUSY || ksm_read("merge_across_nodes") != man) {
		ksft_print_msg("merge_across_nodes=%d while shared: %s, now %ld (want EBUSY,%ld)\n",
			       !man, ret_str(ret), ksm_read("merge_across_nodes"),
			       man);
		bad++;
	}
	ret = ksm_raw_write("max_page_sharing", mps == 300 ? "301" : "300", 3);
	if (ret != -EBUSY || ksm_read("max_page_sharing") != mps) {
		ksft_print_msg("max_page_sharing while shared: %s, now %ld (want EBUSY, %ld)\n",
			       ret_str(ret), ksm_read("max_page_sharing"), mps);
		bad++;
	}
	if (ksm_read("pages_shared") < 1) {
		ksft_print_msg("pages_shared %ld during the EBUSY checks\n",
			       ksm_read("pages_shared"));
		bad++;
	}
	if (check_fill(p, BUSY_PAGES, 0x5a)) {
		ksft_print_msg("merged data corrupted\n");
		bad++;
	}
	ksft_test_result(!bad, "merge_across_nodes, max_page_sharing EBUSY while shared\n");

	bad = 0;
	if (!ksm_settle(WAIT_S)) {
		ksft_print_msg("run=2 left pages_shared %ld pages_sharing %ld\n",
			       ksm_read("pages_shared"), ksm_read("pages_sharing"));
		bad++;
	}
	if (ksm_self_merging() != 0) {
		ksft_print_msg("ksm_merging_pages %ld after run=2\n",
			       ksm_self_merging());
		bad++;
	}
	ret = ksm_raw_write("merge_across_nodes", man ? "0" : "1", 1);
	if (ret != 1 || ksm_read("merge_across_nodes") != !man) {
		ksft_print_msg("merge_across_nodes after run=2: %s, now %ld\n",
			       ret_str(ret), ksm_read("merge_across_nodes"));
		bad++;
	}
	ret = ksm_raw_write("max_page_sharing", mps == 300 ? "301" : "300", 3);
	if (ret != 3 || ksm_read("max_page_sharing") != (mps == 300 ? 301 : 300)) {
		ksft_print_msg("max_page_sharing after run=2: %s, now %ld\n",
			       ret_str(ret), ksm_read("max_page_sharing"));
		bad++;
	}
	if (check_fill(p, BUSY_PAGES, 0x5a)) {
		ksft_print_msg("data corrupted by unmerge\n");
		bad++;
	}
	if (ksm_write("merge_across_nodes", man) ||
	    ksm_write("max_page_sharing", mps))
		bad++;
	munmap(p, BUSY_PAGES * page_size);
	ksft_test_result(!bad, "merge_across_nodes, max_page_sharing writable after run=2\n");
}

/* ---- advisor_mode vs pages_to_scan ---- */

static void test_advisor(void)
{
	char mode[32];
	long pts, ret;
	int bad = 0;

	if (ksm_write_str("advisor_mode", "scan-time")) {
		ksft_test_result_fail("advisor_mode=scan-time refused\n");
		return;
	}
	current_value("advisor_mode", mode, sizeof(mode));
	if (strcmp(mode, "scan-time")) {
		ksft_print_msg("advisor_mode reads '%s'\n", mode);
		bad++;
	}
	pts = ksm_read("pages_to_scan");
	ret = ksm_raw_write("pages_to_scan", pts == 1234 ? "1235" : "1234", 4);
	if (ret != -EINVAL || ksm_read("pages_to_scan") != pts) {
		ksft_print_msg("pages_to_scan under scan-time: %s, now %ld (want EINVAL, %ld)\n",
			       ret_str(ret), ksm_read("pages_to_scan"), pts);
		bad++;
	}
	if (ksm_write_str("advisor_mode", "none")) {
		ksft_print_msg("advisor_mode=none refused\n");
		bad++;
	}
	ret = ksm_raw_write("pages_to_scan", "1234", 4);
	if (ret != 4 || ksm_read("pages_to_scan") != 1234) {
		ksft_print_msg("pages_to_scan after advisor none: %s, now %ld (expected 1234)\n",
			       ret_str(ret), ksm_read("pages_to_scan"));
		bad++;
	}
	ksft_test_result(!bad, "pages_to_scan refused while advisor_mode=scan-time, not after\n");
}

/* ---- prctl ---- */

/* Runs in a child; returns the number of failed checks. */
static int prctl_child(bool args)
{
	int bad = 0, r;

	if (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0)) {
		ksft_print_msg("PR_SET_MEMORY_MERGE 0: %s\n", strerror(errno));
		return 1;
	}
	if (args) {
		static const unsigned long a[][4] = {
			{ 1, 1, 0, 0 }, { 1, 0, 1, 0 }, { 1, 0, 0, 1 },
			{ 0, 1, 0, 0 }, { 1, ~0UL, 0, 0 },
		};

		for (size_t i = 0; i < ARRAY_SIZE(a); i++) {
			errno = 0;
			r = prctl(PR_SET_MEMORY_MERGE, a[i][0], a[i][1],
				  a[i][2], a[i][3]);
			if (r != -1 || errno != EINVAL) {
				ksft_print_msg("PR_SET_MEMORY_MERGE %lu,%lu,%lu,%lu: %d %s\n",
					       a[i][0], a[i][1], a[i][2],
					       a[i][3], r, strerror(errno));
				bad++;
			}
			r = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
			if (r != 0) {
				ksft_print_msg("rejected PR_SET changed state: GET %d\n",
					       r);
				bad++;
			}
		}
		for (int i = 0; i < 4; i++) {
			unsigned long g[4] = { 0, 0, 0, 0 };

			g[i] = 1;
			errno = 0;
			r = prctl(PR_GET_MEMORY_MERGE, g[0], g[1], g[2], g[3]);
			if (r != -1 || errno != EINVAL) {
				ksft_print_msg("PR_GET_MEMORY_MERGE arg%d=1: %d %s\n",
					       i + 2, r, strerror(errno));
				bad++;
			}
		}
		return bad;
	}

	r = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	if (r != 0) {
		ksft_print_msg("GET after SET 0: %d\n", r);
		bad++;
	}
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
		ksft_print_msg("PR_SET_MEMORY_MERGE 1: %s\n", strerror(errno));
		return bad + 1;
	}
	r = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	if (r != 1) {
		ksft_print_msg("GET after SET 1: %d\n", r);
		bad++;
	}
	/* any nonzero arg2 enables; enabling twice is fine */
	if (prctl(PR_SET_MEMORY_MERGE, 7, 0, 0, 0) ||
	    prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != 1) {
		ksft_print_msg("SET 7 / GET: not enabled\n");
		bad++;
	}
	/* inherited by fork */
	fflush(stdout);
	pid_t pid = fork();

	if (pid == 0)
		_exit(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1 ? 0 : 1);
	if (pid > 0) {
		int st;

		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st)) {
			ksft_print_msg("child of a merge-any process does not report GET 1\n");
			bad++;
		}
	}
	if (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0)) {
		ksft_print_msg("PR_SET_MEMORY_MERGE 0: %s\n", strerror(errno));
		bad++;
	}
	r = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	if (r != 0) {
		ksft_print_msg("GET after SET 0: %d\n", r);
		bad++;
	}
	return bad;
}

static void run_in_child(bool args, const char *what)
{
	int st;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		ksft_test_result_fail("%s: fork: %s\n", what, strerror(errno));
		return;
	}
	if (pid == 0) {
		fflush(stdout);
		_exit(prctl_child(args) ? 1 : 0);
	}
	if (waitpid(pid, &st, 0) != pid) {
		ksft_test_result_fail("%s: waitpid: %s\n", what, strerror(errno));
		return;
	}
	ksft_test_result(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s\n", what);
}

/* ---- madvise ---- */

static void test_madvise_unaligned(void)
{
	char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r1, e1, r2, e2;

	if (p == MAP_FAILED) {
		ksft_test_result_fail("madvise unaligned: mmap\n");
		return;
	}
	errno = 0;
	r1 = madvise(p + 1, page_size, MADV_MERGEABLE);
	e1 = errno;
	errno = 0;
	r2 = madvise(p + page_size / 2, page_size, MADV_UNMERGEABLE);
	e2 = errno;
	munmap(p, 4 * page_size);
	if (r1 != -1 || e1 != EINVAL || r2 != -1 || e2 != EINVAL)
		ksft_print_msg("MADV_MERGEABLE: %d %s, MADV_UNMERGEABLE: %d %s (expected EINVAL)\n",
			       r1, strerror(e1), r2, strerror(e2));
	ksft_test_result(r1 == -1 && e1 == EINVAL && r2 == -1 && e2 == EINVAL,
			 "madvise MADV_(UN)MERGEABLE on unaligned start: EINVAL\n");
}

static void test_madvise_unmapped(void)
{
	char *p = mmap(NULL, 8 * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r1, e1, r2, e2;

	if (p == MAP_FAILED) {
		ksft_test_result_fail("madvise unmapped: mmap\n");
		return;
	}
	munmap(p, 8 * page_size);
	errno = 0;
	r1 = madvise(p, 8 * page_size, MADV_MERGEABLE);
	e1 = errno;
	/* a hole in the middle: ENOMEM, the mapped parts are still advised */
	p = mmap(NULL, 8 * page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		ksft_test_result_fail("madvise unmapped: mmap\n");
		return;
	}
	munmap(p + 3 * page_size, 2 * page_size);
	errno = 0;
	r2 = madvise(p, 8 * page_size, MADV_MERGEABLE);
	e2 = errno;
	munmap(p, 8 * page_size);
	if (r1 != -1 || e1 != ENOMEM || r2 != -1 || e2 != ENOMEM)
		ksft_print_msg("unmapped: %d %s, hole: %d %s (expected ENOMEM)\n",
			       r1, strerror(e1), r2, strerror(e2));
	ksft_test_result(r1 == -1 && e1 == ENOMEM && r2 == -1 && e2 == ENOMEM,
			 "madvise MADV_MERGEABLE on unmapped range / hole: ENOMEM\n");
}

/*
 * MAP_SHARED anonymous memory: MADV_MERGEABLE succeeds but KSM must never
 * merge it.  A private control region with the same content in the same
 * process proves ksmd ran.
 */
static void test_madvise_shared(void)
{
	size_t len = CTRL_PAGES * page_size;
	long want = CTRL_PAGES, got;
	char *priv, *shr;
	int bad = 0;

	if (!ksm_settle(WAIT_S)) {
		ksft_test_result_fail("MAP_SHARED: could not unmerge first\n");
		return;
	}
	priv = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shr = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (priv == MAP_FAILED || shr == MAP_FAILED) {
		ksft_test_result_fail("MAP_SHARED: mmap: %s\n", strerror(errno));
		return;
	}
	for (int i = 0; i < CTRL_PAGES; i++) {
		fill(priv + i * page_size, 1, 0x33);
		fill(shr + i * page_size, 1, 0x33);
	}
	if (madvise(shr, len, MADV_MERGEABLE)) {
		ksft_print_msg("MADV_MERGEABLE on MAP_SHARED: %s (expected success)\n",
			       strerror(errno));
		bad++;
	}
	if (madvise(priv, len, MADV_MERGEABLE) || ksm_fast()) {
		ksft_test_result_fail("MAP_SHARED: control madvise/ksm_fast: %s\n",
				      strerror(errno));
		goto out;
	}
	if (!ksm_wait_for(self_merging_at_least, &want, WAIT_S)) {
		ksft_print_msg("control region not merged in %d s: ksm_merging_pages %ld\n",
			       WAIT_S, ksm_self_merging());
		bad++;
	} else if (!ksm_wait_scans(2, WAIT_S)) {
		ksft_print_msg("ksmd did not complete 2 more full scans in %d s\n",
			       WAIT_S);
		bad++;
	}
	got = ksm_self_merging();
	if (got != CTRL_PAGES) {
		ksft_print_msg("ksm_merging_pages %ld, expected %d (private only)\n",
			       got, CTRL_PAGES);
		bad++;
	}
	if (check_fill(shr, CTRL_PAGES, 0x33) || check_fill(priv, CTRL_PAGES, 0x33)) {
		ksft_print_msg("data corrupted\n");
		bad++;
	}
	/* the shared mapping must still be shared memory: write, read back */
	shr[5] = 0x11;
	if (shr[5] != 0x11)
		bad++;
	ksft_test_result(!bad, "MADV_MERGEABLE on MAP_SHARED succeeds, never merges\n");
out:
	ksm_settle(WAIT_S);
	munmap(priv, len);
	munmap(shr, len);
}

int main(void)
{
	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	if (geteuid())
		ksft_exit_skip("needs root\n");
	if (access(KSM_SYSFS "run", R_OK))
		ksft_exit_skip("no KSM (%s)\n", KSM_SYSFS);

	ksft_set_plan(2 + 2 * ARRAY_SIZE(valid_tab) + 2 + 1 + 2 + 3);
	memset(garbage, 'z', sizeof(garbage));
	ksm_save_all(&saved);

	test_files_present();
	test_ro_refuse();

	ksm_write("run", 0);
	for (size_t i = 0; i < ARRAY_SIZE(valid_tab); i++)
		test_valid(&valid_tab[i]);
	for (size_t i = 0; i < ARRAY_SIZE(invalid_tab); i++)
		test_invalid(&invalid_tab[i]);

	test_ebusy();
	test_advisor();

	run_in_child(true, "prctl PR_SET/GET_MEMORY_MERGE bad args: EINVAL, no change");
	run_in_child(false, "prctl PR_GET_MEMORY_MERGE reflects PR_SET, inherited by fork");

	test_madvise_unaligned();
	test_madvise_unmapped();
	test_madvise_shared();

	ksm_restore_all(&saved);
	ksft_finished();
}
