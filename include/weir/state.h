/*
 * weir/state.h — named keyed state for process functions (Flink's
 * ValueState, ListState, MapState, ReducingState, AggregatingState).
 *
 * PURPOSE
 *   A keyed process function declares its state in its
 *   weir_process_spec (an array of weir_state_desc); inside process() and
 *   on_timer() it reads and writes that state *for the current key* by
 *   index.  State lives in the core's arena pages (so a checkpoint is a set
 *   of pages), in open-addressing tables keyed by the record key.
 *
 * INVARIANTS
 *   1. A call touches only the current key's entry of the named state.
 *   2. No state byte lives outside an arena page.
 *   3. An expired entry (TTL) is never returned: it reads as absent.
 *
 * POINTER LIFETIMES
 *   A pointer returned into state (weir_value_get / weir_value_update,
 *   weir_list_view, weir_map_get / _update / _iter) is valid until the
 *   callback returns or until the next state call on the same core,
 *   whichever comes first: tables move entries when they grow.  Only
 *   pointers from weir_value_update and weir_map_update may be written
 *   through (they are copy-on-write barriered); the others are read-only,
 *   and writing through them would corrupt a checkpoint in progress.
 *
 * TTL
 *   desc->ttl_ms applies to the current key's whole entry (a whole list or
 *   map), in processing time, refreshed on every write, and also on every
 *   read with WEIR_TTL_ON_READ_AND_WRITE.
 *
 * ERRORS
 *   -EINVAL: wrong state index or kind for the call; -ENOENT: no value for
 *   this key; -ENOMEM: the core's state memory cap was reached and the
 *   policy is WEIR_STATE_FULL_FAIL (weir_last_error() names the state and
 *   the cap).
 */
#ifndef WEIR_STATE_H
#define WEIR_STATE_H

#include "weir/pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

enum weir_state_kind {
	WEIR_STATE_VALUE = 1,
	WEIR_STATE_LIST = 2,
	WEIR_STATE_MAP = 3,
	WEIR_STATE_REDUCING = 4,
	WEIR_STATE_AGGREGATING = 5,
};

enum weir_ttl_update {
	WEIR_TTL_ON_CREATE_AND_WRITE = 0,
	WEIR_TTL_ON_READ_AND_WRITE = 1,
};

/* acc = reduce(acc, in): both value_size bytes. */
typedef void (*weir_reduce_fn)(void *acc, const void *in, void *arg);

struct weir_aggregate_ops {
	void (*create)(void *acc, void *arg);                 /* acc_size */
	void (*add)(void *acc, const void *in, void *arg);    /* in_size */
	void (*merge)(void *acc, const void *other, void *arg);
	void (*result)(const void *acc, void *out, void *arg); /* out_size */
	uint32_t acc_size, in_size, out_size;
};

struct weir_state_desc {
	const char *name;
	enum weir_state_kind kind;
	uint32_t value_size;   /* VALUE, LIST element, MAP value, REDUCING */
	uint32_t map_key_size; /* MAP only */
	uint64_t ttl_ms;       /* 0 = no TTL (processing time) */
	enum weir_ttl_update ttl_update;
	weir_reduce_fn reduce;                /* REDUCING */
	const struct weir_aggregate_ops *agg; /* AGGREGATING */
	void *arg;
};

/* VALUE: pointer to the current key's value, or -ENOENT. */
int weir_value_get(struct weir_ctx *c, unsigned state, void **value);
/* VALUE: pointer for in-place update; created zero-filled if absent
 * (*created = true then; created may be NULL). */
int weir_value_update(struct weir_ctx *c, unsigned state, void **value,
		      bool *created);

/* LIST */
int weir_list_append(struct weir_ctx *c, unsigned state, const void *elem);
/* Number of elements, 0 if none. */
int weir_list_length(struct weir_ctx *c, unsigned state, uint32_t *len);
/* Copy element i (0-based) to out. */
int weir_list_get(struct weir_ctx *c, unsigned state, uint32_t i, void *out);
/* Replace the whole list with n elements (n = 0 clears it). */
int weir_list_replace(struct weir_ctx *c, unsigned state, const void *elems,
		      uint32_t n);

/* The elements as one contiguous read-only array (n = 0, NULL if none):
 * iterate without copying. */
int weir_list_view(struct weir_ctx *c, unsigned state, const void **elems,
		   uint32_t *n);

/* MAP: map_key_size-byte keys to value_size-byte values, per record key. */
int weir_map_put(struct weir_ctx *c, unsigned state, const void *mkey,
		 const void *value);
/* Read-only pointer to mkey's value, or -ENOENT. */
int weir_map_get(struct weir_ctx *c, unsigned state, const void *mkey,
		 const void **value);
/* Writable pointer to mkey's value, created zero-filled if absent. */
int weir_map_update(struct weir_ctx *c, unsigned state, const void *mkey,
		    void **value, bool *created);
/* 0, or -ENOENT if mkey is absent. */
int weir_map_remove(struct weir_ctx *c, unsigned state, const void *mkey);
/* Entries under the current key, 0 if none. */
int weir_map_size(struct weir_ctx *c, unsigned state, uint32_t *n);

/* Iteration under the current key, in no particular order:
 *   struct weir_map_iter it = WEIR_MAP_ITER_INIT;
 *   while (weir_map_next(c, st, &it, &k, &v) == 0) ...
 * -ENOENT at the end.  Do not write this state while iterating. */
struct weir_map_iter {
	uint64_t pos;
};
#define WEIR_MAP_ITER_INIT { 0 }
int weir_map_next(struct weir_ctx *c, unsigned state,
		  struct weir_map_iter *it, const void **mkey,
		  const void **value);

/* REDUCING: the first value is kept as is, later ones folded in with
 * desc->reduce; get copies the value_size-byte result out or -ENOENT. */
int weir_reduce_add(struct weir_ctx *c, unsigned state, const void *in);
int weir_reduce_get(struct weir_ctx *c, unsigned state, void *out);

/* AGGREGATING: acc = agg->create() when absent, then agg->add(acc, in);
 * result writes agg->out_size bytes through agg->result, or -ENOENT. */
int weir_aggregate_add(struct weir_ctx *c, unsigned state, const void *in);
int weir_aggregate_result(struct weir_ctx *c, unsigned state, void *out);

/* Any kind: remove the current key's entry. */
int weir_state_clear(struct weir_ctx *c, unsigned state);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_STATE_H */
