/*
 * tests/state/keyed_test.c — keyed state (state/keyed.h) over an arena the
 * test creates, with processing time passed explicitly.
 *
 * TEST PLAN
 *   config:      bad descriptors (value size 0 / 1025, map key size 0, no
 *                reduce, no aggregate ops, unknown kind, key size 0 / 65,
 *                TTL stamp + 1024-byte value, bad policy, group on another
 *                arena) fail with -EINVAL and a message naming the state.
 *   wrong kind:  a list call on a value state is -EINVAL.
 *   value model: random update/get/clear on 3 value states x 97 keys in one
 *                arena against a brute-force model (isolation between keys
 *                and states), validator every 500 operations.
 *   list model:  random append/replace/clear/get/length/view, same way.
 *   map model:   random put/update/remove/get/clear/size and full
 *                iteration per key against a model matrix.
 *   reducing / aggregating: sum and average against the model, clear.
 *   ttl create:  ON_CREATE_AND_WRITE: reads do not extend the life; the
 *                entry reads absent at exactly ts + ttl; writing restarts it.
 *   ttl read:    ON_READ_AND_WRITE: each read extends the life.
 *   ttl list/map: an expired list has length 0, an expired map is absent,
 *                and an append after expiry starts a new list.
 *   ttl step:    wr_kstate_step examines at most budget entries per call;
 *                all expired entries (and their slab bytes) go away.
 *   cap fail:    policy FAIL: -ENOMEM, message "state 'sums' reached the
 *                memory cap of N bytes per core", counter, state intact.
 *   cap evict:   policy EVICT: nothing expired -> fails and counts; later,
 *                expired entries (also of another state of the group) are
 *                evicted and the write succeeds; counters.
 *   big lists:   100k elements under one key plus 20k 3-element lists.
 *   growth:      100k keys: the table resizes incrementally and
 *                wr_kstate_step moves the rest of a migration.
 *   cow:         after wr_arena_snapshot_begin, writes of every kind
 *                (growth, removal, clear, TTL cleanup included) leave the
 *                bytes of every snapshot page unchanged.
 *   destroy:     returns every page to the arena.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/keyed.h"
#include "state/table.h"

#define KS 12u

static struct wr_arena *mk_arena(size_t bytes, uint32_t page)
{
	struct wr_arena_config cfg = { bytes, page, 4 };
	struct wr_arena *a = NULL;

	cr_assert_eq(wr_arena_create(&cfg, &a), 0);
	return a;
}

static struct wr_kstate *mk(struct wr_arena *a, const struct weir_state_desc *d,
			    const struct wr_kstate_options *o)
{
	struct wr_kstate *s = NULL;
	int err = wr_kstate_create(a, d, KS, o, &s);

	cr_assert_eq(err, 0, "create: %d %s", err, weir_last_error());
	cr_assert(wr_kstate_is_valid(s));
	return s;
}

struct key {
	uint8_t b[KS];
	uint64_t h;
};

static struct key key_of(uint32_t i)
{
	struct key k;

	memset(k.b, 0xa5, KS);
	memcpy(k.b, &i, sizeof(i));
	k.h = wr_table_hash(k.b, KS);
	return k;
}

static uint64_t rng_state = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static void sum_reduce(void *acc, const void *in, void *arg)
{
	(void)arg;
	*(uint64_t *)acc += *(const uint64_t *)in;
}

struct avg_acc {
	uint64_t sum, n;
};

static void avg_create(void *acc, void *arg)
{
	(void)arg;
	memset(acc, 0, sizeof(struct avg_acc));
}

static void avg_add(void *acc, const void *in, void *arg)
{
	struct avg_acc *x = acc;

	(void)arg;
	x->sum += *(const uint64_t *)in;
	x->n++;
}

static void avg_result(const void *acc, void *out, void *arg)
{
	const struct avg_acc *x = acc;

	(void)arg;
	*(double *)out = (double)x->sum / (double)x->n;
}

static const struct weir_aggregate_ops avg_ops = {
	avg_create, avg_add, NULL, avg_result,
	sizeof(struct avg_acc), 8, sizeof(double)
};

/* ---- configuration ---- */

static void expect_einval(struct wr_arena *a, struct weir_state_desc d,
			  uint32_t ks, const struct wr_kstate_options *o)
{
	struct wr_kstate *s = NULL;
	int err = wr_kstate_create(a, &d, ks, o, &s);

	cr_expect_eq(err, -EINVAL, "desc '%s' kind %d vs %u: %d", d.name,
		     (int)d.kind, d.value_size, err);
	cr_expect(strstr(weir_last_error(), "'bad'") ||
		  strstr(weir_last_error(), "policy"), "message: %s",
		  weir_last_error());
	cr_expect_null(s);
}

