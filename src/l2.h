/*
 * l2.h - the Redis tier: connection pool, circuit breaker and the operations the cache
 * needs (read, write, delete, fill, lock), each a single round trip.
 *
 * Keys are stored as <key_prefix>"k:"<user key>, a key's lock (its lease) as
 * <key_prefix>"l:"<user key>; the version counter is <key_prefix>"v", the replay log (a
 * stream of recent invalidations) <key_prefix>"log". Every write goes
 * through a Lua script (scripts.c) that takes the next version, stores the value with that
 * version in its header (valfmt.h) and PUBLISHes the invalidation carrying the same
 * version (msg.h): the write and its invalidation are one atomic step, and versions give
 * every L1 a total order to compare against.
 *
 * On a Redis Cluster (redis+cluster://) every key derived from a user key carries the name
 * of that key's slot as its hash tag, <key_prefix>"{"<name>"}k:"<user key> and so on, and
 * the version counter is one per slot, <key_prefix>"{"<name>"}v": a script's keys share one
 * slot, as the cluster requires, and move with it when it is resharded. Versions are then
 * ordered per slot, which is all a key needs: it never leaves its slot.
 */
#ifndef TC_L2_H
#define TC_L2_H

#include "config.h"
#include "log.h"
#include "marks.h"
#include "valfmt.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tc__l2 tc__l2_t;

/* Called on the thread of the first call Redis answers after a transport failure, with no
 * tiercache lock held. */
typedef void (*tc__l2_heal_fn)(void *arg);

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
    size_t max_value_bytes;   /* stored values with a longer payload are refused unread
                                 (TC_ETOOBIG); 0 = the 511 MiB ceiling */
    tc__l2_heal_fn on_heal;   /* optional */
    void *heal_arg;
    tc__log_t *log;          /* borrowed, may be NULL: breaker transitions, refusals */
    unsigned replay_log_len; /* entries kept in <prefix>"log" (a stream); 0 = no log */
    int plain;               /* plain keys (tc_config_t.plain_keys) */
    int tracking;            /* a tc_tracking_t */
    int header_ttl;          /* reads may take a value's life from its header instead of
                                PTTL (l2_clock.h): set when L1 needs no more than that,
                                i.e. the cache uses no freshness features */
    int ns_sep;              /* namespace separator byte, or -1 (tc_config_t.ns_separator) */
    tc__marks_t *marks;      /* borrowed, may be NULL: the local copy of the marks; while it
                                is current, reads judge values by it instead of reading the
                                marks from Redis */
    /* redis+cluster:// (the endpoint's cluster_seeds): the map is re-read every
     * cluster_watch_ms (0: only on redirections and failures), and on_masters_changed is
     * called when a read finds other masters (a failover: L1 is not to be trusted). */
    uint32_t cluster_watch_ms;
    void (*on_masters_changed)(void *arg);
    void *masters_arg;
} tc__l2_opts_t;

/* A value's life as tc__l2_value_t.pttl_ms gives it, beside a count of ms (as PTTL). */
#define TC__L2_LIFE_NEVER   ((int64_t)-1) /* no expiry */
#define TC__L2_LIFE_NOTHING ((int64_t)-2) /* keep no copy: vanished, or life unknown */

/* A value read from Redis. Owns the hiredis reply that val.data points into. */
typedef struct tc__l2_value {
    void *reply_;    /* private: redisReply to free */
    tc__val_t val;   /* decoded header and payload */
    int64_t pttl_ms; /* remaining TTL; -1 = no expiry; -2 = keep no copy (vanished after
                        the read, or its life is unknown) */
} tc__l2_value_t;

typedef struct tc__l2_counters {
    uint64_t errors; /* failed operations, timeouts included */
    uint64_t timeouts;
    uint64_t opens; /* breaker transitions to open */
    uint64_t published;
    uint64_t refused;           /* stored values refused: a version no counter produced */
    uint64_t healed_counters;   /* version counters found corrupt and reset by a script */
    uint64_t heals;             /* answers after a transport failure (on_heal calls) */
    uint64_t permission_errors; /* NOPERM / NOAUTH / WRONGPASS replies */
    uint64_t hidden;            /* values read as absent: a clear or namespace mark covers */
    int breaker_state;          /* 0 closed, 1 open, 2 half-open */
    /* a cluster's (cluster.h) */
    int cluster;
    uint64_t cluster_redirects, cluster_retries, cluster_map_reads, cluster_failovers;
    uint64_t masters, masters_down; /* nodes serving slots; of those, breaker open */
} tc__l2_counters_t;

