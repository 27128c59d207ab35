/*
 * tests/core/ring_test.c — the SPSC ring (weir/ring.h).
 *
 * TEST PLAN
 *   geometry      create reports capacity and slot size; a new ring is empty.
 *   fifo          records come out in the order they went in, one at a time
 *                 and in batches.
 *   wrap          indexes started just below 2^32 (wr_ring_reset_at) cross it
 *                 with correct counts, order, full/empty edges and markers.
 *   edges         enqueue to a full ring: bulk 0, burst the part that fits;
 *                 dequeue from an empty ring: 0; bulk dequeue of more than is
 *                 queued: 0 and nothing consumed; burst dequeue: the part.
 *   markers       a marker keeps its place among records: dequeue stops at it,
 *                 dequeue_marker returns 0 while records before it remain;
 *                 marker on an empty ring; several in a row; marker on a full
 *                 ring; marker queue full -> -ENOBUFS, then free again.
 *   config        bad capacity (0, 1, not a power of two, > max) and slot size
 *                 (0, > max) -> -EINVAL, a message naming the value, *out
 *                 untouched; the extreme valid values are accepted;
 *                 weir_ring_destroy(NULL) is a no-op.
 *   slot sizes    1, 3, 8, 16, 24, 64, 100 bytes: every byte of every record
 *                 survives, with batches straddling the end of the slot array.
 *   stress        two threads (pinned to two CPUs when there are two), a
 *                 1024-slot ring of 16-byte records {seq, xxh3(seq)}, random
 *                 batch sizes on both sides, a marker every few hundred
 *                 records carrying the next record's seq; the consumer checks
 *                 every record and marker in place and an order-sensitive
 *                 checksum over the whole stream; a side that makes no
 *                 progress for 5 s fails the run instead of hanging it.
 *                 WEIR_STRESS_RECORDS sets the record count (default 100
 *                 million; lower it for sanitizers).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "core/ring_internal.h"
#include "weir/ring.h"

/* ---- helpers ---- */

static struct weir_ring *ring_new(uint32_t capacity, uint32_t slot_size)
{
	struct weir_ring *r = NULL;
	int err = weir_ring_create(capacity, slot_size, &r);

	cr_assert_eq(err, 0, "create(%u, %u): %d %s", capacity, slot_size, err,
		     weir_last_error());
	cr_assert_not_null(r);
	return r;
}

/* Fill a u64 array with first, first + 1, ... */
static void seq_fill(uint64_t *v, uint32_t n, uint64_t first)
{
	for (uint32_t i = 0; i < n; i++)
		v[i] = first + i;
}

static void seq_check(const uint64_t *v, uint32_t n, uint64_t first)
{
	for (uint32_t i = 0; i < n; i++)
		cr_assert_eq(v[i], first + i, "record %u: got %" PRIu64
			     ", want %" PRIu64, i, v[i], first + i);
}

static void push_seq(struct weir_ring *r, uint32_t n, uint64_t first)
{
	uint64_t v[256];

	cr_assert_leq(n, 256u);
	seq_fill(v, n, first);
	cr_assert_eq(weir_ring_enqueue_bulk_spsc(r, v, n), n);
}

static void pop_seq(struct weir_ring *r, uint32_t n, uint64_t first)
{
	uint64_t v[256];

	cr_assert_leq(n, 256u);
	cr_assert_eq(weir_ring_dequeue_bulk_spsc(r, v, n), n);
	seq_check(v, n, first);
}

static struct weir_marker marker(uint32_t kind, uint64_t value)
{
	struct weir_marker m = { .kind = kind, .arg = 7, .value = value };
	return m;
}

static void push_marker(struct weir_ring *r, uint32_t kind, uint64_t value)
{
	struct weir_marker m = marker(kind, value);

	cr_assert_eq(weir_ring_enqueue_marker_spsc(r, &m), 0);
}

static void pop_marker(struct weir_ring *r, uint32_t kind, uint64_t value)
{
	struct weir_marker m;

	cr_assert_eq(weir_ring_dequeue_marker_spsc(r, &m), 1,
		     "expected marker kind %u value %" PRIu64, kind, value);
	cr_assert_eq(m.kind, kind);
	cr_assert_eq(m.arg, 7u);
	cr_assert_eq(m.value, value);
}

