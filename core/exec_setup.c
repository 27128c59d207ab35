/*
 * exec_setup.c — building and tearing down one core's executor, and the
 * weir_ctx calls user callbacks make.  Runs on the worker's own thread, so
 * every allocation comes from that core's jemalloc arena.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/exec_internal.h"

static void *zalloc(struct wr_exec *x, size_t size)
{
	void *p = weir_worker_alloc_local(x->w, size);

	if (p != NULL)
		memset(p, 0, size);
	return p;
}

static int alloc_node(struct wr_exec *x, const struct weir_stream *n)
{
	struct wr_node_rt *nr = &x->nodes[n->id];

	switch (n->kind) {
	case WR_NODE_MAP:
		nr->scratch = zalloc(x, n->out_size);
		return nr->scratch ? 0 : -ENOMEM;
	case WR_NODE_KEY_BY:
		if (n->key_size == 0)
			return 0; /* global edge: no key */
		nr->keys = zalloc(x, (size_t)WR_BURST * n->key_size);
		nr->key = nr->keys; /* the first of them, for one record */
		return nr->keys ? wr_comb_create(x, n, &nr->comb) : -ENOMEM;
	case WR_NODE_SINK: {
		int err = n->sink_ops->open ? n->sink_ops->open(x, n) : 0;
		/* Only where it keeps state (a file sink: core 0). */
		if (err == 0 && n->sink_ops->tick != NULL &&
		    *wr_exec_sink_state(x, n) != NULL)
			x->ticking[x->nticking++] = n;
		return err;
	}
	case WR_NODE_PROCESS:
		return wr_process_open(x, n, &nr->ks);
	case WR_NODE_WINDOW: {
		int err = wr_winop_open(x, n);
		return err == 0 && x->restore_pages ? wr_ckpt_load_win(x, n)
						    : err;
	}
	case WR_NODE_SOURCE:
		x->sources[x->nsources++] = n;
		x->sources_live++;
		return 0;
	default:
		return 0;
	}
}

