/*
 * bench/state_bench.c — keyed value-state updates per second on one core.
 *
 * The workload of a keyed counter (Flink's ValueState<Long> += 1): 8-byte key,
 * 8-byte value, read-modify-write per record, over 1M and 16M distinct keys
 * drawn uniformly or Zipf(1.1).  The key stream is generated before timing;
 * hashing is timed (it is part of the real per-record cost).  Every key is
 * inserted once before the timed run, so the timed run is all updates.
 *
 * Side by side in the same run:
 *   weir     batches of 32 software-pipelined: batch i+1 hashed (inline
 *            XXH3) and its slots prefetched before batch i is updated
 *            (wr_table_upsert_prefetched), value += 1 in place
 *   rte_hash DPDK 22.11 rte_hash_lookup_bulk_data (CRC32 hash, 8-way cuckoo
 *            buckets, ext table), value behind the data pointer += 1
 *   rocksdb  librocksdb 7.8 C API as Flink's RocksDB backend uses it: Get,
 *            decode, +1, Put; WAL off, default options, DB in a temp dir;
 *            fewer operations (it is ~100x slower), rates per second
 *
 * Output: one JSON object per line, e.g.
 *   {"bench":"state","case":"1M/uniform","metric":"updates_per_s",
 *    "value":2.1e7,"unit":"updates/s","impl":"weir"}
 * plus ratio lines (metric "ratio", impl weir, "baseline":"rocksdb"|...) and
 * bytes_per_key lines.  Each case runs --reps times (default 5); the value is
 * the median.  --quick: 1M keys only, 1 rep, one small RocksDB case (< 10 s).
 *
 *   state_bench [--quick] [--cpu N] [--reps R] [--only CASE] [--no-rocksdb]
 *               [--no-dpdk]          CASE: 1M/uniform 1M/zipf1.1 16M/...
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* XXH3 inline, as everywhere in the build (meson.build). */
#include <xxhash.h>
#include "state/table.h"

#ifndef BENCH_HAVE_DPDK
#define BENCH_HAVE_DPDK 0
#endif
#ifndef BENCH_HAVE_ROCKSDB
#define BENCH_HAVE_ROCKSDB 0
#endif

#if BENCH_HAVE_DPDK
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>
#endif
#if BENCH_HAVE_ROCKSDB
#include <rocksdb/c.h>
#include "bench_util.h"
#endif

#ifndef BATCH
#define BATCH 16u  /* 8-16 best at 1M uniform on Zen 3 (32: -10%), RESULTS.md */
#endif
#define REPS_MAX 15

struct opts {
	bool quick;
	bool rocksdb;
	bool dpdk;
	int cpu;
	int reps;
	const char *only;	/* run just this case, e.g. "1M/uniform" */
};

struct workload {
	const char *name;	/* "1M/uniform" */
	uint64_t nkeys;
	uint64_t *keys;		/* nkeys distinct keys */
	uint64_t *ops;		/* the timed key stream */
	uint64_t nops;
};

static double unit_rand(uint64_t *s)
{
	return (double)(splitmix64(s) >> 11) * 0x1.0p-53;
}

/*
 * Zipf(s) over ranks 1..n by rejection-inversion (Hörmann & Derflinger 1996,
 * as in Apache Commons RNG): O(1) per sample, no n-sized table.
 */
struct zipf {
	double s, n, hx1, hn, sc;
};

static double helper1(double x)
{
	return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x));
}

static double helper2(double x)
{
	return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x / 3 * (1 + 0.25 * x));
}

static double zh_int(const struct zipf *z, double x)
{
	double lx = log(x);

	return helper2((1 - z->s) * lx) * lx;
}

static double zh(const struct zipf *z, double x)
{
	return exp(-z->s * log(x));
}

static double zh_int_inv(const struct zipf *z, double x)
{
	double t = x * (1 - z->s);

	if (t < -1)
		t = -1;
	return exp(helper1(t) * x);
}

