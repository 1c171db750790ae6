//! [`Builder`]: the process pool's options.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

#[cfg(doc)]
use futurepool_core::FutureError;

use crate::manager::Shared;
use crate::pool::ProcessPool;
use crate::registry;
use crate::workers::{WorkerSpec, Workers};

static POOLS: AtomicUsize = AtomicUsize::new(0);

/// [`Builder::max_message_size`]'s default: 4 GiB.
const DEFAULT_MAX_MESSAGE_SIZE: u64 = 4 << 30;

/// Configures a [`ProcessPool`].
#[derive(Clone)]
pub struct Builder {
    max_workers: Option<usize>,
    exe: Option<PathBuf>,
    startup_timeout: Duration,
    initializer: Option<(String, Result<Vec<u8>, String>)>,
    max_tasks_per_child: Option<NonZeroUsize>,
    task_timeout: Option<Duration>,
    break_on_worker_death: bool,
    cancel_kills_running: bool,
    send_ahead: usize,
    max_message_size: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("max_workers", &self.max_workers)
            .field("exe", &self.exe)
            .field("startup_timeout", &self.startup_timeout)
            .field("initializer", &self.initializer.as_ref().map(|(n, _)| n))
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("task_timeout", &self.task_timeout)
            .field("break_on_worker_death", &self.break_on_worker_death)
            .field("cancel_kills_running", &self.cancel_kills_running)
            .field("send_ahead", &self.send_ahead)
            .finish()
    }
}

