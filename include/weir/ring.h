/*
 * weir/ring.h — bounded single-producer/single-consumer ring of fixed-size
 * records, with in-band control markers.
 *
 * PURPOSE
 *   The rings are the only thing two weir cores share on the data path: the
 *   runtime builds an N x N mesh of them (core i -> core j, including i -> i).
 *   Records travel by value in fixed-size slots; control markers (watermark,
 *   checkpoint barrier, end of input) travel in the same order as records.
 *
 * DESIGN
 *   - Capacity is a power of two; indexes are free-running uint32_t, masked
 *     on access, so they wrap past 2^32 without special cases: count is
 *     always (head - tail) in modular arithmetic.  All `capacity` slots are
 *     usable.
 *   - Producer-written and consumer-written fields live on separate cache
 *     lines (static asserts in ring.c).  Each side caches the other side's
 *     index and re-reads the shared one only when its cached view says the
 *     ring is full (producer) or empty (consumer), so in steady state a
 *     batch costs one shared-line transfer per side, not one per record.
 *   - Markers do not occupy record slots.  They sit in a small side queue
 *     tagged with the record position they precede; the consumer's dequeue
 *     stops at that position.  Records therefore pay nothing for markers
 *     (no per-slot tag byte), and order is still exact.
 *
 * INVARIANTS
 *   1. Exactly one thread calls the *_enqueue_* / enqueue_marker functions
 *      and exactly one thread calls the *_dequeue_* functions at a time
 *      (they may be the same thread).  Anything else is a data race.
 *   2. 0 <= head - tail <= capacity at every instant, as seen by either side.
 *   3. A marker with position p is dequeued after exactly the records
 *      enqueued before it and before any record enqueued after it.
 *   4. A full ring or full marker queue is backpressure: enqueue returns
 *      fewer records (or 0 / -ENOBUFS); nothing is ever dropped.
 *
 * CAVEATS
 *   - weir_ring_count() and weir_ring_free_count() are snapshots, exact only
 *     when called by one side with the other side idle.
 *   - The struct is visible only so that the hot path can be inlined (as
 *     DPDK does with rte_ring_core.h).  Do not touch its fields.
 */
#ifndef WEIR_RING_H
#define WEIR_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "weir/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest capacity and slot size a ring accepts. */
#define WEIR_RING_CAPACITY_MAX (1u << 30)
#define WEIR_RING_SLOT_SIZE_MAX 4096u
/* Markers that may be queued and not yet dequeued, per ring. */
#define WEIR_RING_MARKERS 64u

enum weir_marker_kind {
	WEIR_MARKER_WATERMARK = 1, /* value: event time in ms */
	WEIR_MARKER_BARRIER = 2,   /* value: checkpoint id */
	WEIR_MARKER_END = 3,       /* end of input from this producer */
	WEIR_MARKER_IDLE = 4,      /* producer idle: ignore its watermark */
	WEIR_MARKER_USER = 16,     /* first kind free for embedders */
};

struct weir_marker {
	uint32_t kind;  /* enum weir_marker_kind or >= WEIR_MARKER_USER */
	uint32_t arg;   /* kind-specific, e.g. the source id */
	uint64_t value; /* kind-specific */
};

/* A marker in the side queue: the record position it precedes. */
struct wr_ring_marker_slot {
	uint32_t pos;
	uint32_t pad;
	struct weir_marker m;
};

struct weir_ring {
	/* Read-only after weir_ring_create(). */
	alignas(WEIR_CACHE_LINE) uint8_t *slots;
	uint32_t mask;
	uint32_t capacity;
	uint32_t slot_size;

	/* Published by the producer (release), read by the consumer. */
	alignas(WEIR_CACHE_LINE) _Atomic uint32_t head;
	/* Producer-published marker index: its own line, because the consumer
	 * reads it on every dequeue and it changes only per marker, so it
	 * stays in the consumer's cache instead of bouncing with head. */
	alignas(WEIR_CACHE_LINE) _Atomic uint32_t mk_head;

	/* Producer-private: its cached view of the consumer's indexes. */
	alignas(WEIR_CACHE_LINE) uint32_t tail_cache;
	uint32_t mk_tail_cache;

	/* Published by the consumer (release), read by the producer. */
	alignas(WEIR_CACHE_LINE) _Atomic uint32_t tail;
	/* Consumer-published marker index, read by the producer only when its
	 * cached view says the marker queue is full. */
	alignas(WEIR_CACHE_LINE) _Atomic uint32_t mk_tail;

	/* Consumer-private: its cached view of the producer's indexes. */
	alignas(WEIR_CACHE_LINE) uint32_t head_cache;
	uint32_t mk_head_cache;

	/* Written by the producer before it publishes mk_head. */
	alignas(WEIR_CACHE_LINE) struct wr_ring_marker_slot mk[WEIR_RING_MARKERS];
};

/*
 * Create a ring of `capacity` slots of `slot_size` bytes each.
 * capacity: a power of two in [2, WEIR_RING_CAPACITY_MAX];
 * slot_size: in [1, WEIR_RING_SLOT_SIZE_MAX].
 * Returns 0, -EINVAL (see weir_last_error()) or -ENOMEM.
 * The ring is owned by the caller until weir_ring_destroy().
 */
int weir_ring_create(uint32_t capacity, uint32_t slot_size,
		     struct weir_ring **out);
void weir_ring_destroy(struct weir_ring *r);

