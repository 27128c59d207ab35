/*
 * state/arena.c — page arena: first-fit page runs over a bitmap, and
 * copy-on-write epochs for snapshots.  See arena.h for the invariants.
 *
 * Allocation scans the used-page bitmap a 64-bit word at a time from the
 * lowest free page (the hint): at most pages_total / 64 word loads, 4096 for a
 * 16 GiB arena of 64 KiB pages (~2 us), and only table growth and slab
 * refills allocate, never the per-record path.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif
#include <xxhash.h>

#include "core/error.h"
#include "state/arena.h"

#define BITS 64u

static bool bit_get(const uint64_t *bits, uint32_t i)
{
	return (bits[i / BITS] >> (i % BITS)) & 1u;
}

static void bits_set(uint64_t *bits, uint32_t first, uint32_t n, bool on)
{
	for (uint32_t i = first; i < first + n; i++) {
		uint64_t m = 1ull << (i % BITS);
		if (on)
			bits[i / BITS] |= m;
		else
			bits[i / BITS] &= ~m;
	}
}

/* First index >= from whose bit equals `want`, or limit. */
static uint32_t bits_find(const uint64_t *bits, uint32_t from, uint32_t limit,
			  bool want)
{
	while (from < limit) {
		uint64_t w = bits[from / BITS];
		if (!want)
			w = ~w;
		w &= ~0ull << (from % BITS);
		if (w) {
			uint32_t i = (from & ~(BITS - 1)) +
				     (uint32_t)__builtin_ctzll(w);
			return i < limit ? i : limit;
		}
		from = (from & ~(BITS - 1)) + BITS;
	}
	return limit;
}

static uint32_t bits_count(const uint64_t *bits, uint32_t n)
{
	uint32_t c = 0;

	for (uint32_t i = 0; i < n; i++)
		c += bit_get(bits, i);
	return c;
}

static int check_config(const struct wr_arena_config *cfg, uint32_t ps)
{
	if (ps < 4096 || (ps & (ps - 1)))
		return wr_error(-EINVAL, "arena page size %u is not a power of "
				"two >= 4096", ps);
	if (cfg->cap_bytes < ps || cfg->cap_bytes / ps >= WR_ARENA_NO_PAGE)
		return wr_error(-EINVAL, "arena cap %zu bytes must hold 1 to "
				"2^32-2 pages of %u bytes", cfg->cap_bytes, ps);
	if (cfg->reserve_pages >= cfg->cap_bytes / ps)
		return wr_error(-EINVAL, "arena reserve of %u pages leaves no "
				"page under a cap of %zu bytes",
				cfg->reserve_pages, cfg->cap_bytes);
	return 0;
}

static int alloc_side_arrays(struct wr_arena *a)
{
	size_t n = a->pages_total, words = (n + BITS - 1) / BITS;

	a->write_epoch = calloc(n, sizeof(uint32_t));
	a->shadow_of = malloc(n * sizeof(uint32_t));
	a->copied = malloc(n * sizeof(uint32_t));
	a->deferred = malloc(n * sizeof(uint32_t));
	a->shadow_sum = malloc(n * sizeof(uint64_t));
	a->used_bits = calloc(words, sizeof(uint64_t));
	a->shadow_bits = calloc(words, sizeof(uint64_t));
	a->partial_bits = calloc(words, sizeof(uint64_t));
	/* Large callocs are untouched zero pages until a shadow uses them. */
	a->saved = calloc(n * a->gwords, sizeof(uint64_t));
	a->nsaved = calloc(n, sizeof(uint16_t));
	if (!a->write_epoch || !a->shadow_of || !a->copied || !a->deferred ||
	    !a->used_bits || !a->shadow_bits || !a->shadow_sum ||
	    !a->partial_bits || !a->saved || !a->nsaved)
		return -ENOMEM;
	memset(a->shadow_of, 0xff, n * sizeof(uint32_t));
	return 0;
}

/* The side arrays and the arena itself (not the mapping). */
static void free_arrays(struct wr_arena *a)
{
	free(a->write_epoch);
	free(a->shadow_of);
	free(a->copied);
	free(a->deferred);
	free(a->shadow_sum);
	free(a->used_bits);
	free(a->shadow_bits);
	free(a->partial_bits);
	free(a->saved);
	free(a->nsaved);
	free(a);
}

