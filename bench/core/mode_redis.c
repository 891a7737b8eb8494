/*
 * mode_redis.c - the redis-only baseline: cache-aside on raw hiredis (see modes.h).
 *
 * This is deliberately the straightforward code a service would write, with no tricks
 * the tiercache side does not get either: one blocking connection per thread, GET, and on
 * a nil reply the source load plus SET key value PX ttl. A broken connection is reopened
 * on the next operation and the failed one counted as an error.
 */
#include "modes.h"

#include <stdlib.h>
#include <string.h>

typedef struct ro_thread {
    redisContext *c;
    size_t plen;
    char key[128]; /* prefix, then the 17-byte key */
} ro_thread_t;

static int ro_init(void *arg, tcb_worker_t *w) {
    const tcb_ro_t *ro = arg;
    ro_thread_t *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    char err[256];
    t->c = tcb_rconn_open(ro->ep, 5000, err, sizeof err);
    if (!t->c) {
        fprintf(stderr, "tiercache-bench: redis-only thread %u: %s\n", w->tid, err);
        free(t);
        return -1;
    }
    t->plen = strlen(ro->prefix);
    memcpy(t->key, ro->prefix, t->plen);
    w->state = t;
    return 0;
}

static void ro_fini(void *arg, tcb_worker_t *w) {
    (void)arg;
    ro_thread_t *t = w->state;
    if (t) {
        redisFree(t->c);
        free(t);
    }
    w->state = NULL;
}

/* Reopen a connection that failed; the caller already counted the error. */
static void ro_reconnect(const tcb_ro_t *ro, ro_thread_t *t) {
    char err[256];
    redisFree(t->c);
    t->c = tcb_rconn_open(ro->ep, 5000, err, sizeof err);
}

static redisReply *ro_cmd(const tcb_ro_t *ro, ro_thread_t *t, int argc, const char **argv,
                          const size_t *lens) {
    if (!t->c) {
        ro_reconnect(ro, t);
        if (!t->c)
            return NULL;
    }
    redisReply *r = redisCommandArgv(t->c, argc, argv, lens);
    if (!r)
        ro_reconnect(ro, t);
    return r;
}

static int ro_set_raw(const tcb_ro_t *ro, ro_thread_t *t, const unsigned char *v, size_t vlen) {
    char ttl[24];
    int tl = snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ro->ttl_ms);
    const char *argv[] = {"SET", t->key, (const char *)v, "PX", ttl};
    size_t lens[] = {3, t->plen + TCB_KEY_LEN, vlen, 2, (size_t)tl};
    redisReply *r = ro_cmd(ro, t, 5, argv, lens);
    int rc = r && r->type == REDIS_REPLY_STATUS ? 0 : -1;
    freeReplyObject(r);
    return rc;
}

static int ro_get(void *arg, tcb_worker_t *w, uint64_t id, const char *key) {
    const tcb_ro_t *ro = arg;
    ro_thread_t *t = w->state;
    memcpy(t->key + t->plen, key, TCB_KEY_LEN);
    const char *argv[] = {"GET", t->key};
    size_t lens[] = {3, t->plen + TCB_KEY_LEN};
    redisReply *r = ro_cmd(ro, t, 2, argv, lens);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        return -1;
    }
    int hit = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (hit) {
        w->hits++;
        return 0;
    }
    w->misses++;
    w->loads++;
    tcb_source_wait(ro->src);
    size_t vlen = tcb_source_fill(ro->src, id, 0, w->vbuf);
    return ro_set_raw(ro, t, w->vbuf, vlen);
}

static int ro_set(void *arg, tcb_worker_t *w, uint64_t id, const char *key,
                  const unsigned char *value, size_t vlen) {
    (void)id;
    ro_thread_t *t = w->state;
    memcpy(t->key + t->plen, key, TCB_KEY_LEN);
    return ro_set_raw(arg, t, value, vlen);
}

const tcb_mode_ops_t tcb_mode_redis_only = {
    .name = "redis-only",
    .thread_init = ro_init,
    .thread_fini = ro_fini,
    .get = ro_get,
    .set = ro_set,
};
