/*
 * load.c — wr_ckpt_load_core: one core's pages from its checkpoint files
 * straight into their arena pages, in one pass, each page's XXH3 checked as
 * it lands (snapshot/ckpt_internal.h).
 *
 * WHY: restore of a 1 GiB state took 5-16x a cold dd of the same bytes
 * (bench/RESULTS.md, "Restore in one pass").  perf: wr_ckpt_open read every
 * page once to verify it and the load read it again, and the load's copy
 * from a bounce buffer into fresh arena memory spent most of its time in
 * the page-cache copy and in faulting in (zeroing) transparent huge pages
 * while the page cache grew.  Measured on the 2-vCPU VM, 1 GiB cold:
 * buffered 1 MiB preads into the arena 3.3-7.2 s; O_DIRECT preads 1.0-1.3 s;
 * O_DIRECT through io_uring, 4 reads of 2 MiB in flight, 0.7-0.9 s; dd
 * 0.8-1.6 s.  So: runs of pages that are contiguous both in the file and in
 * the arena are read with O_DIRECT into the arena itself, LOAD_DEPTH reads
 * in flight.
 *
 * FALLBACKS: a file O_DIRECT cannot open (tmpfs: EINVAL) is read buffered;
 * without io_uring (ENOSYS, seccomp) every run is a blocking pread; a read
 * that fails or comes back short is redone with a buffered pread, and only
 * if that fails too is it a read error.
 *
 * CHANGELOG: after the pages, the core's log files are replayed oldest
 * first, chunk by chunk, read ahead through the same ring; with a spare
 * CPU, a helper thread applies part of each chunk ("the replay helper").
 *
 * ON FAILURE (checksum mismatch, read error): reported with file and offset
 * (wr_ckpt_page_failed), the reads in flight are waited for, the pages
 * claimed so far are freed again, and -EBADMSG is returned: the arena is
 * as before the call, so the caller can try an older checkpoint.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "core/error.h"
#include "snapshot/ckpt.h"
#include "snapshot/ckpt_internal.h"
#include "snapshot/format.h"
#include "snapshot/uring.h"

#define LOAD_DEPTH 4u			/* reads in flight */
#define LOAD_RUN_BYTES (2u << 20)	/* bytes per read at most */

struct load_run {
	uint32_t i, n;			/* view entries [i, i + n) */
};

struct loader {
	struct wr_ckpt *c;
	uint32_t core;
	struct wr_arena *a;
	const struct wr_ckpt_resolved *r;
	int fd[WR_CKPT_CHAIN_MAX];	/* O_DIRECT if it opened so */
	int bfd[WR_CKPT_CHAIN_MAX];	/* buffered, opened on a retry */
	struct io_uring ring;
	bool uring;
	struct load_run run[LOAD_DEPTH];	/* slot free iff n == 0 */
	uint32_t inflight;
	uint32_t claimed;		/* view entries [0, claimed) */
	int helper_cpu;			/* for the replay helper; -1: none */
	int err;
};

