/*
 * snapshot/ckpt.h — checkpoint files: the per-core writer, the coordinator's
 * commit and retention, and restore (format: docs/checkpoint-format.md).
 *
 * PURPOSE
 *   A checkpoint n is, per core, one page file (the arena pages of the
 *   snapshot, or for an incremental checkpoint only those written since the
 *   parent's epoch) or, for a changelog checkpoint, one log file (the
 *   arena's changelog since the parent: state/arena.h), and one metadata
 *   file (named opaque sections: table headers, timers, source positions,
 *   sink lengths), plus one manifest that names every file the checkpoint
 *   needs, including the parents' page and log files.
 *   Only a committed manifest (MANIFEST-<n>, renamed from .tmp after fsync,
 *   directory fsynced) makes a checkpoint exist.
 *
 * LIFECYCLE of checkpoint n (validator: wr_ckpt_writer_is_valid per core)
 *
 *                 wr_arena_snapshot_begin + wr_ckpt_writer_create
 *                 (cfg.log: wr_arena_log_mark instead)
 *     (none) ─────────────────────────────────────────────> PAGES
 *                                                            │ wr_ckpt_writer_step
 *                     every page (log chunk) write reaped ──> v
 *                                                           TRAILER (meta file,
 *                                                            │  header, trailer)
 *                              all reaped ───────────────>   v
 *                                                           SYNC (fsync both)
 *                                                            │ wr_ckpt_writer_step
 *                              fsyncs reaped ────────────>   v
 *     any write/fsync error ──> FAILED                      DURABLE (step → 1)
 *     (step returns -errno once                              │ wr_ckpt_commit
 *      nothing is in flight;                                 v   (all cores)
 *      wr_ckpt_writer_destroy                               COMMITTED
 *      unlinks the files)                                    │ wr_ckpt_commit of
 *                                                            v  a later one
 *                                                           RETIRED (files
 *                                                            deleted unless a
 *                                                            retained manifest
 *                                                            references them)
 *   The caller ends the arena snapshot (wr_arena_snapshot_end) after the
 *   writer reached DURABLE or FAILED, never before: the writer reads shadow
 *   pages until then.  A log writer reads the ring's sealed bytes: the
 *   caller releases them (wr_arena_log_release) only once the checkpoint
 *   committed.
 *
 * INVARIANTS
 *   1. Pages are checksummed (XXH3-64) before their write is queued; every
 *      checksum is verified after read on restore (by wr_ckpt_open, or as
 *      the load reads the page after wr_ckpt_open_deferred) and by verify.
 *   2. A writer has at most inflight_max writes queued or in flight, and a
 *      step examines at most WR_CKPT_STEP_PAGES pages: bounded work per tick.
 *   3. A page buffer handed to the uring is the writer's own, a shadow
 *      (frozen until snapshot_end), or a live page, which the engine may
 *      touch while it is written: then the page is written again from its
 *      shadow after the first write completed and before the fsync
 *      (writer.c, WRITE-AFTER-TOUCH REPAIR).
 *   4. The files of checkpoint n are durable (fsync) before the manifest is
 *      written; the manifest is durable before it is renamed; the directory
 *      is fsynced after the rename.  A crash anywhere leaves either the old
 *      set of committed manifests or the old set plus n, complete.
 *   5. Retention deletes a file only when no retained committed manifest
 *      references it, and never a file of a checkpoint newer than the one
 *      being committed (those may be in flight).
 *   6. Restore and verify never modify the directory.
 *
 * CAVEATS
 *   - One writer per core per checkpoint, called only from that core.
 *     open()/fallocate() run in wr_ckpt_writer_create, never in step.
 *   - The writer reaps the uring itself (step); a core that shares its uring
 *     with file sinks must set cfg.foreign_reap and pass every completion
 *     whose tag has WR_CKPT_TAG_BIT set to wr_ckpt_writer_on_done.
 *   - Incremental page checkpoints rely on the arena's epochs: after a
 *     restore or a restart the next page checkpoint must be full
 *     (wr_ckpt_plan force_full).  A changelog checkpoint does not: it may
 *     still be planned then, and a core whose log does not run from the
 *     parent writes a full page file instead (parent 0 for that core).
 *   - Restore runs before the loops start and blocks: pread for headers,
 *     trailers and meta files, its own small io_uring for the pages
 *     (snapshot/load.c).
 */
