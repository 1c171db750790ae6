//! [`ProcessPool`]: Python's `ProcessPoolExecutor`, built on the thread pool.
//!
//! A submit puts a job in the pool's backlog and a *token* on an internal
//! `futurepool_threads::ThreadPool` of `max_workers` *manager threads* ([`crate::dispatch`]);
//! a manager thread running a token checks a worker process out of [`crate::workers`] and
//! feeds it jobs from the backlog until the backlog is empty. A thread that waits for its
//! future may run the job itself instead ([`crate::hold`]); `apply` always does, on the
//! caller's thread. The thread pool gives the queue, the lazy start, idle reuse and
//! `shutdown(wait, cancel_futures)`.
//!
//! Once the manager threads are gone, `shutdown(wait=true)` and drop end every process in the
//! table and reap it.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use futurepool_core::{
    Executor, Future, FutureError, MapOptions, OptionsError, Outcome, Promise, Shutdown,
    SubmitError,
};
use rustix::process::Signal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::builder::{BuildError, Builder};
use crate::cancel::StopCell;
use crate::dispatch::{Chunked, Completion, Submission, Typed};
use crate::manager::{codec_error, lock, Shared};
use crate::map::ChunkedMap;
use crate::process::Payload;
use crate::registry;
use crate::wire::Bytes;

/// A pool of worker processes running registered functions: Python's `ProcessPoolExecutor`,
/// with crash isolation and per-task timeouts.
///
/// While recent tasks took under 1 ms on average, up to 8 tasks are sent to a worker at once
/// (as CPython moves tasks to its call queue): such a task is *running* (`cancel()` returns
/// `false`, unless [`Builder::cancel_kills_running`]) while it waits behind another on its
/// worker, its timeout counts from when the task before it finished, and if that worker dies
/// only the task it was running fails; the others run on the next worker.
///
/// ```
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
    pub(crate) shared: Arc<Shared>,
}

impl ProcessPool {
    /// A pool of at most `max_workers` processes; an error for 0.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::new(2).unwrap(); // ProcessPoolExecutor(max_workers=2)
    /// assert_eq!(pool.max_workers(), 2);
    /// assert!(ProcessPool::new(0).is_err());
    /// # }
    /// ```
    pub fn new(max_workers: usize) -> Result<ProcessPool, BuildError> {
        Builder::new().max_workers(max_workers).build()
    }

    /// A pool of `available_parallelism` processes (CPython's default).
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::with_default_workers().unwrap(); // one per core
    /// assert!(pool.max_workers() >= 1);
    /// # }
    /// ```
    pub fn with_default_workers() -> Result<ProcessPool, BuildError> {
        Builder::new().build()
    }

