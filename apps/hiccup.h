/*
 * apps/hiccup.h — how often, and for how long, the machine takes a CPU
 * away from a thread that never yields (jHiccup's idea, per CPU).
 *
 * One thread pinned to each CPU reads the TSC in a loop for the given time
 * and keeps every gap of at least HICCUP_MIN_NS between two reads: an
 * interrupt, a kernel thread (DAMON's kdamond, RCU), a hypervisor that
 * descheduled the vCPU.  A pipeline pinned there loses the same moments.
 *
 * The bound: a record that costs nothing and arrives at a uniformly random
 * moment on one of the CPUs (records evenly split) waits out the rest of
 * the gap it lands in.  P(wait > x) = sum over gaps of max(0, L - x) /
 * (cpus x time).  hiccup_bound_ns(q) is the smallest x with P <= 1 - q:
 * no job pinned to these CPUs, however cheap, has a q-quantile below it
 * while the machine behaves as it did during the probe.
 */
#ifndef WEIR_APPS_HICCUP_H
#define WEIR_APPS_HICCUP_H

#include <stddef.h>
#include <stdint.h>

#define HICCUP_MIN_NS 2000u	/* shorter gaps: the loop's own jitter */

struct hiccup_gap {
	unsigned cpu;	/* index into hiccup_report.cpus */
	double at_s;	/* since the probe's start */
	uint64_t ns;
};

struct hiccup_report {
	unsigned ncpu;
	int cpus[128];
	double seconds;		/* per CPU */
	uint64_t away_ns;	/* sum of every gap, over the CPUs */
	uint64_t max_ns;
	uint64_t over_10us, over_100us, over_1ms;
	struct hiccup_gap *gaps; /* by CPU, then time */
	size_t ngaps;
	uint64_t dropped;	/* gaps counted above but not kept (full) */
};

/* Spin on each of cpus[0..n) for `seconds`.  0, or -errno (a CPU this
 * process may not run on: -EINVAL). */
int hiccup_probe(const int *cpus, unsigned n, double seconds,
		 struct hiccup_report *r);

/* The share (0..1) of cpus x time the CPUs were away. */
double hiccup_away(const struct hiccup_report *r);

/* The q-quantile (0 < q < 1) of a costless record's wait, in ns. */
double hiccup_bound_ns(const struct hiccup_report *r, double q);

/*
 * The same under load: records arrive at `load` (0 <= load < 1) times the
 * rate a CPU serves them at when it runs (its peak), first come first
 * served.  A gap of L leaves L x rate records queued, which drain at
 * (1 - load) x peak, so a record arriving t after the gap began waits
 * L - (1 - load) t, for t up to L / (1 - load): P(wait > x) = sum of
 * max(0, L - x) / ((1 - load) x cpus x time), the bound above at
 * q' = 1 - (1 - q)(1 - load).  At half of peak the tail doubles: p99 is
 * the idle bound's p99.5.  Holds for any engine whose catch-up rate is
 * its peak, while gaps are rarer than their drains are long.
 */
double hiccup_bound_at_load_ns(const struct hiccup_report *r, double q,
			       double load);

void hiccup_free(struct hiccup_report *r);

#endif
