/*
 * multi.c - the helpers bulk, patterns and warm share (see multi.h).
 *
 * Writes go through tc_mset on purpose: populating 100,000 keys is itself a use of the
 * API under test, and a batch of 1000 is one round trip, so populating takes a second or
 * two instead of the minute 100,000 single writes would on a small machine.
 */
#include "multi.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

tc_cache_t *tcb_multi_open(const tcb_env_t *e, const tcb_multi_cfg_t *mc, const char *who) {
    char prefix[160], channel[96];
    snprintf(prefix, sizeof prefix, "%s%s", e->prefix, mc->sub);
    snprintf(channel, sizeof channel, "%sinval", e->prefix);
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = e->url;
    cfg.key_prefix = prefix;
    cfg.inval_channel = channel;
    cfg.require_redis = 1;
    cfg.connect_timeout_ms = 5000;
    cfg.command_timeout_ms = 5000; /* a busy 2-core box must not turn into timeouts */
    cfg.l1_max_bytes = (size_t)mc->l1_bytes;
    cfg.l1_max_entries = (size_t)mc->l1_entries;
    cfg.writer = mc->writer;
    cfg.writer_arg = mc->writer_arg;
    if (mc->wb_batch)
        cfg.write_behind_batch = mc->wb_batch;
    tc_cache_t *c = NULL;
    tc_error_t err;
    if (tc_open(&cfg, &c, &err) != 0)
        fprintf(stderr, "tiercache-bench: %s: tc_open: %s\n", who, err.msg);
    return c;
}

size_t tcb_multi_key(const char *uprefix, uint64_t id, char out[TCB_MULTI_KEY_CAP]) {
    size_t plen = strlen(uprefix);
    if (plen > TCB_MULTI_KEY_CAP - TCB_KEY_LEN - 1)
        plen = TCB_MULTI_KEY_CAP - TCB_KEY_LEN - 1;
    memcpy(out, uprefix, plen);
    tcb_key_format(id, out + plen);
    return plen + TCB_KEY_LEN;
}

void tcb_multi_keys_fill(tcb_multi_keys_t *k, const char *uprefix, uint64_t first, size_t n) {
    if (n > TCB_MULTI_BATCH)
        n = TCB_MULTI_BATCH;
    for (size_t i = 0; i < n; i++) {
        k->bufs[i].len = tcb_multi_key(uprefix, first + i, k->text[i]);
        k->bufs[i].data = k->text[i];
    }
    k->n = n;
}

static int write_batch(tc_cache_t *c, const tcb_opts_t *o, const tcb_multi_keys_t *k,
                       uint64_t first, const unsigned char *value, const tc_opts_t *opts) {
    tc_item_t items[TCB_MULTI_BATCH];
    for (size_t i = 0; i < k->n; i++)
        items[i] = (tc_item_t){k->bufs[i].data, k->bufs[i].len, value,
                               tcb_vsize_for(&o->vsize, first + i)};
    return tc_mset(c, items, k->n, opts, NULL);
}

int tcb_multi_write(tc_cache_t *c, const tcb_opts_t *o, const char *uprefix, uint64_t first,
                    uint64_t n, const tc_opts_t *opts) {
    unsigned char *value = malloc(tcb_vsize_max(&o->vsize) + 1);
    tcb_multi_keys_t *k = malloc(sizeof *k);
    int rc = value && k ? 0 : TC_ENOMEM;
    if (rc == 0)
        memset(value, 'v', tcb_vsize_max(&o->vsize) + 1);
    for (uint64_t done = 0; rc == 0 && done < n && !tcb_interrupted; done += k->n) {
        uint64_t left = n - done;
        tcb_multi_keys_fill(k, uprefix, first + done,
                            left < TCB_MULTI_BATCH ? (size_t)left : TCB_MULTI_BATCH);
        rc = write_batch(c, o, k, first + done, value, opts);
    }
    if (rc != 0)
        fprintf(stderr, "tiercache-bench: tc_mset: %s\n", tc_strerror(rc));
    free(value);
    free(k);
    return rc;
}

