/*
 * parse.c — link layer → IP → transport ports, for one frame.
 *
 * Shape: one function per layer, each taking the frame, `cap` (bytes we may
 * read) and `wire` (bytes the frame had on the wire, >= cap), and tail-calling
 * the next layer.  Every read is preceded by a check against `cap`; offsets
 * are uint32_t and every addition is of small bounded values (header lengths
 * <= 2048) to an offset <= cap, so nothing overflows.  docs/net.md lists the
 * classification decisions; the numbers (tags, chain length) are in net.h.
 *
 * Cost: the common Ethernet/IPv4/TCP path is ~40 instructions and no loop
 * iteration beyond the ethertype check; at 3 GHz that is well under the
 * 20 ns budget of 50 Mpps per core.
 */
#include "weir/net.h"
#include "net/bytes.h"

#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6 0x86dd

enum { R_OK = WEIR_PARSE_OK, R_BAD = WEIR_PARSE_MALFORMED,
       R_NONIP = WEIR_PARSE_NON_IP };

/*
 * Protocols whose first 4 transport bytes are source and destination port:
 * TCP 6, UDP 17, DCCP 33, SCTP 132, UDP-Lite 136.  A bitmap test is one
 * load and a bt, where the chain of compares cost two extra branches.
 */
static const uint64_t ports_bitmap[4] = {
	(1ull << 6) | (1ull << 17) | (1ull << 33), 0,
	(1ull << (132 - 128)) | (1ull << (136 - 128)), 0,
};

static inline int has_ports(uint8_t proto)
{
	return (ports_bitmap[proto >> 6] >> (proto & 63)) & 1;
}

/*
 * Ports at `l4` of a datagram ending at `l3end` (from the IP length; may be
 * beyond cap).  The port bytes must be inside both.
 */
static int parse_l4(const uint8_t *p, uint32_t cap, uint32_t l4,
		    uint32_t l3end, struct weir_packet *out)
{
	out->l4_offset = (uint16_t)l4;
	if (!has_ports(out->key.proto))
		return R_OK;
	if (l4 + 4 > l3end || l4 + 4 > cap)
		return R_BAD;
	out->key.sport = wr_ld16be(p + l4);
	out->key.dport = wr_ld16be(p + l4 + 2);
	return R_OK;
}

static int parse_ipv4(const uint8_t *p, uint32_t cap, uint32_t wire,
		      uint32_t off, struct weir_packet *out)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	const uint8_t *ip = p + off;
	uint32_t hl, len;
	uint16_t frag;

	if (off + 20 > cap || (ip[0] >> 4) != 4)
		return R_BAD;
	hl = (uint32_t)(ip[0] & 0x0f) * 4;
	len = wr_ld16be(ip + 2);
	if (hl < 20 || len < hl || off + hl > cap || off + len > wire)
		return R_BAD;
	memcpy(out->key.src, mapped, 12);
	memcpy(out->key.src + 12, ip + 12, 4);
	memcpy(out->key.dst, mapped, 12);
	memcpy(out->key.dst + 12, ip + 16, 4);
	out->key.sport = 0;
	out->key.dport = 0;
	out->key.proto = ip[9];
	out->key.ip_version = 4;
	out->key.pad[0] = out->key.pad[1] = 0;
	out->ip_bytes = len;
	out->l3_offset = (uint16_t)off;
	out->l4_offset = 0;
	frag = wr_ld16be(ip + 6);
	out->flags = (frag & 0x3fff) ? WEIR_PKT_FRAGMENT : 0; /* MF or offset */
	if (frag & 0x1fff) {
		out->flags |= WEIR_PKT_LATER_FRAGMENT;
		return R_OK;
	}
	return parse_l4(p, cap, off + hl, off + len, out);
}

/* Hop-by-hop 0, routing 43, fragment 44, AH 51, destination options 60:
 * a bit test, as for ports_bitmap (the five compares cost ~6 instructions
 * an IPv6 packet). */
static inline int is_ipv6_ext(uint8_t nh)
{
	static const uint64_t ext = (1ull << 0) | (1ull << 43) |
		(1ull << 44) | (1ull << 51) | (1ull << 60);

	return nh < 64 && (ext >> nh & 1);
}

