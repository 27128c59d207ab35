/*
 * state/slab.h — variable-size blocks (list elements, map entries) in the
 * pages of a state arena.
 *
 * PURPOSE
 *   Keyed state whose size varies per key (a list, a per-key map) cannot sit
 *   inline in a table slot.  A slab hands out blocks from the same arena as
 *   the tables, so every state byte still lives in an arena page and a
 *   snapshot is still a set of pages.  Blocks are named by a `ref`: the byte
 *   offset from the arena base, not a pointer, so a restored arena mapped at
 *   another address keeps every ref valid.
 *
 *   Small blocks (<= page_size / 4, so a page holds >= 3 of them) come from
 *   power-of-two size classes, 16 bytes up: a slab page serves one class and
 *   starts with a 32-byte header (class, chunks in use, its own free list,
 *   bump offset, links of the class's list of pages with free chunks).
 *   Larger blocks are runs of whole pages straight from wr_arena_alloc.
 *   Power-of-two classes waste up to half a block; lists grow by doubling,
 *   so their blocks are powers of two anyway.
 *
 * INVARIANTS (checked by wr_slab_is_valid on the pages it is shown)
 *   1. A slab page is either on its class's partial list (it has a free
 *      chunk) or full; a page whose last chunk is freed goes back to the
 *      arena at once, so memory moves between classes and tables.
 *   2. bytes_live = sum of the class sizes (or page runs) of live blocks.
 *   3. Every byte written, headers and free-list links included, is
 *      preceded by wr_arena_touch of its page (wr_slab_touch for callers).
 *
 * CAVEATS
 *   - Owning core only.  A block pointer (wr_slab_ptr) is valid until the
 *     block is freed; it never moves.  Callers must wr_slab_touch() the
 *     bytes they are about to write, each time after a snapshot_begin.
 *   - The class heads live in struct wr_slab, outside the arena (like the
 *     table header): a restore rebuilds them by scanning the slab pages.
 *   - wr_slab_free cannot fail: if the page it must write cannot get a COW
 *     shadow (arena full during a snapshot) the block is leaked and counted
 *     in leaked_bytes instead of corrupting the snapshot.
 *   - The caller remembers each block's size: it is passed back to free.
 */
#ifndef WR_STATE_SLAB_H
#define WR_STATE_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/arena.h"

#define WR_SLAB_MIN_BLOCK 16u
#define WR_SLAB_CLASSES_MAX 24u

struct wr_slab {
	struct wr_arena *arena;
	uint32_t nclasses;	/* classes 16 << c, c < nclasses */
	uint32_t partial[WR_SLAB_CLASSES_MAX]; /* first page with room */
	uint64_t bytes_live;	/* invariant 2 */
	uint64_t leaked_bytes;	/* frees lost to a failed COW touch */
	uint32_t pages;		/* small-class pages held */
	uint64_t large_pages;	/* pages held by large runs */
};

void wr_slab_init(struct wr_slab *s, struct wr_arena *a);

/* A block of at least `size` bytes (uninitialised): 0, -EINVAL for size 0,
 * or -ENOMEM at the arena cap. */
int wr_slab_alloc(struct wr_slab *s, uint64_t size, uint64_t *ref);
/* Frees a block of `size` bytes (the size given to alloc). */
void wr_slab_free(struct wr_slab *s, uint64_t ref, uint64_t size);
/* Bytes a block of `size` really holds (its class size or page run). */
uint64_t wr_slab_block_size(const struct wr_slab *s, uint64_t size);

/* The write barrier for [p, p + len): touches every page it covers. */
int wr_slab_touch(struct wr_arena *a, const void *p, size_t len);

/* True if ref is the start of a live block of `size` bytes. */
bool wr_slab_block_is_valid(const struct wr_slab *s, uint64_t ref,
			    uint64_t size);

/* Checkpoints: the class heads and counters (they live outside the
 * arena), as plain data. */
struct wr_slab_image {
	uint32_t nclasses, pages;
	uint32_t partial[WR_SLAB_CLASSES_MAX];
	uint64_t bytes_live, leaked_bytes, large_pages;
};
void wr_slab_save(const struct wr_slab *s, struct wr_slab_image *img);
/* -EINVAL if the image does not fit the arena (page size, page ids). */
int wr_slab_load(struct wr_slab *s, struct wr_arena *a,
		 const struct wr_slab_image *img);

static inline void *wr_slab_ptr(const struct wr_arena *a, uint64_t ref)
{
	return a->base + ref;
}

#endif /* WR_STATE_SLAB_H */
