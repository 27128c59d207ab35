/*
 * checkpoint.c — `weir checkpoint list|inspect|verify DIR [ID]`: read-only
 * tools over a checkpoint directory (format: docs/checkpoint-format.md).
 * Exit status: 0 clean, 1 corrupt or unreadable, 2 usage error (a DIR
 * that is not a directory, an ID that is not a committed checkpoint).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "apps/cli.h"
#include "snapshot/ckpt.h"
#include "weir/common.h"

static const char usage[] =
	"usage: weir checkpoint list DIR\n"
	"       weir checkpoint inspect DIR [ID]\n"
	"       weir checkpoint verify DIR [ID]\n"
	"\n"
	"  list     committed checkpoints in DIR, oldest first: id, time,\n"
	"           kind (full, incremental or changelog), bytes written,\n"
	"           duration\n"
	"  inspect  one checkpoint (default the newest): cores, key groups,\n"
	"           bytes and pages per core, incremental parents and\n"
	"           changelog files, source positions (sections src.<node>;\n"
	"           none for live sources, not replayable), duration\n"
	"  verify   check every checksum of one checkpoint (default the\n"
	"           newest); exit 0 clean, 1 corrupt or no committed\n"
	"           checkpoint at all (file and offset on stderr), 2 usage\n"
	"           error (DIR not a directory, ID not a committed checkpoint)\n"
	"Nothing in DIR is modified.\n";

/* What the checkpoint itself wrote on a core: its log (a changelog
 * checkpoint's newest file) or its page file, and its meta file. */
static uint64_t core_bytes(const struct wr_ckpt_core_info *ci)
{
	return (ci->nlog ? ci->log[0].size : ci->chain[0].size) +
	       ci->meta.size;
}

static const char *kind_of(const struct wr_ckpt_manifest *m)
{
	for (uint32_t c = 0; c < m->cores; c++)
		if (m->core[c].nlog > 0)
			return "changelog";
	return m->parent_id ? "incremental" : "full";
}

