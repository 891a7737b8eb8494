/*
 * l2.c - the Redis tier's machinery: a small connection pool, a circuit breaker, and
 * running a call (or a pipeline of calls) on a pooled connection in one round trip. What
 * the calls are lives in l2_ops.c (one key), l2_many.c (many keys, patterns) and
 * l2_queue.c (write strategies).
 *
 * Pool. `pool_size` slots, each a blocking hiredis context or NULL (not connected yet, or
 * dropped after an error: a hiredis context is unusable once c->err is set). A caller
 * takes a free slot under the pool mutex (waiting at most command_timeout_ms), releases
 * the mutex, connects the slot if needed, does its I/O alone on it, and hands it back.
 * Lock order: there is one lock, `mu`; it is never held across network I/O. A reused
 * connection that fails with EOF/reset (not a timeout) is retried once on a fresh one:
 * that is what a restarted Redis looks like to an idle pooled socket.
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
 * Scripts. Every write is a Lua script (scripts.c) that takes the next version from
 * <prefix>"v" (never below Redis's clock in microseconds, healed when corrupt), stores the
 * value with that version in its header (valfmt.h), voids the key's lease and PUBLISHes
 * the invalidation (msg.h) carrying the same version: the write and its invalidation are
 * one atomic step with one version. Scripts are SCRIPT LOADed on every new connection and
 * called by EVALSHA; a NOSCRIPT reply (the script cache was flushed) falls back to EVAL,
 * for each call of a pipeline that got one.
 *
 * Heal. The first call that Redis answers after a transport failure calls on_heal (the
 * cache drops the L1 entries it kept without Redis, l1.c rule 4).
 *
 * SIGPIPE. Writing to a socket whose peer died raises SIGPIPE, which would kill an
 * embedding server that did not ignore it. hiredis 0.14 uses plain write(), so hiredis is
 * never let write: commands are appended to its buffer and sent by tc__conn_get_reply with
 * send(MSG_NOSIGNAL) (conn.c). That costs no system call, where blocking SIGPIPE around
 * each round trip (libpq's way, ours until 0.2) cost two on every call.
 */
#include "l2.h"
#include "l2_int.h"

#include "clock.h"
#include "conn.h"
#include "errors.h"
#include "log.h"
#include "msg.h"
#include "scripts.h"

#include <assert.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BRK_CLOSED = 0, BRK_OPEN = 1, BRK_HALF_OPEN = 2 };

/* ---- small helpers ---------------------------------------------------------------- */

static char *dup_str(const char *s, size_t *len) {
    size_t n = s ? strlen(s) : 0;
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s ? s : "", n);
        p[n] = '\0';
    }
    if (len)
        *len = n;
    return p;
}

void tc__l2i_free_reply(redisReply **r) {
    if (*r)
        freeReplyObject(*r);
    *r = NULL;
}

/* ---- SIGPIPE guard ------------------------------------------------------------------ */

/* ---- circuit breaker ------------------------------------------------------------------ */

/* 1 when the call may go to Redis; *probe set when this caller is the half-open probe. */
static int breaker_admit(tc__l2_t *l2, int *probe) {
    *probe = 0;
    int s = atomic_load_explicit(&l2->state, memory_order_acquire);
    if (s == BRK_CLOSED)
        return 1;
    if (s == BRK_HALF_OPEN ||
        tc__now_ns() < atomic_load_explicit(&l2->open_until_ns, memory_order_acquire))
        return 0;
    int expect = BRK_OPEN;
    if (!atomic_compare_exchange_strong(&l2->state, &expect, BRK_HALF_OPEN))
        return 0;
    *probe = 1;
    return 1;
}

static void breaker_open(tc__l2_t *l2) {
    /* The deadline is published before the state so no reader sees OPEN with an old one. */
    atomic_store_explicit(&l2->open_until_ns, tc__now_ns() + l2->cooldown_ns,
                          memory_order_release);
    atomic_store_explicit(&l2->fails, 0, memory_order_relaxed);
}

