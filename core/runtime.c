/*
 * runtime.c — pinned worker threads, their event loops and the ring mesh.
 * The contract is in weir/runtime.h.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <jemalloc/jemalloc.h>

#include "core/error.h"
#include "weir/runtime.h"

#define RING_CAPACITY_DEFAULT 4096u
#define RECORD_SIZE_DEFAULT 64u
#define SPIN_BUDGET_DEFAULT 4096u
#define SLEEP_MAX_US_DEFAULT 1000u
#define SLEEP_MAX_US_LIMIT 1000000u

struct weir_worker {
	/* Owned by the worker thread. */
	alignas(WEIR_CACHE_LINE) struct weir_runtime *rt;
	struct weir_ring **out; /* out[j]: ring this -> j */
	struct weir_ring **in;  /* in[i]: ring i -> this */
	unsigned id;
	unsigned n;
	unsigned arena;
	int efd;
	int err;
	bool finish;
	bool sleep_policy;
	pthread_t thread;
	bool launched;

	/* Written by this worker, read by producers that may have to wake it
	 * (sleep policy only). */
	alignas(WEIR_CACHE_LINE) _Atomic int sleeping;
};

struct weir_runtime {
	struct weir_runtime_config cfg;
	unsigned n;
	int cpus[WEIR_CORES_MAX];	/* workers' first, then the spare ones */
	unsigned ncpus;
	struct weir_ring **rings; /* rings[i * n + j]: i -> j */
	struct weir_worker *workers;
	const struct weir_worker_ops *ops;
	void *arg;
	/* Start gate: workers report init done, then wait for the gate. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	unsigned gate_ready;
	unsigned gate_launched;
	bool gate_open;
	bool running;
	bool owns_signals;
	struct sigaction old_int, old_term;

	/* Written by anyone (stop, errors, signals), read by every loop. */
	alignas(WEIR_CACHE_LINE) _Atomic int stop;
	_Atomic int first_err;
	/* weir_last_error() of the thread that set first_err: written by that
	 * thread only (it won the CAS in fail()), read by wait() after the
	 * joins, which order the two. */
	char first_msg[256];
	_Atomic int signalled;
	_Atomic unsigned live; /* workers whose loop has not exited */
};

/* ---- configuration ---- */

unsigned weir_runtime_usable_cpus(int *cpus, unsigned max)
{
	cpu_set_t set;
	unsigned n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 0;
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	return n;
}

void weir_runtime_config_init(struct weir_runtime_config *cfg)
{
	int cpus[WEIR_CORES_MAX];

	memset(cfg, 0, sizeof(*cfg));
	cfg->cores = weir_runtime_usable_cpus(cpus, WEIR_CORES_MAX);
	cfg->ring_capacity = RING_CAPACITY_DEFAULT;
	cfg->record_size = RECORD_SIZE_DEFAULT;
	cfg->idle = WEIR_IDLE_SLEEP;
	cfg->spin_budget = SPIN_BUDGET_DEFAULT;
	cfg->sleep_max_us = SLEEP_MAX_US_DEFAULT;
}

static int check_config(const struct weir_runtime_config *cfg, int *cpus,
			unsigned *ncpus)
{
	*ncpus = weir_runtime_usable_cpus(cpus, WEIR_CORES_MAX);
	if (cfg->cores == 0)
		return wr_error(-EINVAL, "cores is 0: a runtime needs at least "
				"one core");
	if (cfg->cores > *ncpus)
		return wr_error(-EINVAL, "cores %u is more than the %u CPUs "
				"this process may run on", cfg->cores, *ncpus);
	if (cfg->ring_capacity < 2 ||
	    (cfg->ring_capacity & (cfg->ring_capacity - 1)) != 0 ||
	    cfg->ring_capacity > WEIR_RING_CAPACITY_MAX)
		return wr_error(-EINVAL, "ring capacity %u is not a power of "
				"two in [2, %u]", cfg->ring_capacity,
				WEIR_RING_CAPACITY_MAX);
	if (cfg->record_size == 0 || cfg->record_size > WEIR_RING_SLOT_SIZE_MAX)
		return wr_error(-EINVAL, "record size %u is out of range "
				"[1, %u] bytes", cfg->record_size,
				WEIR_RING_SLOT_SIZE_MAX);
	if (cfg->idle != WEIR_IDLE_BUSY_POLL && cfg->idle != WEIR_IDLE_SLEEP)
		return wr_error(-EINVAL, "idle policy %d is neither busy-poll "
				"(0) nor sleep (1)", (int)cfg->idle);
	if (cfg->idle == WEIR_IDLE_SLEEP &&
	    (cfg->sleep_max_us == 0 || cfg->sleep_max_us > SLEEP_MAX_US_LIMIT))
		return wr_error(-EINVAL, "sleep_max_us %u is out of range "
				"[1, %u]", cfg->sleep_max_us,
				SLEEP_MAX_US_LIMIT);
	return 0;
}

