/*
 * text.c - turning bytes into text a terminal can show, and text into bytes.
 *
 * Keys and values are binary (NUL, CRLF, anything), while a command line and a terminal
 * are text. Two representations cross that gap: hex (exact and reversible, for --hex) and
 * a quoted form with C escapes (readable, unambiguous: a space or quote inside a key can
 * never be mistaken for the end of a field in watch's lines). Nothing here prints raw
 * bytes except where the user asked for them (get without --hex).
 */
#include "text.h"

#include "opts.h"
#include "tiercache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int hex_digit(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int tcli_unhex(const char *s, size_t n, enum tcli_hex_space space, tcli_buf_t *out) {
    unsigned char *p = malloc(n / 2 + 1);
    size_t len = 0;
    int hi = -1;
    if (!p)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int d = hex_digit(c);
        if (d < 0 && space == TCLI_HEX_SPACED && is_space(c) && hi < 0)
            continue;
        if (d < 0) {
            free(p);
            return -1;
        }
        if (hi < 0) {
            hi = d;
        } else {
            p[len++] = (unsigned char)(hi << 4 | d);
            hi = -1;
        }
    }
    if (hi >= 0) { /* odd number of digits */
        free(p);
        return -1;
    }
    out->p = p;
    out->len = len;
    return 0;
}

enum tcli_read_result tcli_read_all(FILE *f, size_t cap, tcli_buf_t *out) {
    size_t size = 4096, len = 0;
    unsigned char *p = malloc(size);
    while (p) {
        if (len == size) {
            unsigned char *q = realloc(p, size * 2);
            if (!q)
                break;
            p = q;
            size *= 2;
        }
        len += fread(p + len, 1, size - len, f);
        if (len > cap) {
            free(p);
            return TCLI_READ_TOOBIG;
        }
        if (ferror(f)) {
            free(p);
            return TCLI_READ_ERROR;
        }
        if (feof(f)) {
            out->p = p;
            out->len = len;
            return TCLI_READ_OK;
        }
    }
    free(p);
    errno = ENOMEM;
    return TCLI_READ_ERROR;
}

int tcli_key_operand(enum tcli_cmd cmd, const char *arg, int hex, tcli_buf_t *out) {
    size_t n = strlen(arg);
    if (hex) {
        if (tcli_unhex(arg, n, TCLI_HEX_STRICT, out) != 0)
            return tcli_usage_error(cmd, "KEY '%s' is not hex (an even number of 0-9a-f)", arg);
    } else {
        out->p = malloc(n + 1);
        if (!out->p) {
            fputs("tiercache-cli: out of memory\n", stderr);
            return TCLI_EXIT_ERROR;
        }
        memcpy(out->p, arg, n + 1);
        out->len = n;
    }
    if (out->len == 0 || out->len > TC_MAX_KEY_LEN) {
        free(out->p);
        out->p = NULL;
        return tcli_usage_error(cmd, "KEY must be 1..%u bytes", TC_MAX_KEY_LEN);
    }
    return TCLI_EXIT_OK;
}

void tcli_put_hex(FILE *f, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", b[i]);
}

static void put_escaped_byte(FILE *f, unsigned char c) {
    switch (c) {
    case '\\':
        fputs("\\\\", f);
        return;
    case '"':
        fputs("\\\"", f);
        return;
    case '\n':
        fputs("\\n", f);
        return;
    case '\r':
        fputs("\\r", f);
        return;
    case '\t':
        fputs("\\t", f);
        return;
    default:
        if (c >= 0x20 && c < 0x7f)
            fputc(c, f);
        else
            fprintf(f, "\\x%02x", c);
    }
}

void tcli_put_quoted(FILE *f, const void *p, size_t n, size_t max) {
    const unsigned char *b = p;
    size_t shown = n < max ? n : max;
    fputc('"', f);
    for (size_t i = 0; i < shown; i++)
        put_escaped_byte(f, b[i]);
    fputc('"', f);
    if (shown < n)
        fputs("...", f);
}

void tcli_put_bytes(FILE *f, int hex, const void *p, size_t n, size_t max) {
    if (!hex) {
        tcli_put_quoted(f, p, n, max);
        return;
    }
    tcli_put_hex(f, p, n < max ? n : max);
    if (n > max)
        fputs("...", f);
}

void tcli_fmt_duration(uint64_t ms, char *out, size_t cap) {
    const uint64_t s = ms / 1000, m = s / 60, h = m / 60, d = h / 24;
    if (d > 0)
        snprintf(out, cap, "%llud%02lluh", (unsigned long long)d, (unsigned long long)(h % 24));
    else if (h > 0)
        snprintf(out, cap, "%lluh%02llum", (unsigned long long)h, (unsigned long long)(m % 60));
    else if (m > 0)
        snprintf(out, cap, "%llum%02llus", (unsigned long long)m, (unsigned long long)(s % 60));
    else if (s > 0)
        snprintf(out, cap, "%llu.%llus", (unsigned long long)s,
                 (unsigned long long)(ms % 1000 / 100));
    else
        snprintf(out, cap, "%llums", (unsigned long long)ms);
}

void tcli_fmt_utc(uint64_t unix_ms, char *out, size_t cap) {
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    char day[32];
    if (!gmtime_r(&t, &tm) || strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, cap, "(out of range)");
        return;
    }
    snprintf(out, cap, "%s.%03uZ", day, (unsigned)(unix_ms % 1000));
}

uint64_t tcli_now_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
