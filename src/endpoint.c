/*
 * endpoint.c - the Redis URL: redis://[user[:password]@]host[:port][/db] and
 * unix:///path.sock[?db=N&password=P&user=U] turned into what hiredis 0.14 needs (it has no
 * URL parser of its own and no redisOptions), redis+sentinel://, whose master is looked
 * up when a connection opens (conn.c, sentinel.c), and redis+cluster://, a cluster's seed
 * nodes (cluster.c reads the slot map from them) and where its reads may go.
 *
 * Invariants: every error goes through tc__fail() with a message that starts "redis_url: "
 * and never quotes the credentials (the userinfo of redis:// ends at its LAST '@', so a
 * password with an unescaped '/', '?' or '#' is still a password, never a host or port); an
 * endpoint is either fully parsed or deinit'ed (all pointers NULL, nothing leaked).
 */
#include "endpoint.h"

#include "errors.h"
#include "ring.h"
#include "units.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#define TC__MAX_DB 65535

/* ---- Redis URL ---- */

#define URL_FAIL(...) tc__fail(err, TC_ECONFIG, "redis_url: " __VA_ARGS__)
#define URL_OOM()     tc__fail(err, TC_ENOMEM, "redis_url: out of memory")

static int hexval(int c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) into a new string in *out (NULL when n == 0). */
static int pct_decode(const char *s, size_t n, const char *what, char **out, tc_error_t *err) {
    char *d;
    size_t j = 0;
    *out = NULL;
    if (n == 0) {
        return 0;
    }
    if (!(d = malloc(n + 1))) {
        return URL_OOM();
    }
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] != '%') {
            d[j++] = s[i];
            continue;
        }
        hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
        lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(d);
            return URL_FAIL("bad percent-escape in %s (use %%XX, not %%00)", what);
        }
        d[j++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[j] = '\0';
    *out = d;
    return 0;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* db in [0, 65535], digits only. */
static int parse_db(const char *s, size_t n, int *db, tc_error_t *err) {
    char buf[16], q[40];
    uint64_t v;
    const char *p = buf;
    if (n == 0) {
        *db = 0;
        return 0;
    }
    if (n < sizeof buf) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (tc__units_count(p, &v) == TC__NUM_OK && v <= TC__MAX_DB) {
            *db = (int)v;
            return 0;
        }
    }
    char *tmp = dup_n(s, n);
    tc__quote(q, sizeof q, tmp ? tmp : "");
    free(tmp);
    return URL_FAIL("db '%s' is not a number in 0..%d", q, TC__MAX_DB);
}

/* user[:password] -> ep->user / ep->password, percent-decoded; empty parts become NULL. */
static int parse_userinfo(const char *s, size_t n, tc__endpoint_t *ep, tc_error_t *err) {
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;
    int rc = pct_decode(s, ulen, "user", &ep->user, err);
    if (rc == 0 && colon) {
        rc = pct_decode(colon + 1, n - ulen - 1, "password", &ep->password, err);
    }
    return rc;
}

static int check_hostname(const char *h, size_t n, tc_error_t *err) {
    if (n == 0) {
        return URL_FAIL("host is empty");
    }
    if (n > 255) {
        return URL_FAIL("host is longer than 255 bytes");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == ':') {
            return URL_FAIL("an IPv6 host must be in brackets, e.g. redis://[::1]:6379");
        }
        if (!isalnum(c) && c != '-' && c != '.' && c != '_') {
            return URL_FAIL("host has an invalid character (byte 0x%02x)", c);
        }
    }
    return 0;
}

static int parse_port(const char *s, size_t n, int *port, tc_error_t *err) {
    char buf[8], q[40];
    uint64_t v;
    const char *p = buf;
    if (n > 0 && n < sizeof buf) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (tc__units_count(p, &v) == TC__NUM_OK && v >= 1 && v <= 65535) {
            *port = (int)v;
            return 0;
        }
    }
    char *tmp = dup_n(s, n);
    tc__quote(q, sizeof q, tmp ? tmp : "");
    free(tmp);
    return URL_FAIL("port '%s' is not a number in 1..65535", q);
}

