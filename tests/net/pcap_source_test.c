/*
 * pcap_source_test.c — the capture-file source read in parallel
 * (net/pcap_source.c).
 *
 * TEST PLAN
 *   The model is one reader (weir_pcap_next + weir_parse) over the same
 *   file: the records by frame, the counters, the error and its message.
 *   Captures come from captures.h, where every record names its frame.
 *   Most tests simulate the cores on one thread through
 *   net/pcap_source_internal.h: a seeded random schedule calls core c's
 *   next() with a random burst, cores at different speeds (so the index
 *   ring fills and cores lag), which is an interleaving the engine could
 *   produce; core 0's calls build the index as they do on a runtime.
 *   1. Any core count gives the model's records exactly once and its
 *      counters: 1, 2, 3, 5, 64 and 65 cores (65: a core without splits)
 *      on classic µs LE, ns BE, pcapng starting LE and BE; 0 frames, fewer
 *      than a chunk, exactly C, C + 1, 3C + 1 (C = 4096); and on 3000
 *      frames with 7-frame chunks and rings of 2 and 5 entries.  Each
 *      core's records come in frame order, and frame i comes from the core
 *      owning chunk i / C: ((i / C) % 64) % cores.
 *   2. A truncated last record counts truncated=1 on any core count; a
 *      corrupt record in the middle of a later chunk fails with the
 *      model's code and message, no record past it, and
 *      weir_pcap_source_error() reports it.
 *   3. Checkpoints across core counts: each core is cut at its own moment
 *      (its position taken, then it stops, as the engine cuts), the
 *      positions restored onto another count (every pair of 1, 2, 3, 5,
 *      64, 65; some chains of two restores): the records of all runs are
 *      the model's exactly once, and the last run's counters are the
 *      model's.  Small chunks (so splits are partway through chunks) and
 *      3C + 1 frames at the real size.
 *   4. Positions that cannot be a checkpoint of this source are refused:
 *      a split missing, a split twice, another chunk size, another length.
 *   5. On the runtime: 1 and 2 cores (threads; run under TSan) give the
 *      model's records, each core in frame order from its own chunks, the
 *      counters, and progress at the end = the whole file; paced (--rate)
 *      the same records; --duration ends the input early.
 *   6. weir_pcap_source_seek() moves the origin: a run starts there.
 *   8. A stream (a FIFO fed in random pieces): on the runtime with 1 and
 *      2 cores every record comes from core 0, in frame order, as the
 *      model's; the counters are the model's, progress counts every byte
 *      and no file size; the source is not replayable.  Stopped midway
 *      (weir_pcap_source_stop), it ends with the records read so far.
 *   7. Every file of the tcpdump corpus (when present, see corpus.h; odd
 *      link types, broken files) on 2, 3 and 65 simulated cores with
 *      chunks of 1, 3 and 4096 frames: the model's records as a multiset,
 *      its counters, and for a broken file its error code and message.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "net/pcap_source_internal.h"
#include "captures.h"
#include "corpus.h"
#include "stream_feed.h"

#define BURST 32u
#define CORES_SIM_MAX 65u

/* ---- model: one reader ---- */

struct model {
	uint64_t frames;
	struct weir_flow_obs *obs; /* by frame */
	int64_t *ts;
	bool *rec;                 /* frame i makes a record */
	uint64_t nrec;
	struct weir_flow_counters c;
	int err;
	char msg[512];
};

/* A record of the single reader (m->frames is its frame's index). */
typedef void (*model_rec_fn)(struct model *m, const struct weir_packet *pkt,
			     const struct weir_frame *f, void *arg);

/* The single reader over the file: its counters, error and each record. */
static void model_walk(struct model *m, struct weir_pcap *r,
		       model_rec_fn on_rec, void *arg)
{
	struct weir_pcap_stats st;
	struct weir_packet pkt;
	struct weir_frame f;
	int rc;

	while ((rc = weir_pcap_next(r, &f)) == 1) {
		int v = weir_parse(f.data, f.caplen, f.wire_len, f.linktype,
				   &pkt);
		m->c.packets++;
		if (v == WEIR_PARSE_OK) {
			on_rec(m, &pkt, &f, arg);
			m->c.ip++;
		} else if (v == WEIR_PARSE_NON_IP) {
			m->c.non_ip++;
		} else {
			m->c.malformed++;
		}
		m->frames++;
	}
	if (rc < 0) {
		m->err = rc;
		snprintf(m->msg, sizeof(m->msg), "%s", weir_last_error());
	}
	weir_pcap_get_stats(r, &st);
	m->c.unsupported = st.unsupported;
	m->c.truncated = st.truncated;
	weir_pcap_close(r);
}

static void model_rec(struct model *m, const struct weir_packet *pkt,
		      const struct weir_frame *f, void *arg)
{
	(void)arg;
	cr_assert_eq(tc_index(&pkt->key), m->frames);
	m->obs[m->frames].key = pkt->key;
	m->obs[m->frames].ip_bytes = pkt->ip_bytes;
	m->ts[m->frames] = (int64_t)(f->ts_ns / 1000000u);
	m->rec[m->frames] = true;
	m->nrec++;
}

