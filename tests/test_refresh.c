/*
 * test_refresh.c - the background load pool (src/refresh.c) through its internal API.
 *
 * The pool's promises, each checked by counting what happened to every task: a task
 * that was accepted gets exactly one of run or cancel, never both and never twice; a task
 * that was refused gets neither (the caller still owns its argument: refresh.h); the
 * queue holds exactly `queue` waiting tasks besides those running; close runs nothing new,
 * cancels what is still queued, waits for what is running, and refuses submits from the
 * moment it starts. The worker count is checked by how many tasks can block at once.
 *
 * Nothing here depends on timing: a task that must stay busy waits on a gate the test
 * opens, and every wait for the pool is a bounded poll. The many-submitters test is the
 * concurrency part; it also runs under ThreadSanitizer (label `concurrency`).
 */
/* tc-test-labels: unit concurrency */
#include "refresh.h"

#include "tiercache.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 10000u /* the longest any bounded poll waits for the pool */

/* ---- helpers ---- */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* Poll until *v >= want or WAIT_MS passes; returns the last value seen. */
static int wait_at_least(atomic_int *v, int want) {
    uint64_t deadline = now_ms() + WAIT_MS;
    int seen;
    while ((seen = atomic_load(v)) < want && now_ms() < deadline)
        sleep_ms(1);
    return seen;
}

/* One task's fate. `order` records when it ran, relative to the other tasks. */
typedef struct task {
    atomic_int runs, cancels;
    int order;
    pthread_t thread;
    struct ctx *ctx;
} task_t;

typedef struct ctx {
    atomic_int ran, cancelled, sequence;
} ctx_t;

static void task_run(void *arg) {
    task_t *t = arg;
    t->thread = pthread_self();
    t->order = atomic_fetch_add(&t->ctx->sequence, 1);
    atomic_fetch_add(&t->runs, 1);
    atomic_fetch_add(&t->ctx->ran, 1);
}

static void task_cancel(void *arg) {
    task_t *t = arg;
    atomic_fetch_add(&t->cancels, 1);
    atomic_fetch_add(&t->ctx->cancelled, 1);
}

static task_t *tasks_new(ctx_t *ctx, size_t n) {
    task_t *t = calloc(n, sizeof *t);
    cr_assert_not_null(t);
    for (size_t i = 0; i < n; i++)
        t[i].ctx = ctx;
    return t;
}

/* A task that holds its worker until the test opens the gate. */
typedef struct blocker {
    atomic_int started, finished, open, cancels;
} blocker_t;

static void blocker_run(void *arg) {
    blocker_t *b = arg;
    atomic_fetch_add(&b->started, 1);
    uint64_t deadline = now_ms() + 2 * WAIT_MS; /* never hang the suite for good */
    while (!atomic_load(&b->open) && now_ms() < deadline)
        sleep_ms(1);
    atomic_fetch_add(&b->finished, 1);
}

static void blocker_cancel(void *arg) {
    blocker_t *b = arg;
    atomic_fetch_add(&b->cancels, 1);
}

static tc__refresh_t *pool_open(unsigned threads, unsigned queue) {
    tc__refresh_t *pool = NULL;
    cr_assert_eq(tc__refresh_open(threads, queue, &pool), TC_OK);
    cr_assert_not_null(pool);
    return pool;
}

/* Occupy every one of n workers with a started blocker: the queue is then empty. */
static void occupy(tc__refresh_t *pool, blocker_t *b, unsigned n) {
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(tc__refresh_submit(pool, blocker_run, blocker_cancel, b), TC_OK);
    cr_assert_eq(wait_at_least(&b->started, (int)n), (int)n, "the workers did not start");
}

/* ---- running ---- */

