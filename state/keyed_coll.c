/*
 * state/keyed_coll.c — LIST and MAP state: per-key collections in slab
 * blocks of the state's arena.
 *
 * LIST: one contiguous block of cap elements, cap grown by doubling (and
 * rounded up to what the block's size class holds).  Contiguity buys O(1)
 * get(i) and a zero-copy view; the price is a copy of the list at each
 * doubling (~50 us for an 800 KB list), amortised O(1) per append.
 *
 * MAP: per key, a linear-probing table of cap (power of two) slots
 * [u64 tag][map key][value] in one block, at most 3/4 full, grown by
 * doubling; removal shifts the cluster back (no tombstones).  A slot is
 * written only after its pages are touched; a removal touches the whole
 * cluster before moving anything, so a failed touch changes nothing.
 */
#include <errno.h>
#include <string.h>

#include "core/error.h"
#include "state/keyed_internal.h"

#define LIST_FIRST_BYTES 64u
#define MAP_FIRST_CAP 4u

static inline struct wr_coll_hdr *coll_of(const struct wr_kstate *s,
					  uint8_t *v)
{
	return (struct wr_coll_hdr *)wr_entry_payload(s, v);
}

static inline uint8_t *block_of(const struct wr_kstate *s,
				const struct wr_coll_hdr *h)
{
	return wr_slab_ptr(s->arena, h->ref);
}

/* ---- LIST ---- */

/* Moves the list to a block of at least want elements, keeping `keep`. */
static int list_realloc(struct wr_kstate *s, struct wr_coll_hdr *h,
			uint64_t want, uint32_t keep)
{
	uint64_t bytes = wr_slab_block_size(&s->slab, want * s->elem);
	uint64_t cap = bytes / s->elem, ref;
	int err;

	if (cap > UINT32_MAX)
		cap = UINT32_MAX;
	err = wr_slab_alloc(&s->slab, cap * s->elem, &ref);
	if (err)
		return err;
	err = wr_slab_touch(s->arena, wr_slab_ptr(s->arena, ref),
			    (size_t)keep * s->elem);
	if (err) {
		wr_slab_free(&s->slab, ref, cap * s->elem);
		return err;
	}
	if (keep)
		memcpy(wr_slab_ptr(s->arena, ref), block_of(s, h),
		       (size_t)keep * s->elem);
	wr_coll_free(s, h);
	h->ref = ref;
	h->cap = (uint32_t)cap;
	h->len = keep;
	return 0;
}

struct list_args {
	const void *key;
	uint64_t hash;
	const void *elems;
	uint32_t n;
};

static int list_append_op(struct wr_kstate *s, int64_t now_ms, void *args)
{
	struct list_args *a = args;
	struct wr_coll_hdr *h;
	uint8_t *v, *dst;
	bool fresh;
	int err = wr_entry_write(s, a->key, a->hash, now_ms, &v, &fresh);

	if (err)
		return err;
	h = coll_of(s, v);
	if (h->len == UINT32_MAX)
		return wr_error(-EOVERFLOW, "list state '%s' holds %u elements",
				s->name, h->len);
	if (h->len == h->cap) {
		uint64_t want = h->cap ? (uint64_t)h->cap * 2 :
			(LIST_FIRST_BYTES + s->elem - 1) / s->elem;
		err = list_realloc(s, h, want, h->len);
	}
	dst = err ? NULL : block_of(s, h) + (size_t)h->len * s->elem;
	if (!err)
		err = wr_slab_touch(s->arena, dst, s->elem);
	if (err) {
		if (h->len == 0)
			wr_entry_drop(s, a->key, a->hash, v);
		return err;
	}
	memcpy(dst, a->elems, s->elem);
	h->len++;
	wr_entry_stamp(s, v, now_ms);
	return 0;
}

int wr_kstate_list_append(struct wr_kstate *s, const void *key,
			  uint64_t hash, int64_t now_ms, const void *elem)
{
	struct list_args a = { key, hash, elem, 1 };
	int err = wr_kstate_check_kind(s, WEIR_STATE_LIST);

	return err ? err : wr_kstate_run(s, now_ms, list_append_op, &a);
}

