/*
 * cli_test.c — `weir checkpoint` run as a process (binary from $WEIR_BIN).
 *
 * TEST PLAN
 *   cli/help_and_usage  --help of each subcommand exits 0; unknown
 *                       subcommand, missing DIR, bad ID exit 2; so do a
 *                       DIR that does not exist or is a file, and an ID
 *                       that is not a committed checkpoint (a typo is not
 *                       a corrupt checkpoint: that is exit 1).
 *   cli/list_inspect    list shows both checkpoints; inspect shows cores,
 *                       key groups, the incremental parent file and the
 *                       source positions section.
 *   cli/verify          0 on a clean checkpoint; after a flipped byte 1,
 *                       naming the file and the offset on stderr.
 *   cli/changelog       a changelog checkpoint: list says "changelog" and
 *                       the bytes it wrote (its log, not the pages under
 *                       it), inspect names its log and the page file it
 *                       applies to, verify 0; a flipped byte in the log:
 *                       verify 1 naming the log file and its chunk.
 */
#include <sys/wait.h>

#include "ckpt_util.h"

/* Runs `weir checkpoint ARGS`, output into out; returns the exit status. */
static int run(const char *args, char *out, size_t n)
{
	const char *bin = getenv("WEIR_BIN");
	char cmd[1024];
	FILE *f;
	size_t got;

	cr_assert_not_null(bin, "WEIR_BIN not set");
	snprintf(cmd, sizeof(cmd), "%s checkpoint %s 2>&1", bin, args);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	got = fread(out, 1, n - 1, f);
	out[got] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Overwrites the byte at off of DIR/name with an 'X'. */
static void damage(const char *dir, const char *name, long off)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "printf 'X' | dd of=%s/%s bs=1 seek=%ld "
		 "conv=notrunc status=none", dir, name, off);
	cr_assert_eq(system(cmd), 0);
}

static char *two(void)
{
	char *dir = t_mkdir();
	struct wr_arena *a[2] = { t_arena(64), t_arena(64) };
	struct wr_ckpt_policy pol = { .retain = 3, .incremental = true };

	t_populate(a[0], 20, 1);
	t_populate(a[1], 10, 1);
	cr_assert_eq(t_checkpoint(dir, a, 2, &pol, NULL).err, 0);
	t_fill(a[0], 3, 9);
	cr_assert_eq(t_checkpoint(dir, a, 2, &pol, NULL).err, 0);
	wr_arena_destroy(a[0]);
	wr_arena_destroy(a[1]);
	return dir;
}

Test(cli, help_and_usage)
{
	char out[8192];

	cr_assert_eq(run("list --help", out, sizeof(out)), 0);
	cr_assert_not_null(strstr(out, "usage: weir checkpoint list"));
	cr_assert_eq(run("inspect --help", out, sizeof(out)), 0);
	cr_assert_eq(run("verify -h", out, sizeof(out)), 0);
	cr_assert_eq(run("", out, sizeof(out)), 2);
	cr_assert_eq(run("frobnicate /tmp", out, sizeof(out)), 2);
	cr_assert_eq(run("verify", out, sizeof(out)), 2);
	cr_assert_eq(run("verify /tmp x", out, sizeof(out)), 2);
	cr_assert_eq(run("list /tmp 3", out, sizeof(out)), 2);
	cr_assert_eq(run("verify /nonexistent/weir-ckpt", out, sizeof(out)), 2,
		     "%s", out);
	cr_assert_not_null(strstr(out, "No such file or directory"), "%s", out);
	cr_assert_eq(run("list /etc/passwd", out, sizeof(out)), 2, "%s", out);
	cr_assert_not_null(strstr(out, "not a directory"), "%s", out);
}

Test(cli, unknown_id)
{
	char *dir = two(), out[8192], args[600];

	snprintf(args, sizeof(args), "verify %s 7", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 2, "%s", out);
	cr_assert_not_null(strstr(out, "no committed checkpoint 7"), "%s", out);
	snprintf(args, sizeof(args), "inspect %s 2", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	t_rmdir(dir);
}

Test(cli, list_inspect)
{
	char *dir = two(), out[8192], args[600];

	snprintf(args, sizeof(args), "list %s", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "full"), "%s", out);
	cr_assert_not_null(strstr(out, "incremental"), "%s", out);
	snprintf(args, sizeof(args), "inspect %s", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "cores 2, key groups 128"), "%s", out);
	cr_assert_not_null(strstr(out, "parent file ckpt-00000000000000000001"
				  "-c0.pages"), "%s", out);
	cr_assert_not_null(strstr(out, "source positions: offset=201"), "%s",
			   out);
	snprintf(args, sizeof(args), "inspect %s 1", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "checkpoint 1 (full"), "%s", out);
	t_rmdir(dir);
}

Test(cli, verify)
{
	char *dir = two(), out[8192], args[600];

	snprintf(args, sizeof(args), "verify %s", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	damage(dir, "ckpt-00000000000000000001-c1.pages", 5000);
	/* checkpoint 2 is incremental: it needs that file too */
	cr_assert_eq(run(args, out, sizeof(out)), 1, "%s", out);
	cr_assert_not_null(strstr(out, "ckpt-00000000000000000001-c1.pages"));
	snprintf(args, sizeof(args), "verify %s 1", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 1, "%s", out);
	cr_assert_not_null(strstr(out, "ckpt-00000000000000000001-c1.pages: "
				  "offset 4096: checksum mismatch"), "%s", out);
	t_rmdir(dir);
}

Test(cli, changelog)
{
	char *dir = t_mkdir(), out[8192], args[600];
	struct wr_arena *a[1] = { t_arena(64) };
	struct wr_ckpt_policy pol = { .retain = 3, .changelog = true };

	cr_assert_eq(wr_arena_log_enable(a[0], 2u << 20, 1024), 0);
	t_populate(a[0], 20, 1);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	uint8_t *b = wr_arena_page_ptr(a[0], 5);
	cr_assert_eq(wr_arena_touch_range(a[0], b + 100, 16), 0);
	memset(b + 100, 7, 16);
	cr_assert_eq(t_checkpoint(dir, a, 1, &pol, NULL).err, 0);
	snprintf(args, sizeof(args), "list %s", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	/* 2: one 4096-byte block of log entries + header + trailer + meta */
	cr_assert_not_null(strstr(out, "changelog           20480"), "%s", out);
	snprintf(args, sizeof(args), "inspect %s", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "checkpoint 2 (changelog, parent 1)"),
			   "%s", out);
	cr_assert_not_null(strstr(out, "changelog ckpt-00000000000000000002-"
				  "c0.log"), "%s", out);
	cr_assert_not_null(strstr(out, "page file ckpt-00000000000000000001-"
				  "c0.pages"), "%s", out);
	snprintf(args, sizeof(args), "verify %s", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	damage(dir, "ckpt-00000000000000000002-c0.log", 4100);
	cr_assert_eq(run(args, out, sizeof(out)), 1, "%s", out);
	cr_assert_not_null(strstr(out, "ckpt-00000000000000000002-c0.log: "
				  "offset 4096: checksum mismatch in log chunk"),
			   "%s", out);
	wr_arena_destroy(a[0]);
	t_rmdir(dir);
}
