/* tc-test-labels: cluster integration */
/*
 * test_cluster.c - the slot rule and the slot map (src/slot.c) against a real Redis
 * Cluster (3 masters, each with a replica, started by tests/support/redis_cluster.c):
 * every key's slot is the one Redis computes; the map read from CLUSTER SLOTS sends every
 * key to the node that serves it, and any other master answers MOVED naming that node; a
 * slot in migration answers ASK for a key the source no longer has; a replica promoted by
 * CLUSTER FAILOVER takes over its master's slots in the next map.
 */
#include "redis_cluster.h"
#include "slot.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 120);

static redisContext *connect_to(const char *host, int port) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    cr_assert(c && !c->err, "connect %s:%d: %s", host, port, c ? c->errstr : "no memory");
    redisSetTimeout(c, tv);
    return c;
}

static redisContext *connect_node(int i) {
    return connect_to("127.0.0.1", tc_test_redis_port(tc_test_cluster_node(cl, i)));
}

/* The map as node i sees it. */
static void read_map(int i, tc__slot_map_t *m) {
    redisContext *c = connect_node(i);
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    char why[160] = "";
    cr_assert_eq(tc__slot_map_parse(r, "127.0.0.1", m, why, sizeof why), TC__SLOT_PARSED,
                 "node %d: %s", i, why);
    freeReplyObject(r);
    redisFree(c);
}

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(cluster, every_key_slot_is_the_one_redis_computes) {
    redisContext *c = connect_node(0);
    uint64_t s = 0x5107;
    unsigned char key[40];
    for (int i = 0; i < 2000; i++) {
        size_t len = 1 + rng(&s) % sizeof key;
        for (size_t j = 0; j < len; j++) {
            uint64_t x = rng(&s);
            key[j] = (x & 7) == 0 ? '{' : (x & 7) == 1 ? '}' : (unsigned char)(x >> 8);
        }
        redisReply *r = redisCommand(c, "CLUSTER KEYSLOT %b", key, len);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER, "CLUSTER KEYSLOT failed");
        cr_assert_eq((unsigned)r->integer, tc__slot_of(key, len), "key %d (%zu bytes)", i, len);
        freeReplyObject(r);
    }
    redisFree(c);
}

