/*
 * watch.c - the invalidation channel, decoded live.
 *
 * watch subscribes with its own raw hiredis connection, not through a cache: it must show
 * every message as it is on the wire, including the ones a listener ignores (malformed,
 * or published by programs that are not tiercache), and it must not itself be a process
 * whose L1 the messages act on. Each message becomes one line, written and flushed at
 * once, so `watch | grep` and a test reading the pipe see it as it arrives:
 *
 *   write v=1767225600123456 log=1767225600123-0 origin=5f1c...e9 key="user:42"
 *   evict v=0 origin=0000...00 key="user:42"
 *   malformed len=5 data="hello"
 *
 * With tracking configured (TIERCACHE_TRACKING, docs/consistency.md "Any writer"), the
 * listeners also evict on Redis's own notices, which carry the writes of every client,
 * tiercache or not. watch then shows those too: it registers for every write under the prefix
 * the library tracks (BCAST: a watcher reads nothing, so the per-read mode would report
 * nothing) and prints each key mapped back to the cache's key, as a listener maps it:
 *
 *   tracking key="user:42"
 *   tracking flush              (FLUSHALL / FLUSHDB: every L1 is flushed)
 *
 * Stopping: SIGINT and SIGTERM end the loop cleanly (exit 0). hiredis retries a read
 * interrupted by a signal, so the loop never blocks inside hiredis: the signals stay
 * blocked except inside ppoll(), which waits for the socket or a signal without the race
 * of checking a flag and then sleeping, and hiredis only reads what ppoll said is there.
 */
#include "cli.h"
#include "conf.h"
#include "conn.h" /* tc__conn_error_code: a timeout or a lost link */
#include "msg.h"
#include "text.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The longest key or payload shown on one line: a line a terminal can hold. */
#define WATCH_SHOW_MAX 256

/* Where Redis publishes its client-tracking notices in RESP2. */
#define TRACKING_CHANNEL "__redis__:invalidate"

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) {
    stop_signal = sig;
}

/* Handlers without SA_RESTART, signals blocked; *waiting gets the mask ppoll unblocks. */
static void catch_stop_signals(sigset_t *waiting) {
    struct sigaction sa;
    sigset_t stop;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, waiting);
    sigdelset(waiting, SIGINT);
    sigdelset(waiting, SIGTERM);
}

/* ---- printing ---- */

static const char *op_name(unsigned op) {
    switch (op) {
    case TC__MSG_OP_WRITE:
        return "write";
    case TC__MSG_OP_DELETE:
        return "delete";
    case TC__MSG_OP_FILL:
        return "fill";
    case TC__MSG_OP_EVICT:
        return "evict";
    default:
        return "op?"; /* tc__msg_decode refuses unknown ops: never printed */
    }
}

static void print_message(const void *payload, size_t len, int hex) {
    tc__msg_t m;
    if (tc__msg_decode(payload, len, &m) != 0) {
        printf("malformed len=%zu data=", len);
        tcli_put_bytes(stdout, hex, payload, len, WATCH_SHOW_MAX);
    } else {
        printf("%s v=%llu", op_name(m.op), (unsigned long long)m.version);
        if (m.has_logid)
            printf(" log=%llu-%llu", (unsigned long long)m.logid.ms,
                   (unsigned long long)m.logid.seq);
        fputs(" origin=", stdout);
        tcli_put_hex(stdout, m.origin, sizeof m.origin);
        fputs(" key=", stdout);
        tcli_put_bytes(stdout, hex, m.key, m.klen, WATCH_SHOW_MAX);
    }
    fputc('\n', stdout);
    fflush(stdout);
}

/* What a Redis key of a notice is in the cache's terms: tiercache's keys lose their
 * <prefix>"k:" (plain keys are the key). */
typedef struct tracked_prefix {
    char *p; /* NULL: tracking off */
    size_t len, strip;
} tracked_prefix_t;