static void model_build(struct model *m, const char *path)
{
	struct weir_pcap *r;
	size_t cap;

	memset(m, 0, sizeof(*m));
	cr_assert_eq(weir_pcap_open(path, &r), 0, "%s", weir_last_error());
	cap = weir_pcap_size(r) / 16 + 1;
	m->obs = calloc(cap, sizeof(*m->obs));
	m->ts = calloc(cap, sizeof(*m->ts));
	m->rec = calloc(cap, sizeof(*m->rec));
	model_walk(m, r, model_rec, NULL);
}

static void model_free(struct model *m)
{
	free(m->obs);
	free(m->ts);
	free(m->rec);
}

static void expect_counters(const struct weir_flow_counters *got,
			    const struct weir_flow_counters *want)
{
	cr_assert_eq(got->packets, want->packets, "packets %llu, want %llu",
		     (unsigned long long)got->packets,
		     (unsigned long long)want->packets);
	cr_assert_eq(got->ip, want->ip);
	cr_assert_eq(got->malformed, want->malformed);
	cr_assert_eq(got->non_ip, want->non_ip);
	cr_assert_eq(got->unsupported, want->unsupported,
		     "unsupported %llu, want %llu",
		     (unsigned long long)got->unsupported,
		     (unsigned long long)want->unsupported);
	cr_assert_eq(got->truncated, want->truncated);
}

/* ---- what every run checks: each record once, from its chunk's owner ---- */

struct rec {
	struct weir_flow_obs o;
	int64_t ts;
};

struct seen {
	const struct model *m;
	uint32_t chunk;   /* frames per chunk */
	uint8_t *once;    /* by frame */
	uint64_t got;
	uint64_t origin;  /* first frame of the run (seek) */
	struct rec *all;  /* collect instead (records not naming frames) */
	size_t nall, cap;
};

static void seen_init(struct seen *v, const struct model *m, uint32_t chunk)
{
	memset(v, 0, sizeof(*v));
	v->m = m;
	v->chunk = chunk;
	v->once = calloc(m->frames + 1, 1);
}

static void check_record(struct seen *v, unsigned core, unsigned ncores,
			 const struct weir_flow_obs *o, int64_t ts,
			 uint64_t *last)
{
	uint64_t i = tc_index(&o->key);

	if (v->all != NULL) {
		cr_assert_lt(v->nall, v->cap);
		v->all[v->nall].o = *o;
		v->all[v->nall++].ts = ts;
		return;
	}
	cr_assert_lt(i, v->m->frames, "record of frame %llu",
		     (unsigned long long)i);
	cr_assert(v->m->rec[i], "frame %llu made no record in the model",
		  (unsigned long long)i);
	cr_assert_eq(memcmp(o, &v->m->obs[i], sizeof(*o)), 0);
	cr_assert_eq(ts, v->m->ts[i]);
	cr_assert_eq(v->once[i], 0, "frame %llu twice", (unsigned long long)i);
	cr_assert(wr_psrc_owned_splits(core, ncores) >>
		  ((i - v->origin) / v->chunk % WEIR_GENERATOR_SPLITS) & 1,
		  "frame %llu on core %u of %u", (unsigned long long)i, core,
		  ncores);
	cr_assert(*last == UINT64_MAX || i > *last,
		  "core %u: frame %llu after %llu", core,
		  (unsigned long long)i, (unsigned long long)*last);
	*last = i;
	v->once[i] = 1;
	v->got++;
}

static void seen_complete(const struct seen *v)
{
	for (uint64_t i = v->origin; i < v->m->frames; i++)
		cr_assert_eq(v->once[i], v->m->rec[i], "frame %llu: %d, want %d",
			     (unsigned long long)i, v->once[i], v->m->rec[i]);
}

/* ---- simulated cores ---- */

struct sim {
	struct weir_pcap_source *s;
	unsigned n;
	uint64_t rng;
	unsigned weight[CORES_SIM_MAX]; /* relative speed */
	bool ended[CORES_SIM_MAX], cut[CORES_SIM_MAX];
	uint64_t last[CORES_SIM_MAX];
	char pos[CORES_SIM_MAX][WEIR_SOURCE_POS_MAX];
	int pos_len[CORES_SIM_MAX];
};

static uint64_t rnd(uint64_t *x)
{
	*x = *x * 6364136223846793005ull + 1442695040888963407ull;
	return *x >> 33;
}

static struct weir_pcap_source *source(const char *path, uint32_t chunk,
				       uint32_t ring)
{
	struct weir_pcap_source *s;

	cr_assert_eq(weir_pcap_source_open(path, NULL, &s), 0, "%s",
		     weir_last_error());
	if (chunk != WR_PSRC_CHUNK_FRAMES || ring != WR_PSRC_RING)
		cr_assert_eq(wr_psrc_geometry(s, chunk, ring), 0);
	return s;
}

