/*
 * redis_cluster.h - a real Redis Cluster per test: masters and replicas as redis-server
 * processes on free loopback ports, joined by `redis-cli --cluster create`.
 *
 * Every node is a tc_test_redis_t (redis_server.h), so a test kills, pauses, restarts and
 * queries a node exactly as it would a standalone server; the cluster only adds the
 * creation and "wait until every node agrees the cluster is up". Nodes are stopped by PID
 * with the cluster. Failures to start abort the calling test.
 */
#ifndef TC_TEST_REDIS_CLUSTER_H
#define TC_TEST_REDIS_CLUSTER_H

#include "redis_server.h"

#include <stdint.h>

typedef struct tc_test_cluster tc_test_cluster_t;

/* masters (at least 3, as redis-cli requires) and replicas per master; all 16384 slots
 * assigned, every node reporting cluster_state:ok, every replica synced with its master.
 * Never returns NULL. */
tc_test_cluster_t *tc_test_cluster_start(int masters, int replicas_per_master);
int tc_test_cluster_nodes(const tc_test_cluster_t *cl);
tc_test_redis_t *tc_test_cluster_node(const tc_test_cluster_t *cl, int i);
/* "127.0.0.1:p1,127.0.0.1:p2,...": every node, the seed list a client starts from. */
const char *tc_test_cluster_seeds(const tc_test_cluster_t *cl);
/* 1 when every running node reports cluster_state:ok with all slots assigned within
 * timeout_ms, else 0. */
int tc_test_cluster_wait_ok(const tc_test_cluster_t *cl, uint32_t timeout_ms);
/* Node i's master's port when node i is a replica (ROLE), else 0. */
int tc_test_cluster_master_of(const tc_test_cluster_t *cl, int i);
/* The node (index) that is master of slot, by a running node's CLUSTER SLOTS. Fails the
 * test when none is. */
int tc_test_cluster_master_of_slot(const tc_test_cluster_t *cl, unsigned slot);
/* Node i's CLUSTER MYID. */
void tc_test_cluster_node_id(const tc_test_cluster_t *cl, int i, char id[64]);
/* `redis-cli --cluster reshard` of slots slots from node from to node to, as an operator
 * runs it (ASK and MOVED on the way). Its exit status. */
int tc_test_cluster_reshard(const tc_test_cluster_t *cl, int from, int to, int slots);
/* Stop every node. NULL ok. */
void tc_test_cluster_stop(tc_test_cluster_t *cl);

#endif
