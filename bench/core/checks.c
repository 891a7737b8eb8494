/*
 * checks.c - the warnings behind every report, and the machine check (see checks.h).
 *
 * Warnings are kept in one process-wide list: a command finds a problem where it measures
 * (the L1 fill is known in session.c, the skipped trace lines in trace loading) and
 * reports it where it prints, without threading a list through every function between.
 * The machine check keeps its two halves in one static struct for the same reason.
 *
 * CPU time comes from /proc in clock ticks: the first line of /proc/stat for the whole
 * machine (busy = user + nice + system + irq + softirq + steal; steal is time a hypervisor
 * gave to other guests), and /proc/<pid>/stat for this process (all its threads, plus the
 * children it has reaped) and each live child. Other processes' share is the machine's
 * busy time minus ours, over the machine's total. Where /proc cannot be read, that part of
 * the check says so in the JSON and stays silent in the text: the probe still runs.
 */
#include "checks.h"

#include "fmt.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_WARNINGS 32
#define WARNING_LEN  512
#define PROBE_NS     100000000ull /* per probe run: one thread, then all of them */
#define MAX_PROBE    256

static char warnings[MAX_WARNINGS][WARNING_LEN];
static int nwarnings;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tcb_warn(const char *fmt, ...) {
    char buf[WARNING_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!isatty(STDOUT_FILENO))
        fprintf(stderr, "tiercache-bench: WARNING: %s\n", buf);
    if (nwarnings < MAX_WARNINGS)
        memcpy(warnings[nwarnings++], buf, sizeof buf);
}

int tcb_warnings_count(void) {
    return nwarnings;
}

/* ---- the cpu-only probe ---- */

typedef struct probe_thread {
    atomic_int *stop;
    uint64_t ops;
    pthread_t th;
} probe_thread_t;

static void *probe_main(void *p) {
    probe_thread_t *t = p;
    uint64_t i = 0;
    while (!atomic_load_explicit(t->stop, memory_order_relaxed))
        for (int b = 0; b < 256; b++, i++)
            tcb_cpu_work(i);
    t->ops = i;
    return NULL;
}

/* Operations per second per thread, with n threads for PROBE_NS; NaN if none started. */
static double probe(unsigned n) {
    probe_thread_t ts[MAX_PROBE];
    atomic_int stop;
    atomic_init(&stop, 0);
    unsigned started = 0;
    uint64_t t0 = mono_ns();
    for (; started < n; started++) {
        ts[started] = (probe_thread_t){.stop = &stop};
        if (pthread_create(&ts[started].th, NULL, probe_main, &ts[started]) != 0)
            break;
    }
    struct timespec d = {0, (long)PROBE_NS};
    nanosleep(&d, NULL);
    atomic_store(&stop, 1);
    uint64_t ops = 0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(ts[i].th, NULL);
        ops += ts[i].ops;
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    return started ? (double)ops / secs / (double)started : NAN;
}

/* ---- CPU time from /proc ---- */

typedef struct cpu_times {
    int ok;
    uint64_t busy, total; /* the machine, all CPUs */
    uint64_t ours;        /* this process, its reaped children, its live children */
    uint64_t wall_ns;
} cpu_times_t;

/* utime + stime (+ cutime + cstime when with_children) of /proc/<pid>/stat, and its ppid. */
static int proc_stat(const char *pid, int with_children, uint64_t *ticks, long *ppid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    /* after the name: state, ppid, fields 5..13 (pgrp ... cmajflt), then 14..17: utime,
     * stime, cutime, cstime */
    char state;
    long long skip[9], ut, st, cut, cst;
    if (!p || sscanf(p + 1,
                     " %c %ld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld",
                     &state, ppid, &skip[0], &skip[1], &skip[2], &skip[3], &skip[4], &skip[5],
                     &skip[6], &skip[7], &skip[8], &ut, &st, &cut, &cst) != 15)
        return -1;
    *ticks = (uint64_t)(ut + st + (with_children ? cut + cst : 0));
    return 0;
}

