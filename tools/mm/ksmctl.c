// SPDX-License-Identifier: GPL-2.0
/*
 * ksmctl: show, watch and tune Kernel Samepage Merging (KSM).
 *
 * One C file that needs nothing beyond libc: a plain "gcc -static" builds it.
 *
 * Reads /sys/kernel/mm/ksm/ and /proc/PID/ksm_stat, writes the KSM knobs
 * (as root), and starts commands with prctl(PR_SET_MEMORY_MERGE) set.
 * Interfaces that a kernel may lack (merge domains, estimate mode,
 * process_madvise(MADV_MERGEABLE)) are detected at run time.
 *
 * Exit status: 0 success, 1 runtime error (one "ksmctl: ..." line on
 * stderr), 2 bad arguments (a usage line on stderr).
 *
 * See Documentation/admin-guide/mm/ksm.rst, section "ksmctl".
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE		67
#define PR_GET_MEMORY_MERGE		68
#endif
#ifndef PR_SET_MEMORY_MERGE_DOMAIN
#define PR_SET_MEMORY_MERGE_DOMAIN	0x6b736d01
#define PR_GET_MEMORY_MERGE_DOMAIN	0x6b736d02
#endif
#ifndef PR_MEMORY_MERGE_DOMAIN_NEW
#define PR_MEMORY_MERGE_DOMAIN_NEW	(~0UL)
#endif
#ifndef MADV_MERGEABLE
#define MADV_MERGEABLE			12
#define MADV_UNMERGEABLE		13
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open			434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise		440
#endif

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define MIB		1048576.0

/* A full scan slower than this earns a warning (seconds). */
#define SLOW_SCAN_SECS	300
/* ksmd above this CPU share earns a warning (percent). */
#define BUSY_KSMD_PCT	90

static const char *ksm_dir = "/sys/kernel/mm/ksm";
static long page_size;
static bool json;

/* ---- errors and usage ------------------------------------------------- */

static const char *const usages[] = {
	"status [-d SECONDS] [--json]",
	"top [-n N] [-d SECONDS] [-c COUNT] [--once] [--json]",
	"watch [-d SECONDS] [-c COUNT] [--json]",
	"tune [--json] [--profile vm-host|workers|laptop] [NAME[=VALUE]...]",
	"run [--domain ID | --new-domain] [--] CMD [ARGS...]",
	"enable -p PID",
	"disable -p PID",
	"estimate [-d SECONDS] [--scans N] [--json] (-p PID | CMD [ARGS...])",
};

