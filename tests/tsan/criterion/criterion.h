/*
 * tests/tsan/criterion/criterion.h - a small stand-in for Criterion, used only by the
 * ThreadSanitizer build.
 *
 * Why: Criterion 2.4 cannot start under TSan (its boxfort "inheritable arena" fails with
 * EAGAIN: Criterion issue #274, open), so the concurrency suites would never run under the
 * sanitizer that matters most for them. This header gives those same suites, unchanged, the
 * subset of Criterion they use: Test / TestSuite with .init .fini .timeout .disabled, and the
 * cr_assert_* / cr_expect_* / cr_log_* macros. It is not a mock of anything under test: it is
 * a test runner, and tiercache, Redis and the peers stay real.
 *
 * Each test runs in its own forked child (as Criterion does), so a failed assertion or a
 * crash fails that test only; .timeout becomes alarm(). The runner forks before any thread
 * exists, which TSan supports. It prints Criterion's synthesis line and the plain
 * "N passed, N failed" line, and exits non-zero when any test failed.
 * Every definition is static: each test binary includes this header from one test file,
 * and support code compiled for this build includes it too, so the registry lives in a
 * weak symbol shared by all of them.
 */
#ifndef TC_TSAN_CRITERION_SHIM_H
#define TC_TSAN_CRITERION_SHIM_H

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct tc_shim_test {
    const char *suite_name, *test_name;
    void (*body)(void);
    void (*init)(void);
    void (*fini)(void);
    double timeout;
    int disabled;
    const char *description;
    int exit_code, signal;
    struct tc_shim_test *next;
};

struct tc_shim_registry {
    struct tc_shim_test *tests, *last;
    struct tc_shim_test *suites;
};

__attribute__((weak)) struct tc_shim_registry tc_shim_registry_;

static inline void tc_shim_add(struct tc_shim_test **head, struct tc_shim_test **last,
                               struct tc_shim_test *t) {
    t->next = NULL;
    if (last && *last)
        (*last)->next = t;
    else if (!*head)
        *head = t;
    else {
        struct tc_shim_test *p = *head;
        while (p->next)
            p = p->next;
        p->next = t;
    }
    if (last)
        *last = t;
}

#define TC_SHIM_CAT2(a, b) a##_##b
#define TC_SHIM_CAT(a, b)  TC_SHIM_CAT2(a, b)

#define Test(suite, name, ...)                                                                 \
    static void suite##_##name##_impl(void);                                                   \
    static struct tc_shim_test suite##_##name##_desc = {                                       \
        .suite_name = #suite, .test_name = #name, .body = suite##_##name##_impl, __VA_ARGS__}; \
    __attribute__((constructor)) static void suite##_##name##_reg(void) {                      \
        tc_shim_add(&tc_shim_registry_.tests, &tc_shim_registry_.last,                         \
                    &suite##_##name##_desc);                                                   \
    }                                                                                          \
    static void suite##_##name##_impl(void)

#define TestSuite(suite, ...)                                                                  \
    static struct tc_shim_test suite##_suite_desc = {.suite_name = #suite, __VA_ARGS__};       \
    __attribute__((constructor)) static void suite##_suite_reg(void) {                         \
        tc_shim_add(&tc_shim_registry_.suites, NULL, &suite##_suite_desc);                     \
    }

static inline void tc_shim_fail(int fatal, const char *file, int line, const char *expr,
                                const char *fmt, ...) {
    char msg[1024] = "";
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "[----] %s:%d: Assertion failed: %s%s%s\n", file, line, expr,
            *msg ? ": " : "", msg);
    fflush(stderr);
    if (fatal)
        exit(1); /* not _exit: TSan's end-of-run report and cleanup hooks must run */
    setenv("TC_SHIM_EXPECT_FAILED", "1", 1);
}

/* The first variadic argument, when present, is always a string literal (Criterion's
 * message format), so "" __VA_ARGS__ yields the format or an empty one. */
#define TC_SHIM_CHECK(fatal, cond, expr, ...)                                                  \
    do {                                                                                       \
        if (!(cond))                                                                           \
            tc_shim_fail(fatal, __FILE__, __LINE__, expr, "" __VA_ARGS__);                     \
    } while (0)

