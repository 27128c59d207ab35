/*
 * snapshot/ckpt_internal.h — an opened checkpoint, shared only by
 * restore.c (open, verify, sections, page iteration) and load.c (the
 * single-pass load of one core's pages into its arena).
 *
 * INVARIANTS
 *   1. After open, res[core] maps every page of the core's snapshot view,
 *      in page id order, to (chain file, offset, checksum); the headers,
 *      tails, trailers and file checksums behind it were verified.
 *   2. pages_verified: open also read every page and checked its XXH3.
 *      Otherwise (wr_ckpt_open_deferred) the page bytes are checked only
 *      as the load or the iterator reads them; a mismatch there sets
 *      pages_bad and is reported with file and offset through report.
 *   3. Loads of different cores may run at once on different threads:
 *      they share only read-only fields, fds[core][*] and pages_bad.
 */
#ifndef WR_SNAPSHOT_CKPT_INTERNAL_H
#define WR_SNAPSHOT_CKPT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot/ckpt.h"

/* Pages per read of the iterator and of verify: 1 MiB reads instead of
 * 64 KiB ones (restore read 5x slower than dd with one pread per page). */
#define WR_CKPT_CHUNK_PAGES 16u

/* Where each page of one core's snapshot view lives. */
struct wr_ckpt_resolved {
	uint32_t n;
	uint32_t *page_id;
	uint8_t *file;		/* index into the core's chain */
	uint64_t *off;
	uint64_t *checksum;
};

struct wr_ckpt {
	int dirfd;
	struct wr_ckpt_manifest m;
	struct wr_ckpt_resolved *res;	/* per core */
	uint8_t **meta;			/* per core: the meta file */
	uint8_t *page;			/* WR_CKPT_CHUNK_PAGES pages */
	int *fds;			/* [core][chain file], lazily opened */
	bool pages_verified;		/* invariant 2 */
	atomic_bool pages_bad;		/* a page failed after open */
	wr_ckpt_report_fn report;
	void *arg;
};

int wr_ckpt_pread_full(int fd, void *buf, size_t len, uint64_t off);
/* A page of the open checkpoint failed (checksum or read error): reports
 * file and offset and the checkpoint, sets pages_bad; -EBADMSG with the
 * same text as the last error. */
int wr_ckpt_page_failed(struct wr_ckpt *c, const char *file, uint64_t off,
			const char *what);

#endif /* WR_SNAPSHOT_CKPT_INTERNAL_H */