static noreturn void fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("ksmctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static const char *usage_of(const char *cmd)
{
	size_t i, n = strlen(cmd);

	for (i = 0; i < ARRAY_SIZE(usages); i++)
		if (!strncmp(usages[i], cmd, n) && usages[i][n] == ' ')
			return usages[i];
	return NULL;
}

static noreturn void usage_error(const char *cmd, const char *fmt, ...)
{
	const char *u = cmd ? usage_of(cmd) : NULL;
	va_list ap;

	fflush(stdout);
	fputs("ksmctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (u)
		fprintf(stderr, "usage: ksmctl %s (ksmctl %s --help)\n", u, cmd);
	else
		fprintf(stderr, "usage: ksmctl COMMAND [OPTIONS] (ksmctl --help)\n");
	exit(2);
}

/* ---- small helpers ---------------------------------------------------- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_for(double secs)
{
	struct timespec ts;

	if (secs <= 0)
		return;
	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* A whole decimal number, no sign or blanks; false if not one. */
static bool parse_ull(const char *s, unsigned long long *v)
{
	char *end;

	if (!*s || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return !errno && !*end;
}

static double parse_seconds(const char *cmd, const char *s, double min)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(d) || d < min || d > 86400)
		usage_error(cmd, "invalid interval '%s' (seconds, %g to 86400)",
			    s, min);
	return d;
}

static long parse_count(const char *cmd, const char *what, const char *s,
			unsigned long long min)
{
	unsigned long long v;

	if (!parse_ull(s, &v) || v < min || v > INT_MAX)
		usage_error(cmd, "invalid %s '%s' (a whole number >= %llu)",
			    what, s, min);
	return (long)v;
}

static pid_t parse_pid(const char *cmd, const char *s)
{
	unsigned long long v;

	if (!parse_ull(s, &v) || v < 1 || v > INT_MAX)
		usage_error(cmd, "invalid PID '%s'", s);
	return (pid_t)v;
}

/* Read a small file into @buf, trailing newline stripped; 0 or -errno. */
static int read_file(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

static void ksm_path(char *path, size_t len, const char *name)
{
	snprintf(path, len, "%s/%s", ksm_dir, name);
}

static bool ksm_exists(const char *name)
{
	char path[PATH_MAX];

	ksm_path(path, sizeof(path), name);
	return !access(path, F_OK);
}

static int ksm_read_str(const char *name, char *buf, size_t len)
{
	char path[PATH_MAX];

	ksm_path(path, sizeof(path), name);
	return read_file(path, buf, len);
}

/* A KSM counter or knob; false (and @v = 0) when the file is missing. */
static bool ksm_num(const char *name, long long *v)
{
	char buf[64], *end;

	*v = 0;
	if (ksm_read_str(name, buf, sizeof(buf)))
		return false;
	errno = 0;
	*v = strtoll(buf, &end, 10);
	return !errno && end != buf;
}

static long long ksm_get(const char *name)
{
	long long v;

	ksm_num(name, &v);
	return v;
}

/* "[none] scan-time" -> "none" */
static void advisor_mode(char *buf, size_t len)
{
	char raw[128], *l, *r;

	if (ksm_read_str("advisor_mode", raw, sizeof(raw))) {
		snprintf(buf, len, "none");
		return;
	}
	l = strchr(raw, '[');
	r = l ? strchr(l, ']') : NULL;
	if (l && r) {
		*r = '\0';
		snprintf(buf, len, "%s", l + 1);
	} else {
		snprintf(buf, len, "%s", raw);
	}
}

static void need_ksm(void)
{
	struct stat st;

	if (stat(ksm_dir, &st) || !S_ISDIR(st.st_mode))
		fail("this kernel has no KSM (%s is missing: CONFIG_KSM=n?)",
		     ksm_dir);
}

/* Words for the errnos a knob write or a syscall gives back. */
static const char *errno_words(int err)
{
	switch (err) {
	case EINVAL:
		return "Invalid argument";
	case EBUSY:
		return "Device or resource busy";
	case EPERM:
		return "Operation not permitted";
	case EACCES:
		return "Permission denied";
	default:
		return strerror(err);
	}
}

/* ---- JSON output ------------------------------------------------------ */

static int jdepth;
static bool jfirst[16];

static void j_sep(void)
{
	if (!jfirst[jdepth])
		fputs(", ", stdout);
	jfirst[jdepth] = false;
}

static void j_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void j_key(const char *key)
{
	j_sep();
	if (key) {
		j_string(key);
		fputs(": ", stdout);
	}
}

static void j_open(const char *key, char c)
{
	j_key(key);
	putchar(c);
	jfirst[++jdepth] = true;
}

static void j_close(char c)
{
	jdepth--;
	putchar(c);
	if (!jdepth)
		putchar('\n');
}

static void j_begin(void)
{
	jdepth = 0;
	jfirst[0] = true;
	j_open(NULL, '{');
}

static void j_int(const char *key, long long v)
{
	j_key(key);
	printf("%lld", v);
}

static void j_dbl(const char *key, double v, bool valid)
{
	j_key(key);
	if (valid && isfinite(v) && v != 0 && fabs(v) < 1)
		printf("%.3g", v);	/* keep 3 digits of small values */
	else if (valid && isfinite(v))
		printf("%.3f", v);
	else
		fputs("null", stdout);
}

static void j_str(const char *key, const char *v)
{
	j_key(key);
	if (v)
		j_string(v);
	else
		fputs("null", stdout);
}

/* ---- samples of the global counters and ksmd's CPU time ---------------- */

enum {
	S_RUN, S_PAGES_TO_SCAN, S_SLEEP, S_SCANNED, S_SHARED, S_SHARING,
	S_UNSHARED, S_VOLATILE, S_SKIPPED, S_ZERO, S_PROFIT, S_FULL_SCANS,
	S_CHAINS, S_DUPS, S_SMART, S_ZERO_PAGES_KNOB, S_ACROSS, S_MAX_SHARING,
	NR_STATS
};

static const char *const stat_names[NR_STATS] = {
	"run", "pages_to_scan", "sleep_millisecs", "pages_scanned",
	"pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
	"pages_skipped", "ksm_zero_pages", "general_profit", "full_scans",
	"stable_node_chains", "stable_node_dups", "smart_scan",
	"use_zero_pages", "merge_across_nodes", "max_page_sharing",
};

struct sample {
	double t;
	long long v[NR_STATS];
	bool have[NR_STATS];
	long long ksmd_ticks;	/* -1: no ksmd found */
};

static long long ksmd_ticks(void)
{
	static char stat_path[300];
	char buf[1024], *p;
	unsigned long long ut, st;

	if (!stat_path[0]) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char path[300], comm[32];

			if (!isdigit((unsigned char)e->d_name[0]))
				continue;
			snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
			if (read_file(path, comm, sizeof(comm)) ||
			    strcmp(comm, "ksmd"))
				continue;
			snprintf(stat_path, sizeof(stat_path), "/proc/%s/stat",
				 e->d_name);
			break;
		}
		if (d)
			closedir(d);
		if (!stat_path[0])
			return -1;
	}
	if (read_file(stat_path, buf, sizeof(buf)))
		return -1;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static void take_sample(struct sample *s)
{
	int i;

	for (i = 0; i < NR_STATS; i++)
		s->have[i] = ksm_num(stat_names[i], &s->v[i]);
	s->ksmd_ticks = ksmd_ticks();
	s->t = now();
}

/* Pages KSM saves: every sharer beyond the first, and zero pages. */
static long long saved_pages(const struct sample *s)
{
	return s->v[S_SHARING] + s->v[S_ZERO];
}

static double to_mib(long long pages)
{
	return pages * (double)page_size / MIB;
}

static double scan_rate(const struct sample *a, const struct sample *b)
{
	double dt = b->t - a->t;

	return dt > 0 ? (b->v[S_SCANNED] - a->v[S_SCANNED]) / dt : 0;
}

/* ksmd's CPU share between two samples in percent; < 0 when unknown. */
static double ksmd_cpu(const struct sample *a, const struct sample *b)
{
	double dt = b->t - a->t;

	if (dt <= 0 || a->ksmd_ticks < 0 || b->ksmd_ticks < 0)
		return -1;
	return 100.0 * (b->ksmd_ticks - a->ksmd_ticks) /
	       sysconf(_SC_CLK_TCK) / dt;
}

static void fmt_duration(char *buf, size_t len, double secs)
{
	if (secs < 1)
		snprintf(buf, len, "%.1f ms", secs * 1000);
	else if (secs < 10)
		snprintf(buf, len, "%.2f s", secs);
	else if (secs < 120)
		snprintf(buf, len, "%.0f s", secs);
	else if (secs < 7200)
		snprintf(buf, len, "%.0f min", secs / 60);
	else
		snprintf(buf, len, "%.1f h", secs / 3600);
}

/* ---- status ----------------------------------------------------------- */

static const char *run_state(long long run)
{
	switch (run) {
	case 0:
		return "stopped";
	case 1:
		return "running";
	case 2:
		return "unmerging";
	default:
		return "unknown";
	}
}

#define MAX_WARN 8

struct status {
	struct sample a, b;
	double sample_secs;
	double scan_secs;	/* duration of a full scan, < 0 unknown */
	const char *scan_how;	/* "measured" or "estimated" */
	double rate, cpu;
	char advisor[32];
	long long adv_max_cpu, adv_min, adv_max, adv_target;
	bool have_domains, have_estimate;
	char domains[256], estimate[256];
	char warn[MAX_WARN][200];
	int nwarn;
};

static void add_warning(struct status *st, const char *fmt, ...)
{
	va_list ap;

	if (st->nwarn >= MAX_WARN)
		return;
	va_start(ap, fmt);
	vsnprintf(st->warn[st->nwarn++], sizeof(st->warn[0]), fmt, ap);
	va_end(ap);
}

/*
 * Sample for @secs, polling full_scans so that the length of a full scan
 * can be measured when two of them end within the interval.
 */
static void collect_status(struct status *st, double secs)
{
	long long scans, prev, first_scans = -1, last_scans = -1;
	double first_end = 0, last_end = 0, end;

	memset(st, 0, sizeof(*st));
	st->sample_secs = secs;
	take_sample(&st->a);
	prev = st->a.v[S_FULL_SCANS];
	end = st->a.t + secs;
	while (secs > 0 && now() < end) {
		sleep_for(end - now() < 0.02 ? end - now() : 0.02);
		scans = ksm_get("full_scans");
		if (scans != prev) {
			double t = now();

			/* Whole scans between the first and the last end seen */
			if (first_scans < 0) {
				first_end = t;
				first_scans = scans;
			} else {
				last_end = t;
				last_scans = scans;
			}
			prev = scans;
		}
	}
	take_sample(&st->b);
	st->rate = secs > 0 ? scan_rate(&st->a, &st->b) : 0;
	st->cpu = secs > 0 ? ksmd_cpu(&st->a, &st->b) : -1;
	st->scan_secs = -1;
	if (last_scans > first_scans && first_scans >= 0) {
		st->scan_secs = (last_end - first_end) / (last_scans - first_scans);
		st->scan_how = "measured";
	} else if (st->rate > 0) {
		long long items = st->b.v[S_SHARED] + st->b.v[S_SHARING] +
				  st->b.v[S_UNSHARED] + st->b.v[S_VOLATILE] +
				  st->b.v[S_ZERO];

		if (items > 0) {
			st->scan_secs = items / st->rate;
			st->scan_how = "estimated";
		}
	}
	advisor_mode(st->advisor, sizeof(st->advisor));
	ksm_num("advisor_max_cpu", &st->adv_max_cpu);
	ksm_num("advisor_min_pages_to_scan", &st->adv_min);
	ksm_num("advisor_max_pages_to_scan", &st->adv_max);
	ksm_num("advisor_target_scan_time", &st->adv_target);
	st->have_domains = !ksm_read_str("merge_domains", st->domains,
					 sizeof(st->domains));
	st->have_estimate = !ksm_read_str("estimate", st->estimate,
					  sizeof(st->estimate));
}

static void status_warnings(struct status *st)
{
	const struct sample *s = &st->b;
	bool advisor = strcmp(st->advisor, "none");
	long long items = s->v[S_SHARED] + s->v[S_SHARING] +
			  s->v[S_UNSHARED] + s->v[S_VOLATILE];
	char d[32];

	if (s->v[S_RUN] == 0)
		add_warning(st, "KSM is stopped (run=0): nothing new is merged until 'ksmctl tune run=1'");
	if (s->v[S_RUN] == 1 && st->scan_secs > SLOW_SCAN_SECS) {
		fmt_duration(d, sizeof(d), st->scan_secs);
		if (advisor)
			add_warning(st, "a full scan takes %s, over advisor_target_scan_time=%llds: raise advisor_max_cpu or advisor_max_pages_to_scan",
				    d, st->adv_target);
		else
			add_warning(st, "a full scan takes %s at pages_to_scan=%lld: raise it or enable the advisor",
				    d, s->v[S_PAGES_TO_SCAN]);
	}
	if (st->cpu >= BUSY_KSMD_PCT)
		add_warning(st, "ksmd at %.0f%% CPU: raise sleep_millisecs, lower pages_to_scan or use the advisor with a lower advisor_max_cpu",
			    st->cpu);
	if (s->have[S_PROFIT] && s->v[S_PROFIT] < 0)
		add_warning(st, "KSM costs more memory than it saves (general_profit %.1f MiB): mark only memory likely to be duplicated mergeable",
			    s->v[S_PROFIT] / MIB);
	if (s->v[S_UNSHARED] > 10000 &&
	    s->v[S_UNSHARED] > 10 * (s->v[S_SHARING] + s->v[S_ZERO]))
		add_warning(st, "most scanned pages are unique (%lld unshared, %lld saved): scanning them is wasted work%s",
			    s->v[S_UNSHARED], saved_pages(s),
			    s->v[S_SMART] ? "" : "; enable smart_scan");
	if (s->v[S_RUN] == 1 && !items && !s->v[S_ZERO] &&
	    st->sample_secs > 0 && st->b.v[S_SCANNED] == st->a.v[S_SCANNED])
		add_warning(st, "no mergeable memory: start programs with 'ksmctl run CMD', or have them use prctl(PR_SET_MEMORY_MERGE) or madvise(MADV_MERGEABLE)");
}

static void print_status_json(const struct status *st)
{
	const struct sample *s = &st->b;
	int i;

	j_begin();
	j_int("run", s->v[S_RUN]);
	j_str("state", run_state(s->v[S_RUN]));
	j_str("mode", st->have_estimate && atoi(st->estimate) > 0 ?
		       "estimate" : "merge");
	if (st->have_domains)
		j_str("domains", st->domains);
	if (st->have_estimate) {
		j_str("estimate", st->estimate);
		j_int("estimate_pages_shared", ksm_get("estimate_pages_shared"));
		j_int("estimate_pages_sharing",
		      ksm_get("estimate_pages_sharing"));
		j_int("estimate_zero_pages", ksm_get("estimate_zero_pages"));
		j_int("estimate_profit", ksm_get("estimate_profit"));
	}
	j_dbl("sample_seconds", st->sample_secs, true);
	j_int("page_size", page_size);
	for (i = 0; i < NR_STATS; i++)
		if (i != S_RUN && s->have[i])
			j_int(stat_names[i], s->v[i]);
	j_int("saved_pages", saved_pages(s));
	j_int("saved_bytes", saved_pages(s) * page_size);
	j_dbl("saved_mib", to_mib(saved_pages(s)), true);
	j_dbl("scan_rate", st->rate, st->sample_secs > 0);
	j_dbl("ksmd_cpu", st->cpu, st->cpu >= 0);
	j_dbl("full_scan_seconds", st->scan_secs, st->scan_secs >= 0);
	j_str("full_scan_source", st->scan_secs >= 0 ? st->scan_how : NULL);
	j_open("advisor", '{');
	j_str("mode", st->advisor);
	j_int("max_cpu", st->adv_max_cpu);
	j_int("min_pages_to_scan", st->adv_min);
	j_int("max_pages_to_scan", st->adv_max);
	j_int("target_scan_time", st->adv_target);
	j_close('}');
	j_open("warnings", '[');
	for (i = 0; i < st->nwarn; i++)
		j_str(NULL, st->warn[i]);
	j_close(']');
	j_close('}');
}

static void print_status_text(const struct status *st)
{
	const struct sample *s = &st->b;
	char d[32];
	int i;

	printf("state:      %s (run=%lld), mode %s\n", run_state(s->v[S_RUN]),
	       s->v[S_RUN], st->have_estimate && atoi(st->estimate) > 0 ?
	       "estimate" : "merge");
	if (st->have_domains)
		printf("domains:    %s\n", st->domains);
	if (st->have_estimate) {
		long long sh = ksm_get("estimate_pages_sharing");
		long long z = ksm_get("estimate_zero_pages");

		printf("estimate:   %s; last estimate: %lld pages sharing,",
		       st->estimate, sh);
		printf(" %lld zero pages, %.1f MiB saved\n", z, to_mib(sh + z));
	}
	printf("scanning:   pages_to_scan=%lld sleep_millisecs=%lld",
	       s->v[S_PAGES_TO_SCAN], s->v[S_SLEEP]);
	printf(" smart_scan=%lld use_zero_pages=%lld", s->v[S_SMART],
	       s->v[S_ZERO_PAGES_KNOB]);
	if (s->have[S_ACROSS])
		printf(" merge_across_nodes=%lld", s->v[S_ACROSS]);
	printf(" max_page_sharing=%lld\n", s->v[S_MAX_SHARING]);
	if (strcmp(st->advisor, "none")) {
		printf("advisor:    %s (target_scan_time=%llds max_cpu=%lld%%",
		       st->advisor, st->adv_target, st->adv_max_cpu);
		printf(" pages_to_scan %lld..%lld)\n", st->adv_min, st->adv_max);
	} else {
		printf("advisor:    none\n");
	}
	printf("saved:      %.1f MiB (%lld pages), general_profit %.1f MiB (%lld bytes)\n",
	       to_mib(saved_pages(s)), saved_pages(s), s->v[S_PROFIT] / MIB,
	       s->v[S_PROFIT]);
	printf("pages:      shared %lld, sharing %lld, zero %lld,",
	       s->v[S_SHARED], s->v[S_SHARING], s->v[S_ZERO]);
	printf(" unshared %lld, volatile %lld, skipped %lld\n",
	       s->v[S_UNSHARED], s->v[S_VOLATILE], s->v[S_SKIPPED]);
	printf("full scans: %lld", s->v[S_FULL_SCANS]);
	if (st->scan_secs >= 0) {
		fmt_duration(d, sizeof(d), st->scan_secs);
		printf(", a full scan takes %s (%s)", d, st->scan_how);
	}
	putchar('\n');
	if (st->sample_secs > 0) {
		printf("scan rate:  %.0f pages/s (sampled over %.1f s)\n",
		       st->rate, st->sample_secs);
		if (st->cpu >= 0)
			printf("ksmd CPU:   %.1f%%\n", st->cpu);
		else
			printf("ksmd CPU:   unknown (no ksmd thread found)\n");
	}
	for (i = 0; i < st->nwarn; i++)
		printf("warning: %s\n", st->warn[i]);
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct status st;
	double secs = 1;
	int c;

	while ((c = getopt_long(argc, argv, "d:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			secs = parse_seconds("status", optarg, 0);
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			return -1;
		default:
			usage_error("status", "bad option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("status", "unexpected argument '%s'", argv[optind]);
	need_ksm();
	collect_status(&st, secs);
	status_warnings(&st);
	if (json)
		print_status_json(&st);
	else
		print_status_text(&st);
	return 0;
}

/* ---- per-process statistics (top) ------------------------------------- */

struct proc {
	pid_t pid;
	char comm[64];
	long long rmap, zero, merging, profit;
	int merge_any, mergeable;	/* -1: not reported by ksm_stat */
	const char *how;
};

/*
 * "prctl", "madvise" or "-" from the smaps VmFlags ("mg") of @pid, for
 * kernels without ksm_merge_any in ksm_stat.  PR_SET_MEMORY_MERGE marks
 * every compatible VMA, file mappings too; madvise users mark their own
 * anonymous areas, not the heap, stack or program text.
 */
static const char *mergeable_from_smaps(pid_t pid)
{
	char path[64], line[512], name[256];
	bool any = false, prctl_vma = false;
	const char *how = "-";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return "?";
	name[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		int off = 0;

		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &s, &e, &off) == 2 &&
		    off > 0 && line[strspn(line, "0123456789abcdef")] == '-') {
			snprintf(name, sizeof(name), "%s", line + off);
			name[strcspn(name, "\n")] = '\0';
			/* Only prctl marks the stack, heap or file mappings */
			prctl_vma = !strcmp(name, "[stack]") ||
				   !strcmp(name, "[heap]") || name[0] == '/';
			continue;
		}
		if (strncmp(line, "VmFlags:", 8) || !strstr(line, " mg"))
			continue;
		any = true;
		if (prctl_vma) {
			how = "prctl";
			break;
		}
	}
	fclose(f);
	if (any && strcmp(how, "prctl"))
		how = "madvise";
	return how;
}

static bool read_proc(pid_t pid, struct proc *p, int *denied)
{
	char path[64], line[128];
	FILE *f;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->merge_any = -1;
	p->mergeable = -1;
	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	f = fopen(path, "re");
	if (!f) {
		if (errno == EACCES || errno == EPERM)
			(*denied)++;
		return false;
	}
	while (fgets(line, sizeof(line), f)) {
		char key[64], val[32];
		long long v;

		/* "ksm_rmap_items 3", or "ksm_merge_any: yes" on newer kernels */
		if (sscanf(line, "%63[^: ]%*[: ]%31s", key, val) != 2)
			continue;
		if (!strcmp(val, "yes") || !strcmp(val, "no"))
			v = val[0] == 'y';
		else
			v = strtoll(val, NULL, 10);
		if (!strcmp(key, "ksm_rmap_items"))
			p->rmap = v;
		else if (!strcmp(key, "ksm_zero_pages"))
			p->zero = v;
		else if (!strcmp(key, "ksm_merging_pages"))
			p->merging = v;
		else if (!strcmp(key, "ksm_process_profit"))
			p->profit = v;
		else if (!strcmp(key, "ksm_merge_any"))
			p->merge_any = !!v;
		else if (!strcmp(key, "ksm_mergeable"))
			p->mergeable = !!v;
	}
	fclose(f);
	if (!p->rmap && !p->zero && !p->merging && p->merge_any <= 0 &&
	    p->mergeable <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (read_file(path, p->comm, sizeof(p->comm)))
		snprintf(p->comm, sizeof(p->comm), "?");
	if (p->merge_any >= 0)
		p->how = p->merge_any ? "prctl" : p->mergeable > 0 ? "madvise" : "-";
	else
		p->how = mergeable_from_smaps(pid);
	return true;
}

static long long proc_saved(const struct proc *p)
{
	return p->merging + p->zero;
}

static int cmp_proc(const void *x, const void *y)
{
	const struct proc *a = x, *b = y;

	if (proc_saved(a) != proc_saved(b))
		return proc_saved(a) < proc_saved(b) ? 1 : -1;
	if (a->profit != b->profit)
		return a->profit < b->profit ? 1 : -1;
	return a->pid - b->pid;
}

static struct proc *scan_procs(int *nr, int *denied)
{
	struct proc *v = NULL, p;
	int n = 0, cap = 0;
	struct dirent *e;
	DIR *d = opendir("/proc");

	*denied = 0;
	if (!d)
		fail("cannot read /proc: %s", strerror(errno));
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		if (!read_proc(atoi(e->d_name), &p, denied))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				fail("out of memory");
		}
		v[n++] = p;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_proc);
	*nr = n;
	return v;
}

static void print_top(const struct sample *a, const struct sample *b,
		      int limit, bool clear)
{
	int n, denied, i;
	struct proc *v = scan_procs(&n, &denied);
	double cpu = a ? ksmd_cpu(a, b) : -1;

	if (json) {
		j_begin();
		j_int("time", (long long)time(NULL));
		j_int("pages_shared", b->v[S_SHARED]);
		j_int("pages_sharing", b->v[S_SHARING]);
		j_int("ksm_zero_pages", b->v[S_ZERO]);
		j_int("general_profit", b->v[S_PROFIT]);
		j_dbl("saved_mib", to_mib(saved_pages(b)), true);
		j_dbl("ksmd_cpu", cpu, cpu >= 0);
		j_int("processes_total", n);
		j_int("unreadable", denied);
		j_open("processes", '[');
		for (i = 0; i < n && i < limit; i++) {
			j_open(NULL, '{');
			j_int("pid", v[i].pid);
			j_str("comm", v[i].comm);
			j_int("merging_pages", v[i].merging);
			j_int("zero_pages", v[i].zero);
			j_int("rmap_items", v[i].rmap);
			j_dbl("saved_mib", to_mib(proc_saved(&v[i])), true);
			j_int("profit", v[i].profit);
			j_str("mergeable", v[i].how);
			j_close('}');
		}
		j_close(']');
		j_close('}');
	} else {
		char tm[16];
		time_t t = time(NULL);

		strftime(tm, sizeof(tm), "%H:%M:%S", localtime(&t));
		if (clear)
			fputs("\033[H\033[2J", stdout);
		printf("ksmctl top %s: saved %.1f MiB, shared %lld, sharing %lld, zero %lld, ksmd ",
		       tm, to_mib(saved_pages(b)), b->v[S_SHARED],
		       b->v[S_SHARING], b->v[S_ZERO]);
		if (cpu >= 0)
			printf("%.1f%% CPU\n", cpu);
		else
			printf("- CPU\n");
		if (denied)
			printf("(%d processes not readable: run as root to see them)\n",
			       denied);
		printf("%7s %-16s %9s %9s %10s %11s %9s %s\n", "PID", "COMMAND",
		       "MERGING", "ZERO", "SAVED_MiB", "PROFIT_MiB", "RMAP",
		       "MERGEABLE");
		for (i = 0; i < n && i < limit; i++)
			printf("%7d %-16s %9lld %9lld %10.1f %11.1f %9lld %s\n",
			       v[i].pid, v[i].comm, v[i].merging, v[i].zero,
			       to_mib(proc_saved(&v[i])), v[i].profit / MIB,
			       v[i].rmap, v[i].how);
		if (!n)
			printf("(no process has KSM activity)\n");
	}
	fflush(stdout);
	free(v);
}

static int cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sample a, b;
	long limit = 20, count = 0, i;
	bool once = false, clear;
	double secs = 2;
	int c;

	while ((c = getopt_long(argc, argv, "n:d:c:ojh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			limit = parse_count("top", "process count", optarg, 1);
			break;
		case 'd':
			secs = parse_seconds("top", optarg, 0.1);
			break;
		case 'c':
			count = parse_count("top", "refresh count", optarg, 1);
			break;
		case 'o':
			once = true;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			return -1;
		default:
			usage_error("top", "bad option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("top", "unexpected argument '%s'", argv[optind]);
	need_ksm();
	take_sample(&a);
	if (once) {
		print_top(NULL, &a, limit, false);
		return 0;
	}
	clear = !json && isatty(STDOUT_FILENO);
	print_top(NULL, &a, limit, clear);
	for (i = 1; !count || i < count; i++) {
		sleep_for(secs);
		take_sample(&b);
		if (!clear && !json)
			putchar('\n');
		print_top(&a, &b, limit, clear);
		a = b;
	}
	return 0;
}

/* ---- watch ------------------------------------------------------------ */

static int cmd_watch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sample a, b;
	long count = 0, i;
	double secs = 1;
	int c;

	while ((c = getopt_long(argc, argv, "d:c:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			secs = parse_seconds("watch", optarg, 0.1);
			break;
		case 'c':
			count = parse_count("watch", "line count", optarg, 1);
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			return -1;
		default:
			usage_error("watch", "bad option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("watch", "unexpected argument '%s'", argv[optind]);
	need_ksm();
	if (!json)
		printf("%8s %10s %10s %10s %10s %12s %7s\n", "time",
		       "saved_MiB", "shared", "sharing", "zero", "scan_pages/s",
		       "ksmd_%");
	fflush(stdout);
	take_sample(&a);
	for (i = 0; !count || i < count; i++) {
		double cpu;
		time_t t;
		char tm[16];

		sleep_for(secs);
		take_sample(&b);
		cpu = ksmd_cpu(&a, &b);
		t = time(NULL);
		if (json) {
			j_begin();
			j_int("time", (long long)t);
			j_dbl("saved_mib", to_mib(saved_pages(&b)), true);
			j_int("pages_shared", b.v[S_SHARED]);
			j_int("pages_sharing", b.v[S_SHARING]);
			j_int("ksm_zero_pages", b.v[S_ZERO]);
			j_int("general_profit", b.v[S_PROFIT]);
			j_int("full_scans", b.v[S_FULL_SCANS]);
			j_dbl("scan_rate", scan_rate(&a, &b), true);
			j_dbl("ksmd_cpu", cpu, cpu >= 0);
			j_close('}');
		} else {
			strftime(tm, sizeof(tm), "%H:%M:%S", localtime(&t));
			printf("%8s %10.1f %10lld %10lld %10lld %12.0f ", tm,
			       to_mib(saved_pages(&b)), b.v[S_SHARED],
			       b.v[S_SHARING], b.v[S_ZERO], scan_rate(&a, &b));
			if (cpu >= 0)
				printf("%7.1f\n", cpu);
			else
				printf("%7s\n", "-");
		}
		fflush(stdout);
		a = b;
	}
	return 0;
}

/* ---- tune ------------------------------------------------------------- */

enum knob_type { K_NUM, K_BOOL, K_ADVISOR, K_OTHER };

struct knob {
	const char *name;
	enum knob_type type;
	unsigned long long lo, hi;
};

static const struct knob knobs[] = {
	{ "run", K_NUM, 0, 2 },
	{ "pages_to_scan", K_NUM, 0, UINT_MAX },
	{ "sleep_millisecs", K_NUM, 0, UINT_MAX },
	{ "merge_across_nodes", K_BOOL, 0, 1 },
	{ "use_zero_pages", K_BOOL, 0, 1 },
	{ "max_page_sharing", K_NUM, 2, INT_MAX },
	{ "stable_node_chains_prune_millisecs", K_NUM, 0, UINT_MAX },
	{ "smart_scan", K_BOOL, 0, 1 },
	{ "advisor_mode", K_ADVISOR, 0, 0 },
	{ "advisor_max_cpu", K_NUM, 0, 100 },
	{ "advisor_min_pages_to_scan", K_NUM, 1, UINT_MAX },
	{ "advisor_max_pages_to_scan", K_NUM, 1, UINT_MAX },
	{ "advisor_target_scan_time", K_NUM, 1, UINT_MAX },
};

static const struct knob other_knob = { NULL, K_OTHER, 0, 0 };

struct profile {
	const char *name, *what;
	const char *const set[10];
};

/*
 * advisor_mode first: switching it resets pages_to_scan.  The scan-time
 * advisor's limits go before the switch, which starts it at its minimum.
 */
static const struct profile profiles[] = {
	{ "vm-host",
	  "long-lived guests: scan-time advisor, 2 min full scans, at most 50% CPU, zero pages merged with the zero page",
	  { "advisor_max_cpu=50", "advisor_min_pages_to_scan=500",
	    "advisor_max_pages_to_scan=30000",
	    "advisor_target_scan_time=120", "advisor_mode=scan-time",
	    "sleep_millisecs=20", "use_zero_pages=1", "smart_scan=1" } },
	{ "workers",
	  "many identical worker processes: a fixed fast scan of 4000 pages every 20 ms",
	  { "advisor_mode=none", "pages_to_scan=4000", "sleep_millisecs=20",
	    "smart_scan=1" } },
	{ "laptop", "battery first: 100 pages every 200 ms, few wakeups",
	  { "advisor_mode=none", "pages_to_scan=100", "sleep_millisecs=200",
	    "smart_scan=1" } },
};

/* A writable file of the KSM sysfs directory that the table lacks. */
static bool is_other_knob(const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	if (!*name || strchr(name, '/') || name[0] == '.')
		return false;
	ksm_path(path, sizeof(path), name);
	return !stat(path, &st) && S_ISREG(st.st_mode) && (st.st_mode & 0200);
}

static const struct knob *find_knob(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(knobs); i++)
		if (!strcmp(knobs[i].name, name))
			return &knobs[i];
	return is_other_knob(name) ? &other_knob : NULL;
}

static void knob_value(const char *name, char *buf, size_t len)
{
	if (!strcmp(name, "advisor_mode"))
		advisor_mode(buf, len);
	else if (ksm_read_str(name, buf, len))
		snprintf(buf, len, "?");
}

/* NULL when @val suits @k, else what the knob takes. */
static const char *check_value(const struct knob *k, const char *val,
			       char *why, size_t len)
{
	unsigned long long v;

	switch (k->type) {
	case K_ADVISOR:
		if (!strcmp(val, "none") || !strcmp(val, "scan-time"))
			return NULL;
		snprintf(why, len, "none or scan-time");
		return why;
	case K_OTHER:
		if (*val && !strpbrk(val, " \t\n"))
			return NULL;
		snprintf(why, len, "a value without blanks");
		return why;
	default:
		if (parse_ull(val, &v) && v >= k->lo && v <= k->hi)
			return NULL;
		if (k->type == K_BOOL)
			snprintf(why, len, "0 or 1");
		else
			snprintf(why, len, "a whole number %llu..%llu", k->lo,
				 k->hi);
		return why;
	}
}

struct assign {
	const char *name;
	char value[128];
};

static const char *refusal_hint(const char *name, int err)
{
	if (err == EBUSY && (!strcmp(name, "merge_across_nodes") ||
			     !strcmp(name, "max_page_sharing")))
		return " (KSM pages exist: 'ksmctl tune run=2' unmerges them first)";
	if (err == EINVAL && !strcmp(name, "pages_to_scan"))
		return " (the scan-time advisor owns pages_to_scan: set advisor_mode=none first)";
	if (err == EACCES || err == EPERM)
		return " (setting KSM knobs needs root)";
	return "";
}

static int knob_write(const char *name, const char *val)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd, err = 0;

	ksm_path(path, sizeof(path), name);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return errno;
	n = write(fd, val, strlen(val));
	if (n < 0)
		err = errno;
	close(fd);
	return err;
}

static void show_knobs(char **names, int n)
{
	char val[128];
	size_t i;
	int k;

	if (json)
		j_begin();
	if (n) {
		for (k = 0; k < n; k++) {
			knob_value(names[k], val, sizeof(val));
			if (!json)
				printf("%s=%s\n", names[k], val);
			else if (find_knob(names[k])->type == K_ADVISOR ||
				 find_knob(names[k])->type == K_OTHER)
				j_str(names[k], val);
			else
				j_int(names[k], atoll(val));
		}
	} else {
		DIR *d;
		struct dirent *e;

		for (i = 0; i < ARRAY_SIZE(knobs); i++) {
			if (!ksm_exists(knobs[i].name))
				continue;
			knob_value(knobs[i].name, val, sizeof(val));
			if (!json)
				printf("%s=%s\n", knobs[i].name, val);
			else if (knobs[i].type == K_ADVISOR)
				j_str(knobs[i].name, val);
			else
				j_int(knobs[i].name, atoll(val));
		}
		/* Knobs this ksmctl does not know (newer or debug ones). */
		d = opendir(ksm_dir);
		while (d && (e = readdir(d))) {
			for (i = 0; i < ARRAY_SIZE(knobs); i++)
				if (!strcmp(knobs[i].name, e->d_name))
					break;
			if (i < ARRAY_SIZE(knobs) || !is_other_knob(e->d_name))
				continue;
			knob_value(e->d_name, val, sizeof(val));
			if (json)
				j_str(e->d_name, val);
			else
				printf("%s=%s\n", e->d_name, val);
		}
		if (d)
			closedir(d);
	}
	if (json)
		j_close('}');
}

static void parse_assign(struct assign *a, const char *arg, const char *from)
{
	const char *eq = strchr(arg, '=');
	const struct knob *k;
	char name[128], why[96];

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(name))
		usage_error("tune", "bad setting '%s'%s (NAME=VALUE)", arg, from);
	snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
	k = find_knob(name);
	if (!k)
		usage_error("tune", "unknown knob '%s'%s", name, from);
	if (strlen(eq + 1) >= sizeof(a->value))
		usage_error("tune", "value of %s too long", name);
	if (check_value(k, eq + 1, why, sizeof(why)))
		usage_error("tune", "invalid value '%s' for %s%s (expected %s)",
			    eq + 1, name, from, why);
	a->name = k->name ? k->name : strdup(name);
	snprintf(a->value, sizeof(a->value), "%s", eq + 1);
}

static int cmd_tune(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "profile", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct profile *prof = NULL;
	struct assign *set;
	char **show, before[128], after[128], from[64];
	int c, i, nset = 0, nshow = 0, err;
	size_t j;

	while ((c = getopt_long(argc, argv, "jp:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'p':
			for (j = 0; j < ARRAY_SIZE(profiles); j++)
				if (!strcmp(profiles[j].name, optarg))
					prof = &profiles[j];
			if (!prof)
				usage_error("tune",
					    "unknown profile '%s' (vm-host, workers or laptop)",
					    optarg);
			break;
		case 'h':
			return -1;
		default:
			usage_error("tune", "bad option '%s'", argv[optind - 1]);
		}
	}
	set = calloc(argc + 16, sizeof(*set));
	show = calloc(argc + 1, sizeof(*show));
	if (!set || !show)
		fail("out of memory");
	/* Validate everything before writing anything. */
	if (prof) {
		snprintf(from, sizeof(from), " in profile %s", prof->name);
		for (j = 0; j < ARRAY_SIZE(prof->set) && prof->set[j]; j++)
			parse_assign(&set[nset++], prof->set[j], from);
	}
	need_ksm();
	for (i = optind; i < argc; i++) {
		if (strchr(argv[i], '=')) {
			parse_assign(&set[nset++], argv[i], "");
		} else if (find_knob(argv[i])) {
			if (!ksm_exists(argv[i]))
				fail("this kernel has no KSM knob %s", argv[i]);
			show[nshow++] = argv[i];
		} else {
			usage_error("tune", "unknown knob '%s'", argv[i]);
		}
	}
	if (nset && nshow)
		usage_error("tune", "either show knobs (NAME) or set them (NAME=VALUE), not both");
	if (nset && json)
		usage_error("tune", "--json shows knobs; it does not set them");
	if (!nset) {
		show_knobs(show, nshow);
		return 0;
	}
	for (i = 0; i < nset; i++) {
		char path[PATH_MAX];

		if (!ksm_exists(set[i].name))
			fail("this kernel has no KSM knob %s", set[i].name);
		ksm_path(path, sizeof(path), set[i].name);
		if (access(path, W_OK))
			fail("setting %s needs root: %s", set[i].name,
			     errno_words(errno));
	}
	if (prof)
		printf("profile %s: %s\n", prof->name, prof->what);
	for (i = 0; i < nset; i++) {
		knob_value(set[i].name, before, sizeof(before));
		err = knob_write(set[i].name, set[i].value);
		if (err)
			fail("cannot set %s=%s: %s%s", set[i].name,
			     set[i].value, errno_words(err),
			     refusal_hint(set[i].name, err));
		knob_value(set[i].name, after, sizeof(after));
		printf("%s: %s -> %s\n", set[i].name, before, after);
	}
	return 0;
}

/* ---- run, enable/disable, estimate ------------------------------------ */

static noreturn void exec_cmd(char **argv)
{
	execvp(argv[0], argv);
	fflush(stdout);
	fprintf(stderr, "ksmctl: cannot run %s: %s\n", argv[0], strerror(errno));
	exit(errno == ENOENT ? 127 : 126);
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'D' },
		{ "new-domain", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long id = 0;
	bool domain = false, new_domain = false;
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'D':
			if (!parse_ull(optarg, &id) || id > INT_MAX)
				usage_error("run", "invalid domain ID '%s'", optarg);
			domain = true;
			break;
		case 'N':
			new_domain = true;
			break;
		case 'h':
			return -1;
		default:
			usage_error("run", "bad option '%s'", argv[optind - 1]);
		}
	}
	if (domain && new_domain)
		usage_error("run", "--domain and --new-domain exclude each other");
	if (optind >= argc)
		usage_error("run", "no command to run");
	if (domain || new_domain) {
		unsigned long arg = new_domain ?
			(unsigned long)PR_MEMORY_MERGE_DOMAIN_NEW : id;

		/* A fresh domain comes back as its (positive) id. */
		if (prctl(PR_SET_MEMORY_MERGE_DOMAIN, arg, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				fail("this kernel has no KSM merge domains support");
			fail("cannot set merge domain: %s", errno_words(errno));
		}
	}
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
		if (errno == EINVAL)
			fail("%s (prctl(PR_SET_MEMORY_MERGE): %s)",
			     "this kernel has no KSM", errno_words(EINVAL));
		fail("prctl(PR_SET_MEMORY_MERGE): %s", errno_words(errno));
	}
	exec_cmd(argv + optind);
}

/*
 * process_madvise(MADV_[UN]MERGEABLE) over every mapping of @pid, the way
 * its own madvise() would mark them (the kernel skips what KSM cannot
 * merge).  Returns the bytes advised; *@ranges gets the mapping count.
 */
static unsigned long long madvise_pid(const char *cmd, pid_t pid, bool on,
				      long *ranges)
{
	int advice = on ? MADV_MERGEABLE : MADV_UNMERGEABLE;
	struct iovec iov[512];
	char path[64], line[PATH_MAX + 256];
	unsigned long long bytes = 0;
	size_t n = 0;
	int pidfd;
	long ret;
	FILE *f;

	*ranges = 0;
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		if (errno == ESRCH)
			fail("no process %d", pid);
		fail("pidfd_open(%d): %s", pid, errno_words(errno));
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		fail("cannot read %s: %s", path, errno_words(errno));
	for (;;) {
		bool more = fgets(line, sizeof(line), f);
		unsigned long s, e;

		if (more) {
			if (sscanf(line, "%lx-%lx", &s, &e) != 2 ||
			    strstr(line, "[vsyscall]"))
				continue;
			iov[n].iov_base = (void *)s;
			iov[n].iov_len = e - s;
			if (++n < ARRAY_SIZE(iov))
				continue;
		}
		if (n) {
			ret = syscall(SYS_process_madvise, pidfd, iov, n,
				      advice, 0);
			if (ret < 0 && errno == EINVAL && !*ranges)
				fail("this kernel has no process_madvise(MADV_%sMERGEABLE) support",
				     on ? "" : "UN");
			if (ret < 0 && errno == EPERM)
				fail("%s: process_madvise(%d): %s (%s)", cmd,
				     pid, errno_words(EPERM),
				     "needs CAP_SYS_NICE and ptrace access");
			if (ret < 0)
				fail("%s: process_madvise(%d): %s", cmd, pid,
				     errno_words(errno));
			bytes += ret;
			*ranges += n;
			n = 0;
		}
		if (!more)
			break;
	}
	fclose(f);
	close(pidfd);
	return bytes;
}

static int cmd_enable(int argc, char **argv, bool on)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = on ? "enable" : "disable";
	unsigned long long bytes;
	pid_t pid = 0;
	long ranges;
	int c;

	while ((c = getopt_long(argc, argv, "+p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pid = parse_pid(cmd, optarg);
			break;
		case 'h':
			return -1;
		default:
			usage_error(cmd, "bad option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (!pid)
		usage_error(cmd, "which process? (-p PID)");
	bytes = madvise_pid(cmd, pid, on, &ranges);
	printf("%s KSM on %ld ranges (%.1f MiB) of process %d\n",
	       on ? "enabled" : "disabled", ranges, bytes / MIB, pid);
	return 0;
}

/* True if a mapping of @pid is mergeable already ("mg" in VmFlags). */
static bool pid_mergeable(pid_t pid)
{
	char path[64], line[512];
	bool mg = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!mg && fgets(line, sizeof(line), f))
		mg = !strncmp(line, "VmFlags:", 8) && strstr(line, " mg");
	fclose(f);
	return mg;
}

/* One number of /proc/@pid/ksm_stat; -1 if it is not there. */
static long long pid_stat(pid_t pid, const char *key)
{
	char path[64], line[128];
	size_t n = strlen(key);
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ' ')
			v = strtoll(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

/*
 * Estimate mode: what KSM would save for a process, without merging.  The
 * process (CMD, run with PR_SET_MEMORY_MERGE; or PID, opted in with
 * process_madvise() for the time of the estimate unless it is already)
 * is scanned for --scans full scans (3: the first may start part way, the
 * second records each page's hash, the third counts; as merging, which
 * needs the same scans to merge), then until two full scans in a row
 * agree, at most -d SECONDS.  KSM is put back as it was, and the estimate
 * stays readable in sysfs.
 */
static int cmd_estimate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "scans", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long long shared, sharing, zero, profit, mine = -1, scans0, done = 0;
	long long last = -1;
	pid_t opid = 0;
	double secs = 600, t0;
	pid_t pid = 0, child = 0;
	bool opted = false;
	long want = 3, ranges;
	char run0[32];
	int c, err;

	while ((c = getopt_long(argc, argv, "+p:d:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pid = parse_pid("estimate", optarg);
			break;
		case 'd':
			secs = parse_seconds("estimate", optarg, 0);
			break;
		case 's':
			want = parse_count("estimate", "scan count", optarg, 1);
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			return -1;
		default:
			usage_error("estimate", "bad option '%s'", argv[optind - 1]);
		}
	}
	if (!pid && optind >= argc)
		usage_error("estimate", "estimate what? (-p PID or a command)");
	if (pid && optind < argc)
		usage_error("estimate", "either -p PID or a command, not both");
	need_ksm();
	if (!ksm_exists("estimate"))
		fail("this kernel has no KSM estimate mode support");
	if (ksm_read_str("run", run0, sizeof(run0)))
		fail("cannot read %s/run: %s", ksm_dir, strerror(errno));
	err = knob_write("estimate", "1");
	if (err == EBUSY)
		fail("estimate: KSM pages exist, %s",
		     "unmerge them first ('ksmctl tune run=2')");
	if (err)
		fail("estimate: cannot set estimate=1: %s%s", errno_words(err),
		     refusal_hint("estimate", err));
	opid = pid;
	if (pid) {
		if (!pid_mergeable(pid)) {
			madvise_pid("estimate", pid, true, &ranges);
			opted = true;
		}
	} else {
		child = fork();
		if (child < 0)
			fail("fork: %s", strerror(errno));
		if (!child) {
			if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
				fail("prctl(PR_SET_MEMORY_MERGE): %s",
				     errno_words(errno));
			exec_cmd(argv + optind);
		}
		pid = child;
	}
	if (strcmp(run0, "1"))
		knob_write("run", "1");
	/* Count the scans from ksmd's first look at the process. */
	t0 = now();
	while (now() - t0 < secs && pid_stat(pid, "ksm_rmap_items") <= 0 &&
	       !kill(pid, 0))
		sleep_for(0.05);
	scans0 = ksm_get("full_scans");
	/*
	 * Then on until two full scans in a row agree: a process still
	 * filling its memory when counting began gets a stable estimate.
	 */
	while (now() - t0 < secs) {
		long long f = ksm_get("full_scans");
		long long est = ksm_get("estimate_pages_sharing") +
				ksm_get("estimate_zero_pages");

		/* run=2 by somebody else restarts the count */
		if (f < scans0)
			scans0 = f;
		if (f - scans0 > done) {
			if (f - scans0 > want && est == last)
				break;
			last = est;
		}
		done = f - scans0;
		/* CMD exited (reaped here, so that kill() sees it gone) */
		if (child && waitpid(child, NULL, WNOHANG) == child)
			child = 0;
		if ((!child && pid != opid) || kill(pid, 0))
			break;
		sleep_for(0.1);
	}
	/* No more counting: the numbers below are of one full scan. */
	knob_write("estimate", "0");
	if (kill(pid, 0) == 0)
		mine = pid_stat(pid, "ksm_estimate_saved_bytes");
	shared = ksm_get("estimate_pages_shared");
	sharing = ksm_get("estimate_pages_sharing");
	zero = ksm_get("estimate_zero_pages");
	profit = ksm_get("estimate_profit");
	if (opted && kill(pid, 0) == 0)
		madvise_pid("estimate", pid, false, &ranges);
	if (child) {
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	if (strcmp(run0, "1"))
		knob_write("run", run0);
	if (json) {
		j_begin();
		j_int("pid", pid);
		j_int("full_scans", done);
		j_dbl("seconds", now() - t0, true);
		j_int("scans_wanted", want);
		j_int("process_saved_bytes", mine);
		j_int("pages_shared", shared);
		j_int("pages_sharing", sharing);
		j_int("zero_pages", zero);
		j_int("profit_bytes", profit);
		j_close('}');
		putchar('\n');
	} else {
		printf("estimate after %lld full scans (%.1f s):\n", done,
		       now() - t0);
		if (mine >= 0)
			printf("  process %d would save %.1f MiB\n", pid,
			       mine / MIB);
		else
			printf("  process %d exited before the end\n", pid);
		printf("  system: %lld pages on %lld KSM pages, %lld zero pages",
		       sharing + shared, shared, zero);
		printf(": %.1f MiB saved, %.1f MiB net of metadata\n",
		       (sharing + zero) * (double)page_size / MIB,
		       profit / MIB);
	}
	if (done < want)
		fail("estimate: only %lld of %ld full scans in %.0f s: %s",
		     done, want, secs,
		     "incomplete (raise pages_to_scan, or -d)");
	return 0;
}

/* ---- main ------------------------------------------------------------- */

static const char *const helps[] = {
	"status: KSM's state, saving, counters, scan speed and ksmd CPU, with\n"
	"  warnings. Samples the counters for -d SECONDS (default 1; 0: no\n"
	"  sample, so no scan rate or CPU) to measure the scan rate, ksmd CPU\n"
	"  and how long a full scan takes (measured when two end within the\n"
	"  sample, else estimated from the rate).",
	"top: processes by KSM saving: pid, command, merging pages, zero pages,\n"
	"  saved MiB, profit, tracking items and how the memory was made\n"
	"  mergeable (prctl or madvise). Shows -n N processes (20), refreshes\n"
	"  every -d SECONDS (2) until interrupted or -c COUNT frames; --once\n"
	"  prints one frame for scripts. Other users' processes need root.",
	"watch: one line every -d SECONDS (1): time, saved MiB, pages shared,\n"
	"  sharing and zero, scan rate (pages/s) and ksmd CPU %, until\n"
	"  interrupted or -c COUNT lines.",
	"tune: with no NAME, show every knob; NAME shows one; NAME=VALUE sets\n"
	"  it (as root), printing 'NAME: BEFORE -> AFTER'. Every value is\n"
	"  checked before anything is written. --profile sets a group:\n"
	"    vm-host  scan-time advisor, 120 s target, 50% CPU, use_zero_pages=1\n"
	"    workers  advisor off, pages_to_scan=4000, sleep_millisecs=20\n"
	"    laptop   advisor off, pages_to_scan=100, sleep_millisecs=200",
	"run: run CMD with KSM enabled for it and its children\n"
	"  (prctl(PR_SET_MEMORY_MERGE), as systemd's MemoryKSM=), in merge\n"
	"  domain ID or a new one if the kernel has merge domains.",
	"enable: make a running process's memory mergeable\n"
	"  (process_madvise(MADV_MERGEABLE); needs kernel support).",
	"disable: unmerge a running process's memory\n"
	"  (process_madvise(MADV_UNMERGEABLE); needs kernel support).",
	"estimate: how much KSM would save for a process or a command, without\n"
	"  merging (estimate mode; needs kernel support and no KSM page yet):\n"
	"  --scans N full scans (3), then until two agree, at most -d SECONDS\n"
	"  (600). A PID is opted in with process_madvise() meanwhile.",
};

static const char help_tail[] =
	"Read commands take --json. Exit status: 0 ok, 1 error, 2 bad arguments.\n"
	"See the ksmctl section of Documentation/admin-guide/mm/ksm.rst.\n";

static void show_help(FILE *f, const char *cmd)
{
	size_t i;

	if (cmd) {
		for (i = 0; i < ARRAY_SIZE(usages); i++) {
			if (usages[i] != usage_of(cmd))
				continue;
			fprintf(f, "usage: ksmctl %s\n%s\n", usages[i], helps[i]);
			fputs(help_tail, f);
			return;
		}
	}
	fprintf(f, "usage: ksmctl COMMAND [OPTIONS]  (ksmctl COMMAND --help)\n"
		"Show, watch and tune Kernel Samepage Merging (KSM).\n\n");
	for (i = 0; i < ARRAY_SIZE(usages); i++)
		fprintf(f, "  ksmctl %s\n", usages[i]);
	fputc('\n', f);
	fputs(help_tail, f);
}

int main(int argc, char **argv)
{
	const char *cmd, *env = getenv("KSMCTL_SYSFS");
	int ret;

	if (env && *env)
		ksm_dir = env;
	page_size = sysconf(_SC_PAGESIZE);
	opterr = 0;
	if (argc < 2)
		usage_error(NULL, "no command");
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") ||
	    !strcmp(cmd, "help")) {
		if (argc > 2 && !usage_of(argv[2]))
			usage_error(NULL, "unknown command '%s'", argv[2]);
		show_help(stdout, argc > 2 ? argv[2] : NULL);
		return 0;
	}
	if (!usage_of(cmd))
		usage_error(NULL, "unknown command '%s'", cmd);
	argc--;
	argv++;
	optind = 0;
	if (!strcmp(cmd, "status"))
		ret = cmd_status(argc, argv);
	else if (!strcmp(cmd, "top"))
		ret = cmd_top(argc, argv);
	else if (!strcmp(cmd, "watch"))
		ret = cmd_watch(argc, argv);
	else if (!strcmp(cmd, "tune"))
		ret = cmd_tune(argc, argv);
	else if (!strcmp(cmd, "run"))
		ret = cmd_run(argc, argv);
	else if (!strcmp(cmd, "enable"))
		ret = cmd_enable(argc, argv, true);
	else if (!strcmp(cmd, "disable"))
		ret = cmd_enable(argc, argv, false);
	else
		ret = cmd_estimate(argc, argv);
	if (ret < 0) {
		show_help(stdout, cmd);
		ret = 0;
	}
	return ret;
}
