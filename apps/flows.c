/*
 * flows.c — `weir flows`: per-flow packet and byte counts in event-time
 * tumbling windows, from a capture file, DPDK ports or the built-in
 * generator, written as CSV through the file sink.
 *
 *   source (pcap file on core 0 | DPDK: one RX queue per core on every
 *           port, arrival time | generator on every core)
 *     -> watermarks (bounded out-of-orderness --max-delay)
 *     -> key_by 5-tuple (40-byte weir_flow_key: key group -> core)
 *     -> tumbling window --window, aggregate {packets, bytes}
 *     -> file sink "<out>.inprogress", renamed to <out> at the end.
 *
 * Everything that can be refused (options, the input file) is checked
 * before the pipeline exists, so a refused run leaves no output at all; a
 * run that fails later leaves only the ".inprogress" file.
 *
 * DPDK is live: SIGINT/SIGTERM end its input (not the runtime), so every
 * window is still written; a second signal exits at once.  A file or the
 * generator is not: a signal stops the run where it is, the output stays
 * "<out>.inprogress" and the exit status is 3 (status=stopped), so a
 * script never takes a stopped run for a finished one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "apps/cli.h"
#include "weir/checkpoint.h"
#include "weir/flows.h"
#include "weir/metrics.h"
#include "weir/window.h"

#define FLOWS_CSV_HEADER \
	"window_start_ms,window_end_ms,proto,src,sport,dst,dport,packets,bytes\n"

struct flows_opts {
	const char *pcap, *out, *ckpt_dir, *dpdk, *metrics_json;
	uint64_t metrics_port;
	bool gen, idle_sleep;
	/* --checkpoint-*, --changelog */
	uint64_t ckpt_interval_ms, ckpt_timeout_ms, ckpt_pause_ms, ckpt_retain;
	bool ckpt_incremental, changelog_on;
	unsigned cores;
	uint64_t window_ms, max_delay_ms, rate, duration_s;
	uint64_t idle_close_ms; /* --idle-close: streams only, 0 off */
	uint64_t packets; /* --packets as given, 0 if not */
	uint64_t combine; /* --combine: combiner entries per core */
	uint64_t prefault_mb; /* --state-prefault: MiB mapped per core */
	uint64_t state_max_mb; /* --state-max: MiB per core, 0: default */
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
	"usage: weir flows [--pcap FILE|- | --dpdk \"EAL ARGS\" | --gen] [--cores N]\n"
	"                  [--window MS] [--out FILE] [--max-delay MS] [--rate PPS]\n"
	"                  [--duration S] [--idle busy|sleep] [--combine N]\n"
	"                  [--state-max MB] [--state-prefault MB] [--idle-close MS]\n"
	"                  [--flows N]\n"
	"                  [--packets N] [--seed S] [--zipf S] [--ipv6 F]\n"
	"\n"
	"Per-flow packet and byte counts (IP-layer bytes) in event-time\n"
	"tumbling windows, keyed by the unidirectional 5-tuple, written as CSV:\n"
	"  " FLOWS_CSV_HEADER
	"\n"
	"  --pcap FILE      read a pcap or pcapng capture (timestamps = event time)\n"
	"                   - (standard input: a pipe) or a FIFO is read as a stream\n"
	"                   by one core: live, not replayable; it ends at its\n"
	"                   end or SIGINT/SIGTERM, every window written:\n"
	"                   tcpdump -U -w - | weir flows --pcap -\n"
	"  --dpdk \"ARGS\"    every DPDK port the EAL finds with ARGS (one string,\n"
	"                   split like a shell), one RX queue per core; event\n"
	"                   time = arrival time; live: not replayable, device\n"
	"                   drops counted (drops=N); ends with --packets,\n"
	"                   --duration or SIGINT/SIGTERM, every window written.\n"
	"                   e.g. --dpdk \"--no-huge --no-pci -m 256 --vdev=\n"
	"                   net_pcap0,rx_pcap=FILE,infinite_rx=0\" --packets N\n"
	"  --gen            the built-in traffic generator (the default input)\n"
	"  --cores N        worker cores (default: every usable CPU)\n"
	"  --window MS      window size in ms, > 0 (default 1000)\n"
	"  --out FILE       output CSV (default flows.csv; FILE.inprogress while\n"
	"                   running, rows in it within ~1 s of their window's\n"
	"                   close; renamed when every window is written)\n"
	"  --max-delay MS   out-of-orderness the watermark allows (default 1000);\n"
	"                   packets later than that are counted as late=N\n"
	"  --rate PPS       pace the input to PPS packets/s (default: full speed;\n"
	"                   not with --dpdk)\n"
	"  --duration S     end the input after S seconds (default: none)\n"
	"  --idle-close MS  a stream (--pcap -, a FIFO): once no packet came\n"
	"                   for MS, its time runs on with ours from the last\n"
	"                   timestamp, so a quiet capture's windows close; a\n"
	"                   packet stamped below that later is late (default:\n"
	"                   windows wait for the next packet or the end)\n"
	"  --idle POLICY    busy (spin) or sleep (eventfd) when idle (default busy)\n"
	"  --combine N      per core, a cache of N flows' partial counts before\n"
	"                   the shuffle (hot flows stay off the rings; exact\n"
	"                   results either way); 0 turns it off (default 4096)\n"
	"  --state-max MB   each core's state memory cap, 16..65536 (default\n"
	"                   1024): a core whose windows outgrow it fails the\n"
	"                   job (exit 1; with --checkpoint-dir, rerun with a\n"
	"                   larger cap or more cores to resume); reserved, not\n"
	"                   taken, but its page tables cost ~0.75 MB per GB\n"
	"                   of cap per core with checkpoints (0.06 without)\n"
	"  --state-prefault MB  map MB of each core's state memory before the\n"
	"                   first packet (default 0): the first write to fresh\n"
	"                   memory faults in and zeroes a 2 MiB huge page\n"
	"                   (0.25-4.6 ms on a VM), inside a table's growth\n"
	"  --flows N        generator: distinct flows (default 100000)\n"
	"  --packets N      generator: packets (default 4000000); --dpdk: stop\n"
	"                   after N frames (default: no limit)\n"
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
	"  --checkpoint-timeout MS  a checkpoint not committed by then is\n"
	"                   aborted, and the next one goes on (default 60000)\n"
	"  --checkpoint-min-pause MS  at least this long from one checkpoint's\n"
	"                   end to the next's start (default 0)\n"
	"  --checkpoint-retain N  committed checkpoints kept (default 3); a\n"
	"                   file is deleted once no kept one refers to it\n"
	"  --checkpoint-incremental on|off  write only the pages changed\n"
	"                   since the last checkpoint (default on; a full\n"
	"                   one every 8)\n"
	"  --changelog on|off  checkpoints between page snapshots write only\n"
	"                   the state bytes changed since the last one\n"
	"                   (default off: this job rewrites its counters every\n"
	"                   tick, so its log outgrows the pages; on pays for\n"
	"                   large state updated sparsely; docs/architecture.md)\n"
	"\n"
	"  --metrics-json FILE  a JSON line of metrics every second to FILE:\n"
	"                   per core records_in (into the window) and state_keys;\n"
	"                   on core 0 the input's records_out (packets read so\n"
	"                   far) and malformed, --dpdk's drops\n"
	"                   (imissed + rx_nombuf), job totals, and checkpoints,\n"
	"                   checkpoint_duration_ns, checkpoint_bytes (the last)\n"
	"  --metrics-port PORT  the same as Prometheus text on\n"
	"                   http://127.0.0.1:PORT/metrics while the job runs\n"
	"\n"
	"Exit status: 0 done, 1 the job failed, 2 bad options or input, 3\n"
	"stopped by SIGINT/SIGTERM before the input ended (the output stays\n"
	"FILE.inprogress, every row so far; with --checkpoint-dir the same\n"
	"command resumes).\n";

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
		o->packets = o->gen_cfg.packets;
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

