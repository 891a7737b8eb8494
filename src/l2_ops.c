/*
 * l2_ops.c - the Redis tier's single-key operations: how each call is built (its keys,
 * marks, tags and arguments, in the order scripts.h lists them) and how its replies are
 * read, and the operations themselves (get, put, del, fill, lock, unlock, evict, extend,
 * plain keys). The builders and readers are shared with the bulk operations (l2_many.c,
 * l2_queue.c), which run the very same calls in pipelines.
 *
 * Reads never take more than they can use: GETRANGE 0..limit instead of GET, and the
 * scripts STRLEN before they GET, so a 256 MiB string someone else stored under the prefix
 * is refused (TC_ETOOBIG) after reading at most max_value_bytes + 21 bytes. A stored value
 * whose version no counter can have produced (0, 2^53 and up, or far ahead of this host's
 * clock) is refused as not ours and counted: served, it could pin an L1 entry. A value a
 * clear or namespace bump hides (an older version than the key's newest mark) reads as
 * absent, judged by the local copy of the marks when it is current (marks.h), else by the
 * marks read in the same round trip. A read learns how long its key lives from the value's
 * header (the write script puts the key's expiry there: l2_clock.h) where the cache needs no
 * more, else from a PTTL in the same round trip, or, for a header that does not say, in a
 * round trip of its own.
 */
#include "l2_int.h"

#include "clock.h"
#include "errors.h"
#include "log.h"
#include "msg.h"
#include "scripts.h"
#include "slot.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- keys and arguments ------------------------------------------------------------------ */

unsigned char *tc__l2i_scratch_get(scratch_t *s, size_t n) {
    s->p = n <= sizeof s->stack ? s->stack : malloc(n);
    return s->p;
}

void tc__l2i_scratch_put(scratch_t *s) {
    if (s->p != s->stack)
        free(s->p);
}

int tc__l2i_check_key(const tc__l2_t *l2, const void *key, size_t klen) {
    if (!l2)
        return TC_EINVAL;
    if (klen == 0 || klen > TC_MAX_KEY_LEN)
        return TC_EKEYLEN;
    return key ? 0 : TC_EINVAL;
}

int tc__l2i_check_value(const void *value, size_t vlen) {
    if (!value && vlen > 0)
        return TC_EINVAL;
    return vlen > L2_MAX_VALUE ? TC_ETOOBIG : 0;
}

/* "{"<slot's name>"}" into buf (at most TC__SLOT_NAME_MAX + 2 bytes). Returns its length. */
static size_t slot_tag(unsigned slot, unsigned char *buf) {
    size_t n;
    const char *name = tc__slot_name(slot, &n);
    buf[0] = '{';
    memcpy(buf + 1, name, n);
    buf[n + 1] = '}';
    return n + 2;
}

/* <prefix><kind>":"<key> into buf (tc__l2i_key_room bytes): kind 'k' is the data key, 'l'
 * the key's lock (its lease). On a cluster the prefix is followed by "{"<name>"}", the
 * name of the key's slot (slot.h), so the key, its lock and its slot's version counter
 * share a slot whatever the key looks like. Returns the length. */
size_t tc__l2i_build_key(const tc__l2_t *l2, char kind, const void *key, size_t klen,
                         unsigned char *buf) {
    if (l2->plain && kind == 'k') { /* plain keys: the Redis key is the key */
        memcpy(buf, key, klen);
        return klen;
    }
    size_t at = l2->prefix_len;
    memcpy(buf, l2->key_prefix, at);
    if (l2->cluster)
        at += slot_tag(tc__slot_of(key, klen), buf + at);
    buf[at] = (unsigned char)kind;
    buf[at + 1] = ':';
    memcpy(buf + at + 2, key, klen);
    return at + 2 + klen;
}

void tc__l2i_use_args(l2_call_t *call, const char **argv, size_t *lens, int cap) {
    call->argv = argv;
    call->lens = lens;
    call->cap = cap;
}

void tc__l2i_push(l2_call_t *call, const void *p, size_t n) {
    if (!call->argv)
        tc__l2i_use_args(call, call->argv_in, call->lens_in, L2_MAX_ARGS);
    assert(call->argc < call->cap);
    call->argv[call->argc] = p;
    call->lens[call->argc++] = n;
}

/* The namespaces of key: the byte lengths of its prefixes that end just before a separator
 * (the first TC__L2_MAX_NS of them, none empty). Returns how many. */
static size_t namespaces_of(const tc__l2_t *l2, const unsigned char *key, size_t klen,
                            size_t ends[TC__L2_MAX_NS]) {
    size_t n = 0;
    if (l2->ns_sep < 0 || l2->plain)
        return 0;
    for (size_t i = 1; i < klen && n < TC__L2_MAX_NS; i++)
        if (key[i] == (unsigned char)l2->ns_sep)
            ends[n++] = i;
    return n;
}

