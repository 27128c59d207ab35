/*
 * window_test.c — event time, timers and windows through the pipeline API,
 * checked against brute-force models on random input.
 *
 * Test plan:
 *   - timers: random event-time timers per key fire once each, in
 *     timestamp order per core, deleted ones never; a processing-time timer
 *     fires; registering the same timer twice fires it once.
 *   - tumbling and sliding windows (sum and count) on shuffled input within
 *     the out-of-orderness bound: the last row of every window equals the
 *     model, on 1 and 2 cores, and no record is late.
 *   - session windows: every model session appears with its exact count
 *     and sum; any other row is an earlier partial of a model session.
 *   - late records: after the watermark has passed a window (plus the
 *     allowed lateness), a record for it is counted and goes to the late
 *     stream; within the allowed lateness it updates the window instead.
 *   - bad specs: zero size, zero gap, a slide that does not divide the
 *     size, negative lateness -> -EINVAL naming the value.
 *   - allowed-late records while their window fires: 20 000 keys in one
 *     window, a slow sink (the firing takes ~0.4 s, the out buffers full),
 *     then 1 000 late updates of fired keys and 1 000 of new keys: every
 *     key's last row holds all of its records, none is late, and the run
 *     does not overflow its out buffers.
 *   - memory cap: a window of 400k distinct keys in an 8 MiB-per-core
 *     arena fails the run with -ENOMEM and a message naming the window
 *     and the cap.
 *   - watermark alignment: on 2 cores, split 1 offering 64 records a call
 *     and split 0 one, over the same 30 s of event time: with
 *     align_drift_ms 2000, split 1 never gets more than 2000 ms (plus a
 *     burst) ahead of what split 0 has produced; with alignment off it
 *     does (the test can fail), and neither a live source (no position())
 *     nor a WEIR_SOURCE_SELF_ALIGNED one is ever held; the windows' counts
 *     add up to every record each time.
 *   - a quiet source's clock (weir_source_ops.clock): 10 events of one
 *     window, then nothing: with a clock vouching for a later time, the
 *     window's rows reach the sink while the source is still live, on 1
 *     and 2 cores and with an idle timeout set; without it they come only
 *     at the end of input (the test can fail).
 *   - combiner (pre-aggregation before key_by, on without a late stream):
 *     tumbling and sliding windows on 2 cores, the source paced so many
 *     watermarks pass mid-run (partials flushed before each), with a cache
 *     of 4 entries (evicting all the time) and of 4096: the same model
 *     results, nothing late.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weir/window.h"

struct ev {
	uint32_t key;
	uint32_t pad;
	int64_t value;
	int64_t ts;
};

struct row {
	uint32_t key;
	uint32_t pad;
	int64_t start, end;
	int64_t count, sum;
};

#define NEV 20000u
#define NKEY 13u
#define OOO 50

static struct ev evs[NEV];

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Timestamps base_i + jitter: base increases by up to step_max, jitter is
 * below OOO / 2, so the stream is out of order by less than OOO and no
 * record is late. */
static void make_events(int64_t step_max)
{
	int64_t base = 1000;

	for (unsigned i = 0; i < NEV; i++) {
		base += (int64_t)(rnd() % (uint64_t)(step_max + 1));
		evs[i] = (struct ev){ (uint32_t)(rnd() % NKEY), 0,
				      (int64_t)(rnd() % 100),
				      base + (int64_t)(rnd() % (OOO / 2)) };
	}
}

/* ---- an array source: split s takes events s, s + n, ... ---- */

