/*
 * exec.c — one core's instance of the pipeline graph: polls its source
 * splits, drains its input rings, runs the chained operators, stages
 * envelopes for other cores and propagates end-of-input.  See
 * pipeline_internal.h for the envelope, marker and backpressure rules.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "core/error.h"
#include "core/exec_internal.h"
#include "state/keyed.h"
#include "weir/metrics.h"
#include "weir/tsc.h"

/* ---- staging envelopes per destination core ---- */

uint32_t wr_exec_outbuf_room(const struct wr_exec *x)
{
	uint32_t room = WR_OUTBUF_CAP;

	for (unsigned d = 0; d < x->n; d++)
		if (x->out[d].cap - x->out[d].n < room)
			room = x->out[d].cap - x->out[d].n;
	return room;
}

/* Sends what the ring takes of o's staged envelopes: up to two bursts,
 * since o is circular (no memmove of what is left, ~12% of a 1-core flows
 * job when the ring took part of a full buffer). */
static void flush_one(struct wr_exec *x, unsigned d)
{
	struct wr_outbuf *o = &x->out[d];
	uint32_t run, sent;

	while (o->n > 0) {
		run = o->cap - o->head < o->n ? o->cap - o->head : o->n;
		sent = weir_worker_send_burst_local(
			x->w, d, o->slots + (size_t)o->head * x->slot, run);
		o->head = (o->head + sent) & (o->cap - 1);
		o->n -= sent;
		if (sent < run)
			break;
	}
	if (o->n == 0)
		o->head = 0;
}

static uint32_t flush_all(struct wr_exec *x)
{
	uint32_t pending = 0;

	for (unsigned d = 0; d < x->n; d++) {
		flush_one(x, d);
		pending += x->out[d].n;
	}
	return pending;
}

static int overflow(const struct weir_stream *kb)
{
	return wr_error(-EOVERFLOW, "operator before '%s' emitted more records "
			"than it declared", kb->name);
}

int wr_exec_stage_keyed(struct wr_exec *x, const struct weir_stream *kb,
			const void *rec, uint64_t hash, int64_t ts)
{
	uint32_t kg = (uint32_t)(hash & (x->p->cfg.key_groups - 1));
	/* weir_key_group_owner() without its division (key_groups is a
	 * power of two): 4% of a keyed update before. */
	unsigned d = (unsigned)(((uint64_t)kg * x->n) >> x->kg_shift);

	if (WEIR_UNLIKELY(x->out[d].n == x->out[d].cap))
		return -EOVERFLOW;
	memcpy(wr_exec_stage_slot(x, d, kb->edge, kg, ts, hash), rec,
	       kb->out_size);
	return 0;
}

/* KEY_BY: key the record and stage it (through the edge's combiner when it
 * has one: combine.c). */
static int stage(struct wr_exec *x, const struct weir_stream *kb,
		 const void *rec, int64_t ts)
{
	struct wr_node_rt *nr = &x->nodes[kb->id];
	uint64_t hash;
	int rc = 0;

	if (kb->fn.key_by == NULL) { /* global: everything to core 0 */
		if (WEIR_UNLIKELY(x->out[0].n == x->out[0].cap))
			return overflow(kb);
		memcpy(wr_exec_stage_slot(x, 0, kb->edge, 0, ts, 0), rec,
		       kb->out_size);
		return 0;
	}
	kb->fn.key_by(rec, nr->key, kb->arg);
	hash = XXH3_64bits(nr->key, kb->key_size);
	if (nr->comb != NULL) /* 1 taken, 0 bypassed */
		rc = wr_comb_add(x, kb, nr->comb, rec, nr->key, hash, ts);
	if (rc == 0)
		rc = wr_exec_stage_keyed(x, kb, rec, hash, ts);
	return rc < 0 ? overflow(kb) : 0;
}

/* XXH3 of n keys of one size, inlined whole so the loop's invariant length
 * tests are taken once, not per key (a call per key cost ~67 instructions
 * of a 40-byte key). */