    /// A [`Builder`] for the other options.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use std::time::Duration;
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::builder()
    ///     .max_workers(2)
    ///     .task_timeout(Duration::from_secs(30))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.submit(square, 4).unwrap().result(), Ok(&16));
    /// # }
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Runs the registered function `f(arg)` in a worker process. `f` must be a function item
    /// named in [`register!`](crate::register) (not a closure): it is sent by name.
    ///
    /// Refused (`SubmitError`) if the pool is shut down or broken, or `f` is not registered. An
    /// argument that fails to serialize fails only this future ([`FutureError::Codec`]).
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::new(2).unwrap();
    /// let future = pool.submit(square, 12).unwrap(); // `square` runs in a worker process
    /// assert_eq!(future.result(), Ok(&144));
    /// # }
    /// ```
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, SubmitError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        self.submit_value(f, arg, self.shared.task_timeout)
    }

    fn submit_value<F, A, R>(
        &self,
        f: F,
        arg: A,
        timeout: Option<Duration>,
    ) -> Result<Future<R>, SubmitError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        self.submit_inner::<F, R, Infallible>(&f, arg, timeout, |b| {
            crate::codec::decode_owned::<R>(b).map_err(|e| codec_error("the result", &e))
        })
    }

    /// Python's `multiprocessing.Pool.apply(f, (arg,))`: runs the registered function `f(arg)`
    /// in a worker process and waits for it **on the calling thread**. No future and no manager
    /// thread stand between the caller and the worker: the caller sends the task to an idle
    /// worker and reads the reply itself, so a round trip costs two wake-ups (the worker's and
    /// the caller's), as over a bare pipe, instead of four through `submit(..)?.result()`. It
    /// takes an idle worker, or starts one while fewer than `max_workers` exist, or waits for
    /// one to come back; the pool's `task_timeout` applies.
    ///
    /// Fails as `submit(f, arg)` and `result()` would: refused (unregistered, shut down,
    /// broken), [`FutureError::WorkerLost`], [`FutureError::TimedOut`],
    /// [`FutureError::Panicked`], [`FutureError::Codec`].
    ///
    /// ```
    /// # use futurepool_procs::ProcessPool;
    /// fn square(x: u64) -> u64 { x * x }
    /// futurepool_procs::register!(square);
    ///
    /// fn main() {
    ///     futurepool_procs::init();
    ///     let pool = ProcessPool::new(2).unwrap();
    ///     assert_eq!(pool.apply(square, 12), Ok(144));
    /// }
    /// ```
    pub fn apply<F, A, R>(&self, f: F, arg: A) -> Outcome<R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned,
    {
        self.apply_inner(f, arg, self.shared.task_timeout)
    }

    fn apply_inner<F, A, R>(&self, f: F, arg: A, timeout: Option<Duration>) -> Outcome<R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned,
    {
        if self.shared.shut_down.load(Ordering::Acquire) {
            return Err(FutureError::ShutDown);
        }
        self.check_remote(&f)?;
        let name = registry::name_of(&f);
        let arg = self.encode_owned(arg)?;
        let bytes = self.shared.run(name, arg, timeout)?;
        crate::codec::decode_owned::<R>(bytes).map_err(|e| codec_error("the result", &e))
    }

    /// The pool's submits with a timeout of their own for each task they submit (instead of
    /// the pool's [`Builder::task_timeout`]): past it the worker is killed and replaced and
    /// the future fails with [`FutureError::TimedOut`] (pebble's `schedule(timeout=)`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use futurepool_procs::{FutureError, ProcessPool};
    /// fn slow(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// fn parse(s: String) -> Result<u32, String> { s.parse().map_err(|e| format!("{e}")) }
    /// futurepool_procs::register!(slow, parse);
    ///
    /// fn main() {
    ///     futurepool_procs::init();
    ///     let pool = ProcessPool::new(2).unwrap();
    ///     let short = pool.with_task_timeout(Duration::from_millis(100));
    ///     assert_eq!(short.submit(slow, 10_000).unwrap().result(), Err(FutureError::TimedOut));
    ///     assert_eq!(short.submit_fallible(parse, "7".into()).unwrap().result(), Ok(&7));
    /// }
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
    /// # futurepool_procs::init();
    /// use futurepool_procs::{FutureError, ProcessPool};
    ///
    /// let pool = ProcessPool::new(1).unwrap();
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
        self.submit_result(f, arg, self.shared.task_timeout)
    }

    fn submit_result<F, A, T, E>(
        &self,
        f: F,
        arg: A,
        timeout: Option<Duration>,
    ) -> Result<Future<T, E>, SubmitError>
    where
        F: Fn(A) -> Result<T, E> + Copy + Send + 'static,
        A: Serialize,
        T: DeserializeOwned + Send + Sync + 'static,
        E: DeserializeOwned + Send + Sync + 'static,
    {
        self.submit_inner::<F, T, E>(&f, arg, timeout, |b| {
            match crate::codec::decode::<Result<T, E>>(&b) {
                Ok(Ok(t)) => Ok(t),
                Ok(Err(e)) => Err(FutureError::Raised(e)),
                Err(e) => Err(codec_error("the result", &e)),
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
        self.check_name(name)?;
        let timeout = timeout.or(self.shared.task_timeout);
        self.dispatch(
            Cow::Owned(name.to_string()),
            Payload::One(Bytes::new(arg)),
            timeout,
            |promise| {
                Box::new(Typed {
                    promise,
                    decode: |bytes: Bytes| Ok(bytes.into_vec()),
                })
            },
        )
    }

    fn submit_inner<F, T, E>(
        &self,
        f: &F,
        arg: impl Serialize,
        timeout: Option<Duration>,
        decode: fn(Bytes) -> Outcome<T, E>,
    ) -> Result<Future<T, E>, SubmitError>
    where
        F: 'static,
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        self.check_remote(f)?;
        let name = registry::name_of(f);
        let arg = match self.encode_owned(arg) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Future::failed(e)),
        };
        self.dispatch(
            Cow::Borrowed(name),
            Payload::One(arg),
            timeout,
            move |promise| Box::new(Typed { promise, decode }),
        )
    }

    /// Queues a task for the manager threads ([`crate::dispatch`]): a job in the backlog, and
    /// a token on the thread pool for a manager thread to serve it.
    fn dispatch<T, E>(
        &self,
        name: Cow<'static, str>,
        payload: Payload,
        timeout: Option<Duration>,
        done: impl FnOnce(Promise<T, E>) -> Box<dyn Completion>,
    ) -> Result<Future<T, E>, SubmitError>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let shared = &self.shared;
        let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
        // The first interest in the future: a waiter may run the job itself, or its token is
        // queued if it was held back (`crate::hold`). Weak: a future may outlive its pool.
        let helper = Arc::downgrade(shared);
        let submitted = Instant::now();
        let (future, promise) = Future::pending_with_helper(move |help| {
            if let Some(shared) = helper.upgrade() {
                shared.help(seq, help, submitted);
            }
        });
        let stop = shared.cancel_kills_running.then(|| {
            let cell = Arc::new(StopCell::default());
            let hook = cell.clone();
            promise.set_cancel_hook(move || hook.request());
            cell
        });
        let bytes = payload.frame_len(&name);
        let job = Submission {
            seq,
            name,
            payload,
            bytes,
            timeout,
            stop,
            done: done(promise),
            helped: None,
        };
        let was_empty = {
            let mut backlog = lock(&shared.backlog);
            let was_empty = backlog.is_empty();
            backlog.push_back(job);
            was_empty
        };
        shared.post_or_hold(seq, was_empty)?;
        Ok(future)
    }

    /// Encodes an argument, within the pool's `max_message_size`.
    fn encode<E>(&self, arg: &(impl Serialize + ?Sized)) -> Result<Bytes, FutureError<E>> {
        let bytes = Bytes::encode(arg).map_err(|e| codec_error("the argument", &e))?;
        self.within_limit(bytes)
    }

    /// Encodes an argument the caller gave up ([`Bytes::encode_owned`]), within the pool's
    /// `max_message_size`.
    fn encode_owned<E>(&self, arg: impl Serialize) -> Result<Bytes, FutureError<E>> {
        let bytes = Bytes::encode_owned(arg).map_err(|e| codec_error("the argument", &e))?;
        self.within_limit(bytes)
    }

    fn within_limit<E>(&self, bytes: Bytes) -> Result<Bytes, FutureError<E>> {
        if bytes.len() as u64 > self.shared.max_message_size {
            return Err(FutureError::Codec(
                format!(
                    "the argument is {} bytes encoded, over the pool's max_message_size of {}",
                    bytes.len(),
                    self.shared.max_message_size
                )
                .into(),
            ));
        }
        Ok(bytes)
    }

    /// Python's `map(fn, *iterables, timeout, chunksize, buffersize)`: runs `f` over the
    /// inputs in chunks of `options.chunksize` items (default 1), one message each way per
    /// chunk, yielding every item's outcome in input order. Lazy, with at most
    /// `options.buffersize` items (default: two chunks per worker) in flight, so it works on an
    /// endless iterator; one deadline for the whole iteration (`options.timeout`); each chunk
    /// may run for `options.task_timeout` (default: the pool's `task_timeout`) before its worker
    /// is killed and its items fail with [`FutureError::TimedOut`]. A chunk whose worker dies
    /// fails each of its items with [`FutureError::WorkerLost`]; other chunks are unaffected.
    /// Dropping the iterator cancels the chunks that have not started.
    ///
    /// A zero `chunksize` or `buffersize` is an [`OptionsError`] (CPython's `ValueError`); an
    /// unregistered function is the first item's error.
    ///
    /// ```
    /// # use futurepool_procs::{MapOptions, ProcessPool};
    /// fn square(x: u64) -> u64 { x * x }
    /// futurepool_procs::register!(square);
    ///
    /// fn main() {
    ///     futurepool_procs::init();
    ///     let pool = ProcessPool::new(2).unwrap();
    ///     let squares: Vec<u64> = pool
    ///         .map(square, 1..=1000, MapOptions::new().chunksize(64))
    ///         .unwrap()
    ///         .map(Result::unwrap)
    ///         .collect();
    ///     assert_eq!(squares[9], 100);
    /// }
    /// ```
    pub fn map<F, A, R, I>(
        &self,
        f: F,
        inputs: I,
        options: MapOptions,
    ) -> Result<ChunkedMap<'_, F, A, R, I::IntoIter>, OptionsError>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        I: IntoIterator<Item = A>,
        A: Serialize + Send + 'static,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        ChunkedMap::new(self, f, inputs.into_iter(), options)
    }

    /// Refuses closures and unregistered functions.
    pub(crate) fn check_remote<F: 'static>(&self, f: &F) -> Result<(), SubmitError> {
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
        self.check_name(name)
    }

    /// Refuses a name this executable does not register, and any task once the pool is broken.
    fn check_name(&self, name: &str) -> Result<(), SubmitError> {
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

    /// Sends one chunk of `f`'s inputs; its future holds every item's outcome (a chunk whose
    /// worker died fails each item alike).
    pub(crate) fn submit_chunk<F, A, R>(
        &self,
        f: &F,
        inputs: Vec<A>,
        timeout: Option<Duration>,
    ) -> Result<Future<Vec<Outcome<R>>>, SubmitError>
    where
        F: 'static,
        A: Serialize,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        self.check_remote(f)?;
        let name = registry::name_of(f);
        let mut args = Vec::with_capacity(inputs.len());
        let mut unsent = Vec::with_capacity(inputs.len());
        for input in &inputs {
            match self.encode(input) {
                Ok(bytes) => {
                    args.push(Some(bytes));
                    unsent.push(None);
                }
                Err(e) => {
                    args.push(None);
                    unsent.push(Some(e));
                }
            }
        }
        self.dispatch(
            Cow::Borrowed(name),
            Payload::Chunk(args),
            timeout,
            |promise| Box::new(Chunked { promise, unsent }),
        )
    }

    /// Python's `shutdown(wait, cancel_futures)`; idempotent. With `wait`, returns once every
    /// running task finished and every worker process has exited and been reaped.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::{ProcessPool, Shutdown, SubmitError};
    ///
    /// let pool = ProcessPool::new(1).unwrap();
    /// let queued = pool.submit(square, 3).unwrap();
    /// pool.shutdown(Shutdown::new().wait(true)); // runs what was submitted, then stops the workers
    /// assert_eq!(queued.result(), Ok(&9));
    /// assert!(matches!(pool.submit(square, 4), Err(SubmitError::ShutDown)));
    /// # }
    /// ```
    pub fn shutdown(&self, options: Shutdown) {
        self.shared.shut_down.store(true, Ordering::Release);
        if options.cancel_futures {
            self.shared.cancel_backlog();
        }
        self.shared.close_held(options.cancel_futures);
        self.shared.threads.shutdown(options);
        if options.wait {
            self.shared.close();
        }
    }

    /// Python 3.14's `terminate_workers()`: SIGTERM to every live worker, then shut down
    /// without waiting and cancel what is queued. Running tasks (those sent ahead to a worker
    /// included) fail with [`FutureError::WorkerLost`]; no worker is started after it.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// # futurepool_procs::register!(nap);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::{FutureError, ProcessPool};
    ///
    /// let pool = ProcessPool::new(1).unwrap();
    /// let running = pool.submit(nap, 60_000).unwrap();
    /// while !running.running() {
    ///     std::thread::sleep(std::time::Duration::from_millis(5));
    /// }
    /// pool.terminate_workers(); // SIGTERM to every worker
    /// assert!(matches!(running.result(), Err(FutureError::WorkerLost(_))));
    /// # }
    /// ```
    pub fn terminate_workers(&self) {
        self.signal_workers(Signal::TERM);
    }

    /// Python 3.14's `kill_workers()`: like [`terminate_workers`](Self::terminate_workers) with
    /// SIGKILL.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// # futurepool_procs::register!(nap);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::{FutureError, ProcessPool};
    ///
    /// let pool = ProcessPool::new(1).unwrap();
    /// let running = pool.submit(nap, 60_000).unwrap();
    /// while !running.running() {
    ///     std::thread::sleep(std::time::Duration::from_millis(5));
    /// }
    /// pool.kill_workers(); // SIGKILL to every worker
    /// assert!(matches!(running.result(), Err(FutureError::WorkerLost(_))));
    /// # }
    /// ```
    pub fn kill_workers(&self) {
        self.signal_workers(Signal::KILL);
    }

    fn signal_workers(&self, signal: Signal) {
        // Before the signals: a manager thread that checks a worker out after them sees it.
        self.shared.killed.store(true, Ordering::SeqCst);
        self.shared.cancel_backlog();
        self.shared.close_held(true);
        self.shared
            .threads
            .shutdown(Shutdown::new().wait(false).cancel_futures(true));
        // Idle processes are ended here; busy ones get the signal and fail their task.
        self.shared.workers.end_idle();
        self.shared.workers.signal_all(signal);
    }

    /// A snapshot of the pool, for monitoring: Python's `executor._processes` and
    /// `_pending_work_items`, and more.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::new(2).unwrap();
    /// assert_eq!(pool.submit(square, 2).unwrap().result(), Ok(&4));
    /// let stats = pool.stats();
    /// assert_eq!(stats.max_workers, 2);
    /// assert!(stats.processes_started >= 1 && !stats.worker_pids.is_empty());
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        let threads = self.shared.threads.stats();
        Stats {
            max_workers: threads.max_workers,
            // Manager threads at work, and waiters running their own task (a manager thread
            // may wait for a worker a waiter runs a task on: at most one task per worker).
            busy_workers: (threads.live_threads - threads.idle_threads
                + self.shared.workers.helping())
            .min(threads.max_workers),
            // The thread pool's queue holds one token per backlog job (or more) besides
            // `map`'s chunks.
            queued_tasks: self.shared.backlog_len()
                + threads
                    .queued_tasks
                    .saturating_sub(self.shared.tokens.load(Ordering::Relaxed)),
            worker_pids: self.worker_pids(),
            processes_started: self.processes_started(),
        }
    }

    /// Pids of the worker processes alive right now.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::new(1).unwrap();
    /// assert!(pool.worker_pids().is_empty()); // workers start with the first task
    /// pool.submit(square, 2).unwrap().wait();
    /// assert_eq!(pool.worker_pids().len(), 1);
    /// # }
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.workers.pids()
    }

    /// How many worker processes this pool has started so far (replacements included).
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::new(1).unwrap();
    /// assert_eq!(pool.processes_started(), 0);
    /// pool.submit(square, 2).unwrap().wait();
    /// assert_eq!(pool.processes_started(), 1);
    /// # }
    /// ```
    pub fn processes_started(&self) -> usize {
        self.shared.workers.started()
    }

    /// The most worker processes this pool runs.
    ///
    /// ```
    /// # fn square(x: u64) -> u64 { x * x }
    /// # futurepool_procs::register!(square);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use futurepool_procs::ProcessPool;
    ///
    /// assert_eq!(ProcessPool::new(3).unwrap().max_workers(), 3);
    /// # }
    /// ```
    pub fn max_workers(&self) -> usize {
        self.shared.threads.max_workers()
    }
}

