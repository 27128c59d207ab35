/*
 * pcap_source.c — the capture-file source of weir/flows.h: core 0 reads the
 * file through weir_pcap_next(), parses every frame with weir_parse() and
 * emits one struct weir_flow_obs per IP packet; the other cores' splits end
 * at once (key_by spreads the flows).
 *
 * Per call of next() at most `max` frames are read, records or not, so a
 * long run of non-IP frames still returns to the event loop (bounded work
 * per tick).  Pacing: at most rate * elapsed + 1 frames by now.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "weir/flows.h"

struct psrc_core {
	alignas(WEIR_CACHE_LINE) struct weir_flow_counters c;
	bool done;
};

struct weir_pcap_source {
	struct weir_pcap *r;
	struct weir_pcap_source_config cfg;
	uint64_t size;
	uint64_t start_ns;   /* core 0, at open() */
	uint64_t deadline_ns; /* 0: none */
	int err;             /* the reader's error that failed the job */
	uint64_t resumed_packets; /* counted before a restore (pacing) */
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t offset; /* progress */
	_Atomic uint64_t published[2]; /* core 0's packets, ip: progress */
	struct psrc_core core[WEIR_CORES_MAX];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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
	err = weir_pcap_open(path, &s->r);
	if (err) {
		free(s);
		return err;
	}
	s->size = weir_pcap_size(s->r);
	*out = s;
	return 0;
}

void weir_pcap_source_close(struct weir_pcap_source *s)
{
	if (s == NULL)
		return;
	weir_pcap_close(s->r);
	free(s);
}

static int psrc_open(struct weir_ctx *c, unsigned split, unsigned splits,
		     void *arg)
{
	struct weir_pcap_source *s = arg;

	(void)c;
	(void)splits;
	memset(&s->core[split], 0, sizeof(s->core[split]));
	s->core[split].done = split != 0; /* the file is split 0 */
	if (split == 0) {
		s->start_ns = mono_ns();
		s->deadline_ns = s->cfg.duration_ms ?
			s->start_ns + s->cfg.duration_ms * 1000000u : 0;
	}
	return 0;
}

/* Frames pacing and the deadline allow in this call (max when neither). */
static unsigned budget(struct weir_pcap_source *s, const struct psrc_core *pc,
		       unsigned max)
{
	uint64_t now, due;

	if (s->cfg.rate_pps == 0 && s->deadline_ns == 0)
		return max;
	now = mono_ns();
	if (s->deadline_ns && now >= s->deadline_ns)
		return 0;
	if (s->cfg.rate_pps == 0)
		return max;
	due = (uint64_t)((double)s->cfg.rate_pps * (now - s->start_ns) / 1e9) + 1;
	uint64_t done = pc->c.packets - s->resumed_packets;
	if (due <= done)
		return 0;
	return due - done < max ? (unsigned)(due - done) : max;
}

static void publish(struct weir_pcap_source *s, const struct psrc_core *pc)
{
	struct weir_pcap_pos pos;

	weir_pcap_tell(s->r, &pos);
	/* Relaxed: progress display only, read by weir_pcap_source_progress. */
	atomic_store_explicit(&s->offset, pos.offset, memory_order_relaxed);
	atomic_store_explicit(&s->published[0], pc->c.packets,
			      memory_order_relaxed);
	atomic_store_explicit(&s->published[1], pc->c.ip, memory_order_relaxed);
}

/* Classify one frame; 1 if it produced a record. */
static int take(struct psrc_core *pc, const struct weir_frame *f,
		struct weir_flow_obs *o, int64_t *ts)
{
	struct weir_packet pkt;
	int v = weir_parse(f->data, f->caplen, f->wire_len, f->linktype, &pkt);

	pc->c.packets++;
	if (v == WEIR_PARSE_OK) {
		o->key = pkt.key;
		o->ip_bytes = pkt.ip_bytes;
		o->pad = 0;
		*ts = (int64_t)(f->ts_ns / 1000000u);
		pc->c.ip++;
		return 1;
	}
	if (v == WEIR_PARSE_NON_IP)
		pc->c.non_ip++;
	else
		pc->c.malformed++; /* BAD_LINKTYPE cannot come from the reader */
	return 0;
}

