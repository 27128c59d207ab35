/*
 * net/pcap_source_internal.h — the capture-file source's per-core calls
 * without a runtime, shared with the tests only.
 *
 * The source's weir_source_ops are thin wrappers over these (core =
 * weir_ctx_core()).  tests/net/pcap_source_test.c drives any number of
 * simulated cores from one thread with them: core 0's calls also build the
 * index, so any interleaving of the cores' calls is a schedule the engine
 * could produce; positions are taken at chosen moments and restored onto
 * another core count.
 *
 * INVARIANTS (for the callers)
 *   1. open(core, ncores) for every core in [0, ncores) before any next();
 *      restore() (optional) right after that core's open().
 *   2. On a real runtime each core's calls come from its own thread; the
 *      start gate orders every open/restore before every next().
 */
#ifndef WR_NET_PCAP_SOURCE_INTERNAL_H
#define WR_NET_PCAP_SOURCE_INTERNAL_H

#include "weir/flows.h"

/* Frames per chunk and chunk starts the index ring holds (docs/net.md). */
#define WR_PSRC_CHUNK_FRAMES 4096u
#define WR_PSRC_RING 1024u

/* The logical splits (bit s: split s) core `core` of n reads: every split
 * on exactly one core, core 0 a little fewer (it also indexes). */
uint64_t wr_psrc_owned_splits(unsigned core, unsigned n);
int wr_psrc_open(struct weir_pcap_source *s, unsigned core, unsigned ncores);
/* Up to max records (max >= 1); 0 when nothing is ready (waiting for the
 * index or for pacing), WEIR_SOURCE_END, or -errno. */
int wr_psrc_next(struct weir_pcap_source *s, unsigned core,
		 struct weir_flow_obs *recs, int64_t *ts, unsigned max);
int wr_psrc_position(struct weir_pcap_source *s, unsigned core, void *pos,
		     size_t cap);
int wr_psrc_restore(struct weir_pcap_source *s, unsigned core,
		    const struct weir_source_pos *pos, unsigned nold);

/* Tests: smaller chunks and ring, so small captures have many chunks and
 * wrap the ring.  Before any open(); chunk_frames >= 1, ring_entries in
 * [2, WR_PSRC_RING].  A position records its chunk size and is refused by
 * a source of another. */
int wr_psrc_geometry(struct weir_pcap_source *s, uint32_t chunk_frames,
		     uint32_t ring_entries);

#endif
