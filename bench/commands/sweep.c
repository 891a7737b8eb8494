/*
 * sweep.c - `sweep`: tiercache at a series of L1 sizes against a redis-only baseline
 * measured all along.
 *
 * The miss-ratio curve (L1 miss ratio against L1 size) says how much memory buys how many
 * avoided Redis calls; the throughput curve says what that is worth end to end. Both come
 * from the same runs: one tc_open per size on the same preloaded Redis data, each with its
 * own warm-up, because an L1 starts empty.
 *
 * A baseline measured once, before the sizes, compares every size with whatever the
 * machine was doing in those few seconds: on a shared machine that alone moved the
 * speedup column by 4x. So each size is measured in rounds (0.5 s windows, 3 to 20 of
 * them, as `miss` does): a redis-only window, then a tiercache window, and the size's
 * speedup is the median of the per-round ratios. The table prints the spread (min,
 * median, max) of both modes' windows, and the checks warn when the windows disagree.
 *
 * Results go to PREFIX.csv and PREFIX.json, and to PREFIX.png through gnuplot when it is on
 * PATH (the script is kept as PREFIX.gp so the picture can be redrawn or restyled by hand).
 */
#include "session.h"

#include "checks.h"

#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int on_path(const char *prog) {
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char buf[1024];
    for (const char *p = path; *p;) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, n ? p : ".", prog);
        if (access(buf, X_OK) == 0)
            return 1;
        p += n + (c ? 1 : 0);
    }
    return 0;
}

static FILE *open_out(const char *prefix, const char *ext, char *path, size_t cap) {
    snprintf(path, cap, "%s.%s", prefix, ext);
    FILE *f = fopen(path, "w");
    if (!f)
        perror(path);
    return f;
}

/* The title goes inside gnuplot single quotes: keep quotes out of it. */
static void gp_title(const tcb_report_ctx_t *c, char *out, size_t cap) {
    snprintf(out, cap, "%s, %llu keys, %u threads", c->workload, (unsigned long long)c->nkeys,
             c->threads);
    for (char *p = out; *p; p++)
        if (*p == '\'' || *p == '\\')
            *p = '_';
}

static int write_gp(const char *prefix, const char *csv, const tcb_result_t *base,
                    const tcb_report_ctx_t *c, char *gp, size_t cap) {
    FILE *f = open_out(prefix, "gp", gp, cap);
    if (!f)
        return -1;
    char title[200];
    gp_title(c, title, sizeof title);
    fprintf(f,
            "# tiercache-bench sweep: gnuplot %s\n"
            "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
            "  set terminal pngcairo size 1200,500 noenhanced\n"
            "} else {\n"
            "  set terminal png size 1200,500 noenhanced\n"
            "}\n"
            "set output '%s.png'\n"
            "set datafile separator ','\n"
            "set multiplot layout 1,2 title '%s'\n"
            "set logscale x\nset autoscale xfix\nset grid\nset key bottom right\n"
            "set xlabel 'L1 size (%% of keys)'\n"
            "set ylabel 'L1 miss ratio'\nset yrange [0:1]\n"
            "plot '%s' skip 2 using 2:5 with linespoints lw 2 title 'tiercache L1'\n"
            "set yrange [0:*]\nset key top left\n"
            "set ylabel 'operations / s (median of the windows)'\n"
            "plot '%s' skip 2 using 2:9 with linespoints lw 2 title 'tiercache', "
            "%.1f with lines dt 2 lw 2 title 'redis-only'\n"
            "unset multiplot\n",
            gp, prefix, title, csv, csv, tcb_report_sweep_ops(base));
    return fclose(f) == 0 ? 0 : -1;
}

