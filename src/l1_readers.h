/*
 * l1_readers.h - hits without the shard lock: who is reading a shard, per CPU, so that a
 * writer can wait for them and readers never write a line another reader writes.
 *
 * Why
 * ---
 * Under a skewed key draw most operations go to a few hot keys, so to a few shards, and a
 * hit that takes its shard's mutex writes the mutex's line: two threads hitting keys of one
 * shard pass that line between their cores on every hit (125-165 ns a round trip on the
 * 2-core machine micro was measured on), and wait for each other besides. A hit only reads
 * the shard; what it must write is the entry's reference count (the pin tc_get's contract
 * needs), a line of the key's own.
 *
 * How
 * ---
 * A shard's writers (anything that changes its table, its queues or an entry's policy byte,
 * or removes an entry) still take the mutex, and then *exclude* readers: they raise the
 * shard's flag and wait until no reader is inside. A reader *enters* by incrementing its
 * CPU's counter for the shard and then reading the flag; if the flag is up it leaves again
 * and takes the mutex like a writer. This is Dekker's pattern on sequentially consistent
 * atomics: each side writes its own variable and then reads the other's, so at least one
 * of them sees the other, and a reader and a writer are never inside together. Readers are
 * inside together freely; what they write (the pin, their own counters) is atomic.
 *
 * Each CPU's counters for every shard form a row of their own (stripe), so readers on
 * different CPUs write different lines; threads that share a CPU (or, beyond 16 CPUs, a
 * stripe) share a row, which only costs them a line that stays on one core. A writer reads
 * one word per stripe; where no reader came since, those lines sit in its cache.
 *
 * The flag is cleared with release order and read (sequentially consistent) by readers,
 * and a reader leaves with a release decrement that the writer's wait reads, so each
 * side's accesses happen before the other's in either order (what ThreadSanitizer checks
 * as well).
 *
 * A writer waits only for readers already inside, which hold nothing and call nothing: a
 * table probe, a key comparison and a pin. It spins, then yields the CPU in case a reader
 * was preempted inside, then sleeps in short naps (a real-time writer's yield would never
 * let a lower-priority reader on its CPU run).
 */
#ifndef TC_L1_READERS_H
#define TC_L1_READERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TC__L1_STRIPES_MAX 16u
#define TC__L1_COUNTS_MAX  1024u

/* A reader's word for a shard counts the readers inside in its low 16 bits and the hits
 * they made in the rest: a reader that hits leaves by adding TC__L1_HIT_ONE - 1, so
 * counting the hit costs no instruction of its own (a locked add more per hit measured
 * about 10% of a one-thread hit here). A writer, holding the shard with no reader inside,
 * moves a word's hits into the shard's own count long before the 48 bits could wrap. */
typedef uint64_t tc__l1_word_t;
#define TC__L1_INSIDE_MASK ((uint64_t)0xFFFF)
#define TC__L1_HIT_ONE     ((uint64_t)1 << 16)

/* Misses counted by readers that did not take the lock, one line per CPU (a miss goes on
 * to Redis or a loader: its atomic add is nothing beside that). */
typedef struct tc__l1_read_counts {
    atomic_uint_fast64_t misses;
} __attribute__((aligned(64))) tc__l1_read_counts_t;

typedef struct tc__l1_readers {
    _Atomic tc__l1_word_t *inside; /* [stripe * row + shard]: readers inside, their hits */
    tc__l1_read_counts_t *counts;  /* [cpu & (ncounts - 1)] */
    unsigned stripes;              /* a power of two, at most TC__L1_STRIPES_MAX */
    unsigned ncounts;              /* a power of two at least the CPUs (at most 1024) */
    unsigned row;                  /* words per stripe: shards rounded up to a line */
} tc__l1_readers_t;

/* 0, or TC_ENOMEM. */
int tc__l1_readers_init(tc__l1_readers_t *r, unsigned shards);
void tc__l1_readers_deinit(tc__l1_readers_t *r);

/* The CPU the calling thread runs on (sched_getcpu: glibc 2.35 and later read it from the
 * kernel's per-thread rseq area, older ones from the x86-64 vDSO; only an AArch64 glibc
 * without rseq makes it a system call). Any answer is correct, since the thread may move at
 * once; this one is uncontended. */
unsigned tc__l1_readers_cpu(void);

/* The word a reader on cpu enters shard through. */
static inline _Atomic tc__l1_word_t *tc__l1_readers_word(const tc__l1_readers_t *r,
                                                         unsigned cpu, unsigned shard) {
    return &r->inside[(size_t)(cpu & (r->stripes - 1)) * r->row + shard];
}

/* Count a lock-free miss of a reader on cpu. */
static inline void tc__l1_readers_count_miss(const tc__l1_readers_t *r, unsigned cpu) {
    atomic_fetch_add_explicit(&r->counts[cpu & (r->ncounts - 1)].misses, 1,
                              memory_order_relaxed);
}

/* Enter the shard whose flag is excl through word: 1 when inside (leave with
 * tc__l1_read_leave), 0 when a writer holds the shard (nothing to undo). */
static inline int tc__l1_read_enter(_Atomic tc__l1_word_t *word, const atomic_int *excl) {
    atomic_fetch_add_explicit(word, 1, memory_order_seq_cst);
    if (atomic_load_explicit(excl, memory_order_seq_cst) == 0)
        return 1;
    atomic_fetch_sub_explicit(word, 1, memory_order_release);
    return 0;
}

/* Leave, counting a hit if there was one. */
static inline void tc__l1_read_leave(_Atomic tc__l1_word_t *word, int hit) {
    atomic_fetch_add_explicit(word, hit ? TC__L1_HIT_ONE - 1 : (tc__l1_word_t)-1,
                              memory_order_release);
}

/* With the shard's mutex held: raise its flag and wait until no reader is inside; then
 * move hits from words grown large into *hits (the shard's own count, under its mutex). */
void tc__l1_readers_exclude(const tc__l1_readers_t *r, unsigned shard, atomic_int *excl,
                            uint64_t *hits);

/* Lower the flag (still holding the mutex, before releasing it). */
static inline void tc__l1_readers_admit(atomic_int *excl) {
    atomic_store_explicit(excl, 0, memory_order_release);
}

/* The hits counted in shard's words (call with the shard's mutex held, so no writer moves
 * them meanwhile). */
uint64_t tc__l1_readers_shard_hits(const tc__l1_readers_t *r, unsigned shard);
/* The lock-free misses so far, summed over CPUs. */
uint64_t tc__l1_readers_misses(const tc__l1_readers_t *r);

#endif