/* Open n cores (and restore them from `from` when given). */
static void sim_open(struct sim *x, struct weir_pcap_source *s, unsigned n,
		     uint64_t seed, const struct sim *from)
{
	struct weir_source_pos pos[CORES_SIM_MAX];

	memset(x, 0, sizeof(*x));
	x->s = s;
	x->n = n;
	x->rng = seed;
	for (unsigned c = 0; c < n; c++) {
		x->weight[c] = 1 + (unsigned)(rnd(&x->rng) % 8);
		x->last[c] = UINT64_MAX;
		cr_assert_eq(wr_psrc_open(s, c, n), 0, "%s", weir_last_error());
	}
	if (from == NULL)
		return;
	for (unsigned c = 0; c < from->n; c++) {
		cr_assert(from->cut[c]);
		pos[c].bytes = from->pos[c];
		pos[c].len = (size_t)from->pos_len[c];
	}
	for (unsigned c = 0; c < n; c++)
		cr_assert_eq(wr_psrc_restore(s, c, pos, from->n), 0, "%s",
			     weir_last_error());
}

static void sim_cut(struct sim *x, unsigned c)
{
	x->pos_len[c] = wr_psrc_position(x->s, c, x->pos[c],
					 WEIR_SOURCE_POS_MAX);
	cr_assert_gt(x->pos_len[c], 0);
	x->cut[c] = true;
}

/*
 * Run until every core ended (0) or a core failed (its -errno).  cut_at > 0:
 * after that many calls, cut the cores one by one at random moments and
 * return 1 once all are cut.
 */
static int sim_run(struct sim *x, struct seen *v, uint64_t cut_at)
{
	unsigned wsum = 0, live = x->n, idle = 0;
	struct weir_flow_obs recs[BURST];
	int64_t ts[BURST];

	for (unsigned c = 0; c < x->n; c++)
		wsum += x->weight[c];
	for (uint64_t step = 1; live > 0; step++) {
		unsigned pick = (unsigned)(rnd(&x->rng) % wsum), c = 0;
		while (pick >= x->weight[c])
			pick -= x->weight[c++];
		if (cut_at && step >= cut_at && rnd(&x->rng) % 4 == 0) {
			unsigned k = (unsigned)(rnd(&x->rng) % x->n);
			while (x->cut[k])
				k = (k + 1) % x->n;
			sim_cut(x, k);
			if (!x->ended[k])
				live--;
			bool all = true;
			for (unsigned i = 0; i < x->n; i++)
				all &= x->cut[i];
			if (all)
				return 1;
			continue;
		}
		if (x->ended[c] || x->cut[c])
			continue;
		int rc = wr_psrc_next(x->s, c, recs, ts,
				      1 + (unsigned)(rnd(&x->rng) % BURST));
		if (rc == WEIR_SOURCE_END) {
			x->ended[c] = true;
			live--;
			continue;
		}
		if (rc < 0)
			return rc;
		for (int i = 0; i < rc; i++)
			check_record(v, c, x->n, &recs[i], ts[i], &x->last[c]);
		idle = rc > 0 ? 0 : idle + 1;
		cr_assert_lt(idle, 5000000u, "no core makes progress");
	}
	if (cut_at == 0)
		return 0;
	for (unsigned c = 0; c < x->n; c++) /* ended before their cut */
		if (!x->cut[c])
			sim_cut(x, c);
	return 1;
}

static void sim_counters(const struct sim *x, const struct model *m)
{
	struct weir_flow_counters c;

	weir_pcap_source_counters(x->s, &c);
	expect_counters(&c, &m->c);
}

/* ---- 1. any core count ---- */

static const unsigned core_counts[] = { 1, 2, 3, 5, 64, 65 };
#define NCOUNTS (sizeof(core_counts) / sizeof(core_counts[0]))

enum kind { K_US_LE, K_NS_BE, K_NG_LE, K_NG_BE, K_KINDS };

static void write_kind(struct tcap *c, enum kind k, uint64_t frames)
{
	if (k == K_US_LE)
		tc_classic(c, WEIR_CAPTURE_PCAP_US, false, frames);
	else if (k == K_NS_BE)
		tc_classic(c, WEIR_CAPTURE_PCAP_NS, true, frames);
	else
		tc_pcapng(c, k == K_NG_BE, frames);
}

static void run_all_counts(const char *path, const struct model *m,
			   uint32_t chunk, uint32_t ring, uint64_t seed)
{
	for (unsigned i = 0; i < NCOUNTS; i++) {
		struct weir_pcap_source *s = source(path, chunk, ring);
		struct seen v;
		struct sim x;

		seen_init(&v, m, chunk);
		sim_open(&x, s, core_counts[i], seed + i, NULL);
		cr_assert_eq(sim_run(&x, &v, 0), 0, "%s", weir_last_error());
		seen_complete(&v);
		sim_counters(&x, m);
		free(v.once);
		weir_pcap_source_close(s);
	}
}

