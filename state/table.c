/*
 * state/table.c — linear-probing table in arena pages, incremental resize.
 *
 * Resize lifecycle (one at a time):
 *
 *     IDLE --insert past 3/4 load: start_resize()--> PREPARING
 *     PREPARING --next array zeroed: step()--> MIGRATING
 *     MIGRATING --old array moved: step()--> IDLE
 *
 * PREPARING zeroes the new array 8 * budget slots per call (a reused page
 * run holds old bytes, and memset of a 512 MiB array is a ~50 ms stall), while
 * inserts still go to the current array.  MIGRATING sends inserts to the new
 * array and moves `budget` old slots per call.  Bounds, for capacity C_old ->
 * C_new with C_new >= max(8/3 count, C_old / 2): preparing takes C_new / 128
 * calls and at most that many inserts, below the 1/8 C_old left before the
 * 7/8 hard limit; migrating takes C_old / 16 calls, so the new array ends
 * at most 3/8 + 1/128 + 1/8 full, far from 3/4.  A migration finished in one
 * call (forced_finishes) is thus a bug, kept as a safety net only.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "state/slab.h"
#include "state/table.h"

#define META_EMPTY 0u
#define META_TOMB 1u
#define NO_SLOT UINT64_MAX
#define CAPACITY_MAX (1ull << 31)
#define ZERO_FACTOR 8u

enum phase { IDLE, PREPARING, MIGRATING };

struct slots {
	uint8_t *base;
	uint64_t cap;		/* power of two */
	uint64_t mask;
	uint64_t used;		/* full slots (old array: not yet moved) */
	uint64_t tomb;
	uint32_t first_page;	/* the page base is in */
	uint32_t npages;	/* a page run's pages; 1 for a slab block */
	uint32_t page_off;	/* of base in first_page: 0 for a page run */
	bool in_slab;
};

struct wr_table {
	struct wr_arena *arena;
	struct wr_slab *slab;	/* small slot arrays, or NULL */
	uint32_t key_size;
	uint32_t value_size;
	uint32_t slot_size;
	uint32_t key_off;	/* slot = [u64 meta][value][key], value at 8 */
	uint64_t initial_cap;
	enum phase phase;
	struct slots cur;	/* inserts go here */
	struct slots old;	/* MIGRATING: the array being moved out */
	struct slots next;	/* PREPARING: the array being zeroed */
	uint64_t cursor;	/* PREPARING: slots zeroed; MIGRATING: moved */
	uint64_t count;
	uint64_t resizes;
	uint64_t slots_moved;
	uint64_t forced_finishes;
};

static inline uint64_t meta_of(uint64_t hash)
{
	return hash < 2 ? hash + 2 : hash;
}

static inline uint64_t home_of(const struct slots *a, uint64_t meta)
{
	return (meta >> 32) & a->mask;
}

static inline uint8_t *slot_at(const struct wr_table *t, const struct slots *a,
			       uint64_t i)
{
	return a->base + i * t->slot_size;
}

static inline uint64_t meta_get(const uint8_t *s)
{
	uint64_t m;

	memcpy(&m, s, sizeof(m));
	return m;
}

static inline void meta_set(uint8_t *s, uint64_t m)
{
	memcpy(s, &m, sizeof(m));
}

/* Write barrier for slot i (its page, or both if it straddles two; the
 * changelog notes the slot's bytes). */
static inline int slot_touch(struct wr_table *t, const struct slots *a,
			     uint64_t i)
{
	return wr_arena_touch_range(t->arena, slot_at(t, a, i), t->slot_size);
}

/* The same for an update of slot i's value alone (a hit: meta and key
 * stay): the changelog notes value_size bytes, not the slot (16 instead
 * of 40 bytes per update of an 8-byte counter, 12 when the seal pairs it
 * with the next: arena.h, PAIR). */
static inline int value_touch(struct wr_table *t, const struct slots *a,
			      uint64_t i)
{
	return wr_arena_touch_range(t->arena, slot_at(t, a, i) + 8,
				    t->value_size);
}

/*
 * The slot holding key in a, skipping slots below skip (moved already), or
 * NO_SLOT; *free_pos gets the first tombstone or empty slot on the path.
 * Ends at an empty slot: invariant 2 guarantees one.
 */
