/*
 * ckpt_test.c — checkpoint writer, commit, retention and restore.
 *
 * TEST PLAN
 *   arena/restore_page   wr_arena_restore_page: placement, bytes, epoch,
 *                        refusals (page in use, snapshot pending, bad id).
 *   ckpt/round_trip      2 cores: writer → commit → open → load gives
 *                        byte-identical pages and metadata sections; the
 *                        manifest says what was written.
 *   ckpt/reserved_buffers writers borrowing buffers reserved ahead, of
 *                        the arena's size and another, restore the same.
 *   ckpt/cow_during_flush writes, frees and allocations after
 *                        snapshot_begin do not reach the checkpoint.
 *   ckpt/incremental     bytes written ∝ pages changed; a chain of three
 *                        restores to the full current state, with pages
 *                        freed and reallocated in between.
 *   ckpt/retention_shared retain 2 with incremental chains: old manifests
 *                        go, files a retained chain needs stay, unneeded
 *                        files are deleted, every retained one restores.
 *   ckpt/committer       the committer thread commits (a second request while
 *                        one is in flight: -EBUSY), aborts (the files go),
 *                        and one handed over before destroy still commits.
 *   ckpt/committer_prepare  the committer plans the next checkpoint and
 *                        creates every core's files; a writer takes its
 *                        own, replaces another kind's, another id's or
 *                        unlinked ones; unused ones are swept on commit.
 *   ckpt/step_budget     touch_in_flight with step_bytes of one and of two
 *                        pages: a step checksums that many at most, and pages
 *                        touched between their checksum (taken ahead) and
 *                        their write restore to the snapshot's bytes.
 *   ckpt/corrupt_flip, ckpt/corrupt_truncate  verify names file + offset;
 *                        open falls back to the previous checkpoint.
 *   ckpt/every_flip_reported  one bit of every byte of a checkpoint's
 *                        header block, trailer, tail and meta file (and of
 *                        every 97th page byte), every bit of its manifest,
 *                        flipped one at a time: verify fails naming the
 *                        file, in a data file at or before the byte, a page
 *                        byte at its page (README BUG-5, BUG-6, BUG-7).
 *   ckpt/corrupt_flip_meta  a byte inside a meta file's section is named at
 *                        that section's offset (it was offset 0, "file
 *                        checksum mismatch", before the sections were
 *                        checked first).
 *   ckpt/corrupt_found_while_loading  one-pass restore: open_deferred
 *                        accepts a checkpoint whose page is damaged (pages
 *                        are not read), the load finds it with reads in
 *                        flight (runs of 2 pages), reports file + offset,
 *                        fails with -EBADMSG and leaves the arena empty and
 *                        valid; open_deferred below it gives the previous
 *                        checkpoint, which loads into the same arena exactly.
 *   ckpt/refuse_fingerprint, ckpt/refuse_newer_version  refused, and the
 *                        directory (names, sizes, mtimes) is unchanged.
 *   ckpt/plan_past_1024_manifests  1100 manifests: the listing keeps the
 *                        newest ids, the plan follows the newest (it
 *                        planned id 1 past 1024).
 *   ckpt/crash_in_commit a crash after every commit step k = 1..5 leaves
 *                        either the old or the new checkpoint, complete;
 *                        the next checkpoint commits and cleans up.
 *   ckpt/abort_removes_partial  a failed writer leaves no files.
 *   ckpt/touch_in_flight  pages written zero-copy from the live arena are
 *                        touched and overwritten between writer steps while
 *                        their writes are queued, in flight (the uring's
 *                        test cap keeps each merged write in the kernel for
 *                        many steps) or done, O_DIRECT and buffered: some
 *                        are rewritten from their shadows, and every
 *                        checksum verifies and every byte restores as it was
 *                        at snapshot time.  Caught the unsafe zero-copy
 *                        writer (repair disabled) in 3 of 3 runs.
 */
#include <fcntl.h>
#include <limits.h>

#include "ckpt_util.h"
#include "snapshot/format.h"

