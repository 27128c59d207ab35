/*
 * pcap_source.c — the capture-file source of weir/flows.h, read in
 * parallel: every core reads and parses its own share of the file with its
 * own reader (weir_pcap_clone(): one mapping) and emits one struct
 * weir_flow_obs per IP packet.
 *
 * CHUNKS
 *   Frames are numbered from the origin (the first record, or where
 *   weir_pcap_source_seek() put it); chunk k = frames [k*C, (k+1)*C),
 *   C = chunk_frames (WR_PSRC_CHUNK_FRAMES = 4096; docs/net.md says why).
 *   Chunk k belongs to logical split k % S (S = WEIR_GENERATOR_SPLITS),
 *   split s to a core by owned_splits() (core 0, which also indexes, a
 *   little less).  A core reads its chunks in increasing k, so
 *   its records are in file order; the engine's watermark is the minimum
 *   over the cores, so their skew never makes a record late.
 *
 * INDEX (core 0, inside its next() calls, at most INDEX_FRAMES_PER_CORE x
 * ncores frames of skipping per call, at most INDEX_AHEAD chunks ahead)
 *   From chunk k's start, weir_pcap_skip(C) finds chunk k+1's start; starts
 *   go into a ring of R = ring_entries (WR_PSRC_RING = 1024) positions.  A
 *   chunk core 0 reads itself while it is the index's frontier is not
 *   skipped: core 0's reader ends it where chunk k+1 starts (index_by_reader;
 *   on one core the index costs nothing).  The first short skip (end of
 *   file, a truncated or a corrupt record) or END in the frontier chunk ends
 *   the index.  Every chunk is read with weir_pcap_next() up to C frames;
 *   the last one meets the end, a truncation or the first corrupt record
 *   on the normal path, exactly as one core does (every chunk before it is
 *   clean: skip checks what next checks).
 *
 *     core 0: write ring[j % R]; release count = j + 1    (index_publish)
 *     core c: acquire count; copy ring[k % R]; release need = k + 1
 *                                                           (chunk_begin)
 *     core 0: acquire every need; write chunk j only if j < min need + R
 *                                                           (index_room)
 *
 *   Chunk k is ready for its owner once its start is published.  A core
 *   whose next chunk is not ready returns 0 records, not END; it ends once
 *   its next chunk lies past the last one.  Core 0 cannot end before the
 *   index does.
 *
 * STATE OF ONE CORE
 *   cur: the chunk it reads, or reads next; done: frames of cur taken.  Every
 *   owned chunk below cur is finished, except chunks a restore says are
 *   done (from[s]: the first chunk of split s left to read, with
 *   from_done[s] of its frames taken).
 *
 *     WAITING --chunk_begin: cur ready (seek, skip `done`)--> READING
 *     READING --read_chunk: C frames, or END (the last chunk)--> WAITING
 *                                     (cur = the next owned chunk left)
 *     WAITING --chunk_begin: cur past the last chunk--> FINISHED
 *     any     --deadline--> FINISHED;  READING --reader error--> job fails
 *
 * STREAMS (standard input, a FIFO: weir_pcap_open_fd)
 *   Core 0 reads the stream alone, in order, with the origin's reader; no
 *   chunks, no index, no positions (the source is live: a job with
 *   checkpoints says so at start).  The other cores finish at once.  Bytes
 *   that have not come make next() return 0 records, never block.  The
 *   source ends at the stream's end or at weir_pcap_source_stop().
 *
 * Per call at most `max` frames are read, records or not (bounded work per
 * tick).  Pacing: frame f is due at start + (f - first frame) / rate, one
 * clock for every core (docs/net.md: why not rate x owned splits / S).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "net/pcap_source_internal.h"

#define SPLITS WEIR_GENERATOR_SPLITS
#define ALL_SPLITS (~0ull >> (64 - SPLITS))
#define COUNT_ENDED (1ull << 63) /* in psrc_index.count: the index ended */
#define NO_CHUNK UINT64_MAX
/* Index work per call of core 0, per core of the job: 8 bursts of 32
 * frames, so the index outruns every core reading a burst per call; ~1.3
 * us per core at ~5 ns a skipped frame (docs/net.md). */
#define INDEX_FRAMES_PER_CORE 256u
/*
 * How far the index runs ahead of the furthest core: the start of its next
 * chunk (about `cores` on), one more round of margin, so 2 x cores + 1
 * chunks: ~0.5 MB a chunk of a 112-byte-record file, so the lines the
 * index touched are still in L2/L3 when their reader comes, rather than
 * the file being streamed from DRAM twice (the full ring, 1024 chunks, is
 * all of the 446 MB bench file).
 */
#define INDEX_AHEAD(cores) (2ull * (cores) + 1)
/*
 * Position alignment (WEIR_SOURCE_SELF_ALIGNED): a core begins no chunk
 * LAG or more chunks past the slowest core's, so the cores stay within
 * LAG x 4096 frames of each other in the file (and the windows open
 * between them within that many records), whatever span of event time a
 * chunk covers.  The engine's alignment by event time held a sparse
 * capture's cores in turn (a chunk of 100 packets/s spans 41 s, past any
 * sensible drift), and could hold core 0, whose index the others waited
 * for: 2 cores hung on such a file.
 */
