/*
 * l2_queue.c - the Redis side of the write strategies: write-through's lock and leased
 * store, and write-behind's durable queue (a Redis stream with one consumer group), its
 * flusher lease, its dead letters, and the record of versions written.
 *
 *   <prefix>"wb"        the queue: entries {o: s|d, k: key, n: version, v: value}, appended
 *                       by the write scripts in the same step as the cache write, read by the
 *                       group "tc" (one consumer: the flusher holding the lease), acknowledged
 *                       and deleted once written, so its length is what is still to write;
 *   <prefix>"wb:lease"  the flusher lease (SET NX PX, extended compare-and-PEXPIRE);
 *   <prefix>"wb:dead"   dead letters: a queue entry plus {e: error, a: attempts};
 *   <prefix>"wbv:"<key> the newest version the flusher wrote for key (7 days): a replayed
 *                       older write is skipped, never written over a newer one.
 *
 * Everything here is a plain command or a script through the pool (l2.c), one round trip
 * each; the flusher (behind.c) decides what to call when.
 */
#include "l2_int.h"

#include "errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WB_GROUP         "tc"
#define WB_VERSIONS_TTL  "604800000" /* 7 days */
#define WB_KEY_MAX_EXTRA 16

/* <prefix><suffix> into a malloc'd buffer. */
static unsigned char *prefixed(const tc__l2_t *l2, const char *suffix, const void *tail,
                               size_t tlen, size_t *len) {
    size_t sl = strlen(suffix);
    unsigned char *p = malloc(l2->prefix_len + sl + tlen + 1);
    if (!p)
        return NULL;
    memcpy(p, l2->key_prefix, l2->prefix_len);
    memcpy(p + l2->prefix_len, suffix, sl);
    if (tlen)
        memcpy(p + l2->prefix_len + sl, tail, tlen);
    *len = l2->prefix_len + sl + tlen;
    return p;
}

/* One plain command, argv given; 0 with call->reply (free it), or an error. */
static int command(tc__l2_t *l2, l2_call_t *call) {
    int rc = tc__l2i_run(l2, call);
    if (rc == 0 && call->reply->type == REDIS_REPLY_ERROR)
        rc = TC_EREDIS;
    if (rc != 0)
        tc__l2i_free_reply(&call->reply);
    return tc__l2i_finish(l2, call, rc);
}

static int is_error_text(const redisReply *r, const char *prefix) {
    size_t n = strlen(prefix);
    return r && r->type == REDIS_REPLY_ERROR && r->len >= n && memcmp(r->str, prefix, n) == 0;
}

/* Two plain commands in one round trip; 0 when both were accepted. */
static int run_pair(tc__l2_t *l2, l2_call_t parts[2]) {
    l2_call_t pipe = {.kind = CALL_PIPE, .parts = parts, .nparts = 2};
    int rc = tc__l2i_run(l2, &pipe);
    for (int i = 0; i < 2 && rc == 0; i++)
        if (parts[i].reply->type == REDIS_REPLY_ERROR)
            rc = TC_EREDIS;
    for (int i = 0; i < 2; i++)
        tc__l2i_free_reply(&parts[i].reply);
    return tc__l2i_finish(l2, &pipe, rc);
}

/* ---- write-through ---- */