#define cr_assert(cond, ...)       TC_SHIM_CHECK(1, (cond), #cond, __VA_ARGS__)
#define cr_assert_not(cond, ...)   TC_SHIM_CHECK(1, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...)    TC_SHIM_CHECK(1, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...)   TC_SHIM_CHECK(1, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...)    TC_SHIM_CHECK(1, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...)   TC_SHIM_CHECK(1, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...)    TC_SHIM_CHECK(1, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...)   TC_SHIM_CHECK(1, (a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...)     TC_SHIM_CHECK(1, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) TC_SHIM_CHECK(1, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                                            \
    TC_SHIM_CHECK(1, strcmp((a), (b)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...)                                                           \
    TC_SHIM_CHECK(1, strcmp((a), (b)) != 0, #a " differs from " #b, __VA_ARGS__)
#define cr_assert_str_empty(a, ...)                                                            \
    TC_SHIM_CHECK(1, (a)[0] == '\0', #a " is empty", __VA_ARGS__)
#define cr_assert_arr_eq(a, b, n, ...)                                                         \
    TC_SHIM_CHECK(1, memcmp((a), (b), (n)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...)                                                     \
    TC_SHIM_CHECK(1, fabs((double)(a) - (double)(b)) <= (eps), #a " ~= " #b, __VA_ARGS__)
#define cr_assert_fail(...)                                                                    \
    tc_shim_fail(1, __FILE__, __LINE__, "cr_assert_fail", "" __VA_ARGS__)
#define cr_fatal(...)            tc_shim_fail(1, __FILE__, __LINE__, "cr_fatal", "" __VA_ARGS__)
#define cr_expect(cond, ...)     TC_SHIM_CHECK(0, (cond), #cond, __VA_ARGS__)
#define cr_expect_eq(a, b, ...)  TC_SHIM_CHECK(0, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) TC_SHIM_CHECK(0, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...)  TC_SHIM_CHECK(0, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) TC_SHIM_CHECK(0, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...)  TC_SHIM_CHECK(0, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) TC_SHIM_CHECK(0, (a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_log_info(...)         (fprintf(stderr, "[LOG ] " __VA_ARGS__), fputc('\n', stderr))
#define cr_log_warn(...)         (fprintf(stderr, "[WARN] " __VA_ARGS__), fputc('\n', stderr))
#define cr_log_error(...)        (fprintf(stderr, "[ERR ] " __VA_ARGS__), fputc('\n', stderr))

static inline const struct tc_shim_test *tc_shim_suite(const char *name) {
    for (const struct tc_shim_test *s = tc_shim_registry_.suites; s; s = s->next)
        if (strcmp(s->suite_name, name) == 0)
            return s;
    return NULL;
}

/* Run one test in a child; returns 1 when it passed. */
static inline int tc_shim_run_one(const struct tc_shim_test *t) {
    const struct tc_shim_test *s = tc_shim_suite(t->suite_name);
    void (*init)(void) = t->init ? t->init : (s ? s->init : NULL);
    void (*fini)(void) = t->fini ? t->fini : (s ? s->fini : NULL);
    double timeout = t->timeout > 0 ? t->timeout : (s ? s->timeout : 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        if (timeout > 0)
            alarm((unsigned)timeout + 1);
        if (init)
            init();
        t->body();
        if (fini)
            fini();
        fflush(NULL);
        exit(getenv("TC_SHIM_EXPECT_FAILED") ? 1 : 0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 1;
    if (WIFSIGNALED(status))
        fprintf(stderr, "[FAIL] %s::%s: crashed or timed out (signal %d)\n", t->suite_name,
                t->test_name, WTERMSIG(status));
    else
        fprintf(stderr, "[FAIL] %s::%s: exit %d\n", t->suite_name, t->test_name,
                WEXITSTATUS(status));
    return 0;
}

__attribute__((weak)) int main(int argc, char **argv) {
    (void)argc;
    (void)argv; /* --jobs / --ascii: accepted and ignored, tests run one at a time */
    int passed = 0, failed = 0;
    for (const struct tc_shim_test *t = tc_shim_registry_.tests; t; t = t->next) {
        if (t->disabled)
            continue;
        if (tc_shim_run_one(t)) {
            passed++;
            fprintf(stderr, "[PASS] %s::%s\n", t->suite_name, t->test_name);
        } else {
            failed++;
        }
    }
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: 0\n",
            passed + failed, passed, failed);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : (passed ? 0 : 1);
}

#endif
