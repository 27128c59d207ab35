/*
 * flows_capture.c — write the generator's traffic (weir/flows.h) as an
 * Ethernet pcap file, for bench/flows_bench.sh and the peers it compares
 * against (pmacctd, softflowd read the same file).
 *
 *   flows_capture OUT PACKETS FLOWS SEED [pcapng] [pps=N]
 *
 * pps=N: the generator's event clock (weir_flowgen_config.event_pps),
 * packet i at i / N s; a small N makes a sparse capture, whose 4096-frame
 * chunks span a long event time (the kill test's WEIR_KILL_PCAP_PPS).
 * With `pcapng` the file is pcapng instead, in sections of SECTION_PACKETS
 * packets, each with two interfaces, nanosecond and microsecond (packets
 * alternate between them; the timestamps are whole microseconds, so both
 * hold them exactly).  A section is 12 of the pcap source's 4096-frame
 * chunks: every 12th chunk starts at a section header, the others inside a
 * section, so the checkpoint kill tests resume a multi-core reader at both.
 *
 * Each packet: Ethernet + IPv4/IPv6 header + TCP/UDP ports or ICMP header,
 * captured up to 96 bytes (snaplen), wire length 14 + ip_bytes; the IP
 * length fields carry the generator's ip_bytes, so weir counts the same
 * bytes from the file as from memory.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/flows.h"

#define SECTION_PACKETS 49152u

/* pcapng: a new section (not before the first) and its two interfaces. */
static int section(struct weir_pcap_writer *w, uint64_t i)
{
	if (i > 0 && weir_pcap_writer_new_section(w) != 0)
		return -1;
	if (i > 0 && weir_pcap_writer_add_interface(w, 1, 9, NULL) != 0)
		return -1;
	return weir_pcap_writer_add_interface(w, 1, 6, NULL);
}

static uint32_t frame(const struct weir_flow_obs *o, uint8_t *b)
{
	const struct weir_flow_key *k = &o->key;
	uint32_t l3 = 14, l4, len = o->ip_bytes < 48 ? 48 : o->ip_bytes;

	memset(b, 0, 128);
	b[0] = 2; b[6] = 2; b[11] = 1;
	if (k->ip_version == 4) {
		b[12] = 0x08; b[13] = 0x00;
		b[l3] = 0x45;
		b[l3 + 2] = (uint8_t)(len >> 8); b[l3 + 3] = (uint8_t)len;
		b[l3 + 8] = 64; b[l3 + 9] = k->proto;
		memcpy(b + l3 + 12, k->src + 12, 4);
		memcpy(b + l3 + 16, k->dst + 12, 4);
		l4 = l3 + 20;
	} else {
		len = o->ip_bytes < 48 ? 48 : o->ip_bytes;
		b[12] = 0x86; b[13] = 0xdd;
		b[l3] = 0x60;
		b[l3 + 4] = (uint8_t)((len - 40) >> 8);
		b[l3 + 5] = (uint8_t)(len - 40);
		b[l3 + 6] = k->proto; b[l3 + 7] = 64;
		memcpy(b + l3 + 8, k->src, 16);
		memcpy(b + l3 + 24, k->dst, 16);
		l4 = l3 + 40;
	}
	b[l4] = (uint8_t)(k->sport >> 8); b[l4 + 1] = (uint8_t)k->sport;
	b[l4 + 2] = (uint8_t)(k->dport >> 8); b[l4 + 3] = (uint8_t)k->dport;
	if (k->proto == 6)
		b[l4 + 12] = 0x50;
	return 14 + len;
}

int main(int argc, char **argv)
{
	struct weir_pcap_writer_config wc = {
		.format = WEIR_CAPTURE_PCAP_NS, .linktype = 1, .snaplen = 96 };
	struct weir_flowgen_config gc;
	struct weir_pcap_writer *w;
	struct weir_flowgen *g;
	struct weir_flow_obs o;
	uint8_t b[128];
	FILE *f;
	bool ng = false, bad = argc < 5;

	weir_flowgen_config_init(&gc);
	for (int a = 5; a < argc; a++) {
		if (strcmp(argv[a], "pcapng") == 0)
			ng = true;
		else if (strncmp(argv[a], "pps=", 4) == 0 &&
			 (gc.event_pps = strtoull(argv[a] + 4, NULL, 10)) > 0)
			continue;
		else
			bad = true;
	}
	if (bad) {
		fprintf(stderr, "usage: flows_capture OUT PACKETS FLOWS SEED "
			"[pcapng] [pps=N]\n");
		return 2;
	}
	if (ng) {
		wc.format = WEIR_CAPTURE_PCAPNG;
		wc.tsresol = 9;
	}
	gc.packets = strtoull(argv[2], NULL, 10);
	gc.flows = (uint32_t)strtoul(argv[3], NULL, 10);
	gc.seed = strtoull(argv[4], NULL, 10);
	gc.size_min = 48; /* IPv6 header + ports fit */
	gc.size_max = 1500;
	f = fopen(argv[1], "wb");
	/* 4 MiB writes: ext4 caches the file in large folios, as it does a
	 * file read back from disk, and a mapping of it faults once per
	 * folio rather than per 64 KiB (stdio's 4 KiB writes: 12x the faults,
	 * flows_bench.sh's pcap4k row; bench/RESULTS.md 2026-12-07 06:00). */
	static char wbuf[4u << 20]; /* glibc ignores the size without one */
	if (f != NULL)
		setvbuf(f, wbuf, _IOFBF, sizeof(wbuf));
	if (f == NULL || weir_flowgen_create(&gc, &g) != 0 ||
	    weir_pcap_writer_open(f, &wc, &w) != 0) {
		fprintf(stderr, "flows_capture: %s: %s\n", argv[1],
			weir_last_error());
		return 1;
	}
	for (uint64_t i = 0; i < gc.packets; i++) {
		int64_t ts;
		weir_flowgen_packet(g, i, &o, &ts);
		uint32_t wire = frame(&o, b);
		if (ng && i % SECTION_PACKETS == 0 && section(w, i) != 0)
			return 1;
		if (weir_pcap_writer_write(w, ng ? (uint32_t)(i & 1) : 0,
					   (uint64_t)ts * 1000000u +
					   (uint64_t)(i % 1000) * 1000u, b,
					   wire < 96 ? wire : 96, wire) != 0)
			return 1;
	}
	weir_flowgen_destroy(g);
	return weir_pcap_writer_close(w) == 0 && fclose(f) == 0 ? 0 : 1;
}
