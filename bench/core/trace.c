/*
 * trace.c - the gzip-or-text trace reader (see trace.h for the line rules).
 *
 * gzgets() hands back at most one line per call; a line longer than the buffer arrives in
 * pieces without a newline, so the reader remembers it is inside an overlong line and
 * drops the pieces until the newline, counting the whole line once as too long. Read errors
 * (a truncated or corrupt gzip stream) are told apart from end of file with gzerror().
 */
#include "trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

uint64_t tcb_trace_hash_key(const char *key, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    return h | (1ull << 63);
}

/* A plain decimal id: digits only, no leading zero (so "007" stays its own key), fits. */
static int plain_decimal(const char *s, size_t len, uint64_t *id) {
    if (len > 1 && s[0] == '0')
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *id = v;
    return 1;
}

tcb_trace_line_t tcb_trace_parse_line(const char *line, size_t len, uint64_t *id) {
    size_t b = 0, e = len;
    while (b < e && is_blank(line[b]))
        b++;
    while (e > b && is_blank(line[e - 1]))
        e--;
    if (b == e)
        return TCB_TRACE_BLANK;
    if (plain_decimal(line + b, e - b, id))
        return TCB_TRACE_ID;
    *id = tcb_trace_hash_key(line + b, e - b);
    return TCB_TRACE_HASHED;
}

typedef struct vec {
    uint64_t *a;
    size_t n, cap;
} vec_t;

static int vec_push(vec_t *v, uint64_t x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 65536;
        uint64_t *a = realloc(v->a, cap * sizeof *a);
        if (!a)
            return -1;
        v->a = a;
        v->cap = cap;
    }
    v->a[v->n++] = x;
    return 0;
}

/* Consume one gzgets() piece; returns -1 only on allocation failure. */
static int take_piece(const char *buf, int *in_long, vec_t *v, tcb_trace_stats_t *st) {
    size_t len = strlen(buf);
    int ends_line = len > 0 && buf[len - 1] == '\n';
    if (*in_long || (!ends_line && len >= TCB_TRACE_MAX_LINE - 1)) {
        /* Part of an overlong line: count it once, at its first piece. */
        if (!*in_long) {
            st->lines++;
            st->too_long++;
        }
        *in_long = !ends_line;
        return 0;
    }
    st->lines++;
    uint64_t id;
    switch (tcb_trace_parse_line(buf, len, &id)) {
    case TCB_TRACE_BLANK:
        st->blank++;
        return 0;
    case TCB_TRACE_HASHED:
        st->hashed++;
        break;
    case TCB_TRACE_ID:
        break;
    }
    st->keys++;
    return vec_push(v, id);
}

static int fail(char *err, size_t errlen, const char *path, const char *why) {
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", path, why);
    return -1;
}

int tcb_trace_load(const char *path, uint64_t **ids, size_t *n, tcb_trace_stats_t *st,
                   char *err, size_t errlen) {
    if (!path || !ids || !n || !st)
        return fail(err, errlen, path ? path : "(null)", "invalid argument");
    memset(st, 0, sizeof *st);
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return fail(err, errlen, path, errno ? strerror(errno) : "cannot open");
    gzbuffer(gz, 1 << 17);
    vec_t v = {0};
    char buf[TCB_TRACE_MAX_LINE];
    int in_long = 0, rc = 0;
    while (gzgets(gz, buf, sizeof buf)) {
        if (take_piece(buf, &in_long, &v, st) != 0) {
            rc = fail(err, errlen, path, "out of memory");
            break;
        }
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(gz, &zerr);
    if (rc == 0 && zerr != Z_OK && zerr != Z_STREAM_END)
        rc = fail(err, errlen, path, zerr == Z_ERRNO ? strerror(errno) : zmsg);
    gzclose(gz);
    if (rc == 0 && v.n == 0)
        rc = fail(err, errlen, path, "no keys (expected one key per line)");
    if (rc != 0) {
        free(v.a);
        return -1;
    }
    *ids = v.a;
    *n = v.n;
    return 0;
}

char *tcb_trace_skipped(const tcb_trace_stats_t *st, char *buf, size_t cap) {
    uint64_t skipped = st->blank + st->too_long;
    if (skipped == 0) {
        snprintf(buf, cap, "%s", "");
        return buf;
    }
    snprintf(buf, cap,
             "skipped %llu of %llu lines: %llu blank, %llu longer than %d bytes (not read "
             "as keys, not counted as requests)",
             (unsigned long long)skipped, (unsigned long long)st->lines,
             (unsigned long long)st->blank, (unsigned long long)st->too_long,
             TCB_TRACE_MAX_LINE - 2);
    return buf;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

size_t tcb_trace_distinct(const uint64_t *ids, size_t n, uint64_t **out) {
    *out = NULL;
    if (n == 0)
        return 0;
    uint64_t *a = malloc(n * sizeof *a);
    if (!a)
        return 0;
    memcpy(a, ids, n * sizeof *a);
    qsort(a, n, sizeof *a, cmp_u64);
    size_t m = 1;
    for (size_t i = 1; i < n; i++)
        if (a[i] != a[m - 1])
            a[m++] = a[i];
    uint64_t *shrunk = realloc(a, m * sizeof *a);
    *out = shrunk ? shrunk : a;
    return m;
}
