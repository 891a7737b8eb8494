/*
 * test_examples_http_sqlite.c - examples/http_sqlite run as a service would run it: real
 * processes on a private redis-server and a real SQLite database file, driven over HTTP.
 *
 * What must hold, and how each check could fail:
 * - GET /users/<id> answers the row the test wrote into the database itself (the loader
 *   really queries SQLite), 404 for a missing one.
 * - Reads are cached: after the test changes a row behind the server's back, the server
 *   keeps answering the cached row (a server that bypassed the cache would not).
 * - PUT writes the database (the test reads it back directly) and then invalidates: the
 *   next GET answers the new row, on the same server and on a second server process
 *   sharing the Redis and the file, whose L1 held the old row (without the invalidation
 *   it would serve that for the whole TTL); a cached "no such user" goes the same way.
 * - ?via=through and ?via=behind go through the writer (tc_config_t.writer): the row and
 *   its version land in the database, every server reads the new name, POST /flush waits
 *   for the queue; DELETE removes the row and every cached copy.
 * - Loaders on tiercache's refresh threads work (stale-while-revalidate): the per-thread
 *   connection design the example explains.
 * - Many clients at once each read their own writes; /metrics is Prometheus text whose
 *   counters the requests moved; SIGTERM stops the server with exit 0 (under ASan: no
 *   leak either, or the exit status says so).
 *
 * The binary's path comes from TC_TEST_HTTP_SQLITE_PATH (tests/CMakeLists.txt); without
 * the example (no libsqlite3, or TC_BUILD_EXAMPLES=OFF) the suite skips.
 */
/* tc-test-labels: integration */
#include "exproc.h"
#include "peer.h"
#include "promtext.h"
#include "redis_server.h"

#include <criterion/criterion.h>

#ifndef TC_TEST_HTTP_SQLITE_PATH

Test(http_sqlite, skipped) {
    cr_skip_test("examples/http_sqlite is not built (no libsqlite3, or TC_BUILD_EXAMPLES=OFF)");
}

#else

#include <sqlite3.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define START_MS (10000 * TC_TEST_SLOW)
#define IO_SEC   (5 * TC_TEST_SLOW)
#define WAIT_MS  (3000 * TC_TEST_SLOW) /* longest wait for an invalidation or a refresh */

typedef struct server {
    pid_t pid;
    unsigned port;
} server_t;

static tc_test_redis_t *redis;
static char db_path[512];

/* ---- the database, as the test sees it ---- */

