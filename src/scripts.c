/*
 * scripts.c - the Lua text of every script tiercache runs in Redis.
 *
 * Why scripts: a write, its version and its invalidation must be one atomic step, and so
 * must "is a value stored? else take the lock", or "is my lease still valid? then store".
 * Redis runs a script without interleaving any other command.
 *
 * The prelude, shared by all of them, is where the rules live:
 * - Versions. next_version() returns the counter + 1, but never below Redis's clock in
 *   microseconds (`floor`), so a counter that Redis lost (restart without persistence,
 *   eviction, FLUSHALL) cannot make new writes look older than copies some L1 holds. A
 *   counter that is not a number, is negative, or runs more than AHEAD (2^32 us, ~72 min)
 *   ahead of the clock was not produced by this rule (someone wrote it, or it is corrupt):
 *   it is reset to the clock and the script reports it healed, instead of failing every
 *   later write or handing out versions past 2^53, where Lua's doubles stop being exact
 *   and consecutive writes would share a version. Every version stays below 2^53.
 * - Stored values. inspect() says what a key holds without reading a value longer than
 *   the reader accepts (STRLEN first): nothing, a value too big to read, something that is
 *   not a tiercache value or carries a version no counter produced ('bad': a fill may
 *   overwrite it), or a usable value.
 * - Storing. The stored string is header .. payload. The 20-byte header is built here
 *   (the version is known only now) and the payload APPENDed to it: concatenating in Lua
 *   copies the payload twice more and made a 64 MiB write three times slower.
 * - Announcing. Every change is PUBLISHed with its version (msg.h). With the replay log
 *   on (its MAXLEN is the last argument of every announcing script; '0' = off), the
 *   message is also XADDed to the log stream KEYS[4], and the published copy carries the
 *   entry's id (format 2), so a listener that lost its link can read what it missed.
 * - Leases (the memcache lease of Facebook's NSDI 2013 paper). The cross-process lock a
 *   load takes is also its lease: SET and DEL delete the key's lock, so a load that read
 *   the source before a write cannot store what it read afterwards; ADD and CAS store
 *   only while the caller's token is still the lock's value, and release it in the same
 *   step (waking contended waiters with a FILL message). A load longer than the lock's TTL
 *   keeps its lease by EXTEND (keeper.c), like Redisson's lock watchdog; a write still
 *   voids it, and a dead holder's lease still expires.
 */
#include "scripts.h"

#include <stddef.h>