Test(pcap_source, any_core_count_gives_the_model, .timeout = 120)
{
	static const uint64_t sizes[] = { 0, 100, 4096, 4097, 3 * 4096 + 1 };
	char path[64];
	struct model m;
	struct tcap c;

	for (int k = 0; k < K_KINDS; k++) {
		for (unsigned z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
			write_kind(&c, (enum kind)k, sizes[z]);
			tc_file(&c, path, sizeof(path));
			model_build(&m, path);
			cr_assert_eq(m.frames, sizes[z]);
			run_all_counts(path, &m, WR_PSRC_CHUNK_FRAMES,
				       WR_PSRC_RING, 100 * (uint64_t)k + z);
			model_free(&m);
			unlink(path);
			free(c.buf);
		}
	}
}

Test(pcap_source, small_chunks_and_rings, .timeout = 120)
{
	char path[64];
	struct model m;
	struct tcap c;

	for (int k = 0; k < K_KINDS; k++) {
		write_kind(&c, (enum kind)k, 3000);
		tc_file(&c, path, sizeof(path));
		model_build(&m, path);
		run_all_counts(path, &m, 7, 2, 7 + (uint64_t)k);
		run_all_counts(path, &m, 7, 5, 17 + (uint64_t)k);
		run_all_counts(path, &m, 1, 3, 27 + (uint64_t)k);
		model_free(&m);
		unlink(path);
		free(c.buf);
	}
}

/* ---- 2. truncated and corrupt files ---- */

/* Position of frame j (the block or record that comes next). */
static struct weir_pcap_pos frame_pos(const char *path, uint64_t j)
{
	struct weir_pcap_pos p;
	struct weir_pcap *r;
	struct weir_frame f;

	cr_assert_eq(weir_pcap_open(path, &r), 0);
	for (uint64_t i = 0; i < j; i++)
		cr_assert_eq(weir_pcap_next(r, &f), 1);
	weir_pcap_tell(r, &p);
	weir_pcap_close(r);
	return p;
}

static void rewrite(const char *path, const char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	fclose(f);
}

Test(pcap_source, truncated_last_record, .timeout = 60)
{
	char path[64];
	struct model m;
	struct tcap c;

	for (int k = 0; k < K_KINDS; k++) {
		write_kind(&c, (enum kind)k, 2 * 4096 + 10);
		tc_file(&c, path, sizeof(path));
		struct weir_pcap_pos p = frame_pos(path, 2 * 4096 + 9);
		rewrite(path, c.buf, p.offset + 30); /* cut the last record */
		model_build(&m, path);
		cr_assert_eq(m.c.truncated, 1);
		cr_assert_eq(m.frames, 2 * 4096 + 9);
		run_all_counts(path, &m, WR_PSRC_CHUNK_FRAMES, WR_PSRC_RING,
			       31 + (uint64_t)k);
		run_all_counts(path, &m, 7, 4, 41 + (uint64_t)k);
		model_free(&m);
		unlink(path);
		free(c.buf);
	}
}

static void check_corrupt(const char *path, const struct model *m,
			  uint64_t bad, uint32_t chunk, uint32_t ring)
{
	for (unsigned i = 0; i < NCOUNTS; i++) {
		struct weir_pcap_source *s = source(path, chunk, ring);
		struct seen v;
		struct sim x;

		seen_init(&v, m, chunk);
		sim_open(&x, s, core_counts[i], 51 + i, NULL);
		int rc = sim_run(&x, &v, 0);
		cr_assert_eq(rc, m->err, "%d cores: rc %d, want %d (%s)",
			     core_counts[i], rc, m->err, weir_last_error());
		cr_assert_str_eq(weir_last_error(), m->msg);
		cr_assert_eq(weir_pcap_source_error(s), m->err);
		for (uint64_t f = bad; f < m->frames; f++)
			cr_assert_eq(v.once[f], 0, "frame %llu after the error",
				     (unsigned long long)f);
		free(v.once);
		weir_pcap_source_close(s);
	}
}

Test(pcap_source, corrupt_record_in_a_later_chunk, .timeout = 60)
{
	const uint64_t bad = 2 * 4096 + 2048; /* the middle of chunk 2 */
	char path[64];
	struct model m;
	struct tcap c;

	for (int k = 0; k < K_KINDS; k++) {
		write_kind(&c, (enum kind)k, 4 * 4096);
		tc_file(&c, path, sizeof(path));
		struct weir_pcap_pos p = frame_pos(path, bad);
		bool ng = k >= K_NG_LE;
		/* classic: an absurd caplen; pcapng: an impossible block
		 * length, in the byte order of that section */
		bool be = ng ? (uint8_t)c.buf[p.section_offset + 8] == 0x1a
			     : k == K_NS_BE;
		tc_st32(c.buf + p.offset + (ng ? 4 : 8), ng ? 7 : 0xfffffff0u,
			be);
		rewrite(path, c.buf, c.len);
		model_build(&m, path);
		cr_assert_eq(m.err, -EBADMSG);
		cr_assert_eq(m.frames, bad);
		check_corrupt(path, &m, bad, WR_PSRC_CHUNK_FRAMES, WR_PSRC_RING);
		check_corrupt(path, &m, bad, 7, 3);
		model_free(&m);
		unlink(path);
		free(c.buf);
	}
}

/* ---- 3. checkpoints across core counts ---- */

