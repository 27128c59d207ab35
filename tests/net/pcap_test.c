/*
 * pcap_test.c — capture reader and writer.
 *
 * TEST PLAN
 *   Captures are written with our writer into memory (open_memstream) and
 *   read from an exactly-sized malloc() copy, so ASan flags any read past
 *   the end of the "file".
 *   1. Classic pcap: µs and ns magics × little and big endian; data,
 *      lengths, timestamps (µs truncation), link type; the modified
 *      (0xa1b2cd34) variant; a real file through mmap.
 *   2. pcapng: three interfaces with different link types and if_tsresol
 *      (default µs, 10^-9, 2^-20), both byte orders; two sections of
 *      opposite byte order; SPB, obsolete PB and unknown blocks.
 *   3. Replay: the position before every frame, restored on a fresh reader,
 *      gives the same frames again (classic and multi-section pcapng).
 *   4. Truncation at every byte: a cut in a file header fails open with
 *      -EBADMSG; a cut anywhere else delivers the whole records before it
 *      and counts one truncated record (none at a record boundary).
 *   5. Corrupt lengths: absurd caplen, impossible / mismatched block length,
 *      packet longer than its block, undefined interface, too many
 *      interfaces → -EBADMSG naming the offset, sticky until seek.
 *   6. Open errors and messages: missing file, directory, empty file, not a
 *      capture (magic in the message), unsupported link type (name in the
 *      message), pcapng bad byte-order magic, pcap version; pcapng with a
 *      mix of supported and unsupported interfaces skips and counts.
 *   7. Bad positions for seek → -EINVAL.
 *   8. Skip agrees with next: from the position before every frame, skip(n)
 *      for every n up to past the end lands where n calls of next land
 *      (position, frame index, stats), on captures.h captures: classic µs
 *      LE, ns BE, the modified variant, and pcapng of both first byte
 *      orders with section changes, an IDB in mid-section, unsupported-
 *      interface packets, SPB, obsolete PB and unknown blocks.
 *   9. Skip stops before what next must report: a corrupt record (no error
 *      raised, next then fails with the message a fresh reader gives), a
 *      truncated last record (counted by next only); a failed reader's
 *      skip returns its sticky error.
 *  8b. Bursts agree with next: from the position before every frame,
 *      next_burst(n) for n = 1, 3, 32 and past the end gives the frames, the
 *      count, the return value and the place (position, index, stats) of n
 *      calls of next, on the captures of 8 and on a truncated one; on a
 *      corrupt record it returns the frames before it and next's error.
 *  10. A clone reads the same frames from where the original was, on its
 *      own, with zeroed stats; closing it leaves the original working.
 *  11. Seeks among the positions of one pcapng file in a random order (the
 *      same-section fast path, reading on to late IDBs, full rebuilds) give
 *      the reference frames; a position claiming an IDB that lies after it
 *      is refused in-section as from a fresh reader.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weir/net.h"
#include "frames.h"
#include "captures.h"

struct cap {
	char *buf;
	size_t len;
	FILE *f;
	struct weir_pcap_writer *w;
	size_t bounds[64]; /* file length after each record */
	int n_bounds;
};

struct rd {
	uint8_t *copy;
	struct weir_pcap *r;
};

static void cap_begin(struct cap *c, enum weir_capture_format fmt, int be,
		      uint32_t lt, uint8_t tsresol)
{
	struct weir_pcap_writer_config cfg = {
		.format = fmt, .big_endian = be, .linktype = lt,
		.tsresol = tsresol,
	};

	memset(c, 0, sizeof(*c));
	c->f = open_memstream(&c->buf, &c->len);
	cr_assert_not_null(c->f);
	cr_assert_eq(weir_pcap_writer_open(c->f, &cfg, &c->w), 0);
}

static void cap_mark(struct cap *c)
{
	fflush(c->f);
	c->bounds[c->n_bounds++] = c->len;
}

static void cap_frame(struct cap *c, uint32_t ifid, uint64_t ts,
		      const struct fb *f)
{
	cr_assert_eq(weir_pcap_writer_write(c->w, ifid, ts, f->b, f->len,
					    f->len), 0);
	cap_mark(c);
}

static void cap_end(struct cap *c)
{
	cr_assert_eq(weir_pcap_writer_close(c->w), 0);
	fclose(c->f);
}

/* Open `len` bytes of `buf` from an exact-size copy. */
static int rd_open(struct rd *d, const void *buf, size_t len)
{
	d->copy = malloc(len ? len : 1);
	memcpy(d->copy, buf, len);
	return weir_pcap_open_mem(d->copy, len, "test.pcap", &d->r);
}

static void rd_close(struct rd *d)
{
	weir_pcap_close(d->r);
	free(d->copy);
	d->r = NULL;
}

static void frame_n(struct fb *f, int i)
{
	fb_eth_ipv4_l4(f, 6, 0x0a000001, 0x0a000002, (uint16_t)(1000 + i), 80,
		       (uint32_t)(i * 7 % 50));
}

static void expect_frame(const struct weir_frame *fr, const struct fb *f,
			 uint64_t ts, uint32_t lt, uint32_t ifid)
{
	cr_assert_eq(fr->caplen, f->len);
	cr_expect_eq(fr->wire_len, f->len);
	cr_expect_arr_eq(fr->data, f->b, f->len);
	cr_expect_eq(fr->ts_ns, ts, "ts %llu, want %llu",
		     (unsigned long long)fr->ts_ns, (unsigned long long)ts);
	cr_expect_eq(fr->linktype, lt);
	cr_expect_eq(fr->interface, ifid);
}

