/*
 * state/table.h — open-addressing hash table of fixed-size keys and values,
 * stored inline in arena pages.
 *
 * PURPOSE
 *   The keyed value store under every state kind.  Linear probing over one
 *   contiguous page run of slots; each slot is [u64 hash | key | value],
 *   padded to a power of two up to 64 bytes (32 bytes for an 8-byte key and
 *   an 8-byte value), so a slot never straddles a cache line or a page and a
 *   hit usually costs one cache line: the physical limit is DRAM latency
 *   (~240-350 ns per dependent miss), so wr_table_upsert_batch() prefetches
 *   all the slots of a batch before touching any.  The slot's home is the
 *   HIGH 32 bits of the XXH3 hash (the low bits pick the key group).
 *
 *   Small tables: given a slab (wr_table_config.slab), a table starts at
 *   WR_TABLE_SMALL_MIN_CAPACITY slots and its slot arrays of at most a
 *   quarter page are slab blocks, so many small tables share pages (a
 *   window operator holds one table per open window: one 64 KiB page each
 *   cost 5 KB per entry for 13-key windows); larger arrays are page runs.
 *
 *   Growth is incremental (Redis-style): past 3/4 load a new slot array is
 *   allocated and every later mutating call moves at most
 *   WR_TABLE_STEP_SLOTS old slots (wr_table_step() moves more on idle ticks);
 *   lookups probe the new array, then the old.  The stored hash means moving
 *   never rehashes a key.  Removal writes a tombstone; tombstones are dropped
 *   by the next migration, which also runs when they pile up.
 *
 * INVARIANTS (checked by wr_table_is_valid)
 *   1. Every live key is in exactly one place: the new (current) array, or
 *      the old array at a slot >= the migration cursor.
 *   2. Each array keeps an empty slot: used + tombstones < capacity, so every
 *      probe ends; a key sits on the probe path from its home with no empty
 *      slot in between.
 *   3. count = live keys in both arrays; stored hash = XXH3 of the key with
 *      the two reserved values 0 (empty) and 1 (tombstone) remapped.
 *   4. While migrating, the old array is never written except for value
 *      updates and tombstones of its unmigrated keys.
 *
 * CAVEATS
 *   - Owning core only; no atomics.
 *   - A value pointer returned by upsert/upsert_batch/get stays valid until
 *     the next upsert, upsert_batch, remove, step, clear or destroy on this
 *     table, and until the next wr_arena_snapshot_begin: write through it
 *     before then.  upsert has already called wr_arena_touch for it; a get
 *     pointer is read-only (it was not touched).
 *   - New values are zero-filled.
 *   - Across a snapshot the table's pages follow the arena's copy-on-write;
 *     the table header (capacities, cursor, count) lives outside the arena and
 *     must be recorded by the caller at the barrier (wr_table_get_stats).
 */
#ifndef WR_STATE_TABLE_H
#define WR_STATE_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "state/arena.h"

#define WR_TABLE_KEY_SIZE_MAX 64u
#define WR_TABLE_VALUE_SIZE_MAX 1024u
#define WR_TABLE_BATCH_MAX 64u
/* Old slots moved per mutating call: >= 2.7 needed (see table.c), 16 keeps
 * the new array far from full and costs ~1 sequential cache line per call. */
#define WR_TABLE_STEP_SLOTS 16u
#define WR_TABLE_MIN_CAPACITY 1024u
#define WR_TABLE_SMALL_MIN_CAPACITY 64u /* with a slab */

struct wr_table;
struct wr_slab;

struct wr_table_config {
	uint32_t key_size;		/* 1..64 bytes */
	uint32_t value_size;		/* 1..1024 bytes */
	uint64_t initial_capacity;	/* slots; 0 = the minimum */
	/* Optional, of the same arena: small slot arrays come from it.  It
	 * must outlive the table; its state is the caller's to checkpoint. */
	struct wr_slab *slab;
};

struct wr_table_stats {
	uint64_t count;
	uint64_t capacity;		/* of the current array */
	uint64_t tombstones;
	uint64_t old_capacity;		/* 0 when not migrating */
	uint64_t migrate_pos;		/* old slots already moved */
	uint64_t resizes;
	uint64_t slots_moved;		/* by migration, since creation */
	uint64_t forced_finishes;	/* migrations finished in one call: 0 */
	uint32_t slot_size;
	uint32_t pages;			/* arena pages held */
	uint32_t phase;			/* 0 idle, 1 preparing, 2 migrating */
};

struct wr_table_iter {
	uint64_t pos;			/* set to 0 before the first call */
};

/*
 * Prefetch a line for writing.  gcc 12 drops a loop of __builtin_prefetch
 * whose result it deems unused (seen in wr_table_upsert_batch: no prefetch
 * left, 3.7 M updates/s at 1M keys instead of 20+), so it is an asm
 * volatile.
 */
