/*
 * tests/core/runtime_test.c — the thread-per-core runtime (weir/runtime.h).
 *
 * TEST PLAN
 *   config      weir_runtime_config_init gives the documented defaults; bad
 *               configs (cores 0, cores > usable CPUs, ring capacity not a
 *               power of two, record size 0, unknown idle policy, sleep 0)
 *               -> -EINVAL with a message naming the value, *out untouched.
 *   lifecycle   create / start / stop_remote / wait / destroy: init, poll and
 *               fini run on every worker; start twice -> -EBUSY; NULL ops ->
 *               -EINVAL; destroy(NULL) no-op; destroy of a running runtime
 *               stops it.
 *   pinning     from inside init and poll, sched_getaffinity shows exactly
 *               one CPU, equal to weir_runtime_cpu(id) and sched_getcpu(),
 *               distinct across workers.  Spare CPUs: with k cores of the
 *               process's n usable CPUs, weir_runtime_spare_cpu(i) lists the
 *               other n - k, none a worker's, then -1.
 *   mesh        every ordered pair i -> j (i == j too) carries K records and
 *               an END marker through small rings (backpressure); each
 *               receiver checks exactly K in order per source, then END; under
 *               both idle policies.
 *   sleep       a worker asleep on its eventfd is woken by each send (latency
 *               far below the sleep timeout, few polls, nothing lost); a
 *               sleeping runtime stops promptly on stop_remote.
 *   errors      poll returning -errno stops every worker and wait() returns
 *               it; init failing makes start() return it and no poll runs.
 *   finish      weir_worker_finish_local on every worker ends the run:
 *               weir_runtime_finished becomes true without a stop request,
 *               and stays true after wait().
 *   arenas      weir_worker_alloc_local memory comes from the worker's own
 *               jemalloc arena (arenas.lookup), arenas differ per worker,
 *               large blocks are really freed (arena stats), size 0 -> NULL.
 *   signals     with handle_signals, SIGTERM / SIGINT to the process stops
 *               the run and wait() returns 0, then the previous handlers are
 *               back; a second runtime cannot take the signals meanwhile;
 *               a second signal during a slow shutdown exits the process
 *               with status 128 + SIGTERM (Criterion's .exit_code).
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jemalloc/jemalloc.h>

#include "weir/runtime.h"

/* The tests keep per-worker state in fixed arrays. */
#define TEST_CORES_MAX 8

/* ---- helpers ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static unsigned usable_cpus(void)
{
	cpu_set_t set;

	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	return (unsigned)CPU_COUNT(&set);
}

static unsigned test_cores(void)
{
	unsigned n = usable_cpus();

	return n < TEST_CORES_MAX ? n : TEST_CORES_MAX;
}

static struct weir_runtime_config config(unsigned cores,
					 enum weir_idle_policy idle)
{
	struct weir_runtime_config cfg;

	weir_runtime_config_init(&cfg);
	cfg.cores = cores;
	cfg.idle = idle;
	cfg.ring_capacity = 64;
	cfg.record_size = 16;
	return cfg;
}

static struct weir_runtime *runtime_new(const struct weir_runtime_config *c)
{
	struct weir_runtime *rt = NULL;
	int err = weir_runtime_create(c, &rt);

	cr_assert_eq(err, 0, "create: %d %s", err, weir_last_error());
	cr_assert_not_null(rt);
	return rt;
}

/* Wait up to `secs` for a predicate on the runtime. */
static bool wait_for(bool (*pred)(const struct weir_runtime *),
		     const struct weir_runtime *rt, double secs)
{
	double end = now_s() + secs;

	while (!pred(rt) && now_s() < end)
		sleep_ms(1);
	return pred(rt);
}

/* A poll that does nothing. */
static int idle_poll(struct weir_worker *w, void *arg)
{
	(void)w;
	(void)arg;
	return 0;
}

static const struct weir_worker_ops idle_ops = { .poll = idle_poll };

/* ---- configuration ---- */

Test(runtime, config_init_defaults)
{
	struct weir_runtime_config cfg;

	memset(&cfg, 0xa5, sizeof(cfg));
	weir_runtime_config_init(&cfg);
	cr_expect_eq(cfg.cores, usable_cpus());
	cr_expect_eq(cfg.ring_capacity, 4096u);
	cr_expect_eq(cfg.record_size, 64u);
	cr_expect_eq(cfg.idle, WEIR_IDLE_SLEEP);
	cr_expect_eq(cfg.spin_budget, 4096u);
	cr_expect_eq(cfg.sleep_max_us, 1000u);
	cr_expect_eq(cfg.handle_signals, false);
}

static void expect_bad_config(const struct weir_runtime_config *cfg,
			      const char *named)
{
	struct weir_runtime *sentinel = (struct weir_runtime *)0x1;
	struct weir_runtime *rt = sentinel;

	cr_expect_eq(weir_runtime_create(cfg, &rt), -EINVAL,
		     "config naming %s accepted", named);
	cr_expect_eq(rt, sentinel, "*out written on failure");
	cr_expect(strstr(weir_last_error(), named) != NULL,
		  "message \"%s\" does not name %s", weir_last_error(), named);
}

