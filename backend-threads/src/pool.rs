//! [`ThreadPool`]: the executor, its [`Builder`], and the worker loop.
//!
//! # How the queue and the workers meet
//!
//! The queue has two ends under two locks, so that a submitter and a worker do not take the
//! same lock per task: submitters push onto the *tail* (`State::queue`, under the pool's lock,
//! [`State`], which also holds the worker accounting); workers pop from the *head* (its own
//! lock). A worker that finds the head empty takes the whole tail into it at once (both locks,
//! head first), so a backlog costs the workers one trip to the pool's lock per batch instead of
//! one per task. Every task in the head is still shared: any worker pops from it.
//!
//! A worker that finds both ends empty counts itself *idle* (an atomic: no lock), spins briefly
//! watching atomic hints of both ends' lengths (so a task submitted right after it finished is
//! picked up without a sleep and wake-up), and then sleeps on `work` counted as a *sleeper*.
//!
//! `submit` pushes under the pool's lock and then decides, still under it:
//! * more queued tasks than idle workers, and fewer than `max_workers` threads: start one (the
//!   thread is reserved under the lock and spawned after it is released);
//! * otherwise, if a worker sleeps: wake one (each sleeper once per burst: `waking`).
//!
//! A batch never waits behind one long task while a thread sleeps: every push that finds a
//! sleeper not yet woken wakes one, and a worker only sleeps after seeing both ends empty.
//!
//! Once a task's closure has returned, *before* its future completes, the worker takes the next
//! task or counts itself idle: whoever sees a result and submits again finds that worker counted
//! idle, so sequential submit-and-wait reuses one thread. Done-callbacks run after that in the
//! same thread; meanwhile the pool starts no extra thread for that worker, and a task it
//! already took waits for them.
//!
//! No lost wake-up: a worker only goes to sleep after looking, under the pool's lock, at the
//! tail and at the head's length (which a batch move stores under that lock), and a push happens
//! under the same lock and sees the sleeper count that includes it. No task is left with nobody
//! to run it: a task is only queued while the pool is open, and either an idle worker is already
//! counted for it or a thread is started for it; a task moved into the head is run by the
//! worker that moved it, or another; workers only exit when shut down and both ends are empty.
//! These arguments are checked by the loom models in `loom_tests.rs`.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::Arc as StdArc;

use crossbeam_utils::CachePadded;
use futurepool_core::loom::atomic::{AtomicBool, AtomicUsize, Ordering};
use futurepool_core::loom::thread::{self, JoinHandle, ThreadId};
use futurepool_core::loom::{self as sync, Arc, Condvar, Mutex};
use futurepool_core::{
    Executor, Future, Job, MapOptions, OptionsError, Outcome, Panic, Shutdown, Submit, SubmitError,
};

use crate::scope::Scope;
use crate::task::{BoxedTask, QueuedTask};

/// Spin rounds a worker does before sleeping: about 50 µs of spinning and yielding here.
const WORKER_SPIN_STEPS: u32 = 40;

type Initializer = StdArc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Numbers pools for their default thread names, as CPython does.
static POOLS: StdAtomicUsize = StdAtomicUsize::new(0);

/// A pool of threads running submitted closures: Python's `ThreadPoolExecutor`.
///
/// Threads start lazily, one per submission that finds no idle worker, up to `max_workers`, and
/// are reused. Dropping the pool is Python's `with` exit: it shuts down and waits for every
/// queued task — except while a panic unwinds, when queued tasks are cancelled instead (a
/// deliberate difference from CPython, gh-130975).
///
/// ```
/// use futurepool_threads::ThreadPool;
///
/// let pool = ThreadPool::new(4).unwrap();
/// let future = pool.submit(|| 6 * 7).unwrap();
/// assert_eq!(future.result(), Ok(&42));
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
}

/// Configures a [`ThreadPool`] (Python's `ThreadPoolExecutor(max_workers, thread_name_prefix,
/// initializer)`, plus the stack size).
#[derive(Clone)]
pub struct Builder {
    max_workers: Option<usize>,
    name_prefix: Option<String>,
    initializer: Option<Initializer>,
    stack_size: Option<usize>,
}

/// A snapshot of a pool's threads and queue, for monitoring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The most threads the pool will run.
    pub max_workers: usize,
    /// Threads started and not yet exited.
    pub live_threads: usize,
    /// Live threads not running a task.
    pub idle_threads: usize,
    /// Tasks submitted and not yet taken by a worker.
    pub queued_tasks: usize,
}

