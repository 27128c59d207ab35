/*
 * pcap_stream_test.c — the capture reader on a stream (weir_pcap_open_fd).
 *
 * TEST PLAN
 *   A stream reader must deliver what the same bytes read as a file
 *   deliver; the captures are written with our writer (captures.h) and fed
 *   through a pipe by a thread in pieces of random sizes (stream_feed.h),
 *   so the bytes there are end anywhere.
 *   1. Same frames as the file: classic µs LE, ns BE, the modified variant,
 *      pcapng of both first byte orders (sections, late IDBs, unsupported
 *      interfaces, SPB, obsolete PB, unknown blocks), each whole and cut
 *      inside its last record; pieces of at most 300 bytes and of at most
 *      200 000; read with next() and with bursts of random sizes.  Every
 *      frame's bytes and fields, every position (offset and index), the
 *      last return value and the stats agree.  The captures are larger than
 *      the stream's 4 MiB buffer, so its bytes move.
 *   2. Records of 6 and 10 MiB (longer than the buffer) come whole.
 *   3. After the header nothing waits: next() says -EAGAIN while a record's
 *      bytes have not all come (not sticky), then the frame, then 0 at the
 *      end.  Open waits for the header, and a cut one fails as a file's.
 *   4. Errors as a file's, offsets the stream's own: a corrupt record past
 *      5 MiB, not a capture, empty; clone and seek are refused (-ESPIPE).
 *   5. A pcapng stream whose only interface has an unsupported link type
 *      is refused at open, as the file is, even when its IDB comes after
 *      the section header in another piece.
 *   6. An fd that is a regular file at offset 0 (standard input from a
 *      file) is mapped, not streamed: its size is the file's, and it can be
 *      cloned and sought, every frame as the path's reader gives it.  At an
 *      offset past the header it is a stream from there (not a capture).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "weir/net.h"
#include "captures.h"
#include "frames.h"
#include "stream_feed.h"

static void expect_same_frame(const struct weir_frame *a,
			      const struct weir_frame *b, uint64_t i)
{
	cr_assert_eq(a->caplen, b->caplen, "frame %llu", (unsigned long long)i);
	cr_assert_eq(memcmp(a->data, b->data, a->caplen), 0, "frame %llu",
		     (unsigned long long)i);
	cr_assert_eq(a->wire_len, b->wire_len);
	cr_assert_eq(a->ts_ns, b->ts_ns);
	cr_assert_eq(a->linktype, b->linktype);
	cr_assert_eq(a->interface, b->interface);
}

static void expect_same_place(struct weir_pcap *a, struct weir_pcap *b)
{
	struct weir_pcap_pos pa, pb;

	weir_pcap_tell(a, &pa);
	weir_pcap_tell(b, &pb);
	cr_assert_eq(pa.offset, pb.offset, "offset %llu, stream %llu",
		     (unsigned long long)pa.offset,
		     (unsigned long long)pb.offset);
	cr_assert_eq(pa.index, pb.index);
}

/* Up to n frames from the stream with one burst call, waiting while none
 * has come; the call's return value. */
static int stream_burst(struct weir_pcap *r, struct weir_frame *f,
			unsigned n, unsigned *got)
{
	int rc;

	while ((rc = weir_pcap_next_burst(r, f, n, got)) == -EAGAIN &&
	       *got == 0)
		sched_yield();
	return rc;
}

/* Read the stream b with bursts of random sizes, a with next(). */
static int compare_bursts(struct weir_pcap *a, struct weir_pcap *b,
			  unsigned seed, uint64_t *i)
{
	struct weir_frame fa, fb[64];
	unsigned got;
	int rb = 1;

	while (rb != 0 && rb != -EBADMSG) {
		rb = stream_burst(b, fb, 1 + feed_rand(&seed) % 64, &got);
		for (unsigned k = 0; k < got; k++, (*i)++) {
			cr_assert_eq(weir_pcap_next(a, &fa), 1);
			expect_same_frame(&fa, &fb[k], *i);
		}
		if (rb == 1) /* both right after the same frame */
			expect_same_place(a, b);
	}
	return rb;
}