/* ---- jemalloc arenas: one per worker slot, reused across runtimes ---- */

static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned arena_of_slot[WEIR_CORES_MAX];
static bool arena_made[WEIR_CORES_MAX];

/* Arenas cannot be handed back without discarding what is still allocated
 * in them, and memory a worker allocates may outlive its runtime, so worker
 * slot i always reuses arena_of_slot[i]. */
static int arena_for_slot(unsigned slot, unsigned *out)
{
	int err = 0;

	pthread_mutex_lock(&arena_lock);
	if (!arena_made[slot]) {
		size_t sz = sizeof(arena_of_slot[slot]);
		if (mallctl("arenas.create", &arena_of_slot[slot], &sz, NULL,
			    0) != 0)
			err = wr_error(-ENOMEM, "jemalloc could not create an "
				       "arena for worker %u", slot);
		else
			arena_made[slot] = true;
	}
	*out = arena_of_slot[slot];
	pthread_mutex_unlock(&arena_lock);
	return err;
}

/* ---- create / destroy ---- */

static int build_mesh(struct weir_runtime *rt)
{
	unsigned n = rt->n;

	rt->rings = calloc((size_t)n * n, sizeof(*rt->rings));
	if (rt->rings == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < n * n; i++) {
		int err = weir_ring_create(rt->cfg.ring_capacity,
					   rt->cfg.record_size, &rt->rings[i]);
		if (err)
			return err;
	}
	return 0;
}

static int init_worker(struct weir_runtime *rt, unsigned id)
{
	struct weir_worker *w = &rt->workers[id];
	unsigned n = rt->n;

	w->rt = rt;
	w->id = id;
	w->n = n;
	w->efd = -1;
	w->sleep_policy = rt->cfg.idle == WEIR_IDLE_SLEEP;
	w->out = calloc(2 * (size_t)n, sizeof(*w->out));
	if (w->out == NULL)
		return -ENOMEM;
	w->in = w->out + n;
	for (unsigned j = 0; j < n; j++) {
		w->out[j] = rt->rings[id * n + j];
		w->in[j] = rt->rings[j * n + id];
	}
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0)
		return -errno;
	return arena_for_slot(id, &w->arena);
}

int weir_runtime_create(const struct weir_runtime_config *cfg,
			struct weir_runtime **out)
{
	struct weir_runtime *rt;
	int cpus[WEIR_CORES_MAX];
	unsigned ncpus;
	int err;

	if (cfg == NULL || out == NULL)
		return wr_error(-EINVAL, "runtime config or out-pointer is NULL");
	err = check_config(cfg, cpus, &ncpus);
	if (err)
		return err;
	rt = aligned_alloc(WEIR_CACHE_LINE, sizeof(*rt));
	if (rt == NULL)
		return -ENOMEM;
	memset(rt, 0, sizeof(*rt));
	pthread_mutex_init(&rt->gate_lock, NULL);
	pthread_cond_init(&rt->gate_cond, NULL);
	rt->cfg = *cfg;
	rt->n = cfg->cores;
	memcpy(rt->cpus, cpus, sizeof(cpus));
	rt->ncpus = ncpus;
	rt->workers = aligned_alloc(WEIR_CACHE_LINE,
				    rt->n * sizeof(*rt->workers));
	if (rt->workers == NULL) {
		free(rt);
		return -ENOMEM;
	}
	memset(rt->workers, 0, rt->n * sizeof(*rt->workers));
	for (unsigned i = 0; i < rt->n; i++)
		rt->workers[i].efd = -1;
	err = build_mesh(rt);
	for (unsigned i = 0; i < rt->n && err == 0; i++)
		err = init_worker(rt, i);
	if (err) {
		weir_runtime_destroy(rt);
		return err;
	}
	*out = rt;
	return 0;
}

