/*
 * hist.c — the log-linear latency histogram of weir/hist.h.
 *
 * Index of a value v (ns):
 *   v < 256:  v itself (one bucket per nanosecond)
 *   else:     shift = msb(v) - 7 (>= 1), idx = shift * 128 + (v >> shift)
 * so [2^k, 2^(k+1)) for k >= 8 maps to 128 consecutive buckets of width
 * 2^(k-7), continuing where the previous power of two stopped.  100 s
 * (msb 36, shift 29) lands below 30 * 128 + 128 = 3968 = HIST_BUCKETS.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "weir/hist.h"

#define HIST_SHIFT_MAX 29u
#define HIST_BUCKETS ((HIST_SHIFT_MAX + 1) * WEIR_HIST_SUB_BUCKETS + \
		      WEIR_HIST_SUB_BUCKETS)
#define HGRM_TICKS_PER_HALF 5

struct weir_hist {
	/* Written by the owning core only (relaxed load + store); read by
	 * anyone with relaxed loads.  No ordering between counters is
	 * promised (hist.h invariant 2), so no fences pair with these. */
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t max;
	_Atomic uint64_t saturated;
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t counts[HIST_BUCKETS];
};

_Static_assert((HIST_SHIFT_MAX + 7) == 36 &&
	       (WEIR_HIST_MAX_NS >> 36) == 1,
	       "100 s must fall in the last power of two the layout holds");

static inline unsigned index_of(uint64_t v)
{
	unsigned shift;

	if (v < 2 * WEIR_HIST_SUB_BUCKETS)
		return (unsigned)v;
	shift = 63u - (unsigned)__builtin_clzll(v) - WEIR_HIST_SUB_BITS;
	return (shift << WEIR_HIST_SUB_BITS) + (unsigned)(v >> shift);
}

static uint64_t lowest_of(unsigned idx)
{
	unsigned shift;

	if (idx < 2 * WEIR_HIST_SUB_BUCKETS)
		return idx;
	shift = (idx >> WEIR_HIST_SUB_BITS) - 1;
	return (uint64_t)(idx - (shift << WEIR_HIST_SUB_BITS)) << shift;
}

static uint64_t highest_of(unsigned idx)
{
	unsigned shift = idx < 2 * WEIR_HIST_SUB_BUCKETS ?
			 0 : (idx >> WEIR_HIST_SUB_BITS) - 1;

	return lowest_of(idx) + ((uint64_t)1 << shift) - 1;
}

static inline uint64_t load(const _Atomic uint64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

/* Single-writer increment: no read-modify-write instruction needed. */
static inline void bump(_Atomic uint64_t *a, uint64_t n)
{
	atomic_store_explicit(a, load(a) + n, memory_order_relaxed);
}

int weir_hist_create(struct weir_hist **out)
{
	struct weir_hist *h = aligned_alloc(WEIR_CACHE_LINE, sizeof(*h));

	if (h == NULL)
		return -ENOMEM;
	memset(h, 0, sizeof(*h));
	*out = h;
	return 0;
}

void weir_hist_destroy(struct weir_hist *h)
{
	free(h);
}

void weir_hist_record_n_local(struct weir_hist *h, uint64_t ns, uint64_t n)
{
	if (WEIR_UNLIKELY(ns > WEIR_HIST_MAX_NS)) {
		bump(&h->saturated, n);
		ns = WEIR_HIST_MAX_NS;
	}
	bump(&h->counts[index_of(ns)], n);
	if (ns > load(&h->max))
		atomic_store_explicit(&h->max, ns, memory_order_relaxed);
}

void weir_hist_record_local(struct weir_hist *h, uint64_t ns)
{
	weir_hist_record_n_local(h, ns, 1);
}

void weir_hist_reset_local(struct weir_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void weir_hist_merge_remote(struct weir_hist *dst,
			    const struct weir_hist *src)
{
	uint64_t m = load(&src->max);

	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		uint64_t c = load(&src->counts[i]);

		if (c != 0)
			bump(&dst->counts[i], c);
	}
	bump(&dst->saturated, load(&src->saturated));
	if (m > load(&dst->max))
		atomic_store_explicit(&dst->max, m, memory_order_relaxed);
}

uint64_t weir_hist_count_remote(const struct weir_hist *h)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		n += load(&h->counts[i]);
	return n;
}

uint64_t weir_hist_saturated_remote(const struct weir_hist *h)
{
	return load(&h->saturated);
}

uint64_t weir_hist_max_remote(const struct weir_hist *h)
{
	return load(&h->max);
}

