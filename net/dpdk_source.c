/*
 * dpdk_source.c — the live DPDK ethdev source of weir/flows.h.
 *
 * SETUP (weir_dpdk_source_open, caller's thread)
 *   1. every port: rte_eth_dev_info_get; queues = min(cores, max_rx_queues);
 *      descriptors adjusted by the driver;
 *   2. one mbuf pool per NUMA socket that has ports, sized for
 *      sum(queues x descriptors) + cores x (cache + burst) + slack: every
 *      descriptor may hold an mbuf, every core's cache may hold `cache`
 *      more, a burst is in flight while it is parsed;
 *   3. every port: configure (RSS when the device has a RETA and more than
 *      one queue), RX queues on the pool of its socket, no TX queue,
 *      promiscuous, start, program the RETA, reset the counters.
 *
 * DATA PATH (next(), on worker k)
 *   Poll queue k of every port that has one, round robin, up to `max`
 *   frames per call; parse each as Ethernet; one CLOCK_REALTIME read per
 *   burst gives the arrival time; free the burst with one bulk call.  No
 *   shared write on this path, except the frame budget of --packets (two
 *   atomic adds per burst, only when a budget is set).
 *
 * TIME  A burst's frames are stamped with one CLOCK_REALTIME read (ms).
 *   A tick with nothing received asks dsrc_clock(), so the split's
 *   watermark follows the clock while its queues are quiet: an arrival-time
 *   window is written once the clock passes its end, not when the next
 *   frame comes (weir_source_ops.clock).
 *
 * END (every split ends, so the final watermark fires every window)
 *   stop flag (weir_dpdk_source_stop: signal handler), the core's own
 *   deadline (duration), or the frame budget used up.
 */
#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "core/error.h"
#include "net/dpdk.h"
#include "weir/flows.h"

#define DPDK_BURST 64u          /* frames per rx_burst call, at most */
#define DPDK_RX_DESC 1024u      /* default descriptors per RX queue */
#define DPDK_CACHE 256u         /* per-lcore mempool cache (<= 512) */
#define DPDK_PORTS_MAX 32u      /* ports one source configures */
#define DPDK_RSS_HF (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP | \
		     RTE_ETH_RSS_SCTP)

struct dsrc_rxq {
	uint16_t port, queue;
};

enum { SHOWN_PACKETS, SHOWN_MALFORMED, SHOWN_N };

struct dsrc_core {
	alignas(WEIR_CACHE_LINE) struct weir_flow_counters c;
	/* c.packets and c.malformed, for progress (relaxed) */
	_Atomic uint64_t shown[SHOWN_N];
	uint64_t deadline_ns;       /* 0: none */
	struct dsrc_rxq q[DPDK_PORTS_MAX];
	unsigned nq, next;
	bool registered, done;
};

struct dsrc_port {
	uint16_t id, queues, rx_desc, reta_size;
	uint64_t rss_hf; /* hash types asked for, 0: no RSS */
	int socket;
	bool rss, configured, started;
};

struct weir_dpdk_source {
	struct weir_dpdk_source_config cfg;
	struct dsrc_port port[DPDK_PORTS_MAX];
	unsigned nports;
	struct rte_mempool *pool[RTE_MAX_NUMA_NODES];
	_Atomic unsigned lcores_registered;
	alignas(WEIR_CACHE_LINE) _Atomic int stop;
	/* --packets budget: frames claimed by a burst in flight or received,
	 * and frames received (pairs: claim() and its give-back). */
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t claimed;
	_Atomic uint64_t received;
	struct dsrc_core core[WEIR_CORES_MAX];
};

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- setup ---- */

static int port_socket(uint16_t port)
{
	int s = rte_eth_dev_socket_id(port);

	/* SOCKET_ID_ANY (virtual devices): the caller's socket. */
	return s >= 0 && s < RTE_MAX_NUMA_NODES ? s : (int)rte_socket_id();
}

