/*
 * tests/state/table_test.c — the open-addressing state table.
 *
 * TEST PLAN
 *   key_eq:     wr_key_eq for every size 1..64 and every differing byte
 *               (its overlapping word and vector compares), unaligned.
 *   config:     key size 0 / 65 and value size 0 / 1025 fail with -EINVAL and
 *               a message naming the size.
 *   model:      random upsert/get/remove over a small key universe against a
 *               brute-force model (present flag + value per key), odd key size,
 *               validator after every step; the run crosses several resizes
 *               and tombstone rehashes.
 *   model big:  the same with 200k operations, validator every 5000.
 *   many keys:  1M keys through the batch API: several incremental resizes,
 *               no forced finish, every key found with its value.
 *   bounded:    no call moves more than its budget: wr_table_step(t, b)
 *               moves <= b old slots (zeroes <= 8b), and an upsert moves
 *               <= WR_TABLE_STEP_SLOTS.
 *   enomem:     inserting past the arena cap fails with -ENOMEM and a
 *               message naming the cap; the table stays valid and complete.
 *   isolation:  wide values of neighbouring keys and of two tables in one
 *               arena never overwrite each other.
 *   collisions: many keys with one hash, and the reserved hashes 0 and 1.
 *   batch:      duplicate keys in one batch share one value pointer.
 *   iterate:    visits every key exactly once, also mid-migration; the
 *               value's stored hash is the key's wr_table_hash().
 *   clear:      empties the table, which stays usable.
 *   cow:        after snapshot_begin, an upsert's write leaves the snapshot
 *               page with the old value.
 *   small:      with a slab, the model runs from a 64-slot slab block through
 *               slab growth into page runs; 100 small tables of 13 keys share
 *               a few pages (not one page each), their slots are cache-line
 *               aligned, and freeing them gives every page back; an image of
 *               a small table loads back with its slab (every key, valid),
 *               and without one it is refused.
 *   images:     a made-up image (a size that wraps, no empty slot, pages
 *               not live, a phase without its array, two arrays on the
 *               same pages, a cursor past its array) is refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state/slab.h"
#include "state/table.h"

#define KS 12u

static struct wr_arena *mk_arena(size_t bytes, uint32_t page)
{
	struct wr_arena_config cfg = { bytes, page, 0 };
	struct wr_arena *a = NULL;

	cr_assert_eq(wr_arena_create(&cfg, &a), 0);
	return a;
}

/* An arena whose pages were all used and freed, so they hold garbage and
 * every table array must be zeroed (the PREPARING phase). */
static struct wr_arena *mk_dirty_arena(size_t bytes, uint32_t page)
{
	struct wr_arena *a = mk_arena(bytes, page);
	uint32_t p, n = a->pages_total;

	cr_assert_eq(wr_arena_alloc(a, n, &p, NULL), 0);
	memset(wr_arena_page_ptr(a, p), 0xee, (size_t)n * a->page_size);
	wr_arena_free(a, p, n);
	return a;
}

static struct wr_table *mk_table(struct wr_arena *a, uint32_t ks, uint32_t vs)
{
	struct wr_table_config cfg = { ks, vs, 0 };
	struct wr_table *t = NULL;

	cr_assert_eq(wr_table_create(a, &cfg, &t), 0);
	cr_assert(wr_table_is_valid(t));
	return t;
}

/* Key i as KS bytes: distinct for distinct i. */
static void key_of(uint32_t i, uint8_t *k)
{
	memset(k, 0x5a, KS);
	memcpy(k, &i, sizeof(i));
}

Test(table, key_eq_every_size_and_byte)
{
	uint8_t a[72], b[72];

	for (uint32_t n = 1; n <= 64; n++) {
		for (uint32_t i = 0; i < n + 1; i++)
			a[1 + i] = b[3 + i] = (uint8_t)(i * 37 + n);
		cr_assert(wr_key_eq(a + 1, b + 3, n), "size %u equal", n);
		for (uint32_t k = 0; k < n; k++) {
			b[3 + k] ^= 0x10;
			cr_assert(!wr_key_eq(a + 1, b + 3, n), "size %u byte %u",
				  n, k);
			b[3 + k] ^= 0x10;
		}
		b[3 + n] ^= 0xff; /* past the key: not compared */
		cr_assert(wr_key_eq(a + 1, b + 3, n), "size %u, byte n", n);
	}
}

