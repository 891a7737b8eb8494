/*
 * units.h - parsing settings as people write them (units.c): one parser for the library
 * and the bench.
 */
#ifndef TC_UNITS_H
#define TC_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a number was refused (TC__NUM_OK: it was not). */
typedef enum tc__num_why {
    TC__NUM_OK = 0,
    TC__NUM_EMPTY,    /* "" */
    TC__NUM_NEGATIVE, /* starts with '-' */
    TC__NUM_SYNTAX,   /* not digits, bad unit, trailing garbage */
    TC__NUM_RANGE,    /* does not fit */
    TC__NUM_INEXACT,  /* fraction that is not a whole number of base units */
} tc__num_why_t;

typedef enum tc__unit_kind {
    TC__UNITS_BYTES,    /* B, K/KiB, M/MiB, G/GiB (1024), KB/MB/GB (1000); bare: bytes */
    TC__UNITS_DURATION, /* ms, s, m, h, d; bare: milliseconds */
} tc__unit_kind_t;

/* A plain unsigned decimal: digits only. */
tc__num_why_t tc__units_count(const char *s, uint64_t *out);
/* digits[.digits][ ]unit, exactly (see units.c). */
tc__num_why_t tc__units_scaled(const char *s, tc__unit_kind_t kind, uint64_t *out);
/* "0.1", "10%" (when pct_ok): a non-negative decimal, locale-free. */
tc__num_why_t tc__units_decimal(const char *s, bool pct_ok, double *out);
/* A name from a NULL-terminated list -> its index (case-insensitive). 0, or -1. */
int tc__units_name(const char *s, const char *const *names, int *out);
/* 1/0, true/false, yes/no, on/off (case-insensitive). 0, or -1. */
int tc__units_bool(const char *s, int *out);

/* "256MiB" -> bytes; "30s" -> milliseconds. 0 or TC_EINVAL. */
int tc__parse_bytes(const char *s, uint64_t *out);
int tc__parse_duration_ms(const char *s, uint64_t *out);

/* Copy s into dst (capacity cap, at least 16) as printable text: non-printable bytes become
 * \xNN, and long input is cut with "...". For quoting user text in messages. */
void tc__quote(char *dst, size_t cap, const char *s);

#endif
