/*
 * ring_bench.c — throughput and one-way latency of weir's SPSC ring, side by
 * side with DPDK's rte_ring (SP/SC bulk, esize = record size) in the same run.
 *
 * METHOD
 *   Producer on --cpus P (default 0, the main thread), consumer on C (default
 *   1, a pthread), for record sizes 8, 16, 64 bytes and batches 1, 8, 32.
 *   Both rings hold 4096 slots (rte_ring without RING_F_EXACT_SZ: 4095).
 *   Both implementations are driven by the same inlined loops, specialised
 *   per (implementation, record size) so that rte_ring gets its esize as a
 *   compile-time constant, as a DPDK application would.
 *
 *   c2c         First, per case: half the median round trip of a
 *               cache-line ping-pong between the two CPUs, the hardware
 *               floor under both rings (see c2c_probe()).
 *   throughput  The producer enqueues N records (bulk, `batch` at a time),
 *               each carrying its sequence number in its first 8 bytes; the
 *               consumer dequeues (bulk, same batch) and checks the order.
 *               Time runs from the start barrier to the consumer's last
 *               record (CLOCK_MONOTONIC_RAW).  N is sized from a warm-up
 *               run to last --seconds; --reps repetitions alternate weir and
 *               rte_ring; the median is reported.
 *   latency     One-way, at low load: the producer reads the TSC, stamps it
 *               into every record of one batch, enqueues the batch, then
 *               spins --gap-ns (from the stamp) before the next, so the
 *               ring is nearly always empty.  The consumer busy-polls; when
 *               the whole batch has been dequeued it reads the TSC
 *               (lfence-ordered) and records now - stamp.  So a sample is
 *               "stamp before the enqueue call -> whole batch dequeued",
 *               copies included; for batch 1 it is one record's latency.
 *               8-byte records carry only the stamp (no room for a
 *               sequence number); their order check is "stamps never go
 *               back".  --samples are taken in --reps chunks alternating
 *               weir and rte_ring, then pooled.  TSC ticks become ns
 *               through a frequency calibrated against CLOCK_MONOTONIC_RAW.
 *
 * OUTPUT
 *   One JSON object per measurement on stdout, one per line; the weir line
 *   also carries the rte_ring figure as "baseline" and a "ratio" (see
 *   "ratio_def").  Progress and notes go to stderr.  Exit status: 0, 1 when
 *   a record was lost or reordered (or a ring could not be built), 2 on a
 *   bad option.  There is no time threshold: slow is never a failure.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "weir/ring.h"
#include "weir_config.h"

#if WEIR_HAVE_DPDK
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include "bench_util.h"
#endif

#define BATCH_MAX 32u
#define SIZE_MAX_B 64u
#define LAT_WARMUP 1000u

enum impl { IMPL_WEIR, IMPL_RTE, IMPL_COUNT };
static const char *const impl_name[IMPL_COUNT] = { "weir", "rte_ring" };

static const uint32_t sizes[] = { 8, 16, 64 };
static const uint32_t batches[] = { 1, 8, 32 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
#define NBATCHES (sizeof(batches) / sizeof(batches[0]))

struct opts {
	uint64_t records;  /* 0: size from --seconds */
	double seconds;    /* target duration of one throughput repetition */
	uint32_t samples;  /* latency samples per case and implementation */
	uint32_t reps;     /* throughput repetitions per implementation */
	uint32_t capacity; /* ring slots */
	uint32_t gap_ns;   /* producer pause between latency batches */
	int cpu_prod, cpu_cons;
	const char *cases; /* comma-separated substrings, NULL: all */
	int quick;
};

/* One measurement, shared by the producer (main) and consumer threads. */
struct run {
	void *ring;
	uint32_t batch;
	uint64_t count;   /* records (throughput) or batches (latency) */
	uint64_t gap_tsc; /* latency: producer pause in TSC ticks */
	uint64_t *lat;    /* latency: count samples, in TSC ticks */
	int cpu_cons;
	int lone_cpu;     /* both threads share one CPU: yield when waiting */
	alignas(WEIR_CACHE_LINE) _Atomic int ready;
	_Atomic int go;
	/* Cache-line ping-pong (c2c probe): each written by one side. */
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t ping;
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t pong;
	alignas(WEIR_CACHE_LINE) uint64_t t0_ns;
	alignas(WEIR_CACHE_LINE) uint64_t t1_ns;
	uint64_t errors;
};

