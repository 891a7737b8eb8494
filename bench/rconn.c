/*
 * rconn.c - URL parsing, connecting and prefix cleanup on raw hiredis.
 *
 * Cleanup deletes only keys under the run's own prefix ("tcbench:<pid>:..."), found with
 * SCAN (never KEYS, which blocks a shared server) and removed with UNLINK (freed in a
 * background thread). The prefix is glob-escaped before it becomes a MATCH pattern, so a
 * prefix can never widen into somebody else's keys.
 */
#include "rconn.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* The last '@' ends a redis:// userinfo (a password may hold '/', '?' or '#'), and the
 * text is built into out piece by piece, never in place. */
void tcb_url_mask(const char *url, char *out, size_t cap) {
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strrchr(scheme + 3, '@') : NULL;
    if (at) {
        const char *colon = memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
        const char *keep_end = colon ? colon + 1 : scheme + 3;
        snprintf(out, cap, "%.*s***%s", (int)(keep_end - url), url, at);
        return;
    }
    const char *pw = strstr(url, "password=");
    if (pw) {
        const char *end = strchr(pw, '&');
        snprintf(out, cap, "%.*s***%s", (int)(pw + 9 - url), url, end ? end : "");
        return;
    }
    snprintf(out, cap, "%s", url);
}

/* Errors name the URL, never its password. */
static int perr(char *err, size_t errlen, const char *msg, const char *url) {
    char shown[512];
    tcb_url_mask(url ? url : "(null)", shown, sizeof shown);
    if (err && errlen)
        snprintf(err, errlen, "--redis %s: %s", shown, msg);
    return -1;
}

/* Copy [s, s+n) into out with %XX decoding. 0 or -1. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return -1;
            char hex[3] = {s[i + 1], s[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

static int parse_int(const char *s, size_t n, int lo, int hi, int *out) {
    if (n == 0 || n > 9)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* user[:password] or :password */
static int parse_userinfo(const char *s, size_t n, tcb_endpoint_t *ep) {
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;
    if (ulen > 0) {
        if (pct_decode(s, ulen, ep->user, sizeof ep->user) != 0)
            return -1;
        ep->has_user = 1;
    }
    if (colon) {
        if (pct_decode(colon + 1, n - ulen - 1, ep->password, sizeof ep->password) != 0)
            return -1;
        ep->has_password = 1;
    } else if (ulen > 0) {
        /* "redis://secret@host" is the common password-only form. */
        strcpy(ep->password, ep->user);
        ep->user[0] = '\0';
        ep->has_user = 0;
        ep->has_password = 1;
    }
    return 0;
}

static int parse_hostport(const char *s, size_t n, tcb_endpoint_t *ep) {
    const char *port = NULL;
    size_t hlen;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return -1;
        hlen = (size_t)(close - s) - 1;
        if (hlen >= sizeof ep->host)
            return -1;
        memcpy(ep->host, s + 1, hlen);
        ep->host[hlen] = '\0';
        if ((size_t)(close - s) + 1 < n) {
            if (close[1] != ':')
                return -1;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        hlen = colon ? (size_t)(colon - s) : n;
        if (hlen >= sizeof ep->host)
            return -1;
        memcpy(ep->host, s, hlen);
        ep->host[hlen] = '\0';
        port = colon ? colon + 1 : NULL;
    }
    if (ep->host[0] == '\0')
        return -1;
    if (port && parse_int(port, (size_t)(s + n - port), 1, 65535, &ep->port) != 0)
        return -1;
    return 0;
}

static int parse_tcp(const char *url, const char *rest, tcb_endpoint_t *ep, char *err,
                     size_t errlen) {
    /* The last '@' ends the userinfo (a password may hold '/'), as in the library. */
    const char *at = strrchr(rest, '@');
    const char *hp = rest;
    if (at) {
        if (parse_userinfo(rest, (size_t)(at - rest), ep) != 0)
            return perr(err, errlen, "bad user or password", url);
        hp = at + 1;
    }
    const char *slash = strchr(hp, '/');
    size_t host_end = slash ? (size_t)(slash - hp) : strlen(hp);
    if (parse_hostport(hp, host_end, ep) != 0)
        return perr(err, errlen, "bad host or port", url);
    if (slash && slash[1] && parse_int(slash + 1, strlen(slash + 1), 0, 1 << 20, &ep->db) != 0)
        return perr(err, errlen, "bad database number", url);
    return 0;
}

static int parse_query(const char *url, const char *q, tcb_endpoint_t *ep, char *err,
                       size_t errlen) {
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        if (!eq)
            return perr(err, errlen, "bad query (expected name=value)", url);
        size_t kn = (size_t)(eq - q), vn = n - kn - 1;
        int bad;
        if (kn == 2 && memcmp(q, "db", 2) == 0) {
            bad = parse_int(eq + 1, vn, 0, 1 << 20, &ep->db);
        } else if (kn == 8 && memcmp(q, "password", 8) == 0) {
            bad = pct_decode(eq + 1, vn, ep->password, sizeof ep->password);
            ep->has_password = 1;
        } else if (kn == 4 && memcmp(q, "user", 4) == 0) {
            bad = pct_decode(eq + 1, vn, ep->user, sizeof ep->user);
            ep->has_user = 1;
        } else {
            return perr(err, errlen, "unknown query parameter (db, password, user)", url);
        }
        if (bad)
            return perr(err, errlen, "bad query value", url);
        q += n + (amp ? 1 : 0);
    }
    return 0;
}

