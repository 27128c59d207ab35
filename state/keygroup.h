/*
 * state/keygroup.h — key groups: the unit in which keyed state is sharded
 * across workers and redistributed on restore.
 *
 *   kg = hash % key_groups       (key_groups a power of two, default 4096)
 *
 * Worker i of n owns the contiguous range [first, first + count) of key
 * groups, the ranges of workers 0..n-1 tiling [0, key_groups) in order and
 * differing in size by at most one.  key_groups is fixed for the lifetime of a
 * checkpoint lineage; restoring onto a different n re-inserts each entry into
 * the worker that owns its key group.
 *
 * The key group takes the LOW bits of the XXH3 hash; tables index their slots
 * with the HIGH 32 bits (see table.h), so a worker's restricted key-group
 * range does not leave part of its tables' home slots unused.
 */
#ifndef WR_STATE_KEYGROUP_H
#define WR_STATE_KEYGROUP_H

#include <stdint.h>

#define WR_KEY_GROUPS_DEFAULT 4096u

struct wr_kg_range {
	uint32_t first;
	uint32_t count;
};

static inline uint32_t wr_key_group(uint64_t hash, uint32_t key_groups)
{
	return (uint32_t)(hash & (key_groups - 1)); /* key_groups is 2^k */
}

/* The key groups owned by worker i of n (i < n <= key_groups). */
static inline struct wr_kg_range wr_key_group_range(uint32_t key_groups,
						    uint32_t i, uint32_t n)
{
	uint64_t lo = (uint64_t)key_groups * i / n;
	uint64_t hi = (uint64_t)key_groups * (i + 1) / n;

	return (struct wr_kg_range){ (uint32_t)lo, (uint32_t)(hi - lo) };
}

/* The worker of n that owns key group kg: inverse of wr_key_group_range. */
static inline uint32_t wr_key_group_owner(uint32_t kg, uint32_t key_groups,
					  uint32_t n)
{
	/* Largest i with floor(K*i/n) <= kg, i.e. ceil(n*(kg+1)/K) - 1. */
	return (uint32_t)(((uint64_t)n * (kg + 1) + key_groups - 1) /
			  key_groups) - 1;
}

#endif /* WR_STATE_KEYGROUP_H */
