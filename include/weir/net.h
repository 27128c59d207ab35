/*
 * weir/net.h — packet parsing and capture files: the packet-ingest API.
 *
 * PURPOSE
 *   Two independent pieces that a packet source chains together:
 *   1. weir_parse(): one link-layer frame in, one flow key (5-tuple + IP
 *      version) and the IP-layer byte count out, with a verdict (OK,
 *      MALFORMED, NON_IP).  Pure function: no allocation, no state, no
 *      syscalls, safe on any core; ~10 ns per frame (bench/parse_bench.c).
 *   2. weir_pcap_*: a reader for classic pcap and pcapng files (or a buffer in
 *      memory) that yields frames with their link type and a nanosecond
 *      timestamp, and whose replay position can be saved in a checkpoint and
 *      restored with weir_pcap_seek().
 *   Plus a small writer (weir_pcap_writer_*) that tests and tools use to make
 *   capture files with our own code.  docs/net.md records the decisions.
 *
 * INVARIANTS
 *   1. weir_parse() never reads data[caplen] or beyond, whatever the bytes say.
 *   2. A frame is OK only if every header the key needs is inside caplen and
 *      self-consistent: link header, the whole IP header (IPv4 with options,
 *      IPv6 with its extension chain), and for TCP/UDP/UDP-Lite/SCTP/DCCP in
 *      a first (or unfragmented) fragment the 4 port bytes.  The payload may
 *      be cut by the snaplen: ip_bytes comes from the IP length field.
 *   3. On WEIR_PARSE_OK the key is fully written, padding included, so it can
 *      be hashed or compared as 40 raw bytes.  On any other verdict *out is
 *      unspecified.
 *   4. weir_frame.data points into the reader's mapping (or the caller's
 *      buffer for weir_pcap_open_mem) and stays valid until weir_pcap_close();
 *      from a stream (weir_pcap_open_fd), until the reader's next call.
 *   5. A reader never reads outside [base, base + size): every length in the
 *      file is checked against the bytes that remain before it is used.
 *
 *   6. weir_pcap_skip(r, n) leaves r exactly where n calls of
 *      weir_pcap_next() would (position, frame index, stats), or stops
 *      before the record next() would end, fail or count as truncated at.
 *
 * CAVEATS
 *   - One reader belongs to one thread (no internal locking): _local rule.
 *     Readers on several threads share one file through weir_pcap_clone().
 *   - Files are mapped once at open; a file that grows afterwards is read up
 *     to its size at open.
 */
#ifndef WEIR_NET_H
#define WEIR_NET_H

#include <stdbool.h>
#include <stdio.h>

#include "weir/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Link types (LINKTYPE_* values as stored in pcap / pcapng files).
 */
enum weir_linktype {
	WEIR_LINKTYPE_NULL = 0,      /* BSD loopback, AF in host byte order */
	WEIR_LINKTYPE_ETHERNET = 1,  /* DLT_EN10MB */
	WEIR_LINKTYPE_DLT_RAW1 = 12, /* DLT_RAW on most platforms */
	WEIR_LINKTYPE_DLT_RAW2 = 14, /* DLT_RAW on OpenBSD */
	WEIR_LINKTYPE_RAW = 101,     /* raw IPv4 or IPv6, by version nibble */
	WEIR_LINKTYPE_LOOP = 108,    /* OpenBSD loopback, AF in network order */
	WEIR_LINKTYPE_LINUX_SLL = 113,
	WEIR_LINKTYPE_IPV4 = 228,
	WEIR_LINKTYPE_IPV6 = 229,
	WEIR_LINKTYPE_LINUX_SLL2 = 276,
};

/* true if weir_parse() understands frames of this link type. */
bool weir_linktype_supported(uint32_t linktype);
/* The LINKTYPE_ name without prefix ("EN10MB", "IEEE802_11"), or "unknown".
 * Static storage. */
const char *weir_linktype_name(uint32_t linktype);

/* ------------------------------------------------------------------------
 * Parser.
 */