/* This process and its children, live or reaped. */
static uint64_t our_ticks(int *ok) {
    uint64_t self = 0;
    long ppid;
    if (proc_stat("self", 1, &self, &ppid) != 0) {
        *ok = 0;
        return 0;
    }
    long me = (long)getpid();
    DIR *d = opendir("/proc");
    if (!d)
        return self;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t t;
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        if (proc_stat(e->d_name, 0, &t, &ppid) == 0 && ppid == me)
            self += t;
    }
    closedir(d);
    return self;
}

static void cpu_times(cpu_times_t *c) {
    memset(c, 0, sizeof *c);
    c->wall_ns = mono_ns();
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    unsigned long long v[8] = {0};
    int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                     &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (got < 7)
        return;
    c->busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    c->total = c->busy + v[3] + v[4];
    c->ok = 1;
    c->ours = our_ticks(&c->ok);
}

/* ---- the machine check ---- */

static struct {
    int begun, judged;
    unsigned ncpu;
    double one[2], all[2]; /* per-thread probe rates: [0] before, [1] at the report */
    cpu_times_t t[2];
    double others_share; /* of the machine's CPU time, between the halves; NaN unknown */
    double others_cores;
} mach;

void tcb_warnings_reset(void) {
    nwarnings = 0;
    memset(&mach, 0, sizeof mach);
}

static void run_probe(int half) {
    mach.one[half] = probe(1);
    mach.all[half] = probe(mach.ncpu);
}

void tcb_machine_begin(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    mach.ncpu = n < 1 ? 1 : n > MAX_PROBE ? MAX_PROBE : (unsigned)n;
    mach.begun = 1;
    mach.judged = 0;
    run_probe(0);
    cpu_times(&mach.t[0]);
}

static void judge_probe(int half, const char *when) {
    double r = mach.all[half] / mach.one[half];
    if (mach.ncpu < 2 || isnan(r) || r >= TCB_BUSY_PROBE_RATIO)
        return;
    tcb_warn("the machine was busy %s: with one cpu-only thread per CPU, each ran at %.0f%% of "
             "the speed of one alone (other work held about %.1f of the %u CPUs). Every "
             "throughput and latency figure here is lower, and noisier, than the machine "
             "allows; rerun on an idle machine",
             when, 100.0 * r, (1.0 - r) * mach.ncpu, mach.ncpu);
}

static void judge_others(void) {
    const cpu_times_t *a = &mach.t[0], *b = &mach.t[1];
    mach.others_share = NAN;
    mach.others_cores = NAN;
    double secs = (double)(b->wall_ns - a->wall_ns) / 1e9;
    /* /proc counts in clock ticks (10 ms): a shorter window is mostly rounding */
    if (!a->ok || !b->ok || b->total <= a->total || secs < 2.0)
        return;
    double total = (double)(b->total - a->total);
    double others = (double)(b->busy - a->busy) - (double)(b->ours - a->ours);
    mach.others_share = others > 0 ? others / total : 0.0;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz > 0)
        mach.others_cores = mach.others_share * total / (double)hz / secs;
    if (mach.others_share < TCB_BUSY_OTHERS_SHARE)
        return;
    tcb_warn("the machine was busy during the run: other processes (not this bench, not its "
             "redis-server) used %.0f%% of its CPU time, about %.1f CPUs on average over "
             "%.0f s. Figures measured beside them are lower and noisier than the machine "
             "allows; rerun on an idle machine",
             100.0 * mach.others_share, mach.others_cores, secs);
}

void tcb_machine_judge(void) {
    if (!mach.begun || mach.judged)
        return;
    mach.judged = 1;
    cpu_times(&mach.t[1]); /* before the probe, which is ours but not the run's */
    run_probe(1);
    judge_probe(0, "when the run started");
    judge_probe(1, "when the run ended");
    double drift = mach.one[1] / mach.one[0];
    if (!isnan(drift) && (drift < TCB_BUSY_PROBE_RATIO || drift > 1.0 / TCB_BUSY_PROBE_RATIO))
        tcb_warn("one cpu-only thread ran %.2fx as fast at the end of the run as at its "
                 "start: the machine's speed changed while it ran (other work, or CPU "
                 "frequency), so figures measured at different times do not compare",
                 drift);
    judge_others();
}

