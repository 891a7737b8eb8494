/*
 * test_msg.c - the invalidation message codec (src/msg.c).
 *
 * The wire format is shared with a Lua script and with every other process on the
 * channel, so these tests pin it from three sides: a literal byte vector (a symmetric
 * bug such as little-endian on both ends would still round-trip, but not match it),
 * round trips over awkward keys, and head .. be64(v) .. tail == encode, which is exactly
 * what the Redis script relies on. The decoder reads untrusted bytes, so every malformed
 * shape is tried and 100k random buffers are thrown at it; each buffer is malloc'ed at its
 * exact size so a sanitizer build catches any read past len.
 */
/* tc-test-labels: unit */
#include "msg.h"
#include "tiercache.h"
#include "valfmt.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: seeded, so a failure reproduces. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_fill(uint64_t *s, unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)rng_next(s);
}

static const unsigned char ORIGIN[16] = {0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
                                         0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF};

/* Encode into an exact-size heap buffer, decode it back, and check every field. */
static void check_round_trip(unsigned op, uint64_t version, const unsigned char *origin,
                             const unsigned char *key, size_t klen) {
    size_t cap = TC__MSG_FIXED_LEN + klen;
    unsigned char *buf = malloc(cap);
    cr_assert_not_null(buf);
    size_t n = tc__msg_encode(op, version, origin, key, klen, buf);
    cr_assert_eq(n, cap, "encode wrote %zu bytes, expected %zu", n, cap);

    tc__msg_t m;
    cr_assert_eq(tc__msg_decode(buf, n, &m), 0, "decode rejected a fresh message");
    cr_assert_eq(m.op, op);
    cr_assert_eq(m.version, version);
    cr_assert_eq(memcmp(m.origin, origin, TC__MSG_ORIGIN_LEN), 0);
    cr_assert_eq(m.klen, klen);
    cr_assert_eq(m.key, buf + TC__MSG_FIXED_LEN, "key must point into the buffer");
    cr_assert_eq(memcmp(m.key, key, klen), 0);
    free(buf);
}

Test(msg, known_byte_vector) {
    static const unsigned char want[] = {
        0xC1, 0x02,                                     /* magic, op = delete */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* version, big-endian */
        0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, /* origin */
        0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF, /* */
        'k',  0x00, '\r', '\n'                          /* key */
    };
    unsigned char out[sizeof want];
    size_t n =
        tc__msg_encode(TC__MSG_OP_DELETE, 0x0102030405060708ull, ORIGIN, "k\0\r\n", 4, out);
    cr_assert_eq(n, sizeof want);
    cr_assert_arr_eq(out, want, sizeof want, "encoded bytes differ from the v1 layout");
    cr_assert_eq(TC__MSG_FIXED_LEN, 26u);

    tc__msg_t m;
    cr_assert_eq(tc__msg_decode(want, sizeof want, &m), 0);
    cr_assert_eq(m.op, TC__MSG_OP_DELETE);
    cr_assert_eq(m.version, 0x0102030405060708ull);
    cr_assert_eq(m.klen, 4u);
    cr_assert_eq(memcmp(m.key, "k\0\r\n", 4), 0);
}

Test(msg, round_trip_edge_keys) {
    static const unsigned char nul1[] = {0x00};
    static const unsigned char crlf[] = {'\r', '\n', '\r', '\n'};
    static const unsigned char mixed[] = {'a', 0x00, '\r', '\n', 0xFF, 0xC1, 0x00};
    check_round_trip(TC__MSG_OP_WRITE, 0, ORIGIN, nul1, sizeof nul1);
    check_round_trip(TC__MSG_OP_DELETE, UINT64_MAX, ORIGIN, crlf, sizeof crlf);
    check_round_trip(TC__MSG_OP_WRITE, 1, ORIGIN, mixed, sizeof mixed);

    unsigned char *big = malloc(TC_MAX_KEY_LEN);
    cr_assert_not_null(big);
    uint64_t s = 42;
    rng_fill(&s, big, TC_MAX_KEY_LEN);
    check_round_trip(TC__MSG_OP_WRITE, 0x8000000000000000ull, ORIGIN, big, TC_MAX_KEY_LEN);
    memset(big, 0, TC_MAX_KEY_LEN);
    check_round_trip(TC__MSG_OP_DELETE, 7, ORIGIN, big, TC_MAX_KEY_LEN);
    free(big);
}

