/*
 * listener.h - the invalidation listener: one thread and one subscriber connection per
 * open cache, applying every message on the channel to L1. See listener.c.
 */
#ifndef TC_LISTENER_H
#define TC_LISTENER_H

#include "config.h"
#include "l1.h"
#include "log.h"
#include "marks.h"
#include "metrics.h"

#include <stdint.h>

typedef struct tc__listener tc__listener_t;

/* Default tracking: the listener's client id, to which the data connections redirect the
 * tracking of their reads (0 when it has none). Called on the listener thread. */
typedef void (*tc__listener_id_fn)(void *arg, uint64_t client_id);

typedef struct tc__listener_opts {
    const tc__endpoint_t *endpoint; /* borrowed: must outlive the listener */
    const char *channel;            /* borrowed */
    uint32_t connect_timeout_ms;
    uint32_t command_timeout_ms; /* replay log reads */
    uint32_t ping_ms;
    const char *log_key; /* the replay log (<prefix>"log"), or NULL: flush on every loss */
    tc__l1_t *l1;
    tc__hist_t *inval_latency; /* write-to-eviction times, or NULL */
    tc_inval_hook_fn hook;
    void *hook_arg;
    tc__log_t *log; /* borrowed, may be NULL */
    /* Server-assisted invalidation (Redis client tracking) */
    int tracking;             /* a tc_tracking_t */
    const char *track_prefix; /* bcast: the tracked prefix; also what keys lose */
    size_t track_prefix_len;
    size_t track_strip_len; /* bytes every reported key loses (<prefix>"k:"); 0: plain */
    tc__listener_id_fn on_client_id;
    void *client_id_arg;
    /* The local copy of the clear and namespace marks (marks.h): a namespace or clear
     * message notes its mark (before the sweep), a lost link makes the copy unknown, and
     * each subscription calls on_subscribed (listener thread, before L1 is trusted) to
     * reload it. All optional. */
    tc__marks_t *marks;
    void (*on_subscribed)(void *arg);
    void *subscribed_arg;
} tc__listener_opts_t;

typedef struct tc__listener_counters {
    uint64_t received, applied, malformed, reconnects, permission_errors;
    uint64_t replays, replayed, log_gaps, tracked, swept;
    int connected;
} tc__listener_counters_t;

/* Start the thread; L1 is marked untrusted until the first subscription. 0 or TC_ENOMEM /
 * TC_EINTERNAL (thread creation failed). */
int tc__listener_start(const tc__listener_opts_t *opts, tc__listener_t **out);
/* Wait up to timeout_ms for the subscription; returns 1 if subscribed. */
int tc__listener_wait_subscribed(tc__listener_t *ls, uint32_t timeout_ms);
/* Stop and join the thread, close the connection, free. NULL is a no-op. */
/* End the current link and connect again (the server behind the endpoint changed: a
 * Sentinel failover). Any thread; returns at once. */
void tc__listener_rebind(tc__listener_t *ls);
void tc__listener_stop(tc__listener_t *ls);
void tc__listener_counters(tc__listener_t *ls, tc__listener_counters_t *out);
/* Why the listener is not subscribed (connect failure, refusal, lost link): 1 and err
 * filled (TC_EUNAVAILABLE with the cause), or 0 when nothing is known. */
int tc__listener_cause(tc__listener_t *ls, tc_error_t *err);

#endif
