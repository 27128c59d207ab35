/*
 * pipeline_test.c — the pipeline API end to end on the runtime.
 *
 * Test plan:
 *   - generator: every index in [0, count) is produced exactly once, on 1
 *     and 2 cores, bounded and paced; a paced run takes about count/rate.
 *   - map / filter / flat_map chain before key_by: outputs equal a
 *     single-threaded model.
 *   - key_by: every key is processed on exactly one core, the owner of its
 *     key group, and per-key order from one generator split is kept.
 *   - keyed process with value state: per-key counts equal the model on 1
 *     and 2 cores (same results whatever the core count).
 *   - keyed process with list state (the running sum): per key, the sorted
 *     emitted sums differ by exactly the key's values.
 *   - file sink: the output file holds every record once, with the header,
 *     and only appears under its final name when the job succeeded; a
 *     failing job leaves only "<path>.inprogress".
 *   - file sink, rows left waiting: a live source offers 37 records and
 *     then nothing; "<path>.inprogress" is exactly the header and those
 *     rows while the job still runs, no sooner than flush_ms (default 1 s;
 *     50 ms through the page cache), and not at all with flush_ms < 0 (so
 *     the test can fail).  A run stopped before its input ended leaves
 *     exactly the rows made so far in "<path>.inprogress".
 *   - bad input: key size 0 / too large, zero record size, key_groups not a
 *     power of two, a negative align_drift_ms, a process on a stream that is not keyed, a state of size
 *     0 -> -EINVAL with a message; nothing crashes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "weir/pipeline.h"
#include "weir/state.h"

struct kv {
	uint64_t key;
	int64_t value;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

#define NKEYS 97u

static void make_kv(uint64_t i, uint64_t seed, void *rec, int64_t *ts,
		    void *arg)
{
	struct kv *r = rec;

	(void)arg;
	r->key = mix(i ^ seed) % NKEYS;
	r->value = (int64_t)(1 + mix(i + seed) % 1000);
	*ts = (int64_t)i;
}

static void key_of(const void *rec, void *key, void *arg)
{
	(void)arg;
	memcpy(key, &((const struct kv *)rec)->key, sizeof(uint64_t));
}

static struct weir_pipeline *make_pipeline(unsigned cores)
{
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;

	weir_pipeline_config_init(&cfg);
	if (cores > cfg.runtime.cores)
		cores = cfg.runtime.cores;
	cfg.runtime.cores = cores;
	cfg.state_bytes_max = 64u << 20;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0, "%s", weir_last_error());
	return p;
}

/* ---- generator: each index exactly once ---- */

#define GEN_COUNT 100003u
static _Atomic uint32_t seen[GEN_COUNT];

static void make_index(uint64_t i, uint64_t seed, void *rec, int64_t *ts,
		       void *arg)
{
	(void)seed;
	(void)arg;
	memcpy(rec, &i, sizeof(i));
	*ts = 0;
}

static int count_index(struct weir_ctx *c, const void *rec, void *arg)
{
	uint64_t i;

	(void)c;
	(void)arg;
	memcpy(&i, rec, sizeof(i));
	if (i >= GEN_COUNT)
		return -ERANGE;
	atomic_fetch_add(&seen[i], 1);
	return 0;
}

static void run_generator(unsigned cores, uint64_t rate)
{
	struct weir_generator g = { .count = GEN_COUNT, .rate = rate,
		.record_size = sizeof(uint64_t), .make = make_index };
	struct weir_pipeline *p = make_pipeline(cores);
	struct weir_stream *s;

	memset(seen, 0, sizeof(seen));
	cr_assert_eq(weir_source_generator(p, &g, &s), 0);
	cr_assert_eq(weir_sink_callback(p, s, count_index, NULL), 0);
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	for (uint32_t i = 0; i < GEN_COUNT; i++)
		cr_assert_eq(seen[i], 1, "index %u seen %u times", i, seen[i]);
	weir_pipeline_destroy(p);
}

Test(generator, every_index_once_on_1_core) { run_generator(1, 0); }
Test(generator, every_index_once_on_2_cores) { run_generator(2, 0); }

Test(generator, paced_run_takes_count_over_rate)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	run_generator(2, GEN_COUNT * 4); /* 0.25 s */
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
	cr_assert(s >= 0.2, "paced run took %.3f s, expected >= 0.2", s);
}

/* A bounded run stopped half-way, then resumed from its positions on a
 * different number of cores: together they produce every index once. */
