/*
 * gen_source.c — the deterministic traffic generator of weir/flows.h.
 *
 * Packet i = f(config, i), a pure function (weir_flowgen_packet):
 *   h = mix(i ^ mix(seed)); the flow's popularity rank r is drawn from a
 *   Zipf(s) law over `flows` ranks through a 65537-entry inverse-CDF table
 *   (top 16 bits of h pick the quantile bucket, the low 32 bits a rank
 *   inside it: O(1), 256 KiB, no pow() on the data path); the flow's
 *   5-tuple is a function of (seed, r) whose source address embeds r, so
 *   distinct ranks are distinct flows; the size is IMIX or uniform from
 *   another mix of h; the timestamp is start_ms + i * 1000 / event_pps.
 *
 * Splits as weir_source_generator: packet i belongs to logical split
 * i % WEIR_GENERATOR_SPLITS, split s to core s % cores.  Each core walks
 * the global index upward and keeps its own packets, so its event times
 * never decrease; its position is the next index to consider.
 */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "weir/flows.h"

#define ZIPF_BITS 16u
#define ZIPF_SLOTS (1u << ZIPF_BITS)
/* The keys of the most popular ranks, built once: building one is two
 * mixes and ~40 byte stores (~80 instructions), copying it 40 bytes from
 * L2.  16 k keys are 640 KiB and cover ~91% of the packets of the default
 * Zipf(1.1) over 100 000 flows (all of them up to 16 k flows). */
#define KEYS_CACHED 16384u
#define SPLITS WEIR_GENERATOR_SPLITS

struct fg_core {
	alignas(WEIR_CACHE_LINE) struct weir_flow_counters c;
	_Atomic uint64_t published; /* c.packets, for progress */
	uint64_t next;       /* next global index to consider */
	uint64_t from[SPLITS]; /* restored: first index of each split left */
	uint64_t pace_base;  /* packets counted before this run (restore) */
	uint64_t start_ns, deadline_ns;
	unsigned nowned;     /* logical splits owned */
	bool mine[SPLITS];
	bool done;
};

struct weir_flowgen {
	struct weir_flowgen_config cfg;
	uint64_t seed_mix;
	uint32_t zipf[ZIPF_SLOTS + 1]; /* first rank of each quantile bucket */
	struct weir_flow_key *keys;    /* of ranks [0, nkeys) */
	uint32_t nkeys;
	struct fg_core core[WEIR_CORES_MAX];
};

static void flow_key(const struct weir_flowgen *g, uint32_t r,
		     struct weir_flow_key *k);

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void weir_flowgen_config_init(struct weir_flowgen_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->seed = 1;
	cfg->packets = 4000000;
	cfg->flows = 100000;
	cfg->zipf_s = 1.1;
	cfg->ipv6_fraction = 0.2;
	cfg->event_pps = 1000000;
	cfg->start_ms = 1700000000000;
}

/* zipf[j] = the first rank whose CDF exceeds j / ZIPF_SLOTS.  Each rank's
 * weight is computed once per pass: the second pass computed it twice and
 * once more per slot where it stopped, ~120 instructions a pow() (at the
 * default 100 000 flows 44 M instructions of start-up, 20 M now; the same
 * values added in the same order, so the same table). */
static void zipf_build(struct weir_flowgen *g)
{
	uint32_t n = g->cfg.flows, r = 0, j = 0;
	double total = 0, acc = 0, w;

	for (uint32_t k = 1; k <= n; k++)
		total += pow((double)k, -g->cfg.zipf_s);
	w = pow(1.0, -g->cfg.zipf_s); /* the weight of rank r + 1 */
	for (; j <= ZIPF_SLOTS; j++) {
		double q = (double)j / ZIPF_SLOTS * total;
		while (r < n - 1 && acc + w <= q) {
			acc += w;
			r++;
			w = pow((double)(r + 1), -g->cfg.zipf_s);
		}
		g->zipf[j] = r;
	}
}