/* Run on n[0] cores, cut, restore on n[1], ... (cut again unless last);
 * all records exactly once, the last run's counters = the model's. */
static void check_chain(const char *path, const struct model *m,
			uint32_t chunk, uint32_t ring, const unsigned *n,
			unsigned runs, uint64_t seed)
{
	struct weir_pcap_source *s[4];
	static struct sim x[4];
	struct seen v;

	seen_init(&v, m, chunk);
	for (unsigned r = 0; r < runs; r++) {
		s[r] = source(path, chunk, ring);
		sim_open(&x[r], s[r], n[r], seed * 31 + r, r ? &x[r - 1] : NULL);
		uint64_t cut = r + 1 < runs ?
			1 + rnd(&x[r].rng) % (m->frames / 4 + 2) : 0;
		cr_assert_eq(sim_run(&x[r], &v, cut), cut ? 1 : 0, "%s",
			     weir_last_error());
	}
	seen_complete(&v);
	sim_counters(&x[runs - 1], m);
	for (unsigned r = 0; r < runs; r++)
		weir_pcap_source_close(s[r]);
	free(v.once);
}

Test(pcap_source, checkpoints_across_core_counts, .timeout = 240)
{
	char path[64];
	struct model m;
	struct tcap c;

	for (int k = K_NS_BE; k <= K_NG_BE; k += K_NG_BE - K_NS_BE) {
		write_kind(&c, (enum kind)k, 3000);
		tc_file(&c, path, sizeof(path));
		model_build(&m, path);
		for (unsigned a = 0; a < NCOUNTS; a++)
			for (unsigned b = 0; b < NCOUNTS; b++)
				for (uint64_t t = 0; t < 3; t++) {
					unsigned n[2] = { core_counts[a],
							  core_counts[b] };
					check_chain(path, &m, 7, 4, n, 2,
						    (a * NCOUNTS + b) * 3 + t);
				}
		for (uint64_t t = 0; t < 20; t++) {
			unsigned n[3] = { core_counts[t % NCOUNTS],
					  core_counts[(t / 2) % NCOUNTS],
					  core_counts[(t * 7 + 1) % NCOUNTS] };
			check_chain(path, &m, 5, 3, n, 3, 1000 + t);
		}
		model_free(&m);
		unlink(path);
		free(c.buf);
	}
}

Test(pcap_source, checkpoints_at_the_real_chunk_size, .timeout = 120)
{
	static const unsigned pairs[][2] = { { 1, 2 }, { 2, 1 }, { 2, 3 },
					     { 3, 2 }, { 2, 2 }, { 5, 64 } };
	char path[64];
	struct model m;
	struct tcap c;

	for (int k = K_US_LE; k < K_KINDS; k += 3) {
		write_kind(&c, (enum kind)k, 3 * 4096 + 1);
		tc_file(&c, path, sizeof(path));
		model_build(&m, path);
		for (unsigned i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
			for (uint64_t t = 0; t < 3; t++)
				check_chain(path, &m, WR_PSRC_CHUNK_FRAMES,
					    WR_PSRC_RING, pairs[i], 2,
					    5000 + i * 3 + t);
		model_free(&m);
		unlink(path);
		free(c.buf);
	}
}

/* ---- 4. positions that are not this source's ---- */

static void expect_refused(struct weir_pcap_source *s,
			   const struct weir_source_pos *pos, unsigned nold,
			   const char *why)
{
	cr_assert_eq(wr_psrc_open(s, 0, 1), 0);
	cr_assert_eq(wr_psrc_restore(s, 0, pos, nold), -EINVAL, "%s", why);
	cr_assert(strstr(weir_last_error(), why) != NULL, "message: %s",
		  weir_last_error());
}

Test(pcap_source, restore_refuses_foreign_positions)
{
	struct weir_source_pos pos[3];
	struct weir_pcap_source *s;
	char path[64];
	struct sim x;
	struct tcap c;

	tc_classic(&c, WEIR_CAPTURE_PCAP_US, false, 500);
	tc_file(&c, path, sizeof(path));
	s = source(path, 7, 4);
	sim_open(&x, s, 2, 1, NULL);
	sim_cut(&x, 0);
	sim_cut(&x, 1);
	pos[0] = (struct weir_source_pos){ x.pos[0], (size_t)x.pos_len[0] };
	pos[1] = (struct weir_source_pos){ x.pos[1], (size_t)x.pos_len[1] };
	pos[2] = pos[1];
	expect_refused(s, pos, 1, "leave splits out");
	expect_refused(s, pos, 3, "a split already in another");
	pos[1].len--;
	expect_refused(s, pos, 2, "checkpoint position of");
	weir_pcap_source_close(s);
	s = source(path, 8, 4);
	pos[1].len++;
	expect_refused(s, pos, 2, "another chunk size");
	weir_pcap_source_close(s);
	s = source(path, 7, 4);
	cr_assert_eq(wr_psrc_open(s, 0, 1), 0);
	cr_assert_eq(wr_psrc_restore(s, 0, pos, 2), 0, "%s", weir_last_error());
	weir_pcap_source_close(s);
	unlink(path);
	free(c.buf);
}

/* ---- 5. on the runtime ---- */

#define RT_FRAMES_MAX (4 * 4096)

struct rt_out {
	struct weir_flow_obs obs[RT_FRAMES_MAX];
	int64_t ts[RT_FRAMES_MAX];
	_Atomic uint64_t n; /* written by its core only */
};

static struct rt_out rt_out[2];

static int rt_sink(struct weir_ctx *c, const void *rec, void *arg)
{
	struct rt_out *o = &rt_out[weir_ctx_core(c)];
	uint64_t i = atomic_load_explicit(&o->n, memory_order_relaxed);

	(void)arg;
	if (i == RT_FRAMES_MAX)
		return -ENOSPC;
	memcpy(&o->obs[i], rec, sizeof(o->obs[i]));
	o->ts[i] = weir_ctx_timestamp(c);
	atomic_store_explicit(&o->n, i + 1, memory_order_relaxed);
	return 0;
}

static int rt_run(struct weir_pcap_source *s, unsigned cores)
{
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *src;
	int rc;

	weir_pipeline_config_init(&cfg);
	if (cores > cfg.runtime.cores)
		cores = cfg.runtime.cores;
	cfg.runtime.cores = cores;
	cfg.state_bytes_max = 64u << 20;
	memset(rt_out, 0, sizeof(rt_out));
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0, "%s", weir_last_error());
	cr_assert_eq(weir_pcap_source_add(p, s, &src), 0);
	cr_assert_eq(weir_sink_callback(p, src, rt_sink, NULL), 0);
	rc = weir_pipeline_run(p);
	cr_assert_eq(rc, 0, "%s", weir_last_error());
	weir_pipeline_destroy(p);
	return (int)cores;
}

