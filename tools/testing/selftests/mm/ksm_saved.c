// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: /proc/PID/ksm_stat's ksm_saved_bytes gives each process
 * its fair share of the saving (a page that is one of k mapping a KSM page
 * saves (k - 1) / k of a page, a KSM zero page a whole one, less its items'
 * metadata), so that summed over all processes it equals general_profit
 * within 1%.  Processes share unequally, a group is larger than
 * max_page_sharing (chains), and zero pages are merged.  Skips on a
 * kernel without the line (upstream).
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
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest.h"
#include "ksm_common.h"

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

#define WAIT_S		180	/* bound only: TCG under load is slow */
#define NPROC		3
#define MAX_SHARING	16

/* pages of content X, of content Y, zero pages, unique pages */
static const int layout[NPROC][4] = {
	{ 40, 0, 8, 0 },
	{ 24, 0, 0, 4 },
	{ 0, 8, 8, 8 },
};

static size_t page_size;
static int *ready;

static void child(int idx)
{
	const int *l = layout[idx];
	int n = l[0] + l[1] + l[2] + l[3], i = 0;
	char *p = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(1);
	madvise(p, n * page_size, MADV_NOHUGEPAGE);
	for (int j = 0; j < l[0]; j++)
		ksm_fill_page(p + i++ * page_size, 111);
	for (int j = 0; j < l[1]; j++)
		ksm_fill_page(p + i++ * page_size, 222);
	for (int j = 0; j < l[2]; j++) {
		ksm_fill_page(p + i * page_size, 333);
		memset(p + i++ * page_size, 0, page_size);
	}
	for (int j = 0; j < l[3]; j++)
		ksm_fill_page(p + i++ * page_size, 1000 + idx * 100 + j);
	if (madvise(p, n * page_size, MADV_MERGEABLE))
		_exit(1);
	WRITE_ONCE(ready[idx], 1);
	for (;;)
		pause();
}

static long field_of(pid_t pid, const char *key)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	return ksm_file_field(path, key, ' ');
}

static bool merged(void *arg)
{
	(void)arg;
	/* X: 64 pages in 4 KSM pages; Y: 8 in 1; 16 zero pages */
	return ksm_read("pages_shared") == 5 &&
	       ksm_read("pages_sharing") == 64 - 4 + 8 - 1 &&
	       ksm_read("ksm_zero_pages") == 16;
}

int main(void)
{
	struct ksm_knobs saved;
	pid_t pid[NPROC];
	long sum = 0, profit, old_sum = 0;
	int ret = KSFT_PASS;

	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable (not root, or no KSM)\n");
	if (ksm_stat_field("ksm_saved_bytes") < 0)
		ksft_exit_skip("no ksm_saved_bytes in /proc/self/ksm_stat\n");
	ksft_set_plan(1);
	ready = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ready == MAP_FAILED || !ksm_begin(&saved, WAIT_S))
		ksft_exit_fail_msg("setup failed\n");
	ksm_write("use_zero_pages", 1);
	ksm_write("max_page_sharing", MAX_SHARING);

	for (int i = 0; i < NPROC; i++) {
		pid[i] = fork();
		if (!pid[i])
			child(i);
	}
	for (int i = 0; i < NPROC; i++)
		while (!READ_ONCE(ready[i]))
			usleep(10000);
	if (!ksm_wait_for(merged, NULL, WAIT_S) || !ksm_wait_scans(2, WAIT_S)) {
		ksft_print_msg("not merged: shared %ld sharing %ld zero %ld\n",
			       ksm_read("pages_shared"), ksm_read("pages_sharing"),
			       ksm_read("ksm_zero_pages"));
		ret = KSFT_FAIL;
	}
	/* Counters settle once every page was seen twice: read them twice. */
	for (int round = 0; round < 2 && ret == KSFT_PASS; round++) {
		sum = 0;
		old_sum = 0;
		for (int i = 0; i < NPROC; i++) {
			long s = field_of(pid[i], "ksm_saved_bytes");
			long o = field_of(pid[i], "ksm_process_profit");

			ksft_print_msg("pid %d: ksm_saved_bytes %ld ksm_process_profit %ld\n",
				       pid[i], s, o);
			sum += s;
			old_sum += o;
		}
		profit = ksm_read("general_profit");
		ksft_print_msg("sum %ld, upstream's per-process sum %ld, general_profit %ld\n",
			       sum, old_sum, profit);
		if (round)
			break;
		ksm_wait_scans(1, WAIT_S);
	}
	if (ret == KSFT_PASS &&
	    (profit <= 0 || labs(sum - profit) * 100 > profit)) {
		ksft_print_msg("the fair shares do not add up to general_profit\n");
		ret = KSFT_FAIL;
	}
	for (int i = 0; i < NPROC; i++) {
		kill(pid[i], SIGKILL);
		waitpid(pid[i], NULL, 0);
	}
	ksm_report(ret, "ksm_saved_bytes sums to general_profit within 1%");
	ksm_restore(&saved);
	ksft_finished();
}
