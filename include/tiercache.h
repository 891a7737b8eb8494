/*
 * tiercache.h - the whole public API of tiercache, a two-tier cache for C servers.
 *
 *   L1: an in-process, sharded, lock-striped LRU bounded in bytes.
 *   L2: Redis (through hiredis), shared by every process.
 *   Invalidation: every write or delete is published on a Redis pub/sub channel;
 *   a listener thread in every process evicts the key from its L1.
 *
 * Conventions (read once, they hold for every function below):
 * - Return codes: 0 is success; failures are negative TC_E* codes. TC_ENOTFOUND is a
 *   result (a miss), not a failure. New codes may be added in later versions: treat any
 *   unknown negative value as an error.
 * - Keys are binary (any bytes, NUL included), 1..TC_MAX_KEY_LEN bytes long. Values are
 *   binary, 0..max_value_bytes long.
 * - Writes copy key and value; the caller keeps ownership of its buffers.
 * - Reads return a tc_ref_t: a reference-counted, zero-copy view of the value. It stays
 *   valid, unchanged, until tc_ref_release(), even if the entry is evicted, expired or
 *   invalidated meanwhile, and even after tc_close().
 * - Threads: every data call (tc_get, tc_get_copy, tc_set, tc_del, tc_fetch, tc_stats)
 *   may be called concurrently from any number of threads on one shared tc_cache_t.
 *   tc_open and tc_close must not race with other calls on the same handle.
 * - Processes: a handle belongs to the process that opened it. After fork(), every call on
 *   it in the child returns TC_EFORKED (its threads and connections stayed in the parent);
 *   the child opens its own cache. tc_close in the child releases nothing the parent uses.
 * - Optional tc_error_t pointers may be NULL; when given they receive a message that
 *   names the offending field or variable. They are owned by the caller, so no thread
 *   can overwrite another's message.
 * - Growing structs: tc_config_t and tc_stats_t only ever gain fields at their end. The
 *   functions that take them (tc_config_init, tc_config_from_env, tc_open, tc_stats) are
 *   macros that pass the caller's sizeof to a *_size entry point, which reads and writes
 *   only that many bytes: a program built against an older header keeps working with a
 *   newer library, and the symbols without _size keep the 0.1.0 struct sizes.
 */
#ifndef TIERCACHE_H
#define TIERCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TC_EXPORT __attribute__((visibility("default")))
#else
#define TC_EXPORT
#endif

#define TC_VERSION_MAJOR  0
#define TC_VERSION_MINOR  1
#define TC_VERSION_PATCH  0
#define TC_VERSION_STRING "0.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, comparable at compile time. */
#define TC_VERSION_NUMBER (TC_VERSION_MAJOR * 10000 + TC_VERSION_MINOR * 100 + TC_VERSION_PATCH)

/* Longest key accepted, in bytes. */
#define TC_MAX_KEY_LEN 65535u

/* Error codes: X(name, value, message). tc_strerror() and tc_err_name() come from it. */
#define TC_ERRNO_MAP(X)                                                                        \
    X(TC_OK, 0, "success")                                                                     \
    X(TC_ENOTFOUND, -1, "key not found")                                                       \
    X(TC_EINVAL, -2, "invalid argument (NULL pointer or out-of-range value)")                  \
    X(TC_ENOMEM, -3, "out of memory")                                                          \
    X(TC_ENOSPC, -4, "buffer too small for the value")                                         \
    X(TC_EKEYLEN, -5, "key is empty or longer than TC_MAX_KEY_LEN")                            \
    X(TC_ETOOBIG, -6, "value is larger than max_value_bytes")                                  \
    X(TC_EUNAVAILABLE, -7, "Redis is unavailable (unreachable or circuit breaker open)")       \
    X(TC_ETIMEDOUT, -8, "Redis did not answer within the configured timeout")                  \
    X(TC_EPROTO, -9, "unexpected reply or malformed data from Redis")                          \
    X(TC_EREDIS, -10, "Redis returned an error reply")                                         \
    X(TC_ECONFIG, -11, "invalid configuration")                                                \
    X(TC_ELOADER, -12, "loader failed without a tiercache error code")                         \
    X(TC_EINTERNAL, -13, "internal error")                                                     \
    X(TC_EFORKED, -14, "the cache was opened in another process (fork): open one in this one") \
    X(TC_EPARTIAL, -15,                                                                        \
      "the source was written but the cache was not: the key is invalidated in the "           \
      "background")                                                                            \
    X(TC_EFULL, -16, "the write-behind queue is full (write_behind_max_queue): nothing queued")

typedef enum tc_err {
#define TC__ERR_ENUM(name, value, msg) name = value,
    TC_ERRNO_MAP(TC__ERR_ENUM)
#undef TC__ERR_ENUM
} tc_err_t;

/* Caller-owned detail for a failure. msg is always NUL-terminated. */
typedef struct tc_error {
    int code;
    char msg[256];
} tc_error_t;

/* Opaque handles. */
typedef struct tc_cache tc_cache_t;
typedef struct tc_ref tc_ref_t;
typedef struct tc_load tc_load_t;

/*
 * The loader of tc_fetch (and of tc_get with read-through: tc_config_t.loader). Runs with no
 * tiercache lock held, on the calling thread, or on a refresh thread (stale-while-
 * revalidate, early refresh, load timeouts): a database handle it uses must then be
 * thread-safe, or one per thread. It must produce the value with tc_load_set_value() (and
 * may call tc_load_set_ttl()) and return 0, return TC_ENOTFOUND when the key does not exist
 * at the source, or return a negative error (returned as-is to every waiter; a positive
 * return becomes TC_ELOADER). Returning 0 without a value is reported as TC_ELOADER.
 * Nothing is cached on failure.
 */
typedef int (*tc_loader_fn)(void *arg, const void *key, size_t klen, tc_load_t *load);

/* A batch loader's view of the keys it must load (valid during the call only). */
typedef struct tc_batch tc_batch_t;

/*
 * A batch loader (tc_mfetch, tc_warm): called on the calling thread with no tiercache lock
 * held, with every key that neither tier had and no other load covers. For each key it
 * may set a value (tc_batch_set_value), a TTL, or an error; a key left unset is not found
 * at the source (TC_ENOTFOUND, cached as an absence when negative_ttl_ms is set). Return 0,
 * or a negative code: then every key is answered with it and nothing is cached.
 */
typedef int (*tc_batch_loader_fn)(void *arg, tc_batch_t *batch);

/* One write for the source (write-through and write-behind; docs/write-strategies.md). */
typedef enum tc_write_kind { TC_WRITE_SET = 1, TC_WRITE_DEL = 2 } tc_write_kind_t;

typedef struct tc_write {
    int kind; /* a tc_write_kind_t */
    const void *key;
    size_t klen;
    const void *value; /* TC_WRITE_SET: the value (vlen bytes); NULL for a delete */
    size_t vlen;
    uint64_t version; /* grows with every write of a key: write-behind hands the version
                         stored with the value; write-through the one minted under the
                         key's lock, or without the lock this machine's clock in
                         microseconds (docs/write-strategies.md). Write-behind delivers at
                         least once (a flusher that died after writing is replayed by
                         another): write only when newer, e.g. UPDATE ... WHERE version < ?,
                         and the writer is idempotent */
    int result;       /* set by the writer: 0 written (the default), or a negative code:
                         this write failed (write-behind retries it) */
} tc_write_t;

/*
 * The writer: writes to the source of truth (the database). Write-through calls it on the
 * calling thread with one write; write-behind on its flusher thread with a batch (each key
 * at most once, its newest write). It returns 0 and marks failed writes in their `result`,
 * or a negative code when the whole batch failed. No tiercache lock is held. Its `arg` must
 * stay valid until tc_close.
 */
