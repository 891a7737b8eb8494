/*
 * l2_many.c - the Redis tier's operations on many keys: pipelined reads, writes, deletes,
 * locks and fills (one round trip per TC__L2_PIPE_MAX keys), and the invalidation of a tag,
 * a prefix, a namespace or everything.
 *
 * Bulk calls. Each key gets exactly the call its single-key operation would make (l2.c
 * builds it), so a bulk write is N atomic write scripts, each with its own version and its
 * own published invalidation, and ordering against concurrent single-key writes is what it
 * always was. Only the transport changes: every call of a chunk is written, then every
 * reply read (a pipeline), then each reply is read by the single-key parser. A transport
 * failure fails the chunk's keys alike; a Redis error reply fails only its key.
 *
 * Invalidating many keys. The race definition (tiercache.h) needs a line between "before"
 * and "after": the invalidation takes a version v0 first (VERSION script). Every write
 * that completed before has a lower version, every write that starts after a higher one.
 * Then it works in bounded steps, each one script of at most a few milliseconds:
 *   tag:    the tag's sorted set (member = key, score = the version that tagged it) is read
 *           500 members at a time at scores <= v0; a member is deleted if its key still
 *           holds exactly that version (an untagged rewrite took it out of the tag), and
 *           leaves the set either way;
 *   prefix: SCAN (MATCH <prefix>[kl]:<escaped prefix>*, COUNT 1000) finds data keys and
 *           locks; a data key is deleted unless a write after v0 stored it, and a lock is
 *           deleted (the load holding it must not store what it read).
 * Each step announces its deleted keys at a new version in one op-5 message (msg.h), so
 * every L1 touches only those keys, and hands them to the caller's callback so its own L1
 * drops them before the call returns.
 *   namespace, clear: O(1). The mark key (<prefix>"n:"<ns><sep>, <prefix>"clear") takes
 *           the next version; every read of a key judges the value against its marks (l2.c
 *           reads them in the same round trip, the scripts in the same step), so older
 *           values read as absent from then on and are overwritten or expire lazily; the
 *           op-6/7 message makes every L1 sweep them once.
 */
#include "l2_int.h"

#include "errors.h"
#include "valfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_STEP    500 /* members per tag step */
#define SCAN_COUNT  "1000"
#define PREFIX_STEP 500 /* found keys per prefix-delete script */

/* ---- the pipelined driver ---------------------------------------------------------- */

/* One key's call and the buffers its arguments point into. */
typedef struct many_item {
    key_parts_t k;
    value_args_t va;
    unsigned char expected[8];
    char num[24];
    int has_k;
} many_item_t;

/* How one bulk operation builds key i's call and reads its replies. */
typedef struct many_ops {
    int (*build)(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call, many_item_t *it);
    int (*parse)(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call);
} many_ops_t;

static void item_done(many_item_t *it) {
    tc__l2i_value_args_done(&it->va);
    if (it->has_k)
        tc__l2i_scratch_put(&it->k.s);
    it->has_k = 0;
}

/* Run keys [from, to) as one pipeline. Returns 0 or the chunk's transport failure. */
static int run_chunk(tc__l2_t *l2, size_t from, size_t to, const many_ops_t *ops, void *ctx,
                     int *codes) {
    size_t n = to - from, m = 0;
    l2_call_t *parts = calloc(n, sizeof *parts);
    many_item_t *items = calloc(n, sizeof *items);
    size_t *idx = calloc(n, sizeof *idx);
    if (!parts || !items || !idx) {
        free(parts);
        free(items);
        free(idx);
        for (size_t i = from; i < to; i++)
            codes[i] = TC_ENOMEM;
        return TC_ENOMEM;
    }
    uint64_t extra = 0;
    for (size_t i = from; i < to; i++) {
        int rc = ops->build(l2, ctx, i, &parts[m], &items[m]);
        if (rc != 0) {
            codes[i] = rc;
            item_done(&items[m]);
            continue;
        }
        extra += parts[m].extra_timeout_ms;
        idx[m++] = i;
    }
    int rc = 0;
    if (m > 0) {
        l2_call_t pipe = {.kind = CALL_PIPE, .parts = parts, .nparts = m};
        pipe.extra_timeout_ms = extra > UINT32_MAX ? UINT32_MAX : (uint32_t)extra;
        rc = tc__l2i_run(l2, &pipe);
        for (size_t j = 0; j < m; j++) {
            codes[idx[j]] = rc != 0 ? rc : ops->parse(l2, ctx, idx[j], &parts[j]);
            tc__l2i_free_reply(&parts[j].reply);
            tc__l2i_free_reply(&parts[j].reply2);
            tc__l2i_free_reply(&parts[j].reply3);
            tc__l2i_free_reply(&parts[j].treply);
        }
        tc__l2i_finish(l2, &pipe, rc);
    }
    for (size_t j = 0; j < m; j++)
        item_done(&items[j]);
    free(parts);
    free(items);
    free(idx);
    return rc;
}

static int run_many(tc__l2_t *l2, size_t n, const many_ops_t *ops, void *ctx, int *codes) {
    int first = 0;
    for (size_t from = 0; from < n; from += TC__L2_PIPE_MAX) {
        size_t to = n - from > TC__L2_PIPE_MAX ? from + TC__L2_PIPE_MAX : n;
        int rc = run_chunk(l2, from, to, ops, ctx, codes);
        if (rc != 0 && first == 0)
            first = rc;
    }
    return first;
}

static int parts_for(tc__l2_t *l2, const void *key, size_t klen, many_item_t *it) {
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc != 0)
        return rc;
    if (tc__l2i_key_parts(l2, key, klen, &it->k) != 0)
        return TC_ENOMEM;
    it->has_k = 1;
    return 0;
}

