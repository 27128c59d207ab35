/*
 * ckpt_pipeline_test.c — checkpoints through the whole engine: every state
 * kind and timers survive a SIGKILL, on the same and on another core
 * count, and the output is exactly what an uninterrupted run writes.
 *
 * Test plan:
 *   - the job: generator (paced, so a kill lands mid-run) -> key_by ->
 *     process with a VALUE (sum), a LIST (values mod 1000), a MAP (value
 *     mod 5 -> count) and an AGGREGATING (count, max) state; each key
 *     registers an event timer at FINAL_TS, so every key's final state is
 *     emitted once, when the input ends -> CSV file sink.  The rows are
 *     the final state, so "output equal" is "state equal".
 *   - reference: one uninterrupted run on 2 cores, no checkpoints.
 *   - kill: a child runs the job with checkpoints every 20-60 ms and is
 *     SIGKILLed after a random delay; the same job is run again (1 or 2
 *     cores: 2->2, 2->1, 1->2) until it ends.  The output file equals the
 *     reference byte for byte once sorted, and no .inprogress is left.
 *   - refusal: a job whose state differs (another value size) finds the
 *     checkpoints of the first, weir_pipeline_run fails with -ESTALE and
 *     the directory is unchanged (same names, sizes and bytes).
 *   - a checkpointing job that runs to the end without a kill writes the
 *     reference output and commits checkpoints (stats > 0), its pauses,
 *     alignments and working flush steps timed (ordered percentiles).
 *   - a run ends with the next checkpoint prepared (its files created
 *     ahead by the committer): they are removed, no file of a later id
 *     than the newest committed is left.
 *   - windows: the same kill/resume (2->2, 2->1, 1->2) for a job whose
 *     operator is a sliding window (64 ms every 16 ms, count and sum per
 *     key, 100 ms allowed lateness, so fired windows stay with their
 *     "emitted" flags until purged and get snapshotted and re-sharded in
 *     that state), with checkpoints landing while windows fire.  The
 *     watermark allows the generator's disorder, so no record is late and
 *     the rows are deterministic.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "weir/checkpoint.h"
#include "weir/state.h"
#include "weir/window.h"

#ifdef __SANITIZE_THREAD__
/*
 * TSan cannot fork a process whose jemalloc holds more locks than its
 * deadlock detector tracks, so under TSan the "crash" is a stop from
 * another thread: the run ends mid-flight without finishing its sinks or
 * its checkpoint, which exercises the same barriers and restore.  SIGKILL
 * itself is tested by the release and ASan builds.
 */
struct stopper {
	struct weir_pipeline *p;
	unsigned delay_ms;
};

static void *stop_later(void *arg)
{
	struct stopper *s = arg;
	struct timespec d = { s->delay_ms / 1000,
			      (s->delay_ms % 1000) * 1000000L };

	nanosleep(&d, NULL);
	weir_pipeline_stop_remote(s->p);
	return NULL;
}
#endif

#ifdef __SANITIZE_THREAD__ /* ~20x slower: a quarter of the records */
#define NREC 60000u
#define RATE 40000u
#define TRIALS(n) 1u
#else
#define NREC 240000u
#define RATE 160000u /* records/s: the run takes ~1.5 s */
#define TRIALS(n) (n)
#endif
#define NKEY 4001u
#define FINAL_TS (1ll << 40)

enum { ST_SUM, ST_LIST, ST_MAP, ST_AGG, NST };

struct in_rec {
	uint64_t key, val;
};

struct out_rec {
	uint64_t key, sum, list_len, list_sum, map_size, map_total, count, max;
};

static void make(uint64_t i, uint64_t seed, void *rec, int64_t *ts, void *arg)
{
	struct in_rec r = { (i * 7919u + seed) % NKEY, i };

	(void)arg;
	memcpy(rec, &r, sizeof(r));
	*ts = (int64_t)(i / 64);
}

