/*
 * stateful_sink.c — an unbounded generator (1 record/ms by default) into a
 * keyed sink that updates a per-key value state (count, sum) on every
 * record, checkpointed every second into DIR.  Run it again after a crash
 * or Ctrl-C: it resumes from the newest checkpoint, and FILE (key,count,sum
 * per update) holds every row exactly once.
 *   stateful_sink [--rate PER_S] [--records N] [--keys K] [--out FILE]
 *                 [--checkpoint-dir DIR (default stateful_sink.ckpt)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weir/checkpoint.h>
#include <weir/pipeline.h>
#include <weir/state.h>

struct event { uint64_t key; int64_t amount; };
struct totals { uint64_t count; int64_t sum; };
struct row { uint64_t key; struct totals t; };

static uint64_t nkeys = 100;

static void make(uint64_t i, uint64_t seed, void *rec, int64_t *ts, void *arg)
{
	struct event *e = rec;
	(void)arg;
	e->key = (i * 0x9e3779b97f4a7c15ull ^ seed) % nkeys;
	e->amount = (int64_t)(i % 10);
	*ts = (int64_t)i;
}

static void key_of(const void *rec, void *key, void *arg)
{
	(void)arg;
	memcpy(key, &((const struct event *)rec)->key, sizeof(uint64_t));
}

static int update(struct weir_ctx *c, const void *rec, void *arg)
{
	const struct event *e = rec;
	struct totals *t;
	(void)arg;
	int err = weir_value_update(c, 0, (void **)&t, NULL);
	if (err)
		return err;
	t->count++, t->sum += e->amount;
	return weir_emit(c, &(struct row){ e->key, *t });
}

int main(int argc, char **argv)
{
	static const struct weir_state_desc totals = { .name = "totals",
		.kind = WEIR_STATE_VALUE, .value_size = sizeof(struct totals) };
	struct weir_process_spec spec = { .name = "stateful_sink",
		.process = update, .out_size = sizeof(struct row), .states = &totals, .nstates = 1 };
	struct weir_generator gen = { .rate = 1000, .seed = 1,
		.record_size = sizeof(struct event), .make = make };
	static const struct weir_field row[] = { { "key", WEIR_FIELD_U64, 0, 8 },
		{ "count", WEIR_FIELD_U64, 8, 8 }, { "sum", WEIR_FIELD_I64, 16, 8 } };
	const char *out_path = NULL, *dir = "stateful_sink.ckpt";
	struct weir_pipeline_config cfg;
	struct weir_checkpoint_config ck;	/* every second by default */
	struct weir_stream *src, *keyed, *out;
	struct weir_pipeline *p;
	int err, i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rate")) gen.rate = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--records")) gen.count = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--keys")) nkeys = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--out")) out_path = argv[i + 1];
		else if (!strcmp(argv[i], "--checkpoint-dir")) dir = argv[i + 1];
		else break;
	}
	if (i < argc || nkeys == 0) { fprintf(stderr, "stateful_sink: bad option %s\n", argv[i < argc ? i : 0]); return 2; }
	weir_pipeline_config_init(&cfg);
	cfg.runtime.handle_signals = true;
	weir_checkpoint_config_init(&ck, dir);
	ck.params = &nkeys, ck.params_len = sizeof(nkeys);
	err = weir_pipeline_create(&cfg, &p);
	if (!err) err = weir_source_generator(p, &gen, &src);
	if (!err) err = weir_key_by(p, src, key_of, sizeof(uint64_t), NULL, &keyed);
	if (!err) err = weir_process(p, keyed, &spec, &out);
	if (!err && out_path) err = weir_sink_csv(p, out, out_path, row, 3);
	if (!err) err = weir_pipeline_checkpoint(p, &ck);
	if (!err) err = weir_pipeline_run(p);
	if (err)
		fprintf(stderr, "stateful_sink: %s (%d)\n", weir_last_error(), err);
	weir_pipeline_destroy(p);
	return err ? 1 : 0;
}
