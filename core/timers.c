/*
 * timers.c — per-key timer sets and heaps in arena pages (core/timers.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/error.h"
#include "core/timers.h"
#include "state/table.h"

#define HEAP_PAGES_MIN 1u

/* A heap of fixed-size entries [ts | hash | key] in one arena page run.
 * entry_size is a power of two, so an entry never straddles a page. */
struct heap {
	uint32_t first_page;
	uint32_t npages;
	uint64_t n;
	uint64_t cap;
};

struct wr_timers {
	struct wr_arena *a;
	struct wr_table *set; /* key: [domain+ts (8) | key] */
	uint32_t key_size;
	uint32_t entry_size;
	struct heap heap[WR_TIMER_DOMAINS];
	uint8_t scratch[8 + 8 + WR_TABLE_KEY_SIZE_MAX];
	uint8_t popped[8 + 8 + WR_TABLE_KEY_SIZE_MAX];
};

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 16;

	while (p < v)
		p <<= 1;
	return p;
}

int wr_timers_create(struct wr_arena *a, uint32_t key_size,
		     struct wr_timers **out)
{
	struct wr_table_config tc = { .key_size = 8 + key_size, .value_size = 1 };
	struct wr_timers *t;
	int err;

	if (key_size == 0 || 8 + key_size > WR_TABLE_KEY_SIZE_MAX)
		return wr_error(-EINVAL, "timer key size %u is out of range "
				"[1, %u]", key_size, WR_TABLE_KEY_SIZE_MAX - 8);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->a = a;
	t->key_size = key_size;
	t->entry_size = pow2_at_least(16 + key_size);
	err = wr_table_create(a, &tc, &t->set);
	if (err) {
		free(t);
		return err;
	}
	*out = t;
	return 0;
}

void wr_timers_destroy(struct wr_timers *t)
{
	if (t == NULL)
		return;
	for (int d = 0; d < WR_TIMER_DOMAINS; d++)
		if (t->heap[d].npages)
			wr_arena_free(t->a, t->heap[d].first_page,
				      t->heap[d].npages);
	wr_table_destroy(t->set);
	free(t);
}

static uint8_t *entry(const struct wr_timers *t, const struct heap *h,
		      uint64_t i)
{
	return (uint8_t *)wr_arena_page_ptr(t->a, h->first_page) +
	       i * t->entry_size;
}

static int64_t entry_ts(const struct wr_timers *t, const struct heap *h,
			uint64_t i)
{
	int64_t ts;

	memcpy(&ts, entry(t, h, i), sizeof(ts));
	return ts;
}

/* Write entry i.  Its page must have been touched (see touch_path). */
static void put(struct wr_timers *t, struct heap *h, uint64_t i,
		const uint8_t *src)
{
	memcpy(entry(t, h, i), src, t->entry_size);
}

/*
 * A sift moves entries along one root-to-leaf path.  Its pages are touched
 * (copy-on-write) before anything moves, so a failed touch (no page left
 * for a shadow) leaves the heap as it was instead of half-moved.
 */
static int touch_path(struct wr_timers *t, struct heap *h,
		      const uint64_t *path, unsigned k)
{
	for (unsigned j = 0; j < k; j++) {
		int err = wr_arena_touch_range(t->a, entry(t, h, path[j]),
					       t->entry_size);
		if (err)
			return err;
	}
	return 0;
}

static int grow(struct wr_timers *t, struct heap *h)
{
	uint32_t page = t->a->page_size;
	uint32_t npages = h->npages ? h->npages * 2 : HEAP_PAGES_MIN;
	struct heap bigger = *h;
	int err = wr_arena_alloc(t->a, npages, &bigger.first_page, NULL);

	if (err)
		return wr_error(err, "timers reached the state memory cap");
	bigger.npages = npages;
	bigger.cap = (uint64_t)npages * page / t->entry_size;
	if (h->n > 0)	/* the entries copied below */
		err = wr_arena_touch_range(t->a, entry(t, &bigger, 0),
					   h->n * t->entry_size);
	if (err) {
		wr_arena_free(t->a, bigger.first_page, npages);
		return err;
	}
	for (uint64_t i = 0; i < h->n; i++)
		put(t, &bigger, i, entry(t, h, i));
	if (h->npages)
		wr_arena_free(t->a, h->first_page, h->npages);
	*h = bigger;
	return 0;
}