static int stop_at_half(struct weir_ctx *c, const void *rec, void *arg)
{
	static _Atomic uint64_t n;

	if (count_index(c, rec, arg) != 0)
		return -ERANGE;
	if (atomic_fetch_add(&n, 1) == GEN_COUNT / 2)
		return -ECANCELED; /* a failure stops the job mid-stream */
	return 0;
}

Test(generator, replays_from_recorded_positions_on_other_core_count)
{
	struct weir_generator g = { .count = GEN_COUNT,
		.record_size = sizeof(uint64_t), .make = make_index };
	uint64_t pos[WEIR_GENERATOR_SPLITS], done = 0;
	struct weir_pipeline *p = make_pipeline(2);
	struct weir_stream *s;

	memset(seen, 0, sizeof(seen));
	cr_assert_eq(weir_source_generator(p, &g, &s), 0);
	cr_assert_eq(weir_sink_callback(p, s, stop_at_half, NULL), 0);
	cr_assert_eq(weir_pipeline_run(p), -ECANCELED);
	cr_assert_eq(weir_generator_positions(s, pos), 0);
	weir_pipeline_destroy(p);
	for (unsigned i = 0; i < WEIR_GENERATOR_SPLITS; i++)
		done += pos[i];
	cr_assert(done > 0 && done < GEN_COUNT, "positions sum %llu",
		  (unsigned long long)done);
	/* Records the first run produced past its last delivered one were
	 * never delivered: forget them, as a checkpoint restore would. */
	memset(seen, 0, sizeof(seen));
	for (unsigned sp = 0; sp < WEIR_GENERATOR_SPLITS; sp++)
		for (uint64_t k = 0; k < pos[sp]; k++)
			seen[k * WEIR_GENERATOR_SPLITS + sp] = 1;
	g.start = pos;
	p = make_pipeline(1);
	cr_assert_eq(weir_source_generator(p, &g, &s), 0);
	cr_assert_eq(weir_sink_callback(p, s, count_index, NULL), 0);
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	weir_pipeline_destroy(p);
	for (uint32_t i = 0; i < GEN_COUNT; i++)
		cr_assert_eq(seen[i], 1, "index %u seen %u times", i, seen[i]);
}

/* ---- stateless chain + key_by ownership ---- */

struct chain_out {
	_Atomic uint64_t sum_by_key[NKEYS];
	_Atomic uint64_t count_by_key[NKEYS];
	_Atomic int core_of_key[NKEYS]; /* -1 unseen */
	_Atomic int wrong_core;
	unsigned cores;
};

static int times_three(struct weir_ctx *c, const void *in, void *out, void *arg)
{
	struct kv r = *(const struct kv *)in;

	(void)c;
	(void)arg;
	r.value *= 3;
	memcpy(out, &r, sizeof(r));
	return 0;
}

static bool odd_only(struct weir_ctx *c, const void *in, void *arg)
{
	(void)c;
	(void)arg;
	return ((const struct kv *)in)->value % 2 != 0;
}

static int twice(struct weir_ctx *c, const void *in, void *arg)
{
	(void)arg;
	int err = weir_emit(c, in);
	return err ? err : weir_emit(c, in);
}

static int check_owner(struct weir_ctx *c, const void *rec, void *arg)
{
	struct chain_out *o = arg;
	const struct kv *r = rec;
	int expect = -1;
	int core = (int)weir_ctx_core(c);
	uint32_t kg = weir_key_group(&r->key, sizeof(r->key),
				     WEIR_KEY_GROUPS_DEFAULT);

	if (core != (int)weir_key_group_owner(kg, WEIR_KEY_GROUPS_DEFAULT,
					      weir_ctx_cores(c)))
		o->wrong_core = 1;
	if (!atomic_compare_exchange_strong(&o->core_of_key[r->key], &expect,
					    core) && expect != core)
		o->wrong_core = 1;
	atomic_fetch_add(&o->sum_by_key[r->key], (uint64_t)r->value);
	atomic_fetch_add(&o->count_by_key[r->key], 1);
	return 0;
}