#define CKPT_MS_MAX (3600u * 1000)

static int parse_ckpt(struct flows_opts *o, const char *opt, const char *val,
		      bool *known)
{
	bool ok = true;

	*known = true;
	if (strcmp(opt, "--checkpoint-dir") == 0)
		o->ckpt_dir = val;
	else if (strcmp(opt, "--checkpoint-interval") == 0)
		ok = cli_parse_u64(opt, val, 1, CKPT_MS_MAX, &o->ckpt_interval_ms);
	else if (strcmp(opt, "--checkpoint-timeout") == 0)
		ok = cli_parse_u64(opt, val, 1, CKPT_MS_MAX, &o->ckpt_timeout_ms);
	else if (strcmp(opt, "--checkpoint-min-pause") == 0)
		ok = cli_parse_u64(opt, val, 0, CKPT_MS_MAX, &o->ckpt_pause_ms);
	else if (strcmp(opt, "--checkpoint-retain") == 0)
		ok = cli_parse_u64(opt, val, 1, 1000, &o->ckpt_retain);
	else if (strcmp(opt, "--checkpoint-incremental") == 0)
		ok = cli_parse_on_off(opt, val, &o->ckpt_incremental);
	else if (strcmp(opt, "--changelog") == 0)
		ok = cli_parse_on_off(opt, val, &o->changelog_on);
	else
		*known = false;
	return ok ? 0 : EXIT_USAGE;
}