/* Move each entry on path one step towards path[0] and put e at the end:
 * pages first (touch_path), then the moves, so a failure moves nothing. */
static int shift_along(struct wr_timers *t, struct heap *h,
		       const uint64_t *path, unsigned k, const uint8_t *e)
{
	int err = touch_path(t, h, path, k);

	if (err)
		return err;
	for (unsigned j = 1; j < k; j++)
		put(t, h, path[j - 1], entry(t, h, path[j]));
	put(t, h, path[k - 1], e);
	return 0;
}

/* Place e, which belongs at or above slot i, moving parents down. */
static int sift_up(struct wr_timers *t, struct heap *h, uint64_t i,
		   const uint8_t *e)
{
	uint64_t path[64];
	unsigned k = 0;
	int64_t ts;

	memcpy(&ts, e, sizeof(ts));
	path[k++] = i;
	for (uint64_t j = i; j > 0 && entry_ts(t, h, (j - 1) / 2) > ts;)
		path[k++] = j = (j - 1) / 2;
	return shift_along(t, h, path, k, e);
}

/* Place e, which belongs at or below the root, moving children up. */
static int sift_down(struct wr_timers *t, struct heap *h, const uint8_t *e)
{
	uint64_t path[64];
	unsigned k = 0;
	int64_t ts;

	memcpy(&ts, e, sizeof(ts));
	path[k++] = 0;
	for (uint64_t i = 0;;) {
		uint64_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && entry_ts(t, h, c + 1) < entry_ts(t, h, c))
			c++;
		if (entry_ts(t, h, c) >= ts)
			break;
		path[k++] = i = c;
	}
	return shift_along(t, h, path, k, e);
}

static uint64_t set_key(struct wr_timers *t, int domain, int64_t ts,
			const void *key)
{
	/* The domain rides in the sign-free top bit of the stored stamp. */
	uint64_t stamp = (uint64_t)ts ^ ((uint64_t)domain << 63);

	memcpy(t->scratch, &stamp, 8);
	memcpy(t->scratch + 8, key, t->key_size);
	return XXH3_64bits(t->scratch, 8 + t->key_size);
}

int wr_timers_register(struct wr_timers *t, int domain, int64_t ts,
		       const void *key, uint64_t hash)
{
	struct heap *h = &t->heap[domain];
	uint8_t e[sizeof(t->popped)];
	uint64_t sh = set_key(t, domain, ts, key);
	bool inserted;
	void *v;
	int err = wr_table_upsert(t->set, t->scratch, sh, &v, &inserted);

	if (err || !inserted)
		return err;
	if (h->n == h->cap && (err = grow(t, h)) != 0) {
		(void)wr_table_remove(t->set, t->scratch, sh);
		return err;
	}
	memset(e, 0, sizeof(e));
	memcpy(e, &ts, 8);
	memcpy(e + 8, &hash, 8);
	memcpy(e + 16, key, t->key_size);
	err = sift_up(t, h, h->n++, e);
	if (err) { /* nothing moved: undo the slot and the set entry */
		h->n--;
		set_key(t, domain, ts, key);
		(void)wr_table_remove(t->set, t->scratch, sh);
	}
	return err;
}

int wr_timers_delete(struct wr_timers *t, int domain, int64_t ts,
		     const void *key)
{
	uint64_t sh = set_key(t, domain, ts, key);

	return wr_table_remove(t->set, t->scratch, sh);
}

int64_t wr_timers_next_ts(const struct wr_timers *t, int domain)
{
	const struct heap *h = &t->heap[domain];

	return h->n ? entry_ts(t, h, 0) : INT64_MAX;
}

bool wr_timers_due(const struct wr_timers *t, int domain, int64_t upto)
{
	const struct heap *h = &t->heap[domain];

	return h->n > 0 && entry_ts(t, h, 0) <= upto;
}

/* Remove the heap top into t->popped. */
static int pop_top(struct wr_timers *t, struct heap *h)
{
	uint8_t last[sizeof(t->popped)];
	int err = 0;

	memcpy(t->popped, entry(t, h, 0), t->entry_size);
	memcpy(last, entry(t, h, h->n - 1), t->entry_size);
	h->n--;
	if (h->n > 0 && (err = sift_down(t, h, last)) != 0)
		h->n++; /* nothing moved: the heap is as it was */
	return err;
}

