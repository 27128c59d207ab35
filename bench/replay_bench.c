/*
 * replay_bench.c — changelog replay alone (state/arena_log.c,
 * wr_arena_log_split + wr_arena_log_apply_list, as snapshot/load.c runs
 * them): ns per entry for a log of 8-byte writes at random
 * offsets of an arena, the shape a chain of counter updates has, without
 * the disk.  It is what restore of a changelog chain is bound by
 * (bench/RESULTS.md, docs/architecture.md "Changelog checkpoints").
 *
 *   replay_bench [--arena-mib M] [--entries N] [--reps R] [--threads 1|2]
 *                [--eighths E] [--split-only 1] [--pairs 1]
 *
 * --pairs 1: the writes two to a PAIR entry, as the seal writes them
 * (12 bytes a write instead of 16); ns_per_entry is then per write.
 *
 * --split-only 1: the first pass alone (checking and listing the entries,
 * nothing applied), on one thread.
 *
 * Prints one JSON object: the best of R passes (the arena is written on
 * the first, so faults are out of the later ones).  Run two at once on two
 * CPUs (taskset -c 0 / -c 1) for the aggregate of two cores replaying
 * their own shards.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* 8-byte writes in a 1 MiB chunk: 16 bytes each, or 12 in PAIRs. */
static size_t writes_per_chunk(bool pairs)
{
	return pairs ? WR_ARENA_LOG_CHUNK / 24 * 2 : WR_ARENA_LOG_CHUNK / 16;
}

static uint64_t next_off(uint64_t *x, uint64_t bytes)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x % (bytes / 8) * 8;
}

/* 1 MiB chunks of 8-byte writes at uniformly random 8-byte offsets of
 * [0, bytes): WRITE entries, or PAIRs (as the seal writes them; a PAD
 * fills each chunk's last 16 bytes). */
static uint64_t *make_log(uint64_t bytes, size_t nch, bool pairs)
{
	uint64_t *log = malloc(nch * WR_ARENA_LOG_CHUNK), x = 88172645463325252ull;
	size_t per = writes_per_chunk(pairs), k = 0;

	for (size_t c = 0; log != NULL && c < nch; c++) {
		uint64_t *w = log + c * (WR_ARENA_LOG_CHUNK / 8);
		for (size_t i = 0, j = 0; i < per; k++) {
			if (!pairs) {
				w[j++] = wr_arena_log_word(WR_ARENA_LOG_WRITE, 8,
							   next_off(&x, bytes));
				w[j++] = k, i++;
				continue;
			}
			uint64_t oa = next_off(&x, bytes);
			w[j++] = wr_arena_log_pair_word(oa, next_off(&x, bytes));
			w[j++] = k, w[j++] = ~k, i += 2;
		}
		if (pairs)	/* the chunk's last 16 bytes */
			w[WR_ARENA_LOG_CHUNK / 8 - 2] =
				wr_arena_log_word(WR_ARENA_LOG_PAD, 8, 0);
	}
	return log;
}

/*
 * Two threads, as a restore with a helper applies a chain: this one
 * splits each chunk (wr_arena_log_split: E of every 8 pages its own, 3 as
 * snapshot/load.c has it) and
 * applies its list, the helper applies the other list, at most LISTS
 * chunks behind.
 */
#define LISTS 4u

struct helper {
	struct wr_arena *a;
	const uint8_t *log;
	uint32_t *list[LISTS];
	size_t n[LISTS];
	_Atomic size_t posted, done;
	size_t nch;
	int err;
};

static void *helper_main(void *arg)
{
	struct helper *h = arg;
	size_t bad;

	for (size_t c = 0; c < h->nch; c++) {
		while (atomic_load_explicit(&h->posted, memory_order_acquire) <= c)
			;
		if (h->err == 0)
			h->err = wr_arena_log_apply_list(h->a, h->log + c *
							 WR_ARENA_LOG_CHUNK,
							 h->list[c % LISTS],
							 h->n[c % LISTS], NULL,
							 &bad);
		atomic_store_explicit(&h->done, c + 1, memory_order_release);
	}
	return NULL;
}