Test(table, config_errors)
{
	struct wr_arena *a = mk_arena(1 << 20, 0);
	struct wr_table *t = NULL;
	struct wr_table_config c = { 65, 8, 0 };

	cr_assert_eq(wr_table_create(a, &c, &t), -EINVAL);
	cr_assert_str_eq(weir_last_error(), "key size 65 exceeds 64");
	c.key_size = 0;
	cr_assert_eq(wr_table_create(a, &c, &t), -EINVAL);
	c.key_size = 64;
	c.value_size = 0;
	cr_assert_eq(wr_table_create(a, &c, &t), -EINVAL);
	c.value_size = 1025;
	cr_assert_eq(wr_table_create(a, &c, &t), -EINVAL);
	cr_assert(strstr(weir_last_error(), "1025"));
	cr_assert_null(t);
	wr_table_destroy(NULL);
	wr_arena_destroy(a);
}

static void run_model_in(uint32_t universe, uint32_t steps,
			 uint32_t check_every, bool small)
{
	struct wr_arena *a = mk_dirty_arena(64u << 20, 4096);
	struct wr_slab slab;
	struct wr_table_config cfg = { KS, 8, 0, small ? &slab : NULL };
	struct wr_table *t = NULL;

	wr_slab_init(&slab, a);
	cr_assert_eq(wr_table_create(a, &cfg, &t), 0);
	uint64_t *val = calloc(universe, sizeof(uint64_t));
	bool *present = calloc(universe, sizeof(bool));
	uint64_t count = 0;
	uint8_t k[KS];
	struct wr_table_stats s;

	srand(42);
	for (uint32_t step = 0; step < steps; step++) {
		uint32_t i = (uint32_t)rand() % universe, op = (uint32_t)rand() % 10;
		uint64_t h;
		key_of(i, k);
		h = wr_table_hash(k, KS);
		if (op < 6) {
			void *v;
			bool ins;
			cr_assert_eq(wr_table_upsert(t, k, h, &v, &ins), 0);
			cr_assert_eq(ins, !present[i]);
			cr_assert_eq(*(uint64_t *)v, present[i] ? val[i] : 0);
			val[i] = ((uint64_t)step << 20) | i;
			*(uint64_t *)v = val[i];
			count += !present[i];
			present[i] = true;
		} else if (op < 8) {
			cr_assert_eq(wr_table_remove(t, k, h), present[i] ? 0 : -ENOENT);
			count -= present[i];
			present[i] = false;
		} else {
			const uint64_t *v = wr_table_get(t, k, h);
			cr_assert_eq(v != NULL, present[i], "step %u key %u", step, i);
			if (v)
				cr_assert_eq(*v, val[i]);
		}
		cr_assert_eq(wr_table_count(t), count);
		if (step % check_every == 0)
			cr_assert(wr_table_is_valid(t), "step %u", step);
	}
	wr_table_get_stats(t, &s);
	cr_assert_geq(s.resizes, 2, "the run must cross resizes (%llu)",
		      (unsigned long long)s.resizes);
	cr_assert_eq(s.forced_finishes, 0);
	for (uint32_t i = 0; i < universe; i++) {
		key_of(i, k);
		cr_assert_eq(wr_table_get(t, k, wr_table_hash(k, KS)) != NULL,
			     present[i]);
	}
	wr_table_destroy(t);
	cr_assert_eq(a->pages_used, 0, "pages left after destroy");
	wr_arena_destroy(a);
	free(val);
	free(present);
}

static void run_model(uint32_t universe, uint32_t steps, uint32_t check_every)
{
	run_model_in(universe, steps, check_every, false);
}

Test(table, model_validated_every_step, .timeout = 120)
{
	run_model(4000, 10000, 1);
}

Test(table, model_big, .timeout = 120)
{
	run_model(60000, 200000, 5000);
}

