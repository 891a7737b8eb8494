/*
 * peer_line.c - the peers' line framing and hex codec (peer_line.h).
 */
#include "peer_line.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static char outbuf[2 * PEER_MAX_BYTES + 1];

void peer_reply(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static int nibble(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long peer_unhex(const char *hex, unsigned char *out) {
    if (!hex)
        return -1;
    if (strcmp(hex, "-") == 0)
        return 0;
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > PEER_MAX_BYTES)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

const char *peer_hex(const void *buf, size_t len) {
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = buf;
    if (len == 0)
        return "-";
    if (len > PEER_MAX_BYTES)
        len = PEER_MAX_BYTES;
    for (size_t i = 0; i < len; i++) {
        outbuf[2 * i] = digits[p[i] >> 4];
        outbuf[2 * i + 1] = digits[p[i] & 15];
    }
    outbuf[2 * len] = '\0';
    return outbuf;
}
