/*
 * state/keyed.h — one named keyed state (value, list, map, reducing,
 * aggregating) of one operator on one core, stored in that core's arena.
 *
 * PURPOSE
 *   core/process.c turns the public weir_value_* / weir_list_* / weir_map_*
 *   / weir_reduce_* / weir_aggregate_* calls of weir/state.h into these,
 *   adding the current key and its XXH3 hash (computed once by key_by and
 *   carried in the envelope; it must equal wr_table_hash(key, key_size)).
 *
 * LAYOUT
 *   One wr_table per state, keyed by the record key.  Its value is
 *   [int64 ts_ms, only if ttl_ms > 0][payload]:
 *     VALUE, REDUCING   value_size bytes
 *     AGGREGATING       agg->acc_size bytes (the accumulator)
 *     LIST              {u32 len, u32 cap, u64 ref}: cap elements in one
 *                       slab block (contiguous: get(i) is O(1), growth
 *                       doubles, so appends are amortised O(1))
 *     MAP               {u32 count, u32 cap, u64 ref}: a per-key
 *                       linear-probing table of cap slots in one slab block,
 *                       slot = [u64 tag][map key][value], 8-byte aligned
 *   Variable-size data lives in the state's slab (state/slab.h) in the same
 *   arena.  Refs are arena offsets, so the whole state is position-free.
 *
 * INVARIANTS (checked by wr_kstate_is_valid)
 *   1. Only the owning core calls these (no locks, no atomics).
 *   2. Every byte written goes through wr_arena_touch first (COW).
 *   3. A LIST entry has 1 <= len <= cap; a MAP entry 1 <= count and
 *      count <= 3/4 cap; an empty list or map is no entry at all.
 *   4. The slab's bytes_live equals the blocks the entries reference.
 *   5. An entry whose ts_ms + ttl_ms <= now_ms reads as absent (-ENOENT,
 *      length 0) and is removed by wr_kstate_step() with bounded work, by
 *      a write to its key (which starts afresh), or by an eviction pass.
 *      TTL applies to the key's whole entry (the whole list or map), not
 *      to each element as in Flink.
 *
 * POINTERS
 *   A pointer returned (value, list view, map value) stays valid until the
 *   next call on this state, on any state of the same eviction group, or
 *   wr_arena_snapshot_begin, whichever comes first.  Pointers from
 *   value_update / map_upsert are writable (already touched); pointers from
 *   value_get / map_get / map_next / list_view are read-only.
 *
 * ERRORS
 *   -ENOENT absent; -EINVAL bad argument or wrong kind; -ENOMEM the arena
 *   cap was reached (message: "state 'NAME' reached the memory cap of N
 *   bytes per core").  A failed call leaves the state as it was.
 */
#ifndef WR_STATE_KEYED_H
#define WR_STATE_KEYED_H

#include <stdbool.h>

#include "state/arena.h"
#include "state/slab.h"
#include "state/table.h"
#include "weir/state.h"

struct wr_kstate;

/* What a write does when the arena cap is reached. */
enum wr_kstate_full_policy {
	WR_KSTATE_FULL_FAIL = 0,  /* -ENOMEM, the job fails */
	WR_KSTATE_FULL_EVICT = 1, /* remove expired entries, retry once */
};

struct wr_kstate_options {
	enum wr_kstate_full_policy full_policy;
	/* Optional: join the eviction group of this state (same arena), so a
	 * pass at the cap removes the expired entries of every state of the
	 * core, not only of the one that hit it.  NULL = alone. */
	struct wr_kstate *evict_group;
};

struct wr_kstate_stats {
	uint64_t entries;         /* keys held now (expired not yet removed) */
	uint64_t expired_removed; /* by wr_kstate_step */
	uint64_t evicted;         /* by eviction passes at the cap */
	uint64_t eviction_passes;
	uint64_t cap_failures;    /* -ENOMEM returned at the cap */
	uint64_t slab_bytes;      /* blocks held for lists and maps */
	uint64_t slab_leaked_bytes;
	uint64_t table_slots_moved; /* incremental resize, by any call */
};

/* A map iteration under one key: set pos = 0 before the first call. */
struct wr_kstate_map_iter {
	uint64_t pos;
};

/* opts may be NULL (policy FAIL, alone).  key_size in [1, 64]. */
int wr_kstate_create(struct wr_arena *a, const struct weir_state_desc *d,
		     uint32_t key_size, const struct wr_kstate_options *opts,
		     struct wr_kstate **out);
/* The checks wr_kstate_create makes of d, without creating anything, so
 * a pipeline can reject a descriptor when it is built: 0 or -EINVAL with a
 * message naming the state. */
int wr_kstate_check_desc(const struct weir_state_desc *d, uint32_t key_size);
/* Frees every page the state holds.  NULL is a no-op. */
void wr_kstate_destroy(struct wr_kstate *s);

/* VALUE */
int wr_kstate_value_get(struct wr_kstate *s, const void *key, uint64_t hash,
			int64_t now_ms, void **value);
int wr_kstate_value_update(struct wr_kstate *s, const void *key,
			   uint64_t hash, int64_t now_ms, void **value,
			   bool *created);

/* LIST */
int wr_kstate_list_append(struct wr_kstate *s, const void *key,
			  uint64_t hash, int64_t now_ms, const void *elem);