struct arr_src {
	const struct ev *ev;
	unsigned count;
	unsigned pos[WEIR_CORES_MAX];
	unsigned step[WEIR_CORES_MAX];
	unsigned pace_us;           /* > 0: 8 records per pace_us at most */
	uint64_t last_ns[WEIR_CORES_MAX];
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int arr_open(struct weir_ctx *c, unsigned split, unsigned splits,
		    void *arg)
{
	struct arr_src *a = arg;

	(void)c;
	a->pos[split] = split;
	a->step[split] = splits;
	return 0;
}

static int arr_next(struct weir_ctx *c, void *recs, int64_t *ts,
		    unsigned max, void *arg)
{
	struct arr_src *a = arg;
	unsigned me = weir_ctx_core(c), n = 0;

	if (a->pace_us && a->pos[me] < a->count) {
		uint64_t t = now_ns();
		if (t - a->last_ns[me] < a->pace_us * 1000ull)
			return 0;
		a->last_ns[me] = t;
		max = max < 8 ? max : 8;
	}
	while (n < max && a->pos[me] < a->count) {
		const struct ev *e = &a->ev[a->pos[me]];
		memcpy((struct ev *)recs + n, e, sizeof(*e));
		ts[n++] = e->ts;
		a->pos[me] += a->step[me];
	}
	return n ? (int)n : WEIR_SOURCE_END;
}

static void key_of(const void *rec, void *key, void *arg)
{
	(void)arg;
	memcpy(key, &((const struct ev *)rec)->key, 4);
}

static uint32_t combine_entries = WEIR_COMBINE_ENTRIES_DEFAULT;

static struct weir_pipeline *pipeline(unsigned cores)
{
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;

	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = cores < cfg.runtime.cores ? cores : cfg.runtime.cores;
	cfg.state_bytes_max = 64u << 20;
	cfg.combine_entries = combine_entries;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0);
	return p;
}

static struct weir_stream *keyed_events(struct weir_pipeline *p,
					struct arr_src *a,
					const struct weir_source_ops *ops)
{
	static const struct weir_source_ops def = { .open = arr_open,
						    .next = arr_next };
	struct weir_stream *s, *k;

	cr_assert_eq(weir_source(p, "events", ops ? ops : &def,
				 sizeof(struct ev), a, &s), 0);
	cr_assert_eq(weir_watermarks(p, s, OOO, 0), 0);
	cr_assert_eq(weir_key_by(p, s, key_of, 4, NULL, &k), 0);
	return k;
}

/* ---- windows: aggregation and output ---- */

struct acc {
	int64_t count, sum;
};

static void acc_create(void *acc, void *arg)
{
	(void)arg;
	memset(acc, 0, sizeof(struct acc));
}

static void acc_add(void *acc, const void *in, void *arg)
{
	struct acc *a = acc;

	(void)arg;
	a->count++;
	a->sum += ((const struct ev *)in)->value;
}

static void acc_merge(void *acc, const void *other, void *arg)
{
	struct acc *a = acc;
	const struct acc *b = other;

	(void)arg;
	a->count += b->count;
	a->sum += b->sum;
}

static void to_row(const void *key, int64_t start, int64_t end,
		   const void *acc, void *out, void *arg)
{
	const struct acc *a = acc;
	struct row r = { 0 };

	(void)arg;
	memcpy(&r.key, key, 4);
	r.start = start;
	r.end = end;
	r.count = a->count;
	r.sum = a->sum;
	memcpy(out, &r, sizeof(r));
}

static const struct weir_aggregate_ops agg = {
	.create = acc_create, .add = acc_add, .merge = acc_merge,
	.acc_size = sizeof(struct acc) };

#define ROWS_MAX 400000u
struct rows {
	struct row r[ROWS_MAX];
	_Atomic unsigned n;
	_Atomic unsigned late;
};

static int collect_row(struct weir_ctx *c, const void *rec, void *arg)
{
	struct rows *rs = arg;
	unsigned i = atomic_fetch_add(&rs->n, 1);

	(void)c;
	if (i >= ROWS_MAX)
		return -ENOSPC;
	memcpy(&rs->r[i], rec, sizeof(struct row));
	return 0;
}

static int count_late(struct weir_ctx *c, const void *rec, void *arg)
{
	struct rows *rs = arg;

	(void)c;
	(void)rec;
	rs->late++;
	return 0;
}

static bool with_late_stream = true; /* a late stream turns the combiner off */

static void run_windows(unsigned cores, const struct weir_window_spec *spec,
			struct rows *rs, const struct weir_source_ops *ops,
			struct arr_src *src, uint64_t *late_count)
{
	struct weir_pipeline *p = pipeline(cores);
	struct weir_stream *k, *out, *late;

