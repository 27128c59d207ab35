/*
 * state/arena.h — the per-core page arena that holds every state byte.
 *
 * PURPOSE
 *   One worker core owns one arena: a single mmap reservation of cap_bytes
 *   (MAP_NORESERVE, MADV_HUGEPAGE) cut into fixed pages (a power of two,
 *   default 64 KiB) named by uint32 page ids.  Tables and slabs allocate runs
 *   of contiguous pages from it; since all state lives in arena pages, a
 *   snapshot of the state is a set of pages.  Copy-on-write epochs make the
 *   snapshot O(1) to take: wr_arena_snapshot_begin() only bumps an epoch, and
 *   every write to a page first calls wr_arena_touch(), which copies the page
 *   to a shadow page the first time it is written after the snapshot.
 *
 * INVARIANTS (checked by wr_arena_is_valid)
 *   1. A page is in exactly one of: free, live (handed out by wr_arena_alloc),
 *      deferred (freed by its owner while a snapshot still needs its bytes),
 *      shadow (holds a live page's bytes as they were at snapshot time).
 *   2. pages_used counts live + deferred pages and never exceeds
 *      pages_total - reserve_pages; shadows may also use the reserve.
 *   3. write_epoch[p] is 0 for a free page and <= epoch otherwise.
 *   4. Without a pending snapshot there are no shadows and no deferred pages.
 *   5. With a pending snapshot (snap_epoch = epoch - 1), page p is part of the
 *      snapshot iff it has a shadow, or it is live/deferred with
 *      write_epoch[p] <= snap_epoch; its bytes at snapshot time are
 *      wr_arena_snapshot_page(p) and stay unchanged until snapshot_end.
 *   6. The free-page search hint is never above the lowest free page.
 *   7. A page with a shadow has shadow_sum[page] = XXH3-64 of the shadow
 *      (snapshot/format.h's page checksum), taken during the copy.
 *
 * CAVEATS
 *   - Only the owning core may call any function here (suffix _local is
 *     implied: the arena has no atomics and no locks).  A flusher on the same
 *     core reads snapshot pages between loop ticks.
 *   - Page pointers stay valid until the page run is freed; the mapping never
 *     moves.  A snapshot_page() pointer stays valid until snapshot_end().
 *   - Every write to a page must be preceded by wr_arena_touch(page) in the
 *     same loop tick; a pointer kept across snapshot_begin must be touched
 *     again before it is written.
 *   - Freeing a page that the pending snapshot still needs defers the free to
 *     snapshot_end, so memory freed during a snapshot comes back only then.
 */
#ifndef WR_STATE_ARENA_H
#define WR_STATE_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/common.h"

#define WR_ARENA_PAGE_SIZE_DEFAULT (64u << 10)
#define WR_ARENA_NO_PAGE UINT32_MAX

struct wr_arena_config {
	size_t cap_bytes;	/* memory cap: the reservation size */
	uint32_t page_size;	/* power of two >= 4096; 0 = 64 KiB */
	uint32_t reserve_pages;	/* pages only COW shadows may use */
};

struct wr_arena_stats {
	size_t cap_bytes;
	size_t bytes_used;	/* (live + deferred + shadow pages) * page */
	uint32_t pages_total;
	uint32_t pages_used;	/* live + deferred */
	uint32_t shadow_pages;
	uint32_t deferred_pages;
	uint64_t cow_copies;	/* since creation */
	uint32_t epoch;
};

/* Fields are private to arena.c except those read by the inline helpers. */
struct wr_arena {
	uint8_t *base;
	uint32_t *write_epoch;	/* per page: epoch of the last touch */
	uint32_t epoch;		/* current write epoch, starts at 1 */
	uint32_t snap_epoch;	/* epoch captured by the pending snapshot */
	bool snap_pending;
	uint32_t page_shift;
	uint32_t page_size;
	uint32_t pages_total;
	uint32_t reserve_pages;
	uint32_t pages_used;
	uint32_t shadow_pages;
	uint32_t ndeferred;
	uint32_t hint;		/* no free page below this id */
	uint32_t high_water;	/* pages at or above were never used */
	uint32_t *shadow_of;	/* per page: its shadow page or NO_PAGE */
	uint32_t *copied;	/* pages with a shadow, shadow_pages long */
	uint32_t *deferred;	/* pages whose free waits for snapshot_end */
	uint64_t *shadow_sum;	/* per page with a shadow: its checksum */
	uint64_t *used_bits;	/* page is not free */
	uint64_t *shadow_bits;	/* page is a shadow */
	uint64_t cow_copies;
	size_t cap_bytes;
	size_t map_bytes;
};

