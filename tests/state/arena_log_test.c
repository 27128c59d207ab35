/*
 * tests/state/arena_log_test.c — the arena's changelog (state/arena_log.c).
 *
 * Every test keeps a *replica*: a second arena that received the live
 * pages at a "materialisation" (as a page checkpoint's restore would), then
 * replays each log segment the live arena marks.  The replica must then
 * equal the live arena: the same live pages, and the same bytes in them
 * (the tests define every byte they hand out), or — for the real state
 * code, whose unwritten bytes are don't-care — the same contents read
 * through the state's own API from headers saved at the mark.
 *
 * TEST PLAN
 *   random:    random alloc / free / write / zero through the barriers,
 *              seals at random tick ends, a mark + replay + byte compare
 *              every few hundred operations; a 2 MiB ring wraps many times
 *              (segments released after each replay), chunk padding;
 *              half the writes aligned and slot-sized (<= 64 bytes), as
 *              the table's are; again with ticks of ~300 operations, so
 *              one seal takes hundreds of entries and crosses chunk ends.
 *   split:     wr_arena_log_split of those random logs, with every share
 *              0..8 eighths: each WRITE and ZERO in exactly the list its
 *              page's number says, ALLOC and FREE (flagged) in both, PADs
 *              in neither, in log order; with one list (eighths 8) the
 *              list applied equals wr_arena_log_apply.
 *   dedup:     one range touched 100 times in a tick is one entry.
 *   pending:   more distinct ranges than the pending list holds in one
 *              tick breaks the log; mark fails (-ENOSPC); resume restarts
 *              it empty and later segments replay again.
 *   ring full: without releases the ring fills: broken, mark fails.
 *   off:       without the log no noting happens (log NULL).
 *   bad:       apply rejects unknown kinds, ranges across a page, pages past
 *              the arena, ALLOC of a live page, FREE of a free one, with
 *              the entry's offset; check() finds the same structurally.
 *   table:     a wr_table (slab-backed while small, then page runs, growth
 *              and migration) under random upserts and removes; at each
 *              mark the header is saved; replayed replica loaded from it
 *              holds exactly the live entries and values.
 *   kstate:    LIST and MAP keyed states (slab blocks that grow, move and
 *              are freed) under random appends, replaces, puts, removes
 *              and clears; replica states loaded from images equal the
 *              live ones key by key.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state/arena.h"
#include "state/keyed.h"
#include "state/table.h"
#include "../rng.h"

#define PS 4096u
#define PAGES 512u
#define RING (2u << 20)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) { return t_xorshift(&rng); }

static struct wr_arena *mk(uint32_t ps, uint32_t pages)
{
	struct wr_arena_config cfg = { (size_t)pages * ps, ps, 0 };
	struct wr_arena *a = NULL;

	cr_assert_eq(wr_arena_create(&cfg, &a), 0);
	return a;
}

/* A replica of a's live pages, as a page checkpoint restores them. */
static struct wr_arena *replica_of(struct wr_arena *a)
{
	struct wr_arena *r = mk(a->page_size, a->pages_total);
	struct wr_arena_iter it = { 0 };

	while (wr_arena_pages_written_since(a, 0, &it))
		cr_assert_eq(wr_arena_restore_page(r, it.page,
				wr_arena_page_ptr(a, it.page)), 0);
	return r;
}

/* Replays a's sealed bytes [from, to) onto r, chunk by chunk. */
static void replay(struct wr_arena *a, struct wr_arena *r, uint64_t from,
		   uint64_t to)
{
	while (from < to) {
		uint32_t len;
		size_t bad = 0;
		const void *p = wr_arena_log_span(a, from, to, &len);
		cr_assert_gt(len, 0);
		cr_assert_eq(wr_arena_log_check(p, len, a->page_size, &bad), 0,
			     "malformed entry at %zu", bad);
		cr_assert_eq(wr_arena_log_apply(r, p, len, &bad), 0,
			     "apply failed at %zu of a %u-byte span", bad, len);
		from += len;
	}
}

