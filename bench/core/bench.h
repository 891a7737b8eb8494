/*
 * bench.h - the pieces of tiercache-bench that every subcommand shares: the parsed
 * options, the Redis environment a run happens in, and the subcommand entry points (one
 * file each under commands/; main.c has the map of the whole tool).
 *
 * Everything the bench writes to Redis lives under "tcbench:<pid>:" and is deleted at
 * exit; nothing else is ever touched. Status lines go to stderr, results to stdout, so
 * `--json > out.json` captures only the JSON.
 */
#ifndef TCB_BENCH_H
#define TCB_BENCH_H

#include "rconn.h"
#include "server.h"
#include "workload.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TCB_MAX_LIST   16
#define TCB_MAX_TRACES 16

typedef enum tcb_cmd {
    TCB_CMD_COMPARE,
    TCB_CMD_SWEEP,
    TCB_CMD_MISS,
    TCB_CMD_REPLAY,
    TCB_CMD_MICRO,
    TCB_CMD_INVAL,
    TCB_CMD_INVAL_READER, /* hidden: the reader process of `inval` */
    TCB_CMD_STAMPEDE,
    TCB_CMD_STAMPEDE_WORKER, /* hidden: one process of `stampede --procs P` */
    TCB_CMD_FAILING,         /* failing-source */
    TCB_CMD_BULK,            /* tc_mget / tc_mset against one call per key */
    TCB_CMD_PATTERNS,        /* tag, prefix, namespace and clear invalidation at scale */
    TCB_CMD_WARM,            /* cold start with and without tc_warm */
    TCB_CMD_WRITES,          /* write-behind and write-through against SQLite */
    TCB_CMD_RING,            /* one cache over several servers against one server */
    TCB_CMD_CLUSTER,         /* tiercache on a Redis Cluster of 1 and 3 masters */
    TCB_CMD_HELP,
} tcb_cmd_t;

/* `inval --foreign`: the raw commands the foreign writer sends, as bits (--foreign-ops). */
typedef enum tcb_foreign_op {
    TCB_FOREIGN_SET = 1u << 0,
    TCB_FOREIGN_DEL = 1u << 1,
    TCB_FOREIGN_PEXPIRE = 1u << 2,
    TCB_FOREIGN_ALL = TCB_FOREIGN_SET | TCB_FOREIGN_DEL | TCB_FOREIGN_PEXPIRE,
} tcb_foreign_op_t;

/* `inval --foreign --tracking`: how the reader asks Redis to report writes (the bench's
 * own names for tc_tracking_t's modes, so this header needs no library). */
typedef enum tcb_tracking {
    TCB_TRACKING_BCAST,   /* every write under the key prefix */
    TCB_TRACKING_DEFAULT, /* writes of the keys this process has read */
} tcb_tracking_t;

/* `writes`: the SQLite database's synchronous setting (--db-sync). */
typedef enum tcb_db_sync {
    TCB_DB_SYNC_FULL,   /* every COMMIT waits for the WAL to reach the disk (the default) */
    TCB_DB_SYNC_NORMAL, /* WAL synced at checkpoints only: a crash may lose the last commits */
    TCB_DB_SYNC_OFF,    /* never synced */
} tcb_db_sync_t;

typedef struct tcb_opts {
    tcb_cmd_t cmd;
    const char *redis_url; /* NULL: start a throwaway redis-server */
    uint64_t keys;
    tcb_wl_kind_t wl_kind;
    double zipf_s;
    double hot_frac, hot_share;
    uint64_t hot_shift_ns;
    const char *trace_path; /* --workload trace:FILE */
    double write_frac;
    tcb_vsize_t vsize;
    unsigned threads;
    uint64_t duration_ns, warmup_ns, ops;
    int l1_in_bytes; /* --l1 64MiB (bytes) vs --l1 10% (share of the keys) */
    double l1_pct;
    uint64_t l1_bytes;
    unsigned shards; /* 0: library default (compare) or 1 (replay) */
    int policy;      /* tc_l1_policy_t of the L1 (--policy; 0: the library's default) */
    uint64_t source_ns;
    uint64_t ttl_ms;
    int preload;
    int json, quiet;
    uint64_t seed;
    const char *out_prefix; /* sweep output files */
    double sweep_pcts[TCB_MAX_LIST];
    int nsweep;
    /* replay */
    const char *traces[TCB_MAX_TRACES];
    int ntraces;
    uint64_t entries[TCB_MAX_LIST];
    int nentries;
    double replay_pcts[TCB_MAX_LIST];
    int nreplay_pcts;
    /* inval */
    uint64_t inval_count;
    int foreign;             /* --foreign: the writer is a raw client, not tiercache */
    unsigned foreign_ops;    /* tcb_foreign_op_t bits */
    tcb_tracking_t tracking; /* the reader's tracking mode with --foreign */
    /* hidden inval-reader arguments */
    int reader_shm_fd;
    const char *reader_prefix, *reader_channel;
    /* stampede, failing-source */
    unsigned procs;
    uint64_t load_ns, fail_after_ns, max_stale_ns, backoff_ns;
    unsigned worker_slot; /* hidden stampede-worker argument */
    /* writes */
    const char *db_path;   /* --db: NULL makes a fresh file in a private directory */
    unsigned wb_batch;     /* --batch: 0 = the library's write_behind_batch */
    tcb_db_sync_t db_sync; /* --db-sync */
    unsigned given;        /* TCB_GIVEN_* bits: options the user set explicitly */
} tcb_opts_t;

