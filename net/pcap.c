/*
 * pcap.c — classic pcap and pcapng readers over one read-only mapping.
 *
 * The whole file is mmap()ed at open: a frame is a pointer into the mapping,
 * so reading costs no copy and no syscall per packet, and the page cache
 * does the read-ahead (MADV_SEQUENTIAL).  Every length read from the file is
 * compared with the bytes that remain before anything is dereferenced:
 * `size - off` never underflows because off <= size always holds.
 *
 * Record loop states:
 *   READING --next: record ok--> READING
 *   READING --next: record cut by EOF--> END (stats.truncated++)
 *   READING --next: corrupt length--> FAILED (sticky -EBADMSG)
 *   READING --skip--> READING (stops before a record next would end or
 *                              fail at: that record is left to next)
 *   any     --seek--> READING
 *
 * One code path serves next and skip: the record/block functions take the
 * frame to fill, and NULL means a skip — validate and account exactly as
 * next would, fill nothing, and where next would end, count a truncation or
 * fail, return STEP_STOP without changing the reader.  So skip(n) lands
 * where n calls of next would, by construction.
 *
 * pcapng specifics: the byte order can change at each Section Header Block;
 * interfaces (link type, timestamp resolution) are numbered per section.
 * A position therefore carries the section's offset and how many IDBs were
 * seen, so seek can rebuild the interface table (see net.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "net/bytes.h"
#include "weir/net.h"

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_MAGIC_NS 0xa1b23c4du
#define PCAP_MAGIC_MOD 0xa1b2cd34u /* Kuznetzov: 8 more bytes per record */
#define PCAP_FILE_HDR 24u

#define NG_SHB 0x0a0d0d0au
#define NG_IDB 1u
#define NG_OPB 2u /* obsolete Packet Block */
#define NG_SPB 3u
#define NG_EPB 6u
#define NG_BOM 0x1a2b3c4du
#define NG_SHB_MIN 28u

enum fmt { FMT_PCAP, FMT_PCAPNG };
/* ST_MORE: a stream's buffer ends where its next bytes have not come yet
 * (STREAMS below). */
enum rstate { ST_READING, ST_END, ST_FAILED, ST_MORE };

struct iface {
	uint32_t linktype;
	uint32_t snaplen;
	uint8_t res_pow2; /* timestamp unit is 2^-res_exp s, else 10^-res_exp */
	uint8_t res_exp;
	bool supported;   /* weir_linktype_supported(linktype), once per IDB */
	int64_t offset_s; /* if_tsoffset */
	uint64_t end;     /* offset just after this IDB (seek's fast path) */
};

/* A stream's input (STREAMS, below). */
struct pcap_stream {
	struct io_uring ring;
	bool ring_up;       /* ring set up: exit it at close */
	int fd;
	bool inflight;
	bool eof;
	uint8_t *buf;
	uint64_t cap;
};

struct weir_pcap {
	const uint8_t *base;
	uint64_t size;      /* a stream: the bytes in its buffer */
	int mapped;         /* munmap at close */
	struct pcap_stream *st; /* a stream's input, else NULL */
	uint64_t shift;     /* a stream: bytes dropped before base[0] */
	enum fmt fmt;
	int be;             /* file (pcapng: section) is big-endian */
	enum rstate state;
	int err;            /* sticky error in ST_FAILED */
	uint64_t off;       /* next record / block */
	uint64_t index;     /* frames delivered before off */
	/* classic pcap */
	uint32_t rec_hdr;   /* 16, or 24 for the modified format */
	uint32_t frac_ns;   /* ns per unit of the fraction: 1000 or 1 */
	uint32_t linktype;
	/* pcapng */
	uint64_t section_off;
	uint64_t section_hdr_end; /* offset just after the SHB at section_off */
	uint32_t n_if;
	struct iface ifs[WEIR_PCAP_INTERFACES_MAX];
	struct weir_pcap_stats stats;
	char name[192];
};


/* Timestamp in interface units → ns (unsigned: a bogus value wraps, no UB). */
static uint64_t iface_ts_ns(const struct iface *ifc, uint64_t ts)
{
	uint64_t ns;

	if (ifc->res_pow2)
		ns = (uint64_t)(((unsigned __int128)ts * 1000000000u) >>
				ifc->res_exp);
	else if (ifc->res_exp <= 9)
		ns = ts * wr_pow10[9 - ifc->res_exp];
	else if (ifc->res_exp < 29)
		ns = ts / wr_pow10[ifc->res_exp - 9];
	else
		ns = 0;
	return ns + (uint64_t)ifc->offset_s * 1000000000u;
}

static int fail(struct weir_pcap *r, int err, uint64_t off, const char *what)
{
	r->state = ST_FAILED;
	r->err = err;
	return wr_error(err, "%s: %s at offset %llu", r->name, what,
			(unsigned long long)(off + r->shift));
}

/* The bytes end at r->off, between records (cut false) or inside one: the
 * capture's end, or, in a stream not at its end, where its next bytes will
 * be appended (ST_MORE: nothing counted, nothing consumed). */
static int bytes_end(struct weir_pcap *r, bool cut)
{
	if (WEIR_UNLIKELY(r->st != NULL) && !r->st->eof) {
		r->state = ST_MORE;
		return 0;
	}
	r->stats.truncated += cut;
	r->state = ST_END;
	return 0;
}

/* The record/block at r->off runs past the end: the capture stopped there. */
static int truncated_end(struct weir_pcap *r)
{
	return bytes_end(r, true);
}

