/*
 * listener.c - the invalidation listener thread.
 *
 * One thread per open cache owns a dedicated subscriber connection (never one from the
 * pool: a subscribed connection can do nothing else). It waits in poll() on the socket and
 * on a stop pipe, so tc_close() interrupts it at once, and feeds hiredis's reader itself
 * (redisBufferRead / redisGetReplyFromReader): hiredis 0.14 makes a context unusable after a
 * read timeout, so the watchdog cannot rely on socket timeouts.
 *
 * Trust, the part that matters (see the safety argument in l1.c):
 * - Until SUBSCRIBE is confirmed, L1 is untrusted: values read from Redis are not kept.
 * - Once confirmed, L1 is flushed (anything kept while we were deaf is dropped and every
 *   fill in flight is poisoned) and only then marked trusted. Every write that committed in
 *   Redis before the subscription is visible to fills that start after the flush; every
 *   write after it sends us a message.
 * - The link is declared lost on a read/write error, EOF, a malformed reply stream, or
 *   silence: after ping_ms without traffic we send PING (legal in subscribed mode) and
 *   wait another ping_ms for any reply. Traffic is any byte read, not a whole reply: a
 *   big message arriving slowly is a live link. On loss: untrusted, then flush, then
 *   reconnect with exponential backoff (10 ms doubling to ping_ms, at most 2 s), so a
 *   healed Redis is heard again within about one watchdog period.
 * So a stale entry can survive at most one message propagation delay, or, when the link
 * dies silently, 2 * ping_ms (the watchdog bound), never longer. Entries kept while deaf
 * live at most degraded_ttl_ms (l1.c rule 4).
 * Messages are applied with version comparison (tc__l1_invalidate), our own included:
 * applying our own write's message is harmless and makes concurrent local writers converge.
 * A message whose version no counter produces (0 outside FILL, or 2^53 and up: anyone may
 * publish on the channel) cannot be ordered, so it evicts the key whatever its version and
 * is counted as malformed. A message about many keys (a tag or prefix step) is applied key
 * by key, touching only those keys; a namespace bump or clear sweeps L1 once (every entry
 * under the namespace older than the bump), on this thread.
 * A link that comes back to another server than before (redis+sentinel:// after a failover)
 * flushes L1 instead of replaying: the promoted replica may lack writes whose copies L1
 * holds (replication is asynchronous), and its replay log lacks them too.
 */
#include "listener.h"

#include "clock.h"
#include "conn.h"
#include "msg.h"
#include "replay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LISTENER_BACKOFF_MIN_MS 10u
#define LISTENER_BACKOFF_MAX_MS 2000u
#define TC__LISTENER_SERVER_LEN 300 /* "host:port", or a unix socket path */
/* Versions are below 2^53 (scripts.c): Lua's doubles stop being exact there. */
#define LISTENER_VERSION_LIMIT ((uint64_t)1 << 53)

struct tc__listener {
    tc__listener_opts_t o;
    pthread_t thread;
    int stop_pipe[2];
    atomic_int stopping;
    pthread_mutex_t mu; /* guards subscribed_once and cause */
    pthread_cond_t cv;
    int subscribed_once;
    char cause[256]; /* why the link is down or was refused; "" while subscribed */
    atomic_uint_fast64_t received, applied, malformed, reconnects, permission_errors;
    atomic_uint_fast64_t replays, replayed, log_gaps, tracked, swept;
    atomic_int connected;
    atomic_int rebind; /* tc__listener_rebind: end this link and connect again */
    /* listener thread only */
    tc__logid_t pos;       /* replay log id of the last message applied */
    uint64_t flush_due_ns; /* lost link, L1 kept: flush then unless replayed first; 0 none */
    char server[TC__LISTENER_SERVER_LEN]; /* "host:port" of the server subscribed to */
    int server_changed;                   /* this link is to another server than the last */
};

