/*
 * test_prometheus.c - tc_stats_prometheus (prom.c) read back by a strict parser.
 *
 * The idea: Prometheus drops a whole scrape over one malformed line, so the tests do not
 * grep the text: they parse all of it with support/promtext.h, which refuses anything a
 * scraper would refuse or misread (HELP and TYPE once and first, label syntax, cumulative
 * histogram buckets in ascending le ending in +Inf == _count). Then the values are checked
 * against tc_stats and tc_latency after known calls on an L1-only cache (idle while read,
 * so both agree exactly), the caller's labels against every sample, TC_ENOSPC's size
 * against a second call, and bad labels against TC_EINVAL. The last test shows that the
 * parser refuses broken text, without which the others would prove little.
 */
/* tc-test-labels: unit */
#include "prom.h"
#include "promtext.h"
#include "tiercache.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

static tc_cache_t *open_local(void) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    tc_cache_t *c = NULL;
    tc_error_t err;
    int rc = tc_open(&cfg, &c, &err);
    cr_assert_eq(rc, TC_OK, "tc_open: %s", err.msg);
    return c;
}

static int load_value(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)arg;
    return tc_load_set_value(load, key, klen);
}

/* Known traffic: what each counter and histogram below must show. */
/* Without Redis sets and deletes are timed one call in 64 (tc__write_timer), on one
 * counter: 64 deletes in a row are exactly one sample, 300 sets four or five. */
enum { N_SETS = 300, N_HITS = 300, N_MISSES = 7, N_LOADS = 5, N_DELS = 64 };

static void traffic(tc_cache_t *c) {
    char key[32];
    for (int i = 0; i < N_SETS; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        cr_assert_eq(tc_set(c, key, (size_t)n, "value", 5, 0), TC_OK);
    }
    for (int i = 0; i < N_HITS; i++) {
        tc_ref_t *ref;
        int n = snprintf(key, sizeof key, "key:%d", i);
        cr_assert_eq(tc_get(c, key, (size_t)n, &ref), TC_OK);
        tc_ref_release(ref);
    }
    for (int i = 0; i < N_MISSES; i++) {
        tc_ref_t *ref;
        int n = snprintf(key, sizeof key, "absent:%d", i);
        cr_assert_eq(tc_get(c, key, (size_t)n, &ref), TC_ENOTFOUND);
    }
    for (int i = 0; i < N_LOADS; i++) {
        tc_ref_t *ref;
        int n = snprintf(key, sizeof key, "loaded:%d", i);
        cr_assert_eq(tc_fetch(c, key, (size_t)n, load_value, NULL, &ref), TC_OK);
        tc_ref_release(ref);
    }
    for (int i = 0; i < N_DELS; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        cr_assert_eq(tc_del(c, key, (size_t)n), TC_OK);
    }
}

/* The whole exposition into a malloc'd buffer (the size asked first). */
static char *scrape(tc_cache_t *c, const char *labels, size_t *len) {
    size_t need = 0;
    cr_assert_eq(tc_stats_prometheus(c, labels, NULL, 0, &need), TC_ENOSPC);
    char *buf = malloc(need);
    cr_assert_not_null(buf);
    int rc = tc_stats_prometheus(c, labels, buf, need, len);
    cr_assert_eq(rc, TC_OK, "%s", tc_err_name(rc));
    return buf;
}

static tc_test_prom_t *parse_or_fail(const char *text, size_t len) {
    tc_test_prom_t *e = malloc(sizeof *e);
    cr_assert_not_null(e);
    cr_assert(tc_test_prom_parse(e, text, len), "not a valid exposition: %s", e->error);
    return e;
}

static uint64_t field_value(const tc_stats_t *st, const tc__prom_field_t *f) {
    const char *at = (const char *)st + f->offset;
    if (f->size == sizeof(int)) {
        int v;
        memcpy(&v, at, sizeof v);
        return (uint64_t)v;
    }
    uint64_t v;
    memcpy(&v, at, sizeof v);
    return v;
}

static const char *const kinds[TC_LAT_COUNT] = {"get_hit", "get_miss", "fetch_load",
                                                "set",     "del",      "inval"};

/* ---- tests ---- */

/* The table behind the counters covers tc_stats_t field by field, without a gap: a field
 * appended to the struct but not to the table would go unexported. */
