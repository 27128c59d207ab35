/*
 * snapshot/uring.h — one core's io_uring for every disk write weir makes
 * (checkpoint pages and file sinks), in the manner of liburing's and
 * TigerBeetle's I/O loops.
 *
 * PURPOSE
 *   Queue writes and fsyncs without blocking, submit them in batches, and
 *   reap completions from the event loop.  The caller's buffers must stay
 *   untouched until the operation's completion has been reaped.
 *
 * INVARIANTS
 *   1. At most `depth` operations are in the kernel at once; further ones
 *      wait in a local FIFO of at most WR_URING_FIFO_MAX (then -EAGAIN:
 *      backpressure, never an unbounded queue).
 *   2. A short write (plain or vectored) is requeued for its remaining
 *      bytes and reported once, when all of it is written (or failed).
 *      A vectored write's iovecs are copied at queue time: the caller's
 *      array may go, the bytes it points at may not.
 *   3. wr_uring_reap() runs no callbacks: it only fills an array.
 *   4. Operations on one fd complete in any order; to order an fsync after
 *      writes, wait for the writes first (wr_uring_drain) — io_uring does
 *      not order them for us without IOSQE_IO_DRAIN, which we use for
 *      wr_uring_fsync.
 *
 * CAVEATS: one thread only (the owning core).
 */
#ifndef WR_SNAPSHOT_URING_H
#define WR_SNAPSHOT_URING_H

#include <stdint.h>
#include <sys/uio.h>

#define WR_URING_DEPTH_DEFAULT 64u
#define WR_URING_FIFO_MAX 4096u
/* iovecs per vectored write: 16 x 64 KiB pages = 1 MiB, the size past
 * which fio's sequential bandwidth here no longer grows (64 KiB x 32 and
 * 1 MiB x 8 both give ~1.1 GB/s O_DIRECT on ext4). */
#define WR_URING_IOV_MAX 16u

struct wr_uring;

struct wr_uring_done {
	uint64_t tag;
	int32_t res; /* bytes written in all (writes), 0 (fsync), or -errno */
};

/*
 * io_uring_queue_init/exit for every ring weir makes.  liburing maps and
 * unmaps the rings with raw syscalls, which ThreadSanitizer cannot see: a
 * ring created on one core at the address another core's closed ring had
 * looks like a race on its SQEs.  The pair below orders each exit before
 * every later init (a release increment before the unmap, an acquire load
 * after the map), which is what the kernel's munmap/mmap already does.
 */
struct io_uring;
int wr_io_uring_init(unsigned depth, struct io_uring *ring);
void wr_io_uring_exit(struct io_uring *ring);

int wr_uring_create(unsigned depth, struct wr_uring **out);
void wr_uring_destroy(struct wr_uring *u);

/* Queue a write of len bytes of buf at offset off of fd. */
int wr_uring_write(struct wr_uring *u, int fd, const void *buf, uint32_t len,
		   uint64_t off, uint64_t tag);
/* Queue one write of iov[0..iovcnt) (iovcnt <= WR_URING_IOV_MAX) at off. */
int wr_uring_writev(struct wr_uring *u, int fd, const struct iovec *iov,
		    unsigned iovcnt, uint64_t off, uint64_t tag);
/* Queue fallocate(fd, 0, off, len): allocates blocks (and i_size) ahead of
 * O_DIRECT writes, which ext4 otherwise serialises as size-extending. */
int wr_uring_fallocate(struct wr_uring *u, int fd, uint64_t off,
		       uint64_t len, uint64_t tag);
/* Queue an fsync of fd ordered after every operation queued before it. */
int wr_uring_fsync(struct wr_uring *u, int fd, uint64_t tag);
/* An fsync not ordered after anything (no IOSQE_IO_DRAIN, so it holds
 * back nothing queued after it either): for a caller that has already
 * reaped the writes it must cover. */
int wr_uring_fsync_now(struct wr_uring *u, int fd, uint64_t tag);

/* Move queued operations into the kernel (bounded by depth). */
int wr_uring_submit(struct wr_uring *u);
/* Fill up to max completions; never blocks.  Returns how many. */
unsigned wr_uring_reap(struct wr_uring *u, struct wr_uring_done *out,
		       unsigned max);
/* Block until every queued and in-flight operation completed, reporting
 * them through out (at most max; the rest are dropped from the report but
 * their first error is returned).  Returns 0 or the first -errno. */
int wr_uring_drain(struct wr_uring *u);
/* Operations queued or in flight. */
unsigned wr_uring_pending(const struct wr_uring *u);

/* Test hook: when nonzero, every write is submitted with at most this many
 * bytes, so the kernel returns short writes and the requeue path runs. */
extern uint32_t wr_uring_test_write_max;

#endif
