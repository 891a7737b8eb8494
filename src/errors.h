/*
 * errors.h - filling a caller-owned tc_error_t.
 *
 * Every failure a caller may want explained goes through tc__fail(): it stores the code
 * and a formatted message in the optional tc_error_t and returns the code, so call sites
 * read `return tc__fail(err, TC_ECONFIG, "l1_shards %u is not a power of two", n);`.
 */
#ifndef TC_ERRORS_H
#define TC_ERRORS_H

#include "tiercache.h"

#if defined(__GNUC__)
#define TC__PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define TC__PRINTF(fmt_idx, arg_idx)
#endif

/* Record code and message in err (if not NULL); returns code. */
int tc__fail(tc_error_t *err, int code, const char *fmt, ...) TC__PRINTF(3, 4);

/* Reset err (if not NULL) to TC_OK / "". */
void tc__error_clear(tc_error_t *err);

/* Record the failure of a public call for tc_last_error on this thread: err's detail when
 * it has one, else the code's generic text. Returns code. Only on failure paths. */
int tc__note_failure(int code, const tc_error_t *err);
/* tc__note_failure with a formatted message. */
int tc__note(int code, const char *fmt, ...) TC__PRINTF(2, 3);

#endif