Test(keyed, config_errors)
{
	struct wr_arena *a = mk_arena(4 << 20, 4096), *b = mk_arena(1 << 20, 4096);
	struct weir_state_desc v = { .name = "bad", .kind = WEIR_STATE_VALUE,
				     .value_size = 8 };
	struct weir_state_desc d = v;
	struct weir_aggregate_ops no_add = avg_ops;
	struct wr_kstate_options bad_pol = { (enum wr_kstate_full_policy)7, NULL };
	struct wr_kstate *other = NULL;
	struct wr_kstate_options bad_grp = { WR_KSTATE_FULL_FAIL, NULL };

	d.value_size = 0;	expect_einval(a, d, KS, NULL);
	d.value_size = 1025;	expect_einval(a, d, KS, NULL);
	d = v; d.kind = 9;	expect_einval(a, d, KS, NULL);
	d = v; d.kind = WEIR_STATE_MAP; expect_einval(a, d, KS, NULL);
	d.map_key_size = 65;	expect_einval(a, d, KS, NULL);
	d = v; d.kind = WEIR_STATE_REDUCING; expect_einval(a, d, KS, NULL);
	d = v; d.kind = WEIR_STATE_AGGREGATING; expect_einval(a, d, KS, NULL);
	no_add.add = NULL;
	d.agg = &no_add;	expect_einval(a, d, KS, NULL);
	d = v;			expect_einval(a, d, 0, NULL);
	expect_einval(a, d, 65, NULL);
	d.value_size = 1024; d.ttl_ms = 5; expect_einval(a, d, KS, NULL);
	d = v; d.ttl_update = 3; expect_einval(a, d, KS, NULL);
	expect_einval(a, v, KS, &bad_pol);
	cr_assert_eq(wr_kstate_create(b, &v, KS, NULL, &other), 0);
	bad_grp.evict_group = other;
	d = v; d.name = "bad";
	cr_expect_eq(wr_kstate_create(a, &d, KS, &bad_grp, &(struct wr_kstate *){ NULL }),
		     -EINVAL);
	wr_kstate_destroy(other);
	wr_kstate_destroy(NULL);
	wr_arena_destroy(a);
	wr_arena_destroy(b);
}

Test(keyed, wrong_kind)
{
	struct wr_arena *a = mk_arena(4 << 20, 4096);
	struct weir_state_desc d = { .name = "v", .kind = WEIR_STATE_VALUE,
				     .value_size = 8 };
	struct wr_kstate *s = mk(a, &d, NULL);
	struct key k = key_of(1);
	uint64_t x = 1;
	uint32_t n;
	const void *p;

	cr_expect_eq(wr_kstate_list_append(s, k.b, k.h, 0, &x), -EINVAL);
	cr_expect(strstr(weir_last_error(), "'v' is a value state"));
	cr_expect_eq(wr_kstate_list_length(s, k.b, k.h, 0, &n), -EINVAL);
	cr_expect_eq(wr_kstate_map_get(s, k.b, k.h, 0, &x, &p), -EINVAL);
	cr_expect_eq(wr_kstate_reduce_add(s, k.b, k.h, 0, &x), -EINVAL);
	cr_expect_eq(wr_kstate_aggregate_result(s, k.b, k.h, 0, &x), -EINVAL);
	cr_expect_eq(wr_kstate_count(s), 0);
	wr_kstate_destroy(s);
	wr_arena_destroy(a);
}

/* ---- models ---- */

#define NK 97u
#define NST 3u

Test(keyed, value_model)
{
	static const uint32_t vs[NST] = { 8, 24, 3 };
	struct wr_arena *a = mk_arena(16 << 20, 4096);
	struct wr_kstate *s[NST];
	static uint8_t model[NST][NK][24];
	static bool present[NST][NK];

	for (uint32_t i = 0; i < NST; i++) {
		struct weir_state_desc d = { .name = "val",
			.kind = WEIR_STATE_VALUE, .value_size = vs[i] };
		s[i] = mk(a, &d, NULL);
	}
	for (uint32_t op = 0; op < 30000; op++) {
		uint32_t st = rnd(NST), ki = rnd(NK), r = rnd(10);
		struct key k = key_of(ki);
		void *p;
		bool created;

		if (r < 5) {
			cr_assert_eq(wr_kstate_value_update(s[st], k.b, k.h, 0,
							    &p, &created), 0);
			cr_assert_eq(created, !present[st][ki]);
			if (created)
				for (uint32_t b = 0; b < vs[st]; b++)
					cr_assert_eq(((uint8_t *)p)[b], 0);
			cr_assert_eq(memcmp(p, model[st][ki], vs[st]), 0);
			for (uint32_t b = 0; b < vs[st]; b++)
				model[st][ki][b] = ((uint8_t *)p)[b] =
					(uint8_t)rnd(256);
			present[st][ki] = true;
		} else if (r < 9) {
			int err = wr_kstate_value_get(s[st], k.b, k.h, 0, &p);
			cr_assert_eq(err, present[st][ki] ? 0 : -ENOENT);
			if (!err)
				cr_assert_eq(memcmp(p, model[st][ki], vs[st]), 0);
		} else {
			cr_assert_eq(wr_kstate_clear(s[st], k.b, k.h), 0);
			present[st][ki] = false;
			memset(model[st][ki], 0, sizeof(model[st][ki]));
		}
		if (op % 500 == 0)
			for (uint32_t i = 0; i < NST; i++)
				cr_assert(wr_kstate_is_valid(s[i]));
	}
	for (uint32_t i = 0; i < NST; i++) {
		uint64_t n = 0;
		for (uint32_t ki = 0; ki < NK; ki++)
			n += present[i][ki];
		cr_assert_eq(wr_kstate_count(s[i]), n);
		wr_kstate_destroy(s[i]);
	}
	wr_arena_destroy(a);
}

