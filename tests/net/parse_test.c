/*
 * parse_test.c — weir_parse() on hand-built frames.
 *
 * TEST PLAN
 *   Every frame is copied into a malloc() block of exactly caplen bytes, so
 *   under ASan any read past caplen is a crash, not a silent pass.
 *   1. Ethernet/IPv4 with TCP, UDP, SCTP, UDP-Lite, DCCP (ports), ICMP, GRE,
 *      IP-in-IP (ports 0, outer proto); the IPv4-mapped key layout, zero pad.
 *   2. IPv4 options (IHL 6 and 15); fragments: first with MF keeps ports,
 *      later ones have ports 0; a first fragment whose ports are cut or
 *      outside the datagram is MALFORMED.
 *   3. Invalid IPv4: version nibble, IHL < 5, total length < IHL*4, total
 *      length beyond the wire length, ethertype/version mismatch.
 *   4. 802.1Q / 802.1ad / 0x9100 tags: 1..4 nested parse, a 5th is MALFORMED;
 *      a cut tag is MALFORMED.
 *   5. Non-IP ethertypes (ARP, LLDP), 802.3 LLC → NON_IP; LLC/SNAP IPv4 → OK,
 *      also inside VLAN tags (the bound counting tags on both sides).
 *   6. IPv6: TCP/UDP/ICMPv6; hop-by-hop + routing + destination options + AH
 *      chain; first and later fragments; 8 extension headers OK, 9
 *      MALFORMED; a header running past the payload or the capture;
 *      payload length beyond the wire; payload length 0 MALFORMED unless
 *      the next header is 59 (found by tests/flows/corpus_xcheck.py).
 *   7. Raw IP link types 101, 12, 14, 228, 229 (with version checks), SLL,
 *      SLL2 (IPv4, IPv6, ARP, netlink), NULL (both host orders, all IPv6 AF
 *      values), LOOP, unknown AF, unknown link type.
 *   8. Snaplen: headers intact → OK with ip_bytes from the IP header; cut in
 *      the ports → MALFORMED.
 *   9. Truncation at every byte offset of several frames: the verdict is
 *      MALFORMED below the key end and the full-frame verdict at or above.
 *  10. weir_linktype_supported / weir_linktype_name (every link type of
 *      tcpdump's corpus has its registry name).
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "weir/net.h"
#include "frames.h"

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (b) << 16 | (c) << 8 | (d))

static int parse_n(const uint8_t *b, uint32_t caplen, uint32_t wire,
		   uint32_t lt, struct weir_packet *pk)
{
	uint8_t *copy = malloc(caplen ? caplen : 1);
	int rc;

	cr_assert_not_null(copy);
	memcpy(copy, b, caplen);
	rc = weir_parse(copy, caplen, wire, lt, pk);
	free(copy);
	return rc;
}

static int parse_fb(const struct fb *f, uint32_t lt, struct weir_packet *pk)
{
	return parse_n(f->b, f->len, f->len, lt, pk);
}

static void expect_ports(const struct fb *f, uint32_t lt, uint8_t proto,
			 uint16_t sp, uint16_t dp)
{
	struct weir_packet pk;

	cr_assert_eq(parse_fb(f, lt, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.proto, proto);
	cr_expect_eq(pk.key.sport, sp, "sport %u != %u", pk.key.sport, sp);
	cr_expect_eq(pk.key.dport, dp, "dport %u != %u", pk.key.dport, dp);
	cr_expect_eq(pk.key.pad[0] | pk.key.pad[1], 0);
}

static void expect_rc(const struct fb *f, uint32_t lt, int want)
{
	struct weir_packet pk;
	int rc = parse_fb(f, lt, &pk);

	cr_assert_eq(rc, want, "verdict %d, want %d", rc, want);
}

Test(parse, ipv4_transports_and_key_layout)
{
	static const uint8_t mapped_src[16] = { [10] = 0xff, [11] = 0xff,
						10, 0, 0, 1 };
	static const uint8_t proto_ports[] = { 6, 17, 132, 136, 33 };
	struct weir_packet pk;
	struct fb f;
	size_t i;

	for (i = 0; i < sizeof(proto_ports); i++) {
		fb_eth_ipv4_l4(&f, proto_ports[i], IP4(10, 0, 0, 1),
			       IP4(10, 0, 0, 2), 1234, 80, 16);
		expect_ports(&f, 1, proto_ports[i], 1234, 80);
	}
	fb_eth_ipv4_l4(&f, 6, IP4(10, 0, 0, 1), IP4(192, 168, 1, 2), 1, 2, 16);
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_arr_eq(pk.key.src, mapped_src, 16);
	cr_expect_eq(pk.key.dst[12], 192);
	cr_expect_eq(pk.key.dst[15], 2);
	cr_expect_eq(pk.key.ip_version, 4);
	cr_expect_eq(pk.ip_bytes, 20 + 4 + 16);
	cr_expect_eq(pk.l3_offset, 14);
	cr_expect_eq(pk.l4_offset, 34);
	cr_expect_eq(pk.flags, 0);
	cr_expect_eq(sizeof(struct weir_flow_key), 40);
	/* ICMP, GRE, IP-in-IP: outer proto, no ports, no decapsulation. */
	for (i = 0; i < 3; i++) {
		uint8_t proto = (uint8_t[]){ 1, 47, 4 }[i];

		fb_eth_ipv4_l4(&f, proto, 1, 2, 0x0800, 0x4500, 40);
		expect_ports(&f, 1, proto, 0, 0);
	}
}