Test(runtime, bad_config_is_einval)
{
	struct weir_runtime_config cfg;
	char too_many[16];

	cfg = config(0, WEIR_IDLE_BUSY_POLL);
	expect_bad_config(&cfg, "cores is 0");
	cfg = config(usable_cpus() + 1, WEIR_IDLE_BUSY_POLL);
	snprintf(too_many, sizeof(too_many), "%u", usable_cpus() + 1);
	expect_bad_config(&cfg, too_many);
	cfg = config(1, WEIR_IDLE_BUSY_POLL);
	cfg.ring_capacity = 1000;
	expect_bad_config(&cfg, "1000");
	cfg.ring_capacity = 0;
	expect_bad_config(&cfg, "capacity 0");
	cfg = config(1, WEIR_IDLE_BUSY_POLL);
	cfg.record_size = 0;
	expect_bad_config(&cfg, "record size 0");
	cfg = config(1, (enum weir_idle_policy)7);
	expect_bad_config(&cfg, "7");
	cfg = config(1, WEIR_IDLE_SLEEP);
	cfg.sleep_max_us = 0;
	expect_bad_config(&cfg, "sleep_max_us 0");
}

Test(runtime, null_arguments_are_einval)
{
	struct weir_runtime_config cfg = config(1, WEIR_IDLE_BUSY_POLL);
	struct weir_runtime *rt = NULL;
	struct weir_worker_ops no_poll = { 0 };

	cr_expect_eq(weir_runtime_create(NULL, &rt), -EINVAL);
	cr_expect_eq(weir_runtime_create(&cfg, NULL), -EINVAL);
	rt = runtime_new(&cfg);
	cr_expect_eq(weir_runtime_start(rt, NULL, NULL), -EINVAL);
	cr_expect_eq(weir_runtime_start(rt, &no_poll, NULL), -EINVAL);
	weir_runtime_destroy(rt);
	weir_runtime_destroy(NULL);
}

/* ---- lifecycle ---- */

struct counts {
	_Atomic unsigned inits, finis;
	_Atomic unsigned long polls[TEST_CORES_MAX];
};

static int count_init(struct weir_worker *w, void *arg)
{
	struct counts *c = arg;

	(void)w;
	atomic_fetch_add(&c->inits, 1);
	return 0;
}

static int count_poll(struct weir_worker *w, void *arg)
{
	struct counts *c = arg;

	atomic_fetch_add_explicit(&c->polls[weir_worker_id(w)], 1,
				  memory_order_relaxed);
	return 0;
}

static void count_fini(struct weir_worker *w, void *arg)
{
	struct counts *c = arg;

	(void)w;
	atomic_fetch_add(&c->finis, 1);
}

static const struct weir_worker_ops count_ops = {
	.init = count_init, .poll = count_poll, .fini = count_fini };

static bool every_worker_polled(const struct counts *c, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (atomic_load(&c->polls[i]) == 0)
			return false;
	return true;
}

static void lifecycle_run(enum weir_idle_policy idle)
{
	unsigned n = test_cores();
	struct weir_runtime_config cfg = config(n, idle);
	struct weir_runtime *rt = runtime_new(&cfg);
	struct counts c = { 0 };
	double t0 = now_s();

	cr_assert_eq(weir_runtime_cores(rt), n);
	cr_assert_not_null(weir_runtime_ring(rt, n - 1, 0));
	cr_assert_null(weir_runtime_ring(rt, n, 0));
	cr_assert_eq(weir_runtime_start(rt, &count_ops, &c), 0);
	cr_assert_eq(weir_runtime_start(rt, &count_ops, &c), -EBUSY);
	cr_assert_eq(atomic_load(&c.inits), n, "start returns after init");
	while (!every_worker_polled(&c, n) && now_s() - t0 < 5)
		sleep_ms(1);
	cr_assert(every_worker_polled(&c, n));
	cr_assert(!weir_runtime_stopping(rt));
	weir_runtime_stop_remote(rt);
	cr_assert(weir_runtime_stopping(rt));
	cr_assert_eq(weir_runtime_wait(rt), 0);
	cr_assert_eq(atomic_load(&c.finis), n);
	weir_runtime_destroy(rt);
}

Test(runtime, lifecycle_busy_poll)
{
	lifecycle_run(WEIR_IDLE_BUSY_POLL);
}

Test(runtime, lifecycle_sleep)
{
	lifecycle_run(WEIR_IDLE_SLEEP);
}

Test(runtime, destroy_without_start_and_while_running)
{
	struct weir_runtime_config cfg = config(test_cores(), WEIR_IDLE_SLEEP);
	struct weir_runtime *rt = runtime_new(&cfg);
	struct counts c = { 0 };

	weir_runtime_destroy(rt);
	rt = runtime_new(&cfg);
	cr_assert_eq(weir_runtime_start(rt, &count_ops, &c), 0);
	weir_runtime_destroy(rt); /* must stop and join by itself */
	cr_assert_eq(atomic_load(&c.finis), test_cores());
}

