/*
 * writer.c — one core's checkpoint writer (snapshot/ckpt.h): streams the
 * snapshot pages of an arena to a page file through the core's wr_uring,
 * then the metadata file, header and trailer, then fsyncs both.
 *
 * Pages are written straight from the arena (snapshot or shadow pages are
 * page-aligned and frozen until snapshot_end), so the flush copies nothing;
 * with O_DIRECT the page cache is bypassed too.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "core/error.h"
#include "snapshot/ckpt.h"
#include "snapshot/format.h"

enum { TAG_PAGE = 1, TAG_TAIL = 2, TAG_SYNC = 3 };
#define REAP_BATCH 64u

struct wr_ckpt_writer {
	struct wr_ckpt_writer_config cfg;
	char dir[PATH_MAX];
	struct wr_arena *arena;
	enum wr_ckpt_state state;
	int dirfd, fd_pages, fd_meta;
	bool direct, stepped, scan_done, have_retry;
	uint32_t snap_epoch, page_size, pages_total;
	struct wr_arena_iter it_all, it_changed;
	uint32_t next_changed, retry_page;
	uint32_t ndesc, nview, inflight;
	int err;
	struct wr_ckpt_page_desc *desc;	/* pages_total entries */
	uint32_t *view;			/* pages_total entries */
	uint8_t *header;		/* one aligned block */
	uint8_t *trailer;		/* aligned, trailer_cap bytes */
	size_t trailer_cap, trailer_len;
	uint8_t *sections;		/* malloc'd, packed section records */
	size_t sections_len;
	uint32_t nsections;
	uint8_t *meta;			/* aligned final meta file */
	size_t meta_len;
	uint64_t pages_size, pages_checksum, meta_checksum;
	struct wr_ckpt_core_result res;
	/* Staging: a page is copied here before its write is queued.  The
	 * arena's copy-on-write protects a snapshot page only until it is
	 * touched; after that the live page (which a queued write would
	 * still point at) changes, so the uring never gets arena memory. */
	uint8_t *stage;			/* inflight_max pages */
	uint32_t *stage_free;		/* stack of free slots */
	uint32_t nstage_free;
};

static void *aligned_zalloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, WR_CKPT_BLOCK, len) != 0)
		return NULL;
	memset(p, 0, len);
	return p;
}

/* O_DIRECT first; tmpfs and some overlay setups answer EINVAL. */
static int open_file(struct wr_ckpt_writer *w, const char *name, int *fd)
{
	int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;

	*fd = -1;
	if (!w->cfg.no_direct)
		*fd = openat(w->dirfd, name, flags | O_DIRECT, 0600);
	if (*fd < 0) {
		*fd = openat(w->dirfd, name, flags, 0600);
		w->direct = false;
	}
	if (*fd < 0)
		return wr_error(-errno, "checkpoint: cannot create %s/%s: %s",
				w->dir, name, strerror(errno));
	return 0;
}

static int open_files(struct wr_ckpt_writer *w)
{
	struct wr_ckpt_core_result *r = &w->res;
	int err;

	if (mkdir(w->dir, 0700) != 0 && errno != EEXIST)
		return wr_error(-errno, "checkpoint: cannot create directory "
				"%s: %s", w->dir, strerror(errno));
	w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0)
		return wr_error(-errno, "checkpoint: cannot open directory "
				"%s: %s", w->dir, strerror(errno));
	wr_ckpt_file_name(r->pages_file, sizeof(r->pages_file),
			  w->cfg.ckpt_id, w->cfg.core, "pages");
	wr_ckpt_file_name(r->meta_file, sizeof(r->meta_file), w->cfg.ckpt_id,
			  w->cfg.core, "meta");
	w->direct = !w->cfg.no_direct;
	err = open_file(w, r->pages_file, &w->fd_pages);
	if (err == 0)
		err = open_file(w, r->meta_file, &w->fd_meta);
	return err;
}

