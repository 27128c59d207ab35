/*
 * metrics_test.c — per-core metrics, the JSON lines file and the
 * Prometheus endpoint (weir/metrics.h), scraped over a loopback socket.
 *
 * Test plan:
 *   - a pipeline (own source on 2 cores -> key_by -> callback sink) counts
 *     records_out in the source and records_in plus a latency sample in
 *     the sink; the endpoint is scraped while it runs (200, text/plain,
 *     every metric name with a core label) and after: records_in total ==
 *     records_out total == records produced, latency count == records.
 *   - GET of another path is a 404.
 *   - a second metrics on the same port fails with -EADDRINUSE and a
 *     message that says the port is in use.
 *   - the checkpoint flag splits latency samples into the phase="checkpoint"
 *     and phase="steady" summaries.
 *   - the JSON file: one line per interval and a last one at stop, each a
 *     {"t_ms":..,"cores":[..]} object whose last line carries the final
 *     counts.
 *   - the engine fills what no callback does (weir_pipeline_metrics): a
 *     keyed count on 2 cores whose sink on core 1 sleeps 50 us for its
 *     first 3000 rows, with nothing calling weir_metrics_sample_local:
 *     both cores report state bytes, and the sources report time held
 *     back for room (backpressure_ns > 10 ms: core 0's ring to core 1
 *     fills while core 1 sleeps).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weir/metrics.h"
#include "weir/pipeline.h"
#include "weir/state.h"
#include "weir/tsc.h"

/* GET path from 127.0.0.1:port; returns the whole response (malloc'd). */
static char *http_get(uint16_t port, const char *path)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap), req[256];
	ssize_t r;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
		     "connect: %s", strerror(errno));
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n",
		 path);
	cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (len + 1 == cap)
			buf = realloc(buf, cap *= 2);
	}
	buf[len] = '\0';
	close(fd);
	return buf;
}

/* Sum of `name{core="i"} v` over every core in a scrape. */
static unsigned long long prom_sum(const char *text, const char *name)
{
	unsigned long long sum = 0, v;
	size_t n = strlen(name);

	for (const char *p = text; (p = strstr(p, name)) != NULL; p += n)
		if ((p == text || p[-1] == '\n') && p[n] == '{' &&
		    sscanf(strchr(p, '}') + 1, " %llu", &v) == 1)
			sum += v;
	return sum;
}

#define RECS_PER_CORE 50000u

struct job {
	struct weir_metrics *m;
	uint64_t made[WEIR_CORES_MAX];
};

static int src_next(struct weir_ctx *c, void *recs, int64_t *ts,
		    unsigned max, void *arg)
{
	struct job *j = arg;
	unsigned core = weir_ctx_core(c), n = 0;
	uint64_t *r = recs;

	if (j->made[core] == RECS_PER_CORE)
		return WEIR_SOURCE_END;
	for (; n < max && j->made[core] < RECS_PER_CORE; n++) {
		r[2 * n] = j->made[core]++ * 2 + core;
		r[2 * n + 1] = weir_tsc_now();
		ts[n] = WEIR_TS_MIN;
	}
	weir_metrics_add_local(j->m, core, WEIR_METRIC_RECORDS_OUT, n);
	weir_metrics_sample_local(j->m, c);
	return (int)n;
}

static void key_of(const void *rec, void *key, void *arg)
{
	(void)arg;
	memcpy(key, rec, 8);
}

static int sink(struct weir_ctx *c, const void *rec, void *arg)
{
	struct job *j = arg;
	const uint64_t *r = rec;
	unsigned core = weir_ctx_core(c);

	weir_metrics_add_local(j->m, core, WEIR_METRIC_RECORDS_IN, 1);
	weir_metrics_latency_local(j->m, core,
				   weir_tsc_ns(r[1], weir_tsc_now()));
	return 0;
}

static void build(struct weir_pipeline **pp, struct job *j)
{
	static const struct weir_source_ops ops = { .next = src_next };
	struct weir_pipeline_config cfg;
	struct weir_stream *s, *k;

	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = 2;
	cfg.runtime.record_size = 64;
	cr_assert_eq(weir_pipeline_create(&cfg, pp), 0, "%s",
		     weir_last_error());
	cr_assert_eq(weir_source(*pp, "src", &ops, 16, j, &s), 0);
	cr_assert_eq(weir_key_by(*pp, s, key_of, 8, NULL, &k), 0);
	cr_assert_eq(weir_sink_callback(*pp, k, sink, j), 0);
}

struct scraper {
	uint16_t port;
	atomic_bool stop;
	int scrapes;
};

