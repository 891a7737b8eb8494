/*
 * marks.h - this process's copy of the clear and namespace marks (see l2_many.c), so that
 * a read from Redis can tell a value a clear or namespace bump has hidden without reading
 * the marks in every round trip.
 *
 * The copy is exact only while the listener is subscribed: it is loaded from Redis after
 * every subscription (tc__l2_load_marks) and kept current by the namespace and clear
 * messages; a lost link marks it unknown at once. While it is unknown (or too big to keep,
 * see TC__MARKS_MAX), each read asks Redis for its key's marks in the same round trip
 * instead. So a value hidden by a bump is served at most one message delay after it, or
 * 2 x listener_ping_ms when the link dies silently: the bound every write has.
 */
#ifndef TC_MARKS_H
#define TC_MARKS_H

#include <stddef.h>
#include <stdint.h>

/* More namespace marks than this are not kept: reads ask Redis instead. */
#define TC__MARKS_MAX 100000u

typedef struct tc__marks tc__marks_t;

/* sep: the namespace separator (-1: none); depth: namespaces judged per key. NULL on
 * ENOMEM. */
tc__marks_t *tc__marks_new(int sep, unsigned depth);
void tc__marks_free(tc__marks_t *m);

/* The newest mark covering key (clear, and the key's namespaces) into *mark: 1, or 0 when
 * the copy is not known to be current (ask Redis). Thread-safe. */
int tc__marks_judge(tc__marks_t *m, const void *key, size_t klen, uint64_t *mark);

/* A mark seen at version (ns: the namespace with its separator, or NULL: the clear mark).
 * Keeps the newest. Thread-safe. */
void tc__marks_note(tc__marks_t *m, const void *ns, size_t nslen, uint64_t version);

/* The copy stops being current (a lost link): reads ask Redis until the next load. Returns
 * the generation a load must present to tc__marks_loaded. */
uint64_t tc__marks_unknown(tc__marks_t *m);
/* A load that began at generation gen has noted every mark: current again, unless the
 * link was lost meanwhile (the generation moved). */
void tc__marks_loaded(tc__marks_t *m, uint64_t gen);
/* The generation now (to begin a load). */
uint64_t tc__marks_generation(tc__marks_t *m);

#endif