/// The pool's shared part.
struct Shared {
    /// The tail of the queue and the accounting. Padded: submitters take this lock per task
    /// (workers per batch), and nothing else may share its cache line.
    state: CachePadded<Mutex<State>>,
    /// Workers sleep here waiting for tasks (or shutdown).
    work: Condvar,
    /// `shutdown(wait=true)` sleeps here until the workers are gone.
    exited: Condvar,
    /// The head of the queue: workers pop here, and move the tail here when it is empty.
    head: CachePadded<Mutex<VecDeque<QueuedTask>>>,
    /// `head.len()`, readable without its lock: stored under the head's lock (and, when a
    /// batch moves in, also under the pool's lock), loaded by idle workers and for `stats`.
    head_len: CachePadded<AtomicUsize>,
    /// `state.queue.len()` (the tail) and `state.shutdown || state.broken`, readable without
    /// the lock: what spinning workers watch. Only hints: they are stored under the lock
    /// (Release) and loaded by workers (Acquire), but a task is only ever taken under a lock,
    /// so a stale value costs a spin or a sleep that re-checks under the lock, never a lost
    /// task.
    hints: CachePadded<Hints>,
    /// Live threads between tasks (spinning, asleep, just started, or between two tasks). An
    /// atomic so that a worker that finds the queue empty after a task counts itself idle
    /// without the lock; submitters read it under the lock (see the module docs).
    idle: CachePadded<AtomicUsize>,
    max_workers: usize,
    name_prefix: String,
    initializer: Option<Initializer>,
    stack_size: Option<usize>,
}

/// See [`Shared::hints`].
struct Hints {
    queued: AtomicUsize,
    closing: AtomicBool,
}

/// Everything under the pool's lock.
struct State {
    /// The tail of the queue: submitters push here.
    queue: VecDeque<QueuedTask>,
    /// Threads started (or reserved for starting) and not yet exited.
    live: usize,
    /// Idle threads asleep on `work`.
    sleepers: usize,
    /// Sleepers already sent a `notify_one` that have not woken yet: a burst of submissions
    /// wakes each sleeper once instead of making a system call per task.
    waking: usize,
    /// Threads started so far: the `<n>` in thread names.
    started: usize,
    shutdown: bool,
    /// Set when an initializer failed: Python's `BrokenThreadPool`.
    broken: Option<StdArc<str>>,
    /// Handles of started threads, joined by `shutdown(wait=true)`.
    handles: Vec<JoinHandle<()>>,
    /// Ids of the live workers, so that `shutdown(wait=true)` called by a task does not wait
    /// for its own thread.
    workers: Vec<ThreadId>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder with CPython's defaults.
    ///
    /// ```
    /// use futurepool_threads::Builder;
    ///
    /// let pool = Builder::new().max_workers(2).build().unwrap();
    /// assert_eq!(pool.max_workers(), 2);
    /// ```
    pub fn new() -> Builder {
        Builder {
            max_workers: None,
            name_prefix: None,
            initializer: None,
            stack_size: None,
        }
    }

    /// The most threads the pool runs at once. Default: `min(32, available_parallelism + 4)`.
    ///
    /// ```
    /// use futurepool_threads::{BuildError, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().max_workers(3).build().unwrap();
    /// assert_eq!(pool.max_workers(), 3);
    /// assert!(matches!(ThreadPool::builder().max_workers(0).build(), Err(BuildError::ZeroWorkers)));
    /// ```
    pub fn max_workers(mut self, n: usize) -> Builder {
        self.max_workers = Some(n);
        self
    }