static int pass(struct wr_arena *a, const uint64_t *log, size_t nch,
		uint64_t threads, unsigned eighths, bool split_only,
		uint32_t **lists)
{
	struct helper h = { .a = a, .log = (const uint8_t *)log, .nch = nch };
	struct wr_arena_log_split sp = { { lists[0], NULL }, 8 };
	pthread_t th;
	size_t n[2], bad;
	int err = 0;

	if (threads > 1) {
		sp.eighths = eighths;
		for (unsigned i = 0; i < LISTS; i++)
			h.list[i] = lists[1 + i];
		if (pthread_create(&th, NULL, helper_main, &h) != 0)
			return -1;
	}
	for (size_t c = 0; c < nch; c++) {
		const uint8_t *ch = h.log + c * WR_ARENA_LOG_CHUNK;
		if (threads > 1) {
			while (c >= LISTS + atomic_load_explicit(&h.done,
						memory_order_acquire))
				;
			sp.list[1] = h.list[c % LISTS];
		}
		err |= wr_arena_log_split(a, ch, WR_ARENA_LOG_CHUNK, &sp, n, &bad);
		if (threads > 1) {
			h.n[c % LISTS] = n[1];
			atomic_store_explicit(&h.posted, c + 1,
					      memory_order_release);
		}
		if (!split_only)
			err |= wr_arena_log_apply_list(a, ch, sp.list[0], n[0],
						       NULL, &bad);
	}
	if (threads > 1)
		pthread_join(th, NULL);
	return err | h.err;
}

int main(int argc, char **argv)
{
	uint64_t mib = 1024, entries = 20000000, reps = 5, threads = 1;
	uint64_t eighths = 3, split_only = 0, pairs = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		uint64_t *v = strcmp(argv[i], "--arena-mib") == 0 ? &mib :
			      strcmp(argv[i], "--entries") == 0 ? &entries :
			      strcmp(argv[i], "--reps") == 0 ? &reps :
			      strcmp(argv[i], "--threads") == 0 ? &threads :
			      strcmp(argv[i], "--eighths") == 0 ? &eighths :
			      strcmp(argv[i], "--split-only") == 0 ?
			      &split_only :
			      strcmp(argv[i], "--pairs") == 0 ? &pairs : NULL;
		if (v == NULL || (*v = strtoull(argv[i + 1], NULL, 10)) == 0) {
			fprintf(stderr, "usage: replay_bench [--arena-mib M] "
				"[--entries N] [--reps R] [--threads 1|2] "
				"[--eighths 1..7] [--split-only 1] [--pairs 1]\n");
			return 2;
		}
	}
	if (threads > 2 || eighths > 7 || split_only > 1 || pairs > 1 ||
	    (split_only && threads > 1) || (pairs && mib > 8192)) {
		fprintf(stderr, "replay_bench: --threads is 1 or 2, --eighths "
			"1..7, --split-only 1 on one thread, --pairs 1 up to "
			"8192 MiB\n");
		return 2;
	}
	uint64_t bytes = mib << 20;
	struct wr_arena_config cfg = { .cap_bytes = bytes + (64u << 20) };
	struct wr_arena *a;
	size_t per = writes_per_chunk(pairs != 0);
	size_t nch = (entries + per - 1) / per;
	if (wr_arena_create(&cfg, &a) != 0 ||
	    wr_arena_replay_alloc(a, 0, (uint32_t)(bytes >> a->page_shift),
				  true) != 0)
		return 1;
	uint64_t *log = make_log(bytes, nch, pairs != 0);
	uint32_t *lists[1 + LISTS];
	for (unsigned i = 0; i < 1 + LISTS; i++)
		if ((lists[i] = malloc(WR_ARENA_LOG_CHUNK / 8 * 4)) == NULL)
			return 1;
	double best = 1e30;
	for (uint64_t r = 0; log != NULL && r < reps; r++) {
		double t = now_s();
		if (pass(a, log, nch, threads, (unsigned)eighths,
			 split_only != 0, lists) != 0)
			return 1;
		t = now_s() - t;
		best = t < best ? t : best;
	}
	if (log == NULL)
		return 1;
	printf("{\"bench\":\"replay\",\"arena_mib\":%llu,\"entries\":%zu,"
	       "\"ns_per_entry\":%.2f,\"reps\":%llu,\"threads\":%llu,"
	       "\"split_only\":%s,\"pairs\":%s}\n",
	       (unsigned long long)mib, nch * per,
	       best * 1e9 / (double)(nch * per),
	       (unsigned long long)reps, (unsigned long long)threads,
	       split_only ? "true" : "false", pairs ? "true" : "false");
	free(log);
	wr_arena_destroy(a);
	return 0;
}