/* Sets the list to elems[0..n), which may point into the list itself. */
static int list_fill(struct wr_kstate *s, struct wr_coll_hdr *h,
		     const void *elems, uint32_t n)
{
	struct wr_coll_hdr nw = { 0 };
	size_t bytes = (size_t)n * s->elem;
	int err;

	if (h->cap >= n && h->cap / 4 <= n) { /* fits, not 4x too big */
		err = wr_slab_touch(s->arena, block_of(s, h), bytes);
		if (err)
			return err;
		memmove(block_of(s, h), elems, bytes);
		h->len = n;
		return 0;
	}
	err = list_realloc(s, &nw, n, 0);
	if (!err && (err = wr_slab_touch(s->arena, block_of(s, &nw), bytes)))
		wr_coll_free(s, &nw);
	if (err)
		return err;
	memcpy(block_of(s, &nw), elems, bytes); /* before the old is freed */
	wr_coll_free(s, h);
	*h = nw;
	h->len = n;
	return 0;
}

static int list_replace_op(struct wr_kstate *s, int64_t now_ms, void *args)
{
	struct list_args *a = args;
	uint8_t *v;
	bool fresh;
	int err = wr_entry_write(s, a->key, a->hash, now_ms, &v, &fresh);

	if (err)
		return err;
	err = list_fill(s, coll_of(s, v), a->elems, a->n);
	if (err) {
		if (coll_of(s, v)->len == 0)
			wr_entry_drop(s, a->key, a->hash, v);
		return err;
	}
	wr_entry_stamp(s, v, now_ms);
	return 0;
}

int wr_kstate_list_replace(struct wr_kstate *s, const void *key,
			   uint64_t hash, int64_t now_ms, const void *elems,
			   uint32_t n)
{
	struct list_args a = { key, hash, elems, n };
	int err = wr_kstate_check_kind(s, WEIR_STATE_LIST);

	if (err)
		return err;
	if (n == 0)
		return wr_kstate_clear(s, key, hash);
	if (!elems)
		return wr_error(-EINVAL, "list state '%s': %u elements from "
				"NULL", s->name, n);
	return wr_kstate_run(s, now_ms, list_replace_op, &a);
}

/* The key's live list for a read, or NULL. */
static const struct wr_coll_hdr *list_read(struct wr_kstate *s,
					   const void *key, uint64_t hash,
					   int64_t now_ms)
{
	uint8_t *v = wr_entry_read(s, key, hash, now_ms);

	return v ? coll_of(s, v) : NULL;
}

int wr_kstate_list_length(struct wr_kstate *s, const void *key,
			  uint64_t hash, int64_t now_ms, uint32_t *len)
{
	const struct wr_coll_hdr *h;
	int err = wr_kstate_check_kind(s, WEIR_STATE_LIST);

	if (err)
		return err;
	h = list_read(s, key, hash, now_ms);
	*len = h ? h->len : 0;
	return 0;
}

int wr_kstate_list_get(struct wr_kstate *s, const void *key, uint64_t hash,
		       int64_t now_ms, uint32_t i, void *out)
{
	const struct wr_coll_hdr *h;
	int err = wr_kstate_check_kind(s, WEIR_STATE_LIST);

	if (err)
		return err;
	h = list_read(s, key, hash, now_ms);
	if (!h || i >= h->len)
		return -ENOENT;
	memcpy(out, block_of(s, h) + (size_t)i * s->elem, s->elem);
	return 0;
}

int wr_kstate_list_view(struct wr_kstate *s, const void *key, uint64_t hash,
			int64_t now_ms, const void **elems, uint32_t *n)
{
	const struct wr_coll_hdr *h;
	int err = wr_kstate_check_kind(s, WEIR_STATE_LIST);

	if (err)
		return err;
	h = list_read(s, key, hash, now_ms);
	*elems = h ? block_of(s, h) : NULL;
	*n = h ? h->len : 0;
	return 0;
}

/* ---- MAP ---- */

static inline uint64_t mtag(const struct wr_kstate *s, const void *mkey)
{
	return wr_table_hash(mkey, s->d.map_key_size) | 1; /* 0 = empty */
}