#ifndef WR_SNAPSHOT_CKPT_H
#define WR_SNAPSHOT_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot/uring.h"
#include "state/arena.h"
#include "weir/checkpoint.h"

#define WR_CKPT_FORMAT_VERSION 4u
/* Version 1's operator sections (table images without the slab fields,
 * aligned windows as per-key maps) do not read as version 2's: refused
 * like a newer version, with its own message. */
#define WR_CKPT_FORMAT_VERSION_MIN 2u
#define WR_CKPT_CORES_MAX 256u
#define WR_CKPT_CHAIN_MAX 64u		/* page files per core per manifest */
#define WR_CKPT_SECTIONS_MAX 64u
#define WR_CKPT_SECTION_NAME_MAX 31u
#define WR_CKPT_STEP_PAGES 256u		/* pages examined per step */
#define WR_CKPT_INFLIGHT_DEFAULT 32u
#define WR_CKPT_NAME_MAX 64u
#define WR_CKPT_TAG_BIT (1ull << 63)

enum wr_ckpt_state {
	WR_CKPT_PAGES = 1,
	WR_CKPT_TRAILER,
	WR_CKPT_SYNC,
	WR_CKPT_DURABLE,
	WR_CKPT_FAILED,
};

struct wr_ckpt_writer;

/*
 * One core's two files of a checkpoint (page or log file, and meta file),
 * created with O_CREAT|O_TRUNC in the directory dirfd names, O_DIRECT
 * unless no_direct or the filesystem refuses it (direct says which).
 * The coordinator has them created ahead on the committer's thread
 * (wr_ckpt_committer_prepare): on the loop the two creations took
 * 56-250 us of every core's first flush tick.  close: idempotent.
 */
struct wr_ckpt_files {
	int fd_pages, fd_meta;		/* -1: none */
	bool direct, log;
	uint32_t core;
	uint64_t ckpt_id;
	uint64_t dir_dev, dir_ino;	/* the directory they are in */
};
int wr_ckpt_files_create(int dirfd, const char *dir, uint64_t ckpt_id,
			 uint32_t core, bool log, bool no_direct,
			 struct wr_ckpt_files *out);
void wr_ckpt_files_close(struct wr_ckpt_files *f);

struct wr_ckpt_writer_config {
	const char *dir;	/* created 0700 if missing */
	uint64_t ckpt_id;	/* >= 1 */
	uint32_t core;
	uint64_t fingerprint;
	struct wr_uring *uring;	/* this core's */
	uint32_t inflight_max;	/* 0 = WR_CKPT_INFLIGHT_DEFAULT */
	uint64_t parent_id;	/* 0 = full checkpoint */
	uint32_t parent_epoch;	/* the parent's snap_epoch on this core */
	bool no_direct;		/* never try O_DIRECT */
	bool foreign_reap;	/* the loop reaps: see CAVEATS */
	/* A changelog checkpoint: the arena's sealed log bytes [log_from,
	 * log_to) (wr_arena_log_mark positions) go into a .log file instead
	 * of a page file, and no arena snapshot is pending.  parent_id is the
	 * checkpoint whose state the log continues (never 0). */
	bool log;
	uint64_t log_from, log_to;
	/* Bytes a step checksums at most (pages, or log chunks of 1 MiB, at
	 * least one): what a step adds to its loop tick.  0 = 2 MiB, ~100-
	 * 400 us of XXH3 over cold pages; the engine asks for less. */
	uint32_t step_bytes;
	/* Its two files created ahead (wr_ckpt_files_create), or NULL.  The
	 * writer takes them when they are this checkpoint's, this core's and
	 * of this kind, still linked and empty in dir, else closes them and
	 * creates its own; either way it sets their fds to -1. */
	struct wr_ckpt_files *files;
};

/* What one core reports to the coordinator. */
struct wr_ckpt_core_result {
	uint32_t core;
	uint32_t snap_epoch;
	uint32_t page_size;
	uint32_t pages_written;		/* in this checkpoint's page file */
	uint32_t view_pages;		/* pages in the snapshot */
	uint64_t parent_id;
	bool is_log;			/* pages_* name the .log file */
	char pages_file[WR_CKPT_NAME_MAX];
	uint64_t pages_size;
	uint64_t pages_checksum;
	char meta_file[WR_CKPT_NAME_MAX];
	uint64_t meta_size;
	uint64_t meta_checksum;
	bool direct_io;
	uint32_t pages_rewritten;	/* touched while their write was in
					 * flight, rewritten from the shadow */
};

