/*
 * judge.c - tc-stress's verdicts: every value read is judged against the oracle, the cache
 * is compared with Redis at the end, and the report is printed.
 *
 * A stale read is counted (by the fault it followed) and, for the first few and the worst,
 * described in full: which write the value came from, the completed write that superseded
 * it and when, and what Redis held at that moment (a peek on a private connection), which
 * tells a stale L1 from a stale Redis. The peeks and the final comparison read Redis raw
 * over its unix socket, decoding tiercache's value header with tc__val_decode (plain keys
 * are read as they are), so they depend on nothing the library could get wrong.
 *
 * Threads: judging runs on the reading thread, into that thread's counters; examples are
 * shared, under worker_t.mu; each thread has its own peek connection (_Thread_local).
 */
#include "worker.h"

#include "ring.h"
#include "valfmt.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define REDIS_TIMEOUT_MS 2000u
#define PEEK_TIMEOUT_MS  100u

static const char *const op_names[OPK_COUNT] = {"set", "del", "get", "fetch"};

/* By tc_oracle_outcome_t (0: record gone). */
static const char *const outcome_names[] = {"?", "pending", "ok", "maybe"};

static double ms_between(uint64_t from_ns, uint64_t to_ns) {
    return to_ns >= from_ns ? (double)(to_ns - from_ns) / (double)NS_PER_MS
                            : -(double)(from_ns - to_ns) / (double)NS_PER_MS;
}

void stress_count_error(counts_t *c, op_kind_t op, int rc) {
    int idx = rc < 0 && -rc < ERR_CODES ? -rc : ERR_CODES - 1;
    c->errors[op][idx]++;
}

/* Keep the line among the first examples, and as the worst one when `late_ms` is the
 * largest so far (late_ms < 0: not a candidate). */
static void keep_example(worker_t *wk, double late_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void keep_example(worker_t *wk, double late_ms, const char *fmt, ...) {
    char line[sizeof wk->examples[0]];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&wk->mu);
    if (wk->nexamples < MAX_EXAMPLES)
        memcpy(wk->examples[wk->nexamples++], line, sizeof line);
    if (late_ms >= 0 && late_ms > wk->worst_late_ms) {
        wk->worst_late_ms = late_ms;
        memcpy(wk->worst, line, sizeof line);
    }
    pthread_mutex_unlock(&wk->mu);
}

/* ---- Redis, raw ---- */

typedef struct seen {
    int present; /* 1 value, 0 absent, -1 error */
    int rc;
    char data[TC_ORACLE_VALUE_MAX];
    size_t len;
} seen_t;

/* "w4#120(ok)", "w4#121(maybe:TC_EUNAVAILABLE)", "w4#7(?)" when its record is gone. */
static void describe_write(const worker_t *wk, unsigned key, unsigned w, uint64_t seq,
                           char *out, size_t cap) {
    int rc = 0;
    int outcome = tc_oracle_outcome(wk->o, key, w, seq, &rc);
    if (outcome == TC_OUT_MAYBE)
        snprintf(out, cap, "w%u#%" PRIu64 "(maybe:%s)", w, seq, tc_err_name(rc));
    else
        snprintf(out, cap, "w%u#%" PRIu64 "(%s)", w, seq, outcome_names[outcome]);
}

static void describe(const worker_t *wk, unsigned key, const seen_t *s, char *out, size_t cap) {
    unsigned w;
    uint64_t seq;
    if (s->present < 0)
        snprintf(out, cap, "error(%s)", tc_err_name(s->rc));
    else if (!s->present)
        snprintf(out, cap, "absent");
    else if (tc_oracle_parse(wk->o, key, s->data, s->len, &w, &seq) == 0)
        describe_write(wk, key, w, seq, out, cap);
    else
        snprintf(out, cap, "'%.*s'", (int)(s->len < 40 ? s->len : 40), s->data);
}