typedef int (*tc_writer_fn)(void *arg, tc_write_t *writes, size_t n);

/* Called on the listener thread after an invalidation for `key` was applied to L1.
 * Must be quick and must not call back into the same cache's tc_close. */
typedef void (*tc_inval_hook_fn)(void *arg, const void *key, size_t klen);

/* Server-assisted invalidation (Redis client tracking, over RESP2): see docs/consistency.md
 * "Any writer". */
typedef enum tc_tracking {
    TC_TRACKING_OFF = 0,     /* only tiercache's own messages invalidate (the default) */
    TC_TRACKING_BCAST = 1,   /* Redis reports every write of a key under the prefix, by any
                                client: one registration, no per-key state on the server */
    TC_TRACKING_DEFAULT = 2, /* Redis reports writes of the keys this process has read:
                                fewer messages, but the server keeps a table of them
                                (tracking-table-max-keys bounds it; overflow evicts) */
} tc_tracking_t;

/* Which L1 entry goes when a shard is full (docs/operations.md "L1 eviction"). Neither
 * moves an entry on a hit; they differ in what survives a scan. */
typedef enum tc_l1_policy {
    TC_L1_POLICY_DEFAULT = 0, /* second chance (CLOCK) in recency order: within a few tenths
                                 of a point of exact LRU's hit ratio */
    TC_L1_POLICY_S3FIFO = 1,  /* S3-FIFO: new keys wait in a small queue, so one-hit wonders
                                 and scans do not displace the frequently used; costs a
                                 ghost table (8 bytes a table slot, ~11-21 per entry) */
} tc_l1_policy_t;

/* Log levels: a message is delivered when its level <= the configured one. */
typedef enum tc_log_level {
    TC_LOG_OFF = 0,
    TC_LOG_ERROR = 1, /* tiercache cannot do its job: permission refused, ... */
    TC_LOG_WARN = 2,  /* degraded: Redis unreachable, breaker open, listener lost, L1
                         flushed, values refused, refreshes dropped, lock releases lost */
    TC_LOG_INFO = 3,  /* recovered: breaker closed, listener subscribed, local entries
                         dropped at a heal */
    TC_LOG_DEBUG = 4,
} tc_log_level_t;

/* A log message. Called on whatever thread saw the event (a data call's, the listener's,
 * a background one), never on an L1 hit, never with a tiercache lock held; it must be
 * quick and must not call into the same cache. msg is NUL-terminated and valid only during
 * the call; key (klen bytes, binary) is the key concerned, or NULL. Messages of one kind
 * are rate-limited (a flapping Redis cannot flood a log): at most 5 per 10 s, and the next
 * one after a quiet spell says how many were suppressed. Never contains a password. */
typedef void (*tc_log_fn)(void *arg, int level, const char *msg, const void *key, size_t klen);

/*
 * Configuration. Fill with tc_config_init() (and optionally tc_config_from_env()), then
 * change fields. Fields are only ever appended in later versions (see "Growing structs"
 * above). String fields are borrowed: tc_open() copies them, so they need only live until
 * tc_open() returns.
 */
