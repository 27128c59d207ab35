/*
 * core/exec_internal.h — the per-core executor's layout, shared by exec.c
 * (the loop), exec_setup.c (building it, the weir_ctx calls) and process.c
 * (keyed process functions).  Everything here is touched by one core only.
 */
#ifndef WR_CORE_EXEC_INTERNAL_H
#define WR_CORE_EXEC_INTERNAL_H

#include "core/pipeline_internal.h"
#include "core/ckpt.h"
#include "core/timers.h"
#include "state/arena.h"

struct wr_outbuf {
	uint32_t n;     /* staged envelopes, from head on (circular) */
	uint32_t head;  /* the oldest one, not yet in the ring */
	uint32_t cap;   /* WR_OUTBUF_CAP, more after a stall: a power of 2 */
	uint8_t *slots; /* cap slots */
};

struct wr_keyed_state; /* process.c */
struct wr_winop;       /* window_aligned.c */
struct wr_combiner;    /* combine.c */
struct wr_timer;

struct wr_node_rt {
	bool ended;             /* SOURCE: split exhausted */
	uint8_t *scratch;       /* MAP: output record */
	uint8_t *keys;          /* KEY_BY: WR_BURST keys (a source batch) */
	uint8_t *key;           /* KEY_BY: keys[0], one record's key */
	struct wr_keyed_state *ks; /* PROCESS: its named state */
	void *sink_state;       /* SINK: whatever its ops keep per core */
	int64_t max_ts;         /* SOURCE: largest event time seen (or
				 * vouched for by its clock) */
	int64_t active_ms;      /* SOURCE: processing time of its last record */
	int align_edge;         /* SOURCE: the edge it feeds (alignment), -1 */
	uint64_t held_tsc;      /* SOURCE: held for room since (TSC), 0 not */
	struct wr_timers *timers; /* PROCESS with on_timer */
	struct wr_winop *win;     /* WINDOW */
	struct wr_combiner *comb; /* KEY_BY into a window: combine.c */
};

struct wr_edge_rt {
	unsigned ends_received;  /* END markers from senders */
	bool end_from[WEIR_CORES_MAX];
	unsigned ends_sent;
	bool end_sent_to[WEIR_CORES_MAX];
	/* Receiving side: the watermark of this edge. */
	int64_t wm_from[WEIR_CORES_MAX];
	bool idle_from[WEIR_CORES_MAX];
	int64_t wm;          /* min over senders that are not idle */
	int64_t fired_upto;  /* event timers behind the edge fired up to here */
	/* Sending side. */
	int64_t wm_sent;
	bool idle_sent;
	int64_t sent_ms;
};

struct weir_ctx {
	struct wr_exec *x;
	const struct weir_stream *node; /* whose output weir_emit feeds */
	int64_t ts;
	const void *key;
	uint64_t hash;
	uint32_t key_group;
};

struct wr_exec {
	struct weir_pipeline *p;
	struct weir_worker *w;
	unsigned id;
	unsigned n;
	uint32_t slot;     /* ring slot size */
	uint32_t ring_amp; /* most envelopes one received envelope yields */
	uint32_t kg_shift; /* log2(key_groups) */
	uint32_t edge_amp[WR_EDGES_MAX]; /* envelopes one received one stages */
	uint8_t *pend;     /* per input ring: one envelope waiting for room */
	bool pend_full[WEIR_CORES_MAX];
	struct weir_ctx ctx;
	struct wr_outbuf *out;   /* per destination core */
	struct wr_node_rt *nodes; /* per graph node */
	struct wr_edge_rt *edges; /* per key_by edge */
	const struct weir_stream *sources[WR_NODES_MAX];
	unsigned nsources;
	const struct weir_stream *ticking[WR_NODES_MAX]; /* sinks with tick() */
	unsigned nticking;
	unsigned sources_live;
	struct wr_arena *arena; /* every state byte of this core */
	struct wr_kstate *evict_group; /* first state opened on this core */
	uint32_t ticks;
	uint32_t stalled;       /* ticks in a row with input held, no work */
	int64_t stalled_since_ms; /* now_ms at the first of them */
	int64_t now_ms;         /* processing time, read once per tick */
	uint8_t *inbuf;  /* WR_BURST slots (rings) or source records */
	int64_t *tsbuf;  /* WR_BURST source timestamps */
	bool finished;
	bool restore_pages; /* init: pages restored, operators from headers */
	bool preloaded;     /* the arena came with them (wr_exec_preload) */
	struct wr_exec_ckpt ck; /* checkpoints (core/ckpt.h) */
};