static void expect_same_stream(const char *buf, size_t len, unsigned seed,
			       size_t piece, bool bursts)
{
	struct weir_pcap *a = NULL, *b = NULL;
	struct weir_pcap_stats sa, sb;
	struct weir_frame fa, fb;
	struct feed fd;
	uint64_t i = 0;
	int ra, rb, rfd = feed_start(&fd, buf, len, seed, piece);

	cr_assert_geq(rfd, 0);
	ra = weir_pcap_open_mem(buf, len, "file", &a);
	rb = weir_pcap_open_fd(rfd, "pipe", &b);
	cr_assert_eq(ra, 0, "%s", weir_last_error());
	cr_assert_eq(rb, 0, "%s", weir_last_error());
	cr_assert_eq(weir_pcap_linktype(a), weir_pcap_linktype(b));
	if (bursts) {
		rb = compare_bursts(a, b, seed, &i);
		ra = weir_pcap_next(a, &fa);
		expect_same_place(a, b);
	} else {
		do {
			ra = weir_pcap_next(a, &fa);
			rb = stream_next(b, &fb);
			cr_assert_eq(ra, rb, "frame %llu: file %d, stream %d",
				     (unsigned long long)i, ra, rb);
			if (ra == 1)
				expect_same_frame(&fa, &fb, i++);
			expect_same_place(a, b);
		} while (ra == 1);
	}
	cr_assert_eq(ra, rb, "end: file %d, stream %d", ra, rb);
	weir_pcap_get_stats(a, &sa);
	weir_pcap_get_stats(b, &sb);
	cr_assert_eq(memcmp(&sa, &sb, sizeof(sa)), 0,
		     "stats: frames %llu/%llu truncated %llu/%llu",
		     (unsigned long long)sa.frames,
		     (unsigned long long)sb.frames,
		     (unsigned long long)sa.truncated,
		     (unsigned long long)sb.truncated);
	cr_assert_gt(i, 0);
	weir_pcap_close(a);
	weir_pcap_close(b);
	feed_join(&fd);
}

static void check_capture(const struct tcap *c, unsigned seed)
{
	size_t cut = c->len - 7; /* inside the last record */

	expect_same_stream(c->buf, c->len, seed, 300, false);
	expect_same_stream(c->buf, c->len, seed + 1, 200000, true);
	expect_same_stream(c->buf, cut, seed + 2, 200000, false);
	expect_same_stream(c->buf, cut, seed + 3, 300, true);
}

Test(pcap_stream, same_frames_as_the_file, .timeout = 120)
{
	struct tcap c, m;

	tc_classic(&c, WEIR_CAPTURE_PCAP_US, false, 100000);
	cr_assert_gt(c.len, 5u << 20, "larger than the stream's buffer: %zu", c.len);
	check_capture(&c, 1);
	tc_modified(&c, &m);
	check_capture(&m, 11);
	free(m.buf);
	free(c.buf);
	tc_classic(&c, WEIR_CAPTURE_PCAP_NS, true, 100000);
	check_capture(&c, 21);
	free(c.buf);
	tc_pcapng(&c, false, 80000);
	cr_assert_gt(c.len, 5u << 20);
	check_capture(&c, 31);
	free(c.buf);
	tc_pcapng(&c, true, 80000);
	check_capture(&c, 41);
	free(c.buf);
}

Test(pcap_stream, records_longer_than_the_buffer, .timeout = 60)
{
	struct tcap c;
	struct fb f;
	size_t big[2] = { 6u << 20, 10u << 20 };
	uint8_t *blob = malloc(big[1]);

	cr_assert_not_null(blob);
	for (size_t k = 0; k < big[1]; k++)
		blob[k] = (uint8_t)(k * 131 + 7);
	tc_begin(&c, WEIR_CAPTURE_PCAP_US, false);
	for (int i = 0; i < 6; i++) {
		tc_frame(&f, (uint64_t)i, false);
		weir_pcap_writer_write(c.w, 0, TC_TS0, f.b, f.len, f.len);
		if (i == 2 || i == 3)
			weir_pcap_writer_write(c.w, 0, TC_TS0, blob,
					       (uint32_t)big[i - 2],
					       (uint32_t)big[i - 2]);
	}
	tc_end(&c);
	expect_same_stream(c.buf, c.len, 5, 100000, false);
	expect_same_stream(c.buf, c.len, 6, 1 << 20, true);
	free(c.buf);
	free(blob);
}

