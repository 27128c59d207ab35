/*
 * apps/hiccup.c — the machine's own interruptions per CPU (hiccup.h).
 *
 * Each probe thread keeps its gaps in an array sized and touched before it
 * starts spinning (growing it, or a first touch, would itself take the CPU
 * away); gaps beyond it are still counted in away_ns, max_ns and the
 * over_* counts.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "weir/tsc.h"

#include "hiccup.h"

#define GAPS_PER_S 20000u	/* kept per CPU and second: 50 us apart */
#define GAPS_MAX (1u << 20)	/* kept per CPU at most: 24 MiB */

struct probe {
	pthread_t th;
	int cpu;
	unsigned idx;		/* in hiccup_report.cpus */
	uint64_t start, end;	/* TSC: the same for every probe */
	struct hiccup_gap *gaps;
	size_t cap, n;
	uint64_t away_ns, max_ns, over[3], dropped;
	int err;
};

static void note(struct probe *p, uint64_t at, uint64_t ns)
{
	p->away_ns += ns;
	p->max_ns = ns > p->max_ns ? ns : p->max_ns;
	p->over[0] += ns >= 10000;
	p->over[1] += ns >= 100000;
	p->over[2] += ns >= 1000000;
	if (p->n == p->cap) {
		p->dropped++;
		return;
	}
	p->gaps[p->n++] = (struct hiccup_gap){
		p->idx, (double)weir_tsc_ns(p->start, at) / 1e9, ns };
}

static void *probe_main(void *arg)
{
	struct probe *p = arg;
	uint64_t min = weir_tsc_from_ns(HICCUP_MIN_NS), prev, now;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(p->cpu, &set);
	p->err = -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (p->err)
		return NULL;
	while ((prev = weir_tsc_now()) < p->start)
		;
	/* Gaps are clipped to [start, end): a thread that ran late, or was
	 * away across the end (a CPU shared with a busy process), must not
	 * count more than the probed time (it once made away 101%). */
	if (prev - p->start >= min)
		note(p, p->start, weir_tsc_ns(p->start, prev));
	while (prev < p->end) {
		now = weir_tsc_now();
		if (now - prev >= min) {
			uint64_t to = now < p->end ? now : p->end;
			if (to - prev >= min)
				note(p, prev, weir_tsc_ns(prev, to));
			now = weir_tsc_now(); /* the note is not a gap */
		}
		prev = now;
	}
	return NULL;
}

static int launch(struct probe *pr, unsigned n, double seconds)
{
	/* Time for every thread to start and pin before the first read. */
	uint64_t start = weir_tsc_now() + weir_tsc_from_ns(20000000);
	unsigned i;
	int err = 0;

	for (i = 0; i < n && !err; i++) {
		pr[i].start = start;
		pr[i].end = start + weir_tsc_from_ns((uint64_t)(seconds * 1e9));
		err = -pthread_create(&pr[i].th, NULL, probe_main, &pr[i]);
	}
	for (unsigned k = 0; k < i - (err != 0); k++) {
		pthread_join(pr[k].th, NULL);
		err = err ? err : pr[k].err;
	}
	return err;
}

static int collect(struct probe *pr, unsigned n, struct hiccup_report *r)
{
	size_t total = 0;

	for (unsigned i = 0; i < n; i++)
		total += pr[i].n;
	r->gaps = malloc((total ? total : 1) * sizeof(*r->gaps));
	if (r->gaps == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		memcpy(r->gaps + r->ngaps, pr[i].gaps,
		       pr[i].n * sizeof(*r->gaps));
		r->ngaps += pr[i].n;
		r->away_ns += pr[i].away_ns;
		r->max_ns = pr[i].max_ns > r->max_ns ? pr[i].max_ns : r->max_ns;
		r->over_10us += pr[i].over[0];
		r->over_100us += pr[i].over[1];
		r->over_1ms += pr[i].over[2];
		r->dropped += pr[i].dropped;
	}
	return 0;
}

int hiccup_probe(const int *cpus, unsigned n, double seconds,
		 struct hiccup_report *r)
{
	size_t cap = (size_t)(seconds * GAPS_PER_S) + 64;
	struct probe *pr;
	int err = 0;

	memset(r, 0, sizeof(*r));
	cap = cap < GAPS_MAX ? cap : GAPS_MAX;
	if (n == 0 || n > sizeof(r->cpus) / sizeof(r->cpus[0]) || seconds <= 0)
		return -EINVAL;
	pr = calloc(n, sizeof(*pr));
	if (pr == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < n && !err; i++) {
		pr[i].cpu = r->cpus[i] = cpus[i];
		pr[i].idx = i;
		pr[i].cap = cap;
		pr[i].gaps = malloc(cap * sizeof(*pr[i].gaps));
		err = pr[i].gaps == NULL ? -ENOMEM : 0;
		/* Touched now: a first touch while spinning would be a gap
		 * of the probe's own (a page fault, on a VM a host one). */
		if (!err)
			memset(pr[i].gaps, 0, cap * sizeof(*pr[i].gaps));
	}
	r->ncpu = n, r->seconds = seconds;
	if (!err)
		err = launch(pr, n, seconds);
	if (!err)
		err = collect(pr, n, r);
	for (unsigned i = 0; i < n; i++)
		free(pr[i].gaps);
	free(pr);
	if (err)
		hiccup_free(r);
	return err;
}

/* The CPU time probed, in ns: what the shares below are shares of. */
static double probed_ns(const struct hiccup_report *r)
{
	return (double)r->ncpu * r->seconds * 1e9;
}

/* P(a costless record waits longer than x ns). */
static double tail(const struct hiccup_report *r, double x)
{
	double sum = 0;

	for (size_t i = 0; i < r->ngaps; i++)
		sum += (double)r->gaps[i].ns > x ? (double)r->gaps[i].ns - x : 0;
	return sum / probed_ns(r);
}

double hiccup_away(const struct hiccup_report *r)
{
	return (double)r->away_ns / probed_ns(r);
}

double hiccup_bound_ns(const struct hiccup_report *r, double q)
{
	double lo = 0, hi = (double)r->max_ns;

	if (r->ngaps == 0 || tail(r, 0) <= 1 - q)
		return 0;
	for (int i = 0; i < 64 && hi - lo > 1; i++) {
		double mid = (lo + hi) / 2;
		*(tail(r, mid) <= 1 - q ? &hi : &lo) = mid;
	}
	return hi;
}

double hiccup_bound_at_load_ns(const struct hiccup_report *r, double q,
			       double load)
{
	if (load >= 1)
		return (double)r->max_ns;	/* never drains: the worst */
	return hiccup_bound_ns(r, 1 - (1 - q) * (1 - (load > 0 ? load : 0)));
}

void hiccup_free(struct hiccup_report *r)
{
	free(r->gaps);
	r->gaps = NULL;
	r->ngaps = 0;
}