static int alloc_buffers(struct wr_exec *x)
{
	size_t in = (size_t)WR_BURST * x->slot;

	for (unsigned i = 0; i < x->p->nnodes; i++)
		if (x->p->nodes[i]->kind == WR_NODE_SOURCE &&
		    (size_t)WR_BURST * x->p->nodes[i]->out_size > in)
			in = (size_t)WR_BURST * x->p->nodes[i]->out_size;
	x->inbuf = zalloc(x, in);
	x->tsbuf = zalloc(x, WR_BURST * sizeof(*x->tsbuf));
	x->out = zalloc(x, x->n * sizeof(*x->out));
	x->pend = zalloc(x, (size_t)x->n * x->slot);
	x->nodes = zalloc(x, x->p->nnodes * sizeof(*x->nodes));
	x->edges = zalloc(x, (x->p->nedges + 1) * sizeof(*x->edges));
	if (!x->inbuf || !x->tsbuf || !x->out || !x->nodes || !x->edges ||
	    !x->pend)
		return -ENOMEM;
	for (unsigned d = 0; d < x->n; d++) {
		x->out[d].cap = WR_OUTBUF_CAP;
		x->out[d].slots = zalloc(x, (size_t)WR_OUTBUF_CAP * x->slot);
		if (x->out[d].slots == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* Envelopes one record entering n can stage, through any path: 0 for a
 * stage that ends in sinks (unlike node->amp, which is at least 1 because
 * it divides batch sizes). */
static uint32_t stages(const struct weir_stream *n)
{
	uint64_t sum = 0;

	if (n->kind == WR_NODE_KEY_BY)
		return 1;
	for (unsigned i = 0; i < n->ndown; i++)
		sum += stages(n->down[i]);
	if (n->side != NULL)
		sum += stages(n->side);
	sum *= n->max_out;
	return sum > WR_OUTBUF_CAP ? WR_OUTBUF_CAP : (uint32_t)sum;
}

static void edge_amps(struct wr_exec *x)
{
	for (unsigned e = 0; e < x->p->nedges; e++) {
		const struct weir_stream *kb = x->p->edges[e];
		uint64_t sum = 0;
		for (unsigned i = 0; i < kb->ndown; i++)
			sum += stages(kb->down[i]);
		x->edge_amp[e] = sum > WR_OUTBUF_CAP ? WR_OUTBUF_CAP
						     : (uint32_t)sum;
	}
}

static uint32_t ring_amp(const struct weir_pipeline *p)
{
	uint32_t amp = 1;

	for (unsigned e = 0; e < p->nedges; e++) {
		const struct weir_stream *kb = p->edges[e];
		uint32_t sum = 0;
		for (unsigned i = 0; i < kb->ndown; i++)
			sum += kb->down[i]->amp;
		if (sum > amp)
			amp = sum;
	}
	return amp;
}

static int open_sources(struct wr_exec *x)
{
	for (unsigned i = 0; i < x->nsources; i++) {
		const struct weir_stream *s = x->sources[i];
		int err = 0;
		if (s->fn.source.open != NULL) {
			x->ctx.node = s;
			err = s->fn.source.open(&x->ctx, x->id, x->n, s->arg);
			x->ctx.node = NULL;
		}
		if (err)
			return err;
	}
	return 0;
}

/* The core's state arena: the memory cap, with 1/16 of it kept for the
 * copy-on-write shadows a checkpoint may need. */
static int create_arena(const struct weir_pipeline *p, struct wr_arena **out)
{
	struct wr_arena_config ac = { .cap_bytes = p->cfg.state_bytes_max };
	uint32_t pages = (uint32_t)(ac.cap_bytes / WR_ARENA_PAGE_SIZE_DEFAULT);

	ac.reserve_pages = pages / 16;
	return wr_arena_create(&ac, out);
}

/* The arena preloaded with this core's checkpoint pages, or a new one. */
static int open_arena(struct wr_exec *x)
{
	struct wr_arena **pre = x->p->preload ? &x->p->preload[x->id] : NULL;

	if (pre == NULL || *pre == NULL)
		return create_arena(x->p, &x->arena);
	x->arena = *pre;
	*pre = NULL;
	x->preloaded = true;
	return 0;
}

int wr_exec_preload(struct weir_pipeline *p, struct weir_worker *w)
{
	unsigned id = weir_worker_id(w);
	struct wr_arena *a;
	int err = create_arena(p, &a);

	if (err)
		return err;
	/* Worker i's replay helper on the i-th spare CPU, if there is one. */
	err = wr_ckpt_load_core_with(p->ck->restore, id, a,
				     weir_runtime_spare_cpu(p->rt, id));
	if (err)
		wr_arena_destroy(a);
	else
		p->preload[id] = a;
	return err;
}

static int build(struct wr_exec *x)
{
	int err = 0;

	for (unsigned i = 0; err == 0 && i < x->p->nnodes; i++)
		err = alloc_node(x, x->p->nodes[i]);
	return err ? err : open_sources(x);
}

/* From a checkpoint: the same core count loads this core's pages and
 * rebuilds the operators from their headers; another core count builds
 * them empty and copies in what it owns (core/ckpt_meta.c).  Then the
 * sources rewind. */
static int build_restored(struct wr_exec *x)
{
	struct wr_ckpt *c = x->p->ck->restore;
	int err = 0;

	if (wr_ckpt_info(c)->cores == x->n) {
		if (!x->preloaded)
			err = wr_ckpt_load_core_with(c, x->id, x->arena,
					weir_runtime_spare_cpu(x->p->rt, x->id));
		if (err == 0)
			err = wr_ckpt_log_continue(x);
		x->restore_pages = true;
	}
	for (unsigned i = 0; err == 0 && i < x->p->nnodes; i++)
		err = alloc_node(x, x->p->nodes[i]);
	x->restore_pages = false;
	if (err == 0)
		err = wr_ckpt_meta_restore(x);
	if (err == 0)
		err = open_sources(x);
	return err ? err : wr_ckpt_sources_restore(x);
}

/* state_prefault_bytes of the arena mapped past its high water (after a
 * restore, past the restored pages), before any record. */
static int prefault_state(struct wr_exec *x)
{
	struct wr_arena *a = x->arena;
	size_t pages = x->p->cfg.state_prefault_bytes >> a->page_shift;
	uint32_t ahead = pages < a->pages_total ? (uint32_t)pages :
			 a->pages_total;
	int rc;

	while ((rc = wr_arena_map_ahead(a, ahead)) == 1)
		;
	return rc;
}

int wr_exec_create(struct weir_pipeline *p, struct weir_worker *w,
		   struct wr_exec **out)
{
	struct wr_exec *x = weir_worker_alloc_local(w, sizeof(*x));
	int err;

	if (x == NULL)
		return -ENOMEM;
	memset(x, 0, sizeof(*x));
	x->p = p;
	x->w = w;
	x->id = weir_worker_id(w);
	x->n = weir_worker_count(w);
	x->slot = p->slot_size;
	x->ring_amp = ring_amp(p);
	x->kg_shift = (uint32_t)__builtin_ctz(p->cfg.key_groups);
	edge_amps(x);
	x->ctx.x = x;
	x->ctx.ts = WEIR_TS_MIN;
	*out = x;
	err = alloc_buffers(x);
	if (err == 0)
		err = open_arena(x);
	if (err == 0)
		wr_time_init(x);
	if (err == 0 && p->ck != NULL && p->ck->restore != NULL) {
		pthread_mutex_lock(&p->ck->restore_lock);
		err = build_restored(x);
		pthread_mutex_unlock(&p->ck->restore_lock);
	} else {
		err = err ? err : build(x);
	}
	err = err ? err : prefault_state(x);
	return err ? err : wr_ckpt_exec_init(x);
}

int wr_exec_finish(struct wr_exec *x)
{
	x->finished = true;
	for (unsigned i = 0; i < x->p->nnodes; i++) {
		const struct weir_stream *n = x->p->nodes[i];
		if (n->kind == WR_NODE_SINK && n->sink_ops->finish != NULL) {
			int err = n->sink_ops->finish(x, n);
			if (err)
				return err;
		}
	}
	return 0;
}

bool wr_exec_firing(const struct wr_exec *x, int stage_edge)
{
	for (unsigned i = 0; i < x->p->nnodes; i++) {
		const struct weir_stream *n = x->p->nodes[i];
		if (n->kind == WR_NODE_WINDOW &&
		    (stage_edge == WR_ANY_STAGE || n->stage_edge == stage_edge) &&
		    wr_winop_firing(x, n))
			return true;
	}
	return false;
}

struct weir_ctx *wr_exec_ctx(struct wr_exec *x)
{
	return &x->ctx;
}

void **wr_exec_sink_state(struct wr_exec *x, const struct weir_stream *n)
{
	return &x->nodes[n->id].sink_state;
}

unsigned wr_exec_core(const struct wr_exec *x)
{
	return x->id;
}

int64_t wr_exec_now_ms(const struct wr_exec *x)
{
	return x->now_ms;
}

void wr_exec_destroy(struct wr_exec *x)
{
	if (x == NULL)
		return;
	wr_ckpt_exec_fini(x);
	for (unsigned i = 0; x->nodes != NULL && i < x->p->nnodes; i++) {
		const struct weir_stream *n = x->p->nodes[i];
		struct wr_node_rt *nr = &x->nodes[i];
		if (n->kind == WR_NODE_SOURCE && n->fn.source.close != NULL) {
			x->ctx.node = n;
			n->fn.source.close(&x->ctx, n->arg);
		}
		if (nr->ks != NULL)
			wr_process_close(x, nr->ks);
		wr_timers_destroy(nr->timers);
		wr_winop_close(x, n);
		wr_comb_destroy(x, nr->comb);
		if (n->kind == WR_NODE_SINK && n->sink_ops->close != NULL)
			n->sink_ops->close(x, n);
		weir_worker_free_local(x->w, nr->scratch);
		weir_worker_free_local(x->w, nr->keys);
	}
	for (unsigned d = 0; x->out != NULL && d < x->n; d++)
		weir_worker_free_local(x->w, x->out[d].slots);
	weir_worker_free_local(x->w, x->out);
	weir_worker_free_local(x->w, x->nodes);
	weir_worker_free_local(x->w, x->edges);
	weir_worker_free_local(x->w, x->inbuf);
	weir_worker_free_local(x->w, x->tsbuf);
	weir_worker_free_local(x->w, x->pend);
	wr_arena_destroy(x->arena);
	weir_worker_free_local(x->w, x);
}

/* ---- the calls user callbacks make ---- */

int weir_emit(struct weir_ctx *c, const void *rec)
{
	return wr_emit_down(c->x, c->node, rec, c->ts);
}

int weir_emit_ts(struct weir_ctx *c, const void *rec, int64_t ts_ms)
{
	return wr_emit_down(c->x, c->node, rec, ts_ms);
}

unsigned weir_ctx_core(const struct weir_ctx *c)
{
	return c->x->id;
}

unsigned weir_ctx_cores(const struct weir_ctx *c)
{
	return c->x->n;
}

int64_t weir_ctx_timestamp(const struct weir_ctx *c)
{
	return c->ts;
}

const void *weir_ctx_key(const struct weir_ctx *c)
{
	return c->key;
}