Test(pcap, classic_magics_and_byte_orders)
{
	static const uint8_t magic[4][4] = {
		{ 0xd4, 0xc3, 0xb2, 0xa1 }, { 0xa1, 0xb2, 0xc3, 0xd4 },
		{ 0x4d, 0x3c, 0xb2, 0xa1 }, { 0xa1, 0xb2, 0x3c, 0x4d },
	};
	const uint64_t ts = 1700000000123456789ull;
	struct weir_pcap_stats st;
	struct weir_frame fr;
	struct cap c;
	struct rd d;
	struct fb f;

	for (int v = 0; v < 4; v++) {
		int ns = v >> 1, be = v & 1;

		cap_begin(&c, ns ? WEIR_CAPTURE_PCAP_NS : WEIR_CAPTURE_PCAP_US,
			  be, 1, 0);
		for (int i = 0; i < 3; i++)
			frame_n(&f, i), cap_frame(&c, 0, ts + (uint64_t)i, &f);
		cap_end(&c);
		cr_assert_arr_eq(c.buf, magic[v], 4, "magic of variant %d", v);
		cr_assert_eq(rd_open(&d, c.buf, c.len), 0, "%s",
			     weir_last_error());
		cr_expect_eq(weir_pcap_linktype(d.r), 1);
		for (int i = 0; i < 3; i++) {
			uint64_t t = ts + (uint64_t)i;

			cr_assert_eq(weir_pcap_next(d.r, &fr), 1);
			frame_n(&f, i);
			expect_frame(&fr, &f, ns ? t : t / 1000 * 1000, 1, 0);
		}
		cr_expect_eq(weir_pcap_next(d.r, &fr), 0);
		cr_expect_eq(weir_pcap_next(d.r, &fr), 0);
		weir_pcap_get_stats(d.r, &st);
		cr_expect_eq(st.frames, 3);
		cr_expect_eq(st.truncated, 0);
		cr_expect_eq(weir_pcap_size(d.r), c.len);
		rd_close(&d);
		free(c.buf);
	}
}

Test(pcap, classic_modified_magic_and_snaplen_cut)
{
	uint8_t b[24 + 24 + 60] = { 0x34, 0xcd, 0xb2, 0xa1, 2, 0, 4, 0 };
	struct weir_frame fr;
	struct rd d;

	b[16] = 0xff, b[17] = 0xff; /* snaplen 65535 */
	b[20] = 101;                /* LINKTYPE_RAW */
	b[24 + 8] = 60;             /* caplen 60 */
	b[24 + 12] = 0xdc, b[24 + 13] = 5; /* wire 1500 */
	b[24 + 24] = 0x45;
	cr_assert_eq(rd_open(&d, b, sizeof(b)), 0, "%s", weir_last_error());
	cr_assert_eq(weir_pcap_next(d.r, &fr), 1);
	cr_expect_eq(fr.caplen, 60);
	cr_expect_eq(fr.wire_len, 1500);
	cr_expect_eq(fr.data, d.copy + 48);
	cr_expect_eq(fr.linktype, 101);
	cr_expect_eq(weir_pcap_next(d.r, &fr), 0);
	rd_close(&d);
}

/* Interfaces: 0 Ethernet µs, 1 RAW ns, 2 SLL 2^-20 s. */
static void write_three_ifaces(struct cap *c, int be, uint64_t ts)
{
	struct fb f;
	uint32_t id;

	cap_begin(c, WEIR_CAPTURE_PCAPNG, be, 1, 0);
	cr_assert_eq(weir_pcap_writer_add_interface(c->w, 101, 9, &id), 0);
	cr_assert_eq(id, 1);
	cr_assert_eq(weir_pcap_writer_add_interface(c->w, 113, 0x80 | 20, &id),
		     0);
	cap_mark(c);
	for (int i = 0; i < 9; i++)
		frame_n(&f, i), cap_frame(c, (uint32_t)i % 3, ts + (uint64_t)i, &f);
	cap_end(c);
}

static uint64_t expect_ts(uint32_t ifid, uint64_t t)
{
	if (ifid == 0)
		return t / 1000 * 1000;
	if (ifid == 1)
		return t;
	/* 2^-20 s units: floor(t * 2^20 / 1e9) units, back to ns (floor). */
	uint64_t u = (uint64_t)(((unsigned __int128)t << 20) / 1000000000u);
	return (uint64_t)(((unsigned __int128)u * 1000000000u) >> 20);
}

Test(pcap, pcapng_interfaces_and_tsresol)
{
	static const uint32_t lts[3] = { 1, 101, 113 };
	const uint64_t ts = 1700000000987654321ull;
	struct weir_frame fr;
	struct cap c;
	struct rd d;
	struct fb f;

	for (int be = 0; be < 2; be++) {
		write_three_ifaces(&c, be, ts);
		cr_assert_eq(rd_open(&d, c.buf, c.len), 0, "%s",
			     weir_last_error());
		cr_expect_eq(weir_pcap_linktype(d.r), 1);
		for (uint32_t i = 0; i < 9; i++) {
			cr_assert_eq(weir_pcap_next(d.r, &fr), 1);
			frame_n(&f, (int)i);
			expect_frame(&fr, &f, expect_ts(i % 3, ts + i),
				     lts[i % 3], i % 3);
		}
		cr_expect_eq(weir_pcap_next(d.r, &fr), 0);
		rd_close(&d);
		free(c.buf);
	}
}

/* A big-endian section (Ethernet) then a little-endian one (RAW, ns). */
static void write_two_sections(char **buf, size_t *len, size_t *bounds,
			       int *nb)
{
	struct cap a, b;
	struct fb f;

	cap_begin(&a, WEIR_CAPTURE_PCAPNG, 1, 1, 0);
	for (int i = 0; i < 5; i++)
		frame_n(&f, i), cap_frame(&a, 0, 1000000u * (uint64_t)i, &f);
	cap_end(&a);
	cap_begin(&b, WEIR_CAPTURE_PCAPNG, 0, 101, 9);
	for (int i = 5; i < 10; i++)
		frame_n(&f, i), cap_frame(&b, 0, 1000000u * (uint64_t)i, &f);
	cap_end(&b);
	*len = a.len + b.len;
	*buf = malloc(*len);
	memcpy(*buf, a.buf, a.len);
	memcpy(*buf + a.len, b.buf, b.len);
	*nb = 0;
	for (int i = 0; i < a.n_bounds; i++)
		bounds[(*nb)++] = a.bounds[i];
	for (int i = 0; i < b.n_bounds; i++)
		bounds[(*nb)++] = a.len + b.bounds[i];
	free(a.buf);
	free(b.buf);
}

