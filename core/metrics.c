/*
 * metrics.c — per-core metrics slots, the JSON-lines writer thread and the
 * Prometheus endpoint (weir/metrics.h).
 *
 * HTTP is libmicrohttpd's (MHD_USE_INTERNAL_POLLING_THREAD: one thread of
 * its own, never a worker core).  We create and bind the listening socket
 * ourselves and hand it over with MHD_OPTION_LISTEN_SOCKET, because
 * MHD_start_daemon() only says NULL: binding first is what lets a port in
 * use come back as -EADDRINUSE with a line naming the port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/exec_internal.h"
#include "weir/metrics.h"

struct slot {
	/* One writer (the core), relaxed; readers: the JSON thread and MHD's
	 * thread, relaxed.  No ordering between values is promised. */
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t v[WEIR_METRIC_COUNT_];
	_Atomic bool ckpt; /* pairs with nothing: a sample may land on
			    * either side of a flip, which is harmless */
	struct weir_hist *lat[2]; /* [0] steady, [1] during checkpoint */
};

struct weir_metrics {
	struct weir_metrics_config cfg;
	struct slot *slots;
	FILE *json;
	int listen_fd;
	uint16_t port;
	struct MHD_Daemon *mhd;
	pthread_t writer;
	bool writer_running;
	pthread_mutex_t lock; /* guards stop, with cond */
	pthread_cond_t cond;
	bool stop;
	uint64_t t0_ns;
};

static const struct {
	const char *name, *help;
	bool gauge;
} info[WEIR_METRIC_COUNT_] = {
	{ "records_in", "Records taken by operators and sinks", false },
	{ "records_out", "Records produced by sources", false },
	{ "backpressure_ns", "Time a source was held back by backpressure",
	  false },
	{ "drops", "Records dropped (live sources)", false },
	{ "malformed", "Malformed packets skipped", false },
	{ "checkpoints", "Checkpoints committed (core 0)", false },
	{ "ring_occupancy", "Records queued in the rings into the core",
	  true },
	{ "state_bytes", "State arena bytes in use", true },
	{ "state_keys", "Keys in keyed state", true },
	{ "checkpoint_duration_ns", "Last committed checkpoint's duration, "
	  "trigger to commit (core 0)", true },
	{ "checkpoint_bytes", "Bytes the last committed checkpoint wrote "
	  "(core 0)", true },
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void weir_metrics_config_init(struct weir_metrics_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cores = 1;
	cfg->interval_ms = 1000;
}

const char *weir_metrics_name(enum weir_metric k)
{
	return (unsigned)k < WEIR_METRIC_COUNT_ ? info[k].name : "?";
}

/* ---- data path ---- */

void weir_metrics_add_local(struct weir_metrics *m, unsigned core,
			    enum weir_metric k, uint64_t n)
{
	_Atomic uint64_t *a = &m->slots[core].v[k];

	atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed)
			      + n, memory_order_relaxed);
}

void weir_metrics_set_local(struct weir_metrics *m, unsigned core,
			    enum weir_metric k, uint64_t v)
{
	atomic_store_explicit(&m->slots[core].v[k], v, memory_order_relaxed);
}

void weir_metrics_latency_local(struct weir_metrics *m, unsigned core,
				uint64_t ns)
{
	struct slot *s = &m->slots[core];
	bool ck = atomic_load_explicit(&s->ckpt, memory_order_relaxed);

	weir_hist_record_local(s->lat[ck], ns);
}

void weir_metrics_checkpoint_local(struct weir_metrics *m, unsigned core,
				   bool active)
{
	atomic_store_explicit(&m->slots[core].ckpt, active,
			      memory_order_relaxed);
}

void weir_metrics_sample_local(struct weir_metrics *m, struct weir_ctx *c)
{
	struct wr_exec *x = c->x;
	struct weir_runtime *rt = weir_worker_runtime(x->w);
	struct wr_arena_stats st;
	uint64_t queued = 0;

	if (x->id >= m->cfg.cores)
		return;
	for (unsigned from = 0; from < x->n; from++)
		queued += weir_ring_count(weir_runtime_ring(rt, from, x->id));
	weir_metrics_set_local(m, x->id, WEIR_METRIC_RING_OCCUPANCY, queued);
	if (x->arena != NULL) {
		wr_arena_get_stats(x->arena, &st);
		weir_metrics_set_local(m, x->id, WEIR_METRIC_STATE_BYTES,
				       st.bytes_used);
	}
}

/* ---- readers ---- */

uint64_t weir_metrics_get_remote(const struct weir_metrics *m, unsigned core,
				 enum weir_metric k)
{
	return atomic_load_explicit(&m->slots[core].v[k],
				    memory_order_relaxed);
}

void weir_metrics_latency_merge_remote(const struct weir_metrics *m,
				       bool checkpoint, struct weir_hist *dst)
{
	for (unsigned i = 0; i < m->cfg.cores; i++)
		weir_hist_merge_remote(dst, m->slots[i].lat[checkpoint]);
}

