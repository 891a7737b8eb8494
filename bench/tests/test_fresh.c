/*
 * test_fresh.c - what the stampede and failing-source tables are computed from: the
 * "waited on a load" judgement, loads per expiry period, timeline bucketing, merging, and
 * the failing-source summary (stale span, loader rates before and after the stale values
 * ran out, the error share from the first failure on).
 *
 * The summary tests replay a known failing-source story: fresh answers, the source fails
 * at 2.0 s, stale answers until 5.0 s with a reload every 0.5 s, then errors with a reload
 * every 50 ms; every figure the bench prints is checked against that story.
 */
/* tc-test-labels: unit */
#include "fresh.h"

#include <criterion/criterion.h>
#include <math.h>

#define MS 1000000ull
#define S  1000000000ull

Test(fresh, waited_means_slower_than_half_a_load) {
    cr_expect_eq(tcb_waited(60 * MS, 50 * MS), 1);
    cr_expect_eq(tcb_waited(25 * MS + 1, 50 * MS), 1);
    cr_expect_eq(tcb_waited(25 * MS, 50 * MS), 0);
    cr_expect_eq(tcb_waited(800, 50 * MS), 0);
    cr_expect_eq(tcb_waited(UINT64_MAX, 0), 0, "no load time: nothing to wait on");
}

Test(fresh, loads_per_expiry_period) {
    cr_expect_float_eq(tcb_per_period(10, 5 * S, 500), 1.0, 1e-9);
    cr_expect_float_eq(tcb_per_period(320, 5 * S, 500), 32.0, 1e-9);
    cr_expect_float_eq(tcb_per_period(3, 2 * S, 250), 0.375, 1e-9);
    cr_expect_eq(tcb_per_period(5, 0, 500), 0.0);
    cr_expect_eq(tcb_per_period(5, S, 0), 0.0);
}

Test(timeline, buckets_cover_the_run_and_late_instants_land_last) {
    tcb_timeline_t tl;
    cr_expect_eq(tcb_tl_init(&tl, 8 * S, 0, 0), -1);
    cr_expect_eq(tcb_tl_init(&tl, 0, 500 * MS, 0), -1);
    cr_assert_eq(tcb_tl_init(&tl, 8 * S, 500 * MS, TCB_TL_NONE), 0);
    cr_expect_eq(tl.nbuckets, 16);
    cr_expect_eq(tcb_tl_index(&tl, 0), 0);
    cr_expect_eq(tcb_tl_index(&tl, 500 * MS - 1), 0);
    cr_expect_eq(tcb_tl_index(&tl, 500 * MS), 1);
    cr_expect_eq(tcb_tl_index(&tl, 7999 * MS), 15);
    cr_expect_eq(tcb_tl_index(&tl, 9 * S), 15, "an answer after the end is the last row's");
    tcb_tl_free(&tl);
    cr_assert_eq(tcb_tl_init(&tl, 8100 * MS, 500 * MS, TCB_TL_NONE), 0);
    cr_expect_eq(tl.nbuckets, 17, "a partial last bucket still gets a row");
    tcb_tl_free(&tl);
}

Test(timeline, answers_and_loads_land_in_their_buckets) {
    tcb_timeline_t tl;
    cr_assert_eq(tcb_tl_init(&tl, 2 * S, 500 * MS, TCB_TL_NONE), 0);
    tcb_tl_answer(&tl, 100 * MS, TCB_ANS_FRESH);
    tcb_tl_answer(&tl, 600 * MS, TCB_ANS_STALE);
    tcb_tl_answer(&tl, 700 * MS, TCB_ANS_STALE);
    tcb_tl_answer(&tl, 1900 * MS, TCB_ANS_ERROR);
    tcb_tl_load(&tl, 550 * MS, 0);
    tcb_tl_load(&tl, 1500 * MS, 1);
    cr_expect_eq(tl.b[0].answers[TCB_ANS_FRESH], 1);
    cr_expect_eq(tl.b[1].answers[TCB_ANS_STALE], 2);
    cr_expect_eq(tl.b[1].answers[TCB_ANS_FRESH], 0);
    cr_expect_eq(tl.b[3].answers[TCB_ANS_ERROR], 1);
    cr_expect_eq(tl.b[1].loads, 1);
    cr_expect_eq(tl.b[3].loads, 1);
    cr_expect_eq(tl.loads, 2);
    cr_expect_eq(tl.failed_loads, 1);
    cr_expect_eq(tl.first_fail_ns, 1500 * MS);
    cr_expect_eq(tl.first_error_ns, 1900 * MS);
    cr_expect_eq(tl.last_stale_ns, 700 * MS);
    cr_expect_eq(tl.tail[TCB_ANS_FRESH] + tl.tail[TCB_ANS_STALE] + tl.tail[TCB_ANS_ERROR], 0,
                 "no split yet: nothing is in the tail");
    tcb_tl_free(&tl);
}

