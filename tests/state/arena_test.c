/*
 * tests/state/arena_test.c — the per-core page arena.
 *
 * TEST PLAN
 *   config:   bad page sizes, caps and reserves fail with -EINVAL + message.
 *   alloc:    runs are disjoint, page-aligned, writable; free makes pages
 *             reusable; first fit reuses a freed hole; `zeroed` is true only
 *             for never-used pages.
 *   cap:      allocating past cap - reserve fails with -ENOMEM and a message
 *             naming the cap; fragmentation without a long enough run fails.
 *   random:   random alloc/free sequence against a model of owned runs,
 *             validator after every step, no overlap.
 *   cow:      after snapshot_begin, writes through touch change the live page
 *             while snapshot_page keeps the pre-snapshot bytes; untouched pages
 *             are not copied; a second touch does not copy again; snapshot_end
 *             releases shadows; a second begin while pending is -EBUSY.
 *   cow free: a page freed during a snapshot keeps its bytes until
 *             snapshot_end (deferred), then is reusable.
 *   cow full: touch returns -ENOMEM when no page is left for a shadow, and
 *             the reserve pages make it succeed.
 *   granules: a barrier on a small range saves only its 64-byte granules
 *             (a range across a granule line saves both); saved granules
 *             are not copied again; the snapshot page (and its checksum)
 *             is the pre-snapshot page after completion, and the barrier is
 *             the fast path afterwards; a whole-page touch completes at
 *             once; a page freed with a partial shadow keeps its snapshot
 *             bytes; an untouched partial page counts as written after
 *             snapshot_end.
 *   granules random: random ranges written on random pages interleaved
 *             with snapshot reads, against a copy taken at the snapshot,
 *             validator every 97 steps, across three snapshots.
 *   verify:   WEIR_ARENA_VERIFY=1 aborts on a write no barrier covered.
 *   incremental: pages_written_since yields exactly the pages written after
 *             a given epoch, in the snapshot view.
 *   map ahead: map_ahead maps, one huge-page step a call, the pages past
 *             the high water up to `ahead` more (resident per mincore), then
 *             reports nothing left; they stay free, zero and `zeroed` when
 *             allocated; growth of the high water starts it again; the cap
 *             bounds it; a cap smaller than a step is one step.
 *   keygroup: wr_key_group and the per-worker ranges tile [0, K) and invert.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "state/arena.h"
#include "state/keygroup.h"

#define PS 4096u

static struct wr_arena *mk(size_t pages, uint32_t reserve)
{
	struct wr_arena_config cfg = { pages * PS, PS, reserve };
	struct wr_arena *a = NULL;

	cr_assert_eq(wr_arena_create(&cfg, &a), 0);
	cr_assert(wr_arena_is_valid(a));
	return a;
}

Test(arena, config_errors)
{
	struct wr_arena *a = NULL;
	struct wr_arena_config bad_ps = { 1 << 20, 3000, 0 };
	struct wr_arena_config small = { 100, PS, 0 };
	struct wr_arena_config resv = { 4 * PS, PS, 4 };

	cr_assert_eq(wr_arena_create(&bad_ps, &a), -EINVAL);
	cr_assert(strstr(weir_last_error(), "3000"));
	cr_assert_eq(wr_arena_create(&small, &a), -EINVAL);
	cr_assert_eq(wr_arena_create(&resv, &a), -EINVAL);
	cr_assert_null(a);
	wr_arena_destroy(NULL);
}

Test(arena, default_page_size)
{
	struct wr_arena_config cfg = { 64u << 20, 0, 0 };
	struct wr_arena *a = NULL;
	uint32_t p;

	cr_assert_eq(wr_arena_create(&cfg, &a), 0);
	cr_assert_eq(a->page_size, 64u << 10);
	cr_assert_eq(wr_arena_alloc(a, 3, &p, NULL), 0);
	memset(wr_arena_page_ptr(a, p), 0xab, 3 * a->page_size);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);
}

Test(arena, alloc_free_reuse)
{
	struct wr_arena *a = mk(16, 0);
	uint32_t p1, p2, p3, p4;
	bool z;

	cr_assert_eq(wr_arena_alloc(a, 4, &p1, &z), 0);
	cr_assert(z);
	cr_assert_eq(wr_arena_alloc(a, 2, &p2, &z), 0);
	cr_assert_eq(p2, p1 + 4);
	memset(wr_arena_page_ptr(a, p1), 1, 4 * PS);
	memset(wr_arena_page_ptr(a, p2), 2, 2 * PS);
	wr_arena_free(a, p1, 4);
	cr_assert(wr_arena_is_valid(a));
	cr_assert_eq(wr_arena_alloc(a, 3, &p3, &z), 0);
	cr_assert_eq(p3, p1, "first fit reuses the hole");
	cr_assert(!z, "a reused page is not pristine");
	cr_assert_eq(wr_arena_alloc(a, 2, &p4, &z), 0);
	cr_assert_eq(p4, p2 + 2, "a 2-page run does not fit the 1-page hole");
	cr_assert(z);
	cr_assert_eq(((uint8_t *)wr_arena_page_ptr(a, p2))[0], 2);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);
}

Test(arena, cap_enomem)
{
	struct wr_arena *a = mk(8, 2);
	uint32_t p, q;
	struct wr_arena_stats s;

	cr_assert_eq(wr_arena_alloc(a, 6, &p, NULL), 0);
	cr_assert_eq(wr_arena_alloc(a, 1, &q, NULL), -ENOMEM);
	cr_assert(strstr(weir_last_error(), "cap of 32768 bytes"),
		  "message: %s", weir_last_error());
	wr_arena_get_stats(a, &s);
	cr_assert_eq(s.pages_used, 6);
	cr_assert_eq(s.bytes_used, 6 * PS);
	wr_arena_free(a, p + 1, 1);
	wr_arena_free(a, p + 3, 1);
	cr_assert_eq(wr_arena_alloc(a, 2, &q, NULL), 0,
		     "the reserve is a page count, not a place");
	cr_assert_eq(q, p + 6);
	cr_assert_eq(wr_arena_alloc(a, 1, &q, NULL), -ENOMEM);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);
}

Test(arena, fragmentation_enomem)
{
	struct wr_arena *a = mk(8, 0);
	uint32_t p, q;

	cr_assert_eq(wr_arena_alloc(a, 8, &p, NULL), 0);
	wr_arena_free(a, p + 1, 1);
	wr_arena_free(a, p + 3, 1);
	wr_arena_free(a, p + 5, 1);
	cr_assert_eq(wr_arena_alloc(a, 2, &q, NULL), -ENOMEM);
	cr_assert(strstr(weir_last_error(), "no run of 2"));
	cr_assert_eq(wr_arena_alloc(a, 1, &q, NULL), 0);
	cr_assert_eq(q, p + 1);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);
}

Test(arena, random_against_model)
{
	enum { NP = 256, STEPS = 3000 };
	struct wr_arena *a = mk(NP, 0);
	uint32_t first[NP], len[NP], nruns = 0;
	uint8_t owner[NP] = { 0 };

	srand(7);
	for (int step = 0; step < STEPS; step++) {
		if (nruns && (rand() % 2 || nruns == NP)) {
			uint32_t k = (uint32_t)rand() % nruns;
			for (uint32_t p = first[k]; p < first[k] + len[k]; p++)
				owner[p] = 0;
			wr_arena_free(a, first[k], len[k]);
			first[k] = first[--nruns];
			len[k] = len[nruns];
		} else {
			uint32_t n = 1 + (uint32_t)rand() % 8, p;
			if (wr_arena_alloc(a, n, &p, NULL) == 0) {
				for (uint32_t i = p; i < p + n; i++) {
					cr_assert_eq(owner[i], 0, "overlap");
					owner[i] = 1;
				}
				first[nruns] = p;
				len[nruns++] = n;
			}
		}
		cr_assert(wr_arena_is_valid(a), "step %d", step);
	}
	wr_arena_destroy(a);
}

Test(arena, cow_snapshot_keeps_old_bytes)
{
	struct wr_arena *a = mk(32, 0);
	uint32_t p, e;
	struct wr_arena_stats s;

	cr_assert_eq(wr_arena_alloc(a, 4, &p, NULL), 0);
	for (uint32_t i = 0; i < 4; i++) {
		cr_assert_eq(wr_arena_touch(a, p + i), 0);
		memset(wr_arena_page_ptr(a, p + i), 'a' + (int)i, PS);
	}
	cr_assert_eq(wr_arena_snapshot_begin(a, &e), 0);
	cr_assert_eq(e, 1);
	cr_assert_eq(wr_arena_snapshot_begin(a, &e), -EBUSY);
	cr_assert(wr_arena_is_valid(a));
	/* Write pages 0 and 2 only, page 0 twice. */
	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 0; i < 4; i += 2) {
			cr_assert_eq(wr_arena_touch(a, p + i), 0);
			memset(wr_arena_page_ptr(a, p + i), 'X', PS);
		}
	}
	cr_assert(wr_arena_is_valid(a));
	wr_arena_get_stats(a, &s);
	cr_assert_eq(s.cow_copies, 2, "untouched pages are not copied");
	cr_assert_eq(s.shadow_pages, 2);
	for (uint32_t i = 0; i < 4; i++) {
		const uint8_t *snap = wr_arena_snapshot_page(a, p + i);
		const uint8_t *live = wr_arena_page_ptr(a, p + i);
		cr_assert(wr_arena_snapshot_contains(a, p + i));
		cr_assert_eq(snap[0], 'a' + (int)i);
		cr_assert_eq(snap[PS - 1], 'a' + (int)i);
		cr_assert_eq(live[0], i % 2 ? 'a' + (int)i : 'X');
	}
	wr_arena_snapshot_end(a);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_get_stats(a, &s);
	cr_assert_eq(s.shadow_pages, 0);
	cr_assert_eq(s.pages_used, 4);
	wr_arena_destroy(a);
}

