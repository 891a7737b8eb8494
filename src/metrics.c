/*
 * metrics.c - latency histograms for tc_latency and tc_stats_prometheus.
 *
 * One histogram per kind of call (tiercache.h tc_latency_kind_t), with the same fixed
 * bucket bounds, 100 ns to 5 s in 1-2.5-5 steps (2.5 s left out to fit 24 buckets): wide
 * enough for an L1 hit and for a load that hits a timeout, fine enough to read a p99 off
 * a dashboard. Recording is three
 * relaxed atomic adds (count, sum, one bucket): no lock, no allocation, nothing a reader
 * waits for. Each thread adds to one of eight stripes, handed out round robin to threads
 * in the order they first record (process-wide, never returned), so a few threads timing
 * their calls do not bounce the same cache lines between cores: with one shared copy, an
 * L1-only tc_set on 2 threads spent a fifth of its time there. A snapshot sums the stripes,
 * reading each counter once; taken while calls run, count and buckets may disagree by the calls
 * in flight, which Prometheus tolerates.
 */
#include "metrics.h"

#include <string.h>

static const uint64_t bounds_ns[TC_LATENCY_BUCKETS] = {
    100,      250,      500,       1000,      2500,      5000,       10000,       25000,
    50000,    100000,   250000,    500000,    1000000,   2500000,    5000000,     10000000,
    25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, 5000000000u, UINT64_MAX,
};

const uint64_t *tc_latency_bounds_ns(void) {
    return bounds_ns;
}

static unsigned bucket_of(uint64_t ns) {
    unsigned lo = 0, hi = TC_LATENCY_BUCKETS - 1; /* the last bound is +Inf */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (ns <= bounds_ns[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* This thread's stripe: handed out round robin at its first recording. */
static unsigned my_stripe(void) {
    static atomic_uint next;
    static _Thread_local unsigned mine; /* stripe + 1; 0 = not chosen yet */
    if (!mine)
        mine = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % TC__HIST_STRIPES + 1;
    return mine - 1;
}

void tc__hist_record(tc__hist_t *h, uint64_t ns) {
    tc__hist_stripe_t *s = &h->stripe[my_stripe()];
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bucket[bucket_of(ns)], 1, memory_order_relaxed);
}

void tc__hist_snapshot(tc__hist_t *h, tc_latency_t *out) {
    memset(out, 0, sizeof *out);
    for (unsigned k = 0; k < TC__HIST_STRIPES; k++) {
        tc__hist_stripe_t *s = &h->stripe[k];
        out->count += atomic_load_explicit(&s->count, memory_order_relaxed);
        out->sum_ns += atomic_load_explicit(&s->sum_ns, memory_order_relaxed);
        for (unsigned i = 0; i < TC_LATENCY_BUCKETS; i++)
            out->buckets[i] += atomic_load_explicit(&s->bucket[i], memory_order_relaxed);
    }
}
