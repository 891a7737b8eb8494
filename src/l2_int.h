/*
 * l2_int.h - what the files of the Redis tier share: the tier's struct, one logical call
 * (its commands and replies), and the helpers that build calls and read their replies.
 *
 *   l2.c       the pool, the breaker, running a call (or a pipeline of calls) on a pooled
 *              connection;
 *   l2_ops.c   building and reading each single-key call, and the single-key operations;
 *   l2_many.c  the operations on many keys: pipelined reads, writes, locks and fills, and
 *              the tag, prefix, namespace and clear invalidations;
 *   l2_queue.c write-through's lock and leased store, write-behind's queue.
 *
 * A call is built (its argv), run (one round trip: l2_run), then its replies are read by
 * the function that built it. A pipeline is a call whose parts are calls: every part's
 * commands are written, then every reply read, on one connection, so N operations cost
 * one round trip; each part's replies are then read exactly as if it had run alone.
 *
 * Nothing here is API: the tier's API is l2.h.
 */
#ifndef TC_L2_INT_H
#define TC_L2_INT_H

#include "cluster.h"
#include "config.h"
#include "l2.h"
#include "l2_clock.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "node.h"
#include "scripts.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum { CALL_PING, CALL_GET, CALL_SCRIPT, CALL_PLAIN_ADD, CALL_PIPE, CALL_GETS };

/* A script's KEYS and ARGV: data, version, lock, log, up to TC__L2_MAX_MARKS marks and
 * TC_MAX_TAGS tags, and about 15 arguments. */
#define L2_MAX_ARGS      72
#define L2_SHA_LEN       40
#define L2_STACK_SCRATCH 512
#define L2_MAX_VALUE     ((size_t)511 << 20) /* below Redis's 512 MiB bulk limit */
/* A big value takes Redis and the socket time in proportion to its size (a 64 MiB write
 * took 0.3-1 s here): writes past this size get command_timeout_ms plus one more
 * millisecond per L2_BIG_BYTES_PER_MS bytes, so a legitimate big write does not time out
 * (and trip the breaker for everyone). */
#define L2_BIG_VALUE        ((size_t)1 << 20)
#define L2_BIG_BYTES_PER_MS ((size_t)16 << 10) /* 16 MiB/s */
/* Versions are Redis microsecond clocks below 2^53 (scripts.c); one further ahead of this
 * host's clock than this (~19 h of skew) was not made by the counter. */
#define L2_VERSION_LIMIT ((uint64_t)1 << 53)
#define L2_VERSION_AHEAD ((uint64_t)1 << 36)
/* Marks a key is judged against: the clear mark and one per namespace (the first four). */
#define TC__L2_MAX_NS    TC_MAX_NS_DEPTH
#define TC__L2_MAX_MARKS (1 + TC__L2_MAX_NS)

struct tc__l2 {
    tc__node_t *node;       /* the Redis server: pool and breaker (node.c); or NULL and */
    tc__cluster_t *cluster; /* a Redis Cluster's router (cluster.c; keys carry their slot's
                               name: tc__l2i_build_key) */
    uint32_t command_timeout_ms;
    size_t key_extra;         /* bytes a derived key may take beyond <prefix><kind>":"<key> */
    uint32_t replica_keep_ms; /* a cluster's ?read_from=replicas: single reads may go to a
                                 replica, and L1 keeps their answers this long at most; 0:
                                 reads go to masters */
    char *key_prefix, *channel, *vkey, *logkey, *clearkey;
    size_t prefix_len, channel_len, vkey_len, logkey_len, clearkey_len;
    char log_maxlen[24]; /* the replay log's MAXLEN as a script argument; "0" = no log */
    size_t log_maxlen_len;
    unsigned char origin[TC__MSG_ORIGIN_LEN];
    int ns_sep;         /* the namespace separator byte, or -1 */
    tc__marks_t *marks; /* the local copy of the marks, or NULL */

