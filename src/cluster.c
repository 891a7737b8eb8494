/*
 * cluster.c - the Redis Cluster router (cluster.h): a slot map, a node per server, and
 * the redirection rules.
 *
 * The map is an array of 16384 node indexes under a read-write lock: a call reads one
 * entry, a MOVED writes one (the server just told us where the slot lives: waiting for a
 * whole new map would send every call meanwhile to the old owner) and asks for a full
 * re-read, which replaces the array. Re-reads are serialised and rate-limited (one per
 * REFRESH_GAP_NS unless forced), so a resharding that moves thousands of slots costs a
 * few CLUSTER SLOTS, not one per call. Nodes are created on first mention (map, MOVED or
 * ASK) and live until close: a call holds a node pointer without any lock, and a server
 * that left the cluster costs only its idle pool.
 *
 * Failures and time. A node that cannot be reached (refused, reset, breaker open) means the
 * map may be stale (a failover, a removed node): re-read it and try again until the call's
 * budget runs out. TRYAGAIN (a multi-key command mid-migration) and CLUSTERDOWN (no quorum
 * yet) are retried the same way. A socket timeout is returned at once: the command may
 * have run, and only the caller knows whether running it again is safe.
 */
#include "cluster.h"

#include "clock.h"
#include "conn.h"
#include "errors.h"
#include "metrics.h"
#include "node.h"
#include "slot.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_REDIRECTS 5u
#define DEFAULT_BUDGET_MS 2000u
#define REFRESH_GAP_NS    100000000ull /* at most ten map reads a second */
#define RETRY_NAP_MS      20u
#define MAX_SEED_LIST     4096u

typedef struct cl_node {
    char host[TC__SLOT_HOST_MAX + 1];
    int port;
    tc__node_t *node;
} cl_node_t;

struct tc__cluster {
    tc__cluster_opts_t o;
    char *user, *password;
    pthread_rwlock_t map_lock; /* owner[], nodes[], nnodes */
    uint16_t owner[TC__SLOTS]; /* index into nodes, or TC__SLOT_NONE */
    cl_node_t **nodes;
    size_t nnodes, cap;
    pthread_mutex_t refresh_mu;
    uint64_t last_refresh_ns; /* under refresh_mu */
    atomic_uint_fast64_t moved, asked, retried, refreshes, refresh_failures;
};

/* ---- nodes ---- */

/* The index of host:port's node, created when new. Call with map_lock held for writing.
 * -1: out of memory. */
static int node_index_locked(tc__cluster_t *cl, const char *host, int port) {
    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i]->port == port && strcmp(cl->nodes[i]->host, host) == 0)
            return (int)i;
    if (cl->nnodes == cl->cap) {
        size_t ncap = cl->cap ? cl->cap * 2 : 8;
        cl_node_t **nn = realloc(cl->nodes, ncap * sizeof *nn);
        if (!nn)
            return -1;
        cl->nodes = nn;
        cl->cap = ncap;
    }
    cl_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return -1;
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    tc__endpoint_t ep = {
        .host = n->host, .port = port, .user = cl->user, .password = cl->password};
    tc__node_opts_t no = {.endpoint = &ep,
                          .connect_timeout_ms = cl->o.connect_timeout_ms,
                          .command_timeout_ms = cl->o.command_timeout_ms,
                          .pool_size = cl->o.pool_size ? cl->o.pool_size : 1,
                          .breaker_threshold = cl->o.breaker_threshold,
                          .breaker_cooldown_ms = cl->o.breaker_cooldown_ms,
                          .log = cl->o.log};
    tc_error_t err;
    if (tc__node_open(&no, &n->node, &err) != 0) {
        free(n);
        return -1;
    }
    cl->nodes[cl->nnodes] = n;
    return (int)cl->nnodes++;
}

static cl_node_t *node_get(tc__cluster_t *cl, const char *host, int port) {
    pthread_rwlock_wrlock(&cl->map_lock);
    int i = node_index_locked(cl, host, port);
    cl_node_t *n = i < 0 ? NULL : cl->nodes[i];
    pthread_rwlock_unlock(&cl->map_lock);
    return n;
}