static void key_of(const void *rec, void *key, void *arg)
{
	(void)arg;
	memcpy(key, rec, 8);
}

struct cm {
	uint64_t count, max;
};

static void cm_create(void *acc, void *arg)
{
	(void)arg;
	memset(acc, 0, sizeof(struct cm));
}

static void cm_add(void *acc, const void *in, void *arg)
{
	struct cm *a = acc;
	const struct in_rec *r = in;

	(void)arg;
	a->count++;
	if (r->val > a->max)
		a->max = r->val;
}

static void cm_result(const void *acc, void *out, void *arg)
{
	(void)arg;
	memcpy(out, acc, sizeof(struct cm));
}

static const struct weir_aggregate_ops cm_ops = {
	.create = cm_create, .add = cm_add, .result = cm_result,
	.acc_size = sizeof(struct cm), .out_size = sizeof(struct cm) };

static int process(struct weir_ctx *c, const void *rec, void *arg)
{
	const struct in_rec *r = rec;
	uint64_t *sum, *cnt, mkey = r->val % 5;
	uint32_t elem = (uint32_t)(r->val % 1000);
	int err;

	(void)arg;
	if ((err = weir_value_update(c, ST_SUM, (void **)&sum, NULL)) != 0)
		return err;
	*sum += r->val;
	if ((err = weir_list_append(c, ST_LIST, &elem)) != 0)
		return err;
	if ((err = weir_map_update(c, ST_MAP, &mkey, (void **)&cnt, NULL)) != 0)
		return err;
	(*cnt)++;
	if ((err = weir_aggregate_add(c, ST_AGG, r)) != 0)
		return err;
	return weir_timer_register(c, WEIR_EVENT_TIME, FINAL_TS);
}

static void collect_lists(struct weir_ctx *c, struct out_rec *o)
{
	const void *elems;
	uint32_t n = 0;

	cr_assert_eq(weir_list_view(c, ST_LIST, &elems, &n), 0);
	o->list_len = n;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t e;
		memcpy(&e, (const uint8_t *)elems + i * 4, 4);
		o->list_sum += e;
	}
}

static int on_timer(struct weir_ctx *c, int64_t ts, int domain, void *arg)
{
	struct out_rec o = { 0 };
	struct weir_map_iter it = WEIR_MAP_ITER_INIT;
	const void *mk, *mv;
	struct cm cm;
	void *sum;
	uint32_t n;

	(void)ts, (void)domain, (void)arg;
	memcpy(&o.key, weir_ctx_key(c), 8);
	cr_assert_eq(weir_value_get(c, ST_SUM, &sum), 0);
	memcpy(&o.sum, sum, 8);
	collect_lists(c, &o);
	cr_assert_eq(weir_map_size(c, ST_MAP, &n), 0);
	o.map_size = n;
	while (weir_map_next(c, ST_MAP, &it, &mk, &mv) == 0) {
		uint64_t v;
		memcpy(&v, mv, 8);
		o.map_total += v;
	}
	cr_assert_eq(weir_aggregate_result(c, ST_AGG, &cm), 0);
	o.count = cm.count;
	o.max = cm.max;
	return weir_emit(c, &o);
}

static const struct weir_field fields[] = {
	{ "key", WEIR_FIELD_U64, 0, 0 },
	{ "sum", WEIR_FIELD_U64, 8, 0 },
	{ "list_len", WEIR_FIELD_U64, 16, 0 },
	{ "list_sum", WEIR_FIELD_U64, 24, 0 },
	{ "map_size", WEIR_FIELD_U64, 32, 0 },
	{ "map_total", WEIR_FIELD_U64, 40, 0 },
	{ "count", WEIR_FIELD_U64, 48, 0 },
	{ "max", WEIR_FIELD_U64, 56, 0 },
};

/* ---- the windowed job ---- */

struct win_row {
	uint64_t key;
	int64_t start, end;
	uint64_t count, sum;
};

