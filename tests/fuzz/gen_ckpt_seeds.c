/*
 * gen_ckpt_seeds.c — write seed inputs for ckpt_fuzz into a directory: a
 * manifest of two cores with a log chain (prefix byte 0; the fuzz target
 * adds the checksum line) and changelog chunks of every entry kind
 * (prefix byte 1, then the page-size byte).  Made here, not copied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/arena.h"

static void save(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static const char manifest[] =
	"\0weir-checkpoint-manifest 3\n"
	"id 7\nparent 6\ntime_unix_ms 1765000000000\nduration_us 1200\n"
	"cores 2\nkey_groups 128\npage_size 65536\n"
	"fingerprint 1234abcd5678ef00\njob flows\n"
	"core 0 epoch 7 view 12 written 3 chain 2 logs 1\n"
	"log ckpt-00000000000000000007-c0.log 1052672 00000000000000aa\n"
	"pages ckpt-00000000000000000004-c0.pages 790528 00000000000000bb\n"
	"pages ckpt-00000000000000000006-c0.pages 200704 00000000000000cc\n"
	"meta ckpt-00000000000000000007-c0.meta 8192 00000000000000dd\n"
	"core 1 epoch 7 view 9 written 9 chain 1 logs 0\n"
	"pages ckpt-00000000000000000007-c1.pages 593920 00000000000000ee\n"
	"meta ckpt-00000000000000000007-c1.meta 8192 00000000000000ff\n";

/* Entries on 4 KiB pages (page-size byte 0). */
static size_t log_chunk(uint64_t *w)
{
	size_t n = 0;

	w[n++] = wr_arena_log_word(WR_ARENA_LOG_ALLOC_ZEROED, 3, 0);
	w[n++] = wr_arena_log_word(WR_ARENA_LOG_WRITE, 8, 16);
	w[n++] = 42;
	w[n++] = wr_arena_log_word(WR_ARENA_LOG_WRITE, 24, 4096 + 8);
	w[n++] = 1, w[n++] = 2, w[n++] = 3;
	w[n++] = wr_arena_log_word(WR_ARENA_LOG_WRITE, 5, 8192 + 3);
	w[n++] = 0x0504030201ull;
	w[n++] = wr_arena_log_pair_word(8192 + 16, 32);
	w[n++] = 7, w[n++] = 9;
	w[n++] = wr_arena_log_word(WR_ARENA_LOG_ZERO, 64, 128);
	w[n++] = wr_arena_log_word(WR_ARENA_LOG_FREE, 1, 4096);
	w[n++] = wr_arena_log_word(WR_ARENA_LOG_ALLOC, 1, 4096);
	w[n++] = wr_arena_log_word(WR_ARENA_LOG_PAD, 8, 0);
	w[n++] = 0;
	w[n++] = wr_arena_log_word(WR_ARENA_LOG_FREE, 3, 0);
	return n;
}

int main(int argc, char **argv)
{
	uint8_t buf[512];
	uint64_t w[32];

	if (argc != 2) {
		fprintf(stderr, "usage: gen_ckpt_seeds DIR\n");
		return 2;
	}
	save(argv[1], "manifest", manifest, sizeof(manifest) - 1);
	size_t n = log_chunk(w) * 8;
	buf[0] = 1, buf[1] = 0;
	memcpy(buf + 2, w, n);
	save(argv[1], "log", buf, n + 2);
	buf[1] = 4;	/* the same bytes on 64 KiB pages */
	save(argv[1], "log64k", buf, n + 2);
	return 0;
}
