//! The pool's worker processes as a resource: whoever runs a call — a manager thread serving
//! the backlog ([`crate::dispatch`]), a waiter running its own job ([`crate::hold`]), or the
//! caller of `apply` — checks an idle process out (the most recently used: its pages are
//! warm), or starts one while fewer than `max_workers` exist, or waits for one to come back;
//! and checks it back in, or ends it (a failed call, `max_tasks_per_child`).
//!
//! # Lock order
//!
//! `slots` is a leaf lock: nothing else is taken while it is held, except `live` (through
//! dropping a [`Tracked`]), which is a leaf too. A process is started and ended outside
//! `slots`.
//!
//! # Descriptor budget
//!
//! A worker costs the parent 2 descriptors while it lives (its socket, its pidfd); its start
//! holds 3 more for a moment, one start at a time in the whole process (see
//! `process::SPAWNING`). So a pool of `n` workers needs `2n + 3` descriptors beyond what the
//! program holds otherwise.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rustix::process::Signal;

use crate::manager::lock;
use crate::process::{Killer, StartError, StartSpec, WorkerProcess};

/// How a worker is started: the pool's settings that every start uses.
pub(crate) struct WorkerSpec {
    pub(crate) exe: PathBuf,
    pub(crate) startup_timeout: Duration,
    pub(crate) initializer: Option<(String, Vec<u8>)>,
    pub(crate) max_message_size: u64,
    pub(crate) max_tasks_per_child: Option<NonZeroUsize>,
}

/// The worker processes of one pool: the idle ones, how many exist, who waits for one.
pub(crate) struct Workers {
    spec: WorkerSpec,
    /// The most worker processes alive at once.
    max: usize,
    /// Every live worker (idle or busy), by pid, with a way to signal it.
    live: Arc<Mutex<HashMap<u32, Killer>>>,
    slots: Mutex<Slots>,
    /// Signalled when a process goes back to `slots` or a slot frees up.
    returned: Condvar,
    /// Signalled when the last waiter running its own job is done ([`Workers::end_help`]); a
    /// condition of its own: `returned` wakes one `check_out` waiter at a time, and a helper
    /// may be one.
    helpers_done: Condvar,
    /// Processes started so far.
    started: AtomicUsize,
}

#[derive(Default)]
struct Slots {
    /// Idle processes, the most recently used last (it is taken first: its pages are warm).
    idle: Vec<Tracked>,
    /// Processes that exist: idle, busy or being started.
    alive: usize,
    /// After `shutdown(wait)`/drop: a process checked back in is ended instead of kept.
    closed: bool,
    /// Callers waiting in `check_out` (no wake-up system call when there are none).
    waiting: usize,
    /// Waiters running their own job ([`crate::hold`]): `shutdown(wait)` waits for them as
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

impl Workers {
    pub(crate) fn new(spec: WorkerSpec, max: usize) -> Workers {
        Workers {
            spec,
            max,
            live: Arc::default(),
            slots: Mutex::default(),
            returned: Condvar::new(),
            helpers_done: Condvar::new(),
            started: AtomicUsize::new(0),
        }
    }

    /// The most worker processes alive at once.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Tasks a worker that has run `tasks_run` may still be sent (`max_tasks_per_child`).
    pub(crate) fn room_left(&self, tasks_run: usize) -> usize {
        self.spec
            .max_tasks_per_child
            .map_or(usize::MAX, |n| n.get().saturating_sub(tasks_run))
    }

    /// A process to run a call on: an idle one, or a new one while fewer than `max_workers`
    /// exist, or the next one to come back.
    pub(crate) fn check_out(&self) -> Result<Tracked, StartError> {
        {
            let mut slots = lock(&self.slots);
            loop {
                if let Some(tracked) = slots.idle.pop() {
                    return Ok(tracked);
                }
                if slots.alive < self.max {
                    slots.alive += 1;
                    break;
                }
                slots.waiting += 1;
                slots = self.returned.wait(slots).unwrap_or_else(|p| p.into_inner());
                slots.waiting -= 1;
            }
        }
        self.start().inspect_err(|_| self.release())
    }

    fn start(&self) -> Result<Tracked, StartError> {
        let spec = StartSpec {
            exe: &self.spec.exe,
            startup_timeout: self.spec.startup_timeout,
            initializer: self.spec.initializer.clone(),
            max_message_size: self.spec.max_message_size,
        };
        let process = WorkerProcess::start(&spec)?;
        self.started.fetch_add(1, Ordering::Relaxed);
        lock(&self.live).insert(process.pid(), process.killer());
        Ok(Tracked {
            process,
            live: self.live.clone(),
        })
    }

    /// An idle process for a waiter to run its own job on ([`crate::hold`]), counted as
    /// helping until [`end_help`](Self::end_help); `None` if none is idle right now, the pool
    /// is closed, or somebody waits in `check_out` — a manager thread holding an older job
    /// (taken from the backlog, marked running) that the process was checked in for: a thread
    /// submitting and waiting in a loop, back before that manager thread wakes, would otherwise
    /// take the process every time and starve that job.
    pub(crate) fn check_out_idle_to_help(&self) -> Option<Tracked> {
        let mut slots = lock(&self.slots);
        if slots.closed || slots.waiting > 0 {
            return None;
        }
        let tracked = slots.idle.pop()?;
        slots.helping += 1;
        Some(tracked)
    }

    /// Waiters running their own job right now.
    pub(crate) fn helping(&self) -> usize {
        lock(&self.slots).helping
    }

    /// A waiter's help is over (its job completed, its process checked back in).
    pub(crate) fn end_help(&self) {
        let mut slots = lock(&self.slots);
        slots.helping -= 1;
        let wake = slots.helping == 0 && slots.closed;
        drop(slots);
        if wake {
            self.helpers_done.notify_all();
        }
    }

    /// Puts a healthy process back for the next call (or ends it after shutdown).
    pub(crate) fn check_in(&self, tracked: Tracked) {
        let mut slots = lock(&self.slots);
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
        if self.room_left(tracked.process.tasks_run) > 0 {
            self.check_in(tracked);
        } else {
            self.discard(tracked);
        }
    }

    /// Frees the slot of a process that was ended (or never started).
    fn release(&self) {
        let mut slots = lock(&self.slots);
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

    /// Ends (and reaps) every idle process.
    pub(crate) fn end_idle(&self) {
        let idle: Vec<Tracked> = {
            let mut slots = lock(&self.slots);
            let idle: Vec<Tracked> = slots.idle.drain(..).collect();
            slots.alive -= idle.len();
            idle
        };
        drop(idle);
        self.returned.notify_all();
    }

    /// Ends every idle process, and from now on every process checked back in; then waits
    /// for the waiters running their own jobs to finish them.
    pub(crate) fn close(&self) {
        lock(&self.slots).closed = true;
        self.end_idle();
        let mut slots = lock(&self.slots);
        while slots.helping > 0 {
            slots = self
                .helpers_done
                .wait(slots)
                .unwrap_or_else(|p| p.into_inner());
        }
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

    /// Processes started so far (replacements included).
    pub(crate) fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }
}
