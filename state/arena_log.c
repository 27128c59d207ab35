/*
 * state/arena_log.c — the arena's changelog: noted ranges sealed into a
 * ring with their bytes, and replay (the contract and invariants are in
 * state/arena.h, "the changelog").
 *
 * COSTS (why this shape)
 *   - A note is one store into the pending list and a compare with the
 *     last word (a slot upserted twice in a row is noted once): ~1 ns on
 *     the record path, and nothing when the log is off (a->log == NULL).
 *   - The seal copies each noted range once per tick, from L1, into a ring
 *     written sequentially: for 32-byte table slots 40 bytes per update,
 *     for 8-byte values 12 (two in a row share a word: PAIR, arena.h).
 *     Page copy-on-write copies 64 KiB per page first touched after a
 *     snapshot; with uniform random updates of a 1 GiB table every page is
 *     touched within ~45 ms (docs/architecture.md), so a changelog
 *     checkpoint writes 40 B x updates instead of the whole state.
 *   - The ring is one reservation (MAP_NORESERVE, huge pages asked for):
 *     no allocation on the data path; full means broken, and the next
 *     checkpoint is a page snapshot, never a stall.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __x86_64__
#include <immintrin.h>
#endif

#include "core/error.h"
#include "state/arena.h"
#include "state/table.h"	/* wr_prefetch_write, wr_prefetch_l2 */

#define LEN_MASK ((1ull << WR_ARENA_LOG_LEN_BITS) - 1)
#define OFF_MASK ((1ull << WR_ARENA_LOG_OFF_BITS) - 1)
#define PAGE_SIZE_MAX (512u << 10)	/* an entry must fit in a chunk */
#define ALIGN_BLOCK 4096u		/* segments start block-aligned */

static inline unsigned word_kind(uint64_t w)
{
	return (unsigned)(w >> 61);
}

static inline uint64_t word_len(uint64_t w)
{
	return (w >> WR_ARENA_LOG_OFF_BITS) & LEN_MASK;
}

static inline uint64_t word_off(uint64_t w)
{
	return w & OFF_MASK;
}

static inline uint64_t round8(uint64_t v)
{
	return (v + 7) & ~7ull;
}

#define PAIR_MASK ((1ull << WR_ARENA_LOG_PAIR_BITS) - 1)

/* A noted word the seal may pair: an 8-byte WRITE, 8-aligned, below 8 GiB
 * (every other bit fixed: one AND and one compare). */
static inline bool pairable(uint64_t w)
{
	const uint64_t free_bits = (PAIR_MASK << 3);

	return (w & ~free_bits) == ((uint64_t)WR_ARENA_LOG_WRITE << 61 |
				    8ull << WR_ARENA_LOG_OFF_BITS);
}

/* The arena offset of a PAIR's first (half 0) or second write (half
 * WR_ARENA_LOG_HALF, 4; any other non-zero: also the second).  No branch:
 * replay alternates the halves. */
static inline uint64_t pair_off(uint64_t w, unsigned half)
{
	unsigned shift = WR_ARENA_LOG_PAIR_BITS & -(unsigned)(half == 0);

	return ((w >> shift) & PAIR_MASK) << 3;
}

/* A PAIR word's spare bit clear and both writes' pages below `pages`. */
static inline bool pair_ok(uint64_t w, unsigned shift, uint64_t pages)
{
	return !(w >> 60 & 1) && pair_off(w, 0) >> shift < pages &&
	       pair_off(w, 1) >> shift < pages;
}

