/*
 * state_pipeline_test.c — keyed state used from keyed process functions,
 * end to end through the pipeline, against brute-force models.
 *
 * Test plan:
 *   - list, map, reducing and aggregating state on random input, on 1 and 2
 *     cores: per key, at the final watermark (an event timer per key), the
 *     list equals the model's values in arrival order, the map the model's
 *     per-map-key sums (with removals), the reducing state the max, the
 *     aggregating state (count, sum).  Same results on 1 and 2 cores.
 *   - isolation: records of keys that never write read every state as
 *     absent (length 0, -ENOENT), even though other keys on the same core
 *     hold state.
 *   - TTL (processing time): ttl 30 ms and 200 ms between a key's records
 *     (paced source): every read before the write finds nothing, a read
 *     right after the write finds it; the same run with ttl 60 s finds the
 *     previous values (the control: the reads do see state when it lives).
 *   - memory cap: state_bytes_max 4 MiB, a value state that keeps growing,
 *     policy FAIL -> weir_pipeline_run() returns -ENOMEM and
 *     weir_last_error() names the state and the cap.
 *   - WEIR_STATE_FULL_EVICT with ttl 20 ms on a paced run whose keys need
 *     more than the cap (without the TTL the same run fails -ENOMEM): the
 *     job completes, and no value read is older than the TTL.
 *   - bad state descriptors not covered by pipeline_test.c: list/map value
 *     size 0, map key size 0, reducing without reduce, aggregating without
 *     ops, unknown kind, too many states -> -EINVAL naming the state.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/state.h"
#include "keyed_src.h"
#include "../rng.h"

#define NREC 30000u
#define NKEY 53u
#define NPROBE 4u /* keys NKEY.. only read */
#define NMKEY 8u
#define DUMP_TS (WEIR_TS_MAX - 1)

enum { OP_WRITE = 0, OP_PROBE = 1 };
enum { ST_LIST, ST_MAP, ST_MAX, ST_AGG, NST };

static struct weir_pipeline *pipeline(unsigned cores, size_t cap,
				      enum weir_state_full_policy policy)
{
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;

	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = cores < cfg.runtime.cores ? cores : cfg.runtime.cores;
	cfg.state_bytes_max = cap;
	cfg.state_full_policy = policy;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0, "%s", weir_last_error());
	return p;
}

/* ---- the state kinds' user functions ---- */

static void max_i64(void *acc, const void *in, void *arg)
{
	int64_t a, b;

	(void)arg;
	memcpy(&a, acc, 8);
	memcpy(&b, in, 8);
	if (b > a)
		memcpy(acc, &b, 8);
}

struct cs {
	int64_t count, sum;
};

static void cs_create(void *acc, void *arg)
{
	(void)arg;
	memset(acc, 0, sizeof(struct cs));
}

static void cs_add(void *acc, const void *in, void *arg)
{
	struct cs *a = acc;
	int64_t v;

	(void)arg;
	memcpy(&v, in, 8);
	a->count++;
	a->sum += v;
}

static void cs_merge(void *acc, const void *other, void *arg)
{
	struct cs *a = acc;
	const struct cs *o = other;

	(void)arg;
	a->count += o->count;
	a->sum += o->sum;
}

static void cs_result(const void *acc, void *out, void *arg)
{
	(void)arg;
	memcpy(out, acc, sizeof(struct cs));
}

static const struct weir_aggregate_ops cs_ops = {
	.create = cs_create, .add = cs_add, .merge = cs_merge,
	.result = cs_result, .acc_size = sizeof(struct cs), .in_size = 8,
	.out_size = sizeof(struct cs) };

static const struct weir_state_desc kinds[NST] = {
	[ST_LIST] = { .name = "values", .kind = WEIR_STATE_LIST,
		      .value_size = 8 },
	[ST_MAP] = { .name = "by_mkey", .kind = WEIR_STATE_MAP,
		     .value_size = 8, .map_key_size = 4 },
	[ST_MAX] = { .name = "max", .kind = WEIR_STATE_REDUCING,
		     .value_size = 8, .reduce = max_i64 },
	[ST_AGG] = { .name = "count_sum", .kind = WEIR_STATE_AGGREGATING,
		     .agg = &cs_ops },
};

/* ---- random input and its model ---- */

static struct trec recs[NREC];

struct kinds_result {
	int64_t list[NKEY][NREC]; /* in arrival order */
	uint32_t nlist[NKEY];
	int64_t map[NKEY][NMKEY];
	bool in_map[NKEY][NMKEY];
	int64_t max[NKEY];
	struct cs agg[NKEY];
	bool dumped[NKEY];
};

