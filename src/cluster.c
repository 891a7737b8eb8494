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
 * map may be stale (a failover, a removed node): it is re-read, and the call goes to the
 * slot's new master if the map names one, or fails at once if it still names the dead one
 * (the cluster has not promoted a replica yet: that takes its node timeout, and holding
 * every caller meanwhile would turn a dead shard into a stall). TRYAGAIN (a multi-key
 * command mid-migration) and CLUSTERDOWN (no quorum yet) are brief: retried after a nap
 * until the call's budget runs out. A socket timeout is returned at once: the command may
 * have run, and only the caller knows whether running it again is safe.
 *
 * Whole-map reads also come from a watch thread (watch_ms) and notice a change of masters:
 * the owner (cache.c) flushes L1 then, since a promoted replica may lack acknowledged
 * writes.
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
#include <time.h>

#define DEFAULT_REDIRECTS 5u
#define DEFAULT_BUDGET_MS 2000u
#define REFRESH_GAP_NS    100000000ull /* at most ten map reads a second */
#define RETRY_NAP_MS      20u
#define MAX_SEED_LIST     4096u

typedef struct cl_node {
    char host[TC__SLOT_HOST_MAX + 1];
    int port;
    tc__node_t *node;
    int replica; /* read_replicas: the replica this process reads from (index), or -1; under
                    map_lock */
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
    uint64_t masters_sig;     /* under refresh_mu: the masters of the last map read, hashed */
    atomic_int map_read;      /* a map was read once */
    pthread_mutex_t why_mu;   /* a leaf: refresh_why only, never held across a call */
    char refresh_why[sizeof(((tc_error_t *)0)->msg)]; /* the last failed map read's cause */
    atomic_uint_fast64_t moved, asked, retried, refreshes, refresh_failures, masters_changed;
    /* the watch thread (watch_ms) */
    pthread_t watch;
    int watching, stopping; /* stopping under watch_mu */
    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cv;
};

/* ---- nodes ---- */

/* The index of host:port's node, created when new. Call with map_lock held for writing.
 * -1: out of memory. */
/* A new connection to any node: READONLY first when reads may go to replicas (a replica
 * answers MOVED to every read without it), then the owner's own set-up. */
static int setup_conn(void *arg, redisContext *c, tc_error_t *err) {
    tc__cluster_t *cl = arg;
    if (cl->o.read_replicas) {
        errno = 0;
        redisReply *r =
            tc__conn_command_argv(c, 1, (const char *[]){"READONLY"}, (const size_t[]){8});
        if (!r)
            return tc__fail(err, tc__conn_error_code(c, errno), "redis READONLY: %s",
                            c->errstr);
        int refused = r->type == REDIS_REPLY_ERROR;
        if (refused)
            tc__fail(err, TC_EREDIS, "redis refused READONLY: %.*s", (int)r->len, r->str);
        freeReplyObject(r);
        if (refused)
            return TC_EREDIS;
    }
    return cl->o.setup ? cl->o.setup(cl->o.setup_arg, c, err) : 0;
}

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
    n->replica = -1;
    tc__endpoint_t ep = {
        .host = n->host, .port = port, .user = cl->user, .password = cl->password};
    tc__node_opts_t no = {.endpoint = &ep,
                          .connect_timeout_ms = cl->o.connect_timeout_ms,
                          .command_timeout_ms = cl->o.command_timeout_ms,
                          .pool_size = cl->o.pool_size ? cl->o.pool_size : 1,
                          .breaker_threshold = cl->o.breaker_threshold,
                          .breaker_cooldown_ms = cl->o.breaker_cooldown_ms,
                          .log = cl->o.log,
                          .setup = setup_conn,
                          .setup_arg = cl,
                          .on_heal = cl->o.on_heal,
                          .heal_arg = cl->o.heal_arg};
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

