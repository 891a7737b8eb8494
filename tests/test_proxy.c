/*
 * test_proxy.c - the fault proxy (support/proxy.h) does what test_coherence relies on.
 *
 * A fault that silently fails to happen makes a stress test pass for nothing, so each
 * fault is checked here on raw sockets, against a real redis-server:
 *   - bytes pass both ways, and a server that goes away closes the client too;
 *   - cut_subscribers silences exactly the connections that sent SUBSCRIBE (in any case,
 *     even split across two writes): no message and no EOF reaches them, while other
 *     connections keep working; close_cut then closes them;
 *   - cut_all silences every connection and new ones; heal delivers what waited and
 *     forwards again.
 */
/* tc-test-labels: integration fault */
#include "peer.h"
#include "proxy.h"
#include "redis_server.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QUIET_MS (300 * TC_TEST_SLOW) /* how long "nothing arrives" is watched */
#define REPLY_MS (2000 * TC_TEST_SLOW)

static tc_test_redis_t *redis;
static tc_test_proxy_t *proxy;

static void setup(void) {
    tc_test_redis_opts_t opts = {.tcp = 1};
    redis = tc_test_redis_start(&opts);
    proxy = tc_test_proxy_start(tc_test_redis_port(redis));
    cr_assert_not_null(proxy);
}

static void teardown(void) {
    tc_test_proxy_stop(proxy);
    tc_test_redis_stop(redis);
}

TestSuite(proxy, .init = setup, .fini = teardown, .timeout = 60);

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)tc_test_proxy_port(proxy))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s",
                 strerror(errno));
    return fd;
}

static void say(int fd, const char *s) {
    cr_assert_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* 1 when fd turns readable (data or EOF) within ms. */
static int readable(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* Read until `want` has arrived (or fail). */
static void expect(int fd, const char *want) {
    char buf[512];
    size_t len = 0, n = strlen(want);
    while (len < n) {
        cr_assert(readable(fd, REPLY_MS), "no '%s' within %d ms (got '%.*s')", want, REPLY_MS,
                  (int)len, buf);
        ssize_t got = recv(fd, buf + len, sizeof buf - len, 0);
        cr_assert_gt(got, 0, "connection closed waiting for '%s'", want);
        len += (size_t)got;
    }
    cr_assert(len >= n && memcmp(buf, want, n) == 0, "got '%.*s', wanted '%s'", (int)len, buf,
              want);
}

static void expect_silence(int fd, const char *what) {
    cr_assert(!readable(fd, QUIET_MS), "%s: something (data or EOF) arrived", what);
}

static void expect_eof(int fd) {
    char c;
    cr_assert(readable(fd, REPLY_MS), "no EOF within %d ms", REPLY_MS);
    cr_assert_leq(recv(fd, &c, 1, 0), 0, "data instead of EOF");
}

#define SUBSCRIBED_REPLY "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"

Test(proxy, forwards_and_cuts_only_subscribers) {
    int plain = dial(), sub = dial(), split = dial();
    say(plain, "PING\r\n");
    expect(plain, "+PONG\r\n");
    say(sub, "*2\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n");
    expect(sub, SUBSCRIBED_REPLY);
    say(split, "*2\r\n$9\r\nSUBS"); /* the word split across two reads */
    tc_test_sleep_ms(50);
    say(split, "CRIBE\r\n$2\r\nch\r\n");
    expect(split, "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");

    cr_assert_eq(tc_test_proxy_cut_subscribers(proxy), 2, "both subscribers must be cut");
    say(plain, "PUBLISH ch hello\r\n");
    expect(plain, ":2\r\n"); /* Redis still counts them: they died without a FIN */
    expect_silence(sub, "a cut subscriber");
    expect_silence(split, "a cut subscriber");
    say(plain, "PING\r\n");
    expect(plain, "+PONG\r\n");
    int later = dial(); /* a new subscriber after the cut is forwarded normally */
    say(later, "SUBSCRIBE ch\r\n");
    expect(later, SUBSCRIBED_REPLY);

    cr_assert_eq(tc_test_proxy_close_cut(proxy), 2);
    expect_eof(sub);
    expect_eof(split);
    close(later);
    close(sub);
    close(split);
    close(plain);
}

Test(proxy, cut_all_then_heal_delivers_late) {
    int before = dial();
    say(before, "PING\r\n");
    expect(before, "+PONG\r\n");
    tc_test_proxy_cut_all(proxy);
    say(before, "SET k late\r\n");
    expect_silence(before, "an old connection during cut_all");
    int during = dial(); /* connects (listen backlog) but is not served */
    say(during, "PING\r\n");
    expect_silence(during, "a new connection during cut_all");
    redisContext *direct = tc_test_redis_connect(redis);
    cr_assert_not_null(direct);
    redisReply *r = redisCommand(direct, "EXISTS k");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0,
              "the SET crossed a cut network");
    freeReplyObject(r);

    tc_test_proxy_heal(proxy);
    expect(before, "+OK\r\n");
    expect(during, "+PONG\r\n");
    r = redisCommand(direct, "GET k");
    cr_assert(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "late") == 0);
    freeReplyObject(r);
    redisFree(direct);
    close(before);
    close(during);
}

Test(proxy, upstream_death_closes_clients) {
    int fd = dial();
    say(fd, "PING\r\n");
    expect(fd, "+PONG\r\n");
    tc_test_redis_kill(redis);
    expect_eof(fd);
    close(fd);
    fd = dial(); /* accepted, but upstream refuses: closed at once */
    expect_eof(fd);
    close(fd);
    tc_test_redis_restart(redis);
    fd = dial();
    say(fd, "PING\r\n");
    expect(fd, "+PONG\r\n");
    cr_assert_geq(tc_test_proxy_accepted(proxy), 3);
    close(fd);
}
