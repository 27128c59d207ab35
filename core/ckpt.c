/*
 * ckpt.c — the checkpoint protocol in the executor: the per-core phases
 * (cut, align, snapshot, flush, report) and the coordinator on core 0
 * (trigger, commit or abort, timeout, retention through wr_ckpt_commit).
 * The protocol and its state machine are described in core/ckpt.h.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ckpt.h"
#include "core/error.h"
#include "core/exec_internal.h"
#include "snapshot/uring.h"
#include "weir/metrics.h"

#define CK_URING_DEPTH 64u
/* A loop tick checksums at most one page of 64 KiB (15-25 us over cold
 * pages here) for the flush, not the writer's 2 MiB (130-380 us per
 * tick, ~4 ticks in a row per checkpoint, measured with TSC stamps per
 * loop phase).  Four pages a step (256 KiB, 60-100 us) put the p90 of the
 * records sampled during checkpoints at ~47 us in `weir bench latency
 * --rate 3000000 --cores 2 --checkpoint-interval 1000`; one page: ~18 us
 * (medians of 5 alternating runs, bench/RESULTS.md). */
#define CK_STEP_BYTES (64u << 10)
/* The flush yields to records (flush_step): a tick that moved a full
 * burst skips its step, unless the last step is this old.  The floor of
 * the flush rate when every tick is full: 64 KiB per 62.5 us, 1 GB/s. */
#define CK_STEP_GAP_NS 62500u

static void atomic_max(_Atomic uint64_t *a, uint64_t v)
{
	uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);

	while (v > cur && !atomic_compare_exchange_weak_explicit(
			a, &cur, v, memory_order_relaxed, memory_order_relaxed))
		;
}

/* ---- per core: cut ---- */

static void record_positions(struct wr_exec *x)
{
	struct wr_exec_ckpt *c = &x->ck;

	for (unsigned i = 0; i < x->nsources; i++) {
		const struct weir_stream *s = x->sources[i];
		int len = -1;
		if (s->fn.source.position != NULL) {
			x->ctx.node = s;
			len = s->fn.source.position(&x->ctx,
				c->pos + (size_t)i * WEIR_SOURCE_POS_MAX,
				WEIR_SOURCE_POS_MAX, s->arg);
			x->ctx.node = NULL;
		}
		c->pos_len[i] = len < 0 ? UINT32_MAX : (uint32_t)len;
	}
}

static void mark_got(struct wr_exec *x, unsigned e, unsigned k)
{
	struct wr_exec_ckpt *c = &x->ck;

	if (c->got[e][k])
		return;
	c->got[e][k] = true;
	if (++c->got_from[k] == x->p->nedges)
		c->blocked[k] = true;
}

/* IDLE -> ALIGN: sources stop where their positions were taken. */
static void cut(struct wr_exec *x, uint64_t id)
{
	struct wr_exec_ckpt *c = &x->ck;

	c->phase = WR_CK_ALIGN;
	c->id = c->seen = id;
	c->cut_ns = wr_ckpt_mono_ns();
	if (x->p->metrics != NULL)
		weir_metrics_checkpoint_local(x->p->metrics, x->id, true);
	record_positions(x);
	memset(c->got, 0, sizeof(c->got));
	memset(c->got_from, 0, sizeof(c->got_from));
	memset(c->blocked, 0, sizeof(c->blocked));
	for (unsigned k = 0; k < x->n; k++)
		c->blocked[k] = x->p->nedges == 0;
	for (unsigned e = 0; e < x->p->nedges; e++)
		for (unsigned k = 0; k < x->n; k++) {
			c->sent[e][k] = x->edges[e].end_sent_to[k];
			if (x->edges[e].end_from[k])
				mark_got(x, e, k);
		}
}

void wr_ckpt_marker(struct wr_exec *x, unsigned from,
		    const struct weir_marker *m)
{
	struct wr_exec_ckpt *c = &x->ck;

	if (x->p->ck == NULL || m->arg >= x->p->nedges)
		return;
	if (m->kind == WEIR_MARKER_BARRIER && c->phase == WR_CK_IDLE &&
	    m->value > c->seen)
		cut(x, m->value); /* a barrier can beat the trigger here */
	if (c->phase != WR_CK_ALIGN)
		return;
	if (m->kind == WEIR_MARKER_END ||
	    (m->kind == WEIR_MARKER_BARRIER && m->value == c->id))
		mark_got(x, (unsigned)m->arg, from);
}

