/*
 * core/timers.h — per-key timers of one keyed operator on one core
 * (Flink's TimerService): event-time timers fire when the watermark passes
 * them, processing-time timers when the wall clock does.
 *
 * DESIGN
 *   A timer is (domain, ts, key).  Registered timers live in a set (an
 *   arena table keyed by ts + key: registering twice is one timer) and in a
 *   binary min-heap on ts per domain (in arena pages).  Deleting removes
 *   from the set only; the heap entry is skipped when it surfaces (lazy
 *   deletion), so register/delete are O(log n) / O(1) and a timer fires at
 *   most once.  Every byte lives in arena pages, touched before each write,
 *   so timers are part of the checkpointed state.
 *
 * INVARIANTS
 *   1. A timer fires only if it is in the set when its heap entry pops, and
 *      popping removes it from the set: at most once.
 *   2. Timers of one domain fire in ts order (ties in any order).
 *   3. wr_timers_pop() does bounded work: it examines at most `budget`
 *      heap entries.
 *
 * Owning core only.
 */
#ifndef WR_CORE_TIMERS_H
#define WR_CORE_TIMERS_H

#include <stdbool.h>
#include <stdint.h>

#include "state/arena.h"
#include "state/table.h"

#define WR_TIMER_DOMAINS 2

struct wr_timers;

struct wr_timer {
	int64_t ts;
	uint64_t hash;
	const void *key; /* valid until the next call on these timers */
};

int wr_timers_create(struct wr_arena *a, uint32_t key_size,
		     struct wr_timers **out);
void wr_timers_destroy(struct wr_timers *t);

/* 0, -ENOMEM (arena cap).  Registering an existing timer is a no-op. */
int wr_timers_register(struct wr_timers *t, int domain, int64_t ts,
		       const void *key, uint64_t hash);
/* 0, or -ENOENT if there is no such timer. */
int wr_timers_delete(struct wr_timers *t, int domain, int64_t ts,
		     const void *key);
/* The earliest live-or-deleted heap entry's ts, or INT64_MAX if none. */
int64_t wr_timers_next_ts(const struct wr_timers *t, int domain);
/* Is a heap entry (live or deleted) at or before upto?  (next_ts cannot
 * say: INT64_MAX is both "none" and a valid upto.) */
bool wr_timers_due(const struct wr_timers *t, int domain, int64_t upto);
/*
 * Pop the next timer with ts <= upto into *out: 1 found, 0 none due (or
 * budget spent: *budget is decremented per heap entry examined).
 */
int wr_timers_pop(struct wr_timers *t, int domain, int64_t upto,
		  uint32_t *budget, struct wr_timer *out);
uint64_t wr_timers_count(const struct wr_timers *t);

/* ---- checkpoints ---- */

struct wr_timers_heap_image {
	uint32_t first_page, npages;
	uint64_t n, cap;
};
struct wr_timers_image {
	struct wr_table_image set;
	struct wr_timers_heap_image heap[WR_TIMER_DOMAINS];
};
void wr_timers_save(const struct wr_timers *t, struct wr_timers_image *img);
/* Over restored arena pages.  -EINVAL for an image that does not fit. */
int wr_timers_load(struct wr_arena *a, uint32_t key_size,
		   const struct wr_timers_image *img, struct wr_timers **out);
/* Rescaling: registers in dst every live timer of src whose key hash
 * keep() accepts. */
int wr_timers_copy(struct wr_timers *dst, struct wr_timers *src,
		   bool (*keep)(uint64_t hash, void *arg), void *arg);

#endif
