/*
 * tsc.c — calibrating the time-stamp counter (weir/tsc.h).
 *
 * Calibration: read (CLOCK_MONOTONIC, TSC) pairs 20 ms apart, each pair
 * taken as the tightest of a few tries (a clock read squeezed between two
 * TSC reads), and divide.  20 ms against a ~25 ns read window bounds the
 * rate error to ~2.5e-6, i.e. 2.5 ns per ms of latency measured.
 */
#include <cpuid.h>
#include <pthread.h>

#include "weir/tsc.h"

uint64_t weir_tsc_ns_per_tick_q32 = (uint64_t)1 << 32;
uint64_t weir_tsc_ticks_per_ns_q32 = (uint64_t)1 << 32;
bool weir_tsc_use_rdtsc;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static double tsc_hz = 1e9;

#define CALIBRATE_NS 20000000ull

bool weir_tsc_invariant(void)
{
#if defined(__x86_64__)
	unsigned a, b, c, d;

	if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000007u)
		return false;
	__cpuid(0x80000007u, a, b, c, d);
	return (d & (1u << 8)) != 0;
#else
	return false;
#endif
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
/* A (monotonic ns, tsc) pair from the narrowest of 8 read windows. */
static void pair(uint64_t *ns, uint64_t *tsc)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 8; i++) {
		uint64_t t0 = __builtin_ia32_rdtsc();
		uint64_t n = mono_ns();
		uint64_t t1 = __builtin_ia32_rdtsc();

		if (t1 - t0 < best) {
			best = t1 - t0;
			*ns = n;
			*tsc = t0 + (t1 - t0) / 2;
		}
	}
}
#endif

static void calibrate(void)
{
#if defined(__x86_64__)
	uint64_t n0 = 0, t0 = 0, n1 = 0, t1 = 0;

	if (!weir_tsc_invariant())
		return;
	pair(&n0, &t0);
	do
		pair(&n1, &t1);
	while (n1 - n0 < CALIBRATE_NS);
	tsc_hz = (double)(t1 - t0) * 1e9 / (double)(n1 - n0);
	weir_tsc_ns_per_tick_q32 = (uint64_t)(1e9 / tsc_hz * 4294967296.0);
	weir_tsc_ticks_per_ns_q32 = (uint64_t)(tsc_hz / 1e9 * 4294967296.0);
	weir_tsc_use_rdtsc = true;
#endif
}

void weir_tsc_calibrate(void)
{
	pthread_once(&once, calibrate);
}

double weir_tsc_hz(void)
{
	weir_tsc_calibrate();
	return tsc_hz;
}