int tc__l2i_key_parts(const tc__l2_t *l2, const void *key, size_t klen, key_parts_t *k) {
    size_t ends[TC__L2_MAX_NS];
    size_t nns = l2->cluster ? 0 : namespaces_of(l2, key, klen, ends);
    size_t marks_bytes = 0;
    for (size_t i = 0; i < nns; i++)
        marks_bytes += tc__l2i_key_room(l2, ends[i] + 1);
    size_t room = tc__l2i_key_room(l2, klen);
    size_t slot_keys = l2->cluster ? 2 * (l2->prefix_len + l2->key_extra) + 4 : 0;
    unsigned char *buf = tc__l2i_scratch_get(&k->s, 2 * room + TC__MSG_ORIGIN_LEN + klen +
                                                        marks_bytes + slot_keys);
    if (!buf)
        return TC_ENOMEM;
    k->data = buf;
    k->lock = buf + room;
    k->tail = buf + 2 * room;
    k->dlen = tc__l2i_build_key(l2, 'k', key, klen, k->data);
    k->klen2 = tc__l2i_build_key(l2, 'l', key, klen, k->lock);
    k->tlen = tc__msg_tail(l2->origin, key, klen, k->tail);
    unsigned char *m = k->tail + k->tlen;
    k->vkey = (const unsigned char *)l2->vkey;
    k->vkey_len = l2->vkey_len;
    k->logkey = (const unsigned char *)l2->logkey;
    k->logkey_len = l2->logkey_len;
    if (l2->cluster) { /* the slot's counter and log: <prefix>"{"<name>"}v", "...log" */
        size_t at = l2->prefix_len;
        memcpy(m, l2->key_prefix, at);
        at += slot_tag(tc__slot_of(key, klen), m + at);
        memcpy(m + at, "v", 1);
        k->vkey = m;
        k->vkey_len = at + 1;
        m += k->vkey_len;
        memcpy(m, k->vkey, at);
        memcpy(m + at, "log", 3);
        k->logkey = m;
        k->logkey_len = at + 3;
        m += k->logkey_len;
    }
    k->nmarks = 0;
    if (l2->plain || l2->cluster)
        return 0; /* plain values carry no version to judge; a cluster keeps no marks */
    k->mark[0] = (const unsigned char *)l2->clearkey;
    k->mark_len[0] = l2->clearkey_len;
    k->nmarks = 1;
    for (size_t i = 0; i < nns; i++) { /* <prefix>"n:"<namespace><separator> */
        k->mark[k->nmarks] = m;
        k->mark_len[k->nmarks++] = tc__l2i_build_key(l2, 'n', key, ends[i] + 1, m);
        m += k->mark_len[k->nmarks - 1];
    }
    return 0;
}

/* argv[0..1] are filled by exec_script (EVALSHA sha / EVAL body). KEYS: data, version,
 * lock, replay log (the order of every announcing script). */
static void start_write(l2_call_t *call, tc__script_t script, const key_parts_t *k) {
    memset(call, 0, sizeof *call);
    call->kind = CALL_SCRIPT;
    call->script = script;
    call->argc = 2;
    tc__l2i_push(call, "4", 1);
    tc__l2i_push(call, k->data, k->dlen);
    tc__l2i_push(call, k->vkey, k->vkey_len);
    tc__l2i_push(call, k->lock, k->klen2);
    tc__l2i_push(call, k->logkey, k->logkey_len);
}

/* The last argument of every announcing script: the replay log's MAXLEN. */
void tc__l2i_push_log_maxlen(l2_call_t *call, const tc__l2_t *l2) {
    tc__l2i_push(call, l2->log_maxlen, l2->log_maxlen_len);
}

/* KEYS: lock, data (the lock scripts). */
static void start_lock(l2_call_t *call, tc__script_t script, const key_parts_t *k) {
    memset(call, 0, sizeof *call);
    call->kind = CALL_SCRIPT;
    call->script = script;
    call->argc = 2;
    tc__l2i_push(call, "2", 1);
    tc__l2i_push(call, k->lock, k->klen2);
    tc__l2i_push(call, k->data, k->klen2);
}

int tc__l2i_is_int(const redisReply *r) {
    return r && r->type == REDIS_REPLY_INTEGER;
}

/* A script reports a version counter it had to reset (corrupt, or far ahead). */
void tc__l2i_note_healed(tc__l2_t *l2, const redisReply *healed) {
    if (!tc__l2i_is_int(healed) || healed->integer != 1)
        return;
    tc__count(&l2->healed_counters);
    tc__log(l2->log, TC__EV_COUNTER, TC_LOG_WARN, NULL, 0,
            "the version counter %s held no valid version (corrupt, or set by another "
            "client): reset to Redis's clock",
            l2->vkey);
}

/* Reply of SET/DEL: {version, healed}. */
int tc__l2i_version_reply(tc__l2_t *l2, const redisReply *r, uint64_t *version) {
    if (r->type == REDIS_REPLY_ERROR)
        return TC_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !tc__l2i_is_int(r->element[0]) ||
        r->element[0]->integer <= 0)
        return TC_EPROTO;
    tc__l2i_note_healed(l2, r->element[1]);
    if (version)
        *version = (uint64_t)r->element[0]->integer;
    tc__count(&l2->published);
    return 0;
}

/* The end of every operation: count a failure and leave its detail for tc_last_error. */
int tc__l2i_finish(tc__l2_t *l2, l2_call_t *call, int rc) {
    if (rc < 0 && rc != TC_ENOTFOUND) {
        tc__count(&l2->errors);
        tc__note_failure(rc, call ? call->err : NULL);
    }
    return rc;
}

/* ---- operations ------------------------------------------------------------------------ */

void tc__l2_value_release(tc__l2_value_t *v) {
    if (!v)
        return;
    if (v->reply_)
        freeReplyObject(v->reply_);
    memset(v, 0, sizeof *v);
}