static int unsupported_linktype(const char *name, uint32_t lt)
{
	return wr_error(-ENOTSUP, "%s: link type %u (%s) is not supported",
			name, lt, weir_linktype_name(lt));
}

/* ---------------------------------------------------------------- classic */

static int classic_open(struct weir_pcap *r, uint32_t magic_le)
{
	const uint8_t *h = r->base;
	uint32_t magic;

	r->fmt = FMT_PCAP;
	r->be = (magic_le & 0xffu) == 0xa1u; /* first byte 0xa1: big-endian */
	magic = wr_ld32(h, r->be);
	r->frac_ns = magic == PCAP_MAGIC_NS ? 1 : 1000;
	r->rec_hdr = magic == PCAP_MAGIC_MOD ? 24 : 16;
	if (r->size < PCAP_FILE_HDR)
		return wr_error(-EBADMSG,
				"%s: truncated pcap file header (%llu of %u bytes)",
				r->name, (unsigned long long)r->size,
				PCAP_FILE_HDR);
	if (wr_ld16(h + 4, r->be) != 2)
		return wr_error(-EBADMSG, "%s: pcap version %u.%u is not 2.x",
				r->name, wr_ld16(h + 4, r->be),
				wr_ld16(h + 6, r->be));
	/* Bits 16-31 carry FCS information, not the link type. */
	r->linktype = wr_ld32(h + 20, r->be) & 0xffffu;
	if (!weir_linktype_supported(r->linktype))
		return unsupported_linktype(r->name, r->linktype);
	r->off = PCAP_FILE_HDR;
	return 0;
}

/* The record at r->off (off < size): 1 whole (its *caplen), 0 cut by the
 * end of the file, -1 an absurd captured length. */
static inline int classic_rec(const struct weir_pcap *r, uint32_t *caplen)
{
	if (r->size - r->off < r->rec_hdr)
		return 0;
	*caplen = wr_ld32(r->base + r->off + 8, r->be);
	if (*caplen > WEIR_PCAP_CAPLEN_MAX)
		return -1;
	return r->size - r->off - r->rec_hdr >= *caplen;
}

static int classic_next(struct weir_pcap *r, struct weir_frame *f)
{
	const uint8_t *h = r->base + r->off;
	uint32_t caplen;
	int rc;

	if (r->off == r->size)
		return bytes_end(r, false);
	rc = classic_rec(r, &caplen);
	if (rc < 0)
		return fail(r, -EBADMSG, r->off,
			    "record with an absurd captured length");
	if (rc == 0)
		return truncated_end(r);
	f->data = h + r->rec_hdr;
	f->caplen = caplen;
	f->wire_len = wr_ld32(h + 12, r->be);
	f->ts_ns = (uint64_t)wr_ld32(h, r->be) * 1000000000u +
		   (uint64_t)wr_ld32(h + 4, r->be) * r->frac_ns;
	f->linktype = r->linktype;
	f->interface = 0;
	r->off += r->rec_hdr + caplen;
	return 1;
}

/*
 * Records are read as a chain: each header's length says where the next
 * one starts, so a header that misses the cache stalls the walk for a
 * whole DRAM access, and the L2's streamer stops at every 4 KiB page of
 * the mapping.  Each record read asks for the two lines PREFETCH_AHEAD
 * bytes on (two: a record of a small packet is ~1.7 lines), which breaks
 * the chain for the next ~37 records of 111 bytes.  Measured (bench/
 * RESULTS.md 2026-12-07, `weir flows --pcap` of 20 M packets, 1 core,
 * four rounds of each): 6.55 Mpps without, 7.71 at 2 KiB ahead, 9.44 at
 * 4 KiB, 8.8 at 6 KiB.
 */
#define PREFETCH_AHEAD 4096u

static inline void prefetch_ahead(const uint8_t *base, uint64_t off,
				  uint64_t size)
{
	if (size - off > PREFETCH_AHEAD + 64) {
		__builtin_prefetch(base + off + PREFETCH_AHEAD);
		__builtin_prefetch(base + off + PREFETCH_AHEAD + 64);
	}
}

/* Up to n whole records: one length load and two compares each (the end
 * of the file is a record of 0 bytes left, which classic_rec calls cut). */
static uint64_t classic_skip(struct weir_pcap *r, uint64_t n)
{
	uint64_t k = 0;
	uint32_t caplen;

	while (k < n) {
		prefetch_ahead(r->base, r->off, r->size);
		if (classic_rec(r, &caplen) <= 0)
			break;
		r->off += r->rec_hdr + caplen;
		k++;
	}
	return k;
}

/* ---------------------------------------------------------------- pcapng */

/*
 * Check the block at `off`: 1 and its type and length if it is whole, 0 if
 * it runs past the end of the file, -EBADMSG (and *why) if its length is
 * impossible.  An SHB also sets *be from its byte-order magic; other blocks
 * are read in *be.
 */
static int ng_block(const struct weir_pcap *r, uint64_t off, int *be,
		    uint32_t *type, uint32_t *len, const char **why)
{
	const uint8_t *b = r->base + off;
	uint64_t left = r->size - off;

	if (left < 12)
		return 0;
	*type = wr_ld32(b, *be); /* the SHB type reads the same either way */
	if (*type == NG_SHB) {
		if (wr_ld32le(b + 8) == NG_BOM) {
			*be = 0;
		} else if (wr_ld32be(b + 8) == NG_BOM) {
			*be = 1;
		} else {
			*why = "section header with a bad byte-order magic";
			return -EBADMSG;
		}
	}
	*len = wr_ld32(b + 4, *be);
	if (*len < 12 || *len % 4 != 0) {
		*why = "block with an impossible length";
		return -EBADMSG;
	}
	if (*len > left)
		return 0;
	if (wr_ld32(b + *len - 4, *be) != *len) {
		*why = "block whose trailing length does not match";
		return -EBADMSG;
	}
	return 1;
}

