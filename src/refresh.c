/*
 * refresh.c - the background load pool.
 *
 * A fixed set of threads takes tasks from one bounded ring under one mutex. Bounded on
 * purpose: a storm of stale reads must not queue unbounded work (or memory) behind a slow
 * source, so a full queue refuses the task and the caller counts it as dropped; the stale
 * value keeps being served and a later read tries again. Tasks are coarse (each runs a
 * user loader), so one mutex is plenty. On close, tasks still queued are handed to their
 * cancel function (which releases what they hold) and running ones are waited for.
 */
#include "refresh.h"

#include "tiercache.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct task {
    tc__task_fn run, cancel;
    void *arg;
} task_t;

struct tc__refresh {
    pthread_mutex_t mu;
    pthread_cond_t work;
    task_t *ring;
    unsigned cap, head, count;
    int closing;
    unsigned nthreads;
    pthread_t *threads;
};

static void *worker(void *arg) {
    tc__refresh_t *pool = arg;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->count && !pool->closing)
            pthread_cond_wait(&pool->work, &pool->mu);
        if (!pool->count)
            break; /* closing and drained */
        task_t t = pool->ring[pool->head];
        pool->head = (pool->head + 1) % pool->cap;
        pool->count--;
        int closing = pool->closing;
        pthread_mutex_unlock(&pool->mu);
        if (closing)
            t.cancel(t.arg);
        else
            t.run(t.arg);
        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

int tc__refresh_open(unsigned threads, unsigned queue, tc__refresh_t **out) {
    *out = NULL;
    tc__refresh_t *pool = calloc(1, sizeof *pool);
    if (!pool)
        return TC_ENOMEM;
    pool->cap = queue ? queue : 1;
    pool->ring = calloc(pool->cap, sizeof *pool->ring);
    pool->threads = calloc(threads ? threads : 1, sizeof *pool->threads);
    if (!pool->ring || !pool->threads) {
        free(pool->ring);
        free(pool->threads);
        free(pool);
        return TC_ENOMEM;
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->work, NULL);
    for (unsigned i = 0; i < (threads ? threads : 1); i++) {
        if (pthread_create(&pool->threads[i], NULL, worker, pool) != 0) {
            tc__refresh_close(pool);
            return TC_EINTERNAL;
        }
        pool->nthreads++;
    }
    *out = pool;
    return TC_OK;
}

int tc__refresh_submit(tc__refresh_t *pool, tc__task_fn run, tc__task_fn cancel, void *arg) {
    pthread_mutex_lock(&pool->mu);
    if (pool->closing || pool->count == pool->cap) {
        pthread_mutex_unlock(&pool->mu);
        return TC_ENOSPC;
    }
    pool->ring[(pool->head + pool->count) % pool->cap] = (task_t){run, cancel, arg};
    pool->count++;
    pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->mu);
    return TC_OK;
}

void tc__refresh_close(tc__refresh_t *pool) {
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->closing = 1;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->mu);
    for (unsigned i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->work);
    pthread_mutex_destroy(&pool->mu);
    free(pool->ring);
    free(pool->threads);
    free(pool);
}