static void log_breaker_open(tc__l2_t *l2, const char *why) {
    if (!tc__log_on(l2->log, TC_LOG_WARN))
        return;
    char cause[sizeof l2->last_cause];
    pthread_mutex_lock(&l2->mu);
    memcpy(cause, l2->last_cause, sizeof cause);
    pthread_mutex_unlock(&l2->mu);
    tc__log(l2->log, TC__EV_BREAKER, TC_LOG_WARN, NULL, 0,
            "Redis unavailable (%s; last: %s): circuit breaker open, calls skip Redis for "
            "%llu ms",
            why, cause[0] ? cause : "?", (unsigned long long)(l2->cooldown_ns / 1000000u));
}

/* healthy: 1 Redis answered, 0 transport failure, -1 unknown (no pool slot in time). */
static void breaker_report(tc__l2_t *l2, int probe, int healthy) {
    if (healthy == 0 && !atomic_load_explicit(&l2->sick, memory_order_relaxed))
        atomic_store_explicit(&l2->sick, 1, memory_order_relaxed);
    if (healthy == 1 && atomic_load_explicit(&l2->sick, memory_order_relaxed) &&
        atomic_exchange(&l2->sick, 0)) {
        tc__count(&l2->heals);
        if (l2->on_heal)
            l2->on_heal(l2->heal_arg);
    }
    if (healthy == 1) {
        if (atomic_load_explicit(&l2->fails, memory_order_relaxed) != 0)
            atomic_store_explicit(&l2->fails, 0, memory_order_relaxed);
        if (probe) {
            atomic_store_explicit(&l2->state, BRK_CLOSED, memory_order_release);
            tc__log(l2->log, TC__EV_BREAKER, TC_LOG_INFO, NULL, 0,
                    "Redis answered the probe: circuit breaker closed");
        }
        return;
    }
    if (probe) {
        breaker_open(l2);
        atomic_store_explicit(&l2->state, BRK_OPEN, memory_order_release);
        tc__count(&l2->opens);
        log_breaker_open(l2, "the probe failed");
        return;
    }
    if (healthy < 0 || l2->threshold == 0)
        return;
    unsigned n = atomic_fetch_add_explicit(&l2->fails, 1, memory_order_relaxed) + 1;
    if (n < l2->threshold)
        return;
    int expect = BRK_CLOSED;
    uint64_t until = tc__now_ns() + l2->cooldown_ns;
    atomic_store_explicit(&l2->open_until_ns, until, memory_order_release);
    if (atomic_compare_exchange_strong(&l2->state, &expect, BRK_OPEN)) {
        atomic_store_explicit(&l2->fails, 0, memory_order_relaxed);
        tc__count(&l2->opens);
        log_breaker_open(l2, "consecutive failures");
    }
}

int tc__l2_available(tc__l2_t *l2) {
    if (!l2)
        return 0;
    int s = atomic_load_explicit(&l2->state, memory_order_acquire);
    if (s == BRK_CLOSED)
        return 1;
    return s == BRK_OPEN &&
           tc__now_ns() >= atomic_load_explicit(&l2->open_until_ns, memory_order_acquire);
}

/* ---- pool ------------------------------------------------------------------------------- */

/* A free slot, preferring one that is already connected; -1 when none is free. */
static int pick_slot_locked(tc__l2_t *l2) {
    int empty = -1;
    for (unsigned i = 0; i < l2->nslots; i++) {
        if (l2->busy[i])
            continue;
        if (l2->conn[i])
            return (int)i;
        if (empty < 0)
            empty = (int)i;
    }
    return empty;
}

/* Slot index, or -1 when none became free within the command timeout. */
static int pool_acquire(tc__l2_t *l2) {
    struct timespec deadline =
        tc__timespec_ns(tc__now_ns() + (uint64_t)l2->command_timeout_ms * 1000000u);
    pthread_mutex_lock(&l2->mu);
    while (l2->nfree == 0) {
        int rc = l2->command_timeout_ms ? pthread_cond_timedwait(&l2->cv, &l2->mu, &deadline)
                                        : pthread_cond_wait(&l2->cv, &l2->mu);
        if (rc != 0 && l2->nfree == 0) {
            pthread_mutex_unlock(&l2->mu);
            return -1;
        }
    }
    int slot = pick_slot_locked(l2);
    l2->busy[slot] = 1;
    l2->nfree--;
    pthread_mutex_unlock(&l2->mu);
    return slot;
}