/*
 * Walk the extension chain from `*h` (inside a payload ending at `end`).
 * Each header's first 8 bytes must be readable (next header, length, and for
 * a fragment header the offset).  Leaves *nh at the upper-layer protocol.
 */
static int ipv6_ext_chain(const uint8_t *p, uint32_t cap, uint32_t end,
			  uint32_t *h, uint8_t *nh, struct weir_packet *out)
{
	uint32_t n;

	for (n = 0; is_ipv6_ext(*nh); n++) {
		const uint8_t *e = p + *h;

		if (n == WEIR_PARSE_IPV6_EXT_MAX || *h + 8 > cap ||
		    *h + 8 > end)
			return R_BAD;
		if (*nh == 44) {
			out->flags |= WEIR_PKT_FRAGMENT;
			if (wr_ld16be(e + 2) & 0xfff8)
				out->flags |= WEIR_PKT_LATER_FRAGMENT;
			*h += 8;
		} else if (*nh == 51) {
			*h += ((uint32_t)e[1] + 2) * 4;
		} else {
			*h += ((uint32_t)e[1] + 1) * 8;
		}
		*nh = e[0];
		if (out->flags & WEIR_PKT_LATER_FRAGMENT)
			break; /* what follows is payload, not headers */
	}
	return *h > end ? R_BAD : R_OK;
}

static int parse_ipv6(const uint8_t *p, uint32_t cap, uint32_t wire,
		      uint32_t off, struct weir_packet *out)
{
	const uint8_t *ip = p + off;
	uint32_t end, h, plen;
	uint8_t nh;
	int rc;

	if (off + 40 > cap || (ip[0] >> 4) != 6)
		return R_BAD;
	plen = wr_ld16be(ip + 4);
	/* Payload length 0 with any next header but 59 (No Next Header):
	 * the datagram's size is unknown (TSO/BIG TCP host capture,
	 * jumbogram), MALFORMED like IPv4 total length 0.  Counted as 40
	 * bytes, an ICMPv6 message lost its own (tcpdump's
	 * icmpv6-length-zero.pcapng: 46 bytes). */
	if (plen == 0 && ip[6] != 59)
		return R_BAD;
	end = off + 40 + plen;
	if (end > wire)
		return R_BAD;
	memcpy(out->key.src, ip + 8, 16);
	memcpy(out->key.dst, ip + 24, 16);
	out->key.sport = 0;
	out->key.dport = 0;
	out->key.ip_version = 6;
	out->key.pad[0] = out->key.pad[1] = 0;
	out->ip_bytes = end - off;
	out->l3_offset = (uint16_t)off;
	out->l4_offset = 0;
	out->flags = 0;
	h = off + 40;
	nh = ip[6];
	rc = ipv6_ext_chain(p, cap, end, &h, &nh, out);
	out->key.proto = nh;
	if (rc != R_OK || (out->flags & WEIR_PKT_LATER_FRAGMENT))
		return rc;
	return parse_l4(p, cap, h, end, out);
}

static inline int is_vlan_tpid(uint16_t t)
{
	return t == 0x8100 || t == 0x88a8 || t == 0x9100;
}

/* Skip VLAN tags (TCI + inner type, 4 bytes each) from *off; *tags counts
 * them across calls, the bound being on the frame. */
static inline int skip_tags(const uint8_t *p, uint32_t cap, uint16_t *type,
			    uint32_t *off, uint32_t *tags)
{
	for (; is_vlan_tpid(*type); (*tags)++) {
		if (*tags == WEIR_PARSE_VLAN_TAGS_MAX || *off + 4 > cap)
			return R_BAD;
		*type = wr_ld16be(p + *off + 2);
		*off += 4;
	}
	return R_OK;
}

static inline int parse_l3(const uint8_t *p, uint32_t cap, uint32_t wire,
			   uint16_t type, uint32_t off, struct weir_packet *out)
{
	if (WEIR_LIKELY(type == ETH_P_IPV4))
		return parse_ipv4(p, cap, wire, off, out);
	if (type == ETH_P_IPV6)
		return parse_ipv6(p, cap, wire, off, out);
	return R_NONIP;
}

