/*
 * l2.h - the Redis tier: connection pool, circuit breaker and the four operations the
 * cache needs, each a single round trip.
 *
 * Keys are stored as <key_prefix>"k:"<user key>; the version counter is <key_prefix>"v".
 * Every write goes through a Lua script that INCRs the counter, stores the value with that
 * version in its header (valfmt.h) and PUBLISHes the invalidation carrying the same
 * version (msg.h): the write and its invalidation are one atomic step, and versions give
 * every L1 a total order to compare against.
 */
#ifndef TC_L2_H
#define TC_L2_H

#include "config.h"
#include "valfmt.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tc__l2 tc__l2_t;

typedef struct tc__l2_opts {
    const tc__endpoint_t *endpoint; /* copied */
    const char *key_prefix;         /* copied */
    const char *channel;            /* copied */
    unsigned pool_size;
    uint32_t connect_timeout_ms;
    uint32_t command_timeout_ms;
    unsigned breaker_threshold;
    uint32_t breaker_cooldown_ms;
    unsigned char origin[16]; /* this cache's instance id, put in every message */
} tc__l2_opts_t;

/* A value read from Redis. Owns the hiredis reply that val.data points into. */
typedef struct tc__l2_value {
    void *reply_;    /* private: redisReply to free */
    tc__val_t val;   /* decoded header and payload */
    int64_t pttl_ms; /* remaining TTL; -1 = no expiry; -2 = vanished after the read */
} tc__l2_value_t;

typedef struct tc__l2_counters {
    uint64_t errors; /* failed operations, timeouts included */
    uint64_t timeouts;
    uint64_t opens; /* breaker transitions to open */
    uint64_t published;
    int breaker_state; /* 0 closed, 1 open, 2 half-open */
} tc__l2_counters_t;

/* Create the pool. Connections are made lazily, so this succeeds with Redis down.
 * Returns 0, TC_ENOMEM. */
int tc__l2_open(const tc__l2_opts_t *opts, tc__l2_t **out, tc_error_t *err);
void tc__l2_close(tc__l2_t *l2);

/* PING through the pool (used by require_redis). 0 or an error code. */
int tc__l2_ping(tc__l2_t *l2, tc_error_t *err);

/* GET + PTTL in one round trip. 0: *out filled (release it); TC_ENOTFOUND; TC_EPROTO (the
 * stored string is not in tiercache's format); TC_EUNAVAILABLE; TC_ETIMEDOUT; TC_EREDIS. */
int tc__l2_get(tc__l2_t *l2, const void *key, size_t klen, tc__l2_value_t *out);
void tc__l2_value_release(tc__l2_value_t *v);

/* Store value with PX ttl_ms and publish OP_WRITE, atomically. 0 and *version, or an error. */
int tc__l2_set(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
               uint64_t ttl_ms, uint64_t *version);

/* Delete and publish OP_DELETE, atomically. 0 and *version, or an error. */
int tc__l2_del(tc__l2_t *l2, const void *key, size_t klen, uint64_t *version);

/* Store only if the key is absent (a loaded value must not overwrite a concurrent write);
 * no publish (no process can hold a copy of an absent key). Returns 0 and *version when
 * stored; 1 when the key existed, with *existing filled (release it); or an error. */
int tc__l2_add(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
               uint64_t ttl_ms, uint64_t *version, tc__l2_value_t *existing);

/* Header metadata for a stored value (valfmt.h): flags and logical (fresh) expiry. */
typedef struct tc__l2_meta {
    unsigned flags;             /* TC__VAL_FLAG_ABSENT for a cached absence */
    uint64_t logical_expiry_ms; /* unix ms when the value stops being fresh; 0 = none */
    uint32_t load_ms;           /* how long the load took (header byte 3); 0 = unknown */
} tc__l2_meta_t;

/* tc__l2_set / tc__l2_add with header metadata (meta may be NULL). */
int tc__l2_set_meta(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
                    uint64_t ttl_ms, const tc__l2_meta_t *meta, uint64_t *version);
int tc__l2_add_meta(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
                    uint64_t ttl_ms, const tc__l2_meta_t *meta, uint64_t *version,
                    tc__l2_value_t *existing);

/* A background refresh's write: store and publish like tc__l2_set, but only if the key
 * still holds expected_version (or vanished). 0 and *version; 1 with *existing when a
 * newer value is there (release it); or an error. */
int tc__l2_replace(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
                   uint64_t ttl_ms, const tc__l2_meta_t *meta, uint64_t expected_version,
                   uint64_t *version, tc__l2_value_t *existing);

/* Cross-process single-flight: check for a stored value and take the lock
 * <prefix>"l:"<key> (token, PX ttl_ms) in one atomic step. Returns 2 with *existing (release
 * it) when the key holds a value whose version is not *skip_version (skip_version NULL: any
 * value); 0 when the lock was taken; 1 when another holds it (*pttl its remaining ms; the
 * lock is marked contended so its holder's unlock wakes us); or an error. */
int tc__l2_lock(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen,
                uint32_t ttl_ms, const uint64_t *skip_version, int64_t *pttl,
                tc__l2_value_t *existing);
/* Release the lock if it still holds token (compare-and-delete, never a plain DEL); when it
 * was contended, publish OP_FILL for key. 0 or an error. */
int tc__l2_unlock(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen);

/* Snapshot of the counters (relaxed atomics). */
void tc__l2_counters(tc__l2_t *l2, tc__l2_counters_t *out);

/* True when the breaker currently lets calls through (closed, or a probe is due). */
int tc__l2_available(tc__l2_t *l2);

#endif
