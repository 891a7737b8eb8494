/*
 * l1_readers.c - the reader counters' memory, a thread's stripe, and a writer's wait (the
 * protocol is in l1_readers.h).
 */
#include "l1_readers.h"

#include "errors.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORDS_PER_LINE     8u   /* 8-byte words in a 64-byte line */
#define SPINS_BEFORE_YIELD 256u /* a reader inside is a few hundred ns from leaving */
#define YIELDS_BEFORE_NAP  64u  /* then it was preempted: let it run */
#define NAP_NS             50000L
/* A word's hits move to the shard's count past this: far below the 2^48 they could hold. */
#define HARVEST_AT ((uint64_t)1 << 40)

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

void tc__l1_readers_exclude(const tc__l1_readers_t *r, unsigned shard, atomic_int *excl,
                            uint64_t *hits) {
    atomic_store_explicit(excl, 1, memory_order_seq_cst);
    for (unsigned k = 0; k < r->stripes; k++) {
        _Atomic tc__l1_word_t *word = tc__l1_readers_word(r, k, shard);
        for (unsigned spins = 0;
             atomic_load_explicit(word, memory_order_seq_cst) & TC__L1_INSIDE_MASK; spins++) {
            if (spins < SPINS_BEFORE_YIELD) {
                cpu_relax();
            } else if (spins < SPINS_BEFORE_YIELD + YIELDS_BEFORE_NAP) {
                sched_yield();
            } else {
                struct timespec nap = {0, NAP_NS};
                nanosleep(&nap, NULL);
            }
        }
    }
    /* No reader is inside and none can enter, so no hit is added meanwhile: a reader that
     * sees the flag leaves through a plain decrement. */
    for (unsigned k = 0; k < r->stripes; k++) {
        _Atomic tc__l1_word_t *word = tc__l1_readers_word(r, k, shard);
        uint64_t counted = atomic_load_explicit(word, memory_order_relaxed) / TC__L1_HIT_ONE;
        if (counted >= HARVEST_AT) {
            atomic_fetch_sub_explicit(word, counted * TC__L1_HIT_ONE, memory_order_relaxed);
            *hits += counted;
        }
    }
}

uint64_t tc__l1_readers_shard_hits(const tc__l1_readers_t *r, unsigned shard) {
    uint64_t hits = 0;
    for (unsigned k = 0; k < r->stripes; k++)
        hits += atomic_load_explicit(tc__l1_readers_word(r, k, shard), memory_order_relaxed) /
                TC__L1_HIT_ONE;
    return hits;
}

uint64_t tc__l1_readers_misses(const tc__l1_readers_t *r) {
    uint64_t misses = 0;
    for (unsigned k = 0; k < r->ncounts; k++)
        misses += atomic_load_explicit(&r->counts[k].misses, memory_order_relaxed);
    return misses;
}
