/*
 * writer.c — one core's checkpoint writer (snapshot/ckpt.h): streams the
 * snapshot pages of an arena to a page file through the core's wr_uring,
 * then the metadata file, header and trailer, then fsyncs both.
 *
 * Pages are written straight from the arena (zero copy; with O_DIRECT the
 * page cache is bypassed too), with write-after-touch repair below.
 *
 * FLUSH PIPELINE (state PAGES), three cursors over desc[], each step:
 *   scan   examines up to WR_CKPT_STEP_PAGES page ids of the view, appending
 *          to view[] and, for pages that go into this file, desc[].page_id;
 *   alloc  fallocates the file range of the scanned pages (and, once the
 *          scan is done, of the trailer) through the uring, one request in
 *          flight, >= ALLOC_MIN_BYTES at a time: ext4 runs an O_DIRECT
 *          write past i_size under the exclusive inode lock, so unallocated
 *          writes serialise in io-wq (measured: fio 64 KiB x 32 O_DIRECT
 *          318 MB/s without fallocate, 1006 MB/s with; this writer 52 MB/s
 *          before);
 *   write  queues one vectored write of up to MERGE_PAGES consecutive
 *          descs straight from their snapshot pages (consecutive descs are
 *          adjacent in the file whatever their page ids; pages adjacent in
 *          memory share an iovec), each page checksummed just before the
 *          write is queued (a shadow's checksum is taken by the arena
 *          while completing it), only inside the allocated range, at most
 *          STEP_WRITES writes per step (bounds the hash per loop tick to
 *          2 MiB, ~100 us), at most RUNS_MAX merged writes in flight.
 *
 * WRITE-AFTER-TOUCH REPAIR.  A snapshot page with no shadow is the live
 * page; the arena protects its snapshot bytes only by saving them to a
 * shadow when they are touched, after which the live page changes under a
 * write still in flight (the bug the staging copy used to avoid).  The
 * writer remembers which pages of each merged write came from their live
 * page; when the write completes, every such page that has a shadow by now
 * was touched meanwhile, and is written again from its shadow: completed
 * when the rewrite reads it, the shadow holds the bytes the checksum was
 * taken from (a barrier saves bytes before their first change, the rest
 * are the live page's unchanged ones) and stays frozen until snapshot_end.
 * The rewrite is queued
 * only after the first write completed (two writes of one range in flight
 * are unordered) and before the trailer and fsync (TRAILER waits for it).
 * Cost: one extra page write per page touched while in flight; saved: a
 * memcpy of every page (half of the 25% of the core that memmove took
 * under updates at 1 GiB with the staging copy, perf), and 32 MiB in
 * flight like fio's 1m x 32 instead of 8 MiB of staging.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"
#include "snapshot/ckpt.h"
#include "snapshot/format.h"

enum { TAG_PAGE = 1, TAG_TAIL = 2, TAG_SYNC = 3, TAG_ALLOC = 4, TAG_FIX = 5,
       TAG_LOG = 6 };
#define REAP_BATCH 64u
#define STEP_WRITES 2u			/* merged writes queued per step */
#define STEP_BYTES_DEFAULT (2u << 20)	/* checksummed per step */
#define MERGE_PAGES 16u			/* pages per merged write: 1 MiB */
#define RUNS_MAX 32u			/* merged writes in flight, at most */
#define FIX_MAX (RUNS_MAX * MERGE_PAGES) /* pages awaiting a rewrite */

/* One merged write in flight: descs [first, first + n). */
struct run {
	uint32_t first, n;
	uint32_t live;	/* bit i: desc first + i was written from its live
			 * page (no shadow when queued) */
};
_Static_assert(MERGE_PAGES <= 32, "run.live is a 32-bit mask");
#define ALLOC_MIN_BYTES (16ull << 20)	/* fallocate granule... */
#define ALLOC_MAX_BYTES (256ull << 20)	/* ...and most per request */

