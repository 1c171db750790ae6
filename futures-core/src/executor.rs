//! The executor interface both backends implement (Python's `Executor` base class), and the
//! [`Map`] iterator that gives every executor a lazy, bounded `map`.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::error::{FutureError, SubmitError};
use crate::Future;

/// A unit of work an executor can run: a callable from `Input` to `Result<Output, Error>`.
///
/// A thread pool can run any `Job`; a process pool needs jobs it can name across the process
/// boundary and whose types serialize (it adds those bounds in its `Executor` impl). Build one
/// from a function or closure with [`job`] or [`fallible_job`].
pub trait Job: Clone + Send + Sync + 'static {
    /// The argument.
    type Input: Send + 'static;
    /// The value of a successful call.
    type Output: Send + Sync + 'static;
    /// The task's own error type.
    type Error: Send + Sync + 'static;

    /// Runs the job once.
    fn call(&self, input: Self::Input) -> Result<Self::Output, Self::Error>;
}

/// A [`Job`] from an infallible function or closure; see [`job`].
pub struct FnJob<F, I, O> {
    f: F,
    _types: PhantomData<fn(I) -> O>,
}

/// A [`Job`] from a fallible function or closure; see [`fallible_job`].
pub struct FallibleJob<F, I, O, E> {
    f: F,
    _types: PhantomData<fn(I) -> Result<O, E>>,
}

/// Wraps `f: Fn(I) -> O` as a [`Job`] that never fails.
pub fn job<F, I, O>(f: F) -> FnJob<F, I, O>
where
    F: Fn(I) -> O + Clone + Send + Sync + 'static,
{
    FnJob {
        f,
        _types: PhantomData,
    }
}

/// Wraps `f: Fn(I) -> Result<O, E>` as a [`Job`] whose `Err` is the task's typed error.
pub fn fallible_job<F, I, O, E>(f: F) -> FallibleJob<F, I, O, E>
where
    F: Fn(I) -> Result<O, E> + Clone + Send + Sync + 'static,
{
    FallibleJob {
        f,
        _types: PhantomData,
    }
}

impl<F: Clone, I, O> Clone for FnJob<F, I, O> {
    fn clone(&self) -> Self {
        FnJob {
            f: self.f.clone(),
            _types: PhantomData,
        }
    }
}

impl<F: Clone, I, O, E> Clone for FallibleJob<F, I, O, E> {
    fn clone(&self) -> Self {
        FallibleJob {
            f: self.f.clone(),
            _types: PhantomData,
        }
    }
}

impl<F, I, O> fmt::Debug for FnJob<F, I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::any::type_name::<F>())
    }
}

impl<F, I, O, E> fmt::Debug for FallibleJob<F, I, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::any::type_name::<F>())
    }
}

impl<F, I, O> Job for FnJob<F, I, O>
where
    F: Fn(I) -> O + Clone + Send + Sync + 'static,
    I: Send + 'static,
    O: Send + Sync + 'static,
{
    type Input = I;
    type Output = O;
    type Error = std::convert::Infallible;

    fn call(&self, input: I) -> Result<O, Self::Error> {
        Ok((self.f)(input))
    }
}

impl<F, I, O, E> Job for FallibleJob<F, I, O, E>
where
    F: Fn(I) -> Result<O, E> + Clone + Send + Sync + 'static,
    I: Send + 'static,
    O: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    type Input = I;
    type Output = O;
    type Error = E;

    fn call(&self, input: I) -> Result<O, E> {
        (self.f)(input)
    }
}

/// How [`Executor::shutdown`] behaves (Python's `shutdown(wait=True, cancel_futures=False)`).
///
/// `#[non_exhaustive]`: build one with [`Shutdown::new`] and the setters, so options can be added
/// later without breaking callers.
///
/// ```
/// use futurepool_core::Shutdown;
///
/// let options = Shutdown::new().wait(false).cancel_futures(true);
/// assert!(!options.wait && options.cancel_futures);
/// assert_eq!(Shutdown::new(), Shutdown::default());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Shutdown {
    /// Block until every started task has finished and the workers have exited.
    pub wait: bool,
    /// Cancel every task that has not started.
    pub cancel_futures: bool,
}

impl Shutdown {
    /// Python's defaults: wait, do not cancel.
    pub const fn new() -> Shutdown {
        Shutdown {
            wait: true,
            cancel_futures: false,
        }
    }

