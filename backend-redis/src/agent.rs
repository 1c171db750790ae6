//! The agent: a program's worker mode for a queue. It claims only as many tasks as it has free
//! slots (`XREADGROUP … COUNT free`), runs each in its local process pool (so a crash, a hang
//! past the timeout or a kill is that task's reported result), and sends the outcome to the
//! submitting client's reply stream.
//!
//! Three threads: the claimer (reads new tasks, reclaims those of vanished agents with
//! `XAUTOCLAIM` every half lease), the replier (reports outcomes, retrying through Redis
//! outages), and the keeper (heartbeat: every third of a lease it resets the idle time of the
//! entries it still owns, so redelivery follows the agent's liveness and never a task's
//! duration; and it reads the agent's control stream for kill requests).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futurepool_core::{Future, FutureError};
use futurepool_procs::__private::{codec, signature, Signature};
use futurepool_procs::ProcessPool;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::Value;

use crate::keys::{Keys, GROUP};
use crate::limits;
use crate::link::{self, Link};
use crate::rights;
use crate::scripts;
use crate::wire::{self, Done, ItemOutcome, Payload, RemoteOutcome, ReplyMsg, TaskMsg};

/// How long the claimer blocks on the task stream at most (so it notices a stop in time).
const CLAIM_BLOCK: Duration = Duration::from_millis(500);

/// While items are short, an agent claims beyond its free slots: about this much work per
/// slot (by the recent average time of an item in the local pool, queueing included) ...
const CLAIM_AHEAD_WORK: Duration = Duration::from_millis(4);
/// ... and at most this many tasks per slot.
const MAX_DEPTH: u64 = 16;
/// Where the moving average starts (tasks count as long until some have run).
const LONG_RUN: Duration = Duration::from_secs(1);

/// Options of an agent ([`serve`], [`Agent::start`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AgentOptions {
    /// The queue to serve. Default `default`.
    pub queue: String,
    /// How many tasks run at once (the local process pool's size). Default:
    /// `available_parallelism`.
    pub slots: Option<usize>,
    /// How long this agent may stay silent before its tasks are given to other agents.
    /// Heartbeats go out every third of it. Default 10 s.
    pub lease: Duration,
    /// The agent's name in the consumer group (must be unique). Default: host, pid and a
    /// random suffix.
    pub name: Option<String>,
    /// For `rediss://`: the CA certificate (PEM) the server's certificate must chain to,
    /// instead of the bundled web PKI roots.
    pub tls_root_certificate: Option<Vec<u8>>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            queue: "default".into(),
            slots: None,
            lease: Duration::from_secs(10),
            name: None,
            tls_root_certificate: None,
        }
    }
}

impl AgentOptions {
    /// The defaults.
    pub fn new() -> AgentOptions {
        AgentOptions::default()
    }

    /// The queue to serve.
    pub fn queue(mut self, name: impl Into<String>) -> AgentOptions {
        self.queue = name.into();
        self
    }

    /// How many tasks run at once.
    pub fn slots(mut self, n: usize) -> AgentOptions {
        self.slots = Some(n);
        self
    }

    /// The lease (see the field).
    pub fn lease(mut self, lease: Duration) -> AgentOptions {
        self.lease = lease;
        self
    }

    /// The agent's name.
    pub fn name(mut self, name: impl Into<String>) -> AgentOptions {
        self.name = Some(name.into());
        self
    }

    /// The private CA for `rediss://` (see the field).
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> AgentOptions {
        self.tls_root_certificate = Some(pem.into());
        self
    }
}

/// Why an agent could not start.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentError {
    /// The URL did not parse.
    Url(String),
    /// Redis could not be reached, refused the credentials, or lacks a right agents need.
    Redis(String),
    /// The local process pool could not be made.
    Pool(String),
    /// An option is out of range.
    Option(String),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Url(e) => write!(f, "bad Redis URL: {e}"),
            AgentError::Redis(e) => write!(f, "cannot use Redis: {e}"),
            AgentError::Pool(e) => write!(f, "cannot make the local process pool: {e}"),
            AgentError::Option(e) => write!(f, "bad option: {e}"),
        }
    }
}

impl std::error::Error for AgentError {}

/// Serves the queue until the process ends: the one line of a program's agent mode, after
/// `futurepool_procs::init()` (the agent's own worker processes stop there).
///
/// ```no_run
/// fn square(x: u64) -> u64 { x * x }
/// futurepool_procs::register!(square);
///
/// fn main() {
///     futurepool_procs::init();
///     if std::env::args().nth(1).as_deref() == Some("agent") {
///         let err = futurepool_redis::serve("redis://10.0.0.1/", Default::default());
///         eprintln!("agent: {err:?}");
///         std::process::exit(1);
///     }
///     // … the client side: RedisPool::connect("redis://10.0.0.1/") …
/// }
/// ```
///
/// Returns only if the agent cannot start.
pub fn serve(url: &str, options: AgentOptions) -> Result<std::convert::Infallible, AgentError> {
    let agent = Agent::start(url, options)?;
    loop {
        if let Some(handle) = agent.claimer.as_ref() {
            if handle.is_finished() {
                return Err(AgentError::Redis("the agent's claim loop ended".into()));
            }
        }
        thread::sleep(Duration::from_secs(1));
    }
}