static inline uint8_t *mslot(const struct wr_kstate *s, uint8_t *base,
			     uint32_t i)
{
	return base + (size_t)i * s->elem;
}

static inline uint64_t tag_at(const uint8_t *slot)
{
	uint64_t t;

	memcpy(&t, slot, sizeof(t));
	return t;
}

static inline uint32_t mhome(uint64_t tag, uint32_t cap)
{
	return (uint32_t)(tag >> 32) & (cap - 1);
}

/* The slot of mkey in the key's map, or -1. */
static int64_t map_find(const struct wr_kstate *s, const struct wr_coll_hdr *h,
			const void *mkey, uint64_t tag)
{
	uint32_t mask = h->cap - 1, i;
	uint8_t *base = block_of(s, h);

	if (!h->cap)
		return -1;
	i = mhome(tag, h->cap);
	for (uint32_t n = 0; n < h->cap; n++, i = (i + 1) & mask) {
		uint8_t *p = mslot(s, base, i);
		uint64_t t = tag_at(p);
		if (t == 0)
			return -1;
		if (t == tag && !memcmp(p + 8, mkey, s->d.map_key_size))
			return i;
	}
	return -1;
}

/* The first empty slot from tag's home (one exists: load <= 3/4). */
static uint8_t *map_free_slot(const struct wr_kstate *s, uint8_t *base,
			      uint32_t cap, uint64_t tag)
{
	uint32_t i = mhome(tag, cap);

	while (tag_at(mslot(s, base, i)) != 0)
		i = (i + 1) & (cap - 1);
	return mslot(s, base, i);
}

/* Doubles the key's map into a new block, rehashing by the stored tags. */
static int map_grow(struct wr_kstate *s, struct wr_coll_hdr *h)
{
	uint32_t cap = h->cap ? h->cap * 2 : MAP_FIRST_CAP, count = h->len;
	uint8_t *base, *old = h->cap ? block_of(s, h) : NULL;
	uint64_t ref;
	int err;

	if (h->cap >= (1u << 30))
		return wr_error(-EOVERFLOW, "map state '%s': a key's map holds "
				"%u entries", s->name, h->len);
	err = wr_slab_alloc(&s->slab, (uint64_t)cap * s->elem, &ref);
	if (err)
		return err;
	base = wr_slab_ptr(s->arena, ref);
	err = wr_slab_touch(s->arena, base, (size_t)cap * s->elem);
	if (err) {
		wr_slab_free(&s->slab, ref, (uint64_t)cap * s->elem);
		return err;
	}
	for (uint32_t i = 0; i < cap; i++)
		memset(mslot(s, base, i), 0, 8);
	for (uint32_t i = 0; i < h->cap; i++) {
		uint8_t *p = mslot(s, old, i);
		if (tag_at(p))
			memcpy(map_free_slot(s, base, cap, tag_at(p)), p,
			       s->elem);
	}
	wr_coll_free(s, h);
	*h = (struct wr_coll_hdr){ .len = count, .cap = cap, .ref = ref };
	return 0;
}

/* Writes a new slot for mkey (known absent), value zeroed. */
static int map_place(struct wr_kstate *s, struct wr_coll_hdr *h,
		     const void *mkey, uint64_t tag, uint8_t **slot)
{
	uint8_t *p = map_free_slot(s, block_of(s, h), h->cap, tag);
	int err = wr_slab_touch(s->arena, p, s->elem);

	if (err)
		return err;
	memset(p, 0, s->elem);
	memcpy(p, &tag, sizeof(tag));
	memcpy(p + 8, mkey, s->d.map_key_size);
	h->len++;
	*slot = p;
	return 0;
}

struct map_args {
	const void *key;
	uint64_t hash;
	const void *mkey;
	const void *in;	/* put: the value */
	void **value;	/* upsert: out */
	bool *created;
};

