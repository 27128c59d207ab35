/*
 * state/keyed.c — keyed state: entries, TTL, the memory-cap policy, value,
 * reducing and aggregating kinds, background steps, the validator.
 * Lists and maps are in keyed_coll.c.
 *
 * Every mutating call is an "op" run through wr_kstate_run(): an op either
 * succeeds or leaves the state as it was (a fresh entry it created is
 * dropped again), so the EVICT policy can evict and simply run it again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "state/keyed_internal.h"

static const char *kind_name(enum weir_state_kind k)
{
	static const char *const names[] = { "?", "value", "list", "map",
					     "reducing", "aggregating" };

	return k >= WEIR_STATE_VALUE && k <= WEIR_STATE_AGGREGATING ?
		       names[k] : names[0];
}

int wr_kstate_check_kind(const struct wr_kstate *s, enum weir_state_kind k)
{
	if (WEIR_LIKELY(s->d.kind == k))
		return 0;
	return wr_error(-EINVAL, "state '%s' is a %s state, not a %s state",
			s->name, kind_name(s->d.kind), kind_name(k));
}

/* ---- creation ---- */

static int check_sizes(const struct weir_state_desc *d, const char *name)
{
	uint32_t vs = d->kind == WEIR_STATE_AGGREGATING ? d->agg->acc_size :
							  d->value_size;

	if (vs == 0 || vs > WEIR_RECORD_SIZE_MAX)
		return wr_error(-EINVAL, "state '%s': %s size %u is out of "
				"range [1, %u]", name,
				d->kind == WEIR_STATE_AGGREGATING ? "accumulator" :
								    "value",
				vs, WEIR_RECORD_SIZE_MAX);
	if (d->kind == WEIR_STATE_MAP &&
	    (d->map_key_size == 0 || d->map_key_size > WEIR_KEY_SIZE_MAX))
		return wr_error(-EINVAL, "state '%s': map key size %u is out of "
				"range [1, %u]", name, d->map_key_size,
				WEIR_KEY_SIZE_MAX);
	if ((d->ttl_ms ? 8 : 0) + (uint64_t)vs > WR_TABLE_VALUE_SIZE_MAX &&
	    d->kind != WEIR_STATE_LIST && d->kind != WEIR_STATE_MAP)
		return wr_error(-EINVAL, "state '%s': value size %u plus the "
				"8-byte TTL stamp exceeds %u", name, vs,
				WR_TABLE_VALUE_SIZE_MAX);
	return 0;
}

int wr_kstate_check_desc(const struct weir_state_desc *d, uint32_t key_size)
{
	const char *name = d->name ? d->name : "?";

	if (d->kind < WEIR_STATE_VALUE || d->kind > WEIR_STATE_AGGREGATING)
		return wr_error(-EINVAL, "state '%s' has unknown kind %d", name,
				(int)d->kind);
	if (key_size == 0 || key_size > WR_TABLE_KEY_SIZE_MAX)
		return wr_error(-EINVAL, "state '%s': key size %u is out of "
				"range [1, %u]", name, key_size,
				WR_TABLE_KEY_SIZE_MAX);
	if (d->kind == WEIR_STATE_REDUCING && d->reduce == NULL)
		return wr_error(-EINVAL, "reducing state '%s' has no reduce "
				"function", name);
	if (d->kind == WEIR_STATE_AGGREGATING &&
	    (d->agg == NULL || !d->agg->add || !d->agg->result ||
	     d->agg->out_size == 0))
		return wr_error(-EINVAL, "aggregating state '%s' needs ops with "
				"add, result and out_size > 0", name);
	if (d->ttl_update != WEIR_TTL_ON_CREATE_AND_WRITE &&
	    d->ttl_update != WEIR_TTL_ON_READ_AND_WRITE)
		return wr_error(-EINVAL, "state '%s' has unknown TTL update "
				"mode %d", name, (int)d->ttl_update);
	if (d->ttl_ms > (uint64_t)INT64_MAX / 2)
		return wr_error(-EINVAL, "state '%s': TTL of %llu ms is out of "
				"range", name, (unsigned long long)d->ttl_ms);
	return check_sizes(d, name);
}