/* Could the scripts' counter have produced v? (see L2_VERSION_LIMIT) */
static int version_plausible(uint64_t v) {
    return v > 0 && v < L2_VERSION_LIMIT && v <= tc__wall_us() + L2_VERSION_AHEAD;
}

/* Decode a stored string that lives inside owner (a reply) into out. */
/* header: a read that sent no PTTL (the header tells the life); otherwise a missing PTTL
 * reply means the life is unknown and nothing is kept. */
static int fill_value(tc__l2_t *l2, redisReply *owner, const redisReply *str,
                      const redisReply *pttl, int header, tc__l2_value_t *out) {
    if (str->type == REDIS_REPLY_ERROR)
        return TC_EREDIS;
    if (str->type != REDIS_REPLY_STRING)
        return TC_EPROTO;
    if (str->len > l2->max_stored) {
        tc__log(l2->log, TC__EV_REFUSED, TC_LOG_WARN, NULL, 0,
                "a stored value is over max_value_bytes (%zu): refused unread",
                l2->max_stored - TC__VAL_HDR_LEN);
        return TC_ETOOBIG;
    }
    if (tc__val_decode(str->str, str->len, &out->val) != 0)
        return TC_EPROTO;
    if (!version_plausible(out->val.version)) {
        tc__count(&l2->refused);
        tc__log(l2->log, TC__EV_REFUSED, TC_LOG_WARN, NULL, 0,
                "a stored value carries version %llu, which no writer produces: refused "
                "(written by another client?)",
                (unsigned long long)out->val.version);
        return TC_EPROTO;
    }
    if (header) /* a read without PTTL: the header says how long the key lives */
        out->pttl_ms = tc__l2_clock_life_ms(&l2->clock, out->val.expires_by_ms);
    else
        out->pttl_ms = tc__l2i_is_int(pttl) ? pttl->integer : TC__L2_LIFE_NOTHING;
    out->reply_ = owner;
    return 0;
}

/* A plain key's value: the whole string, version 1 (messages never order plain keys; the
 * server's invalidations evict them whatever their version). */
static int plain_value(tc__l2_t *l2, redisReply *owner, const redisReply *str,
                       const redisReply *pttl, tc__l2_value_t *out) {
    if (str->type != REDIS_REPLY_STRING)
        return TC_EPROTO;
    if (str->len > l2->max_stored - TC__VAL_HDR_LEN)
        return TC_ETOOBIG;
    memset(&out->val, 0, sizeof out->val);
    out->val.version = 1;
    out->val.data = (const unsigned char *)str->str;
    out->val.len = str->len;
    out->pttl_ms = tc__l2i_is_int(pttl) ? pttl->integer : -2;
    out->reply_ = owner;
    return 0;
}

/* The newest mark in an MGET reply of marks (0: none, or unreadable: judged by nothing). */
static uint64_t newest_mark(const redisReply *marks) {
    uint64_t w = 0;
    if (!marks || marks->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < marks->elements; i++) {
        const redisReply *m = marks->element[i];
        if (m->type != REDIS_REPLY_STRING || m->len == 0 || m->len > 20)
            continue;
        char num[24];
        memcpy(num, m->str, m->len);
        num[m->len] = '\0';
        char *end;
        unsigned long long v = strtoull(num, &end, 10);
        if (*end == '\0' && v > w)
            w = v;
    }
    return w;
}

/* A value whose header does not say how long its key lives (written before the expiry
 * flags existed, or by a foreign writer of the format): ask PTTL, a round trip of its own
 * (as safe as the pipelined one: either way other clients' commands may come between). */
static int ask_life(tc__l2_t *l2, l2_call_t *get, tc__l2_value_t *out) {
    l2_call_t call = {.kind = CALL_PING, .err = get->err};
    tc__l2i_push(&call, "PTTL", 4);
    tc__l2i_push(&call, get->argv[1], get->lens[1]);
    int rc = tc__l2i_run(l2, &call);
    if (rc == 0 && call.reply->type == REDIS_REPLY_ERROR)
        rc = TC_EREDIS; /* e.g. an ACL without +pttl: said, not a silent miss */
    if (rc == 0)
        out->pttl_ms = tc__l2i_is_int(call.reply) ? call.reply->integer : TC__L2_LIFE_NOTHING;
    tc__l2i_free_reply(&call.reply);
    return rc;
}