int tc__l2_wlock(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen,
                 uint32_t ttl_ms, int64_t *pttl, uint64_t *version) {
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc != 0)
        return rc;
    key_parts_t k;
    if (tc__l2i_key_parts(l2, key, klen, &k) != 0)
        return TC_ENOMEM;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", (unsigned)ttl_ms);
    l2_call_t call;
    memset(&call, 0, sizeof call);
    call.kind = CALL_SCRIPT;
    call.script = TC__SCRIPT_WLOCK;
    call.argc = 2;
    tc__l2i_push(&call, "2", 1);
    tc__l2i_push(&call, k.lock, k.klen2);
    tc__l2i_push(&call, k.vkey, k.vkey_len);
    tc__l2i_push(&call, token, tlen);
    tc__l2i_push(&call, ttl, strlen(ttl));
    rc = tc__l2i_run(l2, &call);
    const redisReply *r = rc == 0 ? call.reply : NULL;
    if (rc == 0 && r->type == REDIS_REPLY_ERROR)
        rc = TC_EREDIS;
    else if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
                         !tc__l2i_is_int(r->element[0]) || !tc__l2i_is_int(r->element[1])))
        rc = TC_EPROTO;
    else if (rc == 0 && r->element[0]->integer == 1) {
        *version = (uint64_t)r->element[1]->integer;
        if (r->elements > 2)
            tc__l2i_note_healed(l2, r->element[2]);
        rc = TC__L2_DONE;
    } else if (rc == 0) {
        *pttl = r->element[1]->integer;
        rc = TC__L2_LOCK_HELD;
    }
    tc__l2i_free_reply(&call.reply);
    tc__l2i_scratch_put(&k.s);
    return tc__l2i_finish(l2, &call, rc);
}

/* {1, version, healed} or {0}: TC__L2_DONE (*version) or `lost`. */
static int flag_reply(tc__l2_t *l2, const redisReply *r, uint64_t *version, int lost) {
    if (r->type == REDIS_REPLY_ERROR)
        return TC_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !tc__l2i_is_int(r->element[0]))
        return TC_EPROTO;
    if (r->element[0]->integer == 0)
        return lost;
    if (r->elements < 3 || !tc__l2i_is_int(r->element[1]))
        return TC_EPROTO;
    tc__l2i_note_healed(l2, r->element[2]);
    *version = (uint64_t)r->element[1]->integer;
    tc__count(&l2->published);
    return TC__L2_DONE;
}

/* PUT_LEASED or PUT_QUEUED: a write shaped as SET's, with `extra` before the log maxlen
 * and, for the queue, the queue key after the four. */
static int run_write(tc__l2_t *l2, tc__script_t script, const tc__l2_write_t *w,
                     const char *extra, const unsigned char *queue, size_t qlen,
                     uint64_t *version, int lost) {
    int rc = tc__l2i_check_key(l2, w->key, w->klen);
    if (rc == 0)
        rc = tc__l2i_check_value(w->value, w->vlen);
    if (rc != 0)
        return rc;
    key_parts_t k;
    if (tc__l2i_key_parts(l2, w->key, w->klen, &k) != 0)
        return TC_ENOMEM;
    l2_call_t call;
    value_args_t va;
    unsigned char mhead[TC__MSG_HEAD_LEN];
    tc__msg_head(TC__MSG_OP_WRITE, mhead);
    tc__l2i_write_call_t wc = {.script = script,
                               .k = &k,
                               .va = &va,
                               .w = w,
                               .mhead = mhead,
                               .queue = queue,
                               .qlen = qlen,
                               .extra = extra};
    rc = tc__l2i_build_write(l2, &call, &wc);
    if (rc == 0)
        rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = flag_reply(l2, call.reply, version, lost);
    tc__l2i_free_reply(&call.reply);
    tc__l2i_value_args_done(&va);
    tc__l2i_scratch_put(&k.s);
    return tc__l2i_finish(l2, &call, rc);
}

int tc__l2_put_leased(tc__l2_t *l2, const tc__l2_write_t *w, uint64_t *version) {
    char token[64];
    if (!w || !w->lease || w->lease_len >= sizeof token)
        return TC_EINVAL;
    memcpy(token, w->lease, w->lease_len);
    token[w->lease_len] = '\0';
    return run_write(l2, TC__SCRIPT_PUT_LEASED, w, token, NULL, 0, version, TC__L2_LEASE_LOST);
}

/* ---- write-behind: queueing ---- */

int tc__l2_put_queued(tc__l2_t *l2, const tc__l2_write_t *w, unsigned max_queue,
                      uint64_t *version) {
    char limit[24];
    snprintf(limit, sizeof limit, "%u", max_queue);
    size_t qlen;
    unsigned char *q = prefixed(l2, "wb", NULL, 0, &qlen);
    if (!q)
        return TC_ENOMEM;
    int rc = run_write(l2, TC__SCRIPT_PUT_QUEUED, w, limit, q, qlen, version, TC_EFULL);
    free(q);
    return rc;
}