static int check_opts(const struct wr_kstate_options *o, struct wr_arena *a)
{
	if (o->full_policy != WR_KSTATE_FULL_FAIL &&
	    o->full_policy != WR_KSTATE_FULL_EVICT)
		return wr_error(-EINVAL, "unknown memory-cap policy %d",
				(int)o->full_policy);
	if (o->evict_group && o->evict_group->arena != a)
		return wr_error(-EINVAL, "eviction group of state '%s' is on "
				"another arena", o->evict_group->name);
	return 0;
}

static void layout(struct wr_kstate *s)
{
	const struct weir_state_desc *d = &s->d;
	uint32_t mk = (d->map_key_size + 7) & ~7u;

	s->hdr = d->ttl_ms ? 8 : 0;
	switch (d->kind) {
	case WEIR_STATE_LIST:
		s->payload = sizeof(struct wr_coll_hdr);
		s->elem = d->value_size;
		break;
	case WEIR_STATE_MAP:
		s->payload = sizeof(struct wr_coll_hdr);
		s->mval_off = 8 + mk;
		s->elem = s->mval_off + ((d->value_size + 7) & ~7u);
		break;
	case WEIR_STATE_AGGREGATING:
		s->payload = d->agg->acc_size;
		break;
	default:
		s->payload = d->value_size;
	}
}

static void group_join(struct wr_kstate *s, struct wr_kstate *g)
{
	s->grp_next = s->grp_prev = s;
	if (!g)
		return;
	s->grp_next = g->grp_next;
	s->grp_prev = g;
	g->grp_next->grp_prev = s;
	g->grp_next = s;
}

int wr_kstate_alloc(struct wr_arena *a, const struct weir_state_desc *d,
		    uint32_t key_size, const struct wr_kstate_options *opts,
		    struct wr_kstate **out)
{
	static const struct wr_kstate_options defaults;
	struct wr_kstate *s;
	int err;

	if (!a || !d || !out)
		return wr_error(-EINVAL, "wr_kstate_create: NULL argument");
	opts = opts ? opts : &defaults;
	if ((err = wr_kstate_check_desc(d, key_size)) ||
	    (err = check_opts(opts, a)))
		return err;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->arena = a;
	s->d = *d;
	snprintf(s->name, sizeof(s->name), "%s", d->name ? d->name : "?");
	s->d.name = s->name;
	s->key_size = key_size;
	s->policy = opts->full_policy;
	layout(s);
	wr_slab_init(&s->slab, a);
	s->grp_next = s->grp_prev = s;
	*out = s;
	return 0;
}

void wr_kstate_join(struct wr_kstate *s, const struct wr_kstate_options *o)
{
	group_join(s, o ? o->evict_group : NULL);
}

int wr_kstate_create(struct wr_arena *a, const struct weir_state_desc *d,
		     uint32_t key_size, const struct wr_kstate_options *opts,
		     struct wr_kstate **out)
{
	struct wr_table_config tc = { key_size, 0, 0 };
	struct wr_kstate *s;
	int err = wr_kstate_alloc(a, d, key_size, opts, &s);

	if (err)
		return err;
	tc.value_size = s->hdr + s->payload;
	err = wr_table_create(a, &tc, &s->table);
	if (err) {
		free(s);
		return err == -ENOMEM ?
			wr_error(err, "state '%s' reached the memory cap of %zu "
				 "bytes per core", d->name ? d->name : "?",
				 a->cap_bytes) : err;
	}
	wr_kstate_join(s, opts);
	*out = s;
	return 0;
}

static void free_all_blocks(struct wr_kstate *s)
{
	struct wr_table_iter it = { 0 };
	const void *k;
	void *v;

	if (s->d.kind != WEIR_STATE_LIST && s->d.kind != WEIR_STATE_MAP)
		return;
	while (wr_table_next(s->table, &it, &k, &v))
		wr_coll_free(s, (struct wr_coll_hdr *)wr_entry_payload(s, v));
}

