/*
 * pipeline.c — building the pipeline graph and running it on the runtime.
 * The per-core execution is in exec.c; the graph layout in
 * pipeline_internal.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/ckpt.h"
#include "core/error.h"
#include "core/exec_internal.h"
#include "core/pipeline_internal.h"
#include "weir/tsc.h"

#define STATE_BYTES_DEFAULT (1ull << 30)

void weir_pipeline_config_init(struct weir_pipeline_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	weir_runtime_config_init(&cfg->runtime);
	cfg->key_groups = WEIR_KEY_GROUPS_DEFAULT;
	cfg->state_bytes_max = STATE_BYTES_DEFAULT;
	cfg->align_drift_ms = WEIR_ALIGN_DRIFT_MS_DEFAULT;
	cfg->combine_entries = WEIR_COMBINE_ENTRIES_DEFAULT;
}

int weir_pipeline_create(const struct weir_pipeline_config *cfg,
			 struct weir_pipeline **out)
{
	struct weir_pipeline *p;
	uint32_t kg;

	if (cfg == NULL || out == NULL)
		return wr_error(-EINVAL, "pipeline config or out-pointer is NULL");
	kg = cfg->key_groups;
	if (kg == 0 || (kg & (kg - 1)) != 0 || kg > WEIR_KEY_GROUPS_MAX)
		return wr_error(-EINVAL, "key_groups %u is not a power of two "
				"in [1, %u]", kg, WEIR_KEY_GROUPS_MAX);
	if (cfg->runtime.cores > kg)
		return wr_error(-EINVAL, "cores %u is more than key_groups %u: "
				"some core would own no key group",
				cfg->runtime.cores, kg);
	if (cfg->align_drift_ms < 0)
		return wr_error(-EINVAL, "align_drift_ms %lld is negative (0 "
				"turns watermark alignment off)",
				(long long)cfg->align_drift_ms);
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->cfg = *cfg;
	*out = p;
	return 0;
}

void weir_pipeline_destroy(struct weir_pipeline *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; i < p->nnodes; i++) {
		free(p->nodes[i]->states);
		free(p->nodes[i]->owned_arg);
		free(p->nodes[i]);
	}
	if (p->ck != NULL) {
		pthread_mutex_destroy(&p->ck->restore_lock);
		free((void *)p->ck->cfg.params);
		free(p->ck);
	}
	free(p);
}

/* ---- graph building ---- */

int wr_pipeline_add(struct weir_pipeline *p, struct weir_stream *up,
		    enum wr_node_kind kind, const char *name,
		    struct weir_stream **out)
{
	struct weir_stream *n = NULL;

	if (p == NULL)
		return wr_error(-EINVAL, "pipeline is NULL");
	if (p->rt != NULL)
		return wr_error(-EBUSY, "pipeline is running: build it first");
	if (p->nnodes == WR_NODES_MAX)
		return wr_error(-ENOSPC, "a pipeline holds at most %u operators",
				WR_NODES_MAX);
	if (kind != WR_NODE_SOURCE && up == NULL)
		return wr_error(-EINVAL, "%s: input stream is NULL", name);
	if (up != NULL && up->ndown == WR_FANOUT_MAX)
		return wr_error(-ENOSPC, "stream '%s' already feeds %u operators",
				up->name, WR_FANOUT_MAX);
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	n->kind = kind;
	n->id = p->nnodes;
	snprintf(n->name, sizeof(n->name), "%s", name ? name : "op");
	n->up = up;
	n->max_out = 1;
	n->stage_edge = -1;
	if (up != NULL) {
		n->in_size = up->out_size;
		n->out_size = up->out_size;
		n->key_size = up->key_size;
		n->stage_edge = up->kind == WR_NODE_KEY_BY ? (int)up->edge
							   : up->stage_edge;
		up->down[up->ndown++] = n;
	}
	p->nodes[p->nnodes++] = n;
	*out = n;
	return 0;
}

static int check_size(const char *what, uint32_t size)
{
	if (size == 0 || size > WEIR_RECORD_SIZE_MAX)
		return wr_error(-EINVAL, "%s record size %u is out of range "
				"[1, %u] bytes", what, size,
				WEIR_RECORD_SIZE_MAX);
	return 0;
}

