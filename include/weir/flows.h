/*
 * weir/flows.h — packet sources for flow telemetry: a pcap/pcapng file
 * source and a deterministic traffic generator, both yielding flow
 * observations (one record per IP packet) into a pipeline, plus the text
 * form of flow addresses.  `weir flows` (apps/flows.c) is built on it.
 *
 * RECORDS
 *   struct weir_flow_obs (48 bytes): the parser's 40-byte flow key and the
 *   IP-layer byte count.  The record's event timestamp is the packet's
 *   timestamp in ms (floor of ts_ns / 1e6) for files, the generator's
 *   virtual clock for the generator.
 *
 * SPLITS
 *   File source: every core reads and parses its own share of the file.
 *   Frames are cut into chunks of 4096 (chunk k = frames [4096k,
 *   4096(k+1))), chunk k belongs to logical split k % WEIR_GENERATOR_SPLITS
 *   and the splits are dealt to the cores, core 0 (which also indexes and
 *   runs the file sink) taking 7/8 of a share; each core reads its chunks
 *   in file order with its own reader over the one mapping, and core 0
 *   also finds where the chunks start (docs/net.md).  A core begins no
 *   chunk 8 x cores or more chunks past the slowest core's, so the cores
 *   stay together by position whatever event time a chunk spans (the
 *   source is WEIR_SOURCE_SELF_ALIGNED).  A file of fewer than 4097 frames
 *   is read by core 0 alone.  weir_key_by() then spreads flows by key
 *   group, the same key -> core mapping as every other input.
 *   Generator: packet i is a pure function of (config, i); the index space
 *   is cut into WEIR_GENERATOR_SPLITS logical splits like
 *   weir_source_generator (packet i belongs to split i % S), split s goes
 *   to core s % cores, and each core walks its packets in index order, so
 *   its timestamps never go backwards.
 *
 * INVARIANTS
 *   1. Nothing the parser rejects reaches the stream: malformed, non-IP and
 *      unsupported-interface frames are counted per core and skipped, never
 *      fatal.  A structurally corrupt file (weir_pcap_next() -EBADMSG) fails
 *      the job with the reader's message.
 *   2. Counters are per core (one cache line each), written only by their
 *      core; weir_*_counters() sums them: call it after the run (during it,
 *      use the _progress() calls).
 *   3. Handles are the caller's: create before building the pipeline,
 *      destroy after weir_pipeline_destroy().  A handle feeds one pipeline.
 *
 * CAVEATS
 *   - weir_pcap_source_tell()/seek() read and move the origin (where frame
 *     0 of a run is): call them only while no pipeline runs.
 *     weir_pcap_source_progress() may be called from any thread at any
 *     time.
 *   - The file source's records are in file order per core, not across
 *     cores: a file whose timestamps go back by more than the watermark's
 *     out-of-orderness may count other packets late than on one core (on
 *     one core that already depends on when watermarks are sent).
 */
#ifndef WEIR_FLOWS_H
#define WEIR_FLOWS_H

#include "weir/net.h"
#include "weir/pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One observed IP packet. */
struct weir_flow_obs {
	struct weir_flow_key key;
	uint32_t ip_bytes;
	uint32_t pad; /* 0 */
};

struct weir_flow_counters {
	uint64_t packets;     /* frames read / packets generated */
	uint64_t ip;          /* parsed OK: records emitted */
	uint64_t malformed;
	uint64_t non_ip;
	uint64_t unsupported; /* frames of unsupported pcapng interfaces */
	uint64_t truncated;   /* a last record cut by the end of the file */
};

/* ---- pcap / pcapng file source ---- */

struct weir_pcap_source;

struct weir_pcap_source_config {
	/* Pacing over the whole file, all cores: frame f of the run is read
	 * no earlier than f / rate_pps s after the start; 0 = full speed. */
	uint64_t rate_pps;
	uint64_t duration_ms; /* input ends after this wall time; 0 = never */
	/* Streams only: once no frame has come for this long, the capture's
	 * time is taken to run on with ours from its last frame's timestamp
	 * (weir_source_ops.clock), so a quiet live capture's windows close.
	 * A frame that comes later stamped below that time is late.  0 =
	 * never: the windows wait for the next frame or the end. */
	uint64_t idle_close_ms;
};

/*
 * Open and check the file now (missing, unreadable, not a capture, bad
 * link type: the reader's -errno and message), so that a CLI can refuse
 * before any output exists.
 *
 * STREAMS: "-" (standard input), a FIFO or a character device is read as
 * a stream (weir_pcap_open_fd: open waits for the header; a FIFO's open
 * for its writer): by core 0 alone, in order, never blocking a core while
 * bytes have not come.  A stream is live: not replayable (no
 * positions, so a job with checkpoints says so at start), no file size
 * (progress says 0), seek refused; it ends at the stream's end or at
 * weir_pcap_source_stop().  A terminal is refused (-ENOTTY).
 */
