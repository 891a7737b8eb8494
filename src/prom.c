/*
 * prom.c - tc_stats_prometheus: every statistic and latency histogram of a cache in the
 * Prometheus text exposition format (version 0.0.4), written into the caller's buffer.
 *
 * What comes out, one metric family after another, each introduced by its HELP and TYPE:
 *
 *   # HELP tiercache_l1_hits_total L1 lookups that found the key (tc_get, tc_fetch).
 *   # TYPE tiercache_l1_hits_total counter
 *   tiercache_l1_hits_total{service="api"} 42
 *   ...                                            one family per tc_stats_t field
 *   # HELP tiercache_call_duration_seconds Duration of tiercache calls, by kind: ...
 *   # TYPE tiercache_call_duration_seconds histogram
 *   tiercache_call_duration_seconds_bucket{service="api",kind="get_hit",le="1e-07"} 0
 *   ...
 *   tiercache_call_duration_seconds_bucket{service="api",kind="get_hit",le="+Inf"} 7
 *   tiercache_call_duration_seconds_sum{service="api",kind="get_hit"} 1.234e-06
 *   tiercache_call_duration_seconds_count{service="api",kind="get_hit"} 7
 *   ...                                            the same for every tc_latency_kind_t
 *
 * The choices, and why:
 * - Names are "tiercache_" + the tc_stats_t field name. Counters end in _total, gauges
 *   (the fields tiercache.h marks so) do not: the format's convention, which rate() users
 *   and linters (promtool check metrics) expect. The table below pairs every field with
 *   its type and help; a _Static_assert fails the build when tc_stats_t grows past the
 *   table's last row, and test_prometheus checks that the rows cover the struct with no gap.
 * - The latency histograms are one family with a `kind` label, not six families: the
 *   kinds share their buckets and their unit, so one query draws them all
 *   (histogram_quantile(0.99, sum by (kind, le) (rate(..._bucket[5m])))).
 * - Seconds, not nanoseconds: Prometheus's base unit. Times are written from the integer
 *   nanoseconds by decimal arithmetic, never through a double and printf: exact, and
 *   immune to the host program's setlocale (printf's %g under a German locale writes
 *   "2,5e-07", and Prometheus would refuse the whole scrape). The form is the one the Go
 *   client writes (strconv 'g', shortest: 1e-07, 2.5e-07, 0.0001, 5), so an `le` label
 *   reads the same as in other exporters' histograms (Prometheus 2 compares them as
 *   strings when summing by le).
 * - Buckets are cumulative, as the format requires, and _count is the +Inf bucket: the
 *   sum of the buckets as read, not the histogram's own count. A snapshot taken while
 *   calls run can catch the two apart by the calls in flight (metrics.c), and the format
 *   requires +Inf == _count. _sum is read on its own and may be off by those same calls,
 *   which no consumer can tell.
 * - Labels: the caller's come first in every sample's braces, then kind, then le. They
 *   are checked against the label grammar (name="value" pairs, values escaping only \\,
 *   \" and \n, no trailing comma) because one bad byte makes Prometheus drop the whole
 *   scrape, not one sample. The names kind and le (tiercache writes those) and names
 *   starting with __ (reserved by Prometheus) are refused too. A caller naming the same
 *   label twice is not caught.
 * - No allocation: a bounded writer copies what fits and counts the rest, so one pass both
 *   writes and measures, and TC_ENOSPC reports the exact size needed. A counter can gain a
 *   digit between two calls, so a caller retrying with that size may need a little more;
 *   on TC_ENOSPC the buffer holds an empty string, never a cut-off scrape.
 * - One tc_stats snapshot, then one tc_latency per kind: not a single atomic cut of the
 *   cache, as no scrape of a live process is.
 */
#include "prom.h"

#include <assert.h>
#include <string.h>

/* ---- the metric table ---- */

