/*
 * test_workload.c - the key generators and value sizes against what they promise.
 *
 * Zipf is checked against the exact distribution P(k) = k^-s / H(n, s): a chi-square
 * statistic over every rank (n = 1000, 2,000,000 draws, fixed seed) must stay well inside
 * what chance allows (mean = degrees of freedom, sd = sqrt(2 dof); we allow 5 sd), and the
 * five hottest ranks must each match within 4 binomial standard deviations. Seeds are fixed, so
 * a pass is reproducible and a failure means the sampler changed, not bad luck.
 */
/* tc-test-labels: unit */
#include "workload.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double harmonic(uint64_t n, double s) {
    double h = 0;
    for (uint64_t k = n; k >= 1; k--) /* small terms first: less rounding */
        h += pow((double)k, -s);
    return h;
}

/* Chi-square of counts[0..n) against expected[i] * total. */
static double chi_square(const uint64_t *counts, const double *p, uint64_t n, uint64_t total) {
    double chi = 0;
    for (uint64_t i = 0; i < n; i++) {
        double e = p[i] * (double)total;
        double d = (double)counts[i] - e;
        chi += d * d / e;
    }
    return chi;
}

static void check_zipf(double s) {
    const uint64_t n = 1000, draws = 2000000;
    tcb_workload_t w;
    cr_assert_eq(tcb_workload_zipf(&w, n, s), 0);
    tcb_cursor_t c;
    tcb_cursor_init(&c, &w, 42, 0, 1);
    uint64_t *counts = calloc(n, sizeof *counts);
    double *p = malloc(n * sizeof *p);
    for (uint64_t i = 0; i < draws; i++) {
        uint64_t id = tcb_workload_next(&w, &c, 0);
        cr_assert_lt(id, n, "id %llu out of range", (unsigned long long)id);
        counts[id]++;
    }
    double h = harmonic(n, s);
    for (uint64_t k = 1; k <= n; k++)
        p[k - 1] = pow((double)k, -s) / h;
    double chi = chi_square(counts, p, n, draws);
    double dof = (double)(n - 1);
    cr_expect_lt(chi, dof + 5 * sqrt(2 * dof), "s=%g: chi-square %.1f for %g dof", s, chi, dof);
    for (int k = 0; k < 5; k++) {
        /* 4 standard deviations of a binomial frequency, relative */
        double got = (double)counts[k] / (double)draws;
        double tol = 4.0 * sqrt((1.0 - p[k]) / ((double)draws * p[k]));
        cr_expect(fabs(got - p[k]) / p[k] < tol, "s=%g rank %d: %.5f vs theory %.5f", s, k + 1,
                  got, p[k]);
    }
    free(counts);
    free(p);
}

Test(zipf, matches_theory_at_099) {
    check_zipf(0.99);
}

Test(zipf, matches_theory_at_exactly_1) {
    check_zipf(1.0);
}

Test(zipf, matches_theory_at_05_and_15) {
    check_zipf(0.5);
    check_zipf(1.5);
}

Test(zipf, exponent_zero_is_uniform) {
    check_zipf(0.0);
}

Test(zipf, large_n_stays_in_range_and_favours_rank_one) {
    tcb_zipf_t z;
    cr_assert_eq(tcb_zipf_init(&z, 1000000, 0.99), 0);
    tcb_rng_t r;
    tcb_rng_seed(&r, 7, 0);
    uint64_t ones = 0, n = 1000000;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t k = tcb_zipf_next(&z, &r);
        cr_assert(k >= 1 && k <= 1000000);
        ones += k == 1;
    }
    /* P(1) = 1 / H(1e6, 0.99) ~ 0.0669 */
    double p1 = 1.0 / harmonic(1000000, 0.99);
    cr_expect(fabs((double)ones / (double)n - p1) < 0.003, "P(1) %.4f vs %.4f",
              (double)ones / (double)n, p1);
}