/* The slot for mkey in the key's map, created if absent (*created). */
static int map_slot_for_write(struct wr_kstate *s, struct wr_coll_hdr *h,
			      const void *mkey, uint8_t **slot, bool *created)
{
	uint64_t tag = mtag(s, mkey);
	int64_t i = map_find(s, h, mkey, tag);
	int err;

	*created = i < 0;
	if (i >= 0) {
		*slot = mslot(s, block_of(s, h), (uint32_t)i);
		return wr_slab_touch(s->arena, *slot + s->mval_off,
				     s->d.value_size);
	}
	if ((uint64_t)(h->len + 1) * 4 > (uint64_t)h->cap * 3 &&
	    (err = map_grow(s, h)) != 0)
		return err;
	return map_place(s, h, mkey, tag, slot);
}

static int map_upsert_op(struct wr_kstate *s, int64_t now_ms, void *args)
{
	struct map_args *a = args;
	uint8_t *v = NULL, *p = NULL;
	bool fresh, created = false;
	int err = wr_entry_write(s, a->key, a->hash, now_ms, &v, &fresh);

	if (!err)
		err = map_slot_for_write(s, coll_of(s, v), a->mkey, &p,
					 &created);
	if (err) {
		if (v && coll_of(s, v)->len == 0)
			wr_entry_drop(s, a->key, a->hash, v);
		return err;
	}
	if (a->in)
		memcpy(p + s->mval_off, a->in, s->d.value_size);
	if (a->value)
		*a->value = p + s->mval_off;
	if (a->created)
		*a->created = created;
	wr_entry_stamp(s, v, now_ms);
	return 0;
}

int wr_kstate_map_put(struct wr_kstate *s, const void *key, uint64_t hash,
		      int64_t now_ms, const void *mkey, const void *value)
{
	struct map_args a = { key, hash, mkey, value, NULL, NULL };
	int err = wr_kstate_check_kind(s, WEIR_STATE_MAP);

	return err ? err : wr_kstate_run(s, now_ms, map_upsert_op, &a);
}

int wr_kstate_map_upsert(struct wr_kstate *s, const void *key, uint64_t hash,
			 int64_t now_ms, const void *mkey, void **value,
			 bool *created)
{
	struct map_args a = { key, hash, mkey, NULL, value, created };
	int err = wr_kstate_check_kind(s, WEIR_STATE_MAP);

	return err ? err : wr_kstate_run(s, now_ms, map_upsert_op, &a);
}

/* Touches [from, to) of the map's slots, cyclically. */
static int map_touch_span(struct wr_kstate *s, const struct wr_coll_hdr *h,
			  uint32_t from, uint32_t to)
{
	uint8_t *base = block_of(s, h);
	int err;

	if (from < to)
		return wr_slab_touch(s->arena, mslot(s, base, from),
				     (size_t)(to - from) * s->elem);
	err = wr_slab_touch(s->arena, mslot(s, base, from),
			    (size_t)(h->cap - from) * s->elem);
	return err ? err : wr_slab_touch(s->arena, base, (size_t)to * s->elem);
}

/* Empties slot i, shifting the rest of its cluster back (no tombstones);
 * the whole cluster is touched before anything moves. */
static int map_delete(struct wr_kstate *s, struct wr_coll_hdr *h, uint32_t i)
{
	uint32_t mask = h->cap - 1, end = i, hole = i;
	uint8_t *base = block_of(s, h);
	int err;

	do
		end = (end + 1) & mask;
	while (tag_at(mslot(s, base, end)) != 0);
	err = map_touch_span(s, h, i, end);
	if (err)
		return err;
	for (uint32_t j = (i + 1) & mask; j != end; j = (j + 1) & mask) {
		uint32_t k = mhome(tag_at(mslot(s, base, j)), h->cap);
		/* j may fill the hole unless its home lies in (hole, j]. */
		if (((j - k) & mask) >= ((j - hole) & mask)) {
			memcpy(mslot(s, base, hole), mslot(s, base, j), s->elem);
			hole = j;
		}
	}
	memset(mslot(s, base, hole), 0, 8);
	h->len--;
	return 0;
}