static void print_tracked_key(const redisReply *k, const tracked_prefix_t *t, int hex) {
    const char *key = k->str;
    size_t klen = k->len;
    if (klen > t->strip && memcmp(key, t->p, t->strip) == 0) {
        key += t->strip;
        klen -= t->strip;
    }
    fputs("tracking key=", stdout);
    tcli_put_bytes(stdout, hex, key, klen, WATCH_SHOW_MAX);
    fputc('\n', stdout);
}

/* A notice on __redis__:invalidate: an array of keys (one line each), or nil for a flush.
 * Prints at most `budget` lines (0 = no limit); returns how many. */
static unsigned long print_tracking(const redisReply *payload, const tracked_prefix_t *t,
                                    int hex, unsigned long budget) {
    unsigned long lines = 0;
    if (payload->type == REDIS_REPLY_NIL) {
        puts("tracking flush");
        lines = 1;
    } else if (payload->type != REDIS_REPLY_ARRAY) {
        puts("tracking malformed");
        lines = 1;
    }
    for (size_t i = 0; payload->type == REDIS_REPLY_ARRAY && i < payload->elements; i++) {
        if (budget && lines == budget)
            break;
        if (payload->element[i]->type == REDIS_REPLY_STRING) {
            print_tracked_key(payload->element[i], t, hex);
            lines++;
        }
    }
    fflush(stdout);
    return lines;
}

/* ---- the loop ---- */

enum watch_state {
    WATCH_RUNNING,
    WATCH_DONE,
    WATCH_LOST,
};

typedef struct watch {
    redisContext *rc;
    int hex;
    unsigned long count, seen; /* count 0 = no limit */
    tracked_prefix_t track;
} watch_t;

static int is_str(const redisReply *r, const char *s) {
    return r->type == REDIS_REPLY_STRING && r->len == strlen(s) &&
           memcmp(r->str, s, r->len) == 0;
}

/* A pub/sub push: ["message", channel, payload] is printed; subscribe confirmations and
 * anything else are not messages. Returns the lines printed. */
static unsigned long handle_push(const redisReply *r, const watch_t *w) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !is_str(r->element[0], "message"))
        return 0;
    const redisReply *payload = r->element[2];
    if (w->track.p && is_str(r->element[1], TRACKING_CHANNEL))
        return print_tracking(payload, &w->track, w->hex, w->count ? w->count - w->seen : 0);
    if (payload->type != REDIS_REPLY_STRING)
        return 0;
    print_message(payload->str, payload->len, w->hex);
    return 1;
}

/* Print every reply hiredis already holds. */
static enum watch_state drain(watch_t *w) {
    void *reply = NULL;
    while (redisGetReplyFromReader(w->rc, &reply) == REDIS_OK && reply) {
        w->seen += handle_push(reply, w);
        freeReplyObject(reply);
        reply = NULL;
        if (w->count && w->seen >= w->count)
            return WATCH_DONE;
    }
    return w->rc->err ? WATCH_LOST : WATCH_RUNNING;
}

/* Wait for bytes or a stop signal, and read what came. */
static enum watch_state wait_and_read(watch_t *w, const sigset_t *waiting) {
    struct pollfd p = {.fd = w->rc->fd, .events = POLLIN};
    int n = ppoll(&p, 1, NULL, waiting);
    if (n < 0)
        return errno == EINTR && stop_signal ? WATCH_DONE : WATCH_RUNNING;
    return redisBufferRead(w->rc) == REDIS_OK ? WATCH_RUNNING : WATCH_LOST;
}

/* One setup command; its reply must be `want` (a REDIS_REPLY_* type). */
static int setup_command(watch_t *w, int want, const char *what, redisReply **out,
                         const char *fmt, ...) {
    va_list ap;
    errno = 0;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(w->rc, fmt, ap);
    va_end(ap);
    char where[64];
    snprintf(where, sizeof where, "watch: %s", what);
    if (!r)
        return tcli_fail_detail(tc__conn_error_code(w->rc, errno), where, w->rc->errstr);
    int rc = TCLI_EXIT_OK;
    if (r->type == REDIS_REPLY_ERROR)
        rc = tcli_fail_detail(TC_EREDIS, where, r->str);
    else if (r->type != want)
        rc = tcli_fail_detail(TC_EPROTO, where, "unexpected reply");
    if (rc == TCLI_EXIT_OK && out)
        *out = r;
    else
        freeReplyObject(r);
    return rc;
}

