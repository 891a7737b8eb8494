/*
 * ring_cache.c - several standalone Redis servers as one cache: a redis_url that lists
 * URLs separated by spaces ("redis://10.0.0.1 redis://10.0.0.2 unix:///run/r3.sock").
 *
 * What a ring cache is: one full cache per server (a "node": its own L1, pool, breaker,
 * listener, replay log, marks, write-behind queue), and a consistent-hash ring (ring.c)
 * that says which node holds a key. The handle the caller gets is a thin shell over the
 * nodes; every call is one of three kinds:
 *
 * - A key's call (tc_get, tc_set, tc_fetch, tc_del, tc_invalidate, write-through and
 *   write-behind) goes whole to the key's node: cache.h's tc__route swaps the handle at
 *   the top of the call, and everything after it is the single-server code, unchanged.
 * - A call on many keys (tc_mget, tc_mset, tc_mdel, tc_mfetch; tc_warm through them)
 *   groups the keys by node, makes one call per node, and puts the results back in the
 *   caller's order. tc_mfetch calls the batch loader once per node that has keys to load.
 * - A call on the whole cache (tags, prefixes, namespaces, clear, stats, latency, hot keys,
 *   dead letters, flush) goes to every node and adds up what they say.
 *
 * Why whole caches per node, and not one L1 in front of a routed L2: every coherence rule
 * tiercache keeps is about one Redis and one listener. A version is one server's counter,
 * a lost link flushes what that link was guarding, a replay log lives on the server whose
 * writes it lists, a clear's mark is a key on a server. With one cache per node each rule
 * holds as proven for one server, and a node that fails costs only its own keys: its
 * breaker opens, its listener flushes its own L1, and the other nodes' L1s and Redis
 * contents stay valid (what "per-node breakers" means here).
 *
 * The costs: the L1 byte and entry budgets are split evenly between nodes (a ring with 160
 * points per server gives each about 1/N of the keys; the exact shares vary by a few
 * percent), and a key's call hashes the key once more to find its node (FNV-1a and one
 * step in the ring's index: 20-29 ns; a hit over 3 servers measured within noise of a hit
 * over one, `tiercache-bench ring`).
 *
 * A node's identity on the ring is its address (host:port or the socket path, and the
 * database; for Sentinel the master name), never its credentials: every process must list
 * the same servers, in any order, to place every key alike. Tags, namespaces and clears
 * are kept per node (a tag's members on each node are that node's keys), so invalidating
 * them asks every node; a node that fails then is reported, and calling again finishes.
 */
#include "ring_cache.h"

#include "clock.h"
#include "errors.h"
#include "fork.h"
#include "prom.h"
#include "ring.h"

#include <stdlib.h>
#include <string.h>

/* ---- open and close ---- */

void tc__ring_cache_close(tc_cache_t *c) {
    for (size_t i = 0; i < c->node_count; i++)
        tc_close(c->nodes[i]);
    free(c->nodes);
    tc__ring_free(c->ring);
    free(c);
}

/* budget / n, rounded up (0 stays 0: "no L1", or "no entry limit"). */
static size_t share(size_t budget, size_t n) {
    return budget ? budget / n + (budget % n != 0) : 0;
}

int tc__ring_of_urls(char *const *urls, size_t n, tc__ring_t **out, tc_error_t *err) {
    tc__ring_t *ring = tc__ring_new(0);
    if (!ring)
        return tc__fail(err, TC_ENOMEM, "out of memory");
    int rc = TC_OK;
    for (size_t i = 0; i < n && rc == TC_OK; i++) {
        tc__endpoint_t ep;
        if ((rc = tc__endpoint_parse(urls[i], &ep, err)) != TC_OK)
            break;
        char name[TC__RING_NAME_MAX];
        tc__endpoint_name(&ep, name, sizeof name);
        tc__endpoint_deinit(&ep);
        rc = tc__ring_add(ring, name, (uint32_t)i);
        if (rc == TC_ENOMEM)
            tc__fail(err, rc, "out of memory");
        else if (rc != TC_OK)
            rc = tc__fail(err, TC_ECONFIG, "redis_url: server %zu (%s) is listed twice", i + 1,
                          name);
    }
    if (rc != TC_OK) {
        tc__ring_free(ring);
        return rc;
    }
    *out = ring;
    return TC_OK;
}