/* WEIR_ARENA_VERIFY=1: a second reservation the size of the arena, where
 * snapshot_begin copies the state (tests: see arena.h's caveats). */
static void verify_enable(struct wr_arena *a)
{
	const char *e = getenv("WEIR_ARENA_VERIFY");

	if (!e || strcmp(e, "1") != 0)
		return;
	a->verify = mmap(NULL, a->map_bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a->verify == MAP_FAILED)
		a->verify = NULL;
}

int wr_arena_create(const struct wr_arena_config *cfg, struct wr_arena **out)
{
	uint32_t ps = cfg->page_size ? cfg->page_size : WR_ARENA_PAGE_SIZE_DEFAULT;
	struct wr_arena *a;
	int err = check_config(cfg, ps);

	if (err)
		return err;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->page_size = ps;
	a->page_shift = (uint32_t)__builtin_ctz(ps);
	a->pages_total = (uint32_t)(cfg->cap_bytes / ps);
	a->reserve_pages = cfg->reserve_pages;
	a->cap_bytes = cfg->cap_bytes;
	a->epoch = 1;
	a->gwords = (ps >> WR_ARENA_GRANULE_SHIFT) / BITS;
	err = alloc_side_arrays(a);
	if (err)
		goto fail_arrays;
	a->map_bytes = (size_t)a->pages_total << a->page_shift;
	a->base = mmap(NULL, a->map_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a->base == MAP_FAILED) {
		err = wr_error(-errno, "arena: cannot reserve %zu bytes",
			       a->map_bytes);
		goto fail_arrays;
	}
	/* Halves the TLB misses of random probes (~350 -> ~240 ns). */
	(void)madvise(a->base, a->map_bytes, MADV_HUGEPAGE);
	verify_enable(a);
	*out = a;
	return 0;

fail_arrays:
	free_arrays(a);
	return err;
}

void wr_arena_destroy(struct wr_arena *a)
{
	if (!a)
		return;
	wr_arena_log_disable(a);
	munmap(a->base, a->map_bytes);
	if (a->verify)
		munmap(a->verify, a->map_bytes);
	free_arrays(a);
}

/* First fit: a run of n free pages at or above the hint, or NO_PAGE. */
static uint32_t find_run(const struct wr_arena *a, uint32_t n)
{
	uint32_t p = a->hint, lim = a->pages_total;

	while (p < lim) {
		p = bits_find(a->used_bits, p, lim, false);
		if (p >= lim || lim - p < n)
			break;
		uint32_t end = bits_find(a->used_bits, p, p + n, true);
		if (end == p + n)
			return p;
		p = end;
	}
	return WR_ARENA_NO_PAGE;
}

static void take_pages(struct wr_arena *a, uint32_t first, uint32_t n)
{
	bits_set(a->used_bits, first, n, true);
	if (first + n > a->high_water)
		a->high_water = first + n;
	if (first == a->hint)
		a->hint = bits_find(a->used_bits, first + n, a->pages_total,
				    false);
}

static void give_pages(struct wr_arena *a, uint32_t first, uint32_t n)
{
	bits_set(a->used_bits, first, n, false);
	for (uint32_t p = first; p < first + n; p++)
		a->write_epoch[p] = 0;
	if (first < a->hint)
		a->hint = first;
}

int wr_arena_alloc(struct wr_arena *a, uint32_t npages, uint32_t *first_page,
		   bool *zeroed)
{
	uint32_t limit = a->pages_total - a->reserve_pages, first;

	if (npages == 0)
		return wr_error(-EINVAL, "arena: allocation of 0 pages");
	if (npages > limit || a->pages_used > limit - npages)
		return wr_error(-ENOMEM, "arena cap of %zu bytes reached: %u of "
				"%u pages in use, %u more requested",
				a->cap_bytes, a->pages_used, limit, npages);
	first = find_run(a, npages);
	if (first == WR_ARENA_NO_PAGE)
		return wr_error(-ENOMEM, "arena (cap %zu bytes): no run of %u "
				"free contiguous pages", a->cap_bytes, npages);
	if (zeroed)
		*zeroed = first >= a->high_water;
	if (a->log)
		wr_arena_log_note_slow(a, first >= a->high_water ?
				       WR_ARENA_LOG_ALLOC_ZEROED :
				       WR_ARENA_LOG_ALLOC,
				       (uint64_t)first << a->page_shift, npages);
	take_pages(a, first, npages);
	for (uint32_t p = first; p < first + npages; p++)
		a->write_epoch[p] = a->epoch;
	a->pages_used += npages;
	*first_page = first;
	return 0;
}