/* ---- per core: align ---- */

/* The edge feeding key_by kb's stage, or -1 when a source does. */
static int root_edge(const struct weir_stream *kb)
{
	const struct weir_stream *n = kb->up;

	while (n->kind != WR_NODE_SOURCE && n->kind != WR_NODE_KEY_BY)
		n = n->up;
	return n->kind == WR_NODE_SOURCE ? -1 : (int)n->edge;
}

static bool edge_aligned(const struct wr_exec *x, unsigned e)
{
	for (unsigned k = 0; k < x->n; k++)
		if (!x->ck.got[e][k])
			return false;
	return true;
}

/* Barriers out; true once every edge has one (or END) to every core. */
static bool send_barriers(struct wr_exec *x)
{
	struct wr_exec_ckpt *c = &x->ck;
	bool all = true;

	for (unsigned e = 0; e < x->p->nedges; e++) {
		int root = root_edge(x->p->edges[e]);
		/* Every record of the stage is in, and no window of this core
		 * is halfway through its rows (window_aligned.c, inv. 4). */
		bool cut_here = root < 0 || (edge_aligned(x, (unsigned)root) &&
					     !wr_exec_firing(x, root));
		for (unsigned d = 0; d < x->n; d++) {
			struct weir_marker m = { WEIR_MARKER_BARRIER, e, c->id };
			if (c->sent[e][d] || x->edges[e].end_sent_to[d]) {
				c->sent[e][d] = true;
				continue;
			}
			/* After every envelope staged for d (markers land at
			 * the ring's current position). */
			if (cut_here && wr_exec_comb_clear(x, e, WEIR_TS_MAX) &&
			    x->out[d].n == 0 &&
			    weir_worker_send_marker_local(x->w, d, &m) == 0)
				c->sent[e][d] = true;
			all &= c->sent[e][d];
		}
	}
	return all;
}

static bool all_aligned(const struct wr_exec *x)
{
	for (unsigned e = 0; e < x->p->nedges; e++)
		if (!edge_aligned(x, e))
			return false;
	return true;
}

/* ---- per core: report ---- */

static void report(struct wr_exec *x, int err)
{
	struct wr_ckpt_job *j = x->p->ck;
	struct wr_exec_ckpt *c = &x->ck;

	j->err[x->id] = err;
	c->phase = WR_CK_IDLE;
	if (x->p->metrics != NULL)
		weir_metrics_checkpoint_local(x->p->metrics, x->id, false);
	c->w = NULL;
	memset(c->blocked, 0, sizeof(c->blocked));
	assert(wr_ckpt_core_is_valid(x));
	atomic_fetch_add_explicit(&j->reported, 1, memory_order_release);
}

/* ---- per core: snapshot (ALIGN -> FLUSH) ---- */

static int open_writer(struct wr_exec *x)
{
	struct wr_ckpt_job *j = x->p->ck;
	struct wr_ckpt_writer_config wc = {
		.dir = j->dir,
		.ckpt_id = j->plan.ckpt_id,
		.core = x->id,
		.fingerprint = j->fingerprint,
		.uring = x->ck.io,
		.parent_id = j->plan.parent_id,
		.parent_epoch = j->plan.parent_epoch[x->id],
		.log = x->ck.lg_this,
		.log_from = x->ck.lg_base.pos,
		.log_to = x->ck.lg_to,
		.step_bytes = CK_STEP_BYTES,
		.files = &j->files[x->id],
	};

	/* Planned as a changelog checkpoint but this core's log cannot
	 * continue (it broke, or its base is not the parent): a full page
	 * file starts this core's chain again. */
	if (j->plan.log && !x->ck.lg_this)
		wc.parent_id = 0;
	return wr_ckpt_writer_create(&wc, x->arena, &x->ck.w);
}

/* Metadata sections captured at the snapshot: [meta_rec][bytes, padded to
 * 8], handed to the writer once it exists.  The name is kept as a literal
 * prefix and a node id and formatted then: snprintf's cold code was ~half
 * of a 10 us pause (measured with TSC stamps around each section). */
struct meta_rec {
	const char *prefix;
	uint32_t id, len;
};