/* ---- pinning ---- */

struct pin_seen {
	int init_cpu[TEST_CORES_MAX], poll_cpu[TEST_CORES_MAX];
	int init_count[TEST_CORES_MAX], poll_count[TEST_CORES_MAX];
	int running_on[TEST_CORES_MAX];
};

static void affinity(int *cpu, int *count)
{
	cpu_set_t set;

	*cpu = -1;
	*count = -1;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return;
	*count = CPU_COUNT(&set);
	for (int c = CPU_SETSIZE - 1; c >= 0; c--)
		if (CPU_ISSET(c, &set))
			*cpu = c;
}

static int pin_init(struct weir_worker *w, void *arg)
{
	struct pin_seen *s = arg;
	unsigned id = weir_worker_id(w);

	affinity(&s->init_cpu[id], &s->init_count[id]);
	return 0;
}

static int pin_poll(struct weir_worker *w, void *arg)
{
	struct pin_seen *s = arg;
	unsigned id = weir_worker_id(w);

	affinity(&s->poll_cpu[id], &s->poll_count[id]);
	s->running_on[id] = sched_getcpu();
	weir_worker_finish_local(w);
	return 1;
}

Test(runtime, each_worker_pinned_to_its_own_cpu)
{
	unsigned n = test_cores();
	struct weir_runtime_config cfg = config(n, WEIR_IDLE_BUSY_POLL);
	struct weir_runtime *rt = runtime_new(&cfg);
	struct weir_worker_ops ops = { .init = pin_init, .poll = pin_poll };
	struct pin_seen s;

	memset(&s, 0, sizeof(s));
	cr_assert_eq(weir_runtime_start(rt, &ops, &s), 0);
	cr_assert_eq(weir_runtime_wait(rt), 0);
	for (unsigned i = 0; i < n; i++) {
		int cpu = weir_runtime_cpu(rt, i);
		cr_expect_eq(s.init_count[i], 1, "worker %u init: %d CPUs", i,
			     s.init_count[i]);
		cr_expect_eq(s.poll_count[i], 1, "worker %u poll: %d CPUs", i,
			     s.poll_count[i]);
		cr_expect_eq(s.init_cpu[i], cpu, "worker %u init CPU", i);
		cr_expect_eq(s.poll_cpu[i], cpu, "worker %u poll CPU", i);
		cr_expect_eq(s.running_on[i], cpu, "worker %u sched_getcpu", i);
		for (unsigned j = 0; j < i; j++)
			cr_expect_neq(cpu, weir_runtime_cpu(rt, j),
				      "workers %u and %u share a CPU", i, j);
	}
	cr_expect_eq(weir_runtime_cpu(rt, n), -1);
	weir_runtime_destroy(rt);
}

/* The CPUs no worker is pinned to: every usable one that is not a
 * worker's, each once, for every core count. */
Test(runtime, spare_cpus_are_the_usable_ones_no_worker_has)
{
	unsigned n = usable_cpus();

	if (n > WEIR_CORES_MAX)	/* a runtime lists the first CORES_MAX */
		n = WEIR_CORES_MAX;

	for (unsigned k = 1; k <= n && k <= TEST_CORES_MAX; k++) {
		struct weir_runtime_config cfg = config(k, WEIR_IDLE_SLEEP);
		struct weir_runtime *rt = runtime_new(&cfg);
		cpu_set_t seen;
		CPU_ZERO(&seen);
		for (unsigned i = 0; i < k; i++)
			CPU_SET(weir_runtime_cpu(rt, i), &seen);
		for (unsigned i = 0; i < n - k; i++) {
			int c = weir_runtime_spare_cpu(rt, i);
			cr_assert_geq(c, 0, "%u cores: spare %u missing", k, i);
			cr_expect_not(CPU_ISSET(c, &seen), "%u cores: CPU %d "
				      "listed twice or a worker's", k, c);
			CPU_SET(c, &seen);
		}
		cr_expect_eq(CPU_COUNT(&seen), (int)n);
		cr_expect_eq(weir_runtime_spare_cpu(rt, n - k), -1);
		weir_runtime_destroy(rt);
	}
}

/* weir_runtime_usable_cpus lists the affinity's CPUs, lowest first, and
 * a runtime created now pins worker i to the i-th of them. */
