//! The Lua scripts that make a step atomic on the server: adding, starting, finishing and
//! cancelling tasks, and an agent's heartbeat. Each runs as one command, so a cancel and a start of the
//! same task cannot interleave. Every key a script touches shares the queue's hash tag.

use std::sync::OnceLock;

use redis::Script;

/// Adds a client's tasks to the stream, all or none, and (first) restores its liveness key.
///
/// Atomic against Redis refusing part of it: a script's writes can be refused for memory only
/// before its first write, so either every task is added or none is (a pipeline could add
/// some, fail the rest, and the client then failed all of them while agents ran the first).
/// The liveness key is set first in the same call, so an agent never sees one of these tasks
/// while the key is missing (after Redis restarted without persistence, for example).
///
/// KEYS: tasks stream, client key, then the b argument blob keys.
/// ARGV: client key TTL (ms), blob TTL (ms), b, then the b blobs, then the messages.
/// Returns the messages' entry ids, in order.
const ADD: &str = r"
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
local b = tonumber(ARGV[3])
for i = 1, b do
  redis.call('SET', KEYS[2 + i], ARGV[3 + i], 'PX', ARGV[2])
end
local ids = {}
for i = 4 + b, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'm', ARGV[i])
end
return ids
";

/// Starts a batch of delivered tasks, each unless it was cancelled or is no longer this
/// agent's: one call for all the entries one read delivered (each redis.call inside, and each
/// argument, costs far less than a script call of its own). The tasks come grouped by client.
///
/// KEYS: tasks stream, running hash, then each task's cancel key, then for each group its
/// client's reply stream and client key.
/// ARGV: agent, n tasks, m groups, lowest and highest entry id, then for each group: its
/// number of tasks, max attempts, reply TTL (ms); then for each task: entry id, task id, seq.
/// One reply entry per group lists the tasks started (field `s`: their seqs, comma-separated),
/// written only while the client lives.
/// Returns, per task, `code + 4 × attempt`: code 0 skip (cancelled, or claimed by another
/// agent), 1 run attempt `attempt`, 2 fail: delivered `attempt` times, more than max attempts.
const START: &str = r"
local agent = ARGV[1]
local n, m = tonumber(ARGV[2]), tonumber(ARGV[3])
local owned = {}
local p = redis.pcall('XPENDING', KEYS[1], 'agents', ARGV[4], ARGV[5], n + 10000, agent)
if type(p) == 'table' then
  for _, e in ipairs(p) do
    owned[e[1]] = e[4]
  end
end
local cancelled = 0
for i = 1, n, 500 do
  cancelled = cancelled + redis.call('EXISTS', unpack(KEYS, 2 + i, 2 + math.min(i + 499, n)))
