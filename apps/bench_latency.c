/*
 * bench_latency.c — `weir bench latency`: weir as an open-loop latency
 * benchmark.
 *
 *   open-loop source (flow observations of the built-in generator, record
 *   i of a core due at t_i = start + i / rate_per_core, stamped with t_i)
 *     flows: -> watermarks -> key_by 5-tuple -> 1 s tumbling window
 *            {packets, bytes} (the operators of `weir flows`); the
 *            window's add() records now - t_i for every sampled record
 *     floor: -> callback sink on the same core records now - t_i (no
 *            key_by, no state: the "empty pipeline")
 *
 * Coordinated omission: the source never waits for the pipeline.  When
 * the pipeline falls behind, records leave late, and their latency still
 * counts from t_i, so a stall shows up in every record it delayed, not
 * just one (Gil Tene's wrk2 / HdrHistogram argument).
 *
 * Latency is sampled: 1 record in --sample N is stamped (0 = unstamped);
 * samples whose t_i falls in the warm-up (the first fifth of the run, at
 * most 1 s) are not recorded.  Results: per-core histograms in
 * weir_metrics, merged after the run.
 *
 * With --checkpoint-interval the flows runs checkpoint (fresh directory
 * per run); the engine flags each core from its cut to its report, so
 * weir_metrics keeps samples taken meanwhile apart (latency-checkpoint.hgrm).
 * The timeline (timeline.tsv/.png) is per-window percentiles, windows
 * by due time, kept by each core in its own histograms; a sampler thread
 * polls weir_pipeline_checkpoint_stats() every few ms and notes when each
 * checkpoint committed and how long it took (checkpoints.tsv, marked on
 * the plot).
 */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apps/cli.h"
#include "apps/hiccup.h"
#include "weir/checkpoint.h"
#include "weir/flows.h"
#include "weir/metrics.h"
#include "weir/runtime.h"
#include "weir/tsc.h"
#include "weir/window.h"

#define SWEEP_MAX 32u
/* 1 record in 8 stamped: stamping costs an rdtsc (25 ns on the Sapphire
 * Rapids VM of bench/RESULTS.md, 7 on the EPYC one) and two histogram
 * updates on the window's core; at every record that was 13-22% of the
 * flows job's peak there, at 1 in 8 2.5-3.5% (median of 9 pairs' ratios;
 * single pairs scatter by +-10% on that VM), within the 5% budget.  At
 * half of peak (~3.8-6 M records/s) a 10 s run still has 4-6 M samples:
 * p99.99 from ~400-600 of them. */
#define SAMPLE_DEFAULT 8u
#define PREFAULT_MB_DEFAULT 64u /* --state-prefault */
#define HICCUP_S_DEFAULT 2u     /* --hiccups */
/* --settle: a guest with free page reporting (virtio-balloon) reports
 * memory freed 2 s before to the host, which takes it back and stops
 * every vCPU for ~10 ms meanwhile (bench/RESULTS.md, 2026-12-07 "10-20 ms
 * stalls"): after a run has freed its state, wait that out before the
 * next measured one. */
#define SETTLE_S_DEFAULT 3u
#define OUT_DIR_MAX 512u        /* --out */
#define START_DELAY_NS 50000000ull /* workers launch before t_0 */
#define WARMUP_MAX_NS 1000000000ull
#define TL_WIN_NS 100000000ull     /* timeline window: 100 ms (or wider) */
#define TL_HISTS_MAX 1024u         /* windows x cores (31 KiB each) */
#define MARKS_MAX 4096u            /* checkpoints noted per run */
#define SAMPLER_NAP_NS 5000000L    /* checkpoint stats polled every 5 ms */

struct bench_opts {
	uint64_t rate, duration_s, sample, repeat, flows, ckpt_ms;
	uint64_t prefault_mb; /* --state-prefault */
	uint64_t hiccup_s;    /* --hiccups: 0 = no probe */
	uint64_t settle_s;    /* --settle */
	unsigned cores;
	const char *out_dir, *json_path, *ckpt_dir;
	uint64_t rates[SWEEP_MAX];
	unsigned nrates;
	bool peak, no_floor, http, changelog_on;
	uint16_t port;
};

struct lat_rec {
	struct weir_flow_obs obs;
	uint64_t intended_tsc; /* 0: not sampled */
};

struct src_core {
	alignas(WEIR_CACHE_LINE) uint64_t made, total;
	uint64_t next_stamp;	/* index of the next record to stamp */
	bool stamping;		/* this burst's records may be stamped */
	uint64_t phase_made[2];	/* after warm-up, by phase (--peak) */
};

enum run_kind { RUN_FLOWS, RUN_FLOOR };

/* Per-window latency, windows by due time: h[core * nwin + w], each
 * written only by its core. */
struct timeline {
	struct weir_hist **h;
	unsigned nwin, cores;
	uint64_t win_ns, win_ticks;
};

/* A committed checkpoint as the sampler saw it, in s since start. */
struct ckpt_mark {
	double start_s, end_s;
	uint64_t bytes;
};

struct sampler {
	pthread_t th;
	_Atomic bool stop;
	const struct weir_pipeline *p;
	uint64_t start_tsc, seen;
	struct ckpt_mark marks[MARKS_MAX];
	unsigned n;
};

struct run {
	const struct bench_opts *o;
	enum run_kind kind;
	uint64_t rate;          /* records/s, all cores; 0 = unpaced */
	bool sampling;
	unsigned cores;
	struct weir_flowgen *gen;
	struct weir_metrics *m;
	uint64_t start_tsc, warm_tsc, end_tsc; /* end: unpaced runs only */
	uint64_t phase_ticks;   /* > 0: sampling on in even phases only */
	double ticks_per_rec;   /* per core */
	struct src_core sc[WEIR_CORES_MAX];
	struct timeline tl;     /* h NULL: no timeline */
	bool ckpt;              /* checkpoints on in this run */
	char ckpt_dir[4096];
	struct sampler *smp;
	/* results */
	uint64_t records;
	double elapsed_s;
	double cpu_share;       /* CPU time got / (elapsed x cores): noise */
	struct weir_hist *h, *h_ckpt;
	struct weir_checkpoint_stats ck;
};

struct flow_acc {
	uint64_t packets, bytes;
};

static __thread unsigned tl_core;

