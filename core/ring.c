/*
 * ring.c — creation and the cold paths of the SPSC ring (weir/ring.h).
 * The hot path is inline in the header.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "core/error.h"
#include "weir/ring.h"

/* Producer- and consumer-written fields must never share a cache line. */
#define SAME_LINE(a, b)                                                       \
	(offsetof(struct weir_ring, a) / WEIR_CACHE_LINE ==                   \
	 offsetof(struct weir_ring, b) / WEIR_CACHE_LINE)
_Static_assert(!SAME_LINE(head, tail), "head and tail share a line");
_Static_assert(!SAME_LINE(head, head_cache), "head and consumer cache");
_Static_assert(!SAME_LINE(tail, tail_cache), "tail and producer cache");
_Static_assert(!SAME_LINE(tail_cache, head_cache), "private caches");
_Static_assert(!SAME_LINE(mk_head, head), "mk_head bounces with head");
_Static_assert(!SAME_LINE(mk_tail, tail), "mk_tail bounces with tail");
_Static_assert(!SAME_LINE(mk_head, mk_tail), "marker indexes");
_Static_assert(!SAME_LINE(slots, head) && !SAME_LINE(slots, tail),
	       "read-only fields share a line with a written one");
_Static_assert((WEIR_RING_MARKERS & (WEIR_RING_MARKERS - 1)) == 0,
	       "marker queue size must be a power of two");

/* Slot arrays of 2 MiB or more ask for transparent huge pages: a random
 * DRAM access costs ~350 ns with 4 KiB pages and ~240 ns with THP here. */
#define RING_THP_BYTES (2u << 20)

int weir_ring_create(uint32_t capacity, uint32_t slot_size,
		     struct weir_ring **out)
{
	struct weir_ring *r;
	size_t bytes;
	void *slots;

	if (capacity < 2 || capacity > WEIR_RING_CAPACITY_MAX ||
	    (capacity & (capacity - 1)) != 0)
		return wr_error(-EINVAL,
				"ring capacity %u is not a power of two in "
				"[2, %u]", capacity, WEIR_RING_CAPACITY_MAX);
	if (slot_size == 0 || slot_size > WEIR_RING_SLOT_SIZE_MAX)
		return wr_error(-EINVAL,
				"record size %u is out of range [1, %u] bytes",
				slot_size, WEIR_RING_SLOT_SIZE_MAX);
	if (out == NULL)
		return wr_error(-EINVAL, "ring out-pointer is NULL");

	bytes = (size_t)capacity * slot_size;
	/* aligned_alloc wants a size that is a multiple of the alignment. */
	size_t align = bytes >= RING_THP_BYTES ? RING_THP_BYTES : WEIR_CACHE_LINE;
	bytes = (bytes + align - 1) & ~(align - 1);
	r = aligned_alloc(WEIR_CACHE_LINE, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	slots = aligned_alloc(align, bytes);
	if (slots == NULL)
		goto err_free_ring;
	if (align == RING_THP_BYTES)
		(void)madvise(slots, bytes, MADV_HUGEPAGE);

	memset(r, 0, sizeof(*r));
	r->slots = slots;
	r->capacity = capacity;
	r->mask = capacity - 1;
	r->slot_size = slot_size;
	*out = r;
	return 0;

err_free_ring:
	free(r);
	return -ENOMEM;
}

void weir_ring_destroy(struct weir_ring *r)
{
	if (r == NULL)
		return;
	free(r->slots);
	free(r);
}

int weir_ring_enqueue_marker_spsc(struct weir_ring *r,
				  const struct weir_marker *m)
{
	uint32_t mk_head = atomic_load_explicit(&r->mk_head,
						memory_order_relaxed);
	struct wr_ring_marker_slot *s;

	if (mk_head - r->mk_tail_cache == WEIR_RING_MARKERS) {
		/* Pairs with the release store of mk_tail in
		 * weir_ring_dequeue_marker_spsc(). */
		r->mk_tail_cache = atomic_load_explicit(&r->mk_tail,
							memory_order_acquire);
		if (mk_head - r->mk_tail_cache == WEIR_RING_MARKERS)
			return -ENOBUFS;
	}
	s = &r->mk[mk_head & (WEIR_RING_MARKERS - 1)];
	s->pos = atomic_load_explicit(&r->head, memory_order_relaxed);
	s->m = *m;
	/* Pairs with the acquire load of mk_head in wr_ring_avail() and
	 * weir_ring_dequeue_marker_spsc(); it precedes, in program order, the
	 * release store of head for every later record, which is what lets the
	 * consumer see the marker before it can pass its position. */
	atomic_store_explicit(&r->mk_head, mk_head + 1, memory_order_release);
	return 0;
}

int weir_ring_dequeue_marker_spsc(struct weir_ring *r, struct weir_marker *m)
{
	uint32_t mk_tail = atomic_load_explicit(&r->mk_tail,
						memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	const struct wr_ring_marker_slot *s;

	if (r->mk_head_cache == mk_tail) {
		/* Pairs with the release store in enqueue_marker. */
		r->mk_head_cache = atomic_load_explicit(&r->mk_head,
							memory_order_acquire);
		if (r->mk_head_cache == mk_tail)
			return 0;
	}
	s = &r->mk[mk_tail & (WEIR_RING_MARKERS - 1)];
	if (s->pos != tail)
		return 0; /* records before the marker are still queued */
	*m = s->m;
	/* Pairs with the acquire load of mk_tail in enqueue_marker. */
	atomic_store_explicit(&r->mk_tail, mk_tail + 1, memory_order_release);
	return 1;
}

uint32_t weir_ring_count(const struct weir_ring *r)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	uint32_t n = head - tail;

	return n > r->capacity ? r->capacity : n;
}

uint32_t weir_ring_free_count(const struct weir_ring *r)
{
	return r->capacity - weir_ring_count(r);
}

uint32_t weir_ring_capacity(const struct weir_ring *r)
{
	return r->capacity;
}

uint32_t weir_ring_slot_size(const struct weir_ring *r)
{
	return r->slot_size;
}