Test(pcap, pcapng_sections_of_both_byte_orders)
{
	struct weir_frame fr;
	size_t len, bounds[32];
	char *buf;
	struct rd d;
	struct fb f;
	int nb;

	write_two_sections(&buf, &len, bounds, &nb);
	cr_assert_eq(rd_open(&d, buf, len), 0, "%s", weir_last_error());
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(weir_pcap_next(d.r, &fr), 1, "frame %d", i);
		frame_n(&f, i);
		expect_frame(&fr, &f, 1000000u * (uint64_t)i, i < 5 ? 1 : 101,
			     0);
	}
	cr_expect_eq(weir_pcap_next(d.r, &fr), 0);
	rd_close(&d);
	free(buf);
}

static void raw32(struct cap *c, uint32_t v)
{
	cr_assert_eq(weir_pcap_writer_raw(c->w, &v, 4), 0); /* LE file */
}

Test(pcap, pcapng_spb_opb_and_unknown_blocks)
{
	struct weir_pcap_stats st;
	struct weir_frame fr;
	struct cap c;
	struct rd d;
	struct fb f;

	cap_begin(&c, WEIR_CAPTURE_PCAPNG, 0, 1, 0);
	raw32(&c, 0xbad), raw32(&c, 16), raw32(&c, 0x12345678), raw32(&c, 16);
	frame_n(&f, 1); /* SPB: 3 bytes of padding */
	raw32(&c, 3), raw32(&c, 16 + ((f.len + 3) & ~3u)), raw32(&c, f.len);
	weir_pcap_writer_raw(c.w, f.b, f.len);
	weir_pcap_writer_raw(c.w, "\0\0\0", (4 - f.len % 4) % 4);
	raw32(&c, 16 + ((f.len + 3) & ~3u));
	frame_n(&f, 2); /* obsolete packet block, interface 0, drops 7 */
	raw32(&c, 2), raw32(&c, 32 + ((f.len + 3) & ~3u)), raw32(&c, 7 << 16);
	raw32(&c, 0), raw32(&c, 5000000), raw32(&c, f.len), raw32(&c, f.len);
	weir_pcap_writer_raw(c.w, f.b, f.len);
	weir_pcap_writer_raw(c.w, "\0\0\0", (4 - f.len % 4) % 4);
	raw32(&c, 32 + ((f.len + 3) & ~3u));
	cap_end(&c);
	cr_assert_eq(rd_open(&d, c.buf, c.len), 0, "%s", weir_last_error());
	cr_assert_eq(weir_pcap_next(d.r, &fr), 1);
	frame_n(&f, 1);
	expect_frame(&fr, &f, 0, 1, 0); /* SPB: no timestamp */
	cr_assert_eq(weir_pcap_next(d.r, &fr), 1);
	frame_n(&f, 2);
	expect_frame(&fr, &f, 5000000000ull, 1, 0);
	cr_expect_eq(weir_pcap_next(d.r, &fr), 0);
	weir_pcap_get_stats(d.r, &st);
	cr_expect_eq(st.skipped_blocks, 1);
	cr_expect_eq(st.frames, 2);
	rd_close(&d);
	free(c.buf);
}

/* Read the rest of the capture into arrays; returns the count. */
static int read_rest(struct weir_pcap *r, struct weir_frame *fr,
		     struct weir_pcap_pos *pos, int max)
{
	int n = 0;

	while (n < max) {
		if (pos != NULL)
			weir_pcap_tell(r, &pos[n]);
		int rc = weir_pcap_next(r, &fr[n]);

		cr_assert_geq(rc, 0, "%s", weir_last_error());
		if (rc == 0)
			break;
		n++;
	}
	return n;
}

static void check_replay(const char *buf, size_t len, int want_n)
{
	struct weir_frame ref[64], again[64];
	struct weir_pcap_pos pos[65], p;
	struct rd d, e;
	int n, k, m;

	cr_assert_eq(rd_open(&d, buf, len), 0, "%s", weir_last_error());
	n = read_rest(d.r, ref, pos, 64);
	cr_assert_eq(n, want_n);
	for (k = 0; k <= n; k++) {
		/* A fresh reader, as after a restart from a checkpoint. */
		cr_assert_eq(rd_open(&e, buf, len), 0);
		cr_assert_eq(weir_pcap_seek(e.r, &pos[k]), 0, "pos %d: %s", k,
			     weir_last_error());
		m = read_rest(e.r, again, NULL, 64);
		cr_assert_eq(m, n - k, "from pos %d: %d frames, want %d", k, m,
			     n - k);
		for (int i = 0; i < m; i++) {
			cr_assert_eq(again[i].data - e.copy,
				     ref[k + i].data - d.copy);
			cr_assert_eq(again[i].ts_ns, ref[k + i].ts_ns);
			cr_assert_eq(again[i].linktype, ref[k + i].linktype);
			cr_assert_eq(again[i].interface, ref[k + i].interface);
		}
		weir_pcap_tell(e.r, &p);
		cr_expect_eq(p.index, (uint64_t)n);
		cr_expect_eq(p.offset, len);
		rd_close(&e);
	}
	/* The same reader can go back, too. */
	cr_assert_eq(weir_pcap_seek(d.r, &pos[n / 2]), 0);
	cr_expect_eq(read_rest(d.r, again, NULL, 64), n - n / 2);
	rd_close(&d);
}

