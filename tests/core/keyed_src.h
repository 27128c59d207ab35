/*
 * keyed_src.h — a test source shared by timers_test.c and
 * state_pipeline_test.c: records from an array, split by key (split s takes
 * the records whose key % splits == s, in array order), so every key's
 * records reach its process function in array order on any core count.
 *
 * Pacing, for tests that need wall-clock time to pass during a run:
 * Each split writes only its own slots (several cores open and poll at
 * once).  Pacing: chunk records every chunk_ms (0 = all at once), then tail_ms of returning
 * 0 ("nothing now") before the split ends.  Both use CLOCK_MONOTONIC.
 */
#ifndef TESTS_CORE_KEYED_SRC_H
#define TESTS_CORE_KEYED_SRC_H

#include <string.h>
#include <time.h>

#include "weir/pipeline.h"

struct trec {
	uint32_t key;
	uint32_t op;
	int64_t a, b;
	int64_t ts; /* event time */
};

struct ksrc {
	const struct trec *recs;
	unsigned count;
	unsigned chunk;   /* records per chunk; 0 = no pacing */
	int64_t chunk_ms; /* between chunks */
	int64_t tail_ms;  /* "nothing now" after the last record */
	/* per split */
	unsigned pos[WEIR_CORES_MAX], splits[WEIR_CORES_MAX];
	unsigned in_chunk[WEIR_CORES_MAX];
	int64_t next_ms[WEIR_CORES_MAX];
	int64_t end_ms[WEIR_CORES_MAX];
};

static inline int64_t ksrc_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static inline int ksrc_open(struct weir_ctx *c, unsigned split,
			    unsigned splits, void *arg)
{
	struct ksrc *s = arg;

	(void)c;
	s->splits[split] = splits;
	s->pos[split] = 0;
	s->in_chunk[split] = 0;
	s->next_ms[split] = ksrc_now_ms();
	s->end_ms[split] = 0;
	return 0;
}

/* The split's next record index at or after pos, or count. */
static inline unsigned ksrc_skip(const struct ksrc *s, unsigned me,
				 unsigned pos)
{
	while (pos < s->count && s->recs[pos].key % s->splits[me] != me)
		pos++;
	return pos;
}

static inline int ksrc_tail(struct ksrc *s, unsigned me)
{
	int64_t now = ksrc_now_ms();

	if (s->end_ms[me] == 0)
		s->end_ms[me] = now + s->tail_ms;
	return now >= s->end_ms[me] ? WEIR_SOURCE_END : 0;
}

static inline int ksrc_next(struct weir_ctx *c, void *recs, int64_t *ts,
			    unsigned max, void *arg)
{
	struct ksrc *s = arg;
	unsigned me = weir_ctx_core(c), n = 0;

	if (s->chunk && ksrc_now_ms() < s->next_ms[me])
		return 0;
	while (n < max) {
		unsigned pos = ksrc_skip(s, me, s->pos[me]);
		if (pos >= s->count)
			break;
		memcpy((struct trec *)recs + n, &s->recs[pos], sizeof(struct trec));
		ts[n++] = s->recs[pos].ts;
		s->pos[me] = pos + 1;
		if (s->chunk && ++s->in_chunk[me] == s->chunk) {
			s->in_chunk[me] = 0;
			s->next_ms[me] = ksrc_now_ms() + s->chunk_ms;
			break;
		}
	}
	if (n > 0)
		return (int)n;
	return ksrc_tail(s, me);
}

static inline void ksrc_key(const void *rec, void *key, void *arg)
{
	(void)arg;
	memcpy(key, &((const struct trec *)rec)->key, sizeof(uint32_t));
}

/* A keyed stream of s's records: event time with out-of-orderness ooo_ms
 * when ooo_ms >= 0, none otherwise. */
static inline int ksrc_keyed(struct weir_pipeline *p, struct ksrc *s,
			     int64_t ooo_ms, struct weir_stream **out)
{
	static const struct weir_source_ops ops = { .open = ksrc_open,
						    .next = ksrc_next };
	struct weir_stream *src;
	int err = weir_source(p, "ksrc", &ops, sizeof(struct trec), s, &src);

	if (err == 0 && ooo_ms >= 0)
		err = weir_watermarks(p, src, ooo_ms, 0);
	return err ? err : weir_key_by(p, src, ksrc_key, sizeof(uint32_t),
					NULL, out);
}

#endif