/* Results of tc__l2_fill and tc__l2_lock that are not errors (errors are negative). */
typedef enum tc__l2_result {
    TC__L2_DONE = 0,   /* stored (*version set) / lock taken */
    TC__L2_EXISTS,     /* a value is stored, in *existing (fill: a newer one won) */
    TC__L2_LOCK_HELD,  /* lock: another process holds it; *pttl its remaining ms */
    TC__L2_LEASE_LOST, /* fill: a write or delete voided the lease (or it expired) after
                          our miss: not stored, the load may predate that change */
    TC__L2_GONE,       /* fill without a lease replacing a version: the key was deleted
                          meanwhile: not stored */
} tc__l2_result_t;

/* Header metadata for a stored value (valfmt.h): flags and logical (fresh) expiry. */
typedef struct tc__l2_meta {
    unsigned flags;             /* TC__VAL_FLAG_ABSENT for a cached absence */
    uint64_t logical_expiry_ms; /* unix ms when the value stops being fresh; 0 = none */
    uint32_t load_ms;           /* how long the load took (header byte 3); 0 = unknown */
} tc__l2_meta_t;

/* One value to store. */
typedef struct tc__l2_write {
    const void *key;
    size_t klen;
    const void *value;
    size_t vlen;
    uint64_t ttl_ms; /* PX; 0 = none */
    tc__l2_meta_t meta;
    const char *lease; /* fill: the lock token this store needs (NULL: none) */
    size_t lease_len;
    const uint64_t *expected_version; /* fill: replace only this version (a refresh);
                                         NULL: store only if absent */
    const tc_buf_t *tags; /* the value's tags (<prefix>"t:"<tag> sorted sets), or NULL */
    size_t ntags;
    int check_mark; /* fill under a lease: seen_mark is the newest clear/namespace
                       mark its lock saw; a newer one now means the load may predate
                       it: not stored (TC__L2_LEASE_LOST) */
    uint64_t seen_mark;
} tc__l2_write_t;

/* Create the pool. Connections are made lazily, so this succeeds with Redis down.
 * Returns 0, TC_ENOMEM. */
int tc__l2_open(const tc__l2_opts_t *opts, tc__l2_t **out, tc_error_t *err);
void tc__l2_close(tc__l2_t *l2);

/* PING through the pool (used by require_redis). 0 or an error code. */
int tc__l2_ping(tc__l2_t *l2, tc_error_t *err);

/* GETRANGE (at most max_value_bytes + header + 1 bytes) + PTTL in one round trip.
 * 0: *out filled (release it); TC_ENOTFOUND; TC_ETOOBIG (stored value too long: not read
 * whole); TC_EPROTO (not in tiercache's format, or an impossible version: counted);
 * TC_EUNAVAILABLE; TC_ETIMEDOUT; TC_EREDIS. */
int tc__l2_get(tc__l2_t *l2, const void *key, size_t klen, tc__l2_value_t *out);
void tc__l2_value_release(tc__l2_value_t *v);

/* Store and publish OP_WRITE, atomically, voiding the key's lease. 0 and *version, or an
 * error. */
int tc__l2_put(tc__l2_t *l2, const tc__l2_write_t *w, uint64_t *version);
/* tc__l2_put of a plain value (no metadata). */
int tc__l2_set(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
               uint64_t ttl_ms, uint64_t *version);

/* Delete and publish OP_DELETE, atomically, voiding the key's lease. 0 and *version, or an
 * error. */
int tc__l2_del(tc__l2_t *l2, const void *key, size_t klen, uint64_t *version);

/* Store a loaded value: if absent (no expected_version; no publish: no process can hold a
 * copy of an absent key), or if it still carries *expected_version (a refresh; published).
 * With a lease, only while the lease holds, and the lease is released in the same step.
 * Returns a tc__l2_result_t (TC__L2_DONE and *version; TC__L2_EXISTS with *existing, to
 * release; TC__L2_LEASE_LOST; TC__L2_GONE) or an error (TC_ETOOBIG: a stored value too
 * long to read is in the way). */
int tc__l2_fill(tc__l2_t *l2, const tc__l2_write_t *w, uint64_t *version,
                tc__l2_value_t *existing);
/* tc__l2_fill of a plain value, if absent, without a lease. */
int tc__l2_add(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
               uint64_t ttl_ms, uint64_t *version, tc__l2_value_t *existing);

/* Cross-process single-flight: check for a stored value and take the lock
 * <prefix>"l:"<key> (token, PX ttl_ms) in one atomic step. Returns TC__L2_EXISTS with
 * *existing (release it) when the key holds a value whose version is not *skip_version
 * (skip_version NULL: any value); TC__L2_DONE when the lock was taken (*mark, may be NULL:
 * the newest clear or namespace mark of the key then, for the fill's seen_mark);
 * TC__L2_LOCK_HELD when another holds it (*pttl its remaining ms; the lock is marked contended
 * so its holder's unlock wakes us); or an error. */
