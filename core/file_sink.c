/*
 * file_sink.c — weir_sink_file(): records go to core 0 through a global
 * edge, are formatted into a small ring of buffers and appended to the
 * output file through core 0's io_uring.  The file is "<path>.inprogress"
 * until every input ended; then it is fsynced and renamed to <path>, and
 * the directory fsynced, so a file at <path> is always complete.
 *
 * DIRECT I/O.  The file is opened O_DIRECT where the filesystem allows it
 * (buffered otherwise).  A buffered write is a copy into the page cache,
 * and io_uring hands a buffered ext4 append to an io-wq thread: on 2 cores
 * that thread took ~11% of the CPU samples of `weir flows --pcap --cores
 * 2` (100 MB of CSV for 20 M packets) in one profile from the two
 * workers; O_DIRECT writes go from our buffers to the disk with no copy
 * and no extra thread: +1-6% on 2 cores, +2% on 1 (bench/RESULTS.md,
 * "The file sink writes O_DIRECT").  The rules that
 * keeps, with B = DIO_ALIGN:
 *   - `off` is a multiple of B, and buffer byte i is file byte off + i;
 *   - a write covers whole blocks.  Its last partial block (the tail,
 *     < B bytes) is copied to the front of the next buffer and written
 *     again, whole, with what follows;
 *   - a checkpoint, the end, a stop, or rows left waiting flush_ms
 *     (tick) get the tail to the file through the page cache: a write on
 *     a second, buffered fd, queued on the same io_uring (sync_rows).  The
 *     next write of that block (O_DIRECT, whole, or another tail) is
 *     submitted only once it completed, so two writes of one block are
 *     never in flight together; the kernel writes back and drops the
 *     cached page before the O_DIRECT one.  Not a pwrite(2): an appending
 *     O_DIRECT write holds ext4's inode lock in io-wq until the disk is
 *     done, and a pwrite on the loop's thread would wait for it.  The file
 *     is never padded: its size is always the length of the rows written.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/pipeline_internal.h"
#include "snapshot/uring.h"

#define NBUF 4u
#define PATH_MAX_LEN 4096u
#define DIO_ALIGN 4096u	/* every logical block size divides it */
#define TAIL_TAG (NBUF + 1u) /* the tail's write: its tag and sync_wait bit */

struct fsink_spec {
	struct weir_file_sink spec;
	int32_t flush_ms;      /* resolved: < 0 off */
	char path[PATH_MAX_LEN];
	char tmp[PATH_MAX_LEN + 16];
	char header[]; /* NUL-terminated copy, empty when none */
};

struct fsink_core {
	struct wr_uring *io;
	int fd;
	bool direct;           /* fd is O_DIRECT: whole blocks only */
	uint64_t off;          /* file offset of the current buffer */
	unsigned cur;          /* buffer being filled */
	uint32_t fill;         /* bytes in the current buffer */
	bool busy[NBUF];       /* submitted, completion not yet reaped */
	bool syncing;          /* a checkpoint's fsync (tag NBUF) in flight */
	bool sync_wanted;      /* barrier seen, its fsync not queued yet */
	uint32_t sync_wait;    /* buffers written before it, not reaped yet */
	bool fsync_queued;     /* the checkpoint's fsync is in the uring */
	bool ready;            /* opened: close may write out the rows */
	bool finished;         /* fsink_finish ran: close writes nothing */
	uint64_t written_end;  /* the rows before it are written or queued */
	int64_t pending_ms;    /* rows unwritten since (the last write); -1 */
	int tail_fd;           /* buffered fd for the tail, or -1 */
	bool tail_busy;        /* the tail's write not reaped yet */
	char *buf[NBUF];
};

static void reap(struct fsink_core *fc, int *err)
{
	struct wr_uring_done d[NBUF + 1];
	unsigned n = wr_uring_reap(fc->io, d, NBUF + 1);

	for (unsigned i = 0; i < n; i++) {
		if (d[i].tag == NBUF) {
			fc->syncing = false;
		} else if (d[i].tag == TAIL_TAG) {
			fc->tail_busy = false;
			fc->sync_wait &= ~(1u << TAIL_TAG);
		} else {
			fc->busy[d[i].tag] = false;
			fc->sync_wait &= ~(1u << d[i].tag);
		}
		if (d[i].res < 0 && *err == 0)
			*err = d[i].res;
	}
}