static uint64_t probe(const struct wr_table *t, const struct slots *a,
		      const void *key, uint64_t meta, uint64_t skip,
		      uint64_t *free_pos)
{
	uint64_t i = home_of(a, meta), first_free = NO_SLOT;

	for (uint64_t n = 0; n < a->cap; n++, i = (i + 1) & a->mask) {
		const uint8_t *s = slot_at(t, a, i);
		uint64_t m = meta_get(s);

		if (m == META_EMPTY) {
			if (first_free == NO_SLOT)
				first_free = i;
			break;
		}
		if (m == META_TOMB) {
			if (first_free == NO_SLOT)
				first_free = i;
		} else if (m == meta && i >= skip &&
			   wr_key_eq(s + t->key_off, key, t->key_size)) {
			return i;
		}
	}
	if (free_pos)
		*free_pos = first_free;
	return NO_SLOT;
}

/* First empty or tombstone slot from the home of meta (key known absent). */
static uint64_t free_slot(const struct wr_table *t, const struct slots *a,
			  uint64_t meta)
{
	uint64_t i = home_of(a, meta);

	while (meta_get(slot_at(t, a, i)) >= 2)
		i = (i + 1) & a->mask;
	return i;
}

static uint32_t slot_size_for(uint32_t key_size, uint32_t value_size)
{
	uint32_t raw = 8 + ((value_size + 7) & ~7u) + key_size, s = 16;

	if (raw > 64)
		return (raw + 7) & ~7u;
	while (s < raw)
		s <<= 1;
	return s;
}

static uint64_t cap_for(const struct wr_table *t, uint64_t want)
{
	uint64_t c = t->slab ? WR_TABLE_SMALL_MIN_CAPACITY
			     : WR_TABLE_MIN_CAPACITY;

	while (c < want && c < CAPACITY_MAX)
		c <<= 1;
	return c;
}

static bool small(const struct wr_table *t, uint64_t bytes)
{
	return t->slab != NULL && bytes <= t->arena->page_size / 4;
}

/* A slab block of a's bytes: never zeroed. */
static int slots_alloc_small(struct wr_table *t, uint64_t cap,
			     struct slots *a, bool *zeroed)
{
	uint64_t ref;
	int err = wr_slab_alloc(t->slab, cap * t->slot_size, &ref);

	if (err)
		return err;
	*a = (struct slots){ .base = wr_slab_ptr(t->arena, ref), .cap = cap,
		.mask = cap - 1, .first_page = (uint32_t)(ref >>
							  t->arena->page_shift),
		.npages = 1, .page_off = (uint32_t)(ref & (t->arena->page_size - 1)),
		.in_slab = true };
	*zeroed = false;
	return 0;
}

static int slots_alloc(struct wr_table *t, uint64_t cap, struct slots *a,
		       bool *zeroed)
{
	uint64_t bytes = cap * t->slot_size;
	uint64_t npages = (bytes + t->arena->page_size - 1) >> t->arena->page_shift;
	int err;

	if (small(t, bytes))
		return slots_alloc_small(t, cap, a, zeroed);
	if (npages >= WR_ARENA_NO_PAGE)
		return wr_error(-ENOMEM, "table of %llu slots exceeds the arena",
				(unsigned long long)cap);
	err = wr_arena_alloc(t->arena, (uint32_t)npages, &a->first_page, zeroed);
	if (err)
		return err;
	a->npages = (uint32_t)npages;
	a->base = wr_arena_page_ptr(t->arena, a->first_page);
	a->cap = cap;
	a->mask = cap - 1;
	a->used = 0;
	a->tomb = 0;
	a->page_off = 0;
	a->in_slab = false;
	return 0;
}

static void slots_free(struct wr_table *t, struct slots *a)
{
	if (a->base && a->in_slab)
		wr_slab_free(t->slab, (uint64_t)(a->base - t->arena->base),
			     a->cap * t->slot_size);
	else if (a->base)
		wr_arena_free(t->arena, a->first_page, a->npages);
	memset(a, 0, sizeof(*a));
}