int wr_emit_down(struct wr_exec *x, const struct weir_stream *n,
		 const void *rec, int64_t ts);
/* The next envelope for core d, its header written; where its payload goes.
 * The caller checked the out buffer has room.  Inline: a call per staged
 * envelope (every combiner eviction, every row) cost ~8 instructions. */
static inline uint8_t *wr_exec_stage_slot(struct wr_exec *x, unsigned d,
					  uint32_t edge, uint32_t kg,
					  int64_t ts, uint64_t hash)
{
	struct wr_outbuf *o = &x->out[d];
	struct wr_envelope *env = (struct wr_envelope *)(o->slots +
		(size_t)((o->head + o->n) & (o->cap - 1)) * x->slot);

	env->edge = edge;
	env->key_group = kg;
	env->ts = ts;
	env->hash = hash;
	o->n++;
	return (uint8_t *)(env + 1);
}
/* A keyed record as it is, to the core owning its key group: 0, or
 * -EOVERFLOW when that out buffer is full. */
int wr_exec_stage_keyed(struct wr_exec *x, const struct weir_stream *kb,
			const void *rec, uint64_t hash, int64_t ts);
/* Envelopes every out buffer can take now. */
uint32_t wr_exec_outbuf_room(const struct wr_exec *x);

/* combine.c: pre-aggregation before a key_by into a window */
struct wr_win_spec;
const struct wr_win_spec *wr_comb_window(const struct weir_stream *kb);
/* Bytes of a partial's payload on edge kb, 0 if kb does not combine. */
uint32_t wr_comb_payload_size(const struct weir_stream *kb);
int wr_comb_create(struct wr_exec *x, const struct weir_stream *kb,
		   struct wr_combiner **out);
void wr_comb_destroy(struct wr_exec *x, struct wr_combiner *c);
/* 1 taken, 0 bypassed (the caller stages it as it is), -EOVERFLOW. */
int wr_comb_add(struct wr_exec *x, const struct weir_stream *kb,
		struct wr_combiner *c, const void *rec, const void *key,
		uint64_t hash, int64_t ts);
/* n <= WR_BURST keyed records of one source poll. */
struct wr_keyed_burst {
	const uint8_t *recs;  /* n records, rec_size apart */
	const uint8_t *keys;  /* their keys, key_size apart */
	const uint64_t *hash; /* their keys' hashes */
	const int64_t *ts;    /* their event times */
	uint32_t n, rec_size;
};
/* Every record added, or staged as it is while the cache is bypassed:
 * 0, or -EOVERFLOW. */
int wr_comb_add_burst(struct wr_exec *x, const struct weir_stream *kb,
		      struct wr_combiner *c, const struct wr_keyed_burst *b);
bool wr_comb_holds(const struct wr_combiner *c, int64_t upto);
bool wr_comb_flush(struct wr_exec *x, const struct weir_stream *kb,
		   struct wr_combiner *c, int64_t upto, uint32_t room);
/* Before a marker on key_by edge e covering event time upto (WEIR_TS_MAX:
 * a barrier or END): true once e's combiner holds nothing it covers;
 * otherwise sends what fits and the marker waits. */
bool wr_exec_comb_clear(struct wr_exec *x, unsigned e, int64_t upto);
/* Everything ended: flush what operators hold (exec_setup.c). */
int wr_exec_finish(struct wr_exec *x);

/* time.c: watermarks in and out, timers */
void wr_time_init(struct wr_exec *x);
void wr_time_marker(struct wr_exec *x, unsigned from,
		    const struct weir_marker *m);
/* Fires due timers and windows; while aligning only continues the window
 * firings already started (core/ckpt.h). */
int wr_time_fire(struct wr_exec *x, bool aligning);
void wr_time_send(struct wr_exec *x);
/* Watermark alignment: source s is too far ahead of the other cores'
 * (weir_pipeline_config.align_drift_ms) and must not be read now. */
bool wr_time_source_ahead(const struct wr_exec *x, const struct weir_stream *s);
/* Has everything upstream of key_by node kb ended on this core? */
bool wr_time_upstream_ended(const struct wr_exec *x,
			    const struct weir_stream *kb);