#define FIELD(f, type, help)                                                                   \
    { #f, offsetof(tc_stats_t, f), sizeof(((tc_stats_t *)0)->f), type, help }
#define COUNTER(f, help) FIELD(f, TC__PROM_COUNTER, help)
#define GAUGE(f, help)   FIELD(f, TC__PROM_GAUGE, help)

static const tc__prom_field_t fields[] = {
    COUNTER(l1_hits, "L1 lookups that found the key (tc_get, tc_fetch)."),
    COUNTER(l1_misses, "L1 lookups that did not find the key."),
    COUNTER(l2_hits, "Redis lookups that found the key."),
    COUNTER(l2_misses, "Redis lookups that did not find the key."),
    COUNTER(loads, "Loader calls made by tc_fetch."),
    COUNTER(load_errors, "Loader calls that failed."),
    COUNTER(singleflight_waits, "tc_fetch calls that waited on another thread's load."),
    GAUGE(l1_entries, "Entries in L1."),
    GAUGE(l1_bytes, "Bytes L1 holds: keys, values and overhead as the allocator charges them."),
    GAUGE(l1_max_bytes, "The configured L1 byte budget."),
    COUNTER(l1_evictions, "L1 entries dropped to stay within the budget."),
    COUNTER(l1_expirations, "L1 entries dropped because their TTL passed."),
    COUNTER(l1_fills_rejected, "Redis or loader results not kept in L1: an invalidation "
                               "superseded them in flight."),
    COUNTER(inval_published, "Writes and deletes this process published for invalidation."),
    COUNTER(inval_received, "Messages read from the invalidation channel."),
    COUNTER(inval_applied, "Well-formed invalidation messages applied to L1."),
    COUNTER(inval_malformed, "Invalidation messages ignored as malformed."),
    COUNTER(l2_errors, "Failed Redis calls (timeouts included)."),
    COUNTER(l2_timeouts, "Redis calls that timed out."),
    COUNTER(breaker_opens, "Times the Redis circuit breaker opened."),
    GAUGE(breaker_state, "Redis circuit breaker: 0 closed, 1 open, 2 half-open."),
    GAUGE(listener_connected, "1 while the invalidation listener is subscribed and trusted."),
    COUNTER(listener_reconnects, "Re-subscriptions of the invalidation listener after a loss."),
    COUNTER(l1_flushes, "Whole-L1 flushes (invalidation listener lost or resubscribed)."),
    COUNTER(early_refreshes, "Background refreshes started early by XFetch."),
    COUNTER(stale_refreshes, "Background refreshes started by a stale read."),
    COUNTER(refreshes_dropped, "Background loads dropped: the refresh queue was full."),
    COUNTER(stale_serves, "Stale values served while a refresh ran (stale-while-revalidate)."),
    COUNTER(failsafe_serves, "Stale values served because a reload failed or backs off."),
    COUNTER(negative_hits, "Misses answered from a cached absence."),
    COUNTER(lock_acquired, "Cross-process locks taken for a load."),
    COUNTER(lock_waits, "tc_fetch calls that waited on another process's load."),
    COUNTER(lock_timeouts, "Waits on another process's load that gave up and loaded."),
    COUNTER(load_timeouts, "Loads that passed the soft or the hard load timeout."),
    GAUGE(l1_local_entries, "L1 entries Redis does not hold (kept while Redis failed)."),
    COUNTER(l2_heals, "Times Redis answered after failing and local entries were dropped."),
    COUNTER(versions_refused, "Stored values refused: a version no counter produced."),
    COUNTER(counter_heals, "Version counters found corrupt in Redis and reset."),
    COUNTER(leases_lost, "Loads not stored: a write or delete came during them."),
    COUNTER(unlocks_deferred, "Lock releases that failed and were retried later."),
    COUNTER(values_too_big, "Stored values refused unread: over max_value_bytes."),
    COUNTER(permission_errors, "Redis commands refused (NOPERM, NOAUTH...); see the logs."),
    COUNTER(listener_replays, "Lost invalidation links caught up from the replay log."),
    COUNTER(inval_replayed, "Invalidations read back from the replay log."),
    COUNTER(replay_log_gaps, "Lost links the replay log no longer covered (L1 flushed)."),
    COUNTER(inval_tracking, "Keys evicted on Redis's own invalidation notices (tracking)."),
    COUNTER(keys_invalidated, "Keys removed from Redis by this process's tag and prefix "
                              "invalidations."),
    COUNTER(inval_swept, "L1 entries dropped by namespace and clear messages."),
    COUNTER(values_hidden, "Redis values read as absent: an older clear or namespace "
                           "invalidation covers them."),
    COUNTER(batch_loads, "Batch loader calls (tc_mfetch, tc_warm)."),
    COUNTER(writes_through, "Write-through calls whose source write succeeded."),
    COUNTER(writes_partial, "Write-through calls whose cache step failed after the source "
                            "write (TC_EPARTIAL)."),
    COUNTER(wb_queued, "Writes this process queued for the source (write-behind)."),
    COUNTER(wb_rejected, "Write-behind calls refused: the queue was full."),
    COUNTER(wb_written, "Queued writes this process's flusher wrote to the source."),
    COUNTER(wb_coalesced, "Queued writes dropped: a newer write of the key came first."),
    COUNTER(wb_retries, "Writer failures retried by this process's flusher."),
    COUNTER(wb_dead, "Queued writes moved to the dead-letter stream."),
    GAUGE(wb_flusher, "1 while this process holds the write-behind flusher lease."),
    GAUGE(l1_shards, "L1 shards (each an LRU with its own lock)."),
    COUNTER(master_switches, "Sentinel failovers followed (redis+sentinel://)."),
    GAUGE(servers, "Redis servers the keys are spread over (N for a redis_url list)."),
    GAUGE(servers_down, "Servers whose breaker is open or whose listener is unsubscribed."),
    COUNTER(cluster_redirects, "Redis Cluster MOVED and ASK answers followed."),
    COUNTER(cluster_retries, "Redis Cluster calls sent again (TRYAGAIN, CLUSTERDOWN, a master "
                             "unreachable)."),
    COUNTER(cluster_map_reads, "Redis Cluster slot maps read."),
    COUNTER(cluster_failovers, "Redis Cluster map reads that found other masters (L1 "
                               "flushed)."),
};

/* A field appended to tc_stats_t needs its row above, or it would silently go unexported. */
_Static_assert(offsetof(tc_stats_t, cluster_failovers) + sizeof(uint64_t) == sizeof(tc_stats_t),
               "tc_stats_t grew: add its new fields to the table in prom.c");

const tc__prom_field_t *tc__prom_fields(size_t *count) {
    *count = sizeof fields / sizeof *fields;
    return fields;
}

#define HIST_NAME "tiercache_call_duration_seconds"
#define HIST_HELP                                                                              \
    "Duration of tiercache calls, by kind: get_hit (tc_get or tc_fetch answered from L1, "     \
    "sampled 1 call in 64), get_miss (tc_get that went to Redis), fetch_load (tc_fetch that "  \
    "ran or waited for a load), set and del (without Redis: sampled 1 call in 64), inval "     \
    "(a write's version to this process applying its invalidation; clock skew adds in)."

static const char *const kind_names[] = {
    [TC_LAT_GET_HIT] = "get_hit",
    [TC_LAT_GET_MISS] = "get_miss",
    [TC_LAT_FETCH_LOAD] = "fetch_load",
    [TC_LAT_SET] = "set",
    [TC_LAT_DEL] = "del",
    [TC_LAT_INVAL] = "inval",
};
_Static_assert(sizeof kind_names / sizeof *kind_names == TC_LAT_COUNT,
               "a new tc_latency_kind_t needs its label value in prom.c");

/* ---- numbers, without printf ---- */

/* Decimal digits of v, most significant first; returns how many (1..20). */
static size_t u64_digits(uint64_t v, char d[20]) {
    char rev[20];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        d[i] = rev[n - 1 - i];
    return n;
}

/* d[0].d[1..]e-XX: the leading digit's power `lead` has at most two digits here. */
static size_t seconds_exponent(const char *d, size_t nd, int lead, char *out) {
    size_t n = 0;
    out[n++] = d[0];
    if (nd > 1) {
        out[n++] = '.';
        memcpy(out + n, d + 1, nd - 1);
        n += nd - 1;
    }
    unsigned mag = (unsigned)(lead < 0 ? -lead : lead);
    assert(mag < 100);
    out[n++] = 'e';
    out[n++] = lead < 0 ? '-' : '+';
    out[n++] = (char)('0' + mag / 10);
    out[n++] = (char)('0' + mag % 10);
    return n;
}

/* digits x 10^exp10 with a decimal point where it falls (and none for a whole number). */
static size_t seconds_fixed(const char *d, size_t nd, int exp10, char *out) {
    int point = (int)nd + exp10; /* digits before the decimal point */
    size_t n = 0;
    if (point <= 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = point; i < 0; i++)
            out[n++] = '0';
        memcpy(out + n, d, nd);
        return n + nd;
    }
    size_t whole = (size_t)point;
    if (whole >= nd) {
        memcpy(out, d, nd);
        for (n = nd; n < whole; n++)
            out[n] = '0';
        return n;
    }
    memcpy(out, d, whole);
    out[whole] = '.';
    memcpy(out + whole + 1, d + whole, nd - whole);
    return nd + 1;
}