static int open_file(struct loader *l, uint32_t k, bool direct, int *fdp)
{
	const char *name = l->c->m.core[l->core].chain[k].name;
	int fd = -1;

	if (*fdp >= 0)
		return 0;
	if (direct)
		fd = openat(l->c->dirfd, name, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (fd < 0)
		fd = openat(l->c->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return wr_error(-errno, "checkpoint: cannot open %s: %s", name,
				strerror(errno));
	*fdp = fd;
	return 0;
}

/* View entries i.. that are back to back in one file and in the arena,
 * at most LOAD_RUN_BYTES: how many. */
static uint32_t run_len(const struct loader *l, uint32_t i)
{
	const struct wr_ckpt_resolved *r = l->r;
	uint32_t ps = l->c->m.page_size, max = LOAD_RUN_BYTES / ps, n = 1;

	while (n < max && i + n < r->n && r->file[i + n] == r->file[i] &&
	       r->off[i + n] == r->off[i] + (uint64_t)n * ps &&
	       r->page_id[i + n] == r->page_id[i] + n)
		n++;
	return n;
}

/* Makes the run's pages live in the arena; *dst is the first one's bytes. */
static int claim(struct loader *l, uint32_t i, uint32_t n, void **dst)
{
	for (uint32_t j = 0; j < n; j++) {
		void *p;
		int err = wr_arena_restore_claim(l->a, l->r->page_id[i + j], &p);
		if (err)
			return err;
		l->claimed = i + j + 1;
		if (j == 0)
			*dst = p;
	}
	return 0;
}

/* The run has landed in the arena: every page's checksum. */
static int check_run(struct loader *l, uint32_t i, uint32_t n)
{
	const struct wr_ckpt_resolved *r = l->r;
	uint32_t ps = l->c->m.page_size;
	const uint8_t *p = wr_arena_page_ptr(l->a, r->page_id[i]);
	char what[64];

	for (uint32_t j = i; j < i + n; j++, p += ps) {
		if (XXH3_64bits(p, ps) == r->checksum[j])
			continue;
		snprintf(what, sizeof(what), "checksum mismatch in page %u",
			 r->page_id[j]);
		return wr_ckpt_page_failed(l->c, l->c->m.core[l->core].chain[
			r->file[j]].name, r->off[j], what);
	}
	return 0;
}

/* Blocking read of the run's bytes from `done` on, then the check: O_DIRECT
 * first (unless a read came back short), buffered if that fails. */
static int read_sync(struct loader *l, uint32_t i, uint32_t n, size_t done)
{
	const struct wr_ckpt_resolved *r = l->r;
	uint32_t k = r->file[i];
	uint8_t *dst = wr_arena_page_ptr(l->a, r->page_id[i]);
	size_t len = (size_t)n * l->c->m.page_size;
	int err;

	if (done == 0 && wr_ckpt_pread_full(l->fd[k], dst, len, r->off[i]) == 0)
		return check_run(l, i, n);
	err = open_file(l, k, false, &l->bfd[k]);
	if (err)
		return err;
	if (wr_ckpt_pread_full(l->bfd[k], dst + done, len - done,
			       r->off[i] + done) != 0)
		return wr_ckpt_page_failed(l->c, l->c->m.core[l->core].chain[k]
					   .name, r->off[i] + done,
					   "read error");
	return check_run(l, i, n);
}

/* Queues the run's read (the caller made sure fewer than LOAD_DEPTH are
 * in flight, so a slot and an SQE are free). */
static int submit(struct loader *l, uint32_t i, uint32_t n, void *dst)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	uint32_t s = 0;
	int ret;

	if (sqe == NULL)
		return read_sync(l, i, n, 0);
	while (l->run[s].n != 0)
		s++;
	io_uring_prep_read(sqe, l->fd[l->r->file[i]], dst,
			   n * l->c->m.page_size, l->r->off[i]);
	io_uring_sqe_set_data64(sqe, s);
	do
		ret = io_uring_submit(&l->ring);
	while (ret == -EINTR);
	if (ret != 1) /* not in the kernel: queue_exit drops it */
		return wr_error(ret < 0 ? ret : -EIO, "checkpoint: io_uring "
				"submit: %s", strerror(ret < 0 ? -ret : EIO));
	l->run[s] = (struct load_run){ i, n };
	l->inflight++;
	return 0;
}

/* Waits for one read; checks it (check) or redoes a failed or short one.
 * Without check (draining after an error) only frees its slot. */
static int reap_one(struct loader *l, bool check)
{
	struct io_uring_cqe *cqe;
	int err;

	do
		err = io_uring_wait_cqe(&l->ring, &cqe);
	while (err == -EINTR);
	if (err) /* cannot happen with reads in flight; do not wait again */
		return l->inflight = 0, wr_error(err, "checkpoint: io_uring "
						 "wait: %s", strerror(-err));
	struct load_run run = l->run[io_uring_cqe_get_data64(cqe)];
	int32_t res = cqe->res;

	l->run[io_uring_cqe_get_data64(cqe)].n = 0;
	io_uring_cqe_seen(&l->ring, cqe);
	l->inflight--;
	if (!check)
		return 0;
	if (res == (int32_t)(run.n * l->c->m.page_size))
		return check_run(l, run.i, run.n);
	return read_sync(l, run.i, run.n, res > 0 ? (size_t)res : 0);
}

/* Claims the run's pages and reads them (queued, or at once). */
static int load_run(struct loader *l, uint32_t i, uint32_t n)
{
	uint32_t k = l->r->file[i];
	void *dst = NULL;
	int err = claim(l, i, n, &dst);

	if (err == 0)
		err = open_file(l, k, true, &l->fd[k]);
	if (err)
		return err;
	return l->uring ? submit(l, i, n, dst) : read_sync(l, i, n, 0);
}

static int load_init(struct loader *l, struct wr_ckpt *c, uint32_t core,
		     struct wr_arena *a)
{
	if (core >= c->m.cores || a->page_size != c->m.page_size ||
	    a->snap_pending)
		return wr_error(-EINVAL, "checkpoint: cannot load core %u of %u "
				"(page size %u into %u, or snapshot pending)",
				core, c->m.cores, c->m.page_size, a->page_size);
	memset(l, 0, sizeof(*l));
	l->c = c;
	l->core = core;
	l->a = a;
	l->r = &c->res[core];
	for (uint32_t k = 0; k < WR_CKPT_CHAIN_MAX; k++)
		l->fd[k] = l->bfd[k] = -1;
	l->uring = !wr_ckpt_test_load_no_uring &&
		   wr_io_uring_init(LOAD_DEPTH, &l->ring) == 0;
	return 0;
}

/* Closes everything; after a failure frees every page of the arena (it
 * was empty: the pages claimed and those a partial replay allocated). */
static void load_fini(struct loader *l, int err)
{
	struct wr_arena_iter it = { 0 };

	while (err && wr_arena_pages_written_since(l->a, 0, &it))
		wr_arena_free(l->a, it.page, 1);
	for (uint32_t k = 0; k < WR_CKPT_CHAIN_MAX; k++) {
		if (l->fd[k] >= 0)
			close(l->fd[k]);
		if (l->bfd[k] >= 0)
			close(l->bfd[k]);
	}
	if (l->uring)
		wr_io_uring_exit(&l->ring);
}

/* ---- changelog replay ---- */

/*
 * A log file's chunks are read REPLAY_BUFS ahead through the loader's
 * io_uring while the current one is checked and applied: replay runs at
 * memory speed (~13 ns an entry with prefetch), reading at the disk's, and
 * the two overlap instead of adding up.  Measured (1 GiB of pages under
 * 12 logs, 1.7 GB, 70 M entries, cold cache): the replay takes ~1.6 s,
 * ~23 ns an entry, and the whole restore 1.5-1.6x the time dd reads the
 * same files: applying, not reading, is the limit (the read-ahead saved
 * 0-10%).
 *
 * The chunks are read with O_DIRECT, as the pages are: a buffered read's
 * copy out of the page cache runs on this thread (io_uring completes it as
 * task work here), and was a fifth of the replay's own time (perf).  Chunks
 * are whole blocks (docs/checkpoint-format.md).  A file O_DIRECT cannot
 * open, and a read that fails (a chunk off the blocks: EINVAL) or comes
 * back short, are read buffered (rp->fd) as before.
 */
#define REPLAY_BUFS LOAD_DEPTH

/* ---- the replay helper: a second thread applies part of each chunk ---- */

/*
 * A chain's restore on one core is bound by applying the entries (random
 * writes, one DRAM miss each), not by the disk.  Given a CPU no worker
 * runs on (weir_runtime_spare_cpu), a helper thread applies the entries
 * of 5 in every 8 pages while this thread reads, checks and splits the
 * chunks (wr_arena_log_split, ~3.5 ns an entry) and applies the other 3;
 * state/arena.h says why the two lists, applied so, leave the arena as
 * one thread would.  replay_bench --threads 2, 1 GiB: 10.6-11.1 ns an
 * entry against 17.4-20.4 on one thread (bench/RESULTS.md, 2026-12-07).
 *
 * The helper is at most REPLAY_BUFS chunks behind: a chunk's buffer (and
 * its list) is read into again only once the helper is done with it.  At
 * an ALLOC or FREE both threads meet: the helper arrives (its earlier
 * writes done), this thread applies it (page bookkeeping, zeroing in
 * either part) and releases it.  Errors are this thread's: it aborts the
 * helper, which then applies nothing more, and joins it.
 */
#define HELPER_MAIN_EIGHTHS 3u
#define HELPER_LIST_BYTES ((size_t)WR_ARENA_LOG_CHUNK / 8 * 4)

enum { HELPER_RUN, HELPER_END, HELPER_ABORT };

struct helper_chunk {
	const uint8_t *bytes;
	const uint32_t *list;
	size_t n;
};

struct helper {
	struct wr_arena *a;
	pthread_t th;
	struct helper_chunk q[REPLAY_BUFS];	/* chunk seq in q[seq % BUFS] */
	uint32_t *list[REPLAY_BUFS];	/* list 1 of the chunk in buf[s] */
	uint32_t nposted, met;		/* loader's side */
	uint32_t hmet;			/* helper's side */
	int err;			/* helper's; read after the join */
	alignas(64) _Atomic uint32_t posted, applied;	/* loader writes */
	alignas(64) _Atomic uint32_t done, arrived;	/* helper writes */
	_Atomic int stop;
};

static void helper_spin(unsigned *i)
{
	if (++*i < 4096) {
#ifdef __x86_64__
		__builtin_ia32_pause();
#endif
	} else {
		sched_yield();
	}
}

/* Waits until *v >= r (the other side's count of ALLOCs and FREEs):
 * 0, or -ECANCELED once the replay is aborted. */
static int meta_meet(struct helper *h, _Atomic uint32_t *v, uint32_t r)
{
	unsigned i = 0;

	while (atomic_load_explicit(v, memory_order_acquire) < r) {
		if (atomic_load_explicit(&h->stop, memory_order_relaxed) ==
		    HELPER_ABORT)
			return -ECANCELED;
		helper_spin(&i);
	}
	return 0;
}

/* The helper at its r-th ALLOC or FREE: waits until the loader applied it. */
static int helper_meta(void *arg, struct wr_arena *a, const void *entry)
{
	struct helper *h = arg;
	uint32_t r = ++h->hmet;

	(void)a, (void)entry;
	atomic_store_explicit(&h->arrived, r, memory_order_release);
	return meta_meet(h, &h->applied, r);
}

/* The loader at its r-th ALLOC or FREE: applies it once the helper is there. */
static int loader_meta(void *arg, struct wr_arena *a, const void *entry)
{
	struct helper *h = arg;
	uint32_t r = ++h->met;
	int err = meta_meet(h, &h->arrived, r);

	if (err)
		return err;
	err = wr_arena_log_apply_one(a, entry);
	if (err)
		atomic_store_explicit(&h->stop, HELPER_ABORT,
				      memory_order_relaxed);
	atomic_store_explicit(&h->applied, r, memory_order_release);
	return err;
}

/* Chunk seq once posted, or false at the end (every posted one taken). */
static bool helper_next(struct helper *h, uint32_t seq)
{
	unsigned i = 0;

	while (atomic_load_explicit(&h->posted, memory_order_acquire) <= seq) {
		if (atomic_load_explicit(&h->stop, memory_order_acquire) !=
		    HELPER_RUN)	/* posts come before the stop: look again */
			return atomic_load_explicit(&h->posted,
					memory_order_acquire) > seq;
		helper_spin(&i);
	}
	return true;
}

static void *helper_main(void *arg)
{
	struct helper *h = arg;
	const struct wr_arena_log_meta m = { helper_meta, h };
	size_t bad;

	for (uint32_t seq = 0; helper_next(h, seq); seq++) {
		const struct helper_chunk *c = &h->q[seq % REPLAY_BUFS];
		if (h->err == 0 && atomic_load_explicit(&h->stop,
				memory_order_relaxed) != HELPER_ABORT)
			h->err = wr_arena_log_apply_list(h->a, c->bytes, c->list,
							 c->n, &m, &bad);
		if (h->err)
			atomic_store_explicit(&h->stop, HELPER_ABORT,
					      memory_order_relaxed);
		atomic_store_explicit(&h->done, seq + 1, memory_order_release);
	}
	return NULL;
}

/* A helper pinned to `cpu`, or NULL (none asked for, or it did not start:
 * the replay then runs on this thread alone). */
static struct helper *helper_start(struct wr_arena *a, int cpu,
				   uint32_t *lists)
{
	struct helper *h;
	pthread_attr_t attr;
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE ||
	    (h = aligned_alloc(64, sizeof(*h))) == NULL)
		return NULL;
	memset(h, 0, sizeof(*h));
	h->a = a;
	for (uint32_t s = 0; s < REPLAY_BUFS; s++)
		h->list[s] = lists + s * (HELPER_LIST_BYTES / 4);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_attr_init(&attr);
	pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	if (pthread_create(&h->th, &attr, helper_main, h) != 0) {
		free(h);
		h = NULL;
	}
	pthread_attr_destroy(&attr);
	return h;
}

