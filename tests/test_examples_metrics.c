/*
 * test_examples_metrics.c - examples/metrics_server run as an operator would run it: its
 * own process, configured from the environment, on a private redis-server, driven over
 * HTTP by plain sockets.
 *
 * The idea: the example is documentation that executes, so it is checked end to end. It
 * is started with port 0 and found through the "listening on ADDRESS:PORT" line it
 * prints; requests go over fresh connections (the server closes each after one answer);
 * /metrics must be valid Prometheus text (support/promtext.h) carrying the counters and the
 * latency histogram that the requests moved, with the labels from METRICS_LABELS; and the
 * server must answer many clients at once and exit 0 on SIGTERM and on SIGINT.
 *
 * The binary's path comes from TC_TEST_METRICS_SERVER_PATH (tests/CMakeLists.txt); a
 * build without the examples skips these tests. The process helpers are the suite's
 * (support/exproc.h): the server dies with the test process, so a failed assertion never
 * leaves it running.
 */
/* tc-test-labels: integration */
#include "exproc.h"
#include "peer.h"
#include "promtext.h"
#include "redis_server.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LABELS   "service=\"test\""
#define START_MS (10000 * TC_TEST_SLOW)
#define IO_SEC   (5 * TC_TEST_SLOW)

typedef struct server {
    pid_t pid;
    unsigned port;
    tc_test_redis_t *redis;
} server_t;

typedef tc_test_http_t response_t;

/* ---- the server process (tests/support/exproc.h starts, stops and talks to it) ---- */

static void start(server_t *s) {
#ifndef TC_TEST_METRICS_SERVER_PATH
    cr_skip_test("examples/metrics_server is not built (TC_BUILD_EXAMPLES=OFF)");
#else
    s->redis = tc_test_redis_start(NULL);
    char url[512];
    snprintf(url, sizeof url, "TIERCACHE_REDIS_URL=%s", tc_test_redis_url(s->redis));
    const char *env[] = {url, "TIERCACHE_REQUIRE_REDIS=1", "METRICS_LABELS=" LABELS, NULL};
    const char *argv[] = {TC_TEST_METRICS_SERVER_PATH, "0", NULL};
    const char *why;
    s->pid = tc_test_start_server(argv, env, START_MS, &s->port, &why);
    cr_assert_gt(s->pid, 0, "metrics_server did not start: %s", why);
#endif
}

/* Send sig and wait for the exit; the exit status, or -1 if it had to be killed. */
static int stop_with(server_t *s, int sig) {
    int rc = tc_test_stop_server(s->pid, sig, IO_SEC * 1000 + 2000);
    tc_test_redis_stop(s->redis);
    return rc;
}

/* One request on a fresh connection; 0 and *r filled, or -1 (no test assertion, so that
 * client threads can use it). */
static int http(unsigned port, const char *method, const char *target, response_t *r) {
    return tc_test_http(port, method, target, NULL, IO_SEC, r);
}

static response_t *call(const server_t *s, const char *method, const char *target) {
    static response_t r; /* main thread only */
    cr_assert_eq(http(s->port, method, target, &r), 0, "%s %s: no complete answer", method,
                 target);
    return &r;
}

static void expect(const server_t *s, const char *method, const char *target, int status,
                   const char *body) {
    response_t *r = call(s, method, target);
    cr_assert_eq(r->status, status, "%s %s: %d %s", method, target, r->status, r->body);
    if (body)
        cr_assert_str_eq(r->body, body, "%s %s", method, target);
}

/* The value of the one sample line that starts with `series ` in a /metrics body. */
static double metric(const char *text, const char *series) {
    char prefix[256];
    snprintf(prefix, sizeof prefix, "\n%s ", series);
    const char *at = strstr(text, prefix);
    cr_assert_not_null(at, "no sample %s in:\n%.2000s", series, text);
    cr_assert_null(strstr(at + 1, prefix), "two samples %s", series);
    return strtod(at + strlen(prefix), NULL);
}

/* The whole body is valid Prometheus text, with METRICS_LABELS first on every sample. */
static void expect_valid_exposition(const response_t *r) {
    tc_test_prom_t *e = malloc(sizeof *e);
    cr_assert_not_null(e);
    cr_assert(tc_test_prom_parse(e, r->body, r->body_len), "%s", e->error);
    cr_assert_eq(e->series, TC_LAT_COUNT, "one histogram series per kind of call");
    for (int i = 0; i < e->nsamples; i++)
        cr_assert_str_eq(e->samples[i].labels[0].value, "test", "line %d", e->samples[i].line);
    free(e);
}

/* ---- tests ---- */

