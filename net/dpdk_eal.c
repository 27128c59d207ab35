/*
 * dpdk_eal.c — the DPDK EAL, once per process, from a shell-like argument
 * string (weir_dpdk_eal_init in weir/flows.h).
 *
 * rte_eal_init() logs to stderr (and syslog), getopt and its alerts write
 * to stderr, and its usage text goes to stdout when an option is wrong.
 * A CLI owes its user one line, so while it runs the EAL log goes to a
 * memory stream, stderr to a memfd and stdout to /dev/null; on failure
 * the message is the first complaint found ("unrecognized option
 * '--bogus'", "EAL: Option --legacy-mem is not compatible with
 * --in-memory"), on success the captured lines are dropped (the first
 * complaint is kept: a device that failed to probe explains "no ports")
 * and the log goes to stderr only.
 *
 * The EAL also pins the calling thread to the main lcore's CPU; the
 * thread's own CPU mask is restored afterwards, because the runtime
 * (core/runtime.c) takes its CPU list from it.  The EAL's idle worker
 * lcores (blocked on a pipe, waiting for rte_eal_remote_launch) are never
 * used: weir's workers are its own pinned pthreads, registered as
 * non-EAL lcores by the source.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_common.h>
#include <rte_log.h>

#include "core/error.h"
#include "net/argsplit.h"
#include "net/dpdk.h"
#include "weir/flows.h"

#define EAL_ARGS_MAX 128

/* 0: never tried, 1: up, -errno: the first attempt failed.  The EAL
 * cannot be initialised twice, and cannot be retried after most failures
 * either (it keeps half its state), so the answer is remembered. */
static _Atomic int eal_state;
/* The split words: the EAL may keep pointers into argv until cleanup. */
static char *eal_words;
/* The first complaint of a successful initialisation (wr_dpdk_eal_complaint). */
static char eal_complaint[256];

int weir_dpdk_available(void)
{
	return 1;
}

/* The first line of `text` that reports a failure; lines starting with
 * `skip` (the EAL's generic "EAL: FATAL: ..." alert) only if nothing else
 * does.  A driver's "Couldn't open" comes before the EAL's generic "Bus
 * (vdev) probe failed", getopt's "unrecognized option" before "Invalid
 * 'command line' arguments". */
static bool complaint_in(const char *text, const char *skip, char *out,
			 size_t cap)
{
	static const char *const words[] = {
		"ouldn't", "rror", "fail", "nvalid", "annot", "nrecognized",
		"not compatible", "requires", "issing", "No such" };

	for (const char *l = text; *l != '\0';) {
		const char *e = strchrnul(l, '\n');
		bool skipped = skip && strncmp(l, skip, strlen(skip)) == 0;
		for (size_t w = 0; !skipped && w < RTE_DIM(words); w++) {
			if (memmem(l, (size_t)(e - l), words[w],
				   strlen(words[w])) == NULL)
				continue;
			if (strncmp(l, "weir: ", 6) == 0) /* getopt's prefix */
				l += 6;
			snprintf(out, cap, "%.*s", (int)(e - l), l);
			return true;
		}
		l = *e ? e + 1 : e;
	}
	return false;
}

static void complaint(const char *err_text, const char *log, char *out,
		      size_t cap)
{
	out[0] = '\0';
	if (!complaint_in(err_text, "EAL: FATAL", out, cap) &&
	    !complaint_in(log, NULL, out, cap))
		(void)complaint_in(err_text, NULL, out, cap);
}

const char *wr_dpdk_eal_complaint(void)
{
	return eal_complaint;
}

/* While rte_eal_init runs: its log to a memory stream, stdout (usage
 * text) to /dev/null, stderr (getopt, alerts) to a memfd. */
struct eal_capture {
	FILE *log;
	char *log_text, *err_text;
	size_t log_len;
	int saved_out, saved_err, memfd;
};

