/*
 * bench/ckpt_bench.c — checkpoints of one core's keyed state: pause, flush
 * bandwidth, update throughput while checkpointing, restore, incremental
 * size.  bench/run_ckpt.sh drives it and adds Redis side by side.
 *
 * State: one arena and one state/table.h table of 8-byte keys and 8-byte
 * values (32-byte slots) whose slot array is --sizes bytes, filled to 70%
 * (below the 3/4 growth point, so no migration runs while measuring).
 * Updates are random upserts (value += 1) in batches of 32 with the next
 * batch prefetched, as bench/state_bench.c drives tables.
 *
 * Per size, in this order, one JSON object per line on stdout:
 *   pause      --pauses times: 4096 random updates, then the synchronous
 *              part of a checkpoint (wr_arena_snapshot_begin + the table
 *              header stats), timed; snapshot_end.  p50/p99/max us.
 *   flush      --reps full checkpoints of the idle table, the writer stepped
 *              in a tight loop, alternating with fio (64 KiB, io_uring,
 *              iodepth 32, O_DIRECT, end_fsync, same bytes, same dir): the
 *              durations, bandwidths and their ratio (medians).
 *   restore    caches dropped (needs root; "cold":false otherwise), then
 *              wr_ckpt_open_deferred + wr_ckpt_load_core of the newest
 *              checkpoint (one read, checksums checked as pages land),
 *              vs caches dropped and dd (1 MiB blocks) of the same files;
 *              the restored arena must equal the source page for page.
 *   increment  1% of keys updated at random, then 1% of keys chosen so their
 *              slots lie in the first 1% of the slot array; an incremental
 *              checkpoint after each: bytes and pages vs the full one.
 *   update     --seconds of random upserts without checkpoints, then with an
 *              incremental checkpoint started every second (the writer
 *              stepped between batches of 1024 updates, as the engine loop
 *              steps it every ~60 us), alternated --reps times: updates/s
 *              and the ratio.  The updates run in loop ticks of --tick
 *              (default 128: what one engine tick takes on one core, a
 *              burst of WR_BURST from its ring and one from its source);
 *              the changelog is sealed at the end of each, as exec.c does.
 *              The seal copies the ranges the tick noted: the fewer
 *              updates in between, the more of them are still in L1.
 *
 *   ckpt_bench [--quick] [--sizes 64M,1G,4G] [--dir DIR] [--reps R]
 *              [--seconds S] [--pauses N] [--cpu N] [--no-fio]
 *              [--phases pause,flush,restore,incr,updates] [--no-prefault]
 *              [--restore-only] [--changelog] [--restore-cores 2]
 *              [--tick N] [--no-restore-helper] [--log-max-pct P]
 *              [--timeline]
 *
 * --restore-cores 2: only the restore figures, as the engine restores a
 * checkpoint of two cores: two states of half the size, restored by two
 * pinned threads at once against dd of their files by two threads at once
 * (below, "--restore-cores 2").
 *
 * A one-core restore replays a changelog chain with a helper thread on a
 * CPU other than --cpu, as the engine does when a CPU is spare
 * (wr_ckpt_load_core_with; "restore_helper_cpu" in the output, -1: none);
 * --no-restore-helper: on the restoring thread alone.  The two-core
 * restore has no spare CPU on a 2-CPU machine and uses none.
 *
 * After the fill, wr_arena_prefault_shadows maps the pages the shadows
 * will take (timed: prefault_s), as an engine could at start-up (core/
 * does not yet: its first checkpoints pay these faults), so the
 * updates phase sees the steady state rather than the first checkpoint's
 * page faults; --no-prefault measures the first checkpoints instead.
 *
 * --changelog: the updates phase checkpoints with the arena's changelog
 * (state/arena.h): a page checkpoint, then changelog checkpoints of the
 * updated slots until the logs reach the page file's size (the policy's
 * default), as the engine does; without it, incremental page checkpoints.
 * The runs without checkpoints have no log either.
 *
 * --timeline: the updates phase's runs with checkpoints also print their
 * updates/s per 100 ms to stderr, with what was in flight at each slot's
 * end (P page checkpoint, L log checkpoint, C committing, - none): where a
 * run's loss sits (the first, page checkpoint against the steady state).
 *
 * --log-max-pct P: the checkpoint policy's log_max_pct (a page checkpoint
 * comes again once the logs hold P% of the page files' bytes; 0 or absent:
 * the policy's default, 100), for the updates and the restore chain alike.
 *
 * --restore-only: one full checkpoint, then only the restore phase (for
 * comparing restore implementations; the state check still runs).
 *
 * --quick: 8 MiB, 1 rep, short phases, no fio, no cache dropping (the
 * bench-ckpt-smoke test; fails only on a wrong result, never on speed).
 * --dir defaults to ckpt-data beside the binary (the build dir), not /tmp:
 * bandwidths must be measured on a real disk, not tmpfs.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot/ckpt.h"
#include "state/table.h"
#include "bench_util.h"

#define BATCH 32u
#define REPS_MAX 15
#define FP 0xc4e7b3e1c4e7b3e1ull
#define SIZES_MAX 8

enum { PH_PAUSE = 1, PH_FLUSH = 2, PH_RESTORE = 4, PH_INCR = 8,
       PH_UPDATES = 16, PH_ALL = 31 };

struct opts {
	bool quick, fio, cold, prefault, restore_only, changelog;
	bool restore_helper;	/* a one-core restore takes a spare CPU */
	bool timeline;		/* --timeline: updates/s per 100 ms */
	unsigned phases;	/* PH_* bits */
	int cpu, reps, pauses;
	uint32_t tick;		/* updates per loop tick (sealed at its end) */
	uint32_t log_max_pct;	/* the policy's; 0: its default */
	int restore_cores;	/* 2: the restore phases on two cores */
	int helper_cpu;		/* the spare CPU it takes, or -1 */
	double seconds;
	char dir[PATH_MAX - 64];
	uint64_t sizes[SIZES_MAX];
	int nsizes;
};

/* One case: the arena, its table and the key space. */
struct state {
	const struct opts *o;
	char name[16];
	struct wr_arena *a;
	struct wr_table *t;
	uint64_t nkeys, capacity, rng, sum;
	struct wr_uring *u;
	struct wr_ckpt_committer *cm;	/* commits off this thread, as the
					 * engine's coordinator does */
	uint64_t log_pos;	/* --changelog: the last committed position */
};

/* Sorts v; the q-quantile (nearest rank). */
static double quantile(double *v, int n, double q)
{
	int i = (int)(q * (n - 1) + 0.5);

	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return v[i < n ? i : n - 1];
}

