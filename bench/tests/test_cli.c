/*
 * test_cli.c - the command line, the unit rule, --help and --version, Redis URLs and INFO
 * parsing: everything a user types or Redis answers is parsed strictly, and a typo is an
 * error, not a default.
 */
/* tc-test-labels: unit */
#include "bench.h"
#include "fmt.h"
#include "redis_info.h"
#include "tiercache.h"
#include "units.h" /* src/units.h: the library's parser, the one the flags must agree with */

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static int parse(tcb_opts_t *o, const char *line) {
    static char buf[512]; /* parsed strings point into it: it must outlive the call */
    char *argv[64];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    argv[argc++] = (char *)"tiercache-bench";
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    /* stderr noise from expected failures is fine; stdout (help) goes to /dev/null */
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    int rc = tcb_cli_parse(argc, argv, o);
    fclose(stdout);
    stdout = saved;
    return rc;
}

Test(cli, no_arguments_is_the_default_comparison) {
    tcb_opts_t o;
    cr_assert_eq(parse(&o, ""), 0);
    cr_expect_eq(o.cmd, TCB_CMD_COMPARE);
    cr_expect_null(o.redis_url);
    cr_expect_eq(o.keys, 1000000);
    cr_expect_eq(o.wl_kind, TCB_WL_ZIPF);
    cr_expect_eq(o.zipf_s, 0.99);
    cr_expect_eq(o.l1_in_bytes, 0);
    cr_expect_eq(o.l1_pct, 10.0);
    cr_expect_eq(o.source_ns, 1000000);
    cr_expect_eq(o.preload, 1);
    cr_expect_gt(o.threads, 0);
}

Test(cli, options_land_where_they_should) {
    tcb_opts_t o;
    cr_assert_eq(parse(&o, "compare --redis redis://h:7000/2 -n 250k -w hotset --hot-keys 2 "
                           "--hot-share 80 --hot-shift 500ms -W 5 -v 64-1024 -t 4 -d 30s "
                           "--warmup 0 --l1 64MiB --source-latency 50us --ttl 2m "
                           "--no-preload --seed 9 --json -q"),
                 0);
    cr_expect_str_eq(o.redis_url, "redis://h:7000/2");
    cr_expect_eq(o.keys, 250000);
    cr_expect_eq(o.wl_kind, TCB_WL_HOTSET);
    cr_expect_eq(o.hot_frac, 0.02);
    cr_expect_eq(o.hot_share, 0.8);
    cr_expect_eq(o.hot_shift_ns, 500000000ull);
    cr_expect_eq(o.write_frac, 0.05);
    cr_expect(o.vsize.kind == TCB_VS_UNIFORM && o.vsize.a == 64 && o.vsize.b == 1024);
    cr_expect_eq(o.threads, 4);
    cr_expect_eq(o.duration_ns, 30000000000ull);
    cr_expect_eq(o.warmup_ns, 0);
    cr_expect(o.l1_in_bytes && o.l1_bytes == 64ull << 20);
    cr_expect_eq(o.source_ns, 50000);
    cr_expect_eq(o.ttl_ms, 120000);
    cr_expect_eq(o.preload, 0);
    cr_expect_eq(o.seed, 9);
    cr_expect(o.json && o.quiet);
}