/* Step 1: queues and descriptors of one port. */
static int port_plan(struct weir_dpdk_source *s, struct dsrc_port *pp)
{
	struct rte_eth_dev_info di;
	uint16_t tx = 0;
	int err = rte_eth_dev_info_get(pp->id, &di);

	if (err)
		return wr_error(err, "--dpdk: port %u: no device info (%s)",
				pp->id, rte_strerror(-err));
	if (di.max_rx_queues == 0)
		return wr_error(-EINVAL, "--dpdk: port %u (%s) has no RX "
				"queue", pp->id, di.driver_name);
	pp->queues = (uint16_t)RTE_MIN(s->cfg.cores, di.max_rx_queues);
	pp->rss_hf = di.flow_type_rss_offloads & DPDK_RSS_HF;
	pp->reta_size = di.reta_size;
	pp->rss = di.reta_size > 0 && pp->queues > 1 && pp->rss_hf != 0;
	pp->rx_desc = s->cfg.rx_desc ? s->cfg.rx_desc : DPDK_RX_DESC;
	pp->socket = port_socket(pp->id);
	err = rte_eth_dev_adjust_nb_rx_tx_desc(pp->id, &pp->rx_desc, &tx);
	if (err && err != -ENOTSUP)
		return wr_error(err, "--dpdk: port %u: descriptors (%s)",
				pp->id, rte_strerror(-err));
	return 0;
}

/* Step 2: one pool per socket with ports. */
static int make_pools(struct weir_dpdk_source *s)
{
	uint64_t need[RTE_MAX_NUMA_NODES] = { 0 };
	char name[RTE_MEMPOOL_NAMESIZE];
	static _Atomic unsigned seq; /* pool names are global to the EAL */

	for (unsigned i = 0; i < s->nports; i++)
		need[s->port[i].socket] += (uint64_t)s->port[i].queues *
					   s->port[i].rx_desc;
	for (int k = 0; k < RTE_MAX_NUMA_NODES; k++) {
		if (need[k] == 0)
			continue;
		need[k] += s->cfg.cores * (DPDK_CACHE + DPDK_BURST) + 1024;
		/* 2^q - 1 elements: the pool ring's optimum size */
		uint32_t n = rte_align32pow2((uint32_t)need[k]) - 1;
		snprintf(name, sizeof(name), "weir_rx%u_%d",
			 atomic_fetch_add(&seq, 1), k);
		s->pool[k] = rte_pktmbuf_pool_create(name, n, DPDK_CACHE, 0,
			RTE_MBUF_DEFAULT_BUF_SIZE, k);
		if (s->pool[k] == NULL)
			return wr_error(-ENOMEM, "--dpdk: no memory for %u "
					"mbufs on socket %d (%s; give the EAL "
					"more with -m)", n, k,
					rte_strerror(rte_errno));
	}
	return 0;
}

/* RETA entry i -> queue i % queues: every queue gets an equal share of
 * the NIC's hash buckets (docs/net.md: why not per key group). */
static int reta_program(const struct dsrc_port *pp)
{
	struct rte_eth_rss_reta_entry64 *conf;
	unsigned groups = (pp->reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) /
			  RTE_ETH_RETA_GROUP_SIZE;
	int err;

	conf = calloc(groups, sizeof(*conf));
	if (conf == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < pp->reta_size; i++) {
		conf[i / RTE_ETH_RETA_GROUP_SIZE].mask |=
			1ull << (i % RTE_ETH_RETA_GROUP_SIZE);
		conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i %
			RTE_ETH_RETA_GROUP_SIZE] = (uint16_t)(i % pp->queues);
	}
	err = rte_eth_dev_rss_reta_update(pp->id, conf, pp->reta_size);
	free(conf);
	return err;
}

/* Step 3: configure, RX queues, start, RETA. */
static int port_start(struct weir_dpdk_source *s, struct dsrc_port *pp)
{
	struct rte_eth_conf conf;
	const char *what = "configure";
	int err;

	memset(&conf, 0, sizeof(conf));
	if (pp->rss) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = pp->rss_hf;
	}
	err = rte_eth_dev_configure(pp->id, pp->queues, 0, &conf);
	pp->configured = err == 0;
	for (uint16_t q = 0; err == 0 && q < pp->queues; q++) {
		what = "RX queue setup";
		err = rte_eth_rx_queue_setup(pp->id, q, pp->rx_desc, pp->socket,
					     NULL, s->pool[pp->socket]);
	}
	if (err == 0) {
		what = "start";
		(void)rte_eth_promiscuous_enable(pp->id); /* -ENOTSUP is fine */
		err = rte_eth_dev_start(pp->id);
		pp->started = err == 0;
	}
	if (err == 0 && pp->rss) {
		what = "RSS redirection table";
		err = reta_program(pp);
	}
	if (err)
		return wr_error(err < 0 ? err : -EIO, "--dpdk: port %u: %s "
				"failed (%s)", pp->id, what, rte_strerror(-err));
	(void)rte_eth_stats_reset(pp->id); /* drops count from here */
	return 0;
}

