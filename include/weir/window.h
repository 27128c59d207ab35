/*
 * weir/window.h — event-time windows on keyed streams (Flink's
 * window(...).aggregate(...)): tumbling, sliding and session windows with
 * incremental aggregation, allowed lateness and late-record handling.
 *
 * SEMANTICS
 *   - Tumbling(size): [floor(ts/size)*size, +size).
 *   - Sliding(size, slide): every [k*slide, k*slide + size) containing ts;
 *     size must be a multiple of slide.
 *   - Session(gap): a record opens [ts, ts + gap); windows of one key that
 *     overlap merge (accumulators merged with agg->merge).
 *   - A window [start, end) fires when the watermark reaches end - 1: its
 *     accumulator goes through output() and the row is emitted.  With
 *     allowed lateness L, its state is kept until the watermark reaches
 *     end - 1 + L; a record arriving in that time updates the accumulator
 *     and fires the window again at once (an updated row, as in Flink).
 *   - A record whose every window is past end - 1 + L is late: it goes to
 *     the late stream when one was asked for, and is counted either way
 *     (weir_window_late_records()).
 *   - At end of input the final watermark fires every remaining window.
 *
 * INVARIANTS
 *   1. Window state lives in arena pages, so it is part of checkpoints:
 *      tumbling and sliding windows keep one table per open window per core
 *      and fire each window once per core, a bounded number of rows per
 *      loop tick; session windows keep a per-key map of windows and fire on
 *      event-time timers.  With agg->merge and no late stream, the records
 *      of a key_by into a tumbling or sliding window are pre-aggregated on
 *      the sending core (weir_pipeline_config.combine_entries); rows and
 *      late counts are the same either way.
 *   2. For a key and a window, rows are emitted in watermark order; the
 *      last row emitted for a window holds every on-time or allowed-late
 *      record of it.
 */
#ifndef WEIR_WINDOW_H
#define WEIR_WINDOW_H

#include "weir/pipeline.h"
#include "weir/state.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEIR_WINDOW_SLIDES_MAX 1024u /* windows one record may belong to */

enum weir_window_kind {
	WEIR_WINDOW_TUMBLING = 1,
	WEIR_WINDOW_SLIDING = 2,
	WEIR_WINDOW_SESSION = 3,
};

struct weir_window_spec {
	const char *name;
	enum weir_window_kind kind;
	int64_t size_ms;  /* TUMBLING, SLIDING: > 0 */
	int64_t slide_ms; /* SLIDING: > 0, divides size_ms */
	int64_t gap_ms;   /* SESSION: > 0 */
	int64_t allowed_lateness_ms; /* >= 0 */
	/* create, add and merge (merge needed by SESSION); acc_size > 0.
	 * agg->in_size is ignored: add() gets the stream's record. */
	const struct weir_aggregate_ops *agg;
	/* Build one output row of out_size bytes for a fired window. */
	void (*output)(const void *key, int64_t start_ms, int64_t end_ms,
		       const void *acc, void *out, void *arg);
	uint32_t out_size;
	void *arg;
};

/*
 * Window the keyed stream (from weir_key_by()).  *out receives the rows;
 * when late is not NULL, *late receives the late records unchanged.
 * -EINVAL names a bad size, slide, gap or lateness.
 */
int weir_window(struct weir_pipeline *p, struct weir_stream *keyed,
		const struct weir_window_spec *spec, struct weir_stream **out,
		struct weir_stream **late);

/* Late records dropped or sent to the late stream by the window operator
 * that produced `out`, over all cores; read after weir_pipeline_run(). */
uint64_t weir_window_late_records(const struct weir_stream *out);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_WINDOW_H */
