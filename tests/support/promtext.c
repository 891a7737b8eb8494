/*
 * promtext.c - the strict Prometheus text reader of promtext.h.
 *
 * Two passes: parse() reads line by line, keeping the family that the last HELP or TYPE
 * opened as the only one a sample may belong to (that is what makes HELP and TYPE come
 * first and a family's samples contiguous); check_histograms() then walks each histogram
 * series from its first bucket. Failures are returned with a message naming the line,
 * never asserted, so a suite can also check that broken text is refused.
 */
#include "promtext.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lines ---- */

static int fail(tc_test_prom_t *e, int line, const char *what) {
    snprintf(e->error, sizeof e->error, "line %d: %s", line, what);
    return 0;
}

static int is_name_char(char c, int first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* A metric or label name at *s, copied into out; advances *s. 0 when none is there. */
static int take_name(const char **s, char *out, size_t cap, int metric) {
    size_t n = 0;
    while (is_name_char((*s)[n], n == 0) && (metric || (*s)[n] != ':')) {
        if (n + 1 >= cap)
            return 0;
        out[n] = (*s)[n];
        n++;
    }
    out[n] = '\0';
    *s += n;
    return n > 0;
}

/* A quoted label value at *s (past the opening quote), unescaped into out. */
static int take_value(const char **s, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = *s;; p++) {
        char c = *p;
        if (c == '"') {
            out[n] = '\0';
            *s = p + 1;
            return 1;
        }
        if (c == '\0' || c == '\n' || n + 1 >= cap)
            return 0;
        if (c == '\\') {
            p++;
            if (*p == 'n')
                c = '\n';
            else if (*p == '\\' || *p == '"')
                c = *p;
            else
                return 0;
        }
        out[n++] = c;
    }
}

static int take_labels(tc_test_prom_t *e, int line, const char **s,
                       tc_test_prom_sample_t *smp) {
    if (**s != '{')
        return 1;
    (*s)++;
    for (;;) {
        if (smp->nlabels == TC_TEST_PROM_LABELS)
            return fail(e, line, "too many labels");
        tc_test_prom_label_t *l = &smp->labels[smp->nlabels];
        if (!take_name(s, l->name, sizeof l->name, 0) || (*s)[0] != '=' || (*s)[1] != '"')
            return fail(e, line, "bad label name or missing =\"");
        *s += 2;
        if (!take_value(s, l->value, sizeof l->value))
            return fail(e, line, "bad label value");
        for (int i = 0; i < smp->nlabels; i++)
            if (strcmp(smp->labels[i].name, l->name) == 0)
                return fail(e, line, "duplicate label");
        smp->nlabels++;
        if (**s == '}') {
            (*s)++;
            return 1;
        }
        if (**s != ',')
            return fail(e, line, "expected , or }");
        (*s)++;
    }
}

/* Which family a sample's name belongs to: itself, or a histogram's _bucket/_sum/_count. */
static int belongs(const tc_test_prom_family_t *f, const char *name) {
    size_t n = strlen(f->name);
    if (strncmp(name, f->name, n) != 0)
        return 0;
    if (strcmp(f->type, "histogram") == 0)
        return !strcmp(name + n, "_bucket") || !strcmp(name + n, "_sum") ||
               !strcmp(name + n, "_count");
    return name[n] == '\0';
}

static int find_family(const tc_test_prom_t *e, const char *name) {
    for (int i = 0; i < e->nfamilies; i++)
        if (strcmp(e->families[i].name, name) == 0)
            return i;
    return -1;
}

