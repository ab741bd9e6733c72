//! The Lua scripts, each one round trip, and the rules that make versions safe whatever Redis
//! loses.
//!
//! Keys, under the namespace prefix `ns`:
//! - `ns:m`, the namespace's meta hash: `gen` (the generation), `seq` (the invalidation
//!   sequence of this generation) and `boot` (the `run_id` of the server process the
//!   generation was started on);
//! - `ns:e:<scope>:<key>` (or `ns:e:<scope>#<sha256>` for long keys), an entry: a hash with `v`
//!   (the envelope), `t` (its tag names, NUL-separated), `g` (the generation it was
//!   stamped in) and, on a cluster, `s` (the `seq` at which its tag versions were checked
//!   current, for `known.rs`);
//! - `ns:t:<gen>:<tag>`, a tag's version in a generation.
//!
//! The rules:
//! 1. **Generations.** Every script first checks that `ns:m` exists and that its `boot` is the
//!    `run_id` of the server the client's connection reached (the client learns it when it
//!    connects, and a restart always breaks the connection). If `ns:m` is gone (evicted,
//!    flushed) or was written by another server process (Redis restarted, perhaps from an
//!    older snapshot, or failed over to a replica), the script starts a new generation: a
//!    fresh random `gen`, `seq` 0. `clear` starts one too. An entry or a stamp of another
//!    generation is never current, and tag keys are per generation, so nothing lost or
//!    restored can make an old entry current again.
//! 2. **Versions only grow within a generation.** `seq` and `gen` live in one key, so `seq`
//!    cannot be lost without `gen`. An invalidation sets each of its tags (that exist) to
//!    `HINCRBY seq 1`.
//! 3. **A missing tag key is created at the current `seq`**, never at 0. An entry stamped with
//!    version `v` of a tag saw the tag at `v`, when `seq` was at least `v`; if `seq` is still
//!    `v` now, no invalidation of any tag happened since, so the entry is still valid; if it
//!    moved on, the re-created tag differs from `v` and the entry is outdated. So an evicted
//!    tag key makes its entries outdated and never current again. A read that finds a tag key
//!    missing treats the entry as outdated.
//! 4. **A store checks before it writes.** `PUT` writes only when the stamp's generation and
//!    every stamped tag version are still current: an outdated value never replaces another.
//! 5. **Keys are declared.** A script is given, in `KEYS`, every key it touches (but the hit
//!    script on one Redis: [`UNDECLARED_KEYS`]): tag keys in the generation the client
//!    expects (the entry's or the stamp's, or the last one it saw). A stamp or an invalidation
//!    that finds another generation does nothing and returns it; the client asks again with
//!    the keys of that one.

/// Every script but the cluster's entry writes starts with this: the `run_id` of the server
/// process it runs on, and the generation, started anew when the namespace's meta key is
/// missing or belongs to another server process. `KEYS[1]` is the meta key, `ARGV[1]` the
/// `run_id` the client's connection reached (empty on a cluster: the script reads its node's),
/// `ARGV[2]` a random candidate generation.
const PROLOGUE: &str = r"
local boot = ARGV[1]
if boot == '' then boot = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') end
if not boot then return redis.error_reply('no run_id in INFO server') end
local function generation()
  local m = redis.call('HMGET', KEYS[1], 'gen', 'boot')
  if m[1] and m[2] == boot then return m[1] end
  redis.call('HSET', KEYS[1], 'gen', ARGV[2], 'boot', boot, 'seq', 0)
  return ARGV[2]
end
local gen = generation()
";

/// Reads an entry: nil (no entry), `{'', ''}` (unreadable: of another type) or
/// `{v, t, g, s}` (`s` is `''` when the entry does not have it).
const READ_ENTRY_FN: &str = r"
local function read_entry(key)
  local h = redis.pcall('HMGET', key, 'v', 't', 'g', 's')
  if h.err then return { '', '' } end
  if not h[1] then
    if redis.call('EXISTS', key) == 0 then return nil end
    return { '', '' }
  end
  return { h[1], h[2] or '', h[3] or '', h[4] or '' }
end
";

