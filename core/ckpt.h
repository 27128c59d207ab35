/*
 * core/ckpt.h — aligned barrier checkpoints in the executor (Flink's
 * asynchronous barrier snapshots over the ring mesh; docs/architecture.md,
 * "Checkpoints").
 *
 * PROTOCOL for checkpoint n
 *   The coordinator (core 0's loop) plans n and publishes it (trigger).
 *   Each core, on seeing the trigger or a first barrier n, CUTS: it records
 *   its source positions and stops polling its sources.  For every key_by
 *   edge e it then sends BARRIER(e, n) to each core d once the stage
 *   feeding e is cut (e's root is a source, or barrier n arrived on the
 *   root edge from every core) and its out buffer for d is empty; a core
 *   that already sent END on e to d sends nothing (END stands for every
 *   later barrier).  Once every barrier (or END) of a sender has arrived,
 *   the ring from it is BLOCKED: what follows was produced after the
 *   sender's snapshot.  When every edge is aligned from every core and
 *   every barrier is sent, the core SNAPSHOTS (the timed pause): arena
 *   epoch bump — or, for a changelog checkpoint, a mark of the arena's
 *   log (the seal of this tick's noted ranges, state/arena.h) — operator
 *   headers (tables, slabs, timer heaps), watermarks and sink lengths
 *   copied into a buffer allocated at start-up; O(nodes + states) stores
 *   plus this tick's notes, no allocation, no formatting, no syscall.  The rings
 *   unblock and the sources resume at once; the writer is created on the
 *   next tick (files opened, sections named and added, source positions
 *   from the cut), after records have flowed again.  No disk I/O happens
 *   before the barrier is forwarded.  Timers do not fire while a core
 *   aligns, so nothing is emitted after a barrier that the snapshot
 *   already counts.
 *
 * LIFECYCLE of checkpoint n on one core (validator: wr_ckpt_core_is_valid)
 *
 *     IDLE ── trigger n or barrier n seen: ckpt_cut() ──> ALIGN
 *     ALIGN ── aligned and every barrier sent: snapshot() ──> FLUSH
 *              (snapshot_state(): a changelog mark when the plan is a
 *              changelog one and this core's log runs unbroken from the
 *              plan's parent, else a page snapshot; the tick ends there:
 *              records resume; the writer opens on the first FLUSH tick,
 *              timed apart as "open")
 *     ALIGN ── snapshot() fails (metadata does not fit) ──> IDLE, reported
 *     FLUSH ── the writer cannot open: report(error) ──> IDLE
 *     FLUSH ── writer durable and sinks synced: ckpt_report() ──> IDLE
 *     FLUSH ── write error or abort: ckpt_report(error) ──> IDLE
 *
 *   and on the coordinator (core 0), in coordinate():
 *
 *     IDLE ── prepared(): the committer plans checkpoint n and creates
 *             every core's files of it (prep PENDING, then READY, or
 *             FAILED) ──> IDLE
 *     IDLE ── interval due and prep READY or FAILED: start() (the plan
 *             and files prepared, or, FAILED, a plan made there and
 *             files each writer creates) ──> TRIGGERED
 *     TRIGGERED ── every core reported: complete() ──> COMMITTING
 *              (the committer thread runs wr_ckpt_commit, or
 *              wr_ckpt_abort after an error or the timeout: the fsyncs
 *              and unlinks never block core 0's loop)
 *     COMMITTING ── the committer is done: commit_done() ──> IDLE
 *
 *   in_flight covers TRIGGERED and COMMITTING, so no checkpoint is planned
 *   (nor prepared) before the previous one's manifest is in place; prep
 *   is NONE outside IDLE; the files of a plan no writer took are closed
 *   by settle() and removed by the next commit's sweep or an abort, and a
 *   prepare still unused when the job closes is undone (prep_drop).
 *
 * INVARIANTS
 *   1. At most one checkpoint is between trigger and commit; ids increase.
 *   2. A core in ALIGN polls no source and fires no timer; a blocked ring is
 *      neither drained nor its markers taken.
 *   3. The arena snapshot (or changelog mark) and the metadata of n are
 *      taken in the same tick, after the last barrier n was received; the
 *      source positions at the cut, and the sources stay stopped until
 *      that tick.  In FLUSH exactly one of them is pending: the arena's
 *      snapshot, or (lg_this) a log segment the ring keeps until a later
 *      plan names n as parent (it committed) or another checkpoint id.
 *   5. Every tick ends with the changelog's seal (wr_ckpt_tick_end), so a
 *      mark taken between ticks covers every write before it.
 *   4. Only a committed manifest counts (snapshot/ckpt.h).
 */
#ifndef WR_CORE_CKPT_H
#define WR_CORE_CKPT_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "core/pipeline_internal.h"
#include "snapshot/ckpt.h"
#include "weir/checkpoint.h"

/* CLOCK_MONOTONIC in ns: the checkpoint job's durations and deadlines. */
static inline uint64_t wr_ckpt_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define WR_CKPT_DIR_MAX 4096u
#define WR_CKPT_PAUSES 1024u