static int alloc_buffers(struct wr_ckpt_writer *w)
{
	size_t n = w->pages_total;

	w->trailer_cap = wr_ckpt_round_up(n * sizeof(struct wr_ckpt_page_desc)
			 + n * sizeof(uint32_t)
			 + sizeof(struct wr_ckpt_file_tail), WR_CKPT_BLOCK);
	w->desc = calloc(n, sizeof(*w->desc));
	w->view = calloc(n, sizeof(*w->view));
	w->header = aligned_zalloc(WR_CKPT_BLOCK);
	w->trailer = aligned_zalloc(w->trailer_cap);
	w->stage = aligned_zalloc((size_t)w->cfg.inflight_max * w->page_size);
	w->stage_free = calloc(w->cfg.inflight_max, sizeof(*w->stage_free));
	if (!w->desc || !w->view || !w->header || !w->trailer || !w->stage ||
	    !w->stage_free)
		return wr_error(-ENOMEM, "checkpoint: no memory for the "
				"writer of %u pages", w->pages_total);
	for (uint32_t i = 0; i < w->cfg.inflight_max; i++)
		w->stage_free[w->nstage_free++] = i;
	return 0;
}

static int check_config(const struct wr_ckpt_writer_config *cfg,
			const struct wr_arena *a)
{
	if (cfg->dir == NULL || strlen(cfg->dir) >= PATH_MAX - 80)
		return wr_error(-EINVAL, "checkpoint: bad directory");
	if (cfg->ckpt_id == 0 || cfg->uring == NULL)
		return wr_error(-EINVAL, "checkpoint: id 0 or no uring");
	if (cfg->parent_id >= cfg->ckpt_id)
		return wr_error(-EINVAL, "checkpoint: parent %llu of %llu",
				(unsigned long long)cfg->parent_id,
				(unsigned long long)cfg->ckpt_id);
	if (!a->snap_pending)
		return wr_error(-EINVAL, "checkpoint %llu: the arena of core "
				"%u has no pending snapshot",
				(unsigned long long)cfg->ckpt_id, cfg->core);
	if (cfg->parent_id != 0 && cfg->parent_epoch > a->snap_epoch)
		return wr_error(-EINVAL, "checkpoint: parent epoch %u after "
				"the snapshot's %u (restored arena? take a "
				"full checkpoint)", cfg->parent_epoch,
				a->snap_epoch);
	return 0;
}

int wr_ckpt_writer_create(const struct wr_ckpt_writer_config *cfg,
			  struct wr_arena *arena, struct wr_ckpt_writer **out)
{
	struct wr_ckpt_writer *w;
	int err = check_config(cfg, arena);

	if (err)
		return err;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return wr_error(-ENOMEM, "checkpoint: no memory for a writer");
	w->cfg = *cfg;
	if (w->cfg.inflight_max == 0)
		w->cfg.inflight_max = WR_CKPT_INFLIGHT_DEFAULT;
	if (w->cfg.inflight_max > 4096)
		w->cfg.inflight_max = 4096;
	snprintf(w->dir, sizeof(w->dir), "%s", cfg->dir);
	w->cfg.dir = w->dir;
	w->arena = arena;
	w->dirfd = w->fd_pages = w->fd_meta = -1;
	w->snap_epoch = arena->snap_epoch;
	w->page_size = arena->page_size;
	w->pages_total = arena->pages_total;
	w->next_changed = WR_ARENA_NO_PAGE;
	w->state = WR_CKPT_PAGES;
	err = alloc_buffers(w);
	if (err == 0)
		err = open_files(w);
	if (err) {
		wr_ckpt_writer_destroy(w);
		return err;
	}
	if (cfg->parent_id != 0 &&
	    wr_arena_pages_written_since(arena, cfg->parent_epoch,
					 &w->it_changed))
		w->next_changed = w->it_changed.page;
	*out = w;
	return 0;
}