int tc__l2_del_queued(tc__l2_t *l2, const void *key, size_t klen, unsigned max_queue,
                      uint64_t *version) {
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc != 0)
        return rc;
    key_parts_t k;
    size_t qlen;
    unsigned char *q = prefixed(l2, "wb", NULL, 0, &qlen);
    if (!q || tc__l2i_key_parts(l2, key, klen, &k) != 0) {
        free(q);
        return TC_ENOMEM;
    }
    char limit[24];
    snprintf(limit, sizeof limit, "%u", max_queue);
    unsigned char mhead[TC__MSG_HEAD_LEN];
    tc__msg_head(TC__MSG_OP_DELETE, mhead);
    l2_call_t call;
    memset(&call, 0, sizeof call);
    call.kind = CALL_SCRIPT;
    call.script = TC__SCRIPT_DEL_QUEUED;
    call.argc = 2;
    tc__l2i_push(&call, "5", 1);
    tc__l2i_push(&call, k.data, k.klen2);
    tc__l2i_push(&call, k.vkey, k.vkey_len);
    tc__l2i_push(&call, k.lock, k.klen2);
    tc__l2i_push(&call, k.logkey, k.logkey_len);
    tc__l2i_push(&call, q, qlen);
    tc__l2i_push(&call, l2->channel, l2->channel_len);
    tc__l2i_push(&call, mhead, sizeof mhead);
    tc__l2i_push(&call, k.tail, k.tlen);
    tc__l2i_push(&call, limit, strlen(limit));
    tc__l2i_push_log_maxlen(&call, l2);
    rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = flag_reply(l2, call.reply, version, TC_EFULL);
    tc__l2i_free_reply(&call.reply);
    tc__l2i_scratch_put(&k.s);
    free(q);
    return tc__l2i_finish(l2, &call, rc);
}

int tc__l2_wb_len(tc__l2_t *l2, uint64_t *len) {
    size_t qlen;
    unsigned char *q = prefixed(l2, "wb", NULL, 0, &qlen);
    if (!q)
        return TC_ENOMEM;
    l2_call_t call = {.kind = CALL_PING};
    tc__l2i_push(&call, "XLEN", 4);
    tc__l2i_push(&call, q, qlen);
    int rc = command(l2, &call);
    if (rc == 0 && !tc__l2i_is_int(call.reply))
        rc = TC_EPROTO;
    if (rc == 0)
        *len = (uint64_t)call.reply->integer;
    tc__l2i_free_reply(&call.reply);
    free(q);
    return rc;
}

/* ---- write-behind: the flusher's lease ---- */

int tc__l2_wb_lease(tc__l2_t *l2, const char *token, uint32_t ttl_ms, int renew,
                    int64_t *left_ms) {
    if (left_ms)
        *left_ms = -1;
    size_t llen;
    unsigned char *lkey = prefixed(l2, "wb:lease", NULL, 0, &llen);
    if (!lkey)
        return TC_ENOMEM;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", (unsigned)ttl_ms);
    l2_call_t call;
    memset(&call, 0, sizeof call);
    int rc;
    if (renew) { /* compare-and-PEXPIRE: the lock script EXTEND (KEYS lock, data) */
        call.kind = CALL_SCRIPT;
        call.script = TC__SCRIPT_EXTEND;
        call.argc = 2;
        tc__l2i_push(&call, "2", 1);
        tc__l2i_push(&call, lkey, llen);
        tc__l2i_push(&call, lkey, llen);
        tc__l2i_push(&call, token, strlen(token));
        tc__l2i_push(&call, ttl, strlen(ttl));
        rc = command(l2, &call);
        if (rc == 0)
            rc = tc__l2i_is_int(call.reply) ? call.reply->integer == 1 : TC_EPROTO;
    } else {
        call.kind = CALL_PING;
        tc__l2i_push(&call, "SET", 3);
        tc__l2i_push(&call, lkey, llen);
        tc__l2i_push(&call, token, strlen(token));
        tc__l2i_push(&call, "PX", 2);
        tc__l2i_push(&call, ttl, strlen(ttl));
        tc__l2i_push(&call, "NX", 2);
        rc = command(l2, &call);
        if (rc == 0)
            rc = call.reply->type == REDIS_REPLY_STATUS;
        if (rc == 0 && left_ms) { /* held: when it expires, unless its holder renews it */
            tc__l2i_free_reply(&call.reply);
            memset(&call, 0, sizeof call);
            call.kind = CALL_PING;
            tc__l2i_push(&call, "PTTL", 4);
            tc__l2i_push(&call, lkey, llen);
            if (command(l2, &call) == 0 && tc__l2i_is_int(call.reply))
                *left_ms = call.reply->integer;
        }
    }
    tc__l2i_free_reply(&call.reply);
    free(lkey);
    return rc;
}

