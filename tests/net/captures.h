/*
 * tests/net/captures.h — test captures built in memory with weir's writer,
 * for the reader tests (skip, clone, seek) and the parallel source tests.
 *
 * Frame i (0, 1, 2, ... in the order weir_pcap_next() delivers them) is
 * IPv4/TCP from 10.0.0.0 + i, so every record names its frame; except
 * i % 13 == 5: ARP (NON_IP) and i % 17 == 3: IPv4 with IHL 4 (MALFORMED).
 * Timestamps: 1.7e9 s + i ms.
 *
 * tc_pcapng() also writes everything a reader has to step over, so that a
 * chunk boundary or a position can fall anywhere: a new section every 97
 * frames whose byte order flips, an interface of an unsupported link type
 * (105) in every section whose packets (every 7th step) are skipped and
 * counted, a RAW interface declared in the middle of a section (IDB after
 * packets) and used by every 5th frame after it, SPBs (i % 29 == 7),
 * obsolete PBs (i % 31 == 9) and unknown blocks (i % 37 == 11).
 *
 * Header-only (static inline functions): every user is one translation unit.
 */
#ifndef WEIR_TESTS_NET_CAPTURES_H
#define WEIR_TESTS_NET_CAPTURES_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/net.h"
#include "frames.h"

#define TC_SRC_BASE 0x0a000000u
#define TC_TS0 1700000000000000000ull

struct tcap {
	char *buf;
	size_t len;
	uint64_t frames;     /* frames weir_pcap_next() delivers */
	uint64_t unsupported; /* packets of the unsupported interface */
	FILE *f;
	struct weir_pcap_writer *w;
	bool be;             /* byte order of the current section */
	bool raw_if;         /* the current section has the RAW interface */
};

static inline void tc_st32(char *p, uint32_t v, bool be)
{
	for (int k = 0; k < 4; k++)
		p[k] = (char)(v >> (be ? 24 - 8 * k : 8 * k));
}

/* Frame i; raw: without its Ethernet header (LINKTYPE_RAW). */
static inline void tc_frame(struct fb *f, uint64_t i, bool raw)
{
	fb_init(f);
	if (i % 13 == 5 && !raw) {
		fb_eth(f, 0x0806);
		fb_zero(f, 28);
		return;
	}
	if (!raw)
		fb_eth(f, 0x0800);
	if (i % 17 == 3) {
		fb_u8(f, 0x44); /* IHL 4 */
		fb_zero(f, 39);
		return;
	}
	fb_ipv4(f, 6, TC_SRC_BASE + (uint32_t)i, 0xc0a80001, 0, 0);
	fb_ports(f, (uint16_t)(1000 + i % 7), 80, 16 + (uint32_t)(i % 11));
	fb_ip_end(f);
}

/* The frame index a record names (its source address). */
static inline uint64_t tc_index(const struct weir_flow_key *k)
{
	uint32_t a = (uint32_t)k->src[12] << 24 | (uint32_t)k->src[13] << 16 |
		     (uint32_t)k->src[14] << 8 | k->src[15];

	return a - TC_SRC_BASE;
}

static inline void tc_begin(struct tcap *c, enum weir_capture_format fmt, bool be)
{
	memset(c, 0, sizeof(*c));
	c->f = open_memstream(&c->buf, &c->len);
	c->be = be;
	struct weir_pcap_writer_config cfg = {
		.format = fmt, .big_endian = be, .linktype = 1,
		.tsresol = fmt == WEIR_CAPTURE_PCAPNG ? 9 : 0 };
	if (c->f == NULL || weir_pcap_writer_open(c->f, &cfg, &c->w) != 0)
		abort();
}

static inline void tc_end(struct tcap *c)
{
	if (weir_pcap_writer_close(c->w) != 0 || fclose(c->f) != 0)
		abort();
}

/* Classic pcap of n frames. */
static inline void tc_classic(struct tcap *c, enum weir_capture_format fmt, bool be,
		       uint64_t n)
{
	struct fb f;

	tc_begin(c, fmt, be);
	for (uint64_t i = 0; i < n; i++) {
		tc_frame(&f, i, false);
		weir_pcap_writer_write(c->w, 0, TC_TS0 + i * 1000000u, f.b,
				       f.len, f.len);
	}
	c->frames = n;
	tc_end(c);
}

static inline void tc_raw32(struct tcap *c, uint32_t v)
{
	char b[4];

	tc_st32(b, v, c->be);
	weir_pcap_writer_raw(c->w, b, 4);
}

/* A block of `type` around `body` (padded to 4 bytes); `head` 32-bit words
 * of fixed fields come first. */
