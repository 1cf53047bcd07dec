// SPDX-License-Identifier: GPL-2.0
/*
 * ksmctl test.  Two worker processes hold a known workload (NR_DUP pages
 * identical between them, NR_ZERO zero-filled pages, NR_UNIQ unique pages,
 * all MADV_MERGEABLE, use_zero_pages=1).  Once it is merged, every ksmctl
 * subcommand runs against it: the numbers of status, top and watch must
 * equal sysfs and /proc/PID/ksm_stat, every --json document must parse,
 * run must start its command with PR_SET_MEMORY_MERGE, tune must set,
 * validate and refuse as documented, and bad arguments must exit 2 and
 * change no knob.  Subcommands for interfaces this kernel may lack (merge
 * domains, estimate mode, process_madvise(MADV_MERGEABLE)) must either work
 * or say that the kernel has no support.
 *
 * ksmctl is looked up in $KSMCTL, /usr/bin, beside this program and $PATH.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
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

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

#define NR_DUP		256
#define NR_ZERO		64
#define NR_UNIQ		32
#define NR_WORKERS	2
#define MERGE_WAIT_S	60
#define CTL_TIMEOUT_S	30

static long page_size;
static char ksmctl[PATH_MAX];
static pid_t workers[NR_WORKERS];

/* ---- running ksmctl ---- */

struct result {
	int rc;			/* exit status; -1 killed or timed out */
	char out[1 << 16];
	char err[1 << 13];
};

static struct result R;

static void slurp(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

/*
 * Run ksmctl with @argv (argv[0] included) into R, with @env put into its
 * environment and as user @uid when non-zero.  Returns R.rc.
 */
static int ctl_as(const char *env, uid_t uid, const char *const *argv)
{
	char of[] = "/tmp/ksm_ctl.outXXXXXX", ef[] = "/tmp/ksm_ctl.errXXXXXX";
	int ofd = mkstemp(of), efd = mkstemp(ef), status;
	double deadline = ksm_now() + CTL_TIMEOUT_S;
	pid_t pid;

	R.rc = -1;
	R.out[0] = '\0';
	R.err[0] = '\0';
	if (ofd < 0 || efd < 0)
		return -1;
	unlink(of);
	unlink(ef);
	fflush(stdout);
	pid = fork();
	if (!pid) {
		dup2(ofd, 1);
		dup2(efd, 2);
		if (env)
			putenv((char *)env);
		if (uid && (setgid(uid) || setuid(uid)))
			_exit(125);
		execv(ksmctl, (char *const *)argv);
		_exit(126);
	}
	while (pid > 0) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid) {
			R.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			break;
		}
		if (ksm_now() > deadline) {
			ksft_print_msg("ksmctl %s: still running after %d s\n",
				       argv[1], CTL_TIMEOUT_S);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			break;
		}
		usleep(10000);
	}
	slurp(ofd, R.out, sizeof(R.out));
	slurp(efd, R.err, sizeof(R.err));
	return R.rc;
}

#define CTL(...)	ctl_as(NULL, 0, (const char *const[]){ "ksmctl", __VA_ARGS__, NULL })
#define CTL_ENV(env, ...) \
	ctl_as(env, 0, (const char *const[]){ "ksmctl", __VA_ARGS__, NULL })
#define CTL_UID(uid, ...) \
	ctl_as(NULL, uid, (const char *const[]){ "ksmctl", __VA_ARGS__, NULL })

/* Echo what ksmctl printed, as a sample in the log. */
static void echo_output(const char *what)
{
	char *line, *save = NULL, copy[4096];
	size_t n = strlen(R.out);

	ksft_print_msg("%s:\n", what);
	if (n >= sizeof(copy))
		n = sizeof(copy) - 1;
	memcpy(copy, R.out, n);
	copy[n] = '\0';
	for (line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		ksft_print_msg("  %s\n", line);
}

static void show_result(const char *what)
{
	ksft_print_msg("%s: exit %d\n", what, R.rc);
	if (R.out[0])
		ksft_print_msg("stdout: %.600s\n", R.out);
	if (R.err[0])
		ksft_print_msg("stderr: %.600s\n", R.err);
}

/* ---- a small JSON checker ---- */

static const char *jv_value(const char *p, int depth);

static const char *jv_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *jv_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;	/* also the end of the text */
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *jv_number(const char *p)
{
	const char *s;

	if (*p == '-')
		p++;
	if (*p == '0') {
		p++;
	} else {
		s = p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == s)
			return NULL;
	}
	if (*p == '.') {
		s = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == s)
			return NULL;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		s = p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == s)
			return NULL;
	}
	return p;
}

