/*
 * log.h - the cache's log: events delivered to the configured tc_log_fn (or stderr),
 * rate-limited per kind of event. See log.c.
 */
#ifndef TC_LOG_H
#define TC_LOG_H

#include "errors.h"
#include "tiercache.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Kinds of event: each has its own rate limit, so a storm of one cannot hide another. */
typedef enum tc__log_event {
    TC__EV_OPEN,            /* Redis unreachable or refusing at open */
    TC__EV_BREAKER,         /* breaker opened / probing / closed */
    TC__EV_LISTENER,        /* listener lost / could not connect / subscribed again */
    TC__EV_FLUSH,           /* L1 flushed (the link was lost) */
    TC__EV_HEAL,            /* local entries dropped when Redis answered again */
    TC__EV_REFRESH_DROPPED, /* background refresh dropped: queue full */
    TC__EV_UNLOCK,          /* a lock release failed (retried in the background) */
    TC__EV_REFUSED,         /* a stored value refused (too big, impossible version) */
    TC__EV_PERMISSION,      /* Redis refused a command: ACL or authentication */
    TC__EV_COUNTER,         /* a corrupt version counter was reset */
    TC__EV_WRITE,           /* write strategies: a partial write-through, write-behind's
                               retries, dead letters, flusher lease changes */
    TC__EV_SENTINEL,        /* the Sentinel watch cannot subscribe to any sentinel */
    TC__EV_CLUSTER,         /* Redis Cluster: the masters changed (L1 flushed) */
    TC__EV_COUNT
} tc__log_event_t;

typedef struct tc__log_kind {
    uint64_t window_start_ms; /* coarse monotonic */
    unsigned in_window;       /* messages delivered in this window */
    unsigned suppressed;      /* dropped since the last delivered one */
} tc__log_kind_t;

typedef struct tc__log {
    tc_log_fn fn; /* NULL: stderr when level > 0 */
    void *arg;
    int level; /* deliver events with level <= this; 0: none */
    pthread_mutex_t mu;
    tc__log_kind_t kinds[TC__EV_COUNT];
    char origin[160]; /* "" or, for one server of several, its name (endpoint.h's, the
                         master first for Sentinel, so a cut-off one still differs): every
                         message says "server <origin>: ..." so an operator knows which */
} tc__log_t;

/* Set up from the configuration (fn, arg, level as in tc_config_t). */
void tc__log_init(tc__log_t *lg, tc_log_fn fn, void *arg, int level);
/* Name the server this log speaks for (set before the first message; NULL: none). */
void tc__log_set_origin(tc__log_t *lg, const char *origin);
void tc__log_deinit(tc__log_t *lg);
/* 1 when an event of this level would be delivered (to skip building its text). */
static inline int tc__log_on(const tc__log_t *lg, int level) {
    return lg && level <= lg->level;
}
/* Deliver one event (formatted like printf), unless its kind is over its rate limit.
 * key may be NULL. Never call with a tiercache lock held (the callback may block). */
void tc__log(tc__log_t *lg, tc__log_event_t ev, int level, const void *key, size_t klen,
             const char *fmt, ...) TC__PRINTF(6, 7);

#endif
