/*
 * tests/snapshot/clog_test.c — changelog checkpoints: .log files over a
 * page snapshot (snapshot/writer.c, manifest.c, restore.c, load.c).
 *
 * TEST PLAN
 *   round trip:  a page checkpoint, then changelog checkpoints of random
 *                small writes, page allocations and frees; each restore
 *                (pages + replayed logs) equals the live arena at that
 *                checkpoint, byte for byte; the manifests carry one more
 *                log each over the same page file; the log files are a
 *                small fraction of the state.
 *   policy:      with log_max 2 the third checkpoint after a page one is a
 *                page checkpoint again (chain of logs reset); with
 *                log_max_pct 1 a big log forces one too; no log while
 *                the run's last log was larger than its last page one.
 *   corrupt log: a flipped byte in the newest log is reported by verify
 *                (that file, the chunk's offset) and restore falls back to
 *                the previous checkpoint, whose state it reproduces.
 *   broken log:  on 2 cores, core 1's log overflows: that core writes a
 *                full page file while core 0 writes its log; both restore.
 *   read paths:  logs of several 1 MiB chunks restore the same whether
 *                read with O_DIRECT, buffered, cut short (each chunk
 *                then read again by a blocking buffered pread), or
 *                without io_uring (blocking preads only), and each of
 *                those with a replay helper thread applying part of
 *                every chunk (snapshot/load.c), across the page
 *                allocations and frees the logs hold.
 *   helper:      each checkpoint of the round trip restores the same with
 *                the helper; a corrupt chunk fails a helped load cleanly
 *                (no hang, arena valid and empty) and the fallback loads
 *                with the helper too.
 *   retention:   with retain 1, the base page file and every log the
 *                newest checkpoint needs survive the sweep; a later page
 *                checkpoint lets them go.
 */
#include "ckpt_util.h"
#include "../rng.h"

#define PAGES 256u
#define RING (4u << 20)

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void) { return t_xorshift(&rng); }

static struct wr_arena *log_arena(void)
{
	struct wr_arena *a = t_arena(PAGES);

	cr_assert_eq(wr_arena_log_enable(a, RING, 1u << 14), 0);
	return a;
}

/* Random small writes into live pages (half of them 8-byte counters, so
 * the logs hold PAIR entries), some pages freed and new ones filled whole;
 * a seal now and then (tick ends). */
static void mutate(struct wr_arena *a, int n)
{
	for (int i = 0; i < n; i++) {
		struct wr_arena_iter it = { (uint32_t)(rnd() % PAGES) };
		uint32_t p;
		if (rnd() % 50 == 0 && wr_arena_alloc(a, 1, &p, NULL) == 0) {
			t_fill(a, p, (uint32_t)rnd());
			continue;
		}
		if (!wr_arena_pages_written_since(a, 0, &it))
			continue;
		uint8_t *b = (uint8_t *)wr_arena_page_ptr(a, it.page) +
			     rnd() % (T_PAGE - 64);
		size_t len = 64;
		if (rnd() % 100 == 0) {
			wr_arena_free(a, it.page, 1);
			continue;
		}
		if (rnd() % 2 == 0) {	/* a counter: sealed in PAIRs */
			b = (uint8_t *)((uintptr_t)b & ~(uintptr_t)7);
			len = 8;
		}
		cr_assert_eq(wr_arena_touch_range(a, b, len), 0);
		memset(b, (int)rnd(), len);
		if (rnd() % 10 == 0)
			wr_arena_log_seal(a);
	}
	wr_arena_log_seal(a);
}

static void manifest_logs(const char *dir, uint64_t id, uint32_t *nlog,
			  uint32_t *nchain)
{
	struct wr_ckpt_manifest m;

	cr_assert_eq(wr_ckpt_manifest_read(dir, id, &m), 0);
	*nlog = m.core[0].nlog;
	*nchain = m.core[0].nchain;
	wr_ckpt_manifest_free(&m);
}

