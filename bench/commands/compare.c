/*
 * compare.c - `compare` (the default) and `miss`: redis-only against tiercache, same
 * workload, same Redis, same threads, one table.
 *
 * Both are measured side by side: each mode is preloaded under its own prefix and warmed
 * up, then the measured time is cut into windows of about half a second (3 to 20 rounds)
 * that alternate, redis-only then tiercache. A shared machine drifts by more than the
 * differences these commands exist to show (`compare` in one 8 s run per mode gave 0.64 to
 * 1.11 of its bound line in four back-to-back runs here): alternating puts both modes
 * under the same drift, and the totals are summed over the windows of each.
 *
 * compare: the table, and the bound line under it with the median per-round ratio
 * (report.c). What does not hold still across windows (windowed() below: a cold start,
 * a hotset or a trace, an operation count) runs one mode after the other instead:
 * redis-only first, its keys deleted, then tiercache from a Redis of its own.
 *
 * miss: the L1 is switched off and one thread reads, so every read takes tiercache's miss
 * path, which should cost within 5% of a raw GET; the verdict uses the median of the
 * per-round ratios, which one disturbed round cannot move.
 */
#include "session.h"

#include "checks.h"

#include <math.h>
#include <string.h>

#define MAX_ROUNDS 20
#define WINDOW_NS  500000000ull /* half a second per window */

static void miss_summary(FILE *f, const tcb_result_t *ro, const tcb_result_t *tc,
                         const double *ratios, int n) {
    double sorted[MAX_ROUNDS];
    tcb_spread_t sp;
    memcpy(sorted, ratios, (size_t)n * sizeof *sorted);
    tcb_spread_of(sorted, (unsigned)n, &sp);
    double median = sp.med;
    fprintf(f, "  Miss path (L1 off, every read goes to Redis), %d alternating rounds:\n", n);
    fprintf(f, "    tiercache / raw hiredis GET throughput, per round:");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s %.3f", i % 10 == 0 ? "\n     " : "", ratios[i]);
    fprintf(f,
            "\n    median %.3f: tiercache's miss path is %.1f%% %s than a raw GET "
            "(target: at most 5%% slower)\n",
            median, 100.0 * fabs(1.0 / median - 1.0), median < 1.0 ? "slower" : "faster");
    fprintf(f,
            "    p50: tiercache %.1f us, raw GET %.1f us; Redis commands per read: %.2f vs "
            "%.2f\n\n",
            (double)tc->p50 / 1e3, (double)ro->p50 / 1e3,
            tcb_res_per_op(tc, tc->redis.commands), tcb_res_per_op(ro, ro->redis.commands));
}

/* Rounds of one window per mode that the measured time holds, 3 to MAX_ROUNDS. */
static int rounds_of(const tcb_opts_t *o) {
    uint64_t r = o->duration_ns / WINDOW_NS;
    return r < 3 ? 3 : r > MAX_ROUNDS ? MAX_ROUNDS : (int)r;
}

static int run_miss(tcb_session_t *s, tcb_result_t *ro, tcb_result_t *tc) {
    double ratios[MAX_ROUNDS];
    int rounds = rounds_of(s->o);
    int rc = tcb_measure_interleaved(s, rounds, ro, tc, ratios);
    if (rc != 0 || tcb_interrupted)
        return rc;
    tcb_check_spread("raw hiredis GET", ro->tput.min, ro->tput.max);
    tcb_check_spread("tiercache's miss path", tc->tput.min, tc->tput.max);
    if (s->o->json) {
        tcb_report_compare_json(stdout, &s->ctx, ro, tc);
    } else {
        tcb_report_compare_table(stdout, &s->ctx, ro, tc);
        miss_summary(stdout, ro, tc, ratios, rounds);
        tcb_warnings_print(stdout);
    }
    return 0;
}

/* Whether compare can cut its measurement into alternating windows: a steady state whose
 * draws do not depend on time. A cold start (--no-preload) is a story in time; a hotset's
 * hot keys move on a clock and a trace's cursor advances, and both restart with each
 * window; an operation count (--ops) would be split into windows of a few operations. */
static int windowed(const tcb_opts_t *o) {
    return o->preload && !o->ops && o->wl_kind != TCB_WL_HOTSET && o->wl_kind != TCB_WL_TRACE;
}

static int run_compare(tcb_session_t *s, tcb_result_t *ro, tcb_result_t *tc) {
    int rc;
    if (windowed(s->o)) {
        double ratios[MAX_ROUNDS];
        int rounds = rounds_of(s->o);
        rc = tcb_measure_interleaved(s, rounds, ro, tc, ratios);
        if (rc == 0) {
            tcb_spread_of(ratios, tc->tput.n, &tc->speedup); /* the rounds that ran */
            tcb_check_spread("redis-only", ro->tput.min, ro->tput.max);
            tcb_check_spread("tiercache", tc->tput.min, tc->tput.max);
        }
    } else { /* one after the other, each from a Redis of its own */
        rc = tcb_measure_redis_only(s, ro);
        if (rc == 0 && !tcb_interrupted) {
            tcb_env_purge(&s->env, "");
            rc = tcb_measure_tiercache(s, s->o->l1_pct, 1, NULL, tc);
        }
    }
    if (rc == 0 && !tcb_interrupted) {
        if (s->o->json) {
            tcb_report_compare_json(stdout, &s->ctx, ro, tc);
        } else {
            tcb_report_compare_table(stdout, &s->ctx, ro, tc);
            tcb_warnings_print(stdout);
        }
    }
    return rc;
}

int tcb_cmd_compare(const tcb_opts_t *o) {
    int miss = o->cmd == TCB_CMD_MISS;
    tcb_session_t s;
    if (tcb_session_open(&s, o, miss ? "miss" : "compare") != 0)
        return 1;
    tcb_result_t ro, tc;
    int rc = miss ? run_miss(&s, &ro, &tc) : run_compare(&s, &ro, &tc);
    tcb_session_close(&s);
    if (tcb_interrupted)
        fprintf(stderr, "tiercache-bench: interrupted; Redis keys cleaned up\n");
    return rc == 0 && !tcb_interrupted ? 0 : 1;
}
