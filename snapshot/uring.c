/*
 * uring.c — bounded io_uring writer (snapshot/uring.h).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <liburing.h>

#include "snapshot/uring.h"

enum op_kind { OP_WRITE, OP_WRITEV, OP_FALLOCATE, OP_FSYNC, OP_FSYNC_NOW };

struct op {
	enum op_kind kind;
	int fd;
	const uint8_t *buf;
	uint32_t len;     /* bytes still to write (fallocate: unused) */
	uint32_t done;    /* bytes written so far */
	uint64_t off;
	uint64_t tag;
	uint64_t alloc_len;	/* OP_FALLOCATE */
	bool in_kernel;
	uint8_t iovcnt;		/* OP_WRITEV: iov[0..iovcnt) still to write */
	struct iovec iov[WR_URING_IOV_MAX];
	struct iovec sub[WR_URING_IOV_MAX]; /* as submitted (test cap) */
};

uint32_t wr_uring_test_write_max;

struct wr_uring {
	struct io_uring ring;
	unsigned depth;
	unsigned in_kernel;
	/* FIFO of operation slots: queued ones wait, in-kernel ones carry
	 * their slot index as user_data. */
	struct op ops[WR_URING_FIFO_MAX];
	uint32_t free_list[WR_URING_FIFO_MAX];
	unsigned nfree;
	uint32_t queue[WR_URING_FIFO_MAX]; /* slots waiting for the kernel */
	unsigned qhead, qlen;
	int first_err;
};

static _Atomic unsigned long rings_closed;

int wr_io_uring_init(unsigned depth, struct io_uring *ring)
{
	int err = io_uring_queue_init(depth, ring, 0);

	/* Pairs with the release increment in wr_io_uring_exit(). */
	(void)atomic_load_explicit(&rings_closed, memory_order_acquire);
	return err;
}

void wr_io_uring_exit(struct io_uring *ring)
{
	/* Pairs with the acquire load in wr_io_uring_init(). */
	atomic_fetch_add_explicit(&rings_closed, 1, memory_order_release);
	io_uring_queue_exit(ring);
}

int wr_uring_create(unsigned depth, struct wr_uring **out)
{
	struct wr_uring *u;
	int err;

	if (depth == 0)
		depth = WR_URING_DEPTH_DEFAULT;
	if (depth > 4096)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return -ENOMEM;
	err = wr_io_uring_init(depth, &u->ring);
	if (err) {
		free(u);
		return err;
	}
	u->depth = depth;
	for (unsigned i = 0; i < WR_URING_FIFO_MAX; i++)
		u->free_list[i] = WR_URING_FIFO_MAX - 1 - i;
	u->nfree = WR_URING_FIFO_MAX;
	*out = u;
	return 0;
}

void wr_uring_destroy(struct wr_uring *u)
{
	if (u == NULL)
		return;
	(void)wr_uring_drain(u);
	wr_io_uring_exit(&u->ring);
	free(u);
}

static int enqueue(struct wr_uring *u, const struct op *o)
{
	uint32_t slot;

	if (u->nfree == 0)
		return -EAGAIN;
	slot = u->free_list[--u->nfree];
	u->ops[slot] = *o;
	u->queue[(u->qhead + u->qlen++) % WR_URING_FIFO_MAX] = slot;
	return 0;
}

int wr_uring_write(struct wr_uring *u, int fd, const void *buf, uint32_t len,
		   uint64_t off, uint64_t tag)
{
	struct op o = { .kind = OP_WRITE, .fd = fd, .buf = buf, .len = len,
			.off = off, .tag = tag };

	return enqueue(u, &o);
}

