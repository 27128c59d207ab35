/*
 * materialize-load.c — the memory and disk load a background
 * materialiser of changelog checkpoints would put on the machine, without
 * the materialiser: to measure what it would cost the updating core
 * before building it (docs/architecture.md, "Known limits", changelog).
 *
 * Every PERIOD seconds, one cycle of what folding a 1 GiB core's logs into
 * a new page file costs: read the page file (O_DIRECT, 1 MiB reads), apply
 * LOGS log files of 16-byte entries (u64 arena offset, u64 value; read
 * O_DIRECT a MiB at a time, each entry an 8-byte write at a random
 * offset, as the replay does), checksum the image by 64 KiB page (XXH3)
 * and write it to a new file (O_DIRECT, then fdatasync).  Prints each
 * cycle's seconds.
 *
 *   cc -O2 -march=x86-64-v3 -o /tmp/ml materialize-load.c -lxxhash
 *   taskset -c 0 /tmp/ml DIR MIB LOG_MIB LOGS PERIOD_S SECONDS
 *   e.g. /tmp/ml /work/ml 1024 256 5 5 200   (1 GiB, 5 logs of 256 MiB)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define MIB (1ull << 20)

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	madvise(p, len, MADV_HUGEPAGE);
	memset(p, 1, len);
	return p;
}

static int open_file(const char *dir, const char *name, int flags)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, flags | O_DIRECT, 0600);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	return fd;
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
	for (size_t o = 0; o < len; o += MIB)
		if (pwrite(fd, p + o, MIB, (off_t)o) != (ssize_t)MIB) {
			perror("pwrite");
			exit(1);
		}
}

static void read_all(int fd, uint8_t *p, size_t len)
{
	for (size_t o = 0; o < len; o += MIB)
		if (pread(fd, p + o, MIB, (off_t)o) != (ssize_t)MIB) {
			perror("pread");
			exit(1);
		}
}

/* The log: entries at random 8-byte aligned offsets of the image. */
static void make_log(const char *dir, size_t img, size_t len)
{
	uint64_t *b = map(len), x = 88172645463325252ull;
	int fd = open_file(dir, "ml.log", O_WRONLY | O_CREAT | O_TRUNC);

	for (size_t i = 0; i < len / 8; i += 2) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		b[i] = (x % (img / 8)) * 8;
		b[i + 1] = x;
	}
	write_all(fd, (uint8_t *)b, len);
	close(fd);
	munmap(b, len);
}

static void apply_log(int fd, uint8_t *img, uint8_t *buf, size_t len)
{
	for (size_t o = 0; o < len; o += MIB) {
		const uint64_t *e = (const uint64_t *)buf;
		if (pread(fd, buf, MIB, (off_t)o) != (ssize_t)MIB) {
			perror("pread log");
			exit(1);
		}
		for (size_t i = 0; i < MIB / 8; i += 2) {
			__builtin_prefetch(img + e[i + 16 < MIB / 8 ? i + 16 : i],
					   1);
			memcpy(img + e[i], &e[i + 1], 8);
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: %s DIR MIB LOG_MIB LOGS PERIOD_S "
			"SECONDS\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	size_t img = strtoull(argv[2], NULL, 10) * MIB;
	size_t log = strtoull(argv[3], NULL, 10) * MIB;
	int logs = atoi(argv[4]);
	double period = atof(argv[5]), secs = atof(argv[6]);
	uint8_t *a = map(img), *buf = map(MIB);
	int in = open_file(dir, "ml.pages", O_RDWR | O_CREAT | O_TRUNC);

	write_all(in, a, img);
	fdatasync(in);
	make_log(dir, img, log);
	double t_end = now() + secs;
	for (int cycle = 0; now() < t_end; cycle++) {
		double t0 = now();
		int lf = open_file(dir, "ml.log", O_RDONLY);
		int out = open_file(dir, "ml.out", O_WRONLY | O_CREAT |
				    O_TRUNC);
		uint64_t sum = 0;
		read_all(in, a, img);
		for (int k = 0; k < logs; k++)
			apply_log(lf, a, buf, log);
		for (size_t o = 0; o < img; o += 64 << 10)
			sum ^= XXH3_64bits(a + o, 64 << 10);
		write_all(out, a, img);
		fdatasync(out);
		close(out);
		close(lf);
		printf("cycle %d: %.2f s (sum %016llx)\n", cycle, now() - t0,
		       (unsigned long long)sum);
		fflush(stdout);
		while (now() < t0 + period && now() < t_end)
			usleep(10000);
	}
	return 0;
}
