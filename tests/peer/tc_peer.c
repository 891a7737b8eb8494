/*
 * tc_peer.c - tc-peer, a second tiercache process that end-to-end tests drive over a
 * line protocol on stdin/stdout.
 *
 *   tc-peer REDIS_URL [KEY_PREFIX CHANNEL]
 *
 * It opens one cache (small timeouts so faults resolve fast; any TC_PEER_* environment
 * variable, read with tc_config_from_env, overrides them), prints "ready RC", then answers
 * one line per command, flushing after each:
 *
 *   set HEXKEY HEXVAL [TTLMS]       -> ok RC
 *   get HEXKEY                      -> val HEXVAL | miss | err RC
 *   del HEXKEY                      -> ok RC
 *   stats                           -> stats name=value ... (every tc_stats_t field)
 *   stress SECONDS NKEYS THREADS SEED
 *                                   -> done WRITES READS ERRORS
 *   xfetch HEXKEY THREADS SLEEPMS [COUNTERKEY]
 *                                   -> xdone OK ERR VALHEX FIRSTRC
 *   setopts HEXKEY HEXVAL TTLMS FLAGS [HEXTAG...]
 *                                   -> ok RC          (tc_set_opts, up to TC_MAX_TAGS tags)
 *   invtag HEXTAG                   -> ok RC REMOVED
 *   invprefix HEXPREFIX             -> ok RC REMOVED
 *   invns HEXNS                     -> ok RC
 *   clear                           -> ok RC
 *   mget HEXKEY...                  -> mget RC ITEM...  (ITEM: v:HEXVAL or e:CODE)
 *   mset TTLMS HEXKEY HEXVAL [HEXKEY HEXVAL...]
 *                                   -> mset RC CODE...
 *   mdel HEXKEY...                  -> mdel RC CODE...
 *   mfetch SLEEPMS COUNTERKEY HEXKEY...
 *                                   -> mfetch RC ITEM...
 *   seqw NMATCH NOTHER HEXPFXM HEXPFXO HEXTAG SHMPATH
 *                                   -> seqw WRITES ERRORS
 *   quit                            -> (exits)
 *   anything else                   -> bad COMMAND
 *
 * Keys and values are hex so binary bytes survive the line protocol; the empty string is
 * "-". `stress` runs THREADS threads doing random tc_set/tc_get on keys "k0".."k{N-1}"
 * until SECONDS pass; every written value is unique ("<pid>-<thread>-<counter>"), so a
 * test can tell which write a process ended up holding. ERRORS counts tc_set calls that
 * failed: after one, the process's L1 may legitimately disagree with Redis.
 *
 * `xfetch` is the cross-process single-flight probe: THREADS threads meet at a barrier and
 * tc_fetch one key; the loader INCRs COUNTERKEY (default "tc-peer:xcount") over its own
 * hiredis connection to the peer's Redis (unix:// or redis://host:port; credentials are
 * not used), sleeps SLEEPMS, and yields "x-<pid>-<count>". Counting in Redis, outside any
 * cache, is what lets a test prove that one load ran for the whole cluster. OK counts
 * callers that got the value the first successful caller got, ERR the rest; VALHEX is that
 * value and FIRSTRC the first failure's code (0 if none). The reply comes when every
 * thread is done, so a test may send the command and read the reply later, or kill the
 * peer while the loader sleeps (holding the cluster's load lock).
 *
 * `mfetch` is the batch twin of xfetch: one tc_mfetch of the keys; its batch loader INCRs
 * COUNTERKEY once per key it is given (so the counter is the cluster's number of key loads),
 * sleeps SLEEPMS, and gives key i the value "m-<pid>-<count>".
 *
 * `seqw` is the writer of the pattern-invalidation races (tests/test_patterns.c, and the
 * bulk-write race of tests/test_bulk.c). Its keys are HEXPFXM followed by 0..NMATCH-1 in
 * decimal (written with the tag HEXTAG, none when "-") and HEXPFXO followed by
 * 0..NOTHER-1 (never tagged); write s (s = 1, 2, ...) stores the decimal string s into key
 * (s - 1) % (NMATCH + NOTHER), through tc_set_opts, until the test sets the stop word. The
 * oracle is SHMPATH, a file the test created and both map, of little-endian u64 words:
 *
 *   [0] stop   (the test sets it to 1)     [1] begun: s, stored before write s is sent
 *   [2] writes completed                   [3] errors (a failed write: outcome unknown)
 *   [8 + i]    the s of key i's last completed write (0: none yet)
 *
 * A test reading begun = B after some call returned knows that every write s > B began
 * after that return; reading done[i] = C before a call began, that write C completed
 * before it. A second seqw on the same file (the test clears the stop word first) goes on
 * where the last one stopped: s keeps rising and the counters keep adding up.
 *
 * Invariant: exactly one reply line per command line, so the driver never desynchronises.
 */
