/*
 * micro_run.c - one timed point of micro (micro_run.h).
 */
#include "micro_run.h"

#include "bench.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static tcb_micro_worker_t *worker_at(void *workers, size_t stride, unsigned i) {
    return (tcb_micro_worker_t *)((char *)workers + (size_t)i * stride);
}

double tcb_micro_run(void *workers, size_t stride, unsigned n, void *(*fn)(void *),
                     uint64_t duration_ns, uint64_t *errors) {
    atomic_int go, stop;
    atomic_init(&go, 0);
    atomic_init(&stop, 0);
    unsigned started = 0;
    int rc = 0;
    for (; started < n; started++) {
        tcb_micro_worker_t *w = worker_at(workers, stride, started);
        w->go = &go;
        w->stop = &stop;
        w->tid = started;
        w->ops = w->errors = 0;
        if ((rc = pthread_create(&w->th, NULL, fn, w)) != 0)
            break;
    }
    if (started < n) {
        fprintf(stderr, "tiercache-bench: micro: cannot start thread %u of %u: %s\n",
                started + 1, n, strerror(rc));
        atomic_store(&stop, 1);
    }
    atomic_store_explicit(&go, 1, memory_order_release);
    uint64_t t0 = tcb_now_ns();
    if (started == n) {
        struct timespec d = {(time_t)(duration_ns / 1000000000ull),
                             (long)(duration_ns % 1000000000ull)};
        nanosleep(&d, NULL);
        atomic_store(&stop, 1);
    }
    uint64_t ops = 0;
    for (unsigned i = 0; i < started; i++) {
        tcb_micro_worker_t *w = worker_at(workers, stride, i);
        pthread_join(w->th, NULL);
        ops += w->ops;
        *errors += w->errors;
    }
    uint64_t el = tcb_now_ns() - t0;
    if (started < n) {
        *errors += n - started;
        return 0;
    }
    return el ? (double)ops * 1e9 / (double)el : 0;
}