/* Live pages and their bytes equal (no snapshot pending in a). */
static void assert_same_pages(struct wr_arena *a, struct wr_arena *r)
{
	struct wr_arena_iter ia = { 0 }, ir = { 0 };

	for (;;) {
		bool ga = wr_arena_pages_written_since(a, 0, &ia);
		bool gr = wr_arena_pages_written_since(r, 0, &ir);
		cr_assert_eq(ga, gr, "live page sets differ in size");
		if (!ga)
			break;
		cr_assert_eq(ia.page, ir.page, "live page %u vs %u", ia.page,
			     ir.page);
		cr_assert(memcmp(wr_arena_page_ptr(a, ia.page),
				 wr_arena_page_ptr(r, ir.page), a->page_size)
			  == 0, "page %u differs after replay", ia.page);
	}
	cr_assert(wr_arena_is_valid(r));
}

/* Starts the log at a materialisation: the replica and the position. */
static struct wr_arena *materialise(struct wr_arena *a, uint64_t *pos)
{
	uint64_t p;

	if (wr_arena_log_mark(a, &p) != 0)
		p = wr_arena_log_resume(a);
	wr_arena_log_release(a, p);
	*pos = p;
	return replica_of(a);
}

/* ---- random byte-level operations ---------------------------------- */

struct run {
	uint32_t first, n;
};

struct model {
	struct run runs[64];
	uint32_t nruns;
};

static void op_alloc(struct wr_arena *a, struct model *m)
{
	uint32_t n = 1 + (uint32_t)(rnd() % 3), first;
	bool zeroed;

	if (m->nruns == 64 || wr_arena_alloc(a, n, &first, &zeroed) != 0)
		return;
	if (!zeroed) {	/* define every byte, as the state code does */
		uint8_t *p = wr_arena_page_ptr(a, first);
		for (uint32_t k = 0; k < n; k++) {
			cr_assert_eq(wr_arena_touch_zero(a, p + k * a->page_size,
							 a->page_size), 0);
			memset(p + k * a->page_size, 0, a->page_size);
		}
	}
	m->runs[m->nruns++] = (struct run){ first, n };
}

static void op_free(struct wr_arena *a, struct model *m)
{
	uint32_t i = (uint32_t)(rnd() % m->nruns);

	wr_arena_free(a, m->runs[i].first, m->runs[i].n);
	m->runs[i] = m->runs[--m->nruns];
}

/* A random range of a random run: written, or zeroed. */
static void op_write(struct wr_arena *a, struct model *m, bool zero)
{
	const struct run *r = &m->runs[rnd() % m->nruns];
	uint64_t bytes = (uint64_t)r->n * a->page_size;
	uint64_t off = rnd() % bytes, len = 1 + rnd() % 300;
	uint8_t *p;

	if (rnd() % 2 == 0) {	/* a table value or slot: aligned, <= 64 */
		off &= ~7ull;	/* half of them 8 bytes: PAIRs */
		len = rnd() % 2 ? 8 : 8 * (1 + rnd() % 8);
	}
	if (rnd() % 16 == 0)
		len = 1 + rnd() % (2 * a->page_size);	/* across pages */
	if (off + len > bytes)
		len = bytes - off;
	p = (uint8_t *)wr_arena_page_ptr(a, r->first) + off;
	if (zero) {
		cr_assert_eq(wr_arena_touch_zero(a, p, len), 0);
		memset(p, 0, len);
		return;
	}
	cr_assert_eq(wr_arena_touch_range(a, p, len), 0);
	for (uint64_t k = 0; k < len; k++)
		p[k] = (uint8_t)rnd();
}

static uint32_t seal_every = 8;	/* ops per tick, on average */

static void random_op(struct wr_arena *a, struct model *m)
{
	uint64_t d = rnd() % 100;

	if (m->nruns == 0 || d < 8)
		op_alloc(a, m);
	else if (d < 14)
		op_free(a, m);
	else
		op_write(a, m, d < 20);
	if (rnd() % seal_every == 0)
		wr_arena_log_seal(a);	/* a tick ends */
}