void *wr_ckpt_meta_reserve(struct wr_exec *x, const char *prefix, uint32_t id,
			   size_t len)
{
	struct wr_exec_ckpt *c = &x->ck;
	size_t rec = sizeof(struct meta_rec) + ((len + 7) & ~(size_t)7);
	uint8_t *q = c->meta + c->meta_len;

	if (len > UINT32_MAX || rec > c->meta_cap - c->meta_len)
		return NULL;
	memcpy(q, &(struct meta_rec){ prefix, id, (uint32_t)len },
	       sizeof(struct meta_rec));
	c->meta_len += rec;
	return q + sizeof(struct meta_rec);
}

static void record_lat(struct wr_ckpt_lat *l, uint64_t ns)
{
	uint64_t i = atomic_fetch_add_explicit(&l->n, 1, memory_order_relaxed);

	atomic_store_explicit(&l->ns[i % WR_CKPT_PAUSES],
			      ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns,
			      memory_order_relaxed);
	atomic_max(&l->max_ns, ns);
}

/*
 * The state's part of the snapshot.  A changelog checkpoint when the plan
 * asks for one and this core's log runs unbroken from the plan's parent:
 * a mark (the seal of this tick's notes and a block pad), no epoch.
 * Otherwise a page snapshot (the epoch bump) and the log's position there,
 * where later segments start once it commits; a broken log restarts there
 * and the older base is gone.
 */
static int snapshot_state(struct wr_exec *x)
{
	struct wr_exec_ckpt *c = &x->ck;
	uint64_t parent = x->p->ck->plan.parent_id, id = x->p->ck->plan.ckpt_id;
	struct wr_arena *a = x->arena;
	uint32_t epoch;
	int err;

	if (c->lg_last.id != 0 && c->lg_last.id == parent) {
		c->lg_base = c->lg_last;	/* it committed */
		wr_arena_log_release(a, c->lg_base.pos);
	}
	c->lg_this = x->p->ck->plan.log && c->lg_base.id == parent &&
		     parent != 0 && wr_arena_log_mark(a, &c->lg_to) == 0;
	if (!c->lg_this) {
		err = wr_arena_snapshot_begin(a, &epoch);
		if (err)
			return err;
		if (a->log != NULL && wr_arena_log_mark(a, &c->lg_to) != 0) {
			c->lg_to = wr_arena_log_resume(a);
			c->lg_base = (struct wr_ck_logpos){ 0, 0 };
		}
	}
	c->lg_last = (struct wr_ck_logpos){ a->log ? id : 0, c->lg_to };
	return 0;
}

/* ALIGN -> FLUSH: memory only (the pause); files come next tick. */
static void snapshot(struct wr_exec *x)
{
	struct wr_exec_ckpt *c = &x->ck;
	uint64_t t0 = wr_ckpt_mono_ns();
	int err = snapshot_state(x);

	record_lat(&x->p->ck->align, t0 - c->cut_ns);
	c->meta_len = 0;
	if (err == 0)
		err = wr_ckpt_meta_save(x);
	c->snap_ns = wr_ckpt_mono_ns();
	record_lat(&x->p->ck->pause, c->snap_ns - t0);
	memset(c->blocked, 0, sizeof(c->blocked));
	if (err == 0) {
		c->phase = WR_CK_FLUSH;
		return;
	}
	if (x->arena->snap_pending)
		wr_arena_snapshot_end(x->arena);
	fprintf(stderr, "weir: checkpoint %llu: core %u: %s\n",
		(unsigned long long)x->p->ck->plan.ckpt_id, x->id,
		weir_last_error());
	report(x, err);
}

/* The first FLUSH tick: files opened, the captured sections added. */
static int start_writer(struct wr_exec *x)
{
	struct wr_exec_ckpt *c = &x->ck;
	int err = open_writer(x);

	for (size_t off = 0; err == 0 && off < c->meta_len;) {
		struct meta_rec r;
		char name[WR_CKPT_SECTION_NAME_MAX + 1];
		memcpy(&r, c->meta + off, sizeof(r));
		if (r.id == WR_CKPT_META_NO_ID)
			snprintf(name, sizeof(name), "%s", r.prefix);
		else
			snprintf(name, sizeof(name), "%s%u", r.prefix, r.id);
		err = wr_ckpt_writer_add_section(c->w, name,
						 c->meta + off + sizeof(r),
						 r.len);
		off += sizeof(r) + ((r.len + 7) & ~(size_t)7);
	}
	return err ? err : wr_ckpt_meta_add_sources(x, c->w);
}