/* ---- get ---- */

typedef struct get_ctx {
    const tc_buf_t *keys;
    tc__l2_value_t *out;
} get_ctx_t;

static int get_build(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call, many_item_t *it) {
    get_ctx_t *g = ctx;
    int rc = parts_for(l2, g->keys[i].data, g->keys[i].len, it);
    if (rc == 0)
        tc__l2i_build_get(l2, call, &it->k);
    return rc;
}

static int get_parse(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call) {
    get_ctx_t *g = ctx;
    return tc__l2i_get_result(l2, call, &g->out[i]);
}

/* The lean bulk read: keys [from, to) when every key's marks are judged locally (or there
 * are none: plain keys). Builds no call per key: the data keys go into one buffer and the
 * pipeline is GETRANGE + PTTL per key, or GETRANGE alone when the values' headers tell
 * their life (and then a TIME, when due: l2_clock.h). Returns 1 when done (codes set; a
 * transport failure fails the chunk's keys), 0 when some key's marks are unknown (use the
 * general path). */
static int get_lean(tc__l2_t *l2, const tc_buf_t *keys, size_t from, size_t to,
                    tc__l2_value_t *out, int *codes, int *failure) {
    size_t n = to - from, bytes = 0, m = 0;
    if (l2->cluster) /* one pipeline for one server: a cluster's reads go key by key */
        return 0;
    for (size_t i = from; i < to; i++)
        bytes += tc__l2i_key_room(l2, keys[i].len);
    unsigned char *buf = malloc(bytes ? bytes : 1);
    const unsigned char **dkeys = malloc(n * sizeof *dkeys);
    size_t *lens = malloc(n * sizeof *lens), *idx = malloc(n * sizeof *idx);
    uint64_t *marks = malloc(n * sizeof *marks);
    redisReply **replies = calloc(2 * n + 1, sizeof *replies);
    int done = buf && dkeys && lens && idx && marks && replies;
    unsigned char *p = buf;
    for (size_t i = from; done && i < to; i++) {
        codes[i] = tc__l2i_check_key(l2, keys[i].data, keys[i].len);
        if (codes[i] != 0)
            continue;
        marks[m] = 0;
        if (!l2->plain && !tc__marks_judge(l2->marks, keys[i].data, keys[i].len, &marks[m]))
            done = 0; /* unknown marks: Redis must be asked, key by key */
        dkeys[m] = p;
        lens[m] = tc__l2i_build_key(l2, 'k', keys[i].data, keys[i].len, p);
        p += lens[m];
        idx[m++] = i;
    }
    if (done && m > 0) {
        int header = !l2->plain && tc__l2_clock_on(&l2->clock);
        l2_gets_t gets = {
            m, dkeys, lens, replies, header, header && tc__l2_clock_due(&l2->clock), 0, 0};
        l2_call_t call = {.kind = CALL_GETS, .gets = &gets};
        int rc = tc__l2i_run(l2, &call);
        if (rc == 0 && gets.with_time) /* first: every value's life is judged by it */
            tc__l2_clock_absorb(&l2->clock, replies[m], gets.sent_ns, gets.clock_gen);
        size_t stride = header ? 1 : 2;
        for (size_t j = 0; j < m; j++) {
            l2_call_t one = {.kind = CALL_GET,
                             .reply = replies[stride * j],
                             .reply2 = header ? NULL : replies[2 * j + 1],
                             .no_pttl = header,
                             .local_mark_known = !l2->plain,
                             .local_mark = marks[j]};
            codes[idx[j]] = rc != 0 ? rc : tc__l2i_get_result(l2, &one, &out[idx[j]]);
            tc__l2i_free_reply(&one.reply);
            tc__l2i_free_reply(&one.reply2);
        }
        if (header && gets.with_time)
            tc__l2i_free_reply(&replies[m]);
        tc__l2i_finish(l2, &call, rc);
        if (rc != 0 && *failure == 0)
            *failure = rc;
    }
    free(buf);
    free(dkeys);
    free(lens);
    free(idx);
    free(marks);
    free(replies);
    return done;
}

int tc__l2_get_many(tc__l2_t *l2, const tc_buf_t *keys, size_t n, tc__l2_value_t *out,
                    int *codes) {
    memset(out, 0, n * sizeof *out);
    get_ctx_t g = {keys, out};
    static const many_ops_t ops = {get_build, get_parse};
    int failure = 0;
    for (size_t from = 0; from < n; from += TC__L2_PIPE_MAX) {
        size_t to = n - from > TC__L2_PIPE_MAX ? from + TC__L2_PIPE_MAX : n;
        if (get_lean(l2, keys, from, to, out, codes, &failure))
            continue;
        int rc = run_chunk(l2, from, to, &ops, &g, codes);
        if (rc != 0 && failure == 0)
            failure = rc;
    }
    return failure;
}

/* ---- put ---- */

typedef struct put_ctx {
    const tc__l2_write_t *w;
    uint64_t *versions;
    unsigned char mhead[TC__MSG_HEAD_LEN];
} put_ctx_t;

static int put_build(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call, many_item_t *it) {
    put_ctx_t *p = ctx;
    const tc__l2_write_t *w = &p->w[i];
    int rc = tc__l2i_check_value(w->value, w->vlen);
    if (rc != 0)
        return rc;
    if (l2->plain) {
        rc = tc__l2i_check_key(l2, w->key, w->klen);
        if (rc == 0)
            tc__l2i_build_plain_set(call, w->key, w->klen, w->value, w->vlen, w->ttl_ms,
                                    it->num);
        return rc;
    }
    rc = parts_for(l2, w->key, w->klen, it);
    return rc ? rc : tc__l2i_build_put(l2, call, &it->k, &it->va, w, p->mhead);
}