int tc__ring_cache_open(const tc_config_t *cfg, tc_cache_t **out, tc_error_t *err) {
    char **urls = NULL;
    size_t n = 0;
    int rc = tc__endpoint_list(cfg->redis_url, &urls, &n, err);
    if (rc != TC_OK)
        return rc;
    tc_cache_t *c = calloc(1, sizeof *c);
    if (!c || !(c->nodes = calloc(n, sizeof *c->nodes)))
        rc = tc__fail(err, TC_ENOMEM, "tc_open: out of memory");
    else
        rc = tc__ring_of_urls(urls, n, &c->ring, err);
    if (rc != TC_OK) {
        if (c)
            tc__ring_cache_close(c); /* no node open yet */
        tc__endpoint_list_free(urls, n);
        return rc;
    }
    c->cfg = *cfg;
    /* The caller's strings may die; the nodes hold their own copies. */
    c->cfg.redis_url = c->cfg.key_prefix = c->cfg.inval_channel = NULL;
    c->cfg.ttl_rules = NULL;
    c->cfg.ttl_rules_count = 0;
    c->fork_gen = tc__fork_watch();
    for (size_t i = 0; i < n && rc == TC_OK; i++) {
        tc_config_t one = *cfg;
        one.redis_url = urls[i];
        one.l1_max_bytes = share(cfg->l1_max_bytes, n);
        one.l1_max_entries = share(cfg->l1_max_entries, n);
        char name[TC__RING_NAME_MAX] = "";
        tc__endpoint_t ep;
        if (tc__endpoint_parse(urls[i], &ep, NULL) == TC_OK) { /* parsed once already */
            tc__endpoint_name(&ep, name, sizeof name);
            tc__endpoint_deinit(&ep);
        }
        tc_error_t why = {0};
        rc = tc__cache_open(&one, sizeof one, name, &c->nodes[i], &why);
        if (rc != TC_OK) {
            tc__fail(err, rc, "redis_url: server %zu of %zu: %s", i + 1, n, why.msg);
            break;
        }
        c->node_count++;
    }
    tc__endpoint_list_free(urls, n);
    if (rc != TC_OK) {
        tc__ring_cache_close(c);
        return rc;
    }
    *out = c;
    return TC_OK;
}

/* A key the servers' own checks refuse (NULL, empty, too long) is not hashed: it goes to
 * server 0, whose check gives it the single-server code and message. */
static int routable(const void *key, size_t klen) {
    return key && klen > 0 && klen <= TC_MAX_KEY_LEN;
}

tc_cache_t *tc__ring_route(tc_cache_t *c, const void *key, size_t klen) {
    return c->nodes[routable(key, klen) ? tc__ring_lookup(c->ring, key, klen) : 0];
}

/* ---- grouping keys by node ----
 *
 * order lists the caller's indices node by node; node k's are order[from[k] .. from[k+1]).
 * One allocation holds everything a per-node call needs (its keys and result slots). */
typedef struct groups {
    size_t *order, *from; /* from has node_count + 1 entries */
    tc_buf_t *keys;       /* scratch: one node's keys */
    tc_ref_t **refs;      /* scratch: one node's refs */
    int *codes;           /* scratch: one node's codes */
    tc_item_t *items;     /* scratch: one node's items (tc_mset) */
} groups_t;

static void groups_free(groups_t *g) {
    free(g->order);
    free(g->from);
    free(g->keys);
    free(g->refs);
    free(g->codes);
    free(g->items);
    memset(g, 0, sizeof *g); /* freeing twice is harmless */
}