static int parse_unix(const char *url, const char *rest, tcb_endpoint_t *ep, char *err,
                      size_t errlen) {
    const char *q = strchr(rest, '?');
    size_t n = q ? (size_t)(q - rest) : strlen(rest);
    if (n == 0 || rest[0] != '/')
        return perr(err, errlen, "expected unix:///absolute/path.sock", url);
    if (n >= sizeof ep->path)
        return perr(err, errlen, "socket path too long", url);
    memcpy(ep->path, rest, n);
    ep->path[n] = '\0';
    ep->is_unix = 1;
    return q ? parse_query(url, q + 1, ep, err, errlen) : 0;
}

int tcb_endpoint_parse(const char *url, tcb_endpoint_t *ep, char *err, size_t errlen) {
    if (!url || !ep)
        return perr(err, errlen, "missing URL", url);
    memset(ep, 0, sizeof *ep);
    ep->port = 6379;
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp(url, url + 8, ep, err, errlen);
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(url, url + 7, ep, err, errlen);
    return perr(err, errlen, "expected redis://host:port[/db] or unix:///path.sock", url);
}

static int auth_and_select(redisContext *c, const tcb_endpoint_t *ep, char *err,
                           size_t errlen) {
    if (ep->has_password) {
        int r = ep->has_user
                    ? tcb_rconn_ok(c, err, errlen, "AUTH %s %s", ep->user, ep->password)
                    : tcb_rconn_ok(c, err, errlen, "AUTH %s", ep->password);
        if (r != 0)
            return -1;
    }
    if (ep->db > 0 && tcb_rconn_ok(c, err, errlen, "SELECT %d", ep->db) != 0)
        return -1;
    return 0;
}

redisContext *tcb_rconn_open(const tcb_endpoint_t *ep, int timeout_ms, char *err,
                             size_t errlen) {
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = ep->is_unix ? redisConnectUnixWithTimeout(ep->path, tv)
                                  : redisConnectWithTimeout(ep->host, ep->port, tv);
    if (!c || c->err) {
        const char *why = c ? c->errstr : "out of memory";
        if (err && errlen && ep->is_unix)
            snprintf(err, errlen, "cannot connect to Redis at %s: %s", ep->path, why);
        else if (err && errlen)
            snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", ep->host, ep->port,
                     why);
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (auth_and_select(c, ep, err, errlen) != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

int tcb_rconn_ok(redisContext *c, char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    int rc = 0;
    if (!r) {
        if (err && errlen)
            snprintf(err, errlen, "Redis: %s", c->errstr);
        rc = -1;
    } else if (r->type == REDIS_REPLY_ERROR) {
        if (err && errlen)
            snprintf(err, errlen, "Redis: %s", r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* prefix with * ? [ ] \ escaped, then "*". */
static void glob_pattern(const char *prefix, char *out, size_t cap) {
    size_t o = 0;
    for (const char *p = prefix; *p && o + 3 < cap; p++) {
        if (strchr("*?[]\\", *p))
            out[o++] = '\\';
        out[o++] = *p;
    }
    out[o++] = '*';
    out[o] = '\0';
}

/* UNLINK the keys of one SCAN page. Returns how many were deleted, or -1. */
static long long unlink_page(redisContext *c, const redisReply *keys) {
    if (keys->elements == 0)
        return 0;
    size_t n = keys->elements + 1;
    const char **argv = malloc(n * sizeof *argv);
    size_t *lens = malloc(n * sizeof *lens);
    long long deleted = -1;
    if (argv && lens) {
        argv[0] = "UNLINK";
        lens[0] = 6;
        for (size_t i = 0; i < keys->elements; i++) {
            argv[i + 1] = keys->element[i]->str;
            lens[i + 1] = keys->element[i]->len;
        }
        redisReply *r = redisCommandArgv(c, (int)n, argv, lens);
        if (r && r->type == REDIS_REPLY_INTEGER)
            deleted = r->integer;
        freeReplyObject(r);
    }
    free(argv);
    free(lens);
    return deleted;
}

long long tcb_rconn_purge(redisContext *c, const char *prefix) {
    if (!c || !prefix || !*prefix)
        return -1;
    char pattern[512];
    glob_pattern(prefix, pattern, sizeof pattern);
    char cursor[32] = "0";
    long long total = 0;
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        long long d = unlink_page(c, r->element[1]);
        freeReplyObject(r);
        if (d < 0)
            return -1;
        total += d;
    } while (strcmp(cursor, "0") != 0);
    return total;
}
