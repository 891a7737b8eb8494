/*
 * json.h - a streaming JSON writer for --json and the sweep's .json file.
 *
 * The writer tracks nesting and commas itself, so report code reads as a list of fields
 * and cannot produce "a":1"b":2. Keys are given with each value inside objects and are
 * NULL inside arrays. Strings are escaped (quote, backslash, control characters);
 * non-finite doubles become null, because JSON has no NaN. Output is indented two spaces.
 */
#ifndef TCB_JSON_H
#define TCB_JSON_H

#include <stdint.h>
#include <stdio.h>

#define TCB_JSON_MAX_DEPTH 16

typedef struct tcb_json {
    FILE *f;
    int depth;
    int count[TCB_JSON_MAX_DEPTH]; /* values written so far at each level */
} tcb_json_t;

void tcb_json_init(tcb_json_t *j, FILE *f);
void tcb_json_obj_begin(tcb_json_t *j, const char *key);
void tcb_json_obj_end(tcb_json_t *j);
void tcb_json_arr_begin(tcb_json_t *j, const char *key);
void tcb_json_arr_end(tcb_json_t *j);
void tcb_json_str(tcb_json_t *j, const char *key, const char *v); /* v NULL: null */
void tcb_json_u64(tcb_json_t *j, const char *key, uint64_t v);
void tcb_json_dbl(tcb_json_t *j, const char *key, double v);
void tcb_json_bool(tcb_json_t *j, const char *key, int v);
void tcb_json_null(tcb_json_t *j, const char *key);
/* Write s as a JSON string literal (quotes included). */
void tcb_json_write_string(FILE *f, const char *s);

#endif