/* The records of a runtime run against the model (from frame `origin`). */
static void rt_check(const struct model *m, unsigned cores, uint64_t origin)
{
	struct seen v;

	seen_init(&v, m, WR_PSRC_CHUNK_FRAMES);
	v.origin = origin;
	for (unsigned c = 0; c < cores; c++) {
		uint64_t last = UINT64_MAX, n = atomic_load(&rt_out[c].n);
		for (uint64_t i = 0; i < n; i++)
			check_record(&v, c, cores, &rt_out[c].obs[i],
				     rt_out[c].ts[i], &last);
	}
	seen_complete(&v);
	free(v.once);
}

Test(pcap_source, runtime_one_and_two_cores, .timeout = 120)
{
	struct weir_flow_counters got;
	uint64_t bytes, size, pkts;
	char path[64];
	struct model m;
	struct tcap c;

	for (int k = K_NS_BE; k <= K_NG_LE; k++) {
		write_kind(&c, (enum kind)k, 3 * 4096 + 1);
		tc_file(&c, path, sizeof(path));
		model_build(&m, path);
		for (unsigned cores = 1; cores <= 2; cores++) {
			struct weir_pcap_source *s = source(path, 4096, 1024);
			unsigned ran = (unsigned)rt_run(s, cores);
			rt_check(&m, ran, 0);
			weir_pcap_source_counters(s, &got);
			expect_counters(&got, &m.c);
			weir_pcap_source_progress(s, &bytes, &size, &pkts);
			cr_assert_eq(size, c.len);
			cr_assert_eq(bytes, c.len, "progress %llu of %llu",
				     (unsigned long long)bytes,
				     (unsigned long long)size);
			cr_assert_eq(pkts, m.c.packets);
			cr_assert_eq(weir_pcap_source_error(s), 0);
			weir_pcap_source_close(s);
		}
		model_free(&m);
		unlink(path);
		free(c.buf);
	}
}

Test(pcap_source, runtime_paced_and_duration, .timeout = 120)
{
	struct weir_pcap_source_config pc = { .rate_pps = 200000 };
	struct weir_flow_counters got;
	struct weir_pcap_source *s;
	char path[64];
	struct model m;
	struct tcap c;
	struct timespec t0, t1;

	tc_pcapng(&c, true, 3 * 4096 + 1);
	tc_file(&c, path, sizeof(path));
	model_build(&m, path);
	/* 12289 frames at 200 kpps: >= 61 ms, the same records. */
	cr_assert_eq(weir_pcap_source_open(path, &pc, &s), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned ran = (unsigned)rt_run(s, 2);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) +
		      (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	cr_assert_geq(secs, 0.055, "paced run took %.3f s", secs);
	rt_check(&m, ran, 0);
	weir_pcap_source_counters(s, &got);
	expect_counters(&got, &m.c);
	weir_pcap_source_close(s);
	/* 1000 pps for 50 ms: the input ends early, well before the file. */
	pc.rate_pps = 1000;
	pc.duration_ms = 50;
	cr_assert_eq(weir_pcap_source_open(path, &pc, &s), 0);
	rt_run(s, 2);
	weir_pcap_source_counters(s, &got);
	cr_assert_gt(got.packets, 0);
	cr_assert_lt(got.packets, 1000);
	weir_pcap_source_close(s);
	model_free(&m);
	unlink(path);
	free(c.buf);
}

/* ---- 6. the origin ---- */

Test(pcap_source, seek_moves_the_origin, .timeout = 60)
{
	struct weir_pcap_source *s;
	struct weir_pcap_pos p, q;
	char path[64];
	struct model m;
	struct tcap c;
	struct seen v;
	struct sim x;

	tc_pcapng(&c, false, 3 * 4096 + 1);
	tc_file(&c, path, sizeof(path));
	model_build(&m, path);
	p = frame_pos(path, 5000);
	s = source(path, 7, 4);
	cr_assert_eq(weir_pcap_source_seek(s, &p), 0);
	weir_pcap_source_tell(s, &q);
	cr_assert_eq(memcmp(&p, &q, sizeof(p)), 0);
	seen_init(&v, &m, 7);
	v.origin = 5000;
	sim_open(&x, s, 3, 9, NULL);
	cr_assert_eq(sim_run(&x, &v, 0), 0, "%s", weir_last_error());
	seen_complete(&v);
	free(v.once);
	weir_pcap_source_close(s);
	model_free(&m);
	unlink(path);
	free(c.buf);
}

/* ---- 7. the tcpdump corpus ---- */

static int rec_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct rec));
}