Test(arena, restore_page)
{
	struct wr_arena *a = t_arena(16);
	uint8_t bytes[T_PAGE];
	uint32_t p, e;

	memset(bytes, 0x5a, sizeof(bytes));
	cr_assert_eq(wr_arena_restore_page(a, 3, bytes), 0);
	cr_assert_eq(wr_arena_restore_page(a, 3, bytes), -EEXIST);
	/* Past the cap: a checkpoint taken with a larger one, said so. */
	cr_assert_eq(wr_arena_restore_page(a, 99, bytes), -ENOMEM);
	cr_assert(strstr(weir_last_error(), "past this core's memory cap"),
		  "%s", weir_last_error());
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
static const struct wr_ckpt_policy inc_pol = { .retain = 3, .incremental = true,
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

/* Writers borrowing buffers reserved ahead (wr_ckpt_writer_cache_reserve,
 * as a core does at start-up), of the arena's size and of another, write
 * checkpoints that restore the same (under ASan: no overrun of a borrowed
 * trailer). */
Test(ckpt, reserved_buffers)
{
	char *dir = t_mkdir();
	struct wr_arena *a[1] = { t_arena(64) };
	uint32_t sizes[3] = { 64, 32, 64 };

	t_populate(a[0], 30, 1);
	for (int k = 0; k < 3; k++) {
		cr_assert_eq(wr_ckpt_writer_cache_reserve(sizes[k]), 0);
		for (uint32_t q = 0; q < 30; q += 1 + (uint32_t)k)
			t_fill(a[0], q, 10 + (uint32_t)k);
		struct t_run r = t_checkpoint(dir, a, 1, &full_pol, NULL);
		cr_assert_eq(r.err, 0, "%s", weir_last_error());
		struct wr_arena *b = t_restore(dir, 0, 64, NULL);
		t_assert_same(a[0], b);
		wr_arena_destroy(b);
	}
	cr_assert_eq(wr_ckpt_verify(dir, 0, NULL, NULL), 0);
	wr_ckpt_writer_cache_release();
	wr_arena_destroy(a[0]);
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

Test(ckpt, incremental)
{
	char *dir = t_mkdir();
	struct wr_arena *a[1] = { t_arena(512) };
	uint32_t p;

	t_populate(a[0], 400, 1);
	struct t_run full = t_checkpoint(dir, a, 1, &inc_pol, NULL);
	cr_assert_eq(full.err, 0);
	cr_assert_eq(full.pages_written, 400);
	for (uint32_t q = 0; q < 4; q++) /* 1% of the pages */
		t_fill(a[0], q * 97, 9);
	struct t_run inc = t_checkpoint(dir, a, 1, &inc_pol, NULL);
	cr_assert_eq(inc.err, 0);
	cr_assert_eq(inc.pages_written, 4);
	/* 4 pages + header block + trailer block(s): ∝ pages changed */
	cr_assert_leq(inc.bytes_written, (4 + 1 + 1) * T_PAGE);
	cr_assert_lt(inc.bytes_written * 50, full.bytes_written);
	wr_arena_free(a[0], 10, 1);
	wr_arena_free(a[0], 11, 1);
	cr_assert_eq(wr_arena_alloc(a[0], 2, &p, NULL), 0);
	t_fill(a[0], p, 10);
	t_fill(a[0], p + 1, 10);
	t_fill(a[0], 200, 11);
	struct t_run inc2 = t_checkpoint(dir, a, 1, &inc_pol, NULL);
	cr_assert_eq(inc2.err, 0);
	cr_assert_eq(inc2.pages_written, 3);
	struct wr_ckpt_manifest m;
	cr_assert_eq(wr_ckpt_manifest_read(dir, 3, &m), 0);
	cr_assert_eq(m.parent_id, 2);
	cr_assert_eq(m.core[0].nchain, 3);
	cr_assert_eq(m.core[0].view_pages, 400);
	wr_ckpt_manifest_free(&m);
	uint64_t id;
	struct wr_arena *got = t_restore(dir, 0, 512, &id);
	cr_assert_eq(id, 3);
	t_assert_same(a[0], got);
	wr_arena_destroy(got);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}

static uint32_t count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint32_t n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL)
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

Test(ckpt, retention_shared)
{
	char *dir = t_mkdir();
	struct wr_arena *a[2] = { t_arena(64), t_arena(64) };
	struct wr_ckpt_policy pol = { .retain = 2, .incremental = true,
				      .full_every = 3 };
	uint64_t ids[16];
	uint32_t n;

	t_populate(a[0], 20, 1);
	t_populate(a[1], 20, 2);
	for (uint32_t k = 1; k <= 7; k++) {
		t_fill(a[0], k, 100 + k);
		t_fill(a[1], k + 1, 100 + k);
		cr_assert_eq(t_checkpoint(dir, a, 2, &pol, NULL).err, 0);
		cr_assert_eq(wr_ckpt_list(dir, ids, 16, &n), 0);
		cr_assert_eq(n, k < 2 ? k : 2);
		for (uint32_t i = 0; i < n; i++) /* every retained restores */
			cr_assert_eq(wr_ckpt_verify(dir, ids[i], NULL, NULL), 0,
				     "checkpoint %llu after %u",
				     (unsigned long long)ids[i], k);
	}
	/* Chains: 1 full, 2-3 inc; 4 full, 5-6 inc; 7 full.  Retained 6, 7:
	 * 6 needs the page files of 4, 5, 6; 7 its own. */
	cr_assert_eq(ids[0], 6);
	cr_assert_eq(count_files(dir, "MANIFEST-"), 2);
	cr_assert_eq(count_files(dir, "ckpt-00000000000000000004-c"), 2,
		     "the shared base stays (page files only)");
	cr_assert_eq(count_files(dir, "ckpt-00000000000000000005-c"), 2);
	cr_assert_eq(count_files(dir, "ckpt-00000000000000000006-c"), 4);
	cr_assert_eq(count_files(dir, "ckpt-00000000000000000003-c"), 0);
	cr_assert_eq(count_files(dir, "ckpt-"), 2 * (1 + 1 + 2 + 2));
	struct wr_ckpt *ck;
	cr_assert_eq(wr_ckpt_open(dir, 6, T_FP, NULL, NULL, &ck), 0);
	wr_ckpt_close(ck);
	wr_arena_destroy(a[0]);
	wr_arena_destroy(a[1]);
	t_rmdir(dir);
}

/* Two checkpoints of one core; returns the arena as at checkpoint 1. */
static struct wr_arena *two_checkpoints(const char *dir, bool incremental)
{
	struct wr_arena *a[1] = { t_arena(64) }, *ref = t_arena(64);
	struct wr_ckpt_policy pol = { .retain = 3, .incremental = incremental };

	t_populate(a[0], 20, 1);
	t_populate(ref, 20, 1);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	t_fill(a[0], 3, 50);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	wr_arena_destroy(a[0]);
	return ref;
}

static void corrupt_then_check(const char *file, const char *cmd_fmt,
			       uint64_t want_off)
{
	char *dir = t_mkdir(), cmd[512], path[512];
	struct wr_arena *ref = two_checkpoints(dir, false);
	struct t_reports rep = { 0 };
	uint64_t id;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(cmd, sizeof(cmd), cmd_fmt, path);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(wr_ckpt_verify(dir, 2, t_on_report, &rep), -EBADMSG);
	cr_assert_geq(rep.n, 1);
	cr_assert_str_eq(rep.file, file);
	cr_assert_eq(rep.off, want_off, "reported at %llu, want %llu",
		     (unsigned long long)rep.off,
		     (unsigned long long)want_off);
	cr_assert_eq(wr_ckpt_verify(dir, 1, NULL, NULL), 0);
	struct wr_arena *got = t_restore(dir, 0, 64, &id);
	cr_assert_eq(id, 1, "fell back to the previous checkpoint");
	t_assert_same(ref, got);
	wr_arena_destroy(got);
	wr_arena_destroy(ref);
	t_rmdir(dir);
}

#define T_PAGES2 "ckpt-00000000000000000002-c0.pages"

Test(ckpt, corrupt_flip)
{
	/* byte 100 of the 6th page (offset 4096 + 5 * 4096 + 100) */
	corrupt_then_check(T_PAGES2, "printf '\\377' | dd of=%s bs=1 "
			   "seek=24676 conv=notrunc status=none",
			   4096 + 5 * 4096);
}

/* A byte of the meta file's one section ("source_pos", its head at 4096,
 * its bytes at 4096 + 48) is reported at that section, not at offset 0
 * for the file checksum, which covers it too. */
Test(ckpt, corrupt_flip_meta)
{
	corrupt_then_check("ckpt-00000000000000000002-c0.meta",
			   "printf 'X' | dd of=%s bs=1 seek=4146 conv=notrunc "
			   "status=none", 4096);
}

Test(ckpt, corrupt_truncate)
{
	corrupt_then_check(T_PAGES2, "truncate -s 40000 %s", 40000);
}

static void flip_bits(const char *path, uint64_t off, int mask)
{
	FILE *f = fopen(path, "r+b");
	int c;

	cr_assert_not_null(f);
	cr_assert_eq(fseek(f, (long)off, SEEK_SET), 0);
	c = fgetc(f);
	cr_assert_eq(fseek(f, (long)off, SEEK_SET), 0);
	fputc(c ^ mask, f);
	cr_assert_eq(fclose(f), 0);
}

/* Bit `mask` of byte off of file flipped: verify fails naming the file;
 * in a data file at or before the byte (a header field is named at its
 * checksum, byte 88), and a page byte at its page (pages_end: where the
 * pages end, 0 for a meta file, UINT64_MAX for the manifest, whose one
 * checksum names no place). */
static void check_flip(const char *dir, const char *file, uint64_t off,
		       int mask, uint64_t pages_end)
{
	char path[512];
	struct t_reports rep = { 0 };
	int err;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	flip_bits(path, off, mask);
	err = wr_ckpt_verify(dir, 1, t_on_report, &rep);
	flip_bits(path, off, mask);
	/* The manifest's own version digit made another version (2 -> 3 or
	 * 0): refused as a format this weir does not read, which is what a
	 * newer weir's manifest must get (its checksum may be another's). */
	if (pages_end == UINT64_MAX &&
	    off == strlen("weir-checkpoint-manifest ") &&
	    err == -EPROTONOSUPPORT)
		return;
	cr_assert_eq(err, -EBADMSG, "%s byte %llu ^ %#x: verify gave %d", file,
		     (unsigned long long)off, mask, err);
	cr_assert_str_eq(rep.file, file, "byte %llu", (unsigned long long)off);
	if (pages_end == UINT64_MAX)
		return;
	if (off < 96)
		cr_assert_lt(rep.off, 96, "%s header byte %llu named at %llu",
			     file, (unsigned long long)off,
			     (unsigned long long)rep.off);
	else if (off >= 4096 && off < pages_end)
		cr_assert_eq(rep.off, off / T_PAGE * T_PAGE, "%s page byte %llu "
			     "named at %llu", file, (unsigned long long)off,
			     (unsigned long long)rep.off);
	else
		cr_assert_leq(rep.off, off, "%s byte %llu named at %llu", file,
			      (unsigned long long)off,
			      (unsigned long long)rep.off);
}

/* One bit of every byte outside the pages (header block, trailer, tail,
 * meta file; bit off % 8) and of every 97th page byte, and every bit of
 * every manifest byte, flipped one at a time, is reported.  Caught a data
 * file's version bit taken for a newer format (BUG-5), the tails'
 * unchecked bytes (BUG-6) and the manifest's checksum line parsed as a
 * number (an upper-case hex digit, a damaged final newline: BUG-7). */
Test(ckpt, every_flip_reported, .timeout = 120)
{
	char *dir = t_mkdir(), path[512];
	struct wr_arena *a[1] = { t_arena(16) };
	const char *pages = "ckpt-00000000000000000001-c0.pages";
	const char *meta = "ckpt-00000000000000000001-c0.meta";
	const char *man = "MANIFEST-00000000000000000001";
	struct stat st;

	t_populate(a[0], 3, 7);
	cr_assert_eq(t_checkpoint(dir, a, 1, &full_pol, NULL).err, 0);
	snprintf(path, sizeof(path), "%s/%s", dir, pages);
	cr_assert_eq(stat(path, &st), 0);
	uint64_t pages_end = 4096 + 3 * T_PAGE;
	cr_assert_eq((uint64_t)st.st_size, pages_end + 4096);
	for (uint64_t off = 0; off < (uint64_t)st.st_size;
	     off += off >= 4096 && off < pages_end ? 97 : 1)
		check_flip(dir, pages, off, 1 << (off % 8), pages_end);
	snprintf(path, sizeof(path), "%s/%s", dir, meta);
	cr_assert_eq(stat(path, &st), 0);
	for (uint64_t off = 0; off < (uint64_t)st.st_size; off++)
		check_flip(dir, meta, off, 1 << (off % 8), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, man);
	cr_assert_eq(stat(path, &st), 0);
	for (uint64_t off = 0; off < (uint64_t)st.st_size; off++)
		for (int bit = 0; bit < 8; bit++)
			check_flip(dir, man, off, 1 << bit, UINT64_MAX);
	cr_assert_eq(wr_ckpt_verify(dir, 1, NULL, NULL), 0);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}

/* 60 pages with every third freed: the load reads runs of 2 pages, several
 * in flight, and the 14th page of checkpoint 2's file (the 2nd page of its
 * 7th run) is damaged. */
Test(ckpt, corrupt_found_while_loading)
{
	char *dir = t_mkdir(), cmd[512];
	struct wr_arena *a[1] = { t_arena(128) }, *ref, *b = t_arena(128);
	struct wr_ckpt_policy pol = { .retain = 3 };
	struct wr_arena_stats st;
	struct t_reports rep = { 0 };
	struct wr_ckpt *ck;
	uint64_t id, off = 4096 + 13 * 4096;

	t_populate(a[0], 60, 1);
	for (uint32_t p = 2; p < 60; p += 3)
		wr_arena_free(a[0], p, 1);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	ref = t_restore(dir, 0, 128, &id);
	t_fill(a[0], 0, 9);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	snprintf(cmd, sizeof(cmd), "printf '\\377' | dd of=%s/ckpt-"
		 "00000000000000000002-c0.pages bs=1 seek=%llu conv=notrunc "
		 "status=none", dir, (unsigned long long)off + 100);
	cr_assert_eq(system(cmd), 0);

	cr_assert_eq(wr_ckpt_open_deferred(dir, 0, T_FP, t_on_report, &rep,
					   &ck), 0);
	cr_assert_eq(wr_ckpt_info(ck)->id, 2, "pages are not read by open");
	cr_assert_eq(wr_ckpt_load_core(ck, 0, b), -EBADMSG);
	cr_assert_str_eq(rep.file, "ckpt-00000000000000000002-c0.pages");
	cr_assert_eq(rep.off, off);
	cr_assert_not_null(strstr(weir_last_error(), "at offset 57344"));
	cr_assert(wr_ckpt_pages_bad(ck));
	wr_arena_get_stats(b, &st);
	cr_assert_eq(st.pages_used, 0, "the failed load freed its pages");
	cr_assert(wr_arena_is_valid(b));
	wr_ckpt_close(ck);

	cr_assert_eq(wr_ckpt_open_deferred(dir, 2, T_FP, NULL, NULL, &ck), 0);
	cr_assert_eq(wr_ckpt_info(ck)->id, 1);
	cr_assert_eq(wr_ckpt_load_core(ck, 0, b), 0);
	cr_assert(!wr_ckpt_pages_bad(ck));
	wr_ckpt_close(ck);
	cr_assert(wr_arena_is_valid(b));
	t_assert_same(ref, b);
	cr_assert_eq(wr_ckpt_verify(dir, 2, NULL, NULL), -EBADMSG);
	wr_arena_destroy(a[0]);
	wr_arena_destroy(b);
	wr_arena_destroy(ref);
	t_rmdir(dir);
}

/* Names, sizes and mtimes of every entry, as one string. */
static void listing(const char *dir, char *out, size_t n)
{
	char cmd[512];
	FILE *f;
	size_t got;

	snprintf(cmd, sizeof(cmd), "cd '%s' && stat -c '%%n %%s %%Y.%%y' * | "
		 "sort", dir);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	got = fread(out, 1, n - 1, f);
	out[got] = '\0';
	pclose(f);
	cr_assert_gt(got, 0);
}

Test(ckpt, refuse_fingerprint)
{
	char *dir = t_mkdir(), before[8192], after[8192];
	struct wr_arena *ref = two_checkpoints(dir, true);
	struct wr_ckpt *ck;

	listing(dir, before, sizeof(before));
	cr_assert_eq(wr_ckpt_open(dir, 0, T_FP + 1, NULL, NULL, &ck), -ESTALE);
	cr_assert_not_null(strstr(weir_last_error(), "another pipeline"));
	listing(dir, after, sizeof(after));
	cr_assert_str_eq(before, after);
	wr_arena_destroy(ref);
	t_rmdir(dir);
}

/* The newest manifest rewritten to claim format `version`: open refuses it
 * with -EPROTONOSUPPORT and a message holding `says`, changing nothing. */
static void refuse_version(unsigned version, const char *says)
{
	char *dir = t_mkdir(), before[8192], after[8192], cmd[512];
	struct wr_arena *ref = two_checkpoints(dir, true);
	struct wr_ckpt *ck;

	snprintf(cmd, sizeof(cmd), "sed -i '1s/ %u$/ %u/' "
		 "%s/MANIFEST-00000000000000000002", WR_CKPT_FORMAT_VERSION,
		 version, dir);
	cr_assert_eq(system(cmd), 0);
	listing(dir, before, sizeof(before));
	cr_assert_eq(wr_ckpt_open(dir, 0, T_FP, NULL, NULL, &ck),
		     -EPROTONOSUPPORT);
	cr_assert_not_null(strstr(weir_last_error(), says), "%s",
			   weir_last_error());
	listing(dir, after, sizeof(after));
	cr_assert_str_eq(before, after);
	wr_arena_destroy(ref);
	t_rmdir(dir);
}

Test(ckpt, refuse_newer_version)
{
	refuse_version(WR_CKPT_FORMAT_VERSION + 1, "newer format");
}

/* Version 1 (operator sections of another layout): refused as well, with
 * its own message, the directory unchanged. */
Test(ckpt, refuse_older_version)
{
	refuse_version(WR_CKPT_FORMAT_VERSION_MIN - 1, "older than");
}

/* More manifests than a listing holds (1100 > 1024): the listing keeps
 * the newest, and the plan goes on after the newest.  It planned id 1,
 * whose writer would have truncated a committed checkpoint's files. */
Test(ckpt, plan_past_1024_manifests)
{
	char *dir = t_mkdir(), path[512];
	struct wr_ckpt_plan plan;
	uint64_t ids[16];
	uint32_t n;

	for (unsigned id = 1; id <= 1100; id++) {
		snprintf(path, sizeof(path), "%s/MANIFEST-%020u", dir, id);
		FILE *f = fopen(path, "w");
		cr_assert_not_null(f);
		fclose(f);
	}
	cr_assert_eq(wr_ckpt_list(dir, ids, 16, &n), 0);
	cr_assert_eq(n, 1100);
	for (unsigned i = 0; i < 16; i++)
		cr_assert_eq(ids[i], 1085 + i, "ids[%u] = %llu", i,
			     (unsigned long long)ids[i]);
	cr_assert_eq(wr_ckpt_plan_next(dir, &full_pol, 1, &plan), 0);
	cr_assert_eq(plan.ckpt_id, 1101, "planned %llu",
		     (unsigned long long)plan.ckpt_id);
	t_rmdir(dir);
}

Test(ckpt, crash_in_commit)
{
	for (int k = 1; k <= 5; k++) {
		char *dir = t_mkdir();
		struct wr_arena *a[1] = { t_arena(64) }, *want;
		struct wr_ckpt_policy pol = { .retain = 1, .incremental = true };
		uint64_t id;

		t_populate(a[0], 20, 1);
		cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
		struct wr_arena *old = t_restore(dir, 0, 64, NULL);
		t_fill(a[0], 4, 60);
		wr_ckpt_test_crash_after = k;
		cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, -EINTR);
		wr_ckpt_test_crash_after = 0;
		struct wr_arena *got = t_restore(dir, 0, 64, &id);
		cr_assert_eq(id, k <= 2 ? 1u : 2u, "crash after step %d", k);
		want = k <= 2 ? old : a[0];
		t_assert_same(want, got);
		cr_assert_eq(wr_ckpt_verify(dir, id, NULL, NULL), 0);
		/* The next checkpoint commits and sweeps the debris. */
		pol.force_full = true;
		cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
		cr_assert_eq(count_files(dir, "MANIFEST-"), 1);
		cr_assert_eq(count_files(dir, "ckpt-"), 2);
		wr_arena_destroy(got);
		wr_arena_destroy(old);
		wr_arena_destroy(a[0]);
		t_rmdir(dir);
	}
}

Test(ckpt, abort_removes_partial)
{
	char *dir = t_mkdir();
	struct wr_arena *a = t_arena(64);
	struct wr_uring *u;
	struct wr_ckpt_writer *w;
	struct wr_ckpt_writer_config cfg = { dir, 1, 0, T_FP, NULL, 4 };
	uint32_t e;

	t_populate(a, 30, 1);
	cr_assert_eq(wr_uring_create(8, &u), 0);
	cfg.uring = u;
	cr_assert_eq(wr_arena_snapshot_begin(a, &e), 0);
	cr_assert_eq(wr_ckpt_writer_create(&cfg, a, &w), 0);
	cr_assert_eq(wr_ckpt_writer_step(w), 0);
	cr_assert_eq(wr_ckpt_writer_state(w), WR_CKPT_PAGES);
	cr_assert(wr_ckpt_writer_is_valid(w));
	cr_assert_eq(count_files(dir, "ckpt-"), 2);
	wr_ckpt_writer_destroy(w); /* mid-flight: drains, then unlinks */
	wr_arena_snapshot_end(a);
	cr_assert_eq(count_files(dir, "ckpt-"), 0);
	/* No pending snapshot, or a parent epoch from the future: refused. */
	cr_assert_eq(wr_ckpt_writer_create(&cfg, a, &w), -EINVAL);
	wr_uring_destroy(u);
	wr_arena_destroy(a);
	t_rmdir(dir);
}

/* One full checkpoint of a, touching page (k * 7) % npages after each
 * writer step that leaves page writes in the uring (more than the one
 * fallocate: steps take microseconds, the fallocate far longer, and pages
 * touched before their write is queued go from their shadow); how many
 * pages the writer rewrote. */
static uint32_t checkpoint_touching(const char *dir, struct wr_arena *a,
				    uint32_t npages, uint32_t step_bytes,
				    uint32_t *most)
{
	struct wr_ckpt_plan plan;
	struct wr_ckpt_core_result res;
	struct wr_ckpt_writer *w;
	struct wr_uring *u;
	uint32_t e;
	int rc = 0;

	cr_assert_eq(wr_ckpt_plan_next(dir, &full_pol, 1, &plan), 0);
	cr_assert_eq(wr_uring_create(16, &u), 0);
	struct wr_ckpt_writer_config cfg = { dir, plan.ckpt_id, 0, T_FP, u, 8,
					     0, 0, t_no_direct };
	cr_assert_eq(wr_arena_snapshot_begin(a, &e), 0);
	cfg.step_bytes = step_bytes;
	cr_assert_eq(wr_ckpt_writer_create(&cfg, a, &w), 0);
	*most = 0;
	for (uint32_t k = 0, before = 0; rc == 0;) {
		rc = wr_ckpt_writer_step(w);
		uint32_t now = wr_ckpt_writer_checksummed(w);
		*most = now - before > *most ? now - before : *most;
		before = now;
		cr_assert(wr_ckpt_writer_is_valid(w));
		if (wr_uring_pending(u) < 2)
			continue;
		t_fill(a, (k * 7) % npages, 200 + k);
		k++;
		cr_assert(wr_arena_is_valid(a));
	}
	cr_assert_eq(rc, 1, "%s", weir_last_error());
	cr_assert_eq(wr_ckpt_writer_result(w, &res), 0);
	wr_arena_snapshot_end(a);
	struct wr_ckpt_commit_info ci = { dir, plan.ckpt_id, 0, 1, 1, 1, 128,
					  T_FP, "test job", full_pol.retain };
	cr_assert_eq(wr_ckpt_commit(&ci, &res, 1), 0);
	wr_ckpt_writer_destroy(w);
	wr_uring_destroy(u);
	return res.pages_rewritten;
}

/* step_bytes: the writer's budget (0 = its default); with one, a step
 * checksums that many pages at most. */
static void touch_in_flight(bool direct, uint32_t step_bytes)
{
	char *dir = t_mkdir();
	struct wr_arena *a = t_arena(400), *ref = t_arena(400);

	t_populate(a, 160, 9);
	t_populate(ref, 160, 9);
	t_no_direct = !direct;	/* 5000-byte pieces need buffered I/O */
	wr_uring_test_write_max = direct ? T_PAGE : 5000;
	uint32_t most, rewritten = checkpoint_touching(dir, a, 160, step_bytes,
						       &most);
	wr_uring_test_write_max = 0;
	t_no_direct = false;
	cr_assert_gt(rewritten, 0, "no page was touched in flight");
	if (step_bytes != 0)
		cr_assert_leq(most, step_bytes / T_PAGE,
			      "a step checksummed %u pages", most);
	cr_assert_eq(wr_ckpt_verify(dir, 0, NULL, NULL), 0);
	struct wr_arena *got = t_restore(dir, 0, 400, NULL);
	t_assert_same(ref, got);
	wr_arena_destroy(got);
	wr_arena_destroy(ref);
	wr_arena_destroy(a);
	t_rmdir(dir);
}

Test(ckpt, touch_in_flight)
{
	touch_in_flight(true, 0);
	touch_in_flight(false, 0);
}

/* A step checksums at most step_bytes of pages, ahead of their writes:
 * pages touched between their checksum and their write still verify and
 * restore to the snapshot's bytes. */
Test(ckpt, step_budget)
{
	touch_in_flight(true, T_PAGE);
	touch_in_flight(false, 2 * T_PAGE);
}

/* Checkpoint files of one core, durable but not committed: *res. */
static uint64_t write_uncommitted(const char *dir, struct wr_arena *a,
				 struct wr_ckpt_core_result *res)
{
	struct wr_ckpt_plan plan;
	struct wr_ckpt_writer *w;
	struct wr_uring *u;
	uint32_t e;

	cr_assert_eq(wr_ckpt_plan_next(dir, &full_pol, 1, &plan), 0);
	cr_assert_eq(wr_uring_create(16, &u), 0);
	struct wr_ckpt_writer_config cfg = { dir, plan.ckpt_id, 0, T_FP, u, 8 };
	cr_assert_eq(wr_arena_snapshot_begin(a, &e), 0);
	cr_assert_eq(wr_ckpt_writer_create(&cfg, a, &w), 0);
	cr_assert_eq(t_drive(w), 1, "%s", weir_last_error());
	cr_assert_eq(wr_ckpt_writer_result(w, res), 0);
	wr_arena_snapshot_end(a);
	wr_ckpt_writer_destroy(w);
	wr_uring_destroy(u);
	return plan.ckpt_id;
}

static uint32_t files_of(const char *dir, uint64_t id)
{
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "ckpt-%020llu-",
		 (unsigned long long)id);
	return count_files(dir, prefix);
}