typedef struct tc_config {
    /* L1 */
    size_t l1_max_bytes;       /* byte budget of L1 (keys, values, entry and table overhead
                                  as the allocator really charges it). 0 disables L1.
                                  Default 64 MiB. Env: L1_MAX_BYTES (e.g. 256MiB). */
    size_t l1_max_entries;     /* optional cap on L1 entries; 0 = no cap. Env: L1_MAX_ENTRIES */
    unsigned l1_shards;        /* power of two; 0 = 16 per CPU, fewer for a small L1 (each
                                  shard keeps at least 64 entries: l1_max_entries, or
                                  l1_max_bytes at 1 KiB per entry) or for large values
                                  (each holds two of l1_max_value_bytes). Env: L1_SHARDS */
    size_t l1_max_value_bytes; /* larger values are served but not kept in L1. Default 1 MiB.
                                  Env: L1_MAX_VALUE_BYTES */
    uint64_t default_ttl_ms;   /* TTL when a call passes 0. Default 60 s. Env: DEFAULT_TTL */
    double ttl_jitter;         /* effective TTL is uniform in ttl*(1 +- jitter); 0..0.5.
                                  Default 0.10. Env: TTL_JITTER */
    size_t max_value_bytes;    /* largest value accepted by tc_set / loaders, and read from
                                  Redis (a longer stored value is refused unread:
                                  TC_ETOOBIG). Default 8 MiB (Redis spends ~40 ms on a
                                  write that size), at most 511 MiB. Writes over 1 MiB get
                                  1 ms more than command_timeout_ms per 16 KiB.
                                  Env: MAX_VALUE_BYTES */

    /* L2 */
    const char *redis_url;     /* redis://[user:password@]host[:port][/db],
                                  unix:///path.sock[?db=N&password=P&user=U], or
                                  redis+sentinel://[user:password@]host[:port][,...]/name[/db]
                                  [?sentinel_password=P[&sentinel_user=U]] (the master found
                                  through Sentinel on every connect, port 26379 by default;
                                  the query: the sentinels' own AUTH); or up to 64 of these
                                  separated by spaces: keys spread over the servers by
                                  consistent hashing, one cache per server behind this
                                  handle, L1 budgets split evenly (docs/configuration.md,
                                  "Several servers"); or
                                  redis+cluster://[user:password@]host[:port][,...]
                                  [?read_from=replicas[&replica_keep_ms=N]]: a
                                  Redis Cluster found from those nodes (tags, namespaces,
                                  tc_clear, write-behind and tracking refused there:
                                  docs/configuration.md, "Redis Cluster"); NULL = L1-only.
                                  Env: REDIS_URL */
    const char *key_prefix;    /* namespace of L2 keys. Default "tc:". Env: KEY_PREFIX */
    const char *inval_channel; /* pub/sub channel. Default "tc:inval". Env: INVAL_CHANNEL */
    unsigned pool_size;        /* Redis connections for data calls. Default 8. Env: POOL_SIZE */
    uint32_t connect_timeout_ms;  /* Default 500. Env: CONNECT_TIMEOUT (e.g. 500ms) */
    uint32_t command_timeout_ms;  /* Default 250. Env: COMMAND_TIMEOUT */
    int require_redis;            /* nonzero: tc_open fails if Redis is unreachable.
                                     Default 0 (open degraded). Env: REQUIRE_REDIS */
    unsigned breaker_threshold;   /* consecutive L2 failures that open the breaker. Default 5.
                                     Env: BREAKER_THRESHOLD */
    uint32_t breaker_cooldown_ms; /* how long L2 is skipped before a probe. Default 1000.
                                     Env: BREAKER_COOLDOWN */
    uint32_t listener_ping_ms;    /* listener watchdog: PING after this much silence; the
                                     link is declared lost after another such period without
                                     a reply. Default 1000. Env: LISTENER_PING */

    /* Hooks */
    tc_inval_hook_fn inval_hook; /* optional; see tc_inval_hook_fn */
    void *inval_hook_arg;

    /* Freshness under load (see docs/freshness.md). Every feature is off at 0 unless a
     * default is given. Trade-offs: stale windows and fail-safe keep values (in both tiers)
     * longer than their TTL; early refresh and stale-while-revalidate call the loader from a
     * background thread, so a tc_fetch loader's `arg` must stay valid until tc_close when
     * they are on. */
    uint64_t stale_ttl_ms;          /* stale-while-revalidate: after the fresh TTL, tc_fetch
                                       serves the old value at once (tc_ref_stale() == 1) and
                                       refreshes it in the background. Env: STALE_TTL */
    uint64_t failsafe_max_stale_ms; /* fail-safe: when a reload fails or times out, tc_fetch
                                       serves the last value (stale) up to this long past its
                                       fresh TTL. Env: FAILSAFE_MAX_STALE */
    uint32_t failsafe_backoff_ms;   /* after a failed reload, a key is not reloaded again for
                                       this long (stale served meanwhile). Default 1000.
                                       Env: FAILSAFE_BACKOFF */
    double early_refresh_beta;      /* XFetch: refresh a hot key in the background with a
                                       probability rising as expiry nears, scaled by the
                                       measured load time. 0 = off, 1.0 = the paper's default.
                                       Env: EARLY_REFRESH_BETA */
    uint64_t negative_ttl_ms;       /* a loader's TC_ENOTFOUND is cached (both tiers) this
                                       long. Env: NEGATIVE_TTL */
    uint32_t load_soft_timeout_ms;  /* a load slower than this returns the stale value if
                                       there is one and finishes in the background.
                                       Env: LOAD_SOFT_TIMEOUT */
    uint32_t load_hard_timeout_ms;  /* a load slower than this returns TC_ETIMEDOUT (it still
                                       finishes, and caches, in the background).
                                       Env: LOAD_HARD_TIMEOUT */
    unsigned refresh_threads; /* background load threads. Default 2. Env: REFRESH_THREADS */
    unsigned refresh_queue;   /* pending background loads; beyond it they are dropped
                                 (counted). Default 1024. Env: REFRESH_QUEUE */
    uint32_t lock_ttl_ms;     /* cross-process single-flight: an L2 miss in tc_fetch
                                 takes a Redis lock (SET NX PX) this long; 0 = off.
                                 Default 5000. Env: LOCK_TTL */
    uint32_t lock_wait_ms;    /* a process that finds the lock taken waits this long to
                                 be woken by the value's publication, then loads itself.
                                 Default 5000. Env: LOCK_WAIT */
    int sliding_ttl;          /* nonzero: an L1 hit extends the entry's L1 life by its
                                 TTL again, never past sliding_max_ms after it was
                                 stored. Env: SLIDING_TTL */
    uint64_t sliding_max_ms;  /* absolute cap for sliding expiration. Default 1 h.
                                 Env: SLIDING_MAX */
    const struct tc_ttl_rule *ttl_rules; /* per-prefix TTLs (first match wins), used when a
                                            call passes ttl 0; borrowed, copied by tc_open */
    size_t ttl_rules_count;

    /* ---- appended after 0.1.0 ---- */
    /* Coherence (docs/consistency.md) */
    uint64_t degraded_ttl_ms; /* the longest an L1 entry lives when no invalidation is sure
                                 to reach it: a value written or loaded while Redis refused
                                 it (kept locally so the process reads its own write), or
                                 any value kept while the listener is not subscribed.
                                 Such local values also go at the first answer from Redis.
                                 0 = 2 x listener_ping_ms (the watchdog bound).
                                 Env: DEGRADED_TTL */
    /* Operations */
    tc_log_fn log_fn; /* optional; see tc_log_fn */
    void *log_arg;
    int log_level; /* a tc_log_level_t. With log_fn: 0 means TC_LOG_WARN. Without log_fn:
                      0 is silent, anything else writes to stderr.
                      Env: LOG (off, error, warn, info, debug) */
    /* Invalidation */
    unsigned replay_log_len; /* recent invalidations kept in <key_prefix>"log" (a Redis
                                stream, MAXLEN ~): after a lost link the listener reads
                                what it missed from there instead of flushing L1. 0 = off
                                (flush). Default 10000 (~1 MB). Env: REPLAY_LOG_LEN */
    int tracking;   /* a tc_tracking_t: also evict on Redis's own invalidations, so writes
                       by any client (redis-cli, other languages) reach L1 within one
                       message delay. Every write then also costs each process holding the
                       key one extra read (the server's notice carries no version). A lost
                       link always flushes L1 (the replay log cannot hold other clients'
                       writes). Env: TRACKING (off, bcast, default) */
    int plain_keys; /* nonzero: cache ordinary Redis strings that anyone writes: the key is
                       the Redis key (no prefix added, no header), reads are GET + PTTL,
                       writes plain SET / DEL, invalidation comes from tracking (required).
                       With bcast tracking every key must start with key_prefix (the
                       tracked prefix). No versions: the freshness features and the
                       cross-process lock (and its lease) do not apply. Env: PLAIN_KEYS */
    /* Patterns (docs/patterns.md) */
    int ns_separator; /* the byte that ends a namespace: a key's namespaces are its
                         prefixes that end just before one (not counting its first byte;
                         the first TC_MAX_NS_DEPTH of them): "a:b:c" is in namespaces "a"
                         and "a:b" (tc_invalidate_namespace). Reads judge a value against
                         the marks of its namespaces: the cache's copy of them while its
                         listener is subscribed, else Redis's (same round trip). Every cache
                         sharing key_prefix must share inval_channel, or it never learns
                         of a bump or clear. Default ':'; -1 = no namespaces.
                         Env: NS_SEPARATOR (one character, or "none") */
    /* Write strategies (docs/write-strategies.md). Code only: no environment variable for
     * a callback. */
    tc_loader_fn loader; /* read-through: tc_get loads a miss with it, exactly as tc_fetch
                            (single-flight, lock, freshness). NULL: tc_get only reads */
    void *loader_arg;
    tc_writer_fn writer; /* write-through (tc_set_through, tc_del_through) and write-behind
                            (tc_set_behind, tc_del_behind); NULL: those calls are refused */
    void *writer_arg;
    unsigned write_behind_batch;     /* largest batch given to the writer. Default 100.
                                        Env: WRITE_BEHIND_BATCH */
    uint32_t write_behind_delay_ms;  /* the flusher waits at most this long for a batch to
                                        fill. Default 100. Env: WRITE_BEHIND_DELAY */
    unsigned write_behind_max_queue; /* queued writes (all processes) beyond which
                                        tc_set_behind returns TC_EFULL. Default 100000.
                                        Env: WRITE_BEHIND_MAX_QUEUE */
    unsigned write_behind_attempts;  /* writer failures before a write goes to the dead-letter
                                        stream. Default 5. Env: WRITE_BEHIND_ATTEMPTS */
    uint32_t write_behind_retry_ms;  /* first retry delay, doubling up to 10 s. Default 100.
                                        Env: WRITE_BEHIND_RETRY */
    int write_behind_flusher;        /* 1: this process may flush the queue (one process at
                                        a time does, holding a lease; another takes over
                                        within write_behind_lease_ms of its death); 0: only
                                        queue. Default 1 (when writer is set).
                                        Env: WRITE_BEHIND_FLUSHER */
    uint32_t write_behind_lease_ms;  /* the flusher's lease. Default 5000.
                                        Env: WRITE_BEHIND_LEASE */
    /* L1 engine */
    int l1_policy; /* a tc_l1_policy_t. Default TC_L1_POLICY_DEFAULT.
                      Env: L1_POLICY (default, s3fifo) */
} tc_config_t;

/* A TTL rule: keys starting with `prefix` (prefix_len bytes, binary) get these TTLs. */
typedef struct tc_ttl_rule {
    const void *prefix;
    size_t prefix_len;
    uint64_t ttl_ms;       /* fresh TTL; 0 = default_ttl_ms */
    uint64_t stale_ttl_ms; /* stale window for these keys; 0 = the cache's stale_ttl_ms */
} tc_ttl_rule_t;

