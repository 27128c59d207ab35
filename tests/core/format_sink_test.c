/*
 * format_sink_test.c — weir_sink_csv() and weir_sink_jsonl(): exact file
 * contents from a field schema.
 *
 * Test plan:
 *   - every field type (u64, i64, u32, i32 at their extremes; f64 that
 *     needs 15 or 17 digits, NaN, infinity; IPv4; IPv6 compressed per
 *     RFC 5952 incl. "::" and an IPv4-mapped address; fixed strings
 *     NUL-padded and exactly full) on one core: the CSV and the JSON-lines
 *     file equal the expected text byte for byte.
 *   - quoting and escaping: a CSV string or header name with a comma,
 *     quotes or a newline is quoted with quotes doubled (RFC 4180), others
 *     are not; JSON escapes quotes, backslash, \n, \t and a control byte
 *     (\u0001) in values and in names.
 *   - while the job runs only "<path>.inprogress" exists; after success
 *     only <path>.
 *   - bad schemas -> -EINVAL naming the field: outside the record, string
 *     of length 0, unknown type, a wrong len for a fixed type, no name,
 *     no fields.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/pipeline.h"

struct row {
	uint64_t u;
	int64_t i;
	uint32_t u32;
	int32_t i32;
	double f;
	uint8_t v4[4];
	uint8_t v6[16];
	char s[12];
};

#define NROWS 5u
static struct row rows[NROWS];

static void make_rows(void)
{
	static const uint8_t v6_doc[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	static const uint8_t v6_two_runs[16] = { 0x20, 0x01, 0x0d, 0xb8,
		[9] = 1, [15] = 1 };
	static const uint8_t v6_mapped[16] = { [10] = 0xff, [11] = 0xff,
		192, 0, 2, 1 };

	memset(rows, 0, sizeof(rows));
	rows[0] = (struct row){ UINT64_MAX, INT64_MIN, UINT32_MAX, INT32_MIN,
				0.1, { 192, 0, 2, 1 }, { 0 }, "plain" };
	memcpy(rows[0].v6, v6_doc, 16);
	rows[1] = (struct row){ .f = -1.5e300, .s = "a,b" };
	rows[2] = (struct row){ .u = 7, .i = -7, .f = NAN, .s = "q\"x\"\n" };
	memcpy(rows[2].v6, v6_two_runs, 16);
	rows[3] = (struct row){ .f = INFINITY, .v4 = { 10, 0, 0, 255 } };
	memcpy(rows[3].s, "abcdefghijkl", 12); /* full: no NUL */
	memcpy(rows[3].v6, v6_mapped, 16);
	rows[4] = (struct row){ .f = 1.0 / 3, .s = "t\\\x01\t" };
}