static int parse_one(struct flows_opts *o, const char *opt, const char *val)
{
	uint64_t v;
	bool known;
	int rc;

	if (val == NULL)
		return cli_usage_error("flows: %s needs a value (try `weir flows "
				       "--help`)", opt);
	rc = parse_gen(o, opt, val, &known);
	if (known)
		return rc;
	rc = parse_ckpt(o, opt, val, &known);
	if (known)
		return rc;
	if (strcmp(opt, "--metrics-json") == 0) {
		o->metrics_json = val;
	} else if (strcmp(opt, "--metrics-port") == 0) {
		if (!cli_parse_u64(opt, val, 1, 65535, &o->metrics_port))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--pcap") == 0) {
		o->pcap = val;
	} else if (strcmp(opt, "--dpdk") == 0) {
		o->dpdk = val;
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
	} else if (strcmp(opt, "--combine") == 0) {
		if (!cli_parse_u64(opt, val, 0, 1u << 24, &o->combine))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--state-max") == 0) {
		if (!cli_parse_u64(opt, val, 16, 1u << 16, &o->state_max_mb))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--state-prefault") == 0) {
		if (!cli_parse_u64(opt, val, 0, 1u << 20, &o->prefault_mb))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--duration") == 0) {
		if (!cli_parse_u64(opt, val, 1, 86400ull * 365, &o->duration_s))
			return EXIT_USAGE;
	} else if (strcmp(opt, "--idle-close") == 0) {
		if (!cli_parse_u64(opt, val, 1, CKPT_MS_MAX, &o->idle_close_ms))
			return EXIT_USAGE;
	} else {
		return cli_usage_error("flows: unknown option '%s' (try `weir "
				       "flows --help`)", opt);
	}
	return 0;
}

static const char idle_close_only[] = "flows: --idle-close applies to a "
	"capture read as a stream (--pcap - from a pipe, or a FIFO)";

/* Two names of one existing file. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int check_opts(const struct flows_opts *o)
{
	if ((o->gen + !!o->pcap + !!o->dpdk) > 1)
		return cli_usage_error("flows: --pcap, --dpdk and --gen exclude "
				       "each other");
	if (o->idle_close_ms && !o->pcap)
		return cli_usage_error("%s", idle_close_only);
	if (o->dpdk && o->rate)
		return cli_usage_error("flows: --rate does not apply to --dpdk "
				       "(a live source is not paced)");
	if (o->dpdk && !weir_dpdk_available())
		return cli_usage_error("flows: --dpdk: this weir was built "
				       "without DPDK (-Ddpdk=disabled)");
	if (*o->out == '\0')
		return cli_usage_error("flows: --out needs a file name");
	if (!cli_check_out_file("flows", "--out", o->out) ||
	    (o->ckpt_dir &&
	     !cli_check_out_dir("flows", "--checkpoint-dir", o->ckpt_dir)))
		return EXIT_USAGE;
	if (o->pcap && same_file(o->pcap, o->out))
		return cli_usage_error("flows: --out %s is the input capture: "
				       "the rows would replace it", o->out);
	if (o->pcap && o->metrics_json && same_file(o->pcap, o->metrics_json))
		return cli_usage_error("flows: --metrics-json %s is the input "
				       "capture: it would be overwritten",
				       o->metrics_json);
	return cli_check_cores("flows", o->cores) ? 0 : EXIT_USAGE;
}

/* 0 to run, -1 after --help, or EXIT_USAGE. */
static int parse_opts(int argc, char **argv, struct flows_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->out = "flows.csv";
	o->window_ms = 1000;
	o->max_delay_ms = 1000;
	o->ckpt_interval_ms = WEIR_CHECKPOINT_INTERVAL_DEFAULT;
	o->ckpt_timeout_ms = WEIR_CHECKPOINT_TIMEOUT_DEFAULT;
	o->ckpt_retain = WEIR_CHECKPOINT_RETAIN_DEFAULT;
	o->ckpt_incremental = true;
	o->combine = WEIR_COMBINE_ENTRIES_DEFAULT;
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
		int rc = parse_one(o, a, i + 1 < argc ? argv[i + 1] : NULL);
		if (rc)
			return rc;
		i++;
	}
	return check_opts(o);
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