/*
 * An 802.3 frame (a length where the ethertype was) whose LLC header starts
 * at `off`, after `tags` VLAN tags: only LLC/SNAP (AA AA 03, OUI 0) with an
 * ethertype can carry IP; more tags may follow it.  The LLC bytes decide,
 * so cutting them is MALFORMED.  Cold and out of line: inlined, it cost
 * the common path ~8 instructions a frame (callgrind, parse_bench).
 */
__attribute__((cold, noinline))
static int parse_llc_snap(const uint8_t *p, uint32_t cap, uint32_t wire,
			  uint32_t off, uint32_t tags, struct weir_packet *out)
{
	static const uint8_t snap[6] = { 0xaa, 0xaa, 0x03, 0, 0, 0 };
	uint16_t type;

	if (off + 3 > cap)
		return R_BAD;
	if (memcmp(p + off, snap, 3) != 0)
		return R_NONIP;
	if (off + 8 > cap)
		return R_BAD;
	if (memcmp(p + off + 3, snap + 3, 3) != 0)
		return R_NONIP;
	type = wr_ld16be(p + off + 6);
	off += 8;
	if (skip_tags(p, cap, &type, &off, &tags) != R_OK)
		return R_BAD;
	return parse_l3(p, cap, wire, type, off, out);
}

/*
 * `type` is an ethertype whose payload starts at `off`: skip VLAN tags,
 * then dispatch on IPv4 / IPv6.  With `llc` (Ethernet), an 802.3 length
 * is followed into LLC/SNAP, also after tags: a tagged 802.3 frame was
 * NON_IP where tshark reads its SNAP IP packet (found by
 * tests/flows/corpus_xcheck.py on a generated capture).
 */
static int parse_ethertype(const uint8_t *p, uint32_t cap, uint32_t wire,
			   uint16_t type, uint32_t off, int llc,
			   struct weir_packet *out)
{
	uint32_t tags = 0;

	/* Untagged IP first: the tag and 802.3 tests pass it anyway, and
	 * gcc then inlines parse_ipv4 here (~18 instructions a frame less
	 * with the tests, callgrind, weir flows). */
	if (WEIR_LIKELY(type == ETH_P_IPV4 || type == ETH_P_IPV6))
		return parse_l3(p, cap, wire, type, off, out);
	if (skip_tags(p, cap, &type, &off, &tags) != R_OK)
		return R_BAD;
	if (WEIR_UNLIKELY(type < 0x0600) && llc)
		return parse_llc_snap(p, cap, wire, off, tags, out);
	return parse_l3(p, cap, wire, type, off, out);
}

static int parse_ethernet(const uint8_t *p, uint32_t cap, uint32_t wire,
			  struct weir_packet *out)
{
	if (cap < 14)
		return R_BAD;
	return parse_ethertype(p, cap, wire, wr_ld16be(p + 12), 14, 1, out);
}

/* Raw IP: the version nibble decides (0 = either is allowed). */
static int parse_raw(const uint8_t *p, uint32_t cap, uint32_t wire,
		     uint32_t off, unsigned want, struct weir_packet *out)
{
	unsigned v;

	if (off >= cap)
		return R_BAD;
	v = p[off] >> 4;
	if (want != 0 && v != want)
		return R_BAD;
	if (v == 4)
		return parse_ipv4(p, cap, wire, off, out);
	if (v == 6)
		return parse_ipv6(p, cap, wire, off, out);
	return R_BAD;
}

/* BSD loopback: a 4-byte address family, then the IP packet. */
static int parse_loopback(const uint8_t *p, uint32_t cap, uint32_t wire,
			  int network_order, struct weir_packet *out)
{
	uint32_t af;

	if (cap < 4)
		return R_BAD;
	if (network_order) {
		af = wr_ld32be(p);
	} else {
		/* Host order of the capturing machine, which may not be
		 * ours; AF values are < 65536, so the swapped form has its
		 * low 16 bits clear (the libpcap/Wireshark heuristic). */
		af = wr_ld32le(p);
		if (af & 0xffff0000u)
			af = __builtin_bswap32(af);
	}
	if (af == 2)
		return parse_raw(p, cap, wire, 4, 4, out);
	if (af == 24 || af == 28 || af == 30)
		return parse_raw(p, cap, wire, 4, 6, out);
	return R_NONIP;
}

