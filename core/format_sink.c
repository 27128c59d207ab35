/*
 * format_sink.c — weir_sink_csv() and weir_sink_jsonl(): a field schema
 * turned into the format() of a weir_sink_file() (one writer: buffering,
 * io_uring, ".inprogress" then rename are all file_sink.c's).
 *
 * The schema is one flat struct without pointers (names are copied into
 * it, JSON names already escaped and quoted), because the file sink copies
 * it into its own allocation (wr_sink_file_copy_arg) and owns that copy.
 * format() runs on core 0 only, once per record, and never allocates.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/pipeline_internal.h"

/* An escaped JSON name: each byte at most 6 ("\u00XX"), quotes, colon. */
#define NAME_TEXT_MAX (WEIR_FIELD_NAME_MAX * 6 + 3)

struct fmt_field {
	enum weir_field_type type;
	uint32_t offset, len;
	uint32_t name_off, name_len; /* JSON: the "name": text in names[] */
};

struct schema {
	bool json;
	unsigned n;
	struct fmt_field f[WEIR_FIELDS_MAX];
	char names[WEIR_FIELDS_MAX * NAME_TEXT_MAX];
};

/* ---- bounded output ---- */

struct out {
	char *p, *end;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if ((size_t)(o->end - o->p) < n) {
		o->full = true;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

static bool csv_needs_quotes(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
			return true;
	return false;
}

/* RFC 4180: quote a field holding , " CR or LF, and double its quotes. */
static void put_csv_string(struct out *o, const char *s, size_t n)
{
	if (!csv_needs_quotes(s, n)) {
		put(o, s, n);
		return;
	}
	put(o, "\"", 1);
	for (size_t i = 0; i < n; i++)
		put(o, s[i] == '"' ? "\"\"" : &s[i], s[i] == '"' ? 2 : 1);
	put(o, "\"", 1);
}

static void put_json_string(struct out *o, const char *s, size_t n)
{
	char u[8];

	put(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default: break;
		}
		if (esc != NULL) {
			put(o, esc, 2);
		} else if (c < 0x20) {
			snprintf(u, sizeof(u), "\\u%04x", c);
			put(o, u, 6);
		} else {
			put(o, &s[i], 1);
		}
	}
	put(o, "\"", 1);
}

/* ---- one field ---- */

/* The shortest of %.15g / %.17g that reads back as v. */
static int f64_text(double v, bool json, char *t, size_t cap)
{
	if (isnan(v))
		return snprintf(t, cap, "%s", json ? "null" : "nan");
	if (isinf(v))
		return snprintf(t, cap, "%s", json ? "null" : v > 0 ? "inf" : "-inf");
	int k = snprintf(t, cap, "%.15g", v);
	if (strtod(t, NULL) != v)
		k = snprintf(t, cap, "%.17g", v);
	return k;
}

/* Numbers and addresses as text in t; strings are written directly. */
static int scalar_text(const struct fmt_field *f, const uint8_t *v, bool json,
		       char *t, size_t cap)
{
	union { uint64_t u64; int64_t i64; uint32_t u32; int32_t i32;
		double f64; } x;

	memcpy(&x, v, f->type == WEIR_FIELD_U32 || f->type == WEIR_FIELD_I32 ?
		       4 : f->type == WEIR_FIELD_IPV4 ? 0 : 8);
	if (cap < 22 && f->type != WEIR_FIELD_F64)
		return -1;
	switch (f->type) {
	case WEIR_FIELD_U64: return (int)weir_u64_text(t, x.u64);
	case WEIR_FIELD_I64: return (int)weir_i64_text(t, x.i64);
	case WEIR_FIELD_U32: return (int)weir_u64_text(t, x.u32);
	case WEIR_FIELD_I32: return (int)weir_i64_text(t, x.i32);
	case WEIR_FIELD_F64: return f64_text(x.f64, json, t, cap);
	case WEIR_FIELD_IPV4:
		return inet_ntop(AF_INET, v, t, (socklen_t)cap) ? (int)strlen(t) : -1;
	case WEIR_FIELD_IPV6:
		return inet_ntop(AF_INET6, v, t, (socklen_t)cap) ? (int)strlen(t) : -1;
	default: return -1;
	}
}

static void put_field(struct out *o, const struct fmt_field *f,
		      const uint8_t *rec, bool json)
{
	const uint8_t *v = rec + f->offset;
	char t[64];
	int k;

	if (f->type == WEIR_FIELD_STRING) {
		size_t n = strnlen((const char *)v, f->len);
		if (json)
			put_json_string(o, (const char *)v, n);
		else
			put_csv_string(o, (const char *)v, n);
		return;
	}
	k = scalar_text(f, v, json, t, sizeof(t));
	if (k < 0) {
		o->full = true; /* cannot happen with these buffers */
		return;
	}
	bool quote = json && (f->type == WEIR_FIELD_IPV4 ||
			      f->type == WEIR_FIELD_IPV6);
	if (quote)
		put(o, "\"", 1);
	put(o, t, (size_t)k);
	if (quote)
		put(o, "\"", 1);
}

static int format_record(const void *rec, char *buf, size_t cap, void *arg)
{
	const struct schema *s = arg;
	struct out o = { buf, buf + cap, false };

	if (s->json)
		put(&o, "{", 1);
	for (unsigned i = 0; i < s->n; i++) {
		const struct fmt_field *f = &s->f[i];
		if (i > 0)
			put(&o, ",", 1);
		if (s->json)
			put(&o, s->names + f->name_off, f->name_len);
		put_field(&o, f, rec, s->json);
	}
	put(&o, s->json ? "}\n" : "\n", s->json ? 2 : 1);
	return o.full ? -ENOSPC : (int)(o.p - buf);
}

/* ---- building the sink ---- */

static uint32_t type_size(enum weir_field_type t, uint32_t len)
{
	switch (t) {
	case WEIR_FIELD_U64: case WEIR_FIELD_I64: case WEIR_FIELD_F64:
		return 8;
	case WEIR_FIELD_U32: case WEIR_FIELD_I32: case WEIR_FIELD_IPV4:
		return 4;
	case WEIR_FIELD_IPV6:
		return 16;
	case WEIR_FIELD_STRING:
		return len;
	default:
		return 0;
	}
}

static int check_field(const struct weir_field *f, unsigned i,
		       uint32_t rec_size)
{
	size_t nl = f->name ? strlen(f->name) : 0;
	uint32_t size = type_size(f->type, f->len);

	if (nl == 0 || nl > WEIR_FIELD_NAME_MAX)
		return wr_error(-EINVAL, "field %u: name is missing or longer "
				"than %u bytes", i, WEIR_FIELD_NAME_MAX);
	if (size == 0)
		return wr_error(-EINVAL, "field '%s': unknown type %d or string "
				"length 0", f->name, (int)f->type);
	if (f->type != WEIR_FIELD_STRING && f->len != 0 && f->len != size)
		return wr_error(-EINVAL, "field '%s': len %u, but the type is %u "
				"bytes", f->name, f->len, size);
	if ((uint64_t)f->offset + size > rec_size)
		return wr_error(-EINVAL, "field '%s': bytes [%u, %llu) lie outside "
				"the %u-byte record", f->name, f->offset,
				(unsigned long long)f->offset + size, rec_size);
	return 0;
}

/* The JSON name text "name": of field i, into s->names. */
static void json_name(struct schema *s, unsigned i, const char *name)
{
	struct fmt_field *f = &s->f[i];
	struct out o = { s->names + (size_t)i * NAME_TEXT_MAX,
			 s->names + (size_t)(i + 1) * NAME_TEXT_MAX, false };

	put_json_string(&o, name, strlen(name));
	put(&o, ":", 1);
	f->name_off = (uint32_t)((size_t)i * NAME_TEXT_MAX);
	f->name_len = (uint32_t)(o.p - (s->names + f->name_off));
}

static int build(struct schema *s, char *header, size_t header_cap,
		 const struct weir_stream *in, const struct weir_field *fields,
		 unsigned nfields)
{
	struct out h = { header, header + header_cap - 1, false };

	if (in == NULL || fields == NULL || nfields == 0 ||
	    nfields > WEIR_FIELDS_MAX)
		return wr_error(-EINVAL, "format sink: stream or fields missing, "
				"or %u fields (1..%u)", nfields, WEIR_FIELDS_MAX);
	s->n = nfields;
	for (unsigned i = 0; i < nfields; i++) {
		const struct weir_field *f = &fields[i];
		int err = check_field(f, i, in->out_size);
		if (err)
			return err;
		s->f[i] = (struct fmt_field){ .type = f->type,
			.offset = f->offset, .len = type_size(f->type, f->len) };
		if (s->json) {
			json_name(s, i, f->name);
			continue;
		}
		if (i > 0)
			put(&h, ",", 1);
		put_csv_string(&h, f->name, strlen(f->name));
	}
	put(&h, "\n", 1);
	*h.p = '\0';
	return 0;
}

static int add_sink(struct weir_pipeline *p, struct weir_stream *in,
		    const char *path, const struct weir_field *fields,
		    unsigned nfields, bool json)
{
	/* A CSV header: each name quoted at worst to 2x + 2, plus commas. */
	size_t header_cap = WEIR_FIELDS_MAX * (2 * WEIR_FIELD_NAME_MAX + 3) + 2;
	struct schema *s = calloc(1, sizeof(*s));
	char *header = calloc(1, header_cap);
	int err = s && header ? 0 : -ENOMEM;

	if (err == 0) {
		s->json = json;
		err = build(s, header, header_cap, in, fields, nfields);
	}
	if (err == 0) {
		struct weir_file_sink spec = { .path = path,
			.header = json ? NULL : header, .format = format_record,
			.arg = s };
		err = wr_sink_file_copy_arg(p, in, &spec, sizeof(*s));
	}
	free(header);
	free(s);
	return err;
}

int weir_sink_csv(struct weir_pipeline *p, struct weir_stream *in,
		  const char *path, const struct weir_field *fields,
		  unsigned nfields)
{
	return add_sink(p, in, path, fields, nfields, false);
}

int weir_sink_jsonl(struct weir_pipeline *p, struct weir_stream *in,
		    const char *path, const struct weir_field *fields,
		    unsigned nfields)
{
	return add_sink(p, in, path, fields, nfields, true);
}