/* key(i) gives the i-th key; n > 0. TC_OK or TC_ENOMEM (g freed). */
static int group(tc_cache_t *c, size_t n, const void *(*key)(const void *, size_t, size_t *),
                 const void *list, groups_t *g) {
    memset(g, 0, sizeof *g);
    uint32_t *where = malloc(n * sizeof *where);
    g->order = malloc(n * sizeof *g->order);
    g->from = calloc(c->node_count + 1, sizeof *g->from);
    g->keys = malloc(n * sizeof *g->keys);
    g->refs = malloc(n * sizeof *g->refs);
    g->codes = malloc(n * sizeof *g->codes);
    if (!where || !g->order || !g->from || !g->keys || !g->refs || !g->codes) {
        free(where);
        groups_free(g);
        return TC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const void *k = key(list, i, &klen);
        where[i] = routable(k, klen) ? tc__ring_lookup(c->ring, k, klen) : 0;
        g->from[where[i] + 1]++;
    }
    for (size_t k = 0; k < c->node_count; k++)
        g->from[k + 1] += g->from[k];
    size_t *fill = malloc(c->node_count * sizeof *fill);
    if (!fill) {
        free(where);
        groups_free(g);
        return TC_ENOMEM;
    }
    memcpy(fill, g->from, c->node_count * sizeof *fill);
    for (size_t i = 0; i < n; i++)
        g->order[fill[where[i]]++] = i;
    free(fill);
    free(where);
    return TC_OK;
}

static const void *buf_key(const void *list, size_t i, size_t *klen) {
    const tc_buf_t *b = (const tc_buf_t *)list + i;
    *klen = b->len;
    return b->data;
}

static const void *item_key(const void *list, size_t i, size_t *klen) {
    const tc_item_t *it = (const tc_item_t *)list + i;
    *klen = it->klen;
    return it->key;
}

/* The first failing code in the caller's order (what tc_mset and tc_mdel return). */
static int first_failure(const int *codes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (codes[i] != TC_OK)
            return codes[i];
    return TC_OK;
}

/* ---- reads and loads ---- */

/* tc_mget (loader NULL) or tc_mfetch on each node, results put back in order. */
static int many_reads(tc_cache_t *c, const tc_buf_t *keys, size_t n, tc_batch_loader_fn loader,
                      void *arg, const tc_opts_t *opts, tc_ref_t **refs, int *codes) {
    if (n == 0) /* the node checks the arguments alone */
        return loader ? tc_mfetch(c->nodes[0], keys, 0, loader, arg, opts, refs, codes)
                      : tc_mget(c->nodes[0], keys, 0, refs, codes);
    if (!keys || !refs || !codes)
        return tc__note(TC_EINVAL, "keys, refs or codes is NULL with n = %zu", n);
    groups_t g;
    if (group(c, n, buf_key, keys, &g) != TC_OK)
        return tc__note(TC_ENOMEM, "out of memory grouping %zu keys by server", n);
    for (size_t i = 0; i < n; i++)
        refs[i] = NULL;
    int rc = TC_OK;
    for (size_t k = 0; k < c->node_count && rc == TC_OK; k++) {
        size_t m = g.from[k + 1] - g.from[k];
        if (m == 0)
            continue;
        for (size_t j = 0; j < m; j++)
            g.keys[j] = keys[g.order[g.from[k] + j]];
        rc = loader ? tc_mfetch(c->nodes[k], g.keys, m, loader, arg, opts, g.refs, g.codes)
                    : tc_mget(c->nodes[k], g.keys, m, g.refs, g.codes);
        for (size_t j = 0; j < m && rc == TC_OK; j++) {
            refs[g.order[g.from[k] + j]] = g.refs[j];
            codes[g.order[g.from[k] + j]] = g.codes[j];
        }
    }
    if (rc != TC_OK) /* a whole-call failure: no ref is set */
        for (size_t i = 0; i < n; i++) {
            tc_ref_release(refs[i]);
            refs[i] = NULL;
        }
    groups_free(&g);
    return rc;
}

