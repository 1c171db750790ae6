//! [`RedisPool`]: the client side. Submitting adds a task to the queue's stream; one listener
//! thread per pool reads the pool's own reply stream and completes the futures (outside any
//! lock), keeps the reply stream alive and runs the watchdog that fails tasks the broker lost.
//! In a pool with a deadline, a timer thread that does no I/O fails futures past it
//! ([`expiry`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futurepool_core::{
    Executor, Future, FutureError, MapOptions, OptionsError, Outcome, Panic, Promise, Shutdown,
    Submit, SubmitError,
};
use futurepool_procs::__private::{codec, signature_of, Signature};
use futurepool_procs::Remote;
use redis::streams::StreamReadReply;
use redis::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::keys::Keys;
use crate::limits;
use crate::link::{self, Link};
use crate::rights;
use crate::scripts;
use crate::wire::{self, ItemOutcome, Payload, RemoteOutcome, ReplyMsg, TaskMsg};
use crate::Delivery;

mod expiry;

/// How long the listener blocks on its reply stream at most, so it notices shutdown in time.
const LISTEN_BLOCK: Duration = Duration::from_millis(200);

/// Configures a [`RedisPool`]. Its `Debug` shows the URL with the password masked.
#[derive(Clone)]
pub struct Builder {
    url: String,
    queue: String,
    task_timeout: Option<Duration>,
    deadline: Option<Duration>,
    max_attempts: u32,
    reply_ttl: Duration,
    payload_ttl: Duration,
    cancel_kills_running: bool,
    max_workers: usize,
    watchdog_interval: Duration,
    tls_root_certificate: Option<Vec<u8>>,
}

/// Why a [`RedisPool`] could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL did not parse.
    Url(String),
    /// Redis could not be reached, refused the credentials, or lacks a right the client needs.
    Redis(String),
    /// An option is out of range (the text says which).
    Option(String),
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("url", &link::shown(&self.url))
            .field("queue", &self.queue)
            .field("task_timeout", &self.task_timeout)
            .field("deadline", &self.deadline)
            .field("max_attempts", &self.max_attempts)
            .field("reply_ttl", &self.reply_ttl)
            .field("payload_ttl", &self.payload_ttl)
            .field("cancel_kills_running", &self.cancel_kills_running)
            .field("max_workers", &self.max_workers)
            .field("watchdog_interval", &self.watchdog_interval)
            .field("tls_root_certificate", &self.tls_root_certificate.is_some())
            .finish()
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Url(e) => write!(f, "bad Redis URL: {e}"),
            ConnectError::Redis(e) => write!(f, "cannot use Redis: {e}"),
            ConnectError::Option(e) => write!(f, "bad option: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

impl Builder {
    /// Defaults: queue `default`, no task timeout, no deadline, 3 attempts, reply TTL 10 min,
    /// payload TTL 1 h, `cancel` does not kill running tasks.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// use futurepool_redis::Builder;
    ///
    /// let pool = Builder::new(&url).queue("images").connect().unwrap();
    /// let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().queue("images")).unwrap();
    /// assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    /// # }
    /// ```
    pub fn new(url: impl Into<String>) -> Builder {
        Builder {
            url: url.into(),
            queue: "default".into(),
            task_timeout: None,
            deadline: None,
            max_attempts: 3,
            reply_ttl: Duration::from_secs(600),
            payload_ttl: Duration::from_secs(3600),
            cancel_kills_running: false,
            max_workers: 64,
            watchdog_interval: Duration::from_secs(5),
            tls_root_certificate: None,
        }
    }

    /// The queue (a set of agents serving it). Default `default`.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// use futurepool_redis::{Agent, AgentOptions, RedisPool};
    ///
    /// // Clients and agents meet on a queue (default: "default").
    /// let _agent = Agent::start(&url, AgentOptions::new().queue("thumbnails")).unwrap();
    /// let pool = RedisPool::builder(&url).queue("thumbnails").connect().unwrap();
    /// assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    /// # }
    /// ```
    pub fn queue(mut self, name: impl Into<String>) -> Builder {
        self.queue = name.into();
        self
    }

    /// Every task may run this long once an agent started it; past it the agent kills it and
    /// the future fails with [`FutureError::TimedOut`]. [`RedisPool::with_task_timeout`] sets one
    /// task's.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// # futurepool_procs::register!(nap);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::{FutureError, RedisPool};
    ///
    /// let pool = RedisPool::builder(&url).task_timeout(Duration::from_millis(200)).connect().unwrap();
    /// assert_eq!(pool.submit(nap, 10_000).unwrap().result(), Err(FutureError::TimedOut));
    /// # }
    /// ```
    pub fn task_timeout(mut self, timeout: Duration) -> Builder {
        self.task_timeout = Some(timeout);
        self
    }

    /// A client-side deadline for every future, counted from its submit: past it the future
    /// fails with [`FutureError::TimedOut`] and the task is cancelled (killed if running),
    /// whether or not any agent or Redis is reachable.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// use std::time::Duration;
    /// use futurepool_redis::{FutureError, RedisPool};
    ///
    /// // No agent serves this queue: the deadline fails the future and cancels its task.
    /// let pool = RedisPool::builder(&url)
    ///     .queue("nobody")
    ///     .deadline(Duration::from_millis(300))
    ///     .connect()
    ///     .unwrap();
    /// assert_eq!(pool.submit(square, 3).unwrap().result(), Err(FutureError::TimedOut));
    /// # }
    /// ```
    pub fn deadline(mut self, deadline: Duration) -> Builder {
        self.deadline = Some(deadline);
        self
    }

    /// How many times a task is delivered to an agent that then vanishes (machine lost,
    /// SIGKILL, partition longer than the agents' lease) before it fails with
    /// [`FutureError::WorkerLost`]. Default 3; at least 1.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::builder(&url).max_attempts(5).connect().unwrap();
    /// assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    /// # }
    /// ```
    pub fn max_attempts(mut self, n: u32) -> Builder {
        self.max_attempts = n;
        self
    }

    /// How long the pool's reply stream outlives the client (it is refreshed while the client
    /// lives and deleted when the pool is done). Default 10 min.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::builder(&url).reply_ttl(Duration::from_secs(3600)).connect().unwrap();
    /// assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    /// # }
    /// ```
    pub fn reply_ttl(mut self, ttl: Duration) -> Builder {
        self.reply_ttl = ttl;
        self
    }

    /// Expiry of arguments of 1 MiB and more, which are stored in their own key until an agent
    /// takes them. Default 1 h.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::builder(&url).payload_ttl(Duration::from_secs(3600)).connect().unwrap();
    /// assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    /// # }
    /// ```
    pub fn payload_ttl(mut self, ttl: Duration) -> Builder {
        self.payload_ttl = ttl;
        self
    }

    /// Opt in to `Future::cancel` working on running tasks: the owning agent kills the task's
    /// worker process and the future ends cancelled.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// # futurepool_procs::register!(nap);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use futurepool_redis::{FutureError, RedisPool};
    ///
    /// let pool = RedisPool::builder(&url).cancel_kills_running(true).connect().unwrap();
    /// let running = pool.submit(nap, 60_000).unwrap();
    /// while !running.running() {
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    /// }
    /// assert!(running.cancel()); // the agent kills it
    /// assert_eq!(running.result(), Err(FutureError::Cancelled));
    /// # }
    /// ```
    pub fn cancel_kills_running(mut self, on: bool) -> Builder {
        self.cancel_kills_running = on;
        self
    }

    /// What [`Executor::max_workers`] reports, and so the default look-ahead of `map` (twice
    /// this). The agents decide how much really runs at once. Default 64.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::builder(&url).max_workers(4).connect().unwrap();
    /// let squares: Vec<u64> = pool
    ///     .map(square, 1..=8u64, futurepool_redis::MapOptions::new())
    ///     .unwrap()
    ///     .map(Result::unwrap)
    ///     .collect(); // at most 2 × 4 items in flight
    /// assert_eq!(squares[7], 64);
    /// # }
    /// ```
    pub fn max_workers(mut self, n: usize) -> Builder {
        self.max_workers = n;
        self
    }

    /// How often the watchdog asks Redis whether the pool's unfinished tasks still exist; a
    /// task missing twice in a row fails with [`FutureError::Broken`]. Default 5 s.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::builder(&url).watchdog_interval(Duration::from_secs(1)).connect().unwrap();
    /// assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    /// # }
    /// ```
    pub fn watchdog_interval(mut self, every: Duration) -> Builder {
        self.watchdog_interval = every;
        self
    }

    /// For `rediss://`: the server's certificate must chain to this CA certificate (PEM)
    /// instead of to the bundled web PKI roots (a private CA).
    ///
    /// ```no_run
    /// // A Redis behind TLS with a certificate from a private CA.
    /// let ca = std::fs::read("ca.crt").unwrap();
    /// let pool = futurepool_redis::RedisPool::builder("rediss://app:secret@10.0.0.1:6380/")
    ///     .tls_root_certificate(ca)
    ///     .connect()
    ///     .unwrap();
    /// ```
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Builder {
        self.tls_root_certificate = Some(pem.into());
        self
    }

    /// Connects (checking the URL, the credentials and that Redis answers) and starts the
    /// listener thread.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::builder(&url).connect().unwrap();
    /// assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    /// # }
    /// ```
    pub fn connect(self) -> Result<RedisPool, ConnectError> {
        let keys = Keys::new(&self.queue).map_err(ConnectError::Option)?;
        if self.max_attempts == 0 {
            return Err(ConnectError::Option(
                "max_attempts must be at least 1".into(),
            ));
        }
        if self.max_workers == 0 {
            return Err(ConnectError::Option(
                "max_workers must be at least 1".into(),
            ));
        }
        if self.reply_ttl < Duration::from_millis(100) {
            return Err(ConnectError::Option(
                "reply_ttl must be at least 100 ms".into(),
            ));
        }
        let shown = link::shown(&self.url);
        let client = link::open(&self.url, self.tls_root_certificate.as_deref())
            .map_err(|e| ConnectError::Url(e.to_string()))?;
        let mut submit = Link::new(client.clone(), Duration::ZERO);
        let id = link::random_id();
        let reply_key = keys.reply(&id);
        let client_key = keys.client(&id);
        // Checks the connection, the credentials, and every right the client needs on the
        // queue's keys; the client key tells agents this client is alive.
        let lacking = submit
            .run(|c| rights::check_client(c, &keys))
            .map_err(|e| ConnectError::Redis(format!("{shown}: {}", describe(&e))))?;
        if let Some(why) = lacking {
            return Err(ConnectError::Redis(format!("{shown}: {why}")));
        }
        submit
            .run(|c| {
                redis::cmd("SET")
                    .arg(&client_key)
                    .arg(1)
                    .arg("PX")
                    .arg(wire::ttl_ms(self.reply_ttl))
                    .query::<()>(c)
            })
            .map_err(|e| ConnectError::Redis(format!("{shown}: {}", describe(&e))))?;
        let bulk_limit = submit
            .conn()
            .map(limits::bulk_limit)
            .unwrap_or(limits::DEFAULT_BULK_LIMIT);
        let shared = Arc::new(Shared {
            keys,
            reply_key,
            client_key,
            id,
            shown,
            client,
            submit: Mutex::new(submit),
            state: Mutex::new(State::default()),
            idle: Condvar::new(),
            outbox: Mutex::new(Outbox::default()),
            outbox_changed: Condvar::new(),
            recorded: Condvar::new(),
            timer: Condvar::new(),
            cleanup: expiry::Cleanup::default(),
            next_seq: AtomicU64::new(1),
            malformed: AtomicU64::new(0),
            bulk_limit,
            closing: AtomicBool::new(false),
            options: self,
        });
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let mut spawn = |name: &str, body: fn(Arc<Shared>)| {
            let s = shared.clone();
            match thread::Builder::new()
                .name(format!("futurepool-redis-{name}"))
                .spawn(move || body(s))
            {
                Ok(handle) => {
                    threads.push(handle);
                    Ok(())
                }
                Err(e) => Err(format!("cannot start the {name} thread: {e}")),
            }
        };
        let mut started =
            spawn("listener", Shared::listen).and_then(|()| spawn("sender", Shared::send_loop));
        if shared.options.deadline.is_some() {
            started = started
                .and_then(|()| spawn("timer", Shared::expire_loop))
                .and_then(|()| spawn("cleaner", Shared::cleanup_loop));
        }
        if let Err(e) = started {
            shared.closing.store(true, Ordering::Release);
            shared.wake_all();
            for handle in threads {
                let _ = handle.join();
            }
            return Err(ConnectError::Redis(e));
        }
        Ok(RedisPool {
            shared,
            threads: Mutex::new(threads),
        })
    }
}

/// A Redis error, with the fix for a missing ACL right.
fn describe(e: &redis::RedisError) -> String {
    link::describe(e)
}

/// The executor whose tasks run on agents spread over machines: Python's `Executor` over a
/// Redis Stream. See the [crate docs](crate) for setting it up.
pub struct RedisPool {
    shared: Arc<Shared>,
    /// The listener, the sender, and in a pool with a deadline the timer and the cleaner.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    keys: Keys,
    /// This client's id and reply stream.
    id: String,
    reply_key: String,
    /// This client's liveness key.
    client_key: String,
    /// The URL with the password masked.
    shown: String,
    client: redis::Client,
    /// The connection `map`'s refills and cancels use.
    submit: Mutex<Link>,
    state: Mutex<State>,
    /// Notified when the last unfinished task of the pool finishes.
    idle: Condvar,
    /// Single submits on their way to the stream: the sender thread adds whatever has queued
    /// up in one round trip, so `submit` never waits for Redis.
    outbox: Mutex<Outbox>,
    /// Notified when the outbox gains tasks (the sender waits) or room (submitters wait), and
    /// when the pool closes.
    outbox_changed: Condvar,
    /// Notified (with `state`) when the sender has recorded stream entry ids.
    recorded: Condvar,
    /// Notified (with `state`) when the deadline timer has a deadline to wait for again, and
    /// when the pool closes.
    timer: Condvar,
    /// The clean-up of expired futures' tasks, done off the timer's and listener's path.
    cleanup: expiry::Cleanup,
    next_seq: AtomicU64,
    /// Reply entries dropped because they did not decode.
    malformed: AtomicU64,
    /// The server's `proto-max-bulk-len`, read at connect: a larger argument fails at once.
    bulk_limit: u64,
    /// Set by `shutdown(wait)` and drop: the listener exits once nothing is unfinished.
    closing: AtomicBool,
    options: Builder,
}

/// The single submits not yet added to the stream, oldest first.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<Outgoing>,
    /// The queued messages' bytes.
    bytes: usize,
}

