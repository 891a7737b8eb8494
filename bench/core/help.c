/*
 * help.c - what `--help`, `COMMAND --help` and `--version` print.
 *
 * One table holds each command's help: a line on what it measures, the options it reads
 * with the defaults it uses, and an example. The options that mean the same everywhere
 * (where to run, output) and the unit rule are written once and appended to every page,
 * so a command's page lists every option it reads and nothing it ignores. cli.c parses;
 * this file only says.
 */
#include "bench.h"

#include "tiercache.h"

#include <string.h>

#ifndef TCB_VERSION
#define TCB_VERSION "unknown"
#endif

static const char units_text[] =
    "Units (the library's, as in TIERCACHE_* variables):\n"
    "  durations   ms, s, m, h, d; A BARE NUMBER IS MILLISECONDS (-d 8 is 8 ms: write\n"
    "              -d 8s). Fractions must come to whole ms: 1.5s yes, 0.5ms no.\n"
    "              --source-latency also takes us (50us)\n"
    "  byte sizes  B, KiB, MiB, GiB (1024) or KB, MB, GB (1000); K, M, G = KiB, MiB,\n"
    "              GiB; a bare number is bytes; case does not matter\n"
    "  counts      -n, -o, --count, --seed: k, M, G (1000: -n 1M is 1,000,000)\n";

static const char redis_text[] =
    "  -r, --redis URL        use an existing Redis: redis://[user:pass@]host:port[/db]\n"
    "                         or unix:///path/redis.sock[?db=N&password=P]. Only keys\n"
    "                         under the run's own prefix tcbench:<pid>: are written, and\n"
    "                         they are deleted at exit (default: a throwaway\n"
    "                         redis-server from PATH on a private unix socket)\n";

static const char output_text[] =
    "  -j, --json             results as JSON on stdout (status stays on stderr)\n"
    "  -q, --quiet            no status lines or progress bar (warnings still show)\n"
    "  -h, --help             this text\n"
    "      --version          tiercache-bench's and the library's versions\n";

/* compare, sweep and miss share the workload; each adds its own lines. */
#define WORKLOAD_TEXT                                                                          \
    "  -n, --keys N           distinct keys (default 1M)\n"                                    \
    "  -w, --workload W       zipf (default), uniform, hotset, or trace:FILE (one key per\n"   \
    "                         line, gzip or text; any string, see replay)\n"                   \
    "  -s, --zipf S           Zipf exponent (default 0.99)\n"                                  \
    "      --hot-keys PCT     hotset: hot set size, % of the keys (default 1)\n"               \
    "      --hot-share PCT    hotset: % of requests that go to the hot set (default 90)\n"     \
    "      --hot-shift DUR    hotset: the hot set moves this often (default 2s)\n"             \
    "  -v, --value-size SPEC  100 (fixed, default), 64-1KiB (uniform) or exp:512\n"            \
    "                         (exponential with that mean), in bytes; keys are 17 bytes\n"     \
    "      --source-latency D time to load one value from the simulated source of\n"           \
    "                         truth on a Redis miss (default 1ms; 0 allowed; also us)\n"       \
    "      --ttl DUR          TTL of cached values (default 10m)\n"                            \
    "      --no-preload       start with Redis empty (default: every key is written to\n"      \
    "                         Redis before the run, so the comparison is steady state)\n"      \
    "      --seed N           random seed (default 1); same seed, same key sequence\n"

typedef struct cmd_help {
    tcb_cmd_t cmd;
    const char *name;
    const char *summary; /* the line in the command list */
    const char *usage;   /* the command's page: what it does, then its own options */
    int uses_redis;      /* appends --redis */
    const char *example; /* NULL: none */
} cmd_help_t;

