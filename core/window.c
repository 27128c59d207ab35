/*
 * window.c — event-time windows (weir/window.h): weir_window() and session
 * windows.  Tumbling and sliding windows are window-major operators
 * (WR_NODE_WINDOW, window_aligned.c).  Session windows are a keyed
 * process function on the public state and timer calls: one map state per
 * key, window start -> [end | accumulator], and event-time timers at
 * end - 1 (fire) and end - 1 + lateness (purge).  core/window_internal.h
 * says why there are two layouts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/exec_internal.h"
#include "core/window_internal.h"

#define ACC_MAX WR_WIN_ACC_MAX
#define WINDOWS_PER_KEY_MAX 4096u

#define win wr_win_spec

struct span {
	int64_t start, end;
};

/* ---- firing ---- */

static int emit_window(struct weir_ctx *c, struct win *w, int64_t start,
		       int64_t end, const void *acc)
{
	uint8_t out[WEIR_RECORD_SIZE_MAX];

	w->spec.output(weir_ctx_key(c), start, end, acc, out, w->spec.arg);
	return weir_emit_ts(c, out, end - 1);
}

static int fire_stored(struct weir_ctx *c, struct win *w, int64_t start)
{
	uint8_t acc[ACC_MAX];
	const uint8_t *v;
	int64_t end;
	int err = weir_map_get(c, 0, &start, (const void **)&v);

	if (err)
		return err;
	memcpy(&end, v, 8);
	memcpy(acc, v + 8, w->agg.acc_size); /* emit may move the table */
	return emit_window(c, w, start, end, acc);
}

static int late(struct weir_ctx *c, struct win *w, const void *rec)
{
	w->late[weir_ctx_core(c)].n++;
	if (w->side == NULL)
		return 0;
	return wr_emit_down(c->x, w->side, rec, weir_ctx_timestamp(c));
}

static int arm(struct weir_ctx *c, struct win *w, int64_t end)
{
	int err = weir_timer_register(c, WEIR_EVENT_TIME, end - 1);

	if (err == 0 && w->spec.allowed_lateness_ms > 0)
		err = weir_timer_register(c, WEIR_EVENT_TIME,
					  end - 1 + w->spec.allowed_lateness_ms);
	return err;
}

/* ---- sessions ---- */

static unsigned collect(struct weir_ctx *c, struct span *out, unsigned max)
{
	struct weir_map_iter it = WEIR_MAP_ITER_INIT;
	const void *mk, *v;
	unsigned n = 0;

	while (n < max && weir_map_next(c, 0, &it, &mk, &v) == 0) {
		memcpy(&out[n].start, mk, 8);
		memcpy(&out[n].end, v, 8);
		n++;
	}
	return n;
}

/*
 * Fold session s into acc, then drop it.  Its timers stay: a timer is
 * (ts, key), so s's purge timer may be another window's firing timer, and
 * deleting it would silence that window.  A timer that finds no window
 * ending (or expiring) at its ts does nothing.
 */
static int absorb(struct weir_ctx *c, struct win *w, struct span s,
		  uint8_t *acc)
{
	const uint8_t *v;
	int err = weir_map_get(c, 0, &s.start, (const void **)&v);

	if (err)
		return err;
	w->agg.merge(acc, v + 8, w->spec.arg);
	return weir_map_remove(c, 0, &s.start);
}

