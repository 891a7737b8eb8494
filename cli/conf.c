/*
 * conf.c - building the configuration, reaching Redis, and saying why not.
 *
 * The tool configures itself exactly as an application does: tc_config_init, then
 * tc_config_from_env (TIERCACHE_* variables, strict: a misspelt variable is an error, not
 * silently ignored), then the command line on top. So `tiercache-cli` run in a service's
 * environment talks to the same Redis, prefix and channel as the service, and the same
 * validation (tc__config_validate, what tc_open runs) refuses the same mistakes, also for
 * the commands that never open a cache (watch, inspect).
 *
 * Two settings differ from an application's, because a command-line tool is not one:
 * Redis is required (a CLI that "succeeds" against an L1 of its own would lie), and the
 * pool holds one connection unless TIERCACHE_POOL_SIZE says otherwise.
 *
 * Every message names Redis by its masked URL: the password of a URL never reaches a
 * terminal or a log, as the library promises for its own messages.
 */
#include "conf.h"

#include "config.h" /* tc__config_validate, tc__endpoint_parse */
#include "conn.h"   /* tc__conn_open: connect, timeouts, AUTH, SELECT */
#include "opts.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- masking ---- */

static void mask_query(const char *url, char *out, size_t cap);

/* The password of redis://user:secret@host, or the whole userinfo of redis://secret@host,
 * becomes three stars; redis+sentinel:// too. The last '@' ends the userinfo, as in the
 * library's parser (a password may hold '@'), except one in a Sentinel URL's query. */
static int mask_userinfo(const char *url, char *out, size_t cap) {
    if (strncasecmp(url, "redis://", 8) != 0 && strncasecmp(url, "rediss://", 9) != 0 &&
        strncasecmp(url, "redis+sentinel://", 17) != 0 &&
        strncasecmp(url, "redis+cluster://", 16) != 0)
        return 0;
    const char *rest = strstr(url, "://") + 3;
    const char *query = strstr(rest, "?sentinel_");
    const char *at = memrchr(rest, '@', query ? (size_t)(query - rest) : strlen(rest));
    if (!at)
        return 0;
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    const char *keep_end = colon ? colon + 1 : rest;
    int n = snprintf(out, cap, "%.*s***", (int)(keep_end - url), url);
    if (n >= 0 && (size_t)n < cap) /* the rest, a Sentinel URL's sentinel_password= masked */
        mask_query(at, out + n, cap - (size_t)n);
    return 1;
}

/* unix:///s.sock?user=u&password=secret -> ...&password=*** (every occurrence). */
static void mask_query(const char *url, char *out, size_t cap) {
    size_t o = 0;
    const char *s = url;
    while (*s && o + 1 < cap) {
        const char *pw = strstr(s, "password=");
        if (!pw) {
            o += (size_t)snprintf(out + o, cap - o, "%s", s);
            break;
        }
        o += (size_t)snprintf(out + o, cap - o, "%.*s***", (int)(pw + 9 - s), s);
        s = pw + 9 + strcspn(pw + 9, "&");
    }
    out[o < cap ? o : cap - 1] = '\0';
}

static void mask_one(const char *url, char *out, size_t cap) {
    if (!mask_userinfo(url, out, cap))
        mask_query(url, out, cap);
}

/* A list of URLs (several servers) is masked URL by URL, joined by single spaces. */
void tcli_url_mask(const char *url, char *out, size_t cap) {
    if (cap == 0)
        return;
    out[0] = '\0';
    size_t used = 0;
    for (const char *s = url; *s && used + 1 < cap;) {
        s += strspn(s, " \t\r\n\f\v");
        size_t n = strcspn(s, " \t\r\n\f\v");
        if (n == 0)
            break;
        char one[1024], masked[1024];
        snprintf(one, sizeof one, "%.*s", (int)(n < sizeof one ? n : sizeof one - 1), s);
        mask_one(one, masked, sizeof masked);
        used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? " " : "", masked);
        s += n;
    }
    if (used >= cap)
        out[cap - 1] = '\0';
}

/* ---- errors ---- */

