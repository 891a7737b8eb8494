/*
 * l2.c - the Redis tier's machinery: running a call (or a pipeline of calls) in one round
 * trip on a connection of the Redis node that serves it (node.c: pool and breaker; on a
 * Redis Cluster the master of the call's slot, through the router of cluster.c, with a
 * pipeline split into one round trip per master), and
 * what every connection needs first (the scripts loaded, client tracking armed). What the
 * calls are lives in l2_ops.c (one key), l2_many.c (many keys, patterns) and l2_queue.c
 * (write strategies).
 *
 * Scripts. Every write is a Lua script (scripts.c) that takes the next version from
 * <prefix>"v" (never below Redis's clock in microseconds, healed when corrupt), stores the
 * value with that version in its header (valfmt.h), voids the key's lease and PUBLISHes
 * the invalidation (msg.h) carrying the same version: the write and its invalidation are
 * one atomic step with one version. Scripts are SCRIPT LOADed on every new connection (the
 * node's set-up hook) and called by EVALSHA; a NOSCRIPT reply (the script cache was flushed)
 * falls back to EVAL, for each call of a pipeline that got one.
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
#include "node.h"
#include "scripts.h"
#include "slot.h"

#include <assert.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- connections and scripts ---------------------------------------------------------- */

static int sha_reply_ok(const redisReply *r) {
    return r && r->type == REDIS_REPLY_STRING && r->len == L2_SHA_LEN;
}

static void remember_shas(tc__l2_t *l2, redisReply *const *r) {
    for (int i = 0; i < TC__SCRIPT_COUNT; i++)
        if (!sha_reply_ok(r[i]))
            return; /* e.g. NOPERM: EVAL will say why on use */
    pthread_mutex_lock(&l2->sha_mu);
    if (!atomic_load_explicit(&l2->sha_known, memory_order_relaxed)) {
        for (int i = 0; i < TC__SCRIPT_COUNT; i++)
            memcpy(l2->sha[i], r[i]->str, L2_SHA_LEN + 1);
        atomic_store_explicit(&l2->sha_known, 1, memory_order_release);
    }
    pthread_mutex_unlock(&l2->sha_mu);
}

/* A refusal on a new connection (SCRIPT LOAD answered NOAUTH or NOPERM): the connection
 * cannot run our scripts, and the reply says why. 0 when every script loaded. */