int wr_ckpt_writer_add_section(struct wr_ckpt_writer *w, const char *name,
			       const void *bytes, size_t len)
{
	struct wr_ckpt_section_head h = { 0 };
	size_t rec = sizeof(h) + wr_ckpt_round_up(len, 8);
	uint8_t *grown;

	if (w->stepped || name == NULL || strlen(name) == 0 ||
	    strlen(name) > WR_CKPT_SECTION_NAME_MAX)
		return wr_error(-EINVAL, "checkpoint: section '%s' after the "
				"first step or badly named", name ? name : "");
	if (w->nsections == WR_CKPT_SECTIONS_MAX || len > (1u << 30))
		return wr_error(-E2BIG, "checkpoint: more than %u sections or "
				"one over 1 GiB", WR_CKPT_SECTIONS_MAX);
	grown = realloc(w->sections, w->sections_len + rec);
	if (grown == NULL)
		return wr_error(-ENOMEM, "checkpoint: no memory for section "
				"'%s' (%zu bytes)", name, len);
	w->sections = grown;
	memcpy(h.name, name, strlen(name));
	h.len = len;
	h.checksum = XXH3_64bits(bytes, len);
	memset(grown + w->sections_len, 0, rec);
	memcpy(grown + w->sections_len, &h, sizeof(h));
	if (len)
		memcpy(grown + w->sections_len + sizeof(h), bytes, len);
	w->sections_len += rec;
	w->nsections++;
	return 0;
}

static int queue_write_slot(struct wr_ckpt_writer *w, int fd,
			    const void *buf, size_t len, uint64_t off,
			    uint32_t kind, uint32_t slot)
{
	int err = wr_uring_write(w->cfg.uring, fd, buf, (uint32_t)len, off,
				 WR_CKPT_TAG_BIT | ((uint64_t)slot << 40) |
				 ((uint64_t)kind << 32) | len);

	if (err == 0)
		w->inflight++;
	return err;
}

static int queue_write(struct wr_ckpt_writer *w, int fd, const void *buf,
		       size_t len, uint64_t off, uint32_t kind)
{
	return queue_write_slot(w, fd, buf, len, off, kind, 0);
}

/* The next page of the snapshot view, or false at its end. */
static bool next_view_page(struct wr_ckpt_writer *w, uint32_t *page)
{
	if (w->have_retry) {
		w->have_retry = false;
		*page = w->retry_page;
		return true;
	}
	if (!wr_arena_pages_written_since(w->arena, 0, &w->it_all))
		return false;
	*page = w->it_all.page;
	return true;
}

/* Whether view page p goes into this file: every page of a full
 * checkpoint, else those written since the parent's epoch. */
static bool page_changed(const struct wr_ckpt_writer *w, uint32_t p)
{
	return w->cfg.parent_id == 0 || p == w->next_changed;
}

static void advance_changed(struct wr_ckpt_writer *w)
{
	if (w->cfg.parent_id == 0)
		return;
	w->next_changed = wr_arena_pages_written_since(w->arena,
			  w->cfg.parent_epoch, &w->it_changed) ?
			  w->it_changed.page : WR_ARENA_NO_PAGE;
}

/* Queues up to the budget of page writes; checksums before the write. */
static int queue_pages(struct wr_ckpt_writer *w)
{
	uint32_t p;

	for (uint32_t n = 0; n < WR_CKPT_STEP_PAGES; n++) {
		if (w->inflight >= w->cfg.inflight_max)
			return 0;
		if (!next_view_page(w, &p)) {
			w->scan_done = true;
			return 0;
		}
		if (page_changed(w, p)) {
			uint32_t slot = w->stage_free[--w->nstage_free];
			uint8_t *b = w->stage + (size_t)slot * w->page_size;
			memcpy(b, wr_arena_snapshot_page(w->arena, p),
			       w->page_size);
			uint64_t sum = XXH3_64bits(b, w->page_size);
			uint64_t off = WR_CKPT_BLOCK +
				       (uint64_t)w->ndesc * w->page_size;
			int err = queue_write_slot(w, w->fd_pages, b,
						   w->page_size, off, TAG_PAGE,
						   slot);
			if (err)
				w->stage_free[w->nstage_free++] = slot;
			if (err == -EAGAIN) { /* uring FIFO full: next step */
				w->have_retry = true;
				w->retry_page = p;
				return 0;
			}
			if (err)
				return err;
			w->desc[w->ndesc].page_id = p;
			w->desc[w->ndesc++].checksum = sum;
			advance_changed(w);
		}
		w->view[w->nview++] = p;
	}
	return 0;
}