/* Zeroes slots [from, to) of a, touching their pages first. */
static int slots_zero(struct wr_table *t, struct slots *a, uint64_t from,
		      uint64_t to)
{
	uint32_t shift = t->arena->page_shift;
	uint64_t off = a->page_off + from * t->slot_size;
	uint64_t end = a->page_off + to * t->slot_size;
	uint8_t *page0 = a->base - a->page_off;

	for (uint64_t p = off >> shift; off < end; p++) {
		uint64_t lim = (p + 1) << shift;
		if (lim > end)
			lim = end;
		int err = wr_arena_touch_zero(t->arena, page0 + off, lim - off);
		if (err)
			return err;
		memset(page0 + off, 0, lim - off);
		off = lim;
	}
	return 0;
}

static int check_config(const struct wr_table_config *cfg)
{
	if (cfg->key_size == 0 || cfg->key_size > WR_TABLE_KEY_SIZE_MAX)
		return wr_error(-EINVAL, "key size %u exceeds %u", cfg->key_size,
				WR_TABLE_KEY_SIZE_MAX);
	if (cfg->value_size == 0 || cfg->value_size > WR_TABLE_VALUE_SIZE_MAX)
		return wr_error(-EINVAL, "value size %u exceeds %u",
				cfg->value_size, WR_TABLE_VALUE_SIZE_MAX);
	if (cfg->initial_capacity > CAPACITY_MAX)
		return wr_error(-EINVAL, "initial capacity %llu exceeds %llu",
				(unsigned long long)cfg->initial_capacity,
				CAPACITY_MAX);
	return 0;
}

int wr_table_create(struct wr_arena *arena, const struct wr_table_config *cfg,
		    struct wr_table **out)
{
	struct wr_table *t;
	bool zeroed;
	int err = check_config(cfg);

	if (err)
		return err;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->arena = arena;
	t->slab = cfg->slab;
	t->key_size = cfg->key_size;
	t->value_size = cfg->value_size;
	t->slot_size = slot_size_for(cfg->key_size, cfg->value_size);
	t->key_off = 8 + ((cfg->value_size + 7) & ~7u);
	t->initial_cap = cap_for(t, cfg->initial_capacity);
	err = slots_alloc(t, t->initial_cap, &t->cur, &zeroed);
	if (err)
		goto fail_alloc;
	if (!zeroed) {
		err = slots_zero(t, &t->cur, 0, t->cur.cap);
		if (err)
			goto fail_zero;
	}
	*out = t;
	return 0;

fail_zero:
	slots_free(t, &t->cur);
fail_alloc:
	free(t);
	return err;
}

void wr_table_destroy(struct wr_table *t)
{
	if (!t)
		return;
	slots_free(t, &t->cur);
	slots_free(t, &t->old);
	slots_free(t, &t->next);
	free(t);
}

static uint64_t prepare_step(struct wr_table *t, uint64_t n);

/* IDLE -> PREPARING: allocate the next array, sized for 3/8 load. */
static int start_resize(struct wr_table *t)
{
	uint64_t want = t->count * 8 / 3;
	bool zeroed;
	int err;

	if (want < t->cur.cap / 2)
		want = t->cur.cap / 2;
	err = slots_alloc(t, cap_for(t, want), &t->next, &zeroed);
	if (err)
		return err;
	t->phase = PREPARING;
	t->cursor = zeroed ? t->next.cap : 0;
	t->resizes++;
	if (zeroed)
		prepare_step(t, 0); /* never-used pages: migrate at once */
	return 0;
}

/* PREPARING: zero up to n slots of next; then switch to MIGRATING. */
static uint64_t prepare_step(struct wr_table *t, uint64_t n)
{
	uint64_t to = t->cursor + n < t->next.cap ? t->cursor + n : t->next.cap;
	uint64_t done = to - t->cursor;

	if (slots_zero(t, &t->next, t->cursor, to))
		return 0; /* no page for a COW shadow: retried next call */
	t->cursor = to;
	if (t->cursor == t->next.cap) {
		t->old = t->cur;
		t->cur = t->next;
		memset(&t->next, 0, sizeof(t->next));
		t->cursor = 0;
		t->phase = MIGRATING;
	}
	return done;
}