static void zipf_init(struct zipf *z, double s, uint64_t n)
{
	z->s = s;
	z->n = (double)n;
	z->hx1 = zh_int(z, 1.5) - 1;
	z->hn = zh_int(z, z->n + 0.5);
	z->sc = 2 - zh_int_inv(z, zh_int(z, 2.5) - zh(z, 2));
}

static uint64_t zipf_sample(const struct zipf *z, uint64_t *rng)
{
	for (;;) {
		double u = z->hn + unit_rand(rng) * (z->hx1 - z->hn);
		double x = zh_int_inv(z, u);
		double k = floor(x + 0.5);

		if (k < 1)
			k = 1;
		else if (k > z->n)
			k = z->n;
		if (k - x <= z->sc || u >= zh_int(z, k + 0.5) - zh(z, k))
			return (uint64_t)k;
	}
}

/* Distinct keys (splitmix64 is a bijection of the counter) and the stream. */
static int workload_make(struct workload *w, const char *name, uint64_t nkeys,
			 uint64_t nops, bool zipf)
{
	uint64_t seed = 1, rng = 12345;
	struct zipf z;

	w->name = name;
	w->nkeys = nkeys;
	w->nops = nops;
	w->keys = malloc(nkeys * sizeof(uint64_t));
	w->ops = malloc(nops * sizeof(uint64_t));
	if (!w->keys || !w->ops)
		return -ENOMEM;
	for (uint64_t i = 0; i < nkeys; i++)
		w->keys[i] = splitmix64(&seed);
	zipf_init(&z, 1.1, nkeys);
	for (uint64_t i = 0; i < nops; i++) {
		uint64_t r = zipf ? zipf_sample(&z, &rng) - 1
				  : splitmix64(&rng) % nkeys;
		w->ops[i] = w->keys[r];
	}
	return 0;
}

static void workload_free(struct workload *w)
{
	free(w->keys);
	free(w->ops);
}

static void emit(const char *cs, const char *metric, double v, const char *unit,
		 const char *impl, const char *baseline)
{
	printf("{\"bench\":\"state\",\"case\":\"%s\",\"metric\":\"%s\","
	       "\"value\":%.6g,\"unit\":\"%s\",\"impl\":\"%s\"", cs, metric, v,
	       unit, impl);
	if (baseline)
		printf(",\"baseline\":\"%s\"", baseline);
	printf("}\n");
	fflush(stdout);
}

/* ---- weir ---------------------------------------------------------------- */

static void weir_hash_batch(const struct wr_table *t, const uint64_t *keys,
			    uint32_t m, uint64_t *hashes)
{
	for (uint32_t j = 0; j < m; j++)
		hashes[j] = XXH3_64bits(&keys[j], 8);
	wr_table_prefetch_batch(t, hashes, m);
}

/* Software-pipelined: batch i+1 is hashed and its slots prefetched before
 * batch i is updated, so a batch's DRAM misses overlap the previous
 * batch's work instead of stalling it (one stall per batch before). */
static int weir_apply(struct wr_table *t, const uint64_t *keys, uint64_t n)
{
	uint64_t hashes[2][BATCH];
	void *vals[BATCH];
	uint32_t m = n < BATCH ? (uint32_t)n : BATCH;

	weir_hash_batch(t, keys, m, hashes[0]);
	for (uint64_t i = 0, b = 0; i < n; i += m, b ^= 1) {
		m = n - i < BATCH ? (uint32_t)(n - i) : BATCH;
		uint64_t next = i + m;
		if (next < n)
			weir_hash_batch(t, &keys[next],
					n - next < BATCH ? (uint32_t)(n - next)
							 : BATCH,
					hashes[b ^ 1]);
		int err = wr_table_upsert_prefetched(t, &keys[i], hashes[b], m,
						     vals);
		if (err)
			return err;
		for (uint32_t j = 0; j < m; j++)
			(*(uint64_t *)vals[j])++;
	}
	return 0;
}

static uint64_t weir_sum(struct wr_table *t)
{
	struct wr_table_iter it = { 0 };
	const void *k;
	void *v;
	uint64_t sum = 0;

	while (wr_table_next(t, &it, &k, &v))
		sum += *(uint64_t *)v;
	return sum;
}

