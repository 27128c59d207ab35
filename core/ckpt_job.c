/*
 * ckpt_job.c — a pipeline's checkpoint configuration, its fingerprint,
 * and opening the checkpoint a run restores from (before any worker
 * starts, so a refusal changes nothing and starts nothing).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "weir/state.h"

#include "core/ckpt.h"
#include "core/error.h"
#include "core/window_internal.h"
#include "state/arena.h"

void weir_checkpoint_config_init(struct weir_checkpoint_config *cfg,
				 const char *dir)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->dir = dir;
	cfg->interval_ms = WEIR_CHECKPOINT_INTERVAL_DEFAULT;
	cfg->timeout_ms = WEIR_CHECKPOINT_TIMEOUT_DEFAULT;
	cfg->retain = WEIR_CHECKPOINT_RETAIN_DEFAULT;
	cfg->incremental = true;
	cfg->changelog = true;
}

int weir_pipeline_checkpoint(struct weir_pipeline *p,
			     const struct weir_checkpoint_config *cfg)
{
	struct wr_ckpt_job *j;

	if (p == NULL || cfg == NULL || cfg->dir == NULL || !cfg->dir[0])
		return wr_error(-EINVAL, "checkpoint: no directory given");
	if (strlen(cfg->dir) >= WR_CKPT_DIR_MAX - 64)
		return wr_error(-ENAMETOOLONG, "checkpoint: directory name is "
				"too long");
	if (cfg->interval_ms == 0)
		return wr_error(-EINVAL, "checkpoint: interval must be > 0 ms");
	if (cfg->changelog_ring_bytes != 0 &&
	    (cfg->changelog_ring_bytes < (2u << 20) ||
	     (cfg->changelog_ring_bytes & (cfg->changelog_ring_bytes - 1))))
		return wr_error(-EINVAL, "checkpoint: changelog ring of %llu "
				"bytes is not a power of two >= 2 MiB",
				(unsigned long long)cfg->changelog_ring_bytes);
	if (p->rt != NULL || p->ck != NULL)
		return wr_error(-EBUSY, "checkpoint: configure it once, "
				"before the run");
	j = aligned_alloc(WEIR_CACHE_LINE,
			  (sizeof(*j) + WEIR_CACHE_LINE - 1) &
				  ~(size_t)(WEIR_CACHE_LINE - 1));
	if (j == NULL)
		return -ENOMEM;
	memset(j, 0, sizeof(*j));
	j->lock_fd = -1;
	j->cfg = *cfg;
	snprintf(j->dir, sizeof(j->dir), "%s", cfg->dir);
	j->cfg.dir = j->dir;
	if (cfg->params_len > 0) {
		void *copy = malloc(cfg->params_len);
		if (copy == NULL) {
			free(j);
			return -ENOMEM;
		}
		memcpy(copy, cfg->params, cfg->params_len);
		j->cfg.params = copy;
	}
	if (j->cfg.retain == 0)
		j->cfg.retain = WEIR_CHECKPOINT_RETAIN_DEFAULT;
	if (j->cfg.timeout_ms == 0)
		j->cfg.timeout_ms = WEIR_CHECKPOINT_TIMEOUT_DEFAULT;
	pthread_mutex_init(&j->restore_lock, NULL);
	p->ck = j;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void percentiles(struct wr_ckpt_lat *l, uint64_t *n, uint64_t *p50,
			uint64_t *p99, uint64_t *max)
{
	uint32_t v[WR_CKPT_PAUSES];
	uint64_t total = atomic_load_explicit(&l->n, memory_order_relaxed);
	uint32_t k = total < WR_CKPT_PAUSES ? (uint32_t)total : WR_CKPT_PAUSES;

	if (n)
		*n = total;
	*max = atomic_load_explicit(&l->max_ns, memory_order_relaxed);
	if (k == 0)
		return;
	for (uint32_t i = 0; i < k; i++)
		v[i] = atomic_load_explicit(&l->ns[i], memory_order_relaxed);
	qsort(v, k, sizeof(v[0]), cmp_u32);
	*p50 = v[k / 2];
	*p99 = v[(uint64_t)k * 99 / 100];
}

void weir_pipeline_checkpoint_stats(const struct weir_pipeline *p,
				    struct weir_checkpoint_stats *out)
{
	struct wr_ckpt_job *j = p ? p->ck : NULL;

	memset(out, 0, sizeof(*out));
	if (j == NULL)
		return;
	out->completed = atomic_load_explicit(&j->completed, memory_order_relaxed);
	out->failed = atomic_load_explicit(&j->failed, memory_order_relaxed);
	out->last_id = atomic_load_explicit(&j->last_id, memory_order_relaxed);
	out->last_duration_us = atomic_load_explicit(&j->last_us,
						     memory_order_relaxed);
	out->last_bytes = atomic_load_explicit(&j->last_bytes,
					       memory_order_relaxed);
	out->changelog = atomic_load_explicit(&j->changelog,
					      memory_order_relaxed);
	percentiles(&j->pause, &out->pauses, &out->pause_p50_ns,
		    &out->pause_p99_ns, &out->pause_max_ns);
	percentiles(&j->open, NULL, &out->open_p50_ns, &out->open_p99_ns,
		    &out->open_max_ns);
	percentiles(&j->align, NULL, &out->align_p50_ns, &out->align_p99_ns,
		    &out->align_max_ns);
	percentiles(&j->step, NULL, &out->step_p50_ns, &out->step_p99_ns,
		    &out->step_max_ns);
	out->restored_id = j->restored_id;
	out->restored_cores = j->restored_cores;
	out->restore_us = atomic_load_explicit(&j->restore_us,
					       memory_order_relaxed);
}

void wr_ckpt_job_restored(struct weir_pipeline *p)
{
	struct wr_ckpt_job *j = p->ck;

	if (j == NULL || j->restore == NULL)
		return;
	uint64_t us = (wr_ckpt_mono_ns() - j->restore_t0_ns) / 1000;
	atomic_store_explicit(&j->restore_us, us ? us : 1,
			      memory_order_relaxed);
	fprintf(stderr, "weir: restored checkpoint %llu in %.1f ms\n",
		(unsigned long long)j->restored_id, (double)us / 1e3);
}

/* ---- fingerprint: what must match for state to mean the same ---- */