static uint64_t ld64(const uint8_t *p, int be)
{
	uint64_t a = wr_ld32(p, be), b = wr_ld32(p + 4, be);

	return be ? (a << 32 | b) : (b << 32 | a);
}

/* Options of an IDB: if_tsresol (9) and if_tsoffset (14).  A malformed
 * option ends the walk; the defaults stand (options are not key data). */
static void idb_options(struct iface *ifc, const uint8_t *b, uint32_t len,
			int be)
{
	uint32_t o = 16, end = len - 4;

	while (o + 4 <= end) {
		uint16_t code = wr_ld16(b + o, be), olen = wr_ld16(b + o + 2, be);

		if (code == 0 || olen > end - o - 4)
			break;
		if (code == 9 && olen >= 1) {
			ifc->res_pow2 = b[o + 4] >> 7;
			ifc->res_exp = b[o + 4] & 0x7f;
		} else if (code == 14 && olen >= 8) {
			ifc->offset_s = (int64_t)ld64(b + o + 4, be);
		}
		o += 4 + (((uint32_t)olen + 3) & ~3u);
	}
}

enum {
	STEP_END = 0, STEP_FRAME = 1, STEP_BLOCK = 2, STEP_SKIPPED = 3,
	STEP_STOP = 4, /* a skip reached what next must report */
};

/* A record next() reports as corrupt: next (f != NULL) fails; a skip
 * (f == NULL) stops before it.  Every caller checks before it changes
 * anything, so a stop leaves the reader as it was. */
static int bad(struct weir_pcap *r, const struct weir_frame *f, uint64_t off,
	       const char *why)
{
	return f != NULL ? fail(r, -EBADMSG, off, why) : STEP_STOP;
}

static int ng_idb(struct weir_pcap *r, uint64_t off, uint32_t len,
		  const struct weir_frame *f)
{
	const uint8_t *b = r->base + off;
	struct iface *ifc;

	if (len < 20)
		return bad(r, f, off, "interface description too short");
	if (r->n_if == WEIR_PCAP_INTERFACES_MAX)
		return bad(r, f, off,
			   "more interfaces in one section than supported (64)");
	ifc = &r->ifs[r->n_if++];
	memset(ifc, 0, sizeof(*ifc));
	ifc->linktype = wr_ld16(b + 8, r->be);
	ifc->supported = weir_linktype_supported(ifc->linktype);
	ifc->snaplen = wr_ld32(b + 12, r->be);
	ifc->res_exp = 6; /* default: microseconds */
	ifc->end = off + len;
	idb_options(ifc, b, len, r->be);
	return 0;
}

static int ng_shb(struct weir_pcap *r, uint64_t off, uint32_t len, int be,
		  const struct weir_frame *f)
{
	if (len < NG_SHB_MIN)
		return bad(r, f, off, "section header too short");
	if (wr_ld16(r->base + off + 12, be) != 1)
		return bad(r, f, off, "pcapng major version is not 1");
	r->be = be;
	r->section_off = off;
	r->section_hdr_end = off + len;
	r->n_if = 0;
	return 0;
}

/* Enhanced (6) and obsolete (2) packet blocks share one layout, except that
 * the obsolete one has a 16-bit interface id followed by a drop count. */
static int ng_epb(struct weir_pcap *r, uint64_t off, uint32_t type,
		  uint32_t len, struct weir_frame *f)
{
	const uint8_t *b = r->base + off;
	uint32_t ifid, caplen;
	uint64_t ts;

	if (len < 32)
		return bad(r, f, off, "packet block too short");
	ifid = type == NG_EPB ? wr_ld32(b + 8, r->be) : wr_ld16(b + 8, r->be);
	caplen = wr_ld32(b + 20, r->be);
	if (caplen > len - 32)
		return bad(r, f, off, "packet longer than its block");
	if (ifid >= r->n_if)
		return bad(r, f, off, "packet on an undefined interface");
	if (!r->ifs[ifid].supported) {
		r->stats.unsupported++;
		return STEP_SKIPPED;
	}
	if (f == NULL)
		return STEP_FRAME;
	ts = (uint64_t)wr_ld32(b + 12, r->be) << 32 | wr_ld32(b + 16, r->be);
	f->data = b + 28;
	f->caplen = caplen;
	f->wire_len = wr_ld32(b + 24, r->be);
	f->ts_ns = iface_ts_ns(&r->ifs[ifid], ts);
	f->linktype = r->ifs[ifid].linktype;
	f->interface = ifid;
	return STEP_FRAME;
}

/* Simple packet block: interface 0, no timestamp, the captured length is
 * what fits: min(original length, snaplen, block body). */
static int ng_spb(struct weir_pcap *r, uint64_t off, uint32_t len,
		  struct weir_frame *f)
{
	const uint8_t *b = r->base + off;
	uint32_t caplen;

