/*
 * timers_test.c — per-key timers through the pipeline API (keyed process
 * functions with on_timer), checked against a model on random input.
 *
 * Test plan:
 *   - event time, random: per key, timers due during the run (registered
 *     at or after the record's own time, so never behind the watermark) and
 *     far-future ones (fired by the final watermark); some registered twice
 *     in one call or again by a later record; some far ones deleted with
 *     weir_timer_delete before they can fire; deletes of timers never
 *     registered.  Every timer ts encodes its key (ts % 64), so on_timer can
 *     check that the right key is current.  Checked, on 1 and 2 cores:
 *       - the fired set per key equals the model (registered minus
 *         deleted): each exactly once, deleted never, duplicates once;
 *       - per key, timers fire in strictly increasing ts;
 *       - per core, event timers fire in non-decreasing ts across keys;
 *       - in on_timer the key is the timer's, the watermark has passed ts,
 *         weir_ctx_timestamp() is ts; deleting a registered timer returns 0,
 *         deleting an unknown one -ENOENT;
 *       - some timers fire before the end of input (the source is paced so
 *         watermarks advance during the run), not all at the final one.
 *   - processing time: a timer at now + 50 ms fires (the source idles for
 *     500 ms before it ends), once even though registered twice, after the
 *     clock passed it; a deleted one (now + 60) never fires; one already in
 *     the past fires first.
 *   - misuse: weir_timer_register from a process function without on_timer
 *     fails the job with -EINVAL and a message.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weir/state.h"
#include "core/timers.h"
#include "state/arena.h"
#include "keyed_src.h"
#include "../rng.h"

enum { OP_REG = 1, OP_DEL = 2, OP_DEL_MISSING = 3 };

#define NREC 20000u
#define NKEY 31u
#define KEY_MUL 64 /* ts = slot * 64 + key */
#define FAR 1000000
#define FIRED_MAX NREC

static struct trec recs[NREC];

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { return t_xorshift(&rng); }

/* The model: per key, the set of timers that must fire (a bitmap over
 * slots would be large; a sorted array after generation is enough). */
static int64_t model[NKEY][FIRED_MAX];
static unsigned nmodel[NKEY];

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Far timers of one key that are registered and not deleted yet. */
static int64_t far_live[NKEY][NREC];
static unsigned nfar[NKEY];

static void far_add(uint32_t k, int64_t ts)
{
	for (unsigned i = 0; i < nfar[k]; i++)
		if (far_live[k][i] == ts)
			return;
	far_live[k][nfar[k]++] = ts;
}

static void gen_one(unsigned i, struct trec *r)
{
	uint32_t k = (uint32_t)(rnd() % NKEY);
	unsigned pick = (unsigned)(rnd() % 100);

	*r = (struct trec){ .key = k, .ts = (int64_t)i * KEY_MUL };
	if (pick < 60) { /* due during the run */
		r->op = OP_REG;
		r->a = ((int64_t)i + (int64_t)(rnd() % 300)) * KEY_MUL + k;
		r->b = rnd() % 5 == 0;
		model[k][nmodel[k]++] = r->a;
	} else if (pick < 85) { /* far future */
		r->op = OP_REG;
		r->a = (FAR + (int64_t)(rnd() % 1000)) * KEY_MUL + k;
		r->b = rnd() % 5 == 0;
		far_add(k, r->a);
	} else if (pick < 95 && nfar[k] > 0) {
		unsigned j = (unsigned)(rnd() % nfar[k]);
		r->op = OP_DEL;
		r->a = far_live[k][j];
		far_live[k][j] = far_live[k][--nfar[k]];
	} else { /* never registered: past the far range */
		r->op = OP_DEL_MISSING;
		r->a = (FAR + 5000 + (int64_t)(rnd() % 1000)) * KEY_MUL + k;
	}
}