/* Every submitted write and fsync completed: every buffer is free. */
static int drain_all(struct fsink_core *fc)
{
	int err = wr_uring_drain(fc->io);

	if (err == 0) {
		memset(fc->busy, 0, sizeof(fc->busy));
		fc->tail_busy = false;
		fc->sync_wait = 0;
		if (fc->fsync_queued) /* it completed in the drain */
			fc->syncing = false;
	}
	return err;
}

/* Wait until the current buffer is free: for the disk, only if every
 * buffer is still in flight (the disk is the bottleneck).  A buffer whose
 * write is still queued must never be refilled. */
static int wait_current(struct fsink_core *fc)
{
	int err = 0;

	reap(fc, &err);
	if (err == 0 && fc->busy[fc->cur])
		err = drain_all(fc);
	return err;
}

/* The tail's write completed (waiting for the disk only if it has not):
 * the next write of its block may go. */
static int wait_tail(struct fsink_core *fc)
{
	int err = 0;

	reap(fc, &err);
	if (err == 0 && fc->tail_busy)
		err = drain_all(fc);
	return err;
}

/* Submit the current buffer's whole blocks (buffered: all its bytes) and
 * move to a free buffer, the O_DIRECT tail copied to its front. */
static int rotate(struct fsink_core *fc)
{
	uint32_t whole = fc->direct ? fc->fill & ~(DIO_ALIGN - 1) : fc->fill;
	unsigned from = fc->cur;
	int err;

	if (whole == 0)
		return wait_current(fc);
	if ((err = wait_tail(fc)) != 0) /* it may be this block's */
		return err;
	fc->pending_ms = -1; /* tick(): flush_ms from the last write */
	if (fc->off + whole > fc->written_end)
		fc->written_end = fc->off + whole;
	err = wr_uring_write(fc->io, fc->fd, fc->buf[from], whole, fc->off,
			     from);
	if (err == 0)
		err = wr_uring_submit(fc->io);
	if (err)
		return err;
	fc->busy[from] = true;
	fc->off += whole;
	fc->fill -= whole;
	fc->cur = (fc->cur + 1) % NBUF;
	err = wait_current(fc);
	/* The tail's source is in flight: reading it is fine. */
	if (err == 0 && fc->fill > 0)
		memcpy(fc->buf[fc->cur], fc->buf[from] + whole, fc->fill);
	return err;
}

/* The tail (O_DIRECT's partial last block) through the page cache: a
 * write on a buffered fd, whole and unpadded, queued.  Its bytes stay put
 * until it completes: the buffer only grows past them, and is not
 * written (rotate) before wait_tail(). */