/* ---- per core: flush (FLUSH -> IDLE) ---- */

static int sinks_synced(struct wr_exec *x)
{
	for (unsigned i = 0; i < x->p->nnodes; i++) {
		const struct weir_stream *n = x->p->nodes[i];
		if (n->kind != WR_NODE_SINK || n->sink_ops->synced == NULL ||
		    *wr_exec_sink_state(x, n) == NULL)
			continue;
		int r = n->sink_ops->synced(x, n);
		if (r <= 0)
			return r;
	}
	return 1;
}

static void flush_done(struct wr_exec *x, int err, const char *why)
{
	struct wr_ckpt_job *j = x->p->ck;
	struct wr_exec_ckpt *c = &x->ck;

	if (err == 0)
		err = wr_ckpt_writer_result(c->w, &j->res[x->id]);
	wr_ckpt_writer_destroy(c->w); /* unlinks unless durable */
	wr_arena_snapshot_end(x->arena);
	if (err && err != -ECANCELED)
		fprintf(stderr, "weir: checkpoint %llu: core %u: %s\n",
			(unsigned long long)j->plan.ckpt_id, x->id,
			why ? why : strerror(-err));
	report(x, err);
}

/*
 * One writer step, but only on a tick that left no backlog behind: a tick
 * that moved a full burst of records (a source or a ring had more) skips
 * it, unless the last step is CK_STEP_GAP_NS old.  Why: sources and rings
 * move at most WR_BURST records a tick, so a step of 40-100 us (checksums
 * of cold pages, the submission) every tick capped a core at ~32 records
 * per step, below 1.5 M records/s: the backlog grew through the whole
 * flush, and records waited 1-2 ms (p90 of the samples taken during
 * checkpoints in `weir bench latency`, which had been put down to the
 * copy-on-write).  Now a step costs the records behind it one step.
 */
static bool flush_yields(const struct wr_exec *x, uint32_t work,
			 uint64_t now)
{
	return work >= WR_BURST && now - x->ck.step_ns < CK_STEP_GAP_NS;
}

/* A flush step shorter than this only polled for completions: most
 * steps (0.05 us), which would hide the ones that work in the figure. */
#define STEP_WORK_NS 1000u

static int flush_step(struct wr_exec *x, uint32_t work)
{
	struct wr_exec_ckpt *c = &x->ck;
	int rc;

	if (c->w == NULL) {
		uint64_t t0 = wr_ckpt_mono_ns();
		rc = start_writer(x);
		record_lat(&x->p->ck->open, wr_ckpt_mono_ns() - t0);
		if (rc != 0) {
			flush_done(x, rc, weir_last_error());
			return 1;
		}
		return 1; /* the first step next tick, records between */
	}

	if (atomic_load_explicit(&x->p->ck->abort_id, memory_order_relaxed) ==
	    c->id) {
		flush_done(x, -ECANCELED, NULL);
		return 1;
	}
	uint64_t t0 = wr_ckpt_mono_ns(); /* the gap's clock and the step's */
	if (flush_yields(x, work, t0))
		return 0;
	rc = wr_ckpt_writer_step(c->w);
	c->step_ns = wr_ckpt_mono_ns();
	if (c->step_ns - t0 >= STEP_WORK_NS) /* not a poll for completions */
		record_lat(&x->p->ck->step, c->step_ns - t0);
	if (rc == 1)
		rc = sinks_synced(x);
	if (rc != 0)
		flush_done(x, rc < 0 ? rc : 0, NULL);
	return 1;
}

/* ---- coordinator (core 0) ---- */

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct wr_ckpt_policy policy(const struct wr_ckpt_job *j)
{
	return (struct wr_ckpt_policy){
		.retain = j->cfg.retain,
		.incremental = j->cfg.incremental,
		.full_every = j->cfg.full_every,
		.chain_max = j->cfg.chain_max,
		.force_full = j->force_full,
		.changelog = j->cfg.changelog,
		.log_max = j->cfg.log_max,
		.log_max_pct = j->cfg.log_max_pct,
		.last_log_bytes = j->last_log_bytes,
		.last_page_bytes = j->last_page_bytes,
	};
}