/// A task on its way to the stream.
struct Outgoing {
    seq: u64,
    task: String,
    msg: Vec<u8>,
    /// The argument, when it is stored out of the stream: its key and bytes.
    blob: Option<(String, Vec<u8>)>,
}

/// The outbox holds at most this many tasks or bytes; `submit` waits for room beyond them.
const OUTBOX_TASKS: usize = 16_384;
const OUTBOX_BYTES: usize = 64 << 20;
/// At most this many tasks the sender takes from the outbox at once.
const SEND_BATCH: usize = 1_024;
/// At most about this many bytes (messages and stored arguments) go in one call of the add
/// script, all of whose arguments Redis holds at once.
const ADD_BYTES: usize = 32 << 20;

#[derive(Default)]
struct State {
    pending: HashMap<u64, Pending>,
    /// The pending tasks' deadlines, earliest first (an entry whose task is no longer
    /// pending is skipped when it comes up).
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    shut_down: bool,
}

/// An unfinished task of this pool.
struct Pending {
    sink: Arc<dyn Sink>,
    task: String,
    /// The stream entry's id, once `XADD` answered.
    entry: Option<String>,
    /// An agent said it started the task.
    started: bool,
    deadline: Option<Instant>,
    /// The argument's blob key, if it was stored out of the stream.
    blob: Option<String>,
    /// Consecutive watchdog rounds that did not find the task.
    missing: u8,
}

/// What an agent's outcome becomes on the client: one task's encoded value or failure, or a
/// chunk's, item by item.
enum Resolved {
    One(Result<Vec<u8>, FutureError<Infallible>>),
    Many(Vec<Result<Vec<u8>, FutureError<Infallible>>>),
}

/// The typed completing side of one future, seen untyped by the listener.
trait Sink: Send + Sync {
    /// Marks the future running; `false` if it was cancelled meanwhile.
    fn start(&self) -> bool;
    /// Installs the cancel hook of a running future.
    fn on_cancel(&self, hook: Box<dyn FnOnce() + Send>);
    /// Installs what `cancel()` asks while the future is pending.
    fn arbiter(&self, arbiter: Box<dyn Fn() -> bool + Send + Sync>);
    /// Completes the future from the agent's outcome.
    fn finish(&self, outcome: Resolved);
    /// Completes the future with a failure of the whole task.
    fn fail(&self, error: FutureError<Infallible>) {
        self.finish(Resolved::One(Err(error)));
    }
}

/// The sink of one task's future.
struct Typed<T, E> {
    promise: Promise<T, E>,
    decode: fn(&[u8]) -> Outcome<T, E>,
}

impl<T: Send + Sync + 'static, E: Send + Sync + 'static> Sink for Typed<T, E> {
    fn start(&self) -> bool {
        matches!(self.promise.set_running_or_notify_cancel(), Ok(true))
    }

    fn on_cancel(&self, hook: Box<dyn FnOnce() + Send>) {
        self.promise.set_cancel_hook(hook);
    }

    fn arbiter(&self, arbiter: Box<dyn Fn() -> bool + Send + Sync>) {
        self.promise.set_cancel_arbiter(arbiter);
    }

    fn finish(&self, outcome: Resolved) {
        let outcome = match outcome {
            Resolved::One(Ok(bytes)) => decode_guarded(|| (self.decode)(&bytes)),
            Resolved::One(Err(e)) => Err(e.map_raised(|never| match never {})),
            Resolved::Many(_) => Err(FutureError::Broken(
                "an agent answered a single task with a chunk".into(),
            )),
        };
        let _ = self.promise.set_outcome(outcome);
    }
}

