/*
 * parse_fuzz.c — libFuzzer target for the frame parser and capture reader.
 *
 * Input byte 0 picks the target:
 *   even: weir_parse() on bytes 2.. as one frame; byte 1 picks the link type
 *         from the supported list (or, rarely, an unsupported one);
 *   odd:  weir_pcap_open_mem() on bytes 1.., every frame read and parsed,
 *         then a replay check: seek back to a position taken mid-way and
 *         verify the same frames come out again; then weir_pcap_skip() on a
 *         clone, from the start, by 0..SKIP_CHECKS frames: it must land
 *         where that many next() calls did (same offset and index), or,
 *         short, right before a record next() ends or fails on; and, when
 *         bits 1-3 of byte 0 are set too (a stream's open costs ~0.5 ms:
 *         its ring and buffer), the same bytes read as a stream
 *         (weir_pcap_open_fd on a pipe that holds them all): the same open
 *         result, frames and last code.
 * Everything is copied into exact-size heap blocks so ASan sees any read
 * past the end.  Invariants checked (abort on breach): verdict range,
 * zero key padding, l3_offset < caplen on OK, replay equality.
 *
 * Build and run: tests/fuzz/run.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/net.h"

static const uint32_t linktypes[] = { 0, 1, 12, 14, 101, 108, 113, 228,
				      229, 276, 1, 1, 1, 1, 105 };

static void check_parse(const uint8_t *d, uint32_t caplen, uint32_t wire,
			uint32_t lt)
{
	uint8_t *copy = malloc(caplen ? caplen : 1);
	struct weir_packet pk;
	int rc;

	memcpy(copy, d, caplen);
	rc = weir_parse(copy, caplen, wire, lt, &pk);
	if (rc < 0 || rc > WEIR_PARSE_BAD_LINKTYPE)
		abort();
	if (rc == WEIR_PARSE_OK &&
	    (pk.key.pad[0] | pk.key.pad[1] || pk.l3_offset >= caplen ||
	     (pk.key.ip_version != 4 && pk.key.ip_version != 6) ||
	     pk.l4_offset > (wire > caplen ? wire : caplen) ||
	     pk.ip_bytes > (wire > caplen ? wire : caplen)))
		abort();
	free(copy);
}

#define FRAMES_MAX 100000

/* Sum of what identifies a frame, for the replay comparison. */
static uint64_t frame_sum(const struct weir_frame *f, const uint8_t *base)
{
	return (uint64_t)(f->data - base) * 31 + f->caplen + f->wire_len +
	       f->ts_ns + f->interface + f->linktype;
}

#define SKIP_CHECKS 8

/* A clone skipping k frames from the start lands where k next() did. */
static void check_skips(const struct weir_pcap *r,
			const struct weir_pcap_pos *start,
			const struct weir_pcap_pos *after, uint64_t frames)
{
	for (uint64_t k = 0; k <= SKIP_CHECKS; k++) {
		struct weir_pcap *c;
		struct weir_pcap_pos p;
		uint64_t skipped = 0;
		if (weir_pcap_clone(r, &c) != 0)
			abort();
		if (weir_pcap_seek(c, start) != 0)
			abort();
		int rc = weir_pcap_skip(c, k, &skipped);
		weir_pcap_tell(c, &p);
		/* Short only where next() found no more frames (it may have
		 * passed blocks that carry none, as next() would have). */
		if (skipped > k || (rc == 0 && skipped < k && skipped != frames))
			abort();
		if (skipped == k && (p.offset != after[k].offset ||
				     p.index != after[k].index))
			abort();
		weir_pcap_close(c);
	}
}

/* What identifies a frame wherever its bytes are: fields and bytes. */
static uint64_t frame_hash(const struct weir_frame *f)
{
	uint64_t h = f->caplen + 3 * (uint64_t)f->wire_len + 5 * f->ts_ns +
		     7 * (uint64_t)f->interface + 11 * (uint64_t)f->linktype;

	for (uint32_t i = 0; i < f->caplen; i++)
		h = h * 131 + f->data[i];
	return h;
}