    /// Threads are named `<prefix>_<n>`. Default: `ThreadPoolExecutor-<pool number>`.
    ///
    /// ```
    /// use futurepool_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().max_workers(1).thread_name_prefix("fetcher").build().unwrap();
    /// let name = pool.submit(|| std::thread::current().name().map(String::from)).unwrap();
    /// assert_eq!(name.result(), Ok(&Some("fetcher_0".to_string())));
    /// ```
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Builder {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// Runs once in each worker thread before it takes tasks. An `Err` (or a panic) breaks the
    /// pool: queued futures fail with [`FutureError::Broken`](futurepool_core::FutureError::Broken) and later submissions are refused
    /// (Python's `BrokenThreadPool`).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use futurepool_threads::ThreadPool;
    ///
    /// thread_local!(static READY: Cell<bool> = const { Cell::new(false) });
    /// let pool = ThreadPool::builder()
    ///     .max_workers(2)
    ///     .initializer(|| {
    ///         READY.with(|r| r.set(true)); // once per worker thread, before its first task
    ///         Ok(())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.submit(|| READY.with(Cell::get)).unwrap().result(), Ok(&true));
    /// ```
    pub fn initializer<F>(mut self, init: F) -> Builder
    where
        F: Fn() -> Result<(), String> + Send + Sync + 'static,
    {
        self.initializer = Some(StdArc::new(init));
        self
    }

    /// The stack size of worker threads, in bytes. Default: Rust's (2 MiB unless
    /// `RUST_MIN_STACK` says otherwise).
    ///
    /// ```
    /// use futurepool_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().stack_size(8 << 20).build().unwrap();
    /// let deep = pool.submit(|| (0..1000u64).sum::<u64>()).unwrap();
    /// assert_eq!(deep.result(), Ok(&499_500));
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Creates the pool; no thread starts until the first submission. Fails for zero workers.
    ///
    /// ```
    /// use futurepool_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    /// assert_eq!(pool.submit(|| 1 + 1).unwrap().result(), Ok(&2));
    /// ```
    pub fn build(self) -> Result<ThreadPool, BuildError> {
        let max_workers = match self.max_workers {
            Some(0) => return Err(BuildError::ZeroWorkers),
            Some(n) => n,
            None => default_workers(),
        };
        let name_prefix = self.name_prefix.unwrap_or_else(|| {
            format!(
                "ThreadPoolExecutor-{}",
                // Relaxed: a counter for names, guarding no data.
                POOLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )
        });
        Ok(ThreadPool {
            shared: Arc::new(Shared {
                state: CachePadded::new(Mutex::new(State {
                    queue: VecDeque::new(),
                    live: 0,
                    sleepers: 0,
                    waking: 0,
                    started: 0,
                    shutdown: false,
                    broken: None,
                    handles: Vec::new(),
                    workers: Vec::new(),
                })),
                work: Condvar::new(),
                exited: Condvar::new(),
                head: CachePadded::new(Mutex::new(VecDeque::new())),
                head_len: CachePadded::new(AtomicUsize::new(0)),
                hints: CachePadded::new(Hints {
                    queued: AtomicUsize::new(0),
                    closing: AtomicBool::new(false),
                }),
                idle: CachePadded::new(AtomicUsize::new(0)),
                max_workers,
                name_prefix,
                initializer: self.initializer,
                stack_size: self.stack_size,
            }),
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("max_workers", &self.max_workers)
            .field("name_prefix", &self.name_prefix)
            .field("initializer", &self.initializer.is_some())
            .field("stack_size", &self.stack_size)
            .finish()
    }
}

/// CPython's default worker count: `min(32, cpu_count + 4)`.
pub fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    (cpus + 4).min(32)
}

/// Why a pool could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_workers` was 0 (Python: `ValueError: max_workers must be greater than 0`).
    ZeroWorkers,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => f.write_str("max_workers must be greater than 0"),
        }
    }
}

impl std::error::Error for BuildError {}

impl ThreadPool {
    /// A pool of at most `max_workers` threads; an error for 0.
    ///
    /// ```
    /// use futurepool_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::new(4).unwrap(); // ThreadPoolExecutor(max_workers=4)
    /// assert_eq!(pool.max_workers(), 4);
    /// assert!(ThreadPool::new(0).is_err());
    /// ```
    pub fn new(max_workers: usize) -> Result<ThreadPool, BuildError> {
        Builder::new().max_workers(max_workers).build()
    }

    /// A pool with CPython's default size, `min(32, available_parallelism + 4)`.
    ///
    /// ```
    /// use futurepool_threads::{default_workers, ThreadPool};
    ///
    /// let pool = ThreadPool::with_default_workers(); // min(32, cores + 4), as CPython
    /// assert_eq!(pool.max_workers(), default_workers());
    /// ```
    pub fn with_default_workers() -> ThreadPool {
        Builder::new()
            .build()
            .expect("the default worker count is positive")
    }