static void cs_create(void *acc, void *arg)
{
	(void)arg;
	memset(acc, 0, 16);
}

static void cs_add(void *acc, const void *in, void *arg)
{
	uint64_t *a = acc;
	const struct in_rec *r = in;

	(void)arg;
	a[0]++;
	a[1] += r->val;
}

static void cs_merge(void *acc, const void *other, void *arg)
{
	uint64_t *a = acc;
	const uint64_t *b = other;

	(void)arg;
	a[0] += b[0];
	a[1] += b[1];
}

static const struct weir_aggregate_ops cs_ops = {
	.create = cs_create, .add = cs_add, .merge = cs_merge,
	.acc_size = 16 };

static void win_out(const void *key, int64_t start, int64_t end,
		    const void *acc, void *out, void *arg)
{
	struct win_row r = { 0, start, end, 0, 0 };
	const uint64_t *a = acc;

	(void)arg;
	memcpy(&r.key, key, 8);
	r.count = a[0];
	r.sum = a[1];
	memcpy(out, &r, sizeof(r));
}

static const struct weir_field win_fields[] = {
	{ "key", WEIR_FIELD_U64, 0, 0 },
	{ "start", WEIR_FIELD_I64, 8, 0 },
	{ "end", WEIR_FIELD_I64, 16, 0 },
	{ "count", WEIR_FIELD_U64, 24, 0 },
	{ "sum", WEIR_FIELD_U64, 32, 0 },
};

static int windowed(struct weir_pipeline *p, struct weir_stream *keyed,
		    const char *out)
{
	struct weir_window_spec ws = {
		.name = "win", .kind = WEIR_WINDOW_SLIDING, .size_ms = 64,
		.slide_ms = 16, .allowed_lateness_ms = 100, .agg = &cs_ops,
		.output = win_out, .out_size = sizeof(struct win_row) };
	struct weir_stream *rows;
	int err = weir_window(p, keyed, &ws, &rows, NULL);

	return err ? err : weir_sink_csv(p, rows, out, win_fields, 5);
}

struct job_opts {
	bool windows; /* the windowed job instead of the state kinds */
	unsigned cores;
	const char *out, *dir;
	uint32_t interval_ms;
	uint32_t sum_size; /* 8; another value makes another job */
	uint64_t rate;
	unsigned stop_after_ms; /* TSan builds: stop instead of SIGKILL */
};

static int run_job(const struct job_opts *o, struct weir_checkpoint_stats *st)
{
	struct weir_state_desc states[NST] = {
		{ .name = "sum", .kind = WEIR_STATE_VALUE,
		  .value_size = o->sum_size },
		{ .name = "list", .kind = WEIR_STATE_LIST, .value_size = 4 },
		{ .name = "map", .kind = WEIR_STATE_MAP, .value_size = 8,
		  .map_key_size = 8 },
		{ .name = "agg", .kind = WEIR_STATE_AGGREGATING, .agg = &cm_ops },
	};
	struct weir_process_spec spec = {
		.name = "final", .process = process, .on_timer = on_timer,
		.out_size = sizeof(struct out_rec), .states = states,
		.nstates = NST };
	struct weir_generator g = { .count = NREC, .rate = o->rate, .seed = 3,
				    .record_size = sizeof(struct in_rec),
				    .make = make };
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *src, *keyed, *out;
	int err;

	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = o->cores;
	cfg.state_bytes_max = 256u << 20;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0, "%s", weir_last_error());
	cr_assert_eq(weir_source_generator(p, &g, &src), 0);
	/* The generator takes up to 32 records of a split before the next
	 * one: its output is out of order by up to 32 ms of ts, < 100. */
	cr_assert_eq(weir_watermarks(p, src, o->windows ? 100 : 0, 0), 0);
	cr_assert_eq(weir_key_by(p, src, key_of, 8, NULL, &keyed), 0);
	if (o->windows) {
		cr_assert_eq(windowed(p, keyed, o->out), 0, "%s",
			     weir_last_error());
	} else {
		cr_assert_eq(weir_process(p, keyed, &spec, &out), 0, "%s",
			     weir_last_error());
		cr_assert_eq(weir_sink_csv(p, out, o->out, fields, 8), 0);
	}
	if (o->dir != NULL) {
		struct weir_checkpoint_config cc;
		weir_checkpoint_config_init(&cc, o->dir);
		cc.interval_ms = o->interval_ms;
		cr_assert_eq(weir_pipeline_checkpoint(p, &cc), 0);
	}