static void put(int fd, const void *p, size_t n)
{
	cr_assert_eq(write(fd, p, n), (ssize_t)n);
}

/* next() until it returns something other than -EAGAIN, for up to ~2 s. */
static int next_within(struct weir_pcap *r, struct weir_frame *f)
{
	int rc = -EAGAIN;

	for (int k = 0; k < 2000 && rc == -EAGAIN; k++) {
		rc = weir_pcap_next(r, f);
		if (rc == -EAGAIN)
			usleep(1000);
	}
	return rc;
}

Test(pcap_stream, nothing_waits_after_the_header)
{
	struct tcap c;
	struct weir_pcap *r = NULL;
	struct weir_pcap_stats st;
	struct weir_frame f;
	int p[2];

	tc_classic(&c, WEIR_CAPTURE_PCAP_US, false, 2);
	cr_assert_eq(pipe(p), 0);
	put(p[1], c.buf, 24);
	cr_assert_eq(weir_pcap_open_fd(p[0], "pipe", &r), 0, "%s",
		     weir_last_error());
	cr_assert_eq(weir_pcap_next(r, &f), -EAGAIN);
	put(p[1], c.buf + 24, 10); /* half a record header */
	usleep(20000);
	cr_assert_eq(weir_pcap_next(r, &f), -EAGAIN);
	cr_assert_eq(weir_pcap_next(r, &f), -EAGAIN, "not sticky, not worse");
	put(p[1], c.buf + 34, c.len - 34 - 3); /* the last record cut */
	cr_assert_eq(next_within(r, &f), 1);
	cr_assert_eq(f.ts_ns, TC_TS0);
	cr_assert_eq(next_within(r, &f), -EAGAIN, "the last record is cut");
	close(p[1]);
	cr_assert_eq(next_within(r, &f), 0);
	weir_pcap_get_stats(r, &st);
	cr_assert_eq(st.frames, 1);
	cr_assert_eq(st.truncated, 1, "cut by the stream's end");
	cr_assert_eq(weir_pcap_next(r, &f), 0, "the end is sticky");
	weir_pcap_close(r);

	cr_assert_eq(pipe(p), 0); /* a header cut by the end */
	put(p[1], c.buf, 20);
	close(p[1]);
	cr_assert_eq(weir_pcap_open_fd(p[0], "pipe", &r), -EBADMSG);
	cr_assert_not_null(strstr(weir_last_error(),
				  "truncated pcap file header (20 of 24"),
			   "%s", weir_last_error());
	free(c.buf);
}

/* Open a stream of these bytes (whole, then its end); the open's code. */
static int open_bytes(const void *b, size_t n, struct weir_pcap **r,
		      struct feed *fd)
{
	int rfd = feed_start(fd, b, n, 3, 4096);

	cr_assert_geq(rfd, 0);
	return weir_pcap_open_fd(rfd, "pipe", r);
}

Test(pcap_stream, errors_name_the_streams_offset, .timeout = 60)
{
	struct weir_pcap *r = NULL, *c = NULL;
	struct weir_pcap_pos pos = { 0 };
	struct weir_frame f;
	struct tcap t;
	struct feed fd;
	size_t off = 24;
	uint64_t n = 0;
	char want[64];
	int rc;

	tc_classic(&t, WEIR_CAPTURE_PCAP_US, false, 100000);
	while (off < (5u << 20)) { /* the record after 5 MiB */
		uint32_t caplen;
		memcpy(&caplen, t.buf + off + 8, 4);
		off += 16 + caplen;
		n++;
	}
	tc_st32(t.buf + off + 8, WEIR_PCAP_CAPLEN_MAX + 1, false);
	cr_assert_eq(open_bytes(t.buf, t.len, &r, &fd), 0);
	cr_assert_eq(weir_pcap_size(r), 0, "a stream has no size");
	cr_assert_eq(weir_pcap_clone(r, &c), -ESPIPE);
	cr_assert_eq(weir_pcap_seek(r, &pos), -ESPIPE);
	for (uint64_t i = 0; i < n; i++)
		cr_assert_eq(stream_next(r, &f), 1);
	rc = stream_next(r, &f);
	cr_assert_eq(rc, -EBADMSG);
	snprintf(want, sizeof(want), "at offset %zu", off);
	cr_assert_not_null(strstr(weir_last_error(), want), "%s (want %s)",
			   weir_last_error(), want);
	cr_assert_eq(stream_next(r, &f), -EBADMSG, "sticky");
	weir_pcap_close(r);
	feed_join(&fd);
	free(t.buf);

	cr_assert_eq(open_bytes("hello, world\n", 13, &r, &fd), -EINVAL);
	cr_assert_not_null(strstr(weir_last_error(), "magic 0x68656c6c"));
	feed_join(&fd);
	cr_assert_eq(open_bytes("", 0, &r, &fd), -EBADMSG);
	cr_assert_not_null(strstr(weir_last_error(),
				  "truncated header (0 bytes)"));
	feed_join(&fd);
}