Test(prometheus, table_covers_every_stats_field) {
    size_t n;
    const tc__prom_field_t *f = tc__prom_fields(&n);
    size_t end = 0;
    for (size_t i = 0; i < n; i++) {
        size_t aligned = (end + f[i].size - 1) / f[i].size * f[i].size;
        cr_assert_eq(f[i].offset, aligned, "row %zu (%s) does not follow the one before", i,
                     f[i].name);
        cr_assert(f[i].size == sizeof(uint64_t) || f[i].size == sizeof(int));
        cr_assert_null(strchr(f[i].help, '\\'), "%s: HELP is written unescaped", f[i].name);
        cr_assert_null(strchr(f[i].help, '\n'), "%s: HELP is one line", f[i].name);
        end = f[i].offset + f[i].size;
    }
    cr_assert_eq(end, sizeof(tc_stats_t), "the table stops before tc_stats_t does");
}

/* Every field and every histogram, checked against tc_stats and tc_latency. */
Test(prometheus, values_match_stats_and_latency) {
    tc_cache_t *c = open_local();
    traffic(c);
    size_t len;
    char *text = scrape(c, NULL, &len);
    tc_test_prom_t *e = parse_or_fail(text, len);
    tc_stats_t st;
    cr_assert_eq(tc_stats(c, &st), TC_OK);

    size_t n;
    const tc__prom_field_t *f = tc__prom_fields(&n);
    cr_assert_eq(e->nfamilies, (int)n + 1, "one family per field, plus the histogram");
    for (size_t i = 0; i < n; i++) {
        char name[96];
        int counter = f[i].type == TC__PROM_COUNTER;
        snprintf(name, sizeof name, "tiercache_%s%s", f[i].name, counter ? "_total" : "");
        const tc_test_prom_sample_t *s = tc_test_prom_find(e, name, NULL, NULL);
        cr_assert_eq(s->nlabels, 0);
        cr_assert_str_eq(e->families[s->family].type, counter ? "counter" : "gauge", "%s",
                         name);
        cr_assert_eq((uint64_t)s->value, field_value(&st, &f[i]), "%s", name);
    }
    /* the traffic really landed where the names say */
    cr_assert_eq(tc_test_prom_find(e, "tiercache_l1_hits_total", NULL, NULL)->value, N_HITS);
    cr_assert_eq(tc_test_prom_find(e, "tiercache_loads_total", NULL, NULL)->value, N_LOADS);
    cr_assert_eq(tc_test_prom_find(e, "tiercache_l1_entries", NULL, NULL)->value,
                 N_SETS + N_LOADS - N_DELS);

    cr_assert_eq(e->series, TC_LAT_COUNT);
    const uint64_t *bounds = tc_latency_bounds_ns();
    for (int k = 0; k < TC_LAT_COUNT; k++) {
        tc_latency_t h;
        cr_assert_eq(tc_latency(c, k, &h), TC_OK);
        uint64_t cumulative = 0;
        for (int b = 0; b < TC_LATENCY_BUCKETS; b++) {
            char le[TC__PROM_SECONDS_MAX] = "+Inf";
            if (bounds[b] != UINT64_MAX)
                tc__prom_seconds(bounds[b], le);
            cumulative += h.buckets[b];
            cr_assert_eq(
                tc_test_prom_find(e, "tiercache_call_duration_seconds_bucket", kinds[k], le)
                    ->value,
                (double)cumulative, "%s le=%s", kinds[k], le);
        }
        double count =
            tc_test_prom_find(e, "tiercache_call_duration_seconds_count", kinds[k], NULL)
                ->value;
        double sum =
            tc_test_prom_find(e, "tiercache_call_duration_seconds_sum", kinds[k], NULL)->value;
        cr_assert_eq(count, (double)h.count, "%s", kinds[k]);
        cr_assert(fabs(sum - (double)h.sum_ns / 1e9) <= 1e-12 * (1 + sum), "%s sum", kinds[k]);
    }
    double sets =
        tc_test_prom_find(e, "tiercache_call_duration_seconds_count", "set", NULL)->value;
    cr_assert(sets == N_SETS / 64 || sets == N_SETS / 64 + 1, "%g set samples", sets);
    cr_assert_eq(
        tc_test_prom_find(e, "tiercache_call_duration_seconds_count", "del", NULL)->value, 1);
    cr_assert_eq(
        tc_test_prom_find(e, "tiercache_call_duration_seconds_count", "fetch_load", NULL)
            ->value,
        N_LOADS);
    /* L1 hits are timed 1 call in 64 (per thread): a few of the N_HITS + N_LOADS */
    double hits =
        tc_test_prom_find(e, "tiercache_call_duration_seconds_count", "get_hit", NULL)->value;
    cr_assert(hits >= N_HITS / 64 && hits <= N_HITS / 64 + 1, "get_hit count %g", hits);
    free(e);
    free(text);
    tc_close(c);
}