/// A running agent; [`Agent::stop`] ends it gracefully.
pub struct Agent {
    shared: Arc<Shared>,
    claimer: Option<JoinHandle<()>>,
    replier: Option<JoinHandle<()>>,
    keeper: Option<JoinHandle<()>>,
}

struct Shared {
    keys: Keys,
    name: String,
    shown: String,
    client: redis::Client,
    lease: Duration,
    pool: ProcessPool,
    /// Tasks started here and not yet reported, by task id.
    inflight: Mutex<HashMap<String, InFlight>>,
    /// The local pool's size.
    slots: usize,
    /// Tasks claimed and not yet run to their end here; the claimer waits on `freed` while
    /// there is no room.
    busy: Mutex<usize>,
    freed: Condvar,
    /// How long recent items took in the local pool (µs, a moving average): while it is
    /// short, the claimer claims beyond its free slots.
    recent_run_us: AtomicU64,
    done: Mutex<mpsc::Sender<Report>>,
    stop: AtomicBool,
    /// Task entries dropped because they did not decode.
    malformed: AtomicU64,
    /// The server's `proto-max-bulk-len`, read at start: a larger result fails its task.
    bulk_limit: u64,
}

struct InFlight {
    entry: String,
    /// The local future of the item running now.
    future: Option<Future<Vec<u8>>>,
    /// A kill was requested: the running item is cancelled, and so is every later one.
    killed: bool,
}

/// One task on its way through the local pool: its items (one, or a chunk's), run one after
/// another.
struct Run {
    function: String,
    timeout: Option<Duration>,
    rest: VecDeque<Vec<u8>>,
    done: Vec<ItemOutcome>,
    chunk: bool,
    report: Report,
}

/// An outcome on its way to the client.
struct Report {
    entry: String,
    task: String,
    client: String,
    seq: u64,
    attempt: u32,
    reply_ttl_ms: u64,
    /// The argument's blob key, deleted with the task.
    arg_blob: Option<String>,
    outcome: RemoteOutcome,
}

impl Agent {
    /// Connects, makes the local process pool and the consumer group, and starts serving.
    pub fn start(url: &str, options: AgentOptions) -> Result<Agent, AgentError> {
        let keys = Keys::new(&options.queue).map_err(AgentError::Option)?;
        if options.lease < Duration::from_millis(300) {
            return Err(AgentError::Option(
                "the lease must be at least 300 ms".into(),
            ));
        }
        let slots = match options.slots {
            Some(0) => return Err(AgentError::Option("slots must be at least 1".into())),
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let shown = link::shown(url);
        let client = link::open(url, options.tls_root_certificate.as_deref())
            .map_err(|e| AgentError::Url(e.to_string()))?;
        let name = options.name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "host".into());
            format!("{host}-{}-{}", std::process::id(), &link::random_id()[..8])
        });
        let mut link = Link::new(client.clone(), Duration::ZERO);
        ensure_group(&mut link, &keys).map_err(|e| AgentError::Redis(format!("{shown}: {e}")))?;
        let lacking = link
            .run(|c| rights::check_agent(c, &keys))
            .map_err(|e| AgentError::Redis(format!("{shown}: {}", link::describe(&e))))?;
        if let Some(why) = lacking {
            return Err(AgentError::Redis(format!("{shown}: {why}")));
        }
        let bulk_limit = link
            .conn()
            .map(limits::bulk_limit)
            .unwrap_or(limits::DEFAULT_BULK_LIMIT);
        let pool = ProcessPool::builder()
            .max_workers(slots)
            .cancel_kills_running(true)
            .build()
            .map_err(|e| AgentError::Pool(e.to_string()))?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            keys,
            name,
            shown,
            client,
            lease: options.lease,
            pool,
            inflight: Mutex::new(HashMap::new()),
            slots,
            busy: Mutex::new(0),
            freed: Condvar::new(),
            recent_run_us: AtomicU64::new(LONG_RUN.as_micros() as u64),
            done: Mutex::new(tx),
            stop: AtomicBool::new(false),
            malformed: AtomicU64::new(0),
            bulk_limit,
        });
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(|e| AgentError::Pool(format!("cannot start a thread: {e}")))
        };
        let replier = {
            let s = shared.clone();
            spawn(
                "futurepool-redis-replier",
                Box::new(move || s.reply_loop(rx)),
            )?
        };
        let keeper = {
            let s = shared.clone();
            spawn("futurepool-redis-keeper", Box::new(move || s.keep_loop()))?
        };
        let claimer = {
            let s = shared.clone();
            spawn("futurepool-redis-claimer", Box::new(move || s.claim_loop()))?
        };
        log::info!(
            "futurepool-redis: agent {} serving {}",
            shared.name,
            shared.shown
        );
        Ok(Agent {
            shared,
            claimer: Some(claimer),
            replier: Some(replier),
            keeper: Some(keeper),
        })
    }

    /// The agent's name in the consumer group.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// How many task entries this agent dropped because they did not decode (each is logged
    /// and taken off the stream).
    pub fn malformed_tasks(&self) -> u64 {
        self.shared.malformed.load(Ordering::Relaxed)
    }

    /// Stops claiming, lets the running tasks finish and report, and returns.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.freed.notify_all();
        for handle in [self.claimer.take(), self.replier.take(), self.keeper.take()]
            .into_iter()
            .flatten()
        {
            let _ = handle.join();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.shared.name)
            .field("redis", &self.shared.shown)
            .finish_non_exhaustive()
    }
}