/* The header block; trailer_off is set before the checksum is taken. */
static void fill_header(const struct wr_ckpt_writer *w, uint8_t *block,
			const char *magic, uint32_t count, uint64_t trailer_off)
{
	struct wr_ckpt_file_header h = { 0 };

	memcpy(h.magic, magic, 8);
	h.version = WR_CKPT_FORMAT_VERSION;
	h.header_size = WR_CKPT_BLOCK;
	h.fingerprint = w->cfg.fingerprint;
	h.ckpt_id = w->cfg.ckpt_id;
	h.parent_id = w->cfg.parent_id;
	h.core = w->cfg.core;
	h.page_size = w->page_size;
	h.count = count;
	h.view_count = w->nview;
	h.snap_epoch = w->snap_epoch;
	h.parent_epoch = w->cfg.parent_epoch;
	h.body_off = WR_CKPT_BLOCK;
	h.trailer_off = trailer_off;
	h.header_checksum = XXH3_64bits(&h, offsetof(struct
					wr_ckpt_file_header, header_checksum));
	memset(block, 0, WR_CKPT_BLOCK);
	memcpy(block, &h, sizeof(h));
}

/* Puts the tail into the last 64 bytes of buf[0..len) and returns the
 * file checksum: XXH3 of `pre` (the header block, or NULL) then buf up to
 * the tail. */
static uint64_t seal_tail(uint8_t *buf, size_t len, const uint8_t *pre,
			  uint64_t trailer_off, uint64_t file_size,
			  uint32_t count, uint32_t view_count)
{
	struct wr_ckpt_file_tail t = { 0 };
	XXH3_state_t st;
	size_t body = len - sizeof(t);

	XXH3_64bits_reset(&st);
	if (pre)
		XXH3_64bits_update(&st, pre, WR_CKPT_BLOCK);
	XXH3_64bits_update(&st, buf, body);
	memcpy(t.magic, WR_CKPT_MAGIC_TAIL, 8);
	t.trailer_off = trailer_off;
	t.file_size = file_size;
	t.count = count;
	t.view_count = view_count;
	t.file_checksum = XXH3_64bits_digest(&st);
	memcpy(buf + body, &t, sizeof(t));
	return t.file_checksum;
}

/* The meta file: header block, section records, zero pad, tail. */
static int build_meta(struct wr_ckpt_writer *w)
{
	size_t len = wr_ckpt_round_up(WR_CKPT_BLOCK + w->sections_len +
			sizeof(struct wr_ckpt_file_tail), WR_CKPT_BLOCK);

	w->meta = aligned_zalloc(len);
	if (w->meta == NULL)
		return wr_error(-ENOMEM, "checkpoint: no memory for %zu "
				"bytes of metadata", len);
	/* The meta file's trailer is its tail: trailer_off = len.  (Setting
	 * it after the checksum broke every meta file whose section count
	 * times page size was not len - 4096.) */
	fill_header(w, w->meta, WR_CKPT_MAGIC_META, w->nsections, len);
	if (w->sections_len)
		memcpy(w->meta + WR_CKPT_BLOCK, w->sections, w->sections_len);
	w->meta_len = len;
	w->meta_checksum = seal_tail(w->meta, len, NULL, len, len,
				     w->nsections, 0);
	return 0;
}