/* How a connection ended. */
typedef struct session_end {
    const char *why;
    uint64_t last_traffic_ns; /* the last byte read: nothing missed before it */
    int silent;               /* the watchdog, not an error, ended it */
} session_end_t;

/* Empty the wake-up pipe after a rebind; a stop byte drained with it is put back, so every
 * later wait still wakes at once. */
static void drain_wakeups(tc__listener_t *ls) {
    char drain[16];
    while (read(ls->stop_pipe[0], drain, sizeof drain) > 0) {
    }
    if (atomic_load(&ls->stopping)) {
        ssize_t w = write(ls->stop_pipe[1], "x", 1);
        (void)w;
    }
}

/* Sleep up to ms, waking early on stop. Returns 1 if asked to stop. */
static int sleep_or_stop(tc__listener_t *ls, uint32_t ms) {
    struct pollfd pfd = {.fd = ls->stop_pipe[0], .events = POLLIN};
    if (poll(&pfd, 1, (int)ms) > 0 && !atomic_load(&ls->stopping))
        drain_wakeups(ls); /* a rebind: connect now (the flag stays for the next connect) */
    return atomic_load(&ls->stopping);
}

static int send_command(redisContext *c, int argc, const char **argv, const size_t *lens) {
    if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK)
        return -1;
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return -1;
    return 0;
}

static int is_str(const redisReply *r, const char *s) {
    size_t n = strlen(s);
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == n && strncasecmp(r->str, s, n) == 0;
}

/* A write's version is Redis's clock in microseconds when it ran (scripts.c), unless
 * writes outpace the clock: the time from write to eviction, on this host's clock. Kept
 * only when plausible (within a minute): a skewed clock or a counter run ahead says
 * nothing useful. */
#define LISTENER_LATENCY_WINDOW_US 60000000u
static void note_latency(tc__listener_t *ls, const tc__msg_t *m) {
    if (!ls->o.inval_latency || m->op == TC__MSG_OP_FILL)
        return;
    uint64_t now_us = tc__wall_us();
    if (m->version <= now_us && now_us - m->version < LISTENER_LATENCY_WINDOW_US)
        tc__hist_record(ls->o.inval_latency, (now_us - m->version) * 1000u);
}

/* One key of a message. */
static void apply_key(tc__listener_t *ls, unsigned op, uint64_t version, int orderable,
                      const unsigned char *key, size_t klen) {
    uint64_t h = tc__l1_hash(ls->o.l1, key, klen);
    if (op == TC__MSG_OP_EVICT || !orderable) /* tc_invalidate, or a version no one made */
        tc__l1_evict(ls->o.l1, h, key, klen);
    else
        tc__l1_invalidate(ls->o.l1, h, key, klen, version);
    if (ls->o.hook)
        ls->o.hook(ls->o.hook_arg, key, klen);
}

/* A namespace bump or a clear: a sweep of L1 (an unorderable version sweeps everything
 * under it: the safe side). */
static void apply_sweep(tc__listener_t *ls, const tc__msg_t *m, int orderable) {
    uint64_t v = orderable ? m->version : UINT64_MAX;
    if (orderable) /* reads judge by the new mark from now on (marks.h) */
        tc__marks_note(ls->o.marks, m->op == TC__MSG_OP_NS ? m->key : NULL, m->klen, v);
    size_t n = tc__l1_sweep(ls->o.l1, m->key, m->klen, v);
    atomic_fetch_add_explicit(&ls->swept, n, memory_order_relaxed);
}

