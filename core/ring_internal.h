/*
 * core/ring_internal.h — test hooks for the ring; never for the data path.
 */
#ifndef WR_CORE_RING_INTERNAL_H
#define WR_CORE_RING_INTERNAL_H

#include "weir/ring.h"

/* Start an empty ring's indexes at `start` so tests can cross 2^32.  Only
 * while no other thread uses the ring. */
static inline void wr_ring_reset_at(struct weir_ring *r, uint32_t start)
{
	atomic_store(&r->head, start);
	atomic_store(&r->tail, start);
	r->head_cache = start;
	r->tail_cache = start;
}

#endif
