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
 *   copies the payload twice more and made a 64 MiB write three times slower. store() also
 *   bounds the header's expiry field by the key's own expiry on Redis's clock (TIME + PX),
 *   writing that expiry there when the writer gave no fresh end (valfmt.h, flags 0x02 and
 *   0x04): a reader then knows how long the key lives from the value alone, and a miss
 *   costs one command (GETRANGE) instead of two (GETRANGE + PTTL).
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
    "local function unpack_v(s)\n"                                                             \
    "  local hi, lo = struct.unpack('>I4I4', s)\n"                                             \
    "  return hi * 4294967296 + lo\n"                                                          \
    "end\n"                                                                                    \
    "local function newest_mark(first, last)\n"                                                \
    "  local w = 0\n"                                                                          \
    "  for i = first, last do\n"                                                               \
    "    local x = tonumber(redis.pcall('GET', KEYS[i]))\n"                                    \
    "    if x and x > w then w = x end\n"                                                      \
    "  end\n"                                                                                  \
    "  return w\n"                                                                             \
    "end\n"                                                                                    \
    "local function inspect(key, maxlen, floor, mark)\n"                                       \
    "  local n = redis.pcall('STRLEN', key)\n"                                                 \
    "  if type(n) ~= 'number' then return 'bad' end\n"                                         \
    "  if n > maxlen then return 'big', n end\n"                                               \
    "  local s = redis.call('GET', key)\n"                                                     \
    "  if not s then return 'none' end\n"                                                      \
    "  if n < 20 or string.byte(s, 1) ~= 199 or string.byte(s, 2) ~= 1 then return 'bad' "     \
    "end\n"                                                                                    \
    "  local v = unpack_v(string.sub(s, 5, 12))\n"                                             \
    "  if v < 1 or v > floor + AHEAD then return 'bad' end\n"                                  \
    "  if v <= mark then return 'dead' end\n"                                                  \
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
    "local function announce(chan, head, pv, tail, logkey)\n"                                  \
    "  local maxlen = ARGV[#ARGV]\n"                                                           \
    "  local msg = head .. pv .. tail\n"                                                       \
    "  if maxlen ~= '0' then\n"                                                                \
    "    local id = redis.call('XADD', logkey or KEYS[4], 'MAXLEN', '~', maxlen, '*', 'm', "   \
    "msg)\n"                                                                                   \
    "    local dash = string.find(id, '-', 1, true)\n"                                         \
    "    msg = string.char(194) .. string.sub(head, 2, 2) .. pv ..\n"                          \
    "      pack(tonumber(string.sub(id, 1, dash - 1))) ..\n"                                   \
    "      pack(tonumber(string.sub(id, dash + 1))) .. tail\n"                                 \
    "  end\n"                                                                                  \
    "  redis.call('PUBLISH', chan, msg)\n"                                                     \
    "end\n"                                                                                    \
    "local function store(key, head, pv, expiry, payload, ttl)\n"                              \
    "  local f = 2\n"                                                                          \
    "  if ttl ~= '0' then\n"                                                                   \
    "    local t = redis.call('TIME')\n"                                                       \
    "    local hard = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ttl)\n"                 \
    "    local e = unpack_v(expiry)\n"                                                         \
    "    if e == 0 or e > hard then expiry = pack(hard) f = 6 end\n"                           \
    "  end\n"                                                                                  \
    "  local flags = string.char(bit.bor(string.byte(head, 3), f))\n"                          \
    "  local hdr = string.sub(head, 1, 2) .. flags .. string.sub(head, 4, 4) .. pv .. "        \
    "expiry\n"                                                                                 \
    "  if ttl == '0' then redis.call('SET', key, hdr)\n"                                       \
    "  else redis.call('SET', key, hdr, 'PX', ttl) end\n"                                      \
    "  if #payload > 0 then redis.call('APPEND', key, payload) end\n"                          \
    "end\n"                                                                                    \
    "local function check_member(tk, member, score, dprefix)\n"                                \
    "  local pv = redis.call('GETRANGE', dprefix .. member, 4, 11)\n"                          \
    "  if #pv ~= 8 or unpack_v(pv) ~= tonumber(score) then redis.call('ZREM', tk, member) "    \
    "end\n"                                                                                    \
    "end\n"                                                                                    \
    "local function tag_all(first, last, tail, v, ttl)\n"                                      \
    "  local member = string.sub(tail, 17)\n"                                                  \
    "  local dprefix = string.sub(KEYS[1], 1, #KEYS[1] - #member)\n"                           \
    "  for i = first, last do\n"                                                               \
    "    local tk = KEYS[i]\n"                                                                 \
    "    redis.call('ZADD', tk, string.format('%.0f', v), member)\n"                           \
    "    if ttl ~= '0' and tonumber(ttl) > redis.call('PTTL', tk) then\n"                      \
    "      redis.call('PEXPIRE', tk, ttl) end\n"                                               \
    "    local old = redis.call('ZRANGE', tk, 0, 1, 'WITHSCORES')\n"                           \
    "    local any = redis.call('ZRANDMEMBER', tk, 2, 'WITHSCORES')\n"                         \
    "    for j = 1, #any do old[#old + 1] = any[j] end\n"                                      \
    "    for j = 1, #old, 2 do\n"                                                              \
    "      if old[j] ~= member then check_member(tk, old[j], old[j + 1], dprefix) end\n"       \
    "    end\n"                                                                                \
    "  end\n"                                                                                  \
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
    "local nmarks = tonumber(ARGV[#ARGV - 2])\n"                                               \
    "local mark = newest_mark(5, 4 + nmarks)\n"                                                \
    "local seen = tonumber(ARGV[#ARGV - 1])\n"                                                 \
    "if seen and mark > seen then release(string.rep('\\0', 8)) return {3} end\n"              \
    "local floor = now_us()\n"                                                                 \
    "local st, cur = inspect(KEYS[1], tonumber(ARGV[5]), floor, mark)\n"