/* Moves old slot i (if full) into cur.  The key is known absent from cur. */
static int move_slot(struct wr_table *t, uint64_t i)
{
	const uint8_t *s = slot_at(t, &t->old, i);
	uint64_t m = meta_get(s), j;
	uint8_t *d;
	int err;

	if (m < 2)
		return 0;
	j = free_slot(t, &t->cur, m);
	err = slot_touch(t, &t->cur, j);
	if (err)
		return err;
	d = slot_at(t, &t->cur, j);
	if (meta_get(d) == META_TOMB)
		t->cur.tomb--;
	memcpy(d, s, t->slot_size);
	t->cur.used++;
	t->old.used--;
	t->slots_moved++;
	return 0;
}

/* MIGRATING: move up to n old slots; then free the old array. */
static uint64_t migrate_step(struct wr_table *t, uint64_t n)
{
	uint64_t done = 0;

	while (done < n && t->cursor < t->old.cap) {
		if (move_slot(t, t->cursor))
			break; /* no page for a COW shadow: retried later */
		t->cursor++;
		done++;
	}
	if (t->cursor == t->old.cap) {
		slots_free(t, &t->old);
		t->cursor = 0;
		t->phase = IDLE;
	}
	return done;
}

uint32_t wr_table_step(struct wr_table *t, uint32_t budget)
{
	if (t->phase == PREPARING)
		return (uint32_t)prepare_step(t, (uint64_t)budget * ZERO_FACTOR);
	if (t->phase == MIGRATING)
		return (uint32_t)migrate_step(t, budget);
	return 0;
}

static bool over(const struct slots *a, uint64_t num, uint64_t den)
{
	return (a->used + a->tomb + 1) * den > a->cap * num;
}

/*
 * Before inserting into cur: start a resize past 3/4 load, finish the one in
 * progress past 7/8 (never expected, see the top of the file).  1 if slots
 * of cur changed, so a remembered free slot is stale; or -errno.
 */
static int make_room(struct wr_table *t)
{
	const uint8_t *base = t->cur.base;
	uint64_t moved = t->slots_moved;

	for (int round = 0; round < 3 && t->phase != IDLE &&
			    over(&t->cur, 7, 8); round++) {
		enum phase was = t->phase;

		t->forced_finishes++;
		if (was == PREPARING)
			prepare_step(t, t->next.cap);
		else
			migrate_step(t, t->old.cap);
		if (t->phase == was)
			return wr_error(-ENOMEM, "table resize stalled: arena "
					"cap of %zu bytes reached",
					t->arena->cap_bytes);
		if (t->phase == IDLE && over(&t->cur, 3, 4)) {
			int err = start_resize(t);
			if (err)
				return err;
		}
	}
	if (t->phase == IDLE && over(&t->cur, 3, 4)) {
		int err = start_resize(t);
		if (err)
			return err;
	}
	return t->cur.base != base || t->slots_moved != moved;
}

static int found_at(struct wr_table *t, const struct slots *a, uint64_t i,
		    void **value, bool *inserted)
{
	int err = value_touch(t, a, i);

	if (err)
		return err;
	*value = slot_at(t, a, i) + 8;
	*inserted = false;
	return 0;
}

static int insert_new(struct wr_table *t, const void *key, uint64_t meta,
		      uint64_t free_pos, void **value)
{
	uint8_t *s;
	int err = make_room(t);

	if (err < 0)
		return err;
	if (err > 0 || free_pos == NO_SLOT)
		free_pos = free_slot(t, &t->cur, meta);
	err = slot_touch(t, &t->cur, free_pos);
	if (err)
		return err;
	s = slot_at(t, &t->cur, free_pos);
	if (meta_get(s) == META_TOMB)
		t->cur.tomb--;
	meta_set(s, meta);
	memcpy(s + t->key_off, key, t->key_size);
	memset(s + 8, 0, t->value_size);
	t->cur.used++;
	t->count++;
	*value = s + 8;
	return 0;
}

