/*
 * make_capture.c — write a test capture with weir's capture writer and
 * print, for every frame, what it is by construction (not by parsing):
 *
 *   make_capture OUT FORMAT SEED FRAMES
 *   FORMAT: pcap-us | pcap-ns | pcapng, with -be for a big-endian file
 *
 * stdout, one line per frame:
 *   ok TS_NS VERSION PROTO SRC_HEX DST_HEX SPORT DPORT IP_BYTES
 *   malformed TS_NS | non_ip TS_NS
 * check_flows.py aggregates these lines into the expected CSV rows.
 *
 * Frames: Ethernet with 0, 1 or 2 VLAN tags; IPv4 and IPv6; TCP, UDP, ICMP,
 * ICMPv6; IPv4 first and later fragments (later: ports 0); addresses from a
 * small pool so flows repeat, including IPv6 zero-run edge cases (::1, a
 * tie between two runs, IPv4-mapped and IPv4-compatible); every 97th frame
 * malformed (IHL 4), every 89th ARP.  Timestamps increase by 0..20 ms, so a
 * few thousand frames span several 1 s windows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/net.h"

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *v6_pool[] = {
	"20010db8000000000000000000000001", "00000000000000000000000000000001",
	"20010db8000000010000000000000001", "fe800000000000000202b3fffe1e8329",
	"00000000000000000000ffff01020304", "00000000000000000000000001020304",
	"20010db8aaaabbbbccccddddeeee0000", "ff020000000000000000000000000001",
};

static void hex16(const char *h, uint8_t *out)
{
	for (int i = 0; i < 16; i++)
		sscanf(h + 2 * i, "%2hhx", &out[i]);
}

struct frame {
	uint8_t b[2048];
	uint32_t len;
};

static void put(struct frame *f, const void *p, uint32_t n)
{
	memcpy(f->b + f->len, p, n);
	f->len += n;
}

static void put16(struct frame *f, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	put(f, b, 2);
}

static void eth(struct frame *f, uint16_t type, unsigned tags)
{
	static const uint8_t macs[12] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2 };

	put(f, macs, 12);
	for (unsigned t = 0; t < tags; t++) {
		put16(f, t == 0 && tags == 2 ? 0x88a8 : 0x8100);
		put16(f, (uint16_t)(10 + t));
	}
	put16(f, type);
}

/* L4 header + payload; returns the bytes written after the IP header. */
static uint32_t l4(struct frame *f, uint8_t proto, uint16_t sp, uint16_t dp,
		   uint32_t payload)
{
	uint32_t start = f->len;

	if (proto == 6 || proto == 17) {
		put16(f, sp);
		put16(f, dp);
		memset(f->b + f->len, 0, proto == 6 ? 16 : 4);
		f->len += proto == 6 ? 16 : 4;
		if (proto == 17) { /* UDP length */
			f->b[start + 4] = (uint8_t)((8 + payload) >> 8);
			f->b[start + 5] = (uint8_t)(8 + payload);
		} else {
			f->b[start + 12] = 0x50;
		}
	} else {
		memset(f->b + f->len, 0, 8);
		f->b[f->len] = 8; /* echo request */
		f->len += 8;
	}
	memset(f->b + f->len, 0xab, payload);
	f->len += payload;
	return f->len - start;
}

static void emit(const char *kind, uint64_t ts, int ver, uint8_t proto,
		 const uint8_t *s, const uint8_t *d, uint16_t sp, uint16_t dp,
		 uint32_t bytes)
{
	printf("%s %llu", kind, (unsigned long long)ts);
	if (ver) {
		printf(" %d %u ", ver, proto);
		for (int i = 0; i < 16; i++)
			printf("%02x", s[i]);
		putchar(' ');
		for (int i = 0; i < 16; i++)
			printf("%02x", d[i]);
		printf(" %u %u %u", sp, dp, bytes);
	}
	putchar('\n');
}

static void ipv4(struct frame *f, uint64_t ts, unsigned tags)
{
	uint8_t s[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 0,
			  (uint8_t)(1 + rnd() % 6) };
	uint8_t d[16] = { [10] = 0xff, [11] = 0xff, 192, 168, 1,
			  (uint8_t)(1 + rnd() % 3) };
	uint8_t proto = (uint8_t[]){ 6, 17, 1 }[rnd() % 3];
	uint16_t sp = (uint16_t)(1000 + rnd() % 3), dp = 80;
	unsigned frag = rnd() % 10; /* 0: first fragment, 1: later fragment */
	uint32_t ip = f->len, n;

	eth(f, 0x0800, tags);
	memset(f->b + f->len, 0, 20);
	f->b[f->len] = 0x45;
	f->len += 20;
	f->b[ip + 14 + 4 * tags + 8] = 64;
	f->b[ip + 14 + 4 * tags + 9] = proto;
	memcpy(f->b + ip + 14 + 4 * tags + 12, s + 12, 4);
	memcpy(f->b + ip + 14 + 4 * tags + 16, d + 12, 4);
	ip += 14 + 4 * tags;
	if (frag == 1) {
		f->b[ip + 6] = 0x00;
		f->b[ip + 7] = 0x10; /* offset 16 * 8 */
		memset(f->b + f->len, 0xcd, 100);
		f->len += 100;
		n = 100;
		sp = dp = 0;
	} else {
		if (frag == 0)
			f->b[ip + 6] = 0x20; /* MF */
		n = l4(f, proto, sp, dp, (uint32_t)(rnd() % 300));
	}
	if (proto == 1)
		sp = dp = 0;
	f->b[ip + 2] = (uint8_t)((20 + n) >> 8);
	f->b[ip + 3] = (uint8_t)(20 + n);
	emit("ok", ts, 4, proto, s, d, sp, dp, 20 + n);
}