static const struct weir_field fields[] = {
	{ "u", WEIR_FIELD_U64, offsetof(struct row, u), 0 },
	{ "i", WEIR_FIELD_I64, offsetof(struct row, i), 8 },
	{ "u32", WEIR_FIELD_U32, offsetof(struct row, u32), 0 },
	{ "i32", WEIR_FIELD_I32, offsetof(struct row, i32), 0 },
	{ "f", WEIR_FIELD_F64, offsetof(struct row, f), 0 },
	{ "src", WEIR_FIELD_IPV4, offsetof(struct row, v4), 4 },
	{ "dst", WEIR_FIELD_IPV6, offsetof(struct row, v6), 0 },
	{ "s,\"q\"", WEIR_FIELD_STRING, offsetof(struct row, s), 12 },
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static const char csv_expected[] =
	"u,i,u32,i32,f,src,dst,\"s,\"\"q\"\"\"\n"
	"18446744073709551615,-9223372036854775808,4294967295,-2147483648,"
	"0.1,192.0.2.1,2001:db8::1,plain\n"
	"0,0,0,0,-1.5e+300,0.0.0.0,::,\"a,b\"\n"
	"7,-7,0,0,nan,0.0.0.0,2001:db8::1:0:0:1,\"q\"\"x\"\"\n\"\n"
	"0,0,0,0,inf,10.0.0.255,::ffff:192.0.2.1,abcdefghijkl\n"
	"0,0,0,0,0.33333333333333331,0.0.0.0,::,t\\\x01\t\n";

static const char jsonl_expected[] =
	"{\"u\":18446744073709551615,\"i\":-9223372036854775808,"
	"\"u32\":4294967295,\"i32\":-2147483648,\"f\":0.1,\"src\":\"192.0.2.1\","
	"\"dst\":\"2001:db8::1\",\"s,\\\"q\\\"\":\"plain\"}\n"
	"{\"u\":0,\"i\":0,\"u32\":0,\"i32\":0,\"f\":-1.5e+300,\"src\":\"0.0.0.0\","
	"\"dst\":\"::\",\"s,\\\"q\\\"\":\"a,b\"}\n"
	"{\"u\":7,\"i\":-7,\"u32\":0,\"i32\":0,\"f\":null,\"src\":\"0.0.0.0\","
	"\"dst\":\"2001:db8::1:0:0:1\",\"s,\\\"q\\\"\":\"q\\\"x\\\"\\n\"}\n"
	"{\"u\":0,\"i\":0,\"u32\":0,\"i32\":0,\"f\":null,\"src\":\"10.0.0.255\","
	"\"dst\":\"::ffff:192.0.2.1\",\"s,\\\"q\\\"\":\"abcdefghijkl\"}\n"
	"{\"u\":0,\"i\":0,\"u32\":0,\"i32\":0,\"f\":0.33333333333333331,"
	"\"src\":\"0.0.0.0\",\"dst\":\"::\",\"s,\\\"q\\\"\":\"t\\\\\\u0001\\t\"}\n";

/* ---- a source that looks at the output files while the job runs ---- */

struct rows_src {
	char path[256], tmp[300];
	unsigned calls;
	int final_during, tmp_during; /* access() results seen mid-run */
};

static int rows_next(struct weir_ctx *c, void *recs, int64_t *ts,
		     unsigned max, void *arg)
{
	struct rows_src *s = arg;

	(void)c;
	if (s->calls++ == 0) {
		cr_assert_geq(max, NROWS);
		memcpy(recs, rows, sizeof(rows));
		for (unsigned i = 0; i < NROWS; i++)
			ts[i] = WEIR_TS_MIN;
		return NROWS;
	}
	s->final_during = access(s->path, F_OK);
	s->tmp_during = access(s->tmp, F_OK);
	return WEIR_SOURCE_END;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	buf = calloc(1, *len + 1);
	cr_assert_eq(fread(buf, 1, *len, f), *len);
	fclose(f);
	return buf;
}

typedef int (*add_fn)(struct weir_pipeline *, struct weir_stream *,
		      const char *, const struct weir_field *, unsigned);

static void run_and_compare(add_fn add, const char *name,
			    const char *expected)
{
	static const struct weir_source_ops ops = { .next = rows_next };
	char dir[] = "/tmp/weir-fmt-XXXXXX";
	struct rows_src src = { .calls = 0 };
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *s;
	size_t len;

	make_rows();
	cr_assert_not_null(mkdtemp(dir));
	snprintf(src.path, sizeof(src.path), "%s/%s", dir, name);
	snprintf(src.tmp, sizeof(src.tmp), "%s.inprogress", src.path);
	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = 1;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0);
	cr_assert_eq(weir_source(p, "rows", &ops, sizeof(struct row), &src, &s), 0);
	cr_assert_eq(add(p, s, src.path, fields, NFIELDS), 0, "%s",
		     weir_last_error());
	cr_assert_eq(weir_pipeline_run(p), 0, "%s", weir_last_error());
	weir_pipeline_destroy(p);
	cr_assert_eq(src.final_during, -1, "%s existed while the job ran", name);
	cr_assert_eq(src.tmp_during, 0, "no %s.inprogress while the job ran",
		     name);
	cr_assert_eq(access(src.tmp, F_OK), -1, "in-progress file left behind");
	char *text = slurp(src.path, &len);
	cr_assert_not_null(text, "no %s after success", name);
	cr_assert_eq(len, strlen(expected), "%s: %zu bytes, expected %zu:\n%s",
		     name, len, strlen(expected), text);
	cr_assert_str_eq(text, expected);
	free(text);
	unlink(src.path);
	rmdir(dir);
}

Test(format_sink, csv_exact_contents)
{
	run_and_compare(weir_sink_csv, "out.csv", csv_expected);
}

Test(format_sink, jsonl_exact_contents)
{
	run_and_compare(weir_sink_jsonl, "out.jsonl", jsonl_expected);
}

/* ---- bad schemas ---- */

static void expect_bad(struct weir_pipeline *p, struct weir_stream *s,
		       struct weir_field f, const char *word)
{
	cr_assert_eq(weir_sink_csv(p, s, "/tmp/x.csv", &f, 1), -EINVAL, "%s",
		     word);
	cr_assert(strstr(weir_last_error(), word) != NULL,
		  "message '%s' lacks '%s'", weir_last_error(), word);
	cr_assert_eq(weir_sink_jsonl(p, s, "/tmp/x.jsonl", &f, 1), -EINVAL);
}

Test(format_sink, bad_schemas_are_einval)
{
	static const struct weir_source_ops ops = { .next = rows_next };
	struct rows_src src;
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *s;
	uint32_t end = sizeof(struct row);

	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = 1;
	cr_assert_eq(weir_pipeline_create(&cfg, &p), 0);
	cr_assert_eq(weir_source(p, "rows", &ops, sizeof(struct row), &src, &s), 0);
	expect_bad(p, s, (struct weir_field){ "past", WEIR_FIELD_U64, end - 4, 0 },
		   "past");
	expect_bad(p, s, (struct weir_field){ "s0", WEIR_FIELD_STRING, 0, 0 },
		   "s0");
	expect_bad(p, s, (struct weir_field){ "t99", (enum weir_field_type)99,
					      0, 0 }, "t99");
	expect_bad(p, s, (struct weir_field){ "len3", WEIR_FIELD_U32, 0, 3 },
		   "len3");
	expect_bad(p, s, (struct weir_field){ NULL, WEIR_FIELD_U32, 0, 0 },
		   "name");
	cr_assert_eq(weir_sink_csv(p, s, "/tmp/x.csv", fields, 0), -EINVAL);
	weir_pipeline_destroy(p);
}