#include "peer_line.h"
#include "tiercache.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static tc_cache_t *cache;
static const char *redis_url;
static unsigned char keybuf[PEER_MAX_BYTES], valbuf[PEER_MAX_BYTES];

static void cmd_set(char *hk, char *hv, char *ttl) {
    long klen = peer_unhex(hk, keybuf), vlen = peer_unhex(hv, valbuf);
    if (klen < 0 || vlen < 0) {
        peer_reply("bad set");
        return;
    }
    uint64_t ttl_ms = ttl ? strtoull(ttl, NULL, 10) : 0;
    peer_reply("ok %d", tc_set(cache, keybuf, (size_t)klen, valbuf, (size_t)vlen, ttl_ms));
}

static void cmd_get(char *hk) {
    long klen = peer_unhex(hk, keybuf);
    if (klen < 0) {
        peer_reply("bad get");
        return;
    }
    tc_ref_t *ref = NULL;
    int rc = tc_get(cache, keybuf, (size_t)klen, &ref);
    if (rc == 0)
        peer_reply("val %s", peer_hex(tc_ref_data(ref), tc_ref_size(ref)));
    else if (rc == TC_ENOTFOUND)
        peer_reply("miss");
    else
        peer_reply("err %d", rc);
    tc_ref_release(ref);
}

static void cmd_del(char *hk) {
    long klen = peer_unhex(hk, keybuf);
    if (klen < 0) {
        peer_reply("bad del");
        return;
    }
    peer_reply("ok %d", tc_del(cache, keybuf, (size_t)klen));
}

static void cmd_stats(void) {
    tc_stats_t s;
    if (tc_stats(cache, &s) != 0) {
        peer_reply("err stats");
        return;
    }
#define U(f) (unsigned long long)s.f
    peer_reply(
        "stats l1_hits=%llu l1_misses=%llu l2_hits=%llu l2_misses=%llu loads=%llu "
        "load_errors=%llu singleflight_waits=%llu l1_entries=%llu l1_bytes=%llu "
        "l1_evictions=%llu l1_expirations=%llu l1_fills_rejected=%llu "
        "inval_published=%llu inval_received=%llu inval_applied=%llu inval_malformed=%llu "
        "l2_errors=%llu l2_timeouts=%llu breaker_opens=%llu breaker_state=%d "
        "listener_connected=%d listener_reconnects=%llu l1_flushes=%llu "
        "early_refreshes=%llu stale_refreshes=%llu refreshes_dropped=%llu "
        "stale_serves=%llu failsafe_serves=%llu negative_hits=%llu lock_acquired=%llu "
        "lock_waits=%llu lock_timeouts=%llu load_timeouts=%llu leases_lost=%llu "
        "keys_invalidated=%llu inval_swept=%llu values_hidden=%llu batch_loads=%llu",
        U(l1_hits), U(l1_misses), U(l2_hits), U(l2_misses), U(loads), U(load_errors),
        U(singleflight_waits), U(l1_entries), U(l1_bytes), U(l1_evictions), U(l1_expirations),
        U(l1_fills_rejected), U(inval_published), U(inval_received), U(inval_applied),
        U(inval_malformed), U(l2_errors), U(l2_timeouts), U(breaker_opens), s.breaker_state,
        s.listener_connected, U(listener_reconnects), U(l1_flushes), U(early_refreshes),
        U(stale_refreshes), U(refreshes_dropped), U(stale_serves), U(failsafe_serves),
        U(negative_hits), U(lock_acquired), U(lock_waits), U(lock_timeouts), U(load_timeouts),
        U(leases_lost), U(keys_invalidated), U(inval_swept), U(values_hidden), U(batch_loads));
#undef U
}

/* ---- stress ---- */