#define LAG(cores) (8ull * (cores))
/* Frames per weir_pcap_next_burst() call: a poll's worth (WR_BURST). */
#define READ_BURST 64u

_Static_assert(SPLITS <= 64, "owned splits are a 64-bit map");

struct psrc_core {
	/* This core's own, on its data path. */
	alignas(WEIR_CACHE_LINE) struct weir_flow_counters c;
	struct weir_pcap *r;      /* this core's reader: a clone */
	uint64_t cur;             /* see STATE OF ONE CORE */
	uint32_t done;
	bool reading;             /* r is inside cur */
	bool finished;
	unsigned ncores;
	uint64_t owned;           /* map of its splits */
	uint64_t seen_unsupported, seen_truncated; /* reader stats counted */
	uint64_t bytes;           /* record bytes read, for progress */
	uint64_t lag_limit;       /* chunks below it may begin (lag_ok) */
	int64_t last_frame_ms;    /* stream: the last frame's timestamp */
	uint64_t last_frame_ns;   /* stream: when frames last came (mono) */
	uint64_t anchor_chunk;    /* a chunk <= every chunk it still needs, */
	struct weir_pcap_pos anchor; /* and its start (checkpoints) */
	uint64_t from[SPLITS];
	uint32_t from_done[SPLITS];
	/* Written by this core once per chunk, read by core 0 (index_room). */
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t need;
	/* Written by this core every call, read by any thread (progress). */
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t shown_packets;
	_Atomic uint64_t shown_bytes, shown_malformed;
};

struct psrc_index {
	/* Written by core 0, read by every core (chunk_begin). */
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t count;
	/* Core 0 only. */
	alignas(WEIR_CACHE_LINE) struct weir_pcap *r; /* the indexer's reader */
	uint64_t chunk;   /* the last chunk whose start is published */
	uint64_t skipped; /* its frames skipped so far */
	uint64_t limit;   /* chunks below it may be published (index_room) */
	bool ended;
	struct weir_pcap_pos ring[WR_PSRC_RING];
};

struct weir_pcap_source {
	struct weir_pcap *r;      /* the origin: only cloned during a run;
				     a stream's: core 0's reader */
	bool stream;              /* STREAMS below */
	_Atomic bool stop;        /* weir_pcap_source_stop() */
	struct weir_pcap_source_config cfg;
	char name[192];
	uint64_t size;
	struct weir_pcap_pos origin; /* where chunk 0 starts */
	uint32_t chunk_frames, ring_entries;
	/* Set by core 0's open/restore, read by all after the start gate. */
	uint64_t start_ns;
	uint64_t deadline_ns;     /* 0: none */
	uint64_t first_chunk;     /* of this run: 0, or the restore's anchor */
	_Atomic int err;          /* the first reader error of the job */
	struct psrc_index ix;
	struct psrc_core core[WEIR_CORES_MAX];
};

/*
 * Checkpoint position of one core.  Every split is in exactly one core's
 * `owned`; for each, resume = the next chunk not finished (a chunk of that
 * split) and done = its frames already taken.  The anchor is a chunk at or
 * before all of them with its start: the restored index starts there.
 * 872 bytes (WEIR_SOURCE_POS_MAX is 1024): a start per split (32 bytes
 * each) would not fit, and the index finds them again in microseconds.
 */
struct psrc_pos {
	uint32_t chunk_frames;    /* positions mean nothing with another C */
	uint32_t splits;
	uint64_t owned;
	uint64_t anchor_chunk;
	struct weir_pcap_pos anchor;
	struct weir_flow_counters c;
	uint64_t resume[SPLITS];
	uint32_t done[SPLITS];
};

_Static_assert(sizeof(struct psrc_pos) <= WEIR_SOURCE_POS_MAX,
	       "pcap position must fit a checkpoint's source slot");

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Standard input ("-": a pipe, a socket), a FIFO or a character device:
 * read as a stream (STREAMS).  A FIFO's open waits for its writer, as a
 * reader's should.  Standard input from a file is mapped as a file is
 * (weir_pcap_open_fd), so it is split over the cores and replayable. */
static int open_stream(struct weir_pcap_source *s, const char *path)
{
	int fd = strcmp(path, "-") == 0 ?
		fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3) :
		open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return wr_error(-errno, "cannot open %s: %s", s->name,
				strerror(errno));
	if (isatty(fd)) {
		close(fd);
		return wr_error(-ENOTTY, "%s is a terminal: pipe a capture "
				"into it (tcpdump -w - | weir flows --pcap -)",
				s->name);
	}
	s->stream = !weir_pcap_fd_is_file(fd);
	return weir_pcap_open_fd(fd, s->name, &s->r);
}

static bool is_stream(const char *path)
{
	struct stat st;

	if (strcmp(path, "-") == 0)
		return true; /* a file there: open_stream maps it */
	return stat(path, &st) == 0 &&
	       (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode));
}

int weir_pcap_source_open(const char *path,
			  const struct weir_pcap_source_config *cfg,
			  struct weir_pcap_source **out)
{
	struct weir_pcap_source *s;
	int err;