struct corpus_recs {
	struct rec *r;
	size_t n, cap;
};

static void corpus_rec(struct model *m, const struct weir_packet *pkt,
		       const struct weir_frame *f, void *arg)
{
	struct corpus_recs *cr = arg;

	(void)m;
	cr_assert_lt(cr->n, cr->cap);
	memset(&cr->r[cr->n], 0, sizeof(cr->r[0]));
	cr->r[cr->n].o.key = pkt->key;
	cr->r[cr->n].o.ip_bytes = pkt->ip_bytes;
	cr->r[cr->n++].ts = (int64_t)(f->ts_ns / 1000000u);
}

/* The single reader's records in file order, its counters and error. */
static size_t corpus_model(const char *path, struct model *m, struct rec *r,
			   size_t cap)
{
	struct corpus_recs cr = { r, 0, cap };
	struct weir_pcap *rd;

	memset(m, 0, sizeof(*m));
	cr_assert_eq(weir_pcap_open(path, &rd), 0);
	model_walk(m, rd, corpus_rec, &cr);
	return cr.n;
}

static void corpus_file(const char *path, struct rec *want, struct rec *got,
			size_t cap, unsigned *broken)
{
	static const unsigned counts[] = { 2, 3, 65 };
	static const uint32_t chunks[] = { 1, 3, 4096 };
	struct weir_pcap_source *s;
	struct weir_pcap *probe;
	struct model m;
	size_t n;

	if (weir_pcap_open(path, &probe) != 0)
		return; /* refused at open: weir_pcap_source_open is that */
	weir_pcap_close(probe);
	n = corpus_model(path, &m, want, cap);
	qsort(want, n, sizeof(*want), rec_cmp);
	*broken += m.err != 0;
	for (unsigned a = 0; a < 3; a++) {
		for (unsigned b = 0; b < 3; b++) {
			struct seen v = { .m = &m, .chunk = chunks[b],
					  .all = got, .cap = cap };
			struct sim x;

			s = source(path, chunks[b], 4);
			sim_open(&x, s, counts[a], a * 3 + b, NULL);
			int rc = sim_run(&x, &v, 0);
			cr_assert_eq(rc, m.err, "%s on %u cores, chunk %u: %d "
				     "(%s), want %d", path, counts[a],
				     chunks[b], rc, weir_last_error(), m.err);
			if (rc < 0) {
				cr_assert_str_eq(weir_last_error(), m.msg);
				weir_pcap_source_close(s);
				continue;
			}
			sim_counters(&x, &m);
			cr_assert_eq(v.nall, n, "%s: %zu records, want %zu",
				     path, v.nall, n);
			qsort(got, n, sizeof(*got), rec_cmp);
			cr_assert_eq(memcmp(got, want, n * sizeof(*got)), 0,
				     "%s: records differ", path);
			weir_pcap_source_close(s);
		}
	}
}

Test(pcap_source, tcpdump_corpus, .timeout = 600)
{
	char dir[PATH_MAX], path[PATH_MAX * 2];
	unsigned files = 0, broken = 0;
	struct rec *want, *got;
	size_t cap = 1u << 20;
	struct dirent *de;
	DIR *d;

	if (find_corpus(dir, sizeof(dir)) != 0)
		cr_skip_test("corpus not found: set WEIR_CORPUS_DIR (see "
			     "tests/net/corpus.h)");
	want = malloc(cap * sizeof(*want));
	got = malloc(cap * sizeof(*got));
	d = opendir(dir);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (de->d_name[0] == '.' || is_dir(path))
			continue;
		corpus_file(path, want, got, cap, &broken);
		files++;
	}
	closedir(d);
	cr_log_info("corpus %s: %u files, %u with a corrupt record", dir, files,
		    broken);
	free(want);
	free(got);
}

/* Every split on exactly one core; core 0 (the indexer) never more than
 * another core; shares within one split of their weights. */
