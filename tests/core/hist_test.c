/*
 * hist_test.c — the latency histogram of weir/hist.h.
 *
 * Test plan:
 *   - error bound: 200000 values spread log-uniformly over 1 ns..100 s;
 *     at p0, p1, p10, p50, p90, p99, p99.9, p99.99 and p100 the reported
 *     value is >= the exact (sorted) percentile and within 1% of it; the
 *     max is exact.
 *   - small values (0..255 ns) are exact.
 *   - values above 100 s are counted as saturated and reported as 100 s.
 *   - merge: two histograms over disjoint halves merge into the same
 *     percentiles and count as one histogram of everything.
 *   - HdrHistogram text: header columns, percentiles non-decreasing from 0
 *     to a last line at 1.000000000000 with the total count, values in the
 *     unit asked for, and the #[Mean / #[Max / #[Buckets footer; an empty
 *     histogram writes header and footer only.
 *   - concurrent read while writing: one thread records, another merges
 *     and reads counts meanwhile; every count read is <= the final one
 *     and never decreases, and after the writer joins the totals are
 *     exact.  In suite 'core', so CI's TSan step runs it.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/hist.h"

static uint64_t rng_state = 88172645463325252ull;

static uint64_t xorshift(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* log-uniform in [1, 1e11] */
static uint64_t draw(void)
{
	double u = (double)(xorshift() >> 11) / 9007199254740992.0;

	return (uint64_t)exp(u * log(1e11));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t exact_pct(const uint64_t *sorted, size_t n, double p)
{
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);

	return sorted[rank == 0 ? 0 : rank - 1];
}

Test(hist, error_bound_against_sorted_values)
{
	static const double ps[] = { 0, 1, 10, 50, 90, 99, 99.9, 99.99, 100 };
	enum { N = 200000 };
	uint64_t *v = malloc(sizeof(*v) * N);
	struct weir_hist *h;

	cr_assert_eq(weir_hist_create(&h), 0);
	for (size_t i = 0; i < N; i++) {
		v[i] = draw();
		weir_hist_record_local(h, v[i]);
	}
	qsort(v, N, sizeof(*v), cmp_u64);
	cr_assert_eq(weir_hist_count_remote(h), N);
	cr_assert_eq(weir_hist_max_remote(h), v[N - 1]);
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		uint64_t e = exact_pct(v, N, ps[i]);
		uint64_t got = weir_hist_percentile_remote(h, ps[i]);

		cr_expect(got >= e && (double)got <= (double)e * 1.01,
			  "p%g: got %llu, exact %llu", ps[i],
			  (unsigned long long)got, (unsigned long long)e);
	}
	weir_hist_destroy(h);
	free(v);
}

Test(hist, every_value_within_one_percent)
{
	struct weir_hist *h;

	cr_assert_eq(weir_hist_create(&h), 0);
	/* One value at a time: p100 of a single value is its bucket's top
	 * capped at the max, so check the bucket through p0 of {v, v}. */
	for (uint64_t v = 1; v < WEIR_HIST_MAX_NS; v = v * 1.37 + 1) {
		uint64_t got;

		weir_hist_reset_local(h);
		weir_hist_record_local(h, v);
		weir_hist_record_local(h, WEIR_HIST_MAX_NS);
		got = weir_hist_percentile_remote(h, 50);
		cr_assert(got >= v && (double)got <= (double)v * 1.008,
			  "%llu reported as %llu", (unsigned long long)v,
			  (unsigned long long)got);
	}
	weir_hist_destroy(h);
}

Test(hist, small_values_exact)
{
	struct weir_hist *h;

	cr_assert_eq(weir_hist_create(&h), 0);
	for (uint64_t v = 0; v < 256; v++)
		weir_hist_record_local(h, v);
	for (uint64_t v = 1; v <= 256; v++)
		cr_expect_eq(weir_hist_percentile_remote(h, v * 100.0 / 256),
			     v - 1);
	weir_hist_destroy(h);
}

Test(hist, saturates_at_100_s)
{
	struct weir_hist *h;

	cr_assert_eq(weir_hist_create(&h), 0);
	weir_hist_record_local(h, 5);
	weir_hist_record_n_local(h, 200 * 1000000000ull, 3);
	cr_expect_eq(weir_hist_count_remote(h), 4);
	cr_expect_eq(weir_hist_saturated_remote(h), 3);
	cr_expect_eq(weir_hist_max_remote(h), WEIR_HIST_MAX_NS);
	cr_expect_eq(weir_hist_percentile_remote(h, 100), WEIR_HIST_MAX_NS);
	cr_expect_eq(weir_hist_percentile_remote(h, 25), 5);
	weir_hist_destroy(h);
}