int weir_source(struct weir_pipeline *p, const char *name,
		const struct weir_source_ops *ops, uint32_t record_size,
		void *arg, struct weir_stream **out)
{
	struct weir_stream *n = NULL;
	int err = check_size("source", record_size);

	if (err)
		return err;
	if (ops == NULL || ops->next == NULL)
		return wr_error(-EINVAL, "source '%s' has no next()", name);
	err = wr_pipeline_add(p, NULL, WR_NODE_SOURCE, name, &n);
	if (err)
		return err;
	n->out_size = record_size;
	n->fn.source = *ops;
	n->arg = arg;
	*out = n;
	return 0;
}

int weir_watermarks(struct weir_pipeline *p, struct weir_stream *source,
		    int64_t max_out_of_order_ms, int64_t idle_timeout_ms)
{
	if (p == NULL || source == NULL || source->kind != WR_NODE_SOURCE)
		return wr_error(-EINVAL, "watermarks need a source stream");
	if (max_out_of_order_ms < 0 || idle_timeout_ms < 0)
		return wr_error(-EINVAL, "out-of-orderness %lld ms and idle "
				"timeout %lld ms must be >= 0",
				(long long)max_out_of_order_ms,
				(long long)idle_timeout_ms);
	source->event_time = true;
	source->ooo_ms = max_out_of_order_ms;
	source->idle_ms = idle_timeout_ms;
	return 0;
}

int weir_map(struct weir_pipeline *p, struct weir_stream *in, weir_map_fn fn,
	     uint32_t out_size, void *arg, struct weir_stream **out)
{
	struct weir_stream *n = NULL;
	int err = check_size("map output", out_size);

	if (err)
		return err;
	if (fn == NULL)
		return wr_error(-EINVAL, "map function is NULL");
	err = wr_pipeline_add(p, in, WR_NODE_MAP, "map", &n);
	if (err)
		return err;
	n->out_size = out_size;
	n->key_size = 0; /* a map may change the key: not keyed anymore */
	n->fn.map = fn;
	n->arg = arg;
	*out = n;
	return 0;
}

int weir_filter(struct weir_pipeline *p, struct weir_stream *in,
		weir_filter_fn fn, void *arg, struct weir_stream **out)
{
	struct weir_stream *n = NULL;
	int err;

	if (fn == NULL)
		return wr_error(-EINVAL, "filter function is NULL");
	err = wr_pipeline_add(p, in, WR_NODE_FILTER, "filter", &n);
	if (err)
		return err;
	n->fn.filter = fn;
	n->arg = arg;
	*out = n;
	return 0;
}

int weir_flat_map(struct weir_pipeline *p, struct weir_stream *in,
		  weir_flat_map_fn fn, uint32_t out_size, uint32_t max_out,
		  void *arg, struct weir_stream **out)
{
	struct weir_stream *n = NULL;
	int err = check_size("flat_map output", out_size);

	if (err)
		return err;
	if (fn == NULL)
		return wr_error(-EINVAL, "flat_map function is NULL");
	if (max_out == 0 || max_out > WR_OUTBUF_CAP)
		return wr_error(-EINVAL, "flat_map max_out %u is out of range "
				"[1, %u]", max_out, WR_OUTBUF_CAP);
	err = wr_pipeline_add(p, in, WR_NODE_FLAT_MAP, "flat_map", &n);
	if (err)
		return err;
	n->out_size = out_size;
	n->key_size = 0;
	n->max_out = max_out;
	n->fn.flat_map = fn;
	n->arg = arg;
	*out = n;
	return 0;
}

int weir_key_by(struct weir_pipeline *p, struct weir_stream *in,
		weir_key_fn fn, uint32_t key_size, void *arg,
		struct weir_stream **out)
{
	struct weir_stream *n = NULL;
	int err;

	if (fn == NULL)
		return wr_error(-EINVAL, "key_by function is NULL");
	if (key_size == 0 || key_size > WEIR_KEY_SIZE_MAX)
		return wr_error(-EINVAL, "key size %u is out of range [1, %u] "
				"bytes", key_size, WEIR_KEY_SIZE_MAX);
	if (p != NULL && p->nedges == WR_EDGES_MAX)
		return wr_error(-ENOSPC, "a pipeline holds at most %u key_by",
				WR_EDGES_MAX);
	err = wr_pipeline_add(p, in, WR_NODE_KEY_BY, "key_by", &n);
	if (err)
		return err;
	n->key_size = key_size;
	n->fn.key_by = fn;
	n->arg = arg;
	n->edge = p->nedges;
	p->edges[p->nedges++] = n;
	*out = n;
	return 0;
}

int wr_pipeline_global(struct weir_pipeline *p, struct weir_stream *in,
		       struct weir_stream **out)
{
	struct weir_stream *n = NULL;
	int err;