__attribute__((flatten, noinline))
static void hash_keys(const uint8_t *keys, uint32_t size, uint32_t n,
		      uint64_t *hash)
{
	for (uint32_t i = 0; i < n; i++)
		hash[i] = XXH3_64bits(keys + (size_t)i * size, size);
}

/*
 * A source batch straight into its key_by (the common shape): keys and
 * hashes first, then the combiner's burst (which prefetches its sets
 * before adding, so the batch's cache misses overlap instead of one per
 * record), or the records staged.
 */
static int stage_batch(struct wr_exec *x, const struct weir_stream *kb,
		       const uint8_t *recs, uint32_t rec_size, int n)
{
	struct wr_node_rt *nr = &x->nodes[kb->id];
	uint64_t hash[WR_BURST];
	struct wr_keyed_burst b = { recs, nr->keys, hash, x->tsbuf,
				    (uint32_t)n, rec_size };
	int err = 0;

	for (int i = 0; i < n; i++)
		kb->fn.key_by(recs + (size_t)i * rec_size,
			      nr->keys + (size_t)i * kb->key_size, kb->arg);
	hash_keys(nr->keys, kb->key_size, (uint32_t)n, hash);
	if (nr->comb != NULL)
		err = wr_comb_add_burst(x, kb, nr->comb, &b);
	else
		for (int i = 0; err == 0 && i < n; i++)
			err = wr_exec_stage_keyed(x, kb,
						  recs + (size_t)i * rec_size,
						  hash[i], x->tsbuf[i]);
	return err < 0 ? overflow(kb) : 0;
}

/* ---- running operators ---- */

static int deliver(struct wr_exec *x, const struct weir_stream *n,
		   const void *rec, int64_t ts);

int wr_emit_down(struct wr_exec *x, const struct weir_stream *n,
		 const void *rec, int64_t ts)
{
	for (unsigned i = 0; i < n->ndown; i++) {
		int err = deliver(x, n->down[i], rec, ts);
		if (err)
			return err;
	}
	return 0;
}

/* A user callback runs "as" node n: weir_emit() then feeds n's outputs. */
struct as_node {
	const struct weir_stream *node;
	int64_t ts;
};

static inline struct as_node enter(struct wr_exec *x,
				   const struct weir_stream *n, int64_t ts)
{
	struct as_node saved = { x->ctx.node, x->ctx.ts };

	x->ctx.node = n;
	x->ctx.ts = ts;
	return saved;
}

static inline int leave(struct wr_exec *x, struct as_node saved, int rc)
{
	x->ctx.node = saved.node;
	x->ctx.ts = saved.ts;
	return rc;
}

static int call_user(struct wr_exec *x, const struct weir_stream *n,
		     const void *rec, int64_t ts)
{
	struct wr_node_rt *nr = &x->nodes[n->id];
	struct as_node saved = enter(x, n, ts);

	switch (n->kind) {
	case WR_NODE_MAP:
		return leave(x, saved, n->fn.map(&x->ctx, rec, nr->scratch,
						 n->arg));
	case WR_NODE_FILTER:
		return leave(x, saved, n->fn.filter(&x->ctx, rec, n->arg));
	case WR_NODE_FLAT_MAP:
		return leave(x, saved, n->fn.flat_map(&x->ctx, rec, n->arg));
	case WR_NODE_PROCESS:
		return leave(x, saved, wr_process_record(x, n, rec));
	case WR_NODE_SINK:
		return leave(x, saved, n->sink_ops->write(x, n, rec));
	default:
		return leave(x, saved, wr_error(-EINVAL, "operator '%s' "
				"cannot take input", n->name));
	}
}

static int deliver(struct wr_exec *x, const struct weir_stream *n,
		   const void *rec, int64_t ts)
{
	int rc;

	switch (n->kind) {
	case WR_NODE_KEY_BY:
		return stage(x, n, rec, ts);
	case WR_NODE_MAP:
		rc = call_user(x, n, rec, ts);
		return rc ? rc : wr_emit_down(x, n, x->nodes[n->id].scratch, ts);
	case WR_NODE_FILTER:
		rc = call_user(x, n, rec, ts); /* bool: keep the record? */
		return rc ? wr_emit_down(x, n, rec, ts) : 0;
	case WR_NODE_SIDE:
		return wr_emit_down(x, n, rec, ts);
	case WR_NODE_WINDOW:
		return wr_winop_record(x, n, rec, ts);
	default:
		return call_user(x, n, rec, ts);
	}
}