/* ADD and CAS: store (and publish, since a process may hold the value replaced). */
#define STORE_AND_PUBLISH(publish_cond)                                                        \
    "local v, healed = next_version(KEYS[2], floor)\n"                                         \
    "local pv = pack(v)\n"                                                                     \
    "store(KEYS[1], ARGV[1], pv, ARGV[2], ARGV[3], ARGV[4])\n"                                 \
    "tag_all(5 + nmarks, #KEYS, ARGV[9], v, ARGV[4])\n"                                        \
    "if " publish_cond " then announce(ARGV[7], ARGV[8], pv, ARGV[9]) end\n"                   \
    "release(pv)\n"                                                                            \
    "return {1, v, healed}\n"

/* A write: the next version, the value, its tags (KEYS[first..]), the lease voided, the
 * announcement. ARGV[1..7] as SET's. */
#define WRITE(first_tag)                                                                       \
    "local v, healed = next_version(KEYS[2], now_us())\n"                                      \
    "local pv = pack(v)\n"                                                                     \
    "store(KEYS[1], ARGV[1], pv, ARGV[2], ARGV[3], ARGV[4])\n"                                 \
    "tag_all(" first_tag ", #KEYS, ARGV[7], v, ARGV[4])\n"                                     \
    "redis.call('DEL', KEYS[3])\n"                                                             \
    "announce(ARGV[5], ARGV[6], pv, ARGV[7])\n"

static const char script_set[] = PRELUDE WRITE("5") "return {v, healed}\n";

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
        "st == 'bad' or st == 'dead'");

static const char script_cas[] = PRELUDE LEASE
    "if st == 'ok' and string.sub(cur, 5, 12) ~= ARGV[11] then\n"
    "  release(string.sub(cur, 5, 12))\n"
    "  return {0, cur, redis.call('PTTL', KEYS[1])}\n"
    "end\n"
    "if st == 'big' then release(string.rep('\\0', 8)) return {4, cur} end\n"
    "if (st == 'none' or st == 'dead') and not lease then return {5} end\n" STORE_AND_PUBLISH(
        "true");

/* The value check and the lock are one step, so no process loads a value another has just
 * stored. A held lock is marked contended (a trailing '+') so its holder's release wakes
 * us. The skip version is the stale copy a refresh replaces. */
static const char script_lock[] = PRELUDE
    "local mark = newest_mark(3, #KEYS)\n"
    "local st, cur = inspect(KEYS[2], tonumber(ARGV[4]), now_us(), mark)\n"
    "if st == 'big' then return {4, cur} end\n"
    "if st == 'ok' and (ARGV[3] == '' or string.sub(cur, 5, 12) ~= ARGV[3]) then\n"
    "  return {2, cur, redis.call('PTTL', KEYS[2])} end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, mark} end\n"
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

/* The current version, for an invalidation that must tell what came before it from what
 * comes after. KEYS: version. Reply {version, healed}. */