	if (len < 16)
		return bad(r, f, off, "simple packet block too short");
	if (r->n_if == 0)
		return bad(r, f, off, "packet on an undefined interface");
	if (!r->ifs[0].supported) {
		r->stats.unsupported++;
		return STEP_SKIPPED;
	}
	if (f == NULL)
		return STEP_FRAME;
	f->wire_len = wr_ld32(b + 8, r->be);
	caplen = len - 16;
	if (f->wire_len < caplen)
		caplen = f->wire_len;
	if (r->ifs[0].snaplen != 0 && r->ifs[0].snaplen < caplen)
		caplen = r->ifs[0].snaplen;
	f->data = b + 12;
	f->caplen = caplen;
	f->ts_ns = 0;
	f->linktype = r->ifs[0].linktype;
	f->interface = 0;
	return STEP_FRAME;
}

/* Consume the block at r->off: STEP_*, or -EBADMSG (next only). */
static int ng_step(struct weir_pcap *r, struct weir_frame *f)
{
	const char *why = "";
	uint32_t type, len;
	int be = r->be, rc;

	if (r->off == r->size)
		return f == NULL ? STEP_STOP : bytes_end(r, false);
	rc = ng_block(r, r->off, &be, &type, &len, &why);
	if (rc < 0)
		return bad(r, f, r->off, why);
	if (rc == 0)
		return f != NULL ? truncated_end(r) : STEP_STOP;
	switch (type) {
	case NG_SHB:
		rc = ng_shb(r, r->off, len, be, f);
		break;
	case NG_IDB:
		rc = ng_idb(r, r->off, len, f);
		break;
	case NG_EPB:
	case NG_OPB:
		rc = ng_epb(r, r->off, type, len, f);
		break;
	case NG_SPB:
		rc = ng_spb(r, r->off, len, f);
		break;
	default:
		r->stats.skipped_blocks++;
		rc = 0;
	}
	if (rc < 0 || rc == STEP_STOP)
		return rc;
	r->off += len;
	return rc == 0 ? STEP_BLOCK : rc;
}

static int ng_next(struct weir_pcap *r, struct weir_frame *f)
{
	int rc;

	do {
		prefetch_ahead(r->base, r->off, r->size);
		rc = ng_step(r, f); /* each step consumes >= 12 bytes */
	} while (rc == STEP_BLOCK || rc == STEP_SKIPPED);
	return rc;
}

/* Up to n packets of supported interfaces; ends right after the n-th, as
 * next does.  Bounded: every step consumes >= 12 bytes or stops. */
static uint64_t ng_skip(struct weir_pcap *r, uint64_t n)
{
	uint64_t k = 0;

	while (k < n) {
		prefetch_ahead(r->base, r->off, r->size);
		int rc = ng_step(r, NULL);

		if (rc == STEP_FRAME)
			k++;
		else if (rc == STEP_STOP)
			break;
	}
	return k;
}

/*
 * The first section header must be whole and valid.  Then look ahead (on a
 * copy) at the interfaces declared before the first packet: if there are
 * some and none has a supported link type, say so now, at open.
 */
static int ng_open(struct weir_pcap *r)
{
	const char *why = "truncated section header";
	struct weir_pcap *tmp;
	struct weir_frame f;
	uint32_t type, len, i;
	int be = 0, rc, n;

	r->fmt = FMT_PCAPNG;
	rc = ng_block(r, 0, &be, &type, &len, &why);
	if (rc <= 0 || len < NG_SHB_MIN)
		return wr_error(-EBADMSG, "%s: %s (pcapng)", r->name, why);
	tmp = malloc(sizeof(*tmp));
	if (tmp == NULL)
		return wr_error(-ENOMEM, "%s: out of memory", r->name);
	*tmp = *r;
	for (n = 0, rc = STEP_BLOCK; n < 1024 && rc == STEP_BLOCK; n++)
		rc = ng_step(tmp, &f);
	if (rc < 0 && n == 1) {
		rc = wr_error(tmp->err, "%s", weir_last_error());
		free(tmp);
		return rc;
	}
	r->linktype = tmp->n_if ? tmp->ifs[0].linktype : 0;
	for (i = 0; i < tmp->n_if; i++)
		if (weir_linktype_supported(tmp->ifs[i].linktype))
			break;
	rc = (tmp->n_if > 0 && i == tmp->n_if) ?
		unsupported_linktype(r->name, r->linktype) : 0;
	free(tmp);
	if (rc == 0)
		wr_error_clear();
	return rc;
}

/* ---------------------------------------------------------------- streams */

/*
 * STREAMS (weir_pcap_open_fd): a pipe, a FIFO, a socket or a terminal is
 * read into one buffer, base[0 .. size), through an io_uring with at most
 * one read in flight into its free tail, base[size .. cap).  The record
 * code above parses the buffer as it parses a mapping; where the bytes end
 * before the stream does, bytes_end() leaves the reader in ST_MORE instead
 * of counting the end, and the next call of next()/next_burst() first
 * pumps: it takes the read's completion if it has come, and, with no read
 * in flight, makes room and submits the next one.  Room is made only there,
 * at the start of a call, so a frame is valid until the next call:
 *
 *   - the tail has less than STREAM_READ_MIN free: the unparsed bytes
 *     [off, size) move to base[0] (shift counts the bytes dropped, so
 *     offsets in positions and messages are the stream's own);
 *   - the buffer is one unfinished record: it doubles, up to
 *     STREAM_CAP_MAX (a longer record or block is called corrupt).
 *
 * A read of 0 bytes is the end: from then on the end of the buffer is the
 * capture's, counted as for a file.  io_uring waits for a pipe's data
 * without a thread (it polls), so a call never blocks, except in
 * weir_pcap_open_fd(), which waits for the file header.
 */
