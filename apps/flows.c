/*
 * flows.c — `weir flows`: per-flow packet and byte counts in event-time
 * tumbling windows, from a capture file or the built-in generator, written
 * as CSV through the file sink.
 *
 *   source (pcap file on core 0 | generator on every core)
 *     -> watermarks (bounded out-of-orderness --max-delay)
 *     -> key_by 5-tuple (40-byte weir_flow_key: key group -> core)
 *     -> tumbling window --window, aggregate {packets, bytes}
 *     -> file sink "<out>.inprogress", renamed to <out> at the end.
 *
 * Everything that can be refused (options, the input file) is checked
 * before the pipeline exists, so a refused run leaves no output at all; a
 * run that fails later leaves only the ".inprogress" file.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps/cli.h"
#include "weir/checkpoint.h"
#include "weir/flows.h"
#include "weir/window.h"

#define FLOWS_CSV_HEADER \
	"window_start_ms,window_end_ms,proto,src,sport,dst,dport,packets,bytes\n"

struct flows_opts {
	const char *pcap, *out, *ckpt_dir;
	uint64_t ckpt_interval_ms;
	bool gen, idle_sleep;
	unsigned cores;
	uint64_t window_ms, max_delay_ms, rate, duration_s;
	struct weir_flowgen_config gen_cfg;
};

struct flow_acc {
	uint64_t packets, bytes;
};

struct flow_row {
	struct weir_flow_key key;
	int64_t start_ms, end_ms;
	uint64_t packets, bytes;
};

static const char flows_usage[] =
	"usage: weir flows [--pcap FILE | --gen] [--cores N] [--window MS]\n"
	"                  [--out FILE] [--max-delay MS] [--rate PPS]\n"
	"                  [--duration S] [--idle busy|sleep] [--flows N]\n"
	"                  [--packets N] [--seed S] [--zipf S] [--ipv6 F]\n"
	"\n"
	"Per-flow packet and byte counts (IP-layer bytes) in event-time\n"
	"tumbling windows, keyed by the unidirectional 5-tuple, written as CSV:\n"
	"  " FLOWS_CSV_HEADER
	"\n"
	"  --pcap FILE      read a pcap or pcapng capture (timestamps = event time)\n"
	"  --gen            the built-in traffic generator (the default input)\n"
	"  --cores N        worker cores (default: every usable CPU)\n"
	"  --window MS      window size in ms, > 0 (default 1000)\n"
	"  --out FILE       output CSV (default flows.csv; FILE.inprogress while\n"
	"                   running, renamed when every window is written)\n"
	"  --max-delay MS   out-of-orderness the watermark allows (default 1000);\n"
	"                   packets later than that are counted as late=N\n"
	"  --rate PPS       pace the input to PPS packets/s (default: full speed)\n"
	"  --duration S     end the input after S seconds (default: none)\n"
	"  --idle POLICY    busy (spin) or sleep (eventfd) when idle (default busy)\n"
	"  --flows N        generator: distinct flows (default 100000)\n"
	"  --packets N      generator: packets (default 4000000)\n"
	"  --seed S         generator: seed (default 1)\n"
	"  --zipf S         generator: flow popularity skew (default 1.1)\n"
	"  --ipv6 F         generator: share of IPv6 flows, 0..1 (default 0.2)\n"
	"\n"
	"  --checkpoint-dir DIR  checkpoint state, input position and output\n"
	"                   length to DIR (created 0700); when DIR holds a\n"
	"                   checkpoint, resume from it: after a crash the same\n"
	"                   command finishes the job with exactly the rows an\n"
	"                   uninterrupted run writes\n"
	"  --checkpoint-interval MS  between checkpoints (default 1000)\n"
	"\n"
	"Not available yet: --dpdk.\n"
	"Exit status: 0 done, 1 the job failed, 2 bad options or input.\n";

static int parse_double(const char *opt, const char *val, double lo,
			double hi, double *out)
{
	char *end;
	double v = strtod(val, &end);

	if (*val == '\0' || *end != '\0' || !(v >= lo && v <= hi))
		return cli_usage_error("flows: %s '%s' is not a number in "
				       "[%g, %g]", opt, val, lo, hi);
	*out = v;
	return 0;
}

/* Options that only the generator reads; 0 if `opt` is none of them. */
static int parse_gen(struct flows_opts *o, const char *opt, const char *val,
		     bool *known)
{
	uint64_t v;

	*known = true;
	if (strcmp(opt, "--flows") == 0) {
		if (!cli_parse_u64(opt, val, 1, WEIR_FLOWGEN_FLOWS_MAX, &v))
			return EXIT_USAGE;
		o->gen_cfg.flows = (uint32_t)v;
	} else if (strcmp(opt, "--packets") == 0) {
		if (!cli_parse_u64(opt, val, 1, UINT64_MAX / 2,
				   &o->gen_cfg.packets))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--seed") == 0) {
		if (!cli_parse_u64(opt, val, 0, UINT64_MAX, &o->gen_cfg.seed))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--zipf") == 0) {
		return parse_double(opt, val, 0, 10, &o->gen_cfg.zipf_s);
	} else if (strcmp(opt, "--ipv6") == 0) {
		return parse_double(opt, val, 0, 1, &o->gen_cfg.ipv6_fraction);
	} else {
		*known = false;
	}
	return 0;
}