int tcb_multi_read(tc_cache_t *c, const char *uprefix, uint64_t first, uint64_t n,
                   uint64_t *found) {
    tcb_multi_keys_t *k = malloc(sizeof *k);
    tc_ref_t *refs[TCB_MULTI_BATCH];
    int codes[TCB_MULTI_BATCH];
    uint64_t hits = 0;
    int rc = k ? 0 : TC_ENOMEM;
    for (uint64_t done = 0; rc == 0 && done < n; done += k->n) {
        uint64_t left = n - done;
        tcb_multi_keys_fill(k, uprefix, first + done,
                            left < TCB_MULTI_BATCH ? (size_t)left : TCB_MULTI_BATCH);
        rc = tc_mget(c, k->bufs, k->n, refs, codes);
        for (size_t i = 0; rc == 0 && i < k->n; i++) {
            hits += codes[i] == 0;
            tc_ref_release(refs[i]);
        }
    }
    free(k);
    if (found)
        *found = hits;
    return rc;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void tcb_multi_summarize(uint64_t *v, size_t n, tcb_multi_summary_t *s) {
    memset(s, 0, sizeof *s);
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_u64);
    s->min = v[0];
    s->p50 = v[(n - 1) / 2];
    s->p99 = v[(size_t)ceil(0.99 * (double)n) - 1];
    s->max = v[n - 1];
}

double tcb_multi_median(double *v, size_t n) {
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_dbl);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void tcb_multi_sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

void tcb_multi_settle(tc_cache_t *c, uint64_t received) {
    uint64_t last = UINT64_MAX, since = tcb_now_ns();
    for (;;) {
        tc_stats_t st;
        if (tc_stats(c, &st) != 0)
            return;
        uint64_t now = tcb_now_ns();
        if (st.inval_received != last) {
            last = st.inval_received;
            since = now;
        } else if (now - since > (last >= received ? 100000000ull : 1000000000ull)) {
            return;
        }
        tcb_multi_sleep_us(5000);
    }
}

/* ---- readers ---- */

int tcb_multi_tc_get(void *cache, const char *key) {
    tc_ref_t *ref = NULL;
    int rc = tc_get(cache, key, TCB_KEY_LEN, &ref);
    tc_ref_release(ref);
    return rc;
}

typedef struct readers {
    const tcb_opts_t *o;
    const tcb_workload_t *wl;
    unsigned threads;
    tcb_read_fn fn;
    void *arg;
    atomic_int stop;
    atomic_uint_fast64_t ops, errors;
} readers_t;

typedef struct reader {
    readers_t *rs;
    unsigned tid;
    pthread_t th;
} reader_t;

static void *reader_main(void *arg) {
    reader_t *me = arg;
    readers_t *rs = me->rs;
    tcb_cursor_t cur;
    tcb_cursor_init(&cur, rs->wl, rs->o->seed, me->tid, rs->threads);
    char key[TCB_KEY_LEN + 1];
    uint64_t ops = 0, errors = 0;
    while (!atomic_load_explicit(&rs->stop, memory_order_relaxed)) {
        for (int i = 0; i < 16; i++) {
            tcb_key_format(tcb_workload_next(rs->wl, &cur, 0), key);
            errors += rs->fn(rs->arg, key) != 0;
        }
        ops += 16;
    }
    atomic_fetch_add(&rs->ops, ops);
    atomic_fetch_add(&rs->errors, errors);
    return NULL;
}

int tcb_multi_read_for(const tcb_opts_t *o, const tcb_workload_t *wl, unsigned threads,
                       uint64_t ns, tcb_read_fn fn, void *arg, uint64_t *ops,
                       uint64_t *errors) {
    readers_t rs = {.o = o, .wl = wl, .threads = threads, .fn = fn, .arg = arg};
    reader_t *ws = calloc(threads, sizeof *ws);
    if (!ws)
        return -1;
    unsigned started = 0;
    for (; started < threads; started++) {
        ws[started] = (reader_t){.rs = &rs, .tid = started};
        if (pthread_create(&ws[started].th, NULL, reader_main, &ws[started]) != 0)
            break;
    }
    if (started == threads)
        tcb_multi_sleep_us((long)(ns / 1000));
    atomic_store(&rs.stop, 1);
    for (unsigned i = 0; i < started; i++)
        pthread_join(ws[i].th, NULL);
    free(ws);
    *ops = atomic_load(&rs.ops);
    *errors = atomic_load(&rs.errors);
    return started == threads ? 0 : -1;
}