int tc__l2_lock(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen,
                uint32_t ttl_ms, const uint64_t *skip_version, int64_t *pttl, uint64_t *mark,
                tc__l2_value_t *existing);
/* Release the lock if it still holds token (compare-and-delete, never a plain DEL); when it
 * was contended, publish OP_FILL for key. 0 or an error. */
int tc__l2_unlock(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen);

/* tc_invalidate: announce an OP_EVICT for key (logged like a write), touching no data.
 * 0 or an error. */
int tc__l2_evict(tc__l2_t *l2, const void *key, size_t klen);

/* Extend the lock's TTL to ttl_ms if it still holds token. 1 extended, 0 not ours any
 * more (a write voided it, or it expired), or an error. */
int tc__l2_extend(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen,
                  uint32_t ttl_ms);

/* Plain keys (no prefix, no header): SET key value PX ttl, and DEL key. 0 or an error.
 * tc__l2_get and tc__l2_fill (SET NX) work on plain keys too when the tier was opened
 * with plain set; the other operations are for tiercache's own keys only. */
int tc__l2_plain_set(tc__l2_t *l2, const void *key, size_t klen, const void *value, size_t vlen,
                     uint64_t ttl_ms);
int tc__l2_plain_del(tc__l2_t *l2, const void *key, size_t klen);

/* Default tracking: the client id of the subscribed listener, which every data connection
 * must redirect its tracking to before its next read (0: none subscribed). */
void tc__l2_set_tracking_target(tc__l2_t *l2, uint64_t client_id);

/* ---- many keys (l2_many.c) ----
 * The bulk operations run one call per key, TC__L2_PIPE_MAX of them per round trip
 * (pipelined), and answer per key in codes[i] exactly as the single-key operation would.
 * They return 0, or a failure of the whole round trip (then every codes[i] holds it). */
#define TC__L2_PIPE_MAX 1000u

/* tc__l2_get for every key: out[i] filled when codes[i] is 0 (release each). */
int tc__l2_get_many(tc__l2_t *l2, const tc_buf_t *keys, size_t n, tc__l2_value_t *out,
                    int *codes);
/* tc__l2_put for every write (plain keys: plain SETs); versions[i] when codes[i] is 0. */
int tc__l2_put_many(tc__l2_t *l2, const tc__l2_write_t *w, size_t n, uint64_t *versions,
                    int *codes);
/* tc__l2_del for every key (plain keys: DEL); versions[i] when codes[i] is 0. */
int tc__l2_del_many(tc__l2_t *l2, const tc_buf_t *keys, size_t n, uint64_t *versions,
                    int *codes);
/* One key's lock step for tc__l2_lock_many. */
typedef struct tc__l2_lock_req {
    const void *key;
    size_t klen;
    const char *token;
    size_t tlen;
    const uint64_t *skip_version;
    /* out */
    int64_t pttl;
    uint64_t mark;
    tc__l2_value_t existing;
} tc__l2_lock_req_t;
/* tc__l2_lock for every request: codes[i] as tc__l2_lock's result. */
int tc__l2_lock_many(tc__l2_t *l2, tc__l2_lock_req_t *reqs, size_t n, uint32_t ttl_ms,
                     int *codes);
/* tc__l2_fill for every write: codes[i] a tc__l2_result_t or an error; versions[i] and
 * existing[i] (release) as tc__l2_fill's. */
int tc__l2_fill_many(tc__l2_t *l2, const tc__l2_write_t *w, size_t n, uint64_t *versions,
                     tc__l2_value_t *existing, int *codes);
/* tc__l2_unlock for every request (key, klen, token, tlen used). */
int tc__l2_unlock_many(tc__l2_t *l2, const tc__l2_lock_req_t *reqs, size_t n, int *codes);

/* ---- invalidating many keys (l2_many.c) ---- */

/* Called with each batch of keys removed from Redis at `version` (entries of a be16 length
 * and the key, as in an op-5 message), so the caller applies them to its own L1 at once. */
typedef void (*tc__l2_removed_fn)(void *arg, uint64_t version, const unsigned char *entries,
                                  size_t len);
/* Remove every key whose current value carries tag. *removed: keys deleted. 0 or an error
 * (part may be done). */
int tc__l2_invalidate_tag(tc__l2_t *l2, const void *tag, size_t tlen, tc__l2_removed_fn fn,
                          void *arg, size_t *removed);
/* Remove every key starting with prefix (SCAN steps), and every lock of one. */
int tc__l2_invalidate_prefix(tc__l2_t *l2, const void *prefix, size_t plen,
                             tc__l2_removed_fn fn, void *arg, size_t *removed);
/* Set the mark of namespace ns (ns NULL: the clear mark) to the next version and announce
 * it. ns is given without its separator. *version: the mark. 0 or an error. */
