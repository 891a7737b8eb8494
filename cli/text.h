/*
 * text.h - bytes in and out of a terminal: hex, quoted previews, stdin, times.
 */
#ifndef TCLI_TEXT_H
#define TCLI_TEXT_H

#include "cli.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* An owned byte string (free p). */
typedef struct tcli_buf {
    unsigned char *p;
    size_t len;
} tcli_buf_t;

enum tcli_hex_space {
    TCLI_HEX_STRICT = 0, /* an operand: hex digits only */
    TCLI_HEX_SPACED = 1, /* stdin: whitespace between digits is ignored */
};

/* Hex text -> bytes. 0, or -1 when s holds anything else or an odd number of digits. */
int tcli_unhex(const char *s, size_t n, enum tcli_hex_space space, tcli_buf_t *out);

enum tcli_read_result {
    TCLI_READ_OK = 0,
    TCLI_READ_TOOBIG, /* more than cap bytes */
    TCLI_READ_ERROR,  /* errno says why */
};
/* All of f, at most cap bytes, into out. */
enum tcli_read_result tcli_read_all(FILE *f, size_t cap, tcli_buf_t *out);

/* A key operand: 1..TC_MAX_KEY_LEN bytes, hex when `hex`. Returns an enum tcli_exit
 * (usage error printed for `cmd`). */
int tcli_key_operand(enum tcli_cmd cmd, const char *arg, int hex, tcli_buf_t *out);

/* Lowercase hex of p[0..n). */
void tcli_put_hex(FILE *f, const void *p, size_t n);
/* "..." with C escapes (\\ \" \n \r \t \xNN) for everything but printable ASCII; at most
 * max bytes of p, then "..." after the closing quote when there was more. */
void tcli_put_quoted(FILE *f, const void *p, size_t n, size_t max);
/* tcli_put_hex when hex, else tcli_put_quoted. */
void tcli_put_bytes(FILE *f, int hex, const void *p, size_t n, size_t max);

/* "1d02h", "3m05s", "59.2s", "250ms". */
void tcli_fmt_duration(uint64_t ms, char *out, size_t cap);
/* Unix ms as "2026-01-31T12:00:00.123Z". */
void tcli_fmt_utc(uint64_t unix_ms, char *out, size_t cap);
/* The system clock in unix ms. */
uint64_t tcli_now_unix_ms(void);

#endif