static int psrc_end(struct weir_pcap_source *s, struct psrc_core *pc, int rc)
{
	struct weir_pcap_stats st;

	pc->done = true;
	weir_pcap_get_stats(s->r, &st);
	pc->c.unsupported = st.unsupported;
	pc->c.truncated = st.truncated;
	publish(s, pc);
	if (rc < 0) {
		s->err = rc;
		return rc; /* the reader's message is set on this thread */
	}
	return WEIR_SOURCE_END;
}

static int psrc_next(struct weir_ctx *c, void *recs, int64_t *ts,
		     unsigned max, void *arg)
{
	struct weir_pcap_source *s = arg;
	struct psrc_core *pc = &s->core[weir_ctx_core(c)];
	struct weir_flow_obs *o = recs;
	struct weir_frame f;
	unsigned n = 0, want;
	int rc = 1;

	if (pc->done)
		return WEIR_SOURCE_END;
	want = budget(s, pc, max);
	if (want == 0 && s->deadline_ns && mono_ns() >= s->deadline_ns)
		return psrc_end(s, pc, 0);
	for (unsigned i = 0; i < want; i++) {
		rc = weir_pcap_next(s->r, &f);
		if (rc <= 0)
			break;
		n += (unsigned)take(pc, &f, &o[n], &ts[n]);
	}
	if (rc < 0 || (rc == 0 && n == 0))
		return psrc_end(s, pc, rc);
	if ((pc->c.packets & 1023) < max)
		publish(s, pc);
	return (int)n; /* an end (rc == 0) is reported by the next call */
}

/* Checkpoint position: the reader's position and split 0's counters
 * (only split 0 reads the file; the other splits record nothing). */
struct psrc_pos {
	struct weir_pcap_pos pos;
	struct weir_flow_counters c;
};

static int psrc_position(struct weir_ctx *c, void *pos, size_t cap, void *arg)
{
	struct weir_pcap_source *s = arg;
	struct psrc_pos p = { .c = s->core[0].c };

	if (weir_ctx_core(c) != 0)
		return 0;
	if (cap < sizeof(p))
		return -ENOSPC;
	weir_pcap_tell(s->r, &p.pos);
	memcpy(pos, &p, sizeof(p));
	return (int)sizeof(p);
}

static int psrc_restore(struct weir_ctx *c, const struct weir_source_pos *pos,
			unsigned nold, void *arg)
{
	struct weir_pcap_source *s = arg;
	struct psrc_pos p;
	int err;

	if (weir_ctx_core(c) != 0)
		return 0;
	if (nold == 0 || pos[0].len != sizeof(p))
		return wr_error(-EINVAL, "pcap source: checkpoint position of "
				"%zu bytes, expected %zu", nold ? pos[0].len : 0,
				sizeof(p));
	memcpy(&p, pos[0].bytes, sizeof(p));
	err = weir_pcap_source_seek(s, &p.pos);
	if (err)
		return err;
	s->core[0].c = p.c;
	s->resumed_packets = p.c.packets;
	publish(s, &s->core[0]);
	return 0;
}

int weir_pcap_source_add(struct weir_pipeline *p, struct weir_pcap_source *s,
			 struct weir_stream **out)
{
	static const struct weir_source_ops ops = {
		.open = psrc_open, .next = psrc_next,
		.position = psrc_position, .restore = psrc_restore };

	if (s == NULL)
		return wr_error(-EINVAL, "pcap source: NULL handle");
	return weir_source(p, "pcap", &ops, sizeof(struct weir_flow_obs), s,
			   out);
}

void weir_pcap_source_tell(const struct weir_pcap_source *s,
			   struct weir_pcap_pos *pos)
{
	weir_pcap_tell(s->r, pos);
}

int weir_pcap_source_seek(struct weir_pcap_source *s,
			  const struct weir_pcap_pos *pos)
{
	int err = weir_pcap_seek(s->r, pos);

	if (err == 0)
		atomic_store_explicit(&s->offset, pos->offset,
				      memory_order_relaxed);
	return err;
}

void weir_pcap_source_progress(const struct weir_pcap_source *s,
			       uint64_t *bytes_read, uint64_t *file_bytes,
			       uint64_t *packets)
{
	/* Pairs with the relaxed stores in publish(): display values. */
	*bytes_read = atomic_load_explicit(&s->offset, memory_order_relaxed);
	*file_bytes = s->size;
	*packets = atomic_load_explicit(&s->published[0], memory_order_relaxed);
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

int weir_pcap_source_error(const struct weir_pcap_source *s)
{
	return s->err;
}