int tc__l2_wb_release(tc__l2_t *l2, const char *token) {
    size_t llen;
    unsigned char *lkey = prefixed(l2, "wb:lease", NULL, 0, &llen);
    if (!lkey)
        return TC_ENOMEM;
    unsigned char fhead[TC__MSG_HEAD_LEN];
    tc__msg_head(TC__MSG_OP_FILL, fhead);
    l2_call_t call;
    memset(&call, 0, sizeof call);
    call.kind = CALL_SCRIPT;
    call.script = TC__SCRIPT_UNLOCK;
    call.argc = 2;
    tc__l2i_push(&call, "2", 1);
    tc__l2i_push(&call, lkey, llen);
    tc__l2i_push(&call, lkey, llen);
    tc__l2i_push(&call, token, strlen(token));
    tc__l2i_push(&call, l2->channel, l2->channel_len);
    tc__l2i_push(&call, fhead, sizeof fhead);
    tc__l2i_push(&call, l2->origin, sizeof l2->origin); /* never contended: unused */
    int rc = command(l2, &call);
    tc__l2i_free_reply(&call.reply);
    free(lkey);
    return rc;
}

/* ---- write-behind: reading the queue ---- */

void tc__l2_wb_entries_free(tc__wb_entry_t *e, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(e[i].key);
    free(e);
}

/* One stream entry [id, [field, value, ...]] into *out. 0, or -1 when malformed. */
static int parse_entry(const redisReply *r, tc__wb_entry_t *out) {
    memset(out, 0, sizeof *out);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof out->id)
        return -1;
    memcpy(out->id, r->element[0]->str, r->element[0]->len);
    const redisReply *f = r->element[1];
    if (f->type != REDIS_REPLY_ARRAY || f->elements % 2)
        return -1;
    const redisReply *k = NULL, *v = NULL, *o = NULL, *ver = NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *name = f->element[i], *val = f->element[i + 1];
        if (name->type != REDIS_REPLY_STRING || name->len != 1 ||
            val->type != REDIS_REPLY_STRING)
            continue;
        switch (name->str[0]) {
        case 'k':
            k = val;
            break;
        case 'v':
            v = val;
            break;
        case 'o':
            o = val;
            break;
        case 'n':
            ver = val;
            break;
        default:
            break;
        }
    }
    if (!k || !o || !ver || k->len == 0 || k->len > TC_MAX_KEY_LEN || o->len != 1)
        return -1;
    out->kind = o->str[0] == 'd' ? TC_WRITE_DEL : TC_WRITE_SET;
    out->version = strtoull(ver->str, NULL, 10);
    out->klen = k->len;
    out->vlen = v ? v->len : 0;
    out->key = malloc(k->len + out->vlen + 1);
    if (!out->key)
        return -2;
    memcpy(out->key, k->str, k->len);
    if (v)
        memcpy(out->key + k->len, v->str, v->len);
    out->value = out->key + k->len;
    return 0;
}

/* Entries of an XREADGROUP or XAUTOCLAIM reply's entry array. Malformed ones are skipped
 * but their ids kept (kind 0) so they are acknowledged, not read forever. */
