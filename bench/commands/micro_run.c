/*
 * micro_run.c - one timed point of micro (micro_run.h).
 */
#include "micro_run.h"

#include "bench.h"

#include <time.h>

double tcb_micro_run(void *workers, size_t stride, unsigned n, void *(*fn)(void *),
                     uint64_t duration_ns, uint64_t *errors) {
    pthread_barrier_t bar;
    atomic_int stop;
    atomic_init(&stop, 0);
    pthread_barrier_init(&bar, NULL, n + 1);
    for (unsigned i = 0; i < n; i++) {
        tcb_micro_worker_t *w = (tcb_micro_worker_t *)((char *)workers + i * stride);
        w->bar = &bar;
        w->stop = &stop;
        w->tid = i;
        w->ops = w->errors = 0;
        pthread_create(&w->th, NULL, fn, w);
    }
    pthread_barrier_wait(&bar);
    uint64_t t0 = tcb_now_ns();
    struct timespec d = {(time_t)(duration_ns / 1000000000ull),
                         (long)(duration_ns % 1000000000ull)};
    nanosleep(&d, NULL);
    atomic_store(&stop, 1);
    uint64_t ops = 0;
    for (unsigned i = 0; i < n; i++) {
        tcb_micro_worker_t *w = (tcb_micro_worker_t *)((char *)workers + i * stride);
        pthread_join(w->th, NULL);
        ops += w->ops;
        *errors += w->errors;
    }
    uint64_t el = tcb_now_ns() - t0;
    pthread_barrier_destroy(&bar);
    return el ? (double)ops * 1e9 / (double)el : 0;
}