#define LMAX 300u

struct lmodel {
	uint32_t len;
	uint32_t e[LMAX];
};

static void list_check(struct wr_kstate *s, uint32_t ki, const struct lmodel *m)
{
	struct key k = key_of(ki);
	const void *view;
	uint32_t n, x;

	cr_assert_eq(wr_kstate_list_length(s, k.b, k.h, 0, &n), 0);
	cr_assert_eq(n, m->len, "key %u: len %u, model %u", ki, n, m->len);
	cr_assert_eq(wr_kstate_list_view(s, k.b, k.h, 0, &view, &n), 0);
	cr_assert_eq(n, m->len);
	if (n)
		cr_assert_eq(memcmp(view, m->e, n * 4u), 0);
	if (n) {
		uint32_t i = rnd(n);
		cr_assert_eq(wr_kstate_list_get(s, k.b, k.h, 0, i, &x), 0);
		cr_assert_eq(x, m->e[i]);
	}
	cr_assert_eq(wr_kstate_list_get(s, k.b, k.h, 0, n, &x), -ENOENT);
}

Test(keyed, list_model)
{
	struct wr_arena *a = mk_arena(32 << 20, 4096);
	struct weir_state_desc d = { .name = "l", .kind = WEIR_STATE_LIST,
				     .value_size = 4 };
	struct wr_kstate *s = mk(a, &d, NULL), *s2 = mk(a, &d, NULL);
	static struct lmodel m[NK];
	uint32_t tmp[LMAX];

	for (uint32_t op = 0; op < 40000; op++) {
		uint32_t ki = rnd(NK), r = rnd(100);
		struct key k = key_of(ki);
		struct lmodel *lm = &m[ki];

		if (r < 70 && lm->len < LMAX) {
			uint32_t x = rnd(1u << 30);
			cr_assert_eq(wr_kstate_list_append(s, k.b, k.h, 0, &x), 0);
			lm->e[lm->len++] = x;
		} else if (r < 80) {
			uint32_t n = rnd(LMAX / 2);
			for (uint32_t i = 0; i < n; i++)
				tmp[i] = rnd(1000);
			cr_assert_eq(wr_kstate_list_replace(s, k.b, k.h, 0, tmp,
							    n), 0);
			memcpy(lm->e, tmp, n * 4u);
			lm->len = n;
		} else if (r < 83) {
			cr_assert_eq(wr_kstate_clear(s, k.b, k.h), 0);
			lm->len = 0;
		} else if (r < 85 && lm->len > 2) {
			/* Replace from the list's own view (overlap). */
			const void *v;
			uint32_t n;
			cr_assert_eq(wr_kstate_list_view(s, k.b, k.h, 0, &v, &n), 0);
			cr_assert_eq(wr_kstate_list_replace(
				s, k.b, k.h, 0, (const uint32_t *)v + 1, n - 1), 0);
			memmove(lm->e, lm->e + 1, (n - 1) * 4u);
			lm->len = n - 1;
		} else {
			list_check(s, ki, lm);
		}
		if (op % 1000 == 0) {
			cr_assert(wr_kstate_is_valid(s));
			cr_assert_eq(wr_kstate_count(s2), 0); /* isolation */
		}
	}
	for (uint32_t ki = 0; ki < NK; ki++)
		list_check(s, ki, &m[ki]);
	cr_assert(wr_kstate_is_valid(s));
	wr_kstate_destroy(s);
	wr_kstate_destroy(s2);
	wr_arena_destroy(a);
}

#define NMK 40u
#define MVS 20u

struct mmodel {
	bool has[NMK];
	uint8_t v[NMK][MVS];
	uint32_t n;
};

static void mkey_of(uint32_t j, uint8_t mk[6])
{
	memset(mk, 0x3c, 6);
	memcpy(mk, &j, 2);
}

static void map_check(struct wr_kstate *s, uint32_t ki, const struct mmodel *m)
{
	struct key k = key_of(ki);
	struct wr_kstate_map_iter it = { 0 };
	const void *mk, *v;
	bool seen[NMK] = { false };
	uint32_t n = 0, size;

	cr_assert_eq(wr_kstate_map_size(s, k.b, k.h, 0, &size), 0);
	cr_assert_eq(size, m->n);
	while (wr_kstate_map_next(s, k.b, k.h, 0, &it, &mk, &v) == 0) {
		uint32_t j = 0;
		memcpy(&j, mk, 2);
		cr_assert(j < NMK && m->has[j] && !seen[j], "key %u mkey %u", ki, j);
		cr_assert_eq(memcmp(v, m->v[j], MVS), 0);
		seen[j] = true;
		n++;
	}
	cr_assert_eq(n, m->n);
}

