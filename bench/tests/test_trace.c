/*
 * test_trace.c - the trace reader on files written here with zlib: gzip and plain text,
 * blank lines, garbage, CRLF, overlong lines, a missing final newline, and broken files.
 */
/* tc-test-labels: unit */
#include "trace.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char dir[64];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/tcb-trace-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(trace, .init = make_dir, .fini = remove_dir);

static const char *path_of(const char *name) {
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static const char *write_gz(const char *name, const char *text, size_t len) {
    const char *p = path_of(name);
    gzFile g = gzopen(p, "wb");
    cr_assert_not_null(g);
    cr_assert_eq(gzwrite(g, text, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(g), Z_OK);
    return p;
}

static const char mixed[] = "1\n"
                            "\n"
                            "22\r\n"
                            "   \t \n"
                            "abc\n"
                            "-5\n"
                            "3 4\n"
                            "  333  \n"
                            "18446744073709551615\n"
                            "18446744073709551616\n"
                            "12x\n"
                            "\r\n"
                            "4444"; /* no final newline */

static void check_mixed(const char *p) {
    uint64_t *ids = NULL;
    size_t n = 0;
    tcb_trace_stats_t st;
    char err[256] = "";
    cr_assert_eq(tcb_trace_load(p, &ids, &n, &st, err, sizeof err), 0, "%s", err);
    const uint64_t want[] = {1, 22, 333, UINT64_MAX, 4444};
    cr_assert_eq(n, 5);
    for (size_t i = 0; i < 5; i++)
        cr_expect_eq(ids[i], want[i], "ids[%zu]", i);
    cr_expect_eq(st.lines, 13);
    cr_expect_eq(st.keys, 5);
    cr_expect_eq(st.blank, 3);
    cr_expect_eq(st.bad, 5); /* abc, -5, "3 4", overflow, 12x */
    free(ids);
}

Test(trace, gzip_with_blank_bad_and_crlf_lines) {
    check_mixed(write_gz("mixed.txt.gz", mixed, sizeof mixed - 1));
}

Test(trace, plain_text_reads_the_same) {
    const char *p = path_of("mixed.txt");
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fwrite(mixed, 1, sizeof mixed - 1, f);
    fclose(f);
    check_mixed(p);
}

Test(trace, overlong_line_is_one_bad_line) {
    size_t big = 3 * TCB_TRACE_MAX_LINE;
    char *text = malloc(big + 16);
    memset(text, '7', big);
    memcpy(text + big, "\n8\n", 4);
    const char *p = write_gz("long.gz", text, big + 3);
    uint64_t *ids = NULL;
    size_t n = 0;
    tcb_trace_stats_t st;
    cr_assert_eq(tcb_trace_load(p, &ids, &n, &st, NULL, 0), 0);
    cr_expect_eq(n, 1);
    cr_expect_eq(ids[0], 8);
    cr_expect_eq(st.bad, 1);
    cr_expect_eq(st.lines, 2);
    free(ids);
    free(text);
}

Test(trace, many_lines) {
    size_t n = 100000;
    char *text = malloc(n * 8);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "%zu\n", i % 1000);
    const char *p = write_gz("many.gz", text, len);
    uint64_t *ids = NULL, *uniq = NULL;
    size_t got = 0;
    tcb_trace_stats_t st;
    cr_assert_eq(tcb_trace_load(p, &ids, &got, &st, NULL, 0), 0);
    cr_assert_eq(got, n);
    cr_expect_eq(ids[99999], 999);
    cr_expect_eq(tcb_trace_distinct(ids, got, &uniq), 1000);
    cr_expect_eq(uniq[0], 0);
    cr_expect_eq(uniq[999], 999);
    free(uniq);
    free(ids);
    free(text);
}

Test(trace, errors_are_reported_not_crashed) {
    uint64_t *ids = NULL;
    size_t n = 0;
    tcb_trace_stats_t st;
    char err[256] = "";
    cr_expect_eq(tcb_trace_load(path_of("missing.gz"), &ids, &n, &st, err, sizeof err), -1);
    cr_expect(strstr(err, "missing.gz") != NULL, "%s", err);

    const char *empty = write_gz("empty.gz", "", 0);
    cr_expect_eq(tcb_trace_load(empty, &ids, &n, &st, err, sizeof err), -1);
    cr_expect(strstr(err, "no keys") != NULL, "%s", err);

    const char *junk = write_gz("junk.gz", "a\nb\n\n", 5);
    cr_expect_eq(tcb_trace_load(junk, &ids, &n, &st, err, sizeof err), -1);
    cr_expect_eq(st.bad, 2);

    cr_expect_eq(tcb_trace_load(NULL, &ids, &n, &st, err, sizeof err), -1);
}

Test(trace, truncated_gzip_is_an_error) {
    char text[20000];
    size_t len = 0;
    for (int i = 0; len < sizeof text - 16; i++)
        len += (size_t)sprintf(text + len, "%d\n", i * 7919 % 100003);
    const char *p = write_gz("whole.gz", text, len);
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f);
    unsigned char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    const char *q = path_of("cut.gz");
    f = fopen(q, "wb");
    fwrite(buf, 1, n / 2, f);
    fclose(f);
    uint64_t *ids = NULL;
    size_t got = 0;
    tcb_trace_stats_t st;
    char err[256] = "";
    cr_expect_eq(tcb_trace_load(q, &ids, &got, &st, err, sizeof err), -1);
    cr_expect(err[0] != '\0');
}

Test(trace, parse_line_classifies) {
    uint64_t id = 0;
    cr_expect_eq(tcb_trace_parse_line("42\n", 3, &id), 1);
    cr_expect_eq(id, 42);
    cr_expect_eq(tcb_trace_parse_line("42\r\n", 4, &id), 1);
    cr_expect_eq(tcb_trace_parse_line("", 0, &id), 0);
    cr_expect_eq(tcb_trace_parse_line(" \r\n", 3, &id), 0);
    cr_expect_eq(tcb_trace_parse_line("4\0002", 3, &id), -1); /* embedded NUL */
    cr_expect_eq(tcb_trace_parse_line("+4", 2, &id), -1);
    cr_expect_eq(tcb_trace_parse_line("0x10", 4, &id), -1);
}
