/*
 * gen_seeds.c — write small seed inputs for parse_fuzz into a directory:
 * frames of every supported link type (prefix byte 0, link-type index) and
 * captures made with our writer (prefix byte 1): classic µs/ns in both byte
 * orders, pcapng with three interfaces and different if_tsresol, two
 * sections of opposite byte order.  Never corpus files: generated here.
 */
#include <stdio.h>
#include <stdlib.h>

#include "weir/net.h"
#include "../net/frames.h"

static void save(const char *dir, const char *name, uint8_t b0, uint8_t b1,
		 const void *p, size_t n, int two)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL) {
		perror(path);
		exit(1);
	}
	fputc(b0, f);
	if (two)
		fputc(b1, f);
	fwrite(p, 1, n, f);
	fclose(f);
}

static void frames(const char *dir)
{
	/* index into parse_fuzz.c's linktypes[]: 1 = Ethernet, 4 = RAW,
	 * 8 = IPv6, 6 = SLL, 9 = SLL2, 0 = NULL, 5 = LOOP */
	static const uint8_t sll[16] = { 0, 0, 0, 1, 0, 6, [14] = 0x86, 0xdd };
	static const uint8_t sll2[20] = { 0x08, 0x00, [9] = 1 };
	static const uint8_t loop[4] = { 0, 0, 0, 2 };
	struct fb f;

	fb_eth_ipv4_l4(&f, 6, 0x0a000001, 0x0a000002, 1234, 80, 8);
	save(dir, "eth_ipv4_tcp", 0, 1, f.b, f.len, 1);
	fb_init(&f);
	fb_macs(&f);
	fb_u16(&f, 0x88a8), fb_u16(&f, 1), fb_u16(&f, 0x8100), fb_u16(&f, 2);
	fb_u16(&f, 0x86dd);
	fb_ipv6(&f, 0, 1, 2);
	fb_ext(&f, 44, 0);
	fb_frag6(&f, 17, 0, 1);
	fb_ports(&f, 53, 53, 4);
	fb_ip_end(&f);
	save(dir, "qinq_ipv6_frag_udp", 0, 1, f.b, f.len, 1);
	fb_init(&f);
	fb_ipv4(&f, 17, 1, 2, 2, 0x2000);
	fb_ports(&f, 1, 2, 4);
	fb_ip_end(&f);
	save(dir, "raw_ipv4_opts_frag", 0, 4, f.b, f.len, 1);
	fb_init(&f);
	fb_bytes(&f, sll, 16);
	fb_ipv6(&f, 43, 1, 2);
	fb_ext(&f, 51, 1);
	fb_ah(&f, 132, 1);
	fb_ports(&f, 9, 9, 8);
	fb_ip_end(&f);
	save(dir, "sll_ipv6_chain_sctp", 0, 6, f.b, f.len, 1);
	fb_init(&f);
	fb_bytes(&f, sll2, 20);
	fb_ipv4(&f, 1, 1, 2, 0, 0);
	fb_zero(&f, 8);
	fb_ip_end(&f);
	save(dir, "sll2_ipv4_icmp", 0, 9, f.b, f.len, 1);
	fb_init(&f);
	fb_bytes(&f, loop, 4);
	fb_ipv4(&f, 6, 1, 2, 0, 0);
	fb_ports(&f, 5, 6, 16);
	fb_ip_end(&f);
	save(dir, "loop_ipv4_tcp", 0, 5, f.b, f.len, 1);
}

/* One capture: `fmt`, byte order, interface 0 link type; optional extra
 * interfaces and a second section for pcapng. */
static void capture(const char *dir, const char *name,
		    enum weir_capture_format fmt, int be, int rich)
{
	struct weir_pcap_writer_config cfg = { .format = fmt, .big_endian = be,
					       .linktype = 1, .tsresol = 0 };
	struct weir_pcap_writer *w;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct fb fr;
	uint32_t id;

	if (f == NULL || weir_pcap_writer_open(f, &cfg, &w) != 0)
		exit(1);
	if (rich) {
		weir_pcap_writer_add_interface(w, 101, 9, &id);
		weir_pcap_writer_add_interface(w, 276, 0x80 | 20, &id);
	}
	for (int i = 0; i < 6; i++) {
		fb_eth_ipv4_l4(&fr, i % 2 ? 17 : 6, 1, 2, (uint16_t)i, 80,
			       (uint32_t)i);
		if (rich && i % 3 == 1) /* RAW: strip the Ethernet header */
			weir_pcap_writer_write(w, 1, 1000u * (uint64_t)i,
					       fr.b + 14, fr.len - 14,
					       fr.len - 14);
		else
			weir_pcap_writer_write(w, 0, 1000u * (uint64_t)i, fr.b,
					       fr.len, fr.len);
	}
	if (rich) {
		weir_pcap_writer_new_section(w);
		weir_pcap_writer_add_interface(w, 0, 0, &id);
		fb_init(&fr);
		fb_u32(&fr, 0x02000000); /* AF_INET, little-endian host */
		fb_ipv4(&fr, 6, 1, 2, 0, 0);
		fb_ports(&fr, 1, 2, 16);
		fb_ip_end(&fr);
		weir_pcap_writer_write(w, 0, 7, fr.b, fr.len, fr.len);
	}
	weir_pcap_writer_close(w);
	fclose(f);
	save(dir, name, 1, 0, buf, len, 0);
	free(buf);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds DIR\n");
		return 2;
	}
	frames(argv[1]);
	capture(argv[1], "pcap_us_le", WEIR_CAPTURE_PCAP_US, 0, 0);
	capture(argv[1], "pcap_ns_be", WEIR_CAPTURE_PCAP_NS, 1, 0);
	capture(argv[1], "pcapng_le_rich", WEIR_CAPTURE_PCAPNG, 0, 1);
	capture(argv[1], "pcapng_be_rich", WEIR_CAPTURE_PCAPNG, 1, 1);
	capture(argv[1], "pcapng_be", WEIR_CAPTURE_PCAPNG, 1, 0);
	return 0;
}
