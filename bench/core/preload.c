/*
 * preload.c - writing every key to Redis before a run, pipelined (see modes.h).
 *
 * Commands go out in batches of PIPE: append them all, then read all the replies, so a
 * million SETs cost a few seconds instead of a million round trips. The tiercache
 * variant stores values in the library's format v1 (src/valfmt.h) with version 1, no
 * logical expiry (always fresh) and Redis's own TTL, with the header saying so as the
 * write script's does (flags 0x02 | 0x04: the key expires by Redis's TIME at the start of
 * the preload + the TTL, which is no later than each key's real expiry, so readers need no
 * PTTL), and sets the version counter to 1:
 * every version the library assigns afterwards is higher (see L2_LUA_NEXT_VERSION in
 * src/l2.c), so the first real write supersedes a preloaded copy everywhere, exactly as
 * if it had been written by tc_set.
 */
#include "modes.h"

#include "progress.h"
#include "valfmt.h"

#include <stdlib.h>
#include <string.h>

#define PIPE 1000

typedef size_t (*encode_fn)(const tcb_source_t *src, uint64_t id, uint64_t expires_by_ms,
                            unsigned char *tmp, unsigned char *out);

static size_t encode_raw(const tcb_source_t *src, uint64_t id, uint64_t expires_by_ms,
                         unsigned char *tmp, unsigned char *out) {
    (void)tmp;
    (void)expires_by_ms;
    return tcb_source_fill(src, id, 0, out);
}

static size_t encode_tc(const tcb_source_t *src, uint64_t id, uint64_t expires_by_ms,
                        unsigned char *tmp, unsigned char *out) {
    size_t n = tcb_source_fill(src, id, 0, tmp);
    return tc__val_encode(TC__VAL_FLAG_BOUNDED | TC__VAL_FLAG_KEY_EXPIRY, 1, expires_by_ms, tmp,
                          n, out);
}

/* Redis's clock now, in unix ms (0 when it cannot be read). */
static uint64_t redis_now_ms(redisContext *c) {
    redisReply *r = redisCommand(c, "TIME");
    uint64_t ms = 0;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING)
        ms = strtoull(r->element[0]->str, NULL, 10) * 1000u +
             strtoull(r->element[1]->str, NULL, 10) / 1000u;
    if (r)
        freeReplyObject(r);
    return ms;
}

static int drain(redisContext *c, unsigned pending) {
    for (unsigned i = 0; i < pending; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK)
            return -1;
        int bad = ((redisReply *)r)->type == REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (bad)
            return -1;
    }
    return 0;
}

typedef struct preload {
    const tcb_opts_t *o;
    redisContext *c;
    const char *prefix; /* full key prefix */
    const tcb_source_t *src;
    encode_fn encode;
    const char *label;
    uint64_t expires_by_ms; /* tiercache values: what their headers say (see above) */
} preload_t;

static int append_set(const preload_t *p, uint64_t id, unsigned char *tmp, unsigned char *val,
                      char *key, size_t plen, const char *ttl) {
    char k[TCB_KEY_LEN + 1];
    tcb_key_format(id, k);
    memcpy(key + plen, k, TCB_KEY_LEN);
    size_t vlen = p->encode(p->src, id, p->expires_by_ms, tmp, val);
    const char *argv[] = {"SET", key, (const char *)val, "PX", ttl};
    size_t lens[] = {3, plen + TCB_KEY_LEN, vlen, 2, strlen(ttl)};
    return redisAppendCommandArgv(p->c, 5, argv, lens) == REDIS_OK ? 0 : -1;
}

static int run_preload(const preload_t *p, const tcb_keyset_t *ks) {
    size_t vmax = tcb_vsize_max(&p->src->vsize) + TC__VAL_HDR_LEN + 1;
    unsigned char *tmp = malloc(vmax), *val = malloc(vmax);
    char key[160], ttl[24];
    size_t plen = strlen(p->prefix);
    memcpy(key, p->prefix, plen);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)p->o->ttl_ms);
    tcb_progress_t prog;
    tcb_progress_begin(&prog, p->o->quiet, p->label);
    int rc = tmp && val ? 0 : -1;
    unsigned pending = 0;
    for (uint64_t i = 0; rc == 0 && i < ks->n && !tcb_interrupted; i++) {
        rc = append_set(p, ks->ids ? ks->ids[i] : i, tmp, val, key, plen, ttl);
        if (rc == 0 && ++pending == PIPE) {
            rc = drain(p->c, pending);
            pending = 0;
            tcb_progress_update(&prog, (double)i / (double)ks->n, 0);
        }
    }
    if (rc == 0)
        rc = drain(p->c, pending);
    tcb_progress_end(&prog);
    free(tmp);
    free(val);
    if (rc != 0)
        fprintf(stderr, "tiercache-bench: preloading failed: %s\n",
                p->c->err ? p->c->errstr : "Redis refused a SET (out of memory? maxmemory?)");
    return tcb_interrupted ? -1 : rc;
}

int tcb_preload_redis_only(const tcb_opts_t *o, redisContext *c, const tcb_ro_t *ro,
                           const tcb_keyset_t *ks) {
    preload_t p = {o, c, ro->prefix, ro->src, encode_raw, "preload redis-only", 0};
    return run_preload(&p, ks);
}

int tcb_preload_tiercache(const tcb_opts_t *o, redisContext *c, const char *tc_prefix,
                          const tcb_source_t *src, const tcb_keyset_t *ks) {
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%sk:", tc_prefix);
    uint64_t now = redis_now_ms(c);
    if (now == 0) {
        fprintf(stderr, "tiercache-bench: preloading failed: Redis refused TIME\n");
        return -1;
    }
    preload_t p = {o, c, prefix, src, encode_tc, "preload tiercache", now + o->ttl_ms};
    if (run_preload(&p, ks) != 0)
        return -1;
    char err[256];
    if (tcb_rconn_ok(c, err, sizeof err, "SET %sv 1", tc_prefix) != 0) {
        fprintf(stderr, "tiercache-bench: preloading failed: %s\n", err);
        return -1;
    }
    return 0;
}