static cl_node_t *owner_of(tc__cluster_t *cl, unsigned slot) {
    pthread_rwlock_rdlock(&cl->map_lock);
    uint16_t i = cl->owner[slot];
    cl_node_t *n = i == TC__SLOT_NONE ? NULL : cl->nodes[i];
    pthread_rwlock_unlock(&cl->map_lock);
    return n;
}

/* ---- one command on one node ---- */

typedef struct cmd_work {
    int asking, argc;
    const char **argv;
    const size_t *lens;
    redisReply *reply;
} cmd_work_t;

static int run_cmd(void *arg, int slot, int fresh, redisContext *c) {
    cmd_work_t *w = arg;
    (void)slot;
    (void)fresh;
    if (w->asking)
        redisAppendCommand(c, "ASKING");
    redisAppendCommandArgv(c, w->argc, w->argv, w->lens);
    void *r = NULL;
    if (w->asking) { /* +OK, or an error the command's own reply will explain */
        if (tc__conn_get_reply(c, &r) != REDIS_OK)
            return tc__conn_error_code(c, errno);
        freeReplyObject(r);
        r = NULL;
    }
    if (tc__conn_get_reply(c, &r) != REDIS_OK)
        return tc__conn_error_code(c, errno);
    w->reply = r;
    return 0;
}

/* ---- the map ---- */

static int read_map_from(cl_node_t *n, tc__slot_map_t *m, tc_error_t *err) {
    const char *argv[2] = {"CLUSTER", "SLOTS"};
    size_t lens[2] = {7, 5};
    cmd_work_t w = {0, 2, argv, lens, NULL};
    int rc = tc__node_run(n->node, run_cmd, &w, err);
    if (rc != 0)
        return rc;
    char why[160];
    tc__slot_parse_t p = tc__slot_map_parse(w.reply, n->host, m, why, sizeof why);
    if (p == TC__SLOT_MALFORMED && w.reply->type == REDIS_REPLY_ERROR)
        rc = tc__fail(err, TC_EREDIS, "%s:%d refused CLUSTER SLOTS: %s", n->host, n->port,
                      w.reply->str);
    else if (p == TC__SLOT_MALFORMED)
        rc = tc__fail(err, TC_EPROTO, "%s:%d: %s", n->host, n->port, why);
    else if (p == TC__SLOT_NOMEM)
        rc = tc__fail(err, TC_ENOMEM, "out of memory reading the slot map");
    freeReplyObject(w.reply);
    return rc;
}

/* Install m as the map (its nodes created as needed). */
static int install_map(tc__cluster_t *cl, const tc__slot_map_t *m) {
    uint16_t *idx = malloc(m->nnodes * sizeof *idx + 1);
    if (!idx)
        return TC_ENOMEM;
    int rc = 0;
    pthread_rwlock_wrlock(&cl->map_lock);
    for (size_t i = 0; i < m->nnodes && rc == 0; i++) {
        int j = node_index_locked(cl, m->nodes[i].host, m->nodes[i].port);
        if (j < 0)
            rc = TC_ENOMEM;
        else
            idx[i] = (uint16_t)j;
    }
    for (unsigned s = 0; s < TC__SLOTS && rc == 0; s++)
        cl->owner[s] = m->owner[s] == TC__SLOT_NONE ? TC__SLOT_NONE : idx[m->owner[s]];
    pthread_rwlock_unlock(&cl->map_lock);
    free(idx);
    return rc;
}

/* Read the map from any node that answers (masters first in the order known). Skipped when
 * the last read was under REFRESH_GAP_NS ago, unless forced. */