size_t tc__prom_seconds(uint64_t ns, char out[TC__PROM_SECONDS_MAX]) {
    size_t n = 1;
    if (ns == 0) {
        out[0] = '0';
    } else {
        int exp10 = -9; /* the value is ns x 10^exp10, ns losing its trailing zeros */
        for (; ns % 10 == 0; ns /= 10)
            exp10++;
        char d[20];
        size_t nd = u64_digits(ns, d);
        int lead = (int)nd - 1 + exp10; /* the power of ten of the leading digit */
        /* Go's rule for shortest 'g': exponent form below 1e-4 and from 1e+06 on. */
        n = lead < -4 || lead >= 6 ? seconds_exponent(d, nd, lead, out)
                                   : seconds_fixed(d, nd, exp10, out);
    }
    assert(n < TC__PROM_SECONDS_MAX);
    out[n] = '\0';
    return n;
}

/* ---- the bounded writer ---- */

/* Copies what fits into buf[0..cap) and counts everything, so `len` ends as the size the
 * whole text needs whatever cap was. */
typedef struct prom_writer {
    char *buf;
    size_t cap;
    size_t len;
    const char *labels; /* the caller's labels, validated; NULL or "" for none */
} prom_writer_t;

static void put(prom_writer_t *w, const char *s, size_t n) {
    if (w->len < w->cap) {
        size_t room = w->cap - w->len;
        memcpy(w->buf + w->len, s, n < room ? n : room);
    }
    w->len += n;
}

