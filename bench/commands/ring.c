/*
 * ring.c - `ring`: one cache over several standalone Redis servers (a redis_url listing
 * them), against the same cache over one: where the keys go, what adding a server moves,
 * and what the routing costs a reader.
 *
 * It starts four throwaway redis-servers of its own (--redis is refused: it needs servers
 * it may fill and count), then:
 *
 *   1. placement: a cache over servers 1-3 writes the -n keys (tc_mset, L1 off), and each
 *      server's DBSIZE gives its share (the ring's ideal is a third each);
 *   2. adding a server: a cache over servers 1-4 reads every key (tc_mget, L1 off); a key
 *      it does not find has moved to the new server (ideal: a quarter);
 *   3. readers: for 1 server and for 3, a cache with the run's L1 (-l, default 10% of the
 *      keys), the keys written, then -t threads of tc_get on Zipf(-s) keys for --warmup
 *      and -d: operations per second and L1 hit rate. Every server runs on this machine,
 *      so on a small box the servers share its cores with the readers: read the two rows
 *      as "what the routing and the split L1 cost", not as a scaling result;
 *   4. the hit path: for 1 server and for 3, a cache whose L1 holds every key, one thread
 *      of tc_get on uniform keys, rounds alternating 1, 3, 1, 3... (3 each): the median
 *      nanoseconds per hit, and their ratio, the price of finding the key's server.
 */
#include "multi.h"

#include "checks.h"
#include "fmt.h"
#include "json.h"
#include "server.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SERVERS     3 /* the ring measured; one more is started to be added */
#define HIT_ROUNDS  3
#define MAX_THREADS 256

typedef struct ring_run {
    const tcb_opts_t *o;
    tcb_server_t srv[SERVERS + 1];
    int started;
    char prefix[64];
    uint64_t per_server[SERVERS];
    double moved;               /* share of keys not found after adding a server */
    double ops[2], hit_rate[2]; /* readers: 1 server, SERVERS servers */
    uint64_t errors[2];
    double hit_ns[2], hit_ratio; /* hit path medians */
} ring_run_t;

/* A cache over the first n servers; l1 budgets as given (0 bytes: L1 off). */
static tc_cache_t *open_over(ring_run_t *r, int n, const char *sub, uint64_t l1_bytes,
                             uint64_t l1_entries) {
    char urls[SERVERS * 200 + 200] = "", prefix[128], channel[160];
    size_t at = 0;
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(urls + at, sizeof urls - at, "%s ", r->srv[i].url);
    snprintf(prefix, sizeof prefix, "%s%s", r->prefix, sub);
    /* A channel per cache: the caches hold the same keys under other prefixes, and one's
     * writes must not evict another's copies. */
    snprintf(channel, sizeof channel, "%sinval", prefix);
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = urls;
    cfg.key_prefix = prefix;
    cfg.inval_channel = channel;
    cfg.require_redis = 1;
    cfg.connect_timeout_ms = 5000;
    cfg.command_timeout_ms = 5000;
    cfg.l1_max_bytes = (size_t)l1_bytes;
    cfg.l1_max_entries = (size_t)l1_entries;
    tc_cache_t *c = NULL;
    tc_error_t err;
    if (tc_open(&cfg, &c, &err) != 0)
        fprintf(stderr, "tiercache-bench: ring: tc_open over %d servers: %s\n", n, err.msg);
    return c;
}

static uint64_t dbsize(const tcb_server_t *s) {
    redisContext *c = redisConnectUnix(s->sock);
    uint64_t n = 0;
    if (c && !c->err) {
        redisReply *rep = redisCommand(c, "DBSIZE");
        if (rep && rep->type == REDIS_REPLY_INTEGER)
            n = (uint64_t)rep->integer;
        freeReplyObject(rep);
    }
    if (c)
        redisFree(c);
    return n;
}

/* Steps 1 and 2. */
static int placement(ring_run_t *r) {
    const tcb_opts_t *o = r->o;
    tc_cache_t *c = open_over(r, SERVERS, "p:", 0, 0);
    if (!c)
        return -1;
    tcb_status(o, "ring: writing %llu keys over %d servers", (unsigned long long)o->keys,
               SERVERS);
    int rc = tcb_multi_write(c, o, "", 0, o->keys, NULL);
    tc_close(c);
    if (rc != 0)
        return -1;
    for (int i = 0; i < SERVERS; i++)
        r->per_server[i] = dbsize(&r->srv[i]);
    if (!(c = open_over(r, SERVERS + 1, "p:", 0, 0)))
        return -1;
    uint64_t found = 0;
    rc = tcb_multi_read(c, "", 0, o->keys, &found);
    tc_close(c);
    r->moved = 1.0 - (double)found / (double)o->keys;
    return rc;
}

