// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Samepage Merging (KSM).
 *
 * ksmd walks the page tables of every registered mm (MADV_MERGEABLE or
 * PR_SET_MEMORY_MERGE), hashes each anonymous page with xxh64 and looks it
 * up in two red-black trees ordered by a key made of that hash:
 *
 *  - the stable tree holds one node per KSM page (a write-protected page
 *    mapped in place of identical copies); its hash never goes stale since
 *    a KSM page is never written;
 *  - the unstable tree holds tracking items of pages whose hash did not
 *    change since the previous visit.  It is rebuilt from empty on every
 *    full scan, and since it is ordered by the hash stored in each item, a
 *    page that changes after insertion cannot corrupt the tree order: it
 *    just fails the byte compare.
 *
 * The key is the page's xxh64 under a seed drawn at boot, xored with the
 * salt of the mm's merge domain; among equal keys the page bytes decide
 * the order (memcmp_pages()).  A lookup compares page bytes only when keys
 * are equal, so a miss reads no page but the one being scanned, and since
 * equal keys are ordered by content, a lookup costs O(log n) compares
 * even if every key in the tree is equal: nobody who knows the hash
 * function can flood a tree with colliding pages to keep other pages from
 * meeting their duplicates.  The salt is an invertible function of the
 * domain id, so identical pages of two domains never have equal keys and
 * never meet (see "merge domains" below).
 *
 * Lock ordering (outermost first):
 *
 *   ksm_thread_mutex          ksmd's scan batches, sysfs writers, run=2,
 *                             memory hotplug
 *     mmap_lock               of the mm being worked on; a second mm's
 *                             lock is only ever trylocked
 *       folio lock            of the page being merged; a second folio
 *                             (the KSM page or the unstable partner) is
 *                             only ever trylocked
 *         anon_vma lock       (rmap_walk_ksm, collect_procs_ksm, and
 *                             folio_in_scan_domain() under both folios
 *                             of a merge)
 *           page table lock   (under which est_protect_pte() only
 *                             trylocks a folio)
 *   ksm_mmlist_lock           spinlock, taken last but for the one below
 *                             (also inside the anon_vma lock, by
 *                             vma_in_scan_domain()), never held across
 *                             anything that sleeps
 *     ksm_domain_lock         spinlock, innermost, the fresh domain
 *                             counter only (taken with or without
 *                             ksm_mmlist_lock)
 *
 * The trees, the stable nodes and the tracking items are only changed with
 * ksm_thread_mutex held.  Additionally a stable node's item list is only
 * changed with its KSM folio locked, or once that folio is gone: this is
 * what lets rmap_walk_ksm() and collect_procs_ksm() walk the list under the
 * folio lock alone.  A node's kpfn is written by ksmd (ksm_thread_mutex,
 * new KSM folio locked) when the node is made, and by folio_migrate_ksm()
 * with both the old and the new folio locked but without the mutex: so
 * readers under the mutex re-check it under the folio lock before they
 * map a KSM page (get_ksm_folio(), try_to_merge_with_kpage()).  An mm's
 * item list is only touched by the holder of ksm_thread_mutex, and the
 * mm_slot being scanned (ksm_scan.mm_slot) is never freed by __ksm_exit(),
 * which leaves such slots to ksmd.  Page tables are only read or changed
 * through mm/pagewalk.c, under the mmap_lock, which takes the page table
 * lock around our callbacks.  A slot's merge domain is set before the
 * slot is listed, or changed: its domain with ksm_thread_mutex and the
 * mm's mmap_lock held for writing, its auto_domain (merge_domains=2)
 * with ksm_thread_mutex and ksm_mmlist_lock.  ksmd reads both under the
 * mutex.
 * The estimate groups, their member lists and the estimate numbers are
 * only touched with ksm_thread_mutex held; readers of the numbers take it
 * too, so that a full scan's count and its numbers are seen together.
 */

#include <linux/errno.h>
#include <linux/mm.h>
#include <linux/mm_inline.h>
#include <linux/fs.h>
#include <linux/mman.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/coredump.h>
#include <linux/sched/cputime.h>
#include <linux/rwsem.h>
#include <linux/pagemap.h>
#include <linux/rmap.h>
#include <linux/spinlock.h>
#include <linux/xxhash.h>
#include <linux/random.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/wait.h>
#include <linux/slab.h>
#include <linux/rbtree.h>
#include <linux/memory.h>
#include <linux/mmu_notifier.h>
#include <linux/swap.h>
#include <linux/ksm.h>
#include <linux/hashtable.h>
#include <linux/freezer.h>
#include <linux/oom.h>
#include <linux/numa.h>
#include <linux/pagewalk.h>
#include <linux/highmem.h>
#include <linux/hugetlb.h>
#include <linux/string.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/xarray.h>
#include <linux/capability.h>
#include <linux/prctl.h>
#include <linux/userfaultfd_k.h>

#include <asm/tlbflush.h>
#include "internal.h"
#include "mm_slot.h"

#define CREATE_TRACE_POINTS
#include <trace/events/ksm.h>

/*
 * Tracking item: one per scanned page of a registered mm.  Kept small (56
 * bytes on 64-bit) because there is one for every candidate page: the low
 * bits of the page-aligned address carry state, and the unstable and
 * stable states share storage.
 */
struct ksm_rmap_item {
	struct ksm_rmap_item *rmap_list;	/* next in mm, by address */
	struct mm_struct *mm;
	unsigned long address;			/* page address | ITEM_* */
	union {
		struct {			/* unstable tree or untracked */
			union {
				struct rb_node node;
				struct {	/* estimate group member */
					struct hlist_node est_link;
					struct ksm_est_group *est_group;
				};
			};
			u64 hash;		/* content hash at last visit */
		};
		struct {			/* stable (mapping a KSM page) */
			struct anon_vma *anon_vma;	/* pinned reference */
			struct ksm_stable_node *head;
			struct hlist_node hlist;
		};
	};
};

#define ITEM_UNSTABLE		BIT(0)	/* in the unstable tree ... */
/* (both bits set: in an estimate group, see ITEM_EST_MEMBER) */
#define ITEM_STABLE		BIT(1)
#define ITEM_STATE_MASK		(ITEM_UNSTABLE | ITEM_STABLE)
#define ITEM_EST_MEMBER		ITEM_STATE_MASK	/* in an estimate group */
#define ITEM_SEQ_SHIFT		2	/* ... of this scan generation; */
#define ITEM_SEQ_MASK		(7UL << ITEM_SEQ_SHIFT)	/* stable: of the merge */
#define ITEM_AGE_SHIFT		5	/* smart scan: unmerged visits, */
#define ITEM_AGE_MASK		(7UL << ITEM_AGE_SHIFT)	/* or the thrash level */
#define ITEM_SKIP_SHIFT		8	/* smart scan: visits left to skip */
#define ITEM_SKIP_MASK		(7UL << ITEM_SKIP_SHIFT)
#define ITEM_THRASH		BIT(11)	/* a write broke the last merge soon */
/*
 * Only merging sets ITEM_THRASH, so estimate mode has the bit for its
 * own meaning: the page was write-protected before the read that gave
 * its hash, see est_protect().  A change of mode drops what the other
 * mode left (items_drop_bits()).
 */
#define ITEM_EST_WP		ITEM_THRASH
#define ITEM_FLAGS_MASK		(~PAGE_MASK)

static_assert((ITEM_STATE_MASK | ITEM_SEQ_MASK | ITEM_AGE_MASK |
	       ITEM_SKIP_MASK | ITEM_THRASH) < PAGE_SIZE);

enum ksm_node_kind {
	NODE_REGULAR,		/* in a stable tree, maps a KSM page */
	NODE_CHAIN,		/* in a stable tree, holds dups */
	NODE_DUP,		/* on a chain's list, maps a KSM page */
	NODE_MIGRATE,		/* out of the trees, waiting to be re-filed */
};

/*
 * Stable node: one per KSM page (regular or dup), plus one per chain.
 * A chain replaces a regular node once its KSM page is shared
 * max_page_sharing times, and gathers KSM pages of identical content.
 */
struct ksm_stable_node {
	union {
		struct rb_node node;		/* REGULAR, CHAIN */
		struct list_head list;		/* MIGRATE */
		struct {			/* DUP */
			struct hlist_node hlist_dup;
			struct ksm_stable_node *chain;
		};
	};
	struct hlist_head hlist;	/* items; dups for a chain */
	union {
		unsigned long kpfn;		/* pfn of the KSM page */
		unsigned long prune_time;	/* CHAIN: last stale check */
	};
	u64 hash;
	unsigned int rmap_hlist_len;	/* items; dups for a chain */
	unsigned short nid;		/* stable tree this node is filed in */
	unsigned char kind;
};

/* Registration of one mm: hashed by mm, listed in scan order. */
struct ksm_mm_slot {
	struct ksm_rmap_item *rmap_list;	/* its items, by address */
	unsigned long walk_pass;		/* last pass that entered it */
	unsigned long rewound_pass;		/* last pass that rewound it */
	unsigned long rewind_pass;		/* pass of the request ... */
	unsigned long rewind_addr;		/* ... to come back here */
	unsigned long seq;			/* registration order */
	int domain;				/* chosen, or KSM_DOMAIN_UNSET */
	int auto_domain;			/* merge_domains=2, or 0 */
	long est_saved;				/* estimate: last full scan */
	struct mm_slot slot;
};

/*
 * Estimate mode: pages that merging would put on one KSM page.  The first
 * page met (the leader) stays in the unstable tree, and every page that
 * matches it joins its group instead of merging; the groups are counted
 * and forgotten at the end of each full scan.  A group costs one small
 * record, as a KSM page costs one stable node; the members need nothing
 * but their items.
 */
struct ksm_est_group {
	struct rb_node rb;			/* ksm_est_groups, by leader */
	struct ksm_rmap_item *leader;		/* NULL: the zero page group */
	struct hlist_head members;		/* leader excluded */
	unsigned long pages;			/* members and leader */
};

/* A slot whose mm never chose a merge domain (PR_SET_MEMORY_MERGE_DOMAIN). */
#define KSM_DOMAIN_UNSET	(-1)

/* A page collected by the range walk, processed after the walk. */
struct ksm_cand {
	unsigned long addr;
	struct page *page;
	struct ksm_rmap_item *item;
	/* Estimate mode (see est_protect()): */
	bool unwritten;		/* the PTE was read-only and clean */
	bool protect;		/* it was not, but may be made so */
	bool wp;		/* it is now: a read of the page holds */
};

#define KSM_BATCH	32

static struct kmem_cache *rmap_item_cache;
static struct kmem_cache *stable_node_cache;
static struct kmem_cache *mm_slot_cache;
static struct kmem_cache *est_group_cache;

static struct rb_root one_stable_tree[1] = { RB_ROOT };
static struct rb_root one_unstable_tree[1] = { RB_ROOT };
static struct rb_root *root_stable_tree = one_stable_tree;
static struct rb_root *root_unstable_tree = one_unstable_tree;
static int ksm_nr_node_ids = 1;

/* KSM pages migrated to another NUMA node, waiting to be re-filed. */
static LIST_HEAD(migrate_nodes);

/* Registered mms: ksm_mm_head anchors the scan list, the hash finds them. */
static DEFINE_HASHTABLE(mm_slots_hash, 10);
static unsigned long ksm_enter_seq;	/* registrations so far */
static struct ksm_mm_slot ksm_mm_head = {
	.slot.mm_node = LIST_HEAD_INIT(ksm_mm_head.slot.mm_node),
};

/*
 * Scan cursor; only ksmd (under ksm_thread_mutex) moves it.  @link is
 * where the item for the next page at or above @address belongs.
 *
 * "Make a range mergeable, then wait for two full scans" must see the
 * range visited twice.  So a pass is counted only after the pages of its
 * last batch are processed, and before it is counted it goes back (a
 * rewind) into each mm that registered after the pass began, and into
 * each mm with a range made mergeable behind the cursor (see
 * ksm_pass_end_locked() for the bounds).  The count and the rewind
 * requests meet under ksm_mmlist_lock, so a request is either seen or
 * comes after the count.  @pass, @mm_slot, @rewinding, the seq fields and
 * the slots' pass fields are under ksm_mmlist_lock; @address is written
 * under it too, and under the mmap_lock of the mm being walked, so that a
 * requester holding either can read it.
 */
static struct {
	unsigned long seqnr;		/* unstable tree generation */
	unsigned long pass;		/* full scans started */
	unsigned long address;
	struct ksm_rmap_item **link;
	struct ksm_mm_slot *mm_slot;	/* &ksm_mm_head between scans */
	bool rewinding;			/* the pass ends after this mm */
	bool cut_taken;			/* the regular walk of @pass ended */
	unsigned long start_seq;	/* last mm the regular walk takes */
	unsigned long cut_seq;		/* last mm the rewinds take ... */
	unsigned long late_rewinds;	/* ... but for this many more */
	unsigned long walked;		/* mms the regular walk entered */
	int domain;			/* of the mm being scanned ... */
	u64 salt;			/* ... and its key salt */
} ksm_scan = {
	.mm_slot = &ksm_mm_head,
};

/* Statistics; written under ksm_thread_mutex, read locklessly. */
static unsigned long ksm_pages_scanned;
static unsigned long ksm_pages_shared;
static unsigned long ksm_stable_items;
static unsigned long ksm_pages_unshared;
static unsigned long ksm_rmap_items;
static unsigned long ksm_pages_skipped;
static unsigned long ksm_stable_node_chains;
static unsigned long ksm_stable_node_dups;
static unsigned long ksm_full_scans;
atomic_long_t ksm_zero_pages = ATOMIC_LONG_INIT(0);

/* Tunables. */
static unsigned int ksm_thread_pages_to_scan = 100;
static unsigned int ksm_thread_sleep_millisecs = 20;
static int ksm_max_page_sharing = 256;
static unsigned int ksm_stable_node_chains_prune_millisecs = 2000;
static bool ksm_use_zero_pages __read_mostly;
static bool ksm_smart_scan = true;
#ifdef CONFIG_NUMA
static unsigned int ksm_merge_across_nodes = 1;
#else
#define ksm_merge_across_nodes	1U
#endif

/*
 * Merge domains: 0 ignores them, 1 merges only within a domain (mms that
 * never chose one are in domain 0), 2 as 1 but an mm that never chose one
 * is in a fresh domain of its own, taken when it registers and inherited
 * by its forks.
 */
#define KSM_DOMAINS_OFF		0
#define KSM_DOMAINS_CHOSEN	1
#define KSM_DOMAINS_ISOLATE	2
static unsigned int ksm_merge_domains;

/*
 * Estimate mode (sysfs estimate=1): ksmd scans as for merging but only
 * counts.  The estimate_* files show the last full scan that ran entirely
 * in estimate mode; @ksm_est_pass_valid says the current one does.
 */
static bool ksm_estimate;
static bool ksm_est_pass_valid;
/* Until this pass is over, no ITEM_EST_WP mark is trusted. */
static unsigned long ksm_est_distrust_pass;
/* Estimate mode: swap-ins, forks, mremap()s..., see est_note_move(). */
static atomic_long_t ksm_est_moves;
static unsigned long ksm_est_moves_seen;
/* The slot items_drop_bits() works on: __ksm_exit() leaves it alone. */
static struct ksm_mm_slot *ksm_bits_slot;
static struct rb_root ksm_est_groups = RB_ROOT;
static struct ksm_est_group ksm_est_zero_group;
static unsigned long ksm_est_pages_shared;
static unsigned long ksm_est_pages_sharing;
static unsigned long ksm_est_zero_pages;
static long ksm_est_profit;

/*
 * Fresh domain ids (PR_MEMORY_MERGE_DOMAIN_NEW, merge_domains=2) count
 * down from INT_MAX and are never handed out twice in a boot: a tenant
 * must not inherit the KSM pages an earlier holder of its id left in the
 * stable tree.  Ids that were ever joined by number are skipped too.
 */
static DEFINE_SPINLOCK(ksm_domain_lock);
static int ksm_next_domain = INT_MAX;
static DEFINE_XARRAY(ksm_joined_domains);

/* Tree keys: xxh64 seed and domain salt multipliers, drawn at boot. */
static u64 ksm_hash_seed __read_mostly;
static u64 ksm_salt_mul[2] __read_mostly;

enum ksm_advisor_type {
	KSM_ADVISOR_NONE,
	KSM_ADVISOR_SCAN_TIME,
};

static enum ksm_advisor_type ksm_advisor;
static unsigned int ksm_advisor_max_cpu = 70;
static unsigned long ksm_advisor_target_scan_time = 200;	/* seconds */
static unsigned long ksm_advisor_min_pages_to_scan = 500;
static unsigned long ksm_advisor_max_pages_to_scan = 30000;
static ktime_t ksm_advisor_scan_start;
static u64 ksm_advisor_cpu_start;

#define KSM_RUN_STOP	0
#define KSM_RUN_MERGE	1
#define KSM_RUN_UNMERGE	2
#define KSM_RUN_OFFLINE	4
static unsigned long ksm_run = KSM_RUN_STOP;

static DECLARE_WAIT_QUEUE_HEAD(ksm_thread_wait);
static DECLARE_WAIT_QUEUE_HEAD(ksm_iter_wait);
static DECLARE_WAIT_QUEUE_HEAD(ksm_offline_wait);
static DEFINE_MUTEX(ksm_thread_mutex);
static DEFINE_SPINLOCK(ksm_mmlist_lock);

/* Set when a new full scan is due: drain per-cpu LRU batches first. */
static bool ksm_need_drain = true;
static unsigned long ksm_last_sweep;

static u64 zero_hash __read_mostly;

static u64 page_hash(struct page *page);

#ifdef CONFIG_DEBUG_VM
/*
 * Fault injection for tests, debug kernels only: debugfs ksm/race_delay_us
 * widens race windows that are too narrow to hit under emulation.  When
 * set, folio_migrate_ksm() waits before moving the node to the new folio,
 * ksmd waits between finding a KSM page in the stable tree and merging
 * into it, and unmerging waits before each page.
 */
static u32 ksm_race_delay_us;

static void ksm_race_delay(void)
{
	u32 us = READ_ONCE(ksm_race_delay_us);

	if (!us)
		return;
	if (preemptible())
		fsleep(us);
	else
		udelay(min(us, 1000U));
}

/*
 * debugfs ksm/hash_seed: tests that craft colliding pages need the seed.
 * It can only change while ksmd holds no key: after a successful run=2.
 */
static int ksm_hash_seed_get(void *data, u64 *val)
{
	*val = READ_ONCE(ksm_hash_seed);
	return 0;
}

static int ksm_hash_seed_set(void *data, u64 val)
{
	int nid, err = 0;

	mutex_lock(&ksm_thread_mutex);
	if (ksm_rmap_items || !list_empty(&migrate_nodes))
		err = -EBUSY;
	for (nid = 0; nid < ksm_nr_node_ids; nid++)
		if (!RB_EMPTY_ROOT(root_stable_tree + nid))
			err = -EBUSY;
	if (!err) {
		ksm_hash_seed = val;
		zero_hash = page_hash(ZERO_PAGE(0));
	}
	mutex_unlock(&ksm_thread_mutex);
	return err;
}
DEFINE_DEBUGFS_ATTRIBUTE(ksm_hash_seed_fops, ksm_hash_seed_get,
			 ksm_hash_seed_set, "%llu\n");

/*
 * debugfs ksm/next_domain: the next fresh domain id.  0 makes the
 * callers of ksm_fresh_domain() fail as once every id was handed out, so
 * that tests can reach those paths.  A test that sets it back lets ids be
 * handed out twice: for tests only.
 */
static int ksm_next_domain_get(void *data, u64 *val)
{
	spin_lock(&ksm_domain_lock);
	*val = ksm_next_domain;
	spin_unlock(&ksm_domain_lock);
	return 0;
}

static int ksm_next_domain_set(void *data, u64 val)
{
	if (val > INT_MAX)
		return -EINVAL;
	spin_lock(&ksm_domain_lock);
	ksm_next_domain = val;
	spin_unlock(&ksm_domain_lock);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ksm_next_domain_fops, ksm_next_domain_get,
			 ksm_next_domain_set, "%llu\n");

static void __init ksm_debugfs_init(void)
{
	struct dentry *dir = debugfs_create_dir("ksm", NULL);

	debugfs_create_u32("race_delay_us", 0600, dir, &ksm_race_delay_us);
	debugfs_create_file_unsafe("hash_seed", 0600, dir, NULL,
				   &ksm_hash_seed_fops);
	debugfs_create_file_unsafe("next_domain", 0600, dir, NULL,
				   &ksm_next_domain_fops);
}
#else
static inline void ksm_race_delay(void)
{
}

static inline void ksm_debugfs_init(void)
{
}
#endif

static void remove_stale_node(struct ksm_stable_node *node);

/* ---- small helpers ---------------------------------------------------- */

static inline unsigned long item_addr(const struct ksm_rmap_item *item)
{
	return item->address & PAGE_MASK;
}

static inline unsigned long item_seq(const struct ksm_rmap_item *item)
{
	return (item->address & ITEM_SEQ_MASK) >> ITEM_SEQ_SHIFT;
}

static inline unsigned long cur_seq(void)
{
	return ksm_scan.seqnr & (ITEM_SEQ_MASK >> ITEM_SEQ_SHIFT);
}

static inline bool item_in_unstable_tree(const struct ksm_rmap_item *item)
{
	return (item->address & ITEM_STATE_MASK) == ITEM_UNSTABLE &&
	       item_seq(item) == cur_seq();
}

/* The page changed: smart scan starts over (a thrash level stays). */
static inline void item_reset_age(struct ksm_rmap_item *item)
{
	if (!ksm_estimate && (item->address & ITEM_THRASH))
		item->address &= ~ITEM_SKIP_MASK;
	else
		item->address &= ~(ITEM_AGE_MASK | ITEM_SKIP_MASK);
}

static inline bool item_is_stable(const struct ksm_rmap_item *item)
{
	return (item->address & ITEM_STATE_MASK) == ITEM_STABLE;
}

static inline bool item_is_est_member(const struct ksm_rmap_item *item)
{
	return (item->address & ITEM_STATE_MASK) == ITEM_EST_MEMBER;
}

static inline unsigned int item_field(const struct ksm_rmap_item *item,
				      unsigned long mask, int shift)
{
	return (item->address & mask) >> shift;
}

static inline void item_set_field(struct ksm_rmap_item *item,
				  unsigned long mask, int shift,
				  unsigned long val)
{
	item->address = (item->address & ~mask) | ((val << shift) & mask);
}

/*
 * Thrash back-off (with smart_scan): a merge that a write breaks within
 * THRASH_SCANS full scans cost a merge and a COW fault and saved next to
 * nothing.  A page that keeps doing that (a buffer that identical
 * processes rewrite with identical data) sits out its next 1, 3, then 7
 * visits (full scans) after each such break, not even as a partner, so it
 * merges the less often the more it thrashes; a merge that lasts longer,
 * or unmerged visits once the sit-out is over, end it.  Not in estimate
 * mode, which must see every page as merging would.
 */