static int map_remove_op(struct wr_kstate *s, int64_t now_ms, void *args)
{
	struct map_args *a = args;
	struct wr_coll_hdr *h;
	uint8_t *v;
	int64_t i;
	int err = wr_entry_write_existing(s, a->key, a->hash, now_ms, &v);

	if (err)
		return err;
	h = coll_of(s, v);
	i = map_find(s, h, a->mkey, mtag(s, a->mkey));
	if (i < 0)
		return -ENOENT;
	err = map_delete(s, h, (uint32_t)i);
	if (err)
		return err;
	if (h->len == 0)
		wr_entry_drop(s, a->key, a->hash, v);
	else
		wr_entry_stamp(s, v, now_ms);
	return 0;
}

int wr_kstate_map_remove(struct wr_kstate *s, const void *key, uint64_t hash,
			 int64_t now_ms, const void *mkey)
{
	struct map_args a = { key, hash, mkey, NULL, NULL, NULL };
	int err = wr_kstate_check_kind(s, WEIR_STATE_MAP);

	return err ? err : wr_kstate_run(s, now_ms, map_remove_op, &a);
}

/* The key's live map for a read, or NULL (also for a wrong kind: *err). */
static const struct wr_coll_hdr *map_read(struct wr_kstate *s,
					  const void *key, uint64_t hash,
					  int64_t now_ms, int *err)
{
	uint8_t *v;

	*err = wr_kstate_check_kind(s, WEIR_STATE_MAP);
	if (*err)
		return NULL;
	v = wr_entry_read(s, key, hash, now_ms);
	return v ? coll_of(s, v) : NULL;
}

int wr_kstate_map_get(struct wr_kstate *s, const void *key, uint64_t hash,
		      int64_t now_ms, const void *mkey, const void **value)
{
	int err;
	const struct wr_coll_hdr *h = map_read(s, key, hash, now_ms, &err);
	int64_t i;

	if (!h)
		return err ? err : -ENOENT;
	i = map_find(s, h, mkey, mtag(s, mkey));
	if (i < 0)
		return -ENOENT;
	*value = mslot(s, block_of(s, h), (uint32_t)i) + s->mval_off;
	return 0;
}

int wr_kstate_map_size(struct wr_kstate *s, const void *key, uint64_t hash,
		       int64_t now_ms, uint32_t *n)
{
	int err;
	const struct wr_coll_hdr *h = map_read(s, key, hash, now_ms, &err);

	*n = h ? h->len : 0;
	return err;
}

int wr_kstate_map_next(struct wr_kstate *s, const void *key, uint64_t hash,
		       int64_t now_ms, struct wr_kstate_map_iter *it,
		       const void **mkey, const void **value)
{
	int err;
	const struct wr_coll_hdr *h = map_read(s, key, hash, now_ms, &err);

	if (!h)
		return err ? err : -ENOENT;
	for (; it->pos < h->cap; it->pos++) {
		uint8_t *p = mslot(s, block_of(s, h), (uint32_t)it->pos);
		if (tag_at(p)) {
			*mkey = p + 8;
			*value = p + s->mval_off;
			it->pos++;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- validation ---- */

static bool map_is_valid(const struct wr_kstate *s,
			 const struct wr_coll_hdr *h)
{
	uint8_t *base = block_of(s, h);
	uint32_t n = 0;

	if (h->cap & (h->cap - 1) || (uint64_t)h->len * 4 > (uint64_t)h->cap * 3)
		return false;
	for (uint32_t i = 0; i < h->cap; i++) {
		uint8_t *p = mslot(s, base, i);
		if (!tag_at(p))
			continue;
		n++;
		if (tag_at(p) != mtag(s, p + 8) ||
		    map_find(s, h, p + 8, tag_at(p)) != (int64_t)i)
			return false;
	}
	return n == h->len;
}

bool wr_coll_is_valid(const struct wr_kstate *s, const void *payload,
		      uint64_t *bytes)
{
	const struct wr_coll_hdr *h = payload;
	uint64_t size = (uint64_t)h->cap * s->elem;

	if (h->len == 0 || h->cap == 0 ||
	    !wr_slab_block_is_valid(&s->slab, h->ref, size))
		return false;
	*bytes += wr_slab_block_size(&s->slab, size);
	if (s->d.kind == WEIR_STATE_LIST)
		return h->len <= h->cap;
	return map_is_valid(s, h);
}