Test(cli, subcommands_and_their_defaults) {
    tcb_opts_t o;
    cr_assert_eq(parse(&o, "sweep --sizes 1,5,10"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_SWEEP);
    cr_expect_eq(o.nsweep, 3);
    cr_expect_eq(o.sweep_pcts[2], 10.0);
    cr_expect_eq(o.duration_ns, 3000000000ull);

    cr_assert_eq(parse(&o, "replay a.gz b.gz --entries 568,1000"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_REPLAY);
    cr_expect_eq(o.ntraces, 2);
    cr_expect_str_eq(o.traces[1], "b.gz");
    cr_expect_eq(o.nentries, 2);
    cr_expect_eq(o.entries[0], 568);
    cr_expect_eq(o.shards, 1);

    cr_assert_eq(parse(&o, "replay a.gz --pct 10 --shards 16"), 0);
    cr_expect_eq(o.shards, 16);
    cr_expect_eq(o.replay_pcts[0], 10.0);

    cr_assert_eq(parse(&o, "miss"), 0);
    cr_expect_eq(o.threads, 1);
    cr_expect_eq(o.l1_pct, 0.0);

    cr_assert_eq(parse(&o, "micro -t 8"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_MICRO);
    cr_expect_eq(o.duration_ns, 1000000000ull);
    cr_expect_eq(o.threads, 8);

    cr_assert_eq(parse(&o, "-w trace:/x/y.gz"), 0);
    cr_expect_eq(o.wl_kind, TCB_WL_TRACE);
    cr_expect_str_eq(o.trace_path, "/x/y.gz");
}

Test(cli, freshness_scenarios_and_their_defaults) {
    tcb_opts_t o;
    cr_assert_eq(parse(&o, "stampede"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_STAMPEDE);
    cr_expect_eq(o.threads, 32);
    cr_expect_eq(o.procs, 1);
    cr_expect_eq(o.ttl_ms, 500);
    cr_expect_eq(o.load_ns, 50000000ull);
    cr_expect_eq(o.duration_ns, 5000000000ull);

    cr_assert_eq(parse(&o, "stampede --procs 4 -t 8 --ttl 250 --load-ms 20 -d 3s"), 0);
    cr_expect_eq(o.procs, 4);
    cr_expect_eq(o.threads, 8);
    cr_expect_eq(o.ttl_ms, 250); /* a bare duration is milliseconds, as everywhere */
    cr_expect_eq(o.load_ns, 20000000ull);
    cr_expect_eq(o.duration_ns, 3000000000ull);

    cr_assert_eq(parse(&o, "failing-source"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_FAILING);
    cr_expect_eq(o.threads, 4);
    cr_expect_eq(o.duration_ns, 8000000000ull);
    cr_expect_eq(o.fail_after_ns, 2000000000ull);
    cr_expect_eq(o.max_stale_ns, 3000000000ull);
    cr_expect_eq(o.backoff_ns, 500000000ull);
    cr_expect_eq(o.ttl_ms, 500);

    cr_assert_eq(parse(&o, "--ttl 2s failing-source --fail-after 1s --max-stale 4s "
                           "--backoff 250"),
                 0);
    cr_expect_eq(o.ttl_ms, 2000);
    cr_expect_eq(o.fail_after_ns, 1000000000ull);
    cr_expect_eq(o.max_stale_ns, 4000000000ull);
    cr_expect_eq(o.backoff_ns, 250000000ull);

    /* compare's long-lived caches default to 10 minutes; a bare --ttl is still ms. */
    cr_assert_eq(parse(&o, "compare"), 0);
    cr_expect_eq(o.ttl_ms, 600000);
    cr_assert_eq(parse(&o, "--ttl 2"), 0);
    cr_expect_eq(o.ttl_ms, 2);
}

Test(cli, freshness_options_reject_bad_values) {
    tcb_opts_t o;
    const char *bad[] = {"stampede --procs 0",
                         "stampede --procs 65",
                         "stampede --ttl 0",
                         "stampede --ttl 500us",
                         "stampede --load-ms -1",
                         "stampede --load-ms 2m",
                         "failing-source --fail-after 8s",
                         "failing-source -d 3s --fail-after 5s",
                         "failing-source -d 3s --fail-after 3000",
                         "failing-source --max-stale 0",
                         "failing-source --backoff 0",
                         "failing-source --backoff 2h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(&o, bad[i]), -1, "'%s' was accepted", bad[i]);
}

Test(cli, inval_and_its_foreign_writer) {
    tcb_opts_t o;
    cr_assert_eq(parse(&o, "inval"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_INVAL);
    cr_expect_eq(o.foreign, 0);
    cr_expect_eq(o.inval_count, 2000);
    cr_expect_eq(o.duration_ns, 3000000000ull);

    cr_assert_eq(parse(&o, "inval --foreign"), 0);
    cr_expect_eq(o.foreign, 1);
    cr_expect_eq(o.foreign_ops, TCB_FOREIGN_SET | TCB_FOREIGN_DEL | TCB_FOREIGN_PEXPIRE);
    cr_expect_eq(o.tracking, TCB_TRACKING_BCAST);

    cr_assert_eq(parse(&o, "--foreign inval --tracking default --foreign-ops del,set "
                           "--count 300"),
                 0);
    cr_expect_eq(o.tracking, TCB_TRACKING_DEFAULT);
    cr_expect_eq(o.foreign_ops, TCB_FOREIGN_SET | TCB_FOREIGN_DEL);
    cr_expect_eq(o.inval_count, 300);

    cr_assert_eq(parse(&o, "inval --foreign --foreign-ops pexpire --tracking bcast"), 0);
    cr_expect_eq(o.foreign_ops, TCB_FOREIGN_PEXPIRE);
    cr_expect_eq(o.tracking, TCB_TRACKING_BCAST);

    /* The reader process gets the writer's mode on its own command line. */
    cr_assert_eq(parse(&o, "inval-reader --foreign --tracking default --prefix p: "
                           "--channel c --shm-fd 3"),
                 0);
    cr_expect_eq(o.cmd, TCB_CMD_INVAL_READER);
    cr_expect(o.foreign && o.tracking == TCB_TRACKING_DEFAULT);
}

Test(cli, foreign_options_reject_bad_values) {
    tcb_opts_t o;
    const char *bad[] = {"inval --foreign --tracking off",
                         "inval --foreign --tracking",
                         "inval --foreign --tracking BCAST",
                         "inval --foreign --foreign-ops expire",
                         "inval --foreign --foreign-ops set,set",
                         "inval --foreign --foreign-ops set,",
                         "inval --foreign --foreign-ops ,",
                         "inval --tracking default",
                         "inval --foreign-ops set",
                         "compare --foreign",
                         "stampede --foreign --tracking default"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(&o, bad[i]), -1, "'%s' was accepted", bad[i]);
}

Test(cli, many_keys_commands_and_their_defaults) {
    tcb_opts_t o;
    cr_assert_eq(parse(&o, "bulk"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_BULK);
    cr_expect_eq(o.keys, 100); /* keys per call */
    cr_expect_eq(o.ops, 0);    /* rounds: chosen from the keys */

    cr_assert_eq(parse(&o, "bulk -n 1000 -o 50"), 0);
    cr_expect_eq(o.keys, 1000);
    cr_expect_eq(o.ops, 50);

    cr_assert_eq(parse(&o, "patterns"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_PATTERNS);
    cr_expect_eq(o.keys, 100000);

    cr_assert_eq(parse(&o, "warm"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_WARM);
    cr_expect_eq(o.keys, 50000);
    cr_expect_eq(o.threads, 1);
    cr_expect_eq(o.duration_ns, 3000000000ull);
    cr_expect_eq(o.warmup_ns, 2000000000ull);
    cr_expect_eq(o.l1_pct, 10.0);

    cr_assert_eq(parse(&o, "warm -n 20k -t 2 -d 5s --warmup 1s --l1 5% -w uniform"), 0);
    cr_expect_eq(o.keys, 20000);
    cr_expect_eq(o.threads, 2);
    cr_expect_eq(o.duration_ns, 5000000000ull);
    cr_expect_eq(o.warmup_ns, 1000000000ull);
    cr_expect_eq(o.l1_pct, 5.0);
    cr_expect_eq(o.wl_kind, TCB_WL_UNIFORM);

    cr_assert_eq(parse(&o, "ring"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_RING);
    cr_expect_eq(o.keys, 100000);
    cr_expect_eq(o.duration_ns, 3000000000ull);
    cr_expect_eq(o.warmup_ns, 1000000000ull);
    cr_expect_eq(o.l1_pct, 10.0);

    cr_assert_eq(parse(&o, "cluster"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_CLUSTER);
    cr_expect_eq(o.keys, 100000);
    cr_expect_eq(o.duration_ns, 3000000000ull);
    cr_expect_eq(o.warmup_ns, 1000000000ull);

    const char *bad[] = {"bulk -n 200k",      "warm -w hotset",
                         "warm -w trace:/x",  "patterns -n 0",
                         "ring -w hotset",    "ring --redis redis://127.0.0.1:6379",
                         "cluster -w hotset", "cluster --redis redis+cluster://127.0.0.1:7000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(&o, bad[i]), -1, "'%s' was accepted", bad[i]);
}

Test(cli, writes_and_its_database) {
    tcb_opts_t o;
    cr_assert_eq(parse(&o, "writes"), 0);
    cr_expect_eq(o.cmd, TCB_CMD_WRITES);
    cr_expect_eq(o.duration_ns, 2000000000ull);
    cr_expect_eq(o.wb_batch, 0); /* the library's write_behind_batch */
    cr_expect_eq(o.db_sync, TCB_DB_SYNC_FULL);
    cr_expect_null(o.db_path);
    cr_expect_eq(o.given & TCB_GIVEN_KEYS, 0); /* every write a new key */

    cr_assert_eq(parse(&o, "writes --db /var/tmp/x.db --batch 1k --db-sync normal -d 4s -o 300 "
                           "-n 50"),
                 0);
    cr_expect_str_eq(o.db_path, "/var/tmp/x.db");
    cr_expect_eq(o.wb_batch, 1000);
    cr_expect_eq(o.db_sync, TCB_DB_SYNC_NORMAL);
    cr_expect_eq(o.duration_ns, 4000000000ull);
    cr_expect_eq(o.ops, 300);
    cr_expect(o.keys == 50 && (o.given & TCB_GIVEN_KEYS));
    cr_assert_eq(parse(&o, "writes --db-sync off"), 0);
    cr_expect_eq(o.db_sync, TCB_DB_SYNC_OFF);

    const char *bad[] = {"writes --batch 0",    "writes --batch 200k", "writes --db-sync fast",
                         "writes --db=",        "compare --batch 10",  "bulk --db /x",
                         "sweep --db-sync full"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(&o, bad[i]), -1, "'%s' was accepted", bad[i]);
}

Test(cli, help_and_errors) {
    tcb_opts_t o;
    cr_expect_eq(parse(&o, "--help"), 1);
    cr_expect_eq(parse(&o, "help"), 1);
    const char *bad[] = {"frobnicate",
                         "--keys 0",
                         "--keys 1.5",
                         "--keys ten",
                         "--zipf -1",
                         "--writes 101",
                         "--l1 120%",
                         "--l1 12 MB",
                         "--threads 0",
                         "--duration 0",
                         "--duration 5 parsecs",
                         "--shards 3",
                         "--value-size 10-5",
                         "--workload zipfian",
                         "--workload trace:",
                         "--sizes 1,,2",
                         "--no-such-option",
                         "replay",
                         "replay a.gz",
                         "compare extra",
                         "--ttl 0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(&o, bad[i]), -1, "'%s' was accepted", bad[i]);
}

/* ---- one unit rule for every flag: the library's ---- */

typedef struct dur_flag {
    const char *cmd, *flag;
    size_t off; /* offsetof(tcb_opts_t, ...) of a nanosecond field; 0: ttl_ms */
} dur_flag_t;

static const dur_flag_t dur_flags[] = {
    {"compare", "-d", offsetof(tcb_opts_t, duration_ns)},
    {"sweep", "--duration", offsetof(tcb_opts_t, duration_ns)},
    {"compare", "--warmup", offsetof(tcb_opts_t, warmup_ns)},
    {"compare", "--hot-shift", offsetof(tcb_opts_t, hot_shift_ns)},
    {"compare", "--source-latency", offsetof(tcb_opts_t, source_ns)},
    {"compare", "--ttl", 0},
    {"stampede", "--ttl", 0},
    {"bulk", "--ttl", 0},
    {"stampede", "--load-ms", offsetof(tcb_opts_t, load_ns)},
    {"failing-source", "--fail-after", offsetof(tcb_opts_t, fail_after_ns)},
    {"failing-source", "--max-stale", offsetof(tcb_opts_t, max_stale_ns)},
    {"failing-source", "--backoff", offsetof(tcb_opts_t, backoff_ns)},
    {"warm", "-d", offsetof(tcb_opts_t, duration_ns)},
    {"ring", "-d", offsetof(tcb_opts_t, duration_ns)},
    {"micro", "-d", offsetof(tcb_opts_t, duration_ns)},
    {"inval", "-d", offsetof(tcb_opts_t, duration_ns)},
};

/* The flag's value in ms, or -1 when the command line was refused. */
static long long dur_ms(const dur_flag_t *f, const char *value) {
    tcb_opts_t o;
    char line[160];
    /* failing-source needs --fail-after below -d: give it room */
    snprintf(line, sizeof line, "%s %s %s%s", f->cmd, f->flag, value,
             strcmp(f->cmd, "failing-source") == 0 && strcmp(f->flag, "-d") != 0 ? " -d 1h"
                                                                                 : "");
    if (parse(&o, line) != 0)
        return -1;
    if (f->off == 0)
        return (long long)o.ttl_ms;
    uint64_t ns;
    memcpy(&ns, (const char *)&o + f->off, sizeof ns);
    return (long long)(ns / 1000000ull);
}

Test(units, a_bare_duration_is_milliseconds_for_every_flag) {
    for (size_t i = 0; i < sizeof dur_flags / sizeof dur_flags[0]; i++) {
        const dur_flag_t *f = &dur_flags[i];
        cr_expect_eq(dur_ms(f, "1500"), 1500, "%s %s 1500", f->cmd, f->flag);
        cr_expect_eq(dur_ms(f, "1500ms"), 1500, "%s %s 1500ms", f->cmd, f->flag);
        cr_expect_eq(dur_ms(f, "1.5s"), 1500, "%s %s 1.5s", f->cmd, f->flag);
        cr_expect_eq(dur_ms(f, "10s"), 10000, "%s %s 10s (an old spelling)", f->cmd, f->flag);
        cr_expect_eq(dur_ms(f, "0.5s"), 500, "%s %s 0.5s", f->cmd, f->flag);
        /* a fraction of a millisecond is refused, never rounded to another duration */
        cr_expect_eq(dur_ms(f, "0.5"), -1, "%s %s 0.5", f->cmd, f->flag);
        cr_expect_eq(dur_ms(f, "10sec"), -1, "%s %s 10sec", f->cmd, f->flag);
        cr_expect_eq(dur_ms(f, "-1s"), -1, "%s %s -1s", f->cmd, f->flag);
    }
}

/* The CLI says what the library says about the same text: one parser, not two that agree
 * today. */
Test(units, durations_are_the_library_parser) {
    static const char *const texts[] = {"0",     "1",    "250", "250ms", "30s",  "30S",
                                        "5m",    "1h",   "1d",  "1.5s",  "2.5m", "1.0ms",
                                        "1.5ms", "1e3",  "1x",  "s",     "1sec", "1w",
                                        "-5",    "0x10", "1us", "1ns",   "1.s",  "10ss"};
    const dur_flag_t f = {"compare", "--warmup", offsetof(tcb_opts_t, warmup_ns)};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        uint64_t lib;
        if (tc__parse_duration_ms(texts[i], &lib) == 0)
            cr_expect_eq(dur_ms(&f, texts[i]), (long long)lib, "'%s'", texts[i]);
        else
            cr_expect_eq(dur_ms(&f, texts[i]), -1, "'%s' accepted", texts[i]);
    }
}

Test(units, source_latency_also_takes_microseconds) {
    tcb_opts_t o;
    cr_assert_eq(parse(&o, "--source-latency 50us"), 0);
    cr_expect_eq(o.source_ns, 50000);
    cr_assert_eq(parse(&o, "--source-latency 0"), 0);
    cr_expect_eq(o.source_ns, 0);
    cr_assert_eq(parse(&o, "--source-latency 2"), 0);
    cr_expect_eq(o.source_ns, 2000000);
    cr_expect_eq(parse(&o, "--source-latency 2.5us"), -1);
    cr_expect_eq(parse(&o, "--source-latency us"), -1);
    cr_expect_eq(parse(&o, "-d 50us"), -1); /* only the source's latency goes below 1 ms */
    cr_expect_eq(parse(&o, "--ttl 500us"), -1);
}

Test(units, byte_sizes_are_the_library_parser) {
    static const struct {
        const char *text;
        uint64_t want;
    } ok[] = {{"64MiB", 64ull << 20}, {"64mib", 64ull << 20}, {"1GB", 1000000000ull},
              {"4k", 4096},           {"4KB", 4000},          {"4096", 4096},
              {"1.5GiB", 3ull << 29}, {"512B", 512}};
    tcb_opts_t o;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char line[64];
        uint64_t lib = 0;
        snprintf(line, sizeof line, "--l1 %s", ok[i].text);
        cr_assert_eq(parse(&o, line), 0, "%s", line);
        cr_expect(o.l1_in_bytes && o.l1_bytes == ok[i].want, "%s -> %llu", line,
                  (unsigned long long)o.l1_bytes);
        cr_expect(tc__parse_bytes(ok[i].text, &lib) == 0 && lib == o.l1_bytes, "%s", line);
    }
    static const char *const bad[] = {"--l1 12XB", "--l1 1.5B", "--l1 -1", "--l1 1e3",
                                      "--l1 0.1KiB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(&o, bad[i]), -1, "'%s' was accepted", bad[i]);

    /* --value-size is a byte size too */
    cr_assert_eq(parse(&o, "-v 1KiB"), 0);
    cr_expect(o.vsize.kind == TCB_VS_FIXED && o.vsize.a == 1024);
    cr_assert_eq(parse(&o, "-v 64-4KiB"), 0);
    cr_expect(o.vsize.kind == TCB_VS_UNIFORM && o.vsize.a == 64 && o.vsize.b == 4096);
    cr_assert_eq(parse(&o, "-v exp:1KB"), 0);
    cr_expect(o.vsize.kind == TCB_VS_EXP && o.vsize.a == 1000);
    cr_expect_eq(parse(&o, "-v 32MiB"), -1);
}

Test(units, counts_take_1000_based_suffixes) {
    tcb_opts_t o;
    cr_assert_eq(parse(&o, "-n 1M"), 0);
    cr_expect_eq(o.keys, 1000000);
    cr_assert_eq(parse(&o, "-n 250k -o 2k"), 0);
    cr_expect_eq(o.keys, 250000);
    cr_expect_eq(o.ops, 2000);
    const char *bad[] = {"-n -1", "-n 1e30", "-n 1.5", "-n 1Mi", "--sizes 1,2,", "--sizes ,1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(&o, bad[i]), -1, "'%s' was accepted", bad[i]);
    cr_assert_eq(parse(&o, "sweep --sizes 0.1,1,10"), 0);
    cr_expect_eq(o.nsweep, 3);
    cr_assert_eq(parse(&o, "replay a.gz --entries 500,2k"), 0);
    cr_expect(o.nentries == 2 && o.entries[0] == 500 && o.entries[1] == 2000);
    cr_expect_eq(parse(&o, "replay a.gz --entries 10%"), -1);
}

/* Fractions and percentages are the library's decimals too: "5" or "5%", never "1e0". */
Test(units, percentages_and_fractions) {
    tcb_opts_t o;
    cr_assert_eq(parse(&o, "-W 5 --hot-keys 2% --hot-share 80 --l1 12.5% -s 0.8"), 0);
    cr_expect_eq(o.write_frac, 0.05);
    cr_expect_eq(o.hot_frac, 0.02);
    cr_expect_eq(o.hot_share, 0.8);
    cr_expect_eq(o.l1_pct, 12.5);
    cr_expect_eq(o.zipf_s, 0.8);
    const char *bad[] = {"-s 1e0", "-s .5",     "-s +1",        "-W 101",
                         "-W 5%%", "--l1 101%", "--sizes 1,1e2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(&o, bad[i]), -1, "'%s' was accepted", bad[i]);
}

Test(units, formatting) {
    char buf[32];
    cr_expect_str_eq(tcb_fmt_count(1234567, buf, sizeof buf), "1,234,567");
    cr_expect_str_eq(tcb_fmt_count(999, buf, sizeof buf), "999");
    cr_expect_str_eq(tcb_fmt_count(1000, buf, sizeof buf), "1,000");
    cr_expect_str_eq(tcb_fmt_ns(31200, buf, sizeof buf), "31.2 us");
    cr_expect_str_eq(tcb_fmt_bytes(25690112.0, buf, sizeof buf), "24.5 MiB");
}

/* ---- --version and per-command --help ---- */

/* Parse line with stdout captured into out (NUL-terminated). Returns the parse result. */
static int parse_capture(const char *line, char *out, size_t cap) {
    static char buf[512];
    char *argv[64];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    argv[argc++] = (char *)"tiercache-bench";
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    FILE *saved = stdout, *tmp = tmpfile();
    cr_assert_not_null(tmp);
    stdout = tmp;
    tcb_opts_t o;
    int rc = tcb_cli_parse(argc, argv, &o);
    fflush(tmp);
    stdout = saved;
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return rc;
}

Test(cli, version_names_the_tool_and_the_library) {
    char out[256], want[128];
    cr_assert_eq(parse_capture("--version", out, sizeof out), 1);
    snprintf(want, sizeof want, "tiercache-bench %s (libtiercache %s)\n", TCB_VERSION,
             tc_version());
    cr_expect_str_eq(out, want);
    cr_assert_eq(parse_capture("sweep --version", out, sizeof out), 1);
    cr_expect_str_eq(out, want);
}

Test(cli, each_command_has_its_own_help_page) {
    static const struct {
        const char *line, *usage;
        const char *has[4], *lacks[4];
    } pages[] = {
        {"sweep --help",
         "Usage: tiercache-bench sweep",
         {"--sizes", "--out", "--warmup", "-n,"},
         {"--entries", "--procs", "--foreign", "--max-stale"}},
        {"replay -h",
         "Usage: tiercache-bench replay",
         {"--entries", "--pct", "--shards", NULL},
         {"--sizes", "--redis", "--warmup", "--procs"}},
        {"help stampede",
         "Usage: tiercache-bench stampede",
         {"--procs", "--load-ms", "--ttl", "--redis"},
         {"--sizes", "--entries", "--fail-after", "--foreign"}},
        {"--help failing-source",
         "Usage: tiercache-bench failing-source",
         {"--fail-after", "--max-stale", "--backoff", NULL},
         {"--procs", "--sizes", "--entries", NULL}},
        {"compare --help",
         "Usage: tiercache-bench [compare]",
         {"--l1", "--warmup", "-W,", NULL},
         {"--sizes", "--entries", "--procs", NULL}},
        {"miss --help",
         "Usage: tiercache-bench miss",
         {"--warmup", NULL, NULL, NULL},
         {"--l1", "--sizes", NULL, NULL}},
        {"micro --help",
         "Usage: tiercache-bench micro",
         {"--shards", "-t,", NULL, NULL},
         {"--redis", "--sizes", NULL, NULL}},
        {"inval --help",
         "Usage: tiercache-bench inval",
         {"--foreign", "--count", NULL, NULL},
         {"--sizes", NULL, NULL, NULL}},
        {"bulk --help",
         "Usage: tiercache-bench bulk",
         {"-n,", "-o,", NULL, NULL},
         {"--sizes", NULL, NULL, NULL}},
        {"patterns --help",
         "Usage: tiercache-bench patterns",
         {"-n,", NULL, NULL, NULL},
         {"--sizes", NULL, NULL, NULL}},
        {"warm --help",
         "Usage: tiercache-bench warm",
         {"--warmup", "--l1", NULL, NULL},
         {"--sizes", NULL, NULL, NULL}},
        {"writes --help",
         "Usage: tiercache-bench writes",
         {"--batch", "--db", "--db-sync", "--redis"},
         {"--sizes", "--warmup", "--l1", NULL}},
    };
    static char out[16384];
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        cr_assert_eq(parse_capture(pages[i].line, out, sizeof out), 1, "%s", pages[i].line);
        cr_expect_eq(strncmp(out, pages[i].usage, strlen(pages[i].usage)), 0, "%s: %.60s",
                     pages[i].line, out);
        cr_expect_not_null(strstr(out, "A BARE NUMBER IS MILLISECONDS"), "%s", pages[i].line);
        cr_expect_null(strstr(out, "Commands:"), "%s printed the overview", pages[i].line);
        for (int k = 0; k < 4; k++) {
            if (pages[i].has[k])
                cr_expect_not_null(strstr(out, pages[i].has[k]), "%s lacks %s", pages[i].line,
                                   pages[i].has[k]);
            if (pages[i].lacks[k])
                cr_expect_null(strstr(out, pages[i].lacks[k]), "%s shows %s", pages[i].line,
                               pages[i].lacks[k]);
        }
    }
    /* no command: the overview, with every command and the unit rule */
    const char *overview[] = {"--help", "help", "-h"};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(parse_capture(overview[i], out, sizeof out), 1);
        cr_expect_not_null(strstr(out, "Commands:"), "%s", overview[i]);
        cr_expect_not_null(strstr(out, "failing-source"), "%s", overview[i]);
        cr_expect_not_null(strstr(out, "A BARE NUMBER IS MILLISECONDS"), "%s", overview[i]);
    }
    /* a bad value after --help does not matter: the page is what was asked for */
    cr_expect_eq(parse_capture("sweep --help -d nonsense", out, sizeof out), 1);
    cr_expect_eq(parse_capture("frobnicate --help", out, sizeof out), -1);
}

Test(units, percentages_keep_rare_events_visible) {
    char buf[32];
    cr_expect_str_eq(tcb_fmt_pct(0.0, buf, sizeof buf), "0%");
    cr_expect_str_eq(tcb_fmt_pct(100.0, buf, sizeof buf), "100%");
    cr_expect_str_eq(tcb_fmt_pct(99.99, buf, sizeof buf), ">99.9%");
    cr_expect_str_eq(tcb_fmt_pct(57.83, buf, sizeof buf), "57.8%");
    cr_expect_str_eq(tcb_fmt_pct(0.25, buf, sizeof buf), "0.25%");
    cr_expect_str_eq(tcb_fmt_pct(0.00042, buf, sizeof buf), "0.0004%");
    cr_expect_str_eq(tcb_fmt_pct(0.00000042, buf, sizeof buf), "<0.0001%");
}

Test(url, tcp_unix_and_credentials) {
    tcb_endpoint_t ep;
    char err[256];
    cr_assert_eq(tcb_endpoint_parse("redis://127.0.0.1:7000/3", &ep, err, sizeof err), 0);
    cr_expect(!ep.is_unix && strcmp(ep.host, "127.0.0.1") == 0 && ep.port == 7000 &&
              ep.db == 3);
    cr_assert_eq(tcb_endpoint_parse("redis://localhost", &ep, err, sizeof err), 0);
    cr_expect(ep.port == 6379 && ep.db == 0 && !ep.has_password);
    cr_assert_eq(tcb_endpoint_parse("redis://al%40x:p%3Aw@[::1]:6380", &ep, err, sizeof err),
                 0);
    cr_expect_str_eq(ep.user, "al@x");
    cr_expect_str_eq(ep.password, "p:w");
    cr_expect_str_eq(ep.host, "::1");
    cr_expect_eq(ep.port, 6380);
    /* The library's rule (tc_open refuses it too): a bare userinfo is a user, and a user
     * needs a password; a password alone is written :secret@. */
    cr_expect_eq(tcb_endpoint_parse("redis://secret@h", &ep, err, sizeof err), -1);
    cr_expect_null(strstr(err, "secret"), "the error shows the userinfo: %s", err);
    cr_assert_eq(tcb_endpoint_parse("redis://:pw@h:1", &ep, err, sizeof err), 0);
    cr_expect(ep.has_password && !ep.has_user && strcmp(ep.password, "pw") == 0);
    cr_assert_eq(tcb_endpoint_parse("unix:///tmp/r.sock?db=2&password=x", &ep, err, sizeof err),
                 0);
    cr_expect(ep.is_unix && strcmp(ep.path, "/tmp/r.sock") == 0 && ep.db == 2 &&
              strcmp(ep.password, "x") == 0);
    const char *bad[] = {"http://h",         "redis://",         "redis://h:0",
                         "redis://h:99999",  "redis://h:12x",    "redis://h/x",
                         "unix://relative",  "unix:///s?dbx=1",  "redis://[::1",
                         "redis://u:p%zz@h", "unix:///s?db=abc", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(tcb_endpoint_parse(bad[i], &ep, err, sizeof err), -1, "'%s' accepted",
                     bad[i]);
    cr_expect_eq(tcb_endpoint_parse(NULL, &ep, err, sizeof err), -1);
}

/* Errors and the report show the URL, never its password, whatever the password holds. */
Test(url, password_never_shown) {
    tcb_endpoint_t ep;
    char err[256], shown[256];
    static const char *const urls[] = {"redis://u:SE/CRET@h:notaport", "redis://u:SECRET@h:1/x",
                                       "redis://SE?CRET@h:0", "unix:///s?password=SECRET&db=x"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        cr_expect_eq(tcb_endpoint_parse(urls[i], &ep, err, sizeof err), -1, "%s", urls[i]);
        cr_expect_null(strstr(err, "CRET"), "the error shows the password: %s", err);
        tcb_url_mask(urls[i], shown, sizeof shown);
        cr_expect_null(strstr(shown, "CRET"), "the masked URL shows the password: %s", shown);
    }
    cr_assert_eq(tcb_endpoint_parse("redis://u:pa/ss@h:7/2", &ep, err, sizeof err), 0, "%s",
                 err);
    cr_expect_str_eq(ep.password, "pa/ss");
    cr_expect_eq(ep.db, 2);
}

static const char info_a[] = "# Server\r\nredis_version:7.0.15\r\nuptime:5\r\n\r\n"
                             "# Stats\r\ntotal_commands_processed:1000\r\n"
                             "total_net_input_bytes:50000\r\ntotal_net_output_bytes:90000\r\n"
                             "\r\n# Commandstats\r\n"
                             "cmdstat_get:calls=800,usec=1000,usec_per_call=1.25\r\n"
                             "cmdstat_info:calls=3,usec=10,usec_per_call=3.3\r\n";
static const char info_b[] = "# Stats\r\ntotal_commands_processed:1501\r\n"
                             "total_net_input_bytes:60050\r\ntotal_net_output_bytes:99100\r\n"
                             "# Commandstats\r\n"
                             "cmdstat_get:calls=1200,usec=1,usec_per_call=1\r\n"
                             "cmdstat_info:calls=4,usec=10,usec_per_call=3.3\r\n"
                             "cmdstat_pttl:calls=100,usec=1,usec_per_call=1\r\n";

Test(info, parse_and_delta) {
    tcb_info_t a, b, d;
    cr_assert_eq(tcb_info_parse(info_a, sizeof info_a - 1, &a), 0);
    cr_expect_eq(a.commands, 1000);
    cr_expect_eq(a.net_in, 50000);
    cr_expect_eq(a.net_out, 90000);
    cr_expect_str_eq(a.version, "7.0.15");
    cr_expect_eq(a.ncmds, 2);
    cr_expect_str_eq(a.cmds[0].name, "get");
    cr_expect_eq(a.cmds[0].calls, 800);
    a.req_bytes = 1050; /* 50 in, 1000 out */
    cr_assert_eq(tcb_info_parse(info_b, sizeof info_b - 1, &b), 0);
    tcb_info_delta(&a, &b, &d);
    cr_expect_eq(d.commands, 500); /* 501 minus the first INFO */
    cr_expect_eq(d.net_in, 10000);
    cr_expect_eq(d.net_out, 8100);
    for (size_t i = 0; i < d.ncmds; i++) {
        if (strcmp(d.cmds[i].name, "get") == 0)
            cr_expect_eq(d.cmds[i].calls, 400);
        if (strcmp(d.cmds[i].name, "info") == 0)
            cr_expect_eq(d.cmds[i].calls, 0);
        if (strcmp(d.cmds[i].name, "pttl") == 0)
            cr_expect_eq(d.cmds[i].calls, 100);
    }
    cr_expect_eq(tcb_info_parse("# Nothing\r\nfoo:1\r\n", 19, &a), -1);
    cr_expect_eq(tcb_info_parse(NULL, 0, &a), -1);
}