typedef struct stress {
    unsigned id, nkeys, seed;
    uint64_t deadline_ms;
    uint64_t writes, reads, errors;
} stress_t;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *stress_thread(void *arg) {
    stress_t *st = arg;
    unsigned seed = st->seed;
    char key[32], val[64];
    while (now_ms() < st->deadline_ms) {
        int klen = snprintf(key, sizeof key, "k%u", (unsigned)rand_r(&seed) % st->nkeys);
        if (rand_r(&seed) % 2 == 0) {
            int vlen = snprintf(val, sizeof val, "%ld-%u-%llu", (long)getpid(), st->id,
                                (unsigned long long)st->writes);
            if (tc_set(cache, key, (size_t)klen, val, (size_t)vlen, 0) != 0)
                st->errors++;
            st->writes++;
        } else {
            tc_ref_t *ref = NULL;
            (void)tc_get(cache, key, (size_t)klen, &ref);
            tc_ref_release(ref);
            st->reads++;
        }
    }
    return NULL;
}

static void cmd_stress(char *secs, char *nkeys, char *threads, char *seed) {
    unsigned n = threads ? (unsigned)atoi(threads) : 0, k = nkeys ? (unsigned)atoi(nkeys) : 0;
    if (!secs || !seed || n == 0 || n > 64 || k == 0) {
        peer_reply("bad stress");
        return;
    }
    stress_t st[64];
    pthread_t tid[64];
    uint64_t deadline = now_ms() + (uint64_t)(atof(secs) * 1000.0);
    for (unsigned i = 0; i < n; i++) {
        st[i] = (stress_t){.id = i, .nkeys = k, .deadline_ms = deadline};
        st[i].seed = (unsigned)strtoul(seed, NULL, 10) * 7919u + i;
        pthread_create(&tid[i], NULL, stress_thread, &st[i]);
    }
    uint64_t w = 0, r = 0, e = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(tid[i], NULL);
        w += st[i].writes;
        r += st[i].reads;
        e += st[i].errors;
    }
    peer_reply("done %llu %llu %llu", (unsigned long long)w, (unsigned long long)r,
               (unsigned long long)e);
}

/* ---- xfetch ---- */

#define XFETCH_MAX_THREADS 64
#define XFETCH_MAX_CMDS    256

/* One xfetch command's loader argument. It lives until tc_close (a background refresh
 * may still call the loader later), so every command gets its own. */
typedef struct xload {
    char counter[128];
    unsigned sleep_ms;
} xload_t;

static xload_t *xloads[XFETCH_MAX_CMDS];
static unsigned nxloads;

typedef struct xcaller {
    pthread_t tid;
    pthread_barrier_t *barrier;
    xload_t *xl;
    const unsigned char *key;
    size_t klen;
    int rc;
    char val[64];
    size_t vlen;
} xcaller_t;

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* A fresh connection to the peer's Redis, from its URL (credentials ignored). */
static redisContext *counter_connect(void) {
    struct timeval tv = {1, 0};
    char host[256];
    if (strncmp(redis_url, "unix://", 7) == 0) {
        snprintf(host, sizeof host, "%.*s", (int)strcspn(redis_url + 7, "?"), redis_url + 7);
        return redisConnectUnixWithTimeout(host, tv);
    }
    const char *h = strncmp(redis_url, "redis://", 8) == 0 ? redis_url + 8 : redis_url;
    const char *at = strchr(h, '@');
    h = at ? at + 1 : h;
    snprintf(host, sizeof host, "%.*s", (int)strcspn(h, ":/"), h);
    int port = h[strlen(host)] == ':' ? atoi(h + strlen(host) + 1) : 6379;
    return redisConnectWithTimeout(host, port, tv);
}

/* INCR the counter; its new value, or -1. */
static long long counter_incr(const char *counter) {
    redisContext *rc = counter_connect();
    long long n = -1;
    if (rc && !rc->err) {
        redisReply *r = redisCommand(rc, "INCR %s", counter);
        if (r && r->type == REDIS_REPLY_INTEGER)
            n = r->integer;
        if (r)
            freeReplyObject(r);
    }
    if (rc)
        redisFree(rc);
    return n;
}

static int xloader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    xload_t *xl = arg;
    (void)key;
    (void)klen;
    long long n = counter_incr(xl->counter);
    if (n < 0)
        return TC_ELOADER;
    sleep_ms(xl->sleep_ms);
    char v[64];
    int vlen = snprintf(v, sizeof v, "x-%ld-%lld", (long)getpid(), n);
    return tc_load_set_value(load, v, (size_t)vlen);
}