static void apply_decoded(tc__listener_t *ls, const tc__msg_t *m) {
    int orderable =
        m->version < LISTENER_VERSION_LIMIT && (m->version != 0 || m->op == TC__MSG_OP_FILL);
    if (m->op == TC__MSG_OP_NS || m->op == TC__MSG_OP_CLEAR) {
        apply_sweep(ls, m, orderable);
    } else if (m->op == TC__MSG_OP_MANY) {
        size_t at = 0, klen;
        const unsigned char *key;
        while (tc__msg_next_key(m, &at, &key, &klen))
            apply_key(ls, m->op, m->version, orderable, key, klen);
    } else {
        apply_key(ls, m->op, m->version, orderable, m->key, m->klen);
    }
    if (orderable && m->op != TC__MSG_OP_EVICT)
        note_latency(ls, m);
    /* Counted last: whoever sees a counter move sees the message's effect in L1. */
    if (!orderable && m->op != TC__MSG_OP_EVICT)
        tc__count(&ls->malformed);
    tc__count(&ls->applied);
}

static void apply_message(tc__listener_t *ls, const char *buf, size_t len) {
    tc__count(&ls->received);
    tc__msg_t m;
    if (tc__msg_decode(buf, len, &m) != 0) {
        tc__count(&ls->malformed);
        return;
    }
    apply_decoded(ls, &m);
    if (m.has_logid && tc__logid_after(m.logid, ls->pos))
        ls->pos = m.logid;
}

/* One entry of the replay log (replay.c): as if it had arrived as a message. */
static void apply_logged(void *arg, const void *msg, size_t len, tc__logid_t id) {
    tc__listener_t *ls = arg;
    tc__msg_t m;
    if (tc__msg_decode(msg, len, &m) == 0)
        apply_decoded(ls, &m);
    else
        tc__count(&ls->malformed);
    ls->pos = id;
}

/* Remember why the link failed or was refused (for tc_open's error and the log). */
static void set_cause(tc__listener_t *ls, const char *fmt, ...) TC__PRINTF(2, 3);
static void set_cause(tc__listener_t *ls, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&ls->mu);
    vsnprintf(ls->cause, sizeof ls->cause, fmt, ap);
    pthread_mutex_unlock(&ls->mu);
    va_end(ap);
}

/* An error reply (SUBSCRIBE or PING refused): Redis answered, so the link is alive; say
 * why, and count an ACL or authentication refusal instead of treating it as a dead link
 * and flushing L1 over and over. */
static void refused(tc__listener_t *ls, const redisReply *r) {
    set_cause(ls, "redis refused the listener's command: %.*s", (int)r->len, r->str);
    int permission = (r->len >= 6 && memcmp(r->str, "NOPERM", 6) == 0) ||
                     (r->len >= 6 && memcmp(r->str, "NOAUTH", 6) == 0);
    if (permission)
        tc__count(&ls->permission_errors);
    tc__log(ls->o.log, permission ? TC__EV_PERMISSION : TC__EV_LISTENER,
            permission ? TC_LOG_ERROR : TC_LOG_WARN, NULL, 0,
            "invalidation listener: Redis refused SUBSCRIBE or PING: %.*s (see "
            "docs/operations.md \"Redis ACL\")",
            (int)r->len, r->str);
}

#define TRACKING_CHANNEL "__redis__:invalidate"

/* One key of a server-side invalidation: the Redis key, mapped back to the cache's key
 * (tiercache's keys lose their <prefix>"k:"; plain keys are the key), then evicted
 * whatever version L1 holds (Redis's notices carry none). */
static void evict_tracked(tc__listener_t *ls, const redisReply *k) {
    if (k->type != REDIS_REPLY_STRING)
        return;
    const char *key = k->str;
    size_t klen = k->len;
    size_t strip = ls->o.track_strip_len;
    if (strip) {
        if (klen <= strip || memcmp(key, ls->o.track_prefix, strip) != 0)
            return; /* the version counter, a lock, the log: not a cached key */
        key += strip;
        klen -= strip;
    }
    if (klen == 0 || klen > TC_MAX_KEY_LEN)
        return;
    tc__count(&ls->tracked); /* first: whoever sees the eviction sees it counted */
    tc__l1_evict(ls->o.l1, tc__l1_hash(ls->o.l1, key, klen), key, klen);
    if (ls->o.hook)
        ls->o.hook(ls->o.hook_arg, key, klen);
}