static const char *jv_container(const char *p, int depth, char close, bool obj)
{
	p = jv_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (obj) {
			p = jv_string(jv_ws(p));
			if (!p)
				return NULL;
			p = jv_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = jv_value(p, depth + 1);
		if (!p)
			return NULL;
		p = jv_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *jv_value(const char *p, int depth)
{
	if (depth > 32)
		return NULL;
	p = jv_ws(p);
	switch (*p) {
	case '{':
		return jv_container(p, depth, '}', true);
	case '[':
		return jv_container(p, depth, ']', false);
	case '"':
		return jv_string(p);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		return jv_number(p);
	}
}

/* One JSON value and nothing but blanks after it. */
static bool json_valid(const char *doc)
{
	const char *p = jv_value(doc, 0);

	return p && !*jv_ws(p);
}

/* The number after "KEY": in @doc; false when absent or not a number. */
static bool json_num(const char *doc, const char *key, double *v)
{
	char pat[96], *end;
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(doc, pat);
	if (!p)
		return false;
	p += strlen(pat);
	*v = strtod(p, &end);
	return end != p;
}

/* The string after "KEY": in @doc into @buf. */
static bool json_str(const char *doc, const char *key, char *buf, size_t len)
{
	char pat[96];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	p = strstr(doc, pat);
	if (!p)
		return false;
	p += strlen(pat);
	e = strchr(p, '"');
	if (!e)
		return false;
	snprintf(buf, len, "%.*s", (int)(e - p), p);
	return true;
}

/* @doc's key @key equals sysfs file @key. */
static bool json_matches_sysfs(const char *doc, const char *key)
{
	double v;
	long s = ksm_read(key);

	if (!json_num(doc, key, &v)) {
		ksft_print_msg("JSON has no number \"%s\"\n", key);
		return false;
	}
	if ((long)v != s) {
		ksft_print_msg("JSON %s = %.0f, sysfs %ld\n", key, v, s);
		return false;
	}
	return true;
}

/* ---- knobs ---- */

static const char * const knob_names[] = {
	"run", "pages_to_scan", "sleep_millisecs", "merge_across_nodes",
	"use_zero_pages", "max_page_sharing",
	"stable_node_chains_prune_millisecs", "smart_scan", "advisor_mode",
	"advisor_max_cpu", "advisor_min_pages_to_scan",
	"advisor_max_pages_to_scan", "advisor_target_scan_time",
};

static void knob_snapshot(char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(knob_names); i++) {
		char v[64];

		if (ksm_read_str(knob_names[i], v, sizeof(v)))
			snprintf(v, sizeof(v), "-");
		off += snprintf(buf + off, len - off, "%s=%s ", knob_names[i], v);
		if (off >= len)
			break;
	}
}

/* "[none] scan-time" -> "none" */
static void knob_str(const char *name, char *buf, size_t len)
{
	char raw[128], *l, *r;

	if (ksm_read_str(name, raw, sizeof(raw))) {
		snprintf(buf, len, "-");
		return;
	}
	l = strchr(raw, '[');
	r = l ? strchr(l, ']') : NULL;
	if (l && r) {
		*r = '\0';
		snprintf(buf, len, "%.63s", l + 1);
	} else {
		snprintf(buf, len, "%.63s", raw);
	}
}

/* ---- the workload ---- */

static void worker(int idx, int ready)
{
	size_t len = (size_t)(NR_DUP + NR_ZERO + NR_UNIQ) * page_size;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int i;

	if (p == MAP_FAILED)
		_exit(1);
	madvise(p, len, MADV_NOHUGEPAGE);
	for (i = 0; i < NR_DUP; i++)
		ksm_fill_page(p + (size_t)i * page_size, 7000 + i);
	memset(p + (size_t)NR_DUP * page_size, 0, (size_t)NR_ZERO * page_size);
	for (i = 0; i < NR_UNIQ; i++)
		ksm_fill_page(p + (size_t)(NR_DUP + NR_ZERO + i) * page_size,
			      100000 + idx * 1000 + i);
	if (madvise(p, len, MADV_MERGEABLE))
		_exit(2);
	if (write(ready, "x", 1) != 1)
		_exit(3);
	for (;;)
		pause();
}

static long worker_stat(int i, const char *key)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", workers[i]);
	return ksm_file_field(path, key, ' ');
}

static bool workload_merged(void *unused)
{
	(void)unused;
	if (ksm_read("pages_shared") != NR_DUP ||
	    ksm_read("pages_sharing") != NR_DUP ||
	    ksm_read("ksm_zero_pages") != NR_WORKERS * NR_ZERO)
		return false;
	for (int i = 0; i < NR_WORKERS; i++)
		if (worker_stat(i, "ksm_merging_pages") != NR_DUP ||
		    worker_stat(i, "ksm_zero_pages") != NR_ZERO)
			return false;
	return true;
}

static void stop_workers(void)
{
	for (int i = 0; i < NR_WORKERS; i++) {
		if (workers[i] > 0) {
			kill(workers[i], SIGKILL);
			waitpid(workers[i], NULL, 0);
			workers[i] = 0;
		}
	}
}

static bool start_workload(void)
{
	int fds[2];
	char c;

	if (pipe(fds))
		return false;
	for (int i = 0; i < NR_WORKERS; i++) {
		workers[i] = fork();
		if (!workers[i]) {
			close(fds[0]);
			worker(i, fds[1]);
		}
		if (workers[i] < 0)
			return false;
	}
	close(fds[1]);
	for (int i = 0; i < NR_WORKERS; i++)
		if (read(fds[0], &c, 1) != 1)
			return false;
	close(fds[0]);
	if (!ksm_wait_for(workload_merged, NULL, MERGE_WAIT_S)) {
		ksft_print_msg("%s: shared %ld sharing %ld zero %ld (want %d %d %d)\n",
			       "workload not merged",
			       ksm_read("pages_shared"), ksm_read("pages_sharing"),
			       ksm_read("ksm_zero_pages"), NR_DUP, NR_DUP,
			       NR_WORKERS * NR_ZERO);
		return false;
	}
	/* Let the unique pages settle in the unstable tree too. */
	ksm_wait_scans(2, 20);
	return true;
}

