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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use futurepool_core::{
    Executor, Future, FutureError, Job, Outcome, Panic, Promise, Shutdown, Submit, SubmitError,
};
use futurepool_threads::ThreadPool;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::process::{CallError, StartError, StartSpec, WorkerProcess};
use crate::registry;
use crate::wire;

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
        self.initializer = Some((name, bincode::serialize(&arg).map_err(|e| e.to_string())));
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
                broken: Mutex::new(None),
                live: Arc::new(Mutex::new(HashSet::new())),
                processes: Mutex::new(HashMap::new()),
                started: AtomicUsize::new(0),
            }),
        })
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
            |b| bincode::deserialize::<R>(b).map_err(|e| codec("the result", &e)),
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
            bincode::deserialize::<R>(b).map_err(|e| codec("the result", &e))
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
            match bincode::deserialize::<Result<T, E>>(b) {
                Ok(Ok(t)) => Ok(t),
                Ok(Err(e)) => Err(FutureError::Raised(e)),
                Err(e) => Err(codec("the result", &e)),
            }
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
        let arg = match bincode::serialize(arg) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Future::failed(codec("the argument", &e))),
        };
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
            let outcome = match shared.run(name, arg, timeout) {
                Ok(bytes) => decode(&bytes),
                Err(e) => Err(e.map_raised(|never| match never {})),
            };
            let _ = promise.set_outcome(outcome);
        })?;
        Ok(future)
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
        self.threads.shutdown(Shutdown {
            wait: false,
            cancel_futures: true,
        });
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

    /// Runs `name(arg)` on this manager thread's worker process, starting one if needed.
    fn run(
        &self,
        name: &str,
        arg: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, FutureError<std::convert::Infallible>> {
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
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let result = tracked.process.call(name, arg, deadline);
        let keep = match &result {
            Ok(_) => !self
                .max_tasks_per_child
                .is_some_and(|n| tracked.process.tasks_run >= n.get()),
            Err(_) => false,
        };
        if keep {
            self.processes().insert(me, tracked);
        } else {
            drop(tracked); // exit (or reap) the process now
        }
        match result {
            Ok(wire::Outcome::Returned(bytes)) => Ok(bytes),
            Ok(wire::Outcome::Panicked { message, location }) => {
                Err(FutureError::Panicked(match location {
                    Some(l) => Panic::with_location(message, l),
                    None => Panic::new(message),
                }))
            }
            Ok(wire::Outcome::UnknownTask(n)) => Err(FutureError::Broken(
                format!("the worker executable does not register {n}").into(),
            )),
            Ok(wire::Outcome::BadArgument(e)) => Err(codec("the argument", &e)),
            Ok(wire::Outcome::BadResult(e)) => Err(codec("the result", &e)),
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
        self.threads.shutdown(Shutdown {
            wait: true,
            cancel_futures,
        });
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