/* A message on __redis__:invalidate: an array of keys, or nil for FLUSHALL / FLUSHDB
 * (everything is gone). A key the server's tracking table evicted arrives the same way:
 * evicting it is all there is to do. */
static void apply_tracking(tc__listener_t *ls, const redisReply *payload) {
    tc__count(&ls->received);
    if (payload->type == REDIS_REPLY_NIL) {
        size_t dropped = tc__l1_flush(ls->o.l1);
        tc__log(ls->o.log, TC__EV_FLUSH, TC_LOG_WARN, NULL, 0,
                "Redis reported a FLUSHALL or FLUSHDB: L1 flushed (%zu entries)", dropped);
        return;
    }
    if (payload->type != REDIS_REPLY_ARRAY) {
        tc__count(&ls->malformed);
        return;
    }
    for (size_t i = 0; i < payload->elements; i++)
        evict_tracked(ls, payload->element[i]);
}

/* Handle one reply in subscribed mode. Returns 1 for a subscribe confirmation, 0 for any
 * other well-formed reply, -1 for a reply that cannot happen on a healthy link. */
static int handle_reply(tc__listener_t *ls, redisReply *r) {
    if (r->type == REDIS_REPLY_ERROR) {
        refused(ls, r);
        return 0;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return -1;
    redisReply *kind = r->element[0];
    if (is_str(kind, "message") && r->elements == 3 &&
        is_str(r->element[1], TRACKING_CHANNEL)) {
        apply_tracking(ls, r->element[2]);
        return 0;
    }
    if (is_str(kind, "message") && r->elements == 3) {
        redisReply *payload = r->element[2];
        if (payload->type == REDIS_REPLY_STRING)
            apply_message(ls, payload->str, payload->len);
        else
            tc__count(&ls->malformed);
        return 0;
    }
    if (is_str(kind, "subscribe"))
        return 1;
    if (is_str(kind, "pong"))
        return 0;
    return -1;
}

/* What the listener missed while deaf: read back from the replay log, or (no log, log
 * trimmed past us, log unreadable) dropped with a flush. Returns the entries flushed. */
static size_t catch_up(tc__listener_t *ls) {
    if (ls->server_changed) { /* a failover: the new master may have lost writes */
        ls->server_changed = 0;
        size_t dropped = tc__l1_flush(ls->o.l1);
        tc__log(ls->o.log, TC__EV_FLUSH, TC_LOG_WARN, NULL, 0,
                "the invalidation listener now reaches another server (%s): a failover, "
                "whose replication may have lost writes; L1 flushed (%zu entries), no replay",
                ls->server, dropped);
        return dropped;
    }
    if (!ls->o.log_key)
        return tc__l1_flush(ls->o.l1);
    tc__replay_opts_t ro = {.endpoint = ls->o.endpoint,
                            .log_key = ls->o.log_key,
                            .connect_timeout_ms = ls->o.connect_timeout_ms,
                            .command_timeout_ms = ls->o.command_timeout_ms};
    int had_position = ls->pos.ms || ls->pos.seq;
    size_t n = 0;
    tc_error_t err = {0};
    tc__replay_result_t r = tc__replay(&ro, &ls->pos, apply_logged, ls, &n, &err);
    if (r == TC__REPLAY_DONE) {
        tc__count(&ls->replays);
        atomic_fetch_add_explicit(&ls->replayed, n, memory_order_relaxed);
        if (atomic_load(&ls->reconnects) || had_position)
            tc__log(ls->o.log, TC__EV_LISTENER, TC_LOG_INFO, NULL, 0,
                    "invalidation listener replayed %zu missed invalidations from the log: "
                    "L1 kept",
                    n);
        return 0;
    }
    if (r == TC__REPLAY_GAP && had_position) {
        tc__count(&ls->log_gaps);
        tc__log(ls->o.log, TC__EV_FLUSH, TC_LOG_WARN, NULL, 0,
                "the replay log no longer reaches back to the last invalidation applied "
                "(trimmed, or deleted): L1 flushed; a larger replay_log_len covers longer "
                "outages");
    } else if (r == TC__REPLAY_FAILED) {
        tc__log(ls->o.log, TC__EV_FLUSH, TC_LOG_WARN, NULL, 0,
                "the replay log could not be read (%s): L1 flushed", err.msg);
    }
    return tc__l1_flush(ls->o.l1);
}

static void mark_subscribed(tc__listener_t *ls) {
    /* Catch up before trusting: nothing missed while deaf survives, no fill in flight
     * commits (a flush poisons them, and so does the loss that preceded a replay). */
    size_t dropped = catch_up(ls);
    if (ls->o.on_subscribed) /* reload the marks: every bump from now on is a message */
        ls->o.on_subscribed(ls->o.subscribed_arg);
    ls->flush_due_ns = 0;
    tc__l1_set_trusted(ls->o.l1, 1);
    atomic_store(&ls->connected, 1);
    pthread_mutex_lock(&ls->mu);
    int again = ls->subscribed_once;
    if (again)
        atomic_fetch_add(&ls->reconnects, 1);
    ls->subscribed_once = 1;
    ls->cause[0] = '\0';
    pthread_cond_broadcast(&ls->cv);
    pthread_mutex_unlock(&ls->mu);
    if (again)
        tc__log(ls->o.log, TC__EV_LISTENER, TC_LOG_INFO, NULL, 0,
                "invalidation listener subscribed again to '%s': L1 trusted again (%zu "
                "entries kept while deaf dropped)",
                ls->o.channel, dropped);
}

/* Which server this link reaches. With redis+sentinel:// the address is looked up on
 * every connect, so a failover shows here as a new address. */
static void note_server(tc__listener_t *ls, const redisContext *c) {
    char now[TC__LISTENER_SERVER_LEN];
    if (c->connection_type == REDIS_CONN_TCP && c->tcp.host)
        snprintf(now, sizeof now, "%s:%d", c->tcp.host, c->tcp.port);
    else
        snprintf(now, sizeof now, "%s", c->unix_sock.path ? c->unix_sock.path : "");
    /* Sticky until a catch-up flushes: a link to the new server that ends before its
     * subscription is confirmed must not let the next one (same server) replay. */
    ls->server_changed |= ls->server[0] && strcmp(now, ls->server) != 0;
    memcpy(ls->server, now, sizeof now);
}

/* Flush now: a lost link that no replay caught up with in time. */
static void flush_lost(tc__listener_t *ls, const char *why) {
    size_t dropped = tc__l1_flush(ls->o.l1);
    ls->flush_due_ns = 0;
    tc__log(ls->o.log, TC__EV_FLUSH, TC_LOG_WARN, NULL, 0,
            "invalidation listener lost its link (%s): L1 flushed (%zu entries); values read "
            "from Redis are not kept until it is back",
            why, dropped);
}

static void mark_lost(tc__listener_t *ls, const session_end_t *end) {
    if (ls->o.on_client_id && ls->o.tracking == TC_TRACKING_DEFAULT)
        ls->o.on_client_id(ls->o.client_id_arg, 0); /* reads are not tracked any more */
    tc__marks_unknown(ls->o.marks);                 /* bumps may go unheard: reads ask Redis */
    if (!atomic_load(&ls->connected))
        return; /* never came up: the cause of that is already recorded (refusal, connect) */
    /* Untrust first so no L2 fill commits between the flush and the flag. */
    atomic_store(&ls->connected, 0);
    tc__l1_set_trusted(ls->o.l1, 0);
    set_cause(ls, "the invalidation link was lost: %s", end->why);
    /* With a replay log, a link that failed loudly keeps L1 while it reconnects: nothing
     * was missed before the last byte read, and what comes after is in the log. It may do
     * so until the watchdog bound (2 x ping_ms after that byte), then flushes anyway. A
     * link that died silently has used that time up already. */
    uint64_t due = end->last_traffic_ns + 2 * (uint64_t)ls->o.ping_ms * 1000000u;
    if (!ls->o.log_key || end->silent || tc__now_ns() >= due) {
        flush_lost(ls, end->why);
        return;
    }
    tc__l1_poison_pending(ls->o.l1); /* fills in flight may miss what the log replays */
    ls->flush_due_ns = due;
    tc__log(ls->o.log, TC__EV_LISTENER, TC_LOG_WARN, NULL, 0,
            "invalidation listener lost its link (%s): reconnecting; L1 is kept for %llu ms "
            "while the missed invalidations are replayed",
            end->why, (unsigned long long)((due - tc__now_ns()) / 1000000u));
}

static session_end_t ended(const char *why, uint64_t last_traffic_ns, int silent) {
    return (session_end_t){why, last_traffic_ns, silent};
}

/* Before subscribing (RESP2 allows nothing else after): learn our client id, and either
 * register for every write under the prefix (bcast: this connection redirects to itself)
 * or hand the id to the data connections (default: they redirect their reads' tracking
 * here). 0, or a refusal or failure (cause set). */
static int setup_tracking(tc__listener_t *ls, redisContext *c) {
    redisReply *r = redisCommand(c, "CLIENT ID");
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR)
            refused(ls, r);
        if (r)
            freeReplyObject(r);
        return -1;
    }
    uint64_t id = (uint64_t)r->integer;
    freeReplyObject(r);
    if (ls->o.tracking == TC_TRACKING_BCAST) {
        r = redisCommand(c, "CLIENT TRACKING on REDIRECT %llu BCAST PREFIX %b",
                         (unsigned long long)id, ls->o.track_prefix, ls->o.track_prefix_len);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (r && r->type == REDIS_REPLY_ERROR)
            refused(ls, r);
        if (r)
            freeReplyObject(r);
        return ok ? 0 : -1;
    }
    if (ls->o.on_client_id)
        ls->o.on_client_id(ls->o.client_id_arg, id);
    return 0;
}