	memset(rs, 0, sizeof(*rs));
	k = keyed_events(p, src, ops);
	cr_assert_eq(weir_window(p, k, spec, &out,
				 with_late_stream ? &late : NULL), 0, "%s",
		     weir_last_error());
	cr_assert_eq(weir_sink_callback(p, out, collect_row, rs), 0);
	if (with_late_stream)
		cr_assert_eq(weir_sink_callback(p, late, count_late, rs), 0);
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	*late_count = weir_window_late_records(out);
	weir_pipeline_destroy(p);
}

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return (x->pad > y->pad) - (x->pad < y->pad); /* emission order */
}

/* Sort rows by (key, start, emission) and keep the last of each window. */
static unsigned final_rows(struct rows *rs)
{
	unsigned n = rs->n, m = 0;

	for (unsigned i = 0; i < n; i++)
		rs->r[i].pad = i;
	qsort(rs->r, n, sizeof(rs->r[0]), cmp_row);
	for (unsigned i = 0; i < n; i++) {
		if (i + 1 < n && rs->r[i + 1].key == rs->r[i].key &&
		    rs->r[i + 1].start == rs->r[i].start)
			continue;
		rs->r[m++] = rs->r[i];
	}
	return m;
}

static struct rows rows_a, rows_b;
static struct acc model[NKEY][8192];

static void check_fixed_paced(int64_t size, int64_t slide, unsigned cores,
			      unsigned pace_us)
{
	struct weir_window_spec spec = { .name = "w",
		.kind = slide == size ? WEIR_WINDOW_TUMBLING : WEIR_WINDOW_SLIDING,
		.size_ms = size, .slide_ms = slide, .agg = &agg,
		.output = to_row, .out_size = sizeof(struct row) };
	struct arr_src src = { .ev = evs, .count = NEV, .pace_us = pace_us };
	uint64_t late;
	unsigned nwin = 0, m;

	memset(model, 0, sizeof(model));
	for (unsigned i = 0; i < NEV; i++)
		for (int64_t s = evs[i].ts / slide * slide; s > evs[i].ts - size;
		     s -= slide) {
			struct acc *a = &model[evs[i].key][s / slide];
			a->count++;
			a->sum += evs[i].value;
		}
	run_windows(cores, &spec, &rows_a, NULL, &src, &late);
	cr_assert_eq(late, 0, "%llu late records", (unsigned long long)late);
	m = final_rows(&rows_a);
	for (unsigned i = 0; i < m; i++) {
		const struct row *r = &rows_a.r[i];
		const struct acc *a = &model[r->key][r->start / slide];
		cr_assert_eq(r->end, r->start + size);
		cr_assert_eq(r->count, a->count, "key %u [%lld,+%lld): count %lld"
			     " != %lld", r->key, (long long)r->start,
			     (long long)size, (long long)r->count,
			     (long long)a->count);
		cr_assert_eq(r->sum, a->sum, "key %u window %lld", r->key,
			     (long long)r->start);
	}
	for (unsigned k = 0; k < NKEY; k++)
		for (unsigned w = 0; w < 8192; w++)
			nwin += model[k][w].count > 0;
	cr_assert_eq(m, nwin, "%u windows emitted, model has %u", m, nwin);
}

static void check_fixed(int64_t size, int64_t slide, unsigned cores)
{
	check_fixed_paced(size, slide, cores, 0);
}

static void check_combined(int64_t size, int64_t slide, uint32_t entries)
{
	with_late_stream = false;
	combine_entries = entries;
	make_events(4);
	check_fixed_paced(size, slide, 2, 200);
	with_late_stream = true;
	combine_entries = WEIR_COMBINE_ENTRIES_DEFAULT;
}

Test(window, combiner_tumbling_tiny_cache, .timeout = 60)
{
	check_combined(100, 100, 4);
}

Test(window, combiner_tumbling, .timeout = 60)
{
	check_combined(100, 100, 4096);
}

Test(window, combiner_sliding_tiny_cache, .timeout = 60)
{
	check_combined(100, 25, 4);
}

Test(window, combiner_sliding, .timeout = 60)
{
	check_combined(100, 25, 4096);
}

Test(window, tumbling_matches_model_on_1_core)
{
	make_events(4);
	check_fixed(100, 100, 1);
}