Test(table, many_keys_batched, .timeout = 120)
{
	enum { N = 1 << 20, B = 32 };
	struct wr_arena *a = mk_arena(1ull << 30, 0);
	struct wr_table *t = mk_table(a, 8, 8);
	uint64_t keys[B], hashes[B];
	void *vals[B];
	struct wr_table_stats s;

	for (uint64_t base = 0; base < N; base += B) {
		for (int j = 0; j < B; j++) {
			keys[j] = (base + (uint64_t)j) * 0x9e3779b97f4a7c15ull;
			hashes[j] = wr_table_hash(&keys[j], 8);
		}
		cr_assert_eq(wr_table_upsert_batch(t, keys, hashes, B, vals), 0);
		for (int j = 0; j < B; j++)
			*(uint64_t *)vals[j] += base + (uint64_t)j + 1;
	}
	wr_table_get_stats(t, &s);
	cr_assert_eq(s.count, N);
	cr_assert_geq(s.resizes, 8);
	cr_assert_eq(s.forced_finishes, 0);
	while (wr_table_step(t, 1 << 16))
		;
	cr_assert(wr_table_is_valid(t));
	for (uint64_t i = 0; i < N; i++) {
		uint64_t k = i * 0x9e3779b97f4a7c15ull;
		const uint64_t *v = wr_table_get(t, &k, wr_table_hash(&k, 8));
		cr_assert(v && *v == i + 1, "key %llu", (unsigned long long)i);
	}
	wr_table_destroy(t);
	wr_arena_destroy(a);
}

static void put(struct wr_table *t, uint64_t k, uint64_t v)
{
	void *p;
	bool ins;

	cr_assert_eq(wr_table_upsert(t, &k, wr_table_hash(&k, 8), &p, &ins), 0);
	*(uint64_t *)p = v;
}

static uint64_t get(struct wr_table *t, uint64_t k)
{
	const uint64_t *v = wr_table_get(t, &k, wr_table_hash(&k, 8));

	cr_assert_not_null(v, "key %llu", (unsigned long long)k);
	return *v;
}

Test(table, bounded_steps)
{
	struct wr_arena *a = mk_dirty_arena(64u << 20, 0);
	struct wr_table *t = mk_table(a, 8, 8);
	struct wr_table_stats s, s2;
	uint64_t k = 0, max_moved = 0, phases_seen = 0;

	/* Grow through three resizes one upsert at a time. */
	for (; k < 20000; k++) {
		wr_table_get_stats(t, &s);
		put(t, k, k);
		wr_table_get_stats(t, &s2);
		if (s2.slots_moved - s.slots_moved > max_moved)
			max_moved = s2.slots_moved - s.slots_moved;
		phases_seen |= 1u << s2.phase;
	}
	cr_assert_leq(max_moved, WR_TABLE_STEP_SLOTS);
	cr_assert_eq(phases_seen, 7, "idle, preparing and migrating all seen");
	/* Explicit steps respect their budget. */
	do {
		put(t, k, k);
		k++;
		wr_table_get_stats(t, &s);
	} while (s.phase != 1);
	while (s.phase == 1) {
		cr_assert_leq(wr_table_step(t, 10), 80);
		wr_table_get_stats(t, &s);
	}
	while (s.phase == 2) {
		uint64_t before = s.slots_moved;
		cr_assert_leq(wr_table_step(t, 10), 10);
		wr_table_get_stats(t, &s);
		cr_assert_leq(s.slots_moved - before, 10);
		cr_assert(wr_table_is_valid(t));
	}
	for (uint64_t i = 0; i < k; i++)
		cr_assert_eq(get(t, i), i);
	cr_assert_eq(s.forced_finishes, 0);
	wr_table_destroy(t);
	wr_arena_destroy(a);
}

Test(table, enomem_at_cap)
{
	struct wr_arena *a = mk_arena(16 * 4096, 4096);
	struct wr_table *t = mk_table(a, 8, 8);
	uint64_t k = 0, count;
	void *p;
	bool ins;
	int err = 0;

	for (; k < 100000 && !err; k++)
		err = wr_table_upsert(t, &k, wr_table_hash(&k, 8), &p, &ins);
	cr_assert_eq(err, -ENOMEM);
	cr_assert(strstr(weir_last_error(), "cap of 65536 bytes"),
		  "message: %s", weir_last_error());
	cr_assert(wr_table_is_valid(t));
	count = wr_table_count(t);
	cr_assert_eq(count, k - 1);
	for (uint64_t i = 0; i < count; i++)
		cr_assert_not_null(wr_table_get(t, &i, wr_table_hash(&i, 8)));
	/* Updates of present keys still work at the cap. */
	put(t, 0, 77);
	cr_assert_eq(get(t, 0), 77);
	wr_table_destroy(t);
	wr_arena_destroy(a);
}