/* Serve one connection until it fails or we are stopped. Returns how it ended. */
static session_end_t serve(tc__listener_t *ls, redisContext *c) {
    int tracking = ls->o.tracking != TC_TRACKING_OFF;
    if (tracking && setup_tracking(ls, c) != 0)
        return ended("client tracking could not be set up", tc__now_ns(), 0);
    const char *argv[3] = {"SUBSCRIBE", ls->o.channel, TRACKING_CHANNEL};
    size_t lens[3] = {9, strlen(ls->o.channel), sizeof TRACKING_CHANNEL - 1};
    if (send_command(c, tracking ? 3 : 2, argv, lens) != 0)
        return ended("SUBSCRIBE could not be sent", tc__now_ns(), 0);
    int confirmations = 0; /* one per channel */
    const char *ping[1] = {"PING"};
    size_t ping_len[1] = {4};
    uint64_t ping_ns = (uint64_t)ls->o.ping_ms * 1000000u;
    uint64_t last_traffic = tc__now_ns();
    int awaiting_pong = 0, subscribed = 0;
    /* Until confirmed, the connect timeout bounds the wait for the subscription. */
    uint64_t confirm_deadline = last_traffic + (uint64_t)ls->o.connect_timeout_ms * 1000000u;

    while (!atomic_load(&ls->stopping)) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            return ended("malformed reply stream", last_traffic, 0);
        if (reply) {
            int kind = handle_reply(ls, reply);
            freeReplyObject(reply);
            if (kind < 0)
                return ended("unexpected reply in subscribed mode", last_traffic, 0);
            if (kind == 1 && !subscribed && ++confirmations == (tracking ? 2 : 1)) {
                subscribed = 1;
                mark_subscribed(ls);
            }
            last_traffic = tc__now_ns();
            awaiting_pong = 0;
            continue;
        }
        uint64_t now = tc__now_ns();
        if (!subscribed && now >= confirm_deadline)
            return ended("SUBSCRIBE not confirmed within connect_timeout_ms", last_traffic, 0);
        if (now - last_traffic >= ping_ns) {
            if (awaiting_pong) /* a whole period without any reply: the link is dead */
                return ended("no reply to PING within listener_ping_ms (watchdog)", 0, 1);
            if (send_command(c, 1, ping, ping_len) != 0)
                return ended("PING could not be sent", last_traffic, 0);
            awaiting_pong = 1;
            last_traffic = now;
        }
        uint64_t wait_ns = ping_ns - (now - last_traffic);
        struct pollfd pfd[2] = {{.fd = c->fd, .events = POLLIN},
                                {.fd = ls->stop_pipe[0], .events = POLLIN}};
        int n = poll(pfd, 2, (int)(wait_ns / 1000000u) + 1);
        if (n < 0 && errno != EINTR)
            return ended("poll failed", last_traffic, 0);
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            drain_wakeups(ls); /* first: a byte left behind would wake every poll */
            if (atomic_exchange(&ls->rebind, 0) && !atomic_load(&ls->stopping))
                return ended("the master changed (Sentinel +switch-master)", last_traffic, 0);
        }
        if (n > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (redisBufferRead(c) != REDIS_OK)
                return ended(c->errstr[0] ? c->errstr : "connection closed", last_traffic, 0);
            last_traffic = tc__now_ns(); /* part of a reply is traffic too */
            awaiting_pong = 0;
        }
    }
    return ended("stopped", tc__now_ns(), 0);
}

