/*
 * valfmt.h - the header in front of every value tiercache stores in Redis (format v1).
 *
 *   offset  size  field
 *   0       1     magic 0xC7
 *   1       1     format version (1)
 *   2       1     flags (bit 0 reserved: "absent" marker for negative caching; others 0)
 *   3       1     load-time class: 0 unknown, else the load took about 2^(c-1) ms; lets every
 *                 process schedule early refreshes (XFetch), not only the one that loaded
 *   4       8     version, big-endian u64: assigned by Redis's INCR inside the write script,
 *                 totally ordered across every writer of this key prefix
 *                 (never below Redis's clock in microseconds: ~1.8e15 in 2026, not a
 *                 small counter; see next_version() in scripts.c)
 *   12      8     logical expiry (the end of the fresh period), big-endian u64 unix-epoch
 *                 ms; 0 = fresh until Redis's TTL (which covers the stale window)
 *   20      n     the user's value
 *
 * The write script builds the stored string as head (0-3) .. version .. expiry .. value:
 * the version is known only inside the script, so the C side produces the pieces
 * (tc__val_head, tc__val_expiry) and the value, never the whole string (tc__val_encode
 * builds it in one go for tests and tools). A reader that finds a string too short or with
 * another magic/format treats it as not written by tiercache (TC_EPROTO in stats, a miss
 * for the caller).
 */
#ifndef TC_VALFMT_H
#define TC_VALFMT_H

#include "parse.h"

#include <stddef.h>
#include <stdint.h>

#define TC__VAL_MAGIC       0xC7u
#define TC__VAL_FORMAT      1u
#define TC__VAL_HEAD_LEN    4u
#define TC__VAL_VERSION_LEN 8u
#define TC__VAL_EXPIRY_LEN  8u
#define TC__VAL_HDR_LEN     (TC__VAL_HEAD_LEN + TC__VAL_VERSION_LEN + TC__VAL_EXPIRY_LEN) /* 20 */
#define TC__VAL_FLAG_ABSENT 0x01u

typedef struct tc__val {
    unsigned flags;
    uint64_t version;
    uint64_t logical_expiry_ms;
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
