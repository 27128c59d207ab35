/*
 * flow_text_test.c — weir_flow_addr_format (RFC 5952 text of flow-key
 * addresses) and weir_u64_text / weir_i64_text, against fixed vectors and
 * against inet_ntop / snprintf on random input, and on every 16-bit group
 * value and every pattern of zero groups.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "weir/flows.h"
#include "weir/pipeline.h"

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void expect6(const char *in, const char *want)
{
	uint8_t a[16];
	char out[64];

	cr_assert_eq(inet_pton(AF_INET6, in, a), 1, "%s", in);
	int n = weir_flow_addr_format(a, 6, out, sizeof(out));
	cr_expect_str_eq(out, want, "%s", in);
	cr_expect_eq(n, (int)strlen(want), "%s", in);
}

Test(flow_text, rfc5952_vectors)
{
	expect6("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1");
	expect6("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1");	/* leftmost tie */
	expect6("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"); /* one 0 kept */
	expect6("2001:0:0:1:0:0:0:1", "2001:0:0:1::1");	/* longest run */
	expect6("::", "::");
	expect6("::1", "::1");
	expect6("1::", "1::");
	expect6("::ffff:192.0.2.1", "::ffff:192.0.2.1");
	expect6("::c000:201", "::c000:201");	/* IPv4-compatible: not mixed */
	expect6("fe80::abcd:ef01:2345:6789", "fe80::abcd:ef01:2345:6789");
	expect6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}

Test(flow_text, ipv4_keys_are_dotted_quads)
{
	uint8_t a[16] = { 0 };
	char out[64], want[32];
	uint64_t s = 1;

	for (int i = 0; i < 10000; i++) {
		uint32_t v = (uint32_t)rnd(&s);
		memcpy(a + 12, &v, 4);
		inet_ntop(AF_INET, a + 12, want, sizeof(want));
		int n = weir_flow_addr_format(a, 4, out, sizeof(out));
		cr_assert_str_eq(out, want);
		cr_assert_eq(n, (int)strlen(want));
	}
}

/* glibc agrees with RFC 5952 except for ::a.b.c.d (IPv4-compatible) forms;
 * half of each address's groups are zeroed so runs of zeros are common. */
Test(flow_text, ipv6_matches_inet_ntop)
{
	uint8_t a[16];
	char out[64], want[64];
	uint64_t s = 2;

	for (int i = 0; i < 100000; i++) {
		uint64_t m = rnd(&s);
		for (int g = 0; g < 8; g++) {
			uint16_t w = (m >> g) & 1 ? 0 : (uint16_t)rnd(&s) >> (m >> (8 + 2 * g) & 3) * 4;
			a[2 * g] = (uint8_t)(w >> 8);
			a[2 * g + 1] = (uint8_t)w;
		}
		static const uint8_t z12[12];
		if (memcmp(a, z12, 12) == 0)
			continue; /* ::a.b.c.d, glibc prints mixed notation */
		inet_ntop(AF_INET6, a, want, sizeof(want));
		int n = weir_flow_addr_format(a, 6, out, sizeof(out));
		cr_assert_str_eq(out, want, "case %d", i);
		cr_assert_eq(n, (int)strlen(want));
	}
}

/* Regression for the one-store hex16 and the bitmask zero run (0522262):
 * every 16-bit group value in the last group, and all 256 patterns of
 * zero groups (the others 0x1, 0xab, 0xabc or 0xabcd), against inet_ntop. */
static void expect_ntop(const uint8_t *a)
{
	char out[64], want[64];

	inet_ntop(AF_INET6, a, want, sizeof(want));
	int n = weir_flow_addr_format(a, 6, out, sizeof(out));
	cr_assert_str_eq(out, want);
	cr_assert_eq(n, (int)strlen(want));
}

Test(flow_text, every_group_value_and_zero_pattern)
{
	static const uint16_t other[4] = { 0x1, 0xab, 0xabc, 0xabcd };
	uint8_t a[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4,
			  0, 5 };

	for (uint32_t v = 0; v < 65536; v++) {
		a[14] = (uint8_t)(v >> 8);
		a[15] = (uint8_t)v;
		expect_ntop(a);
	}
	for (unsigned m = 0; m < 256; m++) {
		for (int g = 0; g < 8; g++) {
			uint16_t w = (m >> g) & 1 ? 0 : other[(m + g) % 4];
			a[2 * g] = (uint8_t)(w >> 8);
			a[2 * g + 1] = (uint8_t)w;
		}
		static const uint8_t z12[12];
		if (memcmp(a, z12, 12) == 0)
			continue; /* ::a.b.c.d, glibc prints mixed notation */
		expect_ntop(a);
	}
}

Test(flow_text, integers_match_snprintf)
{
	static const int64_t edge[] = { 0, 1, -1, 9, 10, 99, 100, INT64_MAX, INT64_MIN,
					1000000000000000000, -1000000000000000000 };
	char out[32], want[32];
	uint64_t s = 3;

	for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
		size_t n = weir_i64_text(out, edge[i]);
		out[n] = '\0';
		snprintf(want, sizeof(want), "%" PRId64, edge[i]);
		cr_assert_str_eq(out, want);
	}
	out[weir_u64_text(out, UINT64_MAX)] = '\0';
	cr_assert_str_eq(out, "18446744073709551615");
	for (int i = 0; i < 100000; i++) {
		uint64_t v = rnd(&s) >> (rnd(&s) & 63);
		out[weir_u64_text(out, v)] = '\0';
		snprintf(want, sizeof(want), "%" PRIu64, v);
		cr_assert_str_eq(out, want);
	}
}
