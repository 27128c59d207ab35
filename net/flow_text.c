/*
 * flow_text.c — text form of flow-key addresses (weir_flow_addr_format):
 * dotted quad for IPv4 keys, RFC 5952 for IPv6.  Written out rather than
 * calling inet_ntop(): glibc's prints IPv4-compatible addresses (::a.b.c.d,
 * deprecated, RFC 4291 2.5.5.1) in mixed notation where RFC 5952 section 5
 * keeps mixed notation for well-known embeddings such as ::ffff:0:0/96.
 */
#include <stdio.h>
#include <string.h>
#ifdef __BMI2__
#include <immintrin.h>
#endif

#include "weir/flows.h"
#include "weir/pipeline.h"

/* Every octet's digits, then their count: one 4-byte copy an octet
 * instead of weir_u64_text's general path (~120 instructions an address
 * before, ~40 now: callgrind, weir flows, 34 000 rows). */
#define OCT_D(v, k) ((char)((v) >= 100 ? ((k) == 0 ? '0' + (v) / 100 :	\
					    (k) == 1 ? '0' + (v) / 10 % 10 :	\
					    '0' + (v) % 10) :			\
			    (v) >= 10 ? ((k) == 0 ? '0' + (v) / 10 :		\
					 (k) == 1 ? '0' + (v) % 10 : 0) :	\
			    ((k) == 0 ? '0' + (v) : 0)))
#define OCT(v) { OCT_D(v, 0), OCT_D(v, 1), OCT_D(v, 2),			\
		 (char)((v) >= 100 ? 3 : (v) >= 10 ? 2 : 1) }
#define OCT4(v) OCT(v), OCT((v) + 1), OCT((v) + 2), OCT((v) + 3)
#define OCT16(v) OCT4(v), OCT4((v) + 4), OCT4((v) + 8), OCT4((v) + 12)
#define OCT64(v) OCT16(v), OCT16((v) + 16), OCT16((v) + 32), OCT16((v) + 48)
static const char octets[256][4] = {
	OCT64(0), OCT64(64), OCT64(128), OCT64(192)
};

/* Needs 16 bytes: "255.255.255.255" and its NUL. */
static int quad(const uint8_t *a, char *buf)
{
	char *t = buf;

	for (int i = 0; i < 4; i++) {
		/* What follows overwrites the bytes past the digits (the
		 * last octet's: past the NUL, within the 16). */
		memcpy(t, octets[a[i]], 4);
		t += octets[a[i]][3];
		*t++ = i < 3 ? '.' : '\0';
	}
	return (int)(t - buf - 1);
}

/*
 * Lower-case hex of v, no leading zeros (RFC 5952 4.1, 4.3), as one 4-byte
 * store whatever the length (the caller has the room): the nibbles spread
 * to bytes (pdep with BMI2), most significant first, and made ASCII together ('a' - '0' -
 * 10 = 39 more where a nibble is >= 10, found as the carry of + 6), the
 * leading zeros shifted out.  The digit loop it replaces, with the zero-run
 * scan below, cost ~450 instructions an IPv6 address (callgrind, weir flows,
 * 13 600 IPv6 addresses in 34 000 rows).
 */
static int hex16(uint16_t v, char *buf)
{
#ifdef __BMI2__
	uint32_t x = __builtin_bswap32(_pdep_u32(v, 0x0f0f0f0fu));
#else
	uint32_t x = (uint32_t)(v >> 12) | (uint32_t)(v >> 8 & 15) << 8 |
		     (uint32_t)(v >> 4 & 15) << 16 | (uint32_t)(v & 15) << 24;
#endif
	uint32_t ge10 = (x + 0x06060606u) >> 4 & 0x01010101u;
	int lead = (__builtin_clz((uint32_t)v | 1) - 16) / 4; /* 0..3 */

	x = (x + 0x30303030u + ge10 * 39) >> (8 * lead);
	memcpy(buf, &x, 4);
	return 4 - lead;
}

/*
 * The longest run (>= 2) of zero groups, leftmost on a tie; len 0 and base
 * -1 if none.  Bit i of m: group i is 0.  Each step keeps the bits that
 * start a run one longer, so the steps count the longest run, and the
 * lowest bit before the last step is its leftmost start.
 */
static void zero_run(const uint16_t *w, int *base, int *len)
{
	unsigned m = 0, prev = 0;
	int n = 0;

	for (int i = 0; i < 8; i++)
		m |= (unsigned)(w[i] == 0) << i;
	for (; m != 0; n++) {
		prev = m;
		m &= m >> 1;
	}
	*base = n >= 2 ? __builtin_ctz(prev) : -1;
	*len = n >= 2 ? n : 0;
}

int weir_flow_addr_format(const uint8_t addr[16], uint8_t ip_version,
			  char *buf, size_t cap)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					    0xff, 0xff };
	uint16_t w[8];
	int base, len, n = 0;

	if (cap < 46)
		return snprintf(buf, cap, "%s", "");
	if (ip_version == 4)
		return quad(addr + 12, buf);
	if (memcmp(addr, mapped, 12) == 0) {
		memcpy(buf, "::ffff:", 7);
		return 7 + quad(addr + 12, buf + 7);
	}
	for (int i = 0; i < 8; i++)
		w[i] = (uint16_t)(addr[2 * i] << 8 | addr[2 * i + 1]);
	zero_run(w, &base, &len);
	for (int i = 0; i < 8; i++) {
		if (i == base) {
			buf[n++] = ':';
			buf[n++] = ':';
			i += len - 1;
			continue;
		}
		if (i > 0 && i != base + len)
			buf[n++] = ':';
		n += hex16(w[i], buf + n);
	}
	buf[n] = '\0';
	return n;
}
