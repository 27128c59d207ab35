/*
 * diskfull_test.c — a checkpoint directory on a tmpfs with a size limit.
 *
 * TEST PLAN
 *   diskfull/enospc  tmpfs size=1600k (skipped visibly if mount fails, e.g.
 *                    not root): checkpoint 1 (1 MiB of pages) commits;
 *                    checkpoint 2 fails with -ENOSPC and a "disk full"
 *                    message, leaves no partial file, checkpoint 1 still
 *                    restores byte-identical; after a remount with more
 *                    room, checkpoint 3 commits and restores.
 */
#include <sys/mount.h>

#include "ckpt_util.h"

Test(diskfull, enospc)
{
	char *mnt = t_mkdir(), dir[512];
	struct wr_arena *a[1] = { t_arena(300) }, *ref = t_arena(300);
	struct wr_ckpt_policy pol = { .retain = 1 };
	uint64_t id;

	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1600k,mode=0700") != 0) {
		cr_log_warn("diskfull: SKIPPED, cannot mount tmpfs: %s",
			    strerror(errno));
		fprintf(stderr, "diskfull: SKIPPED (mount: %s)\n",
			strerror(errno));
		t_rmdir(mnt);
		cr_skip_test("cannot mount a tmpfs");
	}
	snprintf(dir, sizeof(dir), "%s/ckpt", mnt);
	t_populate(a[0], 256, 1);
	t_populate(ref, 256, 1);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	t_fill(a[0], 7, 2);
	struct t_run r = t_checkpoint(dir, a, 1, &pol, NULL);
	cr_assert_eq(r.err, -ENOSPC, "got %d", r.err);
	cr_assert_not_null(strstr(weir_last_error(), "disk full"), "%s",
			   weir_last_error());
	DIR *d = opendir(dir);
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		cr_assert_null(strstr(e->d_name, "00000000000000000002"),
			       "partial file %s left", e->d_name);
	closedir(d);
	struct wr_arena *got = t_restore(dir, 0, 300, &id);
	cr_assert_eq(id, 1);
	t_assert_same(ref, got);
	wr_arena_destroy(got);
	cr_assert_eq(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=8m"), 0);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	got = t_restore(dir, 0, 300, &id);
	cr_assert_eq(id, 2);
	t_assert_same(a[0], got);
	wr_arena_destroy(got);
	wr_ckpt_writer_cache_release(); /* the thread's cached dir fd */
	cr_assert_eq(umount(mnt), 0);
	wr_arena_destroy(a[0]);
	wr_arena_destroy(ref);
	t_rmdir(mnt);
}