static int setup(struct weir_dpdk_source *s)
{
	uint16_t id;
	int err = 0;

	RTE_ETH_FOREACH_DEV(id) {
		if (s->nports == DPDK_PORTS_MAX)
			return wr_error(-E2BIG, "--dpdk: more than %u ports",
					DPDK_PORTS_MAX);
		s->port[s->nports++].id = id;
	}
	if (s->nports == 0 && wr_dpdk_eal_complaint()[0] != '\0')
		return wr_error(-ENODEV, "--dpdk: no ports: %s",
				wr_dpdk_eal_complaint());
	if (s->nports == 0)
		return wr_error(-ENODEV, "--dpdk: no ports (give a device, "
				"e.g. --vdev=net_pcap0,rx_pcap=FILE)");
	for (unsigned i = 0; err == 0 && i < s->nports; i++)
		err = port_plan(s, &s->port[i]);
	if (err == 0)
		err = make_pools(s);
	for (unsigned i = 0; err == 0 && i < s->nports; i++)
		err = port_start(s, &s->port[i]);
	return err;
}

int weir_dpdk_source_open(const struct weir_dpdk_source_config *cfg,
			  struct weir_dpdk_source **out)
{
	struct weir_dpdk_source *s;
	int err;

	if (cfg == NULL || out == NULL || cfg->cores == 0 ||
	    cfg->cores > WEIR_CORES_MAX)
		return wr_error(-EINVAL, "dpdk source: NULL config or cores "
				"not in [1, %u]", WEIR_CORES_MAX);
	if (cfg->eal_args != NULL) {
		err = weir_dpdk_eal_init(cfg->eal_args);
		if (err)
			return err;
	}
	s = aligned_alloc(WEIR_CACHE_LINE, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->cfg.eal_args = NULL; /* the caller's string: not kept */
	err = setup(s);
	if (err) {
		weir_dpdk_source_close(s);
		return err;
	}
	*out = s;
	return 0;
}

void weir_dpdk_source_close(struct weir_dpdk_source *s)
{
	if (s == NULL)
		return;
	/* Stop and close every port first: their queues hold pool mbufs. */
	for (unsigned i = 0; i < s->nports; i++) {
		if (s->port[i].started)
			(void)rte_eth_dev_stop(s->port[i].id);
		if (s->port[i].configured)
			(void)rte_eth_dev_close(s->port[i].id);
	}
	for (int k = 0; k < RTE_MAX_NUMA_NODES; k++)
		rte_mempool_free(s->pool[k]);
	free(s);
}

/* ---- data path ---- */

static int dsrc_open(struct weir_ctx *c, unsigned split, unsigned splits,
		     void *arg)
{
	struct weir_dpdk_source *s = arg;
	struct dsrc_core *pc = &s->core[split];

	(void)c;
	if (splits != s->cfg.cores)
		return wr_error(-EINVAL, "dpdk source: opened for %u cores, "
				"the pipeline has %u", s->cfg.cores, splits);
	/* Not `shown`: a progress reader may load it right now. */
	memset(&pc->c, 0, sizeof(pc->c));
	memset((char *)pc + offsetof(struct dsrc_core, deadline_ns), 0,
	       sizeof(*pc) - offsetof(struct dsrc_core, deadline_ns));
	for (unsigned k = 0; k < SHOWN_N; k++)
		atomic_store_explicit(&pc->shown[k], 0, memory_order_relaxed);
	for (unsigned i = 0; i < s->nports; i++)
		if (split < s->port[i].queues)
			pc->q[pc->nq++] = (struct dsrc_rxq){
				s->port[i].id, (uint16_t)split };
	if (s->cfg.duration_ms)
		pc->deadline_ns = clock_ns(CLOCK_MONOTONIC) +
				  s->cfg.duration_ms * 1000000u;
	/* An lcore id gives this pthread its own mempool cache; without one
	 * (all RTE_MAX_LCORE ids taken) every mbuf goes through the pool's
	 * shared ring: correct, slower. */
	if (rte_thread_register() == 0 && rte_lcore_id() != LCORE_ID_ANY) {
		pc->registered = true;
		atomic_fetch_add(&s->lcores_registered, 1);
	}
	return 0;
}

static void dsrc_close(struct weir_ctx *c, void *arg)
{
	struct weir_dpdk_source *s = arg;

	if (s->core[weir_ctx_core(c)].registered)
		rte_thread_unregister();
}

/* Frames this core may take now under the --packets budget (0: none
 * left for the moment).  Pairs with give_back(). */
static unsigned claim(struct weir_dpdk_source *s, unsigned want)
{
	uint64_t n = s->cfg.packets;
	uint64_t c;

	if (n == 0)
		return want;
	c = atomic_fetch_add_explicit(&s->claimed, want, memory_order_relaxed);
	if (c >= n) {
		atomic_fetch_sub_explicit(&s->claimed, want,
					  memory_order_relaxed);
		return 0;
	}
	if (n - c >= want)
		return want;
	/* Only n - c left: hand the rest of the claim back at once. */
	atomic_fetch_sub_explicit(&s->claimed, want - (n - c),
				  memory_order_relaxed);
	return (unsigned)(n - c);
}

/* Return the unused part of a claim of `want`, count `got` received. */
static void give_back(struct weir_dpdk_source *s, unsigned want, unsigned got)
{
	if (s->cfg.packets == 0)
		return;
	atomic_fetch_add_explicit(&s->received, got, memory_order_relaxed);
	atomic_fetch_sub_explicit(&s->claimed, want - got,
				  memory_order_relaxed);
}

static bool should_end(struct weir_dpdk_source *s, const struct dsrc_core *pc)
{
	if (atomic_load_explicit(&s->stop, memory_order_relaxed))
		return true;
	if (pc->deadline_ns && clock_ns(CLOCK_MONOTONIC) >= pc->deadline_ns)
		return true;
	return s->cfg.packets && atomic_load_explicit(&s->received,
			memory_order_relaxed) >= s->cfg.packets;
}

/* Up to `want` frames from this core's queues, round robin. */
static unsigned rx(struct dsrc_core *pc, struct rte_mbuf **m, unsigned want)
{
	unsigned got = 0;

	for (unsigned i = 0; i < pc->nq && got < want; i++) {
		const struct dsrc_rxq *q = &pc->q[pc->next];
		pc->next = pc->next + 1 == pc->nq ? 0 : pc->next + 1;
		got += rte_eth_rx_burst(q->port, q->queue, m + got,
					(uint16_t)(want - got));
	}
	return got;
}

/* Parse a burst into records; the mbufs stay the caller's. */
static unsigned parse_burst(struct dsrc_core *pc, struct rte_mbuf **m,
			    unsigned got, struct weir_flow_obs *o,
			    int64_t *ts, int64_t now_ms)
{
	struct weir_packet pkt;
	unsigned n = 0;

	for (unsigned i = 0; i < got; i++) {
		if (i + 1 < got)
			rte_prefetch0(rte_pktmbuf_mtod(m[i + 1], void *));
		int v = weir_parse(rte_pktmbuf_mtod(m[i], const uint8_t *),
				   rte_pktmbuf_data_len(m[i]),
				   rte_pktmbuf_pkt_len(m[i]),
				   WEIR_LINKTYPE_ETHERNET, &pkt);
		if (v == WEIR_PARSE_OK) {
			o[n].key = pkt.key;
			o[n].ip_bytes = pkt.ip_bytes;
			o[n].pad = 0;
			ts[n++] = now_ms;
		} else if (v == WEIR_PARSE_NON_IP) {
			pc->c.non_ip++;
		} else {
			pc->c.malformed++;
		}
	}
	pc->c.packets += got;
	pc->c.ip += n;
	/* Relaxed: display values (weir_dpdk_source_progress, _malformed). */
	atomic_store_explicit(&pc->shown[SHOWN_PACKETS], pc->c.packets,
			      memory_order_relaxed);
	atomic_store_explicit(&pc->shown[SHOWN_MALFORMED], pc->c.malformed,
			      memory_order_relaxed);
	return n;
}

static int dsrc_next(struct weir_ctx *c, void *recs, int64_t *ts,
		     unsigned max, void *arg)
{
	struct weir_dpdk_source *s = arg;
	struct dsrc_core *pc = &s->core[weir_ctx_core(c)];
	struct rte_mbuf *m[DPDK_BURST];
	unsigned want, got, n;

	if (pc->done)
		return WEIR_SOURCE_END;
	if (should_end(s, pc)) {
		pc->done = true;
		return WEIR_SOURCE_END;
	}
	want = claim(s, RTE_MIN(max, DPDK_BURST));
	if (want == 0)
		return 0;
	got = rx(pc, m, want);
	give_back(s, want, got);
	if (got == 0)
		return 0;
	n = parse_burst(pc, m, got, recs, ts,
			(int64_t)(clock_ns(CLOCK_REALTIME) / 1000000u));
	rte_pktmbuf_free_bulk(m, got);
	return (int)n;
}

/* Asked on a tick with nothing received: every frame received from now on
 * is stamped this ms or later (CLOCK_REALTIME, as parse_burst's stamps),
 * so a quiet queue's windows close on time. */
static int64_t dsrc_clock(struct weir_ctx *c, void *arg)
{
	(void)c;
	(void)arg;
	return (int64_t)(clock_ns(CLOCK_REALTIME) / 1000000u);
}

int weir_dpdk_source_add(struct weir_pipeline *p, struct weir_dpdk_source *s,
			 struct weir_stream **out)
{
	static const struct weir_source_ops ops = {
		.open = dsrc_open, .next = dsrc_next, .close = dsrc_close,
		.clock = dsrc_clock };