/* Ends the helper (at once if err) and joins it; the replay's result. */
static int helper_stop(struct helper *h, int err)
{
	if (h == NULL)
		return err;
	atomic_store_explicit(&h->stop, err ? HELPER_ABORT : HELPER_END,
			      memory_order_release);
	pthread_join(h->th, NULL);
	if (err == 0 && h->err != 0)
		err = h->err;
	free(h);
	return err;
}

static void helper_post(struct helper *h, const uint8_t *bytes,
			const uint32_t *list, size_t n)
{
	h->q[h->nposted % REPLAY_BUFS] = (struct helper_chunk){ bytes, list, n };
	atomic_store_explicit(&h->posted, ++h->nposted, memory_order_release);
}

/* Waits until the helper has done every chunk before `seq`. */
static void helper_wait(const struct helper *h, uint32_t seq)
{
	unsigned i = 0;

	while (atomic_load_explicit(&h->done, memory_order_acquire) < seq)
		helper_spin(&i);
}

bool wr_ckpt_test_log_buffered;
uint32_t wr_ckpt_test_log_read_max;
bool wr_ckpt_test_load_no_uring;

struct replay {
	struct loader *l;
	const struct wr_ckpt_file_ref *f;
	int fd, dfd;			/* buffered; O_DIRECT or -1 */
	const struct wr_ckpt_log_chunk *ch;
	uint32_t n, next;		/* chunks; the next to queue */
	uint64_t *off;			/* each chunk's file offset */
	uint8_t *buf[REPLAY_BUFS];	/* chunk k in buf[k % REPLAY_BUFS] */
	int32_t res[REPLAY_BUFS];
	bool busy[REPLAY_BUFS];		/* a read in flight */
	bool held[REPLAY_BUFS];		/* queued, and not applied yet */
	uint32_t inflight;
	struct helper *h;		/* or NULL */
	uint32_t base;			/* h's chunks posted before this file */
	uint32_t *list0;		/* this thread's list of a chunk */
};

