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
 * success m->key points into the caller's buffer with m->klen == len - 26, in 1..65535.
 * The key length is implicit (the rest of the message), so there is no length field to
 * disagree with the buffer.
 */
#include "msg.h"

#include "tiercache.h"
#include "valfmt.h"

#include <string.h>

static int msg_op_valid(unsigned op) {
    return op >= TC__MSG_OP_WRITE && op <= TC__MSG_OP_EVICT;
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
    if (!msg_op_valid(op) || !origin || !out || !msg_key_valid(key, klen))
        return 0;
    tc__msg_head(op, out);
    tc__put_be64(out + TC__MSG_HEAD_LEN, version);
    return TC__MSG_HEAD_LEN + TC__MSG_VERSION_LEN +
           tc__msg_tail(origin, key, klen, out + TC__MSG_HEAD_LEN + TC__MSG_VERSION_LEN);
}

int tc__msg_decode(const void *buf, size_t len, tc__msg_t *m) {
    const unsigned char *p = buf;
    if (!p || !m || len < 1)
        return -1;
    int with_log = p[0] == TC__MSG_MAGIC_LOG;
    size_t fixed = with_log ? TC__MSG_FIXED_LEN_LOG : TC__MSG_FIXED_LEN;
    if (len <= fixed || len - fixed > TC_MAX_KEY_LEN)
        return -1;
    if ((p[0] != TC__MSG_MAGIC && !with_log) || !msg_op_valid(p[1]))
        return -1;
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
    return 0;
}

int tc__logid_parse(const char *s, size_t len, tc__logid_t *id) {
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
            return -1;
        }
    }
    if (k != 1 || !digits)
        return -1;
    id->ms = part[0];
    id->seq = part[1];
    return 0;
}
