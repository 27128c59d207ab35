/*
 * embed.c — what an appliance builds against the installed libweir:
 * two workers (or one) each send 1000 records to every worker and count
 * what arrives.  Exit 0 when every record arrived, in order.
 */
#include <stdio.h>
#include <weir/runtime.h>

#define PER_PAIR 1000u

struct app {
	_Atomic unsigned long got[WEIR_CORES_MAX];
	unsigned long sent[WEIR_CORES_MAX][WEIR_CORES_MAX];
	unsigned long next[WEIR_CORES_MAX][WEIR_CORES_MAX];
};

static int poll_fn(struct weir_worker *w, void *arg)
{
	struct app *a = arg;
	unsigned me = weir_worker_id(w), n = weir_worker_count(w);
	unsigned long rec;
	int work = 0;

	for (unsigned to = 0; to < n; to++) {
		rec = a->sent[me][to];
		if (rec < PER_PAIR &&
		    weir_worker_send_burst_local(w, to, &rec, 1) == 1) {
			a->sent[me][to]++;
			work++;
		}
	}
	for (unsigned from = 0; from < n; from++)
		while (weir_worker_recv_burst_local(w, from, &rec, 1) == 1) {
			if (rec != a->next[from][me]++)
				return -5; /* -EIO: out of order */
			a->got[me]++;
			work++;
		}
	if (a->got[me] == (unsigned long)PER_PAIR * n)
		weir_worker_finish_local(w);
	return work;
}

int main(void)
{
	static const struct weir_worker_ops ops = { .poll = poll_fn };
	static struct app a;
	struct weir_runtime_config cfg;
	struct weir_runtime *rt;
	int err;

	weir_runtime_config_init(&cfg);
	cfg.record_size = sizeof(unsigned long);
	cfg.cores = cfg.cores > 2 ? 2 : cfg.cores;
	err = weir_runtime_create(&cfg, &rt);
	if (err == 0)
		err = weir_runtime_start(rt, &ops, &a);
	if (err == 0)
		err = weir_runtime_wait(rt);
	if (err) {
		fprintf(stderr, "embed: %d %s\n", err, weir_last_error());
		return 1;
	}
	for (unsigned i = 0; i < cfg.cores; i++)
		printf("worker %u received %lu\n", i, a.got[i]);
	weir_runtime_destroy(rt);
	return 0;
}
