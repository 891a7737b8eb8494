/*
 * test_valfmt.c - the stored-value header and the big-endian helpers (src/valfmt.c).
 *
 * Values outlive processes and cross architectures, so the layout is pinned by a literal
 * byte vector as well as by round trips, and the pieces the Redis write script splices
 * (head .. be64(version) .. expiry .. payload) are checked against the whole encoding.
 * The decoder meets whatever string sits under a key (possibly written by someone else),
 * so every malformed shape is tried and 100k random buffers, each malloc'ed at its exact
 * size, are decoded against an independent statement of the contract.
 */
/* tc-test-labels: unit */
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

Test(be64, known_values_and_unaligned) {
    unsigned char buf[16];
    for (size_t off = 0; off < 8; off++) {
        memset(buf, 0xEE, sizeof buf);
        tc__put_be64(buf + off, 0x0102030405060708ull);
        for (size_t i = 0; i < 8; i++)
            cr_assert_eq(buf[off + i], i + 1, "offset %zu byte %zu", off, i);
        cr_assert(off == 0 || buf[off - 1] == 0xEE, "wrote before the 8 bytes");
        cr_assert_eq(buf[off + 8], 0xEE, "wrote past the 8 bytes");
        cr_assert_eq(tc__get_be64(buf + off), 0x0102030405060708ull);
    }
    static const unsigned char max[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    static const unsigned char top[8] = {0x80, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    cr_assert_eq(tc__get_be64(max), UINT64_MAX);
    cr_assert_eq(tc__get_be64(top), 0x8000000000000000ull);
    cr_assert_eq(tc__get_be64(one), 1u);
}

Test(be64, round_trip_random) {
    uint64_t s = 0x5EED0101;
    unsigned char buf[9];
    for (int i = 0; i < 10000; i++) {
        uint64_t v = rng_next(&s);
        tc__put_be64(buf + 1, v);
        cr_assert_eq(tc__get_be64(buf + 1), v);
        cr_assert_eq(buf[1], (unsigned char)(v >> 56), "most significant byte first");
    }
}

Test(valfmt, known_byte_vector) {
    static const unsigned char want[] = {
        0xC7, 0x01, 0x01, 0x00,                         /* magic, format, flags, reserved */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* version */
        0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00, /* expiry 1700000000000 ms */
        'v',  0x00, '\r', '\n'                          /* payload */
    };
    unsigned char out[sizeof want];
    size_t n = tc__val_encode(TC__VAL_FLAG_ABSENT, 0x0102030405060708ull, 1700000000000ull,
                              "v\0\r\n", 4, out);
    cr_assert_eq(n, sizeof want);
    cr_assert_arr_eq(out, want, sizeof want, "encoded bytes differ from the v1 layout");
    cr_assert_eq(TC__VAL_HDR_LEN, 20u);

    tc__val_t v;
    cr_assert_eq(tc__val_decode(want, sizeof want, &v), 0);
    cr_assert_eq(v.flags, TC__VAL_FLAG_ABSENT);
    cr_assert_eq(v.version, 0x0102030405060708ull);
    cr_assert_eq(v.logical_expiry_ms, 1700000000000ull);
    cr_assert_eq(v.expires_by_ms, TC__VAL_UNKNOWN, "no 0x02: the header does not bound it");
    cr_assert_eq(v.len, 4u);
    cr_assert_eq(v.data, want + 20);
}

/* The write script's flags: 0x02 bounds the key's life by the field (0: no expiry), 0x04
 * says the field is the key's expiry, so no fresh end. */
Test(valfmt, expiry_flags) {
    unsigned char b[TC__VAL_HDR_LEN];
    tc__val_t v;
    tc__val_encode(TC__VAL_FLAG_BOUNDED | TC__VAL_FLAG_KEY_EXPIRY, 7, 1700000000000ull, NULL, 0,
                   b);
    cr_assert_eq(tc__val_decode(b, sizeof b, &v), 0);
    cr_assert_eq(v.logical_expiry_ms, 0, "the key's expiry is no fresh end");
    cr_assert_eq(v.expires_by_ms, 1700000000000ull);
    tc__val_encode(TC__VAL_FLAG_BOUNDED, 7, 1700000000000ull, NULL, 0, b);
    cr_assert_eq(tc__val_decode(b, sizeof b, &v), 0);
    cr_assert_eq(v.logical_expiry_ms, 1700000000000ull, "a fresh end within the key's life");
    cr_assert_eq(v.expires_by_ms, 1700000000000ull);
    tc__val_encode(TC__VAL_FLAG_BOUNDED, 7, 0, NULL, 0, b);
    cr_assert_eq(tc__val_decode(b, sizeof b, &v), 0);
    cr_assert_eq(v.expires_by_ms, TC__VAL_NEVER, "bounded, field 0: the key has no expiry");
    tc__val_encode(TC__VAL_FLAG_ABSENT, 7, 0, NULL, 0, b);
    cr_assert_eq(tc__val_decode(b, sizeof b, &v), 0);
    cr_assert_eq(v.expires_by_ms, TC__VAL_UNKNOWN);
}

/* What decode makes of the expiry field under the expiry flags (valfmt.h). */
static void expect_expiry_fields(const tc__val_t *v, unsigned flags, uint64_t field) {
    cr_assert_eq(v->logical_expiry_ms, flags & TC__VAL_FLAG_KEY_EXPIRY ? 0 : field,
                 "flags 0x%02x: the field is a fresh end only without 0x04", flags);
    uint64_t by = !(flags & TC__VAL_FLAG_BOUNDED) ? TC__VAL_UNKNOWN
                  : field                         ? field
                                                  : TC__VAL_NEVER;
    cr_assert_eq(v->expires_by_ms, by, "flags 0x%02x field %llu", flags,
                 (unsigned long long)field);
}

static void check_round_trip(unsigned flags, uint64_t version, uint64_t expiry,
                             const unsigned char *data, size_t len) {
    size_t cap = TC__VAL_HDR_LEN + len;
    unsigned char *buf = malloc(cap);
    cr_assert_not_null(buf);
    size_t n = tc__val_encode(flags, version, expiry, data, len, buf);
    cr_assert_eq(n, cap);
    tc__val_t v;
    cr_assert_eq(tc__val_decode(buf, n, &v), 0);
    cr_assert_eq(v.flags, flags & 0xFFu);
    cr_assert_eq(v.version, version);
    expect_expiry_fields(&v, flags, expiry);
    cr_assert_eq(v.len, len);
    cr_assert_eq(v.data, buf + TC__VAL_HDR_LEN, "data must point into the buffer");
    cr_assert(len == 0 || memcmp(v.data, data, len) == 0);
    free(buf);
}

Test(valfmt, round_trip_edge_values) {
    static const unsigned char crlf[] = {'\r', '\n'};
    static const unsigned char nuls[] = {0, 0, 0};
    check_round_trip(0, 1, 0, NULL, 0); /* empty value, NULL data */
    check_round_trip(0, 1, 0, crlf, 0); /* empty value, non-NULL data */
    check_round_trip(0, UINT64_MAX, UINT64_MAX, crlf, sizeof crlf);
    check_round_trip(TC__VAL_FLAG_ABSENT, 0, 5, nuls, sizeof nuls);
    check_round_trip(0xFF, 2, 3, nuls, 1);

    size_t big = 1u << 20;
    unsigned char *p = malloc(big);
    cr_assert_not_null(p);
    uint64_t s = 7;
    rng_fill(&s, p, big);
    check_round_trip(0, 99, 100, p, big);
    free(p);
}

Test(valfmt, round_trip_random) {
    uint64_t s = 0x5EED0102;
    unsigned char data[1000];
    for (int i = 0; i < 2000; i++) {
        size_t len = (size_t)(rng_next(&s) % (sizeof data + 1)); /* 0 included */
        rng_fill(&s, data, len);
        check_round_trip((unsigned)(rng_next(&s) & 0xFF), rng_next(&s), rng_next(&s), data,
                         len);
    }
}

/* The Redis script stores head .. be64(version) .. expiry .. payload: it must equal encode. */
Test(valfmt, pieces_equal_encode) {
    uint64_t s = 0x5EED0103;
    unsigned char data[200];
    unsigned char whole[TC__VAL_HDR_LEN + sizeof data];
    unsigned char spliced[TC__VAL_HDR_LEN + sizeof data];
    for (int i = 0; i < 1000; i++) {
        size_t len = (size_t)(rng_next(&s) % (sizeof data + 1));
        rng_fill(&s, data, len);
        unsigned flags = (unsigned)(rng_next(&s) & 1);
        uint64_t ver = rng_next(&s), exp = rng_next(&s);

        size_t n = tc__val_encode(flags, ver, exp, data, len, whole);
        memset(spliced, 0x5A, sizeof spliced);
        tc__val_head(flags, spliced);
        tc__put_be64(spliced + TC__VAL_HEAD_LEN, ver);
        tc__val_expiry(exp, spliced + TC__VAL_HEAD_LEN + TC__VAL_VERSION_LEN);
        memcpy(spliced + TC__VAL_HDR_LEN, data, len);
        cr_assert_eq(n, TC__VAL_HDR_LEN + len);
        cr_assert_arr_eq(spliced, whole, n, "head||be64(v)||expiry||data differs from encode");
    }
}

Test(valfmt, encode_rejects_bad_arguments) {
    unsigned char out[32];
    memset(out, 0x5A, sizeof out);
    cr_assert_eq(tc__val_encode(0, 1, 0, NULL, 1, out), 0u, "NULL data with len 1");
    cr_assert_eq(tc__val_encode(0, 1, 0, "x", 1, NULL), 0u, "NULL out");
    cr_assert_eq(tc__val_encode(0, 1, 0, "x", SIZE_MAX, out), 0u, "size overflow");
    for (size_t i = 0; i < sizeof out; i++)
        cr_assert_eq(out[i], 0x5A, "a rejected encode wrote byte %zu", i);
}

static void valid_val(unsigned char out[TC__VAL_HDR_LEN + 1]) {
    cr_assert_eq(tc__val_encode(0, 3, 4, "p", 1, out), (size_t)TC__VAL_HDR_LEN + 1);
}

Test(valfmt, decode_rejects_short_and_null) {
    unsigned char buf[TC__VAL_HDR_LEN + 1];
    valid_val(buf);
    tc__val_t v;
    cr_assert_eq(tc__val_decode(buf, sizeof buf, &v), 0, "the unmutated value is valid");
    cr_assert_eq(tc__val_decode(NULL, sizeof buf, &v), TC__MALFORMED);
    cr_assert_eq(tc__val_decode(NULL, 0, &v), TC__MALFORMED);
    cr_assert_eq(tc__val_decode(buf, sizeof buf, NULL), TC__MALFORMED);
    for (size_t len = 0; len < TC__VAL_HDR_LEN; len++)
        cr_assert_eq(tc__val_decode(buf, len, &v), TC__MALFORMED, "len %zu accepted", len);
    cr_assert_eq(tc__val_decode(buf, TC__VAL_HDR_LEN, &v), 0, "header only = empty value");
    cr_assert_eq(v.len, 0u);
    cr_assert_eq(v.data, buf + TC__VAL_HDR_LEN);
}

Test(valfmt, decode_magic_format_flags) {
    unsigned char buf[TC__VAL_HDR_LEN + 1];
    tc__val_t v;
    for (unsigned b = 0; b < 256; b++) {
        valid_val(buf);
        buf[0] = (unsigned char)b;
        cr_assert_eq(tc__val_decode(buf, sizeof buf, &v),
                     b == TC__VAL_MAGIC ? TC__PARSED : TC__MALFORMED, "magic 0x%02x", b);
        valid_val(buf);
        buf[1] = (unsigned char)b;
        cr_assert_eq(tc__val_decode(buf, sizeof buf, &v),
                     b == TC__VAL_FORMAT ? TC__PARSED : TC__MALFORMED, "format %u", b);
        valid_val(buf);
        buf[2] = (unsigned char)b;
        cr_assert_eq(tc__val_decode(buf, sizeof buf, &v), 0, "flags 0x%02x rejected", b);
        cr_assert_eq(v.flags, b, "flags not passed through");
    }
}

static int oracle_accepts(const unsigned char *b, size_t len) {
    return len >= TC__VAL_HDR_LEN && b[0] == TC__VAL_MAGIC && b[1] == TC__VAL_FORMAT;
}

Test(valfmt, fuzz_random_buffers) {
    uint64_t s = 0xF0220101;
    unsigned accepted = 0, rejected = 0;
    for (int i = 0; i < 100000; i++) {
        size_t len = (size_t)(rng_next(&s) % 96);
        unsigned char *b = malloc(len ? len : 1);
        cr_assert_not_null(b);
        rng_fill(&s, b, len);
        if (len >= 1 && (rng_next(&s) & 3) != 0)
            b[0] = (unsigned char)TC__VAL_MAGIC;
        if (len >= 2 && (rng_next(&s) & 1))
            b[1] = (unsigned char)(rng_next(&s) % 3);

        tc__val_t v;
        int rc = tc__val_decode(b, len, &v);
        cr_assert_eq(rc, oracle_accepts(b, len) ? TC__PARSED : TC__MALFORMED,
                     "iteration %d len %zu", i, len);
        if (rc == 0) {
            accepted++;
            cr_assert_eq(v.flags, b[2]);
            cr_assert_eq(v.version, tc__get_be64(b + 4));
            expect_expiry_fields(&v, b[2], tc__get_be64(b + 12));
            cr_assert_eq(v.data, b + TC__VAL_HDR_LEN, "data pointer outside the buffer");
            cr_assert_eq(v.len, len - TC__VAL_HDR_LEN);
        } else {
            rejected++;
        }
        free(b);
    }
    cr_assert_gt(accepted, 10000u, "fuzz never reached the success path often enough");
    cr_assert_gt(rejected, 10000u);
}

Test(valfmt, load_class_round_trips_within_a_factor_of_two) {
    cr_assert_eq(tc__val_load_class(0), 0u, "unknown stays unknown");
    cr_assert_eq(tc__val_load_ms(0), 0u);
    cr_assert_eq(tc__val_load_class(1), 1u);
    cr_assert_eq(tc__val_load_class(UINT32_MAX), 32u);
    for (uint32_t ms = 1; ms < 5000000; ms = ms * 3 + 1) {
        uint32_t back = tc__val_load_ms(tc__val_load_class(ms));
        cr_assert(back <= ms && ms < 2 * (uint64_t)back, "%u ms came back as %u", ms, back);
    }
    unsigned char buf[TC__VAL_HDR_LEN];
    tc__val_encode(0, 1, 0, NULL, 0, buf);
    buf[3] = (unsigned char)tc__val_load_class(50);
    tc__val_t v;
    cr_assert_eq(tc__val_decode(buf, sizeof buf, &v), 0);
    cr_assert_eq(tc__val_load_ms(v.load_class), 32u, "50 ms is in the 32..63 ms class");
}