/* ---- the tests ---- */

static const char * const cmds[] = {
	"status", "top", "watch", "tune", "run", "enable", "disable",
	"estimate",
};

static int test_help(void)
{
	int ret = KSFT_PASS;
	char want[64];

	if (CTL("--help") || !strstr(R.out, "usage: ksmctl")) {
		show_result("ksmctl --help");
		ret = KSFT_FAIL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		snprintf(want, sizeof(want), "usage: ksmctl %s", cmds[i]);
		if (CTL(cmds[i], "--help") || !strstr(R.out, want)) {
			show_result(cmds[i]);
			ret = KSFT_FAIL;
		}
	}
	if (CTL("help", "tune") || !strstr(R.out, "usage: ksmctl tune")) {
		show_result("help tune");
		ret = KSFT_FAIL;
	}
	return ret;
}

static int test_bad_args(void)
{
	static const char * const bad[][5] = {
		{ NULL }, { "bogus" }, { "help", "bogus" },
		{ "status", "-d", "abc" }, { "status", "-d", "-1" },
		{ "status", "--bogus" }, { "status", "extra" },
		{ "top", "-n", "0" }, { "top", "-d", "0" },
		{ "top", "-n", "x", "--once" }, { "watch", "-d", "abc" },
		{ "watch", "-c", "-1" }, { "watch", "-c" }, { "run" },
		{ "run", "--domain", "x", "true" },
		{ "run", "--domain", "1", "--new-domain", "true" },
		{ "enable" }, { "enable", "-p", "abc" }, { "disable", "-p", "0" },
		{ "enable", "-p", "1", "extra" }, { "estimate" },
		{ "estimate", "-p", "1", "true" },
		{ "tune", "pages_to_scan=abc" }, { "tune", "pages_to_scan=-1" },
		{ "tune", "pages_to_scan=99999999999" },
		{ "tune", "pages_to_scan=" }, { "tune", "nosuch=1" },
		{ "tune", "nosuch" }, { "tune", "=5" },
		{ "tune", "max_page_sharing=1" }, { "tune", "run=3" },
		{ "tune", "advisor_mode=fast" }, { "tune", "use_zero_pages=2" },
		{ "tune", "advisor_max_cpu=101" },
		{ "tune", "sleep_millisecs=55", "pages_to_scan=x" },
		{ "tune", "--profile", "nosuch" },
		{ "tune", "--profile", "laptop", "run=9" },
		{ "tune", "--json", "pages_to_scan=5" },
		{ "tune", "pages_to_scan", "sleep_millisecs=5" },
	};
	char before[1024], after[1024];
	int ret = KSFT_PASS;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *argv[7] = { "ksmctl" };
		char what[256] = "ksmctl";

		for (int j = 0; j < 5 && bad[i][j]; j++) {
			argv[j + 1] = bad[i][j];
			strncat(what, " ", sizeof(what) - strlen(what) - 1);
			strncat(what, bad[i][j], sizeof(what) - strlen(what) - 1);
		}
		knob_snapshot(before, sizeof(before));
		ctl_as(NULL, 0, argv);
		knob_snapshot(after, sizeof(after));
		if (R.rc != 2 || !strstr(R.err, "usage: ksmctl") ||
		    !strstr(R.err, "ksmctl: ") || strcmp(before, after)) {
			show_result(what);
			if (strcmp(before, after))
				ksft_print_msg("knobs changed: %s -> %s\n",
					       before, after);
			ret = KSFT_FAIL;
		}
	}
	return ret;
}

static int test_no_ksm(void)
{
	static const char * const cmd[] = { "status", "top", "watch", "tune" };
	int ret = KSFT_PASS;

	for (size_t i = 0; i < ARRAY_SIZE(cmd); i++) {
		CTL_ENV("KSMCTL_SYSFS=/nonexistent/ksm", cmd[i], "-c", "1");
		if (!strcmp(cmd[i], "status") || !strcmp(cmd[i], "tune"))
			CTL_ENV("KSMCTL_SYSFS=/nonexistent/ksm", cmd[i]);
		if (R.rc != 1 || !strstr(R.err, "this kernel has no KSM") ||
		    strchr(R.err, '\n') != R.err + strlen(R.err) - 1) {
			show_result(cmd[i]);
			ret = KSFT_FAIL;
		}
	}
	return ret;
}

