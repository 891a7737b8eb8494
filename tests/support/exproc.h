/*
 * exproc.h - examples run as real processes, for the tests/test_examples_*.c suites.
 *
 * An example is documentation that executes, so its tests run the built binary as an
 * operator would: its own process, configured only through its environment and
 * arguments, judged by what it prints, what it answers over HTTP and how it exits.
 *
 * Every child gets the test's environment without TIERCACHE_* and METRICS_* variables
 * (a developer's settings must not leak in) plus the entries given, and dies with the
 * test process (PR_SET_PDEATHSIG: start children from the test's main thread). Every
 * wait is bounded. Nothing here asserts: failures come back as -1 (and a reason where
 * one is given), so that client threads can use the HTTP client and the suites decide.
 */
#ifndef TC_TEST_EXPROC_H
#define TC_TEST_EXPROC_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Run argv (argv[0] a path) to completion with env (NULL-terminated "NAME=VALUE" entries,
 * or NULL) added to its environment. Its stdout and stderr are captured into *out and *err
 * (malloc'd, NUL-terminated, the caller frees; either pointer may be NULL to discard).
 * Returns the exit status (0..255), 128 + the signal that killed it, or -1 when it had not
 * finished within timeout_ms (it is then killed) or could not be started.
 */
int tc_test_run(const char *const *argv, const char *const *env, char **out, char **err,
                unsigned timeout_ms);

/*
 * Start a server that prints "listening on 127.0.0.1:PORT" as its first stdout line (its
 * stderr stays the test's). Returns its pid and *port, or -1 with *why set (a static
 * string) when it did not start or print that within timeout_ms (it is then killed).
 */
pid_t tc_test_start_server(const char *const *argv, const char *const *env, unsigned timeout_ms,
                           unsigned *port, const char **why);

/* Send sig, then reap within timeout_ms. The exit status as tc_test_run gives it, or -1
 * when the process had to be killed with SIGKILL. */
int tc_test_stop_server(pid_t pid, int sig, unsigned timeout_ms);

/* One HTTP/1.1 exchange on a fresh connection to 127.0.0.1:port. */
typedef struct tc_test_http {
    int status;
    char head[1024]; /* status line and headers */
    char *body;      /* into raw, NUL-terminated */
    size_t body_len;
    char raw[65536];
} tc_test_http_t;

/* Send method target (and body with a Content-Length when body is not NULL), read the
 * whole answer (the servers close after one). 0 and *r filled, or -1 when there was no
 * complete answer within io_sec seconds per read. */
int tc_test_http(unsigned port, const char *method, const char *target, const char *body,
                 int io_sec, tc_test_http_t *r);

#endif
