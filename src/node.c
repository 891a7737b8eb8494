/*
 * node.c - one Redis server: a small connection pool and a circuit breaker.
 *
 * What a call needs from "a Redis" is the same whatever the deployment: a connection of
 * its own for one round trip, and a quick "no" when the server has been failing. Both are
 * per server, so they live here, and the Redis tier (l2.c) hands each call's work to the
 * node of the server that owns the key.
 *
 * Pool. `pool_size` slots, each a blocking hiredis context or NULL (not connected yet, or
 * dropped after an error: a hiredis context is unusable once c->err is set). A caller
 * takes a free slot under the pool mutex (waiting at most command_timeout_ms), releases
 * the mutex, connects the slot if needed (and runs the owner's set-up on it), does its I/O
 * alone on it, and hands it back. Lock order: there is one lock, `mu`; it is never held
 * across network I/O. A reused connection that fails with EOF/reset (not a timeout) is
 * retried once on a fresh one: that is what a restarted Redis looks like to an idle
 * pooled socket.
 *
 * Breaker. Consecutive transport failures (connect errors, I/O errors, timeouts; not Redis
 * error replies, which prove Redis is alive) reaching breaker_threshold open it:
 *
 *     CLOSED --failures>=threshold--> OPEN --cooldown over, one CAS winner--> HALF_OPEN
 *       ^                              ^                                        |
 *       +---------- probe succeeded ---+------------- probe failed ------------+
 *
 * While OPEN or HALF_OPEN every other call returns TC_EUNAVAILABLE without touching the
 * network. State, failure count and deadline are atomics: the fast path takes no lock.
 *
 * Heal. The first call that Redis answers after a transport failure calls on_heal (the
 * cache drops the L1 entries it kept without Redis, l1.c rule 4).
 */
#include "node.h"

#include "clock.h"
#include "conn.h"
#include "errors.h"
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

enum { BRK_CLOSED = 0, BRK_OPEN = 1, BRK_HALF_OPEN = 2 };

struct tc__node {
    tc__endpoint_t ep;
    uint32_t connect_timeout_ms, command_timeout_ms;
    unsigned threshold;
    uint64_t cooldown_ns;
    tc__log_t *log;
    void (*on_heal)(void *arg);
    void *heal_arg;
    int (*setup)(void *arg, redisContext *c, tc_error_t *err);
    void *setup_arg;

    pthread_mutex_t mu; /* guards conn[], busy[], nfree, last_cause */
    pthread_cond_t cv;  /* a slot was released */
    unsigned nslots, nfree;
    redisContext **conn;
    unsigned char *busy;
    unsigned char *drop;  /* busy slot whose connection goes when handed back (reset) */
    char last_cause[256]; /* the last transport failure's message */

    atomic_int state;
    atomic_uint fails;
    atomic_int sick; /* a transport failure since the last answer: the next one heals */
    _Atomic uint64_t open_until_ns;
    atomic_uint_fast64_t timeouts, opens, heals, permission_errors;
};

/* ---- circuit breaker ------------------------------------------------------------------ */

/* 1 when the call may go to Redis; *probe set when this caller is the half-open probe. */
static int breaker_admit(tc__node_t *n, int *probe) {
    *probe = 0;
    int s = atomic_load_explicit(&n->state, memory_order_acquire);
    if (s == BRK_CLOSED)
        return 1;
    if (s == BRK_HALF_OPEN ||
        tc__now_ns() < atomic_load_explicit(&n->open_until_ns, memory_order_acquire))
        return 0;
    int expect = BRK_OPEN;
    if (!atomic_compare_exchange_strong(&n->state, &expect, BRK_HALF_OPEN))
        return 0;
    *probe = 1;
    return 1;
}

static void breaker_open(tc__node_t *n) {
    /* The deadline is published before the state so no reader sees OPEN with an old one. */
    atomic_store_explicit(&n->open_until_ns, tc__now_ns() + n->cooldown_ns,
                          memory_order_release);
    atomic_store_explicit(&n->fails, 0, memory_order_relaxed);
}

