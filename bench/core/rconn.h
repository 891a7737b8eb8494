/*
 * rconn.h - raw hiredis connections for the parts of the bench that bypass tiercache:
 * the redis-only mode, preloading, INFO snapshots and cleanup.
 *
 * URLs are read by the library's own parser (tc__endpoint_parse), so one --redis value
 * drives both modes and means the same in each: redis://[user:password@]host[:port][/db]
 * (also :password@ alone, IPv6 as [::1], %-escapes in the credentials) and
 * unix:///path.sock[?db=N&password=P&user=U]. A user needs a password (AUTH needs both).
 */
#ifndef TCB_RCONN_H
#define TCB_RCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>

typedef struct tcb_endpoint {
    int is_unix;
    char host[256];
    int port;
    char path[256];
    char user[128];
    char password[256];
    int has_user, has_password;
    int db;
} tcb_endpoint_t;

/* 0, or -1 with a message in err ("--redis <URL, password masked>: <the library's reason>"). */
int tcb_endpoint_parse(const char *url, tcb_endpoint_t *ep, char *err, size_t errlen);
/* url for display with the credentials masked: the userinfo's password (or a bare
 * userinfo) and a password= query value become three stars. */
void tcb_url_mask(const char *url, char *out, size_t cap);

/* Connect (timeout in ms for connect and for every command), AUTH, SELECT. Returns a
 * context or NULL with a message in err. */
redisContext *tcb_rconn_open(const tcb_endpoint_t *ep, int timeout_ms, char *err,
                             size_t errlen);

/* Run a command and check the reply type; frees the reply. 0 or -1 (message in err). */
int tcb_rconn_ok(redisContext *c, char *err, size_t errlen, const char *fmt, ...);

/* Delete every key matching prefix* (SCAN + UNLINK, glob characters in prefix escaped).
 * Returns the number of keys deleted, or -1 on error. */
long long tcb_rconn_purge(redisContext *c, const char *prefix);

#endif
