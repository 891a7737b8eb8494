/*
 * data.c - get, set, del and invalidate: the library's data calls, as an application
 * makes them.
 *
 * These commands go through tc_open and the public API on purpose: a value written here
 * is versioned and published like any other write, so every process's L1 drops its older
 * copy, and a value read here passes the same checks (format, version, size) as in the
 * services. Each command is one call on a fresh cache, so its L1 starts empty and a read
 * always reaches Redis.
 *
 * tc_get reports "Redis unreachable" as a miss (an application falls back to its loader).
 * A CLI must not say "not found" when it could not look, so a miss is checked against the
 * cache's counters: when the call failed on Redis, the exit code says unavailable.
 */
#include "cli.h"
#include "conf.h"
#include "opts.h"
#include "text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One command's state: configuration, key, and the cache once opened. */
typedef struct data_call {
    tcli_conf_t conf;
    tcli_buf_t key;
    tc_cache_t *cache;
} data_call_t;

/* Command line and configuration: everything that can be refused before Redis. */
static int prepare(const tcli_opts_t *o, data_call_t *d) {
    memset(d, 0, sizeof *d);
    int rc = tcli_key_operand(o->cmd, o->args[0], o->hex, &d->key);
    return rc == TCLI_EXIT_OK ? tcli_conf_load(o, &d->conf) : rc;
}

static int finish(data_call_t *d, int rc) {
    tc_close(d->cache);
    free(d->key.p);
    return rc;
}

/* ---- get ---- */

static int write_value(int hex, const void *p, size_t n) {
    if (hex) {
        tcli_put_hex(stdout, p, n);
        fputc('\n', stdout);
    } else {
        fwrite(p, 1, n, stdout);
        /* A terminal gets a newline so the prompt starts on its own line; a pipe or a
         * file gets exactly the value's bytes. */
        if (isatty(STDOUT_FILENO))
            fputc('\n', stdout);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tiercache-cli: get: writing the value: %s\n", strerror(errno));
        return TCLI_EXIT_ERROR;
    }
    return TCLI_EXIT_OK;
}

static tc_stats_t stats_of(tc_cache_t *c) {
    tc_stats_t st;
    memset(&st, 0, sizeof st);
    tc_stats(c, &st);
    return st;
}

/* A miss: really not there, a string tiercache refuses to serve (another format, an
 * impossible version), or Redis failed (tc_get hides that as a miss). */
static int explain_miss(data_call_t *d, const tc_stats_t *before) {
    tc_stats_t after = stats_of(d->cache);
    tc_error_t e = {0};
    int failed = after.l2_errors > before->l2_errors || after.breaker_state != 0;
    if (failed && !tc_last_error(&e))
        e.code = TC_EUNAVAILABLE;
    if (e.code == TC_EPROTO || after.versions_refused > before->versions_refused) {
        fputs("tiercache-cli: get: Redis holds a value under this key that tiercache "
              "refuses to serve (see 'tiercache-cli inspect KEY')\n",
              stderr);
        return TCLI_EXIT_NOTFOUND;
    }
    if (failed)
        return tcli_fail(e.code, "get: Redis did not answer");
    return TCLI_EXIT_NOTFOUND;
}

static int get_and_print(const tcli_opts_t *o, data_call_t *d) {
    tc_stats_t before = stats_of(d->cache);
    tc_ref_t *ref = NULL;
    int rc = tc_get(d->cache, d->key.p, d->key.len, &ref);
    if (rc == TC_ENOTFOUND)
        return explain_miss(d, &before);
    if (rc != TC_OK)
        return tcli_fail(rc, "get");
    rc = write_value(o->hex, tc_ref_data(ref), tc_ref_size(ref));
    tc_ref_release(ref);
    return rc;
}

int tcli_cmd_get(const tcli_opts_t *o) {
    data_call_t d;
    int rc = prepare(o, &d);
    if (rc == TCLI_EXIT_OK)
        rc = tcli_cache_open(&d.conf, &d.cache);
    if (rc == TCLI_EXIT_OK)
        rc = get_and_print(o, &d);
    return finish(&d, rc);
}

