/*
 * harness.c - spawning, reaping and reading tc-stress workers, and judging their reports
 * (see harness.h).
 *
 * A worker is exec'd, never merely forked: the test process may hold threads, caches and
 * Redis connections that a forked copy would share. Between fork and exec the child makes
 * only async-signal-safe calls. Reports are read only after the test set VERIFY, so a
 * worker's pipe never fills while it runs: its few lines fit in the pipe buffer until
 * then, and the harness drains each one to EOF.
 */
#include "harness.h"

#include "peer.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void tc_workers_init(tc_workers_t *ws, unsigned n) {
    cr_assert_leq(n, TC_HARNESS_MAX_PROCS, "at most %d workers", TC_HARNESS_MAX_PROCS);
    memset(ws, 0, sizeof *ws);
    ws->n = n;
    for (unsigned i = 0; i < n; i++)
        ws->w[i].out = -1;
}

/* In the child: only async-signal-safe calls until execv. */
static void child_exec(int out, const char *const argv[], pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (dup2(out, STDOUT_FILENO) < 0)
        _exit(127);
    if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

void tc_workers_spawn(tc_workers_t *ws, unsigned i, const char *const argv[]) {
    int fds[2];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0, "pipe: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec(fds[1], argv, parent);
    close(fds[1]);
    cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
    ws->w[i].pid = pid;
    ws->w[i].out = fds[0];
}

void tc_workers_stop(tc_workers_t *ws) {
    for (unsigned i = 0; i < ws->n; i++) {
        if (ws->w[i].pid > 0) {
            kill(ws->w[i].pid, SIGKILL);
            while (waitpid(ws->w[i].pid, NULL, 0) < 0 && errno == EINTR) {
            }
            ws->w[i].pid = 0;
        }
        if (ws->w[i].out >= 0)
            close(ws->w[i].out);
        ws->w[i].out = -1;
    }
}

/* A worker that has already exited (it failed to start): fail with its status. */
static void assert_alive(tc_workers_t *ws) {
    for (unsigned i = 0; i < ws->n; i++) {
        int st;
        pid_t got = waitpid(ws->w[i].pid, &st, WNOHANG);
        if (got == ws->w[i].pid) {
            ws->w[i].pid = 0;
            cr_assert_fail("worker %u exited early (status %d): see its stderr above", i, st);
        }
    }
}

void tc_workers_wait(tc_workers_t *ws, const tc_oracle_t *o,
                     unsigned (*count)(const tc_oracle_t *), const char *what,
                     unsigned timeout_ms) {
    uint64_t deadline = tc_test_now_ms() + timeout_ms;
    while (count(o) < ws->n) {
        assert_alive(ws);
        cr_assert(tc_test_now_ms() < deadline, "only %u of %u workers %s within %u ms",
                  count(o), ws->n, what, timeout_ms);
        tc_test_sleep_ms(TC_HARNESS_POLL_MS);
    }
}

/* Read one report to EOF (deadline: an absolute tc_test_now_ms), then reap its worker. */
static void collect_one(tc_worker_proc_t *w, unsigned i, uint64_t deadline) {
    for (;;) {
        uint64_t now = tc_test_now_ms();
        cr_assert(now < deadline, "worker %u did not finish its report within %u ms", i,
                  TC_HARNESS_REPORT_TIMEOUT_MS);
        struct pollfd pfd = {.fd = w->out, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t got = read(w->out, w->report + w->len, sizeof w->report - 1 - w->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        w->len += (size_t)got;
    }
    w->report[w->len] = '\0';
    while (waitpid(w->pid, &w->status, 0) < 0 && errno == EINTR) {
    }
    w->pid = 0;
    close(w->out);
    w->out = -1;
}

void tc_workers_collect(tc_workers_t *ws) {
    uint64_t deadline = tc_test_now_ms() + TC_HARNESS_REPORT_TIMEOUT_MS;
    for (unsigned i = 0; i < ws->n; i++)
        collect_one(&ws->w[i], i, deadline);
}

void tc_workers_print(const tc_workers_t *ws, const char *tag) {
    for (unsigned i = 0; i < ws->n; i++) {
        const char *p = ws->w[i].report;
        while (*p) {
            size_t n = strcspn(p, "\n");
            fprintf(stderr, "%s: worker %u: %.*s\n", tag, i, (int)n, p);
            p += n + (p[n] == '\n');
        }
    }
}

static const char *line_starting(const char *report, const char *prefix) {
    size_t n = strlen(prefix);
    for (const char *p = report; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, n) == 0)
            return p;
    return NULL;
}

const char *tc_workers_line(const tc_workers_t *ws, unsigned i, const char *prefix) {
    return line_starting(ws->w[i].report, prefix);
}

/* ---- totals ---- */

static void copy_line(char *dst, size_t cap, const char *line) {
    if (!line || dst[0])
        return;
    size_t n = strcspn(line, "\n");
    snprintf(dst, cap, "%.*s", (int)(n < cap ? n : cap - 1), line);
}

static uint64_t stat_of(const char *line, const char *name, unsigned i) {
    uint64_t v = tc_test_stat(line, name);
    cr_assert_neq(v, UINT64_MAX, "worker %u: no %s= in '%.80s'", i, name, line);
    return v;
}

static void add_summary(tc_stress_totals_t *t, unsigned i, const char *sum) {
    t->reads += stat_of(sum, "reads", i);
    t->values += stat_of(sum, "values", i);
    t->stale += stat_of(sum, "stale", i);
    t->impossible += stat_of(sum, "impossible", i);
    t->unjudged += stat_of(sum, "unjudged", i);
    t->disagree += stat_of(sum, "disagree", i);
    t->sets_ok += stat_of(sum, "sets_ok", i);
    t->sets_maybe += stat_of(sum, "sets_maybe", i);
    t->dels_ok += stat_of(sum, "dels_ok", i);
    t->dels_maybe += stat_of(sum, "dels_maybe", i);
}

static void add_report(tc_stress_totals_t *t, unsigned i, const tc_worker_proc_t *w) {
    const char *sum = line_starting(w->report, "summary ");
    cr_assert_not_null(sum, "worker %u printed no summary (exit status %d)", i, w->status);
    add_summary(t, i, sum);
    const char *byf = line_starting(w->report, "stale_by_fault ");
    for (int k = 0; byf && k <= TC_FAULT_COUNT; k++)
        t->stale_by_fault[k] += stat_of(byf, tc_fault_name(k < TC_FAULT_COUNT ? k : -1), i);
    copy_line(t->first_stale, sizeof t->first_stale, line_starting(w->report, "stale "));
    copy_line(t->first_impossible, sizeof t->first_impossible,
              line_starting(w->report, "impossible "));
    copy_line(t->first_disagree, sizeof t->first_disagree,
              line_starting(w->report, "disagree "));
    const char *worst = line_starting(w->report, "worst stale ");
    uint64_t late = worst ? tc_test_stat(worst, "late_ms") : 0;
    if (worst && late != UINT64_MAX && late >= t->worst_late_ms) {
        t->worst_late_ms = late;
        t->worst_stale[0] = '\0';
        copy_line(t->worst_stale, sizeof t->worst_stale, worst + strlen("worst "));
    }
}

void tc_stress_totals(const tc_workers_t *ws, tc_stress_totals_t *t) {
    memset(t, 0, sizeof *t);
    for (unsigned i = 0; i < ws->n; i++) {
        add_report(t, i, &ws->w[i]);
        cr_assert(WIFEXITED(ws->w[i].status) && WEXITSTATUS(ws->w[i].status) == 0,
                  "worker %u ended with status %d", i, ws->w[i].status);
    }
}

static void stale_by_fault_text(const tc_stress_totals_t *t, char *out, size_t cap) {
    size_t n = 0;
    out[0] = '\0';
    for (int k = 0; k <= TC_FAULT_COUNT && n < cap; k++)
        if (t->stale_by_fault[k])
            n += (size_t)snprintf(out + n, cap - n, " %s=%" PRIu64,
                                  tc_fault_name(k < TC_FAULT_COUNT ? k : -1),
                                  t->stale_by_fault[k]);
}

void tc_stress_expect_coherent(const tc_stress_totals_t *t, uint64_t min_reads,
                               unsigned bound_ms) {
    char byf[256];
    stale_by_fault_text(t, byf, sizeof byf);
    cr_assert_geq(t->reads, min_reads, "only %" PRIu64 " reads: too few to mean anything",
                  t->reads);
    cr_expect_eq(t->impossible, 0, "%" PRIu64 " reads returned a value nobody wrote; first: %s",
                 t->impossible, t->first_impossible);
    cr_expect_eq(t->stale, 0,
                 "%" PRIu64 " of %" PRIu64 " values read were stale beyond %u ms (by fault:%s);"
                 "\n  first: %s\n  worst: %s",
                 t->stale, t->values, bound_ms, byf, t->first_stale, t->worst_stale);
    cr_expect_eq(t->disagree, 0,
                 "%" PRIu64 " keys differ between a cache and Redis after quiesce; first: %s",
                 t->disagree, t->first_disagree);
    cr_expect_leq(t->unjudged * TC_HARNESS_UNJUDGED_MAX_PER, t->values,
                  "%" PRIu64 " of %" PRIu64 " values could not be judged: the oracle's rings "
                  "(TC_ORACLE_RING) forget writes too soon for this load",
                  t->unjudged, t->values);
}