Test(refresh, every_accepted_task_runs_exactly_once_on_a_pool_thread) {
    enum { N = 200 };
    ctx_t ctx = {0};
    task_t *t = tasks_new(&ctx, N);
    tc__refresh_t *pool = pool_open(4, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(tc__refresh_submit(pool, task_run, task_cancel, &t[i]), TC_OK, "task %d",
                     i);
    cr_assert_eq(wait_at_least(&ctx.ran, N), N, "only %d of %d tasks ran",
                 atomic_load(&ctx.ran), N);
    tc__refresh_close(pool);
    cr_assert_eq(atomic_load(&ctx.ran), N);
    cr_assert_eq(atomic_load(&ctx.cancelled), 0, "a task that ran was also cancelled");
    for (int i = 0; i < N; i++) {
        cr_assert_eq(atomic_load(&t[i].runs), 1, "task %d ran %d times", i,
                     atomic_load(&t[i].runs));
        cr_assert(!pthread_equal(t[i].thread, pthread_self()),
                  "task %d ran on the submitting thread", i);
    }
    free(t);
}

Test(refresh, one_worker_runs_tasks_in_submission_order) {
    enum { N = 16 };
    ctx_t ctx = {0};
    task_t *t = tasks_new(&ctx, N);
    blocker_t b = {0};
    tc__refresh_t *pool = pool_open(1, N);
    occupy(pool, &b, 1);
    for (int i = 0; i < N; i++)
        cr_assert_eq(tc__refresh_submit(pool, task_run, task_cancel, &t[i]), TC_OK);
    atomic_store(&b.open, 1);
    cr_assert_eq(wait_at_least(&ctx.ran, N), N);
    tc__refresh_close(pool);
    for (int i = 0; i < N; i++)
        cr_assert_eq(t[i].order, i, "task %d ran as number %d", i, t[i].order);
    free(t);
}

/* All `threads` workers can be busy at once, and the next task waits for one of them. */
Test(refresh, threads_workers_run_side_by_side) {
    enum { THREADS = 3 };
    ctx_t ctx = {0};
    task_t *t = tasks_new(&ctx, 1);
    blocker_t b = {0};
    tc__refresh_t *pool = pool_open(THREADS, 8);
    occupy(pool, &b, THREADS); /* fails unless THREADS tasks block side by side */
    cr_assert_eq(tc__refresh_submit(pool, task_run, task_cancel, &t[0]), TC_OK);
    sleep_ms(50); /* a fourth worker, if there were one, would run it now */
    cr_assert_eq(atomic_load(&ctx.ran), 0, "a task ran while every worker was busy");
    atomic_store(&b.open, 1);
    cr_assert_eq(wait_at_least(&ctx.ran, 1), 1);
    tc__refresh_close(pool);
    cr_assert_eq(atomic_load(&b.finished), THREADS);
    free(t);
}

/* threads = 0 and queue = 0 still make a working pool of one worker and one slot. */
Test(refresh, zero_threads_and_queue_mean_one) {
    ctx_t ctx = {0};
    task_t *t = tasks_new(&ctx, 2);
    blocker_t b = {0};
    tc__refresh_t *pool = pool_open(0, 0);
    occupy(pool, &b, 1);
    cr_assert_eq(tc__refresh_submit(pool, task_run, task_cancel, &t[0]), TC_OK);
    cr_assert_eq(tc__refresh_submit(pool, task_run, task_cancel, &t[1]), TC_ENOSPC);
    atomic_store(&b.open, 1);
    cr_assert_eq(wait_at_least(&ctx.ran, 1), 1);
    tc__refresh_close(pool);
    cr_assert_eq(atomic_load(&t[0].runs), 1);
    cr_assert_eq(atomic_load(&t[1].runs) + atomic_load(&t[1].cancels), 0);
    free(t);
}

/* ---- the bounded queue ---- */

Test(refresh, a_full_queue_refuses_and_leaves_the_task_to_the_caller) {
    enum { QUEUE = 4 };
    ctx_t ctx = {0};
    task_t *t = tasks_new(&ctx, QUEUE + 2);
    blocker_t b = {0};
    tc__refresh_t *pool = pool_open(1, QUEUE);
    occupy(pool, &b, 1); /* the running task takes no queue slot */
    for (int i = 0; i < QUEUE; i++)
        cr_assert_eq(tc__refresh_submit(pool, task_run, task_cancel, &t[i]), TC_OK,
                     "slot %d of %d refused", i + 1, QUEUE);
    cr_assert_eq(tc__refresh_submit(pool, task_run, task_cancel, &t[QUEUE]), TC_ENOSPC,
                 "the queue took more than refresh_queue tasks");
    cr_assert_eq(atomic_load(&ctx.cancelled), 0,
                 "a refused task was cancelled: its argument belongs to the caller");

    /* Once the queue drains there is room again. */
    atomic_store(&b.open, 1);
    cr_assert_eq(wait_at_least(&ctx.ran, QUEUE), QUEUE);
    cr_assert_eq(tc__refresh_submit(pool, task_run, task_cancel, &t[QUEUE + 1]), TC_OK);
    cr_assert_eq(wait_at_least(&ctx.ran, QUEUE + 1), QUEUE + 1);
    tc__refresh_close(pool);

    cr_assert_eq(atomic_load(&t[QUEUE].runs), 0, "the refused task ran");
    cr_assert_eq(atomic_load(&t[QUEUE].cancels), 0, "the refused task was cancelled");
    for (int i = 0; i < QUEUE + 2; i++)
        if (i != QUEUE)
            cr_assert_eq(atomic_load(&t[i].runs), 1, "task %d ran %d times", i,
                         atomic_load(&t[i].runs));
    cr_assert_eq(atomic_load(&ctx.cancelled), 0);
    free(t);
}

/* ---- close ---- */

typedef struct closer {
    tc__refresh_t *pool;
    atomic_int returned;
} closer_t;

static void *close_thread(void *arg) {
    closer_t *c = arg;
    tc__refresh_close(c->pool);
    atomic_store(&c->returned, 1);
    return NULL;
}

/* A close that starts while a task runs and others wait: the running one finishes (close
 * waits for it), the waiting ones are cancelled, each exactly once, and a submit made
 * after close began is refused even though the queue has room. Close is known to have
 * begun when a probe submit is refused with free slots; probes accepted before that are
 * waiting tasks like the others. */
Test(refresh, close_cancels_what_waits_and_waits_for_what_runs) {
    enum { QUEUED = 8, SLOTS = 8192 };
    ctx_t ctx = {0};
    task_t *t = tasks_new(&ctx, SLOTS);
    blocker_t b = {0};
    tc__refresh_t *pool = pool_open(1, SLOTS);
    occupy(pool, &b, 1);
    int n = 0;
    for (; n < QUEUED; n++)
        cr_assert_eq(tc__refresh_submit(pool, task_run, task_cancel, &t[n]), TC_OK);

    closer_t cl = {.pool = pool};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, close_thread, &cl), 0);
    int refused = 0;
    uint64_t deadline = now_ms() + WAIT_MS;
    while (n < SLOTS - 1 && now_ms() < deadline) {
        if (tc__refresh_submit(pool, task_run, task_cancel, &t[n]) != TC_OK) {
            refused = 1;
            break;
        }
        n++;
        sleep_ms(1);
    }
    cr_assert(refused, "submits were still accepted %u ms after close began", WAIT_MS);
    cr_assert_eq(atomic_load(&cl.returned), 0, "close returned while a task was running");
    cr_assert_eq(atomic_load(&b.finished), 0);

    atomic_store(&b.open, 1);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&b.finished), 1, "close returned before the running task ended");
    cr_assert_eq(atomic_load(&b.cancels), 0, "the running task was also cancelled");
    for (int i = 0; i <= n; i++) { /* t[n] is the refused probe */
        int want_cancel = i < n;
        cr_assert_eq(atomic_load(&t[i].runs), 0, "task %d ran after close began", i);
        cr_assert_eq(atomic_load(&t[i].cancels), want_cancel, "task %d was cancelled %d times",
                     i, atomic_load(&t[i].cancels));
    }
    free(t);
}

