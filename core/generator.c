/*
 * generator.c — the deterministic, replayable, optionally paced generator
 * source (weir_source_generator in weir/pipeline.h).
 *
 * Split s of WEIR_GENERATOR_SPLITS yields indexes s, s + S, s + 2S, ...;
 * core c of n owns the splits s with s % n == c and walks the global index
 * upward, making the indexes of its splits not produced yet.  Its records
 * thus come in index order whatever the splits' positions: after a restore
 * onto another core count, splits that were ahead on one old core and
 * behind on another are merged in order (polling them round-robin made the
 * stream out of order by the old cores' skew, and event-time records late).
 * Pacing: each core may have produced at most rate * owned / S * elapsed
 * records; it produces nothing more until the clock catches up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/exec_internal.h"

struct gen_core {
	uint64_t pos[WEIR_GENERATOR_SPLITS]; /* records produced per split */
	bool mine[WEIR_GENERATOR_SPLITS];
	unsigned nowned;
	unsigned live;   /* owned splits not exhausted */
	uint64_t next;   /* the next global index to consider */
	uint64_t produced;
	uint64_t start_ns;
};

struct gen {
	struct weir_generator g;
	uint64_t start[WEIR_GENERATOR_SPLITS];
	/* Per split, published by the core that owns it when it closes. */
	uint64_t final_pos[WEIR_GENERATOR_SPLITS];
	struct gen_core *cores[WEIR_CORES_MAX];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Records split s holds in all (UINT64_MAX when unbounded). */
static uint64_t split_len(const struct weir_generator *g, unsigned s)
{
	if (g->count == 0)
		return UINT64_MAX;
	return g->count / WEIR_GENERATOR_SPLITS +
	       (s < g->count % WEIR_GENERATOR_SPLITS ? 1 : 0);
}

/* Core `core` of n takes its splits at positions at[]. */
static void own(struct gen *gen, struct gen_core *gc, unsigned core,
		unsigned n, const uint64_t *at)
{
	gc->nowned = gc->live = 0;
	gc->next = UINT64_MAX;
	for (unsigned s = core; s < WEIR_GENERATOR_SPLITS; s += n) {
		uint64_t first = at[s] * WEIR_GENERATOR_SPLITS + s;
		gc->mine[s] = true;
		gc->pos[s] = at[s];
		gen->final_pos[s] = at[s];
		gc->nowned++;
		if (gc->pos[s] >= split_len(&gen->g, s))
			continue;
		gc->live++;
		if (first < gc->next)
			gc->next = first;
	}
}

static int gen_open(struct weir_ctx *c, unsigned split, unsigned splits,
		    void *arg)
{
	struct gen *gen = arg;
	struct gen_core *gc = weir_worker_alloc_local(c->x->w, sizeof(*gc));

	if (gc == NULL)
		return -ENOMEM;
	memset(gc, 0, sizeof(*gc));
	gc->start_ns = mono_ns();
	gen->cores[split] = gc;
	own(gen, gc, split, splits, gen->start);
	return 0;
}

/* How many records pacing allows now (max when unpaced). */
static unsigned paced(const struct gen *gen, const struct gen_core *gc,
		      unsigned max)
{
	double allowed;
	uint64_t due;

	if (gen->g.rate == 0)
		return max;
	allowed = (double)gen->g.rate * gc->nowned / WEIR_GENERATOR_SPLITS;
	due = (uint64_t)(allowed * (mono_ns() - gc->start_ns) / 1e9) + 1;
	if (due <= gc->produced)
		return 0;
	return due - gc->produced < max ? (unsigned)(due - gc->produced) : max;
}

static int gen_next(struct weir_ctx *c, void *recs, int64_t *ts,
		    unsigned max, void *arg)
{
	struct gen *gen = arg;
	struct gen_core *gc = gen->cores[c->x->id];
	uint32_t size = gen->g.record_size;
	unsigned n = 0, want;

	if (gc->live == 0)
		return WEIR_SOURCE_END;
	want = paced(gen, gc, max);
	/* Bounded: at most S indexes looked at per record wanted. */
	for (uint64_t steps = (uint64_t)want * WEIR_GENERATOR_SPLITS;
	     n < want && gc->live > 0 && steps > 0; steps--) {
		uint64_t i = gc->next++;
		unsigned s = (unsigned)(i % WEIR_GENERATOR_SPLITS);
		if (!gc->mine[s] || i / WEIR_GENERATOR_SPLITS != gc->pos[s])
			continue; /* another core's, or made before a restore */
		gen->g.make(i, gen->g.seed, (uint8_t *)recs + n * size, &ts[n],
			    gen->g.arg);
		n++;
		if (++gc->pos[s] == split_len(&gen->g, s))
			gc->live--;
	}
	gc->produced += n;
	return (int)n;
}

static void gen_close(struct weir_ctx *c, void *arg)
{
	struct gen *gen = arg;
	struct gen_core *gc = gen->cores[c->x->id];

	/* Each split belongs to one core: no two cores write one slot, and
	 * the runtime's join orders these writes before any reader. */
	for (unsigned s = c->x->id; gc && s < WEIR_GENERATOR_SPLITS;
	     s += c->x->n)
		gen->final_pos[s] = gc->pos[s];

	weir_worker_free_local(c->x->w, gen->cores[c->x->id]);
	gen->cores[c->x->id] = NULL;
}

/* Checkpoint position: per split, the records produced; 0 for the splits
 * another core owns (a split belongs to one core, so the merge of all
 * cores' positions is the maximum). */
static int gen_position(struct weir_ctx *c, void *pos, size_t cap, void *arg)
{
	struct gen *gen = arg;
	struct gen_core *gc = gen->cores[c->x->id];
	uint64_t out[WEIR_GENERATOR_SPLITS] = { 0 };

	if (cap < sizeof(out))
		return -ENOSPC;
	for (unsigned s = c->x->id; s < WEIR_GENERATOR_SPLITS; s += c->x->n)
		out[s] = gc->pos[s];
	memcpy(pos, out, sizeof(out));
	return (int)sizeof(out);
}

static int gen_restore(struct weir_ctx *c, const struct weir_source_pos *pos,
		       unsigned nold, void *arg)
{
	struct gen *gen = arg;
	struct gen_core *gc = gen->cores[c->x->id];
	uint64_t at[WEIR_GENERATOR_SPLITS] = { 0 }, v;

	for (unsigned i = 0; i < nold; i++) {
		if (pos[i].len != sizeof(at))
			return wr_error(-EINVAL, "generator: checkpoint position "
					"of %zu bytes, expected %zu", pos[i].len,
					sizeof(at));
		for (unsigned s = 0; s < WEIR_GENERATOR_SPLITS; s++) {
			memcpy(&v, (const uint8_t *)pos[i].bytes + s * 8, 8);
			at[s] = v > at[s] ? v : at[s];
		}
	}
	own(gen, gc, c->x->id, c->x->n, at);
	return 0;
}

int weir_source_generator(struct weir_pipeline *p,
			  const struct weir_generator *g,
			  struct weir_stream **out)
{
	static const struct weir_source_ops ops = {
		.open = gen_open, .next = gen_next, .close = gen_close,
		.position = gen_position, .restore = gen_restore };
	struct gen *gen;
	int err;

	if (g == NULL || g->make == NULL)
		return wr_error(-EINVAL, "generator or its make() is NULL");
	gen = calloc(1, sizeof(*gen));
	if (gen == NULL)
		return -ENOMEM;
	gen->g = *g;
	gen->g.start = NULL;
	if (g->start != NULL)
		memcpy(gen->start, g->start, sizeof(gen->start));
	err = weir_source(p, "generator", &ops, g->record_size, gen, out);
	if (err) {
		free(gen);
		return err;
	}
	(*out)->owned_arg = gen; /* freed with the pipeline */
	return 0;
}

int weir_generator_positions(const struct weir_stream *generator,
			     uint64_t pos[WEIR_GENERATOR_SPLITS])
{
	const struct gen *gen;

	if (generator == NULL || generator->kind != WR_NODE_SOURCE ||
	    generator->fn.source.next != gen_next)
		return wr_error(-EINVAL, "stream is not a generator source");
	gen = generator->arg;
	memcpy(pos, gen->final_pos, sizeof(gen->final_pos));
	return 0;
}