/* Sleep the back-off, but no later than a pending flush; flush when it is due. Returns 1 if
 * asked to stop. */
static int wait_to_retry(tc__listener_t *ls, uint32_t backoff_ms) {
    uint64_t now = tc__now_ns();
    if (ls->flush_due_ns && now >= ls->flush_due_ns)
        flush_lost(ls, "not back within the watchdog bound");
    if (ls->flush_due_ns && ls->flush_due_ns - now < (uint64_t)backoff_ms * 1000000u)
        backoff_ms = (uint32_t)((ls->flush_due_ns - now) / 1000000u) + 1;
    return sleep_or_stop(ls, backoff_ms);
}

static void *listener_main(void *arg) {
    tc__listener_t *ls = arg;
    /* A write to a dead socket raises SIGPIPE in the writing thread; this thread only ever
     * writes to its own connection, so blocking it here for good is enough (the write then
     * fails with EPIPE and the link is declared lost). */
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
    uint32_t backoff_ms = 0;
    uint32_t backoff_max =
        ls->o.ping_ms < LISTENER_BACKOFF_MAX_MS ? ls->o.ping_ms : LISTENER_BACKOFF_MAX_MS;
    if (backoff_max < LISTENER_BACKOFF_MIN_MS)
        backoff_max = LISTENER_BACKOFF_MIN_MS;
    while (!atomic_load(&ls->stopping)) {
        redisContext *c = NULL;
        tc_error_t err = {0};
        atomic_store(&ls->rebind, 0); /* this connect resolves the master anew */
        if (tc__conn_open(ls->o.endpoint, ls->o.connect_timeout_ms, ls->o.connect_timeout_ms,
                          &c, &err) == TC_OK) {
            note_server(ls, c);
            char why[128];
            session_end_t end = serve(ls, c);
            snprintf(why, sizeof why, "%s", end.why); /* errstr lives in c */
            end.why = why;
            redisFree(c);
            if (atomic_load(&ls->connected))
                backoff_ms = 0; /* it worked for a while: retry promptly */
            mark_lost(ls, &end);
        } else {
            set_cause(ls, "%s", err.msg);
            tc__log(ls->o.log, TC__EV_LISTENER, TC_LOG_WARN, NULL, 0,
                    "invalidation listener cannot connect: %s", err.msg);
        }
        if (atomic_load(&ls->stopping))
            break;
        backoff_ms = backoff_ms ? backoff_ms * 2 : LISTENER_BACKOFF_MIN_MS;
        if (backoff_ms > backoff_max)
            backoff_ms = backoff_max;
        if (wait_to_retry(ls, backoff_ms))
            break;
    }
    return NULL;
}