Test(table, isolation_wide_values_and_two_tables)
{
	struct wr_arena *a = mk_arena(64u << 20, 0);
	struct wr_table *t1 = mk_table(a, 8, 100), *t2 = mk_table(a, 8, 8);
	enum { N = 5000 };

	for (uint64_t k = 0; k < N; k++) {
		void *p;
		bool ins;
		cr_assert_eq(wr_table_upsert(t1, &k, wr_table_hash(&k, 8), &p,
					     &ins), 0);
		memset(p, (int)(k & 0xff), 100);
		put(t2, k, ~k);
	}
	cr_assert(wr_table_is_valid(t1));
	cr_assert(wr_table_is_valid(t2));
	for (uint64_t k = 0; k < N; k++) {
		const uint8_t *v = wr_table_get(t1, &k, wr_table_hash(&k, 8));
		cr_assert_not_null(v);
		for (int j = 0; j < 100; j++)
			cr_assert_eq(v[j], k & 0xff, "key %llu byte %d",
				     (unsigned long long)k, j);
		cr_assert_eq(get(t2, k), ~k);
	}
	wr_table_destroy(t1);
	wr_table_destroy(t2);
	wr_arena_destroy(a);
}

Test(table, collisions_and_reserved_hashes)
{
	struct wr_arena *a = mk_arena(16u << 20, 0);
	struct wr_table *t = mk_table(a, 8, 8);
	const uint64_t hs[] = { 0, 1, 2, 42 };

	for (uint64_t k = 0; k < 400; k++) {
		void *p;
		bool ins;
		cr_assert_eq(wr_table_upsert(t, &k, hs[k % 4], &p, &ins), 0);
		cr_assert(ins);
		*(uint64_t *)p = k * 3;
	}
	for (uint64_t k = 0; k < 400; k += 2)
		cr_assert_eq(wr_table_remove(t, &k, hs[k % 4]), 0);
	for (uint64_t k = 0; k < 400; k++) {
		const uint64_t *v = wr_table_get(t, &k, hs[k % 4]);
		if (k % 2 == 0)
			cr_assert_null(v);
		else
			cr_assert(v && *v == k * 3);
	}
	cr_assert_eq(wr_table_count(t), 200);
	wr_table_destroy(t);
	wr_arena_destroy(a);
}

Test(table, batch_duplicates_share_a_value)
{
	struct wr_arena *a = mk_arena(16u << 20, 0);
	struct wr_table *t = mk_table(a, 8, 8);
	uint64_t keys[5] = { 7, 8, 7, 9, 7 }, hashes[5];
	void *vals[5];

	for (int i = 0; i < 5; i++)
		hashes[i] = wr_table_hash(&keys[i], 8);
	cr_assert_eq(wr_table_upsert_batch(t, keys, hashes, 5, vals), 0);
	cr_assert_eq(vals[0], vals[2]);
	cr_assert_eq(vals[0], vals[4]);
	for (int i = 0; i < 5; i++)
		(*(uint64_t *)vals[i])++;
	cr_assert_eq(get(t, 7), 3);
	cr_assert_eq(get(t, 9), 1);
	cr_assert_eq(wr_table_count(t), 3);
	cr_assert_eq(wr_table_upsert_batch(t, keys, hashes, 65, vals), -EINVAL);
	wr_table_destroy(t);
	wr_arena_destroy(a);
}

static uint64_t count_by_iteration(struct wr_table *t, uint8_t *seen)
{
	struct wr_table_iter it = { 0 };
	const void *k;
	void *v;
	uint64_t n = 0, key;

	while (wr_table_next(t, &it, &k, &v)) {
		memcpy(&key, k, 8);
		cr_assert_eq(seen[key]++, 0, "key %llu twice",
			     (unsigned long long)key);
		cr_assert_eq(*(uint64_t *)v, key);
		cr_assert_eq(wr_table_value_hash(t, v), wr_table_hash(k, 8));
		n++;
	}
	return n;
}

Test(table, iterate_every_key_once)
{
	enum { N = 3000 };
	struct wr_arena *a = mk_dirty_arena(16u << 20, 0);
	struct wr_table *t = mk_table(a, 8, 8);
	struct wr_table_stats s;
	uint8_t *seen = calloc(N, 1);
	uint64_t k = 0;

	do {
		put(t, k, k);
		k++;
		wr_table_get_stats(t, &s);
	} while (s.phase != 2 || s.migrate_pos == 0);
	cr_assert_eq(count_by_iteration(t, seen), k, "mid-migration");
	memset(seen, 0, N);
	for (; k < N; k++)
		put(t, k, k);
	cr_assert_eq(count_by_iteration(t, seen), N);
	free(seen);
	wr_table_destroy(t);
	wr_arena_destroy(a);
}

