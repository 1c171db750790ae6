//! [`ProcessPool`]: Python's `ProcessPoolExecutor`, built on the thread pool.
//!
//! Each of the pool's manager threads (a `futurepool_threads::ThreadPool` of `max_workers`
//! threads) owns at most one worker process, started lazily on its first task and kept in the
//! pool's table under the thread's id. A task is a closure on a manager thread that checks its
//! process out, sends it the call, waits for the reply (with the task's deadline) and checks the
//! process back in. So lazy start, idle reuse, the queue, `shutdown(wait, cancel_futures)` and
//! `map` are the thread pool's; once the manager threads are gone, `shutdown(wait=true)` and
//! drop end every process in the table and reap it. (Not in a thread-local destructor:
//! ipc-channel needs its own thread-locals to send, and those may already be gone there.)
//!
//! A worker that dies fails only the task it held ([`FutureError::WorkerLost`], naming the exit
//! code or signal); the manager starts a new process for its next task.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use futurepool_core::{
    Executor, Future, FutureError, Job, MapOptions, Outcome, Panic, Promise, Shutdown, Submit,
    SubmitError,
};
use futurepool_threads::ThreadPool;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::process::{CallError, StartError, StartSpec, WorkerProcess};
use crate::registry;
use crate::wire::{self, Bytes};

static POOLS: AtomicUsize = AtomicUsize::new(0);

/// A worker process and the pool-wide set of live pids it is listed in.
struct Tracked {
    process: WorkerProcess,
    live: Arc<Mutex<HashSet<u32>>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // Unlisted before it is reaped, so a kill from `kill_workers` can never hit a reused pid.
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.process.pid());
    }
}

/// A pool of worker processes running registered functions: Python's `ProcessPoolExecutor`,
/// with crash isolation and per-task timeouts.
///
/// ```ignore
/// fn square(x: u64) -> u64 { x * x }
/// futurepool_procs::register!(square);
///
/// fn main() {
///     futurepool_procs::init(); // first line: a worker process stops here
///     let pool = futurepool_procs::ProcessPool::new(2).unwrap();
///     assert_eq!(pool.submit(square, 7).unwrap().result(), Ok(&49));
/// }
/// ```
pub struct ProcessPool {
    threads: ThreadPool,
    shared: Arc<Shared>,
}

struct Shared {
    exe: PathBuf,
    /// The worker executable is this one: the registry can be checked at submit time.
    own_exe: bool,
    startup_timeout: Duration,
    initializer: Option<(String, Vec<u8>)>,
    max_tasks_per_child: Option<NonZeroUsize>,
    task_timeout: Option<Duration>,
    break_on_worker_death: bool,
    cancel_kills_running: bool,
    broken: Mutex<Option<Arc<str>>>,
    live: Arc<Mutex<HashSet<u32>>>,
    /// Idle worker processes, by the manager thread that owns them.
    processes: Mutex<HashMap<ThreadId, Tracked>>,
    /// Processes started so far.
    started: AtomicUsize,
}

