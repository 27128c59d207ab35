/*
 * demo.c — `weir demo`: the built-in job until the flows job exists.
 *
 * Every worker generates records (source id, sequence number) and sends
 * bursts round-robin to every worker, itself included, through the ring
 * mesh; every worker drains its input rings and checks that each source's
 * sequence numbers arrive in order with no gap.  The main thread prints
 * records/s received per core once a second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/cli.h"
#include "weir/runtime.h"

#define DEMO_BATCH_MAX 256u
#define DEMO_RECORD_MIN 16u

struct demo_rec {
	uint32_t src;
	uint32_t pad;
	uint64_t seq;
};

/* Published by one worker, read by the main thread: one line each. */
struct demo_stats {
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t received;
	_Atomic uint64_t sent;
	_Atomic uint64_t order_errors;
};

struct demo_worker {
	uint64_t next_seq[WEIR_CORES_MAX];   /* per destination */
	uint64_t expect_seq[WEIR_CORES_MAX]; /* per source */
	uint64_t received, sent, order_errors;
	unsigned rr;
	uint8_t *buf;
};

struct demo {
	uint32_t record_size;
	uint32_t batch;
	struct demo_stats *stats;
	struct demo_worker *workers[WEIR_CORES_MAX];
};

static int demo_init(struct weir_worker *w, void *arg)
{
	struct demo *d = arg;
	struct demo_worker *dw;

	dw = weir_worker_alloc_local(w, sizeof(*dw));
	if (dw == NULL)
		return -12; /* -ENOMEM */
	memset(dw, 0, sizeof(*dw));
	dw->buf = weir_worker_alloc_local(w, (size_t)d->batch * d->record_size);
	if (dw->buf == NULL)
		return -12;
	memset(dw->buf, 0, (size_t)d->batch * d->record_size);
	d->workers[weir_worker_id(w)] = dw;
	return 0;
}

static uint32_t demo_send(struct weir_worker *w, struct demo *d,
			  struct demo_worker *dw)
{
	unsigned to = dw->rr;
	uint32_t sent;

	dw->rr = (dw->rr + 1) % weir_worker_count(w);
	for (uint32_t i = 0; i < d->batch; i++) {
		struct demo_rec *r = (void *)(dw->buf + i * d->record_size);
		r->src = weir_worker_id(w);
		r->seq = dw->next_seq[to] + i;
	}
	sent = weir_worker_send_burst_local(w, to, dw->buf, d->batch);
	dw->next_seq[to] += sent;
	dw->sent += sent;
	return sent;
}

static uint32_t demo_recv(struct weir_worker *w, struct demo *d,
			  struct demo_worker *dw, unsigned from)
{
	uint32_t got = weir_worker_recv_burst_local(w, from, dw->buf, d->batch);

	for (uint32_t i = 0; i < got; i++) {
		const struct demo_rec *r = (void *)(dw->buf + i * d->record_size);
		if (r->src != from || r->seq != dw->expect_seq[from])
			dw->order_errors++;
		dw->expect_seq[from] = r->seq + 1;
	}
	dw->received += got;
	return got;
}

static int demo_poll(struct weir_worker *w, void *arg)
{
	struct demo *d = arg;
	struct demo_worker *dw = d->workers[weir_worker_id(w)];
	struct demo_stats *st = &d->stats[weir_worker_id(w)];
	uint32_t work = demo_send(w, d, dw);

	for (unsigned from = 0; from < weir_worker_count(w); from++)
		work += demo_recv(w, d, dw, from);
	atomic_store_explicit(&st->received, dw->received, memory_order_relaxed);
	atomic_store_explicit(&st->sent, dw->sent, memory_order_relaxed);
	atomic_store_explicit(&st->order_errors, dw->order_errors,
			      memory_order_relaxed);
	return (int)work;
}

static void demo_fini(struct weir_worker *w, void *arg)
{
	struct demo *d = arg;
	struct demo_worker *dw = d->workers[weir_worker_id(w)];

	weir_worker_free_local(w, dw->buf);
	weir_worker_free_local(w, dw);
	d->workers[weir_worker_id(w)] = NULL;
}

static const char demo_usage[] =
	"usage: weir demo [--cores N] [--duration S] [--record-size B]\n"
	"                 [--batch N] [--ring-capacity N] [--idle busy|sleep]\n"
	"\n"
	"  --cores N          worker cores (default: every usable CPU)\n"
	"  --duration S       seconds to run, 0 = until SIGINT (default 3)\n"
	"  --record-size B    bytes per record, >= 16 (default 16)\n"
	"  --batch N          records per burst, 1..256 (default 32)\n"
	"  --ring-capacity N  slots per ring, a power of two (default 4096)\n"
	"  --idle POLICY      busy (spin) or sleep (eventfd) (default busy)\n";

struct demo_opts {
	uint64_t duration_s;
	struct weir_runtime_config cfg;
	uint32_t batch;
};