Test(parse, ipv4_options)
{
	struct weir_packet pk;
	struct fb f;
	unsigned words[] = { 1, 10 };

	for (int i = 0; i < 2; i++) {
		fb_init(&f);
		fb_eth(&f, 0x0800);
		fb_ipv4(&f, 17, 1, 2, words[i], 0);
		fb_ports(&f, 53, 5353, 4);
		fb_ip_end(&f);
		cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
		cr_expect_eq(pk.key.sport, 53);
		cr_expect_eq(pk.key.dport, 5353);
		cr_expect_eq(pk.l4_offset, 14 + 20 + 4 * words[i]);
	}
}

static void build_frag4(struct fb *f, uint16_t frag, uint32_t l4bytes)
{
	fb_init(f);
	fb_eth(f, 0x0800);
	fb_ipv4(f, 6, 1, 2, 0, frag);
	fb_ports(f, 4000, 443, 0);
	f->len = f->ip_off + 20 + l4bytes; /* keep l4bytes of the ports */
	fb_ip_end(f);
}

Test(parse, ipv4_fragments)
{
	struct weir_packet pk;
	struct fb f;

	build_frag4(&f, 0x2000, 4); /* first fragment, MF */
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.sport, 4000);
	cr_expect_eq(pk.flags, WEIR_PKT_FRAGMENT);
	build_frag4(&f, 0x2000 | 185, 4); /* middle fragment */
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.sport | pk.key.dport, 0);
	cr_expect_eq(pk.flags, WEIR_PKT_FRAGMENT | WEIR_PKT_LATER_FRAGMENT);
	cr_expect_eq(pk.key.proto, 6);
	build_frag4(&f, 370, 2); /* last fragment: 2 payload bytes is fine */
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.sport | pk.key.dport, 0);
	build_frag4(&f, 0x2000, 2); /* first fragment, ports outside datagram */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	build_frag4(&f, 0x4000, 4); /* DF only: not a fragment */
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.flags, 0);
}

