// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: opting a running process in and out of KSM with
 * process_madvise(pidfd, iov, n, MADV_MERGEABLE / MADV_UNMERGEABLE, 0).
 * The target never calls madvise() or prctl().  Without CAP_SYS_NICE the
 * call gets EPERM, with flags EINVAL, and neither marks a VMA.  Opted in,
 * its private anonymous VMA is marked "mg" exactly as its own madvise()
 * would, its MAP_SHARED one is not (the same exclusions), and its
 * duplicates merge; opted out, they are unmerged and the mark is gone,
 * and the target finds every byte as it wrote it.  Skips on a kernel
 * whose process_madvise() refuses these advices (upstream 6.12).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_common.h"

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

#define WAIT_S		180	/* bound only: TCG under load is slow */
#define DUPS		32	/* identical private pages */
#define UNIQUE		32
#define SHARED_PAGES	8	/* identical, but MAP_SHARED: never merged */

struct board {
	uintptr_t priv, shrd;
	int ready;
};

static size_t page_size;
static struct board *bd;
static sig_atomic_t check_now;

static void on_usr1(int sig)
{
	(void)sig;
	check_now = 1;
}

/* The target: writes its pages, then waits to be told to check them. */
static void target(void)
{
	size_t n = DUPS + UNIQUE;
	char *p = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q = mmap(NULL, SHARED_PAGES * page_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || q == MAP_FAILED)
		_exit(3);
	signal(SIGUSR1, on_usr1);
	/* Small pages only: the region must not become one THP. */
	if (madvise(p, n * page_size, MADV_NOHUGEPAGE) && errno != EINVAL)
		_exit(3);
	for (size_t i = 0; i < n; i++)
		ksm_fill_page(p + i * page_size, i < DUPS ? 7 : 100 + i);
	for (size_t i = 0; i < SHARED_PAGES; i++)
		ksm_fill_page(q + i * page_size, 7);
	bd->priv = (uintptr_t)p;
	bd->shrd = (uintptr_t)q;
	WRITE_ONCE(bd->ready, 1);
	while (!READ_ONCE(check_now))
		pause();
	for (size_t i = 0; i < n; i++)
		if (!ksm_check_page(p + i * page_size, i < DUPS ? 7 : 100 + i,
				    "target", i))
			_exit(1);
	_exit(0);
}

/*
 * The VmFlags of the target's VMA at @addr: 1 if it has "mg", 0 if not,
 * -1 if the VMA is not found.
 */
static int vma_mergeable(pid_t pid, uintptr_t addr)
{
	char path[64], line[512];
	bool in = false;
	int mg = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			in = addr >= s && addr < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			mg = !!strstr(line, " mg");
			break;
		}
	}
	fclose(f);
	return mg;
}

static long stat_of(pid_t pid, const char *key)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	return ksm_file_field(path, key, ' ');
}

static long pmadvise(int pidfd, uintptr_t addr, size_t len, int advice,
		     unsigned int flags)
{
	struct iovec iov = { .iov_base = (void *)addr, .iov_len = len };

	return syscall(SYS_process_madvise, pidfd, &iov, 1, advice, flags);
}