Test(window, tumbling_matches_model_on_2_cores)
{
	make_events(4);
	check_fixed(100, 100, 2);
}

Test(window, sliding_matches_model_on_2_cores)
{
	make_events(4);
	check_fixed(100, 25, 2);
}

/* ---- sessions ---- */

#define GAP 30

Test(window, session_windows_match_model)
{
	struct weir_window_spec spec = { .name = "s",
		.kind = WEIR_WINDOW_SESSION, .gap_ms = GAP,
		.allowed_lateness_ms = 4 * OOO, .agg = &agg,
		.output = to_row, .out_size = sizeof(struct row) };
	struct arr_src src = { .ev = evs, .count = NEV };
	static int64_t ts_of[NKEY][NEV];
	static int64_t val_of[NKEY][NEV];
	unsigned cnt[NKEY] = { 0 }, m;
	uint64_t late;

	make_events(12); /* sparse enough for several sessions per key */
	for (unsigned i = 0; i < NEV; i++) {
		unsigned k = evs[i].key, j = cnt[k]++;
		/* insertion into per-key ts order */
		while (j > 0 && ts_of[k][j - 1] > evs[i].ts) {
			ts_of[k][j] = ts_of[k][j - 1];
			val_of[k][j] = val_of[k][j - 1];
			j--;
		}
		ts_of[k][j] = evs[i].ts;
		val_of[k][j] = evs[i].value;
	}
	run_windows(2, &spec, &rows_b, NULL, &src, &late);
	cr_assert_eq(late, 0);
	m = final_rows(&rows_b);
	unsigned sessions = 0;
	for (unsigned k = 0; k < NKEY; k++) {
		for (unsigned i = 0; i < cnt[k];) {
			struct row want = { .key = k, .start = ts_of[k][i] };
			int64_t end = ts_of[k][i] + GAP;
			for (; i < cnt[k] && ts_of[k][i] <= end; i++) {
				want.count++;
				want.sum += val_of[k][i];
				if (ts_of[k][i] + GAP > end)
					end = ts_of[k][i] + GAP;
			}
			const struct row *got = NULL;
			for (unsigned r = 0; r < m && got == NULL; r++)
				if (rows_b.r[r].key == k &&
				    rows_b.r[r].start == want.start &&
				    rows_b.r[r].end == end)
					got = &rows_b.r[r];
			if (got == NULL) {
				for (unsigned r = 0; r < m; r++)
					if (rows_b.r[r].key == k &&
					    rows_b.r[r].end > want.start - 100 &&
					    rows_b.r[r].start < end + 100)
						cr_log_error("near: [%lld,%lld) n=%lld",
							(long long)rows_b.r[r].start,
							(long long)rows_b.r[r].end,
							(long long)rows_b.r[r].count);
			}
			cr_assert_not_null(got, "session key %u [%lld,%lld) n=%lld missing",
					   k, (long long)want.start, (long long)end,
					   (long long)want.count);
			cr_assert_eq(got->count, want.count);
			cr_assert_eq(got->sum, want.sum);
			sessions++;
		}
	}
	cr_assert_geq(m, sessions);
	cr_assert_gt(sessions, NKEY * 2, "too few sessions to test merging");
}

/* ---- late records ---- */

/* Split 0 only: 1000 on-time records up to ts 10000, then a 150 ms pause
 * (watermarks get through), then a late record (ts 100), a record inside
 * the allowed lateness of the window [9900, 10000) -- whose watermark
 * 10000 - 50 - 1 = 9949 has not passed 9999 + 0 ... so use window
 * [9800, 9900) -- and a final on-time one. */
static int paused_next(struct weir_ctx *c, void *recs, int64_t *ts,
		       unsigned max, void *arg)
{
	static _Thread_local struct timespec pause_from;
	struct arr_src *a = arg;
	struct timespec now;

	if (weir_ctx_core(c) == 0 && a->pos[0] == 1000) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (pause_from.tv_sec == 0)
			pause_from = now;
		double ms = (now.tv_sec - pause_from.tv_sec) * 1e3 +
			    (now.tv_nsec - pause_from.tv_nsec) / 1e6;
		if (ms < 150)
			return 0;
	}
	if (max > 1)
		max = 1;
	return arr_next(c, recs, ts, max, arg);
}

