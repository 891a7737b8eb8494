/*
 * hist.c - bucket arithmetic of the log-bucketed histogram (layout in hist.h).
 *
 * Index layout with S = TCB_HIST_SUB_BITS (6): values below 2^(S+1) = 128 map to
 * themselves. A larger value with highest set bit m has shift = m - S, and its top S+1 bits
 * (64..127) are the sub-bucket: index = shift * 64 + (v >> shift). Consecutive ranges join
 * without gaps: 127 -> 127, 128 -> 128, 255 -> 191, 256 -> 192.
 */
#include "hist.h"

#include <string.h>

#define HALF (1u << TCB_HIST_SUB_BITS)

void tcb_hist_reset(tcb_hist_t *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

size_t tcb_hist_index(uint64_t v) {
    if (v < 2 * HALF)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - TCB_HIST_SUB_BITS;
    return (size_t)shift * HALF + (size_t)(v >> shift);
}

uint64_t tcb_hist_bucket_low(size_t idx) {
    if (idx < 2 * HALF)
        return idx;
    size_t shift = idx / HALF - 1;
    uint64_t sub = idx - shift * HALF;
    return sub << shift;
}

uint64_t tcb_hist_bucket_high(size_t idx) {
    if (idx < 2 * HALF)
        return idx;
    size_t shift = idx / HALF - 1;
    return tcb_hist_bucket_low(idx) + ((1ull << shift) - 1);
}

void tcb_hist_merge(tcb_hist_t *dst, const tcb_hist_t *src) {
    if (src->total == 0)
        return;
    for (size_t i = 0; i < TCB_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t tcb_hist_quantile(const tcb_hist_t *h, double q) {
    if (h->total == 0)
        return 0;
    if (!(q < 1.0))
        return h->max;
    if (!(q > 0.0))
        return h->min;
    /* The rank of the q-quantile in 1..total (nearest-rank definition). */
    uint64_t rank = (uint64_t)(q * (double)h->total);
    if ((double)rank < q * (double)h->total)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < TCB_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t lo = tcb_hist_bucket_low(i), hi = tcb_hist_bucket_high(i);
            uint64_t mid = lo + (hi - lo) / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

double tcb_hist_mean(const tcb_hist_t *h) {
    return h->total ? h->sum / (double)h->total : 0.0;
}
