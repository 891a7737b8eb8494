/*
 * report.c - the results table, JSON and CSV (see report.h).
 *
 * The table is built row by row from (label, redis-only text, tiercache text, ratio
 * text), so each column's meaning sits on one line of code next to its formatting. The
 * bound line under the table applies the model: if an L1 hit cost nothing, only
 * the operations that reach Redis (L1 misses and writes) would take time, so tiercache
 * could run at most 1 / (that share) times faster than redis-only.
 */
#include "report.h"

#include "checks.h"
#include "fmt.h"
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef TCB_VERSION
#define TCB_VERSION "unknown"
#endif

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void tcb_spread_of(double *v, unsigned n, tcb_spread_t *out) {
    memset(out, 0, sizeof *out);
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_double);
    out->min = v[0];
    out->max = v[n - 1];
    out->med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
    out->n = n;
}

static double ratio(double a, double b) {
    return b > 0 ? a / b : NAN;
}

double tcb_res_ops_per_s(const tcb_result_t *r) {
    return r->secs > 0 ? (double)r->ops / r->secs : NAN;
}

double tcb_res_l1_hit(const tcb_result_t *r) {
    return r->has_l1 ? ratio((double)r->l1_hits, (double)(r->l1_hits + r->l1_misses)) : NAN;
}

double tcb_res_l2_hit(const tcb_result_t *r) {
    return ratio((double)r->l2_hits, (double)(r->l2_hits + r->l2_misses));
}

double tcb_res_overall_hit(const tcb_result_t *r) {
    if (r->reads == 0)
        return NAN;
    double misses = r->loads > r->reads ? (double)r->reads : (double)r->loads;
    return 1.0 - misses / (double)r->reads;
}

double tcb_res_per_op(const tcb_result_t *r, uint64_t v) {
    return ratio((double)v, (double)r->ops);
}

double tcb_res_redis_share(const tcb_result_t *r) {
    if (!r->has_l1)
        return 1.0;
    return ratio((double)(r->l1_misses + r->writes), (double)r->ops);
}

/* ---- table ---- */

typedef char cell_t[32];

static void c_pct(cell_t c, double v) {
    if (isnan(v))
        snprintf(c, sizeof(cell_t), "-");
    else
        snprintf(c, sizeof(cell_t), "%.1f%%", 100.0 * v);
}

static void c_num(cell_t c, double v, int prec) {
    if (isnan(v))
        snprintf(c, sizeof(cell_t), "-");
    else
        snprintf(c, sizeof(cell_t), "%.*f", prec, v);
}

static void c_count(cell_t c, uint64_t v) {
    tcb_fmt_count(v, c, sizeof(cell_t));
}

static void c_ns(cell_t c, uint64_t v) {
    tcb_fmt_ns((double)v, c, sizeof(cell_t));
}

static void c_ratio(cell_t c, double a, double b) {
    double x = ratio(a, b);
    if (isnan(x) || isinf(x))
        snprintf(c, sizeof(cell_t), "-");
    else
        snprintf(c, sizeof(cell_t), x < 0.1 ? "%.3fx" : "%.2fx", x);
}

/* "25,000..34,000": a throughput spread's extremes. */
static void spread_cell(cell_t c, const tcb_spread_t *sp) {
    char a[32];
    tcb_fmt_count((uint64_t)llround(sp->min), c, sizeof(cell_t) / 2 - 1);
    tcb_fmt_count((uint64_t)llround(sp->max), a, sizeof(cell_t) / 2 - 1);
    size_t n = strlen(c);
    memcpy(c + n, "..", 2);
    memcpy(c + n + 2, a, strlen(a) + 1);
}

static void row(FILE *f, const char *label, const char *a, const char *b, const char *r) {
    fprintf(f, "  %-30s %14s %14s", label, a, b);
    if (r && *r)
        fprintf(f, " %12s", r);
    fputc('\n', f);
}