static int parse_entries(const redisReply *arr, tc__wb_entry_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!arr || arr->type != REDIS_REPLY_ARRAY || arr->elements == 0)
        return 0;
    tc__wb_entry_t *e = calloc(arr->elements, sizeof *e);
    if (!e)
        return TC_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < arr->elements; i++) {
        const redisReply *r = arr->element[i];
        int prc = parse_entry(r, &e[m]);
        if (prc == -2) {
            tc__l2_wb_entries_free(e, m + 1);
            return TC_ENOMEM;
        }
        if (prc == 0) {
            m++;
        } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                   r->element[0]->type == REDIS_REPLY_STRING &&
                   r->element[0]->len < sizeof e[m].id) {
            free(e[m].key);
            memset(&e[m], 0, sizeof e[m]);
            memcpy(e[m].id, r->element[0]->str, r->element[0]->len);
            m++; /* kind 0: malformed, to acknowledge */
        }
    }
    *out = e;
    *n = m;
    return 0;
}

static int create_group(tc__l2_t *l2, const unsigned char *q, size_t qlen) {
    l2_call_t call = {.kind = CALL_PING};
    tc__l2i_push(&call, "XGROUP", 6);
    tc__l2i_push(&call, "CREATE", 6);
    tc__l2i_push(&call, q, qlen);
    tc__l2i_push(&call, WB_GROUP, strlen(WB_GROUP));
    tc__l2i_push(&call, "0", 1);
    tc__l2i_push(&call, "MKSTREAM", 8);
    int rc = tc__l2i_run(l2, &call);
    if (rc == 0 && call.reply->type == REDIS_REPLY_ERROR &&
        !is_error_text(call.reply, "BUSYGROUP"))
        rc = TC_EREDIS;
    tc__l2i_free_reply(&call.reply);
    return tc__l2i_finish(l2, &call, rc);
}

int tc__l2_wb_read(tc__l2_t *l2, const char *consumer, char cursor[TC__WB_ID_MAX],
                   uint32_t min_idle_ms, size_t count, tc__wb_entry_t **out, size_t *n) {
    int claim = cursor != NULL;
    *out = NULL;
    *n = 0;
    size_t qlen;
    unsigned char *q = prefixed(l2, "wb", NULL, 0, &qlen);
    if (!q)
        return TC_ENOMEM;
    char cnt[24], idle[16];
    snprintf(cnt, sizeof cnt, "%zu", count);
    snprintf(idle, sizeof idle, "%u", (unsigned)min_idle_ms);
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        l2_call_t call = {.kind = CALL_PING};
        if (claim) { /* everything pending in the group, whoever read it: we are the one */
            tc__l2i_push(&call, "XAUTOCLAIM", 10);
            tc__l2i_push(&call, q, qlen);
            tc__l2i_push(&call, WB_GROUP, strlen(WB_GROUP));
            tc__l2i_push(&call, consumer, strlen(consumer));
            tc__l2i_push(&call, idle, strlen(idle));
            tc__l2i_push(&call, cursor, strlen(cursor));
            tc__l2i_push(&call, "COUNT", 5);
            tc__l2i_push(&call, cnt, strlen(cnt));
        } else {
            tc__l2i_push(&call, "XREADGROUP", 10);
            tc__l2i_push(&call, "GROUP", 5);
            tc__l2i_push(&call, WB_GROUP, strlen(WB_GROUP));
            tc__l2i_push(&call, consumer, strlen(consumer));
            tc__l2i_push(&call, "COUNT", 5);
            tc__l2i_push(&call, cnt, strlen(cnt));
            tc__l2i_push(&call, "STREAMS", 7);
            tc__l2i_push(&call, q, qlen);
            tc__l2i_push(&call, ">", 1);
        }
        rc = tc__l2i_run(l2, &call);
        if (rc == 0 && is_error_text(call.reply, "NOGROUP") && attempt == 0) {
            tc__l2i_free_reply(&call.reply);
            rc = create_group(l2, q, qlen);
            if (rc == 0)
                continue;
            break;
        }
        if (rc == 0 && call.reply->type == REDIS_REPLY_ERROR)
            rc = TC_EREDIS;
        const redisReply *r = rc == 0 ? call.reply : NULL;
        if (rc == 0 && claim) {
            /* Go on from the cursor: the claimed entries stay pending (now ours), so
             * starting again from 0-0 would return them forever. A reply without a
             * stream id for a cursor cannot be walked on. */
            if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
                r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len > 0 &&
                r->element[0]->len < TC__WB_ID_MAX &&
                strspn(r->element[0]->str, "0123456789-") == r->element[0]->len &&
                r->element[1]->type == REDIS_REPLY_ARRAY) {
                memcpy(cursor, r->element[0]->str, r->element[0]->len);
                cursor[r->element[0]->len] = '\0';
                rc = parse_entries(r->element[1], out, n);
            } else {
                rc = TC_EPROTO;
            }
        } else if (rc == 0 && !claim && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
                   r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2)
            rc = parse_entries(r->element[0]->element[1], out, n);
        else if (rc == 0 && r->type != REDIS_REPLY_NIL && r->type != REDIS_REPLY_ARRAY)
            rc = TC_EPROTO;
        tc__l2i_free_reply(&call.reply);
        tc__l2i_finish(l2, &call, rc);
        break;
    }
    free(q);
    return rc;
}