static const char bench_usage[] =
	"usage: weir bench latency --rate PPS --duration S [--cores N]\n"
	"                          [--sweep R1,R2,...] [--peak] [--out DIR]\n"
	"                          [--sample N] [--repeat N] [--no-floor]\n"
	"                          [--metrics-port P] [--metrics-json FILE]\n"
	"                          [--checkpoint-interval MS] [--checkpoint-dir D]\n"
	"                          [--changelog on|off] [--state-prefault MB]\n"
	"                          [--hiccups S] [--settle S]\n"
	"\n"
	"Open-loop latency benchmark of the flows job (key_by 5-tuple, 1 s\n"
	"tumbling window).  Record i is due at start + i/rate and its latency\n"
	"counts from then (free of coordinated omission).  Prints p50, p90,\n"
	"p99, p99.9, p99.99, max and the achieved throughput, for the flows\n"
	"job and for the empty pipeline (source -> sink, same rate) as floor.\n"
	"\n"
	"  --rate PPS        offered load, records/s over all cores\n"
	"  --duration S      seconds of load per run, > 0 (default 5)\n"
	"  --cores N         worker cores (default: every usable CPU)\n"
	"  --sweep R1,R2,..  one run per rate; DIR/sweep.tsv, DIR/sweep.png\n"
	"  --peak            measure peak throughput (unpaced runs that turn\n"
	"                    sampling on and off every 50 ms: the sampling\n"
	"                    overhead), then run at half of it unless --rate\n"
	"                    is given\n"
	"  --out DIR         output directory (default latency-out): latency.hgrm,\n"
	"                    floor.hgrm (HdrHistogram text), latency.png (gnuplot),\n"
	"                    timeline.tsv/.png (p50/p99/max per 100 ms window)\n"
	"  --sample N        stamp 1 record in N (default 8; 1 stamps every\n"
	"                    record: 13-22% of peak throughput on a VM whose\n"
	"                    rdtsc costs 25 ns, against 2.5-3.5% at 8)\n"
	"  --repeat N        --peak: runs, medians (default 3)\n"
	"  --no-floor        skip the empty-pipeline run\n"
	"  --metrics-port P  Prometheus text on 127.0.0.1:P/metrics while running\n"
	"  --metrics-json F  a JSON line of per-core metrics every second to F\n"
	"  --checkpoint-interval MS  checkpoint the flows job every MS ms;\n"
	"                    latency while a core checkpoints (cut to report) is\n"
	"                    printed apart (\"ckpt\" line, latency-checkpoint.hgrm,\n"
	"                    phase=\"checkpoint\" on the endpoint); checkpoints are\n"
	"                    marked on timeline.png and listed in checkpoints.tsv\n"
	"  --checkpoint-dir D  where the checkpoints go: a fresh run-XXXXXX\n"
	"                    directory in D per run, kept (default: one in --out,\n"
	"                    removed after the run)\n"
	"  --changelog on|off  changelog checkpoints between page snapshots\n"
	"                    (default off, as `weir flows`)\n"
	"  --state-prefault MB  state memory mapped per core before the first\n"
	"                    record (default 64: the job's ~25 MB of windows at\n"
	"                    100 k flows fit; 0 leaves the first write to each\n"
	"                    2 MiB huge page to fault inside the window's growth)\n"
	"  --hiccups S       before the measured runs (after --peak's), spin S s\n"
	"                    on each worker CPU and report the gaps the machine\n"
	"                    takes (interrupts, kernel threads, the hypervisor):\n"
	"                    \"hiccup\" line, DIR/hiccups.tsv and hiccups.png;\n"
	"                    bound_pX is the X-th percentile a record costing\n"
	"                    nothing would have from those gaps alone\n"
	"                    (default 2; 0 skips);\n"
	"                    with --peak, \"hiccup_load\" lines give the bounds\n"
	"                    at each rate's share of the peak (a gap's backlog\n"
	"                    drains at peak - rate: at half of peak, twice the\n"
	"                    tail)\n"
	"  --settle S        before each measured run that follows another run,\n"
	"                    wait S s (default 3; 0 skips, max 60): on a VM with\n"
	"                    free page reporting the host takes back the memory\n"
	"                    an ended run freed ~2 s later, stopping every vCPU\n"
	"                    for ~10 ms, which would land in the next run\n"
	"\n"
	"Exit status: 0 done, 1 a run failed, 2 bad options.\n";

/* ---- the open-loop source ---- */

static int src_open(struct weir_ctx *c, unsigned split, unsigned splits,
		    void *arg)
{
	struct run *r = arg;
	struct src_core *s = &r->sc[split];
	uint64_t per = r->rate * r->o->duration_s;

	(void)c;
	tl_core = split;
	memset(s, 0, sizeof(*s));
	s->total = r->rate ? per / splits + (split < per % splits) : UINT64_MAX;
	return 0;
}

/* Records due by `now` that are not made yet, at most max. */
static unsigned due(const struct run *r, const struct src_core *s,
		    uint64_t now, unsigned max)
{
	uint64_t n;

	if (now < r->start_tsc)
		return 0;
	if (r->rate == 0)
		return max;
	n = (uint64_t)((double)(now - r->start_tsc) / r->ticks_per_rec) + 1;
	n = n > s->total ? s->total : n;
	return n - s->made > max ? max : (unsigned)(n - s->made);
}

/* Record i of this core; 1 in --sample stamped with its intended time
 * (a compare per record: the modulo it replaced was a 64-bit divide on
 * every record, stamped or not). */
static void make(const struct run *r, struct src_core *s, uint64_t i,
		 unsigned core, uint64_t now, struct lat_rec *rec, int64_t *ts)
{
	weir_flowgen_packet(r->gen, i * r->cores + core, &rec->obs, ts);
	rec->intended_tsc = 0;
	if (i != s->next_stamp)
		return;
	s->next_stamp += r->o->sample;
	if (!s->stamping)
		return;
	uint64_t t = r->rate ? r->start_tsc +
		     (uint64_t)((double)i * r->ticks_per_rec) : now;
	rec->intended_tsc = t >= r->warm_tsc ? t : 0;
}

/* Records out; backpressure, ring occupancy and state bytes are the
 * engine's (weir_pipeline_metrics). */
static void account(struct run *r, struct weir_ctx *c, unsigned n)
{
	weir_metrics_add_local(r->m, weir_ctx_core(c), WEIR_METRIC_RECORDS_OUT,
			       n);
}

static int src_next(struct weir_ctx *c, void *recs, int64_t *ts,
		    unsigned max, void *arg)
{
	struct run *r = arg;
	unsigned core = weir_ctx_core(c), n;
	struct src_core *s = &r->sc[core];
	struct lat_rec *out = recs;
	uint64_t now = weir_tsc_now();

	if (s->made >= s->total || (r->rate == 0 && now >= r->end_tsc))
		return WEIR_SOURCE_END;
	n = due(r, s, now, max);
	s->stamping = r->sampling;
	if (r->phase_ticks && now >= r->warm_tsc) {
		unsigned ph = (unsigned)((now - r->warm_tsc) / r->phase_ticks) & 1;
		s->phase_made[ph] += n;
		s->stamping = ph == 0;
	}
	for (unsigned k = 0; k < n; k++)
		make(r, s, s->made + k, core, now, &out[k], &ts[k]);
	s->made += n;
	account(r, c, n);
	return (int)n;
}

/* Checkpoint position: the records the split made.  Never restored (each
 * run checkpoints into a fresh directory); it makes the cut do what a
 * replayable source's does. */
static int src_position(struct weir_ctx *c, void *pos, size_t cap, void *arg)
{
	const struct run *r = arg;

	if (cap < sizeof(uint64_t))
		return -ENOSPC;
	memcpy(pos, &r->sc[weir_ctx_core(c)].made, sizeof(uint64_t));
	return (int)sizeof(uint64_t);
}

/* ---- where latency is recorded ---- */

static inline void timeline_record(struct run *r, unsigned core,
				   uint64_t stamp, uint64_t ns)
{
	uint64_t w = (stamp - r->start_tsc) / r->tl.win_ticks;

	if (w < r->tl.nwin)
		weir_hist_record_local(r->tl.h[core * r->tl.nwin + w], ns);
}

/* count: records_in is ours to add (the floor's sink); a window counts
 * what it takes itself. */