static const cmd_help_t pages[] = {
    {TCB_CMD_COMPARE, "compare",
     "redis-only vs tiercache on the same workload, Redis and\n"
     "                 threads: throughput, latency, hit rates, Redis cost\n"
     "                 (the default)",
     "Usage: tiercache-bench [compare] [OPTIONS]\n"
     "\n"
     "redis-only (GET, on a miss load and SET) and tiercache (tc_fetch) on the same\n"
     "workload, Redis and threads, in one table. Both are preloaded and warmed up, then\n"
     "measured in alternating windows of about 0.5 s (3 to 20 rounds), so a drifting\n"
     "machine moves both alike; the bound line also gives the median per-round ratio.\n"
     "With --no-preload, --ops, or a hotset or trace workload redis-only runs first,\n"
     "then tiercache. With the defaults it takes about\n"
     "30 s on a 2-core machine: 2 x (3 s warm-up + 8 s measured), plus writing 1M keys\n"
     "for each mode, which takes longer on a busy machine.\n"
     "\n"
     "Options:\n" WORKLOAD_TEXT
     "  -W, --writes PCT       % of operations that are writes (default 0)\n"
     "  -t, --threads N        worker threads, one Redis connection each (default: CPUs)\n"
     "  -d, --duration DUR     measured time per mode, in ~0.5 s windows (default 8s)\n"
     "  -o, --ops N            measure N operations instead of a duration\n"
     "      --warmup DUR       unmeasured run before each measurement (default 3s)\n"
     "  -l, --l1 SIZE          L1 size: a share of the keys (10%, the default) or a byte\n"
     "                         budget (64MiB, 1GB)\n"
     "      --shards N         L1 shards, a power of two (default: the library's)\n"
     "      --policy P         L1 eviction policy: default or s3fifo\n",
     1, NULL},
    {TCB_CMD_SWEEP, "sweep",
     "tiercache at L1 sizes from 0.1% to 20% of the keys against\n"
     "                 a redis-only baseline measured between them: miss-ratio\n"
     "                 and throughput curves",
     "Usage: tiercache-bench sweep [OPTIONS]\n"
     "\n"
     "tiercache at each L1 size in --sizes, each with its own warm-up, measured in\n"
     "alternating windows (0.5 s each, 3 to 20 rounds per size) with redis-only, so the\n"
     "baseline is measured all along and each speedup is the median of the per-round\n"
     "ratios. The table gives the spread (min, median, max) of both; the curves go to\n"
     "PREFIX.csv, PREFIX.json and PREFIX.png (with gnuplot). With the defaults it\n"
     "measures for 66 s, plus writing 1M keys for each mode (96-100 s in all on a busy\n"
     "2-core machine).\n"
     "\n"
     "Options:\n"
     "      --sizes LIST       L1 sizes in % of the keys (default 0.1,0.2,0.5,1,2,5,10,20)\n"
     "      --out PREFIX       write PREFIX.csv, PREFIX.json, PREFIX.png (and PREFIX.gp)\n"
     "                         (default tiercache-sweep)\n" WORKLOAD_TEXT
     "  -W, --writes PCT       % of operations that are writes (default 0)\n"
     "  -t, --threads N        worker threads, one Redis connection each (default: CPUs)\n"
     "  -d, --duration DUR     measured time per size and per mode (default 3s)\n"
     "  -o, --ops N            measure N operations per size and mode instead\n"
     "      --warmup DUR       unmeasured run before each size (default 2s)\n"
     "      --shards N         L1 shards, a power of two (default: the library's)\n",
     1, NULL},
    {TCB_CMD_MISS, "miss",
     "the miss path: tiercache with L1 off vs a raw hiredis GET,\n"
     "                 one thread",
     "Usage: tiercache-bench miss [OPTIONS]\n"
     "\n"
     "tiercache with the L1 off against a raw hiredis GET: every read is an L1 miss\n"
     "answered by Redis. Both are measured in alternating 0.5 s windows; the verdict is\n"
     "the median per-round ratio (target: at most 5% slower).\n"
     "\n"
     "Options:\n" WORKLOAD_TEXT "  -t, --threads N        worker threads (default 1)\n"
     "  -d, --duration DUR     measured time per mode, in 0.5 s windows (default 10s)\n"
     "  -o, --ops N            measure N operations per mode instead\n"
     "      --warmup DUR       unmeasured run before the rounds (default 1s)\n",
     1, NULL},
    {TCB_CMD_REPLAY, "replay",
     "the L1 alone on access traces (any key strings, gzip or\n"
     "                 text); miss ratio next to an exact LRU",
     "Usage: tiercache-bench replay TRACE... (--entries LIST | --pct LIST) [OPTIONS]\n"
     "\n"
     "Replays each trace through an L1-only cache, one request at a time in file order,\n"
     "and prints its miss ratio next to an exact LRU's (and, for the traces in\n"
     "../shared/traces, the figure their README publishes). A trace has one key per\n"
     "line: a plain decimal number is that id; any other string (user:42, /a/b.png) is\n"
     "hashed into one with 64-bit FNV-1a. Blank lines and lines longer than 4094 bytes\n"
     "are skipped, and the report says how many. Needs no Redis.\n"
     "\n"
     "Options:\n"
     "      --entries LIST     L1 capacities in entries, e.g. 707 or 500,1000\n"
     "      --pct LIST         capacities as % of each trace's distinct keys, e.g. 1,10\n"
     "      --shards N         L1 shards (default 1: sharding splits one LRU into several\n"
     "                         smaller ones; --shards 16 shows what that costs, and\n"
     "                         --shards default the library's own choice for the size)\n"
     "      --policy P         L1 eviction policy: default or s3fifo (the README column\n"
     "                         is then its S3-FIFO figure)\n",
     0,
     "  tiercache-bench replay ../shared/traces/lirs-sprite.txt.gz --entries 707\n"
     "  tiercache-bench replay ../shared/traces/*.gz --pct 1,10\n"},
    {TCB_CMD_MICRO, "micro",
     "the L1 alone: get-hit, set and 90/10 mix at 1..N threads\n"
     "                 (ns/op, scaling) and L1 memory per entry",
     "Usage: tiercache-bench micro [OPTIONS]\n"
     "\n"
     "Makes N keys resident in an L1-only cache and measures get-hit, set and a 90/10 mix\n"
     "at 1..T threads, beside a cpu-only row (no library: how the machine itself scales).\n"
     "Needs no Redis.\n"
     "\n"
     "Options:\n"
     "  -n, --keys N           resident keys (default 1M)\n"
     "  -v, --value-size SIZE  fixed value size in bytes (default 100)\n"
     "  -t, --threads N        most threads (default: CPUs)\n"
     "  -d, --duration DUR     time per point (default 1s)\n"
     "  -w, --workload W       zipf (default) or uniform key draws\n"
     "  -s, --zipf S           Zipf exponent (default 0.99)\n"
     "      --shards N         L1 shards, a power of two (default: the library's)\n"
     "      --policy P         L1 eviction policy: default or s3fifo\n"
     "      --seed N           random seed (default 1)\n",
     0, NULL},
    {TCB_CMD_INVAL, "inval",
     "two processes: publish-to-eviction latency and the\n"
     "                 invalidation rate one listener sustains; --foreign: a\n"
     "                 raw client writes, tracking evicts",
     "Usage: tiercache-bench inval [OPTIONS]\n"
     "\n"
     "The bench re-executes itself as a reader holding the keys in its L1; the writer\n"
     "rewrites them one at a time and the reader timestamps each eviction. Then the\n"
     "writer floods the channel and the reader reports the rate its listener applied.\n"
     "\n"
     "Options:\n"
     "      --count N          writes timed for the latency (default 2000)\n"
     "  -d, --duration DUR     length of the flood (rate) phase (default 3s)\n"
     "      --foreign          the writer is a raw hiredis client, not tiercache; the\n"
     "                         reader caches plain keys with Redis client tracking on\n"
     "      --foreign-ops LIST with --foreign: the raw commands, rotated: set, del,\n"
     "                         pexpire or a comma list of them (default set,del,pexpire)\n"
     "      --tracking MODE    with --foreign: bcast (default: every write under the\n"
     "                         prefix) or default (the keys the reader has read)\n",
     1, NULL},
    {TCB_CMD_STAMPEDE, "stampede",
     "one hot key expiring under many threads (and --procs\n"
     "                 processes): naive cache-aside, single-flight,\n"
     "                 stale-while-revalidate, XFetch",
     "Usage: tiercache-bench stampede [OPTIONS]\n"
     "\n"
     "Every thread reads one hot key in a tight loop; the key expires every TTL. Five\n"
     "rows: cpu-only (the machine), naive, single-flight, swr and xfetch.\n"
     "\n"
     "Options:\n"
     "  -t, --threads N        reader threads per process (default 32)\n"
     "      --procs P          processes sharing the key, each with -t threads\n"
     "                         (default 1; the bench re-executes itself)\n"
     "      --ttl DUR          the key's TTL (default 500ms)\n"
     "      --load-ms DUR      time one load from the source takes (default 50ms)\n"
     "  -d, --duration DUR     measured time per mode (default 5s)\n",
     1, NULL},
    {TCB_CMD_FAILING, "failing-source",
     "the source starts failing: fresh, stale and error answers\n"
     "                 over time with fail-safe off and on",
     "Usage: tiercache-bench failing-source [OPTIONS]\n"
     "\n"
     "Threads read one hot key through tc_fetch; from --fail-after on every load fails.\n"
     "The run is made twice, fail-safe off then on.\n"
     "\n"
     "Options:\n"
     "  -t, --threads N        reader threads (default 4)\n"
     "      --ttl DUR          the key's TTL (default 500ms)\n"
     "      --load-ms DUR      time one load takes (default 50ms)\n"
     "      --fail-after DUR   every load fails from then on (default 2s)\n"
     "      --max-stale DUR    fail-safe's longest stale age (default 3s)\n"
     "      --backoff DUR      fail-safe's back-off after a failed reload (default 500ms)\n"
     "  -d, --duration DUR     length of each run (default 8s)\n",
     1, NULL},
    {TCB_CMD_BULK, "bulk",
     "tc_mget / tc_mset of N keys against N tc_get / tc_set calls\n"
     "                 and raw hiredis, every read an L1 miss",
     "Usage: tiercache-bench bulk [OPTIONS]\n"
     "\n"
     "Options:\n"
     "  -n, --keys N           keys per call (default 100, at most 100k)\n"
     "  -o, --ops N            rounds (default 200k keys / N, 20 to 300)\n"
     "  -v, --value-size SPEC  value sizes in bytes, as for compare (default 100)\n"
     "      --ttl DUR          TTL of the values written (default 10m)\n",
     1, NULL},
    {TCB_CMD_PATTERNS, "patterns",
     "tc_invalidate_tag / _prefix of 100k keys, namespace bump,\n"
     "                 clear: caller time, another client's Redis latency,\n"
     "                 another cache's leftovers",
     "Usage: tiercache-bench patterns [OPTIONS]\n"
     "\n"
     "Options:\n"
     "  -n, --keys N           keys in the invalidated group (default 100k)\n"
     "  -v, --value-size SPEC  value sizes in bytes, as for compare (default 100)\n"
     "      --ttl DUR          TTL of the values written (default 10m)\n",
     1, NULL},
    {TCB_CMD_WARM, "warm",
     "cold start: L1 hit rate over the first seconds, from empty\n"
     "                 and after tc_warm of a previous instance's hot keys",
     "Usage: tiercache-bench warm [OPTIONS]\n"
     "\n"
     "Options:\n"
     "  -n, --keys N           working set (default 50k)\n"
     "  -l, --l1 SIZE          L1 size: share of the keys or bytes (default 10%)\n"
     "  -w, --workload W       zipf (default) or uniform\n"
     "  -s, --zipf S           Zipf exponent (default 0.99)\n"
     "  -t, --threads N        reader threads (default 1)\n"
     "  -d, --duration DUR     length of the cold and the warm run (default 3s)\n"
     "      --warmup DUR       how long the previous instance ran before tc_hot_keys\n"
     "                         (default 2s)\n"
     "      --ttl DUR          TTL of the values (default 10m)\n"
     "      --seed N           random seed (default 1)\n",
     1, NULL},
    {TCB_CMD_WRITES, "writes",
     "write-behind and write-through against a real SQLite file:\n"
     "                 writes/s, caller latency, the drain, the lock's cost",
     "Usage: tiercache-bench writes [OPTIONS]\n"
     "\n"
     "One caller thread. Write-behind (tc_set_behind, then tc_flush until SQLite holds\n"
     "every write) against writing SQLite directly, one transaction per write and --batch\n"
     "writes per transaction, in 3 rotating rounds; then tc_set_through against its floor,\n"
     "one transaction plus one raw SET, alternating. Every write is a version-guarded\n"
     "upsert; SQLite's rows are checked after the last drain. Built only where libsqlite3\n"
     "was found. With the defaults it takes about 10-15 s.\n"
     "\n"
     "Options:\n"
     "  -d, --duration DUR     measured time per strategy, split over the rounds (default\n"
     "                         2s); write-through and its floor get twice that, together\n"
     "  -o, --ops N            N writes per strategy instead (and N calls each for\n"
     "                         write-through and its floor)\n"
     "      --batch N          write_behind_batch, and the writes per transaction of the\n"
     "                         direct batched row (default: the library's, 100)\n"
     "      --db PATH          the SQLite file (default: a fresh one in a private\n"
     "                         /tmp/tcbench-db-* directory, removed at exit); in a file\n"
     "                         given, the run uses its own table, dropped at exit\n"
     "      --db-sync MODE     PRAGMA synchronous: full (default: every commit waits for\n"
     "                         the disk), normal or off\n"
     "  -n, --keys N           cycle over N keys (default: every write a new key); write-\n"
     "                         behind then coalesces a key's queued writes\n"
     "  -v, --value-size SPEC  value sizes in bytes, as for compare (default 100)\n"
     "      --ttl DUR          TTL of the cached values (default 10m)\n",
     1,
     "  tiercache-bench writes\n"
     "  tiercache-bench writes --db /var/tmp/bench.db --batch 500 -d 5s\n"},
    {TCB_CMD_RING, "ring",
     "one cache over 3 standalone servers (a redis_url list) vs\n"
     "                 over one: placement, keys moved by a 4th, the cost",
     "Usage: tiercache-bench ring [OPTIONS]\n"
     "\n"
     "Starts 4 throwaway redis-servers. Placement: a cache over 3 of them writes -n keys\n"
     "and each server's share is counted; adding the 4th, the share of keys that moved.\n"
     "Readers: -t threads of tc_get over 1 server, then over 3, each with the run's L1:\n"
     "ops/s and L1 hit rate. The hit path: every key resident, one thread, rounds\n"
     "alternating 1 and 3 servers: ns per hit and their ratio (the routing's price).\n"
     "Every server shares this machine's cores with the readers.\n"
     "\n"
     "Options:\n"
     "  -n, --keys N           keys (default 100k)\n"
     "  -l, --l1 SIZE          the readers' L1: share of the keys or bytes (default 10%)\n"
     "  -w, --workload W       zipf (default) or uniform\n"
     "  -s, --zipf S           Zipf exponent (default 0.99)\n"
     "  -t, --threads N        reader threads (default: CPUs)\n"
     "  -d, --duration DUR     readers' measured time, and the hit rounds' total\n"
     "                         (default 3s)\n"
     "      --warmup DUR       readers' unmeasured run first (default 1s)\n"
     "  -v, --value-size SPEC  value sizes in bytes, as for compare (default 100)\n"
     "      --ttl DUR          TTL of the values (default 10m)\n"
     "      --seed N           random seed (default 1)\n",
     0, "  tiercache-bench ring -n 200k -t 2\n"},
    {TCB_CMD_CLUSTER, "cluster",
     "tiercache on a Redis Cluster of 1 and of 3 masters vs Redis\n"
     "                 alone on it; PUBLISH vs SPUBLISH for invalidations",
     "Usage: tiercache-bench cluster [OPTIONS]\n"
     "\n"
     "Starts a Redis Cluster of 1 master, then of 3 (cluster-enabled redis-servers on\n"
     "loopback ports; redis+cluster:// URLs). On each, after -n keys are written: -t\n"
     "threads of GET sent to each key's master (Redis alone), then -t threads of tc_get\n"
     "with the run's L1: ops/s, speedup and L1 hit rate; then tc_mget of 100 keys with L1\n"
     "off: keys/s. Last, on 3 masters: an invalidation by PUBLISH heard on another node\n"
     "(tiercache's way) against SPUBLISH heard by SSUBSCRIBE on the shard, p50/p99.\n"
     "Every node shares this machine's cores with the readers.\n"
     "\n"
     "Options:\n"
     "  -n, --keys N           keys (default 100k)\n"
     "  -l, --l1 SIZE          the readers' L1: share of the keys or bytes (default 10%)\n"
     "  -w, --workload W       zipf (default) or uniform\n"
     "  -s, --zipf S           Zipf exponent (default 0.99)\n"
     "  -t, --threads N        reader threads (default: CPUs)\n"
     "  -d, --duration DUR     each measured run (default 3s; bulk reads half of it)\n"
     "      --warmup DUR       unmeasured run before each (default 1s)\n"
     "  -v, --value-size SPEC  value sizes in bytes, as for compare (default 100)\n"
     "      --seed N           random seed (default 1)\n",
     0, "  tiercache-bench cluster -n 100k -t 2\n"},
};

