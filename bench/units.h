/*
 * units.h - the command line's numbers: counts, byte sizes, durations, percentages and
 * comma lists, parsed strictly, and the human formatting of the tables.
 *
 * Parsers accept exactly one number with an optional unit and nothing else ("10x", "-1",
 * "" and overflow are refused), so a typo becomes an error message instead of a silently
 * different benchmark. Byte sizes use the library's convention (K/KiB... 1024-based,
 * KB/MB/GB 1000-based), so --l1 64MiB means what TIERCACHE_L1_MAX_BYTES=64MiB means.
 */
#ifndef TCB_UNITS_H
#define TCB_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* "1000000", "1M", "250k", "2G" (1000-based multipliers for counts). 0 or -1. */
int tcb_parse_count(const char *s, uint64_t *out);
/* "64MiB", "1GB", "4096". 0 or -1. */
int tcb_parse_bytes(const char *s, uint64_t *out);
/* "1ms", "250us", "2.5s", "0", "1m": nanoseconds; a bare number is in bare_unit_ns. */
int tcb_parse_duration(const char *s, uint64_t bare_unit_ns, uint64_t *out_ns);
/* A finite double in [lo, hi]. 0 or -1. */
int tcb_parse_double(const char *s, double lo, double hi, double *out);
/* "0.1,1,10": up to cap doubles in [lo, hi]; returns the count, or -1. */
int tcb_parse_double_list(const char *s, double lo, double hi, double *out, int cap);

/* 1234567 -> "1,234,567". Returns buf. */
char *tcb_fmt_count(uint64_t v, char *buf, size_t cap);
/* 25300000 -> "24.1 MiB". Returns buf. */
char *tcb_fmt_bytes(double v, char *buf, size_t cap);
/* Nanoseconds as a short human duration: "812 ns", "31.2 us", "1.20 ms", "2.00 s". */
char *tcb_fmt_ns(double ns, char *buf, size_t cap);
/* A percentage (0..100) that keeps rare events visible: "0%", "0.0004%", "0.25%", "12.5%",
 * ">99.9%" (short of all), "100%"; "<0.0001%" below that. Returns buf. */
char *tcb_fmt_pct(double pct, char *buf, size_t cap);

#endif
