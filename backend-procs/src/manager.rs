//! What one pool's threads share ([`Shared`]), each part owned by its own module — the worker
//! processes by [`crate::workers`], the backlog and its dispatch by [`crate::dispatch`], the
//! hold-back of tokens by [`crate::hold`], the send-ahead decision by [`crate::pace`] — and
//! what is the pool's as a whole: whether it is broken, and `apply`'s one call ([`Shared::run`]):
//! check a worker out, send the call, wait for the reply with the task's deadline, check the
//! worker back in, or end it if the call failed, so the next task starts a fresh one.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futurepool_core::{FutureError, Panic};
use futurepool_threads::ThreadPool;

use crate::dispatch::Submission;
use crate::process::{CallError, StartError};
use crate::wire::{self, Bytes};
pub(crate) use crate::workers::Tracked;
use crate::workers::Workers;

/// A call's encoded return value, or why there is none.
pub(crate) type Encoded = Result<Bytes, FutureError<Infallible>>;

/// How many times a manager thread tries to get a live worker for one task: a worker found
/// dead before it received anything is replaced (its task never started).
pub(crate) const ATTEMPTS: usize = 3;

/// What every manager thread of one pool shares.
pub(crate) struct Shared {
    /// The worker executable is this one: the registry can be checked at submit time.
    pub(crate) own_exe: bool,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) break_on_worker_death: bool,
    pub(crate) cancel_kills_running: bool,
    /// The most jobs on one worker at once while tasks are short (`Builder::send_ahead` + 1).
    pub(crate) pipeline_depth: usize,
    pub(crate) max_message_size: u64,
    pub(crate) broken: Mutex<Option<Arc<str>>>,
    /// The worker processes ([`crate::workers`]).
    pub(crate) workers: Workers,
    /// Set by `shutdown`: `apply` refuses new work.
    pub(crate) shut_down: AtomicBool,
    /// Set by `kill_workers`/`terminate_workers`: a job taken from the backlog (running) is
    /// failed instead of being sent to a worker started after the kill.
    pub(crate) killed: AtomicBool,
    /// Submitted tasks waiting for a manager thread ([`crate::dispatch`]).
    pub(crate) backlog: Mutex<VecDeque<Submission>>,
    /// Numbers the backlog's jobs.
    pub(crate) next_seq: AtomicU64,
    /// Tokens queued on the thread pool and not yet run or dropped.
    pub(crate) tokens: AtomicUsize,
    /// Whether jobs are sent ahead ([`crate::pace::Pace`]).
    pub(crate) pace: crate::pace::Pace,
    /// The manager threads ([`crate::dispatch`]): one token per job is queued here.
    pub(crate) threads: ThreadPool,
    /// The job whose token is held back, the ticker, and the decision ([`crate::hold`]).
    pub(crate) hold: crate::hold::Hold,
    /// This `Shared`, for the tokens' closures.
    pub(crate) me: Weak<Shared>,
    /// The threads running the done-callbacks of jobs run by their waiters.
    pub(crate) callback_threads: Arc<crate::dispatch::CallbackThreads>,
}

/// Locks `m`, shrugging off poisoning: every critical section here leaves its data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A worker's view of one call, as the parent reports it.
pub(crate) fn decode_outcome(outcome: wire::Outcome) -> Encoded {
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
        wire::Outcome::BadArgument(e) => Err(codec_error("the argument", &e)),
        wire::Outcome::BadResult(e) => Err(codec_error("the result", &e)),
    }
}

/// A task's deadline, made where the task starts on its worker (the pool's `task_timeout` or
/// the submit's own, counted from then, not from the submit: time in the backlog is not the
/// task's). The one place a timeout becomes a deadline; `None` (no deadline) for a timeout
/// too large to add.
pub(crate) fn task_deadline(timeout: Option<Duration>, start: Instant) -> Option<Instant> {
    timeout.and_then(|t| start.checked_add(t))
}

pub(crate) fn codec_error<E>(what: &str, e: &dyn fmt::Display) -> FutureError<E> {
    FutureError::Codec(format!("{what} did not (de)serialize: {e}").into())
}

impl Shared {
    pub(crate) fn broken(&self) -> Option<Arc<str>> {
        lock(&self.broken).clone()
    }

    pub(crate) fn break_pool(&self, why: &str) {
        let mut broken = lock(&self.broken);
        if broken.is_none() {
            *broken = Some(
                format!("a process in the pool was terminated abruptly or failed to start: {why}")
                    .into(),
            );
        }
    }

    /// A process to run a call on ([`Workers::check_out`]); a failed start is a worker
    /// death (with `break_on_worker_death`, the pool breaks), a failed initializer breaks the
    /// pool, as in Python.
    pub(crate) fn check_out(&self) -> Result<Tracked, FutureError<Infallible>> {
        self.workers.check_out().map_err(|e| match e {
            StartError::Init(why) => {
                self.break_pool(&why);
                FutureError::Broken(why.into())
            }
            StartError::Failed(why) => {
                self.note_death(&why);
                FutureError::WorkerLost(why.into())
            }
        })
    }

    /// A worker died: with `break_on_worker_death`, so does the pool.
    pub(crate) fn note_death(&self, why: &str) {
        if self.break_on_worker_death {
            self.break_pool(why);
        }
    }

    /// Runs `name(arg)` on a worker process (`apply`), starting one if needed; the encoded
    /// return value or why there is none. A process found dead before it received the task
    /// (killed while idle) is replaced and the task goes to the new one; a process that died
    /// during the call, timed out or reached `max_tasks_per_child` is ended and reaped here.
    pub(crate) fn run(&self, name: &str, arg: Bytes, timeout: Option<Duration>) -> Encoded {
        let mut arg = Some(arg);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(why) = self.broken() {
                return Err(FutureError::Broken(why));
            }
            let mut tracked = self.check_out()?;
            // A worker that died while idle (the OOM killer's favourite) is found out by the
            // send: `NotStarted`, and the task goes to the next one.
            // The task's clock starts when its worker is ready, not while one is being started.
            let deadline = task_deadline(timeout, Instant::now());
            let result = tracked.process.call(name, &mut arg, deadline);
            if result.is_ok() {
                self.workers.check_in_or_retire(tracked);
            } else {
                self.workers.discard(tracked); // exit (or kill) and reap the process now
            }
            return match result {
                Ok(outcome) => decode_outcome(outcome),
                Err(CallError::NotStarted(_)) if attempt < ATTEMPTS => continue,
                Err(CallError::NotStarted(_)) => Err(FutureError::WorkerLost(
                    format!("{ATTEMPTS} worker processes in a row died before {name} could start")
                        .into(),
                )),
                Err(CallError::TimedOut) => Err(FutureError::TimedOut),
                Err(CallError::Died(why)) => {
                    self.note_death(&why);
                    Err(FutureError::WorkerLost(
                        format!("worker {why} while running {name}").into(),
                    ))
                }
            };
        }
    }

    /// Ends every idle process, and from now on every process checked back in; then waits
    /// for the waiters running their own jobs ([`Shared::help`]) to finish them, and for the
    /// done-callbacks of those jobs.
    pub(crate) fn close(&self) {
        self.workers.close();
        // No job is run by a waiter any more (a closed pool lends no process), so no thread
        // for callbacks starts after this.
        self.callback_threads.join();
    }
}