/* ---- set ---- */

static int read_stdin_value(int hex, size_t max_value, tcli_buf_t *out) {
    tcli_buf_t raw;
    /* Hex text takes two digits a byte, plus whatever whitespace separates them. */
    size_t cap = hex ? 3 * max_value + 4096 : max_value;
    switch (tcli_read_all(stdin, cap, &raw)) {
    case TCLI_READ_OK:
        break;
    case TCLI_READ_TOOBIG:
        return tcli_fail_detail(TC_ETOOBIG, "set: the value on stdin",
                                "longer than max_value_bytes (TIERCACHE_MAX_VALUE_BYTES)");
    case TCLI_READ_ERROR:
        fprintf(stderr, "tiercache-cli: set: reading stdin: %s\n", strerror(errno));
        return TCLI_EXIT_ERROR;
    }
    if (!hex) {
        *out = raw;
        return TCLI_EXIT_OK;
    }
    int bad = tcli_unhex((const char *)raw.p, raw.len, TCLI_HEX_SPACED, out);
    free(raw.p);
    return bad ? tcli_usage_error(TCLI_CMD_SET, "the value on stdin is not hex") : TCLI_EXIT_OK;
}

static int value_operand(const tcli_opts_t *o, const tcli_conf_t *c, tcli_buf_t *out) {
    const char *arg = o->args[1];
    size_t n = strlen(arg);
    if (strcmp(arg, "-") == 0)
        return read_stdin_value(o->hex, c->cfg.max_value_bytes, out);
    if (o->hex)
        return tcli_unhex(arg, n, TCLI_HEX_STRICT, out) == 0
                   ? TCLI_EXIT_OK
                   : tcli_usage_error(TCLI_CMD_SET, "VALUE '%s' is not hex", arg);
    /* n + 1: malloc(0) may return NULL, and an empty value is a value. */
    if (!(out->p = malloc(n + 1))) {
        fputs("tiercache-cli: out of memory\n", stderr);
        return TCLI_EXIT_ERROR;
    }
    memcpy(out->p, arg, n);
    out->len = n;
    return TCLI_EXIT_OK;
}

int tcli_cmd_set(const tcli_opts_t *o) {
    data_call_t d;
    tcli_buf_t value = {NULL, 0};
    int rc = prepare(o, &d);
    if (rc == TCLI_EXIT_OK)
        rc = value_operand(o, &d.conf, &value);
    if (rc == TCLI_EXIT_OK)
        rc = tcli_cache_open(&d.conf, &d.cache);
    if (rc == TCLI_EXIT_OK) {
        int trc = tc_set(d.cache, d.key.p, d.key.len, value.p, value.len, o->ttl_ms);
        rc = trc == TC_OK ? TCLI_EXIT_OK : tcli_fail(trc, "set");
    }
    free(value.p);
    return finish(&d, rc);
}

/* ---- del, invalidate ---- */

typedef int (*key_call_fn)(tc_cache_t *cache, const void *key, size_t klen);

static int run_key_call(const tcli_opts_t *o, key_call_fn call, const char *name) {
    data_call_t d;
    int rc = prepare(o, &d);
    if (rc == TCLI_EXIT_OK)
        rc = tcli_cache_open(&d.conf, &d.cache);
    if (rc == TCLI_EXIT_OK) {
        int trc = call(d.cache, d.key.p, d.key.len);
        rc = trc == TC_OK ? TCLI_EXIT_OK : tcli_fail(trc, name);
    }
    return finish(&d, rc);
}

int tcli_cmd_del(const tcli_opts_t *o) {
    return run_key_call(o, tc_del, "del");
}

int tcli_cmd_invalidate(const tcli_opts_t *o) {
    return run_key_call(o, tc_invalidate, "invalidate");
}