/* ---- checks the commands call ---- */

void tcb_check_l1_fill(const char *what, const char *when, uint64_t held, uint64_t could,
                       const char *unit, const char *advice) {
    if (could == 0 || (double)held >= TCB_L1_FULL_SHARE * (double)could)
        return;
    char h[32], c[32];
    tcb_warn("the L1 did not fill: %s held %s of the %s %s it could hold (%.0f%%) %s, so its "
             "hit rate and throughput are below the steady state a full L1 reaches%s%s",
             what, tcb_fmt_count(held, h, sizeof h), tcb_fmt_count(could, c, sizeof c), unit,
             100.0 * (double)held / (double)could, when, advice && *advice ? "; " : "",
             advice ? advice : "");
}

void tcb_check_spread(const char *what, double min, double max) {
    if (!(min > 0) || max / min <= 1.5)
        return;
    char a[32], b[32];
    tcb_warn("%s varied %.2fx between its measured windows (min %s, max %s ops/s): the "
             "machine's speed drifted during the run; read the medians, and rerun on an idle "
             "machine",
             what, max / min, tcb_fmt_count((uint64_t)min, a, sizeof a),
             tcb_fmt_count((uint64_t)max, b, sizeof b));
}

/* ---- the report side ---- */

/* One warning, wrapped at 92 columns under a "WARNING:" lead. */
static void print_wrapped(FILE *f, const char *s) {
    const int width = 92, indent = 11;
    int col = fprintf(f, "  WARNING:");
    while (*s) {
        while (*s == ' ')
            s++;
        int w = (int)strcspn(s, " ");
        if (w == 0)
            break;
        if (col + 1 + w > width && col > indent)
            col = fprintf(f, "\n%*s", indent - 1, "") - 1;
        col += fprintf(f, " %.*s", w, s);
        s += w;
    }
    fputc('\n', f);
}

void tcb_warnings_print(FILE *f) {
    tcb_machine_judge();
    if (nwarnings == 0)
        return;
    fprintf(f,
            "  %d warning%s: the figures above may not be what this machine and library "
            "can do.\n",
            nwarnings, nwarnings == 1 ? "" : "s");
    for (int i = 0; i < nwarnings; i++)
        print_wrapped(f, warnings[i]);
    fputc('\n', f);
}

void tcb_warnings_json(tcb_json_t *j) {
    tcb_machine_judge();
    tcb_json_arr_begin(j, "warnings");
    for (int i = 0; i < nwarnings; i++)
        tcb_json_str(j, NULL, warnings[i]);
    tcb_json_arr_end(j);
    if (!mach.begun) {
        tcb_json_null(j, "machine");
        return;
    }
    tcb_json_obj_begin(j, "machine");
    tcb_json_u64(j, "cpus", mach.ncpu);
    tcb_json_dbl(j, "cpu_only_ops_per_s_one_thread_start", mach.one[0]);
    tcb_json_dbl(j, "cpu_only_ops_per_s_per_thread_all_cpus_start", mach.all[0]);
    tcb_json_dbl(j, "cpu_only_ops_per_s_one_thread_end", mach.one[1]);
    tcb_json_dbl(j, "cpu_only_ops_per_s_per_thread_all_cpus_end", mach.all[1]);
    tcb_json_dbl(j, "others_cpu_share", mach.others_share);
    tcb_json_dbl(j, "others_cpus", mach.others_cores);
    const cpu_times_t *a = &mach.t[0], *b = &mach.t[1];
    long hz = sysconf(_SC_CLK_TCK);
    int ok = a->ok && b->ok && hz > 0;
    tcb_json_dbl(j, "seconds", (double)(b->wall_ns - a->wall_ns) / 1e9);
    tcb_json_dbl(j, "machine_busy_cpu_s", ok ? (double)(b->busy - a->busy) / (double)hz : NAN);
    tcb_json_dbl(j, "machine_total_cpu_s",
                 ok ? (double)(b->total - a->total) / (double)hz : NAN);
    tcb_json_dbl(j, "bench_cpu_s", ok ? (double)(b->ours - a->ours) / (double)hz : NAN);
    tcb_json_obj_end(j);
}