Test(window, late_records_are_counted_and_side_output)
{
	static const struct weir_source_ops ops = { .open = arr_open,
						    .next = paused_next };
	static struct ev seq[1003];
	struct weir_window_spec spec = { .name = "t",
		.kind = WEIR_WINDOW_TUMBLING, .size_ms = 100,
		.allowed_lateness_ms = 100, .agg = &agg, .output = to_row,
		.out_size = sizeof(struct row) };
	struct arr_src src = { .ev = seq, .count = 1003 };
	uint64_t late;

	for (unsigned i = 0; i < 1000; i++)
		seq[i] = (struct ev){ 1, 0, 1, 10 + 10 * (int64_t)i };
	/* watermark now 10000 - 50 - 1 = 9949 */
	seq[1000] = (struct ev){ 1, 0, 7, 100 };   /* [100,200): purged */
	seq[1001] = (struct ev){ 1, 0, 5, 9850 };  /* [9800,9900): fired at
						      9899, kept to 9999 */
	seq[1002] = (struct ev){ 1, 0, 1, 20000 }; /* on time */
	run_windows(1, &spec, &rows_a, &ops, &src, &late);
	cr_assert_eq(late, 1, "late count %llu", (unsigned long long)late);
	cr_assert_eq(rows_a.late, 1, "late stream got %u", rows_a.late);
	unsigned m = final_rows(&rows_a);
	const struct row *r = NULL;
	for (unsigned i = 0; i < m; i++)
		if (rows_a.r[i].start == 9800)
			r = &rows_a.r[i];
	cr_assert_not_null(r);
	cr_assert_eq(r->count, 11, "allowed-late record not added: %lld",
		     (long long)r->count);
	cr_assert_eq(r->sum, 15);
}

/* ---- late records while the window fires ---- */

#define FIRE_KEYS 20000u
#define FIRE_LATE 2000u

/* Core 0: the on-time records and the one that moves the watermark past
 * the window, then 40 ms (a watermark marker gets through, the firing
 * starts), then the late ones, 4 per call. */
static int firing_next(struct weir_ctx *c, void *recs, int64_t *ts,
		       unsigned max, void *arg)
{
	static _Thread_local uint64_t pause_from;
	struct arr_src *a = arg;

	if (weir_ctx_core(c) == 0 && a->pos[0] >= FIRE_KEYS + 1) {
		if (pause_from == 0)
			pause_from = now_ns();
		if (now_ns() - pause_from < 40000000ull)
			return 0;
		max = max < 4 ? max : 4;
	}
	return arr_next(c, recs, ts, max, arg);
}

static void row_key(const void *rec, void *key, void *arg)
{
	(void)arg;
	memcpy(key, &((const struct row *)rec)->key, 4);
}

/* A sink of 20 us a row behind a key_by: the window's rows back up through
 * the ring into the out buffers. */
static int slow_row(struct weir_ctx *c, const void *rec, void *arg)
{
	uint64_t t0 = now_ns();

	while (now_ns() - t0 < 20000)
		;
	return collect_row(c, rec, arg);
}