void wr_kstate_destroy(struct wr_kstate *s)
{
	if (!s)
		return;
	free_all_blocks(s);
	s->grp_prev->grp_next = s->grp_next;
	s->grp_next->grp_prev = s->grp_prev;
	wr_table_destroy(s->table);
	free(s);
}

/* ---- entries ---- */

uint8_t *wr_entry_read(struct wr_kstate *s, const void *key, uint64_t hash,
		       int64_t now_ms)
{
	uint8_t *v = (uint8_t *)wr_table_get(s->table, key, hash);

	if (!v || !wr_entry_live(s, v, now_ms))
		return NULL;
	/* A refresh that cannot get its COW page is skipped: the entry just
	 * keeps its older stamp. */
	if (s->hdr && s->d.ttl_update == WEIR_TTL_ON_READ_AND_WRITE &&
	    wr_slab_touch(s->arena, v, 8) == 0)
		wr_entry_stamp(s, v, now_ms);
	return v;
}

int wr_entry_write_existing(struct wr_kstate *s, const void *key,
			    uint64_t hash, int64_t now_ms, uint8_t **v)
{
	uint8_t *e = (uint8_t *)wr_table_get(s->table, key, hash);

	if (!e || !wr_entry_live(s, e, now_ms))
		return -ENOENT;
	*v = e;
	return wr_slab_touch(s->arena, e, s->hdr + s->payload);
}

void wr_coll_free(struct wr_kstate *s, struct wr_coll_hdr *h)
{
	if (h->cap)
		wr_slab_free(&s->slab, h->ref, (uint64_t)h->cap * s->elem);
	h->cap = 0;
	h->len = 0;
}

static void free_data(struct wr_kstate *s, uint8_t *v)
{
	if (s->d.kind == WEIR_STATE_LIST || s->d.kind == WEIR_STATE_MAP)
		wr_coll_free(s, (struct wr_coll_hdr *)wr_entry_payload(s, v));
}

int wr_entry_write(struct wr_kstate *s, const void *key, uint64_t hash,
		   int64_t now_ms, uint8_t **v, bool *fresh)
{
	void *p;
	int err = wr_table_upsert(s->table, key, hash, &p, fresh);

	if (err)
		return err;
	if (!*fresh && !wr_entry_live(s, p, now_ms)) {
		free_data(s, p);
		memset(p, 0, s->hdr + s->payload);
		*fresh = true;
	}
	*v = p;
	return 0;
}

void wr_entry_drop(struct wr_kstate *s, const void *key, uint64_t hash,
		   uint8_t *v)
{
	free_data(s, v);
	/* Cannot fail: the slot is touched (here, or by a migration move
	 * that put it in the new array, which touches too). */
	wr_table_remove(s->table, key, hash);
}

/* ---- expiry, eviction, the cap policy ---- */

/* Removes the entry v of the key at k if it has expired: 1 if removed. */
static int remove_if_expired(struct wr_kstate *s, const void *k, void *v,
			     int64_t now_ms)
{
	uint8_t key[WR_TABLE_KEY_SIZE_MAX];

	if (wr_entry_live(s, v, now_ms) ||
	    wr_slab_touch(s->arena, v, s->hdr + s->payload))
		return 0;
	memcpy(key, k, s->key_size); /* the slot goes away under k */
	wr_entry_drop(s, key, wr_table_hash(key, s->key_size), v);
	return 1;
}

/*
 * One state's part of an eviction pass: finishes a pending resize (so
 * removals move nothing under the sweep), then sweeps the whole table.
 * O(entries + slots): this runs only when the cap is reached.
 */
static uint64_t evict_state(struct wr_kstate *s, int64_t now_ms)
{
	struct wr_table_iter it = { 0 };
	uint64_t n = 0;
	const void *k;
	void *v;

	if (!s->hdr)
		return 0;
	while (wr_table_step(s->table, 1u << 20))
		;
	while (wr_table_next(s->table, &it, &k, &v))
		n += (uint64_t)remove_if_expired(s, k, v, now_ms);
	s->cursor.pos = 0;
	return n;
}