static const char script_version[] =
    PRELUDE "local v, healed = next_version(KEYS[1], now_us())\n"
            "return {v, healed}\n";

/* A namespace bump or a clear: the mark takes the next version; older values are dead. */
static const char script_mark[] =
    PRELUDE "local v, healed = next_version(KEYS[2], now_us())\n"
            "redis.call('SET', KEYS[1], string.format('%.0f', v))\n"
            "announce(ARGV[1], ARGV[2], pack(v), ARGV[3], KEYS[3])\n"
            "return {v, healed}\n";

/* Announce deleted keys (entries of be16 length .. key) at version v, in messages of at most
 * ~1 MiB each (msg.h caps one at 16 MiB). */
#define ANNOUNCE_MANY                                                                          \
    "local function announce_many(parts, vkey, chan, head, origin, logkey)\n"                  \
    "  if #parts == 0 then return 0, 0, '' end\n"                                              \
    "  local v, healed = next_version(vkey, now_us())\n"                                       \
    "  local pv, from, size = pack(v), 1, 0\n"                                                 \
    "  for i = 1, #parts do\n"                                                                 \
    "    size = size + #parts[i]\n"                                                            \
    "    if size >= 1048576 or i == #parts then\n"                                             \
    "      announce(chan, head, pv, origin .. table.concat(parts, '', from, i), logkey)\n"     \
    "      from, size = i + 1, 0\n"                                                            \
    "    end\n"                                                                                \
    "  end\n"                                                                                  \
    "  return healed, v, table.concat(parts)\n"                                                \
    "end\n"

/* One step of tc_invalidate_tag: up to ARGV[2] members written at or before v0 (the
 * invalidation's start). A member goes if its key still holds the very version that tagged
 * it (a later untagged write took it out of the tag), with its lock (voiding a load's
 * lease). KEYS: tag, version, log. ARGV: v0, limit, data key prefix, lock key prefix,
 * channel, many-keys head, origin, log maxlen. Reply {members seen, keys deleted, healed,
 * version announced, the deleted keys as op-5 entries}. */
static const char script_tag_del[] = PRELUDE ANNOUNCE_MANY
    "local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', "
    "0, tonumber(ARGV[2]))\n"
    "local parts, seen = {}, {}\n"
    "for i = 1, #m, 2 do\n"
    "  local member = m[i]\n"
    "  local pv = redis.call('GETRANGE', ARGV[3] .. member, 4, 11)\n"
    "  if #pv == 8 and unpack_v(pv) == tonumber(m[i + 1]) then\n"
    "    redis.call('DEL', ARGV[3] .. member, ARGV[4] .. member)\n"
    "    parts[#parts + 1] = struct.pack('>H', #member) .. member\n"
    "  end\n"
    "  seen[#seen + 1] = member\n"
    "end\n"
    "if #seen > 0 then redis.call('ZREM', KEYS[1], unpack(seen)) end\n"
    "local healed, v, all = announce_many(parts, KEYS[2], ARGV[5], ARGV[6], ARGV[7], "
    "KEYS[3])\n"
    "return {#seen, #parts, healed, v, all}\n";

/* One step of tc_invalidate_prefix: the keys one SCAN step found, data keys (<prefix>"k:")
 * and locks (<prefix>"l:"). A data key goes unless a write after v0 stored it; a lock goes
 * (the load holding it must not store what it read). KEYS: version, log, found keys. ARGV:
 * v0, length of <prefix>, channel, many-keys head, origin, log maxlen. Reply {keys deleted,
 * healed, version announced, the deleted keys as op-5 entries}. */
static const char script_prefix_del[] = PRELUDE ANNOUNCE_MANY
    "local v0, plen = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local parts = {}\n"
    "for i = 3, #KEYS do\n"
    "  local k = KEYS[i]\n"
    "  if string.byte(k, plen + 1) == 108 then redis.call('DEL', k)\n"
    "  else\n"
    "    local h = redis.pcall('GETRANGE', k, 0, 11)\n"
    "    local newer = type(h) == 'string' and #h == 12 and string.byte(h, 1) == 199 and\n"
    "      string.byte(h, 2) == 1 and unpack_v(string.sub(h, 5, 12)) > v0\n"
    "    if not newer and redis.call('DEL', k) == 1 then\n"
    "      local user = string.sub(k, plen + 3)\n"
    "      parts[#parts + 1] = struct.pack('>H', #user) .. user\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local healed, v, all = announce_many(parts, KEYS[1], ARGV[3], ARGV[4], ARGV[5], "
    "KEYS[2])\n"
    "return {#parts, healed, v, all}\n";

