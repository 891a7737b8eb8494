/*
 * patterns.c - invalidating many keys at once: tc_invalidate_tag, tc_invalidate_prefix,
 * tc_invalidate_namespace and tc_clear.
 *
 * The Redis side is l2_many.c (bounded steps, versioned announcements). This file is the
 * cache's side: argument checks, and this process's own L1, which must not wait for its
 * own messages to come back over the channel. A thread that invalidates a tag and then
 * reads one of its keys must miss, like a thread that deletes a key: so every key a step
 * removed is invalidated here at the step's version before the step returns, and a
 * namespace bump or clear sweeps this L1 at the mark's version before the call returns.
 * The listener then applies the same messages again, harmlessly (versions order them).
 * A key that a write re-tagged (or re-stored under the prefix) during the call is left in
 * Redis, which holds the newer value; this L1 may still hold an older one, whose
 * invalidation is that write's message, possibly still on its way when the call returns.
 * So those copies go too: the re-tagged members' keys, and everything under the prefix.
 *
 * Without Redis (L1-only mode) there is only this L1: a prefix, namespace or clear sweeps
 * it; tags are refused (their members are known only to Redis).
 */
#include "cache.h"
#include "ring_cache.h"

#include "errors.h"
#include "fork.h"
#include "msg.h"

#include <stdlib.h>
#include <string.h>

static int check_cache(const tc_cache_t *c) {
    if (!c)
        return tc__note(TC_EINVAL, "cache is NULL");
    if (tc__forked_since(c->fork_gen))
        return tc__note(TC_EFORKED, "this cache was opened in the parent process before "
                                    "fork(): open one in this process");
    return TC_OK;
}

/* A step's removed keys (op-5 entries), applied to this process's L1 at once. */
static void drop_removed(void *arg, uint64_t version, const unsigned char *entries,
                         size_t len) {
    tc_cache_t *c = arg;
    tc__msg_t m = {.op = TC__MSG_OP_MANY, .key = entries, .klen = len};
    size_t at = 0, klen;
    const unsigned char *key;
    while (at + 2 <= len && tc__msg_next_key(&m, &at, &key, &klen) && at <= len)
        tc__l1_invalidate(c->l1, tc__l1_hash(c->l1, key, klen), key, klen, version);
}

int tc_invalidate_tag(tc_cache_t *c, const void *tag, size_t tlen, size_t *removed) {
    if (c && c->ring)
        return tc__ring_invalidate_tag(c, tag, tlen, removed);
    size_t n = 0;
    if (removed)
        *removed = 0;
    int rc = check_cache(c);
    if (rc != TC_OK)
        return rc;
    if (!tag || tlen == 0 || tlen > TC_MAX_TAG_LEN)
        return tc__note(TC_EINVAL, "tag: %s", tag ? "length not in 1..TC_MAX_TAG_LEN" : "NULL");
    if (!tc__tags_ok(c))
        return tc__note(TC_EINVAL, "tags live in Redis: this cache has no Redis, uses "
                                   "plain_keys, or a cluster (not available there yet)");
    rc = tc__l2_invalidate_tag(c->l2, tag, tlen, drop_removed, c, &n);
    atomic_fetch_add_explicit(&c->keys_invalidated, n, memory_order_relaxed);
    if (removed)
        *removed = n;
    return rc;
}

int tc_invalidate_prefix(tc_cache_t *c, const void *prefix, size_t plen, size_t *removed) {
    if (c && c->ring)
        return tc__ring_invalidate_prefix(c, prefix, plen, removed);
    size_t n = 0;
    if (removed)
        *removed = 0;
    int rc = check_cache(c);
    if (rc != TC_OK)
        return rc;
    if (!prefix)
        return tc__note(TC_EINVAL, "prefix is NULL");
    if (plen == 0 || plen > TC_MAX_KEY_LEN)
        return tc__note(TC_EKEYLEN, "prefix length %zu is not in 1..%u", plen, TC_MAX_KEY_LEN);
    if (!c->l2) {
        n = tc__l1_sweep(c->l1, prefix, plen, UINT64_MAX);
    } else {
        rc = tc__l2_invalidate_prefix(c->l2, prefix, plen, drop_removed, c, &n);
        atomic_fetch_add_explicit(&c->keys_invalidated, n, memory_order_relaxed);
        /* A key the steps left because a write during the call stored a newer value may
         * still hold an older copy here, and that write's message may come after we
         * return: every copy under the prefix goes (the next read takes the newer one). */
        tc__l1_sweep(c->l1, prefix, plen, UINT64_MAX);
    }
    if (removed)
        *removed = n;
    return rc;
}