/* Statistics: monotonic counters since tc_open, plus gauges (marked). */
typedef struct tc_stats {
    uint64_t l1_hits, l1_misses;
    uint64_t l2_hits, l2_misses;
    uint64_t loads, load_errors;     /* loader calls made by tc_fetch, and failures */
    uint64_t singleflight_waits;     /* tc_fetch calls that waited on another's load */
    uint64_t l1_entries, l1_bytes;   /* gauges */
    uint64_t l1_max_bytes;           /* gauge: the configured budget */
    uint64_t l1_evictions;           /* entries dropped to stay within budget */
    uint64_t l1_expirations;         /* entries dropped because their TTL passed */
    uint64_t l1_fills_rejected;      /* L2/loader results not kept because an
                                        invalidation superseded them in flight */
    uint64_t inval_published;        /* writes/deletes published by this process */
    uint64_t inval_received;         /* messages read from the channel */
    uint64_t inval_applied;          /* well-formed messages applied to L1 */
    uint64_t inval_malformed;        /* messages ignored as malformed */
    uint64_t l2_errors, l2_timeouts; /* failed L2 calls (timeouts counted in both) */
    uint64_t breaker_opens;          /* times the breaker opened */
    int breaker_state;               /* gauge: 0 closed, 1 open, 2 half-open */
    int listener_connected;          /* gauge: 1 while subscribed and trusted */
    uint64_t listener_reconnects;    /* successful re-subscriptions after a loss */
    uint64_t l1_flushes;             /* whole-L1 flushes (listener loss / resubscribe) */
    /* Freshness */
    uint64_t early_refreshes;   /* background refreshes started by XFetch */
    uint64_t stale_refreshes;   /* background refreshes started by a stale read */
    uint64_t refreshes_dropped; /* background loads dropped: queue full */
    uint64_t stale_serves;      /* stale-while-revalidate answers */
    uint64_t failsafe_serves;   /* stale answers because a reload failed / backs off */
    uint64_t negative_hits;     /* TC_ENOTFOUND answered from a cached absence */
    uint64_t lock_acquired;     /* cross-process locks taken for a load */
    uint64_t lock_waits;        /* tc_fetch calls that waited on another process's load */
    uint64_t lock_timeouts;     /* ... and gave up waiting, loading themselves */
    uint64_t load_timeouts;     /* loads that passed a soft or hard timeout */
    /* ---- appended after 0.1.0 ---- */
    /* Coherence */
    uint64_t l1_local_entries;  /* gauge: entries Redis does not hold (kept while it failed) */
    uint64_t l2_heals;          /* Redis answered after failing: local entries dropped */
    uint64_t versions_refused;  /* stored values refused: a version no counter produced */
    uint64_t counter_heals;     /* version counters found corrupt in Redis and reset */
    uint64_t leases_lost;       /* loads not stored: a write or delete came during them */
    uint64_t unlocks_deferred;  /* lock releases that failed and were retried later */
    uint64_t values_too_big;    /* stored values refused unread (over max_value_bytes) */
    uint64_t permission_errors; /* Redis refused a command (NOPERM, NOAUTH...): see logs */
    uint64_t listener_replays;  /* lost links caught up from the replay log (no flush) */
    uint64_t inval_replayed;    /* invalidations read back from the replay log */
    uint64_t replay_log_gaps;   /* lost links the log no longer covered (L1 flushed) */
    uint64_t inval_tracking;    /* keys evicted on Redis's own notices (tracking) */
    /* Patterns */
    uint64_t keys_invalidated; /* keys removed from Redis by this process's tag and
                                  prefix invalidations */
    uint64_t inval_swept;      /* L1 entries dropped by namespace and clear messages */
    uint64_t values_hidden;    /* values read from Redis as absent: an older clear or
                                  namespace invalidation covers them (lazy cleanup) */
    uint64_t batch_loads;      /* batch loader calls (tc_mfetch, tc_warm) */
    /* Write strategies */
    uint64_t writes_through; /* tc_set_through / tc_del_through whose source write worked */
    uint64_t writes_partial; /* ... whose cache step then failed (TC_EPARTIAL) */
    uint64_t wb_queued;      /* writes this process queued (tc_set_behind, tc_del_behind) */
    uint64_t wb_rejected;    /* ... refused: the queue was full (TC_EFULL) */
    uint64_t wb_written;     /* queued writes this process's flusher wrote to the source */
    uint64_t wb_coalesced;   /* queued writes dropped: a newer write of the key came first */
    uint64_t wb_retries;     /* writer failures retried by this process's flusher */
    uint64_t wb_dead;        /* writes it moved to the dead-letter stream */
    uint64_t wb_flusher;     /* gauge: 1 while this process holds the flusher lease */
    /* L1 layout */
    uint64_t l1_shards; /* gauge: L1's shards (l1_shards, or the default chosen at open) */
    /* Scale out */
    uint64_t master_switches; /* redis+sentinel://: failovers announced by Sentinel and
                                 followed (connections dropped, L1 flushed on reconnect) */
    uint64_t servers;         /* gauge: Redis servers the keys are spread over (1; N for a
                                 redis_url list; 0 in L1-only mode) */
    uint64_t servers_down;    /* gauge: of those, how many have their breaker open or their
                                 listener unsubscribed (their keys fail or are not kept) */
    /* Redis Cluster (redis+cluster://; servers counts its masters) */
    uint64_t cluster_redirects; /* MOVED and ASK answers followed */
    uint64_t cluster_retries;   /* calls sent again: TRYAGAIN, CLUSTERDOWN, or a master
                                   unreachable (a failover under way) */
    uint64_t cluster_map_reads; /* slot maps read (CLUSTER SLOTS) */
    uint64_t cluster_failovers; /* map reads that found other masters (L1 flushed) */
} tc_stats_t;

/* Latency histograms, one per kind of call (tc_latency). */
typedef enum tc_latency_kind {
    TC_LAT_GET_HIT = 0, /* tc_get / tc_fetch answered from L1 (sampled: 1 call in 64) */
    TC_LAT_GET_MISS,    /* tc_get that went to Redis (L2 round trip included) */
    TC_LAT_FETCH_LOAD,  /* tc_fetch that ran (or waited for) a load */
    TC_LAT_SET,         /* tc_set, tc_mset (without Redis: sampled, 1 call in 64) */
    TC_LAT_DEL,         /* tc_del, tc_mdel (without Redis: sampled, 1 call in 64) */
    TC_LAT_INVAL,       /* write to eviction: a message's version (Redis's clock) to the
                           listener applying it (this host's clock; skew adds in) */
    TC_LAT_COUNT
} tc_latency_kind_t;

#define TC_LATENCY_BUCKETS 24
typedef struct tc_latency {
    uint64_t count;                       /* observations */
    uint64_t sum_ns;                      /* their total */
    uint64_t buckets[TC_LATENCY_BUCKETS]; /* observations <= tc_latency_bounds_ns()[i] and
                                             above the previous bound; the last is +Inf */
} tc_latency_t;

/* ---- Errors and version (thread-safe, no allocation) ---- */

/* Message for a code; never NULL ("unknown error" for unknown codes). */
TC_EXPORT const char *tc_strerror(int code);
/* Symbolic name ("TC_ENOTFOUND"); never NULL ("TC_E?" for unknown codes). */
TC_EXPORT const char *tc_err_name(int code);
/* TC_VERSION_STRING of the linked library. */
TC_EXPORT const char *tc_version(void);

/* ---- Configuration ---- */

/* Fill cfg with the documented defaults. cfg NULL: no-op. Thread-safe on distinct cfgs.
 * A macro over tc_config_init_size (see "Growing structs"). */
TC_EXPORT void tc_config_init_size(tc_config_t *cfg, size_t size);
TC_EXPORT void tc_config_init(tc_config_t *cfg); /* 0.1.0 entry point: 0.1.0's size */
#define tc_config_init(cfg) tc_config_init_size((cfg), sizeof(tc_config_t))