/* Whether buf[k % BUFS] may be read into: the helper is done with chunk
 * k - BUFS of this file, which it held. */
static bool buf_free(const struct replay *rp, uint32_t k)
{
	return rp->h == NULL || k < REPLAY_BUFS ||
	       atomic_load_explicit(&rp->h->done, memory_order_acquire) >=
	       rp->base + k - REPLAY_BUFS + 1;
}

/* Queues the read of chunk rp->next if a buffer is free; false if not. */
static bool replay_queue(struct replay *rp)
{
	uint32_t s = rp->next % REPLAY_BUFS;
	struct io_uring_sqe *sqe;

	/* Not `busy`: a read that completed while another was waited for
	 * is not applied yet (reads may complete out of order; when they
	 * did, the next chunk's read went into a buffer not yet applied, and
	 * the restore reported a checksum mismatch and fell back to an
	 * older checkpoint). */
	if (rp->next >= rp->n || rp->held[s] || !rp->l->uring ||
	    !buf_free(rp, rp->next) ||
	    (sqe = io_uring_get_sqe(&rp->l->ring)) == NULL)
		return false;
	uint32_t len = rp->ch[rp->next].len, cap = wr_ckpt_test_log_read_max;

	io_uring_prep_read(sqe, rp->dfd >= 0 ? rp->dfd : rp->fd, rp->buf[s],
			   cap && cap < len ? cap : len, rp->off[rp->next]);
	io_uring_sqe_set_data64(sqe, s);
	rp->busy[s] = rp->held[s] = true;
	rp->inflight++;
	rp->next++;
	return true;
}

