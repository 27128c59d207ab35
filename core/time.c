/*
 * time.c — event time on one core: source watermarks (bounded
 * out-of-orderness, idleness), watermark markers per key_by edge in and
 * out, and firing the timers of keyed operators.
 *
 * The watermark of edge e on this core is the minimum over the senders
 * that are not idle of the last watermark each sent on e (END counts as
 * WEIR_TS_MAX).  Operators behind e fire their event timers up to it; only
 * when every timer up to it has fired does it become the watermark this
 * core sends downstream (fired_upto), so results always precede the
 * watermark that released them.  Markers are per edge, so a core that
 * both feeds and consumes edge e never waits on itself.
 */
#include <errno.h>

#include "core/exec_internal.h"

/* Watermarks are sent at most this often per edge: Flink's default
 * autoWatermarkInterval is 200 ms; 20 ms keeps windows prompt at a cost of
 * one marker per edge per core per 20 ms. */
#define WM_INTERVAL_MS 20
/* Timers fired per operator per tick. */
#define TIMER_BUDGET 256u
/* Window rows emitted per operator per tick: a row costs ~50 ns (output(),
 * staging), so a firing delays the records of its tick by ~3 us, not the
 * ~13 us of 256 rows (a 64k-row window then takes ~1000 ticks). */
#define WINDOW_ROWS_BUDGET 64u

/* The stage a key_by's records come from: a source or an earlier key_by. */
static const struct weir_stream *stage_root(const struct weir_stream *kb)
{
	const struct weir_stream *n = kb->up;

	while (n->kind != WR_NODE_SOURCE && n->kind != WR_NODE_KEY_BY)
		n = n->up;
	return n;
}

void wr_time_init(struct wr_exec *x)
{
	for (unsigned e = 0; e < x->p->nedges; e++) {
		struct wr_edge_rt *er = &x->edges[e];
		for (unsigned i = 0; i < x->n; i++)
			er->wm_from[i] = WEIR_TS_MIN;
		er->wm = er->fired_upto = er->wm_sent = WEIR_TS_MIN;
	}
	for (unsigned i = 0; i < x->p->nnodes; i++) {
		x->nodes[i].max_ts = WEIR_TS_MIN;
		x->nodes[i].align_edge = -1;
	}
	for (unsigned e = x->p->nedges; e-- > 0;) {
		const struct weir_stream *root = stage_root(x->p->edges[e]);
		/* Not a live one (no position(): a NIC's queue): holding it
		 * back would drop its packets; nor one that aligns itself. */
		if (root->kind == WR_NODE_SOURCE &&
		    root->fn.source.position != NULL &&
		    !(root->fn.source.flags & WEIR_SOURCE_SELF_ALIGNED))
			x->nodes[root->id].align_edge = (int)e;
	}
}

static void recompute(struct wr_edge_rt *er, unsigned n)
{
	int64_t min = WEIR_TS_MAX;
	bool any = false;

	for (unsigned i = 0; i < n; i++) {
		if (er->idle_from[i])
			continue;
		any = true;
		if (er->wm_from[i] < min)
			min = er->wm_from[i];
	}
	if (any && min > er->wm) /* watermarks never go back */
		er->wm = min;
}

void wr_time_marker(struct wr_exec *x, unsigned from,
		    const struct weir_marker *m)
{
	struct wr_edge_rt *er;

	if (m->arg >= x->p->nedges)
		return;
	er = &x->edges[m->arg];
	switch (m->kind) {
	case WEIR_MARKER_END:
		if (er->end_from[from])
			return;
		er->end_from[from] = true;
		er->ends_received++;
		er->wm_from[from] = WEIR_TS_MAX;
		er->idle_from[from] = false;
		break;
	case WEIR_MARKER_WATERMARK:
		if ((int64_t)m->value > er->wm_from[from])
			er->wm_from[from] = (int64_t)m->value;
		er->idle_from[from] = false;
		break;
	case WEIR_MARKER_IDLE:
		er->idle_from[from] = true;
		break;
	default:
		return;
	}
	recompute(er, x->n);
}