    pthread_mutex_t sha_mu; /* serialises the first write of sha[] */
    atomic_int sha_known;   /* sha[] is written once, under sha_mu, before this is set */
    char sha[TC__SCRIPT_COUNT][L2_SHA_LEN + 1];

    size_t max_stored; /* header + max_value_bytes: longer stored values are refused */
    char get_end[24];  /* GETRANGE's end index: max_stored (one byte past the limit) */
    size_t get_end_len;
    char max_stored_str[24];
    size_t max_stored_len;
    tc__log_t *log;
    int plain;                     /* plain keys: no prefix, no header, no scripts */
    int tracking;                  /* a tc_tracking_t */
    atomic_uint_fast64_t track_id; /* default tracking: the listener's client id, 0 none */
    uint64_t *armed;               /* per pool slot: the id its tracking redirects to */

    tc__l2_clock_t clock; /* Redis's clock from here: reads' life from the header */

    _Atomic uint64_t errors, published, refused, healed_counters, permission_errors, hidden;
};

/* One logical call: the command, its replies, and what happened on the wire. */
typedef struct l2_call {
    int kind, script;
    int asking;       /* cluster: ASKING before each command (an ASK redirection) */
    int from_replica; /* cluster: a replica answered (its value's life is bounded) */
    /* CALL_PIPE: run only these parts (a cluster's node's share), or all when NULL */
    const uint32_t *pick;
    size_t npick;
    uint32_t extra_timeout_ms; /* added to the command timeout for a big value */
    int argc, cap;     /* cap: argv's room (set by the first push, or tc__l2i_use_args) */
    const char **argv; /* argv_in, or a bigger caller array */
    size_t *lens;
    const char *argv_in[L2_MAX_ARGS];
    size_t lens_in[L2_MAX_ARGS];
    int argc2; /* GET: the MGET of the key's marks (0: none: plain keys, or judged locally) */
    int local_mark_known; /* GET: the local copy judged the key: local_mark */
    uint64_t local_mark;
    const char *argv2[1 + TC__L2_MAX_MARKS];
    size_t lens2[1 + TC__L2_MAX_MARKS];
    int no_pttl;   /* GET: the key's life comes from the header (l2_clock.h), not PTTL */
    int with_time; /* GET: a TIME rides along (sent_ns: when the commands were written) */
    uint64_t sent_ns;
    unsigned clock_gen; /* GET: the clock's generation when the TIME was sent */
    int may_ask;        /* GET: a header that does not tell the life may cost a PTTL round
                           trip (single reads); else such a value is not kept */
    char numkeys[8];    /* scripts: argv[2] */
    redisReply *reply, *reply2, *reply3; /* GET: PTTL, marks; plain ADD: SET, GET, PTTL */
    redisReply *treply;                  /* GET: TIME */
    struct l2_call *parts;               /* CALL_PIPE: the calls, run in one round trip */
    size_t nparts;
    struct l2_gets *gets; /* CALL_GETS: GETRANGE (+ PTTL) of many data keys, nothing else */
    tc_error_t *err;      /* the failure's detail: the caller's, or local_err */
    tc_error_t local_err;
} l2_call_t;

/* CALL_GETS: the lean pipeline of a bulk read whose marks are judged locally (no per-key
 * call to build): n data keys, and their replies once run: GETRANGE and PTTL per key
 * (replies[2i], [2i + 1]); or, with no_pttl, GETRANGE per key (replies[i]) then, with
 * with_time, one TIME (replies[n]). */
typedef struct l2_gets {
    size_t n;
    const unsigned char **keys;
    size_t *lens;
    redisReply **replies;
    int no_pttl, with_time;
    uint64_t sent_ns;
    unsigned clock_gen;
} l2_gets_t;

/* How many replies a CALL_GETS gets. */
static inline size_t tc__l2i_gets_replies(const l2_gets_t *g) {
    return g->no_pttl ? g->n + (g->with_time ? 1u : 0u) : 2 * g->n;
}