static void replay_submit(struct replay *rp)
{
	int ret;

	if (!rp->l->uring)	/* every chunk read by a pread instead */
		return;
	while (replay_queue(rp))
		;
	do
		ret = io_uring_submit(&rp->l->ring);
	while (ret == -EINTR);
}

/* Waits until the read into slot s completed (reaping others too). */
static void replay_wait(struct replay *rp, uint32_t s)
{
	while (rp->busy[s]) {
		struct io_uring_cqe *cqe;
		int err;
		do
			err = io_uring_wait_cqe(&rp->l->ring, &cqe);
		while (err == -EINTR);
		if (err) { /* cannot happen with reads in flight */
			rp->busy[s] = false;
			rp->res[s] = err;
			return;
		}
		uint32_t d = (uint32_t)io_uring_cqe_get_data64(cqe);
		rp->res[d] = cqe->res;
		rp->busy[d] = false;
		rp->inflight--;
		io_uring_cqe_seen(&rp->l->ring, cqe);
	}
}

/* Chunk k split, the helper's part posted, this thread's applied. */
static int replay_apply(struct replay *rp, uint32_t k, uint32_t s,
			size_t *bad)
{
	struct helper *h = rp->h;
	const struct wr_arena_log_split sp = {
		{ rp->list0, h ? h->list[s] : NULL },
		h ? HELPER_MAIN_EIGHTHS : 8 };
	const struct wr_arena_log_meta m = { loader_meta, h };
	struct wr_arena *a = rp->l->a;
	size_t n[2];
	int err = wr_arena_log_split(a, rp->buf[s], rp->ch[k].len, &sp, n, bad);

	if (err == 0 && h != NULL)
		helper_post(h, rp->buf[s], sp.list[1], n[1]);
	return err ? err : wr_arena_log_apply_list(a, rp->buf[s], sp.list[0],
						   n[0], h ? &m : NULL, bad);
}

