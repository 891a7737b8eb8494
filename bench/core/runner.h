/*
 * runner.h - drive a mode with a workload from N threads and measure it.
 *
 * A mode is four callbacks (per-thread setup/teardown, get, set); the runner owns
 * everything else, identically for every mode: key generation, the read/write coin,
 * per-operation timing into a per-thread histogram, counters, stopping on time or on an
 * operation count, the progress bar and Ctrl-C. That sameness is what makes the
 * redis-only and tiercache columns comparable.
 *
 * Key generation and key formatting happen outside the timed region; the histogram
 * covers only the mode's call.
 */
#ifndef TCB_RUNNER_H
#define TCB_RUNNER_H

#include "hist.h"
#include "source.h"
#include "workload.h"

#include <stdint.h>

typedef struct tcb_worker {
    unsigned tid;
    void *state; /* the mode's per-thread state */
    uint64_t ops, reads, writes;
    uint64_t hits, misses, loads; /* for modes that count them themselves */
    uint64_t errors;
    int first_error;
    unsigned char *vbuf; /* tcb_vsize_max bytes, for values to write or load */
} tcb_worker_t;

typedef struct tcb_mode_ops {
    const char *name;
    /* 0, or a negative code (the run is abandoned). May be NULL. */
    int (*thread_init)(void *arg, tcb_worker_t *w);
    void (*thread_fini)(void *arg, tcb_worker_t *w);
    /* Read key (TCB_KEY_LEN bytes). 0 or a negative error code (counted). */
    int (*get)(void *arg, tcb_worker_t *w, uint64_t id, const char *key);
    /* Write value to key. 0 or a negative error code. */
    int (*set)(void *arg, tcb_worker_t *w, uint64_t id, const char *key,
               const unsigned char *value, size_t vlen);
} tcb_mode_ops_t;

typedef struct tcb_run_cfg {
    const tcb_mode_ops_t *mode;
    void *arg;
    const tcb_workload_t *wl;
    const tcb_source_t *src;
    double write_frac;
    unsigned threads;
    uint64_t duration_ns; /* used when total_ops is 0 */
    uint64_t total_ops;
    uint64_t hot_shift_ns; /* hotset epoch length */
    uint64_t seed;
    const char *label; /* progress bar */
    int quiet;
} tcb_run_cfg_t;

typedef struct tcb_run_out {
    uint64_t ops, reads, writes, hits, misses, loads, errors;
    int first_error;
    uint64_t wall_ns;
    int interrupted;
    tcb_hist_t hist; /* merged over threads */
} tcb_run_out_t;

/* dst += src: counters, wall time and histogram (for results built from several runs). */
void tcb_run_out_add(tcb_run_out_t *dst, const tcb_run_out_t *src);

/* Run to completion. 0, or -1 when a thread could not be set up (message printed). */
int tcb_run(const tcb_run_cfg_t *cfg, tcb_run_out_t *out);

#endif