    /// A [`Builder`] for the other options.
    ///
    /// ```
    /// use futurepool_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().max_workers(2).thread_name_prefix("io").build().unwrap();
    /// assert_eq!(pool.max_workers(), 2);
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Schedules `f` and returns its future (Python's `submit`). Refused once the pool is shut
    /// down or broken. A panic in `f` fails only its own future, with the message kept.
    ///
    /// ```
    /// use futurepool_threads::{FutureError, ThreadPool};
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let square = pool.submit(|| 7 * 7).unwrap();
    /// assert_eq!(square.result(), Ok(&49));
    /// // A panic fails only its own future; the worker lives on.
    /// let boom = pool.submit(|| -> u32 { panic!("boom") }).unwrap();
    /// assert!(matches!(boom.result(), Err(FutureError::Panicked(p)) if p.message() == "boom"));
    /// ```
    pub fn submit<F, T>(&self, f: F) -> Result<Future<T>, SubmitError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_fallible(move || Ok(f()))
    }

    /// Schedules a fallible `f`: an `Err(e)` is the task's exception, typed
    /// ([`FutureError::Raised`](futurepool_core::FutureError::Raised)).
    ///
    /// The value and error types need only be `Send`: a `Box<dyn Error + Send>` works. The
    /// future is then `Send`/`Sync` only if they are also `Sync` (read it on the thread that
    /// submitted, or `.await` it there).
    ///
    /// ```
    /// use futurepool_threads::{FutureError, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// type AnyError = Box<dyn std::error::Error + Send>; // Send, not Sync
    /// let parsed = pool
    ///     .submit_fallible(|| "x".parse::<u8>().map_err(|e| Box::new(e) as AnyError))
    ///     .unwrap();
    /// match parsed.result() {
    ///     Err(FutureError::Raised(e)) => assert_eq!(e.to_string(), "invalid digit found in string"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn submit_fallible<F, T, E>(&self, f: F) -> Result<Future<T, E>, SubmitError>
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        // One allocation: the closure lives in the future's own memory.
        let (future, task) = Future::with_task(f);
        Shared::push(&self.shared, QueuedTask::Cell(task))?;
        Ok(future)
    }

    /// Applies `f` to every input on the pool, yielding outcomes in input order (Python's
    /// `map`). Lazy with bounded look-ahead; see [`Submit::map`] and [`MapOptions`].
    ///
    /// # Errors
    ///
    /// [`OptionsError`] for a zero `chunksize` or `buffersize` and for a `task_timeout` (a
    /// thread cannot be stopped); nothing has been submitted then.
    ///
    /// ```
    /// use futurepool_threads::{MapOptions, ThreadPool};
    ///
    /// let pool = ThreadPool::new(4).unwrap();
    /// let squares: Vec<u64> = pool
    ///     .map(|x: u64| x * x, 1..=5, MapOptions::new())
    ///     .unwrap()
    ///     .map(|outcome| outcome.unwrap())
    ///     .collect(); // in input order, computed in parallel
    /// assert_eq!(squares, [1, 4, 9, 16, 25]);
    /// ```
    pub fn map<F, I, O>(
        &self,
        f: F,
        inputs: I,
        options: MapOptions,
    ) -> Result<impl Iterator<Item = Outcome<O>> + '_, OptionsError>
    where
        F: Fn(I::Item) -> O + Send + Sync + 'static,
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: Send + 'static,
        O: Send + Sync + 'static,
    {
        let f = StdArc::new(f);
        Submit::map(self, futurepool_core::job(move |x| f(x)), inputs, options)
    }

    /// Python's `shutdown(wait, cancel_futures)`; idempotent. With `wait`, returns once every
    /// worker has exited (after finishing the queue, unless `cancel_futures` emptied it).
    /// Called from one of the pool's own tasks, it does not wait for that task's thread.
    ///
    /// ```
    /// use futurepool_threads::{Shutdown, SubmitError, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let queued = pool.submit(|| 1).unwrap();
    /// pool.shutdown(Shutdown::new().wait(true));
    /// assert!(queued.done());
    /// assert!(matches!(pool.submit(|| 2), Err(SubmitError::ShutDown)));
    /// ```
    pub fn shutdown(&self, options: Shutdown) {
        self.shared.shutdown(options)
    }

    /// Python's `shutdown(wait=True)`.
    ///
    /// ```
    /// use futurepool_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let futures: Vec<_> = (0..4).map(|i| pool.submit(move || i).unwrap()).collect();
    /// pool.shutdown_and_wait(); // every submitted task has run
    /// assert!(futures.iter().all(|f| f.done()));
    /// ```
    pub fn shutdown_and_wait(&self) {
        self.shared.shutdown(Shutdown::default())
    }

    /// Threads, idle threads and queued tasks right now.
    ///
    /// ```
    /// use futurepool_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::new(3).unwrap();
    /// let stats = pool.stats();
    /// assert_eq!(stats.max_workers, 3);
    /// assert_eq!(stats.live_threads, 0); // threads start with the first tasks
    /// ```
    pub fn stats(&self) -> Stats {
        let state = self.shared.state.lock();
        Stats {
            max_workers: self.shared.max_workers,
            live_threads: state.live,
            // SeqCst, as every access to `idle`.
            idle_threads: self.shared.idle.load(Ordering::SeqCst),
            // Acquire: a snapshot of the head's length.
            queued_tasks: state.queue.len() + self.shared.head_len.load(Ordering::Acquire),
        }
    }

    /// The most threads this pool runs.
    ///
    /// ```
    /// use futurepool_threads::ThreadPool;
    ///
    /// assert_eq!(ThreadPool::new(5).unwrap().max_workers(), 5);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// Runs `body` with a [`Scope`] whose tasks may borrow from the caller's stack, like
    /// [`std::thread::scope`]; returns once every task submitted through the scope has finished
    /// or been cancelled. The futures are ordinary futures, usable inside the scope.
    ///
    /// Do not wait inside a scope for tasks from a scope opened by one of this pool's own
    /// tasks when every worker may be busy doing the same: like any bounded pool, it can
    /// deadlock.
    ///
    /// ```
    /// use futurepool_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let data = vec![1u64, 2, 3, 4, 5, 6];
    /// let total: u64 = pool.scope(|s| {
    ///     let halves: Vec<_> =
    ///         data.chunks(3).map(|c| s.submit(move || c.iter().sum::<u64>()).unwrap()).collect();
    ///     halves.iter().map(|f| *f.result().unwrap()).sum()
    /// });
    /// assert_eq!(total, 21);
    /// ```
    pub fn scope<'env, F, R>(&self, body: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        crate::scope::run(self, body)
    }

    pub(crate) fn push_scoped(&self, task: BoxedTask<'static>) -> Result<(), SubmitError> {
        Shared::push(&self.shared, QueuedTask::Boxed(task))
    }
}