static struct kinds_result model;

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void) { return t_xorshift(&rng); }

static void model_write(const struct trec *r)
{
	struct kinds_result *m = &model;
	uint32_t k = r->key, mk = (uint32_t)r->b;

	if (m->nlist[k] == 0 || r->a > m->max[k])
		m->max[k] = r->a;
	m->list[k][m->nlist[k]++] = r->a;
	m->agg[k].count++;
	m->agg[k].sum += r->a;
	if (r->a % 13 == 0) {
		m->in_map[k][mk] = false;
		m->map[k][mk] = 0;
	} else {
		m->in_map[k][mk] = true;
		m->map[k][mk] += r->a;
	}
	m->dumped[k] = true;
}

static void make_input(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	for (unsigned i = 0; i < NREC; i++) {
		struct trec *r = &recs[i];
		bool probe = rnd() % 50 == 0;
		*r = (struct trec){ .op = probe ? OP_PROBE : OP_WRITE,
			.key = probe ? NKEY + (uint32_t)(rnd() % NPROBE)
				     : (uint32_t)(rnd() % NKEY),
			.a = (int64_t)(rnd() % 2001) - 1000,
			.b = (int64_t)(rnd() % NMKEY), .ts = i };
		if (!probe)
			model_write(r);
	}
}

/* ---- the operator ---- */

static int probe_is_empty(struct weir_ctx *c)
{
	uint32_t n = 1, mk = 0;
	const void *v;
	int64_t out[2];

	if (weir_list_length(c, ST_LIST, &n) != 0 || n != 0)
		return -EPROTO;
	if (weir_map_size(c, ST_MAP, &n) != 0 || n != 0 ||
	    weir_map_get(c, ST_MAP, &mk, &v) != -ENOENT)
		return -EPROTO;
	if (weir_reduce_get(c, ST_MAX, out) != -ENOENT ||
	    weir_aggregate_result(c, ST_AGG, out) != -ENOENT)
		return -EPROTO;
	return 0;
}

static int kinds_process(struct weir_ctx *c, const void *rec, void *arg)
{
	const struct trec *r = rec;
	uint32_t mk = (uint32_t)r->b;
	int64_t *v;
	int err;

	(void)arg;
	if (r->op == OP_PROBE)
		return probe_is_empty(c);
	err = weir_list_append(c, ST_LIST, &r->a);
	if (err == 0)
		err = weir_reduce_add(c, ST_MAX, &r->a);
	if (err == 0)
		err = weir_aggregate_add(c, ST_AGG, &r->a);
	if (err == 0 && r->a % 13 == 0) {
		err = weir_map_remove(c, ST_MAP, &mk);
		err = err == -ENOENT ? 0 : err;
	} else if (err == 0) {
		err = weir_map_update(c, ST_MAP, &mk, (void **)&v, NULL);
		if (err == 0)
			*v += r->a;
	}
	return err ? err : weir_timer_register(c, WEIR_EVENT_TIME, DUMP_TS);
}

static int dump_map(struct weir_ctx *c, struct kinds_result *res, uint32_t k)
{
	struct weir_map_iter it = WEIR_MAP_ITER_INIT;
	const void *mk, *v;
	uint32_t m;
	int err;

	while ((err = weir_map_next(c, ST_MAP, &it, &mk, &v)) == 0) {
		memcpy(&m, mk, 4);
		if (m >= NMKEY || res->in_map[k][m])
			return -EPROTO;
		res->in_map[k][m] = true;
		memcpy(&res->map[k][m], v, 8);
	}
	return err == -ENOENT ? 0 : err;
}

/* The final watermark: copy the key's whole state out. */
static int kinds_dump(struct weir_ctx *c, int64_t ts, int domain, void *arg)
{
	struct kinds_result *res = arg;
	uint32_t k = *(const uint32_t *)weir_ctx_key(c);
	const void *elems;
	uint32_t n;
	int err;

	if (ts != DUMP_TS || domain != WEIR_EVENT_TIME || k >= NKEY ||
	    res->dumped[k])
		return -EPROTO;
	res->dumped[k] = true;
	err = weir_list_view(c, ST_LIST, &elems, &n);
	if (err == 0 && n > NREC)
		err = -EOVERFLOW;
	if (err == 0) {
		memcpy(res->list[k], elems, (size_t)n * 8);
		res->nlist[k] = n;
		err = dump_map(c, res, k);
	}
	if (err == 0)
		err = weir_reduce_get(c, ST_MAX, &res->max[k]);
	return err ? err : weir_aggregate_result(c, ST_AGG, &res->agg[k]);
}