/// `KEYS[2]` the entry, `ARGV[3]` the tag prefix. Returns nil (no entry, or an entry of another
/// generation), `{'', ''}` (unreadable: of another type), or `{v, t, version...}` with `''`
/// for a missing tag key.
const GET: &str = r"
local e = read_entry(KEYS[2])
if not e or #e == 2 then return e end
if e[3] ~= gen then return nil end
local out = { e[1], e[2] }
if #e[2] > 0 then
  local prefix = ARGV[3] .. gen .. ':'
  for tag in string.gmatch(e[2], '([^%z]+)') do
    out[#out + 1] = redis.call('GET', prefix .. tag) or ''
  end
end
return out
";

/// `KEYS[2..]` the tags' keys in the generation the client expects, `ARGV[4]`. Returns
/// `{gen}` when the generation is another (the client asks again with its keys), else
/// `{gen, seq, version...}`, creating missing tag keys at `seq` (rule 3).
const STAMP: &str = r"
if gen ~= ARGV[4] then return { gen } end
local seq = redis.call('HGET', KEYS[1], 'seq')
local out = { gen, seq }
for i = 2, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    redis.call('SET', KEYS[i], seq, 'PX', 3600000)
    v = seq
  end
  out[#out + 1] = v
end
return out
";

/// On a cluster, the first half of a read: `KEYS[1]` the entry, read by `read_entry`.
const READ_ENTRY: &str = r"
return read_entry(KEYS[1])
";

/// On a cluster, where an entry and its tags live on different nodes, the second half of a
/// read: `ARGV[4]` the entry's generation, `KEYS[2..]` its tags' keys in it. Returns nil when
/// the entry is of another generation, or `{version...}` with `''` for a missing tag key (the
/// entry is then outdated).
const VERSIONS: &str = r"
if gen ~= ARGV[4] then return nil end
local out = {}
for i = 2, #KEYS do
  out[#out + 1] = redis.call('GET', KEYS[i]) or ''
end
return out
";

/// Whether a stamp is still current (rule 4), as the store checks it. `ARGV[4]` the stamp's
/// generation, `ARGV[6]` the tag names (NUL-separated), `ARGV[7]` the TTL in ms, `ARGV[8..]`
/// the stamped version of each tag, whose key in the stamp's generation is `KEYS[1 + i]`.
/// Returns -1 when it is not; otherwise goes on with `tags`, the keys of the entry's tags, and
/// `seq`.
const CHECK: &str = r"
if gen ~= ARGV[4] then return -1 end
local seq = redis.call('HGET', KEYS[1], 'seq')
local tags = {}
for i = 1, #ARGV - 7 do
  local k = KEYS[1 + i]
  local v = redis.call('GET', k)
  if not v then
    redis.call('SET', k, seq, 'PX', ARGV[7])
    v = seq
  end
  if v ~= ARGV[7 + i] then return -1 end
  tags[#tags + 1] = k
end
";

/// One Redis: the entry last in `KEYS` (after the tags'), `ARGV[5]` the envelope, and
/// [`CHECK`]'s arguments. Writes the entry only when the stamp is current, in the same script. Returns 1 when stored, -1 when
/// the stamp is no longer current.
const PUT: &str = r"
local entry = KEYS[#KEYS]
local kind = redis.call('TYPE', entry).ok
if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', entry) end
redis.call('HSET', entry, 'v', ARGV[5], 't', ARGV[6], 'g', gen)
redis.call('PEXPIRE', entry, ARGV[7])
for _, k in ipairs(tags) do redis.call('PEXPIRE', k, ARGV[7], 'GT') end
return 1
";

/// On a cluster, after [`CHECK`] on the node of the tags: the tags' expiry, then the `seq` at
/// which the stamp was found current (what the entry records as `s`).
const CHECKED: &str = r"
for _, k in ipairs(tags) do redis.call('PEXPIRE', k, ARGV[7], 'GT') end
return tonumber(seq)
";

/// On a cluster, once [`CHECK`] passed: `KEYS[1]` the entry, `ARGV[1]` the envelope,
/// `ARGV[2]` the tag names, `ARGV[3]` the generation, `ARGV[4]` the TTL in ms, `ARGV[5]` the
/// `seq` [`CHECKED`] returned.
const WRITE_ENTRY: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', ARGV[2], 'g', ARGV[3], 's', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// `ARGV[4]` the channel, `ARGV[5]` and `ARGV[6]` the feed message's head and tail, between
/// which it writes `gen:seq` (the number this invalidation took), `ARGV[7]` the generation the
/// client expects, `KEYS[2..]` the tags' keys in it. Returns `{gen}` when the generation is
/// another (nothing done: the client asks again with its keys), else `{gen, seq}`. A missing tag key stays missing: whoever stamps it next creates it at a `seq`
/// past this invalidation (rule 3). The channel is an argument, not a key: on a cluster every
/// key of a script lives on one node, and a `PUBLISH` reaches every node.
///
/// On a cluster whose `{ns}` slot is migrating, Redis refuses it when some of its keys have
/// moved or are missing (`TRYAGAIN`): the client then runs [`INVALIDATE_MIGRATING`].
const INVALIDATE: &str = r"
if gen ~= ARGV[7] then return { gen } end
local v = redis.call('HINCRBY', KEYS[1], 'seq', 1)
for i = 2, #KEYS do
  local k = KEYS[i]
  if redis.pcall('EXISTS', k) == 1 then redis.pcall('SET', k, v, 'KEEPTTL') end
end
redis.call('PUBLISH', ARGV[4], ARGV[5] .. gen .. ':' .. v .. ARGV[6])
return { gen, tostring(v) }
";

/// [`INVALIDATE`] while the `{ns}` slot migrates on a cluster, where Redis refuses a script
/// whose declared keys are split between the two nodes (`TRYAGAIN`): the same, with the tag
/// keys computed here from `ARGV[7..]` (the tags) in the current generation, and those this
/// node cannot reach (already moved, or missing) skipped. Returns `{gen, seq}`.
///
/// Why skipping is safe once the migration completes: the meta key moves too, and on its new
/// node the prologue finds a `boot` that is not that node's, so a new generation outdates
/// every entry. Not if the migration is aborted and the moved keys are moved back while the
/// meta key never left: the skipped tag returns at its old version, and the invalidation is
/// lost for entries stored in Redis (the feed still told every instance).
const INVALIDATE_MIGRATING: &str = r"
local v = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local prefix = ARGV[3] .. gen .. ':'
for i = 7, #ARGV do
  local k = prefix .. ARGV[i]
  if redis.pcall('EXISTS', k) == 1 then redis.pcall('SET', k, v, 'KEEPTTL') end
end
redis.call('PUBLISH', ARGV[4], ARGV[5] .. gen .. ':' .. v .. ARGV[6])
return { gen, tostring(v) }
";

/// `ARGV[3]` the channel, `ARGV[4]` the feed message. A new generation: every entry, and every
/// load stamped before, is outdated at once, on every instance.
const CLEAR: &str = r"
local boot = ARGV[1]
if boot == '' then boot = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') end
if not boot then return redis.error_reply('no run_id in INFO server') end
redis.call('HSET', KEYS[1], 'gen', ARGV[2], 'boot', boot, 'seq', 0)
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// On a cluster, an instance's heartbeat: `ARGV[4]` the channel, `ARGV[5]` and `ARGV[6]` the
/// message's head and tail, between which it writes `gen:seq`. Published from the node of the
/// namespace's tag versions (the node invalidations are published from, so that a
/// subscription that stops hearing that node notices, and so that every invalidation numbered
/// up to `seq` reaches a subscription before it: `known.rs`). Returns `{gen, seq}`: the
/// prologue starts a new generation on a promoted replica.
const HEARTBEAT: &str = r"
local seq = redis.call('HGET', KEYS[1], 'seq')
redis.call('PUBLISH', ARGV[4], ARGV[5] .. gen .. ':' .. seq .. ARGV[6])
return { gen, seq }
";

const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Every script declares in `KEYS` the keys it touches (a cluster requires it in principle,
/// Dragonfly in practice), with two exceptions: on one Redis the hit script reads the tag keys
/// its entry names, which the client cannot know before the entry is read (a value's tags
/// from its result); on a cluster, [`INVALIDATE_MIGRATING`]. Their first line tells Dragonfly
/// so; Redis reads it as a comment. Not tested on Dragonfly.
const UNDECLARED_KEYS: &str = "--!df flags=allow-undeclared-keys\n";

/// The scripts, loaded once per backend.
pub(super) struct Scripts {
    pub(super) get: redis::Script,
    pub(super) stamp: redis::Script,
    pub(super) put: redis::Script,
    pub(super) invalidate: redis::Script,
    /// A cluster's invalidation while the namespace's slot migrates.
    pub(super) invalidate_migrating: redis::Script,
    pub(super) clear: redis::Script,
    pub(super) unlock: redis::Script,
    /// A cluster's read: the entry.
    pub(super) read_entry: redis::Script,
    /// A cluster's read, after the entry: its tags' versions.
    pub(super) versions: redis::Script,
    /// A cluster's store, before the entry: the stamp's check.
    pub(super) check: redis::Script,
    /// A cluster's store, once checked: the entry.
    pub(super) write_entry: redis::Script,
    /// A cluster's heartbeat, with the generation.
    pub(super) heartbeat: redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let script = |body: &str| redis::Script::new(body);
        let with_generation = |body: &str| script(&format!("{PROLOGUE}{body}"));
        Scripts {
            get: script(&format!("{UNDECLARED_KEYS}{PROLOGUE}{READ_ENTRY_FN}{GET}")),
            stamp: with_generation(STAMP),
            put: with_generation(&format!("{CHECK}{PUT}")),
            invalidate: with_generation(INVALIDATE),
            invalidate_migrating: script(&format!(
                "{UNDECLARED_KEYS}{PROLOGUE}{INVALIDATE_MIGRATING}"
            )),
            clear: script(CLEAR),
            unlock: script(UNLOCK),
            read_entry: script(&format!("{READ_ENTRY_FN}{READ_ENTRY}")),
            versions: with_generation(VERSIONS),
            check: with_generation(&format!("{CHECK}{CHECKED}")),
            write_entry: script(WRITE_ENTRY),
            heartbeat: with_generation(HEARTBEAT),
        }
    }
}