Test(parse, ipv4_invalid_headers)
{
	struct weir_packet pk;
	struct fb f;

	fb_eth_ipv4_l4(&f, 6, 1, 2, 1, 2, 16);
	f.b[14] = 0x55; /* version 5 */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	f.b[14] = 0x44; /* IHL 4 */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	fb_eth_ipv4_l4(&f, 6, 1, 2, 1, 2, 16);
	f.b[16] = 0, f.b[17] = 19; /* total length < 20 */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	f.b[16] = 0, f.b[17] = 0; /* total length 0 (TSO captures) */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	fb_eth_ipv4_l4(&f, 6, 1, 2, 1, 2, 16);
	f.b[16] = 0x05, f.b[17] = 0xdc; /* 1500 > wire */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	/* ...unless the wire length says the frame was that long. */
	cr_expect_eq(parse_n(f.b, f.len, 1514, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.ip_bytes, 1500);
	fb_eth_ipv6_l4(&f, 6, 1, 2, 1, 2, 16);
	f.b[12] = 0x08, f.b[13] = 0x00; /* IPv4 ethertype, IPv6 packet */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	fb_eth_ipv4_l4(&f, 6, 1, 2, 1, 2, 16);
	f.b[12] = 0x86, f.b[13] = 0xdd; /* IPv6 ethertype, IPv4 packet */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
}

/* Ethernet with `n` tags of the given TPIDs, then IPv4/UDP. */
static void build_tagged(struct fb *f, unsigned n, const uint16_t *tpids)
{
	unsigned i;

	fb_init(f);
	fb_macs(f);
	for (i = 0; i < n; i++) {
		fb_u16(f, tpids[i]);
		fb_u16(f, (uint16_t)(100 + i)); /* TCI: VLAN id */
	}
	fb_u16(f, 0x0800);
	fb_ipv4(f, 17, 1, 2, 0, 0);
	fb_ports(f, 7, 9, 8);
	fb_ip_end(f);
}

Test(parse, vlan_and_qinq_nesting)
{
	static const uint16_t tp[5] = { 0x88a8, 0x8100, 0x9100, 0x8100, 0x8100 };
	struct weir_packet pk;
	struct fb f;
	unsigned n;

	for (n = 0; n <= WEIR_PARSE_VLAN_TAGS_MAX; n++) {
		build_tagged(&f, n, tp);
		cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK, "%u tags", n);
		cr_expect_eq(pk.l3_offset, 14 + 4 * n);
		cr_expect_eq(pk.key.dport, 9);
	}
	/* Beyond the bound we cannot know what is inside: MALFORMED. */
	build_tagged(&f, WEIR_PARSE_VLAN_TAGS_MAX + 1, tp);
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	/* A tag cut by the capture. */
	build_tagged(&f, 2, tp);
	cr_expect_eq(parse_n(f.b, 20, f.len, 1, &pk), WEIR_PARSE_MALFORMED);
}

Test(parse, non_ip_and_llc)
{
	struct fb f;

	fb_init(&f);
	fb_eth(&f, 0x0806); /* ARP */
	fb_zero(&f, 28);
	expect_rc(&f, 1, WEIR_PARSE_NON_IP);
	fb_init(&f);
	fb_eth(&f, 0x88cc); /* LLDP */
	fb_zero(&f, 40);
	expect_rc(&f, 1, WEIR_PARSE_NON_IP);
	fb_init(&f);
	fb_macs(&f); /* ARP inside a VLAN */
	fb_u16(&f, 0x8100);
	fb_u16(&f, 5);
	fb_u16(&f, 0x0806);
	fb_zero(&f, 28);
	expect_rc(&f, 1, WEIR_PARSE_NON_IP);
	fb_init(&f);
	fb_eth(&f, 46); /* 802.3 length, STP LLC (42 42 03) */
	fb_u8(&f, 0x42), fb_u8(&f, 0x42), fb_u8(&f, 3);
	fb_zero(&f, 43);
	expect_rc(&f, 1, WEIR_PARSE_NON_IP);
	fb_init(&f);
	fb_eth(&f, 60); /* 802.3 + LLC/SNAP carrying IPv4 */
	fb_bytes(&f, (uint8_t[]){ 0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0 }, 8);
	fb_ipv4(&f, 6, 1, 2, 0, 0);
	fb_ports(&f, 10, 20, 16);
	fb_ip_end(&f);
	expect_ports(&f, 1, 6, 10, 20);
}

/* `n` 802.1Q tags, an 802.3 length, LLC/SNAP with `snap_type`, then
 * `after` more tags and IPv4/UDP 7 -> 8. */
static void build_tagged_snap(struct fb *f, unsigned n, uint16_t snap_type,
			      unsigned after)
{
	unsigned i;

	fb_init(f);
	fb_macs(f);
	for (i = 0; i < n; i++)
		fb_u16(f, 0x8100), fb_u16(f, (uint16_t)(10 + i));
	fb_u16(f, 200); /* 802.3 length */
	fb_bytes(f, (uint8_t[]){ 0xaa, 0xaa, 3, 0, 0, 0 }, 6);
	fb_u16(f, snap_type);
	for (i = 0; i < after; i++)
		fb_u16(f, (uint16_t)(20 + i)),
		fb_u16(f, i + 1 < after ? 0x8100 : 0x0800);
	fb_ipv4(f, 17, 1, 2, 0, 0);
	fb_ports(f, 7, 8, 8);
	fb_ip_end(f);
}

