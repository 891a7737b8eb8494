/*
 * test_listener.c - the invalidation listener (src/listener.c) driven directly: a real
 * private redis-server, an L1 of its own (src/l1.h), and messages published by the test.
 *
 * What the listener owes the rest of tiercache, one test per promise:
 * - L1 is untrusted until SUBSCRIBE is confirmed, and flushed before it becomes trusted
 *   (whatever was kept while deaf is dropped);
 * - a well-formed message (tc__msg_encode) acts on exactly its key, with version
 *   comparison for ops 1-3 and whatever the version for op 4; a version no counter makes
 *   evicts the key and is counted as malformed; anything that does not decode is counted
 *   and changes nothing;
 * - op 5 acts on each key it lists and no other, op 6 sweeps the entries under the
 *   namespace that are older than the version, op 7 every entry older than the version;
 * - a killed subscriber connection (CLIENT KILL TYPE pubsub) is noticed, L1 is flushed,
 *   and the listener subscribes again and counts a reconnect;
 * - a Redis that goes silent (SIGSTOP) is declared lost by the PING watchdog after about
 *   2 x ping_ms: L1 untrusted and flushed, the cause says "watchdog"; SIGCONT brings the
 *   subscription and the trust back.
 * Entries are put into L1 as this process's own writes (TC__COMMIT_WRITE), which yield
 * only to newer versions, so a message that must not evict them can be told apart from
 * one that must. Every wait is a bounded poll on the listener's counters.
 */
/* tc-test-labels: integration fault */
#include "config.h"
#include "entry.h"
#include "l1.h"
#include "listener.h"
#include "msg.h"
#include "redis_server.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHANNEL "t:listener"
#define WAIT_MS 5000u
/* A loaded machine must not look like a dead link, except in the watchdog tests. */
#define PING_MS     1000u
#define WATCHDOG_MS 150u

static const unsigned char ORIGIN[16] = "listener-test-00";

/* ---- time ---- */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ---- the fixture: redis-server, L1, listener, and a record of the hook's keys ---- */

#define HOOK_MAX 64

typedef struct fx {
    tc_test_redis_t *r;
    tc__endpoint_t ep;
    tc__l1_t *l1;
    tc__listener_t *ls;
    pthread_mutex_t mu; /* guards the hook record */
    char hooked[HOOK_MAX][32];
    int nhooked;
} fx_t;

static void hook(void *arg, const void *key, size_t klen) {
    fx_t *f = arg;
    pthread_mutex_lock(&f->mu);
    if (f->nhooked < HOOK_MAX)
        snprintf(f->hooked[f->nhooked++], sizeof f->hooked[0], "%.*s", (int)klen,
                 (const char *)key);
    pthread_mutex_unlock(&f->mu);
}

static int hooked(fx_t *f, const char *key) {
    pthread_mutex_lock(&f->mu);
    int n = 0;
    for (int i = 0; i < f->nhooked; i++)
        n += strcmp(f->hooked[i], key) == 0;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void fx_l1(fx_t *f) {
    tc__l1_opts_t o = {.max_bytes = 1u << 20, .max_value_bytes = 1u << 16, .shards = 4};
    cr_assert_eq(tc__l1_open(&o, &f->l1), TC_OK);
    tc__l1_set_trusted(f->l1, 1); /* so that starting the listener visibly takes it away */
}

static void fx_listen(fx_t *f, uint32_t ping_ms) {
    tc__listener_opts_t o = {.endpoint = &f->ep,
                             .channel = CHANNEL,
                             .connect_timeout_ms = 500,
                             .command_timeout_ms = 500,
                             .ping_ms = ping_ms,
                             .l1 = f->l1,
                             .hook = hook,
                             .hook_arg = f};
    cr_assert_eq(tc__listener_start(&o, &f->ls), TC_OK);
    cr_assert_not_null(f->ls);
}

/* Redis and an L1; no listener yet. */
static void fx_redis(fx_t *f) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->r = tc_test_redis_start(NULL);
    tc_error_t err = {0};
    cr_assert_eq(tc__endpoint_parse(tc_test_redis_url(f->r), &f->ep, &err), 0, "%s", err.msg);
    fx_l1(f);
}