#define THRASH_SCANS		2
#define ITEM_SEQ_MAX		(ITEM_SEQ_MASK >> ITEM_SEQ_SHIFT)

/* Full scans since the merge of a stable item with flags @address, mod 8. */
static inline unsigned long merged_scans(unsigned long address)
{
	return (cur_seq() - ((address & ITEM_SEQ_MASK) >> ITEM_SEQ_SHIFT)) &
	       ITEM_SEQ_MAX;
}

/* Stable @item's KSM page is still mapped: maybe the merge lasts. */
static void item_merge_lasts(struct ksm_rmap_item *item)
{
	if (merged_scans(item->address) <= THRASH_SCANS)
		return;
	/* Also keeps the stamp from wrapping round into "soon" again. */
	item->address &= ~(ITEM_THRASH | ITEM_AGE_MASK | ITEM_SEQ_MASK);
	item->address |= ((cur_seq() - THRASH_SCANS - 1) & ITEM_SEQ_MAX) <<
			 ITEM_SEQ_SHIFT;
}

/*
 * @item, stable with flags @was until just now, lost its KSM page: by a
 * COW fault, or a swap-in copy, or the KSM page went when every sharer
 * wrote it.  If that was soon after the merge, it is to sit out its next
 * visits (see item_sits_out()).
 */
static void item_merge_broken(struct ksm_rmap_item *item, unsigned long was)
{
	unsigned int level = 0;

	if (!ksm_smart_scan || ksm_estimate || merged_scans(was) > THRASH_SCANS)
		return;
	if (was & ITEM_THRASH)
		level = (was & ITEM_AGE_MASK) >> ITEM_AGE_SHIFT;
	level = min(level + 1, 3U);
	item->address |= ITEM_THRASH;
	item_set_field(item, ITEM_AGE_MASK, ITEM_AGE_SHIFT, level);
	item_set_field(item, ITEM_SKIP_MASK, ITEM_SKIP_SHIFT, (1U << level) - 1);
}

/* Use up one of @item's visits to skip, if it has any left. */
static bool item_take_skip(struct ksm_rmap_item *item)
{
	unsigned int skip = item_field(item, ITEM_SKIP_MASK, ITEM_SKIP_SHIFT);

	if (!skip)
		return false;
	item_set_field(item, ITEM_SKIP_MASK, ITEM_SKIP_SHIFT, skip - 1);
	/* Not read: counted as skipped instead of scanned, as upstream does. */
	ksm_pages_skipped++;
	ksm_pages_scanned--;
	return true;
}

/* A thrash back-off visit of @item: no read, no tree, no merge. */
static bool item_sits_out(struct ksm_rmap_item *item)
{
	/* Estimate mode sees every page (the bit is ITEM_EST_WP there). */
	if (ksm_estimate || !(item->address & ITEM_THRASH))
		return false;
	return ksm_smart_scan && item_take_skip(item);
}

/* An unmerged visit after the sit-out: the thrash level wears off. */
static void item_thrash_decay(struct ksm_rmap_item *item)
{
	unsigned int level = item_field(item, ITEM_AGE_MASK, ITEM_AGE_SHIFT);

	if (level > 1) {
		item_set_field(item, ITEM_AGE_MASK, ITEM_AGE_SHIFT, level - 1);
		return;
	}
	item->address &= ~(ITEM_THRASH | ITEM_AGE_MASK);
}

/*
 * Estimate mode: no ITEM_EST_WP mark is to be trusted in the pass under
 * way and the next.  An item is visited once in every pass (or more, on a
 * rewind), so by the end of the next pass every mark left was set again
 * after the call.  For a key rule change (merge_domains: a kept hash has
 * the old key), and for pages that may have come back read-only and clean
 * with other content (est_distrust_moved()).
 */
static void est_distrust_marks(void)
{
	lockdep_assert_held(&ksm_thread_mutex);
	ksm_est_distrust_pass = ksm_scan.pass + 1;
}

static inline bool est_marks_distrusted(void)
{
	return (long)(ksm_scan.pass - ksm_est_distrust_pass) <= 0;
}

/*
 * A page swapped in or moved by mremap() may sit read-only and clean where
 * an item holds the mark of another content: swapoff (unuse_pte()) maps
 * it so; a fault maps a page it cannot tell exclusive so (after fork),
 * and a read-only pin makes it exclusive later without touching the PTE.
 * So may a page moved there unmergeable, once its VMA becomes mergeable,
 * and a writable clean one (a swap-in that skipped the swap cache) that
 * fork write-protected and a pin unshared.  These paths tell us
 * (ksm_might_need_to_copy(), ksm_madvise(), ksm_set_merge_any(),
 * __ksm_fork()) before they change the PTE, and ksmd looks after it
 * collected a batch: a count it has not seen means no mark is trusted for
 * a while.  Only in estimate mode, and for mergeable memory: under swap
 * pressure, or forks, estimate mode reads every page, as merging does.
 */
static void est_note_move(void)
{
	if (unlikely(READ_ONCE(ksm_estimate)))
		atomic_long_inc(&ksm_est_moves);
}

static void est_distrust_moved(void)
{
	unsigned long moves;

	lockdep_assert_held(&ksm_thread_mutex);
	/*
	 * Pairs with the page table lock that do_swap_page() and unuse_pte()
	 * took after the note, and with the mmap_lock that mremap(), fork
	 * and madvise() held for writing.
	 */
	moves = atomic_long_read(&ksm_est_moves);
	if (moves != ksm_est_moves_seen) {
		ksm_est_moves_seen = moves;
		est_distrust_marks();
	}
}

static inline bool ksm_test_exit(struct mm_struct *mm)
{
	return atomic_read(&mm->mm_users) == 0;
}

static inline int get_kpfn_nid(unsigned long kpfn)
{
	return ksm_merge_across_nodes ? 0 : pfn_to_nid(kpfn);
}

static inline struct ksm_stable_node *folio_stable_node(const struct folio *folio)
{
	if (!folio_test_ksm(folio))
		return NULL;
	return (struct ksm_stable_node *)((unsigned long)folio->mapping &
					  ~PAGE_MAPPING_FLAGS);
}

static inline void *node_mapping(const struct ksm_stable_node *node)
{
	return (void *)((unsigned long)node | PAGE_MAPPING_KSM);
}

static inline void folio_set_stable_node(struct folio *folio,
					 struct ksm_stable_node *node)
{
	VM_WARN_ON_FOLIO(folio_test_anon(folio) && folio_test_ksm(folio), folio);
	WRITE_ONCE(folio->mapping, node_mapping(node));
}

static u64 page_hash(struct page *page)
{
	void *addr = kmap_local_page(page);
	u64 hash = xxh64(addr, PAGE_SIZE, ksm_hash_seed);

	kunmap_local(addr);
	return hash;
}

/*
 * The key salt of domain @domain: odd multipliers and an xorshift are each
 * invertible, so distinct domains get distinct salts, and domain 0 (every
 * mm while domains are off) gets 0, leaving keys plain hashes.
 */
static inline u64 domain_salt(int domain)
{
	u64 x = (u64)(u32)domain * ksm_salt_mul[0];

	x ^= x >> 29;
	return x * ksm_salt_mul[1];
}

/* The domain @slot's pages merge in, under the current merge_domains. */
static int slot_domain(const struct ksm_mm_slot *slot)
{
	if (ksm_merge_domains == KSM_DOMAINS_OFF)
		return 0;
	if (slot->domain != KSM_DOMAIN_UNSET)
		return slot->domain;
	return ksm_merge_domains == KSM_DOMAINS_ISOLATE ? slot->auto_domain : 0;
}

static bool page_is_zero(struct page *page)
{
	void *addr = kmap_local_page(page);
	bool zero = !memchr_inv(addr, 0, PAGE_SIZE);

	kunmap_local(addr);
	return zero;
}

/* Item and node allocations may fail quietly: ksmd just retries later. */
#define KSM_GFP		(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN)

static struct ksm_rmap_item *alloc_rmap_item(struct mm_struct *mm)
{
	struct ksm_rmap_item *item = kmem_cache_zalloc(rmap_item_cache,
							KSM_GFP);

	if (!item)
		return NULL;
	item->mm = mm;
	mm->ksm_rmap_items++;
	ksm_rmap_items++;
	return item;
}

static void free_rmap_item(struct ksm_rmap_item *item)
{
	ksm_rmap_items--;
	item->mm->ksm_rmap_items--;
	item->mm = NULL;
	kmem_cache_free(rmap_item_cache, item);
}

static struct ksm_stable_node *alloc_stable_node(void)
{
	return kmem_cache_zalloc(stable_node_cache, KSM_GFP);
}

static void free_stable_node(struct ksm_stable_node *node)
{
	VM_WARN_ON_ONCE(node->rmap_hlist_len && node->kind != NODE_CHAIN);
	kmem_cache_free(stable_node_cache, node);
}

static struct ksm_mm_slot *get_mm_slot(struct mm_struct *mm)
{
	struct mm_slot *slot = mm_slot_lookup(mm_slots_hash, mm);

	return slot ? mm_slot_entry(slot, struct ksm_mm_slot, slot) : NULL;
}

/*
 * VMAs KSM never touches: shared or special mappings, hugetlb, DAX, and
 * the arch flags whose pages carry tags or attributes a merge would lose.
 */
#define VM_KSM_NEVER	(VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO | \
			 VM_DONTEXPAND | VM_HUGETLB | VM_MIXEDMAP | \
			 VM_DROPPABLE | VM_KSM_ARCH_NEVER)
#if defined(VM_SAO)
#define VM_KSM_ARCH_NEVER	VM_SAO
#elif defined(VM_SPARC_ADI)
#define VM_KSM_ARCH_NEVER	VM_SPARC_ADI
#else
#define VM_KSM_ARCH_NEVER	VM_NONE
#endif

static inline bool vma_ksm_compatible(struct vm_area_struct *vma)
{
	return !(vma->vm_flags & VM_KSM_NEVER) && !vma_is_dax(vma);
}

static struct vm_area_struct *find_mergeable_vma(struct mm_struct *mm,
						 unsigned long addr)
{
	struct vm_area_struct *vma = NULL;

	if (!ksm_test_exit(mm))
		vma = vma_lookup(mm, addr);
	/* Still mergeable, with an anon_vma for stable items to pin. */
	if (vma && (vma->vm_flags & VM_MERGEABLE) && vma->anon_vma)
		return vma;
	return NULL;
}

/* ---- stable nodes ------------------------------------------------------ */

static struct rb_root *node_root(struct ksm_stable_node *node)
{
	return root_stable_tree + node->nid;
}

/*
 * Take @node out of whatever holds it (tree, chain or migrate list).
 * A chain left without dups goes away too.
 */
static void unlink_stable_node(struct ksm_stable_node *node)
{
	struct ksm_stable_node *chain;

	lockdep_assert_held(&ksm_thread_mutex);
	switch (node->kind) {
	case NODE_REGULAR:
		rb_erase(&node->node, node_root(node));
		break;
	case NODE_DUP:
		chain = node->chain;
		hlist_del(&node->hlist_dup);
		ksm_stable_node_dups--;
		if (--chain->rmap_hlist_len == 0) {
			rb_erase(&chain->node, node_root(chain));
			ksm_stable_node_chains--;
			free_stable_node(chain);
		}
		break;
	case NODE_MIGRATE:
		list_del(&node->list);
		break;
	default:
		WARN_ON_ONCE(1);
	}
}

static void stable_item_detach(struct ksm_rmap_item *item)
{
	struct ksm_stable_node *node = item->head;

	lockdep_assert_held(&ksm_thread_mutex);
	hlist_del(&item->hlist);
	if (--node->rmap_hlist_len == 0)
		ksm_pages_shared--;
	ksm_stable_items--;
	item->mm->ksm_merging_pages--;
	trace_ksm_remove_rmap_item(node->kpfn, item, item->mm);
	put_anon_vma(item->anon_vma);
	item->head = NULL;
	item->address &= ~(ITEM_STABLE | ITEM_SEQ_MASK | ITEM_AGE_MASK |
			   ITEM_SKIP_MASK | ITEM_THRASH);
	item->hash = 0;
}

/* The KSM page of @node is gone: forget the node and its items. */
static void remove_stale_node(struct ksm_stable_node *node)
{
	struct ksm_rmap_item *item;
	struct hlist_node *tmp;

	lockdep_assert_held(&ksm_thread_mutex);
	hlist_for_each_entry_safe(item, tmp, &node->hlist, hlist) {
		unsigned long was = item->address;

		stable_item_detach(item);
		item_merge_broken(item, was);
	}
	trace_ksm_remove_ksm_page(node->kpfn);
	unlink_stable_node(node);
	free_stable_node(node);
}

/*
 * Return the KSM folio of @node with a reference held (and locked if
 * @lock), or NULL after dropping the node if its page is gone.  The pfn is
 * re-read whenever it may have changed: folio_migrate_ksm() moves it to
 * the new folio, and only then makes the old folio's mapping stale.  An
 * unlocked folio returned here may be migrated away meanwhile: callers
 * that go on to map it check, under its lock, that it still is the
 * node's page (folio_stable_node() and kpfn).
 */
static void put_ksm_folio(struct folio *folio, bool locked)
{
	if (locked)
		folio_unlock(folio);
	folio_put(folio);
}

static struct folio *get_ksm_folio(struct ksm_stable_node *node, bool lock)
{
	void *expected = node_mapping(node);
	struct folio *folio;
	unsigned long kpfn;

	lockdep_assert_held(&ksm_thread_mutex);
	for (;;) {
		kpfn = READ_ONCE(node->kpfn);
		folio = pfn_folio(kpfn);
		if (READ_ONCE(folio->mapping) == expected) {
			if (!folio_try_get(folio)) {
				/* Freed or frozen by migration: see which. */
				cond_resched();
				continue;
			}
			if (lock)
				folio_lock(folio);
			if (READ_ONCE(folio->mapping) == expected) {
				/* Pairs with the smp_wmb() in folio_migrate_ksm(). */
				smp_rmb();
				if (READ_ONCE(node->kpfn) == kpfn)
					return folio;
				/* Moved to a new folio meanwhile: follow it. */
				put_ksm_folio(folio, lock);
				continue;
			}
			put_ksm_folio(folio, lock);
		}
		/* Not our folio: stale, unless the node moved meanwhile. */
		smp_rmb();
		if (READ_ONCE(node->kpfn) == kpfn)
			break;
	}
	remove_stale_node(node);
	return NULL;
}

/* Detach @item from its stable node, under that node's folio lock. */
static void remove_item_from_stable(struct ksm_rmap_item *item)
{
	struct folio *folio = get_ksm_folio(item->head, true);

	/* If the folio is gone, the stale node took the item with it. */
	if (!folio)
		return;
	if (item_is_stable(item))
		stable_item_detach(item);
	put_ksm_folio(folio, true);
}

/* ---- estimate groups --------------------------------------------------- */

static struct ksm_est_group *est_group_of(struct ksm_rmap_item *leader)
{
	struct rb_node *rb = ksm_est_groups.rb_node;

	while (rb) {
		struct ksm_est_group *g = rb_entry(rb, struct ksm_est_group, rb);

		if (leader == g->leader)
			return g;
		rb = leader < g->leader ? rb->rb_left : rb->rb_right;
	}
	return NULL;
}

static void est_group_file(struct ksm_est_group *g)
{
	struct rb_node **link = &ksm_est_groups.rb_node, *parent = NULL;

	while (*link) {
		struct ksm_est_group *p;

		parent = *link;
		p = rb_entry(parent, struct ksm_est_group, rb);
		link = g->leader < p->leader ? &parent->rb_left :
					       &parent->rb_right;
	}
	rb_link_node(&g->rb, parent, link);
	rb_insert_color(&g->rb, &ksm_est_groups);
}

static void est_group_add(struct ksm_est_group *g, struct ksm_rmap_item *item)
{
	item->address &= ~ITEM_SEQ_MASK;
	item->address |= ITEM_EST_MEMBER;
	hlist_add_head(&item->est_link, &g->members);
	item->est_group = g;
	g->pages++;
	/* As a merged page would be, it is not aged by smart scan. */
	item_reset_age(item);
}

/*
 * @item, whose page has the bytes of unstable tree item @leader's page,
 * joins @leader's group (made here, on the first match).  Without memory
 * for a group, the page is just not counted in this scan.
 */
static void est_join(struct ksm_rmap_item *item, struct ksm_rmap_item *leader)
{
	struct ksm_est_group *g;

	lockdep_assert_held(&ksm_thread_mutex);
	g = leader ? est_group_of(leader) : &ksm_est_zero_group;
	if (!g) {
		g = kmem_cache_alloc(est_group_cache, KSM_GFP);
		if (!g)
			return;
		g->leader = leader;
		INIT_HLIST_HEAD(&g->members);
		g->pages = 1;
		est_group_file(g);
		item_reset_age(leader);
	}
	est_group_add(g, item);
}

static void est_member_leave(struct ksm_rmap_item *item)
{
	hlist_del(&item->est_link);
	item->est_group->pages--;
	item->address &= ~ITEM_STATE_MASK;
}

/*
 * Leader @item leaves unstable tree @root: a member of its group, with the
 * same bytes and key, takes its place there, so that pages still to come
 * find the group.  Returns true if one did (@item is out of the tree).
 */
static bool est_leader_leave(struct ksm_rmap_item *item, struct rb_root *root)
{
	struct ksm_est_group *g;
	struct ksm_rmap_item *m;

	if (RB_EMPTY_ROOT(&ksm_est_groups))
		return false;
	g = est_group_of(item);
	if (!g)
		return false;
	rb_erase(&g->rb, &ksm_est_groups);
	if (hlist_empty(&g->members)) {
		kmem_cache_free(est_group_cache, g);
		return false;
	}
	m = hlist_entry(g->members.first, struct ksm_rmap_item, est_link);
	hlist_del(&m->est_link);
	g->pages--;
	rb_replace_node(&item->node, &m->node, root);
	m->hash = item->hash;
	m->address &= ~(ITEM_STATE_MASK | ITEM_SEQ_MASK);
	m->address |= ITEM_UNSTABLE | (cur_seq() << ITEM_SEQ_SHIFT);
	g->leader = m;
	est_group_file(g);
	return true;
}

/* Credit @bytes of estimated saving to the mm of @item. */
static void est_credit(struct ksm_rmap_item *item, long bytes,
		       struct ksm_mm_slot **slotp)
{
	struct ksm_mm_slot *slot = *slotp;

	if (!slot || slot->slot.mm != item->mm) {
		spin_lock(&ksm_mmlist_lock);
		slot = get_mm_slot(item->mm);
		spin_unlock(&ksm_mmlist_lock);
		*slotp = slot;
	}
	/* An mm with items keeps its slot until ksmd frees both. */
	if (!WARN_ON_ONCE(!slot))
		slot->est_saved += bytes;
}

/*
 * Count group @g as merging would make it: k identical pages go on
 * ceil(k / max_page_sharing) KSM pages (a last one left alone is not
 * merged), saving k minus that many pages, a fair share of which goes to
 * each page's mm.  The zero page group saves each of its pages.
 */
static void est_count_group(struct ksm_est_group *g, unsigned long *shared,
			    unsigned long *sharing, struct ksm_mm_slot **slotp)
{
	unsigned long k = g->pages, mps = ksm_max_page_sharing, saved, n = 0;
	struct ksm_rmap_item *m;
	long each;

	if (!g->leader) {
		/* Merging frees the item of a page it maps to the zero page. */
		hlist_for_each_entry(m, &g->members, est_link) {
			est_credit(m, PAGE_SIZE + sizeof(*m), slotp);
			if (!(++n % 1024))
				cond_resched();
		}
		return;
	}
	if (k < 2)
		return;
	saved = k - DIV_ROUND_UP(k, mps);
	*shared += k / mps + (k % mps >= 2);
	*sharing += saved;
	each = saved * PAGE_SIZE / k;
	hlist_for_each_entry(m, &g->members, est_link) {
		est_credit(m, each, slotp);
		/* One group may hold millions of pages (zero-filled memory). */
		if (!(++n % 1024))
			cond_resched();
	}
	/* The rounding goes to the leader, so that the sum is exact. */
	est_credit(g->leader, saved * PAGE_SIZE - each * (k - 1), slotp);
}

static void est_clear_members(struct ksm_est_group *g)
{
	struct ksm_rmap_item *m;
	unsigned long n = 0;

	hlist_for_each_entry(m, &g->members, est_link) {
		m->address &= ~ITEM_STATE_MASK;
		if (!(++n % 1024))
			cond_resched();
	}
	INIT_HLIST_HEAD(&g->members);
	g->pages = 0;
}

/* Leader @item goes without a successor: so does its group. */
static void est_leader_forget(struct ksm_rmap_item *item)
{
	struct ksm_est_group *g = est_group_of(item);

	if (!g)
		return;
	rb_erase(&g->rb, &ksm_est_groups);
	est_clear_members(g);
	kmem_cache_free(est_group_cache, g);
}

/*
 * Forget the estimate groups, at the end of a full scan or when the trees
 * are dropped; with @count, they were made by a full scan in estimate
 * mode, and become the estimate_* numbers and the mms' shares.
 */
static void est_end_groups(bool count)
{
	unsigned long shared = 0, sharing = 0, zero;
	struct ksm_mm_slot *slot = NULL;
	struct ksm_est_group *g, *tmp;
	long item_bytes;

	lockdep_assert_held(&ksm_thread_mutex);
	if (count) {
		spin_lock(&ksm_mmlist_lock);
		list_for_each_entry(slot, &ksm_mm_head.slot.mm_node,
				    slot.mm_node)
			slot->est_saved = -(long)(slot->slot.mm->ksm_rmap_items *
						  sizeof(struct ksm_rmap_item));
		spin_unlock(&ksm_mmlist_lock);
		slot = NULL;
		est_count_group(&ksm_est_zero_group, &shared, &sharing, &slot);
	}
	zero = ksm_est_zero_group.pages;
	est_clear_members(&ksm_est_zero_group);
	rbtree_postorder_for_each_entry_safe(g, tmp, &ksm_est_groups, rb) {
		if (count)
			est_count_group(g, &shared, &sharing, &slot);
		est_clear_members(g);
		kmem_cache_free(est_group_cache, g);
		cond_resched();
	}
	ksm_est_groups = RB_ROOT;
	if (!count)
		return;
	/* As general_profit, once merging freed the zero pages' items. */
	item_bytes = (ksm_rmap_items - zero) * sizeof(struct ksm_rmap_item);
	WRITE_ONCE(ksm_est_pages_shared, shared);
	WRITE_ONCE(ksm_est_pages_sharing, sharing);
	WRITE_ONCE(ksm_est_zero_pages, zero);
	WRITE_ONCE(ksm_est_profit,
		   (long)(sharing + zero) * PAGE_SIZE - item_bytes);
}

static struct rb_root *unstable_root_of(struct ksm_rmap_item *item)
{
	struct rb_node *top = &item->node;
	int nid;

