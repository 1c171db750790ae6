//! The pool's worker processes as a resource, and what running one call on one of them takes.
//!
//! Whoever runs a call — a manager thread serving the backlog ([`crate::dispatch`]), or the
//! caller of `apply` — checks an idle process out of the pool's slots (or starts one while
//! fewer than `max_workers` exist, or waits for one), makes sure it is still alive, sends the
//! call, waits for the reply (with the task's deadline, and watching the process through its
//! pidfd) and checks the process back in — or, if the call failed, ends and reaps it, so the
//! next task starts a fresh one.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futurepool_core::{FutureError, Panic};
use futurepool_threads::ThreadPool;
use rustix::process::Signal;

use crate::dispatch::Job;
use crate::process::{CallError, Killer, StartError, StartSpec, WorkerProcess};
use crate::wire::{self, Bytes};

/// A call's encoded return value, or why there is none.
pub(crate) type Encoded = Result<Bytes, FutureError<Infallible>>;

/// How many times a manager thread tries to get a live worker for one task: a worker found
/// dead before it received anything is replaced (its task never started).
pub(crate) const ATTEMPTS: usize = 3;

/// What every manager thread of one pool shares.
pub(crate) struct Shared {
    pub(crate) exe: PathBuf,
    /// The worker executable is this one: the registry can be checked at submit time.
    pub(crate) own_exe: bool,
    pub(crate) startup_timeout: Duration,
    pub(crate) initializer: Option<(String, Vec<u8>)>,
    pub(crate) max_tasks_per_child: Option<NonZeroUsize>,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) break_on_worker_death: bool,
    pub(crate) cancel_kills_running: bool,
    /// The most jobs on one worker at once while tasks are short (`Builder::send_ahead` + 1).
    pub(crate) pipeline_depth: usize,
    pub(crate) max_message_size: u64,
    pub(crate) broken: Mutex<Option<Arc<str>>>,
    /// Every live worker (idle or busy), by pid, with a way to signal it.
    pub(crate) live: Arc<Mutex<HashMap<u32, Killer>>>,
    /// The most worker processes alive at once.
    pub(crate) max_workers: usize,
    /// Idle worker processes, and how many exist (idle, busy or starting).
    pub(crate) processes: Mutex<Slots>,
    /// Signalled when a process goes back to `processes` or a slot frees up.
    pub(crate) returned: Condvar,
    /// Set by `shutdown`: `apply` refuses new work.
    pub(crate) shut_down: AtomicBool,
    /// Set by `kill_workers`/`terminate_workers`: a job taken from the backlog (running) is
    /// failed instead of being sent to a worker started after the kill.
    pub(crate) killed: AtomicBool,
    /// Processes started so far.
    pub(crate) started: AtomicUsize,
    /// Submitted tasks waiting for a manager thread ([`crate::dispatch`]).
    pub(crate) backlog: Mutex<VecDeque<Job>>,
    /// Numbers the backlog's jobs.
    pub(crate) next_seq: AtomicU64,
    /// Tokens queued on the thread pool and not yet run or dropped.
    pub(crate) tokens: AtomicUsize,
    /// A moving average of recent tasks' time on their worker, in nanoseconds: whether jobs
    /// are sent ahead.
    pub(crate) pace_ns: AtomicU64,
    /// The manager threads ([`crate::dispatch`]): one token per job is queued here.
    pub(crate) threads: ThreadPool,
    /// The job whose token is held back, and the ticker ([`crate::hold`]).
    pub(crate) held: Mutex<crate::hold::Held>,
    /// Wakes the ticker.
    pub(crate) tick: Condvar,
    /// Recent jobs in a row run by a waiter that came promptly (up to `hold::HOLD_AFTER`).
    pub(crate) prompt: AtomicUsize,
    /// This `Shared`, for the tokens' closures.
    pub(crate) me: Weak<Shared>,
    /// Signalled when the last waiter running its own job is done ([`Shared::end_help`]); a
    /// condition of its own: `returned` wakes one `check_out` waiter at a time, and a helper may
    /// be one.
    pub(crate) helpers_done: Condvar,
    /// The threads running the done-callbacks of jobs run by their waiters.
    pub(crate) callback_threads: Arc<crate::dispatch::CallbackThreads>,
}

/// The pool's worker processes as a resource: whoever runs a call (a manager thread for a
/// submitted task, or the caller of `apply`) checks an idle process out, or starts one while
/// fewer than `max_workers` exist, or waits for one to come back.
#[derive(Default)]
pub(crate) struct Slots {
    /// Idle processes, the most recently used last (it is taken first: its pages are warm).
    idle: Vec<Tracked>,
    /// Processes that exist: idle, busy or being started.
    alive: usize,
    /// After `shutdown(wait)`/drop: a process checked back in is ended instead of kept.
    closed: bool,
    /// Callers waiting in `check_out` (no wake-up system call when there are none).
    waiting: usize,
    /// Waiters running their own job ([`Shared::help`]): `shutdown(wait)` waits for them as
    /// for the manager threads.
    helping: usize,
}