Test(msg, round_trip_random) {
    uint64_t s = 0x5EED0001;
    unsigned char key[600], origin[16];
    for (int i = 0; i < 2000; i++) {
        size_t klen = 1 + (size_t)(rng_next(&s) % sizeof key);
        rng_fill(&s, key, klen);
        rng_fill(&s, origin, sizeof origin);
        unsigned op = (rng_next(&s) & 1) ? TC__MSG_OP_WRITE : TC__MSG_OP_DELETE;
        check_round_trip(op, rng_next(&s), origin, key, klen);
    }
}

/* The Redis script publishes head .. be64(version) .. tail: it must equal encode. */
Test(msg, head_version_tail_equals_encode) {
    uint64_t s = 0x5EED0002;
    unsigned char key[300], origin[16];
    unsigned char whole[TC__MSG_FIXED_LEN + sizeof key];
    unsigned char spliced[TC__MSG_FIXED_LEN + sizeof key];
    for (int i = 0; i < 1000; i++) {
        size_t klen = 1 + (size_t)(rng_next(&s) % sizeof key);
        rng_fill(&s, key, klen);
        rng_fill(&s, origin, sizeof origin);
        unsigned op = (i & 1) ? TC__MSG_OP_WRITE : TC__MSG_OP_DELETE;
        uint64_t v = rng_next(&s);

        size_t n = tc__msg_encode(op, v, origin, key, klen, whole);
        memset(spliced, 0x5A, sizeof spliced);
        tc__msg_head(op, spliced);
        tc__put_be64(spliced + TC__MSG_HEAD_LEN, v);
        size_t t =
            tc__msg_tail(origin, key, klen, spliced + TC__MSG_HEAD_LEN + TC__MSG_VERSION_LEN);
        cr_assert_eq(t, TC__MSG_ORIGIN_LEN + klen);
        cr_assert_eq(TC__MSG_HEAD_LEN + TC__MSG_VERSION_LEN + t, n);
        cr_assert_arr_eq(spliced, whole, n, "head||be64(v)||tail differs from encode");
    }
}

Test(msg, encode_rejects_bad_arguments) {
    unsigned char out[64];
    memset(out, 0x5A, sizeof out);
    cr_assert_eq(tc__msg_encode(0, 1, ORIGIN, "k", 1, out), 0u, "op 0");
    cr_assert_eq(tc__msg_encode(5, 1, ORIGIN, "k", 1, out), 0u, "op 5 (many keys: scripts)");
    cr_assert_eq(tc__msg_encode(8, 1, ORIGIN, "k", 1, out), 0u, "op 8");
    cr_assert_eq(tc__msg_encode(0x101, 1, ORIGIN, "k", 1, out), 0u, "op 0x101 aliases 1");
    cr_assert_eq(tc__msg_encode(1, 1, ORIGIN, "k", 0, out), 0u, "klen 0");
    cr_assert_eq(tc__msg_encode(1, 1, ORIGIN, "k", (size_t)TC_MAX_KEY_LEN + 1, out), 0u,
                 "klen over the limit");
    cr_assert_eq(tc__msg_encode(1, 1, ORIGIN, "k", SIZE_MAX, out), 0u, "klen SIZE_MAX");
    cr_assert_eq(tc__msg_encode(1, 1, ORIGIN, NULL, 1, out), 0u, "NULL key");
    cr_assert_eq(tc__msg_encode(1, 1, NULL, "k", 1, out), 0u, "NULL origin");
    cr_assert_eq(tc__msg_encode(1, 1, ORIGIN, "k", 1, NULL), 0u, "NULL out");
    for (size_t i = 0; i < sizeof out; i++)
        cr_assert_eq(out[i], 0x5A, "a rejected encode wrote byte %zu", i);

    cr_assert_eq(tc__msg_tail(ORIGIN, "k", 0, out), 0u);
    cr_assert_eq(tc__msg_tail(ORIGIN, NULL, 1, out), 0u);
    cr_assert_eq(tc__msg_tail(NULL, "k", 1, out), 0u);
    cr_assert_eq(tc__msg_tail(ORIGIN, "k", 1, NULL), 0u);
    cr_assert_eq(tc__msg_tail(ORIGIN, "k", (size_t)TC_MAX_KEY_LEN + 1, out), 0u);
}