Test(window, late_records_while_their_window_fires, .timeout = 60)
{
	static const struct weir_source_ops ops = { .open = arr_open,
						    .next = firing_next };
	static struct ev seq[FIRE_KEYS + 1 + FIRE_LATE];
	struct weir_window_spec spec = { .name = "f",
		.kind = WEIR_WINDOW_TUMBLING, .size_ms = 100,
		.allowed_lateness_ms = 100000, .agg = &agg, .output = to_row,
		.out_size = sizeof(struct row) };
	struct arr_src src = { .ev = seq, .count = FIRE_KEYS + 1 + FIRE_LATE };
	struct weir_pipeline *p = pipeline(1);
	struct weir_stream *k, *out, *late, *rows;
	unsigned m, fired = 0;

	for (unsigned i = 0; i < FIRE_KEYS; i++)
		seq[i] = (struct ev){ i, 0, 1, 10 };
	seq[FIRE_KEYS] = (struct ev){ 999999, 0, 1, 300 }; /* wm 249 > 99 */
	for (unsigned i = 0; i < FIRE_LATE; i++) /* fired keys, then new */
		seq[FIRE_KEYS + 1 + i] = (struct ev){ i < 1000 ? i : FIRE_KEYS + i,
						      0, 1, 50 };
	memset(&rows_a, 0, sizeof(rows_a));
	k = keyed_events(p, &src, &ops);
	cr_assert_eq(weir_window(p, k, &spec, &out, &late), 0);
	cr_assert_eq(weir_key_by(p, out, row_key, 4, NULL, &rows), 0);
	cr_assert_eq(weir_sink_callback(p, rows, slow_row, &rows_a), 0);
	cr_assert_eq(weir_sink_callback(p, late, count_late, &rows_a), 0);
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	cr_assert_eq(weir_window_late_records(out), 0);
	weir_pipeline_destroy(p);
	m = final_rows(&rows_a);
	for (unsigned i = 0; i < m; i++) {
		const struct row *r = &rows_a.r[i];
		if (r->start != 0)
			continue;
		fired++;
		cr_assert_eq(r->count, r->key < 1000 ? 2 : 1, "key %u: count %lld",
			     r->key, (long long)r->count);
	}
	cr_assert_eq(fired, FIRE_KEYS + 1000, "%u keys in the window", fired);
}

/* ---- the memory cap ---- */

Test(window, memory_cap_fails_with_the_window_named, .timeout = 60)
{
	static struct ev many[400000];
	struct weir_window_spec spec = { .name = "capped",
		.kind = WEIR_WINDOW_TUMBLING, .size_ms = 1000000, .agg = &agg,
		.output = to_row, .out_size = sizeof(struct row) };
	struct arr_src src = { .ev = many, .count = 400000 };
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *k, *out;

	for (unsigned i = 0; i < 400000; i++)
		many[i] = (struct ev){ i, 0, 1, 1000 + i / 1000 };
	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = 1;
	cfg.state_bytes_max = 8u << 20;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0);
	k = keyed_events(p, &src, NULL);
	cr_assert_eq(weir_window(p, k, &spec, &out, NULL), 0);
	cr_assert_eq(weir_sink_callback(p, out, collect_row, &rows_a), 0);
	memset(&rows_a, 0, sizeof(rows_a));
	cr_assert_eq(weir_pipeline_run(p), -ENOMEM);
	cr_assert(strstr(weir_last_error(), "window 'capped'") != NULL &&
		  strstr(weir_last_error(), "8388608") != NULL,
		  "message: %s", weir_last_error());
	weir_pipeline_destroy(p);
}

/* ---- watermark alignment ---- */

#define ALIGN_N 30000
#define ALIGN_DRIFT 2000

struct align_src {
	_Atomic int64_t last[2];	/* the largest ts each split produced */
	unsigned made[2];
	int64_t lead_max;		/* split 1's, over split 0's */
};

static int align_open(struct weir_ctx *c, unsigned split, unsigned splits,
		      void *arg)
{
	struct align_src *a = arg;

	(void)c;
	cr_assert_eq(splits, 2);
	a->made[split] = 0;
	atomic_store(&a->last[split], -1);
	return 0;
}

/* Split 0: one record a call; split 1: up to max, once split 0 has made
 * two (so split 0 has sent its first watermark).  Record j of a split has
 * ts j ms; the lead is measured against what split 0 had made before the
 * call, so it is never under the true one. */
static int align_next(struct weir_ctx *c, void *recs, int64_t *ts,
		      unsigned max, void *arg)
{
	struct align_src *a = arg;
	unsigned me = weir_ctx_core(c), n = 0;
	int64_t slow = atomic_load(&a->last[0]);

	if (a->made[me] == ALIGN_N)
		return WEIR_SOURCE_END;
	if (me == 1 && slow < 1)
		return 0;
	max = me == 0 ? 1 : max;
	while (n < max && a->made[me] < ALIGN_N) {
		unsigned j = a->made[me]++;
		((struct ev *)recs)[n] = (struct ev){ j % NKEY, 0, 1, j };
		ts[n++] = j;
	}
	atomic_store(&a->last[me], ts[n - 1]);
	if (me == 1 && ts[n - 1] - slow > a->lead_max)
		a->lead_max = ts[n - 1] - slow;
	return (int)n;
}