/* XACK then XDEL of ids, pipelined (the stream's length is what is left to write). */
int tc__l2_wb_ack(tc__l2_t *l2, const char *const *ids, size_t n) {
    if (n == 0)
        return 0;
    size_t qlen;
    unsigned char *q = prefixed(l2, "wb", NULL, 0, &qlen);
    const char **av = malloc((n + 3) * 2 * sizeof *av);
    size_t *al = malloc((n + 3) * 2 * sizeof *al);
    l2_call_t *parts = calloc(2, sizeof *parts);
    int rc = q && av && al && parts ? 0 : TC_ENOMEM;
    if (rc == 0) {
        tc__l2i_use_args(&parts[0], av, al, (int)n + 3);
        tc__l2i_use_args(&parts[1], av + n + 3, al + n + 3, (int)n + 3);
        parts[0].kind = parts[1].kind = CALL_PING;
        tc__l2i_push(&parts[0], "XACK", 4);
        tc__l2i_push(&parts[0], q, qlen);
        tc__l2i_push(&parts[0], WB_GROUP, strlen(WB_GROUP));
        tc__l2i_push(&parts[1], "XDEL", 4);
        tc__l2i_push(&parts[1], q, qlen);
        for (size_t i = 0; i < n; i++) {
            tc__l2i_push(&parts[0], ids[i], strlen(ids[i]));
            tc__l2i_push(&parts[1], ids[i], strlen(ids[i]));
        }
        rc = run_pair(l2, parts);
    }
    free(parts);
    free(av);
    free(al);
    free(q);
    return rc;
}

/* A write that failed for good: into the dead-letter stream (then acknowledged). */
int tc__l2_wb_bury(tc__l2_t *l2, const tc__wb_entry_t *e, const char *error,
                   unsigned attempts) {
    size_t dlen;
    unsigned char *d = prefixed(l2, "wb:dead", NULL, 0, &dlen);
    if (!d)
        return TC_ENOMEM;
    char ver[24], att[16];
    snprintf(ver, sizeof ver, "%llu", (unsigned long long)e->version);
    snprintf(att, sizeof att, "%u", attempts);
    l2_call_t call = {.kind = CALL_PING};
    tc__l2i_push(&call, "XADD", 4);
    tc__l2i_push(&call, d, dlen);
    tc__l2i_push(&call, "*", 1);
    tc__l2i_push(&call, "o", 1);
    tc__l2i_push(&call, e->kind == TC_WRITE_DEL ? "d" : "s", 1);
    tc__l2i_push(&call, "k", 1);
    tc__l2i_push(&call, e->key, e->klen);
    tc__l2i_push(&call, "n", 1);
    tc__l2i_push(&call, ver, strlen(ver));
    if (e->kind != TC_WRITE_DEL) {
        tc__l2i_push(&call, "v", 1);
        tc__l2i_push(&call, e->vlen ? e->value : (const unsigned char *)"", e->vlen);
    }
    tc__l2i_push(&call, "e", 1);
    tc__l2i_push(&call, error, strlen(error));
    tc__l2i_push(&call, "a", 1);
    tc__l2i_push(&call, att, strlen(att));
    int rc = command(l2, &call);
    tc__l2i_free_reply(&call.reply);
    free(d);
    if (rc == 0) {
        const char *id = e->id;
        rc = tc__l2_wb_ack(l2, &id, 1);
    }
    return rc;
}