int weir_pcap_source_open(const char *path,
			  const struct weir_pcap_source_config *cfg,
			  struct weir_pcap_source **out);
/* Add it to a pipeline as a source of struct weir_flow_obs. */
int weir_pcap_source_add(struct weir_pipeline *p, struct weir_pcap_source *s,
			 struct weir_stream **out);
void weir_pcap_source_close(struct weir_pcap_source *s);

/* The origin: where the next run starts reading (frame 0 of its chunks),
 * the file's first record unless seek() moved it; a position of
 * weir_pcap_tell() on the same file (-EINVAL otherwise).  See CAVEATS.  A
 * restore from a checkpoint resumes where the checkpoint says instead. */
void weir_pcap_source_tell(const struct weir_pcap_source *s,
			   struct weir_pcap_pos *pos);
int weir_pcap_source_seek(struct weir_pcap_source *s,
			  const struct weir_pcap_pos *pos);
/* Bytes (the origin's offset plus the records read, over all cores) and
 * frames consumed so far, and the file size; any thread, at any time
 * (refreshed every next() call of each core; after a restore the bytes
 * are an estimate). */
void weir_pcap_source_progress(const struct weir_pcap_source *s,
			       uint64_t *bytes_read, uint64_t *file_bytes,
			       uint64_t *packets);
/* Malformed frames so far; any thread, at any time (as progress). */
uint64_t weir_pcap_source_malformed(const struct weir_pcap_source *s);
void weir_pcap_source_counters(const struct weir_pcap_source *s,
			       struct weir_flow_counters *out);
/* The reader's -errno when the job failed because of the file (the first
 * core to meet it; it is the first corrupt record of the file), else 0. */
int weir_pcap_source_error(const struct weir_pcap_source *s);
/* The file's mapping, every core's reads are in it (weir_pcap_mapping);
 * NULL for a stream. */
const void *weir_pcap_source_mapping(const struct weir_pcap_source *s,
				     uint64_t *len);
/* false for a stream (STREAMS above). */
bool weir_pcap_source_replayable(const struct weir_pcap_source *s);
/* End a stream's input as if it had ended (async-signal-safe: one atomic
 * store); what was read is counted and every window is emitted.  No effect
 * on a file. */
void weir_pcap_source_stop(struct weir_pcap_source *s);

/* ---- traffic generator ---- */

struct weir_flowgen;

#define WEIR_FLOWGEN_FLOWS_MAX (1u << 24)

struct weir_flowgen_config {
	uint64_t seed;
	uint64_t packets;      /* packets in all; 0 = until duration_ms */
	uint32_t flows;        /* distinct flows to draw from, >= 1 */
	double zipf_s;         /* skew of flow popularity; 0 = uniform */
	double ipv6_fraction;  /* share of IPv6 flows, [0, 1] */
	uint32_t size_min;     /* IP bytes, uniform in [min, max]; */
	uint32_t size_max;     /* both 0: simple IMIX 40/576/1500 at 7:4:1 */
	uint64_t rate_pps;     /* wall-clock pacing, all cores; 0 = none */
	uint64_t event_pps;    /* virtual clock: packet i at i / event_pps s */
	int64_t start_ms;      /* event time of packet 0 */
	uint64_t duration_ms;  /* input ends after this wall time; 0 = never */
};

/* Defaults: seed 1, 4 M packets, 100000 flows, zipf 1.1, 20% IPv6, IMIX,
 * no pacing, event clock 1 Mpps from 2023-11-14T22:13:20Z. */
void weir_flowgen_config_init(struct weir_flowgen_config *cfg);
/* -EINVAL names a bad value (flows 0 or too many, fraction, sizes, neither
 * packets nor duration). */
int weir_flowgen_create(const struct weir_flowgen_config *cfg,
			struct weir_flowgen **out);
int weir_flowgen_add(struct weir_pipeline *p, struct weir_flowgen *g,
		     struct weir_stream **out);
void weir_flowgen_destroy(struct weir_flowgen *g);
/* Packet `index` as the source produces it: a pure function, for models. */
void weir_flowgen_packet(const struct weir_flowgen *g, uint64_t index,
			 struct weir_flow_obs *obs, int64_t *ts_ms);
void weir_flowgen_counters(const struct weir_flowgen *g,
			   struct weir_flow_counters *out);
/* Packets generated so far over all cores; any thread, at any time. */
uint64_t weir_flowgen_progress(const struct weir_flowgen *g);

