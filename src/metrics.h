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

typedef struct tc__hist {
    atomic_uint_fast64_t count, sum_ns;
    atomic_uint_fast64_t bucket[TC_LATENCY_BUCKETS];
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
