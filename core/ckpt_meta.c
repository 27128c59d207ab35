/*
 * ckpt_meta.c — what a core's checkpoint holds besides its arena pages,
 * as named sections of its meta file (docs/checkpoint-format.md):
 *
 *   "time"       per edge: watermark, fired_upto, last sent; per node: a
 *                source's largest event time and last activity
 *   "op.<id>"    per keyed operator: its states' and timers' headers
 *   "win.<id>"   per window operator: its windows' bounds, states and
 *                table headers (window_aligned.c)
 *   "src.<id>"   per source: the replay position its position() wrote
 *   "sink.<id>"  per sink that keeps a file: its committed length
 *
 * and putting them back.  Same core count: the pages are loaded at their
 * ids first and the operators rebuilt from their headers (O(metadata)).
 * Another core count: every old core's pages go into a scratch arena, its
 * operators are rebuilt there, and each entry and timer whose key group
 * this core now owns is copied over; watermarks restart from the lowest
 * any old core had, so no record that was on time becomes late.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ckpt.h"
#include "core/error.h"
#include "core/exec_internal.h"
#include "state/keyed.h"

struct time_head {
	uint32_t nedges, nnodes;
};
struct edge_img {
	int64_t wm, fired_upto, wm_sent;
};
struct node_img {
	int64_t max_ts, active_ms;
};
#define OP_STATES_MAX 32u /* process.c's STATES_MAX */
struct op_head {
	uint32_t nstates, has_timers;
};

/* ---- saving (at the barrier, no I/O: the writer copies the bytes) ---- */

static size_t time_bytes(const struct wr_exec *x)
{
	return sizeof(struct time_head) +
	       x->p->nedges * sizeof(struct edge_img) +
	       x->p->nnodes * sizeof(struct node_img);
}

static size_t op_bytes(unsigned nstates)
{
	return sizeof(struct op_head) +
	       nstates * sizeof(struct wr_kstate_image) +
	       sizeof(struct wr_timers_image);
}

static bool has_sink_len(const struct weir_stream *n)
{
	return n->kind == WR_NODE_SINK && n->sink_ops->barrier != NULL;
}

/* What the sections of one snapshot take in x->ck.meta at most (each
 * record: a 16-byte head, the bytes rounded up to 8). */
size_t wr_ckpt_meta_bytes_max(const struct wr_exec *x)
{
	size_t rec = 16 + 8, total = rec + time_bytes(x);

	for (unsigned i = 0; i < x->p->nnodes; i++) {
		const struct weir_stream *n = x->p->nodes[i];
		if (n->kind == WR_NODE_PROCESS)
			total += rec + op_bytes(wr_process_nstates_spec(n));
		else if (n->kind == WR_NODE_WINDOW)
			total += rec + wr_winop_image_bytes_max(x, n);
		else if (has_sink_len(n))
			total += rec + sizeof(uint64_t);
	}
	return total;
}

static int full(const char *what)
{
	return wr_error(-ENOSPC, "checkpoint: section '%s' does not fit the "
			"metadata buffer", what);
}

static int save_time(struct wr_exec *x)
{
	uint8_t *q = wr_ckpt_meta_reserve(x, "time", WR_CKPT_META_NO_ID,
					  time_bytes(x));

	if (q == NULL)
		return full("time");
	memcpy(q, &(struct time_head){ x->p->nedges, x->p->nnodes },
	       sizeof(struct time_head));
	q += sizeof(struct time_head);
	for (unsigned e = 0; e < x->p->nedges; e++, q += sizeof(struct edge_img))
		memcpy(q, &(struct edge_img){ x->edges[e].wm,
			x->edges[e].fired_upto, x->edges[e].wm_sent },
		       sizeof(struct edge_img));
	for (unsigned i = 0; i < x->p->nnodes; i++, q += sizeof(struct node_img))
		memcpy(q, &(struct node_img){ x->nodes[i].max_ts,
			x->nodes[i].active_ms }, sizeof(struct node_img));
	return 0;
}