int wr_kstate_list_length(struct wr_kstate *s, const void *key,
			  uint64_t hash, int64_t now_ms, uint32_t *len);
/* -ENOENT if i >= length. */
int wr_kstate_list_get(struct wr_kstate *s, const void *key, uint64_t hash,
		       int64_t now_ms, uint32_t i, void *out);
/* The elements, contiguous (read-only); *n = 0 and NULL if none. */
int wr_kstate_list_view(struct wr_kstate *s, const void *key, uint64_t hash,
			int64_t now_ms, const void **elems, uint32_t *n);
int wr_kstate_list_replace(struct wr_kstate *s, const void *key,
			   uint64_t hash, int64_t now_ms, const void *elems,
			   uint32_t n);

/* MAP */
int wr_kstate_map_put(struct wr_kstate *s, const void *key, uint64_t hash,
		      int64_t now_ms, const void *mkey, const void *value);
/* Writable pointer to mkey's value, created zero-filled if absent. */
int wr_kstate_map_upsert(struct wr_kstate *s, const void *key, uint64_t hash,
			 int64_t now_ms, const void *mkey, void **value,
			 bool *created);
int wr_kstate_map_get(struct wr_kstate *s, const void *key, uint64_t hash,
		      int64_t now_ms, const void *mkey, const void **value);
int wr_kstate_map_remove(struct wr_kstate *s, const void *key, uint64_t hash,
			 int64_t now_ms, const void *mkey);
int wr_kstate_map_size(struct wr_kstate *s, const void *key, uint64_t hash,
		       int64_t now_ms, uint32_t *n);
/* Next entry of the key's map: 0, or -ENOENT at the end.  No writes to
 * this state between calls, or entries may be skipped or repeated. */
int wr_kstate_map_next(struct wr_kstate *s, const void *key, uint64_t hash,
		       int64_t now_ms, struct wr_kstate_map_iter *it,
		       const void **mkey, const void **value);

/* REDUCING: acc = in if absent, else reduce(acc, in).  get copies out. */
int wr_kstate_reduce_add(struct wr_kstate *s, const void *key, uint64_t hash,
			 int64_t now_ms, const void *in);
int wr_kstate_reduce_get(struct wr_kstate *s, const void *key, uint64_t hash,
			 int64_t now_ms, void *out);

/* AGGREGATING: acc = create() if absent; add(acc, in); result(acc, out). */
int wr_kstate_aggregate_add(struct wr_kstate *s, const void *key,
			    uint64_t hash, int64_t now_ms, const void *in);
int wr_kstate_aggregate_result(struct wr_kstate *s, const void *key,
			       uint64_t hash, int64_t now_ms, void *out);

/* Any kind: remove the key's entry (0 also if there was none). */
int wr_kstate_clear(struct wr_kstate *s, const void *key, uint64_t hash);

/*
 * Bounded background work, for idle loop ticks: advances the table's
 * incremental resize by up to `budget` slots, then examines up to `budget`
 * entries from a persistent cursor and removes the expired ones (a resize
 * in progress takes the whole call).  Returns the work done: slots moved,
 * or entries examined; 0 without a resize and without a TTL.  Caveat: the
 * scan between two live entries skips empty slots without counting them
 * (wr_table_next has no slot budget), so a table emptied by mass removal
 * costs up to capacity/4 cache lines in one call.
 */
uint32_t wr_kstate_step(struct wr_kstate *s, int64_t now_ms, uint32_t budget);

/* Start loading the slot of hash into the cache (batched lookups). */
void wr_kstate_prefetch(const struct wr_kstate *s, uint64_t hash);

/* Entries (keys) held now. */
uint64_t wr_kstate_count(const struct wr_kstate *s);
void wr_kstate_get_stats(const struct wr_kstate *s,
			 struct wr_kstate_stats *st);
const char *wr_kstate_name(const struct wr_kstate *s);
/* ---- checkpoints (state/keyed_image.c) ---- */

/* The state's header outside the arena, as plain data. */
struct wr_kstate_image {
	struct wr_table_image table;
	struct wr_slab_image slab;
	uint64_t cursor;
	uint64_t expired_removed, evicted, eviction_passes, cap_failures;
};
void wr_kstate_save(const struct wr_kstate *s, struct wr_kstate_image *img);
/* wr_kstate_create over restored arena pages: the state as it was saved.
 * -EINVAL with a message when the image does not match d and key_size. */
int wr_kstate_load(struct wr_arena *a, const struct weir_state_desc *d,
		   uint32_t key_size, const struct wr_kstate_options *opts,
		   const struct wr_kstate_image *img, struct wr_kstate **out);
/* Rescaling: copies every entry of src (another arena, same descriptor)
 * whose key hash keep() accepts into dst, with its TTL stamp and its list
 * or map data.  dst must not hold those keys yet.  0 or -ENOMEM. */
typedef bool (*wr_kstate_keep_fn)(uint64_t hash, void *arg);
int wr_kstate_copy_keys(struct wr_kstate *dst, struct wr_kstate *src,
			wr_kstate_keep_fn keep, void *arg);

/* Invariants 3-4 and the table's; O(entries + slots), for tests. */
bool wr_kstate_is_valid(const struct wr_kstate *s);

#endif