static void fill_pattern(struct wr_arena *a, uint32_t p, uint32_t n,
			 unsigned seed)
{
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *b = wr_arena_page_ptr(a, p + i);
		cr_assert_eq(wr_arena_touch(a, p + i), 0);
		for (uint32_t k = 0; k < PS; k++)
			b[k] = (uint8_t)(k * 7 + i * 13 + seed);
	}
}

Test(arena, cow_granules)
{
	struct wr_arena *a = mk(32, 0);
	uint8_t before[2][PS];
	uint32_t p, calls;
	uint64_t sum;
	struct wr_arena_stats s;

	cr_assert_eq(wr_arena_alloc(a, 2, &p, NULL), 0);
	fill_pattern(a, p, 2, 1);
	memcpy(before[0], wr_arena_page_ptr(a, p), PS);
	memcpy(before[1], wr_arena_page_ptr(a, p + 1), PS);
	cr_assert_eq(wr_arena_snapshot_begin(a, NULL), 0);
	uint8_t *b = wr_arena_page_ptr(a, p);
	cr_assert_eq(wr_arena_touch_range(a, b + 100, 8), 0);
	memset(b + 100, 0xee, 8);
	wr_arena_get_stats(a, &s);
	cr_assert_eq(s.cow_copies, 1);
	cr_assert_eq(s.cow_granules, 1, "8 bytes inside one granule");
	cr_assert_eq(wr_arena_touch_range(a, b + 60, 8), 0); /* 60..67 */
	memset(b + 60, 0xdd, 8);
	for (calls = 0; calls < 3; calls++) /* saved already: no copy */
		cr_assert_eq(wr_arena_touch_range(a, b + 64, 64), 0);
	memset(b + 64, 0xcc, 64);
	wr_arena_get_stats(a, &s);
	cr_assert_eq(s.cow_granules, 2, "granule 0 added, 1 not again");
	cr_assert(wr_arena_is_valid(a));
	cr_assert(wr_arena_snapshot_checksum(a, p, &sum));
	cr_assert_eq(sum, XXH3_64bits(before[0], PS));
	cr_assert_eq(memcmp(wr_arena_snapshot_page(a, p), before[0], PS), 0);
	cr_assert_eq(a->write_epoch[p], a->epoch, "completed: fast path");
	/* Page 1: a whole-page touch completes at once. */
	cr_assert_eq(wr_arena_touch(a, p + 1), 0);
	memset(wr_arena_page_ptr(a, p + 1), 0, PS);
	cr_assert_eq(a->write_epoch[p + 1], a->epoch);
	cr_assert_eq(memcmp(wr_arena_snapshot_page(a, p + 1), before[1], PS),
		     0);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_snapshot_end(a);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);
}

