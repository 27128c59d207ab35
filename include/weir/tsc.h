/*
 * weir/tsc.h — a cheap clock for latency stamps: the CPU's time-stamp
 * counter, calibrated against CLOCK_MONOTONIC.
 *
 * PURPOSE
 *   A latency sample needs two clock reads; clock_gettime() costs ~20 ns
 *   through the vDSO, rdtsc ~7 ns (and lfence-free rdtsc ~25 cycles).  With an
 *   invariant TSC (CPUID 0x80000007 EDX bit 8: constant rate, running in
 *   every C-state, synchronised across cores by the kernel), a TSC value
 *   taken on one core can be compared with one taken on another.
 *
 * INVARIANTS
 *   1. weir_tsc_calibrate() runs once per process before any conversion;
 *      it is idempotent and thread-safe (a pthread_once).  Calibration
 *      spins ~20 ms comparing both clocks.
 *   2. Without an invariant TSC (or off x86-64), weir_tsc_now() reads
 *      CLOCK_MONOTONIC in ns and the conversions are the identity, so the
 *      API still works, only slower; weir_tsc_invariant() tells which.
 *   3. weir_tsc_ns(a, b) is (b - a) in ns for two readings a <= b.
 */
#ifndef WEIR_TSC_H
#define WEIR_TSC_H

#include <stdbool.h>
#include <time.h>

#include "weir/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Set by calibration: ticks per ns in 32.32 fixed point, inverse too. */
extern uint64_t weir_tsc_ns_per_tick_q32;
extern uint64_t weir_tsc_ticks_per_ns_q32;
extern bool weir_tsc_use_rdtsc;

void weir_tsc_calibrate(void);
bool weir_tsc_invariant(void);
/* Ticks per second, as calibrated. */
double weir_tsc_hz(void);

static inline uint64_t weir_tsc_now(void)
{
#if defined(__x86_64__)
	if (WEIR_LIKELY(weir_tsc_use_rdtsc))
		return __builtin_ia32_rdtsc();
#endif
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t weir_tsc_to_ns(uint64_t ticks)
{
	return (uint64_t)(((unsigned __int128)ticks *
			   weir_tsc_ns_per_tick_q32) >> 32);
}

static inline uint64_t weir_tsc_from_ns(uint64_t ns)
{
	return (uint64_t)(((unsigned __int128)ns *
			   weir_tsc_ticks_per_ns_q32) >> 32);
}

/* Elapsed ns from reading a to reading b; 0 if b precedes a. */
static inline uint64_t weir_tsc_ns(uint64_t a, uint64_t b)
{
	return b > a ? weir_tsc_to_ns(b - a) : 0;
}

#ifdef __cplusplus
}
#endif

#endif /* WEIR_TSC_H */
