/*
 * l2.c - the Redis tier: a small connection pool, a circuit breaker, and the four
 * operations (get, set, del, add) the cache needs, each one round trip.
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
 * Writes. Every write is a Lua script that takes the next version from <prefix>"v"
 * (never below Redis's clock in microseconds, see L2_LUA_NEXT_VERSION), splices it into
 * the stored header (valfmt.h) and into the invalidation message (msg.h), and PUBLISHes,
 * so the write and its invalidation are one atomic step with one version. Scripts are
 * SCRIPT LOADed on every new connection and called by EVALSHA; a NOSCRIPT reply (the
 * script cache was flushed) falls back to EVAL with the body.
 *
 * SIGPIPE. Writing to a socket whose peer died raises SIGPIPE, which would kill an
 * embedding server that did not ignore it. hiredis 0.14 uses plain write(), so every
 * round trip runs with SIGPIPE blocked in the calling thread, and a SIGPIPE raised by our
 * own write is consumed before the mask is restored (libpq does the same).
 */
#include "l2.h"

#include "clock.h"
#include "conn.h"
#include "errors.h"
#include "msg.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BRK_CLOSED = 0, BRK_OPEN = 1, BRK_HALF_OPEN = 2 };
enum {
    SCRIPT_SET,
    SCRIPT_DEL,
    SCRIPT_ADD,
    SCRIPT_CAS,
    SCRIPT_LOCK,
    SCRIPT_UNLOCK,
    SCRIPT_COUNT
};
enum { CALL_PING, CALL_GET, CALL_SCRIPT };

#define L2_MAX_ARGS      16
#define L2_SHA_LEN       40
#define L2_STACK_SCRATCH 512
#define L2_MAX_VALUE     ((size_t)511 << 20) /* below Redis's 512 MiB bulk limit */

/* The next version: the counter, but never below Redis's clock in microseconds. A counter
 * that Redis lost (restart without persistence, maxmemory eviction of the key, FLUSHALL)
 * would otherwise restart at 1 and make new writes look older than entries some L1 still
 * holds. Microseconds stay exact in Lua's doubles until the year 2255. */
#define L2_LUA_NEXT_VERSION                                                                    \
    "local t = redis.call('TIME')\n"                                                           \
    "local floor = t[1] * 1000000 + t[2]\n"                                                    \
    "local v = redis.call('INCR', KEYS[2])\n"                                                  \
    "if v < floor then v = floor redis.call('SET', KEYS[2], string.format('%.0f', v)) end\n"

/* The version as two big-endian u32 halves: Lua numbers are doubles, no 64-bit ints. */
#define L2_LUA_PACK "struct.pack('>I4I4', math.floor(v / 4294967296), v % 4294967296)"
#define L2_LUA_STORE                                                                           \
    "local val = ARGV[1] .. pv .. ARGV[2] .. ARGV[3]\n"                                        \
    "if ARGV[4] == '0' then redis.call('SET', KEYS[1], val)\n"                                 \
    "else redis.call('SET', KEYS[1], val, 'PX', ARGV[4]) end\n"

/* KEYS: data, version. ARGV: val head, expiry, payload, ttl ms (0 = none), channel,
 * msg head, msg tail. */
static const char script_set[] =
    L2_LUA_NEXT_VERSION "local pv = " L2_LUA_PACK "\n" L2_LUA_STORE
                        "redis.call('PUBLISH', ARGV[5], ARGV[6] .. pv .. ARGV[7])\n"
                        "return v\n";
/* KEYS: data, version. ARGV: channel, msg head, msg tail. */
static const char script_del[] =
    L2_LUA_NEXT_VERSION "redis.call('DEL', KEYS[1])\n"
                        "local pv = " L2_LUA_PACK "\n"
                        "redis.call('PUBLISH', ARGV[1], ARGV[2] .. pv .. ARGV[3])\n"
                        "return v\n";