static void ipv6(struct frame *f, uint64_t ts, unsigned tags)
{
	uint8_t s[16], d[16];
	uint8_t proto = (uint8_t[]){ 6, 17, 58 }[rnd() % 3];
	uint16_t sp = (uint16_t)(2000 + rnd() % 2), dp = 443;
	uint32_t ip, n;

	hex16(v6_pool[rnd() % 8], s);
	hex16(v6_pool[rnd() % 4], d);
	eth(f, 0x86dd, tags);
	ip = f->len;
	memset(f->b + ip, 0, 40);
	f->b[ip] = 0x60;
	f->b[ip + 6] = proto;
	f->b[ip + 7] = 64;
	memcpy(f->b + ip + 8, s, 16);
	memcpy(f->b + ip + 24, d, 16);
	f->len += 40;
	n = l4(f, proto, sp, dp, (uint32_t)(rnd() % 300));
	if (proto == 58)
		sp = dp = 0;
	f->b[ip + 4] = (uint8_t)(n >> 8);
	f->b[ip + 5] = (uint8_t)n;
	emit("ok", ts, 6, proto, s, d, sp, dp, 40 + n);
}

static void one(struct frame *f, uint64_t i, uint64_t ts)
{
	unsigned tags = rnd() % 5 == 0 ? 1 + (unsigned)(rnd() % 2) : 0;

	f->len = 0;
	if (i % 89 == 5) { /* ARP */
		eth(f, 0x0806, 0);
		memset(f->b + f->len, 0, 28);
		f->len += 28;
		emit("non_ip", ts, 0, 0, NULL, NULL, 0, 0, 0);
	} else if (i % 97 == 7) { /* IHL 4 */
		eth(f, 0x0800, tags);
		memset(f->b + f->len, 0, 40);
		f->b[f->len] = 0x44;
		f->b[f->len + 3] = 40;
		f->len += 40;
		emit("malformed", ts, 0, 0, NULL, NULL, 0, 0, 0);
	} else if (rnd() % 3 == 0) {
		ipv6(f, ts, tags);
	} else {
		ipv4(f, ts, tags);
	}
}

int main(int argc, char **argv)
{
	struct weir_pcap_writer_config cfg = { .linktype = 1 };
	struct weir_pcap_writer *w;
	struct frame f;
	uint64_t ts = 1700000000123456789ull, frames;
	FILE *out;

	if (argc != 5) {
		fprintf(stderr, "usage: make_capture OUT pcap-us|pcap-ns|pcapng"
			"[-be] SEED FRAMES\n");
		return 2;
	}
	cfg.format = strncmp(argv[2], "pcapng", 6) == 0 ? WEIR_CAPTURE_PCAPNG :
		     strncmp(argv[2], "pcap-ns", 7) == 0 ? WEIR_CAPTURE_PCAP_NS :
		     WEIR_CAPTURE_PCAP_US;
	cfg.big_endian = strstr(argv[2], "-be") != NULL;
	if (cfg.format == WEIR_CAPTURE_PCAPNG)
		cfg.tsresol = 9;
	rng = strtoull(argv[3], NULL, 10) * 2654435761u + 88172645463325252ull;
	frames = strtoull(argv[4], NULL, 10);
	out = fopen(argv[1], "wb");
	if (out == NULL || weir_pcap_writer_open(out, &cfg, &w) != 0) {
		perror(argv[1]);
		return 1;
	}
	for (uint64_t i = 0; i < frames; i++) {
		ts += rnd() % 20000000u;
		if (cfg.format == WEIR_CAPTURE_PCAP_US)
			ts -= ts % 1000; /* what the file can hold */
		one(&f, i, ts);
		if (weir_pcap_writer_write(w, 0, ts, f.b, f.len, f.len) != 0)
			return 1;
	}
	if (weir_pcap_writer_close(w) != 0 || fclose(out) != 0)
		return 1;
	return 0;
}