int wr_ckpt_writer_create(const struct wr_ckpt_writer_config *cfg,
			  struct wr_arena *arena, struct wr_ckpt_writer **out);
/* Only before the first step.  Copies the bytes. */
int wr_ckpt_writer_add_section(struct wr_ckpt_writer *w, const char *name,
			       const void *bytes, size_t len);
/* 0 progress, 1 durable, -errno failed (after everything in flight was
 * reaped; the files are unlinked by destroy).  Never blocks. */
int wr_ckpt_writer_step(struct wr_ckpt_writer *w);
void wr_ckpt_writer_on_done(struct wr_ckpt_writer *w,
			    const struct wr_uring_done *d);
int wr_ckpt_writer_result(const struct wr_ckpt_writer *w,
			  struct wr_ckpt_core_result *out);
enum wr_ckpt_state wr_ckpt_writer_state(const struct wr_ckpt_writer *w);
/* Pages checksummed so far (at most step_bytes' worth more per step). */
uint32_t wr_ckpt_writer_checksummed(const struct wr_ckpt_writer *w);
bool wr_ckpt_writer_is_valid(const struct wr_ckpt_writer *w);
/* Unlinks the files unless DURABLE; blocks (drains) if writes are in
 * flight.  NULL is a no-op.  The directory fd and the page-count-sized
 * buffers stay in a per-thread cache for the next writer of the thread;
 * wr_ckpt_writer_cache_release() frees them (call it at thread exit). */
void wr_ckpt_writer_destroy(struct wr_ckpt_writer *w);
void wr_ckpt_writer_cache_release(void);
/* Fills this thread's cache with the buffers a page writer of an arena of
 * pages_total pages borrows, faulted in: call it at a core's start-up,
 * or the first checkpoint's first flush tick allocates and faults them in
 * (~250 us at a 1 GiB cap).  0 or -ENOMEM (then the writer allocates). */
int wr_ckpt_writer_cache_reserve(uint32_t pages_total);

/* ---- coordinator: plan, commit, retention, abort ---- */

struct wr_ckpt_policy {
	uint32_t retain;	/* committed checkpoints kept, >= 1 */
	bool incremental;
	uint32_t full_every;	/* a full checkpoint every K; 0 = 8 */
	uint32_t chain_max;	/* page files per core; 0 = 8, <= CHAIN_MAX */
	bool force_full;	/* no page-incremental one: epochs restarted
				 * (a changelog one is still planned) */
	/* Changelog checkpoints between page snapshots (docs/architecture.md
	 * "Changelog"): planned while every core has fewer than log_max log
	 * files (0 = 32, <= CHAIN_MAX) and the logs hold fewer bytes than
	 * log_max_pct % of the page files under them (0 = 100: replaying
	 * more than that costs more than reading pages). */
	bool changelog;
	uint32_t log_max;
	uint32_t log_max_pct;
	/* The bytes of the last checkpoint of logs only and of the last of
	 * pages only that this run committed (0: none yet).  No log is planned
	 * while the last log was larger than the last page checkpoint: a job
	 * that rewrites its state every tick (the flows job's window counters)
	 * logs each tick's copy, more than the changed pages hold, and would
	 * otherwise write logs until log_max_pct, page after log after page. */
	uint64_t last_log_bytes, last_page_bytes;
};

struct wr_ckpt_plan {
	uint64_t ckpt_id;		/* newest committed + 1 */
	uint64_t parent_id;		/* 0 = full */
	bool log;			/* a changelog checkpoint of parent */
	uint32_t parent_epoch[WR_CKPT_CORES_MAX];
};

int wr_ckpt_plan_next(const char *dir, const struct wr_ckpt_policy *pol,
		      uint32_t cores, struct wr_ckpt_plan *out);

struct wr_ckpt_commit_info {
	const char *dir;
	uint64_t ckpt_id;
	uint64_t parent_id;
	uint64_t time_unix_ms;
	uint64_t duration_us;
	uint32_t cores;
	uint32_t key_groups;
	uint64_t fingerprint;
	const char *job;		/* human description of the fingerprint */
	uint32_t retain;
};