static void make_model(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	for (unsigned i = 0; i < NREC; i++)
		gen_one(i, &recs[i]);
	for (uint32_t k = 0; k < NKEY; k++) {
		for (unsigned i = 0; i < nfar[k]; i++)
			model[k][nmodel[k]++] = far_live[k][i];
		qsort(model[k], nmodel[k], sizeof(int64_t), cmp_i64);
		unsigned u = 0; /* a set: drop duplicates */
		for (unsigned i = 0; i < nmodel[k]; i++)
			if (u == 0 || model[k][u - 1] != model[k][i])
				model[k][u++] = model[k][i];
		nmodel[k] = u;
	}
}

/* ---- what the operator observed ---- */

struct fired {
	int64_t ts[NKEY][FIRED_MAX]; /* per key, in firing order */
	unsigned n[NKEY];
	int64_t last_on_core[WEIR_CORES_MAX];
	_Atomic unsigned early; /* fired before the final watermark */
	int bad[WEIR_CORES_MAX]; /* per core: first broken check, 0 if none */
	int64_t bad_ts[WEIR_CORES_MAX];
};

static void flag(struct fired *f, unsigned core, int what, int64_t ts)
{
	if (f->bad[core] == 0) {
		f->bad[core] = what;
		f->bad_ts[core] = ts;
	}
}

static int on_record(struct weir_ctx *c, const void *rec, void *arg)
{
	const struct trec *r = rec;
	int err = 0;

	(void)arg;
	switch (r->op) {
	case OP_REG:
		err = weir_timer_register(c, WEIR_EVENT_TIME, r->a);
		if (err == 0 && r->b)
			err = weir_timer_register(c, WEIR_EVENT_TIME, r->a);
		return err;
	case OP_DEL:
		return weir_timer_delete(c, WEIR_EVENT_TIME, r->a);
	default:
		err = weir_timer_delete(c, WEIR_EVENT_TIME, r->a);
		return err == -ENOENT ? 0 : -EPROTO;
	}
}

static int on_event_timer(struct weir_ctx *c, int64_t ts, int domain,
			  void *arg)
{
	struct fired *f = arg;
	const uint32_t *key = weir_ctx_key(c);
	unsigned core = weir_ctx_core(c);

	if (domain != WEIR_EVENT_TIME || key == NULL || *key >= NKEY)
		return -EPROTO;
	if ((uint32_t)(ts % KEY_MUL) != *key)
		flag(f, core, 1, ts); /* wrong key current */
	if (weir_ctx_watermark(c) < ts || weir_ctx_timestamp(c) != ts)
		flag(f, core, 2, ts);
	if (ts < f->last_on_core[core])
		flag(f, core, 3, ts); /* out of order on this core */
	f->last_on_core[core] = ts;
	if (weir_ctx_watermark(c) != WEIR_TS_MAX)
		f->early++; /* written by several cores: only tested > 0 */
	if (f->n[*key] == FIRED_MAX)
		return -EOVERFLOW;
	f->ts[*key][f->n[*key]++] = ts;
	return 0;
}

static void run_event(unsigned cores, struct fired *f)
{
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct ksrc src = { .recs = recs, .count = NREC, .chunk = 500,
			    .chunk_ms = 5 };
	struct weir_process_spec spec = { .name = "timers",
		.process = on_record, .on_timer = on_event_timer,
		.out_size = 8, .arg = f };
	struct weir_stream *k, *o;

	memset(f, 0, sizeof(*f));
	for (unsigned i = 0; i < WEIR_CORES_MAX; i++)
		f->last_on_core[i] = WEIR_TS_MIN;
	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = cores < cfg.runtime.cores ? cores : cfg.runtime.cores;
	cfg.state_bytes_max = 64u << 20;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0, "%s", weir_last_error());
	cr_assert_eq(ksrc_keyed(p, &src, 0, &k), 0, "%s", weir_last_error());
	cr_assert_eq(weir_process(p, k, &spec, &o), 0, "%s", weir_last_error());
	cr_assert_eq(weir_pipeline_run(p), 0, "run: %s", weir_last_error());
	weir_pipeline_destroy(p);
}

