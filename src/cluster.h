/*
 * cluster.h - routing commands to the shards of a Redis Cluster (cluster.c).
 *
 * Debian's hiredis 0.14 has no cluster client, so this is ours: a slot map from CLUSTER
 * SLOTS (slot.h), one node (pool and breaker: node.h) per server, and every call sent to
 * its key's slot owner, following MOVED (the slot moved: the map is corrected at once and
 * re-read) and ASK (one key mid-migration: ASKING, then the command, on the target) within
 * a redirection limit and a time budget, so a call never hangs on a resharding or a
 * failover: it answers, or fails with the reason, within call_budget_ms.
 *
 * Threading: every function is thread-safe; calls run in parallel on different nodes and
 * on different connections of one node.
 */
#ifndef TC_CLUSTER_H
#define TC_CLUSTER_H

#include "config.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tc__cluster tc__cluster_t;

typedef struct tc__cluster_opts {
    const char *seeds;           /* "host:port[,host:port...]": where to read the map first */
    const char *user, *password; /* ACL credentials for every node, or NULL */
    uint32_t connect_timeout_ms, command_timeout_ms;
    unsigned pool_size; /* connections per node */
    unsigned breaker_threshold;
    uint32_t breaker_cooldown_ms;
    unsigned max_redirects;  /* MOVED/ASK hops per call; 0: 5 */
    uint32_t call_budget_ms; /* the longest a call retries through a failover; 0: 2000 */
    tc__log_t *log;          /* may be NULL */
} tc__cluster_opts_t;

typedef struct tc__cluster_counters {
    uint64_t moved, asked, retried; /* redirections followed; retries (TRYAGAIN, CLUSTERDOWN,
                                       a shard unreachable) */
    uint64_t refreshes, refresh_failures;
    uint64_t nodes;  /* servers known */
    unsigned served; /* slots with a known master */
} tc__cluster_counters_t;

/* Read the map from the first seed that answers. 0, TC_ECONFIG (seeds), TC_EUNAVAILABLE
 * (no seed answered CLUSTER SLOTS: err says what each said), TC_ENOMEM. */
int tc__cluster_open(const tc__cluster_opts_t *o, tc__cluster_t **out, tc_error_t *err);
void tc__cluster_close(tc__cluster_t *cl);

/* Run one command for key's slot. 0 and *reply (the server's answer, an error reply
 * included, except redirections, which are followed; the caller frees it), or an error
 * code: TC_EUNAVAILABLE (no master for the slot answered within the budget), TC_ETIMEDOUT
 * (a socket timeout: the command may have run), TC_EPROTO (too many redirections).
 * A command whose connection died after it was sent may run twice: route idempotent
 * commands, or scripts that check what they change. */
int tc__cluster_command(tc__cluster_t *cl, const void *key, size_t klen, int argc,
                        const char **argv, const size_t *lens, redisReply **reply,
                        tc_error_t *err);

/* Read the map again now (rate limits do not apply). 0 or the error. */
int tc__cluster_refresh(tc__cluster_t *cl, tc_error_t *err);
void tc__cluster_counters(tc__cluster_t *cl, tc__cluster_counters_t *out);

#endif