/*
 * Found by tests/flows/corpus_xcheck.py on a generated capture: an 802.1Q
 * tagged 802.3 frame with LLC/SNAP carrying IPv4 was NON_IP (LLC/SNAP was
 * only followed right after the Ethernet header); tshark reads it.  The
 * tag bound counts the tags before and after the SNAP header.
 */
Test(parse, vlan_tagged_llc_snap)
{
	static const uint8_t sll[16] = { [3] = 1, [5] = 6, [15] = 4 };
	struct weir_packet pk;
	struct fb f;

	build_tagged_snap(&f, 1, 0x0800, 0);
	expect_ports(&f, 1, 17, 7, 8);
	cr_expect_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.l3_offset, 14 + 4 + 8);
	build_tagged_snap(&f, 2, 0x8100, 2); /* 4 tags in all */
	expect_ports(&f, 1, 17, 7, 8);
	build_tagged_snap(&f, 3, 0x8100, 2); /* 5 */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	/* Cut inside the LLC header (3 bytes) or the SNAP header (8). */
	build_tagged_snap(&f, 1, 0x0800, 0);
	cr_expect_eq(parse_n(f.b, 14 + 4 + 2, f.len, 1, &pk),
		     WEIR_PARSE_MALFORMED);
	cr_expect_eq(parse_n(f.b, 14 + 4 + 7, f.len, 1, &pk),
		     WEIR_PARSE_MALFORMED);
	/* Tagged non-SNAP LLC (STP's 42 42 03) and a non-zero OUI. */
	build_tagged_snap(&f, 1, 0x0800, 0);
	f.b[18] = f.b[19] = 0x42;
	expect_rc(&f, 1, WEIR_PARSE_NON_IP);
	build_tagged_snap(&f, 1, 0x0800, 0);
	f.b[22] = 0x0c;
	expect_rc(&f, 1, WEIR_PARSE_NON_IP);
	/* SLL: a protocol below 0x0600 is not followed into LLC. */
	fb_init(&f);
	fb_bytes(&f, sll, 16);
	fb_bytes(&f, (uint8_t[]){ 0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0 }, 8);
	fb_ipv4(&f, 17, 1, 2, 0, 0);
	fb_ports(&f, 7, 8, 8);
	fb_ip_end(&f);
	expect_rc(&f, 113, WEIR_PARSE_NON_IP);
}

Test(parse, ipv6_basic)
{
	struct weir_packet pk;
	struct fb f;

	fb_eth_ipv6_l4(&f, 6, 1, 2, 33000, 22, 16);
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.ip_version, 6);
	cr_expect_eq(pk.key.src[0], 0x20);
	cr_expect_eq(pk.key.src[15], 1);
	cr_expect_eq(pk.key.dst[15], 2);
	cr_expect_eq(pk.key.sport, 33000);
	cr_expect_eq(pk.key.dport, 22);
	cr_expect_eq(pk.ip_bytes, 40 + 20);
	fb_eth_ipv6_l4(&f, 17, 1, 2, 5000, 53, 4);
	expect_ports(&f, 1, 17, 5000, 53);
	fb_eth_ipv6_l4(&f, 58, 1, 2, 0x8000, 0, 4); /* ICMPv6 echo */
	expect_ports(&f, 1, 58, 0, 0);
	fb_eth_ipv6_l4(&f, 59, 1, 2, 0, 0, 0); /* no next header */
	expect_ports(&f, 1, 59, 0, 0);
	fb_eth_ipv6_l4(&f, 6, 1, 2, 1, 2, 16);
	f.b[18] = 0x05; /* payload length 1280+ > wire */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	f.b[18] = 0, f.b[19] = 0; /* 0 (jumbogram): TCP outside payload */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
}

/*
 * Caught by the tshark cross-check over tcpdump's corpus
 * (icmpv6-length-zero.pcapng): IPv6 payload length 0 with an ICMPv6 next
 * header was OK with ip_bytes 40, dropping the message's 46 bytes, where
 * IPv4 total length 0 is MALFORMED.  Only 59 (No Next Header) may have an
 * empty payload.
 */