/* Hand the slot back with c (NULL when the connection was dropped). */
static void pool_release(tc__l2_t *l2, int slot, redisContext *c) {
    pthread_mutex_lock(&l2->mu);
    l2->conn[slot] = c;
    l2->busy[slot] = 0;
    l2->nfree++;
    pthread_cond_signal(&l2->cv);
    pthread_mutex_unlock(&l2->mu);
}

/* ---- connections and scripts ---------------------------------------------------------- */

static int sha_reply_ok(const redisReply *r) {
    return r && r->type == REDIS_REPLY_STRING && r->len == L2_SHA_LEN;
}

static void remember_shas(tc__l2_t *l2, redisReply *const *r) {
    for (int i = 0; i < TC__SCRIPT_COUNT; i++)
        if (!sha_reply_ok(r[i]))
            return; /* e.g. NOPERM: EVAL will say why on use */
    pthread_mutex_lock(&l2->mu);
    if (!atomic_load_explicit(&l2->sha_known, memory_order_relaxed)) {
        for (int i = 0; i < TC__SCRIPT_COUNT; i++)
            memcpy(l2->sha[i], r[i]->str, L2_SHA_LEN + 1);
        atomic_store_explicit(&l2->sha_known, 1, memory_order_release);
    }
    pthread_mutex_unlock(&l2->mu);
}

/* SCRIPT LOAD all scripts, pipelined. 0, or the transport error code. */
/* An authentication or ACL refusal, by its reply text: Redis is fine, the configuration is
 * not. */
static int is_permission_text(const char *s, size_t len) {
    static const char *const codes[] = {"NOPERM", "NOAUTH", "WRONGPASS"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        size_t n = strlen(codes[i]);
        if (len >= n && memcmp(s, codes[i], n) == 0)
            return 1;
    }
    return 0;
}

/* A refusal on a new connection (SCRIPT LOAD answered NOAUTH or NOPERM): the connection
 * cannot run our scripts, and the reply says why. 0 when every script loaded. */
static int scripts_refused(redisReply *const *r, tc_error_t *err) {
    for (int i = 0; i < TC__SCRIPT_COUNT; i++)
        if (r[i] && r[i]->type == REDIS_REPLY_ERROR && is_permission_text(r[i]->str, r[i]->len))
            return tc__fail(err, TC_EREDIS, "redis refused SCRIPT LOAD: %.*s", (int)r[i]->len,
                            r[i]->str);
    return 0;
}

static int load_scripts(tc__l2_t *l2, redisContext *c, tc_error_t *err) {
    for (int i = 0; i < TC__SCRIPT_COUNT; i++) {
        const char *body = tc__script_body((tc__script_t)i);
        const char *argv[3] = {"SCRIPT", "LOAD", body};
        size_t lens[3] = {6, 4, strlen(body)};
        redisAppendCommandArgv(c, 3, argv, lens);
    }
    redisReply *r[TC__SCRIPT_COUNT] = {NULL};
    int rc = 0;
    for (int i = 0; i < TC__SCRIPT_COUNT && rc == 0; i++) {
        errno = 0;
        if (tc__conn_get_reply(c, (void **)&r[i]) != REDIS_OK)
            rc = tc__conn_error_code(c, errno);
    }
    if (rc == 0)
        rc = scripts_refused(r, err);
    if (rc == 0)
        remember_shas(l2, r);
    for (int i = 0; i < TC__SCRIPT_COUNT; i++)
        tc__l2i_free_reply(&r[i]);
    return rc;
}