static inline void arrived(struct run *r, unsigned core, uint64_t stamp,
			   bool count)
{
	uint64_t ns;

	if (count)
		weir_metrics_add_local(r->m, core, WEIR_METRIC_RECORDS_IN, 1);
	if (stamp == 0)
		return;
	ns = weir_tsc_ns(stamp, weir_tsc_now());
	weir_metrics_latency_local(r->m, core, ns);
	if (r->tl.h != NULL)
		timeline_record(r, core, stamp, ns);
}

static int floor_sink(struct weir_ctx *c, const void *rec, void *arg)
{
	arrived(arg, weir_ctx_core(c), ((const struct lat_rec *)rec)->intended_tsc,
		true);
	return 0;
}

static void acc_create(void *acc, void *arg)
{
	(void)arg;
	memset(acc, 0, sizeof(struct flow_acc));
}

/* The window's add() runs on the core owning the flow (tl_core: set when
 * that core opened its source split). */
static void acc_add(void *acc, const void *in, void *arg)
{
	const struct lat_rec *rec = in;
	struct flow_acc *a = acc;

	a->packets++;
	a->bytes += rec->obs.ip_bytes;
	arrived(arg, tl_core, rec->intended_tsc, false);
}

static void acc_merge(void *acc, const void *other, void *arg)
{
	struct flow_acc *a = acc;
	const struct flow_acc *b = other;

	(void)arg;
	a->packets += b->packets;
	a->bytes += b->bytes;
}

static void to_row(const void *key, int64_t start, int64_t end,
		   const void *acc, void *out, void *arg)
{
	(void)key, (void)start, (void)end, (void)arg;
	memcpy(out, acc, sizeof(struct flow_acc));
}

static int row_sink(struct weir_ctx *c, const void *rec, void *arg)
{
	(void)c, (void)rec, (void)arg;
	return 0;
}

static void key_of(const void *rec, void *key, void *arg)
{
	(void)arg;
	memcpy(key, &((const struct lat_rec *)rec)->obs.key,
	       sizeof(struct weir_flow_key));
}

/* ---- one run ---- */

static int build_flows(struct weir_pipeline *p, struct run *r,
		       struct weir_stream *src)
{
	static const struct weir_aggregate_ops agg = {
		.create = acc_create, .add = acc_add, .merge = acc_merge,
		.acc_size = sizeof(struct flow_acc) };
	struct weir_window_spec win = {
		.name = "flows", .kind = WEIR_WINDOW_TUMBLING, .size_ms = 1000,
		.agg = &agg, .output = to_row,
		.out_size = sizeof(struct flow_acc), .arg = r };
	struct weir_stream *keyed, *rows;
	int err;

	err = weir_watermarks(p, src, 1000, 0);
	if (!err)
		err = weir_key_by(p, src, key_of, sizeof(struct weir_flow_key),
				  NULL, &keyed);
	if (!err)
		err = weir_window(p, keyed, &win, &rows, NULL);
	if (!err)
		err = weir_sink_callback(p, rows, row_sink, r);
	return err;
}

static int build(struct weir_pipeline *p, struct run *r)
{
	static const struct weir_source_ops ops = {
		.open = src_open, .next = src_next, .position = src_position };
	struct weir_stream *src;
	int err = weir_source(p, "open-loop", &ops, sizeof(struct lat_rec),
			      r, &src);

	if (err)
		return err;
	if (r->kind == RUN_FLOOR)
		return weir_sink_callback(p, src, floor_sink, r);
	return build_flows(p, r, src);
}

static int make_metrics(struct run *r, bool exported)
{
	struct weir_metrics_config mc;
	int err;

	weir_metrics_config_init(&mc);
	mc.cores = r->cores;
	if (exported) {
		mc.json_path = r->o->json_path;
		mc.http = r->o->http;
		mc.http_port = r->o->port;
	}
	err = weir_metrics_create(&mc, &r->m);
	if (!err)
		err = weir_metrics_start(r->m);
	return err;
}

static void schedule(struct run *r)
{
	double hz = weir_tsc_hz();
	uint64_t warm = r->o->duration_s * 1000000000ull / 5;

	r->ticks_per_rec = r->rate ? hz * r->cores / (double)r->rate : 0;
	r->start_tsc = weir_tsc_now() + weir_tsc_from_ns(START_DELAY_NS);
	r->warm_tsc = r->start_tsc + weir_tsc_from_ns(
		warm < WARMUP_MAX_NS ? warm : WARMUP_MAX_NS);
	r->end_tsc = r->start_tsc +
		     weir_tsc_from_ns(r->o->duration_s * 1000000000ull);
}

static int collect(struct run *r)
{
	int err = weir_hist_create(&r->h);

	if (!err)
		err = weir_hist_create(&r->h_ckpt);
	if (err)
		return err;
	weir_metrics_latency_merge_remote(r->m, false, r->h);
	weir_metrics_latency_merge_remote(r->m, true, r->h_ckpt);
	for (unsigned i = 0; i < r->cores; i++)
		r->records += weir_metrics_get_remote(r->m, i,
						      WEIR_METRIC_RECORDS_OUT);
	return 0;
}

static double cpu_s(void)
{
	struct rusage u;

	getrusage(RUSAGE_SELF, &u);
	return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 +
	       (double)u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

/* Busy-polling workers use a whole CPU each; anything less is time other
 * processes took from them, i.e. preemption in the latency figures. */
static void measure_share(struct run *r, double cpu0)
{
	r->cpu_share = (cpu_s() - cpu0) / (r->elapsed_s * r->cores);
}

/* ---- timeline and checkpoint marks ---- */

/* 100 ms windows, wider when the run would need more than TL_HISTS_MAX
 * histograms over all cores. */
static int timeline_init(struct timeline *t, unsigned cores,
			 uint64_t duration_ns)
{
	uint64_t max_win = TL_HISTS_MAX / cores;

	t->win_ns = TL_WIN_NS;
	while (duration_ns / t->win_ns + 1 > max_win)
		t->win_ns += TL_WIN_NS;
	t->nwin = (unsigned)(duration_ns / t->win_ns + 1);
	t->cores = cores;
	t->win_ticks = weir_tsc_from_ns(t->win_ns);
	t->h = calloc((size_t)cores * t->nwin, sizeof(*t->h));
	if (t->h == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < cores * t->nwin; i++)
		if (weir_hist_create(&t->h[i]) != 0)
			return -ENOMEM;
	return 0;
}

static void timeline_free(struct timeline *t)
{
	for (unsigned i = 0; t->h != NULL && i < t->cores * t->nwin; i++)
		weir_hist_destroy(t->h[i]);
	free(t->h);
	t->h = NULL;
}

/* A newly committed checkpoint: it ended about now and lasted
 * last_duration_us. */
static void sampler_poll(struct sampler *s)
{
	struct weir_checkpoint_stats st;
	double end;

	weir_pipeline_checkpoint_stats(s->p, &st);
	if (st.completed == s->seen || s->n == MARKS_MAX)
		return;
	s->seen = st.completed;
	end = ((double)weir_tsc_now() - (double)s->start_tsc) / weir_tsc_hz();
	s->marks[s->n++] = (struct ckpt_mark){
		end - (double)st.last_duration_us / 1e6, end, st.last_bytes };
}

static void *sampler_main(void *arg)
{
	struct sampler *s = arg;
	struct timespec nap = { 0, SAMPLER_NAP_NS };

	while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
		nanosleep(&nap, NULL);
		sampler_poll(s);
	}
	sampler_poll(s);
	return NULL;
}