Test(table, clear)
{
	struct wr_arena *a = mk_arena(16u << 20, 0);
	struct wr_table *t = mk_table(a, 8, 8);
	struct wr_arena_stats s;

	for (uint64_t k = 0; k < 5000; k++)
		put(t, k, k);
	cr_assert_eq(wr_table_clear(t), 0);
	cr_assert_eq(wr_table_count(t), 0);
	cr_assert(wr_table_is_valid(t));
	for (uint64_t k = 0; k < 5000; k++) {
		uint64_t q = k;
		cr_assert_null(wr_table_get(t, &q, wr_table_hash(&q, 8)));
	}
	put(t, 3, 4);
	cr_assert_eq(get(t, 3), 4);
	wr_table_destroy(t);
	wr_arena_get_stats(a, &s);
	cr_assert_eq(s.pages_used, 0, "destroy returns every page");
	wr_arena_destroy(a);
}

Test(table, cow_snapshot_sees_old_value)
{
	struct wr_arena *a = mk_arena(16u << 20, 0);
	struct wr_table *t = mk_table(a, 8, 8);
	uint64_t k = 11;
	const uint8_t *snap;
	uint32_t page;
	void *p;
	bool ins;

	put(t, k, 100);
	cr_assert_eq(wr_arena_snapshot_begin(a, NULL), 0);
	cr_assert_eq(wr_table_upsert(t, &k, wr_table_hash(&k, 8), &p, &ins), 0);
	*(uint64_t *)p = 200;
	page = wr_arena_page_of(a, p);
	snap = wr_arena_snapshot_page(a, page);
	cr_assert_eq(*(const uint64_t *)(snap + ((uint8_t *)p -
		     (uint8_t *)wr_arena_page_ptr(a, page))), 100);
	cr_assert_eq(get(t, k), 200);
	wr_arena_snapshot_end(a);
	cr_assert(wr_arena_is_valid(a));
	wr_table_destroy(t);
	wr_arena_destroy(a);
}

/* ---- small tables in a slab ---- */

Test(table, small_model_through_slab_into_page_runs, .timeout = 120)
{
	run_model_in(4000, 20000, 1, true);
}

Test(table, small_tables_share_pages)
{
	struct wr_arena *a = mk_arena(64u << 20, 0);
	struct wr_slab slab;
	struct wr_table_config cfg = { KS, 8, 0, &slab };
	struct wr_table *t[100];
	uint8_t k[KS];

	wr_slab_init(&slab, a);
	for (unsigned j = 0; j < 100; j++) {
		cr_assert_eq(wr_table_create(a, &cfg, &t[j]), 0);
		for (uint32_t i = 0; i < 13; i++) {
			void *v;
			key_of(i * 100 + j, k);
			cr_assert_eq(wr_table_upsert(t[j], k, wr_table_hash(k, KS),
						     &v, NULL), 0);
			/* 32-byte slots, none across a cache line. */
			cr_assert_eq(((uintptr_t)v - 8) % 32, 0, "slot misaligned");
			*(uint64_t *)v = j;
		}
	}
	/* 100 x 64 slots x 32 B = 200 KiB: 4 pages of 64 KiB, not 100. */
	cr_assert_leq(a->pages_used, 6, "%u pages for 100 small tables",
		      a->pages_used);
	for (unsigned j = 0; j < 100; j++) {
		cr_assert(wr_table_is_valid(t[j]));
		for (uint32_t i = 0; i < 13; i++) {
			key_of(i * 100 + j, k);
			const uint64_t *v = wr_table_get(t[j], k,
							 wr_table_hash(k, KS));
			cr_assert_not_null(v);
			cr_assert_eq(*v, j);
		}
	}
	for (unsigned j = 0; j < 100; j++)
		wr_table_destroy(t[j]);
	cr_assert_eq(a->pages_used, 0);
	wr_arena_destroy(a);
}

/* Keys 0..n-1 into t, key i with the value i + 1. */
static void insert_keys(struct wr_table *t, uint32_t n)
{
	uint8_t k[KS];

	for (uint32_t i = 0; i < n; i++) {
		void *v;
		key_of(i, k);
		cr_assert_eq(wr_table_upsert(t, k, wr_table_hash(k, KS), &v,
					     NULL), 0);
		*(uint64_t *)v = i + 1;
	}
}