static uint64_t evict_group(struct wr_kstate *s, int64_t now_ms)
{
	uint64_t total = 0;
	struct wr_kstate *g = s;

	s->eviction_passes++;
	do {
		uint64_t n = evict_state(g, now_ms);
		g->evicted += n;
		total += n;
		g = g->grp_next;
	} while (g != s);
	return total;
}

int wr_kstate_run(struct wr_kstate *s, int64_t now_ms, wr_kstate_op op,
		  void *args)
{
	int err = op(s, now_ms, args);

	if (WEIR_LIKELY(err != -ENOMEM))
		return err;
	if (s->policy == WR_KSTATE_FULL_EVICT && evict_group(s, now_ms) > 0)
		err = op(s, now_ms, args);
	if (err != -ENOMEM)
		return err;
	s->cap_failures++;
	return wr_error(-ENOMEM, "state '%s' reached the memory cap of %zu "
			"bytes per core", s->name, s->arena->cap_bytes);
}

/* ---- VALUE, REDUCING, AGGREGATING ---- */

int wr_kstate_value_get(struct wr_kstate *s, const void *key, uint64_t hash,
			int64_t now_ms, void **value)
{
	uint8_t *v;
	int err = wr_kstate_check_kind(s, WEIR_STATE_VALUE);

	if (err)
		return err;
	v = wr_entry_read(s, key, hash, now_ms);
	if (!v)
		return -ENOENT;
	*value = wr_entry_payload(s, v);
	return 0;
}

struct fixed_args {
	const void *key;
	uint64_t hash;
	const void *in;	/* REDUCING / AGGREGATING input */
	void **value;	/* VALUE: out */
	bool *created;
};

/* VALUE update, REDUCING add and AGGREGATING add: one upsert each. */
static int fixed_op(struct wr_kstate *s, int64_t now_ms, void *args)
{
	struct fixed_args *a = args;
	const struct weir_state_desc *d = &s->d;
	uint8_t *v, *p;
	bool fresh;
	int err = wr_entry_write(s, a->key, a->hash, now_ms, &v, &fresh);

	if (err)
		return err;
	p = wr_entry_payload(s, v);
	if (d->kind == WEIR_STATE_VALUE) {
		*a->value = p;
		if (a->created)
			*a->created = fresh;
	} else if (d->kind == WEIR_STATE_REDUCING) {
		if (fresh)
			memcpy(p, a->in, d->value_size);
		else
			d->reduce(p, a->in, d->arg);
	} else {
		if (fresh && d->agg->create)
			d->agg->create(p, d->arg);
		d->agg->add(p, a->in, d->arg);
	}
	wr_entry_stamp(s, v, now_ms);
	return 0;
}

int wr_kstate_value_update(struct wr_kstate *s, const void *key,
			   uint64_t hash, int64_t now_ms, void **value,
			   bool *created)
{
	struct fixed_args a = { key, hash, NULL, value, created };
	int err = wr_kstate_check_kind(s, WEIR_STATE_VALUE);

	return err ? err : wr_kstate_run(s, now_ms, fixed_op, &a);
}

int wr_kstate_reduce_add(struct wr_kstate *s, const void *key, uint64_t hash,
			 int64_t now_ms, const void *in)
{
	struct fixed_args a = { key, hash, in, NULL, NULL };
	int err = wr_kstate_check_kind(s, WEIR_STATE_REDUCING);

	return err ? err : wr_kstate_run(s, now_ms, fixed_op, &a);
}

int wr_kstate_reduce_get(struct wr_kstate *s, const void *key, uint64_t hash,
			 int64_t now_ms, void *out)
{
	uint8_t *v;
	int err = wr_kstate_check_kind(s, WEIR_STATE_REDUCING);

	if (err)
		return err;
	v = wr_entry_read(s, key, hash, now_ms);
	if (!v)
		return -ENOENT;
	memcpy(out, wr_entry_payload(s, v), s->d.value_size);
	return 0;
}

int wr_kstate_aggregate_add(struct wr_kstate *s, const void *key,
			    uint64_t hash, int64_t now_ms, const void *in)
{
	struct fixed_args a = { key, hash, in, NULL, NULL };
	int err = wr_kstate_check_kind(s, WEIR_STATE_AGGREGATING);

	return err ? err : wr_kstate_run(s, now_ms, fixed_op, &a);
}

