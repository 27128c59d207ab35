/*
 * corpus_test.c — read and parse every capture of the tcpdump test corpus.
 *
 * TEST PLAN
 *   The corpus (tcpdump's own test captures: many link types, odd and
 *   deliberately broken files) is found through $WEIR_CORPUS_DIR (the
 *   tcpdump directory itself, or a directory holding tcpdump/), or by
 *   walking up from the source tree to shared/corpus/tcpdump.  Absent: the
 *   test is skipped with a message saying where it looked.
 *   For every file:
 *   1. open it from an exact-size malloc() copy (so ASan sees any read past
 *      the end) and through mmap; both must agree on the outcome and frame
 *      count.  Unsupported link types, foreign files and corrupt headers are
 *      counted, not failures; so is a corrupt record in the middle.
 *   2. parse every frame from an exact-size copy; verdicts are tallied, and
 *      an OK verdict must have sane fields (version 4/6, ip_bytes >= header,
 *      l3 offset inside caplen, zero padding).
 *   3. read it once more as a stream, fed through a pipe in pieces of
 *      random sizes (stream_feed.h): the same outcome at open, the same
 *      frames (bytes and fields), the same last code and stats as the
 *      file.
 *   Run it under ASan+UBSan (see docs/net.md).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "weir/net.h"
#include "corpus.h"
#include "stream_feed.h"

struct tally {
	unsigned files, opened, unsupported, foreign, bad_header, corrupt;
	unsigned long frames, truncated, verdict[4];
};

static void *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = malloc(n > 0 ? (size_t)n : 1);
	if (b != NULL && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void check_packet(const struct weir_frame *fr, struct tally *t)
{
	struct weir_packet pk;
	uint8_t *copy = malloc(fr->caplen ? fr->caplen : 1);
	int rc;

	cr_assert_not_null(copy);
	memcpy(copy, fr->data, fr->caplen);
	rc = weir_parse(copy, fr->caplen, fr->wire_len, fr->linktype, &pk);
	free(copy);
	cr_assert(rc >= 0 && rc <= WEIR_PARSE_BAD_LINKTYPE);
	cr_assert_neq(rc, WEIR_PARSE_BAD_LINKTYPE, "reader gave link type %u",
		      fr->linktype);
	t->verdict[rc]++;
	if (rc != WEIR_PARSE_OK)
		return;
	cr_assert(pk.key.ip_version == 4 || pk.key.ip_version == 6);
	cr_assert_geq(pk.ip_bytes, pk.key.ip_version == 4 ? 20u : 40u);
	cr_assert_lt(pk.l3_offset, fr->caplen);
	cr_assert_eq(pk.key.pad[0] | pk.key.pad[1], 0);
}

/* Read to the end; returns frames read, and the last next() code in *last. */
static unsigned long drain(struct weir_pcap *r, struct tally *t, int *last)
{
	struct weir_frame fr;
	unsigned long n = 0;
	int rc;

	while ((rc = weir_pcap_next(r, &fr)) == 1) {
		if (t != NULL)
			check_packet(&fr, t);
		n++;
	}
	*last = rc;
	return n;
}

/* The file's bytes as a stream give what the file gives (plan 3). */
static void same_as_stream(const char *path, const void *buf, size_t len,
			   int want_rc, unsigned seed)
{
	struct weir_pcap *a = NULL, *b = NULL;
	struct weir_pcap_stats sa, sb;
	struct weir_frame fa, fb;
	struct feed fd;
	int ra, rb, rfd = feed_start(&fd, buf, len, seed, 1 + seed % 3000);

	cr_assert_geq(rfd, 0);
	rb = weir_pcap_open_fd(rfd, path, &b);
	cr_assert_eq(rb, want_rc, "%s: open %d, as a stream %d (%s)", path,
		     want_rc, rb, weir_last_error());
	if (rb == 0) {
		cr_assert_eq(weir_pcap_open_mem(buf, len, path, &a), 0);
		do {
			ra = weir_pcap_next(a, &fa);
			rb = stream_next(b, &fb);
			cr_assert_eq(ra, rb, "%s: next %d, stream %d", path, ra,
				     rb);
			cr_assert(ra != 1 || (fa.caplen == fb.caplen &&
			    fa.ts_ns == fb.ts_ns && fa.linktype == fb.linktype &&
			    fa.wire_len == fb.wire_len &&
			    memcmp(fa.data, fb.data, fa.caplen) == 0),
			    "%s: a frame differs", path);
		} while (ra == 1);
		weir_pcap_get_stats(a, &sa);
		weir_pcap_get_stats(b, &sb);
		cr_assert_eq(memcmp(&sa, &sb, sizeof(sa)), 0, "%s: stats", path);
	}
	weir_pcap_close(a);
	weir_pcap_close(b);
	feed_join(&fd);
}

static void one_file(const char *path, struct tally *t)
{
	struct weir_pcap *r = NULL, *m = NULL;
	struct weir_pcap_stats st;
	unsigned long n, n2;
	int rc, rc2, last, last2;
	size_t len;
	void *buf = slurp(path, &len);

	cr_assert_not_null(buf, "cannot read %s", path);
	t->files++;
	rc = weir_pcap_open_mem(buf, len, path, &r);
	rc2 = weir_pcap_open(path, &m);
	cr_assert_eq(rc, rc2, "%s: open_mem %d, open %d", path, rc, rc2);
	if (rc == -ENOTSUP)
		t->unsupported++;
	else if (rc == -EINVAL)
		t->foreign++;
	else if (rc == -EBADMSG)
		t->bad_header++;
	else
		cr_assert_eq(rc, 0, "%s: %d %s", path, rc, weir_last_error());
	if (rc == 0) {
		t->opened++;
		n = drain(r, t, &last);
		n2 = drain(m, NULL, &last2);
		cr_assert_eq(n, n2, "%s: %lu frames from memory, %lu via mmap",
			     path, n, n2);
		cr_assert_eq(last, last2);
		cr_assert(last == 0 || last == -EBADMSG, "%s: %d", path, last);
		t->corrupt += last != 0;
		t->frames += n;
		weir_pcap_get_stats(r, &st);
		t->truncated += st.truncated;
	}
	weir_pcap_close(r);
	weir_pcap_close(m);
	same_as_stream(path, buf, len, rc, t->files * 2654435761u);
	free(buf);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(corpus, tcpdump_corpus_end_to_end, .timeout = 600)
{
	char dir[PATH_MAX], path[PATH_MAX * 2];
	struct tally t = { 0 };
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	if (find_corpus(dir, sizeof(dir)) != 0)
		cr_skip_test("corpus not found: set WEIR_CORPUS_DIR or place it "
			     "at ../shared/corpus/tcpdump (looked up from %s)",
			     WEIR_SOURCE_DIR);
	d = opendir(dir);
	cr_assert_not_null(d, "cannot list %s", dir);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap)
			names = realloc(names, (cap = cap * 2 + 64) * sizeof(*names));
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (!is_dir(path))
			one_file(path, &t);
		free(names[i]);
	}
	free(names);
	cr_log_info("corpus %s: %u files, %u opened, %u unsupported link type, "
		    "%u not captures, %u bad headers, %u corrupt records; "
		    "%lu frames (%lu truncated files): %lu ok, %lu malformed, "
		    "%lu non-ip", dir, t.files, t.opened, t.unsupported,
		    t.foreign, t.bad_header, t.corrupt, t.frames, t.truncated,
		    t.verdict[0], t.verdict[1], t.verdict[2]);
	cr_expect_gt(t.opened, 0);
}