#ifdef __SANITIZE_THREAD__
	pthread_t th;
	struct stopper sp = { p, o->stop_after_ms };
	if (o->stop_after_ms)
		cr_assert_eq(pthread_create(&th, NULL, stop_later, &sp), 0);
#endif
	err = weir_pipeline_run(p);
#ifdef __SANITIZE_THREAD__
	if (o->stop_after_ms)
		pthread_join(th, NULL);
#endif
	if (st != NULL)
		weir_pipeline_checkpoint_stats(p, st);
	weir_pipeline_destroy(p);
	return err;
}

/* ---- helpers ---- */

static char *sorted(const char *path)
{
	char cmd[512], *buf = calloc(1, 64u << 20);
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd), "LC_ALL=C sort '%s'", path);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	n = fread(buf, 1, (64u << 20) - 1, f);
	pclose(f);
	buf[n] = '\0';
	return buf;
}

static void tmpdir(char *out, size_t cap)
{
	snprintf(out, cap, "/tmp/weir-ckpt-XXXXXX");
	cr_assert_not_null(mkdtemp(out));
}

static void rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static const char *reference(const char *dir, bool windows)
{
	static char ref[600];
	struct job_opts o = { .windows = windows, .cores = 2, .sum_size = 8 };

	snprintf(ref, sizeof(ref), "%s/ref.csv", dir);
	o.out = ref;
	cr_assert_eq(run_job(&o, NULL), 0, "%s", weir_last_error());
	return ref;
}


/* Runs o in a child and SIGKILLs it after delay_ms (if it is still up). */
static void run_and_kill(const struct job_opts *o, unsigned delay_ms)
{
#ifdef __SANITIZE_THREAD__
	struct job_opts stopped = *o;
	stopped.stop_after_ms = delay_ms;
	(void)run_job(&stopped, NULL);
	return;
#endif
	struct timespec d = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
	pid_t pid = fork();
	int status;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int err = run_job(o, NULL);
		_exit(err ? 1 : 0);
	}
	nanosleep(&d, NULL);
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
}

static void kill_and_resume(unsigned cores_before, unsigned cores_after,
			    unsigned trials, bool windows)
{
	char dir[256], out[600], ck[600], tmp[620];
	const char *ref;
	unsigned seed = (unsigned)time(NULL);

	tmpdir(dir, sizeof(dir));
	ref = reference(dir, windows);
	char *want = sorted(ref);
	srand(seed);
	for (unsigned t = 0; t < trials; t++) {
		struct weir_checkpoint_stats st;
		struct job_opts o = { .windows = windows,
				      .cores = cores_before, .sum_size = 8,
				      .rate = RATE };
		snprintf(out, sizeof(out), "%s/out%u.csv", dir, t);
		snprintf(ck, sizeof(ck), "%s/ck%u", dir, t);
		snprintf(tmp, sizeof(tmp), "%s.inprogress", out);
		o.out = out;
		o.dir = ck;
		o.interval_ms = 20 + (unsigned)rand() % 40;
		unsigned delay = 300 + (unsigned)rand() % 1000;
		run_and_kill(&o, delay);
		o.cores = cores_after;
		o.rate = 0;
		cr_assert_eq(run_job(&o, &st), 0, "trial %u (seed %u): %s", t,
			     seed, weir_last_error());
		char *got = sorted(out);
		cr_assert_str_eq(got, want, "trial %u (seed %u, kill after %u "
				 "ms, restored %llu): output differs", t, seed,
				 delay, (unsigned long long)st.restored_id);
		cr_assert_eq(st.restored_id != 0, st.restore_us != 0,
			     "restored %llu in %llu us",
			     (unsigned long long)st.restored_id,
			     (unsigned long long)st.restore_us);
		cr_assert_neq(access(tmp, F_OK), 0, "%s left behind", tmp);
		free(got);
	}
	free(want);
	rm_rf(dir);
}