/* ---- write-behind: versions written ---- */

/* <prefix>"wbv:"<key> for each entry, into one buffer; keys[i] point into it. */
static unsigned char *version_keys(const tc__l2_t *l2, const tc__wb_entry_t *const *e, size_t n,
                                   const char **keys, size_t *lens) {
    size_t total = 0, plen = l2->prefix_len + 4;
    for (size_t i = 0; i < n; i++)
        total += plen + e[i]->klen;
    unsigned char *buf = malloc(total ? total : 1), *p = buf;
    for (size_t i = 0; buf && i < n; i++) {
        memcpy(p, l2->key_prefix, l2->prefix_len);
        memcpy(p + l2->prefix_len, "wbv:", 4);
        memcpy(p + plen, e[i]->key, e[i]->klen);
        keys[i] = (const char *)p;
        lens[i] = plen + e[i]->klen;
        p += lens[i];
    }
    return buf;
}

int tc__l2_wb_written(tc__l2_t *l2, const tc__wb_entry_t *const *e, size_t n, uint64_t *out) {
    if (n == 0)
        return 0;
    const char **av = malloc((n + 1) * sizeof *av);
    size_t *al = malloc((n + 1) * sizeof *al);
    unsigned char *buf = av && al ? version_keys(l2, e, n, av + 1, al + 1) : NULL;
    int rc = buf ? 0 : TC_ENOMEM;
    if (rc == 0) {
        l2_call_t call = {.kind = CALL_PING};
        tc__l2i_use_args(&call, av, al, (int)n + 1);
        call.argc = (int)n + 1;
        av[0] = "MGET";
        al[0] = 4;
        rc = command(l2, &call);
        if (rc == 0 && (call.reply->type != REDIS_REPLY_ARRAY || call.reply->elements != n))
            rc = TC_EPROTO;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const redisReply *r = call.reply->element[i];
            out[i] = r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10) : 0;
        }
        tc__l2i_free_reply(&call.reply);
    }
    free(buf);
    free(av);
    free(al);
    return rc;
}

int tc__l2_wb_mark_written(tc__l2_t *l2, const tc__wb_entry_t *const *e, size_t n) {
    if (n == 0)
        return 0;
    int cap = 2 * (int)n + 4;
    const char **av = malloc((size_t)cap * sizeof *av);
    size_t *al = malloc((size_t)cap * sizeof *al);
    char(*vers)[24] = malloc(n * sizeof *vers);
    const char **keys = malloc(n * sizeof *keys);
    size_t *klens = malloc(n * sizeof *klens);
    unsigned char *buf =
        av && al && vers && keys && klens ? version_keys(l2, e, n, keys, klens) : NULL;
    int rc = buf ? 0 : TC_ENOMEM;
    if (rc == 0) {
        l2_call_t call;
        memset(&call, 0, sizeof call);
        tc__l2i_use_args(&call, av, al, cap);
        call.kind = CALL_SCRIPT;
        call.script = TC__SCRIPT_WB_DONE;
        call.argc = 2;
        tc__l2i_push(&call, "", 0);
        for (size_t i = 0; i < n; i++)
            tc__l2i_push(&call, keys[i], klens[i]);
        tc__l2i_set_numkeys(&call, call.argc);
        tc__l2i_push(&call, WB_VERSIONS_TTL, strlen(WB_VERSIONS_TTL));
        for (size_t i = 0; i < n; i++) {
            snprintf(vers[i], sizeof vers[i], "%llu", (unsigned long long)e[i]->version);
            tc__l2i_push(&call, vers[i], strlen(vers[i]));
        }
        rc = command(l2, &call);
        tc__l2i_free_reply(&call.reply);
    }
    free(buf);
    free(av);
    free(al);
    free(vers);
    free(keys);
    free(klens);
    return rc;
}

