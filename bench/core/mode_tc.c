/*
 * mode_tc.c - the tiercache side: tc_fetch with a loader, tc_set for writes (modes.h).
 *
 * One tc_cache_t is shared by every worker thread, as a server would share it. The pool
 * gets a connection per thread (at least the library default), so the comparison with
 * redis-only's connection per thread is like for like. Values are not copied out of the
 * returned reference: zero-copy reads are part of what is being measured.
 */
#include "modes.h"

#include <stdlib.h>
#include <string.h>

int tcb_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    const tcb_source_t *src = arg;
    uint64_t id;
    if (tcb_key_parse(key, klen, &id) != 0)
        return TC_ENOTFOUND;
    tcb_source_wait(src);
    unsigned char small[512];
    size_t cap = tcb_vsize_max(&src->vsize);
    unsigned char *buf = cap <= sizeof small ? small : malloc(cap);
    if (!buf)
        return TC_ENOMEM;
    size_t n = tcb_source_fill(src, id, 0, buf);
    int rc = tc_load_set_value(load, buf, n);
    if (buf != small)
        free(buf);
    return rc;
}

static int tcm_get(void *arg, tcb_worker_t *w, uint64_t id, const char *key) {
    (void)id;
    (void)w;
    const tcb_tcm_t *m = arg;
    tc_ref_t *ref = NULL;
    int rc = tc_fetch(m->cache, key, TCB_KEY_LEN, tcb_loader, (void *)m->src, &ref);
    if (rc == 0) {
        /* Touch the value, as a caller would: one byte, no copy. */
        if (tc_ref_size(ref) > 0) {
            volatile unsigned char first = ((const unsigned char *)tc_ref_data(ref))[0];
            (void)first;
        }
        tc_ref_release(ref);
    }
    return rc;
}

static int tcm_set(void *arg, tcb_worker_t *w, uint64_t id, const char *key,
                   const unsigned char *value, size_t vlen) {
    (void)w;
    (void)id;
    const tcb_tcm_t *m = arg;
    return tc_set(m->cache, key, TCB_KEY_LEN, value, vlen, m->ttl_ms);
}

const tcb_mode_ops_t tcb_mode_tiercache = {
    .name = "tiercache",
    .thread_init = NULL,
    .thread_fini = NULL,
    .get = tcm_get,
    .set = tcm_set,
};

int tcb_tc_open(const tcb_env_t *env, const tcb_opts_t *o, const char *tc_prefix,
                uint64_t l1_entries, uint64_t l1_bytes, tc_cache_t **out) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    char channel[96];
    snprintf(channel, sizeof channel, "%sinval", env->prefix);
    cfg.redis_url = env->url;
    cfg.key_prefix = tc_prefix;
    cfg.inval_channel = channel;
    cfg.l1_max_bytes = (size_t)l1_bytes;
    cfg.l1_max_entries = (size_t)l1_entries;
    cfg.l1_shards = o->shards;
    cfg.l1_policy = o->policy;
    cfg.default_ttl_ms = o->ttl_ms;
    cfg.pool_size = o->threads > cfg.pool_size ? o->threads : cfg.pool_size;
    cfg.require_redis = 1;
    cfg.command_timeout_ms =
        2000; /* a loaded 2-core box can stall; do not count it as an outage */
    cfg.connect_timeout_ms = 5000;
    tc_error_t err;
    int rc = tc_open(&cfg, out, &err);
    if (rc != 0) {
        fprintf(stderr, "tiercache-bench: tc_open: %s (%s)\n", err.msg, tc_err_name(rc));
        return -1;
    }
    return 0;
}

int tcb_tc_check_preload(tc_cache_t *cache, const tcb_source_t *src, const tcb_keyset_t *ks) {
    char key[TCB_KEY_LEN + 1];
    uint64_t id = ks->ids ? ks->ids[0] : 0;
    tcb_key_format(id, key);
    size_t want = tcb_vsize_for(&src->vsize, id);
    tc_ref_t *ref = NULL;
    int rc = tc_get(cache, key, TCB_KEY_LEN, &ref);
    int ok = rc == 0 && tc_ref_size(ref) == want;
    tc_ref_release(ref);
    if (!ok)
        fprintf(stderr,
                "tiercache-bench: the preloaded key %s does not read back through tc_get "
                "(%s): bench/core/preload.c no longer matches the library's stored format\n",
                key, rc ? tc_err_name(rc) : "wrong size");
    return ok ? 0 : -1;
}
