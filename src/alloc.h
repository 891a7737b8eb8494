/*
 * alloc.h - where L1 memory comes from, and what it really costs.
 *
 * The byte budget must count what the allocator charges, not sizeof: a 130-byte request
 * occupies a 144- or 160-byte size class. With jemalloc (TC_WITH_JEMALLOC) entries come
 * from mallocx() and are charged nallocx(), the exact size class, before allocating; they
 * go back through sdallocx(). Those symbols exist only in jemalloc, so the library never
 * fights the host program's malloc/free, and jemalloc's own statistics count exactly the
 * cache's memory. Without jemalloc, glibc malloc is charged malloc_usable_size().
 * The shards' slot tables (and S3-FIFO's ghost tables) use the same functions
 * (l1_index.c, l1_policy.c), so they are counted too.
 */
#ifndef TC_ALLOC_H
#define TC_ALLOC_H

#include <stddef.h>
#include <stdlib.h>

#ifdef TC_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>

/* Bytes the allocator will charge for a request of size n. */
static inline size_t tc__alloc_charge(size_t n) {
    return n ? nallocx(n, 0) : 0;
}
static inline void *tc__alloc(size_t n) {
    return mallocx(n ? n : 1, 0);
}
static inline void tc__free(void *p, size_t n) {
    if (p)
        sdallocx(p, n ? n : 1, 0);
}
#else
#include <malloc.h>

static inline size_t tc__alloc_charge(size_t n) {
    /* glibc: chunk = n + 8 rounded up to 16, at least 32. Nothing asked, nothing charged. */
    if (n == 0)
        return 0;
    size_t chunk = (n + 8 + 15) & ~(size_t)15;
    if (chunk < 32)
        chunk = 32;
    return chunk;
}
static inline void *tc__alloc(size_t n) {
    return malloc(n ? n : 1);
}
static inline void tc__free(void *p, size_t n) {
    (void)n;
    free(p);
}
#endif

#endif