/* records_in per core is the engine's (the window counts what it takes,
 * a combiner's partials by their records). */
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

/* The longest row: 2 x i64, u8, 2 x (IPv6 text + u16), 2 x u64, commas. */
#define ROW_TEXT_MAX (2 * 21 + 3 + 2 * (46 + 5) + 2 * 20 + 9)

static char *put_u64(char *t, uint64_t v, char sep)
{
	t += weir_u64_text(t, v);
	*t++ = sep;
	return t;
}

static char *put_addr(char *t, const uint8_t *a, uint8_t v, uint16_t port)
{
	t += weir_flow_addr_format(a, v, t, 46);
	*t++ = ',';
	return put_u64(t, port, ',');
}

/* What format_row keeps between rows (core 0's: the file sink's core). */
struct row_fmt {
	uint64_t rows;
	int64_t start, end;   /* the window of prefix[] */
	uint32_t plen;
	char prefix[48];      /* "start,end," */
};

/* Runs on core 0 only (the file sink's core).  Rows of one window come in
 * runs, so "start,end," is formatted once per run. */
static int format_row(const void *rec, char *buf, size_t cap, void *arg)
{
	const struct flow_row *r = rec;
	struct row_fmt *f = arg;
	char *t = buf;

	if (cap < ROW_TEXT_MAX)
		return -ENOSPC;
	if (r->start_ms != f->start || r->end_ms != f->end || f->plen == 0) {
		char *q = f->prefix;
		q += weir_i64_text(q, r->start_ms);
		*q++ = ',';
		q += weir_i64_text(q, r->end_ms);
		*q++ = ',';
		f->plen = (uint32_t)(q - f->prefix);
		f->start = r->start_ms;
		f->end = r->end_ms;
	}
	memcpy(t, f->prefix, sizeof(f->prefix));
	t += f->plen;
	t = put_u64(t, r->key.proto, ',');
	t = put_addr(t, r->key.src, r->key.ip_version, r->key.sport);
	t = put_addr(t, r->key.dst, r->key.ip_version, r->key.dport);
	t = put_u64(t, r->packets, ',');
	t = put_u64(t, r->bytes, '\n');
	f->rows++;
	return (int)(t - buf);
}

struct flows_job {
	struct flows_opts *o;
	struct weir_pcap_source *pcap;
	struct weir_flowgen *gen;
	struct weir_dpdk_source *dpdk;
	struct weir_pipeline *p;
	struct weir_stream *rows_stream;
	struct row_fmt fmt; /* rows written: core 0 */
	_Atomic bool done;
	struct weir_metrics *m;     /* --metrics-*: else NULL */
	pthread_t feeder;
	bool feeding;
};

/* ---- metrics (--metrics-json, --metrics-port) ---- */

/* The input's totals go on core 0: the sources count per core inside and
 * publish only totals.  The feeder thread (then the main thread, after the
 * run) is their only writer.  While running, packets (and malformed
 * frames) are read from the sources' progress values, relaxed atomics each
 * core stores once per burst, and DPDK's drops from the devices
 * (rte_eth_stats_get, as testpmd reads them beside its forwarding
 * lcores), so a live appliance's metrics move. */
static void publish_input(struct flows_job *j, bool final)
{
	struct weir_flow_counters c = { 0 };
	struct weir_dpdk_stats st;
	uint64_t off, size;

	if (final && j->pcap)
		weir_pcap_source_counters(j->pcap, &c);
	else if (final && j->dpdk)
		weir_dpdk_source_counters(j->dpdk, &c);
	else if (final)
		weir_flowgen_counters(j->gen, &c);
	else if (j->pcap)
		weir_pcap_source_progress(j->pcap, &off, &size, &c.packets);
	else if (j->dpdk)
		c.packets = weir_dpdk_source_progress(j->dpdk);
	else
		c.packets = weir_flowgen_progress(j->gen);
	if (!final)
		c.malformed = j->pcap ? weir_pcap_source_malformed(j->pcap) :
			      j->dpdk ? weir_dpdk_source_malformed(j->dpdk) : 0;
	weir_metrics_set_local(j->m, 0, WEIR_METRIC_RECORDS_OUT, c.packets);
	weir_metrics_set_local(j->m, 0, WEIR_METRIC_MALFORMED, c.malformed);
	if (j->dpdk) {
		weir_dpdk_source_stats(j->dpdk, &st);
		weir_metrics_set_local(j->m, 0, WEIR_METRIC_DROPS,
				       st.imissed + st.rx_nombuf);
	}
}

