/*
 * weir/common.h — conventions shared by every public weir header.
 *
 * PURPOSE
 *   weir is a single-node, thread-per-core stateful stream processing engine.
 *   This header holds what every module's public API has in common: the error
 *   convention, the last-error message, the cache-line size and a few
 *   compiler helpers.
 *
 * CONVENTIONS
 *   1. Every function that can fail returns int: 0 on success or -errno.
 *      Results come back through out-pointers, which are written only on
 *      success.
 *   2. When a function fails because of a caller's argument or configuration,
 *      it also records a one-line human message (which value, and why) that
 *      weir_last_error() returns on the same thread.
 *   3. Every weir_*_destroy(NULL) is a no-op.
 *   4. Names: weir_ public, wr_ internal but shared between files, static
 *      otherwise.  Macros are WEIR_.  A suffix names the concurrency rule:
 *      _spsc (one producer thread and one consumer thread), _local (only the
 *      owning core may call), _remote (any thread may call).
 */
#ifndef WEIR_COMMON_H
#define WEIR_COMMON_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The coherence unit on every x86-64 and most arm64 parts we target. */
#define WEIR_CACHE_LINE 64

#define WEIR_LIKELY(x) __builtin_expect(!!(x), 1)
#define WEIR_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define WEIR_VERSION_MAJOR 0
#define WEIR_VERSION_MINOR 1
#define WEIR_VERSION_PATCH 0
#define WEIR_VERSION_STRING "0.1.0"

/*
 * The message of the last weir call on this thread that failed with a
 * configuration or argument error, e.g. "ring capacity 1000 is not a power of
 * two".  Valid until the next failing weir call on the same thread.  Never
 * NULL: "" when there is none.
 */
const char *weir_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_COMMON_H */