int tc__listener_start(const tc__listener_opts_t *opts, tc__listener_t **out) {
    *out = NULL;
    tc__listener_t *ls = calloc(1, sizeof *ls);
    if (!ls)
        return TC_ENOMEM;
    ls->o = *opts;
    if (pipe2(ls->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(ls);
        return TC_EINTERNAL;
    }
    pthread_mutex_init(&ls->mu, NULL);
    pthread_cond_init(&ls->cv, NULL);
    tc__l1_set_trusted(opts->l1, 0);
    if (pthread_create(&ls->thread, NULL, listener_main, ls) != 0) {
        close(ls->stop_pipe[0]);
        close(ls->stop_pipe[1]);
        pthread_cond_destroy(&ls->cv);
        pthread_mutex_destroy(&ls->mu);
        free(ls);
        return TC_EINTERNAL;
    }
    *out = ls;
    return TC_OK;
}

int tc__listener_wait_subscribed(tc__listener_t *ls, uint32_t timeout_ms) {
    /* ls->cv waits on the default (wall) clock */
    struct timespec deadline = tc__timespec_ns(tc__wall_ns() + (uint64_t)timeout_ms * 1000000u);
    pthread_mutex_lock(&ls->mu);
    while (!ls->subscribed_once)
        if (pthread_cond_timedwait(&ls->cv, &ls->mu, &deadline) == ETIMEDOUT)
            break;
    int ok = ls->subscribed_once;
    pthread_mutex_unlock(&ls->mu);
    return ok;
}

void tc__listener_rebind(tc__listener_t *ls) {
    if (!ls)
        return;
    atomic_store(&ls->rebind, 1);
    ssize_t w = write(ls->stop_pipe[1], "r", 1);
    (void)w;
}

void tc__listener_stop(tc__listener_t *ls) {
    if (!ls)
        return;
    atomic_store(&ls->stopping, 1);
    ssize_t w = write(ls->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(ls->thread, NULL);
    close(ls->stop_pipe[0]);
    close(ls->stop_pipe[1]);
    pthread_cond_destroy(&ls->cv);
    pthread_mutex_destroy(&ls->mu);
    free(ls);
}

void tc__listener_counters(tc__listener_t *ls, tc__listener_counters_t *out) {
    out->received = atomic_load_explicit(&ls->received, memory_order_relaxed);
    out->applied = atomic_load_explicit(&ls->applied, memory_order_relaxed);
    out->malformed = atomic_load_explicit(&ls->malformed, memory_order_relaxed);
    out->reconnects = atomic_load_explicit(&ls->reconnects, memory_order_relaxed);
    out->permission_errors = atomic_load_explicit(&ls->permission_errors, memory_order_relaxed);
    out->replays = atomic_load_explicit(&ls->replays, memory_order_relaxed);
    out->replayed = atomic_load_explicit(&ls->replayed, memory_order_relaxed);
    out->log_gaps = atomic_load_explicit(&ls->log_gaps, memory_order_relaxed);
    out->tracked = atomic_load_explicit(&ls->tracked, memory_order_relaxed);
    out->swept = atomic_load_explicit(&ls->swept, memory_order_relaxed);
    out->connected = atomic_load(&ls->connected);
}

int tc__listener_cause(tc__listener_t *ls, tc_error_t *err) {
    pthread_mutex_lock(&ls->mu);
    int have = ls->cause[0] != '\0';
    if (have)
        tc__fail(err, TC_EUNAVAILABLE, "%s", ls->cause);
    pthread_mutex_unlock(&ls->mu);
    return have;
}