enum weir_parse_result {
	WEIR_PARSE_OK = 0,
	WEIR_PARSE_MALFORMED = 1, /* key headers cut by caplen or invalid */
	WEIR_PARSE_NON_IP = 2,    /* well-formed link layer, not IPv4/IPv6 */
	WEIR_PARSE_BAD_LINKTYPE = 3, /* !weir_linktype_supported(linktype) */
};

/* Bounds on what the parser walks through (each costs a bounded loop). */
#define WEIR_PARSE_VLAN_TAGS_MAX 4   /* 802.1Q/802.1ad tags; a 5th: MALFORMED */
#define WEIR_PARSE_IPV6_EXT_MAX 8    /* extension headers; a 9th: MALFORMED */

/*
 * The flow key: 40 bytes, no implicit padding, hashable as raw bytes.
 * Addresses are 16 bytes for both versions; an IPv4 address a.b.c.d is
 * stored IPv4-mapped (::ffff:a.b.c.d, RFC 4291 2.5.5.2), and ip_version
 * tells a real IPv6 packet carrying ::ffff:a.b.c.d apart from IPv4.
 * Ports are in host byte order, 0 for protocols without ports and for
 * non-first fragments.  proto is the IPv4 protocol or, for IPv6, the first
 * header after the extension chain (hop-by-hop, routing, fragment,
 * destination options, AH); tunnels are not decapsulated.
 */
struct weir_flow_key {
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport;
	uint16_t dport;
	uint8_t proto;
	uint8_t ip_version; /* 4 or 6 */
	uint8_t pad[2];     /* always 0 on WEIR_PARSE_OK */
};

/* weir_packet.flags */
#define WEIR_PKT_FRAGMENT 0x01       /* part of a fragmented datagram */
#define WEIR_PKT_LATER_FRAGMENT 0x02 /* fragment offset != 0: ports are 0 */

struct weir_packet {
	struct weir_flow_key key;
	uint32_t ip_bytes;  /* IPv4 total length; IPv6 payload length + 40 */
	uint16_t l3_offset; /* IP header offset in the frame */
	uint16_t l4_offset; /* transport header offset; 0 if not reached */
	uint8_t flags;      /* WEIR_PKT_* */
	uint8_t pad[3];
};

/*
 * Parse one frame of link type `linktype`: `caplen` bytes are readable at
 * `data`, the frame was `wire_len` bytes on the wire (a wire_len below
 * caplen is treated as caplen).  Returns an enum weir_parse_result.  An IP
 * length field that claims more than the frame had on the wire is MALFORMED,
 * and so is one of 0 (IPv4 total length; IPv6 payload length unless the
 * next header is 59, No Next Header): docs/net.md.
 */
int weir_parse(const uint8_t *data, uint32_t caplen, uint32_t wire_len,
	       uint32_t linktype, struct weir_packet *out);

/* ------------------------------------------------------------------------
 * Capture file reader: classic pcap (µs and ns magics, both byte orders, and
 * the 0xa1b2cd34 "modified" variant) and pcapng (any number of sections and
 * interfaces; EPB, SPB and the obsolete PB; other blocks skipped).
 */
struct weir_pcap;

struct weir_frame {
	const uint8_t *data; /* into the mapping: valid until weir_pcap_close */
	uint32_t caplen;
	uint32_t wire_len;
	uint64_t ts_ns;      /* since the epoch; 0 for pcapng SPBs */
	uint32_t linktype;
	uint32_t interface;  /* pcapng interface id in its section; 0 for pcap */
};

/*
 * Replay position: plain data, save it in a checkpoint as is.  `offset` is
 * the byte offset of the next record or block, `index` the number of frames
 * delivered before it.  For pcapng, `section_offset` is the offset of the
 * Section Header Block that `offset` belongs to and `interfaces` the number
 * of Interface Description Blocks of that section that lie before `offset`:
 * enough for weir_pcap_seek() to rebuild the interface table by reading only
 * the section's first blocks.
 */