static int refresh(tc__cluster_t *cl, int force, tc_error_t *err) {
    if (!force) { /* another thread is reading it: use what it installs, never wait */
        if (pthread_mutex_trylock(&cl->refresh_mu) != 0)
            return 0;
    } else {
        pthread_mutex_lock(&cl->refresh_mu);
    }
    uint64_t now = tc__now_ns();
    if (!force && cl->last_refresh_ns && now - cl->last_refresh_ns < REFRESH_GAP_NS) {
        pthread_mutex_unlock(&cl->refresh_mu);
        return 0;
    }
    cl->last_refresh_ns = now;
    pthread_rwlock_rdlock(&cl->map_lock);
    size_t n = cl->nnodes;
    pthread_rwlock_unlock(&cl->map_lock);
    int rc = TC_EUNAVAILABLE;
    tc_error_t local;
    if (!err)
        err = &local;
    tc__fail(err, rc, "no cluster node is known");
    for (size_t i = 0; i < n && rc != 0; i++) {
        pthread_rwlock_rdlock(&cl->map_lock);
        cl_node_t *node = cl->nodes[i];
        pthread_rwlock_unlock(&cl->map_lock);
        tc__slot_map_t m;
        rc = read_map_from(node, &m, err);
        if (rc == 0)
            rc = install_map(cl, &m);
        tc__slot_map_free(&m);
    }
    tc__count(rc == 0 ? &cl->refreshes : &cl->refresh_failures);
    pthread_mutex_unlock(&cl->refresh_mu);
    return rc;
}

int tc__cluster_refresh(tc__cluster_t *cl, tc_error_t *err) {
    return cl ? refresh(cl, 1, err) : tc__fail(err, TC_EINVAL, "cluster is NULL");
}

/* MOVED: the slot lives at host:port now. */
static void learn_owner(tc__cluster_t *cl, unsigned slot, const char *host, int port) {
    pthread_rwlock_wrlock(&cl->map_lock);
    int j = node_index_locked(cl, host, port);
    if (j >= 0)
        cl->owner[slot] = (uint16_t)j;
    pthread_rwlock_unlock(&cl->map_lock);
}

/* ---- calls ---- */

static int starts_with(const redisReply *r, const char *word) {
    size_t n = strlen(word);
    return r->len >= n && memcmp(r->str, word, n) == 0;
}

int tc__cluster_command(tc__cluster_t *cl, const void *key, size_t klen, int argc,
                        const char **argv, const size_t *lens, redisReply **reply,
                        tc_error_t *err) {
    if (reply)
        *reply = NULL;
    if (!cl || !reply || !argv || argc < 1 || (!key && klen))
        return tc__fail(err, TC_EINVAL, "cluster command: NULL argument");
    unsigned slot = tc__slot_of(key, klen);
    uint64_t deadline = tc__now_ns() + (uint64_t)cl->o.call_budget_ms * 1000000u;
    unsigned hops = 0;
    cl_node_t *ask = NULL;
    for (;;) {
        cl_node_t *n = ask ? ask : owner_of(cl, slot);
        int rc = TC_EUNAVAILABLE;
        cmd_work_t w = {ask != NULL, argc, argv, lens, NULL};
        ask = NULL;
        if (n)
            rc = tc__node_run(n->node, run_cmd, &w, err);
        else
            tc__fail(err, rc, "slot %u has no master in the cluster map", slot);
        if (rc == 0 && w.reply->type == REDIS_REPLY_ERROR) {
            tc__redirect_t d;
            tc__redirect_kind_t kind = tc__redirect_parse(w.reply->str, w.reply->len, &d);
            if (kind != TC__REDIRECT_NONE) {
                freeReplyObject(w.reply);
                if (++hops > cl->o.max_redirects)
                    return tc__fail(err, TC_EPROTO,
                                    "slot %u: more than %u redirections (the cluster's nodes "
                                    "disagree)",
                                    slot, cl->o.max_redirects);
                if (kind == TC__REDIRECT_MOVED) {
                    tc__count(&cl->moved);
                    learn_owner(cl, d.slot, d.host, d.port);
                    refresh(cl, 0, NULL);
                } else {
                    tc__count(&cl->asked);
                    if (!(ask = node_get(cl, d.host, d.port)))
                        return tc__fail(err, TC_ENOMEM, "out of memory");
                }
                continue;
            }
            if ((starts_with(w.reply, "TRYAGAIN") || starts_with(w.reply, "CLUSTERDOWN")) &&
                tc__now_ns() < deadline) {
                freeReplyObject(w.reply);
                tc__count(&cl->retried);
                tc__sleep_ms(RETRY_NAP_MS);
                if (w.asking) /* mid-migration: ask the target again, not the source */
                    ask = n;
                else
                    refresh(cl, 0, NULL);
                continue;
            }
        }
        if (rc == 0) {
            *reply = w.reply;
            return 0;
        }
        if (rc != TC_EUNAVAILABLE || tc__now_ns() >= deadline)
            return rc;           /* a timeout may have run the command: not ours to repeat */
        tc__count(&cl->retried); /* unreachable: a failover or a removed node, perhaps */
        tc__sleep_ms(RETRY_NAP_MS);
        refresh(cl, 0, NULL);
    }
}

