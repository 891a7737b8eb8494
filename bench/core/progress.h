/*
 * progress.h - a one-line progress bar on stderr for runs longer than a glance.
 *
 * Drawn only when stderr is a terminal and --quiet is off, so logs and pipes never fill
 * with carriage returns. The line is redrawn in place (\r) at most every 200 ms and
 * erased when the phase ends, leaving only the status lines behind.
 */
#ifndef TCB_PROGRESS_H
#define TCB_PROGRESS_H

#include <stdint.h>

typedef struct tcb_progress {
    int enabled;
    char label[48];
    uint64_t last_draw_ns;
} tcb_progress_t;

void tcb_progress_begin(tcb_progress_t *p, int quiet, const char *label);
/* done in [0, 1]; rate in operations per second (0: not shown). */
void tcb_progress_update(tcb_progress_t *p, double done, double rate);
void tcb_progress_end(tcb_progress_t *p);

#endif