	if (path == NULL || out == NULL)
		return wr_error(-EINVAL, "pcap source: NULL path");
	s = aligned_alloc(WEIR_CACHE_LINE, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	if (cfg != NULL)
		s->cfg = *cfg;
	snprintf(s->name, sizeof(s->name), "%s",
		 strcmp(path, "-") == 0 ? "standard input" : path);
	s->chunk_frames = WR_PSRC_CHUNK_FRAMES;
	s->ring_entries = WR_PSRC_RING;
	err = is_stream(path) ? open_stream(s, path) :
	      weir_pcap_open(path, &s->r);
	if (err) {
		free(s);
		return err;
	}
	s->size = weir_pcap_size(s->r);
	weir_pcap_tell(s->r, &s->origin);
	*out = s;
	return 0;
}

void weir_pcap_source_close(struct weir_pcap_source *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < WEIR_CORES_MAX; i++)
		if (s->core[i].r != s->r) /* a stream's core 0 reads the origin */
			weir_pcap_close(s->core[i].r); /* clones first */
	weir_pcap_close(s->ix.r);
	weir_pcap_close(s->r);
	free(s);
}

int wr_psrc_geometry(struct weir_pcap_source *s, uint32_t chunk_frames,
		     uint32_t ring_entries)
{
	if (chunk_frames == 0 || ring_entries < 2 ||
	    ring_entries > WR_PSRC_RING)
		return wr_error(-EINVAL, "pcap source: chunk of %u frames, "
				"ring of %u entries", chunk_frames,
				ring_entries);
	s->chunk_frames = chunk_frames;
	s->ring_entries = ring_entries;
	return 0;
}

/* ---- one core's chunks ---- */

/* The first chunk >= lo of an owned split and not below that split's
 * restored start: the core's next chunk (S steps, once per chunk). */
static uint64_t next_chunk(const struct psrc_core *pc, uint64_t lo)
{
	uint64_t best = NO_CHUNK;

	for (unsigned sp = 0; sp < SPLITS; sp++) {
		if (!(pc->owned >> sp & 1))
			continue;
		uint64_t k = lo + (sp + SPLITS - lo % SPLITS) % SPLITS;
		if (k < pc->from[sp])
			k = pc->from[sp];
		if (k < best)
			best = k;
	}
	return best;
}

static void goto_chunk(struct psrc_core *pc, uint64_t k)
{
	unsigned sp = (unsigned)(k % SPLITS);

	pc->cur = k;
	pc->done = k == pc->from[sp] ? pc->from_done[sp] : 0;
	pc->reading = false;
	/* Release: this core reads no ring entry below k any more (pairs with
	 * the acquire load in index_room()). */
	atomic_store_explicit(&pc->need, k, memory_order_release);
}

static void finish(struct psrc_core *pc)
{
	pc->finished = true;
	pc->reading = false;
	/* Release: no entry is read any more (pairs with index_room()). */
	atomic_store_explicit(&pc->need, NO_CHUNK, memory_order_release);
}

/* The first reader error of the job (any core): weir_pcap_source_error. */
static int failed(struct weir_pcap_source *s, int err)
{
	int none = 0;

	atomic_compare_exchange_strong_explicit(&s->err, &none, err,
						memory_order_relaxed,
						memory_order_relaxed);
	return err; /* the reader's message is set on this thread */
}

/* Re-read and drop the frames of a resumed chunk a checkpoint counted. */
static int discard_done(struct weir_pcap_source *s, struct psrc_core *pc)
{
	struct weir_pcap_stats st;
	uint64_t got;
	int err = weir_pcap_skip(pc->r, pc->done, &got);

	if (err == 0 && got != pc->done)
		err = wr_error(-EINVAL, "%s: checkpoint position (chunk %llu, "
			       "%u frames taken) does not match the file",
			       s->name, (unsigned long long)pc->cur, pc->done);
	weir_pcap_get_stats(pc->r, &st);
	pc->seen_unsupported = st.unsupported; /* counted before the cut */
	pc->seen_truncated = st.truncated;
	return err;
}

/* May chunk k begin: is it less than LAG chunks past the slowest core's?
 * Looks again only at the cached limit.  The slowest core always may. */
static bool lag_ok(struct weir_pcap_source *s, struct psrc_core *pc,
		   uint64_t k)
{
	uint64_t lo = NO_CHUNK;

	if (k < pc->lag_limit)
		return true;
	for (unsigned c = 0; c < pc->ncores; c++) {
		/* Relaxed: a bound compared, no data read behind it. */
		uint64_t v = atomic_load_explicit(&s->core[c].need,
						  memory_order_relaxed);
		if (v < lo)
			lo = v;
	}
	pc->lag_limit = lo > NO_CHUNK - LAG(pc->ncores) ?
		NO_CHUNK : lo + LAG(pc->ncores);
	return k < pc->lag_limit;
}

/* Start chunk cur: 1, 0 when it is not ready (not indexed yet, or too far
 * ahead: lag_ok), WEIR_SOURCE_END when it lies past the last chunk, or
 * -errno. */