static int write_tail(const struct fsink_spec *fs, struct fsink_core *fc)
{
	int err;

	if (fc->tail_fd < 0 &&
	    (fc->tail_fd = open(fs->tmp, O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	err = wait_tail(fc); /* the previous tail: the same block */
	if (err == 0)
		err = wr_uring_write(fc->io, fc->tail_fd, fc->buf[fc->cur],
				     fc->fill, fc->off, TAIL_TAG);
	if (err == 0)
		err = wr_uring_submit(fc->io);
	if (err)
		return err;
	fc->tail_busy = true;
	fc->written_end = fc->off + fc->fill;
	return 0;
}

/* Every row made so far to the file: whole blocks queued O_DIRECT, the
 * tail written through the page cache (an fsync covers both). */
static int sync_rows(const struct fsink_spec *fs, struct fsink_core *fc)
{
	int err = rotate(fc);

	if (err == 0 && fc->direct && fc->fill > 0)
		err = write_tail(fs, fc);
	return err;
}

static int fsink_write(struct wr_exec *x, const struct weir_stream *n,
		       const void *rec)
{
	const struct fsink_spec *fs = n->arg;
	struct fsink_core *fc = *wr_exec_sink_state(x, n);
	int len;

	for (int tries = 0; tries < 2; tries++) {
		len = fs->spec.format(rec, fc->buf[fc->cur] + fc->fill,
				      WEIR_FILE_SINK_BUFFER - fc->fill,
				      fs->spec.arg);
		if (len >= 0 && fc->fill + (uint32_t)len <= WEIR_FILE_SINK_BUFFER) {
			fc->fill += (uint32_t)len;
			return 0;
		}
		if (len != -ENOSPC && len < 0)
			return len;
		int err = rotate(fc);
		if (err)
			return wr_error(err, "writing %s: %s", fs->tmp,
					strerror(-err));
	}
	return wr_error(-EINVAL, "%s: one record's text is larger than %u "
			"bytes", fs->path, WEIR_FILE_SINK_BUFFER - DIO_ALIGN);
}

/* WEIR_SINK_BUFFERED=1 in the environment: through the page cache, as
 * where O_DIRECT is refused (for tests, and for a reader that wants the
 * rows from the cache). */
static int open_out(struct fsink_core *fc, const char *path, int flags)
{
	const char *e = getenv("WEIR_SINK_BUFFERED");
	bool buffered = e != NULL && strcmp(e, "1") == 0;

	fc->fd = buffered ? -1 : open(path, flags | O_DIRECT | O_CLOEXEC, 0644);
	fc->direct = fc->fd >= 0;
	if (buffered || (fc->fd < 0 && errno == EINVAL)) /* tmpfs before 6.6 */
		fc->fd = open(path, flags | O_CLOEXEC, 0644);
	return fc->fd < 0 ? -errno : 0;
}

/* O_DIRECT goes on from the block holding the committed end: its first
 * bytes, read back, are the current buffer's. */
static int reload_tail(const struct fsink_spec *fs, struct fsink_core *fc)
{
	uint32_t tail = (uint32_t)(fc->off & (DIO_ALIGN - 1));
	int fd;
	ssize_t got;

	if (!fc->direct || tail == 0)
		return 0;
	fd = open(fs->tmp, O_RDONLY | O_CLOEXEC);
	got = fd < 0 ? -1 : pread(fd, fc->buf[0], tail, (off_t)(fc->off - tail));
	if (fd >= 0)
		close(fd);
	if (got != (ssize_t)tail)
		return wr_error(got < 0 ? -errno : -EIO, "cannot resume %s: "
				"reading its last %u bytes failed", fs->tmp,
				tail);
	fc->off -= tail;
	fc->fill = tail;
	return 0;
}

/*
 * A restored run: the output as the checkpoint committed it, fc->off
 * bytes, and nothing after (rows written after the checkpoint are written
 * again by the replay).  A job that had finished renamed the file; the
 * replay finishes it again.
 */
static int reopen(const struct fsink_spec *fs, struct fsink_core *fc)
{
	struct stat st;

	if (access(fs->tmp, F_OK) != 0 && rename(fs->path, fs->tmp) != 0)
		return wr_error(-ENOENT, "cannot resume %s: neither it nor %s "
				"exists (the checkpoint has %llu bytes of it)",
				fs->path, fs->tmp,
				(unsigned long long)fc->off);
	if (open_out(fc, fs->tmp, O_WRONLY) != 0 || fstat(fc->fd, &st) != 0)
		return wr_error(-errno, "cannot reopen %s: %s", fs->tmp,
				strerror(errno));
	if ((uint64_t)st.st_size < fc->off)
		return wr_error(-EIO, "cannot resume %s: it has %lld bytes, "
				"the checkpoint committed %llu", fs->tmp,
				(long long)st.st_size,
				(unsigned long long)fc->off);
	if (ftruncate(fc->fd, (off_t)fc->off) != 0)
		return wr_error(-errno, "cannot truncate %s: %s", fs->tmp,
				strerror(errno));
	return reload_tail(fs, fc);
}

/* Checkpoint barrier: the length so far, no I/O (it is part of the
 * snapshot's pause).  synced() then submits the bytes, waits (by reaping,
 * never blocking) until every buffer written so far has completed, and
 * only then queues a plain fsync.  An fsync with IOSQE_IO_DRAIN would
 * hold back every later row write until the disk finished, and once the
 * few buffers were all queued behind it the loop blocked in rotate() for
 * the whole fsync: tens to hundreds of ms per checkpoint (seen as the
 * latency spikes of `weir bench latency --checkpoint-interval`).  Rows
 * appended meanwhile may reach the disk too: restore truncates. */
static int fsink_barrier(struct wr_exec *x, const struct weir_stream *n,
			 uint64_t *len)
{
	struct fsink_core *fc = *wr_exec_sink_state(x, n);

	*len = fc->off + fc->fill;
	fc->sync_wanted = true;
	return 0;
}

/* Submit what the barrier counted; remember which buffers carry it. */
static int start_sync(const struct fsink_spec *fs, struct fsink_core *fc)
{
	int err = sync_rows(fs, fc);

	if (err)
		return wr_error(err, "checkpoint: output file: %s",
				strerror(-err));
	fc->sync_wait = fc->tail_busy ? 1u << TAIL_TAG : 0;
	for (unsigned i = 0; i < NBUF; i++)
		if (fc->busy[i])
			fc->sync_wait |= 1u << i;
	fc->sync_wanted = false;
	fc->syncing = true;
	fc->fsync_queued = false;
	return 0;
}

static int fsink_synced(struct wr_exec *x, const struct weir_stream *n)
{
	struct fsink_core *fc = *wr_exec_sink_state(x, n);
	int err = 0;

	if (fc->sync_wanted)
		return start_sync(n->arg, fc);
	reap(fc, &err);
	if (err == 0 && fc->syncing && !fc->fsync_queued &&
	    fc->sync_wait == 0) {
		err = wr_uring_fsync_now(fc->io, fc->fd, NBUF);
		if (err == 0)
			err = wr_uring_submit(fc->io);
		fc->fsync_queued = err == 0;
	}
	if (err)
		return wr_error(err, "checkpoint: output file: %s",
				strerror(-err));
	return fc->syncing ? 0 : 1;
}

static int fsink_open(struct wr_exec *x, const struct weir_stream *n)
{
	const struct fsink_spec *fs = n->arg;
	struct fsink_core *fc;
	int err;

	if (wr_exec_core(x) != 0)
		return 0; /* the global edge brings every record to core 0 */
	fc = calloc(1, sizeof(*fc));
	if (fc == NULL)
		return -ENOMEM;
	*wr_exec_sink_state(x, n) = fc;
	fc->fd = -1;
	fc->pending_ms = -1;
	fc->tail_fd = -1;
	for (unsigned i = 0; i < NBUF; i++)
		if ((fc->buf[i] = aligned_alloc(4096, WEIR_FILE_SINK_BUFFER)) == NULL)
			return -ENOMEM;
	err = wr_uring_create(NBUF * 2, &fc->io);
	if (err)
		return wr_error(err, "io_uring: %s", strerror(-err));
	err = wr_exec_restored_sink_len(x, n, &fc->off);
	if (err < 0)
		return err;
	if (err > 0) {
		err = reopen(fs, fc);
		fc->written_end = fc->off + fc->fill; /* on the disk */
		fc->ready = err == 0;
		return err;
	}
	if (open_out(fc, fs->tmp, O_WRONLY | O_CREAT | O_TRUNC) != 0)
		return wr_error(-errno, "cannot create %s: %s", fs->tmp,
				strerror(errno));
	if (fs->spec.header != NULL) {
		memcpy(fc->buf[0], fs->header, strlen(fs->header));
		fc->fill = (uint32_t)strlen(fs->header);
	}
	fc->ready = true;
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char copy[PATH_MAX_LEN];
	int fd, err = 0;

	snprintf(copy, sizeof(copy), "%s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		err = -errno;
	close(fd);
	return err;
}

static int fsink_finish(struct wr_exec *x, const struct weir_stream *n)
{
	const struct fsink_spec *fs = n->arg;
	struct fsink_core *fc = *wr_exec_sink_state(x, n);
	int err;

	if (fc == NULL)
		return 0;
	fc->finished = true;
	err = sync_rows(fs, fc);
	if (err == 0)
		err = drain_all(fc);
	if (err == 0)
		err = wr_uring_fsync(fc->io, fc->fd, NBUF);
	if (err == 0)
		err = wr_uring_drain(fc->io);
	if (err == 0 && rename(fs->tmp, fs->path) != 0)
		err = -errno;
	if (err == 0)
		err = fsync_dir_of(fs->path);
	if (err)
		return wr_error(err, "finishing %s: %s", fs->path,
				strerror(-err));
	return 0;
}

/*
 * Rows left waiting flush_ms after the last write go to the file, so a
 * live job's rows reach "<path>.inprogress" about flush_ms after their
 * window closed, not once 256 KiB of them have piled up.  Only with no
 * write in flight and no checkpoint sync under way, so it never waits for
 * the disk; under load buffers fill long before flush_ms and it never
 * writes.
 */
static int fsink_tick(struct wr_exec *x, const struct weir_stream *n)
{
	const struct fsink_spec *fs = n->arg;
	struct fsink_core *fc = *wr_exec_sink_state(x, n);
	int64_t now = wr_exec_now_ms(x);
	int err = 0;

	if (fc->off + fc->fill == fc->written_end || fs->flush_ms < 0)
		return 0;
	if (fc->pending_ms < 0)
		fc->pending_ms = now;
	if (now - fc->pending_ms < fs->flush_ms || fc->sync_wanted ||
	    fc->syncing)
		return 0;
	reap(fc, &err);
	for (unsigned i = 0; err == 0 && i < NBUF; i++)
		if (fc->busy[i] || fc->tail_busy)
			return 0;
	if (err == 0)
		err = sync_rows(fs, fc);
	if (err)
		return wr_error(err, "writing %s: %s", fs->tmp, strerror(-err));
	fc->pending_ms = -1;
	return 0;
}

/* A run that ends before its input did (a stop, an error): the rows made
 * so far stay in "<path>.inprogress", best effort.  A restore truncates
 * to the checkpoint's length anyway. */
static void write_out(const struct fsink_spec *fs, struct fsink_core *fc)
{
	if (fc->ready && !fc->finished && sync_rows(fs, fc) == 0)
		(void)drain_all(fc);
}

static void fsink_close(struct wr_exec *x, const struct weir_stream *n)
{
	struct fsink_core *fc = *wr_exec_sink_state(x, n);

	if (fc == NULL)
		return;
	write_out(n->arg, fc);
	wr_uring_destroy(fc->io);
	if (fc->fd >= 0)
		close(fc->fd);
	if (fc->tail_fd >= 0)
		close(fc->tail_fd);
	for (unsigned i = 0; i < NBUF; i++)
		free(fc->buf[i]);
	free(fc);
	*wr_exec_sink_state(x, n) = NULL;
}

static int check_spec(const struct weir_file_sink *spec)
{
	struct stat st;

	if (spec == NULL || spec->format == NULL)
		return wr_error(-EINVAL, "file sink spec or its format() is NULL");
	if (spec->path == NULL || spec->path[0] == '\0' ||
	    strlen(spec->path) >= PATH_MAX_LEN)
		return wr_error(-EINVAL, "file sink path is empty or too long");
	/* The finished file is renamed over path: never over a device, a
	 * FIFO or a directory (/dev/null, run as root, became a CSV file). */
	if (stat(spec->path, &st) == 0 && !S_ISREG(st.st_mode))
		return wr_error(-EINVAL, "file sink path %s exists and is not "
				"a regular file", spec->path);
	if (spec->header != NULL &&
	    strlen(spec->header) >= WEIR_FILE_SINK_BUFFER)
		return wr_error(-EINVAL, "file sink header is too long");
	return 0;
}

int weir_sink_file(struct weir_pipeline *p, struct weir_stream *in,
		   const struct weir_file_sink *spec)
{
	return wr_sink_file_copy_arg(p, in, spec, 0);
}

int wr_sink_file_copy_arg(struct weir_pipeline *p, struct weir_stream *in,
			  const struct weir_file_sink *spec, size_t arg_size)
{
	static const struct wr_sink_ops ops = {
		.open = fsink_open, .write = fsink_write,
		.finish = fsink_finish, .close = fsink_close,
		.barrier = fsink_barrier, .synced = fsink_synced,
		.tick = fsink_tick };
	struct weir_stream *global = NULL, *n = NULL;
	struct fsink_spec *fs;
	int err = check_spec(spec);

	if (err)
		return err;
	err = wr_pipeline_global(p, in, &global);
	if (err)
		return err;
	err = wr_pipeline_add(p, global, WR_NODE_SINK, "file_sink", &n);
	if (err)
		return err;
	/* [fsink_spec | header\0 | pad to 16 | copy of arg (arg_size)] */
	size_t arg_off = (sizeof(*fs) + (spec->header ? strlen(spec->header) : 0)
			  + 1 + 15) & ~(size_t)15;
	fs = calloc(1, arg_off + arg_size);
	if (fs == NULL)
		return -ENOMEM;
	fs->spec = *spec;
	fs->flush_ms = spec->flush_ms == 0 ? WEIR_FILE_SINK_FLUSH_MS_DEFAULT
					   : spec->flush_ms;
	snprintf(fs->path, sizeof(fs->path), "%s", spec->path);
	snprintf(fs->tmp, sizeof(fs->tmp), "%s.inprogress", spec->path);
	fs->spec.path = fs->path;
	n->sink_ops = &ops;
	n->arg = fs;
	n->owned_arg = fs;
	if (spec->header != NULL)
		strcpy(fs->header, spec->header);
	fs->spec.header = spec->header ? fs->header : NULL;
	if (arg_size > 0) {
		memcpy((char *)fs + arg_off, spec->arg, arg_size);
		fs->spec.arg = (char *)fs + arg_off;
	}
	return 0;
}