static void random_ops_replay(void)
{
	struct wr_arena *a = mk(PS, PAGES), *r;
	struct model m = { 0 };
	uint64_t from, to;

	cr_assert_eq(wr_arena_log_enable(a, RING, 4096), 0);
	for (int i = 0; i < 50; i++)
		random_op(a, &m);
	r = materialise(a, &from);
	for (int round = 0; round < 200; round++) {
		int n = 1 + (int)(rnd() % 600);
		for (int i = 0; i < n; i++)
			random_op(a, &m);
		cr_assert_eq(wr_arena_log_mark(a, &to), 0, "log broke");
		cr_assert_eq(to % 4096, 0);
		replay(a, r, from, to);
		assert_same_pages(a, r);
		wr_arena_log_release(a, to);
		from = to;
	}
	cr_assert_gt(a->log->head, 4ull * RING, "the ring did not wrap");
	cr_assert_eq(a->log->breaks, 0);
	wr_arena_destroy(r);
	wr_arena_destroy(a);
}

Test(arena_log, random_ops_replay)
{
	random_ops_replay();
}

/* Ticks of ~300 operations: one seal takes hundreds of entries. */
Test(arena_log, random_ops_replay_long_ticks)
{
	seal_every = 300;
	random_ops_replay();
}

static size_t pairs;	/* PAIR entries expect_split walked */

/* The lists a split of [p, p + len) must give, by a plain walk. */
static void expect_split(const uint8_t *p, uint32_t len, unsigned shift,
			 unsigned eighths, const uint32_t *l0, size_t n0,
			 const uint32_t *l1, size_t n1)
{
	size_t k0 = 0, k1 = 0;

	for (uint32_t at = 0; at < len;) {
		uint64_t w;
		memcpy(&w, p + at, 8);
		unsigned kind = (unsigned)(w >> 61);
		uint64_t wl = (w >> WR_ARENA_LOG_OFF_BITS) &
			      ((1ull << WR_ARENA_LOG_LEN_BITS) - 1);
		uint64_t off = w & ((1ull << WR_ARENA_LOG_OFF_BITS) - 1);
		bool meta = kind == WR_ARENA_LOG_ALLOC ||
			    kind == WR_ARENA_LOG_ALLOC_ZEROED ||
			    kind == WR_ARENA_LOG_FREE;
		bool pair = kind == WR_ARENA_LOG_PAIR;
		for (unsigned h = 0; h < (pair ? 2u : 1u); h++) {
			if (pair)	/* (a / 8) << 30 | b / 8 */
				off = ((w >> (h ? 0 : 30)) & ((1u << 30) - 1)) << 3;
			bool first = ((off >> shift) & 7) < eighths;
			uint32_t v = at | (meta ? WR_ARENA_LOG_META : 0) |
				     (h ? WR_ARENA_LOG_HALF : 0);
			if (meta || (kind != WR_ARENA_LOG_PAD && first)) {
				cr_assert_lt(k0, n0, "list 0 short at %u", at);
				cr_assert_eq(l0[k0++], v, "list 0 at %u", at);
			}
			if (l1 != NULL &&
			    (meta || (kind != WR_ARENA_LOG_PAD && !first))) {
				cr_assert_lt(k1, n1, "list 1 short at %u", at);
				cr_assert_eq(l1[k1++], v, "list 1 at %u", at);
			}
		}
		pairs += pair;
		at += pair ? 24 : 8 + (kind == WR_ARENA_LOG_WRITE ||
				       kind == WR_ARENA_LOG_PAD ?
				       (uint32_t)((wl + 7) & ~7ull) : 0);
	}
	cr_assert_eq(k0, n0, "list 0 too long");
	cr_assert_eq(k1, l1 != NULL ? n1 : 0, "list 1 too long");
}