static bool fd_open(int fd)
{
	return fd >= 0 && fcntl(fd, F_GETFD) != -1;
}

/* Writes and commits (retain 3) one core's checkpoint `id` of a, its
 * writer given files f: taken (their fds still open after create, the
 * writer's) or not (closed, the writer created its own). */
static void write_with_files(const char *dir, struct wr_arena *a,
			     uint64_t id, struct wr_ckpt_files *f, bool taken)
{
	struct wr_ckpt_core_result res;
	struct wr_ckpt_writer *w;
	struct wr_uring *u;
	int fd = f->fd_pages;
	uint32_t e;

	cr_assert_eq(wr_uring_create(16, &u), 0);
	struct wr_ckpt_writer_config cfg = { dir, id, 0, T_FP, u, 8 };
	cfg.files = f;
	cr_assert_eq(wr_arena_snapshot_begin(a, &e), 0);
	cr_assert_eq(wr_ckpt_writer_create(&cfg, a, &w), 0, "%s",
		     weir_last_error());
	cr_assert(f->fd_pages == -1 && f->fd_meta == -1,
		  "the writer left the files to the caller");
	cr_assert_eq(fd_open(fd), taken, "files %s", taken ? "not taken" :
		     "taken though not the writer's");
	cr_assert_eq(t_drive(w), 1, "%s", weir_last_error());
	cr_assert_eq(wr_ckpt_writer_result(w, &res), 0);
	wr_arena_snapshot_end(a);
	wr_ckpt_writer_destroy(w);
	cr_assert_not(fd_open(fd), "destroy closes the files it took");
	wr_uring_destroy(u);
	struct wr_ckpt_commit_info ci = { dir, id, 0, 1, 1, 1, 128, T_FP,
					  "test job", 3 };
	cr_assert_eq(wr_ckpt_commit(&ci, &res, 1), 0, "%s", weir_last_error());
	cr_assert_eq(files_of(dir, id), 2, "an unused file was not swept");
	cr_assert_eq(wr_ckpt_verify(dir, id, NULL, NULL), 0);
	struct wr_arena *got = t_restore(dir, 0, 64, NULL);
	t_assert_same(a, got);
	wr_arena_destroy(got);
}