Test(parse, ipv6_payload_length_0_malformed_unless_no_next_header)
{
	static const uint8_t nhs[] = { 58, 6, 17, 50, 0, 60, 44, 135 };
	struct weir_packet pk;
	struct fb f;
	size_t i;

	for (i = 0; i < sizeof(nhs); i++) {
		fb_eth_ipv6_l4(&f, nhs[i], 1, 2, 0x8000, 0, 42);
		f.b[18] = f.b[19] = 0;
		cr_expect_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_MALFORMED,
			     "next header %u, payload length 0", nhs[i]);
	}
	fb_init(&f);
	fb_eth(&f, 0x86dd);
	fb_ipv6(&f, 59, 1, 2);
	fb_zero(&f, 6); /* Ethernet padding to 60 bytes, not payload */
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.proto, 59);
	cr_expect_eq(pk.ip_bytes, 40);
}

Test(parse, ipv6_extension_chain)
{
	struct weir_packet pk;
	struct fb f;

	fb_init(&f);
	fb_eth(&f, 0x86dd);
	fb_ipv6(&f, 0, 1, 2);
	fb_ext(&f, 43, 0);  /* hop-by-hop, 8 bytes */
	fb_ext(&f, 60, 2);  /* routing, 24 bytes */
	fb_ext(&f, 51, 1);  /* destination options, 16 bytes */
	fb_ah(&f, 17, 4);   /* AH, 24 bytes */
	fb_ports(&f, 500, 4500, 8);
	fb_ip_end(&f);
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.proto, 17);
	cr_expect_eq(pk.key.sport, 500);
	cr_expect_eq(pk.key.dport, 4500);
	cr_expect_eq(pk.l4_offset, 14 + 40 + 8 + 24 + 16 + 24);
	/* A header whose length runs past the payload. */
	f.b[14 + 40 + 8 + 1] = 200;
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
	/* ESP after the chain: proto 50, no ports. */
	fb_init(&f);
	fb_eth(&f, 0x86dd);
	fb_ipv6(&f, 60, 1, 2);
	fb_ext(&f, 50, 0);
	fb_zero(&f, 32);
	fb_ip_end(&f);
	expect_ports(&f, 1, 50, 0, 0);
}

static void build_chain(struct fb *f, unsigned n_ext)
{
	unsigned i;

	fb_init(f);
	fb_eth(f, 0x86dd);
	fb_ipv6(f, n_ext ? 60 : 6, 1, 2);
	for (i = 0; i < n_ext; i++)
		fb_ext(f, i + 1 < n_ext ? 60 : 6, 0);
	fb_ports(f, 1, 2, 16);
	fb_ip_end(f);
}

Test(parse, ipv6_chain_bound)
{
	struct fb f;

	build_chain(&f, WEIR_PARSE_IPV6_EXT_MAX);
	expect_ports(&f, 1, 6, 1, 2);
	build_chain(&f, WEIR_PARSE_IPV6_EXT_MAX + 1);
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
}

static void build_frag6(struct fb *f, uint16_t off8, int mf, uint32_t l4)
{
	fb_init(f);
	fb_eth(f, 0x86dd);
	fb_ipv6(f, 0, 1, 2);
	fb_ext(f, 44, 0);
	fb_frag6(f, 17, off8, mf);
	fb_ports(f, 1000, 2000, 0);
	f->len -= 4 - l4;
	fb_ip_end(f);
}

Test(parse, ipv6_fragments)
{
	struct weir_packet pk;
	struct fb f;

	build_frag6(&f, 0, 1, 4);
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.proto, 17);
	cr_expect_eq(pk.key.sport, 1000);
	cr_expect_eq(pk.flags, WEIR_PKT_FRAGMENT);
	build_frag6(&f, 100, 0, 4);
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.proto, 17);
	cr_expect_eq(pk.key.sport | pk.key.dport, 0);
	cr_expect_eq(pk.flags, WEIR_PKT_FRAGMENT | WEIR_PKT_LATER_FRAGMENT);
	/* A later fragment whose payload happens to look like a header chain
	 * is not walked: next header 0 after the fragment header is data. */
	fb_init(&f);
	fb_eth(&f, 0x86dd);
	fb_ipv6(&f, 44, 1, 2);
	fb_frag6(&f, 0, 10, 0);
	fb_u8(&f, 0);
	fb_u8(&f, 255);
	fb_ip_end(&f);
	cr_assert_eq(parse_fb(&f, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.proto, 0);
	build_frag6(&f, 0, 1, 2); /* first fragment, ports cut */
	expect_rc(&f, 1, WEIR_PARSE_MALFORMED);
}

