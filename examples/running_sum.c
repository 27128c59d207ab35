/*
 * running_sum.c — records (key, value), keyed by key; a keyed process
 * function keeps a list state of the values seen per key and emits
 * (key, sum of the list) for every record.
 *
 *   running_sum [RECORDS [KEYS [CORES [OUT.csv]]]]   writes "key,sum" rows
 */
#include <stdio.h>
#include <stdlib.h>
#include <weir/pipeline.h>
#include <weir/state.h>

struct kv { uint64_t key; int64_t value; };

static uint64_t nkeys = 10;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33;
	return x;
}

static void make(uint64_t i, uint64_t seed, void *rec, int64_t *ts, void *arg)
{
	struct kv *r = rec;
	(void)arg;
	r->key = mix(i ^ seed) % nkeys;
	r->value = 1 + (int64_t)(mix(i + seed) % 100);
	*ts = (int64_t)i;
}

static void key_of(const void *rec, void *key, void *arg)
{
	(void)arg;
	*(uint64_t *)key = ((const struct kv *)rec)->key;
}

static int sum_values(struct weir_ctx *c, const void *rec, void *arg)
{
	struct kv out = { ((const struct kv *)rec)->key, 0 };
	const int64_t *v;
	uint32_t n;
	(void)arg;
	int err = weir_list_append(c, 0, &((const struct kv *)rec)->value);
	if (err == 0)
		err = weir_list_view(c, 0, (const void **)&v, &n);
	for (uint32_t i = 0; err == 0 && i < n; i++)
		out.value += v[i];
	return err ? err : weir_emit(c, &out);
}

int main(int argc, char **argv)
{
	static const struct weir_state_desc values = {
		.name = "values", .kind = WEIR_STATE_LIST,
		.value_size = sizeof(int64_t) };
	struct weir_process_spec spec = {
		.name = "running_sum", .process = sum_values,
		.out_size = sizeof(struct kv), .states = &values, .nstates = 1 };
	struct weir_generator gen = { .count = 1000, .seed = 42,
		.record_size = sizeof(struct kv), .make = make };
	static const struct weir_field row[] = {
		{ "key", WEIR_FIELD_U64, 0, 8 }, { "sum", WEIR_FIELD_I64, 8, 8 } };
	const char *out = "running_sum.csv";
	struct weir_pipeline_config cfg;
	struct weir_stream *src, *keyed, *sums;
	struct weir_pipeline *p;
	int err;

	weir_pipeline_config_init(&cfg);
	if (argc > 1) gen.count = strtoull(argv[1], NULL, 10);
	if (argc > 2) nkeys = strtoull(argv[2], NULL, 10);
	if (argc > 3) cfg.runtime.cores = (unsigned)atoi(argv[3]);
	if (argc > 4) out = argv[4];
	if (gen.count == 0 || nkeys == 0) {
		fprintf(stderr, "running_sum: RECORDS and KEYS must be > 0\n");
		return 2;
	}
	err = weir_pipeline_create(&cfg, &p);
	if (!err) err = weir_source_generator(p, &gen, &src);
	if (!err) err = weir_key_by(p, src, key_of, sizeof(uint64_t), NULL, &keyed);
	if (!err) err = weir_process(p, keyed, &spec, &sums);
	if (!err) err = weir_sink_csv(p, sums, out, row, 2);
	if (!err) err = weir_pipeline_run(p);
	if (err) {
		fprintf(stderr, "running_sum: %s (%d)\n", weir_last_error(), err);
		return 1;
	}
	weir_pipeline_destroy(p);
	return 0;
}
