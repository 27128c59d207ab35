/* Random read-modify-write over SIZE MiB per thread, pinned, reporting loop gaps > 2 ms. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <x86intrin.h>
static double hz; static int secs; static size_t sz; static uint64_t t0;
static void *run(void *arg) {
	int cpu = (int)(intptr_t)arg; cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
	uint64_t *m = mmap(NULL, sz, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
	madvise(m, sz, MADV_HUGEPAGE); memset(m, 1, sz);
	size_t n = sz / 8; uint64_t x = 88172645463325252ull + cpu, prev = __rdtsc(), end = prev + (uint64_t)(secs * hz);
	uint64_t lim = (uint64_t)(hz * 0.002);
	while (prev < end) {
		for (int k = 0; k < 64; k++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; m[x % n] += k; }
		uint64_t now = __rdtsc();
		if (now - prev > lim) printf("cpu%d at %.4f gap %.2f ms\n", cpu, (prev - t0) / hz, (now - prev) / hz * 1e3);
		prev = now;
	}
	return NULL;
}
int main(int argc, char **argv) {
	hz = atof(argv[1]); secs = atoi(argv[2]); sz = (size_t)atoi(argv[3]) << 20;
	setvbuf(stdout, NULL, _IOLBF, 0);
	t0 = __rdtsc(); pthread_t t[2];
	for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, run, (void *)(intptr_t)i);
	for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
	return 0;
}
