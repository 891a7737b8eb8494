/*
 * test_errors.c - error codes, names, messages and the version string (src/errors.c).
 *
 * The codes, names and texts all come from the one TC_ERRNO_MAP X-macro, so the tests
 * iterate that same list: adding a code automatically adds it to every check here. The
 * promises tested are the ones callers build on: every code has its own negative value
 * (0 only for TC_OK), unknown codes still get a non-NULL text, tc_version() matches the
 * header, and tc__fail always leaves a NUL-terminated message in the caller's struct.
 */
/* tc-test-labels: unit */
#include "errors.h"
#include "tiercache.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

struct err_row {
    const char *name;
    int value;
    const char *msg;
};

static const struct err_row ROWS[] = {
#define TC__ERR_ROW(name, value, msg) {#name, value, msg},
    TC_ERRNO_MAP(TC__ERR_ROW)
#undef TC__ERR_ROW
};
#define NROWS (sizeof ROWS / sizeof ROWS[0])

Test(errors, every_code_has_its_name_and_message) {
    cr_assert_geq(NROWS, 14u, "the map shrank");
    for (size_t i = 0; i < NROWS; i++) {
        cr_assert_str_eq(tc_strerror(ROWS[i].value), ROWS[i].msg, "%s", ROWS[i].name);
        cr_assert_str_eq(tc_err_name(ROWS[i].value), ROWS[i].name);
        cr_assert_gt(strlen(ROWS[i].msg), 0u, "%s has an empty message", ROWS[i].name);
    }
    cr_assert_str_eq(tc_err_name(TC_ENOTFOUND), "TC_ENOTFOUND");
    cr_assert_str_eq(tc_strerror(TC_OK), "success");
}

Test(errors, unknown_codes) {
    static const int unknown[] = {-9999, 5, 1, -99, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_assert_str_eq(tc_strerror(unknown[i]), "unknown error", "code %d", unknown[i]);
        cr_assert_str_eq(tc_err_name(unknown[i]), "TC_E?", "code %d", unknown[i]);
    }
}

Test(errors, codes_distinct_and_negative) {
    for (size_t i = 0; i < NROWS; i++) {
        if (strcmp(ROWS[i].name, "TC_OK") == 0)
            cr_assert_eq(ROWS[i].value, 0);
        else
            cr_assert_lt(ROWS[i].value, 0, "%s is not negative", ROWS[i].name);
        for (size_t j = i + 1; j < NROWS; j++) {
            cr_assert_neq(ROWS[i].value, ROWS[j].value, "%s and %s share a value", ROWS[i].name,
                          ROWS[j].name);
            cr_assert_str_neq(ROWS[i].name, ROWS[j].name);
        }
    }
    /* The enum and the map are one list. */
    cr_assert_eq(TC_EINTERNAL, -13);
    cr_assert_eq((int)TC_ENOTFOUND, -1);
}

Test(errors, version) {
    cr_assert_not_null(tc_version());
    cr_assert_str_eq(tc_version(), TC_VERSION_STRING);
    cr_assert_eq(TC_VERSION_NUMBER,
                 TC_VERSION_MAJOR * 10000 + TC_VERSION_MINOR * 100 + TC_VERSION_PATCH);
}

Test(errors, fail_fills_err_and_returns_code) {
    tc_error_t e;
    memset(&e, 0x5A, sizeof e);
    int rc = tc__fail(&e, TC_ECONFIG, "l1_shards %u is not a power of two", 3u);
    cr_assert_eq(rc, TC_ECONFIG);
    cr_assert_eq(e.code, TC_ECONFIG);
    cr_assert_str_eq(e.msg, "l1_shards 3 is not a power of two");

    cr_assert_eq(tc__fail(NULL, TC_EKEYLEN, "key %s", "x"), TC_EKEYLEN, "NULL err is fine");
    cr_assert_eq(tc__fail(&e, -12345, "%s", ""), -12345, "codes are passed through");
    cr_assert_eq(e.code, -12345);
    cr_assert_str_eq(e.msg, "");
}

Test(errors, fail_truncates_long_messages) {
    char longmsg[1000];
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    tc_error_t e;
    memset(&e, 0x5A, sizeof e);
    cr_assert_eq(tc__fail(&e, TC_EREDIS, "redis: %s", longmsg), TC_EREDIS);
    cr_assert_eq(e.msg[sizeof e.msg - 1], '\0', "not NUL-terminated");
    cr_assert_eq(strlen(e.msg), sizeof e.msg - 1);
    cr_assert_eq(strncmp(e.msg, "redis: mmm", 10), 0);
}

Test(errors, clear) {
    tc_error_t e;
    tc__fail(&e, TC_ENOMEM, "out of %s", "memory");
    cr_assert_eq(e.code, TC_ENOMEM);
    tc__error_clear(&e);
    cr_assert_eq(e.code, TC_OK);
    cr_assert_str_eq(e.msg, "");
    tc__error_clear(NULL); /* must not crash */
}