/*
 * Overlay settings from environment variables named <prefix><FIELD> (prefix NULL means
 * "TIERCACHE_"), e.g. TIERCACHE_L1_MAX_BYTES=256MiB, TIERCACHE_DEFAULT_TTL=30s,
 * TIERCACHE_REDIS_URL=redis://127.0.0.1:6379/0. Unset variables leave fields alone.
 * Byte sizes take B, K/KiB, M/MiB, G/GiB (1024-based) or KB/MB/GB (1000-based); a bare
 * number is bytes. Durations take ms, s, m, h, d; a bare number is milliseconds. Booleans
 * take 1/0, true/false, yes/no, on/off.
 * Strict: a variable that starts with the prefix but names no field is an error (naming
 * the nearest known variable), and so is a value out of its field's range (named by the
 * variable, as tc_open would refuse it), or a variable for a field the caller's
 * tc_config_t is too old to have.
 * Returns 0, TC_EINVAL (cfg NULL) or TC_ECONFIG with err->msg naming the bad variable;
 * on error cfg is left unchanged. String fields point into the environment (getenv) and
 * stay valid until the environment changes. ttl_rules cannot be set from the environment
 * (set them in code). Not thread-safe against concurrent setenv (like getenv).
 * A macro over tc_config_from_env_size (see "Growing structs").
 */
TC_EXPORT int tc_config_from_env_size(tc_config_t *cfg, size_t size, const char *prefix,
                                      tc_error_t *err);
TC_EXPORT int tc_config_from_env(tc_config_t *cfg, const char *prefix, tc_error_t *err);
#define tc_config_from_env(cfg, prefix, err)                                                   \
    tc_config_from_env_size((cfg), sizeof(tc_config_t), (prefix), (err))

/* ---- Lifecycle ---- */

/*
 * Validate cfg and open a cache into *out. With a redis_url, tc_open connects the pool and
 * starts the listener thread, waiting up to connect_timeout_ms for it to subscribe. When
 * Redis is unreachable it still succeeds in degraded mode (L1 and loaders serve; L2 and
 * the listener are retried in the background) unless cfg->require_redis is set.
 * Returns 0; TC_EINVAL (cfg or out NULL); TC_ECONFIG (err->msg names the field, or says a
 * field this library does not know is set: cfg came from a newer header); TC_EUNAVAILABLE
 * (require_redis and Redis unreachable); TC_ENOMEM.
 * On failure *out is set to NULL. Ownership: the caller owns the handle until tc_close.
 * A macro over tc_open_size (see "Growing structs").
 */
TC_EXPORT int tc_open_size(const tc_config_t *cfg, size_t size, tc_cache_t **out,
                           tc_error_t *err);
TC_EXPORT int tc_open(const tc_config_t *cfg, tc_cache_t **out, tc_error_t *err);
#define tc_open(cfg, out, err) tc_open_size((cfg), sizeof(tc_config_t), (out), (err))

/* Stop the listener, close connections and free L1. NULL is a no-op. No other call may be
 * running or start on this handle. Refs still held stay valid until released. In a fork
 * child of the opening process it returns at once and touches nothing (the threads,
 * sockets and locks are the parent's; the memory is reclaimed when the child exits or
 * execs; Redis sockets are close-on-exec). */
TC_EXPORT void tc_close(tc_cache_t *cache);

/* ---- Data calls (all thread-safe on one shared handle) ---- */

/*
 * Look key up in L1, then in L2 (filling L1 when the value fits and no invalidation raced
 * the fill). On success *ref holds a pinned view; release it with tc_ref_release().
 * Returns 0; TC_ENOTFOUND (in neither tier, or L2 skipped while unavailable, or the stored
 * string is not a tiercache value or carries a version no writer produced: counted in
 * versions_refused); TC_EINVAL (NULL cache/key/ref); TC_EKEYLEN; TC_ENOMEM; TC_ETOOBIG (the
 * stored value is over max_value_bytes: refused after reading at most that much);
 * TC_EFORKED; TC_ETIMEDOUT / TC_EPROTO / TC_EREDIS when L2 failed (L2 unavailable is
 * reported as TC_ENOTFOUND).
 * *ref is NULL whenever the return is not 0.
 * With stale windows or fail-safe configured, a value past its fresh TTL is still returned
 * while either tier holds it (tc_ref_stale() says so; tc_get never reloads); a cached
 * absence (negative_ttl_ms) reads as TC_ENOTFOUND.
 * Read-through (tc_config_t.loader set): a key in neither tier is loaded with that loader,
 * and every rule and return code of tc_fetch applies (stale-while-revalidate, fail-safe,
 * negative caching, single-flight, the lock).
 * L1 hit path: one shard lock, no allocation, no system call, no copy.
 */
TC_EXPORT int tc_get(tc_cache_t *cache, const void *key, size_t klen, tc_ref_t **ref);

/*
 * tc_get, copying the value into buf (capacity *len). On return *len is the value's size.
 * Returns 0; TC_ENOSPC when *len was smaller (nothing copied, *len = needed size);
 * otherwise as tc_get. buf may be NULL when *len is 0 (to ask for the size).
 */
TC_EXPORT int tc_get_copy(tc_cache_t *cache, const void *key, size_t klen, void *buf,
                          size_t *len);

/*
 * Store key -> value in L2 with a TTL (ttl_ms 0 = default_ttl_ms; jitter applied), publish
 * the invalidation to every process in the same Redis operation, and update the local L1.
 * A ttl_ms above 100 years is capped there (as the configuration's limit).
 * Returns 0; TC_EINVAL (NULL cache/key, or value NULL with vlen > 0); TC_EKEYLEN;
 * TC_ETOOBIG; TC_ENOMEM; TC_EFORKED; TC_EUNAVAILABLE (breaker open or no connection: the
 * local L1 is still updated, as a local entry that lives at most degraded_ttl_ms and goes
 * as soon as Redis answers again); TC_ETIMEDOUT / TC_EREDIS / TC_EPROTO (the local L1 entry
 * is dropped: whether Redis applied the write is unknown, and its invalidation will follow
 * if it did). A successful write always replaces or evicts this process's copy.
 * L1-only mode: updates L1 and returns 0.
 */
TC_EXPORT int tc_set(tc_cache_t *cache, const void *key, size_t klen, const void *value,
                     size_t vlen, uint64_t ttl_ms);

/*
 * Delete key from L2 and from every process's L1 (via the invalidation channel).
 * A load of key in flight anywhere (tc_fetch with the lock on) will not store what it read.
 * Returns 0 (also when the key did not exist); TC_EINVAL; TC_EKEYLEN; TC_EFORKED;
 * TC_EUNAVAILABLE / TC_ETIMEDOUT / TC_EREDIS / TC_EPROTO (the local L1 entry is evicted
 * regardless).
 */
TC_EXPORT int tc_del(tc_cache_t *cache, const void *key, size_t klen);

/*
 * Evict key from every process's L1 (this one at once, the others through the
 * invalidation channel), without touching the value in Redis: for when the source changed
 * behind the cache's back. Any program may do the same by publishing a message
 * (docs/consistency.md "Invalidating from anywhere"). Returns 0; TC_EINVAL; TC_EKEYLEN;
 * TC_EFORKED; TC_EUNAVAILABLE / TC_ETIMEDOUT / TC_EREDIS (this process's copy is evicted
 * regardless). L1-only mode: evicts locally and returns 0.
 */
TC_EXPORT int tc_invalidate(tc_cache_t *cache, const void *key, size_t klen);

/* Inside a loader: set the value (copied; call again to replace). Returns 0, TC_EINVAL,
 * TC_ETOOBIG or TC_ENOMEM. */
