/*
 * units.c - numbers as people write them in settings: byte sizes, durations, counts,
 * fractions, booleans and names, parsed strictly and exactly. The library's configuration
 * (config.c) and the bench's options use this one parser, so a setting means the same thing
 * everywhere.
 *
 * Strict and exact: a number is digits only (no sign, no spaces, no hex, no locale), a unit
 * is from a short fixed list, and a fraction such as "1.5GiB" is accepted only when it names
 * a whole number of bytes (or milliseconds), computed in integers so nothing is rounded
 * behind the user's back. A bare number is bytes, or milliseconds.
 */
#include "units.h"

#include "tiercache.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
/* Significant fractional digits kept; with multipliers <= 2^30 the products fit 64 bits. */
#define TC__MAX_FRAC_DIGITS 9

/* ---- Quoting user text into messages ---- */

/* Copy s into dst as printable text: non-printable bytes become \xNN, and long input is
 * cut with "..." so a message always keeps room for the words around it. */
void tc__quote(char *dst, size_t cap, const char *s) {
    size_t n = 0;
    const size_t keep = cap - 8; /* room for one escape, "..." and NUL */
    for (; *s && n < keep; s++) {
        unsigned char c = (unsigned char)*s;
        if (isprint(c) && c != '\'' && c != '\\') {
            dst[n++] = (char)c;
        } else {
            n += (size_t)snprintf(dst + n, cap - n, "\\x%02x", c);
        }
    }
    if (*s) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

/* ---- Numbers ---- */

/* Leading run of decimal digits of *sp into *out, advancing *sp. At least one digit. */
static tc__num_why_t take_digits(const char **sp, uint64_t *out) {
    const char *s = *sp;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*s)) {
        return TC__NUM_SYNTAX;
    }
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return TC__NUM_RANGE;
        }
        v = v * 10 + d;
    }
    *sp = s;
    *out = v;
    return TC__NUM_OK;
}

static tc__num_why_t classify_start(const char *s) {
    if (*s == '\0') {
        return TC__NUM_EMPTY;
    }
    return *s == '-' ? TC__NUM_NEGATIVE : TC__NUM_OK;
}

/* A plain unsigned decimal: digits only, nothing before or after. */
tc__num_why_t tc__units_count(const char *s, uint64_t *out) {
    tc__num_why_t why = classify_start(s);
    if (why == TC__NUM_OK) {
        why = take_digits(&s, out);
    }
    if (why == TC__NUM_OK && *s != '\0') {
        why = TC__NUM_SYNTAX;
    }
    return why;
}

typedef struct unit {
    const char *name; /* lower case; "" is the bare-number unit */
    uint64_t mult;
} unit_t;

static const unit_t byte_units[] = {
    {"", 1},    {"b", 1},     {"k", KIB},   {"kib", KIB},    {"m", MIB},         {"mib", MIB},
    {"g", GIB}, {"gib", GIB}, {"kb", 1000}, {"mb", 1000000}, {"gb", 1000000000}, {NULL, 0},
};

static const unit_t duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {NULL, 0},
};

static const unit_t *find_unit(const unit_t *units, const char *name) {
    for (; units->name; units++) {
        if (strcasecmp(units->name, name) == 0) {
            return units;
        }
    }
    return NULL;
}

/* Fraction digits after '.', trailing zeros dropped: value frac / 10^ndig. */
static tc__num_why_t take_fraction(const char **sp, uint64_t *frac, unsigned *ndig) {
    const char *s = *sp;
    const char *end = s;
    while (isdigit((unsigned char)*end)) {
        end++;
    }
    if (end == s) {
        return TC__NUM_SYNTAX; /* "1." or "1.GiB" */
    }
    *sp = end;
    while (end > s && end[-1] == '0') {
        end--;
    }
    if (end - s > TC__MAX_FRAC_DIGITS) {
        return TC__NUM_INEXACT;
    }
    *frac = 0;
    *ndig = (unsigned)(end - s);
    for (; s < end; s++) {
        *frac = *frac * 10 + (uint64_t)(*s - '0');
    }
    return TC__NUM_OK;
}