static int check(const struct weir_flowgen_config *c)
{
	if (c->flows == 0 || c->flows > WEIR_FLOWGEN_FLOWS_MAX)
		return wr_error(-EINVAL, "flows %u is not in [1, %u]", c->flows,
				WEIR_FLOWGEN_FLOWS_MAX);
	if (!(c->ipv6_fraction >= 0 && c->ipv6_fraction <= 1))
		return wr_error(-EINVAL, "IPv6 fraction %g is not in [0, 1]",
				c->ipv6_fraction);
	if (!(c->zipf_s >= 0 && c->zipf_s <= 10))
		return wr_error(-EINVAL, "zipf skew %g is not in [0, 10]",
				c->zipf_s);
	if (c->size_min > c->size_max || (c->size_max && c->size_min < 20) ||
	    c->size_max > 65535)
		return wr_error(-EINVAL, "packet sizes [%u, %u] are not within "
				"[20, 65535]", c->size_min, c->size_max);
	if (c->event_pps == 0)
		return wr_error(-EINVAL, "event clock rate 0");
	if (c->packets == 0 && c->duration_ms == 0)
		return wr_error(-EINVAL, "an unbounded generator needs a duration");
	return 0;
}

int weir_flowgen_create(const struct weir_flowgen_config *cfg,
			struct weir_flowgen **out)
{
	struct weir_flowgen *g;
	int err = check(cfg);

	if (err)
		return err;
	g = aligned_alloc(WEIR_CACHE_LINE, sizeof(*g));
	if (g == NULL)
		return -ENOMEM;
	memset(g, 0, sizeof(*g));
	g->cfg = *cfg;
	g->seed_mix = mix64(cfg->seed);
	zipf_build(g);
	g->nkeys = cfg->flows < KEYS_CACHED ? cfg->flows : KEYS_CACHED;
	g->keys = malloc((size_t)g->nkeys * sizeof(*g->keys));
	if (g->keys == NULL) {
		free(g);
		return -ENOMEM;
	}
	for (uint32_t r = 0; r < g->nkeys; r++)
		flow_key(g, r, &g->keys[r]);
	*out = g;
	return 0;
}

void weir_flowgen_destroy(struct weir_flowgen *g)
{
	if (g != NULL)
		free(g->keys);
	free(g);
}

static const uint16_t dports[8] = { 80, 443, 53, 123, 22, 8080, 3478, 5353 };

/* The 5-tuple of flow rank r (distinct ranks -> distinct keys). */
static void flow_key(const struct weir_flowgen *g, uint32_t r,
		     struct weir_flow_key *k)
{
	uint64_t h1 = mix64(g->seed_mix ^ ((uint64_t)r << 20 | 0x5u));
	uint64_t h2 = mix64(h1);
	bool v6 = (double)(h1 >> 11) * 0x1p-53 < g->cfg.ipv6_fraction;
	unsigned p = h2 & 0xff;

	memset(k, 0, sizeof(*k));
	k->ip_version = v6 ? 6 : 4;
	k->proto = p < 154 ? 6 : p < 230 ? 17 : v6 ? 58 : 1;
	if (k->proto != 1 && k->proto != 58) {
		k->sport = (uint16_t)(1024 + (h2 >> 8) % 64512);
		k->dport = dports[(h2 >> 32) & 7];
	}
	if (v6) {
		static const uint8_t pfx[4] = { 0x20, 0x01, 0x0d, 0xb8 };
		memcpy(k->src, pfx, 4);
		memcpy(k->dst, pfx, 4);
		k->dst[4] = 1;
		memcpy(k->src + 8, &h2, 4);
		memcpy(k->dst + 8, (uint8_t *)&h2 + 4, 4);
		for (int i = 0; i < 4; i++)
			k->src[15 - i] = (uint8_t)(r >> (8 * i));
	} else {
		k->src[10] = k->src[11] = k->dst[10] = k->dst[11] = 0xff;
		k->src[12] = 10;
		k->src[13] = (uint8_t)(r >> 16);
		k->src[14] = (uint8_t)(r >> 8);
		k->src[15] = (uint8_t)r;
		k->dst[12] = 192;
		k->dst[13] = 168;
		k->dst[14] = (uint8_t)(h2 >> 40);
		k->dst[15] = (uint8_t)(h2 >> 48);
	}
}

