/*
 * log.c - delivering the cache's events to a log, without ever flooding it.
 *
 * Every event belongs to a kind (log.h); each kind may deliver LOG_BURST messages per
 * LOG_WINDOW_MS. Beyond that they are counted, and the first message of the next window
 * says how many were suppressed. So a Redis that flaps ten times a second costs the log a
 * few lines every ten seconds, and a permission error is still seen between breaker
 * messages. The check and the counters are under one mutex: events are rare (never on an
 * L1 hit), and the callback runs after the mutex is released.
 *
 * Without a callback, a level > 0 writes to stderr ("tiercache: warn: ..."), which is what
 * TIERCACHE_LOG=warn asks for. Messages never contain a password: the URL's credentials
 * are never formatted into one (config.c), and Redis's own replies never echo them.
 */
#include "log.h"

#include "clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LOG_WINDOW_MS 10000u
#define LOG_BURST     5u
#define LOG_MSG_MAX   480

void tc__log_set_origin(tc__log_t *lg, const char *origin) {
    snprintf(lg->origin, sizeof lg->origin, "%s", origin ? origin : "");
}

void tc__log_init(tc__log_t *lg, tc_log_fn fn, void *arg, int level) {
    memset(lg, 0, sizeof *lg);
    lg->fn = fn;
    lg->arg = arg;
    lg->level = fn && level == TC_LOG_OFF ? TC_LOG_WARN : level;
    pthread_mutex_init(&lg->mu, NULL);
}

void tc__log_deinit(tc__log_t *lg) {
    pthread_mutex_destroy(&lg->mu);
}

/* Admit one message of kind ev now? *suppressed gets the count dropped before it. */
static int admit(tc__log_t *lg, tc__log_event_t ev, unsigned *suppressed) {
    uint64_t now = tc__now_ms();
    pthread_mutex_lock(&lg->mu);
    tc__log_kind_t *k = &lg->kinds[ev];
    if (now - k->window_start_ms >= LOG_WINDOW_MS || k->window_start_ms == 0) {
        k->window_start_ms = now ? now : 1;
        k->in_window = 0;
    }
    int ok = k->in_window < LOG_BURST;
    if (ok) {
        k->in_window++;
        *suppressed = k->suppressed;
        k->suppressed = 0;
    } else {
        k->suppressed++;
    }
    pthread_mutex_unlock(&lg->mu);
    return ok;
}

static const char *level_name(int level) {
    static const char *const names[] = {"off", "error", "warn", "info", "debug"};
    return level >= 0 && level <= TC_LOG_DEBUG ? names[level] : "log";
}

void tc__log(tc__log_t *lg, tc__log_event_t ev, int level, const void *key, size_t klen,
             const char *fmt, ...) {
    unsigned suppressed = 0;
    if (!tc__log_on(lg, level) || !admit(lg, ev, &suppressed))
        return;
    char msg[LOG_MSG_MAX], tail[48] = "";
    if (suppressed) /* kept whole: a long message gives way to it, not the reverse */
        snprintf(tail, sizeof tail, " (%u similar messages suppressed)", suppressed);
    size_t room = sizeof msg - strlen(tail);
    int at = lg->origin[0] ? snprintf(msg, room, "server %s: ", lg->origin) : 0;
    if (at < 0 || (size_t)at >= room)
        at = 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg + at, room - (size_t)at, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? (size_t)at : (size_t)at + (size_t)n;
    if (len >= room)
        len = room - 1;
    snprintf(msg + len, sizeof msg - len, "%s", tail);
    if (lg->fn) {
        lg->fn(lg->arg, level, msg, key, key ? klen : 0);
        return;
    }
    fprintf(stderr, "tiercache: %s: %s\n", level_name(level), msg);
}
