/*
 * weir/runtime.h — thread-per-core runtime: pinned workers, their event
 * loops, and the N x N ring mesh between them.
 *
 * PURPOSE
 *   A runtime owns N worker threads, one pinned per CPU, each with its own
 *   jemalloc arena and its own event loop.  Worker i talks to worker j only
 *   through ring i -> j (i == j included).  Nothing else is shared on the
 *   data path: no locks, no shared counters.
 *
 * LIFECYCLE
 *
 *     weir_runtime_create()  -> CREATED   (rings allocated, config checked)
 *     weir_runtime_start()   -> RUNNING   (workers launched, ops.init on each)
 *     weir_runtime_stop_remote() / signal / every worker finished / error
 *                            -> STOPPING  (loops exit after their current tick)
 *     weir_runtime_wait()    -> STOPPED   (ops.fini on each worker, joined)
 *     weir_runtime_destroy() -> freed
 *
 * THE EVENT LOOP (one per worker)
 *   repeat until stopping or weir_worker_finish(): work = ops.poll(w, arg);
 *   poll must do a bounded amount of work and return how much (0 = idle)
 *   or -errno to fail the job.  When idle, the policy applies: busy-poll
 *   spins; sleep spins `spin_budget` idle ticks, then blocks on the
 *   worker's eventfd for at most `sleep_max_us`.  Producers wake a sleeping
 *   worker through weir_worker_send_*_local(), which only pays for the wake
 *   check under the sleep policy.
 *
 * INVARIANTS
 *   1. Worker i runs only on CPU cpus[i] (checked in tests from inside).
 *   2. Ring i -> j is produced only by worker i and consumed only by j.
 *   3. ops.init, ops.poll and ops.fini run on the worker's own thread, with
 *      the thread bound to the worker's jemalloc arena.
 *   4. A full ring is backpressure: send returns fewer records; nothing is
 *      dropped.
 *
 * CAVEATS
 *   - weir_worker_* functions marked _local may only be called by the
 *     worker itself, from its ops callbacks.
 *   - With handle_signals, one runtime at a time owns SIGINT/SIGTERM: the
 *     first signal requests a stop, a second one exits the process at once
 *     (status 128 + signal).  Previous handlers are restored by wait().
 */
#ifndef WEIR_RUNTIME_H
#define WEIR_RUNTIME_H

#include <stdbool.h>

#include "weir/common.h"
#include "weir/ring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEIR_CORES_MAX 128

enum weir_idle_policy {
	WEIR_IDLE_BUSY_POLL = 0, /* spin: lowest latency, one CPU per core */
	WEIR_IDLE_SLEEP = 1,     /* spin a budget, then sleep on an eventfd */
};

struct weir_runtime_config {
	unsigned cores;         /* 1..usable CPUs (config_init: all) */
	uint32_t ring_capacity; /* slots per ring: a power of two */
	uint32_t record_size;   /* bytes per slot, > 0 */
	enum weir_idle_policy idle;
	uint32_t spin_budget;   /* idle ticks before sleeping */
	uint32_t sleep_max_us;  /* longest single sleep, > 0 */
	bool handle_signals;    /* SIGINT/SIGTERM stop the runtime */
};

/* Defaults: all CPUs, 4096-slot rings, 64-byte records, sleep policy with a
 * 4096-tick spin budget and 1 ms sleeps, no signal handling. */
void weir_runtime_config_init(struct weir_runtime_config *cfg);

/* The CPUs this process may run on (its affinity), lowest first, at most
 * max of them: worker i of a runtime created now is pinned to cpus[i]. */
unsigned weir_runtime_usable_cpus(int *cpus, unsigned max);

struct weir_runtime;
struct weir_worker;