static double tsc_hz;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* TSC read that does not start before earlier loads have completed. */
static inline uint64_t tsc_ordered(void)
{
	_mm_lfence();
	return __rdtsc();
}

static inline void wait_a_bit(const struct run *r)
{
	_mm_pause();
	if (WEIR_UNLIKELY(r->lone_cpu))
		sched_yield();
}

/* --- the two implementations behind one inlined interface --- */

static inline __attribute__((always_inline)) uint32_t
ring_enq(enum impl impl, void *ring, const void *recs, uint32_t size,
	 uint32_t n)
{
#if WEIR_HAVE_DPDK
	if (impl == IMPL_RTE)
		return rte_ring_sp_enqueue_bulk_elem(ring, recs, size, n, NULL);
#endif
	(void)impl;
	(void)size;
	return weir_ring_enqueue_bulk_spsc(ring, recs, n);
}

static inline __attribute__((always_inline)) uint32_t
ring_deq(enum impl impl, void *ring, void *recs, uint32_t size, uint32_t n)
{
#if WEIR_HAVE_DPDK
	if (impl == IMPL_RTE)
		return rte_ring_sc_dequeue_bulk_elem(ring, recs, size, n, NULL);
#endif
	(void)impl;
	(void)size;
	return weir_ring_dequeue_bulk_spsc(ring, recs, n);
}

static inline uint64_t load_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void store_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* --- throughput loops --- */

static inline __attribute__((always_inline)) void
tp_produce(struct run *r, enum impl impl, uint32_t size)
{
	alignas(WEIR_CACHE_LINE) uint8_t buf[BATCH_MAX * SIZE_MAX_B];
	uint32_t batch = r->batch;

	memset(buf, 0xa5, sizeof(buf));
	while (atomic_load_explicit(&r->ready, memory_order_acquire) == 0)
		wait_a_bit(r);
	r->t0_ns = now_ns();
	/* Pairs with the acquire loads of go in tp_consume(). */
	atomic_store_explicit(&r->go, 1, memory_order_release);
	for (uint64_t seq = 0; seq < r->count; seq += batch) {
		for (uint32_t i = 0; i < batch; i++)
			store_u64(buf + i * size, seq + i);
		while (ring_enq(impl, r->ring, buf, size, batch) == 0)
			wait_a_bit(r);
	}
}

static inline __attribute__((always_inline)) void
tp_consume(struct run *r, enum impl impl, uint32_t size)
{
	alignas(WEIR_CACHE_LINE) uint8_t buf[BATCH_MAX * SIZE_MAX_B];
	uint32_t batch = r->batch;
	uint64_t bad = 0;

	/* Pairs with the acquire load of ready in tp_produce(). */
	atomic_store_explicit(&r->ready, 1, memory_order_release);
	while (atomic_load_explicit(&r->go, memory_order_acquire) == 0)
		wait_a_bit(r);
	for (uint64_t seq = 0; seq < r->count;) {
		if (ring_deq(impl, r->ring, buf, size, batch) == 0) {
			wait_a_bit(r);
			continue;
		}
		uint64_t diff = 0;
		for (uint32_t i = 0; i < batch; i++)
			diff |= load_u64(buf + i * size) ^ (seq + i);
		bad += diff != 0;
		seq += batch;
	}
	r->t1_ns = now_ns();
	r->errors = bad;
}

/* --- latency loops --- */

/* Records >= 16 bytes: [0,8) sequence, [8,16) stamp; 8 bytes: stamp only. */
static inline __attribute__((always_inline)) void
lat_stamp(uint8_t *buf, uint32_t size, uint32_t batch, uint64_t seq,
	  uint64_t t)
{
	for (uint32_t i = 0; i < batch; i++) {
		if (size >= 16) {
			store_u64(buf + i * size, seq + i);
			store_u64(buf + i * size + 8, t);
		} else {
			store_u64(buf + i * size, t);
		}
	}
}

