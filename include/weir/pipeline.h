/*
 * weir/pipeline.h — build a dataflow pipeline and run it on the
 * thread-per-core runtime.  Apache Flink's DataStream model with keyed
 * state, in C.
 *
 * PURPOSE
 *   An embedder describes a pipeline once (sources, stateless operators,
 *   key_by, keyed process functions, sinks), then runs it.  Every worker
 *   core runs an instance of every operator: sources are split across the
 *   cores, operators between two key_by's run on the core that received the
 *   record (chained: a direct call, no copy), and key_by routes each record
 *   through the ring mesh to the core that owns its key group.
 *
 * RECORDS
 *   Every stream has a fixed record size, fixed when the stream is built.
 *   Records are plain bytes copied by value; a pointer a user function gets
 *   to a record is valid only during that call.
 *
 * USER FUNCTIONS
 *   Every callback gets a struct weir_ctx *: the core it runs on, the
 *   current record's timestamp and key (keyed operators), weir_emit() to
 *   send records downstream, and the state and timer calls of
 *   weir/state.h.  Callbacks return 0 or -errno; an error fails the job and
 *   weir_pipeline_run() returns it.  Callbacks run on worker threads,
 *   several at once (one per core), never concurrently on the same core.
 *
 * INVARIANTS
 *   1. Every record with key k is processed by exactly one core: the owner
 *      of key group xxh3_64(k) % key_groups.  Results do not depend on the
 *      number of cores.
 *   2. Records from one source split keep their order along every path.
 *   3. Nothing is dropped: a full ring is backpressure up to the sources.
 *
 * OWNERSHIP
 *   Handles (weir_pipeline, weir_stream) are owned by the pipeline and
 *   valid until weir_pipeline_destroy().  Strings and arrays passed in are
 *   copied.  `arg` pointers are the caller's and must outlive the run.
 */
#ifndef WEIR_PIPELINE_H
#define WEIR_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weir/common.h"
#include "weir/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEIR_KEY_SIZE_MAX 64u
#define WEIR_RECORD_SIZE_MAX 1024u
#define WEIR_KEY_GROUPS_DEFAULT 4096u
#define WEIR_KEY_GROUPS_MAX (1u << 20)
#define WEIR_TS_MIN INT64_MIN
#define WEIR_TS_MAX INT64_MAX

struct weir_pipeline;
struct weir_stream;
struct weir_ctx;

/* What a core does when its state reaches state_bytes_max. */
enum weir_state_full_policy {
	WEIR_STATE_FULL_FAIL = 0,  /* fail the job: the error names the state */
	WEIR_STATE_FULL_EVICT = 1, /* evict expired (TTL) entries, then fail */
};

#define WEIR_COMBINE_ENTRIES_DEFAULT 4096u

struct weir_pipeline_config {
	struct weir_runtime_config runtime; /* cores, rings, idle policy */
	uint32_t key_groups;  /* power of two, default 4096 */
	size_t state_bytes_max; /* memory cap per core, default 1 GiB */
	/*
	 * Bytes of each core's state memory mapped before its sources start,
	 * past what a restore filled (default 0).  The first write to state
	 * memory never used before faults in a 2 MiB huge page and zeroes it
	 * (0.25 ms here, 4.6 ms while the VM's host has not backed the page
	 * yet), and a table's growth takes many at once inside a record's
	 * update: a job that must not stall maps what its state will hold
	 * (as DPDK maps its memory at EAL init).  Blocking, at start-up;
	 * capped at state_bytes_max.
	 */
	size_t state_prefault_bytes;
	enum weir_state_full_policy state_full_policy; /* default FAIL */
	/*
	 * Pre-aggregation before a key_by whose only reader is a tumbling or
	 * sliding window with agg->merge and no late stream (Flink's
	 * local-global aggregation): per core, a cache of this many partial
	 * accumulators (4-way, ~128 bytes each for flow keys) that
	 * keeps a hot key's records off the rings; partials are flushed
	 * before every watermark, barrier and end of input that covers
	 * them, so results and checkpoints are exactly as without it.
	 * 0 turns it off.  Default WEIR_COMBINE_ENTRIES_DEFAULT.
	 */
	uint32_t combine_entries;
	/*
	 * Watermark alignment (Flink's, FLIP-182): a core stops reading its
	 * source split while that split's watermark is more than this many
	 * ms ahead of the slowest other core's on the same key_by, and reads
	 * on once it is not.  Splits read at full speed drift apart (one core
	 * a few % slower), and every window between the slowest and the
	 * fastest split stays open on every core: without it `weir flows
	 * --gen` on 2 cores held 8 windows open after 400 M packets, and
	 * more the longer it ran.  A core not yet heard from, idle or ended
	 * never holds another back; a live source (no position()) is never
	 * held, since holding a NIC's queue drops packets, nor is one that
	 * aligns itself (WEIR_SOURCE_SELF_ALIGNED).  0 turns it off
	 * (negative: -EINVAL).  Default WEIR_ALIGN_DRIFT_MS_DEFAULT.
	 */
	int64_t align_drift_ms;
};