static int add_session(struct weir_ctx *c, struct win *w, const void *rec,
		       int64_t ts)
{
	static _Thread_local struct span spans[WINDOWS_PER_KEY_MAX];
	struct span m = { ts, ts + w->spec.gap_ms };
	uint8_t acc[ACC_MAX], *v;
	unsigned n;
	int err = 0;

	if (m.end - 1 + w->spec.allowed_lateness_ms <= weir_ctx_watermark(c))
		return late(c, w, rec);
	w->agg.create(acc, w->spec.arg);
	w->agg.add(acc, rec, w->spec.arg);
	n = collect(c, spans, WINDOWS_PER_KEY_MAX);
	for (unsigned i = 0; i < n && err == 0; i++) {
		if (spans[i].start > m.end || spans[i].end < m.start)
			continue; /* Flink's TimeWindow.intersects */
		if (spans[i].start < m.start)
			m.start = spans[i].start;
		if (spans[i].end > m.end)
			m.end = spans[i].end;
		err = absorb(c, w, spans[i], acc);
	}
	if (err == 0)
		err = weir_map_update(c, 0, &m.start, (void **)&v, NULL);
	if (err)
		return err;
	memcpy(v, &m.end, 8);
	memcpy(v + 8, acc, w->agg.acc_size);
	err = arm(c, w, m.end);
	if (err == 0 && m.end - 1 <= weir_ctx_watermark(c))
		err = emit_window(c, w, m.start, m.end, acc);
	return err;
}

/* ---- the process function ---- */

static int win_process(struct weir_ctx *c, const void *rec, void *arg)
{
	struct win *w = arg;
	int64_t ts = weir_ctx_timestamp(c);

	if (ts == WEIR_TS_MIN)
		return wr_error(-EINVAL, "window '%s': record without an event "
				"timestamp", w->name);
	return add_session(c, w, rec, ts);
}

static int cmp_start(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return (x->start > y->start) - (x->start < y->start);
}

/* A timer at ts: fire windows ending at ts + 1, purge those whose lateness
 * ran out, in window order. */
static int win_timer(struct weir_ctx *c, int64_t ts, int domain, void *arg)
{
	static _Thread_local struct span spans[WINDOWS_PER_KEY_MAX];
	struct win *w = arg;
	int64_t lateness = w->spec.allowed_lateness_ms;
	unsigned n = collect(c, spans, WINDOWS_PER_KEY_MAX);
	int err = 0;

	(void)domain;
	qsort(spans, n, sizeof(spans[0]), cmp_start);
	for (unsigned i = 0; i < n && err == 0; i++) {
		if (spans[i].end - 1 == ts) /* sessions end where they like */
			err = fire_stored(c, w, spans[i].start);
		if (err == 0 && spans[i].end - 1 + lateness <= ts)
			err = weir_map_remove(c, 0, &spans[i].start);
	}
	return err;
}

/* ---- building ---- */

static int check(const struct weir_window_spec *s)
{
	const char *name = s->name ? s->name : "window";

	if (s->agg == NULL || s->agg->create == NULL || s->agg->add == NULL ||
	    s->output == NULL)
		return wr_error(-EINVAL, "%s: needs agg->create, agg->add and "
				"output", name);
	if (s->agg->acc_size == 0 || s->agg->acc_size > ACC_MAX)
		return wr_error(-EINVAL, "%s: accumulator size %u is out of "
				"range [1, %u]", name, s->agg->acc_size, ACC_MAX);
	if (s->allowed_lateness_ms < 0)
		return wr_error(-EINVAL, "%s: allowed lateness %lld ms is "
				"negative", name,
				(long long)s->allowed_lateness_ms);
	switch (s->kind) {
	case WEIR_WINDOW_TUMBLING:
		break;
	case WEIR_WINDOW_SLIDING:
		if (s->slide_ms <= 0 || (s->size_ms > 0 && s->size_ms % s->slide_ms) ||
		    (s->size_ms > 0 && s->size_ms / s->slide_ms > WEIR_WINDOW_SLIDES_MAX))
			return wr_error(-EINVAL, "%s: slide %lld ms must be > 0, "
					"divide the size and give at most %u "
					"windows", name, (long long)s->slide_ms,
					WEIR_WINDOW_SLIDES_MAX);
		break;
	case WEIR_WINDOW_SESSION:
		if (s->gap_ms <= 0)
			return wr_error(-EINVAL, "%s: session gap %lld ms must be "
					"> 0", name, (long long)s->gap_ms);
		if (s->agg->merge == NULL)
			return wr_error(-EINVAL, "%s: session windows need "
					"agg->merge", name);
		return 0;
	default:
		return wr_error(-EINVAL, "%s: unknown window kind %d", name,
				(int)s->kind);
	}
	if (s->size_ms <= 0)
		return wr_error(-EINVAL, "%s: window size %lld ms must be > 0",
				name, (long long)s->size_ms);
	return 0;
}