static void draw(const tcb_opts_t *o, const char *csv, const tcb_result_t *base,
                 const tcb_report_ctx_t *c) {
    char gp[512];
    if (!on_path("gnuplot")) {
        tcb_status(o,
                   "gnuplot is not installed: no picture (install gnuplot and run "
                   "`gnuplot %s.gp` after the next sweep, or plot %s yourself)",
                   o->out_prefix, csv);
        if (write_gp(o->out_prefix, csv, base, c, gp, sizeof gp) == 0)
            tcb_status(o, "gnuplot script written to %s", gp);
        return;
    }
    if (write_gp(o->out_prefix, csv, base, c, gp, sizeof gp) != 0)
        return;
    pid_t pid;
    char *argv[] = {(char *)"gnuplot", gp, NULL};
    int st = -1;
    if (posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ) == 0)
        waitpid(pid, &st, 0);
    if (st == 0)
        tcb_status(o, "picture: %s.png", o->out_prefix);
    else
        tcb_status(o, "gnuplot failed on %s; the CSV is fine", gp);
}

static int write_files(const tcb_opts_t *o, const tcb_session_t *s, const tcb_result_t *base,
                       const tcb_result_t *pts, int n) {
    char csv[512], js[512];
    FILE *f = open_out(o->out_prefix, "csv", csv, sizeof csv);
    if (!f)
        return -1;
    tcb_report_sweep_csv(f, base, pts, n);
    fclose(f);
    if (!(f = open_out(o->out_prefix, "json", js, sizeof js)))
        return -1;
    tcb_report_sweep_json(f, &s->ctx, base, pts, n);
    fclose(f);
    tcb_status(o, "curves: %s and %s", csv, js);
    draw(o, csv, base, &s->ctx);
    return 0;
}

#define SWEEP_MAX_ROUNDS 20
#define SWEEP_WINDOW_NS  500000000ull /* half a second per window, as miss */

static int sweep_rounds(const tcb_opts_t *o) {
    uint64_t r = o->duration_ns / SWEEP_WINDOW_NS;
    return r < 3 ? 3 : r > SWEEP_MAX_ROUNDS ? SWEEP_MAX_ROUNDS : (int)r;
}

/* Windows that disagree: the baseline's, and the widest of the sizes'. */
static void check_spreads(const tcb_result_t *base, const tcb_result_t *pts, int n) {
    tcb_check_spread("the redis-only baseline", base->tput.min, base->tput.max);
    int worst = -1;
    double wr = 0;
    for (int i = 0; i < n; i++) {
        double r = pts[i].tput.min > 0 ? pts[i].tput.max / pts[i].tput.min : 0;
        if (r > wr) {
            wr = r;
            worst = i;
        }
    }
    if (worst >= 0) {
        char what[64];
        snprintf(what, sizeof what, "tiercache at L1 %.3g%%", pts[worst].l1_pct);
        tcb_check_spread(what, pts[worst].tput.min, pts[worst].tput.max);
    }
}

int tcb_cmd_sweep(const tcb_opts_t *o) {
    if (o->l1_in_bytes) {
        fprintf(stderr, "tiercache-bench: sweep sets the L1 size itself; use --sizes, "
                        "not --l1\n");
        return 2;
    }
    tcb_session_t s;
    if (tcb_session_open(&s, o, "sweep") != 0)
        return 1;
    int rounds = sweep_rounds(o);
    snprintf(s.ctx.l1, sizeof s.ctx.l1, "swept over %d sizes, %d rounds each", o->nsweep,
             rounds);
    tcb_result_t base, pts[TCB_MAX_LIST];
    memset(pts, 0, sizeof pts);
    int n = 0;
    int rc = tcb_measure_sweep(&s, rounds, &base, pts, &n);
    if (rc == 0 && !tcb_interrupted) {
        check_spreads(&base, pts, n);
        if (o->json)
            tcb_report_sweep_json(stdout, &s.ctx, &base, pts, n);
        else
            tcb_report_sweep_table(stdout, &s.ctx, &base, pts, n);
        rc = write_files(o, &s, &base, pts, n);
    }
    tcb_session_close(&s);
    return rc == 0 && !tcb_interrupted ? 0 : 1;
}