void weir_runtime_destroy(struct weir_runtime *rt)
{
	if (rt == NULL)
		return;
	if (rt->running) {
		weir_runtime_stop_remote(rt);
		(void)weir_runtime_wait(rt);
	}
	for (unsigned i = 0; rt->workers != NULL && i < rt->n; i++) {
		if (rt->workers[i].efd >= 0)
			close(rt->workers[i].efd);
		free(rt->workers[i].out);
	}
	for (unsigned i = 0; rt->rings != NULL && i < rt->n * rt->n; i++)
		weir_ring_destroy(rt->rings[i]);
	free(rt->rings);
	free(rt->workers);
	pthread_cond_destroy(&rt->gate_cond);
	pthread_mutex_destroy(&rt->gate_lock);
	free(rt);
}

/* ---- stop and signals ---- */

void weir_runtime_stop_remote(struct weir_runtime *rt)
{
	uint64_t one = 1;

	atomic_store_explicit(&rt->stop, 1, memory_order_release);
	for (unsigned i = 0; i < rt->n; i++)
		if (rt->workers[i].efd >= 0)
			(void)!write(rt->workers[i].efd, &one, sizeof(one));
}

bool weir_runtime_stopping(const struct weir_runtime *rt)
{
	return atomic_load_explicit(&rt->stop, memory_order_acquire) != 0;
}

bool weir_runtime_finished(const struct weir_runtime *rt)
{
	/* ops is set by the first start and never cleared: finished stays
	 * true after wait(). */
	return rt->ops != NULL &&
	       atomic_load_explicit(&rt->live, memory_order_acquire) == 0;
}

static void fail(struct weir_runtime *rt, int err)
{
	int none = 0;

	/* The message lives in the failing thread's TLS; keep it for the
	 * caller of wait(), who would otherwise see an empty or stale one. */
	if (atomic_compare_exchange_strong(&rt->first_err, &none, err))
		snprintf(rt->first_msg, sizeof(rt->first_msg), "%s",
			 weir_last_error());
	weir_runtime_stop_remote(rt);
}

static _Atomic(struct weir_runtime *) signal_rt;

static void on_signal(int sig)
{
	struct weir_runtime *rt = atomic_load(&signal_rt);

	if (rt == NULL)
		return;
	if (atomic_exchange(&rt->signalled, 1))
		_exit(128 + sig); /* second signal: leave at once */
	weir_runtime_stop_remote(rt);
}

static int take_signals(struct weir_runtime *rt)
{
	struct weir_runtime *none = NULL;
	struct sigaction sa;

	if (!atomic_compare_exchange_strong(&signal_rt, &none, rt))
		return wr_error(-EBUSY, "another weir runtime already handles "
				"SIGINT/SIGTERM");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &rt->old_int);
	sigaction(SIGTERM, &sa, &rt->old_term);
	rt->owns_signals = true;
	return 0;
}

static void give_back_signals(struct weir_runtime *rt)
{
	if (!rt->owns_signals)
		return;
	sigaction(SIGINT, &rt->old_int, NULL);
	sigaction(SIGTERM, &rt->old_term, NULL);
	atomic_store(&signal_rt, NULL);
	rt->owns_signals = false;
}

/* ---- the event loop ---- */

static bool inputs_pending(const struct weir_worker *w)
{
	for (unsigned i = 0; i < w->n; i++) {
		const struct weir_ring *r = w->in[i];
		if (atomic_load_explicit(&r->head, memory_order_relaxed) !=
			    atomic_load_explicit(&r->tail,
						 memory_order_relaxed) ||
		    atomic_load_explicit(&r->mk_head, memory_order_relaxed) !=
			    atomic_load_explicit(&r->mk_tail,
						 memory_order_relaxed))
			return true;
	}
	return false;
}

/*
 * Dekker handshake with wake(), without fences (TSan cannot check those):
 * both sides do a seq_cst read-modify-write of `sleeping`.  The two RMWs are
 * ordered; if the producer's comes second it reads 1 and writes the
 * eventfd; if it comes first, the consumer's exchange reads from it, so the
 * producer's records (published before its RMW) are visible to the
 * consumer's re-check.  Either way no record is stranded.  The timeout
 * bounds the sleep anyway (sources other than rings, e.g. a paced
 * generator).
 */