/*
 * The next checkpoint prepared ahead, while no checkpoint is in flight:
 * the committer plans it and creates every core's files (committer.c says
 * what that took on the loops).  The plan is the one start() would make:
 * the directory changes only on the committer's thread, and force_full
 * only when a commit settles, before this.  A failed prepare is not an
 * error of its own: start() plans, and the writers create their files and
 * report what fails, as without it.
 */
enum wr_ckpt_prep { PREP_NONE = 0, PREP_PENDING, PREP_READY, PREP_FAILED };

/* The committer's answer r (and rc) to the prepare: READY with its plan
 * and files taken, or FAILED. */
static void prep_collect(struct wr_ckpt_job *j, int r, int rc)
{
	j->prep = r == 0 && rc == 0 ? PREP_READY : PREP_FAILED;
	if (j->prep == PREP_READY)
		wr_ckpt_committer_take(j->committer, &j->plan, j->files);
}

static bool prepared(struct wr_ckpt_job *j)
{
	struct wr_ckpt_policy pol;
	int rc = 0, r;

	switch (j->prep) {
	case PREP_NONE:
		pol = policy(j);
		r = wr_ckpt_committer_prepare(j->committer, j->dir, &pol,
					      j->cores);
		j->prep = r == 0 ? PREP_PENDING : PREP_FAILED;
		return false;
	case PREP_PENDING:
		r = wr_ckpt_committer_poll(j->committer, &rc);
		if (r == 1)
			return false;
		prep_collect(j, r, rc);
		return true;
	default:
		return true;
	}
}

/* Files no writer took (a core failed first, or its kind differed from
 * the plan's): closed; a commit's sweep or an abort removes them. */
static void files_release(struct wr_ckpt_job *j)
{
	for (unsigned i = 0; i < j->cores; i++)
		wr_ckpt_files_close(&j->files[i]);
}

void wr_ckpt_prep_drop(struct wr_ckpt_job *j)
{
	int rc = 0;

	if (j->prep == PREP_PENDING)
		prep_collect(j, wr_ckpt_committer_wait(j->committer, &rc), rc);
	files_release(j);	/* prepared, or handed out and not taken */
	if (j->prep == PREP_READY)
		(void)wr_ckpt_abort(j->dir, j->plan.ckpt_id);
	j->prep = PREP_NONE;
}

static void start(struct wr_ckpt_job *j, int64_t now)
{
	struct wr_ckpt_policy pol = policy(j);
	bool ready = j->prep == PREP_READY;

	j->prep = PREP_NONE;
	if (!ready && wr_ckpt_plan_next(j->dir, &pol, j->cores, &j->plan) != 0) {
		fprintf(stderr, "weir: checkpoint: %s\n", weir_last_error());
		j->next_ms = now + j->cfg.interval_ms;
		return;
	}
	j->in_flight = true;
	j->aborting = false;
	j->started_ms = now;
	j->started_ns = wr_ckpt_mono_ns();
	atomic_store_explicit(&j->reported, 0, memory_order_relaxed);
	/* Barriers carry the run's own sequence number: a failed
	 * checkpoint's id is planned again, a trigger never repeats. */
	atomic_store_explicit(&j->trigger, ++j->seq, memory_order_release);
}

static int first_error(const struct wr_ckpt_job *j, unsigned *core)
{
	for (unsigned i = 0; i < j->cores; i++)
		if (j->err[i]) {
			*core = i;
			return j->err[i];
		}
	return 0;
}

/* The committer's result: the statistics of a committed checkpoint. */
static void committed(struct wr_ckpt_job *j, int rc)
{
	uint64_t id = j->plan.ckpt_id, bytes = 0;
	bool logs = false, pages = false;

	if (rc != 0) {
		fprintf(stderr, "weir: checkpoint %llu: commit: %s\n",
			(unsigned long long)id, weir_last_error());
		atomic_fetch_add_explicit(&j->failed, 1, memory_order_relaxed);
		return;
	}
	for (unsigned i = 0; i < j->cores; i++) {
		bytes += j->res[i].pages_size + j->res[i].meta_size;
		logs |= j->res[i].is_log;
		pages |= !j->res[i].is_log;
	}
	if (logs && !pages)
		j->last_log_bytes = bytes;
	else if (!logs)
		j->last_page_bytes = bytes;
	if (logs)
		atomic_fetch_add_explicit(&j->changelog, 1,
					  memory_order_relaxed);
	/* Page-incremental checkpoints need a parent epoch of this run: a
	 * log continuing a restored chain keeps the old run's, so only a
	 * checkpoint of page files on every core ends force_full. */
	if (!logs)
		j->force_full = false;
	atomic_store_explicit(&j->last_us, j->commit_us, memory_order_relaxed);
	atomic_store_explicit(&j->last_bytes, bytes, memory_order_relaxed);
	atomic_store_explicit(&j->last_id, id, memory_order_relaxed);
	atomic_fetch_add_explicit(&j->completed, 1, memory_order_relaxed);
}