static void prom_metric(FILE *f, const struct weir_metrics *m,
			enum weir_metric k)
{
	const char *suffix = info[k].gauge ? "" : "_total";

	fprintf(f, "# HELP weir_%s%s %s.\n# TYPE weir_%s%s %s\n",
		info[k].name, suffix, info[k].help, info[k].name, suffix,
		info[k].gauge ? "gauge" : "counter");
	for (unsigned i = 0; i < m->cfg.cores; i++)
		fprintf(f, "weir_%s%s{core=\"%u\"} %llu\n", info[k].name,
			suffix, i, (unsigned long long)
			weir_metrics_get_remote(m, i, k));
}

static void prom_latency(FILE *f, const struct weir_hist *h,
			 const char *phase)
{
	static const double q[] = { 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0 };
	uint64_t n = weir_hist_count_remote(h);

	for (unsigned i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		fprintf(f, "weir_latency_ns{phase=\"%s\",quantile=\"%g\"} "
			"%llu\n", phase, q[i], (unsigned long long)
			weir_hist_percentile_remote(h, q[i] * 100));
	fprintf(f, "weir_latency_ns_sum{phase=\"%s\"} %.0f\n", phase,
		weir_hist_mean_remote(h) * (double)n);
	fprintf(f, "weir_latency_ns_count{phase=\"%s\"} %llu\n", phase,
		(unsigned long long)n);
}

/* Both phases merged over the cores, as one summary with a phase label. */
static int prom_latencies(FILE *f, const struct weir_metrics *m)
{
	struct weir_hist *h;
	int err = weir_hist_create(&h);

	if (err)
		return err;
	fputs("# HELP weir_latency_ns End-to-end record latency (sampled).\n"
	      "# TYPE weir_latency_ns summary\n", f);
	for (int ck = 0; ck < 2; ck++) {
		weir_hist_reset_local(h);
		weir_metrics_latency_merge_remote(m, ck, h);
		prom_latency(f, h, ck ? "checkpoint" : "steady");
	}
	weir_hist_destroy(h);
	return 0;
}

int weir_metrics_prometheus_remote(const struct weir_metrics *m, char **out,
				   size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int err;

	if (f == NULL)
		return -ENOMEM;
	for (unsigned k = 0; k < WEIR_METRIC_COUNT_; k++)
		prom_metric(f, m, (enum weir_metric)k);
	err = prom_latencies(f, m);
	if (fclose(f) != 0 && err == 0)
		err = -ENOMEM;
	if (err) {
		free(buf);
		return err;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* ---- JSON lines ---- */

static void json_latency(FILE *f, const struct weir_metrics *m)
{
	struct weir_hist *h;

	if (weir_hist_create(&h) != 0)
		return;
	weir_metrics_latency_merge_remote(m, false, h);
	weir_metrics_latency_merge_remote(m, true, h);
	fprintf(f, ",\"latency_ns\":{\"count\":%llu,\"p50\":%llu,\"p99\":%llu,"
		"\"p999\":%llu,\"max\":%llu}",
		(unsigned long long)weir_hist_count_remote(h),
		(unsigned long long)weir_hist_percentile_remote(h, 50),
		(unsigned long long)weir_hist_percentile_remote(h, 99),
		(unsigned long long)weir_hist_percentile_remote(h, 99.9),
		(unsigned long long)weir_hist_max_remote(h));
	weir_hist_destroy(h);
}

static void json_line(struct weir_metrics *m)
{
	FILE *f = m->json;

	fprintf(f, "{\"t_ms\":%llu,\"cores\":[", (unsigned long long)
		((mono_ns() - m->t0_ns) / 1000000));
	for (unsigned i = 0; i < m->cfg.cores; i++) {
		fprintf(f, "%s{\"core\":%u", i ? "," : "", i);
		for (unsigned k = 0; k < WEIR_METRIC_COUNT_; k++)
			fprintf(f, ",\"%s\":%llu", info[k].name,
				(unsigned long long)weir_metrics_get_remote(
					m, i, (enum weir_metric)k));
		fputc('}', f);
	}
	fputc(']', f);
	json_latency(f, m);
	fputs("}\n", f);
	fflush(f);
}

static void *writer_main(void *arg)
{
	struct weir_metrics *m = arg;
	struct timespec due;

	clock_gettime(CLOCK_MONOTONIC, &due);
	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		due.tv_nsec += (long)(m->cfg.interval_ms % 1000) * 1000000;
		due.tv_sec += m->cfg.interval_ms / 1000 + due.tv_nsec / 1000000000;
		due.tv_nsec %= 1000000000;
		while (!m->stop &&
		       pthread_cond_timedwait(&m->cond, &m->lock, &due) == 0)
			;
		if (!m->stop)
			json_line(m);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* ---- HTTP ---- */

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn,
			     const char *url, const char *method,
			     const char *version, const char *upload_data,
			     size_t *upload_size, void **req_cls)
{
	static const char not_found[] = "only GET /metrics is served\n";
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned status = MHD_HTTP_OK;
	char *body;
	size_t len;

	(void)version, (void)upload_data, (void)upload_size, (void)req_cls;
	if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0) {
		status = MHD_HTTP_NOT_FOUND;
		r = MHD_create_response_from_buffer(sizeof(not_found) - 1,
			(void *)not_found, MHD_RESPMEM_PERSISTENT);
	} else if (weir_metrics_prometheus_remote(cls, &body, &len) == 0) {
		r = MHD_create_response_from_buffer(len, body,
						    MHD_RESPMEM_MUST_FREE);
	} else {
		return MHD_NO;
	}
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type",
				"text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static int bind_loopback(struct weir_metrics *m, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err, one = 1;

	if (fd < 0)
		return wr_error(-errno, "metrics: socket: %s", strerror(errno));
	/* Rebinding after a previous run's scrapes (TIME_WAIT) is fine; a
	 * socket still listening on the port is refused all the same. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		err = -errno;
		close(fd);
		return wr_error(err, "metrics: cannot listen on 127.0.0.1:%u: "
				"%s", port, err == -EADDRINUSE ?
				"port already in use" : strerror(-err));
	}
	m->listen_fd = fd;
	m->port = ntohs(sa.sin_port);
	return 0;
}

/* ---- lifecycle ---- */

static int alloc_slots(struct weir_metrics *m)
{
	m->slots = aligned_alloc(WEIR_CACHE_LINE,
				 sizeof(*m->slots) * m->cfg.cores);
	if (m->slots == NULL)
		return -ENOMEM;
	memset(m->slots, 0, sizeof(*m->slots) * m->cfg.cores);
	for (unsigned i = 0; i < m->cfg.cores; i++)
		for (int ck = 0; ck < 2; ck++)
			if (weir_hist_create(&m->slots[i].lat[ck]) != 0)
				return -ENOMEM;
	return 0;
}

/* The writer's deadlines are CLOCK_MONOTONIC: a wall-clock step must not
 * stall or flood the JSON file. */
static void init_cond(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static int check_config(const struct weir_metrics_config *cfg)
{
	if (cfg->cores == 0 || cfg->cores > WEIR_CORES_MAX)
		return wr_error(-EINVAL, "metrics: cores %u not in [1, %u]",
				cfg->cores, WEIR_CORES_MAX);
	if (cfg->interval_ms == 0)
		return wr_error(-EINVAL, "metrics: interval 0 ms");
	return 0;
}

int weir_metrics_create(const struct weir_metrics_config *cfg,
			struct weir_metrics **out)
{
	struct weir_metrics *m;
	int err = check_config(cfg);

	if (err)
		return err;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->cfg = *cfg;
	m->listen_fd = -1;
	pthread_mutex_init(&m->lock, NULL);
	init_cond(&m->cond);
	err = alloc_slots(m);
	if (err)
		goto fail;
	if (cfg->json_path != NULL && (m->json = fopen(cfg->json_path, "w"))
	    == NULL) {
		err = wr_error(-errno, "metrics: cannot write %s: %s",
			       cfg->json_path, strerror(errno));
		goto fail;
	}
	if (cfg->http && (err = bind_loopback(m, cfg->http_port)) != 0)
		goto fail;
	m->cfg.json_path = NULL; /* not ours to keep */
	*out = m;
	return 0;
fail:
	weir_metrics_destroy(m);
	return err;
}

int weir_metrics_start(struct weir_metrics *m)
{
	m->t0_ns = mono_ns();
	if (m->listen_fd >= 0) {
		m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD,
			0, NULL, NULL, serve, m,
			MHD_OPTION_LISTEN_SOCKET, m->listen_fd, MHD_OPTION_END);
		if (m->mhd == NULL)
			return wr_error(-EIO, "metrics: libmicrohttpd could not "
					"start on 127.0.0.1:%u", m->port);
	}
	if (m->json != NULL) {
		if (pthread_create(&m->writer, NULL, writer_main, m) != 0)
			return wr_error(-EAGAIN, "metrics: no writer thread");
		m->writer_running = true;
	}
	return 0;
}

void weir_metrics_stop(struct weir_metrics *m)
{
	if (m == NULL)
		return;
	if (m->writer_running) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_cond_signal(&m->cond);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->writer, NULL);
		m->writer_running = false;
		json_line(m);
	}
	if (m->mhd != NULL) {
		MHD_stop_daemon(m->mhd); /* closes the listening socket */
		m->mhd = NULL;
		m->listen_fd = -1;
	}
}

void weir_metrics_destroy(struct weir_metrics *m)
{
	if (m == NULL)
		return;
	weir_metrics_stop(m);
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (m->json != NULL)
		fclose(m->json);
	for (unsigned i = 0; m->slots != NULL && i < m->cfg.cores; i++)
		for (int ck = 0; ck < 2; ck++)
			weir_hist_destroy(m->slots[i].lat[ck]);
	free(m->slots);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

uint16_t weir_metrics_http_port(const struct weir_metrics *m)
{
	return m->cfg.http ? m->port : 0;
}