static void *xcaller_main(void *arg) {
    xcaller_t *x = arg;
    tc_ref_t *ref = NULL;
    pthread_barrier_wait(x->barrier);
    x->rc = tc_fetch(cache, x->key, x->klen, xloader, x->xl, &ref);
    if (x->rc == 0) {
        x->vlen = tc_ref_size(ref) < sizeof x->val ? tc_ref_size(ref) : sizeof x->val;
        memcpy(x->val, tc_ref_data(ref), x->vlen);
    }
    tc_ref_release(ref);
    return NULL;
}

static void xfetch_reply(const xcaller_t *x, unsigned n) {
    const xcaller_t *first = NULL;
    unsigned ok = 0, err = 0;
    int firstrc = 0;
    for (unsigned i = 0; i < n; i++) {
        if (x[i].rc == 0 && !first)
            first = &x[i];
        if (x[i].rc == 0 && x[i].vlen == first->vlen &&
            memcmp(x[i].val, first->val, first->vlen) == 0) {
            ok++;
            continue;
        }
        err++;
        if (firstrc == 0)
            firstrc = x[i].rc;
    }
    peer_reply("xdone %u %u %s %d", ok, err, first ? peer_hex(first->val, first->vlen) : "-",
               firstrc);
}

static void cmd_xfetch(char *hk, char *threads, char *sleepms, char *counter) {
    long klen = peer_unhex(hk, keybuf);
    unsigned n = threads ? (unsigned)atoi(threads) : 0;
    if (klen <= 0 || n == 0 || n > XFETCH_MAX_THREADS || !sleepms ||
        nxloads == XFETCH_MAX_CMDS) {
        peer_reply("bad xfetch");
        return;
    }
    xload_t *xl = calloc(1, sizeof *xl);
    if (!xl) {
        peer_reply("bad xfetch");
        return;
    }
    snprintf(xl->counter, sizeof xl->counter, "%s", counter ? counter : "tc-peer:xcount");
    xl->sleep_ms = (unsigned)strtoul(sleepms, NULL, 10);
    xloads[nxloads++] = xl;
    xcaller_t x[XFETCH_MAX_THREADS];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, n);
    for (unsigned i = 0; i < n; i++) {
        x[i] = (xcaller_t){.barrier = &barrier, .xl = xl, .key = keybuf, .klen = (size_t)klen};
        pthread_create(&x[i].tid, NULL, xcaller_main, &x[i]);
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(x[i].tid, NULL);
    pthread_barrier_destroy(&barrier);
    xfetch_reply(x, n);
}

/* ---- options, patterns, bulk ---- */

#define PEER_MAX_ARGS 4096

/* Hex arguments decoded into fresh buffers, as tc_buf_t (freed with bufs_free). */
static tc_buf_t *bufs_unhex(char **hexes, size_t n) {
    tc_buf_t *b = calloc(n ? n : 1, sizeof *b);
    for (size_t i = 0; b && i < n; i++) {
        unsigned char *d = malloc(strlen(hexes[i]) / 2 + 1);
        long len = d ? peer_unhex(hexes[i], d) : -1;
        b[i] = (tc_buf_t){d, len < 0 ? 0 : (size_t)len};
        if (len < 0) {
            free(d);
            for (size_t j = 0; j < i; j++)
                free((void *)b[j].data);
            free(b);
            return NULL;
        }
    }
    return b;
}

static void bufs_free(tc_buf_t *b, size_t n) {
    for (size_t i = 0; b && i < n; i++)
        free((void *)b[i].data);
    free(b);
}

/* One reply line's item for a bulk read: v:HEX or e:CODE. */
static void put_item(int code, const tc_ref_t *ref) {
    if (code == 0)
        printf(" v:%s", peer_hex(tc_ref_data(ref), tc_ref_size(ref)));
    else
        printf(" e:%d", code);
}

static void cmd_setopts(char **a, size_t n) {
    if (n < 4 || n - 4 > TC_MAX_TAGS) {
        peer_reply("bad setopts");
        return;
    }
    tc_buf_t *tags = bufs_unhex(a + 4, n - 4);
    long klen = peer_unhex(a[0], keybuf), vlen = peer_unhex(a[1], valbuf);
    if (!tags || klen < 0 || vlen < 0) {
        bufs_free(tags, n - 4);
        peer_reply("bad setopts");
        return;
    }
    tc_opts_t o = TC_OPTS_INIT;
    o.ttl_ms = strtoull(a[2], NULL, 10);
    o.flags = (unsigned)strtoul(a[3], NULL, 10);
    o.tags = n > 4 ? tags : NULL;
    o.tags_count = n - 4;
    peer_reply("ok %d", tc_set_opts(cache, keybuf, (size_t)klen, valbuf, (size_t)vlen, &o));
    bufs_free(tags, n - 4);
}

