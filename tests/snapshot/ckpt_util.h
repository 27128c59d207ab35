/*
 * ckpt_util.h — helpers shared by the snapshot tests: temporary
 * directories, arenas filled with known bytes, and one whole checkpoint
 * (snapshot_begin, writer steps to DURABLE, commit) in a call.
 */
#ifndef WEIR_TESTS_CKPT_UTIL_H
#define WEIR_TESTS_CKPT_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <sched.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/ckpt.h"
#include "state/arena.h"

#define T_PAGE 4096u
#define T_FP 0x1234abcd5678ef00ull

static inline char *t_mkdir(void)
{
	char *d = strdup("/tmp/weir-ckpt-test-XXXXXX");
	cr_assert_not_null(mkdtemp(d));
	return d;
}

static inline void t_rmdir(char *d)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	cr_assert_eq(system(cmd), 0);
	free(d);
}

static inline struct wr_arena *t_arena(uint32_t pages)
{
	struct wr_arena_config cfg = { (size_t)pages * T_PAGE, T_PAGE, 4 };
	struct wr_arena *a;

	cr_assert_eq(wr_arena_create(&cfg, &a), 0);
	return a;
}

/* Writes byte pattern (page, salt) over page p, through the COW barrier. */
static inline void t_fill(struct wr_arena *a, uint32_t p, uint32_t salt)
{
	uint8_t *b = wr_arena_page_ptr(a, p);

	cr_assert_eq(wr_arena_touch(a, p), 0);
	for (uint32_t i = 0; i < T_PAGE; i++)
		b[i] = (uint8_t)(p * 131u + i * 7u + salt);
}

/* Allocates n single pages, filled with salt. */
static inline void t_populate(struct wr_arena *a, uint32_t n, uint32_t salt)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t p;
		cr_assert_eq(wr_arena_alloc(a, 1, &p, NULL), 0);
		t_fill(a, p, salt);
	}
}

/* Set by a test to open checkpoint files without O_DIRECT. */
static bool t_no_direct;

struct t_run {
	uint64_t bytes_written;		/* page file bytes, all cores */
	uint32_t pages_written;
	int err;			/* first writer or commit error */
};

/* Steps one writer to the end (never blocks: busy polls). */
static inline int t_drive(struct wr_ckpt_writer *w)
{
	int rc;

	for (long i = 0; i < 100000000L; i++) {
		rc = wr_ckpt_writer_step(w);
		cr_assert(wr_ckpt_writer_is_valid(w), "writer invalid");
		if (rc != 0)
			return rc;
	}
	cr_assert_fail("writer did not finish");
	return -1;
}

/* Changelog arenas: where each core's next log segment starts (the
 * position at its last committed checkpoint), as core/ckpt.c keeps it. */
static uint64_t t_log_pos[8];

/* Core c's part of plan: a changelog checkpoint when planned and its log
 * can continue, else a page snapshot (full if the log broke). */
static inline void t_core_config(struct wr_arena *a, uint32_t c,
				 const struct wr_ckpt_plan *plan,
				 struct wr_ckpt_writer_config *cfg,
				 uint64_t *log_to)
{
	uint32_t e;

	if (plan->log && wr_arena_log_mark(a, log_to) == 0) {
		cfg->log = true;
		cfg->log_from = t_log_pos[c];
		cfg->log_to = *log_to;
		return;
	}
	if (plan->log)	/* the log broke: this core starts a chain */
		cfg->parent_id = 0;
	cr_assert_eq(wr_arena_snapshot_begin(a, &e), 0);
	if (a->log != NULL && wr_arena_log_mark(a, log_to) != 0)
		*log_to = wr_arena_log_resume(a);
}

/* One checkpoint of `cores` arenas planned by policy; `hook` runs between
 * snapshot_begin and the flush (to write during it). */