Test(refresh, close_of_an_idle_pool_returns_and_null_is_a_noop) {
    tc__refresh_close(NULL);
    ctx_t ctx = {0};
    task_t *t = tasks_new(&ctx, 1);
    tc__refresh_t *pool = pool_open(4, 4);
    cr_assert_eq(tc__refresh_submit(pool, task_run, task_cancel, &t[0]), TC_OK);
    cr_assert_eq(wait_at_least(&ctx.ran, 1), 1);
    tc__refresh_close(pool); /* the suite's timeout catches a close that never returns */
    cr_assert_eq(atomic_load(&t[0].runs) + atomic_load(&t[0].cancels), 1);
    free(t);
}

/* ---- many submitters ---- */

#define SUBMITTERS  8
#define PER_THREAD  3000
#define MANY_QUEUE  64
#define MANY_WORKER 4

typedef struct submitter {
    tc__refresh_t *pool;
    task_t *tasks; /* PER_THREAD of them, this thread's own */
    char *accepted;
    int naccepted, nrefused, unexpected; /* no assertions off the test's thread */
    atomic_int *go;
} submitter_t;

static void *submit_thread(void *arg) {
    submitter_t *s = arg;
    while (!atomic_load(s->go))
        sched_yield();
    for (int i = 0; i < PER_THREAD; i++) {
        int rc = tc__refresh_submit(s->pool, task_run, task_cancel, &s->tasks[i]);
        if (rc == TC_OK) {
            s->accepted[i] = 1;
            s->naccepted++;
        } else {
            s->unexpected += rc != TC_ENOSPC;
            s->nrefused++;
        }
    }
    return NULL;
}