static int put_parse(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call) {
    put_ctx_t *p = ctx;
    if (l2->plain)
        return tc__l2i_status_result(call);
    return tc__l2i_version_reply(l2, call->reply, &p->versions[i]);
}

int tc__l2_put_many(tc__l2_t *l2, const tc__l2_write_t *w, size_t n, uint64_t *versions,
                    int *codes) {
    put_ctx_t p = {.w = w, .versions = versions};
    tc__msg_head(TC__MSG_OP_WRITE, p.mhead);
    static const many_ops_t ops = {put_build, put_parse};
    return run_many(l2, n, &ops, &p, codes);
}

/* ---- del ---- */

typedef struct del_ctx {
    const tc_buf_t *keys;
    uint64_t *versions;
    unsigned char mhead[TC__MSG_HEAD_LEN];
} del_ctx_t;

static int del_build(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call, many_item_t *it) {
    del_ctx_t *d = ctx;
    int rc = tc__l2i_check_key(l2, d->keys[i].data, d->keys[i].len);
    if (rc != 0)
        return rc;
    if (l2->plain) {
        memset(call, 0, sizeof *call);
        call->kind = CALL_PING;
        tc__l2i_push(call, "DEL", 3);
        tc__l2i_push(call, d->keys[i].data, d->keys[i].len);
        return 0;
    }
    rc = parts_for(l2, d->keys[i].data, d->keys[i].len, it);
    if (rc == 0)
        tc__l2i_build_del(l2, call, &it->k, d->mhead);
    return rc;
}

static int del_parse(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call) {
    del_ctx_t *d = ctx;
    if (l2->plain)
        return tc__l2i_status_result(call);
    return tc__l2i_version_reply(l2, call->reply, &d->versions[i]);
}

int tc__l2_del_many(tc__l2_t *l2, const tc_buf_t *keys, size_t n, uint64_t *versions,
                    int *codes) {
    del_ctx_t d = {.keys = keys, .versions = versions};
    tc__msg_head(TC__MSG_OP_DELETE, d.mhead);
    static const many_ops_t ops = {del_build, del_parse};
    return run_many(l2, n, &ops, &d, codes);
}

/* ---- lock / unlock ---- */

typedef struct lock_ctx {
    tc__l2_lock_req_t *reqs;
    char ttl[16];
    unsigned char fhead[TC__MSG_HEAD_LEN];
} lock_ctx_t;

static int lock_build(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call, many_item_t *it) {
    lock_ctx_t *l = ctx;
    tc__l2_lock_req_t *r = &l->reqs[i];
    int rc = parts_for(l2, r->key, r->klen, it);
    if (rc != 0)
        return rc;
    if (r->skip_version)
        tc__put_be64(it->expected, *r->skip_version);
    tc__l2i_build_lock(l2, call, &it->k, r->token, r->tlen, l->ttl,
                       r->skip_version ? it->expected : NULL);
    return 0;
}

static int lock_parse(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call) {
    lock_ctx_t *l = ctx;
    tc__l2_lock_req_t *r = &l->reqs[i];
    return tc__l2i_lock_result(l2, call, &r->pttl, &r->mark, &r->existing);
}

int tc__l2_lock_many(tc__l2_t *l2, tc__l2_lock_req_t *reqs, size_t n, uint32_t ttl_ms,
                     int *codes) {
    lock_ctx_t l = {.reqs = reqs};
    for (size_t i = 0; i < n; i++)
        memset(&reqs[i].existing, 0, sizeof reqs[i].existing);
    snprintf(l.ttl, sizeof l.ttl, "%u", (unsigned)ttl_ms);
    static const many_ops_t ops = {lock_build, lock_parse};
    return run_many(l2, n, &ops, &l, codes);
}

static int unlock_build(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call, many_item_t *it) {
    lock_ctx_t *l = ctx;
    const tc__l2_lock_req_t *r = &l->reqs[i];
    int rc = parts_for(l2, r->key, r->klen, it);
    if (rc == 0)
        tc__l2i_build_unlock(l2, call, &it->k, r->token, r->tlen, l->fhead);
    return rc;
}

static int unlock_parse(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call) {
    (void)l2;
    (void)ctx;
    (void)i;
    return call->reply->type == REDIS_REPLY_ERROR ? TC_EREDIS : 0;
}

int tc__l2_unlock_many(tc__l2_t *l2, const tc__l2_lock_req_t *reqs, size_t n, int *codes) {
    lock_ctx_t l = {.reqs = (tc__l2_lock_req_t *)reqs};
    tc__msg_head(TC__MSG_OP_FILL, l.fhead);
    static const many_ops_t ops = {unlock_build, unlock_parse};
    return run_many(l2, n, &ops, &l, codes);
}

/* ---- fill ---- */

typedef struct fill_ctx {
    const tc__l2_write_t *w;
    uint64_t *versions;
    tc__l2_value_t *existing;
    unsigned char whead[TC__MSG_HEAD_LEN], fhead[TC__MSG_HEAD_LEN];
} fill_ctx_t;

static int fill_build(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call, many_item_t *it) {
    fill_ctx_t *f = ctx;
    const tc__l2_write_t *w = &f->w[i];
    int rc = tc__l2i_check_value(w->value, w->vlen);
    if (rc == 0 && l2->plain) {
        rc = tc__l2i_check_key(l2, w->key, w->klen);
        if (rc == 0)
            tc__l2i_build_plain_fill(call, w, it->num);
        return rc;
    }
    if (rc == 0)
        rc = parts_for(l2, w->key, w->klen, it);
    return rc ? rc
              : tc__l2i_build_fill(l2, call, &it->k, &it->va, w, f->whead, f->fhead,
                                   it->expected);
}