/* Hands the commit (manifest, fsyncs, rename, retention's unlinks) to the
 * committer thread: core 0's loop goes on (snapshot/committer.c). */
static void commit(struct wr_ckpt_job *j, int64_t now)
{
	struct wr_ckpt_commit_info info = {
		.dir = j->dir, .ckpt_id = j->plan.ckpt_id,
		.parent_id = j->plan.parent_id,
		.time_unix_ms = (uint64_t)now,
		.duration_us = (wr_ckpt_mono_ns() - j->started_ns) / 1000,
		.cores = j->cores, .key_groups = j->key_groups,
		.fingerprint = j->fingerprint, .job = j->job,
		.retain = j->cfg.retain,
	};
	int rc;

	j->commit_us = info.duration_us;
	rc = wr_ckpt_committer_commit(j->committer, &info, j->res, j->cores);
	if (rc != 0)
		committed(j, rc);	/* not handed over: a failed commit */
}

static void publish(struct wr_exec *x)
{
	struct wr_ckpt_job *j = x->p->ck;
	struct weir_metrics *m = x->p->metrics;

	if (m == NULL)
		return;
	weir_metrics_set_local(m, 0, WEIR_METRIC_CHECKPOINTS,
		atomic_load_explicit(&j->completed, memory_order_relaxed));
	weir_metrics_set_local(m, 0, WEIR_METRIC_CHECKPOINT_DURATION_NS,
		atomic_load_explicit(&j->last_us, memory_order_relaxed) * 1000);
	weir_metrics_set_local(m, 0, WEIR_METRIC_CHECKPOINT_BYTES,
		atomic_load_explicit(&j->last_bytes, memory_order_relaxed));
}

static void complete(struct wr_ckpt_job *j, int64_t now)
{
	unsigned core = 0;
	int err = first_error(j, &core);

	j->commit_abort = err != 0;
	if (!err) {
		commit(j, now);
		return;
	}
	if (err == -ECANCELED)
		fprintf(stderr, "weir: checkpoint %llu aborted after the %u ms "
			"timeout\n", (unsigned long long)j->plan.ckpt_id,
			j->cfg.timeout_ms);
	else
		fprintf(stderr, "weir: checkpoint %llu failed on core %u (%s); "
			"the previous one stays\n",
			(unsigned long long)j->plan.ckpt_id, core,
			strerror(-err));
	atomic_fetch_add_explicit(&j->failed, 1, memory_order_relaxed);
	/* Its files go on the committer's thread too (unlinks block). */
	(void)wr_ckpt_committer_abort(j->committer, j->dir, j->plan.ckpt_id);
}

/* Every core reported and the committer is done (or was never handed
 * the checkpoint): the next one may be planned. */
static void settle(struct wr_ckpt_job *j, int64_t now)
{
	j->handed = j->in_flight = false;
	files_release(j);
	j->next_ms = j->started_ms + j->cfg.interval_ms;
	if (j->next_ms < now + (int64_t)j->cfg.min_pause_ms)
		j->next_ms = now + (int64_t)j->cfg.min_pause_ms;
}

/* 1 when the committer is done with what complete() handed it (the
 * checkpoint committed or failed, or its files were removed), or was
 * handed nothing; waits for it if `wait`. */
static int commit_done(struct wr_ckpt_job *j, int64_t now, bool wait)
{
	int rc = 0;
	int r = wait ? wr_ckpt_committer_wait(j->committer, &rc)
		     : wr_ckpt_committer_poll(j->committer, &rc);

	if (r == 1)
		return 0;
	if (r == 0 && !j->commit_abort)
		committed(j, rc);
	settle(j, now);
	return 1;
}

void wr_ckpt_commit_wait(struct wr_ckpt_job *j)
{
	(void)commit_done(j, wall_ms(), true);
}

