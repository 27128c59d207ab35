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

static int quad(const uint8_t *a, char *buf, size_t cap)
{
	return snprintf(buf, cap, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
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
	int base, len, n = 0, groups = 8;

	if (ip_version == 4)
		return quad(addr + 12, buf, cap);
	if (memcmp(addr, mapped, 12) == 0) {
		n = snprintf(buf, cap, "::ffff:");
		return n + quad(addr + 12, buf + n, cap - (size_t)n);
	}
	for (int i = 0; i < 8; i++)
		w[i] = (uint16_t)(addr[2 * i] << 8 | addr[2 * i + 1]);
	zero_run(w, &base, &len);
	for (int i = 0; i < groups && (size_t)n < cap; i++) {
		if (i == base) {
			n += snprintf(buf + n, cap - (size_t)n, "::");
			i += len - 1;
			continue;
		}
		n += snprintf(buf + n, cap - (size_t)n, "%s%x",
			      i > 0 && i != base + len ? ":" : "", w[i]);
	}
	return n;
}
