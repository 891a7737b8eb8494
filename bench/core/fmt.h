/*
 * fmt.h - the human formatting of the tables: counts with thousands separators, byte
 * sizes, durations and percentages.
 *
 * Parsing is not here: the command line reads every number with the library's own parser
 * (src/units.h: sizes, durations, counts, fractions), so a flag means what the same text
 * means in a TIERCACHE_* variable. This file only writes numbers.
 */
#ifndef TCB_FMT_H
#define TCB_FMT_H

#include <stddef.h>
#include <stdint.h>

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