static void sleep_on_eventfd(struct weir_worker *w)
{
	uint32_t us = w->rt->cfg.sleep_max_us;
	struct timespec ts = { us / 1000000u, (us % 1000000u) * 1000L };
	struct pollfd pfd = { .fd = w->efd, .events = POLLIN };
	uint64_t v;

	/* Pairs with the fetch_add in wake(). */
	atomic_exchange_explicit(&w->sleeping, 1, memory_order_seq_cst);
	if (!inputs_pending(w) && !weir_runtime_stopping(w->rt))
		(void)ppoll(&pfd, 1, &ts, NULL);
	(void)!read(w->efd, &v, sizeof(v));
	atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
}

static void wake(struct weir_worker *to)
{
	uint64_t one = 1;

	/* Pairs with the exchange in sleep_on_eventfd(). */
	if (atomic_fetch_add_explicit(&to->sleeping, 0, memory_order_seq_cst))
		(void)!write(to->efd, &one, sizeof(one));
}

static void event_loop(struct weir_worker *w)
{
	struct weir_runtime *rt = w->rt;
	uint32_t idle = 0;

	while (!w->finish && !weir_runtime_stopping(rt)) {
		int work = rt->ops->poll(w, rt->arg);
		if (WEIR_UNLIKELY(work < 0)) {
			w->err = work;
			fail(rt, work);
			break;
		}
		if (work > 0 || !w->sleep_policy) {
			idle = 0;
			continue;
		}
		if (++idle >= rt->cfg.spin_budget) {
			sleep_on_eventfd(w);
			idle = 0;
		}
	}
}

/* Worker side of the start gate: report init done, wait for the gate. */
static void gate_pass(struct weir_runtime *rt)
{
	pthread_mutex_lock(&rt->gate_lock);
	rt->gate_ready++;
	pthread_cond_broadcast(&rt->gate_cond);
	while (!rt->gate_open)
		pthread_cond_wait(&rt->gate_cond, &rt->gate_lock);
	pthread_mutex_unlock(&rt->gate_lock);
}

/* Main side: wait until every launched worker ran init, then open.
 * Returns the first init error, read before any worker can poll, so a
 * poll error is never mistaken for an init error (wait() reports those). */
static int gate_open(struct weir_runtime *rt)
{
	int err;

	pthread_mutex_lock(&rt->gate_lock);
	while (rt->gate_ready < rt->gate_launched)
		pthread_cond_wait(&rt->gate_cond, &rt->gate_lock);
	err = atomic_load(&rt->first_err);
	rt->gate_open = true;
	pthread_cond_broadcast(&rt->gate_cond);
	pthread_mutex_unlock(&rt->gate_lock);
	return err;
}

static void *worker_main(void *p)
{
	struct weir_worker *w = p;
	struct weir_runtime *rt = w->rt;
	int err = 0;

	/* Every allocation on this thread now comes from its own arena. */
	if (mallctl("thread.arena", NULL, NULL, &w->arena,
		    sizeof(w->arena)) != 0)
		err = -ENOMEM;
	if (err == 0 && rt->ops->init != NULL)
		err = rt->ops->init(w, rt->arg);
	if (err)
		fail(rt, err);
	gate_pass(rt);
	if (err == 0) {
		event_loop(w);
		if (rt->ops->fini != NULL)
			rt->ops->fini(w, rt->arg);
	}
	atomic_fetch_sub_explicit(&rt->live, 1, memory_order_release);
	return NULL;
}

/* ---- start / wait ---- */

static int launch(struct weir_runtime *rt, unsigned id)
{
	struct weir_worker *w = &rt->workers[id];
	pthread_attr_t attr;
	cpu_set_t set;
	int err;

	CPU_ZERO(&set);
	CPU_SET(rt->cpus[id], &set);
	pthread_attr_init(&attr);
	/* Pinned before it runs its first instruction. */
	pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	err = pthread_create(&w->thread, &attr, worker_main, w);
	pthread_attr_destroy(&attr);
	if (err)
		return wr_error(-err, "could not start worker %u on CPU %d",
				id, rt->cpus[id]);
	w->launched = true;
	rt->gate_launched++;
	return 0;
}