Test(runtime, usable_cpus_are_where_workers_go)
{
	int cpus[WEIR_CORES_MAX];
	unsigned n = weir_runtime_usable_cpus(cpus, WEIR_CORES_MAX);
	unsigned k = n < TEST_CORES_MAX ? n : TEST_CORES_MAX;
	cpu_set_t set;

	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	cr_assert_eq(n, (unsigned)(CPU_COUNT(&set) < WEIR_CORES_MAX ?
				   CPU_COUNT(&set) : WEIR_CORES_MAX));
	for (unsigned i = 0; i < n; i++) {
		cr_expect(CPU_ISSET(cpus[i], &set), "CPU %d not usable", cpus[i]);
		cr_expect(i == 0 || cpus[i] > cpus[i - 1], "not in order at %u", i);
	}
	cr_expect_eq(weir_runtime_usable_cpus(cpus, 1), n > 0 ? 1u : 0u);
	struct weir_runtime_config cfg = config(k, WEIR_IDLE_SLEEP);
	struct weir_runtime *rt = runtime_new(&cfg);
	for (unsigned i = 0; i < k; i++)
		cr_expect_eq(weir_runtime_cpu(rt, i), cpus[i], "worker %u", i);
	weir_runtime_destroy(rt);
}

/* ---- the mesh: every ordered pair exchanges records and END ---- */

#define MESH_RECORDS 20000u /* per ordered pair; rings hold 64 */
#define MESH_BATCH 32u

struct mesh_rec {
	uint32_t src, dst;
	uint64_t seq;
};

struct mesh_worker {
	alignas(64) uint64_t sent[TEST_CORES_MAX], got[TEST_CORES_MAX];
	bool end_sent[TEST_CORES_MAX], end_got[TEST_CORES_MAX];
	unsigned ends_sent, ends_got;
	uint64_t bad;
};

struct mesh {
	unsigned n;
	struct mesh_worker w[TEST_CORES_MAX];
};

static int mesh_send(struct weir_worker *w, struct mesh_worker *me,
		     unsigned to)
{
	struct mesh_rec b[MESH_BATCH];
	uint64_t left = MESH_RECORDS - me->sent[to];
	uint32_t n = left < MESH_BATCH ? (uint32_t)left : MESH_BATCH;
	struct weir_marker end = { .kind = WEIR_MARKER_END,
				   .arg = weir_worker_id(w),
				   .value = MESH_RECORDS };

	if (n == 0) {
		if (me->end_sent[to] ||
		    weir_worker_send_marker_local(w, to, &end) != 0)
			return 0;
		me->end_sent[to] = true;
		me->ends_sent++;
		return 1;
	}
	for (uint32_t i = 0; i < n; i++)
		b[i] = (struct mesh_rec){ weir_worker_id(w), to,
					  me->sent[to] + i };
	n = weir_worker_send_burst_local(w, to, b, n);
	me->sent[to] += n;
	return (int)n;
}

static void mesh_check(struct mesh_worker *me, unsigned me_id,
		       unsigned from, const struct mesh_rec *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (b[i].src != from || b[i].dst != me_id ||
		    b[i].seq != me->got[from] || me->end_got[from])
			me->bad++;
		me->got[from]++;
	}
}

static int mesh_recv(struct weir_worker *w, struct mesh_worker *me,
		     unsigned from)
{
	struct mesh_rec b[MESH_BATCH];
	struct weir_marker m;
	uint32_t n = weir_worker_recv_burst_local(w, from, b, MESH_BATCH);

	mesh_check(me, weir_worker_id(w), from, b, n);
	if (weir_worker_recv_marker_local(w, from, &m) != 1)
		return (int)n;
	if (m.kind != WEIR_MARKER_END || m.arg != from ||
	    m.value != me->got[from] || me->end_got[from])
		me->bad++;
	me->end_got[from] = true;
	me->ends_got++;
	return (int)n + 1;
}

static int mesh_poll(struct weir_worker *w, void *arg)
{
	struct mesh *m = arg;
	struct mesh_worker *me = &m->w[weir_worker_id(w)];
	int work = 0;

	for (unsigned j = 0; j < m->n; j++)
		work += mesh_send(w, me, j);
	for (unsigned i = 0; i < m->n; i++)
		work += mesh_recv(w, me, i);
	if (me->ends_sent == m->n && me->ends_got == m->n)
		weir_worker_finish_local(w);
	return work;
}

static void mesh_run(unsigned n, enum weir_idle_policy idle)
{
	struct weir_runtime_config cfg = config(n, idle);
	struct weir_worker_ops ops = { .poll = mesh_poll };
	struct weir_runtime *rt;
	struct mesh *m = aligned_alloc(alignof(struct mesh), sizeof(*m));

	cr_assert_not_null(m);
	memset(m, 0, sizeof(*m));
	cfg.spin_budget = 16; /* sleep often: exercise the wake path */
	m->n = n;
	rt = runtime_new(&cfg);
	cr_assert_eq(weir_runtime_start(rt, &ops, m), 0);
	cr_assert_eq(weir_runtime_wait(rt), 0);
	for (unsigned j = 0; j < n; j++) {
		const struct mesh_worker *me = &m->w[j];
		cr_expect_eq(me->bad, 0, "worker %u: %" PRIu64 " bad", j,
			     me->bad);
		for (unsigned i = 0; i < n; i++) {
			cr_expect_eq(me->got[i], MESH_RECORDS,
				     "%u -> %u: %" PRIu64 " records", i, j,
				     me->got[i]);
			cr_expect(me->end_got[i], "%u -> %u: no END", i, j);
		}
	}
	weir_runtime_destroy(rt);
	free(m);
}