static int fill_parse(tc__l2_t *l2, void *ctx, size_t i, l2_call_t *call) {
    fill_ctx_t *f = ctx;
    if (l2->plain)
        return tc__l2i_plain_fill_result(l2, call, &f->versions[i], &f->existing[i]);
    return tc__l2i_fill_result(l2, call, &f->versions[i], &f->existing[i]);
}

int tc__l2_fill_many(tc__l2_t *l2, const tc__l2_write_t *w, size_t n, uint64_t *versions,
                     tc__l2_value_t *existing, int *codes) {
    memset(existing, 0, n * sizeof *existing);
    fill_ctx_t f = {.w = w, .versions = versions, .existing = existing};
    tc__msg_head(TC__MSG_OP_WRITE, f.whead);
    tc__msg_head(TC__MSG_OP_FILL, f.fhead);
    static const many_ops_t ops = {fill_build, fill_parse};
    return run_many(l2, n, &ops, &f, codes);
}

/* ---- invalidating many keys --------------------------------------------------------- */

/* argv/lens/cap: room for a script with many keys, or NULL for the call's own. */
static void start_script_in(l2_call_t *call, tc__script_t script, const char **argv,
                            size_t *lens, int cap) {
    memset(call, 0, sizeof *call);
    if (argv)
        tc__l2i_use_args(call, argv, lens, cap);
    call->kind = CALL_SCRIPT;
    call->script = script;
    call->argc = 2;
    tc__l2i_push(call, "", 0); /* the KEYS count, set once the keys are pushed */
}

static void start_script(l2_call_t *call, tc__script_t script) {
    start_script_in(call, script, NULL, NULL, 0);
}

/* Run a script call; 0 with call->reply an array, or an error. */
static int run_script(tc__l2_t *l2, l2_call_t *call) {
    int rc = tc__l2i_run(l2, call);
    if (rc == 0 && call->reply->type == REDIS_REPLY_ERROR)
        rc = TC_EREDIS;
    else if (rc == 0 && (call->reply->type != REDIS_REPLY_ARRAY || call->reply->elements < 2))
        rc = TC_EPROTO;
    return rc;
}

/* v0: the next version, where this invalidation begins. */
static int begin_version(tc__l2_t *l2, uint64_t *v0) {
    l2_call_t call;
    start_script(&call, TC__SCRIPT_VERSION);
    tc__l2i_push(&call, l2->vkey, l2->vkey_len);
    tc__l2i_set_numkeys(&call, call.argc);
    int rc = run_script(l2, &call);
    if (rc == 0 &&
        (!tc__l2i_is_int(call.reply->element[0]) || call.reply->element[0]->integer <= 0))
        rc = TC_EPROTO;
    if (rc == 0) {
        *v0 = (uint64_t)call.reply->element[0]->integer;
        tc__l2i_note_healed(l2, call.reply->element[1]);
    }
    tc__l2i_free_reply(&call.reply);
    return rc;
}

/* A step's reply {..., deleted, healed, version, entries}: hand the entries to fn. */
static int step_result(tc__l2_t *l2, const redisReply *r, size_t at, tc__l2_removed_fn fn,
                       void *arg, size_t *removed) {
    if (r->elements < at + 4)
        return TC_EPROTO;
    const redisReply *del = r->element[at], *v = r->element[at + 2], *e = r->element[at + 3];
    if (!tc__l2i_is_int(del) || !tc__l2i_is_int(v))
        return TC_EPROTO;
    tc__l2i_note_healed(l2, r->element[at + 1]);
    if (del->integer > 0) {
        *removed += (size_t)del->integer;
        tc__count(&l2->published);
        if (fn && e->type == REDIS_REPLY_STRING)
            fn(arg, (uint64_t)v->integer, (const unsigned char *)e->str, e->len);
    }
    return 0;
}

/* The arguments every many-keys announcement shares. */
typedef struct announce_args {
    char v0[24];
    unsigned char head[TC__MSG_HEAD_LEN];
} announce_args_t;

/* The members the tag steps left because a write during the call re-tagged them (score
 * above v0): their keys hold a newer value in Redis, but this process's L1 may still hold
 * one written before the call, and their own messages may arrive after the call returns.
 * Handed to fn at UINT64_MAX (whatever the copy's version, it goes), TAG_STEP at a time. */
static int hand_over_retagged(tc__l2_t *l2, const unsigned char *tkey, size_t tklen,
                              const char *v0, tc__l2_removed_fn fn, void *arg) {
    char min[32], step[16];
    snprintf(min, sizeof min, "(%s", v0);
    snprintf(step, sizeof step, "%d", TAG_STEP);
    int rc = 0;
    for (long offset = 0; rc == 0; offset += TAG_STEP) {
        char off[24];
        snprintf(off, sizeof off, "%ld", offset);
        l2_call_t call = {.kind = CALL_PING};
        const char *parts[] = {"ZRANGEBYSCORE", NULL, min, "+inf", "LIMIT", off, step};
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            if (i == 1)
                tc__l2i_push(&call, tkey, tklen);
            else
                tc__l2i_push(&call, parts[i], strlen(parts[i]));
        }
        rc = tc__l2i_run(l2, &call);
        const redisReply *r = rc == 0 ? call.reply : NULL;
        if (rc == 0 && r->type == REDIS_REPLY_ERROR)
            rc = TC_EREDIS;
        else if (rc == 0 && r->type != REDIS_REPLY_ARRAY)
            rc = TC_EPROTO;
        size_t n = rc == 0 ? r->elements : 0, len = 0;
        for (size_t i = 0; i < n; i++)
            len += r->element[i]->type == REDIS_REPLY_STRING && r->element[i]->len <= 0xffff
                       ? 2 + r->element[i]->len
                       : 0;
        unsigned char *entries = len ? malloc(len) : NULL;
        if (len && !entries)
            rc = TC_ENOMEM;
        for (size_t i = 0, at = 0; entries && i < n; i++) {
            const redisReply *m = r->element[i];
            if (m->type != REDIS_REPLY_STRING || m->len > 0xffff)
                continue;
            entries[at] = (unsigned char)(m->len >> 8);
            entries[at + 1] = (unsigned char)m->len;
            memcpy(entries + at + 2, m->str, m->len);
            at += 2 + m->len;
        }
        if (entries)
            fn(arg, UINT64_MAX, entries, len);
        free(entries);
        tc__l2i_free_reply(&call.reply);
        rc = tc__l2i_finish(l2, &call, rc);
        if (n < TAG_STEP)
            break;
    }
    return rc;
}