/* The pending snapshot still needs the live bytes of this page. */
static bool owed_to_snapshot(const struct wr_arena *a, uint32_t p)
{
	return a->snap_pending && a->write_epoch[p] <= a->snap_epoch &&
	       a->shadow_of[p] == WR_ARENA_NO_PAGE;
}

static void shadow_complete(struct wr_arena *a, uint32_t page);

void wr_arena_free(struct wr_arena *a, uint32_t first_page, uint32_t npages)
{
	if (a->log)
		wr_arena_log_note_slow(a, WR_ARENA_LOG_FREE,
				       (uint64_t)first_page << a->page_shift,
				       npages);
	for (uint32_t p = first_page; p < first_page + npages; p++) {
		/* Always on: freeing a free page would hand it out twice. */
		assert(p < a->pages_total && bit_get(a->used_bits, p) &&
		       !bit_get(a->shadow_bits, p));
		if (bit_get(a->partial_bits, p))	/* its rest is here */
			shadow_complete(a, p);
		if (owed_to_snapshot(a, p)) {
			a->deferred[a->ndeferred++] = p;
			continue;
		}
		give_pages(a, p, 1);
		a->pages_used--;
	}
}

#define GSHIFT WR_ARENA_GRANULE_SHIFT

static uint32_t granules(const struct wr_arena *a)
{
	return a->page_size >> GSHIFT;
}

/* Streams len bytes (a multiple of 64, 32-byte aligned): the shadow is read
 * again only by the checkpoint writer, much later; caching it only evicts
 * the table, and streaming stores skip the read-for-ownership (1 GiB of
 * 64 KiB pages in random order on this VM: memcpy 4.5 GB/s, streaming
 * 9.4 GB/s).  The caller fences before the page goes to the kernel. */
static void copy_nt(void *dst, const void *src, size_t len)
{
#ifdef __AVX2__
	__m256i *d = dst;
	const __m256i *s = src;

	for (size_t i = 0; i < len / sizeof(*d); i += 2) {
		__m256i x0 = _mm256_load_si256(s + i);
		__m256i x1 = _mm256_load_si256(s + i + 1);
		_mm256_stream_si256(d + i, x0);
		_mm256_stream_si256(d + i + 1, x1);
	}
#else
	memcpy(dst, src, len);
#endif
}

/* Copies the granules of [g0, g1) of page not yet saved into its shadow and
 * marks them saved: the number copied. */
static uint32_t save_granules(struct wr_arena *a, uint32_t page, uint32_t g0,
			      uint32_t g1)
{
	uint64_t *bits = a->saved + (size_t)page * a->gwords;
	const uint8_t *src = wr_arena_page_ptr(a, page);
	uint8_t *dst = wr_arena_page_ptr(a, a->shadow_of[page]);
	uint32_t n = 0;

	for (uint32_t g = bits_find(bits, g0, g1, false); g < g1;
	     g = bits_find(bits, g, g1, false)) {
		uint32_t e = bits_find(bits, g, g1, true);
		size_t off = (size_t)g << GSHIFT;
		memcpy(dst + off, src + off, (size_t)(e - g) << GSHIFT);
		bits_set(bits, g, e - g, true);
		n += e - g;
		g = e;
	}
	a->nsaved[page] = (uint16_t)(a->nsaved[page] + n);
	return n;
}

/* WEIR_ARENA_VERIFY: the snapshot bytes of page must be those copied at
 * snapshot_begin; a mismatch is a write that no barrier covered. */
static void verify_page(const struct wr_arena *a, uint32_t page,
			const uint8_t *snap)
{
	const uint8_t *ref;

	if (!a->verify || page >= a->verify_pages)
		return;
	ref = a->verify + ((size_t)page << a->page_shift);
	if (memcmp(snap, ref, a->page_size) == 0)
		return;
	for (uint32_t i = 0; i < a->page_size; i++)
		if (snap[i] != ref[i]) {
			fprintf(stderr, "weir: WEIR_ARENA_VERIFY: page %u byte "
				"%u changed after the snapshot without a "
				"barrier\n", page, i);
			abort();
		}
}