Test(arena_log, split_lists_each_entry_once_in_order)
{
	struct wr_arena *a = mk(PS, PAGES), *r;
	struct model m = { 0 };
	uint32_t *l0 = malloc(WR_ARENA_LOG_CHUNK / 2);
	uint32_t *l1 = malloc(WR_ARENA_LOG_CHUNK / 2);
	uint64_t from, to;
	size_t spans = 0;

	cr_assert_eq(wr_arena_log_enable(a, RING, 4096), 0);
	for (int i = 0; i < 50; i++)
		random_op(a, &m);
	r = materialise(a, &from);
	for (int round = 0; round < 40; round++) {
		for (int i = 0, n = 1 + (int)(rnd() % 600); i < n; i++)
			random_op(a, &m);
		cr_assert_eq(wr_arena_log_mark(a, &to), 0);
		for (uint64_t at = from; at < to; spans++) {
			uint32_t len;
			size_t n[2], bad;
			const uint8_t *p = wr_arena_log_span(a, at, to, &len);
			unsigned e = (unsigned)(rnd() % 9);
			struct wr_arena_log_split sp = { { l0, e < 8 ? l1 : NULL },
							 e };
			cr_assert_eq(wr_arena_log_split(r, p, len, &sp, n, &bad),
				     0);
			expect_split(p, len, r->page_shift, e, l0, n[0],
				     sp.list[1], n[1]);
			/* One list of everything applies as apply does. */
			sp = (struct wr_arena_log_split){ { l0, NULL }, 8 };
			cr_assert_eq(wr_arena_log_split(r, p, len, &sp, n, &bad),
				     0);
			cr_assert_eq(wr_arena_log_apply_list(r, p, l0, n[0], NULL,
							     &bad), 0);
			at += len;
		}
		assert_same_pages(a, r);
		wr_arena_log_release(a, to);
		from = to;
	}
	cr_assert_gt(spans, 40);
	cr_assert_gt(pairs, 100, "the random logs hold PAIRs");
	free(l0);
	free(l1);
	wr_arena_destroy(r);
	wr_arena_destroy(a);
}

Test(arena_log, dedup_in_a_tick)
{
	struct wr_arena *a = mk(PS, 16);
	uint32_t first;
	uint64_t from, to;

	cr_assert_eq(wr_arena_log_enable(a, RING, 64), 0);
	cr_assert_eq(wr_arena_alloc(a, 1, &first, NULL), 0);
	struct wr_arena *r = materialise(a, &from);
	uint64_t *v = wr_arena_page_ptr(a, first);
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(wr_arena_touch_range(a, v, 8), 0);
		(*v)++;
	}
	cr_assert_eq(a->log->npend, 1);
	uint64_t before = a->log->entries;
	cr_assert_eq(wr_arena_log_mark(a, &to), 0);
	cr_assert_eq(a->log->entries - before, 1);
	replay(a, r, from, to);
	cr_assert_eq(*(uint64_t *)wr_arena_page_ptr(r, first), 100);
	wr_arena_destroy(r);
	wr_arena_destroy(a);
}

Test(arena_log, pending_overflow_breaks_then_resumes)
{
	struct wr_arena *a = mk(PS, 16);
	uint32_t first;
	uint64_t from, to;

	cr_assert_eq(wr_arena_log_enable(a, RING, 4), 0);
	cr_assert_eq(wr_arena_alloc(a, 1, &first, NULL), 0);
	struct wr_arena *r = materialise(a, &from);
	uint8_t *p = wr_arena_page_ptr(a, first);
	for (int i = 0; i < 5; i++) {	/* 5 distinct ranges, room for 4 */
		cr_assert_eq(wr_arena_touch_range(a, p + 64 * i, 8), 0);
		p[64 * i] = 1;
	}
	cr_assert(a->log->broken);
	cr_assert_eq(wr_arena_log_mark(a, &to), -ENOSPC);
	cr_assert_eq(a->log->breaks, 1);
	wr_arena_destroy(r);
	/* A page snapshot restarts it: segments replay again. */
	r = materialise(a, &from);
	cr_assert_not(a->log->broken);
	cr_assert_eq(wr_arena_touch_range(a, p + 8, 8), 0);
	p[8] = 7;
	cr_assert_eq(wr_arena_log_mark(a, &to), 0);
	replay(a, r, from, to);
	assert_same_pages(a, r);
	wr_arena_destroy(r);
	wr_arena_destroy(a);
}