static int parse_one(struct flows_opts *o, const char *opt, const char *val)
{
	uint64_t v;
	bool known;
	int rc;

	if (strcmp(opt, "--dpdk") == 0)
		return cli_usage_error("flows: --dpdk: the DPDK source is not "
				       "built yet");
	if (val == NULL)
		return cli_usage_error("flows: %s needs a value (try `weir flows "
				       "--help`)", opt);
	rc = parse_gen(o, opt, val, &known);
	if (known)
		return rc;
	if (strcmp(opt, "--checkpoint-dir") == 0) {
		o->ckpt_dir = val;
	} else if (strcmp(opt, "--checkpoint-interval") == 0) {
		if (!cli_parse_u64(opt, val, 1, 3600u * 1000, &o->ckpt_interval_ms))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--pcap") == 0) {
		o->pcap = val;
	} else if (strcmp(opt, "--out") == 0) {
		o->out = val;
	} else if (strcmp(opt, "--cores") == 0) {
		if (!cli_parse_u64(opt, val, 1, WEIR_CORES_MAX, &v))
			return EXIT_USAGE;
		o->cores = (unsigned)v;
	} else if (strcmp(opt, "--window") == 0) {
		if (!cli_parse_u64(opt, val, 1, INT64_MAX / 4, &o->window_ms))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--max-delay") == 0) {
		if (!cli_parse_u64(opt, val, 0, INT64_MAX / 4, &o->max_delay_ms))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--rate") == 0) {
		if (!cli_parse_u64(opt, val, 1, UINT64_MAX / 2, &o->rate))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--idle") == 0) {
		if (strcmp(val, "busy") != 0 && strcmp(val, "sleep") != 0)
			return cli_usage_error("flows: --idle '%s' is neither busy "
					       "nor sleep", val);
		o->idle_sleep = strcmp(val, "sleep") == 0;
	} else if (strcmp(opt, "--duration") == 0) {
		if (!cli_parse_u64(opt, val, 1, 86400ull * 365, &o->duration_s))
			return EXIT_USAGE;
	} else {
		return cli_usage_error("flows: unknown option '%s' (try `weir "
				       "flows --help`)", opt);
	}
	return 0;
}

/* 0 to run, -1 after --help, or EXIT_USAGE. */
static int parse_opts(int argc, char **argv, struct flows_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->out = "flows.csv";
	o->window_ms = 1000;
	o->max_delay_ms = 1000;
	o->ckpt_interval_ms = WEIR_CHECKPOINT_INTERVAL_DEFAULT;
	weir_flowgen_config_init(&o->gen_cfg);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(flows_usage, stdout);
			return -1;
		}
		if (strcmp(a, "--gen") == 0) {
			o->gen = true;
			continue;
		}
		bool novalue = strcmp(a, "--dpdk") == 0;
		int rc = parse_one(o, a, i + 1 < argc && !novalue ? argv[i + 1] :
				   NULL);
		if (rc)
			return rc;
		i++;
	}
	if (o->gen && o->pcap)
		return cli_usage_error("flows: --pcap and --gen exclude each "
				       "other");
	if (*o->out == '\0')
		return cli_usage_error("flows: --out needs a file name");
	return 0;
}

/* ---- the job ---- */

static void key_of(const void *rec, void *key, void *arg)
{
	(void)arg;
	memcpy(key, &((const struct weir_flow_obs *)rec)->key,
	       sizeof(struct weir_flow_key));
}

static void acc_create(void *acc, void *arg)
{
	(void)arg;
	memset(acc, 0, sizeof(struct flow_acc));
}

static void acc_add(void *acc, const void *in, void *arg)
{
	struct flow_acc *a = acc;

	(void)arg;
	a->packets++;
	a->bytes += ((const struct weir_flow_obs *)in)->ip_bytes;
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
	const struct flow_acc *a = acc;
	struct flow_row r;

	(void)arg;
	memcpy(&r.key, key, sizeof(r.key));
	r.start_ms = start;
	r.end_ms = end;
	r.packets = a->packets;
	r.bytes = a->bytes;
	memcpy(out, &r, sizeof(r));
}

