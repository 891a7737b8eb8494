/*
 * conn.c - turning a parsed endpoint into one ready, blocking hiredis connection.
 *
 * hiredis 0.14 has no connect options struct and no URL parser, so every step a ready
 * connection needs is done here in order: connect (bounded by the connect timeout), set
 * the command timeout as the socket's SO_RCVTIMEO/SO_SNDTIMEO, turn on TCP keepalive (a
 * peer that vanished without a FIN is noticed even on an idle pooled socket), AUTH, SELECT.
 * A context is handed out only after all of them succeeded; on any failure it is freed
 * here, so callers never see a half-initialised connection.
 *
 * Error mapping: hiredis reports a socket timeout as REDIS_ERR_IO with errno EAGAIN (read
 * or write timeout) or ETIMEDOUT (connect), and puts strerror() into errstr; errno may be
 * clobbered by the time the caller looks, so the errstr text is checked as well.
 */
#include "conn.h"

#include "clock.h"
#include "errors.h"
#include "sentinel.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/sds.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

static struct timeval ms_to_tv(uint32_t ms) {
    struct timeval tv = {(time_t)(ms / 1000u), (suseconds_t)(ms % 1000u) * 1000};
    return tv;
}

static int is_timeout(const redisContext *c, int saved_errno) {
    if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT)
        return 1;
    return strstr(c->errstr, "timed out") != NULL ||
           strstr(c->errstr, "Resource temporarily unavailable") != NULL;
}

int tc__conn_error_code(const redisContext *c, int saved_errno) {
    if (!c)
        return TC_EUNAVAILABLE;
    switch (c->err) {
    case REDIS_ERR_IO:
        return is_timeout(c, saved_errno) ? TC_ETIMEDOUT : TC_EUNAVAILABLE;
    case REDIS_ERR_PROTOCOL:
        return TC_EPROTO;
    case REDIS_ERR_OOM:
        return TC_ENOMEM;
    default:
        return TC_EUNAVAILABLE;
    }
}

int tc__conn_is_permission_text(const char *s, size_t len) {
    static const char *const codes[] = {"NOPERM", "NOAUTH", "WRONGPASS"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        size_t n = strlen(codes[i]);
        if (len >= n && memcmp(s, codes[i], n) == 0)
            return 1;
    }
    return 0;
}

/* ---- writing without SIGPIPE ---- */

/* Send c's output buffer. A blocking socket with SO_SNDTIMEO fails with EAGAIN on a write
 * timeout, as hiredis's own write() would. */
static int flush_nosignal(redisContext *c) {
    if (c->err)
        return REDIS_ERR;
    while (sdslen(c->obuf) > 0) {
        ssize_t n = send(c->fd, c->obuf, sdslen(c->obuf), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            c->err = REDIS_ERR_IO;
            snprintf(c->errstr, sizeof c->errstr, "%s", strerror(saved));
            errno = saved;
            return REDIS_ERR;
        }
        if ((size_t)n == sdslen(c->obuf)) { /* as hiredis does: a big write's buffer goes */
            sds empty = sdsempty();
            if (!empty) {
                c->err = REDIS_ERR_OOM;
                snprintf(c->errstr, sizeof c->errstr, "Out of memory");
                return REDIS_ERR;
            }
            sdsfree(c->obuf);
            c->obuf = empty;
        } else {
            sdsrange(c->obuf, (int)n, -1);
        }
    }
    return REDIS_OK;
}

int tc__conn_get_reply(redisContext *c, void **reply) {
    *reply = NULL;
    if (flush_nosignal(c) != REDIS_OK)
        return REDIS_ERR;
    return redisGetReply(c, reply); /* the buffer is empty: hiredis only reads */
}

redisReply *tc__conn_command_argv(redisContext *c, int argc, const char **argv,
                                  const size_t *lens) {
    if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK)
        return NULL;
    void *r = NULL;
    return tc__conn_get_reply(c, &r) == REDIS_OK ? r : NULL;
}

static redisContext *connect_raw(const tc__endpoint_t *ep, uint32_t connect_timeout_ms) {
    /* A zero timeval would make hiredis poll() for 0 ms and fail at once: 0 = no limit. */
    if (connect_timeout_ms == 0)
        return ep->is_unix ? redisConnectUnix(ep->path) : redisConnect(ep->host, ep->port);
    struct timeval tv = ms_to_tv(connect_timeout_ms);
    return ep->is_unix ? redisConnectUnixWithTimeout(ep->path, tv)
                       : redisConnectWithTimeout(ep->host, ep->port, tv);
}

/* Run one setup command; 0 when the reply is a status, else an error code and message. */
static int setup_command(redisContext *c, int argc, const char **argv, const size_t *lens,
                         const char *what, tc_error_t *err) {
    errno = 0;
    redisReply *r = tc__conn_command_argv(c, argc, argv, lens);
    if (!r) {
        int code = tc__conn_error_code(c, errno);
        return tc__fail(err, code, "redis %s: %s", what, c->errstr);
    }
    int code = 0;
    if (r->type == REDIS_REPLY_ERROR)
        code = tc__fail(err, TC_EREDIS, "redis %s refused: %.*s", what, (int)r->len, r->str);
    else if (r->type != REDIS_REPLY_STATUS)
        code = tc__fail(err, TC_EPROTO, "redis %s: unexpected reply type %d", what, r->type);
    freeReplyObject(r);
    return code;
}