int tc__l2_mark(tc__l2_t *l2, const void *ns, size_t nslen, uint64_t *version);

/* ---- write strategies (l2_queue.c) ---- */

/* Write-through's lock on key: TC__L2_DONE (taken, or taken over from a load, whose lease
 * is void; *version: a version for the writer), TC__L2_LOCK_HELD (another write-through
 * holds it: *pttl), or an error. */
int tc__l2_wlock(tc__l2_t *l2, const void *key, size_t klen, const char *token, size_t tlen,
                 uint32_t ttl_ms, int64_t *pttl, uint64_t *version);
/* tc__l2_put while w->lease (the write lock's token) still holds: TC__L2_DONE (*version) or
 * TC__L2_LEASE_LOST (a write or delete came: nothing stored), or an error. */
int tc__l2_put_leased(tc__l2_t *l2, const tc__l2_write_t *w, uint64_t *version);
/* tc__l2_put / tc__l2_del and the queue entry for the source, in one step: TC__L2_DONE
 * (*version), TC_EFULL (max_queue entries wait: nothing done), or an error. */
int tc__l2_put_queued(tc__l2_t *l2, const tc__l2_write_t *w, unsigned max_queue,
                      uint64_t *version);
int tc__l2_del_queued(tc__l2_t *l2, const void *key, size_t klen, unsigned max_queue,
                      uint64_t *version);
/* Entries waiting in the queue (read or not). */
int tc__l2_wb_len(tc__l2_t *l2, uint64_t *len);

/* The flusher lease: take it (renew 0) or extend it (renew 1). 1 held, 0 not ours, or an
 * error. A take that found the lease held sets *left_ms (when not NULL) to the holder's
 * time left (PTTL), -1 when unknown. Release: compare-and-delete. */
int tc__l2_wb_lease(tc__l2_t *l2, const char *token, uint32_t ttl_ms, int renew,
                    int64_t *left_ms);
int tc__l2_wb_release(tc__l2_t *l2, const char *token);

/* One queued write (owned copy). kind 0: a malformed entry, only to acknowledge. */
typedef struct tc__wb_entry {
    char id[48];                /* the stream id */
    int kind;                   /* tc_write_kind_t */
    unsigned char *key, *value; /* one allocation: key then value */
    size_t klen, vlen;
    uint64_t version;
    unsigned attempts; /* dead letters: attempts made */
} tc__wb_entry_t;
void tc__l2_wb_entries_free(tc__wb_entry_t *e, size_t n);
/* Up to count entries for consumer. cursor NULL: new entries (XREADGROUP). Else take over
 * the entries pending in the group (a previous flusher's) unread for min_idle_ms or more,
 * from the id in cursor ("0-0" to start), and leave there where the next call goes on:
 * "0-0" once every one was claimed. Creates the group when missing. */
#define TC__WB_ID_MAX 48
int tc__l2_wb_read(tc__l2_t *l2, const char *consumer, char cursor[TC__WB_ID_MAX],
                   uint32_t min_idle_ms, size_t count, tc__wb_entry_t **out, size_t *n);
/* Acknowledge and delete written (or dropped) entries. */
int tc__l2_wb_ack(tc__l2_t *l2, const char *const *ids, size_t n);
/* Move a write that keeps failing to the dead-letter stream, and acknowledge it. */
int tc__l2_wb_bury(tc__l2_t *l2, const tc__wb_entry_t *e, const char *error, unsigned attempts);
/* The newest version written for each entry's key (0: none known), and recording them. */
int tc__l2_wb_written(tc__l2_t *l2, const tc__wb_entry_t *const *e, size_t n, uint64_t *out);
int tc__l2_wb_mark_written(tc__l2_t *l2, const tc__wb_entry_t *const *e, size_t n);
/* Dead letters after id `after` ("" = from the start), up to count; errors[i] (free each,
 * may be NULL) their last error. Queue one again (removing it from the dead letters). */
int tc__l2_wb_dead_range(tc__l2_t *l2, const char *after, size_t count, tc__wb_entry_t **out,
                         size_t *n, char **errors);
int tc__l2_wb_requeue(tc__l2_t *l2, const tc__wb_entry_t *e);

/* Load every mark from Redis into the local copy (GET <prefix>clear, SCAN <prefix>n:*),
 * and declare it current if no loss intervened. 0 or an error (the copy stays unknown). */
int tc__l2_load_marks(tc__l2_t *l2);

/* Snapshot of the counters (relaxed atomics). */
void tc__l2_counters(tc__l2_t *l2, tc__l2_counters_t *out);

/* True when the breaker currently lets calls through (closed, or a probe is due). */
int tc__l2_available(tc__l2_t *l2);
/* Drop every pooled connection (a failover moved the master): the next calls reconnect. */
void tc__l2_reset(tc__l2_t *l2);

#endif