/* status --json while ksmd scans: counters, a scan rate, ksmd CPU. */
static int test_status_running(void)
{
	long scans0 = ksm_read("full_scans"), scans1;
	double v;
	int ret = KSFT_PASS;
	char line[256];

	if (CTL("status", "--json", "-d", "1") || !json_valid(R.out)) {
		show_result("status --json -d 1 (running)");
		return KSFT_FAIL;
	}
	scans1 = ksm_read("full_scans");
	if (!json_matches_sysfs(R.out, "pages_shared") ||
	    !json_matches_sysfs(R.out, "pages_sharing") ||
	    !json_matches_sysfs(R.out, "ksm_zero_pages") ||
	    !json_matches_sysfs(R.out, "run") ||
	    !json_matches_sysfs(R.out, "pages_to_scan"))
		ret = KSFT_FAIL;
	if (!json_num(R.out, "saved_bytes", &v) ||
	    (long)v != (ksm_read("pages_sharing") + ksm_read("ksm_zero_pages")) * page_size) {
		ksft_print_msg("saved_bytes wrong\n");
		ret = KSFT_FAIL;
	}
	if (!json_num(R.out, "full_scans", &v) || v < scans0 || v > scans1) {
		ksft_print_msg("full_scans not within %ld..%ld\n", scans0, scans1);
		ret = KSFT_FAIL;
	}
	if (!json_num(R.out, "scan_rate", &v) || v <= 0) {
		ksft_print_msg("no scan rate while ksmd scans\n");
		ret = KSFT_FAIL;
	}
	if (!json_num(R.out, "ksmd_cpu", &v) || v < 0) {
		ksft_print_msg("no ksmd CPU share\n");
		ret = KSFT_FAIL;
	}
	if (!json_num(R.out, "full_scan_seconds", &v) || v <= 0) {
		ksft_print_msg("no full scan duration while ksmd scans\n");
		ret = KSFT_FAIL;
	}
	if (ret != KSFT_PASS)
		show_result("status --json -d 1 (running)");

	if (CTL("status", "-d", "0.5")) {
		show_result("status -d 0.5");
		return KSFT_FAIL;
	}
	echo_output("ksmctl status -d 0.5");
	snprintf(line, sizeof(line), "pages:      shared %ld, sharing %ld, zero %ld,",
		 ksm_read("pages_shared"), ksm_read("pages_sharing"),
		 ksm_read("ksm_zero_pages"));
	if (!strstr(R.out, line) || !strstr(R.out, "state:      running (run=1)") ||
	    !strstr(R.out, "scan rate:") || !strstr(R.out, "ksmd CPU:")) {
		ksft_print_msg("want '%s'\n", line);
		show_result("status -d 0.5");
		ret = KSFT_FAIL;
	}
	return ret;
}

/* status --json with ksmd stopped: every counter exactly as in sysfs. */
static int test_status_stopped(void)
{
	static const char * const keys[] = {
		"run", "pages_to_scan", "sleep_millisecs", "pages_scanned",
		"pages_shared", "pages_sharing", "pages_unshared",
		"pages_volatile", "ksm_zero_pages", "general_profit",
		"full_scans", "use_zero_pages", "max_page_sharing",
	};
	int ret = KSFT_PASS;
	double v;

	if (CTL("status", "--json", "-d", "0.3") || !json_valid(R.out)) {
		show_result("status --json (stopped)");
		return KSFT_FAIL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (!json_matches_sysfs(R.out, keys[i]))
			ret = KSFT_FAIL;
	if (!json_num(R.out, "scan_rate", &v) || v != 0) {
		ksft_print_msg("scan rate %f while stopped\n", v);
		ret = KSFT_FAIL;
	}
	if (!strstr(R.out, "\"state\": \"stopped\"") ||
	    !strstr(R.out, "(run=0)")) {
		ksft_print_msg("no stopped state or run=0 warning\n");
		ret = KSFT_FAIL;
	}
	if (ret != KSFT_PASS)
		show_result("status --json (stopped)");
	/* -d 0: no sample, so no scan rate and no CPU share */
	if (CTL("status", "-d", "0", "--json") || !json_valid(R.out) ||
	    !strstr(R.out, "\"scan_rate\": null") ||
	    !strstr(R.out, "\"ksmd_cpu\": null")) {
		show_result("status -d 0 --json");
		ret = KSFT_FAIL;
	}
	return ret;
}

/* The object of process @pid in a top --json document. */
static bool top_entry(const char *doc, pid_t pid, char *buf, size_t len)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "{\"pid\": %d,", pid);
	p = strstr(doc, pat);
	if (!p)
		return false;
	e = strchr(p, '}');
	if (!e)
		return false;
	snprintf(buf, len, "%.*s", (int)(e - p + 1), p);
	return true;
}