static void log_breaker_open(tc__node_t *n, const char *why) {
    if (!tc__log_on(n->log, TC_LOG_WARN))
        return;
    char cause[sizeof n->last_cause];
    pthread_mutex_lock(&n->mu);
    memcpy(cause, n->last_cause, sizeof cause);
    pthread_mutex_unlock(&n->mu);
    tc__log(n->log, TC__EV_BREAKER, TC_LOG_WARN, NULL, 0,
            "Redis unavailable (%s; last: %s): circuit breaker open, calls skip Redis for "
            "%llu ms",
            why, cause[0] ? cause : "?", (unsigned long long)(n->cooldown_ns / 1000000u));
}

/* healthy: 1 Redis answered, 0 transport failure, -1 unknown (no pool slot in time). */
static void breaker_report(tc__node_t *n, int probe, int healthy) {
    if (healthy == 0 && !atomic_load_explicit(&n->sick, memory_order_relaxed))
        atomic_store_explicit(&n->sick, 1, memory_order_relaxed);
    if (healthy == 1 && atomic_load_explicit(&n->sick, memory_order_relaxed) &&
        atomic_exchange(&n->sick, 0)) {
        tc__count(&n->heals);
        if (n->on_heal)
            n->on_heal(n->heal_arg);
    }
    if (healthy == 1) {
        if (atomic_load_explicit(&n->fails, memory_order_relaxed) != 0)
            atomic_store_explicit(&n->fails, 0, memory_order_relaxed);
        if (probe) {
            atomic_store_explicit(&n->state, BRK_CLOSED, memory_order_release);
            tc__log(n->log, TC__EV_BREAKER, TC_LOG_INFO, NULL, 0,
                    "Redis answered the probe: circuit breaker closed");
        }
        return;
    }
    if (probe) {
        breaker_open(n);
        atomic_store_explicit(&n->state, BRK_OPEN, memory_order_release);
        tc__count(&n->opens);
        log_breaker_open(n, "the probe failed");
        return;
    }
    if (healthy < 0 || n->threshold == 0)
        return;
    unsigned f = atomic_fetch_add_explicit(&n->fails, 1, memory_order_relaxed) + 1;
    if (f < n->threshold)
        return;
    int expect = BRK_CLOSED;
    uint64_t until = tc__now_ns() + n->cooldown_ns;
    atomic_store_explicit(&n->open_until_ns, until, memory_order_release);
    if (atomic_compare_exchange_strong(&n->state, &expect, BRK_OPEN)) {
        atomic_store_explicit(&n->fails, 0, memory_order_relaxed);
        tc__count(&n->opens);
        log_breaker_open(n, "consecutive failures");
    }
}

int tc__node_available(tc__node_t *n) {
    if (!n)
        return 0;
    int s = atomic_load_explicit(&n->state, memory_order_acquire);
    if (s == BRK_CLOSED)
        return 1;
    return s == BRK_OPEN &&
           tc__now_ns() >= atomic_load_explicit(&n->open_until_ns, memory_order_acquire);
}

/* ---- pool ------------------------------------------------------------------------------- */

/* A free slot, preferring one that is already connected; -1 when none is free. */
static int pick_slot_locked(tc__node_t *n) {
    int empty = -1;
    for (unsigned i = 0; i < n->nslots; i++) {
        if (n->busy[i])
            continue;
        if (n->conn[i])
            return (int)i;
        if (empty < 0)
            empty = (int)i;
    }
    return empty;
}

/* Slot index, or -1 when none became free within the command timeout. */
static int pool_acquire(tc__node_t *n) {
    struct timespec deadline =
        tc__timespec_ns(tc__now_ns() + (uint64_t)n->command_timeout_ms * 1000000u);
    pthread_mutex_lock(&n->mu);
    while (n->nfree == 0) {
        int rc = n->command_timeout_ms ? pthread_cond_timedwait(&n->cv, &n->mu, &deadline)
                                       : pthread_cond_wait(&n->cv, &n->mu);
        if (rc != 0 && n->nfree == 0) {
            pthread_mutex_unlock(&n->mu);
            return -1;
        }
    }
    int slot = pick_slot_locked(n);
    n->busy[slot] = 1;
    n->nfree--;
    pthread_mutex_unlock(&n->mu);
    return slot;
}

