/*
 * compare.c - `compare` (the default) and `miss`: redis-only, then tiercache, same
 * workload, same Redis, same threads, one table.
 *
 * redis-only runs first and its keys are deleted before tiercache preloads its own, so
 * the two never share Redis memory or keys and neither warms the other's data. `miss`
 * is compare with the L1 switched off and one thread: every read takes tiercache's miss
 * path, which the issue wants within 5% of a raw GET.
 */
#include "session.h"

#include <string.h>

static void miss_summary(FILE *f, const tcb_result_t *ro, const tcb_result_t *tc) {
    double a = (double)ro->p50, b = (double)tc->p50;
    double ta = tcb_res_ops_per_s(ro), tb = tcb_res_ops_per_s(tc);
    if (a <= 0 || ta <= 0)
        return;
    fprintf(f,
            "  Miss path (L1 off, every read goes to Redis): at p50 tiercache took %+.1f%% "
            "vs a raw\n  hiredis GET, and its throughput was %+.1f%% (target: no more than "
            "5%% slower).\n\n",
            100.0 * (b / a - 1.0), 100.0 * (tb / ta - 1.0));
}

int tcb_cmd_compare(const tcb_opts_t *o) {
    int miss = o->cmd == TCB_CMD_MISS;
    tcb_session_t s;
    if (tcb_session_open(&s, o, miss ? "miss" : "compare") != 0)
        return 1;
    tcb_result_t ro, tc;
    memset(&ro, 0, sizeof ro);
    memset(&tc, 0, sizeof tc);
    int rc = tcb_measure_redis_only(&s, &ro);
    if (rc == 0 && !tcb_interrupted) {
        tcb_env_purge(&s.env, "");
        rc = tcb_measure_tiercache(&s, o->l1_pct, 1, NULL, &tc);
    }
    if (rc == 0 && !tcb_interrupted) {
        if (o->json) {
            tcb_report_compare_json(stdout, &s.ctx, &ro, &tc);
        } else {
            tcb_report_compare_table(stdout, &s.ctx, &ro, &tc);
            if (miss)
                miss_summary(stdout, &ro, &tc);
        }
    }
    tcb_session_close(&s);
    if (tcb_interrupted)
        fprintf(stderr, "tiercache-bench: interrupted; Redis keys cleaned up\n");
    return rc == 0 && !tcb_interrupted ? 0 : 1;
}