Test(pcap, replay_position_gives_the_same_frames)
{
	size_t len, bounds[32];
	struct cap c;
	char *buf;
	int nb;

	write_two_sections(&buf, &len, bounds, &nb);
	check_replay(buf, len, 10);
	free(buf);
	write_three_ifaces(&c, 1, 42);
	check_replay(c.buf, c.len, 9);
	free(c.buf);
	for (int v = 0; v < 2; v++) {
		struct fb f;

		cap_begin(&c, v ? WEIR_CAPTURE_PCAP_NS : WEIR_CAPTURE_PCAP_US,
			  v, 1, 0);
		for (int i = 0; i < 7; i++)
			frame_n(&f, i), cap_frame(&c, 0, (uint64_t)i, &f);
		cap_end(&c);
		check_replay(c.buf, c.len, 7);
		free(c.buf);
	}
}

/* Cut the capture at every length: whole records before the cut are
 * delivered, a partial one is counted, nothing fails after open. */
static void check_cuts(const char *buf, size_t len, const size_t *bounds,
		       int nb, size_t hdr_len, int frames_before_bound0)
{
	struct weir_frame fr[64];
	struct weir_pcap_stats st;
	struct rd d;

	for (size_t cut = 0; cut <= len; cut++) {
		int rc = rd_open(&d, buf, cut), want = 0, at_bound = 0;

		if (cut < hdr_len) {
			cr_assert_lt(rc, 0, "cut %zu opened", cut);
			cr_assert(rc == -EBADMSG || rc == -EINVAL);
			free(d.copy);
			continue;
		}
		cr_assert_eq(rc, 0, "cut %zu: %s", cut, weir_last_error());
		for (int b = 0; b < nb; b++) {
			if (bounds[b] <= cut)
				want = b + frames_before_bound0;
			at_bound |= bounds[b] == cut;
		}
		cr_assert_eq(read_rest(d.r, fr, NULL, 64), want, "cut %zu", cut);
		weir_pcap_get_stats(d.r, &st);
		cr_assert_eq(st.truncated, (at_bound || cut == hdr_len) ? 0u : 1u,
			     "cut %zu", cut);
		rd_close(&d);
	}
}

Test(pcap, truncation_at_every_byte)
{
	struct cap c;
	struct fb f;

	for (int be = 0; be < 2; be++) {
		cap_begin(&c, WEIR_CAPTURE_PCAP_US, be, 1, 0);
		cap_mark(&c);
		for (int i = 0; i < 4; i++)
			frame_n(&f, i), cap_frame(&c, 0, 1, &f);
		cap_end(&c);
		check_cuts(c.buf, c.len, c.bounds, c.n_bounds, 24, 0);
		free(c.buf);
		/* pcapng: the SHB must be whole to open; bound 0 is the
		 * end of the IDB. */
		cap_begin(&c, WEIR_CAPTURE_PCAPNG, be, 1, 9);
		cap_mark(&c);
		for (int i = 0; i < 4; i++)
			frame_n(&f, i), cap_frame(&c, 0, 1, &f);
		cap_end(&c);
		check_cuts(c.buf, c.len, c.bounds, c.n_bounds, 28, 0);
		free(c.buf);
	}
}

static void put_le32(char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* next() fails with -EBADMSG, the message names `what` and the offset,
 * and the error is sticky. */
static void expect_corrupt(const char *buf, size_t len, const char *what,
			   size_t off)
{
	struct weir_frame fr[8];
	char want_off[64];
	struct rd d;
	int rc;

	cr_assert_eq(rd_open(&d, buf, len), 0, "%s", weir_last_error());
	do
		rc = weir_pcap_next(d.r, fr);
	while (rc == 1);
	cr_assert_eq(rc, -EBADMSG, "rc %d for %s", rc, what);
	cr_expect(strstr(weir_last_error(), what) != NULL, "message: %s",
		  weir_last_error());
	snprintf(want_off, sizeof(want_off), "at offset %zu", off);
	cr_expect(strstr(weir_last_error(), want_off) != NULL, "message: %s",
		  weir_last_error());
	cr_expect_eq(weir_pcap_next(d.r, fr), -EBADMSG);
	rd_close(&d);
}

Test(pcap, corrupt_lengths)
{
	struct weir_frame fr;
	struct cap c;
	struct rd d;
	struct fb f;
	size_t epb;

	cap_begin(&c, WEIR_CAPTURE_PCAP_US, 0, 1, 0);
	frame_n(&f, 0), cap_frame(&c, 0, 1, &f);
	frame_n(&f, 1), cap_frame(&c, 0, 1, &f);
	cap_end(&c);
	put_le32(c.buf + c.bounds[0] + 8, 0xfffffff0u);
	expect_corrupt(c.buf, c.len, "absurd captured length", c.bounds[0]);
	free(c.buf);

	cap_begin(&c, WEIR_CAPTURE_PCAPNG, 0, 1, 0);
	cap_mark(&c);
	frame_n(&f, 0), cap_frame(&c, 0, 1, &f);
	frame_n(&f, 1), cap_frame(&c, 0, 1, &f);
	cap_end(&c);
	epb = c.bounds[1];
	put_le32(c.buf + epb + 4, 7);
	expect_corrupt(c.buf, c.len, "impossible length", epb);
	put_le32(c.buf + epb + 4, 8);
	expect_corrupt(c.buf, c.len, "impossible length", epb);
	put_le32(c.buf + epb + 4, 0xfffffff0u); /* beyond the end: truncated */
	cr_assert_eq(rd_open(&d, c.buf, c.len), 0);
	cr_expect_eq(weir_pcap_next(d.r, &fr), 1);
	cr_expect_eq(weir_pcap_next(d.r, &fr), 0);
	rd_close(&d);
	put_le32(c.buf + epb + 4, 32); /* trailer no longer matches */
	expect_corrupt(c.buf, c.len, "trailing length", epb);
	put_le32(c.buf + epb + 4, (uint32_t)(c.len - epb));
	put_le32(c.buf + epb + 20, 1000); /* caplen > block */
	expect_corrupt(c.buf, c.len, "longer than its block", epb);
	put_le32(c.buf + epb + 20, 45);
	put_le32(c.buf + epb + 8, 5); /* interface 5 */
	expect_corrupt(c.buf, c.len, "undefined interface", epb);
	free(c.buf);
}

Test(pcap, too_many_interfaces)
{
	struct cap c;
	uint32_t id;

	cap_begin(&c, WEIR_CAPTURE_PCAPNG, 0, 1, 0);
	for (int i = 1; i < WEIR_PCAP_INTERFACES_MAX; i++)
		cr_assert_eq(weir_pcap_writer_add_interface(c.w, 1, 0, &id), 0);
	cr_assert_eq(weir_pcap_writer_add_interface(c.w, 1, 0, &id), -E2BIG);
	cap_mark(&c);
	cap_end(&c);
	/* Splice one more IDB in by hand (64 + 1). */
	char *buf = malloc(c.len + 20);
	memcpy(buf, c.buf, c.len);
	memcpy(buf + c.len, c.buf + 28, 20);
	expect_corrupt(buf, c.len + 20, "more interfaces", c.len);
	free(buf);
	free(c.buf);
}

static void expect_open_error(int rc, int want, const char *msg_part)
{
	cr_assert_eq(rc, want, "rc %d, want %d (%s)", rc, want,
		     weir_last_error());
	cr_expect(strstr(weir_last_error(), msg_part) != NULL,
		  "message \"%s\" lacks \"%s\"", weir_last_error(), msg_part);
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(p, 1, n, f), n);
	fclose(f);
}