/* ---- inputs: rings and sources ---- */

/* Prefetch the state slots of a whole batch before touching any: a miss
 * costs ~240-350 ns here, so overlapping them is most of the speed. */
static void prefetch_state(struct wr_exec *x, uint32_t got)
{
	for (uint32_t i = 0; i < got; i++) {
		const struct wr_envelope *env =
			(const void *)(x->inbuf + (size_t)i * x->slot);
		const struct weir_stream *kb =
			x->p->edges[env->edge & ~WR_ENV_PARTIAL];
		for (unsigned d = 0; d < kb->ndown; d++) {
			const struct weir_stream *n = kb->down[d];
			if (n->kind == WR_NODE_PROCESS)
				wr_process_prefetch(x, n, env->hash);
			else if (n->kind == WR_NODE_WINDOW)
				wr_winop_prefetch(x, n, env->ts, env->hash);
		}
	}
}

/* A combiner's partial (combine.c): [u64 records][acc, padded to 8][key],
 * merged into the windows of its pane. */
static int run_partial(struct wr_exec *x, const struct weir_stream *kb,
		       const struct wr_envelope *env)
{
	const uint8_t *p = (const uint8_t *)(env + 1);
	uint32_t acc_span = kb->partial_acc;
	uint64_t records;
	int err;

	memcpy(&records, p, 8);
	x->ctx.key = p + 8 + acc_span;
	x->ctx.hash = env->hash;
	x->ctx.key_group = env->key_group;
	err = wr_winop_merge(x, kb->down[0], p + 8, records, env->ts);
	x->ctx.key = NULL;
	return err;
}

static int run_envelopes(struct wr_exec *x, uint32_t got)
{
	prefetch_state(x, got);
	for (uint32_t i = 0; i < got; i++) {
		const struct wr_envelope *env =
			(const void *)(x->inbuf + (size_t)i * x->slot);
		const struct weir_stream *kb =
			x->p->edges[env->edge & ~WR_ENV_PARTIAL];
		const void *rec = env + 1;

		if (env->edge & WR_ENV_PARTIAL) {
			int err = run_partial(x, kb, env);
			if (err)
				return err;
			continue;
		}
		if (kb->fn.key_by != NULL) {
			kb->fn.key_by(rec, x->nodes[kb->id].key, kb->arg);
			x->ctx.key = x->nodes[kb->id].key;
		}
		x->ctx.hash = env->hash;
		x->ctx.key_group = env->key_group;
		int err = wr_emit_down(x, kb, rec, env->ts);
		x->ctx.key = NULL;
		if (err)
			return err;
	}
	return 0;
}

static void take_markers(struct wr_exec *x, unsigned from)
{
	struct weir_marker m;

	/* Nothing after a sender's last barrier until our snapshot. */
	while (!x->ck.blocked[from] &&
	       weir_worker_recv_marker_local(x->w, from, &m) == 1) {
		wr_time_marker(x, from, &m);
		if (m.kind == WEIR_MARKER_BARRIER || m.kind == WEIR_MARKER_END)
			wr_ckpt_marker(x, from, &m);
	}
}

/*
 * Slow path when the out buffers are nearly full: one envelope at a time,
 * held in a per-ring pending slot until there is room for what it can
 * produce.  An envelope of the last stage produces nothing and always
 * passes, so the last stage keeps draining even when every out buffer is
 * full (head-of-line blocking behind an earlier stage's envelope remains
 * possible: see docs/architecture.md, "Known limits").
 */