	while (rb_parent(top))
		top = rb_parent(top);
	for (nid = 0; nid < ksm_nr_node_ids; nid++)
		if (root_unstable_tree[nid].rb_node == top)
			return root_unstable_tree + nid;
	return NULL;
}

static void remove_item_from_unstable(struct ksm_rmap_item *item)
{
	lockdep_assert_held(&ksm_thread_mutex);

	if (item_is_est_member(item)) {
		est_member_leave(item);
	} else if (item_in_unstable_tree(item)) {
		struct rb_root *root = unstable_root_of(item);

		if (WARN_ON_ONCE(!root)) {
			est_leader_forget(item);
			ksm_pages_unshared--;
		} else if (!est_leader_leave(item, root)) {
			rb_erase(&item->node, root);
			ksm_pages_unshared--;
		}
	}
	item->address &= ~(ITEM_STATE_MASK | ITEM_SEQ_MASK);
}

static void remove_item_from_tree(struct ksm_rmap_item *item)
{
	if (item_is_stable(item))
		remove_item_from_stable(item);
	else if (item->address & ITEM_UNSTABLE)
		remove_item_from_unstable(item);
}

/*
 * Empty the unstable trees outside of a pass start (merge_across_nodes,
 * a failed run=2).  The items they held are told so one by one, rather
 * than by a new generation: a generation number bumped without ksmd
 * visiting the items in between would wrap round to theirs.
 */
static void forget_unstable_trees(void)
{
	struct ksm_rmap_item *item, *tmp;
	int nid;

	lockdep_assert_held(&ksm_thread_mutex);
	est_end_groups(false);
	ksm_est_pass_valid = false;
	for (nid = 0; nid < ksm_nr_node_ids; nid++) {
		rbtree_postorder_for_each_entry_safe(item, tmp,
						     root_unstable_tree + nid,
						     node)
			item->address &= ~(ITEM_UNSTABLE | ITEM_SEQ_MASK);
		root_unstable_tree[nid] = RB_ROOT;
	}
	ksm_pages_unshared = 0;
}

/* Free the items from *@link to the end of the list. */
static void remove_trailing_items(struct ksm_rmap_item **link)
{
	lockdep_assert_held(&ksm_thread_mutex);

	while (*link) {
		struct ksm_rmap_item *item = *link;

		*link = item->rmap_list;
		remove_item_from_tree(item);
		free_rmap_item(item);
		cond_resched();
	}
}

/* ---- page table work ------------------------------------------------- */

/*
 * Every look at a page table goes through mm/pagewalk.c: it skips empty
 * upper levels, and it maps and locks the PTE table around the pte_entry
 * callbacks, so the lock and RCU pairing stays in one place.  Each walk's
 * pmd_entry keeps a PMD-mapped THP whole (ACTION_CONTINUE): the walker
 * would otherwise split it to show us its PTEs.
 */

/* Pages collected by a scan walk, or the one page of a lookup. */
struct ksm_collect {
	struct ksm_cand *cand;
	int n, max;
	unsigned long start;		/* where the walk began */
	unsigned long addr;		/* where a stopped walk goes on */
};

/* The page @ptent maps at @addr, if it is anonymous memory ksmd handles. */
static struct page *pte_candidate(struct vm_area_struct *vma,
				  unsigned long addr, pte_t ptent)
{
	struct page *page = NULL;

	if (pte_present(ptent))
		page = vm_normal_page(vma, addr, ptent);
	if (!page || !folio_test_anon(page_folio(page)) ||
	    folio_is_zone_device(page_folio(page)))
		return NULL;
	return page;
}

/*
 * Estimate mode: can nobody have written @page, mapped by @ptent in
 * @vma, since it was made read-only and clean (est_protect())?  A
 * write through the PTE, GUP for writing included, faults first and
 * leaves it writable and dirty; a pin, or a TLB entry not yet flushed,
 * could write unseen; and FOLL_FORCE writes an exclusive page of a
 * VMA without VM_WRITE with no fault at all.  Where a written page can
 * come back read-only and clean, it is not trusted: a migration entry
 * that loses the dirty bit, a PTE soft-dirty tracking cleaned (its swap-in
 * stays read-only, and the VMA may leave tracking later), a lazyfree page
 * (MADV_FREE cleans the PTE); for swap-in and mremap see est_note_move().
 */
static inline bool est_pte_soft_dirty(pte_t ptent)
{
#ifdef CONFIG_MEM_SOFT_DIRTY
	/* Every anon PTE is, but for what clear_refs cleaned (and swap-in). */
	return pte_soft_dirty(ptent);
#else
	return true;
#endif
}

static inline bool est_migration_keeps_dirty(void)
{
#ifdef CONFIG_MIGRATION
	return migration_entry_supports_ad();
#else
	return true;
#endif
}

static bool est_pte_unwritten(struct mm_walk *walk, pte_t ptent,
			      struct page *page)
{
	struct folio *folio = page_folio(page);

	return ksm_estimate && (walk->vma->vm_flags & VM_WRITE) &&
	       !pte_write(ptent) && !pte_dirty(ptent) &&
	       !pte_protnone(ptent) && !pte_uffd_wp(ptent) &&
	       est_pte_soft_dirty(ptent) && est_migration_keeps_dirty() &&
	       !folio_test_large(folio) && folio_test_swapbacked(folio) &&
	       PageAnonExclusive(page) && !folio_maybe_dma_pinned(folio) &&
	       !mm_tlb_flush_pending(walk->mm);
}

/*
 * Estimate mode: may est_protect() make the writable or dirty PTE @ptent
 * of @page read-only and clean, so that est_pte_unwritten() holds after?
 */
static bool est_pte_protectable(struct mm_walk *walk, pte_t ptent,
				struct page *page)
{
	return ksm_estimate && (walk->vma->vm_flags & VM_WRITE) &&
	       !userfaultfd_wp(walk->vma) &&
	       (pte_write(ptent) || pte_dirty(ptent)) &&
	       !pte_protnone(ptent) && !pte_uffd_wp(ptent) &&
	       !folio_test_large(page_folio(page)) && PageAnonExclusive(page);
}

static bool collect_page(struct ksm_collect *c, struct page *page,
			 unsigned long addr, struct mm_walk *walk, pte_t *ptent)
{
	struct ksm_cand *cand = c->cand + c->n;

	if (!folio_try_get(page_folio(page)))
		return false;
	cand->addr = addr;
	cand->page = page;
	cand->unwritten = ptent && est_pte_unwritten(walk, *ptent, page);
	cand->protect = ptent && est_pte_protectable(walk, *ptent, page);
	cand->wp = cand->unwritten;
	c->n++;
	return true;
}

/*
 * A THP is taken alone, one subpage, as the last page of a batch: ksmd
 * must hold the only extra reference when it splits the folio.
 */
static int collect_pmd(pmd_t *pmd, unsigned long addr, unsigned long next,
		       struct mm_walk *walk)
{
	struct ksm_collect *c = walk->private;
	struct page *page = NULL;
	spinlock_t *ptl;	/* PMD lock */
	pmd_t pmde;

	/*
	 * Between page tables, give up the mmap_lock if someone waits for
	 * it or for the CPU; not before the first, so a batch always moves.
	 */
	if (addr != c->start &&
	    (need_resched() || mmap_lock_is_contended(walk->mm))) {
		c->addr = addr;
		return 1;
	}
	pmde = pmdp_get_lockless(pmd);
	if (!pmd_present(pmde)) {
		/*
		 * Gone, or a THP under migration: not now (the walker would
		 * split a THP faulted in meanwhile to show it to us).
		 */
		walk->action = ACTION_CONTINUE;
		return 0;
	}
	if (!pmd_trans_huge(pmde))
		return 0;
	walk->action = ACTION_CONTINUE;
	if (c->n) {
		c->addr = addr;
		return 1;
	}
	ptl = pmd_lock(walk->mm, pmd);
	pmde = pmdp_get(pmd);
	if (pmd_trans_huge(pmde))
		page = vm_normal_page_pmd(walk->vma, addr, pmde);
	if (!page || !folio_test_anon(page_folio(page))) {
		/* Nothing for us in this PMD. */
		spin_unlock(ptl);
		return 0;
	}
	collect_page(c, page + ((addr & ~HPAGE_PMD_MASK) >> PAGE_SHIFT), addr,
		     walk, NULL);
	spin_unlock(ptl);
	c->addr = addr + PAGE_SIZE;
	return 1;
}

static int collect_pte(pte_t *pte, unsigned long addr, unsigned long next,
		       struct mm_walk *walk)
{
	struct ksm_collect *c = walk->private;
	pte_t ptent = ptep_get(pte);
	struct page *page = pte_candidate(walk->vma, addr, ptent);
	bool large;

	if (!page)
		return 0;
	large = folio_test_large(page_folio(page));
	/* A large folio starts a batch of its own. */
	if (large && c->n) {
		c->addr = addr;
		return 1;
	}
	if (collect_page(c, page, addr, walk, &ptent) &&
	    (large || c->n >= c->max)) {
		c->addr = next;
		return 1;
	}
	return 0;
}

static const struct mm_walk_ops ksm_collect_ops = {
	.pmd_entry	= collect_pmd,
	.pte_entry	= collect_pte,
	.walk_lock	= PGWALK_RDLOCK,
};

/*
 * Collect up to @max candidate pages of @vma in [*@addrp, @end).  Returns
 * the count; *@addrp is where the next call goes on, @end once the range
 * is done.  The walk stops early for a THP, a full batch or a lock break.
 */
static int collect_candidates(struct vm_area_struct *vma, unsigned long *addrp,
			      unsigned long end, struct ksm_cand *cand, int max,
			      bool *stop)
{
	struct ksm_collect c = {
		.cand = cand, .max = max, .start = *addrp,
	};

	if (walk_page_range_vma(vma, *addrp, end, &ksm_collect_ops, &c) > 0) {
		*addrp = c.addr;
		*stop = true;
	} else {
		*addrp = end;
	}
	return c.n;
}

/*
 * Write-protect or replace one PTE: the state of one pte_entry call.
 * @page is what the PTE must map (write_protect_page()), or @orig what it
 * must still be (replace_page()).
 */
struct ksm_pte_op {
	struct folio *folio;
	struct page *page;
	struct page *kpage;
	pte_t orig;
	int err;
};

static int pte_op_pmd(pmd_t *pmd, unsigned long addr, unsigned long next,
		      struct mm_walk *walk)
{
	pmd_t pmde = pmdp_get_lockless(pmd);

	/* KSM works on small folios only: a PMD leaf is not ours. */
	if (!pmd_present(pmde) || pmd_trans_huge(pmde))
		walk->action = ACTION_CONTINUE;
	return 0;
}

/*
 * Make the PTE read-only, and make sure nobody can write to the page
 * behind our back: the PTE is cleared and flushed first so that GUP-fast
 * cannot take new references, then the refcount must match the mappings
 * (a pin or any other user makes us give up), and an exclusive anon page
 * must be markable as shared.
 */
static int wrprotect_pte(pte_t *pte, unsigned long addr, unsigned long next,
			 struct mm_walk *walk)
{
	struct ksm_pte_op *op = walk->private;
	struct vm_area_struct *vma = walk->vma;
	struct folio *folio = op->folio;
	struct mm_struct *mm = walk->mm;
	pte_t entry = ptep_get(pte);
	bool anon_exclusive;

	if (!pte_present(entry) || pte_page(entry) != op->page)
		return 0;

	anon_exclusive = PageAnonExclusive(op->page);
	if (pte_write(entry) || pte_dirty(entry) || anon_exclusive ||
	    mm_tlb_flush_pending(mm)) {
		int swapped = folio_test_swapcache(folio);

		flush_cache_page(vma, addr, pte_pfn(entry));
		entry = ptep_clear_flush(vma, addr, pte);
		/* mappings + our reference + swap cache, nothing else */
		if (folio_mapcount(folio) + 1 + swapped !=
		    folio_ref_count(folio)) {
			set_pte_at(mm, addr, pte, entry);
			return 0;
		}
		if (anon_exclusive &&
		    folio_try_share_anon_rmap_pte(folio, op->page)) {
			set_pte_at(mm, addr, pte, entry);
			return 0;
		}
		if (pte_dirty(entry))
			folio_mark_dirty(folio);
		entry = pte_mkclean(pte_wrprotect(entry));
		set_pte_at(mm, addr, pte, entry);
	} else if (folio_maybe_dma_pinned(folio)) {
		return 0;
	}
	op->orig = entry;
	op->err = 0;
	return 0;
}

/* Map op->kpage (a locked KSM page, or the zero page) in place of op->page. */
static int replace_pte(pte_t *pte, unsigned long addr, unsigned long next,
		       struct mm_walk *walk)
{
	struct ksm_pte_op *op = walk->private;
	struct vm_area_struct *vma = walk->vma;
	struct folio *folio = op->folio;
	struct mm_struct *mm = walk->mm;
	struct page *kpage = op->kpage;
	pte_t newpte;

	/* The accessed bit may have been set by hardware meanwhile. */
	if (!pte_same(pte_mkold(ptep_get(pte)), pte_mkold(op->orig)))
		return 0;

	if (is_zero_pfn(page_to_pfn(kpage))) {
		/* The dirty bit tells is_ksm_zero_pte() that KSM put it here. */
		newpte = pfn_pte(page_to_pfn(kpage), vma->vm_page_prot);
		newpte = pte_mkdirty(pte_wrprotect(pte_mkspecial(newpte)));
		ksm_map_zero_page(mm);
		dec_mm_counter(mm, MM_ANONPAGES);
	} else {
		folio_get(page_folio(kpage));
		folio_add_anon_rmap_pte(page_folio(kpage), kpage, vma, addr,
					RMAP_NONE);
		newpte = pte_wrprotect(mk_pte(kpage, vma->vm_page_prot));
	}
	if (pte_uffd_wp(op->orig))
		newpte = pte_mkuffd_wp(newpte);
	if (pte_soft_dirty(op->orig))
		newpte = pte_mksoft_dirty(newpte);

	flush_cache_page(vma, addr, page_to_pfn(op->page));
	ptep_clear_flush(vma, addr, pte);
	set_pte_at(mm, addr, pte, newpte);

	/* The reference that the old PTE held goes with it. */
	folio_remove_rmap_pte(folio, op->page, vma);
	if (!folio_mapped(folio))
		folio_free_swap(folio);
	folio_put(folio);
	op->err = 0;
	return 0;
}

static const struct mm_walk_ops ksm_wrprotect_ops = {
	.pmd_entry	= pte_op_pmd,
	.pte_entry	= wrprotect_pte,
	.walk_lock	= PGWALK_RDLOCK,
};

static const struct mm_walk_ops ksm_replace_ops = {
	.pmd_entry	= pte_op_pmd,
	.pte_entry	= replace_pte,
	.walk_lock	= PGWALK_RDLOCK,
};

/*
 * Estimate mode: the candidates of one collect_candidates() call whose
 * PTEs est_protect() makes read-only, walked in address order.
 */
struct ksm_est_batch {
	struct ksm_cand *cand;
	int n, i;
	bool changed;
};

/*
 * Make one PTE read-only and clean, keeping the page exclusive: its next
 * write reuses it in place after a minor fault that makes the PTE
 * writable and dirty again.  As in wrprotect_pte(), nobody but the
 * mappings and our reference may hold the page, else a write through that
 * reference could go unseen; GUP-fast takes its reference before it checks
 * that the PTE did not change, and we clear the PTE before we count.  The
 * TLB flush is left to est_protect(), which reads no page before it.
 */
static int est_protect_pte(pte_t *pte, unsigned long addr, unsigned long next,
			   struct mm_walk *walk)
{
	struct ksm_est_batch *b = walk->private;
	struct vm_area_struct *vma = walk->vma;
	struct ksm_cand *cand;
	struct folio *folio;
	pte_t old, entry;
	int swapped;

	while (b->i < b->n && b->cand[b->i].addr < addr)
		b->i++;
	if (b->i == b->n || b->cand[b->i].addr != addr)
		return 0;
	cand = b->cand + b->i;
	entry = ptep_get(pte);
	/* What collect_pte() saw, or something else now: leave it. */
	if (!cand->protect || !pte_present(entry) ||
	    pte_page(entry) != cand->page ||
	    !est_pte_protectable(walk, entry, cand->page))
		return 0;
	folio = page_folio(cand->page);
	if (!folio_trylock(folio))
		return 0;
	swapped = folio_test_swapcache(folio);
	old = ptep_modify_prot_start(vma, addr, pte);
	/* Pairs with GUP-fast taking its reference, then re-reading the PTE. */
	smp_mb();
	if (folio_mapcount(folio) + 1 + swapped != folio_ref_count(folio)) {
		ptep_modify_prot_commit(vma, addr, pte, old, old);
		folio_unlock(folio);
		return 0;
	}
	/* The dirty bit goes to the folio, as on any unmap. */
	if (pte_dirty(old))
		folio_mark_dirty(folio);
	entry = pte_mkclean(pte_wrprotect(old));
	ptep_modify_prot_commit(vma, addr, pte, old, entry);
	folio_unlock(folio);
	cand->wp = true;
	b->changed = true;
	return 0;
}

static const struct mm_walk_ops ksm_est_protect_ops = {
	.pmd_entry	= pte_op_pmd,
	.pte_entry	= est_protect_pte,
	.walk_lock	= PGWALK_RDLOCK,
};

/*
 * Estimate mode, before the @n pages collected in @vma are read: make the
 * PTEs that are writable read-only and clean (only the PTE changes, the
 * mapping stays), so that a later visit that finds one still so
 * (est_pte_unwritten()) may take the hash of this visit as the page's
 * without reading it.  One TLB flush and one mmu notifier range for the
 * whole batch, as mprotect() does it.  A PTE it cannot protect (a lock
 * not at hand, a pin or other reference) is just read again next time.
 */
static void est_protect(struct vm_area_struct *vma, struct ksm_cand *cand,
			int n)
{
	struct ksm_est_batch b = { .cand = cand, .n = n };
	unsigned long start = 0, end = 0;
	struct mmu_notifier_range range;
	struct mm_struct *mm = vma->vm_mm;
	int i;

	mmap_assert_locked(mm);
	for (i = 0; i < n; i++) {
		if (!cand[i].protect)
			continue;
		if (!end)
			start = cand[i].addr;
		end = cand[i].addr + PAGE_SIZE;
	}
	if (!end)
		return;
	mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_PAGE, 0, mm,
				start, end);
	mmu_notifier_invalidate_range_start(&range);
	/* Until the flush, a PTE we made read-only may still be written. */
	inc_tlb_flush_pending(mm);
	flush_cache_range(vma, start, end);
	walk_page_range_vma(vma, start, end, &ksm_est_protect_ops, &b);
	if (b.changed)
		flush_tlb_range(vma, start, end);
	dec_tlb_flush_pending(mm);
	mmu_notifier_invalidate_range_end(&range);
}

/* Run @ops on the PTE at @addr, inside an mmu notifier invalidation. */
static int ksm_pte_op(struct vm_area_struct *vma, unsigned long addr,
		      const struct mm_walk_ops *ops, struct ksm_pte_op *op)
{
	struct mmu_notifier_range range;

	mmap_assert_locked(vma->vm_mm);
	op->err = -EFAULT;
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, vma->vm_mm, addr,
				addr + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	walk_page_range_vma(vma, addr, addr + PAGE_SIZE, ops, op);
	mmu_notifier_invalidate_range_end(&range);
	return op->err;
}

/*
 * Make the PTE mapping @page (of locked small @folio) at @addr read-only.
 * On success *@orig gets the PTE now installed, for replace_page().
 */
static int write_protect_page(struct vm_area_struct *vma, struct folio *folio,
			      struct page *page, unsigned long addr,
			      pte_t *orig)
{
	struct ksm_pte_op op = { .folio = folio, .page = page };
	int err;

	VM_WARN_ON_FOLIO(!folio_test_locked(folio), folio);
	if (WARN_ON_ONCE(folio_test_large(folio)))
		return -EFAULT;
	err = ksm_pte_op(vma, addr, &ksm_wrprotect_ops, &op);
	if (!err)
		*orig = op.orig;
	return err;
}

/*
 * Map @kpage (a locked KSM page, or the zero page) at @addr in place of
 * @page, whose PTE must still be @orig.  @page's folio is locked.
 */
static int replace_page(struct vm_area_struct *vma, struct page *page,
			struct page *kpage, unsigned long addr, pte_t orig)
{
	struct ksm_pte_op op = {
		.folio = page_folio(page), .page = page, .kpage = kpage,
		.orig = orig,
	};

	VM_WARN_ON_FOLIO(!folio_test_locked(op.folio), op.folio);
	return ksm_pte_op(vma, addr, &ksm_replace_ops, &op);
}

/*
 * Lock the folio of @page (which we hold a reference on), splitting it
 * first if it is large.  Returns the locked small folio or NULL.
 */
static struct folio *lock_small_folio(struct page *page, bool trylock)
{
	struct folio *folio = page_folio(page);

	if (trylock) {
		if (!folio_trylock(folio))
			return NULL;
	} else {
		folio_lock(folio);
	}
	if (folio_test_large(folio)) {
		if (!folio_test_anon(folio) || split_huge_page(page)) {
			folio_unlock(folio);
			return NULL;
		}
		/* The lock and our reference moved to @page's folio. */
		folio = page_folio(page);
	}
	return folio;
}

/* ---- unmerging -------------------------------------------------------- */

/* Looking for the next KSM mapping in a range. */
struct ksm_find {
	unsigned long start;		/* where the walk began */
	unsigned long addr;		/* the mapping, or where to go on */
	bool found;
};

static int find_ksm_pmd(pmd_t *pmd, unsigned long addr, unsigned long next,
			struct mm_walk *walk)
{
	struct ksm_find *f = walk->private;

	if (addr != f->start && need_resched()) {
		f->addr = addr;
		return 1;
	}
	return pte_op_pmd(pmd, addr, next, walk);
}

/*
 * A KSM page, the KSM zero page, or a KSM page under migration: unmerge
 * must wait for the migration, or the new KSM page would be left mapped
 * in a range that no item tracks any more.
 */
static int find_ksm_pte(pte_t *pte, unsigned long addr, unsigned long next,
			struct mm_walk *walk)
{
	struct ksm_find *f = walk->private;
	pte_t ptent = ptep_get(pte);
	struct folio *folio = NULL;

	if (pte_present(ptent)) {
		struct page *page = vm_normal_page(walk->vma, addr, ptent);

		if (page)
			folio = page_folio(page);
		else if (is_ksm_zero_pte(ptent))
			f->found = true;
	} else if (!pte_none(ptent)) {
		swp_entry_t entry = pte_to_swp_entry(ptent);

		/* The PTE lock keeps the old folio until the entry goes. */
		if (is_migration_entry(entry))
			folio = pfn_swap_entry_folio(entry);
	}
	if (folio && folio_test_ksm(folio))
		f->found = true;
	if (!f->found)
		return 0;
	f->addr = addr;
	return 1;
}