Test(keyed, map_model)
{
	struct wr_arena *a = mk_arena(32 << 20, 4096);
	struct weir_state_desc d = { .name = "m", .kind = WEIR_STATE_MAP,
				     .value_size = MVS, .map_key_size = 6 };
	struct wr_kstate *s = mk(a, &d, NULL);
	static struct mmodel m[NK];

	for (uint32_t op = 0; op < 60000; op++) {
		uint32_t ki = rnd(NK), j = rnd(NMK), r = rnd(100);
		struct key k = key_of(ki);
		struct mmodel *mm = &m[ki];
		uint8_t mk[6], val[MVS];
		const void *p;
		void *w;
		bool created;
		int err;

		mkey_of(j, mk);
		if (r < 40) {
			for (uint32_t b = 0; b < MVS; b++)
				val[b] = (uint8_t)rnd(256);
			cr_assert_eq(wr_kstate_map_put(s, k.b, k.h, 0, mk, val), 0);
			mm->n += !mm->has[j];
			mm->has[j] = true;
			memcpy(mm->v[j], val, MVS);
		} else if (r < 50) {
			cr_assert_eq(wr_kstate_map_upsert(s, k.b, k.h, 0, mk, &w,
							  &created), 0);
			cr_assert_eq(created, !mm->has[j]);
			if (created)
				memset(mm->v[j], 0, MVS);
			cr_assert_eq(memcmp(w, mm->v[j], MVS), 0);
			((uint8_t *)w)[0] ^= 0x55;
			mm->v[j][0] ^= 0x55;
			mm->n += !mm->has[j];
			mm->has[j] = true;
		} else if (r < 75) {
			err = wr_kstate_map_remove(s, k.b, k.h, 0, mk);
			cr_assert_eq(err, mm->has[j] ? 0 : -ENOENT);
			mm->n -= mm->has[j];
			mm->has[j] = false;
		} else if (r < 77) {
			cr_assert_eq(wr_kstate_clear(s, k.b, k.h), 0);
			memset(mm, 0, sizeof(*mm));
		} else if (r < 90) {
			err = wr_kstate_map_get(s, k.b, k.h, 0, mk, &p);
			cr_assert_eq(err, mm->has[j] ? 0 : -ENOENT);
			if (!err)
				cr_assert_eq(memcmp(p, mm->v[j], MVS), 0);
		} else {
			map_check(s, ki, mm);
		}
		if (op % 1000 == 0)
			cr_assert(wr_kstate_is_valid(s));
	}
	for (uint32_t ki = 0; ki < NK; ki++)
		map_check(s, ki, &m[ki]);
	cr_assert(wr_kstate_is_valid(s));
	wr_kstate_destroy(s);
	wr_arena_destroy(a);
}

Test(keyed, reducing_and_aggregating)
{
	struct wr_arena *a = mk_arena(8 << 20, 4096);
	struct weir_state_desc rd = { .name = "sum", .kind = WEIR_STATE_REDUCING,
				      .value_size = 8, .reduce = sum_reduce };
	struct weir_state_desc ad = { .name = "avg",
				      .kind = WEIR_STATE_AGGREGATING,
				      .agg = &avg_ops };
	struct wr_kstate *r = mk(a, &rd, NULL), *g = mk(a, &ad, NULL);
	static uint64_t sum[NK], cnt[NK];

	for (uint32_t op = 0; op < 20000; op++) {
		uint32_t ki = rnd(NK);
		struct key k = key_of(ki);
		uint64_t x = rnd(1000), out;
		double avg;

		if (rnd(50) == 0) {
			cr_assert_eq(wr_kstate_clear(r, k.b, k.h), 0);
			cr_assert_eq(wr_kstate_clear(g, k.b, k.h), 0);
			sum[ki] = cnt[ki] = 0;
			cr_assert_eq(wr_kstate_reduce_get(r, k.b, k.h, 0, &out),
				     -ENOENT);
			cr_assert_eq(wr_kstate_aggregate_result(g, k.b, k.h, 0,
								&avg), -ENOENT);
			continue;
		}
		cr_assert_eq(wr_kstate_reduce_add(r, k.b, k.h, 0, &x), 0);
		cr_assert_eq(wr_kstate_aggregate_add(g, k.b, k.h, 0, &x), 0);
		sum[ki] += x;
		cnt[ki]++;
		cr_assert_eq(wr_kstate_reduce_get(r, k.b, k.h, 0, &out), 0);
		cr_assert_eq(out, sum[ki]);
		cr_assert_eq(wr_kstate_aggregate_result(g, k.b, k.h, 0, &avg), 0);
		cr_assert_eq(avg, (double)sum[ki] / (double)cnt[ki]);
	}
	cr_assert(wr_kstate_is_valid(r) && wr_kstate_is_valid(g));
	wr_kstate_destroy(r);
	wr_kstate_destroy(g);
	wr_arena_destroy(a);
}

/* ---- TTL ---- */

static struct weir_state_desc ttl_desc(enum weir_state_kind kind,
				       enum weir_ttl_update mode)
{
	struct weir_state_desc d = { .name = "ttl", .kind = kind,
				     .value_size = 8, .map_key_size = 4,
				     .ttl_ms = 100, .ttl_update = mode };
	return d;
}