static void cmd_inv(const char *what, char **a, size_t n) {
    long len = n == 1 ? peer_unhex(a[0], keybuf) : -1;
    if (len < 0) {
        peer_reply("bad %s", what);
        return;
    }
    size_t removed = 0;
    if (strcmp(what, "invtag") == 0) {
        int rc = tc_invalidate_tag(cache, keybuf, (size_t)len, &removed);
        peer_reply("ok %d %zu", rc, removed);
    } else if (strcmp(what, "invprefix") == 0) {
        int rc = tc_invalidate_prefix(cache, keybuf, (size_t)len, &removed);
        peer_reply("ok %d %zu", rc, removed);
    } else {
        peer_reply("ok %d", tc_invalidate_namespace(cache, keybuf, (size_t)len));
    }
}

static void cmd_mget(char **a, size_t n) {
    tc_buf_t *keys = bufs_unhex(a, n);
    tc_ref_t **refs = calloc(n ? n : 1, sizeof *refs);
    int *codes = calloc(n ? n : 1, sizeof *codes);
    if (!keys || !refs || !codes) {
        peer_reply("bad mget");
    } else {
        int rc = tc_mget(cache, keys, n, refs, codes);
        printf("mget %d", rc);
        for (size_t i = 0; rc == 0 && i < n; i++)
            put_item(codes[i], refs[i]);
        peer_reply("%s", "");
        for (size_t i = 0; rc == 0 && i < n; i++)
            tc_ref_release(refs[i]);
    }
    bufs_free(keys, n);
    free(refs);
    free(codes);
}

static void cmd_mset(char **a, size_t n) {
    size_t items_n = n >= 1 ? (n - 1) / 2 : 0;
    if (n < 1 || (n - 1) % 2 != 0) {
        peer_reply("bad mset");
        return;
    }
    tc_buf_t *b = bufs_unhex(a + 1, n - 1);
    tc_item_t *items = calloc(items_n ? items_n : 1, sizeof *items);
    int *codes = calloc(items_n ? items_n : 1, sizeof *codes);
    if (!b || !items || !codes) {
        peer_reply("bad mset");
    } else {
        for (size_t i = 0; i < items_n; i++)
            items[i] =
                (tc_item_t){b[2 * i].data, b[2 * i].len, b[2 * i + 1].data, b[2 * i + 1].len};
        tc_opts_t o = TC_OPTS_INIT;
        o.ttl_ms = strtoull(a[0], NULL, 10);
        int rc = tc_mset(cache, items, items_n, &o, codes);
        printf("mset %d", rc);
        for (size_t i = 0; i < items_n; i++)
            printf(" %d", codes[i]);
        peer_reply("%s", "");
    }
    bufs_free(b, n - 1);
    free(items);
    free(codes);
}

static void cmd_mdel(char **a, size_t n) {
    tc_buf_t *keys = bufs_unhex(a, n);
    int *codes = calloc(n ? n : 1, sizeof *codes);
    if (!keys || !codes) {
        peer_reply("bad mdel");
    } else {
        int rc = tc_mdel(cache, keys, n, codes);
        printf("mdel %d", rc);
        for (size_t i = 0; i < n; i++)
            printf(" %d", codes[i]);
        peer_reply("%s", "");
    }
    bufs_free(keys, n);
    free(codes);
}

static int mloader(void *arg, tc_batch_t *batch) {
    xload_t *xl = arg;
    size_t n = tc_batch_count(batch);
    long long *counts = calloc(n ? n : 1, sizeof *counts);
    if (!counts)
        return TC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        counts[i] = counter_incr(xl->counter);
        if (counts[i] < 0) {
            free(counts);
            return TC_ELOADER;
        }
    }
    sleep_ms(xl->sleep_ms);
    for (size_t i = 0; i < n; i++) {
        char v[64];
        int vlen = snprintf(v, sizeof v, "m-%ld-%lld", (long)getpid(), counts[i]);
        tc_batch_set_value(batch, i, v, (size_t)vlen);
    }
    free(counts);
    return 0;
}

