//! The Lua scripts that make a step atomic on the server: starting, finishing and cancelling a
//! task, and an agent's heartbeat. Each runs as one command, so a cancel and a start of the
//! same task cannot interleave. Every key a script touches shares the queue's hash tag.

use std::sync::OnceLock;

use redis::Script;

/// Starts a delivered task unless it was cancelled or is no longer this agent's.
///
/// KEYS: tasks stream, running hash, cancel key, client reply stream, client key.
/// ARGV: entry id, task id, agent, max attempts, `Started` message, reply TTL (ms).
/// The `Started` message is written only while the client lives.
/// Returns `{0, n}` skip (cancelled, or claimed by another agent), `{1, n}` run attempt `n`,
/// `{2, n}` fail: delivered `n` times, more than max attempts.
const START: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('DEL', KEYS[3])
  redis.call('XACK', KEYS[1], 'agents', ARGV[1])
  redis.call('XDEL', KEYS[1], ARGV[1])
  return {0, 0}
end
local p = redis.pcall('XPENDING', KEYS[1], 'agents', ARGV[1], ARGV[1], 1)
if type(p) ~= 'table' or #p == 0 or p[1][2] ~= ARGV[3] then
  return {0, 0}
end
local attempt = tonumber(p[1][4])
if attempt > tonumber(ARGV[4]) then
  return {2, attempt}
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('XADD', KEYS[4], '*', 'm', ARGV[5])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
end
return {1, attempt}
";

/// Reports a task's outcome and removes the task.
///
/// KEYS: tasks stream, running hash, client reply stream, argument blob key, client key.
/// ARGV: entry id, task id, agent, `Done` message, reply TTL (ms).
/// The reply is written only while the client lives (a duplicate after its pool is done, or a
/// reply to a client gone longer than the reply TTL, leaves no key behind).
const FINISH: &str = r"
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('XADD', KEYS[3], '*', 'm', ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[3] then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
redis.pcall('XACK', KEYS[1], 'agents', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[4])
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

/// Runs a pipeline of invocations of `script`, loading the script first if the server does not
/// have it (after a restart): `EVALSHA` in a pipeline does not fall back by itself.
pub(crate) fn pipelined<T: redis::FromRedisValue>(
    conn: &mut redis::Connection,
    script: &Script,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<T> {
    match pipe.query(conn) {
        Err(e) if e.code() == Some("NOSCRIPT") => {
            script.load(conn)?;
            pipe.query(conn)
        }
        other => other,
    }
}