Test(keyed, ttl_create_and_write)
{
	struct wr_arena *a = mk_arena(4 << 20, 4096);
	struct weir_state_desc d = ttl_desc(WEIR_STATE_VALUE,
					    WEIR_TTL_ON_CREATE_AND_WRITE);
	struct wr_kstate *s = mk(a, &d, NULL);
	struct key k = key_of(7);
	void *p;
	bool created;

	cr_assert_eq(wr_kstate_value_update(s, k.b, k.h, 1000, &p, &created), 0);
	*(uint64_t *)p = 42;
	cr_assert_eq(wr_kstate_value_get(s, k.b, k.h, 1050, &p), 0);
	cr_assert_eq(wr_kstate_value_get(s, k.b, k.h, 1099, &p), 0);
	cr_assert_eq(*(uint64_t *)p, 42);
	/* The reads did not extend it: gone at exactly 1000 + 100. */
	cr_assert_eq(wr_kstate_value_get(s, k.b, k.h, 1100, &p), -ENOENT);
	/* A write restarts it zero-filled, as created. */
	cr_assert_eq(wr_kstate_value_update(s, k.b, k.h, 1100, &p, &created), 0);
	cr_assert(created);
	cr_assert_eq(*(uint64_t *)p, 0);
	*(uint64_t *)p = 5;
	/* And a write extends it. */
	cr_assert_eq(wr_kstate_value_update(s, k.b, k.h, 1150, &p, &created), 0);
	cr_assert(!created);
	cr_assert_eq(wr_kstate_value_get(s, k.b, k.h, 1249, &p), 0);
	cr_assert_eq(wr_kstate_value_get(s, k.b, k.h, 1250, &p), -ENOENT);
	cr_assert(wr_kstate_is_valid(s));
	wr_kstate_destroy(s);
	wr_arena_destroy(a);
}

Test(keyed, ttl_read_and_write)
{
	struct wr_arena *a = mk_arena(4 << 20, 4096);
	struct weir_state_desc d = ttl_desc(WEIR_STATE_REDUCING,
					    WEIR_TTL_ON_READ_AND_WRITE);
	struct wr_kstate *s;
	struct key k = key_of(8);
	uint64_t x = 3, out;

	d.reduce = sum_reduce;
	s = mk(a, &d, NULL);
	cr_assert_eq(wr_kstate_reduce_add(s, k.b, k.h, 0, &x), 0);
	for (int64_t t = 90; t < 1000; t += 90)
		cr_assert_eq(wr_kstate_reduce_get(s, k.b, k.h, t, &out), 0,
			     "read at %ld", (long)t);
	cr_assert_eq(out, 3);
	/* Last read at 990: live until 1089. */
	cr_assert_eq(wr_kstate_reduce_get(s, k.b, k.h, 1089, &out), 0);
	cr_assert_eq(wr_kstate_reduce_get(s, k.b, k.h, 1189, &out), -ENOENT);
	cr_assert_eq(wr_kstate_reduce_add(s, k.b, k.h, 1189, &x), 0);
	cr_assert_eq(wr_kstate_reduce_get(s, k.b, k.h, 1190, &out), 0);
	cr_assert_eq(out, 3, "an expired accumulator restarts");
	wr_kstate_destroy(s);
	wr_arena_destroy(a);
}