Test(ckpt_pipeline, kill_resume_same_cores, .timeout = 300)
{
	kill_and_resume(2, 2, TRIALS(3), false);
}

Test(ckpt_pipeline, kill_resume_two_to_one, .timeout = 300)
{
	kill_and_resume(2, 1, TRIALS(2), false);
}

Test(ckpt_pipeline, kill_resume_one_to_two, .timeout = 300)
{
	kill_and_resume(1, 2, TRIALS(2), false);
}

Test(ckpt_pipeline, windows_kill_resume_same_cores, .timeout = 300)
{
	kill_and_resume(2, 2, TRIALS(2), true);
}

Test(ckpt_pipeline, windows_kill_resume_two_to_one, .timeout = 300)
{
	kill_and_resume(2, 1, TRIALS(2), true);
}

Test(ckpt_pipeline, windows_kill_resume_one_to_two, .timeout = 300)
{
	kill_and_resume(1, 2, TRIALS(2), true);
}

/* The output through the page cache (where O_DIRECT is refused): the same
 * exactly-once output. */
Test(ckpt_pipeline, kill_resume_buffered_output, .timeout = 300)
{
	cr_assert_eq(setenv("WEIR_SINK_BUFFERED", "1", 1), 0);
	kill_and_resume(2, 2, TRIALS(2), true);
}

/* A fresh directory for one job: its output file and checkpoint dir. */
static void job_in_tmp(struct job_opts *o, char dir[256], char out[600],
		       char ck[600])
{
	tmpdir(dir, 256);
	snprintf(out, 600, "%s/out.csv", dir);
	snprintf(ck, 600, "%s/ck", dir);
	o->out = out;
	o->dir = ck;
}

/* Data files ("ckpt-<id>-...") in dir of a checkpoint id above `id`. */
static unsigned files_after(const char *dir, uint64_t id)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "ckpt-", 5) == 0 &&
		    strtoull(e->d_name + 5, NULL, 10) > id)
			n++;
	closedir(d);
	return n;
}

Test(ckpt_pipeline, uninterrupted_with_checkpoints, .timeout = 300)
{
	char dir[256], out[600], ck[600];
	struct weir_checkpoint_stats st;
	struct job_opts o = { .cores = 2, .sum_size = 8, .rate = RATE,
			      .interval_ms = 50 };
	const char *ref;

	job_in_tmp(&o, dir, out, ck);
	ref = reference(dir, false);
	cr_assert_eq(run_job(&o, &st), 0, "%s", weir_last_error());
	cr_assert_gt(st.completed, 0, "no checkpoint committed in ~1.5 s");
	cr_assert_eq(st.failed, 0);
	cr_assert_eq(st.restored_id, 0);
	cr_assert_eq(st.restore_us, 0);
	/* Every core snapshots each checkpoint, after aligning: both timed. */
	cr_assert_geq(st.pauses, 2 * st.completed);
	cr_assert_gt(st.align_max_ns, 0, "no alignment recorded");
	cr_assert(st.align_p50_ns <= st.align_p99_ns &&
		  st.align_p99_ns <= st.align_max_ns);
	/* Every checkpoint writes pages: its working flush steps are timed,
	 * each at least the 1 us that tells work from a poll. */
	cr_assert_geq(st.step_p50_ns, 1000, "no working flush step recorded");
	cr_assert(st.step_p50_ns <= st.step_p99_ns &&
		  st.step_p99_ns <= st.step_max_ns);
	char *a = sorted(ref), *b = sorted(out);
	cr_assert_str_eq(a, b);
	free(a);
	free(b);
	rm_rf(dir);
}