static void *feeder(void *arg)
{
	struct flows_job *j = arg;
	struct timespec nap = { 0, 100 * 1000 * 1000 };

	while (!atomic_load(&j->done)) {
		nanosleep(&nap, NULL);
		publish_input(j, false);
	}
	return NULL;
}

/* Before any output: a port in use or an unwritable file is refused. */
static int metrics_open(struct flows_job *j)
{
	struct flows_opts *o = j->o;
	struct weir_metrics_config mc;

	if (o->metrics_json == NULL && o->metrics_port == 0)
		return 0;
	if (o->cores == 0) {
		struct weir_runtime_config rc;

		weir_runtime_config_init(&rc);
		o->cores = rc.cores;
	}
	weir_metrics_config_init(&mc);
	mc.cores = o->cores;
	mc.json_path = o->metrics_json;
	mc.http = o->metrics_port != 0;
	mc.http_port = (uint16_t)o->metrics_port;
	if (weir_metrics_create(&mc, &j->m) != 0)
		return cli_usage_error("flows: %s", weir_last_error());
	return 0;
}

static int metrics_start(struct flows_job *j)
{
	if (j->m == NULL)
		return 0;
	weir_pipeline_metrics(j->p, j->m);
	if (weir_metrics_start(j->m) != 0)
		return -1;
	j->feeding = pthread_create(&j->feeder, NULL, feeder, j) == 0;
	return 0;
}

/* After the run (j->done set): exact input totals, the last JSON line. */
static void metrics_finish(struct flows_job *j)
{
	if (j->m == NULL)
		return;
	if (j->feeding)
		pthread_join(j->feeder, NULL);
	j->feeding = false;
	publish_input(j, true);
	weir_metrics_stop(j->m);
}