Test(keyed, ttl_list_and_map)
{
	struct wr_arena *a = mk_arena(4 << 20, 4096);
	struct weir_state_desc ld = ttl_desc(WEIR_STATE_LIST,
					     WEIR_TTL_ON_CREATE_AND_WRITE);
	struct weir_state_desc md = ttl_desc(WEIR_STATE_MAP,
					     WEIR_TTL_ON_CREATE_AND_WRITE);
	struct wr_kstate *l = mk(a, &ld, NULL), *m = mk(a, &md, NULL);
	struct key k = key_of(9);
	struct wr_kstate_map_iter it = { 0 };
	uint64_t x = 11;
	uint32_t mk4 = 1, n;
	const void *p, *q;
	struct wr_kstate_stats st;

	for (int i = 0; i < 50; i++)
		cr_assert_eq(wr_kstate_list_append(l, k.b, k.h, 0, &x), 0);
	cr_assert_eq(wr_kstate_map_put(m, k.b, k.h, 0, &mk4, &x), 0);
	cr_assert_eq(wr_kstate_list_length(l, k.b, k.h, 100, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(wr_kstate_list_get(l, k.b, k.h, 100, 0, &x), -ENOENT);
	cr_assert_eq(wr_kstate_map_get(m, k.b, k.h, 100, &mk4, &p), -ENOENT);
	cr_assert_eq(wr_kstate_map_size(m, k.b, k.h, 100, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(wr_kstate_map_next(m, k.b, k.h, 100, &it, &p, &q), -ENOENT);
	cr_assert_eq(wr_kstate_map_remove(m, k.b, k.h, 100, &mk4), -ENOENT);
	/* Appending after expiry starts a new list; the old block is freed. */
	cr_assert_eq(wr_kstate_list_append(l, k.b, k.h, 100, &x), 0);
	cr_assert_eq(wr_kstate_list_length(l, k.b, k.h, 100, &n), 0);
	cr_assert_eq(n, 1);
	wr_kstate_get_stats(l, &st);
	cr_assert_leq(st.slab_bytes, 64);
	cr_assert(wr_kstate_is_valid(l) && wr_kstate_is_valid(m));
	wr_kstate_destroy(l);
	wr_kstate_destroy(m);
	wr_arena_destroy(a);
}

Test(keyed, ttl_step_bounded)
{
	struct wr_arena *a = mk_arena(64 << 20, 4096);
	struct weir_state_desc d = ttl_desc(WEIR_STATE_LIST,
					    WEIR_TTL_ON_CREATE_AND_WRITE);
	struct wr_kstate *s = mk(a, &d, NULL);
	struct wr_kstate_stats st;
	const uint32_t n = 10000, budget = 64;
	uint64_t x = 1, before;
	uint32_t calls = 0, w;

	for (uint32_t i = 0; i < n; i++) {
		struct key k = key_of(i);
		/* Half old (t = 0), half young (t = 500). */
		int64_t t = i % 2 ? 500 : 0;
		cr_assert_eq(wr_kstate_list_append(s, k.b, k.h, t, &x), 0);
		cr_assert_eq(wr_kstate_list_append(s, k.b, k.h, t, &x), 0);
	}
	for (uint32_t i = 0; i < 4 * n / budget; i++)
		cr_assert_leq(wr_kstate_step(s, 0, budget), budget);
	cr_assert_eq(wr_kstate_count(s), n);
	do {
		before = wr_kstate_count(s);
		w = wr_kstate_step(s, 550, budget);
		cr_assert_leq(w, budget);
		cr_assert_leq(before - wr_kstate_count(s), budget);
		calls++;
	} while (wr_kstate_count(s) > n / 2 && calls < 10 * n);
	cr_assert_eq(wr_kstate_count(s), n / 2);
	cr_assert_geq(calls, n / 2 / budget);
	wr_kstate_get_stats(s, &st);
	cr_assert_eq(st.expired_removed, n / 2);
	cr_assert(wr_kstate_is_valid(s));
	/* Everything expires; the slab gives all its bytes back. */
	for (calls = 0; wr_kstate_count(s) && calls < n; calls++)
		wr_kstate_step(s, 10000, budget);
	wr_kstate_get_stats(s, &st);
	cr_assert_eq(st.entries, 0);
	cr_assert_eq(st.slab_bytes, 0);
	cr_assert(wr_kstate_is_valid(s));
	wr_kstate_destroy(s);
	wr_arena_destroy(a);
}

/* ---- memory cap ---- */

Test(keyed, cap_fail)
{
	const size_t cap = 1u << 20;
	struct wr_arena *a = mk_arena(cap, 4096);
	struct weir_state_desc d = { .name = "sums", .kind = WEIR_STATE_LIST,
				     .value_size = 8 };
	struct wr_kstate *s = mk(a, &d, NULL);
	struct wr_kstate_stats st;
	char want[128];
	uint64_t i;
	uint32_t n;
	int err = 0;

	for (i = 0; i < 10000000 && !err; i++) {
		struct key k = key_of((uint32_t)(i % 5000));
		err = wr_kstate_list_append(s, k.b, k.h, 0, &i);
	}
	cr_assert_eq(err, -ENOMEM);
	snprintf(want, sizeof(want), "state 'sums' reached the memory cap of "
		 "%zu bytes per core", cap);
	cr_assert_str_eq(weir_last_error(), want);
	wr_kstate_get_stats(s, &st);
	cr_assert_eq(st.cap_failures, 1);
	cr_assert_eq(st.evicted, 0);
	cr_assert(wr_kstate_is_valid(s));
	/* The failed append changed nothing: every list is still whole. */
	for (uint32_t j = 0; j < 5000; j++) {
		struct key k = key_of(j);
		uint64_t first, want_len = (i - 1) / 5000 + ((i - 1) % 5000 > j);
		cr_assert_eq(wr_kstate_list_length(s, k.b, k.h, 0, &n), 0);
		cr_assert_eq(n, want_len, "key %u", j);
		cr_assert_eq(wr_kstate_list_get(s, k.b, k.h, 0, 0, &first), 0);
		cr_assert_eq(first, j);
	}
	wr_kstate_destroy(s);
	wr_arena_destroy(a);
}

/* Fills s with 64-byte values until the cap: the keys written. */
static uint32_t fill(struct wr_kstate *s, uint32_t from, int64_t now)
{
	uint32_t i;

	for (i = from;; i++) {
		struct key k = key_of(i);
		void *p;
		if (wr_kstate_value_update(s, k.b, k.h, now, &p, NULL))
			return i - from;
		memset(p, 0x77, 64);
	}
}

/* Fills list state s with 16-element lists until the cap: the keys. */
static uint32_t fill_lists(struct wr_kstate *s, int64_t now)
{
	for (uint32_t i = 0;; i++) {
		struct key k = key_of(i);
		for (uint64_t e = 0; e < 16; e++)
			if (wr_kstate_list_append(s, k.b, k.h, now, &e))
				return i;
	}
}

Test(keyed, cap_evict)
{
	struct wr_arena *a = mk_arena(2u << 20, 4096);
	struct weir_state_desc tdesc = { .name = "sessions",
		.kind = WEIR_STATE_LIST, .value_size = 8, .ttl_ms = 1000 };
	struct weir_state_desc pdesc = { .name = "totals",
		.kind = WEIR_STATE_VALUE, .value_size = 64 };
	struct wr_kstate_options o = { WR_KSTATE_FULL_EVICT, NULL };
	struct wr_kstate *t = mk(a, &tdesc, &o), *p;
	struct wr_kstate_stats st;
	uint64_t keys;
	uint32_t n1, n2;

	o.evict_group = t;
	p = mk(a, &pdesc, &o);
	/* At t = 0 nothing has expired: the policy cannot help. */
	n1 = fill_lists(t, 0);
	cr_assert_gt(n1, 1000);
	wr_kstate_get_stats(t, &st);
	keys = st.entries;
	cr_assert_eq(st.cap_failures, 1);
	cr_assert_eq(st.eviction_passes, 1);
	cr_assert_eq(st.evicted, 0);
	cr_assert(strstr(weir_last_error(), "state 'sessions' reached the "
			 "memory cap of 2097152 bytes per core"));
	/* Later, 'totals' (no TTL) fills up: the pass evicts the expired
	 * sessions of its group, their slab pages go back to the arena, and
	 * the writes go on. */
	n2 = fill(p, 1u << 24, 5000);
	/* Without the pass not even its first resize would fit. */
	cr_assert_gt(n2, 3000, "n1 %u n2 %u", n1, n2);
	wr_kstate_get_stats(t, &st);
	cr_assert_eq(st.evicted, keys);
	cr_assert_eq(st.entries, 0);
	cr_assert_eq(st.slab_bytes, 0);
	wr_kstate_get_stats(p, &st);
	cr_assert_eq(st.eviction_passes, 2, "the second pass found nothing");
	cr_assert_eq(st.cap_failures, 1);
	cr_assert_eq(st.entries, n2);
	cr_assert(wr_kstate_is_valid(t) && wr_kstate_is_valid(p));
	wr_kstate_destroy(p);
	wr_kstate_destroy(t);
	wr_arena_destroy(a);
}

/* ---- size ---- */

Test(keyed, big_lists)
{
	struct wr_arena *a = mk_arena(256u << 20, 0);
	struct weir_state_desc d = { .name = "big", .kind = WEIR_STATE_LIST,
				     .value_size = 8 };
	struct wr_kstate *s = mk(a, &d, NULL);
	struct key big = key_of(UINT32_MAX);
	const uint32_t nbig = 100000, nsmall = 20000;
	const void *view;
	uint32_t n;

	for (uint64_t i = 0; i < nbig; i++) {
		cr_assert_eq(wr_kstate_list_append(s, big.b, big.h, 0, &i), 0);
		if (i < 3 * nsmall) { /* interleaved: 3 elements per key */
			uint32_t j = (uint32_t)i % nsmall;
			struct key k = key_of(j);
			uint64_t x = j;
			cr_assert_eq(wr_kstate_list_append(s, k.b, k.h, 0, &x), 0);
		}
	}
	cr_assert_eq(wr_kstate_list_view(s, big.b, big.h, 0, &view, &n), 0);
	cr_assert_eq(n, nbig);
	for (uint64_t i = 0; i < nbig; i++)
		cr_assert_eq(((const uint64_t *)view)[i], i);
	for (uint32_t j = 0; j < nsmall; j++) {
		struct key k = key_of(j);
		uint64_t x;
		cr_assert_eq(wr_kstate_list_length(s, k.b, k.h, 0, &n), 0);
		cr_assert_eq(n, 3, "key %u: %u", j, n);
		cr_assert_eq(wr_kstate_list_get(s, k.b, k.h, 0, n - 1, &x), 0);
		cr_assert_eq(x, j);
	}
	cr_assert(wr_kstate_is_valid(s));
	wr_kstate_destroy(s);
	wr_arena_destroy(a);
}

Test(keyed, growth_and_step)
{
	struct wr_arena *a = mk_arena(128u << 20, 0);
	struct weir_state_desc d = { .name = "g", .kind = WEIR_STATE_VALUE,
				     .value_size = 8 };
	struct wr_kstate *s = mk(a, &d, NULL);
	struct wr_kstate_stats st0, st1;
	uint32_t i, work = 0;

	/* Insert until a migration is under way, then let step finish it. */
	for (i = 0; i < 100000; i++) {
		struct key k = key_of(i);
		void *p;
		cr_assert_eq(wr_kstate_value_update(s, k.b, k.h, 0, &p, NULL), 0);
		*(uint64_t *)p = i;
	}
	wr_kstate_get_stats(s, &st0);
	for (int c = 0; c < 100000; c++) {
		uint32_t w = wr_kstate_step(s, 0, 32);
		cr_assert_leq(w, 32 * 8); /* zeroing counts 8 slots per unit */
		if (!w)
			break;
		work += w;
	}
	wr_kstate_get_stats(s, &st1);
	cr_assert_geq(st1.table_slots_moved, st0.table_slots_moved);
	cr_assert_eq(st1.entries, 100000);
	cr_assert(wr_kstate_is_valid(s));
	for (i = 0; i < 100000; i++) {
		struct key k = key_of(i);
		void *p;
		cr_assert_eq(wr_kstate_value_get(s, k.b, k.h, 0, &p), 0);
		cr_assert_eq(*(uint64_t *)p, i);
	}
	wr_kstate_destroy(s);
	wr_arena_destroy(a);
}

/* ---- copy-on-write ---- */

struct snap_copy {
	uint32_t n;
	uint32_t *page;
	uint8_t *bytes;
};

static void snap_save(struct wr_arena *a, struct snap_copy *c)
{
	c->page = malloc(a->pages_total * sizeof(uint32_t));
	c->bytes = malloc((size_t)a->pages_total * a->page_size);
	c->n = 0;
	for (uint32_t p = 0; p < a->pages_total; p++)
		if (wr_arena_snapshot_contains(a, p)) {
			memcpy(c->bytes + (size_t)c->n * a->page_size,
			       wr_arena_snapshot_page(a, p), a->page_size);
			c->page[c->n++] = p;
		}
}

static void snap_check(struct wr_arena *a, struct snap_copy *c)
{
	for (uint32_t i = 0; i < c->n; i++)
		cr_assert_eq(memcmp(c->bytes + (size_t)i * a->page_size,
				    wr_arena_snapshot_page(a, c->page[i]),
				    a->page_size), 0,
			     "snapshot page %u changed", c->page[i]);
	free(c->page);
	free(c->bytes);
}

/* Random writes of every kind on keys [0, nk). */
static void churn(struct wr_kstate *v, struct wr_kstate *l,
		  struct wr_kstate *m, uint32_t ops, uint32_t nk, int64_t now)
{
	for (uint32_t op = 0; op < ops; op++) {
		struct key k = key_of(rnd(nk));
		uint64_t x = op;
		uint32_t mk4 = rnd(64);
		void *p;

		switch (rnd(8)) {
		case 0: cr_assert_eq(wr_kstate_value_update(v, k.b, k.h, now,
							    &p, NULL), 0);
			*(uint64_t *)p += 1; break;
		case 1: cr_assert_eq(wr_kstate_list_append(l, k.b, k.h, now,
							   &x), 0); break;
		case 2: cr_assert_eq(wr_kstate_map_put(m, k.b, k.h, now, &mk4,
						       &x), 0); break;
		case 3: wr_kstate_map_remove(m, k.b, k.h, now, &mk4); break;
		case 4: cr_assert_eq(wr_kstate_list_replace(l, k.b, k.h, now,
							    &x, 1), 0); break;
		case 5: cr_assert_eq(wr_kstate_clear(rnd(2) ? l : m, k.b, k.h),
				     0); break;
		case 6: cr_assert_eq(wr_kstate_clear(v, k.b, k.h), 0); break;
		default:
			wr_kstate_step(rnd(2) ? l : m, now, 16);
		}
	}
}

Test(keyed, cow_snapshot_unchanged)
{
	struct wr_arena *a = mk_arena(256u << 20, 4096);
	struct weir_state_desc vd = { .name = "v", .kind = WEIR_STATE_VALUE,
				      .value_size = 8, .ttl_ms = 50 };
	struct weir_state_desc ld = { .name = "l", .kind = WEIR_STATE_LIST,
				      .value_size = 8, .ttl_ms = 50 };
	struct weir_state_desc md = { .name = "m", .kind = WEIR_STATE_MAP,
				      .value_size = 8, .map_key_size = 4,
				      .ttl_ms = 50 };
	struct wr_kstate *v = mk(a, &vd, NULL), *l = mk(a, &ld, NULL),
			 *m = mk(a, &md, NULL);
	struct snap_copy c;

	for (int round = 0; round < 4; round++) {
		churn(v, l, m, 30000, 3000, round * 40);
		cr_assert_eq(wr_arena_snapshot_begin(a, NULL), 0);
		snap_save(a, &c);
		cr_assert_gt(c.n, 10);
		/* Time moves on: TTL cleanup frees blocks during the snapshot. */
		churn(v, l, m, 30000, 5000, round * 40 + 30);
		snap_check(a, &c);
		cr_assert(wr_arena_is_valid(a));
		wr_arena_snapshot_end(a);
		cr_assert(wr_kstate_is_valid(v) && wr_kstate_is_valid(l) &&
			  wr_kstate_is_valid(m));
	}
	wr_kstate_destroy(v);
	wr_kstate_destroy(l);
	wr_kstate_destroy(m);
	wr_arena_destroy(a);
}

Test(keyed, destroy_returns_pages)
{
	struct wr_arena *a = mk_arena(64u << 20, 4096);
	struct weir_state_desc ld = { .name = "l", .kind = WEIR_STATE_LIST,
				      .value_size = 8 };
	struct weir_state_desc md = { .name = "m", .kind = WEIR_STATE_MAP,
				      .value_size = 8, .map_key_size = 4 };
	struct weir_state_desc vd = { .name = "v", .kind = WEIR_STATE_VALUE,
				      .value_size = 8 };
	struct wr_kstate *v = mk(a, &vd, NULL), *l = mk(a, &ld, NULL),
			 *m = mk(a, &md, NULL);
	struct wr_arena_stats st;

	churn(v, l, m, 50000, 4000, 0);
	wr_kstate_destroy(v);
	wr_kstate_destroy(l);
	wr_kstate_destroy(m);
	wr_arena_get_stats(a, &st);
	cr_assert_eq(st.pages_used, 0);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);
}
