/* tc-test-labels: cluster integration fault */
/*
 * test_cluster_route.c - the cluster router (src/cluster.c) against a real Redis Cluster
 * (3 masters + 3 replicas): every command lands on its slot's master; a map made stale
 * behind the router's back is corrected by MOVED; a live `redis-cli --cluster reshard`
 * under a writer loses no write and shows the writer no error (MOVED and ASK followed);
 * a master killed with SIGKILL costs calls on its slots no more than the call budget each
 * until its replica is promoted, after which they succeed (recovery time printed).
 */
#include "cluster.h"
#include "errors.h"
#include "peer.h"
#include "redis_cluster.h"
#include "slot.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static tc_test_cluster_t *cl;

static void setup(void) {
    cl = tc_test_cluster_start(3, 1);
}

static void teardown(void) {
    tc_test_cluster_stop(cl);
    cl = NULL;
}

TestSuite(cluster_route, .init = setup, .fini = teardown, .timeout = 180);

static tc__cluster_t *open_router(void) {
    tc__cluster_opts_t o = {.seeds = tc_test_cluster_seeds(cl),
                            .connect_timeout_ms = 500,
                            .command_timeout_ms = 1000,
                            .pool_size = 4,
                            .call_budget_ms = 1500};
    tc__cluster_t *r = NULL;
    tc_error_t err;
    cr_assert_eq(tc__cluster_open(&o, &r, &err), 0, "%s", err.msg);
    return r;
}

/* SET or GET through the router; the reply (freed by the caller) or NULL with *rc. */
static redisReply *cmd(tc__cluster_t *r, int *rc, const char *verb, const char *key,
                       const char *val) {
    const char *argv[3] = {verb, key, val};
    size_t lens[3] = {strlen(verb), strlen(key), val ? strlen(val) : 0};
    redisReply *rep = NULL;
    tc_error_t err;
    *rc = tc__cluster_command(r, key, strlen(key), val ? 3 : 2, argv, lens, &rep, &err);
    return rep;
}

static void set_ok(tc__cluster_t *r, const char *key, const char *val) {
    int rc;
    redisReply *rep = cmd(r, &rc, "SET", key, val);
    cr_assert_eq(rc, 0, "SET %s: %s", key, tc_err_name(rc));
    cr_assert_eq(rep->type, REDIS_REPLY_STATUS, "SET %s: %s", key, rep->str);
    freeReplyObject(rep);
}

static void expect_value(tc__cluster_t *r, const char *key, const char *val) {
    int rc;
    redisReply *rep = cmd(r, &rc, "GET", key, NULL);
    cr_assert_eq(rc, 0, "GET %s: %s", key, tc_err_name(rc));
    cr_assert(rep->type == REDIS_REPLY_STRING && strcmp(rep->str, val) == 0,
              "GET %s: type %d, want %s", key, rep->type, val);
    freeReplyObject(rep);
}

static int master_of_slot(unsigned slot) {
    return tc_test_cluster_master_of_slot(cl, slot);
}

static void node_id(int i, char id[64]) {
    tc_test_cluster_node_id(cl, i, id);
}

/* A raw GET on node i, without following anything: the string, or "" for nil or an error. */
static void raw_get(int i, const char *key, char *out, size_t cap) {
    redisContext *c = tc_test_redis_connect(tc_test_cluster_node(cl, i));
    redisReply *r = redisCommand(c, "GET %s", key);
    snprintf(out, cap, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r)
        freeReplyObject(r);
    redisFree(c);
}

Test(cluster_route, every_command_lands_on_its_slots_master) {
    tc__cluster_t *r = open_router();
    tc__cluster_counters_t k;
    tc__cluster_counters(r, &k);
    cr_assert_eq(k.served, 16384u);
    for (int i = 0; i < 500; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "route:%d", i);
        snprintf(val, sizeof val, "v%d", i);
        set_ok(r, key, val);
        expect_value(r, key, val);
        if (i % 25 == 0) { /* physically on the master the cluster names */
            char got[32];
            raw_get(master_of_slot(tc__slot_of(key, strlen(key))), key, got, sizeof got);
            cr_assert_str_eq(got, val, "%s is not on its slot's master", key);
        }
    }
    tc__cluster_counters(r, &k);
    cr_assert_eq(k.moved + k.asked, 0, "a fresh map needed %llu redirections",
                 (unsigned long long)(k.moved + k.asked));
    tc__cluster_close(r);
}

/* An empty slot handed to another master behind the router's back: the first call is
 * answered MOVED, followed, and the map learns it. */
Test(cluster_route, a_stale_map_is_corrected_by_moved) {
    tc__cluster_t *r = open_router();
    const char *key = "{moved}k";
    unsigned slot = tc__slot_of(key, strlen(key));
    int src = master_of_slot(slot), dst = -1;
    for (int i = 0; i < tc_test_cluster_nodes(cl) && dst < 0; i++)
        if (i != src && tc_test_cluster_master_of(cl, i) == 0)
            dst = i;
    char dst_id[64];
    node_id(dst, dst_id);
    int order[2] = {dst, src};
    for (int j = 0; j < 2; j++) {
        redisContext *c = tc_test_redis_connect(tc_test_cluster_node(cl, order[j]));
        redisReply *rep = redisCommand(c, "CLUSTER SETSLOT %u NODE %s", slot, dst_id);
        cr_assert(rep && rep->type == REDIS_REPLY_STATUS, "SETSLOT NODE: %s",
                  rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "no reply");
        freeReplyObject(rep);
        redisFree(c);
    }
    set_ok(r, key, "moved-value");
    tc__cluster_counters_t k;
    tc__cluster_counters(r, &k);
    cr_assert_geq(k.moved, 1, "the stale map was never redirected");
    char got[32];
    raw_get(dst, key, got, sizeof got);
    cr_assert_str_eq(got, "moved-value", "the write did not land on the slot's new master");
    expect_value(r, key, "moved-value");
    tc__cluster_close(r);
}