/* Lookup-or-insert without a migration step (callers step first). */
/*
 * The common update: the key sits in its home slot of cur (about two
 * thirds of hits at load 0.5).  Inlined into the callers so a hit costs no
 * call and no register spills; anything else goes to upsert_one.  A hit in
 * cur is authoritative even while migrating (cur is probed first there).
 */
static inline bool home_hit(struct wr_table *t, const void *key, uint64_t hash,
			    void **value)
{
	uint64_t meta = meta_of(hash), i = home_of(&t->cur, meta);
	uint8_t *s = slot_at(t, &t->cur, i);

	if (meta_get(s) != meta || !wr_key_eq(s + t->key_off, key, t->key_size) ||
	    value_touch(t, &t->cur, i) != 0)
		return false;
	*value = s + 8;
	return true;
}

static int upsert_one(struct wr_table *t, const void *key, uint64_t hash,
		      void **value, bool *inserted)
{
	uint64_t meta = meta_of(hash), free_pos = NO_SLOT, i;
	int err;

	i = probe(t, &t->cur, key, meta, 0, &free_pos);
	if (i != NO_SLOT)
		return found_at(t, &t->cur, i, value, inserted);
	if (t->phase == MIGRATING) {
		i = probe(t, &t->old, key, meta, t->cursor, NULL);
		if (i != NO_SLOT)
			return found_at(t, &t->old, i, value, inserted);
	}
	err = insert_new(t, key, meta, free_pos, value);
	if (!err)
		*inserted = true;
	return err;
}

int wr_table_upsert(struct wr_table *t, const void *key, uint64_t hash,
		    void **value, bool *inserted)
{
	bool ins;

	if (t->phase != IDLE)
		wr_table_step(t, WR_TABLE_STEP_SLOTS);
	if (home_hit(t, key, hash, value)) {
		if (inserted)
			*inserted = false;
		return 0;
	}
	return upsert_one(t, key, hash, value, inserted ? inserted : &ins);
}

void wr_table_prefetch(const struct wr_table *t, uint64_t hash)
{
	uint64_t meta = meta_of(hash);

	wr_prefetch_write(slot_at(t, &t->cur, home_of(&t->cur, meta)));
	if (t->phase == MIGRATING)
		wr_prefetch_write(slot_at(t, &t->old, home_of(&t->old, meta)));
}

void wr_table_prefetch_batch(const struct wr_table *t, const uint64_t *hashes,
			     uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		wr_table_prefetch(t, hashes[i]);
}

int wr_table_upsert_batch(struct wr_table *t, const void *keys,
			  const uint64_t *hashes, uint32_t n, void **values)
{
	/* All n misses in flight at once: ~1 DRAM latency per batch. */
	if (n <= WR_TABLE_BATCH_MAX)
		wr_table_prefetch_batch(t, hashes, n);
	return wr_table_upsert_prefetched(t, keys, hashes, n, values);
}

int wr_table_upsert_prefetched(struct wr_table *t, const void *keys,
			       const uint64_t *hashes, uint32_t n,
			       void **values)
{
	const uint8_t *k = keys;
	uint64_t forced = t->forced_finishes;
	uint32_t i;
	bool ins;
	int err = 0;

	if (n > WR_TABLE_BATCH_MAX)
		return wr_error(-EINVAL, "batch of %u keys exceeds %u", n,
				WR_TABLE_BATCH_MAX);
	if (t->phase != IDLE)
		wr_table_step(t, n * WR_TABLE_STEP_SLOTS);
	for (i = 0; i < n && !err; i++) {
		const uint8_t *key = k + (size_t)i * t->key_size;
		if (!home_hit(t, key, hashes[i], &values[i]))
			err = upsert_one(t, key, hashes[i], &values[i], &ins);
	}
	if (err)
		for (i--; i < n; i++)
			values[i] = NULL;
	/* A forced finish moved keys: re-resolve the earlier pointers. */
	for (i = 0; t->forced_finishes != forced && i < n && values[i]; i++)
		upsert_one(t, k + (size_t)i * t->key_size, hashes[i],
			   &values[i], &ins);
	return err;
}

