/*
 * combine.c — pre-aggregation on the sending side of a key_by edge that
 * feeds a tumbling or sliding window (Flink's local-global aggregation).
 *
 * WHAT
 *   Per core and edge, a 4-way set-associative cache of partial
 *   accumulators keyed by (pane, key), a pane being [k * slide,
 *   (k + 1) * slide): every window containing a pane contains all of it.  A
 *   record whose (pane, key) is cached is added to the cached accumulator
 *   and sends nothing; on a miss the least-hit entry of the set is evicted,
 *   sent as a PARTIAL envelope (payload: u64 records, accumulator padded
 *   to 8, key),
 *   and the record starts a new entry.  The window operator merges a
 *   partial into each window of its pane (agg->merge).  Telemetry traffic is
 *   heavy-tailed: the top 4096 of 100 000 Zipf(1.1) flows carry ~84% of the
 *   packets, so most packets stop here instead of crossing the ring and
 *   probing the window table.  When fewer than 1 in 4 records hit, the cache
 *   is bypassed for a while (uniform keys would only pay for it).
 *
 * WHEN ENTRIES MUST GO (what keeps the results exact)
 *   1. Before the sender sends watermark W on the edge: every entry whose
 *      pane's first window ends by W (pane + slide - 1 <= W), else its
 *      records would reach a window the watermark already fired.
 *      Entries of later panes may stay: their records are > W.
 *   2. Before a checkpoint barrier on the edge, and before END: all of them
 *      (the snapshot holds no partials; sources are stopped by then, so
 *      the cache empties).
 *   wr_comb_flush() sends what the out buffers have room for; the marker
 *   waits (a later tick) until nothing it covers is left.
 *
 * INVARIANTS
 *   1. An entry's accumulator holds exactly its `records` records, all of
 *      its pane and key, none of which was sent otherwise.
 *   2. used = entries with records > 0; min_pane <= every used entry's pane.
 */
#include <errno.h>
#include <string.h>

#include "core/error.h"
#include "core/exec_internal.h"
#include "core/window_internal.h"

#define WAYS 4u
#define PROBE_RECORDS 65536u   /* records per hit-rate sample */
#define BYPASS_RECORDS (1u << 20) /* records sent straight after a bad one */

/*
 * LAYOUT: per set, one cache line of tags (4 x u64 tag = hash ^ mix(pane),
 * 4 x u32 records, 0 = free), and 4 entries [i64 pane][acc][key] apart: 64
 * bytes for flow keys (16-byte acc, 40-byte key).  4096 entries: 64 KiB of
 * tags (L2, mostly L1) + 256 KiB of entries, where [hash|pane|records|acc|
 * key] entries took 128 bytes each, 512 KiB, and every lookup missed L2
 * (perf: 17% of the cycles of a 1-core flows job in wr_comb_add).
 */
struct tags {
	uint64_t tag[WAYS];
	uint32_t records[WAYS];
	uint8_t pad[64 - WAYS * 12];
};
_Static_assert(sizeof(struct tags) == 64, "one line of tags per set");

struct wr_combiner {
	const struct wr_win_spec *ws;
	struct tags *t;          /* nsets lines */
	uint8_t *e;              /* nsets * WAYS entries of esize bytes */
	uint32_t nsets, esize;
	uint32_t acc_off, key_off; /* in an entry, after the i64 pane */
	uint32_t key_size, acc_size;
	int64_t slide;
	int64_t pane_lo;         /* the last pane computed: [lo, lo + slide) */
	uint32_t used;
	int64_t min_pane;
	uint32_t cursor;         /* flush scan position (an entry index) */
	uint64_t seen, hits;     /* this sample */
	uint64_t bypass;         /* records still to send straight */
};

static inline uint8_t *entry_at(const struct wr_combiner *c, uint32_t i)
{
	return c->e + (size_t)i * c->esize;
}

static inline uint64_t pane_mix(int64_t pane)
{
	return (uint64_t)pane * 0x9e3779b97f4a7c15ull;
}

static inline int64_t pane_at(const uint8_t *e)
{
	int64_t p;

	memcpy(&p, e, 8);
	return p;
}

/* ---- building ---- */

/* Can key_by kb combine?  Its only reader is an aligned window whose
 * aggregate merges, with no late side output (a partial is not a record). */