/* Header and trailer of the page file and the meta file, all at once. */
static int queue_tail(struct wr_ckpt_writer *w)
{
	size_t dlen = (size_t)w->ndesc * sizeof(*w->desc);
	uint64_t toff = WR_CKPT_BLOCK + (uint64_t)w->ndesc * w->page_size;
	int err = build_meta(w);

	if (err)
		return err;
	fill_header(w, w->header, WR_CKPT_MAGIC_PAGES, w->ndesc, toff);
	w->trailer_len = wr_ckpt_round_up(dlen + w->nview * sizeof(uint32_t) +
			 sizeof(struct wr_ckpt_file_tail), WR_CKPT_BLOCK);
	memset(w->trailer, 0, w->trailer_len);
	memcpy(w->trailer, w->desc, dlen);
	memcpy(w->trailer + dlen, w->view, w->nview * sizeof(uint32_t));
	w->pages_size = toff + w->trailer_len;
	w->pages_checksum = seal_tail(w->trailer, w->trailer_len, w->header,
				      toff, w->pages_size, w->ndesc, w->nview);
	/* The FIFO holds 4096 and we have < inflight_max queued: no EAGAIN
	 * unless another user filled it, which fails this checkpoint. */
	err = queue_write(w, w->fd_pages, w->trailer, w->trailer_len, toff,
			  TAG_TAIL);
	if (err == 0)
		err = queue_write(w, w->fd_pages, w->header, WR_CKPT_BLOCK, 0,
				  TAG_TAIL);
	if (err == 0)
		err = queue_write(w, w->fd_meta, w->meta, w->meta_len, 0,
				  TAG_TAIL);
	return err;
}

static int queue_syncs(struct wr_ckpt_writer *w)
{
	uint64_t tag = WR_CKPT_TAG_BIT | ((uint64_t)TAG_SYNC << 32);
	int err = wr_uring_fsync(w->cfg.uring, w->fd_pages, tag);

	if (err)
		return err;
	w->inflight++;
	err = wr_uring_fsync(w->cfg.uring, w->fd_meta, tag);
	if (err == 0)
		w->inflight++;
	return err;
}

void wr_ckpt_writer_on_done(struct wr_ckpt_writer *w,
			    const struct wr_uring_done *d)
{
	uint32_t kind = (uint32_t)(d->tag >> 32) & 0xffu;
	uint32_t len = (uint32_t)d->tag;

	w->inflight--;
	if (kind == TAG_PAGE)
		w->stage_free[w->nstage_free++] = (uint32_t)(d->tag >> 40) &
						  0xffffu;
	if (d->res < 0) {
		if (w->err == 0)
			w->err = d->res;
	} else if (kind != TAG_SYNC && (uint32_t)d->res != len && !w->err) {
		w->err = -EIO;
	}
}

static void reap(struct wr_ckpt_writer *w)
{
	struct wr_uring_done d[REAP_BATCH];
	unsigned n;

	if (w->cfg.foreign_reap)
		return;
	n = wr_uring_reap(w->cfg.uring, d, REAP_BATCH);
	for (unsigned i = 0; i < n; i++)
		wr_ckpt_writer_on_done(w, &d[i]);
}

/* One state transition at most; see the lifecycle in ckpt.h. */
static int advance(struct wr_ckpt_writer *w)
{
	int err = 0;

	switch (w->state) {
	case WR_CKPT_PAGES:
		err = queue_pages(w);
		if (err == 0 && w->scan_done && w->inflight == 0) {
			err = queue_tail(w);
			w->state = WR_CKPT_TRAILER;
		}
		break;
	case WR_CKPT_TRAILER:
		if (w->inflight == 0) {
			err = queue_syncs(w);
			w->state = WR_CKPT_SYNC;
		}
		break;
	case WR_CKPT_SYNC:
		if (w->inflight == 0)
			w->state = WR_CKPT_DURABLE;
		break;
	default:
		break;
	}
	return err;
}

static int fail(struct wr_ckpt_writer *w)
{
	if (w->inflight > 0)
		return 0; /* buffers still in the kernel: wait for them */
	w->state = WR_CKPT_FAILED;
	if (w->err == -ENOSPC || w->err == -EDQUOT)
		return wr_error(w->err, "checkpoint %llu: disk full writing "
				"%s/%s", (unsigned long long)w->cfg.ckpt_id,
				w->dir, w->res.pages_file);
	return wr_error(w->err, "checkpoint %llu: writing %s/%s failed: %s",
			(unsigned long long)w->cfg.ckpt_id, w->dir,
			w->res.pages_file, strerror(-w->err));
}

