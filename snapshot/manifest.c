/*
 * manifest.c — manifests (text, checksummed), listing, planning the next
 * checkpoint, the atomic commit and retention (snapshot/ckpt.h).
 *
 * The commit is blocking (two fsyncs, a rename, and retention's unlinks:
 * 250-290 ms for a 1 GiB page file on ext4 here) and runs on the
 * committer thread (committer.c), never in a worker's loop; the page
 * data, which is where the bytes are, goes through the writers' io_urings.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"
#include "snapshot/ckpt.h"
#include "snapshot/format.h"

#define MANIFEST_BYTES_MAX (8u << 20)

int wr_ckpt_test_crash_after;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* id of "MANIFEST-<digits>" exactly, else 0. */
static uint64_t manifest_id(const char *name)
{
	char *end;

	if (strncmp(name, "MANIFEST-", 9) != 0 || name[9] < '0' ||
	    name[9] > '9')
		return 0;
	unsigned long long id = strtoull(name + 9, &end, 10);
	return *end == '\0' ? id : 0;
}

/* ids[0, max) full: id replaces the oldest of them if it is newer. */
static void keep_newest(uint64_t *ids, uint32_t max, uint64_t id)
{
	uint32_t old = 0;

	for (uint32_t i = 1; i < max; i++)
		if (ids[i] < ids[old])
			old = i;
	if (max > 0 && id > ids[old])
		ids[old] = id;
}

int wr_ckpt_list(const char *dir, uint64_t *ids, uint32_t max, uint32_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint32_t got = 0;

	if (d == NULL)
		return wr_error(-errno, "checkpoint: cannot open %s: %s", dir,
				strerror(errno));
	/* Past max, the newest are kept, not the first readdir() gives: the
	 * plan takes the last as the newest (it took none and planned id 1,
	 * truncating a committed checkpoint's files). */
	while ((e = readdir(d)) != NULL) {
		uint64_t id = manifest_id(e->d_name);
		if (id == 0)
			continue;
		if (got < max)
			ids[got] = id;
		else
			keep_newest(ids, max, id);
		got++;
	}
	closedir(d);
	qsort(ids, got < max ? got : max, sizeof(*ids), cmp_u64);
	*n = got;
	return 0;
}

/* ---- text form ---- */

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len)
			break;
		size_t cap = b->cap * 2 + (size_t)n + 256;
		char *g = realloc(b->p, cap);
		if (g == NULL || n < 0) {
			b->oom = true;
			return;
		}
		b->p = g;
		b->cap = cap;
	}
	b->len += (size_t)n;
}

static void put_ref(struct buf *b, const char *kind,
		    const struct wr_ckpt_file_ref *r)
{
	put(b, "%s %s %" PRIu64 " %016" PRIx64 "\n", kind, r->name, r->size,
	    r->checksum);
}

static int manifest_format(const struct wr_ckpt_manifest *m, struct buf *b)
{
	put(b, "%s %u\n", WR_CKPT_MANIFEST_HEAD, m->version);
	put(b, "id %" PRIu64 "\nparent %" PRIu64 "\n", m->id, m->parent_id);
	put(b, "time_unix_ms %" PRIu64 "\nduration_us %" PRIu64 "\n",
	    m->time_unix_ms, m->duration_us);
	put(b, "cores %u\nkey_groups %u\npage_size %u\n", m->cores,
	    m->key_groups, m->page_size);
	put(b, "fingerprint %016" PRIx64 "\njob %s\n", m->fingerprint,
	    m->job);
	for (uint32_t c = 0; c < m->cores; c++) {
		const struct wr_ckpt_core_info *ci = &m->core[c];
		put(b, "core %u epoch %u view %u written %u chain %u logs %u\n",
		    c, ci->snap_epoch, ci->view_pages, ci->pages_written,
		    ci->nchain, ci->nlog);
		for (uint32_t i = 0; i < ci->nlog; i++)
			put_ref(b, "log", &ci->log[i]);
		for (uint32_t i = 0; i < ci->nchain; i++)
			put_ref(b, "pages", &ci->chain[i]);
		put_ref(b, "meta", &ci->meta);
	}
	if (b->oom)
		return wr_error(-ENOMEM, "checkpoint: no memory for manifest");
	put(b, "checksum %016" PRIx64 "\n", XXH3_64bits(b->p, b->len));
	return b->oom ? -ENOMEM : 0;
}