const struct wr_win_spec *wr_comb_window(const struct weir_stream *kb)
{
	const struct weir_stream *n;
	const struct wr_win_spec *ws;

	if (kb->kind != WR_NODE_KEY_BY || kb->key_size == 0 || kb->ndown != 1)
		return NULL;
	n = kb->down[0];
	if (n->kind != WR_NODE_WINDOW)
		return NULL;
	ws = n->owned_arg;
	return ws->agg.merge != NULL && ws->side == NULL ? ws : NULL;
}

uint32_t wr_comb_payload_size(const struct weir_stream *kb)
{
	const struct wr_win_spec *ws = wr_comb_window(kb);

	return ws ? 8 + ((ws->agg.acc_size + 7) & ~7u) + kb->key_size : 0;
}

static struct wr_combiner *comb_alloc(struct wr_exec *x, uint32_t sets,
				      uint32_t esize)
{
	struct wr_combiner *c = weir_worker_alloc_local(x->w, sizeof(*c));

	if (c == NULL)
		return NULL;
	memset(c, 0, sizeof(*c));
	c->t = weir_worker_alloc_local(x->w, (size_t)sets * sizeof(*c->t));
	c->e = weir_worker_alloc_local(x->w, (size_t)sets * WAYS * esize);
	if (c->t == NULL || c->e == NULL) {
		weir_worker_free_local(x->w, c->t);
		weir_worker_free_local(x->w, c->e);
		weir_worker_free_local(x->w, c);
		return NULL;
	}
	memset(c->t, 0, (size_t)sets * sizeof(*c->t));
	memset(c->e, 0, (size_t)sets * WAYS * esize);
	return c;
}

int wr_comb_create(struct wr_exec *x, const struct weir_stream *kb,
		   struct wr_combiner **out)
{
	const struct wr_win_spec *ws = wr_comb_window(kb);
	uint32_t entries = x->p->cfg.combine_entries, sets = 1;
	uint32_t acc = ws ? (ws->agg.acc_size + 7) & ~7u : 0;
	uint32_t esize = (8 + acc + kb->key_size + 7) & ~7u;
	struct wr_combiner *c;

	*out = NULL;
	if (ws == NULL || entries < WAYS)
		return 0;
	while (sets * 2 * WAYS <= entries)
		sets *= 2;
	if (esize <= 64) /* a line each: never across two */
		esize = 64;
	c = comb_alloc(x, sets, esize);
	if (c == NULL)
		return -ENOMEM;
	c->ws = ws;
	c->nsets = sets;
	c->esize = esize;
	c->key_size = kb->key_size;
	c->acc_size = ws->agg.acc_size;
	c->acc_off = 8;
	c->key_off = 8 + acc;
	c->slide = ws->spec.kind == WEIR_WINDOW_SLIDING ? ws->spec.slide_ms
							: ws->spec.size_ms;
	c->pane_lo = WEIR_TS_MIN;
	c->min_pane = WEIR_TS_MAX;
	*out = c;
	return 0;
}

void wr_comb_destroy(struct wr_exec *x, struct wr_combiner *c)
{
	if (c == NULL)
		return;
	weir_worker_free_local(x->w, c->t);
	weir_worker_free_local(x->w, c->e);
	weir_worker_free_local(x->w, c);
}

/* ---- sending ---- */

/* Entry i as a PARTIAL envelope to the core owning its key group, and
 * freed; -EOVERFLOW (nothing done) if that out buffer is full. */
static int send_entry(struct wr_exec *x, const struct weir_stream *kb,
		      struct wr_combiner *c, uint32_t i)
{
	struct tags *t = &c->t[i / WAYS];
	const uint8_t *e = entry_at(c, i);
	int64_t pane = pane_at(e);
	uint64_t hash = t->tag[i % WAYS] ^ pane_mix(pane);
	uint64_t records = t->records[i % WAYS];
	uint32_t kg = (uint32_t)(hash & (x->p->cfg.key_groups - 1));
	unsigned d = (unsigned)(((uint64_t)kg * x->n) >> x->kg_shift);
	uint8_t *p;