/* Prefetches the saved granules of a shadow: the barrier wrote them one at
 * a time, often long before, so they are scattered cache misses that the
 * hash would otherwise take one after another. */
static void prefetch_saved(const struct wr_arena *a, const uint64_t *bits,
			   const uint8_t *dst)
{
	for (uint32_t w = 0; w < a->gwords; w++)
		for (uint64_t b = bits[w]; b; b &= b - 1) {
			uint32_t g = w * BITS + (uint32_t)__builtin_ctzll(b);
			__builtin_prefetch(dst + ((size_t)g << GSHIFT));
		}
}

/*
 * Completes page's partial shadow: the granules not saved are copied from
 * the live page (unchanged since the snapshot: every write saved its
 * granules first) with streaming stores, and the shadow is checksummed
 * (XXH3-64, snapshot/format.h's page checksum) in page order from whichever
 * copy holds the snapshot's bytes, the saved granules prefetched first.
 * The page's barrier is the fast path again afterwards.
 */
static void shadow_complete(struct wr_arena *a, uint32_t page)
{
	uint64_t *bits = a->saved + (size_t)page * a->gwords;
	const uint8_t *src = wr_arena_page_ptr(a, page);
	uint8_t *dst = wr_arena_page_ptr(a, a->shadow_of[page]);
	uint32_t n = granules(a);
	XXH3_state_t st;

	prefetch_saved(a, bits, dst);
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset(&st);
	for (uint32_t g = 0; g < n;) {
		bool in = bit_get(bits, g);
		uint32_t e = bits_find(bits, g, n, !in);
		size_t off = (size_t)g << GSHIFT, len = (size_t)(e - g) << GSHIFT;
		if (!in)
			copy_nt(dst + off, src + off, len);
		XXH3_64bits_update(&st, (in ? dst : src) + off, len);
		g = e;
	}
#ifdef __AVX2__
	_mm_sfence();
#endif
	memset(bits, 0xff, a->gwords * sizeof(uint64_t));
	a->nsaved[page] = (uint16_t)n;
	a->shadow_sum[page] = XXH3_64bits_digest(&st);
	bits_set(a->partial_bits, page, 1, false);
	a->write_epoch[page] = a->epoch;
	verify_page(a, page, dst);
}

/* A shadow page for page, partial and empty. */
static int shadow_take(struct wr_arena *a, uint32_t page)
{
	uint32_t s = find_run(a, 1);

	if (s == WR_ARENA_NO_PAGE)
		return wr_error(-ENOMEM, "arena cap of %zu bytes reached: no "
				"page left for a copy-on-write shadow",
				a->cap_bytes);
	take_pages(a, s, 1);
	bits_set(a->shadow_bits, s, 1, true);
	bits_set(a->partial_bits, page, 1, true);
	/* The shadow keeps the epoch its bytes were written in. */
	a->write_epoch[s] = a->write_epoch[page];
	a->shadow_of[page] = s;
	a->copied[a->shadow_pages++] = page;
	a->cow_copies++;
	return 0;
}

int wr_arena_touch_slow(struct wr_arena *a, uint32_t page, uint32_t lo,
			uint32_t hi)
{
	uint32_t g0 = lo >> GSHIFT, g1 = ((hi - 1) >> GSHIFT) + 1;

	if (!a->snap_pending || a->write_epoch[page] > a->snap_epoch) {
		a->write_epoch[page] = a->epoch;	/* not in the snapshot */
		return 0;
	}
	if (a->shadow_of[page] == WR_ARENA_NO_PAGE) {
		int err = shadow_take(a, page);
		if (err)
			return err;
	}
	a->cow_granules += save_granules(a, page, g0, g1);
	if (a->nsaved[page] == granules(a))
		shadow_complete(a, page);
	return 0;
}

int wr_arena_snapshot_begin(struct wr_arena *a, uint32_t *snap_epoch)
{
	if (a->snap_pending)
		return wr_error(-EBUSY, "arena: snapshot of epoch %u still "
				"pending", a->snap_epoch);
	if (a->verify) {	/* sized for the whole reservation at create */
		memcpy(a->verify, a->base,
		       (size_t)a->high_water << a->page_shift);
		a->verify_pages = a->high_water;
	}
	a->snap_epoch = a->epoch++;
	a->snap_pending = true;
	if (snap_epoch)
		*snap_epoch = a->snap_epoch;
	return 0;
}