int tc__ring_mget(tc_cache_t *c, const tc_buf_t *keys, size_t n, tc_ref_t **refs, int *codes) {
    if (n > 0 && !codes)
        return tc__note(TC_EINVAL, "codes is NULL");
    return many_reads(c, keys, n, NULL, NULL, NULL, refs, codes);
}

int tc__ring_mfetch(tc_cache_t *c, const tc_buf_t *keys, size_t n, tc_batch_loader_fn loader,
                    void *arg, const tc_opts_t *opts, tc_ref_t **refs, int *codes) {
    if (!loader)
        return tc__note(TC_EINVAL, "loader is NULL");
    return many_reads(c, keys, n, loader, arg, opts, refs, codes);
}

/* ---- writes ----
 *
 * A write on many keys is N independent atomic writes (tiercache.h), so servers are
 * independent too: once the call's own arguments are known good, a server that refuses its
 * part as a whole (out of memory) gives that code to each of its keys, and the others still
 * write theirs. The call returns the first failing key's code, in the caller's order. */

/* tc_mset's or tc_mdel's part on server k (items or keys set in g), codes into g.codes. */
typedef int (*part_fn)(tc_cache_t *node, const groups_t *g, size_t m, const tc_opts_t *opts);

static int mset_part(tc_cache_t *node, const groups_t *g, size_t m, const tc_opts_t *opts) {
    return tc_mset(node, g->items, m, opts, g->codes);
}

static int mdel_part(tc_cache_t *node, const groups_t *g, size_t m, const tc_opts_t *opts) {
    (void)opts;
    return tc_mdel(node, g->keys, m, g->codes);
}

static int many_writes(tc_cache_t *c, groups_t *g, size_t n, const tc_item_t *items,
                       const tc_buf_t *keys, part_fn part, const tc_opts_t *opts, int *codes) {
    int *rcs = codes ? codes : malloc(n * sizeof *rcs);
    if (!rcs) {
        groups_free(g);
        return tc__note(TC_ENOMEM, "out of memory for %zu codes", n);
    }
    for (size_t k = 0; k < c->node_count; k++) {
        size_t m = g->from[k + 1] - g->from[k];
        for (size_t j = 0; j < m; j++) {
            size_t i = g->order[g->from[k] + j];
            if (items)
                g->items[j] = items[i];
            else
                g->keys[j] = keys[i];
            g->codes[j] = 1; /* no code yet: what a refusal of the whole part leaves */
        }
        int r = m ? part(c->nodes[k], g, m, opts) : TC_OK;
        for (size_t j = 0; j < m; j++)
            rcs[g->order[g->from[k] + j]] = g->codes[j] == 1 ? r : g->codes[j];
    }
    int rc = first_failure(rcs, n);
    if (!codes)
        free(rcs);
    groups_free(g);
    return rc;
}

int tc__ring_mset(tc_cache_t *c, const tc_item_t *items, size_t n, const tc_opts_t *opts,
                  int *codes) {
    /* The call's own arguments, checked once (every server would say the same). */
    int rc = tc_mset(c->nodes[0], items, 0, opts, codes);
    if (rc != TC_OK || n == 0)
        return rc;
    if (!items)
        return tc__note(TC_EINVAL, "items is NULL with n = %zu", n);
    groups_t g;
    if (group(c, n, item_key, items, &g) != TC_OK || !(g.items = malloc(n * sizeof *g.items))) {
        groups_free(&g);
        return tc__note(TC_ENOMEM, "out of memory grouping %zu items by server", n);
    }
    return many_writes(c, &g, n, items, NULL, mset_part, opts, codes);
}

