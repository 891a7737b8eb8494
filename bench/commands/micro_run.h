/*
 * micro_run.h - one timed point of micro: N threads released together, stopped after the
 * duration, their operations summed. The library's rows (micro.c) and the floor
 * (micro_floor.c) run their own loops through it.
 */
#ifndef TCB_MICRO_RUN_H
#define TCB_MICRO_RUN_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* What the run owns of each thread: every thread's struct starts with one. The thread's
 * function calls tcb_micro_start, loops until tcb_micro_stopped, and sets ops and errors. */
typedef struct tcb_micro_worker {
    const atomic_int *go; /* set once every thread has started (or one could not) */
    const atomic_int *stop;
    unsigned tid; /* 0..n-1: which ring of key draws is the thread's */
    uint64_t ops, errors;
    pthread_t th;
} tcb_micro_worker_t;

/* Wait for the common start. A gate rather than a barrier, so that a thread that cannot be
 * created leaves the others a way out. */
static inline void tcb_micro_start(tcb_micro_worker_t *w) {
    while (!atomic_load_explicit(w->go, memory_order_acquire))
        sched_yield();
}

static inline int tcb_micro_stopped(const tcb_micro_worker_t *w) {
    return atomic_load_explicit(w->stop, memory_order_relaxed);
}

/* Run fn on n thread structs laid out stride bytes apart from workers (each beginning with
 * a tcb_micro_worker_t whose tid the run sets), for duration_ns from their common start.
 * Returns operations per second; adds their errors to *errors. When a thread cannot be
 * created, says why on stderr, stops the others, counts the missing ones as errors and
 * returns 0. */
double tcb_micro_run(void *workers, size_t stride, unsigned n, void *(*fn)(void *),
                     uint64_t duration_ns, uint64_t *errors);

#endif
