/*
 * argsplit_test.c — the shell-style split of `weir flows --dpdk "ARGS"`
 * (net/argsplit.h).
 *
 * TEST PLAN
 *   1. Blanks (space, tab, newline, runs of them, leading and trailing)
 *      separate words; an empty string gives no word.
 *   2. Quotes: '...' literal (backslash included), "..." keeps blanks and
 *      unescapes only \" \\ \$ \`, adjacent quoted parts join one word,
 *      '' is an empty word; a backslash outside quotes takes the next
 *      character (an escaped blank stays in the word).
 *   3. Errors: unterminated ' or ", a trailing backslash -> -EINVAL; more
 *      words than argv holds -> -E2BIG; each with a message.
 *   4. The output fits in strlen + 1 bytes (buffer sized exactly, so ASan
 *      catches an overrun).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/argsplit.h"
#include "weir/common.h"

static int split(const char *s, char **argv, int max, int *argc, char **buf)
{
	size_t cap = strlen(s) + 1;

	*buf = malloc(cap);
	cr_assert_not_null(*buf);
	return wr_split_args(s, *buf, cap, argv, max, argc);
}

static void expect(const char *s, int n, const char *const *words)
{
	char *argv[16], *buf;
	int argc = -1;

	cr_assert_eq(split(s, argv, 16, &argc, &buf), 0, "%s: %s", s,
		     weir_last_error());
	cr_assert_eq(argc, n, "%s: %d words, expected %d", s, argc, n);
	for (int i = 0; i < n; i++)
		cr_assert_str_eq(argv[i], words[i], "%s: word %d", s, i);
	free(buf);
}

Test(argsplit, blanks)
{
	expect("", 0, NULL);
	expect(" \t\n ", 0, NULL);
	expect("-l 0", 2, (const char *[]){ "-l", "0" });
	expect("  --no-huge\t--no-pci \n -m 256  ", 4,
	       (const char *[]){ "--no-huge", "--no-pci", "-m", "256" });
}

Test(argsplit, quotes)
{
	expect("--vdev='net_pcap0,rx_pcap=/tmp/a b.pcap'", 1,
	       (const char *[]){ "--vdev=net_pcap0,rx_pcap=/tmp/a b.pcap" });
	expect("\"a \\\"b\\\" \\\\ \\$ \\x\"", 1,
	       (const char *[]){ "a \"b\" \\ $ \\x" });
	expect("'a\\b' x''y '' \"\"", 4,
	       (const char *[]){ "a\\b", "xy", "", "" });
	expect("a\\ b c\\'d", 2, (const char *[]){ "a b", "c'd" });
	expect("'it'\\''s'", 1, (const char *[]){ "it's" });
}

static void expect_err(const char *s, int max, int err, const char *needle)
{
	char *argv[16], *buf;
	int argc;

	cr_assert_eq(split(s, argv, max, &argc, &buf), err, "%s", s);
	cr_assert(strstr(weir_last_error(), needle) != NULL, "%s: '%s'", s,
		  weir_last_error());
	free(buf);
}

Test(argsplit, errors)
{
	expect_err("-l 'abc", 16, -EINVAL, "unterminated ' quote");
	expect_err("\"abc", 16, -EINVAL, "unterminated \" quote");
	expect_err("abc\\", 16, -EINVAL, "backslash");
	expect_err("a b c", 2, -E2BIG, "more than 2");
}