/* Per-call bytes (keys, message tail): on the stack unless large. */
typedef struct scratch {
    unsigned char *p;
    unsigned char stack[L2_STACK_SCRATCH];
} scratch_t;

/* The keys and message tail of one key's script call, built once into scratch. The marks
 * (clear, then the key's namespaces) are data keys too: see tc__l2i_marks. */
typedef struct key_parts {
    scratch_t s;
    unsigned char *data, *lock, *tail;
    size_t klen2, tlen; /* klen2: the prefixed keys' length */
    /* the version counter and replay log that the key's scripts use: the cache's, or on a
     * cluster its slot's (<prefix>"{"<slot name>"}v", "...log") */
    const unsigned char *vkey, *logkey;
    size_t vkey_len, logkey_len;
    size_t dlen; /* the data key's length (the key itself for plain keys) */
    size_t nmarks;
    const unsigned char *mark[TC__L2_MAX_MARKS];
    size_t mark_len[TC__L2_MAX_MARKS];
} key_parts_t;

/* The stored value's pieces: head, expiry and ttl as script arguments. */
typedef struct value_args {
    unsigned char head[TC__VAL_HEAD_LEN], expiry[TC__VAL_EXPIRY_LEN];
    char ttl[24];
    char nmarks[8];
    char seen_mark[24];
    scratch_t ts; /* the tag keys, <prefix>"t:"<tag> */
} value_args_t;

/* A value's life that the header does not tell (l2_clock.c): the read asks PTTL. Never
 * leaves the tier. */
#define TC__L2_LIFE_ASK ((int64_t)-3)

/* ---- small helpers (l2.c: free_reply; l2_ops.c: the rest) ---- */
void tc__l2i_free_reply(redisReply **r);
int tc__l2i_is_int(const redisReply *r);
unsigned char *tc__l2i_scratch_get(scratch_t *s, size_t n);
void tc__l2i_scratch_put(scratch_t *s);
void tc__l2i_push(l2_call_t *call, const void *p, size_t n);
/* Give call room for cap arguments in argv/lens (before its first push). */
void tc__l2i_use_args(l2_call_t *call, const char **argv, size_t *lens, int cap);
int tc__l2i_check_key(const tc__l2_t *l2, const void *key, size_t klen);
/* <prefix><kind>":"<key> into buf (tc__l2i_key_room bytes; on a cluster
 * <prefix>"{"<slot name>"}"<kind>":"<key>). Returns the length. */
static inline size_t tc__l2i_key_room(const tc__l2_t *l2, size_t klen) {
    return l2->prefix_len + 2 + l2->key_extra + klen;
}
size_t tc__l2i_build_key(const tc__l2_t *l2, char kind, const void *key, size_t klen,
                         unsigned char *buf);
/* Fill k for key (data and lock keys, message tail, marks). 0 or TC_ENOMEM. */
int tc__l2i_key_parts(const tc__l2_t *l2, const void *key, size_t klen, key_parts_t *k);

int tc__l2i_check_value(const void *value, size_t vlen);
/* The last argument of every announcing script: the replay log's MAXLEN. */
void tc__l2i_push_log_maxlen(l2_call_t *call, const tc__l2_t *l2);
/* Set a script call's KEYS count (argv[2]) once its keys are pushed: argv[3..first_arg). */
void tc__l2i_set_numkeys(l2_call_t *call, int first_arg);
/* A script reports a version counter it had to reset. */
void tc__l2i_note_healed(tc__l2_t *l2, const redisReply *healed);
/* ADD, CAS and LOCK replies: an array led by an integer tag. 0, or the error. */
int tc__l2i_check_tagged(const redisReply *r);

/* ---- running calls (l2.c) ---- */
/* Breaker, pool, SIGPIPE guard and counters around one call (or pipeline). 0 with the
 * replies in call (parts' replies in the parts), or an error code. */