	if (WEIR_UNLIKELY(x->out[d].n == x->out[d].cap))
		return -EOVERFLOW;
	p = wr_exec_stage_slot(x, d, kb->edge | WR_ENV_PARTIAL, kg, pane, hash);
	memcpy(p, &records, 8);
	/* [acc, padded to 8][key]: contiguous in the entry as in the payload */
	memcpy(p + 8, e + c->acc_off, c->key_off - c->acc_off + c->key_size);
	t->records[i % WAYS] = 0;
	c->used--;
	return 0;
}

/* ---- the record path ---- */

static inline int64_t pane_of(struct wr_combiner *c, int64_t ts)
{
	return wr_pane_start(&c->pane_lo, c->slide, ts);
}

static inline uint32_t set_of(const struct wr_combiner *c, uint64_t tag)
{
	return (uint32_t)(tag >> 32) & (c->nsets - 1);
}

/* Where a record of (hash, ts) goes: computed once per record, in the
 * burst's prefetch pass, and used again to add it. */
struct probe {
	int64_t pane;
	uint64_t tag;
	uint32_t set;
	uint8_t *ent; /* the set's first entry */
};

static inline struct probe locate(struct wr_combiner *c, uint64_t hash,
				  int64_t ts)
{
	struct probe pr;

	pr.pane = pane_of(c, ts);
	pr.tag = hash ^ pane_mix(pr.pane);
	pr.set = set_of(c, pr.tag);
	pr.ent = entry_at(c, pr.set * WAYS);
	return pr;
}

/* The tag line of a set and its four entries (one 256-byte run): no
 * dependent load, so the five lines arrive together (1 core, 20 M packets:
 * 10.36 Mpps median against 9.77 with the tag line alone: bench/ab.sh 5
 * with builds of 68c988c and its parent; a second pass prefetching only the matching entry once the tags
 * were in was slower: it had to wait for them). */
static inline void prefetch_set(const struct wr_combiner *c,
				const struct probe *pr)
{
	wr_prefetch_write(&c->t[pr->set]);
	for (uint32_t w = 0; w < WAYS; w++)
		wr_prefetch_write(pr->ent + (size_t)w * c->esize);
}

/* Way w of set s takes (tag, pane, key) with rec as its first record. */
static void fill(struct wr_combiner *c, uint32_t s, uint32_t w, uint64_t tag,
		 int64_t pane, const void *key, const void *rec)
{
	const struct weir_aggregate_ops *agg = &c->ws->agg;
	uint8_t *e = entry_at(c, s * WAYS + w);

	c->t[s].tag[w] = tag;
	c->t[s].records[w] = 1;
	memcpy(e, &pane, 8);
	memcpy(e + c->key_off, key, c->key_size);
	agg->create(e + c->acc_off, c->ws->spec.arg);
	agg->add(e + c->acc_off, rec, c->ws->spec.arg);
	c->used++;
	if (pane < c->min_pane)
		c->min_pane = pane;
}

/* The way of pr's set holding (pane, key), or WAYS.  Tags first: the key
 * is compared only on a tag match (~1 way a lookup).  The pane is not: the
 * same key has the same hash, and pane_mix() is a bijection (an odd
 * multiplier mod 2^64), so equal tags of equal keys mean equal panes. */
static inline uint32_t find(const struct wr_combiner *c,
			    const struct probe *pr, const void *key)
{
	const struct tags *t = &c->t[pr->set];

	for (uint32_t w = 0; w < WAYS; w++) {
		const uint8_t *e = pr->ent + (size_t)w * c->esize;
		if (t->tag[w] == pr->tag && t->records[w] &&
		    wr_key_eq(e + c->key_off, key, c->key_size))
			return w;
	}
	return WAYS;
}

/* The least-used way (the first of them). */
static inline uint32_t victim_of(const struct tags *t)
{
	uint32_t v = 0;

	for (uint32_t w = 1; w < WAYS; w++)
		if (t->records[w] < t->records[v])
			v = w;
	return v;
}

/* How many of the next n records go straight (the first ones), while the
 * cache is bypassed; the others count towards the hit-rate sample, which
 * bypasses it for BYPASS_RECORDS when fewer than 1 in 4 hit.  Taken per
 * burst, not per record (~6 instructions a record less). */