/* Files created ahead as core 0's of checkpoint id, of kind log. */
static struct wr_ckpt_files files_ahead(const char *dir, uint64_t id,
					bool log)
{
	struct wr_ckpt_files f;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	cr_assert_geq(dfd, 0);
	cr_assert_eq(wr_ckpt_files_create(dfd, dir, id, 0, log, false, &f), 0);
	close(dfd);
	return f;
}

/* The committer prepares the next checkpoint: the plan start() would
 * make, and every core's two files.  A writer takes files that are its
 * own, and closes and replaces files of another kind, another checkpoint,
 * or ones unlinked since; every checkpoint verifies and restores, and the
 * commit sweeps the files no writer took (here core 1's, a log file). */
Test(ckpt, committer_prepare)
{
	char *dir = t_mkdir();
	struct wr_arena *a = t_arena(64);
	struct wr_ckpt_committer *cm;
	struct wr_ckpt_plan plan, want;
	struct wr_ckpt_files f[2];
	char name[64];
	int rc = -1;

	t_populate(a, 20, 3);
	cr_assert_eq(wr_ckpt_committer_create(&cm), 0);
	cr_assert_eq(wr_ckpt_plan_next(dir, &full_pol, 2, &want), 0);
	cr_assert_eq(wr_ckpt_committer_prepare(cm, dir, &full_pol, 2), 0);
	cr_assert_eq(wr_ckpt_committer_prepare(cm, dir, &full_pol, 2), -EBUSY);
	cr_assert_eq(wr_ckpt_committer_wait(cm, &rc), 0);
	cr_assert_eq(rc, 0, "%s", weir_last_error());
	wr_ckpt_committer_take(cm, &plan, f);
	cr_assert_eq(plan.ckpt_id, want.ckpt_id);
	cr_assert_eq(plan.parent_id, want.parent_id);
	cr_assert_eq(files_of(dir, plan.ckpt_id), 4, "2 cores x pages + meta");
	for (uint32_t i = 0; i < 2; i++) {
		cr_assert(fd_open(f[i].fd_pages) && fd_open(f[i].fd_meta));
		cr_assert(f[i].core == i && !f[i].log);
	}
	wr_ckpt_files_close(&f[1]);
	write_with_files(dir, a, plan.ckpt_id, &f[0], true);
	wr_ckpt_committer_destroy(cm);

	uint64_t id = plan.ckpt_id + 1;
	t_fill(a, 2, 40);
	f[0] = files_ahead(dir, id, true);	/* a log file: not the kind */
	write_with_files(dir, a, id, &f[0], false);

	t_fill(a, 3, 41);
	f[0] = files_ahead(dir, id + 5, false);	/* another checkpoint's */
	write_with_files(dir, a, id + 1, &f[0], false);
	cr_assert_eq(files_of(dir, id + 5), 2, "not swept: a later id");

	t_fill(a, 4, 42);
	f[0] = files_ahead(dir, id + 2, false);
	wr_ckpt_file_name(name, sizeof(name), id + 2, 0, "pages");
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(unlink(path), 0);		/* removed since */
	write_with_files(dir, a, id + 2, &f[0], false);

	wr_arena_destroy(a);
	t_rmdir(dir);
}