static int build(struct flows_job *j)
{
	static const struct weir_aggregate_ops agg = {
		.create = acc_create, .add = acc_add, .merge = acc_merge,
		.acc_size = sizeof(struct flow_acc) };
	struct weir_window_spec win = {
		.name = "flows", .kind = WEIR_WINDOW_TUMBLING,
		.size_ms = (int64_t)j->o->window_ms, .agg = &agg,
		.output = to_row, .out_size = sizeof(struct flow_row),
		.arg = NULL };
	struct weir_file_sink sink = {
		.path = j->o->out, .header = FLOWS_CSV_HEADER,
		.format = format_row, .arg = &j->fmt };
	struct weir_stream *src, *keyed;
	int err;

	if (j->pcap)
		err = weir_pcap_source_add(j->p, j->pcap, &src);
	else if (j->dpdk)
		err = weir_dpdk_source_add(j->p, j->dpdk, &src);
	else
		err = weir_flowgen_add(j->p, j->gen, &src);
	/* No idle timeout: a DPDK core without an RX queue (or without
	 * traffic) holds nothing back, its watermark follows the clock
	 * (weir_source_ops.clock). */
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
		if (j->dpdk) {
			pkts = weir_dpdk_source_progress(j->dpdk);
			fprintf(stderr, "\rweir flows: %.2f Mpps, %llu packets "
				"received, checkpoint %s   ", (pkts - last) /
				(t - tl) / 1e6, (unsigned long long)pkts, ckbuf);
		} else if (j->pcap && !weir_pcap_source_replayable(j->pcap)) {
			weir_pcap_source_progress(j->pcap, &off, &size, &pkts);
			fprintf(stderr, "\rweir flows: %.2f Mpps, %llu packets, "
				"%.1f MB read, checkpoint %s   ", (pkts - last) /
				(t - tl) / 1e6, (unsigned long long)pkts,
				off / 1e6, ckbuf);
		} else if (j->pcap) {
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

/* The DPDK part of the summary: drops = imissed + rx_nombuf. */
static void dpdk_summary(struct weir_dpdk_source *d,
			 struct weir_flow_counters *c, char *buf, size_t cap)
{
	struct weir_dpdk_stats st;

	weir_dpdk_source_counters(d, c);
	weir_dpdk_source_stats(d, &st);
	snprintf(buf, cap, "ports=%u queues=%u rss_ports=%u lcores=%u "
		 "drops=%llu imissed=%llu rx_nombuf=%llu ierrors=%llu ",
		 st.ports, st.queues, st.rss_ports, st.lcores_registered,
		 (unsigned long long)(st.imissed + st.rx_nombuf),
		 (unsigned long long)st.imissed,
		 (unsigned long long)st.rx_nombuf,
		 (unsigned long long)st.ierrors);
}

static void summary(struct flows_job *j, int err, bool stopped,
		    double elapsed)
{
	struct weir_flow_counters c;
	struct weir_checkpoint_stats ck;
	uint64_t late = j->rows_stream ?
		weir_window_late_records(j->rows_stream) : 0;

	char live[256] = "";

	if (j->pcap)
		weir_pcap_source_counters(j->pcap, &c);
	else if (j->dpdk)
		dpdk_summary(j->dpdk, &c, live, sizeof(live));
	else
		weir_flowgen_counters(j->gen, &c);
	weir_pipeline_checkpoint_stats(j->p, &ck);
	fprintf(stderr, "weir flows: input=%s packets=%llu ip=%llu "
		"malformed=%llu non_ip=%llu unsupported=%llu truncated=%llu "
		"%slate=%llu rows=%llu checkpoints=%llu changelog_checkpoints=%llu "
		"checkpoint_failures=%llu "
		"restored_from=%llu restore_ms=%.1f "
		"checkpoint_pause_us=%.1f/%.1f/%.1f "
		"checkpoint_open_us=%.1f/%.1f/%.1f "
		"checkpoint_align_us=%.1f/%.1f/%.1f "
		"checkpoint_step_us=%.1f/%.1f/%.1f cores=%u "
		"elapsed=%.3f "
		"mpps=%.3f status=%s out=%s\n",
		j->pcap ? "pcap" : j->dpdk ? "dpdk" : "gen",
		(unsigned long long)c.packets, (unsigned long long)c.ip,
		(unsigned long long)c.malformed, (unsigned long long)c.non_ip,
		(unsigned long long)c.unsupported,
		(unsigned long long)c.truncated, live, (unsigned long long)late,
		(unsigned long long)j->fmt.rows, (unsigned long long)ck.completed,
		(unsigned long long)ck.changelog, (unsigned long long)ck.failed,
		/* A restore that failed is no start: 0, as without one. */
		(unsigned long long)(ck.restore_us ? ck.restored_id : 0),
		ck.restore_us / 1e3,
		ck.pause_p50_ns / 1e3,
		ck.pause_p99_ns / 1e3, ck.pause_max_ns / 1e3,
		ck.open_p50_ns / 1e3, ck.open_p99_ns / 1e3,
		ck.open_max_ns / 1e3, ck.align_p50_ns / 1e3,
		ck.align_p99_ns / 1e3, ck.align_max_ns / 1e3,
		ck.step_p50_ns / 1e3, ck.step_p99_ns / 1e3,
		ck.step_max_ns / 1e3, j->o->cores, elapsed,
		elapsed > 0 ? c.packets / elapsed / 1e6 : 0.0,
		err ? "failed" : stopped ? "stopped" : "ok", j->o->out);
}

/* The sink renames "<out>.inprogress" to <out> when the input ended: a
 * stop that raced with the end (every record written) is no stop. */
static bool output_in_progress(const char *out)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s.inprogress", out);
	return access(path, F_OK) == 0;
}

/* What a checkpoint must share with this run to be resumed by it: the
 * options that change what the state and the input positions mean.  The
 * generator's event clock is one of them: --rate sets it (open_input), so
 * a generator job resumed at another --rate stamped the rest of its packets
 * on another clock, and its rows matched neither run (a pcap's --rate only
 * paces: its event times are the file's). */
struct flows_params {
	uint64_t window_ms, max_delay_ms, seed, flows, packets, zipf_milli;
	uint64_t ipv6_milli, event_pps;
	uint64_t input_size, input_head;	/* a capture's identity */
	char input[256];
};

/* A capture's size and the XXH3 of its first 64 KiB: a checkpoint of
 * another file at the same path (a capture written again) is refused as
 * another job's, not resumed at its offsets in different bytes. */
static void capture_identity(const char *path, struct flows_params *fp)
{
	size_t cap = 64u << 10;
	uint8_t *buf = malloc(cap);
	int fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) /* a file there */
					: open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	ssize_t n;

	if (buf != NULL && fd >= 0 && fstat(fd, &st) == 0 &&
	    (n = pread(fd, buf, cap, 0)) > 0) {
		fp->input_size = (uint64_t)st.st_size;
		fp->input_head = XXH3_64bits(buf, (size_t)n);
	}
	if (fd >= 0)
		close(fd);
	free(buf);
}

