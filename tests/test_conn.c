/*
 * test_conn.c - opening one ready hiredis connection (src/conn.c), against a real private
 * redis-server and against small fake servers run by the test.
 *
 * conn.c promises a context that is connected, has the command timeout on its socket,
 * keepalive on (TCP), CLOEXEC, and has passed AUTH and SELECT; or no context and a code:
 * TC_EUNAVAILABLE (nothing there), TC_ETIMEDOUT (nothing answers in time), TC_EREDIS
 * (AUTH or SELECT refused, and the message says which and why), TC_EPROTO (the peer is
 * not speaking Redis). Each is provoked for real here: a closed port, a listener whose
 * accept queue is full (its SYNs go unanswered), a SIGSTOPped redis-server, an ACL user
 * with the wrong password, a fake server that answers garbage. tc__conn_error_code is
 * also checked on hand-made contexts for the cases a real socket cannot produce on cue
 * (errno clobbered before the caller looks, OOM).
 */
/* tc-test-labels: integration fault */
#include "config.h"
#include "conn.h"
#include "redis_server.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define CONNECT_MS 1000u
#define COMMAND_MS 250u

/* ---- helpers ---- */

typedef struct opened {
    int rc;
    redisContext *c;
    tc_error_t err;
} opened_t;

static opened_t open_url(const char *url, uint32_t connect_ms, uint32_t command_ms) {
    tc__endpoint_t ep;
    tc_error_t perr = {0};
    cr_assert_eq(tc__endpoint_parse(url, &ep, &perr), 0, "%s: %s", url, perr.msg);
    opened_t o = {0};
    o.c = (redisContext *)1; /* must be reset to NULL on failure */
    o.rc = tc__conn_open(&ep, connect_ms, command_ms, &o.c, &o.err);
    tc__endpoint_deinit(&ep);
    if (o.rc != 0)
        cr_assert_null(o.c, "a failed open handed out a context");
    else
        cr_assert_not_null(o.c);
    return o;
}

static opened_t open_ok(const char *url) {
    opened_t o = open_url(url, CONNECT_MS, COMMAND_MS);
    cr_assert_eq(o.rc, 0, "%s: %s (%d)", url, o.err.msg, o.rc);
    return o;
}

/* A failed open: the code, and a message that contains every one of the words. */
static void expect_failure(const opened_t *o, int code, const char *w1, const char *w2) {
    cr_assert_eq(o->rc, code, "rc %d (%s), want %d", o->rc, o->err.msg, code);
    cr_assert_eq(o->err.code, code, "err.code %d", o->err.code);
    cr_assert(strstr(o->err.msg, w1), "'%s' does not mention '%s'", o->err.msg, w1);
    if (w2)
        cr_assert(strstr(o->err.msg, w2), "'%s' does not mention '%s'", o->err.msg, w2);
}

/* A command on c that must succeed; the reply's string (status, string) into out. */
static void cmd_str(redisContext *c, char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING), "%s: %s",
              fmt, r ? (r->str ? r->str : "(not a string)") : c->errstr);
    snprintf(out, cap, "%s", r->str);
    freeReplyObject(r);
}

static void unix_url(const tc_test_redis_t *r, const char *query, char *out, size_t cap) {
    snprintf(out, cap, "unix://%s%s", tc_test_redis_socket_path(r), query);
}

static long sock_timeout_ms(int fd, int opt) {
    struct timeval tv;
    socklen_t len = sizeof tv;
    cr_assert_eq(getsockopt(fd, SOL_SOCKET, opt, &tv, &len), 0);
    return (long)tv.tv_sec * 1000 + (long)tv.tv_usec / 1000;
}

/* The kernel keeps socket timeouts in jiffies: it reads back rounded up to a tick. */
static void expect_command_timeout(int fd, int opt) {
    long ms = sock_timeout_ms(fd, opt);
    cr_assert(ms >= COMMAND_MS && ms <= COMMAND_MS + 20, "socket timeout %ld ms, want %u", ms,
              COMMAND_MS);
}

static int sock_flag(int fd, int opt) {
    int v = 0;
    socklen_t len = sizeof v;
    cr_assert_eq(getsockopt(fd, SOL_SOCKET, opt, &v, &len), 0);
    return v;
}