static int chunk_begin(struct weir_pcap_source *s, struct psrc_core *pc)
{
	/* Acquire: pairs with the release stores of count in
	 * index_publish() and index_end(): every entry below it is written. */
	uint64_t v = atomic_load_explicit(&s->ix.count, memory_order_acquire);
	uint64_t count = v & ~COUNT_ENDED, k = pc->cur;
	bool ended = (v & COUNT_ENDED) != 0;
	int err;

	if (k >= count)
		return ended ? WEIR_SOURCE_END : 0;
	if (!lag_ok(s, pc, k))
		return 0;
	pc->anchor = s->ix.ring[k % s->ring_entries];
	pc->anchor_chunk = k;
	/* Release: the entry is copied; its slot may be reused (pairs with
	 * the acquire load in index_room()). */
	atomic_store_explicit(&pc->need, k + 1, memory_order_release);
	err = weir_pcap_seek(pc->r, &pc->anchor);
	if (err == 0 && pc->done != 0)
		err = discard_done(s, pc);
	if (err)
		return err;
	pc->reading = true;
	return 1;
}

/* Has the index published a start after chunk k, which just ended short?
 * Skip and next are one code path, so that means the file changed under
 * the mapping: a consistency check, best effort. */
static bool last_chunk_past(struct weir_pcap_source *s, uint64_t k)
{
	/* Relaxed: one value compared, no data read behind it. */
	uint64_t v = atomic_load_explicit(&s->ix.count, memory_order_relaxed);

	return (v & ~COUNT_ENDED) > k + 1;
}

/* Classify one frame; 1 if it produced a record.  Packets and records
 * are counted by the caller, once a burst. */
static int take(struct psrc_core *pc, const struct weir_frame *f,
		struct weir_flow_obs *o, int64_t *ts)
{
	struct weir_packet pkt;
	int v = weir_parse(f->data, f->caplen, f->wire_len, f->linktype, &pkt);

	if (v == WEIR_PARSE_OK) {
		o->key = pkt.key;
		o->ip_bytes = pkt.ip_bytes;
		o->pad = 0;
		*ts = (int64_t)(f->ts_ns / 1000000u);
		return 1;
	}
	if (v == WEIR_PARSE_NON_IP)
		pc->c.non_ip++;
	else
		pc->c.malformed++; /* BAD_LINKTYPE cannot come from the reader */
	return 0;
}

/* What the reader counted by itself since the last look. */
static void account(struct psrc_core *pc, uint64_t off_before)
{
	struct weir_pcap_stats st;
	struct weir_pcap_pos pos;

	weir_pcap_get_stats(pc->r, &st);
	pc->c.unsupported += st.unsupported - pc->seen_unsupported;
	pc->c.truncated += st.truncated - pc->seen_truncated;
	pc->seen_unsupported = st.unsupported;
	pc->seen_truncated = st.truncated;
	weir_pcap_tell(pc->r, &pos);
	pc->bytes += pos.offset - off_before;
}

static int index_by_reader(struct weir_pcap_source *s, struct psrc_core *pc,
			   bool at_end);

/* Read up to `want` (>= 1) frames of chunk cur: the records made, or
 * -errno; *frames = frames read.  Moves on when the chunk is done. */
static int read_chunk(struct weir_pcap_source *s, struct psrc_core *pc,
		      bool core0, struct weir_flow_obs *o, int64_t *ts,
		      unsigned want, unsigned *frames)
{
	struct weir_pcap_pos before;
	struct weir_frame f[READ_BURST];
	unsigned n = 0, i = 0, got;
	int rc = 1;

	if (s->chunk_frames - pc->done < want)
		want = s->chunk_frames - pc->done;
	weir_pcap_tell(pc->r, &before);
	while (rc > 0 && i < want) {
		rc = weir_pcap_next_burst(pc->r, f, want - i < READ_BURST ?
					  want - i : READ_BURST, &got);
		for (unsigned k = 0; k < got; k++)
			n += (unsigned)take(pc, &f[k], &o[n], &ts[n]);
		i += got;
	}
	pc->done += i;
	pc->c.packets += i;
	pc->c.ip += n;
	*frames = i;
	account(pc, before.offset);
	if (rc < 0)
		return rc;
	if (rc == 0 && last_chunk_past(s, pc->cur))
		return wr_error(-EIO, "%s: chunk %llu ended after %u of its %u "
				"frames (did the file change while read?)",
				s->name, (unsigned long long)pc->cur, pc->done,
				s->chunk_frames);
	if (rc != 0 && pc->done < s->chunk_frames)
		return (int)n;
	if (core0 && (rc = index_by_reader(s, pc, rc == 0)) < 0)
		return rc;
	goto_chunk(pc, next_chunk(pc, pc->cur + 1));
	return (int)n;
}

/* ---- the index (core 0) ---- */

/*
 * May chunk k's start be published?  Only if every core has copied the
 * entry of chunk k - R, whose slot it takes (min need + R), and k is at
 * most INDEX_AHEAD chunks past the furthest core's need.  Looks again only
 * at the cached limit.
 */
static bool index_room(struct weir_pcap_source *s, uint64_t k)
{
	struct psrc_index *ix = &s->ix;
	unsigned n = s->core[0].ncores;
	uint64_t lo = NO_CHUNK, hi = 0, ahead = INDEX_AHEAD(n);

	if (k < ix->limit)
		return true;
	for (unsigned c = 0; c < n; c++) {
		/* Acquire: pairs with the release stores of need in
		 * goto_chunk(), chunk_begin() and finish(): that core has
		 * copied every entry below its need. */
		uint64_t v = atomic_load_explicit(&s->core[c].need,
						  memory_order_acquire);
		if (v < lo)
			lo = v;
		if (v != NO_CHUNK && v > hi)
			hi = v;
	}
	ix->limit = lo > NO_CHUNK - s->ring_entries ?
		NO_CHUNK : lo + s->ring_entries;
	if (hi + ahead < ix->limit)
		ix->limit = hi + ahead;
	return k < ix->limit;
}