Test(arena, cow_granules_free_and_end)
{
	struct wr_arena *a = mk(32, 0);
	uint8_t before[PS];
	uint32_t p, e;
	struct wr_arena_iter it = { 0 };

	cr_assert_eq(wr_arena_alloc(a, 2, &p, NULL), 0);
	fill_pattern(a, p, 2, 5);
	memcpy(before, wr_arena_page_ptr(a, p), PS);
	cr_assert_eq(wr_arena_snapshot_begin(a, &e), 0);
	uint8_t *b = wr_arena_page_ptr(a, p);
	cr_assert_eq(wr_arena_touch_range(a, b + 4000, 10), 0);
	memset(b + 4000, 1, 10);
	wr_arena_free(a, p, 1);	/* partial: completed before it goes */
	cr_assert(wr_arena_is_valid(a));
	uint32_t q;	/* first fit: the freed page comes back */
	cr_assert_eq(wr_arena_alloc(a, 1, &q, NULL), 0);
	cr_assert_eq(q, p);
	memset(wr_arena_page_ptr(a, q), 9, PS);
	cr_assert_eq(memcmp(wr_arena_snapshot_page(a, p), before, PS), 0);
	/* Page p + 1 touched once and never read by a writer. */
	b = wr_arena_page_ptr(a, p + 1);
	cr_assert_eq(wr_arena_touch_range(a, b, 1), 0);
	b[0] ^= 1;
	wr_arena_snapshot_end(a);
	cr_assert(wr_arena_is_valid(a));
	cr_assert(wr_arena_pages_written_since(a, e, &it));
	cr_assert_eq(it.page, p);
	cr_assert(wr_arena_pages_written_since(a, e, &it));
	cr_assert_eq(it.page, p + 1, "a partial page was written");
	wr_arena_destroy(a);
}

