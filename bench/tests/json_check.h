/*
 * json_check.h - a strict little JSON validator for the tests (RFC 8259 grammar: objects,
 * arrays, strings with escapes, numbers, true/false/null; no trailing commas, no NaN).
 * Header-only so each test binary that needs it just includes it.
 */
#ifndef TCB_JSON_CHECK_H
#define TCB_JSON_CHECK_H

#include <ctype.h>
#include <string.h>

typedef struct jc {
    const char *p;
    int depth;
} jc_t;

static int jc_value(jc_t *c);

static void jc_ws(jc_t *c) {
    while (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')
        c->p++;
}

static int jc_string(jc_t *c) {
    if (*c->p != '"')
        return -1;
    for (c->p++; *c->p != '"'; c->p++) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch < 0x20)
            return -1;
        if (ch == '\\') {
            c->p++;
            if (*c->p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)c->p[i]))
                        return -1;
                c->p += 4;
            } else if (!strchr("\"\\/bfnrt", *c->p) || !*c->p) {
                return -1;
            }
        }
    }
    c->p++;
    return 0;
}

static int jc_digits(jc_t *c) {
    if (!isdigit((unsigned char)*c->p))
        return -1;
    while (isdigit((unsigned char)*c->p))
        c->p++;
    return 0;
}

static int jc_number(jc_t *c) {
    if (*c->p == '-')
        c->p++;
    if (*c->p == '0')
        c->p++;
    else if (jc_digits(c))
        return -1;
    if (*c->p == '.') {
        c->p++;
        if (jc_digits(c))
            return -1;
    }
    if (*c->p == 'e' || *c->p == 'E') {
        c->p++;
        if (*c->p == '+' || *c->p == '-')
            c->p++;
        if (jc_digits(c))
            return -1;
    }
    return 0;
}

static int jc_container(jc_t *c, char close, int is_obj) {
    c->p++;
    if (++c->depth > 64)
        return -1;
    jc_ws(c);
    if (*c->p == close) {
        c->p++;
        c->depth--;
        return 0;
    }
    for (;;) {
        jc_ws(c);
        if (is_obj) {
            if (jc_string(c))
                return -1;
            jc_ws(c);
            if (*c->p++ != ':')
                return -1;
        }
        if (jc_value(c))
            return -1;
        jc_ws(c);
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p++ != close)
            return -1;
        c->depth--;
        return 0;
    }
}

static int jc_value(jc_t *c) {
    jc_ws(c);
    switch (*c->p) {
    case '{':
        return jc_container(c, '}', 1);
    case '[':
        return jc_container(c, ']', 0);
    case '"':
        return jc_string(c);
    case 't':
        return strncmp(c->p, "true", 4) ? -1 : (c->p += 4, 0);
    case 'f':
        return strncmp(c->p, "false", 5) ? -1 : (c->p += 5, 0);
    case 'n':
        return strncmp(c->p, "null", 4) ? -1 : (c->p += 4, 0);
    default:
        return jc_number(c);
    }
}

/* 0 when text is exactly one valid JSON value (surrounding whitespace allowed). */
static inline int json_check(const char *text) {
    jc_t c = {text, 0};
    if (jc_value(&c))
        return -1;
    jc_ws(&c);
    return *c.p ? -1 : 0;
}

#endif