int wr_arena_log_enable(struct wr_arena *a, uint64_t ring_bytes,
			uint32_t pend_max)
{
	struct wr_arena_log *l;

	if (a->log != NULL)
		return wr_error(-EBUSY, "arena: changelog already on");
	if (ring_bytes < 2ull * WR_ARENA_LOG_CHUNK ||
	    (ring_bytes & (ring_bytes - 1)) || pend_max == 0)
		return wr_error(-EINVAL, "arena: changelog ring of %llu bytes "
				"is not a power of two >= %u",
				(unsigned long long)ring_bytes,
				2 * WR_ARENA_LOG_CHUNK);
	if (a->page_size > PAGE_SIZE_MAX || a->map_bytes > OFF_MASK)
		return wr_error(-EINVAL, "arena: no changelog with %u-byte "
				"pages or over 1 TiB", a->page_size);
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	l->pend = malloc((size_t)pend_max * sizeof(*l->pend));
	l->ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (l->pend == NULL || l->ring == MAP_FAILED) {
		if (l->ring != MAP_FAILED)
			munmap(l->ring, ring_bytes);
		free(l->pend);
		free(l);
		return wr_error(-ENOMEM, "arena: no memory for a changelog "
				"ring of %llu bytes",
				(unsigned long long)ring_bytes);
	}
	(void)madvise(l->ring, ring_bytes, MADV_HUGEPAGE);
	/* Mapped now, off the data path: fresh memory faults at ~500 MB/s
	 * on this VM (huge pages), and a ring first written by the seal put
	 * those faults on the update path (3% of the cycles of ckpt_bench's
	 * updates at 1 GiB in clear_page_erms).  Older kernels: on use. */
	(void)madvise(l->ring, ring_bytes, MADV_POPULATE_WRITE);
	l->size = ring_bytes;
	l->pend_max = pend_max;
	l->pend_lim = 0;	/* broken */
	l->broken = true;	/* until the first page snapshot */
	a->log = l;
	return 0;
}

void wr_arena_log_disable(struct wr_arena *a)
{
	struct wr_arena_log *l = a->log;

	if (l == NULL)
		return;
	munmap(l->ring, l->size);
	free(l->pend);
	free(l);
	a->log = NULL;
}

static void log_break(struct wr_arena_log *l)
{
	if (!l->broken)
		l->breaks++;
	l->broken = true;
	l->pend_lim = 0;
	l->npend = 0;
	l->last = 0;
}

static void push(struct wr_arena_log *l, uint64_t w)
{
	if (l->npend == l->pend_max) {
		log_break(l);
		return;
	}
	l->pend[l->npend++] = l->last = w;
}

/* Splits WRITE/ZERO ranges at page ends and ALLOC/FREE runs at the length
 * field's limit; drops empty ranges and everything while broken. */
void wr_arena_log_note_slow(struct wr_arena *a, unsigned kind, uint64_t off,
			    uint64_t len)
{
	struct wr_arena_log *l = a->log;
	bool pages = kind == WR_ARENA_LOG_ALLOC ||
		     kind == WR_ARENA_LOG_ALLOC_ZEROED ||
		     kind == WR_ARENA_LOG_FREE;

	while (len > 0 && !l->broken) {
		uint64_t n = pages ? (len < LEN_MASK ? len : LEN_MASK) :
			     a->page_size - (off & (a->page_size - 1));
		if (n > len)
			n = len;
		push(l, wr_arena_log_word(kind, n, off));
		len -= n;
		off += pages ? n << a->page_shift : n;
	}
}

/* An 8-byte word into the ring without reading its line first: a ring
 * line is written once and read next by the writer (or the kernel's DMA),
 * much later, so a normal store's read-for-ownership is wasted traffic. */
static inline void put_word(uint8_t *to, uint64_t v)
{
#ifdef __x86_64__
	_mm_stream_si64((long long *)(void *)to, (long long)v);
#else
	memcpy(to, &v, 8);
#endif
}

/* Room for n bytes at head inside one chunk (padding to the chunk's end
 * first if needed), or false (broken: the ring is full). */