/* A valid 27-byte message to mutate. */
static void valid_msg(unsigned char out[TC__MSG_FIXED_LEN + 1]) {
    cr_assert_eq(tc__msg_encode(TC__MSG_OP_WRITE, 9, ORIGIN, "x", 1, out),
                 (size_t)TC__MSG_FIXED_LEN + 1);
}

Test(msg, decode_rejects_short_and_null) {
    unsigned char buf[TC__MSG_FIXED_LEN + 1];
    valid_msg(buf);
    tc__msg_t m;
    cr_assert_eq(tc__msg_decode(buf, sizeof buf, &m), 0, "the unmutated message is valid");
    cr_assert_eq(tc__msg_decode(NULL, sizeof buf, &m), TC__MALFORMED);
    cr_assert_eq(tc__msg_decode(buf, sizeof buf, NULL), TC__MALFORMED);
    for (size_t len = 0; len <= TC__MSG_FIXED_LEN; len++)
        cr_assert_eq(tc__msg_decode(buf, len, &m), TC__MALFORMED,
                     "len %zu (no key byte) accepted", len);
}

Test(msg, decode_rejects_bad_magic_and_op) {
    unsigned char buf[TC__MSG_FIXED_LEN + 1];
    tc__msg_t m;
    for (unsigned b = 0; b < 256; b++) {
        valid_msg(buf);
        buf[0] = (unsigned char)b;
        cr_assert_eq(tc__msg_decode(buf, sizeof buf, &m),
                     b == TC__MSG_MAGIC ? TC__PARSED : TC__MALFORMED, "magic 0x%02x", b);
        valid_msg(buf);
        buf[1] = (unsigned char)b;
        int ok = b == TC__MSG_OP_WRITE || b == TC__MSG_OP_DELETE || b == TC__MSG_OP_FILL ||
                 b == TC__MSG_OP_EVICT;
        cr_assert_eq(tc__msg_decode(buf, sizeof buf, &m), ok ? TC__PARSED : TC__MALFORMED,
                     "op %u", b);
    }
}

Test(msg, decode_key_length_limits) {
    size_t cap = TC__MSG_FIXED_LEN + (size_t)TC_MAX_KEY_LEN + 1;
    unsigned char *buf = malloc(cap);
    cr_assert_not_null(buf);
    memset(buf, 'k', cap);
    tc__msg_head(TC__MSG_OP_WRITE, buf);
    tc__msg_t m;
    cr_assert_eq(tc__msg_decode(buf, cap - 1, &m), 0, "a 65535-byte key is legal");
    cr_assert_eq(m.klen, (size_t)TC_MAX_KEY_LEN);
    cr_assert_eq(tc__msg_decode(buf, cap, &m), TC__MALFORMED, "a 65536-byte key is not");
    /* Must be rejected on length alone: nothing past the real buffer may be read. */
    cr_assert_eq(tc__msg_decode(buf, SIZE_MAX, &m), TC__MALFORMED);
    free(buf);
}

/* The decoder's whole contract, stated independently of its code. */
static size_t oracle_fixed(const unsigned char *b) {
    return b[0] == TC__MSG_MAGIC_LOG ? TC__MSG_FIXED_LEN_LOG : TC__MSG_FIXED_LEN;
}

/* Op 5's payload: entries of a be16 length (1..65535) and that many bytes, exactly. */
static int oracle_many(const unsigned char *p, size_t n) {
    if (n == 0)
        return 0;
    while (n > 0) {
        if (n < 2)
            return 0;
        size_t k = (size_t)p[0] * 256 + p[1];
        if (k == 0 || k > n - 2)
            return 0;
        p += 2 + k;
        n -= 2 + k;
    }
    return 1;
}