	if (s == NULL)
		return wr_error(-EINVAL, "dpdk source: NULL handle");
	return weir_source(p, "dpdk", &ops, sizeof(struct weir_flow_obs), s,
			   out);
}

/* ---- control and counters (any thread) ---- */

void weir_dpdk_source_stop(struct weir_dpdk_source *s)
{
	/* Relaxed: a flag, nothing is published with it; read in
	 * should_end().  A lock-free atomic store is async-signal-safe. */
	atomic_store_explicit(&s->stop, 1, memory_order_relaxed);
}

static uint64_t shown_sum(const struct weir_dpdk_source *s, unsigned k)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < s->cfg.cores; i++)
		sum += atomic_load_explicit(&s->core[i].shown[k],
					    memory_order_relaxed);
	return sum;
}

uint64_t weir_dpdk_source_progress(const struct weir_dpdk_source *s)
{
	return shown_sum(s, SHOWN_PACKETS);
}

uint64_t weir_dpdk_source_malformed(const struct weir_dpdk_source *s)
{
	return shown_sum(s, SHOWN_MALFORMED);
}

void weir_dpdk_source_counters(const struct weir_dpdk_source *s,
			       struct weir_flow_counters *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < s->cfg.cores; i++) {
		out->packets += s->core[i].c.packets;
		out->ip += s->core[i].c.ip;
		out->malformed += s->core[i].c.malformed;
		out->non_ip += s->core[i].c.non_ip;
	}
}

void weir_dpdk_source_stats(const struct weir_dpdk_source *s,
			    struct weir_dpdk_stats *out)
{
	struct rte_eth_stats st;

	memset(out, 0, sizeof(*out));
	out->ports = s->nports;
	out->lcores_registered = atomic_load(&s->lcores_registered);
	for (unsigned i = 0; i < s->nports; i++) {
		out->queues += s->port[i].queues;
		out->rss_ports += s->port[i].rss;
		if (rte_eth_stats_get(s->port[i].id, &st) != 0)
			continue;
		out->imissed += st.imissed;
		out->rx_nombuf += st.rx_nombuf;
		out->ierrors += st.ierrors;
	}
}