int tcli_exit_code(int rc) {
    switch (rc) {
    case TC_OK:
        return TCLI_EXIT_OK;
    case TC_ENOTFOUND:
        return TCLI_EXIT_NOTFOUND;
    case TC_ECONFIG:
    case TC_EKEYLEN:
        return TCLI_EXIT_USAGE;
    case TC_EUNAVAILABLE:
    case TC_ETIMEDOUT:
        return TCLI_EXIT_UNAVAILABLE;
    default:
        return TCLI_EXIT_ERROR;
    }
}

int tcli_fail_detail(int rc, const char *what, const char *detail) {
    fprintf(stderr, "tiercache-cli: %s: %s: %s\n", what, tc_err_name(rc),
            detail && *detail ? detail : tc_strerror(rc));
    return tcli_exit_code(rc);
}

int tcli_fail(int rc, const char *what) {
    tc_error_t e;
    /* The record is per thread and kept across successes: use it only when it is about
     * this failure. */
    if (tc_last_error(&e) && e.code == rc)
        return tcli_fail_detail(rc, what, e.msg);
    return tcli_fail_detail(rc, what, NULL);
}

/* ---- configuration ---- */

static int config_error(const char *msg) {
    fprintf(stderr, "tiercache-cli: configuration: %s\n", msg);
    return TCLI_EXIT_USAGE;
}

static int apply_options(const tcli_opts_t *o, tc_config_t *cfg) {
    if (o->url)
        cfg->redis_url = o->url;
    if (o->prefix)
        cfg->key_prefix = o->prefix;
    if (o->channel)
        cfg->inval_channel = o->channel;
    if (o->has_timeout) {
        if (o->timeout_ms == 0 || o->timeout_ms > UINT32_MAX)
            return tcli_usage_error(o->cmd, "--timeout must be 1ms..%lums",
                                    (unsigned long)UINT32_MAX);
        cfg->command_timeout_ms = (uint32_t)o->timeout_ms;
    }
    return TCLI_EXIT_OK;
}

int tcli_conf_load(const tcli_opts_t *o, tcli_conf_t *c) {
    tc_error_t err = {0};
    tc_config_init(&c->cfg);
    c->cfg.pool_size = 1;
    if (tc_config_from_env(&c->cfg, NULL, &err) != 0)
        return config_error(err.msg);
    int rc = apply_options(o, &c->cfg);
    if (rc != TCLI_EXIT_OK)
        return rc;
    c->cfg.require_redis = 1;
    if (!c->cfg.redis_url || !*c->cfg.redis_url)
        return tcli_usage_error(o->cmd, "no Redis URL: pass -u URL or set TIERCACHE_REDIS_URL");
    tcli_url_mask(c->cfg.redis_url, c->url_shown, sizeof c->url_shown);
    if (tc__config_validate(&c->cfg, &err) != 0)
        return config_error(err.msg);
    return TCLI_EXIT_OK;
}

/* ---- reaching Redis ---- */

int tcli_cache_open(const tcli_conf_t *c, tc_cache_t **out) {
    tc_error_t err = {0};
    int rc = tc_open(&c->cfg, out, &err);
    if (rc == TC_OK)
        return TCLI_EXIT_OK;
    char what[600];
    snprintf(what, sizeof what, "cannot open a cache on %s", c->url_shown);
    return tcli_fail_detail(rc, what, err.msg);
}

int tcli_raw_open(const tcli_conf_t *c, redisContext **out) {
    tc__endpoint_t ep;
    tc_error_t err = {0};
    char what[600];
    int rc = tc__endpoint_parse(c->cfg.redis_url, &ep, &err);
    if (rc != TC_OK)
        return config_error(err.msg);
    rc = tc__conn_open(&ep, c->cfg.connect_timeout_ms, c->cfg.command_timeout_ms, out, &err);
    tc__endpoint_deinit(&ep);
    if (rc == TC_OK)
        return TCLI_EXIT_OK;
    snprintf(what, sizeof what, "cannot connect to %s", c->url_shown);
    return tcli_fail_detail(rc, what, err.msg);
}