Test(hist, merge_equals_one_histogram)
{
	struct weir_hist *a, *b, *all, *m;

	cr_assert_eq(weir_hist_create(&a), 0);
	cr_assert_eq(weir_hist_create(&b), 0);
	cr_assert_eq(weir_hist_create(&all), 0);
	cr_assert_eq(weir_hist_create(&m), 0);
	for (int i = 0; i < 50000; i++) {
		uint64_t v = draw();

		weir_hist_record_local(i % 2 ? a : b, v);
		weir_hist_record_local(all, v);
	}
	weir_hist_merge_remote(m, a);
	weir_hist_merge_remote(m, b);
	cr_expect_eq(weir_hist_count_remote(m), 50000);
	cr_expect_eq(weir_hist_max_remote(m), weir_hist_max_remote(all));
	for (double p = 0; p <= 100; p += 0.5)
		cr_expect_eq(weir_hist_percentile_remote(m, p),
			     weir_hist_percentile_remote(all, p), "p%g", p);
	weir_hist_destroy(a);
	weir_hist_destroy(b);
	weir_hist_destroy(all);
	weir_hist_destroy(m);
}

/* Write h as .hgrm into a string (the caller frees it). */
static char *hgrm(const struct weir_hist *h, double unit)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	cr_assert_not_null(f);
	cr_assert_eq(weir_hist_write_hgrm(h, f, unit), 0);
	fclose(f);
	return buf;
}

Test(hist, hgrm_text_format)
{
	struct weir_hist *h;
	char *text, *line, *save = NULL;
	double last_p = -1, v, p, inv, last_v = 0;
	unsigned long long cnt, last_cnt = 0;
	int lines = 0, final = 0;

	cr_assert_eq(weir_hist_create(&h), 0);
	for (uint64_t i = 1; i <= 10000; i++)
		weir_hist_record_local(h, i * 1000); /* 1..10000 us */
	text = hgrm(h, 1000.0);
	cr_assert(strncmp(text, "       Value     Percentile TotalCount "
			  "1/(1-Percentile)\n\n", 56) == 0, "%.80s", text);
	for (line = strtok_r(text + 56, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			break;
		int k = sscanf(line, "%lf %lf %llu %lf", &v, &p, &cnt, &inv);

		cr_assert(k == 4 || k == 3, "line '%s'", line);
		cr_expect(p >= last_p && cnt >= last_cnt && v >= last_v);
		if (p >= 0.5 && last_p < 0.5)
			cr_expect(fabs(v - 5000) <= 50, "p50 %f us", v);
		final = k == 3;
		last_p = p, last_cnt = cnt, last_v = v;
		lines++;
	}
	cr_expect(final && last_p == 1.0 && last_cnt == 10000);
	cr_expect(lines > 30, "%d lines", lines);
	cr_expect_eq(fabs(last_v - 10000) < 1e-9, 1, "max %f", last_v);
	cr_assert_not_null(line);
	cr_expect(strncmp(line, "#[Mean    = ", 12) == 0, "%s", line);
	line = strtok_r(NULL, "\n", &save);
	cr_expect_str_eq(line, "#[Max     =    10000.000, Total count    ="
			 "        10000]");
	line = strtok_r(NULL, "\n", &save);
	cr_expect(strncmp(line, "#[Buckets = ", 12) == 0, "%s", line);
	free(text);
	weir_hist_destroy(h);
}

Test(hist, hgrm_empty)
{
	struct weir_hist *h;
	char *text;

	cr_assert_eq(weir_hist_create(&h), 0);
	text = hgrm(h, 1.0);
	cr_expect(strstr(text, "Value") == text + 7);
	cr_expect_not_null(strstr(text, "\n\n#[Mean    ="));
	cr_expect_not_null(strstr(text, "Total count    =            0]"));
	free(text);
	weir_hist_destroy(h);
}

struct writer_arg {
	struct weir_hist *h;
	uint64_t n;
	atomic_bool done;
};

static void *writer(void *arg)
{
	struct writer_arg *w = arg;

	for (uint64_t i = 0; i < w->n; i++)
		weir_hist_record_local(w->h, (i * 7919) % 1000000);
	atomic_store(&w->done, true);
	return NULL;
}

Test(hist, concurrent_read_while_writing)
{
	struct writer_arg w = { .n = 1000000 };
	struct weir_hist *m;
	pthread_t t;
	uint64_t last = 0;
	int reads = 0;

	cr_assert_eq(weir_hist_create(&w.h), 0);
	cr_assert_eq(weir_hist_create(&m), 0);
	cr_assert_eq(pthread_create(&t, NULL, writer, &w), 0);
	while (!atomic_load(&w.done) || reads == 0) {
		uint64_t c = weir_hist_count_remote(w.h);

		cr_assert(c >= last && c <= w.n, "count %llu after %llu",
			  (unsigned long long)c, (unsigned long long)last);
		last = c;
		weir_hist_reset_local(m);
		weir_hist_merge_remote(m, w.h);
		cr_assert_leq(weir_hist_count_remote(m), w.n);
		cr_assert_leq(weir_hist_percentile_remote(m, 99), 1000000);
		reads++;
	}
	pthread_join(t, NULL);
	cr_expect_eq(weir_hist_count_remote(w.h), w.n);
	cr_expect_eq(weir_hist_max_remote(w.h), 999999);
	weir_hist_destroy(w.h);
	weir_hist_destroy(m);
}
