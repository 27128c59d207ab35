/*
 * thp-fault.c — the cost of the first write to fresh anonymous memory in
 * 2 MiB huge pages (MADV_HUGEPAGE), per huge page: what a weir arena pays
 * when a table grows into pages it never used (bench/RESULTS.md,
 * 2026-12-07, "state memory mapped before the first record").
 *
 *   gcc -O2 -o thp-fault bench/experiments/thp-fault.c
 *   ./thp-fault MIB [read-first]
 *
 * read-first: read every 4 KiB page before the writes (the huge zero page
 * is mapped, and the write then copies instead of allocating: the path
 * the arena's probe-then-insert takes).  Run it twice in a row: the first
 * run after boot touches memory the VM's host has not backed yet.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	size_t huge = 2u << 20, n = argc > 1 ? (size_t)atoi(argv[1]) << 20 : 0;
	volatile char sink = 0;
	double max = 0, total = 0;
	char *p;

	if (n < huge) {
		fprintf(stderr, "usage: thp-fault MIB(>=2) [read-first]\n");
		return 2;
	}
	p = mmap(NULL, n + huge, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	p = (char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
	madvise(p, n, MADV_HUGEPAGE);
	for (size_t i = 0; argc > 2 && i < n; i += 4096)
		sink += p[i];
	for (size_t i = 0; i < n; i += huge) {
		double t = now_us();
		p[i] = 1;
		t = now_us() - t;
		total += t;
		max = t > max ? t : max;
	}
	printf("%zu MiB, read first %d: per 2 MiB %.1f us (max %.1f), "
	       "%.1f ms in all\n", n >> 20, argc > 2, total / (double)(n / huge),
	       max, total / 1e3);
	return 0;
}