static void run_chain(unsigned cores, struct chain_out *o)
{
	struct weir_generator g = { .count = 50000, .seed = 7,
		.record_size = sizeof(struct kv), .make = make_kv };
	struct weir_pipeline *p = make_pipeline(cores);
	struct weir_stream *s, *m, *f, *fm, *k;

	memset(o, 0, sizeof(*o));
	for (unsigned i = 0; i < NKEYS; i++)
		o->core_of_key[i] = -1;
	cr_assert_eq(weir_source_generator(p, &g, &s), 0);
	cr_assert_eq(weir_map(p, s, times_three, sizeof(struct kv), NULL, &m), 0);
	cr_assert_eq(weir_filter(p, m, odd_only, NULL, &f), 0);
	cr_assert_eq(weir_flat_map(p, f, twice, sizeof(struct kv), 2, NULL, &fm), 0);
	cr_assert_eq(weir_key_by(p, fm, key_of, sizeof(uint64_t), NULL, &k), 0);
	cr_assert_eq(weir_sink_callback(p, k, check_owner, o), 0);
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	weir_pipeline_destroy(p);
}

Test(pipeline, stateless_chain_and_key_by_match_the_model)
{
	static struct chain_out one, two;
	uint64_t sum[NKEYS] = { 0 }, count[NKEYS] = { 0 };

	for (uint64_t i = 0; i < 50000; i++) {
		struct kv r;
		int64_t ts;
		make_kv(i, 7, &r, &ts, NULL);
		r.value *= 3;
		if (r.value % 2 == 0)
			continue;
		sum[r.key] += 2 * (uint64_t)r.value;
		count[r.key] += 2;
	}
	run_chain(1, &one);
	run_chain(2, &two);
	cr_assert_eq(one.wrong_core, 0);
	cr_assert_eq(two.wrong_core, 0, "a key was processed off its owner");
	for (unsigned k = 0; k < NKEYS; k++) {
		cr_assert_eq(one.sum_by_key[k], sum[k], "key %u", k);
		cr_assert_eq(two.sum_by_key[k], sum[k], "key %u", k);
		cr_assert_eq(two.count_by_key[k], count[k], "key %u", k);
	}
}

/* ---- keyed state ---- */

static int count_in_value_state(struct weir_ctx *c, const void *rec, void *arg)
{
	struct kv out = *(const struct kv *)rec;
	int64_t *v;
	int err = weir_value_update(c, 0, (void **)&v, NULL);

	(void)arg;
	if (err)
		return err;
	*v += out.value;
	out.value = *v;
	return weir_emit(c, &out);
}

struct final_sums {
	_Atomic int64_t last[NKEYS]; /* largest running value seen */
	_Atomic uint64_t rows;
};

static int keep_max(struct weir_ctx *c, const void *rec, void *arg)
{
	struct final_sums *f = arg;
	const struct kv *r = rec;
	int64_t cur = f->last[r->key];

	(void)c;
	while (r->value > cur &&
	       !atomic_compare_exchange_weak(&f->last[r->key], &cur, r->value))
		;
	atomic_fetch_add(&f->rows, 1);
	return 0;
}

static void run_value_state(unsigned cores, struct final_sums *f)
{
	static const struct weir_state_desc sum = {
		.name = "sum", .kind = WEIR_STATE_VALUE,
		.value_size = sizeof(int64_t) };
	struct weir_process_spec spec = { .name = "sum",
		.process = count_in_value_state, .out_size = sizeof(struct kv),
		.states = &sum, .nstates = 1 };
	struct weir_generator g = { .count = 40000, .seed = 3,
		.record_size = sizeof(struct kv), .make = make_kv };
	struct weir_pipeline *p = make_pipeline(cores);
	struct weir_stream *s, *k, *o;

	memset(f, 0, sizeof(*f));
	cr_assert_eq(weir_source_generator(p, &g, &s), 0);
	cr_assert_eq(weir_key_by(p, s, key_of, sizeof(uint64_t), NULL, &k), 0);
	cr_assert_eq(weir_process(p, k, &spec, &o), 0, "%s", weir_last_error());
	cr_assert_eq(weir_sink_callback(p, o, keep_max, f), 0);
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	weir_pipeline_destroy(p);
}

Test(pipeline, value_state_same_results_on_1_and_2_cores)
{
	static struct final_sums one, two;
	int64_t model[NKEYS] = { 0 };

	for (uint64_t i = 0; i < 40000; i++) {
		struct kv r;
		int64_t ts;
		make_kv(i, 3, &r, &ts, NULL);
		model[r.key] += r.value;
	}
	run_value_state(1, &one);
	run_value_state(2, &two);
	cr_assert_eq(one.rows, 40000);
	cr_assert_eq(two.rows, 40000);
	for (unsigned k = 0; k < NKEYS; k++) {
		cr_assert_eq(one.last[k], model[k], "key %u", k);
		cr_assert_eq(two.last[k], model[k], "key %u", k);
	}
}