static void assert_no_marker(struct weir_ring *r)
{
	struct weir_marker m;

	cr_assert_eq(weir_ring_dequeue_marker_spsc(r, &m), 0);
}

static void assert_no_record(struct weir_ring *r)
{
	uint64_t v[4];

	cr_assert_eq(weir_ring_dequeue_burst_spsc(r, v, 4), 0);
	cr_assert_eq(weir_ring_dequeue_bulk_spsc(r, v, 1), 0);
}

/* ---- geometry and FIFO ---- */

Test(ring, geometry)
{
	struct weir_ring *r = ring_new(64, 24);

	cr_expect_eq(weir_ring_capacity(r), 64u);
	cr_expect_eq(weir_ring_slot_size(r), 24u);
	cr_expect_eq(weir_ring_count(r), 0u);
	cr_expect_eq(weir_ring_free_count(r), 64u);
	weir_ring_destroy(r);
}

Test(ring, fifo_one_at_a_time)
{
	struct weir_ring *r = ring_new(16, sizeof(uint64_t));

	for (uint64_t i = 0; i < 10; i++)
		push_seq(r, 1, i);
	cr_expect_eq(weir_ring_count(r), 10u);
	for (uint64_t i = 0; i < 10; i++)
		pop_seq(r, 1, i);
	assert_no_record(r);
	weir_ring_destroy(r);
}

Test(ring, fifo_interleaved_batches)
{
	struct weir_ring *r = ring_new(32, sizeof(uint64_t));
	uint64_t in = 0, out = 0;

	/* Batch sizes 1..20 in, 1..13 out: every alignment of the slot
	 * array is hit and the ring never overflows (count stays < 32). */
	for (uint32_t round = 0; round < 500; round++) {
		uint32_t n = 1 + round % 20;
		if (weir_ring_free_count(r) >= n) {
			push_seq(r, n, in);
			in += n;
		}
		uint32_t m = 1 + round % 13;
		if (weir_ring_count(r) >= m) {
			pop_seq(r, m, out);
			out += m;
		}
	}
	cr_assert_eq(weir_ring_count(r), in - out);
	pop_seq(r, (uint32_t)(in - out), out);
	weir_ring_destroy(r);
}

/* ---- indexes past 2^32 ---- */

Test(ring, wraps_past_2_32)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));
	uint64_t seq = 0;

	wr_ring_reset_at(r, UINT32_MAX - 2);
	/* Fill across the wrap: head goes UINT32_MAX - 2 -> 5. */
	push_seq(r, 8, seq);
	cr_assert_eq(weir_ring_count(r), 8u);
	cr_assert_eq(weir_ring_free_count(r), 0u);
	cr_assert_eq(weir_ring_enqueue_burst_spsc(r, &seq, 1), 0);
	pop_seq(r, 8, seq);
	seq += 8;
	cr_assert_eq(weir_ring_count(r), 0u);
	assert_no_record(r);
	/* Keep going for several laps of the slot array. */
	for (int lap = 0; lap < 20; lap++, seq += 5) {
		push_seq(r, 5, seq);
		cr_assert_eq(weir_ring_count(r), 5u);
		pop_seq(r, 5, seq);
	}
	weir_ring_destroy(r);
}

Test(ring, wraps_past_2_32_one_record_at_a_time)
{
	struct weir_ring *r = ring_new(4, sizeof(uint64_t));

	for (uint32_t k = 0; k < 6; k++) {
		wr_ring_reset_at(r, UINT32_MAX - k);
		for (uint64_t i = 0; i < 3; i++)
			push_seq(r, 1, i);
		cr_assert_eq(weir_ring_count(r), 3u, "k = %u", k);
		for (uint64_t i = 0; i < 3; i++)
			pop_seq(r, 1, i);
		cr_assert_eq(weir_ring_count(r), 0u, "k = %u", k);
	}
	weir_ring_destroy(r);
}

Test(ring, marker_across_2_32)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));

	wr_ring_reset_at(r, UINT32_MAX - 1);
	push_seq(r, 3, 0);           /* positions UINT32_MAX-1 .. 0 */
	push_marker(r, WEIR_MARKER_BARRIER, 3);
	push_seq(r, 4, 3);
	pop_seq(r, 2, 0);
	assert_no_marker(r);
	uint64_t v[8];
	cr_assert_eq(weir_ring_dequeue_burst_spsc(r, v, 8), 1);
	seq_check(v, 1, 2);
	assert_no_record(r);
	pop_marker(r, WEIR_MARKER_BARRIER, 3);
	pop_seq(r, 4, 3);
	weir_ring_destroy(r);
}

