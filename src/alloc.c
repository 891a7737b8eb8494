/*
 * alloc.c - process-wide allocator statistics for tc_stats and bench.
 *
 * With jemalloc the library's entries are the only mallocx() users in a typical process,
 * so "stats.allocated" after an epoch refresh is the truthful size of every L1 together.
 */
#include "alloc.h"

#include <stdint.h>

size_t tc__alloc_total_bytes(void) {
#ifdef TC_WITH_JEMALLOC
    uint64_t epoch = 1;
    size_t sz = sizeof epoch;
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    size_t allocated = 0;
    sz = sizeof allocated;
    if (mallctl("stats.allocated", &allocated, &sz, NULL, 0) != 0)
        return 0;
    return allocated;
#else
    return 0;
#endif
}