static inline struct t_run t_checkpoint(const char *dir, struct wr_arena **a,
	uint32_t cores, const struct wr_ckpt_policy *pol,
	void (*hook)(struct wr_arena **, uint32_t))
{
	struct wr_ckpt_plan plan;
	struct wr_ckpt_core_result res[8];
	struct wr_ckpt_writer *w[8] = { 0 };
	uint64_t log_to[8] = { 0 };
	struct wr_uring *u;
	struct t_run r = { 0 };
	char pos[32];

	cr_assert_eq(wr_ckpt_plan_next(dir, pol, cores, &plan), 0);
	cr_assert_eq(wr_uring_create(16, &u), 0);
	for (uint32_t c = 0; c < cores; c++) {
		struct wr_ckpt_writer_config cfg = { dir, plan.ckpt_id, c, T_FP,
			u, 8, plan.parent_id, plan.parent_epoch[c], t_no_direct };
		t_core_config(a[c], c, &plan, &cfg, &log_to[c]);
		cr_assert_eq(wr_ckpt_writer_create(&cfg, a[c], &w[c]), 0);
		snprintf(pos, sizeof(pos), "offset=%llu",
			 (unsigned long long)plan.ckpt_id * 100 + c);
		cr_assert_eq(wr_ckpt_writer_add_section(w[c], "source_pos",
			     pos, strlen(pos)), 0);
	}
	if (hook)
		hook(a, cores);
	for (uint32_t c = 0; c < cores; c++) {
		int rc = t_drive(w[c]);
		if (rc < 0 && r.err == 0)
			r.err = rc;
		if (rc == 1) {
			cr_assert_eq(wr_ckpt_writer_result(w[c], &res[c]), 0);
			r.bytes_written += res[c].pages_size;
			r.pages_written += res[c].pages_written;
		}
		wr_arena_snapshot_end(a[c]);	/* no-op after a log */
	}
	if (r.err == 0) {
		struct wr_ckpt_commit_info ci = { dir, plan.ckpt_id,
			plan.parent_id, 1700000000000ull, 1234, cores, 128,
			T_FP, "test job", pol->retain };
		r.err = wr_ckpt_commit(&ci, res, cores);
	}
	for (uint32_t c = 0; c < cores; c++) {
		wr_ckpt_writer_destroy(w[c]);
		if (r.err == 0 && a[c]->log != NULL) {	/* committed */
			t_log_pos[c] = log_to[c];
			wr_arena_log_release(a[c], log_to[c]);
		}
	}
	if (r.err && r.err != -EINTR) /* -EINTR: the crash hook */
		(void)wr_ckpt_abort(dir, plan.ckpt_id);
	wr_uring_destroy(u);
	return r;
}

/* Restores core c of the newest good checkpoint into a fresh arena. */
/* t_restore's replay helper CPU (-1: none; wr_ckpt_load_core_with). */
static int t_helper_cpu = -1;

/* A CPU for a replay helper: another than this thread's when the process
 * may run on two (the helper is correct on the same CPU too, only slower). */
static inline int t_spare_cpu(void)
{
	cpu_set_t set;
	int self = sched_getcpu(), any = -1;

	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (c != self)
			return c;
		any = c;
	}
	return any;
}

static inline struct wr_arena *t_restore(const char *dir, uint32_t core,
					 uint32_t pages, uint64_t *id)
{
	struct wr_ckpt *ck;
	struct wr_arena *a = t_arena(pages);

	cr_assert_eq(wr_ckpt_open(dir, 0, T_FP, NULL, NULL, &ck), 0);
	cr_assert_eq(wr_ckpt_load_core_with(ck, core, a, t_helper_cpu), 0);
	if (id)
		*id = wr_ckpt_info(ck)->id;
	wr_ckpt_close(ck);
	cr_assert(wr_arena_is_valid(a));
	return a;
}

/* A problem reporter for verify/open that keeps the first report (file
 * and offset) and counts them all. */
struct t_reports {
	int n;
	char file[128];
	uint64_t off;
};

static inline void t_on_report(void *arg, const char *file, uint64_t off,
			       const char *what)
{
	struct t_reports *r = arg;

	(void)what;
	if (r->n++ == 0) {
		snprintf(r->file, sizeof(r->file), "%s", file);
		r->off = off;
	}
}

/* The current view of a (no snapshot pending) equals b's, page by page. */
static inline void t_assert_same(struct wr_arena *a, struct wr_arena *b)
{
	struct wr_arena_iter ia = { 0 }, ib = { 0 };

	for (;;) {
		bool ha = wr_arena_pages_written_since(a, 0, &ia);
		bool hb = wr_arena_pages_written_since(b, 0, &ib);
		cr_assert_eq(ha, hb, "page sets differ");
		if (!ha)
			return;
		cr_assert_eq(ia.page, ib.page);
		cr_assert(memcmp(wr_arena_page_ptr(a, ia.page),
				 wr_arena_page_ptr(b, ib.page), T_PAGE) == 0,
			  "page %u differs", ia.page);
	}
}

#endif