/* ---- full and empty edges, bulk and burst ---- */

Test(ring, empty_ring_dequeues_nothing)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));

	assert_no_record(r);
	assert_no_marker(r);
	cr_assert_eq(weir_ring_count(r), 0u);
	weir_ring_destroy(r);
}

Test(ring, full_ring_bulk_enqueue_returns_0)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));
	uint64_t v[8];

	push_seq(r, 8, 0);
	cr_assert_eq(weir_ring_free_count(r), 0u);
	seq_fill(v, 8, 100);
	cr_assert_eq(weir_ring_enqueue_bulk_spsc(r, v, 1), 0);
	cr_assert_eq(weir_ring_enqueue_burst_spsc(r, v, 4), 0);
	cr_assert_eq(weir_ring_count(r), 8u);
	pop_seq(r, 8, 0); /* the full ring kept its records intact */
	weir_ring_destroy(r);
}

Test(ring, bulk_enqueue_is_all_or_nothing)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));
	uint64_t v[8];

	push_seq(r, 5, 0);
	seq_fill(v, 8, 100);
	cr_assert_eq(weir_ring_enqueue_bulk_spsc(r, v, 4), 0); /* 3 free */
	cr_assert_eq(weir_ring_count(r), 5u);
	cr_assert_eq(weir_ring_enqueue_bulk_spsc(r, v, 3), 3);
	pop_seq(r, 5, 0);
	pop_seq(r, 3, 100);
	weir_ring_destroy(r);
}

Test(ring, burst_enqueue_takes_what_fits)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));
	uint64_t v[8];

	push_seq(r, 5, 0);
	seq_fill(v, 8, 5);
	cr_assert_eq(weir_ring_enqueue_burst_spsc(r, v, 8), 3);
	cr_assert_eq(weir_ring_free_count(r), 0u);
	pop_seq(r, 8, 0);
	weir_ring_destroy(r);
}

Test(ring, bulk_dequeue_is_all_or_nothing)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));
	uint64_t v[8] = { 0 };

	push_seq(r, 3, 0);
	cr_assert_eq(weir_ring_dequeue_bulk_spsc(r, v, 4), 0);
	cr_assert_eq(weir_ring_count(r), 3u);
	pop_seq(r, 3, 0);
	weir_ring_destroy(r);
}

Test(ring, burst_dequeue_takes_what_is_there)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));
	uint64_t v[8];

	push_seq(r, 3, 0);
	cr_assert_eq(weir_ring_dequeue_burst_spsc(r, v, 8), 3);
	seq_check(v, 3, 0);
	assert_no_record(r);
	weir_ring_destroy(r);
}

Test(ring, zero_length_batches_change_nothing)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));
	uint64_t v[1] = { 42 };

	cr_assert_eq(weir_ring_enqueue_bulk_spsc(r, v, 0), 0);
	cr_assert_eq(weir_ring_enqueue_burst_spsc(r, v, 0), 0);
	cr_assert_eq(weir_ring_count(r), 0u);
	push_seq(r, 1, 9);
	cr_assert_eq(weir_ring_dequeue_burst_spsc(r, v, 0), 0);
	pop_seq(r, 1, 9);
	weir_ring_destroy(r);
}

/* ---- markers ---- */

Test(ring, marker_keeps_its_place)
{
	struct weir_ring *r = ring_new(16, sizeof(uint64_t));
	uint64_t v[16];

	push_seq(r, 5, 0);
	push_marker(r, WEIR_MARKER_WATERMARK, 1234);
	push_seq(r, 3, 5);
	/* A burst asking for everything stops at the marker... */
	cr_assert_eq(weir_ring_dequeue_burst_spsc(r, v, 16), 5);
	seq_check(v, 5, 0);
	/* ...and nothing passes it until it is taken. */
	assert_no_record(r);
	pop_marker(r, WEIR_MARKER_WATERMARK, 1234);
	assert_no_marker(r);
	cr_assert_eq(weir_ring_dequeue_burst_spsc(r, v, 16), 3);
	seq_check(v, 3, 5);
	weir_ring_destroy(r);
}