static int capture_begin(struct eal_capture *c)
{
	int null;

	memset(c, 0, sizeof(*c));
	c->log = open_memstream(&c->log_text, &c->log_len);
	c->memfd = memfd_create("weir-eal-stderr", MFD_CLOEXEC);
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (c->log == NULL || c->memfd < 0 || null < 0) {
		if (c->log)
			fclose(c->log);
		free(c->log_text);
		if (c->memfd >= 0)
			close(c->memfd);
		if (null >= 0)
			close(null);
		return wr_error(-ENOMEM, "--dpdk: cannot capture the EAL's "
				"output");
	}
	rte_openlog_stream(c->log);
	fflush(stdout);
	fflush(stderr);
	c->saved_out = dup(STDOUT_FILENO);
	c->saved_err = dup(STDERR_FILENO);
	dup2(null, STDOUT_FILENO);
	dup2(c->memfd, STDERR_FILENO);
	close(null);
	return 0;
}

/* Restore stdout/stderr; the captured texts stay in c until capture_free. */
static void capture_end(struct eal_capture *c)
{
	off_t n;

	fflush(stdout);
	fflush(stderr);
	dup2(c->saved_out, STDOUT_FILENO);
	dup2(c->saved_err, STDERR_FILENO);
	close(c->saved_out);
	close(c->saved_err);
	rte_openlog_stream(stderr);
	fclose(c->log);
	n = lseek(c->memfd, 0, SEEK_END);
	c->err_text = calloc(1, n > 0 ? (size_t)n + 1 : 1);
	if (c->err_text != NULL && n > 0 &&
	    pread(c->memfd, c->err_text, (size_t)n, 0) != n)
		c->err_text[0] = '\0';
	close(c->memfd);
}

static void capture_free(struct eal_capture *c)
{
	free(c->log_text);
	free(c->err_text);
}

static int eal_run(int argc, char **argv)
{
	struct eal_capture cap;
	char line[256];
	int rc, err, aff;
	cpu_set_t cpus;

	err = capture_begin(&cap);
	if (err)
		return err;
	aff = pthread_getaffinity_np(pthread_self(), sizeof(cpus), &cpus);
	rc = rte_eal_init(argc, argv);
	err = rc < 0 ? -(rte_errno ? rte_errno : EINVAL) : 0;
	/* The EAL pins the calling thread to its main lcore's CPU; the
	 * runtime takes its CPU list from this thread's mask, so give the
	 * mask back (this thread only waits while workers run). */
	if (aff == 0)
		pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
	capture_end(&cap);
	const char *et = cap.err_text ? cap.err_text : "";
	const char *lt = cap.log_text ? cap.log_text : "";
	if (rc < 0) {
		complaint(et, lt, line, sizeof(line));
		wr_error(err, "--dpdk: EAL initialisation failed (%s)%s%s",
			 rte_strerror(-err), line[0] ? ": " : "", line);
	} else {
		complaint(et, lt, eal_complaint, sizeof(eal_complaint));
	}
	capture_free(&cap);
	return err;
}

int weir_dpdk_eal_init(const char *eal_args)
{
	char *argv[EAL_ARGS_MAX + 1], *buf;
	size_t cap;
	int argc, err, state = atomic_load(&eal_state);

	if (state == 1)
		return wr_error(-EALREADY, "--dpdk: the EAL is already "
				"initialised in this process");
	if (state < 0)
		return wr_error(state, "--dpdk: the EAL failed to initialise "
				"earlier in this process");
	if (eal_args == NULL)
		return wr_error(-EINVAL, "--dpdk: no EAL arguments");
	cap = strlen(eal_args) + 1;
	buf = malloc(cap);
	if (buf == NULL)
		return -ENOMEM;
	argv[0] = (char *)"weir";
	err = wr_split_args(eal_args, buf, cap, argv + 1, EAL_ARGS_MAX - 1,
			    &argc);
	if (err == 0) {
		argv[argc + 1] = NULL;
		err = eal_run(argc + 1, argv);
		atomic_store(&eal_state, err ? err : 1);
	}
	if (err)
		free(buf);
	else
		eal_words = buf;
	return err;
}

void weir_dpdk_eal_cleanup(void)
{
	int up = 1;

	/* After cleanup the EAL cannot come back in this process. */
	if (atomic_compare_exchange_strong(&eal_state, &up, -ESHUTDOWN)) {
		rte_eal_cleanup();
		free(eal_words);
		eal_words = NULL;
	}
}
