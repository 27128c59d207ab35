/*
 * committer.c — the checkpoint directory's blocking work (commit with
 * retention, abort, and preparing the next checkpoint: its plan and its
 * files) on a thread of its own (snapshot/ckpt.h).
 *
 * WHY A THREAD
 *   wr_ckpt_commit is a handful of syscalls that block: two fsyncs, a
 *   rename, and retention's unlinks.  Unlinking a 1 GiB page file on ext4
 *   takes 250-290 ms here, all of it waiting (0.00 s of CPU: the journal
 *   and the extent frees), and a 64 MiB one 20 ms.  On core 0's loop that
 *   was a stall of every record behind it; here it costs the workers no
 *   CPU.  The commit code itself is unchanged (its crash test steps
 *   through it), only where it runs.  The same holds for the next
 *   checkpoint's plan (a readdir and a manifest read: 31-137 us of core
 *   0's loop at every trigger) and its files (two creations per core:
 *   56-250 us of every core's first flush tick, 13 us in isolation: the
 *   journal and the directory's lock are shared with the other core's
 *   I/O), prepared here while the job is idle between checkpoints.
 *
 * LIFECYCLE (one request at a time; `state` is the handshake)
 *
 *     IDLE ── wr_ckpt_committer_commit/abort/prepare() ──> QUEUED
 *     QUEUED ── the thread takes it and runs it ──> DONE
 *     DONE ── wr_ckpt_committer_poll() hands back rc ──> IDLE
 *     IDLE ── wr_ckpt_committer_take(): a prepare's result moved out
 *
 *   The submitter owns IDLE -> QUEUED and DONE -> IDLE, the thread owns
 *   QUEUED -> DONE; the request's fields are written before the release
 *   store of QUEUED and the result before that of DONE.  destroy() lets a
 *   queued request finish, so a commit handed over is never cut short.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "snapshot/ckpt.h"

enum { CM_IDLE = 0, CM_QUEUED, CM_DONE };
enum { RQ_COMMIT, RQ_ABORT, RQ_PREPARE };

struct wr_ckpt_committer {
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;			/* under lock */
	_Atomic int state;
	/* The request (written while IDLE, read by the thread). */
	int kind;
	struct wr_ckpt_commit_info info;
	struct wr_ckpt_policy pol;		/* RQ_PREPARE */
	const struct wr_ckpt_core_result *res;
	uint32_t ncores;
	/* The result (written by the thread before DONE). */
	int rc;
	char msg[256];
	struct wr_ckpt_plan plan;		/* RQ_PREPARE */
	struct wr_ckpt_files files[WR_CKPT_CORES_MAX];
};

/* The next checkpoint's plan, and its files on every core (the kind the
 * plan asks for).  On error none of them is left open or on disk. */
static int prepare(struct wr_ckpt_committer *c)
{
	const char *dir = c->info.dir;
	int dirfd, err;

	err = wr_ckpt_plan_next(dir, &c->pol, c->ncores, &c->plan);
	if (err)
		return err;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return wr_error(-errno, "checkpoint directory %s: %s", dir,
				strerror(errno));
	for (uint32_t i = 0; i < c->ncores && err == 0; i++)
		err = wr_ckpt_files_create(dirfd, dir, c->plan.ckpt_id, i,
					   c->plan.log, false, &c->files[i]);
	close(dirfd);
	if (err) {
		for (uint32_t i = 0; i < c->ncores; i++)
			wr_ckpt_files_close(&c->files[i]);
		(void)wr_ckpt_abort(dir, c->plan.ckpt_id);
	}
	return err;
}

static void run(struct wr_ckpt_committer *c)
{
	wr_error_clear();
	if (c->kind == RQ_ABORT)
		c->rc = wr_ckpt_abort(c->info.dir, c->info.ckpt_id);
	else if (c->kind == RQ_PREPARE)
		c->rc = prepare(c);
	else
		c->rc = wr_ckpt_commit(&c->info, c->res, c->ncores);
	snprintf(c->msg, sizeof(c->msg), "%s", weir_last_error());
}