#define NPAGES (sizeof pages / sizeof pages[0])

void tcb_cli_version(FILE *f) {
    fprintf(f, "tiercache-bench %s (libtiercache %s)\n", TCB_VERSION, tc_version());
}

void tcb_cli_usage(FILE *f) {
    fputs("tiercache-bench: how much faster, and how much lighter on Redis, is a service\n"
          "with tiercache's in-process L1 in front of Redis?\n"
          "\n"
          "Usage: tiercache-bench [COMMAND] [OPTIONS]\n"
          "       tiercache-bench COMMAND --help      that command's options\n"
          "\n"
          "With no command it runs `compare` against a throwaway redis-server that it starts\n"
          "on a private unix socket (redis-server must be on PATH) and stops at the end.\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < NPAGES; i++)
        fprintf(f, "  %-14s %s\n", pages[i].name, pages[i].summary);
    fputs("\nEvery report ends with warnings when its figures are suspect: the machine was "
          "busy\n(a cpu-only probe and /proc/stat), or an L1 did not fill.\n\nCommon "
          "options:\n",
          f);
    fputs(redis_text, f);
    fputs(output_text, f);
    fputs("\n", f);
    fputs(units_text, f);
    fputs("\nExamples:\n"
          "  tiercache-bench                                  the default comparison\n"
          "  tiercache-bench --redis redis://127.0.0.1:6379 -t 8 -d 30s\n"
          "  tiercache-bench -w hotset -W 5 --l1 32MiB\n"
          "  tiercache-bench sweep --out /tmp/sweep\n"
          "  tiercache-bench replay ../shared/traces/lirs-sprite.txt.gz --entries 707\n"
          "  tiercache-bench micro -t 2\n"
          "  tiercache-bench inval --foreign --tracking default\n"
          "  tiercache-bench stampede --procs 2 -t 16 --ttl 2500ms\n"
          "  tiercache-bench failing-source --max-stale 5s\n"
          "  tiercache-bench warm -n 50k -d 3s\n"
          "  tiercache-bench writes --batch 500\n",
          f);
}

int tcb_cli_command_usage(FILE *f, tcb_cmd_t cmd) {
    for (size_t i = 0; i < NPAGES; i++) {
        if (pages[i].cmd != cmd)
            continue;
        fputs(pages[i].usage, f);
        if (pages[i].uses_redis)
            fputs(redis_text, f);
        fputs(output_text, f);
        fputs("\n", f);
        fputs(units_text, f);
        if (pages[i].example)
            fprintf(f, "\nExamples:\n%s", pages[i].example);
        return 0;
    }
    return -1;
}
