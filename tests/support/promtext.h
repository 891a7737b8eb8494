/*
 * promtext.h - a strict reader of the Prometheus text exposition format (0.0.4), for the
 * suites that check what tc_stats_prometheus and examples/metrics_server write.
 *
 * Prometheus drops a whole scrape over one malformed line, so the suites parse all of the
 * text and fail on anything a scraper would refuse or misread, not only on what they grep:
 *   - every line is "# HELP name text", "# TYPE name type" or a sample
 *     `name{label="value",...} value` (no braces without labels), and the text ends in \n;
 *   - every family has exactly one HELP and one TYPE, both before its samples, and its
 *     samples are contiguous (a family's name appears once);
 *   - label names are unique within a sample, values use only the \\, \" and \n escapes;
 *   - in a histogram, each series' buckets come in ascending le, are cumulative (never
 *     decreasing), end with le="+Inf", that bucket equals the series' _count, and the
 *     series has one _sum.
 * Only what tiercache writes is accepted: counter, gauge and histogram types, no
 * timestamps, no other comments, no empty lines. Fixed-size tables, no allocation.
 */
#ifndef TC_TEST_PROMTEXT_H
#define TC_TEST_PROMTEXT_H

#include <stddef.h>

#define TC_TEST_PROM_LABELS   8
#define TC_TEST_PROM_SAMPLES  512
#define TC_TEST_PROM_FAMILIES 96

typedef struct tc_test_prom_label {
    char name[64];
    char value[128]; /* unescaped */
} tc_test_prom_label_t;

typedef struct tc_test_prom_sample {
    char name[96];
    tc_test_prom_label_t labels[TC_TEST_PROM_LABELS]; /* in the order written */
    int nlabels;
    double value;
    int family; /* index into families */
    int line;   /* 1-based, for messages */
} tc_test_prom_sample_t;

typedef struct tc_test_prom_family {
    char name[96];
    char type[16];
    int help, type_lines; /* how many HELP and TYPE lines named it */
    int nsamples;
} tc_test_prom_family_t;

typedef struct tc_test_prom {
    tc_test_prom_sample_t samples[TC_TEST_PROM_SAMPLES];
    int nsamples;
    tc_test_prom_family_t families[TC_TEST_PROM_FAMILIES];
    int nfamilies;
    int series;      /* histogram series (label sets) seen */
    char error[256]; /* the first rule broken, with its line */
} tc_test_prom_t;

/* Parse and check text (len bytes, NUL-terminated). 1, or 0 with e->error set. */
int tc_test_prom_parse(tc_test_prom_t *e, const char *text, size_t len);
/* The value of label `name` in s, or NULL. */
const char *tc_test_prom_label(const tc_test_prom_sample_t *s, const char *name);
/* The one sample called name whose kind label is kind (NULL: no kind label) and whose le
 * is le (NULL: no le). Fails the calling test unless there is exactly one. */
const tc_test_prom_sample_t *tc_test_prom_find(const tc_test_prom_t *e, const char *name,
                                               const char *kind, const char *le);

#endif