Test(metrics_server, serves_prometheus_text_that_the_requests_moved) {
    server_t s;
    start(&s);
    expect(&s, "PUT", "/set?key=user%3A1&value=hello+world", 200, "stored\n");
    for (int i = 0; i < 3; i++)
        expect(&s, "GET", "/get?key=user:1", 200, "hello world");
    expect(&s, "GET", "/get?key=absent", 404, NULL); /* L1 miss, then Redis */
    expect(&s, "DELETE", "/del?key=user:1", 200, "deleted\n");
    expect(&s, "GET", "/get?key=user:1", 404, NULL);
    expect(&s, "POST", "/get?key=x", 405, NULL);
    expect(&s, "GET", "/nowhere", 404, NULL);
    expect(&s, "GET", "/get?key=bad%zz", 400, NULL);

    response_t *r = call(&s, "GET", "/metrics");
    cr_assert_eq(r->status, 200);
    cr_assert_not_null(strstr(r->head, "\r\nContent-Type: text/plain; version=0.0.4"), "%s",
                       r->head);
    expect_valid_exposition(r);
    const char *m = r->body;
    cr_assert_not_null(strstr(m, "# TYPE tiercache_l1_hits_total counter\n"));
    cr_assert_not_null(strstr(m, "# TYPE tiercache_call_duration_seconds histogram\n"));
    cr_assert_eq(metric(m, "tiercache_l1_hits_total{" LABELS "}"), 3);
    cr_assert_eq(metric(m, "tiercache_l2_misses_total{" LABELS "}"), 2);
    cr_assert_eq(metric(m, "tiercache_breaker_state{" LABELS "}"), 0);
#define HIST(part, kind) "tiercache_call_duration_seconds_" part "{" LABELS ",kind=\"" kind "\""
    cr_assert_eq(metric(m, HIST("count", "set") "}"), 1);
    cr_assert_eq(metric(m, HIST("bucket", "set") ",le=\"+Inf\"}"), 1);
    cr_assert_eq(metric(m, HIST("count", "get_miss") "}"), 2);
    cr_assert_eq(metric(m, HIST("count", "del") "}"), 1);
    cr_assert_gt(metric(m, HIST("sum", "set") "}"), 0);
    cr_assert_eq(stop_with(&s, SIGTERM), 0, "metrics_server did not exit 0 on SIGTERM");
}

typedef struct client {
    unsigned port;
    int id;
    int failures;
} client_t;

enum { CLIENTS = 8, ROUNDS = 25 };

/* Each client writes its own keys and reads them back; failures are counted, not
 * asserted (Criterion asserts only on the test's thread). */
static void *client_main(void *arg) {
    client_t *c = arg;
    response_t *r = malloc(sizeof *r);
    for (int i = 0; r && i < ROUNDS; i++) {
        char target[128], want[32];
        snprintf(want, sizeof want, "v%d.%d", c->id, i);
        snprintf(target, sizeof target, "/set?key=k%d.%d&value=%s", c->id, i, want);
        if (http(c->port, "PUT", target, r) != 0 || r->status != 200)
            c->failures++;
        snprintf(target, sizeof target, "/get?key=k%d.%d", c->id, i);
        if (http(c->port, "GET", target, r) != 0 || r->status != 200 ||
            strcmp(r->body, want) != 0)
            c->failures++;
    }
    c->failures += !r;
    free(r);
    return NULL;
}

Test(metrics_server, serves_many_clients_at_once) {
    server_t s;
    start(&s);
    pthread_t threads[CLIENTS];
    client_t clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = (client_t){.port = s.port, .id = i};
        cr_assert_eq(pthread_create(&threads[i], NULL, client_main, &clients[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        cr_assert_eq(clients[i].failures, 0, "client %d failed %d requests", i,
                     clients[i].failures);
    }
    response_t *r = call(&s, "GET", "/metrics");
    expect_valid_exposition(r);
    const char *m = r->body;
    cr_assert_eq(metric(m, HIST("count", "set") "}"), CLIENTS * ROUNDS);
    cr_assert_eq(metric(m, "tiercache_l1_hits_total{" LABELS "}"), CLIENTS * ROUNDS);
    cr_assert_eq(metric(m, "tiercache_l1_entries{" LABELS "}"), CLIENTS * ROUNDS);
    cr_assert_eq(stop_with(&s, SIGTERM), 0);
}

Test(metrics_server, sigint_stops_it_cleanly_while_idle) {
    server_t s;
    start(&s);
    expect(&s, "GET", "/metrics", 200, NULL);
    uint64_t t0 = tc_test_now_ms();
    cr_assert_eq(stop_with(&s, SIGINT), 0, "metrics_server did not exit 0 on SIGINT");
    cr_assert_lt(tc_test_now_ms() - t0, 2000 * TC_TEST_SLOW, "an idle server stops at once");
}
