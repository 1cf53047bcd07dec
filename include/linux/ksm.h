/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __LINUX_KSM_H
#define __LINUX_KSM_H
/*
 * Kernel Samepage Merging: ksmd finds anonymous pages with identical
 * content in VMAs that opted in, and maps one write-protected copy in
 * place of all of them.  A write to such a page breaks the sharing by
 * the usual copy-on-write fault.
 */

#include <linux/bitops.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/rmap.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>

#ifdef CONFIG_KSM
int ksm_madvise(struct vm_area_struct *vma, unsigned long start,
		unsigned long end, int advice, unsigned long *vm_flags);

void ksm_add_vma(struct vm_area_struct *vma);
int ksm_enable_merge_any(struct mm_struct *mm);
int ksm_disable_merge_any(struct mm_struct *mm);
int ksm_disable(struct mm_struct *mm);

int __ksm_enter(struct mm_struct *mm);
int __ksm_fork(struct mm_struct *mm, struct mm_struct *oldmm);
int __ksm_execve(struct mm_struct *mm);
void __ksm_exit(struct mm_struct *mm);

/* PR_SET_MEMORY_MERGE_DOMAIN, PR_GET_MEMORY_MERGE_DOMAIN */
int ksm_set_merge_domain(struct mm_struct *mm, unsigned long arg);
int ksm_get_merge_domain(struct mm_struct *mm);

/*
 * A PTE that maps the shared zero page and has the dirty bit set was put
 * there by KSM (use_zero_pages); a fault never installs a dirty zero PTE.
 */
static inline bool is_ksm_zero_pte(pte_t pte)
{
	return is_zero_pfn(pte_pfn(pte)) && pte_dirty(pte);
}

extern atomic_long_t ksm_zero_pages;

static inline void ksm_map_zero_page(struct mm_struct *mm)
{
	atomic_long_inc(&ksm_zero_pages);
	atomic_long_inc(&mm->ksm_zero_pages);
}

static inline void ksm_might_unmap_zero_page(struct mm_struct *mm, pte_t pte)
{
	if (is_ksm_zero_pte(pte)) {
		atomic_long_dec(&ksm_zero_pages);
		atomic_long_dec(&mm->ksm_zero_pages);
	}
}

static inline long mm_ksm_zero_pages(struct mm_struct *mm)
{
	return atomic_long_read(&mm->ksm_zero_pages);
}

static inline void ksm_fork(struct mm_struct *mm, struct mm_struct *oldmm)
{
	/*
	 * The child starts with no tracking items of its own, but it copied
	 * the parent's KSM zero PTEs, so account those.  Read the parent's
	 * count now, not the copy dup_mm() took before dup_mmap() locked the
	 * parent: ksmd may have merged more zero pages in between.
	 * Registration, in the parent's merge domain, is best effort:
	 * failing it only means the child is not scanned.
	 */
	if (test_bit(MMF_VM_MERGEABLE, &oldmm->flags)) {
		long nr_zero = atomic_long_read(&oldmm->ksm_zero_pages);

		atomic_long_set(&mm->ksm_zero_pages, nr_zero);
		mm->ksm_merging_pages = 0;
		mm->ksm_rmap_items = 0;
		atomic_long_add(nr_zero, &ksm_zero_pages);
		__ksm_fork(mm, oldmm);
	}
}

/*
 * Called with the new @mm while current->mm is still the old one: a
 * process that merges as a whole, or that is in a merge domain, stays so.
 */
static inline int ksm_execve(struct mm_struct *mm)
{
	if (test_bit(MMF_VM_MERGE_ANY, &mm->flags) ||
	    (current->mm && test_bit(MMF_VM_MERGEABLE, &current->mm->flags)))
		return __ksm_execve(mm);

	return 0;
}

static inline void ksm_exit(struct mm_struct *mm)
{
	if (test_bit(MMF_VM_MERGEABLE, &mm->flags))
		__ksm_exit(mm);
}

/*
 * A page read back from swap is no longer a KSM page: it carries the
 * anon_vma and index of whoever faulted it in first.  Mapping it at another
 * place would break the anon rmap, so such a fault gets a private copy
 * instead (ksmd may merge it again later).  Returns @folio itself, a new
 * locked copy, NULL on allocation failure or ERR_PTR(-EHWPOISON).
 */
struct folio *ksm_might_need_to_copy(struct folio *folio,
				     struct vm_area_struct *vma,
				     unsigned long addr);

void rmap_walk_ksm(struct folio *folio, struct rmap_walk_control *rwc);
void folio_migrate_ksm(struct folio *newfolio, struct folio *folio);
void collect_procs_ksm(struct folio *folio, struct page *page,
		       struct list_head *to_kill, int force_early);
long ksm_process_profit(struct mm_struct *mm);

struct seq_file;
/* Lines of /proc/PID/ksm_stat that follow upstream's four. */
void ksm_proc_stat(struct seq_file *m, struct mm_struct *mm);

#else  /* !CONFIG_KSM */

static inline void ksm_add_vma(struct vm_area_struct *vma)
{
}

static inline int ksm_disable(struct mm_struct *mm)
{
	return 0;
}

static inline void ksm_fork(struct mm_struct *mm, struct mm_struct *oldmm)
{
}

static inline int ksm_execve(struct mm_struct *mm)
{
	return 0;
}

static inline void ksm_exit(struct mm_struct *mm)
{
}

static inline void ksm_might_unmap_zero_page(struct mm_struct *mm, pte_t pte)
{
}

static inline void collect_procs_ksm(struct folio *folio, struct page *page,
				     struct list_head *to_kill, int force_early)
{
}

#ifdef CONFIG_MMU
static inline int ksm_madvise(struct vm_area_struct *vma,
			      unsigned long start, unsigned long end, int advice,
			      unsigned long *vm_flags)
{
	return 0;
}

static inline struct folio *ksm_might_need_to_copy(struct folio *folio,
						   struct vm_area_struct *vma,
						   unsigned long addr)
{
	return folio;
}

static inline void rmap_walk_ksm(struct folio *folio,
				 struct rmap_walk_control *rwc)
{
}

static inline void folio_migrate_ksm(struct folio *newfolio,
				     struct folio *folio)
{
}
#endif /* CONFIG_MMU */
#endif /* !CONFIG_KSM */

#endif /* __LINUX_KSM_H */