struct wr_ckpt_writer {
	struct wr_ckpt_writer_config cfg;
	char dir[PATH_MAX];
	struct wr_arena *arena;
	enum wr_ckpt_state state;
	int dirfd, fd_pages, fd_meta;
	bool direct, stepped, scan_done;
	bool no_alloc, alloc_busy;	/* fallocate unsupported / in flight */
	uint32_t snap_epoch, page_size, pages_total;
	struct wr_arena_iter it_all, it_changed;
	uint32_t next_changed;
	uint32_t ndesc, nview, inflight;
	uint32_t nqueued;		/* descs whose write is queued */
	uint32_t nhashed;		/* descs checksummed: nqueued <= it */
	uint32_t step_pages;		/* checksummed per step, >= 1 */
	uint64_t alloc_end, alloc_req;	/* bytes fallocated, requested */
	int err;
	struct wr_ckpt_page_desc *desc;	/* pages_total entries */
	uint32_t *view;			/* pages_total entries */
	uint8_t *header;		/* one aligned block */
	uint8_t *trailer;		/* aligned, trailer_cap bytes */
	size_t trailer_cap, trailer_len;
	uint8_t *sections;		/* malloc'd, packed section records */
	size_t sections_len, sections_cap;
	uint32_t nsections;
	uint8_t *meta;			/* aligned final meta file */
	size_t meta_len;
	uint64_t pages_size, pages_checksum, meta_checksum;
	struct wr_ckpt_core_result res;
	struct run run[RUNS_MAX];	/* merged writes, by slot */
	uint32_t run_free[RUNS_MAX];	/* stack of free run slots */
	uint32_t nruns, nrun_free;
	uint32_t fix[FIX_MAX];		/* descs to rewrite from the shadow */
	uint32_t nfix, rewritten;
	/* A changelog checkpoint (cfg.log): chunks queued so far. */
	struct wr_ckpt_log_chunk *chunks;
	uint32_t nchunks, chunks_max;
	uint64_t log_next;		/* ring position of the next chunk */
};

static void *aligned_zalloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, WR_CKPT_BLOCK, len) != 0)
		return NULL;
	memset(p, 0, len);
	return p;
}

/* O_DIRECT first (when *direct); tmpfs and some overlay setups answer
 * EINVAL, and then *direct turns false. */
static int create_file(int dirfd, const char *dir, const char *name,
		       bool *direct, int *fd)
{
	int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;

	*fd = -1;
	if (*direct)
		*fd = openat(dirfd, name, flags | O_DIRECT, 0600);
	if (*fd < 0) {
		*fd = openat(dirfd, name, flags, 0600);
		*direct = false;
	}
	if (*fd < 0)
		return wr_error(-errno, "checkpoint: cannot create %s/%s: %s",
				dir, name, strerror(errno));
	return 0;
}

void wr_ckpt_files_close(struct wr_ckpt_files *f)
{
	if (f->fd_pages >= 0)
		close(f->fd_pages);
	if (f->fd_meta >= 0)
		close(f->fd_meta);
	f->fd_pages = f->fd_meta = -1;
}

int wr_ckpt_files_create(int dirfd, const char *dir, uint64_t ckpt_id,
			 uint32_t core, bool log, bool no_direct,
			 struct wr_ckpt_files *f)
{
	char pages[WR_CKPT_NAME_MAX], meta[WR_CKPT_NAME_MAX];
	struct stat st;
	int err;

	*f = (struct wr_ckpt_files){ .fd_pages = -1, .fd_meta = -1,
		.direct = !no_direct, .log = log, .core = core,
		.ckpt_id = ckpt_id };
	if (fstat(dirfd, &st) != 0)
		return wr_error(-errno, "checkpoint: directory %s: %s", dir,
				strerror(errno));
	f->dir_dev = st.st_dev, f->dir_ino = st.st_ino;
	wr_ckpt_file_name(pages, sizeof(pages), ckpt_id, core,
			  log ? "log" : "pages");
	wr_ckpt_file_name(meta, sizeof(meta), ckpt_id, core, "meta");
	err = create_file(dirfd, dir, pages, &f->direct, &f->fd_pages);
	if (err == 0)
		err = create_file(dirfd, dir, meta, &f->direct, &f->fd_meta);
	if (err)
		wr_ckpt_files_close(f);
	return err;
}

/*
 * Per-thread cache of what every checkpoint of a core needs alike: the
 * directory's fd (mkdir + open cost ~100-150 us of a 0.3-0.5 ms loop stall
 * per checkpoint) and the buffers sized by the arena's page count (fresh
 * calloc'd memory faults in on every checkpoint).  A writer borrows them
 * and gives them back in destroy; the thread frees them at exit
 * (wr_ckpt_writer_cache_release).  The cached fd is used only while the
 * path still names that directory (same device and inode): one removed,
 * renamed or recreated is opened again, so no checkpoint goes to a ghost.
 */
static __thread struct writer_cache {
	char dir[PATH_MAX];
	int dirfd;		/* valid when dir_ok */
	bool dir_ok;
	uint32_t pages_total;
	struct wr_ckpt_page_desc *desc;
	uint32_t *view;
	uint8_t *header, *trailer;
	size_t trailer_cap;
	uint8_t *sections;	/* the last writer's section buffer */
	size_t sections_cap;
} cache;

static void cache_drop_dir(void)
{
	if (cache.dir_ok)
		close(cache.dirfd);
	cache.dir_ok = false;
}

