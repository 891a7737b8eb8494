/*
 * checks.h - what makes a benchmark figure untrustworthy, found and said out loud.
 *
 * A table of numbers looks equally sure of itself whether the machine was idle or half of
 * it went to someone else's build, and whether the L1 held its steady-state contents or
 * was still filling. The commands call these checks, and every report ends with what they
 * found, in the text (a WARNING block under the figures) and in the JSON ("warnings" and
 * "machine"), so a reader cannot take a suspect figure for a sound one.
 *
 * The machine check is the cpu-only calibration that micro and stampede print as a row
 * (tcb_cpu_work: a few nanoseconds of private arithmetic, no library, no memory), run as
 * a short probe before the command and again before its report: one thread, then one per
 * CPU. On a free machine every thread runs as fast as one alone; when other work holds
 * cores, the per-thread rate drops. Beside it, /proc/stat says how much CPU time other
 * processes (anything but this bench and its children, such as the throwaway
 * redis-server) took between the two probes, which also catches load that came and went
 * in the middle of the run.
 */
#ifndef TCB_CHECKS_H
#define TCB_CHECKS_H

#include "json.h"
#include "rng.h"

#include <stdint.h>
#include <stdio.h>

/* One cpu-only "operation": private arithmetic the compiler cannot drop. Returns 0. */
static inline int tcb_cpu_work(uint64_t i) {
    volatile uint64_t x = tcb_mix64(i);
    return x == 0 && i == UINT64_MAX; /* never: keeps the arithmetic */
}

/* Thresholds: below this share of its one-thread speed per thread, or beyond this share
 * of the machine's CPU time taken by other processes, the machine counts as busy. */
#define TCB_BUSY_PROBE_RATIO  0.80
#define TCB_BUSY_OTHERS_SHARE 0.10
/* An L1 holding less than this share of what it could hold did not fill. */
#define TCB_L1_FULL_SHARE 0.95

/* Record a warning for the report. It is also written to stderr at once when stdout is not
 * a terminal (a redirected report still shows it on the console). At most 32 are kept. */
void tcb_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tcb_warnings_count(void);
/* Forget every warning and the machine check (tests). */
void tcb_warnings_reset(void);

/* First half of the machine check: the cpu-only probe and the CPU counters. main() calls
 * it before every command that prints figures (about 0.2 s). */
void tcb_machine_begin(void);
/* Second half: the probe again and what other processes took since the first half; adds
 * the warnings. Runs once (later calls do nothing); the report functions below call it,
 * so a command need not. Without tcb_machine_begin it does nothing. */
void tcb_machine_judge(void);

/* Warn unless an L1 held at least TCB_L1_FULL_SHARE of what it `could` hold, in `unit`
 * ("entries", "bytes"): what = whose L1 ("tiercache L1 10%"), when = the moment held was
 * read ("when measuring began"), could = the capacity, or fewer when fewer distinct keys
 * exist, advice = what would help (NULL: nothing said). */
void tcb_check_l1_fill(const char *what, const char *when, uint64_t held, uint64_t could,
                       const char *unit, const char *advice);
/* Warn when the windows of one mode disagree beyond max/min = 1.5 (drift during the run). */
void tcb_check_spread(const char *what, double min, double max);

/* The report side: judge the machine, then print every warning under the figures
 * ("  WARNING: ..." lines, wrapped; nothing when there are none). */
void tcb_warnings_print(FILE *f);
/* The same into a JSON object being written: "warnings": [...], "machine": {...}. */
void tcb_warnings_json(tcb_json_t *j);

#endif