static bool room(struct wr_arena_log *l, uint64_t n)
{
	uint64_t end = (l->head | (WR_ARENA_LOG_CHUNK - 1)) + 1;

	if (l->head + n > end) {
		if (end - l->tail > l->size) {
			log_break(l);
			return false;
		}
		uint64_t pad = wr_arena_log_word(WR_ARENA_LOG_PAD,
						 end - l->head - 8, 0);
		put_word(l->ring + (l->head & (l->size - 1)), pad);
		l->head = end;
	}
	if (l->head + n - l->tail > l->size) {
		log_break(l);
		return false;
	}
	return true;
}

static void append(struct wr_arena *a, uint64_t w)
{
	struct wr_arena_log *l = a->log;
	unsigned kind = word_kind(w);
	uint64_t body = kind == WR_ARENA_LOG_WRITE ? round8(word_len(w)) : 0;
	uint8_t *at;

	if (!room(l, 8 + body))
		return;
	at = l->ring + (l->head & (l->size - 1));
	memcpy(at, &w, 8);
	if (body) {
		uint64_t len = word_len(w);
		memcpy(at + 8, a->base + word_off(w), len);
		if (body > len)
			memset(at + 8 + len, 0, body - len);
	}
	l->head += 8 + body;
	l->entries++;
	l->bytes += 8 + body;
}

/* A payload's bytes; 8-byte aligned ranges (table values, slots, slab
 * headers: nearly all) a word at a time, padding included (an aligned
 * range's round-up stays in its page), others through memcpy and zeroes. */
static inline void copy_payload(uint8_t *to, const uint8_t *from,
				uint64_t len)
{
	if (WEIR_LIKELY((((uintptr_t)from | len) & 7) == 0)) {
		for (uint64_t i = 0; i < len; i += 8) {
			uint64_t v;
			memcpy(&v, from + i, 8);
			put_word(to + i, v);
		}
		return;
	}
	memcpy(to, from, len);
	memset(to + len, 0, round8(len) - len);
}

/* Pending words i and i + 1 go to the ring as one PAIR. */
static inline bool pair_at(const struct wr_arena_log *l, uint32_t i)
{
	return i + 1 < l->npend && pairable(l->pend[i]) &&
	       pairable(l->pend[i + 1]);
}

/* What the pending entries take in the ring, paired as seal_fast pairs. */
static uint64_t pend_bytes(const struct wr_arena_log *l)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < l->npend; i++) {
		uint64_t w = l->pend[i];
		if (pair_at(l, i)) {
			n += 24;
			i++;
		} else {
			n += 8 + (word_kind(w) == WR_ARENA_LOG_WRITE ?
				  round8(word_len(w)) : 0);
		}
	}
	return n;
}

/* Two noted 8-byte writes as one PAIR entry (24 bytes at `to`). */
static inline void put_pair(uint8_t *to, const uint8_t *base, uint64_t wa,
			    uint64_t wb)
{
	uint64_t va, vb;

	memcpy(&va, base + word_off(wa), 8);
	memcpy(&vb, base + word_off(wb), 8);
	put_word(to, wr_arena_log_pair_word(word_off(wa), word_off(wb)));
	put_word(to + 8, va);
	put_word(to + 16, vb);
}

/*
 * Every pending entry when they all fit before the chunk's end and in the
 * ring (`bytes`, one pass over the pending words in L1): one check for
 * the lot, no call per entry.  Measured on the update path of ckpt_bench
 * at 1 GiB (noting and sealing only, no checkpoint): the entry-by-entry
 * seal cost 17% of the updates/s.  Two pairable writes in a row go as one
 * PAIR; append() (the slow path) writes them unpaired, which is as valid.
 */