struct weir_pcap_pos {
	uint64_t offset;
	uint64_t index;
	uint64_t section_offset;
	uint32_t interfaces;
	uint32_t reserved; /* 0 */
};

struct weir_pcap_stats {
	uint64_t frames;          /* delivered by weir_pcap_next */
	uint64_t truncated;       /* last record cut short by the file's end */
	uint64_t skipped_blocks;  /* pcapng blocks that carry no packet */
	uint64_t unsupported;     /* packets on interfaces of unsupported link type */
};

/* Largest captured length a record may claim before the file is called
 * corrupt (libpcap's largest snaplen is 256 KiB; D-Bus needs 128 MiB). */
#define WEIR_PCAP_CAPLEN_MAX (128u << 20)
/* Interfaces per pcapng section. */
#define WEIR_PCAP_INTERFACES_MAX 64

/*
 * Open a capture file and map it read-only.  Errors (with a message naming
 * the file): -ENOENT/-EACCES/... from open(2), -EISDIR, -EINVAL "not a pcap
 * or pcapng file (magic 0x...)", -EBADMSG truncated or corrupt header,
 * -ENOTSUP unsupported link type (classic pcap, or pcapng whose interfaces
 * before the first packet all have unsupported link types), -ENOTSUP for a
 * path that is not a regular file (a pipe or a device: refused before
 * open(2), which would wait for a FIFO's writer; weir_pcap_open_fd reads
 * one).
 */
int weir_pcap_open(const char *path, struct weir_pcap **out);
/* The same on a buffer the caller keeps alive and unchanged until close. */
int weir_pcap_open_mem(const void *buf, size_t len, const char *name,
		       struct weir_pcap **out);
/*
 * A capture read as a stream from `fd` (a pipe, a FIFO, a socket, standard
 * input; the reader owns fd and closes it), read through an io_uring into
 * a buffer of its own.  An fd that is a regular file at offset 0
 * (weir_pcap_fd_is_file: standard input redirected from a capture) is
 * mapped instead, as weir_pcap_open() maps a path: none of what follows
 * about streams applies to it.  Waits for the file header; after that no call
 * blocks: where the bytes there are end inside the capture, next() and
 * next_burst() return -EAGAIN (not sticky: call again later), and a frame
 * is valid only until the reader's next call.  The end of the stream is the
 * end of the capture, a record cut by it counted in stats.truncated as for
 * a file.  Positions count the stream's bytes, but a stream cannot seek
 * or be cloned (-ESPIPE), and weir_pcap_size() is 0.  Errors as
 * weir_pcap_open(), plus a record or block longer than 256 MiB (-EBADMSG)
 * and read errors (their errno), each naming the stream's offset.
 */
int weir_pcap_open_fd(int fd, const char *name, struct weir_pcap **out);
bool weir_pcap_fd_is_file(int fd);
void weir_pcap_close(struct weir_pcap *r);

/*
 * Deliver the next frame: returns 1 and fills *f, 0 at the end of the
 * capture (including a truncated last record, counted in stats.truncated),
 * or -EBADMSG for a corrupt record/block (absurd length, undefined
 * interface...), with a message naming the offset.  An error is sticky:
 * later calls return it again until weir_pcap_seek().  Frames of pcapng
 * interfaces with unsupported link types are skipped and counted.
 */
int weir_pcap_next(struct weir_pcap *r, struct weir_frame *f);

/*
 * Up to n frames into f[0 .. *got), as n calls of weir_pcap_next() would
 * deliver them; returns what the call that ended the run would have: 1
 * when all n came, 0 at the end, or the error (*got frames came before
 * it).  One call and one look at the reader's state per burst: a source's
 * poll reads 32 frames (~15 instructions a frame less than next(), in
 * callgrind).
 */
int weir_pcap_next_burst(struct weir_pcap *r, struct weir_frame *f,
			 unsigned n, unsigned *got);