int tc__l2i_run(tc__l2_t *l2, l2_call_t *call);
/* A cluster's per-node command (SCAN) on master (tc__cluster_masters), as tc__l2i_run. */
int tc__l2i_run_at(tc__l2_t *l2, const void *master, l2_call_t *call);
/* Count a failure and leave its detail for tc_last_error. Returns rc. */
int tc__l2i_finish(tc__l2_t *l2, l2_call_t *call, int rc);

/* ---- building calls (l2_ops.c) ---- */
/* A GET: GETRANGE, + PTTL unless the header tells the key's life (+ TIME when due: l2_clock.h),
 * and the MGET of the key's marks. k must outlive the call. */
void tc__l2i_build_get(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k);
/* Its replies into *out (0, TC_ENOTFOUND, or an error; frees nothing). */
int tc__l2i_get_result(tc__l2_t *l2, l2_call_t *call, tc__l2_value_t *out);
/* The SET script (a tagged write when w has tags). 0 or TC_ENOMEM; release va with
 * tc__l2i_value_args_done after the call. */
int tc__l2i_build_put(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k, value_args_t *va,
                      const tc__l2_write_t *w, const unsigned char *mhead);
void tc__l2i_value_args_done(value_args_t *va);
/* A write script shaped as SET: KEYS data, version, lock, log, [queue], tags; ARGV as SET's,
 * then [extra], then the log maxlen (PUT_LEASED: the token; PUT_QUEUED: the queue limit). */
typedef struct tc__l2i_write_call {
    tc__script_t script;
    const key_parts_t *k;
    value_args_t *va;
    const tc__l2_write_t *w;
    const unsigned char *mhead;
    const unsigned char *queue; /* or NULL */
    size_t qlen;
    const char *extra; /* or NULL */
} tc__l2i_write_call_t;
int tc__l2i_build_write(tc__l2_t *l2, l2_call_t *call, const tc__l2i_write_call_t *wc);
/* The DEL script. */
void tc__l2i_build_del(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k,
                       const unsigned char *mhead);
/* {version, healed} of SET and DEL. */
int tc__l2i_version_reply(tc__l2_t *l2, const redisReply *r, uint64_t *version);
/* The LOCK script. skip: 8 bytes or NULL. */
void tc__l2i_build_lock(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k, const char *token,
                        size_t tlen, const char *ttl, const unsigned char *skip);
int tc__l2i_lock_result(tc__l2_t *l2, l2_call_t *call, int64_t *pttl, uint64_t *mark,
                        tc__l2_value_t *existing);
/* The ADD or CAS script. heads: write and fill message heads; expected: 8 bytes or NULL. */
int tc__l2i_build_fill(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k, value_args_t *va,
                       const tc__l2_write_t *w, const unsigned char *whead,
                       const unsigned char *fhead, unsigned char *expected);
int tc__l2i_fill_result(tc__l2_t *l2, l2_call_t *call, uint64_t *version,
                        tc__l2_value_t *existing);
/* The UNLOCK script (fhead: the FILL message head). */
void tc__l2i_build_unlock(tc__l2_t *l2, l2_call_t *call, const key_parts_t *k,
                          const char *token, size_t tlen, const unsigned char *fhead);
/* Plain keys: SET NX PX + GETRANGE + PTTL (a fill), and SET PX (a write). */
void tc__l2i_build_plain_fill(l2_call_t *call, const tc__l2_write_t *w, char ttl[24]);
int tc__l2i_plain_fill_result(tc__l2_t *l2, l2_call_t *call, uint64_t *version,
                              tc__l2_value_t *existing);
void tc__l2i_build_plain_set(l2_call_t *call, const void *key, size_t klen, const void *value,
                             size_t vlen, uint64_t ttl_ms, char ttl[24]);
/* A plain command's reply: 0 for a status or integer, TC_EREDIS, TC_EPROTO. */
int tc__l2i_status_result(const l2_call_t *call);

#endif
