/*
 * l2_clock.c - an upper bound of Redis's clock, kept fresh by a TIME riding along with
 * about one read a second, and what it makes of a value's header expiry (l2_clock.h).
 *
 * Why a bound and not an estimate: the one thing a wrong answer must never do is keep an
 * L1 copy past its Redis key, so every error goes the same way: the send time stands for
 * the execution time (Redis read its clock later), the allowance for drift grows with the
 * bound's age, and the coarse clock's tick is taken off as well. A copy so kept lives a
 * few ms less than its key at worst; the read it saves is a whole round trip.
 *
 * The bound is two numbers written together about once a second, so a mutex is the
 * simplest correct guard; a miss already costs a network round trip, next to which an
 * uncontended lock is nothing.
 */
#include "l2_clock.h"
#include "l2_int.h"

#include "clock.h"
#include "conn.h"
#include "valfmt.h"

#include <stdlib.h>
#include <string.h>

#define RENEW_NS        1000000000ull /* one TIME a second */
#define STALE_NS        5000000000ull /* an older bound: every read asks until one answers */
#define DRIFT_US_PER_MS 1u            /* 1000 ppm */
/* Expiries past this (year ~2262 in us) are taken as "never": no overflow below. */
#define FAR_MS ((uint64_t)INT64_MAX / 1000u - 1u)

int tc__l2_clock_init(tc__l2_clock_t *k, int on, tc__log_t *log) {
    memset(k, 0, sizeof *k);
    if (pthread_mutex_init(&k->mu, NULL) != 0)
        return -1;
    struct timespec res = {0, 0};
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0 || res.tv_sec > 0)
        res.tv_nsec = 10000000; /* unknown: assume a slow 100 Hz tick */
    k->margin_us = (uint64_t)res.tv_nsec / 1000u + 1000u;
    k->log = log;
    atomic_init(&k->on, on);
    return 0;
}

void tc__l2_clock_destroy(tc__l2_clock_t *k) {
    pthread_mutex_destroy(&k->mu);
}

int tc__l2_clock_on(tc__l2_clock_t *k) {
    return atomic_load_explicit(&k->on, memory_order_relaxed);
}

static uint64_t bound_taken(tc__l2_clock_t *k) {
    pthread_mutex_lock(&k->mu);
    uint64_t t = k->taken_ns;
    pthread_mutex_unlock(&k->mu);
    return t;
}

int tc__l2_clock_due(tc__l2_clock_t *k) {
    uint64_t now = tc__now_ns(), taken = bound_taken(k);
    if (taken == 0 || now - taken > STALE_NS)
        return 1;
    uint64_t due = atomic_load_explicit(&k->due_ns, memory_order_relaxed);
    return now >= due && atomic_compare_exchange_strong(&k->due_ns, &due, now + RENEW_NS);
}

/* TIME's two elements (seconds, microseconds) as integers: 0 and *us, or -1. */
static int time_us(const redisReply *r, uint64_t *us) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return -1;
    uint64_t part[2];
    for (int i = 0; i < 2; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_INTEGER && e->integer >= 0) {
            part[i] = (uint64_t)e->integer;
            continue;
        }
        if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 15)
            return -1;
        char num[16];
        memcpy(num, e->str, e->len);
        num[e->len] = '\0';
        char *end;
        part[i] = strtoull(num, &end, 10);
        if (*end != '\0')
            return -1;
    }
    if (part[1] >= 1000000u || part[0] > FAR_MS / 1000u)
        return -1;
    *us = part[0] * 1000000u + part[1];
    return 0;
}

unsigned tc__l2_clock_gen(tc__l2_clock_t *k) {
    return atomic_load(&k->gen);
}

void tc__l2_clock_reset(tc__l2_clock_t *k) {
    pthread_mutex_lock(&k->mu);
    atomic_fetch_add(&k->gen, 1);
    k->taken_ns = 0;
    k->offset_us = 0;
    pthread_mutex_unlock(&k->mu);
}

void tc__l2_clock_absorb(tc__l2_clock_t *k, const redisReply *time, uint64_t sent_ns,
                         unsigned gen) {
    if (!time)
        return;
    if (time->type == REDIS_REPLY_ERROR) {
        /* Only a refusal is for good: BUSY (a long script) or LOADING pass. */
        if (tc__conn_is_permission_text(time->str, time->len) && atomic_exchange(&k->on, 0))
            tc__log(k->log, TC__EV_PERMISSION, TC_LOG_WARN, NULL, 0,
                    "redis refused TIME (%.*s): reads ask PTTL for each value's life "
                    "from now on (grant +time to save that command)",
                    (int)time->len, time->str);
        return;
    }
    uint64_t redis_us;
    if (time_us(time, &redis_us) != 0 || sent_ns == 0)
        return;
    int64_t offset = (int64_t)redis_us - (int64_t)(sent_ns / 1000u);
    pthread_mutex_lock(&k->mu);
    /* A slower, older answer does not replace a newer one, nor one from before a reset
     * (another server's clock). */
    if (gen == atomic_load(&k->gen) && sent_ns > k->taken_ns) {
        k->offset_us = offset;
        k->taken_ns = sent_ns;
    }
    pthread_mutex_unlock(&k->mu);
}

int64_t tc__l2_clock_life_ms(tc__l2_clock_t *k, uint64_t expires_by_ms) {
    if (expires_by_ms == TC__VAL_UNKNOWN)
        return TC__L2_LIFE_ASK;
    if (expires_by_ms == TC__VAL_NEVER || expires_by_ms > FAR_MS)
        return TC__L2_LIFE_NEVER;
    pthread_mutex_lock(&k->mu);
    int64_t offset = k->offset_us;
    uint64_t taken = k->taken_ns;
    pthread_mutex_unlock(&k->mu);
    if (taken == 0) /* every read carries a TIME until one is answered: this one's failed */
        return TC__L2_LIFE_ASK;
    uint64_t now = tc__now_ns();
    uint64_t age_ms = now > taken ? (now - taken) / 1000000u : 0;
    int64_t redis_now_us =
        (int64_t)(now / 1000u) + offset + (int64_t)(age_ms * DRIFT_US_PER_MS + k->margin_us);
    int64_t life_us = (int64_t)(expires_by_ms * 1000u) - redis_now_us;
    return life_us >= 1000 ? life_us / 1000 : TC__L2_LIFE_NOTHING;
}
