/*
 * pipeline_bench.c — keyed value-state updates through the whole engine:
 * generator -> key_by -> keyed process (8-byte counter += 1), on 1 and 2
 * cores, uniform keys.  Reports records/s overall and per core as JSON
 * lines.  The table-level comparison with RocksDB and rte_hash is
 * state_bench; this one shows what the pipeline (envelopes, rings,
 * dispatch) adds on top.
 *
 *   pipeline_bench [--records N] [--keys K] [--cores C] [--quick]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weir/pipeline.h"
#include "weir/state.h"

static uint64_t nkeys = 1000000;

static void make(uint64_t i, uint64_t seed, void *rec, int64_t *ts, void *arg)
{
	uint64_t x = (i + seed) * 0x9e3779b97f4a7c15ull;

	(void)arg;
	x ^= x >> 29;
	x %= nkeys;
	memcpy(rec, &x, 8);
	*ts = 0;
}

static void key_of(const void *rec, void *key, void *arg)
{
	(void)arg;
	memcpy(key, rec, 8);
}

static int count(struct weir_ctx *c, const void *rec, void *arg)
{
	uint64_t *v;
	int err = weir_value_update(c, 0, (void **)&v, NULL);

	(void)rec;
	(void)arg;
	if (err == 0)
		(*v)++;
	return err;
}

static double run(unsigned cores, uint64_t records)
{
	static const struct weir_state_desc st = { .name = "count",
		.kind = WEIR_STATE_VALUE, .value_size = 8 };
	struct weir_process_spec spec = { .name = "count", .process = count,
		.out_size = 8, .states = &st, .nstates = 1 };
	struct weir_generator g = { .count = records, .seed = 1,
		.record_size = 8, .make = make };
	struct weir_pipeline_config cfg;
	struct weir_pipeline *p;
	struct weir_stream *s, *k, *o;
	struct timespec a, b;

	weir_pipeline_config_init(&cfg);
	cfg.runtime.cores = cores;
	cfg.runtime.idle = WEIR_IDLE_BUSY_POLL;
	if (weir_pipeline_create(&cfg, &p) || weir_source_generator(p, &g, &s) ||
	    weir_key_by(p, s, key_of, 8, NULL, &k) ||
	    weir_process(p, k, &spec, &o)) {
		fprintf(stderr, "pipeline_bench: %s\n", weir_last_error());
		exit(1);
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (weir_pipeline_run(p) != 0) {
		fprintf(stderr, "pipeline_bench: %s\n", weir_last_error());
		exit(1);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	weir_pipeline_destroy(p);
	return records / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9);
}

int main(int argc, char **argv)
{
	uint64_t records = 20000000;
	unsigned max_cores = 2;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			records = 1000000;
			nkeys = 100000;
		} else if (!strcmp(argv[i], "--records") && i + 1 < argc) {
			records = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
			nkeys = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--cores") && i + 1 < argc) {
			max_cores = (unsigned)atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: pipeline_bench [--records N] "
				"[--keys K] [--cores C] [--quick]\n");
			return 2;
		}
	}
	if (records == 0 || nkeys == 0 || max_cores == 0) {
		fprintf(stderr, "pipeline_bench: records, keys and cores must be > 0\n");
		return 2;
	}
	for (unsigned c = 1; c <= max_cores; c++) {
		double rate = run(c, records);
		printf("{\"bench\":\"pipeline\",\"case\":\"%llukeys/uniform/%ucores\","
		       "\"metric\":\"updates_per_s\",\"value\":%.0f,\"unit\":"
		       "\"updates/s\",\"per_core\":%.0f}\n",
		       (unsigned long long)nkeys, c, rate, rate / c);
		fflush(stdout);
	}
	return 0;
}