static uint32_t ip_size(const struct weir_flowgen *g, uint64_t h)
{
	const struct weir_flowgen_config *c = &g->cfg;

	if (c->size_max == 0) {
		unsigned m = (unsigned)(h % 12);
		return m < 7 ? 40 : m < 11 ? 576 : 1500;
	}
	return c->size_min + (uint32_t)(h % (c->size_max - c->size_min + 1));
}

/* index * 1000 / event_pps without its 128-bit division (a libgcc call,
 * ~13 instructions a packet) while index * 1000 fits in 64 bits. */
static inline int64_t event_ms(const struct weir_flowgen *g, uint64_t index)
{
	if (WEIR_LIKELY(index <= UINT64_MAX / 1000))
		return (int64_t)(index * 1000 / g->cfg.event_pps);
	return (int64_t)((unsigned __int128)index * 1000 / g->cfg.event_pps);
}

/* Inlined into the source's loop (the call and its saved registers were
 * ~15 of the ~100 instructions a packet). */
static inline void packet(const struct weir_flowgen *g, uint64_t index,
			  struct weir_flow_obs *obs, int64_t *ts_ms)
{
	uint64_t h = mix64(index ^ g->seed_mix);
	uint32_t j = (uint32_t)(h >> (64 - ZIPF_BITS));
	uint32_t lo = g->zipf[j], span = g->zipf[j + 1] - lo + 1;
	uint32_t r = lo + (uint32_t)(((h & 0xffffffffu) * span) >> 32);

	if (r >= g->cfg.flows)
		r = g->cfg.flows - 1;
	if (WEIR_LIKELY(r < g->nkeys))
		obs->key = g->keys[r];
	else
		flow_key(g, r, &obs->key);
	obs->ip_bytes = ip_size(g, mix64(h ^ 0xa5a5a5a5u));
	obs->pad = 0;
	*ts_ms = g->cfg.start_ms + event_ms(g, index);
}

void weir_flowgen_packet(const struct weir_flowgen *g, uint64_t index,
			 struct weir_flow_obs *obs, int64_t *ts_ms)
{
	packet(g, index, obs, ts_ms);
}

static int fg_open(struct weir_ctx *c, unsigned split, unsigned splits,
		   void *arg)
{
	struct weir_flowgen *g = arg;
	struct fg_core *fc = &g->core[split];

	(void)c;
	/* Everything but `published`, which weir_flowgen_progress() may be
	 * reading right now: that one only through an atomic store. */
	memset(&fc->c, 0, sizeof(fc->c));
	memset((char *)fc + offsetof(struct fg_core, next), 0,
	       sizeof(*fc) - offsetof(struct fg_core, next));
	atomic_store_explicit(&fc->published, 0, memory_order_relaxed);
	for (unsigned s = split; s < SPLITS; s += splits) {
		fc->mine[s] = true;
		fc->nowned++;
	}
	fc->next = split; /* the first index it may own */
	fc->start_ns = mono_ns();
	fc->deadline_ns = g->cfg.duration_ms ?
		fc->start_ns + g->cfg.duration_ms * 1000000u : 0;
	fc->done = fc->nowned == 0;
	return 0;
}

/* How many packets pacing and the deadline allow now; -1 at the deadline. */
static long budget(const struct weir_flowgen *g, const struct fg_core *fc,
		   unsigned max)
{
	uint64_t now, due;

	if (g->cfg.rate_pps == 0 && fc->deadline_ns == 0)
		return max;
	now = mono_ns();
	if (fc->deadline_ns && now >= fc->deadline_ns)
		return -1;
	if (g->cfg.rate_pps == 0)
		return max;
	due = (uint64_t)((double)g->cfg.rate_pps * fc->nowned / SPLITS *
			 (now - fc->start_ns) / 1e9) + 1;
	uint64_t done = fc->c.packets - fc->pace_base;
	if (due <= done)
		return 0;
	return due - done < max ? (long)(due - done) : max;
}

