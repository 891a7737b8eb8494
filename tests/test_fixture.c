/*
 * test_fixture.c - the private redis-server fixture behaves as the other suites assume.
 *
 * Every integration and fault test builds on tests/support/redis_server.c, so its promises
 * are checked here against a real server: it answers on its unix socket or loopback port,
 * kill really cuts connections, restart comes back on the same address with an empty
 * dataset, pause makes commands time out and resume cures that, auth is enforced, raw
 * commands get through it, and stop leaves nothing behind.
 */
/* tc-test-labels: integration */
#include "redis_server.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int ping_ok(redisContext *c) {
    redisReply *r = redisCommand(c, "PING");
    int ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r)
        freeReplyObject(r);
    return ok;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_key(redisContext *c, const char *k, const char *v) {
    redisReply *r = redisCommand(c, "SET %s %s", k, v);
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "SET failed");
    freeReplyObject(r);
}

static int key_exists(redisContext *c, const char *k) {
    redisReply *r = redisCommand(c, "EXISTS %s", k);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "EXISTS failed");
    int n = (int)r->integer;
    freeReplyObject(r);
    return n;
}

Test(fixture, unix_server_answers_ping) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    cr_assert_gt(tc_test_redis_pid(r), 0);
    cr_assert_eq(tc_test_redis_port(r), 0);
    cr_assert_eq(strncmp(tc_test_redis_url(r), "unix:///tmp/tc-redis-", 21), 0, "url %s",
                 tc_test_redis_url(r));
    struct stat st;
    cr_assert_eq(stat(tc_test_redis_socket_path(r), &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    redisContext *c = tc_test_redis_connect(r);
    cr_assert_not_null(c);
    cr_assert_eq(c->connection_type, REDIS_CONN_UNIX);
    cr_assert(ping_ok(c));
    redisFree(c);
    tc_test_redis_stop(r);
}

Test(fixture, tcp_server_answers_ping_on_loopback) {
    tc_test_redis_opts_t o = {.tcp = 1};
    tc_test_redis_t *r = tc_test_redis_start(&o);
    int port = tc_test_redis_port(r);
    cr_assert(port > 0 && port < 65536);
    char want[64];
    snprintf(want, sizeof want, "redis://127.0.0.1:%d", port);
    cr_assert_str_eq(tc_test_redis_url(r), want);
    redisContext *c = tc_test_redis_connect(r);
    cr_assert_not_null(c);
    cr_assert_eq(c->connection_type, REDIS_CONN_TCP);
    cr_assert(ping_ok(c));
    redisFree(c);
    tc_test_redis_stop(r);
}

Test(fixture, two_servers_are_independent) {
    tc_test_redis_t *a = tc_test_redis_start(NULL);
    tc_test_redis_t *b = tc_test_redis_start(NULL);
    cr_assert_str_neq(tc_test_redis_url(a), tc_test_redis_url(b));
    redisContext *ca = tc_test_redis_connect(a), *cb = tc_test_redis_connect(b);
    cr_assert(ca && cb);
    set_key(ca, "only-in-a", "1");
    cr_assert_eq(key_exists(ca, "only-in-a"), 1);
    cr_assert_eq(key_exists(cb, "only-in-a"), 0);
    redisFree(ca);
    redisFree(cb);
    tc_test_redis_stop(a);
    tc_test_redis_stop(b);
}

static void kill_then_restart(const tc_test_redis_opts_t *o) {
    signal(SIGPIPE, SIG_IGN); /* raw hiredis writes to the dead socket */
    tc_test_redis_t *r = tc_test_redis_start(o);
    const char *url_before = strdup(tc_test_redis_url(r));
    redisContext *c = tc_test_redis_connect(r);
    cr_assert_not_null(c);
    set_key(c, "k", "v");

    tc_test_redis_kill(r);
    cr_assert_eq(tc_test_redis_pid(r), 0);
    cr_assert_not(ping_ok(c), "old connection still works after kill");
    cr_assert_neq(c->err, 0);
    redisFree(c);
    cr_assert_null(tc_test_redis_connect(r), "new connection succeeded after kill");

    tc_test_redis_restart(r);
    cr_assert_gt(tc_test_redis_pid(r), 0);
    cr_assert_str_eq(tc_test_redis_url(r), url_before, "restart moved the server");
    c = tc_test_redis_connect(r);
    cr_assert_not_null(c);
    cr_assert(ping_ok(c));
    cr_assert_eq(key_exists(c, "k"), 0, "persistence is off, the dataset must be empty");
    redisFree(c);
    free((void *)url_before);
    tc_test_redis_stop(r);
}

Test(fixture, kill_cuts_connections_and_restart_brings_it_back_unix) {
    kill_then_restart(NULL);
}

Test(fixture, kill_cuts_connections_and_restart_brings_it_back_tcp) {
    tc_test_redis_opts_t o = {.tcp = 1};
    kill_then_restart(&o);
}

Test(fixture, pause_times_out_commands_and_resume_cures_it) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    redisContext *c = tc_test_redis_connect(r);
    cr_assert_not_null(c);
    struct timeval tv = {0, 200 * 1000};
    redisSetTimeout(c, tv);
    cr_assert(ping_ok(c));

    tc_test_redis_pause(r);
    double t0 = now_s();
    cr_assert_not(ping_ok(c), "a stopped server answered");
    double took = now_s() - t0;
    cr_assert_eq(c->err, REDIS_ERR_IO, "expected a timeout (I/O error), got %d %s", c->err,
                 c->errstr);
    cr_assert(took >= 0.15 && took < 2.0, "timeout took %.3f s", took);
    redisFree(c);

    tc_test_redis_resume(r);
    c = tc_test_redis_connect(r);
    cr_assert_not_null(c);
    redisSetTimeout(c, tv);
    cr_assert(ping_ok(c), "no answer after resume");
    redisFree(c);
    tc_test_redis_stop(r);
}