/*
 * A core cut while one of its windows fires holds its barriers until the
 * firing ends (window_aligned.c, invariant 4), and meanwhile its sources
 * stay stopped: ~1.5-4 ms for a 50k-row window here, and with windows and
 * checkpoints both every second the two lock in phase.  So a due
 * checkpoint waits (at most FIRING_WAIT_MS) until no core is firing.
 */
#define FIRING_WAIT_MS 100

static bool any_firing(struct wr_ckpt_job *j)
{
	for (unsigned i = 0; i < j->cores; i++)
		if (atomic_load_explicit(&j->firing[i], memory_order_relaxed))
			return true;
	return false;
}

static void publish_firing(struct wr_exec *x)
{
	bool f = wr_exec_firing(x, WR_ANY_STAGE);

	if (f != x->ck.firing) {
		x->ck.firing = f;
		atomic_store_explicit(&x->p->ck->firing[x->id], f,
				      memory_order_relaxed);
	}
}

static void coordinate(struct wr_exec *x)
{
	struct wr_ckpt_job *j = x->p->ck;
	int64_t now = wall_ms();

	if (j->in_flight) {
		if (j->handed) {
			if (commit_done(j, now, false))
				publish(x);
		} else if (atomic_load_explicit(&j->reported,
					memory_order_acquire) == j->cores) {
			complete(j, now);
			j->handed = true;
		} else if (!j->aborting &&
			 now - j->started_ms > (int64_t)j->cfg.timeout_ms) {
			j->aborting = true;
			atomic_store_explicit(&j->abort_id, j->seq,
					      memory_order_relaxed);
		}
		return;
	}
	if (atomic_load_explicit(&j->want_finish, memory_order_acquire) ==
	    j->cores) {
		atomic_store_explicit(&j->closed, 1, memory_order_release);
		return;
	}
	if (prepared(j) && now >= j->next_ms &&
	    (!any_firing(j) || now - j->next_ms >= FIRING_WAIT_MS))
		start(j, now);
}

/* ---- the tick ---- */

int wr_ckpt_tick(struct wr_exec *x, uint32_t work)
{
	struct wr_ckpt_job *j = x->p->ck;
	struct wr_exec_ckpt *c = &x->ck;

	if (j == NULL)
		return 0;
	publish_firing(x);
	if (x->id == 0)
		coordinate(x);
	if (c->phase == WR_CK_IDLE) {
		uint64_t t = atomic_load_explicit(&j->trigger,
						  memory_order_acquire);
		if (t > c->seen) {
			cut(x, t);
			assert(wr_ckpt_core_is_valid(x));
		}
	}
	if (c->phase == WR_CK_ALIGN && send_barriers(x) && all_aligned(x)) {
		snapshot(x);
		assert(wr_ckpt_core_is_valid(x));
		/* Records resume before the writer opens its files (mkdir,
		 * opens: tens of us of syscalls, timed apart as "open"). */
		return 1;
	}
	if (c->phase == WR_CK_FLUSH)
		return flush_step(x, work);
	return 0;
}

bool wr_ckpt_may_finish(struct wr_exec *x)
{
	struct wr_ckpt_job *j = x->p->ck;

	if (j == NULL)
		return true;
	if (!x->ck.want_finish) {
		x->ck.want_finish = true;
		atomic_fetch_add_explicit(&j->want_finish, 1,
					  memory_order_release);
	}
	return atomic_load_explicit(&j->closed, memory_order_acquire) &&
	       x->ck.phase == WR_CK_IDLE;
}

bool wr_ckpt_core_is_valid(const struct wr_exec *x)
{
	const struct wr_exec_ckpt *c = &x->ck;

	for (unsigned k = 0; k < x->n; k++) {
		unsigned got = 0;
		for (unsigned e = 0; e < x->p->nedges; e++)
			got += c->got[e][k];
		if (c->phase == WR_CK_ALIGN && got != c->got_from[k])
			return false;
		if (c->phase != WR_CK_ALIGN && c->blocked[k])
			return false;
	}
	switch (c->phase) {
	case WR_CK_IDLE:
		return c->w == NULL;
	case WR_CK_ALIGN:
		return c->w == NULL && c->id == c->seen && c->id > 0;
	case WR_CK_FLUSH:	/* a page snapshot, or a changelog segment */
		return x->arena->snap_pending != c->lg_this;
	}
	return false;
}