/// Configures a [`ProcessPool`].
pub struct Builder {
    max_workers: Option<usize>,
    exe: Option<PathBuf>,
    startup_timeout: Duration,
    initializer: Option<(String, Result<Vec<u8>, String>)>,
    max_tasks_per_child: Option<NonZeroUsize>,
    task_timeout: Option<Duration>,
    break_on_worker_death: bool,
    cancel_kills_running: bool,
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
        }
    }

    /// How many worker processes at most. Default: `available_parallelism`.
    pub fn max_workers(mut self, n: usize) -> Builder {
        self.max_workers = Some(n);
        self
    }

    /// Run this executable as the worker instead of the current one. It must call
    /// [`init`](crate::init) first thing and register the same functions.
    pub fn worker_executable(mut self, path: impl Into<PathBuf>) -> Builder {
        self.exe = Some(path.into());
        self
    }

    /// How long a worker may take to start, connect and run its initializer. Default: 20 s.
    pub fn startup_timeout(mut self, timeout: Duration) -> Builder {
        self.startup_timeout = timeout;
        self
    }

    /// Runs the registered function `f(arg)` once in each worker process before its first task
    /// (Python's `initializer`, `initargs`). An `Err` or a panic breaks the pool, as in Python.
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
    pub fn max_tasks_per_child(mut self, n: NonZeroUsize) -> Builder {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// Every task gets this long; past it, its worker is killed and replaced and the future
    /// fails with [`FutureError::TimedOut`] (pebble's `schedule(timeout=)`).
    pub fn task_timeout(mut self, timeout: Duration) -> Builder {
        self.task_timeout = Some(timeout);
        self
    }

    /// CPython's behaviour: the first worker that dies breaks the whole pool
    /// (`BrokenProcessPool`). Off by default: only the task the worker held fails.
    pub fn break_on_worker_death(mut self, on: bool) -> Builder {
        self.break_on_worker_death = on;
        self
    }

    /// Opt in to `Future::cancel` working on running tasks: it kills the worker running the
    /// task (the pool starts a new one) and the future ends cancelled. Python cannot cancel a
    /// running task. Off by default: a kill loses whatever the worker held in memory.
    pub fn cancel_kills_running(mut self, on: bool) -> Builder {
        self.cancel_kills_running = on;
        self
    }

    /// Creates the pool; no process starts until the first submission.
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
            threads,
            shared: Arc::new(Shared {
                exe,
                own_exe,
                startup_timeout: self.startup_timeout,
                initializer,
                max_tasks_per_child: self.max_tasks_per_child,
                task_timeout: self.task_timeout,
                break_on_worker_death: self.break_on_worker_death,
                cancel_kills_running: self.cancel_kills_running,
                broken: Mutex::new(None),
                live: Arc::new(Mutex::new(HashSet::new())),
                processes: Mutex::new(HashMap::new()),
                started: AtomicUsize::new(0),
            }),
        })
    }
}

/// How a cancel request reaches a running task (`cancel_kills_running`): the pid of the worker
/// running it while a call is in progress, and whether a stop was requested. Both under one
/// lock, so a kill only ever hits the worker while it is ours and unreaped.
#[derive(Default)]
struct StopCell {
    state: Mutex<(Option<u32>, bool)>,
}

impl StopCell {
    /// From `Future::cancel`: mark the task stopped and kill its worker if a call is running.
    fn request(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1 = true;
        if let Some(pid) = state.0 {
            // SAFETY: kill(2) has no memory-safety preconditions. `pid` is set only while the
            // manager thread is inside a call to that worker, which it reaps only after
            // `detach` clears the pid under this same lock: it is our own, unreaped child.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }

    /// Before a call: `false` if a stop was already requested.
    fn attach(&self, pid: u32) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = Some(pid);
        !state.1
    }

    /// After a call: `true` if a stop was requested (the worker may have been killed).
    fn detach(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = None;
        state.1
    }
}

/// Cancels the future if the task is dropped without running (a `shutdown(cancel_futures)`).
struct CancelOnDrop<T, E>(Option<Promise<T, E>>);

impl<T, E> Drop for CancelOnDrop<T, E> {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.set_outcome(Err(FutureError::Cancelled));
        }
    }
}

impl ProcessPool {
    /// A pool of at most `max_workers` processes; an error for 0.
    pub fn new(max_workers: usize) -> Result<ProcessPool, BuildError> {
        Builder::new().max_workers(max_workers).build()
    }