static void emit(const struct state *s, const char *metric, double v,
		 const char *unit, const char *extra)
{
	printf("{\"bench\":\"ckpt\",\"case\":\"%s\",\"metric\":\"%s\","
	       "\"value\":%.6g,\"unit\":\"%s\"%s%s}\n", s->name, metric, v,
	       unit, extra ? "," : "", extra ? extra : "");
	fflush(stdout);
}

/* ---- table driving ------------------------------------------------------ */

/* Upserts keys[0..n) (value += 1), batch i+1 prefetched before batch i. */
static int apply(struct state *s, const uint64_t *keys, uint32_t n)
{
	uint64_t h[BATCH];
	void *vals[BATCH];

	for (uint32_t i = 0; i < n; i += BATCH) {
		uint32_t m = n - i < BATCH ? n - i : BATCH;
		for (uint32_t j = 0; j < m; j++)
			h[j] = wr_table_hash(&keys[i + j], 8);
		for (uint32_t j = 0; i + BATCH + j < n && j < BATCH; j++)
			wr_table_prefetch(s->t,
				wr_table_hash(&keys[i + BATCH + j], 8));
		int err = wr_table_upsert_batch(s->t, &keys[i], h, m, vals);
		if (err)
			return err;
		for (uint32_t j = 0; j < m; j++)
			(*(uint64_t *)vals[j])++;
	}
	s->sum += n;
	return 0;
}

/* n random existing keys. */
static void random_keys(struct state *s, uint64_t *keys, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		keys[i] = splitmix64(&s->rng) % s->nkeys;
}

static int random_updates(struct state *s, uint64_t n)
{
	uint64_t keys[1024];

	while (n > 0) {
		uint32_t m = n < s->o->tick ? (uint32_t)n : s->o->tick;
		random_keys(s, keys, m);
		int err = apply(s, keys, m);
		if (err)
			return err;
		wr_arena_log_seal(s->a);	/* a loop tick ends */
		n -= m;
	}
	return 0;
}

static int state_create(struct state *s, const struct opts *o, uint64_t size)
{
	struct wr_arena_config ac = { 2 * size + (64u << 20), 0, 256 };
	struct wr_table_config tc = { 8, 8, size / 32 };
	uint64_t keys[1024];
	int err;

	memset(s, 0, sizeof(*s));
	s->o = o;
	s->rng = 42;
	snprintf(s->name, sizeof(s->name), "%lluM",
		 (unsigned long long)(size >> 20));
	s->capacity = size / 32;
	s->nkeys = s->capacity / 10 * 7;
	err = wr_arena_create(&ac, &s->a);
	if (!err)
		err = wr_table_create(s->a, &tc, &s->t);
	if (!err)
		err = wr_uring_create(64, &s->u);
	if (!err)
		err = wr_ckpt_committer_create(&s->cm);
	for (uint64_t k = 0; !err && k < s->nkeys; k += 1024) {
		uint32_t m = s->nkeys - k < 1024 ? (uint32_t)(s->nkeys - k)
						 : 1024;
		for (uint32_t j = 0; j < m; j++)
			keys[j] = k + j;
		err = apply(s, keys, m);
	}
	return err;
}

static void state_destroy(struct state *s)
{
	wr_table_destroy(s->t);
	wr_arena_destroy(s->a);
	wr_uring_destroy(s->u);
	wr_ckpt_committer_destroy(s->cm);
}

/* The sum of all values must be every update ever applied. */
static int state_check(struct state *s)
{
	struct wr_table_iter it = { 0 };
	const void *k;
	void *v;
	uint64_t sum = 0;

	while (wr_table_next(s->t, &it, &k, &v))
		sum += *(uint64_t *)v;
	if (sum == s->sum && wr_table_count(s->t) == s->nkeys)
		return 0;
	fprintf(stderr, "ckpt_bench: lost updates (%llu of %llu)\n",
		(unsigned long long)sum, (unsigned long long)s->sum);
	return -EIO;
}

/* ---- one checkpoint ----------------------------------------------------- */

struct ckpt {
	struct wr_ckpt_plan plan;
	struct wr_ckpt_writer *w;
	double t0, pause_s;
	uint64_t bytes;
	uint32_t pages, view;
	bool log;		/* a changelog checkpoint */
	uint64_t log_to;	/* the log's position at this checkpoint */
	bool committing;	/* handed to s->cm, w kept for its result */
	struct wr_ckpt_core_result r;
};

/* The synchronous part: a changelog mark when one is planned and the log
 * runs, else the snapshot (and the log's position there), as core/ckpt.c
 * does it. */
static int ckpt_cut(struct state *s, struct ckpt *c,
		    struct wr_ckpt_writer_config *cfg)
{
	uint32_t e;
	int err;

	c->log = c->plan.log && wr_arena_log_mark(s->a, &c->log_to) == 0;
	if (c->log) {
		cfg->log = true;
		cfg->log_from = s->log_pos;
		cfg->log_to = c->log_to;
		return 0;
	}
	if (c->plan.log)
		cfg->parent_id = 0;	/* the log broke: a full one */
	err = wr_arena_snapshot_begin(s->a, &e);
	if (!err && s->a->log && wr_arena_log_mark(s->a, &c->log_to) != 0)
		c->log_to = wr_arena_log_resume(s->a);
	return err;
}

/* The synchronous part plus the writer: cut, header stats, create. */
static int ckpt_start(struct state *s, struct ckpt *c, bool incremental)
{
	struct wr_ckpt_policy pol = { .retain = 2, .incremental = incremental,
				      .changelog = s->a->log != NULL,
				      .log_max_pct = s->o->log_max_pct };
	struct wr_table_stats ts;
	int err = wr_ckpt_plan_next(s->o->dir, &pol, 1, &c->plan);

	if (err)
		return err;
	struct wr_ckpt_writer_config cfg = { s->o->dir, c->plan.ckpt_id, 0, FP,
		s->u, 0, c->plan.parent_id, c->plan.parent_epoch[0] };
	c->t0 = now_s();
	err = ckpt_cut(s, c, &cfg);
	wr_table_get_stats(s->t, &ts);
	c->pause_s = now_s() - c->t0;
	if (err)
		return err;
	err = wr_ckpt_writer_create(&cfg, s->a, &c->w);
	if (!err)
		err = wr_ckpt_writer_add_section(c->w, "table", &ts,
						 sizeof(ts));
	return err;
}