int tc__ring_mdel(tc_cache_t *c, const tc_buf_t *keys, size_t n, int *codes) {
    int rc = tc_mdel(c->nodes[0], keys, 0, codes);
    if (rc != TC_OK || n == 0)
        return rc;
    if (!keys)
        return tc__note(TC_EINVAL, "keys is NULL with n = %zu", n);
    groups_t g;
    if (group(c, n, buf_key, keys, &g) != TC_OK)
        return tc__note(TC_ENOMEM, "out of memory grouping %zu keys by server", n);
    return many_writes(c, &g, n, NULL, keys, mdel_part, NULL, codes);
}

/* ---- the whole cache: every node ---- */

/* tc_invalidate_tag or tc_invalidate_prefix on every server, *removed their sum. An argument
 * refusal (TC_EINVAL, TC_EKEYLEN) comes back at once, as every server would say the same;
 * a server's failure does not stop the others (less is left for the call again). */
typedef int (*removal_fn)(tc_cache_t *, const void *, size_t, size_t *);

static int every_server_removes(tc_cache_t *c, removal_fn fn, const void *what, size_t len,
                                size_t *removed) {
    int rc = TC_OK;
    size_t total = 0;
    if (removed)
        *removed = 0;
    for (size_t k = 0; k < c->node_count; k++) {
        size_t n = 0;
        int r = fn(c->nodes[k], what, len, &n);
        total += n;
        if (r == TC_EINVAL || r == TC_EKEYLEN)
            return r;
        if (rc == TC_OK)
            rc = r;
    }
    if (removed)
        *removed = total;
    return rc;
}

int tc__ring_invalidate_tag(tc_cache_t *c, const void *tag, size_t tlen, size_t *removed) {
    return every_server_removes(c, tc_invalidate_tag, tag, tlen, removed);
}

int tc__ring_invalidate_prefix(tc_cache_t *c, const void *prefix, size_t plen,
                               size_t *removed) {
    return every_server_removes(c, tc_invalidate_prefix, prefix, plen, removed);
}

int tc__ring_invalidate_namespace(tc_cache_t *c, const void *ns, size_t nslen) {
    int rc = TC_OK;
    for (size_t k = 0; k < c->node_count; k++) {
        int r = tc_invalidate_namespace(c->nodes[k], ns, nslen);
        if (r == TC_EINVAL || r == TC_EKEYLEN)
            return r;
        if (rc == TC_OK)
            rc = r;
    }
    return rc;
}

int tc__ring_clear(tc_cache_t *c) {
    int rc = TC_OK;
    for (size_t k = 0; k < c->node_count; k++) {
        int r = tc_clear(c->nodes[k]);
        if (r == TC_EINVAL)
            return r;
        if (rc == TC_OK)
            rc = r;
    }
    return rc;
}

/* Every server is drained even when one fails (a dead server must not keep the others'
 * queues waiting); the first failure is returned. */
int tc__ring_flush(tc_cache_t *c, uint32_t timeout_ms) {
    uint64_t deadline = tc__now_ns() + (uint64_t)timeout_ms * 1000000u;
    int rc = TC_OK;
    for (size_t k = 0; k < c->node_count; k++) {
        uint64_t now = tc__now_ns();
        uint32_t left = now < deadline ? (uint32_t)((deadline - now) / 1000000u) : 0;
        int r = tc_flush(c->nodes[k], left);
        if (rc == TC_OK)
            rc = r;
    }
    return rc;
}

/* A caller's callback, counted, with its "stop" remembered across nodes. */
typedef struct relay {
    tc_key_fn key_fn;
    tc_dead_fn dead_fn;
    void *arg;
    int stopped;
} relay_t;

static int relay_key(void *arg, const void *key, size_t klen) {
    relay_t *r = arg;
    return r->stopped = r->key_fn(r->arg, key, klen) != 0;
}

static int relay_dead(void *arg, const tc_write_t *w, const char *error, unsigned attempts) {
    relay_t *r = arg;
    return r->stopped = r->dead_fn(r->arg, w, error, attempts) != 0;
}