static int checkpointing(struct flows_job *j)
{
	const struct flows_opts *o = j->o;
	struct weir_checkpoint_config cc;
	struct flows_params fp = {
		o->window_ms, o->max_delay_ms, o->gen_cfg.seed, o->gen_cfg.flows,
		o->gen_cfg.packets, (uint64_t)(o->gen_cfg.zipf_s * 1000),
		(uint64_t)(o->gen_cfg.ipv6_fraction * 1000),
		o->gen_cfg.event_pps, 0, 0, { 0 } };

	if (o->ckpt_dir == NULL)
		return 0;
	snprintf(fp.input, sizeof(fp.input), "%s",
		 o->pcap ? o->pcap : o->dpdk ? "dpdk" : "gen");
	if (j->pcap && weir_pcap_source_replayable(j->pcap))
		capture_identity(o->pcap, &fp);
	weir_checkpoint_config_init(&cc, o->ckpt_dir);
	cc.interval_ms = (uint32_t)o->ckpt_interval_ms;
	cc.timeout_ms = (uint32_t)o->ckpt_timeout_ms;
	cc.min_pause_ms = (uint32_t)o->ckpt_pause_ms;
	cc.retain = (uint32_t)o->ckpt_retain;
	cc.incremental = o->ckpt_incremental;
	/* Off unless asked for: this job rewrites its window counters every
	 * tick, and a changelog of that is larger than the pages it replaces
	 * (104 MB against 67 MB a second), slower, and its I/O preempts the
	 * workers (p99 5-7 ms against 26-57 us at 4 M/s: bench/RESULTS.md). */
	cc.changelog = o->changelog_on;
	cc.params = &fp;
	cc.params_len = sizeof(fp);
	return weir_pipeline_checkpoint(j->p, &cc);
}

/* ---- signals for a live source: end the input, not the runtime ---- */

/* The live input (DPDK, or a capture read as a stream) whose input a
 * signal ends; NULL outside run(). */
static _Atomic(struct flows_job *) live_job;
static _Atomic int live_signals;

static bool live_input(const struct flows_job *j)
{
	return j->dpdk || (j->pcap && !weir_pcap_source_replayable(j->pcap));
}

static void on_live_signal(int sig)
{
	struct flows_job *j = atomic_load(&live_job);

	if (atomic_fetch_add(&live_signals, 1) > 0 || j == NULL)
		_exit(128 + sig); /* second signal: leave at once */
	if (j->dpdk)
		weir_dpdk_source_stop(j->dpdk);
	else
		weir_pcap_source_stop(j->pcap);
}

static void live_signals_take(struct flows_job *j, struct sigaction old[2])
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_live_signal;
	sigemptyset(&sa.sa_mask);
	atomic_store(&live_job, j);
	sigaction(SIGINT, &sa, &old[0]);
	sigaction(SIGTERM, &sa, &old[1]);
}

static void live_signals_give_back(const struct sigaction old[2])
{
	sigaction(SIGINT, &old[0], NULL);
	sigaction(SIGTERM, &old[1], NULL);
	atomic_store(&live_job, NULL);
}

/* The run's error; a core out of state memory (-ENOMEM naming the cap:
 * the arena's or a state's) also gets the option that raises it, on the
 * same line.  Another -ENOMEM (the system's) does not. */
static void run_error(int err, size_t cap)
{
	if (err == -ENOMEM && strstr(weir_last_error(), "cap") != NULL)
		fprintf(stderr, "weir: flows: %s; --state-max MB raises it "
			"(now %zu MiB per core)\n", weir_last_error(),
			cap >> 20);
	else
		fprintf(stderr, "weir: flows: %s\n", weir_last_error());
}

static int run(struct flows_job *j)
{
	struct sigaction old_sa[2];
	struct weir_pipeline_config cfg;
	pthread_t th;
	bool tty = isatty(STDERR_FILENO);
	double t0;
	int err;

	weir_pipeline_config_init(&cfg);
	if (j->o->cores)
		cfg.runtime.cores = j->o->cores;
	cfg.runtime.handle_signals = !live_input(j);
	cfg.runtime.idle = j->o->idle_sleep ? WEIR_IDLE_SLEEP : WEIR_IDLE_BUSY_POLL;
	cfg.combine_entries = (uint32_t)j->o->combine;
	cfg.state_prefault_bytes = (size_t)j->o->prefault_mb << 20;
	if (j->o->state_max_mb)
		cfg.state_bytes_max = (size_t)j->o->state_max_mb << 20;
	err = weir_pipeline_create(&cfg, &j->p);
	if (err)
		return cli_usage_error("flows: %s", weir_last_error());
	j->o->cores = cfg.runtime.cores;
	err = build(j);
	if (err == 0)
		err = checkpointing(j);
	if (err == 0)
		err = metrics_start(j);
	if (err) {
		fprintf(stderr, "weir: flows: %s\n", weir_last_error());
		return 1;
	}
	t0 = now_s();
	if (tty && pthread_create(&th, NULL, progress, j) != 0)
		tty = false;
	if (live_input(j))
		live_signals_take(j, old_sa);
	err = weir_pipeline_run(j->p);
	if (live_input(j))
		live_signals_give_back(old_sa);
	atomic_store(&j->done, true);
	if (tty)
		pthread_join(th, NULL);
	metrics_finish(j);
	if (err)
		run_error(err, cfg.state_bytes_max);
	bool stopped = err == 0 && weir_pipeline_stopped(j->p) &&
		       output_in_progress(j->o->out);
	summary(j, err, stopped, now_s() - t0);
	if (err)
		return j->pcap && weir_pcap_source_error(j->pcap) ? EXIT_USAGE : 1;
	return stopped ? EXIT_STOPPED : 0;
}