#define WEIR_ALIGN_DRIFT_MS_DEFAULT 1000

void weir_pipeline_config_init(struct weir_pipeline_config *cfg);

int weir_pipeline_create(const struct weir_pipeline_config *cfg,
			 struct weir_pipeline **out);
void weir_pipeline_destroy(struct weir_pipeline *p);

/* Build the operators on every core and run until every source has ended
 * and every record reached its sink, or until a stop (signal,
 * weir_pipeline_stop_remote()) or an error.  Returns 0 or -errno. */
int weir_pipeline_run(struct weir_pipeline *p);
void weir_pipeline_stop_remote(struct weir_pipeline *p);
/* After weir_pipeline_run returned 0: whether it ended on a stop (signal,
 * stop_remote) before every core had finished its sinks, i.e. before the
 * input ended.  A file sink's output is then still FILE.inprogress. */
bool weir_pipeline_stopped(const struct weir_pipeline *p);

/* ---- sources ---- */

/* A source split: one instance per core.  next() writes up to `max`
 * records of the stream's record size into recs and their event
 * timestamps (ms; WEIR_TS_MIN if none) into ts; returns how many, 0 when
 * nothing is ready now, WEIR_SOURCE_END when the split is exhausted, or
 * -errno. */
#define WEIR_SOURCE_END (-1000000)

/* One split's replay position as a checkpoint recorded it. */
#define WEIR_SOURCE_POS_MAX 1024u
struct weir_source_pos {
	const void *bytes; /* what position() wrote */
	size_t len;
};

struct weir_source_ops {
	int (*open)(struct weir_ctx *c, unsigned split, unsigned splits,
		    void *arg);
	int (*next)(struct weir_ctx *c, void *recs, int64_t *ts, unsigned max,
		    void *arg);
	void (*close)(struct weir_ctx *c, void *arg);
	/*
	 * Checkpoints (both optional; a source without them is not
	 * replayable, and a job with checkpoints says so at start).
	 * position(): the split's replay position, at most `cap` bytes
	 * (WEIR_SOURCE_POS_MAX) of plain data; returns its length or -errno.
	 * restore(): after open() and before the first next(), rewind the
	 * split to the checkpoint: pos[i] is what old split i recorded, and
	 * nold (the cores of the checkpointed run) may differ from today's
	 * splits, so each split takes what it now owns from all of them.
	 */
	int (*position)(struct weir_ctx *c, void *pos, size_t cap, void *arg);
	int (*restore)(struct weir_ctx *c, const struct weir_source_pos *pos,
		       unsigned nold, void *arg);
	/* WEIR_SOURCE_* flags; 0 for most sources. */
	unsigned flags;
	/*
	 * Optional, for a source whose timestamps are its own clock's (the
	 * DPDK source stamps each burst with its arrival time): asked on a
	 * tick where next() returned no record, it returns a time no record
	 * next() returns later will be stamped below (WEIR_TS_MIN: none).
	 * The split's watermark then moves with that clock, as if a record
	 * stamped so had come, so a quiet link's windows still close once
	 * the clock passes their end (at most out-of-orderness + one marker
	 * interval later).  Such a split is never idle (weir_watermarks'
	 * idle timeout does not apply): its clock keeps it moving.
	 */
	int64_t (*clock)(struct weir_ctx *c, void *arg);
};

/*
 * The source keeps its splits close by itself, so watermark alignment
 * (align_drift_ms) never holds it: the capture file source, whose cores
 * read interleaved chunks of one file and stay within a few chunks of each
 * other by position.  Held by time instead, a sparse capture's chunks (41 s
 * of event time each at 100 packets/s) could only be read by one core at a
 * time, and the core holding the file's index could be the one held.
 */
