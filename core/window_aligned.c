/*
 * window_aligned.c — tumbling and sliding windows, window-major
 * (WR_NODE_WINDOW; core/window_internal.h says why there are two layouts).
 *
 * LAYOUT (one operator on one core)
 *   live[0..nlive): the windows with state on this core, sorted by start;
 *   each owns an arena table, key -> [flag u64, only with allowed lateness]
 *   accumulator.  A record is one upsert into the table of each window it
 *   belongs to (one for tumbling); the ring batch's slots were prefetched
 *   (wr_winop_prefetch) before the first of its records is applied.  The
 *   tables start small in the operator's slab (64 slots, 4 KiB for flow
 *   keys: a window of few keys does not hold a page), then grow into page
 *   runs, and start at the size of the last window dropped, so a steady
 *   stream of similar windows does not pay for growth.  live[] doubles when
 *   full (a window opening is rare; the checkpoint metadata buffer grows
 *   with it, outside the pause).
 *
 * LIFECYCLE of a window
 *
 *     (none) ── first record: win_open() ─────────────────────> OPEN
 *     OPEN ── watermark >= end - 1, not aligning: fire() ─────> FIRING
 *     FIRING ── every entry emitted (budget per tick): scan() ─> DONE
 *     DONE ── watermark >= end - 1 + lateness: win_drop() ────> (none)
 *
 *   A window's rows go out over several ticks (at most `budget` rows per
 *   tick, set by the out buffers' room), so a large window never stalls the
 *   loop: records keep flowing between the parts of a firing.
 *
 * INVARIANTS (wr_winop_is_valid)
 *   1. live[] is sorted by start, starts are distinct, end = start + size.
 *   2. Only an OPEN window is written by records without lateness: with
 *      lateness 0 a record for a window past end - 1 is late; with lateness
 *      L > 0 every entry carries a flag "its row was emitted", and any
 *      update of a flagged entry, or of any entry of a window past OPEN,
 *      emits the updated row at once (Flink's late firing), so the last row
 *      of a window holds every on-time and allowed-late record.
 *   3. A FIRING window's entries move only under a record for it (only
 *      possible with lateness > 0; housekeeping's growth steps skip it),
 *      and then its scan restarts: the emitted flags keep it from sending
 *      a row twice, and the record's own row goes out at once.
 *   4. No window is FIRING when a snapshot is taken: a core sends no
 *      barrier downstream of a firing window (core/ckpt.c), and starts no
 *      firing while aligning.  A checkpoint thus needs only each window's
 *      bounds, state and table header; entries stay in arena pages.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "core/error.h"
#include "core/exec_internal.h"
#include "core/window_internal.h"
#include "state/slab.h"
#include "state/table.h"
#include "weir/metrics.h"

enum { WIN_OPEN = 0, WIN_FIRING = 1, WIN_DONE = 2 };

struct wr_win {
	int64_t start, end;
	struct wr_table *t;
	struct wr_table_iter it; /* FIRING: the scan's cursor */
	uint32_t state;
};

struct wr_winop {
	struct wr_win_spec *ws;
	struct wr_win *live;
	unsigned nlive, cap;
	unsigned hot;          /* the window the last record went to */
	unsigned firing;       /* windows FIRING */
	uint32_t acc_off;      /* 8 with the emitted flag, else 0 */
	uint32_t value_size;
	uint64_t size_hint;    /* keys of the last window dropped */
	int64_t lateness, size, slide;
	int64_t pane_lo;       /* the last [lo, lo + slide) a record fell in */
	struct wr_slab slab;   /* the small tables */
	/* The last dropped window's table, zeroed a step at a time by
	 * housekeeping and reused by the next window: no allocation, no
	 * fresh page (a 2 MiB huge-page fault zeroes for ~200 us here), no
	 * growth for a stream of similar windows. */
	struct wr_table *spare;
	uint64_t spare_pos;
	bool spare_ready;
};

static struct wr_winop *op_of(struct wr_exec *x, const struct weir_stream *n)
{
	return x->nodes[n->id].win;
}