Test(clog, round_trip)
{
	char *dir = t_mkdir();
	struct wr_arena *a[1] = { log_arena() };
	struct wr_ckpt_policy pol = { .retain = 10, .changelog = true };
	uint64_t page_bytes = 0, log_bytes = 0;

	t_populate(a[0], 120, 3);
	struct t_run r = t_checkpoint(dir, a, 1, &pol, NULL);
	cr_assert_eq(r.err, 0);
	page_bytes = r.bytes_written;
	for (uint64_t id = 2; id <= 6; id++) {
		uint32_t nlog, nchain;
		uint64_t got_id;
		mutate(a[0], 200);
		r = t_checkpoint(dir, a, 1, &pol, NULL);
		cr_assert_eq(r.err, 0);
		log_bytes = r.bytes_written;
		manifest_logs(dir, id, &nlog, &nchain);
		cr_assert_eq(nlog, id - 1, "checkpoint %llu: %u logs",
			     (unsigned long long)id, nlog);
		cr_assert_eq(nchain, 1);
		for (int helped = 0; helped < 2; helped++) {
			t_helper_cpu = helped ? t_spare_cpu() : -1;
			struct wr_arena *b = t_restore(dir, 0, PAGES, &got_id);
			t_helper_cpu = -1;
			cr_assert_eq(got_id, id);
			t_assert_same(a[0], b);
			wr_arena_destroy(b);
		}
	}
	/* ~200 x 72 bytes of entries plus a few whole pages, against 120
	 * pages: the log is a small part of the page file. */
	cr_assert_lt(log_bytes * 4, page_bytes, "log %llu vs pages %llu",
		     (unsigned long long)log_bytes,
		     (unsigned long long)page_bytes);
	cr_assert_eq(wr_ckpt_verify(dir, 0, NULL, NULL), 0);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}

static uint64_t log_size(const char *dir, uint64_t id)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/ckpt-%020llu-c0.log", dir,
		 (unsigned long long)id);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return (uint64_t)st.st_size;
}

/* A page checkpoint, then three logs of several 1 MiB chunks each. */
static struct wr_arena *three_big_logs(const char *dir)
{
	struct wr_arena *a[1] = { t_arena(PAGES) };
	/* Logs larger than the pages under them are still logs here. */
	struct wr_ckpt_policy pol = { .retain = 10, .changelog = true,
				      .log_max_pct = 10000 };

	cr_assert_eq(wr_arena_log_enable(a[0], 16u << 20, 1u << 14), 0);
	t_populate(a[0], 120, 5);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	for (uint64_t k = 2; k <= 4; k++) {
		mutate(a[0], 60000);	/* ~2.6 MB: 72-byte and 12-16-byte entries */
		cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
		cr_assert_gt(log_size(dir, k), (2u << 20) + 4096u,
			     "log %llu: fewer than three chunks",
			     (unsigned long long)k);
	}
	return a[0];
}

Test(clog, every_read_path_replays_the_same)
{
	char *dir = t_mkdir();
	struct wr_arena *a = three_big_logs(dir);
	uint64_t id;

	for (int mode = 0; mode < 8; mode++) {
		wr_ckpt_test_log_buffered = mode % 4 == 1;
		wr_ckpt_test_log_read_max = mode % 4 == 2 ? 3000 : 0;
		wr_ckpt_test_load_no_uring = mode % 4 == 3;
		t_helper_cpu = mode >= 4 ? t_spare_cpu() : -1;
		struct wr_arena *b = t_restore(dir, 0, PAGES, &id);
		wr_ckpt_test_log_buffered = false;
		wr_ckpt_test_log_read_max = 0;
		wr_ckpt_test_load_no_uring = false;
		t_helper_cpu = -1;
		cr_assert_eq(id, 4);
		t_assert_same(a, b);
		wr_arena_destroy(b);
	}
	wr_arena_destroy(a);
	t_rmdir(dir);
}

/* Fresh pages of the logs (ALLOC_ZEROED) that replay must zero, because
 * the arena loaded into was used before (as on a fall-back): the zeroing,
 * by the loading thread, meets the helper's writes to the same pages in
 * log order, never after them. */
Test(clog, helper_meets_the_zeroing_of_reused_pages)
{
	char *dir = t_mkdir();
	struct wr_arena *a = three_big_logs(dir);

	for (int round = 0; round < 10; round++) {
		struct wr_arena *b = t_arena(PAGES);
		uint32_t first;
		struct wr_ckpt *ck;
		uint32_t n = b->pages_total - b->reserve_pages;
		cr_assert_eq(wr_arena_alloc(b, n, &first, NULL), 0);
		memset(wr_arena_page_ptr(b, first), 0xab, (size_t)n * T_PAGE);
		wr_arena_free(b, first, n);
		cr_assert_eq(wr_ckpt_open(dir, 0, T_FP, NULL, NULL, &ck), 0);
		cr_assert_eq(wr_ckpt_load_core_with(ck, 0, b, t_spare_cpu()), 0);
		wr_ckpt_close(ck);
		t_assert_same(a, b);
		wr_arena_destroy(b);
	}
	wr_arena_destroy(a);
	t_rmdir(dir);
}

/* A bad chunk after the helper has taken earlier chunks of the same file:
 * the load fails as without it, nothing hangs, the arena is left empty. */