/* Submitters race each other and the workers for the one ring: every task is accounted
 * for (accepted or refused, never lost or duplicated), and after close each accepted task
 * has run or been cancelled exactly once. with_drain: wait for every accepted task to run
 * before closing (then nothing may be cancelled); without, close lands on a busy queue. */
static void many_submitters(int with_drain) {
    ctx_t ctx = {0};
    task_t *t = tasks_new(&ctx, SUBMITTERS * PER_THREAD);
    char *accepted = calloc(SUBMITTERS * PER_THREAD, 1);
    cr_assert_not_null(accepted);
    tc__refresh_t *pool = pool_open(MANY_WORKER, MANY_QUEUE);
    atomic_int go = 0;
    submitter_t s[SUBMITTERS];
    pthread_t th[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        s[i] = (submitter_t){.pool = pool,
                             .tasks = t + i * PER_THREAD,
                             .accepted = accepted + i * PER_THREAD,
                             .go = &go};
        cr_assert_eq(pthread_create(&th[i], NULL, submit_thread, &s[i]), 0);
    }
    atomic_store(&go, 1);
    int naccepted = 0, nrefused = 0;
    for (int i = 0; i < SUBMITTERS; i++) {
        pthread_join(th[i], NULL);
        naccepted += s[i].naccepted;
        nrefused += s[i].nrefused;
        cr_assert_eq(s[i].unexpected, 0, "submit failed with something but TC_ENOSPC");
    }
    cr_assert_eq(naccepted + nrefused, SUBMITTERS * PER_THREAD);
    cr_assert_gt(naccepted, 0);
    if (with_drain)
        cr_assert_eq(wait_at_least(&ctx.ran, naccepted), naccepted);
    tc__refresh_close(pool);

    cr_assert_eq(atomic_load(&ctx.ran) + atomic_load(&ctx.cancelled), naccepted,
                 "%d ran + %d cancelled != %d accepted", atomic_load(&ctx.ran),
                 atomic_load(&ctx.cancelled), naccepted);
    if (with_drain)
        cr_assert_eq(atomic_load(&ctx.cancelled), 0);
    for (int i = 0; i < SUBMITTERS * PER_THREAD; i++) {
        int fates = atomic_load(&t[i].runs) + atomic_load(&t[i].cancels);
        cr_assert_eq(fates, accepted[i] ? 1 : 0, "task %d (%s) got %d run/cancel calls", i,
                     accepted[i] ? "accepted" : "refused", fates);
    }
    free(accepted);
    free(t);
}

Test(refresh, many_threads_submit_and_every_task_is_accounted_for, .timeout = 120) {
    many_submitters(1);
}

Test(refresh, many_threads_submit_then_close_on_a_busy_queue, .timeout = 120) {
    many_submitters(0);
}