static void header(FILE *f, const tcb_report_ctx_t *c) {
    char n[32], dur[32], warm[32], src[32];
    fprintf(f, "\ntiercache-bench %s: %s over %s keys (17 B keys, %s values), %.3g%% writes\n",
            c->command, c->workload, tcb_fmt_count(c->nkeys, n, sizeof n), c->vsize,
            100.0 * c->write_frac);
    if (c->ops)
        snprintf(dur, sizeof dur, "%s ops", tcb_fmt_count(c->ops, warm, sizeof warm));
    else
        tcb_fmt_ns((double)c->duration_ns, dur, sizeof dur);
    char wdesc[48] = "no warm-up";
    if (c->warmup_ns)
        snprintf(wdesc, sizeof wdesc, "%s warm-up",
                 tcb_fmt_ns((double)c->warmup_ns, warm, sizeof warm));
    tcb_fmt_ns((double)c->source_ns, src, sizeof src);
    fprintf(f, "  %u thread%s, %s measured per mode after %s; source latency %s;\n", c->threads,
            c->threads == 1 ? "" : "s", dur, wdesc, src);
    char ttl[32];
    unsigned long long t = (unsigned long long)c->ttl_ms;
    if (t % 60000 == 0)
        snprintf(ttl, sizeof ttl, "%llu min", t / 60000);
    else if (t % 1000 == 0)
        snprintf(ttl, sizeof ttl, "%llu s", t / 1000);
    else
        snprintf(ttl, sizeof ttl, "%llu ms", t);
    fprintf(f, "  TTL %s; Redis %s\n", ttl,
            c->preload ? "preloaded with every key" : "empty at start");
    fprintf(f, "  Redis: %s\n  L1: %s\n\n", c->redis, c->l1);
}

static void latency_rows(FILE *f, const tcb_result_t *ro, const tcb_result_t *tc) {
    static const char *const names[] = {"latency p50", "latency p90", "latency p99",
                                        "latency p99.9", "latency max"};
    const uint64_t a[] = {ro->p50, ro->p90, ro->p99, ro->p999, ro->max};
    const uint64_t b[] = {tc->p50, tc->p90, tc->p99, tc->p999, tc->max};
    for (int i = 0; i < 5; i++) {
        cell_t x, y, r;
        c_ns(x, a[i]);
        c_ns(y, b[i]);
        c_ratio(r, (double)b[i], (double)a[i]);
        row(f, names[i], x, y, r);
    }
}

static void hit_rows(FILE *f, const tcb_result_t *ro, const tcb_result_t *tc) {
    cell_t x, y;
    c_pct(x, tcb_res_l1_hit(ro));
    c_pct(y, tcb_res_l1_hit(tc));
    row(f, "hit rate L1", x, y, NULL);
    c_pct(x, tcb_res_l2_hit(ro));
    c_pct(y, tcb_res_l2_hit(tc));
    row(f, "hit rate L2 (Redis)", x, y, NULL);
    c_pct(x, tcb_res_overall_hit(ro));
    c_pct(y, tcb_res_overall_hit(tc));
    row(f, "hit rate overall", x, y, NULL);
}

static void redis_rows(FILE *f, const tcb_result_t *ro, const tcb_result_t *tc) {
    cell_t x, y, r;
    double a = tcb_res_per_op(ro, ro->redis.commands),
           b = tcb_res_per_op(tc, tc->redis.commands);
    c_num(x, a, 3);
    c_num(y, b, 3);
    c_ratio(r, b, a);
    row(f, "Redis commands / op", x, y, r);
    a = tcb_res_per_op(ro, ro->redis.net_in + ro->redis.net_out);
    b = tcb_res_per_op(tc, tc->redis.net_in + tc->redis.net_out);
    c_num(x, a, 1);
    c_num(y, b, 1);
    c_ratio(r, b, a);
    row(f, "Redis network bytes / op", x, y, r);
    c_num(x, tcb_res_per_op(ro, ro->loads), 5);
    c_num(y, tcb_res_per_op(tc, tc->loads), 5);
    row(f, "source loads / op", x, y, NULL);
}

static void l1_rows(FILE *f, const tcb_result_t *ro, const tcb_result_t *tc) {
    cell_t x = "-", y, z;
    const tcb_result_t *rs[2] = {ro, tc};
    cell_t *out[2] = {&x, &y};
    for (int i = 0; i < 2; i++) {
        if (rs[i]->has_l1)
            tcb_fmt_bytes((double)rs[i]->l1_bytes, *out[i], sizeof(cell_t));
        else
            snprintf(*out[i], sizeof(cell_t), "-");
    }
    row(f, "L1 bytes", x, y, NULL);
    snprintf(x, sizeof x, "-");
    if (tc->has_l1)
        c_count(y, tc->l1_entries);
    row(f, "L1 entries", x, tc->has_l1 ? y : "-", NULL);
    c_num(y, tc->has_l1 ? ratio((double)tc->l1_bytes, (double)tc->l1_entries) : NAN, 0);
    row(f, "L1 bytes / entry", x, y, NULL);
    c_count(y, tc->inval_sent);
    c_count(z, tc->inval_applied);
    char both[80];
    snprintf(both, sizeof both, "%s / %s", y, z);
    row(f, "invalidations sent / applied", x, both, NULL);
    c_count(x, ro->errors);
    c_count(y, tc->errors);
    row(f, "errors", x, y, NULL);
}