/* The cached fd of w->dir if it is still a live directory, else -1. */
static int cache_dirfd(const struct wr_ckpt_writer *w)
{
	struct stat by_fd, by_path;

	if (!cache.dir_ok || strcmp(cache.dir, w->dir) != 0)
		return -1;
	if (fstat(cache.dirfd, &by_fd) != 0 || stat(w->dir, &by_path) != 0 ||
	    by_fd.st_dev != by_path.st_dev || by_fd.st_ino != by_path.st_ino ||
	    by_fd.st_nlink == 0) {
		cache_drop_dir();
		return -1;
	}
	return cache.dirfd;
}

static int open_dir(struct wr_ckpt_writer *w)
{
	int fd = cache_dirfd(w);

	if (fd >= 0) {
		w->dirfd = fd;
		return 0;
	}
	if (mkdir(w->dir, 0700) != 0 && errno != EEXIST)
		return wr_error(-errno, "checkpoint: cannot create directory "
				"%s: %s", w->dir, strerror(errno));
	fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return wr_error(-errno, "checkpoint: cannot open directory "
				"%s: %s", w->dir, strerror(errno));
	cache_drop_dir();
	snprintf(cache.dir, sizeof(cache.dir), "%s", w->dir);
	cache.dirfd = w->dirfd = fd;
	cache.dir_ok = true;
	return 0;
}

static bool empty_file(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && st.st_nlink > 0 && st.st_size == 0;
}

/* Whether the files created ahead are this writer's, in its directory
 * (not one since removed or renamed), and untouched since. */
static bool files_fit(const struct wr_ckpt_writer *w,
		      const struct wr_ckpt_files *f)
{
	struct stat d;

	return f->fd_pages >= 0 && f->fd_meta >= 0 &&
	       f->ckpt_id == w->cfg.ckpt_id && f->core == w->cfg.core &&
	       f->log == w->cfg.log && !(f->direct && w->cfg.no_direct) &&
	       fstat(w->dirfd, &d) == 0 && d.st_dev == f->dir_dev &&
	       d.st_ino == f->dir_ino && empty_file(f->fd_pages) &&
	       empty_file(f->fd_meta);
}

static int open_files(struct wr_ckpt_writer *w)
{
	struct wr_ckpt_core_result *r = &w->res;
	struct wr_ckpt_files own, *f = w->cfg.files;
	int err = open_dir(w);

	w->cfg.files = NULL;
	wr_ckpt_file_name(r->pages_file, sizeof(r->pages_file),
			  w->cfg.ckpt_id, w->cfg.core, w->cfg.log ? "log" : "pages");
	wr_ckpt_file_name(r->meta_file, sizeof(r->meta_file), w->cfg.ckpt_id,
			  w->cfg.core, "meta");
	if (err == 0 && f != NULL && files_fit(w, f))
		own = *f;
	else if (err == 0)
		err = wr_ckpt_files_create(w->dirfd, w->dir, w->cfg.ckpt_id,
					   w->cfg.core, w->cfg.log,
					   w->cfg.no_direct, &own);
	if (f != NULL && (err || own.fd_pages != f->fd_pages))
		wr_ckpt_files_close(f);
	if (f != NULL)
		f->fd_pages = f->fd_meta = -1;	/* taken, or closed */
	if (err)
		return err;
	w->fd_pages = own.fd_pages, w->fd_meta = own.fd_meta;
	w->direct = own.direct;
	return 0;
}

static void cache_free_buffers(void)
{
	free(cache.desc);
	free(cache.view);
	free(cache.header);
	free(cache.trailer);
	cache.desc = NULL, cache.view = NULL;
	cache.header = cache.trailer = NULL;
	cache.pages_total = 0;
}

static void cache_free_sections(void)
{
	free(cache.sections);
	cache.sections = NULL;
	cache.sections_cap = 0;
}

void wr_ckpt_writer_cache_release(void)
{
	cache_drop_dir();
	cache_free_buffers();
	cache_free_sections();
}

/* Lends the cached buffers to w when they fit its arena (header zeroed). */
static bool borrow_buffers(struct wr_ckpt_writer *w)
{
	size_t n = w->pages_total;

	if (cache.desc == NULL || cache.pages_total != n ||
	    cache.trailer_cap != w->trailer_cap)
		return false;
	w->desc = cache.desc, w->view = cache.view;
	w->header = cache.header, w->trailer = cache.trailer;
	cache.desc = NULL, cache.view = NULL;
	cache.header = cache.trailer = NULL;
	/* desc[] and view[] are written whole before they are read, and the
	 * trailer is cleared as far as it is used when it is built: zeroing
	 * them here (~640 KiB at a 1 GiB cap) was 60-300 us of every
	 * checkpoint's first flush tick on each core. */
	memset(w->header, 0, WR_CKPT_BLOCK);
	return true;
}