/* GET of one Redis key, raw. Our own writes to a dead Redis must not raise SIGPIPE (its
 * default action would kill the worker, and the library's own guard does not cover our
 * calls): the signal is blocked around the call and a pending one discarded, as l2.c does. */
static redisReply *raw_get(redisContext *rc, const char *key) {
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    redisReply *r = redisCommand(rc, "GET %s", key);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_only, NULL, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

/* The Redis key of a key name: the name itself for plain keys, else tiercache's
 * <prefix>"k:"<name>. */
static void redis_key(const worker_t *wk, const char *name, char *out, size_t cap) {
    if (wk->plain)
        snprintf(out, cap, "%s", name);
    else
        snprintf(out, cap, "%sk:%s", wk->prefix, name);
}

/* Decode what GET returned into s: a plain key's string as it is, tiercache's through its
 * header (a cached absence reads as absent). */
static void decode_value(const worker_t *wk, const redisReply *r, seen_t *s) {
    tc__val_t v;
    if (wk->plain && (size_t)r->len <= sizeof s->data) {
        s->present = 1;
        memcpy(s->data, r->str, (size_t)r->len);
        s->len = (size_t)r->len;
    } else if (!wk->plain && tc__val_decode(r->str, (size_t)r->len, &v) == 0 &&
               v.len <= sizeof s->data) {
        s->present = (v.flags & TC__VAL_FLAG_ABSENT) ? 0 : 1;
        memcpy(s->data, v.data, v.len);
        s->len = v.len;
    } else {
        s->rc = TC_EPROTO;
    }
}

/* Redis's value for key, read raw. */
static seen_t redis_value(const worker_t *wk, redisContext *rc, const char *name) {
    seen_t s = {.present = -1, .rc = TC_EUNAVAILABLE};
    char key[TC_ORACLE_NAME_MAX + 128];
    redis_key(wk, name, key, sizeof key);
    redisReply *r = rc ? raw_get(rc, key) : NULL;
    if (r && r->type == REDIS_REPLY_NIL)
        s.present = 0;
    else if (r && r->type == REDIS_REPLY_STRING)
        decode_value(wk, r, &s);
    else if (r)
        s.rc = TC_EPROTO;
    if (r)
        freeReplyObject(r);
    return s;
}

/* This thread's own connection for peeking at Redis when a read is stale (was the stale
 * value in Redis itself, or only in this process's L1?). Opened on first use. */
unsigned stress_server_of(const worker_t *wk, const char *name, size_t nlen) {
    return wk->ring ? tc__ring_lookup(wk->ring, name, nlen) : 0;
}

static _Thread_local redisContext *peek_conn[STRESS_MAX_SERVERS];

void stress_peek_close(void) {
    for (unsigned i = 0; i < STRESS_MAX_SERVERS; i++) {
        if (peek_conn[i])
            redisFree(peek_conn[i]);
        peek_conn[i] = NULL;
    }
}

static void peek_redis(const worker_t *wk, unsigned key, char *out, size_t cap) {
    struct timeval tv = {0, PEEK_TIMEOUT_MS * 1000};
    char name[TC_ORACLE_NAME_MAX];
    size_t nlen = tc_oracle_key_name(wk->o, key, name);
    unsigned at = stress_server_of(wk, name, nlen);
    redisContext **pc = &peek_conn[at];
    if (!*pc || (*pc)->err) {
        if (*pc)
            redisFree(*pc);
        *pc = redisConnectUnixWithTimeout(wk->sockets[at], tv);
        if (*pc && !(*pc)->err)
            redisSetTimeout(*pc, tv);
    }
    seen_t s = redis_value(wk, *pc && !(*pc)->err ? *pc : NULL, name);
    describe(wk, key, &s, out, cap);
}

/* ---- judging reads ---- */

/* Whether an example with this lateness would be kept (first few, or the worst). */
static int wants_example(worker_t *wk, double late_ms) {
    pthread_mutex_lock(&wk->mu);
    int wanted = wk->nexamples < MAX_EXAMPLES || late_ms > wk->worst_late_ms;
    pthread_mutex_unlock(&wk->mu);
    return wanted;
}

static void note_stale(worker_t *wk, counts_t *c, unsigned key, op_kind_t op, unsigned writer,
                       uint64_t seq, uint64_t t_read, const tc_oracle_verdict_t *v) {
    int kind = -1;
    uint64_t fstart = 0, fend = 0;
    int any = tc_oracle_fault_at(wk->o, v->first.end_ns, &kind, &fstart, &fend);
    c->stale_by_fault[any ? kind : TC_FAULT_COUNT]++;
    char name[TC_ORACLE_NAME_MAX];
    tc_oracle_key_name(wk->o, key, name);
    char fault[128] = "none";
    if (any)
        snprintf(fault, sizeof fault, "%s@%+.0f(%s)", tc_fault_name(kind),
                 tc_oracle_run_ms(wk->o, fstart),
                 fend == 0 || fend > v->first.end_ns ? "still on" : "over");
    double late = ms_between(v->first.end_ns, t_read);
    if (!wants_example(wk, late))
        return;
    char redis[96];
    peek_redis(wk, key, redis, sizeof redis);
    keep_example(
        wk, late,
        "stale key=%s op=%s at=%+.0f got=w%u#%" PRIu64 "(done %+.0f) first=w%u#%" PRIu64
        "(%s, done %+.0f) late_ms=%.0f newest=w%u#%" PRIu64 "(%s, done %+.0f) "
        "bound_ms=%.0f redis_now=%s fault=%s",
        name, op_names[op], tc_oracle_run_ms(wk->o, t_read), writer, seq,
        tc_oracle_run_ms(wk->o, v->value_end_ns), v->first.writer, v->first.seq,
        v->first.op == TC_OP_DEL ? "del" : "set", tc_oracle_run_ms(wk->o, v->first.end_ns),
        late, v->newest.writer, v->newest.seq, v->newest.op == TC_OP_DEL ? "del" : "set",
        tc_oracle_run_ms(wk->o, v->newest.end_ns), (double)wk->bound_ns / NS_PER_MS, redis,
        fault);
}

/* Judge a value read for key by a read that started at t_read. */
static void judge(worker_t *wk, counts_t *c, unsigned key, op_kind_t op, uint64_t t_read,
                  const void *data, size_t len) {
    unsigned writer;
    uint64_t seq;
    char name[TC_ORACLE_NAME_MAX];
    if (tc_oracle_parse(wk->o, key, data, len, &writer, &seq) != 0) {
        c->impossible++;
        tc_oracle_key_name(wk->o, key, name);
        keep_example(wk, -1, "impossible key=%s op=%s value='%.*s'", name, op_names[op],
                     (int)(len < 80 ? len : 80), (const char *)data);
        return;
    }
    tc_oracle_verdict_t v;
    switch (tc_oracle_check(wk->o, key, writer, seq, t_read, wk->bound_ns, &v)) {
    case TC_READ_FRESH:
        c->fresh++;
        break;
    case TC_READ_UNJUDGED:
        c->unjudged++;
        break;
    case TC_READ_IMPOSSIBLE:
        c->impossible++;
        tc_oracle_key_name(wk->o, key, name);
        keep_example(wk, -1, "impossible key=%s op=%s got=w%u#%" PRIu64, name, op_names[op],
                     writer, seq);
        break;
    case TC_READ_STALE:
        c->stale++;
        note_stale(wk, c, key, op, writer, seq, t_read, &v);
        break;
    }
}

void stress_after_read(worker_t *wk, counts_t *c, unsigned key, op_kind_t op, uint64_t t_read,
                       int rc, tc_ref_t *ref) {
    c->calls[op]++;
    if (rc == TC_OK) {
        c->ok[op]++;
        judge(wk, c, key, op, t_read, tc_ref_data(ref), tc_ref_size(ref));
    } else if (rc == TC_ENOTFOUND) {
        c->notfound[op]++;
    } else {
        stress_count_error(c, op, rc);
    }
    tc_ref_release(ref);
}

/* ---- verification: the cache against Redis ---- */

static seen_t cache_value(worker_t *wk, unsigned key, const char *name, size_t nlen) {
    seen_t s = {.len = sizeof s.data};
    uint64_t t_read = tc_oracle_now_ns();
    s.rc = tc_get_copy(wk->cache, name, nlen, s.data, &s.len);
    s.present = s.rc == TC_OK ? 1 : s.rc == TC_ENOTFOUND ? 0 : -1;
    if (s.rc != TC_OK)
        s.len = 0;
    wk->verify.calls[OPK_GET]++;
    if (s.rc == TC_OK) {
        wk->verify.ok[OPK_GET]++;
        judge(wk, &wk->verify, key, OPK_GET, t_read, s.data, s.len);
    } else if (s.rc == TC_ENOTFOUND) {
        wk->verify.notfound[OPK_GET]++;
    }
    return s;
}

/* For a cold key, who writes it and when: " (written only by w4, during pause_write)". */
static void cold_label(const worker_t *wk, unsigned key, char *out, size_t cap) {
    static const char *const stages[COLD_PER_FAULT] = {"during", "just after",
                                                       "in the recovery from"};
    out[0] = '\0';
    if (tc_oracle_key_kind(wk->o, key) != TC_KEY_COLD)
        return;
    unsigned owner = tc_oracle_key_owner(wk->o, key);
    unsigned i = key - tc_oracle_cold_key(wk->o, owner, 0);
    if (i / COLD_PER_FAULT < TC_FAULT_COUNT)
        snprintf(out, cap, " (written only by w%u, %s %s)", owner, stages[i % COLD_PER_FAULT],
                 tc_fault_name((int)(i / COLD_PER_FAULT)));
}

void stress_verify(worker_t *wk) {
    struct timeval tv = {REDIS_TIMEOUT_MS / 1000u, 0};
    redisContext *rc[STRESS_MAX_SERVERS] = {0};
    for (unsigned i = 0; i < wk->nsockets; i++) {
        rc[i] = redisConnectUnixWithTimeout(wk->sockets[i], tv);
        if (rc[i] && rc[i]->err) {
            redisFree(rc[i]);
            rc[i] = NULL;
        }
    }
    for (unsigned k = 0; k < tc_oracle_nkeys(wk->o); k++) {
        char name[TC_ORACLE_NAME_MAX];
        size_t nlen = tc_oracle_key_name(wk->o, k, name);
        seen_t mine = cache_value(wk, k, name, nlen);
        seen_t truth = redis_value(wk, rc[stress_server_of(wk, name, nlen)], name);
        wk->verified++;
        int equal = mine.present >= 0 && mine.present == truth.present &&
                    (!mine.present ||
                     (mine.len == truth.len && memcmp(mine.data, truth.data, mine.len) == 0));
        if (equal)
            continue;
        char a[96], b[96], what[96];
        describe(wk, k, &mine, a, sizeof a);
        describe(wk, k, &truth, b, sizeof b);
        cold_label(wk, k, what, sizeof what);
        if (wk->disagree < MAX_EXAMPLES)
            snprintf(wk->disagreements[wk->disagree], sizeof wk->disagreements[0],
                     "disagree key=%s cache=%s redis=%s%s", name, a, b, what);
        wk->disagree++;
    }
    for (unsigned i = 0; i < wk->nsockets; i++)
        if (rc[i])
            redisFree(rc[i]);
    stress_peek_close();
}

/* ---- report ---- */

void stress_add_counts(counts_t *to, const counts_t *from) {
    const uint64_t *src = (const uint64_t *)from;
    uint64_t *dst = (uint64_t *)to;
    for (size_t i = 0; i < sizeof *to / sizeof(uint64_t); i++)
        dst[i] += src[i];
}

static void print_errors(const counts_t *c) {
    for (int op = 0; op < OPK_COUNT; op++) {
        int any = 0;
        for (int e = 0; e < ERR_CODES; e++) {
            if (!c->errors[op][e])
                continue;
            if (!any)
                printf("errors op=%s", op_names[op]);
            any = 1;
            printf(" %s=%" PRIu64, tc_err_name(-e), c->errors[op][e]);
        }
        if (any)
            putchar('\n');
    }
}

static void print_stats(tc_cache_t *cache) {
    tc_stats_t s;
    if (tc_stats(cache, &s) != 0)
        return;
    printf("stats listener_connected=%d listener_reconnects=%" PRIu64 " l1_flushes=%" PRIu64
           " breaker_opens=%" PRIu64 " breaker_state=%d l2_errors=%" PRIu64
           " l2_timeouts=%" PRIu64 " inval_received=%" PRIu64 " inval_applied=%" PRIu64
           " l1_fills_rejected=%" PRIu64 " l1_hits=%" PRIu64 " l2_hits=%" PRIu64
           " loads=%" PRIu64 " lock_waits=%" PRIu64 " lock_timeouts=%" PRIu64
           " inval_tracking=%" PRIu64 "\n",
           s.listener_connected, s.listener_reconnects, s.l1_flushes, s.breaker_opens,
           s.breaker_state, s.l2_errors, s.l2_timeouts, s.inval_received, s.inval_applied,
           s.l1_fills_rejected, s.l1_hits, s.l2_hits, s.loads, s.lock_waits, s.lock_timeouts,
           s.inval_tracking);
}

void stress_print_report(worker_t *wk, const counts_t *c, int timed_out) {
    uint64_t reads = c->calls[OPK_GET] + c->calls[OPK_FETCH];
    printf("summary proc=%u reads=%" PRIu64 " gets=%" PRIu64 " fetches=%" PRIu64
           " values=%" PRIu64 " notfound=%" PRIu64 " fresh=%" PRIu64 " stale=%" PRIu64
           " unjudged=%" PRIu64 " impossible=%" PRIu64 " sets_ok=%" PRIu64
           " sets_maybe=%" PRIu64 " dels_ok=%" PRIu64 " dels_maybe=%" PRIu64
           " verified=%" PRIu64 " disagree=%" PRIu64 " timed_out=%d\n",
           wk->proc, reads, c->calls[OPK_GET], c->calls[OPK_FETCH],
           c->ok[OPK_GET] + c->ok[OPK_FETCH], c->notfound[OPK_GET] + c->notfound[OPK_FETCH],
           c->fresh, c->stale, c->unjudged, c->impossible, c->ok[OPK_SET], c->maybe[OPK_SET],
           c->ok[OPK_DEL], c->maybe[OPK_DEL], wk->verified, wk->disagree, timed_out);
    print_errors(c);
    printf("stale_by_fault");
    for (int k = 0; k <= TC_FAULT_COUNT; k++)
        printf(" %s=%" PRIu64, tc_fault_name(k < TC_FAULT_COUNT ? k : -1),
               c->stale_by_fault[k]);
    putchar('\n');
    for (unsigned i = 0; i < wk->nexamples; i++)
        printf("%s\n", wk->examples[i]);
    if (wk->worst[0])
        printf("worst %s\n", wk->worst);
    printf("listener_down");
    for (unsigned i = 0; i < wk->ngaps; i++)
        printf(wk->gap_to[i] < 0 ? " %+.0f..(end)" : " %+.0f..%+.0f", wk->gap_from[i],
               wk->gap_to[i]);
    putchar('\n');
    for (uint64_t i = 0; i < wk->disagree && i < MAX_EXAMPLES; i++)
        printf("%s\n", wk->disagreements[i]);
    print_stats(wk->cache);
    fflush(stdout);
}
