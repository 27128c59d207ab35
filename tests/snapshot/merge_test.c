/*
 * merge_test.c — merged page writes of the checkpoint writer (up to 16
 * pages, one vectored write straight from the arena) and their short-write
 * requeue in snapshot/uring.c.
 *
 * TEST PLAN
 *   merge/short_writes_requeued  every write submitted with at most 3 pages
 *                        (O_DIRECT) or 5000 bytes (buffered, mid-page) by the
 *                        uring test cap: the kernel returns short writes
 *                        inside merged writes, at and between page
 *                        boundaries; the checkpoint restores byte-identical
 *                        and verifies.
 *   merge/run_broken     a full checkpoint of pages with holes (freed pages,
 *                        not in the snapshot) and COW shadows (written during
 *                        the flush), so merged writes mix adjacent and
 *                        scattered page ids: restores to the snapshot's bytes.
 *   merge/incremental_scattered  an incremental checkpoint of 37 scattered
 *                        changed pages among 600 (runs of 1..3): exactly those
 *                        pages are written, the file is exactly header + 37
 *                        pages + trailer, and the chain restores.
 *   merge/meta_sections  three metadata sections on 4 KiB pages (the meta
 *                        header used to be checksummed before its
 *                        trailer_off was set, caught by bench/ckpt_bench):
 *                        verify passes and every section reads back.
 */
#include "ckpt_util.h"
#include "snapshot/format.h"

static const struct wr_ckpt_policy full_pol = { .retain = 2 };

static void short_writes(bool direct)
{
	char *dir = t_mkdir();
	struct wr_arena *a[1] = { t_arena(256) };

	t_populate(a[0], 200, 3);
	for (uint32_t p = 20; p < 200; p += 9)
		wr_arena_free(a[0], p, 1);	/* break memory adjacency */
	t_no_direct = !direct;	/* 5000-byte pieces need buffered I/O */
	wr_uring_test_write_max = direct ? 3 * T_PAGE : 5000;
	struct t_run r = t_checkpoint(dir, a, 1, &full_pol, NULL);
	wr_uring_test_write_max = 0;
	t_no_direct = false;
	cr_assert_eq(r.err, 0, "%s", weir_last_error());
	cr_assert_eq(r.pages_written, 180);
	cr_assert_eq(wr_ckpt_verify(dir, 0, NULL, NULL), 0);
	struct wr_arena *got = t_restore(dir, 0, 256, NULL);
	t_assert_same(a[0], got);
	wr_arena_destroy(got);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}

Test(merge, short_writes_requeued)
{
	short_writes(true);
	short_writes(false);
}

static uint32_t freed[] = { 5, 6, 17, 31, 32, 33, 48, 64, 99 };

/* During the flush: COW some pages, free one, reuse a freed one. */
static void during(struct wr_arena **a, uint32_t n)
{
	uint32_t p;

	(void)n;
	for (uint32_t q = 0; q < 120; q += 7)
		if (q != 5 && q != 6 && q != 17)
			t_fill(a[0], q, 200);
	wr_arena_free(a[0], 70, 1);
	cr_assert_eq(wr_arena_alloc(a[0], 1, &p, NULL), 0);
	t_fill(a[0], p, 201);
}

Test(merge, run_broken)
{
	char *dir = t_mkdir();
	struct wr_arena *a[1] = { t_arena(256) }, *ref = t_arena(256);

	t_populate(a[0], 120, 4);
	t_populate(ref, 120, 4);
	for (size_t i = 0; i < sizeof(freed) / sizeof(freed[0]); i++) {
		wr_arena_free(a[0], freed[i], 1);
		wr_arena_free(ref, freed[i], 1);
	}
	struct t_run r = t_checkpoint(dir, a, 1, &full_pol, during);
	cr_assert_eq(r.err, 0, "%s", weir_last_error());
	cr_assert_eq(r.pages_written, 120 - 9);
	struct wr_arena *got = t_restore(dir, 0, 256, NULL);
	t_assert_same(ref, got);
	wr_arena_destroy(got);
	wr_arena_destroy(ref);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}

Test(merge, incremental_scattered)
{
	char *dir = t_mkdir();
	struct wr_arena *a[1] = { t_arena(700) };
	struct wr_ckpt_policy pol = { .retain = 3, .incremental = true };
	uint32_t changed = 0;
	struct stat st;
	char path[600];

	t_populate(a[0], 600, 1);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	for (uint32_t p = 3; p < 600 && changed < 37; p += 16) {
		for (uint32_t k = 0; k <= p % 3 && changed < 37; k++, changed++)
			t_fill(a[0], p + k, 50);	/* runs of 1..3 */
	}
	struct t_run r = t_checkpoint(dir, a, 1, &pol, NULL);
	cr_assert_eq(r.err, 0, "%s", weir_last_error());
	cr_assert_eq(r.pages_written, 37);
	uint64_t trailer = wr_ckpt_round_up(37 * 16 + 600 * 4 + 64, 4096);
	cr_assert_eq(r.bytes_written, 4096 + 37 * T_PAGE + trailer);
	snprintf(path, sizeof(path), "%s/ckpt-00000000000000000002-c0.pages",
		 dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, r.bytes_written,
		     "fallocate left the file at %lld", (long long)st.st_size);
	struct wr_arena *got = t_restore(dir, 0, 700, NULL);
	t_assert_same(a[0], got);
	wr_arena_destroy(got);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}

Test(merge, meta_sections)
{
	char *dir = t_mkdir();
	struct wr_arena *a = t_arena(64);
	struct wr_uring *u;
	struct wr_ckpt_writer *w;
	struct wr_ckpt_writer_config cfg = { dir, 1, 0, T_FP, NULL, 4 };
	struct wr_ckpt_core_result res;
	const char *names[] = { "timers", "source_pos", "tables" };
	struct wr_ckpt *ck;
	const void *b;
	size_t len;
	uint32_t e;

	t_populate(a, 10, 1);
	cr_assert_eq(wr_uring_create(8, &u), 0);
	cfg.uring = u;
	cr_assert_eq(wr_arena_snapshot_begin(a, &e), 0);
	cr_assert_eq(wr_ckpt_writer_create(&cfg, a, &w), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(wr_ckpt_writer_add_section(w, names[i], names[i],
			     strlen(names[i])), 0);
	cr_assert_eq(t_drive(w), 1);
	cr_assert_eq(wr_ckpt_writer_result(w, &res), 0);
	wr_arena_snapshot_end(a);
	struct wr_ckpt_commit_info ci = { dir, 1, 0, 1, 1, 1, 128, T_FP, "t",
					  1 };
	cr_assert_eq(wr_ckpt_commit(&ci, &res, 1), 0);
	cr_assert_eq(wr_ckpt_verify(dir, 1, NULL, NULL), 0, "%s",
		     weir_last_error());
	cr_assert_eq(wr_ckpt_open(dir, 0, T_FP, NULL, NULL, &ck), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(wr_ckpt_section(ck, 0, names[i], &b, &len), 0);
		cr_assert_eq(len, strlen(names[i]));
		cr_assert(memcmp(b, names[i], len) == 0);
	}
	wr_ckpt_close(ck);
	wr_ckpt_writer_destroy(w);
	wr_uring_destroy(u);
	wr_arena_destroy(a);
	t_rmdir(dir);
}