static inline void tc_block(struct tcap *c, uint32_t type, const uint32_t *head,
		     unsigned nhead, const struct fb *body)
{
	static const char zero[3];
	uint32_t blen = body ? body->len : 0;
	uint32_t len = 12 + 4 * nhead + ((blen + 3) & ~3u);

	tc_raw32(c, type);
	tc_raw32(c, len);
	for (unsigned k = 0; k < nhead; k++)
		tc_raw32(c, head[k]);
	if (blen) {
		weir_pcap_writer_raw(c->w, body->b, blen);
		weir_pcap_writer_raw(c->w, zero, (4 - blen % 4) % 4);
	}
	tc_raw32(c, len);
}

/* A section: SHB, IDB 0 (Ethernet, ns), IDB 1 (unsupported link type). */
static inline void tc_section(struct tcap *c, bool be)
{
	struct weir_pcap_writer_config cfg = {
		.format = WEIR_CAPTURE_PCAPNG, .big_endian = be,
		.linktype = 1, .tsresol = 9 };

	if (weir_pcap_writer_close(c->w) != 0 ||
	    weir_pcap_writer_open(c->f, &cfg, &c->w) != 0 ||
	    weir_pcap_writer_add_interface(c->w, 105, 9, NULL) != 0)
		abort();
	c->be = be;
	c->raw_if = false;
}

/* What comes before frame i in tc_pcapng (sections, IDBs, other blocks). */
static inline void tc_before(struct tcap *c, uint64_t i)
{
	struct fb f;

	if (i > 0 && i % 97 == 0)
		tc_section(c, !c->be);
	if (!c->raw_if && i % 97 == 40) {
		weir_pcap_writer_add_interface(c->w, 101, 9, NULL);
		c->raw_if = true;
	}
	if (i % 7 == 3) { /* a packet no reader may deliver */
		tc_frame(&f, i, false);
		weir_pcap_writer_write(c->w, 1, TC_TS0, f.b, f.len, f.len);
		c->unsupported++;
	}
	if (i % 37 == 11) {
		uint32_t head[1] = { 0x12345678 };
		tc_block(c, 0xbad, head, 1, NULL);
	}
}

/* pcapng of n frames, first section in byte order `be` (see the top). */
static inline void tc_pcapng(struct tcap *c, bool be, uint64_t n)
{
	struct fb f;

	tc_begin(c, WEIR_CAPTURE_PCAPNG, be);
	tc_section(c, be); /* the writer's own SHB stays as an empty section */
	for (uint64_t i = 0; i < n; i++) {
		uint64_t ts = TC_TS0 + i * 1000000u;

		tc_before(c, i);
		bool raw = c->raw_if && i % 5 == 2;
		tc_frame(&f, i, raw);
		if (i % 29 == 7) {
			uint32_t head[1] = { f.len };
			tc_block(c, 3, head, 1, &f); /* SPB: interface 0 */
		} else if (i % 31 == 9) {
			uint32_t head[5] = { 0, (uint32_t)(ts >> 32),
					     (uint32_t)ts, f.len, f.len };
			tc_block(c, 2, head, 5, &f); /* obsolete PB */
		} else if (weir_pcap_writer_write(c->w, raw ? 2 : 0, ts, f.b,
						  f.len, f.len) != 0) {
			abort();
		}
	}
	c->frames = n;
	tc_end(c);
}

/* The modified (0xa1b2cd34) variant of a classic LE capture: 8 more bytes
 * per record header. */
static inline void tc_modified(const struct tcap *c, struct tcap *m)
{
	size_t o = 24;

	memset(m, 0, sizeof(*m));
	m->buf = malloc(c->len + 8 * c->frames);
	memcpy(m->buf, c->buf, 24);
	m->buf[0] = 0x34, m->buf[1] = (char)0xcd;
	m->len = 24;
	while (o < c->len) {
		uint32_t caplen;
		memcpy(&caplen, c->buf + o + 8, 4);
		memcpy(m->buf + m->len, c->buf + o, 16);
		memset(m->buf + m->len + 16, 0, 8);
		memcpy(m->buf + m->len + 24, c->buf + o + 16, caplen);
		m->len += 24 + caplen;
		o += 16 + caplen;
	}
	m->frames = c->frames;
}

/* Write the capture to a new file under /tmp; the caller unlinks it. */
static inline void tc_file(const struct tcap *c, char *path, size_t cap)
{
	snprintf(path, cap, "/tmp/weir_tcap_XXXXXX");
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;

	if (f == NULL || fwrite(c->buf, 1, c->len, f) != c->len ||
	    fclose(f) != 0)
		abort();
}

#endif