static int drain_one_by_one(struct wr_exec *x, unsigned from, uint32_t *work)
{
	uint8_t *slot = x->pend + (size_t)from * x->slot;

	for (uint32_t i = 0; i < WR_BURST; i++) {
		const struct wr_envelope *env = (const void *)slot;
		if (!x->pend_full[from]) {
			if (weir_worker_recv_burst_local(x->w, from, slot, 1) != 1)
				break;
			x->pend_full[from] = true;
		}
		if (wr_exec_outbuf_room(x) < x->edge_amp[env->edge & ~WR_ENV_PARTIAL])
			break; /* keep it for a later tick */
		x->pend_full[from] = false;
		memcpy(x->inbuf, slot, x->slot);
		int err = run_envelopes(x, 1);
		if (err)
			return err;
		(*work)++;
	}
	return 0;
}

static int drain_rings(struct wr_exec *x, uint32_t *work)
{
	for (unsigned from = 0; from < x->n; from++) {
		int err = 0;

		if (x->ck.blocked[from])
			continue; /* aligning: it sent everything it owes */
		if (x->pend_full[from] ||
		    wr_exec_outbuf_room(x) < x->ring_amp * WR_BURST) {
			err = drain_one_by_one(x, from, work);
		} else {
			uint32_t got = weir_worker_recv_burst_local(
				x->w, from, x->inbuf, WR_BURST);
			err = run_envelopes(x, got);
			*work += got;
		}
		if (err)
			return err;
		/* A marker is taken only once every record before it is; never
		 * while a record waits in the pending slot. */
		if (!x->pend_full[from])
			take_markers(x, from);
	}
	return 0;
}

/* The largest of m and n timestamps, with no store per record (the
 * conditional store into the node kept gcc from vectorising the loop). */
static int64_t max_ts(const int64_t *ts, int n, int64_t m)
{
	for (int i = 0; i < n; i++)
		m = ts[i] > m ? ts[i] : m;
	return m;
}

/* A quiet split whose timestamps are its own clock's: what that clock
 * vouches for counts as seen (weir_source_ops.clock). */
static void source_clock(struct wr_exec *x, const struct weir_stream *s,
			 struct wr_node_rt *nr)
{
	struct as_node saved = enter(x, s, WEIR_TS_MIN);
	int64_t t = s->fn.source.clock(&x->ctx, s->arg);

	leave(x, saved, 0);
	if (t > nr->max_ts)
		nr->max_ts = t;
}

/* WEIR_METRIC_BACKPRESSURE_NS: how long a source was not polled for want
 * of out-buffer room (the cores its records go to are behind).  The TSC
 * is read at the two edges only. */
static void backpressure(struct wr_exec *x, struct wr_node_rt *nr, bool held)
{
	uint64_t now;

	if (held == (nr->held_tsc != 0))
		return;
	now = weir_tsc_now();
	if (held) {
		nr->held_tsc = now | 1;
		return;
	}
	weir_metrics_add_local(x->p->metrics, x->id, WEIR_METRIC_BACKPRESSURE_NS,
			       weir_tsc_ns(nr->held_tsc, now));
	nr->held_tsc = 0;
}

static int poll_source(struct wr_exec *x, const struct weir_stream *s,
		       uint32_t *work)
{
	struct wr_node_rt *nr = &x->nodes[s->id];
	uint32_t room = wr_exec_outbuf_room(x) / s->amp;
	uint32_t want = room < WR_BURST ? room : WR_BURST;
	int got;

	if (x->p->metrics != NULL)
		backpressure(x, nr, want == 0 && !nr->ended);
	if (nr->ended || want == 0 || wr_ckpt_aligning(&x->ck) ||
	    wr_time_source_ahead(x, s))
		return 0;
	struct as_node saved = enter(x, s, WEIR_TS_MIN);
	got = leave(x, saved, s->fn.source.next(&x->ctx, x->inbuf, x->tsbuf,
						want, s->arg));
	if (got == WEIR_SOURCE_END) {
		nr->ended = true;
		x->sources_live--;
		return 0;
	}
	if (got < 0)
		return got;
	if (got > 0)
		nr->active_ms = x->now_ms;
	else if (s->fn.source.clock != NULL)
		source_clock(x, s, nr);
	nr->max_ts = max_ts(x->tsbuf, got, nr->max_ts);
	*work += (uint32_t)got;
	if (s->ndown == 1 && s->down[0]->kind == WR_NODE_KEY_BY &&
	    s->down[0]->fn.key_by != NULL)
		return stage_batch(x, s->down[0], x->inbuf, s->out_size, got);
	for (int i = 0; i < got; i++) {
		const void *rec = x->inbuf + (size_t)i * s->out_size;
		int err = wr_emit_down(x, s, rec, x->tsbuf[i]);
		if (err)
			return err;
	}
	return 0;
}