#define ARPHRD_NETLINK 824

/* Linux cooked capture v1 (16-byte header) and v2 (20 bytes). */
static int parse_sll(const uint8_t *p, uint32_t cap, uint32_t wire,
		     int v2, struct weir_packet *out)
{
	uint16_t hatype, proto;

	if (cap < (v2 ? 20u : 16u))
		return R_BAD;
	hatype = v2 ? wr_ld16be(p + 8) : wr_ld16be(p + 2);
	proto = v2 ? wr_ld16be(p) : wr_ld16be(p + 14);
	if (hatype == ARPHRD_NETLINK) /* proto is a netlink family */
		return R_NONIP;
	return parse_ethertype(p, cap, wire, proto, v2 ? 20 : 16, 0, out);
}

__attribute__((hot))
int weir_parse(const uint8_t *data, uint32_t caplen, uint32_t wire_len,
	       uint32_t linktype, struct weir_packet *out)
{
	uint32_t wire = wire_len > caplen ? wire_len : caplen;

	/* Nearly every capture: a compare instead of the switch's bounds
	 * check and indirect jump (~8 instructions a frame, callgrind). */
	if (WEIR_LIKELY(linktype == WEIR_LINKTYPE_ETHERNET))
		return parse_ethernet(data, caplen, wire, out);
	switch (linktype) {
	case WEIR_LINKTYPE_ETHERNET:
		return parse_ethernet(data, caplen, wire, out);
	case WEIR_LINKTYPE_RAW:
	case WEIR_LINKTYPE_DLT_RAW1:
	case WEIR_LINKTYPE_DLT_RAW2:
		return parse_raw(data, caplen, wire, 0, 0, out);
	case WEIR_LINKTYPE_IPV4:
		return parse_raw(data, caplen, wire, 0, 4, out);
	case WEIR_LINKTYPE_IPV6:
		return parse_raw(data, caplen, wire, 0, 6, out);
	case WEIR_LINKTYPE_LINUX_SLL:
		return parse_sll(data, caplen, wire, 0, out);
	case WEIR_LINKTYPE_LINUX_SLL2:
		return parse_sll(data, caplen, wire, 1, out);
	case WEIR_LINKTYPE_NULL:
		return parse_loopback(data, caplen, wire, 0, out);
	case WEIR_LINKTYPE_LOOP:
		return parse_loopback(data, caplen, wire, 1, out);
	default:
		return WEIR_PARSE_BAD_LINKTYPE;
	}
}

bool weir_linktype_supported(uint32_t linktype)
{
	switch (linktype) {
	case WEIR_LINKTYPE_NULL:
	case WEIR_LINKTYPE_ETHERNET:
	case WEIR_LINKTYPE_DLT_RAW1:
	case WEIR_LINKTYPE_DLT_RAW2:
	case WEIR_LINKTYPE_RAW:
	case WEIR_LINKTYPE_LOOP:
	case WEIR_LINKTYPE_LINUX_SLL:
	case WEIR_LINKTYPE_IPV4:
	case WEIR_LINKTYPE_IPV6:
	case WEIR_LINKTYPE_LINUX_SLL2:
		return true;
	default:
		return false;
	}
}

/* Names from the tcpdump.org LINKTYPE registry, for error messages: every
 * link type of tcpdump's test corpus is named (its refusals said
 * "link type 182 (unknown)" for MFR, JUNIPER_*, DSA_TAG_*, IPNET...). */
