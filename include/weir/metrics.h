/*
 * weir/metrics.h — per-core metrics and latency histograms, read while the
 * cores run: a JSON line every interval to a file, and a Prometheus text
 * endpoint on a loopback port.
 *
 * PURPOSE
 *   Each core owns one slot: counters and gauges (enum weir_metric) and two
 *   latency histograms, one for samples taken while a checkpoint is in
 *   progress on that core and one for the rest.  The data path only ever
 *   writes its own slot (one writer, relaxed stores, nothing shared); the
 *   JSON writer thread and libmicrohttpd's own thread read every slot.
 *   Neither ever runs on a worker core's loop.
 *
 * WHO WRITES WHAT
 *   - Sources, operators and sinks (the application's callbacks) add to
 *     RECORDS_IN/OUT, DROPS and MALFORMED with weir_metrics_add_local().
 *   - weir_metrics_sample_local(), called on a core, sets that core's
 *     gauges it can read without help: records queued in the rings into
 *     the core (RING_OCCUPANCY) and its state arena's bytes in use
 *     (STATE_BYTES).  Cheap (~N ring reads).  The engine calls it every
 *     ~64 loop ticks once weir_pipeline_metrics() gave it the metrics.
 *   - BACKPRESSURE_NS (each stretch a source was not polled for want of
 *     room in the out buffers), STATE_KEYS, CHECKPOINTS,
 *     CHECKPOINT_DURATION_NS, CHECKPOINT_BYTES and the per-core checkpoint
 *     flag are written by the engine itself, the same way.
 *
 *   - An application whose sources only publish totals (weir flows) may
 *     set a value the core itself never writes from one other thread
 *     (weir flows: the input's records_out and malformed on core 0).
 *
 * INVARIANTS
 *   1. One writer per value: weir_metrics_*_local(m, core, ...) from core
 *      `core`'s thread, or, for a value nothing on that core writes, from
 *      a single thread standing in for it (tests; see WHO WRITES WHAT).
 *   2. Counters never decrease; a reader sees each value whole (see
 *      weir/hist.h for the histograms' read guarantees).
 *   3. weir_metrics_create() binds the port before returning, so "port in
 *      use" is refused (-EADDRINUSE, with a message) before any job starts.
 *   4. The JSON file gets one line per interval and a last one at stop():
 *      {"t_ms":..,"cores":[{"core":0,"records_in":..,...},..],
 *       "latency_ns":{"count":..,"p50":..,"p99":..,"p999":..,"max":..}}
 */
#ifndef WEIR_METRICS_H
#define WEIR_METRICS_H

#include <stdbool.h>

#include "weir/hist.h"
#include "weir/pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

enum weir_metric {
	/* counters */
	WEIR_METRIC_RECORDS_IN = 0,  /* records taken by operators/sinks */
	WEIR_METRIC_RECORDS_OUT,     /* records produced by sources */
	WEIR_METRIC_BACKPRESSURE_NS, /* time a source was held back */
	WEIR_METRIC_DROPS,
	WEIR_METRIC_MALFORMED,
	WEIR_METRIC_CHECKPOINTS,     /* committed (core 0) */
	/* gauges */
	WEIR_METRIC_RING_OCCUPANCY,  /* records queued in rings into the core */
	WEIR_METRIC_STATE_BYTES,
	WEIR_METRIC_STATE_KEYS,      /* keys in keyed state */
	WEIR_METRIC_CHECKPOINT_DURATION_NS, /* last committed (core 0) */
	WEIR_METRIC_CHECKPOINT_BYTES,       /* last committed (core 0) */
	WEIR_METRIC_COUNT_
};

struct weir_metrics_config {
	unsigned cores;          /* 1..WEIR_CORES_MAX */
	const char *json_path;   /* JSON lines file, or NULL for none */
	uint32_t interval_ms;    /* JSON line period, > 0 (default 1000) */
	bool http;               /* serve Prometheus text on 127.0.0.1 */
	uint16_t http_port;      /* 0: any free port (see _http_port()) */
};

void weir_metrics_config_init(struct weir_metrics_config *cfg);

struct weir_metrics;

/* Allocate the slots, open the JSON file and bind the port (nothing runs
 * yet).  -EINVAL, -EADDRINUSE, -errno of open/bind, each with a message. */
int weir_metrics_create(const struct weir_metrics_config *cfg,
			struct weir_metrics **out);
/* Start the JSON writer thread and the HTTP daemon. */
int weir_metrics_start(struct weir_metrics *m);
/* Stop both (the JSON file gets its last line).  Idempotent. */
void weir_metrics_stop(struct weir_metrics *m);
void weir_metrics_destroy(struct weir_metrics *m);
/* The bound port (useful with http_port 0), or 0 without HTTP. */
uint16_t weir_metrics_http_port(const struct weir_metrics *m);

/* ---- data path (core `core` only) ---- */

void weir_metrics_add_local(struct weir_metrics *m, unsigned core,
			    enum weir_metric k, uint64_t n);
void weir_metrics_set_local(struct weir_metrics *m, unsigned core,
			    enum weir_metric k, uint64_t v);
/* One latency sample: into the checkpoint histogram while the core's
 * checkpoint flag is set, else into the steady one. */
void weir_metrics_latency_local(struct weir_metrics *m, unsigned core,
				uint64_t ns);
/* Set/clear "a checkpoint is in progress on this core" (checkpoint work). */
void weir_metrics_checkpoint_local(struct weir_metrics *m, unsigned core,
				   bool active);
/* Refresh the gauges of the calling core (see WHO WRITES WHAT). */
void weir_metrics_sample_local(struct weir_metrics *m, struct weir_ctx *c);

/*
 * Let the engine write what only it knows into m while p runs: per core,
 * the checkpoint flag (set from the cut to the core's report, so latency
 * samples taken meanwhile land in the checkpoint histogram),
 * BACKPRESSURE_NS, and STATE_KEYS, RING_OCCUPANCY and STATE_BYTES (every
 * ~64 loop ticks); on core 0, CHECKPOINTS (committed),
 * CHECKPOINT_DURATION_NS and CHECKPOINT_BYTES of the last one.  Before
 * weir_pipeline_run(); m must outlive the run and have >= its cores.
 */
void weir_pipeline_metrics(struct weir_pipeline *p, struct weir_metrics *m);

/* ---- readers (any thread) ---- */

uint64_t weir_metrics_get_remote(const struct weir_metrics *m, unsigned core,
				 enum weir_metric k);
const char *weir_metrics_name(enum weir_metric k);
/* Add every core's latency histogram (checkpoint: the during-checkpoint
 * one, else the steady one) into dst. */
void weir_metrics_latency_merge_remote(const struct weir_metrics *m,
				       bool checkpoint, struct weir_hist *dst);
/* The Prometheus text exposition (version 0.0.4) into a malloc'd string
 * (the caller frees it).  -ENOMEM. */
int weir_metrics_prometheus_remote(const struct weir_metrics *m, char **out,
				   size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_METRICS_H */