static sqlite3 *db_open(void) {
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void db_exec(const char *sql) {
    sqlite3 *db = db_open();
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
    sqlite3_close(db);
}

/* The name stored for id, read straight from the file ("" when there is no row). */
static void db_name(long id, char *out, size_t cap) {
    sqlite3 *db = db_open();
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT name FROM users WHERE id = ?1", -1, &st, NULL),
                 SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A fresh Redis and a database file with two users, in Redis's private directory. */
static void setup(void) {
    redis = tc_test_redis_start(NULL);
    snprintf(db_path, sizeof db_path, "%s/users.db", tc_test_redis_dir(redis));
    db_exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
            "INSERT INTO users VALUES (1, 'Ada'), (2, 'Grace');");
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    redis = NULL;
}

/* ---- the server ---- */

static server_t start_with(const char *const *extra_env) {
    char url[600];
    snprintf(url, sizeof url, "TIERCACHE_REDIS_URL=%s", tc_test_redis_url(redis));
    const char *env[8] = {url, "TIERCACHE_REQUIRE_REDIS=1"};
    for (int i = 0; extra_env && extra_env[i] && i < 5; i++)
        env[2 + i] = extra_env[i];
    const char *argv[] = {TC_TEST_HTTP_SQLITE_PATH, db_path, "0", NULL};
    server_t s = {0};
    const char *why;
    s.pid = tc_test_start_server(argv, env, START_MS, &s.port, &why);
    cr_assert_gt(s.pid, 0, "http_sqlite did not start: %s", why);
    return s;
}

static server_t start(void) {
    return start_with(NULL);
}

static void stop(server_t *s) {
    int rc = tc_test_stop_server(s->pid, SIGTERM, 5000 * TC_TEST_SLOW);
    cr_assert_eq(rc, 0, "http_sqlite did not exit 0 on SIGTERM (status %d)", rc);
}

static tc_test_http_t *call(const server_t *s, const char *method, const char *target,
                            const char *body) {
    static tc_test_http_t r; /* the test's thread only */
    cr_assert_eq(tc_test_http(s->port, method, target, body, IO_SEC, &r), 0,
                 "%s %s: no complete answer", method, target);
    return &r;
}

/* method target [body] must answer status, and want as its body when want is not NULL. */
static void expect(const server_t *s, const char *method, const char *target, const char *body,
                   int status, const char *want) {
    tc_test_http_t *r = call(s, method, target, body);
    cr_assert_eq(r->status, status, "%s %s: %d %s", method, target, r->status, r->body);
    if (want)
        cr_assert_str_eq(r->body, want, "%s %s", method, target);
}

/* Poll GET target until it answers status with body want; the milliseconds it took. */
static long wait_for(const server_t *s, const char *target, int status, const char *want) {
    uint64_t t0 = tc_test_now_ms();
    tc_test_http_t *r;
    for (;;) {
        r = call(s, "GET", target, NULL);
        if (r->status == status && (!want || strcmp(r->body, want) == 0))
            return (long)(tc_test_now_ms() - t0);
        if (tc_test_now_ms() - t0 > WAIT_MS)
            break;
        tc_test_sleep_ms(10);
    }
    cr_assert_fail("GET %s still answers %d %s after %d ms (want %d %s)", target, r->status,
                   r->body, WAIT_MS, status, want ? want : "");
    return -1;
}

/* The value of the one sample `series` in a /metrics body. */
static double metric(const char *text, const char *series) {
    char prefix[256];
    snprintf(prefix, sizeof prefix, "\n%s ", series);
    const char *at = strstr(text, prefix);
    cr_assert_not_null(at, "no sample %s in:\n%.2000s", series, text);
    return strtod(at + strlen(prefix), NULL);
}

/* ---- tests ---- */

TestSuite(http_sqlite, .init = setup, .fini = teardown);

Test(http_sqlite, get_answers_the_database_row_and_caches_it) {
    server_t s = start();
    expect(&s, "GET", "/users/1", NULL, 200, "{\"id\":1,\"name\":\"Ada\"}");
    cr_assert_not_null(
        strstr(call(&s, "GET", "/users/2", NULL)->head, "\r\nContent-Type: application/json"));
    expect(&s, "GET", "/users/3", NULL, 404, NULL);

    /* behind the server's back: the cache keeps answering what it loaded */
    db_exec("UPDATE users SET name = 'changed behind the cache' WHERE id = 1;"
            "INSERT INTO users (id, name) VALUES (3, 'Alan');");
    expect(&s, "GET", "/users/1", NULL, 200, "{\"id\":1,\"name\":\"Ada\"}");
    expect(&s, "GET", "/users/3", NULL, 404, NULL); /* "no such user" is cached too */

    expect(&s, "GET", "/users/abc", NULL, 404, NULL);
    expect(&s, "PATCH", "/users/1", NULL, 405, NULL);
    expect(&s, "PUT", "/users/1", NULL, 411, NULL);

    tc_test_http_t *r = call(&s, "GET", "/metrics", NULL);
    cr_assert_eq(r->status, 200);
    tc_test_prom_t *e = malloc(sizeof *e);
    cr_assert_not_null(e);
    cr_assert(tc_test_prom_parse(e, r->body, r->body_len), "%s", e->error);
    free(e);
    cr_assert_eq(metric(r->body, "tiercache_loads_total"), 3,
                 "users 1, 2 and 3: one query each");
    double hits = metric(r->body, "tiercache_l1_hits_total");
    cr_assert_eq(hits, 2, "user 1 and the absence of user 3 from L1: %g", hits);
    cr_assert_eq(metric(r->body, "tiercache_negative_hits_total"), 1);
    stop(&s);
}

Test(http_sqlite, put_writes_the_database_and_invalidates_every_server) {
    server_t a = start(), b = start();
    /* b holds Grace in its L1, and "no such user" for 3 */
    for (int i = 0; i < 2; i++) {
        expect(&b, "GET", "/users/2", NULL, 200, "{\"id\":2,\"name\":\"Grace\"}");
        expect(&b, "GET", "/users/3", NULL, 404, NULL);
    }

    expect(&a, "PUT", "/users/2", "Grace Hopper\n", 200,
           "{\"id\":2,\"name\":\"Grace Hopper\"}");
    char name[128];
    db_name(2, name, sizeof name);
    cr_assert_str_eq(name, "Grace Hopper", "the PUT did not reach the database");
    expect(&a, "GET", "/users/2", NULL, 200, "{\"id\":2,\"name\":\"Grace Hopper\"}");
    long ms = wait_for(&b, "/users/2", 200, "{\"id\":2,\"name\":\"Grace Hopper\"}");
    cr_log_info("the other server answered the new row after %ld ms", ms);

    /* a new user, written through the other server: the cached absence goes too */
    expect(&a, "GET", "/users/3", NULL, 404, NULL);
    expect(&b, "PUT", "/users/3", "Alan \"Turing\"", 200,
           "{\"id\":3,\"name\":\"Alan \\\"Turing\\\"\"}");
    db_name(3, name, sizeof name);
    cr_assert_str_eq(name, "Alan \"Turing\"");
    wait_for(&a, "/users/3", 200, "{\"id\":3,\"name\":\"Alan \\\"Turing\\\"\"}");
    expect(&b, "GET", "/users/3", NULL, 200, "{\"id\":3,\"name\":\"Alan \\\"Turing\\\"\"}");

    /* b's listener applies the echoes of its own writes on its own time: poll. */
    uint64_t t0 = tc_test_now_ms();
    tc_test_http_t *r = call(&b, "GET", "/metrics", NULL);
    while (metric(r->body, "tiercache_inval_applied_total") < 2 &&
           tc_test_now_ms() - t0 <= WAIT_MS) {
        tc_test_sleep_ms(10);
        r = call(&b, "GET", "/metrics", NULL);
    }
    cr_assert_geq(metric(r->body, "tiercache_inval_applied_total"), 2);
    stop(&a);
    stop(&b);
}

/* The version the writer stored for id (-1 when there is no row). */
static long long db_version(long id) {
    sqlite3 *db = db_open();
    sqlite3_stmt *st;
    cr_assert_eq(
        sqlite3_prepare_v2(db, "SELECT version FROM users WHERE id = ?1", -1, &st, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, id);
    long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ?via=through: the writer writes the row (with the write's version, in the column the
 * example added to the older table), then every server reads the new name; ?via=behind:
 * the server that wrote answers the new name at once (202), the row follows, and POST
 * /flush returns once it is there; DELETE through the writer and cache-aside both remove
 * the row and the cached copy everywhere. A server whose writer were not wired in, or
 * whose cache kept the old name, fails here. */
Test(http_sqlite, write_through_and_write_behind_reach_the_database) {
    server_t a = start(), b = start();
    expect(&b, "GET", "/users/1", NULL, 200, "{\"id\":1,\"name\":\"Ada\"}");
    cr_assert_eq(db_version(1), 0, "the example did not add the version column");

    expect(&a, "PUT", "/users/1?via=through", "Ada Lovelace", 200,
           "{\"id\":1,\"name\":\"Ada Lovelace\"}");
    char name[128];
    db_name(1, name, sizeof name);
    cr_assert_str_eq(name, "Ada Lovelace", "write-through did not write the database");
    long long v1 = db_version(1);
    cr_assert_gt(v1, 0, "the writer did not store the write's version");
    expect(&a, "GET", "/users/1", NULL, 200, "{\"id\":1,\"name\":\"Ada Lovelace\"}");
    wait_for(&b, "/users/1", 200, "{\"id\":1,\"name\":\"Ada Lovelace\"}");

    expect(&b, "PUT", "/users/1?via=behind", "Countess", 202,
           "{\"id\":1,\"name\":\"Countess\"}");
    expect(&b, "GET", "/users/1", NULL, 200, "{\"id\":1,\"name\":\"Countess\"}");
    expect(&b, "POST", "/flush", NULL, 200, "flushed\n");
    db_name(1, name, sizeof name);
    cr_assert_str_eq(name, "Countess", "write-behind never reached the database");
    cr_assert_gt(db_version(1), v1, "write-behind's version is not newer");
    wait_for(&a, "/users/1", 200, "{\"id\":1,\"name\":\"Countess\"}");

    expect(&a, "DELETE", "/users/1?via=through", NULL, 200, "deleted\n");
    cr_assert_eq(db_version(1), -1, "the delete did not reach the database");
    expect(&a, "GET", "/users/1", NULL, 404, NULL);
    wait_for(&b, "/users/1", 404, NULL);
    expect(&b, "DELETE", "/users/2", NULL, 200, "deleted\n"); /* cache-aside */
    db_name(2, name, sizeof name);
    cr_assert_str_eq(name, "", "the cache-aside delete did not reach the database");
    wait_for(&a, "/users/2", 404, NULL);

    expect(&a, "PUT", "/users/4?via=sideways", "x", 400, NULL);
    expect(&a, "GET", "/users/4?via=behind", NULL, 400, NULL);
    expect(&a, "GET", "/flush", NULL, 405, NULL);
    stop(&a);
    stop(&b);
}

Test(http_sqlite, loaders_run_on_refresh_threads_too) {
    /* 300 ms fresh, then stale for a minute: a read past the TTL answers the old row at
     * once and one of tiercache's refresh threads runs the loader (its own connection). */
    const char *env[] = {"TIERCACHE_DEFAULT_TTL=300ms", "TIERCACHE_TTL_JITTER=0",
                         "TIERCACHE_STALE_TTL=1m", NULL};
    server_t s = start_with(env);
    expect(&s, "GET", "/users/1", NULL, 200, "{\"id\":1,\"name\":\"Ada\"}");
    db_exec("UPDATE users SET name = 'Ada Lovelace' WHERE id = 1");
    tc_test_sleep_ms(400);
    wait_for(&s, "/users/1", 200, "{\"id\":1,\"name\":\"Ada Lovelace\"}");
    tc_test_http_t *r = call(&s, "GET", "/metrics", NULL);
    cr_assert_geq(metric(r->body, "tiercache_stale_refreshes_total"), 1,
                  "the new row did not come from a background refresh");
    cr_assert_eq(metric(r->body, "tiercache_load_errors_total"), 0);
    stop(&s);
}

enum { CLIENTS = 8, ROUNDS = 20 };

typedef struct client {
    unsigned port;
    int id;
    int failures;
    char first[256]; /* the first failure */
} client_t;

/* Each client writes its own user and reads it back, through the cache, every round. */
static void *client_main(void *arg) {
    client_t *c = arg;
    tc_test_http_t *r = malloc(sizeof *r);
    for (int i = 0; r && i < ROUNDS; i++) {
        char target[64], name[64], want[128];
        snprintf(target, sizeof target, "/users/%d", 100 + c->id);
        snprintf(name, sizeof name, "client %d round %d", c->id, i);
        snprintf(want, sizeof want, "{\"id\":%d,\"name\":\"%s\"}", 100 + c->id, name);
        int ok = tc_test_http(c->port, "PUT", target, name, IO_SEC, r) == 0 && r->status == 200;
        ok = ok && tc_test_http(c->port, "GET", target, NULL, IO_SEC, r) == 0 &&
             r->status == 200 && strcmp(r->body, want) == 0;
        if (!ok && c->failures++ == 0)
            snprintf(c->first, sizeof c->first, "round %d: %.200s", i, r->raw);
    }
    c->failures += !r;
    free(r);
    return NULL;
}

Test(http_sqlite, many_clients_read_their_own_writes) {
    server_t s = start();
    pthread_t threads[CLIENTS];
    client_t clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = (client_t){.port = s.port, .id = i};
        cr_assert_eq(pthread_create(&threads[i], NULL, client_main, &clients[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        cr_assert_eq(clients[i].failures, 0, "client %d failed %d times; first: %s", i,
                     clients[i].failures, clients[i].first);
    }
    for (int i = 0; i < CLIENTS; i++) {
        char name[64], want[64];
        db_name(100 + i, name, sizeof name);
        snprintf(want, sizeof want, "client %d round %d", i, ROUNDS - 1);
        cr_assert_str_eq(name, want);
    }
    tc_test_http_t *r = call(&s, "GET", "/metrics", NULL);
    cr_assert_eq(metric(r->body, "tiercache_loads_total"), CLIENTS * ROUNDS,
                 "every GET after a PUT must load the new row once");
    stop(&s);
}

#endif /* TC_TEST_HTTP_SQLITE_PATH */