static int parse_ref(const char *line, const char *kind,
		     struct wr_ckpt_file_ref *r)
{
	char k[16], name[WR_CKPT_NAME_MAX];

	if (sscanf(line, "%15s %63s %" SCNu64 " %" SCNx64, k, name, &r->size,
		   &r->checksum) != 4 || strcmp(k, kind) != 0 ||
	    strchr(name, '/') != NULL)
		return -EBADMSG;
	memcpy(r->name, name, sizeof(name));
	return 0;
}

/* The header lines, in order; 0 or -EBADMSG. */
static int parse_head(char **lines, struct wr_ckpt_manifest *m)
{
	if (sscanf(lines[1], "id %" SCNu64, &m->id) != 1 ||
	    sscanf(lines[2], "parent %" SCNu64, &m->parent_id) != 1 ||
	    sscanf(lines[3], "time_unix_ms %" SCNu64, &m->time_unix_ms) != 1 ||
	    sscanf(lines[4], "duration_us %" SCNu64, &m->duration_us) != 1 ||
	    sscanf(lines[5], "cores %u", &m->cores) != 1 ||
	    sscanf(lines[6], "key_groups %u", &m->key_groups) != 1 ||
	    sscanf(lines[7], "page_size %u", &m->page_size) != 1 ||
	    sscanf(lines[8], "fingerprint %" SCNx64, &m->fingerprint) != 1 ||
	    strncmp(lines[9], "job ", 4) != 0)
		return -EBADMSG;
	snprintf(m->job, sizeof(m->job), "%s", lines[9] + 4);
	if (m->cores == 0 || m->cores > WR_CKPT_CORES_MAX ||
	    m->page_size < WR_CKPT_BLOCK || m->page_size > (1u << 30) ||
	    (m->page_size & (m->page_size - 1)) != 0)
		return -EBADMSG;
	m->core = calloc(m->cores, sizeof(*m->core));
	return m->core ? 0 : -ENOMEM;
}

/* Core sections from line i on; returns the line after them or -EBADMSG. */
static int parse_cores(char **lines, int nlines, int i,
		       struct wr_ckpt_manifest *m)
{
	for (uint32_t c = 0; c < m->cores; c++) {
		struct wr_ckpt_core_info *ci = &m->core[c];
		uint32_t cc;
		/* Version 2 has no "logs N" (and no log files). */
		if (i >= nlines || sscanf(lines[i++], "core %u epoch %u view %u "
		    "written %u chain %u logs %u", &cc, &ci->snap_epoch,
		    &ci->view_pages, &ci->pages_written, &ci->nchain,
		    &ci->nlog) != (m->version >= 3 ? 6 : 5) ||
		    cc != c || ci->nchain == 0 ||
		    ci->nchain > WR_CKPT_CHAIN_MAX ||
		    ci->nlog > WR_CKPT_CHAIN_MAX ||
		    i + (int)(ci->nlog + ci->nchain) + 1 > nlines)
			return -EBADMSG;
		for (uint32_t k = 0; k < ci->nlog; k++)
			if (parse_ref(lines[i++], "log", &ci->log[k]))
				return -EBADMSG;
		for (uint32_t k = 0; k < ci->nchain; k++)
			if (parse_ref(lines[i++], "pages", &ci->chain[k]))
				return -EBADMSG;
		if (parse_ref(lines[i++], "meta", &ci->meta))
			return -EBADMSG;
	}
	return i;
}