static void put_str(prom_writer_t *w, const char *s) {
    put(w, s, strlen(s));
}

static void put_u64(prom_writer_t *w, uint64_t v) {
    char d[20];
    put(w, d, u64_digits(v, d));
}

static void put_seconds(prom_writer_t *w, uint64_t ns) {
    char s[TC__PROM_SECONDS_MAX];
    put(w, s, tc__prom_seconds(ns, s));
}

/* "# HELP name help" and "# TYPE name type": once per family, before its samples. */
static void put_family(prom_writer_t *w, const char *name, const char *type, const char *help) {
    put_str(w, "# HELP ");
    put_str(w, name);
    put(w, " ", 1);
    put_str(w, help);
    put_str(w, "\n# TYPE ");
    put_str(w, name);
    put(w, " ", 1);
    put_str(w, type);
    put(w, "\n", 1);
}

/* One label's lead-in: "{" for the first of a sample, "," for the others. */
static void put_label_sep(prom_writer_t *w, int *open) {
    put(w, *open ? "," : "{", 1);
    *open = 1;
}

/* A sample's name and label block, up to the space before its value. kind NULL: no kind
 * label; le_ns NULL: no le label (UINT64_MAX is +Inf). No braces when no labels. */
static void put_sample_head(prom_writer_t *w, const char *name, const char *suffix,
                            const char *kind, const uint64_t *le_ns) {
    int open = 0;
    put_str(w, name);
    put_str(w, suffix);
    if (w->labels && *w->labels) {
        put_label_sep(w, &open);
        put_str(w, w->labels);
    }
    if (kind) {
        put_label_sep(w, &open);
        put_str(w, "kind=\"");
        put_str(w, kind);
        put(w, "\"", 1);
    }
    if (le_ns) {
        put_label_sep(w, &open);
        put_str(w, "le=\"");
        if (*le_ns == UINT64_MAX)
            put_str(w, "+Inf");
        else
            put_seconds(w, *le_ns);
        put(w, "\"", 1);
    }
    if (open)
        put(w, "}", 1);
    put(w, " ", 1);
}

/* ---- the metrics ---- */