static void cmd_mfetch(char **a, size_t n) {
    if (n < 2 || nxloads == XFETCH_MAX_CMDS) {
        peer_reply("bad mfetch");
        return;
    }
    xload_t *xl = calloc(1, sizeof *xl);
    tc_buf_t *keys = bufs_unhex(a + 2, n - 2);
    tc_ref_t **refs = calloc(n, sizeof *refs);
    int *codes = calloc(n, sizeof *codes);
    if (!xl || !keys || !refs || !codes) {
        peer_reply("bad mfetch");
        free(xl);
    } else {
        xl->sleep_ms = (unsigned)strtoul(a[0], NULL, 10);
        snprintf(xl->counter, sizeof xl->counter, "%s", a[1]);
        xloads[nxloads++] = xl;
        int rc = tc_mfetch(cache, keys, n - 2, mloader, xl, NULL, refs, codes);
        printf("mfetch %d", rc);
        for (size_t i = 0; rc == 0 && i < n - 2; i++)
            put_item(codes[i], refs[i]);
        peer_reply("%s", "");
        for (size_t i = 0; rc == 0 && i < n - 2; i++)
            tc_ref_release(refs[i]);
    }
    bufs_free(keys, n - 2);
    free(refs);
    free(codes);
}

/* ---- seqw: the sequenced writer ---- */

enum { SEQW_STOP = 0, SEQW_BEGUN = 1, SEQW_WRITES = 2, SEQW_ERRORS = 3, SEQW_DONE = 8 };