/* Redis, L1 and a subscribed listener. */
static void fx_open(fx_t *f, uint32_t ping_ms) {
    fx_redis(f);
    fx_listen(f, ping_ms);
    cr_assert(tc__listener_wait_subscribed(f->ls, WAIT_MS), "the listener never subscribed");
}

static void fx_close(fx_t *f) {
    tc__listener_stop(f->ls);
    tc__l1_close(f->l1);
    tc__endpoint_deinit(&f->ep);
    tc_test_redis_stop(f->r);
    pthread_mutex_destroy(&f->mu);
}

static tc__listener_counters_t counters(fx_t *f) {
    tc__listener_counters_t c;
    tc__listener_counters(f->ls, &c);
    return c;
}

/* Poll until the uint64_t counter at `offset` in tc__listener_counters_t reaches want;
 * returns its last value. */
static uint64_t wait_counter(fx_t *f, size_t offset, uint64_t want) {
    uint64_t deadline = now_ms() + WAIT_MS, v;
    for (;;) {
        tc__listener_counters_t c = counters(f);
        memcpy(&v, (const char *)&c + offset, sizeof v);
        if (v >= want || now_ms() >= deadline)
            return v;
        sleep_ms(2);
    }
}
#define WAIT_COUNTER(f, field, want)                                                           \
    wait_counter((f), offsetof(tc__listener_counters_t, field), (uint64_t)(want))

/* ---- L1 ---- */

/* An entry as this process's own write at `version`: it yields only to newer versions. */
static void put(fx_t *f, const char *key, uint64_t version) {
    size_t klen = strlen(key);
    uint64_t h = tc__l1_hash(f->l1, key, klen), snap;
    tc__pending_t *p = tc__l1_pending_begin(f->l1, h, key, klen, &snap);
    cr_assert_not_null(p);
    tc_ref_t *e = tc__entry_new(key, klen, "v", 1);
    cr_assert_not_null(e);
    e->version = version;
    tc__entry_set_expiry(e, TC__NO_EXPIRY);
    int kept = tc__l1_commit(f->l1, p, snap, e, TC__COMMIT_WRITE);
    tc_ref_release(e);
    tc__l1_pending_end(f->l1, p);
    cr_assert_eq(kept, 1, "L1 refused %s", key);
}

static int has(fx_t *f, const char *key) {
    size_t klen = strlen(key);
    tc_ref_t *ref = NULL;
    int rc = tc__l1_get(f->l1, tc__l1_hash(f->l1, key, klen), key, klen, &ref);
    tc_ref_release(ref);
    return rc == TC_OK;
}

/* ---- publishing ---- */

/* PUBLISH raw bytes; the listener must be the one subscriber that receives them. */
static void publish(fx_t *f, const void *msg, size_t len) {
    redisContext *rc = tc_test_redis_connect(f->r);
    cr_assert_not_null(rc);
    redisReply *r = redisCommand(rc, "PUBLISH %s %b", CHANNEL, msg, len);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "PUBLISH failed");
    cr_assert_eq(r->integer, 1, "%lld subscribers received the message", r->integer);
    freeReplyObject(r);
    redisFree(rc);
}

/* Publish one message of ops 1-4 and wait until the listener has handled it. */
static void send_op(fx_t *f, unsigned op, uint64_t version, const char *key) {
    unsigned char m[TC__MSG_FIXED_LEN + 64];
    size_t n = tc__msg_encode(op, version, ORIGIN, key, strlen(key), m);
    cr_assert_gt(n, 0);
    uint64_t applied = counters(f).applied;
    publish(f, m, n);
    cr_assert_geq(WAIT_COUNTER(f, applied, applied + 1), applied + 1, "op %u on %s not applied",
                  op, key);
}

/* A format 1 message with a payload instead of a key (ops 5-7): head, version, origin,
 * payload. Returns its length. */
static size_t encode_payload(unsigned op, uint64_t version, const void *payload, size_t plen,
                             unsigned char *out) {
    tc__msg_head(op, out);
    for (int i = 0; i < 8; i++)
        out[TC__MSG_HEAD_LEN + i] = (unsigned char)(version >> (56 - 8 * i));
    memcpy(out + TC__MSG_HEAD_LEN + TC__MSG_VERSION_LEN, ORIGIN, TC__MSG_ORIGIN_LEN);
    memcpy(out + TC__MSG_FIXED_LEN, payload, plen);
    size_t n = TC__MSG_FIXED_LEN + plen;
    tc__msg_t m; /* what we built is what the codec reads */
    cr_assert_eq(tc__msg_decode(out, n, &m), 0);
    cr_assert_eq(m.op, op);
    cr_assert_eq(m.version, version);
    return n;
}