/* The commit's result came back: the log released, the writer ended. */
static int ckpt_end(struct state *s, struct ckpt *c, int err)
{
	if (!err && s->a->log) {
		s->log_pos = c->log_to;
		wr_arena_log_release(s->a, c->log_to);
	}
	c->bytes = c->r.pages_size + c->r.meta_size;
	c->pages = c->r.pages_written;
	c->view = c->r.view_pages;
	c->committing = false;
	wr_ckpt_writer_destroy(c->w);
	c->w = NULL;
	if (err)
		fprintf(stderr, "ckpt_bench: checkpoint: %s (%d)\n",
			weir_last_error(), err);
	return err;
}

/* After the writer returned rc (1 durable or -errno): the commit goes to
 * the committer thread; 1 while it runs, else ckpt_end's result. */
static int ckpt_submit(struct state *s, struct ckpt *c, int rc)
{
	int err = rc < 0 ? rc : wr_ckpt_writer_result(c->w, &c->r);

	wr_arena_snapshot_end(s->a);	/* no-op after a log */
	if (!err) {
		struct wr_ckpt_commit_info ci = { s->o->dir, c->plan.ckpt_id,
			c->plan.parent_id, 0,
			(uint64_t)((now_s() - c->t0) * 1e6), 1, 4096, FP,
			"ckpt_bench", 2 };
		err = wr_ckpt_committer_commit(s->cm, &ci, &c->r, 1);
	}
	if (err)
		return ckpt_end(s, c, err);
	c->committing = true;
	return 1;
}

/* 1 while the commit runs, else its result (the checkpoint ended); `wait`
 * naps until it is done (no spin). */
static int ckpt_commit_done(struct state *s, struct ckpt *c, bool wait)
{
	int rc = 0;

	if ((wait ? wr_ckpt_committer_wait(s->cm, &rc)
		  : wr_ckpt_committer_poll(s->cm, &rc)) == 1)
		return 1;
	return ckpt_end(s, c, rc);
}

/* Submit and wait: the checkpoint committed (or failed) on return. */
static int ckpt_finish(struct state *s, struct ckpt *c, int rc)
{
	int err = ckpt_submit(s, c, rc);

	return err == 1 ? ckpt_commit_done(s, c, true) : err;
}

/* A whole checkpoint with nothing else running: seconds to durable. */
static int ckpt_idle(struct state *s, bool incremental, struct ckpt *c,
		     double *secs)
{
	int rc = ckpt_start(s, c, incremental);

	while (rc == 0)
		rc = wr_ckpt_writer_step(c->w);
	*secs = now_s() - c->t0;
	return ckpt_finish(s, c, rc);
}

/* ---- phases ------------------------------------------------------------- */

/* This thread's context switches so far, voluntary or not. */
static long switches(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru) != 0)
		return 0;
	return ru.ru_nvcsw + ru.ru_nivcsw;
}

/*
 * The synchronous part of a snapshot, timed n times between batches of
 * updates.  A sample during which the thread was switched out (getrusage
 * around it, outside the timed section) is counted apart: its time is the
 * scheduler's, not the snapshot's.  A preemption by the hypervisor is not
 * seen this way and stays in both maxima.
 */
static int phase_pause(struct state *s)
{
	int n = s->o->pauses, m = 0;
	double *p = malloc(sizeof(double) * (size_t)n), max_kept = 0;
	int err = p ? 0 : -ENOMEM;

	for (int i = 0; !err && i < n; i++) {
		struct wr_table_stats ts;
		uint32_t e;
		err = random_updates(s, 4096);
		long sw = switches();
		double t0 = now_s();
		if (!err)
			err = wr_arena_snapshot_begin(s->a, &e);
		wr_table_get_stats(s->t, &ts);
		p[i] = (now_s() - t0) * 1e6;
		if (switches() != sw)
			m++;
		else if (p[i] > max_kept)
			max_kept = p[i];
		wr_arena_snapshot_end(s->a);
	}
	if (!err) {
		char x[64];
		snprintf(x, sizeof(x), "\"n\":%d", n);
		emit(s, "pause_us_p50", quantile(p, n, 0.5), "us", x);
		emit(s, "pause_us_p99", quantile(p, n, 0.99), "us", x);
		emit(s, "pause_us_max", p[n - 1], "us", x);
		emit(s, "pause_switched_samples", m, "samples", x);
		emit(s, "pause_us_max_unswitched", max_kept, "us", x);
	}
	free(p);
	return err;
}

/* fio's sequential write of `bytes` in dir, blocks of bs, O_DIRECT,
 * fsync at the end: fio's own bandwidth in MB/s, or < 0. */
static double fio_write(const struct opts *o, uint64_t bytes, const char *bs)
{
	char cmd[PATH_MAX + 512];
	double kbps = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "fio --name=ckptfio --directory='%s' "
		 "--rw=write --bs=%s --ioengine=io_uring --iodepth=32 "
		 "--direct=1 --size=%llu --end_fsync=1 --output-format=terse "
		 "--terse-version=3 2>/dev/null | awk -F';' '{print $48}'",
		 o->dir, bs, (unsigned long long)((bytes + 65535) / 65536 * 65536));
	f = popen(cmd, "r");
	if (f == NULL || fscanf(f, "%lf", &kbps) != 1)
		kbps = -1;
	if (f && pclose(f) != 0)
		kbps = -1;
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/ckptfio*", o->dir);
	if (system(cmd) != 0)
		return -1;
	return kbps * 1024 / 1e6;
}

/* Full checkpoints alternating with fio (64 KiB blocks, the issue's
 * baseline, and 1 MiB, the writer's merged size), same bytes, same dir. */
static int phase_flush(struct state *s)
{
	double d[REPS_MAX], bw[REPS_MAX], f64[REPS_MAX], f1m[REPS_MAX];
	double r64[REPS_MAX], r1m[REPS_MAX];
	struct ckpt c = { 0 };
	int n = 0, err = 0, nf = 0;

	for (int i = 0; !err && i < s->o->reps; i++, n++) {
		err = ckpt_idle(s, false, &c, &d[i]);
		bw[i] = (double)c.bytes / d[i] / 1e6;
		if (err || !s->o->fio)
			continue;
		f64[nf] = fio_write(s->o, c.bytes, "64k");
		f1m[nf] = fio_write(s->o, c.bytes, "1m");
		if (f64[nf] > 0 && f1m[nf] > 0) {
			r64[nf] = bw[i] / f64[nf], r1m[nf] = bw[i] / f1m[nf];
			nf++;
		}
	}
	if (err)
		return err;
	emit(s, "flush_s", median(d, n), "s", NULL);
	emit(s, "flush_MBps", median(bw, n), "MB/s", NULL);
	if (nf > 0) {
		emit(s, "fio_64k_MBps", median(f64, nf), "MB/s",
		     "\"impl\":\"fio\"");
		emit(s, "fio_1m_MBps", median(f1m, nf), "MB/s",
		     "\"impl\":\"fio\"");
		emit(s, "flush_vs_fio_64k", median(r64, nf), "ratio",
		     "\"baseline\":\"fio 64k\"");
		emit(s, "flush_vs_fio_1m", median(r1m, nf), "ratio",
		     "\"baseline\":\"fio 1m\"");
	}
	return 0;
}