static int sampler_start(struct run *r, const struct weir_pipeline *p)
{
	struct sampler *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	s->p = p;
	s->start_tsc = r->start_tsc;
	if (pthread_create(&s->th, NULL, sampler_main, s) != 0) {
		free(s);
		fprintf(stderr, "weir: bench latency: no sampler thread\n");
		return -EAGAIN;
	}
	r->smp = s;
	return 0;
}

static void sampler_stop(struct run *r)
{
	if (r->smp == NULL)
		return;
	atomic_store_explicit(&r->smp->stop, true, memory_order_relaxed);
	pthread_join(r->smp->th, NULL);
}

/* ---- one run ---- */

/* Checkpoints into a fresh directory: never a restore from an old run. */
static int ckpt_setup(struct run *r, struct weir_pipeline *p)
{
	const struct bench_opts *o = r->o;
	struct weir_checkpoint_config cc;

	snprintf(r->ckpt_dir, sizeof(r->ckpt_dir), "%s/%s-XXXXXX",
		 o->ckpt_dir ? o->ckpt_dir : o->out_dir,
		 o->ckpt_dir ? "run" : "ckpt");
	if (mkdtemp(r->ckpt_dir) == NULL) {
		int err = -errno;

		fprintf(stderr, "weir: bench latency: cannot create %s: %s\n",
			r->ckpt_dir, strerror(errno));
		r->ckpt_dir[0] = '\0';
		return err;
	}
	weir_checkpoint_config_init(&cc, r->ckpt_dir);
	cc.interval_ms = (uint32_t)o->ckpt_ms;
	cc.changelog = o->changelog_on;	/* as `weir flows` */
	r->ckpt = true;
	if (weir_pipeline_checkpoint(p, &cc) != 0) {
		fprintf(stderr, "weir: bench latency: %s\n", weir_last_error());
		return -EINVAL;
	}
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* The default checkpoint directory goes; one under --checkpoint-dir stays. */
static void ckpt_cleanup(struct run *r)
{
	if (r->ckpt_dir[0] == '\0' || r->o->ckpt_dir != NULL)
		return;
	if (nftw(r->ckpt_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "weir: bench latency: could not remove %s: %s\n",
			r->ckpt_dir, strerror(errno));
	r->ckpt_dir[0] = '\0';
}

/* What only the flows runs at a fixed rate get: the engine's metrics,
 * checkpoints, the timeline. */
static int extras(struct run *r, struct weir_pipeline *p, bool timeline)
{
	int err = 0;

	weir_pipeline_metrics(p, r->m);
	if (r->kind != RUN_FLOWS || r->rate == 0)
		return 0;
	if (r->o->ckpt_ms)
		err = ckpt_setup(r, p);
	if (!err && timeline)
		err = timeline_init(&r->tl, r->cores,
				    r->o->duration_s * 1000000000ull);
	return err;
}

static int execute(struct run *r, struct weir_pipeline *p)
{
	double cpu0 = cpu_s();
	int err = 0;

	schedule(r);
	if (r->ckpt)
		err = sampler_start(r, p);
	if (!err && (err = weir_pipeline_run(p)) != 0)
		fprintf(stderr, "weir: bench latency: %s\n", weir_last_error());
	r->elapsed_s = (double)weir_tsc_ns(r->start_tsc, weir_tsc_now()) / 1e9;
	measure_share(r, cpu0);
	sampler_stop(r);
	weir_pipeline_checkpoint_stats(p, &r->ck);
	weir_metrics_stop(r->m);
	return err;
}

static int run_once(struct run *r, bool exported, bool timeline)
{
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p = NULL;
	int err;

	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = r->cores;
	cfg.runtime.idle = WEIR_IDLE_BUSY_POLL;
	/* Latency is taken in the window's add(): with the combiner that
	 * would run on the sending core, before the ring hop and the window
	 * table, so the figure would leave out the path it is meant to time. */
	cfg.combine_entries = 0;
	cfg.state_prefault_bytes = (size_t)r->o->prefault_mb << 20;
	cfg.runtime.handle_signals = true;
	err = weir_pipeline_create(&cfg, &p);
	if (!err)
		err = build(p, r);
	if (!err)
		err = make_metrics(r, exported);
	if (err)
		fprintf(stderr, "weir: bench latency: %s\n", weir_last_error());
	if (!err)
		err = extras(r, p, timeline);
	if (!err)
		err = execute(r, p);
	if (!err)
		err = collect(r);
	weir_pipeline_destroy(p);
	ckpt_cleanup(r);
	return err;
}

static void run_free(struct run *r)
{
	weir_metrics_destroy(r->m);
	weir_hist_destroy(r->h);
	weir_hist_destroy(r->h_ckpt);
	timeline_free(&r->tl);
	free(r->smp);
	r->m = NULL, r->h = r->h_ckpt = NULL, r->smp = NULL;
}

/* ---- reporting ---- */

static double us(const struct weir_hist *h, double p)
{
	return (double)weir_hist_percentile_remote(h, p) / 1000.0;
}

static void report_hist(const struct run *r, const char *label,
			const struct weir_hist *h, const char *other,
			const struct weir_hist *o)
{
	printf("%-6s rate=%llu achieved=%.0f/s samples=%llu "
	       "p50=%.2fus p90=%.2fus p99=%.2fus p99.9=%.2fus p99.99=%.2fus "
	       "max=%.2fus %s=%llu cpu=%.0f%%\n", label,
	       (unsigned long long)r->rate, (double)r->records / r->elapsed_s,
	       (unsigned long long)weir_hist_count_remote(h), us(h, 50),
	       us(h, 90), us(h, 99), us(h, 99.9), us(h, 99.99),
	       (double)weir_hist_max_remote(h) / 1000.0, other,
	       (unsigned long long)weir_hist_count_remote(o),
	       100.0 * r->cpu_share);
}

/* The steady line; with checkpoints also the during-checkpoint line
 * ("ckpt") and what the checkpoints were. */
static void report(const struct run *r, const char *label)
{
	const struct weir_checkpoint_stats *ck = &r->ck;

	report_hist(r, label, r->h, "ckpt_samples", r->h_ckpt);
	if (r->ckpt) {
		report_hist(r, "ckpt", r->h_ckpt, "steady_samples", r->h);
		printf("checkpoints interval=%llums completed=%llu failed=%llu "
		       "last_duration=%.1fms last_bytes=%llu pause_max=%.1fus "
		       "align_p50/p99/max=%.1f/%.1f/%.1fus "
		       "open_p50/p99/max=%.1f/%.1f/%.1fus "
		       "step_p50/p99/max=%.1f/%.1f/%.1fus%s%s\n",
		       (unsigned long long)r->o->ckpt_ms,
		       (unsigned long long)ck->completed,
		       (unsigned long long)ck->failed,
		       (double)ck->last_duration_us / 1e3,
		       (unsigned long long)ck->last_bytes,
		       (double)ck->pause_max_ns / 1e3,
		       (double)ck->align_p50_ns / 1e3,
		       (double)ck->align_p99_ns / 1e3,
		       (double)ck->align_max_ns / 1e3,
		       (double)ck->open_p50_ns / 1e3,
		       (double)ck->open_p99_ns / 1e3,
		       (double)ck->open_max_ns / 1e3,
		       (double)ck->step_p50_ns / 1e3,
		       (double)ck->step_p99_ns / 1e3,
		       (double)ck->step_max_ns / 1e3,
		       r->ckpt_dir[0] ? " dir=" : "", r->ckpt_dir);
	}
	fflush(stdout);
}

static int write_hgrm(const struct weir_hist *h, const char *dir,
		      const char *name)
{
	char path[4096];
	FILE *f;
	int err;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "weir: bench latency: cannot write %s: %s\n",
			path, strerror(errno));
		return -errno;
	}
	err = weir_hist_write_hgrm(h, f, 1000.0);
	if (fclose(f) != 0 && !err)
		err = -EIO;
	return err;
}

