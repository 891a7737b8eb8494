/*
 * main.c - tiercache-bench's entry point: parse, install signal handlers, start the
 * machine check (checks.h), dispatch. It is also the map of the tool:
 *
 *   bench/
 *     main.c          this file: argv -> tcb_opts_t (core/cli.c) -> one tcb_cmd_*
 *     core/           the machinery every subcommand shares
 *       bench.h         the parsed options, the Redis environment, the entry points
 *       cli.c help.c    the command line (the library's unit parser) and its --help pages
 *       checks.c        the warnings every report ends with: busy machine, L1 fill, drift
 *       env.c server.c  Redis to run on (a throwaway redis-server or --redis), cleanup
 *       rconn.c         raw hiredis: the --redis URL (the library's parser), AUTH, purge
 *       redis_info.c    INFO snapshots: what a phase cost Redis
 *       session.c       preload -> warm-up -> measured windows, for compare, miss, sweep
 *       runner.c progress.c   threads x workload x mode -> latencies and counters
 *       mode_redis.c mode_tc.c preload.c (modes.h)   redis-only and tiercache reads
 *       workload.c trace.c source.c rng.h   keys, traces, the simulated source of truth
 *       lru_sim.c       the exact LRU that replay compares the L1 with
 *       fresh.c         stampede's and failing-source's answer kinds and timelines
 *       multi.c         the many-keys commands' cache, keys and batched writes
 *       hist.c report.c json.c fmt.c   measuring and printing
 *     commands/       one file per subcommand, each a tcb_cmd_* of bench.h
 *       compare.c (and miss)  sweep.c  replay.c  micro.c  stampede.c  failing.c
 *       inval.c inval_foreign.c (inval.h: the reader process both share)
 *       bulk.c patterns.c warm.c   the many-keys API
 *       ring.c cluster.c   several servers: a ring of standalone ones, a Redis Cluster
 *       writes.c writes_db.c (writes_db.h: the SQLite source; built with libsqlite3)
 *     tests/          unit tests of the Redis-free core; smoke runs are in CMakeLists.txt
 *
 * main.c stays at the top, not in core/: it is neither shared machinery nor a subcommand
 * but the one file that knows every command, and the first a reader opens.
 *
 * SIGINT and SIGTERM only raise a flag: runs stop at the next check, and every command
 * still deletes its Redis keys and stops its throwaway server on the way out. A second
 * Ctrl-C exits at once (the default action is restored after the first). SIGPIPE is
 * ignored so a Redis that goes away is an error code, not a dead bench.
 */
#include "bench.h"

#include "checks.h"

#include <signal.h>
#include <stdio.h>
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
    case TCB_CMD_RING:
        return tcb_cmd_ring(o);
    case TCB_CMD_CLUSTER:
        return tcb_cmd_cluster(o);
    case TCB_CMD_WRITES:
#ifdef TCB_HAVE_SQLITE
        return tcb_cmd_writes(o);
#else
        fprintf(stderr, "tiercache-bench: writes: this build has no SQLite (libsqlite3 was not "
                        "found when cmake ran: install libsqlite3-dev and configure again)\n");
        return 1;
#endif
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