static void send_payload(fx_t *f, unsigned op, uint64_t version, const void *payload,
                         size_t plen) {
    unsigned char m[TC__MSG_FIXED_LEN + 256];
    cr_assert_leq(plen, 256);
    size_t n = encode_payload(op, version, payload, plen, m);
    uint64_t applied = counters(f).applied;
    publish(f, m, n);
    cr_assert_geq(WAIT_COUNTER(f, applied, applied + 1), applied + 1, "op %u not applied", op);
}

static int cause_has(fx_t *f, const char *word) {
    tc_error_t err = {0};
    return tc__listener_cause(f->ls, &err) && strstr(err.msg, word) != NULL;
}

static long long numsub(fx_t *f) {
    redisContext *rc = tc_test_redis_connect(f->r);
    cr_assert_not_null(rc);
    redisReply *r = redisCommand(rc, "PUBSUB NUMSUB %s", CHANNEL);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    long long n = r->element[1]->integer;
    freeReplyObject(r);
    redisFree(rc);
    return n;
}

/* ---- subscribing ---- */

/* Started against a stopped Redis: untrusted, not subscribed; once Redis runs again:
 * subscribed, trusted, and what L1 held from before is gone. */
Test(listener, trusts_l1_only_once_subscribed_and_flushes_first) {
    fx_t f;
    fx_redis(&f);
    put(&f, "kept-while-deaf", 1000);
    tc_test_redis_pause(f.r);
    fx_listen(&f, PING_MS);
    cr_assert_eq(tc__l1_trusted(f.l1), 0, "L1 trusted before any subscription");
    cr_assert_eq(tc__listener_wait_subscribed(f.ls, 300), 0, "subscribed to a stopped Redis");
    cr_assert_eq(counters(&f).connected, 0);
    cr_assert_eq(tc__l1_trusted(f.l1), 0);

    tc_test_redis_resume(f.r);
    cr_assert(tc__listener_wait_subscribed(f.ls, WAIT_MS), "never subscribed after SIGCONT");
    cr_assert_eq(counters(&f).connected, 1);
    cr_assert_eq(tc__l1_trusted(f.l1), 1, "subscribed but L1 still untrusted");
    cr_assert_not(has(&f, "kept-while-deaf"), "an entry from before the subscription survived");
    cr_assert_eq(numsub(&f), 1, "the listener is not subscribed to " CHANNEL);
    cr_assert_eq(counters(&f).reconnects, 0, "the first subscription counted as a reconnect");
    fx_close(&f);
}

/* No Redis at all: the cause names what failed, and the listener keeps trying. */
Test(listener, says_why_it_cannot_connect_and_keeps_trying) {
    fx_t f;
    fx_redis(&f);
    tc_test_redis_kill(f.r);
    fx_listen(&f, PING_MS);
    cr_assert_eq(tc__listener_wait_subscribed(f.ls, 300), 0);
    uint64_t deadline = now_ms() + WAIT_MS;
    while (!cause_has(&f, tc_test_redis_socket_path(f.r)) && now_ms() < deadline)
        sleep_ms(5);
    cr_assert(cause_has(&f, tc_test_redis_socket_path(f.r)),
              "the cause does not name the socket it cannot reach");
    cr_assert_eq(tc__l1_trusted(f.l1), 0);
    tc_test_redis_restart(f.r);
    cr_assert(tc__listener_wait_subscribed(f.ls, WAIT_MS), "did not subscribe once Redis came");
    cr_assert_eq(tc__l1_trusted(f.l1), 1);
    tc_error_t err = {0};
    cr_assert_eq(tc__listener_cause(f.ls, &err), 0, "a cause is reported while subscribed: %s",
                 err.msg);
    fx_close(&f);
}

/* ---- one key ---- */