/* destroy: the buffers go back to the cache (the previous ones, if any
 * were left there by a writer of another size, are freed). */
static void return_buffers(struct wr_ckpt_writer *w)
{
	if (w->desc == NULL || w->view == NULL || w->header == NULL ||
	    w->trailer == NULL) {
		free(w->desc), free(w->view), free(w->header), free(w->trailer);
		return;
	}
	cache_free_buffers();
	cache.desc = w->desc, cache.view = w->view;
	cache.header = w->header, cache.trailer = w->trailer;
	cache.pages_total = w->pages_total;
	cache.trailer_cap = w->trailer_cap;
}

/* A page file's trailer for an arena of n pages: descs, view, tail. */
static size_t pages_trailer_cap(size_t n)
{
	return wr_ckpt_round_up(n * sizeof(struct wr_ckpt_page_desc) +
				n * sizeof(uint32_t) +
				sizeof(struct wr_ckpt_file_tail), WR_CKPT_BLOCK);
}

int wr_ckpt_writer_cache_reserve(uint32_t pages_total)
{
	size_t n = pages_total, cap = pages_trailer_cap(n);

	if (cache.desc != NULL && cache.pages_total == n &&
	    cache.trailer_cap == cap)
		return 0;
	cache_free_buffers();
	/* aligned_zalloc writes its zeroes: faulted in now, where calloc's
	 * fresh pages would fault in the first checkpoint. */
	cache.desc = aligned_zalloc(n * sizeof(*cache.desc) + 1);
	cache.view = aligned_zalloc(n * sizeof(*cache.view) + 1);
	cache.header = aligned_zalloc(WR_CKPT_BLOCK);
	cache.trailer = aligned_zalloc(cap);
	if (!cache.desc || !cache.view || !cache.header || !cache.trailer) {
		cache_free_buffers();
		return -ENOMEM;
	}
	cache.pages_total = pages_total;
	cache.trailer_cap = cap;
	return 0;
}