int tc__l2i_get_result(tc__l2_t *l2, l2_call_t *call, tc__l2_value_t *out) {
    const redisReply *r = call->reply, *pttl = call->no_pttl ? NULL : call->reply2;
    if (call->treply) /* first: the value's life below is judged by it */
        tc__l2_clock_absorb(&l2->clock, call->treply, call->sent_ns, call->clock_gen);
    if (r->type == REDIS_REPLY_ERROR || (pttl && pttl->type == REDIS_REPLY_ERROR) ||
        (call->reply3 && call->reply3->type == REDIS_REPLY_ERROR))
        return TC_EREDIS; /* e.g. an ACL without +pttl: said, not a silent miss */
    if (l2->plain) {
        if (r->type == REDIS_REPLY_STRING && r->len == 0 && tc__l2i_is_int(pttl) &&
            pttl->integer == -2)
            return TC_ENOTFOUND;
        int rc = plain_value(l2, call->reply, r, pttl, out);
        if (rc == 0)
            call->reply = NULL;
        return rc;
    }
    /* GETRANGE answers "" for a missing key: PTTL -2 tells it from an empty string. Without
     * PTTL, "" is a miss either way (an empty string is no tiercache value). */
    if (r->type == REDIS_REPLY_NIL ||
        (r->type == REDIS_REPLY_STRING && r->len == 0 &&
         (!pttl || (tc__l2i_is_int(pttl) && pttl->integer == -2))))
        return TC_ENOTFOUND;
    int rc = fill_value(l2, call->reply, r, pttl, call->no_pttl, out);
    uint64_t mark = call->local_mark_known ? call->local_mark : newest_mark(call->reply3);
    if (rc == 0 && out->val.version <= mark) {
        /* A clear or namespace bump came after this write: it is gone (lazily). */
        tc__count(&l2->hidden);
        memset(out, 0, sizeof *out);
        return TC_ENOTFOUND;
    }
    if (rc == 0)
        call->reply = NULL; /* now owned by out */
    /* Asked only by a single read, as its last step: in a bulk read, the lives already
     * computed for the other keys would age by a round trip per key asked. */
    if (rc == 0 && out->pttl_ms == TC__L2_LIFE_ASK && !call->may_ask)
        out->pttl_ms = TC__L2_LIFE_NOTHING;
    if (rc == 0 && out->pttl_ms == TC__L2_LIFE_ASK && (rc = ask_life(l2, call, out)) != 0)
        tc__l2_value_release(out);
    /* A replica's answer may predate a write whose invalidation this process has already
     * applied, and no later message would correct it: L1 keeps it a bounded while only. */
    if (rc == 0 && call->from_replica && out->pttl_ms != TC__L2_LIFE_NOTHING &&
        (out->pttl_ms == TC__L2_LIFE_NEVER || out->pttl_ms > (int64_t)l2->replica_keep_ms))
        out->pttl_ms = (int64_t)l2->replica_keep_ms;
    if (rc == TC_EPROTO)
        tc__fail(call->err, rc,
                 "the stored value is not a tiercache value (another client wrote it) or "
                 "carries a version no writer produces: read as a miss");
    return rc;
}

void tc__l2i_build_get(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k) {
    memset(call, 0, sizeof *call);
    call->kind = CALL_GET;
    tc__l2i_push(call, "GETRANGE", 8);
    tc__l2i_push(call, k->data, k->dlen);
    tc__l2i_push(call, "0", 1);
    tc__l2i_push(call, l2->get_end, l2->get_end_len);
    if (!l2->plain && tc__l2_clock_on(&l2->clock)) {
        call->no_pttl = 1;
        call->with_time = tc__l2_clock_due(&l2->clock);
    }
    if (k->nmarks == 0)
        return;
    /* The local copy of the marks, while current, saves a command per read (marks.h). */
    if (tc__marks_judge(l2->marks, k->data + l2->prefix_len + 2, k->dlen - l2->prefix_len - 2,
                        &call->local_mark)) {
        call->local_mark_known = 1;
        return;
    }
    call->argv2[0] = "MGET";
    call->lens2[0] = 4;
    for (size_t i = 0; i < k->nmarks; i++) {
        call->argv2[1 + i] = (const char *)k->mark[i];
        call->lens2[1 + i] = k->mark_len[i];
    }
    call->argc2 = (int)(1 + k->nmarks);
}

int tc__l2_get(tc__l2_t *l2, const void *key, size_t klen, tc__l2_value_t *out) {
    if (out)
        memset(out, 0, sizeof *out);
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc != 0 || !out)
        return rc ? rc : TC_EINVAL;
    key_parts_t k;
    if (tc__l2i_key_parts(l2, key, klen, &k) != 0)
        return tc__l2i_finish(l2, NULL, TC_ENOMEM);
    l2_call_t call;
    tc__l2i_build_get(l2, &call, &k);
    call.may_ask = 1;
    rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = tc__l2i_get_result(l2, &call, out);
    tc__l2i_free_reply(&call.reply);
    tc__l2i_free_reply(&call.reply2);
    tc__l2i_free_reply(&call.reply3);
    tc__l2i_free_reply(&call.treply);
    tc__l2i_scratch_put(&k.s);
    return tc__l2i_finish(l2, &call, rc);
}

/* ---- plain keys ---- */

void tc__l2i_build_plain_set(l2_call_t *call, const void *key, size_t klen, const void *value,
                             size_t vlen, uint64_t ttl_ms, char ttl[24]) {
    memset(call, 0, sizeof *call);
    int n = snprintf(ttl, 24, "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
    call->kind = CALL_PING;
    tc__l2i_push(call, "SET", 3);
    tc__l2i_push(call, key, klen);
    tc__l2i_push(call, vlen ? value : "", vlen);
    tc__l2i_push(call, "PX", 2);
    tc__l2i_push(call, ttl, (size_t)n);
    if (vlen > L2_BIG_VALUE)
        call->extra_timeout_ms = (uint32_t)(vlen / L2_BIG_BYTES_PER_MS);
}

int tc__l2i_status_result(const l2_call_t *call) {
    const redisReply *r = call->reply;
    if (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_INTEGER)
        return 0;
    return r->type == REDIS_REPLY_ERROR ? TC_EREDIS : TC_EPROTO;
}

int tc__l2_plain_set(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
                     uint64_t ttl_ms) {
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc == 0)
        rc = tc__l2i_check_value(value, vlen);
    if (rc != 0)
        return rc;
    char ttl[24];
    l2_call_t call;
    tc__l2i_build_plain_set(&call, key, klen, value, vlen, ttl_ms, ttl);
    rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = tc__l2i_status_result(&call);
    tc__l2i_free_reply(&call.reply);
    return tc__l2i_finish(l2, &call, rc);
}