#define PRELUDE                                                                                \
    "local AHEAD = 4294967296\n"                                                               \
    "local function now_us()\n"                                                                \
    "  local t = redis.call('TIME')\n"                                                         \
    "  return t[1] * 1000000 + t[2]\n"                                                         \
    "end\n"                                                                                    \
    "local function pack(v)\n"                                                                 \
    "  return struct.pack('>I4I4', math.floor(v / 4294967296), v % 4294967296)\n"              \
    "end\n"                                                                                    \
    "local function inspect(key, maxlen, floor)\n"                                             \
    "  local n = redis.pcall('STRLEN', key)\n"                                                 \
    "  if type(n) ~= 'number' then return 'bad' end\n"                                         \
    "  if n > maxlen then return 'big', n end\n"                                               \
    "  local s = redis.call('GET', key)\n"                                                     \
    "  if not s then return 'none' end\n"                                                      \
    "  if n < 20 or string.byte(s, 1) ~= 199 or string.byte(s, 2) ~= 1 then return 'bad' "     \
    "end\n"                                                                                    \
    "  local hi, lo = struct.unpack('>I4I4', string.sub(s, 5, 12))\n"                          \
    "  local v = hi * 4294967296 + lo\n"                                                       \
    "  if v < 1 or v > floor + AHEAD then return 'bad' end\n"                                  \
    "  return 'ok', s\n"                                                                       \
    "end\n"                                                                                    \
    "local function next_version(vkey, floor)\n"                                               \
    "  local raw = redis.pcall('GET', vkey)\n"                                                 \
    "  local v, healed = nil, 0\n"                                                             \
    "  if type(raw) == 'table' then healed = 1\n"                                              \
    "  elseif raw then\n"                                                                      \
    "    v = tonumber(raw)\n"                                                                  \
    "    if not v or v ~= v or v < 0 or v > floor + AHEAD or v ~= math.floor(v) then\n"        \
    "      v = nil healed = 1 end\n"                                                           \
    "  end\n"                                                                                  \
    "  if v and v >= floor then v = v + 1 else v = floor end\n"                                \
    "  redis.call('SET', vkey, string.format('%.0f', v))\n"                                    \
    "  return v, healed\n"                                                                     \
    "end\n"                                                                                    \
    "local function announce(chan, head, pv, tail)\n"                                          \
    "  local maxlen = ARGV[#ARGV]\n"                                                           \
    "  local msg = head .. pv .. tail\n"                                                       \
    "  if maxlen ~= '0' then\n"                                                                \
    "    local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'm', msg)\n"       \
    "    local dash = string.find(id, '-', 1, true)\n"                                         \
    "    msg = string.char(194) .. string.sub(head, 2, 2) .. pv ..\n"                          \
    "      pack(tonumber(string.sub(id, 1, dash - 1))) ..\n"                                   \
    "      pack(tonumber(string.sub(id, dash + 1))) .. tail\n"                                 \
    "  end\n"                                                                                  \
    "  redis.call('PUBLISH', chan, msg)\n"                                                     \
    "end\n"                                                                                    \
    "local function store(key, head, pv, expiry, payload, ttl)\n"                              \
    "  local hdr = head .. pv .. expiry\n"                                                     \
    "  if ttl == '0' then redis.call('SET', key, hdr)\n"                                       \
    "  else redis.call('SET', key, hdr, 'PX', ttl) end\n"                                      \
    "  if #payload > 0 then redis.call('APPEND', key, payload) end\n"                          \
    "end\n"

/* ADD and CAS: check the lease first; release() gives it back (publishing FILL with the
 * stored version when others waited on it). */
#define LEASE                                                                                  \
    "local tok = ARGV[6]\n"                                                                    \
    "local lease = false\n"                                                                    \
    "if tok ~= '' then\n"                                                                      \
    "  lease = redis.call('GET', KEYS[3])\n"                                                   \
    "  if lease ~= tok and lease ~= tok .. '+' then return {3} end\n"                          \
    "end\n"                                                                                    \
    "local function release(pv)\n"                                                             \
    "  if not lease then return end\n"                                                         \
    "  redis.call('DEL', KEYS[3])\n"                                                           \
    "  if lease ~= tok then redis.call('PUBLISH', ARGV[7], ARGV[10] .. pv .. ARGV[9]) end\n"   \
    "end\n"                                                                                    \
    "local floor = now_us()\n"                                                                 \
    "local st, cur = inspect(KEYS[1], tonumber(ARGV[5]), floor)\n"

/* ADD and CAS: store (and publish, since a process may hold the value replaced). */
#define STORE_AND_PUBLISH(publish_cond)                                                        \
    "local v, healed = next_version(KEYS[2], floor)\n"                                         \
    "local pv = pack(v)\n"                                                                     \
    "store(KEYS[1], ARGV[1], pv, ARGV[2], ARGV[3], ARGV[4])\n"                                 \
    "if " publish_cond " then announce(ARGV[7], ARGV[8], pv, ARGV[9]) end\n"                   \
    "release(pv)\n"                                                                            \
    "return {1, v, healed}\n"

static const char script_set[] =
    PRELUDE "local v, healed = next_version(KEYS[2], now_us())\n"
            "local pv = pack(v)\n"
            "store(KEYS[1], ARGV[1], pv, ARGV[2], ARGV[3], ARGV[4])\n"
            "redis.call('DEL', KEYS[3])\n"
            "announce(ARGV[5], ARGV[6], pv, ARGV[7])\n"
            "return {v, healed}\n";

