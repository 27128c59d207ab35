/*
 * process.c — keyed process functions: building the operator, opening its
 * named state on each core, and the weir_value_* / weir_list_* calls that
 * reach the current key's state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/exec_internal.h"
#include "state/keyed.h"

#define STATES_MAX 32u

struct wr_keyed_state {
	unsigned n;
	struct wr_kstate *st[STATES_MAX];
};

static int check_desc(const struct weir_process_spec *spec,
		      const struct weir_state_desc *d, unsigned i)
{
	const char *name = d->name ? d->name : "?";

	if (d->kind < WEIR_STATE_VALUE || d->kind > WEIR_STATE_AGGREGATING)
		return wr_error(-EINVAL, "%s: state %u '%s' has unknown kind %d",
				spec->name, i, name, (int)d->kind);
	if (d->kind == WEIR_STATE_AGGREGATING) {
		if (d->agg == NULL || d->agg->acc_size == 0)
			return wr_error(-EINVAL, "%s: state '%s' needs aggregate "
					"ops with acc_size > 0", spec->name,
					name);
		return 0;
	}
	if (d->value_size == 0 || d->value_size > WEIR_RECORD_SIZE_MAX)
		return wr_error(-EINVAL, "%s: state '%s' value size %u is out "
				"of range [1, %u]", spec->name, name,
				d->value_size, WEIR_RECORD_SIZE_MAX);
	if (d->kind == WEIR_STATE_MAP &&
	    (d->map_key_size == 0 || d->map_key_size > WEIR_KEY_SIZE_MAX))
		return wr_error(-EINVAL, "%s: map state '%s' key size %u is out "
				"of range [1, %u]", spec->name, name,
				d->map_key_size, WEIR_KEY_SIZE_MAX);
	if (d->kind == WEIR_STATE_REDUCING && d->reduce == NULL)
		return wr_error(-EINVAL, "%s: reducing state '%s' has no reduce "
				"function", spec->name, name);
	return 0;
}

static int check_spec(const struct weir_stream *keyed,
		      const struct weir_process_spec *spec)
{
	if (spec == NULL || spec->process == NULL)
		return wr_error(-EINVAL, "process spec or its process() is NULL");
	if (keyed == NULL || keyed->kind != WR_NODE_KEY_BY)
		return wr_error(-EINVAL, "%s: input is not a stream returned by "
				"weir_key_by()", spec->name ? spec->name : "process");
	if (spec->out_size == 0 || spec->out_size > WEIR_RECORD_SIZE_MAX)
		return wr_error(-EINVAL, "%s: output record size %u is out of "
				"range [1, %u]", spec->name, spec->out_size,
				WEIR_RECORD_SIZE_MAX);
	if (spec->nstates > STATES_MAX || (spec->nstates && !spec->states))
		return wr_error(-EINVAL, "%s: %u states (at most %u)",
				spec->name, spec->nstates, STATES_MAX);
	for (unsigned i = 0; i < spec->nstates; i++) {
		int err = check_desc(spec, &spec->states[i], i);
		/* Then every rule of the state module (e.g. value size plus
		 * the TTL stamp), so a bad descriptor fails here and not on a
		 * worker once the job runs. */
		if (err == 0)
			err = wr_kstate_check_desc(&spec->states[i],
						   keyed->key_size);
		if (err)
			return err;
	}
	return 0;
}

int weir_process(struct weir_pipeline *p, struct weir_stream *keyed,
		 const struct weir_process_spec *spec,
		 struct weir_stream **out)
{
	struct weir_stream *n = NULL;
	int err = check_spec(keyed, spec);

	if (err)
		return err;
	err = wr_pipeline_add(p, keyed, WR_NODE_PROCESS,
			      spec->name ? spec->name : "process", &n);
	if (err)
		return err;
	n->fn.process = *spec;
	n->out_size = spec->out_size;
	n->max_out = spec->max_out ? spec->max_out : 1;
	n->arg = spec->arg;
	if (spec->nstates) {
		n->states = calloc(spec->nstates, sizeof(*n->states));
		if (n->states == NULL)
			return -ENOMEM;
		memcpy(n->states, spec->states,
		       spec->nstates * sizeof(*n->states));
		n->fn.process.states = n->states;
	}
	*out = n;
	return 0;
}

/* ---- per core ---- */

static void full_policy(const struct wr_exec *x, struct wr_kstate_options *o)
{
	o->full_policy = x->p->cfg.state_full_policy == WEIR_STATE_FULL_EVICT
				 ? WR_KSTATE_FULL_EVICT
				 : WR_KSTATE_FULL_FAIL;
}

/* n's states: created empty (img NULL) or from their checkpoint images.
 * Every state of the core shares one eviction group, so a pass at the
 * memory cap frees expired entries of all operators, not just one. */
