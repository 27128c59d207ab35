/*
 * apps/cli.h — shared helpers of the weir command-line program.
 * Every subcommand is `int cmd_NAME(int argc, char **argv)` returning the
 * process exit status: 0 success, 1 the job failed, 2 a usage error.
 */
#ifndef WEIR_APPS_CLI_H
#define WEIR_APPS_CLI_H

#include <stdbool.h>
#include <stdint.h>

#define EXIT_USAGE 2
/* A job stopped by SIGINT/SIGTERM before its input ended: its output is
 * incomplete (FILE.inprogress); with checkpoints the same command resumes. */
#define EXIT_STOPPED 3

/* Parse an unsigned decimal in [min, max] for option `name`; on error print
 * one line to stderr and return false. */
bool cli_parse_u64(const char *name, const char *text, uint64_t min,
		   uint64_t max, uint64_t *out);
/* "on" or "off" for option `name`; else one line to stderr, false. */
bool cli_parse_on_off(const char *name, const char *text, bool *out);
/* --cores N (0: every usable CPU) fits the CPUs this process may run on;
 * else one line to stderr naming command `cmd`, false. */
bool cli_check_cores(const char *cmd, unsigned cores);
/* Before any work: `opt PATH` names a file this run may create (absent or
 * a regular file, in a writable directory), or a directory it may create
 * or write in; else one line to stderr naming command `cmd`, false. */
bool cli_check_out_file(const char *cmd, const char *opt, const char *path);
bool cli_check_out_dir(const char *cmd, const char *opt, const char *path);
/* Print "weir: " + message + "\n" to stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

int cmd_demo(int argc, char **argv);
int cmd_flows(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