impl Shared {
    /// Queues `task`, starting or waking a worker as needed (see the module docs).
    fn push(this: &Arc<Self>, task: QueuedTask) -> Result<(), SubmitError> {
        let mut state = this.state.lock();
        if let Some(why) = &state.broken {
            return Err(SubmitError::Broken(why.clone()));
        }
        if state.shutdown {
            return Err(SubmitError::ShutDown);
        }
        state.queue.push_back(task);
        this.hints
            .queued
            .store(state.queue.len(), Ordering::Release);
        // Only while a thread may start: `idle` and `head_len` are written by workers as they
        // go, so a submit to a pool whose threads have all started reads neither (no cache
        // line moves between workers and submitters here). SeqCst, as every access to `idle`:
        // a worker counts itself idle without the lock, but before its future completes, so a
        // submitter that saw that future done sees it here. Acquire: the head's length, a hint.
        let start = state.live < this.max_workers && {
            let idle = this.idle.load(Ordering::SeqCst);
            state.queue.len() + this.head_len.load(Ordering::Acquire) > idle
        };
        let wake = !start && state.sleepers > state.waking;
        if wake {
            state.waking += 1;
        }
        let index = if start {
            state.live += 1;
            // The new thread counts as idle until it takes a task.
            this.idle.fetch_add(1, Ordering::SeqCst);
            state.started += 1;
            Some(state.started - 1)
        } else {
            None
        };
        drop(state);
        if wake {
            this.work.notify_one();
        }
        if let Some(index) = index {
            Shared::start_worker(this, index);
        }
        Ok(())
    }