    /// A [`Builder`] for the other options.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Runs the registered function `f(arg)` in a worker process. `f` must be a function item
    /// named in [`register!`](crate::register) (not a closure): it is sent by name.
    ///
    /// Refused (`SubmitError`) if the pool is shut down or broken, or `f` is not registered. An
    /// argument that fails to serialize fails only this future ([`FutureError::Codec`]).
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, SubmitError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        self.submit_inner::<F, R, std::convert::Infallible>(
            &f,
            &arg,
            self.shared.task_timeout,
            |b| crate::codec::decode::<R>(b).map_err(|e| codec("the result", &e)),
        )
    }

    /// Like [`submit`](Self::submit), with this task's own timeout: past it the worker is
    /// killed and replaced and the future fails with [`FutureError::TimedOut`].
    pub fn submit_timeout<F, A, R>(
        &self,
        f: F,
        arg: A,
        timeout: Duration,
    ) -> Result<Future<R>, SubmitError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        self.submit_inner::<F, R, std::convert::Infallible>(&f, &arg, Some(timeout), |b| {
            crate::codec::decode::<R>(b).map_err(|e| codec("the result", &e))
        })
    }

    /// Runs a registered fallible function: its `Err(e)` comes back typed as
    /// [`FutureError::Raised`].
    pub fn submit_fallible<F, A, T, E>(&self, f: F, arg: A) -> Result<Future<T, E>, SubmitError>
    where
        F: Fn(A) -> Result<T, E> + Copy + Send + 'static,
        A: Serialize,
        T: DeserializeOwned + Send + Sync + 'static,
        E: DeserializeOwned + Send + Sync + 'static,
    {
        self.submit_inner::<F, T, E>(&f, &arg, self.shared.task_timeout, |b| {
            match crate::codec::decode::<Result<T, E>>(b) {
                Ok(Ok(t)) => Ok(t),
                Ok(Err(e)) => Err(FutureError::Raised(e)),
                Err(e) => Err(codec("the result", &e)),
            }
        })
    }

    /// Runs the registered function called `name` on an argument already encoded with
    /// [`codec::encode`](crate::__private::codec::encode); the future holds the encoded return
    /// value (for a fallible function, the encoded `Result`). For sibling crates that carry
    /// tasks by name without their types (the Redis backend's agents).
    #[doc(hidden)]
    pub fn submit_encoded(
        &self,
        name: &str,
        arg: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Future<Vec<u8>>, SubmitError> {
        if self.shared.own_exe && !registry::is_registered(name) {
            return Err(SubmitError::Rejected(
                format!("function {name} is not registered in this executable").into(),
            ));
        }
        if let Some(why) = self.shared.broken() {
            return Err(SubmitError::Broken(why));
        }
        let name: Arc<str> = name.into();
        let arg = Bytes::new(arg);
        let timeout = timeout.or(self.shared.task_timeout);
        self.manage(move |shared, promise| {
            let stop = shared.cancel_kills_running.then(|| {
                let cell = Arc::new(StopCell::default());
                let hook = cell.clone();
                promise.set_cancel_hook(move || hook.request());
                cell
            });
            shared
                .run(&name, arg, timeout, stop.as_deref())
                .map(|bytes| bytes.to_vec())
        })
    }

    fn submit_inner<F, T, E>(
        &self,
        f: &F,
        arg: &impl Serialize,
        timeout: Option<Duration>,
        decode: fn(&[u8]) -> Outcome<T, E>,
    ) -> Result<Future<T, E>, SubmitError>
    where
        F: 'static,
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        self.check_remote(f)?;
        let name = registry::name_of(f);
        let arg = match Bytes::encode(arg) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Future::failed(codec("the argument", &e))),
        };
        self.manage(move |shared, promise| {
            let stop = shared.cancel_kills_running.then(|| {
                let cell = Arc::new(StopCell::default());
                let hook = cell.clone();
                promise.set_cancel_hook(move || hook.request());
                cell
            });
            match shared.run(name, arg, timeout, stop.as_deref()) {
                Ok(bytes) => decode(&bytes),
                Err(e) => Err(e.map_raised(|never| match never {})),
            }
        })
    }

    /// Runs `work` for a new future on one of the manager threads: skipped if the future was
    /// cancelled before it started, cancelled if the queue drops it unrun (a
    /// `shutdown(cancel_futures)`), completed with whatever `work` returns otherwise.
    fn manage<T, E>(
        &self,
        work: impl FnOnce(&Shared, &Promise<T, E>) -> Outcome<T, E> + Send + 'static,
    ) -> Result<Future<T, E>, SubmitError>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let (future, promise) = Future::pending();
        let guard = CancelOnDrop(Some(promise));
        let shared = self.shared.clone();
        self.threads.submit(move || {
            let mut guard = guard;
            let Some(promise) = guard.0.take() else {
                return;
            };
            if !matches!(promise.set_running_or_notify_cancel(), Ok(true)) {
                return;
            }
            let outcome = work(&shared, &promise);
            let _ = promise.set_outcome(outcome);
        })?;
        Ok(future)
    }

    /// Python's `map(fn, iterable, chunksize=n)`: runs `f` over the inputs in chunks of
    /// `chunksize` items, one message each way per chunk, yielding every item's outcome in input
    /// order. Lazy, with at most `buffersize` items (default: two chunks per worker) in flight;
    /// one deadline for the whole iteration (`options.timeout`). A chunk whose worker dies fails
    /// each of its items with [`FutureError::WorkerLost`]; other chunks are unaffected.
    pub fn map_chunked<F, A, R, I>(
        &self,
        f: F,
        inputs: I,
        chunksize: usize,
        options: MapOptions,
    ) -> ChunkedMap<'_, A, R, I::IntoIter>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = A>,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        let chunksize = chunksize.max(1);
        let chunks_ahead = match options.buffersize {
            Some(items) => items.div_ceil(chunksize).max(1),
            None => 2 * self.max_workers(),
        };
        let refusal = self.check_remote(&f).err();
        ChunkedMap {
            pool: self,
            name: registry::name_of(&f),
            inputs: if refusal.is_some() {
                None
            } else {
                Some(inputs.into_iter())
            },
            refusal: refusal.map(FutureError::from),
            chunksize,
            chunks_ahead,
            window: VecDeque::new(),
            current: VecDeque::new(),
            deadline: options.timeout.and_then(|t| Instant::now().checked_add(t)),
            ended: false,
            _types: PhantomData,
        }
    }

    /// Refuses closures and unregistered functions.
    fn check_remote<F: 'static>(&self, f: &F) -> Result<(), SubmitError> {
        let name = registry::name_of(f);
        if std::mem::size_of::<F>() != 0 {
            return Err(SubmitError::Rejected(
                format!(
                    "{name} cannot run in another process: submit a named function registered \
                     with futurepool_procs::register!, not a closure or function pointer"
                )
                .into(),
            ));
        }
        if self.shared.own_exe && !registry::is_registered(name) {
            let short = name.rsplit("::").next().unwrap_or(name);
            return Err(SubmitError::Rejected(
                format!(
                    "function {name} is not registered: add futurepool_procs::register!({short});"
                )
                .into(),
            ));
        }
        if let Some(why) = self.shared.broken() {
            return Err(SubmitError::Broken(why));
        }
        Ok(())
    }

    /// Sends one chunk; its future holds every item's outcome.
    fn submit_chunk<R>(
        &self,
        name: &'static str,
        args: Vec<Option<Bytes>>,
    ) -> Result<Future<Vec<Outcome<R>>>, SubmitError>
    where
        R: DeserializeOwned + Send + Sync + 'static,
    {
        let timeout = self.shared.task_timeout;
        self.manage(move |shared, _| {
            shared.run_chunk(name, args, timeout).map(|items| {
                items
                    .into_iter()
                    .map(|item| {
                        item.and_then(|bytes| {
                            crate::codec::decode::<R>(&bytes).map_err(|e| codec("the result", &e))
                        })
                    })
                    .collect()
            })
        })
    }

    /// Python's `shutdown(wait, cancel_futures)`; idempotent. With `wait`, returns once every
    /// running task finished and every worker process has exited and been reaped.
    pub fn shutdown(&self, options: Shutdown) {
        self.threads.shutdown(options);
        if options.wait {
            self.shared.end_processes();
        }
    }

    /// Python 3.14's `terminate_workers()`: SIGTERM to every live worker, then shut down
    /// without waiting and cancel what is queued. Running tasks fail with
    /// [`FutureError::WorkerLost`].
    pub fn terminate_workers(&self) {
        self.signal_workers(libc::SIGTERM);
    }

    /// Python 3.14's `kill_workers()`: like [`terminate_workers`](Self::terminate_workers) with
    /// SIGKILL.
    pub fn kill_workers(&self) {
        self.signal_workers(libc::SIGKILL);
    }

    fn signal_workers(&self, signal: libc::c_int) {
        self.threads
            .shutdown(Shutdown::new().wait(false).cancel_futures(true));
        // Idle processes are ended here; busy ones get the signal and fail their task.
        self.shared.end_idle_processes();
        let live = self.shared.live.lock().unwrap_or_else(|p| p.into_inner());
        for &pid in live.iter() {
            // SAFETY: kill(2) has no memory-safety preconditions. The pid is one of our own
            // unreaped children (listed until just before it is reaped, under this lock), so it
            // cannot have been reused by another process.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    /// Pids of the worker processes alive right now.
    pub fn worker_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .shared
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        pids.sort_unstable();
        pids
    }

    /// How many worker processes this pool has started so far (replacements included).
    pub fn processes_started(&self) -> usize {
        self.shared.started.load(Ordering::Relaxed)
    }

    /// The most worker processes this pool runs.
    pub fn max_workers(&self) -> usize {
        self.threads.max_workers()
    }
}