    /// Whether to block until every started task has finished and the workers have exited
    /// (default `true`).
    #[must_use]
    pub const fn wait(mut self, wait: bool) -> Shutdown {
        self.wait = wait;
        self
    }

    /// Whether to cancel every task that has not started (default `false`).
    #[must_use]
    pub const fn cancel_futures(mut self, cancel_futures: bool) -> Shutdown {
        self.cancel_futures = cancel_futures;
        self
    }
}

impl Default for Shutdown {
    /// Python's defaults: wait, do not cancel.
    fn default() -> Self {
        Shutdown::new()
    }
}

/// Options of `map` (Python's `map(fn, *iterables, timeout=None, chunksize=1, buffersize=None)`,
/// plus a per-task timeout).
///
/// `#[non_exhaustive]`: build one with [`MapOptions::new`] and the setters. The setters accept
/// any value; `map` checks them when it is called and returns an [`OptionsError`] for a zero
/// `chunksize` or `buffersize` (Python raises `ValueError` there) and for an option the executor
/// cannot honour.
///
/// ```
/// use std::time::Duration;
/// use futurepool_core::{MapOptions, OptionsError};
///
/// let options = MapOptions::new().chunksize(64).buffersize(256).timeout(Duration::from_secs(5));
/// assert_eq!(options.chunksize, 64);
/// assert_eq!(options.check(), Ok(()));
/// assert_eq!(MapOptions::new().chunksize(0).check(), Err(OptionsError::ZeroChunksize));
/// assert_eq!(MapOptions::new().buffersize(0).check(), Err(OptionsError::ZeroBuffersize));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MapOptions {
    /// One deadline for the whole iteration, counted from the call (Python's `timeout`).
    pub timeout: Option<Duration>,
    /// How many tasks may be submitted ahead of the one being read (Python 3.14's
    /// `buffersize`). `None` means twice the executor's worker count. Unlike Python's default,
    /// `map` never reads its whole input up front: it works on an infinite iterator.
    pub buffersize: Option<usize>,
    /// How many inputs travel together as one task (Python's `chunksize`; default 1). The
    /// process pool sends each chunk as one message each way; executors that gain nothing from
    /// chunks run one task per input, as CPython's `ThreadPoolExecutor` does.
    pub chunksize: usize,
    /// How long one task may run before the executor stops it and its item fails with
    /// [`FutureError::TimedOut`]. Only executors that can stop a running task (the process pool
    /// kills its worker) accept it; `map` on the others returns
    /// [`OptionsError::Unsupported`].
    pub task_timeout: Option<Duration>,
}

impl MapOptions {
    /// Python's defaults: no timeout, `chunksize` 1, a look-ahead of twice the worker count, no
    /// per-task timeout.
    pub const fn new() -> MapOptions {
        MapOptions {
            timeout: None,
            buffersize: None,
            chunksize: 1,
            task_timeout: None,
        }
    }

    /// One deadline for the whole iteration, `timeout` from the call.
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> MapOptions {
        self.timeout = Some(timeout);
        self
    }

    /// At most `buffersize` tasks submitted ahead of the consumer; 0 is an error at `map`.
    #[must_use]
    pub const fn buffersize(mut self, buffersize: usize) -> MapOptions {
        self.buffersize = Some(buffersize);
        self
    }

    /// Inputs per task; 0 is an error at `map`.
    #[must_use]
    pub const fn chunksize(mut self, chunksize: usize) -> MapOptions {
        self.chunksize = chunksize;
        self
    }

    /// Each task is stopped once it has run for `task_timeout` (where the executor can).
    #[must_use]
    pub const fn task_timeout(mut self, task_timeout: Duration) -> MapOptions {
        self.task_timeout = Some(task_timeout);
        self
    }

    /// Checks the values every executor rejects: a zero `chunksize` or `buffersize`. `map` calls
    /// it; a backend with its own `map` calls it too.
    pub fn check(&self) -> Result<(), OptionsError> {
        if self.chunksize == 0 {
            return Err(OptionsError::ZeroChunksize);
        }
        if self.buffersize == Some(0) {
            return Err(OptionsError::ZeroBuffersize);
        }
        Ok(())
    }
}

impl Default for MapOptions {
    /// Same as [`MapOptions::new`].
    fn default() -> Self {
        MapOptions::new()
    }
}

/// An executor's lifecycle: Python's `concurrent.futures.Executor` without the submitting,
/// which lives in [`Submit`] (one impl per kind of job the executor can run).
pub trait Executor {
    /// The maximum number of tasks run at once.
    fn max_workers(&self) -> usize;