TC_EXPORT int tc_load_set_value(tc_load_t *load, const void *value, size_t vlen);
/* Inside a loader: the TTL for this value (0 = default). Returns 0 or TC_EINVAL. */
TC_EXPORT int tc_load_set_ttl(tc_load_t *load, uint64_t ttl_ms);

/*
 * Cache-aside in one call: L1, then L2, else loader(arg, key, klen, load). The loaded
 * value is stored in L2 (only if the key is still absent there: a concurrent writer wins)
 * and in L1, and returned in *ref. Concurrent misses of one key in one process run the
 * loader once; the others wait for its result (value, TC_ENOTFOUND or error).
 * When L2 is unavailable the loader's value is still cached in L1 and returned.
 * With the freshness options (tc_config_t): a stale value may be returned at once while a
 * background refresh runs (tc_ref_stale(*ref) == 1); a failed or timed-out reload may be
 * answered with the last value; a cached absence answers TC_ENOTFOUND without a load; and
 * processes sharing Redis run one load for the whole cluster (lock_ttl_ms).
 * The load holds the key's Redis lock as a lease: if a tc_set or tc_del of the key (from
 * any process) comes after the miss, the loaded value is returned to this caller but not
 * stored anywhere, and callers that joined the load load again. One call spends at most
 * one command timeout on Redis: after a transport failure it loads without Redis.
 * Returns 0; TC_ENOTFOUND (the loader said so, now or within negative_ttl_ms, or a cached
 * absence stored by any process); the loader's error; TC_ETIMEDOUT (load_hard_timeout_ms
 * passed: it bounds every caller, joined ones and waits on another process's lock too);
 * TC_ETOOBIG (a stored value over max_value_bytes; no load); TC_EINVAL; TC_EKEYLEN;
 * TC_ENOMEM; TC_EFORKED.
 * *ref is NULL whenever the return is not 0.
 */
TC_EXPORT int tc_fetch(tc_cache_t *cache, const void *key, size_t klen, tc_loader_fn loader,
                       void *arg, tc_ref_t **ref);

/* ---- Per-call options ---- */

/* A borrowed byte string (keys, tags): len bytes at data, binary. */
typedef struct tc_buf {
    const void *data;
    size_t len;
} tc_buf_t;

/* Longest tag, and most tags on one value. */
#define TC_MAX_TAG_LEN 1024u
#define TC_MAX_TAGS    32u

/* tc_opts_t.flags */
enum tc_opt_flags {
    TC_OPT_NO_L1 = 1u << 0, /* reads: skip this process's L1 (read Redis, keep nothing);
                               writes and loads: do not keep the value in L1 */
};

/*
 * Options of one call (tc_set_opts, tc_fetch_opts, tc_mset, tc_mfetch, tc_warm). A growing
 * struct: initialise it with TC_OPTS_INIT (or tc_opts_init), which records the caller's
 * sizeof in `size`, then set fields; later versions append fields, and read those only
 * when the caller's size covers them. NULL wherever an options pointer is taken means all
 * defaults. Everything it points to is borrowed for the call only.
 */
typedef struct tc_opts {
    size_t size;          /* sizeof(tc_opts_t) as the caller compiled it */
    uint64_t ttl_ms;      /* 0: the key's TTL rule, else default_ttl_ms (a loader's
                             tc_load_set_ttl wins over it) */
    const tc_buf_t *tags; /* tags of the value(s) written: tc_invalidate_tag(tag) removes
                             them. Each 1..TC_MAX_TAG_LEN bytes, binary. NULL: none */
    size_t tags_count;    /* 0..TC_MAX_TAGS */
    unsigned flags;       /* TC_OPT_* */
} tc_opts_t;

#define TC_OPTS_INIT                                                                           \
    { sizeof(tc_opts_t), 0, NULL, 0, 0 }
/* Set *opts to TC_OPTS_INIT. NULL is a no-op. */
TC_EXPORT void tc_opts_init_size(tc_opts_t *opts, size_t size);
#define tc_opts_init(opts) tc_opts_init_size((opts), sizeof(tc_opts_t))

/*
 * tc_set with options: ttl, tags (the value is a member of each tag until it is
 * overwritten or deleted, or it expires), flags. A write that carries no tag removes the
 * key from no tag: a later tc_invalidate_tag skips it, since the value it stored is not
 * the tagged one. Returns as tc_set; TC_EINVAL also for a bad opts (size 0 or smaller than
 * the first tc_opts_t, a tag NULL, empty or over TC_MAX_TAG_LEN, more than TC_MAX_TAGS, or
 * tags with plain_keys or without Redis). Thread-safe.
 */
TC_EXPORT int tc_set_opts(tc_cache_t *cache, const void *key, size_t klen, const void *value,
                          size_t vlen, const tc_opts_t *opts);

/*
 * tc_fetch with options: ttl for the loaded value (when the loader sets none), tags stored
 * with it, flags. Returns as tc_fetch; TC_EINVAL also for a bad opts (as tc_set_opts).
 */
TC_EXPORT int tc_fetch_opts(tc_cache_t *cache, const void *key, size_t klen,
                            tc_loader_fn loader, void *arg, const tc_opts_t *opts,
                            tc_ref_t **ref);

/* ---- Invalidating many keys (docs/patterns.md). All thread-safe. ----
 *
 * Each is a sequence of bounded steps in Redis (no KEYS, no step longer than a few
 * milliseconds whatever the size) and reaches every process's L1 through the invalidation
 * channel. The race, defined: a write of a matching key that completed before the call
 * began is gone when the call returns 0 (for a tag or prefix: deleted from Redis; for all
 * four: from this process's L1 and reads, and within one message delay of the return from
 * every other process's); a write that begins after it returns survives; a write
 * concurrent with it may go either way. A load in flight (tc_fetch with the lock on) of a
 * key found and removed will not store what it read. In L1-only mode (no redis_url) they
 * act on this process's L1 (tags: TC_EINVAL, they live in Redis).
 */

/*
 * Remove every key whose current value was written with `tag` (tc_set_opts, tc_mset,
 * tc_fetch_opts) from Redis and every L1. Work is proportional to the tag's members, in
 * steps of 500. *removed (may be NULL) receives how many keys were removed.
 * Returns 0; TC_EINVAL (NULL cache or tag, empty or over TC_MAX_TAG_LEN, plain_keys, no
 * Redis); TC_EFORKED; an L2 error (TC_EUNAVAILABLE, TC_ETIMEDOUT, TC_EREDIS, TC_EPROTO):
 * then part of the tag may be removed; call again to finish.
 */
TC_EXPORT int tc_invalidate_tag(tc_cache_t *cache, const void *tag, size_t tlen,
                                size_t *removed);

/*
 * Remove every key that starts with `prefix` (binary, 1..TC_MAX_KEY_LEN bytes) from Redis
 * and every L1. Work is proportional to the whole keyspace of the Redis database (it SCANs
 * it in steps of 1000), so for frequent invalidation of a small group prefer a tag or a
 * namespace. *removed (may be NULL) receives how many keys were removed from Redis.
 * With plain_keys, deletes matching Redis keys (tracking evicts them everywhere). On a
 * Redis Cluster every master is scanned, and each key found is deleted as tc_del would; a
 * key a reshard moves during the call may escape it.
 * Returns 0; TC_EINVAL; TC_EKEYLEN; TC_EFORKED; an L2 error (part may be removed).
 */
TC_EXPORT int tc_invalidate_prefix(tc_cache_t *cache, const void *prefix, size_t plen,
                                   size_t *removed);

/* How deep a namespace may be nested: "a:b:c:d" (three separators) at most. */
#define TC_MAX_NS_DEPTH 4u

