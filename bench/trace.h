/*
 * trace.h - reading access traces: text, one decimal key id per line, gzip or plain.
 *
 * zlib's gzopen reads both compressed and uncompressed files, so one reader serves
 * "trace.txt.gz" and "trace.txt". Lines are forgiving about framing (CRLF, surrounding
 * blanks, a missing final newline) and strict about content: a line that is not a
 * decimal number fitting 64 bits is counted as bad and skipped, never half-parsed, and
 * blank lines are counted apart. Callers print the counts so a surprising file is visible.
 */
#ifndef TCB_TRACE_H
#define TCB_TRACE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tcb_trace_stats {
    uint64_t lines; /* lines read, including blank and bad ones */
    uint64_t keys;  /* ids returned */
    uint64_t blank; /* empty or whitespace-only lines */
    uint64_t bad;   /* lines that are not a decimal uint64 (also overlong lines) */
} tcb_trace_stats_t;

/* Longest accepted line (a uint64 has 20 digits; generous for padding). */
#define TCB_TRACE_MAX_LINE 256

/* Classify one line (without or with its "\n"/"\r\n"). Returns 1 and *id for a key,
 * 0 for a blank line, -1 for a bad one. */
int tcb_trace_parse_line(const char *line, size_t len, uint64_t *id);

/* Read every id of path into a malloc'ed array (*ids, *n; free() it). Returns 0, or -1
 * with a message in err (cannot open, read error, corrupt gzip, no keys, no memory). */
int tcb_trace_load(const char *path, uint64_t **ids, size_t *n, tcb_trace_stats_t *st,
                   char *err, size_t errlen);

/* Sorted distinct ids of ids[0..n) into a new array (*out, free() it). Returns the count,
 * or 0 on allocation failure or n == 0. */
size_t tcb_trace_distinct(const uint64_t *ids, size_t n, uint64_t **out);

#endif