static int scripts_refused(redisReply *const *r, tc_error_t *err) {
    for (int i = 0; i < TC__SCRIPT_COUNT; i++)
        if (r[i] && r[i]->type == REDIS_REPLY_ERROR &&
            tc__conn_is_permission_text(r[i]->str, r[i]->len))
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

/* A new pooled connection (node.c's set-up hook): load the scripts. */
static int setup_conn(void *arg, redisContext *c, tc_error_t *err) {
    tc__l2_t *l2 = arg;
    if (l2->plain) /* plain keys run no script on the data path (tc_invalidate uses EVAL) */
        return 0;
    int rc = load_scripts(l2, c, err);
    if (rc != 0 && rc != TC_EREDIS)
        tc__fail(err, rc, "redis SCRIPT LOAD: %s", c->errstr);
    return rc;
}

static int is_noscript(const redisReply *r) {
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

static int send_and_read(redisContext *c, int argc, const char **argv, const size_t *lens,
                         redisReply **out) {
    errno = 0;
    *out = tc__conn_command_argv(c, argc, argv, lens);
    return *out ? 0 : tc__conn_error_code(c, errno);
}

/* One command of a call into c's buffer: after an ASKING when the call was redirected by
 * ASK (a cluster's slot mid-migration: the target serves the key only to a client that
 * asks, one command at a time). take() reads its reply, past the ASKING's. */
static void put(redisContext *c, const l2_call_t *call, int argc, const char **argv,
                const size_t *lens) {
    if (call->asking)
        redisAppendCommand(c, "ASKING");
    redisAppendCommandArgv(c, argc, argv, lens);
}

/* The parts a CALL_PIPE runs: all, or the picked ones (a cluster node's share). */
static size_t pipe_len(const l2_call_t *call) {
    return call->pick ? call->npick : call->nparts;
}

static l2_call_t *pipe_part(const l2_call_t *call, size_t i) {
    return &call->parts[call->pick ? call->pick[i] : i];
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
        put(c, call, call->argc, call->argv, call->lens);
        return;
    }
    case CALL_GET: { /* GETRANGE, PTTL or TIME or neither, and the marks' MGET */
        const char *pttl[2] = {"PTTL", call->argv[1]};
        size_t pttl_lens[2] = {4, call->lens[1]};
        put(c, call, call->argc, call->argv, call->lens);
        if (!call->no_pttl)
            put(c, call, 2, pttl, pttl_lens);
        if (call->with_time) {
            call->clock_gen = tc__l2_clock_gen(&l2->clock);
            call->sent_ns = tc__now_ns();
            redisAppendCommand(c, "TIME"); /* no key: never redirected */
        }
        if (call->argc2)
            put(c, call, call->argc2, call->argv2, call->lens2);
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
        for (size_t i = 0; i < pipe_len(call); i++)
            append_call(l2, c, pipe_part(call, i));
        return;
    case CALL_GETS:
        for (size_t i = 0; i < call->gets->n; i++) {
            const char *get[4] = {"GETRANGE", (const char *)call->gets->keys[i], "0",
                                  l2->get_end};
            size_t get_lens[4] = {8, call->gets->lens[i], 1, l2->get_end_len};
            const char *pttl[2] = {"PTTL", get[1]};
            size_t pttl_lens[2] = {4, get_lens[1]};
            redisAppendCommandArgv(c, 4, get, get_lens);
            if (!call->gets->no_pttl)
                redisAppendCommandArgv(c, 2, pttl, pttl_lens);
        }
        if (call->gets->with_time) {
            call->gets->clock_gen = tc__l2_clock_gen(&l2->clock);
            call->gets->sent_ns = tc__now_ns();
            redisAppendCommand(c, "TIME");
        }
        return;
    default:
        put(c, call, call->argc, call->argv, call->lens);
    }
}

static int read_one(redisContext *c, redisReply **out) {
    errno = 0;
    return tc__conn_get_reply(c, (void **)out) == REDIS_OK ? 0 : tc__conn_error_code(c, errno);
}

/* read_one for a command that put() wrote: its ASKING's reply first, when there is one. */
static int take(redisContext *c, const l2_call_t *call, redisReply **out) {
    if (call->asking) {
        int rc = read_one(c, out);
        if (rc != 0)
            return rc;
        if ((*out)->type == REDIS_REPLY_ERROR) { /* ASKING refused (an ACL): that is the */
            redisReply *cmd = NULL;              /* answer, not the redirection that follows */
            rc = read_one(c, &cmd);
            tc__l2i_free_reply(&cmd);
            if (rc != 0)
                tc__l2i_free_reply(out);
            return rc;
        }
        tc__l2i_free_reply(out); /* +OK */
    }
    return read_one(c, out);
}

static void free_replies(l2_call_t *call) {
    tc__l2i_free_reply(&call->reply);
    tc__l2i_free_reply(&call->reply2);
    tc__l2i_free_reply(&call->reply3);
    tc__l2i_free_reply(&call->treply);
    for (size_t i = 0; call->kind == CALL_PIPE && i < pipe_len(call); i++)
        free_replies(pipe_part(call, i));
    for (size_t i = 0; call->kind == CALL_GETS && i < tc__l2i_gets_replies(call->gets); i++)
        tc__l2i_free_reply(&call->gets->replies[i]);
}

/* Read the replies of what append_call wrote, in the same order. 0, or the transport
 * error (then c must be dropped). */
static int read_call(redisContext *c, l2_call_t *call) {
    int rc = 0;
    switch (call->kind) {
    case CALL_GET:
        rc = take(c, call, &call->reply);
        if (rc == 0 && !call->no_pttl)
            rc = take(c, call, &call->reply2);
        if (rc == 0 && call->with_time)
            rc = read_one(c, &call->treply);
        if (rc == 0 && call->argc2)
            rc = take(c, call, &call->reply3);
        break;
    case CALL_PLAIN_ADD:
        rc = read_one(c, &call->reply3);
        if (rc == 0)
            rc = read_one(c, &call->reply);
        if (rc == 0)
            rc = read_one(c, &call->reply2);
        break;
    case CALL_PIPE:
        for (size_t i = 0; i < pipe_len(call) && rc == 0; i++)
            rc = read_call(c, pipe_part(call, i));
        break;
    case CALL_GETS:
        for (size_t i = 0; i < tc__l2i_gets_replies(call->gets) && rc == 0; i++)
            rc = read_one(c, &call->gets->replies[i]);
        break;
    default:
        rc = take(c, call, &call->reply);
    }
    return rc;
}

/* The script cache was flushed (SCRIPT FLUSH, a restarted Redis): send the body instead,
 * for every script call whose EVALSHA was refused. */
static int retry_noscript(redisContext *c, l2_call_t *call) {
    if (call->kind == CALL_PIPE) {
        for (size_t i = 0; i < pipe_len(call); i++) {
            int rc = retry_noscript(c, pipe_part(call, i));
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
    put(c, call, call->argc, call->argv, call->lens);
    return take(c, call, &call->reply);
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

/* One call's work on a pooled connection (node.c runs it): tracking armed, then the round
 * trip, with a longer timeout for a big value. */
typedef struct run_ctx {
    tc__l2_t *l2;
    l2_call_t *call;
} run_ctx_t;

/* Did any reply say READONLY? The connection reaches a replica: a failover demoted the
 * master it was opened to (and Sentinel's announcement was missed, or is yet to come). */
static int reached_replica(const l2_call_t *call) {
    const redisReply *r[3] = {call->reply, call->reply2, call->reply3};
    for (int i = 0; i < 3; i++)
        if (r[i] && r[i]->type == REDIS_REPLY_ERROR && r[i]->len >= 8 &&
            memmem(r[i]->str, r[i]->len < 64 ? r[i]->len : 64, "READONLY", 8))
            return 1;
    for (size_t i = 0; call->kind == CALL_PIPE && i < pipe_len(call); i++)
        if (reached_replica(pipe_part(call, i)))
            return 1;
    return 0;
}

static int run_work(void *arg, int slot, int fresh, redisContext *c) {
    run_ctx_t *x = arg;
    tc__l2_t *l2 = x->l2;
    l2_call_t *call = x->call;
    if (fresh && !l2->cluster) /* a cluster has no tracking; its nodes share slot numbers */
        l2->armed[slot] = 0;
    int rc = arm_tracking(l2, slot, c, call);
    if (rc != 0)
        return rc;
    uint32_t timeout_ms = l2->command_timeout_ms;
    if (call->extra_timeout_ms)
        set_timeout(c, timeout_ms + call->extra_timeout_ms);
    rc = exec_call(l2, c, call);
    if (call->extra_timeout_ms && rc == 0)
        set_timeout(c, timeout_ms);
    if (rc == 0 && reached_replica(call)) { /* nothing ran: drop it, a new one finds the
                                               master (redis+sentinel:// resolves anew) */
        free_replies(call);
        return tc__fail(call->err, TC_EUNAVAILABLE,
                        "redis answered READONLY: the connection reaches a replica (a "
                        "failover demoted its master); reconnecting");
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
    if (!tc__conn_is_permission_text(r->str, r->len))
        return;
    tc__count(&l2->permission_errors);
    tc__log(l2->log, TC__EV_PERMISSION, TC_LOG_ERROR, NULL, 0,
            "%s (grant it in the ACL: see docs/operations.md \"Redis ACL\")", call->err->msg);
}

/* ---- a cluster's calls ----
 * A call goes to the master of its first key's slot; every key of one call shares that
 * slot (tc__l2i_build_key). A pipeline is split by node: each node's share is one round
 * trip, and a part that a redirection or TRYAGAIN turned away (nothing ran) is sent again
 * alone, through the router, which follows it. */

/* The slot of a call's first key (a call without a key: slot 0's master answers it). */
static unsigned call_slot(const l2_call_t *call) {
    int at = call->kind == CALL_SCRIPT ? 3 : 1; /* EVALSHA sha numkeys key... */
    if (call->kind == CALL_SCRIPT && (call->argc < 4 || call->argv[2][0] == '0'))
        return 0;
    if (call->kind == CALL_PING || call->argc <= at)
        return 0;
    return tc__slot_of(call->argv[at], call->lens[at]);
}

/* What a call's replies say: the first redirection or retry among them (a call's commands
 * share one slot: one turned away means all were). */
static tc__cluster_verdict_t call_verdict(const l2_call_t *call, tc__redirect_t *d) {
    const redisReply *r[3] = {call->reply, call->reply2, call->reply3};
    for (int i = 0; i < 3; i++) {
        tc__cluster_verdict_t v = tc__cluster_verdict_of(r[i], d);
        if (v != TC__CLUSTER_ANSWERED)
            return v;
    }
    return TC__CLUSTER_ANSWERED;
}

typedef struct cluster_ctx {
    tc__cluster_call_t cc;
    tc__l2_t *l2;
    l2_call_t *call;
} cluster_ctx_t;

static int cluster_work(tc__cluster_call_t *cc, int conn, int fresh, redisContext *c) {
    cluster_ctx_t *x = (cluster_ctx_t *)cc;
    x->call->asking = cc->asking;
    run_ctx_t r = {x->l2, x->call};
    return run_work(&r, conn, fresh, c);
}

static tc__cluster_verdict_t judge_call(tc__cluster_call_t *cc, tc__redirect_t *d) {
    cluster_ctx_t *x = (cluster_ctx_t *)cc;
    tc__cluster_verdict_t v = call_verdict(x->call, d);
    if (v != TC__CLUSTER_ANSWERED)
        free_replies(x->call);
    return v;
}

static tc__cluster_verdict_t judge_share(tc__cluster_call_t *cc, tc__redirect_t *d) {
    (void)cc; /* each part is judged by cluster_pipe */
    (void)d;
    return TC__CLUSTER_ANSWERED;
}

static int cluster_one(tc__l2_t *l2, l2_call_t *call) {
    cluster_ctx_t x = {{cluster_work, judge_call, NULL, 0, 0, 0}, l2, call};
    x.cc.replica_ok = l2->replica_keep_ms && call->kind == CALL_GET; /* reads only */
    int rc = tc__cluster_run(l2->cluster, call_slot(call), &x.cc, call->err);
    call->from_replica = rc == 0 && x.cc.on_replica;
    return rc;
}

/* A pipeline on a cluster: one round trip per node, then each part turned away alone. A
 * failure fails the whole pipeline, as on one server (every reply freed). */
static int cluster_pipe(tc__l2_t *l2, l2_call_t *call) {
    size_t n = call->nparts;
    uint32_t *idx = malloc((n ? n : 1) * sizeof *idx);
    const void **owner = malloc((n ? n : 1) * sizeof *owner);
    unsigned char *done = calloc(n ? n : 1, 1);
    int rc = idx && owner && done ? 0 : tc__fail(call->err, TC_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == 0; i++) {
        call->parts[i].err = call->err;
        owner[i] = tc__cluster_owner(l2->cluster, call_slot(&call->parts[i]));
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (done[i])
            continue;
        size_t m = 0;
        for (size_t j = i; j < n; j++)
            if (!done[j] && owner[j] == owner[i]) {
                idx[m++] = (uint32_t)j;
                done[j] = 1;
            }
        l2_call_t share = {
            .kind = CALL_PIPE, .parts = call->parts, .nparts = n, .pick = idx, .npick = m};
        share.err = call->err;
        uint64_t extra = 0; /* big values: the share's socket timeout grows as on one server */
        for (size_t j = 0; j < m; j++)
            extra += call->parts[idx[j]].extra_timeout_ms;
        share.extra_timeout_ms = extra > UINT32_MAX ? UINT32_MAX : (uint32_t)extra;
        cluster_ctx_t x = {{cluster_work, judge_share, NULL, 0, 0, 0}, l2, &share};
        rc = tc__cluster_run(l2->cluster, call_slot(&call->parts[i]), &x.cc, call->err);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        tc__redirect_t d;
        if (call_verdict(&call->parts[i], &d) == TC__CLUSTER_ANSWERED)
            continue;
        free_replies(&call->parts[i]);
        rc = cluster_one(l2, &call->parts[i]);
    }
    if (rc != 0)
        for (size_t i = 0; i < n; i++)
            free_replies(&call->parts[i]);
    free(idx);
    free(owner);
    free(done);
    return rc;
}

static int after_run(tc__l2_t *l2, l2_call_t *call, int rc);

/* One call through the node (breaker, pool), or the cluster's router; refusals described.
 * 0 or an error code. */
int tc__l2i_run(tc__l2_t *l2, l2_call_t *call) {
    if (!call->err)
        call->err = &call->local_err;
    run_ctx_t x = {l2, call};
    int rc = !l2->cluster              ? tc__node_run(l2->node, run_work, &x, call->err)
             : call->kind == CALL_PIPE ? cluster_pipe(l2, call)
                                       : cluster_one(l2, call);
    return after_run(l2, call, rc);
}

int tc__l2i_run_at(tc__l2_t *l2, const void *master, l2_call_t *call) {
    if (!call->err)
        call->err = &call->local_err;
    cluster_ctx_t x = {{cluster_work, judge_share, NULL, 0, 0, 0}, l2, call};
    return after_run(l2, call, tc__cluster_run_at(l2->cluster, master, &x.cc, call->err));
}

static int after_run(tc__l2_t *l2, l2_call_t *call, int rc) {
    if (rc == 0) {
        tc__error_clear(call->err); /* a retried dead socket left its message there */
        describe_refusal(l2, call, call->reply);
        describe_refusal(l2, call, call->reply2);
        describe_refusal(l2, call, call->reply3);
    }
    return rc;
}

/* ---- open / close -------------------------------------------------------------------------
 */

static void l2_free(tc__l2_t *l2) {
    tc__node_close(l2->node);
    tc__cluster_close(l2->cluster);
    pthread_mutex_destroy(&l2->sha_mu);
    tc__l2_clock_destroy(&l2->clock);
    free(l2->key_prefix);
    free(l2->channel);
    free(l2->vkey);
    free(l2->logkey);
    free(l2->clearkey);
    free(l2->armed);
    free(l2);
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
    return 0;
}

/* redis+cluster://: the router, with a node per server set up like the one node. A map
 * that cannot be read at open is read again at the first call (the cache runs degraded
 * meanwhile, as with a standalone Redis down). A call retries through a failover for at
 * most one connect and one command timeout, the bound of a call on one server. */
static int open_cluster(tc__l2_t *l2, const tc__l2_opts_t *o, tc_error_t *err) {
    tc__cluster_opts_t co = {.seeds = o->endpoint->cluster_seeds,
                             .user = o->endpoint->user,
                             .password = o->endpoint->password,
                             .connect_timeout_ms = o->connect_timeout_ms,
                             .command_timeout_ms = o->command_timeout_ms,
                             .pool_size = o->pool_size,
                             .breaker_threshold = o->breaker_threshold,
                             .breaker_cooldown_ms = o->breaker_cooldown_ms,
                             .call_budget_ms = o->connect_timeout_ms + o->command_timeout_ms,
                             .log = o->log,
                             .setup = setup_conn,
                             .setup_arg = l2,
                             .on_heal = o->on_heal,
                             .heal_arg = o->heal_arg,
                             .on_masters_changed = o->on_masters_changed,
                             .masters_arg = o->masters_arg,
                             .watch_ms = o->cluster_watch_ms,
                             .lenient = 1,
                             .read_replicas = o->endpoint->cluster_replica_reads};
    l2->key_extra = TC__SLOT_NAME_MAX + 2;
    l2->replica_keep_ms =
        o->endpoint->cluster_replica_reads ? o->endpoint->cluster_replica_keep_ms : 0;
    return tc__cluster_open(&co, &l2->cluster, err);
}

static int open_node(tc__l2_t *l2, const tc__l2_opts_t *o, tc_error_t *err) {
    if (o->endpoint->cluster_seeds)
        return open_cluster(l2, o, err);
    tc__node_opts_t no = {.endpoint = o->endpoint,
                          .connect_timeout_ms = o->connect_timeout_ms,
                          .command_timeout_ms = o->command_timeout_ms,
                          .pool_size = o->pool_size,
                          .breaker_threshold = o->breaker_threshold,
                          .breaker_cooldown_ms = o->breaker_cooldown_ms,
                          .log = o->log,
                          .on_heal = o->on_heal,
                          .heal_arg = o->heal_arg,
                          .setup = setup_conn,
                          .setup_arg = l2};
    return tc__node_open(&no, &l2->node, err);
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
    if (pthread_mutex_init(&l2->sha_mu, NULL) != 0) {
        free(l2);
        return tc__fail(err, TC_ENOMEM, "l2: cannot create a lock");
    }
    if (tc__l2_clock_init(&l2->clock, !opts->plain && opts->header_ttl, opts->log) != 0) {
        pthread_mutex_destroy(&l2->sha_mu);
        free(l2);
        return tc__fail(err, TC_ENOMEM, "l2: cannot create a lock");
    }
    size_t max_value = opts->max_value_bytes && opts->max_value_bytes < L2_MAX_VALUE
                           ? opts->max_value_bytes
                           : L2_MAX_VALUE;
    l2->max_stored = TC__VAL_HDR_LEN + max_value;
    l2->get_end_len = (size_t)snprintf(l2->get_end, sizeof l2->get_end, "%zu", l2->max_stored);
    l2->max_stored_len = l2->get_end_len;
    memcpy(l2->max_stored_str, l2->get_end, sizeof l2->get_end);
    l2->log = opts->log;
    l2->command_timeout_ms = opts->command_timeout_ms;
    l2->plain = opts->plain;
    l2->tracking = opts->tracking;
    l2->ns_sep = opts->ns_sep;
    l2->marks = opts->marks;
    l2->armed = calloc(opts->pool_size, sizeof *l2->armed);
    if (!l2->armed || init_strings(l2, opts) != 0) {
        l2_free(l2);
        return tc__fail(err, TC_ENOMEM, "l2: out of memory");
    }
    int rc = open_node(l2, opts, err);
    if (rc != 0) {
        l2_free(l2);
        return rc;
    }
    memcpy(l2->origin, opts->origin, sizeof l2->origin);
    *out = l2;
    return 0;
}

void tc__l2_close(tc__l2_t *l2) {
    if (l2)
        l2_free(l2);
}

void tc__l2_reset(tc__l2_t *l2) {
    if (!l2)
        return;
    tc__l2_clock_reset(&l2->clock); /* the new master's clock is another */
    if (l2->cluster)
        tc__cluster_refresh(l2->cluster, NULL);
    else
        tc__node_reset(l2->node);
}

int tc__l2_available(tc__l2_t *l2) {
    return l2 && (l2->cluster || tc__node_available(l2->node));
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
    tc__node_counters_t nc;
    if (l2->cluster)
        tc__cluster_node_totals(l2->cluster, &nc);
    else
        tc__node_counters(l2->node, &nc);
    out->errors = relaxed(&l2->errors);
    out->timeouts = nc.timeouts;
    out->opens = nc.opens;
    out->published = relaxed(&l2->published);
    out->refused = relaxed(&l2->refused);
    out->healed_counters = relaxed(&l2->healed_counters);
    out->heals = nc.heals;
    out->permission_errors = relaxed(&l2->permission_errors) + nc.permission_errors;
    out->hidden = relaxed(&l2->hidden);
    out->breaker_state = nc.breaker_state;
    if (l2->cluster) {
        tc__cluster_counters_t cc;
        tc__cluster_counters(l2->cluster, &cc);
        out->cluster = 1;
        out->cluster_redirects = cc.moved + cc.asked;
        out->cluster_retries = cc.retried;
        out->cluster_map_reads = cc.refreshes;
        out->cluster_failovers = cc.masters_changed;
        out->masters = cc.masters;
        out->masters_down = cc.masters_down;
    }
}