/// Creates the task stream and its consumer group if missing.
fn ensure_group(link: &mut Link, keys: &Keys) -> Result<(), String> {
    match link.run(|c| {
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys.tasks())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query::<()>(c)
    }) {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) if e.code() == Some("NOPERM") => Err(format!(
            "{e} (the Redis user lacks a right agents need: see the README's \"Across \
             machines\" section for the agents' ACL)"
        )),
        Err(e) => Err(link::describe(&e)),
    }
}

impl Shared {
    fn inflight(&self) -> MutexGuard<'_, HashMap<String, InFlight>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// How many tasks may be claimed now, waiting up to `wait` for room: the free slots,
    /// and while recent items were short, more (they then wait a moment in the local pool's
    /// queue instead of costing each slot a claim round trip): up to [`CLAIM_AHEAD_WORK`] ÷ the recent
    /// average item time per slot, at most [`MAX_DEPTH`]. Long tasks (average ≥ `CLAIM_AHEAD_WORK`)
    /// are never held back from an idle agent that way.
    fn wait_free(&self, wait: Duration) -> usize {
        let room = claim_depth(self.recent_run_us.load(Ordering::Relaxed)) * self.slots;
        let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let (busy, _) = self
            .freed
            .wait_timeout_while(busy, wait, |n| *n >= room && !self.stopping())
            .unwrap_or_else(|p| p.into_inner());
        room.saturating_sub(*busy)
    }

    fn take_slot(&self) {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    fn release_slot(&self) {
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            *busy = busy.saturating_sub(1);
        }
        self.freed.notify_all();
    }

