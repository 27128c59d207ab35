/*
 * dpdk_test.c — the DPDK ethdev source (weir/flows.h, net/dpdk_*.c) on
 * virtual devices, EAL in --no-huge --no-pci mode.  Criterion runs every
 * test in its own process, which the EAL needs (once per process); each
 * uses its own --file-prefix and removes its runtime directory.
 *
 * TEST PLAN
 *   1. net_ring (rte_eth_from_rings, two RX rings): frames built by
 *      tests/net/frames.h -- three TCP flows of known sizes, malformed
 *      (IHL 4) and ARP frames -- enqueued as mbufs on both rings, so both
 *      cores receive.  A 2-core pipeline (source -> callback sink) with a
 *      --packets budget equal to the frame count ends by itself; the sink
 *      sees exactly the IP frames (per-flow packets and IP bytes as built,
 *      timestamps = arrival time within the run); counters packets, ip,
 *      malformed, non_ip exact; 2 queues, no RSS, no drops; both workers
 *      got an lcore id (rte_thread_register: mempool caches).
 *   2. net_null with RSS (reta_size 128): two queues, the RETA reads back
 *      as entry i -> queue i % 2, rss_ports = 1; a budget of 10000 frames
 *      shared by two cores polling concurrently is met exactly.
 *   3. weir_dpdk_source_stop() from another thread ends an unbounded run
 *      with status 0 (what SIGINT does in `weir flows`).
 *   4. Setup errors: no ports -> -ENODEV naming the cause; EAL twice ->
 *      -EALREADY; a bad EAL option -> the option in the message.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "frames.h"
#include "weir/flows.h"

static char prefix[64];

/* EAL up with this test's own prefix and `extra` devices. */
static void eal(const char *extra)
{
	char args[512];

	snprintf(prefix, sizeof(prefix), "weir-dpdk-test-%d", (int)getpid());
	snprintf(args, sizeof(args), "--no-huge --no-pci -m 128 -l 0 "
		 "--no-telemetry --file-prefix=%s %s", prefix, extra);
	cr_assert_eq(weir_dpdk_eal_init(args), 0, "%s", weir_last_error());
}

/* rte_eal_cleanup and the runtime files it leaves behind. */
static void eal_done(void)
{
	char dir[128], path[512];
	struct dirent *e;
	DIR *d;

	weir_dpdk_eal_cleanup();
	snprintf(dir, sizeof(dir), "/var/run/dpdk/%s", prefix);
	d = opendir(dir);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static unsigned test_cores(void)
{
	struct weir_pipeline_config pc;

	weir_pipeline_config_init(&pc);
	return pc.runtime.cores < 2 ? pc.runtime.cores : 2;
}

/* ---- a pipeline: DPDK source -> callback sink ---- */

#define FLOWS 3
static const unsigned flow_frames[FLOWS] = { 100, 50, 25 };
static const uint32_t flow_pad[FLOWS] = { 6, 500, 1400 };
#define MALFORMED 7
#define ARP 5

struct seen {
	_Atomic uint64_t pkts[FLOWS], bytes[FLOWS], other, bad_ts;
	int64_t t0_ms; /* wall clock before the run */
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sink(struct weir_ctx *c, const void *rec, void *arg)
{
	const struct weir_flow_obs *o = rec;
	struct seen *s = arg;
	unsigned f = o->key.sport - 1000u;
	int64_t ts = weir_ctx_timestamp(c);

	if (ts < s->t0_ms || ts > wall_ms())
		atomic_fetch_add(&s->bad_ts, 1);
	if (o->key.proto != 6 || f >= FLOWS || o->key.dport != 80) {
		atomic_fetch_add(&s->other, 1);
		return 0;
	}
	atomic_fetch_add(&s->pkts[f], 1);
	atomic_fetch_add(&s->bytes[f], o->ip_bytes);
	return 0;
}

static int run(struct weir_dpdk_source *src, unsigned cores, struct seen *s)
{
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *st;
	int err;

	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = cores;
	cfg.state_bytes_max = 16u << 20;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0, "%s",
		     weir_last_error());
	cr_assert_eq(weir_dpdk_source_add(p, src, &st), 0);
	cr_assert_eq(weir_sink_callback(p, st, sink, s), 0);
	s->t0_ms = wall_ms();
	err = weir_pipeline_run(p);
	weir_pipeline_destroy(p);
	return err;
}

/* ---- 1. net_ring ---- */

static struct rte_mbuf *mbuf_of(struct rte_mempool *mp, const struct fb *f)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);

	cr_assert_not_null(m);
	char *d = rte_pktmbuf_append(m, (uint16_t)f->len);
	cr_assert_not_null(d);
	memcpy(d, f->b, f->len);
	return m;
}

