/*
 * test_examples_two_process.c - examples/two_process run as a user would run it, on a
 * private redis-server: one process writes, a second one (the program re-executed)
 * reads, and what it prints is the test's evidence.
 *
 * The reader must say, in this order: it read v1 from Redis, then from its own L1; its
 * listener received the invalidation of the writer's v2; its next read came from Redis
 * and saw v2; after the writer's delete, the key is gone. The two must be two processes
 * (different pids), the program must exit 0, and Redis must no longer hold the key. A
 * broken invalidation path (no message, or an L1 copy that survives it) makes the reader
 * print the failure and the program exit 1; without Redis it refuses to run (exit 2).
 *
 * The binary's path comes from TC_TEST_TWO_PROCESS_PATH (tests/CMakeLists.txt); a build
 * without the examples skips these tests.
 */
/* tc-test-labels: integration */
#include "exproc.h"
#include "peer.h"
#include "redis_server.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_MS (20000 * TC_TEST_SLOW)

#ifndef TC_TEST_TWO_PROCESS_PATH
#define SKIP_UNLESS_BUILT()      cr_skip_test("examples/two_process is not built")
#define TC_TEST_TWO_PROCESS_PATH "/nonexistent"
#else
#define SKIP_UNLESS_BUILT() (void)0
#endif

/* The line of out that starts with prefix and contains what, at or after *from; it moves
 * *from past it, so successive calls check the order. */
static void expect_line(const char *out, const char **from, const char *prefix,
                        const char *what) {
    for (const char *line = *from; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *copy = strndup(line, len);
        int match = strncmp(copy, prefix, strlen(prefix)) == 0 && strstr(copy, what);
        free(copy);
        line += len + (end != NULL);
        if (match) {
            *from = line;
            return;
        }
    }
    cr_assert_fail("no line \"%s...%s\" (in order) in:\n%s", prefix, what, out);
}

Test(two_process, the_reader_sees_the_write_and_its_l1_copy_is_invalidated) {
    SKIP_UNLESS_BUILT();
    tc_test_redis_t *redis = tc_test_redis_start(NULL);
    char url[600];
    snprintf(url, sizeof url, "TIERCACHE_REDIS_URL=%s", tc_test_redis_url(redis));
    const char *env[] = {url, NULL};
    const char *argv[] = {TC_TEST_TWO_PROCESS_PATH, NULL};
    char *out, *err;
    int rc = tc_test_run(argv, env, &out, &err, RUN_MS);
    cr_assert_eq(rc, 0, "two_process exited %d\nstdout:\n%s\nstderr:\n%s", rc, out, err);

    long writer = 0, reader = 0;
    cr_assert_eq(sscanf(out, "writer (pid %ld)", &writer), 1, "%s", out);
    const char *r = strstr(out, "reader (pid ");
    cr_assert_not_null(r, "%s", out);
    cr_assert_eq(sscanf(r, "reader (pid %ld)", &reader), 1);
    cr_assert_neq(writer, reader, "the reader must be a second process");

    char w[64], rd[64];
    snprintf(w, sizeof w, "writer (pid %ld): ", writer);
    snprintf(rd, sizeof rd, "reader (pid %ld): ", reader);
    const char *at = out;
    expect_line(out, &at, w, "tc_set greeting = \"hello v1\": TC_OK");
    expect_line(out, &at, rd, "read greeting = \"hello v1\" (from Redis)");
    expect_line(out, &at, rd, "read greeting = \"hello v1\" (from its own L1)");
    expect_line(out, &at, w, "tc_set greeting = \"hello v2\": TC_OK");
    expect_line(out, &at, rd, "invalidation received: its L1 copy of greeting was evicted");
    expect_line(out, &at, rd, "read greeting = \"hello v2\" (from Redis)");
    expect_line(out, &at, rd, "saw the write: \"hello v2\"");
    expect_line(out, &at, w, "tc_del greeting: TC_OK");
    expect_line(out, &at, rd, "invalidation received: greeting deleted everywhere");
    expect_line(out, &at, rd, "read greeting: TC_ENOTFOUND");
    expect_line(out, &at, rd, "all as expected");
    expect_line(out, &at, w, "the reader exited 0");

    /* and Redis agrees: the delete went through */
    redisContext *c = tc_test_redis_connect(redis);
    cr_assert_not_null(c);
    redisReply *reply = redisCommand(c, "EXISTS two_process:k:greeting");
    cr_assert(reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0,
              "the key is still in Redis");
    freeReplyObject(reply);
    redisFree(c);
    free(out);
    free(err);
    tc_test_redis_stop(redis);
}

Test(two_process, refuses_to_run_without_redis) {
    SKIP_UNLESS_BUILT();
    const char *argv[] = {TC_TEST_TWO_PROCESS_PATH, NULL};
    char *out, *err;
    int rc = tc_test_run(argv, NULL, &out, &err, RUN_MS);
    cr_assert_eq(rc, 2, "exit %d, stderr: %s", rc, err);
    cr_assert_not_null(strstr(err, "TIERCACHE_REDIS_URL"), "%s", err);
    free(out);
    free(err);
}