/* Replayable (live sources are never held back). */
static int align_position(struct weir_ctx *c, void *pos, size_t cap,
			  void *arg)
{
	const struct align_src *a = arg;

	cr_assert_geq(cap, sizeof(unsigned));
	memcpy(pos, &a->made[weir_ctx_core(c)], sizeof(unsigned));
	return (int)sizeof(unsigned);
}

enum align_kind { REPLAYABLE, LIVE, SELF_ALIGNED };

static int64_t run_aligned(int64_t drift, enum align_kind kind)
{
	static const struct weir_source_ops ops_of[] = {
		[REPLAYABLE] = { .open = align_open, .next = align_next,
				 .position = align_position },
		[LIVE] = { .open = align_open, .next = align_next },
		[SELF_ALIGNED] = { .open = align_open, .next = align_next,
				   .position = align_position,
				   .flags = WEIR_SOURCE_SELF_ALIGNED } };
	const struct weir_source_ops *ops = &ops_of[kind];
	static struct align_src a;
	struct weir_window_spec spec = { .name = "w",
		.kind = WEIR_WINDOW_TUMBLING, .size_ms = 100, .agg = &agg,
		.output = to_row, .out_size = sizeof(struct row) };
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *s, *k, *out;
	int64_t total = 0;

	weir_pipeline_config_init(&cfg);
	if (cfg.runtime.cores < 2)
		cr_skip_test("needs 2 CPUs");
	cfg.runtime.cores = 2;
	cfg.align_drift_ms = drift;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0);
	memset(&a, 0, sizeof(a));
	cr_assert_eq(weir_source(p, "events", ops, sizeof(struct ev), &a,
				 &s), 0);
	cr_assert_eq(weir_watermarks(p, s, 0, 0), 0);
	cr_assert_eq(weir_key_by(p, s, key_of, 4, NULL, &k), 0);
	cr_assert_eq(weir_window(p, k, &spec, &out, NULL), 0);
	cr_assert_eq(weir_sink_callback(p, out, collect_row, &rows_a), 0);
	memset(&rows_a, 0, sizeof(rows_a));
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	for (unsigned i = 0; i < rows_a.n; i++)
		total += rows_a.r[i].count;
	cr_assert_eq(total, 2 * ALIGN_N, "records in the windows: %lld",
		     (long long)total);
	cr_assert_eq(rows_a.n, NKEY * (ALIGN_N / 100), "rows: %u", rows_a.n);
	weir_pipeline_destroy(p);
	return a.lead_max;
}

Test(window, alignment_holds_a_fast_split_within_the_drift, .timeout = 60)
{
	int64_t lead = run_aligned(ALIGN_DRIFT, REPLAYABLE);

	cr_assert_leq(lead, ALIGN_DRIFT + 65, "lead %lld ms", (long long)lead);
	lead = run_aligned(0, REPLAYABLE);
	cr_assert_gt(lead, ALIGN_DRIFT, "without alignment: lead %lld ms",
		     (long long)lead);
	lead = run_aligned(ALIGN_DRIFT, LIVE);
	cr_assert_gt(lead, ALIGN_DRIFT, "a live source: lead %lld ms",
		     (long long)lead);
	lead = run_aligned(ALIGN_DRIFT, SELF_ALIGNED); /* keeps itself */
	cr_assert_gt(lead, ALIGN_DRIFT, "a self-aligned source: lead %lld ms",
		     (long long)lead);
}

/* ---- bad specs ---- */

/* ---- a quiet source's clock (weir_source_ops.clock) ---- */

/* Split 0 offers 10 events of window [0, 100) at once, then nothing; every
 * split goes on returning 0 until the rows of that window have reached the
 * sink, or until a deadline.  Its clock, when it has one, vouches for
 * 1000 ms. */
struct quiet_src {
	struct rows *rs;
	bool offered;
	_Atomic bool timed_out;
	uint64_t deadline_ns;
};