static void bound_line(FILE *f, const tcb_result_t *ro, const tcb_result_t *tc) {
    double share = tcb_res_redis_share(tc);
    double got = ratio(tcb_res_ops_per_s(tc), tcb_res_ops_per_s(ro));
    if (!tc->has_l1 || tc->l1_cap_bytes == 0 || isnan(share) || share <= 0 || isnan(got))
        return; /* no L1, no bound to speak of */
    double bound = 1.0 / share;
    fprintf(f,
            "\n  %.1f%% of tiercache's operations reached Redis (L1 misses + writes). If L1 "
            "hits\n  cost nothing, tiercache could run %.2fx redis-only; it ran %.2fx = %.2f "
            "of that bound.\n",
            100.0 * share, bound, got, got / bound);
    if (tc->speedup.n > 1) /* alternating rounds: the median one drift cannot move */
        fprintf(f,
                "  Per round (%u alternating windows of each): median %.2fx (%.2fx..%.2fx) = "
                "%.2f of that bound.\n",
                tc->speedup.n, tc->speedup.med, tc->speedup.min, tc->speedup.max,
                tc->speedup.med / bound);
}

static void error_lines(FILE *f, const tcb_result_t *ro, const tcb_result_t *tc) {
    const tcb_result_t *rs[2] = {ro, tc};
    for (int i = 0; i < 2; i++) {
        if (rs[i]->errors)
            fprintf(f, "  %s: %llu errors, the first was %s\n", rs[i]->mode,
                    (unsigned long long)rs[i]->errors, rs[i]->first_error);
        if (rs[i]->interrupted)
            fprintf(f, "  %s: interrupted before the end; figures cover what ran\n",
                    rs[i]->mode);
    }
}

void tcb_report_compare_table(FILE *f, const tcb_report_ctx_t *c, const tcb_result_t *ro,
                              const tcb_result_t *tc) {
    header(f, c);
    row(f, "", ro->mode, tc->mode, "ratio");
    cell_t x, y, r;
    c_count(x, (uint64_t)llround(tcb_res_ops_per_s(ro)));
    c_count(y, (uint64_t)llround(tcb_res_ops_per_s(tc)));
    c_ratio(r, tcb_res_ops_per_s(tc), tcb_res_ops_per_s(ro));
    row(f, "throughput (ops/s)", x, y, r);
    if (ro->tput.n > 1 && tc->tput.n > 1) {
        spread_cell(x, &ro->tput);
        spread_cell(y, &tc->tput);
        row(f, "  per window min..max", x, y, NULL);
    }
    latency_rows(f, ro, tc);
    hit_rows(f, ro, tc);
    redis_rows(f, ro, tc);
    l1_rows(f, ro, tc);
    bound_line(f, ro, tc);
    error_lines(f, ro, tc);
    fputc('\n', f);
}

/* ---- JSON ---- */

static void json_ctx(tcb_json_t *j, const tcb_report_ctx_t *c) {
    tcb_json_obj_begin(j, "config");
    tcb_json_str(j, "workload", c->workload);
    tcb_json_u64(j, "keys", c->nkeys);
    tcb_json_u64(j, "key_bytes", 17);
    tcb_json_str(j, "value_size", c->vsize);
    tcb_json_dbl(j, "write_fraction", c->write_frac);
    tcb_json_u64(j, "threads", c->threads);
    tcb_json_dbl(j, "duration_s", (double)c->duration_ns / 1e9);
    tcb_json_dbl(j, "warmup_s", (double)c->warmup_ns / 1e9);
    tcb_json_u64(j, "ops_limit", c->ops);
    tcb_json_dbl(j, "source_latency_us", (double)c->source_ns / 1e3);
    tcb_json_u64(j, "ttl_ms", c->ttl_ms);
    tcb_json_bool(j, "preload", c->preload);
    tcb_json_str(j, "redis", c->redis);
    tcb_json_str(j, "l1", c->l1);
    tcb_json_u64(j, "seed", c->seed);
    tcb_json_obj_end(j);
}