static int save_op(struct wr_exec *x, const struct weir_stream *n)
{
	struct wr_timers *t = x->nodes[n->id].timers;
	unsigned ns = wr_process_nstates(x, n);
	uint8_t *q;

	if (ns > OP_STATES_MAX)
		return wr_error(-E2BIG, "checkpoint: '%s' has %u states",
				n->name, ns);
	q = wr_ckpt_meta_reserve(x, "op.", n->id, op_bytes(ns));
	if (q == NULL)
		return full(n->name);
	memcpy(q, &(struct op_head){ ns, t != NULL }, sizeof(struct op_head));
	q += sizeof(struct op_head);
	for (unsigned i = 0; i < ns; i++, q += sizeof(struct wr_kstate_image))
		wr_kstate_save(wr_process_state(x, n, i),
			       (struct wr_kstate_image *)q);
	if (t != NULL)
		wr_timers_save(t, (struct wr_timers_image *)q);
	else
		memset(q, 0, sizeof(struct wr_timers_image));
	return 0;
}

static int save_win(struct wr_exec *x, const struct weir_stream *n)
{
	uint8_t *q = wr_ckpt_meta_reserve(x, "win.", n->id,
					  wr_winop_image_bytes(x, n));

	return q == NULL ? full(n->name) : wr_winop_save(x, n, q);
}

static int save_sink(struct wr_exec *x, const struct weir_stream *n)
{
	uint64_t len;
	uint8_t *q;
	int err;

	if (*wr_exec_sink_state(x, n) == NULL)
		return 0;
	err = n->sink_ops->barrier(x, n, &len);
	if (err)
		return err;
	q = wr_ckpt_meta_reserve(x, "sink.", n->id, sizeof(len));
	if (q == NULL)
		return full(n->name);
	memcpy(q, &len, sizeof(len));
	return 0;
}

int wr_ckpt_meta_save(struct wr_exec *x)
{
	int err = save_time(x);

	for (unsigned i = 0; err == 0 && i < x->p->nnodes; i++) {
		const struct weir_stream *n = x->p->nodes[i];
		if (n->kind == WR_NODE_PROCESS)
			err = save_op(x, n);
		else if (n->kind == WR_NODE_WINDOW)
			err = save_win(x, n);
		else if (has_sink_len(n))
			err = save_sink(x, n);
	}
	return err;
}

int wr_ckpt_meta_add_sources(struct wr_exec *x, struct wr_ckpt_writer *w)
{
	for (unsigned i = 0; i < x->nsources; i++) {
		char name[WR_CKPT_SECTION_NAME_MAX + 1];
		if (x->ck.pos_len[i] == UINT32_MAX)
			continue; /* not replayable */
		snprintf(name, sizeof(name), "src.%u", x->sources[i]->id);
		int err = wr_ckpt_writer_add_section(w, name,
			x->ck.pos + (size_t)i * WEIR_SOURCE_POS_MAX,
			x->ck.pos_len[i]);
		if (err)
			return err;
	}
	return 0;
}

/* ---- restoring ---- */

static const void *section(struct wr_exec *x, uint32_t core, const char *name,
			   size_t want, size_t *len)
{
	const void *b;
	size_t l;

	if (wr_ckpt_section(x->p->ck->restore, core, name, &b, &l) != 0 ||
	    (want && l < want))
		return NULL;
	if (len)
		*len = l;
	return b;
}

static int bad_section(const char *name, uint32_t core)
{
	return wr_error(-EINVAL, "checkpoint: section '%s' of core %u is "
			"missing or does not match the job", name, core);
}