/* Writes n random bytes at a random offset of page p (maybe into p + 1),
 * through the barrier. */
static void random_write(struct wr_arena *a, uint32_t p, uint32_t npages)
{
	uint32_t len = 1 + (uint32_t)rand() % (rand() % 8 ? 24 : 300);
	size_t span = (size_t)npages * PS;
	size_t off = ((size_t)p * PS + (uint32_t)rand() % PS) % (span - len);
	uint8_t *b = (uint8_t *)wr_arena_page_ptr(a, 0) + off;

	cr_assert_eq(wr_arena_touch_range(a, b, len), 0);
	for (uint32_t k = 0; k < len; k++)
		b[k] = (uint8_t)rand();
}

Test(arena, cow_granules_random)
{
	enum { N = 12 };
	struct wr_arena *a = mk(64, 0);
	uint8_t *ref = malloc((size_t)N * PS);
	uint32_t p;

	srand(7);
	cr_assert_eq(wr_arena_alloc(a, N, &p, NULL), 0);
	cr_assert_eq(p, 0);
	fill_pattern(a, 0, N, 3);
	for (int snap = 0; snap < 3; snap++) {
		memcpy(ref, wr_arena_page_ptr(a, 0), (size_t)N * PS);
		cr_assert_eq(wr_arena_snapshot_begin(a, NULL), 0);
		for (int step = 0; step < 2000; step++) {
			uint32_t pg = (uint32_t)rand() % N;
			if (rand() % 16)
				random_write(a, pg, N);
			else
				cr_assert_eq(memcmp(wr_arena_snapshot_page(a, pg),
						    ref + (size_t)pg * PS, PS),
					     0, "snapshot %d page %u", snap, pg);
			if (step % 97 == 0)
				cr_assert(wr_arena_is_valid(a));
		}
		for (uint32_t pg = 0; pg < N; pg++)
			cr_assert_eq(memcmp(wr_arena_snapshot_page(a, pg),
					    ref + (size_t)pg * PS, PS), 0);
		cr_assert(wr_arena_is_valid(a));
		wr_arena_snapshot_end(a);
	}
	free(ref);
	wr_arena_destroy(a);
}

static void set_verify(void)
{
	setenv("WEIR_ARENA_VERIFY", "1", 1);
}

