/*
 * tests/net/stream_feed.h — a capture in memory fed through a pipe by a
 * writer thread, in pieces of random sizes (1 .. max_piece bytes, with a
 * short sleep now and then), so a stream reader meets its bytes ending
 * anywhere: inside a file header, a record header, a record, a block.
 *
 *   struct feed fd;
 *   int rfd = feed_start(&fd, buf, len, seed, max_piece);
 *   weir_pcap_open_fd(rfd, ...) ... weir_pcap_close(); feed_join(&fd);
 *
 * The reader may close its end early (an error): the writer then stops at
 * EPIPE (SIGPIPE is ignored by feed_start).  stream_next() waits out
 * -EAGAIN.  Header-only: every user is one translation unit.
 */
#ifndef WEIR_TESTS_NET_STREAM_FEED_H
#define WEIR_TESTS_NET_STREAM_FEED_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "weir/net.h"

struct feed {
	const uint8_t *buf;
	size_t len;
	size_t max_piece;
	unsigned seed;
	int wfd;
	const char *fifo; /* feed_start_fifo: opened by the thread */
	pthread_t th;
};

static inline unsigned feed_rand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static inline void *feed_run(void *arg)
{
	struct feed *f = arg;
	size_t off = 0;

	if (f->fifo != NULL && (f->wfd = open(f->fifo, O_WRONLY)) < 0)
		return NULL;
	while (off < f->len) {
		size_t n = 1 + feed_rand(&f->seed) % f->max_piece;
		if (n > f->len - off)
			n = f->len - off;
		ssize_t w = write(f->wfd, f->buf + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* EPIPE: the reader is gone */
		off += (size_t)w;
		if (feed_rand(&f->seed) % 64 == 0) {
			struct timespec ts = { 0, 200 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	close(f->wfd);
	return NULL;
}

/* The pipe's read end, or -1. */
static inline int feed_start(struct feed *f, const void *buf, size_t len,
			     unsigned seed, size_t max_piece)
{
	int p[2];

	signal(SIGPIPE, SIG_IGN);
	if (pipe(p) != 0)
		return -1;
	f->buf = buf;
	f->len = len;
	f->seed = seed;
	f->max_piece = max_piece ? max_piece : 1;
	f->wfd = p[1];
	f->fifo = NULL;
	if (pthread_create(&f->th, NULL, feed_run, f) != 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	return p[0];
}

/* The same into a FIFO, which the thread opens for writing (that open and
 * the reader's wait for each other). */
static inline int feed_start_fifo(struct feed *f, const char *fifo,
				  const void *buf, size_t len, unsigned seed,
				  size_t max_piece)
{
	signal(SIGPIPE, SIG_IGN);
	f->buf = buf;
	f->len = len;
	f->seed = seed;
	f->max_piece = max_piece ? max_piece : 1;
	f->fifo = fifo;
	return pthread_create(&f->th, NULL, feed_run, f) == 0 ? 0 : -1;
}

static inline void feed_join(struct feed *f)
{
	pthread_join(f->th, NULL);
}

/* weir_pcap_next(), waiting while the stream's bytes have not come. */
static inline int stream_next(struct weir_pcap *r, struct weir_frame *fr)
{
	int rc;

	while ((rc = weir_pcap_next(r, fr)) == -EAGAIN)
		sched_yield();
	return rc;
}

#endif