	if (p != NULL && p->nedges == WR_EDGES_MAX)
		return wr_error(-ENOSPC, "a pipeline holds at most %u key_by",
				WR_EDGES_MAX);
	err = wr_pipeline_add(p, in, WR_NODE_KEY_BY, "to_core0", &n);
	if (err)
		return err;
	n->key_size = 0;
	n->fn.key_by = NULL;
	n->edge = p->nedges;
	p->edges[p->nedges++] = n;
	*out = n;
	return 0;
}

static int callback_write(struct wr_exec *x, const struct weir_stream *n,
			  const void *rec)
{
	return n->fn.sink(wr_exec_ctx(x), rec, n->arg);
}

int weir_sink_callback(struct weir_pipeline *p, struct weir_stream *in,
		       weir_sink_fn fn, void *arg)
{
	static const struct wr_sink_ops ops = { .write = callback_write };
	struct weir_stream *n = NULL;
	int err;

	if (fn == NULL)
		return wr_error(-EINVAL, "sink function is NULL");
	err = wr_pipeline_add(p, in, WR_NODE_SINK, "sink", &n);
	if (err)
		return err;
	n->fn.sink = fn;
	n->sink_ops = &ops;
	n->arg = arg;
	return 0;
}

/* ---- key groups ---- */

uint32_t weir_key_group(const void *key, uint32_t key_size,
			uint32_t key_groups)
{
	return (uint32_t)(XXH3_64bits(key, key_size) & (key_groups - 1));
}

/* Core i owns the contiguous key-group range [i*G/n, (i+1)*G/n). */
unsigned weir_key_group_owner(uint32_t key_group, uint32_t key_groups,
			      unsigned cores)
{
	return (unsigned)(((uint64_t)key_group * cores) / key_groups);
}

/* ---- finishing the graph ---- */

/* Most envelopes one record entering n can put in any one out buffer. */
static uint32_t compute_amp(struct weir_stream *n)
{
	uint32_t sum = 0;

	if (n->kind == WR_NODE_KEY_BY)
		return n->amp = 1;
	for (unsigned i = 0; i < n->ndown; i++) {
		uint32_t a = compute_amp(n->down[i]);
		sum = sum + a > WR_OUTBUF_CAP + 1 ? WR_OUTBUF_CAP + 1 : sum + a;
	}
	if (n->side != NULL)
		sum += compute_amp(n->side);
	uint64_t amp = (uint64_t)sum * n->max_out;
	/* At least 1, so batch sizes can divide by it (a sink emits none). */
	n->amp = amp == 0 ? 1
		 : amp > WR_OUTBUF_CAP + 1 ? WR_OUTBUF_CAP + 1 : (uint32_t)amp;
	return n->amp;
}

static int finish_graph(struct weir_pipeline *p)
{
	uint32_t slot = 0;
	bool any_source = false;

	for (unsigned i = 0; i < p->nnodes; i++) {
		struct weir_stream *n = p->nodes[i];
		if (n->kind == WR_NODE_SOURCE) {
			any_source = true;
			compute_amp(n);
		}
		if (n->kind == WR_NODE_KEY_BY && n->out_size > slot)
			slot = n->out_size;
		uint32_t sz = n->kind == WR_NODE_KEY_BY && p->cfg.combine_entries
				      ? wr_comb_payload_size(n) : 0;
		if (sz > 0) { /* partials: [records][acc][key] */
			n->partial_acc = sz - 8 - n->key_size;
			slot = sz > slot ? sz : slot;
		}
		if (n->amp > WR_OUTBUF_CAP)
			return wr_error(-EINVAL, "operator '%s' may emit more than "
					"%u records per input", n->name,
					WR_OUTBUF_CAP);
	}
	if (!any_source)
		return wr_error(-EINVAL, "pipeline has no source");
	/* Records and their envelope header travel in 8-byte-aligned slots. */
	p->slot_size = (sizeof(struct wr_envelope) + slot + 7) & ~7u;
	return 0;
}

/* ---- running ---- */

static int worker_init(struct weir_worker *w, void *arg)
{
	struct weir_pipeline *p = arg;

	return wr_exec_create(p, w, &p->execs[weir_worker_id(w)]);
}

static int worker_poll(struct weir_worker *w, void *arg)
{
	struct weir_pipeline *p = arg;

	if (atomic_load_explicit(&p->stop, memory_order_relaxed))
		weir_runtime_stop_remote(weir_worker_runtime(w));
	return wr_exec_poll(p->execs[weir_worker_id(w)]);
}