/* Write-through's lock: taken over from a load (whose lease it voids), but never from
 * another write-through (tokens starting 'w'), which it waits for. KEYS: lock, version.
 * ARGV: token, ttl ms. Reply {1, version, healed} taken, or {0, pttl} held. */
static const char script_wlock[] = PRELUDE
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur and string.sub(cur, 1, 1) == 'w' then return {0, redis.call('PTTL', KEYS[1])} "
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "local v, healed = next_version(KEYS[2], now_us())\n"
    "return {1, v, healed}\n";

/* Write-through's store: SET, if the write lock is still ours. KEYS as SET (data, version,
 * lock, log, tags...). ARGV as SET, with the token before the log maxlen. Reply
 * {1, version, healed}, or {0}: a tc_set or tc_del of the key came meanwhile. */
static const char script_put_leased[] =
    PRELUDE "local cur = redis.call('GET', KEYS[3])\n"
            "if cur ~= ARGV[8] and cur ~= ARGV[8] .. '+' then return {0} end\n" WRITE(
                "5") "return {1, v, healed}\n";

/* Write-behind's SET: the write and its queue entry in one step, unless the queue is full.
 * KEYS: data, version, lock, log, queue, tags... ARGV as SET, with the queue's limit before
 * the log maxlen. Reply {1, version, healed}, or {0}: full. */
static const char script_put_queued[] =
    PRELUDE "if redis.call('XLEN', KEYS[5]) >= tonumber(ARGV[8]) then return {0} end\n" WRITE(
        "6") "redis.call('XADD', KEYS[5], '*', 'o', 's', 'k', string.sub(ARGV[7], 17), 'n', "
             "string.format('%.0f', v), 'v', ARGV[3])\n"
             "return {1, v, healed}\n";

/* Write-behind's DEL. KEYS: data, version, lock, log, queue. ARGV: channel, msg head, msg
 * tail, queue limit, log maxlen. Reply as PUT_QUEUED. */
static const char script_del_queued[] =
    PRELUDE "if redis.call('XLEN', KEYS[5]) >= tonumber(ARGV[4]) then return {0} end\n"
            "local v, healed = next_version(KEYS[2], now_us())\n"
            "redis.call('DEL', KEYS[1], KEYS[3])\n"
            "announce(ARGV[1], ARGV[2], pack(v), ARGV[3])\n"
            "redis.call('XADD', KEYS[5], '*', 'o', 'd', 'k', string.sub(ARGV[3], 17), 'n', "
            "string.format('%.0f', v))\n"
            "return {1, v, healed}\n";

/* The flusher wrote these: remember each key's newest written version (so a replayed
 * older write is skipped). KEYS: <prefix>"wbv:"<key>... ARGV: ttl ms, then one version per
 * key. Reply: how many moved forward. */
static const char script_wb_done[] =
    "local n = 0\n"
    "for i = 1, #KEYS do\n"
    "  local v = tonumber(ARGV[i + 1])\n"
    "  local cur = tonumber(redis.call('GET', KEYS[i])) or 0\n"
    "  if v > cur then\n"
    "    redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1]) n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

static const char *const bodies[TC__SCRIPT_COUNT] = {
    [TC__SCRIPT_SET] = script_set,
    [TC__SCRIPT_DEL] = script_del,
    [TC__SCRIPT_ADD] = script_add,
    [TC__SCRIPT_CAS] = script_cas,
    [TC__SCRIPT_LOCK] = script_lock,
    [TC__SCRIPT_UNLOCK] = script_unlock,
    [TC__SCRIPT_EXTEND] = script_extend,
    [TC__SCRIPT_EVICT] = script_evict,
    [TC__SCRIPT_VERSION] = script_version,
    [TC__SCRIPT_MARK] = script_mark,
    [TC__SCRIPT_TAG_DEL] = script_tag_del,
    [TC__SCRIPT_PREFIX_DEL] = script_prefix_del,
    [TC__SCRIPT_WLOCK] = script_wlock,
    [TC__SCRIPT_PUT_LEASED] = script_put_leased,
    [TC__SCRIPT_PUT_QUEUED] = script_put_queued,
    [TC__SCRIPT_DEL_QUEUED] = script_del_queued,
    [TC__SCRIPT_WB_DONE] = script_wb_done,
};

const char *tc__script_body(tc__script_t s) {
    return s < TC__SCRIPT_COUNT ? bodies[s] : NULL;
}