/* Writes and commits MANIFEST-<id>, then applies retention.  On failure
 * removes the checkpoint's files; the previous checkpoints stay. */
int wr_ckpt_commit(const struct wr_ckpt_commit_info *info,
		   const struct wr_ckpt_core_result *res, uint32_t ncores);
/* Removes every file of checkpoint id that no committed manifest names. */
int wr_ckpt_abort(const char *dir, uint64_t ckpt_id);

/* The same two on a thread of their own (snapshot/committer.c says why):
 * one request at a time; info's strings and res must stay valid until
 * poll returns 0.  commit/abort: 0, or -EBUSY while one is in flight.
 * poll: 1 running, 0 done (*rc its result, the message for
 * weir_last_error() on this thread), -ENOENT nothing submitted.  wait:
 * poll until done.  destroy: lets a submitted request finish first. */
struct wr_ckpt_committer;
int wr_ckpt_committer_create(struct wr_ckpt_committer **out);
void wr_ckpt_committer_destroy(struct wr_ckpt_committer *c);
int wr_ckpt_committer_commit(struct wr_ckpt_committer *c,
			     const struct wr_ckpt_commit_info *info,
			     const struct wr_ckpt_core_result *res,
			     uint32_t ncores);
int wr_ckpt_committer_abort(struct wr_ckpt_committer *c, const char *dir,
			    uint64_t ckpt_id);
/* prepare: the next checkpoint's plan (wr_ckpt_plan_next with pol) and
 * its files on each of ncores cores (wr_ckpt_files_create, the kind the
 * plan asks for); take: after poll or wait gave 0 with *rc 0 for it, moves
 * them out (files: ncores entries, each the caller's to close), before the
 * next request.  dir must stay valid until poll returns 0. */
int wr_ckpt_committer_prepare(struct wr_ckpt_committer *c, const char *dir,
			      const struct wr_ckpt_policy *pol, uint32_t ncores);
void wr_ckpt_committer_take(struct wr_ckpt_committer *c,
			    struct wr_ckpt_plan *plan,
			    struct wr_ckpt_files *files);
int wr_ckpt_committer_poll(struct wr_ckpt_committer *c, int *rc);
int wr_ckpt_committer_wait(struct wr_ckpt_committer *c, int *rc);

/* Test hook: wr_ckpt_commit returns -EINTR right after commit step k
 * (1 tmp written, 2 tmp fsynced, 3 renamed, 4 dir fsynced, 5 retention),
 * leaving the directory as a crash would; 0 = off. */
extern int wr_ckpt_test_crash_after;
/* Test hooks of the log replay (load.c): log files read buffered only
 * (no O_DIRECT); and, when nonzero, each log read asked for at most this
 * many bytes, so it comes back short and the chunk is read again with a
 * blocking buffered pread. */
extern bool wr_ckpt_test_log_buffered;
extern uint32_t wr_ckpt_test_log_read_max;
/* Test hook of the loader: no io_uring, as where it is missing (ENOSYS,
 * seccomp): every page run and log chunk read by a blocking pread. */
extern bool wr_ckpt_test_load_no_uring;

/* ---- manifests, restore, verify ---- */

struct wr_ckpt_file_ref {
	char name[WR_CKPT_NAME_MAX];
	uint64_t size;
	uint64_t checksum;
};

struct wr_ckpt_core_info {
	uint32_t snap_epoch;
	uint32_t view_pages;
	uint32_t pages_written;
	uint32_t nchain;			/* page files, newest first */
	struct wr_ckpt_file_ref chain[WR_CKPT_CHAIN_MAX];
	uint32_t nlog;				/* log files over the pages,
						 * newest first */
	struct wr_ckpt_file_ref log[WR_CKPT_CHAIN_MAX];
	struct wr_ckpt_file_ref meta;
};

struct wr_ckpt_manifest {
	uint32_t version;
	uint64_t id;
	uint64_t parent_id;
	uint64_t time_unix_ms;
	uint64_t duration_us;
	uint32_t cores;
	uint32_t key_groups;
	uint32_t page_size;
	uint64_t fingerprint;
	char job[256];
	struct wr_ckpt_core_info *core;	/* cores entries */
};

/* Problems found by restore and verify: file (may be a manifest), byte
 * offset in it, what is wrong. */