/* The images of op n saved by old core `core`. */
static int op_images(struct wr_exec *x, const struct weir_stream *n,
		     uint32_t core, const struct wr_kstate_image **st,
		     const struct wr_timers_image **tm)
{
	char name[WR_CKPT_SECTION_NAME_MAX + 1];
	unsigned ns = wr_process_nstates_spec(n);
	size_t len;
	const uint8_t *b;
	struct op_head h;

	snprintf(name, sizeof(name), "op.%u", n->id);
	b = section(x, core, name, sizeof(h), &len);
	if (b != NULL)
		memcpy(&h, b, sizeof(h));
	if (b == NULL || h.nstates != ns ||
	    (h.has_timers != 0) != (n->fn.process.on_timer != NULL) ||
	    len < sizeof(h) + ns * sizeof(**st) + sizeof(**tm))
		return bad_section(name, core);
	*st = (const void *)(b + sizeof(h));
	*tm = h.has_timers ? (const void *)(b + sizeof(h) +
					    ns * sizeof(**st)) : NULL;
	return 0;
}

/* Same core count: operator n from its saved headers (process.c calls
 * this instead of creating its states). */
int wr_ckpt_load_op(struct wr_exec *x, const struct weir_stream *n)
{
	const struct wr_kstate_image *st = NULL;
	const struct wr_timers_image *tm = NULL;
	int err = op_images(x, n, x->id, &st, &tm);

	if (err == 0 && tm != NULL)
		err = wr_timers_load(x->arena, n->key_size, tm,
				     &x->nodes[n->id].timers);
	if (err == 0)
		err = wr_process_load(x, n, st);
	return err;
}

/* The "win.<id>" section of old core `core`. */
static int win_image(struct wr_exec *x, const struct weir_stream *n,
		     uint32_t core, const void **b, size_t *len)
{
	char name[WR_CKPT_SECTION_NAME_MAX + 1];

	snprintf(name, sizeof(name), "win.%u", n->id);
	*b = section(x, core, name, 0, len);
	return *b == NULL ? bad_section(name, core) : 0;
}

/* Same core count: window operator n over its restored pages. */
int wr_ckpt_load_win(struct wr_exec *x, const struct weir_stream *n)
{
	const void *b;
	size_t len = 0;
	int err = win_image(x, n, x->id, &b, &len);

	return err ? err : wr_winop_load(x, n, b, len);
}

struct keep_arg {
	uint32_t mask, shift;
	unsigned n, me;
};

static bool keep_mine(uint64_t hash, void *arg)
{
	const struct keep_arg *k = arg;
	uint32_t kg = (uint32_t)(hash & k->mask);

	return (unsigned)(((uint64_t)kg * k->n) >> k->shift) == k->me;
}

/* Rescaling: copy what this core owns of op n from old core `core`, whose
 * pages are in the scratch arena a. */
static int adopt_op(struct wr_exec *x, const struct weir_stream *n,
		    uint32_t core, struct wr_arena *a, struct keep_arg *k)
{
	const struct wr_kstate_image *st = NULL;
	const struct wr_timers_image *tm = NULL;
	struct wr_timers *old_t = NULL;
	int err = op_images(x, n, core, &st, &tm);

	if (err == 0 && tm != NULL)
		err = wr_timers_load(a, n->key_size, tm, &old_t);
	if (err == 0 && old_t != NULL)
		err = wr_timers_copy(x->nodes[n->id].timers, old_t, keep_mine, k);
	wr_timers_destroy(old_t);
	for (unsigned i = 0; err == 0 && i < wr_process_nstates(x, n); i++) {
		struct wr_kstate *old_s;
		err = wr_kstate_load(a, &n->fn.process.states[i], n->key_size,
				     NULL, &st[i], &old_s);
		if (err)
			break;
		err = wr_kstate_copy_keys(wr_process_state(x, n, i), old_s,
					  keep_mine, k);
		wr_kstate_destroy(old_s);
	}
	return err;
}