Test(table, small_table_image_round_trip)
{
	struct wr_arena *a = mk_arena(16u << 20, 0);
	struct wr_slab slab, slab2;
	struct wr_slab_image si;
	struct wr_table_config cfg = { KS, 8, 0, &slab };
	struct wr_table_image img;
	struct wr_table *t, *u = NULL;
	uint8_t k[KS];

	wr_slab_init(&slab, a);
	cr_assert_eq(wr_table_create(a, &cfg, &t), 0);
	insert_keys(t, 40);
	wr_table_save(t, &img);
	wr_slab_save(&slab, &si);
	cr_assert_eq(img.cur.in_slab, 1);
	cr_assert_eq(wr_table_load(a, NULL, &img, &u), -EINVAL,
		     "an image of a slab table loads without its slab");
	cr_assert_eq(wr_slab_load(&slab2, a, &si), 0);
	cr_assert_eq(wr_table_load(a, &slab2, &img, &u), 0);
	cr_assert(wr_table_is_valid(u));
	cr_assert_eq(wr_table_count(u), 40);
	for (uint32_t i = 0; i < 40; i++) {
		key_of(i, k);
		const uint64_t *v = wr_table_get(u, k, wr_table_hash(k, KS));
		cr_assert_not_null(v);
		cr_assert_eq(*v, i + 1);
	}
	free(t); /* the same pages: destroy one of the two only */
	wr_table_destroy(u);
	cr_assert_eq(a->pages_used, 0);
	wr_arena_destroy(a);
}

/* An image that passes its checksum may still be made up: each field a
 * file could carry that would send the table outside its own live pages,
 * into a probe with no empty slot, or free a page twice is refused, and
 * the untouched image still loads. */
static int load_variant(struct wr_arena *a, const struct wr_table_image *img)
{
	struct wr_table *u = NULL;
	int err = wr_table_load(a, NULL, img, &u);

	free(u);	/* its pages are the original's: never destroyed */
	return err;
}

Test(table, made_up_images_refused)
{
	struct wr_arena *a = mk_arena(16u << 20, 0);
	struct wr_table *t = mk_table(a, KS, 8);
	struct wr_table_image img, v;
	uint32_t spare, freed;

	insert_keys(t, 100);
	wr_table_save(t, &img);
	cr_assert_eq(img.phase, 0, "an idle table");
	cr_assert_eq(load_variant(a, &img), 0);
	cr_assert_eq(wr_arena_alloc(a, img.cur.npages, &spare, NULL), 0);
	cr_assert_eq(wr_arena_alloc(a, 1, &freed, NULL), 0);
	wr_arena_free(a, freed, 1);

	v = img, v.cur.cap = 1ull << 62;	/* cap x slot size wraps to 0 */
	cr_assert_eq(load_variant(a, &v), -EINVAL);
	v = img, v.cur.used = UINT64_MAX, v.cur.tomb = 1;	/* sum wraps */
	cr_assert_eq(load_variant(a, &v), -EINVAL);
	v = img, v.cur.tomb = v.cur.cap - v.cur.used;	/* no empty slot */
	cr_assert_eq(load_variant(a, &v), -EINVAL);
	v = img, v.cur.first_page = freed, v.cur.npages = 1;	/* not live */
	cr_assert_eq(load_variant(a, &v), -EINVAL);
	v = img, v.phase = 2;	/* MIGRATING without an old array */
	cr_assert_eq(load_variant(a, &v), -EINVAL);
	v = img, v.phase = 2, v.old = img.cur;	/* old = cur: freed twice */
	cr_assert_eq(load_variant(a, &v), -EINVAL);
	v = img, v.phase = 2, v.old = img.cur, v.old.first_page = spare;
	v.old.used = v.old.tomb = 0, v.cursor = v.old.cap + 1;
	cr_assert_eq(load_variant(a, &v), -EINVAL);
	v.cursor = v.old.cap / 2;	/* the same, the cursor inside: loads */
	cr_assert_eq(load_variant(a, &v), 0);
	v = img, v.next = img.cur, v.next.first_page = spare;	/* idle */
	cr_assert_eq(load_variant(a, &v), -EINVAL);
	wr_table_destroy(t);
	wr_arena_destroy(a);
}