/* Chunk k: its bytes (queued read, or a pread when that came back short
 * or there is no uring), checksum, applied. */
static int replay_chunk(struct replay *rp, uint32_t k)
{
	const struct wr_ckpt_log_chunk *ch = &rp->ch[k];
	uint32_t s = k % REPLAY_BUFS;
	struct loader *l = rp->l;
	size_t bad = 0;
	char what[96];
	int err;

	if (k >= rp->next && rp->h != NULL) {	/* not queued: the helper */
		unsigned i = 0;				/* had its buffer */
		while (!buf_free(rp, k))
			helper_spin(&i);
		replay_submit(rp);
	}
	replay_wait(rp, s);
	rp->held[s] = false;	/* queued again only after the next submit */
	if (k >= rp->next)	/* never queued (no uring): read here, never */
		rp->next = k + 1;	/* queue it later into this buffer */
	if (ch->len > WR_ARENA_LOG_CHUNK ||
	    ((uint32_t)rp->res[s] != ch->len &&
	     wr_ckpt_pread_full(rp->fd, rp->buf[s], ch->len, rp->off[k]) != 0))
		return wr_ckpt_page_failed(l->c, rp->f->name, rp->off[k],
					   "read error");
	if (XXH3_64bits(rp->buf[s], ch->len) != ch->checksum)
		return wr_ckpt_page_failed(l->c, rp->f->name, rp->off[k],
					   "checksum mismatch in a log chunk");
	err = replay_apply(rp, k, s, &bad);
	if (err == -EBADMSG) {
		snprintf(what, sizeof(what), "log entry the arena cannot take "
			 "(core %u)", l->core);
		return wr_ckpt_page_failed(l->c, rp->f->name, rp->off[k] + bad,
					   what);
	}
	rp->res[s] = -1;	/* the buffer is free for chunk k + BUFS */
	return err;
}