int wr_kstate_aggregate_result(struct wr_kstate *s, const void *key,
			       uint64_t hash, int64_t now_ms, void *out)
{
	uint8_t *v;
	int err = wr_kstate_check_kind(s, WEIR_STATE_AGGREGATING);

	if (err)
		return err;
	v = wr_entry_read(s, key, hash, now_ms);
	if (!v)
		return -ENOENT;
	s->d.agg->result(wr_entry_payload(s, v), out, s->d.arg);
	return 0;
}

/* ---- any kind ---- */

struct clear_args {
	const void *key;
	uint64_t hash;
};

static int clear_op(struct wr_kstate *s, int64_t now_ms, void *args)
{
	struct clear_args *a = args;
	uint8_t *v = (uint8_t *)wr_table_get(s->table, a->key, a->hash);
	int err;

	(void)now_ms;
	if (!v)
		return 0;
	/* Touch before freeing anything: the removal then cannot fail. */
	err = wr_slab_touch(s->arena, v, s->hdr + s->payload);
	if (err)
		return err;
	wr_entry_drop(s, a->key, a->hash, v);
	return 0;
}

int wr_kstate_clear(struct wr_kstate *s, const void *key, uint64_t hash)
{
	struct clear_args a = { key, hash };

	/* now = INT64_MIN: an eviction pass at the cap then evicts nothing
	 * newer than the epoch, i.e. nothing; clear only frees anyway. */
	return wr_kstate_run(s, INT64_MIN / 2, clear_op, &a);
}

/* ---- background work ---- */

uint32_t wr_kstate_step(struct wr_kstate *s, int64_t now_ms, uint32_t budget)
{
	uint32_t moved = wr_table_step(s->table, budget), seen = 0;
	const void *k;
	void *v;

	if (moved) {
		/* Resizing: slots move, so the cursor means nothing now, and
		 * the budget went to the resize. */
		s->cursor.pos = 0;
		return moved;
	}
	if (!s->hdr)
		return 0;
	while (seen < budget && wr_table_next(s->table, &s->cursor, &k, &v)) {
		seen++;
		s->expired_removed +=
			(uint64_t)remove_if_expired(s, k, v, now_ms);
	}
	if (seen < budget)
		s->cursor.pos = 0; /* swept to the end: start over next time */
	return seen;
}

uint64_t wr_kstate_count(const struct wr_kstate *s)
{
	return wr_table_count(s->table);
}

const char *wr_kstate_name(const struct wr_kstate *s)
{
	return s->name;
}

void wr_kstate_get_stats(const struct wr_kstate *s,
			 struct wr_kstate_stats *st)
{
	struct wr_table_stats ts;

	wr_table_get_stats(s->table, &ts);
	*st = (struct wr_kstate_stats){
		.entries = ts.count,
		.expired_removed = s->expired_removed,
		.evicted = s->evicted,
		.eviction_passes = s->eviction_passes,
		.cap_failures = s->cap_failures,
		.slab_bytes = s->slab.bytes_live,
		.slab_leaked_bytes = s->slab.leaked_bytes,
		.table_slots_moved = ts.slots_moved,
	};
}

bool wr_kstate_is_valid(const struct wr_kstate *s)
{
	struct wr_table_iter it = { 0 };
	uint64_t bytes = 0, n = 0;
	const void *k;
	void *v;

	if (!wr_table_is_valid(s->table))
		return false;
	while (wr_table_next(s->table, &it, &k, &v)) {
		n++;
		if ((s->d.kind == WEIR_STATE_LIST ||
		     s->d.kind == WEIR_STATE_MAP) &&
		    !wr_coll_is_valid(s, wr_entry_payload(s, v), &bytes))
			return false;
	}
	return n == wr_table_count(s->table) &&
	       bytes == s->slab.bytes_live &&
	       s->grp_next->grp_prev == s && s->grp_prev->grp_next == s;
}

void wr_kstate_prefetch(const struct wr_kstate *s, uint64_t hash)
{
	wr_table_prefetch(s->table, hash);
}
