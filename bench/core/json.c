/*
 * json.c - the streaming writer behind json.h.
 *
 * Before each value: a comma if the level already has one, a newline and indentation,
 * then "key": when inside an object. Closing a container puts its bracket on its own line
 * unless it is empty ({} / []). Nesting deeper than TCB_JSON_MAX_DEPTH is a programming
 * error in report code; it is clamped rather than trusted, so the output stays in bounds.
 */
#include "json.h"

#include <math.h>

void tcb_json_init(tcb_json_t *j, FILE *f) {
    j->f = f;
    j->depth = 0;
    j->count[0] = 0;
}

static void indent(tcb_json_t *j) {
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->f);
}

void tcb_json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Separator, indentation and key for the next value at the current level. */
static void value_prefix(tcb_json_t *j, const char *key) {
    if (j->depth > 0) {
        if (j->count[j->depth] > 0)
            fputc(',', j->f);
        fputc('\n', j->f);
        indent(j);
    }
    j->count[j->depth]++;
    if (key) {
        tcb_json_write_string(j->f, key);
        fputs(": ", j->f);
    }
}

static void open_container(tcb_json_t *j, const char *key, char c) {
    value_prefix(j, key);
    fputc(c, j->f);
    if (j->depth < TCB_JSON_MAX_DEPTH - 1)
        j->depth++;
    j->count[j->depth] = 0;
}

static void close_container(tcb_json_t *j, char c) {
    int had = j->count[j->depth] > 0;
    if (j->depth > 0)
        j->depth--;
    if (had) {
        fputc('\n', j->f);
        indent(j);
    }
    fputc(c, j->f);
    if (j->depth == 0)
        fputc('\n', j->f);
}

void tcb_json_obj_begin(tcb_json_t *j, const char *key) {
    open_container(j, key, '{');
}

void tcb_json_obj_end(tcb_json_t *j) {
    close_container(j, '}');
}

void tcb_json_arr_begin(tcb_json_t *j, const char *key) {
    open_container(j, key, '[');
}

void tcb_json_arr_end(tcb_json_t *j) {
    close_container(j, ']');
}

void tcb_json_str(tcb_json_t *j, const char *key, const char *v) {
    value_prefix(j, key);
    if (v)
        tcb_json_write_string(j->f, v);
    else
        fputs("null", j->f);
}

void tcb_json_u64(tcb_json_t *j, const char *key, uint64_t v) {
    value_prefix(j, key);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void tcb_json_dbl(tcb_json_t *j, const char *key, double v) {
    value_prefix(j, key);
    if (isfinite(v))
        fprintf(j->f, "%.6g", v);
    else
        fputs("null", j->f);
}

void tcb_json_bool(tcb_json_t *j, const char *key, int v) {
    value_prefix(j, key);
    fputs(v ? "true" : "false", j->f);
}

void tcb_json_null(tcb_json_t *j, const char *key) {
    value_prefix(j, key);
    fputs("null", j->f);
}