/*
 * Skip up to n frames without producing them, as n calls of
 * weir_pcap_next() would (SHBs and IDBs are processed, unsupported-interface
 * packets and other blocks are passed and counted), in a few instructions
 * per frame: only lengths are read.  *skipped is how many; fewer than n
 * means the next record is one next() must handle: the end of the file, a
 * truncated record or a corrupt one, left untouched (no error is raised,
 * nothing is counted for it).  Returns 0, or the reader's sticky error.
 */
int weir_pcap_skip(struct weir_pcap *r, uint64_t n, uint64_t *skipped);

/*
 * A second reader of the same file at r's position (stats zeroed), sharing
 * r's mapping: a copy of the reader's few KiB, no syscall.  Each may then be
 * used by its own thread.  Close every clone before r.
 */
int weir_pcap_clone(const struct weir_pcap *r, struct weir_pcap **out);

/* The position before the next frame; weir_pcap_seek() returns to it. */
void weir_pcap_tell(const struct weir_pcap *r, struct weir_pcap_pos *pos);
/* Restore a position from weir_pcap_tell() on the same file.  -EINVAL if it
 * cannot belong to this file (beyond its end, not at a block...).  pcapng:
 * O(interfaces) from elsewhere, O(1) within the section the reader is in. */
int weir_pcap_seek(struct weir_pcap *r, const struct weir_pcap_pos *pos);

/* File size in bytes; with pos.offset it gives progress. */
uint64_t weir_pcap_size(const struct weir_pcap *r);
/* The file's mapping (weir_pcap_open), else NULL and *len 0.  A file that
 * another process truncates while it is mapped makes a read of its lost
 * pages raise SIGBUS at an address in this range: a program may catch that
 * and say the capture shrank (weir flows does). */
const void *weir_pcap_mapping(const struct weir_pcap *r, uint64_t *len);
/* Link type of a classic pcap file, or of interface 0 of the first pcapng
 * section. */
uint32_t weir_pcap_linktype(const struct weir_pcap *r);
void weir_pcap_get_stats(const struct weir_pcap *r, struct weir_pcap_stats *st);

/* ------------------------------------------------------------------------
 * Capture writer (for tests and tools; uses stdio, not for the data path).
 */
enum weir_capture_format {
	WEIR_CAPTURE_PCAP_US = 0, /* classic, magic 0xa1b2c3d4 */
	WEIR_CAPTURE_PCAP_NS = 1, /* classic, magic 0xa1b23c4d */
	WEIR_CAPTURE_PCAPNG = 2,
};

struct weir_pcap_writer_config {
	enum weir_capture_format format;
	bool big_endian;    /* byte order of the file */
	uint32_t linktype;  /* classic: the file's; pcapng: interface 0's */
	uint32_t snaplen;   /* 0: 262144 */
	uint8_t tsresol;    /* pcapng if_tsresol of interface 0; 0: none (µs) */
};

struct weir_pcap_writer;

/* Writes the file header (pcapng: SHB + IDB for interface 0) to `f`, which
 * the caller keeps open until weir_pcap_writer_close (which does not close
 * it). */
int weir_pcap_writer_open(FILE *f, const struct weir_pcap_writer_config *cfg,
			  struct weir_pcap_writer **out);
/* pcapng only: add an interface to the current section; tsresol as the
 * if_tsresol option byte (0: none, i.e. microseconds). */
int weir_pcap_writer_add_interface(struct weir_pcap_writer *w,
				   uint32_t linktype, uint8_t tsresol,
				   uint32_t *ifid);
/* pcapng only: start a new section (its interfaces must be added again). */
int weir_pcap_writer_new_section(struct weir_pcap_writer *w);
/* One packet (classic: ifid must be 0; pcapng: an EPB). */
int weir_pcap_writer_write(struct weir_pcap_writer *w, uint32_t ifid,
			   uint64_t ts_ns, const void *data, uint32_t caplen,
			   uint32_t wire_len);
/* Raw bytes, for tests that need odd blocks. */
int weir_pcap_writer_raw(struct weir_pcap_writer *w, const void *p, size_t n);
/* Flush and free; returns the first write error, if any. */
int weir_pcap_writer_close(struct weir_pcap_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_NET_H */
