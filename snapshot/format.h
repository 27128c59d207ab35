/*
 * snapshot/format.h — on-disk structures of checkpoint files, shared only
 * inside snapshot/ (the contract is docs/checkpoint-format.md).
 *
 * INVARIANTS
 *   1. All integers little-endian (x86-64 and aarch64 hosts; a big-endian
 *      host would need byte swaps here and nowhere else).
 *   2. Every file is a multiple of WR_CKPT_BLOCK bytes and every write is
 *      block-aligned in offset, length and memory, so O_DIRECT works.
 *   3. The header sits in block 0, the tail in the last 64 bytes.
 */
#ifndef WR_SNAPSHOT_FORMAT_H
#define WR_SNAPSHOT_FORMAT_H

#include <stdint.h>
#include <stdio.h>

#define WR_CKPT_BLOCK 4096u
#define WR_CKPT_MAGIC_PAGES "WEIRPAGE"
#define WR_CKPT_MAGIC_META "WEIRMETA"
#define WR_CKPT_MAGIC_LOG "WEIRLOGS"
#define WR_CKPT_MAGIC_TAIL "WEIRTAIL"
#define WR_CKPT_MANIFEST_HEAD "weir-checkpoint-manifest"

struct wr_ckpt_file_header {		/* at offset 0, 96 bytes used */
	char magic[8];
	uint32_t version;
	uint32_t header_size;		/* WR_CKPT_BLOCK */
	uint64_t fingerprint;
	uint64_t ckpt_id;
	uint64_t parent_id;
	uint32_t core;
	uint32_t page_size;
	uint32_t count;			/* pages, or sections in a meta file */
	uint32_t view_count;		/* pages in the snapshot (page file) */
	uint32_t snap_epoch;
	uint32_t parent_epoch;
	uint64_t body_off;		/* first page / section */
	uint64_t trailer_off;		/* descriptors (page file) */
	uint64_t reserved;
	uint64_t header_checksum;	/* XXH3-64 of the bytes before it */
};

struct wr_ckpt_page_desc {		/* in the trailer, one per page */
	uint32_t page_id;
	uint32_t reserved;
	uint64_t checksum;		/* XXH3-64 of the page */
};

struct wr_ckpt_log_chunk {		/* in a log file's trailer */
	uint32_t len;			/* bytes, a multiple of 4096 */
	uint32_t reserved;
	uint64_t checksum;		/* XXH3-64 of the chunk */
};

struct wr_ckpt_section_head {		/* before each section's bytes */
	char name[32];
	uint64_t len;
	uint64_t checksum;		/* XXH3-64 of the bytes */
};

struct wr_ckpt_file_tail {		/* the file's last 64 bytes */
	char magic[8];
	uint64_t trailer_off;
	uint64_t file_size;
	uint32_t count;
	uint32_t view_count;
	uint64_t file_checksum;
	uint64_t reserved[3];
};

_Static_assert(sizeof(struct wr_ckpt_file_header) == 96, "header layout");
_Static_assert(sizeof(struct wr_ckpt_page_desc) == 16, "desc layout");
_Static_assert(sizeof(struct wr_ckpt_section_head) == 48, "section layout");
_Static_assert(sizeof(struct wr_ckpt_log_chunk) == 16, "log chunk layout");
_Static_assert(sizeof(struct wr_ckpt_file_tail) == 64, "tail layout");

static inline uint64_t wr_ckpt_round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

/* File names: ckpt-<id 20 digits>-c<core>.pages|.meta, MANIFEST-<id>. */
static inline void wr_ckpt_file_name(char *buf, size_t n, uint64_t id,
				     uint32_t core, const char *ext)
{
	snprintf(buf, n, "ckpt-%020llu-c%u.%s", (unsigned long long)id, core,
		 ext);
}

static inline void wr_ckpt_manifest_name(char *buf, size_t n, uint64_t id,
					 const char *suffix)
{
	snprintf(buf, n, "MANIFEST-%020llu%s", (unsigned long long)id, suffix);
}

/* manifest.c, for restore.c: MANIFEST-<id> under an open directory;
 * *bad_off is where parsing failed. */
struct wr_ckpt_manifest;
/* -EPROTONOSUPPORT with a message: checkpoint id's manifest has `version`,
 * outside WR_CKPT_FORMAT_VERSION_MIN..WR_CKPT_FORMAT_VERSION. */
int wr_ckpt_version_error(uint64_t id, uint32_t version);
int wr_ckpt_manifest_read_at(int dirfd, uint64_t id,
			     struct wr_ckpt_manifest *m, uint64_t *bad_off);

#endif /* WR_SNAPSHOT_FORMAT_H */