Test(clog, helper_stops_at_a_late_bad_chunk)
{
	char *dir = t_mkdir(), cmd[512];
	struct wr_arena *a = three_big_logs(dir), *b = t_arena(PAGES);
	struct wr_ckpt *ck;

	snprintf(cmd, sizeof(cmd), "printf '\\377' | dd of=%s/ckpt-"
		 "00000000000000000004-c0.log bs=1 seek=%llu conv=notrunc "
		 "status=none", dir, (unsigned long long)(1u << 20) + 5000);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(wr_ckpt_open_deferred(dir, 0, T_FP, NULL, NULL, &ck), 0);
	cr_assert_eq(wr_ckpt_load_core_with(ck, 0, b, t_spare_cpu()),
		     -EBADMSG);
	cr_assert(wr_ckpt_pages_bad(ck));
	cr_assert(wr_arena_is_valid(b));
	cr_assert_eq(b->pages_used, 0);
	wr_ckpt_close(ck);
	wr_arena_destroy(b);
	wr_arena_destroy(a);
	t_rmdir(dir);
}

Test(clog, policy_resets_the_chain)
{
	char *dir = t_mkdir();
	struct wr_arena *a[1] = { log_arena() };
	struct wr_ckpt_policy pol = { .retain = 10, .changelog = true,
				      .log_max = 2 };
	uint32_t nlog, nchain;

	t_populate(a[0], 50, 1);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
		mutate(a[0], 20);
	}
	manifest_logs(dir, 3, &nlog, &nchain);
	cr_assert_eq(nlog, 2);
	manifest_logs(dir, 4, &nlog, &nchain);
	cr_assert_eq(nlog, 0, "log_max 2: checkpoint 4 is pages");
	/* log_max_pct 1: 1% of 50 pages is 2 KiB, any log of a whole page
	 * is more, so the next one after a log is pages again. */
	pol.log_max = 0;
	pol.log_max_pct = 1;
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	t_fill(a[0], 7, 99);
	mutate(a[0], 20);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	manifest_logs(dir, 5, &nlog, &nchain);
	cr_assert_eq(nlog, 1);
	manifest_logs(dir, 6, &nlog, &nchain);
	cr_assert_eq(nlog, 0);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}

/* A log is planned until this run's last log came out larger than its
 * last page checkpoint; unknown sizes (0) do not count. */
Test(clog, policy_prefers_the_smaller_checkpoint)
{
	char *dir = t_mkdir();
	struct wr_arena *a[1] = { log_arena() };
	struct wr_ckpt_policy pol = { .retain = 10, .changelog = true };
	struct wr_ckpt_plan plan;
	const uint64_t sizes[][3] = {	/* last log, last pages, log? */
		{ 0, 0, 1 }, { 5000, 0, 1 }, { 0, 5000, 1 },
		{ 4000, 5000, 1 }, { 5000, 5000, 1 }, { 5001, 5000, 0 },
	};

	t_populate(a[0], 50, 1);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		pol.last_log_bytes = sizes[i][0];
		pol.last_page_bytes = sizes[i][1];
		cr_assert_eq(wr_ckpt_plan_next(dir, &pol, 1, &plan), 0);
		cr_assert_eq(plan.log, sizes[i][2] != 0, "last log %llu, last "
			     "pages %llu", (unsigned long long)sizes[i][0],
			     (unsigned long long)sizes[i][1]);
		cr_assert_eq(plan.parent_id, plan.log ? 1u : 0u);
	}
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}

static void corrupt_log_falls_back(int helper_cpu)
{
	char *dir = t_mkdir(), cmd[512];
	struct wr_arena *a[1] = { log_arena() }, *ref, *b;
	struct wr_ckpt_policy pol = { .retain = 10, .changelog = true };
	struct t_reports rep = { 0 };
	struct wr_ckpt *ck;
	uint64_t id;

	t_populate(a[0], 40, 1);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	mutate(a[0], 100);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	ref = t_restore(dir, 0, PAGES, NULL);	/* the state at 2 */
	mutate(a[0], 100);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	snprintf(cmd, sizeof(cmd), "printf '\\377' | dd of=%s/ckpt-"
		 "00000000000000000003-c0.log bs=1 seek=5000 conv=notrunc "
		 "status=none", dir);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(wr_ckpt_verify(dir, 3, t_on_report, &rep), -EBADMSG);
	cr_assert(strstr(rep.file, "-c0.log") != NULL, "%s", rep.file);
	cr_assert_eq(rep.off, 4096, "the chunk at 4096 holds byte 5000");
	/* Deferred open finds it while loading; the engine then falls back
	 * (pipeline.c): the same here by hand. */
	cr_assert_eq(wr_ckpt_open_deferred(dir, 0, T_FP, NULL, NULL, &ck), 0);
	b = t_arena(PAGES);
	cr_assert_eq(wr_ckpt_load_core_with(ck, 0, b, helper_cpu), -EBADMSG);
	cr_assert(wr_ckpt_pages_bad(ck));
	cr_assert(wr_arena_is_valid(b));
	cr_assert_eq(b->pages_used, 0, "a failed load leaves the arena empty");
	wr_ckpt_close(ck);
	cr_assert_eq(wr_ckpt_open_deferred(dir, 3, T_FP, NULL, NULL, &ck), 0);
	cr_assert_eq(wr_ckpt_load_core_with(ck, 0, b, helper_cpu), 0);
	id = wr_ckpt_info(ck)->id;
	wr_ckpt_close(ck);
	cr_assert_eq(id, 2);
	t_assert_same(ref, b);
	/* wr_ckpt_open (reads everything first) skips 3 itself. */
	wr_arena_destroy(b);
	b = t_restore(dir, 0, PAGES, &id);
	cr_assert_eq(id, 2);
	wr_arena_destroy(b);
	wr_arena_destroy(ref);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}