static void worker_fini(struct weir_worker *w, void *arg)
{
	struct weir_pipeline *p = arg;

	wr_exec_destroy(p->execs[weir_worker_id(w)]);
	p->execs[weir_worker_id(w)] = NULL;
}

/* ---- restore: every core's pages before any core starts ---- */

static int preload_init(struct weir_worker *w, void *arg)
{
	return wr_exec_preload(arg, w);
}

static int preload_poll(struct weir_worker *w, void *arg)
{
	(void)arg;
	weir_worker_finish_local(w);
	return 0;
}

static void preload_free(struct weir_pipeline *p, unsigned cores)
{
	for (unsigned i = 0; p->preload && i < cores; i++)
		wr_arena_destroy(p->preload[i]);
	free(p->preload);
	p->preload = NULL;
}

/* Same core count: each core loads its pages on its own CPU (pinned as
 * in the run, so the memory is local), all before any core opens a sink
 * or source, so a bad page of one core leaves nothing to undo. */
static int preload(struct weir_pipeline *p, unsigned cores)
{
	static const struct weir_worker_ops ops = {
		.init = preload_init, .poll = preload_poll };
	int err;

	if (p->ck == NULL || p->ck->restore == NULL ||
	    wr_ckpt_info(p->ck->restore)->cores != cores)
		return 0;
	p->preload = calloc(cores, sizeof(*p->preload));
	if (p->preload == NULL)
		return -ENOMEM;
	err = weir_runtime_start(p->rt, &ops, p);
	if (err == 0)
		err = weir_runtime_wait(p->rt);
	if (err)
		preload_free(p, cores);
	return err;
}

/* Runs the workers.  A checkpoint page that fails its checksum while a
 * core loads it fails the start before anything was written (preload, or
 * a rescaling core's own load before its sinks open); the run then starts
 * over from the previous checkpoint, as if open had refused the bad one
 * (at most one retry per retained checkpoint). */
static int run_workers(struct weir_pipeline *p, unsigned cores)
{
	static const struct weir_worker_ops ops = {
		.init = worker_init, .poll = worker_poll, .fini = worker_fini };
	int err;

	for (;;) {
		err = preload(p, cores);
		if (err == 0 && weir_runtime_stopping(p->rt)) {
			preload_free(p, cores); /* Ctrl-C while loading */
			return 0;
		}
		if (err == 0)
			err = weir_runtime_start(p->rt, &ops, p);
		if (err == 0)
			wr_ckpt_job_restored(p);
		if (err == 0)
			err = weir_runtime_wait(p->rt);
		preload_free(p, cores);
		if (err == 0 || !wr_ckpt_job_pages_bad(p))
			return err;
		err = wr_ckpt_job_fall_back(p);
		if (err)
			return err;
	}
}

int weir_pipeline_run(struct weir_pipeline *p)
{
	struct weir_runtime_config rc;
	int err;

	if (p == NULL)
		return wr_error(-EINVAL, "pipeline is NULL");
	err = finish_graph(p);
	if (err)
		return err;
	rc = p->cfg.runtime;
	rc.record_size = p->slot_size;
	err = weir_runtime_create(&rc, &p->rt);
	if (err)
		return err;
	p->cfg.runtime.cores = weir_runtime_cores(p->rt);
	err = wr_ckpt_job_open(p);
	if (err)
		goto out;
	p->execs = calloc(rc.cores, sizeof(*p->execs));
	if (p->execs == NULL) {
		err = -ENOMEM;
		goto out;
	}
	p->run_cores = rc.cores;
	atomic_store_explicit(&p->cores_done, 0, memory_order_relaxed);
	err = run_workers(p, rc.cores);
out:
	wr_ckpt_job_close(p);
	free(p->execs);
	p->execs = NULL;
	weir_runtime_destroy(p->rt);
	p->rt = NULL;
	return err;
}

void weir_pipeline_metrics(struct weir_pipeline *p, struct weir_metrics *m)
{
	weir_tsc_calibrate(); /* the cores time backpressure with it */
	if (p != NULL && p->rt == NULL)
		p->metrics = m;
}

void weir_pipeline_stop_remote(struct weir_pipeline *p)
{
	atomic_store_explicit(&p->stop, 1, memory_order_relaxed);
}

bool weir_pipeline_stopped(const struct weir_pipeline *p)
{
	/* Pairs with the release increment in exec.c: the workers were
	 * joined, so relaxed would do; acquire keeps it obviously right. */
	return p != NULL && p->run_cores > 0 &&
	       atomic_load_explicit(&p->cores_done, memory_order_acquire) <
		       p->run_cores;
}
