// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: no process can keep another's identical pages from
 * merging by flooding the trees with pages whose hash collides with
 * theirs.  XXH64's round is invertible in its input lane, so knowing the
 * seed, distinct pages with the hash of any known content take
 * microseconds to make.  An attacker holds 16 pairs and 16 singletons of
 * such pages, registered first; then a victim with 200 copies of that
 * content must still end up with all 200 in one frame.  Done for a
 * 0x5a-filled page and for the zero page (use_zero_pages=0).
 *
 * Our debug kernels let the test set the seed (debugfs ksm/hash_seed); a
 * kernel without that file is assumed to hash with seed 0 (our earlier
 * KSM) or not to order by hash at all (upstream, which passes anyway).
 */
#define _GNU_SOURCE
#include <errno.h>
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
#define PAIRS		16
#define SINGLES		16
#define VICTIM		200
#define SEED_FILE	"/sys/kernel/debug/ksm/hash_seed"
#define LANE		10	/* the stripe whose first lane we alter */

static const uint64_t P1 = 11400714785074694791ULL;
static const uint64_t P2 = 14029467366897019727ULL;
static const uint64_t P3 = 1609587929392839161ULL;
static const uint64_t P4 = 9650029242287828579ULL;

static size_t page_size;

static uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t rotr(uint64_t x, int r)
{
	return (x >> r) | (x << (64 - r));
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint64_t xround(uint64_t acc, uint64_t in)
{
	return rotl(acc + in * P2, 31) * P1;
}

static uint64_t merge_round(uint64_t acc, uint64_t val)
{
	acc ^= xround(0, val);
	return acc * P1 + P4;
}

/* XXH64 of a page (a multiple of 32 bytes), as lib/xxhash.c computes it. */
static uint64_t xxh64_page(const unsigned char *p, uint64_t seed)
{
	uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
	uint64_t h;

	for (size_t off = 0; off < page_size; off += 32) {
		v1 = xround(v1, rd64(p + off));
		v2 = xround(v2, rd64(p + off + 8));
		v3 = xround(v3, rd64(p + off + 16));
		v4 = xround(v4, rd64(p + off + 24));
	}
	h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
	h = merge_round(h, v1);
	h = merge_round(h, v2);
	h = merge_round(h, v3);
	h = merge_round(h, v4);
	h += page_size;
	/* no tail: the length is a multiple of 32 */
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

static uint64_t inverse(uint64_t a)	/* of an odd number, mod 2^64 */
{
	uint64_t x = a;

	for (int i = 0; i < 6; i++)
		x *= 2 - a * x;
	return x;
}

/*
 * @out: @base with lane 0 of stripe LANE set to @tag and lane 0 of the
 * next stripe fixed up so that accumulator v1 comes out the same: a
 * different page with @base's hash for @seed.
 */
static void craft(unsigned char *out, const unsigned char *base, uint64_t tag,
		  uint64_t seed)
{
	uint64_t v = seed + P1 + P2, target, want, fix;
	size_t a = LANE * 32, b = (LANE + 1) * 32;

	memcpy(out, base, page_size);
	for (size_t off = 0; off < a; off += 32)
		v = xround(v, rd64(base + off));
	target = xround(xround(v, rd64(base + a)), rd64(base + b));
	v = xround(v, tag);
	want = rotr(target * inverse(P1), 31);
	fix = (want - v) * inverse(P2);
	memcpy(out + a, &tag, 8);
	memcpy(out + b, &fix, 8);
}

struct shared {
	int attacker_ready, victim_ready, done;
	long victim_frames, victim_merged;
};

static struct shared *sh;

static char *area(size_t pages)
{
	char *p = mmap(NULL, pages * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, pages * page_size, MADV_NOHUGEPAGE);
	return p;
}

static void attacker(const unsigned char *base, uint64_t seed)
{
	char *p = area(2 * PAIRS + SINGLES);
	int n = 0;

	if (!p)
		_exit(1);
	for (int i = 0; i < PAIRS; i++) {
		craft((unsigned char *)p + n++ * page_size, base, 1000 + i, seed);
		craft((unsigned char *)p + n++ * page_size, base, 1000 + i, seed);
	}
	for (int i = 0; i < SINGLES; i++)
		craft((unsigned char *)p + n++ * page_size, base, 2000 + i, seed);
	for (int i = 0; i < n; i++) {
		if (xxh64_page((unsigned char *)p + i * page_size, seed) !=
		    xxh64_page(base, seed) ||
		    !memcmp(p + i * page_size, base, page_size))
			_exit(3);	/* the craft is wrong, not the kernel */
	}
	if (madvise(p, n * page_size, MADV_MERGEABLE))
		_exit(1);
	WRITE_ONCE(sh->attacker_ready, 1);
	while (!READ_ONCE(sh->done))
		usleep(10000);
	_exit(0);
}

static void victim(const unsigned char *base)
{
	char *p = area(VICTIM);
	double deadline;
	long frames = 0;

	if (!p)
		_exit(1);
	for (int i = 0; i < VICTIM; i++)
		memcpy(p + i * page_size, base, page_size);
	if (madvise(p, VICTIM * page_size, MADV_MERGEABLE))
		_exit(1);
	WRITE_ONCE(sh->victim_ready, 1);
	deadline = ksm_now() + WAIT_S;
	while (ksm_now() < deadline) {
		uint64_t first = ksm_pfn_of(p);

		frames = 1;
		for (int i = 1; i < VICTIM; i++)
			if (ksm_pfn_of(p + i * page_size) != first)
				frames++;
		if (frames == 1 && ksm_self_merging() == VICTIM)
			break;
		usleep(200000);
	}
	sh->victim_frames = frames;
	sh->victim_merged = ksm_self_merging();
	for (int i = 0; i < VICTIM; i++)
		if (memcmp(p + i * page_size, base, page_size))
			_exit(4);
	_exit(0);
}

static bool attacker_merged(void *arg)
{
	(void)arg;
	return ksm_read("pages_shared") >= PAIRS;
}

static int flood(const char *what, int fill, uint64_t seed)
{
	unsigned char *base = malloc(page_size);
	int ret = KSFT_PASS, st_a, st_v;
	pid_t a, v;

	memset(sh, 0, sizeof(*sh));
	memset(base, fill, page_size);
	ksm_reset(&ret, what, WAIT_S);
	a = fork();
	if (!a)
		attacker(base, seed);
	/* The attacker's pages settle in the trees first. */
	if (!ksm_wait_for(attacker_merged, NULL, WAIT_S) ||
	    !ksm_wait_scans(2, WAIT_S)) {
		ksft_print_msg("%s: attacker's pairs did not merge\n", what);
		ret = KSFT_FAIL;
	}
	v = fork();
	if (!v)
		victim(base);
	waitpid(v, &st_v, 0);
	WRITE_ONCE(sh->done, 1);
	waitpid(a, &st_a, 0);
	if (!WIFEXITED(st_a) || WEXITSTATUS(st_a)) {
		ksft_print_msg("%s: attacker failed (%d)\n", what, st_a);
		ret = KSFT_FAIL;
	}
	if (!WIFEXITED(st_v) || WEXITSTATUS(st_v)) {
		ksft_print_msg("%s: victim failed (%d)\n", what, st_v);
		ret = KSFT_FAIL;
	}
	if (sh->victim_frames != 1 || sh->victim_merged != VICTIM) {
		ksft_print_msg("%s: victim's %d pages in %ld frames, %ld merged\n",
			       what, VICTIM, sh->victim_frames,
			       sh->victim_merged);
		ret = KSFT_FAIL;
	}
	free(base);
	ksm_reset(&ret, what, WAIT_S);
	return ret;
}

static int write_seed(uint64_t seed)
{
	FILE *f = fopen(SEED_FILE, "w");
	int ok;

	if (!f)
		return -1;
	ok = fprintf(f, "%llu\n", (unsigned long long)seed) > 0;
	return fclose(f) || !ok ? -1 : 0;
}

int main(void)
{
	struct ksm_knobs saved;
	unsigned long long old_seed = 0;
	bool have_seed;
	FILE *f;

	page_size = sysconf(_SC_PAGESIZE);
	ksft_print_header();
	ksft_set_plan(2);
	if (access(KSM_SYSFS "run", W_OK))
		ksft_exit_skip("KSM sysfs not writable (not root, or no KSM)\n");
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		ksft_exit_fail_msg("mmap\n");
	ksm_save(&saved);
	if (!ksm_settle(WAIT_S))
		ksft_exit_fail_msg("cannot unmerge\n");
	f = fopen(SEED_FILE, "r");
	have_seed = f && fscanf(f, "%llu", &old_seed) == 1;
	if (f)
		fclose(f);
	if (have_seed && write_seed(0))
		ksft_exit_fail_msg("cannot set %s: %s\n", SEED_FILE,
				   strerror(errno));
	ksft_print_msg("hash seed: %s\n", have_seed ? "set to 0" :
		       "no knob, assumed 0");
	if (ksm_fast())
		ksft_exit_fail_msg("cannot start ksmd\n");
	ksm_write("max_page_sharing", 256);

	ksm_report(flood("0x5a page", 0x5a, 0),
		   "200 copies of a page merge despite 48 colliding pages");
	ksm_write("use_zero_pages", 0);
	ksm_report(flood("zero page", 0, 0),
		   "200 zero pages merge despite 48 colliding pages");

	ksm_settle(WAIT_S);
	if (have_seed)
		write_seed(old_seed);
	ksm_restore(&saved);
	ksft_finished();
}
