/*
 * state/slab.c — size-class blocks and page runs in arena pages.
 *
 * A slab page, one arena page serving one class of `size` bytes:
 *
 *     [hdr 32 B][32 B unused][chunk][chunk]...[chunk][tail < size unused]
 *
 * Chunks start at CHUNK0 = 64, a cache line, so a chunk of 64 bytes or
 * more is line-aligned (table slot arrays in the slab probe one line per
 * slot, not two).
 * Chunks below `bump` were handed out at least once; a freed one heads the
 * page's free list, its first 4 bytes holding the next free offset (0 ends
 * the list: offset 0 is the header, never a chunk).  Every write here first
 * touches its page, so frees and allocs during a snapshot copy-on-write
 * like any other state write.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "core/error.h"
#include "state/slab.h"

#define HDR_SIZE 32u
#define CHUNK0 64u
#define SLAB_MAGIC 0x51AB0000u

struct slab_hdr {
	uint32_t magic;		/* SLAB_MAGIC | class */
	uint32_t used;		/* chunks handed out */
	uint32_t free_off;	/* first free chunk, 0 = none */
	uint32_t bump;		/* chunks at or above were never handed out */
	uint32_t prev, next;	/* partial list of the class, NO_PAGE ends */
	uint32_t pad[2];
};
_Static_assert(sizeof(struct slab_hdr) == HDR_SIZE, "slab header size");

static inline struct slab_hdr *hdr_of(const struct wr_slab *s, uint32_t page)
{
	return wr_arena_page_ptr(s->arena, page);
}

/* The write barrier for page's header (the changelog notes 32 bytes, not
 * the page). */
static inline int hdr_touch(struct wr_slab *s, uint32_t page)
{
	return wr_arena_touch_range(s->arena, hdr_of(s, page), HDR_SIZE);
}

static inline uint32_t class_size(uint32_t c)
{
	return WR_SLAB_MIN_BLOCK << c;
}

/* The class for size, or nclasses if it takes a run of pages. */
static uint32_t class_of(const struct wr_slab *s, uint64_t size)
{
	uint32_t c = 0;

	while (c < s->nclasses && class_size(c) < size)
		c++;
	return c;
}

static uint32_t run_pages(const struct wr_slab *s, uint64_t size)
{
	return (uint32_t)((size + s->arena->page_size - 1) >>
			  s->arena->page_shift);
}

void wr_slab_init(struct wr_slab *s, struct wr_arena *a)
{
	memset(s, 0, sizeof(*s));
	s->arena = a;
	while (s->nclasses < WR_SLAB_CLASSES_MAX &&
	       class_size(s->nclasses) <= a->page_size / 4)
		s->nclasses++;
	for (uint32_t c = 0; c < WR_SLAB_CLASSES_MAX; c++)
		s->partial[c] = WR_ARENA_NO_PAGE;
}

uint64_t wr_slab_block_size(const struct wr_slab *s, uint64_t size)
{
	uint32_t c = class_of(s, size);

	if (c < s->nclasses)
		return class_size(c);
	return (uint64_t)run_pages(s, size) << s->arena->page_shift;
}

int wr_slab_touch(struct wr_arena *a, const void *p, size_t len)
{
	return len ? wr_arena_touch_range(a, p, len) : 0;
}

static bool hdr_full(const struct wr_slab *s, const struct slab_hdr *h,
		     uint32_t size)
{
	return h->free_off == 0 && h->bump + size > s->arena->page_size;
}