/* Every chunk of the open log file, in order; reads in flight drained
 * before it returns, whatever happened. */
static int replay_chunks(struct replay *rp)
{
	uint64_t off = WR_CKPT_BLOCK;
	int err = 0;

	for (uint32_t k = 0; k < rp->n; off += rp->ch[k++].len)
		rp->off[k] = off;
	for (uint32_t s = 0; s < REPLAY_BUFS; s++)
		rp->res[s] = -1;
	replay_submit(rp);
	for (uint32_t k = 0; err == 0 && k < rp->n; k++) {
		err = replay_chunk(rp, k);
		replay_submit(rp);
	}
	for (uint32_t s = 0; s < REPLAY_BUFS; s++)
		replay_wait(rp, s);
	return err;
}

/* The log file's header and chunk table (verified by open; read again). */
static int replay_table(struct replay *rp)
{
	struct wr_ckpt_file_header h;
	struct loader *l = rp->l;
	const struct wr_ckpt_file_ref *f = rp->f;
	struct wr_ckpt_log_chunk *ch;

	if (wr_ckpt_pread_full(rp->fd, &h, sizeof(h), 0) != 0)
		return wr_ckpt_page_failed(l->c, f->name, 0, "read error");
	if (memcmp(h.magic, WR_CKPT_MAGIC_LOG, 8) != 0 ||
	    h.count > f->size / WR_CKPT_BLOCK || h.trailer_off > f->size)
		return wr_ckpt_page_failed(l->c, f->name, 0, "not the log file "
					   "open verified (changed since?)");
	ch = malloc((size_t)h.count * sizeof(*ch) + 1);
	rp->off = malloc((size_t)h.count * sizeof(*rp->off) + 1);
	rp->ch = ch;
	rp->n = h.count;
	if (ch == NULL || rp->off == NULL)
		return -ENOMEM;
	if (wr_ckpt_pread_full(rp->fd, ch, (size_t)h.count * sizeof(*ch),
			       h.trailer_off) != 0)
		return wr_ckpt_page_failed(l->c, f->name, h.trailer_off,
					   "read error");
	return 0;
}