/* ---- end of input ---- */

bool wr_exec_comb_clear(struct wr_exec *x, unsigned e, int64_t upto)
{
	const struct weir_stream *kb = x->p->edges[e];
	struct wr_combiner *c = x->nodes[kb->id].comb;

	if (c == NULL || !wr_comb_holds(c, upto))
		return true;
	/* What it sends is staged behind the marker's ring position until
	 * the out buffers drain: the marker waits at least a tick. */
	wr_comb_flush(x, kb, c, upto, wr_exec_outbuf_room(x));
	return false;
}

static void send_ends(struct wr_exec *x)
{
	for (unsigned e = 0; e < x->p->nedges; e++) {
		struct wr_edge_rt *er = &x->edges[e];
		if (er->ends_sent == x->n ||
		    !wr_time_upstream_ended(x, x->p->edges[e]) ||
		    !wr_exec_comb_clear(x, e, WEIR_TS_MAX))
			continue;
		for (unsigned d = 0; d < x->n; d++) {
			struct weir_marker m = { WEIR_MARKER_END, e, 0 };
			/* END goes after every envelope staged for d. */
			if (er->end_sent_to[d] || x->out[d].n != 0)
				continue;
			if (weir_worker_send_marker_local(x->w, d, &m) == 0) {
				er->end_sent_to[d] = true;
				er->ends_sent++;
			}
		}
	}
}

static bool all_ended(const struct wr_exec *x)
{
	if (x->sources_live > 0)
		return false;
	/* Every edge ended both ways, and every event timer behind it fired
	 * (the final watermark fires every window). */
	for (unsigned e = 0; e < x->p->nedges; e++)
		if (x->edges[e].ends_sent < x->n ||
		    x->edges[e].ends_received < x->n ||
		    x->edges[e].fired_upto != WEIR_TS_MAX)
			return false;
	return true;
}

