/*
 * env.c - the Redis a run happens in, and the small helpers every subcommand uses.
 *
 * A run owns the prefix "tcbench:<pid>:". With no --redis it also owns the whole server
 * (a throwaway one in a private directory), so cleanup may FLUSHALL there; on a user's
 * server it deletes only keys under its prefix, with SCAN + UNLINK.
 */
#include "bench.h"

#include "redis_info.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t tcb_interrupted;

uint64_t tcb_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tcb_status(const tcb_opts_t *o, const char *fmt, ...) {
    if (o->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("tiercache-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

char **tcb_child_env(const char *name, const char *value) {
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    size_t len = strlen(name) + strlen(value) + 2;
    char *var = malloc(len);
    if (!env || !var) {
        free(env);
        free(var);
        return NULL;
    }
    snprintf(var, len, "%s=%s", name, value);
    env[0] = var; /* first, so it wins over a stale copy in environ */
    memcpy(env + 1, environ, n * sizeof *env);
    return env;
}

void tcb_child_env_free(char **env) {
    if (env)
        free(env[0]);
    free(env);
}

void tcb_l1_capacity(const tcb_opts_t *o, double pct, uint64_t nkeys, uint64_t *entries,
                     uint64_t *bytes) {
    if (o->l1_in_bytes) {
        *entries = 0;
        *bytes = o->l1_bytes;
        return;
    }
    double e = pct / 100.0 * (double)nkeys;
    *entries = pct <= 0 ? 0 : (uint64_t)(e + 0.999999);
    if (*entries == 0 && pct > 0)
        *entries = 1;
    /* The entry cap binds, not the bytes: budget generously for key, value and overhead
     * (entry header, allocator size class, hash table), so "10%" means 10% of the keys. */
    uint64_t per = TCB_KEY_LEN + (uint64_t)tcb_vsize_max(&o->vsize) + 256;
    *bytes = *entries * per;
}

int tcb_env_open(tcb_env_t *e, const tcb_opts_t *o) {
    memset(e, 0, sizeof *e);
    char err[512];
    snprintf(e->prefix, sizeof e->prefix, "tcbench:%ld:", (long)getpid());
    if (o->redis_url) {
        e->url = o->redis_url;
    } else {
        tcb_status(o, "starting a throwaway redis-server on a private unix socket");
        if (tcb_server_start(&e->server, err, sizeof err) != 0) {
            fprintf(stderr, "tiercache-bench: %s\n", err);
            return -1;
        }
        e->owned = 1;
        e->url = e->server.url;
    }
    tcb_url_mask(e->url, e->url_shown, sizeof e->url_shown);
    if (tcb_endpoint_parse(e->url, &e->ep, err, sizeof err) != 0 ||
        !(e->ctl = tcb_rconn_open(&e->ep, 5000, err, sizeof err))) {
        fprintf(stderr, "tiercache-bench: %s\n", err);
        tcb_env_close(e);
        return -1;
    }
    tcb_info_t info;
    if (tcb_info_fetch(e->ctl, &info) == 0)
        snprintf(e->version, sizeof e->version, "%s", info.version);
    return 0;
}

void tcb_env_purge(tcb_env_t *e, const char *sub) {
    if (e->ctl && e->ctl->err) { /* a broken control link: one fresh try */
        char err[256];
        redisFree(e->ctl);
        e->ctl = tcb_rconn_open(&e->ep, 5000, err, sizeof err);
    }
    if (!e->ctl)
        return;
    if (e->owned && (!sub || !*sub)) {
        /* Everything on the throwaway server is ours. */
        freeReplyObject(redisCommand(e->ctl, "FLUSHALL ASYNC"));
        return;
    }
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s%s", e->prefix, sub ? sub : "");
    if (tcb_rconn_purge(e->ctl, prefix) < 0)
        fprintf(stderr, "tiercache-bench: warning: could not delete keys %s* (%s)\n", prefix,
                e->ctl->err ? e->ctl->errstr : "SCAN/UNLINK failed");
}

void tcb_env_close(tcb_env_t *e) {
    if (e->ctl) {
        if (!e->owned)
            tcb_env_purge(e, "");
        redisFree(e->ctl);
        e->ctl = NULL;
    }
    if (e->owned) {
        tcb_server_stop(&e->server);
        e->owned = 0;
    }
}