Test(arena_log, ring_full_breaks)
{
	struct wr_arena *a = mk(PS, 16);
	uint32_t first;
	uint64_t from, to;
	int marks = 0;

	cr_assert_eq(wr_arena_log_enable(a, RING, 64), 0);
	cr_assert_eq(wr_arena_alloc(a, 1, &first, NULL), 0);
	wr_arena_destroy(materialise(a, &from));
	uint8_t *p = wr_arena_page_ptr(a, first);
	/* 4 KiB entries, nothing released: 2 MiB hold fewer than 520. */
	for (int i = 0; i < 600 && !a->log->broken; i++) {
		cr_assert_eq(wr_arena_touch_range(a, p, PS), 0);
		p[0]++;
		wr_arena_log_seal(a);
		marks++;
	}
	cr_assert(a->log->broken);
	cr_assert_lt(marks, 520);
	cr_assert_eq(wr_arena_log_mark(a, &to), -ENOSPC);
	wr_arena_destroy(a);
}

Test(arena_log, off_notes_nothing)
{
	struct wr_arena *a = mk(PS, 16);
	uint32_t first;

	cr_assert_eq(wr_arena_alloc(a, 1, &first, NULL), 0);
	cr_assert_eq(wr_arena_touch_range(a, wr_arena_page_ptr(a, first), 8),
		     0);
	cr_assert_null(a->log);
	wr_arena_log_seal(a);	/* no-op */
	uint64_t pos;
	cr_assert_eq(wr_arena_log_mark(a, &pos), -ENOSPC);
	cr_assert_eq(wr_arena_log_enable(a, 1000, 4), -EINVAL);
	cr_assert_eq(wr_arena_log_enable(a, RING, 4), 0);
	cr_assert_eq(wr_arena_log_enable(a, RING, 4), -EBUSY);
	wr_arena_destroy(a);
}

static void expect_bad(struct wr_arena *r, const uint64_t *w, size_t n,
		       size_t want_off)
{
	size_t bad = 99;

	cr_assert_eq(wr_arena_log_apply(r, w, n * 8, &bad), -EBADMSG);
	cr_assert_eq(bad, want_off);
}

Test(arena_log, apply_rejects_bad_entries)
{
	struct wr_arena *r = mk(PS, 8);
	uint64_t pad = wr_arena_log_word(WR_ARENA_LOG_PAD, 0, 0);
	uint64_t w[4];
	size_t bad;

	w[0] = pad, w[1] = 7ull << 61;			/* unknown kind */
	expect_bad(r, w, 2, 8);
	w[1] = wr_arena_log_word(WR_ARENA_LOG_ZERO, 16, PS - 8);
	expect_bad(r, w, 2, 8);				/* across a page */
	w[1] = wr_arena_log_word(WR_ARENA_LOG_ZERO, 8, 8ull * PS);
	expect_bad(r, w, 2, 8);				/* past the arena */
	w[1] = wr_arena_log_word(WR_ARENA_LOG_WRITE, 16, 0);
	expect_bad(r, w, 2, 8);				/* payload cut */
	w[1] = wr_arena_log_word(WR_ARENA_LOG_FREE, 1, 0);
	expect_bad(r, w, 2, 8);				/* free of a free page */
	w[1] = wr_arena_log_word(WR_ARENA_LOG_ALLOC, 2, PS);
	w[2] = wr_arena_log_word(WR_ARENA_LOG_ALLOC, 1, 2 * PS);
	expect_bad(r, w, 3, 16);			/* page 2 is live */
	cr_assert_eq(wr_arena_log_check(w, 8, PS, &bad), 0);
	w[3] = 7ull << 61;
	cr_assert_eq(wr_arena_log_check(w, 32, PS, &bad), -EBADMSG);
	cr_assert_eq(bad, 24);
	wr_arena_destroy(r);
}