/* ---- live resharding under a writer ---- */

#define RESHARD_KEYS 400

typedef struct writer {
    tc__cluster_t *r;
    atomic_int stop;
    atomic_uint_fast64_t writes, errors;
    uint64_t last[RESHARD_KEYS]; /* the last value each key was set to (writer only) */
    char first_error[160];
} writer_t;

static void *write_loop(void *arg) {
    writer_t *w = arg;
    for (uint64_t n = 1; !atomic_load(&w->stop); n++) {
        int i = (int)(n % RESHARD_KEYS);
        char key[32], val[32];
        snprintf(key, sizeof key, "rs:%d", i);
        snprintf(val, sizeof val, "%llu", (unsigned long long)n);
        int rc;
        redisReply *rep = cmd(w->r, &rc, "SET", key, val);
        if (rc != 0 || rep->type != REDIS_REPLY_STATUS) {
            if (atomic_fetch_add(&w->errors, 1) == 0)
                snprintf(w->first_error, sizeof w->first_error, "SET %s: %s %s", key,
                         tc_err_name(rc),
                         rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        } else {
            w->last[i] = n;
            atomic_fetch_add(&w->writes, 1);
        }
        if (rep)
            freeReplyObject(rep);
    }
    return NULL;
}

static int run_reshard(int from, int to, int slots) {
    return tc_test_cluster_reshard(cl, from, to, slots);
}

Test(cluster_route, a_live_reshard_loses_no_write_and_shows_no_error) {
    writer_t *w = calloc(1, sizeof *w);
    w->r = open_router();
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, write_loop, w), 0);
    while (atomic_load(&w->writes) < 2 * RESHARD_KEYS) /* every key exists */
        usleep(10000);
    int from = master_of_slot(0), to = master_of_slot(16383);
    cr_assert_eq(run_reshard(from, to, 600), 0, "redis-cli --cluster reshard failed");
    atomic_store(&w->stop, 1);
    pthread_join(t, NULL);
    tc__cluster_counters_t k;
    tc__cluster_counters(w->r, &k);
    fprintf(stderr,
            "cluster reshard: %llu writes, %llu errors, %llu MOVED, %llu ASK, %llu retries, "
            "%llu map reads\n",
            (unsigned long long)atomic_load(&w->writes),
            (unsigned long long)atomic_load(&w->errors), (unsigned long long)k.moved,
            (unsigned long long)k.asked, (unsigned long long)k.retried,
            (unsigned long long)k.refreshes);
    cr_assert_eq(atomic_load(&w->errors), 0, "the writer saw errors: %s", w->first_error);
    cr_assert_gt(k.moved + k.asked, 0, "600 slots moved and the router was never redirected");
    for (int i = 0; i < RESHARD_KEYS; i++) { /* the oracle: every key holds its last write */
        char key[32], val[32];
        snprintf(key, sizeof key, "rs:%d", i);
        snprintf(val, sizeof val, "%llu", (unsigned long long)w->last[i]);
        expect_value(w->r, key, val);
    }
    tc__cluster_close(w->r);
    free(w);
}

/* ---- failover ---- */

Test(cluster_route, a_killed_master_costs_bounded_calls_until_its_replica_serves) {
    tc__cluster_t *r = open_router();
    const char *key = "{fo}k";
    set_ok(r, key, "before");
    int master = master_of_slot(tc__slot_of(key, strlen(key)));
    tc_test_redis_kill(tc_test_cluster_node(cl, master));
    uint64_t killed = tc_test_now_ms(), recovered = 0, longest = 0;
    unsigned failed = 0;
    while (!recovered && tc_test_now_ms() - killed < 30000) {
        uint64_t t0 = tc_test_now_ms();
        int rc;
        redisReply *rep = cmd(r, &rc, "SET", key, "after");
        uint64_t took = tc_test_now_ms() - t0;
        longest = took > longest ? took : longest;
        if (rc == 0 && rep->type == REDIS_REPLY_STATUS)
            recovered = tc_test_now_ms();
        else
            failed++;
        if (rep)
            freeReplyObject(rep);
    }
    fprintf(
        stderr,
        "cluster failover: writes to the killed master's slot failed for %llu ms (%u calls, "
        "the longest %llu ms; node timeout 2000 ms, call budget 1500 ms)\n",
        (unsigned long long)(recovered ? recovered - killed : 0), failed,
        (unsigned long long)longest);
    cr_assert(recovered, "the slot was never served again after its master was killed");
    /* A call that would hang shows as one far past its budget (1.5 s) plus one socket
     * timeout (1 s): no time is asserted closer than that. */
    cr_assert_lt(longest, 5000, "a call took %llu ms", (unsigned long long)longest);
    expect_value(r, key, "after");
    tc__cluster_close(r);
}