/* "# HELP name text" or "# TYPE name type": opens a family or completes the current one. */
static int parse_comment(tc_test_prom_t *e, int line, const char *s) {
    int help = strncmp(s, "# HELP ", 7) == 0;
    if (!help && strncmp(s, "# TYPE ", 7) != 0)
        return fail(e, line, "a comment that is neither HELP nor TYPE");
    s += 7;
    char name[96];
    if (!take_name(&s, name, sizeof name, 1) || *s != ' ')
        return fail(e, line, "bad metric name");
    s++;
    int f = find_family(e, name);
    if (f < 0) {
        if (e->nfamilies == TC_TEST_PROM_FAMILIES)
            return fail(e, line, "too many families");
        f = e->nfamilies++;
        snprintf(e->families[f].name, sizeof e->families[f].name, "%s", name);
    } else if (f != e->nfamilies - 1 || e->families[f].nsamples > 0) {
        return fail(e, line, "HELP/TYPE for a family that already had samples or moved on");
    }
    tc_test_prom_family_t *fam = &e->families[f];
    if (help) {
        if (fam->help++ || *s == '\0')
            return fail(e, line, "second or empty HELP");
        return 1;
    }
    if (fam->type_lines++ ||
        (strcmp(s, "counter") && strcmp(s, "gauge") && strcmp(s, "histogram")))
        return fail(e, line, "second TYPE, or a type tiercache does not write");
    snprintf(fam->type, sizeof fam->type, "%s", s);
    return 1;
}

static int parse_sample(tc_test_prom_t *e, int line, const char *s) {
    if (e->nsamples == TC_TEST_PROM_SAMPLES)
        return fail(e, line, "too many samples");
    tc_test_prom_sample_t *smp = &e->samples[e->nsamples];
    memset(smp, 0, sizeof *smp);
    if (!take_name(&s, smp->name, sizeof smp->name, 1))
        return fail(e, line, "bad sample name");
    if (!take_labels(e, line, &s, smp))
        return 0;
    if (*s++ != ' ')
        return fail(e, line, "no space before the value");
    char *end;
    smp->value = strtod(s, &end);
    if (end == s || *end != '\0')
        return fail(e, line, "bad value (or a timestamp, which tiercache does not write)");
    int f = e->nfamilies - 1;
    if (f < 0 || !belongs(&e->families[f], smp->name))
        return fail(e, line, "sample outside its family (missing HELP/TYPE or interleaved)");
    if (e->families[f].help != 1 || e->families[f].type_lines != 1)
        return fail(e, line, "sample before its family's HELP and TYPE");
    smp->family = f;
    smp->line = line;
    e->families[f].nsamples++;
    e->nsamples++;
    return 1;
}

/* Parse text (len bytes, NUL-terminated) into e; 0 with e->error on the first violation. */
static int parse(tc_test_prom_t *e, const char *text, size_t len) {
    memset(e, 0, sizeof *e);
    if (len == 0 || text[len - 1] != '\n' || strlen(text) != len)
        return fail(e, 0, "empty, not newline-terminated, or NUL inside");
    char line[1024];
    int no = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p);
        no++;
        if (n == 0 || n >= sizeof line)
            return fail(e, no, "empty or overlong line");
        memcpy(line, p, n);
        line[n] = '\0';
        int ok = line[0] == '#' ? parse_comment(e, no, line) : parse_sample(e, no, line);
        if (!ok)
            return 0;
        p = nl + 1;
    }
    for (int f = 0; f < e->nfamilies; f++)
        if (e->families[f].nsamples == 0)
            return fail(e, no, "a family without samples");
    return 1;
}

/* ---- histogram rules ---- */