int tc__l2_plain_del(tc__l2_t *l2, const void *key, size_t klen) {
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc != 0)
        return rc;
    l2_call_t call = {.kind = CALL_PING};
    tc__l2i_push(&call, "DEL", 3);
    tc__l2i_push(&call, key, klen);
    rc = tc__l2i_run(l2, &call);
    if (rc == 0 && call.reply->type != REDIS_REPLY_INTEGER)
        rc = call.reply->type == REDIS_REPLY_ERROR ? TC_EREDIS : TC_EPROTO;
    tc__l2i_free_reply(&call.reply);
    return tc__l2i_finish(l2, &call, rc);
}

/* Plain keys' fill: stored if absent (TC__L2_DONE), or TC__L2_EXISTS with what is there. */
void tc__l2i_build_plain_fill(l2_call_t *call, const tc__l2_write_t *w, char ttl[24]) {
    memset(call, 0, sizeof *call);
    int n = snprintf(ttl, 24, "%llu", (unsigned long long)(w->ttl_ms ? w->ttl_ms : 1));
    call->kind = CALL_PLAIN_ADD;
    tc__l2i_push(call, w->key, w->klen);
    tc__l2i_push(call, w->vlen ? w->value : "", w->vlen);
    tc__l2i_push(call, ttl, (size_t)n);
}

int tc__l2i_plain_fill_result(tc__l2_t *l2, l2_call_t *call, uint64_t *version,
                              tc__l2_value_t *existing) {
    if (call->reply3->type == REDIS_REPLY_ERROR)
        return TC_EREDIS;
    if (call->reply3->type == REDIS_REPLY_STATUS) {
        if (version)
            *version = 1;
        return TC__L2_DONE;
    }
    /* NX refused: someone stored first */
    int rc = tc__l2i_get_result(l2, call, existing);
    if (rc == 0)
        return TC__L2_EXISTS;
    return rc == TC_ENOTFOUND ? TC__L2_GONE : rc; /* gone again: as if stored and deleted */
}

static int plain_fill(tc__l2_t *l2, const tc__l2_write_t *w, uint64_t *version,
                      tc__l2_value_t *existing) {
    char ttl[24];
    l2_call_t call;
    tc__l2i_build_plain_fill(&call, w, ttl);
    int rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = tc__l2i_plain_fill_result(l2, &call, version, existing);
    tc__l2i_free_reply(&call.reply);
    tc__l2i_free_reply(&call.reply2);
    tc__l2i_free_reply(&call.reply3);
    return tc__l2i_finish(l2, &call, rc);
}

/* ARGV[1..4] of SET, ADD and CAS: value head, expiry, payload, ttl. */
static void push_value(l2_call_t *call, value_args_t *a, const tc__l2_write_t *w) {
    tc__val_head(w->meta.flags, a->head);
    a->head[3] = (unsigned char)tc__val_load_class(w->meta.load_ms);
    tc__val_expiry(w->meta.logical_expiry_ms, a->expiry);
    int n = snprintf(a->ttl, sizeof a->ttl, "%llu", (unsigned long long)w->ttl_ms);
    tc__l2i_push(call, a->head, TC__VAL_HEAD_LEN);
    tc__l2i_push(call, a->expiry, TC__VAL_EXPIRY_LEN);
    tc__l2i_push(call, w->vlen ? w->value : "", w->vlen);
    tc__l2i_push(call, a->ttl, (size_t)n);
    if (w->vlen > L2_BIG_VALUE)
        call->extra_timeout_ms = (uint32_t)(w->vlen / L2_BIG_BYTES_PER_MS);
}

/* The tag sets as further KEYS: <prefix>"t:"<tag>, built into va->ts. 0 or TC_ENOMEM. */
static int push_tags(tc__l2_t *l2, l2_call_t *call, value_args_t *va, const tc__l2_write_t *w) {
    size_t bytes = 0;
    va->ts.p = NULL;
    for (size_t i = 0; i < w->ntags; i++)
        bytes += tc__l2i_key_room(l2, w->tags[i].len);
    if (w->ntags == 0)
        return 0;
    unsigned char *p = tc__l2i_scratch_get(&va->ts, bytes);
    if (!p)
        return TC_ENOMEM;
    for (size_t i = 0; i < w->ntags; i++) {
        size_t n = tc__l2i_build_key(l2, 't', w->tags[i].data, w->tags[i].len, p);
        tc__l2i_push(call, p, n);
        p += n;
    }
    return 0;
}

void tc__l2i_value_args_done(value_args_t *va) {
    if (va->ts.p)
        tc__l2i_scratch_put(&va->ts);
    va->ts.p = NULL;
}

/* Set KEYS' count (argv[2]) once every key is pushed: argv[3..] up to first_arg. */
void tc__l2i_set_numkeys(l2_call_t *call, int first_arg) {
    int n = snprintf(call->numkeys, sizeof call->numkeys, "%d", first_arg - 3);
    call->argv[2] = call->numkeys;
    call->lens[2] = (size_t)n;
}