Test(listener, message_evicts_exactly_its_key) {
    fx_t f;
    fx_open(&f, PING_MS);
    put(&f, "a", 1000);
    put(&f, "b", 1000);
    put(&f, "c", 1000);
    send_op(&f, TC__MSG_OP_WRITE, 2000, "b");
    cr_assert_not(has(&f, "b"), "b survived a newer write's message");
    cr_assert(has(&f, "a") && has(&f, "c"), "a message about b evicted another key");
    cr_assert_eq(hooked(&f, "b"), 1, "the hook did not see b once");
    cr_assert_eq(hooked(&f, "a") + hooked(&f, "c"), 0);

    send_op(&f, TC__MSG_OP_DELETE, 3000, "c");
    cr_assert_not(has(&f, "c"), "c survived a newer delete's message");
    cr_assert(has(&f, "a"));
    tc__listener_counters_t c = counters(&f);
    cr_assert_eq(c.received, 2);
    cr_assert_eq(c.applied, 2);
    cr_assert_eq(c.malformed, 0);
    fx_close(&f);
}

/* Ops 1-3 compare versions; op 4 evicts whatever the version. */
Test(listener, versions_decide_except_for_evict) {
    fx_t f;
    fx_open(&f, PING_MS);
    put(&f, "same", 5000);
    put(&f, "older-msg", 5000);
    put(&f, "evicted", 5000);
    send_op(&f, TC__MSG_OP_WRITE, 5000, "same");
    cr_assert(has(&f, "same"), "the message of the write L1 holds evicted it");
    send_op(&f, TC__MSG_OP_WRITE, 4000, "older-msg");
    cr_assert(has(&f, "older-msg"), "an older write's message evicted a newer entry");
    send_op(&f, TC__MSG_OP_FILL, 4000, "older-msg");
    cr_assert(has(&f, "older-msg"), "an older fill's message evicted a newer entry");
    send_op(&f, TC__MSG_OP_EVICT, 0, "evicted");
    cr_assert_not(has(&f, "evicted"), "op 4 did not evict");
    cr_assert_eq(counters(&f).malformed, 0, "op 4 with version 0 counted as malformed");
    fx_close(&f);
}

/* A version no counter produces (0 outside FILL, 2^53 and up) cannot be ordered: the key
 * goes whatever L1 holds, and the message is counted as malformed. */
Test(listener, unorderable_versions_evict_and_count) {
    fx_t f;
    fx_open(&f, PING_MS);
    put(&f, "zero", 5000);
    put(&f, "huge", 5000);
    put(&f, "bystander", 5000);
    send_op(&f, TC__MSG_OP_WRITE, 0, "zero");
    send_op(&f, TC__MSG_OP_DELETE, (uint64_t)1 << 53, "huge");
    cr_assert_not(has(&f, "zero"), "version 0 did not evict");
    cr_assert_not(has(&f, "huge"), "version 2^53 did not evict");
    cr_assert(has(&f, "bystander"));
    cr_assert_eq(counters(&f).malformed, 2);
    fx_close(&f);
}

Test(listener, malformed_messages_are_counted_and_ignored) {
    fx_t f;
    fx_open(&f, PING_MS);
    const char *keys[] = {"victim", "hello world", "x"};
    for (size_t i = 0; i < 3; i++)
        put(&f, keys[i], 1000);
    unsigned char good[64], bad_op[64], bad_magic[64];
    static unsigned char too_long[TC__MSG_FIXED_LEN + TC_MAX_KEY_LEN + 1];
    size_t n = tc__msg_encode(TC__MSG_OP_WRITE, 2000, ORIGIN, "victim", 6, good);
    cr_assert_gt(n, 0);
    memcpy(bad_op, good, n);
    bad_op[1] = 9;
    memcpy(bad_magic, good, n);
    bad_magic[0] = 0x00;
    memcpy(too_long, good, TC__MSG_FIXED_LEN);
    memset(too_long + TC__MSG_FIXED_LEN, 'x', TC_MAX_KEY_LEN + 1);
    unsigned char many_bad[TC__MSG_FIXED_LEN + 8]; /* op 5 whose entry overruns the payload */
    memcpy(many_bad, good, TC__MSG_FIXED_LEN);
    many_bad[1] = TC__MSG_OP_MANY;
    memcpy(many_bad + TC__MSG_FIXED_LEN, "\x00\x09victim", 8);
    const struct {
        const void *p;
        size_t len;
    } msgs[] = {
        {"hello world", 11},
        {"", 0},
        {good, 10},
        {good, TC__MSG_FIXED_LEN},
        {bad_op, n},
        {bad_magic, n},
        {too_long, sizeof too_long},
        {many_bad, sizeof many_bad},
    };
    size_t count = sizeof msgs / sizeof msgs[0];
    for (size_t i = 0; i < count; i++)
        publish(&f, msgs[i].p, msgs[i].len);
    cr_assert_geq(WAIT_COUNTER(&f, malformed, count), count, "not every bad message counted");
    /* Then a good one: it is handled after the bad ones, so nothing else is in flight. */
    send_op(&f, TC__MSG_OP_WRITE, 2000, "x");
    tc__listener_counters_t c = counters(&f);
    cr_assert_eq(c.malformed, count);
    cr_assert_eq(c.received, count + 1);
    cr_assert_eq(c.applied, 1, "a malformed message was applied");
    cr_assert(has(&f, "victim") && has(&f, "hello world"), "a malformed message evicted a key");
    cr_assert_not(has(&f, "x"));
    cr_assert_eq(counters(&f).connected, 1, "garbage on the channel dropped the link");
    fx_close(&f);
}