static int authenticate(redisContext *c, const tc__endpoint_t *ep, tc_error_t *err) {
    const char *argv[3] = {"AUTH", ep->user, ep->password};
    size_t lens[3] = {4, ep->user ? strlen(ep->user) : 0, strlen(ep->password)};
    if (ep->user)
        return setup_command(c, 3, argv, lens, "AUTH", err);
    argv[1] = ep->password;
    lens[1] = lens[2];
    return setup_command(c, 2, argv, lens, "AUTH", err);
}

static int select_db(redisContext *c, int db, tc_error_t *err) {
    char num[16];
    int n = snprintf(num, sizeof num, "%d", db);
    const char *argv[2] = {"SELECT", num};
    size_t lens[2] = {6, (size_t)n};
    return setup_command(c, 2, argv, lens, "SELECT", err);
}

static int configure(redisContext *c, const tc__endpoint_t *ep, uint32_t command_timeout_ms,
                     tc_error_t *err) {
    if (redisSetTimeout(c, ms_to_tv(command_timeout_ms)) != REDIS_OK)
        return tc__fail(err, TC_EUNAVAILABLE, "redis: cannot set timeout: %s", c->errstr);
    if (!ep->is_unix && redisEnableKeepAlive(c) != REDIS_OK)
        return tc__fail(err, TC_EUNAVAILABLE, "redis: cannot enable keepalive: %s", c->errstr);
    int rc = 0;
    if (ep->password)
        rc = authenticate(c, ep, err);
    if (rc == 0 && ep->db > 0)
        rc = select_db(c, ep->db, err);
    return rc;
}

/* redis+cluster://: a connection to any seed node that answers (the listener's: classic
 * pub/sub reaches every node of a cluster). The first seed tried is picked by the clock,
 * so the processes of a fleet spread their listeners over the seeds, and a dead seed is
 * passed over. */
static int open_any_seed(const tc__endpoint_t *ep, uint32_t connect_timeout_ms,
                         uint32_t command_timeout_ms, redisContext **out, tc_error_t *err) {
    char *list = strdup(ep->cluster_seeds);
    char *seed[64];
    size_t n = 0;
    if (!list)
        return tc__fail(err, TC_ENOMEM, "redis connect: out of memory");
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && n < 64;
         t = strtok_r(NULL, ",", &save))
        seed[n++] = t;
    int rc = tc__fail(err, TC_ECONFIG, "redis connect: no cluster seed");
    size_t first = n ? (size_t)(tc__now_ns() / 1000u % n) : 0;
    for (size_t i = 0; i < n && rc != 0; i++) {
        char host[256];
        tc__endpoint_t direct = *ep;
        direct.cluster_seeds = NULL;
        if (tc__endpoint_split_hostport(seed[(first + i) % n], host, sizeof host, &direct.port))
            continue; /* parsed at open: cannot happen */
        direct.host = host;
        rc = tc__conn_open(&direct, connect_timeout_ms, command_timeout_ms, out, err);
    }
    free(list);
    return rc;
}

int tc__conn_open(const tc__endpoint_t *ep, uint32_t connect_timeout_ms,
                  uint32_t command_timeout_ms, redisContext **out, tc_error_t *err) {
    if (!out)
        return tc__fail(err, TC_EINVAL, "redis connect: out is NULL");
    *out = NULL;
    if (ep && ep->sentinels && ep->master_name) { /* find the master first, every time */
        tc__sentinel_opts_t so =
            tc__sentinel_opts_of(ep, connect_timeout_ms, command_timeout_ms);
        tc__sentinel_addr_t master;
        int rc = tc__sentinel_find_master(&so, &master, err);
        if (rc == TC_ENOTFOUND && err)
            err->code = TC_ECONFIG; /* a name no sentinel knows: the configuration's fault */
        if (rc != 0)
            return rc == TC_ENOTFOUND ? TC_ECONFIG : rc;
        tc__endpoint_t direct = *ep;
        direct.sentinels = direct.master_name = NULL;
        direct.host = master.host;
        direct.port = master.port;
        return tc__conn_open(&direct, connect_timeout_ms, command_timeout_ms, out, err);
    }
    if (ep && ep->cluster_seeds)
        return open_any_seed(ep, connect_timeout_ms, command_timeout_ms, out, err);
    if (!ep || (ep->is_unix ? !ep->path : !ep->host))
        return tc__fail(err, TC_EINVAL, "redis connect: no endpoint");
    errno = 0;
    redisContext *c = connect_raw(ep, connect_timeout_ms);
    if (!c)
        return tc__fail(err, TC_ENOMEM, "redis connect: out of memory");
    if (c->err) {
        int code = tc__conn_error_code(c, errno);
        if (ep->is_unix)
            tc__fail(err, code, "redis connect to %s: %s", ep->path, c->errstr);
        else
            tc__fail(err, code, "redis connect to %s:%d: %s", ep->host, ep->port, c->errstr);
        redisFree(c);
        return code;
    }
    /* hiredis 0.14 opens sockets without CLOEXEC: a server that forks and execs must not
     * hand its Redis connections to the new program. */
    fcntl(c->fd, F_SETFD, FD_CLOEXEC);
    int rc = configure(c, ep, command_timeout_ms, err);
    if (rc != 0) {
        redisFree(c);
        return rc;
    }
    *out = c;
    return 0;
}