/* Hand the slot back with c (NULL when the connection was dropped). */
static void pool_release(tc__node_t *n, int slot, redisContext *c) {
    redisContext *close_it = NULL;
    pthread_mutex_lock(&n->mu);
    if (n->drop[slot]) { /* reset while it was out: it may reach the old server */
        n->drop[slot] = 0;
        close_it = c;
        c = NULL;
    }
    n->conn[slot] = c;
    n->busy[slot] = 0;
    n->nfree++;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    if (close_it)
        redisFree(close_it);
}

void tc__node_reset(tc__node_t *n) {
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    for (unsigned i = 0; i < n->nslots; i++) {
        if (n->busy[i]) {
            n->drop[i] = 1;
        } else if (n->conn[i]) {
            redisFree(n->conn[i]);
            n->conn[i] = NULL;
        }
    }
    pthread_mutex_unlock(&n->mu);
}

/* ---- running a call --------------------------------------------------------------------- */

static int open_conn(tc__node_t *n, redisContext **out, tc_error_t *err) {
    int rc = tc__conn_open(&n->ep, n->connect_timeout_ms, n->command_timeout_ms, out, err);
    if (rc == 0 && n->setup && (rc = n->setup(n->setup_arg, *out, err)) != 0) {
        redisFree(*out);
        *out = NULL;
    }
    return rc;
}

/* A connection set-up refused by Redis (AUTH, SELECT, SCRIPT LOAD): count and log an
 * authentication or ACL refusal. */
static void note_connect_refusal(tc__node_t *n, const tc_error_t *err) {
    const char *reply = strstr(err->msg, ": ");
    reply = reply ? reply + 2 : err->msg;
    if (!tc__conn_is_permission_text(reply, strlen(reply)))
        return;
    tc__count(&n->permission_errors);
    tc__log(n->log, TC__EV_PERMISSION, TC_LOG_ERROR, NULL, 0, "%s", err->msg);
}

static void remember_cause(tc__node_t *n, int rc, const tc_error_t *err) {
    pthread_mutex_lock(&n->mu);
    const char *cause = err->msg[0] ? err->msg : tc_strerror(rc);
    size_t len = strnlen(cause, sizeof n->last_cause - 1);
    memcpy(n->last_cause, cause, len);
    n->last_cause[len] = '\0';
    pthread_mutex_unlock(&n->mu);
}

/* Run work on a pooled connection. *healthy as for breaker_report. */
static int run_on_pool(tc__node_t *n, tc__node_work_fn work, void *arg, tc_error_t *err,
                       int *healthy) {
    int slot = pool_acquire(n);
    if (slot < 0) {
        *healthy = -1;
        return tc__fail(err, TC_ETIMEDOUT, "redis: no pool connection free within %u ms",
                        (unsigned)n->command_timeout_ms);
    }
    redisContext *c = n->conn[slot]; /* the slot is ours alone until released */
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = (c == NULL);
        if (fresh && (rc = open_conn(n, &c, err)) != 0)
            break;
        rc = work(arg, slot, fresh, c);
        if (rc == 0 || rc == TC_EREDIS)
            break;  /* answered: the connection is fine */
        if (c->err) /* the socket failed; otherwise work said why (e.g. READONLY) */
            tc__fail(err, rc, "redis: %s", c->errstr);
        redisFree(c);
        c = NULL;
        /* Only an old socket that died (Redis restarted) deserves a second try. */
        if (fresh || rc != TC_EUNAVAILABLE)
            break;
    }
    pool_release(n, slot, c);
    /* A refusal while connecting (AUTH, SELECT, SCRIPT LOAD) is an answer: Redis is alive
     * and the breaker stays closed; the configuration is what needs fixing. */
    *healthy = rc == 0 || rc == TC_EREDIS;
    if (rc == TC_EREDIS)
        note_connect_refusal(n, err);
    if (rc != 0 && rc != TC_EREDIS)
        remember_cause(n, rc, err);
    return rc;
}

int tc__node_run(tc__node_t *n, tc__node_work_fn work, void *arg, tc_error_t *err) {
    int probe;
    if (!breaker_admit(n, &probe))
        return tc__fail(err, TC_EUNAVAILABLE, "redis: circuit breaker open (%s)",
                        "Redis failed recently; the next call after the cool-down probes it");
    int healthy;
    int rc = run_on_pool(n, work, arg, err, &healthy);
    breaker_report(n, probe, healthy);
    if (rc == TC_ETIMEDOUT)
        tc__count(&n->timeouts);
    return rc;
}

