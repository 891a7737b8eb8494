/*
 * fmt.c - human formatting for the tables (see fmt.h). Every function writes into the
 * caller's buffer and returns it, so several can appear in one printf.
 */
#include "fmt.h"

#include <stdio.h>

char *tcb_fmt_count(uint64_t v, char *buf, size_t cap) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n && o + 1 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0 && o + 2 < cap)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    if (cap)
        buf[o < cap ? o : cap - 1] = '\0';
    return buf;
}

char *tcb_fmt_bytes(double v, char *buf, size_t cap) {
    static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (v >= 1024.0 && i < 4) {
        v /= 1024.0;
        i++;
    }
    if (i == 0)
        snprintf(buf, cap, "%.0f B", v);
    else
        snprintf(buf, cap, "%.1f %s", v, names[i]);
    return buf;
}

char *tcb_fmt_pct(double pct, char *buf, size_t cap) {
    if (pct <= 0.0)
        snprintf(buf, cap, "0%%");
    else if (pct >= 100.0)
        snprintf(buf, cap, "100%%");
    else if (pct > 99.9) /* "100.0%" would hide the few that were not */
        snprintf(buf, cap, ">99.9%%");
    else if (pct >= 1.0)
        snprintf(buf, cap, "%.1f%%", pct);
    else if (pct >= 0.01)
        snprintf(buf, cap, "%.2f%%", pct);
    else if (pct >= 0.0001)
        snprintf(buf, cap, "%.4f%%", pct);
    else
        snprintf(buf, cap, "<0.0001%%");
    return buf;
}

char *tcb_fmt_ns(double ns, char *buf, size_t cap) {
    if (ns < 1e3)
        snprintf(buf, cap, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, cap, "%.1f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, cap, "%.2f ms", ns / 1e6);
    else
        snprintf(buf, cap, "%.2f s", ns / 1e9);
    return buf;
}
