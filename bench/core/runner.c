/*
 * runner.c - the measurement loop (contract in runner.h).
 *
 * Threads start together behind a barrier, after every per-thread setup (connections)
 * is done, so connection time never counts. The main thread then sleeps in 50 ms steps,
 * drawing progress and watching the deadline, Ctrl-C and the workers' completion; it
 * stops them with one relaxed flag that each worker polls every operation (a load from a
 * shared, read-mostly line: no measurable cost). Each worker publishes its op count every
 * 256 operations for the progress bar only; exact counts are summed after the join.
 */
#include "runner.h"

#include "bench.h"
#include "progress.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct run_shared {
    const tcb_run_cfg_t *cfg;
    pthread_barrier_t barrier;
    atomic_int stop;
    atomic_int setup_failed;
    atomic_uint finished;
    uint64_t t0;
} run_shared_t;

typedef struct thread_ctx {
    run_shared_t *sh;
    tcb_worker_t w;
    tcb_cursor_t cur;
    tcb_rng_t coin;
    uint64_t limit;
    _Alignas(64) atomic_uint_fast64_t progress;
    uint64_t end_ns;
    tcb_hist_t hist;
    pthread_t th;
} thread_ctx_t;

static void one_op(thread_ctx_t *t, uint64_t *last_ns) {
    const tcb_run_cfg_t *cfg = t->sh->cfg;
    uint64_t epoch = cfg->hot_shift_ns ? (*last_ns - t->sh->t0) / cfg->hot_shift_ns : 0;
    uint64_t id = tcb_workload_next(cfg->wl, &t->cur, epoch);
    char key[TCB_KEY_LEN + 1];
    tcb_key_format(id, key);
    int is_write = cfg->write_frac > 0 && tcb_rng_double(&t->coin) < cfg->write_frac;
    size_t vlen = 0;
    if (is_write)
        vlen = tcb_source_fill(cfg->src, id, t->w.ops + 1, t->w.vbuf);
    uint64_t a = tcb_now_ns();
    int rc = is_write ? cfg->mode->set(cfg->arg, &t->w, id, key, t->w.vbuf, vlen)
                      : cfg->mode->get(cfg->arg, &t->w, id, key);
    uint64_t b = tcb_now_ns();
    tcb_hist_record(&t->hist, b - a);
    *last_ns = b;
    t->w.ops++;
    if (is_write)
        t->w.writes++;
    else
        t->w.reads++;
    if (rc < 0 && t->w.errors++ == 0)
        t->w.first_error = rc;
}

static void *worker_main(void *p) {
    thread_ctx_t *t = p;
    run_shared_t *sh = t->sh;
    const tcb_run_cfg_t *cfg = sh->cfg;
    if (cfg->mode->thread_init && cfg->mode->thread_init(cfg->arg, &t->w) != 0)
        atomic_store(&sh->setup_failed, 1);
    pthread_barrier_wait(&sh->barrier); /* setup done everywhere */
    pthread_barrier_wait(&sh->barrier); /* main has set t0 */
    uint64_t last = sh->t0;
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed) &&
           !atomic_load_explicit(&sh->setup_failed, memory_order_relaxed)) {
        if (t->limit && t->w.ops >= t->limit)
            break;
        one_op(t, &last);
        if ((t->w.ops & 255) == 0)
            atomic_store_explicit(&t->progress, t->w.ops, memory_order_relaxed);
    }
    t->end_ns = tcb_now_ns();
    atomic_fetch_add(&sh->finished, 1);
    if (cfg->mode->thread_fini)
        cfg->mode->thread_fini(cfg->arg, &t->w);
    return NULL;
}

static uint64_t progress_ops(thread_ctx_t *ts, unsigned n) {
    uint64_t s = 0;
    for (unsigned i = 0; i < n; i++)
        s += atomic_load_explicit(&ts[i].progress, memory_order_relaxed);
    return s;
}

