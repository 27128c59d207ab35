/*
 * pcap_write.c — a small capture writer: classic pcap (µs or ns, either byte
 * order) and pcapng (SHB, IDB with if_tsresol, EPB), through stdio.
 *
 * For tests, fuzz seeds and tools: it is not on the data path (stdio, one
 * fwrite per field group).  Records are written whole or not at all from the
 * reader's point of view only if the caller checks weir_pcap_writer_close().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "net/bytes.h"
#include "weir/net.h"

struct weir_pcap_writer {
	FILE *f;
	struct weir_pcap_writer_config cfg;
	int be;
	int err;                                   /* first write error */
	uint32_t n_if;
	uint8_t tsresol[WEIR_PCAP_INTERFACES_MAX]; /* per interface */
};

static void put(struct weir_pcap_writer *w, const void *p, size_t n)
{
	if (w->err == 0 && n != 0 && fwrite(p, 1, n, w->f) != n)
		w->err = wr_error(-EIO, "capture writer: write failed");
}

static void put32(struct weir_pcap_writer *w, uint32_t v)
{
	uint8_t b[4];

	wr_st32(b, v, w->be);
	put(w, b, 4);
}

static void put16(struct weir_pcap_writer *w, uint16_t v)
{
	uint8_t b[2];

	wr_st16(b, v, w->be);
	put(w, b, 2);
}


/* ns → units of the if_tsresol byte `res` (0: µs). */
static uint64_t ns_to_units(uint64_t ns, uint8_t res)
{
	uint8_t e = res == 0 ? 6 : (res & 0x7f);

	if (res & 0x80)
		return (uint64_t)(((unsigned __int128)ns << e) / 1000000000u);
	if (e <= 9)
		return ns / wr_pow10[9 - e];
	return e < 20 + 9 ? ns * wr_pow10[e - 9] : 0;
}

static void write_shb(struct weir_pcap_writer *w)
{
	put32(w, 0x0a0d0d0a);
	put32(w, 28);
	put32(w, 0x1a2b3c4d);
	put16(w, 1);
	put16(w, 0);
	put32(w, 0xffffffffu); /* section length: unknown */
	put32(w, 0xffffffffu);
	put32(w, 28);
	w->n_if = 0;
}

int weir_pcap_writer_add_interface(struct weir_pcap_writer *w,
				   uint32_t linktype, uint8_t tsresol,
				   uint32_t *ifid)
{
	uint32_t len = tsresol ? 32 : 20;
	static const uint8_t zero[3];

	if (w->cfg.format != WEIR_CAPTURE_PCAPNG)
		return wr_error(-EINVAL, "capture writer: interfaces are pcapng only");
	if (w->n_if == WEIR_PCAP_INTERFACES_MAX)
		return wr_error(-E2BIG, "capture writer: more than %d interfaces",
				WEIR_PCAP_INTERFACES_MAX);
	put32(w, 1);
	put32(w, len);
	put16(w, (uint16_t)linktype);
	put16(w, 0);
	put32(w, w->cfg.snaplen);
	if (tsresol) {
		put16(w, 9);
		put16(w, 1);
		put(w, &tsresol, 1);
		put(w, zero, 3);
		put32(w, 0); /* opt_endofopt */
	}
	put32(w, len);
	w->tsresol[w->n_if] = tsresol;
	if (ifid != NULL)
		*ifid = w->n_if;
	w->n_if++;
	return w->err;
}

int weir_pcap_writer_new_section(struct weir_pcap_writer *w)
{
	if (w->cfg.format != WEIR_CAPTURE_PCAPNG)
		return wr_error(-EINVAL, "capture writer: sections are pcapng only");
	write_shb(w);
	return w->err;
}

int weir_pcap_writer_open(FILE *f, const struct weir_pcap_writer_config *cfg,
			  struct weir_pcap_writer **out)
{
	struct weir_pcap_writer *w;
	int rc = 0;

	if (f == NULL || cfg == NULL || out == NULL)
		return wr_error(-EINVAL, "capture writer: NULL argument");
	if (cfg->format > WEIR_CAPTURE_PCAPNG)
		return wr_error(-EINVAL, "capture writer: unknown format %d",
				(int)cfg->format);
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return wr_error(-ENOMEM, "capture writer: out of memory");
	w->f = f;
	w->cfg = *cfg;
	w->be = cfg->big_endian;
	if (w->cfg.snaplen == 0)
		w->cfg.snaplen = 262144;
	if (cfg->format == WEIR_CAPTURE_PCAPNG) {
		write_shb(w);
		rc = weir_pcap_writer_add_interface(w, cfg->linktype,
						    cfg->tsresol, NULL);
	} else {
		put32(w, cfg->format == WEIR_CAPTURE_PCAP_NS ? 0xa1b23c4du
							     : 0xa1b2c3d4u);
		put16(w, 2);
		put16(w, 4);
		put32(w, 0);
		put32(w, 0);
		put32(w, w->cfg.snaplen);
		put32(w, cfg->linktype);
		rc = w->err;
	}
	if (rc < 0) {
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

int weir_pcap_writer_write(struct weir_pcap_writer *w, uint32_t ifid,
			   uint64_t ts_ns, const void *data, uint32_t caplen,
			   uint32_t wire_len)
{
	static const uint8_t zero[3];
	uint64_t t;

	if (ifid >= (w->cfg.format == WEIR_CAPTURE_PCAPNG ? w->n_if : 1))
		return wr_error(-EINVAL, "capture writer: no interface %u", ifid);
	if (w->cfg.format != WEIR_CAPTURE_PCAPNG) {
		uint32_t div = w->cfg.format == WEIR_CAPTURE_PCAP_NS ? 1 : 1000;

		put32(w, (uint32_t)(ts_ns / 1000000000u));
		put32(w, (uint32_t)(ts_ns % 1000000000u / div));
		put32(w, caplen);
		put32(w, wire_len);
		put(w, data, caplen);
		return w->err;
	}
	t = ns_to_units(ts_ns, w->tsresol[ifid]);
	put32(w, 6);
	put32(w, 32 + ((caplen + 3) & ~3u));
	put32(w, ifid);
	put32(w, (uint32_t)(t >> 32));
	put32(w, (uint32_t)t);
	put32(w, caplen);
	put32(w, wire_len);
	put(w, data, caplen);
	put(w, zero, (4 - caplen % 4) % 4);
	put32(w, 32 + ((caplen + 3) & ~3u));
	return w->err;
}

int weir_pcap_writer_raw(struct weir_pcap_writer *w, const void *p, size_t n)
{
	put(w, p, n);
	return w->err;
}

int weir_pcap_writer_close(struct weir_pcap_writer *w)
{
	int rc;

	if (w == NULL)
		return 0;
	if (fflush(w->f) != 0 && w->err == 0)
		w->err = wr_error(-EIO, "capture writer: flush failed");
	rc = w->err;
	free(w);
	return rc;
}
