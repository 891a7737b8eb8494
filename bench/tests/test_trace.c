/*
 * test_trace.c - the trace reader on files written here with zlib: gzip and plain text,
 * decimal ids and key strings, blank lines, CRLF, overlong lines, a missing final newline,
 * and broken files.
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

static uint64_t h(const char *key) {
    return tcb_trace_hash_key(key, strlen(key));
}

static void check_mixed(const char *p) {
    uint64_t *ids = NULL;
    size_t n = 0;
    tcb_trace_stats_t st;
    char err[256] = "";
    cr_assert_eq(tcb_trace_load(p, &ids, &n, &st, err, sizeof err), 0, "%s", err);
    /* every non-blank line is a key: decimal ids as they are, other strings hashed */
    const uint64_t want[] = {1,        22,  h("abc"),   h("-5"),
                             h("3 4"), 333, UINT64_MAX, h("18446744073709551616"),
                             h("12x"), 4444};
    cr_assert_eq(n, 10);
    for (size_t i = 0; i < 10; i++)
        cr_expect_eq(ids[i], want[i], "ids[%zu]", i);
    cr_expect_eq(st.lines, 13);
    cr_expect_eq(st.keys, 10);
    cr_expect_eq(st.hashed, 5); /* abc, -5, "3 4", the overflow, 12x */
    cr_expect_eq(st.blank, 3);
    cr_expect_eq(st.too_long, 0);
    char msg[256];
    cr_expect_not_null(strstr(tcb_trace_skipped(&st, msg, sizeof msg), "skipped 3 of 13 lines: "
                                                                       "3 blank, 0 longer"),
                       "%s", msg);
    free(ids);
}

Test(trace, gzip_with_blank_string_and_crlf_lines) {
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
    cr_expect_eq(st.too_long, 1);
    cr_expect_eq(st.lines, 2);
    char msg[256];
    cr_expect_not_null(strstr(tcb_trace_skipped(&st, msg, sizeof msg), "1 longer than 4094"),
                       "%s", msg);
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

    const char *blank = write_gz("blank.gz", " \n\t\n\n", 5);
    cr_expect_eq(tcb_trace_load(blank, &ids, &n, &st, err, sizeof err), -1);
    cr_expect_eq(st.blank, 3);

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
    cr_expect_eq(tcb_trace_parse_line("42\n", 3, &id), TCB_TRACE_ID);
    cr_expect_eq(id, 42);
    cr_expect_eq(tcb_trace_parse_line("42\r\n", 4, &id), TCB_TRACE_ID);
    cr_expect_eq(tcb_trace_parse_line("0", 1, &id), TCB_TRACE_ID);
    cr_expect_eq(id, 0);
    cr_expect_eq(tcb_trace_parse_line("", 0, &id), TCB_TRACE_BLANK);
    cr_expect_eq(tcb_trace_parse_line(" \r\n", 3, &id), TCB_TRACE_BLANK);
    cr_expect_eq(tcb_trace_parse_line("4\0002", 3, &id), TCB_TRACE_HASHED); /* embedded NUL */
    cr_expect_eq(tcb_trace_parse_line("+4", 2, &id), TCB_TRACE_HASHED);
    cr_expect_eq(tcb_trace_parse_line("0x10", 4, &id), TCB_TRACE_HASHED);
    cr_expect_eq(id, h("0x10"));
}

/* Key strings: the same string is the same id, different strings differ, and a string that
 * looks like a number but is not written as one ("007") is its own key, not 7. */
Test(trace, any_key_string_is_a_key) {
    static const char text[] = "user:1\n/img/a.png\nuser:1\n007\n7\n  user:2 \n"
                               "user:1\r\nkey with spaces\n";
    const char *p = write_gz("strings.gz", text, sizeof text - 1);
    uint64_t *ids = NULL, *uniq = NULL;
    size_t n = 0;
    tcb_trace_stats_t st;
    char err[256] = "";
    cr_assert_eq(tcb_trace_load(p, &ids, &n, &st, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 8);
    cr_expect_eq(st.hashed, 7);
    cr_expect_eq(ids[0], ids[2]);
    cr_expect_eq(ids[0], ids[6]); /* CRLF and surrounding blanks are framing */
    cr_expect_eq(ids[0], h("user:1"));
    cr_expect_eq(ids[5], h("user:2"));
    cr_expect_neq(ids[3], 7);
    cr_expect_eq(ids[4], 7);
    cr_expect_eq(ids[7], h("key with spaces"));
    for (size_t i = 0; i < n; i++)
        if (i != 4)
            cr_expect(ids[i] >> 63, "a hashed id has its top bit set: ids[%zu]", i);
    cr_expect_eq(tcb_trace_distinct(ids, n, &uniq), 6);
    free(uniq);
    free(ids);
}
