/*
 * cluster.c - `cluster`: tiercache on a Redis Cluster (redis+cluster://) against Redis
 * alone on the same cluster, with 1 master and with 3, and what its invalidations cost.
 *
 * It starts its own clusters of throwaway redis-servers with cluster-enabled (loopback
 * TCP ports, slots assigned with CLUSTER ADDSLOTSRANGE, joined with CLUSTER MEET): one of
 * a single master holding every slot, then one of three masters with a third each. On
 * each (after -n keys written through a cache with L1 off, so both sides read the same
 * stored values):
 *
 *   1. Redis alone: -t threads, each GET of the key's stored copy sent to the master of
 *      its slot (the router tiercache uses: src/cluster.c, MOVED and ASK followed), Zipf
 *      keys, for --warmup then -d: operations per second;
 *   2. tiercache: -t threads of tc_get through a cache with the run's L1 (-l, default 10%
 *      of the keys): operations per second and L1 hit rate;
 *   3. bulk: one thread of tc_mget of 100 keys at a time through a cache with L1 off, so
 *      every key goes to Redis: keys per second (a batch is split into one pipeline per
 *      master).
 *
 * Then, on the 3-master cluster, the two ways an invalidation can travel: a PUBLISH sent
 * to one master and heard by a SUBSCRIBE on another node (classic pub/sub, which the
 * cluster bus forwards to every node: what tiercache uses, one listener per process), and
 * an SPUBLISH heard by an SSUBSCRIBE on the shard's own master (sharded pub/sub, Redis 7:
 * one listener per master). Each is timed from the publish to the message, one at a time.
 *
 * Every node runs on this machine, so with 3 masters the servers share its cores with the
 * readers: read the rows as what the routing costs and what L1 saves, not as scaling.
 */
#include "multi.h"

#include "checks.h"
#include "cluster.h"
#include "fmt.h"
#include "json.h"
#include "server.h"
#include "slot.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_MASTERS 3
#define MAX_THREADS 256
#define BULK_BATCH  100
#define PUBSUB_MSGS 2000

typedef struct cl_row {
    int masters;
    double ro_ops, tc_ops, hit_rate, bulk_keys;
    uint64_t errors;
} cl_row_t;

typedef struct cl_run {
    const tcb_opts_t *o;
    tcb_server_t srv[MAX_MASTERS];
    int started;
    char seeds[MAX_MASTERS * 24];
    char prefix[64];
    cl_row_t row[2];
    tcb_multi_summary_t publish_us, spublish_us; /* microseconds */
} cl_run_t;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the clusters ---- */

static redisContext *node_conn(const tcb_server_t *s) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectUnixWithTimeout(s->sock, tv);
    if (c && c->err) {
        redisFree(c);
        c = NULL;
    }
    return c;
}

