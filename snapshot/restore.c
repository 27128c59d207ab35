/*
 * restore.c — verify and open a committed checkpoint, its metadata and the
 * page iterator (snapshot/ckpt.h); the single-pass load of a core's pages
 * is load.c.  Reads with pread: restore runs before the event loops start,
 * and verify is a command-line tool.  Nothing here writes to the
 * checkpoint directory (invariant 6).
 *
 * wr_ckpt_open reads every byte (pages included) before it answers;
 * wr_ckpt_open_deferred everything but the pages, whose checksums the load
 * checks as they land: one read of the state instead of two (the engine
 * and ckpt_bench restore that way; inspect and verify read everything).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "core/error.h"
#include "snapshot/ckpt.h"
#include "snapshot/ckpt_internal.h"
#include "snapshot/format.h"

#define BAD_PAGES_REPORTED_MAX 16u

struct vctx {				/* one verification pass */
	int dirfd;
	const struct wr_ckpt_manifest *m;
	wr_ckpt_report_fn report;
	void *arg;
	int problems;
	bool pages_deferred;		/* page bytes are checked by the load */
};

static void say(struct vctx *v, const char *file, uint64_t off,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void say(struct vctx *v, const char *file, uint64_t off,
		const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	v->problems++;
	if (v->report)
		v->report(v->arg, file, off, what);
}

int wr_ckpt_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + got, len - got,
				  (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* Bytes the format says are zero (the header block after the header, the
 * padding before the tail, the tail's reserved ones): a damaged one is
 * named at its offset.  The file checksum covers all but the tail's, but
 * says only "somewhere in the file". */
static int check_zero(struct vctx *v, const char *name, const uint8_t *p,
		      size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0)
			return say(v, name, off + i, "byte %" PRIu64 " should "
				   "be zero", off + i), -EBADMSG;
	return 0;
}

/* Header checks shared by page and meta files: 0 or -EBADMSG (said). */
static int check_header(struct vctx *v, const char *name, const uint8_t *blk,
			const char *magic, uint32_t core)
{
	struct wr_ckpt_file_header h;

	memcpy(&h, blk, sizeof(h));
	if (memcmp(h.magic, magic, 8) != 0)
		return say(v, name, 0, "bad magic (want %.8s)", magic), -EBADMSG;
	/* A manifest (checksummed; its own version refused first if this
	 * weir cannot read it) names files of its version, or of an older one
	 * this weir reads (a chain begun before an upgrade): a newer file, or
	 * one older than any readable, is a damaged byte and the restore falls
	 * back.  (Taken for a newer format, one flipped bit of a data file
	 * refused the whole directory.)  A flip within the range is caught by
	 * the header checksum. */
	if (h.version > v->m->version || h.version < WR_CKPT_FORMAT_VERSION_MIN)
		return say(v, name, 8, "format version %u, the manifest's is %u",
			   h.version, v->m->version), -EBADMSG;
	if (h.header_checksum != XXH3_64bits(&h, offsetof(struct
				 wr_ckpt_file_header, header_checksum)))
		return say(v, name, offsetof(struct wr_ckpt_file_header,
			   header_checksum), "header checksum mismatch"),
		       -EBADMSG;
	if (h.fingerprint != v->m->fingerprint || h.core != core ||
	    h.page_size != v->m->page_size || h.header_size != WR_CKPT_BLOCK)
		return say(v, name, 16, "header does not match the manifest "
			   "(fingerprint, core or page size)"), -EBADMSG;
	return check_zero(v, name, blk + sizeof(h), WR_CKPT_BLOCK - sizeof(h),
			  sizeof(h));
}

/*
 * The tail against the (checksummed) header.  The file checksum cannot
 * cover the tail, which holds it: without these a flipped byte of its
 * counts or reserved bytes went unreported (verify said ok).  A meta or
 * log file's tail has no view (0).
 */
static int check_tail(struct vctx *v, const struct wr_ckpt_file_ref *r,
		      const uint8_t *blk, const struct wr_ckpt_file_tail *t,
		      bool no_view)
{
	struct wr_ckpt_file_header h;
	uint64_t at = r->size - sizeof(*t);

	memcpy(&h, blk, sizeof(h));
	const struct { const char *what; size_t off; uint64_t got, want; } f[] = {
		{ "trailer offset", offsetof(struct wr_ckpt_file_tail,
					     trailer_off), t->trailer_off,
		  h.trailer_off },
		{ "count", offsetof(struct wr_ckpt_file_tail, count), t->count,
		  h.count },
		{ "view count", offsetof(struct wr_ckpt_file_tail, view_count),
		  t->view_count, no_view ? 0 : h.view_count },
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (f[i].got != f[i].want)
			return say(v, r->name, at + f[i].off, "the tail's %s "
				   "%" PRIu64 " is not the header's %" PRIu64,
				   f[i].what, f[i].got, f[i].want), -EBADMSG;
	return check_zero(v, r->name, (const uint8_t *)t->reserved,
			  sizeof(t->reserved), at +
			  offsetof(struct wr_ckpt_file_tail, reserved));
}

/* Opens ref, checks its size and reads header block and tail. */
static int open_checked(struct vctx *v, const struct wr_ckpt_file_ref *ref,
			uint8_t *blk, struct wr_ckpt_file_tail *t, int *fdp)
{
	struct stat st;
	int fd = openat(v->dirfd, ref->name, O_RDONLY | O_CLOEXEC);

	*fdp = -1;
	if (fd < 0)
		return say(v, ref->name, 0, "cannot open: %s", strerror(errno)),
		       -EBADMSG;
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != ref->size ||
	    ref->size < 2 * WR_CKPT_BLOCK) {
		say(v, ref->name, (uint64_t)st.st_size, "size %llu, the manifest "
		    "says %llu (truncated?)", (unsigned long long)st.st_size,
		    (unsigned long long)ref->size);
		close(fd);
		return -EBADMSG;
	}
	if (wr_ckpt_pread_full(fd, blk, WR_CKPT_BLOCK, 0) != 0 ||
	    wr_ckpt_pread_full(fd, t, sizeof(*t), ref->size - sizeof(*t)) != 0) {
		say(v, ref->name, 0, "read error");
		close(fd);
		return -EBADMSG;
	}
	if (memcmp(t->magic, WR_CKPT_MAGIC_TAIL, 8) != 0 ||
	    t->file_size != ref->size || t->trailer_off > ref->size) {
		say(v, ref->name, ref->size - sizeof(*t), "bad tail");
		close(fd);
		return -EBADMSG;
	}
	*fdp = fd;
	return 0;
}

/* File checksum over (header block?) + buf up to the tail. */
static int check_sum(struct vctx *v, const struct wr_ckpt_file_ref *ref,
		     const uint8_t *pre, const uint8_t *buf, size_t len,
		     const struct wr_ckpt_file_tail *t, uint64_t buf_off)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	if (pre)
		XXH3_64bits_update(&st, pre, WR_CKPT_BLOCK);
	XXH3_64bits_update(&st, buf, len - sizeof(*t));
	if (XXH3_64bits_digest(&st) == t->file_checksum &&
	    t->file_checksum == ref->checksum)
		return 0;
	say(v, ref->name, buf_off, "file checksum mismatch in header or "
	    "trailer (bytes 0-%llu or %llu-%llu)", WR_CKPT_BLOCK - 1ull,
	    (unsigned long long)buf_off, (unsigned long long)ref->size - 1);
	return -EBADMSG;
}

/* Page ids ascend in the descriptors (resolve and the load rely on it). */
static int check_order(struct vctx *v, const char *name,
		       const struct wr_ckpt_page_desc *d, uint32_t count)
{
	for (uint32_t j = 1; j < count; j++)
		if (d[j].page_id <= d[j - 1].page_id)
			return say(v, name, WR_CKPT_BLOCK + (uint64_t)j *
				   v->m->page_size, "descriptors out of order"),
			       -EBADMSG;
	return 0;
}

/* Every page's checksum. */
static int check_pages(struct vctx *v, const char *name, int fd,
		       const struct wr_ckpt_page_desc *d, uint32_t count,
		       uint8_t *page)
{
	uint32_t ps = v->m->page_size, bad = 0;
	int err = check_order(v, name, d, count);

	if (err || v->pages_deferred)
		return err;
	for (uint32_t i = 0; i < count; i += WR_CKPT_CHUNK_PAGES) {
		uint32_t n = count - i < WR_CKPT_CHUNK_PAGES ? count - i : WR_CKPT_CHUNK_PAGES;
		uint64_t off = WR_CKPT_BLOCK + (uint64_t)i * ps;
		if (wr_ckpt_pread_full(fd, page, (size_t)n * ps, off) != 0)
			return say(v, name, off, "read error"), -EBADMSG;
		for (uint32_t j = i; j < i + n; j++, off += ps) {
			if (XXH3_64bits(page + (size_t)(j - i) * ps, ps) ==
			    d[j].checksum)
				continue;
			if (bad++ < BAD_PAGES_REPORTED_MAX)
				say(v, name, off, "checksum mismatch in page "
				    "%u", d[j].page_id);
		}
	}
	return bad ? -EBADMSG : 0;
}

/* A page file: header, tail, trailer, checksums.  *trailer (may be NULL)
 * receives the trailer bytes: descriptors then view ids. */
static int verify_pages_file(struct vctx *v, const struct wr_ckpt_file_ref *r,
			     uint32_t core, uint8_t *page, uint8_t **trailer,
			     struct wr_ckpt_file_tail *t)
{
	uint8_t blk[WR_CKPT_BLOCK], *tr = NULL;
	struct wr_ckpt_file_header h;
	int fd, err = open_checked(v, r, blk, t, &fd);

	if (err)
		return err;
	memcpy(&h, blk, sizeof(h));
	err = check_header(v, r->name, blk, WR_CKPT_MAGIC_PAGES, core);
	if (err == 0)
		err = check_tail(v, r, blk, t, false);
	if (err == 0 &&
	    (h.trailer_off != WR_CKPT_BLOCK + (uint64_t)h.count * h.page_size ||
	     (uint64_t)t->count * 16 + (uint64_t)t->view_count * 4 + 64 >
	     r->size - h.trailer_off))
		err = (say(v, r->name, 0, "header and tail disagree"), -EBADMSG);
	size_t tlen = err ? 0 : (size_t)(r->size - h.trailer_off);
	size_t used = (size_t)t->count * 16 + (size_t)t->view_count * 4;
	if (err == 0 && (tr = malloc(tlen)) == NULL)
		err = -ENOMEM;
	if (err == 0 && wr_ckpt_pread_full(fd, tr, tlen, h.trailer_off) != 0)
		err = (say(v, r->name, h.trailer_off, "read error"), -EBADMSG);
	if (err == 0)
		err = check_zero(v, r->name, tr + used, tlen - sizeof(*t) - used,
				 h.trailer_off + used);
	if (err == 0)
		err = check_sum(v, r, blk, tr, tlen, t, h.trailer_off);
	if (err == 0)
		err = check_pages(v, r->name, fd, (void *)tr, t->count, page);
	close(fd);
	if (err == 0 && trailer)
		*trailer = tr;
	else
		free(tr);
	return err;
}

/* A log file's chunk table tiles its body [4096, body_end); unless the
 * pages are deferred (the load checks them as it replays), every chunk's
 * checksum and entries. */
static int check_chunks(struct vctx *v, const struct wr_ckpt_file_ref *r,
			int fd, const struct wr_ckpt_log_chunk *ch, uint32_t n,
			uint64_t body_end)
{
	uint64_t off = WR_CKPT_BLOCK;
	uint8_t *buf;
	int err = 0;

	for (uint32_t k = 0; k < n; off += ch[k++].len)
		if (ch[k].len == 0 || ch[k].len > WR_ARENA_LOG_CHUNK ||
		    ch[k].len % WR_CKPT_BLOCK || off + ch[k].len > body_end)
			return say(v, r->name, off, "log chunk table corrupt"),
			       -EBADMSG;
	if (off != body_end)
		return say(v, r->name, off, "log chunks end before the "
			   "trailer"), -EBADMSG;
	if (v->pages_deferred)
		return 0;
	if ((buf = malloc(WR_ARENA_LOG_CHUNK)) == NULL)
		return -ENOMEM;
	off = WR_CKPT_BLOCK;
	for (uint32_t k = 0; err == 0 && k < n; off += ch[k++].len) {
		size_t bad = 0;
		if (wr_ckpt_pread_full(fd, buf, ch[k].len, off) != 0)
			err = (say(v, r->name, off, "read error"), -EBADMSG);
		else if (XXH3_64bits(buf, ch[k].len) != ch[k].checksum)
			err = (say(v, r->name, off, "checksum mismatch in log "
				   "chunk %u", k), -EBADMSG);
		else if (wr_arena_log_check(buf, ch[k].len, v->m->page_size,
					    &bad) != 0)
			err = (say(v, r->name, off + bad, "malformed log "
				   "entry"), -EBADMSG);
	}
	free(buf);
	return err;
}

/* A log file: header, tail, chunk table, file checksum, chunks. */
static int verify_log_file(struct vctx *v, const struct wr_ckpt_file_ref *r,
			   uint32_t core)
{
	uint8_t blk[WR_CKPT_BLOCK], *tr = NULL;
	struct wr_ckpt_file_header h;
	struct wr_ckpt_file_tail t;
	int fd, err = open_checked(v, r, blk, &t, &fd);
	size_t tlen = 0;

	if (err)
		return err;
	memcpy(&h, blk, sizeof(h));
	err = check_header(v, r->name, blk, WR_CKPT_MAGIC_LOG, core);
	if (err == 0)
		err = check_tail(v, r, blk, &t, true);
	if (err == 0 && (h.trailer_off < WR_CKPT_BLOCK ||
	    h.trailer_off % WR_CKPT_BLOCK ||
	    (uint64_t)t.count * 16 + 64 > r->size - h.trailer_off))
		err = (say(v, r->name, 0, "header and tail disagree"), -EBADMSG);
	if (err == 0)
		tlen = (size_t)(r->size - h.trailer_off);
	if (err == 0 && (tr = malloc(tlen)) == NULL)
		err = -ENOMEM;
	if (err == 0 && wr_ckpt_pread_full(fd, tr, tlen, h.trailer_off) != 0)
		err = (say(v, r->name, h.trailer_off, "read error"), -EBADMSG);
	if (err == 0)
		err = check_zero(v, r->name, tr + (size_t)t.count * 16,
				 tlen - sizeof(t) - (size_t)t.count * 16,
				 h.trailer_off + (uint64_t)t.count * 16);
	if (err == 0)
		err = check_sum(v, r, blk, tr, tlen, &t, h.trailer_off);
	if (err == 0)
		err = check_chunks(v, r, fd, (const void *)tr, t.count,
				   h.trailer_off);
	close(fd);
	free(tr);
	return err;
}

/* Each section's checksum (a damaged one is reported at its offset), then
 * the zero padding up to the tail. */
static int check_sections(struct vctx *v, const struct wr_ckpt_file_ref *r,
			  const uint8_t *f, const struct wr_ckpt_file_tail *t)
{
	uint64_t end = r->size - sizeof(*t), off = WR_CKPT_BLOCK;

	for (uint64_t i = 0; i < t->count; i++) {
		struct wr_ckpt_section_head h;
		if (off + sizeof(h) > end)
			return say(v, r->name, off, "section past the end"),
			       -EBADMSG;
		memcpy(&h, f + off, sizeof(h));
		if (h.len > end - off - sizeof(h) || h.name[31] != '\0' ||
		    XXH3_64bits(f + off + sizeof(h), h.len) != h.checksum)
			return say(v, r->name, off, "section %" PRIu64 " ('%.31s') "
				   "corrupt (bytes %" PRIu64 "-%" PRIu64 ")", i,
				   h.name[31] == '\0' ? h.name : "?", off,
				   off + sizeof(h) + (h.len < end ? h.len : 0) -
				   1), -EBADMSG;
		off += sizeof(h) + wr_ckpt_round_up(h.len, 8);
	}
	return off > end ? (say(v, r->name, end, "section past the end"),
			    -EBADMSG)
			 : check_zero(v, r->name, f + off, end - off, off);
}

/* A meta file: header, tail, section checksums, file checksum.  *out (may
 * be NULL) receives the whole file. */
static int verify_meta_file(struct vctx *v, const struct wr_ckpt_file_ref *r,
			    uint32_t core, uint8_t **out)
{
	uint8_t blk[WR_CKPT_BLOCK], *f = NULL;
	struct wr_ckpt_file_tail t;
	int fd, err = open_checked(v, r, blk, &t, &fd);

	if (err)
		return err;
	err = check_header(v, r->name, blk, WR_CKPT_MAGIC_META, core);
	if (err == 0)
		err = check_tail(v, r, blk, &t, true);
	if (err == 0 && (f = malloc(r->size)) == NULL)
		err = -ENOMEM;
	if (err == 0 && wr_ckpt_pread_full(fd, f, r->size, 0) != 0)
		err = (say(v, r->name, 0, "read error"), -EBADMSG);
	close(fd);
	/* Sections before the file checksum, which covers them too: a byte
	 * damaged inside a section is then reported at that section, not as
	 * "somewhere in the file" at offset 0. */
	if (err == 0)
		err = check_sections(v, r, f, &t);
	if (err == 0)
		err = check_sum(v, r, NULL, f, r->size, &t, 0);
	if (err == 0 && out)
		*out = f;
	else
		free(f);
	return err;
}

static void resolved_free(struct wr_ckpt_resolved *r)
{
	free(r->page_id);
	free(r->file);
	free(r->off);
	free(r->checksum);
	memset(r, 0, sizeof(*r));
}

/* Newest file's view → (file, offset, checksum), newer files winning. */
static int resolve(struct vctx *v, const struct wr_ckpt_core_info *ci,
		   uint8_t **tr, const struct wr_ckpt_file_tail *t,
		   struct wr_ckpt_resolved *r)
{
	const uint32_t *view = (const uint32_t *)(tr[0] + t[0].count * 16ull);
	uint32_t n = t[0].view_count, maxid = n ? view[n - 1] : 0;
	uint32_t *loc = calloc((size_t)maxid + 1, sizeof(*loc));
	int err = 0;

	r->n = n;
	r->page_id = malloc(n * sizeof(uint32_t) + 1);
	r->file = malloc(n + 1);
	r->off = malloc(n * sizeof(uint64_t) + 1);
	r->checksum = malloc(n * sizeof(uint64_t) + 1);
	if (!loc || !r->page_id || !r->file || !r->off || !r->checksum)
		err = -ENOMEM;
	for (uint32_t k = ci->nchain; err == 0 && k-- > 0;) {
		const struct wr_ckpt_page_desc *d = (const void *)tr[k];
		for (uint32_t i = 0; i < t[k].count; i++)
			if (d[i].page_id <= maxid)
				loc[d[i].page_id] = (k << 24 | i) + 1;
	}
	for (uint32_t i = 0; err == 0 && i < n; i++) {
		uint32_t l = loc[view[i]];
		if ((i > 0 && view[i] <= view[i - 1]) || l == 0) {
			err = -EBADMSG;
			say(v, ci->chain[0].name, t[0].trailer_off, "page %u of "
			    "the snapshot is in no file of its chain", view[i]);
			break;
		}
		uint32_t k = (l - 1) >> 24, j = (l - 1) & 0xffffffu;
		const struct wr_ckpt_page_desc *d = (const void *)tr[k];
		r->page_id[i] = view[i];
		r->file[i] = (uint8_t)k;
		r->off[i] = WR_CKPT_BLOCK + (uint64_t)j * v->m->page_size;
		r->checksum[i] = d[j].checksum;
	}
	free(loc);
	return err;
}

/* Deferred open: the pages of chain file k the view does not use (an
 * older version of a page, or a page freed since) are never loaded, so
 * they are checked here: every page of every file still verifies once. */
static int check_unused_file(struct vctx *v, const struct wr_ckpt_file_ref *f,
			     const struct wr_ckpt_page_desc *d, uint32_t count,
			     const uint8_t *used, uint8_t *page)
{
	uint32_t ps = v->m->page_size, bad = 0;
	int fd = -1;

	for (uint32_t j = 0; j < count; j++) {
		uint64_t off = WR_CKPT_BLOCK + (uint64_t)j * ps;
		if (used[j])
			continue;
		if (fd < 0 && (fd = openat(v->dirfd, f->name, O_RDONLY |
					   O_CLOEXEC)) < 0)
			return say(v, f->name, 0, "cannot open: %s",
				   strerror(errno)), -EBADMSG;
		if (wr_ckpt_pread_full(fd, page, ps, off) != 0) {
			bad++, say(v, f->name, off, "read error");
			break;
		}
		if (XXH3_64bits(page, ps) != d[j].checksum &&
		    bad++ < BAD_PAGES_REPORTED_MAX)
			say(v, f->name, off, "checksum mismatch in page %u",
			    d[j].page_id);
	}
	if (fd >= 0)
		close(fd);
	return bad ? -EBADMSG : 0;
}

static int check_unused(struct vctx *v, const struct wr_ckpt_core_info *ci,
			const struct wr_ckpt_resolved *r, uint8_t **tr,
			const struct wr_ckpt_file_tail *t, uint8_t *page)
{
	uint8_t *used[WR_CKPT_CHAIN_MAX] = { 0 };
	int err = 0;

	for (uint32_t k = 0; err == 0 && k < ci->nchain; k++)
		if ((used[k] = calloc((size_t)t[k].count + 1, 1)) == NULL)
			err = -ENOMEM;
	for (uint32_t i = 0; err == 0 && i < r->n; i++)
		used[r->file[i]][(r->off[i] - WR_CKPT_BLOCK) /
				 v->m->page_size] = 1;
	for (uint32_t k = 0; k < ci->nchain; k++) {
		if (err == 0)
			err = check_unused_file(v, &ci->chain[k], (const void *)
						tr[k], t[k].count, used[k],
						page);
		free(used[k]);
	}
	return err;
}

/* Verifies one core's chain and meta file; fills r and *meta if given. */
static int verify_core(struct vctx *v, uint32_t core, uint8_t *page,
		       struct wr_ckpt_resolved *r, uint8_t **meta)
{
	const struct wr_ckpt_core_info *ci = &v->m->core[core];
	uint8_t *tr[WR_CKPT_CHAIN_MAX] = { 0 };
	struct wr_ckpt_file_tail t[WR_CKPT_CHAIN_MAX];
	int err = 0;

	for (uint32_t k = 0; k < ci->nchain; k++) {
		int e = verify_pages_file(v, &ci->chain[k], core, page, &tr[k],
					  &t[k]);
		err = err ? err : e;
	}
	if (err == 0 && (t[0].view_count != ci->view_pages ||
			 t[0].count != ci->pages_written))
		err = (say(v, ci->chain[0].name, 0, "page counts differ from "
			   "the manifest"), -EBADMSG);
	if (err == 0) {
		struct wr_ckpt_resolved tmp = { 0 };
		err = resolve(v, ci, tr, t, r ? r : &tmp);
		if (err == 0 && v->pages_deferred)
			err = check_unused(v, ci, r ? r : &tmp, tr, t, page);
		resolved_free(&tmp);
	}
	for (uint32_t k = 0; k < ci->nlog; k++) {
		int e = verify_log_file(v, &ci->log[k], core);
		err = err ? err : e;
	}
	int e = verify_meta_file(v, &ci->meta, core, meta);
	for (uint32_t k = 0; k < ci->nchain; k++)
		free(tr[k]);
	return err ? err : e;
}

/* Every file of manifest m; c (may be NULL) receives indices and meta. */
static int verify_all(struct vctx *v, struct wr_ckpt *c)
{
	uint8_t *page = NULL;
	int err = 0;

	if (posix_memalign((void **)&page, WR_CKPT_BLOCK,
			   (size_t)WR_CKPT_CHUNK_PAGES * v->m->page_size))
		return -ENOMEM;
	for (uint32_t core = 0; core < v->m->cores; core++) {
		int e = verify_core(v, core, page, c ? &c->res[core] : NULL,
				    c ? &c->meta[core] : NULL);
		if (e == -ENOMEM) {
			err = e;
			break;
		}
	}
	if (c)
		c->page = page;
	else
		free(page);
	if (err)
		return err;
	return v->problems ? -EBADMSG : 0;
}

void wr_ckpt_close(struct wr_ckpt *c)
{
	if (c == NULL)
		return;
	for (uint32_t i = 0; c->res && i < c->m.cores; i++)
		resolved_free(&c->res[i]);
	for (uint32_t i = 0; c->meta && i < c->m.cores; i++)
		free(c->meta[i]);
	free(c->res);
	free(c->meta);
	free(c->page);
	for (uint32_t i = 0; c->fds && i < c->m.cores * WR_CKPT_CHAIN_MAX; i++)
		if (c->fds[i] >= 0)
			close(c->fds[i]);
	free(c->fds);
	wr_ckpt_manifest_free(&c->m);
	if (c->dirfd >= 0)
		close(c->dirfd);
	free(c);
}

static void say_manifest(struct vctx *v, uint64_t id, uint64_t off,
			 const char *what)
{
	char name[64];

	wr_ckpt_manifest_name(name, sizeof(name), id, "");
	say(v, name, off, "%s", what);
}

/* Reads manifest id into v->m (owned by the caller). */
static int read_manifest(struct vctx *v, uint64_t id,
			 struct wr_ckpt_manifest *m)
{
	uint64_t off;
	int err = wr_ckpt_manifest_read_at(v->dirfd, id, m, &off);

	v->m = m;
	if (err == -EPROTONOSUPPORT)
		return wr_ckpt_version_error(id, m->version);
	if (err == -EBADMSG)
		say_manifest(v, id, off, "manifest corrupt");
	else if (err)
		say_manifest(v, id, 0, strerror(-err));
	return err;
}

/* Opens checkpoint id: -ESTALE / -EPROTONOSUPPORT refuse, others fall
 * back. */
static int try_open(struct vctx *v, uint64_t id, uint64_t fp,
		    struct wr_ckpt **out)
{
	struct wr_ckpt *c = calloc(1, sizeof(*c));
	int err;

	if (c == NULL)
		return -ENOMEM;
	c->dirfd = -1;
	err = read_manifest(v, id, &c->m);
	if (err == 0 && fp != 0 && c->m.fingerprint != fp)
		err = wr_error(-ESTALE, "checkpoint %llu was written by another "
			       "pipeline (fingerprint %016llx, this job %016llx"
			       ", '%s'): refused", (unsigned long long)id,
			       (unsigned long long)c->m.fingerprint,
			       (unsigned long long)fp, c->m.job);
	if (err == 0) {
		c->res = calloc(c->m.cores, sizeof(*c->res));
		c->meta = calloc(c->m.cores, sizeof(*c->meta));
		c->fds = malloc(c->m.cores * WR_CKPT_CHAIN_MAX * sizeof(int));
		for (uint32_t i = 0; c->fds && i < c->m.cores *
		     WR_CKPT_CHAIN_MAX; i++)
			c->fds[i] = -1;
		err = c->res && c->meta && c->fds ? verify_all(v, c) : -ENOMEM;
	}
	if (err) {
		wr_ckpt_close(c);
		return err;
	}
	*out = c;
	return 0;
}

/* The newest of ids[0, n) that opens (want_id 0) or exactly want_id, only
 * ids below below_id (0 = any); see wr_ckpt_open. */
static int open_newest(struct vctx *v, const uint64_t *ids, uint32_t n,
		       uint64_t want_id, uint64_t below_id, uint64_t fp,
		       struct wr_ckpt **out)
{
	int err = -ENOENT;

	for (uint32_t i = n; i-- > 0;) {
		if ((want_id && ids[i] != want_id) ||
		    (below_id && ids[i] >= below_id))
			continue;
		v->problems = 0;
		err = try_open(v, ids[i], fp, out);
		if (err == 0) {
			(*out)->dirfd = v->dirfd;
			(*out)->pages_verified = !v->pages_deferred;
			(*out)->report = v->report;
			(*out)->arg = v->arg;
			return 0;
		}
		if (err == -ESTALE || err == -EPROTONOSUPPORT || err == -ENOMEM)
			return err;
		say_manifest(v, ids[i], 0, i > 0 && !want_id ? "checkpoint "
			     "does not verify; falling back to the previous"
			     : "checkpoint does not verify");
		err = -ENOENT;
	}
	return err;
}

static int open_dir(const char *dir, uint64_t want_id, uint64_t below_id,
		    uint64_t fp, struct vctx *v, struct wr_ckpt **out)
{
	uint64_t ids[1024];
	uint32_t n;
	int err = wr_ckpt_list(dir, ids, 1024, &n);

	if (err)
		return err;
	v->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (v->dirfd < 0)
		return -errno;
	err = open_newest(v, ids, n < 1024 ? n : 1024, want_id, below_id, fp,
			  out);
	if (err == 0)
		return 0;
	close(v->dirfd);
	if (err == -ENOENT)
		err = wr_error(-ENOENT, "checkpoint: no committed checkpoint "
			       "%s%sverifies in %s", want_id ? "with that id " :
			       below_id ? "older than a failed one " : "",
			       n ? "" : "(none at all) ", dir);
	return err;
}

int wr_ckpt_open(const char *dir, uint64_t want_id, uint64_t fingerprint,
		 wr_ckpt_report_fn report, void *arg, struct wr_ckpt **out)
{
	struct vctx v = { .report = report, .arg = arg };

	return open_dir(dir, want_id, 0, fingerprint, &v, out);
}

int wr_ckpt_open_deferred(const char *dir, uint64_t below_id,
			  uint64_t fingerprint, wr_ckpt_report_fn report,
			  void *arg, struct wr_ckpt **out)
{
	struct vctx v = { .report = report, .arg = arg,
			  .pages_deferred = true };

	return open_dir(dir, 0, below_id, fingerprint, &v, out);
}

bool wr_ckpt_pages_bad(const struct wr_ckpt *c)
{
	/* Pairs with the store in wr_ckpt_page_failed, on another loader
	 * thread; the caller joined it (or passed a start gate) first. */
	return atomic_load_explicit(&c->pages_bad, memory_order_relaxed);
}

int wr_ckpt_page_failed(struct wr_ckpt *c, const char *file, uint64_t off,
			const char *what)
{
	char name[64];

	atomic_store_explicit(&c->pages_bad, true, memory_order_relaxed);
	if (c->report) {
		c->report(c->arg, file, off, what);
		wr_ckpt_manifest_name(name, sizeof(name), c->m.id, "");
		c->report(c->arg, name, 0, "checkpoint does not verify (found "
			  "while loading its pages)");
	}
	return wr_error(-EBADMSG, "checkpoint: %s at offset %llu: %s", file,
			(unsigned long long)off, what);
}

int wr_ckpt_verify(const char *dir, uint64_t id, wr_ckpt_report_fn report,
		   void *arg)
{
	struct vctx v = { .report = report, .arg = arg };
	struct wr_ckpt_manifest m = { 0 };
	uint64_t ids[1024];
	uint32_t n;
	int err = wr_ckpt_list(dir, ids, 1024, &n);

	if (err)
		return err;
	if (id == 0 && n == 0)
		return wr_error(-ENOENT, "no committed checkpoint in %s", dir);
	if (id == 0)
		id = ids[(n < 1024 ? n : 1024) - 1];
	v.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (v.dirfd < 0)
		return -errno;
	err = read_manifest(&v, id, &m);
	if (err == 0)
		err = verify_all(&v, NULL);
	wr_ckpt_manifest_free(&m);
	close(v.dirfd);
	return err;
}

const struct wr_ckpt_manifest *wr_ckpt_info(const struct wr_ckpt *c)
{
	return &c->m;
}

/* Pages [i, i + n) of core's view into c->page, checksums verified (again
 * if open verified them: the files may have changed since). */
static int read_pages(struct wr_ckpt *c, uint32_t core, uint32_t i,
		      uint32_t n)
{
	const struct wr_ckpt_resolved *r = &c->res[core];
	const struct wr_ckpt_file_ref *f = &c->m.core[core].chain[r->file[i]];
	int *fd = &c->fds[core * WR_CKPT_CHAIN_MAX + r->file[i]];
	uint32_t ps = c->m.page_size;
	char what[64];

	if (*fd < 0 && (*fd = openat(c->dirfd, f->name, O_RDONLY |
				     O_CLOEXEC)) < 0)
		return wr_error(-errno, "checkpoint: cannot open %s: %s",
				f->name, strerror(errno));
	if (wr_ckpt_pread_full(*fd, c->page, (size_t)n * ps, r->off[i]) != 0)
		return wr_ckpt_page_failed(c, f->name, r->off[i], "read error");
	for (uint32_t j = 0; j < n; j++) {
		if (XXH3_64bits(c->page + (size_t)j * ps, ps) ==
		    r->checksum[i + j])
			continue;
		snprintf(what, sizeof(what), "checksum mismatch in page %u",
			 r->page_id[i + j]);
		return wr_ckpt_page_failed(c, f->name, r->off[i + j], what);
	}
	return 0;
}

static int read_page(struct wr_ckpt *c, uint32_t core, uint32_t i)
{
	return read_pages(c, core, i, 1);
}

int wr_ckpt_page_next(struct wr_ckpt *c, struct wr_ckpt_page_iter *it,
		      uint32_t *page_id, const void **bytes)
{
	int err;

	if (it->core >= c->m.cores)
		return wr_error(-EINVAL, "checkpoint: no core %u (of %u)",
				it->core, c->m.cores);
	if (it->next >= c->res[it->core].n)
		return 0;
	err = read_page(c, it->core, it->next);
	if (err)
		return err;
	*page_id = c->res[it->core].page_id[it->next++];
	*bytes = c->page;
	return 1;
}

int wr_ckpt_section(struct wr_ckpt *c, uint32_t core, const char *name,
		    const void **bytes, size_t *len)
{
	const uint8_t *f;
	struct wr_ckpt_file_header h;

	if (core >= c->m.cores)
		return wr_error(-EINVAL, "checkpoint: no core %u", core);
	f = c->meta[core];
	memcpy(&h, f, sizeof(h));
	for (uint64_t off = WR_CKPT_BLOCK, i = 0; i < h.count; i++) {
		struct wr_ckpt_section_head s;
		memcpy(&s, f + off, sizeof(s));
		if (strcmp(s.name, name) == 0) {
			*bytes = f + off + sizeof(s);
			*len = s.len;
			return 0;
		}
		off += sizeof(s) + wr_ckpt_round_up(s.len, 8);
	}
	return -ENOENT;
}