static void put_time(uint64_t unix_ms, char *buf, size_t n)
{
	time_t t = (time_t)(unix_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int do_list(const char *dir)
{
	uint64_t ids[1024];
	uint32_t n;

	if (wr_ckpt_list(dir, ids, 1024, &n) != 0) {
		fprintf(stderr, "weir: %s\n", weir_last_error());
		return 1;
	}
	printf("%-8s %-20s %-12s %12s %10s\n", "id", "time (UTC)", "kind",
	       "bytes", "duration");
	for (uint32_t i = 0; i < n && i < 1024; i++) {
		struct wr_ckpt_manifest m;
		char when[32];
		uint64_t bytes = 0;
		if (wr_ckpt_manifest_read(dir, ids[i], &m) != 0) {
			printf("%-8llu (manifest unreadable: %s)\n",
			       (unsigned long long)ids[i], weir_last_error());
			continue;
		}
		for (uint32_t c = 0; c < m.cores; c++)
			bytes += core_bytes(&m.core[c]);
		put_time(m.time_unix_ms, when, sizeof(when));
		printf("%-8llu %-20s %-12s %12llu %8.1fms\n",
		       (unsigned long long)m.id, when, kind_of(&m),
		       (unsigned long long)bytes, m.duration_us / 1000.0);
		wr_ckpt_manifest_free(&m);
	}
	return 0;
}

/* The engine's per-source replay positions ("src.<node id>" sections,
 * core/ckpt_meta.c): opaque bytes the source's position() wrote, shown as
 * their size and first bytes. */
static void inspect_sources(struct wr_ckpt *ck, uint32_t c)
{
	unsigned found = 0;

	for (uint32_t id = 0; id < 256; id++) {
		const uint8_t *pos;
		size_t len;
		char name[16];
		snprintf(name, sizeof(name), "src.%u", id);
		if (wr_ckpt_section(ck, c, name, (const void **)&pos, &len) != 0)
			continue;
		found++;
		printf("  source position %s: %zu bytes:", name, len);
		for (size_t i = 0; i < len && i < 24; i++)
			printf(" %02x", pos[i]);
		printf("%s\n", len > 24 ? " ..." : "");
	}
	if (found == 0) /* e.g. --dpdk, --pcap -: a restore does not replay */
		printf("  no source position: live sources, not replayable\n");
}

static void inspect_core(struct wr_ckpt *ck, uint32_t c)
{
	const struct wr_ckpt_core_info *ci = &wr_ckpt_info(ck)->core[c];
	const void *pos;
	size_t len;

	if (ci->nlog)
		printf("core %u: %u pages of the page checkpoint under %u "
		       "changelog files, %llu bytes written here (log %llu "
		       "+ meta %llu), epoch %u\n", c, ci->view_pages,
		       ci->nlog, (unsigned long long)core_bytes(ci),
		       (unsigned long long)ci->log[0].size,
		       (unsigned long long)ci->meta.size, ci->snap_epoch);
	else
		printf("core %u: %u pages in the snapshot, %u written here, "
		       "%llu bytes (pages %llu + meta %llu), epoch %u\n", c,
		       ci->view_pages, ci->pages_written,
		       (unsigned long long)core_bytes(ci),
		       (unsigned long long)ci->chain[0].size,
		       (unsigned long long)ci->meta.size, ci->snap_epoch);
	for (uint32_t k = 0; k < ci->nlog; k++)
		printf("  changelog %s (%llu bytes)%s\n", ci->log[k].name,
		       (unsigned long long)ci->log[k].size,
		       k == 0 ? ", this checkpoint's" : "");
	for (uint32_t k = ci->nlog ? 0 : 1; k < ci->nchain; k++)
		printf("  %s file %s (%llu bytes)\n", ci->nlog ? "page" :
		       "parent", ci->chain[k].name,
		       (unsigned long long)ci->chain[k].size);
	if (wr_ckpt_section(ck, c, "source_pos", &pos, &len) == 0)
		printf("  source positions: %.*s\n", (int)len,
		       (const char *)pos);
	inspect_sources(ck, c);
}

static void report_stderr(void *arg, const char *file, uint64_t off,
			  const char *what)
{
	fprintf(stderr, "weir: %s/%s: offset %llu: %s\n", (const char *)arg,
		file, (unsigned long long)off, what);
}

static int do_inspect(const char *dir, uint64_t id)
{
	struct wr_ckpt *ck;
	char when[32];

	if (wr_ckpt_open(dir, id, 0, report_stderr, (void *)dir, &ck) != 0) {
		fprintf(stderr, "weir: %s\n", weir_last_error());
		return 1;
	}
	const struct wr_ckpt_manifest *m = wr_ckpt_info(ck);
	put_time(m->time_unix_ms, when, sizeof(when));
	printf("checkpoint %llu (%s, parent %llu), format version %u\n",
	       (unsigned long long)m->id, kind_of(m),
	       (unsigned long long)m->parent_id, m->version);
	printf("time %s, duration %.3f ms\n", when, m->duration_us / 1000.0);
	printf("cores %u, key groups %u, page size %u\n", m->cores,
	       m->key_groups, m->page_size);
	printf("fingerprint %016llx (%s)\n",
	       (unsigned long long)m->fingerprint, m->job);
	for (uint32_t c = 0; c < m->cores; c++)
		inspect_core(ck, c);
	wr_ckpt_close(ck);
	return 0;
}

static int do_verify(const char *dir, uint64_t id)
{
	int err = wr_ckpt_verify(dir, id, report_stderr, (void *)dir);

	if (err == 0) {
		printf("ok\n");
		return 0;
	}
	if (err != -EBADMSG)
		fprintf(stderr, "weir: %s\n", weir_last_error());
	else
		fprintf(stderr, "weir: checkpoint in %s is corrupt\n", dir);
	return 1;
}

/* DIR is a directory and ID (0: the newest) one of its committed
 * checkpoints; else one line on stderr (a mistyped argument is a usage
 * error, exit 2, not a corrupt checkpoint, exit 1). */
static bool args_exist(const char *sub, const char *dir, uint64_t id)
{
	static uint64_t ids[1024];
	struct stat st;
	uint32_t n;

	if (stat(dir, &st) != 0) {
		cli_usage_error("checkpoint %s: %s: %s", sub, dir,
				strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_usage_error("checkpoint %s: %s: not a directory", sub, dir);
		return false;
	}
	if (id == 0 || wr_ckpt_list(dir, ids, 1024, &n) != 0)
		return true;	/* list failures are reported by the command */
	for (uint32_t i = 0; i < n && i < 1024; i++)
		if (ids[i] == id)
			return true;
	if (n > 1024)
		return true;	/* not all listed: let the command look */
	cli_usage_error("checkpoint %s: %s holds no committed checkpoint %llu",
			sub, dir, (unsigned long long)id);
	return false;
}

int cmd_checkpoint(int argc, char **argv)
{
	uint64_t id = 0;
	const char *sub = argc > 1 ? argv[1] : "";

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		}
	if (strcmp(sub, "list") != 0 && strcmp(sub, "inspect") != 0 &&
	    strcmp(sub, "verify") != 0) {
		fputs(usage, stderr);
		return cli_usage_error("checkpoint: unknown subcommand '%s'",
				       sub);
	}
	if (argc < 3 || argc > 4 || (argc == 4 && strcmp(sub, "list") == 0))
		return cli_usage_error("checkpoint %s: needs DIR%s", sub,
				       strcmp(sub, "list") ? " [ID]" : "");
	if (argc == 4 && !cli_parse_u64("ID", argv[3], 1, UINT64_MAX, &id))
		return EXIT_USAGE;
	if (!args_exist(sub, argv[2], id))
		return EXIT_USAGE;
	if (strcmp(sub, "list") == 0)
		return do_list(argv[2]);
	if (strcmp(sub, "inspect") == 0)
		return do_inspect(argv[2], id);
	return do_verify(argv[2], id);
}
