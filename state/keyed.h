/*
 * state/keyed.h — one named keyed state (value, list, map, reducing,
 * aggregating) of one operator on one core, stored in that core's arena.
 *
 * PURPOSE
 *   core/process.c turns the public weir_value_* / weir_list_* calls of
 *   weir/state.h into these, adding the current key and its XXH3 hash
 *   (computed once by key_by and carried in the envelope).
 *
 * INVARIANTS
 *   1. Only the owning core calls these (no locks, no atomics).
 *   2. Every byte written goes through wr_arena_touch first (COW).
 *   3. An entry older than the descriptor's TTL reads as absent and is
 *      removed by wr_kstate_step() with bounded work.
 *
 * POINTERS returned stay valid until the next call on the same arena.
 * Errors: -ENOENT absent; -ENOMEM arena cap reached (message names the
 * state and the cap); -EINVAL wrong kind.
 */
#ifndef WR_STATE_KEYED_H
#define WR_STATE_KEYED_H

#include <stdbool.h>

#include "state/arena.h"
#include "weir/state.h"

struct wr_kstate;

int wr_kstate_create(struct wr_arena *a, const struct weir_state_desc *d,
		     uint32_t key_size, struct wr_kstate **out);
void wr_kstate_destroy(struct wr_kstate *s);

int wr_kstate_value_get(struct wr_kstate *s, const void *key, uint64_t hash,
			int64_t now_ms, void **value);
int wr_kstate_value_update(struct wr_kstate *s, const void *key,
			   uint64_t hash, int64_t now_ms, void **value,
			   bool *created);
int wr_kstate_list_append(struct wr_kstate *s, const void *key,
			  uint64_t hash, int64_t now_ms, const void *elem);
int wr_kstate_list_length(struct wr_kstate *s, const void *key,
			  uint64_t hash, int64_t now_ms, uint32_t *len);
int wr_kstate_list_get(struct wr_kstate *s, const void *key, uint64_t hash,
		       int64_t now_ms, uint32_t i, void *out);
int wr_kstate_list_replace(struct wr_kstate *s, const void *key,
			   uint64_t hash, int64_t now_ms, const void *elems,
			   uint32_t n);
int wr_kstate_clear(struct wr_kstate *s, const void *key, uint64_t hash);

/* Bounded background work (TTL cleanup, incremental resize): at most
 * `budget` entries examined.  Returns the work done. */
uint32_t wr_kstate_step(struct wr_kstate *s, int64_t now_ms, uint32_t budget);

/* Entries (keys) held now. */
uint64_t wr_kstate_count(const struct wr_kstate *s);

#endif