int wr_ckpt_writer_step(struct wr_ckpt_writer *w)
{
	int err;

	if (w->state == WR_CKPT_DURABLE)
		return 1;
	if (w->state == WR_CKPT_FAILED)
		return w->err;
	w->stepped = true;
	reap(w);
	if (w->err == 0) {
		err = advance(w);
		if (err && w->err == 0)
			w->err = err;
	}
	err = wr_uring_submit(w->cfg.uring);
	if (err && w->err == 0)
		w->err = err;
	if (w->err)
		return fail(w);
	return w->state == WR_CKPT_DURABLE ? 1 : 0;
}

int wr_ckpt_writer_result(const struct wr_ckpt_writer *w,
			  struct wr_ckpt_core_result *out)
{
	if (w->state != WR_CKPT_DURABLE)
		return wr_error(-EINVAL, "checkpoint %llu core %u: not durable",
				(unsigned long long)w->cfg.ckpt_id, w->cfg.core);
	*out = w->res;
	out->core = w->cfg.core;
	out->snap_epoch = w->snap_epoch;
	out->page_size = w->page_size;
	out->pages_written = w->ndesc;
	out->view_pages = w->nview;
	out->parent_id = w->cfg.parent_id;
	out->pages_size = w->pages_size;
	out->pages_checksum = w->pages_checksum;
	out->meta_size = w->meta_len;
	out->meta_checksum = w->meta_checksum;
	out->direct_io = w->direct;
	return 0;
}

enum wr_ckpt_state wr_ckpt_writer_state(const struct wr_ckpt_writer *w)
{
	return w->state;
}

/* The lifecycle of ckpt.h and invariants 2-3. */
bool wr_ckpt_writer_is_valid(const struct wr_ckpt_writer *w)
{
	if (w->state < WR_CKPT_PAGES || w->state > WR_CKPT_FAILED)
		return false;
	if (w->inflight > w->cfg.inflight_max + 3)
		return false;
	if (w->ndesc > w->nview || w->nview > w->pages_total)
		return false;
	if (w->state != WR_CKPT_PAGES && w->state != WR_CKPT_FAILED &&
	    !w->scan_done)
		return false;
	if (w->state == WR_CKPT_DURABLE && (w->inflight || w->err))
		return false;
	if (w->state == WR_CKPT_FAILED && (w->inflight || !w->err))
		return false;
	/* The arena must keep the snapshot until DURABLE or FAILED. */
	if (w->state < WR_CKPT_DURABLE && (!w->arena->snap_pending ||
	    w->arena->snap_epoch != w->snap_epoch))
		return false;
	for (uint32_t i = 1; i < w->ndesc; i++)
		if (w->desc[i].page_id <= w->desc[i - 1].page_id)
			return false;
	return true;
}

void wr_ckpt_writer_destroy(struct wr_ckpt_writer *w)
{
	if (w == NULL)
		return;
	if (w->inflight > 0 && !w->cfg.foreign_reap) {
		(void)wr_uring_drain(w->cfg.uring); /* buffers in the kernel */
		w->inflight = 0;
	}
	if (w->fd_pages >= 0)
		close(w->fd_pages);
	if (w->fd_meta >= 0)
		close(w->fd_meta);
	if (w->state != WR_CKPT_DURABLE && w->dirfd >= 0) {
		(void)unlinkat(w->dirfd, w->res.pages_file, 0);
		(void)unlinkat(w->dirfd, w->res.meta_file, 0);
	}
	if (w->dirfd >= 0)
		close(w->dirfd);
	free(w->desc);
	free(w->view);
	free(w->header);
	free(w->trailer);
	free(w->sections);
	free(w->meta);
	free(w->stage);
	free(w->stage_free);
	free(w);
}