static int oracle_accepts(const unsigned char *b, size_t len) {
    if (len < 2 || (b[0] != TC__MSG_MAGIC && b[0] != TC__MSG_MAGIC_LOG))
        return 0;
    size_t fixed = oracle_fixed(b);
    if (len < fixed)
        return 0;
    size_t n = len - fixed;
    switch (b[1]) {
    case TC__MSG_OP_WRITE:
    case TC__MSG_OP_DELETE:
    case TC__MSG_OP_FILL:
    case TC__MSG_OP_EVICT:
        return n >= 1 && n <= TC_MAX_KEY_LEN;
    case TC__MSG_OP_MANY:
        return oracle_many(b + fixed, n);
    case TC__MSG_OP_NS:
        return n >= 2 && n <= TC_MAX_KEY_LEN;
    case TC__MSG_OP_CLEAR:
        return n == 0;
    default:
        return 0;
    }
}

static size_t fuzz_len(uint64_t *s) {
    uint64_t r = rng_next(s);
    switch (r % 16) {
    case 0:
        return TC__MSG_FIXED_LEN + TC_MAX_KEY_LEN - 2 + (size_t)((r >> 8) % 5); /* limit */
    case 1:
        return (size_t)((r >> 8) % (TC__MSG_FIXED_LEN + 2)); /* around the minimum */
    default:
        return (size_t)((r >> 8) % 160);
    }
}

Test(msg, fuzz_random_buffers) {
    uint64_t s = 0xF0220001;
    unsigned accepted = 0, rejected = 0;
    for (int i = 0; i < 100000; i++) {
        size_t len = fuzz_len(&s);
        unsigned char *b = malloc(len ? len : 1);
        cr_assert_not_null(b);
        rng_fill(&s, b, len);
        /* Bias toward the valid prefix so the success path gets fuzzed too. */
        if (len >= 1 && (rng_next(&s) & 3) != 0)
            b[0] = (unsigned char)((rng_next(&s) & 1) ? TC__MSG_MAGIC : TC__MSG_MAGIC_LOG);
        if (len >= 2 && (rng_next(&s) & 1))
            b[1] = (unsigned char)(rng_next(&s) % 9);
        /* ... and toward well-formed many-keys payloads. */
        size_t fx = len >= 1 ? oracle_fixed(b) : 0;
        if (len >= 2 && b[1] == TC__MSG_OP_MANY && len > fx + 2 && (rng_next(&s) & 1)) {
            size_t at = fx;
            while (len - at >= 3) {
                size_t k = 1 + rng_next(&s) % (len - at - 2);
                b[at] = (unsigned char)(k >> 8);
                b[at + 1] = (unsigned char)k;
                at += 2 + k;
            }
        }

        tc__msg_t m;
        int rc = tc__msg_decode(b, len, &m);
        int want = oracle_accepts(b, len);
        cr_assert_eq(rc, want ? TC__PARSED : TC__MALFORMED, "iteration %d len %zu: rc %d", i,
                     len, rc);
        if (rc == 0) {
            accepted++;
            size_t fixed = oracle_fixed(b);
            cr_assert_eq(m.op, b[1]);
            cr_assert_eq(m.version, tc__get_be64(b + 2));
            cr_assert_eq(m.has_logid, b[0] == TC__MSG_MAGIC_LOG);
            if (m.has_logid)
                cr_assert(m.logid.ms == tc__get_be64(b + 10) &&
                          m.logid.seq == tc__get_be64(b + 18));
            cr_assert_eq(memcmp(m.origin, b + fixed - 16, 16), 0);
            cr_assert_eq(m.key, b + fixed, "key pointer outside the buffer");
            cr_assert_eq(m.klen, len - fixed);
        } else {
            rejected++;
        }
        free(b);
    }
    cr_assert_gt(accepted, 10000u, "fuzz never reached the success path often enough");
    cr_assert_gt(rejected, 10000u);
}

