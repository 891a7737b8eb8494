/*
 * msg.h - the invalidation message on the pub/sub channel, formats 1 and 2.
 *
 * Format 1 (published when the replay log is off; stored in the log's entries):
 *
 *   offset  size  field
 *   0       1     magic 0xC1
 *   1       1     op: 1 = key written, 2 = key deleted, 3 = key filled by a lock holder
 *                 (wakes processes waiting on its lock; version = the stored one),
 *                 4 = evict (tc_invalidate: drop the key from every L1, version 0)
 *   2       8     version, big-endian u64: Redis's write version (scripts.c), never below
 *                 Redis's clock in microseconds, always below 2^53; 0 only for ops 3, 4
 *   10      16    origin: the publishing cache's random instance id
 *   26      n     key, 1 <= n <= TC_MAX_KEY_LEN, binary (the user's key, no prefix)
 *
 * Ops that act on more than one key put a payload where the key goes:
 *   5 = many keys changed at one version (a step of tc_invalidate_tag or
 *       tc_invalidate_prefix): the payload is 1 or more entries of a 2-byte big-endian
 *       length (1..65535) and that many key bytes, at most TC__MSG_MANY_MAX bytes in all;
 *   6 = namespace bumped (tc_invalidate_namespace): the payload is the namespace with its
 *       separator, 2..65535 bytes; every L1 entry whose key starts with it and is older
 *       than the version goes;
 *   7 = clear (tc_clear): no payload; every L1 entry older than the version goes.
 *
 * Format 2 (published when the replay log is on): magic 0xC2, then op and version as
 * above, then the id of the message's entry in the replay log (a Redis stream id, as two
 * big-endian u64: milliseconds, sequence), then origin and key: 42 bytes before the key.
 * The listener remembers the last id it applied, and after a lost link reads the log from
 * there instead of flushing L1 (listener.c).
 *
 * This layout is a stable, documented interface: any language may PUBLISH an op-4 format 1
 * message to evict a key everywhere (docs/consistency.md "Invalidating from anywhere"). The
 * version is only known inside the Redis script that performs a write, so the script assembles
 * the message from pieces: head (offsets 0-1) .. version [.. log id] .. tail (origin, key);
 * tc__msg_head / tc__msg_tail produce those pieces and tc__msg_encode the whole format 1
 * message (tests, tc_invalidate). A message that is short, has another magic, an unknown
 * op or a key outside the length limits is malformed: tc__msg_decode says so and the
 * listener ignores it.
 */
#ifndef TC_MSG_H
#define TC_MSG_H

#include "parse.h"

#include <stddef.h>
#include <stdint.h>

#define TC__MSG_MAGIC       0xC1u
#define TC__MSG_MAGIC_LOG   0xC2u /* format 2: carries the replay log id */
#define TC__MSG_OP_WRITE    1u
#define TC__MSG_OP_DELETE   2u
#define TC__MSG_OP_FILL     3u
#define TC__MSG_OP_EVICT    4u
#define TC__MSG_OP_MANY     5u
#define TC__MSG_OP_NS       6u
#define TC__MSG_OP_CLEAR    7u
#define TC__MSG_MANY_MAX    ((size_t)16 << 20) /* a many-keys payload's largest size */
#define TC__MSG_ORIGIN_LEN  16u
#define TC__MSG_HEAD_LEN    2u
#define TC__MSG_VERSION_LEN 8u
#define TC__MSG_LOGID_LEN   16u
/* 26 bytes before the key (format 1), 42 (format 2) */
#define TC__MSG_FIXED_LEN     (TC__MSG_HEAD_LEN + TC__MSG_VERSION_LEN + TC__MSG_ORIGIN_LEN)
#define TC__MSG_FIXED_LEN_LOG (TC__MSG_FIXED_LEN + TC__MSG_LOGID_LEN)

/* A replay log position (a Redis stream id); {0, 0} = none. */
typedef struct tc__logid {
    uint64_t ms, seq;
} tc__logid_t;

typedef struct tc__msg {
    unsigned op;
    uint64_t version;
    int has_logid; /* format 2 */
    tc__logid_t logid;
    unsigned char origin[TC__MSG_ORIGIN_LEN];
    const unsigned char *key; /* points into the decoded buffer: the key, or the payload
                                 of ops 5-7 (op 7: klen 0) */
    size_t klen;
} tc__msg_t;

/* Op 5's entries: start with *at = 0; each call yields the next key. Returns 1 with
 * *key / *klen, or 0 at the end (a decoded message's payload is known to be well formed). */
int tc__msg_next_key(const tc__msg_t *m, size_t *at, const unsigned char **key, size_t *klen);

/* Write the 2-byte format 1 head into out. */
void tc__msg_head(unsigned op, unsigned char out[TC__MSG_HEAD_LEN]);
/* Write origin .. key into out (capacity TC__MSG_ORIGIN_LEN + klen). Returns bytes written. */
size_t tc__msg_tail(const unsigned char origin[TC__MSG_ORIGIN_LEN], const void *key,
                    size_t klen, unsigned char *out);
/* Whole format 1 message of op 1-4 into out (capacity TC__MSG_FIXED_LEN + klen). Returns
 * bytes written, or 0 when op or klen is invalid. */
size_t tc__msg_encode(unsigned op, uint64_t version, const unsigned char origin[16],
                      const void *key, size_t klen, unsigned char *out);
/* Parse buf (either format). Returns 0 and fills m (m->key points into buf), or TC__MALFORMED.
 */
tc__parse_t tc__msg_decode(const void *buf, size_t len, tc__msg_t *m);

/* "ms-seq" (a stream id) -> *id. TC__PARSED, or TC__MALFORMED. */
tc__parse_t tc__logid_parse(const char *s, size_t len, tc__logid_t *id);
/* 1 if a comes after b. */
static inline int tc__logid_after(tc__logid_t a, tc__logid_t b) {
    return a.ms > b.ms || (a.ms == b.ms && a.seq > b.seq);
}

#endif