/* A fresh page for class c, pushed on the class's partial list. */
static int page_new(struct wr_slab *s, uint32_t c, uint32_t *out)
{
	uint32_t p, head = s->partial[c];
	struct slab_hdr *h;
	int err = wr_arena_alloc(s->arena, 1, &p, NULL);

	if (err)
		return err;
	if ((head != WR_ARENA_NO_PAGE && (err = hdr_touch(s, head)) != 0) ||
	    (err = hdr_touch(s, p)) != 0) {
		wr_arena_free(s->arena, p, 1);
		return err;
	}
	h = hdr_of(s, p);
	*h = (struct slab_hdr){ .magic = SLAB_MAGIC | c, .bump = CHUNK0,
				.prev = WR_ARENA_NO_PAGE, .next = head };
	if (head != WR_ARENA_NO_PAGE)
		hdr_of(s, head)->prev = p;
	s->partial[c] = p;
	s->pages++;
	*out = p;
	return 0;
}

/* Takes a chunk from the head page of class c (which has room). */
static int take_chunk(struct wr_slab *s, uint32_t c, uint32_t p,
		      uint32_t *off)
{
	struct slab_hdr *h = hdr_of(s, p);
	uint32_t size = class_size(c), o;
	int err = hdr_touch(s, p);

	if (err)
		return err;
	if (h->next != WR_ARENA_NO_PAGE && (err = hdr_touch(s, h->next)) != 0)
		return err; /* touched first: popping p writes its successor */
	if (h->free_off) {
		o = h->free_off;
		memcpy(&h->free_off, (uint8_t *)h + o, sizeof(uint32_t));
	} else {
		o = h->bump;
		h->bump += size;
	}
	h->used++;
	if (hdr_full(s, h, size)) {
		s->partial[c] = h->next;
		if (h->next != WR_ARENA_NO_PAGE)
			hdr_of(s, h->next)->prev = WR_ARENA_NO_PAGE;
		h->next = h->prev = WR_ARENA_NO_PAGE;
	}
	*off = o;
	return 0;
}

int wr_slab_alloc(struct wr_slab *s, uint64_t size, uint64_t *ref)
{
	uint32_t c = class_of(s, size), p, off;
	int err;

	if (size == 0)
		return wr_error(-EINVAL, "slab: allocation of 0 bytes");
	if (c == s->nclasses) {
		uint64_t n = run_pages(s, size);
		if (n >= WR_ARENA_NO_PAGE)
			return wr_error(-ENOMEM, "slab: block of %llu bytes "
					"exceeds the arena",
					(unsigned long long)size);
		err = wr_arena_alloc(s->arena, (uint32_t)n, &p, NULL);
		if (err)
			return err;
		s->large_pages += n;
		s->bytes_live += n << s->arena->page_shift;
		*ref = (uint64_t)p << s->arena->page_shift;
		return 0;
	}
	p = s->partial[c];
	if (p == WR_ARENA_NO_PAGE && (err = page_new(s, c, &p)) != 0)
		return err;
	err = take_chunk(s, c, p, &off);
	if (err)
		return err;
	s->bytes_live += class_size(c);
	*ref = ((uint64_t)p << s->arena->page_shift) + off;
	return 0;
}

/* Unlinks page p from its class's partial list; neighbours touched. */
static void unlink_partial(struct wr_slab *s, uint32_t c, struct slab_hdr *h)
{
	if (h->prev != WR_ARENA_NO_PAGE)
		hdr_of(s, h->prev)->next = h->next;
	else
		s->partial[c] = h->next;
	if (h->next != WR_ARENA_NO_PAGE)
		hdr_of(s, h->next)->prev = h->prev;
}

static int touch_links(struct wr_slab *s, const struct slab_hdr *h)
{
	int err = 0;

	if (h->prev != WR_ARENA_NO_PAGE)
		err = hdr_touch(s, h->prev);
	if (!err && h->next != WR_ARENA_NO_PAGE)
		err = hdr_touch(s, h->next);
	return err;
}

/* The page's last chunk: unlink it and give the page back. */
static int free_page(struct wr_slab *s, uint32_t c, uint32_t p)
{
	struct slab_hdr *h = hdr_of(s, p);
	int err = touch_links(s, h);

	if (err)
		return err;
	unlink_partial(s, c, h); /* >= 3 chunks a page: it was partial */
	wr_arena_free(s->arena, p, 1);
	s->pages--;
	return 0;
}

