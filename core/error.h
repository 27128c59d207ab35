/*
 * core/error.h — how weir modules record the message behind an -errno.
 *
 *   return wr_error(-EINVAL, "ring capacity %u is not a power of two", c);
 *
 * records the message for weir_last_error() on this thread and returns the
 * error code, so a check and its message stay on one line.
 */
#ifndef WR_CORE_ERROR_H
#define WR_CORE_ERROR_H

#include "weir/common.h"

int wr_error(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void wr_error_clear(void);

#endif
