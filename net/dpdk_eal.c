/*
 * dpdk_eal.c — the DPDK EAL, once per process, from a shell-like argument
 * string (weir_dpdk_eal_init in weir/flows.h).
 *
 * rte_eal_init() logs to stderr (and syslog) and prints its usage text on
 * stdout when an option is wrong.  A CLI owes its user one line, so while
 * it runs the EAL log goes to a memory stream and stdout to /dev/null;
 * on failure the message is the EAL's own last complaint ("EAL: Option
 * --legacy-mem is not compatible with --in-memory"), on success the
 * captured lines are dropped and the log goes to stderr only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
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
/* The split words: the EAL may keep pointers into argv (kept reachable). */
static char *eal_words;
/* The first complaint of a successful initialisation (wr_dpdk_eal_complaint). */
static char eal_complaint[256];

int weir_dpdk_available(void)
{
	return 1;
}

/* The last non-empty line of the captured log, without its newline. */
static void last_line(const char *log, char *out, size_t cap)
{
	const char *end = log + strlen(log), *start;

	while (end > log && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	start = end;
	while (start > log && start[-1] != '\n')
		start--;
	snprintf(out, cap, "%.*s", (int)(end - start), start);
}

/* The first line that reports a failure: a driver's "Couldn't open" comes
 * before the EAL's generic "Bus (vdev) probe failed". */
static void first_complaint(const char *log, char *out, size_t cap)
{
	static const char *const words[] = {
		"ouldn't", "rror", "fail", "nvalid", "annot" };

	for (const char *l = log; *l != '\0';) {
		const char *e = strchrnul(l, '\n');
		for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
			const char *hit = memmem(l, (size_t)(e - l), words[w],
						 strlen(words[w]));
			if (hit != NULL) {
				snprintf(out, cap, "%.*s", (int)(e - l), l);
				return;
			}
		}
		l = *e ? e + 1 : e;
	}
	out[0] = '\0';
}

const char *wr_dpdk_eal_complaint(void)
{
	return eal_complaint;
}

/* stdout to /dev/null while the EAL may print its usage; returns the
 * saved descriptor or -1. */
static int mute_stdout(void)
{
	int saved, null;

	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (saved >= 0 && null >= 0)
		dup2(null, STDOUT_FILENO);
	if (null >= 0)
		close(null);
	return saved;
}

static void unmute_stdout(int saved)
{
	fflush(stdout);
	if (saved >= 0) {
		dup2(saved, STDOUT_FILENO);
		close(saved);
	}
}

static int eal_run(int argc, char **argv)
{
	char *log = NULL, line[256];
	size_t loglen = 0;
	FILE *cap = open_memstream(&log, &loglen);
	int saved, rc, err;

	if (cap == NULL)
		return wr_error(-ENOMEM, "--dpdk: no memory for the EAL log");
	rte_openlog_stream(cap);
	saved = mute_stdout();
	rc = rte_eal_init(argc, argv);
	err = rc < 0 ? -(rte_errno ? rte_errno : EINVAL) : 0;
	unmute_stdout(saved);
	rte_openlog_stream(stderr);
	fclose(cap);
	if (rc < 0) {
		last_line(log ? log : "", line, sizeof(line));
		wr_error(err, "--dpdk: EAL initialisation failed (%s)%s%s",
			 rte_strerror(-err), line[0] ? ": " : "", line);
	} else {
		first_complaint(log ? log : "", eal_complaint,
				sizeof(eal_complaint));
	}
	free(log);
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
	if (atomic_compare_exchange_strong(&eal_state, &up, -ESHUTDOWN))
		rte_eal_cleanup();
}
