/*
 * endpoint.h - a parsed Redis URL (endpoint.c).
 */
#ifndef TC_ENDPOINT_H
#define TC_ENDPOINT_H

#include "tiercache.h"

/* A parsed redis_url. Strings are owned (heap) and freed by tc__endpoint_deinit. */
typedef struct tc__endpoint {
    int is_unix;    /* 1: unix socket at `path`; 0: TCP host:port */
    char *host;     /* TCP host (IPv6 literal without brackets); NULL for unix */
    int port;       /* TCP port, default 6379 */
    char *path;     /* unix socket path; NULL for TCP */
    char *user;     /* ACL user or NULL (then AUTH password only) */
    char *password; /* NULL: no AUTH */
    int db;         /* SELECT db when > 0; default 0 */
    /* redis+sentinel://: the master is found through these sentinels ("host:port,...")
     * under master_name each time a connection opens (conn.c); host is then NULL. */
    char *sentinels;
    char *master_name;
    /* ?sentinel_password=P[&sentinel_user=U]: the sentinels' own AUTH (their requirepass
     * or ACL user), which is not the master's; NULL: sentinels without auth. */
    char *sentinel_user, *sentinel_password;
    /* redis+cluster://: "host:port,..." of the seed nodes (cluster.c reads the slot map
     * from them); host is then NULL, and every node takes user and password. */
    char *cluster_seeds;
    /* ?read_from=replicas: single-key reads go to a replica of the key's master (READONLY),
     * and L1 keeps what a replica answered at most cluster_replica_keep_ms
     * (?replica_keep_ms=N, default TC__REPLICA_KEEP_MS). */
    int cluster_replica_reads;
    uint32_t cluster_replica_keep_ms;
} tc__endpoint_t;

#define TC__REPLICA_KEEP_MS 1000u

/*
 * Parse redis://[user[:password]@]host[:port][/db] (also [:password@], IPv6 as [::1],
 * percent-escapes in user and password), unix:///abs/path.sock[?db=N&password=P&user=U]
 * and redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master-name[/db]
 * [?sentinel_password=P[&sentinel_user=U]] (sentinels' port 26379 by default; the
 * userinfo credentials are the master's, the query's the sentinels') and
 * redis+cluster://[user[:password]@]host[:port][,host[:port]...][?read_from=replicas
 * [&replica_keep_ms=N]] (port 6379 by default).
 * Returns 0 or TC_ECONFIG with a message that starts "redis_url: ".
 */
int tc__endpoint_parse(const char *url, tc__endpoint_t *ep, tc_error_t *err);
void tc__endpoint_deinit(tc__endpoint_t *ep);
/* "host:port" as servers report it (CLUSTER SLOTS peers, MOVED, Sentinel lists): split at
 * the LAST ':' (an IPv6 address has several), host non-empty and shorter than host_cap,
 * port 1..65535. 0 with host and *port set, or -1. */
int tc__endpoint_split_hostport(const char *s, char *host, size_t host_cap, int *port);

/* ---- several servers (a ring, ring_cache.c) ----
 * A redis_url may list up to TC__MAX_RING_NODES URLs separated by spaces (or any ASCII
 * whitespace). */
#define TC__MAX_RING_NODES 64u
/* 1 when s holds two or more URLs, each starting with a scheme (else s is one URL). */
int tc__endpoint_is_list(const char *s);
/* Split s into its URLs (a malloc'd array of malloc'd strings, for
 * tc__endpoint_list_free), each parsed to check it. 0; TC_ECONFIG ("redis_url: ...": no
 * URL, more than TC__MAX_RING_NODES, a URL that does not parse, or one server listed twice,
 * which tc__endpoint_name compares); TC_ENOMEM. */
int tc__endpoint_list(const char *s, char ***urls, size_t *n, tc_error_t *err);
void tc__endpoint_list_free(char **urls, size_t n);
/* A server's identity on a ring: "host:port/db", "unix:path/db" or
 * "sentinel:name/db@h:p,h:p" (the sentinels sorted); no credentials (a new password must
 * not move keys). Truncated to cap (ring.h: TC__RING_NAME_MAX). */
void tc__endpoint_name(const tc__endpoint_t *ep, char *out, size_t cap);

#endif