/* ---- open / close ----------------------------------------------------------------------- */

static char *dup_or_null(const char *s, int *failed) {
    if (!s)
        return NULL;
    char *p = strdup(s);
    *failed |= p == NULL;
    return p;
}

static void node_free(tc__node_t *n) {
    for (unsigned i = 0; n->conn && i < n->nslots; i++)
        if (n->conn[i])
            redisFree(n->conn[i]);
    free(n->conn);
    free(n->busy);
    free(n->drop);
    free(n->ep.host);
    free(n->ep.path);
    free(n->ep.user);
    free(n->ep.password);
    free(n->ep.sentinels);
    free(n->ep.master_name);
    free(n->ep.sentinel_user);
    free(n->ep.sentinel_password);
    free(n->ep.cluster_seeds);
    free(n);
}

static int init_sync(tc__node_t *n) {
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* deadlines immune to clock steps */
    int rc = pthread_cond_init(&n->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&n->mu, NULL) != 0) {
        pthread_cond_destroy(&n->cv);
        return -1;
    }
    return 0;
}

int tc__node_open(const tc__node_opts_t *o, tc__node_t **out, tc_error_t *err) {
    *out = NULL;
    if (!o->endpoint || o->pool_size == 0)
        return tc__fail(err, TC_EINVAL, "redis node: an endpoint and a pool of 1+ are needed");
    tc__node_t *n = calloc(1, sizeof *n);
    if (!n)
        return tc__fail(err, TC_ENOMEM, "redis node: out of memory");
    int failed = 0;
    n->ep = *o->endpoint;
    n->ep.host = dup_or_null(o->endpoint->host, &failed);
    n->ep.path = dup_or_null(o->endpoint->path, &failed);
    n->ep.user = dup_or_null(o->endpoint->user, &failed);
    n->ep.password = dup_or_null(o->endpoint->password, &failed);
    n->ep.sentinels = dup_or_null(o->endpoint->sentinels, &failed);
    n->ep.master_name = dup_or_null(o->endpoint->master_name, &failed);
    n->ep.sentinel_user = dup_or_null(o->endpoint->sentinel_user, &failed);
    n->ep.sentinel_password = dup_or_null(o->endpoint->sentinel_password, &failed);
    n->ep.cluster_seeds = dup_or_null(o->endpoint->cluster_seeds, &failed);
    n->nslots = n->nfree = o->pool_size;
    n->conn = calloc(o->pool_size, sizeof *n->conn);
    n->busy = calloc(o->pool_size, 1);
    n->drop = calloc(o->pool_size, 1);
    if (failed || !n->conn || !n->busy || !n->drop) {
        node_free(n);
        return tc__fail(err, TC_ENOMEM, "redis node: out of memory");
    }
    if (init_sync(n) != 0) {
        node_free(n);
        return tc__fail(err, TC_ENOMEM, "redis node: cannot create the pool lock");
    }
    n->connect_timeout_ms = o->connect_timeout_ms;
    n->command_timeout_ms = o->command_timeout_ms;
    n->threshold = o->breaker_threshold;
    n->cooldown_ns = (uint64_t)o->breaker_cooldown_ms * 1000000u;
    n->log = o->log;
    n->on_heal = o->on_heal;
    n->heal_arg = o->heal_arg;
    n->setup = o->setup;
    n->setup_arg = o->setup_arg;
    *out = n;
    return 0;
}

void tc__node_close(tc__node_t *n) {
    if (!n)
        return;
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    node_free(n);
}

uint32_t tc__node_command_timeout_ms(const tc__node_t *n) {
    return n->command_timeout_ms;
}

void tc__node_counters(tc__node_t *n, tc__node_counters_t *out) {
    out->timeouts = atomic_load_explicit(&n->timeouts, memory_order_relaxed);
    out->opens = atomic_load_explicit(&n->opens, memory_order_relaxed);
    out->heals = atomic_load_explicit(&n->heals, memory_order_relaxed);
    out->permission_errors = atomic_load_explicit(&n->permission_errors, memory_order_relaxed);
    out->breaker_state = atomic_load_explicit(&n->state, memory_order_relaxed);
}
