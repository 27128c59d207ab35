/*
 * vcpu-stall-probe.c — two threads pinned to CPUs 0 and 1, each doing
 * random read-modify-writes over MIB MiB; with RINGS=1 they also pass
 * 64-byte records both ways through two SPSC rings (like weir's shuffle).
 * Every loop gap over 2 ms is printed.  (bench/RESULTS.md, 2026-12-07,
 * "10-20 ms stalls".)
 *
 *   gcc -O2 -pthread -o p vcpu-stall-probe.c && ./p TSC_HZ SECONDS MIB [RINGS]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <x86intrin.h>

#define SLOTS 4096
struct ring {
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) uint64_t slot[SLOTS][8];
};
static struct ring *rings[2];
static double hz;
static int secs, use_rings;
static size_t sz;
static uint64_t t0;

static uint64_t pass(int cpu, uint64_t x)
{
	struct ring *out = rings[cpu], *in = rings[cpu ^ 1];
	uint64_t h = atomic_load_explicit(&out->head, memory_order_relaxed);
	uint64_t t = atomic_load_explicit(&out->tail, memory_order_acquire);
	uint64_t sum = 0;

	for (int k = 0; k < 16 && h - t < SLOTS; k++, h++)
		out->slot[h % SLOTS][0] = x + k;
	atomic_store_explicit(&out->head, h, memory_order_release);
	h = atomic_load_explicit(&in->head, memory_order_acquire);
	t = atomic_load_explicit(&in->tail, memory_order_relaxed);
	for (; t < h; t++)
		sum += in->slot[t % SLOTS][0];
	atomic_store_explicit(&in->tail, t, memory_order_release);
	return sum;
}

static void *run(void *arg)
{
	int cpu = (int)(intptr_t)arg;
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
	uint64_t *m = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(m, sz, MADV_HUGEPAGE);
	memset(m, 1, sz);
	size_t n = sz / 8;
	uint64_t x = 88172645463325252ull + cpu, prev = __rdtsc(), sum = 0;
	uint64_t end = prev + (uint64_t)(secs * hz), lim = (uint64_t)(hz * 0.002);

	while (prev < end) {
		for (int k = 0; k < 64; k++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			m[x % n] += k;
		}
		if (use_rings)
			sum += pass(cpu, x);
		uint64_t now = __rdtsc();
		if (now - prev > lim)
			printf("cpu%d at %.4f gap %.2f ms\n", cpu,
			       (prev - t0) / hz, (now - prev) / hz * 1e3);
		prev = now;
	}
	return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
	pthread_t t[2];

	if (argc < 4) {
		fprintf(stderr, "usage: %s TSC_HZ SECONDS MIB [RINGS]\n", argv[0]);
		return 2;
	}
	hz = atof(argv[1]);
	secs = atoi(argv[2]);
	sz = (size_t)atoi(argv[3]) << 20;
	use_rings = argc > 4 && atoi(argv[4]) != 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < 2; i++) {
		rings[i] = aligned_alloc(64, sizeof(struct ring));
		memset(rings[i], 0, sizeof(struct ring));
	}
	t0 = __rdtsc();
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, run, (void *)(intptr_t)i);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	return 0;
}