struct wr_arena_iter {
	uint32_t next;		/* set to 0 before the first call */
	uint32_t page;		/* out: the page found */
};

int wr_arena_create(const struct wr_arena_config *cfg, struct wr_arena **out);
void wr_arena_destroy(struct wr_arena *a);

/*
 * A run of npages contiguous pages, first fit; -ENOMEM beyond the cap.
 * *zeroed (may be NULL) tells whether the run has never been handed out
 * since the reservation, so its bytes are still the kernel's zeroes.
 */
int wr_arena_alloc(struct wr_arena *a, uint32_t npages, uint32_t *first_page,
		   bool *zeroed);
void wr_arena_free(struct wr_arena *a, uint32_t first_page, uint32_t npages);

/* Starts a snapshot: O(1).  -EBUSY if one is pending. */
int wr_arena_snapshot_begin(struct wr_arena *a, uint32_t *snap_epoch);
/* The page as it was at snapshot_begin (only for pages in the snapshot). */
const void *wr_arena_snapshot_page(const struct wr_arena *a, uint32_t page);
bool wr_arena_snapshot_contains(const struct wr_arena *a, uint32_t page);
/* True and *sum = XXH3-64 of the snapshot page when the page has a shadow
 * (the checksum was taken while copying it), else false. */
static inline bool wr_arena_snapshot_checksum(const struct wr_arena *a,
					      uint32_t page, uint64_t *sum)
{
	if (a->shadow_of[page] == WR_ARENA_NO_PAGE)
		return false;
	*sum = a->shadow_sum[page];
	return true;
}
/* Releases shadows and deferred pages.  No-op without a pending snapshot. */
void wr_arena_snapshot_end(struct wr_arena *a);

/*
 * Incremental checkpoints: yields, in page order, the pages of the current
 * view (the pending snapshot if there is one, else the live pages) whose
 * bytes in that view were last written in an epoch > since_epoch.
 */
bool wr_arena_pages_written_since(const struct wr_arena *a,
				  uint32_t since_epoch,
				  struct wr_arena_iter *it);

/*
 * Restore from a checkpoint: makes the free page `page` live, holding a copy
 * of page_size bytes, written in the current epoch (so the next incremental
 * checkpoint counts it as changed).  Only without a pending snapshot.
 * -EINVAL (bad id, snapshot pending), -EEXIST (page not free), -ENOMEM (cap).
 */
int wr_arena_restore_page(struct wr_arena *a, uint32_t page,
			  const void *bytes);
/*
 * The same without the copy: makes `page` live and returns where its
 * page_size bytes go; the caller fills them before any other use of the
 * arena (snapshot/load.c reads the checkpoint straight into it, O_DIRECT).
 * A caller that gives up frees the page with wr_arena_free.
 */
int wr_arena_restore_claim(struct wr_arena *a, uint32_t page, void **bytes);

/*
 * Maps the free pages the next snapshot's shadows will take (first fit:
 * the lowest free ones), as many as pages in use, the most one snapshot
 * can copy.  Blocking, O(those bytes): call off the data path (start-up,
 * after restore or growth).  Why: a shadow is a page never written before
 * until the first snapshot that copies it, and faulting fresh memory in
 * this VM ran at ~170 MB/s (perf: 96% clear_page_erms in the first 1 GiB
 * checkpoint under updates); shadows are never unmapped afterwards, so
 * later snapshots reuse the same mapped pages.  Costs resident memory of
 * up to twice the state.  0 or -errno.
 */
int wr_arena_prefault_shadows(struct wr_arena *a);

void wr_arena_get_stats(const struct wr_arena *a, struct wr_arena_stats *s);
bool wr_arena_is_valid(const struct wr_arena *a);

int wr_arena_touch_slow(struct wr_arena *a, uint32_t page);

static inline void *wr_arena_page_ptr(const struct wr_arena *a, uint32_t page)
{
	return a->base + ((size_t)page << a->page_shift);
}

static inline uint32_t wr_arena_page_of(const struct wr_arena *a,
					const void *p)
{
	return (uint32_t)(((const uint8_t *)p - a->base) >> a->page_shift);
}

/*
 * The write barrier: call before modifying any byte of `page`.  0, or
 * -ENOMEM when the page needs a COW copy and no page is left for the shadow
 * (the page is then unchanged and must not be written).  Fast path: one
 * load and compare, ~1 ns.
 */
static inline int wr_arena_touch(struct wr_arena *a, uint32_t page)
{
	if (WEIR_LIKELY(a->write_epoch[page] == a->epoch))
		return 0;
	return wr_arena_touch_slow(a, page);
}

#endif /* WR_STATE_ARENA_H */