/* Copy n contiguous slots between a ring and a caller's array. */
static inline void wr_ring_copy_in(struct weir_ring *r, uint32_t idx,
				   const void *src, uint32_t n)
{
	uint32_t at = idx & r->mask;
	uint32_t first = r->capacity - at;
	size_t sz = r->slot_size;

	if (WEIR_LIKELY(n <= first)) {
		memcpy(r->slots + at * sz, src, n * sz);
		return;
	}
	memcpy(r->slots + at * sz, src, first * sz);
	memcpy(r->slots, (const uint8_t *)src + first * sz, (n - first) * sz);
}

static inline void wr_ring_copy_out(const struct weir_ring *r, uint32_t idx,
				    void *dst, uint32_t n)
{
	uint32_t at = idx & r->mask;
	uint32_t first = r->capacity - at;
	size_t sz = r->slot_size;

	if (WEIR_LIKELY(n <= first)) {
		memcpy(dst, r->slots + at * sz, n * sz);
		return;
	}
	memcpy(dst, r->slots + at * sz, first * sz);
	memcpy((uint8_t *)dst + first * sz, r->slots, (n - first) * sz);
}

/* Producer side: how many of n fit, refreshing the cached tail if needed. */
static inline uint32_t wr_ring_room(struct weir_ring *r, uint32_t head,
				    uint32_t n)
{
	uint32_t room = r->capacity - (head - r->tail_cache);

	if (room < n) {
		/* Pairs with the release store of tail in wr_ring_take(). */
		r->tail_cache = atomic_load_explicit(&r->tail,
						     memory_order_acquire);
		room = r->capacity - (head - r->tail_cache);
	}
	return room;
}

static inline uint32_t wr_ring_put(struct weir_ring *r, const void *recs,
				   uint32_t n, bool all_or_none)
{
	/* Only this thread writes head, so a relaxed load is exact. */
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t room = wr_ring_room(r, head, n);

	if (room < n) {
		if (all_or_none || room == 0)
			return 0;
		n = room;
	}
	wr_ring_copy_in(r, head, recs, n);
	/* Pairs with the acquire load of head in wr_ring_avail(). */
	atomic_store_explicit(&r->head, head + n, memory_order_release);
	return n;
}

/*
 * Consumer side: how many records may be taken now, at most n, stopping at
 * the next marker's position.  Order matters: head is acquired before
 * mk_head is read, so every marker whose position is below the head we saw
 * is visible (the producer publishes a marker before the records after it).
 */
static inline uint32_t wr_ring_avail(struct weir_ring *r, uint32_t tail,
				     uint32_t n)
{
	uint32_t avail = r->head_cache - tail;

	if (avail < n) {
		/* Pairs with the release store of head in wr_ring_put(). */
		r->head_cache = atomic_load_explicit(&r->head,
						     memory_order_acquire);
		avail = r->head_cache - tail;
	}
	if (avail == 0)
		return 0;
	uint32_t mk_tail = atomic_load_explicit(&r->mk_tail,
						memory_order_relaxed);
	if (WEIR_UNLIKELY(r->mk_head_cache != mk_tail ||
			  (r->mk_head_cache = atomic_load_explicit(
				   &r->mk_head, memory_order_acquire)) !=
				  mk_tail)) {
		/* A marker is pending: stop at its position. */
		uint32_t pos = r->mk[mk_tail & (WEIR_RING_MARKERS - 1)].pos;
		if (pos - tail < avail)
			avail = pos - tail;
	}
	return avail < n ? avail : n;
}

static inline uint32_t wr_ring_take(struct weir_ring *r, void *recs,
				    uint32_t n, bool all_or_none)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t avail = wr_ring_avail(r, tail, n);

	if (avail < n) {
		if (all_or_none || avail == 0)
			return 0;
		n = avail;
	}
	wr_ring_copy_out(r, tail, recs, n);
	/* Pairs with the acquire load of tail in wr_ring_room(). */
	atomic_store_explicit(&r->tail, tail + n, memory_order_release);
	return n;
}

/* Enqueue all n records or none; returns n or 0. */
static inline uint32_t weir_ring_enqueue_bulk_spsc(struct weir_ring *r,
						   const void *recs, uint32_t n)
{
	return wr_ring_put(r, recs, n, true);
}

/* Enqueue as many of the n records as fit; returns how many (0..n). */
static inline uint32_t weir_ring_enqueue_burst_spsc(struct weir_ring *r,
						    const void *recs,
						    uint32_t n)
{
	return wr_ring_put(r, recs, n, false);
}

/* Dequeue exactly n records or none; stops before a marker. */
static inline uint32_t weir_ring_dequeue_bulk_spsc(struct weir_ring *r,
						   void *recs, uint32_t n)
{
	return wr_ring_take(r, recs, n, true);
}

/* Dequeue up to n records; stops before a marker.  Returns how many. */
static inline uint32_t weir_ring_dequeue_burst_spsc(struct weir_ring *r,
						    void *recs, uint32_t n)
{
	return wr_ring_take(r, recs, n, false);
}

/*
 * Producer: queue a marker after every record enqueued so far.
 * Returns 0, or -ENOBUFS when WEIR_RING_MARKERS markers are still pending
 * (backpressure: try again after the consumer has caught up).
 */
int weir_ring_enqueue_marker_spsc(struct weir_ring *r,
				  const struct weir_marker *m);

/*
 * Consumer: if a marker is next in order (every record before it has been
 * dequeued), copy it to *m, remove it and return 1; otherwise return 0.
 */
int weir_ring_dequeue_marker_spsc(struct weir_ring *r, struct weir_marker *m);

/* Records in the ring now (snapshot; see CAVEATS). */
uint32_t weir_ring_count(const struct weir_ring *r);
uint32_t weir_ring_free_count(const struct weir_ring *r);
uint32_t weir_ring_capacity(const struct weir_ring *r);
uint32_t weir_ring_slot_size(const struct weir_ring *r);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_RING_H */
