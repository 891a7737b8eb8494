/*
 * worker.h - what the two halves of tc-stress share: the worker's state and counters.
 *
 * tc_stress.c drives the load (threads, operations, phases); judge.c judges what they
 * read, compares the cache with Redis at the end and prints the report. A worker_t lives
 * for the whole process; each thread counts into its own counts_t, added up at the end,
 * so the hot path takes no lock. The few things threads share (the kept examples) are
 * guarded by worker_t.mu.
 */
#ifndef TC_STRESS_WORKER_H
#define TC_STRESS_WORKER_H

#include "oracle.h"
#include "tiercache.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define STRESS_MAX_SERVERS 8 /* REDIS_SOCKET may list this many, for a ring */

#define MAX_EXAMPLES 8  /* stale / impossible / disagreeing examples kept */
#define MAX_GAPS     64 /* listener outages remembered for the report */
#define ERR_CODES    16 /* -rc of every TC_E* code fits */
#define NS_PER_MS    1000000ull

/* Each writer's cold keys for each fault kind: one written only while it is on, one only
 * in the first COLD_EARLY_MS after it (listener back, breaker maybe still open), one only
 * in the rest of the COLD_TAIL_MS. Their last writes land in different stages of the
 * recovery, and nobody writes them afterwards. */
enum cold_slot { COLD_DURING, COLD_EARLY, COLD_LATE, COLD_PER_FAULT };

typedef enum op_kind { OPK_SET, OPK_DEL, OPK_GET, OPK_FETCH, OPK_COUNT } op_kind_t;

/* What a worker's threads do: the coherence load (they write and read tiercache's keys),
 * or only read keys that a foreign client writes (test_foreign.c). */
typedef enum stress_role { ROLE_LOAD, ROLE_READER } stress_role_t;

typedef struct counts {
    uint64_t calls[OPK_COUNT];
    uint64_t ok[OPK_COUNT];    /* set/del: completed; get/fetch: a value */
    uint64_t maybe[OPK_COUNT]; /* set/del: failed, outcome unknown */
    uint64_t notfound[OPK_COUNT];
    uint64_t errors[OPK_COUNT][ERR_CODES];
    uint64_t fresh, stale, unjudged, impossible;
    uint64_t stale_by_fault[TC_FAULT_COUNT + 1]; /* last slot: no fault had begun yet */
} counts_t;

typedef struct worker {
    tc_oracle_t *o;
    tc_cache_t *cache;
    const char *prefix;
    /* The servers' unix sockets, in the order of REDIS_URL's list; with several, ring says
     * which holds a key (the ring the cache built from the same list). */
    char *sockets[STRESS_MAX_SERVERS];
    unsigned nsockets;
    struct tc__ring *ring;
    stress_role_t role;
    int plain;    /* plain_keys: a key's name is its Redis key, its value is raw */
    int tracking; /* a tc_tracking_t */
    unsigned proc, threads;
    uint64_t bound_ns, deadline_ns;
    pthread_mutex_t mu; /* guards examples, nexamples, worst, worst_late_ms */
    char examples[MAX_EXAMPLES][512];
    unsigned nexamples;
    char worst[512];
    double worst_late_ms;
    /* listener outages seen by the monitor thread, in ms of the run's timeline */
    double gap_from[MAX_GAPS], gap_to[MAX_GAPS];
    unsigned ngaps;
    counts_t verify;
    uint64_t disagree, verified;
    char disagreements[MAX_EXAMPLES][320];
} worker_t;

/* judge.c */

/* Which of wk->sockets holds the key named name. */
unsigned stress_server_of(const worker_t *wk, const char *name, size_t nlen);

/* Count a failed call's code. */
void stress_count_error(counts_t *c, op_kind_t op, int rc);
/* The outcome of a read that started at t_read: a value judged against the oracle, a miss
 * or an error counted. Releases ref. */
void stress_after_read(worker_t *wk, counts_t *c, unsigned key, op_kind_t op, uint64_t t_read,
                       int rc, tc_ref_t *ref);
/* Read every key through the cache and from Redis itself; count what differs. */
void stress_verify(worker_t *wk);
void stress_add_counts(counts_t *to, const counts_t *from);
/* The report on stdout (format: tc_stress.c). */
void stress_print_report(worker_t *wk, const counts_t *c, int timed_out);
/* Close the calling thread's Redis connection for peeks, if it opened one. */
void stress_peek_close(void);

#endif