/* Drops the page cache (root only); whether it worked. */
static bool drop_caches(const struct opts *o)
{
	FILE *f;

	if (!o->cold)
		return false;
	sync();
	f = fopen("/proc/sys/vm/drop_caches", "w");
	if (f == NULL)
		return false;
	bool ok = fputs("3\n", f) >= 0;
	return fclose(f) == 0 && ok;
}

static void on_report(void *arg, const char *file, uint64_t off,
		      const char *what)
{
	(void)arg;
	fprintf(stderr, "ckpt_bench: %s at %llu: %s\n", file,
		(unsigned long long)off, what);
}

/*
 * Profiling one part of a run: with WEIR_PERF_CTL=FIFO (perf record -D -1
 * --control fifo:FIFO ...), sampling is on only while a measured part
 * runs: `restore` (each restore), `none`, `ckpt` and `log` (the updates
 * phase's runs without checkpoints, with them, and with the log alone);
 * WEIR_PERF_ONLY=PART picks one, default every part.
 */
static void perf_ctl(bool on, const char *part)
{
	const char *path = getenv("WEIR_PERF_CTL");
	const char *only = getenv("WEIR_PERF_ONLY");
	FILE *f;

	if (path == NULL || (only != NULL && strcmp(only, part) != 0) ||
	    (f = fopen(path, "w")) == NULL)
		return;
	fputs(on ? "enable\n" : "disable\n", f);
	fclose(f);
}

/* Restores the newest checkpoint into b as the engine does (one pass:
 * page checksums checked as the load reads them); seconds. */
static int restore_into(struct state *s, struct wr_arena *b, int helper_cpu,
			double *secs)
{
	struct wr_ckpt *ck;
	double t0 = now_s();
	int err = wr_ckpt_open_deferred(s->o->dir, 0, FP, on_report, NULL, &ck);

	if (err)
		return err;
	perf_ctl(true, "restore");
	err = wr_ckpt_load_core_with(ck, 0, b, helper_cpu);
	perf_ctl(false, "restore");
	*secs = now_s() - t0;
	wr_ckpt_close(ck);
	return err;
}

/* Every page of a's current view has the same bytes in b. */
static int same_pages(const struct wr_arena *a, const struct wr_arena *b)
{
	struct wr_arena_iter ia = { 0 }, ib = { 0 };

	for (;;) {
		bool ha = wr_arena_pages_written_since(a, 0, &ia);
		bool hb = wr_arena_pages_written_since(b, 0, &ib);
		if (ha != hb || (ha && ia.page != ib.page))
			return -EIO;
		if (!ha)
			return 0;
		if (memcmp(wr_arena_page_ptr(a, ia.page),
			   wr_arena_page_ptr(b, ib.page), a->page_size) != 0) {
			return -EIO;
		}
	}
}

static int dd_file(const struct opts *o, const char *name)
{
	char cmd[PATH_MAX + 256];

	snprintf(cmd, sizeof(cmd), "dd if='%s/%s' of=/dev/null bs=1M "
		 "status=none", o->dir, name);
	return system(cmd) == 0 ? 0 : -1;
}

/* dd (1 MiB blocks) of every file the newest checkpoint needs (its page
 * files, its logs, its meta file): seconds, or < 0. */
static double dd_read(const struct opts *o)
{
	struct wr_ckpt_manifest m;
	uint64_t ids[64];
	uint32_t n;
	int err = 0;
	double t0;

	if (wr_ckpt_list(o->dir, ids, 64, &n) != 0 || n == 0 || n > 64 ||
	    wr_ckpt_manifest_read(o->dir, ids[n - 1], &m) != 0)
		return -1;
	t0 = now_s();
	for (uint32_t c = 0; c < m.cores && !err; c++) {
		const struct wr_ckpt_core_info *ci = &m.core[c];
		for (uint32_t k = 0; k < ci->nchain && !err; k++)
			err = dd_file(o, ci->chain[k].name);
		for (uint32_t k = 0; k < ci->nlog && !err; k++)
			err = dd_file(o, ci->log[k].name);
		if (!err)
			err = dd_file(o, ci->meta.name);
	}
	wr_ckpt_manifest_free(&m);
	return err ? -1 : now_s() - t0;
}

/* Restores the newest checkpoint into fresh arenas, caches dropped, --reps
 * times, against dd of its files: prefix_restore_s, _read_s, _vs_read. */
static int restore_vs_read(struct state *s, const char *prefix)
{
	struct wr_arena_config ac = { 2 * s->capacity * 32 + (64u << 20), 0, 256 };
	double r[REPS_MAX], d[REPS_MAX], ratio[REPS_MAX];
	bool cold = true;
	char name[64];
	int err = 0, n = 0;

	for (int i = 0; !err && i < s->o->reps; i++, n++) {
		struct wr_arena *b;
		err = wr_arena_create(&ac, &b);
		if (err)
			break;
		cold &= drop_caches(s->o);
		err = restore_into(s, b, s->o->helper_cpu, &r[i]);
		if (!err)
			err = same_pages(s->a, b);
		wr_arena_destroy(b);
		cold &= drop_caches(s->o);
		d[i] = dd_read(s->o);
		ratio[i] = r[i] / d[i];
	}
	if (err) {
		fprintf(stderr, "ckpt_bench: restore: %s (%d)\n",
			err == -EIO ? "pages differ" : weir_last_error(), err);
		return err;
	}
	const char *x = cold ? "\"cold\":true" : "\"cold\":false";
	snprintf(name, sizeof(name), "%srestore_s", prefix);
	emit(s, name, median(r, n), "s", x);
	snprintf(name, sizeof(name), "%sread_s", prefix);
	emit(s, name, median(d, n), "s", x);
	snprintf(name, sizeof(name), "%srestore_vs_read", prefix);
	emit(s, name, median(ratio, n), "ratio", x);
	snprintf(name, sizeof(name), "%srestore_helper_cpu", prefix);
	emit(s, name, s->o->helper_cpu, "cpu", NULL);
	return 0;
}

static int phase_restore(struct state *s)
{
	return restore_vs_read(s, "");
}