#define STREAM_CAP_INIT (4u << 20)
#define STREAM_CAP_MAX (2ull * WEIR_PCAP_CAPLEN_MAX)
#define STREAM_READ_MIN (64u << 10)
#define STREAM_PIPE_SIZE (1 << 20) /* asked of a pipe: fewer, larger reads */
#define STREAM_ALIGN (2u << 20)    /* transparent huge pages */


static uint8_t *stream_alloc(uint64_t cap)
{
	uint8_t *b = aligned_alloc(STREAM_ALIGN, cap);

	if (b != NULL)
		madvise(b, cap, MADV_HUGEPAGE);
	return b;
}

/* Room for the next read (0), none yet (1: the parser is further from the
 * buffer's end than from its start), or the error.  Drops the parsed bytes
 * when the tail is short, and doubles the buffer when it holds one
 * unfinished record. */
static int stream_room(struct weir_pcap *r)
{
	struct pcap_stream *st = r->st;
	uint64_t left = r->size - r->off;

	if (st->cap - r->size >= STREAM_READ_MIN)
		return 0;
	/* Move the unparsed bytes only once at least as many were parsed:
	 * each byte moves about once. */
	if (r->off < left && r->state != ST_MORE)
		return 1;
	if (r->off > 0) {
		memmove(st->buf, st->buf + r->off, left);
		r->shift += r->off;
		r->size = left;
		r->off = 0;
	}
	if (r->size < st->cap)
		return 0;
	if (r->state != ST_MORE)
		return 1;
	if (st->cap * 2 > STREAM_CAP_MAX)
		return fail(r, -EBADMSG, r->size, "a record or block longer "
			    "than a stream's buffer can hold (256 MiB)");
	uint8_t *b = stream_alloc(st->cap * 2);
	if (b == NULL)
		return fail(r, -ENOMEM, r->size,
			    "out of memory for the buffer");
	memcpy(b, st->buf, r->size);
	free(st->buf);
	st->buf = b;
	st->cap *= 2;
	r->base = b;
	return 0;
}

/* One read into the free tail, unless one is in flight or the end came. */
static int stream_submit(struct weir_pcap *r)
{
	struct pcap_stream *st = r->st;
	struct io_uring_sqe *sqe;
	int rc;

	if (st->inflight || st->eof || r->state == ST_FAILED)
		return 0;
	if ((rc = stream_room(r)) != 0)
		return rc < 0 ? rc : 0;
	sqe = io_uring_get_sqe(&st->ring);
	if (sqe == NULL)
		return fail(r, -EBUSY, r->size, "no submission slot for a read");
	/* Offset -1: the file position, the only one a pipe has. */
	io_uring_prep_read(sqe, st->fd, st->buf + r->size,
			   (unsigned)(st->cap - r->size), (uint64_t)-1);
	rc = io_uring_submit(&st->ring);
	if (rc < 0)
		return fail(r, rc, r->size, "cannot submit a read");
	st->inflight = true;
	return 0;
}

/* Take the read's completion if it has come (wait: until it has); 1 when
 * one was taken, 0 when none has come, or the error. */
static int stream_reap(struct weir_pcap *r, bool wait)
{
	struct pcap_stream *st = r->st;
	struct io_uring_cqe *cqe;
	int rc, res;

	if (!st->inflight)
		return 0;
	do
		rc = wait ? io_uring_wait_cqe(&st->ring, &cqe)
			  : io_uring_peek_cqe(&st->ring, &cqe);
	while (rc == -EINTR);
	if (rc == -EAGAIN)
		return 0;
	if (rc < 0)
		return fail(r, rc, r->size, "cannot reap a read");
	res = cqe->res;
	io_uring_cqe_seen(&st->ring, cqe);
	st->inflight = false;
	if (res == -EAGAIN || res == -EINTR)
		return 1; /* nothing read: the next pump submits again */
	if (res < 0)
		return fail(r, res, r->size, strerror(-res));
	if (res == 0)
		st->eof = true;
	r->size += (unsigned)res;
	return 1;
}

/*
 * At the start of a call: take what has come, keep a read in flight, and
 * let a reader waiting for bytes parse again once some came (or the end).
 * Twice, as a read of a pipe that holds data completes in its submit.
 * 0, -EAGAIN while the reader still waits, or the error.
 */
static int stream_pump(struct weir_pcap *r)
{
	for (int round = 0; round < 2; round++) {
		int rc = stream_reap(r, false);

		if (rc < 0)
			return rc;
		if (rc > 0 && r->state == ST_MORE)
			r->state = ST_READING;
		if ((rc = stream_submit(r)) < 0)
			return rc;
		if (r->state != ST_MORE)
			return 0;
	}
	return -EAGAIN;
}

/*
 * pcapng: the bytes ng_open() looks at, so that a stream is judged at open
 * as the same file would be: the blocks up to the first packet, at most
 * 1024.  0 once they are in (or a length is impossible: open reports it).
 */
static uint64_t ng_header_need(const uint8_t *b, uint64_t n, uint64_t cap)
{
	uint64_t off = 0;
	int be = 0;

	for (int k = 0; k < 1024; k++) {
		if (n - off < 12)
			return off + 12;
		uint32_t type = wr_ld32(b + off, be);
		if (type == NG_SHB)
			be = wr_ld32le(b + off + 8) != NG_BOM;
		uint32_t len = wr_ld32(b + off + 4, be);
		if (len < 12 || len % 4 != 0 || off + len > cap / 2)
			return 0;
		if (n - off < len)
			return off + len;
		if (type == NG_EPB || type == NG_SPB || type == NG_OPB)
			return 0;
		off += len;
	}
	return 0;
}