static int auth_reply_ok(redisContext *c, const char *cmd_user, const char *pass) {
    redisReply *rep = cmd_user ? redisCommand(c, "AUTH %s %s", cmd_user, pass)
                               : redisCommand(c, "AUTH %s", pass);
    int ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep)
        freeReplyObject(rep);
    return ok;
}

static redisContext *raw_connect(tc_test_redis_t *r) {
    redisContext *c = redisConnectUnix(tc_test_redis_socket_path(r));
    cr_assert(c && !c->err);
    return c;
}

Test(fixture, password_is_required_and_in_the_url) {
    tc_test_redis_opts_t o = {.password = "s3cret"};
    tc_test_redis_t *r = tc_test_redis_start(&o);
    cr_assert_not_null(strstr(tc_test_redis_url(r), "?password=s3cret"));

    redisContext *raw = raw_connect(r);
    cr_assert_not(ping_ok(raw), "PING without AUTH must be refused");
    cr_assert_not(auth_reply_ok(raw, NULL, "wrong"));
    cr_assert(auth_reply_ok(raw, NULL, "s3cret"));
    cr_assert(ping_ok(raw));
    redisFree(raw);

    redisContext *c = tc_test_redis_connect(r);
    cr_assert_not_null(c);
    cr_assert(ping_ok(c));
    redisFree(c);
    tc_test_redis_stop(r);
}

Test(fixture, acl_user_is_the_only_way_in) {
    tc_test_redis_opts_t o = {.tcp = 1, .password = "pw-1", .acl_user = "app"};
    tc_test_redis_t *r = tc_test_redis_start(&o);
    char want[96];
    snprintf(want, sizeof want, "redis://app:pw-1@127.0.0.1:%d", tc_test_redis_port(r));
    cr_assert_str_eq(tc_test_redis_url(r), want);

    redisContext *raw = raw_connect(r);
    cr_assert_not(ping_ok(raw));
    cr_assert_not(auth_reply_ok(raw, NULL, "pw-1"), "default user must be off");
    cr_assert(auth_reply_ok(raw, "app", "pw-1"));
    cr_assert(ping_ok(raw));
    redisFree(raw);

    redisContext *c = tc_test_redis_connect(r);
    cr_assert_not_null(c);
    cr_assert(ping_ok(c));
    redisFree(c);
    tc_test_redis_stop(r);
}

/* tc_test_redis_cmd / _do: authenticated like tc_test_redis_connect, binary-safe. */
Test(fixture, raw_commands_authenticate_and_keep_bytes) {
    tc_test_redis_opts_t o = {.password = "pw-2", .acl_user = "app"};
    tc_test_redis_t *r = tc_test_redis_start(&o);
    static const char key[] = "k\0\r\n1", val[] = "v\0al";
    tc_test_redis_do(r, "SET %b %b", key, sizeof key - 1, val, sizeof val - 1);
    redisReply *rep = tc_test_redis_cmd(r, "GET %b", key, sizeof key - 1);
    cr_assert_eq(rep->type, REDIS_REPLY_STRING);
    cr_assert_eq(rep->len, sizeof val - 1);
    cr_assert_eq(memcmp(rep->str, val, sizeof val - 1), 0);
    freeReplyObject(rep);
    rep = tc_test_redis_cmd(r, "ACL WHOAMI");
    cr_assert_str_eq(rep->str, "app");
    freeReplyObject(rep);
    tc_test_redis_stop(r);
}

Test(fixture, stop_removes_everything) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    char dir[128];
    snprintf(dir, sizeof dir, "%s", tc_test_redis_dir(r));
    pid_t pid = tc_test_redis_pid(r);
    tc_test_redis_pause(r); /* stop must cope with a stopped server */
    tc_test_redis_stop(r);
    cr_assert_eq(access(dir, F_OK), -1, "%s still exists", dir);
    cr_assert_eq(kill(pid, 0), -1, "redis-server %d still alive", (int)pid);
    tc_test_redis_stop(NULL);
}