/* Sweep this L1 at a mark's version (UINT64_MAX when the outcome is unknown: everything
 * under the prefix goes, which is always safe). */
static void sweep_local(tc_cache_t *c, const void *prefix, size_t plen, uint64_t version) {
    size_t n = tc__l1_sweep(c->l1, prefix, plen, version);
    atomic_fetch_add_explicit(&c->swept_local, n, memory_order_relaxed);
}

/* 1 + the separators after ns's first byte: the level of the namespace in its keys. */
static unsigned ns_depth(const void *ns, size_t nslen, int sep) {
    const unsigned char *p = ns;
    unsigned depth = 1;
    for (size_t i = 1; i < nslen; i++)
        depth += p[i] == (unsigned char)sep;
    return depth;
}

int tc_invalidate_namespace(tc_cache_t *c, const void *ns, size_t nslen) {
    if (c && c->ring)
        return tc__ring_invalidate_namespace(c, ns, nslen);
    int rc = check_cache(c);
    if (rc != TC_OK)
        return rc;
    if (!ns || nslen == 0)
        return tc__note(TC_EINVAL, "namespace: %s", ns ? "empty" : "NULL");
    if (nslen >= TC_MAX_KEY_LEN)
        return tc__note(TC_EKEYLEN,
                        "namespace length %zu: with its separator it is longer "
                        "than TC_MAX_KEY_LEN",
                        nslen);
    if (c->cfg.ns_separator < 0)
        return tc__note(TC_EINVAL, "namespaces are off (ns_separator = -1)");
    if (c->cfg.plain_keys)
        return tc__note(TC_EINVAL, "namespaces need tiercache's versioned values: this cache "
                                   "uses plain_keys");
    if (c->endpoint.cluster_seeds)
        return tc__note(TC_EINVAL, "namespaces are not available with redis+cluster:// yet "
                                   "(a namespace's mark is one key, in one slot)");
    if (((const unsigned char *)ns)[nslen - 1] == (unsigned char)c->cfg.ns_separator)
        return tc__note(TC_EINVAL,
                        "namespace ends with the separator '%c': name it without "
                        "(\"user\" covers \"user:...\")",
                        c->cfg.ns_separator);
    if (ns_depth(ns, nslen, c->cfg.ns_separator) > TC_MAX_NS_DEPTH)
        return tc__note(TC_EINVAL,
                        "namespace is nested more than %u deep (separators after its first "
                        "byte): keys carry the marks of their first %u namespaces only",
                        TC_MAX_NS_DEPTH, TC_MAX_NS_DEPTH);
    unsigned char *prefix = malloc(nslen + 1);
    if (!prefix)
        return TC_ENOMEM;
    memcpy(prefix, ns, nslen);
    prefix[nslen] = (unsigned char)c->cfg.ns_separator;
    uint64_t version = UINT64_MAX;
    if (c->l2)
        rc = tc__l2_mark(c->l2, ns, nslen, &version);
    if (c->l2 && rc == TC_OK) /* our own reads hide at once, not when the message returns */
        tc__marks_note(c->marks, prefix, nslen + 1, version);
    sweep_local(c, prefix, nslen + 1, rc == TC_OK ? version : UINT64_MAX);
    free(prefix);
    return rc;
}

int tc_clear(tc_cache_t *c) {
    if (c && c->ring)
        return tc__ring_clear(c);
    int rc = check_cache(c);
    if (rc != TC_OK)
        return rc;
    if (c->cfg.plain_keys)
        return tc__note(TC_EINVAL, "tc_clear needs tiercache's versioned values: this cache "
                                   "uses plain_keys (delete the keys, e.g. "
                                   "tc_invalidate_prefix)");
    if (c->endpoint.cluster_seeds)
        return tc__note(TC_EINVAL, "tc_clear is not available with redis+cluster:// yet (its "
                                   "mark is one key, in one slot)");
    uint64_t version = UINT64_MAX;
    if (c->l2)
        rc = tc__l2_mark(c->l2, NULL, 0, &version);
    if (c->l2 && rc == TC_OK)
        tc__marks_note(c->marks, NULL, 0, version);
    sweep_local(c, NULL, 0, rc == TC_OK ? version : UINT64_MAX);
    return rc;
}