/* n keys whose home slot lies in the first 1% of the slot array. */
static void clustered_keys(struct state *s, uint64_t *keys, uint64_t n)
{
	uint64_t lim = s->capacity / 100;

	for (uint64_t i = 0, k = 0; i < n && k < s->nkeys; k++) {
		uint64_t h = wr_table_hash(&k, 8);
		if (((h >> 32) & (s->capacity - 1)) < lim)
			keys[i++] = k;
	}
}

static int incremental_case(struct state *s, const char *what, bool random,
			    const struct ckpt *full)
{
	uint64_t n = s->nkeys / 100;
	uint64_t *keys = calloc(n, sizeof(*keys));
	struct ckpt c = { 0 };
	double secs;
	char x[160];
	int err = keys ? 0 : -ENOMEM;

	if (!err && random)
		random_keys(s, keys, (uint32_t)n);
	else if (!err)
		clustered_keys(s, keys, n);
	for (uint64_t i = 0; !err && i < n; i += 1024)
		err = apply(s, keys + i, n - i < 1024 ? (uint32_t)(n - i) : 1024);
	free(keys);
	if (!err)
		err = ckpt_idle(s, true, &c, &secs);
	if (err)
		return err;
	snprintf(x, sizeof(x), "\"keys_changed\":\"1%%/%s\",\"pages\":%u,"
		 "\"view_pages\":%u", what, c.pages, c.view);
	emit(s, random ? "incr_bytes_random" : "incr_bytes_clustered",
	     (double)c.bytes, "bytes", x);
	emit(s, random ? "incr_vs_full_random" : "incr_vs_full_clustered",
	     (double)c.bytes / (double)full->bytes, "ratio", x);
	emit(s, random ? "incr_pages_frac_random" : "incr_pages_frac_clustered",
	     (double)c.pages / (double)c.view, "ratio", x);
	return 0;
}

static int log_on(struct state *s);

/* --changelog: a page checkpoint with the log on, 1% of keys updated at
 * random, a changelog checkpoint: its bytes against the full one's. */
static int changelog_case(struct state *s, const struct ckpt *full)
{
	uint64_t n = s->nkeys / 100;
	struct ckpt base = { 0 }, c = { 0 };
	double secs;
	char x[128];
	int err = log_on(s);

	if (!err)
		err = ckpt_idle(s, false, &base, &secs);
	if (!err && base.log)
		err = -EPROTO;	/* the first one after enable is pages */
	if (!err)
		err = random_updates(s, n);
	if (!err)
		err = ckpt_idle(s, true, &c, &secs);
	wr_arena_log_disable(s->a);
	if (err)
		return err;
	snprintf(x, sizeof(x), "\"keys_changed\":\"1%%/random\","
		 "\"changelog\":%s", c.log ? "true" : "false");
	emit(s, "changelog_bytes_random", (double)c.bytes, "bytes", x);
	emit(s, "changelog_vs_full_random",
	     (double)c.bytes / (double)full->bytes, "ratio", x);
	emit(s, "changelog_bytes_per_update", (double)c.bytes / (double)n,
	     "bytes", x);
	return 0;
}

static int phase_incremental(struct state *s)
{
	struct ckpt full = { 0 };
	double secs;
	int err = ckpt_idle(s, false, &full, &secs);

	if (!err) {
		emit(s, "full_bytes", (double)full.bytes, "bytes", NULL);
		err = incremental_case(s, "random", true, &full);
	}
	if (!err)
		err = incremental_case(s, "clustered", false, &full);
	if (!err && s->o->changelog)
		err = changelog_case(s, &full);
	return err;
}

/* CPU seconds used by the whole process (io_uring's io-wq workers are
 * its threads): a rate per CPU second is what the checkpoint costs the
 * core, whatever share of the shared VM's CPUs the bench got. */
static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Updates for o->seconds; with ckpt, an incremental checkpoint starts
 * every second (when none is in flight) and its writer is stepped between
 * batches.  Updates/s of wall and of CPU time; *nckpt checkpoints
 * completed; pauses appended. */
/* --changelog: a ring for about half the state's bytes of log (a power of
 * two, >= 64 MiB): the policy writes pages again before the logs reach
 * the state's size, so two intervals fit. */
static int log_on(struct state *s)
{
	uint64_t ring = 64ull << 20;

	while (ring < s->capacity * 32 / 2)
		ring <<= 1;
	return wr_arena_log_enable(s->a, ring, 1u << 16);
}

/* Checkpoints by kind and their bytes, over a whole phase. */
struct ckpt_mix {
	int logs, pages;
	double log_bytes, page_bytes;
};

static void mix_add(struct ckpt_mix *m, const struct ckpt *c)
{
	if (c->log)
		m->logs++, m->log_bytes += (double)c->bytes;
	else
		m->pages++, m->page_bytes += (double)c->bytes;
}

/* --timeline: updates per 100 ms slot of a run with checkpoints, and
 * what was in flight at the slot's end (P: a page checkpoint, L: a log
 * checkpoint, C: committing, -: none), printed to stderr as TSV. */
enum { TL_SLOTS = 6000 };

struct timeline {
	uint64_t n[TL_SLOTS];
	char what[TL_SLOTS];
	int last;
};

static void tl_note(struct timeline *tl, double dt, uint64_t n,
		    const struct ckpt *c)
{
	int i = (int)(dt * 10.0);

	if (tl == NULL || i >= TL_SLOTS)
		return;
	tl->n[i] = n;
	tl->what[i] = c->w == NULL ? '-' : c->committing ? 'C'
		      : c->log ? 'L' : 'P';
	tl->last = i;
}

static void tl_print(const struct state *s, const struct timeline *tl)
{
	uint64_t prev = 0;

	fprintf(stderr, "# %s: t_s\tupdates_per_s\tin_flight\n", s->name);
	for (int i = 0; i <= tl->last; i++) {
		if (tl->n[i] == 0)
			continue;
		fprintf(stderr, "%.1f\t%.0f\t%c\n", (i + 1) / 10.0,
			(double)(tl->n[i] - prev) * 10.0, tl->what[i]);
		prev = tl->n[i];
	}
}

static int run_updates(struct state *s, bool ckpt, double rate[2],
		       int *nckpt, double *pauses, int *np, int np_max,
		       struct ckpt_mix *mix)
{
	struct ckpt c = { 0 };
	int err = ckpt && s->o->changelog ? log_on(s) : 0, rc = 0;
	double t0 = now_s(), next = t0 + (ckpt ? 1.0 : 1e30), t = t0;
	double c0 = cpu_s();
	uint64_t n = 0;
	struct timeline *tl = ckpt && s->o->timeline
			      ? calloc(1, sizeof(*tl)) : NULL;

