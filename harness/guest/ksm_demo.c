// SPDX-License-Identifier: GPL-2.0
/*
 * `make run` demonstration, in acts that mirror who uses KSM:
 *
 *   workers  a service started under `ksmctl run` (PR_SET_MEMORY_MERGE,
 *            inherited over fork) forks workers that each load the same
 *            data set, as forked web or ML workers do;
 *   vms      "virtual machines": processes whose guest RAM is marked
 *            MADV_MERGEABLE, as QEMU does, mostly identical (the same
 *            guest kernel and libraries), partly free (zero) memory and
 *            partly each guest's own.
 *
 * Each act tunes KSM with a ksmctl profile, shows `ksmctl watch` lines
 * while ksmd merges, then `ksmctl top --once`, and a one-line result.
 * Every second it also prints a "@@KSMT data" line, which the host keeps
 * for the picture and does not show.  Exits 0 when every act reached the
 * saving its workload implies.
 *
 *   qemu     real QEMU guests (TCG) inside this guest, booting the same
 *            kernel: QEMU marks guest RAM mergeable itself (needs the
 *            QEMU that `make run VMS=1` adds to the initramfs).
 *
 * Usage: ksm_demo [ACT,...]     (default: workers,vms)
 */
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include "ksm_common.h"
#include "nested_vm.h"

#define ACT_SECONDS	150	/* give up on an act after this */
#define READY_SECONDS	120	/* the workload must be in memory by then */
#define QEMU_MIB	128	/* RAM of each nested guest */
#define QEMU_SECONDS	600	/* TCG inside TCG: booting takes minutes */
#define QEMU_MIN_MIB	16	/* at least this much of their kernels merges */

struct act {
	const char *name;
	const char *title;
	const char *profile;	/* ksmctl tune --profile */
	bool prctl;		/* started under `ksmctl run`, else madvise */
	int nproc;
	int same_mib;		/* identical in every process */
	int zero_mib;		/* never written but zero-filled */
	int own_mib;		/* different in every page */
	const char *comm;	/* what ksmctl top shows */
	bool qemu;		/* real QEMU guests (make run VMS=1) */
};

static const struct act acts[] = {
	{ "workers",
	  "forked workers that load the same data (the Instagram pattern)",
	  "workers", true, 8, 64, 8, 8, "worker" },
	{ "vms",
	  "virtual machines with mostly identical guest memory (QEMU marks it MADV_MERGEABLE)",
	  "vm-host", false, 4, 96, 64, 32, "vm" },
	{ "qemu",
	  "real QEMU guests (TCG) booting the same kernel; QEMU marks their RAM mergeable itself",
	  "vm-host", false, 3, 0, 0, QEMU_MIB, "qemu", true },
};

static long page_size;
static char self[256];

/* Page @pg of the shared data set, or of process @proc's own memory. */
static void fill(char *p, size_t len, uint64_t salt)
{
	for (size_t off = 0; off < len; off += page_size) {
		uint64_t *w = (uint64_t *)(p + off);
		uint64_t x = (salt + off / page_size) * 0x9e3779b97f4a7c15ULL;

		for (size_t i = 0; i < page_size / sizeof(*w); i++) {
			x ^= x >> 29;
			x *= 0xbf58476d1ce4e5b9ULL;
			w[i] = x;
		}
	}
}

#define QEMU_LOGS	"/tmp/qemu-"	/* nested_vm.h: /tmp/qemu-<i>.log */

/* A nested guest (see nested_vm.h). */
static void qemu_member(int proc, int ready_fd)
{
	char log[64];

	nested_vm_log(log, sizeof(log), QEMU_LOGS, proc);
	unlink(log);
	if (write(ready_fd, "x", 1) != 1)
		_exit(3);
	close(ready_fd);
	nested_vm_exec(QEMU_LOGS, proc, QEMU_MIB);
	_exit(127);
}

/* Every nested guest's QEMU opened its serial log. */
static bool qemu_started(int n)
{
	char path[64];

	for (int i = 0; i < n; i++) {
		nested_vm_log(path, sizeof(path), QEMU_LOGS, i);
		if (access(path, F_OK))
			return false;
	}
	return true;
}