Test(arena, verify_catches_unbarriered_write, .init = set_verify,
     .signal = SIGABRT)
{
	struct wr_arena *a = mk(8, 0);
	uint32_t p;

	cr_assert_eq(wr_arena_alloc(a, 1, &p, NULL), 0);
	fill_pattern(a, p, 1, 2);
	cr_assert_eq(wr_arena_snapshot_begin(a, NULL), 0);
	uint8_t *b = wr_arena_page_ptr(a, p);
	cr_assert_eq(wr_arena_touch_range(a, b, 8), 0);
	memset(b, 0, 128);	/* granule 1 written without a barrier */
	(void)wr_arena_snapshot_page(a, p);
	cr_assert_fail("not reached: verification aborts");
}

Test(arena, cow_new_pages_not_in_snapshot)
{
	struct wr_arena *a = mk(8, 0);
	uint32_t p, q;
	struct wr_arena_stats s;

	cr_assert_eq(wr_arena_alloc(a, 1, &p, NULL), 0);
	cr_assert_eq(wr_arena_snapshot_begin(a, NULL), 0);
	cr_assert_eq(wr_arena_alloc(a, 1, &q, NULL), 0);
	cr_assert_eq(wr_arena_touch(a, q), 0);
	cr_assert(!wr_arena_snapshot_contains(a, q));
	cr_assert(wr_arena_snapshot_contains(a, p));
	wr_arena_get_stats(a, &s);
	cr_assert_eq(s.cow_copies, 0);
	wr_arena_free(a, q, 1); /* not owed: freed at once */
	wr_arena_get_stats(a, &s);
	cr_assert_eq(s.deferred_pages, 0);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);
}

Test(arena, cow_free_is_deferred)
{
	struct wr_arena *a = mk(4, 0);
	uint32_t p, q;
	struct wr_arena_stats s;

	cr_assert_eq(wr_arena_alloc(a, 2, &p, NULL), 0);
	memset(wr_arena_page_ptr(a, p), 'k', 2 * PS);
	cr_assert_eq(wr_arena_snapshot_begin(a, NULL), 0);
	wr_arena_free(a, p, 2);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_get_stats(a, &s);
	cr_assert_eq(s.deferred_pages, 2);
	cr_assert_eq(wr_arena_alloc(a, 3, &q, NULL), -ENOMEM,
		     "deferred pages still count against the cap");
	cr_assert_eq(wr_arena_alloc(a, 2, &q, NULL), 0);
	cr_assert_neq(q, p);
	cr_assert_eq(((const uint8_t *)wr_arena_snapshot_page(a, p + 1))[7], 'k');
	wr_arena_snapshot_end(a);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_free(a, q, 2);
	cr_assert_eq(wr_arena_alloc(a, 4, &q, NULL), 0);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);
}

Test(arena, cow_shadow_needs_a_page)
{
	struct wr_arena *a = mk(4, 0), *b = mk(4, 1);
	uint32_t p;

	cr_assert_eq(wr_arena_alloc(a, 4, &p, NULL), 0);
	cr_assert_eq(wr_arena_snapshot_begin(a, NULL), 0);
	cr_assert_eq(wr_arena_touch(a, p), -ENOMEM);
	cr_assert(strstr(weir_last_error(), "shadow"));
	cr_assert(wr_arena_is_valid(a));
	cr_assert_eq(wr_arena_alloc(b, 3, &p, NULL), 0);
	cr_assert_eq(wr_arena_snapshot_begin(b, NULL), 0);
	cr_assert_eq(wr_arena_touch(b, p), 0, "the reserve holds the shadow");
	cr_assert_eq(wr_arena_touch(b, p + 1), -ENOMEM);
	cr_assert(wr_arena_is_valid(b));
	wr_arena_destroy(a);
	wr_arena_destroy(b);
}

static uint32_t written_since(struct wr_arena *a, uint32_t e, uint32_t *out)
{
	struct wr_arena_iter it = { 0 };
	uint32_t n = 0;

	while (wr_arena_pages_written_since(a, e, &it))
		out[n++] = it.page;
	return n;
}

/* Resident 4 KiB pages of arena pages [first, first + n), per mincore. */
static size_t resident(const struct wr_arena *a, uint32_t first, uint32_t n)
{
	size_t len = (size_t)n * a->page_size, got = 0;
	unsigned char *v = malloc(len / 4096);

	cr_assert_eq(mincore(wr_arena_page_ptr(a, first), len, v), 0);
	for (size_t i = 0; i < len / 4096; i++)
		got += v[i] & 1;
	free(v);
	return got;
}