static int adopt_core(struct wr_exec *x, uint32_t core)
{
	struct wr_arena_config ac = { .cap_bytes = x->p->cfg.state_bytes_max };
	struct keep_arg k = { x->p->cfg.key_groups - 1, x->kg_shift, x->n,
			      x->id };
	struct wr_arena *a;
	int err = wr_arena_create(&ac, &a);

	if (err)
		return err;
	/* Its replay helped by a spare CPU, if there is one (exec_setup.c). */
	err = wr_ckpt_load_core_with(x->p->ck->restore, core, a,
				     weir_runtime_spare_cpu(x->p->rt, x->id));
	for (unsigned i = 0; err == 0 && i < x->p->nnodes; i++) {
		const struct weir_stream *n = x->p->nodes[i];
		const void *b;
		size_t len = 0;
		if (n->kind == WR_NODE_PROCESS)
			err = adopt_op(x, n, core, a, &k);
		else if (n->kind == WR_NODE_WINDOW &&
			 (err = win_image(x, n, core, &b, &len)) == 0)
			err = wr_winop_adopt(x, n, a, b, len, keep_mine, &k);
	}
	wr_arena_destroy(a);
	return err;
}

/* Watermarks and source times: own (same count) or the lowest of all. */
static int restore_time(struct wr_exec *x, uint32_t from, uint32_t to)
{
	for (uint32_t c = from; c < to; c++) {
		size_t len;
		const uint8_t *b = section(x, c, "time", sizeof(struct time_head),
					   &len);
		struct time_head h;
		if (b != NULL)
			memcpy(&h, b, sizeof(h));
		if (b == NULL || h.nedges != x->p->nedges ||
		    h.nnodes != x->p->nnodes ||
		    len < sizeof(h) + h.nedges * sizeof(struct edge_img) +
				  h.nnodes * sizeof(struct node_img))
			return bad_section("time", c);
		const struct edge_img *e = (const void *)(b + sizeof(h));
		const struct node_img *nd = (const void *)(e + h.nedges);
		for (unsigned i = 0; i < h.nedges; i++)
			wr_time_restore_edge(x, i, e[i].wm, e[i].fired_upto,
					     c == from);
		for (unsigned i = 0; i < h.nnodes; i++)
			wr_time_restore_node(x, i, nd[i].max_ts, nd[i].active_ms,
					     c == from);
	}
	return 0;
}

int wr_ckpt_meta_restore(struct wr_exec *x)
{
	const struct wr_ckpt_manifest *m = wr_ckpt_info(x->p->ck->restore);
	int err = 0;

	if (m->cores == x->n)
		return restore_time(x, x->id, x->id + 1);
	for (uint32_t c = 0; err == 0 && c < m->cores; c++)
		err = adopt_core(x, c);
	return err ? err : restore_time(x, 0, m->cores);
}

int wr_ckpt_sources_restore(struct wr_exec *x)
{
	const struct wr_ckpt_manifest *m = wr_ckpt_info(x->p->ck->restore);
	struct weir_source_pos pos[WR_CKPT_CORES_MAX];

	for (unsigned i = 0; i < x->nsources; i++) {
		const struct weir_stream *s = x->sources[i];
		char name[WR_CKPT_SECTION_NAME_MAX + 1];
		if (s->fn.source.restore == NULL)
			continue;
		snprintf(name, sizeof(name), "src.%u", s->id);
		for (uint32_t c = 0; c < m->cores; c++) {
			pos[c].bytes = section(x, c, name, 0, &pos[c].len);
			if (pos[c].bytes == NULL)
				return bad_section(name, c);
		}
		x->ctx.node = s;
		int err = s->fn.source.restore(&x->ctx, pos, m->cores, s->arg);
		x->ctx.node = NULL;
		if (err)
			return err;
	}
	return 0;
}

int wr_exec_restored_sink_len(struct wr_exec *x, const struct weir_stream *n,
			      uint64_t *len)
{
	char name[WR_CKPT_SECTION_NAME_MAX + 1];
	const void *b;

	if (x->p->ck == NULL || x->p->ck->restore == NULL)
		return 0;
	snprintf(name, sizeof(name), "sink.%u", n->id);
	b = section(x, 0, name, sizeof(*len), NULL);
	if (b == NULL)
		return bad_section(name, 0);
	memcpy(len, b, sizeof(*len));
	return 1;
}