Test(cluster, the_map_routes_every_key_and_others_answer_moved) {
    tc__slot_map_t m, other;
    read_map(0, &m);
    cr_assert_eq(m.served, 16384u, "the map leaves slots unserved");
    int masters = 0;
    for (size_t i = 0; i < m.nnodes; i++)
        masters += m.nodes[i].master < 0;
    cr_assert_eq(masters, 3);
    for (int i = 1; i < tc_test_cluster_nodes(cl); i++) { /* every node agrees */
        read_map(i, &other);
        for (unsigned sl = 0; sl < TC__SLOTS; sl += 97) {
            const tc__slot_node_t *a = tc__slot_map_owner(&m, sl),
                                  *b = tc__slot_map_owner(&other, sl);
            cr_assert(a && b && a->port == b->port, "node %d disagrees on slot %u", i, sl);
        }
        tc__slot_map_free(&other);
    }
    for (int k = 0; k < 300; k++) {
        char key[32];
        int klen = snprintf(key, sizeof key, "key:%d", k);
        unsigned sl = tc__slot_of(key, (size_t)klen);
        const tc__slot_node_t *owner = tc__slot_map_owner(&m, sl);
        redisContext *c = connect_to(owner->host, owner->port);
        redisReply *r = redisCommand(c, "SET %b v", key, (size_t)klen);
        cr_assert(r && r->type == REDIS_REPLY_STATUS, "%s on its owner: %s", key,
                  r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
        freeReplyObject(r);
        redisFree(c);
        for (size_t i = 0; i < m.nnodes; i++) { /* another master: MOVED to the owner */
            if (m.nodes[i].master >= 0 || m.nodes[i].port == owner->port)
                continue;
            c = connect_to(m.nodes[i].host, m.nodes[i].port);
            r = redisCommand(c, "GET %b", key, (size_t)klen);
            cr_assert(r && r->type == REDIS_REPLY_ERROR, "%s answered by a non-owner", key);
            tc__redirect_t d;
            cr_assert_eq(tc__redirect_parse(r->str, r->len, &d), TC__REDIRECT_MOVED, "%s",
                         r->str);
            cr_assert(d.slot == sl && d.port == owner->port, "%s: %s", key, r->str);
            freeReplyObject(r);
            redisFree(c);
            break;
        }
    }
    tc__slot_map_free(&m);
}

static void node_id(const tc__slot_node_t *n, char *id, size_t cap) {
    redisContext *c = connect_to(n->host, n->port);
    redisReply *r = redisCommand(c, "CLUSTER MYID");
    cr_assert(r && r->type == REDIS_REPLY_STRING && r->len < cap);
    memcpy(id, r->str, r->len);
    id[r->len] = '\0';
    freeReplyObject(r);
    redisFree(c);
}

static void expect_ok(redisContext *c, const char *what, redisReply *r) {
    (void)c;
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "%s: %s", what,
              r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    freeReplyObject(r);
}

Test(cluster, a_slot_in_migration_answers_ask) {
    tc__slot_map_t m;
    read_map(0, &m);
    const char *key = "{mig}gone";
    unsigned sl = tc__slot_of(key, strlen(key));
    const tc__slot_node_t *src = tc__slot_map_owner(&m, sl), *dst = NULL;
    for (size_t i = 0; i < m.nnodes && !dst; i++)
        if (m.nodes[i].master < 0 && m.nodes[i].port != src->port)
            dst = &m.nodes[i];
    char src_id[64], dst_id[64];
    node_id(src, src_id, sizeof src_id);
    node_id(dst, dst_id, sizeof dst_id);
    redisContext *s = connect_to(src->host, src->port), *d = connect_to(dst->host, dst->port);
    expect_ok(d, "IMPORTING", redisCommand(d, "CLUSTER SETSLOT %u IMPORTING %s", sl, src_id));
    expect_ok(s, "MIGRATING", redisCommand(s, "CLUSTER SETSLOT %u MIGRATING %s", sl, dst_id));
    redisReply *r = redisCommand(s, "GET %s", key); /* not on the source: ask the target */
    cr_assert(r && r->type == REDIS_REPLY_ERROR, "the source answered for a missing key");
    tc__redirect_t rd;
    cr_assert_eq(tc__redirect_parse(r->str, r->len, &rd), TC__REDIRECT_ASK, "%s", r->str);
    cr_assert(rd.slot == sl && rd.port == dst->port, "%s", r->str);
    freeReplyObject(r);
    r = redisCommand(d, "GET %s", key); /* without ASKING the target sends us back */
    cr_assert(r && r->type == REDIS_REPLY_ERROR, "the target served a slot it is importing");
    cr_assert_eq(tc__redirect_parse(r->str, r->len, &rd), TC__REDIRECT_MOVED, "%s", r->str);
    cr_assert_eq(rd.port, src->port);
    freeReplyObject(r);
    expect_ok(d, "ASKING", redisCommand(d, "ASKING"));
    r = redisCommand(d, "GET %s", key);
    cr_assert(r && r->type == REDIS_REPLY_NIL, "after ASKING the target answers");
    freeReplyObject(r);
    expect_ok(s, "STABLE", redisCommand(s, "CLUSTER SETSLOT %u STABLE", sl));
    expect_ok(d, "STABLE", redisCommand(d, "CLUSTER SETSLOT %u STABLE", sl));
    redisFree(s);
    redisFree(d);
    tc__slot_map_free(&m);
}

Test(cluster, a_promoted_replica_takes_its_masters_slots) {
    tc__slot_map_t m;
    read_map(0, &m);
    int replica = 0, old_master = 0;
    while (replica < tc_test_cluster_nodes(cl) &&
           !(old_master = tc_test_cluster_master_of(cl, replica)))
        replica++;
    cr_assert(old_master, "no replica in the cluster");
    int new_master = tc_test_redis_port(tc_test_cluster_node(cl, replica));
    unsigned sl = 0;
    while (tc__slot_map_owner(&m, sl)->port != old_master)
        sl++;
    redisContext *c = connect_node(replica);
    expect_ok(c, "CLUSTER FAILOVER", redisCommand(c, "CLUSTER FAILOVER"));
    redisFree(c);
    tc__slot_map_t after;
    int moved = 0;
    for (int waited = 0; waited < 15000 && !moved; waited += 100) {
        read_map(0, &after);
        const tc__slot_node_t *o = tc__slot_map_owner(&after, sl);
        moved = o && o->port == new_master && after.served == 16384u;
        tc__slot_map_free(&after);
        if (!moved)
            usleep(100 * 1000);
    }
    cr_assert(moved, "slot %u still served by %d, not the promoted %d", sl, old_master,
              new_master);
    tc__slot_map_free(&m);
}