/* process.c */
int wr_process_timer(struct wr_exec *x, const struct weir_stream *n,
		     int domain, const struct wr_timer *t);
int wr_process_record(struct wr_exec *x, const struct weir_stream *n,
		      const void *rec);
int wr_process_open(struct wr_exec *x, const struct weir_stream *n,
		    struct wr_keyed_state **out);
void wr_process_close(struct wr_exec *x, struct wr_keyed_state *ks);
void wr_process_prefetch(struct wr_exec *x, const struct weir_stream *n,
			 uint64_t hash);
uint32_t wr_process_step(struct wr_exec *x, const struct weir_stream *n,
			 uint32_t budget);
struct wr_kstate_image;
struct wr_kstate;
int wr_process_load(struct wr_exec *x, const struct weir_stream *n,
		    const struct wr_kstate_image *img);
unsigned wr_process_nstates(const struct wr_exec *x,
			    const struct weir_stream *n);
unsigned wr_process_nstates_spec(const struct weir_stream *n);
struct wr_kstate *wr_process_state(const struct wr_exec *x,
				   const struct weir_stream *n, unsigned i);

/* window_aligned.c: tumbling and sliding windows (WR_NODE_WINDOW) */
int wr_winop_open(struct wr_exec *x, const struct weir_stream *n);
void wr_winop_close(struct wr_exec *x, const struct weir_stream *n);
/* A record for the window(s) of ts, its key and hash in x->ctx. */
int wr_winop_record(struct wr_exec *x, const struct weir_stream *n,
		    const void *rec, int64_t ts);
/* A combiner's partial of `records` records of pane `pane`, key in x->ctx. */
int wr_winop_merge(struct wr_exec *x, const struct weir_stream *n,
		   const void *acc, uint64_t records, int64_t pane);
void wr_winop_prefetch(struct wr_exec *x, const struct weir_stream *n,
		       int64_t ts, uint64_t hash);
/* Fires the windows due at watermark wm, at most budget rows; starts no
 * window unless start_new.  1 while a due window has rows left, 0, -errno. */
int wr_winop_fire(struct wr_exec *x, const struct weir_stream *n, int64_t wm,
		  uint32_t budget, bool start_new);
bool wr_winop_firing(const struct wr_exec *x, const struct weir_stream *n);
uint32_t wr_winop_step(struct wr_exec *x, const struct weir_stream *n,
		       uint32_t budget);
uint64_t wr_winop_keys(const struct wr_exec *x, const struct weir_stream *n);
bool wr_winop_is_valid(const struct wr_exec *x, const struct weir_stream *n);
size_t wr_winop_image_bytes_max(const struct wr_exec *x,
				const struct weir_stream *n);
size_t wr_winop_image_bytes(const struct wr_exec *x,
			    const struct weir_stream *n);
int wr_winop_save(const struct wr_exec *x, const struct weir_stream *n,
		  void *buf);
int wr_winop_load(struct wr_exec *x, const struct weir_stream *n,
		  const void *img, size_t len);
int wr_winop_adopt(struct wr_exec *x, const struct weir_stream *n,
		   struct wr_arena *old, const void *img, size_t len,
		   bool (*keep)(uint64_t, void *), void *arg);
/* Is a window behind key_by edge stage_edge (WR_ANY_STAGE: any) mid-firing
 * on this core?  (No barrier goes out downstream of it then.) */
#define WR_ANY_STAGE (-2)
bool wr_exec_firing(const struct wr_exec *x, int stage_edge);

/* ckpt_meta.c */
int wr_ckpt_load_op(struct wr_exec *x, const struct weir_stream *n);
int wr_ckpt_load_win(struct wr_exec *x, const struct weir_stream *n);
/* The metadata buffer grown to wr_ckpt_meta_bytes_max() (a window
 * operator's live[] grew); keeps what it holds.  Not in the pause. */
int wr_ckpt_meta_fit(struct wr_exec *x);

/* time.c: restoring from a checkpoint; `first` resets, later calls take
 * the lowest (rescaling: several old cores). */
void wr_time_restore_edge(struct wr_exec *x, unsigned e, int64_t wm,
			  int64_t fired_upto, bool first);
void wr_time_restore_node(struct wr_exec *x, unsigned i, int64_t max_ts,
			  int64_t active_ms, bool first);

#endif