Test(zipf, rejects_bad_arguments) {
    tcb_zipf_t z;
    cr_expect_eq(tcb_zipf_init(&z, 0, 1.0), -1);
    cr_expect_eq(tcb_zipf_init(&z, 10, -0.1), -1);
    cr_expect_eq(tcb_zipf_init(&z, 10, NAN), -1);
    cr_expect_eq(tcb_zipf_init(NULL, 10, 1.0), -1);
    tcb_workload_t w;
    cr_expect_eq(tcb_workload_zipf(&w, 0, 1.0), -1);
}

Test(zipf, same_seed_same_stream_other_thread_other_stream) {
    tcb_workload_t w;
    tcb_workload_zipf(&w, 100000, 0.99);
    tcb_cursor_t a, b, c;
    tcb_cursor_init(&a, &w, 5, 0, 2);
    tcb_cursor_init(&b, &w, 5, 0, 2);
    tcb_cursor_init(&c, &w, 5, 1, 2);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = tcb_workload_next(&w, &a, 0), y = tcb_workload_next(&w, &b, 0);
        cr_assert_eq(x, y);
        differ += x != tcb_workload_next(&w, &c, 0);
    }
    cr_expect_gt(differ, 500);
}

Test(uniform, covers_range_evenly) {
    const uint64_t n = 100, draws = 1000000;
    tcb_workload_t w;
    cr_assert_eq(tcb_workload_uniform(&w, n), 0);
    tcb_cursor_t c;
    tcb_cursor_init(&c, &w, 3, 0, 1);
    uint64_t counts[100] = {0};
    for (uint64_t i = 0; i < draws; i++) {
        uint64_t id = tcb_workload_next(&w, &c, 0);
        cr_assert_lt(id, n);
        counts[id]++;
    }
    double p[100];
    for (int i = 0; i < 100; i++)
        p[i] = 0.01;
    double chi = chi_square(counts, p, n, draws);
    cr_expect_lt(chi, 99 + 5 * sqrt(198.0), "chi-square %.1f", chi);
}

Test(uniform, single_key) {
    tcb_workload_t w;
    tcb_workload_uniform(&w, 1);
    tcb_cursor_t c;
    tcb_cursor_init(&c, &w, 3, 0, 1);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(tcb_workload_next(&w, &c, 0), 0);
}

/* Share of draws that land in [base, base + hot) for one epoch. */
static double hot_share(const tcb_workload_t *w, uint64_t epoch, uint64_t base) {
    tcb_cursor_t c;
    tcb_cursor_init(&c, w, 11, 0, 1);
    uint64_t in = 0, n = 200000;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t id = tcb_workload_next(w, &c, epoch);
        cr_assert_lt(id, w->nkeys);
        in += id >= base && id < base + w->hot_n;
    }
    return (double)in / (double)n;
}

Test(hotset, hot_window_takes_its_share_and_shifts) {
    tcb_workload_t w;
    cr_assert_eq(tcb_workload_hotset(&w, 100000, 0.01, 0.9), 0);
    cr_assert_eq(w.hot_n, 1000);
    /* 90% hot + 1% of the uniform 10% fall in the window. */
    double expect = 0.9 + 0.1 * 0.01;
    cr_expect(fabs(hot_share(&w, 0, 0) - expect) < 0.01);
    /* Epoch 1: the window moved to [1000, 2000); the old one is cold now. */
    cr_expect(fabs(hot_share(&w, 1, 1000) - expect) < 0.01);
    cr_expect_lt(hot_share(&w, 1, 0), 0.01);
    /* It wraps around the key space: epoch 100 is back at 0. */
    cr_expect(fabs(hot_share(&w, 100, 0) - expect) < 0.01);
}

Test(hotset, rejects_bad_arguments) {
    tcb_workload_t w;
    cr_expect_eq(tcb_workload_hotset(&w, 100, 0.0, 0.9), -1);
    cr_expect_eq(tcb_workload_hotset(&w, 100, 1.5, 0.9), -1);
    cr_expect_eq(tcb_workload_hotset(&w, 100, 0.1, 1.1), -1);
    cr_expect_eq(tcb_workload_hotset(&w, 0, 0.1, 0.9), -1);
}