static int check_write(const tc__l2_t *l2, const tc__l2_write_t *w) {
    int rc = w ? tc__l2i_check_key(l2, w->key, w->klen) : TC_EINVAL;
    return rc ? rc : tc__l2i_check_value(w->value, w->vlen);
}

int tc__l2i_build_write(tc__l2_t *l2, l2_call_t *call, const tc__l2i_write_call_t *wc) {
    start_write(call, wc->script, wc->k);
    if (wc->queue)
        tc__l2i_push(call, wc->queue, wc->qlen);
    if (push_tags(l2, call, wc->va, wc->w) != 0)
        return TC_ENOMEM;
    tc__l2i_set_numkeys(call, call->argc);
    push_value(call, wc->va, wc->w);
    tc__l2i_push(call, l2->channel, l2->channel_len);
    tc__l2i_push(call, wc->mhead, TC__MSG_HEAD_LEN);
    tc__l2i_push(call, wc->k->tail, wc->k->tlen);
    if (wc->extra)
        tc__l2i_push(call, wc->extra, strlen(wc->extra));
    tc__l2i_push_log_maxlen(call, l2);
    return 0;
}

int tc__l2i_build_put(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k, value_args_t *va,
                      const tc__l2_write_t *w, const unsigned char *mhead) {
    tc__l2i_write_call_t wc = {
        .script = TC__SCRIPT_SET, .k = k, .va = va, .w = w, .mhead = mhead};
    return tc__l2i_build_write(l2, call, &wc);
}

int tc__l2_put(tc__l2_t *l2, const tc__l2_write_t *w, uint64_t *version) {
    int rc = check_write(l2, w);
    if (rc != 0)
        return rc;
    key_parts_t k;
    if (tc__l2i_key_parts(l2, w->key, w->klen, &k) != 0)
        return tc__l2i_finish(l2, NULL, TC_ENOMEM);
    l2_call_t call;
    value_args_t va;
    unsigned char mhead[TC__MSG_HEAD_LEN];
    tc__msg_head(TC__MSG_OP_WRITE, mhead);
    rc = tc__l2i_build_put(l2, &call, &k, &va, w, mhead);
    if (rc == 0)
        rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = tc__l2i_version_reply(l2, call.reply, version);
    tc__l2i_free_reply(&call.reply);
    tc__l2i_value_args_done(&va);
    tc__l2i_scratch_put(&k.s);
    return tc__l2i_finish(l2, &call, rc);
}

int tc__l2_set(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
               uint64_t ttl_ms, uint64_t *version) {
    tc__l2_write_t w = {
        .key = key, .klen = klen, .value = value, .vlen = vlen, .ttl_ms = ttl_ms};
    return tc__l2_put(l2, &w, version);
}

void tc__l2i_build_del(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k,
                       const unsigned char *mhead) {
    start_write(call, TC__SCRIPT_DEL, k);
    tc__l2i_push(call, l2->channel, l2->channel_len);
    tc__l2i_push(call, mhead, TC__MSG_HEAD_LEN);
    tc__l2i_push(call, k->tail, k->tlen);
    tc__l2i_push_log_maxlen(call, l2);
}

int tc__l2_del(tc__l2_t *l2, const void *key, size_t klen, uint64_t *version) {
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc != 0)
        return rc;
    key_parts_t k;
    if (tc__l2i_key_parts(l2, key, klen, &k) != 0)
        return tc__l2i_finish(l2, NULL, TC_ENOMEM);
    unsigned char mhead[TC__MSG_HEAD_LEN];
    l2_call_t call;
    tc__msg_head(TC__MSG_OP_DELETE, mhead);
    tc__l2i_build_del(l2, &call, &k, mhead);
    rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = tc__l2i_version_reply(l2, call.reply, version);
    tc__l2i_free_reply(&call.reply);
    tc__l2i_scratch_put(&k.s);
    return tc__l2i_finish(l2, &call, rc);
}

/* ADD, CAS and LOCK reply with an array led by an integer tag (scripts.h). 0, or the
 * error. */
int tc__l2i_check_tagged(const redisReply *r) {
    if (r->type == REDIS_REPLY_ERROR)
        return TC_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !tc__l2i_is_int(r->element[0]))
        return TC_EPROTO;
    return 0;
}

static int tag_of(const redisReply *r) {
    return (int)r->element[0]->integer;
}

/* {tag, value, pttl}: the value moves into *existing, which takes the reply. */
static int take_existing(tc__l2_t *l2, l2_call_t *call, tc__l2_value_t *existing) {
    redisReply *r = call->reply;
    if (r->elements < 2)
        return TC_EPROTO;
    const redisReply *pttl = r->elements > 2 ? r->element[2] : NULL;
    int rc = fill_value(l2, r, r->element[1], pttl, 0, existing);
    if (rc == 0)
        call->reply = NULL;
    return rc;
}