static inline __attribute__((always_inline)) void
lat_produce(struct run *r, enum impl impl, uint32_t size)
{
	alignas(WEIR_CACHE_LINE) uint8_t buf[BATCH_MAX * SIZE_MAX_B];
	uint32_t batch = r->batch;

	memset(buf, 0xa5, sizeof(buf));
	while (atomic_load_explicit(&r->ready, memory_order_acquire) == 0)
		wait_a_bit(r);
	atomic_store_explicit(&r->go, 1, memory_order_release);
	for (uint64_t k = 0; k < r->count; k++) {
		uint64_t t = __rdtsc();

		lat_stamp(buf, size, batch, k * batch, t);
		while (ring_enq(impl, r->ring, buf, size, batch) == 0)
			wait_a_bit(r);
		while (__rdtsc() - t < r->gap_tsc)
			wait_a_bit(r);
	}
}

/* Checks one received latency batch; returns its stamp or 0 when wrong. */
static inline __attribute__((always_inline)) uint64_t
lat_check(const uint8_t *buf, uint32_t size, uint32_t batch, uint64_t seq,
	  uint64_t prev)
{
	uint64_t off = size >= 16 ? 8 : 0;
	uint64_t t = load_u64(buf + off);
	uint64_t diff = t < prev;

	for (uint32_t i = 0; i < batch; i++) {
		diff |= load_u64(buf + i * size + off) ^ t;
		if (size >= 16)
			diff |= load_u64(buf + i * size) ^ (seq + i);
	}
	return diff ? 0 : t;
}

static inline __attribute__((always_inline)) void
lat_consume(struct run *r, enum impl impl, uint32_t size)
{
	alignas(WEIR_CACHE_LINE) uint8_t buf[BATCH_MAX * SIZE_MAX_B];
	uint32_t batch = r->batch;
	uint64_t prev = 0, bad = 0;

	atomic_store_explicit(&r->ready, 1, memory_order_release);
	while (atomic_load_explicit(&r->go, memory_order_acquire) == 0)
		wait_a_bit(r);
	for (uint64_t k = 0; k < r->count;) {
		if (ring_deq(impl, r->ring, buf, size, batch) == 0) {
			if (WEIR_UNLIKELY(r->lone_cpu))
				sched_yield();
			continue;
		}
		uint64_t now = tsc_ordered();
		uint64_t t = lat_check(buf, size, batch, k * batch, prev);

		bad += t == 0;
		r->lat[k++] = now - t;
		prev = t;
	}
	r->errors = bad;
}

/* --- core-to-core probe: the hardware floor under both rings --- */

/* Producer: count round trips on two cache lines; lat[k] = round trip. */
static void pp_produce(struct run *r)
{
	while (atomic_load_explicit(&r->ready, memory_order_acquire) == 0)
		wait_a_bit(r);
	for (uint64_t k = 1; k <= r->count; k++) {
		uint64_t t = __rdtsc();

		/* Pairs with the acquire load of ping in pp_consume(). */
		atomic_store_explicit(&r->ping, k, memory_order_release);
		/* Pairs with the release store of pong in pp_consume(). */
		while (atomic_load_explicit(&r->pong, memory_order_acquire) != k)
			if (WEIR_UNLIKELY(r->lone_cpu))
				sched_yield();
		r->lat[k - 1] = tsc_ordered() - t;
	}
}

static void pp_consume(struct run *r)
{
	atomic_store_explicit(&r->ready, 1, memory_order_release);
	for (uint64_t k = 1; k <= r->count; k++) {
		while (atomic_load_explicit(&r->ping, memory_order_acquire) != k)
			if (WEIR_UNLIKELY(r->lone_cpu))
				sched_yield();
		atomic_store_explicit(&r->pong, k, memory_order_release);
	}
}

/* One non-inlined instance per (implementation, record size). */
typedef void (*loop_fn)(struct run *r);
struct loops {
	loop_fn tp_prod, tp_cons, lat_prod, lat_cons;
};