#define WEIR_SOURCE_SELF_ALIGNED 1u

int weir_source(struct weir_pipeline *p, const char *name,
		const struct weir_source_ops *ops, uint32_t record_size,
		void *arg, struct weir_stream **out);

/*
 * The deterministic generator: record i is make(i, seed, ...), a pure
 * function, so any position can be replayed.  The index space is cut into
 * WEIR_GENERATOR_SPLITS logical splits (record i belongs to split
 * i % WEIR_GENERATOR_SPLITS), spread over the cores; each split's position
 * is the count of records it produced, which is what a checkpoint records
 * and what lets a different number of cores resume the same stream.
 */
#define WEIR_GENERATOR_SPLITS 64u
struct weir_generator {
	uint64_t count;       /* records in all; 0 = unbounded */
	uint64_t rate;        /* records/s over all cores; 0 = full speed */
	uint64_t seed;
	uint32_t record_size;
	/* Write record `index` to rec and its event time (ms) to *ts_ms. */
	void (*make)(uint64_t index, uint64_t seed, void *rec, int64_t *ts_ms,
		     void *arg);
	void *arg;
	/* Optional replay start: records already produced per split (as
	 * weir_generator_positions() reported); NULL = from the beginning. */
	const uint64_t *start;
};

int weir_source_generator(struct weir_pipeline *p,
			  const struct weir_generator *g,
			  struct weir_stream **out);
/* After (or, from a checkpoint, during) a run: the records each split has
 * produced, WEIR_GENERATOR_SPLITS values.  Feeding them back as
 * weir_generator.start resumes the stream exactly where it stopped, on any
 * number of cores. */
int weir_generator_positions(const struct weir_stream *generator,
			     uint64_t pos[WEIR_GENERATOR_SPLITS]);

/*
 * Event time for a source's records: the watermark trails the largest
 * timestamp seen by max_out_of_order_ms (bounded out-of-orderness), and a
 * core whose split has produced nothing for idle_timeout_ms (> 0) stops
 * holding the watermark back until it produces again.  Without this call a
 * source's watermark stays at WEIR_TS_MIN until its input ends; the end of
 * input always sends the final watermark, so every event-time timer (and
 * window) fires.
 */
int weir_watermarks(struct weir_pipeline *p, struct weir_stream *source,
		    int64_t max_out_of_order_ms, int64_t idle_timeout_ms);

/* ---- stateless operators (run on the core that holds the record) ---- */

typedef int (*weir_map_fn)(struct weir_ctx *c, const void *in, void *out,
			   void *arg);
typedef bool (*weir_filter_fn)(struct weir_ctx *c, const void *in, void *arg);
/* flat_map emits 0..max_out records per input through weir_emit(). */
typedef int (*weir_flat_map_fn)(struct weir_ctx *c, const void *in, void *arg);

int weir_map(struct weir_pipeline *p, struct weir_stream *in, weir_map_fn fn,
	     uint32_t out_size, void *arg, struct weir_stream **out);
int weir_filter(struct weir_pipeline *p, struct weir_stream *in,
		weir_filter_fn fn, void *arg, struct weir_stream **out);
int weir_flat_map(struct weir_pipeline *p, struct weir_stream *in,
		  weir_flat_map_fn fn, uint32_t out_size, uint32_t max_out,
		  void *arg, struct weir_stream **out);

/* ---- keyed streams ---- */

/* Writes the key of `rec` (exactly key_size bytes) to key_out. */
typedef void (*weir_key_fn)(const void *rec, void *key_out, void *arg);

/* Route each record to the core owning its key; key_size in
 * [1, WEIR_KEY_SIZE_MAX]. */
int weir_key_by(struct weir_pipeline *p, struct weir_stream *in,
		weir_key_fn fn, uint32_t key_size, void *arg,
		struct weir_stream **out);

struct weir_state_desc; /* weir/state.h */

struct weir_process_spec {
	const char *name;
	/* Called once per record with the record's key current. */
	int (*process)(struct weir_ctx *c, const void *rec, void *arg);
	/* Optional: a timer registered for the current key fired. */
	int (*on_timer)(struct weir_ctx *c, int64_t ts_ms, int domain,
			void *arg);
	uint32_t out_size;  /* record size of the output stream */
	uint32_t max_out;   /* most records one call may emit */
	const struct weir_state_desc *states; /* named state, by index */
	unsigned nstates;
	void *arg;
};