    /// Folds one item's time in the local pool into the moving average.
    fn note_run(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let _ = self
            .recent_run_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| {
                Some(avg - avg / 4 + sample / 4)
            });
    }

    /// Hands a task's outcome to the replier and frees its slot at once: the slot is free
    /// once the task has run, while its reply is still on its way.
    fn report(&self, report: Report) {
        {
            let tx = self.done.lock().unwrap_or_else(|p| p.into_inner());
            // The replier lives as long as any sender: this cannot fail while `self` exists.
            let _ = tx.send(report);
        }
        self.release_slot();
    }

    fn claim_loop(self: Arc<Self>) {
        let mut link = Link::new(self.client.clone(), CLAIM_BLOCK);
        let lease_ms = wire::ttl_ms(self.lease);
        let mut next_reclaim = Instant::now();
        let mut cursor = "0-0".to_string();
        let mut pause = Duration::from_millis(20);
        while !self.stopping() {
            let free = self.wait_free(Duration::from_millis(200));
            if free == 0 || self.stopping() {
                continue;
            }
            let now = Instant::now();
            let result = if now >= next_reclaim {
                next_reclaim = crate::time::after(now, self.lease / 2);
                link.run(|c| {
                    redis::cmd("XAUTOCLAIM")
                        .arg(self.keys.tasks())
                        .arg(GROUP)
                        .arg(&self.name)
                        .arg(lease_ms)
                        .arg(&cursor)
                        .arg("COUNT")
                        .arg(free)
                        .query::<StreamAutoClaimReply>(c)
                })
                .map(|reply| {
                    cursor = reply.next_stream_id;
                    reply.claimed
                })
                .inspect(|_| self.prune(&mut link))
            } else {
                link.run(|c| {
                    redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg(GROUP)
                        .arg(&self.name)
                        .arg("COUNT")
                        .arg(free)
                        .arg("BLOCK")
                        .arg(CLAIM_BLOCK.as_millis() as u64)
                        .arg("STREAMS")
                        .arg(self.keys.tasks())
                        .arg(">")
                        .query::<Option<StreamReadReply>>(c)
                })
                .map(|reply| {
                    reply
                        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                        .unwrap_or_default()
                })
            };
            match result {
                Ok(entries) => {
                    pause = Duration::from_millis(20);
                    for _ in &entries {
                        self.take_slot();
                    }
                    self.handle(&mut link, entries);
                }
                Err(e) if link::is_no_group(&e) => {
                    // Redis lost the group (a restart without persistence): make it again.
                    if let Err(e) = ensure_group(&mut link, &self.keys) {
                        log::error!("futurepool-redis: agent {}: {e}", self.name);
                        thread::sleep(pause);
                    }
                }
                Err(e) => {
                    log::warn!("futurepool-redis: agent {}: {e}", self.name);
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Removes the consumers of agents gone for good (no pending entry, idle for three
    /// leases), so the group does not keep one per agent ever started.
    fn prune(&self, link: &mut Link) {
        let idle = wire::ttl_ms(self.lease.saturating_mul(3));
        match link.run(|c| {
            scripts::prune()
                .key(self.keys.tasks())
                .arg(&self.name)
                .arg(idle)
                .invoke::<i64>(c)
        }) {
            Ok(0) => {}
            Ok(n) => log::info!(
                "futurepool-redis: agent {} removed {n} consumers of vanished agents",
                self.name
            ),
            Err(e) => log::warn!(
                "futurepool-redis: agent {} cannot prune consumers: {}",
                self.name,
                link::describe(&e)
            ),
        }
    }

    /// Delivered entries, each holding a slot: decoded and checked, started by one call of the
    /// start script, then launched (or refused, or skipped).
    fn handle(self: &Arc<Self>, link: &mut Link, entries: Vec<StreamId>) {
        let mut ready = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(task) = self.check(link, entry) {
                ready.push(task);
            }
        }
        if ready.is_empty() {
            return;
        }
        // Grouped by client (and its options): the start script takes each client's keys
        // and options once.
        let (groups, ready) = group_by(ready, |(_, msg, _)| {
            (msg.client.clone(), msg.max_attempts, msg.reply_ttl_ms)
        });
        let (low, high) = id_range(ready.iter().map(|(entry, _, _)| entry.as_str()));
        let keys = &self.keys;
        let results = link.run_retrying(
            Some(crate::time::from_now(self.lease)),
            || !self.stopping(),
            |c| {
                let mut start = scripts::start().key(keys.tasks());
                start.key(keys.running());
                for (_, msg, _) in &ready {
                    start.key(keys.cancel(&msg.task));
                }
                for ((client, _, _), _) in &groups {
                    start.key(keys.reply(client)).key(keys.client(client));
                }
                start
                    .arg(&self.name)
                    .arg(ready.len())
                    .arg(groups.len())
                    .arg(&low)
                    .arg(&high);
                for ((_, attempts, ttl), count) in &groups {
                    start.arg(*count).arg(*attempts).arg(*ttl);
                }
                for (entry, msg, _) in &ready {
                    start.arg(entry).arg(&msg.task).arg(msg.seq);
                }
                start.invoke::<Vec<i64>>(c)
            },
        );
        let results: Vec<(i64, u32)> = match results {
            Ok(results) => results
                .into_iter()
                .map(|r| (r & 3, u32::try_from(r >> 2).unwrap_or(u32::MAX)))
                .collect(),
            // A right revoked while running: the tasks fail, naming it, instead of going
            // round the agents for ever.
            Err(e) if e.code() == Some("NOPERM") => {
                log::error!(
                    "futurepool-redis: agent {} cannot start tasks: {e}",
                    self.name
                );
                for (_, msg, mut report) in ready {
                    report.outcome = RemoteOutcome::Broken(format!(
                        "agent {} cannot start task {}: {e} (see the README's \"Across \
                         machines\" section for the agents' ACL)",
                        self.name, msg.task
                    ));
                    self.report(report);
                }
                return;
            }
            Err(e) => {
                // Left pending: reclaimed after the lease by whichever agent is alive then.
                log::warn!(
                    "futurepool-redis: agent {} cannot start tasks: {e}",
                    self.name
                );
                for _ in &ready {
                    self.release_slot();
                }
                return;
            }
        };
        // The script answers for every task; one it did not would count as skipped (left
        // pending, so reclaimed after the lease).
        let results = results.into_iter().chain(std::iter::repeat((0, 0)));
        for ((entry, msg, report), result) in ready.into_iter().zip(results) {
            self.launch(link, entry, msg, report, result);
        }
    }

    /// Decodes an entry and checks its function's signature; `None` if it was dropped or
    /// refused (its slot is then released or its refusal reported).
    fn check(&self, link: &mut Link, entry: StreamId) -> Option<(String, TaskMsg, Report)> {
        let msg = match entry.map.get(wire::FIELD) {
            Some(Value::BulkString(bytes)) => wire::from_bytes::<TaskMsg>(bytes),
            _ => Err("no message field".to_string()),
        };
        let mut msg = match msg {
            Ok(msg) => msg,
            Err(e) => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                log::error!(
                    "futurepool-redis: agent {} dropped entry {}: {e}",
                    self.name,
                    entry.id
                );
                let _ = link.run(|c| {
                    redis::pipe()
                        .cmd("XACK")
                        .arg(self.keys.tasks())
                        .arg(GROUP)
                        .arg(&entry.id)
                        .cmd("XDEL")
                        .arg(self.keys.tasks())
                        .arg(&entry.id)
                        .query::<()>(c)
                });
                self.release_slot();
                return None;
            }
        };
        // A TTL Redis would refuse would fail the whole batch's finish script.
        msg.reply_ttl_ms = msg.reply_ttl_ms.clamp(1, wire::MAX_TTL_MS);
        let arg_blob = match &msg.arg {
            Payload::Stored(key) => Some(key.clone()),
            Payload::Inline(_) => None,
        };
        let mut report = Report {
            entry: entry.id.clone(),
            task: msg.task.clone(),
            client: msg.client.clone(),
            seq: msg.seq,
            attempt: 1,
            reply_ttl_ms: msg.reply_ttl_ms,
            arg_blob,
            outcome: RemoteOutcome::Cancelled,
        };
        // The fingerprint: never run a function whose types differ from the client's.
        if let Some(why) = refusal(&msg, signature(&msg.function), &self.name) {
            report.outcome = RemoteOutcome::Broken(why);
            self.report(report);
            return None;
        }
        Some((entry.id, msg, report))
    }

    /// Acts on a start script's answer: run the task, fail it (attempts exhausted), or skip it.
    fn launch(
        self: &Arc<Self>,
        link: &mut Link,
        entry: String,
        msg: TaskMsg,
        mut report: Report,
        started: (i64, u32),
    ) {
        let attempt = match started {
            (1, attempt) => attempt,
            (2, delivered) => {
                report.attempt = delivered;
                report.outcome = RemoteOutcome::WorkerLost(format!(
                    "task {} was delivered {delivered} times and the agent running it was lost \
                     each time ({} attempts allowed: machine lost, agent killed, or cut off \
                     from Redis longer than the lease)",
                    msg.task, msg.max_attempts
                ));
                self.report(report);
                return;
            }
            _ => {
                // Cancelled before it started, or another agent owns it now.
                self.release_slot();
                return;
            }
        };
        report.attempt = attempt;
        let arg = match msg.arg {
            Payload::Inline(bytes) => Ok(bytes),
            Payload::Stored(key) => match link.run_retrying(
                Some(crate::time::from_now(self.lease)),
                || !self.stopping(),
                |c| redis::cmd("GET").arg(&key).query::<Option<Vec<u8>>>(c),
            ) {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err(format!("the task's argument expired in Redis ({key})")),
                Err(e) => Err(format!("cannot read the task's argument: {e}")),
            },
        };
        let arg = match arg {
            Ok(arg) if msg.delivery => match codec::encode(&(&msg.task, attempt)) {
                Ok(mut prefix) => {
                    prefix.extend_from_slice(&arg);
                    Ok(prefix)
                }
                Err(e) => Err(e.to_string()),
            },
            other => other,
        };
        let arg = match arg {
            Ok(arg) => arg,
            Err(why) => {
                report.outcome = RemoteOutcome::Broken(why);
                self.report(report);
                return;
            }
        };
        let items = if msg.chunk {
            match wire::from_bytes::<Vec<serde_bytes::ByteBuf>>(&arg) {
                Ok(items) => items.into_iter().map(|b| b.into_vec()).collect(),
                Err(e) => {
                    report.outcome = RemoteOutcome::Broken(format!("a malformed chunk: {e}"));
                    self.report(report);
                    return;
                }
            }
        } else {
            VecDeque::from([arg])
        };
        self.inflight().insert(
            msg.task.clone(),
            InFlight {
                entry,
                future: None,
                killed: false,
            },
        );
        self.advance(Run {
            function: msg.function,
            timeout: msg.timeout_ms.map(Duration::from_millis),
            done: Vec::with_capacity(items.len()),
            rest: items,
            chunk: msg.chunk,
            report,
        });
    }

    /// Runs the task's next item in the local pool (its done-callback runs the one after), or
    /// reports the task once every item ran. A killed task's remaining items are cancelled.
    fn advance(self: &Arc<Self>, mut run: Run) {
        loop {
            let Some(arg) = run.rest.pop_front() else {
                let mut done = std::mem::take(&mut run.done);
                run.report.outcome = if run.chunk {
                    RemoteOutcome::Chunk(done)
                } else {
                    done.pop().map_or_else(
                        || RemoteOutcome::Broken("the task had no item".into()),
                        RemoteOutcome::from,
                    )
                };
                self.report(run.report);
                return;
            };
            let handed = Instant::now();
            match self.pool.submit_encoded(&run.function, arg, run.timeout) {
                Ok(future) => {
                    let killed = match self.inflight().get_mut(&run.report.task) {
                        Some(running) => {
                            running.future = Some(future.clone());
                            running.killed
                        }
                        None => false,
                    };
                    if killed {
                        future.cancel();
                    }
                    let me = Arc::downgrade(self);
                    future.add_done_callback(move |f| {
                        let outcome = outcome_of(f);
                        if matches!(outcome, ItemOutcome::Cancelled) {
                            // Killed on request: the rest of a chunk is cancelled too.
                            run.done
                                .extend(run.rest.drain(..).map(|_| ItemOutcome::Cancelled));
                        }
                        run.done.push(outcome);
                        if let Some(me) = me.upgrade() {
                            me.note_run(handed.elapsed());
                            me.advance(run);
                        }
                    });
                    return;
                }
                Err(e) => run
                    .done
                    .push(ItemOutcome::Broken(format!("agent {}: {e}", self.name))),
            }
        }
    }

    /// Reports outcomes, in order, retrying through Redis outages; ends once stopping with
    /// nothing in flight.
    fn reply_loop(self: Arc<Self>, rx: mpsc::Receiver<Report>) {
        let mut link = Link::new(self.client.clone(), Duration::ZERO);
        loop {
            let first = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(report) => report,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.stopping() && self.inflight().is_empty() {
                        return;
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            // Whatever else is ready goes in the same round trip.
            let mut batch = vec![first];
            while batch.len() < 512 {
                match rx.try_recv() {
                    Ok(report) => batch.push(report),
                    Err(_) => break,
                }
            }
            self.send_reports(&mut link, batch);
        }
    }

    /// Sends outcomes to their clients in one call of the finish script (large results are
    /// stored in their own keys first), retrying through Redis outages.
    fn send_reports(&self, link: &mut Link, mut batch: Vec<Report>) {
        let keys = &self.keys;
        // A result Redis would refuse fails its task instead of wedging the replier (Redis
        // closes the connection on it, which looks like an outage).
        for report in &mut batch {
            let (what, size) = match &report.outcome {
                RemoteOutcome::Returned(Payload::Inline(bytes)) => ("the result", bytes.len()),
                chunk @ RemoteOutcome::Chunk(_) => ("the chunk's results", approx_len(chunk)),
                _ => continue,
            };
            if let Some(why) = limits::over(what, size, self.bulk_limit) {
                log::error!(
                    "futurepool-redis: agent {}: task {}: {why}",
                    self.name,
                    report.task
                );
                report.outcome = RemoteOutcome::Broken(format!("task {}: {why}", report.task));
            }
        }
        // Retried through outages, but not for ever: past the reply TTL the client is gone
        // (or has stopped waiting), and the tasks are redelivered after the lease.
        let ttl = batch.iter().map(|r| r.reply_ttl_ms).min().unwrap_or(1);
        let until = Some(crate::time::from_now(Duration::from_millis(ttl)));
        for report in &mut batch {
            let RemoteOutcome::Returned(Payload::Inline(bytes)) = &mut report.outcome else {
                continue;
            };
            if bytes.len() < wire::BLOB_FROM {
                continue;
            }
            let key = keys.blob(&report.task, &format!("result{}", report.attempt));
            let bytes = std::mem::take(bytes);
            let ttl = report.reply_ttl_ms;
            let stored = link.run_retrying(
                until,
                || true,
                |c| {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&bytes)
                        .arg("PX")
                        .arg(ttl)
                        .query::<()>(c)
                },
            );
            report.outcome = match stored {
                Ok(()) => RemoteOutcome::Returned(Payload::Stored(key)),
                Err(e) => RemoteOutcome::Broken(format!("cannot store the result: {e}")),
            };
        }
        // One message per client (split past about 1 MiB): the outcomes of its tasks.
        let mut groups: Vec<(usize, Vec<Done>, usize)> = Vec::new();
        let mut open: HashMap<&str, usize> = HashMap::new();
        for (i, report) in batch.iter_mut().enumerate() {
            let outcome = std::mem::replace(&mut report.outcome, RemoteOutcome::Cancelled);
            let size = approx_len(&outcome);
            let done = Done {
                seq: report.seq,
                attempt: report.attempt,
                outcome,
            };
            match open.get(report.client.as_str()) {
                Some(&g) if groups[g].2 + size <= wire::BLOB_FROM => {
                    groups[g].1.push(done);
                    groups[g].2 += size;
                }
                _ => {
                    open.insert(&report.client, groups.len());
                    groups.push((i, vec![done], size));
                }
            }
        }
        let messages: Vec<(usize, Vec<u8>)> = groups
            .into_iter()
            .map(|(i, done, _)| {
                let msg = wire::to_bytes(&ReplyMsg {
                    agent: self.name.clone(),
                    done,
                });
                (i, msg)
            })
            .collect();
        let blobs: Vec<&str> = batch
            .iter()
            .filter_map(|report| report.arg_blob.as_deref())
            .collect();
        let sent = link.run_retrying(
            until,
            || true,
            |c| {
                let mut finish = scripts::finish().key(keys.tasks());
                finish.key(keys.running());
                for (i, _) in &messages {
                    let client = &batch[*i].client;
                    finish.key(keys.reply(client)).key(keys.client(client));
                }
                for blob in &blobs {
                    finish.key(*blob);
                }
                finish
                    .arg(&self.name)
                    .arg(batch.len())
                    .arg(messages.len())
                    .arg(blobs.len());
                for (i, msg) in &messages {
                    finish.arg(msg).arg(batch[*i].reply_ttl_ms);
                }
                for report in &batch {
                    finish.arg(&report.entry).arg(&report.task);
                }
                finish.invoke::<()>(c)
            },
        );
        if let Err(e) = sent {
            log::error!(
                "futurepool-redis: agent {} could not report {} tasks: {e}",
                self.name,
                batch.len()
            );
        }
        let mut inflight = self.inflight();
        for report in &batch {
            inflight.remove(&report.task);
        }
    }

    /// Heartbeats and kill requests; ends with the replier.
    fn keep_loop(self: Arc<Self>) {
        let every = self.lease / 3;
        // Its reads block at most 250 ms (below).
        let mut link = Link::new(self.client.clone(), Duration::from_millis(250));
        let control = self.keys.control(&self.name);
        let mut last = "0-0".to_string();
        let mut next_beat = Instant::now();
        loop {
            if self.stopping() && self.inflight().is_empty() {
                break;
            }
            let now = Instant::now();
            if now >= next_beat {
                next_beat = crate::time::after(now, every);
                let entries: Vec<String> =
                    self.inflight().values().map(|f| f.entry.clone()).collect();
                let _ = link.run(|c| {
                    let mut invocation = scripts::heartbeat().key(self.keys.tasks());
                    invocation
                        .key(&control)
                        .arg(&self.name)
                        .arg(wire::ttl_ms(self.lease.saturating_mul(3)));
                    for e in &entries {
                        invocation.arg(e);
                    }
                    invocation.invoke::<i64>(c)
                });
            }
            let block = next_beat
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_millis(250));
            let read = link.run(|c| {
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(100)
                    .arg("BLOCK")
                    .arg(block.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&control)
                    .arg(&last)
                    .query::<Option<StreamReadReply>>(c)
            });
            match read {
                Ok(Some(reply)) => {
                    let mut ids = Vec::new();
                    for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                        if let Some(Value::BulkString(task)) = entry.map.get("kill") {
                            let task = String::from_utf8_lossy(task).into_owned();
                            let future = self.inflight().get_mut(&task).and_then(|f| {
                                f.killed = true;
                                f.future.clone()
                            });
                            if let Some(future) = future {
                                // The local pool kills the task's worker process.
                                future.cancel();
                            }
                        }
                        last.clone_from(&entry.id);
                        ids.push(entry.id);
                    }
                    let _ = link.run(|c| redis::cmd("XDEL").arg(&control).arg(&ids).query::<()>(c));
                }
                Ok(None) => {}
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
        let _ = link.run(|c| redis::cmd("DEL").arg(&control).query::<()>(c));
    }
}

/// Why this agent must not run the task: its function is unknown here, or registered with
/// other types than the client's (`ours` is this build's signature of it).
fn refusal(msg: &TaskMsg, ours: Option<Signature>, agent: &str) -> Option<String> {
    match ours {
        None => Some(format!(
            "agent {agent} does not register {} (the client has {}): build the agents from the \
             same code as the client",
            msg.function, msg.signature
        )),
        Some(ours) if ours.fingerprint() != msg.fingerprint => Some(format!(
            "signature mismatch: the client has {}, agent {agent} has {ours}: build the agents \
             from the same code as the client",
            msg.signature
        )),
        Some(_) => None,
    }
}

/// `items` reordered so that those with the same key are together (groups in order of first
/// appearance, items in their order within a group), and each group's key and size.
fn group_by<T, K: PartialEq>(items: Vec<T>, key: impl Fn(&T) -> K) -> (Vec<(K, usize)>, Vec<T>) {
    let mut groups: Vec<(K, usize)> = Vec::new();
    let mut tagged: Vec<(usize, T)> = items
        .into_iter()
        .map(|item| {
            let k = key(&item);
            let g = match groups.iter().position(|(other, _)| *other == k) {
                Some(g) => g,
                None => {
                    groups.push((k, 0));
                    groups.len() - 1
                }
            };
            groups[g].1 += 1;
            (g, item)
        })
        .collect();
    tagged.sort_by_key(|(g, _)| *g);
    (groups, tagged.into_iter().map(|(_, item)| item).collect())
}

/// The lowest and highest of some stream entry ids (`ms-seq`), for a range command; the whole
/// stream (`-`, `+`) if one does not parse.
fn id_range<'a>(ids: impl Iterator<Item = &'a str>) -> (String, String) {
    let parse = |id: &str| {
        let (ms, seq) = id.split_once('-')?;
        Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?))
    };
    let mut range: Option<((u64, u64), (u64, u64))> = None;
    for id in ids {
        let Some(id) = parse(id) else {
            return ("-".into(), "+".into());
        };
        range = Some(match range {
            None => (id, id),
            Some((low, high)) => (low.min(id), high.max(id)),
        });
    }
    match range {
        Some(((a, b), (c, d))) => (format!("{a}-{b}"), format!("{c}-{d}")),
        None => ("-".into(), "+".into()),
    }
}