const void *wr_table_get(const struct wr_table *t, const void *key,
			 uint64_t hash)
{
	uint64_t meta = meta_of(hash), i;

	i = probe(t, &t->cur, key, meta, 0, NULL);
	if (i != NO_SLOT)
		return slot_at(t, &t->cur, i) + 8;
	if (t->phase == MIGRATING) {
		i = probe(t, &t->old, key, meta, t->cursor, NULL);
		if (i != NO_SLOT)
			return slot_at(t, &t->old, i) + 8;
	}
	return NULL;
}

/* Empties slot i of a: a tombstone, or empty (with the tombstones before
 * it) when the next slot is empty, since no probe path then crosses it. */
static int clear_slot(struct wr_table *t, struct slots *a, uint64_t i)
{
	int err;

	if (meta_get(slot_at(t, a, (i + 1) & a->mask)) != META_EMPTY) {
		meta_set(slot_at(t, a, i), META_TOMB);
		a->tomb++;
		return 0;
	}
	meta_set(slot_at(t, a, i), META_EMPTY);
	for (uint64_t n = 1; n < a->cap; n++) {
		i = (i - 1) & a->mask;
		if (meta_get(slot_at(t, a, i)) != META_TOMB)
			break;
		err = slot_touch(t, a, i);
		if (err)
			return 0; /* a tombstone left behind is still valid */
		meta_set(slot_at(t, a, i), META_EMPTY);
		a->tomb--;
	}
	return 0;
}

int wr_table_remove(struct wr_table *t, const void *key, uint64_t hash)
{
	uint64_t meta = meta_of(hash), i;
	struct slots *a = &t->cur;
	int err;

	if (t->phase != IDLE)
		wr_table_step(t, WR_TABLE_STEP_SLOTS);
	i = probe(t, a, key, meta, 0, NULL);
	if (i == NO_SLOT && t->phase == MIGRATING) {
		a = &t->old;
		i = probe(t, a, key, meta, t->cursor, NULL);
	}
	if (i == NO_SLOT)
		return -ENOENT;
	err = slot_touch(t, a, i);
	if (err)
		return err;
	clear_slot(t, a, i);
	a->used--;
	t->count--;
	return 0;
}

int wr_table_clear(struct wr_table *t)
{
	bool zeroed;
	int err;

	slots_free(t, &t->cur);
	slots_free(t, &t->old);
	slots_free(t, &t->next);
	t->phase = IDLE;
	t->cursor = 0;
	t->count = 0;
	err = slots_alloc(t, t->initial_cap, &t->cur, &zeroed);
	if (!err && !zeroed)
		err = slots_zero(t, &t->cur, 0, t->cur.cap);
	if (err)
		slots_free(t, &t->cur);
	return err;
}

bool wr_table_clear_step(struct wr_table *t, uint64_t *pos, uint64_t budget)
{
	uint64_t to;

	if (t->phase != IDLE) {
		slots_free(t, &t->old);
		slots_free(t, &t->next);
		t->phase = IDLE;
		t->cursor = 0;
		*pos = 0;
	}
	to = *pos + budget < t->cur.cap ? *pos + budget : t->cur.cap;
	if (slots_zero(t, &t->cur, *pos, to))
		return false;
	*pos = to;
	if (to < t->cur.cap)
		return false;
	t->count = 0;
	t->cur.used = t->cur.tomb = 0;
	*pos = 0;
	return true;
}

uint64_t wr_table_capacity(const struct wr_table *t)
{
	return t->cur.cap;
}

uint64_t wr_table_count(const struct wr_table *t)
{
	return t->count;
}

bool wr_table_next(struct wr_table *t, struct wr_table_iter *it,
		   const void **key, void **value)
{
	uint64_t old_span = t->phase == MIGRATING ? t->old.cap : 0;

	if (it->pos < t->cursor && old_span)
		it->pos = t->cursor;
	for (; it->pos < old_span + t->cur.cap; it->pos++) {
		bool in_old = it->pos < old_span;
		const struct slots *a = in_old ? &t->old : &t->cur;
		uint8_t *s = slot_at(t, a, in_old ? it->pos : it->pos - old_span);

		if (meta_get(s) >= 2) {
			*key = s + t->key_off;
			*value = s + 8;
			it->pos++;
			return true;
		}
	}
	return false;
}

