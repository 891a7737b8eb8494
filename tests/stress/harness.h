/*
 * harness.h - the test's side of the tc-stress workers, shared by every suite that runs
 * them (test_coherence.c: tiercache writers under faults; test_foreign.c: readers of a
 * foreign writer's keys).
 *
 * A suite spawns its workers (real processes, exec'd, each with its own cache), drives
 * them through the oracle's phases, and then reads every worker's report to EOF, adds the
 * reports up and asserts the verdicts. What differs between suites, the load and the
 * faults, stays in the suite; what a report means and what "coherent" requires is here,
 * so both suites judge by the same rules.
 *
 * Everything here asserts with Criterion: it is linked into test binaries only, never
 * into tc-stress.
 */
#ifndef TC_STRESS_HARNESS_H
#define TC_STRESS_HARNESS_H

#include "oracle.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef TC_TEST_STRESS_PATH
#define TC_TEST_STRESS_PATH "tc-stress"
#endif

enum {
    TC_HARNESS_MAX_PROCS = 8,
    TC_HARNESS_REPORT_MAX = 64 * 1024,
    TC_HARNESS_POLL_MS = 10,
    TC_HARNESS_LINE_MAX = 512,
};

#define TC_HARNESS_READY_TIMEOUT_MS  (10000u * TC_TEST_SLOW)
#define TC_HARNESS_REPORT_TIMEOUT_MS (30000u * TC_TEST_SLOW)
#define TC_HARNESS_UNJUDGED_MAX_PER  100u /* at most 1 value in 100 may be too old to judge */

typedef struct tc_worker_proc {
    pid_t pid;
    int out; /* read end of its stdout */
    int status;
    size_t len;
    char report[TC_HARNESS_REPORT_MAX];
} tc_worker_proc_t;

typedef struct tc_workers {
    unsigned n;
    tc_worker_proc_t w[TC_HARNESS_MAX_PROCS];
} tc_workers_t;

/* n workers, none started yet. */
void tc_workers_init(tc_workers_t *ws, unsigned n);
/* Start worker i: argv[0] is the program, NULL-terminated; its stdout is kept for the
 * report, and it dies with the test (parent death signal). */
void tc_workers_spawn(tc_workers_t *ws, unsigned i, const char *const argv[]);
/* SIGKILL and reap every worker still running; close their pipes. Safe to call twice. */
void tc_workers_stop(tc_workers_t *ws);
/* Wait until count(o) reaches the number of workers; fails the test when a worker exited
 * or timeout_ms passed. */
void tc_workers_wait(tc_workers_t *ws, const tc_oracle_t *o,
                     unsigned (*count)(const tc_oracle_t *), const char *what,
                     unsigned timeout_ms);
/* Read every report to EOF and reap its worker. */
void tc_workers_collect(tc_workers_t *ws);
/* Every report, line by line, on stderr, each line tagged "<tag>: worker <i>: ". */
void tc_workers_print(const tc_workers_t *ws, const char *tag);
/* The first line of worker i's report that starts with prefix, or NULL. */
const char *tc_workers_line(const tc_workers_t *ws, unsigned i, const char *prefix);

/* The workers' summaries, added up, with the first examples of each verdict. */
typedef struct tc_stress_totals {
    uint64_t reads, values, stale, impossible, unjudged, disagree, sets_ok, sets_maybe;
    uint64_t dels_ok, dels_maybe;
    uint64_t stale_by_fault[TC_FAULT_COUNT + 1];
    char first_stale[TC_HARNESS_LINE_MAX], first_impossible[TC_HARNESS_LINE_MAX];
    char first_disagree[320], worst_stale[TC_HARNESS_LINE_MAX];
    uint64_t worst_late_ms;
} tc_stress_totals_t;

/* Add up every worker's report; fails the test when one has no summary or did not exit 0. */
void tc_stress_totals(const tc_workers_t *ws, tc_stress_totals_t *t);
/* The verdicts (expected, not asserted, so that a failure reports every one of them):
 * at least min_reads reads; nearly every value judged; no value nobody wrote; no value
 * stale beyond bound_ms; after quiesce, every cache agrees with Redis. */
void tc_stress_expect_coherent(const tc_stress_totals_t *t, uint64_t min_reads,
                               unsigned bound_ms);

#endif