/* A keyed process function on a stream returned by weir_key_by(). */
int weir_process(struct weir_pipeline *p, struct weir_stream *keyed,
		 const struct weir_process_spec *spec,
		 struct weir_stream **out);

/* ---- sinks ---- */

typedef int (*weir_sink_fn)(struct weir_ctx *c, const void *rec, void *arg);

/* Call fn for every record, on the core that holds it. */
int weir_sink_callback(struct weir_pipeline *p, struct weir_stream *in,
		       weir_sink_fn fn, void *arg);

/*
 * A file sink: every record of the stream goes to core 0, is formatted by
 * format() and appended to `path` through core 0's io_uring, in buffers of
 * WEIR_FILE_SINK_BUFFER bytes, with O_DIRECT where the filesystem allows
 * it.  One record's text is at most WEIR_FILE_SINK_BUFFER - 4096 bytes.
 * While the job runs the file is named "<path>.inprogress"; it is renamed
 * to `path` (after fsync) only when every input has ended, so a file at
 * `path` is always complete.  A `path` that exists and is not a regular
 * file (a directory, a device such as /dev/null, a FIFO) is refused:
 * -EINVAL from weir_sink_file, since the rename would replace it.  CSV
 * and JSON lines are both just a format() (and a header for CSV).
 *
 * Rows do not wait in a buffer for long: once none was written for
 * flush_ms, what is buffered goes to the file, so a live job's rows reach
 * "<path>.inprogress" about that long after their window closed.  A run
 * stopped before its end (weir_pipeline_stopped) leaves every row made
 * so far in "<path>.inprogress", and nothing after them.
 */
#define WEIR_FILE_SINK_BUFFER (256u << 10)
#define WEIR_FILE_SINK_FLUSH_MS_DEFAULT 1000
struct weir_file_sink {
	const char *path;
	const char *header; /* written first when not NULL, e.g. CSV columns */
	/* Write one record's text (with its newline) to buf, at most cap
	 * bytes; return the length, or -ENOSPC if cap is too small. */
	int (*format)(const void *rec, char *buf, size_t cap, void *arg);
	void *arg;
	/* 0: WEIR_FILE_SINK_FLUSH_MS_DEFAULT; negative: rows are written
	 * only when a buffer fills, at a checkpoint and at the end. */
	int32_t flush_ms;
};

int weir_sink_file(struct weir_pipeline *p, struct weir_stream *in,
		   const struct weir_file_sink *spec);

/*
 * Decimal text of v at buf, no NUL; returns the length (at most 20, 21 for
 * a negative).  For format() callbacks: about 5x cheaper than snprintf,
 * which was a tenth of the flows job.
 */
static inline size_t weir_u64_text(char *buf, uint64_t v)
{
	static const char d2[201] =
		"00010203040506070809101112131415161718192021222324"
		"25262728293031323334353637383940414243444546474849"
		"50515253545556575859606162636465666768697071727374"
		"75767778798081828384858687888990919293949596979899";
	static const uint64_t pow10[20] = { 1ull, 10ull, 100ull, 1000ull,
		10000ull, 100000ull, 1000000ull, 10000000ull, 100000000ull,
		1000000000ull, 10000000000ull, 100000000000ull,
		1000000000000ull, 10000000000000ull, 100000000000000ull,
		1000000000000000ull, 10000000000000000ull,
		100000000000000000ull, 1000000000000000000ull,
		10000000000000000000ull };
	/* Digits: log10 from the bit length (1233/4096 ~ log10(2)), then
	 * written from the end two at a time (a 13-digit timestamp: 7 steps
	 * instead of 13 divisions and a copy). */
	unsigned t = (unsigned)(64 - __builtin_clzll(v | 1)) * 1233 >> 12;
	size_t n = t + (v >= pow10[t < 19 ? t : 19] ? 1 : 0);
	char *p = buf + (n ? n : 1);

	if (n == 0)
		n = 1;
	while (v >= 100) {
		p -= 2;
		memcpy(p, d2 + (v % 100) * 2, 2);
		v /= 100;
	}
	if (v >= 10) {
		p -= 2;
		memcpy(p, d2 + v * 2, 2);
	} else {
		*--p = (char)('0' + v);
	}
	return n;
}

static inline size_t weir_i64_text(char *buf, int64_t v)
{
	if (v >= 0)
		return weir_u64_text(buf, (uint64_t)v);
	buf[0] = '-';
	return 1 + weir_u64_text(buf + 1, -(uint64_t)v);
}