static inline void wr_prefetch_write(const void *p)
{
#if defined(__x86_64__)
	__asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

/* Prefetch a line into L2 only (the first of two stages: it does not hold
 * an L1 fill buffer for the whole DRAM miss). */
static inline void wr_prefetch_l2(const void *p)
{
#if defined(__x86_64__)
	__asm__ volatile("prefetcht1 %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p, 0, 2);
#endif
}

static inline uint64_t wr_xor8(const uint8_t *p, const uint8_t *q)
{
	uint64_t x, y;

	memcpy(&x, p, 8);
	memcpy(&y, q, 8);
	return x ^ y;
}

/* Key bytes equal?  No call for the common sizes (8-byte counters' keys,
 * 40-byte flow keys: memcmp's call and dispatch were ~14 instructions of a
 * 40-byte compare): 8-byte words, the last one ending at n (overlapping),
 * and for 32..64 bytes two 32-byte vectors, the second ending at n (the
 * word loop it replaces, vectorised by gcc, took ~60 instructions of a
 * 40-byte compare: callgrind, weir flows). */
static inline bool wr_key_eq(const void *a, const void *b, uint32_t n)
{
	const uint8_t *p = a, *q = b;
	uint64_t diff = 0;

	if (n < 8)
		return memcmp(p, q, n) == 0;
#if defined(__AVX2__)
	if (n >= 32 && n <= 64) {
		const uint8_t *pe = p + n - 32, *qe = q + n - 32;
		__m256i d = _mm256_or_si256(
			_mm256_xor_si256(_mm256_loadu_si256((const void *)p),
					 _mm256_loadu_si256((const void *)q)),
			_mm256_xor_si256(_mm256_loadu_si256((const void *)pe),
					 _mm256_loadu_si256((const void *)qe)));
		return _mm256_testz_si256(d, d);
	}
#endif
	for (uint32_t i = 0; i + 8 < n; i += 8)
		diff |= wr_xor8(p + i, q + i);
	return (diff | wr_xor8(p + n - 8, q + n - 8)) == 0;
}

static inline uint64_t wr_table_hash(const void *key, size_t len)
{
	return XXH3_64bits(key, len);
}

int wr_table_create(struct wr_arena *arena, const struct wr_table_config *cfg,
		    struct wr_table **out);
void wr_table_destroy(struct wr_table *t);

const void *wr_table_get(const struct wr_table *t, const void *key,
			 uint64_t hash);
/* Lookup-or-insert: *value points at the value (zeroed if *inserted). */
int wr_table_upsert(struct wr_table *t, const void *key, uint64_t hash,
		    void **value, bool *inserted);
/*
 * n <= WR_TABLE_BATCH_MAX keys packed at key_size stride; values[i] receives
 * key i's value pointer (all n stay valid together; equal keys share one).
 * On -ENOMEM, values[i] is NULL from the first key that could not be
 * inserted on.
 */
int wr_table_upsert_batch(struct wr_table *t, const void *keys,
			  const uint64_t *hashes, uint32_t n, void **values);
/*
 * The same without its prefetch, for a caller that pipelines: it prefetched
 * this batch's slots (wr_table_prefetch_batch) while it worked on the one
 * before, so the misses overlapped that work.
 */
int wr_table_upsert_prefetched(struct wr_table *t, const void *keys,
			       const uint64_t *hashes, uint32_t n,
			       void **values);
void wr_table_prefetch_batch(const struct wr_table *t, const uint64_t *hashes,
			     uint32_t n);
/* 0, or -ENOENT if the key is absent. */
int wr_table_remove(struct wr_table *t, const void *key, uint64_t hash);
/* Moves up to budget old slots of a pending migration: the slots moved. */
uint32_t wr_table_step(struct wr_table *t, uint32_t budget);
int wr_table_clear(struct wr_table *t);
/*
 * The same, a bounded step at a time, for a table nobody uses meanwhile
 * (a pool of spares): zeroes up to budget slots from *pos (0 to start,
 * kept by the caller).  True once the table is empty with its capacity
 * kept; false while slots remain or a COW touch failed (retry later).
 * A resize in progress is dropped first (its other array freed).
 */
bool wr_table_clear_step(struct wr_table *t, uint64_t *pos, uint64_t budget);
uint64_t wr_table_capacity(const struct wr_table *t);
uint64_t wr_table_count(const struct wr_table *t);
/* Visits every key once; no mutation between calls (value writes aside,
 * after wr_arena_touch of their page). */
bool wr_table_next(struct wr_table *t, struct wr_table_iter *it,
		   const void **key, void **value);
/* wr_table_hash() of the key whose value pointer this table handed out
 * (get, upsert, next), for tables keyed by it: the slot stores it, so no
 * rehash (an XXH3 of a 40-byte key is ~60 instructions; the rare hashes 0
 * and 1, stored as 2 and 3, are recomputed). */
uint64_t wr_table_value_hash(const struct wr_table *t, const void *value);
/* Prefetches the home slot of hash, for callers pipelining their own keys. */
void wr_table_prefetch(const struct wr_table *t, uint64_t hash);

void wr_table_get_stats(const struct wr_table *t, struct wr_table_stats *s);
bool wr_table_is_valid(const struct wr_table *t);

/*
 * Checkpoints: the header that lives outside the arena, as plain data.
 * save at the barrier (same tick as wr_arena_snapshot_begin); load rebuilds
 * the table over an arena whose pages were restored at the same ids.
 * load checks the image against the arena: -EINVAL if a page run is out of
 * range or a field impossible (a corrupt or foreign image).
 */
struct wr_table_image_slots {
	uint64_t cap, used, tomb;
	uint32_t first_page, npages;
	uint32_t page_off, in_slab; /* a slab block at page_off of first_page */
};
struct wr_table_image {
	uint32_t key_size, value_size, slot_size, phase;
	uint64_t initial_cap, cursor, count;
	uint64_t resizes, slots_moved, forced_finishes;
	struct wr_table_image_slots cur, old, next;
};
void wr_table_save(const struct wr_table *t, struct wr_table_image *img);
/* slab: the table's slab as restored (NULL if it had none). */
int wr_table_load(struct wr_arena *arena, struct wr_slab *slab,
		  const struct wr_table_image *img, struct wr_table **out);

#endif /* WR_STATE_TABLE_H */