/* One process of an act: map, opt in, load, report ready, wait. */
static void act_member(const struct act *a, int proc, int ready_fd)
{
	size_t same = (size_t)a->same_mib << 20, zero = (size_t)a->zero_mib << 20;
	size_t own = (size_t)a->own_mib << 20, len = same + zero + own;
	char name[16];
	char *p;

	if (a->qemu)
		qemu_member(proc, ready_fd);
	snprintf(name, sizeof(name), "%s-%d", a->comm, proc);
	prctl(PR_SET_NAME, name, 0, 0, 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(1);
	/* QEMU's way; the workers inherited PR_SET_MEMORY_MERGE instead. */
	if (!a->prctl && madvise(p, len, MADV_MERGEABLE))
		_exit(2);
	/*
	 * Small pages for the zero part: a zero-filled THP that KSM splits
	 * has its zero subpages remapped to the shared zero page by the THP
	 * code itself, which ksm_zero_pages does not count.
	 */
	madvise(p + same, zero, MADV_NOHUGEPAGE);
	fill(p, same, 1);
	memset(p + same, 0, zero);
	fill(p + same + zero, own, (uint64_t)(proc + 2) << 40);
	if (write(ready_fd, "x", 1) != 1)
		_exit(3);
	for (;;)
		pause();
}

/* `ksm_demo --act NAME FD`: the act's parent, forks its members. */
static int act_main(const char *name, int ready_fd)
{
	for (size_t i = 0; i < ARRAY_SIZE(acts); i++) {
		const struct act *a = &acts[i];

		if (strcmp(a->name, name))
			continue;
		prctl(PR_SET_NAME, a->prctl ? "service" : "vm-launcher", 0, 0, 0);
		for (int p = 0; p < a->nproc; p++)
			if (!fork())
				act_member(a, p, ready_fd);
		for (;;)
			pause();
	}
	return 2;
}

static long ksmd_ticks(void)
{
	static char path[300];
	char buf[512], *s;
	long ut = 0, st = 0;
	FILE *f;

	if (!path[0]) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char p[300], comm[64] = "";

			snprintf(p, sizeof(p), "/proc/%s/comm", e->d_name);
			f = fopen(p, "r");
			if (!f)
				continue;
			if (fgets(comm, sizeof(comm), f) && !strcmp(comm, "ksmd\n"))
				snprintf(path, sizeof(path), "/proc/%s/stat",
					 e->d_name);
			fclose(f);
		}
		if (d)
			closedir(d);
	}
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f)) {
		s = strrchr(buf, ')');
		if (s)
			sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld",
			       &ut, &st);
	}
	fclose(f);
	return ut + st;
}

/* Run a ksmctl command to completion, its output indented. */
static int ksmctl(const char *args)
{
	char cmd[256], line[512];
	FILE *f;
	int rc;

	snprintf(cmd, sizeof(cmd), "ksmctl %s 2>&1", args);
	printf("$ ksmctl %s\n", args);
	fflush(stdout);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		printf("  %s", line);
	rc = pclose(f);
	fflush(stdout);
	return rc;
}

/* Start `ksmctl watch -d 1`; its output comes back on *@out. */
static pid_t start_watch(FILE **out)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execlp("ksmctl", "ksmctl", "watch", "-d", "1", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	*out = fdopen(fds[0], "r");
	return pid;
}

static long saved_pages(void)
{
	long zero = ksm_read("ksm_zero_pages");

	return ksm_read("pages_sharing") + (zero > 0 ? zero : 0);
}

struct result {
	double saved_mib, expect_mib, t90, cpu_s, secs;
	bool ok;
};

/* Wait for @n ready bytes on @fd, at most READY_SECONDS. */
static bool wait_ready(int fd, int n)
{
	double end = ksm_now() + READY_SECONDS;
	char c;

	while (n > 0 && ksm_now() < end) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, 1000) == 1 && read(fd, &c, 1) == 1)
			n--;
	}
	return n == 0;
}