static int tcp_listener(int backlog, int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    if (backlog >= 0)
        cr_assert_eq(listen(fd, backlog), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A write to a socket its peer closed must fail with EPIPE, not kill the test. */
static void ignore_sigpipe(void) {
    signal(SIGPIPE, SIG_IGN);
}

TestSuite(conn, .init = ignore_sigpipe, .timeout = 60);

/* ---- connecting ---- */

Test(conn, unix_socket_connects_ready_to_use) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    char url[512], s[64];
    unix_url(r, "", url, sizeof url);
    opened_t o = open_ok(url);
    cmd_str(o.c, s, sizeof s, "PING");
    cr_assert_str_eq(s, "PONG");
    expect_command_timeout(o.c->fd, SO_RCVTIMEO);
    expect_command_timeout(o.c->fd, SO_SNDTIMEO);
    cr_assert(fcntl(o.c->fd, F_GETFD) & FD_CLOEXEC, "the socket would survive an exec");
    redisFree(o.c);
    tc_test_redis_stop(r);
}

Test(conn, tcp_connects_with_keepalive) {
    tc_test_redis_opts_t opts = {.tcp = 1};
    tc_test_redis_t *r = tc_test_redis_start(&opts);
    opened_t o = open_ok(tc_test_redis_url(r));
    char s[64];
    cmd_str(o.c, s, sizeof s, "PING");
    cr_assert_str_eq(s, "PONG");
    cr_assert_eq(sock_flag(o.c->fd, SO_KEEPALIVE), 1, "TCP keepalive is off");
    expect_command_timeout(o.c->fd, SO_RCVTIMEO);
    cr_assert(fcntl(o.c->fd, F_GETFD) & FD_CLOEXEC);
    redisFree(o.c);
    /* A connect timeout of 0 means no limit, not "give up at once". */
    opened_t o0 = open_url(tc_test_redis_url(r), 0, COMMAND_MS);
    cr_assert_eq(o0.rc, 0, "connect_timeout_ms 0: %s", o0.err.msg);
    redisFree(o0.c);
    tc_test_redis_stop(r);
}

Test(conn, bad_arguments_are_einval) {
    tc__endpoint_t ep = {0};
    tc_error_t err = {0};
    redisContext *c = (redisContext *)1;
    cr_assert_eq(tc__conn_open(NULL, CONNECT_MS, COMMAND_MS, &c, &err), TC_EINVAL);
    cr_assert_null(c);
    cr_assert_eq(tc__conn_open(&ep, CONNECT_MS, COMMAND_MS, NULL, &err), TC_EINVAL);
    cr_assert_eq(tc__conn_open(&ep, CONNECT_MS, COMMAND_MS, &c, NULL), TC_EINVAL,
                 "an endpoint with neither host nor path");
}

/* ---- nothing there ---- */

Test(conn, closed_tcp_port_is_unavailable_and_named) {
    int port;
    int fd = tcp_listener(-1, &port); /* bound, never listening: connect is refused */
    char url[128], where[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    opened_t o = open_url(url, CONNECT_MS, COMMAND_MS);
    expect_failure(&o, TC_EUNAVAILABLE, where, "refused");
    close(fd);
}

Test(conn, missing_unix_socket_is_unavailable_and_named) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    char url[512];
    unix_url(r, "", url, sizeof url);
    tc_test_redis_kill(r);
    opened_t o = open_url(url, CONNECT_MS, COMMAND_MS);
    expect_failure(&o, TC_EUNAVAILABLE, tc_test_redis_socket_path(r), NULL);
    tc_test_redis_stop(r);
}

/* A listener whose accept queue is full drops new SYNs: the connect never completes. */
Test(conn, port_that_accepts_nothing_times_out) {
    int port;
    int lfd = tcp_listener(0, &port);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fill[2];
    for (int i = 0; i < 2; i++) { /* the first fills the queue, the second waits for good */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        cr_assert_geq(fill[i], 0);
        int rc = connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
        cr_assert(rc == 0 || errno == EINPROGRESS, "filler connect: %s", strerror(errno));
        usleep(20000);
    }
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    opened_t o = open_url(url, 200, COMMAND_MS);
    expect_failure(&o, TC_ETIMEDOUT, "127.0.0.1", NULL);
    for (int i = 0; i < 2; i++)
        close(fill[i]);
    close(lfd);
}

/* Accepts every connection on lfd (the test keeps them open) from after_ms on, until
 * stop is set: a listener that is slow to take connections off its queue. */
typedef struct slow_acceptor {
    int lfd;
    unsigned after_ms;
    int fds[8];
    int nfds;
    atomic_int stop;
    pthread_t thread;
} slow_acceptor_t;

static void *slow_accept_main(void *arg) {
    slow_acceptor_t *a = arg;
    usleep(a->after_ms * 1000u);
    while (!atomic_load(&a->stop)) {
        struct pollfd pfd = {.fd = a->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 20) == 1 && a->nfds < 8) {
            int fd = accept(a->lfd, NULL, NULL);
            if (fd >= 0)
                a->fds[a->nfds++] = fd;
        }
    }
    return NULL;
}

