/*
 * report.h - one measured mode as numbers, and the table / JSON / CSV views of them.
 *
 * A tcb_result_t holds raw counts from the measured window only (deltas, never totals
 * since start); every rate and ratio is derived here, in one place, so the table, the
 * JSON and the CSV can never disagree. A rate whose denominator is zero is NaN: the
 * table prints "-", JSON null.
 */
#ifndef TCB_REPORT_H
#define TCB_REPORT_H

#include "redis_info.h"

#include <stdint.h>
#include <stdio.h>

/* How one mode's measured windows spread: min, median and max (n = 0: not measured in
 * several windows, nothing to show). */
typedef struct tcb_spread {
    double min, med, max;
    unsigned n;
} tcb_spread_t;

/* The spread of v[0..n) (sorted in place). */
void tcb_spread_of(double *v, unsigned n, tcb_spread_t *out);

typedef struct tcb_result {
    char mode[24]; /* "redis-only", "tiercache" */
    int has_l1;
    double l1_pct; /* configured L1 size in % of the keys; < 0 when given in bytes */
    uint64_t l1_cap_entries, l1_cap_bytes;
    uint64_t ops, reads, writes, errors;
    char first_error[32];
    double secs;
    uint64_t p50, p90, p99, p999, max; /* nanoseconds */
    double mean;
    uint64_t l1_hits, l1_misses, l2_hits, l2_misses, loads;
    tcb_info_t redis; /* delta over the window */
    uint64_t l1_bytes, l1_entries, l1_evictions;
    uint64_t inval_sent, inval_applied;
    uint64_t l1_entries_start, l1_bytes_start; /* gauges when measuring began */
    tcb_spread_t tput;                         /* ops/s of each measured window */
    tcb_spread_t speedup; /* sweep and compare: per round, ops/s over the baseline's */
    int interrupted;
} tcb_result_t;

/* What was run: the header of every report. */
typedef struct tcb_report_ctx {
    const char *command;
    char workload[96];
    uint64_t nkeys;
    char vsize[48];
    double write_frac;
    unsigned threads;
    uint64_t duration_ns, warmup_ns, ops;
    uint64_t source_ns, ttl_ms;
    int preload;
    char redis[320];
    uint64_t seed;
    char l1[96];
} tcb_report_ctx_t;

double tcb_res_ops_per_s(const tcb_result_t *r);
double tcb_res_l1_hit(const tcb_result_t *r);      /* NaN without L1 */
double tcb_res_l2_hit(const tcb_result_t *r);      /* share of Redis lookups that hit */
double tcb_res_overall_hit(const tcb_result_t *r); /* reads served without the source */
double tcb_res_per_op(const tcb_result_t *r, uint64_t v);
/* Share of operations that had to reach Redis (L1 misses + writes). */
double tcb_res_redis_share(const tcb_result_t *r);

/* compare / miss: two results, redis-only first. The table leaves the warnings to the
 * caller (tcb_warnings_print, after whatever it adds); the JSON includes them. */
void tcb_report_compare_table(FILE *f, const tcb_report_ctx_t *c, const tcb_result_t *ro,
                              const tcb_result_t *tc);
void tcb_report_compare_json(FILE *f, const tcb_report_ctx_t *c, const tcb_result_t *ro,
                             const tcb_result_t *tc);

/* sweep: the redis-only baseline and n tiercache points. A point's ops/s and speedup are
 * the medians of its windows and of its per-round ratios; the CSV adds min and max (and
 * ops_per_sec, the total over every window), ops_per_sec_median in column 9. */
void tcb_report_sweep_table(FILE *f, const tcb_report_ctx_t *c, const tcb_result_t *base,
                            const tcb_result_t *pts, int n);
void tcb_report_sweep_json(FILE *f, const tcb_report_ctx_t *c, const tcb_result_t *base,
                           const tcb_result_t *pts, int n);
void tcb_report_sweep_csv(FILE *f, const tcb_result_t *base, const tcb_result_t *pts, int n);
/* The ops/s a sweep row shows (the median of its windows; the total for one window). */
double tcb_report_sweep_ops(const tcb_result_t *r);

#endif