static void run_kinds(unsigned cores, struct kinds_result *res)
{
	struct weir_pipeline *p = pipeline(cores, 64u << 20,
					   WEIR_STATE_FULL_FAIL);
	struct ksrc src = { .recs = recs, .count = NREC };
	struct weir_process_spec spec = { .name = "kinds",
		.process = kinds_process, .on_timer = kinds_dump, .out_size = 8,
		.states = kinds, .nstates = NST, .arg = res };
	struct weir_stream *k, *o;

	memset(res, 0, sizeof(*res));
	cr_assert_eq(ksrc_keyed(p, &src, -1, &k), 0, "%s", weir_last_error());
	cr_assert_eq(weir_process(p, k, &spec, &o), 0, "%s", weir_last_error());
	cr_assert_eq(weir_pipeline_run(p), 0, "%u cores: %s", cores,
		     weir_last_error());
	weir_pipeline_destroy(p);
}

static void check_kinds(const struct kinds_result *r, unsigned cores)
{
	const struct kinds_result *m = &model;

	for (uint32_t k = 0; k < NKEY; k++) {
		cr_assert_eq(r->dumped[k], m->dumped[k], "%u cores, key %u", cores, k);
		cr_assert_eq(r->nlist[k], m->nlist[k], "%u cores, key %u: list "
			     "length %u, model %u", cores, k, r->nlist[k],
			     m->nlist[k]);
		cr_assert_arr_eq(r->list[k], m->list[k], m->nlist[k] * 8,
				 "%u cores, key %u: list differs", cores, k);
		for (uint32_t j = 0; j < NMKEY; j++) {
			cr_assert_eq(r->in_map[k][j], m->in_map[k][j],
				     "%u cores, key %u, map key %u", cores, k, j);
			cr_assert_eq(r->map[k][j], m->map[k][j],
				     "%u cores, key %u, map key %u", cores, k, j);
		}
		cr_assert_eq(r->max[k], m->max[k], "%u cores, key %u", cores, k);
		cr_assert_eq(r->agg[k].count, m->agg[k].count, "key %u", k);
		cr_assert_eq(r->agg[k].sum, m->agg[k].sum, "key %u", k);
	}
}

Test(state_pipeline, kinds_match_the_model_on_1_and_2_cores)
{
	static struct kinds_result one, two;

	make_input();
	run_kinds(1, &one);
	check_kinds(&one, 1);
	run_kinds(2, &two);
	check_kinds(&two, 2);
}

/* ---- TTL ---- */

#define TTL_KEYS 2u
#define TTL_ROUNDS 3u

struct ttl_seen {
	int64_t prev[TTL_KEYS][TTL_ROUNDS]; /* value read before writing, -1 */
	uint32_t list_len[TTL_KEYS][TTL_ROUNDS];
	unsigned n[TTL_KEYS];
	int bad;
};

static int ttl_process(struct weir_ctx *c, const void *rec, void *arg)
{
	struct ttl_seen *s = arg;
	const struct trec *r = rec;
	int64_t *v, one = 1;
	uint32_t len;
	unsigned i = s->n[r->key]++;
	int err = weir_value_get(c, 0, (void **)&v);

	if (i >= TTL_ROUNDS || (err && err != -ENOENT))
		return -EPROTO;
	s->prev[r->key][i] = err ? -1 : *v;
	err = weir_list_length(c, 1, &s->list_len[r->key][i]);
	if (err == 0)
		err = weir_value_update(c, 0, (void **)&v, NULL);
	if (err)
		return err;
	*v += 1;
	err = weir_list_append(c, 1, &one);
	/* Just written, same tick: must be there. */
	if (err == 0 && (weir_value_get(c, 0, (void **)&v) != 0 ||
			 weir_list_length(c, 1, &len) != 0 || len == 0))
		s->bad = 1;
	return err;
}