Test(timeline, the_tail_counts_from_the_split_held_at_record_time) {
    tcb_timeline_t tl;
    cr_assert_eq(tcb_tl_init(&tl, 4 * S, 500 * MS, TCB_TL_NONE), 0);
    tcb_tl_answer(&tl, 1 * S, TCB_ANS_FRESH);
    tl.split_ns = 2 * S; /* the first failure became known */
    tcb_tl_answer(&tl, 2 * S - 1, TCB_ANS_FRESH);
    tcb_tl_answer(&tl, 2 * S, TCB_ANS_STALE);
    tcb_tl_answer(&tl, 3 * S, TCB_ANS_ERROR);
    cr_expect_eq(tl.tail[TCB_ANS_FRESH], 0);
    cr_expect_eq(tl.tail[TCB_ANS_STALE], 1);
    cr_expect_eq(tl.tail[TCB_ANS_ERROR], 1);
    tcb_tl_free(&tl);
}

/* The story of one failing-source run with fail-safe on, spread over two threads' timelines
 * and the loader's, as the bench records it. */
static void failsafe_story(tcb_timeline_t tl[3]) {
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tcb_tl_init(&tl[i], 8 * S, 500 * MS, TCB_TL_NONE), 0);
    for (uint64_t t = 0; t < 2 * S; t += 10 * MS)
        tcb_tl_answer(&tl[(t / (10 * MS)) % 2], t, TCB_ANS_FRESH);
    tcb_tl_load(&tl[2], 0, 0);
    tcb_tl_load(&tl[2], 1 * S, 0);
    for (uint64_t t = 2 * S; t <= 5 * S; t += 500 * MS) /* 7 failed reloads, backing off */
        tcb_tl_load(&tl[2], t, 1);
    for (uint64_t t = 5050 * MS; t < 8 * S; t += 50 * MS) /* 59 failed loads, no back-off */
        tcb_tl_load(&tl[2], t, 1);
    for (int i = 0; i < 2; i++)
        tl[i].split_ns = 2 * S;
    for (uint64_t t = 2 * S; t <= 5 * S; t += 10 * MS) /* 301 stale answers */
        tcb_tl_answer(&tl[(t / (10 * MS)) % 2], t, TCB_ANS_STALE);
    for (uint64_t t = 5050 * MS; t < 8 * S; t += 50 * MS) /* 59 errors */
        tcb_tl_answer(&tl[(t / (50 * MS)) % 2], t, TCB_ANS_ERROR);
}

Test(timeline, failsafe_summary_matches_the_story) {
    tcb_timeline_t tl[3];
    failsafe_story(tl);
    for (int i = 1; i < 3; i++)
        cr_assert_eq(tcb_tl_merge(&tl[0], &tl[i]), 0);
    tcb_fail_summary_t s;
    tcb_tl_summarize(&tl[0], 8 * S, &s);
    cr_expect_eq(s.failed, 1);
    cr_expect_eq(tl[0].first_fail_ns, 2 * S);
    cr_expect_eq(tl[0].first_error_ns, 5050 * MS);
    cr_expect_float_eq(s.stale_secs, 3.0, 1e-9);
    cr_expect_eq(tl[0].failed_loads, 66);
    cr_expect_float_eq(s.loads_per_sec, 66.0 / 6.0, 1e-9);
    cr_expect_float_eq(s.stale_loads_per_sec, 7.0 / 3.0, 1e-9);
    cr_expect_float_eq(s.after_loads_per_sec, 59.0 / 3.0, 1e-9);
    cr_expect_eq(s.tail_answers, 301 + 59);
    cr_expect_float_eq(s.error_share, 59.0 / 360.0, 1e-9);
    cr_expect_float_eq(s.stale_share, 301.0 / 360.0, 1e-9);
    cr_expect_eq(tl[0].b[3].answers[TCB_ANS_FRESH], 50);
    cr_expect_eq(tl[0].b[4].answers[TCB_ANS_STALE], 50);
    cr_expect_eq(tl[0].b[4].loads, 1);
    cr_expect_eq(tl[0].b[12].loads, 10);
    cr_expect_eq(tl[0].b[12].answers[TCB_ANS_ERROR], 10);
    for (int i = 0; i < 3; i++)
        tcb_tl_free(&tl[i]);
}