/* connect_timeout_ms 0 means no limit: a connect that takes a while (its SYN dropped by
 * a full accept queue, retransmitted a second later) still succeeds. hiredis given a zero
 * timeval would poll for 0 ms and fail at once. */
Test(conn, zero_connect_timeout_waits_as_long_as_it_takes) {
    int port;
    slow_acceptor_t a = {.lfd = tcp_listener(0, &port), .after_ms = 300};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fill = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(fill, 0);
    int rc = connect(fill, (struct sockaddr *)&sa, sizeof sa);
    cr_assert(rc == 0 || errno == EINPROGRESS, "filler connect: %s", strerror(errno));
    usleep(20000); /* the filler is in the accept queue: it is full */
    cr_assert_eq(pthread_create(&a.thread, NULL, slow_accept_main, &a), 0);
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    opened_t o = open_url(url, 0, COMMAND_MS);
    atomic_store(&a.stop, 1);
    pthread_join(a.thread, NULL);
    cr_assert_eq(o.rc, 0, "connect_timeout_ms 0 gave up: %s", o.err.msg);
    redisFree(o.c);
    for (int i = 0; i < a.nfds; i++)
        close(a.fds[i]);
    close(fill);
    close(a.lfd);
}

/* ---- a server that stops answering ---- */

/* The kernel still completes the TCP handshake of a SIGSTOPped redis-server: the open
 * gets as far as AUTH, which times out, and the message names the step. */
Test(conn, stopped_server_times_out_in_auth) {
    tc_test_redis_opts_t opts = {.tcp = 1, .password = "pw"};
    tc_test_redis_t *r = tc_test_redis_start(&opts);
    tc_test_redis_pause(r);
    opened_t o = open_url(tc_test_redis_url(r), CONNECT_MS, COMMAND_MS);
    tc_test_redis_resume(r);
    expect_failure(&o, TC_ETIMEDOUT, "AUTH", NULL);
    tc_test_redis_stop(r);
}

Test(conn, stopped_server_times_out_in_select) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    char url[512];
    unix_url(r, "?db=2", url, sizeof url);
    tc_test_redis_pause(r);
    opened_t o = open_url(url, CONNECT_MS, COMMAND_MS);
    tc_test_redis_resume(r);
    expect_failure(&o, TC_ETIMEDOUT, "SELECT", NULL);
    tc_test_redis_stop(r);
}

/* On an open context: a stopped server is a timeout, a dead one is unavailable. */
Test(conn, error_code_of_a_live_context) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    char url[512];
    unix_url(r, "", url, sizeof url);
    opened_t o = open_ok(url);
    tc_test_redis_pause(r);
    errno = 0;
    redisReply *rep = redisCommand(o.c, "PING");
    int saved = errno;
    tc_test_redis_resume(r);
    cr_assert_null(rep, "a stopped server answered");
    cr_assert_eq(tc__conn_error_code(o.c, saved), TC_ETIMEDOUT, "%d: %s", o.c->err,
                 o.c->errstr);
    redisFree(o.c);

    o = open_ok(url);
    tc_test_redis_kill(r);
    errno = 0;
    rep = redisCommand(o.c, "PING");
    saved = errno;
    cr_assert_null(rep, "a killed server answered");
    cr_assert_eq(tc__conn_error_code(o.c, saved), TC_EUNAVAILABLE, "%d: %s", o.c->err,
                 o.c->errstr);
    redisFree(o.c);
    tc_test_redis_stop(r);
}