/*
 * CSV and JSON-lines sinks from a field schema: weir_sink_file() with a
 * format() that walks the fields (same buffering, same rename on success).
 *
 *   u64/i64/u32/i32  native-endian integers at offset (len ignored)
 *   f64              shortest of %.15g / %.17g that reads back exactly;
 *                    NaN and infinities are `null` in JSON, nan/inf in CSV
 *   ipv4, ipv6       4 / 16 bytes in network order, printed by inet_ntop
 *                    (RFC 5952 for IPv6: lower case, longest zero run ::)
 *   string           len bytes, NUL-padded: the text ends at the first NUL
 *                    or after len bytes; bytes >= 0x80 are copied as they
 *                    are (UTF-8 is the caller's business)
 *
 * CSV: a header line of the names; a string (or name) holding a comma, a
 * double quote, CR or LF is quoted and its quotes doubled (RFC 4180);
 * lines end with LF.  JSON lines: one object per line, {"name":value,...}
 * in field order, strings and names escaped (\" \\ \n \r \t \b \f,
 * other control bytes as \u00XX).
 *
 * fields[0..nfields) (1..WEIR_FIELDS_MAX, names 1..WEIR_FIELD_NAME_MAX
 * bytes) is copied; every field must lie inside the stream's record.
 * -EINVAL with a message naming the field otherwise.
 */
#define WEIR_FIELDS_MAX 64u
#define WEIR_FIELD_NAME_MAX 64u
enum weir_field_type {
	WEIR_FIELD_U64 = 1,
	WEIR_FIELD_I64,
	WEIR_FIELD_U32,
	WEIR_FIELD_I32,
	WEIR_FIELD_F64,
	WEIR_FIELD_IPV4,
	WEIR_FIELD_IPV6,
	WEIR_FIELD_STRING,
};

struct weir_field {
	const char *name;
	enum weir_field_type type;
	uint32_t offset; /* bytes from the start of the record */
	uint32_t len;    /* STRING: its fixed size; others: 0 or their size */
};

int weir_sink_csv(struct weir_pipeline *p, struct weir_stream *in,
		  const char *path, const struct weir_field *fields,
		  unsigned nfields);
int weir_sink_jsonl(struct weir_pipeline *p, struct weir_stream *in,
		    const char *path, const struct weir_field *fields,
		    unsigned nfields);

/* ---- timers (keyed process functions) ---- */

enum weir_time_domain {
	WEIR_EVENT_TIME = 0,      /* fires when the watermark passes ts */
	WEIR_PROCESSING_TIME = 1, /* fires when the wall clock (ms) does */
};

/* A timer for the current key at ts_ms.  Registering the same (domain, ts,
 * key) twice makes one timer; each fires once, in timestamp order, through
 * the operator's on_timer with that key current. */
int weir_timer_register(struct weir_ctx *c, int domain, int64_t ts_ms);
/* 0, or -ENOENT if the current key has no such timer. */
int weir_timer_delete(struct weir_ctx *c, int domain, int64_t ts_ms);
/* The event-time watermark of the operator running now. */
int64_t weir_ctx_watermark(const struct weir_ctx *c);
/* Processing time: wall clock in ms, read once per loop tick. */
int64_t weir_ctx_processing_time(const struct weir_ctx *c);

/* ---- inside callbacks ---- */

/* Send one record (the stream's out_size bytes) downstream. */
int weir_emit(struct weir_ctx *c, const void *rec);
/* Send with an explicit event timestamp (ms). */
int weir_emit_ts(struct weir_ctx *c, const void *rec, int64_t ts_ms);
unsigned weir_ctx_core(const struct weir_ctx *c);
unsigned weir_ctx_cores(const struct weir_ctx *c);
/* Event timestamp of the current record (ms), or WEIR_TS_MIN. */
int64_t weir_ctx_timestamp(const struct weir_ctx *c);
/* The current key (keyed operators only), key_size bytes; else NULL. */
const void *weir_ctx_key(const struct weir_ctx *c);

/* The key group of a key and the core that owns it: the same mapping the
 * pipeline uses, for embedders that shard their own input. */
uint32_t weir_key_group(const void *key, uint32_t key_size,
			uint32_t key_groups);
unsigned weir_key_group_owner(uint32_t key_group, uint32_t key_groups,
			      unsigned cores);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_PIPELINE_H */