/*
 * Namespace version bump, O(1): every key in namespace `ns` (keys that start with ns
 * followed by ns_separator, see tc_config_t; ns may itself be nested, "user:42") written
 * before the call reads as absent from then on: in Redis, a mark takes the bump's version
 * and older values are ignored (they age out by their TTL, or are overwritten); in L1,
 * each process sweeps its entries of the namespace once (O(L1 entries): bump rarely; for
 * frequent invalidation of small groups use tags). This cache's reads miss them as soon as
 * the call returns; another cache's (another handle, or process), like its L1, within one
 * message delay (each cache keeps a copy of the marks, current while its listener is
 * subscribed, so reads cost no extra command; while it is not, reads fetch their marks from
 * Redis). One small Redis
 * key per namespace ever bumped stays. Loads in flight with the lock on that began before the
 * bump do not store. Returns 0; TC_EINVAL (NULL, empty, ending with the separator, nested
 * deeper than TC_MAX_NS_DEPTH, namespaces off, plain_keys); TC_EKEYLEN (ns and separator over
 * TC_MAX_KEY_LEN); TC_EFORKED; an L2 error (the bump may or may not have happened; this
 * process's L1 is swept anyway).
 */
TC_EXPORT int tc_invalidate_namespace(tc_cache_t *cache, const void *ns, size_t nslen);

/*
 * Clear the whole cache (every key under key_prefix), O(1) on the caller: one mark with
 * the clear's version makes every older value read as absent (they are overwritten, or
 * expire, lazily in Redis), and every process drops its L1: this process at once, the
 * others within one message delay, as for tc_invalidate_namespace. Locks and tags are left
 * to expire. Returns 0; TC_EINVAL (NULL, plain_keys); TC_EFORKED; an L2 error.
 * L1-only mode: empties this process's L1.
 */
TC_EXPORT int tc_clear(tc_cache_t *cache);

/* ---- Bulk calls. All thread-safe; keys in one call may repeat. ----
 *
 * Results are per key, in arrays the caller provides with n elements: codes[i] is what the
 * single-key call would have returned for keys[i] (0, TC_ENOTFOUND, or an error), and
 * refs[i] (bulk reads) the pinned value when codes[i] is 0, NULL otherwise (release each).
 * The call itself returns 0 when every key has its result in codes (look there), or a
 * negative code that applies to the whole call (then no ref is set): TC_EINVAL (NULL
 * cache, keys, refs or codes with n > 0, or bad opts), TC_EFORKED, TC_ENOMEM. n == 0 is a
 * no-op returning 0.
 */

/*
 * Look every key up in L1, then all the misses in Redis in one pipelined round trip (per
 * 1000 keys), filling L1 like tc_get.
 */
TC_EXPORT int tc_mget(tc_cache_t *cache, const tc_buf_t *keys, size_t n, tc_ref_t **refs,
                      int *codes);

/* One key and value to write (tc_mset). */
typedef struct tc_item {
    const void *key;
    size_t klen;
    const void *value;
    size_t vlen;
} tc_item_t;

/*
 * Write every item (copying them) as tc_set_opts would, all in one pipelined round trip
 * (per 1000 items): each write is its own atomic step in Redis, with its own version and
 * its invalidation published in that step, so a concurrent tc_set of the same key is
 * ordered against it as against any write. codes may be NULL. Returns 0 (and every
 * codes[i] 0), or the first failing item's code (codes says which).
 */
TC_EXPORT int tc_mset(tc_cache_t *cache, const tc_item_t *items, size_t n,
                      const tc_opts_t *opts, int *codes);

/*
 * Delete every key as tc_del would, in one pipelined round trip (per 1000 keys). codes may
 * be NULL. Returns 0, or the first failing key's code.
 */
TC_EXPORT int tc_mdel(tc_cache_t *cache, const tc_buf_t *keys, size_t n, int *codes);

/* Inside a batch loader: how many keys, and key i (its length in *klen). */
TC_EXPORT size_t tc_batch_count(const tc_batch_t *batch);
TC_EXPORT const void *tc_batch_key(const tc_batch_t *batch, size_t i, size_t *klen);
/* Key i's value (copied; call again to replace). 0, TC_EINVAL (i out of range), TC_ETOOBIG,
 * TC_ENOMEM. */
TC_EXPORT int tc_batch_set_value(tc_batch_t *batch, size_t i, const void *value, size_t vlen);
/* Key i's TTL (0 = default). 0 or TC_EINVAL. */
TC_EXPORT int tc_batch_set_ttl(tc_batch_t *batch, size_t i, uint64_t ttl_ms);
/* Key i failed at the source: code is TC_ENOTFOUND or negative (nothing cached for it).
 * 0 or TC_EINVAL. */
TC_EXPORT int tc_batch_set_error(tc_batch_t *batch, size_t i, int code);

/*
 * Cache-aside for many keys: L1, then one pipelined Redis read of the misses, then the
 * cross-process locks of the keys still missing (one round trip), then ONE loader call
 * for every key this call leads, then one pipelined store. Single-flight per key holds
 * across concurrent tc_fetch and tc_mfetch calls, in this process and (with the lock on)
 * in all: a key another thread or process is loading is waited for (after this call's own
 * loads, so two batches never wait on each other) and loaded alone if that load fails.
 * Keys in a freshness state (stale, backing off) go through tc_fetch's rules one by one.
 * Stored values carry opts' ttl and tags, as tc_fetch_opts. With several servers
 * (redis_url a list) all of this happens per server: one loader call per server that has
 * keys to load.
 */
TC_EXPORT int tc_mfetch(tc_cache_t *cache, const tc_buf_t *keys, size_t n,
                        tc_batch_loader_fn loader, void *arg, const tc_opts_t *opts,
                        tc_ref_t **refs, int *codes);

/*
 * Warm L1: read keys from Redis in pipelined batches of 1000, and, when loader is not
 * NULL, load the keys Redis lacks (in batches, as tc_mfetch) and store them in both tiers.
 * Meant right after tc_open with a list of hot keys (for example the keys tc_hot_keys
 * listed before the last shutdown). *warmed (may be NULL) receives how many keys are now
 * in L1. Returns 0 (keys that failed are skipped), TC_EINVAL, TC_EFORKED, TC_ENOMEM.
 */
TC_EXPORT int tc_warm(tc_cache_t *cache, const tc_buf_t *keys, size_t n,
                      tc_batch_loader_fn loader, void *arg, const tc_opts_t *opts,
                      size_t *warmed);

/* Called once per key by tc_hot_keys; return nonzero to stop. */
typedef int (*tc_key_fn)(void *arg, const void *key, size_t klen);

/*
 * List up to max keys L1 holds, newest first in each shard's eviction queue (shards taken in
 * turn), to save a hot-key list for tc_warm. Holds one shard lock at a time while it copies
 * that shard's keys, and calls fn with no lock held. Returns the number of keys passed to
 * fn, or TC_EINVAL / TC_EFORKED / TC_ENOMEM.
 */
TC_EXPORT long tc_hot_keys(tc_cache_t *cache, size_t max, tc_key_fn fn, void *arg);

/* ---- Write strategies (docs/write-strategies.md). All thread-safe. ----
 *
 * Cache-aside is tc_fetch + tc_del (the application writes its database, then deletes the
 * key). Read-through is tc_get with tc_config_t.loader. The calls below send writes to the
 * source through tc_config_t.writer; without a writer they return TC_EINVAL.
 */

/*
 * Write-through: the source first, then the cache. The key's Redis lock is taken first
 * (write-throughs of one key, from any process, run one at a time; a load in flight loses
 * its lease), then writer(arg, {SET key value}, 1) runs on this thread. If the writer
 * fails, nothing is cached and its error is returned (a positive return is TC_ELOADER).
 * Then the value is stored as tc_set_opts would, but only while the lock is still ours: if
 * a tc_set or tc_del of the key came meanwhile, the key is deleted everywhere instead (the
 * next read loads the source). Returns 0 (source written and the cache holds the value or
 * nothing); the writer's error; TC_EPARTIAL (the source was written but Redis could not be
 * told: this process's copy is dropped and the key's deletion is retried in the background
 * until Redis answers; until then other processes may serve the old value, within the
 * degraded bound); TC_EINVAL, TC_EKEYLEN, TC_ETOOBIG, TC_ENOMEM, TC_EFORKED.
 */