/* An IPv4/UDP or IPv6/UDP packet behind `hdr_len` bytes of link header. */
static void build_l3(struct fb *f, const uint8_t *hdr, uint32_t hdr_len,
		     int v6)
{
	fb_init(f);
	fb_bytes(f, hdr, hdr_len);
	if (v6)
		fb_ipv6(f, 17, 1, 2);
	else
		fb_ipv4(f, 17, 1, 2, 0, 0);
	fb_ports(f, 111, 222, 8);
	fb_ip_end(f);
}

Test(parse, raw_ip_linktypes)
{
	static const uint32_t any[] = { 101, 12, 14 };
	struct fb f;
	int v6;

	for (v6 = 0; v6 < 2; v6++) {
		build_l3(&f, NULL, 0, v6);
		for (size_t i = 0; i < 3; i++)
			expect_ports(&f, any[i], 17, 111, 222);
		expect_ports(&f, v6 ? 229 : 228, 17, 111, 222);
		expect_rc(&f, v6 ? 228 : 229, WEIR_PARSE_MALFORMED);
		f.b[0] = 0x75; /* version 7 */
		expect_rc(&f, 101, WEIR_PARSE_MALFORMED);
	}
	fb_init(&f);
	expect_rc(&f, 101, WEIR_PARSE_MALFORMED); /* empty frame */
}

Test(parse, linux_cooked_sll_sll2)
{
	uint8_t sll[16] = { 0, 0, 0, 1, 0, 6 }, sll2[20] = { 0 };
	struct fb f;
	int v6;

	for (v6 = 0; v6 < 2; v6++) {
		sll[14] = v6 ? 0x86 : 0x08, sll[15] = v6 ? 0xdd : 0x00;
		sll2[0] = sll[14], sll2[1] = sll[15];
		sll2[9] = 1; /* ARPHRD_ETHER */
		build_l3(&f, sll, 16, v6);
		expect_ports(&f, 113, 17, 111, 222);
		build_l3(&f, sll2, 20, v6);
		expect_ports(&f, 276, 17, 111, 222);
	}
	sll[14] = 0x08, sll[15] = 0x06; /* ARP */
	build_l3(&f, sll, 16, 0);
	expect_rc(&f, 113, WEIR_PARSE_NON_IP);
	sll[2] = 824 >> 8, sll[3] = 824 & 0xff; /* netlink, family 0x0800 */
	sll[14] = 0x08, sll[15] = 0x00;
	build_l3(&f, sll, 16, 0);
	expect_rc(&f, 113, WEIR_PARSE_NON_IP);
	sll2[8] = 824 >> 8, sll2[9] = 824 & 0xff;
	build_l3(&f, sll2, 20, 0);
	expect_rc(&f, 276, WEIR_PARSE_NON_IP);
}