/* Sleep-and-watch loop of the main thread; returns when the workers should stop. */
static void supervise(run_shared_t *sh, thread_ctx_t *ts) {
    const tcb_run_cfg_t *cfg = sh->cfg;
    tcb_progress_t prog;
    tcb_progress_begin(&prog, cfg->quiet, cfg->label ? cfg->label : cfg->mode->name);
    for (;;) {
        struct timespec ts50 = {0, 50000000L};
        nanosleep(&ts50, NULL);
        uint64_t el = tcb_now_ns() - sh->t0;
        if (tcb_interrupted || atomic_load(&sh->finished) == cfg->threads)
            break;
        if (!cfg->total_ops && el >= cfg->duration_ns)
            break;
        uint64_t done = progress_ops(ts, cfg->threads);
        double frac = cfg->total_ops ? (double)done / (double)cfg->total_ops
                                     : (double)el / (double)cfg->duration_ns;
        tcb_progress_update(&prog, frac, (double)done * 1e9 / (double)(el ? el : 1));
    }
    tcb_progress_end(&prog);
}

static void collect(thread_ctx_t *ts, unsigned n, tcb_run_out_t *out) {
    for (unsigned i = 0; i < n; i++) {
        tcb_worker_t *w = &ts[i].w;
        out->ops += w->ops;
        out->reads += w->reads;
        out->writes += w->writes;
        out->hits += w->hits;
        out->misses += w->misses;
        out->loads += w->loads;
        if (w->errors && out->errors == 0)
            out->first_error = w->first_error;
        out->errors += w->errors;
        tcb_hist_merge(&out->hist, &ts[i].hist);
    }
}

void tcb_run_out_add(tcb_run_out_t *dst, const tcb_run_out_t *src) {
    dst->ops += src->ops;
    dst->reads += src->reads;
    dst->writes += src->writes;
    dst->hits += src->hits;
    dst->misses += src->misses;
    dst->loads += src->loads;
    if (src->errors && dst->errors == 0)
        dst->first_error = src->first_error;
    dst->errors += src->errors;
    dst->wall_ns += src->wall_ns;
    dst->interrupted |= src->interrupted;
    tcb_hist_merge(&dst->hist, &src->hist);
}

static thread_ctx_t *alloc_threads(const tcb_run_cfg_t *cfg, run_shared_t *sh) {
    thread_ctx_t *ts = aligned_alloc(64, sizeof *ts * cfg->threads);
    if (!ts)
        return NULL;
    size_t vmax = tcb_vsize_max(&cfg->src->vsize) + 1;
    for (unsigned i = 0; i < cfg->threads; i++) {
        thread_ctx_t *t = &ts[i];
        memset(t, 0, sizeof *t);
        t->sh = sh;
        t->w.tid = i;
        t->w.vbuf = malloc(vmax);
        tcb_hist_reset(&t->hist);
        tcb_cursor_init(&t->cur, cfg->wl, cfg->seed, i, cfg->threads);
        tcb_rng_seed(&t->coin, cfg->seed ^ 0xC0FFEEull, i);
        if (cfg->total_ops)
            t->limit = cfg->total_ops / cfg->threads + (i < cfg->total_ops % cfg->threads);
        atomic_init(&t->progress, 0);
    }
    return ts;
}

int tcb_run(const tcb_run_cfg_t *cfg, tcb_run_out_t *out) {
    memset(out, 0, offsetof(tcb_run_out_t, hist));
    tcb_hist_reset(&out->hist);
    run_shared_t sh = {.cfg = cfg};
    atomic_init(&sh.stop, 0);
    atomic_init(&sh.setup_failed, 0);
    atomic_init(&sh.finished, 0);
    thread_ctx_t *ts = alloc_threads(cfg, &sh);
    if (!ts)
        return -1;
    pthread_barrier_init(&sh.barrier, NULL, cfg->threads + 1);
    for (unsigned i = 0; i < cfg->threads; i++)
        pthread_create(&ts[i].th, NULL, worker_main, &ts[i]);
    pthread_barrier_wait(&sh.barrier);
    int failed = atomic_load(&sh.setup_failed);
    sh.t0 = tcb_now_ns();
    pthread_barrier_wait(&sh.barrier);
    if (!failed)
        supervise(&sh, ts);
    atomic_store(&sh.stop, 1);
    for (unsigned i = 0; i < cfg->threads; i++)
        pthread_join(ts[i].th, NULL);
    uint64_t end = sh.t0;
    for (unsigned i = 0; i < cfg->threads; i++)
        end = ts[i].end_ns > end ? ts[i].end_ns : end;
    out->wall_ns = end - sh.t0;
    out->interrupted = tcb_interrupted != 0;
    collect(ts, cfg->threads, out);
    for (unsigned i = 0; i < cfg->threads; i++)
        free(ts[i].w.vbuf);
    free(ts);
    pthread_barrier_destroy(&sh.barrier);
    return failed ? -1 : 0;
}