/* Frame i of the test traffic: flows, then malformed, then ARP. */
static void frame(unsigned i, struct fb *f)
{
	unsigned fl = 0;

	while (fl < FLOWS && i >= flow_frames[fl])
		i -= flow_frames[fl++];
	if (fl < FLOWS) {
		fb_eth_ipv4_l4(f, 6, 0x0a000001 + fl, 0x0a0000ff,
			       (uint16_t)(1000 + fl), 80, flow_pad[fl]);
		return;
	}
	fb_eth_ipv4_l4(f, 6, 0x0a000001, 0x0a0000ff, 1, 2, 20);
	if (i < MALFORMED) {
		f->b[14] = 0x44; /* IHL 4: malformed */
		return;
	}
	fb_init(f);
	fb_eth(f, 0x0806);
	fb_zero(f, 28);
}

Test(dpdk, ring_two_queues_counts_and_flows)
{
	unsigned total = 100 + 50 + 25 + MALFORMED + ARP, cores = test_cores();
	struct rte_ring *rings[2];
	struct rte_mempool *mp;
	struct weir_dpdk_source *src;
	struct weir_flow_counters c;
	struct weir_dpdk_stats st;
	static struct seen s;
	struct fb f;

	eal("");
	mp = rte_pktmbuf_pool_create("test_frames", 511, 0, 0,
				     RTE_MBUF_DEFAULT_BUF_SIZE, 0);
	cr_assert_not_null(mp);
	for (int r = 0; r < 2; r++) {
		char name[16];
		snprintf(name, sizeof(name), "test_rx%d", r);
		rings[r] = rte_ring_create(name, 512, 0,
					   RING_F_SP_ENQ | RING_F_SC_DEQ);
		cr_assert_not_null(rings[r]);
	}
	cr_assert_geq(rte_eth_from_rings("net_ring_test", rings, 2, rings, 1,
					 0), 0);
	for (unsigned i = 0; i < total; i++) {
		frame(i, &f);
		cr_assert_eq(rte_ring_enqueue(rings[i % cores],
					      mbuf_of(mp, &f)), 0);
	}
	struct weir_dpdk_source_config cfg = { .cores = cores,
					       .packets = total };
	cr_assert_eq(weir_dpdk_source_open(&cfg, &src), 0, "%s",
		     weir_last_error());
	cr_assert_eq(run(src, cores, &s), 0, "%s", weir_last_error());
	weir_dpdk_source_counters(src, &c);
	weir_dpdk_source_stats(src, &st);
	cr_expect_eq(c.packets, total);
	cr_expect_eq(c.ip, 175);
	cr_expect_eq(c.malformed, MALFORMED);
	cr_expect_eq(c.non_ip, ARP);
	for (unsigned fl = 0; fl < FLOWS; fl++) {
		cr_expect_eq(s.pkts[fl], flow_frames[fl], "flow %u", fl);
		cr_expect_eq(s.bytes[fl], flow_frames[fl] *
			     (20 + 4 + flow_pad[fl]), "flow %u bytes", fl);
	}
	cr_expect_eq(s.other, 0);
	cr_expect_eq(s.bad_ts, 0, "timestamps outside the run");
	cr_expect_eq(st.ports, 1);
	cr_expect_eq(st.queues, cores);
	cr_expect_eq(st.rss_ports, 0);
	cr_expect_eq(st.imissed + st.rx_nombuf, 0);
	cr_expect_eq(st.lcores_registered, cores);
	weir_dpdk_source_close(src);
	rte_ring_free(rings[0]);
	rte_ring_free(rings[1]);
	rte_mempool_free(mp);
	eal_done();
}

