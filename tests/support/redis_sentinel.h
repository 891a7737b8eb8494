/*
 * redis_sentinel.h - a real Sentinel set-up per test: a master, one replica and three
 * sentinels (quorum 2) on free loopback ports, the master known as
 * TC_TEST_SENTINEL_MASTER. Each process is a tc_test_redis_t (redis_server.h): tests kill,
 * pause and restart them by PID. Start waits until every sentinel knows the replica and
 * the two other sentinels, so a failover can be agreed at once.
 */
#ifndef TC_TEST_REDIS_SENTINEL_H
#define TC_TEST_REDIS_SENTINEL_H

#include "redis_server.h"

#include <stdint.h>

typedef struct tc_test_sentinel tc_test_sentinel_t;

tc_test_sentinel_t *tc_test_sentinel_start(void);
/* The same with sentinels that require sentinel_password (NULL: none), as managed Sentinel
 * set-ups do; the master and replica take no password. */
tc_test_sentinel_t *tc_test_sentinel_start_auth(const char *sentinel_password);
tc_test_redis_t *tc_test_sentinel_master(const tc_test_sentinel_t *s);      /* at start */
tc_test_redis_t *tc_test_sentinel_replica(const tc_test_sentinel_t *s);     /* at start */
tc_test_redis_t *tc_test_sentinel_node(const tc_test_sentinel_t *s, int i); /* sentinel 0..2 */
/* "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3": the sentinels. */
const char *tc_test_sentinel_addrs(const tc_test_sentinel_t *s);
/* The port every sentinel names as the master's within timeout_ms, or 0. */
int tc_test_sentinel_agreed_master(const tc_test_sentinel_t *s, uint32_t timeout_ms);
void tc_test_sentinel_stop(tc_test_sentinel_t *s);

#endif