/* EAL and ports; the worker count must be known first (one RX queue per
 * core). */
static int open_dpdk(struct flows_opts *o, struct weir_dpdk_source **out)
{
	struct weir_dpdk_source_config dc = {
		.eal_args = o->dpdk, .packets = o->packets,
		.duration_ms = o->duration_s * 1000 };

	if (o->cores == 0) {
		struct weir_pipeline_config pc;
		weir_pipeline_config_init(&pc);
		o->cores = pc.runtime.cores;
	}
	dc.cores = o->cores;
	return weir_dpdk_source_open(&dc, out);
}

/* ---- a capture that shrinks while it is mapped ---- */

static const uint8_t *shrink_base;
static uint64_t shrink_len;
static char shrink_msg[512];
static size_t shrink_msg_len;
static atomic_flag shrink_said = ATOMIC_FLAG_INIT;

/* A read of a page the capture lost (another process truncated or rewrote
 * it: tcpdump -W reusing its oldest file) raises SIGBUS on a worker: one
 * line and exit 2 rather than a crash.  The output stays FILE.inprogress
 * and the checkpoints as they were (the capture's identity has changed, so
 * a rerun refuses them).  Any other SIGBUS gets the default action when
 * the access is retried. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	const uint8_t *a = si->si_addr;

	(void)uc;
	if (a >= shrink_base && a < shrink_base + shrink_len) {
		/* Both workers may fault at once: one line, from the first. */
		if (atomic_flag_test_and_set(&shrink_said))
			for (;;)
				pause(); /* until the first one's _exit */
		ssize_t w = write(STDERR_FILENO, shrink_msg, shrink_msg_len);
		(void)w;
		_exit(EXIT_USAGE);
	}
	signal(sig, SIG_DFL);
}

static void catch_shrink(const struct weir_pcap_source *s, const char *path)
{
	struct sigaction sa;
	int n;

	shrink_base = weir_pcap_source_mapping(s, &shrink_len);
	if (shrink_base == NULL)
		return;
	n = snprintf(shrink_msg, sizeof(shrink_msg), "weir: flows: %s: the "
		     "capture shrank while it was read (another process "
		     "truncated or rewrote it)\n", path);
	shrink_msg_len = n > 0 && (size_t)n < sizeof(shrink_msg) ?
		(size_t)n : sizeof(shrink_msg) - 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

/* Open the input now: a refusal happens before any output exists. */
static int open_input(struct flows_job *j)
{
	struct flows_opts *o = j->o;
	int err;

	if (o->pcap) {
		struct weir_pcap_source_config pc = {
			.rate_pps = o->rate, .duration_ms = o->duration_s * 1000,
			.idle_close_ms = o->idle_close_ms };
		err = weir_pcap_source_open(o->pcap, &pc, &j->pcap);
		if (err == 0)
			catch_shrink(j->pcap, o->pcap);
		if (err == 0 && o->idle_close_ms &&
		    weir_pcap_source_replayable(j->pcap))
			return cli_usage_error("%s", idle_close_only);
	} else if (o->dpdk) {
		err = open_dpdk(o, &j->dpdk);
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
		rc = metrics_open(&j);
	if (rc == 0)
		rc = run(&j);
	weir_pipeline_destroy(j.p);
	weir_metrics_destroy(j.m);
	weir_pcap_source_close(j.pcap);
	weir_flowgen_destroy(j.gen);
	weir_dpdk_source_close(j.dpdk);
	if (o.dpdk)
		weir_dpdk_eal_cleanup(); /* its runtime files, if it came up */
	return rc;
}