static int test_top(void)
{
	static const char * const keys[][2] = {
		{ "merging_pages", "ksm_merging_pages" },
		{ "zero_pages", "ksm_zero_pages" },
		{ "rmap_items", "ksm_rmap_items" },
		{ "profit", "ksm_process_profit" },
	};
	char ent[512], how[32], line[128];
	int ret = KSFT_PASS, n = 0;
	const char *p;
	double v;

	if (CTL("top", "--once", "--json") || !json_valid(R.out)) {
		show_result("top --once --json");
		return KSFT_FAIL;
	}
	for (int i = 0; i < NR_WORKERS; i++) {
		if (!top_entry(R.out, workers[i], ent, sizeof(ent))) {
			ksft_print_msg("worker %d missing from top\n", workers[i]);
			ret = KSFT_FAIL;
			continue;
		}
		for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
			long want = worker_stat(i, keys[k][1]);

			if (!json_num(ent, keys[k][0], &v) || (long)v != want) {
				ksft_print_msg("top %s of %d: %.0f, ksm_stat %ld\n",
					       keys[k][0], workers[i], v, want);
				ret = KSFT_FAIL;
			}
		}
		if (!json_str(ent, "mergeable", how, sizeof(how)) ||
		    strcmp(how, "madvise")) {
			ksft_print_msg("top mergeable of %d: '%s', want madvise\n",
				       workers[i], how);
			ret = KSFT_FAIL;
		}
	}
	if (!json_matches_sysfs(R.out, "pages_shared") ||
	    !json_matches_sysfs(R.out, "ksm_zero_pages"))
		ret = KSFT_FAIL;
	if (ret != KSFT_PASS)
		show_result("top --once --json");

	if (CTL("top", "--once", "--json", "-n", "1") || !json_valid(R.out)) {
		show_result("top --once --json -n 1");
		ret = KSFT_FAIL;
	}
	for (p = R.out; (p = strstr(p, "\"pid\": ")); p++)
		n++;
	if (n != 1) {
		ksft_print_msg("top -n 1 shows %d processes\n", n);
		ret = KSFT_FAIL;
	}

	if (CTL("top", "--once")) {
		show_result("top --once");
		return KSFT_FAIL;
	}
	echo_output("ksmctl top --once");
	for (int i = 0; i < NR_WORKERS; i++) {
		snprintf(line, sizeof(line), "%7d %-16s %9d %9d", workers[i],
			 "ksm_ctl", NR_DUP, NR_ZERO);
		if (!strstr(R.out, line)) {
			ksft_print_msg("no line '%s'\n", line);
			show_result("top --once");
			ret = KSFT_FAIL;
		}
	}
	/* Refreshing: two frames, then exit. */
	if (CTL("top", "-c", "2", "-d", "0.3")) {
		show_result("top -c 2 -d 0.3");
		return KSFT_FAIL;
	}
	for (n = 0, p = R.out; (p = strstr(p, "ksmctl top ")); p++)
		n++;
	if (n != 2) {
		ksft_print_msg("top -c 2 printed %d frames\n", n);
		ret = KSFT_FAIL;
	}
	return ret;
}

static int test_watch(void)
{
	int ret = KSFT_PASS, lines = 0;
	char *line, *save = NULL;

	if (CTL("watch", "-c", "2", "-d", "0.3", "--json")) {
		show_result("watch --json");
		return KSFT_FAIL;
	}
	for (line = strtok_r(R.out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		lines++;
		if (!json_valid(line) ||
		    !json_matches_sysfs(line, "pages_shared") ||
		    !json_matches_sysfs(line, "pages_sharing") ||
		    !json_matches_sysfs(line, "ksm_zero_pages") ||
		    !json_matches_sysfs(line, "general_profit")) {
			ksft_print_msg("bad watch line: %s\n", line);
			ret = KSFT_FAIL;
		}
	}
	if (lines != 2) {
		ksft_print_msg("watch -c 2 printed %d lines\n", lines);
		ret = KSFT_FAIL;
	}
	if (CTL("watch", "-c", "2", "-d", "0.5") ||
	    !strstr(R.out, "saved_MiB") || !strchr(strchr(R.out, '\n') + 1, '\n')) {
		show_result("watch -c 2");
		ret = KSFT_FAIL;
	}
	echo_output("ksmctl watch -c 2 -d 0.5");
	return ret;
}

/* ksmctl run --child: are we, and a child of ours, merging everything? */
static int child_check(void)
{
	pid_t pid;
	int st, fd;
	char buf[512], *p;

	if (prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != 1)
		return 3;
	fd = open("/proc/self/ksm_stat", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		p = strstr(buf, "ksm_merge_any");
		if (p && !strstr(p, "yes") && !strstr(p, " 1"))
			return 4;
	}
	pid = fork();
	if (!pid)
		_exit(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1 ? 0 : 5);
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 6;
	return WEXITSTATUS(st);
}

static bool has_rmap_items(void *arg)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", *(pid_t *)arg);
	return ksm_file_field(path, "ksm_rmap_items", ' ') > 0;
}

/* A process started by ksmctl run shows in top as merging by prctl. */
static int run_in_top(const char *self)
{
	char ent[512], how[32] = "";
	int ret = KSFT_PASS;
	pid_t pid = fork();

	if (!pid) {
		execl(ksmctl, "ksmctl", "run", self, "--hold", (char *)NULL);
		_exit(126);
	}
	if (pid < 0)
		return KSFT_FAIL;
	if (!ksm_wait_for(has_rmap_items, &pid, 20)) {
		ksft_print_msg("ksmctl run: process %d never scanned\n", pid);
		ret = KSFT_FAIL;
	} else if (CTL("top", "--once", "--json") || !json_valid(R.out) ||
		   !top_entry(R.out, pid, ent, sizeof(ent)) ||
		   !json_str(ent, "mergeable", how, sizeof(how)) ||
		   strcmp(how, "prctl")) {
		ksft_print_msg("top: process %d mergeable '%s', want prctl\n",
			       pid, how);
		show_result("top --once --json");
		ret = KSFT_FAIL;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return ret;
}

static int test_run(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int ret = KSFT_PASS;

	if (n <= 0)
		return KSFT_FAIL;
	self[n] = '\0';
	if (CTL("run", self, "--child")) {
		show_result("run ksm_ctl --child (3: not merging, 4: ksm_merge_any, 5: child)");
		ret = KSFT_FAIL;
	}
	if (CTL("run", "--", self, "--child")) {
		show_result("run -- ksm_ctl --child");
		ret = KSFT_FAIL;
	}
	if (run_in_top(self) != KSFT_PASS)
		ret = KSFT_FAIL;
	if (CTL("run", "sh", "-c", "exit 7") != 7) {
		show_result("run sh -c 'exit 7'");
		ret = KSFT_FAIL;
	}
	if (CTL("run", "/nonexistent/cmd") != 127 ||
	    !strstr(R.err, "ksmctl: cannot run")) {
		show_result("run /nonexistent/cmd");
		ret = KSFT_FAIL;
	}
	return ret;
}

/* Works, or says in one line that the kernel lacks @what. */
static bool works_or_unsupported(const char *what, bool supported)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "ksmctl: this kernel has no %s support\n", what);
	if (R.rc == 0 && supported)
		return true;
	if (R.rc == 1 && !strcmp(R.err, msg))
		return true;
	ksft_print_msg("want exit 0 or exit 1 with '%.*s'\n",
		       (int)strlen(msg) - 1, msg);
	return false;
}