const void *wr_arena_snapshot_page(struct wr_arena *a, uint32_t page)
{
	uint32_t s = a->shadow_of[page];

	if (s == WR_ARENA_NO_PAGE) {
		verify_page(a, page, wr_arena_page_ptr(a, page));
		return wr_arena_page_ptr(a, page);
	}
	if (bit_get(a->partial_bits, page))
		shadow_complete(a, page);
	return wr_arena_page_ptr(a, s);
}

bool wr_arena_snapshot_checksum(struct wr_arena *a, uint32_t page,
				uint64_t *sum)
{
	if (a->shadow_of[page] == WR_ARENA_NO_PAGE)
		return false;
	if (bit_get(a->partial_bits, page))
		shadow_complete(a, page);
	*sum = a->shadow_sum[page];
	return true;
}

bool wr_arena_snapshot_contains(const struct wr_arena *a, uint32_t page)
{
	if (!a->snap_pending || page >= a->pages_total)
		return false;
	if (a->shadow_of[page] != WR_ARENA_NO_PAGE)
		return true;
	return bit_get(a->used_bits, page) &&
	       !bit_get(a->shadow_bits, page) && a->write_epoch[page] != 0 &&
	       a->write_epoch[page] <= a->snap_epoch;
}

void wr_arena_snapshot_end(struct wr_arena *a)
{
	if (!a->snap_pending)
		return;
	for (uint32_t i = 0; i < a->shadow_pages; i++) {
		uint32_t p = a->copied[i], s = a->shadow_of[p];
		if (bit_get(a->partial_bits, p)) {	/* touched: written */
			bits_set(a->partial_bits, p, 1, false);
			a->write_epoch[p] = a->epoch;
		}
		memset(a->saved + (size_t)p * a->gwords, 0,
		       a->gwords * sizeof(uint64_t));
		a->nsaved[p] = 0;
		bits_set(a->shadow_bits, s, 1, false);
		give_pages(a, s, 1);
		a->shadow_of[p] = WR_ARENA_NO_PAGE;
	}
	a->shadow_pages = 0;
	for (uint32_t i = 0; i < a->ndeferred; i++)
		give_pages(a, a->deferred[i], 1);
	a->pages_used -= a->ndeferred;
	a->ndeferred = 0;
	a->snap_pending = false;
}

/* Epoch of the last write of the page's bytes in the current view, 0 if the
 * page is not in the view. */
static uint32_t view_epoch(const struct wr_arena *a, uint32_t p)
{
	if (!a->snap_pending)
		return bit_get(a->shadow_bits, p) ? 0 : a->write_epoch[p];
	if (!wr_arena_snapshot_contains(a, p))
		return 0;
	uint32_t s = a->shadow_of[p];
	return a->write_epoch[s != WR_ARENA_NO_PAGE ? s : p];
}

bool wr_arena_pages_written_since(const struct wr_arena *a,
				  uint32_t since_epoch,
				  struct wr_arena_iter *it)
{
	/* Never-used pages have epoch 0: the walk ends at the high water,
	 * not the cap (the last call walked 16k pages, 40-60 us, on every
	 * checkpoint's first flush step at a 1 GiB cap). */
	for (uint32_t p = it->next; p < a->high_water; p++) {
		if (view_epoch(a, p) > since_epoch) {
			it->page = p;
			it->next = p + 1;
			return true;
		}
	}
	if (it->next < a->high_water)
		it->next = a->high_water;
	return false;
}

/* May a restore make `page` live?  A page past the cap (or the cap
 * filled) is a checkpoint taken with a larger cap than this run's. */
static int restore_check(const struct wr_arena *a, uint32_t page)
{
	if (a->snap_pending)
		return wr_error(-EINVAL, "arena: cannot restore page %u while "
				"a snapshot is pending", page);
	if (page >= a->pages_total)
		return wr_error(-ENOMEM, "arena: the checkpoint's state has "
				"page %u, past this core's memory cap of %zu "
				"bytes (%u pages): it was taken with a larger "
				"cap", page, a->cap_bytes, a->pages_total);
	if (bit_get(a->used_bits, page))
		return wr_error(-EEXIST, "arena: restore of page %u, which is "
				"in use", page);
	if (a->pages_used >= a->pages_total - a->reserve_pages)
		return wr_error(-ENOMEM, "arena cap of %zu bytes reached "
				"restoring page %u", a->cap_bytes, page);
	return 0;
}