static void check_against_model(const struct fired *f, unsigned cores)
{
	static const char *what[] = { "", "wrong key current",
		"fired before the watermark passed it / wrong timestamp",
		"out of ts order on its core" };

	for (unsigned i = 0; i < cores; i++)
		cr_assert_eq(f->bad[i], 0, "%u cores: timer %lld: %s", cores,
			     (long long)f->bad_ts[i], what[f->bad[i]]);
	cr_assert_gt(f->early, 0, "%u cores: every timer waited for the final "
		     "watermark", cores);
	for (uint32_t k = 0; k < NKEY; k++) {
		cr_assert_eq(f->n[k], nmodel[k], "%u cores, key %u: %u fired, "
			     "model %u", cores, k, f->n[k], nmodel[k]);
		for (unsigned i = 0; i < nmodel[k]; i++)
			cr_assert_eq(f->ts[k][i], model[k][i], "%u cores, key %u, "
				     "timer %u: fired %lld, model %lld", cores, k,
				     i, (long long)f->ts[k][i],
				     (long long)model[k][i]);
	}
}

Test(timers, event_time_random_fire_once_in_order_on_1_and_2_cores)
{
	static struct fired one, two;

	make_model();
	run_event(1, &one);
	check_against_model(&one, 1);
	run_event(2, &two);
	check_against_model(&two, 2);
}

/* ---- processing time ---- */

#define PT_KEYS 3u

struct pt_out {
	int64_t reg_ms[PT_KEYS]; /* processing time at registration */
	int64_t fired[PT_KEYS][4];
	unsigned n[PT_KEYS];
	_Atomic int bad;
};

static int pt_record(struct weir_ctx *c, const void *rec, void *arg)
{
	struct pt_out *o = arg;
	const struct trec *r = rec;
	int64_t now = weir_ctx_processing_time(c);
	int err;

	o->reg_ms[r->key] = now;
	err = weir_timer_register(c, WEIR_PROCESSING_TIME, now + 50);
	if (err == 0)
		err = weir_timer_register(c, WEIR_PROCESSING_TIME, now + 50);
	if (err == 0)
		err = weir_timer_register(c, WEIR_PROCESSING_TIME, now + 60);
	if (err == 0)
		err = weir_timer_register(c, WEIR_PROCESSING_TIME, now - 1000);
	if (err == 0)
		err = weir_timer_delete(c, WEIR_PROCESSING_TIME, now + 60);
	return err;
}

static int pt_timer(struct weir_ctx *c, int64_t ts, int domain, void *arg)
{
	struct pt_out *o = arg;
	const uint32_t *key = weir_ctx_key(c);

	if (domain != WEIR_PROCESSING_TIME || key == NULL || *key >= PT_KEYS)
		return -EPROTO;
	if (weir_ctx_processing_time(c) < ts)
		o->bad = 1; /* fired early */
	if (o->n[*key] == 4)
		return -EOVERFLOW;
	o->fired[*key][o->n[*key]++] = ts;
	return 0;
}