/* Chunk ix->chunk + 1 starts where ix->r stands: publish it. */
static void index_publish(struct weir_pcap_source *s)
{
	struct psrc_index *ix = &s->ix;

	ix->chunk++;
	ix->skipped = 0;
	weir_pcap_tell(ix->r, &ix->ring[ix->chunk % s->ring_entries]);
	/* Release: the entry before the count that shows it (pairs with the
	 * acquire load in chunk_begin()). */
	atomic_store_explicit(&ix->count, ix->chunk + 1, memory_order_release);
}

static void index_end(struct weir_pcap_source *s)
{
	s->ix.ended = true;
	/* Release: as in index_publish(); chunk ix.chunk is the last. */
	atomic_store_explicit(&s->ix.count, (s->ix.chunk + 1) | COUNT_ENDED,
			      memory_order_release);
}

/* Skip a bounded number of frames, publishing each chunk start found.  The
 * frontier chunk is left to core 0's reader when core 0 reads it next. */
static void index_step(struct weir_pcap_source *s)
{
	struct psrc_index *ix = &s->ix;
	uint64_t budget = (uint64_t)INDEX_FRAMES_PER_CORE * s->core[0].ncores;

	while (!ix->ended && budget > 0) {
		uint64_t want = s->chunk_frames - ix->skipped, got;

		if (want == 0) { /* found, not yet published */
			if (!index_room(s, ix->chunk + 1))
				return;
			index_publish(s);
			continue;
		}
		if (ix->chunk == s->core[0].cur || !index_room(s, ix->chunk + 1))
			return;
		if (want > budget)
			want = budget;
		if (weir_pcap_skip(ix->r, want, &got) != 0)
			got = 0; /* cannot fail (never seeks badly): end here */
		ix->skipped += got;
		budget -= got;
		if (got < want)
			index_end(s);
	}
}

/* Core 0 has read chunk cur, the frontier, to its end: its reader stands
 * where chunk cur+1 starts (or the file ends), which saves the skip. */
static int index_by_reader(struct weir_pcap_source *s, struct psrc_core *pc,
			   bool at_end)
{
	struct psrc_index *ix = &s->ix;
	struct weir_pcap_pos pos;
	int err;

	if (ix->ended || ix->chunk != pc->cur)
		return 0;
	if (at_end) {
		index_end(s);
		return 0;
	}
	weir_pcap_tell(pc->r, &pos);
	err = weir_pcap_seek(ix->r, &pos); /* O(1) within a section */
	if (err)
		return err;
	ix->skipped = s->chunk_frames;
	if (index_room(s, ix->chunk + 1))
		index_publish(s);
	return 0;
}

/* Index from chunk k, which starts at pos.  Before the start gate (open or
 * restore of core 0), which orders it before every core's next(). */
static int index_start(struct weir_pcap_source *s, uint64_t k,
		       const struct weir_pcap_pos *pos)
{
	struct psrc_index *ix = &s->ix;
	int err;

	if (ix->r == NULL && (err = weir_pcap_clone(s->r, &ix->r)) != 0)
		return err;
	err = weir_pcap_seek(ix->r, pos);
	if (err)
		return err;
	ix->chunk = k;
	ix->skipped = 0;
	ix->limit = 0;
	ix->ended = false;
	ix->ring[k % s->ring_entries] = *pos;
	s->first_chunk = k;
	/* Relaxed: published to the other cores by the start gate. */
	atomic_store_explicit(&ix->count, k + 1, memory_order_relaxed);
	return 0;
}

/* ---- ops ---- */

static void show(struct psrc_core *pc)
{
	/* Relaxed: display values, read by weir_pcap_source_progress(). */
	atomic_store_explicit(&pc->shown_packets, pc->c.packets,
			      memory_order_relaxed);
	atomic_store_explicit(&pc->shown_bytes, pc->bytes,
			      memory_order_relaxed);
	atomic_store_explicit(&pc->shown_malformed, pc->c.malformed,
			      memory_order_relaxed);
}

/* Splits core `core` of n owns.  Core 0 also runs the index and, in
 * weir flows, the file sink, so it takes 7/8 of a share (2 cores, 20 M
 * packets: 16.3-16.8 Mpps against 15.7-16.7 with equal shares, alternating
 * runs, docs/net.md says how to reproduce; 0.7 of a share was slower).  Splits are dealt in turn to the core
 * furthest below its share, so consecutive chunks still alternate between
 * cores and the cores advance through the file's time together. */
uint64_t wr_psrc_owned_splits(unsigned core, unsigned n)
{
	unsigned got[WEIR_CORES_MAX] = { 0 };
	uint64_t mine = 0;

	for (unsigned sp = 0; sp < SPLITS; sp++) {
		unsigned best = 0;
		/* got[c] / w[c] < got[best] / w[best], w = 7 for core 0, 8 else */
		for (unsigned c = 1; c < n; c++)
			if (got[c] * (best == 0 ? 7u : 8u) <
			    got[best] * 8u)
				best = c;
		got[best]++;
		if (best == core)
			mine |= 1ull << sp;
	}
	return mine;
}