static const struct mm_walk_ops ksm_find_ops = {
	.pmd_entry	= find_ksm_pmd,
	.pte_entry	= find_ksm_pte,
	.walk_lock	= PGWALK_RDLOCK,
};

/*
 * Look for a KSM mapping in [@start, @end).  Returns true and its address
 * in *@addr; or false, with *@addr where to go on (@end when the range
 * holds none; before that when the walk stopped to reschedule).
 */
static bool find_ksm_mapping(struct vm_area_struct *vma, unsigned long start,
			     unsigned long end, unsigned long *addr)
{
	struct ksm_find f = { .start = start, .addr = end };

	walk_page_range_vma(vma, start, end, &ksm_find_ops, &f);
	*addr = f.addr;
	return f.found;
}

#define BREAK_KSM_GIVE_UP	(VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | \
				 VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)

/*
 * Break COW on a KSM page or KSM zero page mapped at @addr, so the mm gets
 * a private copy of its data.  A migration entry is waited for by the
 * fault, then looked at again.
 */
static int break_ksm(struct vm_area_struct *vma, unsigned long addr)
{
	unsigned long where;

	mmap_assert_locked(vma->vm_mm);
	/* Until no KSM page is left there: ksmd may merge it again. */
	while (find_ksm_mapping(vma, addr, addr + PAGE_SIZE, &where)) {
		vm_fault_t ret;

		ret = handle_mm_fault(vma, addr,
				      FAULT_FLAG_UNSHARE | FAULT_FLAG_REMOTE,
				      NULL);
		if (ret & VM_FAULT_OOM)
			return -ENOMEM;
		if (ret & BREAK_KSM_GIVE_UP)
			break;
		cond_resched();
	}
	return 0;
}

/*
 * Unmerge [@start, @end) of @vma: find each KSM mapping with a page table
 * walk, which skips what was never populated, and break it.  A pending
 * signal stops it with -ERESTARTSYS; an exiting mm needs no unmerging.
 */
static int unmerge_ksm_pages(struct vm_area_struct *vma, unsigned long start,
			     unsigned long end)
{
	unsigned long addr = start;
	int err;

	while (addr < end && !ksm_test_exit(vma->vm_mm)) {
		if (signal_pending(current))
			return -ERESTARTSYS;
		if (find_ksm_mapping(vma, addr, end, &addr)) {
			ksm_race_delay();
			err = break_ksm(vma, addr);
			if (err)
				return err;
			addr += PAGE_SIZE;
		}
		cond_resched();
	}
	return 0;
}

/* ---- trees ------------------------------------------------------------ */

/* A node whose page holds the content @node is filed under. */
static inline struct ksm_stable_node *node_any(struct ksm_stable_node *node)
{
	if (node->kind != NODE_CHAIN)
		return node;
	return hlist_entry(node->hlist.first, struct ksm_stable_node,
			   hlist_dup);
}

/*
 * A poisoned KSM page must never be read, and without reading it a walk
 * cannot tell which way to go: its node leaves the tree for the migrate
 * list, where refile_migrated_nodes() leaves it (its items and rmap stay
 * as they are, for memory-failure handling).
 */
static void park_poisoned_node(struct ksm_stable_node *node)
{
	unlink_stable_node(node);
	node->kind = NODE_MIGRATE;
	list_add(&node->list, &migrate_nodes);
}

/* Outcomes of comparing a page with a tree entry of the same key. */
enum ksm_cmp {
	CMP_LEFT,	/* the page goes left of the entry */
	CMP_RIGHT,	/* ... right of it */
	CMP_MATCH,	/* same bytes */
	CMP_GONE,	/* the entry went away meanwhile: start over */
};

static inline enum ksm_cmp memcmp_to_cmp(int cmp)
{
	return cmp < 0 ? CMP_LEFT : cmp > 0 ? CMP_RIGHT : CMP_MATCH;
}

/*
 * Compare @page with stable node @s, whose key is @page's.  A KSM page is
 * write-protected, so this order never goes stale.  On CMP_MATCH, *@folio
 * is the node's KSM folio, with a reference held.  A poisoned KSM page's
 * node is parked, and the walk starts over.
 */
static enum ksm_cmp stable_node_cmp(struct page *page,
				    struct ksm_stable_node *s,
				    struct folio **folio)
{
	struct ksm_stable_node *any = node_any(s);
	enum ksm_cmp cmp;

	*folio = get_ksm_folio(any, false);
	if (!*folio)
		return CMP_GONE;
	if (PageHWPoison(folio_page(*folio, 0))) {
		park_poisoned_node(any);
		cmp = CMP_GONE;
	} else {
		cmp = memcmp_to_cmp(memcmp_pages(page, folio_page(*folio, 0)));
	}
	if (cmp != CMP_MATCH)
		folio_put(*folio);
	return cmp;
}

/*
 * A KSM page of @node now lives on another NUMA node than the tree it is
 * filed in: take it out, to be re-filed at the start of the next scan.
 */
static bool stable_node_misplaced(struct ksm_stable_node *node,
				  struct folio *folio)
{
	lockdep_assert_held(&ksm_thread_mutex);

	if (ksm_merge_across_nodes || folio_nid(folio) == node->nid)
		return false;
	unlink_stable_node(node);
	node->kind = NODE_MIGRATE;
	list_add(&node->list, &migrate_nodes);
	return true;
}

/* Turn chain @chain back into a regular node if one dup is left. */
static void chain_collapse(struct ksm_stable_node *chain)
{
	struct ksm_stable_node *dup;

	lockdep_assert_held(&ksm_thread_mutex);
	if (chain->rmap_hlist_len != 1)
		return;
	dup = hlist_entry(chain->hlist.first, struct ksm_stable_node,
			  hlist_dup);
	hlist_del(&dup->hlist_dup);
	dup->kind = NODE_REGULAR;
	dup->nid = chain->nid;
	rb_replace_node(&chain->node, &dup->node, node_root(chain));
	ksm_stable_node_dups--;
	ksm_stable_node_chains--;
	chain->rmap_hlist_len = 0;
	free_stable_node(chain);
}

/*
 * Drop stale (and move misplaced) dups of @chain if the prune interval has
 * passed or @force.  Returns true if the chain changed or went away.
 */
static bool chain_prune(struct ksm_stable_node *chain, bool force)
{
	struct ksm_stable_node *dup;
	struct hlist_node *tmp;
	unsigned long interval;
	bool changed = false;

	lockdep_assert_held(&ksm_thread_mutex);
	interval = msecs_to_jiffies(READ_ONCE(ksm_stable_node_chains_prune_millisecs));
	if (!force && time_before(jiffies, chain->prune_time + interval))
		return false;
	chain->prune_time = jiffies;
	hlist_for_each_entry_safe(dup, tmp, &chain->hlist, hlist_dup) {
		/* Unlinking the last dup frees the chain. */
		bool last = chain->rmap_hlist_len == 1;
		struct folio *folio = get_ksm_folio(dup, false);

		if (folio) {
			bool moved = stable_node_misplaced(dup, folio);

			folio_put(folio);
			if (!moved)
				continue;
		}
		if (last)
			return true;
		changed = true;
	}
	if (chain->rmap_hlist_len == 1) {
		chain_collapse(chain);
		return true;
	}
	return changed;
}

/*
 * Find a KSM page with the content of @page (key @key) in stable tree @nid
 * that can take one more mapping.  Returns it with a reference held, and
 * its node.
 */
static struct folio *stable_tree_search(struct page *page, u64 key, int nid,
					struct ksm_stable_node **nodep)
{
	struct rb_root *root = root_stable_tree + nid;
	struct ksm_stable_node *s, *cand, *dup;
	struct folio *folio;
	struct rb_node *rb;
	enum ksm_cmp cmp;

	lockdep_assert_held(&ksm_thread_mutex);
again:
	rb = root->rb_node;
	while (rb) {
		s = rb_entry(rb, struct ksm_stable_node, node);
		if (key != s->hash) {
			rb = key < s->hash ? rb->rb_left : rb->rb_right;
			continue;
		}
		cmp = stable_node_cmp(page, s, &folio);
		if (cmp == CMP_MATCH)
			break;
		if (cmp == CMP_GONE)
			goto again;
		rb = cmp == CMP_LEFT ? rb->rb_left : rb->rb_right;
	}
	if (!rb)
		return NULL;

	/* @s holds our content: find a KSM page of it with room. */
	if (s->kind == NODE_CHAIN) {
		folio_put(folio);
		if (chain_prune(s, false))
			goto again;
		cand = NULL;
		hlist_for_each_entry(dup, &s->hlist, hlist_dup) {
			if (dup->rmap_hlist_len < ksm_max_page_sharing) {
				cand = dup;
				break;
			}
		}
		if (!cand)
			return NULL;
		folio = get_ksm_folio(cand, false);
		if (!folio)
			goto again;
		if (PageHWPoison(folio_page(folio, 0))) {
			folio_put(folio);
			park_poisoned_node(cand);
			goto again;
		}
	} else if (s->rmap_hlist_len < ksm_max_page_sharing) {
		cand = s;
	} else {
		folio_put(folio);
		return NULL;
	}
	if (stable_node_misplaced(cand, folio)) {
		folio_put(folio);
		goto again;
	}
	*nodep = cand;
	return folio;
}

/*
 * Make @node a dup of @s, whose content it has (@s must be full, or we
 * would have merged into it).  False if there is no memory for a chain.
 */
static bool stable_node_chain(struct ksm_stable_node *s,
			      struct ksm_stable_node *node)
{
	struct ksm_stable_node *chain = s;

	if (s->kind != NODE_CHAIN) {
		chain = alloc_stable_node();
		if (!chain)
			return false;
		chain->kind = NODE_CHAIN;
		chain->hash = s->hash;
		chain->nid = s->nid;
		chain->prune_time = jiffies;
		rb_replace_node(&s->node, &chain->node, node_root(s));
		s->kind = NODE_DUP;
		s->chain = chain;
		hlist_add_head(&s->hlist_dup, &chain->hlist);
		chain->rmap_hlist_len = 1;
		ksm_stable_node_chains++;
		ksm_stable_node_dups++;
	}
	node->kind = NODE_DUP;
	node->chain = chain;
	hlist_add_head(&node->hlist_dup, &chain->hlist);
	chain->rmap_hlist_len++;
	ksm_stable_node_dups++;
	return true;
}

/*
 * File KSM page node @node (kpfn, hash and nid set), whose page is @kpage,
 * in its stable tree.  If a KSM page with the same content is filed there
 * already, the two become dups of a chain; without memory for the chain,
 * @node goes in as a regular node next to it.
 */
static void stable_tree_insert(struct ksm_stable_node *node,
			       struct page *kpage)
{
	struct rb_root *root = node_root(node);
	struct rb_node **link, *parent;
	struct ksm_stable_node *s;
	bool no_chain = false;
	struct folio *folio;
	enum ksm_cmp cmp;

	lockdep_assert_held(&ksm_thread_mutex);
again:
	link = &root->rb_node;
	parent = NULL;
	while (*link) {
		parent = *link;
		s = rb_entry(parent, struct ksm_stable_node, node);
		if (node->hash != s->hash) {
			cmp = node->hash < s->hash ? CMP_LEFT : CMP_RIGHT;
		} else {
			cmp = stable_node_cmp(kpage, s, &folio);
			if (cmp == CMP_GONE)
				goto again;
			if (cmp == CMP_MATCH) {
				folio_put(folio);
				if (!no_chain && stable_node_chain(s, node))
					return;
				no_chain = true;
			}
		}
		link = cmp == CMP_LEFT ? &parent->rb_left : &parent->rb_right;
	}
	node->kind = NODE_REGULAR;
	rb_link_node(&node->node, parent, link);
	rb_insert_color(&node->node, root);
}

/* Add @item to @node, whose folio is locked. */
static void stable_item_attach(struct ksm_stable_node *node,
			       struct ksm_rmap_item *item,
			       struct anon_vma *anon_vma)
{
	lockdep_assert_held(&ksm_thread_mutex);
	/* Estimate mode never merges, and leaves no member behind. */
	VM_WARN_ON_ONCE(item_is_est_member(item));

	get_anon_vma(anon_vma);
	item->anon_vma = anon_vma;
	item->head = node;
	hlist_add_head(&item->hlist, &node->hlist);
	if (node->rmap_hlist_len++ == 0)
		ksm_pages_shared++;
	ksm_stable_items++;
	item->mm->ksm_merging_pages++;
	/* Stamped with the generation of the merge: see item_merge_broken(). */
	item->address &= ~(ITEM_UNSTABLE | ITEM_SEQ_MASK | ITEM_SKIP_MASK);
	if (!(item->address & ITEM_THRASH))
		item->address &= ~ITEM_AGE_MASK;
	item->address |= ITEM_STABLE | (cur_seq() << ITEM_SEQ_SHIFT);
}

/* Re-file KSM pages that moved to another NUMA node. */
static void refile_migrated_nodes(void)
{
	struct ksm_stable_node *node, *tmp;

	lockdep_assert_held(&ksm_thread_mutex);
	list_for_each_entry_safe(node, tmp, &migrate_nodes, list) {
		struct folio *folio = get_ksm_folio(node, false);

		if (!folio)
			continue;
		/* Never to be read again: see park_poisoned_node(). */
		if (PageHWPoison(folio_page(folio, 0))) {
			folio_put(folio);
			continue;
		}
		list_del(&node->list);
		node->nid = get_kpfn_nid(folio_pfn(folio));
		stable_tree_insert(node, folio_page(folio, 0));
		folio_put(folio);
		cond_resched();
	}
}

/*
 * Drop @node if its page is gone or its kpfn lies in [@start, @end); with
 * @unmapped, also if nobody maps its page any more (run=2: the page may
 * still sit in the swap cache or a per-cpu batch; it stays a KSM page
 * without a node, which swapin copies).  Returns
 * true if the node went away.
 */
static bool sweep_one(struct ksm_stable_node *node, unsigned long start,
		      unsigned long end, bool unmapped)
{
	struct folio *folio;

	if (node->kpfn >= start && node->kpfn < end) {
		remove_stale_node(node);
		return true;
	}
	folio = get_ksm_folio(node, unmapped);
	if (!folio)
		return true;
	if (unmapped) {
		bool gone = !folio_mapped(folio) && !node->rmap_hlist_len;

		if (gone) {
			/*
			 * Still KSM, but with no node: swapin copies it rather
			 * than letting one mm claim a page that other mms may
			 * reach through their swap entries.
			 */
			WRITE_ONCE(folio->mapping, node_mapping(NULL));
			remove_stale_node(node);
		}
		folio_unlock(folio);
		folio_put(folio);
		return gone;
	}
	folio_put(folio);
	return false;
}

/*
 * Look at every stable node and drop the ones sweep_one() says should go.
 * Whatever happens to the current tree node (erased, collapsed, moved),
 * its successor stays in the tree, so the walk goes on from there.
 */
static void sweep_stable_nodes(unsigned long start, unsigned long end,
			       bool unmapped)
{
	struct ksm_stable_node *node, *dup, *tmp;
	struct hlist_node *htmp;
	struct rb_node *rb, *next;
	int nid;

	lockdep_assert_held(&ksm_thread_mutex);
	for (nid = 0; nid < ksm_nr_node_ids; nid++) {
		for (rb = rb_first(root_stable_tree + nid); rb; rb = next) {
			next = rb_next(rb);
			node = rb_entry(rb, struct ksm_stable_node, node);
			if (node->kind == NODE_CHAIN) {
				bool gone = false;

				hlist_for_each_entry_safe(dup, htmp,
							  &node->hlist,
							  hlist_dup) {
					/* The last dup takes the chain along. */
					bool last = node->rmap_hlist_len == 1;

					if (sweep_one(dup, start, end,
						      unmapped) && last) {
						gone = true;
						break;
					}
				}
				if (!gone)
					chain_prune(node, true);
			} else {
				sweep_one(node, start, end, unmapped);
			}
			cond_resched();
		}
	}
	list_for_each_entry_safe(node, tmp, &migrate_nodes, list)
		sweep_one(node, start, end, unmapped);
}

/* ---- merging ------------------------------------------------------------ */

/*
 * Map @kfolio, the KSM page of @node, in place of @page.  Without @kfolio,
 * map the zero page instead, if @page is (still) all zeroes.
 */
static int try_to_merge_with_kpage(struct ksm_rmap_item *item,
				   struct page *page, struct folio *kfolio,
				   struct ksm_stable_node *node)
{
	struct mm_struct *mm = item->mm;
	unsigned long addr = item_addr(item);
	struct vm_area_struct *vma;
	struct folio *folio = NULL;
	struct page *kpage;
	bool same;
	pte_t orig;
	int err = -EFAULT;

	mmap_read_lock(mm);
	vma = find_mergeable_vma(mm, addr);
	if (vma)
		folio = lock_small_folio(page, false);
	if (!folio)
		goto out;
	if (folio == kfolio || !folio_test_anon(folio) ||
	    folio_test_ksm(folio))
		goto out_unlock;
	if (kfolio) {
		err = -EBUSY;
		if (!folio_trylock(kfolio))
			goto out_unlock;
		/* Migrated meanwhile, or full: not the page to map. */
		if (folio_stable_node(kfolio) != node ||
		    READ_ONCE(node->kpfn) != folio_pfn(kfolio) ||
		    node->rmap_hlist_len >= ksm_max_page_sharing)
			goto out_unlock_both;
		kpage = folio_page(kfolio, 0);
	} else {
		kpage = ZERO_PAGE(addr);
	}

	err = write_protect_page(vma, folio, page, addr, &orig);
	if (!err) {
		/* Read-only now: this compare is final. */
		same = kfolio ? pages_identical(page, kpage) :
				page_is_zero(page);
		err = same ? replace_page(vma, page, kpage, addr, orig) :
			     -EBUSY;
	}
	if (!err && kfolio) {
		/*
		 * A KSM page mapped once may have been MADV_FREEd since it
		 * was made: keep reclaim from discarding data we now share.
		 */
		folio_mark_dirty(kfolio);
		stable_item_attach(node, item, vma->anon_vma);
	}
out_unlock_both:
	if (kfolio)
		folio_unlock(kfolio);
out_unlock:
	folio_unlock(folio);
out:
	mmap_read_unlock(mm);
	/* Traced as upstream: the KSM page's pfn; zero pages on their own. */
	if (kfolio)
		trace_ksm_merge_with_ksm_page(kfolio, folio_pfn(kfolio), item,
					      mm, err);
	else if (vma)
		trace_ksm_merge_one_page(page_to_pfn(ZERO_PAGE(addr)), item,
					 mm, err);
	return err;
}

/* Is @mm in the merge domain of the mm being scanned? */
static bool mm_in_scan_domain(struct mm_struct *mm)
{
	struct ksm_mm_slot *slot;
	bool same;

	lockdep_assert_held(&ksm_thread_mutex);
	spin_lock(&ksm_mmlist_lock);
	slot = get_mm_slot(mm);
	same = slot && slot_domain(slot) == ksm_scan.domain;
	spin_unlock(&ksm_mmlist_lock);
	return same;
}

/* rmap_walk() callback: stop at a VMA of an mm outside the scan domain. */
static bool vma_in_scan_domain(struct folio *folio, struct vm_area_struct *vma,
			       unsigned long addr, void *arg)
{
	bool *foreign = arg;

	if (mm_in_scan_domain(vma->vm_mm))
		return true;
	*foreign = true;
	return false;
}

/*
 * May locked @folio, mapped by the mm being scanned, become a KSM page in
 * place?  Every mm that maps it, or may map it again from swap, keeps it
 * as it is: with merge domains, a page shared over fork with a process
 * that later moved to another domain would be shared with that domain,
 * and so would every page merged into it later.  Any VMA of its anon_vma
 * outside our domain is enough to refuse.
 */
static bool folio_in_scan_domain(struct folio *folio)
{
	bool foreign = false;
	struct rmap_walk_control rwc = {
		.rmap_one = vma_in_scan_domain,
		.arg = &foreign,
	};

	lockdep_assert_held(&ksm_thread_mutex);
	VM_WARN_ON_FOLIO(!folio_test_locked(folio), folio);
	if (ksm_merge_domains == KSM_DOMAINS_OFF)
		return true;
	if (folio_mapcount(folio) == 1 && !folio_test_swapcache(folio))
		return true;
	rmap_walk(folio, &rwc);
	return !foreign;
}

/*
 * Merge @page (of @item) and @tpage (of unstable tree item @titem): one
 * becomes a new KSM page in place (@page, unless only @tpage may: see
 * folio_in_scan_domain()) and the other's mapping is replaced by it.
 */
static int try_to_merge_two_pages(struct ksm_rmap_item *item,
				  struct page *page,
				  struct ksm_rmap_item *titem,
				  struct page *tpage)
{
	struct mm_struct *mm = item->mm, *tmm = titem->mm;
	unsigned long addr = item_addr(item), taddr = item_addr(titem);
	struct vm_area_struct *vma, *tvma;
	struct ksm_stable_node *node = NULL;
	struct folio *folio, *tfolio, *kfolio;
	struct page *kpage, *gpage;
	struct vm_area_struct *gvma;
	unsigned long gaddr;
	void *old_mapping;
	pte_t orig, torig, gorig;
	bool replaced = false, swapped = false;
	int err = -EFAULT;
	u64 hash = 0;

	mmap_read_lock(mm);
	vma = find_mergeable_vma(mm, addr);
	if (!vma)
		goto out;
	/* Equal keys make this all but certain; a merge must make it sure. */
	if (tmm != mm && !mm_in_scan_domain(tmm)) {
		err = -EPERM;
		goto out;
	}
	if (tmm != mm && !mmap_read_trylock(tmm)) {
		err = -EBUSY;
		goto out;
	}
	tvma = find_mergeable_vma(tmm, taddr);
	if (!tvma)
		goto out_tmm;

	folio = lock_small_folio(page, false);
	if (!folio)
		goto out_tmm;
	tfolio = lock_small_folio(tpage, true);
	if (!tfolio) {
		err = -EBUSY;
		goto out_unlock;
	}
	err = -EFAULT;
	if (folio == tfolio || !folio_test_anon(folio) ||
	    folio_test_ksm(folio) || !folio_test_anon(tfolio) ||
	    folio_test_ksm(tfolio))
		goto out_unlock_both;

	err = write_protect_page(vma, folio, page, addr, &orig);
	if (!err)
		err = write_protect_page(tvma, tfolio, tpage, taddr, &torig);
	/*
	 * Both are read-only now: this compare is final, and so is the hash
	 * the new KSM page is filed under (the pages may both have changed
	 * since they were hashed).
	 */
	if (!err && !pages_identical(page, tpage))
		err = -EBUSY;
	if (err)
		goto out_unlock_both;
	/* Which one stays, as the KSM page, and which one goes. */
	kfolio = folio;
	kpage = page;
	gpage = tpage;
	gvma = tvma;
	gaddr = taddr;
	gorig = torig;
	if (!folio_in_scan_domain(folio)) {
		err = -EBUSY;
		if (!folio_in_scan_domain(tfolio))
			goto out_unlock_both;
		err = 0;
		swapped = true;
		kfolio = tfolio;
		kpage = tpage;
		gpage = page;
		gvma = vma;
		gaddr = addr;
		gorig = orig;
	}
	if (!err)
		hash = page_hash(page) ^ ksm_scan.salt;
	if (!err) {
		node = alloc_stable_node();
		if (!node)
			err = -ENOMEM;
	}
	if (err)
		goto out_unlock_both;