int wr_arena_restore_page(struct wr_arena *a, uint32_t page,
			  const void *bytes)
{
	int err = restore_check(a, page);

	if (err)
		return err;
	take_pages(a, page, 1);
	a->write_epoch[page] = a->epoch;
	a->pages_used++;
	memcpy(wr_arena_page_ptr(a, page), bytes, a->page_size);
	return 0;
}

/* Maps (writable, zeroed by the kernel) pages [first, first + n): never
 * changes a byte of a mapped page.  Older kernels lack the madvise: write
 * one byte per 4 KiB of the (free, unused) pages instead. */
static int populate(struct wr_arena *a, uint32_t first, uint32_t n)
{
	uint8_t *p = wr_arena_page_ptr(a, first);
	size_t len = (size_t)n << a->page_shift;

	if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno != EINVAL)
		return wr_error(-errno, "arena: cannot map %zu bytes: %s",
				len, strerror(errno));
	for (size_t off = 0; off < len; off += 4096)
		((volatile uint8_t *)p)[off] = 0;
	return 0;
}

int wr_arena_map_ahead(struct wr_arena *a, uint32_t ahead)
{
	uint32_t lim = a->pages_total, step, want, n;

	if (a->mapped < a->high_water)
		a->mapped = a->high_water; /* written, so mapped */
	want = a->high_water + (ahead < lim - a->high_water ? ahead :
				lim - a->high_water);
	if (a->mapped >= want)
		return 0;
	step = WR_ARENA_MAP_STEP >> a->page_shift;
	step = step ? step : 1;
	/* To the next step boundary: a huge page is mapped whole. */
	n = step - a->mapped % step;
	n = n < lim - a->mapped ? n : lim - a->mapped;
	int err = populate(a, a->mapped, n);
	if (err)
		return err;
	a->mapped += n;
	return 1;
}

int wr_arena_prefault_shadows(struct wr_arena *a)
{
	uint32_t want = a->pages_used, p = a->hint, lim = a->pages_total;

	while (want > 0 && p < lim) {
		p = bits_find(a->used_bits, p, lim, false);
		uint32_t end = bits_find(a->used_bits, p, lim, true);
		uint32_t n = end - p < want ? end - p : want;
		if (n == 0)
			break;
		int err = populate(a, p, n);
		if (err)
			return err;
		want -= n;
		p = end;
	}
	return 0;
}

void wr_arena_get_stats(const struct wr_arena *a, struct wr_arena_stats *s)
{
	s->cap_bytes = a->cap_bytes;
	s->bytes_used = (size_t)(a->pages_used + a->shadow_pages)
			<< a->page_shift;
	s->pages_total = a->pages_total;
	s->pages_used = a->pages_used;
	s->shadow_pages = a->shadow_pages;
	s->deferred_pages = a->ndeferred;
	s->cow_copies = a->cow_copies;
	s->cow_granules = a->cow_granules;
	s->epoch = a->epoch;
}

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			return false;                                          \
	} while (0)

/* Invariant 8 for page p with a partial shadow. */
static bool partial_is_valid(const struct wr_arena *a, uint32_t p)
{
	const uint64_t *bits = a->saved + (size_t)p * a->gwords;
	uint32_t set = 0;

	for (uint32_t w = 0; w < a->gwords; w++)
		set += (uint32_t)__builtin_popcountll(bits[w]);
	CHECK(set == a->nsaved[p] && set < granules(a));
	CHECK(bit_get(a->used_bits, p) && a->write_epoch[p] >= 1 &&
	      a->write_epoch[p] <= a->snap_epoch);
	return true;
}