/// A call's encoded return value, or why there is none.
type Encoded = Result<Bytes, FutureError<std::convert::Infallible>>;

/// A worker's view of one call, as the parent reports it.
fn decode_outcome(outcome: wire::Outcome) -> Encoded {
    match outcome {
        wire::Outcome::Returned(bytes) => Ok(bytes),
        wire::Outcome::Panicked { message, location } => {
            Err(FutureError::Panicked(match location {
                Some(l) => Panic::with_location(message, l),
                None => Panic::new(message),
            }))
        }
        wire::Outcome::UnknownTask(n) => Err(FutureError::Broken(
            format!("the worker executable does not register {n}").into(),
        )),
        wire::Outcome::BadArgument(e) => Err(codec("the argument", &e)),
        wire::Outcome::BadResult(e) => Err(codec("the result", &e)),
    }
}

fn codec<E>(what: &str, e: &dyn fmt::Display) -> FutureError<E> {
    FutureError::Codec(format!("{what} did not (de)serialize: {e}").into())
}

impl Shared {
    fn broken(&self) -> Option<Arc<str>> {
        self.broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn break_pool(&self, why: &str) {
        let mut broken = self.broken.lock().unwrap_or_else(|p| p.into_inner());
        if broken.is_none() {
            *broken = Some(
                format!("a process in the pool was terminated abruptly or failed to start: {why}")
                    .into(),
            );
        }
    }

    /// Runs `call` on this manager thread's worker process, starting one if needed; a process
    /// that died, timed out or reached `max_tasks_per_child` is ended and reaped here.
    fn with_worker<T>(
        &self,
        name: &str,
        stop: Option<&StopCell>,
        call: impl FnOnce(&mut WorkerProcess) -> Result<T, CallError>,
    ) -> Result<T, FutureError<std::convert::Infallible>> {
        if let Some(why) = self.broken() {
            return Err(FutureError::Broken(why));
        }
        let me = thread::current().id();
        let mut slot = self.processes().remove(&me);
        if slot.is_none() {
            let spec = StartSpec {
                exe: &self.exe,
                startup_timeout: self.startup_timeout,
                initializer: self.initializer.clone(),
            };
            match WorkerProcess::start(&spec) {
                Ok(process) => {
                    self.started.fetch_add(1, Ordering::Relaxed);
                    self.live
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(process.pid());
                    slot = Some(Tracked {
                        process,
                        live: self.live.clone(),
                    });
                }
                Err(StartError::Init(why)) => {
                    self.break_pool(&why);
                    return Err(FutureError::Broken(why.into()));
                }
                Err(StartError::Failed(why)) => {
                    if self.break_on_worker_death {
                        self.break_pool(&why);
                    }
                    return Err(FutureError::WorkerLost(why.into()));
                }
            }
        }
        let mut tracked = slot.expect("started above");
        if let Some(stop) = stop {
            if !stop.attach(tracked.process.pid()) {
                self.processes().insert(me, tracked);
                return Err(FutureError::Cancelled);
            }
        }
        let result = call(&mut tracked.process);
        let stopped = stop.is_some_and(StopCell::detach);
        let keep = !stopped
            && result.is_ok()
            && self
                .max_tasks_per_child
                .is_none_or(|n| tracked.process.tasks_run < n.get());
        if keep {
            self.processes().insert(me, tracked);
        } else {
            drop(tracked); // exit (or reap) the process now
        }
        if stopped {
            // Killed on request (its worker was ended and reaped above).
            return Err(FutureError::Cancelled);
        }
        match result {
            Ok(value) => Ok(value),
            Err(CallError::TimedOut) => Err(FutureError::TimedOut),
            Err(CallError::Died(why)) => {
                if self.break_on_worker_death {
                    self.break_pool(&why);
                }
                Err(FutureError::WorkerLost(
                    format!("worker {why} while running {name}").into(),
                ))
            }
        }
    }

    /// Runs `name(arg)` in a worker; the encoded return value or why there is none.
    fn run(
        &self,
        name: &str,
        arg: Bytes,
        timeout: Option<Duration>,
        stop: Option<&StopCell>,
    ) -> Encoded {
        // The task's clock starts when its worker is ready, not while one is being started.
        self.with_worker(name, stop, |p| {
            p.call(
                name,
                arg,
                timeout.and_then(|t| Instant::now().checked_add(t)),
            )
        })
        .and_then(decode_outcome)
    }

    /// Runs `name` on each argument of a chunk in one worker.
    fn run_chunk(
        &self,
        name: &str,
        args: Vec<Option<Bytes>>,
        timeout: Option<Duration>,
    ) -> Result<Vec<Encoded>, FutureError<std::convert::Infallible>> {
        let outcomes = self.with_worker(name, None, |p| {
            p.call_chunk(
                name,
                args,
                timeout.and_then(|t| Instant::now().checked_add(t)),
            )
        })?;
        Ok(outcomes.into_iter().map(decode_outcome).collect())
    }

    fn processes(&self) -> std::sync::MutexGuard<'_, HashMap<ThreadId, Tracked>> {
        self.processes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends (and reaps) every idle process.
    fn end_idle_processes(&self) {
        let idle: Vec<Tracked> = self.processes().drain().map(|(_, t)| t).collect();
        drop(idle);
    }

    /// Ends every process once the manager threads are gone: all are idle then.
    fn end_processes(&self) {
        self.end_idle_processes();
    }
}

impl Drop for ProcessPool {
    /// Python's `with` exit: shut down, wait, end and reap every worker. While unwinding from
    /// a panic, queued tasks are cancelled instead of run.
    fn drop(&mut self) {
        let cancel_futures = thread::panicking();
        self.threads
            .shutdown(Shutdown::new().cancel_futures(cancel_futures));
        self.shared.end_processes();
    }
}

impl fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPool")
            .field("max_workers", &self.max_workers())
            .field("worker_pids", &self.worker_pids())
            .field("broken", &self.shared.broken())
            .finish()
    }
}

