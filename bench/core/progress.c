/*
 * progress.c - drawing the bar (see progress.h).
 */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WIDTH 30

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tcb_progress_begin(tcb_progress_t *p, int quiet, const char *label) {
    memset(p, 0, sizeof *p);
    p->enabled = !quiet && isatty(STDERR_FILENO);
    snprintf(p->label, sizeof p->label, "%s", label);
}

void tcb_progress_update(tcb_progress_t *p, double done, double rate) {
    if (!p->enabled)
        return;
    uint64_t now = now_ns();
    if (now - p->last_draw_ns < 200000000ull)
        return;
    p->last_draw_ns = now;
    if (done < 0)
        done = 0;
    if (done > 1)
        done = 1;
    char bar[WIDTH + 1];
    int fill = (int)(done * WIDTH);
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = '\0';
    if (rate > 0)
        fprintf(stderr, "\r  %-24s [%s] %3.0f%%  %10.0f ops/s ", p->label, bar, done * 100,
                rate);
    else
        fprintf(stderr, "\r  %-24s [%s] %3.0f%% ", p->label, bar, done * 100);
    fflush(stderr);
}

void tcb_progress_end(tcb_progress_t *p) {
    if (!p->enabled || p->last_draw_ns == 0)
        return;
    fprintf(stderr, "\r%*s\r", 96, "");
    fflush(stderr);
}