/* ---- 2. net_null: RSS redirection table, shared budget ---- */

Test(dpdk, null_rss_reta_spread_and_exact_budget)
{
	unsigned cores = test_cores();
	struct weir_dpdk_source_config cfg = { .cores = cores,
					       .packets = 10000 };
	struct rte_eth_rss_reta_entry64 reta[8];
	struct weir_dpdk_source *src;
	struct weir_dpdk_stats st;
	struct weir_flow_counters c;
	static struct seen s;

	eal("--vdev=net_null0");
	cr_assert_eq(weir_dpdk_source_open(&cfg, &src), 0, "%s",
		     weir_last_error());
	weir_dpdk_source_stats(src, &st);
	if (cores < 2) {
		cr_expect_eq(st.rss_ports, 0); /* one queue: nothing to spread */
	} else {
		cr_expect_eq(st.rss_ports, 1);
		memset(reta, 0, sizeof(reta));
		for (int g = 0; g < 2; g++)
			reta[g].mask = ~0ull;
		cr_assert_eq(rte_eth_dev_rss_reta_query(0, reta, 128), 0);
		for (unsigned i = 0; i < 128; i++)
			cr_expect_eq(reta[i / 64].reta[i % 64], i % 2,
				     "RETA entry %u", i);
	}
	cr_assert_eq(run(src, cores, &s), 0, "%s", weir_last_error());
	weir_dpdk_source_counters(src, &c);
	cr_expect_eq(c.packets, 10000); /* budget met exactly, 2 pollers */
	cr_expect_eq(c.non_ip, 10000);  /* net_null frames are all zero */
	cr_expect_eq(c.ip, 0);
	weir_dpdk_source_close(src);
	eal_done();
}

/* ---- 3. stop from another thread ---- */

static void *stopper(void *arg)
{
	struct timespec nap = { 0, 200 * 1000 * 1000 };

	nanosleep(&nap, NULL);
	weir_dpdk_source_stop(arg);
	return NULL;
}

Test(dpdk, stop_ends_an_unbounded_run)
{
	unsigned cores = test_cores();
	struct weir_dpdk_source_config cfg = { .cores = cores };
	struct weir_dpdk_source *src;
	struct weir_flow_counters c;
	static struct seen s;
	pthread_t th;

	eal("--vdev=net_null0");
	cr_assert_eq(weir_dpdk_source_open(&cfg, &src), 0, "%s",
		     weir_last_error());
	cr_assert_eq(pthread_create(&th, NULL, stopper, src), 0);
	cr_assert_eq(run(src, cores, &s), 0, "%s", weir_last_error());
	pthread_join(th, NULL);
	weir_dpdk_source_counters(src, &c);
	cr_expect_gt(c.packets, 0);
	weir_dpdk_source_close(src);
	eal_done();
}

/* ---- 4. setup errors ---- */

Test(dpdk, no_ports_and_eal_twice)
{
	struct weir_dpdk_source_config cfg = { .cores = 1 };
	struct weir_dpdk_source *src = NULL;

	eal("");
	cr_expect_eq(weir_dpdk_source_open(&cfg, &src), -ENODEV);
	cr_expect(strstr(weir_last_error(), "no ports") != NULL, "%s",
		  weir_last_error());
	cr_expect_null(src);
	cr_expect_eq(weir_dpdk_eal_init("--no-huge"), -EALREADY);
	eal_done();
}

Test(dpdk, bad_eal_option_named)
{
	cr_expect_eq(weir_dpdk_eal_init("--no-huge --no-pci --frobnicate"),
		     -EINVAL);
	cr_expect(strstr(weir_last_error(), "--frobnicate") != NULL, "%s",
		  weir_last_error());
}