/// How many tasks per slot an agent claims while its items took `recent_us` on average.
fn claim_depth(recent_us: u64) -> usize {
    (CLAIM_AHEAD_WORK.as_micros() as u64 / recent_us.max(1)).clamp(1, MAX_DEPTH) as usize
}

/// About how many bytes an outcome takes in a reply message.
fn approx_len(outcome: &RemoteOutcome) -> usize {
    match outcome {
        RemoteOutcome::Chunk(items) => 16 + items.iter().map(item_len).sum::<usize>(),
        RemoteOutcome::Returned(Payload::Inline(bytes)) => 16 + bytes.len(),
        RemoteOutcome::Returned(Payload::Stored(key)) => 16 + key.len(),
        RemoteOutcome::Panicked { message, location } => {
            16 + message.len() + location.as_ref().map_or(0, String::len)
        }
        RemoteOutcome::WorkerLost(why) | RemoteOutcome::Codec(why) | RemoteOutcome::Broken(why) => {
            16 + why.len()
        }
        RemoteOutcome::TimedOut | RemoteOutcome::Cancelled => 16,
    }
}

/// About how many bytes an item's outcome takes in a reply message.
fn item_len(item: &ItemOutcome) -> usize {
    16 + match item {
        ItemOutcome::Returned(Payload::Inline(bytes)) => bytes.len(),
        ItemOutcome::Returned(Payload::Stored(key)) => key.len(),
        ItemOutcome::Panicked { message, location } => {
            message.len() + location.as_ref().map_or(0, String::len)
        }
        ItemOutcome::WorkerLost(why) | ItemOutcome::Codec(why) | ItemOutcome::Broken(why) => {
            why.len()
        }
        ItemOutcome::TimedOut | ItemOutcome::Cancelled => 0,
    }
}