/* The first checkpoint is taken at the start; the next one is prepared
 * (planned, its files created) at once but never due in a 60 s interval:
 * the run removes those files when it ends. */
Test(ckpt_pipeline, prepared_files_removed_at_end, .timeout = 300)
{
	char dir[256], out[600], ck[600];
	struct weir_checkpoint_stats st;
	struct job_opts o = { .cores = 2, .sum_size = 8, .rate = RATE,
			      .interval_ms = 60000 };

	job_in_tmp(&o, dir, out, ck);
	cr_assert_eq(run_job(&o, &st), 0, "%s", weir_last_error());
	cr_assert_eq(st.completed, 1);
	cr_assert_eq(files_after(ck, st.last_id), 0, "files created ahead "
		     "for checkpoint %llu were left behind",
		     (unsigned long long)st.last_id + 1);
	rm_rf(dir);
}

/* Names, sizes and contents of every file in dir, as one string. */
static char *dir_digest(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "cd '%s' && ls -l --time-style=+ | "
		 "awk '{print $5, $6}' > /tmp/.wd.$$ && cat * | md5sum >> "
		 "/tmp/.wd.$$ && cat /tmp/.wd.$$ && rm /tmp/.wd.$$", dir);
	FILE *f = popen(cmd, "r");
	char *buf = calloc(1, 1 << 16);
	cr_assert_not_null(f);
	buf[fread(buf, 1, (1 << 16) - 1, f)] = '\0';
	pclose(f);
	return buf;
}

/* A job on a directory a running job holds is refused (-EBUSY, the
 * directory unchanged), and runs once the holder is gone.  The test holds
 * the lock itself, as another weir process would, on a directory with
 * checkpoints in it. */
Test(ckpt_pipeline, busy_dir_refused, .timeout = 300)
{
	char dir[256], out[600], ck[600];
	struct job_opts o = { .cores = 1, .sum_size = 8, .interval_ms = 30 };
	int fd;

	job_in_tmp(&o, dir, out, ck);
	cr_assert_eq(run_job(&o, NULL), 0, "%s", weir_last_error());
	fd = open(ck, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
	char *before = dir_digest(ck);
	cr_assert_eq(run_job(&o, NULL), -EBUSY);
	cr_assert(strstr(weir_last_error(), "in use") != NULL, "message: %s",
		  weir_last_error());
	char *after = dir_digest(ck);
	cr_assert_str_eq(before, after, "the refused job changed the directory");
	close(fd);
	cr_assert_eq(run_job(&o, NULL), 0, "%s", weir_last_error());
	cr_assert(access(out, F_OK) == 0, "the second try wrote no output");
	free(before);
	free(after);
	rm_rf(dir);
}

Test(ckpt_pipeline, other_job_refused_dir_unchanged, .timeout = 300)
{
	char dir[256], out[600], ck[600];
	struct job_opts o = { .cores = 2, .sum_size = 8, .rate = RATE,
			      .interval_ms = 30 };

	job_in_tmp(&o, dir, out, ck);
	run_and_kill(&o, 600);
	char *before = dir_digest(ck);
	o.sum_size = 16; /* another job: its state means something else */
	o.rate = 0;
	cr_assert_eq(run_job(&o, NULL), -ESTALE);
	cr_assert(strstr(weir_last_error(), "fingerprint") != NULL ||
		  strstr(weir_last_error(), "pipeline") != NULL,
		  "message: %s", weir_last_error());
	char *after = dir_digest(ck);
	cr_assert_str_eq(before, after, "the checkpoint directory changed");
	free(before);
	free(after);
	rm_rf(dir);
}
