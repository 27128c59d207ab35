/*
 * argsplit.c — shell-style word splitting for the EAL argument string
 * (see argsplit.h).  One pass, each input byte read once; a word's bytes
 * are copied to buf and NUL-terminated there.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "core/error.h"
#include "net/argsplit.h"

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

/* Copy one word starting at *sp into *bp; advance both. */
static int word(const char **sp, char **bp)
{
	const char *s = *sp;
	char *b = *bp;
	char q = 0; /* the open quote, or 0 */

	for (; *s != '\0' && (q || !is_blank(*s)); s++) {
		if (q == '\'' && *s != '\'') {
			*b++ = *s;
		} else if (*s == q) {
			q = 0;
		} else if (q == 0 && (*s == '\'' || *s == '"')) {
			q = *s;
		} else if (*s == '\\' && (q == 0 || strchr("\"\\$`\n", s[1]))) {
			if (*++s == '\0')
				return wr_error(-EINVAL, "--dpdk: a backslash "
						"ends the argument string");
			if (*s != '\n')
				*b++ = *s; /* backslash-newline joins lines */
		} else {
			*b++ = *s;
		}
	}
	if (q)
		return wr_error(-EINVAL, "--dpdk: unterminated %c quote in "
				"the argument string", q);
	*b++ = '\0';
	*sp = s;
	*bp = b;
	return 0;
}

int wr_split_args(const char *s, char *buf, size_t cap, char **argv,
		  int argv_max, int *argc)
{
	int n = 0, err;

	if (s == NULL || cap < strlen(s) + 1)
		return wr_error(-E2BIG, "--dpdk: argument buffer too small");
	for (;;) {
		while (is_blank(*s))
			s++;
		if (*s == '\0')
			break;
		if (n == argv_max)
			return wr_error(-E2BIG, "--dpdk: more than %d arguments",
					argv_max);
		argv[n] = buf;
		err = word(&s, &buf);
		if (err)
			return err;
		n++;
	}
	*argc = n;
	return 0;
}
