/*
 * metrics.h - counters and latency histograms: relaxed atomics, fixed buckets, no lock and
 * no allocation on any path. See metrics.c.
 */
#ifndef TC_METRICS_H
#define TC_METRICS_H

#include "tiercache.h"

#include <stdatomic.h>
#include <stdint.h>

/* Count one event (every counter of tc_stats_t is one of these, read relaxed). */
static inline void tc__count(atomic_uint_fast64_t *counter) {
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Each thread records into one of TC__HIST_STRIPES copies (metrics.c), so threads timing
 * their calls do not pass the same cache lines back and forth. */
#define TC__HIST_STRIPES 8u

typedef struct tc__hist_stripe {
    atomic_uint_fast64_t count, sum_ns;
    atomic_uint_fast64_t bucket[TC_LATENCY_BUCKETS];
    uint64_t pad[6]; /* 256 bytes: a stripe shares at most an edge line with the next */
} tc__hist_stripe_t;

typedef struct tc__hist {
    tc__hist_stripe_t stripe[TC__HIST_STRIPES];
} tc__hist_t;

/* Count one observation of ns nanoseconds. Thread-safe, lock-free. */
void tc__hist_record(tc__hist_t *h, uint64_t ns);
/* Copy the counters into *out (each read once, relaxed). */
void tc__hist_snapshot(tc__hist_t *h, tc_latency_t *out);

/* 1 for one call in TC__HIT_SAMPLE on this thread: L1 hits are timed only then, so the
 * two clock reads (~20 ns each) do not land on every hit. */
#define TC__HIT_SAMPLE 64u
static inline int tc__sample_hit(void) {
    static _Thread_local unsigned calls;
    return (++calls & (TC__HIT_SAMPLE - 1)) == 0;
}

#endif