/* le is written in one canonical form (the Go client's), whatever the locale. */
Test(prometheus, bucket_bounds_read_as_the_go_client_writes_them) {
    static const char *const want[TC_LATENCY_BUCKETS] = {
        "1e-07", "2.5e-07", "5e-07",   "1e-06",  "2.5e-06", "5e-06",  "1e-05", "2.5e-05",
        "5e-05", "0.0001",  "0.00025", "0.0005", "0.001",   "0.0025", "0.005", "0.01",
        "0.025", "0.05",    "0.1",     "0.25",   "0.5",     "1",      "5",     "+Inf"};
    tc_cache_t *c = open_local();
    size_t len;
    char *text = scrape(c, NULL, &len);
    tc_test_prom_t *e = parse_or_fail(text, len);
    int b = 0;
    for (int i = 0; i < e->nsamples; i++) {
        const char *kind = tc_test_prom_label(&e->samples[i], "kind");
        const char *le = tc_test_prom_label(&e->samples[i], "le");
        if (!kind || strcmp(kind, "set") || !le)
            continue;
        cr_assert_lt(b, TC_LATENCY_BUCKETS);
        cr_assert_str_eq(le, want[b], "bucket %d", b);
        b++;
    }
    cr_assert_eq(b, TC_LATENCY_BUCKETS);
    free(e);
    free(text);
    tc_close(c);
}