Test(arena, map_ahead)
{
	struct wr_arena_config cfg = { 64u << 20, 0, 0 }; /* 1024 x 64 KiB */
	struct wr_arena *a = NULL;
	uint32_t p, step = WR_ARENA_MAP_STEP >> 16, calls = 0;
	bool z;

	cr_assert_eq(wr_arena_create(&cfg, &a), 0);
	cr_assert_eq(wr_arena_alloc(a, 3, &p, &z), 0);
	memset(wr_arena_page_ptr(a, p), 0x5a, 3 * a->page_size);
	cr_assert_lt(resident(a, 3, 2 * step), 2 * step * 16,
		     "untouched pages are not all resident before");
	while (wr_arena_map_ahead(a, 2 * step) == 1)
		calls++;
	/* mapped from 3 to the step boundary, then whole steps to 3 + 2 step */
	cr_assert_eq(calls, 3);
	cr_assert_eq(wr_arena_map_ahead(a, 2 * step), 0);
	cr_assert_eq(resident(a, 3, 3 * step - 3), (3 * step - 3) * 16,
		     "every page up to the last step is resident");
	cr_assert(wr_arena_is_valid(a));
	cr_assert_eq(a->pages_used, 3, "mapping allocates nothing");
	cr_assert_eq(wr_arena_alloc(a, 40, &p, &z), 0);
	cr_assert_eq(p, 3);
	cr_assert(z, "mapped pages are still the kernel's zeroes");
	uint8_t any = 0;
	for (size_t i = 0; i < 40 * (size_t)a->page_size; i++)
		any |= ((const uint8_t *)wr_arena_page_ptr(a, p))[i];
	cr_assert_eq(any, 0, "a mapped page holds a non-zero byte");
	cr_assert_eq(wr_arena_map_ahead(a, 2 * step), 1,
		     "a higher high water maps more");
	while (wr_arena_map_ahead(a, UINT32_MAX) == 1)
		calls++;
	cr_assert_eq(a->mapped, a->pages_total, "the cap bounds it");
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);

	a = mk(100, 0); /* 100 x 4 KiB: less than a step */
	cr_assert_eq(wr_arena_map_ahead(a, 1000), 1);
	cr_assert_eq(a->mapped, 100);
	cr_assert_eq(wr_arena_map_ahead(a, 1000), 0);
	cr_assert_eq(resident(a, 0, 100), 100);
	wr_arena_destroy(a);
}

Test(arena, pages_written_since)
{
	struct wr_arena *a = mk(16, 0);
	uint32_t p, e1, e2, got[16];

	cr_assert_eq(wr_arena_alloc(a, 6, &p, NULL), 0);
	cr_assert_eq(wr_arena_snapshot_begin(a, &e1), 0);
	cr_assert_eq(written_since(a, 0, got), 6);
	wr_arena_snapshot_end(a);
	cr_assert_eq(wr_arena_touch(a, p + 1), 0);
	cr_assert_eq(wr_arena_touch(a, p + 4), 0);
	cr_assert_eq(wr_arena_snapshot_begin(a, &e2), 0);
	cr_assert_eq(wr_arena_touch(a, p + 2), 0); /* after e2: not in view */
	cr_assert_eq(wr_arena_touch(a, p + 4), 0); /* shadow keeps epoch e2 */
	cr_assert_eq(written_since(a, e1, got), 2);
	cr_assert_eq(got[0], p + 1);
	cr_assert_eq(got[1], p + 4);
	wr_arena_snapshot_end(a);
	cr_assert_eq(written_since(a, e2, got), 2, "live view after the end");
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);
}

Test(keygroup, ranges_tile_and_invert)
{
	uint32_t K = WR_KEY_GROUPS_DEFAULT;

	cr_assert_eq(wr_key_group(0x12345678abcdull, K), 0xbcdu);
	for (uint32_t n = 1; n <= 7; n++) {
		uint32_t next = 0;
		for (uint32_t i = 0; i < n; i++) {
			struct wr_kg_range r = wr_key_group_range(K, i, n);
			cr_assert_eq(r.first, next);
			cr_assert(r.count == K / n || r.count == K / n + 1);
			for (uint32_t kg = r.first; kg < r.first + r.count; kg++)
				cr_assert_eq(wr_key_group_owner(kg, K, n), i);
			next += r.count;
		}
		cr_assert_eq(next, K);
	}
}