static int open_states(struct wr_exec *x, const struct weir_stream *n,
		       struct wr_keyed_state *ks,
		       const struct wr_kstate_image *img)
{
	const struct weir_process_spec *spec = &n->fn.process;
	struct wr_kstate_options o = { 0 };

	full_policy(x, &o);
	for (unsigned i = 0; i < spec->nstates; i++) {
		const struct weir_state_desc *d = &spec->states[i];
		o.evict_group = x->evict_group;
		int err = img ? wr_kstate_load(x->arena, d, n->key_size, &o,
					       &img[i], &ks->st[i])
			      : wr_kstate_create(x->arena, d, n->key_size, &o,
						 &ks->st[i]);
		if (err)
			return err;
		if (x->evict_group == NULL)
			x->evict_group = ks->st[i];
		ks->n++;
	}
	return 0;
}

static int open_fresh(struct wr_exec *x, const struct weir_stream *n,
		      struct wr_keyed_state *ks)
{
	const struct weir_process_spec *spec = &n->fn.process;

	if (spec->on_timer != NULL) {
		int err = wr_timers_create(x->arena, n->key_size,
					   &x->nodes[n->id].timers);
		if (err)
			return err;
	}
	return open_states(x, n, ks, NULL);
}

/* Same core count restore: the states from their checkpoint headers
 * (the arena pages are already back; core/ckpt_meta.c). */
int wr_process_load(struct wr_exec *x, const struct weir_stream *n,
		    const struct wr_kstate_image *img)
{
	return open_states(x, n, x->nodes[n->id].ks, img);
}

int wr_process_open(struct wr_exec *x, const struct weir_stream *n,
		    struct wr_keyed_state **out)
{
	struct wr_keyed_state *ks = weir_worker_alloc_local(x->w, sizeof(*ks));

	if (ks == NULL)
		return -ENOMEM;
	memset(ks, 0, sizeof(*ks));
	*out = ks;
	if (x->restore_pages)
		return wr_ckpt_load_op(x, n);
	return open_fresh(x, n, ks);
}

unsigned wr_process_nstates(const struct wr_exec *x,
			    const struct weir_stream *n)
{
	return x->nodes[n->id].ks ? x->nodes[n->id].ks->n : 0;
}

unsigned wr_process_nstates_spec(const struct weir_stream *n)
{
	return n->fn.process.nstates;
}

struct wr_kstate *wr_process_state(const struct wr_exec *x,
				   const struct weir_stream *n, unsigned i)
{
	return x->nodes[n->id].ks->st[i];
}

void wr_process_prefetch(struct wr_exec *x, const struct weir_stream *n,
			 uint64_t hash)
{
	struct wr_keyed_state *ks = x->nodes[n->id].ks;

	for (unsigned i = 0; i < ks->n; i++)
		wr_kstate_prefetch(ks->st[i], hash);
}

/* Background work for every state of n: TTL cleanup, table growth. */
uint32_t wr_process_step(struct wr_exec *x, const struct weir_stream *n,
			 uint32_t budget)
{
	struct wr_keyed_state *ks = x->nodes[n->id].ks;
	uint32_t done = 0;

	for (unsigned i = 0; ks != NULL && i < ks->n; i++)
		done += wr_kstate_step(ks->st[i], x->now_ms, budget);
	return done;
}

void wr_process_close(struct wr_exec *x, struct wr_keyed_state *ks)
{
	for (unsigned i = 0; i < ks->n; i++)
		wr_kstate_destroy(ks->st[i]);
	weir_worker_free_local(x->w, ks);
}

int wr_process_record(struct wr_exec *x, const struct weir_stream *n,
		      const void *rec)
{
	return n->fn.process.process(&x->ctx, rec, n->arg);
}

/* A timer fired: run on_timer as node n with the timer's key current. */
int wr_process_timer(struct wr_exec *x, const struct weir_stream *n,
		     int domain, const struct wr_timer *t)
{
	struct weir_ctx saved = x->ctx;
	int err;

	x->ctx.node = n;
	x->ctx.ts = t->ts;
	x->ctx.key = t->key;
	x->ctx.hash = t->hash;
	x->ctx.key_group = (uint32_t)(t->hash & (x->p->cfg.key_groups - 1));
	err = n->fn.process.on_timer(&x->ctx, t->ts, domain, n->arg);
	x->ctx = saved;
	return err;
}

/* ---- timers and time for the current key ---- */

static struct wr_timers *timers_of(struct weir_ctx *c, int domain)
{
	const struct weir_stream *n = c->node;

	if (n == NULL || n->kind != WR_NODE_PROCESS || c->key == NULL ||
	    (domain != WEIR_EVENT_TIME && domain != WEIR_PROCESSING_TIME))
		return NULL;
	return c->x->nodes[n->id].timers;
}

int weir_timer_register(struct weir_ctx *c, int domain, int64_t ts_ms)
{
	struct wr_timers *t = timers_of(c, domain);

	if (t == NULL)
		return wr_error(-EINVAL, "timers need a keyed process function "
				"with on_timer, and a domain of 0 or 1");
	return wr_timers_register(t, domain, ts_ms, c->key, c->hash);
}

