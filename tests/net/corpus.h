/*
 * tests/net/corpus.h — where the tcpdump test corpus is: $WEIR_CORPUS_DIR
 * (the tcpdump directory itself, or a directory holding tcpdump/), or
 * shared/corpus/tcpdump found by walking up from the source tree.  The
 * files are read where they are, never copied into the repository.
 * Header-only: every user is one translation unit.
 */
#ifndef WEIR_TESTS_NET_CORPUS_H
#define WEIR_TESTS_NET_CORPUS_H

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef WEIR_SOURCE_DIR
#define WEIR_SOURCE_DIR "."
#endif

static inline int is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static inline int find_corpus(char *out, size_t n)
{
	const char *env = getenv("WEIR_CORPUS_DIR");
	char dir[PATH_MAX / 2];

	if (env != NULL && *env != '\0') {
		snprintf(out, n, "%s/tcpdump", env);
		if (is_dir(out))
			return 0;
		snprintf(out, n, "%s", env);
		return is_dir(out) ? 0 : -ENOENT;
	}
	snprintf(dir, sizeof(dir), "%s", WEIR_SOURCE_DIR);
	for (int up = 0; up < 6; up++) {
		snprintf(out, n, "%s/shared/corpus/tcpdump", dir);
		if (is_dir(out))
			return 0;
		if (strlen(dir) + 4 >= sizeof(dir))
			break;
		strcat(dir, "/..");
	}
	return -ENOENT;
}

#endif