static bool have_gnuplot(void)
{
	return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* Run gnuplot on `script`; false (with a note) when it is missing. */
static bool gnuplot(const char *script, const char *png)
{
	FILE *g;

	if (!have_gnuplot()) {
		fprintf(stderr, "weir: bench latency: gnuplot not found, "
			"skipped %s (apt-get install gnuplot-nox)\n", png);
		return false;
	}
	g = popen("gnuplot", "w");
	if (g == NULL)
		return false;
	fputs(script, g);
	if (pclose(g) != 0) {
		fprintf(stderr, "weir: bench latency: gnuplot failed on %s\n",
			png);
		return false;
	}
	return true;
}

static void plot_percentiles(const char *dir, bool floor, bool ckpt)
{
	char s[4096];
	int n;

	n = snprintf(s, sizeof(s),
		 "set terminal png size 800,500\nset output '%s/latency.png'\n"
		 "set logscale x\nset logscale y\nset grid\n"
		 "set xtics ('50%%%%' 2, '90%%%%' 10, '99%%%%' 100, '99.9%%%%' 1000, "
		 "'99.99%%%%' 10000, '99.999%%%%' 100000)\n"
		 "set xlabel 'percentile'\nset ylabel 'latency (us)'\n"
		 "set title 'weir bench latency: flows job vs empty pipeline'\n"
		 "set key bottom right\n"
		 "plot '%s/latency.hgrm' using 4:1 with lines lw 2 "
		 "title 'flows job%s'", dir, dir, ckpt ? " (steady)" : "");
	if (ckpt)
		n += snprintf(s + n, sizeof(s) - (size_t)n,
			      ", '%s/latency-checkpoint.hgrm' using 4:1 with "
			      "lines lw 2 title 'flows job (during checkpoints)'",
			      dir);
	if (floor)
		n += snprintf(s + n, sizeof(s) - (size_t)n,
			      ", '%s/floor.hgrm' using 4:1 with lines lw 2 "
			      "title 'empty pipeline (floor)'", dir);
	snprintf(s + n, sizeof(s) - (size_t)n, "\n");
	if (gnuplot(s, "latency.png"))
		printf("wrote %s/latency.png\n", dir);
}

/* Checkpoints first (shaded spans from trigger to commit, a line at the
 * trigger), then the percentile lines over them. */
static void plot_timeline(const char *dir, const struct timeline *t,
			  bool marks)
{
	char s[4096];
	int n;

	n = snprintf(s, sizeof(s),
		 "set terminal png size 900,500\nset output '%s/timeline.png'\n"
		 "set logscale y\nset grid\nset key top left noenhanced\n"
		 "set xlabel 'time since start (s)'\nset ylabel 'latency (us)'\n"
		 "set y2range [0:1]\nunset y2tics\n"
		 "set title 'weir bench latency: flows job per %llu ms window%s'\n"
		 "plot ", dir, (unsigned long long)(t->win_ns / 1000000),
		 marks ? " (red: checkpoints, trigger to commit)" : "");
	if (marks)
		n += snprintf(s + n, sizeof(s) - (size_t)n,
			"'%s/checkpoints.tsv' using (($1+$2)/2):(0.5):1:2:(0):(1) "
			"axes x1y2 with boxxyerror fs solid 0.2 noborder "
			"lc rgb '#ff8080' title 'checkpoint', "
			"'' using 1:(0):(0):(1) axes x1y2 with vectors nohead "
			"lc rgb 'red' notitle, ", dir);
	snprintf(s + n, sizeof(s) - (size_t)n,
		 "'%s/timeline.tsv' using 1:6 with lines lw 1 title 'max', "
		 "'' using 1:4 with lines lw 2 title 'p99', "
		 "'' using 1:3 with lines lw 2 title 'p50'\n", dir);
	if (gnuplot(s, "timeline.png"))
		printf("wrote %s/timeline.png\n", dir);
}

static FILE *open_out(const char *dir, const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		fprintf(stderr, "weir: bench latency: cannot write %s: %s\n",
			path, strerror(errno));
	return f;
}

static int close_out(FILE *f)
{
	return fclose(f) == 0 ? 0 : -EIO;
}

/* One row per window that has samples: its middle, in s since start. */
static void timeline_rows(const struct timeline *t, struct weir_hist *h,
			  FILE *f)
{
	for (unsigned w = 0; w < t->nwin; w++) {
		weir_hist_reset_local(h);
		for (unsigned c = 0; c < t->cores; c++)
			weir_hist_merge_remote(h, t->h[c * t->nwin + w]);
		if (weir_hist_count_remote(h) == 0)
			continue;
		fprintf(f, "%.3f\t%llu\t%.3f\t%.3f\t%.3f\t%.3f\n",
			((double)w + 0.5) * (double)t->win_ns / 1e9,
			(unsigned long long)weir_hist_count_remote(h),
			us(h, 50), us(h, 99), us(h, 99.99),
			(double)weir_hist_max_remote(h) / 1e3);
	}
}

static int write_timeline(const struct timeline *t, const char *dir)
{
	struct weir_hist *h;
	FILE *f = open_out(dir, "timeline.tsv");
	int err;

	if (f == NULL)
		return -EIO;
	err = weir_hist_create(&h);
	if (!err) {
		fputs("# t_s\tsamples\tp50_us\tp99_us\tp99.99_us\tmax_us\n", f);
		timeline_rows(t, h, f);
		weir_hist_destroy(h);
	}
	return close_out(f) ? -EIO : err;
}

static int write_marks(const struct sampler *smp, const char *dir)
{
	FILE *f = open_out(dir, "checkpoints.tsv");

	if (f == NULL)
		return -EIO;
	fputs("# start_s\tend_s\tduration_ms\tbytes\n", f);
	for (unsigned i = 0; i < smp->n; i++)
		fprintf(f, "%.4f\t%.4f\t%.2f\t%llu\n", smp->marks[i].start_s,
			smp->marks[i].end_s, (smp->marks[i].end_s -
			smp->marks[i].start_s) * 1e3,
			(unsigned long long)smp->marks[i].bytes);
	return close_out(f);
}

static void plot_sweep(const char *dir)
{
	char s[4096];

	snprintf(s, sizeof(s),
		 "set terminal png size 800,500\nset output '%s/sweep.png'\n"
		 "set logscale y\nset grid\nset key top left noenhanced\n"
		 "set xlabel 'achieved throughput (records/s)'\n"
		 "set ylabel 'latency (us)'\n"
		 "set title 'weir bench latency: throughput vs latency'\n"
		 "plot for [c=3:7] '%s/sweep.tsv' using 2:c with linespoints "
		 "title columnheader(c)\n", dir, dir);
	if (gnuplot(s, "sweep.png"))
		printf("wrote %s/sweep.png\n", dir);
}

/* ---- modes ---- */

enum { ONE_EXPORTED = 1, ONE_TIMELINE = 2, ONE_MEASURED = 4, ONE_TOGGLE = 8 };
/* --peak's runs turn sampling on and off this often (ONE_TOGGLE). */
#define PHASE_NS 50000000ull

static bool freed_before; /* a run of this command has ended */

/* Before a measured run (or the probe): --settle seconds if an earlier
 * run freed its memory. */
static void settle(const struct bench_opts *o)
{
	if (freed_before && o->settle_s > 0)
		sleep((unsigned)o->settle_s);
	freed_before = false;
}

static int one(const struct bench_opts *o, struct weir_flowgen *g,
	       enum run_kind kind, uint64_t rate, bool sampling,
	       unsigned flags, struct run *r)
{
	int err;

	if (flags & ONE_MEASURED)
		settle(o);
	memset(r, 0, sizeof(*r));
	r->o = o, r->kind = kind, r->rate = rate, r->sampling = sampling;
	r->cores = o->cores, r->gen = g;
	if (flags & ONE_TOGGLE)
		r->phase_ticks = weir_tsc_from_ns(PHASE_NS);
	err = run_once(r, flags & ONE_EXPORTED, flags & ONE_TIMELINE);
	freed_before = true;
	return err;
}

/* latency.hgrm, latency-checkpoint.hgrm, timeline.tsv, checkpoints.tsv. */
static int flows_outputs(const struct run *r, const char *dir)
{
	int err = write_hgrm(r->h, dir, "latency.hgrm");

	if (!err && r->ckpt)
		err = write_hgrm(r->h_ckpt, dir, "latency-checkpoint.hgrm");
	if (!err && r->ckpt)
		err = write_marks(r->smp, dir);
	if (!err)
		err = write_timeline(&r->tl, dir);
	return err;
}

static int fixed_rate(const struct bench_opts *o, struct weir_flowgen *g,
		      uint64_t rate)
{
	struct run r, fl;
	int err = one(o, g, RUN_FLOWS, rate, true,
		      ONE_EXPORTED | ONE_TIMELINE | ONE_MEASURED, &r);

	if (err)
		return err;
	report(&r, "flows");
	err = flows_outputs(&r, o->out_dir);
	if (!err && !o->no_floor && !(err = one(o, g, RUN_FLOOR, rate, true,
						ONE_MEASURED, &fl))) {
		report(&fl, "floor");
		err = write_hgrm(fl.h, o->out_dir, "floor.hgrm");
		run_free(&fl);
	}
	if (!err) {
		plot_percentiles(o->out_dir, !o->no_floor, r.ckpt &&
				 weir_hist_count_remote(r.h_ckpt) > 0);
		plot_timeline(o->out_dir, &r.tl, r.ckpt && r.smp->n > 0);
	}
	run_free(&r);
	return err;
}

static int sweep(const struct bench_opts *o, struct weir_flowgen *g)
{
	char path[4096];
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/sweep.tsv", o->out_dir);
	f = fopen(path, "w");
	if (f == NULL)
		return -errno;
	fputs("rate\tachieved\tp50_us\tp90_us\tp99_us\tp99.9_us\tp99.99_us"
	      "\tmax_us\n", f);
	for (unsigned i = 0; i < o->nrates && !err; i++) {
		struct run r;

		err = one(o, g, RUN_FLOWS, o->rates[i], true,
			  (i == 0 ? ONE_EXPORTED : 0) | ONE_MEASURED, &r);
		if (err)
			break;
		report(&r, "flows");
		fprintf(f, "%llu\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\n",
			(unsigned long long)r.rate,
			(double)r.records / r.elapsed_s, us(r.h, 50),
			us(r.h, 90), us(r.h, 99), us(r.h, 99.9),
			us(r.h, 99.99), (double)weir_hist_max_remote(r.h) / 1e3);
		run_free(&r);
	}
	fclose(f);
	if (!err)
		plot_sweep(o->out_dir);
	return err;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Records/s of one toggling run after its warm-up, sampling on (even
 * phases, counted from the warm-up's end) and off (odd ones). */
static void phase_rates(const struct run *r, double *on, double *off)
{
	uint64_t t = r->end_tsc - r->warm_tsc, p = r->phase_ticks;
	uint64_t full = t / p, even = (full + 1) / 2 * p, n[2] = { 0, 0 };
	double hz = weir_tsc_hz();

	if ((full & 1) == 0)
		even += t % p; /* the last, partial phase is even */
	for (unsigned c = 0; c < r->cores; c++)
		n[0] += r->sc[c].phase_made[0], n[1] += r->sc[c].phase_made[1];
	*on = (double)n[0] / ((double)even / hz);
	*off = t > even ? (double)n[1] / ((double)(t - even) / hz) : 0;
}

/*
 * Unpaced runs that turn sampling on and off every PHASE_NS: the overhead
 * is 1 - each run's on/off ratio, its median over the runs.  Whole runs
 * with and without sampling, alternating, scattered by +-10% a pair on the
 * VM of bench/RESULTS.md (its rate drifts by more than sampling costs);
 * 50 ms phases see the same drift on both sides.  The rings hold < 1 ms of
 * records, so a phase's cost stays in its phase.  *peak_pps gets the
 * median rate without sampling.
 */
static int peak(const struct bench_opts *o, struct weir_flowgen *g,
		double *peak_pps)
{
	double off[16], on[16], ratio[16];
	unsigned n = (unsigned)o->repeat;
	int err = 0;

	for (unsigned i = 0; i < n && !err; i++) {
		struct run r;

		err = one(o, g, RUN_FLOWS, 0, true, ONE_TOGGLE, &r);
		if (err)
			break;
		phase_rates(&r, &on[i], &off[i]);
		ratio[i] = off[i] > 0 ? on[i] / off[i] : 1;
		printf("peak   run %u: sampling off %.0f/s on %.0f/s (toggled "
		       "every %llu ms) whole run %.0f/s cpu=%.0f%%\n", i + 1,
		       off[i], on[i], PHASE_NS / 1000000,
		       (double)r.records / r.elapsed_s, 100.0 * r.cpu_share);
		run_free(&r);
	}
	if (err)
		return err;
	qsort(off, n, sizeof(double), cmp_double);
	qsort(on, n, sizeof(double), cmp_double);
	qsort(ratio, n, sizeof(double), cmp_double);
	*peak_pps = off[n / 2];
	printf("peak   median off=%.0f/s on=%.0f/s sampling overhead=%.1f%% "
	       "(median of %u runs; 1 in %llu records stamped)\n", off[n / 2],
	       on[n / 2], 100.0 * (1.0 - ratio[n / 2]), n,
	       (unsigned long long)o->sample);
	return 0;
}

/* ---- options ---- */

static int parse_rates(struct bench_opts *o, const char *val)
{
	char buf[1024], *tok, *save = NULL;

	if (strlen(val) >= sizeof(buf))
		return cli_usage_error("bench latency: --sweep list too long");
	strcpy(buf, val);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (o->nrates == SWEEP_MAX)
			return cli_usage_error("bench latency: --sweep takes at "
					       "most %u rates", SWEEP_MAX);
		if (!cli_parse_u64("--sweep rate", tok, 1, UINT64_MAX / 4,
				   &o->rates[o->nrates++]))
			return EXIT_USAGE;
	}
	return o->nrates ? 0 : cli_usage_error("bench latency: --sweep "
					       "needs rates, e.g. --sweep 100000,200000");
}

static int parse_value(struct bench_opts *o, const char *opt,
		       const char *val)
{
	uint64_t v;

	if (strcmp(opt, "--rate") == 0) {
		if (strcmp(val, "0") == 0)
			return cli_usage_error("bench latency: --rate 0: the "
					       "offered load must be at least 1 "
					       "record/s");
		return cli_parse_u64(opt, val, 1, UINT64_MAX / 4, &o->rate) ?
		       0 : EXIT_USAGE;
	}
	if (strcmp(opt, "--duration") == 0) {
		if (strcmp(val, "0") == 0)
			return cli_usage_error("bench latency: --duration 0: "
					       "a run needs at least 1 s");
		return cli_parse_u64(opt, val, 1, 86400, &o->duration_s) ?
		       0 : EXIT_USAGE;
	}
	if (strcmp(opt, "--cores") == 0) {
		if (!cli_parse_u64(opt, val, 1, WEIR_CORES_MAX, &v))
			return EXIT_USAGE;
		o->cores = (unsigned)v;
		return 0;
	}
	if (strcmp(opt, "--sweep") == 0)
		return parse_rates(o, val);
	if (strcmp(opt, "--out") == 0) {
		o->out_dir = val;
		return 0;
	}
	if (strcmp(opt, "--metrics-json") == 0) {
		o->json_path = val;
		return 0;
	}
	if (strcmp(opt, "--sample") == 0)
		return cli_parse_u64(opt, val, 1, 1u << 30, &o->sample) ?
		       0 : EXIT_USAGE;
	if (strcmp(opt, "--repeat") == 0)
		return cli_parse_u64(opt, val, 1, 15, &o->repeat) ?
		       0 : EXIT_USAGE;
	if (strcmp(opt, "--metrics-port") == 0) {
		if (!cli_parse_u64(opt, val, 1, 65535, &v))
			return EXIT_USAGE;
		o->http = true;
		o->port = (uint16_t)v;
		return 0;
	}
	if (strcmp(opt, "--checkpoint-interval") == 0)
		return cli_parse_u64(opt, val, 1, 3600u * 1000, &o->ckpt_ms) ?
		       0 : EXIT_USAGE;
	if (strcmp(opt, "--checkpoint-dir") == 0) {
		o->ckpt_dir = val;
		return 0;
	}
	if (strcmp(opt, "--changelog") == 0)
		return cli_parse_on_off(opt, val, &o->changelog_on) ?
		       0 : EXIT_USAGE;
	if (strcmp(opt, "--settle") == 0)
		return cli_parse_u64(opt, val, 0, 60, &o->settle_s) ?
		       0 : EXIT_USAGE;
	if (strcmp(opt, "--hiccups") == 0)
		return cli_parse_u64(opt, val, 0, 600, &o->hiccup_s) ?
		       0 : EXIT_USAGE;
	if (strcmp(opt, "--state-prefault") == 0)
		return cli_parse_u64(opt, val, 0, 1u << 20, &o->prefault_mb) ?
		       0 : EXIT_USAGE;
	return cli_usage_error("bench latency: unknown option '%s' (try "
			       "`weir bench latency --help`)", opt);
}

/* 0, -1 after --help, or an exit status. */
static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->duration_s = 5, o->sample = SAMPLE_DEFAULT, o->repeat = 3;
	o->prefault_mb = PREFAULT_MB_DEFAULT;
	o->hiccup_s = HICCUP_S_DEFAULT;
	o->settle_s = SETTLE_S_DEFAULT;
	o->out_dir = "latency-out";
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		int rc;

		if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
			fputs(bench_usage, stdout);
			return -1;
		}
		if (strcmp(opt, "--peak") == 0 || strcmp(opt, "--no-floor") == 0) {
			*(opt[2] == 'p' ? &o->peak : &o->no_floor) = true;
			continue;
		}
		if (i + 1 >= argc)
			return cli_usage_error("bench latency: %s needs a value",
					       opt);
		rc = parse_value(o, opt, argv[++i]);
		if (rc)
			return rc;
	}
	if (!o->rate && !o->nrates && !o->peak)
		return cli_usage_error("bench latency: give --rate PPS, "
				       "--sweep R1,R2,... or --peak");
	if (o->ckpt_dir && !o->ckpt_ms)
		return cli_usage_error("bench latency: --checkpoint-dir needs "
				       "--checkpoint-interval MS");
	return 0;
}