/* The replica this process reads master's slots from, or NULL. */
static cl_node_t *replica_of(tc__cluster_t *cl, const cl_node_t *master) {
    pthread_rwlock_rdlock(&cl->map_lock);
    cl_node_t *r = master->replica >= 0 ? cl->nodes[master->replica] : NULL;
    pthread_rwlock_unlock(&cl->map_lock);
    return r;
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

/* The masters of m (the nodes that serve a slot), hashed: equal for two maps whose slots
 * moved between the same masters, different after a failover or a master added or removed. */
static uint64_t masters_sig(const tc__slot_map_t *m) {
    uint64_t sig = 0;
    for (size_t i = 0; i < m->nnodes; i++) {
        int serves = 0;
        for (unsigned s = 0; s < TC__SLOTS && !serves; s++)
            serves = m->owner[s] == i;
        if (!serves)
            continue;
        uint64_t h = 1469598103934665603ull; /* FNV-1a of "host:port" */
        char id[TC__SLOT_HOST_MAX + 16];
        int n = snprintf(id, sizeof id, "%s:%d", m->nodes[i].host, m->nodes[i].port);
        for (int j = 0; j < n; j++)
            h = (h ^ (unsigned char)id[j]) * 1099511628211ull;
        sig += h | 1; /* a sum: the order of the nodes does not matter */
    }
    return sig;
}

/* read_replicas: each master's replica this process reads from, one of its replicas in m
 * at random (so the processes of a fleet spread their reads), or none. */
static void pick_replicas_locked(tc__cluster_t *cl, const tc__slot_map_t *m,
                                 const uint16_t *idx) {
    unsigned *seen = calloc(cl->nnodes ? cl->nnodes : 1, sizeof *seen);
    for (size_t i = 0; i < cl->nnodes; i++)
        cl->nodes[i]->replica = -1;
    for (size_t i = 0; seen && i < m->nnodes; i++) {
        if (m->nodes[i].master < 0)
            continue;
        cl_node_t *master = cl->nodes[idx[m->nodes[i].master]];
        unsigned k = ++seen[idx[m->nodes[i].master]]; /* reservoir: each with chance 1/k */
        if (tc__now_ns() / 1000u % k == 0)
            master->replica = idx[i];
    }
    free(seen);
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
    if (rc == 0 && cl->o.read_replicas)
        pick_replicas_locked(cl, m, idx);
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
    int rc = TC_EUNAVAILABLE, changed = 0;
    tc_error_t local;
    if (!err)
        err = &local;
    tc__fail(err, rc, "no cluster node is known");
    for (size_t i = 0; i < n && rc != 0; i++) {
        pthread_rwlock_rdlock(&cl->map_lock);
        cl_node_t *node = cl->nodes[i];
        pthread_rwlock_unlock(&cl->map_lock);
        tc__slot_map_t m;
        memset(&m, 0, sizeof m); /* freed below even when nothing was read into it */
        rc = read_map_from(node, &m, err);
        if (rc == 0)
            rc = install_map(cl, &m);
        if (rc == 0 && m.served == TC__SLOTS) { /* a partial map proves nothing */
            uint64_t sig = masters_sig(&m);
            changed = cl->masters_sig && sig != cl->masters_sig;
            cl->masters_sig = sig;
        }
        tc__slot_map_free(&m);
    }
    tc__count(rc == 0 ? &cl->refreshes : &cl->refresh_failures);
    if (rc == 0) {
        atomic_store(&cl->map_read, 1);
    } else {
        pthread_mutex_lock(&cl->why_mu);
        snprintf(cl->refresh_why, sizeof cl->refresh_why, "%s", err->msg);
        pthread_mutex_unlock(&cl->why_mu);
    }
    pthread_mutex_unlock(&cl->refresh_mu);
    if (changed) {
        tc__count(&cl->masters_changed);
        tc__log(cl->o.log, TC__EV_CLUSTER, TC_LOG_WARN, NULL, 0,
                "Redis Cluster: the masters changed (a failover, or a master added or "
                "removed)");
        if (cl->o.on_masters_changed)
            cl->o.on_masters_changed(cl->o.masters_arg);
    }
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

tc__cluster_verdict_t tc__cluster_verdict_of(const redisReply *r, tc__redirect_t *d) {
    if (!r || r->type != REDIS_REPLY_ERROR)
        return TC__CLUSTER_ANSWERED;
    switch (tc__redirect_parse(r->str, r->len, d)) {
    case TC__REDIRECT_MOVED:
        return TC__CLUSTER_MOVED;
    case TC__REDIRECT_ASK:
        return TC__CLUSTER_ASK;
    default:
        break;
    }
    return starts_with(r, "TRYAGAIN") || starts_with(r, "CLUSTERDOWN") ? TC__CLUSTER_RETRY
                                                                       : TC__CLUSTER_ANSWERED;
}

static int run_on_conn(void *arg, int conn, int fresh, redisContext *c) {
    tc__cluster_call_t *cc = arg;
    return cc->run(cc, conn, fresh, c);
}

/* A call with nowhere to go: say why. */
static int no_master(tc__cluster_t *cl, unsigned slot, tc_error_t *err) {
    if (atomic_load(&cl->map_read))
        return tc__fail(err, TC_EUNAVAILABLE,
                        "slot %u has no master in the cluster map (CLUSTERDOWN?)", slot);
    pthread_mutex_lock(&cl->why_mu); /* not refresh_mu: a map read may be under way */
    int rc = tc__fail(err, TC_EUNAVAILABLE,
                      "no cluster node has answered CLUSTER SLOTS yet (%s)", cl->refresh_why);
    pthread_mutex_unlock(&cl->why_mu);
    return rc;
}

int tc__cluster_run(tc__cluster_t *cl, unsigned slot, tc__cluster_call_t *cc, tc_error_t *err) {
    slot &= TC__SLOTS - 1;
    uint64_t deadline = tc__now_ns() + (uint64_t)cl->o.call_budget_ms * 1000000u;
    unsigned hops = 0;
    int replica_failed = 0;
    cl_node_t *ask = NULL;
    for (;;) {
        cl_node_t *n = ask ? ask : owner_of(cl, slot);
        if (!n && refresh(cl, 0, NULL) == 0)
            n = owner_of(cl, slot);
        if (!n) /* no map (the cluster was down at open), or a slot nobody serves */
            return no_master(cl, slot, err);
        cc->asking = ask != NULL;
        cc->on_replica = 0;
        cl_node_t *r = !ask && cc->replica_ok && !replica_failed ? replica_of(cl, n) : NULL;
        if (r && tc__node_available(r->node)) {
            n = r;
            cc->on_replica = 1;
        }
        ask = NULL;
        int rc = tc__node_run(n->node, run_on_conn, cc, err);
        if (rc == TC_EUNAVAILABLE && cc->on_replica) { /* the master still answers reads */
            replica_failed = 1;
            continue;
        }
        if (rc == 0) {
            tc__redirect_t d;
            tc__cluster_verdict_t v = cc->judge(cc, &d);
            if (v == TC__CLUSTER_ANSWERED)
                return 0;
            if (v == TC__CLUSTER_MOVED || v == TC__CLUSTER_ASK) {
                if (++hops > cl->o.max_redirects)
                    return tc__fail(err, TC_EPROTO,
                                    "slot %u: more than %u redirections (the cluster's nodes "
                                    "disagree)",
                                    slot, cl->o.max_redirects);
                if (v == TC__CLUSTER_MOVED) {
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
            if (tc__now_ns() >= deadline)
                return tc__fail(err, TC_EUNAVAILABLE,
                                "slot %u: the cluster kept answering TRYAGAIN or CLUSTERDOWN "
                                "for %u ms",
                                slot, (unsigned)cl->o.call_budget_ms);
            tc__count(&cl->retried);
            tc__sleep_ms(RETRY_NAP_MS);
            if (cc->asking) /* mid-migration: ask the target again, not the source */
                ask = n;
            else
                refresh(cl, 0, NULL);
            continue;
        }
        if (rc != TC_EUNAVAILABLE || tc__now_ns() >= deadline)
            return rc; /* a timeout may have run the command: not ours to repeat */
        /* Unreachable (refused, reset, breaker open): a failover, or a removed node? Only a
         * map that names another master says so; until the cluster has promoted a
         * replica (its node timeout, seconds) the call fails at once, as on one server,
         * instead of holding its caller for the whole budget. */
        refresh(cl, 0, NULL);
        if (cc->asking || owner_of(cl, slot) == n)
            return rc;
        tc__count(&cl->retried);
    }
}

const void *tc__cluster_owner(tc__cluster_t *cl, unsigned slot) {
    return owner_of(cl, slot & (TC__SLOTS - 1));
}

size_t tc__cluster_masters(tc__cluster_t *cl, const void **out, size_t cap) {
    size_t n = 0;
    pthread_rwlock_rdlock(&cl->map_lock);
    unsigned char *seen = calloc(cl->nnodes ? cl->nnodes : 1, 1);
    for (unsigned s = 0; seen && s < TC__SLOTS; s++) {
        uint16_t i = cl->owner[s];
        if (i == TC__SLOT_NONE || seen[i])
            continue;
        seen[i] = 1;
        if (n < cap)
            out[n] = cl->nodes[i];
        n++;
    }
    pthread_rwlock_unlock(&cl->map_lock);
    free(seen);
    return n;
}

int tc__cluster_run_at(tc__cluster_t *cl, const void *node, tc__cluster_call_t *cc,
                       tc_error_t *err) {
    (void)cl; /* nodes live until close: the identity is the node */
    cc->asking = 0;
    return tc__node_run(((const cl_node_t *)node)->node, run_on_conn, cc, err);
}

/* tc__cluster_command's call: one command, its one reply. */
typedef struct one_cmd {
    tc__cluster_call_t cc;
    int argc;
    const char **argv;
    const size_t *lens;
    redisReply *reply;
} one_cmd_t;

static int one_cmd_run(tc__cluster_call_t *cc, int conn, int fresh, redisContext *c) {
    one_cmd_t *w = (one_cmd_t *)cc;
    cmd_work_t x = {cc->asking, w->argc, w->argv, w->lens, NULL};
    int rc = run_cmd(&x, conn, fresh, c);
    w->reply = x.reply;
    return rc;
}

static tc__cluster_verdict_t one_cmd_judge(tc__cluster_call_t *cc, tc__redirect_t *d) {
    one_cmd_t *w = (one_cmd_t *)cc;
    tc__cluster_verdict_t v = tc__cluster_verdict_of(w->reply, d);
    if (v != TC__CLUSTER_ANSWERED) {
        freeReplyObject(w->reply);
        w->reply = NULL;
    }
    return v;
}

int tc__cluster_command(tc__cluster_t *cl, const void *key, size_t klen, int argc,
                        const char **argv, const size_t *lens, redisReply **reply,
                        tc_error_t *err) {
    if (reply)
        *reply = NULL;
    if (!cl || !reply || !argv || argc < 1 || (!key && klen))
        return tc__fail(err, TC_EINVAL, "cluster command: NULL argument");
    one_cmd_t w = {{one_cmd_run, one_cmd_judge, NULL, 0, 0, 0}, argc, argv, lens, NULL};
    int rc = tc__cluster_run(cl, tc__slot_of(key, klen), &w.cc, err);
    if (rc == 0)
        *reply = w.reply;
    return rc;
}

/* ---- open / close ---- */

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

void tc__cluster_close(tc__cluster_t *cl) {
    if (!cl)
        return;
    if (cl->watching) {
        pthread_mutex_lock(&cl->watch_mu);
        cl->stopping = 1;
        pthread_cond_signal(&cl->watch_cv);
        pthread_mutex_unlock(&cl->watch_mu);
        pthread_join(cl->watch, NULL);
    }
    pthread_mutex_destroy(&cl->watch_mu);
    pthread_mutex_destroy(&cl->why_mu);
    pthread_cond_destroy(&cl->watch_cv);
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

/* The watch: the map re-read every watch_ms, so a failover or a new master is seen even by
 * a process whose calls all go to other shards (a failover flushes L1: cache.c). */
static void *watch_main(void *arg) {
    tc__cluster_t *cl = arg;
    pthread_mutex_lock(&cl->watch_mu);
    while (!cl->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)cl->o.watch_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&cl->watch_cv, &cl->watch_mu, &ts);
        if (cl->stopping)
            break;
        pthread_mutex_unlock(&cl->watch_mu);
        refresh(cl, 0, NULL);
        pthread_mutex_lock(&cl->watch_mu);
    }
    pthread_mutex_unlock(&cl->watch_mu);
    return NULL;
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
    pthread_mutex_init(&cl->watch_mu, NULL);
    pthread_mutex_init(&cl->why_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cl->watch_cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = (o->user && !cl->user) || (o->password && !cl->password)
                 ? tc__fail(err, TC_ENOMEM, "out of memory")
                 : add_seeds(cl, o->seeds, err);
    if (rc == 0)
        rc = refresh(cl, 1, err);
    if (rc != 0 && rc != TC_ENOMEM && rc != TC_ECONFIG && o->lenient)
        rc = 0; /* no map yet: calls fail fast until a read succeeds */
    if (rc == 0 && o->watch_ms) {
        if (pthread_create(&cl->watch, NULL, watch_main, cl) == 0)
            cl->watching = 1;
        else
            rc = tc__fail(err, TC_ENOMEM, "cluster: cannot start the map watch thread");
    }
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
    out->masters_changed = atomic_load(&cl->masters_changed);
    pthread_rwlock_rdlock(&cl->map_lock);
    out->nodes = cl->nnodes;
    unsigned char *serves = calloc(cl->nnodes ? cl->nnodes : 1, 1);
    for (unsigned s = 0; s < TC__SLOTS; s++) {
        out->served += cl->owner[s] != TC__SLOT_NONE;
        if (serves && cl->owner[s] != TC__SLOT_NONE)
            serves[cl->owner[s]] = 1;
    }
    for (size_t i = 0; serves && i < cl->nnodes; i++) {
        out->masters += serves[i];
        out->masters_down += serves[i] && !tc__node_available(cl->nodes[i]->node);
    }
    pthread_rwlock_unlock(&cl->map_lock);
    free(serves);
}

void tc__cluster_node_totals(tc__cluster_t *cl, tc__node_counters_t *out) {
    memset(out, 0, sizeof *out);
    if (!cl)
        return;
    pthread_rwlock_rdlock(&cl->map_lock);
    for (size_t i = 0; i < cl->nnodes; i++) {
        tc__node_counters_t one;
        tc__node_counters(cl->nodes[i]->node, &one);
        out->timeouts += one.timeouts;
        out->opens += one.opens;
        out->heals += one.heals;
        out->permission_errors += one.permission_errors;
        if (one.breaker_state == 1 || (one.breaker_state == 2 && out->breaker_state == 0))
            out->breaker_state = one.breaker_state;
    }
    pthread_rwlock_unlock(&cl->map_lock);
}