static int node_do(const tcb_server_t *s, const char *what, const char *fmt, ...) {
    redisContext *c = node_conn(s);
    if (!c)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        fprintf(stderr, "tiercache-bench: cluster: %s: %s\n", what,
                r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
    return ok ? 0 : -1;
}

/* 1 when node s says cluster_state:ok. */
static int node_ok(const tcb_server_t *s) {
    redisContext *c = node_conn(s);
    if (!c)
        return 0;
    redisReply *r = redisCommand(c, "CLUSTER INFO");
    int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") &&
             strstr(r->str, "cluster_known_nodes:") != NULL;
    freeReplyObject(r);
    redisFree(c);
    return ok;
}

static void stop_all(cl_run_t *r) {
    for (int i = 0; i < r->started; i++)
        tcb_server_stop(&r->srv[i]);
    r->started = 0;
}

/* n masters, the slots split evenly, every node agreeing the cluster is up. */
static int start_cluster(cl_run_t *r, int n) {
    char err[512];
    size_t at = 0;
    r->seeds[0] = '\0';
    for (; r->started < n; r->started++) {
        int port = tcb_server_free_port();
        if (!port ||
            tcb_server_start_cluster_node(&r->srv[r->started], port, err, sizeof err) != 0) {
            fprintf(stderr, "tiercache-bench: cluster: %s\n", port ? err : "no free port");
            return -1;
        }
        at += (size_t)snprintf(r->seeds + at, sizeof r->seeds - at, "%s127.0.0.1:%d",
                               at ? "," : "", port);
    }
    for (int i = 0; i < n; i++) {
        unsigned lo = TC__SLOTS * (unsigned)i / (unsigned)n;
        unsigned hi = TC__SLOTS * (unsigned)(i + 1) / (unsigned)n - 1;
        if (node_do(&r->srv[i], "CLUSTER ADDSLOTSRANGE", "CLUSTER ADDSLOTSRANGE %u %u", lo,
                    hi) != 0)
            return -1;
    }
    for (int i = 1; i < n; i++)
        if (node_do(&r->srv[0], "CLUSTER MEET", "CLUSTER MEET 127.0.0.1 %d", r->srv[i].port) !=
            0)
            return -1;
    for (int tries = 0; tries < 300; tries++) { /* up to 30 s */
        int ok = 1;
        for (int i = 0; i < n && ok; i++)
            ok = node_ok(&r->srv[i]);
        if (ok)
            return 0;
        tcb_multi_sleep_us(100000);
    }
    fprintf(stderr, "tiercache-bench: cluster: %d nodes did not agree within 30 s\n", n);
    return -1;
}

static tc_cache_t *open_cache(cl_run_t *r, const char *sub, uint64_t l1_bytes,
                              uint64_t l1_entries) {
    char url[sizeof r->seeds + 32], prefix[128], channel[160];
    snprintf(url, sizeof url, "redis+cluster://%s", r->seeds);
    snprintf(prefix, sizeof prefix, "%s%s", r->prefix, sub);
    snprintf(channel, sizeof channel, "%sinval", prefix);
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = url;
    cfg.key_prefix = prefix;
    cfg.inval_channel = channel;
    cfg.require_redis = 1;
    cfg.connect_timeout_ms = 5000;
    cfg.command_timeout_ms = 5000;
    cfg.l1_max_bytes = (size_t)l1_bytes;
    cfg.l1_max_entries = (size_t)l1_entries;
    cfg.pool_size = r->o->threads > 8 ? r->o->threads : 8;
    tc_cache_t *c = NULL;
    tc_error_t err;
    if (tc_open(&cfg, &c, &err) != 0)
        fprintf(stderr, "tiercache-bench: cluster: tc_open: %s\n", err.msg);
    return c;
}

/* ---- readers ---- */

/* Redis alone: the router and the stored keys' prefix. */
typedef struct raw_reader {
    tc__cluster_t *route;
    const char *rprefix;
} raw_reader_t;

/* GET <prefix>"{"<slot name>"}k:"<key>, the copy tiercache stored, on its slot's master. */
static int raw_get(void *arg, const char *key) {
    const raw_reader_t *rr = arg;
    char rkey[256];
    size_t n;
    const char *name = tc__slot_name(tc__slot_of(key, TCB_KEY_LEN), &n);
    int len = snprintf(rkey, sizeof rkey, "%s{%.*s}k:%s", rr->rprefix, (int)n, name, key);
    const char *argv[2] = {"GET", rkey};
    size_t lens[2] = {3, (size_t)len};
    redisReply *rep = NULL;
    tc_error_t err;
    int rc = tc__cluster_command(rr->route, rkey, (size_t)len, 2, argv, lens, &rep, &err);
    int ok = rc == 0 && rep->type == REDIS_REPLY_STRING;
    if (rep)
        freeReplyObject(rep);
    return ok ? 0 : -1;
}

/* Steps 1-3 on the cluster now running, into row. */
static int measure(cl_run_t *r, const tcb_workload_t *wl, cl_row_t *row) {
    const tcb_opts_t *o = r->o;
    double secs = (double)o->duration_ns / 1e9;
    uint64_t ops = 0, errors = 0;
    char sub[16], stored[160];
    snprintf(sub, sizeof sub, "m%d:", row->masters);
    snprintf(stored, sizeof stored, "%s%s", r->prefix, sub);
    tc_cache_t *plain = open_cache(r, sub, 0, 0); /* L1 off: writes, and the bulk reads */
    if (!plain)
        return -1;
    tcb_status(o, "cluster: %d master%s: writing %llu keys", row->masters,
               row->masters > 1 ? "s" : "", (unsigned long long)o->keys);
    int rc = tcb_multi_write(plain, o, "", 0, o->keys, NULL);

    /* 1. Redis alone, through the router */
    tc__cluster_opts_t co = {.seeds = r->seeds,
                             .connect_timeout_ms = 5000,
                             .command_timeout_ms = 5000,
                             .pool_size = o->threads};
    tc__cluster_t *route = NULL;
    tc_error_t err;
    if (rc == 0 && tc__cluster_open(&co, &route, &err) != 0) {
        fprintf(stderr, "tiercache-bench: cluster: router: %s\n", err.msg);
        rc = -1;
    }
    raw_reader_t rr = {route, stored};
    if (rc == 0) {
        tcb_status(o, "cluster: %d master%s: Redis alone", row->masters,
                   row->masters > 1 ? "s" : "");
        rc = tcb_multi_read_for(o, wl, o->threads, o->warmup_ns, raw_get, &rr, &ops, &errors);
    }
    if (rc == 0)
        rc = tcb_multi_read_for(o, wl, o->threads, o->duration_ns, raw_get, &rr, &ops, &errors);
    row->ro_ops = (double)ops / secs;
    row->errors += errors;
    tc__cluster_close(route);

    /* 2. tiercache with the run's L1 */
    uint64_t entries, bytes;
    tcb_l1_capacity(o, o->l1_pct, o->keys, &entries, &bytes);
    tc_cache_t *c = rc == 0 ? open_cache(r, sub, bytes, entries) : NULL;
    if (rc == 0 && !c)
        rc = -1;
    tc_stats_t before, after;
    if (rc == 0) {
        tcb_status(o, "cluster: %d master%s: tiercache", row->masters,
                   row->masters > 1 ? "s" : "");
        rc = tcb_multi_read_for(o, wl, o->threads, o->warmup_ns, tcb_multi_tc_get, c, &ops,
                                &errors);
    }
    if (rc == 0) {
        tc_stats(c, &before);
        rc = tcb_multi_read_for(o, wl, o->threads, o->duration_ns, tcb_multi_tc_get, c, &ops,
                                &errors);
        tc_stats(c, &after);
        uint64_t hits = after.l1_hits - before.l1_hits;
        uint64_t misses = after.l1_misses - before.l1_misses;
        row->tc_ops = (double)ops / secs;
        row->hit_rate = hits + misses ? (double)hits / (double)(hits + misses) : NAN;
        row->errors += errors;
    }
    tc_close(c);

    /* 3. bulk reads, every key to Redis */
    uint64_t keys_read = 0, t0 = now_ns(), until = t0 + o->duration_ns / 2;
    tcb_multi_keys_t *k = rc == 0 ? malloc(sizeof *k) : NULL;
    tc_ref_t *refs[BULK_BATCH];
    int codes[BULK_BATCH];
    for (uint64_t first = 0; k && now_ns() < until && !tcb_interrupted;
         first = (first + BULK_BATCH) % (o->keys > BULK_BATCH ? o->keys - BULK_BATCH : 1)) {
        tcb_multi_keys_fill(k, "", first, BULK_BATCH);
        int brc = tc_mget(plain, k->bufs, BULK_BATCH, refs, codes);
        for (size_t i = 0; i < BULK_BATCH; i++) {
            row->errors += brc == 0 && codes[i] != 0;
            tc_ref_release(refs[i]);
        }
        row->errors += brc != 0;
        keys_read += BULK_BATCH;
    }
    row->bulk_keys = (double)keys_read / ((double)(now_ns() - t0) / 1e9);
    free(k);
    tc_close(plain);
    return rc;
}

/* ---- classic vs sharded pub/sub ---- */

/* n messages, one at a time: publish on pub (cmd: PUBLISH or SPUBLISH), wait for it on
 * sub (subscribed with SUBSCRIBE or SSUBSCRIBE), the time between in microseconds. */
static int pubsub_times(const tcb_server_t *pub_node, const tcb_server_t *sub_node,
                        const char *cmd, const char *sub_cmd, const char *channel,
                        tcb_multi_summary_t *out) {
    redisContext *pub = node_conn(pub_node), *sub = node_conn(sub_node);
    uint64_t *us = malloc(PUBSUB_MSGS * sizeof *us);
    int rc = pub && sub && us ? 0 : -1;
    redisReply *r = NULL;
    if (rc == 0) {
        r = redisCommand(sub, "%s %s", sub_cmd, channel);
        rc = r && r->type == REDIS_REPLY_ARRAY ? 0 : -1;
        if (rc != 0)
            fprintf(stderr, "tiercache-bench: cluster: %s: %s\n", sub_cmd,
                    r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
        freeReplyObject(r);
    }
    size_t got = 0;
    for (size_t i = 0; i < PUBSUB_MSGS && rc == 0; i++) {
        uint64_t t0 = now_ns();
        r = redisCommand(pub, "%s %s m%lu", cmd, channel, (unsigned long)i);
        rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -1;
        if (rc != 0)
            fprintf(stderr, "tiercache-bench: cluster: %s: %s\n", cmd,
                    r && r->type == REDIS_REPLY_ERROR ? r->str : pub->errstr);
        freeReplyObject(r);
        void *m = NULL;
        if (rc == 0 && redisGetReply(sub, &m) != REDIS_OK) {
            fprintf(stderr, "tiercache-bench: cluster: no message after %s: %s\n", cmd,
                    sub->errstr);
            rc = -1;
        }
        if (rc == 0)
            us[got++] = (now_ns() - t0) / 1000u;
        freeReplyObject(m);
    }
    if (rc == 0)
        tcb_multi_summarize(us, got, out);
    free(us);
    if (pub)
        redisFree(pub);
    if (sub)
        redisFree(sub);
    return rc;
}

/* The channel's shard (its slot's master) and another node of the running cluster. */
static int pubsub(cl_run_t *r) {
    const char *channel = "tcbench:inval";
    unsigned slot = tc__slot_of(channel, strlen(channel));
    int owner = (int)(slot * (unsigned)r->started / TC__SLOTS),
        other = (owner + 1) % r->started;
    tcb_status(r->o, "cluster: PUBLISH vs SPUBLISH, %d messages each", PUBSUB_MSGS);
    if (pubsub_times(&r->srv[owner], &r->srv[other], "PUBLISH", "SUBSCRIBE", channel,
                     &r->publish_us) != 0)
        return -1;
    return pubsub_times(&r->srv[owner], &r->srv[owner], "SPUBLISH", "SSUBSCRIBE", channel,
                        &r->spublish_us);
}

/* ---- output ---- */

static void print_text(const cl_run_t *r) {
    const tcb_opts_t *o = r->o;
    char a[32], b[32], c[32], d[32];
    printf("cluster: Redis Cluster on this machine (cluster-enabled redis-servers), %s keys, "
           "%u threads, L1 %.3g%% of the keys\n\n",
           tcb_fmt_count(o->keys, a, sizeof a), o->threads, o->l1_pct);
    printf("  masters  Redis alone ops/s  tiercache ops/s  speedup  L1 hit rate  "
           "tc_mget keys/s (L1 off)  errors\n");
    for (int k = 0; k < 2; k++) {
        const cl_row_t *w = &r->row[k];
        char x[16];
        snprintf(x, sizeof x, "%.1fx", w->ro_ops > 0 ? w->tc_ops / w->ro_ops : NAN);
        printf("  %-7d  %-17s  %-15s  %-7s  %-11s  %-23s  %llu\n", w->masters,
               tcb_fmt_count((uint64_t)w->ro_ops, a, sizeof a),
               tcb_fmt_count((uint64_t)w->tc_ops, b, sizeof b), x,
               tcb_fmt_pct(100.0 * w->hit_rate, c, sizeof c),
               tcb_fmt_count((uint64_t)w->bulk_keys, d, sizeof d),
               (unsigned long long)w->errors);
    }
    printf("\ninvalidation transport, 3 masters, %d messages one at a time (publish to "
           "message):\n",
           PUBSUB_MSGS);
    printf("  PUBLISH on the shard, SUBSCRIBE on another node (tiercache's): p50 %llu us, "
           "p99 %llu us, max %llu us\n",
           (unsigned long long)r->publish_us.p50, (unsigned long long)r->publish_us.p99,
           (unsigned long long)r->publish_us.max);
    printf("  SPUBLISH on the shard, SSUBSCRIBE on the shard:                 p50 %llu us, "
           "p99 %llu us, max %llu us\n",
           (unsigned long long)r->spublish_us.p50, (unsigned long long)r->spublish_us.p99,
           (unsigned long long)r->spublish_us.max);
    tcb_warnings_print(stdout);
}

static void print_json(const cl_run_t *r) {
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "cluster");
    tcb_json_u64(&j, "keys", r->o->keys);
    tcb_json_u64(&j, "threads", r->o->threads);
    tcb_json_arr_begin(&j, "rows");
    for (int k = 0; k < 2; k++) {
        const cl_row_t *w = &r->row[k];
        tcb_json_obj_begin(&j, NULL);
        tcb_json_u64(&j, "masters", (uint64_t)w->masters);
        tcb_json_dbl(&j, "redis_alone_ops", w->ro_ops);
        tcb_json_dbl(&j, "tiercache_ops", w->tc_ops);
        tcb_json_dbl(&j, "l1_hit_rate", w->hit_rate);
        tcb_json_dbl(&j, "mget_keys_per_s", w->bulk_keys);
        tcb_json_u64(&j, "errors", w->errors);
        tcb_json_obj_end(&j);
    }
    tcb_json_arr_end(&j);
    tcb_json_u64(&j, "publish_p50_us", r->publish_us.p50);
    tcb_json_u64(&j, "publish_p99_us", r->publish_us.p99);
    tcb_json_u64(&j, "spublish_p50_us", r->spublish_us.p50);
    tcb_json_u64(&j, "spublish_p99_us", r->spublish_us.p99);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

static int run(cl_run_t *r) {
    const tcb_opts_t *o = r->o;
    if (o->redis_url) {
        fprintf(stderr, "tiercache-bench: cluster starts its own nodes: --redis is not used\n");
        return -1;
    }
    if (o->threads > MAX_THREADS) {
        fprintf(stderr, "tiercache-bench: cluster: at most %d threads\n", MAX_THREADS);
        return -1;
    }
    snprintf(r->prefix, sizeof r->prefix, "tcbench:%d:", (int)getpid());
    tcb_workload_t wl;
    if ((o->wl_kind == TCB_WL_UNIFORM ? tcb_workload_uniform(&wl, o->keys)
                                      : tcb_workload_zipf(&wl, o->keys, o->zipf_s)) != 0)
        return -1;
    static const int masters[2] = {1, MAX_MASTERS};
    for (int k = 0; k < 2; k++) {
        r->row[k].masters = masters[k];
        tcb_status(o, "cluster: starting %d master%s", masters[k], masters[k] > 1 ? "s" : "");
        if (start_cluster(r, masters[k]) != 0 || measure(r, &wl, &r->row[k]) != 0 ||
            tcb_interrupted)
            return -1;
        if (k == 0)
            stop_all(r);
    }
    if (pubsub(r) != 0)
        return -1;
    o->json ? print_json(r) : print_text(r);
    return r->row[0].errors + r->row[1].errors == 0 ? 0 : -1;
}

int tcb_cmd_cluster(const tcb_opts_t *o) {
    cl_run_t *r = calloc(1, sizeof *r);
    if (!r)
        return 1;
    r->o = o;
    int rc = run(r);
    stop_all(r);
    free(r);
    return rc == 0 ? 0 : 1;
}