/// The iterator of [`ProcessPool::map_chunked`].
pub struct ChunkedMap<'a, A, R, I> {
    pool: &'a ProcessPool,
    name: &'static str,
    /// `None` once exhausted (or refused).
    inputs: Option<I>,
    /// Why the map was refused, yielded once.
    refusal: Option<FutureError<std::convert::Infallible>>,
    chunksize: usize,
    chunks_ahead: usize,
    /// Chunks in flight with their sizes, oldest first.
    window: VecDeque<(usize, Future<Vec<Outcome<R>>>)>,
    /// The outcomes of the chunk being read.
    current: VecDeque<Outcome<R>>,
    deadline: Option<Instant>,
    ended: bool,
    _types: PhantomData<fn(A)>,
}

impl<A, R, I> ChunkedMap<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + Sync + 'static,
    I: Iterator<Item = A>,
{
    fn refill(&mut self) {
        while self.window.len() < self.chunks_ahead {
            let Some(inputs) = self.inputs.as_mut() else {
                return;
            };
            let args: Vec<Option<Bytes>> = inputs
                .by_ref()
                .take(self.chunksize)
                .map(|a| Bytes::encode(&a).ok())
                .collect();
            if args.is_empty() {
                self.inputs = None;
                return;
            }
            let n = args.len();
            let future = match self.pool.submit_chunk::<R>(self.name, args) {
                Ok(f) => f,
                Err(e) => {
                    self.inputs = None;
                    Future::failed(e.into())
                }
            };
            self.window.push_back((n, future));
        }
    }

    fn cancel_all(&mut self) {
        for (_, f) in self.window.drain(..) {
            f.cancel();
        }
        self.inputs = None;
    }
}