/* ---- AUTH and SELECT ---- */

Test(conn, acl_user_and_password_authenticate_as_that_user) {
    tc_test_redis_opts_t opts = {.password = "s3cret", .acl_user = "app"};
    tc_test_redis_t *r = tc_test_redis_start(&opts);
    opened_t o = open_ok(tc_test_redis_url(r));
    char who[64];
    cmd_str(o.c, who, sizeof who, "ACL WHOAMI");
    cr_assert_str_eq(who, "app");
    redisFree(o.c);
    tc_test_redis_stop(r);
}

Test(conn, wrong_password_is_a_refused_auth_with_the_reason) {
    tc_test_redis_opts_t opts = {.password = "s3cret", .acl_user = "app"};
    tc_test_redis_t *r = tc_test_redis_start(&opts);
    char url[512];
    unix_url(r, "?user=app&password=wrong", url, sizeof url);
    opened_t o = open_url(url, CONNECT_MS, COMMAND_MS);
    expect_failure(&o, TC_EREDIS, "AUTH", "WRONGPASS");
    /* A password without the user tries the (disabled) default user: refused too. */
    unix_url(r, "?password=s3cret", url, sizeof url);
    o = open_url(url, CONNECT_MS, COMMAND_MS);
    expect_failure(&o, TC_EREDIS, "AUTH", "WRONGPASS");
    /* No credentials at all: nothing is sent until SELECT, which says why it fails. */
    unix_url(r, "?db=1", url, sizeof url);
    o = open_url(url, CONNECT_MS, COMMAND_MS);
    expect_failure(&o, TC_EREDIS, "SELECT", "NOAUTH");
    tc_test_redis_stop(r);
}

Test(conn, requirepass_password_only) {
    tc_test_redis_opts_t opts = {.password = "pw"};
    tc_test_redis_t *r = tc_test_redis_start(&opts);
    opened_t o = open_ok(tc_test_redis_url(r));
    char s[64];
    cmd_str(o.c, s, sizeof s, "PING");
    cr_assert_str_eq(s, "PONG");
    redisFree(o.c);
    char url[512];
    unix_url(r, "?password=nope", url, sizeof url);
    o = open_url(url, CONNECT_MS, COMMAND_MS);
    expect_failure(&o, TC_EREDIS, "AUTH", NULL);
    tc_test_redis_stop(r);
}