Test(timeline, merge_order_does_not_matter) {
    tcb_timeline_t a[3], b[3];
    failsafe_story(a);
    failsafe_story(b);
    cr_assert_eq(tcb_tl_merge(&a[0], &a[1]), 0);
    cr_assert_eq(tcb_tl_merge(&a[0], &a[2]), 0);
    cr_assert_eq(tcb_tl_merge(&b[2], &b[1]), 0);
    cr_assert_eq(tcb_tl_merge(&b[2], &b[0]), 0);
    tcb_fail_summary_t sa, sb;
    tcb_tl_summarize(&a[0], 8 * S, &sa);
    tcb_tl_summarize(&b[2], 8 * S, &sb);
    cr_expect_float_eq(sa.stale_secs, sb.stale_secs, 1e-12);
    cr_expect_float_eq(sa.stale_loads_per_sec, sb.stale_loads_per_sec, 1e-12);
    cr_expect_float_eq(sa.after_loads_per_sec, sb.after_loads_per_sec, 1e-12);
    cr_expect_float_eq(sa.error_share, sb.error_share, 1e-12);
    cr_expect_eq(a[0].first_error_ns, b[2].first_error_ns);
    for (size_t i = 0; i < a[0].nbuckets; i++)
        cr_expect_eq(a[0].b[i].loads, b[2].b[i].loads, "bucket %zu", i);
    for (int i = 0; i < 3; i++) {
        tcb_tl_free(&a[i]);
        tcb_tl_free(&b[i]);
    }
}

Test(timeline, failsafe_off_serves_no_stale_and_rates_say_so) {
    tcb_timeline_t tl;
    cr_assert_eq(tcb_tl_init(&tl, 4 * S, 500 * MS, TCB_TL_NONE), 0);
    tcb_tl_answer(&tl, 1500 * MS, TCB_ANS_STALE); /* a stale answer before the failure */
    for (uint64_t t = 2 * S; t < 4 * S; t += 100 * MS)
        tcb_tl_load(&tl, t, 1);
    tl.split_ns = 2 * S;
    for (uint64_t t = 2050 * MS; t < 4 * S; t += 100 * MS)
        tcb_tl_answer(&tl, t, TCB_ANS_ERROR);
    tcb_fail_summary_t s;
    tcb_tl_summarize(&tl, 4 * S, &s);
    cr_expect_eq(s.failed, 1);
    cr_expect_eq(s.stale_secs, 0.0, "stale before the failure is not fail-safe");
    cr_expect_lt(s.stale_loads_per_sec, 0.0);
    cr_expect_lt(s.after_loads_per_sec, 0.0);
    cr_expect_float_eq(s.loads_per_sec, 10.0, 1e-9);
    cr_expect_float_eq(s.error_share, 1.0, 1e-12);
    tcb_tl_free(&tl);
}

Test(timeline, no_failure_no_failure_figures) {
    tcb_timeline_t tl, other;
    cr_assert_eq(tcb_tl_init(&tl, 2 * S, 500 * MS, TCB_TL_NONE), 0);
    cr_assert_eq(tcb_tl_init(&other, 2 * S, 250 * MS, TCB_TL_NONE), 0);
    cr_expect_eq(tcb_tl_merge(&tl, &other), -1, "different buckets cannot be merged");
    tcb_tl_load(&tl, 10 * MS, 0);
    tcb_tl_answer(&tl, 20 * MS, TCB_ANS_FRESH);
    tcb_fail_summary_t s;
    tcb_tl_summarize(&tl, 2 * S, &s);
    cr_expect_eq(s.failed, 0);
    cr_expect_eq(s.stale_secs, 0.0);
    cr_expect_eq(s.loads_per_sec, 0.0);
    cr_expect_eq(s.tail_answers, 0);
    cr_expect_eq(tl.first_fail_ns, TCB_TL_NONE);
    cr_expect_eq(tcb_tl_failed_between(&tl, 0, UINT64_MAX), 0);
    tcb_tl_free(&tl);
    tcb_tl_free(&other);
}