static int parse_one(struct demo_opts *o, const char *opt, const char *val)
{
	uint64_t v;

	if (val == NULL)
		return cli_usage_error("%s needs a value", opt);
	if (strcmp(opt, "--cores") == 0) {
		if (!cli_parse_u64(opt, val, 0, WEIR_CORES_MAX, &v))
			return EXIT_USAGE;
		o->cfg.cores = (unsigned)v;
	} else if (strcmp(opt, "--duration") == 0) {
		if (!cli_parse_u64(opt, val, 0, 86400 * 365, &o->duration_s))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--record-size") == 0) {
		if (!cli_parse_u64(opt, val, DEMO_RECORD_MIN,
				   WEIR_RING_SLOT_SIZE_MAX, &v))
			return EXIT_USAGE;
		o->cfg.record_size = (uint32_t)v;
	} else if (strcmp(opt, "--batch") == 0) {
		if (!cli_parse_u64(opt, val, 1, DEMO_BATCH_MAX, &v))
			return EXIT_USAGE;
		o->batch = (uint32_t)v;
	} else if (strcmp(opt, "--ring-capacity") == 0) {
		if (!cli_parse_u64(opt, val, 0, UINT32_MAX, &v))
			return EXIT_USAGE;
		o->cfg.ring_capacity = (uint32_t)v;
	} else if (strcmp(opt, "--idle") == 0) {
		if (strcmp(val, "busy") == 0)
			o->cfg.idle = WEIR_IDLE_BUSY_POLL;
		else if (strcmp(val, "sleep") == 0)
			o->cfg.idle = WEIR_IDLE_SLEEP;
		else
			return cli_usage_error("--idle '%s' is neither busy nor "
					       "sleep", val);
	} else {
		return cli_usage_error("demo: unknown option '%s' (try "
				       "`weir demo --help`)", opt);
	}
	return 0;
}

static int parse_opts(int argc, char **argv, struct demo_opts *o)
{
	weir_runtime_config_init(&o->cfg);
	o->cfg.record_size = DEMO_RECORD_MIN;
	o->cfg.idle = WEIR_IDLE_BUSY_POLL;
	o->cfg.handle_signals = true;
	o->duration_s = 3;
	o->batch = 32;
	for (int i = 1; i < argc; i += 2) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(demo_usage, stdout);
			return -1;
		}
		int rc = parse_one(o, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
		if (rc)
			return rc;
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Once a second: records/s received on each core since the last report. */
static void report(struct weir_runtime *rt, struct demo *d, uint64_t *last,
		   double dt)
{
	for (unsigned i = 0; i < weir_runtime_cores(rt); i++) {
		uint64_t now = atomic_load(&d->stats[i].received);
		printf("core %u (cpu %d): %8.2f M records/s\n", i,
		       weir_runtime_cpu(rt, i), (now - last[i]) / dt / 1e6);
		last[i] = now;
	}
	fflush(stdout);
}

static int run_demo(struct weir_runtime *rt, struct demo *d, double duration)
{
	static const struct weir_worker_ops ops = {
		.init = demo_init, .poll = demo_poll, .fini = demo_fini };
	uint64_t last[WEIR_CORES_MAX] = { 0 };
	double start, tick;
	int err = weir_runtime_start(rt, &ops, d);

	if (err)
		return err;
	start = tick = now_s();
	while (!weir_runtime_stopping(rt)) {
		struct timespec nap = { 0, 20 * 1000 * 1000 };
		nanosleep(&nap, NULL);
		double t = now_s();
		if (t - tick >= 1.0) {
			report(rt, d, last, t - tick);
			tick = t;
		}
		if (duration > 0 && t - start >= duration)
			weir_runtime_stop_remote(rt);
	}
	return weir_runtime_wait(rt);
}

static int summarize(struct weir_runtime *rt, struct demo *d, int err)
{
	uint64_t rx = 0, tx = 0, bad = 0;

	for (unsigned i = 0; i < weir_runtime_cores(rt); i++) {
		rx += atomic_load(&d->stats[i].received);
		tx += atomic_load(&d->stats[i].sent);
		bad += atomic_load(&d->stats[i].order_errors);
	}
	fprintf(stderr, "weir demo: cores=%u sent=%llu received=%llu "
		"in_flight=%llu order_errors=%llu status=%s\n",
		weir_runtime_cores(rt), (unsigned long long)tx,
		(unsigned long long)rx, (unsigned long long)(tx - rx),
		(unsigned long long)bad, err ? "failed" : "ok");
	return (err || bad) ? 1 : 0;
}

int cmd_demo(int argc, char **argv)
{
	struct weir_runtime *rt;
	struct demo_opts o;
	struct demo d;
	int rc = parse_opts(argc, argv, &o);

	if (rc)
		return rc < 0 ? 0 : rc;
	rc = weir_runtime_create(&o.cfg, &rt);
	if (rc)
		return cli_usage_error("demo: %s", weir_last_error());
	memset(&d, 0, sizeof(d));
	d.record_size = o.cfg.record_size;
	d.batch = o.batch;
	d.stats = aligned_alloc(WEIR_CACHE_LINE,
				WEIR_CORES_MAX * sizeof(*d.stats));
	if (d.stats == NULL) {
		weir_runtime_destroy(rt);
		return 1;
	}
	memset(d.stats, 0, WEIR_CORES_MAX * sizeof(*d.stats));
	rc = run_demo(rt, &d, (double)o.duration_s);
	rc = summarize(rt, &d, rc);
	free(d.stats);
	weir_runtime_destroy(rt);
	return rc;
}