/* ---- streams ---- */

static void run_clock(struct weir_pcap_source *s)
{
	s->start_ns = mono_ns();
	s->deadline_ns = s->cfg.duration_ms ?
		s->start_ns + s->cfg.duration_ms * 1000000u : 0;
	atomic_store_explicit(&s->err, 0, memory_order_relaxed);
}

static int stream_open(struct weir_pcap_source *s, struct psrc_core *pc,
		       unsigned core, unsigned ncores)
{
	memset(pc, 0, offsetof(struct psrc_core, need));
	pc->ncores = ncores;
	if (core != 0) {
		finish(pc);
	} else {
		pc->r = s->r;
		run_clock(s);
	}
	show(pc);
	return 0;
}

/* Core 0's next() on a stream: bursts while frames come, up to max frames
 * and the pacing's due frame. */
static int stream_next(struct weir_pcap_source *s, struct psrc_core *pc,
		       struct weir_flow_obs *o, int64_t *ts, unsigned max,
		       uint64_t due)
{
	struct weir_frame f[READ_BURST];
	struct weir_pcap_pos before;
	unsigned n = 0, frames = 0, got;
	int rc = 1;

	/* Relaxed: a flag; what the source read before it is its own. */
	if (atomic_load_explicit(&s->stop, memory_order_relaxed))
		rc = 0;
	weir_pcap_tell(pc->r, &before);
	while (rc == 1 && frames < max && pc->c.packets + frames < due) {
		unsigned want = max - frames < READ_BURST ? max - frames
							  : READ_BURST;
		if (due - (pc->c.packets + frames) < want)
			want = (unsigned)(due - (pc->c.packets + frames));
		rc = weir_pcap_next_burst(pc->r, f, want, &got);
		for (unsigned k = 0; k < got; k++) /* before the next call */
			n += (unsigned)take(pc, &f[k], &o[n], &ts[n]);
		if (got > 0) /* psrc_clock: where the capture's time stood */
			pc->last_frame_ms = (int64_t)(f[got - 1].ts_ns / 1000000u);
		frames += got;
	}
	if (frames > 0)
		pc->last_frame_ns = mono_ns();
	pc->c.packets += frames;
	pc->c.ip += n;
	account(pc, before.offset);
	if (rc == 0)
		finish(pc);
	else if (rc < 0 && rc != -EAGAIN)
		return failed(s, rc);
	show(pc);
	return n == 0 && pc->finished ? WEIR_SOURCE_END : (int)n;
}

int wr_psrc_open(struct weir_pcap_source *s, unsigned core, unsigned ncores)
{
	struct psrc_core *pc;
	int err;

	if (s == NULL || ncores == 0 || ncores > WEIR_CORES_MAX ||
	    core >= ncores)
		return wr_error(-EINVAL, "pcap source: core %u of %u", core,
				ncores);
	pc = &s->core[core];
	if (s->stream)
		return stream_open(s, pc, core, ncores);
	if (pc->r == NULL && (err = weir_pcap_clone(s->r, &pc->r)) != 0)
		return err;
	/* Everything before `need`: the rest may be read by other threads. */
	struct weir_pcap *r = pc->r;
	memset(pc, 0, offsetof(struct psrc_core, need));
	pc->r = r;
	pc->ncores = ncores;
	pc->owned = wr_psrc_owned_splits(core, ncores);
	pc->anchor = s->origin;
	goto_chunk(pc, next_chunk(pc, 0));
	if (pc->owned == 0)
		finish(pc);
	show(pc);
	if (core != 0)
		return 0;
	run_clock(s);
	return index_start(s, 0, &s->origin);
}

int wr_psrc_next(struct weir_pcap_source *s, unsigned core,
		 struct weir_flow_obs *recs, int64_t *ts, unsigned max)
{
	struct psrc_core *pc = &s->core[core];
	uint64_t due = UINT64_MAX;
	unsigned n = 0, frames = 0;
	int rc;

	if (pc->finished)
		return WEIR_SOURCE_END;
	if (core == 0 && !s->stream)
		index_step(s);
	if (s->cfg.rate_pps || s->deadline_ns) {
		uint64_t now = mono_ns();
		if (s->deadline_ns && now >= s->deadline_ns) {
			finish(pc);
			return WEIR_SOURCE_END;
		}
		if (s->cfg.rate_pps)
			due = s->first_chunk * s->chunk_frames + 1 +
			      (uint64_t)((double)s->cfg.rate_pps *
					 (double)(now - s->start_ns) / 1e9);
	}
	if (s->stream)
		return stream_next(s, pc, recs, ts, max, due);
	/* Each round reads >= 1 frame or finishes a chunk: bounded by max
	 * plus one empty last chunk. */
	while (frames < max) {
		if (!pc->reading) {
			rc = chunk_begin(s, pc);
			if (rc == WEIR_SOURCE_END)
				finish(pc);
			if (rc < 0 && rc != WEIR_SOURCE_END)
				return failed(s, rc);
			if (rc <= 0)
				break;
		}
		uint64_t f = pc->cur * s->chunk_frames + pc->done;
		unsigned want = max - frames, got;
		if (f >= due)
			break;
		if (due - f < want)
			want = (unsigned)(due - f);
		rc = read_chunk(s, pc, core == 0, recs + n, ts + n, want, &got);
		if (rc < 0)
			return failed(s, rc);
		n += (unsigned)rc;
		frames += got;
	}
	show(pc);
	return n == 0 && pc->finished ? WEIR_SOURCE_END : (int)n;
}