int tc__l2i_fill_result(tc__l2_t *l2, l2_call_t *call, uint64_t *version,
                        tc__l2_value_t *existing) {
    redisReply *r = call->reply;
    int rc = tc__l2i_check_tagged(r);
    if (rc != 0)
        return rc;
    switch (tag_of(r)) {
    case TC__TAG_DONE:
        if (r->elements < 3 || !tc__l2i_is_int(r->element[1]))
            return TC_EPROTO;
        tc__l2i_note_healed(l2, r->element[2]);
        if (version)
            *version = (uint64_t)r->element[1]->integer;
        if (call->script == TC__SCRIPT_CAS)
            tc__count(&l2->published);
        return TC__L2_DONE;
    case TC__TAG_EXISTS:
        if (!existing)
            return TC__L2_EXISTS;
        rc = take_existing(l2, call, existing);
        return rc == 0 ? TC__L2_EXISTS : rc;
    case TC__TAG_LEASE_LOST:
        return TC__L2_LEASE_LOST;
    case TC__TAG_TOO_BIG:
        return TC_ETOOBIG;
    case TC__TAG_GONE:
        return TC__L2_GONE;
    default:
        return TC_EPROTO;
    }
}

/* The marks as further KEYS (after the four, or after the lock scripts' two). */
static void push_marks(l2_call_t *call, const key_parts_t *k) {
    for (size_t i = 0; i < k->nmarks; i++)
        tc__l2i_push(call, k->mark[i], k->mark_len[i]);
}

int tc__l2i_build_fill(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k, value_args_t *va,
                       const tc__l2_write_t *w, const unsigned char *whead,
                       const unsigned char *fhead, unsigned char *expected) {
    start_write(call, w->expected_version ? TC__SCRIPT_CAS : TC__SCRIPT_ADD, k);
    push_marks(call, k);
    if (push_tags(l2, call, va, w) != 0)
        return TC_ENOMEM;
    tc__l2i_set_numkeys(call, call->argc);
    push_value(call, va, w);
    tc__l2i_push(call, l2->max_stored_str, l2->max_stored_len);
    tc__l2i_push(call, w->lease ? w->lease : "", w->lease ? w->lease_len : 0);
    tc__l2i_push(call, l2->channel, l2->channel_len);
    tc__l2i_push(call, whead, TC__MSG_HEAD_LEN);
    tc__l2i_push(call, k->tail, k->tlen);
    tc__l2i_push(call, fhead, TC__MSG_HEAD_LEN);
    if (w->expected_version) {
        tc__put_be64(expected, *w->expected_version);
        tc__l2i_push(call, expected, 8);
    }
    int n = snprintf(va->nmarks, sizeof va->nmarks, "%zu", k->nmarks);
    tc__l2i_push(call, va->nmarks, (size_t)n);
    n = w->check_mark ? snprintf(va->seen_mark, sizeof va->seen_mark, "%llu",
                                 (unsigned long long)w->seen_mark)
                      : 0;
    tc__l2i_push(call, va->seen_mark, (size_t)n);
    tc__l2i_push_log_maxlen(call, l2);
    return 0;
}

int tc__l2_fill(tc__l2_t *l2, const tc__l2_write_t *w, uint64_t *version,
                tc__l2_value_t *existing) {
    if (existing)
        memset(existing, 0, sizeof *existing);
    int rc = check_write(l2, w);
    if (rc != 0)
        return rc;
    if (l2->plain)
        return plain_fill(l2, w, version, existing);
    key_parts_t k;
    if (tc__l2i_key_parts(l2, w->key, w->klen, &k) != 0)
        return tc__l2i_finish(l2, NULL, TC_ENOMEM);
    l2_call_t call;
    value_args_t va;
    unsigned char whead[TC__MSG_HEAD_LEN], fhead[TC__MSG_HEAD_LEN], expected[8];
    tc__msg_head(TC__MSG_OP_WRITE, whead);
    tc__msg_head(TC__MSG_OP_FILL, fhead);
    rc = tc__l2i_build_fill(l2, &call, &k, &va, w, whead, fhead, expected);
    if (rc == 0)
        rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = tc__l2i_fill_result(l2, &call, version, existing);
    tc__l2i_free_reply(&call.reply);
    tc__l2i_value_args_done(&va);
    tc__l2i_scratch_put(&k.s);
    return tc__l2i_finish(l2, &call, rc);
}

int tc__l2_add(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
               uint64_t ttl_ms, uint64_t *version, tc__l2_value_t *existing) {
    tc__l2_write_t w = {
        .key = key, .klen = klen, .value = value, .vlen = vlen, .ttl_ms = ttl_ms};
    return tc__l2_fill(l2, &w, version, existing);
}

/* {1, mark}: taken; {2, value, pttl}: a value is stored; {0, pttl}: held by another. */
int tc__l2i_lock_result(tc__l2_t *l2, l2_call_t *call, int64_t *pttl, uint64_t *mark,
                        tc__l2_value_t *existing) {
    redisReply *r = call->reply;
    int rc = tc__l2i_check_tagged(r);
    if (rc != 0)
        return rc;
    switch (tag_of(r)) {
    case TC__TAG_VALUE:
        rc = take_existing(l2, call, existing);
        return rc == 0 ? TC__L2_EXISTS : rc;
    case TC__TAG_TOO_BIG:
        return TC_ETOOBIG;
    case TC__TAG_DONE:
        if (mark)
            *mark =
                r->elements > 1 && tc__l2i_is_int(r->element[1]) && r->element[1]->integer > 0
                    ? (uint64_t)r->element[1]->integer
                    : 0;
        return TC__L2_DONE;
    case TC__TAG_EXISTS:
        if (r->elements < 2 || !tc__l2i_is_int(r->element[1]))
            return TC_EPROTO;
        *pttl = r->element[1]->integer;
        return TC__L2_LOCK_HELD;
    default:
        return TC_EPROTO;
    }
}

