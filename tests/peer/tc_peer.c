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
 *   quit                            -> (exits)
 *   anything else                   -> bad COMMAND
 *
 * Keys and values are hex so binary bytes survive the line protocol; the empty string is
 * "-". `stress` runs THREADS threads doing random tc_set/tc_get on keys "k0".."k{N-1}"
 * until SECONDS pass; every written value is unique ("<pid>-<thread>-<counter>"), so a
 * test can tell which write a process ended up holding. ERRORS counts tc_set calls that
 * failed: after one, the process's L1 may legitimately disagree with Redis.
 *
 * Invariant: exactly one reply line per command line, so the driver never desynchronises.
 */
#include "tiercache.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PEER_MAX_BYTES (1u << 20)

static tc_cache_t *cache;
static unsigned char keybuf[PEER_MAX_BYTES], valbuf[PEER_MAX_BYTES];
static char outbuf[2 * PEER_MAX_BYTES + 16];

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static int nibble(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode hex (or "-" for empty) into out; -1 when malformed or too long. */
static long unhex(const char *hex, unsigned char *out) {
    if (!hex)
        return -1;
    if (strcmp(hex, "-") == 0)
        return 0;
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > PEER_MAX_BYTES)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

static const char *hex(const void *buf, size_t len) {
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = buf;
    if (len == 0)
        return "-";
    for (size_t i = 0; i < len; i++) {
        outbuf[2 * i] = digits[p[i] >> 4];
        outbuf[2 * i + 1] = digits[p[i] & 15];
    }
    outbuf[2 * len] = '\0';
    return outbuf;
}

static void cmd_set(char *hk, char *hv, char *ttl) {
    long klen = unhex(hk, keybuf), vlen = unhex(hv, valbuf);
    if (klen < 0 || vlen < 0) {
        reply("bad set");
        return;
    }
    uint64_t ttl_ms = ttl ? strtoull(ttl, NULL, 10) : 0;
    reply("ok %d", tc_set(cache, keybuf, (size_t)klen, valbuf, (size_t)vlen, ttl_ms));
}

static void cmd_get(char *hk) {
    long klen = unhex(hk, keybuf);
    if (klen < 0) {
        reply("bad get");
        return;
    }
    tc_ref_t *ref = NULL;
    int rc = tc_get(cache, keybuf, (size_t)klen, &ref);
    if (rc == 0)
        reply("val %s", hex(tc_ref_data(ref), tc_ref_size(ref)));
    else if (rc == TC_ENOTFOUND)
        reply("miss");
    else
        reply("err %d", rc);
    tc_ref_release(ref);
}

static void cmd_del(char *hk) {
    long klen = unhex(hk, keybuf);
    if (klen < 0) {
        reply("bad del");
        return;
    }
    reply("ok %d", tc_del(cache, keybuf, (size_t)klen));
}

static void cmd_stats(void) {
    tc_stats_t s;
    if (tc_stats(cache, &s) != 0) {
        reply("err stats");
        return;
    }
#define U(f) (unsigned long long)s.f
    reply("stats l1_hits=%llu l1_misses=%llu l2_hits=%llu l2_misses=%llu loads=%llu "
          "load_errors=%llu singleflight_waits=%llu l1_entries=%llu l1_bytes=%llu "
          "l1_evictions=%llu l1_expirations=%llu l1_fills_rejected=%llu "
          "inval_published=%llu inval_received=%llu inval_applied=%llu inval_malformed=%llu "
          "l2_errors=%llu l2_timeouts=%llu breaker_opens=%llu breaker_state=%d "
          "listener_connected=%d listener_reconnects=%llu l1_flushes=%llu",
          U(l1_hits), U(l1_misses), U(l2_hits), U(l2_misses), U(loads), U(load_errors),
          U(singleflight_waits), U(l1_entries), U(l1_bytes), U(l1_evictions), U(l1_expirations),
          U(l1_fills_rejected), U(inval_published), U(inval_received), U(inval_applied),
          U(inval_malformed), U(l2_errors), U(l2_timeouts), U(breaker_opens), s.breaker_state,
          s.listener_connected, U(listener_reconnects), U(l1_flushes));
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
        reply("bad stress");
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
    reply("done %llu %llu %llu", (unsigned long long)w, (unsigned long long)r,
          (unsigned long long)e);
}

/* ---- main ---- */

/* One command line; returns 0 on quit. */
static int dispatch(char *line) {
    char *save = NULL;
    char *cmd = strtok_r(line, " \r\n", &save);
    char *a[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++)
        a[i] = strtok_r(NULL, " \r\n", &save);
    if (!cmd)
        reply("bad empty");
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
    else
        reply("bad %s", cmd);
    return 1;
}

static int open_cache(int argc, char **argv) {
    tc_config_t cfg;
    tc_error_t err = {0};
    tc_config_init(&cfg);
    cfg.redis_url = argv[1];
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
    reply("ready %d", rc);
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
    return 0;
}