/// The sink of a `map` chunk's future: every item's outcome.
struct Chunk<R> {
    promise: Promise<Vec<Outcome<R>>>,
    items: usize,
}

impl<R: DeserializeOwned + Send + Sync + 'static> Sink for Chunk<R> {
    fn start(&self) -> bool {
        matches!(self.promise.set_running_or_notify_cancel(), Ok(true))
    }

    fn on_cancel(&self, hook: Box<dyn FnOnce() + Send>) {
        self.promise.set_cancel_hook(hook);
    }

    fn arbiter(&self, arbiter: Box<dyn Fn() -> bool + Send + Sync>) {
        self.promise.set_cancel_arbiter(arbiter);
    }

    fn finish(&self, outcome: Resolved) {
        let outcome = match outcome {
            Resolved::Many(items) if items.len() == self.items => Ok(items
                .into_iter()
                .map(|item| match item {
                    Ok(bytes) => decode_guarded(|| decode_plain::<R>(&bytes)),
                    Err(e) => Err(e),
                })
                .collect()),
            Resolved::Many(items) => Err(FutureError::Broken(
                format!(
                    "an agent answered a chunk of {} items with {} outcomes",
                    self.items,
                    items.len()
                )
                .into(),
            )),
            Resolved::One(Ok(_)) => Err(FutureError::Broken(
                "an agent answered a chunk with a single value".into(),
            )),
            Resolved::One(Err(e)) => Err(e),
        };
        let _ = self.promise.set_outcome(outcome);
    }
}

/// Runs a result's decoding (the user's `Deserialize`, which may panic) so that a panic fails
/// that future instead of the listener thread, which every other future of the pool needs.
fn decode_guarded<T, E>(decode: impl FnOnce() -> Outcome<T, E>) -> Outcome<T, E> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|payload| {
        let panic = Panic::from_payload(payload);
        Err(codec_error(
            "the result",
            &format!("decoding panicked: {panic}"),
        ))
    })
}

fn codec_error<E>(what: &str, e: &dyn fmt::Display) -> FutureError<E> {
    FutureError::Codec(format!("{what} did not (de)serialize: {e}").into())
}

fn decode_plain<R: DeserializeOwned>(bytes: &[u8]) -> Outcome<R> {
    codec::decode::<R>(bytes).map_err(|e| codec_error("the result", &e))
}

fn decode_fallible<T: DeserializeOwned, E: DeserializeOwned>(bytes: &[u8]) -> Outcome<T, E> {
    match codec::decode::<Result<T, E>>(bytes) {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(FutureError::Raised(e)),
        Err(e) => Err(codec_error("the result", &e)),
    }
}

impl RedisPool {
    /// Connects to the Redis at `url` (`redis://[user:pass@]host:port[/db]`,
    /// `rediss://…` for TLS, `redis+unix:///path`) with the default options.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::connect(&url).unwrap(); // the default queue, default options
    /// assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    /// # }
    /// ```
    pub fn connect(url: &str) -> Result<RedisPool, ConnectError> {
        Builder::new(url).connect()
    }

    /// A [`Builder`] for the other options.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::builder(&url)
    ///     .max_attempts(3)
    ///     .deadline(Duration::from_secs(60))
    ///     .connect()
    ///     .unwrap();
    /// assert_eq!(pool.submit(square, 4).unwrap().result(), Ok(&16));
    /// # }
    /// ```
    pub fn builder(url: impl Into<String>) -> Builder {
        Builder::new(url)
    }

    /// This client's id (its reply stream is `fp:{queue}:reply:<id>`).
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// use futurepool_redis::RedisPool;
    ///
    /// let a = RedisPool::connect(&url).unwrap();
    /// let b = RedisPool::connect(&url).unwrap();
    /// assert_ne!(a.client_id(), b.client_id());
    /// # }
    /// ```
    pub fn client_id(&self) -> &str {
        &self.shared.id
    }

    /// Runs the registered function `f(arg)` on an agent. `f` must be a function item named
    /// in `futurepool_procs::register!` (agents run it by name); the agent refuses it if its
    /// own build registers `f` with other argument or return types.
    ///
    /// Refused (`SubmitError`) after shutdown, for a closure, or when Redis cannot be reached;
    /// an argument that does not serialize fails only this future ([`FutureError::Codec`]).
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::connect(&url).unwrap();
    /// let future = pool.submit(square, 12).unwrap(); // runs on an agent, by name
    /// assert_eq!(future.result(), Ok(&144));
    /// # }
    /// ```
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, SubmitError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        let timeout = self.shared.options.task_timeout;
        self.submit_typed::<F, R, Infallible>(
            signature_of(&f),
            &arg,
            timeout,
            false,
            decode_plain::<R>,
        )
    }

    /// The pool's submits with this per-task run-time limit (enforced by the agent, which kills
    /// the task's worker process past it: [`FutureError::TimedOut`]), as the process pool's
    /// `with_task_timeout`.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// # futurepool_procs::register!(nap);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::{FutureError, RedisPool};
    ///
    /// let pool = RedisPool::connect(&url).unwrap();
    /// let quick = pool.with_task_timeout(Duration::from_millis(200));
    /// assert_eq!(quick.submit(nap, 10_000).unwrap().result(), Err(FutureError::TimedOut));
    /// # }
    /// ```
    pub fn with_task_timeout(&self, timeout: Duration) -> WithTaskTimeout<'_> {
        WithTaskTimeout {
            pool: self,
            timeout,
        }
    }

    /// Runs a registered fallible function: its `Err(e)` comes back typed as
    /// [`FutureError::Raised`].
    ///
    /// ```
    /// # fn halve(x: u64) -> Result<u64, String> { if x % 2 == 0 { Ok(x / 2) } else { Err(format!("{x} is odd")) } }
    /// # futurepool_procs::register!(halve);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use futurepool_redis::{FutureError, RedisPool};
    ///
    /// let pool = RedisPool::connect(&url).unwrap();
    /// assert_eq!(pool.submit_fallible(halve, 8).unwrap().result(), Ok(&4));
    /// let odd = pool.submit_fallible(halve, 3).unwrap();
    /// assert_eq!(odd.result(), Err(FutureError::Raised(&"3 is odd".to_string())));
    /// # }
    /// ```
    pub fn submit_fallible<F, A, T, E>(&self, f: F, arg: A) -> Result<Future<T, E>, SubmitError>
    where
        F: Fn(A) -> Result<T, E> + Copy + Send + 'static,
        A: Serialize,
        T: DeserializeOwned + Send + Sync + 'static,
        E: DeserializeOwned + Send + Sync + 'static,
    {
        let timeout = self.shared.options.task_timeout;
        self.submit_typed::<F, T, E>(
            signature_of(&f),
            &arg,
            timeout,
            false,
            decode_fallible::<T, E>,
        )
    }

    /// Runs a registered function that takes a [`Delivery`]: the agent fills in the task's id
    /// and attempt number (1, or more after its agent was lost), so side effects can be made
    /// idempotent. The client sends only `arg`.
    ///
    /// ```
    /// # fn attempt(d: futurepool_redis::Delivery<u64>) -> u32 { d.attempt }
    /// # futurepool_procs::register!(attempt);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use futurepool_redis::RedisPool;
    ///
    /// // fn attempt(d: Delivery<u64>) -> u32 { d.attempt }, registered
    /// let pool = RedisPool::connect(&url).unwrap();
    /// assert_eq!(pool.submit_delivery(attempt, 7).unwrap().result(), Ok(&1)); // first delivery
    /// # }
    /// ```
    pub fn submit_delivery<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, SubmitError>
    where
        F: Fn(Delivery<A>) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        let timeout = self.shared.options.task_timeout;
        self.submit_typed::<F, R, Infallible>(
            signature_of(&f),
            &arg,
            timeout,
            true,
            decode_plain::<R>,
        )
    }

    fn submit_typed<F: 'static, T, E>(
        &self,
        signature: Signature,
        arg: &impl Serialize,
        timeout: Option<Duration>,
        delivery: bool,
        decode: fn(&[u8]) -> Outcome<T, E>,
    ) -> Result<Future<T, E>, SubmitError>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        self.submit_one::<F, T, E>(signature, arg, timeout, delivery, decode)
    }

    fn submit_one<F: 'static, T, E>(
        &self,
        signature: Signature,
        arg: &impl Serialize,
        timeout: Option<Duration>,
        delivery: bool,
        decode: fn(&[u8]) -> Outcome<T, E>,
    ) -> Result<Future<T, E>, SubmitError>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        check_named::<F>(signature)?;
        let arg = match codec::encode(arg) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Future::failed(codec_error("the argument", &e))),
        };
        if let Some(why) = limits::over("the encoded argument", arg.len(), self.shared.bulk_limit) {
            return Ok(Future::failed(FutureError::Codec(why.into())));
        }
        let task = NewTask {
            signature,
            arg,
            timeout,
            delivery,
            chunk: None,
        };
        self.shared
            .enqueue(task, |promise, _| Arc::new(Typed { promise, decode }))
    }

    /// Python's `map`: `f` over every input, outcomes in input order. Lazy, with at most
    /// `buffersize` items (default: twice [`Builder::max_workers`]) in flight; `chunksize`
    /// inputs travel as one task (one stream entry each way) and run one after another on one
    /// agent; each refill adds its tasks to the stream in one round trip. One
    /// deadline for the whole iteration (`timeout`); `task_timeout` limits each item's run.
    /// Dropping the iterator cancels the tasks not yet started.
    ///
    /// # Errors
    ///
    /// [`OptionsError`] for a zero `chunksize` or `buffersize` (Python's `ValueError`).
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use futurepool_redis::{MapOptions, RedisPool};
    ///
    /// let pool = RedisPool::connect(&url).unwrap();
    /// let squares: Vec<u64> = pool
    ///     .map(square, 1..=20u64, MapOptions::new().chunksize(5))
    ///     .unwrap()
    ///     .map(Result::unwrap)
    ///     .collect(); // in input order
    /// assert_eq!(squares[19], 400);
    /// # }
    /// ```
    pub fn map<F, A, R, I>(
        &self,
        f: F,
        inputs: I,
        options: MapOptions,
    ) -> Result<RemoteMap<'_, A, R, I::IntoIter>, OptionsError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = A>,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        options.check()?;
        let signature = signature_of(&f);
        let refusal = check_named::<F>(signature).err().map(FutureError::from);
        let items_ahead = options
            .buffersize
            .unwrap_or(2 * self.shared.options.max_workers);
        Ok(RemoteMap {
            pool: self,
            signature,
            inputs: if refusal.is_some() {
                None
            } else {
                Some(inputs.into_iter())
            },
            refusal,
            chunksize: options.chunksize,
            chunks_ahead: items_ahead.div_ceil(options.chunksize).max(1),
            task_timeout: options.task_timeout.or(self.shared.options.task_timeout),
            window: VecDeque::new(),
            current: VecDeque::new(),
            deadline: options.timeout.and_then(|t| Instant::now().checked_add(t)),
            ended: false,
            _types: std::marker::PhantomData,
        })
    }

    /// Python's `shutdown(wait, cancel_futures)`; idempotent. `cancel_futures` cancels every
    /// task of this pool that no agent has started (they never run); `wait` blocks until every
    /// future of the pool is done, then deletes the pool's reply stream.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use futurepool_redis::{RedisPool, Shutdown, SubmitError};
    ///
    /// let pool = RedisPool::connect(&url).unwrap();
    /// let future = pool.submit(square, 5).unwrap();
    /// pool.shutdown(Shutdown::new().wait(true));
    /// assert_eq!(future.result(), Ok(&25));
    /// assert!(matches!(pool.submit(square, 6), Err(SubmitError::ShutDown)));
    /// # }
    /// ```
    pub fn shutdown(&self, options: Shutdown) {
        self.shared.lock().shut_down = true;
        if options.cancel_futures {
            self.shared.cancel_queued();
        }
        if options.wait {
            self.shared.closing.store(true, Ordering::Release);
            self.shared.wake_all();
            let mut state = self.shared.lock();
            while !state.pending.is_empty() {
                state = self
                    .shared
                    .idle
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
            }
            drop(state);
            let threads =
                std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
            for handle in threads {
                let _ = handle.join();
            }
        }
    }

    /// How many of this pool's tasks are unfinished.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::connect(&url).unwrap();
    /// assert_eq!(pool.unfinished(), 0);
    /// pool.submit(square, 5).unwrap().wait();
    /// assert_eq!(pool.unfinished(), 0);
    /// # }
    /// ```
    pub fn unfinished(&self) -> usize {
        self.shared.lock().pending.len()
    }

    /// How many entries of this pool's reply stream were dropped because they did not decode
    /// (each is logged): anyone who may write the stream can put bytes there.
    pub fn malformed_replies(&self) -> u64 {
        self.shared.malformed.load(Ordering::Relaxed)
    }
}