static void seal_fast(struct wr_arena *a, struct wr_arena_log *l,
		      uint64_t bytes)
{
	uint8_t *at = l->ring + (l->head & (l->size - 1));

	for (uint32_t i = 0; i < l->npend; i++) {
		uint64_t w = l->pend[i];
		if (pair_at(l, i)) {
			put_pair(at, a->base, w, l->pend[++i]);
			at += 24;
			continue;
		}
		put_word(at, w);
		at += 8;
		if (word_kind(w) == WR_ARENA_LOG_WRITE) {
			uint64_t len = word_len(w);
			copy_payload(at, a->base + word_off(w), len);
			at += round8(len);
		}
	}
#ifdef __x86_64__
	_mm_sfence();	/* the streaming stores before the writer's reads */
#endif
	l->head += bytes;
	l->entries += l->npend;
	l->bytes += bytes;
}

void wr_arena_log_seal(struct wr_arena *a)
{
	struct wr_arena_log *l = a->log;
	uint64_t end, bytes;

	if (l == NULL || l->npend == 0)
		return;
	end = (l->head | (WR_ARENA_LOG_CHUNK - 1)) + 1;
	bytes = pend_bytes(l);
	if (!l->broken && l->head + bytes <= end &&
	    l->head + bytes - l->tail <= l->size)
		seal_fast(a, l, bytes);
	else
		for (uint32_t i = 0; i < l->npend && !l->broken; i++)
			append(a, l->pend[i]);
	l->npend = 0;
	l->last = 0;
}

int wr_arena_log_mark(struct wr_arena *a, uint64_t *pos)
{
	struct wr_arena_log *l = a->log;
	uint64_t gap;

	if (l == NULL)
		return -ENOSPC;
	wr_arena_log_seal(a);
	gap = (ALIGN_BLOCK - (l->head & (ALIGN_BLOCK - 1))) & (ALIGN_BLOCK - 1);
	if (!l->broken && gap > 0 && room(l, gap)) {
		/* A block boundary is never past a chunk's end: room() did
		 * not pad, so the gap is still the gap. */
		uint64_t pad = wr_arena_log_word(WR_ARENA_LOG_PAD, gap - 8, 0);
		put_word(l->ring + (l->head & (l->size - 1)), pad);
		l->head += gap;
	}
#ifdef __x86_64__
	/* The pad streamed too: a normal store to the line the seal had just
	 * streamed cost 20-28 us in some checkpoints' pauses (ckpt_bench at
	 * 1 GiB: 7 of 14 runs, none of 8 since).  Measured: fencing only
	 * where the writer takes the bytes (wr_arena_log_span), not at every
	 * seal, made the updates slower (log alone 0.87-0.93 against
	 * 0.93-0.99). */
	_mm_sfence();
#endif
	if (l->broken)
		return -ENOSPC;
	*pos = l->head;
	return 0;
}

uint64_t wr_arena_log_resume(struct wr_arena *a)
{
	struct wr_arena_log *l = a->log;

	l->head = (l->head + ALIGN_BLOCK - 1) & ~(uint64_t)(ALIGN_BLOCK - 1);
	l->tail = l->head;
	l->broken = false;
	l->pend_lim = l->pend_max;
	l->npend = 0;
	l->last = 0;
	return l->head;
}

void wr_arena_log_release(struct wr_arena *a, uint64_t pos)
{
	struct wr_arena_log *l = a->log;

	if (l != NULL && pos > l->tail && pos <= l->head)
		l->tail = pos;
}

const void *wr_arena_log_span(const struct wr_arena *a, uint64_t pos,
			      uint64_t to, uint32_t *len)
{
	const struct wr_arena_log *l = a->log;
	uint64_t end = (pos | (WR_ARENA_LOG_CHUNK - 1)) + 1;

	*len = (uint32_t)((to < end ? to : end) - pos);
	return l->ring + (pos & (l->size - 1));
}

/* ---- replay ---------------------------------------------------------- */

/* One entry at b[0..avail): its size in *used, 0 or -EBADMSG.  a NULL:
 * check only (page_size given). */