static void put_field(prom_writer_t *w, const tc_stats_t *st, const tc__prom_field_t *f) {
    char name[96];
    size_t base = strlen("tiercache_"), nlen = strlen(f->name);
    const char *tail = f->type == TC__PROM_COUNTER ? "_total" : "";
    assert(base + nlen + strlen(tail) < sizeof name);
    memcpy(name, "tiercache_", base);
    memcpy(name + base, f->name, nlen);
    strcpy(name + base + nlen, tail);

    put_family(w, name, f->type == TC__PROM_COUNTER ? "counter" : "gauge", f->help);
    put_sample_head(w, name, "", NULL, NULL);
    const char *at = (const char *)st + f->offset;
    if (f->size == sizeof(uint64_t)) {
        uint64_t v;
        memcpy(&v, at, sizeof v);
        put_u64(w, v);
    } else { /* an int gauge: breaker_state, listener_connected */
        int v;
        assert(f->size == sizeof v);
        memcpy(&v, at, sizeof v);
        if (v < 0)
            put(w, "-", 1);
        put_u64(w, v < 0 ? 0u - (uint64_t)v : (uint64_t)v);
    }
    put(w, "\n", 1);
}

static void put_histogram(prom_writer_t *w, const char *kind, const tc_latency_t *h) {
    const uint64_t *bounds = tc_latency_bounds_ns();
    uint64_t cumulative = 0;
    for (unsigned i = 0; i < TC_LATENCY_BUCKETS; i++) {
        cumulative += h->buckets[i];
        put_sample_head(w, HIST_NAME, "_bucket", kind, &bounds[i]);
        put_u64(w, cumulative);
        put(w, "\n", 1);
    }
    put_sample_head(w, HIST_NAME, "_sum", kind, NULL);
    put_seconds(w, h->sum_ns);
    put(w, "\n", 1);
    put_sample_head(w, HIST_NAME, "_count", kind, NULL);
    put_u64(w, cumulative); /* == the +Inf bucket, as the format requires */
    put(w, "\n", 1);
}

static int put_histograms(prom_writer_t *w, tc_cache_t *cache) {
    put_family(w, HIST_NAME, "histogram", HIST_HELP);
    for (int kind = 0; kind < TC_LAT_COUNT; kind++) {
        tc_latency_t h;
        int rc = tc_latency(cache, kind, &h);
        if (rc != TC_OK)
            return rc;
        put_histogram(w, kind_names[kind], &h);
    }
    return TC_OK;
}

/* ---- the caller's labels ---- */

static int name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int name_char(char c) {
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Names tiercache writes itself, and Prometheus's own. */
static int reserved_name(const char *name, size_t n) {
    return (n == 4 && memcmp(name, "kind", 4) == 0) || (n == 2 && memcmp(name, "le", 2) == 0) ||
           (n >= 2 && name[0] == '_' && name[1] == '_');
}

/* s points just past a value's opening quote: the position after its closing quote, or
 * NULL when the value is cut short (end of string, a raw newline) or escapes anything but
 * \\, \" and \n. */
static const char *skip_value(const char *s) {
    for (;;) {
        switch (*s) {
        case '"':
            return s + 1;
        case '\0':
        case '\n':
            return NULL;
        case '\\':
            if (s[1] != '\\' && s[1] != '"' && s[1] != 'n')
                return NULL;
            s += 2;
            break;
        default:
            s++;
        }
    }
}

/* name="value"(,name="value")*, or empty. */
static int labels_valid(const char *s) {
    if (!s || !*s)
        return 1;
    for (;;) {
        const char *name = s;
        if (!name_start(*s))
            return 0;
        while (name_char(*s))
            s++;
        if (reserved_name(name, (size_t)(s - name)) || s[0] != '=' || s[1] != '"')
            return 0;
        s = skip_value(s + 2);
        if (!s)
            return 0;
        if (*s == '\0')
            return 1;
        if (*s != ',')
            return 0;
        s++;
    }
}

/* ---- the entry point ---- */

int tc_stats_prometheus(tc_cache_t *cache, const char *labels, char *buf, size_t cap,
                        size_t *len) {
    if (!cache || !len || (!buf && cap > 0) || !labels_valid(labels))
        return TC_EINVAL;
    tc_stats_t st;
    int rc = tc_stats(cache, &st);
    if (rc != TC_OK)
        return rc;
    prom_writer_t w = {.buf = buf, .cap = cap, .labels = labels};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        put_field(&w, &st, &fields[i]);
    rc = put_histograms(&w, cache);
    if (rc != TC_OK)
        return rc;
    if (w.len < cap) {
        buf[w.len] = '\0';
        *len = w.len;
        return TC_OK;
    }
    if (cap > 0)
        buf[0] = '\0'; /* what was cut off would read as a scrape that lost metrics */
    *len = w.len + 1;
    return TC_ENOSPC;
}