Test(trace_workload, replays_in_order_from_thread_offsets_and_wraps) {
    const uint64_t ids[] = {10, 20, 30, 40, 50, 60};
    tcb_workload_t w;
    cr_assert_eq(tcb_workload_trace(&w, ids, 6, 6), 0);
    tcb_cursor_t a, b;
    tcb_cursor_init(&a, &w, 1, 0, 2);
    tcb_cursor_init(&b, &w, 1, 1, 2);
    const uint64_t want_a[] = {10, 20, 30, 40, 50, 60, 10};
    const uint64_t want_b[] = {40, 50, 60, 10};
    for (int i = 0; i < 7; i++)
        cr_expect_eq(tcb_workload_next(&w, &a, 0), want_a[i]);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(tcb_workload_next(&w, &b, 0), want_b[i]);
    cr_expect_eq(tcb_workload_trace(&w, NULL, 6, 6), -1);
    cr_expect_eq(tcb_workload_trace(&w, ids, 0, 6), -1);
}

Test(keys, format_is_17_bytes_and_parses_back) {
    const uint64_t ids[] = {0, 1, 0xabcdef, UINT64_MAX};
    for (int i = 0; i < 4; i++) {
        char k[TCB_KEY_LEN + 1];
        tcb_key_format(ids[i], k);
        cr_assert_eq(strlen(k), 17);
        uint64_t back = 1234;
        cr_assert_eq(tcb_key_parse(k, 17, &back), 0);
        cr_expect_eq(back, ids[i]);
    }
    char k[TCB_KEY_LEN + 1];
    tcb_key_format(255, k);
    cr_expect_str_eq(k, "k00000000000000ff");
    uint64_t id;
    cr_expect_eq(tcb_key_parse("k00000000000000fF", 17, &id), -1);
    cr_expect_eq(tcb_key_parse("x00000000000000ff", 17, &id), -1);
    cr_expect_eq(tcb_key_parse("k0", 2, &id), -1);
    cr_expect_eq(tcb_key_parse(NULL, 17, &id), -1);
}

Test(vsize, parses_each_form_and_refuses_junk) {
    tcb_vsize_t v;
    cr_assert_eq(tcb_vsize_parse("100", &v), 0);
    cr_expect(v.kind == TCB_VS_FIXED && v.a == 100);
    cr_assert_eq(tcb_vsize_parse("64-1024", &v), 0);
    cr_expect(v.kind == TCB_VS_UNIFORM && v.a == 64 && v.b == 1024);
    cr_assert_eq(tcb_vsize_parse("exp:512", &v), 0);
    cr_expect(v.kind == TCB_VS_EXP && v.a == 512 && v.b == 8192);
    cr_assert_eq(tcb_vsize_parse("0", &v), 0);
    const char *bad[] = {
        "", "-1", "100x", "1024-64", "exp:", "exp:0", "64-", "99999999999", "1 00", "exp:-5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(tcb_vsize_parse(bad[i], &v), -1, "'%s' accepted", bad[i]);
}

Test(vsize, sizes_are_deterministic_in_range_with_the_right_mean) {
    tcb_vsize_t u, e;
    tcb_vsize_parse("64-1024", &u);
    tcb_vsize_parse("exp:500", &e);
    double su = 0, se = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        uint32_t a = tcb_vsize_for(&u, (uint64_t)i), b = tcb_vsize_for(&e, (uint64_t)i);
        cr_assert(a >= 64 && a <= 1024);
        cr_assert(b <= 8000);
        cr_assert_eq(a, tcb_vsize_for(&u, (uint64_t)i));
        su += a;
        se += b;
    }
    cr_expect(fabs(su / n - tcb_vsize_mean(&u)) < 5, "uniform mean %.1f", su / n);
    cr_expect(fabs(se / n - tcb_vsize_mean(&e)) < 5, "exp mean %.1f", se / n);
    cr_expect_eq(tcb_vsize_max(&u), 1024);
}