static int64_t clock_ms(void)
{
	struct timespec ts;

	/* Processing time is wall-clock ms (it must mean the same after a
	 * restart); the coarse clock is a vDSO read of a cached value. */
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* State housekeeping (TTL cleanup, incremental table growth): every
 * tick when idle, every 64th tick under load, STEP_BUDGET entries per
 * state each time, so it never competes with records for long. */
#define STEP_BUDGET 64u
static void housekeeping(struct wr_exec *x, uint32_t work)
{
	if (work > 0 && (++x->ticks & 63) != 0)
		return;
	uint64_t keys = 0;
	for (unsigned i = 0; i < x->p->nnodes; i++) {
		const struct weir_stream *n = x->p->nodes[i];
		if (n->kind == WR_NODE_WINDOW) {
			wr_winop_step(x, n, STEP_BUDGET);
			if (x->p->metrics != NULL)
				keys += wr_winop_keys(x, n);
			continue;
		}
		if (n->kind != WR_NODE_PROCESS)
			continue;
		wr_process_step(x, n, STEP_BUDGET);
		for (unsigned s = 0; x->p->metrics != NULL &&
				     s < wr_process_nstates(x, n); s++)
			keys += wr_kstate_count(wr_process_state(x, n, s));
	}
	if (x->p->metrics == NULL)
		return;
	weir_metrics_set_local(x->p->metrics, x->id, WEIR_METRIC_STATE_KEYS,
			       keys);
	/* Ring occupancy and state bytes, for every job with metrics. */
	weir_metrics_sample_local(x->p->metrics, &x->ctx);
}

/*
 * Deadlock breaker for the shared mesh (docs/architecture.md, "Known
 * limits"): when a core holds a ring's head envelope for lack of out-buffer
 * room and has done no work for STALL_TICKS ticks and STALL_MS, every ring
 * it would write to may be full of envelopes that only it or its peers can
 * drain (e.g. its own ring to itself).  It then doubles its out buffers, up
 * to STALL_CAP_MAX slots each: the held envelope runs, its ring drains, and
 * the cycle is broken.  Memory stays bounded (the records in flight).
 */
#define STALL_TICKS 1024u
/* ... and for this long: a peer preempted for a few ms on a busy machine is
 * backpressure, not a cycle (1024 ticks alone grew every 2-core flows run's
 * buffers to the maximum). */
#define STALL_MS 20
#define STALL_CAP_MAX (64u * WR_OUTBUF_CAP)

static bool holding_input(const struct wr_exec *x)
{
	for (unsigned from = 0; from < x->n; from++)
		if (x->pend_full[from])
			return true;
	return false;
}

static void grow_outbufs(struct wr_exec *x)
{
	for (unsigned d = 0; d < x->n; d++) {
		struct wr_outbuf *o = &x->out[d];
		uint32_t cap = o->cap * 2;
		if (cap > STALL_CAP_MAX)
			continue;
		uint8_t *s = weir_worker_alloc_local(x->w, (size_t)cap * x->slot);
		if (s == NULL)
			continue;
		uint32_t run = o->cap - o->head < o->n ? o->cap - o->head : o->n;
		memcpy(s, o->slots + (size_t)o->head * x->slot,
		       (size_t)run * x->slot);
		memcpy(s + (size_t)run * x->slot, o->slots,
		       (size_t)(o->n - run) * x->slot);
		weir_worker_free_local(x->w, o->slots);
		o->slots = s;
		o->cap = cap;
		o->head = 0;
	}
}

static void watch_stall(struct wr_exec *x, uint32_t work)
{
	if (work > 0 || !holding_input(x)) {
		x->stalled = 0;
		return;
	}
	if (x->stalled++ == 0)
		x->stalled_since_ms = x->now_ms;
	if (x->stalled >= STALL_TICKS &&
	    x->now_ms - x->stalled_since_ms >= STALL_MS) {
		grow_outbufs(x);
		x->stalled = 0;
	}
}

int wr_exec_poll(struct wr_exec *x)
{
	uint32_t work = 0;
	int err;

	x->now_ms = clock_ms();
	err = drain_rings(x, &work);

	for (unsigned i = 0; err == 0 && i < x->nsources; i++)
		err = poll_source(x, x->sources[i], &work);
	/* A core aligning for a checkpoint starts no firing: what it emitted
	 * would follow the barriers it already sent.  A window firing that
	 * began before goes on, and holds back the barriers downstream. */
	if (err == 0)
		err = wr_time_fire(x, wr_ckpt_aligning(&x->ck));
	if (err)
		return err;
	if (flush_all(x) == 0) {
		if (!wr_ckpt_aligning(&x->ck))
			wr_time_send(x);
		send_ends(x);
	}
	for (unsigned i = 0; i < x->nticking; i++) {
		const struct weir_stream *n = x->ticking[i];
		if ((err = n->sink_ops->tick(x, n)) != 0)
			return err;
	}
	err = wr_ckpt_tick(x, work);
	if (err < 0)
		return err;
	work += (uint32_t)err;
	watch_stall(x, work);
	housekeeping(x, work);
	wr_ckpt_tick_end(x->arena);
	if (all_ended(x) && wr_ckpt_may_finish(x)) {
		err = wr_exec_finish(x);
		if (err)
			return err;
		/* Pairs with the acquire load in weir_pipeline_stopped. */
		atomic_fetch_add_explicit(&x->p->cores_done, 1,
					  memory_order_release);
		weir_worker_finish_local(x->w);
	}
	return (int)work;
}