static void run_ttl(uint64_t ttl_ms, struct ttl_seen *s)
{
	static struct trec tr[TTL_KEYS * TTL_ROUNDS];
	struct weir_state_desc st[2] = {
		{ .name = "count", .kind = WEIR_STATE_VALUE, .value_size = 8,
		  .ttl_ms = ttl_ms },
		{ .name = "ones", .kind = WEIR_STATE_LIST, .value_size = 8,
		  .ttl_ms = ttl_ms },
	};
	/* One core, one split: a chunk is one round (every key once), and
	 * rounds are 200 ms apart, ~7x the 30 ms TTL. */
	struct ksrc src = { .recs = tr, .count = TTL_KEYS * TTL_ROUNDS,
			    .chunk = TTL_KEYS, .chunk_ms = 200 };
	struct weir_process_spec spec = { .name = "ttl",
		.process = ttl_process, .out_size = 8, .states = st,
		.nstates = 2, .arg = s };
	struct weir_pipeline *p = pipeline(1, 16u << 20, WEIR_STATE_FULL_FAIL);
	struct weir_stream *k, *o;

	for (unsigned i = 0; i < TTL_KEYS * TTL_ROUNDS; i++)
		tr[i] = (struct trec){ .key = i % TTL_KEYS };
	memset(s, 0, sizeof(*s));
	cr_assert_eq(ksrc_keyed(p, &src, -1, &k), 0);
	cr_assert_eq(weir_process(p, k, &spec, &o), 0, "%s", weir_last_error());
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	weir_pipeline_destroy(p);
	cr_assert_eq(s->bad, 0, "a value just written read as absent");
	for (unsigned key = 0; key < TTL_KEYS; key++)
		cr_assert_eq(s->n[key], TTL_ROUNDS);
}

Test(state_pipeline, ttl_expired_value_is_never_returned)
{
	static struct ttl_seen s;

	run_ttl(30, &s);
	for (unsigned k = 0; k < TTL_KEYS; k++)
		for (unsigned i = 0; i < TTL_ROUNDS; i++) {
			cr_assert_eq(s.prev[k][i], -1, "key %u round %u read "
				     "an expired value %lld", k, i,
				     (long long)s.prev[k][i]);
			cr_assert_eq(s.list_len[k][i], 0, "key %u round %u", k, i);
		}
	run_ttl(60000, &s); /* control: alive, the reads see it */
	for (unsigned k = 0; k < TTL_KEYS; k++)
		for (unsigned i = 0; i < TTL_ROUNDS; i++) {
			cr_assert_eq(s.prev[k][i], i ? (int64_t)i : -1,
				     "key %u round %u", k, i);
			cr_assert_eq(s.list_len[k][i], i, "key %u round %u", k, i);
		}
}

/* ---- memory cap ---- */

#define CAP_BYTES (4u << 20)
#define BIG 1016u /* + the 8-byte TTL stamp = the 1 KiB most */
#define CAP_KEYS 10000u

static _Atomic int64_t expired_age = -1;

static int note_expired(int64_t age_ms)
{
	expired_age = age_ms;
	return -EPROTO;
}

/* Write a BIG-byte value per key, stamped with the processing time of the
 * write; a value read back must be younger than the TTL (arg), whatever
 * the timing of the run: an expired value is never returned. */
static int write_big(struct weir_ctx *c, const void *rec, void *arg)
{
	int64_t now = weir_ctx_processing_time(c), then;
	const uint64_t *ttl_ms = arg;
	uint8_t *v;
	int err;

	(void)rec;
	err = weir_value_get(c, 0, (void **)&v);
	if (err == 0) {
		memcpy(&then, v, 8);
		if (*ttl_ms && now - then >= (int64_t)*ttl_ms)
			return note_expired(now - then);
	} else if (err != -ENOENT) {
		return err;
	}
	err = weir_value_update(c, 0, (void **)&v, NULL);
	if (err == 0) {
		memset(v, 0xab, BIG);
		memcpy(v, &now, 8);
	}
	return err;
}

/* 20000 records of `keys` distinct keys (0: all distinct), paced at
 * `chunk` records per 5 ms per split when chunk > 0.  Pacing is relative
 * to the previous chunk, so a stalled core never catches up in a burst
 * (a burst written within one TTL would all be live at once). */
static int run_big(enum weir_state_full_policy policy, uint64_t ttl_ms,
		   unsigned chunk, uint32_t keys)
{
	static struct trec big[20000];
	struct weir_state_desc st = { .name = "big_values",
		.kind = WEIR_STATE_VALUE, .value_size = BIG, .ttl_ms = ttl_ms };
	struct ksrc src = { .recs = big, .count = 20000, .chunk = chunk,
			    .chunk_ms = 5 };
	struct weir_process_spec spec = { .name = "grow",
		.process = write_big, .out_size = 8, .states = &st, .nstates = 1,
		.arg = &ttl_ms };
	struct weir_pipeline *p = pipeline(2, CAP_BYTES, policy);
	struct weir_stream *k, *o;
	int rc;

	for (uint32_t i = 0; i < 20000; i++)
		big[i] = (struct trec){ .key = keys ? i % keys : i };
	cr_assert_eq(ksrc_keyed(p, &src, -1, &k), 0);
	cr_assert_eq(weir_process(p, k, &spec, &o), 0, "%s", weir_last_error());
	rc = weir_pipeline_run(p);
	weir_pipeline_destroy(p);
	return rc;
}