Test(ring, bulk_dequeue_does_not_cross_a_marker)
{
	struct weir_ring *r = ring_new(16, sizeof(uint64_t));
	uint64_t v[16];

	push_seq(r, 5, 0);
	push_marker(r, WEIR_MARKER_BARRIER, 1);
	push_seq(r, 5, 5);
	cr_assert_eq(weir_ring_dequeue_bulk_spsc(r, v, 6), 0);
	pop_seq(r, 5, 0);
	pop_marker(r, WEIR_MARKER_BARRIER, 1);
	pop_seq(r, 5, 5);
	weir_ring_destroy(r);
}

Test(ring, marker_waits_for_the_records_before_it)
{
	struct weir_ring *r = ring_new(16, sizeof(uint64_t));

	push_seq(r, 2, 0);
	push_marker(r, WEIR_MARKER_END, 2);
	assert_no_marker(r);
	pop_seq(r, 1, 0);
	assert_no_marker(r);
	pop_seq(r, 1, 1);
	pop_marker(r, WEIR_MARKER_END, 2);
	assert_no_marker(r);
	weir_ring_destroy(r);
}

Test(ring, marker_on_empty_ring)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));

	push_marker(r, WEIR_MARKER_END, 0);
	cr_assert_eq(weir_ring_count(r), 0u); /* markers take no slot */
	assert_no_record(r);
	pop_marker(r, WEIR_MARKER_END, 0);
	assert_no_marker(r);
	weir_ring_destroy(r);
}

Test(ring, marker_on_full_ring)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));

	push_seq(r, 8, 0);
	push_marker(r, WEIR_MARKER_BARRIER, 8);
	assert_no_marker(r);
	pop_seq(r, 8, 0);
	pop_marker(r, WEIR_MARKER_BARRIER, 8);
	weir_ring_destroy(r);
}

Test(ring, several_markers_in_a_row)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));

	push_seq(r, 2, 0);
	push_marker(r, WEIR_MARKER_WATERMARK, 10);
	push_marker(r, WEIR_MARKER_BARRIER, 11);
	push_marker(r, WEIR_MARKER_USER + 3, 12);
	push_seq(r, 2, 2);
	pop_seq(r, 2, 0);
	pop_marker(r, WEIR_MARKER_WATERMARK, 10);
	assert_no_record(r); /* two more markers still ahead of record 2 */
	pop_marker(r, WEIR_MARKER_BARRIER, 11);
	assert_no_record(r);
	pop_marker(r, WEIR_MARKER_USER + 3, 12);
	assert_no_marker(r);
	pop_seq(r, 2, 2);
	weir_ring_destroy(r);
}

Test(ring, marker_queue_full_is_enobufs)
{
	struct weir_ring *r = ring_new(8, sizeof(uint64_t));
	struct weir_marker m = marker(WEIR_MARKER_USER, 999);

	for (uint32_t i = 0; i < WEIR_RING_MARKERS; i++)
		push_marker(r, WEIR_MARKER_USER, i);
	cr_assert_eq(weir_ring_enqueue_marker_spsc(r, &m), -ENOBUFS);
	cr_assert_eq(weir_ring_enqueue_marker_spsc(r, &m), -ENOBUFS);
	pop_marker(r, WEIR_MARKER_USER, 0);
	/* One freed: exactly one more fits, and it comes out last. */
	cr_assert_eq(weir_ring_enqueue_marker_spsc(r, &m), 0);
	cr_assert_eq(weir_ring_enqueue_marker_spsc(r, &m), -ENOBUFS);
	for (uint32_t i = 1; i < WEIR_RING_MARKERS; i++)
		pop_marker(r, WEIR_MARKER_USER, i);
	pop_marker(r, WEIR_MARKER_USER, 999);
	assert_no_marker(r);
	weir_ring_destroy(r);
}

Test(ring, markers_interleaved_with_records_for_many_laps)
{
	struct weir_ring *r = ring_new(4, sizeof(uint64_t));
	uint64_t seq = 0;

	/* 300 markers: the marker side queue (64) wraps several times. */
	for (uint64_t round = 0; round < 300; round++) {
		uint32_t n = 1 + round % 4;
		push_seq(r, n, seq);
		push_marker(r, WEIR_MARKER_WATERMARK, seq + n);
		pop_seq(r, n, seq);
		seq += n;
		pop_marker(r, WEIR_MARKER_WATERMARK, seq);
	}
	assert_no_marker(r);
	assert_no_record(r);
	weir_ring_destroy(r);
}

