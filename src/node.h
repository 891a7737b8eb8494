/*
 * node.h - one Redis server as the data path sees it: a pool of connections and the
 * circuit breaker in front of them (node.c). The Redis tier (l2.c) runs its calls through
 * one node today; a deployment of several servers (Sentinel's master, a cluster's shards,
 * a ring of standalone servers) is one node per server, each failing alone.
 */
#ifndef TC_NODE_H
#define TC_NODE_H

#include "config.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <stdint.h>

typedef struct tc__node tc__node_t;

typedef struct tc__node_opts {
    const tc__endpoint_t *endpoint; /* copied */
    uint32_t connect_timeout_ms, command_timeout_ms;
    unsigned pool_size;         /* connections, at least 1 */
    unsigned breaker_threshold; /* consecutive transport failures that open it; 0 never */
    uint32_t breaker_cooldown_ms;
    tc__log_t *log;             /* may be NULL */
    void (*on_heal)(void *arg); /* the first answer after a transport failure */
    void *heal_arg;
    /* Prepares a new connection before its first call (l2.c loads the scripts): 0,
     * TC_EREDIS when Redis refused (err says how), or a transport error. NULL: none. */
    int (*setup)(void *arg, redisContext *c, tc_error_t *err);
    void *setup_arg;
} tc__node_opts_t;

/* One call's work on a borrowed connection, alone on it until it returns. slot names the
 * connection (0..pool_size-1) for state the caller keeps per connection; fresh says it was
 * connected for this call (such state is void). Returns 0, TC_EREDIS when Redis refused
 * something (the connection is fine), or a transport error code (the node drops it). */
typedef int (*tc__node_work_fn)(void *arg, int slot, int fresh, redisContext *c);

typedef struct tc__node_counters {
    uint64_t timeouts, opens, heals, permission_errors;
    int breaker_state; /* 0 closed, 1 open, 2 half-open */
} tc__node_counters_t;

int tc__node_open(const tc__node_opts_t *opts, tc__node_t **out, tc_error_t *err);
void tc__node_close(tc__node_t *n);

/* Run work: through the breaker, on a pooled connection (connected and set up on first
 * use; a reused one found dead is replaced once). 0, or an error code with err saying
 * why: TC_EUNAVAILABLE (breaker open, or Redis unreachable), TC_ETIMEDOUT (no connection
 * free in time, or a socket timeout), TC_EREDIS (refused), what work returned. */
int tc__node_run(tc__node_t *n, tc__node_work_fn work, void *arg, tc_error_t *err);
/* Drop every connection (idle ones now, busy ones when their call ends), so the next calls
 * connect afresh: the server behind the endpoint changed (a Sentinel failover). */
void tc__node_reset(tc__node_t *n);
/* 1 unless the breaker is open and cooling down. */
int tc__node_available(tc__node_t *n);
uint32_t tc__node_command_timeout_ms(const tc__node_t *n);
void tc__node_counters(tc__node_t *n, tc__node_counters_t *out);

#endif