	/*
	 * Reclaim discards a clean lazyfree (MADV_FREE) page; the one we
	 * keep must be written to swap instead, since the other's data is
	 * in it.
	 */
	folio_mark_dirty(kfolio);
	old_mapping = kfolio->mapping;
	folio_set_stable_node(kfolio, node);
	replaced = true;
	err = replace_page(gvma, gpage, kpage, gaddr, gorig);
	if (err) {
		/*
		 * Nobody could have looked at the folio as a KSM page: that
		 * needs its lock, which we hold.  Make it plain anon again.
		 */
		WRITE_ONCE(kfolio->mapping, old_mapping);
		free_stable_node(node);
		goto out_unlock_both;
	}
	node->kpfn = folio_pfn(kfolio);
	node->hash = hash;
	node->nid = get_kpfn_nid(node->kpfn);
	stable_tree_insert(node, kpage);
	stable_item_attach(node, item, vma->anon_vma);
	stable_item_attach(node, titem, tvma->anon_vma);

out_unlock_both:
	folio_unlock(tfolio);
out_unlock:
	folio_unlock(folio);
out_tmm:
	if (tmm != mm)
		mmap_read_unlock(tmm);
out:
	mmap_read_unlock(mm);
	/*
	 * Traced as upstream traces its two steps: a page made ready to be a
	 * KSM page (no KSM page yet), then, if that worked, the other page
	 * mapped over by it.
	 */
	if (swapped) {
		swap(page, tpage);
		swap(item, titem);
		swap(mm, tmm);
	}
	trace_ksm_merge_with_ksm_page(NULL, page_to_pfn(page), item, mm,
				      replaced ? 0 : err);
	if (replaced)
		trace_ksm_merge_with_ksm_page(page, page_to_pfn(page), titem,
					      tmm, err);
	return err;
}

/*
 * Get the page mapped by unstable tree item @titem, with a reference, if
 * it is still an anonymous non-KSM page in a mergeable VMA.
 */
static struct page *get_mergeable_page(struct ksm_rmap_item *titem)
{
	unsigned long addr = item_addr(titem);
	struct mm_struct *mm = titem->mm;
	struct vm_area_struct *vma;
	struct ksm_cand cand;
	struct page *page;
	bool stop;

	mmap_read_lock(mm);
	vma = find_mergeable_vma(mm, addr);
	if (!vma ||
	    !collect_candidates(vma, &addr, addr + PAGE_SIZE, &cand, 1, &stop)) {
		mmap_read_unlock(mm);
		return NULL;
	}
	mmap_read_unlock(mm);
	page = cand.page;
	if (folio_test_ksm(page_folio(page)) || PageHWPoison(page)) {
		put_page(page);
		return NULL;
	}
	return page;
}

/*
 * Compare @page, whose key is @key, with unstable tree item @t of the same
 * key.  Unlike a KSM page, @t's page may have changed since it was filed:
 * CMP_GONE if it is no longer a mergeable page on node @nid, or if its
 * bytes differ from ours and no longer have its key (so they cannot place
 * us in the order).  On CMP_MATCH, *@tpagep is @t's page, referenced.
 */
static enum ksm_cmp unstable_item_cmp(struct page *page, u64 key,
				      struct ksm_rmap_item *t, int nid,
				      struct page **tpagep)
{
	struct page *tpage = get_mergeable_page(t);
	enum ksm_cmp cmp;

	if (!tpage)
		return CMP_GONE;
	if (get_kpfn_nid(page_to_pfn(tpage)) != nid) {
		cmp = CMP_GONE;
	} else if (tpage == page) {
		/* One page mapped twice (fork): equal, but no partner. */
		cmp = CMP_RIGHT;
	} else {
		cmp = memcmp_to_cmp(memcmp_pages(page, tpage));
		if (cmp == CMP_MATCH) {
			*tpagep = tpage;
			return cmp;
		}
		/* Same domain, as the key is ours: same salt. */
		if (page_hash(tpage) != (key ^ ksm_scan.salt))
			cmp = CMP_GONE;
	}
	put_page(tpage);
	return cmp;
}

/*
 * Walk unstable tree @nid for @page, whose key is @key.  With @tpagep, an
 * item with @page's bytes is taken out of the tree (left in it, in
 * estimate mode) and returned, its page in *@tpagep.  Otherwise (always,
 * without @tpagep) @item is filed where the walk ends, and NULL is
 * returned.
 *
 * Items met on the way whose pages changed beyond use leave the tree and
 * the walk starts over.  Each leaves once, and the rest are in (key, bytes)
 * order, so a walk costs O(log n) page compares plus the items it drops.
 */
static struct ksm_rmap_item *
unstable_tree_walk(struct ksm_rmap_item *item, struct page *page, u64 key,
		   int nid, struct page **tpagep)
{
	struct rb_root *root = root_unstable_tree + nid;
	struct rb_node **link, *parent;
	struct ksm_rmap_item *t;
	struct page *tpage;
	enum ksm_cmp cmp;

	lockdep_assert_held(&ksm_thread_mutex);
again:
	link = &root->rb_node;
	parent = NULL;
	while (*link) {
		parent = *link;
		t = rb_entry(parent, struct ksm_rmap_item, node);
		if (key != t->hash) {
			link = key < t->hash ? &parent->rb_left :
					       &parent->rb_right;
			continue;
		}
		cmp = unstable_item_cmp(page, key, t, nid, &tpage);
		if (cmp == CMP_GONE) {
			remove_item_from_unstable(t);
			goto again;
		}
		if (cmp == CMP_MATCH) {
			if (tpagep) {
				/* Estimate mode: @t leads our group, in place. */
				if (!ksm_estimate)
					remove_item_from_unstable(t);
				*tpagep = tpage;
				return t;
			}
			put_page(tpage);
		}
		link = cmp == CMP_LEFT ? &parent->rb_left : &parent->rb_right;
	}

	item->hash = key;
	rb_link_node(&item->node, parent, link);
	rb_insert_color(&item->node, root);
	item->address &= ~ITEM_SEQ_MASK;
	item->address |= ITEM_UNSTABLE | (cur_seq() << ITEM_SEQ_SHIFT);
	ksm_pages_unshared++;
	return NULL;
}

/*
 * Smart scan: how many scans to skip after @age unmerged visits.  The
 * first three are never followed by a skip, so that a page stays in the
 * unstable tree for a while after a possible partner first shows up.
 */
static unsigned int skips_for_age(unsigned int age)
{
	if (age < 3)
		return 0;
	return min(1U << (age - 3), 7U);
}

static void item_unmerged_visit(struct ksm_rmap_item *item)
{
	unsigned int age = item_field(item, ITEM_AGE_MASK, ITEM_AGE_SHIFT);
	unsigned int skips;

	if (!ksm_smart_scan)
		return;
	/* A thrash level is not an age: it wears off instead. */
	if (!ksm_estimate && (item->address & ITEM_THRASH)) {
		item_thrash_decay(item);
		return;
	}
	if (age < 7)
		age++;
	item_set_field(item, ITEM_AGE_MASK, ITEM_AGE_SHIFT, age);
	/*
	 * Two pages that became equal late only merge in a scan that visits
	 * both.  With a fixed back-off, two long-unique pages would each be
	 * visited every 8th scan and, out of phase, never meet: a random
	 * part of the back-off lets their phases drift.
	 */
	skips = skips_for_age(age);
	if (skips > 1)
		skips -= get_random_u32_below(skips / 2 + 1);
	item_set_field(item, ITEM_SKIP_MASK, ITEM_SKIP_SHIFT, skips);
}

/* @page is mapped at @item's address and is already a KSM page. */
static void adopt_ksm_page(struct ksm_rmap_item *item, struct page *page)
{
	struct folio *folio = page_folio(page);
	struct mm_struct *mm = item->mm;
	struct vm_area_struct *vma;
	struct ksm_stable_node *node;
	bool foreign = false;

	mmap_read_lock(mm);
	vma = find_mergeable_vma(mm, item_addr(item));
	if (vma) {
		folio_lock(folio);
		node = folio_stable_node(folio);
		/*
		 * The KSM page of another merge domain (its key is not ours):
		 * swapped in after a domain change, say.  Not ours to share.
		 */
		if (node && node->kind != NODE_CHAIN && ksm_merge_domains &&
		    node->hash != (page_hash(page) ^ ksm_scan.salt))
			foreign = true;
		else if (node && node->kind != NODE_CHAIN)
			stable_item_attach(node, item, vma->anon_vma);
		folio_unlock(folio);
		if (foreign)
			break_ksm(vma, item_addr(item));
	}
	mmap_read_unlock(mm);
}

/*
 * Smart scan: how many visits @item skips yet, counting this one.  A
 * skipped page is not read, but it still takes part in the scan under the
 * hash of its last visit, so a partner that shows up meanwhile finds it at
 * once instead of waiting out the back-off.  Every match is byte-compared,
 * so a stale hash only costs a miss.
 */
static bool item_skips_visit(struct ksm_rmap_item *item)
{
	return ksm_smart_scan && item_take_skip(item);
}

/*
 * Estimate mode reads a page whose PTE stayed read-only since its last
 * read (ITEM_EST_WP) only every EST_REREAD_SCANS full scans, at a phase
 * of its own: a change no fault saw (memory moved by mremap() onto
 * another page's item, say) shows within that many scans.
 */
#define EST_REREAD_SCANS	16

/*
 * Estimate mode, at the start of a visit: may the page's last hash be
 * taken as its content now (@unwritten: see est_pte_unwritten())?  The
 * mark goes either way; the visit sets it again if it still holds.
 */
static bool est_take_wp_mark(struct ksm_rmap_item *item, bool unwritten)
{
	bool marked = item->address & ITEM_EST_WP;

	item->address &= ~ITEM_EST_WP;
	return marked && unwritten && !est_marks_distrusted();
}

/*
 * One visit of @page, mapped at @item's address.  Estimate mode: the scan
 * walk found its PTE read-only and clean (@unwritten, est_pte_unwritten()),
 * and it is so now (@wp, est_protect()).  (The skipped and the real
 * visit share one body so that each tree operation has one call site and
 * stays inlined: out of line, a scan of unique pages cost 2.8x the CPU
 * under TCG.)
 */
static void cmp_and_merge_page(struct ksm_rmap_item *item, struct page *page,
			       bool unwritten, bool wp)
{
	struct folio *folio = page_folio(page);
	bool skipped, zero, reread, kept = false;
	struct ksm_stable_node *node;
	struct ksm_rmap_item *titem;
	struct folio *kfolio;
	struct page *tpage;
	u64 hash, raw;
	int nid, err;

	lockdep_assert_held(&ksm_thread_mutex);
	ksm_pages_scanned++;

	if (ksm_estimate)
		kept = est_take_wp_mark(item, unwritten);

	/* Never read a poisoned page. */
	if (PageHWPoison(page))
		return;

	/* scan_collect() took @item out of the unstable tree. */
	if (folio_test_ksm(folio)) {
		/*
		 * A KSM page that was swapped out (so its node lost its
		 * items) and is swapped in again: estimate mode leaves it.
		 */
		if (ksm_estimate)
			return;
		node = folio_stable_node(folio);
		if (item_is_stable(item) && item->head == node) {
			item_merge_lasts(item);
			return;
		}
		if (item_is_stable(item))
			remove_item_from_stable(item);
		adopt_ksm_page(item, page);
		return;
	}
	/* The KSM page was replaced (COW, swap): not stable any more. */
	if (item_is_stable(item)) {
		unsigned long was = item->address;

		remove_item_from_stable(item);
		/* (a second marking, if the stale node did it, is the same) */
		item_merge_broken(item, was);
	}
	if (item_sits_out(item))
		return;

	/* The pass of a kept page's reread is a real visit, not a skip. */
	reread = kept && !(((item_addr(item) >> PAGE_SHIFT) + ksm_scan.pass) %
			   EST_REREAD_SCANS);
	if (reread)
		kept = false;
	/* @hash is the tree key: in the mm's domain, see domain_salt(). */
	skipped = !reread && item_skips_visit(item);
	/* Not read, the page is as unwritten as it was: the mark stays. */
	if (kept) {
		item->address |= ITEM_EST_WP;
		/* and its hash is as good as a read's, skipped or not */
		hash = item->hash;
		if (ksm_use_zero_pages && hash == (zero_hash ^ ksm_scan.salt)) {
			est_join(item, NULL);
			return;
		}
	} else if (skipped) {
		hash = item->hash;
		/* Zero pages go to the zero page, on a real visit. */
		if (ksm_use_zero_pages && hash == (zero_hash ^ ksm_scan.salt)) {
			if (ksm_estimate)
				est_join(item, NULL);
			return;
		}
	} else {
		/* Read-only since before the read: what it gives holds. */
		if (wp)
			item->address |= ITEM_EST_WP;
		/*
		 * Zero first: memchr_inv() stops at the first nonzero byte,
		 * so any other page costs next to nothing more (one with a
		 * long zero prefix up to a second read), and a zero page is
		 * not hashed.
		 * Estimate mode, which sees zero pages every scan, saves most.
		 */
		zero = ksm_use_zero_pages && page_is_zero(page);
		raw = zero ? zero_hash : page_hash(page);
		hash = raw ^ ksm_scan.salt;
		if (zero) {
			if (ksm_estimate) {
				item->hash = hash;
				est_join(item, NULL);
				return;
			}
			if (!try_to_merge_with_kpage(item, page, NULL, NULL)) {
				item->hash = 0;
				return;
			}
		}
	}

	nid = get_kpfn_nid(page_to_pfn(page));
	/* Estimate mode merges into no KSM page, not even a leftover one. */
	kfolio = ksm_estimate ? NULL :
		 stable_tree_search(page, hash, nid, &node);
	/*
	 * A skipped visit's key is as old as its last real visit, maybe from
	 * before a merge_domains change: only the page's own key may decide
	 * which KSM page it merges into.
	 */
	if (kfolio && skipped && (page_hash(page) ^ ksm_scan.salt) != hash) {
		folio_put(kfolio);
		kfolio = NULL;
	}
	if (kfolio) {
		ksm_race_delay();
		err = try_to_merge_with_kpage(item, page, kfolio, node);
		folio_put(kfolio);
		if (!err)
			return;
	}

	/* Only pages that did not change since the last visit go on. */
	if (item->hash != hash) {
		item->hash = hash;
		item_reset_age(item);
		return;
	}

	titem = unstable_tree_walk(item, page, hash, nid, &tpage);
	if (!titem) {
		if (!skipped)
			item_unmerged_visit(item);
		return;
	}
	if (ksm_estimate) {
		put_page(tpage);
		/*
		 * As a merge would (below), a skipped visit's key must still
		 * be the page's: it may be of another domain's rule.  (Not
		 * a kept one: a rule change distrusts every mark.)
		 */
		raw = skipped && !kept ? page_hash(page) ^ ksm_scan.salt : hash;
		if (raw != hash) {
			item->hash = raw;
			item_reset_age(item);
			return;
		}
		est_join(item, titem);
		return;
	}
	if (page_folio(tpage) == folio) {
		/*
		 * Two subpages of one large folio: split it first, holding
		 * just our reference, then look again (a skipped visit
		 * leaves that to the next real one).
		 */
		put_page(tpage);
		if (skipped)
			return;
		folio = lock_small_folio(page, false);
		if (!folio)
			return;
		folio_unlock(folio);
		tpage = get_mergeable_page(titem);
		if (!tpage)
			return;
	}
	/* A new KSM page is filed under @hash: it must still hold. */
	if (skipped) {
		u64 now = page_hash(page) ^ ksm_scan.salt;

		if (now != hash) {
			/* Our change: the partner goes back for the others. */
			unstable_tree_walk(titem, tpage, titem->hash, nid, NULL);
			put_page(tpage);
			item->hash = now;
			item_reset_age(item);
			return;
		}
	}
	err = try_to_merge_two_pages(item, page, titem, tpage);
	/*
	 * On failure @item stays out of the tree until its next visit.  The
	 * partner goes back unless it is unusable: a lock we could not take,
	 * or our page changing, must not hide it from its other duplicates.
	 */
	if (err == -EBUSY || err == -ENOMEM)
		unstable_tree_walk(titem, tpage, titem->hash, nid, NULL);
	put_page(tpage);
	if (err)
		item->hash = hash;
}

/* ---- scanning ---------------------------------------------------------- */

/*
 * Return the item for @addr and advance the cursor past it.  Items the
 * cursor steps over (their page is gone) are freed on the way; a missing
 * item is allocated and linked in at the cursor.
 */
static struct ksm_rmap_item *get_next_item(struct ksm_mm_slot *slot,
					   unsigned long addr)
{
	struct ksm_rmap_item *item;

	lockdep_assert_held(&ksm_thread_mutex);
	for (item = *ksm_scan.link; item && item_addr(item) < addr;
	     item = *ksm_scan.link) {
		*ksm_scan.link = item->rmap_list;
		remove_item_from_tree(item);
		free_rmap_item(item);
	}
	if (!item || item_addr(item) != addr) {
		struct ksm_rmap_item *next = item;

		item = alloc_rmap_item(slot->slot.mm);
		if (!item)
			return NULL;
		item->address = addr;
		item->rmap_list = next;
		*ksm_scan.link = item;
	}
	ksm_scan.link = &item->rmap_list;
	return item;
}

static void ksm_start_full_scan(void)
{
	int nid;

	lockdep_assert_held(&ksm_thread_mutex);
	/* Left by a pass that did not end (run=2): its leaders go now. */
	est_end_groups(false);
	ksm_est_pass_valid = ksm_estimate;
	ksm_scan.seqnr++;
	for (nid = 0; nid < ksm_nr_node_ids; nid++)
		root_unstable_tree[nid] = RB_ROOT;
	ksm_pages_unshared = 0;
	refile_migrated_nodes();
	if (time_after(jiffies, ksm_last_sweep +
		       msecs_to_jiffies(READ_ONCE(ksm_stable_node_chains_prune_millisecs)))) {
		sweep_stable_nodes(0, 0, false);
		ksm_last_sweep = jiffies;
	}
	ksm_advisor_scan_start = ktime_get();
	ksm_advisor_cpu_start = task_sched_runtime(current);
	trace_ksm_start_scan(READ_ONCE(ksm_full_scans), ksm_rmap_items);
}

static void ksm_advisor_end_scan(void)
{
	s64 scan_ns = ktime_to_ns(ktime_sub(ktime_get(),
					    ksm_advisor_scan_start));
	u64 cpu_ns = task_sched_runtime(current) - ksm_advisor_cpu_start;
	u64 target_ns = (u64)ksm_advisor_target_scan_time * NSEC_PER_SEC;
	unsigned long pages = ksm_thread_pages_to_scan, want;
	unsigned int cpu_percent;

	if (ksm_advisor != KSM_ADVISOR_SCAN_TIME || scan_ns <= 0 || !target_ns)
		return;
	cpu_percent = div64_u64(cpu_ns * 100, scan_ns);

	/* Rate needed to finish a scan in the target time ... */
	want = div64_u64((u64)pages * scan_ns, target_ns);
	if (!want)
		want = 1;
	/* ... but not more CPU than allowed ... */
	if (cpu_percent > ksm_advisor_max_cpu && cpu_percent)
		want = min_t(unsigned long, want,
			     (u64)pages * ksm_advisor_max_cpu / cpu_percent);
	/* ... approached smoothly, within bounds. */
	want = (pages + want) / 2;
	want = clamp(want, ksm_advisor_min_pages_to_scan,
		     ksm_advisor_max_pages_to_scan);
	WRITE_ONCE(ksm_thread_pages_to_scan, want);
	/* In whole seconds, at least 1, as upstream reports it. */
	trace_ksm_advisor(max_t(s64, div_s64(scan_ns, NSEC_PER_SEC), 1), want,
			  cpu_percent);
}

/*
 * A pass walks the mms registered before it began, in list order.  The
 * others (a fork storm adds them faster than ksmd walks) wait for the end
 * of the walk, where each mm registered until then is walked from its
 * start (a rewind), and so is each range made mergeable behind the
 * cursor: once per mm and pass.  Mms registered while the rewinds run are
 * taken along too, as many as the regular walk entered (at least
 * KSM_LATE_REWINDS); past that they wait for the next pass.  So a pass
 * takes at most about twice its regular walk, however fast mms come, and
 * a counted pass has walked every mm registered before its rewinds began,
 * and the later ones unless they came faster than ksmd walks.
 */
#define KSM_LATE_REWINDS	16

/* The next mm of the regular walk after @slot, or the head. */
static struct ksm_mm_slot *next_walk_slot_locked(struct ksm_mm_slot *slot)
{
	lockdep_assert_held(&ksm_mmlist_lock);
	do {
		slot = list_next_entry(slot, slot.mm_node);
	} while (slot != &ksm_mm_head && slot->seq > ksm_scan.start_seq);
	return slot;
}

/*
 * The walk of the last mm ended; under ksm_mmlist_lock.  Return the slot
 * to rewind into (setting *@addr), or count the pass and return the head.
 */
static struct ksm_mm_slot *ksm_pass_end_locked(unsigned long *addr)
{
	struct ksm_mm_slot *slot;

	lockdep_assert_held(&ksm_mmlist_lock);
	if (!ksm_scan.cut_taken) {
		ksm_scan.cut_taken = true;
		ksm_scan.cut_seq = ksm_enter_seq;
		/* At most double the pass, and never fewer than a few. */
		ksm_scan.late_rewinds = max_t(unsigned long, KSM_LATE_REWINDS,
					      ksm_scan.walked);
	}
	list_for_each_entry(slot, &ksm_mm_head.slot.mm_node, slot.mm_node) {
		bool late = slot->seq > ksm_scan.cut_seq;

		if (late && !ksm_scan.late_rewinds)
			continue;
		if (slot->walk_pass != ksm_scan.pass) {
			/* Registered after the pass began. */
			*addr = 0;
		} else if (slot->rewind_pass == ksm_scan.pass &&
			   slot->rewound_pass != ksm_scan.pass) {
			*addr = slot->rewind_addr;
		} else {
			continue;
		}
		if (late)
			ksm_scan.late_rewinds--;
		slot->walk_pass = ksm_scan.pass;
		slot->rewound_pass = ksm_scan.pass;
		ksm_scan.rewinding = true;
		return slot;
	}
	WRITE_ONCE(ksm_full_scans, ksm_full_scans + 1);
	return &ksm_mm_head;
}