int weir_runtime_start(struct weir_runtime *rt,
		       const struct weir_worker_ops *ops, void *arg)
{
	sigset_t block, old;
	int err = 0;

	if (rt == NULL || ops == NULL || ops->poll == NULL)
		return wr_error(-EINVAL, "runtime, ops or ops->poll is NULL");
	if (rt->running)
		return wr_error(-EBUSY, "runtime already started");
	if (rt->cfg.handle_signals && (err = take_signals(rt)) != 0)
		return err;
	rt->ops = ops;
	rt->arg = arg;
	rt->running = true;
	/* A runtime may run again after wait(): start from a clean slate. */
	atomic_store(&rt->stop, 0);
	atomic_store(&rt->first_err, 0);
	rt->first_msg[0] = '\0';
	atomic_store(&rt->signalled, 0);
	for (unsigned i = 0; i < rt->n; i++)
		rt->workers[i].finish = false;
	atomic_store(&rt->live, rt->n);
	rt->gate_ready = rt->gate_launched = 0;
	rt->gate_open = false;

	/* Workers start with SIGINT/SIGTERM blocked, so the handler runs on
	 * the thread that waits and interrupts its sleeps. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (unsigned i = 0; i < rt->n && err == 0; i++)
		err = launch(rt, i);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (err) {
		fail(rt, err);
		for (unsigned i = rt->gate_launched; i < rt->n; i++)
			atomic_fetch_sub(&rt->live, 1); /* never launched */
	}
	err = gate_open(rt);
	if (err)
		(void)weir_runtime_wait(rt);
	return err;
}

int weir_runtime_wait(struct weir_runtime *rt)
{
	if (rt == NULL || !rt->running)
		return 0;
	for (unsigned i = 0; i < rt->n; i++) {
		if (rt->workers[i].launched)
			pthread_join(rt->workers[i].thread, NULL);
		rt->workers[i].launched = false;
	}
	rt->running = false;
	give_back_signals(rt);
	int err = atomic_load(&rt->first_err);
	if (err && rt->first_msg[0] != '\0')
		wr_error(err, "%s", rt->first_msg);
	return err;
}

/* ---- accessors ---- */

unsigned weir_runtime_cores(const struct weir_runtime *rt)
{
	return rt->n;
}

int weir_runtime_cpu(const struct weir_runtime *rt, unsigned id)
{
	return id < rt->n ? rt->cpus[id] : -1;
}

int weir_runtime_spare_cpu(const struct weir_runtime *rt, unsigned i)
{
	return i < rt->ncpus - rt->n ? rt->cpus[rt->n + i] : -1;
}

struct weir_ring *weir_runtime_ring(const struct weir_runtime *rt,
				    unsigned from, unsigned to)
{
	if (from >= rt->n || to >= rt->n)
		return NULL;
	return rt->rings[from * rt->n + to];
}

/* ---- worker side ---- */

unsigned weir_worker_id(const struct weir_worker *w)
{
	return w->id;
}

unsigned weir_worker_count(const struct weir_worker *w)
{
	return w->n;
}

struct weir_runtime *weir_worker_runtime(const struct weir_worker *w)
{
	return w->rt;
}

void weir_worker_finish_local(struct weir_worker *w)
{
	w->finish = true;
}

uint32_t weir_worker_send_burst_local(struct weir_worker *w, unsigned to,
				      const void *recs, uint32_t n)
{
	uint32_t sent = weir_ring_enqueue_burst_spsc(w->out[to], recs, n);

	if (w->sleep_policy && sent > 0 && to != w->id)
		wake(&w->rt->workers[to]);
	return sent;
}

int weir_worker_send_marker_local(struct weir_worker *w, unsigned to,
				  const struct weir_marker *m)
{
	int err = weir_ring_enqueue_marker_spsc(w->out[to], m);

	if (w->sleep_policy && err == 0 && to != w->id)
		wake(&w->rt->workers[to]);
	return err;
}

uint32_t weir_worker_recv_burst_local(struct weir_worker *w, unsigned from,
				      void *recs, uint32_t n)
{
	return weir_ring_dequeue_burst_spsc(w->in[from], recs, n);
}

int weir_worker_recv_marker_local(struct weir_worker *w, unsigned from,
				  struct weir_marker *m)
{
	return weir_ring_dequeue_marker_spsc(w->in[from], m);
}

void *weir_worker_alloc_local(struct weir_worker *w, size_t size)
{
	if (size == 0)
		return NULL;
	return mallocx(size, MALLOCX_ARENA(w->arena));
}

void weir_worker_free_local(struct weir_worker *w, void *p)
{
	(void)w;
	if (p != NULL)
		dallocx(p, 0);
}

unsigned weir_worker_arena(const struct weir_worker *w)
{
	return w->arena;
}
