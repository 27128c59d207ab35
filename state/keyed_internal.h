/*
 * state/keyed_internal.h — shared by keyed.c (entries, TTL, the cap policy,
 * value / reducing / aggregating) and keyed_coll.c (list and map).  Only
 * files in state/ include it.
 *
 * An entry is the table value of one key: [int64 ts_ms if TTL][payload].
 * The helpers below keep the two rules of keyed.h: every write is touched
 * first, and an expired entry is never handed out.
 */
#ifndef WR_STATE_KEYED_INTERNAL_H
#define WR_STATE_KEYED_INTERNAL_H

#include <string.h>

#include "state/keyed.h"
#include "state/slab.h"
#include "state/table.h"

#define WR_KSTATE_NAME_MAX 48u

/* LIST payload; MAP payload has the same shape (count, cap, ref). */
struct wr_coll_hdr {
	uint32_t len;	/* elements / map entries */
	uint32_t cap;	/* elements / map slots; 0 = no block */
	uint64_t ref;	/* slab block of cap * elem bytes */
};

struct wr_kstate {
	struct wr_arena *arena;
	struct wr_table *table;
	struct wr_slab slab;
	struct weir_state_desc d;	/* name points at name[] */
	char name[WR_KSTATE_NAME_MAX];
	uint32_t key_size;
	uint32_t hdr;		/* 8 with a TTL, else 0 */
	uint32_t payload;	/* bytes after hdr */
	uint32_t elem;		/* LIST element / MAP slot bytes */
	uint32_t mval_off;	/* MAP: value offset in a slot */
	enum wr_kstate_full_policy policy;
	struct wr_kstate *grp_next, *grp_prev; /* eviction group ring */
	struct wr_table_iter cursor;	/* TTL cleanup position */
	uint64_t expired_removed, evicted, eviction_passes, cap_failures;
};

static inline uint8_t *wr_entry_payload(const struct wr_kstate *s,
					const void *v)
{
	return (uint8_t *)v + s->hdr;
}

static inline bool wr_entry_live(const struct wr_kstate *s, const void *v,
				 int64_t now_ms)
{
	int64_t ts;

	if (!s->hdr)
		return true;
	memcpy(&ts, v, sizeof(ts));
	return now_ms - ts < (int64_t)s->d.ttl_ms;
}

/* Records a write (or a read, under ON_READ_AND_WRITE): v is touched. */
static inline void wr_entry_stamp(const struct wr_kstate *s, void *v,
				  int64_t now_ms)
{
	if (s->hdr)
		memcpy(v, &now_ms, sizeof(now_ms));
}

/* One write of a state call, run again after an eviction pass. */
typedef int (*wr_kstate_op)(struct wr_kstate *s, int64_t now_ms, void *args);
/* Runs op; at the cap (-ENOMEM) applies the policy: FAIL, or EVICT (an
 * eviction pass over the group, then op once more).  The final -ENOMEM
 * carries the message naming the state and the cap. */
int wr_kstate_run(struct wr_kstate *s, int64_t now_ms, wr_kstate_op op,
		  void *args);
/* -EINVAL with a message unless s is of kind k. */
int wr_kstate_check_kind(const struct wr_kstate *s, enum weir_state_kind k);
/* The key's live entry for a read, stamped if reads count for the TTL. */
uint8_t *wr_entry_read(struct wr_kstate *s, const void *key, uint64_t hash,
		       int64_t now_ms);
/* The key's live entry, touched for a write; -ENOENT if none. */
int wr_entry_write_existing(struct wr_kstate *s, const void *key,
			    uint64_t hash, int64_t now_ms, uint8_t **v);
/* The key's entry for a write, created or restarted (expired: its data
 * freed and payload zeroed) when *fresh.  Not stamped yet. */
int wr_entry_write(struct wr_kstate *s, const void *key, uint64_t hash,
		   int64_t now_ms, uint8_t **v, bool *fresh);
/* Frees the entry's slab block and removes the key; v is touched. */
void wr_entry_drop(struct wr_kstate *s, const void *key, uint64_t hash,
		   uint8_t *v);
/* Frees the slab block a LIST / MAP payload references. */
void wr_coll_free(struct wr_kstate *s, struct wr_coll_hdr *h);
/* wr_kstate_create without the table and without joining the group. */
int wr_kstate_alloc(struct wr_arena *a, const struct weir_state_desc *d,
		    uint32_t key_size, const struct wr_kstate_options *opts,
		    struct wr_kstate **out);
void wr_kstate_join(struct wr_kstate *s, const struct wr_kstate_options *o);
/* Invariant 3 of keyed.h for one entry; adds its block bytes to *bytes. */
bool wr_coll_is_valid(const struct wr_kstate *s, const void *payload,
		      uint64_t *bytes);

#endif