Test(timers, processing_time_timer_fires_once_after_the_clock)
{
	static struct trec pt_recs[PT_KEYS];
	static struct pt_out o;
	struct ksrc src = { .recs = pt_recs, .count = PT_KEYS, .tail_ms = 500 };
	struct weir_process_spec spec = { .name = "pt", .process = pt_record,
		.on_timer = pt_timer, .out_size = 8, .arg = &o };
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *k, *out;

	for (uint32_t i = 0; i < PT_KEYS; i++)
		pt_recs[i] = (struct trec){ .key = i };
	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = cfg.runtime.cores < 2 ? cfg.runtime.cores : 2;
	cfg.state_bytes_max = 64u << 20;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0);
	cr_assert_eq(ksrc_keyed(p, &src, -1, &k), 0);
	cr_assert_eq(weir_process(p, k, &spec, &out), 0);
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	weir_pipeline_destroy(p);
	cr_assert_eq(o.bad, 0, "a processing-time timer fired early");
	for (uint32_t i = 0; i < PT_KEYS; i++) {
		cr_assert_eq(o.n[i], 2, "key %u: %u timers fired, expected 2 "
			     "(past one, +50 once; +60 deleted)", i, o.n[i]);
		cr_assert_eq(o.fired[i][0], o.reg_ms[i] - 1000, "key %u", i);
		cr_assert_eq(o.fired[i][1], o.reg_ms[i] + 50, "key %u", i);
	}
}

/* ---- misuse ---- */

static int register_without_on_timer(struct weir_ctx *c, const void *rec,
				     void *arg)
{
	(void)rec;
	(void)arg;
	return weir_timer_register(c, WEIR_EVENT_TIME, 5);
}

Test(timers, register_without_on_timer_fails_the_job)
{
	static struct trec one = { .key = 1 };
	struct ksrc src = { .recs = &one, .count = 1 };
	struct weir_process_spec spec = { .name = "no_on_timer",
		.process = register_without_on_timer, .out_size = 8 };
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *k, *out;

	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = 1;
	cfg.state_bytes_max = 16u << 20;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0);
	cr_assert_eq(ksrc_keyed(p, &src, -1, &k), 0);
	cr_assert_eq(weir_process(p, k, &spec, &out), 0);
	cr_assert_eq(weir_pipeline_run(p), -EINVAL);
	cr_assert(strstr(weir_last_error(), "on_timer") != NULL,
		  "message: '%s'", weir_last_error());
	weir_pipeline_destroy(p);
}

/* A timers image that passes its checksum may still be made up: a heap
 * whose size wraps, on pages that are not live, or on the other heap's
 * pages (freed twice) is refused.  (The untouched image loading is what
 * every restore with timers does: the pipeline and kill tests.) */
static int timers_variant(struct wr_arena *a, const struct wr_timers_image *img)
{
	struct wr_timers *u = NULL;
	int err = wr_timers_load(a, 8, img, &u);

	cr_assert((err == 0) == (u != NULL));
	cr_assert_null(u, "a made-up image loaded");
	return err;
}

Test(timers, made_up_images_refused)
{
	struct wr_arena_config cfg = { 16u << 20, 0, 0 };
	struct wr_timers_image img, v;
	struct wr_timers *t;
	struct wr_arena *a;
	uint32_t freed;

	cr_assert_eq(wr_arena_create(&cfg, &a), 0);
	cr_assert_eq(wr_timers_create(a, 8, &t), 0);
	for (uint64_t i = 0; i < 300; i++)
		cr_assert_eq(wr_timers_register(t, (int)(i % 2), (int64_t)i, &i,
						i * 0x9e3779b97f4a7c15ull), 0);
	wr_timers_save(t, &img);
	cr_assert(img.heap[0].npages > 0 && img.heap[1].npages > 0);
	cr_assert_eq(wr_arena_alloc(a, 1, &freed, NULL), 0);
	wr_arena_free(a, freed, 1);

	v = img, v.heap[0].cap = 1ull << 62;	/* cap x entry size wraps */
	cr_assert_eq(timers_variant(a, &v), -EINVAL);
	v = img, v.heap[0].first_page = freed, v.heap[0].npages = 1;
	v.heap[0].n = 0;			/* a page that is not live */
	cr_assert_eq(timers_variant(a, &v), -EINVAL);
	v = img, v.heap[1] = img.heap[0];	/* both on one heap's pages */
	cr_assert_eq(timers_variant(a, &v), -EINVAL);
	wr_timers_destroy(t);
	wr_arena_destroy(a);
}