/* The range of @mm from @start up just became mergeable. */
static void ksm_request_rewind(struct mm_struct *mm, unsigned long start)
{
	struct ksm_mm_slot *slot;

	mmap_assert_write_locked(mm);
	spin_lock(&ksm_mmlist_lock);
	slot = get_mm_slot(mm);
	/* Not entered in this pass yet, or already rewound: nothing to do. */
	if (!slot || slot->walk_pass != ksm_scan.pass ||
	    slot->rewound_pass == ksm_scan.pass)
		goto out;
	/* Still ahead of the walk of this mm: it gets there anyway. */
	if (slot == ksm_scan.mm_slot && start >= ksm_scan.address)
		goto out;
	if (slot->rewind_pass != ksm_scan.pass || start < slot->rewind_addr)
		slot->rewind_addr = start;
	slot->rewind_pass = ksm_scan.pass;
out:
	spin_unlock(&ksm_mmlist_lock);
}

static void ksm_end_full_scan(void)
{
	est_end_groups(ksm_estimate && ksm_est_pass_valid);
	ksm_need_drain = true;
	ksm_advisor_end_scan();
	/* Counted already: report the number it started with, as upstream. */
	trace_ksm_stop_scan(READ_ONCE(ksm_full_scans) - 1, ksm_rmap_items);
}

/* Take @slot off the hash and the scan list. */
static void unlink_mm_slot(struct ksm_mm_slot *slot)
{
	lockdep_assert_held(&ksm_mmlist_lock);
	hash_del(&slot->slot.hash);
	list_del(&slot->slot.mm_node);
}

/* Free an unlinked slot and drop its hold on the (exited) mm. */
static void release_mm_slot(struct ksm_mm_slot *slot)
{
	struct mm_struct *mm = slot->slot.mm;

	mm_slot_free(mm_slot_cache, slot);
	clear_bit(MMF_VM_MERGE_ANY, &mm->flags);
	clear_bit(MMF_VM_MERGEABLE, &mm->flags);
	mmdrop(mm);
}

/* Start a pass at the first mm; false if there is none. */
static bool scan_start_pass(void)
{
	struct ksm_mm_slot *slot;

	ksm_start_full_scan();
	spin_lock(&ksm_mmlist_lock);
	ksm_scan.pass++;
	ksm_scan.rewinding = false;
	ksm_scan.cut_taken = false;
	ksm_scan.start_seq = ksm_enter_seq;
	ksm_scan.walked = 1;
	slot = next_walk_slot_locked(&ksm_mm_head);
	slot->walk_pass = ksm_scan.pass;
	ksm_scan.mm_slot = slot;
	ksm_scan.address = 0;
	ksm_scan.link = &slot->rmap_list;
	spin_unlock(&ksm_mmlist_lock);
	return slot != &ksm_mm_head;
}

/*
 * Walk the mergeable VMAs of @mm from the cursor on, and fill @cand with
 * up to @max pages.  Returns the count; *@done once the mm is walked.
 */
static int scan_walk_mm(struct mm_struct *mm, struct ksm_cand *cand, int max,
			bool *done)
{
	VMA_ITERATOR(vmi, mm, ksm_scan.address);
	struct vm_area_struct *vma;
	bool stop = false;
	int n = 0, got;

	mmap_assert_locked(mm);
	*done = true;
	if (ksm_test_exit(mm))
		return 0;
	for_each_vma(vmi, vma) {
		if (!(vma->vm_flags & VM_MERGEABLE) || !vma->anon_vma)
			continue;
		if (ksm_scan.address < vma->vm_start)
			ksm_scan.address = vma->vm_start;
		got = collect_candidates(vma, &ksm_scan.address, vma->vm_end,
					 cand + n, max - n, &stop);
		if (ksm_estimate && got) {
			/* What the walk saw mapped was mapped after the note. */
			est_distrust_moved();
			est_protect(vma, cand + n, got);
		}
		n += got;
		/* Also give up the lock between VMAs, for a mm with many. */
		if (stop || n >= max || need_resched() ||
		    mmap_lock_is_contended(mm)) {
			*done = false;
			break;
		}
	}
	return n;
}

/*
 * Give each of the @n collected pages its item.  Without memory for one,
 * drop the rest, to be collected again next time (*@done is cleared).
 * Returns how many are kept.
 */
static int scan_attach_items(struct ksm_mm_slot *slot, struct ksm_cand *cand,
			     int n, bool *done)
{
	int i, j;

	for (i = 0; i < n; i++) {
		cand[i].item = get_next_item(slot, cand[i].addr);
		if (!cand[i].item)
			break;
		/*
		 * Flags left over from an earlier generation go, and an item
		 * met again in one pass (a rewind) leaves the unstable tree
		 * now: else a page earlier in this batch could merge with a
		 * page the batch still holds.  cmp_and_merge_page() re-files.
		 */
		if (cand[i].item->address & ITEM_UNSTABLE)
			remove_item_from_unstable(cand[i].item);
	}
	if (i < n) {
		ksm_scan.address = cand[i].addr;
		for (j = i; j < n; j++)
			put_page(cand[j].page);
		*done = false;
	}
	return i;
}

/*
 * The walk of @slot's mm is over: forget the items past its last page, or
 * all of them if it exited, and move the cursor on: to the next mm, into
 * a rewind, or to the end of the pass.  Drops the mmap_lock that the walk
 * held.  Returns true if the pass ended.
 */
static bool scan_leave_mm(struct ksm_mm_slot *slot)
{
	struct mm_struct *mm = slot->slot.mm;
	struct ksm_mm_slot *next;
	unsigned long addr = 0;
	bool exited;

	mmap_assert_locked(mm);
	/*
	 * Decided once: mm_users may drop meanwhile, and then __ksm_exit()
	 * leaves the slot for the next pass.
	 */
	exited = ksm_test_exit(mm);
	remove_trailing_items(exited ? &slot->rmap_list : ksm_scan.link);

	spin_lock(&ksm_mmlist_lock);
	next = ksm_scan.rewinding ? &ksm_mm_head : next_walk_slot_locked(slot);
	ksm_scan.rewinding = false;
	if (exited)
		unlink_mm_slot(slot);
	if (next == &ksm_mm_head) {
		next = ksm_pass_end_locked(&addr);
	} else {
		next->walk_pass = ksm_scan.pass;
		ksm_scan.walked++;
	}
	ksm_scan.mm_slot = next;
	ksm_scan.address = addr;
	ksm_scan.link = &next->rmap_list;
	spin_unlock(&ksm_mmlist_lock);
	mmap_read_unlock(mm);
	if (exited)
		release_mm_slot(slot);

	/* Rewinding: only ksmd touches item lists, and @next stays. */
	while (*ksm_scan.link && item_addr(*ksm_scan.link) < addr) {
		ksm_scan.link = &(*ksm_scan.link)->rmap_list;
		cond_resched();
	}
	return next == &ksm_mm_head;
}

/*
 * Fill @cand with up to @max pages from the current position of the scan,
 * attaching their items.  Returns the count, or -1 if nothing to scan.
 * Moving on to the next mm is a call of its own, that returns 0: the pass
 * ends (*@scan_done) only after the pages of its last batch are processed.
 */
static int scan_collect(struct ksm_cand *cand, int max, bool *scan_done)
{
	struct ksm_mm_slot *slot;
	struct mm_struct *mm;
	bool done;
	int n;

	lockdep_assert_held(&ksm_thread_mutex);
	if (list_empty(&ksm_mm_head.slot.mm_node))
		return -1;
	if (ksm_scan.mm_slot == &ksm_mm_head && !scan_start_pass())
		return -1;

	slot = ksm_scan.mm_slot;
	mm = slot->slot.mm;
	ksm_scan.domain = slot_domain(slot);
	ksm_scan.salt = domain_salt(ksm_scan.domain);
	mmap_read_lock(mm);
	n = scan_walk_mm(mm, cand, max, &done);
	n = scan_attach_items(slot, cand, n, &done);
	if (n && done) {
		/*
		 * This mm is walked.  Leave it on the next call, once these
		 * pages are processed: the pass may end there.
		 */
		ksm_scan.address = ULONG_MAX;
		done = false;
	}
	if (!done) {
		mmap_read_unlock(mm);
		return n;
	}
	*scan_done = scan_leave_mm(slot);
	return 0;
}

static void ksm_do_scan(unsigned int budget)
{
	/* Only ksmd scans, under ksm_thread_mutex. */
	static struct ksm_cand cand[KSM_BATCH];

	lockdep_assert_held(&ksm_thread_mutex);

	while (budget) {
		bool scan_done = false;
		int n = scan_collect(cand, min_t(unsigned int, budget,
						 KSM_BATCH), &scan_done);
		int i;

		if (n < 0)
			return;
		for (i = 0; i < n; i++) {
			cmp_and_merge_page(cand[i].item, cand[i].page,
					   cand[i].unwritten, cand[i].wp);
			put_page(cand[i].page);
			cond_resched();
		}
		/* Counted in scan_collect(); the rest of the end of a pass. */
		if (scan_done)
			ksm_end_full_scan();
		budget -= min_t(unsigned int, budget, max(n, 1));
		cond_resched();
		if (ksm_scan.mm_slot == &ksm_mm_head && !n)
			return;
	}
}

static bool ksmd_should_run(void)
{
	return (ksm_run & KSM_RUN_MERGE) && !(ksm_run & KSM_RUN_OFFLINE) &&
	       !list_empty(&ksm_mm_head.slot.mm_node);
}

static bool ksmd_sleep_changed(unsigned int sleep_ms)
{
	return sleep_ms != READ_ONCE(ksm_thread_sleep_millisecs) ||
	       kthread_should_stop();
}

static int ksm_scan_thread(void *nothing)
{
	unsigned int sleep_ms;

	set_freezable();
	set_user_nice(current, 5);

	while (!kthread_should_stop()) {
		/* Outside the mutex: it waits on per-cpu work. */
		if (READ_ONCE(ksm_need_drain) && ksmd_should_run()) {
			lru_add_drain_all();
			WRITE_ONCE(ksm_need_drain, false);
		}
		mutex_lock(&ksm_thread_mutex);
		if (ksmd_should_run())
			ksm_do_scan(READ_ONCE(ksm_thread_pages_to_scan));
		mutex_unlock(&ksm_thread_mutex);

		if (ksmd_should_run()) {
			sleep_ms = READ_ONCE(ksm_thread_sleep_millisecs);
			wait_event_freezable_timeout(ksm_iter_wait,
						     ksmd_sleep_changed(sleep_ms),
						     msecs_to_jiffies(sleep_ms));
		} else {
			wait_event_freezable(ksm_thread_wait,
					     ksmd_should_run() ||
					     kthread_should_stop());
		}
	}
	return 0;
}

/* ---- registration ---------------------------------------------------- */

/* ---- merge domains ---------------------------------------------------- */

/* A domain id nobody was ever in, or 0 once all were handed out. */
static int ksm_fresh_domain(void)
{
	int id;

	spin_lock(&ksm_domain_lock);
	do {
		id = ksm_next_domain;
		if (id > 0)
			ksm_next_domain--;
	} while (id > 0 && xa_load(&ksm_joined_domains, id));
	spin_unlock(&ksm_domain_lock);
	return id;
}

/*
 * Domain @id is joined by number: fresh ids skip it from now on.  (An id
 * that was handed out fresh already is joined as it is: privileged
 * callers may join any domain.)
 */
static int ksm_note_joined_domain(int id)
{
	return xa_err(xa_store(&ksm_joined_domains, id, xa_mk_value(1),
			       GFP_KERNEL));
}

/* The id @slot reports: chosen, else its own under merge_domains=2. */
static int slot_domain_id(const struct ksm_mm_slot *slot)
{
	int domain = READ_ONCE(slot->domain);

	if (domain != KSM_DOMAIN_UNSET)
		return domain;
	return READ_ONCE(ksm_merge_domains) == KSM_DOMAINS_ISOLATE ?
	       READ_ONCE(slot->auto_domain) : 0;
}

/*
 * Give @slot a domain of its own for merge_domains=2, if it has none.
 * Fails only once every id was handed out.
 */
static int slot_take_auto_domain(struct ksm_mm_slot *slot)
{
	lockdep_assert_held(&ksm_mmlist_lock);
	if (slot->domain != KSM_DOMAIN_UNSET || slot->auto_domain)
		return 0;
	slot->auto_domain = ksm_fresh_domain();
	return slot->auto_domain ? 0 : -ENOSPC;
}

/*
 * Forget what ksmd learnt of @slot's pages under the key of its old
 * domain: a skipped visit would look a page up under that key.
 */
static void slot_forget_keys(struct ksm_mm_slot *slot)
{
	struct ksm_rmap_item *item;

	lockdep_assert_held(&ksm_thread_mutex);
	for (item = slot->rmap_list; item; item = item->rmap_list) {
		remove_item_from_tree(item);
		item->hash = 0;
		/* our own unmerge is no thrash: no back-off comes of it */
		item->address &= ~(ITEM_THRASH | ITEM_AGE_MASK | ITEM_SKIP_MASK);
		cond_resched();
	}
}

/*
 * Register @mm with ksmd; with @from, in @from's merge domain (fork,
 * exec), else in @domain if chosen (not KSM_DOMAIN_UNSET), else in domain
 * 0 or, under merge_domains=2, a fresh one.
 */
static int ksm_enter_from(struct mm_struct *mm, struct mm_struct *from,
			  int domain)
{
	struct ksm_mm_slot *slot = mm_slot_alloc(mm_slot_cache);
	struct ksm_mm_slot *parent;
	struct mm_slot *ms;
	bool first;

	if (!slot)
		return -ENOMEM;
	ms = &slot->slot;
	ms->mm = mm;
	slot->domain = domain;
	/* At the tail: ksmd gets to it at the end of its current pass. */
	spin_lock(&ksm_mmlist_lock);
	parent = from ? get_mm_slot(from) : NULL;
	if (parent) {
		slot->domain = parent->domain;
		slot->auto_domain = parent->auto_domain;
	}
	if (ksm_merge_domains == KSM_DOMAINS_ISOLATE &&
	    slot_take_auto_domain(slot)) {
		spin_unlock(&ksm_mmlist_lock);
		mm_slot_free(mm_slot_cache, slot);
		return -ENOSPC;
	}
	first = list_empty(&ksm_mm_head.slot.mm_node);
	slot->seq = ++ksm_enter_seq;
	list_add_tail(&slot->slot.mm_node, &ksm_mm_head.slot.mm_node);
	mm_slot_insert(mm_slots_hash, mm, ms);
	spin_unlock(&ksm_mmlist_lock);

	mmgrab(mm);
	set_bit(MMF_VM_MERGEABLE, &mm->flags);
	trace_ksm_enter(mm);
	if (slot->domain != KSM_DOMAIN_UNSET || slot->auto_domain)
		trace_ksm_merge_domain(mm, slot_domain_id(slot));
	/* ksmd waits for work without a timeout while the list is empty. */
	if (first)
		wake_up_interruptible(&ksm_thread_wait);
	return 0;
}

int __ksm_enter(struct mm_struct *mm)
{
	return ksm_enter_from(mm, NULL, KSM_DOMAIN_UNSET);
}

int __ksm_fork(struct mm_struct *mm, struct mm_struct *oldmm)
{
	/* Before dup_mmap() write-protects @oldmm: see est_note_move(). */
	est_note_move();
	return ksm_enter_from(mm, oldmm, KSM_DOMAIN_UNSET);
}

/*
 * exec: @mm replaces current->mm.  It is registered if the process merges
 * as a whole (PR_SET_MEMORY_MERGE), or to keep the merge domain it chose
 * (or, under merge_domains=2, was given), in which it stays.
 */
int __ksm_execve(struct mm_struct *mm)
{
	struct mm_struct *old = current->mm;
	struct ksm_mm_slot *slot;
	bool keep = false;

	if (old && test_bit(MMF_VM_MERGEABLE, &old->flags)) {
		spin_lock(&ksm_mmlist_lock);
		slot = get_mm_slot(old);
		keep = slot && (slot->domain != KSM_DOMAIN_UNSET ||
				(slot->auto_domain &&
				 ksm_merge_domains == KSM_DOMAINS_ISOLATE));
		spin_unlock(&ksm_mmlist_lock);
	}
	if (keep || test_bit(MMF_VM_MERGE_ANY, &mm->flags))
		return ksm_enter_from(mm, keep ? old : NULL, KSM_DOMAIN_UNSET);
	return 0;
}

static int ksm_register(struct mm_struct *mm)
{
	return test_bit(MMF_VM_MERGEABLE, &mm->flags) ? 0 : __ksm_enter(mm);
}

/*
 * Called from __mmput() with mm_users already 0.  A slot with no items,
 * that ksmd is not scanning, goes right away.  Otherwise ksmd frees the
 * items and the slot when it sees ksm_test_exit(); it never touches page
 * tables of an exited mm.  Moving the slot right after the cursor makes
 * that happen soon.
 */
void __ksm_exit(struct mm_struct *mm)
{
	struct ksm_mm_slot *slot;

	spin_lock(&ksm_mmlist_lock);
	slot = get_mm_slot(mm);
	if (slot && slot != ksm_scan.mm_slot && slot != ksm_bits_slot) {
		if (!slot->rmap_list) {
			unlink_mm_slot(slot);
			spin_unlock(&ksm_mmlist_lock);
			release_mm_slot(slot);
			trace_ksm_exit(mm);
			return;
		}
		list_move(&slot->slot.mm_node,
			  &ksm_scan.mm_slot->slot.mm_node);
	}
	spin_unlock(&ksm_mmlist_lock);
	/* When the mm exits, as upstream, not when ksmd frees the slot. */
	trace_ksm_exit(mm);
}

static void __ksm_add_vma(struct vm_area_struct *vma)
{
	if (!(vma->vm_flags & VM_MERGEABLE) && vma_ksm_compatible(vma))
		vm_flags_set(vma, VM_MERGEABLE);
}

void ksm_add_vma(struct vm_area_struct *vma)
{
	if (test_bit(MMF_VM_MERGE_ANY, &vma->vm_mm->flags))
		__ksm_add_vma(vma);
}

/*
 * @merge: mark every VMA of @mm that KSM can handle mergeable.  Else
 * unmerge every mergeable VMA and clear the mark, stopping at the first
 * error (a signal, or no memory for the copies).
 */
static int ksm_mark_vmas(struct mm_struct *mm, bool merge)
{
	VMA_ITERATOR(vmi, mm, 0);
	struct vm_area_struct *vma;
	int err = 0;

	for_each_vma(vmi, vma) {
		if (merge) {
			__ksm_add_vma(vma);
			continue;
		}
		if (!(vma->vm_flags & VM_MERGEABLE))
			continue;
		/* No anon_vma: nothing here was ever merged. */
		if (vma->anon_vma)
			err = unmerge_ksm_pages(vma, vma->vm_start,
						vma->vm_end);
		if (err)
			break;
		vm_flags_clear(vma, VM_MERGEABLE);
	}
	return err;
}

/* PR_SET_MEMORY_MERGE: the whole process merges (@on) or stops merging. */
static int ksm_set_merge_any(struct mm_struct *mm, bool on)
{
	int err;

	mmap_assert_write_locked(mm);
	if (test_bit(MMF_VM_MERGE_ANY, &mm->flags) == on)
		return 0;
	if (on) {
		err = ksm_register(mm);
		if (err)
			return err;
		est_note_move();
		set_bit(MMF_VM_MERGE_ANY, &mm->flags);
		ksm_mark_vmas(mm, true);
		ksm_request_rewind(mm, 0);
		return 0;
	}
	err = ksm_mark_vmas(mm, false);
	if (err) {
		/* Failed: the process keeps merging, as it did before. */
		ksm_mark_vmas(mm, true);
		return err;
	}
	clear_bit(MMF_VM_MERGE_ANY, &mm->flags);
	return 0;
}

int ksm_enable_merge_any(struct mm_struct *mm)
{
	return ksm_set_merge_any(mm, true);
}

int ksm_disable_merge_any(struct mm_struct *mm)
{
	return ksm_set_merge_any(mm, false);
}

int ksm_disable(struct mm_struct *mm)
{
	mmap_assert_write_locked(mm);
	if (!test_bit(MMF_VM_MERGEABLE, &mm->flags))
		return 0;
	if (test_bit(MMF_VM_MERGE_ANY, &mm->flags))
		return ksm_set_merge_any(mm, false);
	return ksm_mark_vmas(mm, false);
}

int ksm_madvise(struct vm_area_struct *vma, unsigned long start,
		unsigned long end, int advice, unsigned long *vm_flags)
{
	int err = 0;

	if (advice == MADV_MERGEABLE) {
		/* Quietly ignored on VMAs KSM cannot handle, as it always was. */
		if ((*vm_flags & VM_MERGEABLE) || !vma_ksm_compatible(vma))
			return 0;
		err = ksm_register(vma->vm_mm);
		if (!err) {
			/* Pages moved here unmergeable: see est_note_move(). */
			if (vma->anon_vma)
				est_note_move();
			*vm_flags |= VM_MERGEABLE;
			ksm_request_rewind(vma->vm_mm, start);
		}
	} else if (advice == MADV_UNMERGEABLE && (*vm_flags & VM_MERGEABLE)) {
		if (vma->anon_vma) {
			/* mremap() moves pages by way of MADV_UNMERGEABLE */
			est_note_move();
			err = unmerge_ksm_pages(vma, start, end);
		}
		if (!err)
			*vm_flags &= ~VM_MERGEABLE;
	}
	return err;
}
EXPORT_SYMBOL_GPL(ksm_madvise);

/* Unmerge every mergeable VMA of @mm, which stays registered. */
static int unmerge_mm(struct mm_struct *mm)
{
	VMA_ITERATOR(vmi, mm, 0);
	struct vm_area_struct *vma;
	int err = 0;

	for_each_vma(vmi, vma) {
		if ((vma->vm_flags & VM_MERGEABLE) && vma->anon_vma)
			err = unmerge_ksm_pages(vma, vma->vm_start,
						vma->vm_end);
		if (err)
			break;
	}
	return err;
}

/*
 * ksm_thread_mutex for a syscall that changes the trees, once no memory is
 * on its way offline (the stable tree must not change while pages migrate
 * out of the range); -EINTR on a fatal signal meanwhile.
 */
static int ksm_lock_online_killable(void)
{
	if (mutex_lock_killable(&ksm_thread_mutex))
		return -EINTR;
	while (ksm_run & KSM_RUN_OFFLINE) {
		mutex_unlock(&ksm_thread_mutex);
		if (wait_event_killable(ksm_offline_wait,
					!(READ_ONCE(ksm_run) & KSM_RUN_OFFLINE)) ||
		    mutex_lock_killable(&ksm_thread_mutex))
			return -EINTR;
	}
	return 0;
}

/*
 * PR_SET_MEMORY_MERGE_DOMAIN.  The mm's KSM pages are unmerged first, with
 * ksmd held off, so that no page of it stays shared with its old domain.
 * Whatever fails leaves the mm as it was: a fresh id is taken before
 * anything changes (a failed call only wastes it), and an mm not yet
 * registered is unmerged too (see below) and registered in its new domain
 * as the last step.  Returns the id of a fresh domain, else 0 or an error.
 */
