/*
 * l1_readers.c - the reader counters' memory, a thread's stripe, and a writer's wait (the
 * protocol is in l1_readers.h).
 */
#include "l1_readers.h"

#include "errors.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORDS_PER_LINE     16u  /* 4-byte counters in a 64-byte line */
#define SPINS_BEFORE_YIELD 256u /* a reader inside is a few hundred ns from leaving */

/* Tell the core a spin-wait is under way (it yields the pipeline to a sibling thread). */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* The smallest power of two that is at least the CPUs, at most max. */
static unsigned per_cpu(unsigned max) {
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    unsigned n = 1;
    while (n < max && (long)n < ncpu)
        n <<= 1;
    return n;
}

int tc__l1_readers_init(tc__l1_readers_t *r, unsigned shards) {
    memset(r, 0, sizeof *r);
    r->stripes = per_cpu(TC__L1_STRIPES_MAX);
    r->ncounts = per_cpu(TC__L1_COUNTS_MAX);
    r->row = (shards + WORDS_PER_LINE - 1) / WORDS_PER_LINE * WORDS_PER_LINE;
    size_t words = (size_t)r->stripes * r->row;
    if (posix_memalign((void **)&r->inside, 64, words * sizeof *r->inside) != 0) {
        r->inside = NULL;
        return TC_ENOMEM;
    }
    if (posix_memalign((void **)&r->counts, 64, r->ncounts * sizeof *r->counts) != 0) {
        free(r->inside);
        r->inside = NULL;
        r->counts = NULL;
        return TC_ENOMEM;
    }
    for (size_t i = 0; i < words; i++)
        atomic_init(&r->inside[i], 0);
    for (unsigned i = 0; i < r->ncounts; i++) {
        atomic_init(&r->counts[i].hits, 0);
        atomic_init(&r->counts[i].misses, 0);
    }
    return TC_OK;
}

void tc__l1_readers_deinit(tc__l1_readers_t *r) {
    free(r->inside);
    free(r->counts);
    memset(r, 0, sizeof *r);
}

unsigned tc__l1_readers_cpu(void) {
    int cpu = sched_getcpu();
    return cpu < 0 ? 0u : (unsigned)cpu;
}

void tc__l1_readers_exclude(const tc__l1_readers_t *r, unsigned shard, atomic_int *excl) {
    atomic_store_explicit(excl, 1, memory_order_seq_cst);
    for (unsigned k = 0; k < r->stripes; k++) {
        atomic_uint *word = tc__l1_readers_word(r, k, shard);
        for (unsigned spins = 0; atomic_load_explicit(word, memory_order_seq_cst) != 0;
             spins++) {
            if (spins < SPINS_BEFORE_YIELD)
                cpu_relax();
            else
                sched_yield();
        }
    }
}

void tc__l1_readers_counts(const tc__l1_readers_t *r, uint64_t *hits, uint64_t *misses) {
    *hits = *misses = 0;
    for (unsigned k = 0; k < r->ncounts; k++) {
        *hits += atomic_load_explicit(&r->counts[k].hits, memory_order_relaxed);
        *misses += atomic_load_explicit(&r->counts[k].misses, memory_order_relaxed);
    }
}
