/*
 * error.c — the per-thread last-error message behind weir_last_error().
 */
#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"

static _Thread_local char last_error[256];

const char *weir_last_error(void)
{
	return last_error;
}

int wr_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

void wr_error_clear(void)
{
	last_error[0] = '\0';
}