#define DEFINE_LOOPS(tag, impl, size)                                         \
	static void tp_prod_##tag(struct run *r) { tp_produce(r, impl, size); } \
	static void tp_cons_##tag(struct run *r) { tp_consume(r, impl, size); } \
	static void lat_prod_##tag(struct run *r) { lat_produce(r, impl, size); } \
	static void lat_cons_##tag(struct run *r) { lat_consume(r, impl, size); }
#define LOOPS(tag) { tp_prod_##tag, tp_cons_##tag, lat_prod_##tag, lat_cons_##tag }

DEFINE_LOOPS(w8, IMPL_WEIR, 8)
DEFINE_LOOPS(w16, IMPL_WEIR, 16)
DEFINE_LOOPS(w64, IMPL_WEIR, 64)
#if WEIR_HAVE_DPDK
DEFINE_LOOPS(d8, IMPL_RTE, 8)
DEFINE_LOOPS(d16, IMPL_RTE, 16)
DEFINE_LOOPS(d64, IMPL_RTE, 64)
#endif

static const struct loops loop_table[IMPL_COUNT][NSIZES] = {
	{ LOOPS(w8), LOOPS(w16), LOOPS(w64) },
#if WEIR_HAVE_DPDK
	{ LOOPS(d8), LOOPS(d16), LOOPS(d64) },
#endif
};

/* --- rings --- */