int wr_uring_writev(struct wr_uring *u, int fd, const struct iovec *iov,
		    unsigned iovcnt, uint64_t off, uint64_t tag)
{
	struct op o = { .kind = OP_WRITEV, .fd = fd, .off = off, .tag = tag,
			.iovcnt = (uint8_t)iovcnt };
	uint64_t len = 0;

	if (iovcnt == 0 || iovcnt > WR_URING_IOV_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (len > UINT32_MAX / 2)
		return -EINVAL;	/* res is an int32_t */
	memcpy(o.iov, iov, iovcnt * sizeof(*iov));
	o.len = (uint32_t)len;
	return enqueue(u, &o);
}

int wr_uring_fallocate(struct wr_uring *u, int fd, uint64_t off,
		       uint64_t len, uint64_t tag)
{
	struct op o = { .kind = OP_FALLOCATE, .fd = fd, .off = off,
			.alloc_len = len, .tag = tag };

	return enqueue(u, &o);
}

int wr_uring_fsync(struct wr_uring *u, int fd, uint64_t tag)
{
	struct op o = { .kind = OP_FSYNC, .fd = fd, .tag = tag };

	return enqueue(u, &o);
}

int wr_uring_fsync_now(struct wr_uring *u, int fd, uint64_t tag)
{
	struct op o = { .kind = OP_FSYNC_NOW, .fd = fd, .tag = tag };

	return enqueue(u, &o);
}

/* The iovecs to submit for o: its remaining ones, cut at the test cap. */
static unsigned iov_submit(struct op *o)
{
	uint32_t left = wr_uring_test_write_max ? wr_uring_test_write_max
						: o->len;
	unsigned n = 0;

	for (; n < o->iovcnt && left > 0; n++) {
		o->sub[n] = o->iov[n];
		if (o->sub[n].iov_len > left)
			o->sub[n].iov_len = left;
		left -= (uint32_t)o->sub[n].iov_len;
	}
	return n;
}

/* After a short vectored write of res bytes: drop the written prefix. */
static void iov_advance(struct op *o, uint32_t res)
{
	unsigned i = 0;

	while (i < o->iovcnt && res >= o->iov[i].iov_len)
		res -= (uint32_t)o->iov[i++].iov_len;
	memmove(o->iov, o->iov + i, (o->iovcnt - i) * sizeof(o->iov[0]));
	o->iovcnt = (uint8_t)(o->iovcnt - i);
	if (res > 0) {
		o->iov[0].iov_base = (uint8_t *)o->iov[0].iov_base + res;
		o->iov[0].iov_len -= res;
	}
}

static void prep(struct wr_uring *u, struct io_uring_sqe *sqe, uint32_t slot)
{
	struct op *o = &u->ops[slot];

	uint32_t cap = wr_uring_test_write_max;

	if (o->kind == OP_WRITE) {
		io_uring_prep_write(sqe, o->fd, o->buf + o->done,
				    cap && cap < o->len ? cap : o->len,
				    o->off + o->done);
	} else if (o->kind == OP_WRITEV) {
		io_uring_prep_writev(sqe, o->fd, o->sub, iov_submit(o),
				     o->off + o->done);
	} else if (o->kind == OP_FALLOCATE) {
		io_uring_prep_fallocate(sqe, o->fd, 0, o->off, o->alloc_len);
	} else {
		io_uring_prep_fsync(sqe, o->fd, 0);
		/* Runs after everything submitted before it completed. */
		if (o->kind == OP_FSYNC)
			sqe->flags |= IOSQE_IO_DRAIN;
	}
	io_uring_sqe_set_data64(sqe, slot);
	o->in_kernel = true;
	u->in_kernel++;
}

int wr_uring_submit(struct wr_uring *u)
{
	unsigned n = 0;

	while (u->qlen > 0 && u->in_kernel < u->depth) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
		if (sqe == NULL)
			break;
		prep(u, sqe, u->queue[u->qhead]);
		u->qhead = (u->qhead + 1) % WR_URING_FIFO_MAX;
		u->qlen--;
		n++;
	}
	if (n == 0)
		return 0;
	int rc = io_uring_submit(&u->ring);
	return rc < 0 ? rc : 0;
}

/* A completion: 1 and *d filled when its operation is finished, 0 when a
 * short write went back to the queue. */
static int complete(struct wr_uring *u, uint32_t slot, int32_t res,
		    struct wr_uring_done *d)
{
	struct op *o = &u->ops[slot];

	o->in_kernel = false;
	u->in_kernel--;
	bool write = o->kind == OP_WRITE || o->kind == OP_WRITEV;

	if (write && res > 0 && (uint32_t)res < o->len) {
		if (o->kind == OP_WRITEV)
			iov_advance(o, (uint32_t)res);
		o->done += (uint32_t)res;
		o->len -= (uint32_t)res;
		u->queue[(u->qhead + u->qlen++) % WR_URING_FIFO_MAX] = slot;
		return 0;
	}
	if (write && res == 0 && o->len > 0)
		res = -EIO; /* no progress: would loop forever */
	d->tag = o->tag;
	d->res = res < 0 ? res : (int32_t)(o->done + (uint32_t)res);
	if (res < 0 && u->first_err == 0)
		u->first_err = res;
	u->free_list[u->nfree++] = slot;
	return 1;
}

unsigned wr_uring_reap(struct wr_uring *u, struct wr_uring_done *out,
		       unsigned max)
{
	struct io_uring_cqe *cqes[32];
	unsigned got = 0;

	while (got < max) {
		unsigned want = max - got < 32 ? max - got : 32;
		unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, want);
		if (n == 0)
			break;
		for (unsigned i = 0; i < n; i++)
			got += (unsigned)complete(u,
				(uint32_t)io_uring_cqe_get_data64(cqes[i]),
				cqes[i]->res, &out[got]);
		io_uring_cq_advance(&u->ring, n);
	}
	(void)wr_uring_submit(u); /* requeued short writes, waiting ops */
	return got;
}

int wr_uring_drain(struct wr_uring *u)
{
	struct wr_uring_done d[32];
	int err;

	while (u->qlen > 0 || u->in_kernel > 0) {
		err = wr_uring_submit(u);
		if (err)
			return err;
		if (u->in_kernel > 0) {
			struct io_uring_cqe *cqe;
			err = io_uring_wait_cqe(&u->ring, &cqe);
			if (err && err != -EINTR)
				return err;
		}
		(void)wr_uring_reap(u, d, 32);
	}
	err = u->first_err;
	u->first_err = 0;
	return err;
}

unsigned wr_uring_pending(const struct wr_uring *u)
{
	return u->qlen + u->in_kernel;
}