static int entry_check(const uint8_t *b, size_t avail, uint32_t page_size,
		       uint64_t pages_total, size_t *used)
{
	uint64_t w, len, off;
	unsigned kind, shift = (unsigned)__builtin_ctz(page_size);

	if (avail < 8)	/* (a shift: a divide per entry was 10% of replay) */
		return -EBADMSG;
	memcpy(&w, b, 8);
	kind = word_kind(w), len = word_len(w), off = word_off(w);
	*used = 8;
	switch (kind) {
	case WR_ARENA_LOG_PAD:
		*used += round8(len);
		return *used <= avail ? 0 : -EBADMSG;
	case WR_ARENA_LOG_WRITE:
		*used += round8(len);
		if (*used > avail)
			return -EBADMSG;
		/* fall through */
	case WR_ARENA_LOG_ZERO:
		return len > 0 && (off & (page_size - 1)) + len <= page_size &&
		       off >> shift < pages_total ? 0 : -EBADMSG;
	case WR_ARENA_LOG_ALLOC:
	case WR_ARENA_LOG_ALLOC_ZEROED:
	case WR_ARENA_LOG_FREE:
		return len > 0 && (off & (page_size - 1)) == 0 &&
		       (off >> shift) + len <= pages_total ? 0 : -EBADMSG;
	case WR_ARENA_LOG_PAIR:
		*used = 24;
		return avail >= 24 && pair_ok(w, shift, pages_total) ?
		       0 : -EBADMSG;
	default:
		return -EBADMSG;
	}
}

int wr_arena_log_check(const void *bytes, size_t len, uint32_t page_size,
		       size_t *bad_off)
{
	const uint8_t *b = bytes;
	size_t used;

	for (size_t at = 0; at < len; at += used) {
		if (entry_check(b + at, len - at, page_size,
				UINT64_MAX / page_size, &used) != 0) {
			*bad_off = at;
			return -EBADMSG;
		}
	}
	return 0;
}

/* A PAIR's (word w at b) write `half` (0 or WR_ARENA_LOG_HALF). */
static inline void pair_apply(struct wr_arena *a, const uint8_t *b,
			      uint64_t w, unsigned half)
{
	uint64_t v;

	memcpy(&v, b + 8 + 2 * half, 8);
	memcpy(a->base + pair_off(w, half), &v, 8);
}

/* The entry at b (a PAIR: its first write). */
static int entry_apply(struct wr_arena *a, const uint8_t *b)
{
	uint64_t w, v;

	memcpy(&w, b, 8);
	uint64_t len = word_len(w), off = word_off(w);
	uint32_t first = (uint32_t)(off >> a->page_shift);

	switch (word_kind(w)) {
	case WR_ARENA_LOG_PAIR:
		pair_apply(a, b, w, 0);
		return 0;
	case WR_ARENA_LOG_WRITE:
		if (WEIR_LIKELY(((off | len) & 7) == 0 && len <= 64)) {
			/* Values and slots: no call per entry. */
			for (uint64_t i = 0; i < len; i += 8) {
				memcpy(&v, b + 8 + i, 8);
				memcpy(a->base + off + i, &v, 8);
			}
			return 0;
		}
		memcpy(a->base + off, b + 8, len);
		return 0;
	case WR_ARENA_LOG_ZERO:
		memset(a->base + off, 0, len);
		return 0;
	case WR_ARENA_LOG_ALLOC:
	case WR_ARENA_LOG_ALLOC_ZEROED:
		return wr_arena_replay_alloc(a, first, (uint32_t)len,
				word_kind(w) == WR_ARENA_LOG_ALLOC_ZEROED);
	case WR_ARENA_LOG_FREE:
		return wr_arena_replay_free(a, first, (uint32_t)len);
	default:
		return 0;	/* PAD */
	}
}

/* A list element's entry in the chunk b. */
static inline const uint8_t *list_entry(const uint8_t *b, uint32_t v)
{
	return b + (v & ~(WR_ARENA_LOG_META | WR_ARENA_LOG_HALF));
}