    fn start_worker(this: &Arc<Self>, index: usize) {
        let shared = this.clone();
        let name = format!("{}_{}", this.name_prefix, index);
        match sync::spawn_thread(name, this.stack_size, move || Shared::work_loop(shared)) {
            Ok(handle) => {
                this.state.lock().handles.push(handle);
                // A waiting `shutdown` joins it.
                this.exited.notify_all();
            }
            Err(error) => {
                let mut state = this.state.lock();
                state.live -= 1;
                this.idle.fetch_sub(1, Ordering::SeqCst);
                log::error!("futurepool: could not start a worker thread: {error}");
                // The submit that decided to start this thread woke nobody: a sleeping worker
                // takes the task instead.
                let wake = state.sleepers > state.waking;
                if wake {
                    state.waking += 1;
                    this.work.notify_one();
                }
                if state.live == 0 {
                    // Nobody will run the queue: fail it rather than leave it hanging.
                    let why: StdArc<str> =
                        format!("could not start a worker thread: {error}").into();
                    drop(state);
                    // Unless a submission started another thread meanwhile.
                    let tasks = this.drain(|state| state.live == 0);
                    for task in tasks {
                        task.fail(why.clone());
                    }
                }
            }
        }
    }

    /// A worker thread's life: the initializer, then tasks until shutdown with an empty queue.
    fn work_loop(this: Arc<Self>) {
        this.state.lock().workers.push(thread::current().id());
        if let Some(init) = &this.initializer {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init()));
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(payload) => Some(format!("panicked: {}", Panic::from_payload(payload))),
            };
            if let Some(error) = failure {
                this.break_pool(format!(
                    "a thread initializer failed, the thread pool is not usable anymore: {error}"
                ));
                this.exit();
                return;
            }
        }
        let mut next = this.next_task(false);
        while let Some(task) = next {
            // Before the future completes (see the module docs): take the next task or count
            // this worker idle.
            let mut finished = None;
            task.run(&mut || finished = Some(this.finish_task()));
            next = match finished {
                Some(Some(task)) => Some(task),
                Some(None) => this.next_task(false),
                // Skipped (cancelled): the worker is not counted idle yet.
                None => this.next_task(true),
            };
        }
        this.exit();
    }

    /// The next queued task, if any: from the head, or, when the head is empty and the tail
    /// looks non-empty, from the tail moved into the head as one batch.
    fn pop(&self) -> Option<QueuedTask> {
        let mut head = self.head.lock();
        if let Some(task) = head.pop_front() {
            // Release: pairs with the Acquire loads of the hint.
            self.head_len.store(head.len(), Ordering::Release);
            return Some(task);
        }
        // A hint: a stale 0 only makes the caller look again (it spins on the hint, then looks
        // at the tail under the pool's lock before it sleeps).
        if self.hints.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        // Head, then pool: the one order in which both locks are taken.
        let mut state = self.state.lock();
        // The head is empty: it takes the tail's tasks, the tail its (empty) buffer.
        std::mem::swap(&mut *head, &mut state.queue);
        self.hints.queued.store(0, Ordering::Release);
        let task = head.pop_front();
        // Under both locks: a worker about to sleep sees it (module docs).
        self.head_len.store(head.len(), Ordering::Release);
        task
    }

    /// Called when a task's closure has returned, before its future completes: takes the next
    /// queued task (the worker stays busy), or counts the worker idle. Without the pool's lock
    /// unless a batch is moved (see `pop`).
    fn finish_task(&self) -> Option<QueuedTask> {
        let task = self.pop();
        if task.is_none() {
            // SeqCst, as every access to `idle`; before the future completes.
            self.idle.fetch_add(1, Ordering::SeqCst);
        }
        task
    }

    /// Takes the next task, waiting for one; `None` once shut down with an empty queue (or
    /// broken). `after_task`: the caller just skipped a cancelled task, so it counts as idle
    /// again now (a new thread was counted idle when it was reserved; a finished task counted
    /// it in `finish_task`). It counts as busy once a task is returned.
    ///
    /// A worker that finds the queue empty first spins, watching the hints, then sleeps
    /// (counted as a sleeper) after one more look under the pool's lock.
    fn next_task(&self, after_task: bool) -> Option<QueuedTask> {
        if after_task {
            self.idle.fetch_add(1, Ordering::SeqCst);
        }
        let ready = || {
            self.hints.queued.load(Ordering::Acquire) > 0
                || self.head_len.load(Ordering::Acquire) > 0
                || self.hints.closing.load(Ordering::Acquire)
        };
        let mut spin = true;
        loop {
            if let Some(task) = self.pop() {
                self.idle.fetch_sub(1, Ordering::SeqCst);
                return Some(task);
            }
            if spin && !ready() {
                sync::spin_for(WORKER_SPIN_STEPS, ready);
                spin = false;
                continue;
            }
            let mut state = self.state.lock();
            // Acquire: a batch moved into the head stored its length under this lock.
            if !state.queue.is_empty() || self.head_len.load(Ordering::Acquire) > 0 {
                continue;
            }
            if state.shutdown || state.broken.is_some() {
                return None;
            }
            state.sleepers += 1;
            state = self.work.wait(state);
            state.sleepers -= 1;
            // Woken by a submit or a batch (or spuriously: then another sleeper may get one
            // extra notification later, which is harmless).
            state.waking = state.waking.saturating_sub(1);
            drop(state);
            spin = true;
        }
    }

    /// Takes every queued task out of both ends (head first: the queue's order), after
    /// `then` has run under both locks (it may mark the pool shut down or broken).
    fn drain(&self, then: impl FnOnce(&mut State) -> bool) -> Vec<QueuedTask> {
        let mut head = self.head.lock();
        let mut state = self.state.lock();
        if !then(&mut state) {
            return Vec::new();
        }
        let mut tasks: Vec<_> = head.drain(..).collect();
        tasks.extend(state.queue.drain(..));
        self.head_len.store(0, Ordering::Release);
        self.hints.queued.store(0, Ordering::Release);
        tasks
    }

    /// Removes the calling (idle) worker from the counts as it exits.
    fn exit(&self) {
        let mut state = self.state.lock();
        state.live -= 1;
        self.idle.fetch_sub(1, Ordering::SeqCst);
        let me = thread::current().id();
        state.workers.retain(|id| *id != me);
        drop(state);
        self.exited.notify_all();
    }

    fn break_pool(&self, why: String) {
        let why: StdArc<str> = why.into();
        let tasks = self.drain(|state| {
            if state.broken.is_none() {
                state.broken = Some(why.clone());
            }
            self.hints.closing.store(true, Ordering::Release);
            true
        });
        self.work.notify_all();
        for task in tasks {
            task.fail(why.clone());
        }
    }

    fn shutdown(&self, options: Shutdown) {
        let mark = |state: &mut State| {
            state.shutdown = true;
            self.hints.closing.store(true, Ordering::Release);
        };
        let cancelled = if options.cancel_futures {
            self.drain(|state| {
                mark(state);
                true
            })
        } else {
            mark(&mut self.state.lock());
            Vec::new()
        };
        self.work.notify_all();
        for task in cancelled {
            task.cancel();
        }
        if options.wait {
            self.wait_for_workers();
        }
    }

    /// Joins every worker thread; from one of the pool's own tasks, every worker but the
    /// caller's. Waits on the live count rather than on the handle list alone, because a
    /// thread reserved by a concurrent `submit` may not have its handle recorded yet.
    fn wait_for_workers(&self) {
        let me = thread::current().id();
        let mut state = self.state.lock();
        loop {
            let handles = std::mem::take(&mut state.handles);
            if !handles.is_empty() {
                drop(state);
                for handle in handles {
                    if handle.thread().id() != me && handle.join().is_err() {
                        log::error!("futurepool: a worker thread panicked outside a task");
                    }
                }
                state = self.state.lock();
                continue;
            }
            let own = usize::from(state.workers.contains(&me));
            if state.live <= own {
                return;
            }
            state = self.exited.wait(state);
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // Python's `with` exit: shut down and wait. While unwinding from a panic, do not run
        // work nobody will read (gh-130975): cancel what is queued.
        let cancel_futures = std::thread::panicking();
        self.shared
            .shutdown(Shutdown::new().cancel_futures(cancel_futures));
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("name_prefix", &self.shared.name_prefix)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Executor for ThreadPool {
    fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    fn shutdown(&self, options: Shutdown) {
        self.shared.shutdown(options)
    }
}

impl<J: Job> Submit<J> for ThreadPool {
    fn submit_job(
        &self,
        job: &J,
        input: J::Input,
    ) -> Result<Future<J::Output, J::Error>, SubmitError> {
        let job = job.clone();
        self.submit_fallible(move || job.call(input))
    }
}

// What the pool promises to other threads, checked at compile time: a pool, its builder and its
// errors can be shared and sent (a pool is commonly put in an `Arc` or a `static`).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<ThreadPool>();
    send_sync::<Builder>();
    send_sync::<Stats>();
    send_sync::<BuildError>();
};