uint64_t wr_table_value_hash(const struct wr_table *t, const void *value)
{
	const uint8_t *s = (const uint8_t *)value - 8;
	uint64_t m = meta_get(s);

	return m >= 4 ? m : wr_table_hash(s + t->key_off, t->key_size);
}

void wr_table_get_stats(const struct wr_table *t, struct wr_table_stats *s)
{
	s->count = t->count;
	s->capacity = t->cur.cap;
	s->tombstones = t->cur.tomb;
	s->old_capacity = t->phase == MIGRATING ? t->old.cap : 0;
	s->migrate_pos = t->phase == MIGRATING ? t->cursor : 0;
	s->resizes = t->resizes;
	s->slots_moved = t->slots_moved;
	s->forced_finishes = t->forced_finishes;
	s->slot_size = t->slot_size;
	s->pages = t->cur.npages + t->old.npages + t->next.npages;
	s->phase = (uint32_t)t->phase;
}

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			return false;                                          \
	} while (0)

/* Every full slot at or above skip is reachable by probe from its home. */
static bool slots_are_valid(const struct wr_table *t, const struct slots *a,
			    uint64_t skip, uint64_t *live)
{
	uint64_t used = 0, tomb = 0, empty = 0;

	for (uint64_t i = 0; i < a->cap; i++) {
		const uint8_t *s = slot_at(t, a, i);
		uint64_t m = meta_get(s);

		empty += m == META_EMPTY;
		tomb += m == META_TOMB;
		if (m < 2 || i < skip)
			continue;
		used++;
		CHECK(m == meta_of(wr_table_hash(s + t->key_off, t->key_size)));
		CHECK(probe(t, a, s + t->key_off, m, skip, NULL) == i);
	}
	CHECK(tomb == a->tomb && used == a->used && empty > 0);
	*live = used;
	return true;
}

/* Invariants 1-4 of table.h; O(capacity), for tests. */
bool wr_table_is_valid(const struct wr_table *t)
{
	uint64_t live_cur = 0, live_old = 0;

	CHECK(t->cur.base && t->cur.used + t->cur.tomb < t->cur.cap);
	CHECK(slots_are_valid(t, &t->cur, 0, &live_cur));
	CHECK(t->phase == MIGRATING || !t->old.base);
	CHECK(t->phase == PREPARING || !t->next.base);
	if (t->phase == MIGRATING) {
		CHECK(t->cursor < t->old.cap);
		CHECK(slots_are_valid(t, &t->old, t->cursor, &live_old));
		/* No key in both arrays. */
		for (uint64_t i = t->cursor; i < t->old.cap; i++) {
			const uint8_t *s = slot_at(t, &t->old, i);
			uint64_t m = meta_get(s);
			CHECK(m < 2 || probe(t, &t->cur, s + t->key_off, m, 0,
					     NULL) == NO_SLOT);
		}
	}
	if (t->phase == PREPARING)
		CHECK(t->cursor < t->next.cap);
	return live_cur + live_old == t->count;
}

/* ---- checkpoint images ---- */

static void slots_save(const struct slots *a, struct wr_table_image_slots *o)
{
	*o = (struct wr_table_image_slots){ a->cap, a->used, a->tomb,
					    a->first_page, a->npages,
					    a->page_off, a->in_slab };
}

static int slots_load(const struct wr_table *t,
		      const struct wr_table_image_slots *o, struct slots *a)
{
	const struct wr_arena *ar = t->arena;
	uint64_t room = (uint64_t)o->npages * ar->page_size;

	memset(a, 0, sizeof(*a));
	if (o->npages == 0)
		return o->cap == 0 ? 0 : -EINVAL;
	/* Every product and sum below is checked before it could wrap: an
	 * image is bytes from a file, checksummed but not trusted. */
	if (o->cap == 0 || (o->cap & (o->cap - 1)) != 0 ||
	    o->first_page >= ar->pages_total ||
	    o->npages > ar->pages_total - o->first_page ||
	    o->page_off > room ||
	    o->cap > (room - o->page_off) / t->slot_size ||
	    o->used > o->cap || o->tomb > o->cap - o->used ||
	    o->in_slab > 1 ||
	    (o->in_slab && (t->slab == NULL || o->npages != 1)) ||
	    (!o->in_slab && (o->page_off != 0 ||
			     !wr_arena_pages_live(ar, o->first_page,
						  o->npages))))
		return -EINVAL;
	if (o->in_slab && !wr_slab_block_is_valid(t->slab,
			((uint64_t)o->first_page << ar->page_shift) +
			o->page_off, o->cap * t->slot_size))
		return -EINVAL;
	a->base = (uint8_t *)wr_arena_page_ptr(ar, o->first_page) + o->page_off;
	a->page_off = o->page_off;
	a->in_slab = o->in_slab != 0;
	a->cap = o->cap;
	a->mask = o->cap - 1;
	a->used = o->used;
	a->tomb = o->tomb;
	a->first_page = o->first_page;
	a->npages = o->npages;
	return 0;
}