/* ---- readers ---- */

/* Step 3, for n servers into slot k. */
static int readers(ring_run_t *r, const tcb_workload_t *wl, int n, int k) {
    const tcb_opts_t *o = r->o;
    uint64_t entries, bytes, ops = 0, errors = 0;
    tcb_l1_capacity(o, o->l1_pct, o->keys, &entries, &bytes);
    char sub[16];
    snprintf(sub, sizeof sub, "r%d:", n);
    tc_cache_t *c = open_over(r, n, sub, bytes, entries);
    if (!c)
        return -1;
    tcb_status(o, "ring: readers over %d server%s", n, n > 1 ? "s" : "");
    int rc = tcb_multi_write(c, o, "", 0, o->keys, NULL);
    if (rc == 0)
        rc = tcb_multi_read_for(o, wl, o->threads, o->warmup_ns, tcb_multi_tc_get, c, &ops,
                                &errors);
    tc_stats_t before, after;
    tc_stats(c, &before);
    if (rc == 0)
        rc = tcb_multi_read_for(o, wl, o->threads, o->duration_ns, tcb_multi_tc_get, c, &ops,
                                &errors);
    tc_stats(c, &after);
    uint64_t hits = after.l1_hits - before.l1_hits;
    uint64_t misses = after.l1_misses - before.l1_misses;
    r->ops[k] = (double)ops / ((double)o->duration_ns / 1e9);
    r->hit_rate[k] = hits + misses ? (double)hits / (double)(hits + misses) : NAN;
    r->errors[k] = errors;
    tc_close(c);
    return rc;
}

/* ---- the hit path ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Step 4. */
static int hit_path(ring_run_t *r) {
    const tcb_opts_t *o = r->o;
    tcb_workload_t uni;
    if (tcb_workload_uniform(&uni, o->keys) != 0)
        return -1;
    tc_cache_t *c[2] = {0};
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        int n = k ? SERVERS : 1;
        char sub[16];
        snprintf(sub, sizeof sub, "h%d:", n);
        /* Every key resident: an entry cap of all of them, bytes to spare. */
        if (!(c[k] = open_over(r, n, sub, o->keys * 1024 + (64u << 20), 0))) {
            rc = -1;
            break;
        }
        rc = tcb_multi_write(c[k], o, "", 0, o->keys, NULL);
        uint64_t found = 0;
        if (rc == 0)
            rc = tcb_multi_read(c[k], "", 0, o->keys, &found);
    }
    double ns[2][HIT_ROUNDS];
    tcb_opts_t one = *o;
    one.threads = 1;
    uint64_t round_ns = o->duration_ns / (2 * HIT_ROUNDS);
    if (round_ns < 200000000ull)
        round_ns = 200000000ull;
    tcb_status(o, "ring: the hit path, %d rounds of 1 and %d servers", HIT_ROUNDS, SERVERS);
    for (int i = 0; i < HIT_ROUNDS && rc == 0; i++)
        for (int k = 0; k < 2 && rc == 0; k++) {
            uint64_t ops = 0, errors = 0;
            rc = tcb_multi_read_for(&one, &uni, 1, round_ns, tcb_multi_tc_get, c[k], &ops,
                                    &errors);
            ns[k][i] = ops ? (double)round_ns / (double)ops : NAN;
        }
    for (int k = 0; k < 2; k++) {
        tc_close(c[k]);
        qsort(ns[k], HIT_ROUNDS, sizeof ns[k][0], cmp_double);
        r->hit_ns[k] = ns[k][HIT_ROUNDS / 2];
    }
    r->hit_ratio = r->hit_ns[1] / r->hit_ns[0];
    return rc;
}

/* ---- output ---- */