static void json_spread(tcb_json_t *j, const char *key, const tcb_spread_t *sp) {
    if (sp->n == 0) {
        tcb_json_null(j, key);
        return;
    }
    tcb_json_obj_begin(j, key);
    tcb_json_dbl(j, "min", sp->min);
    tcb_json_dbl(j, "median", sp->med);
    tcb_json_dbl(j, "max", sp->max);
    tcb_json_u64(j, "windows", sp->n);
    tcb_json_obj_end(j);
}

static void json_latency(tcb_json_t *j, const tcb_result_t *r) {
    tcb_json_obj_begin(j, "latency_ns");
    tcb_json_u64(j, "p50", r->p50);
    tcb_json_u64(j, "p90", r->p90);
    tcb_json_u64(j, "p99", r->p99);
    tcb_json_u64(j, "p999", r->p999);
    tcb_json_u64(j, "max", r->max);
    tcb_json_dbl(j, "mean", r->mean);
    tcb_json_obj_end(j);
}

static void json_redis(tcb_json_t *j, const tcb_result_t *r) {
    tcb_json_obj_begin(j, "redis");
    tcb_json_u64(j, "commands", r->redis.commands);
    tcb_json_dbl(j, "commands_per_op", tcb_res_per_op(r, r->redis.commands));
    tcb_json_u64(j, "net_in_bytes", r->redis.net_in);
    tcb_json_u64(j, "net_out_bytes", r->redis.net_out);
    tcb_json_dbl(j, "net_bytes_per_op", tcb_res_per_op(r, r->redis.net_in + r->redis.net_out));
    tcb_json_obj_begin(j, "calls_by_command");
    for (size_t i = 0; i < r->redis.ncmds; i++)
        if (r->redis.cmds[i].calls)
            tcb_json_u64(j, r->redis.cmds[i].name, r->redis.cmds[i].calls);
    tcb_json_obj_end(j);
    tcb_json_obj_end(j);
}

static void json_l1(tcb_json_t *j, const tcb_result_t *r) {
    if (!r->has_l1) {
        tcb_json_null(j, "l1");
        return;
    }
    tcb_json_obj_begin(j, "l1");
    if (r->l1_pct >= 0)
        tcb_json_dbl(j, "size_pct_of_keys", r->l1_pct);
    else
        tcb_json_null(j, "size_pct_of_keys");
    tcb_json_u64(j, "capacity_entries", r->l1_cap_entries);
    tcb_json_u64(j, "capacity_bytes", r->l1_cap_bytes);
    tcb_json_u64(j, "bytes", r->l1_bytes);
    tcb_json_u64(j, "entries", r->l1_entries);
    tcb_json_dbl(j, "bytes_per_entry", ratio((double)r->l1_bytes, (double)r->l1_entries));
    tcb_json_u64(j, "evictions", r->l1_evictions);
    tcb_json_obj_end(j);
}

static void json_result(tcb_json_t *j, const char *key, const tcb_result_t *r) {
    tcb_json_obj_begin(j, key);
    tcb_json_str(j, "mode", r->mode);
    tcb_json_u64(j, "ops", r->ops);
    tcb_json_u64(j, "reads", r->reads);
    tcb_json_u64(j, "writes", r->writes);
    tcb_json_dbl(j, "seconds", r->secs);
    tcb_json_dbl(j, "ops_per_sec", tcb_res_ops_per_s(r));
    json_spread(j, "ops_per_sec_windows", &r->tput);
    json_latency(j, r);
    tcb_json_obj_begin(j, "hit_rate");
    tcb_json_dbl(j, "l1", tcb_res_l1_hit(r));
    tcb_json_dbl(j, "l2", tcb_res_l2_hit(r));
    tcb_json_dbl(j, "overall", tcb_res_overall_hit(r));
    tcb_json_obj_end(j);
    json_redis(j, r);
    tcb_json_u64(j, "loads", r->loads);
    tcb_json_dbl(j, "loads_per_op", tcb_res_per_op(r, r->loads));
    json_l1(j, r);
    tcb_json_obj_begin(j, "invalidations");
    tcb_json_u64(j, "sent", r->inval_sent);
    tcb_json_u64(j, "applied", r->inval_applied);
    tcb_json_obj_end(j);
    tcb_json_u64(j, "errors", r->errors);
    tcb_json_str(j, "first_error", r->errors ? r->first_error : NULL);
    tcb_json_bool(j, "interrupted", r->interrupted);
    tcb_json_obj_end(j);
}

