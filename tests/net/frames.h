/*
 * tests/net/frames.h — build frames byte by byte for parser tests, the
 * capture tests, the parse benchmark and the fuzz seed generator.
 *
 * A `struct fb` is a frame under construction; each fb_* call appends one
 * header in network byte order.  IP length fields are patched by fb_ip_end()
 * once the payload is appended, so a test states only what it varies.
 * Header-only (static functions): every user is one translation unit.
 */
#ifndef WEIR_TESTS_NET_FRAMES_H
#define WEIR_TESTS_NET_FRAMES_H

#include <stdint.h>
#include <string.h>

struct fb {
	uint8_t b[4096];
	uint32_t len;
	uint32_t ip_off; /* start of the last IP header, for fb_ip_end */
	int ip_ver;
};

static inline void fb_init(struct fb *f)
{
	memset(f, 0, sizeof(*f));
}

static inline void fb_bytes(struct fb *f, const void *p, uint32_t n)
{
	if (n != 0)
		memcpy(f->b + f->len, p, n);
	f->len += n;
}

static inline void fb_u8(struct fb *f, uint8_t v)
{
	f->b[f->len++] = v;
}

static inline void fb_u16(struct fb *f, uint16_t v)
{
	fb_u8(f, (uint8_t)(v >> 8));
	fb_u8(f, (uint8_t)v);
}

static inline void fb_u32(struct fb *f, uint32_t v)
{
	fb_u16(f, (uint16_t)(v >> 16));
	fb_u16(f, (uint16_t)v);
}

static inline void fb_zero(struct fb *f, uint32_t n)
{
	memset(f->b + f->len, 0, n);
	f->len += n;
}

/* Ethernet MAC addresses; the caller appends the ethertype / tags. */
static inline void fb_macs(struct fb *f)
{
	static const uint8_t m[12] = { 0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10 };

	fb_bytes(f, m, 12);
}

static inline void fb_eth(struct fb *f, uint16_t type)
{
	fb_macs(f);
	fb_u16(f, type);
}

/* IPv4 header with `opt_words` 4-byte option words (IHL = 5 + opt_words);
 * `frag` is the flags+offset field (0x2000 = MF, low 13 bits = offset). */
static inline void fb_ipv4(struct fb *f, uint8_t proto, uint32_t src,
			   uint32_t dst, unsigned opt_words, uint16_t frag)
{
	unsigned i;

	f->ip_off = f->len;
	f->ip_ver = 4;
	fb_u8(f, (uint8_t)(0x45 + opt_words));
	fb_u8(f, 0);
	fb_u16(f, 0); /* total length: fb_ip_end */
	fb_u16(f, 0x1234);
	fb_u16(f, frag);
	fb_u8(f, 64);
	fb_u8(f, proto);
	fb_u16(f, 0);
	fb_u32(f, src);
	fb_u32(f, dst);
	for (i = 0; i < opt_words; i++)
		fb_u32(f, 0x01010101); /* NOPs */
}

/* IPv6 header; addresses are 2001:db8::<last byte>. */
static inline void fb_ipv6(struct fb *f, uint8_t nh, uint8_t src_last,
			   uint8_t dst_last)
{
	uint8_t a[16] = { 0x20, 0x01, 0x0d, 0xb8 };

	f->ip_off = f->len;
	f->ip_ver = 6;
	fb_u32(f, 0x60000000);
	fb_u16(f, 0); /* payload length: fb_ip_end */
	fb_u8(f, nh);
	fb_u8(f, 64);
	a[15] = src_last;
	fb_bytes(f, a, 16);
	a[15] = dst_last;
	fb_bytes(f, a, 16);
}

/* A generic IPv6 extension header of (len8 + 1) * 8 bytes. */
static inline void fb_ext(struct fb *f, uint8_t nh, uint8_t len8)
{
	fb_u8(f, nh);
	fb_u8(f, len8);
	fb_zero(f, (uint32_t)(len8 + 1) * 8 - 2);
}

/* IPv6 fragment header: offset in 8-byte units, more-fragments flag. */
static inline void fb_frag6(struct fb *f, uint8_t nh, uint16_t off8, int mf)
{
	fb_u8(f, nh);
	fb_u8(f, 0);
	fb_u16(f, (uint16_t)(off8 << 3 | (mf ? 1 : 0)));
	fb_u32(f, 0xabcdef01);
}

/* IPv6 authentication header: (len4 + 2) * 4 bytes. */
static inline void fb_ah(struct fb *f, uint8_t nh, uint8_t len4)
{
	fb_u8(f, nh);
	fb_u8(f, len4);
	fb_zero(f, (uint32_t)(len4 + 2) * 4 - 2);
}

/* Ports and `pad` more transport bytes. */
static inline void fb_ports(struct fb *f, uint16_t sport, uint16_t dport,
			    uint32_t pad)
{
	fb_u16(f, sport);
	fb_u16(f, dport);
	fb_zero(f, pad);
}

/* Patch the last IP header's length field to cover up to the frame end. */
static inline void fb_ip_end(struct fb *f)
{
	uint32_t n = f->len - f->ip_off;

	if (f->ip_ver == 4) {
		f->b[f->ip_off + 2] = (uint8_t)(n >> 8);
		f->b[f->ip_off + 3] = (uint8_t)n;
	} else {
		n -= 40;
		f->b[f->ip_off + 4] = (uint8_t)(n >> 8);
		f->b[f->ip_off + 5] = (uint8_t)n;
	}
}

/* Common complete frames. */
static inline void fb_eth_ipv4_l4(struct fb *f, uint8_t proto, uint32_t src,
				  uint32_t dst, uint16_t sp, uint16_t dp,
				  uint32_t pad)
{
	fb_init(f);
	fb_eth(f, 0x0800);
	fb_ipv4(f, proto, src, dst, 0, 0);
	fb_ports(f, sp, dp, pad);
	fb_ip_end(f);
}

static inline void fb_eth_ipv6_l4(struct fb *f, uint8_t proto, uint8_t s,
				  uint8_t d, uint16_t sp, uint16_t dp,
				  uint32_t pad)
{
	fb_init(f);
	fb_eth(f, 0x86dd);
	fb_ipv6(f, proto, s, d);
	fb_ports(f, sp, dp, pad);
	fb_ip_end(f);
}

#endif