/* host | [v6] followed by optional :port, within s[0..n). */
static int parse_hostport(const char *s, size_t n, tc__endpoint_t *ep, tc_error_t *err) {
    const char *h = s, *rest;
    size_t hlen;
    int rc;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        unsigned char v6[16];
        if (!close) {
            return URL_FAIL("'[' without ']' in the host");
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        rest = close + 1;
        if (!(ep->host = dup_n(h, hlen))) {
            return URL_OOM();
        }
        if (inet_pton(AF_INET6, ep->host, v6) != 1) {
            return URL_FAIL("'[...]' does not hold an IPv6 address");
        }
        if (rest < s + n && *rest != ':') {
            return URL_FAIL("unexpected text after ']' (expected :port)");
        }
    } else {
        const char *colon = memchr(s, ':', n);
        /* A second colon means an unbracketed IPv6 literal: let check_hostname say so. */
        if (colon && memchr(colon + 1, ':', n - (size_t)(colon - s) - 1)) {
            colon = NULL;
        }
        hlen = colon ? (size_t)(colon - s) : n;
        rest = s + hlen;
        if ((rc = check_hostname(h, hlen, err)) != 0) {
            return rc;
        }
        if (!(ep->host = dup_n(h, hlen))) {
            return URL_OOM();
        }
    }
    ep->port = 6379;
    if (rest < s + n) {
        return parse_port(rest + 1, (size_t)(s + n - rest - 1), &ep->port, err);
    }
    return 0;
}

static int parse_tcp(const char *s, tc__endpoint_t *ep, tc_error_t *err) {
    /* The last '@' anywhere ends the userinfo: nothing after the host may hold one, and a
     * password's unescaped '/', '?' or '#' must not turn it into a host or port (which an
     * error message would then quote). */
    const char *at = strrchr(s, '@');
    int rc;
    if (at && (rc = parse_userinfo(s, (size_t)(at - s), ep, err)) != 0) {
        return rc;
    }
    const char *hp = at ? at + 1 : s;
    size_t alen = strcspn(hp, "/?#");
    if ((rc = parse_hostport(hp, alen, ep, err)) != 0) {
        return rc;
    }
    s = hp + alen;
    size_t dblen = 0;
    if (*s == '/') {
        s++;
        dblen = strcspn(s, "?#");
    }
    if (s[dblen] != '\0') {
        return URL_FAIL("redis:// takes no query or fragment (only [/db] after the host)");
    }
    return parse_db(s, dblen, &ep->db, err);
}

/* A credential a URL's query may carry: its name, and where its decoded value goes. */
typedef struct url_param {
    const char *name;
    char **slot;
} url_param_t;

/* One key=value of a query: db (when db is not NULL) or one of params, percent-decoded
 * into its slot. accepted lists the names for the message refusing any other. */
static int query_param(const char *s, size_t n, int *db, const url_param_t *params,
                       size_t count, const char *accepted, tc_error_t *err) {
    const char *eq = memchr(s, '=', n);
    if (!eq || eq == s) {
        return URL_FAIL("query parameter without key=value");
    }
    size_t klen = (size_t)(eq - s), vlen = n - klen - 1;
    if (db && klen == 2 && memcmp(s, "db", 2) == 0) {
        return vlen ? parse_db(eq + 1, vlen, db, err) : URL_FAIL("db= is empty");
    }
    const url_param_t *p = NULL;
    for (size_t i = 0; i < count && !p; i++) {
        if (strlen(params[i].name) == klen && memcmp(s, params[i].name, klen) == 0) {
            p = &params[i];
        }
    }
    if (!p) {
        return URL_FAIL("unknown query parameter (accepted: %s)", accepted);
    }
    if (*p->slot) {
        return URL_FAIL("query parameter given twice");
    }
    if (vlen == 0) {
        return URL_FAIL("query parameter '%.*s' is empty", (int)klen, s);
    }
    return pct_decode(eq + 1, vlen, p->name, p->slot, err);
}

/* One key=value of the unix:// query. */
static int unix_param(const char *s, size_t n, tc__endpoint_t *ep, tc_error_t *err) {
    const url_param_t params[] = {{"password", &ep->password}, {"user", &ep->user}};
    return query_param(s, n, &ep->db, params, 2, "db, password, user", err);
}