/* Records/s one core's generator can make, measured for 20 ms. */
static double generator_pps(const struct weir_flowgen *g)
{
	struct weir_flow_obs obs;
	int64_t ts;
	uint64_t t0 = weir_tsc_now(), n = 0, stop;

	stop = t0 + weir_tsc_from_ns(20000000);
	while (weir_tsc_now() < stop)
		for (int k = 0; k < 256; k++, n++)
			weir_flowgen_packet(g, n, &obs, &ts);
	return (double)n * 1e9 / (double)weir_tsc_ns(t0, weir_tsc_now());
}

/* Every rate must be one the generator can offer on these cores. */
static int check_rates(const struct bench_opts *o,
		       const struct weir_flowgen *g)
{
	double cap = generator_pps(g) * o->cores;
	uint64_t worst = o->rate;

	for (unsigned i = 0; i < o->nrates; i++)
		worst = o->rates[i] > worst ? o->rates[i] : worst;
	if ((double)worst > cap)
		return cli_usage_error("bench latency: rate %llu records/s is "
				       "above what the generator can offer on "
				       "%u cores (~%.0f records/s measured)",
				       (unsigned long long)worst, o->cores, cap);
	return 0;
}

/* Refuse a port in use, an unwritable directory or JSON file now. */
static int preflight(struct bench_opts *o)
{
	struct weir_metrics_config mc;
	struct weir_metrics *m;

	struct weir_runtime_config rc;

	if (!cli_check_cores("bench latency", o->cores))
		return EXIT_USAGE;
	weir_runtime_config_init(&rc);	/* cores: every usable CPU */
	if (o->cores == 0)
		o->cores = rc.cores;
	/* The plot scripts name files in it, several to a 4 KiB script. */
	if (strlen(o->out_dir) > OUT_DIR_MAX)
		return cli_usage_error("bench latency: --out: a directory path "
				       "of at most %u bytes", OUT_DIR_MAX);
	if (mkdir(o->out_dir, 0777) != 0 && errno != EEXIST)
		return cli_usage_error("bench latency: cannot create %s: %s",
				       o->out_dir, strerror(errno));
	if (o->ckpt_dir && mkdir(o->ckpt_dir, 0700) != 0 && errno != EEXIST)
		return cli_usage_error("bench latency: cannot create %s: %s",
				       o->ckpt_dir, strerror(errno));
	weir_metrics_config_init(&mc);
	mc.http = o->http, mc.http_port = o->port, mc.json_path = o->json_path;
	if (weir_metrics_create(&mc, &m) != 0)
		return cli_usage_error("bench latency: %s", weir_last_error());
	weir_metrics_destroy(m);
	return 0;
}

