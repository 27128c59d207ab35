/*
 * core/window_internal.h — the window operator's build-time spec, shared by
 * window.c (weir_window(), session windows) and window_aligned.c (tumbling
 * and sliding windows, window-major).
 *
 * TWO LAYOUTS, as Flink has two window operators
 *   - Aligned windows (TUMBLING, SLIDING): a window's bounds do not depend
 *     on the key, so every key's part of window [s, e) lives in one table
 *     per window per core (WR_NODE_WINDOW, window_aligned.c): a record is
 *     one probe of that table, a firing is a scan of it and its end one
 *     arena free, with one firing per window per core instead of one timer
 *     per (key, window).
 *   - Merging windows (SESSION): bounds depend on each key's records, so
 *     they stay key-major: a keyed process function holding the key's
 *     windows in a map state, with per-key timers (window.c).
 */
#ifndef WR_CORE_WINDOW_INTERNAL_H
#define WR_CORE_WINDOW_INTERNAL_H

#include <stdalign.h>

#include "core/pipeline_internal.h"
#include "weir/window.h"

#define WR_WIN_ACC_MAX 1016u /* table value cap minus a stored end/flag */
/* Windows of one operator open at once on a core: size / slide (at most
 * WEIR_WINDOW_SLIDES_MAX) plus the watermark's lag over the slide.  live[]
 * starts at MIN and doubles; MAX is a sanity bound (a watermark that never
 * moves), ~176 bytes of checkpoint metadata a window. */
#define WR_WIN_OPEN_MIN 64u
#define WR_WIN_OPEN_MAX (1u << 20)

struct wr_win_spec {
	struct weir_window_spec spec;
	struct weir_aggregate_ops agg;
	struct weir_stream *node;
	struct weir_stream *side; /* late records, or NULL */
	struct {
		alignas(WEIR_CACHE_LINE) uint64_t n;
	} late[WEIR_CORES_MAX];   /* one line per core: no shared counter */
	char name[WR_NAME_MAX];
};

static inline int64_t wr_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The start of ts's pane [k * slide, (k + 1) * slide), cached in *lo: one
 * division per pane, not per record (records come in runs of a pane).
 * Unsigned: one compare for both bounds, and no overflow from *lo =
 * WEIR_TS_MIN. */
static inline int64_t wr_pane_start(int64_t *lo, int64_t slide, int64_t ts)
{
	if (WEIR_LIKELY((uint64_t)ts - (uint64_t)*lo < (uint64_t)slide))
		return *lo;
	*lo = wr_floor_div(ts, slide) * slide;
	return *lo;
}

#endif /* WR_CORE_WINDOW_INTERNAL_H */