static inline uint32_t bypassed(struct wr_combiner *c, uint32_t n)
{
	uint32_t k = c->bypass < n ? (uint32_t)c->bypass : n;

	c->bypass -= k;
	c->seen += n - k;
	if (WEIR_UNLIKELY(c->seen >= PROBE_RECORDS)) {
		if (c->hits < c->seen / 4)
			c->bypass = BYPASS_RECORDS;
		c->seen = c->hits = 0;
	}
	return k;
}

/* Adds the record (not bypassed) to its entry: 0, or -EOVERFLOW when the
 * out buffer its eviction goes to is full (the amp rule makes that a
 * bug). */
static inline int add_at(struct wr_exec *x, const struct weir_stream *kb,
			 struct wr_combiner *c, const void *rec,
			 const void *key, const struct probe *pr)
{
	struct tags *t = &c->t[pr->set];
	uint32_t w = find(c, pr, key);

	if (w < WAYS) {
		c->ws->agg.add(pr->ent + (size_t)w * c->esize + c->acc_off,
			       rec, c->ws->spec.arg);
		c->hits++;
		/* Sent before its u32 count wraps (this record's one
		 * envelope of room). */
		if (++t->records[w] == UINT32_MAX)
			return send_entry(x, kb, c, pr->set * WAYS + w);
		return 0;
	}
	w = victim_of(t);
	if (t->records[w] && send_entry(x, kb, c, pr->set * WAYS + w))
		return -EOVERFLOW;
	fill(c, pr->set, w, pr->tag, pr->pane, key, rec);
	return 0;
}

int wr_comb_add(struct wr_exec *x, const struct weir_stream *kb,
		struct wr_combiner *c, const void *rec, const void *key,
		uint64_t hash, int64_t ts)
{
	struct probe pr;

	if (bypassed(c, 1))
		return 0;
	pr = locate(c, hash, ts);
	return add_at(x, kb, c, rec, key, &pr) ? -EOVERFLOW : 1;
}

/* Two passes: every record's set located and prefetched, then each added
 * (its probe reused: pane, tag and set were computed twice before, with a
 * call per record from exec.c's staging on top). */
int wr_comb_add_burst(struct wr_exec *x, const struct weir_stream *kb,
		      struct wr_combiner *c, const struct wr_keyed_burst *b)
{
	struct probe pr[WR_BURST];
	uint32_t k = bypassed(c, b->n);
	int err = 0;

	for (uint32_t i = 0; err == 0 && i < k; i++)
		err = wr_exec_stage_keyed(x, kb,
					  b->recs + (size_t)i * b->rec_size,
					  b->hash[i], b->ts[i]);
	for (uint32_t i = k; i < b->n; i++) {
		pr[i] = locate(c, b->hash[i], b->ts[i]);
		prefetch_set(c, &pr[i]);
	}
	for (uint32_t i = k; err == 0 && i < b->n; i++)
		err = add_at(x, kb, c, b->recs + (size_t)i * b->rec_size,
			     b->keys + (size_t)i * kb->key_size, &pr[i]);
	return err;
}

/* ---- flushing ---- */

bool wr_comb_holds(const struct wr_combiner *c, int64_t upto)
{
	return c != NULL && c->used > 0 &&
	       (upto == WEIR_TS_MAX || c->min_pane + c->slide - 1 <= upto);
}

/* Sends the entries due by upto (all: WEIR_TS_MAX) that `room` envelopes
 * allow.  True when none is left. */
bool wr_comb_flush(struct wr_exec *x, const struct weir_stream *kb,
		   struct wr_combiner *c, int64_t upto, uint32_t room)
{
	uint32_t n = c->nsets * WAYS;
	int64_t min = WEIR_TS_MAX;
	bool all = true;

	if (!wr_comb_holds(c, upto))
		return true;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = (c->cursor + k) % n;
		if (c->t[i / WAYS].records[i % WAYS] == 0)
			continue;
		int64_t pane = pane_at(entry_at(c, i));
		bool due = upto == WEIR_TS_MAX || pane + c->slide - 1 <= upto;
		if (due && room > 0 && send_entry(x, kb, c, i) == 0) {
			room--;
			continue;
		}
		if (due && all) {
			all = false;
			c->cursor = i; /* resume here next time */
		}
		if (pane < min)
			min = pane;
	}
	if (all)
		c->min_pane = min;
	return all;
}
