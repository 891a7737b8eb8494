/*
 * inspect.c - what Redis really holds for a key, decoded.
 *
 * The library turns anything it cannot trust into a miss (another format, an impossible
 * version), which is right for a service and useless for the person asking why a key
 * never hits. inspect reads <prefix>k:KEY with its own hiredis connection, beside the
 * library, and prints tiercache's value header (src/valfmt.h) field by field:
 *
 *   redis key:   "tc:k:user:42"
 *   format:      tiercache value v1
 *   version:     1767225600123456
 *   flags:       0x06 (the expiry field is the key's own)
 *   load class:  0 (unknown)
 *   fresh until: none (fresh until Redis's TTL)
 *   expires by:  1767225659997 (2026-01-01 00:00:59.997 UTC, Redis's clock)
 *   pttl:        59874 ms (59.8s)
 *   value:       5 bytes
 *   preview:     "hello"
 *
 * One pipelined round trip asks for PTTL, STRLEN and the first bytes (GETRANGE): never
 * the whole value, which may be megabytes, only the header and a preview. A key
 * that holds something else (not a string, or a string without the header) is shown for
 * what it is, with its own exit code, so a script can tell "missing" from "foreign".
 * With plain_keys (docs/consistency.md "Any writer") the key is the Redis key and the string
 * has no header: it is shown as the plain value it is.
 */
#include "cli.h"
#include "conf.h"
#include "conn.h" /* tc__conn_error_code */
#include "opts.h"
#include "text.h"
#include "valfmt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of the value shown after the header. */
#define PREVIEW_LEN 64

enum inspect_reply {
    R_PTTL,
    R_STRLEN,
    R_HEAD,
    R_COUNT,
};

/* What one round trip learnt about the key. */
typedef struct stored {
    long long pttl;           /* -2: no such key; -1: no expiry */
    int wrong_type;           /* the key holds a list, hash...: not a string */
    long long length;         /* STRLEN */
    redisReply *head;         /* GETRANGE 0 .. header + preview; NULL unless a string */
    redisReply *any[R_COUNT]; /* every reply, freed together */
} stored_t;