static int ring_make(enum impl impl, uint32_t capacity, uint32_t size,
		     void **out)
{
#if WEIR_HAVE_DPDK
	if (impl == IMPL_RTE) {
		ssize_t bytes = rte_ring_get_memsize_elem(size, capacity);
		struct rte_ring *d;

		if (bytes < 0)
			return (int)bytes;
		bytes = (bytes + WEIR_CACHE_LINE - 1) & ~(ssize_t)(WEIR_CACHE_LINE - 1);
		d = aligned_alloc(WEIR_CACHE_LINE, (size_t)bytes);
		if (d == NULL)
			return -ENOMEM;
		memset(d, 0, (size_t)bytes);
		int rc = rte_ring_init(d, "ring_bench", capacity,
				       RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (rc < 0) {
			free(d);
			return rc;
		}
		*out = d;
		return 0;
	}
#endif
	(void)impl;
	return weir_ring_create(capacity, size, (struct weir_ring **)out);
}

static void ring_free(enum impl impl, void *ring)
{
	if (impl == IMPL_RTE)
		free(ring);
	else
		weir_ring_destroy(ring);
}

/* --- threads --- */

struct consumer_arg {
	struct run *r;
	loop_fn fn;
};

static void *consumer_main(void *p)
{
	struct consumer_arg *a = p;

	a->fn(a->r);
	return NULL;
}

static int pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* Runs prod on this thread and cons on a new thread pinned to cpu_cons. */
static int run_pair(struct run *r, loop_fn prod, loop_fn cons)
{
	struct consumer_arg a = { r, cons };
	pthread_attr_t attr;
	pthread_t th;
	cpu_set_t set;
	int rc;

	atomic_store(&r->ready, 0);
	atomic_store(&r->go, 0);
	CPU_ZERO(&set);
	CPU_SET(r->cpu_cons, &set);
	pthread_attr_init(&attr);
	if (!r->lone_cpu)
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	rc = pthread_create(&th, &attr, consumer_main, &a);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		return -rc;
	prod(r);
	pthread_join(th, NULL);
	return 0;
}

/* --- measurements --- */

struct ctx {
	const struct opts *o;
	int lone_cpu;
	int nimpl; /* IMPL_COUNT with DPDK, 1 without */
	uint64_t errors;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static void run_init(struct run *r, const struct ctx *c, uint32_t batch)
{
	memset(r, 0, sizeof(*r));
	r->batch = batch;
	r->cpu_cons = c->o->cpu_cons;
	r->lone_cpu = c->lone_cpu;
}

/* One throughput run of `records` records; *rate_out in records/s. */
static int tp_once(struct ctx *c, enum impl impl, uint32_t si, uint32_t batch,
		   uint64_t records, double *rate_out)
{
	const struct loops *l = &loop_table[impl][si];
	struct run r;
	int rc;

	run_init(&r, c, batch);
	r.count = records;
	rc = ring_make(impl, c->o->capacity, sizes[si], &r.ring);
	if (rc < 0)
		return rc;
	rc = run_pair(&r, l->tp_prod, l->tp_cons);
	ring_free(impl, r.ring);
	if (rc < 0)
		return rc;
	c->errors += r.errors;
	if (r.errors)
		fprintf(stderr, "ring_bench: %s %uB/batch%u: %llu batches out "
			"of order\n", impl_name[impl], sizes[si], batch,
			(unsigned long long)r.errors);
	*rate_out = (double)records * 1e9 / (double)(r.t1_ns - r.t0_ns + 1);
	return 0;
}

static uint64_t round_up(uint64_t n, uint64_t to)
{
	return (n + to - 1) / to * to;
}

/* Record count for one repetition: --records, or --seconds at a warm-up's
 * rate.  A multiple of BATCH_MAX, so every batch size divides it. */
static int tp_size(struct ctx *c, uint32_t si, uint32_t batch,
		   uint64_t *out)
{
	double rate = 0, r1;
	uint64_t warm = c->o->quick ? 8192 : 1u << 18;

	if (c->o->records) {
		*out = round_up(c->o->records, BATCH_MAX);
		return 0;
	}
	for (int i = 0; i < c->nimpl; i++) {
		int rc = tp_once(c, (enum impl)i, si, batch, warm, &r1);
		if (rc < 0)
			return rc;
		rate = r1 > rate ? r1 : rate;
	}
	*out = round_up((uint64_t)(rate * c->o->seconds) + 1, BATCH_MAX);
	return 0;
}

/* Median throughput per implementation over --reps alternating runs. */
static int tp_case(struct ctx *c, uint32_t si, uint32_t batch,
		   double med[IMPL_COUNT])
{
	double v[IMPL_COUNT][64];
	uint32_t reps = c->o->reps;
	uint64_t records;
	int rc = tp_size(c, si, batch, &records);

	for (uint32_t k = 0; rc == 0 && k < reps; k++)
		for (int i = 0; i < c->nimpl && rc == 0; i++)
			rc = tp_once(c, (enum impl)i, si, batch, records,
				     &v[i][k]);
	if (rc < 0)
		return rc;
	for (int i = 0; i < c->nimpl; i++) {
		qsort(v[i], reps, sizeof(double), cmp_double);
		med[i] = v[i][reps / 2];
	}
	return 0;
}

/* One latency run of n samples (after LAT_WARMUP) into out[0..n). */
static int lat_chunk(struct ctx *c, enum impl impl, uint32_t si,
		     uint32_t batch, uint32_t n, uint64_t *out)
{
	const struct loops *l = &loop_table[impl][si];
	struct run r;
	int rc;

	run_init(&r, c, batch);
	r.count = (uint64_t)n + LAT_WARMUP;
	r.gap_tsc = (uint64_t)(c->o->gap_ns * tsc_hz / 1e9);
	r.lat = calloc(r.count, sizeof(uint64_t));
	if (r.lat == NULL)
		return -ENOMEM;
	rc = ring_make(impl, c->o->capacity, sizes[si], &r.ring);
	if (rc == 0) {
		rc = run_pair(&r, l->lat_prod, l->lat_cons);
		ring_free(impl, r.ring);
	}
	if (rc == 0 && r.errors)
		fprintf(stderr, "ring_bench: %s %uB/batch%u latency: %llu "
			"batches wrong\n", impl_name[impl], sizes[si], batch,
			(unsigned long long)r.errors);
	c->errors += r.errors;
	memcpy(out, r.lat + LAT_WARMUP, (size_t)n * sizeof(uint64_t));
	free(r.lat);
	return rc;
}

static void percentiles_ns(uint64_t *s, size_t n, double *p50, double *p99)
{
	qsort(s, n, sizeof(uint64_t), cmp_u64);
	*p50 = (double)s[n / 2] * 1e9 / tsc_hz;
	*p99 = (double)s[n * 99 / 100] * 1e9 / tsc_hz;
}

/* Latency p50/p99 in ns per implementation: --samples each, taken in
 * --reps chunks that alternate the implementations, so that a change in
 * the host's placement of the two vCPUs hits both alike. */
static int lat_case(struct ctx *c, uint32_t si, uint32_t batch,
		    double p50[IMPL_COUNT], double p99[IMPL_COUNT])
{
	uint32_t chunks = c->o->reps, per = c->o->samples / chunks;
	size_t n = (size_t)per * chunks;
	uint64_t *s = calloc(n * IMPL_COUNT, sizeof(uint64_t));
	int rc = s == NULL ? -ENOMEM : 0;

	for (uint32_t k = 0; rc == 0 && k < chunks; k++)
		for (int i = 0; i < c->nimpl && rc == 0; i++)
			rc = lat_chunk(c, (enum impl)i, si, batch, per,
				       s + i * n + (size_t)k * per);
	for (int i = 0; rc == 0 && i < c->nimpl; i++)
		percentiles_ns(s + i * n, n, &p50[i], &p99[i]);
	free(s);
	return rc;
}

/* Median one-way cache-line transfer between the two CPUs, in ns: half a
 * ping-pong round trip.  On the 2-vCPU KVM guest of bench/RESULTS.md it
 * moved between ~35 and ~270 ns from one second to the next as the host
 * placed the vCPUs, and every ring figure moved with it: printed per case
 * so that a run can be read against the hardware floor it had. */
static int c2c_probe(struct ctx *c, double *oneway_ns)
{
	struct run r;
	double p99;
	int rc;

	run_init(&r, c, 1);
	r.count = c->o->quick ? 2000 : 20000;
	r.lat = calloc(r.count, sizeof(uint64_t));
	if (r.lat == NULL)
		return -ENOMEM;
	rc = run_pair(&r, pp_produce, pp_consume);
	if (rc == 0)
		percentiles_ns(r.lat, r.count, oneway_ns, &p99);
	*oneway_ns /= 2;
	free(r.lat);
	return rc;
}

/* --- output --- */

static void emit(const char *cas, const char *metric, const char *unit,
		 enum impl impl, double value, const double *base,
		 const char *ratio_def)
{
	printf("{\"bench\":\"ring\",\"case\":\"%s\",\"metric\":\"%s\","
	       "\"value\":%.6g,\"unit\":\"%s\",\"impl\":\"%s\"",
	       cas, metric, value, unit, impl_name[impl]);
	if (base != NULL) {
		double ratio = impl == IMPL_WEIR && metric[0] == 't'
				       ? value / *base
				       : *base / value;
		printf(",\"baseline\":%.6g,\"baseline_impl\":\"rte_ring\","
		       "\"ratio\":%.4f,\"ratio_def\":\"%s\"",
		       *base, ratio, ratio_def);
	}
	printf("}\n");
}

/* rte_ring's line first, then weir's with the comparison. */
static void emit_pair(const struct ctx *c, const char *cas,
		      const char *metric, const char *unit,
		      const double v[IMPL_COUNT])
{
	const char *def = metric[0] == 't'
				  ? "weir/rte_ring (higher is better)"
				  : "rte_ring/weir (lower latency is better, "
				    "so higher ratio is better)";

	if (c->nimpl > 1)
		emit(cas, metric, unit, IMPL_RTE, v[IMPL_RTE], NULL, NULL);
	emit(cas, metric, unit, IMPL_WEIR, v[IMPL_WEIR],
	     c->nimpl > 1 ? &v[IMPL_RTE] : NULL, def);
	fflush(stdout);
}

static int case_wanted(const char *filter, const char *cas)
{
	char buf[256];

	if (filter == NULL)
		return 1;
	snprintf(buf, sizeof(buf), "%s", filter);
	for (char *save, *t = strtok_r(buf, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save))
		if (strstr(cas, t) != NULL)
			return 1;
	return 0;
}

static int one_case(struct ctx *c, uint32_t si, uint32_t batch)
{
	double tp[IMPL_COUNT] = { 0 }, p50[IMPL_COUNT] = { 0 },
	       p99[IMPL_COUNT] = { 0 }, c2c = 0;
	char cas[32];
	int rc;

	snprintf(cas, sizeof(cas), "%uB/batch%u", sizes[si], batch);
	if (!case_wanted(c->o->cases, cas))
		return 0;
	fprintf(stderr, "ring_bench: %-12s", cas);
	rc = c2c_probe(c, &c2c);
	if (rc == 0)
		rc = tp_case(c, si, batch, tp);
	if (rc == 0)
		rc = lat_case(c, si, batch, p50, p99);
	if (rc < 0) {
		fprintf(stderr, " failed: %s\n", strerror(-rc));
		return rc;
	}
	fprintf(stderr, " c2c %3.0f ns | weir %5.1f M/s p50 %3.0f ns", c2c,
		tp[0] / 1e6, p50[0]);
	if (c->nimpl > 1)
		fprintf(stderr, " | rte_ring %5.1f M/s p50 %3.0f ns",
			tp[1] / 1e6, p50[1]);
	fprintf(stderr, "\n");
	printf("{\"bench\":\"ring\",\"case\":\"%s\",\"metric\":"
	       "\"c2c_oneway_p50\",\"value\":%.6g,\"unit\":\"ns\","
	       "\"impl\":\"cpu\"}\n", cas, c2c);
	emit_pair(c, cas, "throughput", "records/s", tp);
	emit_pair(c, cas, "latency_p50", "ns", p50);
	emit_pair(c, cas, "latency_p99", "ns", p99);
	return 0;
}

/* TSC ticks per second, measured against CLOCK_MONOTONIC_RAW. */
static double tsc_calibrate(uint64_t window_ns)
{
	uint64_t n0 = now_ns(), t0 = __rdtsc(), n1, t1;

	do {
		n1 = now_ns();
		t1 = __rdtsc();
	} while (n1 - n0 < window_ns);
	return (double)(t1 - t0) * 1e9 / (double)(n1 - n0);
}

/* --- options --- */

static const char usage[] =
	"usage: ring_bench [options]\n"
	"  weir SPSC ring vs DPDK rte_ring (SP/SC bulk): throughput and one-way\n"
	"  latency for 8/16/64-byte records, batches 1/8/32.  JSON lines on\n"
	"  stdout, progress on stderr.\n"
	"  --quick          tiny run for CI smoke (a few seconds)\n"
	"  --records N      records per throughput repetition (default: sized\n"
	"                   to --seconds from a warm-up run)\n"
	"  --seconds S      target seconds per repetition (default 0.2)\n"
	"  --reps N         repetitions per impl, alternating impls; median for\n"
	"                   throughput, latency samples pooled (default 5)\n"
	"  --samples N      latency samples per case and impl (default 100000)\n"
	"  --gap-ns N       producer pause between latency batches (default 2000)\n"
	"  --capacity N     ring slots, power of two (default 4096)\n"
	"  --cases LIST     comma-separated substrings of case names, e.g.\n"
	"                   16B/batch32,64B (default: all 9)\n"
	"  --cpus P,C       producer and consumer CPUs (default 0,1)\n"
	"  --help           this text\n";

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end != '\0' || s[0] == '-' || v < lo ||
	    v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_cpus(const char *s, struct opts *o)
{
	int p, c, n;

	if (sscanf(s, "%d,%d%n", &p, &c, &n) != 2 || s[n] != '\0' || p < 0 ||
	    c < 0 || p >= CPU_SETSIZE || c >= CPU_SETSIZE)
		return -EINVAL;
	o->cpu_prod = p;
	o->cpu_cons = c;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v > 0 && v <= 60))
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_one(int ch, const char *arg, struct opts *o)
{
	uint64_t v = 0;
	int rc = 0;

	switch (ch) {
	case 'q':
		o->quick = 1;
		return 0;
	case 'n':
		return parse_u64(arg, 1, 1ull << 40, &o->records);
	case 's':
		return parse_seconds(arg, &o->seconds);
	case 'r':
		rc = parse_u64(arg, 1, 63, &v);
		o->reps = (uint32_t)v;
		break;
	case 'm':
		rc = parse_u64(arg, 100, 100000000, &v);
		o->samples = (uint32_t)v;
		break;
	case 'g':
		rc = parse_u64(arg, 0, 1000000000, &v);
		o->gap_ns = (uint32_t)v;
		break;
	case 'k':
		rc = parse_u64(arg, 64, WEIR_RING_CAPACITY_MAX, &v);
		if (rc == 0 && (v & (v - 1)) != 0)
			rc = -EINVAL;
		o->capacity = (uint32_t)v;
		break;
	case 'c':
		o->cases = arg;
		return 0;
	case 'p':
		return parse_cpus(arg, o);
	default:
		return -EINVAL;
	}
	return rc;
}

/* Returns 0, 1 for --help, or -EINVAL after printing one line. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "quick", no_argument, NULL, 'q' },
		{ "records", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "samples", required_argument, NULL, 'm' },
		{ "gap-ns", required_argument, NULL, 'g' },
		{ "capacity", required_argument, NULL, 'k' },
		{ "cases", required_argument, NULL, 'c' },
		{ "cpus", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, idx = 0;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", lo, &idx)) != -1) {
		if (ch == 'h')
			return 1;
		if (ch == ':') {
			fprintf(stderr, "ring_bench: option '%s' needs a value "
				"(see --help)\n", argv[optind - 1]);
			return -EINVAL;
		}
		if (ch == '?') {
			fprintf(stderr, "ring_bench: bad option '%s' (see "
				"--help)\n", argv[optind - 1]);
			return -EINVAL;
		}
		if (parse_one(ch, optarg, o) < 0) {
			fprintf(stderr, "ring_bench: bad value '%s' for "
				"--%s (see --help)\n", optarg, lo[idx].name);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ring_bench: unexpected argument '%s' (see "
			"--help)\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* --- main --- */

/* Pins the producer; falls back to one shared CPU when C is unavailable. */
static void setup_cpus(struct ctx *c)
{
	const struct opts *o = c->o;
	cpu_set_t allowed;

	CPU_ZERO(&allowed);
	sched_getaffinity(0, sizeof(allowed), &allowed);
	if (o->cpu_prod == o->cpu_cons || !CPU_ISSET(o->cpu_prod, &allowed) ||
	    !CPU_ISSET(o->cpu_cons, &allowed)) {
		c->lone_cpu = 1;
		fprintf(stderr, "ring_bench: CPUs %d,%d not both available: "
			"running unpinned, threads yield; numbers are "
			"meaningless\n", o->cpu_prod, o->cpu_cons);
		return;
	}
	if (pin_self(o->cpu_prod) < 0)
		fprintf(stderr, "ring_bench: cannot pin producer to CPU %d\n",
			o->cpu_prod);
}

int main(int argc, char **argv)
{
	struct opts o = { .seconds = 0.2, .samples = 100000, .reps = 5,
			  .capacity = 4096, .gap_ns = 2000, .cpu_prod = 0,
			  .cpu_cons = 1 };
	struct ctx c = { .o = &o, .nimpl = WEIR_HAVE_DPDK ? IMPL_COUNT : 1 };
	int rc = parse_opts(argc, argv, &o);

	if (rc != 0) {
		fputs(rc > 0 ? usage : "", rc > 0 ? stdout : stderr);
		return rc > 0 ? 0 : 2;
	}
	if (o.quick) {
		o.records = o.records ? o.records : 65536;
		o.reps = 1;
		o.samples = 2000;
	}
	setup_cpus(&c);
	tsc_hz = tsc_calibrate(o.quick ? 10000000 : 100000000);
	fprintf(stderr, "ring_bench: TSC %.4f GHz, capacity %u, %s\n",
		tsc_hz / 1e9, o.capacity,
		c.nimpl > 1 ? "vs DPDK rte_ring (SP/SC bulk elem)"
			    : "DPDK not built: weir only, no baseline");
	for (uint32_t si = 0; si < NSIZES; si++)
		for (uint32_t bi = 0; bi < NBATCHES; bi++)
			if (one_case(&c, si, batches[bi]) < 0)
				return 1;
	if (c.errors) {
		fprintf(stderr, "ring_bench: FAILED: %llu batches lost or out "
			"of order\n", (unsigned long long)c.errors);
		return 1;
	}
	return 0;
}