/* Format 2: the replay log id between version and origin. */
Test(msg, format_two_carries_the_log_id) {
    unsigned char b[TC__MSG_FIXED_LEN_LOG + 3];
    b[0] = TC__MSG_MAGIC_LOG;
    b[1] = TC__MSG_OP_DELETE;
    tc__put_be64(b + 2, 77);
    tc__put_be64(b + 10, 1700000000123u);
    tc__put_be64(b + 18, 5);
    memcpy(b + 26, ORIGIN, 16);
    memcpy(b + 42, "key", 3);
    tc__msg_t m;
    cr_assert_eq(tc__msg_decode(b, sizeof b, &m), 0);
    cr_assert(m.has_logid && m.logid.ms == 1700000000123u && m.logid.seq == 5);
    cr_assert(m.op == TC__MSG_OP_DELETE && m.version == 77 && m.klen == 3);
    cr_assert_eq(memcmp(m.key, "key", 3), 0);
    cr_assert_eq(tc__msg_decode(b, TC__MSG_FIXED_LEN_LOG, &m), TC__MALFORMED, "no key");
    tc__logid_t id;
    cr_assert_eq(tc__logid_parse("1700000000123-5", 15, &id), 0);
    cr_assert(id.ms == 1700000000123u && id.seq == 5);
    static const char *const bad[] = {"", "-", "1-", "-1", "1-2-3", "a-1", "1- 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(tc__logid_parse(bad[i], strlen(bad[i]), &id), TC__MALFORMED, "'%s'",
                     bad[i]);
    cr_assert(tc__logid_after((tc__logid_t){2, 0}, (tc__logid_t){1, 9}));
    cr_assert(!tc__logid_after((tc__logid_t){1, 9}, (tc__logid_t){1, 9}));
}

/* Ops 5-7: a payload where the key goes; op 5's entries iterate exactly. */
Test(msg, many_keys_namespace_and_clear) {
    unsigned char b[TC__MSG_FIXED_LEN + 16];
    tc__msg_head(TC__MSG_OP_MANY, b);
    tc__put_be64(b + 2, 99);
    memcpy(b + 10, ORIGIN, 16);
    unsigned char *p = b + TC__MSG_FIXED_LEN;
    memcpy(p,
           "\x00\x01"
           "a"
           "\x00\x03"
           "b\0c",
           8);
    tc__msg_t m;
    cr_assert_eq(tc__msg_decode(b, TC__MSG_FIXED_LEN + 8, &m), 0);
    cr_assert(m.op == TC__MSG_OP_MANY && m.version == 99 && m.klen == 8);
    size_t at = 0, klen;
    const unsigned char *key;
    cr_assert(tc__msg_next_key(&m, &at, &key, &klen) && klen == 1 && key[0] == 'a');
    cr_assert(tc__msg_next_key(&m, &at, &key, &klen) && klen == 3 &&
              memcmp(key, "b\0c", 3) == 0);
    cr_assert_not(tc__msg_next_key(&m, &at, &key, &klen), "two entries, then the end");
    cr_assert_eq(tc__msg_decode(b, TC__MSG_FIXED_LEN + 7, &m), TC__MALFORMED,
                 "an entry cut short");
    p[0] = 0, p[1] = 0;
    cr_assert_eq(tc__msg_decode(b, TC__MSG_FIXED_LEN + 8, &m), TC__MALFORMED, "an empty key");
    cr_assert_eq(tc__msg_decode(b, TC__MSG_FIXED_LEN, &m), TC__MALFORMED, "no entry at all");

    tc__msg_head(TC__MSG_OP_NS, b);
    memcpy(p, "user:", 5);
    cr_assert_eq(tc__msg_decode(b, TC__MSG_FIXED_LEN + 5, &m), 0);
    cr_assert(m.op == TC__MSG_OP_NS && m.klen == 5 && memcmp(m.key, "user:", 5) == 0);
    cr_assert_eq(tc__msg_decode(b, TC__MSG_FIXED_LEN + 1, &m), TC__MALFORMED,
                 "a namespace is 2+ bytes");
    cr_assert_not(tc__msg_next_key(&m, &at, &key, &klen), "not a many-keys message");

    tc__msg_head(TC__MSG_OP_CLEAR, b);
    cr_assert_eq(tc__msg_decode(b, TC__MSG_FIXED_LEN, &m), 0, "clear carries nothing");
    cr_assert(m.op == TC__MSG_OP_CLEAR && m.klen == 0);
    cr_assert_eq(tc__msg_decode(b, TC__MSG_FIXED_LEN + 1, &m), TC__MALFORMED,
                 "... and nothing more");
}