static int open_conn(tc__l2_t *l2, redisContext **out, tc_error_t *err) {
    int rc = tc__conn_open(&l2->ep, l2->connect_timeout_ms, l2->command_timeout_ms, out, err);
    if (rc != 0)
        return rc;
    if (l2->plain) /* plain keys run no script on the data path (tc_invalidate uses EVAL) */
        return 0;
    rc = load_scripts(l2, *out, err);
    if (rc != 0 && rc != TC_EREDIS)
        tc__fail(err, rc, "redis SCRIPT LOAD: %s", (*out)->errstr);
    if (rc != 0) {
        redisFree(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- one round trip ------------------------------------------------------------------- */

static int is_noscript(const redisReply *r) {
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

static int send_and_read(redisContext *c, int argc, const char **argv, const size_t *lens,
                         redisReply **out) {
    errno = 0;
    *out = tc__conn_command_argv(c, argc, argv, lens);
    return *out ? 0 : tc__conn_error_code(c, errno);
}

/* Write one call's commands into c's output buffer (nothing is sent yet). */
static void append_call(tc__l2_t *l2, redisContext *c, l2_call_t *call) {
    switch (call->kind) {
    case CALL_SCRIPT: {
        const char *body = tc__script_body((tc__script_t)call->script);
        int known = atomic_load_explicit(&l2->sha_known, memory_order_acquire);
        call->argv[0] = known ? "EVALSHA" : "EVAL";
        call->argv[1] = known ? l2->sha[call->script] : body;
        call->lens[0] = known ? 7 : 4;
        call->lens[1] = known ? L2_SHA_LEN : strlen(body);
        redisAppendCommandArgv(c, call->argc, call->argv, call->lens);
        return;
    }
    case CALL_GET: { /* GETRANGE, PTTL and the marks' MGET: one round trip */
        const char *pttl[2] = {"PTTL", call->argv[1]};
        size_t pttl_lens[2] = {4, call->lens[1]};
        redisAppendCommandArgv(c, call->argc, call->argv, call->lens);
        redisAppendCommandArgv(c, 2, pttl, pttl_lens);
        if (call->argc2)
            redisAppendCommandArgv(c, call->argc2, call->argv2, call->lens2);
        return;
    }
    case CALL_PLAIN_ADD: { /* SET NX PX, GETRANGE, PTTL. argv: key, value, ttl */
        const char *set[6] = {"SET", call->argv[0], call->argv[1], "PX", call->argv[2], "NX"};
        size_t set_lens[6] = {3, call->lens[0], call->lens[1], 2, call->lens[2], 2};
        const char *get[4] = {"GETRANGE", call->argv[0], "0", l2->get_end};
        size_t get_lens[4] = {8, call->lens[0], 1, l2->get_end_len};
        const char *pttl[2] = {"PTTL", call->argv[0]};
        size_t pttl_lens[2] = {4, call->lens[0]};
        redisAppendCommandArgv(c, 6, set, set_lens);
        redisAppendCommandArgv(c, 4, get, get_lens);
        redisAppendCommandArgv(c, 2, pttl, pttl_lens);
        return;
    }
    case CALL_PIPE:
        for (size_t i = 0; i < call->nparts; i++)
            append_call(l2, c, &call->parts[i]);
        return;
    case CALL_GETS:
        for (size_t i = 0; i < call->gets->n; i++) {
            const char *get[4] = {"GETRANGE", (const char *)call->gets->keys[i], "0",
                                  l2->get_end};
            size_t get_lens[4] = {8, call->gets->lens[i], 1, l2->get_end_len};
            const char *pttl[2] = {"PTTL", get[1]};
            size_t pttl_lens[2] = {4, get_lens[1]};
            redisAppendCommandArgv(c, 4, get, get_lens);
            redisAppendCommandArgv(c, 2, pttl, pttl_lens);
        }
        return;
    default:
        redisAppendCommandArgv(c, call->argc, call->argv, call->lens);
    }
}

static int read_one(redisContext *c, redisReply **out) {
    errno = 0;
    return tc__conn_get_reply(c, (void **)out) == REDIS_OK ? 0 : tc__conn_error_code(c, errno);
}

static void free_replies(l2_call_t *call) {
    tc__l2i_free_reply(&call->reply);
    tc__l2i_free_reply(&call->reply2);
    tc__l2i_free_reply(&call->reply3);
    for (size_t i = 0; call->kind == CALL_PIPE && i < call->nparts; i++)
        free_replies(&call->parts[i]);
    for (size_t i = 0; call->kind == CALL_GETS && i < 2 * call->gets->n; i++)
        tc__l2i_free_reply(&call->gets->replies[i]);
}

/* Read the replies of what append_call wrote, in the same order. 0, or the transport
 * error (then c must be dropped). */
static int read_call(redisContext *c, l2_call_t *call) {
    int rc = 0;
    switch (call->kind) {
    case CALL_GET:
        rc = read_one(c, &call->reply);
        if (rc == 0)
            rc = read_one(c, &call->reply2);
        if (rc == 0 && call->argc2)
            rc = read_one(c, &call->reply3);
        break;
    case CALL_PLAIN_ADD:
        rc = read_one(c, &call->reply3);
        if (rc == 0)
            rc = read_one(c, &call->reply);
        if (rc == 0)
            rc = read_one(c, &call->reply2);
        break;
    case CALL_PIPE:
        for (size_t i = 0; i < call->nparts && rc == 0; i++)
            rc = read_call(c, &call->parts[i]);
        break;
    case CALL_GETS:
        for (size_t i = 0; i < 2 * call->gets->n && rc == 0; i++)
            rc = read_one(c, &call->gets->replies[i]);
        break;
    default:
        rc = read_one(c, &call->reply);
    }
    return rc;
}

/* The script cache was flushed (SCRIPT FLUSH, a restarted Redis): send the body instead,
 * for every script call whose EVALSHA was refused. */
static int retry_noscript(redisContext *c, l2_call_t *call) {
    if (call->kind == CALL_PIPE) {
        for (size_t i = 0; i < call->nparts; i++) {
            int rc = retry_noscript(c, &call->parts[i]);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (call->kind != CALL_SCRIPT || !call->reply || !is_noscript(call->reply))
        return 0;
    tc__l2i_free_reply(&call->reply);
    const char *body = tc__script_body((tc__script_t)call->script);
    call->argv[0] = "EVAL";
    call->argv[1] = body;
    call->lens[0] = 4;
    call->lens[1] = strlen(body);
    return send_and_read(c, call->argc, call->argv, call->lens, &call->reply);
}

/* One round trip: every command written, then every reply read. 0 with the replies in
 * call, or a transport error code (then c must be dropped, and no reply is kept). */
static int exec_call(tc__l2_t *l2, redisContext *c, l2_call_t *call) {
    append_call(l2, c, call);
    int rc = read_call(c, call);
    if (rc == 0)
        rc = retry_noscript(c, call);
    if (rc != 0)
        free_replies(call);
    return rc;
}

static void set_timeout(redisContext *c, uint32_t ms) {
    struct timeval tv = {(time_t)(ms / 1000u), (suseconds_t)(ms % 1000u) * 1000};
    redisSetTimeout(c, tv);
}

/* A connection set-up refused by Redis (AUTH, SELECT, SCRIPT LOAD): count and log an
 * authentication or ACL refusal. */
static void note_connect_refusal(tc__l2_t *l2, const tc_error_t *err) {
    const char *reply = strstr(err->msg, ": ");
    reply = reply ? reply + 2 : err->msg;
    if (!is_permission_text(reply, strlen(reply)))
        return;
    tc__count(&l2->permission_errors);
    tc__log(l2->log, TC__EV_PERMISSION, TC_LOG_ERROR, NULL, 0, "%s", err->msg);
}

/* Default tracking: a connection's reads are tracked for the listener that is subscribed
 * now. A connection armed for an earlier listener (its link was lost and replaced) or
 * never armed is re-armed before its call, so no read commits to L1 untracked. */
static int arm_tracking(tc__l2_t *l2, int slot, redisContext *c, l2_call_t *call) {
    uint64_t id = atomic_load_explicit(&l2->track_id, memory_order_acquire);
    if (l2->tracking != TC_TRACKING_DEFAULT || id == 0 || l2->armed[slot] == id)
        return 0;
    char num[24];
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)id);
    const char *argv[4] = {"CLIENT", "TRACKING", "on", "REDIRECT"};
    const char *full[5] = {argv[0], argv[1], argv[2], argv[3], num};
    size_t lens[5] = {6, 8, 2, 8, (size_t)n};
    redisReply *r = NULL;
    int rc = send_and_read(c, 5, full, lens, &r);
    if (rc != 0)
        return tc__fail(call->err, rc, "redis CLIENT TRACKING: %s", c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        rc = tc__fail(call->err, TC_EREDIS, "redis refused CLIENT TRACKING: %.*s", (int)r->len,
                      r->str);
    else
        l2->armed[slot] = id;
    freeReplyObject(r);
    return rc;
}

void tc__l2_set_tracking_target(tc__l2_t *l2, uint64_t client_id) {
    atomic_store_explicit(&l2->track_id, client_id, memory_order_release);
}

/* Run call on a pooled connection. *healthy as for breaker_report. */
static int run_on_pool(tc__l2_t *l2, l2_call_t *call, int *healthy) {
    int slot = pool_acquire(l2);
    if (slot < 0) {
        *healthy = -1;
        return tc__fail(call->err, TC_ETIMEDOUT, "redis: no pool connection free within %u ms",
                        (unsigned)l2->command_timeout_ms);
    }
    redisContext *c = l2->conn[slot]; /* the slot is ours alone until released */
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = (c == NULL);
        if (fresh && (rc = open_conn(l2, &c, call->err)) != 0)
            break;
        if (fresh)
            l2->armed[slot] = 0;
        if ((rc = arm_tracking(l2, slot, c, call)) == TC_EREDIS)
            break; /* refused: Redis answered, the connection is fine */
        if (rc == 0 && call->extra_timeout_ms)
            set_timeout(c, l2->command_timeout_ms + call->extra_timeout_ms);
        if (rc == 0)
            rc = exec_call(l2, c, call);
        if (call->extra_timeout_ms && rc == 0)
            set_timeout(c, l2->command_timeout_ms);
        if (rc == 0)
            break;
        tc__fail(call->err, rc, "redis: %s", c->errstr);
        redisFree(c);
        c = NULL;
        /* Only an old socket that died (Redis restarted) deserves a second try. */
        if (fresh || rc != TC_EUNAVAILABLE)
            break;
    }
    pool_release(l2, slot, c);
    /* A refusal while connecting (AUTH, SELECT, SCRIPT LOAD) is an answer: Redis is alive
     * and the breaker stays closed; the configuration is what needs fixing. */
    *healthy = rc == 0 || rc == TC_EREDIS;
    if (rc == TC_EREDIS)
        note_connect_refusal(l2, call->err);
    if (rc != 0 && rc != TC_EREDIS) {
        pthread_mutex_lock(&l2->mu);
        const char *cause = call->err->msg[0] ? call->err->msg : tc_strerror(rc);
        size_t n = strnlen(cause, sizeof l2->last_cause - 1);
        memcpy(l2->last_cause, cause, n);
        l2->last_cause[n] = '\0';
        pthread_mutex_unlock(&l2->mu);
    }
    return rc;
}

static const char *call_name(const l2_call_t *call) {
    static const char *const scripts[TC__SCRIPT_COUNT] = {
        [TC__SCRIPT_SET] = "the write script (SET)",
        [TC__SCRIPT_DEL] = "the delete script (DEL)",
        [TC__SCRIPT_ADD] = "the fill script (ADD)",
        [TC__SCRIPT_CAS] = "the refresh script (CAS)",
        [TC__SCRIPT_LOCK] = "the lock script (LOCK)",
        [TC__SCRIPT_UNLOCK] = "the unlock script (UNLOCK)",
        [TC__SCRIPT_EXTEND] = "the lease script (EXTEND)",
        [TC__SCRIPT_EVICT] = "the evict script (EVICT)",
        [TC__SCRIPT_VERSION] = "the version script (VERSION)",
        [TC__SCRIPT_MARK] = "the mark script (MARK: clear, namespace)",
        [TC__SCRIPT_TAG_DEL] = "the tag invalidation script (TAG_DEL)",
        [TC__SCRIPT_PREFIX_DEL] = "the prefix invalidation script (PREFIX_DEL)"};
    if (call->kind == CALL_SCRIPT && call->script >= 0 && call->script < TC__SCRIPT_COUNT)
        return scripts[call->script];
    return call->kind == CALL_GET ? "GETRANGE/PTTL/MGET" : call->argc ? call->argv[0] : "PING";
}

/* Redis answered with an error reply: keep its text as the call's detail, and count and
 * log a permission refusal (it would otherwise look like a plain miss or TC_EREDIS). */
static void describe_refusal(tc__l2_t *l2, l2_call_t *call, const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ERROR)
        return;
    tc__fail(call->err, TC_EREDIS, "redis refused %s: %.*s", call_name(call), (int)r->len,
             r->str);
    if (!is_permission_text(r->str, r->len))
        return;
    tc__count(&l2->permission_errors);
    tc__log(l2->log, TC__EV_PERMISSION, TC_LOG_ERROR, NULL, 0,
            "%s (grant it in the ACL: see docs/operations.md \"Redis ACL\")", call->err->msg);
}

/* Breaker and counters around one call. 0 or an error code. */
int tc__l2i_run(tc__l2_t *l2, l2_call_t *call) {
    int probe;
    if (!call->err)
        call->err = &call->local_err;
    if (!breaker_admit(l2, &probe))
        return tc__fail(call->err, TC_EUNAVAILABLE, "redis: circuit breaker open (%s)",
                        "Redis failed recently; the next call after the cool-down probes it");
    int healthy;
    int rc = run_on_pool(l2, call, &healthy);
    breaker_report(l2, probe, healthy);
    if (rc == 0) {
        tc__error_clear(call->err); /* a retried dead socket left its message there */
        describe_refusal(l2, call, call->reply);
        describe_refusal(l2, call, call->reply2);
        describe_refusal(l2, call, call->reply3);
    }
    if (rc == TC_ETIMEDOUT)
        tc__count(&l2->timeouts);
    return rc;
}

/* ---- open / close -------------------------------------------------------------------------
 */

static int copy_endpoint(tc__endpoint_t *dst, const tc__endpoint_t *src) {
    *dst = *src;
    dst->host = src->host ? dup_str(src->host, NULL) : NULL;
    dst->path = src->path ? dup_str(src->path, NULL) : NULL;
    dst->user = src->user ? dup_str(src->user, NULL) : NULL;
    dst->password = src->password ? dup_str(src->password, NULL) : NULL;
    return (src->host && !dst->host) || (src->path && !dst->path) ||
                   (src->user && !dst->user) || (src->password && !dst->password)
               ? TC_ENOMEM
               : 0;
}

static void free_endpoint(tc__endpoint_t *ep) {
    free(ep->host);
    free(ep->path);
    free(ep->user);
    free(ep->password);
}

static void l2_free(tc__l2_t *l2) {
    for (unsigned i = 0; l2->conn && i < l2->nslots; i++)
        if (l2->conn[i])
            redisFree(l2->conn[i]);
    free(l2->conn);
    free(l2->busy);
    free_endpoint(&l2->ep);
    free(l2->key_prefix);
    free(l2->channel);
    free(l2->vkey);
    free(l2->logkey);
    free(l2->clearkey);
    free(l2->armed);
    free(l2);
}

static int init_sync(tc__l2_t *l2) {
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* deadlines immune to clock steps */
    int rc = pthread_cond_init(&l2->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&l2->mu, NULL) != 0) {
        pthread_cond_destroy(&l2->cv);
        return -1;
    }
    return 0;
}

static int init_strings(tc__l2_t *l2, const tc__l2_opts_t *o) {
    l2->key_prefix = dup_str(o->key_prefix, &l2->prefix_len);
    l2->channel = dup_str(o->channel, &l2->channel_len);
    l2->vkey_len = l2->prefix_len + 1;
    l2->vkey = malloc(l2->vkey_len + 1);
    if (!l2->key_prefix || !l2->channel || !l2->vkey)
        return TC_ENOMEM;
    memcpy(l2->vkey, l2->key_prefix, l2->prefix_len);
    memcpy(l2->vkey + l2->prefix_len, "v", 2);
    l2->logkey_len = l2->prefix_len + 3;
    l2->logkey = malloc(l2->logkey_len + 1);
    if (!l2->logkey)
        return TC_ENOMEM;
    memcpy(l2->logkey, l2->key_prefix, l2->prefix_len);
    memcpy(l2->logkey + l2->prefix_len, "log", 4);
    l2->clearkey_len = l2->prefix_len + 5;
    l2->clearkey = malloc(l2->clearkey_len + 1);
    if (!l2->clearkey)
        return TC_ENOMEM;
    memcpy(l2->clearkey, l2->key_prefix, l2->prefix_len);
    memcpy(l2->clearkey + l2->prefix_len, "clear", 6);
    l2->log_maxlen_len =
        (size_t)snprintf(l2->log_maxlen, sizeof l2->log_maxlen, "%u", o->replay_log_len);
    return copy_endpoint(&l2->ep, o->endpoint);
}

int tc__l2_open(const tc__l2_opts_t *opts, tc__l2_t **out, tc_error_t *err) {
    if (!out)
        return tc__fail(err, TC_EINVAL, "l2: out is NULL");
    *out = NULL;
    if (!opts || !opts->endpoint || !opts->key_prefix || !opts->channel)
        return tc__fail(err, TC_EINVAL, "l2: endpoint, key_prefix and channel are required");
    if (opts->pool_size == 0)
        return tc__fail(err, TC_EINVAL, "pool_size must be at least 1");
    tc__l2_t *l2 = calloc(1, sizeof *l2);
    if (!l2)
        return tc__fail(err, TC_ENOMEM, "l2: out of memory");
    size_t max_value = opts->max_value_bytes && opts->max_value_bytes < L2_MAX_VALUE
                           ? opts->max_value_bytes
                           : L2_MAX_VALUE;
    l2->max_stored = TC__VAL_HDR_LEN + max_value;
    l2->get_end_len = (size_t)snprintf(l2->get_end, sizeof l2->get_end, "%zu", l2->max_stored);
    l2->max_stored_len = l2->get_end_len;
    memcpy(l2->max_stored_str, l2->get_end, sizeof l2->get_end);
    l2->on_heal = opts->on_heal;
    l2->heal_arg = opts->heal_arg;
    l2->log = opts->log;
    l2->plain = opts->plain;
    l2->tracking = opts->tracking;
    l2->ns_sep = opts->ns_sep;
    l2->marks = opts->marks;
    l2->nslots = l2->nfree = opts->pool_size;
    l2->conn = calloc(opts->pool_size, sizeof *l2->conn);
    l2->busy = calloc(opts->pool_size, 1);
    l2->armed = calloc(opts->pool_size, sizeof *l2->armed);
    if (!l2->conn || !l2->busy || !l2->armed || init_strings(l2, opts) != 0) {
        l2_free(l2);
        return tc__fail(err, TC_ENOMEM, "l2: out of memory");
    }
    if (init_sync(l2) != 0) {
        l2_free(l2);
        return tc__fail(err, TC_ENOMEM, "l2: cannot create the pool lock");
    }
    memcpy(l2->origin, opts->origin, sizeof l2->origin);
    l2->connect_timeout_ms = opts->connect_timeout_ms;
    l2->command_timeout_ms = opts->command_timeout_ms;
    l2->threshold = opts->breaker_threshold;
    l2->cooldown_ns = (uint64_t)opts->breaker_cooldown_ms * 1000000u;
    *out = l2;
    return 0;
}

void tc__l2_close(tc__l2_t *l2) {
    if (!l2)
        return;
    pthread_mutex_destroy(&l2->mu);
    pthread_cond_destroy(&l2->cv);
    l2_free(l2);
}

int tc__l2_ping(tc__l2_t *l2, tc_error_t *err) {
    if (!l2)
        return tc__fail(err, TC_EINVAL, "l2 is NULL");
    l2_call_t call = {.kind = CALL_PING, .err = err};
    tc__l2i_push(&call, "PING", 4);
    int rc = tc__l2i_run(l2, &call);
    if (rc == 0) {
        const redisReply *r = call.reply;
        if (r->type == REDIS_REPLY_ERROR)
            rc = tc__fail(err, TC_EREDIS, "redis PING: %.*s", (int)r->len, r->str);
        else if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
            rc = tc__fail(err, TC_EPROTO, "redis PING: unexpected reply");
    }
    tc__l2i_free_reply(&call.reply);
    return tc__l2i_finish(l2, &call, rc);
}

static uint64_t relaxed(_Atomic uint64_t *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

void tc__l2_counters(tc__l2_t *l2, tc__l2_counters_t *out) {
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!l2)
        return;
    out->errors = relaxed(&l2->errors);
    out->timeouts = relaxed(&l2->timeouts);
    out->opens = relaxed(&l2->opens);
    out->published = relaxed(&l2->published);
    out->refused = relaxed(&l2->refused);
    out->healed_counters = relaxed(&l2->healed_counters);
    out->heals = relaxed(&l2->heals);
    out->permission_errors = relaxed(&l2->permission_errors);
    out->hidden = relaxed(&l2->hidden);
    out->breaker_state = atomic_load_explicit(&l2->state, memory_order_relaxed);
}
