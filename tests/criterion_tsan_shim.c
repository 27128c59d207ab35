/*
 * tests/criterion_tsan_shim.c — lets Criterion start under ThreadSanitizer.
 *
 * Linked into the test programs only when b_sanitize contains "thread".
 *
 * WHY
 *   Criterion's BoxFort allocates its "inheritable arena" with
 *   mmap(MAP_FIXED) at base 0x2000'0000'0000 + rand_r() * 16 MiB (up to
 *   0x6000'0000'0000).  Under TSan almost all of that range is shadow,
 *   meta or protected gap, so the mapping fails and every test program
 *   aborts with "Could not initialize inheritable arena: Resource
 *   temporarily unavailable" (Criterion issue #274, open since 2018).
 *   TSan's x86-64 layout keeps 0x5500'0000'0000..0x5680'0000'0000 as
 *   application memory (PIE binaries), so this rand_r() — interposed over
 *   libc's, and used by nothing else in the tests — returns offsets that
 *   land there.  BoxFort still probes each base with msync() and retries
 *   if it is taken, so several values are produced, not one.
 */
#include <stdlib.h>

#define TSAN_APP_FIRST 0x350000 /* 0x5500'0000'0000 in 16 MiB steps */
#define TSAN_APP_SPAN 0x18000   /* up to 0x5680'0000'0000 */

int rand_r(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return TSAN_APP_FIRST + (int)((*seed >> 8) % TSAN_APP_SPAN);
}