static int parse_unix(const char *s, tc__endpoint_t *ep, tc_error_t *err) {
    const struct sockaddr_un *ua = NULL;
    size_t plen = strcspn(s, "?");
    int rc;
    if (s[0] != '/') {
        return URL_FAIL("unix socket path must be absolute (unix:///path/to.sock)");
    }
    if (plen >= sizeof ua->sun_path) {
        return URL_FAIL("unix socket path is %zu bytes; the limit is %zu", plen,
                        sizeof ua->sun_path - 1);
    }
    ep->is_unix = 1;
    ep->port = 0;
    if (!(ep->path = dup_n(s, plen))) {
        return URL_OOM();
    }
    for (s += plen; *s; s += strcspn(s, "&")) {
        s++; /* skip '?' or '&' */
        if ((rc = unix_param(s, strcspn(s, "&"), ep, err)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* redis+sentinel://'s query: the sentinels' own credentials. */
static int sentinel_param(const char *s, size_t n, tc__endpoint_t *ep, tc_error_t *err) {
    const url_param_t params[] = {{"sentinel_password", &ep->sentinel_password},
                                  {"sentinel_user", &ep->sentinel_user}};
    return query_param(s, n, NULL, params, 2, "sentinel_password, sentinel_user", err);
}

/* "h[:p],h[:p]..." (llen bytes at list): each address checked as a redis:// host would be,
 * and kept in *out as "host:port" (IPv6 without brackets; default_port when none). */
static int parse_host_list(const char *list, size_t llen, int default_port, const char *what,
                           char **out, tc_error_t *err) {
    size_t cap = 2 * llen + 64, used = 0;
    if (!(*out = malloc(cap))) {
        return URL_OOM();
    }
    (*out)[0] = '\0';
    for (const char *item = list; item < list + llen;) {
        size_t n = strcspn(item, ",");
        if (item + n > list + llen) {
            n = (size_t)(list + llen - item);
        }
        if (n == 0) {
            return URL_FAIL("an empty %s address in the list", what);
        }
        int has_port =
            item[0] == '[' ? memmem(item, n, "]:", 2) != NULL : memchr(item, ':', n) != NULL;
        tc__endpoint_t one;
        memset(&one, 0, sizeof one);
        int rc = parse_hostport(item, n, &one, err);
        if (rc == 0 && used + strlen(one.host) + 16 > cap) {
            rc = URL_FAIL("the %s list is malformed", what);
        }
        if (rc == 0) {
            used += (size_t)snprintf(*out + used, cap - used, "%s%s:%d", used ? "," : "",
                                     one.host, has_port ? one.port : default_port);
        }
        free(one.host);
        if (rc != 0) {
            return rc;
        }
        item += n + (item[n] == ',');
    }
    return 0;
}

/* redis+sentinel://[userinfo@]h[:p][,h[:p]...]/master-name[/db]. */
static int parse_sentinel(const char *s, tc__endpoint_t *ep, tc_error_t *err) {
    /* The last '@' ends the userinfo (a password may hold '@', '?' or '/'), but not one
     * of the query's sentinel credentials. */
    const char *query = strstr(s, "?sentinel_");
    const char *at = memrchr(s, '@', query ? (size_t)(query - s) : strlen(s));
    int rc;
    if (at && (rc = parse_userinfo(s, (size_t)(at - s), ep, err)) != 0) {
        return rc;
    }
    const char *list = at ? at + 1 : s;
    size_t llen = strcspn(list, "/?#");
    if (list[llen] != '/') {
        return URL_FAIL("redis+sentinel:// needs /master-name after the sentinels");
    }
    if ((rc = parse_host_list(list, llen, 26379, "sentinel", &ep->sentinels, err)) != 0) {
        return rc;
    }
    const char *name = list + llen + 1;
    size_t nlen = strcspn(name, "/?#");
    if (nlen == 0 || nlen > 256) {
        return URL_FAIL("redis+sentinel:// master name is empty or longer than 256 bytes");
    }
    if (!(ep->master_name = dup_n(name, nlen))) {
        return URL_OOM();
    }
    s = name + nlen;
    size_t dblen = 0;
    if (*s == '/') {
        s++;
        dblen = strcspn(s, "?#");
    }
    if (s[dblen] == '#') {
        return URL_FAIL("redis+sentinel:// takes no fragment");
    }
    ep->port = 0;
    if ((rc = parse_db(s, dblen, &ep->db, err)) != 0) {
        return rc;
    }
    for (s += dblen; *s; s += strcspn(s, "&")) {
        s++; /* skip '?' or '&' */
        if ((rc = sentinel_param(s, strcspn(s, "&"), ep, err)) != 0) {
            return rc;
        }
    }
    if (ep->sentinel_user && !ep->sentinel_password) {
        return URL_FAIL("sentinel_user given without sentinel_password (AUTH needs both)");
    }
    return 0;
}

/* redis+cluster://'s query: where reads go, and how long L1 keeps a replica's answer. */
static int cluster_query(const char *q, tc__endpoint_t *ep, tc_error_t *err) {
    char *read_from = NULL, *keep = NULL;
    const url_param_t params[] = {{"read_from", &read_from}, {"replica_keep_ms", &keep}};
    int rc = 0;
    for (const char *s = q; *s && rc == 0; s += strcspn(s, "&")) {
        s++; /* skip '?' or '&' */
        rc =
            query_param(s, strcspn(s, "&"), NULL, params, 2, "read_from, replica_keep_ms", err);
    }
    if (rc == 0 && read_from && strcmp(read_from, "replicas") != 0 &&
        strcmp(read_from, "master") != 0) {
        rc = URL_FAIL("read_from: '%.32s' is not master or replicas", read_from);
    }
    ep->cluster_replica_reads = rc == 0 && read_from && strcmp(read_from, "replicas") == 0;
    ep->cluster_replica_keep_ms = TC__REPLICA_KEEP_MS;
    if (rc == 0 && keep) {
        char *end = NULL;
        unsigned long v = strtoul(keep, &end, 10);
        if (!isdigit((unsigned char)keep[0]) || *end || v < 1 || v > 3600000) {
            rc = URL_FAIL("replica_keep_ms: '%.32s' is not a number of ms in 1..3600000", keep);
        } else {
            ep->cluster_replica_keep_ms = (uint32_t)v;
        }
    }
    free(read_from);
    free(keep);
    return rc;
}

/* redis+cluster://[userinfo@]h[:p][,h[:p]...][/][?read_from=replicas[&replica_keep_ms=N]]:
 * the seed nodes the slot map is first read from (any node of the cluster will do; list
 * several, for the day one is down). A cluster has database 0 only. */
static int parse_cluster(const char *s, tc__endpoint_t *ep, tc_error_t *err) {
    const char *query = strchr(s, '?');
    const char *at = memrchr(s, '@', query ? (size_t)(query - s) : strlen(s));
    int rc;
    if (at && (rc = parse_userinfo(s, (size_t)(at - s), ep, err)) != 0) {
        return rc;
    }
    const char *list = at ? at + 1 : s;
    size_t llen = strcspn(list, "/?#");
    if (llen == 0) {
        return URL_FAIL("redis+cluster:// needs at least one host[:port]");
    }
    const char *rest = list + llen;
    if (*rest == '/') {
        rest++;
    }
    if (*rest && *rest != '?') {
        return URL_FAIL("redis+cluster:// takes no database or fragment after the nodes (a "
                        "cluster has database 0 only)");
    }
    if ((rc = parse_host_list(list, llen, 6379, "cluster node", &ep->cluster_seeds, err)) !=
        0) {
        return rc;
    }
    ep->port = 0;
    return cluster_query(rest, ep, err);
}

static int has_prefix(const char *s, const char *p) {
    return strncasecmp(s, p, strlen(p)) == 0;
}

static int is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static int parse_url(const char *url, tc__endpoint_t *ep, tc_error_t *err);

/* Whitespace around the URL (an environment value with its newline) is not part of it. */
int tc__endpoint_parse(const char *url, tc__endpoint_t *ep, tc_error_t *err) {
    size_t len = url ? strlen(url) : 0, from = 0;
    while (from < len && is_space(url[from]))
        from++;
    while (len > from && is_space(url[len - 1]))
        len--;
    if (!url || (from == 0 && url[len] == '\0'))
        return parse_url(url, ep, err);
    char *trimmed = strndup(url + from, len - from);
    if (!trimmed)
        return tc__fail(err, TC_ENOMEM, "redis_url: out of memory");
    int rc = parse_url(trimmed, ep, err);
    free(trimmed);
    return rc;
}

static int parse_url(const char *url, tc__endpoint_t *ep, tc_error_t *err) {
    int rc;
    if (!ep) {
        return tc__fail(err, TC_EINVAL, "redis_url: no endpoint to fill");
    }
    memset(ep, 0, sizeof *ep);
    if (!url || !*url) {
        return URL_FAIL("is empty (leave redis_url NULL for L1-only)");
    }
    if (has_prefix(url, "redis://")) {
        rc = parse_tcp(url + 8, ep, err);
    } else if (has_prefix(url, "redis+sentinel://")) {
        rc = parse_sentinel(url + 17, ep, err);
    } else if (has_prefix(url, "redis+cluster://")) {
        rc = parse_cluster(url + 16, ep, err);
    } else if (has_prefix(url, "unix://")) {
        rc = parse_unix(url + 7, ep, err);
    } else if (has_prefix(url, "rediss://")) {
        rc = URL_FAIL("rediss:// (TLS) is not supported by hiredis 0.14; use redis:// "
                      "or unix://");
    } else {
        rc = URL_FAIL("unknown scheme; use redis://[user:password@]host[:port][/db], "
                      "unix:///path.sock[?db=N&password=P&user=U] or "
                      "redis+sentinel://host:port[,host:port...]/master-name or "
                      "redis+cluster://host:port[,host:port...]");
    }
    if (rc == 0 && ep->user && !ep->password) {
        rc = URL_FAIL("user given without a password (AUTH needs both)");
    }
    if (rc != 0) {
        tc__endpoint_deinit(ep);
    }
    return rc;
}

void tc__endpoint_deinit(tc__endpoint_t *ep) {
    if (!ep) {
        return;
    }
    free(ep->host);
    free(ep->path);
    free(ep->user);
    free(ep->password);
    free(ep->sentinels);
    free(ep->master_name);
    free(ep->sentinel_user);
    free(ep->sentinel_password);
    free(ep->cluster_seeds);
    memset(ep, 0, sizeof *ep);
}

int tc__endpoint_split_hostport(const char *s, char *host, size_t host_cap, int *port) {
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || colon == s || (size_t)(colon - s) >= host_cap) {
        return -1;
    }
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || !isdigit((unsigned char)colon[1]) || p < 1 ||
        p > 65535) {
        return -1;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)p;
    return 0;
}

/* ---- several servers ---- */

/* The next URL of s from *at: its start and length (0 at the end). */
static size_t next_url(const char *s, size_t *at, const char **start) {
    while (s[*at] && is_space(s[*at]))
        (*at)++;
    *start = s + *at;
    size_t len = 0;
    while (s[*at] && !is_space(s[*at])) {
        (*at)++;
        len++;
    }
    return len;
}

/* A token that starts like a URL tiercache knows (or refuses by name). */
static int has_scheme(const char *s, size_t len) {
    static const char *const schemes[] = {"redis://", "redis+sentinel://", "redis+cluster://",
                                          "unix://", "rediss://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t sl = strlen(schemes[i]);
        if (len >= sl && strncasecmp(s, schemes[i], sl) == 0)
            return 1;
    }
    return 0;
}

/* Two or more tokens, each with a scheme: a string with a space inside one URL (a
 * password "a b", percent-decoding copies it) stays one URL, as before lists existed, and
 * its pieces are never quoted in a message. */
int tc__endpoint_is_list(const char *s) {
    if (!s)
        return 0;
    size_t at = 0, urls = 0, len;
    const char *start;
    while ((len = next_url(s, &at, &start)) > 0) {
        if (!has_scheme(start, len))
            return 0;
        urls++;
    }
    return urls > 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "h1:p1,h2:p2" with the addresses (sentinels, cluster seeds) sorted, so every process names
 * a group alike whatever order it lists them in. Truncated to cap; the unsorted list when out
 * of memory. */
static void sorted_sentinels(const char *list, char *out, size_t cap) {
    char *copy = strdup(list);
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    char **parts = copy ? malloc(n * sizeof *parts) : NULL;
    if (!parts) {
        free(copy);
        snprintf(out, cap, "%s", list);
        return;
    }
    n = 0;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        parts[n++] = t;
    qsort(parts, n, sizeof *parts, cmp_str);
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && at < cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? "," : "", parts[i]);
    free(parts);
    free(copy);
}

void tc__endpoint_name(const tc__endpoint_t *ep, char *out, size_t cap) {
    if (ep->master_name) { /* one master name (often "mymaster") in several groups */
        char group[TC__RING_NAME_MAX];
        sorted_sentinels(ep->sentinels, group, sizeof group);
        /* The master first: a cut-off name (a log prefix) still tells masters apart. */
        snprintf(out, cap, "sentinel:%s/%d@%s", ep->master_name, ep->db, group);
    } else if (ep->cluster_seeds) {
        char seeds[TC__RING_NAME_MAX];
        sorted_sentinels(ep->cluster_seeds, seeds, sizeof seeds);
        snprintf(out, cap, "cluster:%s", seeds);
    } else if (ep->is_unix)
        snprintf(out, cap, "unix:%s/%d", ep->path, ep->db);
    else
        snprintf(out, cap, "%s:%d/%d", ep->host, ep->port, ep->db);
}

void tc__endpoint_list_free(char **urls, size_t n) {
    for (size_t i = 0; urls && i < n; i++)
        free(urls[i]);
    free(urls);
}

int tc__endpoint_list(const char *s, char ***out, size_t *count, tc_error_t *err) {
    *out = NULL;
    *count = 0;
    char **urls = calloc(TC__MAX_RING_NODES, sizeof *urls);
    char(*names)[TC__RING_NAME_MAX] = calloc(TC__MAX_RING_NODES, sizeof *names);
    if (!urls || !names) {
        free(urls);
        free(names);
        return tc__fail(err, TC_ENOMEM, "redis_url: out of memory");
    }
    size_t n = 0, at = 0, len;
    const char *start;
    int rc = TC_OK;
    while (rc == TC_OK && (len = next_url(s ? s : "", &at, &start)) > 0) {
        if (n == TC__MAX_RING_NODES) {
            rc = tc__fail(err, TC_ECONFIG, "redis_url: more than %u servers listed",
                          TC__MAX_RING_NODES);
            break;
        }
        if (!(urls[n] = strndup(start, len))) {
            rc = tc__fail(err, TC_ENOMEM, "redis_url: out of memory");
            break;
        }
        tc__endpoint_t ep;
        tc_error_t why = {0};
        if (tc__endpoint_parse(urls[n], &ep, &why) != TC_OK) {
            /* why.msg starts "redis_url: " too: say which server instead */
            const char *detail = strncmp(why.msg, "redis_url: ", 11) ? why.msg : why.msg + 11;
            rc = tc__fail(err, TC_ECONFIG, "redis_url: server %zu of the list: %s", n + 1,
                          detail);
            n++;
            break;
        }
        tc__endpoint_name(&ep, names[n], sizeof names[n]);
        int is_cluster = ep.cluster_seeds != NULL;
        tc__endpoint_deinit(&ep);
        if (is_cluster) {
            rc = tc__fail(err, TC_ECONFIG,
                          "redis_url: server %zu of the list is a redis+cluster:// URL: a "
                          "cluster spreads keys itself, give it alone",
                          n + 1);
            n++;
            break;
        }
        for (size_t j = 0; j < n && rc == TC_OK; j++)
            if (strcmp(names[j], names[n]) == 0)
                rc = tc__fail(err, TC_ECONFIG,
                              "redis_url: servers %zu and %zu are the same server (%s)", j + 1,
                              n + 1, names[n]);
        n++;
    }
    free(names);
    if (rc == TC_OK && n == 0)
        rc = tc__fail(err, TC_ECONFIG, "redis_url: no URL");
    if (rc != TC_OK) {
        tc__endpoint_list_free(urls, n);
        return rc;
    }
    *out = urls;
    *count = n;
    return TC_OK;
}