/* Bytes open_format() needs to judge the header as it would a file's: 4 for
 * the magic, 24 for a classic header; 0 once they are in. */
static uint64_t header_need(const struct weir_pcap *r)
{
	uint64_t need;

	if (r->size < 4)
		return 4;
	if (wr_ld32le(r->base) == NG_SHB)
		return ng_header_need(r->base, r->size, r->st->cap);
	need = PCAP_FILE_HDR;
	return r->size < need ? need : 0;
}

/* Wait (blocking) until the header is in, or the stream ended. */
static int stream_fill_header(struct weir_pcap *r)
{
	int rc;

	while (!r->st->eof && header_need(r) > r->size) {
		if ((rc = stream_submit(r)) < 0)
			return rc;
		if (!r->st->inflight) /* no room: cannot happen (cap / 2) */
			break;
		if ((rc = stream_reap(r, true)) < 0)
			return rc;
	}
	return 0;
}

static void stream_close(struct pcap_stream *st)
{
	if (st == NULL)
		return;
	if (st->ring_up)
		io_uring_queue_exit(&st->ring); /* cancels a read in flight */
	if (st->fd >= 0)
		close(st->fd);
	free(st->buf);
	free(st);
}

static int stream_new(int fd, const char *name, struct pcap_stream **out)
{
	struct pcap_stream *st = calloc(1, sizeof(*st));
	int rc;

	if (st == NULL) {
		close(fd);
		return wr_error(-ENOMEM, "%s: out of memory", name);
	}
	st->fd = fd;
	st->cap = STREAM_CAP_INIT;
	st->buf = stream_alloc(st->cap);
	rc = st->buf == NULL ? -ENOMEM : io_uring_queue_init(4, &st->ring, 0);
	st->ring_up = rc == 0;
	if (rc < 0) {
		stream_close(st);
		return wr_error(rc, "%s: cannot set up its reads: %s", name,
				strerror(-rc));
	}
	(void)fcntl(fd, F_SETPIPE_SZ, STREAM_PIPE_SIZE); /* a pipe's, if it is */
	*out = st;
	return 0;
}

/* ---------------------------------------------------------------- API */

/* Recognise the format from the bytes at base[0 .. size) and read its
 * header (r's base, size and name set). */
static int open_format(struct weir_pcap *r)
{
	uint32_t m;

	if (r->size < 4)
		return wr_error(-EBADMSG,
				"%s: truncated header (%llu bytes): not a pcap or pcapng file",
				r->name, (unsigned long long)r->size);
	m = wr_ld32le(r->base);
	if (m == PCAP_MAGIC_US || m == PCAP_MAGIC_NS || m == PCAP_MAGIC_MOD ||
	    __builtin_bswap32(m) == PCAP_MAGIC_US ||
	    __builtin_bswap32(m) == PCAP_MAGIC_NS ||
	    __builtin_bswap32(m) == PCAP_MAGIC_MOD)
		return classic_open(r, m);
	if (m == NG_SHB)
		return ng_open(r);
	return wr_error(-EINVAL, "%s is not a pcap or pcapng file (magic 0x%08x)",
			r->name, wr_ld32be(r->base));
}