typedef void (*wr_ckpt_report_fn)(void *arg, const char *file,
				  uint64_t offset, const char *what);

/* Committed checkpoint ids, ascending; *n may exceed max (then the newest
 * max of them). */
int wr_ckpt_list(const char *dir, uint64_t *ids, uint32_t max, uint32_t *n);
int wr_ckpt_manifest_read(const char *dir, uint64_t id,
			  struct wr_ckpt_manifest *m);
void wr_ckpt_manifest_free(struct wr_ckpt_manifest *m);
/* A manifest's text[0..len) (text[len] == 0; modified): 0, -EBADMSG with
 * *bad_off where it went wrong, -EPROTONOSUPPORT (version).  What
 * wr_ckpt_manifest_read parses the file with (and the fuzz target). */
int wr_ckpt_manifest_parse(char *text, size_t len, struct wr_ckpt_manifest *m,
			   uint64_t *bad_off);
/* 0 clean; -EBADMSG corrupt (every problem reported); other -errno. */
int wr_ckpt_verify(const char *dir, uint64_t id, wr_ckpt_report_fn report,
		   void *arg);

struct wr_ckpt;	/* an opened, verified checkpoint */

/*
 * The newest committed checkpoint that verifies (want_id 0) or exactly
 * want_id.  A corrupt one is reported and the previous tried.  -ESTALE
 * when a manifest's fingerprint differs from `fingerprint` (0 = any),
 * -EPROTONOSUPPORT when its format version is newer, -ENOENT when none
 * verifies.  Never modifies the directory.
 */
int wr_ckpt_open(const char *dir, uint64_t want_id, uint64_t fingerprint,
		 wr_ckpt_report_fn report, void *arg, struct wr_ckpt **out);
const struct wr_ckpt_manifest *wr_ckpt_info(const struct wr_ckpt *c);
/*
 * Restore in one pass: like wr_ckpt_open (newest first, only ids below
 * below_id when it is not 0), but page bytes are not read: headers, tails,
 * trailers, file checksums, the chain and the meta files are.  Each page's
 * checksum is checked as wr_ckpt_load_core or wr_ckpt_page_next reads it;
 * a mismatch there is reported (file, offset) and fails the load with
 * -EBADMSG, wr_ckpt_pages_bad() turns true, and the caller falls back:
 * close, then wr_ckpt_open_deferred(dir, <this id>, ...) and load again.
 */
int wr_ckpt_open_deferred(const char *dir, uint64_t below_id,
			  uint64_t fingerprint, wr_ckpt_report_fn report,
			  void *arg, struct wr_ckpt **out);
/* A page of c failed its checksum or read after open (see above). */
bool wr_ckpt_pages_bad(const struct wr_ckpt *c);
/* Same core count: the core's pages into an empty arena of the same page
 * size, at the same page ids, read once (O_DIRECT, straight into the
 * arena) and every checksum checked as the page lands.  On -EBADMSG (a bad
 * or unreadable page, reported) and on any other error the pages it
 * placed are freed again: the arena is as before.  Different cores may be
 * loaded at once from different threads. */
int wr_ckpt_load_core(struct wr_ckpt *c, uint32_t core, struct wr_arena *a);
/* The same, and a changelog chain's entries applied by this thread and a
 * helper thread pinned to helper_cpu (a CPU no worker runs on; -1: none,
 * as wr_ckpt_load_core), each its own share of the pages (snapshot/load.c,
 * "the replay helper").  The result is the same either way. */
int wr_ckpt_load_core_with(struct wr_ckpt *c, uint32_t core,
			   struct wr_arena *a, int helper_cpu);
/* A metadata section; the pointer lives until wr_ckpt_close.  -ENOENT. */
int wr_ckpt_section(struct wr_ckpt *c, uint32_t core, const char *name,
		    const void **bytes, size_t *len);

/* Different core count: every page of an old core.  *bytes lives until the
 * next call.  Returns 1 with a page, 0 at the end, -errno. */
struct wr_ckpt_page_iter {
	uint32_t core;
	uint32_t next;		/* 0 before the first call */
};
int wr_ckpt_page_next(struct wr_ckpt *c, struct wr_ckpt_page_iter *it,
		      uint32_t *page_id, const void **bytes);
void wr_ckpt_close(struct wr_ckpt *c);

#endif /* WR_SNAPSHOT_CKPT_H */