long tc__ring_hot_keys(tc_cache_t *c, size_t max, tc_key_fn fn, void *arg) {
    relay_t r = {.key_fn = fn, .arg = arg};
    long given = 0;
    /* Each node lists its own most recent keys first: an even share of max from each, the
     * rest of max from whoever has more. */
    for (size_t k = 0; k < c->node_count && !r.stopped && (size_t)given < max; k++) {
        size_t left = max - (size_t)given, nodes_left = c->node_count - k;
        size_t want = k + 1 < c->node_count ? share(left, nodes_left) : left;
        long n = tc_hot_keys(c->nodes[k], want, relay_key, &r);
        if (n < 0)
            return n;
        given += n;
    }
    return given;
}

long tc__ring_dead_letters(tc_cache_t *c, size_t max, tc_dead_fn fn, void *arg) {
    relay_t r = {.dead_fn = fn, .arg = arg};
    long given = 0;
    for (size_t k = 0; k < c->node_count && !r.stopped && (size_t)given < max; k++) {
        long n = tc_dead_letters(c->nodes[k], max - (size_t)given, relay_dead, &r);
        if (n < 0)
            return n;
        given += n;
    }
    return given;
}

/* Every server's dead letters are queued again even when one server fails; its failure is
 * returned if no other server queued anything (else the count: call again for the rest). */
long tc__ring_dead_letters_replay(tc_cache_t *c) {
    long queued = 0, failed = 0;
    for (size_t k = 0; k < c->node_count; k++) {
        long n = tc_dead_letters_replay(c->nodes[k]);
        if (n < 0 && !failed)
            failed = n;
        queued += n > 0 ? n : 0;
    }
    return queued || !failed ? queued : failed;
}

/* ---- observability: the nodes added up ---- */

/* Counters and sizes add up. The two int gauges say the worst of the nodes: the listener
 * is connected only if every node's is, and the breaker is open if any node's is (else
 * half-open if any is): an alert on either must fire for one sick node. */
static void merge_stats(tc_stats_t *into, const tc_stats_t *from) {
    size_t count;
    const tc__prom_field_t *f = tc__prom_fields(&count);
    for (size_t i = 0; i < count; i++) {
        char *to = (char *)into + f[i].offset;
        const char *src = (const char *)from + f[i].offset;
        if (f[i].size == sizeof(uint64_t)) {
            uint64_t a, b;
            memcpy(&a, to, sizeof a);
            memcpy(&b, src, sizeof b);
            a += b;
            memcpy(to, &a, sizeof a);
        }
    }
    /* A 0/1 gauge: 1 when this process holds the flusher lease of any server. */
    uint64_t any = into->wb_flusher > 0 || from->wb_flusher > 0;
    into->wb_flusher = any;
    if (from->listener_connected < into->listener_connected)
        into->listener_connected = from->listener_connected;
    if (from->breaker_state == 1 || (from->breaker_state == 2 && into->breaker_state == 0))
        into->breaker_state = from->breaker_state;
}

int tc__ring_stats(tc_cache_t *c, tc_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->listener_connected = 1;
    for (size_t k = 0; k < c->node_count; k++) {
        tc_stats_t one;
        int rc = tc_stats_size(c->nodes[k], &one, sizeof one);
        if (rc != TC_OK)
            return rc;
        merge_stats(out, &one);
    }
    return TC_OK;
}

int tc__ring_latency(tc_cache_t *c, int kind, tc_latency_t *out) {
    memset(out, 0, sizeof *out);
    for (size_t k = 0; k < c->node_count; k++) {
        tc_latency_t one;
        int rc = tc_latency(c->nodes[k], kind, &one);
        if (rc != TC_OK)
            return rc;
        out->count += one.count;
        out->sum_ns += one.sum_ns;
        for (size_t b = 0; b < TC_LATENCY_BUCKETS; b++)
            out->buckets[b] += one.buckets[b];
    }
    return TC_OK;
}