/* In a child without CAP_SYS_NICE: the errno of opting the target in. */
static int errno_without_sys_nice(int pidfd)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (!pid) {
		if (syscall(SYS_capget, &hdr, data))
			_exit(255);
		data[0].effective &= ~(1U << CAP_SYS_NICE);
		data[0].permitted &= ~(1U << CAP_SYS_NICE);
		if (syscall(SYS_capset, &hdr, data))
			_exit(255);
		if (pmadvise(pidfd, bd->priv, (DUPS + UNIQUE) * page_size,
			     MADV_MERGEABLE, 0) >= 0)
			_exit(0);
		_exit(errno);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static pid_t tpid;

static bool merged(void *arg)
{
	(void)arg;
	return stat_of(tpid, "ksm_merging_pages") == DUPS;
}

static bool unmerged(void *arg)
{
	(void)arg;
	return stat_of(tpid, "ksm_merging_pages") == 0;
}

int main(void)
{
	size_t plen, slen;
	struct ksm_knobs saved;
	int ret = KSFT_PASS, pidfd, err, status;
	long r;

	page_size = sysconf(_SC_PAGESIZE);
	plen = (DUPS + UNIQUE) * page_size;
	slen = SHARED_PAGES * page_size;
	ksft_print_header();
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable (not root, or no KSM)\n");
	bd = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (bd == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	tpid = fork();
	if (tpid < 0)
		ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	if (!tpid)
		target();
	while (!READ_ONCE(bd->ready))
		usleep(10000);
	pidfd = syscall(SYS_pidfd_open, tpid, 0);
	if (pidfd < 0)
		ksft_exit_fail_msg("pidfd_open: %s\n", strerror(errno));

	/* Upstream checks the advice first: EINVAL means no support. */
	err = errno_without_sys_nice(pidfd);
	if (err == EINVAL) {
		kill(tpid, SIGKILL);
		waitpid(tpid, NULL, 0);
		ksft_exit_skip("process_madvise() refuses MADV_MERGEABLE\n");
	}
	ksft_set_plan(4);
	if (!ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("setup failed\n");

	r = pmadvise(pidfd, bd->priv, plen, MADV_MERGEABLE, 1);
	ksm_report(err == EPERM && r == -1 && errno == EINVAL &&
		   vma_mergeable(tpid, bd->priv) == 0 &&
		   stat_of(tpid, "ksm_rmap_items") <= 0 ? KSFT_PASS : KSFT_FAIL,
		   "EPERM without CAP_SYS_NICE, EINVAL with flags, nothing marked");
	if (err != EPERM)
		ksft_print_msg("without CAP_SYS_NICE: errno %d, want EPERM\n", err);

	r = pmadvise(pidfd, bd->priv, plen, MADV_MERGEABLE, 0);
	if (r != (long)plen ||
	    pmadvise(pidfd, bd->shrd, slen, MADV_MERGEABLE, 0) != (long)slen) {
		ksft_print_msg("process_madvise(MADV_MERGEABLE): %ld, %s\n", r,
			       strerror(errno));
		ret = KSFT_FAIL;
	}
	if (vma_mergeable(tpid, bd->priv) != 1 ||
	    vma_mergeable(tpid, bd->shrd) != 0) {
		ksft_print_msg("VmFlags mg: private %d (want 1), shared %d (want 0)\n",
			       vma_mergeable(tpid, bd->priv),
			       vma_mergeable(tpid, bd->shrd));
		ret = KSFT_FAIL;
	}
	ksm_report(ret, "marked as its own madvise() marks: private yes, shared no");

	ret = ksm_wait_for(merged, NULL, WAIT_S) ? KSFT_PASS : KSFT_FAIL;
	if (ret != KSFT_PASS)
		ksft_print_msg("target: ksm_merging_pages %ld, want %d\n",
			       stat_of(tpid, "ksm_merging_pages"), DUPS);
	ksm_report(ret, "a process that never asked is merged once opted in");

	r = pmadvise(pidfd, bd->priv, plen, MADV_UNMERGEABLE, 0);
	ret = r == (long)plen && ksm_wait_for(unmerged, NULL, 10) &&
	      vma_mergeable(tpid, bd->priv) == 0 ? KSFT_PASS : KSFT_FAIL;
	if (ret != KSFT_PASS)
		ksft_print_msg("MADV_UNMERGEABLE: %ld, merging pages %ld, mg %d\n",
			       r, stat_of(tpid, "ksm_merging_pages"),
			       vma_mergeable(tpid, bd->priv));
	kill(tpid, SIGUSR1);
	if (waitpid(tpid, &status, 0) != tpid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		ksft_print_msg("target: status %#x (1: its data changed)\n",
			       status);
		ret = KSFT_FAIL;
	}
	ksm_report(ret, "opted out: unmerged, unmarked, every byte intact");
	close(pidfd);
	ksm_restore(&saved);
	ksft_finished();
}