Test(runtime, mesh_all_pairs_busy_poll)
{
	mesh_run(test_cores(), WEIR_IDLE_BUSY_POLL);
}

Test(runtime, mesh_all_pairs_sleep)
{
	mesh_run(test_cores(), WEIR_IDLE_SLEEP);
}

Test(runtime, mesh_single_core_to_itself)
{
	mesh_run(1, WEIR_IDLE_SLEEP);
}

/* ---- sleep policy: wake on send, prompt stop ---- */

#define WAKE_RECORDS 20u
#define WAKE_GAP_MS 5.0
#define WAKE_SLEEP_MAX_US 1000000u

struct wake {
	double sent_at[WAKE_RECORDS];
	double worst_s;
	unsigned sent, got, bad;
	unsigned long rx_polls;
	bool end_sent;
};

/* Worker 0 never sleeps (it reports work while it waits for the next
 * send time); worker 1 sleeps between records and must be woken. */
static int wake_tx(struct weir_worker *w, struct wake *k)
{
	struct weir_marker end = { .kind = WEIR_MARKER_END };
	double t = now_s();
	uint64_t seq[2];

	if (k->sent == WAKE_RECORDS) {
		if (weir_worker_send_marker_local(w, 1, &end) == 0)
			weir_worker_finish_local(w);
		return 1;
	}
	if (k->sent > 0 && t - k->sent_at[k->sent - 1] < WAKE_GAP_MS / 1e3)
		return 1;
	seq[0] = k->sent;
	seq[1] = 0;
	k->sent_at[k->sent] = t;
	k->sent += weir_worker_send_burst_local(w, 1, seq, 1);
	return 1;
}

static int wake_rx(struct weir_worker *w, struct wake *k)
{
	uint64_t rec[2];
	struct weir_marker m;

	k->rx_polls++;
	if (weir_worker_recv_burst_local(w, 0, rec, 1) == 1) {
		/* sent_at[seq] was written before the release of head. */
		double late = now_s() - k->sent_at[rec[0]];
		if (rec[0] != k->got++)
			k->bad++;
		if (late > k->worst_s)
			k->worst_s = late;
		return 1;
	}
	if (weir_worker_recv_marker_local(w, 0, &m) == 1)
		weir_worker_finish_local(w);
	return 0;
}

static int wake_poll(struct weir_worker *w, void *arg)
{
	return weir_worker_id(w) == 0 ? wake_tx(w, arg) : wake_rx(w, arg);
}

Test(runtime, sleeping_worker_is_woken_by_a_send)
{
	struct weir_runtime_config cfg = config(2, WEIR_IDLE_SLEEP);
	struct weir_worker_ops ops = { .poll = wake_poll };
	struct wake k = { 0 };
	struct weir_runtime *rt;

	if (usable_cpus() < 2)
		cr_skip_test("needs 2 CPUs");
	cfg.spin_budget = 64;
	cfg.sleep_max_us = WAKE_SLEEP_MAX_US;
	rt = runtime_new(&cfg);
	cr_assert_eq(weir_runtime_start(rt, &ops, &k), 0);
	cr_assert_eq(weir_runtime_wait(rt), 0);
	cr_expect_eq(k.got, WAKE_RECORDS);
	cr_expect_eq(k.bad, 0);
	/* A missed wake-up would leave a record waiting for the 1 s timeout. */
	cr_expect_lt(k.worst_s, 0.25, "worst delivery %.3f s", k.worst_s);
	/* Spinning for ~100 ms would be millions of polls; sleeping between
	 * records costs about spin_budget polls per record. */
	cr_expect_lt(k.rx_polls, WAKE_RECORDS * 2000ul, "%lu polls, no sleep?",
		     k.rx_polls);
	weir_runtime_destroy(rt);
}

Test(runtime, sleeping_runtime_stops_promptly)
{
	struct weir_runtime_config cfg = config(test_cores(), WEIR_IDLE_SLEEP);
	struct weir_runtime *rt;
	double t0;

	cfg.spin_budget = 1;
	cfg.sleep_max_us = WAKE_SLEEP_MAX_US;
	rt = runtime_new(&cfg);
	cr_assert_eq(weir_runtime_start(rt, &idle_ops, NULL), 0);
	sleep_ms(50); /* every worker is asleep now */
	t0 = now_s();
	weir_runtime_stop_remote(rt);
	cr_assert_eq(weir_runtime_wait(rt), 0);
	cr_expect_lt(now_s() - t0, 0.25, "stop took %.3f s", now_s() - t0);
	weir_runtime_destroy(rt);
}

/* ---- errors from poll and init ---- */

struct poll_fail {
	_Atomic int go;       /* set by the test once start() returned */
	unsigned long fail_at; /* poll number (from go) that fails */
	struct counts c;
};