/// What [`RedisPool::with_task_timeout`] returns: the pool's submits, each task with the given
/// run-time limit.
#[derive(Clone, Copy, Debug)]
pub struct WithTaskTimeout<'a> {
    pool: &'a RedisPool,
    timeout: Duration,
}

impl WithTaskTimeout<'_> {
    /// [`RedisPool::submit`] with this timeout.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// # futurepool_procs::register!(nap);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::connect(&url).unwrap();
    /// let f = pool.with_task_timeout(Duration::from_secs(30)).submit(nap, 5).unwrap();
    /// assert_eq!(f.result(), Ok(&5));
    /// # }
    /// ```
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, SubmitError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        self.pool.submit_typed::<F, R, Infallible>(
            signature_of(&f),
            &arg,
            Some(self.timeout),
            false,
            decode_plain::<R>,
        )
    }

    /// [`RedisPool::submit_fallible`] with this timeout.
    ///
    /// ```
    /// # fn halve(x: u64) -> Result<u64, String> { if x % 2 == 0 { Ok(x / 2) } else { Err(format!("{x} is odd")) } }
    /// # futurepool_procs::register!(halve);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::connect(&url).unwrap();
    /// let f = pool.with_task_timeout(Duration::from_secs(30)).submit_fallible(halve, 6).unwrap();
    /// assert_eq!(f.result(), Ok(&3));
    /// # }
    /// ```
    pub fn submit_fallible<F, A, T, E>(&self, f: F, arg: A) -> Result<Future<T, E>, SubmitError>
    where
        F: Fn(A) -> Result<T, E> + Copy + Send + 'static,
        A: Serialize,
        T: DeserializeOwned + Send + Sync + 'static,
        E: DeserializeOwned + Send + Sync + 'static,
    {
        self.pool.submit_typed::<F, T, E>(
            signature_of(&f),
            &arg,
            Some(self.timeout),
            false,
            decode_fallible::<T, E>,
        )
    }

    /// [`RedisPool::submit_delivery`] with this timeout.
    ///
    /// ```
    /// # fn attempt(d: futurepool_redis::Delivery<u64>) -> u32 { d.attempt }
    /// # futurepool_procs::register!(attempt);
    /// # fn main() {
    /// # futurepool_procs::init(); // the agent's worker processes stop here
    /// # // A private redis-server for the example (the test reports itself skipped without one).
    /// # let server = match futurepool_redis::test_support::LocalServer::start() {
    /// #     Ok(server) => server,
    /// #     Err(e) => return futurepool_testkit::tools::skip("redis-server", &e.to_string()),
    /// # };
    /// # let url = server.url();
    /// # let _agent = futurepool_redis::Agent::start(&url, futurepool_redis::AgentOptions::new().slots(2)).unwrap();
    /// use std::time::Duration;
    /// use futurepool_redis::RedisPool;
    ///
    /// let pool = RedisPool::connect(&url).unwrap();
    /// let f = pool.with_task_timeout(Duration::from_secs(30)).submit_delivery(attempt, 1).unwrap();
    /// assert_eq!(f.result(), Ok(&1));
    /// # }
    /// ```
    pub fn submit_delivery<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, SubmitError>
    where
        F: Fn(Delivery<A>) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        self.pool.submit_typed::<F, R, Infallible>(
            signature_of(&f),
            &arg,
            Some(self.timeout),
            true,
            decode_plain::<R>,
        )
    }
}