int wr_psrc_position(struct weir_pcap_source *s, unsigned core, void *pos,
		     size_t cap)
{
	const struct psrc_core *pc = &s->core[core];
	struct psrc_pos p;

	if (cap < sizeof(p))
		return -ENOSPC;
	memset(&p, 0, sizeof(p));
	p.chunk_frames = s->chunk_frames;
	p.splits = SPLITS;
	p.owned = pc->owned;
	p.anchor_chunk = pc->anchor_chunk;
	p.anchor = pc->anchor;
	p.c = pc->c;
	for (unsigned sp = 0; sp < SPLITS; sp++) {
		if (!(pc->owned >> sp & 1))
			continue;
		/* Its first chunk >= cur, unless the restore starts it later. */
		uint64_t k = pc->cur + (sp + SPLITS - pc->cur % SPLITS) % SPLITS;
		if (k < pc->from[sp])
			k = pc->from[sp];
		p.resume[sp] = k;
		p.done[sp] = k == pc->cur ? pc->done :
			     k == pc->from[sp] ? pc->from_done[sp] : 0;
	}
	memcpy(pos, &p, sizeof(p));
	return (int)sizeof(p);
}

static int bad_pos(const char *why, unsigned i)
{
	return wr_error(-EINVAL, "pcap source: checkpoint position of core %u: "
			"%s", i, why);
}

/* Check every old core's position; every split in exactly one.  Fills
 * resume/done per split, the counters' sum and the smallest resume. */
static int load_positions(const struct weir_pcap_source *s,
			  const struct weir_source_pos *pos, unsigned nold,
			  struct psrc_pos *all, struct weir_flow_counters *sum,
			  uint64_t *first)
{
	uint64_t seen = 0;
	struct psrc_pos p;

	memset(all, 0, sizeof(*all));
	memset(sum, 0, sizeof(*sum));
	*first = NO_CHUNK;
	for (unsigned i = 0; i < nold; i++) {
		if (pos[i].len != sizeof(p))
			return wr_error(-EINVAL, "pcap source: checkpoint "
					"position of %zu bytes, expected %zu",
					pos[i].len, sizeof(p));
		memcpy(&p, pos[i].bytes, sizeof(p));
		if (p.chunk_frames != s->chunk_frames || p.splits != SPLITS)
			return bad_pos("another chunk size or split count", i);
		if (p.owned & seen)
			return bad_pos("a split already in another", i);
		seen |= p.owned;
		for (unsigned sp = 0; sp < SPLITS; sp++) {
			if (!(p.owned >> sp & 1))
				continue;
			if (p.resume[sp] % SPLITS != sp ||
			    p.done[sp] >= s->chunk_frames)
				return bad_pos("a chunk of another split", i);
			all->resume[sp] = p.resume[sp];
			all->done[sp] = p.done[sp];
			if (p.resume[sp] < *first)
				*first = p.resume[sp];
		}
		sum->packets += p.c.packets;
		sum->ip += p.c.ip;
		sum->malformed += p.c.malformed;
		sum->non_ip += p.c.non_ip;
		sum->unsupported += p.c.unsupported;
		sum->truncated += p.c.truncated;
	}
	if (seen != ALL_SPLITS)
		return wr_error(-EINVAL, "pcap source: checkpoint positions "
				"of %u cores leave splits out", nold);
	return 0;
}

/* The latest old anchor at or before every resume chunk (the core that
 * owns the smallest has one): the restored index starts there. */
static void pick_anchor(const struct weir_source_pos *pos, unsigned nold,
			uint64_t first, struct psrc_core *pc)
{
	struct psrc_pos p;
	bool found = false;

	for (unsigned i = 0; i < nold; i++) {
		memcpy(&p, pos[i].bytes, sizeof(p));
		if (p.anchor_chunk <= first &&
		    (!found || p.anchor_chunk > pc->anchor_chunk)) {
			pc->anchor_chunk = p.anchor_chunk;
			pc->anchor = p.anchor;
			found = true;
		}
	}
}

int wr_psrc_restore(struct weir_pcap_source *s, unsigned core,
		    const struct weir_source_pos *pos, unsigned nold)
{
	struct psrc_core *pc = &s->core[core];
	struct weir_flow_counters sum;
	struct psrc_pos all;
	uint64_t first;
	int err;

	if (nold == 0)
		return wr_error(-EINVAL, "pcap source: no checkpoint position");
	err = load_positions(s, pos, nold, &all, &sum, &first);
	if (err)
		return err;
	pick_anchor(pos, nold, first, pc);
	for (unsigned sp = 0; sp < SPLITS; sp++) {
		pc->from[sp] = all.resume[sp];
		pc->from_done[sp] = all.done[sp];
	}
	if (pc->owned != 0)
		goto_chunk(pc, next_chunk(pc, 0));
	if (core != 0) {
		show(pc);
		return 0;
	}
	pc->c = sum; /* the old totals, counted once */
	pc->bytes = pc->anchor.offset > s->origin.offset ? /* about */
		pc->anchor.offset - s->origin.offset : 0;
	show(pc);
	return index_start(s, pc->anchor_chunk, &pc->anchor);
}

