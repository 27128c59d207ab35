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
 *   every write to a page first calls a barrier (wr_arena_touch_range), which
 *   saves the old bytes of the range into the page's shadow page.
 *
 * COPY-ON-WRITE BY GRANULE, COMPLETED LAZILY
 *   The barrier saves only the 64-byte granules of the range it is given
 *   (a per-page bitmap says which are saved), not the page: a job whose
 *   records touch many pages right after a snapshot used to copy all of
 *   them at once (the flows job: ~12 MB per core in the first millisecond;
 *   the p99 of its records during checkpoints halved without it, see
 *   docs/architecture.md).  The granules not saved are
 *   still the snapshot's bytes in the live page, so whoever reads the
 *   snapshot page (the checkpoint writer, bounded per loop tick) completes
 *   the shadow from the live page first and checksums it
 *   (wr_arena_snapshot_page / _checksum do it).  Once a shadow is complete
 *   the page's barrier is the one-compare fast path again.  A barrier whose
 *   range completes the page (a whole-page touch) completes it at once.
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
 *   7. A page with a complete shadow has shadow_sum[page] = XXH3-64 of the
 *      shadow (snapshot/format.h's page checksum) and write_epoch = epoch.
 *   8. A page with a partial shadow (partial_bits) is live, has
 *      write_epoch[p] <= snap_epoch, nsaved[p] = the saved granules in
 *      saved[], fewer than the page has; its snapshot bytes are the shadow's
 *      saved granules and the live page's others.
 *
 * CAVEATS
 *   - Only the owning core may call any function here (suffix _local is
 *     implied: the arena has no atomics and no locks).  A flusher on the same
 *     core reads snapshot pages between loop ticks.
 *   - Page pointers stay valid until the page run is freed; the mapping never
 *     moves.  A snapshot_page() pointer stays valid until snapshot_end().
 *   - Every write to a page must be preceded by wr_arena_touch_range(bytes)
 *     (or wr_arena_touch(page)) covering every byte the write changes, in
 *     the same loop tick: the barrier saves exactly those bytes, and the
 *     changelog, when on, logs them.  A pointer kept across snapshot_begin
 *     must be touched again before it is written.  WEIR_ARENA_VERIFY=1 in
 *     the environment checks every snapshot page against a copy taken at
 *     snapshot_begin (tests; O(state) per snapshot).
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
#define WR_ARENA_GRANULE_SHIFT 6u	/* copy-on-write unit: 64 bytes */

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
	uint64_t cow_copies;	/* shadows taken, since creation */
	uint64_t cow_granules;	/* granules saved by barriers, since creation */
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
	uint32_t mapped;	/* pages below it are mapped (map_ahead) */
	uint32_t *shadow_of;	/* per page: its shadow page or NO_PAGE */
	uint32_t *copied;	/* pages with a shadow, shadow_pages long */
	uint32_t *deferred;	/* pages whose free waits for snapshot_end */
	uint64_t *shadow_sum;	/* per page with a shadow: its checksum */
	uint64_t *used_bits;	/* page is not free */
	uint64_t *shadow_bits;	/* page is a shadow */
	uint64_t *partial_bits;	/* page's shadow is partial (invariant 8) */
	uint64_t *saved;	/* per page, gwords: granules in the shadow */
	uint16_t *nsaved;	/* per page: set bits of its saved[] */
	uint32_t gwords;	/* saved[] words per page */
	uint64_t cow_copies;
	uint64_t cow_granules;
	uint8_t *verify;	/* WEIR_ARENA_VERIFY: the state at snapshot */
	uint32_t verify_pages;	/* pages copied there */
	size_t cap_bytes;
	size_t map_bytes;
	struct wr_arena_log *log;	/* NULL: no changelog (arena_log.c) */
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
/* The page as it was at snapshot_begin (only for pages in the snapshot):
 * its shadow, completed first if partial (O(page) once), or the live page
 * when it has no shadow. */
const void *wr_arena_snapshot_page(struct wr_arena *a, uint32_t page);
bool wr_arena_snapshot_contains(const struct wr_arena *a, uint32_t page);
/* True and *sum = XXH3-64 of the snapshot page when the page has a shadow
 * (completed first if partial; the checksum is taken while completing),
 * else false. */
bool wr_arena_snapshot_checksum(struct wr_arena *a, uint32_t page,
				uint64_t *sum);
/* The page has a shadow (partial or complete): O(1), completes nothing. */
static inline bool wr_arena_snapshot_has_shadow(const struct wr_arena *a,
						uint32_t page)
{
	return a->shadow_of[page] != WR_ARENA_NO_PAGE;
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
 * -EINVAL (snapshot pending), -EEXIST (page not free), -ENOMEM (the cap
 * reached, or a page id past it: a checkpoint taken with a larger cap).
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
/* Whether pages [first, first + n) exist and are all live: what a
 * structure restored from a checkpoint image may claim as its own. */
bool wr_arena_pages_live(const struct wr_arena *a, uint32_t first,
			 uint32_t n);
/* Whether two runs of pages (first, n), checked to lie in the arena,
 * share no page (an empty run shares none). */
static inline bool wr_arena_runs_disjoint(uint32_t a, uint32_t na,
					  uint32_t b, uint32_t nb)
{
	return na == 0 || nb == 0 || a + na <= b || b + nb <= a;
}

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

/*
 * Maps pages past the high water ahead of use, one step of at most
 * WR_ARENA_MAP_STEP bytes (a huge page) per call, until pages
 * [0, high_water + ahead) are mapped.  Why: the first write to a page
 * never used is a fault that zeroes a whole 2 MiB huge page, 0.25 ms
 * here and 4.6 ms while the VM's host has not yet backed the memory, and
 * a table's growth takes dozens at once inside a record's upsert (the
 * flows job: 18-26 ms stalls in its first seconds, bench/RESULTS.md
 * 2026-12-07).  Called in a loop at start-up (the pipeline's
 * state_prefault_bytes); a step is one fault's time, too long for a
 * loop tick with records waiting.  The pages stay free and zero.
 * Returns 1 if it mapped a step, 0 if nothing was left, -errno.
 */
#define WR_ARENA_MAP_STEP (2u << 20)
int wr_arena_map_ahead(struct wr_arena *a, uint32_t ahead);

void wr_arena_get_stats(const struct wr_arena *a, struct wr_arena_stats *s);
bool wr_arena_is_valid(const struct wr_arena *a);

/* The barrier's slow path for bytes [lo, hi) of page (0 < hi <= page). */
int wr_arena_touch_slow(struct wr_arena *a, uint32_t page, uint32_t lo,
			uint32_t hi);

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
 * The copy-on-write barrier alone for bytes [lo, hi) of `page`: call before
 * modifying any of them.  0, or -ENOMEM when the page needs a shadow and no
 * page is left for it (the page is then unchanged and must not be written).
 * Fast path: one load and compare, ~1 ns.  Does not log: callers use
 * wr_arena_touch or wr_arena_touch_range, which do both.
 */
static inline int wr_arena_cow(struct wr_arena *a, uint32_t page, uint32_t lo,
			       uint32_t hi)
{
	if (WEIR_LIKELY(a->write_epoch[page] == a->epoch))
		return 0;
	return wr_arena_touch_slow(a, page, lo, hi);
}

/* ---- the changelog (state/arena_log.c) ---------------------------------
 *
 * PURPOSE
 *   A physical redo log of the arena, for checkpoints that write only what
 *   changed instead of whole pages (Flink's changelog state backend,
 *   FLIP-158, done one level down: bytes of arena pages, so every state
 *   kind is covered by one mechanism).  Every write barrier also *notes*
 *   the byte range it is about to change (a u64 word: kind | length |
 *   arena offset) in a bounded pending list; at a safe point (the end of a
 *   loop tick, and before a checkpoint takes its position) wr_arena_log_seal
 *   appends each noted range with its *current* bytes to a ring.  Replaying
 *   the ring from a materialisation (a page snapshot) onto that snapshot's
 *   pages gives the live pages at the seal (wr_arena_log_apply).
 *
 * WHY NOTE BEFORE, COPY AT THE SEAL
 *   The barrier runs before the write (it is the copy-on-write barrier), so
 *   the bytes are not there yet; copying them at the end of the tick takes
 *   them while still in L1, once per range however often it was written in
 *   the tick.  Correct because every write is preceded by a barrier *in the
 *   same tick* (invariant of the COW design above): a range written after
 *   a seal has been noted again.  Never seal inside a record's processing.
 *
 * LOG ENTRIES (8-byte aligned; the on-disk format, docs/checkpoint-format.md)
 *   word = kind << 61 | len << 40 | arena offset (40 bits, 1 TiB)
 *     WRITE  len bytes follow (padded to 8): the range's bytes at the seal
 *     ZERO   the range is zero
 *     ALLOC  pages [off >> page_shift, + len) were handed out; ALLOC_ZEROED
 *            when they were fresh (the kernel's zeroes, never written)
 *     FREE   pages [off >> page_shift, + len) were given back
 *     PAD    len bytes follow and are skipped (chunk ends, block padding)
 *   PAIR: word = 6 << 61 | (a / 8) << 30 | b / 8 (bit 60 zero), then 16
 *     bytes: two 8-byte WRITEs at 8-aligned offsets a, b below 8 GiB, a's
 *     bytes first.  The seal writes one for two such WRITEs noted in a row:
 *     12 bytes a write instead of 16 (a counter's or a value's update: most
 *     of a keyed log; half the log's bytes cost ckpt_bench at 1 GiB ~4% of
 *     its update rate, bench/RESULTS.md).  In a split list its second write
 *     is the entry's offset | WR_ARENA_LOG_HALF.
 *   A range never crosses a page; an entry never crosses a 1 MiB chunk of
 *   the ring (WR_ARENA_LOG_CHUNK), so a checkpoint's log file is a list of
 *   chunks, each checksummed and replayable on its own.
 *
 * INVARIANTS
 *   1. Entries in the ring are in the order their barriers ran; ALLOC and
 *      FREE are noted when they happen, WRITE/ZERO bytes taken at the seal.
 *   2. Sealed bytes in [tail, head) are never overwritten; the writer reads
 *      [from, to) of it with tail <= from <= to <= head.
 *   3. broken: an overflow of the pending list or the ring lost entries;
 *      nothing is noted or sealed until wr_arena_log_resume (at a page
 *      snapshot), and no segment that spans the break is valid
 *      (wr_arena_log_mark fails).
 */
#define WR_ARENA_LOG_CHUNK (1u << 20)
#define WR_ARENA_LOG_OFF_BITS 40u
#define WR_ARENA_LOG_LEN_BITS 21u

enum wr_arena_log_kind {
	WR_ARENA_LOG_PAD = 0,
	WR_ARENA_LOG_WRITE = 1,
	WR_ARENA_LOG_ZERO = 2,
	WR_ARENA_LOG_ALLOC = 3,
	WR_ARENA_LOG_ALLOC_ZEROED = 4,
	WR_ARENA_LOG_FREE = 5,
	WR_ARENA_LOG_PAIR = 6,
};
#define WR_ARENA_LOG_PAIR_BITS 30u	/* a PAIR's word offsets: 8 GiB */
#define WR_ARENA_LOG_HALF 4u		/* a list's PAIR second write */

struct wr_arena_log {
	uint64_t *pend;		/* noted words, npend of pend_max */
	uint32_t npend, pend_max;
	uint32_t pend_lim;	/* pend_max, 0 while broken: one compare */
	uint64_t last;		/* the last word noted (dedup) */
	bool broken;
	uint8_t *ring;		/* size bytes, a power of two */
	uint64_t size;
	uint64_t head;		/* bytes ever appended */
	uint64_t tail;		/* bytes before it may be overwritten */
	uint64_t entries, bytes;	/* appended since enable (stats) */
	uint64_t breaks;		/* times it broke */
};

static inline uint64_t wr_arena_log_word(unsigned kind, uint64_t len,
					 uint64_t off)
{
	return (uint64_t)kind << 61 | len << WR_ARENA_LOG_OFF_BITS | off;
}

static inline uint64_t wr_arena_log_pair_word(uint64_t off_a, uint64_t off_b)
{
	return (uint64_t)WR_ARENA_LOG_PAIR << 61 |
	       (off_a >> 3) << WR_ARENA_LOG_PAIR_BITS | off_b >> 3;
}

/* Maps and populates a ring of ring_bytes (a power of two >= 2 chunks;
 * blocking, O(ring_bytes): call at start-up) and a pending list of
 * pend_max words; logging starts broken: wr_arena_log_resume at the first
 * page snapshot.  The page size must be <= 512 KiB. */
int wr_arena_log_enable(struct wr_arena *a, uint64_t ring_bytes,
			uint32_t pend_max);
void wr_arena_log_disable(struct wr_arena *a);
void wr_arena_log_note_slow(struct wr_arena *a, unsigned kind,
			    uint64_t off, uint64_t len);
/* Appends every noted range with its current bytes; at safe points only. */
void wr_arena_log_seal(struct wr_arena *a);
/* Seals and pads the ring to a 4 KiB boundary: *pos is the end of the
 * segment a checkpoint taken now covers.  -ENOSPC if the log is broken
 * (or off). */
int wr_arena_log_mark(struct wr_arena *a, uint64_t *pos);
/* At a page snapshot's barrier when the log is broken (mark failed): it
 * restarts empty from here; returns the position (block-aligned). */
uint64_t wr_arena_log_resume(struct wr_arena *a);
/* Bytes before pos are no longer needed (their checkpoint committed). */
void wr_arena_log_release(struct wr_arena *a, uint64_t pos);
/* The sealed bytes at pos, up to the next chunk boundary or `to`. */
const void *wr_arena_log_span(const struct wr_arena *a, uint64_t pos,
			      uint64_t to, uint32_t *len);
/* Replays entries [0, len) onto a (a restored page snapshot).  -EBADMSG
 * and *bad_off at a malformed entry or one the arena cannot take (a page
 * beyond it, an ALLOC of a used page, a FREE of a free one); -ENOMEM at
 * the memory cap or for its list (len / 2 bytes, malloc'd per call: the
 * restore itself uses the two calls below with lists it keeps).  len is a
 * multiple of 8 and below 2 GiB.  Nothing is applied when an entry fails
 * the check; entries before one the arena cannot take are. */
int wr_arena_log_apply(struct wr_arena *a, const void *bytes, size_t len,
		       size_t *bad_off);
/*
 * Replay in two passes, so that two threads can apply one chunk at once
 * (a chain's restore is bound by these random writes, not by the disk:
 * snapshot/load.c).  wr_arena_log_split checks a chunk and lists its
 * entries' offsets: each WRITE and ZERO in list 0 if its page's number
 * modulo 8 is below `eighths`, else in list 1 (list[1] NULL: none is
 * made, and eighths must be 8), a PAIR's two writes each so (the second
 * flagged WR_ARENA_LOG_HALF); each ALLOC, ALLOC_ZEROED and FREE in both,
 * flagged WR_ARENA_LOG_META.  A list holds at most len / 8 offsets; len
 * is below 2 GiB (-EINVAL), as a chunk is.
 * wr_arena_log_apply_list applies a list in order; at a flagged entry it
 * calls m->fn(m->arg, a, entry) (NULL m: applies it), which must return
 * once the entry is applied (wr_arena_log_apply_one) by one of the lists
 * and every earlier entry of the other list is applied too.  Entries of
 * different lists touch different pages, so the two lists of every
 * chunk, applied so, leave the arena as wr_arena_log_apply does.
 */
#define WR_ARENA_LOG_META (1u << 31)
struct wr_arena_log_split {
	uint32_t *list[2];
	unsigned eighths;
};
struct wr_arena_log_meta {
	int (*fn)(void *arg, struct wr_arena *a, const void *entry);
	void *arg;
};
int wr_arena_log_split(const struct wr_arena *a, const void *bytes,
		       size_t len, const struct wr_arena_log_split *sp,
		       size_t n[2], size_t *bad_off);
int wr_arena_log_apply_list(struct wr_arena *a, const void *bytes,
			    const uint32_t *list, size_t n,
			    const struct wr_arena_log_meta *m, size_t *bad_off);
/* One checked entry (from a meta callback). */
int wr_arena_log_apply_one(struct wr_arena *a, const void *entry);
/* Replay's page bookkeeping (arena.c): pages [first, first + n) become
 * live (zeroed if `zeroed`) / free.  -EBADMSG if any is not free / live. */
int wr_arena_replay_alloc(struct wr_arena *a, uint32_t first, uint32_t n,
			  bool zeroed);
int wr_arena_replay_free(struct wr_arena *a, uint32_t first, uint32_t n);
/* Structural check of a chunk (no arena): -EBADMSG, *bad_off. */
int wr_arena_log_check(const void *bytes, size_t len, uint32_t page_size,
		       size_t *bad_off);

/* Notes [p, p + len) as kind (WRITE or ZERO), page by page. */
static inline void wr_arena_log_note(struct wr_arena *a, unsigned kind,
				     const void *p, size_t len)
{
	struct wr_arena_log *l = a->log;
	uint64_t off = (uint64_t)((const uint8_t *)p - a->base);
	uint64_t w = wr_arena_log_word(kind, len, off);

	/* One compare for "room and not broken", one for "1 <= len and
	 * inside the page" (len 0 wraps around). */
	if (WEIR_LIKELY(l->npend < l->pend_lim &&
			(off & (a->page_size - 1)) + len - 1 < a->page_size)) {
		if (w != l->last)
			l->pend[l->npend++] = l->last = w;
		return;
	}
	if (l->pend_lim != 0)	/* broken: nothing to note, no call */
		wr_arena_log_note_slow(a, kind, off, len);
}

/* The barrier for [p, p + len) page by page; no log. */
static inline int wr_arena_cow_range(struct wr_arena *a, const void *p,
				     size_t len)
{
	uint64_t off = (uint64_t)((const uint8_t *)p - a->base);
	uint64_t end = off + (len ? len : 1);
	uint32_t mask = a->page_size - 1;
	uint32_t first = (uint32_t)(off >> a->page_shift);
	uint32_t last = (uint32_t)((end - 1) >> a->page_shift);
	uint32_t lo = (uint32_t)off & mask;
	int err;

	if (WEIR_LIKELY(first == last))
		return wr_arena_cow(a, first, lo, lo + (uint32_t)(end - off));
	err = wr_arena_cow(a, first, lo, a->page_size);
	for (uint32_t pg = first + 1; pg < last && !err; pg++)
		err = wr_arena_cow(a, pg, 0, a->page_size);
	if (!err)
		err = wr_arena_cow(a, last, 0,
				   (uint32_t)((end - 1) & mask) + 1);
	return err;
}

/*
 * The write barrier: copy-on-write of the bytes [p, p + len) and, when
 * logging, a note of the range.  Call before modifying any of its bytes,
 * in the same loop tick as the write.  0 or -ENOMEM (see wr_arena_cow).
 */
static inline int wr_arena_touch_range(struct wr_arena *a, const void *p,
				       size_t len)
{
	int err = wr_arena_cow_range(a, p, len);

	if (WEIR_UNLIKELY(a->log != NULL) && !err)
		wr_arena_log_note(a, WR_ARENA_LOG_WRITE, p, len);
	return err;
}

/* The same for a range about to be zeroed (logged without its bytes). */
static inline int wr_arena_touch_zero(struct wr_arena *a, const void *p,
				      size_t len)
{
	int err = wr_arena_cow_range(a, p, len);

	if (WEIR_UNLIKELY(a->log != NULL) && !err)
		wr_arena_log_note(a, WR_ARENA_LOG_ZERO, p, len);
	return err;
}

/* The write barrier for a whole page (logged whole: prefer touch_range). */
static inline int wr_arena_touch(struct wr_arena *a, uint32_t page)
{
	return wr_arena_touch_range(a, wr_arena_page_ptr(a, page),
				    a->page_size);
}

#endif /* WR_STATE_ARENA_H */