struct fp_node {
	uint32_t kind, in_size, out_size, key_size, max_out, nstates;
	uint32_t up, has_timers;
	char name[WR_NAME_MAX];
};
struct fp_state {
	uint32_t kind, value_size, map_key_size, acc_size;
	uint64_t ttl_ms;
};

struct fp_window {
	uint32_t kind, acc_size;
	int64_t size_ms, slide_ms, lateness_ms;
};

static void fp_node(XXH3_state_t *h, const struct weir_stream *n)
{
	struct fp_node f = { n->kind, n->in_size, n->out_size, n->key_size,
			     n->max_out, 0, n->up ? n->up->id : UINT32_MAX,
			     0, { 0 } };

	if (n->kind == WR_NODE_PROCESS) {
		f.nstates = n->fn.process.nstates;
		f.has_timers = n->fn.process.on_timer != NULL;
	}
	memcpy(f.name, n->name, sizeof(f.name));
	XXH3_64bits_update(h, &f, sizeof(f));
	if (n->kind == WR_NODE_WINDOW) {
		const struct wr_win_spec *w = n->owned_arg;
		struct fp_window fw = { w->spec.kind, w->agg.acc_size,
			w->spec.size_ms, w->spec.slide_ms,
			w->spec.allowed_lateness_ms };
		XXH3_64bits_update(h, &fw, sizeof(fw));
	}
	for (unsigned i = 0; i < f.nstates; i++) {
		const struct weir_state_desc *d = &n->fn.process.states[i];
		struct fp_state s = { d->kind, d->value_size, d->map_key_size,
				      d->agg ? d->agg->acc_size : 0, d->ttl_ms };
		XXH3_64bits_update(h, &s, sizeof(s));
	}
}

uint64_t wr_ckpt_fingerprint(const struct weir_pipeline *p, char *desc,
			     size_t cap)
{
	XXH3_state_t h;
	uint32_t fixed[3] = { p->cfg.key_groups, WR_ARENA_PAGE_SIZE_DEFAULT,
			      p->nnodes };
	size_t off = 0;

	XXH3_64bits_reset(&h);
	XXH3_64bits_update(&h, fixed, sizeof(fixed));
	if (p->ck != NULL && p->ck->cfg.params_len > 0)
		XXH3_64bits_update(&h, p->ck->cfg.params,
				   p->ck->cfg.params_len);
	off += (size_t)snprintf(desc, cap, "key_groups=%u nodes=",
				p->cfg.key_groups);
	for (unsigned i = 0; i < p->nnodes; i++) {
		fp_node(&h, p->nodes[i]);
		if (off < cap)
			off += (size_t)snprintf(desc + off, cap - off, "%s%s/%u",
						i ? "," : "", p->nodes[i]->name,
						p->nodes[i]->out_size);
	}
	return XXH3_64bits_digest(&h);
}

/* ---- opening the checkpoint to restore ---- */

static void say_problem(void *arg, const char *file, uint64_t offset,
			const char *what)
{
	(void)arg;
	fprintf(stderr, "weir: checkpoint: %s at offset %llu: %s\n", file,
		(unsigned long long)offset, what);
}

