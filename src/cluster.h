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
#include "node.h"
#include "slot.h"

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
    /* Given to every node (node.h): a new connection's set-up, the first answer after a
     * transport failure. NULL: none. */
    int (*setup)(void *arg, redisContext *c, tc_error_t *err);
    void *setup_arg;
    void (*on_heal)(void *arg);
    void *heal_arg;
    /* Called when a map read finds other masters than the map before it (a failover, a
     * master added or removed; slots moving between the same masters do not count), on
     * the thread that read it, with no lock held. NULL: none. */
    void (*on_masters_changed)(void *arg);
    void *masters_arg;
    uint32_t watch_ms; /* a thread of its own re-reads the map this often; 0: no thread
                          (the map is read at open and on redirections and failures) */
    int lenient;       /* open even when no seed answers (calls read the map later) */
    int read_replicas; /* every connection READONLY; calls marked replica_ok go to one
                          replica of their master (chosen at random per map read) while it
                          answers, else to the master */
} tc__cluster_opts_t;

typedef struct tc__cluster_counters {
    uint64_t moved, asked, retried; /* redirections followed; retries (TRYAGAIN, CLUSTERDOWN,
                                       a shard unreachable) */
    uint64_t refreshes, refresh_failures;
    uint64_t masters_changed; /* map reads that found other masters */
    uint64_t nodes;           /* servers known */
    uint64_t masters;         /* nodes serving slots */
    uint64_t masters_down;    /* of those, with their breaker open */
    unsigned served;          /* slots with a known master */
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

/* ---- any call, routed ----
 * A call of the caller's own (several commands, a script, a pipeline) that the router
 * sends to a slot's master and re-sends where redirections say. run writes the call on a
 * connection of the node and reads its replies (sending ASKING before each command when
 * cc->asking is set); judge then reads them: TC__CLUSTER_ANSWERED keeps them, any other
 * verdict means nothing ran (a redirection, TRYAGAIN, CLUSTERDOWN) and judge has freed
 * them, so the router may send the call again. */
typedef enum tc__cluster_verdict {
    TC__CLUSTER_ANSWERED = 0,
    TC__CLUSTER_MOVED, /* *d: where the slot lives now */
    TC__CLUSTER_ASK,   /* *d: where this key is, for this call only */
    TC__CLUSTER_RETRY, /* TRYAGAIN (keys mid-migration) or CLUSTERDOWN: wait, then again */
} tc__cluster_verdict_t;

/* What one reply says: TC__CLUSTER_ANSWERED unless it is one of the errors above. */
tc__cluster_verdict_t tc__cluster_verdict_of(const redisReply *r, tc__redirect_t *d);

typedef struct tc__cluster_call tc__cluster_call_t;
struct tc__cluster_call {
    int (*run)(tc__cluster_call_t *cc, int conn, int fresh, redisContext *c); /* node.h's */
    tc__cluster_verdict_t (*judge)(tc__cluster_call_t *cc, tc__redirect_t *d);
    void *arg;
    int asking;     /* set by the router for each attempt */
    int replica_ok; /* a read that a replica may answer (read_replicas) */
    int on_replica; /* set by the router: this attempt went to a replica */
};

/* Run cc for slot through the router: 0 (cc's replies kept), or as tc__cluster_command. */
int tc__cluster_run(tc__cluster_t *cl, unsigned slot, tc__cluster_call_t *cc, tc_error_t *err);
/* The node serving slot by the current map (an identity to group calls by, never
 * dereferenced by the caller), or NULL when none is known. */
const void *tc__cluster_owner(tc__cluster_t *cl, unsigned slot);
/* The nodes serving slots now, each once (identities as tc__cluster_owner's), up to cap.
 * Returns how many were found (may be more than cap). */
size_t tc__cluster_masters(tc__cluster_t *cl, const void **out, size_t cap);
/* Run cc on node itself (a per-node command: SCAN), following no redirection: 0 (cc's
 * replies kept; judge is not called) or the node's error. */
int tc__cluster_run_at(tc__cluster_t *cl, const void *node, tc__cluster_call_t *cc,
                       tc_error_t *err);
/* Every node's counters added up (breaker_state: the worst). */
void tc__cluster_node_totals(tc__cluster_t *cl, tc__node_counters_t *out);

/* Read the map again now (rate limits do not apply). 0 or the error. */
int tc__cluster_refresh(tc__cluster_t *cl, tc_error_t *err);
void tc__cluster_counters(tc__cluster_t *cl, tc__cluster_counters_t *out);

#endif