/* Splits text (NUL-terminated, modified) into at most max lines. */
static int split_lines(char *text, char **lines, int max)
{
	int n = 0;

	for (char *p = text; *p && n < max; n++) {
		lines[n] = p;
		char *nl = strchr(p, '\n');
		if (nl == NULL)
			return -EBADMSG; /* a manifest ends with a newline */
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

int wr_ckpt_manifest_parse(char *text, size_t len, struct wr_ckpt_manifest *m,
			   uint64_t *bad_off)
{
	char *sum = NULL, **lines = NULL, want[32];
	int n, err = -EBADMSG;

	*bad_off = 0;
	memset(m, 0, sizeof(*m));
	if (sscanf(text, WR_CKPT_MANIFEST_HEAD " %u", &m->version) != 1)
		return -EBADMSG;
	if (m->version > WR_CKPT_FORMAT_VERSION ||
	    m->version < WR_CKPT_FORMAT_VERSION_MIN)
		return -EPROTONOSUPPORT;
	for (char *p = text; (p = strstr(p, "\nchecksum ")) != NULL; p++)
		sum = p + 1;
	*bad_off = sum ? (uint64_t)(sum - text) : len;
	if (sum == NULL)
		return -EBADMSG;
	/* The last line byte for byte as written, to the end of the file:
	 * parsed as a number, an upper-case hex digit or a damaged final
	 * newline (one flipped bit each) still matched, and verify said ok. */
	snprintf(want, sizeof(want), "checksum %016" PRIx64 "\n",
		 XXH3_64bits(text, (size_t)(sum - text)));
	if (strcmp(sum, want) != 0)
		return -EBADMSG;
	*sum = '\0';
	lines = calloc(len / 2 + 16, sizeof(*lines));
	if (lines == NULL)
		return -ENOMEM;
	n = split_lines(text, lines, (int)(len / 2 + 16));
	*bad_off = 0;
	if (n >= 10 && (err = parse_head(lines, m)) == 0) {
		int end = parse_cores(lines, n, 10, m);
		err = end < 0 ? end : (end == n ? 0 : -EBADMSG);
	}
	free(lines);
	if (err)
		wr_ckpt_manifest_free(m);
	return err;
}

void wr_ckpt_manifest_free(struct wr_ckpt_manifest *m)
{
	if (m == NULL)
		return;
	free(m->core);
	m->core = NULL;
}

static int read_whole(int dirfd, const char *name, char **out, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	ssize_t got = 0;
	char *p;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || st.st_size > MANIFEST_BYTES_MAX) {
		close(fd);
		return -EFBIG;
	}
	p = malloc((size_t)st.st_size + 1);
	if (p != NULL)
		got = pread(fd, p, (size_t)st.st_size, 0);
	close(fd);
	if (p == NULL || got != st.st_size) {
		free(p);
		return p == NULL ? -ENOMEM : -EIO;
	}
	p[got] = '\0';
	*out = p;
	*len = (size_t)got;
	return 0;
}

/* Reads and parses MANIFEST-<id>; *bad_off as manifest_parse. */
int wr_ckpt_version_error(uint64_t id, uint32_t version)
{
	if (version > WR_CKPT_FORMAT_VERSION)
		return wr_error(-EPROTONOSUPPORT, "checkpoint %llu has a newer "
				"format version (%u) than %u: refused",
				(unsigned long long)id, version,
				WR_CKPT_FORMAT_VERSION);
	return wr_error(-EPROTONOSUPPORT, "checkpoint %llu has format version "
			"%u, older than %u, whose operator state this weir "
			"cannot read: refused", (unsigned long long)id, version,
			WR_CKPT_FORMAT_VERSION_MIN);
}

int wr_ckpt_manifest_read_at(int dirfd, uint64_t id,
			     struct wr_ckpt_manifest *m, uint64_t *bad_off)
{
	char name[64], *text = NULL;
	size_t len = 0;
	int err;

	*bad_off = 0;
	wr_ckpt_manifest_name(name, sizeof(name), id, "");
	err = read_whole(dirfd, name, &text, &len);
	if (err)
		return err;
	err = wr_ckpt_manifest_parse(text, len, m, bad_off);
	free(text);
	if (err == 0 && m->id != id)
		err = -EBADMSG;
	if (err == -EBADMSG)
		wr_ckpt_manifest_free(m);
	return err;
}

int wr_ckpt_manifest_read(const char *dir, uint64_t id,
			  struct wr_ckpt_manifest *m)
{
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint64_t off;
	int err;

	if (dirfd < 0)
		return wr_error(-errno, "checkpoint: cannot open %s: %s", dir,
				strerror(errno));
	err = wr_ckpt_manifest_read_at(dirfd, id, m, &off);
	close(dirfd);
	if (err == -EPROTONOSUPPORT)
		return wr_ckpt_version_error(id, m->version);
	if (err)
		return wr_error(err, "checkpoint: manifest %llu in %s: %s at "
				"offset %llu", (unsigned long long)id, dir,
				err == -EBADMSG ? "corrupt" : strerror(-err),
				(unsigned long long)off);
	return 0;
}

/* ---- plan ---- */

static uint64_t newest_id(const char *dir)
{
	uint64_t ids[1024];
	uint32_t n;

	if (wr_ckpt_list(dir, ids, 1024, &n) != 0 || n == 0)
		return 0;
	return ids[(n < 1024 ? n : 1024) - 1];
}

/* May the next checkpoint add a log file to every core's chain of m? */
static bool logs_fit(const struct wr_ckpt_manifest *m,
		     const struct wr_ckpt_policy *pol)
{
	uint32_t max = pol->log_max ? pol->log_max : 32;
	uint64_t pct = pol->log_max_pct ? pol->log_max_pct : 100;
	uint64_t logs = 0, pages = 0;

	if (max > WR_CKPT_CHAIN_MAX)
		max = WR_CKPT_CHAIN_MAX;
	if (pol->last_log_bytes > 0 && pol->last_page_bytes > 0 &&
	    pol->last_log_bytes > pol->last_page_bytes)
		return false;	/* pages are the smaller checkpoint here */
	for (uint32_t c = 0; c < m->cores; c++) {
		const struct wr_ckpt_core_info *ci = &m->core[c];
		if (ci->nlog + 1 > max)
			return false;
		for (uint32_t k = 0; k < ci->nlog; k++)
			logs += ci->log[k].size;
		for (uint32_t k = 0; k < ci->nchain; k++)
			pages += ci->chain[k].size;
	}
	return logs * 100 <= pages * pct;
}

int wr_ckpt_plan_next(const char *dir, const struct wr_ckpt_policy *pol,
		      uint32_t cores, struct wr_ckpt_plan *out)
{
	struct wr_ckpt_manifest m;
	uint32_t bound = pol->full_every ? pol->full_every : 8;
	uint32_t chain = pol->chain_max ? pol->chain_max : 8;

	memset(out, 0, sizeof(*out));
	if (cores == 0 || cores > WR_CKPT_CORES_MAX)
		return wr_error(-EINVAL, "checkpoint: %u cores", cores);
	uint64_t last = newest_id(dir);
	out->ckpt_id = last + 1;
	if (chain < bound)
		bound = chain;
	if (bound > WR_CKPT_CHAIN_MAX)
		bound = WR_CKPT_CHAIN_MAX;
	if ((!pol->incremental && !pol->changelog) || last == 0 ||
	    (pol->force_full && !pol->changelog))
		return 0;
	if (wr_ckpt_manifest_read(dir, last, &m) != 0)
		return 0; /* unreadable: a full checkpoint needs nothing */
	/* force_full forbids page-incremental only (epochs restarted); a log
	 * continues the parent, or its core writes full pages. */
	if (m.cores == cores && pol->changelog && logs_fit(&m, pol))
		out->log = true;
	if (m.cores == cores && (out->log || (pol->incremental &&
					      !pol->force_full &&
					      m.core[0].nchain < bound))) {
		out->parent_id = last;
		for (uint32_t c = 0; c < cores; c++)
			out->parent_epoch[c] = m.core[c].snap_epoch;
	}
	wr_ckpt_manifest_free(&m);
	return 0;
}

/* ---- commit ---- */

/* One core's files: a changelog result adds its log over the parent's
 * files; a page result starts a chain (full: parent_id 0, which a core
 * may choose when its log cannot continue) or adds to the parent's page
 * chain, dropping its logs (the new pages hold what they changed). */
static int core_info_of(const struct wr_ckpt_commit_info *info,
			const struct wr_ckpt_core_result *r,
			const struct wr_ckpt_core_info *par,
			struct wr_ckpt_core_info *ci)
{
	struct wr_ckpt_file_ref own = { .size = r->pages_size,
					.checksum = r->pages_checksum };

	snprintf(own.name, WR_CKPT_NAME_MAX, "%s", r->pages_file);
	if (r->parent_id != 0 && (r->parent_id != info->parent_id || !par))
		return -EINVAL;
	if (r->is_log) {
		if (par == NULL || par->nlog + 1 > WR_CKPT_CHAIN_MAX)
			return -EINVAL;
		*ci = *par;
		memmove(&ci->log[1], &par->log[0], par->nlog * sizeof(own));
		ci->log[0] = own;
		ci->nlog = par->nlog + 1;
		return 0;
	}
	uint32_t pn = r->parent_id ? par->nchain : 0;
	if (pn + 1 > WR_CKPT_CHAIN_MAX)
		return -EINVAL;
	*ci = (struct wr_ckpt_core_info){ r->snap_epoch, r->view_pages,
					  r->pages_written, pn + 1 };
	ci->chain[0] = own;
	for (uint32_t k = 0; k < pn; k++)
		ci->chain[k + 1] = par->chain[k];
	return 0;
}

/* The manifest of the checkpoint being committed: own files first, then
 * the parent's chain. */
static int build_manifest(const struct wr_ckpt_commit_info *info,
			  const struct wr_ckpt_core_result *res,
			  struct wr_ckpt_manifest *m)
{
	struct wr_ckpt_manifest par = { 0 };
	int err = 0;

	if (info->parent_id &&
	    (err = wr_ckpt_manifest_read(info->dir, info->parent_id, &par)))
		return err;
	if (info->parent_id && par.cores != info->cores)
		err = wr_error(-EINVAL, "checkpoint %llu: parent has %u cores, "
			       "not %u", (unsigned long long)info->ckpt_id,
			       par.cores, info->cores);
	*m = (struct wr_ckpt_manifest){ WR_CKPT_FORMAT_VERSION, info->ckpt_id,
		info->parent_id, info->time_unix_ms, info->duration_us,
		info->cores, info->key_groups, res[0].page_size,
		info->fingerprint, "", calloc(info->cores, sizeof(*m->core)) };
	snprintf(m->job, sizeof(m->job), "%s", info->job ? info->job : "");
	for (char *p = m->job; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (m->core == NULL && err == 0)
		err = wr_error(-ENOMEM, "checkpoint: no memory for manifest");
	for (uint32_t c = 0; c < info->cores && err == 0; c++) {
		const struct wr_ckpt_core_result *r = &res[c];
		err = core_info_of(info, r, info->parent_id ? &par.core[c] :
				   NULL, &m->core[c]);
		if (err == 0 && (r->core != c || r->page_size != m->page_size))
			err = -EINVAL;
		if (err) {
			err = wr_error(-EINVAL, "checkpoint %llu: result of "
				       "core %u does not fit the commit",
				       (unsigned long long)info->ckpt_id, c);
			break;
		}
		struct wr_ckpt_core_info *ci = &m->core[c];
		snprintf(ci->meta.name, WR_CKPT_NAME_MAX, "%s", r->meta_file);
		ci->meta.size = r->meta_size;
		ci->meta.checksum = r->meta_checksum;
	}
	wr_ckpt_manifest_free(&par);
	return err;
}

static bool crash_here(int step)
{
	return wr_ckpt_test_crash_after == step;
}

static int write_all_sync(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return fsync(fd) != 0 ? -errno : 0;
}

/* Steps 1-4 of the commit: tmp written, fsynced, renamed, dir fsynced.
 * 1 when the test hook stopped it. */
static int publish(int dirfd, uint64_t id, const struct buf *b)
{
	char tmp[64], fin[64];
	int fd, err;

	wr_ckpt_manifest_name(tmp, sizeof(tmp), id, ".tmp");
	wr_ckpt_manifest_name(fin, sizeof(fin), id, "");
	if (fsync(dirfd) != 0) /* the data files' entries */
		return -errno;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (crash_here(1)) { /* tmp created, partly written */
		(void)!write(fd, b->p, b->len / 2);
		close(fd);
		return 1;
	}
	err = write_all_sync(fd, b->p, b->len);
	close(fd);
	if (err)
		return err;
	if (crash_here(2))
		return 1;
	if (renameat(dirfd, tmp, dirfd, fin) != 0)
		return -errno;
	if (crash_here(3))
		return 1;
	if (fsync(dirfd) != 0) {
		err = -errno;
		(void)unlinkat(dirfd, fin, 0);
		return err;
	}
	return crash_here(4) ? 1 : 0;
}

static int retention(int dirfd, const char *dir, uint64_t id, uint32_t keep);

int wr_ckpt_commit(const struct wr_ckpt_commit_info *info,
		   const struct wr_ckpt_core_result *res, uint32_t ncores)
{
	struct wr_ckpt_manifest m = { 0 };
	struct buf b = { 0 };
	int dirfd = -1, err;

	if (info->cores == 0 || ncores != info->cores || info->ckpt_id == 0)
		return wr_error(-EINVAL, "checkpoint: commit of %u results for "
				"%u cores", ncores, info->cores);
	err = build_manifest(info, res, &m);
	if (err == 0)
		err = manifest_format(&m, &b);
	wr_ckpt_manifest_free(&m);
	if (err == 0 && (dirfd = open(info->dir, O_RDONLY | O_DIRECTORY |
				      O_CLOEXEC)) < 0)
		err = -errno;
	if (err == 0)
		err = publish(dirfd, info->ckpt_id, &b);
	free(b.p);
	if (err == 1) {
		close(dirfd);
		return -EINTR; /* test hook: as a crash left it */
	}
	if (err == 0) {
		err = retention(dirfd, info->dir, info->ckpt_id,
				info->retain ? info->retain : 1);
		close(dirfd);
		return err == 1 ? -EINTR : 0;
	}
	if (dirfd >= 0)
		close(dirfd);
	(void)wr_ckpt_abort(info->dir, info->ckpt_id);
	return wr_error(err, "checkpoint %llu: commit in %s failed: %s%s",
			(unsigned long long)info->ckpt_id, info->dir,
			strerror(-err), err == -ENOSPC ? " (disk full); the "
			"previous checkpoint is intact" : "");
}

/* ---- retention ---- */

struct names {
	char (*v)[WR_CKPT_NAME_MAX];
	size_t n, cap;
};

static int names_add_manifest(struct names *s, const struct wr_ckpt_manifest *m)
{
	for (uint32_t c = 0; c < m->cores; c++) {
		const struct wr_ckpt_core_info *ci = &m->core[c];
		if (s->n + ci->nchain + ci->nlog + 1 > s->cap) {
			size_t cap = (s->cap + ci->nchain + ci->nlog + 1) * 2;
			void *g = realloc(s->v, cap * sizeof(*s->v));
			if (g == NULL)
				return -ENOMEM;
			s->v = g;
			s->cap = cap;
		}
		for (uint32_t k = 0; k < ci->nchain; k++)
			memcpy(s->v[s->n++], ci->chain[k].name, WR_CKPT_NAME_MAX);
		for (uint32_t k = 0; k < ci->nlog; k++)
			memcpy(s->v[s->n++], ci->log[k].name, WR_CKPT_NAME_MAX);
		memcpy(s->v[s->n++], ci->meta.name, WR_CKPT_NAME_MAX);
	}
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* id of "ckpt-<20 digits>-..." , else 0. */
static uint64_t data_file_id(const char *name)
{
	if (strncmp(name, "ckpt-", 5) != 0 || strlen(name) < 26 ||
	    name[25] != '-')
		return 0;
	return strtoull(name + 5, NULL, 10);
}

/* Unlinks data files of checkpoints <= upto that `keep` does not name, and
 * manifest temporaries <= upto.  only_id != 0 narrows it to that id. */
static void sweep(int dirfd, const struct names *keep, uint64_t upto,
		  uint64_t only_id)
{
	DIR *d = fdopendir(dup(dirfd));
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		uint64_t id = data_file_id(e->d_name);
		size_t l = strlen(e->d_name);
		if (id == 0 && l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0) {
			char base[64];
			snprintf(base, sizeof(base), "%.*s", (int)(l - 4),
				 e->d_name);
			id = manifest_id(base);
		}
		if (id == 0 || id > upto || (only_id && id != only_id))
			continue;
		if (keep->n && bsearch(e->d_name, keep->v, keep->n,
				       WR_CKPT_NAME_MAX, cmp_name))
			continue;
		(void)unlinkat(dirfd, e->d_name, 0);
	}
	closedir(d);
}

static int retention(int dirfd, const char *dir, uint64_t id, uint32_t keep)
{
	uint64_t ids[1024];
	uint32_t n, first;
	struct names s = { 0 };
	int err = wr_ckpt_list(dir, ids, 1024, &n);

	if (err || n > 1024)
		return 0; /* keep everything rather than guess */
	first = n > keep ? n - keep : 0;
	for (uint32_t i = first; i < n && err == 0; i++) {
		struct wr_ckpt_manifest m = { 0 };
		uint64_t off;
		if (wr_ckpt_manifest_read_at(dirfd, ids[i], &m, &off) != 0)
			err = -EBADMSG; /* unreadable: cannot know its files */
		else
			err = names_add_manifest(&s, &m);
		wr_ckpt_manifest_free(&m);
	}
	if (err == 0) {
		qsort(s.v, s.n, WR_CKPT_NAME_MAX, cmp_name);
		for (uint32_t i = 0; i < first; i++) {
			char name[64];
			wr_ckpt_manifest_name(name, sizeof(name), ids[i], "");
			(void)unlinkat(dirfd, name, 0);
		}
		if (crash_here(5)) { /* old manifests gone, files not yet */
			free(s.v);
			return 1;
		}
		sweep(dirfd, &s, id, 0);
	}
	free(s.v);
	return 0; /* the checkpoint is committed whatever retention did */
}

int wr_ckpt_abort(const char *dir, uint64_t ckpt_id)
{
	struct names none = { 0 };
	char name[64];
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dirfd < 0)
		return -errno;
	wr_ckpt_manifest_name(name, sizeof(name), ckpt_id, "");
	if (faccessat(dirfd, name, F_OK, 0) == 0) {
		close(dirfd);
		return wr_error(-EEXIST, "checkpoint %llu is committed",
				(unsigned long long)ckpt_id);
	}
	sweep(dirfd, &none, ckpt_id, ckpt_id);
	close(dirfd);
	return 0;
}