static void *scrape_loop(void *arg)
{
	struct scraper *s = arg;

	while (!atomic_load(&s->stop)) {
		char *r = http_get(s->port, "/metrics");

		cr_assert(strncmp(r, "HTTP/1.0 200", 12) == 0 ||
			  strncmp(r, "HTTP/1.1 200", 12) == 0, "%.40s", r);
		free(r);
		s->scrapes++;
		usleep(2000);
	}
	return NULL;
}

Test(metrics, pipeline_counts_scraped)
{
	struct weir_metrics_config mc;
	struct job j = { 0 };
	struct weir_pipeline *p;
	struct scraper s = { 0 };
	pthread_t t;
	char *r;

	weir_tsc_calibrate();
	weir_metrics_config_init(&mc);
	mc.cores = 2;
	mc.http = true;
	cr_assert_eq(weir_metrics_create(&mc, &j.m), 0, "%s",
		     weir_last_error());
	cr_assert_eq(weir_metrics_start(j.m), 0);
	s.port = weir_metrics_http_port(j.m);
	cr_assert_neq(s.port, 0);
	build(&p, &j);
	cr_assert_eq(pthread_create(&t, NULL, scrape_loop, &s), 0);
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	atomic_store(&s.stop, true);
	pthread_join(t, NULL);
	cr_expect_gt(s.scrapes, 0);
	r = http_get(s.port, "/metrics");
	cr_expect_not_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
	for (unsigned k = 0; k < WEIR_METRIC_COUNT_; k++)
		cr_expect_not_null(strstr(r, weir_metrics_name(k)), "%s",
				   weir_metrics_name(k));
	cr_expect_eq(prom_sum(r, "weir_records_out_total"), 2 * RECS_PER_CORE);
	cr_expect_eq(prom_sum(r, "weir_records_in_total"), 2 * RECS_PER_CORE);
	cr_expect_not_null(strstr(r, "weir_latency_ns_count{phase=\"steady\"} "
				  "100000\n"), "%s", r);
	cr_expect_not_null(strstr(r, "weir_ring_occupancy{core=\"1\"} "));
	free(r);
	r = http_get(s.port, "/nope");
	cr_expect(strstr(r, " 404 ") != NULL, "%.40s", r);
	free(r);
	weir_pipeline_destroy(p);
	weir_metrics_destroy(j.m);
}

Test(metrics, port_in_use_refused)
{
	struct weir_metrics_config mc;
	struct weir_metrics *a, *b = NULL;

	weir_metrics_config_init(&mc);
	mc.http = true;
	cr_assert_eq(weir_metrics_create(&mc, &a), 0);
	mc.http_port = weir_metrics_http_port(a);
	cr_expect_eq(weir_metrics_create(&mc, &b), -EADDRINUSE);
	cr_expect_null(b);
	cr_expect_not_null(strstr(weir_last_error(), "already in use"), "%s",
			   weir_last_error());
	weir_metrics_destroy(a);
}

Test(metrics, checkpoint_flag_splits_latency)
{
	struct weir_metrics_config mc;
	struct weir_metrics *m;
	char *text;
	size_t len;

	weir_metrics_config_init(&mc);
	cr_assert_eq(weir_metrics_create(&mc, &m), 0);
	weir_metrics_checkpoint_local(m, 0, true);
	for (int i = 0; i < 3; i++)
		weir_metrics_latency_local(m, 0, 1000000);
	weir_metrics_checkpoint_local(m, 0, false);
	for (int i = 0; i < 5; i++)
		weir_metrics_latency_local(m, 0, 1000);
	cr_assert_eq(weir_metrics_prometheus_remote(m, &text, &len), 0);
	cr_expect_not_null(strstr(text,
		"weir_latency_ns_count{phase=\"checkpoint\"} 3\n"));
	cr_expect_not_null(strstr(text,
		"weir_latency_ns_count{phase=\"steady\"} 5\n"));
	cr_expect_not_null(strstr(text, "weir_latency_ns{phase=\"steady\","
				  "quantile=\"0.99\"} 1000\n"), "%s", text);
	free(text);
	weir_metrics_destroy(m);
}