struct weir_worker_ops {
	/* Optional; on the worker thread before its first poll.  -errno fails
	 * the start of the whole job. */
	int (*init)(struct weir_worker *w, void *arg);
	/* Required; one bounded tick.  Returns work done (0 = idle) or -errno. */
	int (*poll)(struct weir_worker *w, void *arg);
	/* Optional; on the worker thread after its last poll. */
	void (*fini)(struct weir_worker *w, void *arg);
};

/* Check cfg and build the ring mesh.  -EINVAL names the bad value in
 * weir_last_error(); -ENOMEM.  The caller owns *out. */
int weir_runtime_create(const struct weir_runtime_config *cfg,
			struct weir_runtime **out);

/* Launch one pinned worker per core.  ops and arg must outlive the run.
 * Returns 0, -EBUSY if already started, or the first init error (the
 * workers already launched are then stopped and joined). */
int weir_runtime_start(struct weir_runtime *rt,
		       const struct weir_worker_ops *ops, void *arg);

/* Ask every worker to stop after its current tick.  Any thread, and
 * async-signal-safe. */
void weir_runtime_stop_remote(struct weir_runtime *rt);

/* True once a stop was requested (by anyone) or the job failed. */
bool weir_runtime_stopping(const struct weir_runtime *rt);

/* True once every worker's loop has exited; never blocks. */
bool weir_runtime_finished(const struct weir_runtime *rt);

/* Join every worker.  Returns 0, or the first -errno a worker returned. */
int weir_runtime_wait(struct weir_runtime *rt);

/* Stops and waits if still running, then frees everything. */
void weir_runtime_destroy(struct weir_runtime *rt);

unsigned weir_runtime_cores(const struct weir_runtime *rt);
/* The CPU worker `id` is pinned to. */
int weir_runtime_cpu(const struct weir_runtime *rt, unsigned id);
/* The i-th CPU this process may run on (its affinity when the runtime was
 * created) that no worker is pinned to, or -1: for short helper work, such
 * as a restore's replay (core/pipeline.c). */
int weir_runtime_spare_cpu(const struct weir_runtime *rt, unsigned i);
/* Ring from worker `from` to worker `to`, for tests and metrics. */
struct weir_ring *weir_runtime_ring(const struct weir_runtime *rt,
				    unsigned from, unsigned to);

/* ---- worker side: call only from the worker's own ops callbacks ---- */

unsigned weir_worker_id(const struct weir_worker *w);
unsigned weir_worker_count(const struct weir_worker *w);
struct weir_runtime *weir_worker_runtime(const struct weir_worker *w);

/* Leave the event loop after this tick; the runtime finishes when every
 * worker has finished or a stop is requested. */
void weir_worker_finish_local(struct weir_worker *w);

/* Enqueue up to n records to worker `to` and wake it if it sleeps.
 * Returns how many were enqueued (a full ring is backpressure). */
uint32_t weir_worker_send_burst_local(struct weir_worker *w, unsigned to,
				      const void *recs, uint32_t n);
/* Enqueue a marker after the records sent so far to worker `to`.
 * 0 or -ENOBUFS (marker queue full: retry after the consumer drains). */
int weir_worker_send_marker_local(struct weir_worker *w, unsigned to,
				  const struct weir_marker *m);
/* Dequeue up to n records from worker `from` (stops before a marker). */
uint32_t weir_worker_recv_burst_local(struct weir_worker *w, unsigned from,
				      void *recs, uint32_t n);
/* 1 and *m filled if a marker from `from` is next in order, else 0. */
int weir_worker_recv_marker_local(struct weir_worker *w, unsigned from,
				  struct weir_marker *m);

/* Allocate from the worker's own jemalloc arena (control plane only; the
 * data path never allocates).  NULL on failure; size 0 gives NULL. */
void *weir_worker_alloc_local(struct weir_worker *w, size_t size);
void weir_worker_free_local(struct weir_worker *w, void *p);
/* The worker's jemalloc arena index. */
unsigned weir_worker_arena(const struct weir_worker *w);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_RUNTIME_H */
