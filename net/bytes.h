/*
 * net/bytes.h — unaligned, bounds-free loads and stores in either byte order,
 * shared by the parser, the capture reader and the writer.
 *
 * The caller has already checked that the bytes are inside the buffer: these
 * helpers never check.  memcpy() compiles to one mov (plus a bswap/movbe) on
 * x86-64, and is the only alignment-safe way in C.
 */
#ifndef WR_NET_BYTES_H
#define WR_NET_BYTES_H

#include <stdint.h>
#include <string.h>

static inline uint16_t wr_ld16be(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return __builtin_bswap16(v);
}

static inline uint32_t wr_ld32be(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return __builtin_bswap32(v);
}

static inline uint16_t wr_ld16le(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static inline uint32_t wr_ld32le(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* Byte order chosen at run time (be != 0: big-endian). */
static inline uint16_t wr_ld16(const uint8_t *p, int be)
{
	return be ? wr_ld16be(p) : wr_ld16le(p);
}

static inline uint32_t wr_ld32(const uint8_t *p, int be)
{
	return be ? wr_ld32be(p) : wr_ld32le(p);
}

static inline void wr_st16(uint8_t *p, uint16_t v, int be)
{
	if (be)
		v = __builtin_bswap16(v);
	memcpy(p, &v, 2);
}

static inline void wr_st32(uint8_t *p, uint32_t v, int be)
{
	if (be)
		v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "net/bytes.h assumes a little-endian host (x86-64, arm64)"
/* 10^0 .. 10^19: pcapng timestamp resolutions, read and write side. */
static const uint64_t wr_pow10[20] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
	10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
	100000000000ull, 1000000000000ull, 10000000000000ull,
	100000000000000ull, 1000000000000000ull, 10000000000000000ull,
	100000000000000000ull, 1000000000000000000ull,
	10000000000000000000ull,
};

#endif

/* 10^0 .. 10^19: pcapng timestamp resolutions, read and write side. */
static const uint64_t wr_pow10[20] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
	10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
	100000000000ull, 1000000000000ull, 10000000000000ull,
	100000000000000ull, 1000000000000000ull, 10000000000000000ull,
	100000000000000000ull, 1000000000000000000ull,
	10000000000000000000ull,
};

#endif
