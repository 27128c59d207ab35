/*
 * replay_bench.c — changelog replay alone (state/arena_log.c,
 * wr_arena_log_apply): ns per entry for a log of 8-byte writes at random
 * offsets of an arena, the shape a chain of counter updates has, without
 * the disk.  It is what restore of a changelog chain is bound by
 * (bench/RESULTS.md, docs/architecture.md "Changelog checkpoints").
 *
 *   replay_bench [--arena-mib M] [--entries N] [--reps R]
 *
 * Prints one JSON object: the best of R passes (the arena is written on
 * the first, so faults are out of the later ones).  Run two at once on two
 * CPUs (taskset -c 0 / -c 1) for the aggregate of two cores replaying
 * their own shards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state/arena.h"

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* 1 MiB chunks of WRITE entries of 8 bytes (16 bytes each) at uniformly
 * random 8-byte offsets of [0, bytes). */
static uint64_t *make_log(uint64_t bytes, size_t nch)
{
	size_t per = WR_ARENA_LOG_CHUNK / 16;
	uint64_t *log = malloc(nch * WR_ARENA_LOG_CHUNK), x = 88172645463325252ull;

	for (size_t i = 0; log != NULL && i < nch * per; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		log[2 * i] = wr_arena_log_word(WR_ARENA_LOG_WRITE, 8,
					       x % (bytes / 8) * 8);
		log[2 * i + 1] = i;
	}
	return log;
}

int main(int argc, char **argv)
{
	uint64_t mib = 1024, entries = 20000000, reps = 5;

	for (int i = 1; i + 1 < argc; i += 2) {
		uint64_t *v = strcmp(argv[i], "--arena-mib") == 0 ? &mib :
			      strcmp(argv[i], "--entries") == 0 ? &entries :
			      strcmp(argv[i], "--reps") == 0 ? &reps : NULL;
		if (v == NULL || (*v = strtoull(argv[i + 1], NULL, 10)) == 0) {
			fprintf(stderr, "usage: replay_bench [--arena-mib M] "
				"[--entries N] [--reps R]\n");
			return 2;
		}
	}
	uint64_t bytes = mib << 20;
	struct wr_arena_config cfg = { .cap_bytes = bytes + (64u << 20) };
	struct wr_arena *a;
	size_t nch = (entries + WR_ARENA_LOG_CHUNK / 16 - 1) /
		     (WR_ARENA_LOG_CHUNK / 16), bad;
	if (wr_arena_create(&cfg, &a) != 0 ||
	    wr_arena_replay_alloc(a, 0, (uint32_t)(bytes >> a->page_shift),
				  true) != 0)
		return 1;
	uint64_t *log = make_log(bytes, nch);
	double best = 1e30;
	for (uint64_t r = 0; log != NULL && r < reps; r++) {
		double t = now_s();
		for (size_t c = 0; c < nch; c++)
			if (wr_arena_log_apply(a, (uint8_t *)log +
					       c * WR_ARENA_LOG_CHUNK,
					       WR_ARENA_LOG_CHUNK, &bad) != 0)
				return 1;
		t = now_s() - t;
		best = t < best ? t : best;
	}
	if (log == NULL)
		return 1;
	printf("{\"bench\":\"replay\",\"arena_mib\":%llu,\"entries\":%zu,"
	       "\"ns_per_entry\":%.2f,\"reps\":%llu}\n",
	       (unsigned long long)mib, nch * (WR_ARENA_LOG_CHUNK / 16),
	       best * 1e9 / (double)(nch * (WR_ARENA_LOG_CHUNK / 16)),
	       (unsigned long long)reps);
	free(log);
	wr_arena_destroy(a);
	return 0;
}