end
local results, running = {}, {}
local t = 0
local first = 5 + 3 * m
for g = 1, m do
  local count, max_attempts = tonumber(ARGV[3 + 3 * g]), tonumber(ARGV[4 + 3 * g])
  local started = {}
  for _ = 1, count do
    t = t + 1
    local a = first + 3 * (t - 1)
    local entry = ARGV[a + 1]
    local attempt = owned[entry]
    if cancelled > 0 and redis.call('EXISTS', KEYS[2 + t]) == 1 then
      redis.call('DEL', KEYS[2 + t])
      redis.call('XACK', KEYS[1], 'agents', entry)
      redis.call('XDEL', KEYS[1], entry)
      results[t] = 0
    elseif not attempt then
      results[t] = 0
    elseif attempt > max_attempts then
      results[t] = 2 + 4 * attempt
    else
      running[#running + 1] = ARGV[a + 2]
      running[#running + 1] = agent
      started[#started + 1] = ARGV[a + 3]
      results[t] = 1 + 4 * attempt
    end
  end
  if #started > 0 and redis.call('EXISTS', KEYS[2 + n + 2 * g]) == 1 then
    local reply = KEYS[1 + n + 2 * g]
    redis.call('XADD', reply, '*', 's', table.concat(started, ','))
    redis.call('PEXPIRE', reply, ARGV[5 + 3 * g])
  end
end
for i = 1, #running, 1000 do
  redis.call('HSET', KEYS[2], unpack(running, i, math.min(i + 999, #running)))
end
return results
";

/// Reports a batch of outcomes and removes their tasks: one call for a batch of the replier.
///
/// KEYS: tasks stream, running hash, then for each of the m reply messages its client's reply
/// stream and client key, then the b argument blob keys (of the tasks whose argument was
/// stored out of the stream).
/// ARGV: agent, n tasks, m, b, then for each message: the message (the `Done`s of tasks of one
/// client), reply TTL (ms); then for each task: entry id, task id.
/// A reply is written only while its client lives (a duplicate after its pool is done, or a
/// reply to a client gone longer than the reply TTL, leaves no key behind). A task's running
/// record is removed only if it is still this agent's.
const FINISH: &str = r"
local agent = ARGV[1]
local n, m, b = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for j = 1, m do
  if redis.call('EXISTS', KEYS[2 + 2 * j]) == 1 then
    local reply = KEYS[1 + 2 * j]
    redis.call('XADD', reply, '*', 'm', ARGV[3 + 2 * j])
    redis.call('PEXPIRE', reply, ARGV[4 + 2 * j])
  end
end
local first = 4 + 2 * m
local entries, mine = {}, {}
for i = 1, n do
  local task = ARGV[first + 2 * i]
  entries[i] = ARGV[first + 2 * i - 1]
  if redis.call('HGET', KEYS[2], task) == agent then
    mine[#mine + 1] = task
  end
end
for i = 1, #mine, 500 do
  redis.call('HDEL', KEYS[2], unpack(mine, i, math.min(i + 499, #mine)))
end
for i = 1, n, 500 do
  local last = math.min(i + 499, n)
  redis.pcall('XACK', KEYS[1], 'agents', unpack(entries, i, last))
  redis.call('XDEL', KEYS[1], unpack(entries, i, last))
end
for i = 1, b, 500 do
  redis.call('DEL', unpack(KEYS, 2 + 2 * m + i, 2 + 2 * m + math.min(i + 499, b)))
end
return 1
";

/// Cancels a task from the client.
///
/// KEYS: tasks stream, running hash, cancel key, argument blob key.
/// ARGV: entry id, task id, kill ('1' or '0'), control stream prefix, key TTL (ms).
/// Returns 0: removed before any agent started it (no agent will); 1: running, left alone;
/// 2: running, its agent was asked to kill it; 3: not found (finished, or lost).
const CANCEL: &str = r"
local agent = redis.call('HGET', KEYS[2], ARGV[2])
if agent then
  if ARGV[3] == '1' then
    local control = ARGV[4] .. agent
    redis.call('XADD', control, '*', 'kill', ARGV[2])
    if redis.call('PTTL', control) < 0 then
      redis.call('PEXPIRE', control, ARGV[5])
    end
    return 2
  end
  return 1
end
local p = redis.pcall('XPENDING', KEYS[1], 'agents', ARGV[1], ARGV[1], 1)
local removed = redis.call('XDEL', KEYS[1], ARGV[1])
if removed == 0 then
  return 3
end
redis.call('DEL', KEYS[4])
if type(p) == 'table' and #p > 0 then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[5])
end
return 0
";

/// An agent's heartbeat: resets the idle time of the entries it still owns (so no other agent
/// reclaims a task that runs long: redelivery follows liveness, not duration) and keeps its
/// control stream alive.
///
/// KEYS: tasks stream, control stream. ARGV: agent, control TTL (ms), entry ids…
/// Returns how many entries were still this agent's.
const HEARTBEAT: &str = r"
local kept = 0
for i = 3, #ARGV do
  local p = redis.pcall('XPENDING', KEYS[1], 'agents', ARGV[i], ARGV[i], 1)
  if type(p) == 'table' and #p > 0 and p[1][2] == ARGV[1] then
    redis.call('XCLAIM', KEYS[1], 'agents', ARGV[1], 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return kept
";

/// The client's watchdog: which of these tasks the broker no longer knows (neither queued nor
/// running), for example after Redis restarted without persistence.
///
/// KEYS: tasks stream, running hash. ARGV: pairs of entry id, task id.
/// Returns the 1-based pair indices that are missing.
const MISSING: &str = r"
local missing = {}
for i = 1, #ARGV, 2 do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #e == 0 and redis.call('HEXISTS', KEYS[2], ARGV[i + 1]) == 0 then
    table.insert(missing, (i + 1) / 2)
  end
end
return missing
";

/// Removes the consumers of agents gone for good: those other than the caller with no
/// pending entry (their tasks were reclaimed or finished) that have not read for longer than
/// a threshold (a live agent reads at least every half second while it has room, and owns
/// pending entries while it has none).
///
/// KEYS: tasks stream. ARGV: the caller's name, idle threshold (ms).
/// Returns how many consumers were removed.
const PRUNE: &str = r"
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], 'agents')
if type(consumers) ~= 'table' or consumers.err then
  return 0
end
local removed = 0
for _, c in ipairs(consumers) do
  local f = {}
  for i = 1, #c, 2 do
    f[c[i]] = c[i + 1]
  end
  if f['name'] ~= ARGV[1] and f['pending'] == 0 and f['idle'] > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], 'agents', f['name'])
    removed = removed + 1
  end
end
return removed
";

/// Deletes a client's reply stream once it is empty (the client has no task left).
///
/// KEYS: reply stream.
const DROP_IF_EMPTY: &str = r"
if redis.call('XLEN', KEYS[1]) == 0 then
  return redis.call('DEL', KEYS[1])
end
return 0
";

macro_rules! script {
    ($fn:ident, $src:ident) => {
        pub(crate) fn $fn() -> &'static Script {
            static S: OnceLock<Script> = OnceLock::new();
            S.get_or_init(|| Script::new($src))
        }
    };
}

script!(add, ADD);
script!(start, START);
script!(finish, FINISH);
script!(cancel, CANCEL);
script!(heartbeat, HEARTBEAT);
script!(missing, MISSING);
script!(drop_if_empty, DROP_IF_EMPTY);
script!(prune, PRUNE);