static void warn_live_sources(const struct weir_pipeline *p)
{
	for (unsigned i = 0; i < p->nnodes; i++) {
		const struct weir_stream *n = p->nodes[i];
		if (n->kind == WR_NODE_SOURCE && n->fn.source.position == NULL)
			fprintf(stderr, "weir: source '%s' is live, not "
				"replayable: after a restore its records from "
				"before the crash are not replayed (its output "
				"is at-most-once)\n", n->name);
	}
}

static int open_restore(struct wr_ckpt_job *j, uint64_t below_id);

/* One running job per directory: two would restore the same checkpoint,
 * write the same output and delete each other's files.  The lock is on the
 * directory itself (no lock file: a refused job changes nothing in it) and
 * dies with the process, however it ends. */
static int lock_dir(struct wr_ckpt_job *j)
{
	j->lock_fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->lock_fd < 0)
		return wr_error(-errno, "checkpoint directory %s: %s", j->dir,
				strerror(errno));
	if (flock(j->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK)
		return wr_error(-EBUSY, "checkpoint directory %s is in use by "
				"another running job", j->dir);
	return wr_error(-errno, "checkpoint directory %s: cannot lock it: "
			"%s", j->dir, strerror(errno));
}

int wr_ckpt_job_open(struct weir_pipeline *p)
{
	struct wr_ckpt_job *j = p->ck;
	uint64_t ids[1];
	uint32_t n = 0;
	int err;

	if (j == NULL)
		return 0;
	j->cores = p->cfg.runtime.cores;
	j->key_groups = p->cfg.key_groups;
	j->force_full = true; /* arena epochs start afresh in every run */
	j->prep = 0;
	for (unsigned i = 0; i < WEIR_CORES_MAX; i++)
		j->files[i].fd_pages = j->files[i].fd_meta = -1;
	j->fingerprint = wr_ckpt_fingerprint(p, j->job, sizeof(j->job));
	if (mkdir(j->dir, 0700) != 0 && errno != EEXIST)
		return wr_error(-errno, "checkpoint directory %s: %s", j->dir,
				strerror(errno));
	if ((err = lock_dir(j)) != 0)
		return err;
	warn_live_sources(p);
	if ((err = wr_ckpt_committer_create(&j->committer)) != 0)
		return err;
	err = wr_ckpt_list(j->dir, ids, 1, &n);
	if (err)
		return wr_error(err, "checkpoint directory %s: %s", j->dir,
				strerror(-err));
	if (n == 0)
		return 0;
	return open_restore(j, 0);
}

/* The newest checkpoint below below_id (0 = any) whose files verify; its
 * pages are checked as the cores load them (wr_ckpt_open_deferred). */
static int open_restore(struct wr_ckpt_job *j, uint64_t below_id)
{
	if (below_id == 0)	/* a fall-back counts from the first try */
		j->restore_t0_ns = wr_ckpt_mono_ns();
	int err = wr_ckpt_open_deferred(j->dir, below_id, j->fingerprint,
					say_problem, NULL, &j->restore);

	if (err)
		return err; /* the message names the reason */
	j->restored_id = wr_ckpt_info(j->restore)->id;
	j->restored_cores = wr_ckpt_info(j->restore)->cores;
	atomic_store_explicit(&j->last_id, j->restored_id, memory_order_relaxed);
	fprintf(stderr, "weir: restoring checkpoint %llu (%u cores) from %s\n",
		(unsigned long long)j->restored_id, j->restored_cores, j->dir);
	return 0;
}

bool wr_ckpt_job_pages_bad(const struct weir_pipeline *p)
{
	return p->ck && p->ck->restore && wr_ckpt_pages_bad(p->ck->restore);
}

int wr_ckpt_job_fall_back(struct weir_pipeline *p)
{
	uint64_t bad = p->ck->restored_id;

	wr_ckpt_close(p->ck->restore);
	p->ck->restore = NULL;
	return open_restore(p->ck, bad);
}

void wr_ckpt_job_close(struct weir_pipeline *p)
{
	if (p->ck == NULL)
		return;
	/* Stopped (SIGTERM, an error) between a trigger and its commit: the
	 * writers of cores that were durable already kept their files (only an
	 * unfinished writer unlinks), and nothing of the checkpoint counts.
	 * The workers have exited, so no writer is left to race with.  A
	 * commit already handed to the committer finishes and counts. */
	struct wr_ckpt_job *j = p->ck;

	if (j->handed)
		wr_ckpt_commit_wait(j);
	else if (j->in_flight)
		(void)wr_ckpt_abort(j->dir, j->plan.ckpt_id);
	wr_ckpt_prep_drop(j);	/* and closes the files no writer took */
	wr_ckpt_committer_destroy(j->committer);
	j->committer = NULL;
	wr_ckpt_close(p->ck->restore);
	p->ck->restore = NULL;
	if (j->lock_fd >= 0)
		close(j->lock_fd);	/* the directory is free again */
	j->lock_fd = -1;
}