/* ---- file sink ---- */

static int format_kv(const void *rec, char *buf, size_t cap, void *arg)
{
	const struct kv *r = rec;
	int n = snprintf(buf, cap, "%llu,%lld\n", (unsigned long long)r->key,
			 (long long)r->value);

	(void)arg;
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	buf = malloc(*len + 1);
	cr_assert_eq(fread(buf, 1, *len, f), *len);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static void file_sink_job(void);

Test(pipeline, file_sink_writes_every_record_once_then_renames)
{
	file_sink_job();
}

/* Where O_DIRECT is refused the sink writes through the page cache. */
Test(pipeline, file_sink_buffered_writes_every_record_once)
{
	cr_assert_eq(setenv("WEIR_SINK_BUFFERED", "1", 1), 0);
	file_sink_job();
}

static void file_sink_job(void)
{
	struct weir_generator g = { .count = 200000, .seed = 11,
		.record_size = sizeof(struct kv), .make = make_kv };
	char dir[] = "/tmp/weir-sink-XXXXXX", path[256], tmp[300];
	struct weir_file_sink fs = { .path = path, .header = "key,value\n",
		.format = format_kv };
	struct weir_pipeline *p = make_pipeline(2);
	struct weir_stream *s;
	uint64_t rows = 0, sum = 0, model = 0;
	size_t len;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/out.csv", dir);
	snprintf(tmp, sizeof(tmp), "%s.inprogress", path);
	cr_assert_eq(weir_source_generator(p, &g, &s), 0);
	cr_assert_eq(weir_sink_file(p, s, &fs), 0, "%s", weir_last_error());
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	weir_pipeline_destroy(p);
	cr_assert_eq(access(tmp, F_OK), -1, "in-progress file left behind");
	char *text = slurp(path, &len);
	cr_assert_not_null(text, "no output file at %s", path);
	/* Exactly the rows' bytes: no block padding left (O_DIRECT). */
	cr_assert_eq(strlen(text), len, "a NUL byte at %zu of %zu",
		     strlen(text), len);
	cr_assert(len > 0 && text[len - 1] == '\n');
	cr_assert_eq(strncmp(text, "key,value\n", 10), 0);
	for (char *line = strchr(text, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
		unsigned long long k;
		long long v;
		cr_assert_eq(sscanf(line, "%llu,%lld", &k, &v), 2);
		rows++;
		sum += (uint64_t)v;
	}
	for (uint64_t i = 0; i < 200000; i++) {
		struct kv r;
		int64_t ts;
		make_kv(i, 11, &r, &ts, NULL);
		model += (uint64_t)r.value;
	}
	cr_assert_eq(rows, 200000);
	cr_assert_eq(sum, model);
	free(text);
	unlink(path);
	rmdir(dir);
}

/* ---- file sink: rows that do not wait for a full buffer ---- */

/* Split 0 offers LIVE_ROWS records at once, then nothing; every split then
 * returns 0.  Watching, it reads "<path>.inprogress" every 5 ms and ends
 * once the file is exactly the header and those rows (clean text to its
 * end), or at the deadline.  Stopping, it stops the run 300 ms after the
 * offer instead (the rows are in the sink's buffer by then). */
#define LIVE_ROWS 37u
struct live_src {
	struct weir_pipeline *p;
	const char *tmp;
	char want[4096];
	size_t want_len;
	bool stop;
	uint64_t start_ns, deadline_ns, seen_ns, last_look_ns;
	bool offered;
	_Atomic bool seen, timed_out; /* split 0 decides, every split ends */
};

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static bool file_is(const char *path, const char *want, size_t len)
{
	char got[4096];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(got, 1, sizeof(got), f) : 0;

	if (f)
		fclose(f);
	return n == len && memcmp(got, want, len) == 0;
}

static int live_next(struct weir_ctx *c, void *recs, int64_t *ts,
		     unsigned max, void *arg)
{
	struct live_src *l = arg;
	uint64_t now = mono_ns();

	if (weir_ctx_core(c) == 0 && !l->offered && max >= LIVE_ROWS) {
		for (unsigned i = 0; i < LIVE_ROWS; i++)
			make_kv(i, 3, (struct kv *)recs + i, &ts[i], NULL);
		l->offered = true;
		return LIVE_ROWS;
	}
	if (weir_ctx_core(c) != 0) /* only split 0 watches and decides */
		return l->seen || l->timed_out ? WEIR_SOURCE_END : 0;
	if (l->stop) {
		if (now - l->start_ns > 300000000u)
			weir_pipeline_stop_remote(l->p);
		return 0;
	}
	if (now - l->last_look_ns > 5000000u) {
		l->last_look_ns = now;
		if (file_is(l->tmp, l->want, l->want_len)) {
			l->seen = true;
			l->seen_ns = now;
		}
	}
	if (!l->seen && now > l->deadline_ns)
		l->timed_out = true;
	return l->seen || l->timed_out ? WEIR_SOURCE_END : 0;
}

/* Runs the job; returns ms from the start until the rows were seen in
 * "<path>.inprogress" while the run went on, or -1 if they were not
 * within wait_ms.  Then the finished file must be every row; or, with
 * `stop`, the run stopped and "<path>.inprogress" exactly the rows. */
static int64_t live_job(unsigned cores, int32_t flush_ms, uint64_t wait_ms,
			bool stop)
{
	static const struct weir_source_ops ops = { .next = live_next };
	char dir[] = "/tmp/weir-sink-XXXXXX", path[256], tmp[300];
	struct weir_file_sink fs = { .path = path, .header = "key,value\n",
		.format = format_kv, .flush_ms = flush_ms };
	static struct live_src l;
	struct weir_stream *s;

	memset(&l, 0, sizeof(l));
	l.p = make_pipeline(cores);
	l.tmp = tmp;
	l.stop = stop;
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/out.csv", dir);
	snprintf(tmp, sizeof(tmp), "%s.inprogress", path);
	l.want_len = strlen(strcpy(l.want, "key,value\n"));
	for (unsigned i = 0; i < LIVE_ROWS; i++) {
		struct kv r;
		int64_t ts;
		make_kv(i, 3, &r, &ts, NULL);
		l.want_len += (size_t)format_kv(&r, l.want + l.want_len,
						sizeof(l.want) - l.want_len, NULL);
	}
	cr_assert_eq(weir_source(l.p, "live", &ops, sizeof(struct kv), &l, &s), 0);
	cr_assert_eq(weir_sink_file(l.p, s, &fs), 0, "%s", weir_last_error());
	l.start_ns = mono_ns();
	l.deadline_ns = l.start_ns + wait_ms * 1000000u;
	cr_assert_eq(weir_pipeline_run(l.p), 0, "%s", weir_last_error());
	cr_assert_eq(weir_pipeline_stopped(l.p), stop);
	weir_pipeline_destroy(l.p);
	const char *out = stop ? tmp : path;
	if (stop)
		cr_assert_eq(access(path, F_OK), -1, "a stopped run renamed it");
	cr_assert(file_is(out, l.want, l.want_len), "%s: not the rows", out);
	unlink(out);
	rmdir(dir);
	return l.seen ? (int64_t)((l.seen_ns - l.start_ns) / 1000000u) : -1;
}

/* A live job's rows reach the file about flush_ms (default 1000 ms) after
 * they were made, long before a buffer fills or the input ends; never
 * before flush_ms. */
Test(pipeline, file_sink_writes_waiting_rows_after_flush_ms, .timeout = 60)
{
	int64_t ms = live_job(2, 0, 10000, false);

	cr_assert(ms >= 0, "rows still not in the file after 10 s");
	cr_assert_geq(ms, WEIR_FILE_SINK_FLUSH_MS_DEFAULT - 100, "%lld ms",
		      (long long)ms);
}

Test(pipeline, file_sink_buffered_writes_waiting_rows_after_flush_ms,
     .timeout = 60)
{
	cr_assert_eq(setenv("WEIR_SINK_BUFFERED", "1", 1), 0);
	int64_t ms = live_job(1, 50, 10000, false);

	cr_assert(ms >= 40, "%lld ms", (long long)ms);
}

/* flush_ms < 0: rows wait for a full buffer or the end (the test above
 * can fail). */
Test(pipeline, file_sink_flush_off_keeps_rows_until_the_end, .timeout = 60)
{
	cr_assert_eq(live_job(2, -1, 1500, false), -1,
		     "rows written with flush off");
}

/* A stopped run (it never finished) leaves every row made before the stop
 * in "<path>.inprogress", and nothing more: no padding, no final name. */
Test(pipeline, stopped_run_keeps_its_rows_in_inprogress, .timeout = 60)
{
	live_job(1, -1, 0, true);
}

static int fail_at_1000(struct weir_ctx *c, const void *in, void *out, void *arg)
{
	(void)c;
	(void)arg;
	memcpy(out, in, sizeof(struct kv));
	return ((const struct kv *)in)->value == 1000 ? -EIO : 0;
}

Test(pipeline, failed_job_leaves_no_complete_looking_file)
{
	struct weir_generator g = { .count = 100000, .seed = 5,
		.record_size = sizeof(struct kv), .make = make_kv };
	char dir[] = "/tmp/weir-sink-XXXXXX", path[256], tmp[300];
	struct weir_file_sink fs = { .path = path, .format = format_kv };
	struct weir_pipeline *p = make_pipeline(2);
	struct weir_stream *s, *m;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/out.csv", dir);
	snprintf(tmp, sizeof(tmp), "%s.inprogress", path);
	cr_assert_eq(weir_source_generator(p, &g, &s), 0);
	cr_assert_eq(weir_map(p, s, fail_at_1000, sizeof(struct kv), NULL, &m), 0);
	cr_assert_eq(weir_sink_file(p, m, &fs), 0);
	cr_assert_eq(weir_pipeline_run(p), -EIO);
	weir_pipeline_destroy(p);
	cr_assert_eq(access(path, F_OK), -1, "a failed job left %s", path);
	unlink(tmp);
	rmdir(dir);
}

/* The finished file is renamed over the path: a device or a FIFO there
 * is refused when the sink is added, and left as it was. */
Test(pipeline, file_sink_refuses_a_path_that_is_not_a_regular_file)
{
	char dir[] = "/tmp/weir-sink-XXXXXX", fifo[256];
	struct weir_file_sink fs = { .path = fifo, .format = format_kv };
	struct weir_generator g = { .count = 10, .record_size = sizeof(struct kv),
		.make = make_kv };
	struct weir_pipeline *p = make_pipeline(1);
	struct weir_stream *s;
	struct stat st;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/out.csv", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(weir_source_generator(p, &g, &s), 0);
	cr_assert_eq(weir_sink_file(p, s, &fs), -EINVAL);
	cr_assert(strstr(weir_last_error(), "not a regular file") != NULL,
		  "%s", weir_last_error());
	fs.path = dir;
	cr_assert_eq(weir_sink_file(p, s, &fs), -EINVAL);
	weir_pipeline_destroy(p);
	cr_assert_eq(stat(fifo, &st), 0);
	cr_assert(S_ISFIFO(st.st_mode), "the FIFO was replaced");
	unlink(fifo);
	rmdir(dir);
}

/* ---- bad input ---- */

Test(pipeline, bad_input_is_einval_with_a_message)
{
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *s, *k, *o;
	struct weir_generator g = { .count = 1, .record_size = sizeof(struct kv),
		.make = make_kv };
	struct weir_state_desc zero = { .name = "z", .kind = WEIR_STATE_VALUE };
	struct weir_process_spec spec = { .name = "p",
		.process = count_in_value_state, .out_size = 16,
		.states = &zero, .nstates = 1 };

	weir_pipeline_config_init(&cfg);
	cfg.key_groups = 1000;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), -EINVAL);
	cr_assert(strstr(weir_last_error(), "1000") != NULL);
	weir_pipeline_config_init(&cfg);
	cfg.align_drift_ms = -5;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), -EINVAL);
	cr_assert(strstr(weir_last_error(), "align_drift_ms -5") != NULL, "%s",
		  weir_last_error());

	p = make_pipeline(1);
	g.record_size = 0;
	cr_assert_eq(weir_source_generator(p, &g, &s), -EINVAL);
	g.record_size = sizeof(struct kv);
	cr_assert_eq(weir_source_generator(p, &g, &s), 0);
	cr_assert_eq(weir_key_by(p, s, key_of, 0, NULL, &k), -EINVAL);
	cr_assert_eq(weir_key_by(p, s, key_of, WEIR_KEY_SIZE_MAX + 1, NULL, &k),
		     -EINVAL);
	cr_assert(strstr(weir_last_error(), "65") != NULL, "%s", weir_last_error());
	spec.process = count_in_value_state;
	cr_assert_eq(weir_process(p, s, &spec, &o), -EINVAL, "unkeyed input");
	cr_assert_eq(weir_key_by(p, s, key_of, 8, NULL, &k), 0);
	cr_assert_eq(weir_process(p, k, &spec, &o), -EINVAL, "state size 0");
	cr_assert(strstr(weir_last_error(), "value size 0") != NULL, "%s",
		  weir_last_error());
	weir_pipeline_destroy(p);
	weir_pipeline_destroy(NULL);
}
