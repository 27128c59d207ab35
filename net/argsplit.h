/*
 * net/argsplit.h — split one argument string into words the way a POSIX
 * shell does (no expansion): blanks separate words; '...' is literal;
 * "..." keeps blanks and takes a backslash only before " \ $ ` or a
 * newline; a backslash outside quotes takes the next character.  Used for
 * `weir flows --dpdk "EAL ARGS"`.  Pure, no allocation: the words are
 * written into the caller's buffer.
 */
#ifndef WR_NET_ARGSPLIT_H
#define WR_NET_ARGSPLIT_H

#include <stddef.h>

/* Split `s` into at most argv_max words; argv[i] point into buf, which
 * needs strlen(s) + 1 bytes.  Returns 0 and *argc, -EINVAL (unterminated
 * quote or trailing backslash) or -E2BIG (too many words, or buf too
 * small), each with a message for weir_last_error(). */
int wr_split_args(const char *s, char *buf, size_t cap, char **argv,
		  int argv_max, int *argc);

#endif