const char *tc_test_prom_label(const tc_test_prom_sample_t *s, const char *name) {
    for (int i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    return NULL;
}

/* The same series: every label equal, le aside. */
static int same_series(const tc_test_prom_sample_t *a, const tc_test_prom_sample_t *b) {
    int na = 0, nb = 0;
    for (int i = 0; i < a->nlabels; i++) {
        if (strcmp(a->labels[i].name, "le") == 0)
            continue;
        na++;
        const char *v = tc_test_prom_label(b, a->labels[i].name);
        if (!v || strcmp(v, a->labels[i].value) != 0)
            return 0;
    }
    for (int i = 0; i < b->nlabels; i++)
        nb += strcmp(b->labels[i].name, "le") != 0;
    return na == nb;
}

/* le as a number (+Inf included); 0 when missing or not a number. */
static int le_of(const tc_test_prom_sample_t *s, double *le) {
    const char *text = tc_test_prom_label(s, "le");
    if (!text)
        return 0;
    if (strcmp(text, "+Inf") == 0) {
        *le = INFINITY;
        return 1;
    }
    char *end;
    *le = strtod(text, &end);
    return end != text && *end == '\0';
}

/* Check the series whose first bucket is samples[first]. */
static int check_series(tc_test_prom_t *e, int first) {
    const tc_test_prom_sample_t *s0 = &e->samples[first];
    double prev_le = -INFINITY, prev_count = 0, inf_count = -1;
    int sums = 0, counts = 0;
    for (int i = 0; i < e->nsamples; i++) {
        const tc_test_prom_sample_t *s = &e->samples[i];
        if (s->family != s0->family || !same_series(s, s0))
            continue;
        const char *suffix = s->name + strlen(e->families[s->family].name);
        double le;
        if (strcmp(suffix, "_bucket") == 0) {
            if (!le_of(s, &le) || le <= prev_le)
                return fail(e, s->line, "le missing, not a number, or not ascending");
            if (s->value < prev_count)
                return fail(e, s->line, "a bucket below the one before (not cumulative)");
            prev_le = le;
            prev_count = s->value;
            inf_count = isinf(le) ? s->value : inf_count;
        } else if (strcmp(suffix, "_sum") == 0) {
            sums++;
        } else if (++counts, s->value != inf_count) {
            return fail(e, s->line, "_count is not the +Inf bucket (or comes before it)");
        }
    }
    if (!isinf(prev_le) || sums != 1 || counts != 1)
        return fail(e, s0->line, "a series without a +Inf bucket, one _sum and one _count");
    return 1;
}

/* Every histogram series (from the first bucket of each label set) is well-formed.
 * Returns how many series there are, or -1 with e->error. */
static int check_histograms(tc_test_prom_t *e) {
    int series = 0;
    for (int i = 0; i < e->nsamples; i++) {
        const tc_test_prom_sample_t *s = &e->samples[i];
        if (strcmp(e->families[s->family].type, "histogram") != 0 ||
            !tc_test_prom_label(s, "le"))
            continue;
        if (i > 0 && e->samples[i - 1].family == s->family &&
            same_series(&e->samples[i - 1], s))
            continue; /* not the first bucket of its series */
        if (!check_series(e, i))
            return -1;
        series++;
    }
    return series;
}

int tc_test_prom_parse(tc_test_prom_t *e, const char *text, size_t len) {
    if (!parse(e, text, len))
        return 0;
    e->series = check_histograms(e);
    return e->series >= 0;
}

/* The one sample named name whose kind label is kind (NULL: none) and le is le (NULL:
 * none). Fails the test when there is not exactly one. */
const tc_test_prom_sample_t *tc_test_prom_find(const tc_test_prom_t *e, const char *name,
                                               const char *kind, const char *le) {
    const tc_test_prom_sample_t *found = NULL;
    for (int i = 0; i < e->nsamples; i++) {
        const tc_test_prom_sample_t *s = &e->samples[i];
        const char *k = tc_test_prom_label(s, "kind"), *l = tc_test_prom_label(s, "le");
        if (strcmp(s->name, name) || (kind ? !k || strcmp(k, kind) : k != NULL) ||
            (le ? !l || strcmp(l, le) : l != NULL))
            continue;
        cr_assert_null(found, "two samples %s kind=%s le=%s", name, kind, le);
        found = s;
    }
    cr_assert_not_null(found, "no sample %s kind=%s le=%s", name, kind, le);
    return found;
}