int tc__l2_invalidate_tag(tc__l2_t *l2, const void *tag, size_t tlen, tc__l2_removed_fn fn,
                          void *arg, size_t *removed) {
    *removed = 0;
    if (!l2 || !tag || tlen == 0 || tlen > TC_MAX_TAG_LEN)
        return TC_EINVAL;
    uint64_t v0;
    int rc = begin_version(l2, &v0);
    if (rc != 0)
        return tc__l2i_finish(l2, NULL, rc);
    size_t plen = tc__l2i_key_room(l2, 0);
    unsigned char *buf = malloc(3 * plen + tlen);
    if (!buf)
        return TC_ENOMEM;
    unsigned char *tkey = buf, *dprefix = buf + plen + tlen, *lprefix = dprefix + plen;
    size_t tklen = tc__l2i_build_key(l2, 't', tag, tlen, tkey);
    tc__l2i_build_key(l2, 'k', "", 0, dprefix);
    tc__l2i_build_key(l2, 'l', "", 0, lprefix);
    announce_args_t a;
    snprintf(a.v0, sizeof a.v0, "%llu", (unsigned long long)v0);
    tc__msg_head(TC__MSG_OP_MANY, a.head);
    char step[8];
    snprintf(step, sizeof step, "%d", TAG_STEP);
    for (;;) {
        l2_call_t call;
        start_script(&call, TC__SCRIPT_TAG_DEL);
        tc__l2i_push(&call, tkey, tklen);
        tc__l2i_push(&call, l2->vkey, l2->vkey_len);
        tc__l2i_push(&call, l2->logkey, l2->logkey_len);
        tc__l2i_set_numkeys(&call, call.argc);
        tc__l2i_push(&call, a.v0, strlen(a.v0));
        tc__l2i_push(&call, step, strlen(step));
        tc__l2i_push(&call, dprefix, plen);
        tc__l2i_push(&call, lprefix, plen);
        tc__l2i_push(&call, l2->channel, l2->channel_len);
        tc__l2i_push(&call, a.head, sizeof a.head);
        tc__l2i_push(&call, l2->origin, sizeof l2->origin);
        tc__l2i_push_log_maxlen(&call, l2);
        rc = run_script(l2, &call);
        long long seen = 0;
        if (rc == 0 && tc__l2i_is_int(call.reply->element[0]))
            seen = call.reply->element[0]->integer;
        if (rc == 0)
            rc = step_result(l2, call.reply, 1, fn, arg, removed);
        tc__l2i_free_reply(&call.reply);
        tc__l2i_finish(l2, &call, rc);
        if (rc != 0 || seen < TAG_STEP)
            break;
    }
    if (rc == 0 && fn)
        rc = hand_over_retagged(l2, tkey, tklen, a.v0, fn, arg);
    free(buf);
    return rc;
}

/* pattern = escaped(<prefix>) "[kl]:" escaped(prefix) "*" (plain: escaped(prefix) "*"):
 * glob's special bytes (* ? [ ] \) in either are escaped. Returns its length. */
static size_t glob_escape(const unsigned char *s, size_t n, unsigned char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '*' || s[i] == '?' || s[i] == '[' || s[i] == ']' || s[i] == '\\')
            out[o++] = '\\';
        out[o++] = s[i];
    }
    return o;
}

static unsigned char *scan_pattern(const tc__l2_t *l2, const void *prefix, size_t plen,
                                   size_t *len) {
    unsigned char *p = malloc(2 * (l2->prefix_len + plen) + 8);
    if (!p)
        return NULL;
    size_t n = 0;
    if (!l2->plain) {
        n = glob_escape((const unsigned char *)l2->key_prefix, l2->prefix_len, p);
        memcpy(p + n, "[kl]:", 5);
        n += 5;
    }
    n += glob_escape(prefix, plen, p + n);
    p[n++] = '*';
    *len = n;
    return p;
}

/* Delete found keys [from, to) of a SCAN reply: the prefix-delete script, or for plain
 * keys one DEL (tracking tells every process). */