static int open_common(const uint8_t *base, uint64_t size, const char *name,
		       int mapped, struct weir_pcap **out)
{
	struct weir_pcap *r = calloc(1, sizeof(*r));
	int rc;

	if (r == NULL)
		return wr_error(-ENOMEM, "%s: out of memory", name);
	r->base = base;
	r->size = size;
	r->mapped = mapped;
	snprintf(r->name, sizeof(r->name), "%s", name);
	rc = open_format(r);
	if (rc < 0) {
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int weir_pcap_open_mem(const void *buf, size_t len, const char *name,
		       struct weir_pcap **out)
{
	if ((buf == NULL && len != 0) || out == NULL)
		return wr_error(-EINVAL, "weir_pcap_open_mem: NULL argument");
	return open_common(buf, len, name ? name : "<memory>", 0, out);
}

/* Map a regular file's `size` bytes read-only and open them; takes fd. */
static int map_fd(int fd, off_t size, const char *name, struct weir_pcap **out)
{
	void *base;
	int rc;

	if (size < 4) {
		close(fd);
		return open_common(NULL, (uint64_t)size, name, 0, out);
	}
	base = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
	rc = base == MAP_FAILED ? -errno : 0;
	close(fd);
	if (rc < 0)
		return wr_error(rc, "cannot map %s: %s", name, strerror(-rc));
	madvise(base, (size_t)size, MADV_SEQUENTIAL);
	rc = open_common(base, (uint64_t)size, name, 1, out);
	if (rc < 0)
		munmap(base, (size_t)size);
	return rc;
}

int weir_pcap_open(const char *path, struct weir_pcap **out)
{
	struct stat st;
	int fd, rc;

	if (path == NULL || out == NULL)
		return wr_error(-EINVAL, "weir_pcap_open: NULL argument");
	/* Before open(): opening a FIFO blocks until a writer comes. */
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return wr_error(-ENOTSUP, "cannot read %s: not a regular file (a "
				"pipe or a device); weir_pcap_open maps a file: "
				"read it as a stream (weir_pcap_open_fd)", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return wr_error(-errno, "cannot open %s: %s", path,
				strerror(errno));
	rc = fstat(fd, &st) != 0 ? -errno : S_ISDIR(st.st_mode) ? -EISDIR : 0;
	if (rc < 0) {
		close(fd);
		return wr_error(rc, "cannot read %s: %s", path, strerror(-rc));
	}
	return map_fd(fd, st.st_size, path, out);
}

bool weir_pcap_fd_is_file(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	       lseek(fd, 0, SEEK_CUR) == 0;
}

int weir_pcap_open_fd(int fd, const char *name, struct weir_pcap **out)
{
	struct weir_pcap *r;
	int rc;

	if (fd < 0 || out == NULL)
		return wr_error(-EINVAL, "weir_pcap_open_fd: bad argument");
	name = name ? name : "<stream>";
	if (weir_pcap_fd_is_file(fd)) { /* e.g. standard input from a file */
		struct stat st;
		if (fstat(fd, &st) != 0) {
			close(fd);
			return wr_error(-errno, "cannot read %s: %s", name,
					strerror(errno));
		}
		return map_fd(fd, st.st_size, name, out);
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		close(fd);
		return wr_error(-ENOMEM, "%s: out of memory", name);
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	rc = stream_new(fd, r->name, &r->st);
	if (rc == 0) {
		r->base = r->st->buf;
		rc = stream_fill_header(r);
	}
	if (rc == 0) {
		r->state = ST_READING;
		rc = open_format(r);
	}
	if (rc < 0) {
		weir_pcap_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

void weir_pcap_close(struct weir_pcap *r)
{
	if (r == NULL)
		return;
	if (r->mapped)
		munmap((void *)r->base, r->size);
	stream_close(r->st);
	free(r);
}

/* One frame from the bytes there are: 1, 0 at the end, -EAGAIN where a
 * stream's next bytes have not come, or the sticky error. */
static int next_one(struct weir_pcap *r, struct weir_frame *f)
{
	int rc;

	if (WEIR_UNLIKELY(r->state != ST_READING))
		return r->state == ST_END ? 0 :
		       r->state == ST_MORE ? -EAGAIN : r->err;
	rc = r->fmt == FMT_PCAP ? classic_next(r, f) : ng_next(r, f);
	if (WEIR_LIKELY(rc == 1)) {
		r->index++;
		r->stats.frames++;
	} else if (rc == 0 && r->state == ST_MORE) {
		rc = -EAGAIN;
	}
	return rc;
}

int weir_pcap_next(struct weir_pcap *r, struct weir_frame *f)
{
	int rc;

	if (WEIR_UNLIKELY(r->st != NULL) && (rc = stream_pump(r)) != 0)
		return rc;
	rc = next_one(r, f);
	if (WEIR_UNLIKELY(rc == -EAGAIN) && (rc = stream_pump(r)) == 0)
		rc = next_one(r, f);
	return rc;
}

/*
 * Whole classic records into f[0 .. n) while each fits, r's fields in
 * locals: with -fno-strict-aliasing every store into f[] made gcc reload
 * them, and the byte order was tested per field (52 instructions a frame
 * through classic_next, 33 here, callgrind).  Stops before anything else
 * (the end, a cut or an absurd record): classic_next() handles that one.
 * `be` is a constant in each caller.
 */
static inline __attribute__((always_inline)) unsigned
classic_run(struct weir_pcap *r, struct weir_frame *f, unsigned n, int be)
{
	const uint8_t *base = r->base;
	uint64_t off = r->off, size = r->size;
	uint32_t hdr = r->rec_hdr, frac_ns = r->frac_ns, lt = r->linktype;
	unsigned k;

	for (k = 0; k < n && size - off >= hdr; k++) {
		const uint8_t *h = base + off;
		prefetch_ahead(base, off, size);
		uint32_t caplen = wr_ld32(h + 8, be);

		if (caplen > WEIR_PCAP_CAPLEN_MAX || size - off - hdr < caplen)
			break;
		f[k].data = h + hdr;
		f[k].caplen = caplen;
		f[k].wire_len = wr_ld32(h + 12, be);
		f[k].ts_ns = (uint64_t)wr_ld32(h, be) * 1000000000u +
			     (uint64_t)wr_ld32(h + 4, be) * frac_ns;
		f[k].linktype = lt;
		f[k].interface = 0;
		off += hdr + caplen;
	}
	r->off = off;
	return k;
}

int weir_pcap_next_burst(struct weir_pcap *r, struct weir_frame *f,
			 unsigned n, unsigned *got)
{
	unsigned k = 0;
	int rc = 1;

	*got = 0;
	if (WEIR_UNLIKELY(r->st != NULL) && (rc = stream_pump(r)) != 0)
		return rc;
	rc = 1;
	if (r->fmt == FMT_PCAP && r->state == ST_READING) {
		/* A stop of the run is the end, a cut or a failure: one
		 * round, but a second one would be as correct. */
		while (k < n) {
			k += r->be ? classic_run(r, f + k, n - k, 1)
				   : classic_run(r, f + k, n - k, 0);
			if (k == n || (rc = classic_next(r, &f[k])) != 1)
				break;
			k++;
		}
		r->index += k;
		r->stats.frames += k;
		if (rc == 0 && r->state == ST_MORE)
			rc = -EAGAIN;
	} else {
		while (k < n && (rc = next_one(r, &f[k])) == 1)
			k++;
	}
	*got = k;
	return rc;
}

int weir_pcap_skip(struct weir_pcap *r, uint64_t n, uint64_t *skipped)
{
	uint64_t k;

	if (r == NULL || skipped == NULL)
		return wr_error(-EINVAL, "weir_pcap_skip: NULL argument");
	*skipped = 0;
	if (WEIR_UNLIKELY(r->state != ST_READING))
		return r->state == ST_END ? 0 : r->err;
	k = r->fmt == FMT_PCAP ? classic_skip(r, n) : ng_skip(r, n);
	r->index += k;
	r->stats.frames += k;
	*skipped = k;
	return 0;
}

int weir_pcap_clone(const struct weir_pcap *r, struct weir_pcap **out)
{
	struct weir_pcap *c;

	if (r == NULL || out == NULL)
		return wr_error(-EINVAL, "weir_pcap_clone: NULL argument");
	if (r->st != NULL)
		return wr_error(-ESPIPE, "%s: a stream has one reader", r->name);
	c = malloc(sizeof(*c));
	if (c == NULL)
		return wr_error(-ENOMEM, "%s: out of memory", r->name);
	*c = *r;
	c->mapped = 0; /* the mapping stays r's */
	memset(&c->stats, 0, sizeof(c->stats));
	*out = c;
	return 0;
}

void weir_pcap_tell(const struct weir_pcap *r, struct weir_pcap_pos *pos)
{
	memset(pos, 0, sizeof(*pos));
	pos->offset = r->off + r->shift;
	pos->index = r->index;
	if (r->fmt == FMT_PCAPNG) {
		pos->section_offset = r->section_off;
		pos->interfaces = r->n_if;
	}
}

/* The reader is in pos's section, past its header (so it read and checked
 * that SHB), and not failed: the IDBs it holds are that section's first. */
static bool ng_in_section(const struct weir_pcap *r,
			  const struct weir_pcap_pos *pos)
{
	return r->state != ST_FAILED && r->section_off == pos->section_offset &&
	       r->off > r->section_off;
}

/*
 * Rebuild the interface table for pos: the SHB at pos->section_offset and
 * its first pos->interfaces IDBs, all of which must lie before pos->offset.
 * A reader already in that section keeps what it knows: O(1) when it has
 * seen enough IDBs, else it reads on from where it is when that is before
 * pos.  So a core hopping forward from chunk to chunk of one long section
 * never walks it again from the start, even where IDBs come late.
 */
static int ng_rebuild_section(struct weir_pcap *r,
			      const struct weir_pcap_pos *pos)
{
	const char *why = "";
	uint64_t o;
	uint32_t type, len;
	int be = 0, rc;

	if (ng_in_section(r, pos) && r->n_if >= pos->interfaces) {
		o = pos->interfaces ? r->ifs[pos->interfaces - 1].end
				    : r->section_hdr_end;
		if (o > pos->offset)
			return -EINVAL;
		r->n_if = pos->interfaces;
		return 0;
	}
	if (ng_in_section(r, pos) && r->off <= pos->offset) {
		o = r->off;
	} else {
		o = pos->section_offset;
		rc = ng_block(r, o, &be, &type, &len, &why);
		if (rc <= 0 || type != NG_SHB ||
		    ng_shb(r, o, len, be, NULL) != 0)
			return -EINVAL;
		o += len;
	}
	for (; r->n_if < pos->interfaces; o += len) {
		if (o >= pos->offset)
			return -EINVAL;
		be = r->be;
		rc = ng_block(r, o, &be, &type, &len, &why);
		if (rc <= 0 || type == NG_SHB)
			return -EINVAL;
		if (type == NG_IDB && ng_idb(r, o, len, NULL) != 0)
			return -EINVAL;
	}
	return 0;
}

int weir_pcap_seek(struct weir_pcap *r, const struct weir_pcap_pos *pos)
{
	int bad;

	if (r->st != NULL)
		return wr_error(-ESPIPE, "%s: a stream cannot seek", r->name);
	bad = pos->offset > r->size || pos->reserved != 0;
	if (r->fmt == FMT_PCAP)
		bad = bad || pos->offset < PCAP_FILE_HDR ||
		      pos->section_offset != 0 || pos->interfaces != 0;
	else
		bad = bad || pos->offset % 4 != 0 ||
		      pos->section_offset > pos->offset ||
		      pos->interfaces > WEIR_PCAP_INTERFACES_MAX ||
		      (pos->offset == pos->section_offset ?
		       pos->interfaces != 0 : ng_rebuild_section(r, pos) < 0);
	if (bad) {
		r->state = ST_FAILED;
		r->err = -EINVAL;
		return wr_error(-EINVAL,
				"%s: position (offset %llu, section %llu, %u interfaces) does not belong to this file",
				r->name, (unsigned long long)pos->offset,
				(unsigned long long)pos->section_offset,
				pos->interfaces);
	}
	if (r->fmt == FMT_PCAPNG && pos->offset == pos->section_offset) {
		r->section_off = pos->offset; /* next() reads this SHB */
		r->n_if = 0;
	}
	r->off = pos->offset;
	r->index = pos->index;
	r->state = ST_READING;
	r->err = 0;
	return 0;
}

uint64_t weir_pcap_size(const struct weir_pcap *r)
{
	return r->st != NULL ? 0 : r->size;
}

const void *weir_pcap_mapping(const struct weir_pcap *r, uint64_t *len)
{
	*len = r->mapped ? r->size : 0;
	return r->mapped ? r->base : NULL;
}

uint32_t weir_pcap_linktype(const struct weir_pcap *r)
{
	return r->linktype;
}

void weir_pcap_get_stats(const struct weir_pcap *r, struct weir_pcap_stats *st)
{
	*st = r->stats;
}