/* Where a listed WRITE, ZERO or PAIR write goes, to prefetch it. */
static const void *entry_dest(const struct wr_arena *a, const uint8_t *b,
			      uint32_t v)
{
	uint64_t w;

	memcpy(&w, list_entry(b, v), 8);
	return a->base + (word_kind(w) == WR_ARENA_LOG_PAIR ?
			  pair_off(w, v & WR_ARENA_LOG_HALF) : word_off(w));
}

/* Prefetch distances of pass 2 (below): 64/16 and 128/24 measured
 * between 32/8 and a single stage (bench/RESULTS.md). */
#define REPLAY_AHEAD 32u
#define REPLAY_NEAR 8u

static inline bool is_meta(unsigned kind)
{
	return kind == WR_ARENA_LOG_ALLOC || kind == WR_ARENA_LOG_ALLOC_ZEROED ||
	       kind == WR_ARENA_LOG_FREE;
}

int wr_arena_log_apply_one(struct wr_arena *a, const void *entry)
{
	return entry_apply(a, entry);
}

/* Lists element v, a write to `off` (wz) or an ALLOC or FREE (meta): its
 * list by page, or both if meta; neither if both flags are false (PAD). */
static inline void split_at(uint32_t v, uint64_t off, bool meta, bool wz,
			    unsigned shift, unsigned eighths,
			    uint32_t *restrict l0, uint32_t *restrict l1,
			    size_t *k0, size_t *k1, bool two)
{
	bool first = ((off >> shift) & 7) < eighths;

	v |= meta ? WR_ARENA_LOG_META : 0;
	l0[*k0] = v;
	l1[two ? *k1 : 0] = v;
	*k0 += meta | (wz & first);
	*k1 += two & (meta | (wz & !first));
}

/* Lists entry `at` (word w, checked): a PAIR as its two writes. */
static inline void split_one(uint64_t w, size_t at, unsigned shift,
			     unsigned eighths, uint32_t *restrict l0,
			     uint32_t *restrict l1, size_t *k0, size_t *k1,
			     bool two)
{
	unsigned kind = word_kind(w);

	if (kind == WR_ARENA_LOG_PAIR) {
		split_at((uint32_t)at, pair_off(w, 0), false, true, shift,
			 eighths, l0, l1, k0, k1, two);
		split_at((uint32_t)at | WR_ARENA_LOG_HALF, pair_off(w, 1), false,
			 true, shift, eighths, l0, l1, k0, k1, two);
		return;
	}
	split_at((uint32_t)at, word_off(w), is_meta(kind),
		 kind == WR_ARENA_LOG_WRITE || kind == WR_ARENA_LOG_ZERO, shift,
		 eighths, l0, l1, k0, k1, two);
}

/*
 * Pass 1 of replay: check every entry, and list where each WRITE, ZERO and
 * each of a PAIR's writes goes (by its page: eighths out of every 8 pages to
 * list 0, the others to list 1) and every ALLOC and FREE (flagged, in both
 * lists); PADs in none.  Without a branch on the list: the two stores are
 * made for every write, and the counts move by 0 or 1.  A PAIR (two
 * counters' writes, most of a log) takes 24 bytes and a lone WRITE of up
 * to 8 bytes 16, each with its own branch moving `at` by a constant: the
 * next entry's load then waits for no arithmetic on this one's word.
 * The arena's fields are read once: the lists' stores could alias them.
 */