static int cap_error(struct wr_exec *x, const struct wr_winop *op, int err)
{
	if (err != -ENOMEM)
		return err;
	return wr_error(err, "window '%s' reached the memory cap of %zu bytes "
			"per core (state_bytes_max)", op->ws->name,
			x->arena->cap_bytes);
}

/* ---- the live windows ---- */

/* Index of the first window with start >= s. */
static unsigned lower_bound(const struct wr_winop *op, int64_t s)
{
	unsigned lo = 0, hi = op->nlive;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (op->live[mid].start < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint64_t initial_capacity(const struct wr_winop *op)
{
	/* The last window's key count at load <= 3/4: a steady stream of
	 * windows of similar size never pays for growth. */
	return op->size_hint + op->size_hint / 3 + 1;
}

static void spare_drop(struct wr_winop *op)
{
	wr_table_destroy(op->spare); /* a pending snapshot keeps its pages */
	op->spare = NULL;
	op->spare_ready = false;
	op->spare_pos = 0;
}

/* live[] doubled (the checkpoint's metadata buffer with it). */
static int grow(struct wr_exec *x, struct wr_winop *op)
{
	unsigned cap = op->cap * 2;
	struct wr_win *l;

	if (cap > WR_WIN_OPEN_MAX)
		return wr_error(-ENOSPC, "window '%s': more than %u windows open "
				"at once on core %u (size / slide, plus the "
				"watermark's lag behind the records, over the "
				"slide)", op->ws->name, op->cap, x->id);
	l = weir_worker_alloc_local(x->w, cap * sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	memcpy(l, op->live, op->nlive * sizeof(*l));
	weir_worker_free_local(x->w, op->live);
	op->live = l;
	op->cap = cap;
	return wr_ckpt_meta_fit(x);
}

/*
 * The spare serves a window of `want` slots.  Housekeeping clears it a few
 * slots every 64th tick under load, so a loop that is never idle (a
 * capture read at full speed: a window every ~50 ms) opens its next window
 * before the spare is clear; it is finished here then: the same zeroing a
 * new table on reused pages costs, without taking more pages while the
 * spare holds its own (measured: docs/architecture.md, "Windows").  Not
 * while a snapshot is pending: zeroing would copy the pages it holds.
 */
static bool spare_fits(struct wr_exec *x, struct wr_winop *op, uint64_t want)
{
	if (op->spare == NULL || wr_table_capacity(op->spare) < want / 2)
		return false;
	if (!op->spare_ready && !x->arena->snap_pending)
		op->spare_ready = wr_table_clear_step(op->spare, &op->spare_pos,
					wr_table_capacity(op->spare));
	return op->spare_ready;
}

static int win_open(struct wr_exec *x, struct wr_winop *op, unsigned at,
		    int64_t start, struct wr_win **out)
{
	struct wr_table_config tc = { .key_size = op->ws->node->key_size,
		.value_size = op->value_size,
		.initial_capacity = initial_capacity(op), .slab = &op->slab };
	struct wr_table *t = NULL;
	int err = op->nlive == op->cap ? grow(x, op) : 0;

	if (err == 0 && spare_fits(x, op, tc.initial_capacity)) {
		t = op->spare;
		op->spare = NULL;
		op->spare_ready = false;
	} else if (err == 0) {
		err = wr_table_create(x->arena, &tc, &t);
		if (err == -ENOMEM && op->spare != NULL) { /* its pages first */
			spare_drop(op);
			err = wr_table_create(x->arena, &tc, &t);
		}
	}
	if (err)
		return cap_error(x, op, err);
	memmove(&op->live[at + 1], &op->live[at],
		(op->nlive - at) * sizeof(op->live[0]));
	op->live[at] = (struct wr_win){ start, start + op->size, t, { 0 },
					WIN_OPEN };
	op->nlive++;
	*out = &op->live[at];
	return 0;
}

static void win_drop(struct wr_winop *op, unsigned i)
{
	struct wr_win *w = &op->live[i];

	op->size_hint = wr_table_count(w->t);
	if (w->state == WIN_FIRING)
		op->firing--;
	if (op->spare != NULL)
		spare_drop(op);
	op->spare = w->t; /* cleared by wr_winop_step, then reused */
	op->spare_pos = 0;
	memmove(w, w + 1, (op->nlive - i - 1) * sizeof(*w));
	op->nlive--;
	op->hot = 0;
}

static int win_find(struct wr_exec *x, struct wr_winop *op, int64_t start,
		    struct wr_win **out)
{
	unsigned at;

	if (WEIR_LIKELY(op->hot < op->nlive &&
			op->live[op->hot].start == start)) {
		*out = &op->live[op->hot];
		return 0;
	}
	at = lower_bound(op, start);
	op->hot = at;
	if (at < op->nlive && op->live[at].start == start) {
		*out = &op->live[at];
		return 0;
	}
	return win_open(x, op, at, start, out);
}

/* ---- emitting rows ---- */

static int emit_row(struct wr_exec *x, struct wr_winop *op,
		    const struct wr_win *w, const void *key, const void *value)
{
	const struct wr_win_spec *ws = op->ws;
	uint8_t out[WEIR_RECORD_SIZE_MAX];
	struct weir_ctx saved = x->ctx;
	uint64_t hash = wr_table_value_hash(w->t, value);
	int err;

	ws->spec.output(key, w->start, w->end,
			(const uint8_t *)value + op->acc_off, out, ws->spec.arg);
	x->ctx.key = key;
	x->ctx.hash = hash;
	x->ctx.key_group = (uint32_t)(hash & (x->p->cfg.key_groups - 1));
	err = wr_emit_down(x, ws->node, out, w->end - 1);
	x->ctx = saved;
	return err;
}

/* Emits up to *budget rows of FIRING window w; DONE once none is left.
 * With the flag, entries already emitted are skipped (at most 16 skips
 * per row of budget: bounded work). */
static int scan(struct wr_exec *x, struct wr_winop *op, struct wr_win *w,
		uint32_t *budget)
{
	uint64_t visits = (uint64_t)*budget * 16;
	const void *key;
	void *v;

	while (*budget > 0 && visits-- > 0) {
		if (!wr_table_next(w->t, &w->it, &key, &v)) {
			w->state = WIN_DONE;
			op->firing--;
			return 0;
		}
		if (op->acc_off) {
			uint64_t *flag = v;
			if (*flag)
				continue;
			int err = wr_arena_touch_range(x->arena, flag,
						       sizeof(*flag));
			if (err)
				return cap_error(x, op, err);
			*flag = 1;
		}
		int err = emit_row(x, op, w, key, v);
		if (err)
			return err;
		(*budget)--;
	}
	return 0;
}

/* The table's layout: what a move of its entries (a resize starting, a
 * migration step) changes. */
static uint64_t layout_of(const struct wr_table *t)
{
	struct wr_table_stats s;

	wr_table_get_stats(t, &s);
	return s.slots_moved ^ (s.capacity << 40) ^ ((uint64_t)s.phase << 62);
}

/* Upsert of the current key into w.  A FIRING window's scan restarts from
 * its first slot if the upsert moved entries: only with lateness > 0,
 * whose emitted flags make the scan skip what it already sent, and the
 * updated or new entry itself is emitted at once by add(), so the scan
 * may pass it.  (Finishing the firing at once instead emitted a window's
 * rows past the out buffers' room: EOVERFLOW.) */
static int upsert(struct wr_winop *op, struct wr_win *w, const struct
		  weir_ctx *c, uint8_t **v, bool *created)
{
	uint64_t before = w->state == WIN_FIRING ? layout_of(w->t) : 0;
	int err = wr_table_upsert(w->t, c->key, c->hash, (void **)v, created);

	if (err == -ENOMEM && op->spare != NULL) { /* the spare's pages first */
		spare_drop(op);
		err = wr_table_upsert(w->t, c->key, c->hash, (void **)v,
				      created);
	}
	if (err == 0 && w->state == WIN_FIRING && layout_of(w->t) != before)
		w->it.pos = 0;
	return err;
}

/* ---- records ---- */

static int late(struct wr_exec *x, struct wr_winop *op, const void *rec,
		int64_t ts)
{
	op->ws->late[x->id].n++;
	if (op->ws->side == NULL)
		return 0;
	return wr_emit_down(x, op->ws->side, rec, ts);
}

/* rec into window `start` of the current key: a record (agg->add), or a
 * combiner's partial accumulator (agg->merge). */
static int add(struct wr_exec *x, struct wr_winop *op, int64_t start,
	       const void *rec, bool partial)
{
	const struct weir_aggregate_ops *agg = &op->ws->agg;
	void *arg = op->ws->spec.arg;
	struct wr_win *w = NULL;
	uint8_t *v;
	bool created;
	int err = win_find(x, op, start, &w);

	if (err == 0)
		err = upsert(op, w, &x->ctx, &v, &created);
	if (err)
		return cap_error(x, op, err);
	if (created)
		agg->create(v + op->acc_off, arg);
	if (partial)
		agg->merge(v + op->acc_off, rec, arg);
	else
		agg->add(v + op->acc_off, rec, arg);
	if (op->acc_off == 0 || (w->state == WIN_OPEN && *(uint64_t *)v == 0))
		return 0;
	*(uint64_t *)v = 1; /* the upsert touched its page */
	return emit_row(x, op, w, x->ctx.key, v);
}

/* The start of the latest window holding ts (one division per pane, not
 * per record: records come in runs of one pane). */
static inline int64_t last_start(struct wr_winop *op, int64_t ts)
{
	return wr_pane_start(&op->pane_lo, op->slide, ts);
}

/* Into every window of ts still open to it: 1 if any, 0 if late. */
static int place(struct wr_exec *x, struct wr_winop *op, const void *rec,
		 int64_t ts, bool partial)
{
	int64_t wm = x->edges[op->ws->node->stage_edge].wm;
	bool placed = false;

	for (int64_t start = last_start(op, ts); start > ts - op->size;
	     start -= op->slide) {
		if (start + op->size - 1 + op->lateness <= wm)
			break; /* this window and every earlier one are gone */
		int err = add(x, op, start, rec, partial);
		if (err)
			return err;
		placed = true;
	}
	return placed;
}

int wr_winop_record(struct wr_exec *x, const struct weir_stream *n,
		    const void *rec, int64_t ts)
{
	struct wr_winop *op = op_of(x, n);
	int rc;

	if (WEIR_UNLIKELY(ts == WEIR_TS_MIN))
		return wr_error(-EINVAL, "window '%s': record without an event "
				"timestamp", op->ws->name);
	if (x->p->metrics != NULL)
		weir_metrics_add_local(x->p->metrics, x->id,
				       WEIR_METRIC_RECORDS_IN, 1);
	rc = place(x, op, rec, ts, false);
	return rc == 0 ? late(x, op, rec, ts) : rc < 0 ? rc : 0;
}

int wr_winop_merge(struct wr_exec *x, const struct weir_stream *n,
		   const void *acc, uint64_t records, int64_t pane)
{
	struct wr_winop *op = op_of(x, n);
	int rc = place(x, op, acc, pane, true);

	if (x->p->metrics != NULL)
		weir_metrics_add_local(x->p->metrics, x->id,
				       WEIR_METRIC_RECORDS_IN, records);
	if (rc == 0) /* no late stream with a combiner: counted only */
		op->ws->late[x->id].n += records;
	return rc < 0 ? rc : 0;
}

void wr_winop_prefetch(struct wr_exec *x, const struct weir_stream *n,
		       int64_t ts, uint64_t hash)
{
	struct wr_winop *op = op_of(x, n);
	int64_t start = last_start(op, ts);

	if (op->hot < op->nlive && op->live[op->hot].start == start)
		wr_table_prefetch(op->live[op->hot].t, hash);
}

/* ---- firing ---- */

int wr_winop_fire(struct wr_exec *x, const struct weir_stream *n, int64_t wm,
		  uint32_t budget, bool start_new)
{
	struct wr_winop *op = op_of(x, n);
	unsigned i = 0;

	while (i < op->nlive) {
		struct wr_win *w = &op->live[i];
		if (w->end - 1 > wm)
			break; /* sorted: no later window is due */
		if (w->state == WIN_OPEN) {
			if (!start_new || budget == 0)
				break;
			w->state = WIN_FIRING;
			w->it.pos = 0;
			op->firing++;
		}
		if (w->state == WIN_FIRING) {
			int err = scan(x, op, w, &budget);
			if (err)
				return err;
			if (w->state == WIN_FIRING)
				break; /* budget spent */
		}
		if (w->end - 1 + op->lateness <= wm)
			win_drop(op, i);
		else
			i++;
	}
	/* Behind while a due window has rows left to emit. */
	for (; i < op->nlive && op->live[i].end - 1 <= wm; i++)
		if (op->live[i].state != WIN_DONE)
			return 1;
	return 0;
}

bool wr_winop_firing(const struct wr_exec *x, const struct weir_stream *n)
{
	const struct wr_winop *op = x->nodes[n->id].win;

	return op != NULL && op->firing > 0;
}

/* Table growth of the windows not FIRING (invariant 3). */
uint32_t wr_winop_step(struct wr_exec *x, const struct weir_stream *n,
		       uint32_t budget)
{
	struct wr_winop *op = op_of(x, n);
	uint32_t done = 0;

	for (unsigned i = 0; i < op->nlive && done < budget; i++)
		if (op->live[i].state != WIN_FIRING)
			done += wr_table_step(op->live[i].t, budget - done);
	/* Zeroing the spare would copy-on-write pages a pending snapshot may
	 * hold (a window dropped after it): after the snapshot. */
	if (op->spare != NULL && !op->spare_ready && !x->arena->snap_pending) {
		op->spare_ready = wr_table_clear_step(op->spare, &op->spare_pos,
						      (uint64_t)budget * 4);
		done += budget;
	}
	return done;
}

uint64_t wr_winop_keys(const struct wr_exec *x, const struct weir_stream *n)
{
	const struct wr_winop *op = x->nodes[n->id].win;
	uint64_t keys = 0;

	for (unsigned i = 0; op != NULL && i < op->nlive; i++)
		keys += wr_table_count(op->live[i].t);
	return keys;
}

bool wr_winop_is_valid(const struct wr_exec *x, const struct weir_stream *n)
{
	const struct wr_winop *op = x->nodes[n->id].win;
	unsigned firing = 0;

	for (unsigned i = 0; i < op->nlive; i++) {
		const struct wr_win *w = &op->live[i];
		if ((i > 0 && w[-1].start >= w->start) ||
		    w->end != w->start + op->size || w->state > WIN_DONE ||
		    wr_floor_div(w->start, op->slide) * op->slide != w->start ||
		    !wr_table_is_valid(w->t))
			return false;
		firing += w->state == WIN_FIRING;
	}
	return firing == op->firing && op->nlive <= op->cap;
}

/* ---- per core ---- */

int wr_winop_open(struct wr_exec *x, const struct weir_stream *n)
{
	struct wr_win_spec *ws = n->owned_arg;
	struct wr_winop *op = weir_worker_alloc_local(x->w, sizeof(*op));

	if (op == NULL)
		return -ENOMEM;
	memset(op, 0, sizeof(*op));
	op->ws = ws;
	op->size = ws->spec.size_ms;
	op->slide = ws->spec.kind == WEIR_WINDOW_SLIDING ? ws->spec.slide_ms
							 : ws->spec.size_ms;
	op->lateness = ws->spec.allowed_lateness_ms;
	op->pane_lo = WEIR_TS_MIN;
	op->acc_off = op->lateness > 0 ? 8 : 0;
	op->value_size = op->acc_off + ws->agg.acc_size;
	op->cap = WR_WIN_OPEN_MIN;
	op->live = weir_worker_alloc_local(x->w, op->cap * sizeof(*op->live));
	wr_slab_init(&op->slab, x->arena);
	x->nodes[n->id].win = op;
	return op->live ? 0 : -ENOMEM;
}

void wr_winop_close(struct wr_exec *x, const struct weir_stream *n)
{
	struct wr_winop *op = x->nodes[n->id].win;

	if (op == NULL)
		return;
	/* The expensive validator, once per run (O(table capacity)): every
	 * test that runs a window checks the operator's invariants at its end. */
	assert(wr_winop_is_valid(x, n));
	for (unsigned i = 0; i < op->nlive; i++)
		wr_table_destroy(op->live[i].t);
	wr_table_destroy(op->spare);
	weir_worker_free_local(x->w, op->live);
	weir_worker_free_local(x->w, op);
	x->nodes[n->id].win = NULL;
}

/* ---- checkpoints ---- */

struct win_head {
	uint32_t nlive, acc_off;
	uint64_t size_hint;
	int64_t size, slide, lateness;
	struct wr_slab_image slab;
	uint32_t has_spare, pad; /* then, after the windows, its image */
};
struct win_img {
	int64_t start;
	uint32_t state, pad;
	struct wr_table_image t;
};

/* What a snapshot of n may take before live[] grows again. */
size_t wr_winop_image_bytes_max(const struct wr_exec *x,
				const struct weir_stream *n)
{
	const struct wr_winop *op = x->nodes[n->id].win;

	return sizeof(struct win_head) + sizeof(struct wr_table_image) +
	       (op ? op->cap : WR_WIN_OPEN_MIN) * sizeof(struct win_img);
}

size_t wr_winop_image_bytes(const struct wr_exec *x,
			    const struct weir_stream *n)
{
	const struct wr_winop *op = x->nodes[n->id].win;

	return sizeof(struct win_head) + op->nlive * sizeof(struct win_img) +
	       (op->spare ? sizeof(struct wr_table_image) : 0);
}

/* At the barrier, into wr_winop_image_bytes() bytes: O(windows). */
int wr_winop_save(const struct wr_exec *x, const struct weir_stream *n,
		  void *buf)
{
	const struct wr_winop *op = x->nodes[n->id].win;
	struct win_head h = { op->nlive, op->acc_off, op->size_hint, op->size,
			      op->slide, op->lateness, { 0 }, op->spare != NULL,
			      0 };
	uint8_t *q = buf;

	if (op->firing)
		return wr_error(-EBUSY, "window '%s': snapshot while a window "
				"fires", op->ws->name);
	wr_slab_save(&op->slab, &h.slab);
	memcpy(q, &h, sizeof(h));
	q += sizeof(h);
	for (unsigned i = 0; i < op->nlive; i++, q += sizeof(struct win_img)) {
		struct win_img w = { op->live[i].start, op->live[i].state, 0,
				     { 0 } };
		wr_table_save(op->live[i].t, &w.t);
		memcpy(q, &w, sizeof(w));
	}
	/* The spare's pages are in the snapshot: restored, they need an owner
	 * (to be zeroed again), or they would leak. */
	if (op->spare != NULL) {
		struct wr_table_image t;
		wr_table_save(op->spare, &t);
		memcpy(q, &t, sizeof(t));
	}
	return 0;
}

static int bad_image(const struct wr_winop *op)
{
	return wr_error(-EINVAL, "checkpoint: window '%s' does not match the "
			"job", op->ws->name);
}

/* The image's head, checked against this job; *w its windows. */
static int image(const struct wr_winop *op, const void *img, size_t len,
		 struct win_head *h, const uint8_t **w)
{
	if (len < sizeof(*h))
		return bad_image(op);
	memcpy(h, img, sizeof(*h));
	if (h->nlive > WR_WIN_OPEN_MAX || h->acc_off != op->acc_off ||
	    h->size != op->size || h->slide != op->slide ||
	    h->lateness != op->lateness || h->has_spare > 1 ||
	    len < sizeof(*h) + h->nlive * sizeof(struct win_img) +
		  (h->has_spare ? sizeof(struct wr_table_image) : 0))
		return bad_image(op);
	*w = (const uint8_t *)img + sizeof(*h);
	return 0;
}

/* Same core count: the windows over the arena's restored pages. */
int wr_winop_load(struct wr_exec *x, const struct weir_stream *n,
		  const void *img, size_t len)
{
	struct wr_winop *op = op_of(x, n);
	const uint8_t *q = NULL;
	struct win_head h = { 0 };
	int err = image(op, img, len, &h, &q);

	if (err == 0 && wr_slab_load(&op->slab, x->arena, &h.slab) != 0)
		err = bad_image(op);
	while (err == 0 && op->cap < h.nlive)
		err = grow(x, op);
	op->size_hint = h.size_hint;
	for (uint32_t i = 0; err == 0 && i < h.nlive;
	     i++, q += sizeof(struct win_img)) {
		struct win_img w;
		memcpy(&w, q, sizeof(w));
		if (w.state == WIN_FIRING || w.state > WIN_DONE ||
		    (op->nlive && op->live[op->nlive - 1].start >= w.start))
			return bad_image(op);
		struct wr_win *d = &op->live[op->nlive];
		*d = (struct wr_win){ w.start, w.start + op->size, NULL,
				      { 0 }, w.state };
		err = wr_table_load(x->arena, &op->slab, &w.t, &d->t);
		if (err == 0)
			op->nlive++;
	}
	if (err == 0 && h.has_spare) {
		struct wr_table_image t;
		memcpy(&t, q, sizeof(t));
		err = wr_table_load(x->arena, &op->slab, &t, &op->spare);
	}
	return err;
}

/* Rescaling: the entries this core owns of one old core's windows, whose
 * pages are in arena `old`.  A window is OPEN here if it was OPEN on any
 * old core (the restored watermark is the lowest of theirs); entries keep
 * their emitted flag. */
static int adopt_entries(struct wr_exec *x, struct wr_winop *op,
			 struct wr_table *src, struct wr_win *dst,
			 bool (*keep)(uint64_t, void *), void *arg)
{
	struct wr_table_iter it = { 0 };
	const void *k;
	void *v, *nv;
	bool created;

	while (wr_table_next(src, &it, &k, &v)) {
		uint64_t hash = wr_table_hash(k, op->ws->node->key_size);
		if (!keep(hash, arg))
			continue;
		int err = wr_table_upsert(dst->t, k, hash, &nv, &created);
		if (err)
			return cap_error(x, op, err);
		memcpy(nv, v, op->value_size);
	}
	return 0;
}

int wr_winop_adopt(struct wr_exec *x, const struct weir_stream *n,
		   struct wr_arena *old, const void *img, size_t len,
		   bool (*keep)(uint64_t, void *), void *arg)
{
	struct wr_winop *op = op_of(x, n);
	const uint8_t *q = NULL;
	struct win_head h = { 0 };
	struct wr_slab old_slab;
	int err = image(op, img, len, &h, &q);

	if (err == 0 && wr_slab_load(&old_slab, old, &h.slab) != 0)
		err = bad_image(op);
	if (h.size_hint > op->size_hint)
		op->size_hint = h.size_hint;
	for (uint32_t i = 0; err == 0 && i < h.nlive;
	     i++, q += sizeof(struct win_img)) {
		struct win_img w;
		struct wr_table *src;
		struct wr_win *dst = NULL;
		memcpy(&w, q, sizeof(w));
		if (w.state == WIN_FIRING || w.state > WIN_DONE ||
		    wr_floor_div(w.start, op->slide) * op->slide != w.start)
			return bad_image(op);
		unsigned before = op->nlive;
		err = win_find(x, op, w.start, &dst);
		if (err == 0 && op->nlive > before)
			dst->state = w.state;
		else if (err == 0 && w.state == WIN_OPEN)
			dst->state = WIN_OPEN;
		if (err == 0)
			err = wr_table_load(old, &old_slab, &w.t, &src);
		if (err)
			break;
		err = adopt_entries(x, op, src, dst, keep, arg);
		wr_table_destroy(src);
	}
	return err;
}