static int test_optional(void)
{
	char pid[16], self[PATH_MAX];
	bool domains = !access(KSM_SYSFS "merge_domains", F_OK);
	bool estimate = !access(KSM_SYSFS "estimate", F_OK);
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int ret = KSFT_PASS;
	bool bad;

	self[n > 0 ? n : 0] = '\0';
	snprintf(pid, sizeof(pid), "%d", workers[0]);
	CTL("run", "--new-domain", self, "--child");
	if (!works_or_unsupported("KSM merge domains", domains)) {
		show_result("run --new-domain");
		ret = KSFT_FAIL;
	}
	CTL("run", "--domain", "3", self, "--child");
	if (!works_or_unsupported("KSM merge domains", domains)) {
		show_result("run --domain 3");
		ret = KSFT_FAIL;
	}
	/* The workers are merged: an estimate needs a start without KSM pages. */
	CTL("estimate", "-d", "0.2", "-p", pid);
	if (estimate)
		bad = R.rc != 1 || !strstr(R.err, "KSM pages exist") ||
		      strchr(R.err, '\n') != R.err + strlen(R.err) - 1 ||
		      ksm_read("estimate") != 0;
	else
		bad = !works_or_unsupported("KSM estimate mode", false);
	if (bad) {
		show_result("estimate -p, KSM pages merged");
		ret = KSFT_FAIL;
	}
	CTL("enable", "-p", pid);
	if (!works_or_unsupported("process_madvise(MADV_MERGEABLE)", true)) {
		show_result("enable -p");
		ret = KSFT_FAIL;
	}
	if (CTL("enable", "-p", "999999999") != 1 ||
	    !strstr(R.err, "no process 999999999")) {
		show_result("enable -p 999999999");
		ret = KSFT_FAIL;
	}
	return ret;
}

static bool worker0_unmerged(void *arg)
{
	(void)arg;
	return worker_stat(0, "ksm_merging_pages") == 0;
}

/* Last: a kernel that supports it unmerges worker 0. */
static int test_disable(void)
{
	char pid[16];

	snprintf(pid, sizeof(pid), "%d", workers[0]);
	CTL("disable", "-p", pid);
	if (!works_or_unsupported("process_madvise(MADV_UNMERGEABLE)", true)) {
		show_result("disable -p");
		return KSFT_FAIL;
	}
	/*
	 * The pages are unmerged when disable returns; the count follows
	 * once ksmd drops the items (as upstream's): a bounded wait.
	 */
	if (R.rc == 0 && !ksm_wait_for(worker0_unmerged, NULL, 30)) {
		ksft_print_msg("disable left %ld pages merged\n",
			       worker_stat(0, "ksm_merging_pages"));
		return KSFT_FAIL;
	}
	return KSFT_PASS;
}

static int test_tune_show(void)
{
	int ret = KSFT_PASS;
	char want[96], mode[32], js[32];

	if (CTL("tune", "--json") || !json_valid(R.out)) {
		show_result("tune --json");
		return KSFT_FAIL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(knob_names); i++) {
		if (!strcmp(knob_names[i], "advisor_mode"))
			continue;
		if (ksm_read(knob_names[i]) < 0 && errno == ENOENT)
			continue;
		if (!json_matches_sysfs(R.out, knob_names[i]))
			ret = KSFT_FAIL;
	}
	knob_str("advisor_mode", mode, sizeof(mode));
	if (!json_str(R.out, "advisor_mode", js, sizeof(js)) || strcmp(js, mode)) {
		ksft_print_msg("advisor_mode '%s', want '%s'\n", js, mode);
		ret = KSFT_FAIL;
	}
	if (ret != KSFT_PASS)
		show_result("tune --json");
	snprintf(want, sizeof(want), "pages_to_scan=%ld\nsleep_millisecs=%ld\n",
		 ksm_read("pages_to_scan"), ksm_read("sleep_millisecs"));
	if (CTL("tune", "pages_to_scan", "sleep_millisecs") || strcmp(R.out, want)) {
		show_result("tune pages_to_scan sleep_millisecs");
		ret = KSFT_FAIL;
	}
	if (CTL("tune") || !strstr(R.out, want)) {
		show_result("tune");
		ret = KSFT_FAIL;
	}
	return ret;
}

