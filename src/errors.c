/*
 * errors.c - error names and messages, generated from the one TC_ERRNO_MAP list in the
 * public header so the enum, the names and the texts can never drift apart.
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

void tc__error_clear(tc_error_t *err) {
    if (err) {
        err->code = TC_OK;
        err->msg[0] = '\0';
    }
}