static int failing_poll(struct weir_worker *w, void *arg)
{
	struct poll_fail *f = arg;
	unsigned id = weir_worker_id(w);
	unsigned long n;

	if (!atomic_load(&f->go))
		return 0;
	n = atomic_fetch_add(&f->c.polls[id], 1) + 1;
	return id == weir_worker_count(w) - 1 && n == f->fail_at ? -EIO : 0;
}

static void failing_fini(struct weir_worker *w, void *arg)
{
	count_fini(w, &((struct poll_fail *)arg)->c);
}

static const struct weir_worker_ops failing_ops = {
	.poll = failing_poll, .fini = failing_fini };

Test(runtime, poll_error_stops_the_run)
{
	unsigned n = test_cores();
	struct weir_runtime_config cfg = config(n, WEIR_IDLE_BUSY_POLL);
	struct weir_runtime *rt = runtime_new(&cfg);
	struct poll_fail f = { .fail_at = 100 };

	cr_assert_eq(weir_runtime_start(rt, &failing_ops, &f), 0);
	atomic_store(&f.go, 1);
	cr_assert_eq(weir_runtime_wait(rt), -EIO);
	cr_expect(weir_runtime_stopping(rt));
	cr_expect_eq(atomic_load(&f.c.polls[n - 1]), 100, "polled after -EIO");
	cr_expect_eq(atomic_load(&f.c.finis), n);
	weir_runtime_destroy(rt);
}

/* Regression: a poll failing right after the start gate opened made
 * start() return the poll error (and wait() then returned 0), although
 * start() is documented to return only init errors. */
Test(runtime, early_poll_error_is_reported_by_wait_not_start)
{
	struct weir_runtime_config cfg = config(test_cores(),
						WEIR_IDLE_BUSY_POLL);
	unsigned from_start = 0, from_wait = 0;

	/* The race is narrow: try it a number of times. */
	for (int i = 0; i < 200; i++) {
		struct weir_runtime *rt = runtime_new(&cfg);
		struct poll_fail f = { .go = 1, .fail_at = 1 };
		from_start += weir_runtime_start(rt, &failing_ops, &f) != 0;
		from_wait += weir_runtime_wait(rt) == -EIO;
		weir_runtime_destroy(rt);
	}
	cr_expect_eq(from_start, 0, "start() returned the first poll's error "
		     "in %u of 200 runs", from_start);
	cr_expect_eq(from_wait, 200, "wait() returned -EIO in %u of 200 runs",
		     from_wait);
}

static int failing_init(struct weir_worker *w, void *arg)
{
	count_init(w, arg);
	return weir_worker_id(w) == weir_worker_count(w) - 1 ? -ENOSPC : 0;
}

static void init_failure_run(bool handle_signals)
{
	struct weir_runtime_config cfg = config(test_cores(),
						WEIR_IDLE_BUSY_POLL);
	struct weir_worker_ops ops = { .init = failing_init,
				       .poll = count_poll };
	struct weir_runtime *rt;
	struct counts c = { 0 };

	cfg.handle_signals = handle_signals;
	rt = runtime_new(&cfg);
	cr_assert_eq(weir_runtime_start(rt, &ops, &c), -ENOSPC);
	cr_expect_eq(atomic_load(&c.inits), test_cores());
	for (unsigned i = 0; i < test_cores(); i++)
		cr_expect_eq(atomic_load(&c.polls[i]), 0, "worker %u polled",
			     i);
	cr_expect_eq(weir_runtime_wait(rt), 0, "nothing left to wait for");
	weir_runtime_destroy(rt);
}

Test(runtime, init_failure_fails_start)
{
	init_failure_run(false);
}

/* ---- every worker finishing ends the run ---- */

struct finish {
	_Atomic int go;
	_Atomic unsigned long polls[TEST_CORES_MAX];
};

static int finish_poll(struct weir_worker *w, void *arg)
{
	struct finish *f = arg;
	unsigned long n = atomic_fetch_add(&f->polls[weir_worker_id(w)], 1);

	if (atomic_load(&f->go) && n >= 10)
		weir_worker_finish_local(w);
	return 0;
}

Test(runtime, finish_local_on_every_worker_ends_the_run)
{
	struct weir_runtime_config cfg = config(test_cores(), WEIR_IDLE_SLEEP);
	struct weir_worker_ops ops = { .poll = finish_poll };
	struct weir_runtime *rt = runtime_new(&cfg);
	struct finish f = { 0 };

	cr_assert(!weir_runtime_finished(rt), "finished before start");
	cr_assert_eq(weir_runtime_start(rt, &ops, &f), 0);
	sleep_ms(20);
	cr_assert(!weir_runtime_finished(rt), "finished while running");
	atomic_store(&f.go, 1);
	cr_assert(wait_for(weir_runtime_finished, rt, 5.0),
		  "workers finished but the runtime did not");
	cr_expect(!weir_runtime_stopping(rt), "nobody asked for a stop");
	cr_assert_eq(weir_runtime_wait(rt), 0);
	weir_runtime_destroy(rt);
}

