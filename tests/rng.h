/*
 * tests/rng.h — the tests' xorshift64 generator (Marsaglia): fast,
 * reproducible from its seed, good enough to draw operations and keys.
 * Each test file keeps its own state and seed:
 *
 *     static uint64_t rng = 0x9e3779b97f4a7c15ull;
 *     static uint64_t rnd(void) { return t_xorshift(&rng); }
 */
#ifndef WEIR_TESTS_RNG_H
#define WEIR_TESTS_RNG_H

#include <stdint.h>

static inline uint64_t t_xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#endif