static int delete_found(tc__l2_t *l2, const redisReply *keys, size_t from, size_t to,
                        const announce_args_t *a, tc__l2_removed_fn fn, void *arg,
                        size_t *removed) {
    int cap = (int)(to - from) + 16;
    const char **argv = malloc((size_t)cap * sizeof *argv);
    size_t *lens = malloc((size_t)cap * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return TC_ENOMEM;
    }
    l2_call_t call;
    char plen[16];
    snprintf(plen, sizeof plen, "%zu", l2->prefix_len);
    if (l2->plain) {
        memset(&call, 0, sizeof call);
        tc__l2i_use_args(&call, argv, lens, cap);
        call.kind = CALL_PING;
        tc__l2i_push(&call, "DEL", 3);
    } else {
        start_script_in(&call, TC__SCRIPT_PREFIX_DEL, argv, lens, cap);
        tc__l2i_push(&call, l2->vkey, l2->vkey_len);
        tc__l2i_push(&call, l2->logkey, l2->logkey_len);
    }
    for (size_t i = from; i < to; i++)
        tc__l2i_push(&call, keys->element[i]->str, keys->element[i]->len);
    if (!l2->plain) {
        tc__l2i_set_numkeys(&call, call.argc);
        tc__l2i_push(&call, a->v0, strlen(a->v0));
        tc__l2i_push(&call, plen, strlen(plen));
        tc__l2i_push(&call, l2->channel, l2->channel_len);
        tc__l2i_push(&call, a->head, sizeof a->head);
        tc__l2i_push(&call, l2->origin, sizeof l2->origin);
        tc__l2i_push_log_maxlen(&call, l2);
    }
    int rc;
    if (l2->plain) {
        rc = tc__l2i_run(l2, &call);
        if (rc == 0 && (rc = tc__l2i_status_result(&call)) == 0 &&
            call.reply->type == REDIS_REPLY_INTEGER)
            *removed += (size_t)call.reply->integer;
    } else {
        rc = run_script(l2, &call);
        if (rc == 0)
            rc = step_result(l2, call.reply, 0, fn, arg, removed);
    }
    tc__l2i_free_reply(&call.reply);
    rc = tc__l2i_finish(l2, &call, rc);
    free(argv);
    free(lens);
    return rc;
}

/* One SCAN step: *cursor advances ("0" at the end); the keys found are deleted. */
static int scan_step(tc__l2_t *l2, char cursor[32], const unsigned char *pattern, size_t patlen,
                     const announce_args_t *a, tc__l2_removed_fn fn, void *arg,
                     size_t *removed) {
    l2_call_t call = {.kind = CALL_PING};
    tc__l2i_push(&call, "SCAN", 4);
    tc__l2i_push(&call, cursor, strlen(cursor));
    tc__l2i_push(&call, "MATCH", 5);
    tc__l2i_push(&call, pattern, patlen);
    tc__l2i_push(&call, "COUNT", 5);
    tc__l2i_push(&call, SCAN_COUNT, strlen(SCAN_COUNT));
    int rc = tc__l2i_run(l2, &call);
    const redisReply *r = rc == 0 ? call.reply : NULL;
    if (rc == 0 && r->type == REDIS_REPLY_ERROR)
        rc = TC_EREDIS;
    else if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                         r->element[0]->type != REDIS_REPLY_STRING ||
                         r->element[0]->len >= 32 || r->element[1]->type != REDIS_REPLY_ARRAY))
        rc = TC_EPROTO;
    if (rc == 0) {
        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = '\0';
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements && rc == 0; i += PREFIX_STEP) {
            size_t to = keys->elements - i > PREFIX_STEP ? i + PREFIX_STEP : keys->elements;
            rc = delete_found(l2, keys, i, to, a, fn, arg, removed);
        }
    }
    tc__l2i_free_reply(&call.reply);
    return tc__l2i_finish(l2, &call, rc);
}

/* ---- a cluster's prefix invalidation ----
 * A cluster's keys cannot meet in one script, and SCAN sees one node: each master is
 * SCANned for <prefix>"{"*"}"[kl]":"<user prefix>*, every name found is checked exactly
 * (the glob's "{*}" could reach into a user key that holds "}k:"), and each key found is
 * deleted by the versioned, announcing delete (tc__l2_del_many: one pipeline per master),
 * its lock with it. Keys that a reshard moves between two SCANs may escape one call. */

#define CLUSTER_MAX_MASTERS 1024u

/* The user key of a name <prefix>"{"<digits>"}"[kl]":"<key> whose key starts with the user
 * prefix up, or NULL. *is_data: a data key ('k'), not a lock. */
static const char *cluster_user_key(const tc__l2_t *l2, const redisReply *name, const void *up,
                                    size_t uplen, size_t *klen, int *is_data) {
    const char *s = name->str;
    size_t n = name->len, at = l2->prefix_len;
    if (name->type != REDIS_REPLY_STRING || n < at + 5 || memcmp(s, l2->key_prefix, at) != 0 ||
        s[at] != '{')
        return NULL;
    size_t digits = 0;
    while (at + 1 + digits < n && s[at + 1 + digits] >= '0' && s[at + 1 + digits] <= '9')
        digits++;
    at += 1 + digits;
    if (digits == 0 || digits > TC__SLOT_NAME_MAX || n < at + 3 || s[at] != '}' ||
        (s[at + 1] != 'k' && s[at + 1] != 'l') || s[at + 2] != ':')
        return NULL;
    *is_data = s[at + 1] == 'k';
    at += 3;
    if (n - at < uplen || memcmp(s + at, up, uplen) != 0)
        return NULL;
    *klen = n - at;
    return s + at;
}