/* One consistent copy of the counters; returns their total. */
static uint64_t snapshot(const struct weir_hist *h, uint64_t *c)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		c[i] = load(&h->counts[i]);
		n += c[i];
	}
	return n;
}

/* Highest value equivalent to bucket idx, capped at the recorded max (a
 * concurrent writer may have raised a bucket before max: take the max). */
static uint64_t reported(unsigned idx, uint64_t max)
{
	uint64_t v = highest_of(idx);

	return v > max && max >= lowest_of(idx) ? max : v;
}

static uint64_t percentile_of(const uint64_t *c, uint64_t total,
			      uint64_t max, double p)
{
	uint64_t target, cum = 0;

	if (total == 0)
		return 0;
	p = p < 0 ? 0 : p > 100 ? 100 : p;
	target = (uint64_t)ceil(p / 100.0 * (double)total);
	if (target == 0)
		target = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		cum += c[i];
		if (cum >= target)
			return reported(i, max);
	}
	return max;
}

uint64_t weir_hist_percentile_remote(const struct weir_hist *h, double p)
{
	uint64_t *c = malloc(sizeof(uint64_t) * HIST_BUCKETS);
	uint64_t v, total;

	if (c == NULL)
		return 0;
	total = snapshot(h, c);
	v = percentile_of(c, total, load(&h->max), p);
	free(c);
	return v;
}

static double midpoint(unsigned idx)
{
	return ((double)lowest_of(idx) + (double)highest_of(idx)) / 2.0;
}

/* Mean and standard deviation over bucket midpoints. */
static void moments(const struct weir_hist *h, double *mean, double *sd)
{
	double n = 0, s = 0, s2 = 0, m;

	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		double c = (double)load(&h->counts[i]);

		n += c;
		s += c * midpoint(i);
	}
	m = n > 0 ? s / n : 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		double d = midpoint(i) - m;

		s2 += (double)load(&h->counts[i]) * d * d;
	}
	*mean = m;
	*sd = n > 0 ? sqrt(s2 / n) : 0;
}

double weir_hist_mean_remote(const struct weir_hist *h)
{
	double m, sd;

	moments(h, &m, &sd);
	return m;
}

double weir_hist_stddev_remote(const struct weir_hist *h)
{
	double m, sd;

	moments(h, &m, &sd);
	return sd;
}

/* HdrHistogram's PercentileIterator step: 5 ticks per half distance to
 * 100%, so the steps halve each time the remaining tail halves. */
static double next_level(double level)
{
	double halves = floor(log2(100.0 / (100.0 - level))) + 1;

	return level + 100.0 / (HGRM_TICKS_PER_HALF * pow(2, halves));
}

static void hgrm_lines(FILE *f, const uint64_t *c, uint64_t total,
		       uint64_t max, double unit)
{
	double level = 0;
	uint64_t cum = 0;
	unsigned last = 0;

	for (unsigned i = 0; i < HIST_BUCKETS && cum < total; i++) {
		if (c[i] == 0)
			continue;
		cum += c[i];
		last = i;
		while (100.0 * (double)cum / (double)total >= level) {
			fprintf(f, "%12.3f %2.12f %10llu %14.2f\n",
				(double)reported(i, max) / unit, level / 100.0,
				(unsigned long long)cum,
				1.0 / (1.0 - level / 100.0));
			level = next_level(level);
			if (cum == total)
				break;
		}
	}
	fprintf(f, "%12.3f %2.12f %10llu\n",
		(double)reported(last, max) / unit, 1.0,
		(unsigned long long)total);
}

int weir_hist_write_hgrm(const struct weir_hist *h, FILE *f, double unit_ns)
{
	uint64_t *c, total, max;
	double mean, sd;

	if (!(unit_ns > 0))
		return -EINVAL;
	c = malloc(sizeof(uint64_t) * HIST_BUCKETS);
	if (c == NULL)
		return -ENOMEM;
	max = load(&h->max);
	total = snapshot(h, c);
	moments(h, &mean, &sd);
	fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile",
		"TotalCount", "1/(1-Percentile)");
	if (total > 0)
		hgrm_lines(f, c, total, max, unit_ns);
	fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n",
		mean / unit_ns, sd / unit_ns);
	fprintf(f, "#[Max     = %12.3f, Total count    = %12llu]\n",
		(double)max / unit_ns, (unsigned long long)total);
	fprintf(f, "#[Buckets = %12u, SubBuckets     = %12u]\n",
		HIST_SHIFT_MAX + 1, 2 * WEIR_HIST_SUB_BUCKETS);
	free(c);
	return ferror(f) ? -EIO : 0;
}