/* Runs on core 0 only (the file sink's core): `rows` is core 0's. */
static int format_row(const void *rec, char *buf, size_t cap, void *arg)
{
	const struct flow_row *r = rec;
	char src[64], dst[64];
	int n;

	weir_flow_addr_format(r->key.src, r->key.ip_version, src, sizeof(src));
	weir_flow_addr_format(r->key.dst, r->key.ip_version, dst, sizeof(dst));
	n = snprintf(buf, cap, "%lld,%lld,%u,%s,%u,%s,%u,%llu,%llu\n",
		     (long long)r->start_ms, (long long)r->end_ms, r->key.proto,
		     src, r->key.sport, dst, r->key.dport,
		     (unsigned long long)r->packets,
		     (unsigned long long)r->bytes);
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	(*(uint64_t *)arg)++;
	return n;
}

struct flows_job {
	struct flows_opts *o;
	struct weir_pcap_source *pcap;
	struct weir_flowgen *gen;
	struct weir_pipeline *p;
	struct weir_stream *rows_stream;
	uint64_t rows;
	_Atomic bool done;
};

static int build(struct flows_job *j)
{
	static const struct weir_aggregate_ops agg = {
		.create = acc_create, .add = acc_add, .merge = acc_merge,
		.acc_size = sizeof(struct flow_acc) };
	struct weir_window_spec win = {
		.name = "flows", .kind = WEIR_WINDOW_TUMBLING,
		.size_ms = (int64_t)j->o->window_ms, .agg = &agg,
		.output = to_row, .out_size = sizeof(struct flow_row) };
	struct weir_file_sink sink = {
		.path = j->o->out, .header = FLOWS_CSV_HEADER,
		.format = format_row, .arg = &j->rows };
	struct weir_stream *src, *keyed;
	int err;

	if (j->pcap)
		err = weir_pcap_source_add(j->p, j->pcap, &src);
	else
		err = weir_flowgen_add(j->p, j->gen, &src);
	if (!err)
		err = weir_watermarks(j->p, src, (int64_t)j->o->max_delay_ms, 0);
	if (!err)
		err = weir_key_by(j->p, src, key_of, sizeof(struct weir_flow_key),
				  NULL, &keyed);
	if (!err)
		err = weir_window(j->p, keyed, &win, &j->rows_stream, NULL);
	if (!err)
		err = weir_sink_file(j->p, j->rows_stream, &sink);
	return err;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Progress thread (stderr is a terminal): packets/s and % of the file. */
static void *progress(void *arg)
{
	struct flows_job *j = arg;
	uint64_t last = 0, pkts, off, size;
	double t0 = now_s(), tl = t0;

	while (!atomic_load(&j->done)) {
		struct weir_checkpoint_stats ck;
		char ckbuf[32] = "none";
		struct timespec nap = { 0, 100 * 1000 * 1000 };
		nanosleep(&nap, NULL);
		double t = now_s();
		if (t - tl < 1.0)
			continue;
		weir_pipeline_checkpoint_stats(j->p, &ck);
		if (ck.last_id)
			snprintf(ckbuf, sizeof(ckbuf), "%llu",
				 (unsigned long long)ck.last_id);
		if (j->pcap) {
			weir_pcap_source_progress(j->pcap, &off, &size, &pkts);
			fprintf(stderr, "\rweir flows: %.2f Mpps, %.1f%% of the "
				"file, checkpoint %s   ", (pkts - last) /
				(t - tl) / 1e6, size ? 100.0 * off / size : 100.0,
				ckbuf);
		} else {
			pkts = weir_flowgen_progress(j->gen);
			fprintf(stderr, "\rweir flows: %.2f Mpps, %llu packets, "
				"checkpoint %s   ", (pkts - last) / (t - tl) / 1e6,
				(unsigned long long)pkts, ckbuf);
		}
		last = pkts;
		tl = t;
	}
	fputs("\r\033[K", stderr);
	return NULL;
}

static void summary(struct flows_job *j, int err, double elapsed)
{
	struct weir_flow_counters c;
	struct weir_checkpoint_stats ck;
	uint64_t late = j->rows_stream ?
		weir_window_late_records(j->rows_stream) : 0;

	if (j->pcap)
		weir_pcap_source_counters(j->pcap, &c);
	else
		weir_flowgen_counters(j->gen, &c);
	weir_pipeline_checkpoint_stats(j->p, &ck);
	fprintf(stderr, "weir flows: input=%s packets=%llu ip=%llu "
		"malformed=%llu non_ip=%llu unsupported=%llu truncated=%llu "
		"late=%llu rows=%llu checkpoints=%llu checkpoint_failures=%llu "
		"restored_from=%llu checkpoint_pause_us=%.1f/%.1f/%.1f "
		"cores=%u "
		"elapsed=%.3f "
		"mpps=%.3f status=%s out=%s\n", j->pcap ? "pcap" : "gen",
		(unsigned long long)c.packets, (unsigned long long)c.ip,
		(unsigned long long)c.malformed, (unsigned long long)c.non_ip,
		(unsigned long long)c.unsupported,
		(unsigned long long)c.truncated, (unsigned long long)late,
		(unsigned long long)j->rows, (unsigned long long)ck.completed,
		(unsigned long long)ck.failed,
		(unsigned long long)ck.restored_id, ck.pause_p50_ns / 1e3,
		ck.pause_p99_ns / 1e3, ck.pause_max_ns / 1e3,
		j->o->cores, elapsed,
		elapsed > 0 ? c.packets / elapsed / 1e6 : 0.0,
		err ? "failed" : "ok", j->o->out);
}

/* What a checkpoint must share with this run to be resumed by it: the
 * options that change what the state and the input positions mean. */
struct flows_params {
	uint64_t window_ms, max_delay_ms, seed, flows, packets, zipf_milli;
	uint64_t ipv6_milli;
	char input[256];
};

static int checkpointing(struct flows_job *j)
{
	const struct flows_opts *o = j->o;
	struct weir_checkpoint_config cc;
	struct flows_params fp = {
		o->window_ms, o->max_delay_ms, o->gen_cfg.seed, o->gen_cfg.flows,
		o->gen_cfg.packets, (uint64_t)(o->gen_cfg.zipf_s * 1000),
		(uint64_t)(o->gen_cfg.ipv6_fraction * 1000), { 0 } };

	if (o->ckpt_dir == NULL)
		return 0;
	snprintf(fp.input, sizeof(fp.input), "%s", o->pcap ? o->pcap : "gen");
	weir_checkpoint_config_init(&cc, o->ckpt_dir);
	cc.interval_ms = (uint32_t)o->ckpt_interval_ms;
	cc.params = &fp;
	cc.params_len = sizeof(fp);
	return weir_pipeline_checkpoint(j->p, &cc);
}

static int run(struct flows_job *j)
{
	struct weir_pipeline_config cfg;
	pthread_t th;
	bool tty = isatty(STDERR_FILENO);
	double t0;
	int err;

	weir_pipeline_config_init(&cfg);
	if (j->o->cores)
		cfg.runtime.cores = j->o->cores;
	cfg.runtime.handle_signals = true;
	cfg.runtime.idle = j->o->idle_sleep ? WEIR_IDLE_SLEEP : WEIR_IDLE_BUSY_POLL;
	err = weir_pipeline_create(&cfg, &j->p);
	if (err)
		return cli_usage_error("flows: %s", weir_last_error());
	j->o->cores = cfg.runtime.cores;
	err = build(j);
	if (err == 0)
		err = checkpointing(j);
	if (err) {
		fprintf(stderr, "weir: flows: %s\n", weir_last_error());
		return 1;
	}
	t0 = now_s();
	if (tty && pthread_create(&th, NULL, progress, j) != 0)
		tty = false;
	err = weir_pipeline_run(j->p);
	atomic_store(&j->done, true);
	if (tty)
		pthread_join(th, NULL);
	if (err)
		fprintf(stderr, "weir: flows: %s\n", weir_last_error());
	summary(j, err, now_s() - t0);
	if (err)
		return j->pcap && weir_pcap_source_error(j->pcap) ? EXIT_USAGE : 1;
	return 0;
}

/* Open the input now: a refusal happens before any output exists. */
static int open_input(struct flows_job *j)
{
	struct flows_opts *o = j->o;
	int err;

	if (o->pcap) {
		struct weir_pcap_source_config pc = {
			.rate_pps = o->rate, .duration_ms = o->duration_s * 1000 };
		err = weir_pcap_source_open(o->pcap, &pc, &j->pcap);
	} else {
		o->gen_cfg.rate_pps = o->rate;
		if (o->rate)
			o->gen_cfg.event_pps = o->rate;
		o->gen_cfg.duration_ms = o->duration_s * 1000;
		err = weir_flowgen_create(&o->gen_cfg, &j->gen);
	}
	if (err)
		return cli_usage_error("flows: %s", weir_last_error());
	return 0;
}

int cmd_flows(int argc, char **argv)
{
	struct flows_opts o;
	struct flows_job j;
	int rc = parse_opts(argc, argv, &o);

	if (rc)
		return rc < 0 ? 0 : rc;
	memset(&j, 0, sizeof(j));
	j.o = &o;
	rc = open_input(&j);
	if (rc == 0)
		rc = run(&j);
	weir_pipeline_destroy(j.p);
	weir_pcap_source_close(j.pcap);
	weir_flowgen_destroy(j.gen);
	return rc;
}