Test(arena_log, apply_rejects_bad_pairs)
{
	struct wr_arena *r = mk(PS, 8);
	uint64_t w[4] = { wr_arena_log_word(WR_ARENA_LOG_PAD, 0, 0) };
	size_t bad;

	w[1] = wr_arena_log_pair_word(0, 8);
	expect_bad(r, w, 3, 8);				/* payload cut */
	cr_assert_eq(wr_arena_log_check(w, 32, PS, &bad), 0);
	w[1] = wr_arena_log_pair_word(8, 8ull * PS);
	expect_bad(r, w, 4, 8);				/* b past the arena */
	w[1] = wr_arena_log_pair_word(8ull * PS, 0);
	expect_bad(r, w, 4, 8);				/* a past the arena */
	w[1] = wr_arena_log_pair_word(0, 8) | 1ull << 60;
	expect_bad(r, w, 4, 8);				/* the spare bit */
	cr_assert_eq(wr_arena_log_check(w, 32, PS, &bad), -EBADMSG);
	cr_assert_eq(bad, 8);
	wr_arena_destroy(r);
}

/* 8-byte writes in one tick: 12 bytes each when paired, in order (the
 * same word twice in a row is one entry), 16 when one is at or past 8 GiB
 * (a PAIR's offsets are 30-bit word numbers); the replica equals. */
Test(arena_log, pairs_of_8_byte_writes)
{
	const uint32_t ps = 1u << 16, hi = (uint32_t)((8ull << 30) / ps);
	struct wr_arena *a = mk(ps, hi + 2), *r;
	uint64_t from, to, bytes;
	uint8_t *lo_p, *hi_p, *zero = calloc(1, ps);

	cr_assert_eq(wr_arena_restore_page(a, 0, zero), 0);
	cr_assert_eq(wr_arena_restore_page(a, hi, zero), 0);
	free(zero);
	lo_p = wr_arena_page_ptr(a, 0);
	hi_p = wr_arena_page_ptr(a, hi);
	cr_assert_eq(wr_arena_log_enable(a, RING, 4096), 0);
	r = materialise(a, &from);
	bytes = a->log->bytes;
	for (uint32_t i = 0; i < 1000; i++) {	/* 1000 distinct: 500 PAIRs */
		uint64_t v = rnd(), *p = (uint64_t *)(void *)lo_p +
					 (i * 7919u) % (ps / 8);
		cr_assert_eq(wr_arena_touch_range(a, p, 8), 0);
		*p = v;
	}
	wr_arena_log_seal(a);
	cr_assert_eq(a->log->bytes - bytes, 12000);
	bytes = a->log->bytes;
	for (uint32_t i = 0; i < 100; i++) {	/* low, high, low, ... */
		uint64_t *p = (uint64_t *)(void *)(i % 2 ? hi_p : lo_p) + i;
		cr_assert_eq(wr_arena_touch_range(a, p, 8), 0);
		*p = rnd();
	}
	wr_arena_log_seal(a);
	cr_assert_eq(a->log->bytes - bytes, 1600, "no PAIR reaches 8 GiB");
	cr_assert_eq(wr_arena_log_mark(a, &to), 0);
	replay(a, r, from, to);
	cr_assert(memcmp(lo_p, wr_arena_page_ptr(r, 0), ps) == 0);
	cr_assert(memcmp(hi_p, wr_arena_page_ptr(r, hi), ps) == 0);
	wr_arena_destroy(r);
	wr_arena_destroy(a);
}

/* ---- the real state code ------------------------------------------- */

#define KEYS 3000u

static uint64_t key_hash(uint64_t k)
{
	return wr_table_hash(&k, 8);
}