#define TCB_GIVEN_DURATION 0x1u
#define TCB_GIVEN_WARMUP   0x2u
#define TCB_GIVEN_THREADS  0x4u
#define TCB_GIVEN_L1       0x8u
#define TCB_GIVEN_KEYS     0x10u
#define TCB_GIVEN_SHARDS   0x20u
#define TCB_GIVEN_VSIZE    0x40u
#define TCB_GIVEN_TTL      0x80u
#define TCB_GIVEN_TRACKING 0x100u /* meaningful only with --foreign, */
#define TCB_GIVEN_FOR_OPS  0x200u /* and so is --foreign-ops */
#define TCB_GIVEN_DB       0x400u /* --db, --batch, --db-sync: writes only */

/* Set by SIGINT/SIGTERM: runs stop early, cleanup still happens. */
extern volatile sig_atomic_t tcb_interrupted;

/* ---- CLI (cli.c) ---- */
void tcb_opts_defaults(tcb_opts_t *o);
/* Parse argv. 0 ok; 1 help or the version was printed (exit 0); -1 error printed to
 * stderr (exit 2). */
int tcb_cli_parse(int argc, char **argv, tcb_opts_t *o);

/* ---- help (help.c) ---- */
/* The overview: commands, common options, the unit rule. */
void tcb_cli_usage(FILE *f);
/* One command's page: what it does and every option it reads. 0, or -1 for a command
 * without a page (the hidden ones). */
int tcb_cli_command_usage(FILE *f, tcb_cmd_t cmd);
/* "tiercache-bench 0.1.0 (libtiercache 0.1.0)" */
void tcb_cli_version(FILE *f);

/* ---- Redis environment (env.c) ---- */
typedef struct tcb_env {
    tcb_server_t server;
    int owned;           /* 1: the throwaway server (everything on it is ours) */
    const char *url;     /* server.url or opts->redis_url */
    char url_shown[200]; /* url with any password masked */
    tcb_endpoint_t ep;
    redisContext *ctl; /* control connection: INFO, preload, cleanup */
    char prefix[64];   /* "tcbench:<pid>:" */
    char version[32];
} tcb_env_t;

/* Start or connect. 0, or -1 with the reason printed to stderr. */
int tcb_env_open(tcb_env_t *e, const tcb_opts_t *o);
/* Delete keys under sub (a suffix of the run prefix; "" = everything of this run). */
void tcb_env_purge(tcb_env_t *e, const char *sub);
/* Purge everything of this run, close, stop the throwaway server. Safe to call twice. */
void tcb_env_close(tcb_env_t *e);

/* ---- shared helpers (env.c) ---- */
uint64_t tcb_now_ns(void);
/* Status line on stderr unless --quiet: "tiercache-bench: ..." */
void tcb_status(const tcb_opts_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* environ with NAME=value put first, for a re-executed child: secrets such as a Redis
 * password travel this way rather than in argv, where ps shows them. Built before fork
 * (the child may only call async-signal-safe functions). NULL on ENOMEM. */
char **tcb_child_env(const char *name, const char *value);
void tcb_child_env_free(char **env);
/* L1 capacity for a run over nkeys keys: entries cap (0 none) and byte budget. */
void tcb_l1_capacity(const tcb_opts_t *o, double pct, uint64_t nkeys, uint64_t *entries,
                     uint64_t *bytes);

/* ---- subcommands ---- */
int tcb_cmd_compare(const tcb_opts_t *o);
int tcb_cmd_sweep(const tcb_opts_t *o);
int tcb_cmd_replay(const tcb_opts_t *o);
int tcb_cmd_micro(const tcb_opts_t *o);
int tcb_cmd_ring(const tcb_opts_t *o);
int tcb_cmd_cluster(const tcb_opts_t *o);
int tcb_cmd_inval(const tcb_opts_t *o, const char *self_exe);
int tcb_cmd_inval_reader(const tcb_opts_t *o);
int tcb_cmd_stampede(const tcb_opts_t *o, const char *self_exe);
int tcb_cmd_stampede_worker(const tcb_opts_t *o);
int tcb_cmd_failing(const tcb_opts_t *o);
int tcb_cmd_bulk(const tcb_opts_t *o);
int tcb_cmd_patterns(const tcb_opts_t *o);
int tcb_cmd_warm(const tcb_opts_t *o);
/* Built only with libsqlite3 (TCB_HAVE_SQLITE); without it main says so. */
int tcb_cmd_writes(const tcb_opts_t *o);

#endif
