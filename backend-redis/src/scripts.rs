//! The Lua scripts that make a step atomic on the server: starting, finishing and cancelling a
//! task, and an agent's heartbeat. Each runs as one command, so a cancel and a start of the
//! same task cannot interleave. Every key a script touches shares the queue's hash tag.

use std::sync::OnceLock;

use redis::Script;

/// Starts a batch of delivered tasks, each unless it was cancelled or is no longer this
/// agent's: one call for all the entries one read delivered (each redis.call inside costs
/// far less than a script call of its own).
///
/// KEYS: tasks stream, running hash, then for each of the n tasks its cancel key, then each
/// one's client reply stream, then each one's client key.
/// ARGV: agent, n, then for each task: entry id, task id, max attempts, seq, reply TTL (ms).
/// One reply entry per client lists the tasks started (field `s`: their seqs, comma-separated),
/// written only while the client lives.
/// Returns, per task, `{0, 0}` skip (cancelled, or claimed by another agent), `{1, n}` run
/// attempt `n`, `{2, n}` fail: delivered `n` times, more than max attempts.
const START: &str = r"
local agent = ARGV[1]
local n = tonumber(ARGV[2])
local owned = {}
local p = redis.pcall('XPENDING', KEYS[1], 'agents', '-', '+', 1000000000, agent)
if type(p) == 'table' then
  for _, e in ipairs(p) do
    owned[e[1]] = tonumber(e[4])
  end
end
local cancelled = 0
for i = 1, n, 500 do
  cancelled = cancelled + redis.call('EXISTS', unpack(KEYS, 2 + i, 2 + math.min(i + 499, n)))
end
local results = {}
local running = {}
local started = {}
local clients = {}
for i = 1, n do
  local a = 2 + (i - 1) * 5
  local entry, task = ARGV[a + 1], ARGV[a + 2]
  local attempt = owned[entry]
  if cancelled > 0 and redis.call('EXISTS', KEYS[2 + i]) == 1 then
    redis.call('DEL', KEYS[2 + i])
    redis.call('XACK', KEYS[1], 'agents', entry)
    redis.call('XDEL', KEYS[1], entry)
    results[i] = {0, 0}
  elseif not attempt then
    results[i] = {0, 0}
  elseif attempt > tonumber(ARGV[a + 3]) then
    results[i] = {2, attempt}
  else
    running[#running + 1] = task
    running[#running + 1] = agent
    local reply = KEYS[2 + n + i]
    if not started[reply] then
      started[reply] = {}
      clients[#clients + 1] = {reply, KEYS[2 + 2 * n + i], ARGV[a + 5]}
    end
    table.insert(started[reply], ARGV[a + 4])
    results[i] = {1, attempt}
  end
end
for i = 1, #running, 1000 do
  redis.call('HSET', KEYS[2], unpack(running, i, math.min(i + 999, #running)))
end
for _, c in ipairs(clients) do
  if redis.call('EXISTS', c[2]) == 1 then
    redis.call('XADD', c[1], '*', 's', table.concat(started[c[1]], ','))
    redis.call('PEXPIRE', c[1], c[3])
  end
end
return results
";

/// Reports a batch of outcomes and removes their tasks: one call for a batch of the replier.
///
/// KEYS: tasks stream, running hash, then for each of the n tasks its argument blob key, then
/// for each of the m reply messages its client reply stream, then its client key.
/// ARGV: agent, n, m, then for each task: entry id, task id; then for each message: the
/// message (the `Done`s of tasks of that client), reply TTL (ms).
/// A reply is written only while its client lives (a duplicate after its pool is done, or a
/// reply to a client gone longer than the reply TTL, leaves no key behind). A task's running
/// record is removed only if it is still this agent's.
const FINISH: &str = r"
local agent = ARGV[1]
local n = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local msg = 3 + 2 * n
for j = 1, m do
  if redis.call('EXISTS', KEYS[2 + n + m + j]) == 1 then
    local reply = KEYS[2 + n + j]
    redis.call('XADD', reply, '*', 'm', ARGV[msg + 2 * j - 1])
    redis.call('PEXPIRE', reply, ARGV[msg + 2 * j])
  end
end
local entries = {}
for i = 1, n do
  local task = ARGV[3 + 2 * i]
  entries[i] = ARGV[2 + 2 * i]
  if redis.call('HGET', KEYS[2], task) == agent then
    redis.call('HDEL', KEYS[2], task)
  end
end
for i = 1, n, 500 do
  local last = math.min(i + 499, n)
  redis.pcall('XACK', KEYS[1], 'agents', unpack(entries, i, last))
  redis.call('XDEL', KEYS[1], unpack(entries, i, last))
  redis.call('DEL', unpack(KEYS, 2 + i, 2 + last))
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

script!(start, START);
script!(finish, FINISH);
script!(cancel, CANCEL);
script!(heartbeat, HEARTBEAT);
script!(missing, MISSING);
script!(drop_if_empty, DROP_IF_EMPTY);