/* ksmctl tune @arg must fail with exit 1, @words on stderr, nothing changed */
static bool refused(const char *arg, uid_t uid, const char *words)
{
	char before[1024], after[1024];

	knob_snapshot(before, sizeof(before));
	CTL_UID(uid, "tune", arg);
	knob_snapshot(after, sizeof(after));
	if (R.rc == 1 && strstr(R.err, words) && !strcmp(before, after) &&
	    !strncmp(R.err, "ksmctl: ", 8) &&
	    strchr(R.err, '\n') == R.err + strlen(R.err) - 1)
		return true;
	ksft_print_msg("tune %s: want exit 1 with '%s', knobs unchanged\n",
		       arg, words);
	show_result("tune");
	if (strcmp(before, after))
		ksft_print_msg("knobs changed: %s -> %s\n", before, after);
	return false;
}

static int test_tune_set(void)
{
	long pts = ksm_read("pages_to_scan"), sl = ksm_read("sleep_millisecs");
	int ret = KSFT_PASS;
	char want[96];

	if (CTL("tune", "pages_to_scan=1234", "sleep_millisecs=7") ||
	    ksm_read("pages_to_scan") != 1234 || ksm_read("sleep_millisecs") != 7) {
		show_result("tune pages_to_scan=1234 sleep_millisecs=7");
		ret = KSFT_FAIL;
	}
	snprintf(want, sizeof(want), "pages_to_scan: %ld -> 1234\nsleep_millisecs: %ld -> 7\n",
		 pts, sl);
	if (!strstr(R.out, want)) {
		ksft_print_msg("want '%s'\n", want);
		show_result("tune pages_to_scan=1234 sleep_millisecs=7");
		ret = KSFT_FAIL;
	}
	/*
	 * Refusals with ksmd stopped: the scan-time advisor would otherwise
	 * change pages_to_scan between the snapshots.
	 */
	if (ksm_write("run", 0))
		ret = KSFT_FAIL;
	/* Knobs the kernel refuses to change while KSM pages exist. */
	if (ksm_read("merge_across_nodes") >= 0 &&
	    !refused(ksm_read("merge_across_nodes") ? "merge_across_nodes=0" :
		     "merge_across_nodes=1", 0, "Device or resource busy"))
		ret = KSFT_FAIL;
	if (!refused("max_page_sharing=17", 0, "Device or resource busy"))
		ret = KSFT_FAIL;
	/* pages_to_scan belongs to the advisor while it runs. */
	if (CTL("tune", "advisor_mode=scan-time")) {
		show_result("tune advisor_mode=scan-time");
		ret = KSFT_FAIL;
	} else if (!refused("pages_to_scan=777", 0, "Invalid argument")) {
		ret = KSFT_FAIL;
	}
	if (CTL("tune", "advisor_mode=none")) {
		show_result("tune advisor_mode=none");
		ret = KSFT_FAIL;
	}
	/* Nobody but root sets knobs. */
	if (!refused("pages_to_scan=101", 65534, "needs root"))
		ret = KSFT_FAIL;
	if (!refused("run=1", 65534, "needs root"))
		ret = KSFT_FAIL;
	if (ksm_fast())
		ret = KSFT_FAIL;
	return ret;
}

