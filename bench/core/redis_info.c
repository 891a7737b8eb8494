/*
 * redis_info.c - parsing INFO's "field:value" lines and subtracting two snapshots.
 *
 * INFO is line oriented ("# Section" headers, "name:value" fields, CRLF). commandstats
 * lines look like "cmdstat_get:calls=12,usec=34,...": only calls is kept. Unknown fields
 * are ignored, so newer servers with more fields parse the same.
 */
#include "redis_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int field_is(const char *line, size_t n, const char *name, const char **val) {
    size_t k = strlen(name);
    if (n > k && memcmp(line, name, k) == 0 && line[k] == ':') {
        *val = line + k + 1;
        return 1;
    }
    return 0;
}

static void add_cmdstat(tcb_info_t *out, const char *line, size_t n) {
    const char *colon = memchr(line, ':', n);
    const char *calls = colon ? strstr(colon, "calls=") : NULL;
    if (!colon || !calls || calls >= line + n || out->ncmds == TCB_INFO_MAX_CMDS)
        return;
    size_t nl = (size_t)(colon - line) - 8; /* after "cmdstat_" */
    tcb_cmdstat_t *c = &out->cmds[out->ncmds++];
    if (nl >= sizeof c->name)
        nl = sizeof c->name - 1;
    memcpy(c->name, line + 8, nl);
    c->name[nl] = '\0';
    c->calls = strtoull(calls + 6, NULL, 10);
}

/* Apply one "name:value" line. Returns 1 when it was a stats counter. */
static int parse_line(tcb_info_t *out, const char *line, size_t n) {
    const char *v;
    if (field_is(line, n, "total_commands_processed", &v))
        out->commands = strtoull(v, NULL, 10);
    else if (field_is(line, n, "total_net_input_bytes", &v))
        out->net_in = strtoull(v, NULL, 10);
    else if (field_is(line, n, "total_net_output_bytes", &v))
        out->net_out = strtoull(v, NULL, 10);
    else {
        if (n > 8 && memcmp(line, "cmdstat_", 8) == 0)
            add_cmdstat(out, line, n);
        else if (field_is(line, n, "redis_version", &v)) {
            size_t vl = (size_t)(line + n - v);
            snprintf(out->version, sizeof out->version, "%.*s", (int)vl, v);
        }
        return 0;
    }
    return 1;
}

int tcb_info_parse(const char *text, size_t len, tcb_info_t *out) {
    memset(out, 0, sizeof *out);
    if (!text)
        return -1;
    int found = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        size_t n = (size_t)(e - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n > 0 && p[0] != '#')
            found |= parse_line(out, p, n);
        p = nl ? nl + 1 : end;
    }
    return found ? 0 : -1;
}

int tcb_info_fetch(redisContext *c, tcb_info_t *out) {
    redisReply *r = redisCommand(c, "INFO server stats commandstats");
    int rc = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        rc = tcb_info_parse(r->str, r->len, out);
        /* request "*4\r\n$4\r\nINFO..." is ~50 bytes; the reply is a bulk string. */
        out->req_bytes = 50 + (uint64_t)r->len + 16;
    }
    freeReplyObject(r);
    return rc;
}

static uint64_t sub(uint64_t a, uint64_t b) {
    return a > b ? a - b : 0;
}

void tcb_info_delta(const tcb_info_t *before, const tcb_info_t *after, tcb_info_t *out) {
    tcb_info_t d = *after;
    d.commands = sub(sub(after->commands, before->commands), 1);
    /* Split the INFO's own traffic: ~50 bytes in, the rest out. */
    d.net_in = sub(sub(after->net_in, before->net_in), 50);
    d.net_out = sub(sub(after->net_out, before->net_out), sub(before->req_bytes, 50));
    for (size_t i = 0; i < d.ncmds; i++) {
        uint64_t prev = 0;
        for (size_t j = 0; j < before->ncmds; j++)
            if (strcmp(before->cmds[j].name, d.cmds[i].name) == 0)
                prev = before->cmds[j].calls;
        d.cmds[i].calls = sub(d.cmds[i].calls, prev);
        if (strcmp(d.cmds[i].name, "info") == 0)
            d.cmds[i].calls = sub(d.cmds[i].calls, 1);
    }
    *out = d;
}

void tcb_info_add(tcb_info_t *dst, const tcb_info_t *src) {
    dst->commands += src->commands;
    dst->net_in += src->net_in;
    dst->net_out += src->net_out;
    for (size_t i = 0; i < src->ncmds; i++) {
        size_t j = 0;
        while (j < dst->ncmds && strcmp(dst->cmds[j].name, src->cmds[i].name) != 0)
            j++;
        if (j == dst->ncmds) {
            if (dst->ncmds == TCB_INFO_MAX_CMDS)
                continue;
            dst->cmds[dst->ncmds++] = src->cmds[i];
        } else {
            dst->cmds[j].calls += src->cmds[i].calls;
        }
    }
    if (!dst->version[0])
        memcpy(dst->version, src->version, sizeof dst->version);
}