/* ---- open / close ---- */

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

void tc__cluster_close(tc__cluster_t *cl) {
    if (!cl)
        return;
    for (size_t i = 0; i < cl->nnodes; i++) {
        tc__node_close(cl->nodes[i]->node);
        free(cl->nodes[i]);
    }
    free(cl->nodes);
    pthread_rwlock_destroy(&cl->map_lock);
    pthread_mutex_destroy(&cl->refresh_mu);
    free(cl->user);
    free(cl->password);
    free(cl);
}

/* Each "host:port" of the seed list as a node. */
static int add_seeds(tc__cluster_t *cl, const char *seeds, tc_error_t *err) {
    size_t len = strlen(seeds);
    if (len == 0 || len > MAX_SEED_LIST)
        return tc__fail(err, TC_ECONFIG, "cluster seeds: empty or over %u bytes",
                        MAX_SEED_LIST);
    char *list = strdup(seeds), *save = NULL;
    if (!list)
        return tc__fail(err, TC_ENOMEM, "out of memory");
    int rc = 0;
    for (char *s = strtok_r(list, ",", &save); s && rc == 0; s = strtok_r(NULL, ",", &save)) {
        char host[TC__SLOT_HOST_MAX + 1];
        int port;
        if (tc__endpoint_split_hostport(s, host, sizeof host, &port) != 0) {
            rc = tc__fail(err, TC_ECONFIG, "cluster seeds: \"%.64s\" is not host:port", s);
            break;
        }
        if (!node_get(cl, host, port))
            rc = tc__fail(err, TC_ENOMEM, "out of memory");
    }
    free(list);
    return rc;
}

int tc__cluster_open(const tc__cluster_opts_t *o, tc__cluster_t **out, tc_error_t *err) {
    if (!out)
        return tc__fail(err, TC_EINVAL, "cluster: out is NULL");
    *out = NULL;
    if (!o || !o->seeds)
        return tc__fail(err, TC_EINVAL, "cluster: no seeds");
    tc__cluster_t *cl = calloc(1, sizeof *cl);
    if (!cl)
        return tc__fail(err, TC_ENOMEM, "out of memory");
    cl->o = *o;
    cl->o.seeds = NULL;
    if (!cl->o.max_redirects)
        cl->o.max_redirects = DEFAULT_REDIRECTS;
    if (!cl->o.call_budget_ms)
        cl->o.call_budget_ms = DEFAULT_BUDGET_MS;
    cl->user = dup_or_null(o->user);
    cl->password = dup_or_null(o->password);
    for (unsigned s = 0; s < TC__SLOTS; s++)
        cl->owner[s] = TC__SLOT_NONE;
    pthread_rwlock_init(&cl->map_lock, NULL);
    pthread_mutex_init(&cl->refresh_mu, NULL);
    int rc = (o->user && !cl->user) || (o->password && !cl->password)
                 ? tc__fail(err, TC_ENOMEM, "out of memory")
                 : add_seeds(cl, o->seeds, err);
    if (rc == 0)
        rc = refresh(cl, 1, err);
    if (rc != 0) {
        tc__cluster_close(cl);
        return rc;
    }
    *out = cl;
    return 0;
}

void tc__cluster_counters(tc__cluster_t *cl, tc__cluster_counters_t *out) {
    memset(out, 0, sizeof *out);
    if (!cl)
        return;
    out->moved = atomic_load(&cl->moved);
    out->asked = atomic_load(&cl->asked);
    out->retried = atomic_load(&cl->retried);
    out->refreshes = atomic_load(&cl->refreshes);
    out->refresh_failures = atomic_load(&cl->refresh_failures);
    pthread_rwlock_rdlock(&cl->map_lock);
    out->nodes = cl->nnodes;
    for (unsigned s = 0; s < TC__SLOTS; s++)
        out->served += cl->owner[s] != TC__SLOT_NONE;
    pthread_rwlock_unlock(&cl->map_lock);
}