int wr_arena_log_split(const struct wr_arena *a, const void *bytes,
		       size_t len, const struct wr_arena_log_split *sp,
		       size_t n[2], size_t *bad_off)
{
	const uint8_t *b = bytes;
	uint32_t *l0 = sp->list[0], *l1 = sp->list[1], sink[1];
	const unsigned shift = a->page_shift, eighths = sp->eighths;
	const uint64_t psize = a->page_size, total = a->pages_total;
	const bool two = l1 != NULL;
	size_t used, k0 = 0, k1 = 0;

	if (len >= WR_ARENA_LOG_META)	/* offsets are 31 bits in a list */
		return wr_error(-EINVAL, "arena: a changelog span of %zu bytes "
				"(a chunk is at most %u)", len,
				WR_ARENA_LOG_CHUNK);
	if (!two)
		l1 = sink;
	for (size_t at = 0; at < len;) {
		uint64_t w, wl, off;
		memcpy(&w, b + at, 8);
		wl = word_len(w), off = word_off(w);
		if (WEIR_LIKELY(len - at >= 16 &&
				word_kind(w) == WR_ARENA_LOG_WRITE &&
				wl - 1 < 8 && (off & (psize - 1)) + wl <= psize &&
				off >> shift < total)) {
			split_one(w, at, shift, eighths, l0, l1, &k0, &k1, two);
			at += 16;
			continue;
		}
		if (WEIR_LIKELY(len - at >= 24 &&
				word_kind(w) == WR_ARENA_LOG_PAIR &&
				pair_ok(w, shift, total))) {
			split_one(w, at, shift, eighths, l0, l1, &k0, &k1, two);
			at += 24;
			continue;
		}
		if (entry_check(b + at, len - at, (uint32_t)psize, total,
				&used) != 0) {
			*bad_off = at;
			return -EBADMSG;
		}
		split_one(w, at, shift, eighths, l0, l1, &k0, &k1, two);
		at += used;
	}
	n[0] = k0;
	n[1] = k1;
	return 0;
}

/*
 * Pass 2: the listed entries in order, each destination line prefetched
 * into L2 REPLAY_AHEAD entries before and for writing REPLAY_NEAR before:
 * a changelog of random updates writes all over a large arena, and a
 * dependent DRAM miss per entry (~350 ns on this VM) would make replay,
 * not the disk, the restore's bottleneck.  (A single prefetchw 16 ahead
 * replayed 13.2-13.6 ns an entry, the two stages 12.1-12.7; replay_bench,
 * 1 GiB: bench/RESULTS.md.)
 */
int wr_arena_log_apply_list(struct wr_arena *a, const void *bytes,
			    const uint32_t *list, size_t n,
			    const struct wr_arena_log_meta *m, size_t *bad_off)
{
	const uint8_t *b = bytes;
	int err = 0;

	for (size_t i = 0; err == 0 && i < n; i++) {
		if (i + REPLAY_AHEAD < n)
			wr_prefetch_l2(entry_dest(a, b, list[i + REPLAY_AHEAD]));
		if (i + REPLAY_NEAR < n)
			wr_prefetch_write(entry_dest(a, b, list[i + REPLAY_NEAR]));
		const uint8_t *e = list_entry(b, list[i]);
		uint64_t w;
		memcpy(&w, e, 8);
		if (WEIR_LIKELY(word_kind(w) == WR_ARENA_LOG_PAIR)) {
			pair_apply(a, e, w, list[i] & WR_ARENA_LOG_HALF);
			continue;
		}
		if (WEIR_UNLIKELY(list[i] & WR_ARENA_LOG_META) && m != NULL)
			err = m->fn(m->arg, a, e);
		else
			err = entry_apply(a, e);
		if (err)
			*bad_off = (size_t)(e - b);
	}
	return err;
}

int wr_arena_log_apply(struct wr_arena *a, const void *bytes, size_t len,
		       size_t *bad_off)
{
	struct wr_arena_log_split sp = { { malloc(len / 8 * 4 + 4), NULL }, 8 };
	size_t n[2];
	int err;

	if (sp.list[0] == NULL)
		return -ENOMEM;
	err = wr_arena_log_split(a, bytes, len, &sp, n, bad_off);
	if (err == 0)
		err = wr_arena_log_apply_list(a, bytes, sp.list[0], n[0], NULL,
					      bad_off);
	free(sp.list[0]);
	return err;
}