Test(parse, bsd_loopback_null_and_loop)
{
	static const uint8_t af_v6[] = { 24, 28, 30 };
	uint8_t le[4] = { 2, 0, 0, 0 }, be[4] = { 0, 0, 0, 2 };
	struct fb f;
	size_t i;

	build_l3(&f, le, 4, 0); /* NULL, little-endian writer */
	expect_ports(&f, 0, 17, 111, 222);
	build_l3(&f, be, 4, 0); /* NULL, big-endian writer */
	expect_ports(&f, 0, 17, 111, 222);
	build_l3(&f, be, 4, 0); /* LOOP: always network order */
	expect_ports(&f, 108, 17, 111, 222);
	build_l3(&f, le, 4, 0); /* LOOP with host-order AF: AF 0x02000000 */
	expect_rc(&f, 108, WEIR_PARSE_NON_IP);
	for (i = 0; i < 3; i++) {
		le[0] = af_v6[i], be[3] = af_v6[i];
		build_l3(&f, le, 4, 1);
		expect_ports(&f, 0, 17, 111, 222);
		build_l3(&f, be, 4, 1);
		expect_ports(&f, 0, 17, 111, 222);
		expect_ports(&f, 108, 17, 111, 222);
		build_l3(&f, be, 4, 0); /* AF says IPv6, packet is IPv4 */
		expect_rc(&f, 108, WEIR_PARSE_MALFORMED);
	}
	le[0] = 7; /* AF 7: not IP */
	build_l3(&f, le, 4, 0);
	expect_rc(&f, 0, WEIR_PARSE_NON_IP);
	fb_init(&f);
	fb_u16(&f, 2);
	expect_rc(&f, 0, WEIR_PARSE_MALFORMED);
}

Test(parse, unknown_linktype)
{
	struct fb f;

	fb_eth_ipv4_l4(&f, 6, 1, 2, 3, 4, 16);
	expect_rc(&f, 105, WEIR_PARSE_BAD_LINKTYPE);
	cr_expect(!weir_linktype_supported(105));
	cr_expect(weir_linktype_supported(276));
	cr_expect_str_eq(weir_linktype_name(105), "IEEE802_11");
	cr_expect_str_eq(weir_linktype_name(1), "EN10MB");
	cr_expect_str_eq(weir_linktype_name(65000), "unknown");
}

/* Caught by the corpus cross-check: tcpdump's captures of these link
 * types were refused as "link type 182 (unknown)", naming no type. */
Test(parse, corpus_linktypes_named_in_refusals)
{
	static const struct {
		uint32_t lt;
		const char *name;
	} want[] = {
		{ 106, "ATM_CLIP" }, { 132, "JUNIPER_ES" },
		{ 137, "JUNIPER_ATM1" }, { 149, "USER2" }, { 160, "USER13" },
		{ 178, "JUNIPER_ETHER" }, { 182, "MFR" }, { 226, "IPNET" },
		{ 242, "IPOIB" }, { 281, "DSA_TAG_BRCM" },
		{ 282, "DSA_TAG_BRCM_PREPEND" }, { 284, "DSA_TAG_DSA" },
		{ 285, "DSA_TAG_EDSA" },
	};
	size_t i;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		cr_expect(!weir_linktype_supported(want[i].lt));
		cr_expect_str_eq(weir_linktype_name(want[i].lt), want[i].name);
	}
}