static bool shadows_are_valid(const struct wr_arena *a)
{
	uint32_t with_shadow = 0;

	CHECK(a->snap_pending || (a->shadow_pages == 0 && a->ndeferred == 0));
	for (uint32_t i = 0; i < a->shadow_pages; i++) {
		uint32_t p = a->copied[i], s = a->shadow_of[p];
		CHECK(s < a->pages_total && bit_get(a->shadow_bits, s) &&
		      bit_get(a->used_bits, s));
		if (bit_get(a->partial_bits, p)) {
			CHECK(partial_is_valid(a, p));
			continue;
		}
		CHECK(a->shadow_sum[p] == XXH3_64bits(wr_arena_page_ptr(a, s),
						      a->page_size));
	}
	for (uint32_t p = 0; p < a->pages_total; p++) {
		with_shadow += a->shadow_of[p] != WR_ARENA_NO_PAGE;
		CHECK(!bit_get(a->partial_bits, p) ||
		      a->shadow_of[p] != WR_ARENA_NO_PAGE);
	}
	CHECK(with_shadow == a->shadow_pages);
	CHECK(bits_count(a->shadow_bits, a->pages_total) == a->shadow_pages);
	for (uint32_t i = 0; i < a->ndeferred; i++) {
		uint32_t p = a->deferred[i];
		CHECK(bit_get(a->used_bits, p) && !bit_get(a->shadow_bits, p));
		CHECK(a->write_epoch[p] <= a->snap_epoch);
	}
	return true;
}

/* Invariants 1-8 of arena.h; O(pages_total), for tests. */
bool wr_arena_is_valid(const struct wr_arena *a)
{
	uint32_t used = bits_count(a->used_bits, a->pages_total);

	CHECK(a->epoch >= 1);
	CHECK(!a->snap_pending || a->snap_epoch + 1 == a->epoch);
	CHECK(used == a->pages_used + a->shadow_pages);
	CHECK(a->pages_used <= a->pages_total - a->reserve_pages);
	CHECK(a->high_water <= a->pages_total && a->mapped <= a->pages_total);
	for (uint32_t p = 0; p < a->pages_total; p++) {
		bool u = bit_get(a->used_bits, p);
		CHECK(u ? a->write_epoch[p] >= 1 : a->write_epoch[p] == 0);
		CHECK(a->write_epoch[p] <= a->epoch);
		CHECK(u || p >= a->hint);
		CHECK(!u || p < a->high_water);
	}
	return shadows_are_valid(a);
}

/* ---- restore without a copy (snapshot/load.c) ---- */

bool wr_arena_pages_live(const struct wr_arena *a, uint32_t first,
			 uint32_t n)
{
	return first < a->pages_total && n <= a->pages_total - first &&
	       bits_find(a->used_bits, first, first + n, false) == first + n &&
	       bits_find(a->shadow_bits, first, first + n, true) == first + n;
}

int wr_arena_restore_claim(struct wr_arena *a, uint32_t page, void **bytes)
{
	int err = restore_check(a, page);

	if (err)
		return err;
	take_pages(a, page, 1);
	a->write_epoch[page] = a->epoch;
	a->pages_used++;
	*bytes = wr_arena_page_ptr(a, page);
	return 0;
}

/* ---- changelog replay (arena_log.c) ---- */

int wr_arena_replay_alloc(struct wr_arena *a, uint32_t first, uint32_t n,
			  bool zeroed)
{
	if (a->snap_pending || first >= a->pages_total ||
	    n > a->pages_total - first ||
	    bits_find(a->used_bits, first, first + n, true) != first + n)
		return -EBADMSG;
	if (a->pages_used + n > a->pages_total - a->reserve_pages)
		return wr_error(-ENOMEM, "arena cap of %zu bytes reached "
				"replaying the changelog", a->cap_bytes);
	/* Pages never handed out here are still the kernel's zeroes. */
	if (zeroed && first < a->high_water) {
		uint32_t lim = first + n < a->high_water ? first + n :
			       a->high_water;
		memset(wr_arena_page_ptr(a, first), 0,
		       (size_t)(lim - first) << a->page_shift);
	}
	take_pages(a, first, n);
	for (uint32_t p = first; p < first + n; p++)
		a->write_epoch[p] = a->epoch;
	a->pages_used += n;
	return 0;
}

int wr_arena_replay_free(struct wr_arena *a, uint32_t first, uint32_t n)
{
	if (a->snap_pending || first >= a->pages_total ||
	    n > a->pages_total - first ||
	    bits_find(a->used_bits, first, first + n, false) != first + n)
		return -EBADMSG;
	give_pages(a, first, n);
	a->pages_used -= n;
	return 0;
}