/* One SCAN step on master: the keys under the user prefix deleted. */
static int cluster_scan_step(tc__l2_t *l2, const void *master, char cursor[32],
                             const unsigned char *pattern, size_t patlen, const void *up,
                             size_t uplen, size_t *removed) {
    l2_call_t call = {.kind = CALL_PING};
    tc__l2i_push(&call, "SCAN", 4);
    tc__l2i_push(&call, cursor, strlen(cursor));
    tc__l2i_push(&call, "MATCH", 5);
    tc__l2i_push(&call, pattern, patlen);
    tc__l2i_push(&call, "COUNT", 5);
    tc__l2i_push(&call, SCAN_COUNT, strlen(SCAN_COUNT));
    int rc = tc__l2i_run_at(l2, master, &call);
    const redisReply *r = rc == 0 ? call.reply : NULL;
    if (rc == 0 && r->type == REDIS_REPLY_ERROR)
        rc = TC_EREDIS;
    else if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                         r->element[0]->type != REDIS_REPLY_STRING ||
                         r->element[0]->len >= 32 || r->element[1]->type != REDIS_REPLY_ARRAY))
        rc = TC_EPROTO;
    int scan_rc = rc; /* the deletes note their own failures */
    size_t n = rc == 0 ? r->element[1]->elements : 0;
    tc_buf_t *keys = n ? malloc(n * sizeof *keys) : NULL;
    unsigned char *data = n ? malloc(n) : NULL;
    uint64_t *versions = n ? malloc(n * sizeof *versions) : NULL;
    int *codes = n ? malloc(n * sizeof *codes) : NULL;
    if (n && (!keys || !data || !versions || !codes))
        rc = TC_ENOMEM;
    size_t m = 0;
    if (rc == 0) {
        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = '\0';
        for (size_t i = 0; i < n; i++) {
            int is_data = 0;
            size_t klen = 0;
            const char *k =
                cluster_user_key(l2, r->element[1]->element[i], up, uplen, &klen, &is_data);
            if (k && klen > 0 && klen <= TC_MAX_KEY_LEN) {
                data[m] = (unsigned char)is_data;
                keys[m++] = (tc_buf_t){k, klen};
            }
        }
    }
    if (rc == 0 && m > 0)
        rc = tc__l2_del_many(l2, keys, m, versions, codes);
    for (size_t i = 0; rc == 0 && i < m; i++)
        *removed += data[i] && codes[i] == 0;
    free(keys);
    free(data);
    free(versions);
    free(codes);
    tc__l2i_free_reply(&call.reply);
    return scan_rc ? tc__l2i_finish(l2, &call, scan_rc) : rc;
}

static int cluster_invalidate_prefix(tc__l2_t *l2, const void *prefix, size_t plen,
                                     size_t *removed) {
    const void **masters = malloc(CLUSTER_MAX_MASTERS * sizeof *masters);
    unsigned char *pattern = malloc(2 * (l2->prefix_len + plen) + 16);
    int rc = masters && pattern ? 0 : TC_ENOMEM;
    size_t nm = rc == 0 ? tc__cluster_masters(l2->cluster, masters, CLUSTER_MAX_MASTERS) : 0;
    tc_error_t why = {0};
    if (rc == 0 && nm == 0 && tc__cluster_refresh(l2->cluster, &why) == 0) /* no map yet */
        nm = tc__cluster_masters(l2->cluster, masters, CLUSTER_MAX_MASTERS);
    if (rc == 0 && nm == 0)
        rc = tc__note(TC_EUNAVAILABLE, "no master of the cluster is known: %s",
                      why.msg[0] ? why.msg : "no map read yet");
    if (rc == 0 && nm > CLUSTER_MAX_MASTERS) /* Redis Cluster's own limit is 1000 nodes */
        rc = tc__note(TC_EPROTO, "the cluster has %zu masters: more than %u", nm,
                      CLUSTER_MAX_MASTERS);
    size_t patlen = 0;
    if (rc == 0) {
        patlen = glob_escape((const unsigned char *)l2->key_prefix, l2->prefix_len, pattern);
        memcpy(pattern + patlen, "{*}[kl]:", 8);
        patlen += 8;
        patlen += glob_escape(prefix, plen, pattern + patlen);
        pattern[patlen++] = '*';
    }
    for (size_t i = 0; i < nm && rc == 0; i++) {
        char cursor[32] = "0";
        do {
            rc = cluster_scan_step(l2, masters[i], cursor, pattern, patlen, prefix, plen,
                                   removed);
        } while (rc == 0 && strcmp(cursor, "0") != 0);
    }
    free(masters);
    free(pattern);
    return rc;
}

int tc__l2_invalidate_prefix(tc__l2_t *l2, const void *prefix, size_t plen,
                             tc__l2_removed_fn fn, void *arg, size_t *removed) {
    *removed = 0;
    if (!l2 || !prefix)
        return TC_EINVAL;
    if (l2->cluster) /* each key's own delete announces it: fn has nothing to add */
        return cluster_invalidate_prefix(l2, prefix, plen, removed);
    announce_args_t a = {.v0 = "0"};
    tc__msg_head(TC__MSG_OP_MANY, a.head);
    if (!l2->plain) {
        uint64_t v0;
        int rc = begin_version(l2, &v0);
        if (rc != 0)
            return tc__l2i_finish(l2, NULL, rc);
        snprintf(a.v0, sizeof a.v0, "%llu", (unsigned long long)v0);
    }
    size_t patlen;
    unsigned char *pattern = scan_pattern(l2, prefix, plen, &patlen);
    if (!pattern)
        return TC_ENOMEM;
    char cursor[32] = "0";
    int rc;
    do {
        rc = scan_step(l2, cursor, pattern, patlen, &a, fn, arg, removed);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    free(pattern);
    return rc;
}

int tc__l2_mark(tc__l2_t *l2, const void *ns, size_t nslen, uint64_t *version) {
    if (!l2 || l2->plain || (ns && (nslen == 0 || nslen >= TC_MAX_KEY_LEN || l2->ns_sep < 0)))
        return TC_EINVAL;
    size_t plen = tc__l2i_key_room(l2, 0);
    scratch_t s;
    unsigned char *buf = tc__l2i_scratch_get(&s, 2 * (plen + nslen + 1) + TC__MSG_ORIGIN_LEN);
    if (!buf)
        return TC_ENOMEM;
    const unsigned char *mkey = (const unsigned char *)l2->clearkey;
    size_t mlen = l2->clearkey_len;
    unsigned char *tail = buf + plen + nslen + 1;
    memcpy(tail, l2->origin, TC__MSG_ORIGIN_LEN);
    size_t tlen = TC__MSG_ORIGIN_LEN;
    if (ns) { /* <prefix>"n:"<ns><sep>, and the message carries <ns><sep> */
        memcpy(tail + tlen, ns, nslen);
        tail[tlen + nslen] = (unsigned char)l2->ns_sep;
        tlen += nslen + 1;
        mlen = tc__l2i_build_key(l2, 'n', tail + TC__MSG_ORIGIN_LEN, nslen + 1, buf);
        mkey = buf;
    }
    unsigned char head[TC__MSG_HEAD_LEN];
    tc__msg_head(ns ? TC__MSG_OP_NS : TC__MSG_OP_CLEAR, head);
    l2_call_t call;
    start_script(&call, TC__SCRIPT_MARK);
    tc__l2i_push(&call, mkey, mlen);
    tc__l2i_push(&call, l2->vkey, l2->vkey_len);
    tc__l2i_push(&call, l2->logkey, l2->logkey_len);
    tc__l2i_set_numkeys(&call, call.argc);
    tc__l2i_push(&call, l2->channel, l2->channel_len);
    tc__l2i_push(&call, head, sizeof head);
    tc__l2i_push(&call, tail, tlen);
    tc__l2i_push_log_maxlen(&call, l2);
    int rc = run_script(l2, &call);
    if (rc == 0)
        rc = tc__l2i_version_reply(l2, call.reply, version);
    tc__l2i_free_reply(&call.reply);
    tc__l2i_scratch_put(&s);
    return tc__l2i_finish(l2, &call, rc);
}

/* ---- the local copy of the marks ---------------------------------------------------- */

/* A mark's value (a decimal version); 0 when it is not one. */
static uint64_t mark_value(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(r->str[i] - '0');
    }
    return v;
}