/// A worker process and the pool-wide table of live workers it is listed in.
pub(crate) struct Tracked {
    pub(crate) process: WorkerProcess,
    live: Arc<Mutex<HashMap<u32, Killer>>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // Unlisted before it is ended and reaped (by `WorkerProcess::drop`, right after this).
        lock(&self.live).remove(&self.process.pid());
    }
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

    fn start_worker(&self) -> Result<Tracked, FutureError<Infallible>> {
        let spec = StartSpec {
            exe: &self.exe,
            startup_timeout: self.startup_timeout,
            initializer: self.initializer.clone(),
            max_message_size: self.max_message_size,
        };
        match WorkerProcess::start(&spec) {
            Ok(process) => {
                self.started.fetch_add(1, Ordering::Relaxed);
                lock(&self.live).insert(process.pid(), process.killer());
                Ok(Tracked {
                    process,
                    live: self.live.clone(),
                })
            }
            Err(StartError::Init(why)) => {
                self.break_pool(&why);
                Err(FutureError::Broken(why.into()))
            }
            Err(StartError::Failed(why)) => {
                self.note_death(&why);
                Err(FutureError::WorkerLost(why.into()))
            }
        }
    }

    /// A process to run a call on: an idle one, or a new one while fewer than `max_workers`
    /// exist, or the next one to come back.
    pub(crate) fn check_out(&self) -> Result<Tracked, FutureError<Infallible>> {
        {
            let mut slots = lock(&self.processes);
            loop {
                if let Some(tracked) = slots.idle.pop() {
                    return Ok(tracked);
                }
                if slots.alive < self.max_workers {
                    slots.alive += 1;
                    break;
                }
                slots.waiting += 1;
                slots = self.returned.wait(slots).unwrap_or_else(|p| p.into_inner());
                slots.waiting -= 1;
            }
        }
        self.start_worker().inspect_err(|_| self.release())
    }

    /// An idle process for a waiter to run its own job on ([`Shared::help`]), counted as
    /// helping until [`end_help`](Self::end_help); `None` if none is idle right now, the pool
    /// is closed, or somebody waits in `check_out` — a manager thread holding an older job
    /// (taken from the backlog, marked running) that the process was checked in for: a thread
    /// submitting and waiting in a loop, back before that manager thread wakes, would otherwise
    /// take the process every time and starve that job.
    pub(crate) fn check_out_idle_to_help(&self) -> Option<Tracked> {
        let mut slots = lock(&self.processes);
        if slots.closed || slots.waiting > 0 {
            return None;
        }
        let tracked = slots.idle.pop()?;
        slots.helping += 1;
        Some(tracked)
    }

    /// Waiters running their own job right now.
    pub(crate) fn helping(&self) -> usize {
        lock(&self.processes).helping
    }

    /// A waiter's help is over (its job completed, its process checked back in).
    pub(crate) fn end_help(&self) {
        let mut slots = lock(&self.processes);
        slots.helping -= 1;
        let wake = slots.helping == 0 && slots.closed;
        drop(slots);
        if wake {
            self.helpers_done.notify_all();
        }
    }

    /// Puts a healthy process back for the next call (or ends it after shutdown).
    pub(crate) fn check_in(&self, tracked: Tracked) {
        let mut slots = lock(&self.processes);
        if slots.closed {
            drop(slots);
            drop(tracked);
            self.release();
            return;
        }
        slots.idle.push(tracked);
        let wake = slots.waiting > 0;
        drop(slots);
        if wake {
            self.returned.notify_one();
        }
    }

    /// Puts a process back after a run of tasks, or ends it if it reached
    /// `max_tasks_per_child`.
    pub(crate) fn check_in_or_retire(&self, tracked: Tracked) {
        if self
            .max_tasks_per_child
            .is_none_or(|n| tracked.process.tasks_run < n.get())
        {
            self.check_in(tracked);
        } else {
            self.discard(tracked);
        }
    }

    /// Frees the slot of a process that was ended (or never started).
    fn release(&self) {
        let mut slots = lock(&self.processes);
        slots.alive -= 1;
        let wake = slots.waiting > 0;
        drop(slots);
        if wake {
            self.returned.notify_one();
        }
    }

    /// Ends a process (exit or kill, then reap) and frees its slot.
    pub(crate) fn discard(&self, tracked: Tracked) {
        drop(tracked);
        self.release();
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
            let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
            let result = tracked.process.call(name, &mut arg, deadline);
            if result.is_ok() {
                self.check_in_or_retire(tracked);
            } else {
                self.discard(tracked); // exit (or kill) and reap the process now
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

    /// Ends (and reaps) every idle process.
    pub(crate) fn end_idle_processes(&self) {
        let idle: Vec<Tracked> = {
            let mut slots = lock(&self.processes);
            let idle: Vec<Tracked> = slots.idle.drain(..).collect();
            slots.alive -= idle.len();
            idle
        };
        drop(idle);
        self.returned.notify_all();
    }

    /// Ends every idle process, and from now on every process checked back in; then waits
    /// for the waiters running their own jobs ([`Shared::help`]) to finish them, and for the
    /// done-callbacks of those jobs.
    pub(crate) fn close(&self) {
        lock(&self.processes).closed = true;
        self.end_idle_processes();
        let mut slots = lock(&self.processes);
        while slots.helping > 0 {
            slots = self
                .helpers_done
                .wait(slots)
                .unwrap_or_else(|p| p.into_inner());
        }
        drop(slots);
        // No job is run by a waiter any more (a closed pool lends no process), so no thread
        // for callbacks starts after this.
        self.callback_threads.join();
    }

    /// Sends `signal` to every live worker, idle or busy.
    pub(crate) fn signal_all(&self, signal: Signal) {
        for killer in lock(&self.live).values() {
            killer.signal(signal);
        }
    }

    /// Pids of the live workers, sorted.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = lock(&self.live).keys().copied().collect();
        pids.sort_unstable();
        pids
    }
}