/* The committer thread commits (one at a time: -EBUSY while one is in
 * flight), aborts (the files go), and a request handed over before
 * destroy still completes. */
Test(ckpt, committer)
{
	char *dir = t_mkdir();
	struct wr_arena *a = t_arena(64);
	struct wr_ckpt_core_result res;
	struct wr_ckpt_committer *cm;
	uint64_t ids[4];
	uint32_t n;
	int rc = -1;

	t_populate(a, 40, 5);
	cr_assert_eq(wr_ckpt_committer_create(&cm), 0);
	cr_assert_eq(wr_ckpt_committer_poll(cm, &rc), -ENOENT);
	uint64_t id = write_uncommitted(dir, a, &res);
	struct wr_ckpt_commit_info ci = { dir, id, 0, 1, 1, 1, 128, T_FP,
					  "test job", 2 };
	cr_assert_eq(wr_ckpt_committer_commit(cm, &ci, &res, 1), 0);
	cr_assert_eq(wr_ckpt_committer_abort(cm, dir, id), -EBUSY);
	cr_assert_eq(wr_ckpt_committer_wait(cm, &rc), 0);
	cr_assert_eq(rc, 0, "%s", weir_last_error());
	cr_assert_eq(wr_ckpt_verify(dir, id, NULL, NULL), 0);

	t_fill(a, 3, 77);
	uint64_t id2 = write_uncommitted(dir, a, &res);
	cr_assert_gt(files_of(dir, id2), 0);
	cr_assert_eq(wr_ckpt_committer_abort(cm, dir, id2), 0);
	cr_assert_eq(wr_ckpt_committer_wait(cm, &rc), 0);
	cr_assert_eq(rc, 0);
	cr_assert_eq(files_of(dir, id2), 0, "an aborted checkpoint's files stay");

	uint64_t id3 = write_uncommitted(dir, a, &res);
	ci.ckpt_id = id3;
	cr_assert_eq(wr_ckpt_committer_commit(cm, &ci, &res, 1), 0);
	wr_ckpt_committer_destroy(cm);	/* lets it finish */
	cr_assert_eq(wr_ckpt_list(dir, ids, 4, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(wr_ckpt_verify(dir, id3, NULL, NULL), 0);
	struct wr_arena *got = t_restore(dir, 0, 64, NULL);
	t_assert_same(a, got);
	wr_arena_destroy(got);
	wr_arena_destroy(a);
	t_rmdir(dir);
}