Test(state_pipeline, memory_cap_fail_policy_names_state_and_cap)
{
	char cap[32];
	int rc = run_big(WEIR_STATE_FULL_FAIL, 0, 0, 0); /* 20000 x 1 KiB */

	cr_assert_eq(rc, -ENOMEM, "run returned %d: %s", rc, weir_last_error());
	snprintf(cap, sizeof(cap), "%u", CAP_BYTES);
	cr_assert(strstr(weir_last_error(), "big_values") != NULL &&
		  strstr(weir_last_error(), cap) != NULL,
		  "message '%s' should name the state and %s", weir_last_error(),
		  cap);
}

Test(state_pipeline, evict_policy_with_ttl_completes)
{
	/* 20000 x 1 KiB, 10000 keys, 2 splits of 10 k records/s each: ~5 MiB
	 * per core without a TTL (the control fails), ~200-400 entries per
	 * core live within the 20 ms TTL (~1500 fit).  Keys come back, mostly
	 * expired; any value read must be younger than the TTL. */
	int rc = run_big(WEIR_STATE_FULL_EVICT, 0, 50, CAP_KEYS);

	cr_assert_eq(rc, -ENOMEM, "control: without a TTL the workload should "
		     "exceed the cap, run returned %d", rc);
	rc = run_big(WEIR_STATE_FULL_EVICT, 20, 50, CAP_KEYS);

	cr_assert_eq(expired_age, -1, "read a value %lld ms old with a TTL of "
		     "20 ms", (long long)expired_age);
	cr_assert_eq(rc, 0, "run returned %d: %s", rc, weir_last_error());
}

/* ---- bad descriptors ---- */

static int nop(struct weir_ctx *c, const void *rec, void *arg)
{
	(void)c;
	(void)rec;
	(void)arg;
	return 0;
}

static void expect_bad(struct weir_stream *k, struct weir_pipeline *p,
		       const struct weir_state_desc *d, unsigned n,
		       const char *word)
{
	struct weir_process_spec spec = { .name = "bad", .process = nop,
		.out_size = 8, .states = d, .nstates = n };
	struct weir_stream *o;

	cr_assert_eq(weir_process(p, k, &spec, &o), -EINVAL, "%s", word);
	cr_assert(strstr(weir_last_error(), word) != NULL,
		  "message '%s' lacks '%s'", weir_last_error(), word);
}

Test(state_pipeline, bad_state_descriptors_are_einval)
{
	static struct trec none[1];
	struct ksrc src = { .recs = none, .count = 0 };
	struct weir_pipeline *p = pipeline(1, 16u << 20, WEIR_STATE_FULL_FAIL);
	struct weir_stream *k;
	struct weir_aggregate_ops no_acc = cs_ops;
	struct weir_state_desc many[33];

	no_acc.acc_size = 0;
	cr_assert_eq(ksrc_keyed(p, &src, -1, &k), 0);
	expect_bad(k, p, &(struct weir_state_desc){ .name = "l0",
		   .kind = WEIR_STATE_LIST }, 1, "l0");
	expect_bad(k, p, &(struct weir_state_desc){ .name = "m0",
		   .kind = WEIR_STATE_MAP, .value_size = 8 }, 1, "m0");
	expect_bad(k, p, &(struct weir_state_desc){ .name = "mv0",
		   .kind = WEIR_STATE_MAP, .map_key_size = 4 }, 1, "mv0");
	expect_bad(k, p, &(struct weir_state_desc){ .name = "r",
		   .kind = WEIR_STATE_REDUCING, .value_size = 8 }, 1, "reduce");
	expect_bad(k, p, &(struct weir_state_desc){ .name = "a",
		   .kind = WEIR_STATE_AGGREGATING }, 1, "aggregate");
	expect_bad(k, p, &(struct weir_state_desc){ .name = "a0",
		   .kind = WEIR_STATE_AGGREGATING, .agg = &no_acc }, 1, "a0");
	expect_bad(k, p, &(struct weir_state_desc){ .name = "k9",
		   .kind = (enum weir_state_kind)9, .value_size = 8 }, 1,
		   "kind");
	for (unsigned i = 0; i < 33; i++)
		many[i] = kinds[ST_LIST];
	expect_bad(k, p, many, 33, "33");
	/* Regression: accepted here, then failed on a worker at run time. */
	expect_bad(k, p, &(struct weir_state_desc){ .name = "v1024ttl",
		   .kind = WEIR_STATE_VALUE, .value_size = 1024, .ttl_ms = 5 },
		   1, "TTL stamp");
	weir_pipeline_destroy(p);
}