impl Drop for ProcessPool {
    /// Python's `with` exit: shut down, wait, end and reap every worker. While unwinding from
    /// a panic, queued tasks are cancelled instead of run.
    fn drop(&mut self) {
        let cancel_futures = thread::panicking();
        self.shutdown(Shutdown::new().cancel_futures(cancel_futures));
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

impl Executor for ProcessPool {
    fn max_workers(&self) -> usize {
        self.shared.threads.max_workers()
    }

    /// The same as the inherent [`ProcessPool::shutdown`]: with `wait`, the worker processes
    /// are ended and reaped too.
    fn shutdown(&self, options: Shutdown) {
        ProcessPool::shutdown(self, options)
    }
}

/// What [`ProcessPool::with_task_timeout`] returns: the pool's submits, each task with the
/// given timeout.
#[derive(Clone, Copy, Debug)]
pub struct WithTaskTimeout<'a> {
    pool: &'a ProcessPool,
    timeout: Duration,
}

impl WithTaskTimeout<'_> {
    /// [`ProcessPool::submit`] with this timeout.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// # futurepool_procs::register!(nap);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use std::time::Duration;
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::new(1).unwrap();
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
        self.pool.submit_value(f, arg, Some(self.timeout))
    }

    /// [`ProcessPool::apply`] with this timeout.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// # futurepool_procs::register!(nap);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use std::time::Duration;
    /// use futurepool_procs::{FutureError, ProcessPool};
    ///
    /// let pool = ProcessPool::new(1).unwrap();
    /// let quick = pool.with_task_timeout(Duration::from_millis(100));
    /// assert_eq!(quick.apply(nap, 10_000), Err(FutureError::TimedOut));
    /// # }
    /// ```
    pub fn apply<F, A, R>(&self, f: F, arg: A) -> Outcome<R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize,
        R: DeserializeOwned,
    {
        self.pool.apply_inner(f, arg, Some(self.timeout))
    }

    /// [`ProcessPool::submit_fallible`] with this timeout.
    ///
    /// ```
    /// # fn halve(x: u64) -> Result<u64, String> { if x % 2 == 0 { Ok(x / 2) } else { Err(format!("{x} is odd")) } }
    /// # futurepool_procs::register!(halve);
    /// # fn main() {
    /// # futurepool_procs::init();
    /// use std::time::Duration;
    /// use futurepool_procs::ProcessPool;
    ///
    /// let pool = ProcessPool::new(1).unwrap();
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
        self.pool.submit_result(f, arg, Some(self.timeout))
    }
}

/// A snapshot of a [`ProcessPool`], from [`ProcessPool::stats`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The most worker processes the pool runs.
    pub max_workers: usize,
    /// Tasks running right now (each on its own worker).
    pub busy_workers: usize,
    /// Tasks submitted and not yet started.
    pub queued_tasks: usize,
    /// Pids of the worker processes alive right now, idle or busy.
    pub worker_pids: Vec<u32>,
    /// Worker processes started so far, replacements included.
    pub processes_started: usize,
}