/* KEYS: data, version. ARGV: as SET's first four. {0, value, pttl} or {1, version}. */
static const char script_add[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then return {0, cur, redis.call('PTTL', KEYS[1])} end\n" L2_LUA_NEXT_VERSION
    "local pv = " L2_LUA_PACK "\n" L2_LUA_STORE "return {1, v}\n";

/* KEYS: data, version. ARGV: as SET, then the expected version (8 bytes). Replaces the
 * value only if it still carries that version (or vanished): a background refresh must not
 * overwrite a newer write. {1, version} or {0, value, pttl}. */
static const char script_cas[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur and string.sub(cur, 5, 12) ~= ARGV[8] then\n"
    "  return {0, cur, redis.call('PTTL', KEYS[1])} end\n" L2_LUA_NEXT_VERSION
    "local pv = " L2_LUA_PACK "\n" L2_LUA_STORE
    "redis.call('PUBLISH', ARGV[5], ARGV[6] .. pv .. ARGV[7])\n"
    "return {1, v}\n";
/* KEYS: lock, data. ARGV: token, ttl ms, skip version (8 bytes, or empty). Checking for
 * the value and taking the lock is one atomic step: {2, value, pttl} when the key holds a
 * value (other than the skip version: the stale copy a refresh replaces), so no process
 * loads a value another has just stored; {1, 0}: taken; {0, pttl}: held by another, now
 * marked contended (a trailing '+') so that its holder wakes us when it is done. */
static const char script_lock[] =
    "local v = redis.call('GET', KEYS[2])\n"
    "if v and (ARGV[3] == '' or string.sub(v, 5, 12) ~= ARGV[3]) then\n"
    "  return {2, v, redis.call('PTTL', KEYS[2])} end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur and string.sub(cur, -1) ~= '+' then\n"
    "  redis.call('SET', KEYS[1], cur .. '+', 'KEEPTTL') end\n"
    "return {0, redis.call('PTTL', KEYS[1])}\n";
/* KEYS: lock, data. ARGV: token, channel, msg head, msg tail. Compare-and-delete: only our
 * own lock is released, never a successor's. If others waited, publish a FILL message with
 * the stored value's version (0 if none) to wake them. 1 released, 0 not ours. */
static const char script_unlock[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur ~= ARGV[1] and cur ~= ARGV[1] .. '+' then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "if cur == ARGV[1] then return 1 end\n"
    "local val = redis.call('GET', KEYS[2])\n"
    "local pv = string.rep('\\0', 8)\n"
    "if val then pv = string.sub(val, 5, 12) end\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[3] .. pv .. ARGV[4])\n"
    "return 1\n";

static const char *const script_body[SCRIPT_COUNT] = {script_set, script_del,  script_add,
                                                      script_cas, script_lock, script_unlock};

struct tc__l2 {
    tc__endpoint_t ep;
    char *key_prefix, *channel, *vkey;
    size_t prefix_len, channel_len, vkey_len;
    unsigned char origin[TC__MSG_ORIGIN_LEN];
    uint32_t connect_timeout_ms, command_timeout_ms;
    unsigned threshold;
    uint64_t cooldown_ns;

    pthread_mutex_t mu; /* guards conn[], busy[], nfree, sha writes */
    pthread_cond_t cv;  /* a slot was released */
    unsigned nslots, nfree;
    redisContext **conn;
    unsigned char *busy;

    atomic_int sha_known; /* sha[] is written once, under mu, before this is set */
    char sha[SCRIPT_COUNT][L2_SHA_LEN + 1];

    atomic_int state;
    atomic_uint fails;
    _Atomic uint64_t open_until_ns;
    _Atomic uint64_t errors, timeouts, opens, published;
};

/* One logical call: the command, its replies, and what happened on the wire. */
typedef struct l2_call {
    int kind, script;
    int argc;
    const char *argv[L2_MAX_ARGS];
    size_t lens[L2_MAX_ARGS];
    redisReply *reply, *reply2; /* reply2: PTTL of a GET */
    int io_failed;              /* some attempt hit an I/O error: SIGPIPE may be pending */
    tc_error_t *err;
} l2_call_t;

/* ---- small helpers ---------------------------------------------------------------- */

static void count(_Atomic uint64_t *c) {
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

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

static void free_reply(redisReply **r) {
    if (*r)
        freeReplyObject(*r);
    *r = NULL;
}

/* ---- SIGPIPE guard ------------------------------------------------------------------ */

typedef struct sigpipe_guard {
    sigset_t old;
    int was_pending;
} sigpipe_guard_t;

static void sigpipe_block(sigpipe_guard_t *g) {
    sigset_t s, pending;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, &g->old);
    g->was_pending = 0;
    if (sigismember(&g->old, SIGPIPE) && sigpending(&pending) == 0)
        g->was_pending = sigismember(&pending, SIGPIPE);
}

static void sigpipe_restore(const sigpipe_guard_t *g, int io_failed) {
    sigset_t s, pending;
    if (io_failed && !g->was_pending && sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        sigtimedwait(&s, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

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

/* healthy: 1 Redis answered, 0 transport failure, -1 unknown (no pool slot in time). */
static void breaker_report(tc__l2_t *l2, int probe, int healthy) {
    if (healthy == 1) {
        if (atomic_load_explicit(&l2->fails, memory_order_relaxed) != 0)
            atomic_store_explicit(&l2->fails, 0, memory_order_relaxed);
        if (probe)
            atomic_store_explicit(&l2->state, BRK_CLOSED, memory_order_release);
        return;
    }
    if (probe) {
        breaker_open(l2);
        atomic_store_explicit(&l2->state, BRK_OPEN, memory_order_release);
        count(&l2->opens);
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
        count(&l2->opens);
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

static void deadline_after_ms(struct timespec *ts, uint32_t ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000u;
    ts->tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

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
    struct timespec deadline;
    deadline_after_ms(&deadline, l2->command_timeout_ms);
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
    for (int i = 0; i < SCRIPT_COUNT; i++)
        if (!sha_reply_ok(r[i]))
            return; /* e.g. NOPERM: EVAL will say why on use */
    pthread_mutex_lock(&l2->mu);
    if (!atomic_load_explicit(&l2->sha_known, memory_order_relaxed)) {
        for (int i = 0; i < SCRIPT_COUNT; i++)
            memcpy(l2->sha[i], r[i]->str, L2_SHA_LEN + 1);
        atomic_store_explicit(&l2->sha_known, 1, memory_order_release);
    }
    pthread_mutex_unlock(&l2->mu);
}

/* SCRIPT LOAD all scripts, pipelined. 0, or the transport error code. */
static int load_scripts(tc__l2_t *l2, redisContext *c) {
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", script_body[i]};
        size_t lens[3] = {6, 4, strlen(script_body[i])};
        redisAppendCommandArgv(c, 3, argv, lens);
    }
    redisReply *r[SCRIPT_COUNT] = {NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < SCRIPT_COUNT && rc == 0; i++) {
        errno = 0;
        if (redisGetReply(c, (void **)&r[i]) != REDIS_OK)
            rc = tc__conn_error_code(c, errno);
    }
    if (rc == 0)
        remember_shas(l2, r);
    for (int i = 0; i < SCRIPT_COUNT; i++)
        free_reply(&r[i]);
    return rc;
}

static int open_conn(tc__l2_t *l2, redisContext **out, tc_error_t *err) {
    int rc = tc__conn_open(&l2->ep, l2->connect_timeout_ms, l2->command_timeout_ms, out, err);
    if (rc != 0)
        return rc;
    rc = load_scripts(l2, *out);
    if (rc != 0) {
        tc__fail(err, rc, "redis SCRIPT LOAD: %s", (*out)->errstr);
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
    *out = redisCommandArgv(c, argc, argv, lens);
    return *out ? 0 : tc__conn_error_code(c, errno);
}

static int exec_script(tc__l2_t *l2, redisContext *c, l2_call_t *call) {
    const char *body = script_body[call->script];
    int known = atomic_load_explicit(&l2->sha_known, memory_order_acquire);
    call->argv[0] = known ? "EVALSHA" : "EVAL";
    call->argv[1] = known ? l2->sha[call->script] : body;
    call->lens[0] = known ? 7 : 4;
    call->lens[1] = known ? L2_SHA_LEN : strlen(body);
    int rc = send_and_read(c, call->argc, call->argv, call->lens, &call->reply);
    if (rc != 0 || !is_noscript(call->reply))
        return rc;
    free_reply(&call->reply); /* script cache flushed: send the body instead */
    call->argv[0] = "EVAL";
    call->argv[1] = body;
    call->lens[0] = 4;
    call->lens[1] = strlen(body);
    return send_and_read(c, call->argc, call->argv, call->lens, &call->reply);
}

/* GET and PTTL pipelined: both written, then both read, one round trip. */
static int exec_get(redisContext *c, l2_call_t *call) {
    const char *pttl[2] = {"PTTL", call->argv[1]};
    size_t pttl_lens[2] = {4, call->lens[1]};
    redisAppendCommandArgv(c, 2, call->argv, call->lens);
    redisAppendCommandArgv(c, 2, pttl, pttl_lens);
    errno = 0;
    if (redisGetReply(c, (void **)&call->reply) != REDIS_OK ||
        redisGetReply(c, (void **)&call->reply2) != REDIS_OK) {
        int rc = tc__conn_error_code(c, errno);
        free_reply(&call->reply);
        free_reply(&call->reply2);
        return rc;
    }
    return 0;
}

/* 0 with replies in call, or a transport error code (then c must be dropped). */
static int exec_call(tc__l2_t *l2, redisContext *c, l2_call_t *call) {
    switch (call->kind) {
    case CALL_GET:
        return exec_get(c, call);
    case CALL_SCRIPT:
        return exec_script(l2, c, call);
    default:
        return send_and_read(c, call->argc, call->argv, call->lens, &call->reply);
    }
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
        if (fresh && (rc = open_conn(l2, &c, call->err)) != 0) {
            call->io_failed = 1;
            break;
        }
        if ((rc = exec_call(l2, c, call)) == 0)
            break;
        call->io_failed = 1;
        tc__fail(call->err, rc, "redis: %s", c->errstr);
        redisFree(c);
        c = NULL;
        /* Only an old socket that died (Redis restarted) deserves a second try. */
        if (fresh || rc != TC_EUNAVAILABLE)
            break;
    }
    pool_release(l2, slot, c);
    *healthy = (rc == 0);
    return rc;
}

/* Breaker, SIGPIPE guard and counters around one call. 0 or an error code. */
static int l2_run(tc__l2_t *l2, l2_call_t *call) {
    int probe;
    if (!breaker_admit(l2, &probe))
        return tc__fail(call->err, TC_EUNAVAILABLE, "redis: circuit breaker open");
    sigpipe_guard_t guard;
    sigpipe_block(&guard);
    int healthy;
    int rc = run_on_pool(l2, call, &healthy);
    sigpipe_restore(&guard, call->io_failed);
    breaker_report(l2, probe, healthy);
    if (rc == 0)
        tc__error_clear(call->err); /* a retried dead socket left its message there */
    if (rc == TC_ETIMEDOUT)
        count(&l2->timeouts);
    return rc;
}

/* ---- keys and arguments ------------------------------------------------------------------ */

/* Per-call bytes (data key, message tail): on the stack unless the key is large. */
typedef struct scratch {
    unsigned char *p;
    unsigned char stack[L2_STACK_SCRATCH];
} scratch_t;

static unsigned char *scratch_get(scratch_t *s, size_t n) {
    s->p = n <= sizeof s->stack ? s->stack : malloc(n);
    return s->p;
}

static void scratch_put(scratch_t *s) {
    if (s->p != s->stack)
        free(s->p);
}

static int check_key(const tc__l2_t *l2, const void *key, size_t klen) {
    if (!l2)
        return TC_EINVAL;
    if (klen == 0 || klen > TC_MAX_KEY_LEN)
        return TC_EKEYLEN;
    return key ? 0 : TC_EINVAL;
}

static int check_value(const void *value, size_t vlen) {
    if (!value && vlen > 0)
        return TC_EINVAL;
    return vlen > L2_MAX_VALUE ? TC_ETOOBIG : 0;
}

/* Data key into buf (prefix_len + 2 + klen bytes). Returns its length. */
static size_t build_data_key(const tc__l2_t *l2, const void *key, size_t klen,
                             unsigned char *buf) {
    memcpy(buf, l2->key_prefix, l2->prefix_len);
    memcpy(buf + l2->prefix_len, "k:", 2);
    memcpy(buf + l2->prefix_len + 2, key, klen);
    return l2->prefix_len + 2 + klen;
}

static void push(l2_call_t *call, const void *p, size_t n) {
    call->argv[call->argc] = p;
    call->lens[call->argc++] = n;
}

/* argv[0..1] are filled by exec_script (EVALSHA sha / EVAL body). */
static void start_script(l2_call_t *call, const tc__l2_t *l2, int script,
                         const unsigned char *dkey, size_t dlen) {
    memset(call, 0, sizeof *call);
    call->kind = CALL_SCRIPT;
    call->script = script;
    call->argc = 2;
    push(call, "2", 1);
    push(call, dkey, dlen);
    push(call, l2->vkey, l2->vkey_len);
}

/* Reply of SET/DEL: the new version. */
static int version_reply(tc__l2_t *l2, const redisReply *r, uint64_t *version) {
    if (r->type == REDIS_REPLY_ERROR)
        return TC_EREDIS;
    if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0)
        return TC_EPROTO;
    if (version)
        *version = (uint64_t)r->integer;
    count(&l2->published);
    return 0;
}

static int finish(tc__l2_t *l2, int rc) {
    if (rc < 0 && rc != TC_ENOTFOUND)
        count(&l2->errors);
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
    l2->nslots = l2->nfree = opts->pool_size;
    l2->conn = calloc(opts->pool_size, sizeof *l2->conn);
    l2->busy = calloc(opts->pool_size, 1);
    if (!l2->conn || !l2->busy || init_strings(l2, opts) != 0) {
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

/* ---- operations
 * ------------------------------------------------------------------------------ */

int tc__l2_ping(tc__l2_t *l2, tc_error_t *err) {
    if (!l2)
        return tc__fail(err, TC_EINVAL, "l2 is NULL");
    l2_call_t call = {.kind = CALL_PING, .err = err};
    push(&call, "PING", 4);
    int rc = l2_run(l2, &call);
    if (rc == 0) {
        const redisReply *r = call.reply;
        if (r->type == REDIS_REPLY_ERROR)
            rc = tc__fail(err, TC_EREDIS, "redis PING: %.*s", (int)r->len, r->str);
        else if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
            rc = tc__fail(err, TC_EPROTO, "redis PING: unexpected reply");
    }
    free_reply(&call.reply);
    return finish(l2, rc);
}

void tc__l2_value_release(tc__l2_value_t *v) {
    if (!v)
        return;
    if (v->reply_)
        freeReplyObject(v->reply_);
    memset(v, 0, sizeof *v);
}

/* Decode a stored string that lives inside owner (a reply) into out. */
static int fill_value(redisReply *owner, const redisReply *str, const redisReply *pttl,
                      tc__l2_value_t *out) {
    if (str->type == REDIS_REPLY_ERROR)
        return TC_EREDIS;
    if (str->type != REDIS_REPLY_STRING || tc__val_decode(str->str, str->len, &out->val) != 0)
        return TC_EPROTO;
    out->pttl_ms = pttl && pttl->type == REDIS_REPLY_INTEGER ? pttl->integer : -2;
    out->reply_ = owner;
    return 0;
}

static int get_result(l2_call_t *call, tc__l2_value_t *out) {
    if (call->reply->type == REDIS_REPLY_NIL)
        return TC_ENOTFOUND;
    int rc = fill_value(call->reply, call->reply, call->reply2, out);
    if (rc == 0)
        call->reply = NULL; /* now owned by out */
    return rc;
}

int tc__l2_get(tc__l2_t *l2, const void *key, size_t klen, tc__l2_value_t *out) {
    if (out)
        memset(out, 0, sizeof *out);
    int rc = check_key(l2, key, klen);
    if (rc != 0 || !out)
        return rc ? rc : TC_EINVAL;
    scratch_t s;
    unsigned char *dkey = scratch_get(&s, l2->prefix_len + 2 + klen);
    if (!dkey)
        return finish(l2, TC_ENOMEM);
    l2_call_t call = {.kind = CALL_GET};
    push(&call, "GET", 3);
    push(&call, dkey, build_data_key(l2, key, klen, dkey));
    rc = l2_run(l2, &call);
    if (rc == 0)
        rc = get_result(&call, out);
    free_reply(&call.reply);
    free_reply(&call.reply2);
    scratch_put(&s);
    return finish(l2, rc);
}

/* Scratch layout for writes: data key, then the message tail (origin .. key). */
static unsigned char *write_scratch(tc__l2_t *l2, scratch_t *s, const void *key, size_t klen,
                                    size_t *dlen, unsigned char **tail, size_t *tlen) {
    unsigned char *buf = scratch_get(s, l2->prefix_len + 2 + klen + TC__MSG_ORIGIN_LEN + klen);
    if (!buf)
        return NULL;
    *dlen = build_data_key(l2, key, klen, buf);
    *tail = buf + *dlen;
    *tlen = tc__msg_tail(l2->origin, key, klen, *tail);
    return buf;
}

/* ARGV[1..4] of SET and ADD: value head, expiry, payload, ttl. */
static void push_value(l2_call_t *call, unsigned char *head, unsigned char *expiry, char *ttl,
                       size_t ttl_cap, const void *value, size_t vlen, uint64_t ttl_ms,
                       const tc__l2_meta_t *meta) {
    tc__val_head(meta ? meta->flags : 0, head);
    head[3] = (unsigned char)(meta ? tc__val_load_class(meta->load_ms) : 0);
    tc__val_expiry(meta ? meta->logical_expiry_ms : 0, expiry);
    int n = snprintf(ttl, ttl_cap, "%llu", (unsigned long long)ttl_ms);
    push(call, head, TC__VAL_HEAD_LEN);
    push(call, expiry, TC__VAL_EXPIRY_LEN);
    push(call, vlen ? value : "", vlen);
    push(call, ttl, (size_t)n);
}

int tc__l2_set(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
               uint64_t ttl_ms, uint64_t *version) {
    return tc__l2_set_meta(l2, key, klen, value, vlen, ttl_ms, NULL, version);
}

/* SET and CAS take the same arguments (CAS adds the expected version): build them and run
 * the script. call->reply is the caller's to read and free. */
static int run_write(tc__l2_t *l2, int script, const void *key, size_t klen, const void *value,
                     size_t vlen, uint64_t ttl_ms, const tc__l2_meta_t *meta,
                     const uint64_t *expected_version, l2_call_t *call) {
    scratch_t s;
    size_t dlen, tlen;
    unsigned char *tail, head[TC__VAL_HEAD_LEN], expiry[TC__VAL_EXPIRY_LEN];
    unsigned char mhead[TC__MSG_HEAD_LEN], expected[8];
    char ttl[24];
    unsigned char *dkey = write_scratch(l2, &s, key, klen, &dlen, &tail, &tlen);
    if (!dkey)
        return TC_ENOMEM;
    start_script(call, l2, script, dkey, dlen);
    push_value(call, head, expiry, ttl, sizeof ttl, value, vlen, ttl_ms, meta);
    tc__msg_head(TC__MSG_OP_WRITE, mhead);
    push(call, l2->channel, l2->channel_len);
    push(call, mhead, sizeof mhead);
    push(call, tail, tlen);
    if (expected_version) {
        tc__put_be64(expected, *expected_version);
        push(call, expected, sizeof expected);
    }
    int rc = l2_run(l2, call);
    scratch_put(&s);
    return rc;
}

int tc__l2_set_meta(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
                    uint64_t ttl_ms, const tc__l2_meta_t *meta, uint64_t *version) {
    int rc = check_key(l2, key, klen);
    if (rc == 0)
        rc = check_value(value, vlen);
    if (rc != 0)
        return rc;
    l2_call_t call = {.reply = NULL};
    rc = run_write(l2, SCRIPT_SET, key, klen, value, vlen, ttl_ms, meta, NULL, &call);
    if (rc == 0)
        rc = version_reply(l2, call.reply, version);
    free_reply(&call.reply);
    return finish(l2, rc);
}

int tc__l2_del(tc__l2_t *l2, const void *key, size_t klen, uint64_t *version) {
    int rc = check_key(l2, key, klen);
    if (rc != 0)
        return rc;
    scratch_t s;
    size_t dlen, tlen;
    unsigned char *tail, mhead[TC__MSG_HEAD_LEN];
    unsigned char *dkey = write_scratch(l2, &s, key, klen, &dlen, &tail, &tlen);
    if (!dkey)
        return finish(l2, TC_ENOMEM);
    l2_call_t call;
    start_script(&call, l2, SCRIPT_DEL, dkey, dlen);
    tc__msg_head(TC__MSG_OP_DELETE, mhead);
    push(&call, l2->channel, l2->channel_len);
    push(&call, mhead, sizeof mhead);
    push(&call, tail, tlen);
    rc = l2_run(l2, &call);
    if (rc == 0)
        rc = version_reply(l2, call.reply, version);
    free_reply(&call.reply);
    scratch_put(&s);
    return finish(l2, rc);
}

/* ADD, CAS and LOCK reply with an array led by an integer tag. 0, or the error. */
static int check_tagged(const redisReply *r) {
    if (r->type == REDIS_REPLY_ERROR)
        return TC_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return TC_EPROTO;
    return 0;
}

/* {tag, value, pttl}: the value moves into *existing, which takes the reply. */
static int take_existing(l2_call_t *call, tc__l2_value_t *existing) {
    redisReply *r = call->reply;
    const redisReply *pttl = r->elements > 2 ? r->element[2] : NULL;
    int rc = fill_value(r, r->element[1], pttl, existing);
    if (rc == 0)
        call->reply = NULL;
    return rc;
}

/* {1, version}: stored. {0, value, pttl}: existed (existing takes the reply). */
static int add_result(l2_call_t *call, uint64_t *version, tc__l2_value_t *existing) {
    redisReply *r = call->reply;
    int rc = check_tagged(r);
    if (rc != 0)
        return rc;
    if (r->element[0]->integer == 1) {
        if (r->element[1]->type != REDIS_REPLY_INTEGER)
            return TC_EPROTO;
        if (version)
            *version = (uint64_t)r->element[1]->integer;
        return 0;
    }
    if (!existing)
        return 1;
    rc = take_existing(call, existing);
    return rc == 0 ? 1 : rc;
}

int tc__l2_add(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
               uint64_t ttl_ms, uint64_t *version, tc__l2_value_t *existing) {
    return tc__l2_add_meta(l2, key, klen, value, vlen, ttl_ms, NULL, version, existing);
}

int tc__l2_add_meta(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
                    uint64_t ttl_ms, const tc__l2_meta_t *meta, uint64_t *version,
                    tc__l2_value_t *existing) {
    if (existing)
        memset(existing, 0, sizeof *existing);
    int rc = check_key(l2, key, klen);
    if (rc == 0)
        rc = check_value(value, vlen);
    if (rc != 0)
        return rc;
    scratch_t s;
    unsigned char head[TC__VAL_HEAD_LEN], expiry[TC__VAL_EXPIRY_LEN];
    char ttl[24];
    unsigned char *dkey = scratch_get(&s, l2->prefix_len + 2 + klen);
    if (!dkey)
        return finish(l2, TC_ENOMEM);
    l2_call_t call;
    start_script(&call, l2, SCRIPT_ADD, dkey, build_data_key(l2, key, klen, dkey));
    push_value(&call, head, expiry, ttl, sizeof ttl, value, vlen, ttl_ms, meta);
    rc = l2_run(l2, &call);
    if (rc == 0)
        rc = add_result(&call, version, existing);
    free_reply(&call.reply);
    scratch_put(&s);
    return finish(l2, rc);
}

int tc__l2_replace(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
                   uint64_t ttl_ms, const tc__l2_meta_t *meta, uint64_t expected_version,
                   uint64_t *version, tc__l2_value_t *existing) {
    if (existing)
        memset(existing, 0, sizeof *existing);
    int rc = check_key(l2, key, klen);
    if (rc == 0)
        rc = check_value(value, vlen);
    if (rc != 0)
        return rc;
    l2_call_t call = {.reply = NULL};
    rc = run_write(l2, SCRIPT_CAS, key, klen, value, vlen, ttl_ms, meta, &expected_version,
                   &call);
    if (rc == 0)
        rc = add_result(&call, version, existing);
    if (rc == 0)
        count(&l2->published);
    free_reply(&call.reply);
    return finish(l2, rc);
}

/* Lock key <prefix>"l:"<key> into buf (prefix_len + 2 + klen bytes). */
static size_t build_lock_key(const tc__l2_t *l2, const void *key, size_t klen,
                             unsigned char *buf) {
    size_t n = build_data_key(l2, key, klen, buf);
    buf[l2->prefix_len] = 'l';
    return n;
}

/* {2, value, pttl} -> 2 with *existing; {1, 0} -> 0; {0, pttl} -> 1 with *pttl. */
static int lock_result(l2_call_t *call, int64_t *pttl, tc__l2_value_t *existing) {
    redisReply *r = call->reply;
    int rc = check_tagged(r);
    if (rc != 0)
        return rc;
    if (r->element[0]->integer == 2) {
        rc = take_existing(call, existing);
        return rc == 0 ? 2 : rc;
    }
    if (r->element[1]->type != REDIS_REPLY_INTEGER)
        return TC_EPROTO;
    *pttl = r->element[1]->integer;
    return r->element[0]->integer == 1 ? 0 : 1;
}

int tc__l2_lock(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen,
                uint32_t ttl_ms, const uint64_t *skip_version, int64_t *pttl,
                tc__l2_value_t *existing) {
    if (existing)
        memset(existing, 0, sizeof *existing);
    int rc = check_key(l2, key, klen);
    if (rc != 0 || !token || !pttl || !existing)
        return rc ? rc : TC_EINVAL;
    scratch_t s;
    size_t klen2 = l2->prefix_len + 2 + klen;
    unsigned char *keys = scratch_get(&s, 2 * klen2);
    if (!keys)
        return finish(l2, TC_ENOMEM);
    char ttl[16];
    int n = snprintf(ttl, sizeof ttl, "%u", (unsigned)ttl_ms);
    unsigned char skip[8];
    if (skip_version)
        tc__put_be64(skip, *skip_version);
    l2_call_t call;
    memset(&call, 0, sizeof call);
    call.kind = CALL_SCRIPT;
    call.script = SCRIPT_LOCK;
    call.argc = 2;
    push(&call, "2", 1);
    push(&call, keys, build_lock_key(l2, key, klen, keys));
    push(&call, keys + klen2, build_data_key(l2, key, klen, keys + klen2));
    push(&call, token, tlen);
    push(&call, ttl, (size_t)n);
    push(&call, skip, skip_version ? sizeof skip : 0);
    rc = l2_run(l2, &call);
    if (rc == 0)
        rc = lock_result(&call, pttl, existing);
    free_reply(&call.reply);
    scratch_put(&s);
    return finish(l2, rc);
}

int tc__l2_unlock(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen) {
    int rc = check_key(l2, key, klen);
    if (rc != 0 || !token)
        return rc ? rc : TC_EINVAL;
    scratch_t s;
    size_t dlen, tlen_msg;
    unsigned char *tail, mhead[TC__MSG_HEAD_LEN];
    unsigned char *dkey = write_scratch(l2, &s, key, klen, &dlen, &tail, &tlen_msg);
    unsigned char *lkey = dkey ? malloc(dlen) : NULL;
    if (!lkey) {
        if (dkey)
            scratch_put(&s);
        return finish(l2, TC_ENOMEM);
    }
    build_lock_key(l2, key, klen, lkey);
    l2_call_t call;
    memset(&call, 0, sizeof call);
    call.kind = CALL_SCRIPT;
    call.script = SCRIPT_UNLOCK;
    call.argc = 2;
    push(&call, "2", 1);
    push(&call, lkey, dlen);
    push(&call, dkey, dlen);
    push(&call, token, tlen);
    push(&call, l2->channel, l2->channel_len);
    tc__msg_head(TC__MSG_OP_FILL, mhead);
    push(&call, mhead, sizeof mhead);
    push(&call, tail, tlen_msg);
    rc = l2_run(l2, &call);
    if (rc == 0 && call.reply->type == REDIS_REPLY_ERROR)
        rc = TC_EREDIS;
    free_reply(&call.reply);
    free(lkey);
    scratch_put(&s);
    return finish(l2, rc);
}

void tc__l2_counters(tc__l2_t *l2, tc__l2_counters_t *out) {
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!l2)
        return;
    out->errors = atomic_load_explicit(&l2->errors, memory_order_relaxed);
    out->timeouts = atomic_load_explicit(&l2->timeouts, memory_order_relaxed);
    out->opens = atomic_load_explicit(&l2->opens, memory_order_relaxed);
    out->published = atomic_load_explicit(&l2->published, memory_order_relaxed);
    out->breaker_state = atomic_load_explicit(&l2->state, memory_order_relaxed);
}