/* Median updates/s over reps; *bpk = arena bytes used per key. */
static int weir_case(const struct workload *w, int reps, double *rate,
		     double *bpk)
{
	struct wr_arena_config ac = { 8ull << 30, 0, 0 };
	struct wr_table_config tc = { 8, 8, 0 };
	struct wr_arena *a = NULL;
	struct wr_table *t = NULL;
	struct wr_arena_stats as;
	double r[REPS_MAX];
	int err;

	err = wr_arena_create(&ac, &a);
	if (!err)
		err = wr_table_create(a, &tc, &t);
	if (!err)
		err = weir_apply(t, w->keys, w->nkeys);
	while (!err && wr_table_step(t, 1u << 16))
		;
	for (int i = 0; !err && i < reps; i++) {
		double t0 = now_s();
		err = weir_apply(t, w->ops, w->nops);
		r[i] = (double)w->nops / (now_s() - t0);
	}
	if (!err && weir_sum(t) != w->nkeys + (uint64_t)reps * w->nops)
		err = -EIO; /* lost or doubled updates: the number is void */
	if (err) {
		fprintf(stderr, "weir: %s (%d)\n", weir_last_error(), err);
	} else {
		wr_arena_get_stats(a, &as);
		*bpk = (double)as.bytes_used / (double)w->nkeys;
		*rate = median(r, reps);
	}
	wr_table_destroy(t);
	wr_arena_destroy(a);
	return err;
}

/* ---- DPDK rte_hash ------------------------------------------------------- */
#if BENCH_HAVE_DPDK
struct rte_state {
	struct rte_hash *h;
	uint64_t *vals;		/* value storage, one slot per key */
	uint64_t nvals;
};

static int rte_upsert_slow(struct rte_state *st, const uint64_t *key)
{
	void *d;

	if (rte_hash_lookup_data(st->h, key, &d) >= 0) {
		(*(uint64_t *)d)++;
		return 0;
	}
	st->vals[st->nvals] = 1;
	return rte_hash_add_key_data(st->h, key, &st->vals[st->nvals++]);
}

static int rte_apply(struct rte_state *st, const uint64_t *keys, uint64_t n)
{
	const void *kp[BATCH];
	void *data[BATCH];
	uint64_t hits;

	for (uint64_t i = 0; i < n; i += BATCH) {
		uint32_t m = n - i < BATCH ? (uint32_t)(n - i) : BATCH;
		for (uint32_t j = 0; j < m; j++)
			kp[j] = &keys[i + j];
		rte_hash_lookup_bulk_data(st->h, kp, m, &hits, data);
		for (uint32_t j = 0; j < m; j++) {
			if (hits >> j & 1) {
				(*(uint64_t *)data[j])++;
			} else if (rte_upsert_slow(st, kp[j]) < 0) {
				return -ENOSPC;
			}
		}
	}
	return 0;
}

static size_t rte_heap_bytes(void)
{
	struct rte_malloc_socket_stats s;
	size_t total = 0;

	for (int sock = 0; sock < RTE_MAX_NUMA_NODES; sock++)
		if (rte_malloc_get_socket_stats(sock, &s) == 0)
			total += s.heap_allocsz_bytes;
	return total;
}

static int rte_case(const struct workload *w, int reps, double *rate,
		    double *bpk)
{
	struct rte_hash_parameters p = {
		.name = "state_bench",
		.entries = (uint32_t)(w->nkeys + w->nkeys / 4),
		.key_len = sizeof(uint64_t),
		.hash_func = rte_hash_crc,
		.socket_id = SOCKET_ID_ANY,
		.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
	};
	struct rte_state st = { 0 };
	size_t heap0 = rte_heap_bytes();
	double r[REPS_MAX];
	int err = 0;

	st.h = rte_hash_create(&p);
	st.vals = calloc(w->nkeys, sizeof(uint64_t));
	if (!st.h || !st.vals) {
		fprintf(stderr, "rte_hash_create: %s\n", rte_strerror(rte_errno));
		err = -ENOMEM;
	}
	if (!err)
		err = rte_apply(&st, w->keys, w->nkeys);
	*bpk = (double)(rte_heap_bytes() - heap0) / (double)w->nkeys +
	       sizeof(uint64_t); /* + the value array */
	for (int i = 0; !err && i < reps; i++) {
		double t0 = now_s();
		err = rte_apply(&st, w->ops, w->nops);
		r[i] = (double)w->nops / (now_s() - t0);
	}
	if (!err)
		*rate = median(r, reps);
	rte_hash_free(st.h);
	free(st.vals);
	return err;
}