Test(prometheus, seconds_are_exact_and_shortest) {
    static const struct {
        uint64_t ns;
        const char *text;
    } cases[] = {
        {0, "0"},
        {1, "1e-09"},
        {1234, "1.234e-06"},
        {99999, "9.9999e-05"},
        {100000, "0.0001"},
        {123456789, "0.123456789"},
        {1000000000, "1"},
        {1500000000, "1.5"},
        {5000000000u, "5"},
        {999999000000000u, "999999"},
        {1000000000000000u, "1e+06"},
        {1234567890123456789u, "1.234567890123456789e+09"},
        {UINT64_MAX, "1.8446744073709551615e+10"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[TC__PROM_SECONDS_MAX];
        size_t n = tc__prom_seconds(cases[i].ns, out);
        cr_assert_str_eq(out, cases[i].text, "ns=%llu", (unsigned long long)cases[i].ns);
        cr_assert_eq(n, strlen(cases[i].text));
    }
    /* and every form parses back to the value it stands for */
    uint64_t ns = 1;
    for (int i = 0; i < 60; i++, ns = ns * 3 + 7) {
        char out[TC__PROM_SECONDS_MAX];
        tc__prom_seconds(ns, out);
        double back = strtod(out, NULL), want = (double)ns / 1e9;
        cr_assert(fabs(back - want) <= 1e-15 * want, "ns=%llu: %s", (unsigned long long)ns,
                  out);
    }
}

/* The caller's labels come first in every sample, exactly as given. */
Test(prometheus, user_labels_are_on_every_sample) {
    tc_cache_t *c = open_local();
    traffic(c);
    const char *labels = "service=\"api\",zone=\"b\\\"q\\\\\\n\"";
    size_t plain_len, len;
    char *plain = scrape(c, NULL, &plain_len);
    char *text = scrape(c, labels, &len);
    tc_test_prom_t *e = parse_or_fail(text, len);
    tc_test_prom_t *p = parse_or_fail(plain, plain_len);
    cr_assert_eq(e->nsamples, p->nsamples);
    for (int i = 0; i < e->nsamples; i++) {
        const tc_test_prom_sample_t *s = &e->samples[i];
        cr_assert_geq(s->nlabels, 2, "%s", s->name);
        cr_assert_str_eq(s->labels[0].name, "service", "%s", s->name);
        cr_assert_str_eq(s->labels[0].value, "api");
        cr_assert_str_eq(s->labels[1].name, "zone", "%s", s->name);
        cr_assert_str_eq(s->labels[1].value, "b\"q\\\n");
        cr_assert_eq(s->nlabels, p->samples[i].nlabels + 2, "%s", s->name);
        cr_assert_str_eq(s->name, p->samples[i].name);
    }
    cr_assert_eq(e->series, TC_LAT_COUNT);
    /* an empty string is no labels at all */
    size_t empty_len;
    char *empty = scrape(c, "", &empty_len);
    cr_assert_eq(empty_len, plain_len);
    free(empty);
    free(p);
    free(e);
    free(plain);
    free(text);
    tc_close(c);
}

/* TC_ENOSPC gives the size that works, and leaves no cut-off text behind. */
Test(prometheus, enospc_reports_the_size_needed) {
    tc_cache_t *c = open_local();
    traffic(c);
    size_t need = 0;
    cr_assert_eq(tc_stats_prometheus(c, "a=\"b\"", NULL, 0, &need), TC_ENOSPC);
    cr_assert_gt(need, 1000);
    char *buf = malloc(need + 1);
    cr_assert_not_null(buf);

    size_t len = 0;
    memset(buf, 'x', need + 1);
    cr_assert_eq(tc_stats_prometheus(c, "a=\"b\"", buf, need - 1, &len), TC_ENOSPC);
    cr_assert_eq(len, need, "a short buffer reports the same size");
    cr_assert_eq(buf[0], '\0', "a cut-off text must not look like a scrape");
    cr_assert_eq(buf[need - 1], 'x', "nothing written past cap");

    memset(buf, 'x', need + 1);
    cr_assert_eq(tc_stats_prometheus(c, "a=\"b\"", buf, need, &len), TC_OK);
    cr_assert_eq(len, need - 1, "len excludes the NUL");
    cr_assert_eq(buf[len], '\0');
    cr_assert_eq(strlen(buf), len);
    cr_assert_eq(buf[need], 'x', "nothing written past cap");
    free(parse_or_fail(buf, len));
    free(buf);
    tc_close(c);
}

Test(prometheus, bad_arguments_and_labels_are_refused) {
    static const char *const bad[] = {
        "a=\"b\nc\"",         /* raw newline */
        "a=\"b",              /* unbalanced quote */
        "a=\"b\"\"",          /* a stray quote */
        "a=b",                /* unquoted */
        "=\"x\"",             /* no name */
        "1a=\"x\"",           /* a name starting with a digit */
        "a-b=\"x\"",          /* a character names cannot have */
        "a=\"x\",",           /* trailing comma */
        "a=\"x\"b=\"y\"",     /* missing comma */
        " a=\"x\"",           /* leading space */
        "a=\"\\q\"",          /* an escape the format does not have */
        "a=\"x\\\"",          /* an escaped closing quote: unbalanced */
        "le=\"1\"",           /* tiercache writes le */
        "b=\"1\",kind=\"x\"", /* and kind */
        "__name__=\"x\"",     /* reserved by Prometheus */
        "{a=\"x\"}",          /* braces are tiercache's to write */
    };
    tc_cache_t *c = open_local();
    char buf[64];
    size_t len = 12345;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(tc_stats_prometheus(c, bad[i], buf, sizeof buf, &len), TC_EINVAL, "%s",
                     bad[i]);
        cr_assert_eq(len, 12345, "len untouched on TC_EINVAL");
    }
    static const char *const good[] = {"a=\"\"", "a_b=\"x\\\\y\\n\\\"\",C9=\"\"",
                                       "kinder=\"1\",lee=\"2\",_x=\"3\""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_assert_eq(tc_stats_prometheus(c, good[i], NULL, 0, &len), TC_ENOSPC, "%s", good[i]);

    cr_assert_eq(tc_stats_prometheus(NULL, NULL, buf, sizeof buf, &len), TC_EINVAL);
    cr_assert_eq(tc_stats_prometheus(c, NULL, buf, sizeof buf, NULL), TC_EINVAL);
    cr_assert_eq(tc_stats_prometheus(c, NULL, NULL, 10, &len), TC_EINVAL);
    tc_close(c);
}

Test(prometheus, a_fork_child_gets_eforked) {
    tc_cache_t *c = open_local();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char buf[16];
        size_t len;
        _exit(tc_stats_prometheus(c, NULL, buf, sizeof buf, &len) == TC_EFORKED ? 0 : 1);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child did not get TC_EFORKED");
    tc_close(c);
}

/* The parser itself refuses what it must: otherwise the tests above prove nothing. */
Test(prometheus, parser_refuses_broken_expositions) {
    static const char *const broken[] = {
        "a_total 1\n",                                          /* no HELP/TYPE */
        "# TYPE a counter\n# HELP a x\na 1\n# HELP a y\n",      /* two HELPs */
        "# HELP a x\n# TYPE a counter\na 1",                    /* no final newline */
        "# HELP a x\n# TYPE a counter\na{b=\"c\",b=\"d\"} 1\n", /* duplicate label */
        "# HELP a x\n# TYPE a counter\na{b=\"c} 1\n",           /* unbalanced quote */
        "# HELP a x\n# TYPE a counter\na 1\n# HELP b x\n# TYPE b gauge\nb 1\na 2\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n", /* decreasing */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
        "h_sum 1\nh_count 3\n", /* +Inf != count */
    };
    tc_test_prom_t *e = malloc(sizeof *e);
    cr_assert_not_null(e);
    for (size_t i = 0; i < sizeof broken / sizeof *broken; i++)
        cr_assert_not(tc_test_prom_parse(e, broken[i], strlen(broken[i])), "accepted: %s",
                      broken[i]);
    const char *good = "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                       "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n";
    cr_assert(tc_test_prom_parse(e, good, strlen(good)), "refused a valid one: %s", e->error);
    free(e);
}
