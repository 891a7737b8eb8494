/*
 * valfmt.h - the header in front of every value tiercache stores in Redis (format v1).
 *
 *   offset  size  field
 *   0       1     magic 0xC7
 *   1       1     format version (1)
 *   2       1     flags: bit 0 (0x01) "absent" marker for negative caching; the write
 *                 script sets the other two (a writer's C side never does):
 *                 0x02 "expiry bounded": the expiry field (if not 0) is at or before the
 *                      key's own expiry in Redis, on Redis's clock;
 *                 0x04 "expiry is the key's": the writer gave no fresh end (or one past
 *                      the key's life), so the field holds the key's Redis expiry
 *   3       1     load-time class: 0 unknown, else the load took about 2^(c-1) ms; lets every
 *                 process schedule early refreshes (XFetch), not only the one that loaded
 *   4       8     version, big-endian u64: assigned by Redis's INCR inside the write script,
 *                 totally ordered across every writer of this key prefix
 *                 (never below Redis's clock in microseconds: ~1.8e15 in 2026, not a
 *                 small counter; see next_version() in scripts.c)
 *   12      8     logical expiry (the end of the fresh period), big-endian u64 unix-epoch
 *                 ms; 0 = fresh until Redis's TTL (which covers the stale window); with
 *                 flag 0x04, the key's expiry (also "fresh until Redis's TTL")
 *   20      n     the user's value
 *
 * The write script builds the stored string as head (0-3) .. version .. expiry .. value:
 * the version is known only inside the script, so the C side produces the pieces
 * (tc__val_head, tc__val_expiry) and the value, never the whole string (tc__val_encode
 * builds it in one go for tests and tools). A reader that finds a string too short or with
 * another magic/format treats it as not written by tiercache (TC_EPROTO in stats, a miss
 * for the caller).
 *
 * Why the expiry flags: a reader that keeps the value in L1 must not keep it past the key's
 * life in Redis. With 0x02 the header alone says how long that is (expires_by_ms, on
 * Redis's clock), so a read needs no PTTL; a value from a writer older than these flags
 * says nothing, and such a reader asks PTTL or keeps no copy.
 */
#ifndef TC_VALFMT_H
#define TC_VALFMT_H

#include "parse.h"

#include <stddef.h>
#include <stdint.h>

#define TC__VAL_MAGIC           0xC7u
#define TC__VAL_FORMAT          1u
#define TC__VAL_HEAD_LEN        4u
#define TC__VAL_VERSION_LEN     8u
#define TC__VAL_EXPIRY_LEN      8u
#define TC__VAL_HDR_LEN         (TC__VAL_HEAD_LEN + TC__VAL_VERSION_LEN + TC__VAL_EXPIRY_LEN) /* 20 */
#define TC__VAL_FLAG_ABSENT     0x01u
#define TC__VAL_FLAG_BOUNDED    0x02u /* set by the write script: see the format */
#define TC__VAL_FLAG_KEY_EXPIRY 0x04u
/* expires_by_ms when the key has no expiry in Redis / when the header does not say. */
#define TC__VAL_NEVER   UINT64_MAX
#define TC__VAL_UNKNOWN 0u

typedef struct tc__val {
    unsigned flags;
    uint64_t version;
    uint64_t logical_expiry_ms; /* the writer's fresh end (wall ms), 0 = none */
    /* On Redis's clock (ms): the key is gone, or the value no longer fresh, by then.
     * TC__VAL_NEVER: the key has no expiry and no fresh end; TC__VAL_UNKNOWN: written
     * before the expiry flags (ask PTTL). */
    uint64_t expires_by_ms;
    unsigned load_class;       /* byte 3: 0 unknown, else load took ~2^(load_class-1) ms */
    const unsigned char *data; /* points into the decoded buffer */
    size_t len;
} tc__val_t;

/* The 4-byte head. */
void tc__val_head(unsigned flags, unsigned char out[TC__VAL_HEAD_LEN]);
/* Write the 8-byte logical expiry into out (the payload follows it in the script's
 * argument, which the caller assembles). */
void tc__val_expiry(uint64_t logical_expiry_ms, unsigned char out[TC__VAL_EXPIRY_LEN]);
/* Whole stored string into out (capacity TC__VAL_HDR_LEN + len). Returns bytes written. */
size_t tc__val_encode(unsigned flags, uint64_t version, uint64_t logical_expiry_ms,
                      const void *data, size_t len, unsigned char *out);
/* Parse a stored string. Returns TC__PARSED (v->data points into buf) or TC__MALFORMED
 * (not ours). */
tc__parse_t tc__val_decode(const void *buf, size_t len, tc__val_t *v);

/* Load-time class of a load that took ms milliseconds (0 -> 0), and back. */
unsigned tc__val_load_class(uint32_t ms);
uint32_t tc__val_load_ms(unsigned load_class);

/* Big-endian u64 helpers shared with msg.c. */
void tc__put_be64(unsigned char *p, uint64_t v);
uint64_t tc__get_be64(const unsigned char *p);

#endif