/* ---- configuration ---- */

static void expect_einval(uint32_t capacity, uint32_t slot_size,
			  uint32_t named)
{
	struct weir_ring *sentinel = (struct weir_ring *)0x1;
	struct weir_ring *r = sentinel;
	char want[16];

	cr_expect_eq(weir_ring_create(capacity, slot_size, &r), -EINVAL,
		     "create(%u, %u) should fail", capacity, slot_size);
	cr_expect_eq(r, sentinel, "*out written on failure");
	snprintf(want, sizeof(want), "%u", named);
	cr_expect(strstr(weir_last_error(), want) != NULL,
		  "message \"%s\" does not name %s", weir_last_error(), want);
}

Test(ring, bad_capacity_is_einval)
{
	const uint32_t caps[] = { 0, 1, 3, 6, 1000, 1023,
				  WEIR_RING_CAPACITY_MAX + 1,
				  WEIR_RING_CAPACITY_MAX * 2, UINT32_MAX };

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		expect_einval(caps[i], 8, caps[i]);
}

Test(ring, bad_slot_size_is_einval)
{
	expect_einval(8, 0, 0);
	expect_einval(8, WEIR_RING_SLOT_SIZE_MAX + 1,
		      WEIR_RING_SLOT_SIZE_MAX + 1);
	expect_einval(8, UINT32_MAX, UINT32_MAX);
}

Test(ring, extreme_valid_config_is_accepted)
{
	struct weir_ring *r = ring_new(2, 1);

	weir_ring_destroy(r);
	r = ring_new(2, WEIR_RING_SLOT_SIZE_MAX);
	weir_ring_destroy(r);
}

Test(ring, destroy_null_is_a_noop)
{
	weir_ring_destroy(NULL);
}

/* ---- content integrity for odd slot sizes ---- */

static uint8_t pattern_byte(uint64_t seq, uint32_t k)
{
	return (uint8_t)(seq * 131u + k * 29u + (seq >> 8) + 1u);
}

static void pattern_fill(uint8_t *buf, uint32_t size, uint32_t n,
			 uint64_t seq)
{
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < size; k++)
			buf[i * size + k] = pattern_byte(seq + i, k);
}

static void pattern_check(const uint8_t *buf, uint32_t size, uint32_t n,
			  uint64_t seq)
{
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < size; k++)
			cr_assert_eq(buf[i * size + k], pattern_byte(seq + i, k),
				     "size %u record %" PRIu64 " byte %u", size,
				     seq + i, k);
}

/* Push and pop batches of 1..7 records through an 8-slot ring so that
 * batches start at every offset and straddle the end of the slot array. */
static void integrity_run(uint32_t size, uint32_t start)
{
	enum { CAP = 8, RECORDS = 2000 };
	uint8_t buf[CAP * 100];
	struct weir_ring *r = ring_new(CAP, size);
	uint64_t in = 0, out = 0;

	wr_ring_reset_at(r, start);
	for (uint32_t round = 0; out < RECORDS; round++) {
		uint32_t n = 1 + round % 7, got;
		pattern_fill(buf, size, n, in);
		in += weir_ring_enqueue_burst_spsc(r, buf, n);
		memset(buf, 0, sizeof(buf));
		got = weir_ring_dequeue_burst_spsc(r, buf, 1 + round % 5);
		pattern_check(buf, size, got, out);
		out += got;
	}
	weir_ring_destroy(r);
}

Test(ring, slot_sizes_keep_every_byte)
{
	const uint32_t sizes[] = { 1, 3, 8, 16, 24, 64, 100 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		integrity_run(sizes[i], 0);
		integrity_run(sizes[i], UINT32_MAX - 13);
	}
}

/* ---- two-thread stress ---- */

#define STRESS_RECORDS_DEFAULT 100000000ull
#define STRESS_BATCH_MAX 64u
/* About one marker per 512 records: often enough to hit every phase of the
 * consumer's loop, rare enough not to dominate the run. */
#define STRESS_MARKER_EVERY 512u
/* A side that makes no progress for this long declares the run stalled
 * (a lost record or a marker that can never be taken), so a broken ring
 * fails the test in seconds instead of hanging until the timeout. */
#define STRESS_STALL_S 5.0
#define STRESS_IDLE_CHECK 0xffffu /* idle spins between clock reads */

