/*
 * trace.h - reading access traces: text, one key per line, gzip or plain.
 *
 * zlib's gzopen reads both compressed and uncompressed files, so one reader serves
 * "trace.txt.gz" and "trace.txt". Lines are forgiving about framing (CRLF, surrounding
 * blanks, a missing final newline), and any key string is accepted: a line that is a plain
 * decimal number ("0", "4711", no sign, no leading zero, fitting 64 bits) is that id, as
 * in the traces of ../shared/traces; any other line ("user:42", "/img/a.png", "007") is
 * hashed into an id with 64-bit FNV-1a, top bit set, so a hashed key never lands on a
 * decimal id below 2^63 and two different strings share an id only by a 64-bit accident.
 * Blank lines and overlong lines are skipped and counted; callers print the counts, so a
 * surprising file is visible.
 */
#ifndef TCB_TRACE_H
#define TCB_TRACE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tcb_trace_stats {
    uint64_t lines;    /* lines read, including skipped ones */
    uint64_t keys;     /* ids returned */
    uint64_t hashed;   /* of those, keys that were not a plain decimal id */
    uint64_t blank;    /* skipped: empty or whitespace-only */
    uint64_t too_long; /* skipped: longer than TCB_TRACE_MAX_LINE - 2 bytes */
} tcb_trace_stats_t;

/* Longest accepted line: TCB_TRACE_MAX_LINE - 2 bytes before its newline. */
#define TCB_TRACE_MAX_LINE 4096

typedef enum tcb_trace_line {
    TCB_TRACE_BLANK,  /* nothing but blanks: skipped */
    TCB_TRACE_ID,     /* a plain decimal id */
    TCB_TRACE_HASHED, /* any other key string, hashed into an id */
} tcb_trace_line_t;

/* Classify one line (without or with its "\n"/"\r\n"); *id is set unless it is blank. */
tcb_trace_line_t tcb_trace_parse_line(const char *line, size_t len, uint64_t *id);

/* The id of a key string that is not a plain decimal (see above). */
uint64_t tcb_trace_hash_key(const char *key, size_t len);

/* Read every id of path into a malloc'ed array (*ids, *n; free() it). Returns 0, or -1
 * with a message in err (cannot open, read error, corrupt gzip, no keys, no memory). */
int tcb_trace_load(const char *path, uint64_t **ids, size_t *n, tcb_trace_stats_t *st,
                   char *err, size_t errlen);

/* One line for the user when lines were skipped ("skipped 3 of 1000 lines: 2 blank, 1
 * longer than 4094 bytes ..."), "" when none were. Returns buf. */
char *tcb_trace_skipped(const tcb_trace_stats_t *st, char *buf, size_t cap);

/* Sorted distinct ids of ids[0..n) into a new array (*out, free() it). Returns the count,
 * or 0 on allocation failure or n == 0. */
size_t tcb_trace_distinct(const uint64_t *ids, size_t n, uint64_t **out);

#endif
