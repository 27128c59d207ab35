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

/* The q-quantile (0 < q < 1) of a costless record's wait, in ns. */
double hiccup_bound_ns(const struct hiccup_report *r, double q);

void hiccup_free(struct hiccup_report *r);

#endif