/* ---- firing timers ---- */

static uint32_t room_for(const struct wr_exec *x, const struct weir_stream *n)
{
	uint32_t room = WR_OUTBUF_CAP;

	for (unsigned d = 0; d < x->n; d++)
		if (x->out[d].cap - x->out[d].n < room)
			room = x->out[d].cap - x->out[d].n;
	room /= n->amp ? n->amp : 1;
	return room < TIMER_BUDGET ? room : TIMER_BUDGET;
}

static int fire_domain(struct wr_exec *x, const struct weir_stream *n,
		       int domain, int64_t upto)
{
	struct wr_timers *t = x->nodes[n->id].timers;
	uint32_t budget = room_for(x, n);
	struct wr_timer tm;

	while (wr_timers_pop(t, domain, upto, &budget, &tm) == 1) {
		int err = wr_process_timer(x, n, domain, &tm);
		if (err)
			return err;
	}
	return 0;
}

/* A window operator: rows of its due windows, as many as there is room. */
static int fire_windows(struct wr_exec *x, const struct weir_stream *n,
			bool aligning, bool *behind)
{
	int64_t wm = x->edges[n->stage_edge].wm;
	uint32_t budget = room_for(x, n);
	int rc = wr_winop_fire(x, n, wm, budget < WINDOW_ROWS_BUDGET ? budget
					: WINDOW_ROWS_BUDGET, !aligning);

	if (rc > 0)
		behind[n->stage_edge] = true;
	return rc < 0 ? rc : 0;
}

int wr_time_fire(struct wr_exec *x, bool aligning)
{
	bool behind[WR_EDGES_MAX] = { false };

	for (unsigned i = 0; i < x->p->nnodes; i++) {
		const struct weir_stream *n = x->p->nodes[i];
		struct wr_timers *t = x->nodes[i].timers;
		if (n->kind == WR_NODE_WINDOW) {
			int err = fire_windows(x, n, aligning, behind);
			if (err)
				return err;
			continue;
		}
		if (t == NULL || n->stage_edge < 0 || aligning)
			continue;
		int64_t wm = x->edges[n->stage_edge].wm;
		int err = fire_domain(x, n, WEIR_EVENT_TIME, wm);
		if (err == 0)
			err = fire_domain(x, n, WEIR_PROCESSING_TIME, x->now_ms);
		if (err)
			return err;
		if (wr_timers_due(t, WEIR_EVENT_TIME, wm))
			behind[n->stage_edge] = true; /* more next tick */
	}
	for (unsigned e = 0; e < x->p->nedges && !aligning; e++)
		if (!behind[e])
			x->edges[e].fired_upto = x->edges[e].wm;
	return 0;
}

/* ---- sending watermarks ---- */

static int64_t source_wm(const struct wr_exec *x, const struct weir_stream *s,
			 bool *idle)
{
	const struct wr_node_rt *nr = &x->nodes[s->id];

	*idle = false;
	if (nr->ended)
		return WEIR_TS_MAX;
	if (!s->event_time || nr->max_ts == WEIR_TS_MIN)
		return WEIR_TS_MIN;
	if (s->idle_ms > 0 && s->fn.source.clock == NULL &&
	    x->now_ms - nr->active_ms >= s->idle_ms)
		*idle = true;
	return nr->max_ts - s->ooo_ms - 1;
}

bool wr_time_upstream_ended(const struct wr_exec *x,
			    const struct weir_stream *kb)
{
	const struct weir_stream *root = stage_root(kb);

	if (root->kind == WR_NODE_SOURCE)
		return x->nodes[root->id].ended;
	return x->edges[root->edge].ends_received == x->n &&
	       x->edges[root->edge].fired_upto == WEIR_TS_MAX;
}

static int64_t upstream_wm(const struct wr_exec *x,
			   const struct weir_stream *kb, bool *idle)
{
	const struct weir_stream *root = stage_root(kb);

	if (root->kind == WR_NODE_SOURCE)
		return source_wm(x, root, idle);
	*idle = false;
	return x->edges[root->edge].fired_upto;
}

