//! The ACL rights a client or agent needs, checked where they are needed: at connect and at
//! `Agent::start`, each command is probed with harmless arguments on a key that does not
//! exist (or has another type), so a missing right is an error naming it instead of a hang
//! later. `ACL DRYRUN` would need a right of its own (`+acl|dryrun`), which an application's
//! user does not have; a probe needs only the right it checks. Redis checks the rights (and
//! the key pattern) before it looks at the arguments: a refused probe answers `NOPERM`, an
//! allowed one anything else.

use redis::{Cmd, Connection, RedisResult, Value};

use crate::keys::{Keys, GROUP};

/// One right and the command that shows whether the user has it.
struct Probe {
    right: &'static str,
    command: Cmd,
}

fn probe(right: &'static str, parts: &[&str]) -> Probe {
    let mut command = redis::cmd(parts[0]);
    for part in &parts[1..] {
        command.arg(*part);
    }
    Probe { right, command }
}

/// A SHA1 no script has: `EVALSHA` of it answers `NOSCRIPT` when allowed.
const NO_SCRIPT: &str = "0000000000000000000000000000000000000000";

/// The probes of every right in [`crate::CLIENT_ACL`]; `absent` is a key of the queue that
/// does not exist.
fn client_probes(keys: &Keys, absent: &str) -> Vec<Probe> {
    let _ = keys;
    vec![
        probe("+ping", &["PING"]),
        probe("+exists", &["EXISTS", absent]),
        probe("+pexpire", &["PEXPIRE", absent, "1000"]),
        probe("+pttl", &["PTTL", absent]),
        probe("+xadd", &["XADD", absent, "NOMKSTREAM", "*", "m", "x"]),
        probe("+xread", &["XREAD", "COUNT", "1", "STREAMS", absent, "0-0"]),
        probe("+xdel", &["XDEL", absent, "0-1"]),
        probe("+xrange", &["XRANGE", absent, "-", "+", "COUNT", "1"]),
        probe("+xlen", &["XLEN", absent]),
        probe("+xpending", &["XPENDING", absent, GROUP]),
        probe("+set", &["SET", absent, "1", "XX"]),
        probe("+getdel", &["GETDEL", absent]),
        probe("+del", &["DEL", absent]),
        probe("+hget", &["HGET", absent, "f"]),
        probe("+hexists", &["HEXISTS", absent, "f"]),
        probe("+evalsha", &["EVALSHA", NO_SCRIPT, "0"]),
        probe("+script|load", &["SCRIPT", "LOAD", "return 1"]),
    ]
}

/// The probes of every right in [`crate::AGENT_ACL`] but `+xgroup|create` (the agent creates
/// its group first). The task stream exists then, so `HSET` on it is refused for its type.
fn agent_probes(keys: &Keys, absent: &str) -> Vec<Probe> {
    let tasks = keys.tasks();
    vec![
        probe("+ping", &["PING"]),
        probe(
            "+xreadgroup",
            &[
                "XREADGROUP",
                "GROUP",
                GROUP,
                "probe",
                "COUNT",
                "1",
                "STREAMS",
                absent,
                ">",
            ],
        ),
        probe(
            "+xautoclaim",
            &[
                "XAUTOCLAIM",
                absent,
                GROUP,
                "probe",
                "0",
                "0-0",
                "COUNT",
                "1",
            ],
        ),
        probe("+xclaim", &["XCLAIM", absent, GROUP, "probe", "0", "0-1"]),
        probe("+xinfo|consumers", &["XINFO", "CONSUMERS", absent, GROUP]),
        probe(
            "+xgroup|delconsumer",
            &["XGROUP", "DELCONSUMER", absent, GROUP, "probe"],
        ),
        probe("+xack", &["XACK", absent, GROUP, "0-1"]),
        probe("+xdel", &["XDEL", absent, "0-1"]),
        probe("+xadd", &["XADD", absent, "NOMKSTREAM", "*", "m", "x"]),
        probe("+xread", &["XREAD", "COUNT", "1", "STREAMS", absent, "0-0"]),
        probe("+xpending", &["XPENDING", absent, GROUP]),
        probe("+exists", &["EXISTS", absent]),
        probe("+pexpire", &["PEXPIRE", absent, "1000"]),
        probe("+get", &["GET", absent]),
        probe("+set", &["SET", absent, "1", "XX"]),
        probe("+del", &["DEL", absent]),
        probe("+hset", &["HSET", &tasks, "f", "v"]),
        probe("+hget", &["HGET", absent, "f"]),
        probe("+hdel", &["HDEL", absent, "f"]),
        probe("+evalsha", &["EVALSHA", NO_SCRIPT, "0"]),
        probe("+script|load", &["SCRIPT", "LOAD", "return 1"]),
    ]
}

/// The rights of `probes` the connection's user lacks (a key pattern that does not cover the
/// queue is named as `~fp:{queue}:*`), in one pipelined round trip.
fn missing(conn: &mut Connection, keys: &Keys, probes: Vec<Probe>) -> RedisResult<Vec<String>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for p in &probes {
        pipe.add_command(p.command.clone());
    }
    let answers: Vec<RedisResult<Value>> = pipe.query(conn)?;
    let mut missing = Vec::new();
    for (p, answer) in probes.iter().zip(answers) {
        let Err(e) = answer else { continue };
        if e.code() != Some("NOPERM") {
            if crate::link::is_transient(&e) {
                return Err(e);
            }
            continue;
        }
        let right = if e.to_string().contains("key") {
            format!("~{}*", keys.prefix())
        } else {
            p.right.to_string()
        };
        if !missing.contains(&right) {
            missing.push(right);
        }
    }
    Ok(missing)
}

/// What a client lacks of [`crate::CLIENT_ACL`], as one message, or `None`.
pub(crate) fn check_client(conn: &mut Connection, keys: &Keys) -> RedisResult<Option<String>> {
    let absent = keys.probe();
    let missing = missing(conn, keys, client_probes(keys, &absent))?;
    Ok(report(&missing, "clients", "CLIENT_ACL"))
}

/// What an agent lacks of [`crate::AGENT_ACL`], as one message, or `None`.
pub(crate) fn check_agent(conn: &mut Connection, keys: &Keys) -> RedisResult<Option<String>> {
    let absent = keys.probe();
    let missing = missing(conn, keys, agent_probes(keys, &absent))?;
    Ok(report(&missing, "agents", "AGENT_ACL"))
}

fn report(missing: &[String], who: &str, constant: &str) -> Option<String> {
    (!missing.is_empty()).then(|| {
        format!(
            "the Redis user lacks the permission futurepool {who} need for: {} (see the \
             README's \"Across machines\" section for the ACL to give {who}: \
             futurepool_redis::{constant})",
            missing.join(" ")
        )
    })
}