static bool run_act(const struct act *a, int no, int nacts, struct result *res)
{
	long mib_pages = (1 << 20) / page_size, expect, zero;
	double limit = a->qemu ? QEMU_SECONDS : ACT_SECONDS;
	double samples_t[QEMU_SECONDS + 8], t0, now;
	long samples_v[QEMU_SECONDS + 8];
	int up = 0;
	long ticks0, last = -1, scans_at_change = 0, scans_up = -1, v = 0;
	int fds[2], ns = 0;
	char fdarg[16], args[64], line[512];
	pid_t grp, watch;
	FILE *w = NULL;

	memset(res, 0, sizeof(*res));
	printf("\n=== act %d/%d: %s ===\n", no, nacts, a->title);
	/* Real guests: nobody knows the saving before; a floor. */
	if (a->qemu) {
		expect = (long)QEMU_MIN_MIB * ((1 << 20) / page_size);
		printf("%d guests x %d MiB, each booting the kernel of this guest; several minutes under TCG\n",
		       a->nproc, QEMU_MIB);
	} else {
		printf("%d processes x (%d MiB identical + %d MiB zero + %d MiB their own), %s\n",
		       a->nproc, a->same_mib, a->zero_mib, a->own_mib,
		       a->prctl ? "started with `ksmctl run` (PR_SET_MEMORY_MERGE)" :
				  "guest RAM madvise(MADV_MERGEABLE)");
	}
	snprintf(args, sizeof(args), "tune --profile %s", a->profile);
	ksmctl(args);
	/*
	 * k copies of a page save k - 1, but max_page_sharing caps a KSM
	 * page's sharers; zero pages, all alike, go to the zero page with
	 * use_zero_pages=1 and to KSM pages otherwise.
	 */
	zero = (long)a->nproc * a->zero_mib * mib_pages;
	if (!a->qemu && ksm_read("use_zero_pages") != 1 && zero) {
		long mps = ksm_read("max_page_sharing");

		zero -= mps > 1 ? (zero + mps - 1) / mps : 1;
	}
	expect = (long)(a->nproc - 1) * a->same_mib * mib_pages + zero;
	if (pipe(fds))
		return false;
	snprintf(fdarg, sizeof(fdarg), "%d", fds[1]);
	fflush(stdout);
	grp = fork();
	if (grp == 0) {
		setpgid(0, 0);
		close(fds[0]);
		if (a->prctl)
			execlp("ksmctl", "ksmctl", "run", "--", self, "--act",
			       a->name, fdarg, (char *)NULL);
		else
			execl(self, self, "--act", a->name, fdarg, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	printf("loading %d MiB...\n", a->nproc *
	       (a->same_mib + a->zero_mib + a->own_mib));
	fflush(stdout);
	if (!wait_ready(fds[0], a->nproc)) {
		printf("error: the %s workload did not load within %d s\n",
		       a->name, READY_SECONDS);
		kill(-grp, SIGKILL);
		waitpid(grp, NULL, 0);
		close(fds[0]);
		return false;
	}
	close(fds[0]);
	if (a->qemu)
		printf("%d guests started; ksmd starts (run=1)\n", a->nproc);
	else
		printf("%s loaded; merging %.0f MiB is possible: ksmd starts (run=1)\n",
		       a->name, expect * page_size / 1048576.0);
	ticks0 = ksmd_ticks();
	t0 = ksm_now();
	ksm_write("run", 1);
	watch = start_watch(&w);
	for (;;) {
		if (!w || !fgets(line, sizeof(line), w))
			break;
		printf("  %s", line);
		now = ksm_now() - t0;
		v = saved_pages();
		if (ns < (int)ARRAY_SIZE(samples_v)) {
			samples_t[ns] = now;
			samples_v[ns++] = v;
		}
		printf("@@KSMT data act=%s t=%.1f saved_mib=%.2f cpu_s=%.2f\n",
		       a->name, now, v * page_size / 1048576.0,
		       (double)(ksmd_ticks() - ticks0) / sysconf(_SC_CLK_TCK));
		fflush(stdout);
		if (!strncmp(line, "    time", 8))
			continue;
		if (a->qemu) {
			int now_up = nested_vms_up(QEMU_LOGS, a->nproc);

			if (now_up > up)
				printf("%d of %d guests up after %.0f s\n",
				       now_up, a->nproc, now);
			up = now_up;
			/*
			 * Running guests keep changing their memory: stop
			 * three full scans after the last one is up.
			 */
			if (up == a->nproc && scans_up < 0)
				scans_up = ksm_read("full_scans");
			else if (up == a->nproc &&
				 ksm_read("full_scans") >= scans_up + 3)
				break;
			if (now > 60 && !qemu_started(a->nproc)) {
				printf("error: QEMU did not start (no serial log in /tmp)\n");
				break;
			}
			if (now > limit)
				break;
			continue;
		} else if (v >= expect) {
			break;
		}
		/* Settled short of it: no progress over three full scans. */
		if (v != last) {
			last = v;
			scans_at_change = ksm_read("full_scans");
		} else if (v > 0 && ksm_read("full_scans") >= scans_at_change + 3) {
			break;
		}
		if (now > limit)
			break;
	}
	if (watch > 0) {
		kill(watch, SIGTERM);
		waitpid(watch, NULL, 0);
	}
	if (w)
		fclose(w);
	res->secs = ksm_now() - t0;
	res->cpu_s = (double)(ksmd_ticks() - ticks0) / sysconf(_SC_CLK_TCK);
	res->saved_mib = v * page_size / 1048576.0;
	res->expect_mib = expect * page_size / 1048576.0;
	res->t90 = -1;
	for (int i = 0; i < ns; i++)
		if (samples_v[i] >= 0.9 * v && v > 0) {
			res->t90 = samples_t[i];
			break;
		}
	/* 98%: the odd page a process rewrote meanwhile may be missing */
	res->ok = v >= expect * 0.98;
	ksmctl("top --once -n 10");
	printf("act %s: saved %.1f of %.1f MiB in %.0f s (90%% after %.0f s), ksmd %.1f s CPU%s\n",
	       a->name, res->saved_mib, res->expect_mib, res->secs, res->t90,
	       res->cpu_s, res->ok ? "" : "  <- short of the expected saving");
	kill(-grp, SIGKILL);
	waitpid(grp, NULL, 0);
	/* The next act starts from nothing merged. */
	if (!ksm_settle(120))
		printf("error: run=2 left pages shared after the %s act\n",
		       a->name);
	ksm_write("run", 0);
	fflush(stdout);
	return true;
}

int main(int argc, char **argv)
{
	const struct act *todo[ARRAY_SIZE(acts)];
	struct result res[ARRAY_SIZE(acts)];
	char list[128] = "workers,vms";
	struct ksm_knobs saved;
	double total = 0;
	int n = 0, ok = 1;
	ssize_t len;

	page_size = sysconf(_SC_PAGESIZE);
	if (argc == 4 && !strcmp(argv[1], "--act"))
		return act_main(argv[2], atoi(argv[3]));
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: ksm_demo [ACT,...]   (acts: workers, vms, qemu)\n");
		return 2;
	}
	if (argc == 2)
		snprintf(list, sizeof(list), "%s", argv[1]);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return 1;
	self[len] = '\0';
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		const struct act *found = NULL;

		for (size_t i = 0; i < ARRAY_SIZE(acts); i++)
			if (!strcmp(acts[i].name, tok))
				found = &acts[i];
		if (!found || n == (int)ARRAY_SIZE(todo)) {
			fprintf(stderr, "ksm_demo: no act '%s' (acts: workers, vms, qemu; each once)\n",
				tok);
			return 2;
		}
		todo[n++] = found;
	}
	ksm_save(&saved);
	if (!ksm_settle(120))
		printf("error: pages still shared before the demo\n");
	ksm_write("run", 0);
	printf("KSM demo: %d act%s; `ksmctl watch` prints one line a second while ksmd merges\n",
	       n, n == 1 ? "" : "s");
	ksmctl("status");
	for (int i = 0; i < n; i++) {
		if (!run_act(todo[i], i + 1, n, &res[i]))
			res[i].ok = false;
		ok &= res[i].ok;
	}
	printf("\nsummary:\n  %-8s %10s %10s %8s %8s %10s\n", "act", "saved_MiB",
	       "expected", "secs", "90%_at", "ksmd_cpu_s");
	for (int i = 0; i < n; i++) {
		printf("  %-8s %10.1f %10.1f %8.0f %8.0f %10.1f%s\n",
		       todo[i]->name, res[i].saved_mib, res[i].expect_mib,
		       res[i].secs, res[i].t90, res[i].cpu_s,
		       res[i].ok ? "" : "  short");
		total += res[i].saved_mib;
	}
	printf("  saved %.1f MiB in all; %s\n", total,
	       ok ? "every act reached its expected saving" :
		    "NOT every act reached its expected saving");
	fflush(stdout);
	ksm_restore(&saved);
	return ok ? 0 : 1;
}