static void cmd_seqw(char **a, size_t n) {
    unsigned nm = n == 6 ? (unsigned)atoi(a[0]) : 0, no = n == 6 ? (unsigned)atoi(a[1]) : 0;
    static unsigned char pfxm[256], pfxo[256], tag[TC_MAX_TAG_LEN];
    int fits = n == 6 && strlen(a[2]) <= 400 && strlen(a[3]) <= 400 &&
               strlen(a[4]) <= 2 * TC_MAX_TAG_LEN;
    long lm = fits ? peer_unhex(a[2], pfxm) : -1, lo = fits ? peer_unhex(a[3], pfxo) : -1;
    long lt = fits ? peer_unhex(a[4], tag) : -1;
    int fd = n == 6 ? open(a[5], O_RDWR) : -1;
    size_t words = SEQW_DONE + (size_t)nm + no;
    struct stat st;
    if (nm + no == 0 || lm < 0 || lo < 0 || lt < 0 || fd < 0 || fstat(fd, &st) != 0 ||
        (size_t)st.st_size < words * sizeof(uint64_t)) {
        if (fd >= 0)
            close(fd);
        peer_reply("bad seqw");
        return;
    }
    uint64_t *w = mmap(NULL, words * sizeof *w, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (w == MAP_FAILED) {
        peer_reply("bad seqw");
        return;
    }
    tc_buf_t tagbuf = {tag, (size_t)lt};
    uint64_t writes = __atomic_load_n(&w[SEQW_WRITES], __ATOMIC_ACQUIRE);
    uint64_t errors = __atomic_load_n(&w[SEQW_ERRORS], __ATOMIC_ACQUIRE);
    uint64_t first = __atomic_load_n(&w[SEQW_BEGUN], __ATOMIC_ACQUIRE) + 1;
    for (uint64_t s = first; !__atomic_load_n(&w[SEQW_STOP], __ATOMIC_ACQUIRE); s++) {
        unsigned i = (unsigned)((s - 1) % (nm + no));
        char key[300], val[32];
        const unsigned char *pfx = i < nm ? pfxm : pfxo;
        long pl = i < nm ? lm : lo;
        memcpy(key, pfx, (size_t)pl);
        int klen =
            (int)pl + snprintf(key + pl, sizeof key - (size_t)pl, "%u", i < nm ? i : i - nm);
        int vlen = snprintf(val, sizeof val, "%llu", (unsigned long long)s);
        tc_opts_t o = TC_OPTS_INIT;
        if (i < nm && lt > 0) {
            o.tags = &tagbuf;
            o.tags_count = 1;
        }
        __atomic_store_n(&w[SEQW_BEGUN], s, __ATOMIC_RELEASE);
        int rc = tc_set_opts(cache, key, (size_t)klen, val, (size_t)vlen, &o);
        if (rc == 0) {
            __atomic_store_n(&w[SEQW_DONE + i], s, __ATOMIC_RELEASE);
            __atomic_store_n(&w[SEQW_WRITES], ++writes, __ATOMIC_RELEASE);
        } else {
            __atomic_store_n(&w[SEQW_ERRORS], ++errors, __ATOMIC_RELEASE);
        }
    }
    munmap(w, words * sizeof *w);
    peer_reply("seqw %llu %llu", (unsigned long long)writes, (unsigned long long)errors);
}

/* ---- main ---- */

/* One command line; returns 0 on quit. */
static int dispatch(char *line) {
    static char *a[PEER_MAX_ARGS];
    char *save = NULL;
    char *cmd = strtok_r(line, " \r\n", &save);
    size_t n = 0;
    for (char *t; n < PEER_MAX_ARGS && (t = strtok_r(NULL, " \r\n", &save)) != NULL;)
        a[n++] = t;
    for (size_t i = n; i < 4; i++)
        a[i] = NULL;
    if (!cmd)
        peer_reply("bad empty");
    else if (strcmp(cmd, "quit") == 0)
        return 0;
    else if (strcmp(cmd, "set") == 0)
        cmd_set(a[0], a[1], a[2]);
    else if (strcmp(cmd, "get") == 0)
        cmd_get(a[0]);
    else if (strcmp(cmd, "del") == 0)
        cmd_del(a[0]);
    else if (strcmp(cmd, "stats") == 0)
        cmd_stats();
    else if (strcmp(cmd, "stress") == 0)
        cmd_stress(a[0], a[1], a[2], a[3]);
    else if (strcmp(cmd, "xfetch") == 0)
        cmd_xfetch(a[0], a[1], a[2], a[3]);
    else if (strcmp(cmd, "setopts") == 0)
        cmd_setopts(a, n);
    else if (strcmp(cmd, "invtag") == 0 || strcmp(cmd, "invprefix") == 0 ||
             strcmp(cmd, "invns") == 0)
        cmd_inv(cmd, a, n);
    else if (strcmp(cmd, "clear") == 0)
        peer_reply("ok %d", tc_clear(cache));
    else if (strcmp(cmd, "mget") == 0)
        cmd_mget(a, n);
    else if (strcmp(cmd, "mset") == 0)
        cmd_mset(a, n);
    else if (strcmp(cmd, "mdel") == 0)
        cmd_mdel(a, n);
    else if (strcmp(cmd, "mfetch") == 0)
        cmd_mfetch(a, n);
    else if (strcmp(cmd, "seqw") == 0)
        cmd_seqw(a, n);
    else
        peer_reply("bad %s", cmd);
    return 1;
}

static int open_cache(int argc, char **argv) {
    tc_config_t cfg;
    tc_error_t err = {0};
    tc_config_init(&cfg);
    cfg.redis_url = argv[1];
    redis_url = argv[1];
    if (argc >= 4) {
        cfg.key_prefix = argv[2];
        cfg.inval_channel = argv[3];
    }
    cfg.connect_timeout_ms = 200;
    cfg.command_timeout_ms = 100;
    cfg.breaker_cooldown_ms = 200;
    cfg.listener_ping_ms = 100;
    int rc = tc_config_from_env(&cfg, "TC_PEER_", &err);
    if (rc == 0)
        rc = tc_open(&cfg, &cache, &err);
    if (rc != 0)
        fprintf(stderr, "tc-peer: open: %s (%s)\n", tc_err_name(rc), err.msg);
    /* tc_open waits connect_timeout_ms for the subscription; a loaded machine (sanitizers,
     * two shared cores) can take longer, and until then the peer keeps nothing it reads
     * (l1.c rule 3). Tests expect a ready peer to hold what it reads: wait a while more. */
    uint64_t until = now_ms() + 3000;
    tc_stats_t st;
    while (rc == 0 && now_ms() < until && tc_stats(cache, &st) == 0 && !st.listener_connected) {
        sleep_ms(5);
    }
    peer_reply("ready %d", rc);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: tc-peer REDIS_URL [KEY_PREFIX CHANNEL]\n");
        return 2;
    }
    if (open_cache(argc, argv) != 0)
        return 1;
    size_t cap = 0;
    char *line = NULL;
    while (getline(&line, &cap, stdin) > 0 && dispatch(line)) {
    }
    free(line);
    tc_close(cache);
    for (unsigned i = 0; i < nxloads; i++)
        free(xloads[i]);
    return 0;
}
