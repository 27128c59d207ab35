/*
 * ckpt_fuzz.c — libFuzzer target for what a restore parses out of
 * checkpoint files once their checksums have passed: a checksum is no
 * guard against a file made to pass it, so the parsers behind it must
 * hold on any bytes.
 *
 * Input byte 0 picks the target:
 *   even: bytes 1.. as a manifest's text (NULs made spaces, a final
 *         newline added), followed by the checksum line the parser wants,
 *         so the fuzzer gets past it; wr_ckpt_manifest_parse();
 *   odd:  bytes 2.. (cut to a multiple of 8) as a changelog chunk, byte 1
 *         picking the page size (4 KiB << (byte 1 % 5)):
 *         wr_arena_log_check(), then wr_arena_log_apply() onto a small
 *         arena kept across inputs (its pages allocated and freed by the
 *         entries themselves).
 * Invariants checked (abort on breach): a parsed manifest has cores and
 * chains in range and every file name NUL-terminated, without '/'; a
 * failing check or replay names an offset inside the chunk; the arena
 * stays valid (wr_arena_is_valid) whatever the replay did.
 *
 * Build and run: tests/fuzz/run.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "snapshot/ckpt.h"
#include "state/arena.h"

#define ARENA_PAGES 64u

static void check_ref(const struct wr_ckpt_file_ref *r)
{
	if (memchr(r->name, '\0', sizeof(r->name)) == NULL ||
	    strchr(r->name, '/') != NULL)
		abort();
}

static void check_manifest(const struct wr_ckpt_manifest *m)
{
	if (m->cores == 0 || m->cores > WR_CKPT_CORES_MAX || m->core == NULL)
		abort();
	for (uint32_t c = 0; c < m->cores; c++) {
		const struct wr_ckpt_core_info *ci = &m->core[c];
		if (ci->nchain == 0 || ci->nchain > WR_CKPT_CHAIN_MAX ||
		    ci->nlog > WR_CKPT_CHAIN_MAX)
			abort();
		for (uint32_t k = 0; k < ci->nchain; k++)
			check_ref(&ci->chain[k]);
		for (uint32_t k = 0; k < ci->nlog; k++)
			check_ref(&ci->log[k]);
		check_ref(&ci->meta);
	}
}

static void fuzz_manifest(const uint8_t *d, size_t n)
{
	char *text = malloc(n + 64);
	struct wr_ckpt_manifest m;
	uint64_t bad;
	size_t len = n;

	if (text == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		text[i] = d[i] ? (char)d[i] : ' ';
	if (len == 0 || text[len - 1] != '\n')
		text[len++] = '\n';
	len += (size_t)snprintf(text + len, 64, "checksum %016" PRIx64 "\n",
				XXH3_64bits(text, len));
	if (wr_ckpt_manifest_parse(text, len, &m, &bad) == 0) {
		check_manifest(&m);
		wr_ckpt_manifest_free(&m);
	} else if (bad > len) {
		abort();
	}
	free(text);
}

static struct wr_arena *arena_for(unsigned shift)
{
	static struct wr_arena *a[5];

	if (a[shift] == NULL) {
		struct wr_arena_config cfg = {
			(size_t)ARENA_PAGES << (12 + shift), 4096u << shift, 0 };
		if (wr_arena_create(&cfg, &a[shift]) != 0)
			abort();
	}
	return a[shift];
}

/* A list of a split: offsets inside the chunk, 8-aligned (a PAIR's second
 * write + WR_ARENA_LOG_HALF, after its first if both are listed),
 * ascending; a HALF only on a PAIR. */
static void check_list(const uint8_t *chunk, const uint32_t *l, size_t n,
		       size_t len)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t v = l[i] & ~WR_ARENA_LOG_META;
		uint32_t at = v & ~WR_ARENA_LOG_HALF;
		uint64_t w;
		if (at >= len || at % 8 != 0 ||
		    (i > 0 && v <= (l[i - 1] & ~WR_ARENA_LOG_META)))
			abort();
		memcpy(&w, chunk + at, 8);
		if ((v & WR_ARENA_LOG_HALF) && w >> 61 != WR_ARENA_LOG_PAIR)
			abort();
	}
}

/* The two-list split (the replay helper's) is check() with the arena's
 * bounds: it fails where check fails (at or before its offset), may fail
 * where check does not (a page past this arena), and when it does not,
 * its lists are well formed and carry the same ALLOCs and FREEs. */
static void fuzz_split(const struct wr_arena *a, const uint8_t *chunk,
		       size_t len, unsigned eighths, int check_err,
		       size_t check_bad)
{
	uint32_t *l0 = malloc(len / 8 * 4 + 4), *l1 = malloc(len / 8 * 4 + 4);
	struct wr_arena_log_split sp = { { l0, l1 }, eighths };
	size_t cnt[2], bad = 0, m0 = 0, m1 = 0;
	int err;

	if (l0 == NULL || l1 == NULL)
		abort();
	err = wr_arena_log_split(a, chunk, len, &sp, cnt, &bad);
	if ((err != 0 && (err != -EBADMSG || bad >= len)) ||
	    (check_err != 0 && (err == 0 || bad > check_bad)))
		abort();
	if (err == 0) {
		check_list(chunk, l0, cnt[0], len);
		check_list(chunk, l1, cnt[1], len);
		for (size_t i = 0; i < cnt[0]; i++)
			m0 += (l0[i] & WR_ARENA_LOG_META) != 0;
		for (size_t i = 0; i < cnt[1]; i++)
			m1 += (l1[i] & WR_ARENA_LOG_META) != 0;
		if (m0 != m1)
			abort();
	}
	free(l0);
	free(l1);
}

static void fuzz_log(const uint8_t *d, size_t n)
{
	unsigned shift = n > 0 ? d[0] % 5 : 0;
	struct wr_arena *a = arena_for(shift);
	size_t len = n > 1 ? (n - 1) & ~(size_t)7 : 0, bad = 0;
	uint8_t *chunk = malloc(len ? len : 1);
	int err;

	if (chunk == NULL)
		return;
	memcpy(chunk, d + 1, len);	/* exact size: ASan sees overreads */
	err = wr_arena_log_check(chunk, len, a->page_size, &bad);
	if (err != 0 && (err != -EBADMSG || bad >= len))
		abort();
	fuzz_split(a, chunk, len, n > 0 ? d[0] / 5 % 8 : 0, err, bad);
	err = wr_arena_log_apply(a, chunk, len, &bad);
	if (err != 0 && err != -EBADMSG && err != -ENOMEM)
		abort();
	if (err == -EBADMSG && bad >= len)
		abort();
	if (!wr_arena_is_valid(a))
		abort();
	free(chunk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_manifest(data + 1, size - 1);
	else
		fuzz_log(data + 1, size - 1);
	return 0;
}