enum wr_ckpt_phase { WR_CK_IDLE = 0, WR_CK_ALIGN, WR_CK_FLUSH };

/* Durations of one kind, for percentiles (relaxed: statistics). */
struct wr_ckpt_lat {
	_Atomic uint64_t n, max_ns;
	_Atomic uint32_t ns[WR_CKPT_PAUSES];
};

/* Shared by every core of one run; one per pipeline with checkpoints. */
struct wr_ckpt_job {
	struct weir_checkpoint_config cfg;
	char dir[WR_CKPT_DIR_MAX];
	int lock_fd;   /* the directory, flock'ed while the job runs; or -1 */
	uint64_t fingerprint;
	char job[256];
	unsigned cores;
	uint32_t key_groups;
	/* Coordinator -> cores. */
	alignas(WEIR_CACHE_LINE) _Atomic uint64_t trigger;
	_Atomic uint64_t abort_id;
	_Atomic int closed;            /* every core may finish now */
	struct wr_ckpt_plan plan;      /* of `trigger`, written before it */
	/* Per core, its files of `trigger` created ahead (fd -1: none, or
	 * taken): written before the trigger, taken by that core's writer,
	 * what is left closed by the coordinator once every core reported. */
	struct wr_ckpt_files files[WEIR_CORES_MAX];
	/* Cores -> coordinator. */
	alignas(WEIR_CACHE_LINE) _Atomic unsigned reported;
	/* Per core: a window of it is firing (relaxed: a hint for when to
	 * trigger, see coordinate()). */
	_Atomic bool firing[WEIR_CORES_MAX];
	_Atomic unsigned want_finish;
	struct wr_ckpt_core_result res[WEIR_CORES_MAX];
	int err[WEIR_CORES_MAX];
	uint64_t bytes[WEIR_CORES_MAX];
	/* Coordinator only (core 0).  handed: every core reported and the
	 * checkpoint went to the committer (a commit, or an abort:
	 * commit_abort); in_flight lasts until the committer is done. */
	bool in_flight, aborting, force_full;
	/* Bytes of the last checkpoint of logs only / of pages only this run
	 * committed: the policy's last_log_bytes / last_page_bytes. */
	uint64_t last_log_bytes, last_page_bytes;
	bool handed, commit_abort;
	int prep;                      /* enum wr_ckpt_prep (ckpt.c) */
	uint64_t commit_us;            /* trigger to every core reported */
	struct wr_ckpt_committer *committer;
	uint64_t seq;                  /* triggers so far */
	int64_t started_ms, next_ms;
	uint64_t started_ns;
	/* Restore, read by every core's init under restore_lock. */
	struct wr_ckpt *restore;
	pthread_mutex_t restore_lock;
	/* Statistics (relaxed). */
	_Atomic uint64_t completed, failed, last_id, last_us, last_bytes;
	_Atomic uint64_t changelog;    /* completed with a core's log */
	/* The snapshot's pause (barrier to records resumed), the writer's
	 * start (files opened, sections added: the first FLUSH tick, after
	 * records resumed) and each later flush step (a page, a submission),
	 * each over its last WR_CKPT_PAUSES (any core). */
	struct wr_ckpt_lat pause, open, align, step;
	uint64_t restored_id;
	uint32_t restored_cores;
	uint64_t restore_t0_ns;	/* CLOCK_MONOTONIC when the restore began */
	_Atomic uint64_t restore_us; /* began to every core running */
};

struct wr_ckpt_writer;
struct wr_uring;

/* One core's part (inside struct wr_exec). */
struct wr_exec_ckpt {
	enum wr_ckpt_phase phase;
	uint64_t id;        /* ALIGN/FLUSH: the trigger's sequence number */
	uint64_t seen;      /* newest sequence number this core cut for */
	uint64_t cut_ns;    /* ALIGN: when it cut (mono), for align stats */
	bool got[WR_EDGES_MAX][WEIR_CORES_MAX];  /* barrier or END from k */
	bool sent[WR_EDGES_MAX][WEIR_CORES_MAX]; /* barrier (or END) to d */
	unsigned got_from[WEIR_CORES_MAX];       /* edges aligned from k */
	bool blocked[WEIR_CORES_MAX];
	bool want_finish;
	bool firing;        /* as last published in job->firing[] */
	uint8_t *pos;       /* per source: position bytes at the cut */
	uint32_t *pos_len;
	struct wr_ckpt_writer *w;   /* FLUSH: created the tick after the
				     * snapshot, once records have resumed */
	struct wr_uring *io;
	/* The metadata captured at the snapshot, handed to the writer the
	 * next tick: the snapshot itself stays memory-only (no syscall, no
	 * allocation: meta_cap is wr_ckpt_meta_bytes_max, allocated once). */
	uint8_t *meta;
	size_t meta_len, meta_cap;
	uint64_t snap_ns;           /* when the snapshot was taken */
	uint64_t step_ns;           /* when the writer last stepped */
	/* The changelog (state/arena.h): the log's position at this core's
	 * newest checkpoint known committed (base: the next log segment
	 * starts there) and at the last one it wrote (last: adopted as base
	 * once a plan names it as parent); id 0 = none. */
	struct wr_ck_logpos { uint64_t id, pos; } lg_base, lg_last;
	bool lg_this;               /* FLUSH: a changelog checkpoint */
	uint64_t lg_to;             /* its segment's end */
};