    /// Signals the executor to free its resources once pending work is done; idempotent.
    /// Later submissions fail with [`SubmitError::ShutDown`].
    fn shutdown(&self, options: Shutdown);
}

/// Submitting jobs of type `J` to an executor (Python's `submit` and `map`). Both backends
/// implement it, so generic code (and the `pool` CLI) can take either.
pub trait Submit<J: Job>: Executor {
    /// Schedules `job(input)` and returns its future.
    fn submit_job(
        &self,
        job: &J,
        input: J::Input,
    ) -> Result<Future<J::Output, J::Error>, SubmitError>;

    /// Schedules `job(input)`, stopped once it has run for `timeout`: its future then fails
    /// with [`FutureError::TimedOut`]. Executors that can stop a running task override this
    /// and [`enforces_task_timeout`](Submit::enforces_task_timeout) together; the default
    /// refuses with [`SubmitError::Rejected`].
    fn submit_job_timeout(
        &self,
        job: &J,
        input: J::Input,
        timeout: Duration,
    ) -> Result<Future<J::Output, J::Error>, SubmitError> {
        let _ = (job, input, timeout);
        Err(SubmitError::Rejected(
            "this executor cannot stop a running task, so it has no per-task timeout".into(),
        ))
    }

    /// Whether [`submit_job_timeout`](Submit::submit_job_timeout) is supported (default
    /// `false`); `map` refuses [`MapOptions::task_timeout`] up front otherwise.
    fn enforces_task_timeout(&self) -> bool {
        false
    }

    /// Applies `job` to every input, yielding outcomes in input order (Python's `map`).
    ///
    /// Lazy: at most `buffersize` tasks run ahead of the consumer. A failed item is reported at
    /// that item and iteration goes on; past the deadline the item being waited for yields
    /// [`FutureError::TimedOut`], the rest are cancelled and iteration ends. Dropping the
    /// iterator cancels the tasks that have not started. This provided `map` submits one task
    /// per input whatever the `chunksize`.
    ///
    /// # Errors
    ///
    /// [`OptionsError`] for a zero `chunksize` or `buffersize` (Python's `ValueError`), or a
    /// `task_timeout` this executor cannot enforce; nothing has been submitted then.
    ///
    /// # Example
    ///
    /// A generic function that runs on any executor (here a toy one that runs each task on the
    /// calling thread; the backends' pools are used the same way):
    ///
    /// ```
    /// use futurepool_core::{
    ///     fallible_job, Executor, Future, FutureError, Job, MapOptions, Shutdown, Submit,
    ///     SubmitError,
    /// };
    ///
    /// struct Inline;
    /// impl Executor for Inline {
    ///     fn max_workers(&self) -> usize { 1 }
    ///     fn shutdown(&self, _: Shutdown) {}
    /// }
    /// impl<J: Job> Submit<J> for Inline {
    ///     fn submit_job(&self, job: &J, input: J::Input)
    ///         -> Result<Future<J::Output, J::Error>, SubmitError> {
    ///         let (future, promise) = Future::pending();
    ///         promise.run(|| job.call(input));
    ///         Ok(future)
    ///     }
    /// }
    ///
    /// let parse = fallible_job(|s: &'static str| s.parse::<u8>().map_err(|e| e.to_string()));
    /// let out: Vec<_> = Inline.map(parse, ["1", "x", "3"], MapOptions::new().buffersize(2))?
    ///     .collect();
    /// assert_eq!(out[0], Ok(1));
    /// assert!(matches!(&out[1], Err(FutureError::Raised(e)) if e.contains("invalid digit")));
    /// assert_eq!(out[2], Ok(3));
    /// # Ok::<(), futurepool_core::OptionsError>(())
    /// ```
    fn map<I>(
        &self,
        job: J,
        inputs: I,
        options: MapOptions,
    ) -> Result<Map<'_, Self, J, I::IntoIter>, OptionsError>
    where
        Self: Sized,
        I: IntoIterator<Item = J::Input>,
    {
        Map::new(self, job, inputs.into_iter(), options)
    }
}