/// A finished local future as the client will see it.
fn outcome_of(future: &Future<Vec<u8>>) -> ItemOutcome {
    match future.result() {
        Ok(bytes) => ItemOutcome::Returned(Payload::Inline(bytes.clone())),
        Err(FutureError::Panicked(p)) => ItemOutcome::Panicked {
            message: p.message().to_string(),
            location: p.location().map(str::to_string),
        },
        Err(FutureError::WorkerLost(why)) => ItemOutcome::WorkerLost(why.to_string()),
        Err(FutureError::TimedOut) => ItemOutcome::TimedOut,
        Err(FutureError::Cancelled) => ItemOutcome::Cancelled,
        Err(FutureError::Codec(why)) => ItemOutcome::Codec(why.to_string()),
        Err(FutureError::Broken(why)) => ItemOutcome::Broken(why.to_string()),
        Err(FutureError::ShutDown) => ItemOutcome::Broken("the agent is shutting down".into()),
        Err(FutureError::Raised(never)) => match *never {},
        Err(other) => ItemOutcome::Broken(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(function: &str, signature: Signature) -> TaskMsg {
        TaskMsg {
            task: "c:1".into(),
            client: "c".into(),
            seq: 1,
            function: function.into(),
            signature: signature.to_string(),
            fingerprint: signature.fingerprint(),
            arg: Payload::Inline(vec![]),
            timeout_ms: None,
            max_attempts: 3,
            reply_ttl_ms: 1000,
            delivery: false,
            chunk: false,
        }
    }

    #[test]
    fn group_by_keeps_the_order_within_each_group() {
        let items = vec![("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5), ("a", 6)];
        let (groups, items) = group_by(items, |(k, _)| *k);
        assert_eq!(groups, vec![("a", 3), ("b", 2), ("c", 1)]);
        assert_eq!(
            items,
            vec![("a", 1), ("a", 3), ("a", 6), ("b", 2), ("b", 5), ("c", 4)]
        );
        let (groups, items) = group_by(Vec::<(&str, u8)>::new(), |(k, _)| *k);
        assert!(groups.is_empty() && items.is_empty());
    }

    #[test]
    fn id_range_spans_the_entries_in_stream_order() {
        let ids = ["1700000000123-2", "1700000000099-7", "1700000000123-10"];
        assert_eq!(
            id_range(ids.into_iter()),
            (
                "1700000000099-7".to_string(),
                "1700000000123-10".to_string()
            )
        );
        assert_eq!(
            id_range(["5-0", "x"].into_iter()),
            ("-".to_string(), "+".to_string())
        );
        assert_eq!(id_range([].into_iter()), ("-".to_string(), "+".to_string()));
    }

    #[test]
    fn agents_claim_about_four_milliseconds_of_work_per_slot() {
        assert_eq!(claim_depth(LONG_RUN.as_micros() as u64), 1);
        assert_eq!(claim_depth(4_000), 1);
        assert_eq!(claim_depth(2_500), 1);
        assert_eq!(claim_depth(2_000), 2);
        assert_eq!(claim_depth(1_000), 4);
        assert_eq!(claim_depth(250), 16);
        assert_eq!(claim_depth(30), 16);
        assert_eq!(claim_depth(0), 16);
    }

    #[test]
    fn agents_refuse_unknown_functions_and_other_signatures() {
        let client = Signature {
            name: "app::square",
            arg: "u64",
            ret: "u64",
        };
        let msg = task("app::square", client);
        assert_eq!(refusal(&msg, Some(client), "a1"), None);
        let unknown = refusal(&msg, None, "a1").unwrap();
        assert!(
            unknown.contains("agent a1 does not register app::square"),
            "{unknown}"
        );
        let ours = Signature {
            arg: "u32",
            ..client
        };
        let mismatch = refusal(&msg, Some(ours), "a1").unwrap();
        assert!(
            mismatch.contains("the client has fn app::square(u64) -> u64, agent a1 has fn app::square(u32) -> u64"),
            "{mismatch}"
        );
    }
}