static int quiet_next(struct weir_ctx *c, void *recs, int64_t *ts,
		      unsigned max, void *arg)
{
	struct quiet_src *q = arg;

	if (weir_ctx_core(c) == 0 && !q->offered && max >= 10) {
		for (unsigned i = 0; i < 10; i++) {
			((struct ev *)recs)[i] = (struct ev){ i, 0, 1, 10 * i };
			ts[i] = 10 * i;
		}
		q->offered = true;
		return 10;
	}
	if (atomic_load(&q->rs->n) >= 10)
		return WEIR_SOURCE_END;
	if (now_ns() < q->deadline_ns)
		return 0;
	q->timed_out = true;
	return WEIR_SOURCE_END;
}

static int64_t quiet_clock(struct weir_ctx *c, void *arg)
{
	(void)c;
	(void)arg;
	return 1000;
}

static bool quiet_run(unsigned cores, bool with_clock, uint64_t wait_ms,
		      struct rows *rs)
{
	struct weir_source_ops ops = { .next = quiet_next };
	struct weir_window_spec spec = { .kind = WEIR_WINDOW_TUMBLING,
		.size_ms = 100, .agg = &agg, .output = to_row,
		.out_size = sizeof(struct row) };
	struct quiet_src q = { .rs = rs };
	struct weir_pipeline *p = pipeline(cores);
	struct weir_stream *s, *k, *out;

	memset(rs, 0, sizeof(*rs));
	q.deadline_ns = now_ns() + wait_ms * 1000000u;
	if (with_clock)
		ops.clock = quiet_clock;
	cr_assert_eq(weir_source(p, "quiet", &ops, sizeof(struct ev), &q, &s), 0);
	/* An idle timeout too: a clock's split is never idle, so it must not
	 * stop the watermark either. */
	cr_assert_eq(weir_watermarks(p, s, OOO, 20), 0);
	cr_assert_eq(weir_key_by(p, s, key_of, 4, NULL, &k), 0);
	cr_assert_eq(weir_window(p, k, &spec, &out, NULL), 0);
	cr_assert_eq(weir_sink_callback(p, out, collect_row, rs), 0);
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	weir_pipeline_destroy(p);
	cr_assert_eq(atomic_load(&rs->n), 10, "every key's row, once");
	return !q.timed_out;
}

/* With a clock the window closes while the source is still live and
 * quiet; without one it waits for the end of input (the test can fail). */
Test(window, a_quiet_sources_clock_closes_its_windows, .timeout = 60)
{
	static struct rows rs;

	for (unsigned cores = 1; cores <= 2; cores++) {
		cr_assert(quiet_run(cores, true, 10000, &rs),
			  "%u cores: the window stayed open for 10 s", cores);
		cr_assert_not(quiet_run(cores, false, 300, &rs),
			      "%u cores: closed with no clock", cores);
	}
}

Test(window, bad_specs_are_einval)
{
	struct weir_pipeline *p = pipeline(1);
	struct arr_src src = { .ev = evs, .count = 0 };
	struct weir_stream *k = keyed_events(p, &src, NULL), *out;
	struct weir_window_spec s = { .name = "bad", .kind = WEIR_WINDOW_TUMBLING,
		.agg = &agg, .output = to_row, .out_size = sizeof(struct row) };

	cr_assert_eq(weir_window(p, k, &s, &out, NULL), -EINVAL);
	cr_assert(strstr(weir_last_error(), "size 0") != NULL, "%s",
		  weir_last_error());
	s.kind = WEIR_WINDOW_SESSION;
	cr_assert_eq(weir_window(p, k, &s, &out, NULL), -EINVAL);
	cr_assert(strstr(weir_last_error(), "gap 0") != NULL, "%s",
		  weir_last_error());
	s.kind = WEIR_WINDOW_SLIDING;
	s.size_ms = 100;
	s.slide_ms = 30;
	cr_assert_eq(weir_window(p, k, &s, &out, NULL), -EINVAL);
	s.slide_ms = 25;
	s.allowed_lateness_ms = -1;
	cr_assert_eq(weir_window(p, k, &s, &out, NULL), -EINVAL);
	s.allowed_lateness_ms = 0;
	cr_assert_eq(weir_window(p, k, &s, &out, NULL), 0);
	weir_pipeline_destroy(p);
}