/// Why `map` refused its [`MapOptions`] (Python raises `ValueError` for the zero sizes).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsError {
    /// `chunksize` was 0 (Python: `ValueError: chunksize must be >= 1.`).
    ZeroChunksize,
    /// `buffersize` was `Some(0)` (Python: `ValueError: buffersize must be None or > 0`).
    ZeroBuffersize,
    /// The executor cannot honour this option; the text names the option and says why.
    Unsupported(&'static str),
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::ZeroChunksize => f.write_str("chunksize must be >= 1"),
            OptionsError::ZeroBuffersize => f.write_str("buffersize must be None or > 0"),
            OptionsError::Unsupported(why) => write!(f, "unsupported option: {why}"),
        }
    }
}

impl std::error::Error for OptionsError {}

/// The iterator of [`Submit::map`].
pub struct Map<'a, X: Submit<J> + ?Sized, J: Job, I: Iterator<Item = J::Input>> {
    executor: &'a X,
    job: J,
    /// `None` once exhausted or once submitting failed.
    inputs: Option<I>,
    window: VecDeque<Future<J::Output, J::Error>>,
    buffersize: usize,
    task_timeout: Option<Duration>,
    deadline: Option<Instant>,
    /// Set once the deadline passed: nothing more is yielded.
    ended: bool,
}

impl<'a, X, J, I> Map<'a, X, J, I>
where
    X: Submit<J> + ?Sized,
    J: Job,
    I: Iterator<Item = J::Input>,
{
    /// A `map` over `inputs` on `executor`; what [`Submit::map`] returns.
    ///
    /// # Errors
    ///
    /// As [`Submit::map`]: the options are checked before anything is submitted.
    pub fn new(
        executor: &'a X,
        job: J,
        inputs: I,
        options: MapOptions,
    ) -> Result<Self, OptionsError> {
        options.check()?;
        if options.task_timeout.is_some() && !executor.enforces_task_timeout() {
            return Err(OptionsError::Unsupported(
                "task_timeout: this executor cannot stop a running task (a thread cannot be \
                 killed); use the process pool",
            ));
        }
        let buffersize = options
            .buffersize
            .unwrap_or_else(|| executor.max_workers().saturating_mul(2))
            .max(1);
        Ok(Map {
            executor,
            job,
            inputs: Some(inputs),
            window: VecDeque::new(),
            buffersize,
            task_timeout: options.task_timeout,
            deadline: crate::time::deadline(options.timeout),
            ended: false,
        })
    }

    fn refill(&mut self) {
        while self.window.len() < self.buffersize {
            let Some(inputs) = self.inputs.as_mut() else {
                return;
            };
            let Some(input) = inputs.next() else {
                self.inputs = None;
                return;
            };
            let submitted = match self.task_timeout {
                None => self.executor.submit_job(&self.job, input),
                Some(timeout) => self.executor.submit_job_timeout(&self.job, input, timeout),
            };
            let future = match submitted {
                Ok(future) => future,
                Err(error) => {
                    // Report the refusal at this item and submit nothing more.
                    self.inputs = None;
                    Future::failed(error.into())
                }
            };
            self.window.push_back(future);
        }
    }

    fn cancel_all(&mut self) {
        for future in self.window.drain(..) {
            future.cancel();
        }
        self.inputs = None;
    }
}

impl<X, J, I> Iterator for Map<'_, X, J, I>
where
    X: Submit<J> + ?Sized,
    J: Job,
    I: Iterator<Item = J::Input>,
{
    type Item = Result<J::Output, FutureError<J::Error>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        self.refill();
        let future = self.window.pop_front()?;
        let finished = match self.deadline {
            None => {
                future.wait();
                true
            }
            Some(deadline) => {
                future.wait_timeout(deadline.saturating_duration_since(Instant::now()))
            }
        };
        if !finished {
            future.cancel();
            self.cancel_all();
            self.ended = true;
            return Some(Err(FutureError::TimedOut));
        }
        // The map holds the only handle to its futures (executors keep promises, not
        // futures), so this moves the value out.
        Some(match future.try_into_result() {
            Ok(outcome) => outcome,
            Err(_) => Err(FutureError::Shared),
        })
    }
}

impl<X, J, I> Drop for Map<'_, X, J, I>
where
    X: Submit<J> + ?Sized,
    J: Job,
    I: Iterator<Item = J::Input>,
{
    fn drop(&mut self) {
        self.cancel_all();
    }
}

impl<X, J, I> fmt::Debug for Map<'_, X, J, I>
where
    X: Submit<J> + ?Sized,
    J: Job,
    I: Iterator<Item = J::Input>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("in_flight", &self.window.len())
            .field("buffersize", &self.buffersize)
            .field("exhausted", &self.inputs.is_none())
            .finish_non_exhaustive()
    }
}