int ksm_set_merge_domain(struct mm_struct *mm, unsigned long arg)
{
	bool fresh = arg == PR_MEMORY_MERGE_DOMAIN_NEW ||
		     arg == (u32)PR_MEMORY_MERGE_DOMAIN_NEW;
	struct ksm_mm_slot *slot;
	int id, err;

	if (fresh) {
		id = ksm_fresh_domain();
		if (!id)
			return -ENOSPC;
	} else {
		if (arg > INT_MAX)
			return -EINVAL;
		if (!capable(CAP_SYS_RESOURCE))
			return -EPERM;
		id = arg;
		/* Before the id is used, so that no fresh id can equal it. */
		err = id ? ksm_note_joined_domain(id) : 0;
		if (err)
			return err;
	}
	/* slot_forget_keys() below changes the trees */
	err = ksm_lock_online_killable();
	if (err)
		return err;
	err = -EINTR;
	if (mmap_write_lock_killable(mm))
		goto out_mutex;
	spin_lock(&ksm_mmlist_lock);
	slot = get_mm_slot(mm);
	spin_unlock(&ksm_mmlist_lock);
	if (!slot) {
		/*
		 * A fork whose registration failed (ksm_fork() goes on) maps
		 * its parent's KSM pages without a slot: unmerge it all the
		 * same.  For any other mm this finds nothing.
		 */
		err = unmerge_mm(mm);
		if (!err)
			err = ksm_enter_from(mm, NULL, id);
	} else if (fresh || slot->domain != id) {
		err = unmerge_mm(mm);
		if (!err) {
			slot_forget_keys(slot);
			WRITE_ONCE(slot->domain, id);
			trace_ksm_merge_domain(mm, id);
		}
	} else {
		err = 0;
	}
	if (!err && fresh)
		err = id;
	mmap_write_unlock(mm);
out_mutex:
	mutex_unlock(&ksm_thread_mutex);
	return err;
}

int ksm_get_merge_domain(struct mm_struct *mm)
{
	struct ksm_mm_slot *slot;
	int id = 0;

	spin_lock(&ksm_mmlist_lock);
	slot = get_mm_slot(mm);
	if (slot)
		id = slot_domain_id(slot);
	spin_unlock(&ksm_mmlist_lock);
	return id;
}

/*
 * run=2: break every KSM mapping and forget every item.  Called with
 * ksm_thread_mutex held; the cursor walks along so that __ksm_exit()
 * leaves the slot being worked on alone.
 */
static int unmerge_and_remove_all_rmap_items(void)
{
	struct ksm_mm_slot *slot, *next;
	int err = 0;

	lockdep_assert_held(&ksm_thread_mutex);
	/* The pass is over: no estimate comes of it. */
	est_end_groups(false);
	ksm_est_pass_valid = false;
	spin_lock(&ksm_mmlist_lock);
	next = list_first_entry(&ksm_mm_head.slot.mm_node,
				struct ksm_mm_slot, slot.mm_node);
	ksm_scan.mm_slot = next;
	spin_unlock(&ksm_mmlist_lock);

	while (!err && next != &ksm_mm_head) {
		struct mm_struct *mm;
		bool exited;

		slot = next;
		mm = slot->slot.mm;
		mmap_read_lock(mm);
		if (!ksm_test_exit(mm))
			err = unmerge_mm(mm);
		/*
		 * Stopped part way: what the mm still maps stays tracked,
		 * unless it exited (decided once, under the lock: the slot
		 * is freed below and must take no items with it).
		 */
		exited = ksm_test_exit(mm);
		if (!err || exited)
			remove_trailing_items(&slot->rmap_list);
		mmap_read_unlock(mm);

		spin_lock(&ksm_mmlist_lock);
		next = list_next_entry(slot, slot.mm_node);
		ksm_scan.mm_slot = next;
		if (exited)
			unlink_mm_slot(slot);
		spin_unlock(&ksm_mmlist_lock);
		if (exited)
			release_mm_slot(slot);
		cond_resched();
	}

	/* Forget KSM pages that nobody maps any more. */
	sweep_stable_nodes(0, 0, true);
	ksm_last_sweep = jiffies;

	spin_lock(&ksm_mmlist_lock);
	ksm_scan.mm_slot = &ksm_mm_head;
	ksm_scan.rewinding = false;
	spin_unlock(&ksm_mmlist_lock);
	if (err) {
		/* Items that are left start the next pass out of the trees. */
		forget_unstable_trees();
		/* and the pass that trusted no mark (maybe) was cut short */
		est_distrust_marks();
	} else {
		/* As upstream: full_scans counts from a successful run=2. */
		WRITE_ONCE(ksm_full_scans, 0);
	}
	return err;
}

/* ---- rmap ------------------------------------------------------------ */

static inline bool vma_in_item_mm(struct vm_area_struct *vma,
				  struct ksm_rmap_item *item)
{
	return vma->vm_mm == item->mm;
}

/* Lock @av for a walk; false if @rwc only allows a trylock and it failed. */
static bool rmap_lock_anon_vma(struct anon_vma *av,
			       struct rmap_walk_control *rwc)
{
	if (anon_vma_trylock_read(av))
		return true;
	if (rwc->try_lock) {
		rwc->contended = true;
		return false;
	}
	anon_vma_lock_read(av);
	return true;
}

/*
 * Visit the mappings of @folio reachable through @item: in @item's own mm
 * (@own), or in the forked children sharing its anon_vma.  Returns false
 * when the walk must stop.
 */
static bool rmap_walk_item(struct folio *folio, struct ksm_rmap_item *item,
			   bool own, struct rmap_walk_control *rwc)
{
	struct anon_vma *av = item->anon_vma;
	unsigned long addr = item_addr(item);
	struct anon_vma_chain *vmac;
	bool go_on = true;

	if (!rmap_lock_anon_vma(av, rwc))
		return false;
	anon_vma_interval_tree_foreach(vmac, &av->rb_root, 0, ULONG_MAX) {
		struct vm_area_struct *vma = vmac->vma;

		cond_resched();
		if (addr < vma->vm_start || addr >= vma->vm_end ||
		    own != vma_in_item_mm(vma, item))
			continue;
		if (rwc->invalid_vma && rwc->invalid_vma(vma, rwc->arg))
			continue;
		go_on = rwc->rmap_one(folio, vma, addr, rwc->arg) &&
			!(rwc->done && rwc->done(folio));
		if (!go_on)
			break;
	}
	anon_vma_unlock_read(av);
	return go_on;
}

/*
 * Visit every mapping of KSM @folio (locked): first each item's own mm,
 * then forked children, which may map the page without an item yet.
 */
void rmap_walk_ksm(struct folio *folio, struct rmap_walk_control *rwc)
{
	struct ksm_stable_node *node = folio_stable_node(folio);
	struct ksm_rmap_item *item;
	int pass;

	VM_WARN_ON_FOLIO(!folio_test_locked(folio), folio);
	/* No node: forgotten by run=2 while unmapped, so nothing to visit. */
	if (!node)
		return;
	for (pass = 0; pass < 2; pass++) {
		hlist_for_each_entry(item, &node->hlist, hlist) {
			if (!rmap_walk_item(folio, item, pass == 0, rwc))
				return;
		}
	}
}

#ifdef CONFIG_MEMORY_FAILURE
/* Collect the processes mapping hwpoisoned KSM @folio (locked). */
void collect_procs_ksm(struct folio *folio, struct page *page,
		       struct list_head *to_kill, int force_early)
{
	struct ksm_stable_node *node = folio_stable_node(folio);
	struct ksm_rmap_item *item;

	if (!node)
		return;
	hlist_for_each_entry(item, &node->hlist, hlist) {
		unsigned long addr = item_addr(item);
		struct anon_vma_chain *vmac;

		anon_vma_lock_read(item->anon_vma);
		anon_vma_interval_tree_foreach(vmac, &item->anon_vma->rb_root,
					       0, ULONG_MAX) {
			struct vm_area_struct *vma = vmac->vma;
			struct task_struct *tsk, *t;

			if (addr < vma->vm_start || addr >= vma->vm_end)
				continue;
			/* Every thread group using this mm gets the signal. */
			rcu_read_lock();
			for_each_process(tsk) {
				t = task_early_kill(tsk, force_early);
				if (t && t->mm == vma->vm_mm)
					add_to_kill_ksm(t, page, vma, to_kill,
							addr);
			}
			rcu_read_unlock();
		}
		anon_vma_unlock_read(item->anon_vma);
	}
}
#endif

#ifdef CONFIG_MIGRATION
/*
 * @newfolio took @folio's place: the node follows it to its new pfn, and
 * the old folio stops naming the node.  Both folios are locked.  Someone
 * may still hold a reference to the old folio, taken after migration
 * checked the refcount: whoever locks it later must see it is no longer
 * the node's page, or it would map a page whose node goes away with the
 * new one.
 */
void folio_migrate_ksm(struct folio *newfolio, struct folio *folio)
{
	struct ksm_stable_node *node = folio_stable_node(folio);

	VM_WARN_ON_FOLIO(!folio_test_locked(folio), folio);
	VM_WARN_ON_FOLIO(!folio_test_locked(newfolio) ||
			 newfolio->mapping != folio->mapping, newfolio);
	if (!node)
		return;
	ksm_race_delay();
	WRITE_ONCE(node->kpfn, folio_pfn(newfolio));
	/*
	 * Pairs with the smp_rmb()s in get_ksm_folio(): the new kpfn is seen
	 * before the old folio's mapping goes stale.
	 */
	smp_wmb();
	WRITE_ONCE(folio->mapping, node_mapping(NULL));
}
#endif

/*
 * Can swapin map @folio at @addr of @vma as it is?  Yes for a KSM page
 * with a node (rmap_walk_ksm() finds every mapping), unless run=2 is
 * taking all of them apart; yes for a page not anon yet, which the fault
 * makes ours; yes for an anon page of the same anon_vma family at the same
 * index.  Anything else would be unreachable by rmap: copy it.
 */
static bool swapin_needs_copy(struct folio *folio, struct vm_area_struct *vma,
			      unsigned long addr)
{
	struct anon_vma *anon_vma;

	/*
	 * A KSM page swapped out of a range that was unmerged since (or
	 * moved by mremap) would come back where no item tracks it.
	 */
	if (folio_test_ksm(folio))
		return !folio_stable_node(folio) ||
		       !(vma->vm_flags & VM_MERGEABLE) ||
		       (READ_ONCE(ksm_run) & KSM_RUN_UNMERGE);
	anon_vma = folio_anon_vma(folio);
	if (!anon_vma)
		return false;
	return folio->index != linear_page_index(vma, addr) ||
	       !vma->anon_vma || anon_vma->root != vma->anon_vma->root;
}

struct folio *ksm_might_need_to_copy(struct folio *folio,
				     struct vm_area_struct *vma,
				     unsigned long addr)
{
	struct page *page = folio_page(folio, 0);
	struct folio *copy;

	if (vma->vm_flags & VM_MERGEABLE)
		est_note_move();
	/* Large folios are never KSM; a failed read is do_swap_page()'s. */
	if (folio_test_large(folio) || !folio_test_uptodate(folio) ||
	    !swapin_needs_copy(folio, vma, addr))
		return folio;
	if (PageHWPoison(page))
		return ERR_PTR(-EHWPOISON);

	copy = vma_alloc_folio(GFP_HIGHUSER_MOVABLE, 0, vma, addr, false);
	if (!copy)
		return NULL;
	if (mem_cgroup_charge(copy, vma->vm_mm, GFP_KERNEL)) {
		folio_put(copy);
		return NULL;
	}
	if (copy_mc_user_highpage(folio_page(copy, 0), page, addr, vma)) {
		folio_put(copy);
		return ERR_PTR(-EHWPOISON);
	}
	/* do_swap_page() maps it as a new private page, locked by us. */
	__folio_mark_uptodate(copy);
	__folio_set_locked(copy);
	folio_set_dirty(copy);
#ifdef CONFIG_SWAP
	count_vm_event(KSM_SWPIN_COPY);
#endif
	return copy;
}

long ksm_process_profit(struct mm_struct *mm)
{
	return (long)(mm->ksm_merging_pages + mm_ksm_zero_pages(mm)) *
		PAGE_SIZE - mm->ksm_rmap_items * sizeof(struct ksm_rmap_item);
}

/*
 * Our lines of /proc/PID/ksm_stat, after upstream's four (which keep their
 * order and meaning, for the parsers that read them).
 */
/*
 * The saving that is fairly @mm's: a page that is one of k mapping a KSM
 * page saves the system (k - 1) / k of a page, a KSM zero page a whole
 * page, less what @mm's items cost.  Summed over all processes this is
 * general_profit (less under a byte per item of rounding), which upstream's
 * ksm_process_profit, counting every merged page whole, exceeds.  The
 * item list is only stable under ksm_thread_mutex.
 */
static long ksm_fair_saving(struct mm_struct *mm)
{
	struct ksm_rmap_item *item;
	struct ksm_mm_slot *slot;
	long saved = 0;

	lockdep_assert_held(&ksm_thread_mutex);
	spin_lock(&ksm_mmlist_lock);
	slot = get_mm_slot(mm);
	spin_unlock(&ksm_mmlist_lock);
	/* @mm is held by our caller: __ksm_exit() has not run. */
	if (slot) {
		for (item = slot->rmap_list; item; item = item->rmap_list) {
			if (item_is_stable(item)) {
				unsigned int k = item->head->rmap_hlist_len;

				saved += PAGE_SIZE * (k - 1) / k;
			}
			/* Items are only freed under the mutex we hold. */
			cond_resched();
		}
	}
	return saved + mm_ksm_zero_pages(mm) * (long)PAGE_SIZE -
	       (long)(mm->ksm_rmap_items * sizeof(struct ksm_rmap_item));
}

/* @mm's share of the last estimate (see est_count_group()). */
static long ksm_est_saving(struct mm_struct *mm)
{
	struct ksm_mm_slot *slot;
	long saved = 0;

	lockdep_assert_held(&ksm_thread_mutex);
	spin_lock(&ksm_mmlist_lock);
	slot = get_mm_slot(mm);
	if (slot)
		saved = slot->est_saved;
	spin_unlock(&ksm_mmlist_lock);
	return saved;
}

void ksm_proc_stat(struct seq_file *m, struct mm_struct *mm)
{
	seq_printf(m, "ksm_merge_domain %d\n", ksm_get_merge_domain(mm));
	/* Never registered: nothing saved, and no need to wait for ksmd. */
	if (!test_bit(MMF_VM_MERGEABLE, &mm->flags)) {
		seq_puts(m, "ksm_saved_bytes 0\nksm_estimate_saved_bytes 0\n");
		return;
	}
	if (mutex_lock_killable(&ksm_thread_mutex))
		return;
	seq_printf(m, "ksm_saved_bytes %ld\n", ksm_fair_saving(mm));
	seq_printf(m, "ksm_estimate_saved_bytes %ld\n", ksm_est_saving(mm));
	mutex_unlock(&ksm_thread_mutex);
}

/* ---- memory hotplug ---------------------------------------------------- */

#ifdef CONFIG_MEMORY_HOTREMOVE
/*
 * From MEM_GOING_OFFLINE until the outcome is known, ksmd stays off the
 * trees while pages are migrated out of the range; once the range is
 * offline, every node still pointing into it is stale.
 */
static int ksm_memory_callback(struct notifier_block *self,
			       unsigned long action, void *arg)
{
	struct memory_notify *mn = arg;

	if (action != MEM_GOING_OFFLINE && action != MEM_OFFLINE &&
	    action != MEM_CANCEL_OFFLINE)
		return NOTIFY_OK;

	mutex_lock(&ksm_thread_mutex);
	if (action == MEM_GOING_OFFLINE) {
		WRITE_ONCE(ksm_run, ksm_run | KSM_RUN_OFFLINE);
	} else {
		if (action == MEM_OFFLINE)
			sweep_stable_nodes(mn->start_pfn,
					   mn->start_pfn + mn->nr_pages, false);
		WRITE_ONCE(ksm_run, ksm_run & ~KSM_RUN_OFFLINE);
	}
	mutex_unlock(&ksm_thread_mutex);
	if (action != MEM_GOING_OFFLINE) {
		wake_up_all(&ksm_offline_wait);
		wake_up_interruptible(&ksm_thread_wait);
	}
	return NOTIFY_OK;
}
#endif

/* ---- sysfs ------------------------------------------------------------- */

#ifdef CONFIG_SYSFS
/*
 * /sys/kernel/mm/ksm is driven by the ksm_files[] table below: one show and
 * one store routine serve every file.  A write is parsed and range checked
 * against its table entry before anything is touched, so a rejected write
 * never changes state.  Knobs that ksmd only samples are written without
 * ksm_thread_mutex; those whose change must not race with a scan batch are
 * written under it.
 */
enum ksm_file_id {
	KF_SLEEP_MILLISECS,
	KF_PAGES_TO_SCAN,
	KF_RUN,
	KF_MERGE_ACROSS_NODES,
	KF_USE_ZERO_PAGES,
	KF_MAX_PAGE_SHARING,
	KF_PRUNE_MILLISECS,
	KF_SMART_SCAN,
	KF_ADVISOR_MODE,
	KF_ADVISOR_MAX_CPU,
	KF_ADVISOR_MIN_PAGES,
	KF_ADVISOR_MAX_PAGES,
	KF_ADVISOR_TARGET_TIME,
	KF_MERGE_DOMAINS,
	KF_ESTIMATE,
	KF_PAGES_SCANNED,
	KF_PAGES_SHARED,
	KF_PAGES_SHARING,
	KF_PAGES_UNSHARED,
	KF_PAGES_VOLATILE,
	KF_PAGES_SKIPPED,
	KF_ZERO_PAGES,
	KF_GENERAL_PROFIT,
	KF_NODE_DUPS,
	KF_NODE_CHAINS,
	KF_FULL_SCANS,
	/* Last: the estimate numbers, read under ksm_thread_mutex. */
	KF_EST_PAGES_SHARED,
	KF_EST_PAGES_SHARING,
	KF_EST_ZERO_PAGES,
	KF_EST_PROFIT,
};

/* How a written string becomes a number, and which errno a bad one gets. */
enum ksm_parse {
	KP_NONE,	/* read-only, or a word parsed by its own setter */
	KP_BOOL,	/* kstrtobool(); anything it refuses is EINVAL */
	KP_NUM,		/* decimal unsigned long; any parse error is EINVAL */
	KP_ULONG,	/* decimal unsigned long; the kstrtoul() errno is passed on */
	KP_INT,		/* decimal int; the kstrtoint() errno is passed on */
};

struct ksm_file {
	struct kobj_attribute kattr;
	enum ksm_file_id id;
	enum ksm_parse parse;
	bool locked;			/* set under ksm_thread_mutex */
	bool is_signed;			/* shown as a signed number */
	unsigned long lo, hi;		/* accepted values, inclusive */
};

static inline const struct ksm_file *to_ksm_file(struct kobj_attribute *attr)
{
	return container_of(attr, struct ksm_file, kattr);
}

/* The counters are read without the lock: clamp transient negatives. */
static long ksm_pages_sharing(void)
{
	long v = (long)READ_ONCE(ksm_stable_items) -
		 (long)READ_ONCE(ksm_pages_shared);

	return max(v, 0L);
}

static long ksm_pages_volatile(void)
{
	long v = (long)READ_ONCE(ksm_rmap_items) -
		 (long)READ_ONCE(ksm_stable_items) -
		 (long)READ_ONCE(ksm_pages_unshared);

	return max(v, 0L);
}

/* Bytes saved by merging, less what the tracking items cost. */
static long ksm_general_profit(void)
{
	long saved = ksm_pages_sharing() + atomic_long_read(&ksm_zero_pages);
	long items = READ_ONCE(ksm_rmap_items);

	return saved * (long)PAGE_SIZE -
	       items * (long)sizeof(struct ksm_rmap_item);
}

/* Current value of a numeric file; unsigned ones come back as the bits. */
static long ksm_file_value(enum ksm_file_id id)
{
	switch (id) {
	case KF_SLEEP_MILLISECS:
		return READ_ONCE(ksm_thread_sleep_millisecs);
	case KF_PAGES_TO_SCAN:
		return READ_ONCE(ksm_thread_pages_to_scan);
	case KF_RUN:
		return READ_ONCE(ksm_run) & ~KSM_RUN_OFFLINE;
	case KF_MERGE_ACROSS_NODES:
		return READ_ONCE(ksm_merge_across_nodes);
	case KF_USE_ZERO_PAGES:
		return READ_ONCE(ksm_use_zero_pages);
	case KF_MAX_PAGE_SHARING:
		return READ_ONCE(ksm_max_page_sharing);
	case KF_PRUNE_MILLISECS:
		return READ_ONCE(ksm_stable_node_chains_prune_millisecs);
	case KF_SMART_SCAN:
		return READ_ONCE(ksm_smart_scan);
	case KF_ADVISOR_MODE:
		return READ_ONCE(ksm_advisor);
	case KF_ADVISOR_MAX_CPU:
		return READ_ONCE(ksm_advisor_max_cpu);
	case KF_ADVISOR_MIN_PAGES:
		return READ_ONCE(ksm_advisor_min_pages_to_scan);
	case KF_ADVISOR_MAX_PAGES:
		return READ_ONCE(ksm_advisor_max_pages_to_scan);
	case KF_ADVISOR_TARGET_TIME:
		return READ_ONCE(ksm_advisor_target_scan_time);
	case KF_MERGE_DOMAINS:
		return READ_ONCE(ksm_merge_domains);
	case KF_ESTIMATE:
		return READ_ONCE(ksm_estimate);
	case KF_PAGES_SCANNED:
		return READ_ONCE(ksm_pages_scanned);
	case KF_PAGES_SHARED:
		return READ_ONCE(ksm_pages_shared);
	case KF_PAGES_SHARING:
		return ksm_pages_sharing();
	case KF_PAGES_UNSHARED:
		return READ_ONCE(ksm_pages_unshared);
	case KF_PAGES_VOLATILE:
		return ksm_pages_volatile();
	case KF_PAGES_SKIPPED:
		return READ_ONCE(ksm_pages_skipped);
	case KF_ZERO_PAGES:
		return atomic_long_read(&ksm_zero_pages);
	case KF_GENERAL_PROFIT:
		return ksm_general_profit();
	case KF_NODE_DUPS:
		return READ_ONCE(ksm_stable_node_dups);
	case KF_NODE_CHAINS:
		return READ_ONCE(ksm_stable_node_chains);
	case KF_FULL_SCANS:
		return READ_ONCE(ksm_full_scans);
	case KF_EST_PAGES_SHARED:
		return READ_ONCE(ksm_est_pages_shared);
	case KF_EST_PAGES_SHARING:
		return READ_ONCE(ksm_est_pages_sharing);
	case KF_EST_ZERO_PAGES:
		return READ_ONCE(ksm_est_zero_pages);
	case KF_EST_PROFIT:
		return READ_ONCE(ksm_est_profit);
	}
	return 0;
}