/* One plain command's reply (the caller frees it), or an error. */
static int run_plain(tc__l2_t *l2, l2_call_t *call) {
    int rc = tc__l2i_run(l2, call);
    if (rc == 0 && call->reply->type == REDIS_REPLY_ERROR)
        rc = TC_EREDIS;
    return tc__l2i_finish(l2, call, rc);
}

/* The namespace marks one SCAN step found: MGET them and note each. */
static int note_found_marks(tc__l2_t *l2, const redisReply *keys) {
    size_t n = keys->elements;
    const char **argv = malloc((n + 1) * sizeof *argv);
    size_t *lens = malloc((n + 1) * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return TC_ENOMEM;
    }
    l2_call_t call;
    memset(&call, 0, sizeof call);
    call.kind = CALL_PING;
    tc__l2i_use_args(&call, argv, lens, (int)n + 1);
    tc__l2i_push(&call, "MGET", 4);
    for (size_t i = 0; i < n; i++)
        tc__l2i_push(&call, keys->element[i]->str, keys->element[i]->len);
    int rc = run_plain(l2, &call);
    size_t skip = l2->prefix_len + 2; /* <prefix>"n:" */
    if (rc == 0 && (call.reply->type != REDIS_REPLY_ARRAY || call.reply->elements != n))
        rc = TC_EPROTO;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const redisReply *k = keys->element[i];
        uint64_t v = mark_value(call.reply->element[i]);
        if (v && k->len > skip)
            tc__marks_note(l2->marks, k->str + skip, k->len - skip, v);
    }
    tc__l2i_free_reply(&call.reply);
    free(argv);
    free(lens);
    return rc;
}

int tc__l2_load_marks(tc__l2_t *l2) {
    if (!l2 || !l2->marks || l2->plain)
        return 0;
    uint64_t gen = tc__marks_generation(l2->marks);
    l2_call_t call = {.kind = CALL_PING};
    tc__l2i_push(&call, "GET", 3);
    tc__l2i_push(&call, l2->clearkey, l2->clearkey_len);
    int rc = run_plain(l2, &call);
    if (rc == 0)
        tc__marks_note(l2->marks, NULL, 0, mark_value(call.reply));
    tc__l2i_free_reply(&call.reply);
    if (rc != 0 || l2->ns_sep < 0) {
        if (rc == 0)
            tc__marks_loaded(l2->marks, gen);
        return rc;
    }
    unsigned char *pattern = malloc(2 * l2->prefix_len + 4);
    if (!pattern)
        return TC_ENOMEM;
    size_t patlen = glob_escape((const unsigned char *)l2->key_prefix, l2->prefix_len, pattern);
    memcpy(pattern + patlen, "n:*", 3);
    patlen += 3;
    char cursor[32] = "0";
    size_t found = 0;
    do {
        l2_call_t scan = {.kind = CALL_PING};
        tc__l2i_push(&scan, "SCAN", 4);
        tc__l2i_push(&scan, cursor, strlen(cursor));
        tc__l2i_push(&scan, "MATCH", 5);
        tc__l2i_push(&scan, pattern, patlen);
        tc__l2i_push(&scan, "COUNT", 5);
        tc__l2i_push(&scan, SCAN_COUNT, strlen(SCAN_COUNT));
        rc = run_plain(l2, &scan);
        const redisReply *r = scan.reply;
        if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= 32 ||
                        r->element[1]->type != REDIS_REPLY_ARRAY))
            rc = TC_EPROTO;
        if (rc == 0) {
            memcpy(cursor, r->element[0]->str, r->element[0]->len);
            cursor[r->element[0]->len] = '\0';
            found += r->element[1]->elements;
            if (r->element[1]->elements > 0 && found <= TC__MARKS_MAX)
                rc = note_found_marks(l2, r->element[1]);
        }
        tc__l2i_free_reply(&scan.reply);
    } while (rc == 0 && found <= TC__MARKS_MAX && strcmp(cursor, "0") != 0);
    free(pattern);
    if (rc == 0 && found <= TC__MARKS_MAX)
        tc__marks_loaded(l2->marks, gen);
    return rc;
}