Test(pcap_source, splits_partition_with_a_lighter_core_0)
{
	for (unsigned n = 1; n <= 65; n++) {
		uint64_t all = 0;
		unsigned cnt[65] = { 0 };
		for (unsigned c = 0; c < n; c++) {
			uint64_t m = wr_psrc_owned_splits(c, n);
			cr_assert_eq(all & m, 0, "%u cores: a split twice", n);
			all |= m;
			cnt[c] = (unsigned)__builtin_popcountll(m);
		}
		cr_assert_eq(all, ~0ull, "%u cores: a split on none", n);
		for (unsigned c = 1; c < n; c++)
			cr_assert_leq(cnt[0], cnt[c] + (n > 64), "%u cores: core 0 "
				      "%u splits, core %u %u", n, cnt[0], c,
				      cnt[c]);
	}
	cr_assert_eq(__builtin_popcountll(wr_psrc_owned_splits(0, 2)), 30);
}

/* ---- streams (plan 8) ---- */

/* A source over a FIFO that a thread feeds with c's bytes. */
static struct weir_pcap_source *fifo_source(const struct tcap *c, char *fifo,
					    struct feed *fd, unsigned seed)
{
	struct weir_pcap_source *s;

	snprintf(fifo, 64, "/tmp/weir_fifo_%d_%u", (int)getpid(), seed);
	unlink(fifo);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(feed_start_fifo(fd, fifo, c->buf, c->len, seed, 5000), 0);
	cr_assert_eq(weir_pcap_source_open(fifo, NULL, &s), 0, "%s",
		     weir_last_error());
	cr_assert(!weir_pcap_source_replayable(s));
	return s;
}

Test(pcap_source, runtime_stream_on_core_0, .timeout = 120)
{
	struct weir_flow_counters got;
	uint64_t bytes, size, pkts;
	char path[64], fifo[64];
	struct model m;
	struct feed fd;
	struct tcap c;

	write_kind(&c, K_NG_BE, 3 * 4096 + 1);
	tc_file(&c, path, sizeof(path));
	model_build(&m, path);
	for (unsigned cores = 1; cores <= 2; cores++) {
		struct weir_pcap_source *s = fifo_source(&c, fifo, &fd, cores);
		unsigned ran = (unsigned)rt_run(s, cores);
		uint64_t n = atomic_load(&rt_out[0].n), i = 0;

		feed_join(&fd);
		cr_assert_eq(n, m.nrec, "%llu records of %llu on core 0",
			     (unsigned long long)n,
			     (unsigned long long)m.nrec);
		if (ran > 1)
			cr_assert_eq(atomic_load(&rt_out[1].n), 0);
		for (uint64_t f = 0; f < m.frames; f++) {
			if (!m.rec[f])
				continue;
			cr_assert_eq(memcmp(&rt_out[0].obs[i], &m.obs[f],
					    sizeof(m.obs[f])), 0);
			cr_assert_eq(rt_out[0].ts[i], m.ts[f]);
			i++;
		}
		weir_pcap_source_counters(s, &got);
		expect_counters(&got, &m.c);
		weir_pcap_source_progress(s, &bytes, &size, &pkts);
		cr_assert_eq(size, 0, "a stream has no size");
		cr_assert_eq(bytes, c.len);
		cr_assert_eq(pkts, m.c.packets);
		weir_pcap_source_close(s);
		unlink(fifo);
	}
	model_free(&m);
	unlink(path);
	free(c.buf);
}

Test(pcap_source, stream_stopped_midway, .timeout = 60)
{
	struct weir_flow_obs o[BURST];
	int64_t ts[BURST];
	struct weir_pcap_source *s;
	struct weir_flow_counters got;
	char fifo[64];
	struct feed fd;
	struct tcap c;
	uint64_t recs = 0;
	int rc;

	tc_classic(&c, WEIR_CAPTURE_PCAP_US, false, 20000);
	s = fifo_source(&c, fifo, &fd, 7);
	cr_assert_eq(wr_psrc_open(s, 0, 2), 0);
	cr_assert_eq(wr_psrc_open(s, 1, 2), 0);
	cr_assert_eq(wr_psrc_next(s, 1, o, ts, BURST), WEIR_SOURCE_END,
		     "core 1 reads nothing of a stream");
	while (recs < 1000) {
		rc = wr_psrc_next(s, 0, o, ts, BURST);
		cr_assert_geq(rc, 0);
		for (int k = 0; k < rc; k++)
			cr_assert_eq(tc_index(&o[k].key), ts[k] - ts[0] +
				     tc_index(&o[0].key));
		recs += (uint64_t)rc;
	}
	weir_pcap_source_stop(s);
	cr_assert_eq(wr_psrc_next(s, 0, o, ts, BURST), WEIR_SOURCE_END);
	weir_pcap_source_counters(s, &got);
	cr_assert_eq(got.ip, recs);
	cr_assert_lt(got.packets, c.frames);
	weir_pcap_source_close(s); /* the writer meets EPIPE */
	feed_join(&fd);
	unlink(fifo);
	free(c.buf);
}
