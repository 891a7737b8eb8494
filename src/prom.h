/*
 * prom.h - the pieces of tc_stats_prometheus (prom.c) that tests look at directly: the
 * table that maps each tc_stats_t field to a metric, and the seconds formatter.
 */
#ifndef TC_PROM_H
#define TC_PROM_H

#include "tiercache.h"

#include <stddef.h>
#include <stdint.h>

typedef enum tc__prom_type { TC__PROM_COUNTER, TC__PROM_GAUGE } tc__prom_type_t;

/* One tc_stats_t field as a metric: "tiercache_" + name, plus "_total" for a counter. */
typedef struct tc__prom_field {
    const char *name;     /* the field's name in tc_stats_t */
    size_t offset, size;  /* where it is: a uint64_t, or an int for two gauges */
    tc__prom_type_t type; /* as tiercache.h marks it */
    const char *help;     /* one line, no backslash (written unescaped) */
} tc__prom_field_t;

/* The table, in tc_stats_t's field order; *count entries. */
const tc__prom_field_t *tc__prom_fields(size_t *count);

/* Longest text tc__prom_seconds writes, NUL included. */
#define TC__PROM_SECONDS_MAX 32

/* ns / 1e9 as the exact, shortest decimal in the form Go's strconv 'g' writes ("1e-07",
 * "2.5e-07", "0.0001", "1.5", "1.234567e+06"). Returns its length; out gets it,
 * NUL-terminated. Uses no floating point and no locale. */
size_t tc__prom_seconds(uint64_t ns, char out[TC__PROM_SECONDS_MAX]);

#endif