static void json_ratios(tcb_json_t *j, const tcb_result_t *ro, const tcb_result_t *tc) {
    tcb_json_obj_begin(j, "ratios");
    double got = ratio(tcb_res_ops_per_s(tc), tcb_res_ops_per_s(ro));
    tcb_json_dbl(j, "throughput", got);
    tcb_json_dbl(j, "p50", ratio((double)tc->p50, (double)ro->p50));
    tcb_json_dbl(j, "p99", ratio((double)tc->p99, (double)ro->p99));
    tcb_json_dbl(
        j, "redis_commands_per_op",
        ratio(tcb_res_per_op(tc, tc->redis.commands), tcb_res_per_op(ro, ro->redis.commands)));
    tcb_json_dbl(j, "net_bytes_per_op",
                 ratio(tcb_res_per_op(tc, tc->redis.net_in + tc->redis.net_out),
                       tcb_res_per_op(ro, ro->redis.net_in + ro->redis.net_out)));
    double share = tcb_res_redis_share(tc);
    int l1_on = tc->has_l1 && tc->l1_cap_bytes > 0;
    tcb_json_dbl(j, "redis_share_of_ops", l1_on ? share : NAN);
    tcb_json_dbl(j, "throughput_bound", l1_on ? ratio(1.0, share) : NAN);
    tcb_json_dbl(j, "fraction_of_bound", l1_on ? got * share : NAN);
    if (tc->speedup.n) { /* alternating windows: tiercache / redis-only in each round */
        json_spread(j, "throughput_per_round", &tc->speedup);
        tcb_json_dbl(j, "fraction_of_bound_median", l1_on ? tc->speedup.med * share : NAN);
    }
    tcb_json_obj_end(j);
}

static void json_head(tcb_json_t *j, const tcb_report_ctx_t *c) {
    tcb_json_obj_begin(j, NULL);
    tcb_json_str(j, "tool", "tiercache-bench");
    tcb_json_str(j, "version", TCB_VERSION);
    tcb_json_str(j, "command", c->command);
    json_ctx(j, c);
}

