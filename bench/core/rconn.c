/*
 * rconn.c - the --redis URL, connecting and prefix cleanup on raw hiredis.
 *
 * The URL is parsed by the library's own parser (src/endpoint.h: tc__endpoint_parse, the
 * code behind tc_config_t.redis_url), so the raw connections and the caches accept exactly
 * the same URLs; this file only copies the result into the bench's plain struct and puts
 * the bench's "--redis <URL, password masked>: " before the library's message.
 *
 * Cleanup deletes only keys under the run's own prefix ("tcbench:<pid>:..."), found with
 * SCAN (never KEYS, which blocks a shared server) and removed with UNLINK (freed in a
 * background thread). The prefix is glob-escaped before it becomes a MATCH pattern, so a
 * prefix can never widen into somebody else's keys.
 */
#include "rconn.h"

#include "endpoint.h" /* src/endpoint.h: the library's Redis URL parser */

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

/* s into out (cap bytes), or -1 when it does not fit. NULL is "". */
static int copy_field(char *out, size_t cap, const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n >= cap)
        return -1;
    memcpy(out, s ? s : "", n + 1);
    return 0;
}

/* The library's endpoint, as the bench keeps it: plain arrays, so a tcb_endpoint_t is
 * copied by value and never freed. */
static int copy_endpoint(const tc__endpoint_t *lib, tcb_endpoint_t *ep) {
    ep->is_unix = lib->is_unix;
    ep->port = lib->port;
    ep->db = lib->db;
    ep->has_user = lib->user != NULL;
    ep->has_password = lib->password != NULL;
    if (copy_field(ep->host, sizeof ep->host, lib->host) != 0 ||
        copy_field(ep->path, sizeof ep->path, lib->path) != 0)
        return -1; /* unreachable: the library caps both below the arrays */
    if (copy_field(ep->user, sizeof ep->user, lib->user) != 0 ||
        copy_field(ep->password, sizeof ep->password, lib->password) != 0)
        return -1;
    return 0;
}

int tcb_endpoint_parse(const char *url, tcb_endpoint_t *ep, char *err, size_t errlen) {
    static const char lib_prefix[] = "redis_url: ";
    if (!ep)
        return perr(err, errlen, "missing endpoint", url);
    memset(ep, 0, sizeof *ep);
    tc__endpoint_t lib;
    tc_error_t e;
    if (tc__endpoint_parse(url, &lib, &e) != 0) {
        /* The library's message, which never quotes a credential, after the bench's own
         * "--redis <masked URL>: " instead of its "redis_url: ". */
        const char *msg = e.msg;
        if (strncmp(msg, lib_prefix, sizeof lib_prefix - 1) == 0)
            msg += sizeof lib_prefix - 1;
        return perr(err, errlen, msg, url);
    }
    int rc = copy_endpoint(&lib, ep);
    tc__endpoint_deinit(&lib);
    if (rc != 0) {
        memset(ep, 0, sizeof *ep);
        return perr(err, errlen,
                    "user or password too long for the bench (user 127, "
                    "password 255 bytes at most)",
                    url);
    }
    return 0;
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
