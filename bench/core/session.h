/*
 * session.h - one end-to-end benchmark session: Redis, workload, source, and the two
 * measurements that compare, miss and sweep are made of.
 *
 * A measurement is always: (preload) -> warm-up run -> snapshot -> measured run ->
 * snapshot, and the result holds only the differences between the two snapshots, so
 * preloading and warm-up never leak into the figures.
 */
#ifndef TCB_SESSION_H
#define TCB_SESSION_H

#include "bench.h"
#include "modes.h"
#include "report.h"

typedef struct tcb_session {
    const tcb_opts_t *o;
    tcb_env_t env;
    tcb_workload_t wl;
    uint64_t *trace_ids;
    size_t trace_len;
    uint64_t *distinct;
    tcb_keyset_t ks;
    tcb_source_t src;
    tcb_report_ctx_t ctx;
} tcb_session_t;

/* Workload and Redis. 0, or -1 (message printed, nothing left to close). */
int tcb_session_open(tcb_session_t *s, const tcb_opts_t *o, const char *command);
void tcb_session_close(tcb_session_t *s);

/* Measure redis-only (preloading its keys first when --preload). 0 or -1. */
int tcb_measure_redis_only(tcb_session_t *s, tcb_result_t *out);
/* Measure tiercache with L1 at pct % of the keys (or --l1 bytes); preload its keys
 * first when preload is nonzero (and --preload is on). label names the phase in status
 * lines (NULL: "tiercache"). 0 or -1. */
int tcb_measure_tiercache(tcb_session_t *s, double pct, int preload, const char *label,
                          tcb_result_t *out);

/* redis-only and tiercache (L1 per --l1) in `rounds` alternating windows that together
 * last --duration; ratios[i] is round i's tiercache/redis-only throughput. 0 or -1. */
int tcb_measure_interleaved(tcb_session_t *s, int rounds, tcb_result_t *ro, tcb_result_t *tc,
                            double *ratios);

/* sweep: the baseline (redis-only) and tiercache at each --sizes point. Each point has
 * its own warm-up and then `rounds` rounds of a redis-only window and a tiercache window
 * (--duration / rounds each), so the baseline is measured all along, beside every point,
 * and a point's speedup (out->speedup) is the spread of its per-round ratios. base sums
 * the baseline's windows over every point. *n: points measured. 0 or -1. */
int tcb_measure_sweep(tcb_session_t *s, int rounds, tcb_result_t *base, tcb_result_t *pts,
                      int *n);

/* L1 description for headers ("10% of the keys (100,000 entries)" / "64.0 MiB"). */
void tcb_l1_describe(const tcb_opts_t *o, double pct, uint64_t nkeys, char *buf, size_t cap);

#endif