Test(pcap_stream, pcapng_link_types_judged_at_open)
{
	struct weir_pcap *r = NULL;
	struct feed fd;
	struct tcap c;
	struct fb f;
	struct weir_pcap_writer_config cfg = {
		.format = WEIR_CAPTURE_PCAPNG, .linktype = 105 };

	memset(&c, 0, sizeof(c));
	c.f = open_memstream(&c.buf, &c.len);
	cr_assert_eq(weir_pcap_writer_open(c.f, &cfg, &c.w), 0);
	tc_frame(&f, 0, false);
	weir_pcap_writer_write(c.w, 0, TC_TS0, f.b, f.len, f.len);
	tc_end(&c);
	cr_assert_eq(weir_pcap_open_mem(c.buf, c.len, "file", &r), -ENOTSUP);
	for (size_t piece = 1; piece <= 64; piece *= 4) {
		int rfd = feed_start(&fd, c.buf, c.len, 9, piece);
		cr_assert_eq(weir_pcap_open_fd(rfd, "pipe", &r), -ENOTSUP,
			     "pieces of %zu: %s", piece, weir_last_error());
		cr_assert_not_null(strstr(weir_last_error(), "link type 105"));
		feed_join(&fd);
	}
	free(c.buf);
}

Test(pcap_stream, a_regular_file_fd_is_mapped)
{
	struct weir_pcap *a, *b, *c;
	struct weir_pcap_pos start;
	struct weir_frame fa, fb;
	struct tcap t;
	char path[64];
	uint64_t n = 0;
	int fd;

	tc_classic(&t, WEIR_CAPTURE_PCAP_US, false, 3000);
	tc_file(&t, path, sizeof(path));
	fd = open(path, O_RDONLY);
	cr_assert(weir_pcap_fd_is_file(fd));
	cr_assert_eq(weir_pcap_open_fd(fd, "stdin", &a), 0, "%s",
		     weir_last_error());
	cr_assert_eq(weir_pcap_size(a), t.len, "mapped: the file's size");
	cr_assert_eq(weir_pcap_open(path, &b), 0);
	weir_pcap_tell(a, &start);
	cr_assert_eq(weir_pcap_clone(a, &c), 0, "a stream cannot be cloned");
	while (weir_pcap_next(a, &fa) == 1) {
		cr_assert_eq(weir_pcap_next(b, &fb), 1);
		expect_same_frame(&fa, &fb, n++);
	}
	cr_assert_eq(n, t.frames);
	cr_assert_eq(weir_pcap_seek(a, &start), 0);
	cr_assert_eq(weir_pcap_next(a, &fa), 1);
	weir_pcap_close(c);
	weir_pcap_close(b);
	weir_pcap_close(a);
	/* Past the header: what follows is no capture, as a stream says. */
	fd = open(path, O_RDONLY);
	cr_assert_eq(lseek(fd, 24, SEEK_SET), 24);
	cr_assert_not(weir_pcap_fd_is_file(fd));
	cr_assert_lt(weir_pcap_open_fd(fd, "stdin", &a), 0);
	unlink(path);
	free(t.buf);
}