/* One log file; `with` holds the buffers, the list and the helper. */
static int replay_file(const struct replay *with,
		       const struct wr_ckpt_file_ref *f)
{
	struct replay rp = *with;
	struct loader *l = rp.l;
	int err;

	rp.f = f;
	rp.base = rp.h != NULL ? rp.h->nposted : 0;
	rp.fd = openat(l->c->dirfd, f->name, O_RDONLY | O_CLOEXEC);
	err = rp.fd < 0 ? wr_error(-errno, "checkpoint: cannot open %s: %s",
				   f->name, strerror(errno)) : 0;
	rp.dfd = err || wr_ckpt_test_log_buffered ? -1 :
		 openat(l->c->dirfd, f->name, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (err == 0)
		err = replay_table(&rp);
	if (err == 0)
		err = replay_chunks(&rp);
	if (err == 0 && rp.h != NULL)	/* the next file reuses the buffers */
		helper_wait(rp.h, rp.h->nposted);
	free((void *)rp.ch);
	free(rp.off);
	if (rp.fd >= 0)
		close(rp.fd);
	if (rp.dfd >= 0)
		close(rp.dfd);
	return err;
}

/*
 * The chunk buffers are one region on huge pages: an O_DIRECT read pins
 * its buffer's pages when it is submitted and unpins them when it
 * completes, 256 small pages a 1 MiB chunk or half of one huge page.
 * Measured (a 12-log chain of a 1 GiB state, bench/RESULTS.md
 * 2026-12-07): the submissions took 0.074-0.089 s of the restoring
 * thread with four 1 MiB buffers from posix_memalign, 0.020-0.025 s so.
 * The lists (this thread's, then the helper's one per buffer) follow.
 */
#define REPLAY_BUFS_ALIGN (2u << 20)
#define REPLAY_REGION wr_ckpt_round_up((size_t)REPLAY_BUFS * \
		WR_ARENA_LOG_CHUNK + (1 + REPLAY_BUFS) * HELPER_LIST_BYTES, \
		REPLAY_BUFS_ALIGN)

/* The core's log files, oldest first, onto its loaded pages. */
static int replay_logs(struct loader *l)
{
	const struct wr_ckpt_core_info *ci = &l->c->m.core[l->core];
	struct replay with = { .l = l };
	uint8_t *region;
	int err = 0;

	if (ci->nlog == 0)
		return 0;
	region = aligned_alloc(REPLAY_BUFS_ALIGN, REPLAY_REGION);
	if (region == NULL)
		return -ENOMEM;
	(void)madvise(region, REPLAY_REGION, MADV_HUGEPAGE);
	for (uint32_t s = 0; s < REPLAY_BUFS; s++)
		with.buf[s] = region + (size_t)s * WR_ARENA_LOG_CHUNK;
	with.list0 = (uint32_t *)(region + (size_t)REPLAY_BUFS *
				  WR_ARENA_LOG_CHUNK);
	with.h = helper_start(l->a, l->helper_cpu,
			      with.list0 + HELPER_LIST_BYTES / 4);
	for (uint32_t k = ci->nlog; err == 0 && k-- > 0;)
		err = replay_file(&with, &ci->log[k]);
	err = helper_stop(with.h, err);
	free(region);
	return err;
}

int wr_ckpt_load_core_with(struct wr_ckpt *c, uint32_t core,
			   struct wr_arena *a, int helper_cpu)
{
	struct loader l;
	int err = load_init(&l, c, core, a);

	if (err)
		return err;
	l.helper_cpu = helper_cpu;
	for (uint32_t i = 0, n; err == 0 && i < l.r->n; i += n) {
		n = run_len(&l, i);
		if (l.inflight == LOAD_DEPTH)
			err = reap_one(&l, true);
		if (err == 0)
			err = load_run(&l, i, n);
	}
	while (l.inflight > 0) {
		int e = reap_one(&l, err == 0);
		err = err ? err : e;
	}
	if (err == 0)
		err = replay_logs(&l);
	load_fini(&l, err);
	return err;
}

int wr_ckpt_load_core(struct wr_ckpt *c, uint32_t core, struct wr_arena *a)
{
	return wr_ckpt_load_core_with(c, core, a, -1);
}