/* ---- many keys, namespaces, clear ---- */

static size_t many_entry(unsigned char *out, const char *key) {
    size_t n = strlen(key);
    out[0] = (unsigned char)(n >> 8);
    out[1] = (unsigned char)n;
    memcpy(out + 2, key, n);
    return 2 + n;
}

Test(listener, op5_acts_on_each_listed_key_only) {
    fx_t f;
    fx_open(&f, PING_MS);
    const char *all[] = {"k1", "k2", "k3", "k4", "k5"};
    for (int i = 0; i < 5; i++)
        put(&f, all[i], 1000);
    put(&f, "k6", 9000); /* listed, but newer than the message */
    unsigned char payload[128];
    size_t plen = 0;
    plen += many_entry(payload + plen, "k1");
    plen += many_entry(payload + plen, "k3");
    plen += many_entry(payload + plen, "k5");
    plen += many_entry(payload + plen, "k6");
    plen += many_entry(payload + plen, "absent");
    send_payload(&f, TC__MSG_OP_MANY, 2000, payload, plen);
    cr_assert_not(has(&f, "k1") || has(&f, "k3") || has(&f, "k5"), "a listed key survived");
    cr_assert(has(&f, "k2") && has(&f, "k4"), "an unlisted key was evicted");
    cr_assert(has(&f, "k6"), "a listed key newer than the message was evicted");
    const char *seen[] = {"k1", "k3", "k5", "k6", "absent"};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(hooked(&f, seen[i]), 1, "the hook saw %s %d times", seen[i],
                     hooked(&f, seen[i]));
    cr_assert_eq(hooked(&f, "k2") + hooked(&f, "k4"), 0);
    tc__listener_counters_t c = counters(&f);
    cr_assert_eq(c.applied, 1, "one message, applied once");
    cr_assert_eq(c.malformed, 0);
    fx_close(&f);
}

Test(listener, op6_sweeps_the_namespace_older_than_the_version) {
    fx_t f;
    fx_open(&f, PING_MS);
    put(&f, "ns:a", 1000);
    put(&f, "ns:b", 1500);
    put(&f, "ns:new", 3000);
    put(&f, "nsx:a", 1000); /* another namespace that starts alike */
    put(&f, "other", 1000);
    send_payload(&f, TC__MSG_OP_NS, 2000, "ns:", 3);
    cr_assert_not(has(&f, "ns:a") || has(&f, "ns:b"), "an older entry under ns: survived");
    cr_assert(has(&f, "ns:new"), "an entry newer than the bump was swept");
    cr_assert(has(&f, "nsx:a") && has(&f, "other"), "an entry outside ns: was swept");
    cr_assert_eq(counters(&f).swept, 2);
    fx_close(&f);
}

Test(listener, op7_clears_every_entry_older_than_the_version) {
    fx_t f;
    fx_open(&f, PING_MS);
    put(&f, "a", 1000);
    put(&f, "b", 1999);
    put(&f, "c", 2001);
    put(&f, "d", 5000);
    send_payload(&f, TC__MSG_OP_CLEAR, 2000, "", 0);
    cr_assert_not(has(&f, "a") || has(&f, "b"), "an entry older than the clear survived");
    cr_assert(has(&f, "c") && has(&f, "d"), "an entry newer than the clear was dropped");
    cr_assert_eq(counters(&f).swept, 2);
    fx_close(&f);
}