int wr_ckpt_meta_fit(struct wr_exec *x)
{
	struct wr_exec_ckpt *c = &x->ck;
	size_t cap;
	uint8_t *m;

	if (c->meta == NULL) /* not set up yet: wr_ckpt_exec_init sizes it */
		return 0;
	cap = wr_ckpt_meta_bytes_max(x);
	if (cap <= c->meta_cap)
		return 0;
	m = malloc(cap);
	if (m == NULL)
		return -ENOMEM;
	/* Faulted in now, not by the next snapshot's stores; what a snapshot
	 * captured for the writer's first tick is kept. */
	memset(m, 0, cap);
	memcpy(m, c->meta, c->meta_len);
	free(c->meta);
	c->meta = m;
	c->meta_cap = cap;
	return 0;
}

/* ---- per core: setup ---- */

/* Notes per tick before the log breaks: a tick's records (bursts of 32,
 * ring batches) times a few ranges each, plus bounded housekeeping. */
#define CK_LOG_PENDING (1u << 16)

/* The changelog's ring: configured, or an eighth of the state cap up to
 * 64 MiB (the log since the last committed checkpoint must fit: about two
 * intervals of updates; `weir flows` logs 10-60 MB/s per core).  It is
 * mapped at start-up, ~0.1 s for 64 MiB here; a log that outgrows it only
 * makes that core's next checkpoint a page one. */
static int log_enable(struct wr_exec *x)
{
	uint64_t ring = x->p->ck->cfg.changelog_ring_bytes;
	uint64_t cap = x->p->cfg.state_bytes_max / 8;

	if (ring == 0) {
		ring = 2u << 20;
		while (ring < (64ull << 20) && ring * 2 <= cap)
			ring *= 2;
	}
	int err = wr_arena_log_enable(x->arena, ring, CK_LOG_PENDING);
	return err ? wr_error(err, "checkpoint: changelog: %s",
			      weir_last_error()) : 0;
}

int wr_ckpt_log_continue(struct wr_exec *x)
{
	struct wr_ckpt_job *j = x->p->ck;
	int err;

	if (j == NULL || !j->cfg.changelog || x->arena->log != NULL)
		return 0;
	err = log_enable(x);
	if (err)
		return err;
	x->ck.lg_base = (struct wr_ck_logpos){
		j->restored_id, wr_arena_log_resume(x->arena) };
	return 0;
}

int wr_ckpt_exec_init(struct wr_exec *x)
{
	struct wr_exec_ckpt *c = &x->ck;
	int err;

	if (x->p->ck == NULL)
		return 0;
	c->pos = calloc(x->nsources + 1, WEIR_SOURCE_POS_MAX);
	c->pos_len = calloc(x->nsources + 1, sizeof(*c->pos_len));
	c->meta_cap = wr_ckpt_meta_bytes_max(x);
	c->meta = malloc(c->meta_cap);
	if (c->pos == NULL || c->pos_len == NULL || c->meta == NULL)
		return -ENOMEM;
	/* Faulted in now, not by the first snapshot's stores. */
	memset(c->meta, 0, c->meta_cap);
	err = wr_uring_create(CK_URING_DEPTH, &c->io);
	if (err)
		return wr_error(err, "checkpoint: io_uring: %s", strerror(-err));
	/* The first checkpoint's writer then allocates nothing (-ENOMEM:
	 * it will try again itself). */
	(void)wr_ckpt_writer_cache_reserve(x->arena->pages_total);
	/* Enabled already when this core continues a restored chain. */
	return x->p->ck->cfg.changelog && x->arena->log == NULL ?
	       log_enable(x) : 0;
}

void wr_ckpt_exec_fini(struct wr_exec *x)
{
	struct wr_exec_ckpt *c = &x->ck;

	/* Stopped mid-flush: nothing of it counts (destroy unlinks an
	 * unfinished writer's files; wr_ckpt_job_close aborts the checkpoint,
	 * files of cores that were durable included). */
	wr_ckpt_writer_destroy(c->w);
	c->w = NULL;
	if (x->arena != NULL && x->arena->snap_pending)
		wr_arena_snapshot_end(x->arena);
	wr_uring_destroy(c->io);
	wr_ckpt_writer_cache_release();
	free(c->meta);
	free(c->pos);
	free(c->pos_len);
}
