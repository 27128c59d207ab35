/*
 * core/pipeline_internal.h — the pipeline graph (built once, read-only while
 * running) and the per-core executor that runs an instance of it.
 *
 * GRAPH
 *   Nodes form a DAG; a node's output stream is the node itself
 *   (struct weir_stream).  A KEY_BY node ends a "stage": its records cross
 *   the ring mesh as envelopes tagged with the node's edge id, and its
 *   downstream nodes run on the receiving core.  All other edges are direct
 *   calls on the same core (Flink's operator chaining).
 *
 * ENVELOPE (one ring slot)
 *   struct wr_envelope header, then the record bytes.  The slot size of the
 *   mesh is the header plus the largest record crossing any KEY_BY edge.
 *
 * MARKERS
 *   marker.arg is the edge id; WEIR_MARKER_END on edge e from core i means
 *   core i will send nothing more on e.  A core ends edge e downstream when
 *   every source and every edge upstream of e has ended on it.
 *
 * BACKPRESSURE WITHOUT DEADLOCK
 *   Envelopes are staged per destination core in an out buffer of
 *   WR_OUTBUF_CAP slots.  Before it processes a batch of b records entering
 *   node x, a core checks that every out buffer has room for b * amp(x),
 *   amp(x) being the most envelopes one record entering x can produce; it
 *   shrinks b, or skips that input for this tick.  A core never waits
 *   inside processing, and the last stage needs no ring room, so the
 *   pipeline always drains.
 */
#ifndef WR_CORE_PIPELINE_INTERNAL_H
#define WR_CORE_PIPELINE_INTERNAL_H

#include "weir/pipeline.h"

#define WR_NODES_MAX 64u
#define WR_EDGES_MAX 16u
#define WR_FANOUT_MAX 8u
#define WR_NAME_MAX 32u
/* Records per source poll / ring drain.  64 rather than 32 halves each
 * record's share of a tick's fixed work: weir flows 645 against 669
 * instructions a packet (callgrind), 8.03 against 6.97 Mpps on 1 core and
 * 11.2 against 10.4 on 2 (bench/ab.sh, 5 and 3 pairs); the latency
 * benchmark's p99, steady and during checkpoints, unchanged within the
 * noise (4 pairs, bench/RESULTS.md). */
#define WR_BURST 64u
#define WR_OUTBUF_CAP 1024u    /* staged envelopes per destination core */

enum wr_node_kind {
	WR_NODE_SOURCE,
	WR_NODE_MAP,
	WR_NODE_FILTER,
	WR_NODE_FLAT_MAP,
	WR_NODE_KEY_BY,
	WR_NODE_PROCESS,
	WR_NODE_SINK,
	WR_NODE_SIDE,  /* a side output: passes on what its parent sends it */
	WR_NODE_WINDOW, /* tumbling/sliding window, window-major */
};

/* In wr_envelope.edge: the payload is a combiner's partial (combine.c). */
#define WR_ENV_PARTIAL 0x80000000u

struct wr_envelope {
	uint32_t edge;
	uint32_t key_group;
	int64_t ts;
	uint64_t hash;
	/* record bytes follow */
};

struct wr_exec;
struct weir_stream;
struct wr_ckpt_job;

/* How a sink node lives on a core; the callback sink has only write. */
struct wr_sink_ops {
	int (*open)(struct wr_exec *x, const struct weir_stream *n);
	int (*write)(struct wr_exec *x, const struct weir_stream *n,
		     const void *rec);
	/* Every input ended: make the output complete and durable. */
	int (*finish)(struct wr_exec *x, const struct weir_stream *n);
	void (*close)(struct wr_exec *x, const struct weir_stream *n);
	/* Checkpoints (optional): at the barrier, the output's length that
	 * the checkpoint commits (memory only: no I/O in the snapshot);
	 * synced(), called each flush tick, makes it durable without
	 * blocking: 1 once it is, 0 not yet, -errno on failure. */
	int (*barrier)(struct wr_exec *x, const struct weir_stream *n,
		       uint64_t *len);
	int (*synced)(struct wr_exec *x, const struct weir_stream *n);
	/* Optional, every loop tick on a core where open() left state: for
	 * work due by time (a file sink's flush of rows left waiting). */
	int (*tick)(struct wr_exec *x, const struct weir_stream *n);
};