static uint64_t pow10u(unsigned n) {
    uint64_t p = 1;
    while (n--) {
        p *= 10;
    }
    return p;
}

/* whole + frac/10^ndig, times mult, exactly; INEXACT unless the result is an integer. */
static tc__num_why_t scale_exact(uint64_t whole, uint64_t frac, unsigned ndig, uint64_t mult,
                                 uint64_t *out) {
    uint64_t p = pow10u(ndig);
    uint64_t fpart = frac * mult; /* frac < 10^9 and mult <= 2^30: fits */
    if (fpart % p != 0) {
        return TC__NUM_INEXACT;
    }
    if (whole > UINT64_MAX / mult) {
        return TC__NUM_RANGE;
    }
    whole *= mult;
    if (whole > UINT64_MAX - fpart / p) {
        return TC__NUM_RANGE;
    }
    *out = whole + fpart / p;
    return TC__NUM_OK;
}

/* digits[.digits][ ]unit with unit from `units` (case-insensitive), or a bare number. */
static tc__num_why_t parse_scaled(const char *s, const unit_t *units, uint64_t *out) {
    uint64_t whole = 0, frac = 0;
    unsigned ndig = 0;
    tc__num_why_t why = classify_start(s);
    if (why == TC__NUM_OK) {
        why = take_digits(&s, &whole);
    }
    if (why == TC__NUM_OK && *s == '.') {
        s++;
        why = take_fraction(&s, &frac, &ndig);
    }
    if (why != TC__NUM_OK) {
        return why;
    }
    if (*s == ' ' && s[1] != '\0') {
        s++; /* one optional space, and only before a unit */
    }
    const unit_t *u = find_unit(units, s);
    if (!u) {
        return TC__NUM_SYNTAX;
    }
    return scale_exact(whole, frac, ndig, u->mult, out);
}

int tc__parse_bytes(const char *s, uint64_t *out) {
    if (!s || !out) {
        return TC_EINVAL;
    }
    return parse_scaled(s, byte_units, out) == TC__NUM_OK ? 0 : TC_EINVAL;
}

int tc__parse_duration_ms(const char *s, uint64_t *out) {
    if (!s || !out) {
        return TC_EINVAL;
    }
    return parse_scaled(s, duration_units, out) == TC__NUM_OK ? 0 : TC_EINVAL;
}

/* "0.1", "10%", "0": a non-negative decimal, computed as mantissa / 10^k so it rounds once
 * (and never depends on the C locale, unlike strtod). '%' only when pct_ok. Range is left
 * to the caller. */
tc__num_why_t tc__units_decimal(const char *s, bool pct_ok, double *out) {
    uint64_t mant = 0;
    unsigned scale = 0;
    unsigned digits = 0;
    tc__num_why_t why = classify_start(s);
    if (why != TC__NUM_OK) {
        return why;
    }
    if (!isdigit((unsigned char)*s)) {
        return TC__NUM_SYNTAX;
    }
    for (bool dot = false; isdigit((unsigned char)*s) || (*s == '.' && !dot); s++) {
        if (*s == '.') {
            dot = true;
            if (!isdigit((unsigned char)s[1])) {
                return TC__NUM_SYNTAX;
            }
            continue;
        }
        if (++digits > 15) {
            if (!dot) {
                return TC__NUM_RANGE;
            }
            continue; /* beyond what a double keeps */
        }
        mant = mant * 10 + (uint64_t)(*s - '0');
        scale += dot;
    }
    if (*s == '%' && pct_ok) {
        scale += 2;
        s++;
    }
    if (*s != '\0') {
        return TC__NUM_SYNTAX;
    }
    *out = (double)mant / (double)pow10u(scale);
    return TC__NUM_OK;
}

/* A name from a NULL-terminated list -> its index (case-insensitive). */
int tc__units_name(const char *s, const char *const *names, int *out) {
    for (int i = 0; names[i]; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

int tc__units_bool(const char *s, int *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

tc__num_why_t tc__units_scaled(const char *s, tc__unit_kind_t kind, uint64_t *out) {
    return parse_scaled(s, kind == TC__UNITS_BYTES ? byte_units : duration_units, out);
}