impl<A, R, I> Iterator for ChunkedMap<'_, A, R, I>
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
            self.refill();
            let (n, future) = self.window.pop_front()?;
            let done = match self.deadline {
                None => {
                    future.wait();
                    true
                }
                Some(d) => future.wait_timeout(d.saturating_duration_since(Instant::now())),
            };
            if !done {
                future.cancel();
                self.cancel_all();
                self.ended = true;
                return Some(Err(FutureError::TimedOut));
            }
            match future.try_into_result() {
                Ok(Ok(items)) => self.current.extend(items),
                Ok(Err(e)) => self.current.extend(std::iter::repeat_n(e, n).map(Err)),
                Err(_) => self
                    .current
                    .push_back(Err(FutureError::Broken("chunk shared".into()))),
            }
        }
    }
}

impl<A, R, I> Drop for ChunkedMap<'_, A, R, I> {
    fn drop(&mut self) {
        for (_, f) in self.window.drain(..) {
            f.cancel();
        }
    }
}

impl<A, R, I> fmt::Debug for ChunkedMap<'_, A, R, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedMap")
            .field("task", &self.name)
            .field("chunksize", &self.chunksize)
            .field("chunks_in_flight", &self.window.len())
            .finish_non_exhaustive()
    }
}

/// A registered function as a [`Job`], so generic code (the `Executor`/`Submit` traits, `map`)
/// can run it on a process pool — or on a thread pool, where it is simply called.
pub struct Remote<F, A, R> {
    f: F,
    _types: PhantomData<fn(A) -> R>,
}

/// Wraps a registered function for the `Submit` trait.
pub fn remote<F, A, R>(f: F) -> Remote<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
{
    Remote {
        f,
        _types: PhantomData,
    }
}

impl<F: Copy, A, R> Clone for Remote<F, A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: Copy, A, R> Copy for Remote<F, A, R> {}

impl<F, A, R> fmt::Debug for Remote<F, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::any::type_name::<F>())
    }
}

impl<F, A, R> Job for Remote<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + Sync + 'static,
{
    type Input = A;
    type Output = R;
    type Error = std::convert::Infallible;

    fn call(&self, input: A) -> Result<R, Self::Error> {
        Ok((self.f)(input))
    }
}

impl Executor for ProcessPool {
    fn max_workers(&self) -> usize {
        self.threads.max_workers()
    }

    fn shutdown(&self, options: Shutdown) {
        self.threads.shutdown(options)
    }
}

impl<F, A, R> Submit<Remote<F, A, R>> for ProcessPool
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + Sync + 'static,
{
    fn submit_job(&self, job: &Remote<F, A, R>, input: A) -> Result<Future<R>, SubmitError> {
        self.submit(job.f, input)
    }
}