void tc__l2i_build_lock(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k, const char *token,
                        size_t tlen, const char *ttl, const unsigned char *skip) {
    start_lock(call, TC__SCRIPT_LOCK, k);
    push_marks(call, k);
    tc__l2i_set_numkeys(call, call->argc);
    tc__l2i_push(call, token, tlen);
    tc__l2i_push(call, ttl, strlen(ttl));
    tc__l2i_push(call, skip, skip ? 8 : 0);
    tc__l2i_push(call, l2->max_stored_str, l2->max_stored_len);
}

int tc__l2_lock(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen,
                uint32_t ttl_ms, const uint64_t *skip_version, int64_t *pttl, uint64_t *mark,
                tc__l2_value_t *existing) {
    if (existing)
        memset(existing, 0, sizeof *existing);
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc != 0 || !token || !pttl || !existing)
        return rc ? rc : TC_EINVAL;
    key_parts_t k;
    if (tc__l2i_key_parts(l2, key, klen, &k) != 0)
        return tc__l2i_finish(l2, NULL, TC_ENOMEM);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", (unsigned)ttl_ms);
    unsigned char skip[8];
    if (skip_version)
        tc__put_be64(skip, *skip_version);
    l2_call_t call;
    tc__l2i_build_lock(l2, &call, &k, token, tlen, ttl, skip_version ? skip : NULL);
    rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = tc__l2i_lock_result(l2, &call, pttl, mark, existing);
    tc__l2i_free_reply(&call.reply);
    tc__l2i_scratch_put(&k.s);
    return tc__l2i_finish(l2, &call, rc);
}

void tc__l2i_build_unlock(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k,
                          const char *token, size_t tlen, const unsigned char *fhead) {
    start_lock(call, TC__SCRIPT_UNLOCK, k);
    tc__l2i_push(call, token, tlen);
    tc__l2i_push(call, l2->channel, l2->channel_len);
    tc__l2i_push(call, fhead, TC__MSG_HEAD_LEN);
    tc__l2i_push(call, k->tail, k->tlen);
}

int tc__l2_unlock(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen) {
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc != 0 || !token)
        return rc ? rc : TC_EINVAL;
    key_parts_t k;
    if (tc__l2i_key_parts(l2, key, klen, &k) != 0)
        return tc__l2i_finish(l2, NULL, TC_ENOMEM);
    unsigned char fhead[TC__MSG_HEAD_LEN];
    l2_call_t call;
    tc__msg_head(TC__MSG_OP_FILL, fhead);
    tc__l2i_build_unlock(l2, &call, &k, token, tlen, fhead);
    rc = tc__l2i_run(l2, &call);
    if (rc == 0 && call.reply->type == REDIS_REPLY_ERROR)
        rc = TC_EREDIS;
    tc__l2i_free_reply(&call.reply);
    tc__l2i_scratch_put(&k.s);
    return tc__l2i_finish(l2, &call, rc);
}

int tc__l2_evict(tc__l2_t *l2, const void *key, size_t klen) {
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc != 0)
        return rc;
    key_parts_t k;
    if (tc__l2i_key_parts(l2, key, klen, &k) != 0)
        return tc__l2i_finish(l2, NULL, TC_ENOMEM);
    unsigned char mhead[TC__MSG_HEAD_LEN];
    l2_call_t call;
    start_write(&call, TC__SCRIPT_EVICT, &k);
    tc__msg_head(TC__MSG_OP_EVICT, mhead);
    tc__l2i_push(&call, l2->channel, l2->channel_len);
    tc__l2i_push(&call, mhead, sizeof mhead);
    tc__l2i_push(&call, k.tail, k.tlen);
    tc__l2i_push_log_maxlen(&call, l2);
    rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = call.reply->type == REDIS_REPLY_ERROR ? TC_EREDIS : 0;
    if (rc == 0)
        tc__count(&l2->published);
    tc__l2i_free_reply(&call.reply);
    tc__l2i_scratch_put(&k.s);
    return tc__l2i_finish(l2, &call, rc);
}

int tc__l2_extend(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen,
                  uint32_t ttl_ms) {
    int rc = tc__l2i_check_key(l2, key, klen);
    if (rc != 0 || !token)
        return rc ? rc : TC_EINVAL;
    key_parts_t k;
    if (tc__l2i_key_parts(l2, key, klen, &k) != 0)
        return tc__l2i_finish(l2, NULL, TC_ENOMEM);
    char ttl[16];
    int n = snprintf(ttl, sizeof ttl, "%u", (unsigned)ttl_ms);
    l2_call_t call;
    start_lock(&call, TC__SCRIPT_EXTEND, &k);
    tc__l2i_push(&call, token, tlen);
    tc__l2i_push(&call, ttl, (size_t)n);
    rc = tc__l2i_run(l2, &call);
    if (rc == 0)
        rc = call.reply->type == REDIS_REPLY_ERROR ? TC_EREDIS
             : tc__l2i_is_int(call.reply)          ? call.reply->integer == 1
                                                   : TC_EPROTO;
    tc__l2i_free_reply(&call.reply);
    tc__l2i_scratch_put(&k.s);
    return tc__l2i_finish(l2, &call, rc);
}