void tcb_report_compare_json(FILE *f, const tcb_report_ctx_t *c, const tcb_result_t *ro,
                             const tcb_result_t *tc) {
    tcb_json_t j;
    tcb_json_init(&j, f);
    json_head(&j, c);
    tcb_json_arr_begin(&j, "modes");
    json_result(&j, NULL, ro);
    json_result(&j, NULL, tc);
    tcb_json_arr_end(&j);
    json_ratios(&j, ro, tc);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

/* ---- sweep ---- */

/* A sweep point's throughput and speedup are medians over its windows (each paired with a
 * baseline window); a result measured in one window has only its total. */
static double sweep_ops(const tcb_result_t *r) {
    return r->tput.n ? r->tput.med : tcb_res_ops_per_s(r);
}

static double sweep_speedup(const tcb_result_t *r, const tcb_result_t *base) {
    return r->speedup.n ? r->speedup.med : ratio(sweep_ops(r), sweep_ops(base));
}

static void sweep_row(FILE *f, const char *label, const char *entries, const char *miss,
                      const tcb_result_t *r, const char *speedup, const char *sp_range) {
    cell_t ops, range = "-", p50, p99;
    c_count(ops, (uint64_t)llround(sweep_ops(r)));
    if (r->tput.n > 1)
        spread_cell(range, &r->tput);
    c_ns(p50, r->p50);
    c_ns(p99, r->p99);
    fprintf(f, "  %-10s %9s %8s %9s %-17s %8s %-12s %9s %9s %8.3f\n", label, entries, miss, ops,
            range, speedup, sp_range, p50, p99, tcb_res_per_op(r, r->redis.commands));
}

void tcb_report_sweep_table(FILE *f, const tcb_report_ctx_t *c, const tcb_result_t *base,
                            const tcb_result_t *pts, int n) {
    header(f, c);
    fprintf(f, "  %-10s %9s %8s %9s %-17s %8s %-12s %9s %9s %8s\n", "L1 %keys", "entries",
            "L1 miss", "ops/s", "  min..max", "speedup", "  min..max", "p50", "p99", "cmds/op");
    sweep_row(f, "redis-only", "-", "-", base, "1.00x", "-");
    for (int i = 0; i < n; i++) {
        const tcb_result_t *p = &pts[i];
        cell_t pct, entries, miss, sp, range = "-";
        snprintf(pct, sizeof pct, "%.3g%%", p->l1_pct);
        c_count(entries, p->l1_entries);
        c_pct(miss, 1.0 - tcb_res_l1_hit(p));
        c_ratio(sp, sweep_speedup(p, base), 1.0);
        if (p->speedup.n > 1)
            snprintf(range, sizeof range, "%.2f..%.2fx", p->speedup.min, p->speedup.max);
        sweep_row(f, pct, entries, miss, p, sp, range);
    }
    if (base->tput.n > 1)
        fprintf(f,
                "\n  ops/s is the median of a mode's measured windows, min..max their range;"
                "\n  the redis-only row spans all %u of its windows, measured between the "
                "sizes'.\n  speedup is the median of the per-round ratios: each tiercache "
                "window over\n  the redis-only window just before it. entries: L1 entries at "
                "the end.\n",
                base->tput.n);
    fputc('\n', f);
    tcb_warnings_print(f);
}

void tcb_report_sweep_json(FILE *f, const tcb_report_ctx_t *c, const tcb_result_t *base,
                           const tcb_result_t *pts, int n) {
    tcb_json_t j;
    tcb_json_init(&j, f);
    json_head(&j, c);
    json_result(&j, "baseline", base);
    tcb_json_arr_begin(&j, "points");
    for (int i = 0; i < n; i++) {
        tcb_json_obj_begin(&j, NULL);
        tcb_json_dbl(&j, "l1_pct", pts[i].l1_pct);
        tcb_json_dbl(&j, "l1_miss_ratio", 1.0 - tcb_res_l1_hit(&pts[i]));
        tcb_json_dbl(&j, "speedup", sweep_speedup(&pts[i], base));
        json_spread(&j, "speedup_rounds", &pts[i].speedup);
        json_result(&j, "result", &pts[i]);
        tcb_json_obj_end(&j);
    }
    tcb_json_arr_end(&j);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

static void csv_num(FILE *f, double v, int prec) {
    if (isnan(v) || isinf(v))
        fputs(",", f);
    else
        fprintf(f, ",%.*f", prec, v);
}

static void csv_row(FILE *f, const tcb_result_t *r, const tcb_result_t *base) {
    fprintf(f, "%s", r->mode);
    csv_num(f, r->has_l1 ? r->l1_pct : 0.0, 6);
    fprintf(f, ",%llu,%llu", (unsigned long long)r->l1_entries,
            (unsigned long long)r->l1_bytes);
    csv_num(f, r->has_l1 ? 1.0 - tcb_res_l1_hit(r) : 1.0, 6);
    csv_num(f, tcb_res_l2_hit(r), 6);
    csv_num(f, tcb_res_ops_per_s(r), 1);
    csv_num(f, r->tput.n ? r->tput.min : NAN, 1);
    csv_num(f, sweep_ops(r), 1);
    csv_num(f, r->tput.n ? r->tput.max : NAN, 1);
    csv_num(f, r == base ? 1.0 : sweep_speedup(r, base), 4);
    csv_num(f, r->speedup.n ? r->speedup.min : NAN, 4);
    csv_num(f, r->speedup.n ? r->speedup.max : NAN, 4);
    fprintf(f, ",%llu,%llu,%llu,%llu,%llu", (unsigned long long)r->p50,
            (unsigned long long)r->p90, (unsigned long long)r->p99, (unsigned long long)r->p999,
            (unsigned long long)r->max);
    csv_num(f, tcb_res_per_op(r, r->redis.commands), 5);
    csv_num(f, tcb_res_per_op(r, r->redis.net_in + r->redis.net_out), 2);
    csv_num(f, tcb_res_per_op(r, r->loads), 6);
    fprintf(f, ",%llu\n", (unsigned long long)r->errors);
}

double tcb_report_sweep_ops(const tcb_result_t *r) {
    return sweep_ops(r);
}

void tcb_report_sweep_csv(FILE *f, const tcb_result_t *base, const tcb_result_t *pts, int n) {
    fputs("mode,l1_pct,l1_entries,l1_bytes,l1_miss_ratio,l2_hit_ratio,ops_per_sec,"
          "ops_per_sec_min,ops_per_sec_median,ops_per_sec_max,speedup,speedup_min,speedup_max,"
          "p50_ns,p90_ns,p99_ns,p999_ns,max_ns,redis_cmds_per_op,net_bytes_per_op,"
          "loads_per_op,errors\n",
          f);
    csv_row(f, base, base);
    for (int i = 0; i < n; i++)
        csv_row(f, &pts[i], base);
}