static int test_profiles(void)
{
	static const char * const prof[] = { "vm-host", "workers", "laptop" };
	int ret = KSFT_PASS;

	for (size_t i = 0; i < ARRAY_SIZE(prof); i++) {
		char *line, *save = NULL, name[64], val[64], now[64];
		int changes = 0;

		if (CTL("tune", "--profile", prof[i])) {
			show_result(prof[i]);
			ret = KSFT_FAIL;
			continue;
		}
		for (line = strtok_r(R.out, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			if (sscanf(line, "%63[a-z_]: %*s -> %63s", name, val) != 2)
				continue;
			changes++;
			knob_str(name, now, sizeof(now));
			if (strcmp(now, val)) {
				ksft_print_msg("profile %s: %s is %s, printed %s\n",
					       prof[i], name, now, val);
				ret = KSFT_FAIL;
			}
		}
		if (changes < 3) {
			ksft_print_msg("profile %s printed %d settings\n", prof[i],
				       changes);
			show_result(prof[i]);
			ret = KSFT_FAIL;
		}
	}
	if (ksm_read("sleep_millisecs") != 200) {
		ksft_print_msg("laptop profile: sleep_millisecs %ld\n",
			       ksm_read("sleep_millisecs"));
		ret = KSFT_FAIL;
	}
	if (ksm_fast())
		ret = KSFT_FAIL;
	return ret;
}

/* A slow scan must be called out, consistently with the numbers shown. */
static int test_warnings(void)
{
	double secs = 0, rate = 0;
	bool warned;

	if (ksm_write("pages_to_scan", 1) || ksm_write("sleep_millisecs", 1000))
		return KSFT_FAIL;
	usleep(500000);
	if (CTL("status", "--json", "-d", "2.5") || !json_valid(R.out)) {
		show_result("status --json -d 2.5 (slow)");
		ksm_fast();
		return KSFT_FAIL;
	}
	ksm_fast();
	json_num(R.out, "full_scan_seconds", &secs);
	json_num(R.out, "scan_rate", &rate);
	warned = strstr(R.out, "a full scan takes") &&
		 strstr(R.out, "at pages_to_scan=1: raise it or enable the advisor");
	ksft_print_msg("slow scan: %.1f pages/s, a full scan %.0f s, warned %d\n",
		       rate, secs, warned);
	if (warned != (rate > 0 && secs > 300)) {
		show_result("status --json -d 2.5 (slow)");
		return KSFT_FAIL;
	}
	return KSFT_PASS;
}

static double t_last;

/* The TAP line, and how long the test took (the log shows what is slow). */
static void report(int r, const char *name)
{
	ksft_print_msg("%.1f s\n", ksm_now() - t_last);
	ksm_report(r, name);
	t_last = ksm_now();
}

static bool find_ksmctl(const char *argv0)
{
	const char *env = getenv("KSMCTL");
	char self[PATH_MAX], *slash;
	ssize_t n;

	if (env && !access(env, X_OK)) {
		snprintf(ksmctl, sizeof(ksmctl), "%s", env);
		return true;
	}
	if (!access("/usr/bin/ksmctl", X_OK)) {
		snprintf(ksmctl, sizeof(ksmctl), "/usr/bin/ksmctl");
		return true;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	slash = strrchr(self, '/');
	if (slash) {
		snprintf(slash + 1, sizeof(self) - (slash + 1 - self), "ksmctl");
		if (!access(self, X_OK)) {
			snprintf(ksmctl, sizeof(ksmctl), "%s", self);
			return true;
		}
	}
	(void)argv0;
	return false;
}

/* The number after "KEY": in @doc, or -1. */
static long long json_ll(const char *doc, const char *key)
{
	double v;

	return json_num(doc, key, &v) ? (long long)v : -1;
}

#define EST_DUPS	64

/* --dups: EST_DUPS identical pages, until killed. */
static int child_dups(void)
{
	char *p;

	page_size = sysconf(_SC_PAGESIZE);
	p = mmap(NULL, EST_DUPS * page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	for (int i = 0; i < EST_DUPS; i++)
		memset(p + i * page_size, 0x5c, page_size);
	for (;;)
		pause();
}

/*
 * Last, with the workers gone: "estimate CMD" reports what merging the
 * command's duplicates would save, merges nothing, and puts KSM back.
 */
static int test_estimate(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	long long saved, sharing;

	if (access(KSM_SYSFS "estimate", F_OK))
		return KSFT_SKIP;
	self[n > 0 ? n : 0] = '\0';
	if (!ksm_settle(60))
		return KSFT_FAIL;
	CTL("estimate", "--json", "--scans", "3", "-d", "25", self, "--dups");
	saved = json_ll(R.out, "process_saved_bytes");
	sharing = json_ll(R.out, "pages_sharing");
	if (R.rc || !json_valid(R.out) || json_ll(R.out, "full_scans") < 3 ||
	    sharing < EST_DUPS - 1 ||
	    saved < (EST_DUPS - 4) * (long long)page_size ||
	    ksm_read("estimate") != 0 || ksm_read("run") != 2 ||
	    ksm_read("pages_shared") != 0 ||
	    ksm_read("estimate_pages_sharing") != sharing) {
		show_result("estimate --json CMD");
		ksft_print_msg("saved %lld sharing %lld (%ld) json %d; estimate %ld run %ld\n",
			       saved, sharing, ksm_read("estimate_pages_sharing"),
			       json_valid(R.out), ksm_read("estimate"),
			       ksm_read("run"));
		return KSFT_FAIL;
	}
	return KSFT_PASS;
}

int main(int argc, char **argv)
{
	struct ksm_all_knobs saved;
	int r;

	if (argc == 2 && !strcmp(argv[1], "--child"))
		return child_check();
	if (argc == 2 && !strcmp(argv[1], "--dups"))
		return child_dups();
	if (argc == 2 && !strcmp(argv[1], "--hold")) {
		if (child_check())
			return 1;
		for (;;)
			pause();
	}
	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	if (access(KSM_SYSFS "run", F_OK))
		ksft_exit_skip("no KSM in this kernel\n");
	if (!find_ksmctl(argv[0]))
		ksft_exit_skip("no ksmctl binary (KSMCTL, /usr/bin or beside this test)\n");
	if (geteuid())
		ksft_exit_skip("needs root\n");
	ksft_print_msg("using %s\n", ksmctl);
	ksft_set_plan(15);
	ksm_save_all(&saved);
	t_last = ksm_now();
	if (!ksm_settle(60) || ksm_write("use_zero_pages", 1) || ksm_fast()) {
		ksm_restore_all(&saved);
		ksft_exit_fail_msg("cannot reset KSM\n");
	}

	report(test_help(), "help");
	report(test_bad_args(), "bad arguments exit 2 and change nothing");
	report(test_no_ksm(), "no KSM: one-line error");
	if (!start_workload()) {
		stop_workers();
		ksm_restore_all(&saved);
		ksft_exit_fail_msg("workload did not merge\n");
	}
	report(test_status_running(), "status while scanning");
	report(test_watch(), "watch");
	r = ksm_write("run", 0) ? KSFT_FAIL : test_status_stopped();
	report(r, "status while stopped equals sysfs");
	report(test_top(), "top");
	if (ksm_write("run", 1))
		ksft_print_msg("cannot restart ksmd\n");
	report(test_run(), "run");
	report(test_tune_show(), "tune show");
	report(test_tune_set(), "tune set and refusals");
	report(test_profiles(), "tune profiles");
	report(test_warnings(), "status warns of a slow scan");
	report(test_optional(), "domains, estimate, enable: work or say unsupported");
	report(test_disable(), "disable: works or says unsupported");

	stop_workers();
	report(test_estimate(), "estimate: a command's saving, nothing merged");
	ksm_restore_all(&saved);
	ksft_finished();
}
