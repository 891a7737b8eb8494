/*
 * units.c - strict number parsing and human formatting for the CLI and the tables.
 *
 * Every parser works on a whole string: strtod/strtoull for the number, then a unit table
 * lookup for whatever follows, and the entire remainder must be a known unit. Negative
 * numbers are refused before strtoull can wrap them.
 */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct unit {
    const char *name;
    double mult;
} unit_t;

/* Looks up suffix in table (case-sensitive, so "m" minutes and "M" mega stay apart). */
static int unit_find(const unit_t *table, const char *suffix, double *mult) {
    for (const unit_t *u = table; u->name; u++) {
        if (strcmp(u->name, suffix) == 0) {
            *mult = u->mult;
            return 0;
        }
    }
    return -1;
}

/* Number then unit: the shared skeleton of the unit parsers. */
static int parse_scaled(const char *s, const unit_t *table, double bare, double *out) {
    if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        return -1;
    double mult = bare;
    if (*end && unit_find(table, end, &mult) != 0)
        return -1;
    *out = v * mult;
    return isfinite(*out) ? 0 : -1;
}

static int to_u64(double v, uint64_t *out) {
    if (v >= 18446744073709551615.0)
        return -1;
    *out = (uint64_t)llround(v);
    return 0;
}

int tcb_parse_count(const char *s, uint64_t *out) {
    static const unit_t t[] = {{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {NULL, 0}};
    double v;
    if (!out || parse_scaled(s, t, 1, &v) != 0 || v != floor(v))
        return -1;
    return to_u64(v, out);
}

int tcb_parse_bytes(const char *s, uint64_t *out) {
    static const unit_t t[] = {{"B", 1},
                               {"K", 1024.0},
                               {"KiB", 1024.0},
                               {"M", 1048576.0},
                               {"MiB", 1048576.0},
                               {"G", 1073741824.0},
                               {"GiB", 1073741824.0},
                               {"KB", 1e3},
                               {"MB", 1e6},
                               {"GB", 1e9},
                               {NULL, 0}};
    double v;
    if (!out || parse_scaled(s, t, 1, &v) != 0)
        return -1;
    return to_u64(floor(v), out);
}

int tcb_parse_duration(const char *s, uint64_t bare_unit_ns, uint64_t *out_ns) {
    static const unit_t t[] = {{"ns", 1},   {"us", 1e3},   {"ms", 1e6}, {"s", 1e9},
                               {"m", 60e9}, {"h", 3600e9}, {NULL, 0}};
    double v;
    if (!out_ns || parse_scaled(s, t, (double)bare_unit_ns, &v) != 0)
        return -1;
    return to_u64(v, out_ns);
}

int tcb_parse_double(const char *s, double lo, double hi, double *out) {
    if (!s || !*s || !out || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int tcb_parse_double_list(const char *s, double lo, double hi, double *out, int cap) {
    if (!s || !*s || !out || cap <= 0)
        return -1;
    char buf[512];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == cap || tcb_parse_double(tok, lo, hi, &out[n]) != 0)
            return -1;
        n++;
    }
    /* strtok_r swallows empty fields: ",," or a trailing comma is a typo, refuse it. */
    if (n == 0 || strstr(s, ",,") || s[0] == ',' || s[strlen(s) - 1] == ',')
        return -1;
    return n;
}

char *tcb_fmt_count(uint64_t v, char *buf, size_t cap) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n && o + 1 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0 && o + 2 < cap)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    if (cap)
        buf[o < cap ? o : cap - 1] = '\0';
    return buf;
}

char *tcb_fmt_bytes(double v, char *buf, size_t cap) {
    static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (v >= 1024.0 && i < 4) {
        v /= 1024.0;
        i++;
    }
    if (i == 0)
        snprintf(buf, cap, "%.0f B", v);
    else
        snprintf(buf, cap, "%.1f %s", v, names[i]);
    return buf;
}

char *tcb_fmt_pct(double pct, char *buf, size_t cap) {
    if (pct <= 0.0)
        snprintf(buf, cap, "0%%");
    else if (pct >= 100.0)
        snprintf(buf, cap, "100%%");
    else if (pct > 99.9) /* "100.0%" would hide the few that were not */
        snprintf(buf, cap, ">99.9%%");
    else if (pct >= 1.0)
        snprintf(buf, cap, "%.1f%%", pct);
    else if (pct >= 0.01)
        snprintf(buf, cap, "%.2f%%", pct);
    else if (pct >= 0.0001)
        snprintf(buf, cap, "%.4f%%", pct);
    else
        snprintf(buf, cap, "<0.0001%%");
    return buf;
}

char *tcb_fmt_ns(double ns, char *buf, size_t cap) {
    if (ns < 1e3)
        snprintf(buf, cap, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, cap, "%.1f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, cap, "%.2f ms", ns / 1e6);
    else
        snprintf(buf, cap, "%.2f s", ns / 1e9);
    return buf;
}