/// Refuses closures, function pointers and functions this program does not register: agents
/// run functions by name, and are built from the same code.
fn check_named<F: 'static>(signature: Signature) -> Result<(), SubmitError> {
    let name = signature.name;
    if std::mem::size_of::<F>() != 0 || futurepool_procs::__private::signature(name).is_none() {
        let short = name.rsplit("::").next().unwrap_or(name);
        return Err(SubmitError::Rejected(
            format!(
                "{name} cannot run on an agent: submit a named function registered with \
                 futurepool_procs::register!({short}), not a closure or function pointer"
            )
            .into(),
        ));
    }
    Ok(())
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every thread that waits for the pool to close.
    fn wake_all(&self) {
        {
            // Under the outbox's lock, so the sender cannot miss it between its check and
            // its wait; the same for the timer and the state's lock.
            let _outbox = self.outbox();
            self.outbox_changed.notify_all();
        }
        {
            let _state = self.lock();
            self.timer.notify_all();
        }
        self.cleanup.wake();
    }

    fn submit_link(&self) -> MutexGuard<'_, Link> {
        self.submit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the future, the table entry and the stream message of each task.
    fn prepare<T, E>(
        &self,
        tasks: Vec<NewTask>,
        sink: impl Fn(Promise<T, E>, &NewTask) -> Arc<dyn Sink>,
    ) -> Vec<Prepared<T, E>>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let options = &self.options;
        let deadline = options.deadline.and_then(|d| Instant::now().checked_add(d));
        let mut prepared = Vec::with_capacity(tasks.len());
        for new in tasks {
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            let task = format!("{}:{seq}", self.id);
            let (future, promise) = Future::pending();
            let sink = sink(promise, &new);
            let NewTask {
                signature,
                arg,
                timeout,
                delivery,
                chunk,
            } = new;
            let (arg, blob) = if arg.len() >= wire::BLOB_FROM {
                let key = self.keys.blob(&task, "arg");
                (Payload::Stored(key.clone()), Some((key, arg)))
            } else {
                (Payload::Inline(arg), None)
            };
            let msg = wire::to_bytes(&TaskMsg {
                task: task.clone(),
                client: self.id.clone(),
                seq,
                function: signature.name.to_string(),
                signature: signature.to_string(),
                fingerprint: signature.fingerprint(),
                arg,
                timeout_ms: timeout.map(millis),
                max_attempts: options.max_attempts,
                reply_ttl_ms: wire::ttl_ms(options.reply_ttl),
                delivery,
                chunk: chunk.is_some(),
            });
            let pending = Pending {
                sink,
                task: task.clone(),
                entry: None,
                started: false,
                deadline,
                blob: blob.as_ref().map(|(key, _)| key.clone()),
                missing: 0,
            };
            prepared.push(Prepared {
                future,
                pending: Some(pending),
                outgoing: Outgoing {
                    seq,
                    task,
                    msg,
                    blob,
                },
            });
        }
        prepared
    }

    /// Lists the tasks in the table, before any reaches the stream (so a reply that comes
    /// back at once finds its future). Each future's `cancel()` asks Redis, through
    /// [`arbitrate`](Self::arbitrate), whether an agent has started its task.
    fn list(
        self: &Arc<Self>,
        prepared: &mut [Prepared<impl Sized, impl Sized>],
    ) -> Result<(), SubmitError> {
        for p in prepared.iter() {
            if let Some(pending) = &p.pending {
                let weak = Arc::downgrade(self);
                let seq = p.outgoing.seq;
                pending.sink.arbiter(Box::new(move || {
                    weak.upgrade().is_some_and(|shared| shared.arbitrate(seq))
                }));
            }
        }
        let mut state = self.lock();
        if state.shut_down {
            return Err(SubmitError::ShutDown);
        }
        let was_empty = state.deadlines.is_empty();
        for p in prepared {
            if let Some(pending) = p.pending.take() {
                if let Some(deadline) = pending.deadline {
                    state.deadlines.push(Reverse((deadline, p.outgoing.seq)));
                }
                state.pending.insert(p.outgoing.seq, pending);
            }
        }
        drop(state);
        if was_empty {
            // Deadlines only grow (each is its submit plus the pool's one duration): the
            // timer needs waking only when it has none.
            self.timer.notify_all();
        }
        Ok(())
    }

    /// Adds tasks to the stream, each run of them (up to [`ADD_BYTES`]) in one call of the add
    /// script, all of a run or none: the entry ids of the tasks added, which are the first ones,
    /// in order, and why the rest were not. A run Redis refuses is retried for 10 s if the
    /// error is transient.
    fn add_to_stream(
        &self,
        link: &mut Link,
        batch: &[Outgoing],
        deadline: Option<Instant>,
    ) -> (Vec<String>, Option<redis::RedisError>) {
        // A caller's deadline bounds every attempt, not only the retries.
        if let Some(deadline) = deadline {
            link.cap(deadline);
        }
        let added = self.add_runs(link, batch, deadline);
        if deadline.is_some() {
            link.uncap();
        }
        added
    }

    fn add_runs(
        &self,
        link: &mut Link,
        batch: &[Outgoing],
        deadline: Option<Instant>,
    ) -> (Vec<String>, Option<redis::RedisError>) {
        let mut ids = Vec::with_capacity(batch.len());
        let mut rest = batch;
        while !rest.is_empty() {
            let mut bytes = 0;
            let n = rest
                .iter()
                .take_while(|o| {
                    bytes += o.msg.len() + o.blob.as_ref().map_or(0, |(_, b)| b.len());
                    bytes <= ADD_BYTES
                })
                .count()
                .max(1);
            let (run, after) = rest.split_at(n);
            match self.add_run(link, run, deadline) {
                Ok(added) if added.len() == run.len() => ids.extend(added),
                Ok(added) => {
                    let e = redis::RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "the add script answered",
                        format!("{} ids for {} tasks", added.len(), run.len()),
                    ));
                    return (ids, Some(e));
                }
                Err(e) => return (ids, Some(e)),
            }
            rest = after;
        }
        (ids, None)
    }

    /// One call of the add script (see `scripts::add`).
    fn add_run(
        &self,
        link: &mut Link,
        run: &[Outgoing],
        deadline: Option<Instant>,
    ) -> redis::RedisResult<Vec<String>> {
        let client_ttl = wire::ttl_ms(self.options.reply_ttl);
        let payload_ttl = wire::ttl_ms(self.options.payload_ttl);
        let until = crate::time::from_now(Duration::from_secs(10));
        link.run_retrying(
            Some(deadline.map_or(until, |d| d.min(until))),
            || true,
            |c| {
                let mut add = scripts::add().key(self.keys.tasks());
                add.key(&self.client_key);
                let blobs: Vec<&(String, Vec<u8>)> =
                    run.iter().filter_map(|o| o.blob.as_ref()).collect();
                for (key, _) in &blobs {
                    add.key(key);
                }
                add.arg(client_ttl).arg(payload_ttl).arg(blobs.len());
                for (_, bytes) in &blobs {
                    add.arg(bytes);
                }
                for o in run {
                    add.arg(&o.msg);
                }
                add.invoke::<Vec<String>>(c)
            },
        )
    }

    /// Records the entry ids of tasks just added; returns those whose future was cancelled
    /// (or timed out) while they were on their way, to be taken off the stream again.
    fn record(
        &self,
        batch: &[Outgoing],
        ids: Vec<String>,
    ) -> Vec<(String, String, Option<String>)> {
        let mut late = Vec::new();
        {
            let mut state = self.lock();
            for (o, id) in batch.iter().zip(ids) {
                match state.pending.get_mut(&o.seq) {
                    Some(pending) => pending.entry = Some(id),
                    None => late.push((
                        o.task.clone(),
                        id,
                        o.blob.as_ref().map(|(key, _)| key.clone()),
                    )),
                }
            }
        }
        self.recorded.notify_all();
        late
    }

    /// Fails the listed tasks that could not be added to the stream.
    fn unlist(&self, batch: &[Outgoing], e: &redis::RedisError) -> String {
        let mut failed = Vec::new();
        {
            let mut state = self.lock();
            for o in batch {
                failed.extend(state.pending.remove(&o.seq));
            }
            if state.pending.is_empty() {
                self.idle.notify_all();
            }
        }
        // A `cancel()` or kill waiting for these tasks' entry ids stops waiting: there are none.
        self.recorded.notify_all();
        // Refused (an error reply, or never sent): the task is not in the stream. A connection
        // that failed mid-request leaves that unknown.
        let unsure = !(e.is_connection_refusal() || e.code().is_some());
        let why = format!(
            "cannot add the task to Redis at {}: {}{}",
            self.shown,
            describe(e),
            if unsure {
                " (the connection failed mid-request: the task may have been added and may \
                 still run)"
            } else {
                ""
            }
        );
        for pending in failed {
            pending.sink.fail(FutureError::Broken(why.clone().into()));
        }
        why
    }

    /// Adds tasks to the stream in one round trip and returns their futures, in
    /// order, once Redis has them (`map`'s refills).
    /// No round trip lasts past `deadline` (the map's), nor past the pool's deadline for
    /// these tasks: a frozen Redis cannot hold the caller longer.
    fn submit_batch<T, E>(
        self: &Arc<Self>,
        tasks: Vec<NewTask>,
        deadline: Option<Instant>,
        sink: impl Fn(Promise<T, E>, &NewTask) -> Arc<dyn Sink>,
    ) -> Result<Vec<Future<T, E>>, SubmitError>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let deadline = match (deadline, self.options.deadline.map(crate::time::from_now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut prepared = self.prepare(tasks, sink);
        self.list(&mut prepared)?;
        let (futures, batch): (Vec<_>, Vec<_>) =
            prepared.into_iter().map(|p| (p.future, p.outgoing)).unzip();
        let (ids, refused) = self.add_to_stream(&mut self.submit_link(), &batch, deadline);
        let added = ids.len();
        let late = self.record(&batch[..added], ids);
        if !late.is_empty() {
            let mut link = self.submit_link();
            for (task, entry, blob) in late {
                self.cancel_script(&mut link, &task, &entry, blob.as_deref(), true);
            }
        }
        // The tasks not added fail their own futures (`Broken`); the others go on.
        if let Some(e) = refused {
            self.unlist(&batch[added..], &e);
        }
        Ok(futures)
    }

    /// A single submit: listed at once and handed to the sender thread, which adds it to the
    /// stream with whatever else was submitted meanwhile. `submit` returns without waiting
    /// for Redis; a task Redis cannot take within 10 s fails its future with `Broken`.
    fn enqueue<T, E>(
        self: &Arc<Self>,
        task: NewTask,
        sink: impl Fn(Promise<T, E>, &NewTask) -> Arc<dyn Sink>,
    ) -> Result<Future<T, E>, SubmitError>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let mut prepared = self.prepare(vec![task], sink);
        {
            // Room first: a submitter far ahead of Redis waits here, not in memory.
            let mut outbox = self.outbox();
            while outbox.queue.len() >= OUTBOX_TASKS
                || (outbox.bytes >= OUTBOX_BYTES && !outbox.queue.is_empty())
            {
                outbox = self
                    .outbox_changed
                    .wait(outbox)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        self.list(&mut prepared)?;
        let Prepared {
            future, outgoing, ..
        } = prepared.pop().expect("one task in, one prepared out");
        {
            let mut outbox = self.outbox();
            outbox.bytes += outgoing.msg.len();
            outbox.queue.push_back(outgoing);
        }
        self.outbox_changed.notify_all();
        Ok(future)
    }

    /// The sender thread: adds the outbox's tasks to the stream, a pipeline at a time, until
    /// the pool closes with an empty outbox.
    fn send_loop(self: Arc<Self>) {
        let mut link = Link::new(self.client.clone(), Duration::ZERO);
        loop {
            let batch: Vec<Outgoing> = {
                let mut outbox = self.outbox();
                while outbox.queue.is_empty() {
                    if self.closing.load(Ordering::Acquire) {
                        return;
                    }
                    outbox = self
                        .outbox_changed
                        .wait(outbox)
                        .unwrap_or_else(|p| p.into_inner());
                }
                let n = outbox.queue.len().min(SEND_BATCH);
                let batch: Vec<Outgoing> = outbox.queue.drain(..n).collect();
                outbox.bytes -= batch.iter().map(|o| o.msg.len()).sum::<usize>();
                batch
            };
            self.outbox_changed.notify_all();
            // Tasks cancelled (or past their deadline) before they were sent stay out.
            let batch: Vec<Outgoing> = {
                let state = self.lock();
                batch
                    .into_iter()
                    .filter(|o| state.pending.contains_key(&o.seq))
                    .collect()
            };
            if batch.is_empty() {
                continue;
            }
            let (ids, refused) = self.add_to_stream(&mut link, &batch, None);
            let added = ids.len();
            for (task, entry, blob) in self.record(&batch[..added], ids) {
                self.cancel_script(&mut link, &task, &entry, blob.as_deref(), true);
            }
            if let Some(e) = refused {
                self.unlist(&batch[added..], &e);
            }
        }
    }

    /// Runs the cancel script for one task; `None` if Redis could not be reached.
    fn cancel_script(
        &self,
        link: &mut Link,
        task: &str,
        entry: &str,
        blob: Option<&str>,
        kill: bool,
    ) -> Option<i64> {
        let until = Instant::now().checked_add(Duration::from_secs(5));
        match self.cancel_until(link, task, entry, blob, kill, until) {
            Ok(n) => Some(n),
            Err(e) => {
                log::error!(
                    "futurepool-redis: cannot cancel task {task}: {}",
                    describe(&e)
                );
                None
            }
        }
    }

    /// Runs the cancel script once (see `scripts::cancel` for its answer).
    fn run_cancel(
        &self,
        link: &mut Link,
        task: &str,
        entry: &str,
        blob: Option<&str>,
        kill: bool,
    ) -> redis::RedisResult<i64> {
        self.cancel_until(link, task, entry, blob, kill, Some(Instant::now()))
    }

    /// Runs the cancel script, retrying transient failures until `until`.
    fn cancel_until(
        &self,
        link: &mut Link,
        task: &str,
        entry: &str,
        blob: Option<&str>,
        kill: bool,
        until: Option<Instant>,
    ) -> redis::RedisResult<i64> {
        let keys = &self.keys;
        let blob = blob.map_or_else(|| keys.blob(task, "arg"), str::to_string);
        let ttl = wire::ttl_ms(self.options.reply_ttl);
        link.run_retrying(
            until,
            || true,
            |c| {
                scripts::cancel()
                    .key(keys.tasks())
                    .key(keys.running())
                    .key(keys.cancel(task))
                    .key(&blob)
                    .arg(entry)
                    .arg(task)
                    .arg(if kill { "1" } else { "0" })
                    .arg(keys.control_prefix())
                    .arg(ttl)
                    .invoke::<i64>(c)
            },
        )
    }

    /// `cancel()` on a running future with `cancel_kills_running`: ask its agent to kill it;
    /// the agent's `Cancelled` reply completes the future.
    fn kill(&self, seq: u64) {
        // An agent can start a task before the sender has recorded its entry id.
        let Some((task, entry, _)) = self.recorded_entry(seq, |_| true) else {
            return;
        };
        let mut link = self.submit_link();
        self.cancel_script(&mut link, &task, &entry, None, true);
    }

    /// `shutdown(cancel_futures)`: cancels every task no agent has started.
    fn cancel_queued(&self) {
        // Not yet sent: the sender leaves a task out (or takes it off the stream again) once
        // its table entry is gone.
        for pending in self.take_where(|p| !p.started && p.entry.is_none()) {
            pending.sink.fail(FutureError::Cancelled);
        }
        let queued: Vec<(u64, String, String, Option<String>)> = self
            .lock()
            .pending
            .iter()
            .filter(|(_, p)| !p.started)
            .filter_map(|(&seq, p)| {
                p.entry
                    .clone()
                    .map(|e| (seq, p.task.clone(), e, p.blob.clone()))
            })
            .collect();
        let mut link = self.submit_link();
        for (seq, task, entry, blob) in queued {
            if self.cancel_script(&mut link, &task, &entry, blob.as_deref(), false) == Some(0) {
                if let Some(pending) = self.take(seq) {
                    pending.sink.fail(FutureError::Cancelled);
                }
            }
        }
    }

    /// Removes the unfinished tasks `which` picks from the table (notifying `shutdown(wait)`
    /// when none is left).
    fn take_where(&self, which: impl Fn(&Pending) -> bool) -> Vec<Pending> {
        let mut state = self.lock();
        let seqs: Vec<u64> = state
            .pending
            .iter()
            .filter(|(_, p)| which(p))
            .map(|(&seq, _)| seq)
            .collect();
        let taken = seqs
            .iter()
            .filter_map(|seq| state.pending.remove(seq))
            .collect();
        if state.pending.is_empty() {
            self.idle.notify_all();
        }
        taken
    }

    /// Removes an unfinished task from the table (notifying `shutdown(wait)` when it was the
    /// last).
    fn take(&self, seq: u64) -> Option<Pending> {
        let mut state = self.lock();
        let pending = state.pending.remove(&seq);
        if state.pending.is_empty() {
            self.idle.notify_all();
        }
        pending
    }

    /// The listener thread: reads the reply stream until the pool is closing and has nothing
    /// unfinished, then deletes the stream.
    fn listen(self: Arc<Self>) {
        let mut link = Link::new(self.client.clone(), LISTEN_BLOCK);
        let mut last = "0-0".to_string();
        let ttl = wire::ttl_ms(self.options.reply_ttl);
        let refresh_every = (self.options.reply_ttl / 3).min(Duration::from_secs(10));
        let mut next_refresh = Instant::now();
        let mut next_watch = crate::time::from_now(self.options.watchdog_interval);
        let mut pause = Duration::from_millis(20);
        let mut dropped = false;
        loop {
            let empty = self.lock().pending.is_empty();
            if empty && self.closing.load(Ordering::Acquire) {
                break;
            }
            let block = LISTEN_BLOCK;
            let read = link.run(|c| {
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(1024)
                    .arg("BLOCK")
                    .arg(block.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&self.reply_key)
                    .arg(&last)
                    .query::<Option<StreamReadReply>>(c)
            });
            match read {
                Ok(reply) => {
                    pause = Duration::from_millis(20);
                    let mut ids = Vec::new();
                    for key in reply.map(|r| r.keys).unwrap_or_default() {
                        for entry in key.ids {
                            if let Some(Value::BulkString(seqs)) =
                                entry.map.get(wire::STARTED_FIELD)
                            {
                                match wire::started_seqs(seqs) {
                                    Some(seqs) => {
                                        for seq in seqs {
                                            self.mark_started(seq);
                                        }
                                    }
                                    None => self.dropped(&entry.id, "a malformed started list"),
                                }
                            } else {
                                let msg = match entry.map.get(wire::FIELD) {
                                    Some(Value::BulkString(bytes)) => {
                                        wire::from_bytes::<ReplyMsg>(bytes)
                                    }
                                    _ => Err("no message field".to_string()),
                                };
                                match msg {
                                    Ok(msg) => self.on_reply(&mut link, msg),
                                    Err(e) => self.dropped(&entry.id, &e),
                                }
                            }
                            last.clone_from(&entry.id);
                            ids.push(entry.id);
                        }
                    }
                    if !ids.is_empty() {
                        dropped = false;
                        let _ = link.run(|c| {
                            redis::cmd("XDEL")
                                .arg(&self.reply_key)
                                .arg(&ids)
                                .query::<()>(c)
                        });
                    }
                }
                // A right revoked while running: nothing would ever come back, so every
                // unfinished future fails, naming it.
                Err(e) if e.code() == Some("NOPERM") => {
                    let why = format!(
                        "cannot read replies from Redis at {}: {}",
                        self.shown,
                        describe(&e)
                    );
                    log::error!("futurepool-redis: {why}");
                    for pending in self.take_where(|_| true) {
                        pending.sink.fail(FutureError::Broken(why.clone().into()));
                    }
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    log::warn!(
                        "futurepool-redis: reading replies from {}: {}",
                        self.shown,
                        describe(&e)
                    );
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
            let now = Instant::now();
            if now >= next_refresh {
                next_refresh = now + refresh_every;
                let _ = link.run(|c| {
                    redis::pipe()
                        .cmd("PEXPIRE")
                        .arg(&self.reply_key)
                        .arg(ttl)
                        .ignore()
                        .cmd("SET")
                        .arg(&self.client_key)
                        .arg(1)
                        .arg("PX")
                        .arg(ttl)
                        .ignore()
                        .query::<()>(c)
                });
            }
            if now >= next_watch {
                next_watch = crate::time::after(now, self.options.watchdog_interval);
                self.watchdog(&mut link);
            }
            if !dropped && self.lock().pending.is_empty() {
                // Nothing unfinished: leave no key behind (a late duplicate reply recreates the
                // stream with an expiry).
                match link.run(|c| {
                    scripts::drop_if_empty()
                        .key(&self.reply_key)
                        .invoke::<i64>(c)
                }) {
                    Ok(deleted) => {
                        dropped = true;
                        if deleted == 1 {
                            // A reply from now on starts a new stream, whose ids may be lower
                            // than the last one read (same millisecond): read it from the start.
                            last = "0-0".to_string();
                        }
                    }
                    Err(_) => dropped = false,
                }
            }
        }
        let _ = link.run(|c| {
            redis::cmd("DEL")
                .arg(&self.client_key)
                .arg(&self.reply_key)
                .query::<()>(c)
        });
    }

    /// A reply entry that did not decode: logged, counted ([`RedisPool::malformed_replies`])
    /// and skipped. Its tasks, if any, are failed by the watchdog once Redis no longer has
    /// them.
    fn dropped(&self, entry: &str, why: &str) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        log::error!(
            "futurepool-redis: dropped reply entry {entry} of {}: {why}",
            self.reply_key
        );
    }

    fn on_reply(self: &Arc<Self>, link: &mut Link, msg: ReplyMsg) {
        for done in msg.done {
            // The first result wins; a duplicate (a task that ran twice) finds nothing.
            let Some(pending) = self.take(done.seq) else {
                continue;
            };
            let outcome = self.resolve(link, &pending.task, done.outcome);
            log::trace!(
                "futurepool-redis: task {} done on agent {} (attempt {})",
                pending.task,
                msg.agent,
                done.attempt
            );
            pending.sink.finish(outcome);
        }
    }

    /// An agent started the task: its future is running (once; the listener and `cancel()`'s
    /// arbiter may both learn it).
    fn mark_started(self: &Arc<Self>, seq: u64) {
        let sink = {
            let mut state = self.lock();
            let Some(pending) = state.pending.get_mut(&seq) else {
                return;
            };
            if pending.started {
                return;
            }
            pending.started = true;
            pending.sink.clone()
        };
        if sink.start() && self.options.cancel_kills_running {
            let weak: Weak<Shared> = Arc::downgrade(self);
            sink.on_cancel(Box::new(move || {
                if let Some(shared) = weak.upgrade() {
                    shared.kill(seq);
                }
            }));
        }
    }

    /// `cancel()` of a pending future: `true` if its task is now sure never to run. A task
    /// still in the outbox is taken out; one on its way waits for its entry id; then Redis
    /// decides, in the cancel script, atomically against an agent's start script. If an
    /// agent has started it, the future is marked running (`cancel()` then goes on as for
    /// a running task: `false`, or a kill with `cancel_kills_running`). `false` as well
    /// when Redis cannot be reached (nothing can be promised) or the task already ended.
    fn arbitrate(self: &Arc<Self>, seq: u64) -> bool {
        {
            let mut outbox = self.outbox();
            if let Some(i) = outbox.queue.iter().position(|o| o.seq == seq) {
                if let Some(o) = outbox.queue.remove(i) {
                    outbox.bytes -= o.msg.len();
                }
                drop(outbox);
                self.outbox_changed.notify_all();
                self.cancelled(seq);
                return true;
            }
        }
        let Some((task, entry, blob)) = self.recorded_entry(seq, |p| !p.started) else {
            return false;
        };
        let verdict = {
            let mut link = self.submit_link();
            self.cancel_script(&mut link, &task, &entry, blob.as_deref(), false)
        };
        match verdict {
            Some(0) => {
                self.cancelled(seq);
                true
            }
            Some(1 | 2) => {
                self.mark_started(seq);
                false
            }
            _ => false,
        }
    }

    /// A listed task's id, entry id and argument blob key, once the sender has recorded its
    /// entry id (it does as soon as Redis answers): waits for that up to 10 s, or until the
    /// sender gives the task up. `None` if the task is no longer listed, `wanted` refuses it,
    /// or the wait ran out.
    fn recorded_entry(
        &self,
        seq: u64,
        wanted: impl Fn(&Pending) -> bool,
    ) -> Option<(String, String, Option<String>)> {
        let limit = Instant::now() + Duration::from_secs(10);
        let mut state = self.lock();
        loop {
            let pending = state.pending.get(&seq).filter(|p| wanted(p))?;
            if let Some(entry) = &pending.entry {
                return Some((pending.task.clone(), entry.clone(), pending.blob.clone()));
            }
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self
                .recorded
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Completes a task's future as cancelled (its promise must not just be dropped: that
    /// breaks the future).
    fn cancelled(&self, seq: u64) {
        if let Some(pending) = self.take(seq) {
            pending.sink.fail(FutureError::Cancelled);
        }
    }

    /// An agent's outcome as the future's; a stored result is fetched (and deleted).
    fn resolve(&self, link: &mut Link, task: &str, outcome: RemoteOutcome) -> Resolved {
        match outcome.split() {
            Err(items) => Resolved::Many(
                items
                    .into_iter()
                    .map(|item| self.resolve_one(link, task, item))
                    .collect(),
            ),
            Ok(one) => Resolved::One(self.resolve_one(link, task, one)),
        }
    }

    fn resolve_one(
        &self,
        link: &mut Link,
        task: &str,
        outcome: ItemOutcome,
    ) -> Result<Vec<u8>, FutureError<Infallible>> {
        match outcome {
            ItemOutcome::Returned(Payload::Inline(bytes)) => Ok(bytes),
            // Only this task's result keys: a reply naming another key is not followed.
            ItemOutcome::Returned(Payload::Stored(key))
                if !key.starts_with(&self.keys.blob(task, "result")) =>
            {
                Err(FutureError::Broken(
                    format!("an agent named {key:?} as the result of task {task}").into(),
                ))
            }
            ItemOutcome::Returned(Payload::Stored(key)) => {
                match link.run_retrying(
                    Instant::now().checked_add(Duration::from_secs(10)),
                    || true,
                    |c| redis::cmd("GETDEL").arg(&key).query::<Option<Vec<u8>>>(c),
                ) {
                    Ok(Some(bytes)) => Ok(bytes),
                    Ok(None) => Err(FutureError::Broken(
                        format!("the task's result expired in Redis before it was read ({key})")
                            .into(),
                    )),
                    Err(e) => Err(FutureError::Broken(
                        format!("cannot read the task's result from Redis: {}", describe(&e))
                            .into(),
                    )),
                }
            }
            ItemOutcome::Panicked { message, location } => {
                Err(FutureError::Panicked(match location {
                    Some(l) => Panic::with_location(message, l),
                    None => Panic::new(message),
                }))
            }
            ItemOutcome::WorkerLost(why) => Err(FutureError::WorkerLost(why.into())),
            ItemOutcome::TimedOut => Err(FutureError::TimedOut),
            ItemOutcome::Cancelled => Err(FutureError::Cancelled),
            ItemOutcome::Codec(why) => Err(FutureError::Codec(why.into())),
            ItemOutcome::Broken(why) => Err(FutureError::Broken(why.into())),
        }
    }

    /// Fails the tasks Redis no longer knows (neither queued nor running) in two consecutive
    /// rounds with [`FutureError::Broken`].
    fn watchdog(&self, link: &mut Link) {
        let known: Vec<(u64, String, String)> = self
            .lock()
            .pending
            .iter()
            .filter_map(|(&seq, p)| p.entry.clone().map(|e| (seq, e, p.task.clone())))
            .collect();
        let mut missing = std::collections::HashSet::new();
        for chunk in known.chunks(500) {
            let result = link.run(|c| {
                let mut invocation = scripts::missing().key(self.keys.tasks());
                invocation.key(self.keys.running());
                for (_, entry, task) in chunk {
                    invocation.arg(entry).arg(task);
                }
                invocation.invoke::<Vec<usize>>(c)
            });
            match result {
                Ok(indices) => missing.extend(indices.into_iter().map(|i| chunk[i - 1].0)),
                // Redis unreachable: nothing can be concluded this round.
                Err(_) => return,
            }
        }
        let lost: Vec<Pending> = {
            let mut state = self.lock();
            let mut lost = Vec::new();
            for (seq, _, _) in &known {
                let gone = match state.pending.get_mut(seq) {
                    Some(p) if missing.contains(seq) => {
                        p.missing += 1;
                        p.missing >= 2
                    }
                    Some(p) => {
                        p.missing = 0;
                        false
                    }
                    None => false,
                };
                if gone {
                    lost.extend(state.pending.remove(seq));
                }
            }
            if state.pending.is_empty() {
                self.idle.notify_all();
            }
            lost
        };
        for pending in lost {
            pending.sink.fail(FutureError::Broken(
                format!(
                    "Redis lost task {}: it is neither queued nor running (was Redis restarted \
                     without persistence?)",
                    pending.task
                )
                .into(),
            ));
        }
    }
}

/// A task to add to the stream.
struct NewTask {
    signature: Signature,
    /// The encoded argument (for a chunk: the encoded list of encoded arguments).
    arg: Vec<u8>,
    timeout: Option<Duration>,
    delivery: bool,
    /// How many items, for a chunk of `map`.
    chunk: Option<usize>,
}

/// A task ready to submit: its future, its table entry (until listed) and its message.
struct Prepared<T, E> {
    future: Future<T, E>,
    pending: Option<Pending>,
    outgoing: Outgoing,
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl Drop for RedisPool {
    /// Python's `with` exit: shut down and wait for every future. While unwinding from a
    /// panic, tasks no agent has started are cancelled instead.
    fn drop(&mut self) {
        self.shutdown(Shutdown::new().cancel_futures(thread::panicking()));
    }
}

impl fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPool")
            .field("redis", &self.shared.shown)
            .field("queue", &self.shared.options.queue)
            .field("client_id", &self.shared.id)
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

impl Executor for RedisPool {
    fn max_workers(&self) -> usize {
        self.shared.options.max_workers
    }

    fn shutdown(&self, options: Shutdown) {
        RedisPool::shutdown(self, options);
    }
}

impl<F, A, R> Submit<Remote<F, A, R>> for RedisPool
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + Sync + 'static,
{
    fn submit_job(&self, _job: &Remote<F, A, R>, input: A) -> Result<Future<R>, SubmitError> {
        let timeout = self.shared.options.task_timeout;
        self.submit_one::<F, R, Infallible>(
            remote_signature::<F, A, R>(),
            &input,
            timeout,
            false,
            decode_plain::<R>,
        )
    }

    fn submit_job_timeout(
        &self,
        _job: &Remote<F, A, R>,
        input: A,
        timeout: Duration,
    ) -> Result<Future<R>, SubmitError> {
        self.submit_one::<F, R, Infallible>(
            remote_signature::<F, A, R>(),
            &input,
            Some(timeout),
            false,
            decode_plain::<R>,
        )
    }

    fn enforces_task_timeout(&self) -> bool {
        true
    }
}

/// The signature of the function item a `Remote` wraps: its type alone names it.
fn remote_signature<F, A, R>() -> Signature {
    Signature {
        name: std::any::type_name::<F>(),
        arg: std::any::type_name::<A>(),
        ret: std::any::type_name::<R>(),
    }
}

/// A `map` chunk in flight: its size and its future.
type InFlightChunk<R> = (usize, Future<Vec<Outcome<R>>>);

/// The iterator of [`RedisPool::map`].
pub struct RemoteMap<'a, A, R, I> {
    pool: &'a RedisPool,
    signature: Signature,
    /// `None` once exhausted (or refused).
    inputs: Option<I>,
    /// Why the map was refused, yielded once.
    refusal: Option<FutureError<Infallible>>,
    chunksize: usize,
    chunks_ahead: usize,
    task_timeout: Option<Duration>,
    /// Chunks in flight (items, future), oldest first: one outcome per input, whatever
    /// happens to a chunk.
    window: VecDeque<InFlightChunk<R>>,
    /// The outcomes of the chunk being read.
    current: VecDeque<Outcome<R>>,
    deadline: Option<Instant>,
    ended: bool,
    _types: std::marker::PhantomData<fn(A)>,
}

impl<A, R, I> RemoteMap<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + Sync + 'static,
    I: Iterator<Item = A>,
{
    /// Tops the window up in one round trip, once at least half of it is free.
    fn refill(&mut self) {
        let room = self.chunks_ahead.saturating_sub(self.window.len());
        if room == 0 || (room < self.chunks_ahead.div_ceil(2) && !self.window.is_empty()) {
            return;
        }
        let Some(mut inputs) = self.inputs.take() else {
            return;
        };
        let mut exhausted = false;
        let mut batch = Vec::with_capacity(room);
        for _ in 0..room {
            let mut items = Vec::with_capacity(self.chunksize);
            let mut encoded = Ok(());
            let mut drawn = 0;
            for input in inputs.by_ref().take(self.chunksize) {
                drawn += 1;
                match codec::encode(&input) {
                    Ok(bytes) => items.push(serde_bytes::ByteBuf::from(bytes)),
                    Err(e) if encoded.is_ok() => encoded = Err(e),
                    Err(_) => {}
                }
            }
            if items.is_empty() && encoded.is_ok() {
                exhausted = true;
                break;
            }
            let arg = encoded.as_ref().ok().map(|()| wire::to_bytes(&items));
            let too_large = arg.as_ref().and_then(|arg| {
                limits::over(
                    "the encoded chunk of arguments",
                    arg.len(),
                    self.pool.shared.bulk_limit,
                )
            });
            match (encoded, arg) {
                (Ok(()), Some(arg)) if too_large.is_none() => batch.push(NewTask {
                    signature: self.signature,
                    chunk: Some(items.len()),
                    arg,
                    timeout: self.task_timeout,
                    delivery: false,
                }),
                // Not sent: every item of the chunk fails (a smaller chunksize may fit).
                (Ok(()), _) => {
                    self.flush(std::mem::take(&mut batch));
                    let why = too_large.unwrap_or_default();
                    self.window
                        .push_back((drawn, Future::failed(FutureError::Codec(why.into()))));
                }
                // Not sent: every item of the chunk fails (use chunksize 1 to keep the other
                // items of a chunk with an unserializable input).
                (Err(e), _) => {
                    self.flush(std::mem::take(&mut batch));
                    self.window
                        .push_back((drawn, Future::failed(codec_error("the argument", &e))));
                }
            }
        }
        if !exhausted {
            self.inputs = Some(inputs);
        }
        self.flush(batch);
    }

    fn flush(&mut self, batch: Vec<NewTask>) {
        if batch.is_empty() {
            return;
        }
        let sizes: Vec<usize> = batch.iter().map(|t| t.chunk.unwrap_or(1)).collect();
        let submitted = self
            .pool
            .shared
            .submit_batch(batch, self.deadline, |promise, task| {
                Arc::new(Chunk::<R> {
                    promise,
                    items: task.chunk.unwrap_or(1),
                })
            });
        match submitted {
            Ok(futures) => {
                for (future, n) in futures.into_iter().zip(sizes) {
                    self.window.push_back((n, future));
                }
            }
            // Every item of the refill fails; the next refill tries again (Redis may be back).
            Err(e) => {
                for n in sizes {
                    self.window
                        .push_back((n, Future::failed(FutureError::from(e.clone()))));
                }
            }
        }
    }

    fn cancel_all(&mut self) {
        cancel_window(&mut self.window);
        self.inputs = None;
    }
}

impl<A, R, I> Iterator for RemoteMap<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + Sync + 'static,
    I: Iterator<Item = A>,
{
    type Item = Outcome<R>;

    fn next(&mut self) -> Option<Outcome<R>> {
        loop {
            if let Some(item) = self.current.pop_front() {
                return Some(item);
            }
            if let Some(refusal) = self.refusal.take() {
                self.ended = true;
                return Some(Err(refusal));
            }
            if self.ended {
                return None;
            }
            // Past the deadline (a refill held by a slow Redis, for example): what is done is
            // still yielded, nothing more is submitted, and the first not done ends the map.
            let late = self.deadline.is_some_and(|d| d <= Instant::now());
            let more = self.inputs.is_some() || !self.window.is_empty();
            if late && more && !self.window.front().is_some_and(|(_, f)| f.done()) {
                self.cancel_all();
                self.ended = true;
                return Some(Err(FutureError::TimedOut));
            }
            if !late {
                self.refill();
            }
            let (n, future) = self.window.pop_front()?;
            let done = match self.deadline {
                None => {
                    future.wait();
                    true
                }
                Some(d) => future.wait_timeout(d.saturating_duration_since(Instant::now())),
            };
            if !done {
                self.window.push_front((n, future));
                self.cancel_all();
                self.ended = true;
                return Some(Err(FutureError::TimedOut));
            }
            match future.try_into_result() {
                Ok(Ok(items)) => self.current.extend(items),
                Ok(Err(e)) => self.current.extend(std::iter::repeat_n(e, n).map(Err)),
                Err(_) => self.current.extend(
                    std::iter::repeat_n(
                        FutureError::Broken("the map's chunk was shared".into()),
                        n,
                    )
                    .map(Err),
                ),
            }
        }
    }
}

/// Cancels the map's chunks still in flight (taking their tasks off the queue).
fn cancel_window<R>(window: &mut VecDeque<(usize, Future<R>)>) {
    for (_, f) in window.drain(..) {
        // Its arbiter takes a task no agent has started off the queue.
        f.cancel();
    }
}

impl<A, R, I> Drop for RemoteMap<'_, A, R, I> {
    fn drop(&mut self) {
        cancel_window(&mut self.window);
    }
}

impl<A, R, I> fmt::Debug for RemoteMap<'_, A, R, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteMap")
            .field("function", &self.signature.name)
            .field("chunksize", &self.chunksize)
            .field("chunks_in_flight", &self.window.len())
            .finish_non_exhaustive()
    }
}