static void table_ops(struct wr_table *t, struct wr_arena *a, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t k = rnd() % KEYS;
		if (rnd() % 5 == 0) {
			(void)wr_table_remove(t, &k, key_hash(k));
		} else {
			void *v;
			bool ins;
			cr_assert_eq(wr_table_upsert(t, &k, key_hash(k), &v,
						     &ins), 0);
			*(uint64_t *)v += k + 1;
		}
		if (rnd() % 16 == 0)
			wr_arena_log_seal(a);
	}
}

/* Every live entry is in the replica with its value, and counts agree. */
static void assert_same_table(struct wr_table *t, struct wr_table *rt)
{
	struct wr_table_iter it = { 0 };
	const void *k;
	void *v;

	cr_assert_eq(wr_table_count(t), wr_table_count(rt));
	while (wr_table_next(t, &it, &k, &v)) {
		const void *rv = wr_table_get(rt, k, wr_table_hash(k, 8));
		cr_assert_not_null(rv, "key %llu lost in the replay",
				   (unsigned long long)*(const uint64_t *)k);
		cr_assert_eq(*(const uint64_t *)rv, *(uint64_t *)v);
	}
	cr_assert(wr_table_is_valid(rt));
}

Test(arena_log, table_replays_to_the_same_entries)
{
	struct wr_arena *a = mk(PS, 4096);
	struct wr_slab slab;
	struct wr_table_config tc = { 8, 8, 64, &slab };
	struct wr_table *t;
	uint64_t from, to;

	wr_slab_init(&slab, a);
	cr_assert_eq(wr_arena_log_enable(a, 8u << 20, 1 << 16), 0);
	cr_assert_eq(wr_table_create(a, &tc, &t), 0);
	table_ops(t, a, 30);
	struct wr_arena *r = materialise(a, &from);
	for (int round = 0; round < 40; round++) {
		struct wr_table_image img;
		struct wr_slab_image simg;
		struct wr_slab rslab;
		struct wr_table *rt;
		table_ops(t, a, 1 + (int)(rnd() % 400));
		cr_assert_eq(wr_arena_log_mark(a, &to), 0);
		wr_table_save(t, &img);
		wr_slab_save(&slab, &simg);
		replay(a, r, from, to);
		/* Loaded on a copy: destroying a table frees its pages. */
		struct wr_arena *rr = replica_of(r);
		cr_assert_eq(wr_slab_load(&rslab, rr, &simg), 0);
		cr_assert_eq(wr_table_load(rr, &rslab, &img, &rt), 0);
		assert_same_table(t, rt);
		wr_table_destroy(rt);
		wr_arena_destroy(rr);
		wr_arena_log_release(a, to);
		from = to;
	}
	wr_arena_destroy(r);
	wr_table_destroy(t);
	wr_arena_destroy(a);
}

/* LIST and MAP states of one arena: random appends, replaces, puts,
 * removes and clears, so slab blocks grow, move and are freed. */
static const struct weir_state_desc list_d = {
	.name = "list", .kind = WEIR_STATE_LIST, .value_size = 12 };
static const struct weir_state_desc map_d = {
	.name = "map", .kind = WEIR_STATE_MAP, .value_size = 8,
	.map_key_size = 4 };

#define SKEYS 400u

static void kstate_op(struct wr_kstate *ls, struct wr_kstate *ms)
{
	uint64_t k = rnd() % SKEYS, h = key_hash(k), d = rnd() % 100;
	uint32_t mk = (uint32_t)(rnd() % 64);
	uint8_t elem[12] = { (uint8_t)k, (uint8_t)d };
	uint64_t val = rnd();

	if (d < 40) {
		cr_assert_eq(wr_kstate_list_append(ls, &k, h, 0, elem), 0);
	} else if (d < 45) {
		uint8_t many[12 * 5];
		memset(many, (int)d, sizeof(many));
		cr_assert_eq(wr_kstate_list_replace(ls, &k, h, 0, many,
						    (uint32_t)(rnd() % 6)), 0);
	} else if (d < 85) {
		cr_assert_eq(wr_kstate_map_put(ms, &k, h, 0, &mk, &val), 0);
	} else if (d < 95) {
		(void)wr_kstate_map_remove(ms, &k, h, 0, &mk);
	} else {
		cr_assert_eq(wr_kstate_clear(rnd() % 2 ? ls : ms, &k, h), 0);
	}
}