Test(parse, snaplen_truncated_payload)
{
	struct weir_packet pk;
	struct fb f;

	fb_eth_ipv4_l4(&f, 6, 1, 2, 80, 1025, 1400);
	/* tcpdump -s 96 and -s 38: ports intact, ip_bytes from the header */
	cr_assert_eq(parse_n(f.b, 96, f.len, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.ip_bytes, 20 + 1404);
	cr_assert_eq(parse_n(f.b, 38, f.len, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.key.dport, 1025);
	cr_expect_eq(parse_n(f.b, 37, f.len, 1, &pk), WEIR_PARSE_MALFORMED);
	/* ICMP needs no transport bytes */
	fb_eth_ipv4_l4(&f, 1, 1, 2, 0x0800, 0, 1000);
	cr_expect_eq(parse_n(f.b, 34, f.len, 1, &pk), WEIR_PARSE_OK);
	cr_expect_eq(pk.ip_bytes, 1024);
}

struct cut_case {
	const char *name;
	struct fb f;
	uint32_t lt;
	uint32_t key_end; /* bytes the verdict needs */
	int verdict;      /* verdict from key_end on */
};

static void cut_cases(struct cut_case *c, int *n)
{
	static const uint8_t null_af[4] = { 2, 0, 0, 0 };
	static const uint8_t sll2[20] = { 0x86, 0xdd, [9] = 1 };
	static const uint16_t tp[2] = { 0x88a8, 0x8100 };
	int i = 0;

	c[i] = (struct cut_case){ "eth/ipv4/tcp", .lt = 1, .key_end = 38 };
	fb_eth_ipv4_l4(&c[i++].f, 6, 1, 2, 3, 4, 30);
	c[i] = (struct cut_case){ "qinq/ipv4+opt/udp", .lt = 1,
				  .key_end = 14 + 8 + 24 + 4 };
	fb_init(&c[i].f);
	fb_macs(&c[i].f);
	for (int t = 0; t < 2; t++)
		fb_u16(&c[i].f, tp[t]), fb_u16(&c[i].f, 7);
	fb_u16(&c[i].f, 0x0800);
	fb_ipv4(&c[i].f, 17, 1, 2, 1, 0);
	fb_ports(&c[i].f, 1, 2, 20);
	fb_ip_end(&c[i++].f);
	c[i] = (struct cut_case){ "eth/ipv6/ext*3/udp", .lt = 1,
				  .key_end = 14 + 40 + 8 + 16 + 8 + 4 };
	build_chain(&c[i].f, 3);
	c[i].f.b[14 + 40 + 9] = 1; /* second header: 16 bytes */
	memmove(c[i].f.b + 14 + 40 + 24, c[i].f.b + 14 + 40 + 16, 40);
	c[i].f.len += 8;
	fb_ip_end(&c[i++].f);
	c[i] = (struct cut_case){ "eth/ipv6/later-frag", .lt = 1,
				  .key_end = 14 + 40 + 8 + 8 };
	build_frag6(&c[i++].f, 9, 1, 4);
	c[i] = (struct cut_case){ "eth/arp", .lt = 1, .key_end = 14,
				  .verdict = WEIR_PARSE_NON_IP };
	fb_init(&c[i].f);
	fb_eth(&c[i].f, 0x0806);
	fb_zero(&c[i++].f, 28);
	c[i] = (struct cut_case){ "sll2/ipv6/tcp", .lt = 276,
				  .key_end = 20 + 40 + 4 };
	fb_init(&c[i].f);
	fb_bytes(&c[i].f, sll2, 20);
	fb_ipv6(&c[i].f, 6, 1, 2);
	fb_ports(&c[i].f, 1, 2, 16);
	fb_ip_end(&c[i++].f);
	c[i] = (struct cut_case){ "null/ipv4/icmp", .lt = 0, .key_end = 24 };
	fb_init(&c[i].f);
	fb_bytes(&c[i].f, null_af, 4);
	fb_ipv4(&c[i].f, 1, 1, 2, 0, 0);
	fb_zero(&c[i].f, 36);
	fb_ip_end(&c[i++].f);
	c[i] = (struct cut_case){ "eth/ipv6/hbh24/icmpv6", .lt = 1,
				  .key_end = 14 + 40 + 8 };
	fb_init(&c[i].f);
	fb_eth(&c[i].f, 0x86dd);
	fb_ipv6(&c[i].f, 0, 1, 2);
	fb_ext(&c[i].f, 58, 2);
	fb_zero(&c[i].f, 16);
	fb_ip_end(&c[i++].f);
	c[i] = (struct cut_case){ "eth/snap/ipv4/udp", .lt = 1,
				  .key_end = 22 + 20 + 4 };
	fb_init(&c[i].f);
	fb_eth(&c[i].f, 50);
	fb_bytes(&c[i].f, (uint8_t[]){ 0xaa, 0xaa, 3, 0, 0, 0, 8, 0 }, 8);
	fb_ipv4(&c[i].f, 17, 1, 2, 0, 0);
	fb_ports(&c[i].f, 1, 2, 20);
	fb_ip_end(&c[i++].f);
	*n = i;
}

Test(parse, truncation_at_every_offset)
{
	static struct cut_case c[16];
	struct weir_packet pk;
	int n, i;

	cut_cases(c, &n);
	for (i = 0; i < n; i++) {
		cr_assert_eq(parse_fb(&c[i].f, c[i].lt, &pk), c[i].verdict,
			     "%s: full frame", c[i].name);
		for (uint32_t cut = 0; cut <= c[i].f.len; cut++) {
			int want = cut < c[i].key_end ? WEIR_PARSE_MALFORMED
						      : c[i].verdict;
			int rc = parse_n(c[i].f.b, cut, c[i].f.len, c[i].lt,
					 &pk);

			cr_assert_eq(rc, want, "%s cut at %u: %d, want %d",
				     c[i].name, cut, rc, want);
		}
	}
}
