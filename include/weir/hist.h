/*
 * weir/hist.h — a log-linear high-dynamic-range histogram of latencies in
 * nanoseconds (HdrHistogram's layout), written by one core and readable by
 * any thread while it is being written.
 *
 * PURPOSE
 *   Every core records end-to-end latencies into its own histogram; a
 *   reporter thread merges them into one and asks for percentiles, or
 *   writes the distribution in HdrHistogram's percentile text format
 *   (the ".hgrm" files HdrHistogram's plotters read).
 *
 * LAYOUT
 *   Values 0..255 ns have a bucket each.  Above, each power of two
 *   [2^k, 2^(k+1)) is cut into WEIR_HIST_SUB_BUCKETS = 128 equal buckets,
 *   so a bucket is at most 1/128 of its lower bound wide: every value the
 *   histogram reports is within 0.79% of a value that was recorded in its
 *   bucket (the issue asks for <= 1%).  The range is 0..WEIR_HIST_MAX_NS
 *   (100 s); larger values are counted at 100 s and in saturated().
 *   3968 counters, 31 KiB per histogram.
 *
 * INVARIANTS
 *   1. One writer: only the core that owns a histogram calls the _local
 *      functions on it.  Counters are updated with relaxed atomic load +
 *      store (no lock prefix: ~1 ns), so a reader on another thread sees
 *      each counter either before or after an update, never torn.
 *   2. A concurrent reader (the _remote functions) sees a set of counters
 *      each of which is a count the writer really had; totals derived from
 *      them are at most the writer's current total and never decrease
 *      between two reads.  Exact only once the writer has stopped.
 *   3. Percentiles are the highest value equivalent to the bucket that
 *      holds the p-th value (HdrHistogram's getValueAtPercentile), capped
 *      at the largest value recorded: never below the exact percentile,
 *      and at most 0.79% above it.
 */
#ifndef WEIR_HIST_H
#define WEIR_HIST_H

#include <stdio.h>

#include "weir/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEIR_HIST_SUB_BITS 7u
#define WEIR_HIST_SUB_BUCKETS (1u << WEIR_HIST_SUB_BITS)
#define WEIR_HIST_MAX_NS 100000000000ull /* 100 s */

struct weir_hist;

/* A zeroed histogram, from the calling thread's allocator. */
int weir_hist_create(struct weir_hist **out);
void weir_hist_destroy(struct weir_hist *h);

/* ---- writer (the owning core) ---- */

void weir_hist_record_local(struct weir_hist *h, uint64_t ns);
void weir_hist_record_n_local(struct weir_hist *h, uint64_t ns, uint64_t n);
/* Zero every counter.  Only while no reader runs (between runs). */
void weir_hist_reset_local(struct weir_hist *h);

/* ---- readers (any thread, also while the writer runs) ---- */

/* Add src's counts into dst.  dst must not be written by anyone else
 * meanwhile; src may be. */
void weir_hist_merge_remote(struct weir_hist *dst,
			    const struct weir_hist *src);
uint64_t weir_hist_count_remote(const struct weir_hist *h);
/* Values recorded above WEIR_HIST_MAX_NS (counted at WEIR_HIST_MAX_NS). */
uint64_t weir_hist_saturated_remote(const struct weir_hist *h);
uint64_t weir_hist_max_remote(const struct weir_hist *h);
/* Value at percentile p in [0, 100] (see invariant 3); 0 when empty. */
uint64_t weir_hist_percentile_remote(const struct weir_hist *h, double p);
/* Mean and standard deviation over bucket midpoints, in ns. */
double weir_hist_mean_remote(const struct weir_hist *h);
double weir_hist_stddev_remote(const struct weir_hist *h);

/*
 * HdrHistogram's percentile distribution text (outputPercentileDistribution
 * with 5 ticks per half distance): a header line "Value Percentile
 * TotalCount 1/(1-Percentile)", one line per percentile step, a last line
 * at percentile 1.0, and the "#[Mean ...", "#[Max ...", "#[Buckets ..."
 * footer.  Values are divided by unit_ns (1000 writes microseconds).
 * Returns 0, -EINVAL (unit_ns 0) or -EIO (write failed).
 */
int weir_hist_write_hgrm(const struct weir_hist *h, FILE *f, double unit_ns);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_HIST_H */