	perf_ctl(true, ckpt ? "ckpt" : "none");
	*nckpt = 0;
	while (!err && (t = now_s()) - t0 < s->o->seconds) {
		tl_note(tl, t - t0, n, &c);
		if (c.w == NULL && t >= next) {
			next += 1.0;
			err = ckpt_start(s, &c, true);
			if (!err && *np < np_max)
				pauses[(*np)++] = c.pause_s * 1e6;
		}
		if (!err)
			err = random_updates(s, 1024);
		n += 1024;
		if (!err && c.committing &&
		    (err = ckpt_commit_done(s, &c, false)) == 0) {
			++*nckpt;
			if (mix)
				mix_add(mix, &c);
		} else if (!err && c.w && !c.committing &&
			   (rc = wr_ckpt_writer_step(c.w)) != 0) {
			err = ckpt_submit(s, &c, rc);
		}
		err = err == 1 ? 0 : err;
	}
	perf_ctl(false, ckpt ? "ckpt" : "none");
	if (tl)
		tl_print(s, tl);
	free(tl);
	rate[0] = (double)n / (t - t0);
	rate[1] = (double)n / (cpu_s() - c0);
	while (!err && c.w && !c.committing &&
	       (rc = wr_ckpt_writer_step(c.w)) == 0)
		;
	if (!err && c.w)
		err = c.committing ? ckpt_commit_done(s, &c, true)
				   : ckpt_finish(s, &c, rc);
	wr_arena_log_disable(s->a);
	return err;
}

/* --changelog: updates/s with the log noting and sealing every batch but
 * no checkpoint (the ring released as it is sealed): what the log costs
 * by itself, paid whether or not a checkpoint runs. */
static int run_log_only(struct state *s, double *rate)
{
	int err = log_on(s);
	double t0 = now_s(), t = t0;
	uint64_t n = 0;

	if (!err)
		(void)wr_arena_log_resume(s->a);	/* it starts broken */
	perf_ctl(true, "log");
	while (!err && (t = now_s()) - t0 < s->o->seconds) {
		err = random_updates(s, 1024);
		wr_arena_log_release(s->a, s->a->log->head);
		n += 1024;
	}
	perf_ctl(false, "log");
	*rate = (double)n / (t - t0);
	if (!err && s->a->log->breaks != 0)
		err = -ENOSPC;	/* it stopped noting: not the cost measured */
	wr_arena_log_disable(s->a);
	return err;
}

static int phase_updates(struct state *s)
{
	double off[REPS_MAX], on[REPS_MAX], ratio[REPS_MAX], pauses[4096];
	double lratio[REPS_MAX], lrate;
	double coff[REPS_MAX], con[REPS_MAX], cratio[REPS_MAX], r[2];
	int err = 0, n = 0, nck = 0, np = 0, k;
	struct ckpt_mix mix = { 0 };

	for (int i = 0; !err && i < s->o->reps; i++, n++) {
		err = run_updates(s, false, r, &k, NULL, &np, 0, NULL);
		off[i] = r[0], coff[i] = r[1];
		if (!err)
			err = run_updates(s, true, r, &k, pauses, &np, 4096,
					  &mix);
		on[i] = r[0], con[i] = r[1];
		ratio[i] = on[i] / off[i], cratio[i] = con[i] / coff[i];
		nck += k;
		if (!err && s->o->changelog && (err = run_log_only(s, &lrate)) == 0)
			lratio[i] = lrate / off[i];
	}
	if (err)
		return err;
	char x[64];
	snprintf(x, sizeof(x), "\"checkpoints\":%d", nck);
	emit(s, "updates_per_s_no_ckpt", median(off, n), "updates/s", NULL);
	emit(s, "updates_per_s_ckpt_1s", median(on, n), "updates/s", x);
	emit(s, "updates_ckpt_vs_none", median(ratio, n), "ratio", x);
	emit(s, "updates_per_cpu_s_no_ckpt", median(coff, n), "updates/s",
	     NULL);
	emit(s, "updates_per_cpu_s_ckpt_1s", median(con, n), "updates/s", x);
	emit(s, "updates_cpu_ckpt_vs_none", median(cratio, n), "ratio", x);
	if (s->o->changelog)
		emit(s, "updates_log_only_vs_none", median(lratio, n), "ratio",
		     NULL);
	if (np > 0) {
		snprintf(x, sizeof(x), "\"n\":%d", np);
		emit(s, "pause_in_run_us_p50", quantile(pauses, np, 0.5), "us", x);
		emit(s, "pause_in_run_us_max", pauses[np - 1], "us", x);
	}
	snprintf(x, sizeof(x), "\"page_ckpts\":%d,\"log_ckpts\":%d",
		 mix.pages, mix.logs);
	if (mix.pages)
		emit(s, "bytes_per_page_ckpt", mix.page_bytes / mix.pages,
		     "bytes", x);
	if (mix.logs)
		emit(s, "bytes_per_log_ckpt", mix.log_bytes / mix.logs,
		     "bytes", x);
	return 0;
}

/* --changelog: the restore of a checkpoint whose chain holds as many logs
 * as the policy allows (a page checkpoint, then rounds of a quarter of the
 * keys updated at random, ~1 s of updates here, each followed by a
 * changelog checkpoint, while the next would still be one; at most 31):
 * pages loaded and every log replayed, against reading the same files. */
static int build_chain(struct state *s, int *nlogs)
{
	struct ckpt c = { 0 };
	double secs;
	int err = log_on(s), logs = 0;

	if (!err)
		err = ckpt_idle(s, false, &c, &secs);
	while (!err && logs < 31) {
		struct wr_ckpt_policy pol = { .retain = 2, .changelog = true,
					      .log_max_pct = s->o->log_max_pct };
		struct wr_ckpt_plan plan;
		err = wr_ckpt_plan_next(s->o->dir, &pol, 1, &plan);
		if (err || !plan.log)
			break;	/* the chain is as long as it gets */
		err = random_updates(s, s->nkeys / 4);
		if (!err)
			err = ckpt_idle(s, true, &c, &secs);
		logs += c.log;
	}
	wr_arena_log_disable(s->a);
	*nlogs = logs;
	return err;
}

static int phase_changelog_restore(struct state *s)
{
	int logs, err = build_chain(s, &logs);

	if (!err) {
		char x[64];
		snprintf(x, sizeof(x), "\"logs\":%d", logs);
		emit(s, "changelog_chain_logs", logs, "files", x);
		err = restore_vs_read(s, "changelog_");
	}
	return err;
}