static const struct {
	uint16_t type;
	const char *name;
} linktype_names[] = {
	{ 0, "NULL" }, { 1, "EN10MB" }, { 6, "IEEE802_5" }, { 8, "SLIP" },
	{ 9, "PPP" }, { 10, "FDDI" }, { 12, "RAW" }, { 14, "RAW" },
	{ 50, "PPP_HDLC" }, { 51, "PPP_ETHER" }, { 100, "ATM_RFC1483" },
	{ 101, "RAW" }, { 104, "C_HDLC" }, { 105, "IEEE802_11" },
	{ 106, "ATM_CLIP" }, { 107, "FRELAY" }, { 108, "LOOP" },
	{ 109, "ENC" }, { 113, "LINUX_SLL" },
	{ 114, "LTALK" }, { 117, "PFLOG" }, { 119, "IEEE802_11_PRISM" },
	{ 122, "IP_OVER_FC" }, { 123, "SUNATM" }, { 127, "IEEE802_11_RADIOTAP" },
	{ 129, "ARCNET_LINUX" }, { 130, "JUNIPER_MLPPP" },
	{ 131, "JUNIPER_MLFR" }, { 132, "JUNIPER_ES" }, { 133, "JUNIPER_GGSN" },
	{ 134, "JUNIPER_MFR" }, { 135, "JUNIPER_ATM2" },
	{ 136, "JUNIPER_SERVICES" }, { 137, "JUNIPER_ATM1" },
	{ 138, "APPLE_IP_OVER_IEEE1394" },
	{ 139, "MTP2_WITH_PHDR" }, { 140, "MTP2" }, { 141, "MTP3" },
	{ 142, "SCCP" }, { 143, "DOCSIS" }, { 144, "LINUX_IRDA" },
	{ 147, "USER0" }, { 148, "USER1" }, { 149, "USER2" }, { 150, "USER3" },
	{ 151, "USER4" }, { 152, "USER5" }, { 153, "USER6" }, { 154, "USER7" },
	{ 155, "USER8" }, { 156, "USER9" }, { 157, "USER10" },
	{ 158, "USER11" }, { 159, "USER12" }, { 160, "USER13" },
	{ 161, "USER14" }, { 162, "USER15" },
	{ 163, "IEEE802_11_AVS" }, { 165, "BACNET_MS_TP" }, { 166, "PPP_PPPD" },
	{ 167, "JUNIPER_PPPOE" }, { 168, "JUNIPER_PPPOE_ATM" },
	{ 169, "GPRS_LLC" }, { 177, "LINUX_LAPD" }, { 178, "JUNIPER_ETHER" },
	{ 179, "JUNIPER_PPP" }, { 180, "JUNIPER_FRELAY" },
	{ 181, "JUNIPER_CHDLC" }, { 182, "MFR" }, { 183, "JUNIPER_VP" },
	{ 187, "BLUETOOTH_HCI_H4" },
	{ 189, "USB_LINUX" }, { 192, "PPI" }, { 195, "IEEE802_15_4_WITHFCS" },
	{ 197, "ERF" },
	{ 201, "BLUETOOTH_HCI_H4_WITH_PHDR" }, { 215, "IEEE802_15_4_NONASK_PHY" },
	{ 220, "USB_LINUX_MMAPPED" }, { 224, "FC_2" }, { 226, "IPNET" },
	{ 227, "CAN_SOCKETCAN" },
	{ 228, "IPV4" }, { 229, "IPV6" }, { 230, "IEEE802_15_4_NOFCS" },
	{ 231, "DBUS" }, { 235, "DVB_CI" }, { 239, "NFLOG" }, { 240, "NETANALYZER" },
	{ 242, "IPOIB" },
	{ 247, "INFINIBAND" }, { 248, "SCTP" }, { 249, "USBPCAP" },
	{ 251, "BLUETOOTH_LE_LL" }, { 253, "NETLINK" },
	{ 254, "BLUETOOTH_LINUX_MONITOR" }, { 256, "BLUETOOTH_LE_LL_WITH_PHDR" },
	{ 258, "PKTAP" },
	{ 262, "ZWAVE_R3" }, { 263, "WATTSTOPPER_DLM" }, { 264, "ISO_14443" },
	{ 271, "VSOCK" }, { 272, "NORDIC_BLE" }, { 276, "LINUX_SLL2" },
	{ 281, "DSA_TAG_BRCM" }, { 282, "DSA_TAG_BRCM_PREPEND" },
	{ 283, "IEEE802_15_4_TAP" }, { 284, "DSA_TAG_DSA" },
	{ 285, "DSA_TAG_EDSA" },
};

const char *weir_linktype_name(uint32_t linktype)
{
	size_t i;

	for (i = 0; i < sizeof(linktype_names) / sizeof(linktype_names[0]); i++)
		if (linktype_names[i].type == linktype)
			return linktype_names[i].name;
	return "unknown";
}