static int dpdk_init(int cpu, bool quick)
{
	char lcore[16], mem[16];
	char *argv[] = { "state_bench", "--no-huge", "--no-pci", "--no-shconf",
			 "--no-telemetry", "--log-level", "error", "-l", lcore,
			 "-m", mem, NULL };

	snprintf(lcore, sizeof(lcore), "%d", cpu);
	snprintf(mem, sizeof(mem), "%d", quick ? 512 : 3072);
	if (rte_eal_init(11, argv) < 0) {
		fprintf(stderr, "rte_eal_init: %s\n", rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}
#endif

/* ---- RocksDB --------------------------------------------------------------- */
#if BENCH_HAVE_ROCKSDB
struct rocks {
	rocksdb_t *db;
	rocksdb_options_t *o;
	rocksdb_readoptions_t *ro;
	rocksdb_writeoptions_t *wo;
	char dir[64];
};

static int rocks_check(char *err, const char *what)
{
	if (!err)
		return 0;
	fprintf(stderr, "rocksdb %s: %s\n", what, err);
	rocksdb_free(err);
	return -EIO;
}

static int rocks_open(struct rocks *r)
{
	char *err = NULL;

	snprintf(r->dir, sizeof(r->dir), "/tmp/weir-state-bench-XXXXXX");
	if (!mkdtemp(r->dir))
		return -errno;
	r->o = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(r->o, 1);
	r->ro = rocksdb_readoptions_create();
	r->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_disable_WAL(r->wo, 1);
	r->db = rocksdb_open(r->o, r->dir, &err);
	return rocks_check(err, "open");
}

static void rocks_close(struct rocks *r)
{
	char *err = NULL;

	if (r->db)
		rocksdb_close(r->db);
	rocksdb_destroy_db(r->o, r->dir, &err);
	rocks_check(err, "destroy");
	rmdir(r->dir);
	rocksdb_options_destroy(r->o);
	rocksdb_readoptions_destroy(r->ro);
	rocksdb_writeoptions_destroy(r->wo);
}

static int rocks_load(struct rocks *r, const struct workload *w)
{
	uint64_t zero = 0;
	char *err = NULL;

	for (uint64_t i = 0; i < w->nkeys && !err; i += 4096) {
		rocksdb_writebatch_t *b = rocksdb_writebatch_create();
		for (uint64_t j = i; j < w->nkeys && j < i + 4096; j++)
			rocksdb_writebatch_put(b, (const char *)&w->keys[j], 8,
					       (const char *)&zero, 8);
		rocksdb_write(r->db, r->wo, b, &err);
		rocksdb_writebatch_destroy(b);
	}
	return rocks_check(err, "load");
}

/* Flink's ValueState.update(value() + 1): Get, decode, +1, Put. */
static int rocks_apply(struct rocks *r, const uint64_t *keys, uint64_t n)
{
	char *err = NULL;

	for (uint64_t i = 0; i < n && !err; i++) {
		size_t len = 0;
		uint64_t v = 0;
		char *old = rocksdb_get(r->db, r->ro, (const char *)&keys[i], 8,
					&len, &err);
		if (old && len == 8)
			memcpy(&v, old, 8);
		rocksdb_free(old);
		v++;
		if (!err)
			rocksdb_put(r->db, r->wo, (const char *)&keys[i], 8,
				    (const char *)&v, 8, &err);
	}
	return rocks_check(err, "get/put");
}

static int rocks_case(const struct workload *w, uint64_t nops, int reps,
		      double *rate)
{
	struct rocks r = { 0 };
	double rr[REPS_MAX];
	int err = rocks_open(&r);

	if (!err)
		err = rocks_load(&r, w);
	for (int i = 0; !err && i < reps; i++) {
		double t0 = now_s();
		err = rocks_apply(&r, w->ops + (uint64_t)i * nops % (w->nops - nops),
				  nops);
		rr[i] = (double)nops / (now_s() - t0);
	}
	if (!err)
		*rate = median(rr, reps);
	rocks_close(&r);
	return err;
}
#endif

/* ---- driver ---------------------------------------------------------------- */

static int parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){ false, BENCH_HAVE_ROCKSDB, BENCH_HAVE_DPDK, 1, 5,
			    NULL };
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			o->quick = true;
		else if (!strcmp(argv[i], "--no-rocksdb"))
			o->rocksdb = false;
		else if (!strcmp(argv[i], "--no-dpdk"))
			o->dpdk = false;
		else if (!strcmp(argv[i], "--cpu") && i + 1 < argc)
			o->cpu = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			o->reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			o->only = argv[++i];
		else {
			fprintf(stderr, "usage: state_bench [--quick] [--cpu N] "
				"[--reps R] [--only CASE] [--no-rocksdb] "
				"[--no-dpdk]\n");
			return -EINVAL;
		}
	}
	if (o->reps < 1 || o->reps > REPS_MAX) {
		fprintf(stderr, "state_bench: --reps must be 1..%d\n", REPS_MAX);
		return -EINVAL;
	}
	if (o->quick)
		o->reps = 1;
	return 0;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		perror("state_bench: sched_setaffinity");
}