/* The bytes as a stream (a pipe holding them all, then its end) give
 * what the buffer gave: open's code, the frames, the last next() code. */
static void check_stream(const uint8_t *d, size_t n, int open_rc,
			 uint64_t cnt, uint64_t hash, int last)
{
	struct weir_pcap *r;
	struct weir_frame f;
	uint64_t c = 0, h = 0;
	int p[2], rc;

	if (pipe(p) != 0)
		abort();
	if (n > 0 && write(p[1], d, n) != (ssize_t)n) /* n <= 64 KiB */
		abort();
	close(p[1]);
	rc = weir_pcap_open_fd(p[0], "fuzz", &r);
	if (rc != open_rc)
		abort();
	if (rc != 0)
		return;
	while (c < FRAMES_MAX) {
		rc = weir_pcap_next(r, &f);
		if (rc == -EAGAIN)
			continue;
		if (rc != 1)
			break;
		h += frame_hash(&f), c++;
	}
	if (c != cnt || h != hash || (c < FRAMES_MAX && rc != last))
		abort();
	weir_pcap_close(r);
}

static void fuzz_reader(const uint8_t *d, size_t n, bool stream)
{
	uint8_t *copy = malloc(n ? n : 1);
	struct weir_pcap_pos after[SKIP_CHECKS + 1];
	struct weir_pcap_pos pos[2];
	uint64_t sum[2] = { 0, 0 }, cnt[2] = { 0, 0 }, again = 0, s2 = 0;
	struct weir_frame f;
	struct weir_pcap *r;
	int k;

	uint64_t hash = 0;
	int rc, last = 0;

	memcpy(copy, d, n);
	rc = weir_pcap_open_mem(copy, n, "fuzz", &r);
	if (rc != 0) {
		if (stream)
			check_stream(d, n, rc, 0, 0, 0);
		free(copy);
		return;
	}
	weir_pcap_tell(r, &pos[0]);
	after[0] = pos[0];
	while (cnt[0] < FRAMES_MAX && (last = weir_pcap_next(r, &f)) == 1) {
		hash += frame_hash(&f);
		if (cnt[0] < SKIP_CHECKS)
			weir_pcap_tell(r, &after[cnt[0] + 1]);
		if (f.data < copy || f.data + f.caplen > copy + n)
			abort();
		check_parse(f.data, f.caplen, f.wire_len, f.linktype);
		sum[0] += frame_sum(&f, copy), cnt[0]++;
		if (cnt[0] > 3)
			sum[1] += frame_sum(&f, copy), cnt[1]++;
		if (cnt[0] == 3)
			weir_pcap_tell(r, &pos[1]);
	}
	/* Replay from the 3rd frame (or from the start): same frames. */
	k = cnt[0] >= 3;
	if (cnt[0] < FRAMES_MAX) {
		if (weir_pcap_seek(r, &pos[k]) != 0)
			abort();
		while (again <= cnt[k] && weir_pcap_next(r, &f) == 1)
			s2 += frame_sum(&f, copy), again++;
		if (again != cnt[k] || s2 != sum[k])
			abort();
	}
	check_skips(r, &pos[0], after, cnt[0]);
	weir_pcap_close(r);
	if (stream)
		check_stream(d, n, 0, cnt[0], hash, last);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (data[0] & 1) {
		fuzz_reader(data + 1, size - 1, (data[0] & 0x0e) == 0x0e);
		return 0;
	}
	uint32_t lt = linktypes[data[1] % (sizeof(linktypes) / 4)];
	uint32_t caplen = (uint32_t)(size - 2);
	/* Bit 1 of byte 0: claim a longer wire length (snaplen-cut). */
	check_parse(data + 2, caplen, (data[0] & 2) ? caplen + 1500 : caplen,
		    lt);
	return 0;
}
