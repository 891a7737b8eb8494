/*
 * test_json.c - the JSON writer and the reports built on it: every document must parse
 * (strict validator in json_check.h), carry the numbers it was given, and say null where
 * a figure does not exist (no NaN, which JSON cannot express).
 */
/* tc-test-labels: unit */
#include "json.h"
#include "json_check.h"
#include "report.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Run fn(f) into a memory buffer; returns the malloc'ed text. */
#define CAPTURE(var, body)                                                                     \
    char *var = NULL;                                                                          \
    do {                                                                                       \
        size_t len_;                                                                           \
        FILE *f = open_memstream(&var, &len_);                                                 \
        cr_assert_not_null(f);                                                                 \
        body;                                                                                  \
        fclose(f);                                                                             \
    } while (0)

Test(json, validator_rejects_what_it_should) {
    cr_expect_eq(json_check("{\"a\": [1, 2.5e-3, -0, true, null, \"x\\n\\u00e9\"]}"), 0);
    cr_expect_eq(json_check("{\"a\": 1,}"), -1);
    cr_expect_eq(json_check("{\"a\" 1}"), -1);
    cr_expect_eq(json_check("[nan]"), -1);
    cr_expect_eq(json_check("[01]"), -1);
    cr_expect_eq(json_check("{} {}"), -1);
    cr_expect_eq(json_check("\"tab\there\""), -1);
}

Test(json, nesting_commas_escapes_and_non_finite) {
    CAPTURE(text, {
        tcb_json_t j;
        tcb_json_init(&j, f);
        tcb_json_obj_begin(&j, NULL);
        tcb_json_str(&j, "s", "quote\" backslash\\ nl\n ctl\x01 tab\t");
        tcb_json_u64(&j, "big", UINT64_MAX);
        tcb_json_dbl(&j, "half", 0.5);
        tcb_json_dbl(&j, "nan", NAN);
        tcb_json_dbl(&j, "inf", INFINITY);
        tcb_json_bool(&j, "yes", 1);
        tcb_json_null(&j, "nothing");
        tcb_json_str(&j, "nullstr", NULL);
        tcb_json_arr_begin(&j, "empty");
        tcb_json_arr_end(&j);
        tcb_json_obj_begin(&j, "emptyobj");
        tcb_json_obj_end(&j);
        tcb_json_arr_begin(&j, "list");
        for (int i = 0; i < 3; i++) {
            tcb_json_obj_begin(&j, NULL);
            tcb_json_u64(&j, "i", (uint64_t)i);
            tcb_json_obj_end(&j);
        }
        tcb_json_arr_end(&j);
        tcb_json_obj_end(&j);
    });
    cr_assert_eq(json_check(text), 0, "invalid JSON:\n%s", text);
    cr_expect(strstr(text, "\"quote\\\" backslash\\\\ nl\\n ctl\\u0001 tab\\t\"") != NULL, "%s",
              text);
    cr_expect(strstr(text, "\"big\": 18446744073709551615") != NULL);
    cr_expect(strstr(text, "\"half\": 0.5") != NULL);
    cr_expect(strstr(text, "\"nan\": null") != NULL);
    cr_expect(strstr(text, "\"inf\": null") != NULL);
    cr_expect(strstr(text, "\"empty\": []") != NULL);
    cr_expect(strstr(text, "\"emptyobj\": {}") != NULL);
    cr_expect(strstr(text, "\"nullstr\": null") != NULL);
    free(text);
}

static void sample(tcb_result_t *ro, tcb_result_t *tc, tcb_report_ctx_t *c) {
    memset(ro, 0, sizeof *ro);
    memset(tc, 0, sizeof *tc);
    memset(c, 0, sizeof *c);
    c->command = "compare";
    snprintf(c->workload, sizeof c->workload, "zipf(0.99)");
    c->nkeys = 1000000;
    snprintf(c->vsize, sizeof c->vsize, "100 B");
    c->threads = 2;
    c->duration_ns = 8000000000ull;
    snprintf(c->redis, sizeof c->redis, "unix:///tmp/x \"quoted\"");
    snprintf(c->l1, sizeof c->l1, "10%% of the keys");
    snprintf(ro->mode, sizeof ro->mode, "redis-only");
    ro->ops = ro->reads = 400000;
    ro->secs = 8.0;
    ro->p50 = 31000;
    ro->p99 = 90000;
    ro->l2_hits = 400000;
    ro->redis.commands = 400000;
    ro->redis.net_in = 40000000;
    ro->redis.net_out = 24800000;
    ro->redis.ncmds = 1;
    snprintf(ro->redis.cmds[0].name, sizeof ro->redis.cmds[0].name, "get");
    ro->redis.cmds[0].calls = 400000;
    snprintf(tc->mode, sizeof tc->mode, "tiercache");
    tc->has_l1 = 1;
    tc->l1_pct = 10;
    tc->l1_cap_entries = 100000;
    tc->l1_cap_bytes = 37300000;
    tc->ops = tc->reads = 1200000;
    tc->secs = 8.0;
    tc->p50 = 600;
    tc->p99 = 95000;
    tc->l1_hits = 900000;
    tc->l1_misses = 300000;
    tc->l2_hits = 300000;
    tc->redis.commands = 600000;
    tc->l1_bytes = 24500000;
    tc->l1_entries = 100000;
}