void wr_table_save(const struct wr_table *t, struct wr_table_image *img)
{
	memset(img, 0, sizeof(*img));
	img->key_size = t->key_size;
	img->value_size = t->value_size;
	img->slot_size = t->slot_size;
	img->phase = (uint32_t)t->phase;
	img->initial_cap = t->initial_cap;
	img->cursor = t->cursor;
	img->count = t->count;
	img->resizes = t->resizes;
	img->slots_moved = t->slots_moved;
	img->forced_finishes = t->forced_finishes;
	slots_save(&t->cur, &img->cur);
	slots_save(&t->old, &img->old);
	slots_save(&t->next, &img->next);
}

static bool slots_disjoint(const struct wr_table *t, const struct slots *a,
			   const struct slots *b)
{
	if (a->base == NULL || b->base == NULL)
		return true;
	if (!a->in_slab && !b->in_slab)	/* whole pages, each freed once */
		return wr_arena_runs_disjoint(a->first_page, a->npages,
					      b->first_page, b->npages);
	return a->base + a->cap * t->slot_size <= b->base ||
	       b->base + b->cap * t->slot_size <= a->base;
}

/* A loaded image's arrays agree with its phase (the cursor inside the
 * array it walks), the current one keeps an empty slot (probes end), and
 * no two share memory (each is freed once). */
static bool image_fits(const struct wr_table *t)
{
	if (t->cur.used + t->cur.tomb >= t->cur.cap ||
	    (t->phase == MIGRATING) != (t->old.base != NULL) ||
	    (t->phase == PREPARING) != (t->next.base != NULL) ||
	    (t->phase == MIGRATING && t->cursor > t->old.cap) ||
	    (t->phase == PREPARING && t->cursor > t->next.cap))
		return false;
	return slots_disjoint(t, &t->cur, &t->old) &&
	       slots_disjoint(t, &t->cur, &t->next) &&
	       slots_disjoint(t, &t->old, &t->next);
}

int wr_table_load(struct wr_arena *arena, struct wr_slab *slab,
		  const struct wr_table_image *img, struct wr_table **out)
{
	struct wr_table_config cfg = { img->key_size, img->value_size, 0, slab };
	struct wr_table *t;
	int err = check_config(&cfg);

	if (err || img->phase > MIGRATING ||
	    img->slot_size != slot_size_for(img->key_size, img->value_size))
		return wr_error(-EINVAL, "checkpoint: bad table image");
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->arena = arena;
	t->slab = slab;
	t->key_size = img->key_size;
	t->value_size = img->value_size;
	t->slot_size = img->slot_size;
	t->key_off = 8 + ((img->value_size + 7) & ~7u);
	t->initial_cap = img->initial_cap;
	t->phase = (enum phase)img->phase;
	t->cursor = img->cursor;
	t->count = img->count;
	t->resizes = img->resizes;
	t->slots_moved = img->slots_moved;
	t->forced_finishes = img->forced_finishes;
	if (slots_load(t, &img->cur, &t->cur) || img->cur.npages == 0 ||
	    slots_load(t, &img->old, &t->old) ||
	    slots_load(t, &img->next, &t->next) || !image_fits(t)) {
		free(t);
		return wr_error(-EINVAL, "checkpoint: table image pages out "
				"of range");
	}
	*out = t;
	return 0;
}