static void field(const char *label, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void field(const char *label, const char *fmt, ...) {
    va_list ap;
    printf("%-13s", label);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

static void stored_free(stored_t *s) {
    for (int i = 0; i < R_COUNT; i++)
        freeReplyObject(s->any[i]);
}

/* ---- reading ---- */

/* PTTL, STRLEN and GETRANGE: the commands the library's own ACL already grants
 * (docs/operations.md "Redis ACL"), so inspect works as the application's Redis user. */
static void append_commands(redisContext *rc, const tcli_buf_t *rkey) {
    const char *argv[4] = {"PTTL", (const char *)rkey->p, "0", NULL};
    size_t lens[4] = {4, rkey->len, 1, 0};
    char end[24];
    redisAppendCommandArgv(rc, 2, argv, lens);
    argv[0] = "STRLEN";
    lens[0] = 6;
    redisAppendCommandArgv(rc, 2, argv, lens);
    snprintf(end, sizeof end, "%u", TC__VAL_HDR_LEN + PREVIEW_LEN - 1);
    argv[0] = "GETRANGE";
    lens[0] = 8;
    argv[3] = end;
    lens[3] = strlen(end);
    redisAppendCommandArgv(rc, 4, argv, lens);
}

static int is_wrongtype(const redisReply *r) {
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0;
}

/* Any other error (NOPERM from an ACL, say) is a failure, not a foreign value. */
static int take_replies(stored_t *s) {
    redisReply *p = s->any[R_PTTL], *len = s->any[R_STRLEN], *head = s->any[R_HEAD];
    if (p->type != REDIS_REPLY_INTEGER)
        return tcli_fail_detail(p->type == REDIS_REPLY_ERROR ? TC_EREDIS : TC_EPROTO,
                                "inspect: PTTL", p->type == REDIS_REPLY_ERROR ? p->str : NULL);
    s->pttl = p->integer;
    if (s->pttl == -2)
        return TCLI_EXIT_OK;
    if (is_wrongtype(len) && is_wrongtype(head)) {
        s->wrong_type = 1;
        return TCLI_EXIT_OK;
    }
    if (len->type == REDIS_REPLY_ERROR || head->type == REDIS_REPLY_ERROR)
        return tcli_fail_detail(TC_EREDIS, "inspect",
                                len->type == REDIS_REPLY_ERROR ? len->str : head->str);
    if (len->type != REDIS_REPLY_INTEGER || head->type != REDIS_REPLY_STRING)
        return tcli_fail_detail(TC_EPROTO, "inspect", "unexpected reply to STRLEN or GETRANGE");
    s->length = len->integer;
    s->head = head;
    return TCLI_EXIT_OK;
}

static int read_stored(redisContext *rc, const tcli_buf_t *rkey, stored_t *s) {
    memset(s, 0, sizeof *s);
    append_commands(rc, rkey);
    for (int i = 0; i < R_COUNT; i++) {
        void *r = NULL;
        errno = 0;
        if (redisGetReply(rc, &r) != REDIS_OK || !r)
            return tcli_fail_detail(tc__conn_error_code(rc, errno), "inspect", rc->errstr);
        s->any[i] = r;
    }
    return take_replies(s);
}

/* ---- printing ---- */

static void print_flags(unsigned flags) {
    field("flags:", "0x%02x", flags);
    if (flags & TC__VAL_FLAG_ABSENT)
        fputs(" (absent: a cached not-found)", stdout);
    if (flags & TC__VAL_FLAG_KEY_EXPIRY)
        fputs(" (the expiry field is the key's own)", stdout);
    else if (flags & TC__VAL_FLAG_BOUNDED)
        fputs(" (the expiry field is within the key's life)", stdout);
    if (flags & ~(TC__VAL_FLAG_ABSENT | TC__VAL_FLAG_BOUNDED | TC__VAL_FLAG_KEY_EXPIRY))
        fputs(" (unknown bits set)", stdout);
    fputc('\n', stdout);
}

static void print_load_class(unsigned c) {
    if (c == 0)
        field("load class:", "0 (unknown)\n");
    else
        field("load class:", "%u (the load took about %lu ms)\n", c,
              (unsigned long)tc__val_load_ms(c));
}

static void print_fresh_until(uint64_t expiry_ms) {
    char when[48], rel[32];
    if (expiry_ms == 0) {
        field("fresh until:", "none (fresh until Redis's TTL)\n");
        return;
    }
    uint64_t now = tcli_now_unix_ms();
    tcli_fmt_utc(expiry_ms, when, sizeof when);
    if (expiry_ms > now) {
        tcli_fmt_duration(expiry_ms - now, rel, sizeof rel);
        field("fresh until:", "%llu (%s, in %s)\n", (unsigned long long)expiry_ms, when, rel);
    } else {
        tcli_fmt_duration(now - expiry_ms, rel, sizeof rel);
        field("fresh until:", "%llu (%s, %s ago: stale)\n", (unsigned long long)expiry_ms, when,
              rel);
    }
}

/* What readers keep an L1 copy by (valfmt.h expires_by_ms, Redis's clock). */
static void print_expires_by(uint64_t by_ms) {
    char when[48];
    if (by_ms == TC__VAL_UNKNOWN) {
        field("expires by:", "not in the header (an older writer: readers ask PTTL)\n");
        return;
    }
    if (by_ms == TC__VAL_NEVER) {
        field("expires by:", "never (no expiry)\n");
        return;
    }
    tcli_fmt_utc(by_ms, when, sizeof when);
    field("expires by:", "%llu (%s, Redis's clock)\n", (unsigned long long)by_ms, when);
}

static void print_pttl(long long pttl) {
    char d[32];
    if (pttl < 0) {
        field("pttl:", "none (no expiry)\n");
        return;
    }
    tcli_fmt_duration((uint64_t)pttl, d, sizeof d);
    field("pttl:", "%lld ms (%s)\n", pttl, d);
}

static void print_version(uint64_t v) {
    /* The library refuses these (docs/consistency.md "Versions"): say so, it explains a
     * miss. */
    const int impossible = v == 0 || v >= (uint64_t)1 << 53;
    field("version:", "%llu%s\n", (unsigned long long)v,
          impossible ? " (impossible: tiercache refuses this value)" : "");
}

static void print_preview(int hex, const unsigned char *p, size_t shown, long long total) {
    field("preview:", "%s", "");
    tcli_put_bytes(stdout, hex, p, shown, PREVIEW_LEN);
    if ((long long)shown < total)
        fputs("...", stdout);
    fputc('\n', stdout);
}

static int print_value(int hex, const stored_t *s, const tc__val_t *v) {
    field("format:", "tiercache value v%u\n", TC__VAL_FORMAT);
    print_version(v->version);
    print_flags(v->flags);
    print_load_class(v->load_class);
    print_fresh_until(v->logical_expiry_ms);
    print_expires_by(v->expires_by_ms);
    print_pttl(s->pttl);
    field("value:", "%lld bytes\n", s->length - (long long)TC__VAL_HDR_LEN);
    print_preview(hex, v->data, v->len, s->length - (long long)TC__VAL_HDR_LEN);
    return TCLI_EXIT_OK;
}

static int print_foreign(int hex, const stored_t *s) {
    if (s->wrong_type || !s->head) {
        field("format:", "not a tiercache value: not a string (a list, hash, set...)\n");
        print_pttl(s->pttl);
        return TCLI_EXIT_FOREIGN;
    }
    field("format:", "not a tiercache value (no %u-byte header starting c7 01)\n",
          TC__VAL_HDR_LEN);
    print_pttl(s->pttl);
    field("length:", "%lld bytes\n", s->length);
    print_preview(hex, (const unsigned char *)s->head->str, s->head->len, s->length);
    return TCLI_EXIT_FOREIGN;
}

/* plain_keys: ordinary strings, stored as they are (docs/consistency.md "Any writer"). */
static int print_plain(int hex, const stored_t *s) {
    if (s->wrong_type || !s->head) {
        field("format:", "not a plain string (a list, hash, set...): not cacheable\n");
        print_pttl(s->pttl);
        return TCLI_EXIT_FOREIGN;
    }
    field("format:", "plain string (plain_keys: no tiercache header, no version)\n");
    print_pttl(s->pttl);
    field("value:", "%lld bytes\n", s->length);
    print_preview(hex, (const unsigned char *)s->head->str, s->head->len, s->length);
    return TCLI_EXIT_OK;
}

static int report(int hex, int plain, const tcli_buf_t *rkey, const stored_t *s) {
    if (s->pttl == -2) {
        fputs("tiercache-cli: inspect: no such key: ", stderr);
        tcli_put_bytes(stderr, hex, rkey->p, rkey->len, 256);
        fputc('\n', stderr);
        return TCLI_EXIT_NOTFOUND;
    }
    field("redis key:", "%s", "");
    tcli_put_bytes(stdout, hex, rkey->p, rkey->len, 256);
    fputc('\n', stdout);
    if (plain)
        return print_plain(hex, s);
    tc__val_t v;
    if (!s->head || tc__val_decode(s->head->str, s->head->len, &v) != 0)
        return print_foreign(hex, s);
    return print_value(hex, s, &v);
}

/* <prefix>"k:"<key>, as the library names it (docs/configuration.md); a plain
 * key is its own name. */
static int redis_key(const tc_config_t *cfg, const tcli_buf_t *key, tcli_buf_t *out) {
    const char *prefix = cfg->plain_keys ? "" : cfg->key_prefix;
    const char *data = cfg->plain_keys ? "" : "k:";
    size_t plen = strlen(prefix), dlen = strlen(data);
    out->len = plen + dlen + key->len;
    if (!(out->p = malloc(out->len))) {
        fputs("tiercache-cli: out of memory\n", stderr);
        return TCLI_EXIT_ERROR;
    }
    memcpy(out->p, prefix, plen);
    memcpy(out->p + plen, data, dlen);
    memcpy(out->p + plen + dlen, key->p, key->len);
    return TCLI_EXIT_OK;
}

int tcli_cmd_inspect(const tcli_opts_t *o) {
    tcli_conf_t conf;
    tcli_buf_t key = {NULL, 0}, rkey = {NULL, 0};
    redisContext *rc = NULL;
    stored_t s = {.any = {NULL}};
    int ec = tcli_key_operand(o->cmd, o->args[0], o->hex, &key);
    if (ec == TCLI_EXIT_OK)
        ec = tcli_conf_load(o, &conf);
    if (ec == TCLI_EXIT_OK)
        ec = redis_key(&conf.cfg, &key, &rkey);
    if (ec == TCLI_EXIT_OK)
        ec = tcli_raw_open(&conf, &rc);
    if (ec == TCLI_EXIT_OK)
        ec = read_stored(rc, &rkey, &s);
    if (ec == TCLI_EXIT_OK)
        ec = report(o->hex, conf.cfg.plain_keys, &rkey, &s);
    fflush(stdout);
    stored_free(&s);
    if (rc)
        redisFree(rc);
    free(rkey.p);
    free(key.p);
    return ec;
}