/*
 * Watermark alignment.  The other cores' watermarks on the edge s feeds
 * are what they last sent (at most every 20 ms), never above their real
 * ones, so a split never runs more than the drift (plus a burst) ahead of
 * the others' real watermarks.  Two cores may each hold on the other's
 * stale value, but a held core still sends its watermark (wr_time_send
 * runs every tick), so that resolves within a marker interval.
 * WEIR_TS_MIN from a core (nothing sent yet: its split has not started,
 * or has no timestamps) does not hold others back.
 */
bool wr_time_source_ahead(const struct wr_exec *x, const struct weir_stream *s)
{
	const struct wr_node_rt *nr = &x->nodes[s->id];
	int64_t drift = x->p->cfg.align_drift_ms, slowest = WEIR_TS_MAX, own;
	const struct wr_edge_rt *er;
	bool idle;

	if (drift <= 0 || nr->align_edge < 0 || x->n < 2)
		return false;
	own = source_wm(x, s, &idle);
	if (own == WEIR_TS_MIN || own == WEIR_TS_MAX)
		return false;
	er = &x->edges[nr->align_edge];
	for (unsigned i = 0; i < x->n; i++)
		if (i != x->id && !er->idle_from[i] &&
		    er->wm_from[i] != WEIR_TS_MIN && er->wm_from[i] < slowest)
			slowest = er->wm_from[i];
	return slowest != WEIR_TS_MAX && own - slowest > drift;
}

/* Call only with every out buffer empty: a marker lands at the ring's
 * current position, so staged envelopes would end up behind it. */
void wr_time_send(struct wr_exec *x)
{
	for (unsigned e = 0; e < x->p->nedges; e++) {
		struct wr_edge_rt *er = &x->edges[e];
		bool idle, ok = true;
		int64_t u = upstream_wm(x, x->p->edges[e], &idle);

		if (er->ends_sent > 0 || u == WEIR_TS_MAX)
			continue; /* END carries the final watermark */
		if (idle == er->idle_sent && (idle || u <= er->wm_sent))
			continue;
		if (x->now_ms - er->sent_ms < WM_INTERVAL_MS)
			continue;
		/* Partials of windows this watermark may fire go first; all of
		 * them before IDLE (the receivers then stop waiting for us). */
		if (!wr_exec_comb_clear(x, e, idle ? WEIR_TS_MAX : u))
			continue;
		struct weir_marker m = { idle ? WEIR_MARKER_IDLE
					      : WEIR_MARKER_WATERMARK,
					 e, (uint64_t)u };
		for (unsigned d = 0; d < x->n; d++)
			ok &= weir_worker_send_marker_local(x->w, d, &m) == 0;
		if (!ok)
			continue; /* a marker queue is full: resend later */
		er->idle_sent = idle;
		if (!idle)
			er->wm_sent = u;
		er->sent_ms = x->now_ms;
	}
}

/* ---- restore ---- */

void wr_time_restore_edge(struct wr_exec *x, unsigned e, int64_t wm,
			  int64_t fired_upto, bool first)
{
	struct wr_edge_rt *er = &x->edges[e];

	if (first || wm < er->wm)
		er->wm = wm;
	if (first || fired_upto < er->fired_upto)
		er->fired_upto = fired_upto;
	/* Every sender starts from the edge's watermark: it never goes back,
	 * and new markers raise it as before. */
	for (unsigned i = 0; i < x->n; i++)
		er->wm_from[i] = er->wm;
}

void wr_time_restore_node(struct wr_exec *x, unsigned i, int64_t max_ts,
			  int64_t active_ms, bool first)
{
	struct wr_node_rt *nr = &x->nodes[i];

	if (first || (max_ts != WEIR_TS_MIN &&
		      (nr->max_ts == WEIR_TS_MIN || max_ts < nr->max_ts)))
		nr->max_ts = max_ts;
	if (first || active_ms > nr->active_ms)
		nr->active_ms = active_ms;
}