static void assert_same_lists(struct wr_kstate *a, struct wr_kstate *b)
{
	for (uint64_t k = 0; k < SKEYS; k++) {
		const void *ea, *eb;
		uint32_t na, nb;
		cr_assert_eq(wr_kstate_list_view(a, &k, key_hash(k), 0, &ea,
						 &na), 0);
		cr_assert_eq(wr_kstate_list_view(b, &k, key_hash(k), 0, &eb,
						 &nb), 0);
		cr_assert_eq(na, nb, "key %llu: list of %u vs %u",
			     (unsigned long long)k, na, nb);
		cr_assert(na == 0 || memcmp(ea, eb, (size_t)na * 12) == 0);
	}
}

static void assert_same_maps(struct wr_kstate *a, struct wr_kstate *b)
{
	for (uint64_t k = 0; k < SKEYS; k++) {
		struct wr_kstate_map_iter it = { 0 };
		const void *mk, *va, *vb;
		uint32_t na = 0, nb = 0;
		(void)wr_kstate_map_size(a, &k, key_hash(k), 0, &na);
		(void)wr_kstate_map_size(b, &k, key_hash(k), 0, &nb);
		cr_assert_eq(na, nb, "key %llu: map of %u vs %u",
			     (unsigned long long)k, na, nb);
		while (wr_kstate_map_next(a, &k, key_hash(k), 0, &it, &mk,
					  &va) == 0) {
			cr_assert_eq(wr_kstate_map_get(b, &k, key_hash(k), 0,
						       mk, &vb), 0);
			cr_assert_eq(memcmp(va, vb, 8), 0);
		}
	}
}

/* Loads both states from their images on a copy of the replica r. */
static void check_kstates(struct wr_arena *r, struct wr_kstate *ls,
			  struct wr_kstate *ms)
{
	struct wr_kstate_image li, mi;
	struct wr_kstate *rl, *rm;
	struct wr_arena *rr = replica_of(r);

	wr_kstate_save(ls, &li);
	wr_kstate_save(ms, &mi);
	cr_assert_eq(wr_kstate_load(rr, &list_d, 8, NULL, &li, &rl), 0);
	cr_assert_eq(wr_kstate_load(rr, &map_d, 8, NULL, &mi, &rm), 0);
	cr_assert(wr_kstate_is_valid(rl) && wr_kstate_is_valid(rm));
	assert_same_lists(ls, rl);
	assert_same_maps(ms, rm);
	wr_kstate_destroy(rl);
	wr_kstate_destroy(rm);
	wr_arena_destroy(rr);
}

Test(arena_log, kstates_replay_to_the_same_lists_and_maps)
{
	struct wr_arena *a = mk(PS, 4096);
	struct wr_kstate *ls, *ms;
	uint64_t from, to;

	cr_assert_eq(wr_arena_log_enable(a, 16u << 20, 1 << 16), 0);
	cr_assert_eq(wr_kstate_create(a, &list_d, 8, NULL, &ls), 0);
	cr_assert_eq(wr_kstate_create(a, &map_d, 8, NULL, &ms), 0);
	for (int i = 0; i < 200; i++)
		kstate_op(ls, ms);
	struct wr_arena *r = materialise(a, &from);
	for (int round = 0; round < 30; round++) {
		int n = 1 + (int)(rnd() % 800);
		for (int i = 0; i < n; i++) {
			kstate_op(ls, ms);
			if (rnd() % 16 == 0)
				wr_arena_log_seal(a);
		}
		cr_assert_eq(wr_arena_log_mark(a, &to), 0);
		replay(a, r, from, to);
		check_kstates(r, ls, ms);
		wr_arena_log_release(a, to);
		from = to;
	}
	wr_kstate_destroy(ls);
	wr_kstate_destroy(ms);
	wr_arena_destroy(r);
	wr_arena_destroy(a);
}