/* Regression: weir_runtime_finished() went back to false after wait(). */
Test(runtime, finished_stays_true_after_wait)
{
	struct weir_runtime_config cfg = config(test_cores(),
						WEIR_IDLE_BUSY_POLL);
	struct weir_worker_ops ops = { .poll = finish_poll };
	struct weir_runtime *rt = runtime_new(&cfg);
	struct finish f = { .go = 1 };

	cr_assert_eq(weir_runtime_start(rt, &ops, &f), 0);
	cr_assert_eq(weir_runtime_wait(rt), 0);
	cr_expect(weir_runtime_finished(rt),
		  "every loop has exited, yet finished() is false after wait()");
	weir_runtime_destroy(rt);
}

/* ---- per-worker jemalloc arenas ---- */

#define ARENA_BIG (1u << 20) /* above tcache_max: counted at once */
#define ARENA_BIGS 8u

struct arenas {
	unsigned arena[TEST_CORES_MAX];
	unsigned bad_lookup[TEST_CORES_MAX], bad_bytes[TEST_CORES_MAX];
	uint64_t big_alloc[TEST_CORES_MAX], big_free[TEST_CORES_MAX];
	bool zero_null[TEST_CORES_MAX];
};

static unsigned arena_of(void *p)
{
	unsigned a = ~0u;
	size_t sz = sizeof(a);

	if (mallctl("arenas.lookup", &a, &sz, &p, sizeof(p)) != 0)
		return ~0u;
	return a;
}

/* Large allocations and frees counted in arena a's stats. */
static void arena_large_counts(unsigned a, uint64_t *nmalloc,
			       uint64_t *ndalloc)
{
	uint64_t epoch = 1;
	size_t sz = sizeof(epoch);
	char name[64];

	mallctl("epoch", &epoch, &sz, &epoch, sz);
	snprintf(name, sizeof(name), "stats.arenas.%u.large.nmalloc", a);
	sz = sizeof(*nmalloc);
	if (mallctl(name, nmalloc, &sz, NULL, 0) != 0)
		*nmalloc = 0;
	snprintf(name, sizeof(name), "stats.arenas.%u.large.ndalloc", a);
	sz = sizeof(*ndalloc);
	if (mallctl(name, ndalloc, &sz, NULL, 0) != 0)
		*ndalloc = 0;
}

static void arena_small_blocks(struct weir_worker *w, struct arenas *s,
			       unsigned id)
{
	for (size_t size = 8; size <= 8192; size *= 2) {
		uint8_t *p = weir_worker_alloc_local(w, size);
		if (p == NULL || arena_of(p) != weir_worker_arena(w)) {
			s->bad_lookup[id]++;
			continue;
		}
		memset(p, (int)id + 1, size);
		if (p[size - 1] != (uint8_t)(id + 1))
			s->bad_bytes[id]++;
		weir_worker_free_local(w, p);
	}
}

static void arena_big_blocks(struct weir_worker *w, struct arenas *s,
			     unsigned id)
{
	void *p[ARENA_BIGS];
	uint64_t m0, d0, m1, d1;

	arena_large_counts(weir_worker_arena(w), &m0, &d0);
	for (unsigned i = 0; i < ARENA_BIGS; i++) {
		p[i] = weir_worker_alloc_local(w, ARENA_BIG);
		if (p[i] == NULL || arena_of(p[i]) != weir_worker_arena(w))
			s->bad_lookup[id]++;
	}
	for (unsigned i = 0; i < ARENA_BIGS; i++)
		weir_worker_free_local(w, p[i]);
	arena_large_counts(weir_worker_arena(w), &m1, &d1);
	s->big_alloc[id] = m1 - m0;
	s->big_free[id] = d1 - d0;
}

static int arena_init(struct weir_worker *w, void *arg)
{
	struct arenas *s = arg;
	unsigned id = weir_worker_id(w);

	s->arena[id] = weir_worker_arena(w);
	s->zero_null[id] = weir_worker_alloc_local(w, 0) == NULL;
	arena_small_blocks(w, s, id);
	arena_big_blocks(w, s, id);
	weir_worker_free_local(w, NULL); /* no-op */
	return 0;
}

static int finish_now(struct weir_worker *w, void *arg)
{
	(void)arg;
	weir_worker_finish_local(w);
	return 0;
}