/* ---- DPDK ethdev source (live) ----
 *
 * Every ethdev port the EAL found (DPDK's own devices and --vdev ones) is
 * configured with one RX queue per worker core (fewer when the device has
 * fewer: core k polls queue k of every port with more than k queues).
 * Each core polls its queues with rte_eth_rx_burst, parses every frame as
 * Ethernet with weir_parse() (malformed and non-IP counted, never fatal)
 * and frees the mbufs at once.  The event timestamp is the arrival time:
 * the wall clock (CLOCK_REALTIME, ms) read once per received burst.
 *
 * Records always go through weir_key_by(): where a port supports RSS with
 * a redirection table, its RETA is programmed to spread the NIC's hash
 * buckets evenly over the queues (parse load balanced), not per key group
 * -- the NIC's Toeplitz hash is not weir's XXH3, see docs/net.md.
 *
 * LIVE: the source is not replayable.  A packet is seen once; nothing
 * applies backpressure to the wire, so what the device could not deliver
 * is dropped by it and counted (weir_dpdk_stats: imissed, rx_nombuf).
 *
 * EAL: initialised once per process (weir_dpdk_eal_init, or implicitly by
 * weir_dpdk_source_open from cfg->eal_args).  The workers are the
 * runtime's pthreads, not EAL lcores: each registers itself with
 * rte_thread_register() when its split opens, so its mbuf allocations go
 * through a per-lcore mempool cache (an unregistered thread would hit the
 * pool's shared ring for every mbuf).
 */

struct weir_dpdk_source;

/* 1 if this build has the DPDK source, else 0 (every call below then
 * returns -ENOTSUP with a message). */
int weir_dpdk_available(void);

/* Initialise the EAL from an argument string split like a POSIX shell
 * would (blanks, '...', "...", backslash), argv[0] "weir".  EAL output is
 * captured: on failure the message is EAL's last log line.  -EALREADY when
 * the EAL is already up (it cannot be initialised twice per process). */
int weir_dpdk_eal_init(const char *eal_args);
/* rte_eal_cleanup() (removes the EAL's runtime files) after every source
 * is closed; the EAL cannot be initialised again in this process. */
void weir_dpdk_eal_cleanup(void);

struct weir_dpdk_source_config {
	const char *eal_args; /* NULL: the EAL must already be initialised */
	unsigned cores;       /* worker cores of the pipeline, >= 1 */
	uint64_t packets;     /* stop after this many frames, all ports; 0 = no */
	uint64_t duration_ms; /* stop after this wall time; 0 = never */
	uint16_t rx_desc;     /* RX descriptors per queue; 0 = 1024 */
};

struct weir_dpdk_stats {
	unsigned ports;       /* ports configured */
	unsigned queues;      /* RX queues over all ports */
	unsigned rss_ports;   /* ports whose RETA was programmed */
	unsigned lcores_registered; /* workers with an lcore id (mempool cache) */
	uint64_t imissed;     /* dropped by the device: no free descriptor */
	uint64_t rx_nombuf;   /* dropped: no mbuf in the pool */
	uint64_t ierrors;     /* erroneous frames the device saw */
};

/* Initialise the EAL if asked, then configure and start every port.
 * -EINVAL (bad arguments, no ports), -ENOMEM (mempool), or the ethdev
 * error, each with one line for weir_last_error(). */
int weir_dpdk_source_open(const struct weir_dpdk_source_config *cfg,
			  struct weir_dpdk_source **out);
/* Add it to a pipeline of cfg->cores cores as a source of
 * struct weir_flow_obs. */
int weir_dpdk_source_add(struct weir_pipeline *p, struct weir_dpdk_source *s,
			 struct weir_stream **out);
/* End the input: every split ends at its next poll, so every window is
 * still emitted.  Any thread, async-signal-safe (one atomic store). */
void weir_dpdk_source_stop(struct weir_dpdk_source *s);
/* Frames received so far over all cores, and the malformed ones among
 * them; any thread, any time (refreshed every burst). */
uint64_t weir_dpdk_source_progress(const struct weir_dpdk_source *s);
uint64_t weir_dpdk_source_malformed(const struct weir_dpdk_source *s);
void weir_dpdk_source_counters(const struct weir_dpdk_source *s,
			       struct weir_flow_counters *out);
/* Device counters (rte_eth_stats_get summed over ports) and the setup. */
void weir_dpdk_source_stats(const struct weir_dpdk_source *s,
			    struct weir_dpdk_stats *out);
/* Stops and closes the ports (the EAL stays up until exit). */
void weir_dpdk_source_close(struct weir_dpdk_source *s);

/* ---- text ---- */

/* Address of a flow key side in standard text: dotted quad when
 * ip_version is 4 (the key stores it IPv4-mapped), else RFC 5952 (lower
 * case, the longest run of >= 2 zero groups compressed, the leftmost on a
 * tie, ::ffff:a.b.c.d for IPv4-mapped).  cap >= 46.  Returns the length. */
int weir_flow_addr_format(const uint8_t addr[16], uint8_t ip_version,
			  char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_FLOWS_H */