static int fg_next(struct weir_ctx *c, void *recs, int64_t *ts,
		   unsigned max, void *arg)
{
	struct weir_flowgen *g = arg;
	struct fg_core *fc = &g->core[weir_ctx_core(c)];
	uint64_t end = g->cfg.packets ? g->cfg.packets : UINT64_MAX;
	long want;
	unsigned n = 0;

	if (fc->done)
		return WEIR_SOURCE_END;
	want = budget(g, fc, max);
	/* At most SPLITS indexes are skipped per packet kept: bounded. */
	for (; (long)n < want && fc->next < end; fc->next++) {
		if (!fc->mine[fc->next % SPLITS] ||
		    fc->next < fc->from[fc->next % SPLITS])
			continue;
		packet(g, fc->next, (struct weir_flow_obs *)recs + n, &ts[n]);
		n++;
	}
	fc->c.packets += n;
	fc->c.ip += n;
	/* Relaxed: a display value, read by weir_flowgen_progress(). */
	atomic_store_explicit(&fc->published, fc->c.packets,
			      memory_order_relaxed);
	if (n == 0 && (want < 0 || fc->next >= end)) {
		fc->done = true;
		return WEIR_SOURCE_END;
	}
	return (int)n;
}

/* Checkpoint position: per owned split, the first index not produced
 * yet (0 for splits of other cores: the merge is the maximum), and the
 * core's counters (the summary adds them up after a restore). */
struct fg_pos {
	uint64_t resume[SPLITS];
	struct weir_flow_counters c;
};

static int fg_position(struct weir_ctx *c, void *pos, size_t cap, void *arg)
{
	struct weir_flowgen *g = arg;
	struct fg_core *fc = &g->core[weir_ctx_core(c)];
	struct fg_pos p = { .c = fc->c };
	uint64_t base = fc->next - fc->next % SPLITS;

	if (cap < sizeof(p))
		return -ENOSPC;
	for (unsigned s = 0; s < SPLITS; s++) {
		if (!fc->mine[s])
			continue;
		uint64_t i = base + s < fc->next ? base + SPLITS + s : base + s;
		p.resume[s] = i > fc->from[s] ? i : fc->from[s];
	}
	memcpy(pos, &p, sizeof(p));
	return (int)sizeof(p);
}

static int fg_restore(struct weir_ctx *c, const struct weir_source_pos *pos,
		      unsigned nold, void *arg)
{
	struct weir_flowgen *g = arg;
	struct fg_core *fc = &g->core[weir_ctx_core(c)];
	struct fg_pos p, sum = { 0 };

	for (unsigned i = 0; i < nold; i++) {
		if (pos[i].len != sizeof(p))
			return wr_error(-EINVAL, "generator: checkpoint position "
					"of %zu bytes, expected %zu", pos[i].len,
					sizeof(p));
		memcpy(&p, pos[i].bytes, sizeof(p));
		for (unsigned s = 0; s < SPLITS; s++)
			if (p.resume[s] > sum.resume[s])
				sum.resume[s] = p.resume[s];
		sum.c.packets += p.c.packets;
		sum.c.ip += p.c.ip;
	}
	fc->next = UINT64_MAX;
	for (unsigned s = 0; s < SPLITS; s++) {
		if (!fc->mine[s])
			continue;
		fc->from[s] = sum.resume[s];
		uint64_t first = sum.resume[s] ? sum.resume[s] : s;
		fc->next = first < fc->next ? first : fc->next;
	}
	if (fc->next == UINT64_MAX)
		fc->next = 0;
	if (weir_ctx_core(c) == 0) /* the old totals, counted once */
		fc->c = sum.c;
	fc->pace_base = fc->c.packets;
	return 0;
}

int weir_flowgen_add(struct weir_pipeline *p, struct weir_flowgen *g,
		     struct weir_stream **out)
{
	static const struct weir_source_ops ops = {
		.open = fg_open, .next = fg_next,
		.position = fg_position, .restore = fg_restore };

	if (g == NULL)
		return wr_error(-EINVAL, "generator: NULL handle");
	return weir_source(p, "flowgen", &ops, sizeof(struct weir_flow_obs), g,
			   out);
}

void weir_flowgen_counters(const struct weir_flowgen *g,
			   struct weir_flow_counters *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < WEIR_CORES_MAX; i++) {
		out->packets += g->core[i].c.packets;
		out->ip += g->core[i].c.ip;
	}
}

uint64_t weir_flowgen_progress(const struct weir_flowgen *g)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < WEIR_CORES_MAX; i++)
		n += atomic_load_explicit(&g->core[i].published,
					  memory_order_relaxed);
	return n;
}