static int make_gen(const struct bench_opts *o, struct weir_flowgen **g)
{
	struct weir_flowgen_config gc;

	weir_flowgen_config_init(&gc);
	gc.packets = 0;
	gc.duration_ms = 1;
	gc.event_pps = o->rate ? o->rate : 1000000;
	if (weir_flowgen_create(&gc, g) != 0)
		return cli_usage_error("bench latency: %s", weir_last_error());
	return 0;
}

/* ---- the machine's own interruptions (--hiccups, apps/hiccup.h) ---- */

static int write_hiccups(const struct hiccup_report *h, const char *dir)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/hiccups.tsv", dir);
	f = fopen(path, "w");
	if (f == NULL)
		return -errno;
	fputs("# cpu\tat_s\tgap_us\n", f);
	for (size_t i = 0; i < h->ngaps; i++)
		fprintf(f, "%d\t%.6f\t%.3f\n", h->cpus[h->gaps[i].cpu],
			h->gaps[i].at_s, (double)h->gaps[i].ns / 1e3);
	return fclose(f) == 0 ? 0 : -errno;
}

/* Gap length against time, a colour per CPU. */
static void plot_hiccups(const struct hiccup_report *h, const char *dir)
{
	char s[32768];	/* 32 CPUs of an OUT_DIR_MAX path each */
	int n = snprintf(s, sizeof(s),
		"set terminal png size 900,500\nset output '%s/hiccups.png'\n"
		"set logscale y\nset grid\nset key top left noenhanced\n"
		"set xlabel 'time since the probe started (s)'\n"
		"set ylabel 'gap (us)'\nset title 'weir bench latency: what "
		"the machine took from each worker CPU (gaps >= %u us)'\nplot ",
		dir, HICCUP_MIN_NS / 1000);

	for (unsigned i = 0; i < h->ncpu && i < 32 && n < (int)sizeof(s); i++)
		n += snprintf(s + n, sizeof(s) - (size_t)n,
			      "%s'%s/hiccups.tsv' using 2:($1 == %d ? $3 : 1/0) "
			      "with points pt 7 ps 0.5 title 'CPU %d'",
			      i ? ", " : "", dir, h->cpus[i], h->cpus[i]);
	if (n + 2 > (int)sizeof(s)) {	/* a very long --out */
		fprintf(stderr, "weir: bench latency: skipped hiccups.png "
			"(output path too long for the plot script)\n");
		return;
	}
	snprintf(s + n, sizeof(s) - (size_t)n, "\n");
	if (gnuplot(s, "hiccups.png"))
		printf("wrote %s/hiccups.png\n", dir);
}

