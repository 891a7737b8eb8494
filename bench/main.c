/*
 * main.c - tiercache-bench's entry point: parse, install signal handlers, start the
 * machine check (checks.h), dispatch.
 *
 * SIGINT and SIGTERM only raise a flag: runs stop at the next check, and every command
 * still deletes its Redis keys and stops its throwaway server on the way out. A second
 * Ctrl-C exits at once (the default action is restored after the first). SIGPIPE is
 * ignored so a Redis that goes away is an error code, not a dead bench.
 */
#include "bench.h"

#include "checks.h"

#include <signal.h>
#include <string.h>

static void on_signal(int sig) {
    tcb_interrupted = 1;
    signal(sig, SIG_DFL);
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int dispatch(const tcb_opts_t *o) {
    switch (o->cmd) {
    case TCB_CMD_COMPARE:
    case TCB_CMD_MISS:
        return tcb_cmd_compare(o);
    case TCB_CMD_SWEEP:
        return tcb_cmd_sweep(o);
    case TCB_CMD_REPLAY:
        return tcb_cmd_replay(o);
    case TCB_CMD_MICRO:
        return tcb_cmd_micro(o);
    case TCB_CMD_INVAL:
        return tcb_cmd_inval(o, "/proc/self/exe");
    case TCB_CMD_INVAL_READER:
        return tcb_cmd_inval_reader(o);
    case TCB_CMD_STAMPEDE:
        return tcb_cmd_stampede(o, "/proc/self/exe");
    case TCB_CMD_STAMPEDE_WORKER:
        return tcb_cmd_stampede_worker(o);
    case TCB_CMD_FAILING:
        return tcb_cmd_failing(o);
    case TCB_CMD_BULK:
        return tcb_cmd_bulk(o);
    case TCB_CMD_PATTERNS:
        return tcb_cmd_patterns(o);
    case TCB_CMD_WARM:
        return tcb_cmd_warm(o);
    case TCB_CMD_HELP:
        break;
    }
    tcb_cli_usage(stdout);
    return 0;
}

int main(int argc, char **argv) {
    tcb_opts_t o;
    int rc = tcb_cli_parse(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    install_signals();
    /* The re-executed reader and workers print no figures: their parent judges. */
    int top = o.cmd != TCB_CMD_INVAL_READER && o.cmd != TCB_CMD_STAMPEDE_WORKER &&
              o.cmd != TCB_CMD_HELP;
    uint64_t t0 = tcb_now_ns();
    if (top)
        tcb_machine_begin();
    rc = dispatch(&o);
    /* What the run took, so the durations the documentation quotes can be checked. */
    if (top)
        tcb_status(&o, "done in %.1f s", (double)(tcb_now_ns() - t0) / 1e9);
    return rc;
}