TC_EXPORT int tc_set_through(tc_cache_t *cache, const void *key, size_t klen, const void *value,
                             size_t vlen, const tc_opts_t *opts);
/* Write-through delete: writer({DEL key}), then tc_del. Returns as tc_set_through. */
TC_EXPORT int tc_del_through(tc_cache_t *cache, const void *key, size_t klen);

/*
 * Write-behind: the cache is updated at once, as tc_set_opts (both tiers, published), and in
 * the same atomic step the write is appended to a durable queue in Redis (the stream
 * <key_prefix>"wb"). One flusher in the cluster (a process with write_behind_flusher, holding
 * a lease) drains it in batches of write_behind_batch, waiting at most
 * write_behind_delay_ms for one to fill, keeping only the newest write of a key, and passes
 * them to the writer on its own thread. Failed writes are retried with back-off; after
 * write_behind_attempts failures a write goes to the dead-letter stream <key_prefix>"wb:dead"
 * (tc_dead_letters, tc_dead_letters_replay). Per key, an older write never reaches the
 * writer after a newer one; a flusher that dies mid-batch loses nothing (the next one
 * replays what it had not acknowledged: at least once, so the writer must be idempotent:
 * tc_write_t.version). Returns 0; TC_EFULL (write_behind_max_queue writes are waiting:
 * nothing was written or queued); TC_EUNAVAILABLE / TC_EREDIS (nothing cached or queued);
 * TC_ETIMEDOUT (unknown, as for any Redis command: Redis may still run the write when it
 * catches up, and then it is cached and queued together; calling again is safe, the newest
 * write wins); after any of these this process's copy is dropped. TC_EINVAL (no writer, or
 * Redis, or bad opts); TC_EKEYLEN, TC_ETOOBIG, TC_ENOMEM, TC_EFORKED.
 */
TC_EXPORT int tc_set_behind(tc_cache_t *cache, const void *key, size_t klen, const void *value,
                            size_t vlen, const tc_opts_t *opts);
/* Write-behind delete: tc_del now, the source's delete queued. Returns as tc_set_behind. */
TC_EXPORT int tc_del_behind(tc_cache_t *cache, const void *key, size_t klen);

/* Wait until the write-behind queue is empty (every write queued by any process written or
 * dead-lettered), waking this process's flusher. Returns 0, TC_ETIMEDOUT (timeout_ms
 * passed), TC_EINVAL, TC_EFORKED, or an L2 error. tc_close also drains this process's
 * flusher (up to write_behind_lease_ms) before it gives up the lease. */
TC_EXPORT int tc_flush(tc_cache_t *cache, uint32_t timeout_ms);

/* Called per dead letter: the write (valid during the call only), the writer's last error
 * (a tc_err_name or "writer returned N"), and the attempts made. Return nonzero to stop. */
typedef int (*tc_dead_fn)(void *arg, const tc_write_t *w, const char *error, unsigned attempts);
/* List up to max dead letters, oldest first. Returns how many were passed to fn, or a
 * negative code (TC_EINVAL, TC_EFORKED, an L2 error). */
TC_EXPORT long tc_dead_letters(tc_cache_t *cache, size_t max, tc_dead_fn fn, void *arg);
/* Queue every dead letter again (each is skipped by the flusher if a newer write of its key
 * was written since, within 7 days), removing it from the dead-letter stream. Returns how
 * many were queued, or a negative code. */
TC_EXPORT long tc_dead_letters_replay(tc_cache_t *cache);

/* ---- References (thread-safe; a ref may be used from any thread) ---- */

/* Pointer to the value bytes (not NUL-terminated; valid, possibly dangling-free empty, for
 * size 0). Valid until tc_ref_release(ref). ref must not be NULL. */
TC_EXPORT const void *tc_ref_data(const tc_ref_t *ref);
/* Size of the value in bytes. ref must not be NULL. */
TC_EXPORT size_t tc_ref_size(const tc_ref_t *ref);
/* 1 when the value was served past its fresh TTL (stale-while-revalidate or fail-safe),
 * 0 when fresh. Judged at the time of the call. ref must not be NULL. */
TC_EXPORT int tc_ref_stale(const tc_ref_t *ref);
/* Drop the reference; the memory is freed when no one else holds it. NULL is a no-op. */
TC_EXPORT void tc_ref_release(tc_ref_t *ref);

/* ---- Observability ---- */

/* Snapshot counters into *out. Returns 0, TC_EINVAL or TC_EFORKED. Thread-safe; takes each
 * shard lock briefly (never while any other lock is held). A macro over tc_stats_size
 * (see "Growing structs"): only `size` bytes of *out are written. */
TC_EXPORT int tc_stats_size(tc_cache_t *cache, tc_stats_t *out, size_t size);
TC_EXPORT int tc_stats(tc_cache_t *cache, tc_stats_t *out);
#define tc_stats(cache, out) tc_stats_size((cache), (out), sizeof(tc_stats_t))

/* The upper bound of each histogram bucket in nanoseconds (TC_LATENCY_BUCKETS of them;
 * the last is UINT64_MAX, +Inf). Static storage; thread-safe. */
TC_EXPORT const uint64_t *tc_latency_bounds_ns(void);

/* Snapshot one latency histogram (kind: a tc_latency_kind_t). Returns 0, TC_EINVAL or
 * TC_EFORKED. Thread-safe, lock-free (each bucket is read once; a snapshot taken while
 * calls run may be off by the calls in flight). */
TC_EXPORT int tc_latency(tc_cache_t *cache, int kind, tc_latency_t *out);

/*
 * Every counter, gauge and latency histogram in the Prometheus text exposition format
 * (version 0.0.4: # HELP and # TYPE lines, then samples), into buf (capacity cap), NUL-
 * terminated. labels: NULL, or extra labels for every sample, written as given (e.g.
 * `service="api",zone="b"`: the caller escapes the values). Metric names start with
 * "tiercache_": tiercache_<field>_total for each counter of tc_stats_t,
 * tiercache_<field> for its gauges, and one histogram tiercache_call_duration_seconds with a
 * label kind="get_hit|get_miss|fetch_load|set|del|inval".
 * Returns 0 and *len (bytes written, without the NUL); TC_ENOSPC with *len = the size
 * needed (plus one for the NUL) when cap is too small (buf then holds "", counters may gain
 * digits before the next call: leave some slack); TC_EINVAL (cache or len NULL; buf NULL
 * with cap > 0; labels not of the form name="value"[,name="value"...] with values escaping
 * only \\ \" \n, or naming kind, le or a __ label); TC_EFORKED. buf may be NULL when cap
 * is 0 (to ask the size). Thread-safe; allocates nothing.
 */
TC_EXPORT int tc_stats_prometheus(tc_cache_t *cache, const char *labels, char *buf, size_t cap,
                                  size_t *len);

/* The detail of the last call that failed on this thread, on any cache: the code and a
 * message naming the cause (the Redis error reply such as "NOPERM ..." or "WRONGPASS ...",
 * the hiredis or system error, the refused value). Successful calls do not clear it.
 * Returns 1 and fills *out, or 0 when this thread has no failure recorded (out may be
 * NULL to ask). Thread-safe: the record is per thread. */
TC_EXPORT int tc_last_error(tc_error_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TIERCACHE_H */
