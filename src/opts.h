/*
 * opts.h - per-call options (tc_opts_t) as the library uses them: validated once at the
 * API edge, then passed down as a tc__call_opts_t, and copied whole when a call's work may
 * outlive it (a load that finishes in the background keeps its tags).
 */
#ifndef TC_OPTS_H
#define TC_OPTS_H

#include "tiercache.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tc__call_opts {
    uint64_t ttl_ms;
    const tc_buf_t *tags;
    size_t ntags;
    unsigned flags;
} tc__call_opts_t;

/* The options the first tc_opts_t had: callers' structs are at least this big. */
#define TC__OPTS_V1_SIZE (offsetof(tc_opts_t, flags) + sizeof(unsigned))

/* Validate the caller's opts (NULL: defaults) into *out, reading only opts->size bytes.
 * tags_ok: whether this cache can store tags (Redis, no plain keys). 0 or TC_EINVAL (with
 * tc_last_error naming the field). */
int tc__opts_import(const tc_opts_t *opts, int tags_ok, tc__call_opts_t *out);

/* One allocation holding o and copies of everything it points to (free() it), or NULL. */
tc__call_opts_t *tc__opts_dup(const tc__call_opts_t *o);

#endif
