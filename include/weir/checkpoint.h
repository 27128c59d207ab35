/*
 * weir/checkpoint.h — checkpoint configuration of a job (public part).
 *
 * PURPOSE
 *   A job with checkpointing on snapshots every core's keyed state, timers,
 *   source positions and sink lengths at aligned barriers (copy-on-write, so
 *   the data path pauses only for an epoch bump), flushes it to DIR through
 *   each core's io_uring, and commits a manifest.  On start it restores from
 *   the newest committed checkpoint that verifies.  File format:
 *   docs/checkpoint-format.md; tools: `weir checkpoint list|inspect|verify`.
 *
 * CAVEATS
 *   - Exactly-once output needs replayable sources; a live source is not
 *     rewound on restore.
 *   - A checkpoint written by a different pipeline (its fingerprint differs)
 *     or by a newer format version is refused, and nothing in DIR changes.
 */
#ifndef WEIR_CHECKPOINT_H
#define WEIR_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

struct weir_checkpoint_config {
	const char *dir;	/* created 0700 if missing; NULL = off */
	uint32_t interval_ms;	/* between checkpoint starts */
	uint32_t timeout_ms;	/* an overdue checkpoint is aborted */
	uint32_t min_pause_ms;	/* from one's end to the next's start */
	uint32_t retain;	/* committed checkpoints kept; 0 = 3 */
	bool incremental;	/* write only pages changed since the last */
	uint32_t full_every;	/* a full checkpoint every K; 0 = 8 */
	uint32_t chain_max;	/* incremental files per chain; 0 = 8 */
};

#define WEIR_CHECKPOINT_RETAIN_DEFAULT 3u

#endif /* WEIR_CHECKPOINT_H */
