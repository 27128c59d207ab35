/*
 * weir.c — the `weir` command: a thin dispatcher over subcommands.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apps/cli.h"
#include "weir/common.h"
#include "weir/runtime.h"

static const char usage[] =
	"usage: weir <command> [options]\n"
	"\n"
	"weir is a thread-per-core stateful stream processing engine.\n"
	"\n"
	"commands:\n"
	"  flows      per-flow packet/byte counts in tumbling windows from a\n"
	"             capture file or the built-in generator, as CSV\n"
	"  checkpoint list, inspect or verify a checkpoint directory\n"
	"  bench      `weir bench latency`: open-loop latency benchmark of the\n"
	"             flows job (percentiles, .hgrm, plots)\n"
	"  demo       generator on every core sending records to every core\n"
	"             through the ring mesh; prints records/s per core\n"
	"  version    print the version\n"
	"  help       this text; `weir <command> --help` for a command\n"
	"\n"
	"With no command, weir runs the main job, `weir flows`, on its built-in\n"
	"traffic generator and writes flows.csv.\n";

bool cli_parse_u64(const char *name, const char *text, uint64_t min,
		   uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (text == NULL || *text == '\0' || *text == '-') {
		fprintf(stderr, "weir: %s needs a whole number in [%llu, %llu]\n",
			name, (unsigned long long)min, (unsigned long long)max);
		return false;
	}
	v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "weir: %s '%s' is not a whole number in "
			"[%llu, %llu]\n", name, text, (unsigned long long)min,
			(unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("weir: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

bool cli_parse_on_off(const char *name, const char *text, bool *out)
{
	if (strcmp(text, "on") != 0 && strcmp(text, "off") != 0) {
		cli_usage_error("%s takes on or off, not '%s'", name, text);
		return false;
	}
	*out = strcmp(text, "on") == 0;
	return true;
}

bool cli_check_cores(const char *cmd, unsigned cores)
{
	struct weir_runtime_config rc;

	weir_runtime_config_init(&rc);	/* cores: every usable CPU */
	if (cores <= rc.cores)
		return true;
	cli_usage_error("%s: --cores %u is more than the %u CPUs this "
			"process may run on", cmd, cores, rc.cores);
	return false;
}

/* The directory path's last component is in, as dirname(3) says it
 * ("." for a bare name; a trailing slash is not a component). */
static const char *dir_of(const char *path, char buf[PATH_MAX])
{
	snprintf(buf, PATH_MAX, "%s", path);
	return dirname(buf);
}

/* Make a file in dir and remove it: access() says yes to root on /proc
 * and /sys, where none can be made, and on a directory the job could not
 * write (the run then failed at its start, or every checkpoint did).
 * 0, or -errno with errno set. */
static int probe_dir(const char *dir)
{
	char p[PATH_MAX];
	int fd;

	if (snprintf(p, sizeof(p), "%s/.weir-probe-%ld", dir,
		     (long)getpid()) >= (int)sizeof(p))
		return errno = ENAMETOOLONG, -ENAMETOOLONG;
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	unlink(p);
	return 0;
}

bool cli_check_out_file(const char *cmd, const char *opt, const char *path)
{
	char buf[PATH_MAX];
	const char *dir = dir_of(path, buf);
	size_t len = strlen(path);
	struct stat st;
	bool exists = stat(path, &st) == 0;

	if ((len > 0 && path[len - 1] == '/') ||
	    (exists && S_ISDIR(st.st_mode))) {
		cli_usage_error("%s: %s %s is a directory, not a file", cmd,
				opt, path);
		return false;
	}
	/* Not a device either: the final rename would replace it (an --out
	 * /dev/null run as root left a CSV file in its place). */
	if (exists && !S_ISREG(st.st_mode)) {
		cli_usage_error("%s: %s %s is not a regular file (the output "
				"is written beside it, then renamed over it)",
				cmd, opt, path);
		return false;
	}
	if (access(dir, W_OK | X_OK) != 0 || probe_dir(dir) != 0) {
		cli_usage_error("%s: %s %s: cannot write in %s: %s", cmd, opt,
				path, dir, strerror(errno));
		return false;
	}
	return true;
}

bool cli_check_out_dir(const char *cmd, const char *opt, const char *path)
{
	char buf[PATH_MAX];
	struct stat st;

	if (stat(path, &st) != 0) {
		const char *parent = dir_of(path, buf);
		/* The job creates it: made and removed here to see it can. */
		if (errno == ENOENT && mkdir(path, 0700) == 0 &&
		    rmdir(path) == 0)
			return true;
		cli_usage_error("%s: %s %s: cannot create it in %s: %s", cmd,
				opt, path, parent, strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_usage_error("%s: %s %s is not a directory", cmd, opt, path);
		return false;
	}
	if (access(path, R_OK | W_OK | X_OK) != 0 || probe_dir(path) != 0) {
		cli_usage_error("%s: %s %s: cannot make files in it: %s", cmd,
				opt, path, strerror(errno));
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "flows";

	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "-h") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("weir %s\n", WEIR_VERSION_STRING);
		return 0;
	}
	if (strcmp(cmd, "flows") == 0)
		return cmd_flows(argc > 1 ? argc - 1 : 1, argc > 1 ? argv + 1 : argv);
	if (strcmp(cmd, "checkpoint") == 0)
		return cmd_checkpoint(argc - 1, argv + 1);
	if (strcmp(cmd, "bench") == 0)
		return cmd_bench(argc - 1, argv + 1);
	if (strcmp(cmd, "demo") == 0)
		return cmd_demo(argc > 1 ? argc - 1 : 1, argc > 1 ? argv + 1 : argv);
	return cli_usage_error("unknown command '%s' (try `weir help`)", cmd);
}