Test(pcap, open_errors_and_messages)
{
	char dir[] = "/tmp/weir_pcap_test_XXXXXX", path[128];
	uint8_t hdr[24] = { 0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0 };
	struct weir_pcap *r = NULL;
	struct rd d;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing.pcap", dir);
	expect_open_error(weir_pcap_open(path, &r), -ENOENT,
			  "No such file or directory");
	cr_expect(strstr(weir_last_error(), path) != NULL);
	expect_open_error(weir_pcap_open(dir, &r), -EISDIR, dir);
	/* A FIFO with no writer: refused at once, not a hang in open(). */
	snprintf(path, sizeof(path), "%s/pipe.pcap", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	expect_open_error(weir_pcap_open(path, &r), -ENOTSUP,
			  "not a regular file (a pipe or a device)");
	unlink(path);
	expect_open_error(weir_pcap_open("/dev/null", &r), -ENOTSUP,
			  "not a regular file");
	snprintf(path, sizeof(path), "%s/empty.pcap", dir);
	write_file(path, "", 0);
	expect_open_error(weir_pcap_open(path, &r), -EBADMSG, "truncated");
	snprintf(path, sizeof(path), "%s/text.pcap", dir);
	write_file(path, "<?xml version", 13);
	expect_open_error(weir_pcap_open(path, &r), -EINVAL,
			  "is not a pcap or pcapng file (magic 0x3c3f786d)");
	hdr[20] = 105;
	snprintf(path, sizeof(path), "%s/wifi.pcap", dir);
	write_file(path, hdr, 24);
	expect_open_error(weir_pcap_open(path, &r), -ENOTSUP,
			  "link type 105 (IEEE802_11) is not supported");
	cr_expect(strstr(weir_last_error(), "wifi.pcap") != NULL);
	hdr[20] = 1;
	write_file(path, hdr, 24); /* now a good, empty capture, via mmap */
	cr_assert_eq(weir_pcap_open(path, &r), 0, "%s", weir_last_error());
	weir_pcap_close(r);
	expect_open_error(rd_open(&d, hdr, 10), -EBADMSG,
			  "truncated pcap file header (10 of 24 bytes)");
	free(d.copy);
	hdr[4] = 3;
	expect_open_error(rd_open(&d, hdr, 24), -EBADMSG, "version 3.4");
	free(d.copy);
	weir_pcap_close(NULL);
	unlink(path);
	snprintf(path, sizeof(path), "%s/empty.pcap", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/text.pcap", dir);
	unlink(path);
	rmdir(dir);
}

Test(pcap, real_file_through_mmap)
{
	char path[] = "/tmp/weir_pcap_file_XXXXXX";
	struct weir_pcap_writer_config cfg = { .format = WEIR_CAPTURE_PCAPNG,
					       .linktype = 1 };
	struct weir_pcap_writer *w;
	struct weir_pcap *r;
	struct weir_frame fr;
	struct fb f;
	int fd = mkstemp(path);
	FILE *out = fdopen(fd, "wb");

	cr_assert_eq(weir_pcap_writer_open(out, &cfg, &w), 0);
	for (int i = 0; i < 100; i++)
		frame_n(&f, i), weir_pcap_writer_write(w, 0, 5, f.b, f.len, f.len);
	cr_assert_eq(weir_pcap_writer_close(w), 0);
	fclose(out);
	cr_assert_eq(weir_pcap_open(path, &r), 0, "%s", weir_last_error());
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(weir_pcap_next(r, &fr), 1);
		frame_n(&f, i);
		expect_frame(&fr, &f, 0, 1, 0); /* 5 ns is 0 µs */
	}
	cr_expect_eq(weir_pcap_next(r, &fr), 0);
	weir_pcap_close(r);
	unlink(path);
}

/* A pcapng header: SHB (28 bytes), byte order from `bom`. */
static size_t shb(char *b, uint32_t bom)
{
	uint32_t w[7] = { 0x0a0d0d0a, 28, bom, 1, 0xffffffffu, 0xffffffffu, 28 };

	memcpy(b, w, 28);
	return 28;
}

static size_t idb(char *b, uint16_t lt)
{
	uint32_t w[5] = { 1, 20, lt, 0, 20 };

	memcpy(b, w, 20);
	return 20;
}

static size_t epb(char *b, uint32_t ifid)
{
	uint32_t w[8 + 10] = { 6, 72, ifid, 0, 0, 40, 40 };

	w[7] = 0x00000045; /* IPv4 header starts: raw IP */
	w[17] = 72;
	memcpy(b, w, 72);
	return 72;
}

Test(pcap, pcapng_link_types_at_open)
{
	struct weir_pcap_stats st;
	struct weir_frame fr;
	char b[512];
	size_t n;
	struct rd d;

	n = shb(b, 0x12345678); /* byte-order magic neither way */
	expect_open_error(rd_open(&d, b, n), -EBADMSG, "byte-order magic");
	free(d.copy);
	n = shb(b, 0x1a2b3c4d);
	n += idb(b + n, 105);
	n += epb(b + n, 0);
	expect_open_error(rd_open(&d, b, n), -ENOTSUP,
			  "link type 105 (IEEE802_11) is not supported");
	free(d.copy);
	n = shb(b, 0x1a2b3c4d);
	n += idb(b + n, 105);
	n += idb(b + n, 101);
	n += epb(b + n, 0);
	n += epb(b + n, 1);
	n += epb(b + n, 0);
	cr_assert_eq(rd_open(&d, b, n), 0, "%s", weir_last_error());
	cr_assert_eq(weir_pcap_next(d.r, &fr), 1);
	cr_expect_eq(fr.interface, 1);
	cr_expect_eq(fr.linktype, 101);
	cr_expect_eq(weir_pcap_next(d.r, &fr), 0);
	weir_pcap_get_stats(d.r, &st);
	cr_expect_eq(st.unsupported, 2);
	rd_close(&d);
}

Test(pcap, seek_rejects_foreign_positions)
{
	struct weir_pcap_pos p = { 0 };
	struct cap c;
	struct rd d;

	write_three_ifaces(&c, 0, 1);
	cr_assert_eq(rd_open(&d, c.buf, c.len), 0);
	p.offset = c.len + 4;
	expect_open_error(weir_pcap_seek(d.r, &p), -EINVAL, "does not belong");
	p.offset = 30; /* not 4-aligned */
	cr_expect_eq(weir_pcap_seek(d.r, &p), -EINVAL);
	p.offset = c.bounds[0];
	p.interfaces = 4; /* the section has 3 */
	cr_expect_eq(weir_pcap_seek(d.r, &p), -EINVAL);
	p.interfaces = 3;
	p.section_offset = 28; /* not a section header */
	cr_expect_eq(weir_pcap_seek(d.r, &p), -EINVAL);
	p.section_offset = 0;
	cr_expect_eq(weir_pcap_seek(d.r, &p), 0, "%s", weir_last_error());
	rd_close(&d);
	free(c.buf);
}

/* ---- skip, clone, seek within a section (plan 8-11) ---- */

#define SKIP_FRAMES_MAX 400

/* Positions before every frame and after the last (pos[n]); returns n. */
static uint64_t frame_positions(struct weir_pcap *r, struct weir_pcap_pos *pos,
				const uint8_t **data, uint64_t max)
{
	struct weir_frame f;
	uint64_t n = 0;

	for (;;) {
		cr_assert_leq(n, max);
		weir_pcap_tell(r, &pos[n]);
		int rc = weir_pcap_next(r, &f);
		cr_assert_geq(rc, 0, "%s", weir_last_error());
		if (rc == 0)
			return n;
		if (data != NULL)
			data[n] = f.data;
		n++;
	}
}

static void expect_same_place(struct weir_pcap *a, struct weir_pcap *b,
			      const struct weir_pcap_stats *a0,
			      const struct weir_pcap_stats *b0, uint64_t i,
			      uint64_t n)
{
	struct weir_pcap_pos pa, pb;
	struct weir_pcap_stats sa, sb;

	weir_pcap_tell(a, &pa);
	weir_pcap_tell(b, &pb);
	cr_assert_eq(memcmp(&pa, &pb, sizeof(pa)), 0,
		     "from frame %llu, skip %llu: offset %llu/%llu index "
		     "%llu/%llu section %llu/%llu ifs %u/%u",
		     (unsigned long long)i, (unsigned long long)n,
		     (unsigned long long)pb.offset, (unsigned long long)pa.offset,
		     (unsigned long long)pb.index, (unsigned long long)pa.index,
		     (unsigned long long)pb.section_offset,
		     (unsigned long long)pa.section_offset, pb.interfaces,
		     pa.interfaces);
	weir_pcap_get_stats(a, &sa);
	weir_pcap_get_stats(b, &sb);
	cr_assert_eq(sa.frames - a0->frames, sb.frames - b0->frames);
	cr_assert_eq(sa.unsupported - a0->unsupported,
		     sb.unsupported - b0->unsupported, "from %llu, skip %llu",
		     (unsigned long long)i, (unsigned long long)n);
	cr_assert_eq(sa.skipped_blocks - a0->skipped_blocks,
		     sb.skipped_blocks - b0->skipped_blocks);
	cr_assert_eq(sa.truncated - a0->truncated, sb.truncated - b0->truncated);
}

static void check_skip_agrees(const struct tcap *c)
{
	static struct weir_pcap_pos pos[SKIP_FRAMES_MAX + 1];
	struct weir_pcap_stats a0, b0;
	struct weir_frame f;
	struct rd a, b;
	uint64_t n, got;

	cr_assert_eq(rd_open(&a, c->buf, c->len), 0, "%s", weir_last_error());
	cr_assert_eq(rd_open(&b, c->buf, c->len), 0);
	n = frame_positions(a.r, pos, NULL, SKIP_FRAMES_MAX);
	cr_assert_eq(n, c->frames);
	for (uint64_t i = 0; i <= n; i++) {
		cr_assert_eq(weir_pcap_seek(a.r, &pos[i]), 0);
		weir_pcap_get_stats(a.r, &a0);
		for (uint64_t k = 0; k <= n - i + 2; k++) {
			if (k > 0)
				cr_assert_eq(weir_pcap_next(a.r, &f),
					     k <= n - i ? 1 : 0);
			cr_assert_eq(weir_pcap_seek(b.r, &pos[i]), 0);
			weir_pcap_get_stats(b.r, &b0);
			cr_assert_eq(weir_pcap_skip(b.r, k, &got), 0);
			cr_assert_eq(got, k <= n - i ? k : n - i);
			expect_same_place(a.r, b.r, &a0, &b0, i, k);
		}
	}
	rd_close(&a);
	rd_close(&b);
}

Test(pcap, skip_agrees_with_next)
{
	struct tcap c, m;

	tc_classic(&c, WEIR_CAPTURE_PCAP_US, false, 300);
	check_skip_agrees(&c);
	tc_modified(&c, &m);
	check_skip_agrees(&m);
	free(m.buf);
	free(c.buf);
	tc_classic(&c, WEIR_CAPTURE_PCAP_NS, true, 300);
	check_skip_agrees(&c);
	free(c.buf);
	for (int be = 0; be < 2; be++) {
		tc_pcapng(&c, be, 300);
		cr_assert_gt(c.unsupported, 0);
		check_skip_agrees(&c);
		free(c.buf);
	}
}

/* Burst of k from frame i on b against k calls of next on a. */
static void expect_burst(struct rd *a, struct rd *b,
			 const struct weir_pcap_pos *pos, uint64_t i, unsigned k)
{
	struct weir_frame fa, fb[SKIP_FRAMES_MAX + 3];
	struct weir_pcap_stats a0, b0;
	unsigned got = 0, n = 0;
	int rc_a = 1, rc_b;

	cr_assert_eq(weir_pcap_seek(a->r, pos), 0);
	cr_assert_eq(weir_pcap_seek(b->r, pos), 0);
	weir_pcap_get_stats(a->r, &a0);
	weir_pcap_get_stats(b->r, &b0);
	rc_b = weir_pcap_next_burst(b->r, fb, k, &got);
	while (n < k && (rc_a = weir_pcap_next(a->r, &fa)) == 1) {
		cr_assert_lt(n, got, "from %llu, burst %u", (unsigned long long)i,
			     k);
		/* The same record of each reader's own copy of the file. */
		cr_assert_eq(fa.data - a->copy, fb[n].data - b->copy);
		cr_assert(fa.caplen == fb[n].caplen &&
			  fa.wire_len == fb[n].wire_len &&
			  fa.ts_ns == fb[n].ts_ns &&
			  fa.linktype == fb[n].linktype &&
			  fa.interface == fb[n].interface);
		n++;
	}
	cr_assert_eq(got, n, "from %llu, burst %u", (unsigned long long)i, k);
	cr_assert_eq(rc_b, rc_a, "from %llu, burst %u", (unsigned long long)i,
		     k);
	expect_same_place(a->r, b->r, &a0, &b0, i, k);
}

static void check_burst_agrees(const char *buf, size_t len)
{
	static struct weir_pcap_pos pos[SKIP_FRAMES_MAX + 1];
	struct rd a, b;
	uint64_t n;

	cr_assert_eq(rd_open(&a, buf, len), 0, "%s", weir_last_error());
	cr_assert_eq(rd_open(&b, buf, len), 0);
	n = frame_positions(a.r, pos, NULL, SKIP_FRAMES_MAX);
	for (uint64_t i = 0; i <= n; i++) {
		static const unsigned ks[] = { 1, 3, 32 };
		for (unsigned j = 0; j < 3; j++)
			expect_burst(&a, &b, &pos[i], i, ks[j]);
		expect_burst(&a, &b, &pos[i], i, (unsigned)(n - i + 2));
	}
	rd_close(&a);
	rd_close(&b);
}

Test(pcap, burst_agrees_with_next)
{
	struct weir_frame fr[4];
	struct tcap c, m;
	struct cap k;
	struct rd d;
	struct fb f;
	unsigned got;

	tc_classic(&c, WEIR_CAPTURE_PCAP_US, false, 300);
	check_burst_agrees(c.buf, c.len);
	check_burst_agrees(c.buf, c.len - 5); /* a truncated last record */
	tc_modified(&c, &m);
	check_burst_agrees(m.buf, m.len);
	free(m.buf);
	free(c.buf);
	tc_classic(&c, WEIR_CAPTURE_PCAP_NS, true, 300);
	check_burst_agrees(c.buf, c.len);
	free(c.buf);
	for (int be = 0; be < 2; be++) {
		tc_pcapng(&c, be, 300);
		check_burst_agrees(c.buf, c.len);
		free(c.buf);
	}
	/* A corrupt second record: the first frame, then the sticky error. */
	cap_begin(&k, WEIR_CAPTURE_PCAP_US, 0, 1, 0);
	for (int i = 0; i < 3; i++)
		frame_n(&f, i), cap_frame(&k, 0, 1, &f);
	cap_end(&k);
	put_le32(k.buf + k.bounds[0] + 8, 0xfffffff0u);
	cr_assert_eq(rd_open(&d, k.buf, k.len), 0);
	cr_assert_eq(weir_pcap_next_burst(d.r, fr, 4, &got), -EBADMSG);
	cr_assert_eq(got, 1);
	cr_assert_eq(weir_pcap_next_burst(d.r, fr, 4, &got), -EBADMSG);
	cr_assert_eq(got, 0);
	rd_close(&d);
	free(k.buf);
}

/* Skip from the start stops after `want` frames with no error and changes
 * nothing; next then reports exactly what a fresh reader reports there. */
static void check_skip_stops(const char *buf, size_t len, uint64_t want)
{
	struct weir_pcap_stats st;
	struct weir_frame f;
	struct rd a, b;
	char msg[512];
	uint64_t got;
	int rc_a, rc_b;

	cr_assert_eq(rd_open(&a, buf, len), 0, "%s", weir_last_error());
	do
		rc_a = weir_pcap_next(a.r, &f);
	while (rc_a == 1);
	snprintf(msg, sizeof(msg), "%s", rc_a < 0 ? weir_last_error() : "");
	cr_assert_eq(rd_open(&b, buf, len), 0);
	cr_assert_eq(weir_pcap_skip(b.r, want + 10, &got), 0);
	cr_assert_eq(got, want);
	weir_pcap_get_stats(b.r, &st);
	cr_assert_eq(st.truncated, 0);
	rc_b = weir_pcap_next(b.r, &f);
	cr_assert_eq(rc_b, rc_a);
	if (rc_a < 0) {
		cr_assert_str_eq(weir_last_error(), msg);
		cr_assert_eq(weir_pcap_skip(b.r, 1, &got), rc_a, "sticky");
		cr_assert_eq(got, 0);
	} else {
		weir_pcap_get_stats(b.r, &st);
		cr_assert_eq(st.truncated, 1);
	}
	rd_close(&a);
	rd_close(&b);
}

Test(pcap, skip_stops_before_what_next_reports)
{
	static struct weir_pcap_pos pos[SKIP_FRAMES_MAX + 1];
	struct tcap c;
	struct rd d;

	for (int ng = 0; ng < 2; ng++) {
		for (int be = 0; be < 2; be++) {
			if (ng)
				tc_pcapng(&c, be, 250);
			else
				tc_classic(&c, WEIR_CAPTURE_PCAP_NS, be, 250);
			cr_assert_eq(rd_open(&d, c.buf, c.len), 0);
			cr_assert_eq(frame_positions(d.r, pos, NULL,
						     SKIP_FRAMES_MAX), 250);
			rd_close(&d);
			/* A record cut by the end of the file. */
			check_skip_stops(c.buf, pos[249].offset + 13, 249);
			/* A corrupt length (classic: caplen; pcapng: the block
			 * length of whatever block comes first), mid-file. */
			for (uint64_t j = 100; j < 250; j += 77) {
				size_t at = pos[j].offset + (ng ? 4 : 8);
				/* pcapng: the byte order of j's section */
				bool sbe = ng ? (uint8_t)c.buf[pos[j].section_offset
							       + 8] == 0x1a
					      : be;
				char save[4];

				memcpy(save, c.buf + at, 4);
				tc_st32(c.buf + at, ng ? 7 : 0xfffffff0u, sbe);
				check_skip_stops(c.buf, c.len, j);
				memcpy(c.buf + at, save, 4);
			}
			free(c.buf);
		}
	}
}

Test(pcap, clone_reads_on_its_own)
{
	static struct weir_pcap_pos pos[SKIP_FRAMES_MAX + 1];
	static const uint8_t *data[SKIP_FRAMES_MAX];
	struct weir_pcap_stats st;
	struct weir_pcap *k;
	struct weir_frame f, g;
	struct tcap c;
	struct rd d;
	uint64_t n;

	tc_pcapng(&c, true, 300);
	cr_assert_eq(rd_open(&d, c.buf, c.len), 0);
	n = frame_positions(d.r, pos, data, SKIP_FRAMES_MAX);
	cr_assert_eq(weir_pcap_seek(d.r, &pos[150]), 0);
	cr_assert_eq(weir_pcap_clone(d.r, &k), 0);
	weir_pcap_get_stats(k, &st);
	cr_assert_eq(st.frames, 0);
	for (uint64_t i = 150; i < n; i++) { /* interleaved */
		cr_assert_eq(weir_pcap_next(k, &g), 1);
		cr_assert_eq(weir_pcap_next(d.r, &f), 1);
		cr_assert_eq(g.data, data[i]);
		cr_assert_eq(f.data, data[i]);
	}
	cr_assert_eq(weir_pcap_next(k, &g), 0);
	weir_pcap_get_stats(k, &st);
	cr_assert_eq(st.frames, n - 150);
	cr_assert_eq(weir_pcap_seek(k, &pos[3]), 0);
	cr_assert_eq(weir_pcap_next(k, &g), 1);
	cr_assert_eq(g.data, data[3]);
	weir_pcap_close(k);
	cr_assert_eq(weir_pcap_seek(d.r, &pos[7]), 0);
	cr_assert_eq(weir_pcap_next(d.r, &f), 1);
	cr_assert_eq(f.data, data[7]);
	rd_close(&d);
	free(c.buf);
}

Test(pcap, seek_within_a_section)
{
	static struct weir_pcap_pos pos[SKIP_FRAMES_MAX + 1];
	static const uint8_t *data[SKIP_FRAMES_MAX];
	struct weir_pcap_pos bad;
	struct weir_frame f;
	uint64_t n, seed = 7, late = 0;
	struct tcap c;
	struct rd d, e;

	tc_pcapng(&c, false, 300);
	cr_assert_eq(rd_open(&d, c.buf, c.len), 0);
	n = frame_positions(d.r, pos, data, SKIP_FRAMES_MAX);
	for (int t = 0; t < 3000; t++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t i = (seed >> 33) % (n + 1), m = (seed >> 20) % 6;
		cr_assert_eq(weir_pcap_seek(d.r, &pos[i]), 0, "%s",
			     weir_last_error());
		for (uint64_t j = i; j < i + m && j < n; j++) {
			cr_assert_eq(weir_pcap_next(d.r, &f), 1);
			cr_assert_eq(f.data, data[j], "seek to %llu, frame %llu",
				     (unsigned long long)i,
				     (unsigned long long)j);
		}
	}
	/* A frame after an IDB declared mid-section... */
	for (uint64_t j = 1; j <= n && late == 0; j++)
		if (pos[j].section_offset == pos[j - 1].section_offset &&
		    pos[j].interfaces > pos[j - 1].interfaces)
			late = j;
	cr_assert_gt(late, 0);
	/* ...and a position before that IDB claiming it: refused by a reader
	 * in the section (fast path) as by a fresh one (rebuild). */
	bad = pos[late - 1];
	bad.interfaces = pos[late].interfaces;
	cr_assert_eq(weir_pcap_seek(d.r, &pos[late]), 0);
	cr_assert_eq(weir_pcap_next(d.r, &f), 1);
	cr_assert_eq(weir_pcap_seek(d.r, &bad), -EINVAL);
	cr_assert_eq(rd_open(&e, c.buf, c.len), 0);
	cr_assert_eq(weir_pcap_seek(e.r, &bad), -EINVAL);
	rd_close(&e);
	rd_close(&d);
	free(c.buf);
}