struct wr_exec;

/* exec_setup.c / pipeline.c */
int wr_ckpt_exec_init(struct wr_exec *x);
/* Right after this core's pages of the restored checkpoint R are in (the
 * same core count), before anything rebuilds on them: the changelog starts
 * here, with R as its base, so the first checkpoint after a restart can be
 * a log on top of R's chain instead of the whole state again.  Every write
 * from here on (operators rebuilt, sources rewound) goes through a barrier
 * and is in that log. */
int wr_ckpt_log_continue(struct wr_exec *x);
void wr_ckpt_exec_fini(struct wr_exec *x);
int wr_ckpt_job_open(struct weir_pipeline *p);  /* before the workers */
void wr_ckpt_job_close(struct weir_pipeline *p);
/* After the workers: the commit handed to the committer, if any, ends. */
void wr_ckpt_commit_wait(struct wr_ckpt_job *j);
/* After the workers: a next checkpoint prepared (or being prepared) is
 * undone, its files closed and removed; files handed to the cores and not
 * taken (a checkpoint cut short) are closed. */
void wr_ckpt_prep_drop(struct wr_ckpt_job *j);
/* A page of the checkpoint being restored failed as a core loaded it;
 * then fall_back opens the newest one older than it (pipeline.c). */
bool wr_ckpt_job_pages_bad(const struct weir_pipeline *p);
/* Every core runs again after a restore: its duration noted and said on
 * stderr (nothing without one). */
void wr_ckpt_job_restored(struct weir_pipeline *p);
int wr_ckpt_job_fall_back(struct weir_pipeline *p);
uint64_t wr_ckpt_fingerprint(const struct weir_pipeline *p, char *desc,
			     size_t cap);

/* exec.c, at the end of every tick: the arena's changelog takes the bytes
 * of the ranges this tick noted (a safe point: no record half done). */
static inline void wr_ckpt_tick_end(struct wr_arena *a)
{
	if (a->log != NULL)
		wr_arena_log_seal(a);
}

/* exec.c, every tick: the coordinator (core 0), the trigger, barriers,
 * the snapshot and the writer; `work` is the records the tick moved so far
 * (the writer yields to a backlog).  Returns work done or -errno. */
int wr_ckpt_tick(struct wr_exec *x, uint32_t work);
/* A marker of kind BARRIER or END from core `from` on edge e. */
void wr_ckpt_marker(struct wr_exec *x, unsigned from,
		    const struct weir_marker *m);
static inline bool wr_ckpt_aligning(const struct wr_exec_ckpt *c)
{
	return c->phase == WR_CK_ALIGN;
}
/* May this core finish (everything ended)?  Only once every core has
 * ended and no checkpoint is in flight: see wr_ckpt_tick. */
bool wr_ckpt_may_finish(struct wr_exec *x);
bool wr_ckpt_core_is_valid(const struct wr_exec *x);

/* core/ckpt_meta.c: operator metadata in and out.
 *   wr_ckpt_meta_save runs inside the pause: the sections whose bytes change
 *     once records resume ("time", "op.<id>", "sink.<id>") go straight into
 *     x->ck.meta through wr_ckpt_meta_reserve.  O(nodes + states), never
 *     O(keys or timers) (those are arena pages, kept by the epoch bump); no
 *     allocation, no formatting, no syscall.
 *   wr_ckpt_meta_bytes_max bounds that buffer (wr_ckpt_exec_init allocates
 *     it once).
 *   wr_ckpt_meta_add_sources adds the "src.<id>" sections to the writer on
 *     its first tick: the positions were taken at the cut and stay in
 *     x->ck.pos until the next cut, which follows this checkpoint's report.
 *   wr_ckpt_meta_reserve (core/ckpt.c): room for one section named prefix
 *     (prefix + id when id != WR_CKPT_META_NO_ID; prefix must be a string
 *     literal: it is formatted the next tick), or NULL when full. */
#define WR_CKPT_META_NO_ID UINT32_MAX
size_t wr_ckpt_meta_bytes_max(const struct wr_exec *x);
int wr_ckpt_meta_save(struct wr_exec *x);
int wr_ckpt_meta_add_sources(struct wr_exec *x, struct wr_ckpt_writer *w);
void *wr_ckpt_meta_reserve(struct wr_exec *x, const char *prefix, uint32_t id,
			   size_t len);
/* Restore this core's operators; called by wr_exec_create after the
 * nodes are built fresh (rescaling) or instead (same core count). */
int wr_ckpt_meta_restore(struct wr_exec *x);
int wr_ckpt_sources_restore(struct wr_exec *x);

#endif /* WR_CORE_CKPT_H */
