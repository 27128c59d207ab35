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
	/* Changelog checkpoints (docs/architecture.md, "Changelog"): between
	 * page checkpoints, each checkpoint writes only the state bytes the
	 * records changed since the one before (logged by the write path), so
	 * its cost follows the updates, not the state's size.  A page
	 * checkpoint comes again when a core's logs reach log_max files (0 =
	 * 32) or log_max_pct % of its pages' bytes (0 = 100), or when a core's
	 * log outgrew changelog_ring_bytes of memory (per core, a power of two
	 * >= 2 MiB, mapped at start-up; 0 = min(64 MiB, an eighth of the
	 * state cap)), and for the rest of the run once a checkpoint of logs
	 * came out larger than the last page checkpoint (a job that rewrites
	 * its state every tick: pages are then the smaller checkpoint). */
	bool changelog;
	uint32_t log_max, log_max_pct;
	uint64_t changelog_ring_bytes;
	/* Optional bytes that must match for a checkpoint to be restored,
	 * besides the pipeline's shape: the job options that change what
	 * the state means (window size, input, generator seed...). */
	const void *params;
	size_t params_len;
};

#define WEIR_CHECKPOINT_RETAIN_DEFAULT 3u
#define WEIR_CHECKPOINT_INTERVAL_DEFAULT 1000u
#define WEIR_CHECKPOINT_TIMEOUT_DEFAULT 60000u

struct weir_pipeline;

/* Defaults: interval 1 s, timeout 60 s, no pause, retain 3, incremental,
 * a full checkpoint every 8, changelog on. */
void weir_checkpoint_config_init(struct weir_checkpoint_config *cfg,
				 const char *dir);

/*
 * Turn checkpoints on for a pipeline before weir_pipeline_run(): the run
 * first restores from the newest committed checkpoint in cfg->dir that
 * verifies (a corrupt one is reported on stderr with file and offset and
 * the previous one tried), then checkpoints every interval.  Restore
 * errors fail weir_pipeline_run: -ESTALE (another pipeline's checkpoint),
 * -EPROTONOSUPPORT (newer format); the directory is left unchanged.
 */
int weir_pipeline_checkpoint(struct weir_pipeline *p,
			     const struct weir_checkpoint_config *cfg);

struct weir_checkpoint_stats {
	uint64_t completed;	/* committed by this run */
	uint64_t failed;	/* failed or aborted (timeout), logged */
	uint64_t last_id;	/* newest committed, 0 none */
	uint64_t last_duration_us; /* trigger to commit */
	uint64_t last_bytes;	/* page, log and meta bytes it wrote */
	uint64_t changelog;	/* of completed: changelog checkpoints */
	uint64_t restored_id;	/* the checkpoint this run started from */
	uint32_t restored_cores; /* its core count */
	uint64_t pause_max_ns;	/* longest synchronous snapshot part */
	uint64_t pause_p50_ns, pause_p99_ns; /* over the last 1024 pauses */
	uint64_t pauses;	/* core snapshots taken (all cores) */
	/* The writer's start on each core (its files opened, the captured
	 * sections added), the first flush step after records resumed: a
	 * stall of the loop, not part of the pause. Same percentiles. */
	uint64_t open_p50_ns, open_p99_ns, open_max_ns;
	/* Alignment on each core (Flink's "alignment duration"): from the cut
	 * (the trigger or a first barrier seen; its sources stop there) to
	 * the snapshot, i.e. until every input delivered its barrier.  Records
	 * due meanwhile wait.  Same percentiles. */
	uint64_t align_p50_ns, align_p99_ns, align_max_ns;
	/* Each later flush step on a core's loop that did work (a page
	 * checksummed and queued, a write submitted, the end's fsync
	 * queued; steps under 1 us only polled for completions and are not
	 * counted): the records behind it wait that long.  Same percentiles,
	 * over the last 1024 such steps of any core; the max over the run. */
	uint64_t step_p50_ns, step_p99_ns, step_max_ns;
	/* The restore: from opening the checkpoint (the first one tried) to
	 * every core running again (pages loaded, logs replayed, operators
	 * rebuilt, sources rewound); 0 when the run did not restore. */
	uint64_t restore_us;
};

/* Any thread, any time (relaxed counters). */
void weir_pipeline_checkpoint_stats(const struct weir_pipeline *p,
				    struct weir_checkpoint_stats *out);

#endif /* WEIR_CHECKPOINT_H */