/* ---- a lost link ---- */

Test(listener, killed_subscriber_connection_reconnects) {
    fx_t f;
    fx_open(&f, PING_MS);
    put(&f, "before", 1000);
    redisContext *rc = tc_test_redis_connect(f.r);
    cr_assert_not_null(rc);
    redisReply *r = redisCommand(rc, "CLIENT KILL TYPE pubsub");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "CLIENT KILL failed");
    cr_assert_eq(r->integer, 1, "%lld subscriber connections killed", r->integer);
    freeReplyObject(r);
    redisFree(rc);

    cr_assert_geq(WAIT_COUNTER(&f, reconnects, 1), 1, "no reconnect counted");
    cr_assert_eq(counters(&f).connected, 1);
    cr_assert_eq(tc__l1_trusted(f.l1), 1);
    cr_assert_not(has(&f, "before"), "an entry from before the lost link survived it");
    cr_assert_eq(numsub(&f), 1);
    /* The new subscription works. */
    put(&f, "after", 1000);
    send_op(&f, TC__MSG_OP_WRITE, 2000, "after");
    cr_assert_not(has(&f, "after"), "the new subscription does not apply messages");
    cr_assert_eq(counters(&f).reconnects, 1);
    fx_close(&f);
}

/* SIGSTOP: no error, no EOF, just silence. The watchdog declares the link lost after a
 * PING goes unanswered for a ping period (about 2 x ping_ms); SIGCONT brings it back. */
Test(listener, watchdog_declares_a_silent_link_lost) {
    fx_t f;
    fx_open(&f, WATCHDOG_MS);
    put(&f, "before", 1000);
    uint64_t t0 = now_ms();
    tc_test_redis_pause(f.r);
    uint64_t deadline = t0 + WAIT_MS;
    while ((counters(&f).connected || !cause_has(&f, "watchdog") || has(&f, "before")) &&
           now_ms() < deadline)
        sleep_ms(5);
    uint64_t lost_after = now_ms() - t0;
    int connected = counters(&f).connected, trusted = tc__l1_trusted(f.l1);
    int kept = has(&f, "before");
    tc_error_t err = {0};
    tc__listener_cause(f.ls, &err);
    tc_test_redis_resume(f.r);
    cr_assert_eq(connected, 0, "still connected %llu ms into a SIGSTOP",
                 (unsigned long long)lost_after);
    cr_assert_eq(trusted, 0, "L1 trusted while the link is lost");
    cr_assert_not(kept, "L1 kept an entry across a silent loss");
    cr_assert(strstr(err.msg, "watchdog"), "cause: '%s'", err.msg);
    cr_log_info("link declared lost %llu ms after SIGSTOP (ping_ms %u)",
                (unsigned long long)lost_after, WATCHDOG_MS);

    cr_assert_geq(WAIT_COUNTER(&f, reconnects, 1), 1, "no reconnect after SIGCONT");
    cr_assert_eq(counters(&f).connected, 1);
    cr_assert_eq(tc__l1_trusted(f.l1), 1, "L1 not trusted again after SIGCONT");
    put(&f, "after", 1000);
    send_op(&f, TC__MSG_OP_WRITE, 2000, "after");
    cr_assert_not(has(&f, "after"));
    fx_close(&f);
}

/* Stop interrupts the listener wherever it is: subscribed, or waiting on a dead Redis. */
Test(listener, stop_returns_while_subscribed_or_reconnecting) {
    fx_t f;
    fx_open(&f, WATCHDOG_MS);
    tc_test_redis_pause(f.r);
    uint64_t deadline = now_ms() + WAIT_MS;
    while (counters(&f).connected && now_ms() < deadline)
        sleep_ms(5);
    cr_assert_eq(counters(&f).connected, 0, "the link to a stopped Redis was never lost");
    tc__listener_stop(f.ls); /* mid-reconnect against a stopped server */
    f.ls = NULL;
    tc_test_redis_resume(f.r);
    fx_close(&f);
}