struct weir_stream {
	enum wr_node_kind kind;
	unsigned id;
	char name[WR_NAME_MAX];
	uint32_t in_size;   /* record size entering the node (0 for sources) */
	uint32_t out_size;  /* record size of the node's output stream */
	uint32_t key_size;  /* > 0 when the output stream is keyed */
	uint32_t max_out;   /* most outputs per input */
	uint32_t amp;       /* most envelopes per input, to any one core */
	unsigned edge;      /* KEY_BY: its edge id */
	uint32_t partial_acc; /* KEY_BY that combines: a partial's accumulator
			       * bytes (padded to 8), else 0 */
	int stage_edge;     /* the KEY_BY edge this node runs behind, or -1 */
	bool event_time;      /* SOURCE: weir_watermarks() was called */
	int64_t ooo_ms;       /* SOURCE: bounded out-of-orderness */
	int64_t idle_ms;      /* SOURCE: idleness timeout, 0 = never idle */
	struct weir_stream *up;
	struct weir_stream *down[WR_FANOUT_MAX];
	unsigned ndown;
	struct weir_stream *side; /* side output (late records), or NULL */
	void *arg;
	union {
		struct weir_source_ops source;
		weir_map_fn map;
		weir_filter_fn filter;
		weir_flat_map_fn flat_map;
		weir_key_fn key_by;
		struct weir_process_spec process;
		weir_sink_fn sink;
	} fn;
	const struct wr_sink_ops *sink_ops; /* SINK nodes */
	struct weir_state_desc *states; /* PROCESS: owned copy */
	void *owned_arg; /* freed with the pipeline (built-in sources) */
};

struct weir_pipeline {
	struct weir_pipeline_config cfg;
	struct weir_stream *nodes[WR_NODES_MAX];
	unsigned nnodes;
	struct weir_stream *edges[WR_EDGES_MAX]; /* KEY_BY nodes by edge id */
	unsigned nedges;
	uint32_t slot_size;
	struct weir_runtime *rt;
	struct wr_exec **execs;  /* per core, built by the core itself */
	struct wr_arena **preload; /* per core: its checkpoint pages, loaded
				    * before the run (wr_exec_preload) */
	struct wr_ckpt_job *ck;  /* checkpoints, NULL when off */
	struct weir_metrics *metrics; /* weir_pipeline_metrics(), or NULL */
	_Atomic int stop;
	/* The last run: its cores, and how many finished their sinks (every
	 * input ended); fewer means it was stopped (weir_pipeline_stopped). */
	unsigned run_cores;
	_Atomic unsigned cores_done;
};

/* Append a node of `kind` reading stream `up` (NULL for sources). */
int wr_pipeline_add(struct weir_pipeline *p, struct weir_stream *up,
		    enum wr_node_kind kind, const char *name,
		    struct weir_stream **out);

/* The context user callbacks get on this core. */
struct weir_ctx *wr_exec_ctx(struct wr_exec *x);
/* Per-core slot a sink keeps its state in. */
void **wr_exec_sink_state(struct wr_exec *x, const struct weir_stream *n);
unsigned wr_exec_core(const struct wr_exec *x);
/* Processing time (CLOCK_MONOTONIC ms), read once per loop tick. */
int64_t wr_exec_now_ms(const struct wr_exec *x);
/* A sink opening on a restored run: 1 and the length its output had at
 * the checkpoint, 0 when not restoring, -errno (core/ckpt_meta.c). */
int wr_exec_restored_sink_len(struct wr_exec *x, const struct weir_stream *n,
			      uint64_t *len);

/* A key_by with no key function: every record goes to core 0. */
int wr_pipeline_global(struct weir_pipeline *p, struct weir_stream *in,
		       struct weir_stream **out);

/* weir_sink_file(), but spec->arg points to arg_size bytes that the sink
 * copies and owns (freed with the pipeline); format() gets the copy, so
 * it must not hold pointers into itself (core/format_sink.c). */
int wr_sink_file_copy_arg(struct weir_pipeline *p, struct weir_stream *in,
			  const struct weir_file_sink *spec, size_t arg_size);

/* Build, run and free one core's executor (core/exec.c). */
/* Restore, same core count: this core's arena with its checkpoint pages
 * into p->preload[core], on the core's own thread; -EBADMSG when a page
 * is bad (see weir_pipeline_run). */
int wr_exec_preload(struct weir_pipeline *p, struct weir_worker *w);
int wr_exec_create(struct weir_pipeline *p, struct weir_worker *w,
		   struct wr_exec **out);
int wr_exec_poll(struct wr_exec *x);
void wr_exec_destroy(struct wr_exec *x);

#endif /* WR_CORE_PIPELINE_INTERNAL_H */