static void report_hiccups(const struct hiccup_report *h)
{
	printf("hiccup cpus=");
	for (unsigned i = 0; i < h->ncpu; i++)
		printf("%s%d", i ? "," : "", h->cpus[i]);
	printf(" seconds=%.0f away=%.3f%% gaps>=10us=%llu gaps>=100us=%llu "
	       "gaps>=1ms=%llu max=%.1fus bound_p99=%.2fus "
	       "bound_p99.9=%.2fus bound_p99.99=%.2fus\n", h->seconds,
	       100.0 * hiccup_away(h),
	       (unsigned long long)h->over_10us,
	       (unsigned long long)h->over_100us,
	       (unsigned long long)h->over_1ms, (double)h->max_ns / 1e3,
	       hiccup_bound_ns(h, 0.99) / 1e3, hiccup_bound_ns(h, 0.999) / 1e3,
	       hiccup_bound_ns(h, 0.9999) / 1e3);
}

/* Before the measured runs (after --peak's runs and --settle), with the
 * CPUs otherwise idle: what the machine alone takes from the workers'
 * CPUs, and the percentiles it forces.  *h is kept for the bounds under
 * load (hiccup_load); the caller frees it. */
static int machine_hiccups(const struct bench_opts *o,
			   struct hiccup_report *h)
{
	int cpus[WEIR_CORES_MAX];
	unsigned n = weir_runtime_usable_cpus(cpus, o->cores);
	int err = hiccup_probe(cpus, n, (double)o->hiccup_s, h);

	if (err) {
		fprintf(stderr, "weir: bench latency: hiccup probe on %u CPUs: "
			"%s\n", n, strerror(-err));
		return err;
	}
	report_hiccups(h);
	if (h->dropped)
		fprintf(stderr, "weir: bench latency: %llu gaps not kept (a "
			"CPU's list was full): the bounds leave them out\n",
			(unsigned long long)h->dropped);
	fflush(stdout);
	err = write_hiccups(h, o->out_dir);
	if (err)
		fprintf(stderr, "weir: bench latency: %s/hiccups.tsv: %s\n",
			o->out_dir, strerror(-err));
	else
		plot_hiccups(h, o->out_dir);
	return err;
}

/* With the peak known: the percentiles the same gaps force on any job
 * offered `rate` against that peak (apps/hiccup.h, the bound under load),
 * one line per rate about to run.  The peak was measured through the same
 * gaps: the CPUs serve at peak / (1 - away) while they run. */
static void report_load_bounds(const struct hiccup_report *h,
			       const struct bench_opts *o, double pk)
{
	double away = hiccup_away(h);
	double serve = away < 1 ? pk / (1 - away) : 0;

	for (unsigned i = 0; i < o->nrates + (o->rate != 0); i++) {
		uint64_t rate = i < o->nrates ? o->rates[i] : o->rate;
		double load = serve > 0 ? (double)rate / serve : 1;

		printf("hiccup_load rate=%llu peak=%.0f load=%.3f "
		       "bound_p99=%.2fus bound_p99.9=%.2fus "
		       "bound_p99.99=%.2fus\n", (unsigned long long)rate, pk,
		       load, hiccup_bound_at_load_ns(h, 0.99, load) / 1e3,
		       hiccup_bound_at_load_ns(h, 0.999, load) / 1e3,
		       hiccup_bound_at_load_ns(h, 0.9999, load) / 1e3);
	}
	fflush(stdout);
}

static int bench_latency(int argc, char **argv)
{
	struct bench_opts o;
	struct weir_flowgen *g = NULL;
	struct hiccup_report h = { 0 };
	double pk;
	int rc = parse_opts(argc, argv, &o), err = 0;

	if (rc)
		return rc < 0 ? 0 : rc;
	weir_tsc_calibrate();
	if ((rc = preflight(&o)) || (rc = make_gen(&o, &g)) ||
	    (rc = check_rates(&o, g)))
		goto out;
	if (o.peak) {
		err = peak(&o, g, &pk);
		if (!err && !o.rate && !o.nrates)
			o.rate = (uint64_t)(pk / 2);
	}
	if (!err && o.hiccup_s) {
		settle(&o);
		err = machine_hiccups(&o, &h);
	}
	if (!err && o.peak && o.hiccup_s)
		report_load_bounds(&h, &o, pk);
	if (!err && o.rate)
		err = fixed_rate(&o, g, o.rate);
	if (!err && o.nrates)
		err = sweep(&o, g);
	rc = err ? 1 : 0;
out:
	hiccup_free(&h);
	weir_flowgen_destroy(g);
	return rc;
}

int cmd_bench(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		fputs("usage: weir bench latency [options]   "
		      "(`weir bench latency --help`)\n", argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (strcmp(argv[1], "latency") == 0)
		return bench_latency(argc - 1, argv + 1);
	return cli_usage_error("bench: unknown benchmark '%s' (there is "
			       "`weir bench latency`)", argv[1]);
}
