/*
 * scripts.h - the Lua scripts every Redis write, fill and lock runs, and their replies.
 *
 * Each script is one atomic step in Redis. They share one prelude (scripts.c) so that
 * every script judges a stored value, assigns a version and packs it the same way. Keys
 * and arguments are listed per script below; l2.c builds them in exactly this order.
 */
#ifndef TC_SCRIPTS_H
#define TC_SCRIPTS_H

/* Every announcing script (SET, DEL, ADD, CAS, EVICT) takes KEYS: data, version, lock,
 * replay log, and as its LAST argument the log's MAXLEN ('0': no log). Marks (the clear
 * mark and the key's namespace marks, l2_int.h) and tag sets follow as further KEYS: SET
 * takes tags after the four; ADD and CAS marks, then tags, with the number of marks and
 * the mark the caller's lock saw ('' = none) as the two arguments before the MAXLEN;
 * LOCK takes marks after its two. A stored value whose version is at or below the newest
 * mark is 'dead': as absent. */
typedef enum tc__script {
    /* ARGV: head (4 B), expiry (8 B), payload, ttl ms (0 = none), channel, msg head, msg
     * tail, log maxlen. Stores, voids the key's lease, announces. Reply {version, healed}. */
    TC__SCRIPT_SET,
    /* ARGV: channel, msg head, msg tail, log maxlen. Reply as SET. */
    TC__SCRIPT_DEL,
    /* Store a loaded value if the key holds none. ARGV: head, expiry, payload, ttl, max
     * stored length, lease token ('' = none), channel, write msg head, msg tail, fill msg
     * head, log maxlen. Replies: see tc__script_tag. Releases the lease. */
    TC__SCRIPT_ADD,
    /* A refresh: replace the value if it still carries the expected version. ARGV as ADD,
     * with the expected version (8 B) before the log maxlen. Without a lease a vanished key
     * is not re-created (a delete may have removed it). */
    TC__SCRIPT_CAS,
    /* KEYS: lock, data, marks. ARGV: token, ttl ms, skip version (8 B or ''), max stored
     * length. Checks for a stored value and takes the lock (the lease) in one step; the
     * lock reply carries the newest mark ({1, mark}). */
    TC__SCRIPT_LOCK,
    /* KEYS: lock, data. ARGV: token, channel, fill msg head, msg tail. Compare-and-delete;
     * publishes FILL when the lock was contended. Reply 1 released, 0 not ours. */
    TC__SCRIPT_UNLOCK,
    /* KEYS: lock, data. ARGV: token, ttl ms. Extends the lock if it is still ours (a long
     * load keeps its lease). Reply 1 extended, 0 not ours. */
    TC__SCRIPT_EXTEND,
    /* tc_invalidate: ARGV: channel, evict msg head, msg tail, log maxlen. Reply 1. */
    TC__SCRIPT_EVICT,
    /* KEYS: version. The next version (where an invalidation of many keys begins). */
    TC__SCRIPT_VERSION,
    /* KEYS: mark, version, log. ARGV: channel, msg head, msg tail, log maxlen. A namespace
     * bump or clear: the mark takes the next version. Reply {version, healed}. */
    TC__SCRIPT_MARK,
    /* One step of a tag's invalidation (scripts.c). Reply {seen, deleted, healed, version,
     * entries}. */
    TC__SCRIPT_TAG_DEL,
    /* One step of a prefix's invalidation (scripts.c). Reply {deleted, healed, version,
     * entries}. */
    TC__SCRIPT_PREFIX_DEL,
    /* Write-through (scripts.c): the key's write lock, and the store while it holds. */
    TC__SCRIPT_WLOCK,
    TC__SCRIPT_PUT_LEASED,
    /* Write-behind (scripts.c): a write or delete and its queue entry in one step, and the
     * flusher's record of the versions it wrote. */
    TC__SCRIPT_PUT_QUEUED,
    TC__SCRIPT_DEL_QUEUED,
    TC__SCRIPT_WB_DONE,
    TC__SCRIPT_COUNT
} tc__script_t;

/* First element of the ADD, CAS and LOCK replies. */
typedef enum tc__script_tag {
    TC__TAG_EXISTS = 0,     /* {0, value, pttl}: a value is there (LOCK: {0, pttl}: the lock
                               is held by another, now marked contended) */
    TC__TAG_DONE = 1,       /* {1, version, healed}: stored (LOCK: {1, 0}: lock taken) */
    TC__TAG_VALUE = 2,      /* LOCK: {2, value, pttl}: a value is stored, no load needed */
    TC__TAG_LEASE_LOST = 3, /* {3}: a write or delete voided our lease, or it expired */
    TC__TAG_TOO_BIG = 4,    /* {4, length}: the stored value is longer than allowed */
    TC__TAG_GONE = 5,       /* {5}: CAS without a lease found the key deleted */
} tc__script_tag_t;

/* The script's full Lua text (prelude included). */
const char *tc__script_body(tc__script_t s);

#endif