static void print_text(const ring_run_t *r) {
    const tcb_opts_t *o = r->o;
    char a[32], b[32];
    printf("ring: %d standalone redis-servers on this machine, %s keys\n\n", SERVERS,
           tcb_fmt_count(o->keys, a, sizeof a));
    printf("placement over %d servers (ideal %.1f%% each):", SERVERS, 100.0 / SERVERS);
    for (int i = 0; i < SERVERS; i++)
        printf(" %.1f%%", 100.0 * (double)r->per_server[i] / (double)o->keys);
    printf("\nadding a server moved %.1f%% of the keys (ideal %.1f%%)\n\n", 100.0 * r->moved,
           100.0 / (SERVERS + 1));
    printf("readers: %u threads of tc_get, L1 %.3g%% of the keys\n", o->threads, o->l1_pct);
    printf("  servers  ops/s         L1 hit rate  errors\n");
    for (int k = 0; k < 2; k++)
        printf("  %-7d  %-12s  %-11s  %llu\n", k ? SERVERS : 1,
               tcb_fmt_count((uint64_t)r->ops[k], a, sizeof a),
               tcb_fmt_pct(100.0 * r->hit_rate[k], b, sizeof b),
               (unsigned long long)r->errors[k]);
    printf("\nL1 hit, 1 thread, every key resident (median of %d rounds):\n", HIT_ROUNDS);
    printf("  1 server %s/op, %d servers %s/op: %.2fx\n", tcb_fmt_ns(r->hit_ns[0], a, sizeof a),
           SERVERS, tcb_fmt_ns(r->hit_ns[1], b, sizeof b), r->hit_ratio);
    tcb_warnings_print(stdout);
}

static void print_json(const ring_run_t *r) {
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "ring");
    tcb_json_u64(&j, "servers", SERVERS);
    tcb_json_u64(&j, "keys", r->o->keys);
    tcb_json_arr_begin(&j, "placement_share");
    for (int i = 0; i < SERVERS; i++)
        tcb_json_dbl(&j, NULL, (double)r->per_server[i] / (double)r->o->keys);
    tcb_json_arr_end(&j);
    tcb_json_dbl(&j, "moved_share_adding_one", r->moved);
    tcb_json_u64(&j, "threads", r->o->threads);
    tcb_json_dbl(&j, "ops_1_server", r->ops[0]);
    tcb_json_dbl(&j, "ops_ring", r->ops[1]);
    tcb_json_dbl(&j, "l1_hit_rate_1_server", r->hit_rate[0]);
    tcb_json_dbl(&j, "l1_hit_rate_ring", r->hit_rate[1]);
    tcb_json_u64(&j, "errors", r->errors[0] + r->errors[1]);
    tcb_json_dbl(&j, "hit_ns_1_server", r->hit_ns[0]);
    tcb_json_dbl(&j, "hit_ns_ring", r->hit_ns[1]);
    tcb_json_dbl(&j, "hit_ratio", r->hit_ratio);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

static int run(ring_run_t *r) {
    const tcb_opts_t *o = r->o;
    if (o->redis_url) {
        fprintf(stderr, "tiercache-bench: ring starts its own servers: --redis is not used\n");
        return -1;
    }
    if (o->threads > MAX_THREADS) {
        fprintf(stderr, "tiercache-bench: ring: at most %d threads\n", MAX_THREADS);
        return -1;
    }
    snprintf(r->prefix, sizeof r->prefix, "tcbench:%d:", (int)getpid());
    char err[512];
    for (; r->started < SERVERS + 1; r->started++)
        if (tcb_server_start(&r->srv[r->started], err, sizeof err) != 0) {
            fprintf(stderr, "tiercache-bench: ring: %s\n", err);
            return -1;
        }
    tcb_workload_t wl;
    int rc = o->wl_kind == TCB_WL_UNIFORM ? tcb_workload_uniform(&wl, o->keys)
                                          : tcb_workload_zipf(&wl, o->keys, o->zipf_s);
    if (rc != 0 || placement(r) != 0 || readers(r, &wl, 1, 0) != 0 ||
        readers(r, &wl, SERVERS, 1) != 0 || hit_path(r) != 0 || tcb_interrupted)
        return -1;
    o->json ? print_json(r) : print_text(r);
    return r->errors[0] + r->errors[1] == 0 ? 0 : -1;
}

int tcb_cmd_ring(const tcb_opts_t *o) {
    ring_run_t *r = calloc(1, sizeof *r);
    if (!r)
        return 1;
    r->o = o;
    int rc = run(r);
    for (int i = 0; i < r->started; i++)
        tcb_server_stop(&r->srv[i]);
    free(r);
    return rc == 0 ? 0 : 1;
}