/* Before subscribing (RESP2 allows nothing else after): every write under the tracked
 * prefix, reported to this connection itself, as the library's bcast listener does. */
static int start_tracking(watch_t *w, const tcli_conf_t *c) {
    const char *prefix = c->cfg.key_prefix;
    const char *data = c->cfg.plain_keys ? "" : "k:";
    size_t plen = strlen(prefix), dlen = strlen(data);
    redisReply *id = NULL;
    if (!(w->track.p = malloc(plen + dlen + 1))) {
        fputs("tiercache-cli: out of memory\n", stderr);
        return TCLI_EXIT_ERROR;
    }
    memcpy(w->track.p, prefix, plen);
    memcpy(w->track.p + plen, data, dlen + 1);
    w->track.len = w->track.strip = plen + dlen;
    int rc = setup_command(w, REDIS_REPLY_INTEGER, "CLIENT ID", &id, "CLIENT ID");
    if (rc != TCLI_EXIT_OK)
        return rc;
    unsigned long long self = (unsigned long long)id->integer;
    freeReplyObject(id);
    return setup_command(w, REDIS_REPLY_STATUS, "CLIENT TRACKING", NULL,
                         "CLIENT TRACKING on REDIRECT %llu BCAST PREFIX %b", self, w->track.p,
                         w->track.len);
}

/* SUBSCRIBE the channel (and Redis's invalidations when tracking). hiredis returns the
 * first confirmation; the second one is read, and skipped, by the loop. */
static int subscribe(watch_t *w, const tcli_conf_t *c) {
    const char *ch = c->cfg.inval_channel;
    int rc = w->track.p ? setup_command(w, REDIS_REPLY_ARRAY, "SUBSCRIBE", NULL,
                                        "SUBSCRIBE %b " TRACKING_CHANNEL, ch, strlen(ch))
                        : setup_command(w, REDIS_REPLY_ARRAY, "SUBSCRIBE", NULL, "SUBSCRIBE %b",
                                        ch, strlen(ch));
    /* On a terminal, say what is being watched; stdout stays the messages alone. */
    if (rc == TCLI_EXIT_OK && isatty(STDERR_FILENO))
        fprintf(stderr, "watching %s%s on %s (Ctrl-C to stop)\n", ch,
                w->track.p ? " and Redis's tracking notices" : "", c->url_shown);
    return rc;
}

static int watch_loop(watch_t *w, const sigset_t *waiting) {
    enum watch_state st = WATCH_RUNNING;
    while (st == WATCH_RUNNING) {
        st = drain(w);
        if (st == WATCH_RUNNING)
            st = wait_and_read(w, waiting);
    }
    if (st == WATCH_LOST)
        return tcli_fail_detail(TC_EUNAVAILABLE, "watch: the subscription ended",
                                w->rc->errstr);
    return TCLI_EXIT_OK;
}

int tcli_cmd_watch(const tcli_opts_t *o) {
    tcli_conf_t conf;
    watch_t w = {.hex = o->hex, .count = o->count};
    sigset_t waiting;
    catch_stop_signals(&waiting);
    int rc = tcli_conf_load(o, &conf);
    if (rc == TCLI_EXIT_OK)
        rc = tcli_raw_open(&conf, &w.rc);
    if (rc == TCLI_EXIT_OK && conf.cfg.tracking != TC_TRACKING_OFF)
        rc = start_tracking(&w, &conf);
    if (rc == TCLI_EXIT_OK)
        rc = subscribe(&w, &conf);
    if (rc == TCLI_EXIT_OK)
        rc = watch_loop(&w, &waiting);
    if (w.rc)
        redisFree(w.rc);
    free(w.track.p);
    return rc;
}