static int free_chunk(struct wr_slab *s, uint32_t c, uint32_t p, uint32_t off)
{
	struct slab_hdr *h = hdr_of(s, p);
	uint32_t head = s->partial[c];
	bool was_full = hdr_full(s, h, class_size(c));
	int err;

	if (h->used == 1)
		return free_page(s, c, p);
	err = hdr_touch(s, p);
	if (!err)	/* the chunk's first 4 bytes link the free list */
		err = wr_arena_touch_range(s->arena, (uint8_t *)h + off,
					   sizeof(uint32_t));
	if (!err && was_full && head != WR_ARENA_NO_PAGE)
		err = hdr_touch(s, head);
	if (err)
		return err;
	memcpy((uint8_t *)h + off, &h->free_off, sizeof(uint32_t));
	h->free_off = off;
	h->used--;
	if (was_full) {
		h->prev = WR_ARENA_NO_PAGE;
		h->next = head;
		if (head != WR_ARENA_NO_PAGE)
			hdr_of(s, head)->prev = p;
		s->partial[c] = p;
	}
	return 0;
}

void wr_slab_free(struct wr_slab *s, uint64_t ref, uint64_t size)
{
	uint32_t c = class_of(s, size);
	uint32_t p = (uint32_t)(ref >> s->arena->page_shift);
	uint64_t bytes = wr_slab_block_size(s, size);

	/* Always on: a bad ref would corrupt another block's page. */
	assert(wr_slab_block_is_valid(s, ref, size));
	s->bytes_live -= bytes;
	if (c == s->nclasses) {
		wr_arena_free(s->arena, p, run_pages(s, size));
		s->large_pages -= run_pages(s, size);
		return;
	}
	if (free_chunk(s, c, p, (uint32_t)(ref & (s->arena->page_size - 1))))
		s->leaked_bytes += bytes;
}

bool wr_slab_block_is_valid(const struct wr_slab *s, uint64_t ref,
			    uint64_t size)
{
	uint32_t c = class_of(s, size), sz, off;
	uint32_t p = (uint32_t)(ref >> s->arena->page_shift);
	const struct slab_hdr *h;

	if (size == 0 || p >= s->arena->pages_total)
		return false;
	off = (uint32_t)(ref & (s->arena->page_size - 1));
	if (c == s->nclasses)
		return off == 0 && p + run_pages(s, size) <= s->arena->pages_total;
	h = hdr_of(s, p);
	sz = class_size(c);
	return h->magic == (SLAB_MAGIC | c) && h->used > 0 &&
	       off >= CHUNK0 && (off - CHUNK0) % sz == 0 &&
	       off + sz <= h->bump;
}

void wr_slab_save(const struct wr_slab *s, struct wr_slab_image *img)
{
	memset(img, 0, sizeof(*img));
	img->nclasses = s->nclasses;
	img->pages = s->pages;
	memcpy(img->partial, s->partial, sizeof(img->partial));
	img->bytes_live = s->bytes_live;
	img->leaked_bytes = s->leaked_bytes;
	img->large_pages = s->large_pages;
}

int wr_slab_load(struct wr_slab *s, struct wr_arena *a,
		 const struct wr_slab_image *img)
{
	wr_slab_init(s, a);
	if (img->nclasses != s->nclasses)
		return -EINVAL;
	for (uint32_t c = 0; c < WR_SLAB_CLASSES_MAX; c++)
		if (img->partial[c] != WR_ARENA_NO_PAGE &&
		    img->partial[c] >= a->pages_total)
			return -EINVAL;
	memcpy(s->partial, img->partial, sizeof(s->partial));
	s->pages = img->pages;
	s->bytes_live = img->bytes_live;
	s->leaked_bytes = img->leaked_bytes;
	s->large_pages = img->large_pages;
	return 0;
}
