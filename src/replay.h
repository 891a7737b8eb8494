/*
 * replay.h - reading the replay log (a Redis stream of recent invalidations) after the
 * listener lost its link, instead of flushing L1. See replay.c.
 */
#ifndef TC_REPLAY_H
#define TC_REPLAY_H

#include "config.h"
#include "msg.h"

#include <stddef.h>
#include <stdint.h>

typedef enum tc__replay_result {
    TC__REPLAY_DONE,   /* every entry after the position was handed over */
    TC__REPLAY_GAP,    /* the log no longer reaches back to the position: flush */
    TC__REPLAY_FAILED, /* Redis did not answer: try again, or flush */
} tc__replay_result_t;

/* Called for each entry, in log order: its message (format 1) and its id. */
typedef void (*tc__replay_fn)(void *arg, const void *msg, size_t len, tc__logid_t id);

typedef struct tc__replay_opts {
    const tc__endpoint_t *endpoint;
    const char *log_key; /* <prefix>"log" */
    uint32_t connect_timeout_ms, command_timeout_ms;
} tc__replay_opts_t;

/* Hand every entry after *pos to fn and move *pos to the last one. With no position yet
 * ({0, 0}), or when the log was trimmed past it (or deleted), answers TC__REPLAY_GAP and
 * moves *pos to the log's end. *count gets the entries handed over. err names a failure. */
tc__replay_result_t tc__replay(const tc__replay_opts_t *o, tc__logid_t *pos, tc__replay_fn fn,
                               void *arg, size_t *count, tc_error_t *err);

#endif