static int add_side(struct weir_pipeline *p, struct win *w,
		    struct weir_stream **late_out)
{
	struct weir_stream *side;
	int err = wr_pipeline_add(p, w->node, WR_NODE_SIDE, "late", &side);

	if (err)
		return err;
	/* Not an ordinary output: only late records reach it. */
	w->node->ndown--;
	w->node->side = side;
	side->in_size = side->out_size = w->node->in_size;
	w->side = side;
	*late_out = side;
	return 0;
}

/* Tumbling or sliding: a window-major operator (window_aligned.c). */
static int add_aligned(struct weir_pipeline *p, struct weir_stream *keyed,
		       struct win *w)
{
	const struct weir_window_spec *s = &w->spec;
	struct weir_stream *n;
	int err;

	if (keyed == NULL || keyed->kind != WR_NODE_KEY_BY)
		return wr_error(-EINVAL, "%s: input is not a stream returned by "
				"weir_key_by()", w->name);
	if (s->out_size == 0 || s->out_size > WEIR_RECORD_SIZE_MAX)
		return wr_error(-EINVAL, "%s: output record size %u is out of "
				"range [1, %u]", w->name, s->out_size,
				WEIR_RECORD_SIZE_MAX);
	err = wr_pipeline_add(p, keyed, WR_NODE_WINDOW, w->name, &n);
	if (err)
		return err;
	n->out_size = s->out_size;
	/* A record updates (and, allowed-late, re-emits) each of its
	 * windows: size / slide of them. */
	n->max_out = s->kind == WEIR_WINDOW_SLIDING
			     ? (uint32_t)(s->size_ms / s->slide_ms) : 1;
	n->arg = w;
	w->node = n;
	return 0;
}

int weir_window(struct weir_pipeline *p, struct weir_stream *keyed,
		const struct weir_window_spec *spec, struct weir_stream **out,
		struct weir_stream **late)
{
	struct weir_state_desc map = { .name = "windows", .kind = WEIR_STATE_MAP,
		.map_key_size = 8 };
	struct weir_process_spec ps = { .process = win_process,
		.on_timer = win_timer, .states = &map, .nstates = 1 };
	struct win *w;
	int err = spec ? check(spec) : wr_error(-EINVAL, "window spec is NULL");

	if (err)
		return err;
	w = aligned_alloc(WEIR_CACHE_LINE, sizeof(*w)); /* per-core lines */
	if (w == NULL)
		return -ENOMEM;
	memset(w, 0, sizeof(*w));
	w->spec = *spec;
	w->agg = *spec->agg;
	snprintf(w->name, sizeof(w->name), "%s", spec->name ? spec->name : "window");
	w->spec.name = w->name;
	if (spec->kind == WEIR_WINDOW_SESSION) {
		map.value_size = 8 + w->agg.acc_size;
		ps.name = w->name;
		ps.out_size = spec->out_size;
		ps.max_out = 2;
		ps.arg = w;
		err = weir_process(p, keyed, &ps, &w->node);
	} else {
		err = add_aligned(p, keyed, w);
	}
	if (err) {
		free(w);
		return err;
	}
	w->node->owned_arg = w;
	if (late != NULL && (err = add_side(p, w, late)) != 0)
		return err;
	*out = w->node;
	return 0;
}

uint64_t weir_window_late_records(const struct weir_stream *out)
{
	const struct win *w = out ? out->owned_arg : NULL;
	uint64_t n = 0;

	if (w == NULL || (out->kind != WR_NODE_WINDOW &&
			  (out->kind != WR_NODE_PROCESS ||
			   out->fn.process.process != win_process)))
		return 0;
	for (unsigned i = 0; i < WEIR_CORES_MAX; i++)
		n += w->late[i].n;
	return n;
}