Test(runtime, alloc_local_uses_the_worker_arena)
{
	unsigned n = test_cores();
	struct weir_runtime_config cfg = config(n, WEIR_IDLE_BUSY_POLL);
	struct weir_worker_ops ops = { .init = arena_init, .poll = finish_now };
	struct weir_runtime *rt = runtime_new(&cfg);
	struct arenas s;

	memset(&s, 0, sizeof(s));
	cr_assert_eq(weir_runtime_start(rt, &ops, &s), 0);
	cr_assert_eq(weir_runtime_wait(rt), 0);
	for (unsigned i = 0; i < n; i++) {
		cr_expect_neq(s.arena[i], 0u, "worker %u uses arena 0", i);
		cr_expect_eq(s.bad_lookup[i], 0, "worker %u: foreign arena", i);
		cr_expect_eq(s.bad_bytes[i], 0);
		cr_expect(s.zero_null[i], "alloc_local(0) is not NULL");
		cr_expect_eq(s.big_alloc[i], ARENA_BIGS, "worker %u", i);
		cr_expect_eq(s.big_free[i], ARENA_BIGS, "worker %u", i);
		for (unsigned j = 0; j < i; j++)
			cr_expect_neq(s.arena[i], s.arena[j]);
	}
	weir_runtime_destroy(rt);
}

/* ---- signals ---- */

static void marker_handler(int sig)
{
	(void)sig;
}

static void install_marker_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = marker_handler;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGTERM, &sa, NULL), 0);
	cr_assert_eq(sigaction(SIGINT, &sa, NULL), 0);
}

static void expect_marker_handler(int sig)
{
	struct sigaction cur;

	cr_assert_eq(sigaction(sig, NULL, &cur), 0);
	cr_expect(cur.sa_handler == marker_handler,
		  "handler of signal %d not restored", sig);
}

static void signal_stops_run(int sig, bool use_kill)
{
	struct weir_runtime_config cfg = config(test_cores(), WEIR_IDLE_SLEEP);
	struct weir_runtime *rt;
	double t0;

	install_marker_handlers();
	cfg.handle_signals = true;
	rt = runtime_new(&cfg);
	cr_assert_eq(weir_runtime_start(rt, &idle_ops, NULL), 0);
	sleep_ms(10);
	t0 = now_s();
	if (use_kill)
		cr_assert_eq(kill(getpid(), sig), 0);
	else
		cr_assert_eq(raise(sig), 0);
	cr_assert(wait_for(weir_runtime_stopping, rt, 5.0));
	cr_assert_eq(weir_runtime_wait(rt), 0);
	cr_expect_lt(now_s() - t0, 0.5, "stop took %.3f s", now_s() - t0);
	expect_marker_handler(SIGTERM);
	expect_marker_handler(SIGINT);
	weir_runtime_destroy(rt);
}

Test(runtime, sigterm_raised_stops_the_run)
{
	signal_stops_run(SIGTERM, false);
}

Test(runtime, sigint_killed_stops_the_run)
{
	signal_stops_run(SIGINT, true);
}

Test(runtime, init_failure_gives_back_the_signals)
{
	install_marker_handlers();
	init_failure_run(true);
	expect_marker_handler(SIGTERM);
	expect_marker_handler(SIGINT);
}

Test(runtime, one_runtime_at_a_time_owns_the_signals)
{
	struct weir_runtime_config cfg = config(1, WEIR_IDLE_SLEEP);
	struct weir_runtime *a, *b;

	cfg.handle_signals = true;
	a = runtime_new(&cfg);
	b = runtime_new(&cfg);
	cr_assert_eq(weir_runtime_start(a, &idle_ops, NULL), 0);
	cr_expect_eq(weir_runtime_start(b, &idle_ops, NULL), -EBUSY);
	cr_expect(strstr(weir_last_error(), "SIGTERM") != NULL, "%s",
		  weir_last_error());
	weir_runtime_stop_remote(a);
	cr_assert_eq(weir_runtime_wait(a), 0);
	cr_expect_eq(weir_runtime_start(b, &idle_ops, NULL), 0,
		     "signals free again after wait()");
	weir_runtime_destroy(b);
	weir_runtime_destroy(a);
}

/* A worker that signals its own process: SIGTERM on its first poll (the
 * runtime stops), SIGTERM again from fini (a slow shutdown, interrupted).
 * The workers block the signals, so they are delivered to the test's main
 * thread, which sits in wait(): the same path as a kill from outside. */
static int self_signal_poll(struct weir_worker *w, void *arg)
{
	(void)w;
	(void)arg;
	kill(getpid(), SIGTERM);
	sleep_ms(1000); /* the stop is seen at the next loop check */
	return 0;
}

static void self_signal_fini(struct weir_worker *w, void *arg)
{
	(void)w;
	(void)arg;
	kill(getpid(), SIGTERM);
	sleep_ms(10000); /* the second signal must end the process first */
}

Test(runtime, second_signal_exits_with_128_plus_sig,
     .exit_code = 128 + SIGTERM, .timeout = 20)
{
	struct weir_runtime_config cfg = config(1, WEIR_IDLE_SLEEP);
	struct weir_worker_ops ops = { .poll = self_signal_poll,
				       .fini = self_signal_fini };
	struct weir_runtime *rt;

	cfg.handle_signals = true;
	rt = runtime_new(&cfg);
	cr_assert_eq(weir_runtime_start(rt, &ops, NULL), 0);
	(void)weir_runtime_wait(rt);
	cr_assert_fail("wait() returned: the second SIGTERM did not exit");
}