Test(report, compare_json_parses_and_carries_the_figures) {
    tcb_result_t ro, tc;
    tcb_report_ctx_t c;
    sample(&ro, &tc, &c);
    CAPTURE(text, tcb_report_compare_json(f, &c, &ro, &tc));
    cr_assert_eq(json_check(text), 0, "invalid JSON:\n%s", text);
    cr_expect(strstr(text, "\"command\": \"compare\"") != NULL);
    cr_expect(strstr(text, "\"ops_per_sec\": 50000") != NULL, "%s", text);
    cr_expect(strstr(text, "\"ops_per_sec\": 150000") != NULL);
    cr_expect(strstr(text, "\"throughput\": 3") != NULL);
    cr_expect(strstr(text, "\"l1\": 0.75") != NULL); /* tiercache L1 hit rate */
    cr_expect(strstr(text, "\"l1\": null") != NULL); /* redis-only has no L1 */
    cr_expect(strstr(text, "\"bytes_per_entry\": 245") != NULL);
    cr_expect(strstr(text, "\"get\": 400000") != NULL);
    cr_expect(strstr(text, "\"throughput_bound\": 4") != NULL); /* 1 / 0.25 */
    cr_expect(strstr(text, "\"fraction_of_bound\": 0.75") != NULL);
    cr_expect(strstr(text, "\\\"quoted\\\"") != NULL);
    free(text);
}

Test(report, zero_ops_gives_nulls_not_nan) {
    tcb_result_t ro, tc;
    tcb_report_ctx_t c;
    sample(&ro, &tc, &c);
    memset(&tc, 0, sizeof tc);
    snprintf(tc.mode, sizeof tc.mode, "tiercache");
    tc.has_l1 = 1;
    CAPTURE(text, tcb_report_compare_json(f, &c, &ro, &tc));
    cr_assert_eq(json_check(text), 0, "invalid JSON:\n%s", text);
    cr_expect(strstr(text, "nan") == NULL);
    cr_expect(strstr(text, "inf") == NULL);
    free(text);
}

Test(report, compare_table_has_every_row) {
    tcb_result_t ro, tc;
    tcb_report_ctx_t c;
    sample(&ro, &tc, &c);
    CAPTURE(text, tcb_report_compare_table(f, &c, &ro, &tc));
    const char *rows[] = {"throughput (ops/s)",
                          "latency p50",
                          "latency p90",
                          "latency p99",
                          "latency p99.9",
                          "latency max",
                          "hit rate L1",
                          "hit rate L2 (Redis)",
                          "hit rate overall",
                          "Redis commands / op",
                          "Redis network bytes / op",
                          "source loads / op",
                          "L1 bytes",
                          "L1 bytes / entry",
                          "invalidations sent / applied",
                          "3.00x",
                          "75.0%",
                          "150,000"};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cr_expect(strstr(text, rows[i]) != NULL, "missing '%s' in\n%s", rows[i], text);
    cr_expect(strstr(text, "could run 4.00x") != NULL, "%s", text);
    free(text);
}

/* compare in alternating windows: the median per-round ratio against the bound, in the
 * table and the JSON; absent when the modes ran one after the other (speedup.n 0). */
Test(report, compare_per_round_ratios_meet_the_bound) {
    tcb_result_t ro, tc;
    tcb_report_ctx_t c;
    sample(&ro, &tc, &c);
    CAPTURE(plain, tcb_report_compare_json(f, &c, &ro, &tc));
    cr_expect(strstr(plain, "per_round") == NULL, "%s", plain);
    free(plain);
    tc.speedup = (tcb_spread_t){.min = 1.5, .med = 3.6, .max = 4.5, .n = 16};
    CAPTURE(text, tcb_report_compare_json(f, &c, &ro, &tc));
    cr_assert_eq(json_check(text), 0, "invalid JSON:\n%s", text);
    cr_expect(strstr(text, "\"throughput_per_round\"") != NULL, "%s", text);
    cr_expect(strstr(text, "\"median\": 3.6") != NULL, "%s", text);
    cr_expect(strstr(text, "\"fraction_of_bound_median\": 0.9") != NULL, "%s", text);
    free(text);
    CAPTURE(table, tcb_report_compare_table(f, &c, &ro, &tc));
    cr_expect(strstr(table, "median 3.60x (1.50x..4.50x) = 0.90 of that bound") != NULL, "%s",
              table);
    free(table);
}

Test(report, sweep_json_and_csv) {
    tcb_result_t ro, pts[2];
    tcb_report_ctx_t c;
    sample(&ro, &pts[0], &c);
    pts[1] = pts[0];
    pts[1].l1_pct = 20;
    pts[1].l1_hits = 1100000;
    pts[1].l1_misses = 100000;
    c.command = "sweep";
    CAPTURE(js, tcb_report_sweep_json(f, &c, &ro, pts, 2));
    cr_assert_eq(json_check(js), 0, "invalid JSON:\n%s", js);
    cr_expect(strstr(js, "\"points\"") != NULL);
    cr_expect(strstr(js, "\"l1_pct\": 20") != NULL);
    free(js);
    CAPTURE(csv, tcb_report_sweep_csv(f, &ro, pts, 2));
    int lines = 0, commas_first = -1;
    for (char *p = csv, *line = csv; *p; p++) {
        if (*p != '\n')
            continue;
        int commas = 0;
        for (char *q = line; q < p; q++)
            commas += *q == ',';
        if (commas_first < 0)
            commas_first = commas;
        cr_expect_eq(commas, commas_first, "line %d has %d fields", lines, commas + 1);
        lines++;
        line = p + 1;
    }
    cr_expect_eq(lines, 4); /* header, baseline, two points */
    cr_expect(strncmp(csv, "mode,l1_pct,", 12) == 0);
    cr_expect(strstr(csv, "\ntiercache,20.000000,") != NULL, "%s", csv);
    cr_expect(strstr(csv, "0.083333") != NULL); /* 100000 / 1200000 misses */
    free(csv);
}
