/*
 * errors.c - error names and messages, generated from the one TC_ERRNO_MAP list in the
 * public header so the enum, the names and the texts can never drift apart; and the
 * per-thread record of the last failure behind tc_last_error.
 *
 * Why per thread: a data call returns a code, and the cause ("NOPERM this user has no
 * permissions to run the 'pttl' command") would need a new out-parameter on every call.
 * A thread-local record costs nothing on success (it is written only on failure paths),
 * and no other thread can overwrite it between the failure and the caller's look.
 */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>

const char *tc_strerror(int code) {
    switch (code) {
#define TC__ERR_MSG(name, value, msg)                                                          \
    case value:                                                                                \
        return msg;
        TC_ERRNO_MAP(TC__ERR_MSG)
#undef TC__ERR_MSG
    }
    return "unknown error";
}

const char *tc_err_name(int code) {
    switch (code) {
#define TC__ERR_NAME(name, value, msg)                                                         \
    case value:                                                                                \
        return #name;
        TC_ERRNO_MAP(TC__ERR_NAME)
#undef TC__ERR_NAME
    }
    return "TC_E?";
}

const char *tc_version(void) {
    return TC_VERSION_STRING;
}

int tc__fail(tc_error_t *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

static _Thread_local tc_error_t last_failure;
static _Thread_local int have_last_failure;

int tc__note_failure(int code, const tc_error_t *err) {
    if (err && err->msg[0]) {
        last_failure = *err;
        last_failure.code = code;
    } else {
        last_failure.code = code;
        snprintf(last_failure.msg, sizeof last_failure.msg, "%s", tc_strerror(code));
    }
    have_last_failure = 1;
    return code;
}

int tc__note(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    last_failure.code = code;
    vsnprintf(last_failure.msg, sizeof last_failure.msg, fmt, ap);
    va_end(ap);
    have_last_failure = 1;
    return code;
}

int tc_last_error(tc_error_t *out) {
    if (out && have_last_failure)
        *out = last_failure;
    return have_last_failure;
}

void tc__error_clear(tc_error_t *err) {
    if (err) {
        err->code = TC_OK;
        err->msg[0] = '\0';
    }
}
