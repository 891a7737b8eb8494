/*
 * valfmt.c - the stored-value header (format v1) and the big-endian helpers.
 *
 * Every value tiercache puts in Redis starts with a fixed 20-byte header (layout in
 * valfmt.h) so that any reader, in any process and on any architecture, can tell a
 * tiercache value from a foreign string, learn the Redis-assigned version that orders
 * concurrent writers, and find the payload without copying it.
 *
 * The Redis write script splices the version in between head and expiry, which is why
 * the header is offered in pieces as well as whole: encode == head .. be64(version) ..
 * expiry .. payload, byte for byte. Integers are big-endian and moved one byte at a
 * time, so no alignment or host byte order is ever assumed.
 *
 * Invariants: decode never reads outside [buf, buf + len); a value it accepts has the
 * right magic and format and v->data + v->len == buf + len. Flags are passed through
 * untouched so a newer writer's flags do not turn its values into misses here; the two
 * expiry flags are also read into expires_by_ms, and a field that holds the key's expiry
 * (0x04) is no fresh end.
 */
#include "valfmt.h"

#include <stdint.h>
#include <string.h>

void tc__put_be64(unsigned char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xFFu);
        v >>= 8;
    }
}

uint64_t tc__get_be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

void tc__val_head(unsigned flags, unsigned char out[TC__VAL_HEAD_LEN]) {
    out[0] = (unsigned char)TC__VAL_MAGIC;
    out[1] = (unsigned char)TC__VAL_FORMAT;
    out[2] = (unsigned char)(flags & 0xFFu);
    out[3] = 0;
}

void tc__val_expiry(uint64_t logical_expiry_ms, unsigned char out[TC__VAL_EXPIRY_LEN]) {
    tc__put_be64(out, logical_expiry_ms);
}

size_t tc__val_encode(unsigned flags, uint64_t version, uint64_t logical_expiry_ms,
                      const void *data, size_t len, unsigned char *out) {
    /* 0 can never be a real size (the header alone is 20 bytes), so it signals misuse. */
    if (!out || (!data && len > 0) || len > SIZE_MAX - TC__VAL_HDR_LEN)
        return 0;
    tc__val_head(flags, out);
    tc__put_be64(out + TC__VAL_HEAD_LEN, version);
    tc__val_expiry(logical_expiry_ms, out + TC__VAL_HEAD_LEN + TC__VAL_VERSION_LEN);
    if (len > 0)
        memcpy(out + TC__VAL_HDR_LEN, data, len);
    return TC__VAL_HDR_LEN + len;
}

tc__parse_t tc__val_decode(const void *buf, size_t len, tc__val_t *v) {
    const unsigned char *p = buf;
    if (!p || !v || len < TC__VAL_HDR_LEN)
        return TC__MALFORMED;
    if (p[0] != TC__VAL_MAGIC || p[1] != TC__VAL_FORMAT)
        return TC__MALFORMED;
    v->flags = p[2];
    v->load_class = p[3];
    v->version = tc__get_be64(p + TC__VAL_HEAD_LEN);
    uint64_t field = tc__get_be64(p + TC__VAL_HEAD_LEN + TC__VAL_VERSION_LEN);
    v->logical_expiry_ms = v->flags & TC__VAL_FLAG_KEY_EXPIRY ? 0 : field;
    if (!(v->flags & TC__VAL_FLAG_BOUNDED))
        v->expires_by_ms = TC__VAL_UNKNOWN;
    else
        v->expires_by_ms = field ? field : TC__VAL_NEVER;
    v->data = p + TC__VAL_HDR_LEN;
    v->len = len - TC__VAL_HDR_LEN;
    return TC__PARSED;
}

unsigned tc__val_load_class(uint32_t ms) {
    unsigned c = 0;
    while (ms) { /* 1 + floor(log2(ms)) */
        c++;
        ms >>= 1;
    }
    return c;
}

uint32_t tc__val_load_ms(unsigned load_class) {
    if (load_class == 0)
        return 0;
    return load_class > 32 ? UINT32_MAX : (uint32_t)1 << (load_class - 1);
}