/* ---- --restore-cores 2: the restore phases as the engine runs them ----
 *
 * The engine restores a checkpoint of N cores on N cores at once, each
 * pinned worker loading its own pages and replaying its own logs
 * (core/pipeline.c preload).  Here: two states of half the size, each
 * checkpointed into its own directory (a chain per core, as a manifest
 * of two cores has), restored by two threads pinned to CPUs 0 and 1,
 * against dd of the same files by two threads at once: wall times. */

struct shard_job {
	struct state *s;
	struct wr_arena *b;	/* NULL: dd_read instead of a restore */
	int cpu, err;
	double secs;
};

static void *shard_main(void *arg)
{
	struct shard_job *j = arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(j->cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
	if (j->b != NULL)
		j->err = restore_into(j->s, j->b, -1, &j->secs);
	else
		j->err = (j->secs = dd_read(j->s->o)) < 0 ? -EIO : 0;
	return NULL;
}

/* Both jobs at once: wall seconds, or < 0. */
static double run_pair(struct shard_job *j)
{
	pthread_t th[2];
	double t0 = now_s();

	for (int k = 0; k < 2; k++)
		if (pthread_create(&th[k], NULL, shard_main, &j[k]) != 0)
			return -1;
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	return j[0].err || j[1].err ? -1 : now_s() - t0;
}

static int restore_pair(struct state *s, double *r, double *d, bool *cold)
{
	struct wr_arena_config ac = { 2 * s[0].capacity * 32 + (64u << 20),
				      0, 256 };
	struct shard_job j[2] = { { &s[0], NULL, 0, 0, 0 },
				  { &s[1], NULL, 1, 0, 0 } };
	int err = 0;

	for (int k = 0; k < 2 && !err; k++)
		err = wr_arena_create(&ac, &j[k].b);
	*cold &= drop_caches(s[0].o);
	if (!err && (*r = run_pair(j)) < 0)
		err = j[0].err ? j[0].err : j[1].err;
	for (int k = 0; k < 2; k++) {
		if (!err && j[k].b)
			err = same_pages(s[k].a, j[k].b);
		wr_arena_destroy(j[k].b);
		j[k].b = NULL;
	}
	*cold &= drop_caches(s[0].o);
	if (!err && (*d = run_pair(j)) < 0)
		err = -EIO;
	return err;
}

static int restore_vs_read_pair(struct state *s, const char *prefix)
{
	double r[REPS_MAX], d[REPS_MAX], ratio[REPS_MAX];
	char name[64];
	bool cold = true;
	int err = 0, n = 0;

	for (int i = 0; !err && i < s[0].o->reps; i++, n++) {
		err = restore_pair(s, &r[i], &d[i], &cold);
		ratio[i] = r[i] / d[i];
	}
	if (err) {
		fprintf(stderr, "ckpt_bench: restore on 2 cores: %s (%d)\n",
			err == -EIO ? "pages differ or dd failed" :
			weir_last_error(), err);
		return err;
	}
	const char *x = cold ? "\"cold\":true,\"cores\":2"
			     : "\"cold\":false,\"cores\":2";
	snprintf(name, sizeof(name), "%srestore_s", prefix);
	emit(&s[0], name, median(r, n), "s", x);
	snprintf(name, sizeof(name), "%sread_s", prefix);
	emit(&s[0], name, median(d, n), "s", x);
	snprintf(name, sizeof(name), "%srestore_vs_read", prefix);
	emit(&s[0], name, median(ratio, n), "ratio", x);
	return 0;
}

/* A full checkpoint of each, restored; with --changelog then a chain of
 * logs on each, restored. */
static int pair_phases(struct state *s)
{
	struct ckpt c = { 0 };
	double secs;
	int err = 0, logs[2] = { 0, 0 };

	for (int k = 0; k < 2 && !err; k++)
		err = ckpt_idle(&s[k], false, &c, &secs);
	if (!err)
		err = restore_vs_read_pair(s, "");
	for (int k = 0; k < 2 && !err && s[0].o->changelog; k++)
		err = build_chain(&s[k], &logs[k]);
	if (!err && s[0].o->changelog) {
		char x[64];
		snprintf(x, sizeof(x), "\"logs\":%d,\"cores\":2", logs[0]);
		emit(&s[0], "changelog_chain_logs", logs[0], "files", x);
		err = restore_vs_read_pair(s, "changelog_");
	}
	return err;
}

static int run_size_pair(const struct opts *o, uint64_t size)
{
	struct opts oc[2] = { *o, *o };
	struct state s[2];
	char cmd[PATH_MAX + 64];
	int err = 0, made = 0;

	for (int k = 0; k < 2 && !err; k++, made++) {
		if (snprintf(oc[k].dir, sizeof(oc[k].dir), "%s/core%d", o->dir,
			     k) >= (int)sizeof(oc[k].dir))
			err = -ENAMETOOLONG;
		else if (mkdir(o->dir, 0700) != 0 && errno != EEXIST)
			err = -errno;
		if (!err)
			err = state_create(&s[k], &oc[k], size / 2);
		if (err)
			break;
		if (snprintf(s[k].name, sizeof(s[k].name), "%uMx2",
			     (unsigned)(size >> 21) % 100000000u) < 0)
			s[k].name[0] = '\0';
		fprintf(stderr, "ckpt_bench: %s: core %d: %llu keys\n",
			s[k].name, k, (unsigned long long)s[k].nkeys);
	}
	if (!err)
		err = pair_phases(s);
	if (err)
		fprintf(stderr, "ckpt_bench: 2 cores failed: %s (%d)\n",
			weir_last_error(), err);
	for (int k = 0; k < made; k++)
		state_destroy(&s[k]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", o->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "ckpt_bench: could not remove %s\n", o->dir);
	return err;
}

/* ---- main --------------------------------------------------------------- */

static int run_phases(const struct opts *o, struct state *s)
{
	int err = 0;
	double t0;

	if (o->prefault) {
		t0 = now_s();
		err = wr_arena_prefault_shadows(s->a);
		emit(s, "prefault_s", now_s() - t0, "s", NULL);
	}
	if (!err && (o->phases & PH_PAUSE))
		err = phase_pause(s);
	if (!err && (o->phases & (PH_FLUSH | PH_RESTORE)))
		err = phase_flush(s);	/* restore needs a checkpoint */
	if (!err && (o->phases & PH_RESTORE))
		err = phase_restore(s);
	if (!err && (o->phases & PH_INCR))
		err = phase_incremental(s);
	if (!err && (o->phases & PH_UPDATES))
		err = phase_updates(s);
	if (!err && o->changelog && (o->phases & PH_RESTORE))
		err = phase_changelog_restore(s);
	return err;
}

/* --restore-only: one full checkpoint to restore, then the restore phase. */
static int phase_restore_only(struct state *s)
{
	struct ckpt c = { 0 };
	double secs;
	int err = ckpt_idle(s, false, &c, &secs);

	return err ? err : phase_restore(s);
}

static int run_size(const struct opts *o, uint64_t size)
{
	struct state s;
	char cmd[PATH_MAX + 64];
	double t0 = now_s();
	int err = state_create(&s, o, size);

	if (!err)
		fprintf(stderr, "ckpt_bench: %s: %llu keys filled in %.1f s\n",
			s.name, (unsigned long long)s.nkeys, now_s() - t0);
	if (!err && o->restore_only)
		err = phase_restore_only(&s);
	else if (!err)
		err = run_phases(o, &s);
	if (!err)
		err = state_check(&s);
	if (err)
		fprintf(stderr, "ckpt_bench: %s failed: %s (%d)\n", s.name,
			weir_last_error(), err);
	state_destroy(&s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", o->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "ckpt_bench: could not remove %s\n", o->dir);
	return err;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);

	switch (*end) {
	case 'G': case 'g': return v << 30;
	case 'M': case 'm': return v << 20;
	case 'K': case 'k': return v << 10;
	default: return v;
	}
}

static void parse_sizes(struct opts *o, char *list)
{
	o->nsizes = 0;
	for (char *tok = strtok(list, ","); tok && o->nsizes < SIZES_MAX;
	     tok = strtok(NULL, ","))
		o->sizes[o->nsizes++] = parse_size(tok);
}

static int usage(void)
{
	fprintf(stderr, "usage: ckpt_bench [--quick] [--sizes 64M,1G,4G] "
		"[--dir DIR] [--reps R] [--seconds S] [--pauses N] "
		"[--cpu N] [--no-fio] "
		"[--phases pause,flush,restore,incr,updates] "
		"[--no-prefault] [--restore-only] [--changelog] "
		"[--restore-cores 2] [--tick N] [--no-restore-helper] "
		"[--log-max-pct P] [--timeline]\n");
	return 2;
}

/* Comma-separated phase names to PH_* bits; 0 on an unknown name. */
static unsigned parse_phases(char *list)
{
	static const char *names[] = { "pause", "flush", "restore", "incr",
				       "updates" };
	unsigned bits = 0;

	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		unsigned i = 0;
		while (i < 5 && strcmp(tok, names[i]) != 0)
			i++;
		if (i == 5)
			return 0;
		bits |= 1u << i;
	}
	return bits;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	char sizes[] = "64M,1G,4G", *slash = strrchr(argv[0], '/');

	*o = (struct opts){ .fio = true, .cold = true, .cpu = 0, .reps = 3,
			    .pauses = 2000, .seconds = 5, .phases = PH_ALL,
			    .prefault = true, .tick = 128,
			    .restore_helper = true };
	snprintf(o->dir, sizeof(o->dir), "%.*s/ckpt-data",
		 slash ? (int)(slash - argv[0]) : 1, slash ? argv[0] : ".");
	parse_sizes(o, sizes);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--quick") == 0) {
			o->quick = true, o->fio = o->cold = false;
			o->reps = 1, o->pauses = 200, o->seconds = 0.3;
			o->sizes[0] = 8u << 20, o->nsizes = 1;
		} else if (strcmp(a, "--no-fio") == 0) {
			o->fio = false;
		} else if (strcmp(a, "--restore-only") == 0) {
			o->restore_only = true;
		} else if (strcmp(a, "--changelog") == 0) {
			o->changelog = true;
		} else if (strcmp(a, "--no-prefault") == 0) {
			o->prefault = false;
		} else if (strcmp(a, "--no-restore-helper") == 0) {
			o->restore_helper = false;
		} else if (strcmp(a, "--timeline") == 0) {
			o->timeline = true;
		} else if (v == NULL) {
			return usage();
		} else if (strcmp(a, "--sizes") == 0) {
			parse_sizes(o, argv[++i]);
		} else if (strcmp(a, "--dir") == 0) {
			snprintf(o->dir, sizeof(o->dir), "%s", argv[++i]);
		} else if (strcmp(a, "--reps") == 0) {
			o->reps = atoi(argv[++i]);
		} else if (strcmp(a, "--seconds") == 0) {
			o->seconds = atof(argv[++i]);
		} else if (strcmp(a, "--pauses") == 0) {
			o->pauses = atoi(argv[++i]);
		} else if (strcmp(a, "--cpu") == 0) {
			o->cpu = atoi(argv[++i]);
		} else if (strcmp(a, "--tick") == 0) {
			o->tick = (uint32_t)atoi(argv[++i]);
		} else if (strcmp(a, "--log-max-pct") == 0) {
			o->log_max_pct = (uint32_t)atoi(argv[++i]);
		} else if (strcmp(a, "--restore-cores") == 0 && v != NULL) {
			o->restore_cores = atoi(argv[++i]);
			if (o->restore_cores != 1 && o->restore_cores != 2)
				return usage();
		} else if (strcmp(a, "--phases") == 0) {
			o->phases = parse_phases(argv[++i]);
		} else {
			return usage();
		}
	}
	if (o->reps < 1 || o->reps > REPS_MAX || o->pauses < 1 ||
	    o->tick < 1 || o->tick > 1024 ||
	    o->nsizes == 0 || o->seconds <= 0 || o->phases == 0)
		return usage();
	return 0;
}

/* The first CPU this process may run on other than `cpu`, or -1. */
static int spare_cpu(int cpu)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -1;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (c != cpu && CPU_ISSET(c, &set))
			return c;
	return -1;
}

int main(int argc, char **argv)
{
	struct opts o;
	cpu_set_t set;
	int err = parse_opts(&o, argc, argv);

	if (err)
		return err;
	if (o.fio && system("command -v fio >/dev/null 2>&1") != 0) {
		fprintf(stderr, "ckpt_bench: no fio: fio columns skipped\n");
		o.fio = false;
	}
	o.helper_cpu = o.restore_helper ? spare_cpu(o.cpu) : -1;
	CPU_ZERO(&set);
	CPU_SET(o.cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		perror("ckpt_bench: sched_setaffinity");
	for (int i = 0; !err && i < o.nsizes; i++)
		err = o.restore_cores == 2 ? run_size_pair(&o, o.sizes[i])
					   : run_size(&o, o.sizes[i]);
	return err ? 1 : 0;
}