static void run_case(const struct opts *o, const char *name, uint64_t nkeys,
		     uint64_t nops, uint64_t rocks_ops, bool zipf)
{
	struct workload w;
	double weir = 0, bpk = 0, other = 0, obpk = 0;

	if (o->only && strcmp(o->only, name))
		return;
	if (workload_make(&w, name, nkeys, nops, zipf)) {
		fprintf(stderr, "state_bench: out of memory for %s\n", name);
		exit(1);
	}
	if (weir_case(&w, o->reps, &weir, &bpk) == 0) {
		emit(name, "updates_per_s", weir, "updates/s", "weir", NULL);
		emit(name, "bytes_per_key", bpk, "B", "weir", NULL);
	}
#if BENCH_HAVE_DPDK
	if (o->dpdk && rte_case(&w, o->reps, &other, &obpk) == 0) {
		emit(name, "updates_per_s", other, "updates/s", "rte_hash", NULL);
		emit(name, "bytes_per_key", obpk, "B", "rte_hash", NULL);
		if (weir > 0)
			emit(name, "ratio", weir / other, "x", "weir", "rte_hash");
	}
#endif
#if BENCH_HAVE_ROCKSDB
	if (o->rocksdb && rocks_ops &&
	    rocks_case(&w, rocks_ops, o->reps < 3 ? o->reps : 3, &other) == 0) {
		emit(name, "updates_per_s", other, "updates/s", "rocksdb", NULL);
		if (weir > 0)
			emit(name, "ratio", weir / other, "x", "weir", "rocksdb");
	}
#endif
	(void)other;
	(void)obpk;
	(void)rocks_ops;
	workload_free(&w);
}

int main(int argc, char **argv)
{
	struct opts o;

	if (parse(argc, argv, &o))
		return 2;
#if BENCH_HAVE_DPDK
	if (o.dpdk && dpdk_init(o.cpu, o.quick))
		o.dpdk = false;
#endif
	pin(o.cpu);
	if (o.quick) {
		run_case(&o, "1M/uniform", 1u << 20, 2u << 20, 20000, false);
		run_case(&o, "1M/zipf1.1", 1u << 20, 2u << 20, 0, true);
		return 0;
	}
	run_case(&o, "1M/uniform", 1u << 20, 32u << 20, 200000, false);
	run_case(&o, "1M/zipf1.1", 1u << 20, 32u << 20, 200000, true);
	run_case(&o, "16M/uniform", 16u << 20, 32u << 20, 100000, false);
	run_case(&o, "16M/zipf1.1", 16u << 20, 32u << 20, 100000, true);
	return 0;
}