/* ---- dead letters ---- */

int tc__l2_wb_dead_range(tc__l2_t *l2, const char *after, size_t count, tc__wb_entry_t **out,
                         size_t *n, char **errors) {
    *out = NULL;
    *n = 0;
    size_t dlen;
    unsigned char *d = prefixed(l2, "wb:dead", NULL, 0, &dlen);
    if (!d)
        return TC_ENOMEM;
    char cnt[24], start[48];
    snprintf(cnt, sizeof cnt, "%zu", count);
    snprintf(start, sizeof start, "%s%s", after[0] ? "(" : "", after[0] ? after : "-");
    l2_call_t call = {.kind = CALL_PING};
    tc__l2i_push(&call, "XRANGE", 6);
    tc__l2i_push(&call, d, dlen);
    tc__l2i_push(&call, start, strlen(start));
    tc__l2i_push(&call, "+", 1);
    tc__l2i_push(&call, "COUNT", 5);
    tc__l2i_push(&call, cnt, strlen(cnt));
    int rc = command(l2, &call);
    if (rc == 0)
        rc = parse_entries(call.reply, out, n);
    for (size_t i = 0; rc == 0 && errors && i < *n; i++) { /* e (error) and a (attempts) */
        const redisReply *f = call.reply->element[i]->element[1];
        errors[i] = NULL;
        for (size_t j = 0; j + 1 < f->elements; j += 2)
            if (f->element[j]->len == 1 && f->element[j]->str[0] == 'e') {
                errors[i] = strndup(f->element[j + 1]->str, f->element[j + 1]->len);
            } else if (f->element[j]->len == 1 && f->element[j]->str[0] == 'a') {
                (*out)[i].attempts = (unsigned)strtoul(f->element[j + 1]->str, NULL, 10);
            }
    }
    tc__l2i_free_reply(&call.reply);
    free(d);
    return rc;
}

int tc__l2_wb_requeue(tc__l2_t *l2, const tc__wb_entry_t *e) {
    size_t qlen, dlen;
    unsigned char *q = prefixed(l2, "wb", NULL, 0, &qlen);
    unsigned char *d = prefixed(l2, "wb:dead", NULL, 0, &dlen);
    char ver[24];
    snprintf(ver, sizeof ver, "%llu", (unsigned long long)e->version);
    l2_call_t *parts = calloc(2, sizeof *parts);
    int rc = q && d && parts ? 0 : TC_ENOMEM;
    if (rc == 0) {
        parts[0].kind = parts[1].kind = CALL_PING;
        tc__l2i_push(&parts[0], "XADD", 4);
        tc__l2i_push(&parts[0], q, qlen);
        tc__l2i_push(&parts[0], "*", 1);
        tc__l2i_push(&parts[0], "o", 1);
        tc__l2i_push(&parts[0], e->kind == TC_WRITE_DEL ? "d" : "s", 1);
        tc__l2i_push(&parts[0], "k", 1);
        tc__l2i_push(&parts[0], e->key, e->klen);
        tc__l2i_push(&parts[0], "n", 1);
        tc__l2i_push(&parts[0], ver, strlen(ver));
        if (e->kind != TC_WRITE_DEL) {
            tc__l2i_push(&parts[0], "v", 1);
            tc__l2i_push(&parts[0], e->vlen ? e->value : (const unsigned char *)"", e->vlen);
        }
        tc__l2i_push(&parts[1], "XDEL", 4);
        tc__l2i_push(&parts[1], d, dlen);
        tc__l2i_push(&parts[1], e->id, strlen(e->id));
        rc = run_pair(l2, parts);
    }
    free(parts);
    free(q);
    free(d);
    return rc;
}
