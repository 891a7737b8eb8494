/*
 * redis_sentinel.c - start a real Sentinel set-up for a test (redis_sentinel.h).
 *
 * Sentinels discover the replica and each other through the master (INFO and hello
 * messages), which takes a few of their 1-second cycles, and the replica needs its first
 * sync; a test that fails the master over before that would see "no quorum" or lose every
 * write instead of what it means to test, so start waits for both.
 */
#include "redis_sentinel.h"

#include "peer.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SENTINELS 3

struct tc_test_sentinel {
    tc_test_redis_t *master, *replica, *sentinel[SENTINELS];
    char addrs[SENTINELS * 24];
};

/* How many entries sentinel r lists for "SENTINEL <what> master" (-1: no answer). */
static long long listed(tc_test_redis_t *r, const char *what) {
    redisContext *c = tc_test_redis_connect(r);
    if (!c)
        return -1;
    redisReply *rep = redisCommand(c, "SENTINEL %s %s", what, TC_TEST_SENTINEL_MASTER);
    long long n = rep && rep->type == REDIS_REPLY_ARRAY ? (long long)rep->elements : -1;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return n;
}

/* The replica has finished its first sync (ROLE: "connected"). */
static int replica_synced(tc_test_redis_t *r) {
    redisContext *c = tc_test_redis_connect(r);
    redisReply *rep = c ? redisCommand(c, "ROLE") : NULL;
    int ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 4 &&
             rep->element[3]->type == REDIS_REPLY_STRING &&
             strcmp(rep->element[3]->str, "connected") == 0;
    if (rep)
        freeReplyObject(rep);
    if (c)
        redisFree(c);
    return ok;
}

/* The master's port as sentinel r names it, or 0. */
static int named_master(tc_test_redis_t *r) {
    redisContext *c = tc_test_redis_connect(r);
    if (!c)
        return 0;
    redisReply *rep =
        redisCommand(c, "SENTINEL get-master-addr-by-name %s", TC_TEST_SENTINEL_MASTER);
    int port = 0;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING)
        port = atoi(rep->element[1]->str);
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return port;
}

int tc_test_sentinel_agreed_master(const tc_test_sentinel_t *s, uint32_t timeout_ms) {
    uint64_t end = tc_test_now_ms() + timeout_ms;
    do {
        int port = named_master(s->sentinel[0]);
        int all = port != 0;
        for (int i = 1; i < SENTINELS && all; i++)
            all = named_master(s->sentinel[i]) == port;
        if (all)
            return port;
        tc_test_sleep_ms(100);
    } while (tc_test_now_ms() < end);
    return 0;
}

tc_test_sentinel_t *tc_test_sentinel_start(void) {
    return tc_test_sentinel_start_auth(NULL);
}

tc_test_sentinel_t *tc_test_sentinel_start_auth(const char *sentinel_password) {
    tc_test_sentinel_t *s = calloc(1, sizeof *s);
    cr_assert_not_null(s);
    tc_test_redis_opts_t mo = {.tcp = 1};
    s->master = tc_test_redis_start(&mo);
    tc_test_redis_opts_t ro = {.replicaof_port = tc_test_redis_port(s->master)};
    s->replica = tc_test_redis_start(&ro);
    size_t used = 0;
    for (int i = 0; i < SENTINELS; i++) {
        tc_test_redis_opts_t so = {.sentinel_of_port = tc_test_redis_port(s->master),
                                   .password = sentinel_password};
        s->sentinel[i] = tc_test_redis_start(&so);
        used += (size_t)snprintf(s->addrs + used, sizeof s->addrs - used, "%s127.0.0.1:%d",
                                 i ? "," : "", tc_test_redis_port(s->sentinel[i]));
    }
    uint64_t end = tc_test_now_ms() + 20000;
    int ready = 0;
    while (!ready && tc_test_now_ms() < end) {
        ready = 1;
        ready = replica_synced(s->replica);
        for (int i = 0; i < SENTINELS && ready; i++)
            ready = listed(s->sentinel[i], "replicas") == 1 &&
                    listed(s->sentinel[i], "sentinels") == SENTINELS - 1;
        if (!ready)
            tc_test_sleep_ms(100);
    }
    if (!ready) {
        tc_test_sentinel_stop(s);
        cr_assert_fail("tc_test_sentinel_start: the sentinels did not find each other");
    }
    return s;
}

tc_test_redis_t *tc_test_sentinel_master(const tc_test_sentinel_t *s) {
    return s->master;
}

tc_test_redis_t *tc_test_sentinel_replica(const tc_test_sentinel_t *s) {
    return s->replica;
}

tc_test_redis_t *tc_test_sentinel_node(const tc_test_sentinel_t *s, int i) {
    return i >= 0 && i < SENTINELS ? s->sentinel[i] : NULL;
}

const char *tc_test_sentinel_addrs(const tc_test_sentinel_t *s) {
    return s->addrs;
}

void tc_test_sentinel_stop(tc_test_sentinel_t *s) {
    if (!s)
        return;
    for (int i = 0; i < SENTINELS; i++)
        tc_test_redis_stop(s->sentinel[i]);
    tc_test_redis_stop(s->replica);
    tc_test_redis_stop(s->master);
    free(s);
}
