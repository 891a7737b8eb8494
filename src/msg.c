/*
 * msg.c - the invalidation message codec (formats 1 and 2, layout in msg.h).
 *
 * A message says "key K changed (op) at version V, and I (origin) did it". Writers do not
 * know V until Redis assigns it inside the write script, so the script publishes
 * head .. be64(V) .. tail; this file builds head and tail, and tc__msg_encode builds the
 * same bytes in one go for tests and for publishers that know V. Keeping all three here,
 * sharing one set of offsets, is what keeps the script's message and the decoder in step.
 *
 * The decoder faces bytes from the network (any client may PUBLISH on the channel), so it
 * trusts nothing: it checks length before touching a byte, never reads past len, and on
 * success m->key points into the caller's buffer with m->klen == len - 26 (or 42), in
 * 1..65535 for a key (ops 5-7: their payload's limits, msg.h).
 * The key length is implicit (the rest of the message), so there is no length field to
 * disagree with the buffer. Op 5's payload does carry lengths, so the decoder walks them
 * all before accepting the message: its consumers can then iterate without checks.
 */
#include "msg.h"

#include "tiercache.h"
#include "valfmt.h"

#include <string.h>

static int msg_op_valid(unsigned op) {
    return op >= TC__MSG_OP_WRITE && op <= TC__MSG_OP_CLEAR;
}

/* Op 5's payload: entries of be16 length + key, each length 1..65535, exactly filling it. */
static int many_valid(const unsigned char *p, size_t len) {
    if (len == 0 || len > TC__MSG_MANY_MAX)
        return 0;
    size_t at = 0;
    while (at < len) {
        if (len - at < 2)
            return 0;
        size_t n = ((size_t)p[at] << 8) | p[at + 1];
        if (n == 0 || len - at - 2 < n)
            return 0;
        at += 2 + n;
    }
    return 1;
}

/* Is the payload (key, or ops 5-7's payload) of a well-formed size for op? */
static int payload_valid(unsigned op, const unsigned char *p, size_t len) {
    switch (op) {
    case TC__MSG_OP_MANY:
        return many_valid(p, len);
    case TC__MSG_OP_NS:
        return len >= 2 && len <= TC_MAX_KEY_LEN;
    case TC__MSG_OP_CLEAR:
        return len == 0;
    default:
        return len >= 1 && len <= TC_MAX_KEY_LEN;
    }
}

static int msg_key_valid(const void *key, size_t klen) {
    return key && klen >= 1 && klen <= TC_MAX_KEY_LEN;
}

void tc__msg_head(unsigned op, unsigned char out[TC__MSG_HEAD_LEN]) {
    out[0] = (unsigned char)TC__MSG_MAGIC;
    out[1] = (unsigned char)(op & 0xFFu);
}

size_t tc__msg_tail(const unsigned char origin[TC__MSG_ORIGIN_LEN], const void *key,
                    size_t klen, unsigned char *out) {
    if (!origin || !out || !msg_key_valid(key, klen))
        return 0;
    memcpy(out, origin, TC__MSG_ORIGIN_LEN);
    memcpy(out + TC__MSG_ORIGIN_LEN, key, klen);
    return TC__MSG_ORIGIN_LEN + klen;
}

size_t tc__msg_encode(unsigned op, uint64_t version, const unsigned char origin[16],
                      const void *key, size_t klen, unsigned char *out) {
    /* One key: ops 1-4 (ops 5-7 are assembled by the scripts). */
    if (op < TC__MSG_OP_WRITE || op > TC__MSG_OP_EVICT || !origin || !out ||
        !msg_key_valid(key, klen))
        return 0;
    tc__msg_head(op, out);
    tc__put_be64(out + TC__MSG_HEAD_LEN, version);
    return TC__MSG_HEAD_LEN + TC__MSG_VERSION_LEN +
           tc__msg_tail(origin, key, klen, out + TC__MSG_HEAD_LEN + TC__MSG_VERSION_LEN);
}

tc__parse_t tc__msg_decode(const void *buf, size_t len, tc__msg_t *m) {
    const unsigned char *p = buf;
    if (!p || !m || len < 1)
        return TC__MALFORMED;
    int with_log = p[0] == TC__MSG_MAGIC_LOG;
    size_t fixed = with_log ? TC__MSG_FIXED_LEN_LOG : TC__MSG_FIXED_LEN;
    if (len < fixed || (p[0] != TC__MSG_MAGIC && !with_log) || !msg_op_valid(p[1]))
        return TC__MALFORMED;
    if (!payload_valid(p[1], p + fixed, len - fixed))
        return TC__MALFORMED;
    m->op = p[1];
    m->version = tc__get_be64(p + TC__MSG_HEAD_LEN);
    size_t at = TC__MSG_HEAD_LEN + TC__MSG_VERSION_LEN;
    m->has_logid = with_log;
    m->logid = (tc__logid_t){0, 0};
    if (with_log) {
        m->logid.ms = tc__get_be64(p + at);
        m->logid.seq = tc__get_be64(p + at + 8);
        at += TC__MSG_LOGID_LEN;
    }
    memcpy(m->origin, p + at, TC__MSG_ORIGIN_LEN);
    m->key = p + fixed;
    m->klen = len - fixed;
    return TC__PARSED;
}

tc__parse_t tc__logid_parse(const char *s, size_t len, tc__logid_t *id) {
    uint64_t part[2] = {0, 0};
    int k = 0, digits = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '-' && k == 0 && digits) {
            k = 1;
            digits = 0;
        } else if (c >= '0' && c <= '9' && part[k] <= (UINT64_MAX - 9) / 10) {
            part[k] = part[k] * 10 + (uint64_t)(c - '0');
            digits++;
        } else {
            return TC__MALFORMED;
        }
    }
    if (k != 1 || !digits)
        return TC__MALFORMED;
    id->ms = part[0];
    id->seq = part[1];
    return TC__PARSED;
}

int tc__msg_next_key(const tc__msg_t *m, size_t *at, const unsigned char **key, size_t *klen) {
    if (m->op != TC__MSG_OP_MANY || *at + 2 > m->klen)
        return 0;
    size_t n = ((size_t)m->key[*at] << 8) | m->key[*at + 1];
    *key = m->key + *at + 2;
    *klen = n;
    *at += 2 + n;
    return 1;
}