int weir_timer_delete(struct weir_ctx *c, int domain, int64_t ts_ms)
{
	struct wr_timers *t = timers_of(c, domain);

	if (t == NULL)
		return wr_error(-EINVAL, "timers need a keyed process function "
				"with on_timer, and a domain of 0 or 1");
	return wr_timers_delete(t, domain, ts_ms, c->key);
}

int64_t weir_ctx_watermark(const struct weir_ctx *c)
{
	const struct weir_stream *n = c->node;

	if (n == NULL || n->stage_edge < 0)
		return WEIR_TS_MIN;
	return c->x->edges[n->stage_edge].wm;
}

int64_t weir_ctx_processing_time(const struct weir_ctx *c)
{
	return c->x->now_ms;
}

/* ---- state calls for the current key ---- */

static struct wr_kstate *state_of(struct weir_ctx *c, unsigned state)
{
	const struct weir_stream *n = c->node;
	struct wr_keyed_state *ks;

	if (n == NULL || n->kind != WR_NODE_PROCESS || c->key == NULL)
		return NULL;
	ks = c->x->nodes[n->id].ks;
	return state < ks->n ? ks->st[state] : NULL;
}

static int no_state(unsigned state)
{
	return wr_error(-EINVAL, "state %u: no such state of the current "
			"keyed operator", state);
}

int weir_value_get(struct weir_ctx *c, unsigned state, void **value)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_value_get(s, c->key, c->hash, c->x->now_ms, value);
}

int weir_value_update(struct weir_ctx *c, unsigned state, void **value,
		      bool *created)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_value_update(s, c->key, c->hash, c->x->now_ms, value,
				      created);
}

int weir_list_append(struct weir_ctx *c, unsigned state, const void *elem)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_list_append(s, c->key, c->hash, c->x->now_ms, elem);
}

int weir_list_length(struct weir_ctx *c, unsigned state, uint32_t *len)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_list_length(s, c->key, c->hash, c->x->now_ms, len);
}

int weir_list_get(struct weir_ctx *c, unsigned state, uint32_t i, void *out)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_list_get(s, c->key, c->hash, c->x->now_ms, i, out);
}

int weir_list_replace(struct weir_ctx *c, unsigned state, const void *elems,
		      uint32_t n)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_list_replace(s, c->key, c->hash, c->x->now_ms, elems, n);
}

int weir_list_view(struct weir_ctx *c, unsigned state, const void **elems,
		   uint32_t *n)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_list_view(s, c->key, c->hash, c->x->now_ms, elems, n);
}

int weir_map_put(struct weir_ctx *c, unsigned state, const void *mkey,
		 const void *value)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_map_put(s, c->key, c->hash, c->x->now_ms, mkey, value);
}

int weir_map_get(struct weir_ctx *c, unsigned state, const void *mkey,
		 const void **value)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_map_get(s, c->key, c->hash, c->x->now_ms, mkey, value);
}

int weir_map_update(struct weir_ctx *c, unsigned state, const void *mkey,
		    void **value, bool *created)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_map_upsert(s, c->key, c->hash, c->x->now_ms, mkey,
				    value, created);
}

int weir_map_remove(struct weir_ctx *c, unsigned state, const void *mkey)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_map_remove(s, c->key, c->hash, c->x->now_ms, mkey);
}

int weir_map_size(struct weir_ctx *c, unsigned state, uint32_t *n)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_map_size(s, c->key, c->hash, c->x->now_ms, n);
}

int weir_map_next(struct weir_ctx *c, unsigned state,
		  struct weir_map_iter *it, const void **mkey,
		  const void **value)
{
	struct wr_kstate *s = state_of(c, state);
	struct wr_kstate_map_iter kit;
	int err;

	if (s == NULL)
		return no_state(state);
	kit.pos = it->pos;
	err = wr_kstate_map_next(s, c->key, c->hash, c->x->now_ms, &kit, mkey,
				 value);
	it->pos = kit.pos;
	return err;
}

int weir_reduce_add(struct weir_ctx *c, unsigned state, const void *in)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_reduce_add(s, c->key, c->hash, c->x->now_ms, in);
}

int weir_reduce_get(struct weir_ctx *c, unsigned state, void *out)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_reduce_get(s, c->key, c->hash, c->x->now_ms, out);
}

int weir_aggregate_add(struct weir_ctx *c, unsigned state, const void *in)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_aggregate_add(s, c->key, c->hash, c->x->now_ms, in);
}

int weir_aggregate_result(struct weir_ctx *c, unsigned state, void *out)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_aggregate_result(s, c->key, c->hash, c->x->now_ms,
					  out);
}

int weir_state_clear(struct weir_ctx *c, unsigned state)
{
	struct wr_kstate *s = state_of(c, state);

	if (s == NULL)
		return no_state(state);
	return wr_kstate_clear(s, c->key, c->hash);
}