struct stress_rec {
	uint64_t seq;
	uint64_t hash;
};

struct stress {
	struct weir_ring *r;
	uint64_t records;
	int cpu[2];
	_Atomic bool stalled; /* set by either side, read by both */
	/* Written by the producer thread, read after join. */
	uint64_t tx_sum, tx_markers;
	/* Written by the consumer thread, read after join. */
	uint64_t rx_sum, rx_markers, rx_records;
	uint64_t bad_seq, bad_hash, bad_marker;
	uint64_t first_bad_at;
};

/* Per-thread stall detector: feed it progress (true) or an idle spin. */
struct stall {
	uint64_t idle;
	double since;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Returns true when the run must stop: stalled here or on the other side. */
static bool stall_check(struct stress *s, struct stall *st, bool progress)
{
	if (progress) {
		st->idle = 0;
		return false;
	}
	if ((++st->idle & STRESS_IDLE_CHECK) != 0)
		return false;
	sched_yield(); /* long idle: let the other side run (busy CI) */
	if (atomic_load_explicit(&s->stalled, memory_order_relaxed))
		return true;
	if (st->idle == STRESS_IDLE_CHECK + 1)
		st->since = now_s();
	else if (now_s() - st->since > STRESS_STALL_S)
		atomic_store(&s->stalled, true);
	return atomic_load_explicit(&s->stalled, memory_order_relaxed);
}

static uint64_t rec_hash(uint64_t seq)
{
	return XXH3_64bits(&seq, sizeof(seq));
}

/* Order-sensitive running checksum: swapping two records changes it. */
static uint64_t sum_step(uint64_t sum, uint64_t hash)
{
	return (sum ^ hash) * 0x9E3779B97F4A7C15ull + 1;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t stress_records(void)
{
	const char *env = getenv("WEIR_STRESS_RECORDS");
	char *end;
	unsigned long long v;

	if (env == NULL || *env == '\0')
		return STRESS_RECORDS_DEFAULT;
	v = strtoull(env, &end, 10);
	cr_assert(*end == '\0' && v > 0, "bad WEIR_STRESS_RECORDS=%s", env);
	return v;
}

static void pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* Producer: a marker (kind USER, value = next seq) is queued before the
 * record it precedes; ENOBUFS just postpones it. */
static void stress_send_marker(struct stress *s, uint64_t next)
{
	struct weir_marker m = { .kind = WEIR_MARKER_USER,
				 .arg = (uint32_t)s->tx_markers,
				 .value = next };

	if (weir_ring_enqueue_marker_spsc(s->r, &m) == 0)
		s->tx_markers++;
}

static void stress_send_end(struct stress *s, uint64_t next)
{
	struct weir_marker end = { .kind = WEIR_MARKER_END, .value = next };
	struct stall st = { 0 };

	while (weir_ring_enqueue_marker_spsc(s->r, &end) != 0)
		if (stall_check(s, &st, false))
			return;
}

static void *stress_producer(void *p)
{
	struct stress *s = p;
	struct stress_rec batch[STRESS_BATCH_MAX];
	uint64_t rng = 0x1234567887654321ull, next = 0, sum = 0;
	struct stall st = { 0 };

	pin_self(s->cpu[0]);
	while (next < s->records) {
		uint64_t x = xorshift(&rng);
		uint32_t n = 1 + (uint32_t)(x % STRESS_BATCH_MAX), sent;
		if (n > s->records - next)
			n = (uint32_t)(s->records - next);
		if ((x >> 32) % STRESS_MARKER_EVERY < n)
			stress_send_marker(s, next);
		for (uint32_t i = 0; i < n; i++)
			batch[i] = (struct stress_rec){ next + i,
							rec_hash(next + i) };
		sent = weir_ring_enqueue_burst_spsc(s->r, batch, n);
		for (uint32_t i = 0; i < sent; i++)
			sum = sum_step(sum, batch[i].hash);
		next += sent;
		if (stall_check(s, &st, sent > 0))
			break;
	}
	stress_send_end(s, next);
	s->tx_sum = sum;
	return NULL;
}

static void stress_note_bad(struct stress *s, uint64_t *counter)
{
	if (s->bad_seq + s->bad_hash + s->bad_marker == 0)
		s->first_bad_at = s->rx_records;
	(*counter)++;
}

static void stress_check_batch(struct stress *s,
			       const struct stress_rec *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (b[i].seq != s->rx_records)
			stress_note_bad(s, &s->bad_seq);
		if (b[i].hash != rec_hash(b[i].seq))
			stress_note_bad(s, &s->bad_hash);
		s->rx_sum = sum_step(s->rx_sum, b[i].hash);
		s->rx_records++;
	}
}

/* Takes every marker that is next in order; -1 at END, else how many. */
static int stress_take_markers(struct stress *s)
{
	struct weir_marker m;
	int taken = 0;

	while (weir_ring_dequeue_marker_spsc(s->r, &m) == 1) {
		if (m.value != s->rx_records)
			stress_note_bad(s, &s->bad_marker);
		if (m.kind == WEIR_MARKER_END)
			return -1;
		if (m.kind != WEIR_MARKER_USER || m.arg != s->rx_markers)
			stress_note_bad(s, &s->bad_marker);
		s->rx_markers++;
		taken++;
	}
	return taken;
}

static void *stress_consumer(void *p)
{
	struct stress *s = p;
	struct stress_rec batch[STRESS_BATCH_MAX];
	uint64_t rng = 0xDEADBEEFCAFEF00Dull;
	struct stall st = { 0 };

	pin_self(s->cpu[1]);
	for (;;) {
		uint32_t want = 1 + (uint32_t)(xorshift(&rng) % STRESS_BATCH_MAX);
		uint32_t got = weir_ring_dequeue_burst_spsc(s->r, batch, want);
		int marks = 0;
		stress_check_batch(s, batch, got);
		if (got < want && (marks = stress_take_markers(s)) < 0)
			break;
		if (stall_check(s, &st, got > 0 || marks > 0))
			break;
	}
	return NULL;
}

static void stress_pick_cpus(struct stress *s)
{
	cpu_set_t set;
	int found = 0;

	s->cpu[0] = s->cpu[1] = -1;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return;
	for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
		if (CPU_ISSET(c, &set))
			s->cpu[found++] = c;
	if (found < 2)
		s->cpu[0] = s->cpu[1] = -1;
}

/* On stderr: Criterion drops a test's output in --tap=- mode, which is why
 * meson runs this test on its own, without TAP (tests/meson.build). */
static void stress_report(const struct stress *s, double secs)
{
	fprintf(stderr,
		"ring stress: %" PRIu64 " records, %" PRIu64 " markers, "
		"CPUs %d/%d, %.2f s, %.1f M records/s\n",
		s->records, s->rx_markers, s->cpu[0], s->cpu[1], secs,
		(double)s->records / secs / 1e6);
}

static void stress_verify(const struct stress *s)
{
	cr_expect(!s->stalled, "stalled after %" PRIu64 " records, %" PRIu64
		  " markers", s->rx_records, s->rx_markers);
	cr_expect_eq(s->bad_seq, 0, "%" PRIu64 " records out of sequence, "
		     "first at %" PRIu64, s->bad_seq, s->first_bad_at);
	cr_expect_eq(s->bad_hash, 0, "%" PRIu64 " corrupted records",
		     s->bad_hash);
	cr_expect_eq(s->bad_marker, 0, "%" PRIu64 " markers out of place, "
		     "first problem at record %" PRIu64, s->bad_marker,
		     s->first_bad_at);
	cr_expect_eq(s->rx_records, s->records);
	cr_expect_eq(s->rx_markers, s->tx_markers);
	cr_expect_gt(s->tx_markers, s->records / STRESS_MARKER_EVERY / 2);
	cr_expect_eq(s->rx_sum, s->tx_sum, "checksum differs");
	cr_expect_eq(weir_ring_count(s->r), 0u);
}

Test(ring, two_thread_stress, .timeout = 280)
{
	struct stress s = { .records = stress_records() };
	pthread_t tx, rx;
	double t0;

	s.r = ring_new(1024, sizeof(struct stress_rec));
	stress_pick_cpus(&s);
	t0 = now_s();
	cr_assert_eq(pthread_create(&rx, NULL, stress_consumer, &s), 0);
	cr_assert_eq(pthread_create(&tx, NULL, stress_producer, &s), 0);
	pthread_join(tx, NULL);
	pthread_join(rx, NULL);
	stress_report(&s, now_s() - t0);
	stress_verify(&s);
	weir_ring_destroy(s.r);
}
