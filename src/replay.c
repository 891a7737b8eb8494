/*
 * replay.c - what the listener missed, read back from the replay log.
 *
 * Every write script XADDs its invalidation to <prefix>"log" (a stream capped with
 * MAXLEN ~ replay_log_len) in the same atomic step as the PUBLISH, and the published copy
 * carries the entry's id (msg.h format 2). The listener remembers the id of the last
 * message it applied. When its link breaks and comes back, it subscribes first (so nothing
 * newer can be missed) and then reads every entry after that id from here, on a
 * connection of its own: applying them is the same as having received them, so L1 need
 * not be flushed. Messages that arrive both ways are applied twice, which changes nothing
 * (they carry versions).
 *
 * When the log no longer reaches back to the position (trimmed by MAXLEN after a long
 * outage, or deleted by FLUSHALL), some invalidations are gone for good: the caller
 * flushes, exactly as without a log. The first entry's id tells: if it is after our
 * position, entries in between may have been trimmed.
 *
 * Reads are batched (REPLAY_BATCH entries per XRANGE), so a long gap never asks Redis for
 * one huge reply.
 */
#include "replay.h"

#include "conn.h"
#include "errors.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#define REPLAY_BATCH   "1000" /* entries per XRANGE */
#define REPLAY_BATCH_N 1000

/* The id of a stream entry reply [id, [field, value, ...]]. */
static int entry_id(const redisReply *e, tc__logid_t *id) {
    return e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
                   e->element[0]->type == REDIS_REPLY_STRING &&
                   tc__logid_parse(e->element[0]->str, e->element[0]->len, id) == 0
               ? 0
               : -1;
}

/* The "m" field of an entry (the message), or NULL. */
static const redisReply *entry_message(const redisReply *e) {
    const redisReply *f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i]->type == REDIS_REPLY_STRING && f->element[i]->len == 1 &&
            f->element[i]->str[0] == 'm' && f->element[i + 1]->type == REDIS_REPLY_STRING)
            return f->element[i + 1];
    return NULL;
}

static redisReply *command(redisContext *c, tc_error_t *err, int argc, const char **argv) {
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        tc__fail(err, TC_EUNAVAILABLE, "replay log: %s", c->errstr);
        return NULL;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        tc__fail(err, TC_EREDIS, "replay log: %.*s",
                 r->type == REDIS_REPLY_ERROR ? (int)r->len : 14,
                 r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* The id of the log's first (oldest) or last entry. 1 found, 0 log empty, -1 failed. */
static int edge_id(redisContext *c, const char *key, int last, tc__logid_t *id,
                   tc_error_t *err) {
    const char *argv[6] = {
        last ? "XREVRANGE" : "XRANGE", key, last ? "+" : "-", last ? "-" : "+", "COUNT", "1"};
    redisReply *r = command(c, err, 6, argv);
    if (!r)
        return -1;
    int rc = r->elements == 0 ? 0 : entry_id(r->element[0], id) == 0 ? 1 : -1;
    if (rc < 0)
        tc__fail(err, TC_EPROTO, "replay log: malformed entry");
    freeReplyObject(r);
    return rc;
}

/* Hand over one batch after *pos. Returns the entries read, or -1. */
static long replay_batch(redisContext *c, const char *key, tc__logid_t *pos, tc__replay_fn fn,
                         void *arg, tc_error_t *err) {
    char start[64];
    snprintf(start, sizeof start, "(%llu-%llu", (unsigned long long)pos->ms,
             (unsigned long long)pos->seq);
    const char *argv[6] = {"XRANGE", key, start, "+", "COUNT", REPLAY_BATCH};
    redisReply *r = command(c, err, 6, argv);
    if (!r)
        return -1;
    long n = 0;
    for (size_t i = 0; i < r->elements; i++, n++) {
        tc__logid_t id;
        if (entry_id(r->element[i], &id) != 0) {
            freeReplyObject(r);
            tc__fail(err, TC_EPROTO, "replay log: malformed entry");
            return -1;
        }
        const redisReply *m = entry_message(r->element[i]);
        if (m)
            fn(arg, m->str, m->len, id);
        *pos = id;
    }
    freeReplyObject(r);
    return n;
}

static tc__replay_result_t replay_on(redisContext *c, const tc__replay_opts_t *o,
                                     tc__logid_t *pos, tc__replay_fn fn, void *arg,
                                     size_t *count, tc_error_t *err) {
    tc__logid_t first = {0, 0};
    int have = edge_id(c, o->log_key, 0, &first, err);
    if (have < 0)
        return TC__REPLAY_FAILED;
    int no_position = pos->ms == 0 && pos->seq == 0;
    if (no_position || !have || tc__logid_after(first, *pos)) {
        /* Trimmed past us (or deleted): what is gone is gone. Start from the end. */
        tc__logid_t last = {0, 0};
        if (have && edge_id(c, o->log_key, 1, &last, err) < 0)
            return TC__REPLAY_FAILED;
        *pos = last;
        return TC__REPLAY_GAP;
    }
    long n;
    do {
        n = replay_batch(c, o->log_key, pos, fn, arg, err);
        if (n < 0)
            return TC__REPLAY_FAILED;
        *count += (size_t)n;
    } while (n == REPLAY_BATCH_N);
    return TC__REPLAY_DONE;
}

tc__replay_result_t tc__replay(const tc__replay_opts_t *o, tc__logid_t *pos, tc__replay_fn fn,
                               void *arg, size_t *count, tc_error_t *err) {
    *count = 0;
    redisContext *c = NULL;
    if (tc__conn_open(o->endpoint, o->connect_timeout_ms, o->command_timeout_ms, &c, err) != 0)
        return TC__REPLAY_FAILED;
    tc__replay_result_t rc = replay_on(c, o, pos, fn, arg, count, err);
    redisFree(c);
    return rc;
}