Test(metrics, json_lines_every_interval)
{
	char path[] = "/tmp/weir_metrics_XXXXXX", line[4096], last[4096];
	struct weir_metrics_config mc;
	struct weir_metrics *m;
	int fd = mkstemp(path), lines = 0;
	FILE *f;

	cr_assert(fd >= 0);
	close(fd);
	weir_metrics_config_init(&mc);
	mc.cores = 2;
	mc.json_path = path;
	mc.interval_ms = 10;
	cr_assert_eq(weir_metrics_create(&mc, &m), 0, "%s", weir_last_error());
	weir_metrics_add_local(m, 1, WEIR_METRIC_RECORDS_IN, 7);
	cr_assert_eq(weir_metrics_start(m), 0);
	usleep(60000);
	weir_metrics_add_local(m, 1, WEIR_METRIC_DROPS, 2);
	weir_metrics_destroy(m);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		cr_expect(strncmp(line, "{\"t_ms\":", 8) == 0, "%s", line);
		cr_expect_not_null(strstr(line, "{\"core\":1,\"records_in\":7,"));
		strcpy(last, line);
		lines++;
	}
	fclose(f);
	unlink(path);
	cr_expect_geq(lines, 3, "%d lines", lines);
	cr_expect_not_null(strstr(last, "\"drops\":2,"), "%s", last);
	cr_expect_not_null(strstr(last, "\"latency_ns\":{\"count\":0,"));
}

/* ---- what the engine fills in itself ---- */

#define BP_RECS_PER_CORE 200000u

struct bp_job {
	uint64_t made[WEIR_CORES_MAX];
	uint64_t slow[WEIR_CORES_MAX];
	_Atomic uint64_t rows;
};

static int bp_next(struct weir_ctx *c, void *recs, int64_t *ts,
		   unsigned max, void *arg)
{
	struct bp_job *j = arg;
	unsigned core = weir_ctx_core(c), n = 0;
	uint64_t *r = recs;

	if (j->made[core] == BP_RECS_PER_CORE)
		return WEIR_SOURCE_END;
	for (; n < max && j->made[core] < BP_RECS_PER_CORE; n++) {
		r[2 * n] = (j->made[core]++ * 2 + core) % 1000;
		r[2 * n + 1] = 0;
		ts[n] = WEIR_TS_MIN;
	}
	return (int)n;
}

static int bp_count(struct weir_ctx *c, const void *rec, void *arg)
{
	int64_t *v;
	int err = weir_value_update(c, 0, (void **)&v, NULL);

	(void)arg;
	if (err)
		return err;
	++*v;
	return weir_emit(c, rec);
}

/* Core 1 is slow for its first 3000 rows: core 0's ring to it fills, and
 * core 0's source waits for room. */
static int bp_sink(struct weir_ctx *c, const void *rec, void *arg)
{
	struct bp_job *j = arg;

	(void)rec;
	if (weir_ctx_core(c) == 1 && j->slow[1]++ < 3000)
		usleep(50);
	atomic_fetch_add(&j->rows, 1);
	return 0;
}

Test(metrics, engine_samples_state_and_backpressure, .timeout = 60)
{
	static const struct weir_source_ops ops = { .next = bp_next };
	static const struct weir_state_desc count = { .name = "n",
		.kind = WEIR_STATE_VALUE, .value_size = sizeof(int64_t) };
	struct weir_process_spec spec = { .name = "count",
		.process = bp_count, .out_size = 16, .states = &count,
		.nstates = 1 };
	struct weir_metrics_config mc;
	struct weir_pipeline_config cfg;
	static struct bp_job j;
	struct weir_pipeline *p;
	struct weir_metrics *m;
	struct weir_stream *s, *k, *o;
	uint64_t held = 0;

	weir_metrics_config_init(&mc);
	mc.cores = 2;
	cr_assert_eq(weir_metrics_create(&mc, &m), 0, "%s", weir_last_error());
	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = 2;
	cfg.state_bytes_max = 64u << 20;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0, "%s",
		     weir_last_error());
	cr_assert_eq(weir_source(p, "src", &ops, 16, &j, &s), 0);
	cr_assert_eq(weir_key_by(p, s, key_of, 8, NULL, &k), 0);
	cr_assert_eq(weir_process(p, k, &spec, &o), 0, "%s",
		     weir_last_error());
	cr_assert_eq(weir_sink_callback(p, o, bp_sink, &j), 0);
	weir_pipeline_metrics(p, m);
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	cr_assert_eq(atomic_load(&j.rows), 2 * BP_RECS_PER_CORE);
	for (unsigned core = 0; core < 2; core++) {
		cr_expect_gt(weir_metrics_get_remote(m, core,
				WEIR_METRIC_STATE_BYTES), 0, "core %u", core);
		held += weir_metrics_get_remote(m, core,
						WEIR_METRIC_BACKPRESSURE_NS);
	}
	cr_expect_gt(held, 10000000u, "backpressure %llu ns",
		     (unsigned long long)held);
	weir_pipeline_destroy(p);
	weir_metrics_destroy(m);
}