static ssize_t ksm_file_show(struct kobject *kobj, struct kobj_attribute *attr,
			     char *buf)
{
	const struct ksm_file *f = to_ksm_file(attr);
	long v;

	/* A full scan is counted before its estimate is: see the top. */
	if (f->id >= KF_EST_PAGES_SHARED) {
		if (mutex_lock_killable(&ksm_thread_mutex))
			return -EINTR;
		v = ksm_file_value(f->id);
		mutex_unlock(&ksm_thread_mutex);
	} else {
		v = ksm_file_value(f->id);
	}

	if (f->id == KF_ADVISOR_MODE)
		return sysfs_emit(buf, v == KSM_ADVISOR_NONE ?
				  "[none] scan-time\n" : "none [scan-time]\n");
	if (f->is_signed)
		return sysfs_emit(buf, "%ld\n", v);
	return sysfs_emit(buf, "%lu\n", (unsigned long)v);
}

/*
 * Take ksm_thread_mutex for a write that re-files or unmerges, once no
 * memory is on its way offline: the stable tree must not change while
 * pages migrate out of the range.  Such writers wait, as upstream's do.
 */
static void ksm_lock_online(void)
{
	mutex_lock(&ksm_thread_mutex);
	while (ksm_run & KSM_RUN_OFFLINE) {
		mutex_unlock(&ksm_thread_mutex);
		wait_event(ksm_offline_wait,
			   !(READ_ONCE(ksm_run) & KSM_RUN_OFFLINE));
		mutex_lock(&ksm_thread_mutex);
	}
}

/*
 * run: 1 lets ksmd merge, 0 stops it, 2 stops it and unmerges everything
 * with ksmd held off by ksm_thread_mutex.  If unmerging fails part way (out
 * of memory, a signal), KSM is left stopped and the error is returned;
 * whatever was unmerged stays unmerged.
 */
static int ksm_set_run(unsigned long mode)
{
	int err = 0;

	/* No memory is going offline while we hold the mutex after this. */
	ksm_lock_online();
	if (ksm_run != mode) {
		WRITE_ONCE(ksm_run, mode);
		if (mode == KSM_RUN_UNMERGE) {
			set_current_oom_origin();
			err = unmerge_and_remove_all_rmap_items();
			clear_current_oom_origin();
			if (err)
				WRITE_ONCE(ksm_run, KSM_RUN_STOP);
		}
	}
	mutex_unlock(&ksm_thread_mutex);
	if (mode == KSM_RUN_MERGE)
		wake_up_interruptible(&ksm_thread_wait);
	return err;
}

#ifdef CONFIG_NUMA
/*
 * Switching between one tree and per-node trees re-files everything, so it
 * is only allowed while no KSM page is shared.  KSM pages nobody shares any
 * more go to the migrate list and are re-filed under the new tree index on
 * the next scan; the unstable trees restart empty.
 */
static int ksm_set_merge_across_nodes(unsigned long val)
{
	struct ksm_stable_node *node;
	struct rb_node *rb;
	int nid;

	lockdep_assert_held(&ksm_thread_mutex);
	if (ksm_merge_across_nodes == val)
		return 0;
	if (ksm_pages_shared)
		return -EBUSY;
	for (nid = 0; nid < ksm_nr_node_ids; nid++) {
		while ((rb = rb_first(root_stable_tree + nid))) {
			node = rb_entry(rb, struct ksm_stable_node, node);
			if (node->kind == NODE_CHAIN) {
				struct ksm_stable_node *dup;

				dup = hlist_entry(node->hlist.first,
						  struct ksm_stable_node,
						  hlist_dup);
				unlink_stable_node(dup);
				node = dup;
			} else {
				unlink_stable_node(node);
			}
			node->kind = NODE_MIGRATE;
			list_add(&node->list, &migrate_nodes);
		}
	}
	forget_unstable_trees();
	ksm_merge_across_nodes = val;
	return 0;
}
#endif

/*
 * merge_domains changes which pages may meet, so only while no KSM page
 * exists at all.  Every key ksmd holds was made under the old rule: the
 * unstable trees start over and every item is re-keyed on its next real
 * visit.  Under 2 every registered mm that chose no domain gets one of
 * its own.
 */
static bool ksm_no_stable_nodes(void)
{
	int nid;

	lockdep_assert_held(&ksm_thread_mutex);
	for (nid = 0; nid < ksm_nr_node_ids; nid++)
		if (!RB_EMPTY_ROOT(root_stable_tree + nid))
			return false;
	return list_empty(&migrate_nodes);
}

static int ksm_set_merge_domains(unsigned long val)
{
	struct ksm_mm_slot *slot;
	int err = 0;

	lockdep_assert_held(&ksm_thread_mutex);
	if (ksm_merge_domains == val)
		return 0;
	/*
	 * Not even a KSM page nobody tracks any more (its mms exited, their
	 * forks still map it): its key is of the old rule, and pages of
	 * another domain could find it.  A successful run=2 clears them.
	 */
	if (ksm_pages_shared || !ksm_no_stable_nodes())
		return -EBUSY;
	spin_lock(&ksm_mmlist_lock);
	list_for_each_entry(slot, &ksm_mm_head.slot.mm_node, slot.mm_node) {
		if (val == KSM_DOMAINS_ISOLATE && !slot->auto_domain &&
		    slot->domain == KSM_DOMAIN_UNSET) {
			err = slot_take_auto_domain(slot);
			if (err)
				break;
		}
	}
	/* Now they enter their own domains, old ids or new. */
	if (!err && val == KSM_DOMAINS_ISOLATE)
		list_for_each_entry(slot, &ksm_mm_head.slot.mm_node,
				    slot.mm_node)
			if (slot->domain == KSM_DOMAIN_UNSET)
				trace_ksm_merge_domain(slot->slot.mm,
						       slot->auto_domain);
	/*
	 * The items keep their keys of the old rule: a real visit finds its
	 * page "changed" and re-keys it, and a skipped one is checked before
	 * it merges (cmp_and_merge_page()), so no walk of every item under
	 * the spinlock is needed.
	 */
	if (!err)
		WRITE_ONCE(ksm_merge_domains, val);
	spin_unlock(&ksm_mmlist_lock);
	/*
	 * -ENOSPC: every id was handed out.  The ids some slots got stay
	 * theirs; they count only under 2, which they would get anyway.
	 */
	if (err)
		return err;
	forget_unstable_trees();
	/* Nor does an estimate hash that is not read again (ITEM_EST_WP). */
	if (ksm_estimate)
		est_distrust_marks();
	return 0;
}

/*
 * After estimate mode goes on or off, ITEM_THRASH means something else
 * (ITEM_EST_WP): clear what the old mode left in every item, with the
 * bits in @mask of the items that have it, before a visit in the new
 * mode can read it.  The slot worked on is kept from __ksm_exit() (only
 * ksmd frees a slot that has items, and not while we hold the mutex), so
 * what __ksm_exit() would have done to it is done here.
 */
static void items_drop_bits(unsigned long mask)
{
	struct ksm_mm_slot *slot, *next, *gone;
	struct ksm_rmap_item *item;

	lockdep_assert_held(&ksm_thread_mutex);
	spin_lock(&ksm_mmlist_lock);
	slot = list_first_entry(&ksm_mm_head.slot.mm_node,
				struct ksm_mm_slot, slot.mm_node);
	while (slot != &ksm_mm_head) {
		ksm_bits_slot = slot;
		spin_unlock(&ksm_mmlist_lock);
		for (item = slot->rmap_list; item; item = item->rmap_list) {
			if (item->address & ITEM_THRASH)
				item->address &= ~mask;
			cond_resched();
		}
		gone = NULL;
		spin_lock(&ksm_mmlist_lock);
		next = list_next_entry(slot, slot.mm_node);
		ksm_bits_slot = NULL;
		if (ksm_test_exit(slot->slot.mm) && slot != ksm_scan.mm_slot) {
			if (!slot->rmap_list) {
				unlink_mm_slot(slot);
				gone = slot;
			} else {
				list_move(&slot->slot.mm_node,
					  &ksm_scan.mm_slot->slot.mm_node);
			}
		}
		if (gone) {
			/* @next stays ours meanwhile */
			ksm_bits_slot = next;
			spin_unlock(&ksm_mmlist_lock);
			release_mm_slot(gone);
			spin_lock(&ksm_mmlist_lock);
		}
		slot = next;
	}
	ksm_bits_slot = NULL;
	spin_unlock(&ksm_mmlist_lock);
}

/*
 * estimate: 1 makes ksmd count what merging would save instead of merging.
 * It needs a start with no KSM mapping (run=2 first), so that the count
 * is not mixed with what is merged already; the numbers of an earlier
 * estimate go, and the first full scan that runs entirely in estimate
 * mode brings the new ones.  0 keeps the last numbers for reading.
 */
static int ksm_set_estimate(unsigned long val)
{
	struct ksm_mm_slot *slot;

	lockdep_assert_held(&ksm_thread_mutex);
	if (ksm_estimate == val)
		return 0;
	if (!val) {
		est_end_groups(false);
		ksm_est_pass_valid = false;
		WRITE_ONCE(ksm_estimate, false);
		items_drop_bits(ITEM_EST_WP);
		return 0;
	}
	if (ksm_pages_shared || atomic_long_read(&ksm_zero_pages))
		return -EBUSY;
	WRITE_ONCE(ksm_est_pages_shared, 0);
	WRITE_ONCE(ksm_est_pages_sharing, 0);
	WRITE_ONCE(ksm_est_zero_pages, 0);
	WRITE_ONCE(ksm_est_profit, 0);
	spin_lock(&ksm_mmlist_lock);
	list_for_each_entry(slot, &ksm_mm_head.slot.mm_node, slot.mm_node)
		slot->est_saved = 0;
	spin_unlock(&ksm_mmlist_lock);
	/* The pass under way began merging: it does not count. */
	ksm_est_pass_valid = false;
	/* A thrash back-off ends: estimate mode sees every page. */
	items_drop_bits(ITEM_THRASH | ITEM_AGE_MASK | ITEM_SKIP_MASK);
	WRITE_ONCE(ksm_estimate, true);
	return 0;
}

/* advisor_mode takes a word, not a number. */
static int ksm_set_advisor(const char *buf)
{
	enum ksm_advisor_type mode;

	if (sysfs_streq(buf, "none"))
		mode = KSM_ADVISOR_NONE;
	else if (sysfs_streq(buf, "scan-time"))
		mode = KSM_ADVISOR_SCAN_TIME;
	else
		return -EINVAL;

	mutex_lock(&ksm_thread_mutex);
	if (ksm_advisor != mode) {
		ksm_advisor = mode;
		/* The advisor starts low and climbs; off restores the default. */
		WRITE_ONCE(ksm_thread_pages_to_scan, mode == KSM_ADVISOR_NONE ?
			   100 : ksm_advisor_min_pages_to_scan);
	}
	mutex_unlock(&ksm_thread_mutex);
	return 0;
}

/* @val is range checked; the mutex is held if @f is a locked file. */
static int ksm_file_set(const struct ksm_file *f, unsigned long val)
{
	switch (f->id) {
	case KF_SLEEP_MILLISECS:
		WRITE_ONCE(ksm_thread_sleep_millisecs, val);
		/* A long sleep in progress should not delay the new value. */
		wake_up_interruptible(&ksm_iter_wait);
		return 0;
	case KF_PAGES_TO_SCAN:
		/* The advisor owns pages_to_scan while it runs. */
		if (READ_ONCE(ksm_advisor) != KSM_ADVISOR_NONE)
			return -EINVAL;
		WRITE_ONCE(ksm_thread_pages_to_scan, val);
		return 0;
#ifdef CONFIG_NUMA
	case KF_MERGE_ACROSS_NODES:
		return ksm_set_merge_across_nodes(val);
#endif
	case KF_USE_ZERO_PAGES:
		WRITE_ONCE(ksm_use_zero_pages, val);
		return 0;
	case KF_MAX_PAGE_SHARING:
		/* Chains are built for the old limit: only when none exist. */
		if (ksm_max_page_sharing == val)
			return 0;
		if (ksm_pages_shared)
			return -EBUSY;
		WRITE_ONCE(ksm_max_page_sharing, val);
		return 0;
	case KF_PRUNE_MILLISECS:
		WRITE_ONCE(ksm_stable_node_chains_prune_millisecs, val);
		return 0;
	case KF_SMART_SCAN:
		WRITE_ONCE(ksm_smart_scan, val);
		return 0;
	case KF_ADVISOR_MAX_CPU:
		ksm_advisor_max_cpu = val;
		return 0;
	case KF_ADVISOR_MIN_PAGES:
		ksm_advisor_min_pages_to_scan = val;
		return 0;
	case KF_ADVISOR_MAX_PAGES:
		ksm_advisor_max_pages_to_scan = val;
		return 0;
	case KF_ADVISOR_TARGET_TIME:
		ksm_advisor_target_scan_time = val;
		return 0;
	case KF_MERGE_DOMAINS:
		return ksm_set_merge_domains(val);
	case KF_ESTIMATE:
		return ksm_set_estimate(val);
	default:
		return -EACCES;
	}
}

static int ksm_file_parse(const struct ksm_file *f, const char *buf,
			  unsigned long *val)
{
	bool flag;
	int n, err;

	switch (f->parse) {
	case KP_BOOL:
		if (kstrtobool(buf, &flag))
			return -EINVAL;
		*val = flag;
		break;
	case KP_NUM:
		if (kstrtoul(buf, 10, val))
			return -EINVAL;
		break;
	case KP_ULONG:
		err = kstrtoul(buf, 10, val);
		if (err)
			return err;
		break;
	case KP_INT:
		err = kstrtoint(buf, 10, &n);
		if (err)
			return err;
		if (n < 0)
			return -EINVAL;
		*val = n;
		break;
	default:
		return -EACCES;
	}
	return *val < f->lo || *val > f->hi ? -EINVAL : 0;
}

static int ksm_file_update(const struct ksm_file *f, unsigned long val)
{
	int err;

	if (!f->locked)
		return ksm_file_set(f, val);
	/* Writing back the current value is a no-op: skip the mutex. */
	if ((unsigned long)ksm_file_value(f->id) == val)
		return 0;
	if (f->id == KF_MERGE_ACROSS_NODES)
		ksm_lock_online();
	else
		mutex_lock(&ksm_thread_mutex);
	err = ksm_file_set(f, val);
	mutex_unlock(&ksm_thread_mutex);
	return err;
}

static ssize_t ksm_file_store(struct kobject *kobj, struct kobj_attribute *attr,
			      const char *buf, size_t count)
{
	const struct ksm_file *f = to_ksm_file(attr);
	unsigned long val;
	int err;

	if (f->id == KF_ADVISOR_MODE) {
		err = ksm_set_advisor(buf);
	} else {
		err = ksm_file_parse(f, buf, &val);
		if (!err)
			err = f->id == KF_RUN ? ksm_set_run(val) :
						ksm_file_update(f, val);
	}
	return err ? err : count;
}

#define KSM_KNOB(_name, _id, _parse, _lo, _hi, _locked)			\
	{								\
		.kattr = __ATTR(_name, 0644, ksm_file_show,		\
				ksm_file_store),			\
		.id = _id, .parse = _parse, .locked = _locked,		\
		.lo = _lo, .hi = _hi,					\
	}
#define KSM_STAT(_name, _id, _signed)					\
	{								\
		.kattr = __ATTR(_name, 0444, ksm_file_show, NULL),	\
		.id = _id, .is_signed = _signed,			\
	}

static struct ksm_file ksm_files[] = {
	KSM_KNOB(run, KF_RUN, KP_NUM, 0, KSM_RUN_UNMERGE, false),
	KSM_KNOB(sleep_millisecs, KF_SLEEP_MILLISECS, KP_NUM, 0, UINT_MAX,
		 false),
	KSM_KNOB(pages_to_scan, KF_PAGES_TO_SCAN, KP_NUM, 0, UINT_MAX, false),
#ifdef CONFIG_NUMA
	KSM_KNOB(merge_across_nodes, KF_MERGE_ACROSS_NODES, KP_ULONG, 0, 1,
		 true),
#endif
	KSM_KNOB(use_zero_pages, KF_USE_ZERO_PAGES, KP_BOOL, 0, 1, false),
	/* A KSM page has two sharers as soon as it exists. */
	KSM_KNOB(max_page_sharing, KF_MAX_PAGE_SHARING, KP_INT, 2, INT_MAX,
		 true),
	KSM_KNOB(stable_node_chains_prune_millisecs, KF_PRUNE_MILLISECS,
		 KP_NUM, 0, UINT_MAX, false),
	KSM_KNOB(smart_scan, KF_SMART_SCAN, KP_BOOL, 0, 1, false),
	KSM_KNOB(advisor_mode, KF_ADVISOR_MODE, KP_NONE, 0, 0, true),
	KSM_KNOB(advisor_max_cpu, KF_ADVISOR_MAX_CPU, KP_NUM, 0, 100, true),
	KSM_KNOB(advisor_min_pages_to_scan, KF_ADVISOR_MIN_PAGES, KP_NUM, 1,
		 ULONG_MAX, true),
	KSM_KNOB(advisor_max_pages_to_scan, KF_ADVISOR_MAX_PAGES, KP_NUM, 1,
		 UINT_MAX, true),
	KSM_KNOB(advisor_target_scan_time, KF_ADVISOR_TARGET_TIME, KP_NUM, 1,
		 U32_MAX, true),
	KSM_KNOB(merge_domains, KF_MERGE_DOMAINS, KP_NUM, 0,
		 KSM_DOMAINS_ISOLATE, true),
	KSM_KNOB(estimate, KF_ESTIMATE, KP_NUM, 0, 1, true),
	KSM_STAT(pages_scanned, KF_PAGES_SCANNED, false),
	KSM_STAT(pages_shared, KF_PAGES_SHARED, false),
	KSM_STAT(pages_sharing, KF_PAGES_SHARING, true),
	KSM_STAT(pages_unshared, KF_PAGES_UNSHARED, false),
	KSM_STAT(pages_volatile, KF_PAGES_VOLATILE, true),
	KSM_STAT(pages_skipped, KF_PAGES_SKIPPED, false),
	KSM_STAT(ksm_zero_pages, KF_ZERO_PAGES, true),
	KSM_STAT(general_profit, KF_GENERAL_PROFIT, true),
	KSM_STAT(stable_node_dups, KF_NODE_DUPS, false),
	KSM_STAT(stable_node_chains, KF_NODE_CHAINS, false),
	KSM_STAT(full_scans, KF_FULL_SCANS, false),
	KSM_STAT(estimate_pages_shared, KF_EST_PAGES_SHARED, false),
	KSM_STAT(estimate_pages_sharing, KF_EST_PAGES_SHARING, false),
	KSM_STAT(estimate_zero_pages, KF_EST_ZERO_PAGES, false),
	KSM_STAT(estimate_profit, KF_EST_PROFIT, true),
};

/* Filled from ksm_files[] at boot; the last slot stays NULL. */
static struct attribute *ksm_attrs[ARRAY_SIZE(ksm_files) + 1];

static const struct attribute_group ksm_attr_group = {
	.name = "ksm",
	.attrs = ksm_attrs,
};

static int __init ksm_sysfs_init(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ksm_files); i++)
		ksm_attrs[i] = &ksm_files[i].kattr.attr;
	return sysfs_create_group(mm_kobj, &ksm_attr_group);
}
#else
static int __init ksm_sysfs_init(void)
{
	/* Nobody could ever start ksmd: merge from boot. */
	ksm_run = KSM_RUN_MERGE;
	return 0;
}
#endif /* CONFIG_SYSFS */

/* ---- init ------------------------------------------------------------- */

static struct kmem_cache * __init ksm_cache(const char *name, size_t size)
{
	return kmem_cache_create(name, size, 0, 0, NULL);
}

static void __init ksm_destroy_caches(void)
{
	kmem_cache_destroy(est_group_cache);
	kmem_cache_destroy(mm_slot_cache);
	kmem_cache_destroy(stable_node_cache);
	kmem_cache_destroy(rmap_item_cache);
}

#ifdef CONFIG_NUMA
/*
 * With several nodes, merge_across_nodes=0 needs a stable and an unstable
 * tree per node: one array holds both sets, stable roots first.
 */
static int __init ksm_alloc_node_trees(void)
{
	unsigned int nodes = nr_node_ids, i;
	struct rb_root *roots;

	if (nodes < 2)
		return 0;
	roots = kmalloc_array(2 * nodes, sizeof(*roots), GFP_KERNEL);
	if (!roots)
		return -ENOMEM;
	for (i = 0; i < 2 * nodes; i++)
		roots[i] = RB_ROOT;
	root_stable_tree = roots;
	root_unstable_tree = &roots[nodes];
	ksm_nr_node_ids = nodes;
	return 0;
}
#else
static inline int ksm_alloc_node_trees(void)
{
	return 0;
}
#endif

static int __init ksm_init(void)
{
	struct task_struct *ksmd;
	int err;

	/* Keys nobody can predict: see the comment at the top. */
	ksm_hash_seed = get_random_u64();
	ksm_salt_mul[0] = get_random_u64() | 1;
	ksm_salt_mul[1] = get_random_u64() | 1;
	/* The key of a zero page, which use_zero_pages does not hash. */
	zero_hash = page_hash(ZERO_PAGE(0));

	rmap_item_cache = ksm_cache("ksm_rmap_item",
				    sizeof(struct ksm_rmap_item));
	stable_node_cache = ksm_cache("ksm_stable_node",
				      sizeof(struct ksm_stable_node));
	mm_slot_cache = ksm_cache("ksm_mm_slot", sizeof(struct ksm_mm_slot));
	est_group_cache = ksm_cache("ksm_est_group",
				    sizeof(struct ksm_est_group));
	err = -ENOMEM;
	if (!rmap_item_cache || !stable_node_cache || !mm_slot_cache ||
	    !est_group_cache)
		goto fail;
	err = ksm_alloc_node_trees();
	if (err)
		goto fail;

	ksmd = kthread_run(ksm_scan_thread, NULL, "ksmd");
	if (IS_ERR(ksmd)) {
		err = PTR_ERR(ksmd);
		pr_err("ksm: cannot start ksmd (%d)\n", err);
		goto fail;
	}
	err = ksm_sysfs_init();
	if (err) {
		pr_err("ksm: cannot create /sys/kernel/mm/ksm (%d)\n", err);
		kthread_stop(ksmd);
		goto fail;
	}
#ifdef CONFIG_MEMORY_HOTREMOVE
	hotplug_memory_notifier(ksm_memory_callback, KSM_CALLBACK_PRI);
#endif
	ksm_debugfs_init();
	return 0;

fail:
	ksm_destroy_caches();
	return err;
}
subsys_initcall(ksm_init);