Test(clog, corrupt_log_falls_back)
{
	corrupt_log_falls_back(-1);
}

Test(clog, corrupt_log_falls_back_with_a_helper)
{
	corrupt_log_falls_back(t_spare_cpu());
}

Test(clog, broken_log_core_writes_pages)
{
	char *dir = t_mkdir();
	struct wr_arena *a[2] = { log_arena(), log_arena() };
	struct wr_ckpt_policy pol = { .retain = 10, .changelog = true };
	struct wr_ckpt_manifest m;

	t_populate(a[0], 30, 1);
	t_populate(a[1], 30, 2);
	cr_assert_eq(t_checkpoint(dir, a, 2, &pol, NULL).err, 0);
	mutate(a[0], 50);
	mutate(a[1], 50);
	a[1]->log->pend_max = a[1]->log->pend_lim = 1; /* two notes overflow */
	t_fill(a[1], 3, 5);
	t_fill(a[1], 4, 5);
	cr_assert(a[1]->log->broken);
	a[1]->log->pend_max = 1u << 14;	/* resumed by the next snapshot */
	cr_assert_eq(t_checkpoint(dir, a, 2, &pol, NULL).err, 0);
	cr_assert_eq(wr_ckpt_manifest_read(dir, 2, &m), 0);
	cr_assert_eq(m.core[0].nlog, 1);
	cr_assert_eq(m.core[1].nlog, 0);
	cr_assert_eq(m.core[1].nchain, 1);
	cr_assert(strstr(m.core[1].chain[0].name, "00000000000000000002"));
	wr_ckpt_manifest_free(&m);
	for (uint32_t c = 0; c < 2; c++) {
		struct wr_arena *b = t_restore(dir, c, PAGES, NULL);
		t_assert_same(a[c], b);
		wr_arena_destroy(b);
	}
	/* Both logs run again from checkpoint 2. */
	mutate(a[1], 50);
	cr_assert_eq(t_checkpoint(dir, a, 2, &pol, NULL).err, 0);
	cr_assert_eq(wr_ckpt_manifest_read(dir, 3, &m), 0);
	cr_assert_eq(m.core[1].nlog, 1);
	wr_ckpt_manifest_free(&m);
	struct wr_arena *b = t_restore(dir, 1, PAGES, NULL);
	t_assert_same(a[1], b);
	wr_arena_destroy(b);
	wr_arena_destroy(a[0]);
	wr_arena_destroy(a[1]);
	t_rmdir(dir);
}

static int count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name), s = strlen(suffix);
		n += l > s && strcmp(e->d_name + l - s, suffix) == 0;
	}
	closedir(d);
	return n;
}

Test(clog, retention_keeps_what_the_newest_needs)
{
	char *dir = t_mkdir();
	struct wr_arena *a[1] = { log_arena() };
	struct wr_ckpt_policy pol = { .retain = 1, .changelog = true,
				      .log_max = 3 };

	t_populate(a[0], 30, 1);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
		mutate(a[0], 30);
	}
	/* 1 pages, 2-4 logs: all needed by 4. */
	cr_assert_eq(count_files(dir, ".pages"), 1);
	cr_assert_eq(count_files(dir, ".log"), 3);
	cr_assert_eq(count_files(dir, ".meta"), 1);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	/* 5 is pages again (log_max 3): everything of 1-4 goes. */
	cr_assert_eq(count_files(dir, ".pages"), 1);
	cr_assert_eq(count_files(dir, ".log"), 0);
	struct wr_arena *b = t_restore(dir, 0, PAGES, NULL);
	t_assert_same(a[0], b);
	wr_arena_destroy(b);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}