static void *committer_main(void *arg)
{
	struct wr_ckpt_committer *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->stop && atomic_load_explicit(&c->state,
				memory_order_acquire) != CM_QUEUED)
			pthread_cond_wait(&c->wake, &c->lock);
		if (atomic_load_explicit(&c->state, memory_order_acquire) !=
		    CM_QUEUED)
			break;	/* stop, nothing queued */
		pthread_mutex_unlock(&c->lock);
		run(c);
		atomic_store_explicit(&c->state, CM_DONE, memory_order_release);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int wr_ckpt_committer_create(struct wr_ckpt_committer **out)
{
	struct wr_ckpt_committer *c = calloc(1, sizeof(*c));
	int err;

	if (c == NULL)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	atomic_init(&c->state, CM_IDLE);
	for (uint32_t i = 0; i < WR_CKPT_CORES_MAX; i++)
		c->files[i].fd_pages = c->files[i].fd_meta = -1;
	err = pthread_create(&c->th, NULL, committer_main, c);
	if (err) {
		pthread_cond_destroy(&c->wake);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return wr_error(-err, "checkpoint: no committer thread: %s",
				strerror(err));
	}
	(void)pthread_setname_np(c->th, "weir-commit");
	*out = c;
	return 0;
}

void wr_ckpt_committer_destroy(struct wr_ckpt_committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->th, NULL);
	for (uint32_t i = 0; i < WR_CKPT_CORES_MAX; i++)
		wr_ckpt_files_close(&c->files[i]);	/* never taken */
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int submit(struct wr_ckpt_committer *c)
{
	pthread_mutex_lock(&c->lock);
	atomic_store_explicit(&c->state, CM_QUEUED, memory_order_release);
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int wr_ckpt_committer_commit(struct wr_ckpt_committer *c,
			     const struct wr_ckpt_commit_info *info,
			     const struct wr_ckpt_core_result *res,
			     uint32_t ncores)
{
	if (atomic_load_explicit(&c->state, memory_order_acquire) != CM_IDLE)
		return wr_error(-EBUSY, "checkpoint: a commit is in flight");
	c->kind = RQ_COMMIT;
	c->info = *info;
	c->res = res;
	c->ncores = ncores;
	return submit(c);
}

int wr_ckpt_committer_abort(struct wr_ckpt_committer *c, const char *dir,
			    uint64_t ckpt_id)
{
	if (atomic_load_explicit(&c->state, memory_order_acquire) != CM_IDLE)
		return wr_error(-EBUSY, "checkpoint: a commit is in flight");
	c->kind = RQ_ABORT;
	memset(&c->info, 0, sizeof(c->info));
	c->info.dir = dir;
	c->info.ckpt_id = ckpt_id;
	return submit(c);
}

int wr_ckpt_committer_prepare(struct wr_ckpt_committer *c, const char *dir,
			      const struct wr_ckpt_policy *pol, uint32_t ncores)
{
	if (atomic_load_explicit(&c->state, memory_order_acquire) != CM_IDLE)
		return wr_error(-EBUSY, "checkpoint: a commit is in flight");
	if (ncores == 0 || ncores > WR_CKPT_CORES_MAX)
		return wr_error(-EINVAL, "checkpoint: %u cores", ncores);
	c->kind = RQ_PREPARE;
	memset(&c->info, 0, sizeof(c->info));
	c->info.dir = dir;
	c->pol = *pol;
	c->ncores = ncores;
	return submit(c);
}

void wr_ckpt_committer_take(struct wr_ckpt_committer *c,
			    struct wr_ckpt_plan *plan,
			    struct wr_ckpt_files *files)
{
	*plan = c->plan;
	for (uint32_t i = 0; i < c->ncores; i++) {
		files[i] = c->files[i];
		c->files[i].fd_pages = c->files[i].fd_meta = -1;
	}
}

int wr_ckpt_committer_poll(struct wr_ckpt_committer *c, int *rc)
{
	int s = atomic_load_explicit(&c->state, memory_order_acquire);

	if (s == CM_IDLE)
		return -ENOENT;
	if (s != CM_DONE)
		return 1;
	*rc = c->rc;
	if (c->rc != 0)
		(void)wr_error(c->rc, "%s", c->msg);
	atomic_store_explicit(&c->state, CM_IDLE, memory_order_release);
	return 0;
}

int wr_ckpt_committer_wait(struct wr_ckpt_committer *c, int *rc)
{
	struct timespec nap = { 0, 100000 };
	int r;

	while ((r = wr_ckpt_committer_poll(c, rc)) == 1)
		nanosleep(&nap, NULL);
	return r;
}
