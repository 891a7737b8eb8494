/*
 * hist.h - latency histogram with log-spaced buckets (HDR-style), one per thread, merged.
 *
 * Values are nanoseconds (any uint64). Below 128 every value has its own bucket; above, each
 * power-of-two range [2^m, 2^(m+1)) is split into 64 equal sub-buckets, so a bucket is never
 * wider than 1/64 (1.6%) of the values in it. 3,776 buckets cover all of uint64 in 30 KB,
 * recording is a count-leading-zeros and an increment, and merging is adding arrays, so
 * threads record privately and the runner merges at the end.
 *
 * Percentiles return the midpoint of the bucket holding the requested rank, clamped to the
 * exact min and max that are tracked on the side: the error is at most half a bucket.
 */
#ifndef TCB_HIST_H
#define TCB_HIST_H

#include <stddef.h>
#include <stdint.h>

#define TCB_HIST_SUB_BITS 6
#define TCB_HIST_BUCKETS                                                                       \
    ((64 - TCB_HIST_SUB_BITS) * (1 << TCB_HIST_SUB_BITS) + (1 << TCB_HIST_SUB_BITS))

typedef struct tcb_hist {
    uint64_t total;
    uint64_t min, max;
    double sum;
    uint64_t counts[TCB_HIST_BUCKETS];
} tcb_hist_t;

void tcb_hist_reset(tcb_hist_t *h);
/* Bucket index of v, and the inclusive value range of a bucket. */
size_t tcb_hist_index(uint64_t v);
uint64_t tcb_hist_bucket_low(size_t idx);
uint64_t tcb_hist_bucket_high(size_t idx);

static inline void tcb_hist_record(tcb_hist_t *h, uint64_t v) {
    h->counts[tcb_hist_index(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

/* dst += src. */
void tcb_hist_merge(tcb_hist_t *dst, const tcb_hist_t *src);
/* Value at quantile q in [0, 1] (q = 0.99 is p99); 0 when empty. q = 1 returns max. */
uint64_t tcb_hist_quantile(const tcb_hist_t *h, double q);
double tcb_hist_mean(const tcb_hist_t *h);

#endif