static int psrc_open(struct weir_ctx *c, unsigned split, unsigned splits,
		     void *arg)
{
	(void)c;
	return wr_psrc_open(arg, split, splits);
}

static int psrc_next(struct weir_ctx *c, void *recs, int64_t *ts,
		     unsigned max, void *arg)
{
	return wr_psrc_next(arg, weir_ctx_core(c), recs, ts, max);
}

static int psrc_position(struct weir_ctx *c, void *pos, size_t cap, void *arg)
{
	return wr_psrc_position(arg, weir_ctx_core(c), pos, cap);
}

static int psrc_restore(struct weir_ctx *c, const struct weir_source_pos *pos,
			unsigned nold, void *arg)
{
	return wr_psrc_restore(arg, weir_ctx_core(c), pos, nold);
}

/* A stream quiet for idle_close_ms: its time runs on with ours from the
 * last frame's timestamp (weir_pcap_source_config.idle_close_ms). */
static int64_t psrc_clock(struct weir_ctx *c, void *arg)
{
	struct weir_pcap_source *s = arg;
	const struct psrc_core *pc = &s->core[weir_ctx_core(c)];
	uint64_t quiet;

	if (pc->finished || pc->last_frame_ns == 0)
		return WEIR_TS_MIN;
	quiet = mono_ns() - pc->last_frame_ns;
	if (quiet < s->cfg.idle_close_ms * 1000000u)
		return WEIR_TS_MIN;
	return pc->last_frame_ms + (int64_t)(quiet / 1000000u);
}

int weir_pcap_source_add(struct weir_pipeline *p, struct weir_pcap_source *s,
			 struct weir_stream **out)
{
	static const struct weir_source_ops ops = {
		.open = psrc_open, .next = psrc_next,
		.position = psrc_position, .restore = psrc_restore,
		.flags = WEIR_SOURCE_SELF_ALIGNED };
	static const struct weir_source_ops live_ops = {
		.open = psrc_open, .next = psrc_next };
	static const struct weir_source_ops live_clock_ops = {
		.open = psrc_open, .next = psrc_next, .clock = psrc_clock };

	if (s == NULL)
		return wr_error(-EINVAL, "pcap source: NULL handle");
	return weir_source(p, "pcap", !s->stream ? &ops :
			   s->cfg.idle_close_ms ? &live_clock_ops : &live_ops,
			   sizeof(struct weir_flow_obs), s, out);
}

void weir_pcap_source_tell(const struct weir_pcap_source *s,
			   struct weir_pcap_pos *pos)
{
	*pos = s->origin;
}

int weir_pcap_source_seek(struct weir_pcap_source *s,
			  const struct weir_pcap_pos *pos)
{
	int err = weir_pcap_seek(s->r, pos);

	if (err == 0)
		s->origin = *pos;
	return err;
}

void weir_pcap_source_progress(const struct weir_pcap_source *s,
			       uint64_t *bytes_read, uint64_t *file_bytes,
			       uint64_t *packets)
{
	uint64_t b = s->origin.offset, n = 0;

	for (unsigned i = 0; i < WEIR_CORES_MAX; i++) {
		/* Pairs with the relaxed stores in show(): display values. */
		b += atomic_load_explicit(&s->core[i].shown_bytes,
					  memory_order_relaxed);
		n += atomic_load_explicit(&s->core[i].shown_packets,
					  memory_order_relaxed);
	}
	*bytes_read = b < s->size || s->stream ? b : s->size;
	*file_bytes = s->size;
	*packets = n;
}

uint64_t weir_pcap_source_malformed(const struct weir_pcap_source *s)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < WEIR_CORES_MAX; i++)
		/* Pairs with the relaxed store in show(): a display value. */
		n += atomic_load_explicit(&s->core[i].shown_malformed,
					  memory_order_relaxed);
	return n;
}

void weir_pcap_source_counters(const struct weir_pcap_source *s,
			       struct weir_flow_counters *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < WEIR_CORES_MAX; i++) {
		const struct weir_flow_counters *c = &s->core[i].c;
		out->packets += c->packets;
		out->ip += c->ip;
		out->malformed += c->malformed;
		out->non_ip += c->non_ip;
		out->unsupported += c->unsupported;
		out->truncated += c->truncated;
	}
}

const void *weir_pcap_source_mapping(const struct weir_pcap_source *s,
				     uint64_t *len)
{
	return weir_pcap_mapping(s->r, len);
}

bool weir_pcap_source_replayable(const struct weir_pcap_source *s)
{
	return !s->stream;
}

void weir_pcap_source_stop(struct weir_pcap_source *s)
{
	if (s != NULL) /* relaxed: a flag (stream_next) */
		atomic_store_explicit(&s->stop, true, memory_order_relaxed);
}

int weir_pcap_source_error(const struct weir_pcap_source *s)
{
	return atomic_load_explicit(&s->err, memory_order_relaxed);
}