/* The db is selected: a key written through the connection is in that db only. */
Test(conn, select_db) {
    tc_test_redis_opts_t opts = {.tcp = 1};
    tc_test_redis_t *r = tc_test_redis_start(&opts);
    char url[512], s[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", tc_test_redis_port(r));
    opened_t o = open_ok(url);
    cmd_str(o.c, s, sizeof s, "SET conn:k in-db-3");
    redisFree(o.c);
    unix_url(r, "?db=5", url, sizeof url);
    o = open_ok(url);
    cmd_str(o.c, s, sizeof s, "SET conn:k in-db-5");
    redisFree(o.c);

    redisContext *raw = tc_test_redis_connect(r);
    cr_assert_not_null(raw);
    redisReply *rep = redisCommand(raw, "EXISTS conn:k");
    cr_assert(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0, "db 0 has the key");
    freeReplyObject(rep);
    cmd_str(raw, s, sizeof s, "SELECT 3");
    cmd_str(raw, s, sizeof s, "GET conn:k");
    cr_assert_str_eq(s, "in-db-3");
    cmd_str(raw, s, sizeof s, "SELECT 5");
    cmd_str(raw, s, sizeof s, "GET conn:k");
    cr_assert_str_eq(s, "in-db-5");
    redisFree(raw);

    unix_url(r, "?db=999", url, sizeof url); /* the server has 16 */
    o = open_url(url, CONNECT_MS, COMMAND_MS);
    expect_failure(&o, TC_EREDIS, "SELECT", "out of range");
    tc_test_redis_stop(r);
}

/* ---- something that is not Redis ---- */

/* Accepts one connection, reads what the client sends, answers `reply` (NULL: closes at
 * once), then waits for the client to hang up. */
typedef struct fake {
    int lfd, port;
    const char *reply;
    pthread_t thread;
} fake_t;

static void *fake_main(void *arg) {
    fake_t *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[512];
    if (f->reply && read(fd, buf, sizeof buf) > 0) {
        ssize_t w = write(fd, f->reply, strlen(f->reply));
        (void)w;
        while (read(fd, buf, sizeof buf) > 0) {
        }
    }
    close(fd);
    return NULL;
}

static void fake_start(fake_t *f, const char *reply) {
    f->reply = reply;
    f->lfd = tcp_listener(8, &f->port);
    cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f) {
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

static opened_t open_fake(const char *reply) {
    fake_t f;
    fake_start(&f, reply);
    char url[128];
    snprintf(url, sizeof url, "redis://:pw@127.0.0.1:%d", f.port);
    opened_t o = open_url(url, CONNECT_MS, COMMAND_MS);
    fake_stop(&f);
    return o;
}

Test(conn, garbage_reply_is_a_protocol_error) {
    opened_t o = open_fake("!not-resp\r\n");
    expect_failure(&o, TC_EPROTO, "AUTH", NULL);
}

Test(conn, reply_of_the_wrong_type_is_a_protocol_error) {
    opened_t o = open_fake(":1\r\n"); /* AUTH answers a status, never an integer */
    expect_failure(&o, TC_EPROTO, "AUTH", "unexpected reply");
}

Test(conn, server_hanging_up_is_unavailable) {
    opened_t o = open_fake(NULL);
    expect_failure(&o, TC_EUNAVAILABLE, "AUTH", NULL);
}

/* ---- the mapping itself ---- */

static int code_of(int err, const char *errstr, int saved_errno) {
    redisContext c;
    memset(&c, 0, sizeof c);
    c.err = err;
    snprintf(c.errstr, sizeof c.errstr, "%s", errstr);
    return tc__conn_error_code(&c, saved_errno);
}

Test(conn, error_code_mapping) {
    cr_assert_eq(tc__conn_error_code(NULL, 0), TC_EUNAVAILABLE);
    /* Timeouts, by errno or, when errno was clobbered, by hiredis's text. */
    cr_assert_eq(code_of(REDIS_ERR_IO, "Resource temporarily unavailable", EAGAIN),
                 TC_ETIMEDOUT);
    cr_assert_eq(code_of(REDIS_ERR_IO, "Connection timed out", ETIMEDOUT), TC_ETIMEDOUT);
    cr_assert_eq(code_of(REDIS_ERR_IO, "Resource temporarily unavailable", 0), TC_ETIMEDOUT);
    cr_assert_eq(code_of(REDIS_ERR_IO, "Connection timed out", 0), TC_ETIMEDOUT);
    cr_assert_eq(code_of(REDIS_ERR_IO, "Resource temporarily unavailable", EINTR),
                 TC_ETIMEDOUT);
    /* Everything else on the socket: Redis is not there. */
    cr_assert_eq(code_of(REDIS_ERR_IO, "Connection refused", ECONNREFUSED), TC_EUNAVAILABLE);
    cr_assert_eq(code_of(REDIS_ERR_IO, "Connection refused", 0), TC_EUNAVAILABLE);
    cr_assert_eq(code_of(REDIS_ERR_IO, "Connection reset by peer", ECONNRESET),
                 TC_EUNAVAILABLE);
    cr_assert_eq(code_of(REDIS_ERR_IO, "Broken pipe", EPIPE), TC_EUNAVAILABLE);
    cr_assert_eq(code_of(REDIS_ERR_EOF, "Server closed the connection", 0), TC_EUNAVAILABLE);
    cr_assert_eq(code_of(REDIS_ERR_OTHER, "Name or service not known", 0), TC_EUNAVAILABLE);
    cr_assert_eq(code_of(REDIS_ERR_PROTOCOL, "Protocol error, got \"!\" as reply type byte", 0),
                 TC_EPROTO);
    cr_assert_eq(code_of(REDIS_ERR_OOM, "Out of memory", 0), TC_ENOMEM);
}
