/*
 * tests/net/flowgen_test.c — the traffic generator's packets
 * (net/gen_source.c, weir_flowgen_packet).
 *
 * TEST PLAN
 *   ranks:   with 40 000 flows (ranks on both sides of the 16 384 whose
 *            keys are built once at create), every key's source address
 *            names a rank below `flows`, one rank always has one key, and
 *            the ranks' counts fall as Zipf(1.1) says: rank 0 the most
 *            frequent, about 2^1.1 times rank 1, and ranks above 16 384
 *            present.  A key table read at the wrong index fails these
 *            (the key of rank r+1 for rank r: no rank 0 at all).
 *   pure:    the same index twice, and two generators of one config, give
 *            the same packet.
 *   source:  on one core the source emits packet 0, 1, 2 ... in order, each
 *            record and its event time equal to weir_flowgen_packet() of
 *            its index (the source's loop has its own inlined copy): event
 *            clocks of 1 000 000, 7 (several ms a packet) and 333 333
 *            packets a second.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "weir/flows.h"
#include "weir/pipeline.h"

#define FLOWS 40000u
#define PACKETS 400000u

/* The rank a generated key embeds in its source address. */
static uint32_t rank_of(const struct weir_flow_key *k)
{
	if (k->ip_version == 4)
		return (uint32_t)k->src[13] << 16 | (uint32_t)k->src[14] << 8 |
		       k->src[15];
	return (uint32_t)k->src[12] << 24 | (uint32_t)k->src[13] << 16 |
	       (uint32_t)k->src[14] << 8 | k->src[15];
}

static struct weir_flowgen *gen(uint32_t flows)
{
	struct weir_flowgen_config cfg;
	struct weir_flowgen *g;

	weir_flowgen_config_init(&cfg);
	cfg.flows = flows;
	cr_assert_eq(weir_flowgen_create(&cfg, &g), 0);
	return g;
}

Test(flowgen, ranks_and_keys)
{
	struct weir_flowgen *g = gen(FLOWS);
	struct weir_flow_key *first = calloc(FLOWS, sizeof(*first));
	uint32_t *count = calloc(FLOWS, sizeof(*count)), high = 0;

	cr_assert(first != NULL && count != NULL);
	for (uint64_t i = 0; i < PACKETS; i++) {
		struct weir_flow_obs o;
		int64_t ts;
		weir_flowgen_packet(g, i, &o, &ts);
		uint32_t r = rank_of(&o.key);
		cr_assert_lt(r, FLOWS, "packet %llu: rank %u",
			     (unsigned long long)i, r);
		if (count[r]++ == 0)
			first[r] = o.key;
		cr_assert_eq(memcmp(&first[r], &o.key, sizeof(o.key)), 0,
			     "rank %u has two keys", r);
		high += r >= 16384;
	}
	for (uint32_t r = 1; r < FLOWS; r++)
		cr_assert_geq(count[0], count[r], "rank %u: %u > rank 0's %u",
			      r, count[r], count[0]);
	/* 2^1.1 = 2.14: 1.8-2.5 in 400 k draws. */
	cr_assert(count[0] * 10 >= count[1] * 18 &&
		  count[0] * 10 <= count[1] * 25, "rank 0: %u, rank 1: %u",
		  count[0], count[1]);
	cr_assert_gt(high, PACKETS / 50, "%u packets above rank 16384", high);
	free(first);
	free(count);
	weir_flowgen_destroy(g);
}

Test(flowgen, pure)
{
	struct weir_flowgen *a = gen(FLOWS), *b = gen(FLOWS);

	for (uint64_t i = 0; i < 100000; i += 7) {
		struct weir_flow_obs x, y, z;
		int64_t tx, ty, tz;
		weir_flowgen_packet(a, i, &x, &tx);
		weir_flowgen_packet(a, i, &y, &ty);
		weir_flowgen_packet(b, i, &z, &tz);
		cr_assert(memcmp(&x, &y, sizeof(x)) == 0 && tx == ty);
		cr_assert(memcmp(&x, &z, sizeof(x)) == 0 && tx == tz);
	}
	weir_flowgen_destroy(a);
	weir_flowgen_destroy(b);
}

struct seen {
	struct weir_flow_obs *obs;
	int64_t *ts;
	uint64_t n, cap;
};

static int collect(struct weir_ctx *c, const void *rec, void *arg)
{
	struct seen *s = arg;

	if (s->n < s->cap) {
		memcpy(&s->obs[s->n], rec, sizeof(s->obs[0]));
		s->ts[s->n] = weir_ctx_timestamp(c);
	}
	s->n++;
	return 0;
}

static void source_matches(uint64_t event_pps)
{
	const uint64_t n = 50000;
	struct weir_flowgen_config cfg;
	struct weir_pipeline_config pc;
	struct weir_flowgen *g;
	struct weir_pipeline *p;
	struct weir_stream *src;
	struct seen s = { calloc(n, sizeof(*s.obs)), calloc(n, sizeof(*s.ts)),
			  0, n };

	weir_flowgen_config_init(&cfg);
	cfg.flows = FLOWS;
	cfg.packets = n;
	cfg.event_pps = event_pps;
	cr_assert_eq(weir_flowgen_create(&cfg, &g), 0);
	weir_pipeline_config_init(&pc);
	pc.runtime.cores = 1;
	cr_assert_eq(weir_pipeline_create(&pc, &p), 0);
	cr_assert_eq(weir_flowgen_add(p, g, &src), 0);
	cr_assert_eq(weir_sink_callback(p, src, collect, &s), 0);
	cr_assert_eq(weir_pipeline_run(p), 0);
	cr_assert_eq(s.n, n);
	for (uint64_t i = 0; i < n; i++) {
		struct weir_flow_obs o;
		int64_t ts;
		weir_flowgen_packet(g, i, &o, &ts);
		cr_assert(memcmp(&o, &s.obs[i], sizeof(o)) == 0,
			  "record %llu is not packet %llu",
			  (unsigned long long)i, (unsigned long long)i);
		cr_assert_eq(ts, s.ts[i], "packet %llu at %lld, source said %lld",
			     (unsigned long long)i, (long long)ts,
			     (long long)s.ts[i]);
	}
	weir_pipeline_destroy(p);
	weir_flowgen_destroy(g);
	free(s.obs);
	free(s.ts);
}

Test(flowgen, source_is_the_packet_function)
{
	source_matches(1000000);
	source_matches(7);
	source_matches(333333);
}
