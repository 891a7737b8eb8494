/*
 * msg.h - the invalidation message on the pub/sub channel (format v1).
 *
 *   offset  size  field
 *   0       1     magic 0xC1 ("tiercache invalidation, format 1")
 *   1       1     op: 1 = key written, 2 = key deleted, 3 = key filled by a lock holder
 *                 (wakes processes waiting on its cross-process lock; version = stored one)
 *   2       8     version, big-endian u64 (assigned by Redis, see l2.c)
 *                 (never below Redis's clock in microseconds: ~1.8e15 in 2026, not a
 *                 small counter; see L2_LUA_NEXT_VERSION in l2.c)
 *   10      16    origin: the publishing cache's random instance id
 *   26      n     key, 1 <= n <= TC_MAX_KEY_LEN, binary
 *
 * The version is only known inside the Redis script that performs the write, so the
 * script assembles the message as head (offsets 0-1) .. version .. tail (offset 10 on);
 * tc__msg_head / tc__msg_tail produce those pieces and tc__msg_encode the whole message
 * (for tests and for any publisher that knows the version up front).
 * A message that is short, has another magic, an unknown op or a key outside the length
 * limits is malformed: tc__msg_decode says so and the listener ignores it.
 */
#ifndef TC_MSG_H
#define TC_MSG_H

#include <stddef.h>
#include <stdint.h>

#define TC__MSG_MAGIC       0xC1u
#define TC__MSG_OP_WRITE    1u
#define TC__MSG_OP_DELETE   2u
#define TC__MSG_OP_FILL     3u
#define TC__MSG_ORIGIN_LEN  16u
#define TC__MSG_HEAD_LEN    2u
#define TC__MSG_VERSION_LEN 8u
/* 26 bytes before the key */
#define TC__MSG_FIXED_LEN (TC__MSG_HEAD_LEN + TC__MSG_VERSION_LEN + TC__MSG_ORIGIN_LEN)

typedef struct tc__msg {
    unsigned op;
    uint64_t version;
    unsigned char origin[TC__MSG_ORIGIN_LEN];
    const unsigned char *key; /* points into the decoded buffer */
    size_t klen;
} tc__msg_t;

/* Write the 2-byte head into out. */
void tc__msg_head(unsigned op, unsigned char out[TC__MSG_HEAD_LEN]);
/* Write origin .. key into out (capacity TC__MSG_ORIGIN_LEN + klen). Returns bytes written. */
size_t tc__msg_tail(const unsigned char origin[TC__MSG_ORIGIN_LEN], const void *key,
                    size_t klen, unsigned char *out);
/* Whole message into out (capacity TC__MSG_FIXED_LEN + klen). Returns bytes written, or 0
 * when op or klen is invalid. */
size_t tc__msg_encode(unsigned op, uint64_t version, const unsigned char origin[16],
                      const void *key, size_t klen, unsigned char *out);
/* Parse buf. Returns 0 and fills m (m->key points into buf), or -1 when malformed. */
int tc__msg_decode(const void *buf, size_t len, tc__msg_t *m);

#endif