int wr_timers_pop(struct wr_timers *t, int domain, int64_t upto,
		  uint32_t *budget, struct wr_timer *out)
{
	struct heap *h = &t->heap[domain];

	while (*budget > 0 && h->n > 0 && entry_ts(t, h, 0) <= upto) {
		int64_t ts;
		(*budget)--;
		if (pop_top(t, h) != 0)
			return 0; /* no page for a COW copy: retry next tick */
		memcpy(&ts, t->popped, 8);
		if (wr_timers_delete(t, domain, ts, t->popped + 16) != 0)
			continue; /* deleted since it was registered */
		out->ts = ts;
		memcpy(&out->hash, t->popped + 8, 8);
		out->key = t->popped + 16;
		return 1;
	}
	return 0;
}

uint64_t wr_timers_count(const struct wr_timers *t)
{
	return wr_table_count(t->set);
}

/* ---- checkpoints ---- */

void wr_timers_save(const struct wr_timers *t, struct wr_timers_image *img)
{
	memset(img, 0, sizeof(*img));
	wr_table_save(t->set, &img->set);
	for (int d = 0; d < WR_TIMER_DOMAINS; d++)
		img->heap[d] = (struct wr_timers_heap_image){
			t->heap[d].first_page, t->heap[d].npages,
			t->heap[d].n, t->heap[d].cap };
}

static int heap_load(struct wr_timers *t, const struct wr_timers_heap_image *o,
		     struct heap *h)
{
	/* Bytes from a file: the size is checked before it could wrap, and
	 * the pages must be live (the heap frees them when it shrinks). */
	if (o->n > o->cap ||
	    o->cap > (uint64_t)o->npages * t->a->page_size / t->entry_size ||
	    (o->npages && !wr_arena_pages_live(t->a, o->first_page,
					       o->npages)))
		return -EINVAL;
	*h = (struct heap){ o->first_page, o->npages, o->n, o->cap };
	return 0;
}

int wr_timers_load(struct wr_arena *a, uint32_t key_size,
		   const struct wr_timers_image *img, struct wr_timers **out)
{
	struct wr_timers *t = calloc(1, sizeof(*t));
	int err = 0;

	if (t == NULL)
		return -ENOMEM;
	t->a = a;
	t->key_size = key_size;
	t->entry_size = pow2_at_least(16 + key_size);
	for (int d = 0; d < WR_TIMER_DOMAINS && err == 0; d++)
		err = heap_load(t, &img->heap[d], &t->heap[d]);
	for (int d = 1; d < WR_TIMER_DOMAINS && err == 0; d++)
		for (int e = 0; e < d && err == 0; e++)
			if (!wr_arena_runs_disjoint(t->heap[d].first_page,
						    t->heap[d].npages,
						    t->heap[e].first_page,
						    t->heap[e].npages))
				err = -EINVAL;	/* freed twice */
	if (err == 0 && img->set.key_size != 8 + key_size)
		err = -EINVAL;
	if (err == 0)
		err = wr_table_load(a, NULL, &img->set, &t->set);
	if (err) {
		free(t);
		return wr_error(err, "checkpoint: timers image does not fit");
	}
	*out = t;
	return 0;
}

int wr_timers_copy(struct wr_timers *dst, struct wr_timers *src,
		   bool (*keep)(uint64_t hash, void *arg), void *arg)
{
	/* From the heaps, which carry ts and hash; an entry is live iff
	 * the set still holds it (lazy deletion). */
	for (int d = 0; d < WR_TIMER_DOMAINS; d++) {
		const struct heap *h = &src->heap[d];
		for (uint64_t i = 0; i < h->n; i++) {
			const uint8_t *e = entry(src, h, i);
			int64_t ts;
			uint64_t hash;
			memcpy(&ts, e, 8);
			memcpy(&hash, e + 8, 8);
			uint64_t sh = set_key(src, d, ts, e + 16);
			if (!keep(hash, arg) ||
			    wr_table_get(src->set, src->scratch, sh) == NULL)
				continue;
			int err = wr_timers_register(dst, d, ts, e + 16, hash);
			if (err)
				return err;
		}
	}
	return 0;
}
