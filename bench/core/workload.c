/*
 * workload.c - key and value-size generators.
 *
 * Zipf uses Hormann & Derflinger's rejection-inversion (ACM TOMACS 6(3), 1996), the method
 * Apache Commons and YCSB-style tools use for large N: invert the integral H of the
 * continuous density x^-s, round to the nearest rank, and accept unless the rounding landed
 * in the thin sliver where the discrete and continuous masses differ. It needs no table
 * (1,000,000 keys cost nothing to set up), is exact for any s >= 0, and accepts on the
 * first try almost always. The helper functions keep log1p/expm1 accuracy when s is near 1,
 * where the textbook formula divides by (1 - s).
 */
#include "workload.h"

#include "units.h" /* tc__parse_bytes: the library's byte syntax (src/units.h) */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* log1p(x)/x, continuous at 0. */
static double helper1(double x) {
    if (fabs(x) > 1e-8)
        return log1p(x) / x;
    return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

/* expm1(x)/x, continuous at 0. */
static double helper2(double x) {
    if (fabs(x) > 1e-8)
        return expm1(x) / x;
    return 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}

/* H(x) = integral of t^-s, shifted so that it is well defined for s == 1. */
static double zipf_hint(const tcb_zipf_t *z, double x) {
    double lx = log(x);
    return helper2((1.0 - z->s) * lx) * lx;
}

static double zipf_h(const tcb_zipf_t *z, double x) {
    return exp(-z->s * log(x));
}

static double zipf_hint_inv(const tcb_zipf_t *z, double x) {
    double t = x * (1.0 - z->s);
    if (t < -1.0)
        t = -1.0; /* rounding guard: the exact value is never below -1 */
    return exp(helper1(t) * x);
}

int tcb_zipf_init(tcb_zipf_t *z, uint64_t n, double s) {
    if (!z || n == 0 || !(s >= 0.0 && s <= 20.0))
        return -1;
    z->n = n;
    z->s = s;
    z->h_x1 = zipf_hint(z, 1.5) - 1.0;
    z->h_n = zipf_hint(z, (double)n + 0.5);
    z->squeeze = 2.0 - zipf_hint_inv(z, zipf_hint(z, 2.5) - zipf_h(z, 2.0));
    return 0;
}

uint64_t tcb_zipf_next(const tcb_zipf_t *z, tcb_rng_t *r) {
    for (;;) {
        double u = z->h_n + tcb_rng_double(r) * (z->h_x1 - z->h_n);
        double x = zipf_hint_inv(z, u);
        double kd = floor(x + 0.5);
        uint64_t k = kd < 1.0 ? 1 : (kd > (double)z->n ? z->n : (uint64_t)kd);
        if ((double)k - x <= z->squeeze ||
            u >= zipf_hint(z, (double)k + 0.5) - zipf_h(z, (double)k))
            return k;
    }
}

static void workload_clear(tcb_workload_t *w, tcb_wl_kind_t kind, uint64_t nkeys) {
    memset(w, 0, sizeof *w);
    w->kind = kind;
    w->nkeys = nkeys;
}

int tcb_workload_zipf(tcb_workload_t *w, uint64_t nkeys, double s) {
    if (!w || nkeys == 0)
        return -1;
    workload_clear(w, TCB_WL_ZIPF, nkeys);
    return tcb_zipf_init(&w->zipf, nkeys, s);
}

int tcb_workload_uniform(tcb_workload_t *w, uint64_t nkeys) {
    if (!w || nkeys == 0)
        return -1;
    workload_clear(w, TCB_WL_UNIFORM, nkeys);
    return 0;
}

int tcb_workload_hotset(tcb_workload_t *w, uint64_t nkeys, double hot_frac, double hot_share) {
    if (!w || nkeys == 0 || !(hot_frac > 0.0 && hot_frac <= 1.0) ||
        !(hot_share >= 0.0 && hot_share <= 1.0))
        return -1;
    workload_clear(w, TCB_WL_HOTSET, nkeys);
    w->hot_share = hot_share;
    w->hot_n = (uint64_t)ceil(hot_frac * (double)nkeys);
    if (w->hot_n < 1)
        w->hot_n = 1;
    if (w->hot_n > nkeys)
        w->hot_n = nkeys;
    return 0;
}

int tcb_workload_trace(tcb_workload_t *w, const uint64_t *ids, size_t len, uint64_t distinct) {
    if (!w || !ids || len == 0 || distinct == 0)
        return -1;
    workload_clear(w, TCB_WL_TRACE, distinct);
    w->trace = ids;
    w->trace_len = len;
    return 0;
}

void tcb_cursor_init(tcb_cursor_t *c, const tcb_workload_t *w, uint64_t seed, unsigned tid,
                     unsigned nthreads) {
    tcb_rng_seed(&c->rng, seed, tid);
    c->trace_pos = 0;
    if (w->kind == TCB_WL_TRACE && nthreads > 0)
        c->trace_pos = (size_t)((unsigned __int128)w->trace_len * tid / nthreads);
}

static uint64_t hotset_next(const tcb_workload_t *w, tcb_cursor_t *c, uint64_t epoch) {
    if (tcb_rng_double(&c->rng) < w->hot_share) {
        uint64_t base = (uint64_t)(((unsigned __int128)epoch * w->hot_n) % w->nkeys);
        return (base + tcb_rng_below(&c->rng, w->hot_n)) % w->nkeys;
    }
    return tcb_rng_below(&c->rng, w->nkeys);
}

uint64_t tcb_workload_next(const tcb_workload_t *w, tcb_cursor_t *c, uint64_t epoch) {
    switch (w->kind) {
    case TCB_WL_ZIPF:
        return tcb_zipf_next(&w->zipf, &c->rng) - 1;
    case TCB_WL_UNIFORM:
        return tcb_rng_below(&c->rng, w->nkeys);
    case TCB_WL_HOTSET:
        return hotset_next(w, c, epoch);
    case TCB_WL_TRACE:
        break;
    }
    uint64_t id = w->trace[c->trace_pos];
    if (++c->trace_pos == w->trace_len)
        c->trace_pos = 0;
    return id;
}

const char *tcb_workload_name(const tcb_workload_t *w, char *buf, size_t cap) {
    switch (w->kind) {
    case TCB_WL_ZIPF:
        snprintf(buf, cap, "zipf(%.3g)", w->zipf.s);
        break;
    case TCB_WL_UNIFORM:
        snprintf(buf, cap, "uniform");
        break;
    case TCB_WL_HOTSET:
        snprintf(buf, cap, "hotset(%.3g%% of keys take %.3g%%)",
                 100.0 * (double)w->hot_n / (double)w->nkeys, 100.0 * w->hot_share);
        break;
    case TCB_WL_TRACE:
        snprintf(buf, cap, "trace");
        break;
    }
    return buf;
}

void tcb_key_format(uint64_t id, char out[TCB_KEY_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    out[0] = 'k';
    for (int i = 0; i < 16; i++)
        out[1 + i] = hex[(id >> (60 - 4 * i)) & 0xf];
    out[TCB_KEY_LEN] = '\0';
}

int tcb_key_parse(const void *key, size_t klen, uint64_t *id) {
    const unsigned char *k = key;
    if (!k || !id || klen != TCB_KEY_LEN || k[0] != 'k')
        return -1;
    uint64_t v = 0;
    for (size_t i = 1; i < klen; i++) {
        unsigned c = k[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return -1;
        v = (v << 4) | d;
    }
    *id = v;
    return 0;
}

/* ---- value sizes ---- */

/* One size of a --value-size spec (len bytes at s): the library's byte syntax ("512",
 * "1KiB", "2MB"), at most TCB_VSIZE_MAX. */
static int parse_size(const char *s, size_t len, uint32_t *out) {
    char buf[64];
    uint64_t v;
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (tc__parse_bytes(buf, &v) != 0 || v > TCB_VSIZE_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int tcb_vsize_parse(const char *s, tcb_vsize_t *out) {
    if (!s || !out)
        return -1;
    tcb_vsize_t v = {TCB_VS_FIXED, 0, 0};
    const char *dash = strchr(s, '-');
    if (strncmp(s, "exp:", 4) == 0) {
        v.kind = TCB_VS_EXP;
        if (parse_size(s + 4, strlen(s + 4), &v.a) != 0 || v.a == 0 || v.a > TCB_VSIZE_MAX / 16)
            return -1;
        v.b = 16 * v.a;
    } else if (dash) {
        v.kind = TCB_VS_UNIFORM;
        if (parse_size(s, (size_t)(dash - s), &v.a) != 0 ||
            parse_size(dash + 1, strlen(dash + 1), &v.b) != 0 || v.b < v.a)
            return -1;
    } else if (parse_size(s, strlen(s), &v.a) != 0) {
        return -1;
    }
    *out = v;
    return 0;
}

uint32_t tcb_vsize_for(const tcb_vsize_t *v, uint64_t id) {
    uint64_t h = tcb_mix64(id ^ 0x5bd1e9955bd1e995ull);
    double u = (double)(h >> 11) * 0x1.0p-53;
    switch (v->kind) {
    case TCB_VS_FIXED:
        return v->a;
    case TCB_VS_UNIFORM:
        return v->a + (uint32_t)(((unsigned __int128)h * (v->b - v->a + 1ull)) >> 64);
    case TCB_VS_EXP:
        break;
    }
    double x = -(double)v->a * log1p(-u);
    return x >= (double)v->b ? v->b : (uint32_t)x;
}

uint32_t tcb_vsize_max(const tcb_vsize_t *v) {
    return v->kind == TCB_VS_FIXED ? v->a : v->b;
}

double tcb_vsize_mean(const tcb_vsize_t *v) {
    switch (v->kind) {
    case TCB_VS_FIXED:
        return v->a;
    case TCB_VS_UNIFORM:
        return (v->a + (double)v->b) / 2.0;
    case TCB_VS_EXP:
        break;
    }
    return (double)v->a - 0.5; /* truncation to an integer loses half a byte on average */
}

const char *tcb_vsize_name(const tcb_vsize_t *v, char *buf, size_t cap) {
    switch (v->kind) {
    case TCB_VS_FIXED:
        snprintf(buf, cap, "%u B", v->a);
        break;
    case TCB_VS_UNIFORM:
        snprintf(buf, cap, "%u-%u B uniform", v->a, v->b);
        break;
    case TCB_VS_EXP:
        snprintf(buf, cap, "exponential, mean %u B", v->a);
        break;
    }
    return buf;
}