static const char script_del[] = PRELUDE "local v, healed = next_version(KEYS[2], now_us())\n"
                                         "redis.call('DEL', KEYS[1], KEYS[3])\n"
                                         "announce(ARGV[1], ARGV[2], pack(v), ARGV[3])\n"
                                         "return {v, healed}\n";

/* A value that is there wins (a concurrent writer, or a lock-less loader); a 'bad' one is
 * replaced, with a publish in case some process holds it. */
static const char script_add[] = PRELUDE LEASE
    "if st == 'ok' then\n"
    "  release(string.sub(cur, 5, 12))\n"
    "  return {0, cur, redis.call('PTTL', KEYS[1])}\n"
    "end\n"
    "if st == 'big' then release(string.rep('\\0', 8)) return {4, cur} end\n" STORE_AND_PUBLISH(
        "st == 'bad'");

static const char script_cas[] = PRELUDE LEASE
    "if st == 'ok' and string.sub(cur, 5, 12) ~= ARGV[11] then\n"
    "  release(string.sub(cur, 5, 12))\n"
    "  return {0, cur, redis.call('PTTL', KEYS[1])}\n"
    "end\n"
    "if st == 'big' then release(string.rep('\\0', 8)) return {4, cur} end\n"
    "if st == 'none' and not lease then return {5} end\n" STORE_AND_PUBLISH("true");

/* The value check and the lock are one step, so no process loads a value another has just
 * stored. A held lock is marked contended (a trailing '+') so its holder's release wakes
 * us. The skip version is the stale copy a refresh replaces. */
static const char script_lock[] = PRELUDE
    "local st, cur = inspect(KEYS[2], tonumber(ARGV[4]), now_us())\n"
    "if st == 'big' then return {4, cur} end\n"
    "if st == 'ok' and (ARGV[3] == '' or string.sub(cur, 5, 12) ~= ARGV[3]) then\n"
    "  return {2, cur, redis.call('PTTL', KEYS[2])} end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end\n"
    "local held = redis.call('GET', KEYS[1])\n"
    "if held and string.sub(held, -1) ~= '+' then\n"
    "  redis.call('SET', KEYS[1], held .. '+', 'KEEPTTL') end\n"
    "return {0, redis.call('PTTL', KEYS[1])}\n";

/* Compare-and-delete: only our own lock is released, never a successor's. */
static const char script_unlock[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur ~= ARGV[1] and cur ~= ARGV[1] .. '+' then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "if cur == ARGV[1] then return 1 end\n"
    "local pv = redis.pcall('GETRANGE', KEYS[2], 4, 11)\n"
    "if type(pv) ~= 'string' or #pv ~= 8 then pv = string.rep('\\0', 8) end\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[3] .. pv .. ARGV[4])\n"
    "return 1\n";

static const char script_extend[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur ~= ARGV[1] and cur ~= ARGV[1] .. '+' then return 0 end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n";

/* tc_invalidate: no data changes; announced (and logged) like a write. */
static const char script_evict[] =
    PRELUDE "announce(ARGV[1], ARGV[2], string.rep('\\0', 8), ARGV[3])\n"
            "return 1\n";

static const char *const bodies[TC__SCRIPT_COUNT] = {
    [TC__SCRIPT_SET] = script_set,       [TC__SCRIPT_DEL] = script_del,
    [TC__SCRIPT_ADD] = script_add,       [TC__SCRIPT_CAS] = script_cas,
    [TC__SCRIPT_LOCK] = script_lock,     [TC__SCRIPT_UNLOCK] = script_unlock,
    [TC__SCRIPT_EXTEND] = script_extend, [TC__SCRIPT_EVICT] = script_evict,
};

const char *tc__script_body(tc__script_t s) {
    return s < TC__SCRIPT_COUNT ? bodies[s] : NULL;
}
