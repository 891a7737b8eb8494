/*
 * test_hist.c - histogram percentiles against a sorted reference array.
 *
 * For every quantile the histogram's answer must lie within one bucket's relative width
 * (1/64) of the exact nearest-rank value, which is the precision hist.h promises.
 */
/* tc-test-labels: unit */
#include "hist.h"
#include "rng.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t exact(const uint64_t *sorted, size_t n, double q) {
    size_t rank = (size_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void check_against_reference(uint64_t *v, size_t n, const tcb_hist_t *h) {
    qsort(v, n, sizeof *v, cmp);
    const double qs[] = {0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        uint64_t want = exact(v, n, qs[i]), got = tcb_hist_quantile(h, qs[i]);
        double tol = (double)want / 64.0 + 1.0;
        cr_expect(fabs((double)got - (double)want) <= tol, "q=%g: %llu vs exact %llu", qs[i],
                  (unsigned long long)got, (unsigned long long)want);
    }
    cr_expect_eq(tcb_hist_quantile(h, 1.0), v[n - 1]);
    cr_expect_eq(h->max, v[n - 1]);
    cr_expect_eq(h->min, v[0]);
    cr_expect_eq(h->total, n);
}

/* Latency-like values: log-normal around 30 us with a long tail. */
static uint64_t lognormal(tcb_rng_t *r) {
    double u1 = tcb_rng_double(r), u2 = tcb_rng_double(r);
    double z = sqrt(-2.0 * log(1.0 - u1)) * cos(2 * M_PI * u2);
    return (uint64_t)exp(log(30000.0) + 1.2 * z);
}

Test(hist, percentiles_match_sorted_reference) {
    size_t n = 500000;
    uint64_t *v = malloc(n * sizeof *v);
    tcb_hist_t *h = malloc(sizeof *h);
    tcb_hist_reset(h);
    tcb_rng_t r;
    tcb_rng_seed(&r, 99, 0);
    for (size_t i = 0; i < n; i++) {
        v[i] = lognormal(&r);
        tcb_hist_record(h, v[i]);
    }
    check_against_reference(v, n, h);
    free(v);
    free(h);
}

Test(hist, small_values_are_exact) {
    tcb_hist_t *h = malloc(sizeof *h);
    tcb_hist_reset(h);
    for (uint64_t i = 1; i <= 100; i++)
        tcb_hist_record(h, i);
    cr_expect_eq(tcb_hist_quantile(h, 0.5), 50);
    cr_expect_eq(tcb_hist_quantile(h, 0.99), 99);
    cr_expect_eq(tcb_hist_quantile(h, 0.01), 1);
    cr_expect(fabs(tcb_hist_mean(h) - 50.5) < 1e-9);
    free(h);
}

Test(hist, merge_equals_recording_everything_in_one) {
    tcb_hist_t *a = malloc(sizeof *a), *b = malloc(sizeof *b), *all = malloc(sizeof *all);
    tcb_hist_reset(a);
    tcb_hist_reset(b);
    tcb_hist_reset(all);
    tcb_rng_t r;
    tcb_rng_seed(&r, 5, 1);
    size_t n = 200000;
    uint64_t *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = lognormal(&r) * (i % 2 ? 10 : 1); /* two different populations */
        tcb_hist_record(i % 2 ? a : b, v[i]);
        tcb_hist_record(all, v[i]);
    }
    tcb_hist_t *m = malloc(sizeof *m);
    tcb_hist_reset(m);
    tcb_hist_merge(m, a);
    tcb_hist_merge(m, b);
    cr_expect_eq(m->total, all->total);
    cr_expect_eq(m->min, all->min);
    cr_expect_eq(m->max, all->max);
    for (double q = 0.05; q < 1.0; q += 0.05)
        cr_expect_eq(tcb_hist_quantile(m, q), tcb_hist_quantile(all, q), "q=%g", q);
    check_against_reference(v, n, m);
    tcb_hist_t *empty = malloc(sizeof *empty);
    tcb_hist_reset(empty);
    tcb_hist_merge(m, empty);
    cr_expect_eq(m->min, all->min);
    free(a), free(b), free(all), free(m), free(empty), free(v);
}

Test(hist, buckets_tile_the_whole_range) {
    size_t prev = 0;
    for (uint64_t v = 0; v < 1u << 20; v++) {
        size_t i = tcb_hist_index(v);
        cr_assert(i == prev || i == prev + 1, "gap at %llu", (unsigned long long)v);
        cr_assert(tcb_hist_bucket_low(i) <= v && v <= tcb_hist_bucket_high(i));
        prev = i;
    }
    cr_expect_eq(tcb_hist_index(UINT64_MAX), TCB_HIST_BUCKETS - 1);
    cr_expect_eq(tcb_hist_bucket_high(TCB_HIST_BUCKETS - 1), UINT64_MAX);
    /* relative width never above 1/64 past the exact region */
    for (size_t i = 128; i < TCB_HIST_BUCKETS; i++) {
        double lo = (double)tcb_hist_bucket_low(i), hi = (double)tcb_hist_bucket_high(i);
        cr_assert((hi - lo + 1) / lo <= 1.0 / 64 + 1e-12);
    }
}

Test(hist, empty_and_extreme_values) {
    tcb_hist_t *h = malloc(sizeof *h);
    tcb_hist_reset(h);
    cr_expect_eq(tcb_hist_quantile(h, 0.5), 0);
    cr_expect_eq(tcb_hist_mean(h), 0.0);
    tcb_hist_record(h, UINT64_MAX);
    tcb_hist_record(h, 0);
    cr_expect_eq(tcb_hist_quantile(h, 1.0), UINT64_MAX);
    cr_expect_eq(tcb_hist_quantile(h, 0.0), 0);
    cr_expect_eq(tcb_hist_quantile(h, 0.5), 0);
    free(h);
}