static int alloc_buffers(struct wr_ckpt_writer *w)
{
	size_t n = w->pages_total;

	w->trailer_cap = pages_trailer_cap(n);
	if (w->cfg.log) {
		uint64_t body = w->cfg.log_to - w->cfg.log_from;
		size_t tl;
		w->chunks_max = (uint32_t)(body / WR_ARENA_LOG_CHUNK + 2);
		w->chunks = calloc(w->chunks_max, sizeof(*w->chunks));
		if (w->chunks == NULL)
			return -ENOMEM;
		tl = wr_ckpt_round_up((size_t)w->chunks_max * sizeof(*w->chunks)
				      + sizeof(struct wr_ckpt_file_tail),
				      WR_CKPT_BLOCK);
		if (tl > w->trailer_cap)
			w->trailer_cap = tl;
	}
	if (!borrow_buffers(w)) {
		w->desc = calloc(n, sizeof(*w->desc));
		w->view = calloc(n, sizeof(*w->view));
		w->header = aligned_zalloc(WR_CKPT_BLOCK);
		w->trailer = aligned_zalloc(w->trailer_cap);
	}
	w->nruns = w->cfg.inflight_max < RUNS_MAX ? w->cfg.inflight_max
						  : RUNS_MAX;
	if (!w->desc || !w->view || !w->header || !w->trailer)
		return wr_error(-ENOMEM, "checkpoint: no memory for the "
				"writer of %u pages", w->pages_total);
	for (uint32_t i = 0; i < w->nruns; i++)
		w->run_free[w->nrun_free++] = i;
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
	if (cfg->log)
		return a->log != NULL && cfg->parent_id != 0 &&
		       cfg->log_from <= cfg->log_to &&
		       cfg->log_from % WR_CKPT_BLOCK == 0 &&
		       cfg->log_to % WR_CKPT_BLOCK == 0 ? 0 :
		       wr_error(-EINVAL, "checkpoint %llu: changelog segment "
				"%llu..%llu of core %u without a log or parent",
				(unsigned long long)cfg->ckpt_id,
				(unsigned long long)cfg->log_from,
				(unsigned long long)cfg->log_to, cfg->core);
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

	w = err ? NULL : calloc(1, sizeof(*w));
	if (w == NULL) {
		if (cfg->files != NULL)
			wr_ckpt_files_close(cfg->files);
		return err ? err : wr_error(-ENOMEM, "checkpoint: no memory "
					    "for a writer");
	}
	w->cfg = *cfg;
	if (w->cfg.inflight_max == 0)
		w->cfg.inflight_max = WR_CKPT_INFLIGHT_DEFAULT;
	if (w->cfg.step_bytes == 0)
		w->cfg.step_bytes = STEP_BYTES_DEFAULT;
	w->step_pages = w->cfg.step_bytes / arena->page_size;
	w->step_pages += w->step_pages == 0;
	snprintf(w->dir, sizeof(w->dir), "%s", cfg->dir);
	w->cfg.dir = w->dir;
	w->arena = arena;
	w->dirfd = w->fd_pages = w->fd_meta = -1;
	w->snap_epoch = arena->snap_epoch;
	w->page_size = arena->page_size;
	w->pages_total = arena->pages_total;
	w->next_changed = WR_ARENA_NO_PAGE;
	w->state = WR_CKPT_PAGES;
	w->sections = cache.sections;	/* borrowed (or NULL) */
	w->sections_cap = cache.sections_cap;
	cache.sections = NULL;
	cache.sections_cap = 0;
	err = alloc_buffers(w);
	if (err == 0)
		err = open_files(w);	/* takes or closes cfg->files */
	else if (cfg->files != NULL)
		wr_ckpt_files_close(cfg->files);
	if (err) {
		wr_ckpt_writer_destroy(w);
		return err;
	}
	if (cfg->log) {
		w->snap_epoch = 0;	/* the manifest keeps the base's */
		w->log_next = cfg->log_from;
	} else if (cfg->parent_id != 0 &&
		   wr_arena_pages_written_since(arena, cfg->parent_epoch,
						&w->it_changed)) {
		w->next_changed = w->it_changed.page;
	}
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
	if (w->sections_len + rec > w->sections_cap) {
		/* Doubling, from the last writer's buffer (a realloc per
		 * section was 5-40 us of each checkpoint's start). */
		size_t cap = w->sections_cap * 2 + rec + 4096;
		grown = realloc(w->sections, cap);
		if (grown == NULL)
			return wr_error(-ENOMEM, "checkpoint: no memory for "
					"section '%s' (%zu bytes)", name, len);
		w->sections = grown;
		w->sections_cap = cap;
	}
	grown = w->sections;
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

/* Tag: bit 63 ckpt, bits 40.. run slot, 32..39 kind, 0..31 length. */
static uint64_t tag_of(uint32_t kind, uint32_t len)
{
	return WR_CKPT_TAG_BIT | ((uint64_t)kind << 32) | len;
}

static int queue_write(struct wr_ckpt_writer *w, int fd, const void *buf,
		       size_t len, uint64_t off, uint32_t kind)
{
	int err = wr_uring_write(w->cfg.uring, fd, buf, (uint32_t)len, off,
				 tag_of(kind, (uint32_t)len));

	if (err == 0)
		w->inflight++;
	return err;
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

/* Appends up to WR_CKPT_STEP_PAGES view pages to view[] and desc[]. */
static void scan_pages(struct wr_ckpt_writer *w)
{
	for (uint32_t n = 0; n < WR_CKPT_STEP_PAGES && !w->scan_done; n++) {
		if (!wr_arena_pages_written_since(w->arena, 0, &w->it_all)) {
			w->scan_done = true;
			break;
		}
		uint32_t p = w->it_all.page;
		if (page_changed(w, p)) {
			w->desc[w->ndesc++] = (struct wr_ckpt_page_desc){
				.page_id = p };
			advance_changed(w);
		}
		w->view[w->nview++] = p;
	}
}

static uint64_t trailer_len_of(const struct wr_ckpt_writer *w)
{
	return wr_ckpt_round_up((uint64_t)w->ndesc * sizeof(*w->desc) +
			(uint64_t)w->nview * sizeof(uint32_t) +
			sizeof(struct wr_ckpt_file_tail), WR_CKPT_BLOCK);
}

/* Fallocates the next scanned part of the page file (see the top). */
static int queue_alloc(struct wr_ckpt_writer *w)
{
	uint64_t end = WR_CKPT_BLOCK + (uint64_t)w->ndesc * w->page_size;
	int err;

	if (w->no_alloc || w->alloc_busy)
		return 0;
	if (w->scan_done)
		end += trailer_len_of(w);	/* the file's exact size */
	if (end <= w->alloc_req ||
	    (!w->scan_done && end - w->alloc_req < ALLOC_MIN_BYTES))
		return 0;
	if (end - w->alloc_req > ALLOC_MAX_BYTES)
		end = w->alloc_req + ALLOC_MAX_BYTES;
	err = wr_uring_fallocate(w->cfg.uring, w->fd_pages, w->alloc_req,
				 end - w->alloc_req, tag_of(TAG_ALLOC, 0));
	if (err == -EAGAIN)
		return 0;	/* uring FIFO full: next step */
	if (err == 0) {
		w->alloc_req = end;
		w->alloc_busy = true;
		w->inflight++;
	}
	return err;
}

/* Descs [nqueued, *end) for the next merged write: up to MERGE_PAGES,
 * inside the allocated range, short only at the end of the scan, and a
 * free run slot.  False: wait. */
static bool next_run(const struct wr_ckpt_writer *w, uint32_t *end)
{
	uint32_t e = w->nqueued + MERGE_PAGES;

	if (w->nrun_free == 0)
		return false;
	if (e > w->ndesc) {
		if (!w->scan_done || w->nqueued == w->ndesc)
			return false;
		e = w->ndesc;
	}
	if (e > w->nhashed)
		return false;	/* checksummed over the next steps */
	if (!w->no_alloc && WR_CKPT_BLOCK + (uint64_t)e * w->page_size >
	    w->alloc_end)
		return false;
	*end = e;
	return true;
}

/* Appends len bytes at b to iov[0..n), merging with the last iovec when
 * adjacent in memory; the new count. */
static uint32_t iov_append(struct iovec *iov, uint32_t n, const void *b,
			   size_t len)
{
	if (n > 0 && (const uint8_t *)iov[n - 1].iov_base +
		     iov[n - 1].iov_len == (const uint8_t *)b) {
		iov[n - 1].iov_len += len;
		return n;
	}
	iov[n].iov_base = (void *)b;
	iov[n].iov_len = len;
	return n + 1;
}

/* Checksums up to step_pages descs ahead of the writes, from their
 * snapshot pages: a page's snapshot bytes never change (the live page
 * untouched since the barrier, or its shadow, which the arena completes
 * and checksums here if a barrier started it), so a checksum taken steps
 * before the write holds whichever of the two the write then reads.  This
 * is where the arena's deferred copy-on-write is mostly paid, at most
 * step_pages completions a step; a page touched between its checksum and
 * its write is completed when queue_run or a repair reads it (not bounded
 * by the step: left as it is, see docs/architecture.md). */
static void hash_ahead(struct wr_ckpt_writer *w)
{
	for (uint32_t k = 0; k < w->step_pages && w->nhashed < w->ndesc; k++) {
		struct wr_ckpt_page_desc *d = &w->desc[w->nhashed++];
		if (!wr_arena_snapshot_checksum(w->arena, d->page_id,
						&d->checksum))
			d->checksum = XXH3_64bits(wr_arena_snapshot_page(
				w->arena, d->page_id), w->page_size);
	}
}

/* Queues one vectored write of descs [nqueued, end) (checksummed by
 * hash_ahead) straight from their snapshot pages (REPAIR at the top). */
static int queue_run(struct wr_ckpt_writer *w, uint32_t end)
{
	uint32_t slot = w->run_free[w->nrun_free - 1], n = end - w->nqueued;
	struct iovec iov[MERGE_PAGES];
	uint64_t off = WR_CKPT_BLOCK + (uint64_t)w->nqueued * w->page_size;
	uint32_t live = 0, niov = 0, len = n * w->page_size;
	int err;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t p = w->desc[w->nqueued + i].page_id;
		const void *b = wr_arena_snapshot_page(w->arena, p);
		if (b == wr_arena_page_ptr(w->arena, p))
			live |= 1u << i;	/* no shadow: the live page */
		niov = iov_append(iov, niov, b, w->page_size);
	}
	err = wr_uring_writev(w->cfg.uring, w->fd_pages, iov, niov, off,
			      tag_of(TAG_PAGE, len) | ((uint64_t)slot << 40));
	if (err)
		return err == -EAGAIN ? 0 : err; /* FIFO full: next step */
	w->nrun_free--;
	w->run[slot] = (struct run){ w->nqueued, n, live };
	w->nqueued = end;
	w->inflight++;
	return 0;
}

/* A merged write completed: its live pages touched since need a rewrite. */
static void run_done(struct wr_ckpt_writer *w, uint32_t slot)
{
	const struct run *r = &w->run[slot];

	for (uint32_t i = 0; i < r->n; i++) {
		uint32_t p = w->desc[r->first + i].page_id;
		if (!((r->live >> i) & 1u) ||
		    !wr_arena_snapshot_has_shadow(w->arena, p))
			continue;
		/* Always on: no run starts while fixes wait (queue_pages),
		 * so at most RUNS_MAX runs' pages are here. */
		assert(w->nfix < FIX_MAX);
		w->fix[w->nfix++] = r->first + i;
	}
	w->run_free[w->nrun_free++] = slot;
}

/* Rewrites the pages touched under their write from their shadows. */
static int queue_fixes(struct wr_ckpt_writer *w)
{
	while (w->nfix > 0 && w->inflight < w->cfg.inflight_max) {
		uint32_t i = w->fix[w->nfix - 1];
		const void *b = wr_arena_snapshot_page(w->arena,
						       w->desc[i].page_id);
		int err = queue_write(w, w->fd_pages, b, w->page_size,
				WR_CKPT_BLOCK + (uint64_t)i * w->page_size,
				TAG_FIX);
		if (err)
			return err == -EAGAIN ? 0 : err;
		w->nfix--;
		w->rewritten++;
	}
	return 0;
}

/* One step of the flush pipeline: scan, allocate, write. */
static int queue_pages(struct wr_ckpt_writer *w)
{
	uint32_t end;
	int err;

	scan_pages(w);
	err = queue_alloc(w);
	if (err == 0)
		err = queue_fixes(w);
	hash_ahead(w);
	for (uint32_t k = 0; err == 0 && w->nfix == 0 && k < STEP_WRITES; k++) {
		if (w->inflight >= w->cfg.inflight_max || !next_run(w, &end))
			break;
		uint32_t before = w->nqueued;
		err = queue_run(w, end);
		if (w->nqueued == before)
			break;
	}
	return err;
}

/* The log file's size: header block, the segment, the chunk trailer. */
static uint64_t log_file_size(const struct wr_ckpt_writer *w)
{
	return WR_CKPT_BLOCK + (w->cfg.log_to - w->cfg.log_from) +
	       wr_ckpt_round_up((uint64_t)w->chunks_max * sizeof(*w->chunks) +
				sizeof(struct wr_ckpt_file_tail),
				WR_CKPT_BLOCK);
}

/* One step of a changelog checkpoint: the whole file fallocated first
 * (as the page file, see ALLOC at the top), then up to STEP_WRITES chunks
 * of the sealed ring, each checksummed (XXH3, ~0.05 ms per MiB) and written
 * straight from the ring: sealed bytes stay put until the checkpoint
 * commits (arena.h, changelog invariant 2). */
static int queue_log(struct wr_ckpt_writer *w)
{
	uint64_t size = log_file_size(w);
	int err = 0;

	if (!w->no_alloc && w->alloc_req == 0) {
		err = wr_uring_fallocate(w->cfg.uring, w->fd_pages, 0, size,
					 tag_of(TAG_ALLOC, 0));
		if (err)
			return err == -EAGAIN ? 0 : err;
		w->alloc_req = size;
		w->alloc_busy = true;
		w->inflight++;
		return 0;
	}
	if (!w->no_alloc && w->alloc_end < size)
		return 0;	/* wait for the fallocate */
	uint32_t most = w->cfg.step_bytes / WR_ARENA_LOG_CHUNK;

	most += most == 0;
	for (uint32_t k = 0; k < most && w->log_next < w->cfg.log_to &&
	     w->inflight < w->cfg.inflight_max; k++) {
		uint32_t len;
		const void *p = wr_arena_log_span(w->arena, w->log_next,
						  w->cfg.log_to, &len);
		uint64_t off = WR_CKPT_BLOCK + (w->log_next - w->cfg.log_from);
		err = queue_write(w, w->fd_pages, p, len, off, TAG_LOG);
		if (err)
			return err == -EAGAIN ? 0 : err;
		/* Always on: chunks_max counts every chunk boundary. */
		assert(w->nchunks < w->chunks_max);
		w->chunks[w->nchunks++] = (struct wr_ckpt_log_chunk){
			len, 0, XXH3_64bits(p, len) };
		w->log_next += len;
	}
	return 0;
}

static bool log_queued(const struct wr_ckpt_writer *w)
{
	return w->log_next == w->cfg.log_to;
}

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

/* The page file's header and trailer: descriptors, then the view. */
static uint64_t build_pages_tail(struct wr_ckpt_writer *w)
{
	size_t dlen = (size_t)w->ndesc * sizeof(*w->desc);
	uint64_t toff = WR_CKPT_BLOCK + (uint64_t)w->ndesc * w->page_size;

	fill_header(w, w->header, WR_CKPT_MAGIC_PAGES, w->ndesc, toff);
	w->trailer_len = wr_ckpt_round_up(dlen + w->nview * sizeof(uint32_t) +
			 sizeof(struct wr_ckpt_file_tail), WR_CKPT_BLOCK);
	memset(w->trailer, 0, w->trailer_len);
	memcpy(w->trailer, w->desc, dlen);
	memcpy(w->trailer + dlen, w->view, w->nview * sizeof(uint32_t));
	w->pages_size = toff + w->trailer_len;
	w->pages_checksum = seal_tail(w->trailer, w->trailer_len, w->header,
				      toff, w->pages_size, w->ndesc, w->nview);
	return toff;
}

/* The log file's header and trailer: the chunk descriptors.  The trailer
 * is as long as log_file_size reserved, so the fallocated size is exact. */
static uint64_t build_log_tail(struct wr_ckpt_writer *w)
{
	size_t clen = (size_t)w->nchunks * sizeof(*w->chunks);
	uint64_t toff = WR_CKPT_BLOCK + (w->cfg.log_to - w->cfg.log_from);

	fill_header(w, w->header, WR_CKPT_MAGIC_LOG, w->nchunks, toff);
	w->trailer_len = log_file_size(w) - toff;
	memset(w->trailer, 0, w->trailer_len);
	memcpy(w->trailer, w->chunks, clen);
	w->pages_size = toff + w->trailer_len;
	w->pages_checksum = seal_tail(w->trailer, w->trailer_len, w->header,
				      toff, w->pages_size, w->nchunks, 0);
	return toff;
}

/* Header and trailer of the page (or log) file and the meta file, all at
 * once. */
static int queue_tail(struct wr_ckpt_writer *w)
{
	int err = build_meta(w);
	uint64_t toff;

	if (err)
		return err;
	toff = w->cfg.log ? build_log_tail(w) : build_pages_tail(w);
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
		run_done(w, (uint32_t)(d->tag >> 40) & 0xffffu);
	if (kind == TAG_ALLOC) {
		w->alloc_busy = false;
		if (d->res == -EOPNOTSUPP || d->res == -EINVAL) {
			w->no_alloc = true; /* the fs cannot: write anyway */
			return;
		}
		if (d->res == 0)
			w->alloc_end = w->alloc_req;
	}
	if (d->res < 0) {
		if (w->err == 0)
			w->err = d->res;
	} else if (kind != TAG_SYNC && kind != TAG_ALLOC &&
		   (uint32_t)d->res != len && !w->err) {
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
		err = w->cfg.log ? queue_log(w) : queue_pages(w);
		if (err == 0 && w->inflight == 0 && (w->cfg.log ?
		    log_queued(w) : w->scan_done && w->nqueued == w->ndesc &&
		    w->nfix == 0)) {
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
	out->pages_written = w->cfg.log ? w->nchunks : w->ndesc;
	out->view_pages = w->nview;
	out->parent_id = w->cfg.parent_id;
	out->is_log = w->cfg.log;
	out->pages_size = w->pages_size;
	out->pages_checksum = w->pages_checksum;
	out->meta_size = w->meta_len;
	out->meta_checksum = w->meta_checksum;
	out->direct_io = w->direct;
	out->pages_rewritten = w->rewritten;
	return 0;
}

enum wr_ckpt_state wr_ckpt_writer_state(const struct wr_ckpt_writer *w)
{
	return w->state;
}

uint32_t wr_ckpt_writer_checksummed(const struct wr_ckpt_writer *w)
{
	return w->nhashed;
}

/* The lifecycle of ckpt.h and invariants 2-3. */
bool wr_ckpt_writer_is_valid(const struct wr_ckpt_writer *w)
{
	if (w->state < WR_CKPT_PAGES || w->state > WR_CKPT_FAILED)
		return false;
	if (w->inflight > w->cfg.inflight_max + 3)
		return false;
	if (w->ndesc > w->nview || w->nview > w->pages_total ||
	    w->nqueued > w->nhashed || w->nhashed > w->ndesc ||
	    w->alloc_end > w->alloc_req ||
	    w->nrun_free > w->nruns || w->nfix > FIX_MAX)
		return false;
	if (w->state != WR_CKPT_PAGES && w->state != WR_CKPT_FAILED &&
	    !(w->cfg.log ? log_queued(w) : w->scan_done))
		return false;
	if (w->state == WR_CKPT_DURABLE && (w->inflight || w->err))
		return false;
	if (w->state == WR_CKPT_FAILED && (w->inflight || !w->err))
		return false;
	/* A changelog segment stays sealed and unreleased until then. */
	if (w->cfg.log)
		return w->state >= WR_CKPT_DURABLE ||
		       (w->arena->log != NULL &&
			w->arena->log->tail <= w->cfg.log_from &&
			w->cfg.log_to <= w->arena->log->head &&
			w->log_next <= w->cfg.log_to &&
			w->nchunks <= w->chunks_max);
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
	/* w->dirfd belongs to the thread's cache */
	return_buffers(w);
	cache_free_sections();
	cache.sections = w->sections;	/* the next writer's */
	cache.sections_cap = w->sections_cap;
	free(w->chunks);
	free(w->meta);
	free(w);
}