/// Why a process pool could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_workers` was 0.
    ZeroWorkers,
    /// The current executable could not be found (to re-run it as a worker).
    NoExecutable(String),
    /// The initializer's argument did not serialize.
    Initializer(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => f.write_str("max_workers must be greater than 0"),
            BuildError::NoExecutable(e) => write!(f, "cannot find the current executable: {e}"),
            BuildError::Initializer(e) => write!(f, "the initializer's argument: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

impl Builder {
    /// CPython's defaults: `available_parallelism` workers, no initializer, no limits.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::Builder;
    ///
    /// let pool = Builder::new().max_workers(2).build().unwrap();
    /// assert_eq!(pool.max_workers(), 2);
    /// # }
    /// ```
    pub fn new() -> Builder {
        Builder {
            max_workers: None,
            exe: None,
            startup_timeout: Duration::from_secs(20),
            initializer: None,
            max_tasks_per_child: None,
            task_timeout: None,
            break_on_worker_death: false,
            cancel_kills_running: false,
            send_ahead: crate::dispatch::PIPELINE_DEPTH - 1,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// How many worker processes at most. Default: `available_parallelism`.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::{BuildError, ProcessPool};
    ///
    /// assert_eq!(ProcessPool::builder().max_workers(3).build().unwrap().max_workers(), 3);
    /// assert!(matches!(ProcessPool::builder().max_workers(0).build(), Err(BuildError::ZeroWorkers)));
    /// # }
    /// ```
    pub fn max_workers(mut self, n: usize) -> Builder {
        self.max_workers = Some(n);
        self
    }

    /// Run this executable as the worker instead of the current one. It must call
    /// [`init`](crate::init) first thing and register the same functions.
    ///
    /// ```
    /// use futurepool_procs::ProcessPool;
    ///
    /// // Workers are another binary (which calls `futurepool_procs::init()` and registers the
    /// // same functions) instead of this executable re-run.
    /// let pool = ProcessPool::builder().worker_executable("/usr/local/bin/my-worker").build();
    /// ```
    pub fn worker_executable(mut self, path: impl Into<PathBuf>) -> Builder {
        self.exe = Some(path.into());
        self
    }

    /// How long a worker may take to start, connect and run its initializer. Default: 20 s.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use std::time::Duration;
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::builder().startup_timeout(Duration::from_secs(5)).build().unwrap();
    /// assert_eq!(pool.submit(square, 5).unwrap().result(), Ok(&25));
    /// # }
    /// ```
    pub fn startup_timeout(mut self, timeout: Duration) -> Builder {
        self.startup_timeout = timeout;
        self
    }

    /// Runs the registered function `f(arg)` once in each worker process before its first task
    /// (Python's `initializer`, `initargs`). An `Err` or a panic breaks the pool, as in Python.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # fn setup(level: u32) -> Result<(), String> { if level > 0 { Ok(()) } else { Err("level 0".into()) } }
    /// # futurepool_procs::register!(square, setup);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::{FutureError, ProcessPool};
    ///
    /// let pool = ProcessPool::builder().max_workers(1).initializer(setup, 1).build().unwrap();
    /// assert_eq!(pool.submit(square, 5).unwrap().result(), Ok(&25));
    /// // An initializer that fails breaks the pool, as in Python.
    /// let broken = ProcessPool::builder().max_workers(1).initializer(setup, 0).build().unwrap();
    /// assert!(matches!(broken.submit(square, 5).unwrap().result(), Err(FutureError::Broken(_))));
    /// # }
    /// ```
    pub fn initializer<F, A>(mut self, f: F, arg: A) -> Builder
    where
        F: Fn(A) -> Result<(), String> + Copy + 'static,
        A: Serialize,
    {
        let name = registry::name_of(&f).to_string();
        self.initializer = Some((name, crate::codec::encode(&arg).map_err(|e| e.to_string())));
        self
    }

    /// A worker process is replaced after this many tasks (Python's `max_tasks_per_child`).
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use std::num::NonZeroUsize;
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::builder()
    ///     .max_workers(1)
    ///     .max_tasks_per_child(NonZeroUsize::new(1).unwrap())
    ///     .build()
    ///     .unwrap();
    /// for x in 1..=3 {
    ///     assert_eq!(pool.submit(square, x).unwrap().result(), Ok(&(x * x)));
    /// }
    /// assert_eq!(pool.processes_started(), 3); // a fresh worker for every task
    /// # }
    /// ```
    pub fn max_tasks_per_child(mut self, n: NonZeroUsize) -> Builder {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// Every task gets this long; past it, its worker is killed and replaced and the future
    /// fails with [`FutureError::TimedOut`] (pebble's `schedule(timeout=)`).
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// # futurepool_procs::register!(nap);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use std::time::Duration;
    /// use futurepool_procs::{FutureError, ProcessPool};
    ///
    /// let pool = ProcessPool::builder().task_timeout(Duration::from_millis(100)).build().unwrap();
    /// assert_eq!(pool.submit(nap, 10_000).unwrap().result(), Err(FutureError::TimedOut));
    /// # }
    /// ```
    pub fn task_timeout(mut self, timeout: Duration) -> Builder {
        self.task_timeout = Some(timeout);
        self
    }

    /// CPython's behaviour: the first worker that dies breaks the whole pool
    /// (`BrokenProcessPool`). Off by default: only the task the worker held fails.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// // CPython's BrokenProcessPool: one dead worker fails every pending task and later submits.
    /// let pool = ProcessPool::builder().break_on_worker_death(true).build().unwrap();
    /// assert_eq!(pool.submit(square, 2).unwrap().result(), Ok(&4));
    /// # }
    /// ```
    pub fn break_on_worker_death(mut self, on: bool) -> Builder {
        self.break_on_worker_death = on;
        self
    }

    /// Opt in to `Future::cancel` working on running tasks: it kills the worker running the
    /// task (the pool starts a new one) and the future ends cancelled. Python cannot cancel a
    /// running task. Off by default: a kill loses whatever the worker held in memory.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// # futurepool_procs::register!(nap);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::{FutureError, ProcessPool};
    ///
    /// let pool = ProcessPool::builder().max_workers(1).cancel_kills_running(true).build().unwrap();
    /// let running = pool.submit(nap, 60_000).unwrap();
    /// while !running.running() {
    ///     std::thread::sleep(std::time::Duration::from_millis(5));
    /// }
    /// assert!(running.cancel()); // its worker is killed and replaced
    /// assert_eq!(running.result(), Err(FutureError::Cancelled));
    /// # }
    /// ```
    pub fn cancel_kills_running(mut self, on: bool) -> Builder {
        self.cancel_kills_running = on;
        self
    }

    /// How many tasks a worker may have queued behind its running one (default 7), while the
    /// pool's recent tasks took under 1 ms on average: the worker finds its next request
    /// waiting, and a batch of replies costs one wake-up (submit-all of no-op tasks about 3×
    /// faster here). A task sent ahead is running (as in CPython's call queue) and waits for
    /// *its* worker: a long task among short ones holds those queued behind it even if another
    /// worker is idle. `0` sends one task per worker at a time; for tasks of very uneven
    /// lengths, or when every task must start on the first free worker.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// // One task per worker at a time, for tasks of very uneven lengths.
    /// let pool = ProcessPool::builder().send_ahead(0).build().unwrap();
    /// assert_eq!(pool.submit(square, 6).unwrap().result(), Ok(&36));
    /// # }
    /// ```
    pub fn send_ahead(mut self, tasks: usize) -> Builder {
        self.send_ahead = tasks;
        self
    }

    /// The largest message a worker may send (a result, or a chunk's results), in bytes;
    /// default 4 GiB. A worker that announces a larger one is killed and its task fails with
    /// [`FutureError::WorkerLost`] saying so; the parent never allocates for it. An argument
    /// whose encoding is larger fails its future with [`FutureError::Codec`].
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::builder().max_message_size(1 << 20).build().unwrap();
    /// assert_eq!(pool.submit(square, 6).unwrap().result(), Ok(&36));
    /// # }
    /// ```
    pub fn max_message_size(mut self, bytes: u64) -> Builder {
        self.max_message_size = bytes;
        self
    }

    /// Creates the pool; no process starts until the first submission.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::builder().max_workers(2).build().unwrap();
    /// assert_eq!(pool.submit(square, 7).unwrap().result(), Ok(&49));
    /// # }
    /// ```
    pub fn build(self) -> Result<ProcessPool, BuildError> {
        let workers = match self.max_workers {
            Some(0) => return Err(BuildError::ZeroWorkers),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        let own_exe = self.exe.is_none();
        let exe = match self.exe {
            Some(exe) => exe,
            None => std::env::current_exe().map_err(|e| BuildError::NoExecutable(e.to_string()))?,
        };
        let initializer = match self.initializer {
            None => None,
            Some((name, Ok(arg))) => Some((name, arg)),
            Some((_, Err(e))) => return Err(BuildError::Initializer(e)),
        };
        let n = POOLS.fetch_add(1, Ordering::Relaxed);
        let threads = futurepool_threads::Builder::new()
            .max_workers(workers)
            .thread_name_prefix(format!("ProcessPoolExecutor-{n}"))
            .build()
            .map_err(|_| BuildError::ZeroWorkers)?;
        Ok(ProcessPool {
            shared: Arc::new_cyclic(|me| Shared {
                own_exe,
                task_timeout: self.task_timeout,
                break_on_worker_death: self.break_on_worker_death,
                cancel_kills_running: self.cancel_kills_running,
                pipeline_depth: self.send_ahead.saturating_add(1),
                max_message_size: self.max_message_size,
                broken: Mutex::new(None),
                workers: Workers::new(
                    WorkerSpec {
                        exe,
                        startup_timeout: self.startup_timeout,
                        initializer,
                        max_message_size: self.max_message_size,
                        max_tasks_per_child: self.max_tasks_per_child,
                    },
                    workers,
                ),
                shut_down: AtomicBool::new(false),
                killed: AtomicBool::new(false),
                backlog: Mutex::new(VecDeque::new()),
                next_seq: AtomicU64::new(0),
                tokens: AtomicUsize::new(0),
                pace: Default::default(),
                threads,
                hold: Default::default(),
                me: me.clone(),
                callback_threads: Default::default(),
            }),
        })
    }
}
