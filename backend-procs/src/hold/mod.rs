//! Who runs a submitted job: a manager thread, woken by a *token* on the internal thread pool
//! ([`crate::dispatch`]), or the thread that waits for the job's future.
//!
//! Every job's future has a helper ([`Future::pending_with_helper`]): the first thread to
//! block on it without a timeout while the job is next in the backlog and a worker is idle
//! (and no manager thread waits for one: it holds an older job) runs the job itself
//! ([`Shared::run_inline`]: as `apply` does, two wake-ups per round trip instead of four).
//! That alone loses to the manager threads, though: the token wakes one (or keeps one
//! spinning), and on a machine with few cores that thread is in the way of the worker and of
//! the waiter.
//!
//! So once a pool's recent tasks were each waited for right after they were submitted and run
//! by their waiter ([`HOLD_AFTER`] in a row, each within [`PROMPTLY`]), a job submitted to an
//! empty backlog is *held*: its token is not queued yet. It is queued as soon as anything but
//! an untimed wait shows interest in the future ([`Help::Nudge`]: a timed wait, a callback,
//! `wait`/`as_completed`, `done()`, a cancel, dropping it), when the next job is submitted,
//! when the waiter cannot run it, at shutdown, and by the pool's *ticker* thread if the job is
//! still held at two of its ticks ([`TICK`] apart, while jobs are being held). So a held job
//! nobody waits for starts at most about two ticks late, once, and the next jobs are not held
//! ([`Help::Nudge`] and the ticker both end the run of prompt waiters). The decision itself —
//! hold or not — is [`policy::HoldPolicy`]'s; this file carries it out.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futurepool_core::{Future, FutureError, Help, SubmitError};

use crate::dispatch::Submission;
use crate::manager::{lock, Shared};

mod policy;

pub(crate) use policy::HoldPolicy;
#[cfg(doc)]
use policy::{HOLD_AFTER, PROMPTLY};

/// The ticker's period while jobs are being held.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// The hold-back of one pool: the job held, the ticker, the decision.
#[derive(Default)]
pub(crate) struct Hold {
    held: Mutex<Held>,
    /// Wakes the ticker.
    tick: Condvar,
    policy: HoldPolicy,
}

/// The job whose token is held back, and the ticker.
#[derive(Default)]
struct Held {
    /// The one job held (only a job submitted to an empty backlog is held, and the next
    /// submit queues its token).
    job: Option<u64>,
    /// A job was held since the ticker's last look: it keeps ticking.
    held_lately: bool,
    /// The ticker thread, started with the first held job.
    ticker: Option<JoinHandle<()>>,
    /// The ticker sleeps until woken (no job was held during its last tick).
    ticker_asleep: bool,
    /// Shut down: nothing is held any more, and the ticker ends.
    closed: bool,
}

impl Shared {
    /// What a job's future runs on the first interest in it (see the module docs).
    pub(crate) fn help(&self, seq: u64, help: Help, submitted: Instant) {
        if help == Help::Nudge {
            self.hold.policy.interrupted();
            self.release_held(seq);
            return;
        }
        self.hold.policy.waiter_came(submitted.elapsed());
        let ran = self.run_inline(seq);
        if !ran {
            self.release_held(seq);
        }
    }

    /// Queues the token for a job just pushed to the backlog — or holds it back, when the
    /// backlog `was_empty` and the [`HoldPolicy`] says so. Queues the token of a job held
    /// before this one either way. An error (the thread pool refused the token) is the
    /// submit's: the job was taken back.
    pub(crate) fn post_or_hold(
        self: &Arc<Self>,
        seq: u64,
        was_empty: bool,
    ) -> Result<(), SubmitError> {
        let hold = self.hold.policy.holds(was_empty);
        let (previous, held_now, wake) = {
            let mut held = lock(&self.hold.held);
            // Queued under the lock, as every held job's token (see `release_held`).
            let previous = held.job.take().map(|seq| (seq, self.queue_token()));
            if hold && !held.closed && held.ticker.is_none() {
                held.ticker = self.start_ticker(); // `None`: no thread, no holding
            }
            let held_now = hold && !held.closed && held.ticker.is_some();
            if held_now {
                held.job = Some(seq);
                held.held_lately = true;
            }
            (previous, held_now, held_now && held.ticker_asleep)
        };
        if wake {
            self.hold.tick.notify_one();
        }
        if let Some((previous, queued)) = previous {
            self.track_held(previous, queued);
        }
        if held_now {
            return Ok(());
        }
        self.post(seq)
    }

    /// Forgets the job held back, if it is `seq` (its waiter is running it).
    pub(crate) fn forget_held(&self, seq: u64) {
        let mut held = lock(&self.hold.held);
        if held.job == Some(seq) {
            held.job = None;
        }
    }

    /// Queues the token of job `seq` if it is the one held back.
    fn release_held(&self, seq: u64) {
        let mut held = lock(&self.hold.held);
        if held.job != Some(seq) {
            return;
        }
        held.job = None;
        // Under the lock: a shutdown takes this lock (`close_held`) before it shuts the thread
        // pool down, so the token of a job that was held when the shutdown began is queued
        // before the thread pool refuses tokens (the job runs, as every job submitted before a
        // shutdown that does not cancel).
        let queued = self.queue_token();
        drop(held);
        self.track_held(seq, queued);
    }

    /// After [`queue_token`](Self::queue_token) for a job that was held back: if the thread
    /// pool refused the token (broken), the job fails instead.
    fn track_held(&self, seq: u64, queued: Option<Result<Future<()>, SubmitError>>) {
        if let Err((e, job)) = self.track_token(seq, queued) {
            job.finish(Err(FutureError::from(e)));
        }
    }

    /// Queues a token for job `seq` on the thread pool; if the pool refuses it and the job is
    /// still in the backlog, takes the job back and returns the error.
    fn post(&self, seq: u64) -> Result<(), SubmitError> {
        let queued = self.queue_token();
        // The job taken back is dropped: the submit fails, nobody has its future.
        self.track_token(seq, queued).map_err(|(e, _job)| e)
    }

    /// Queues a token (a manager thread's turn at the backlog) on the thread pool; `None` if
    /// the pool is being dropped (its shutdown queued every token).
    fn queue_token(&self) -> Option<Result<Future<()>, SubmitError>> {
        let server = self.me.upgrade()?;
        self.tokens.fetch_add(1, Ordering::Relaxed);
        Some(self.threads.submit(move || {
            server.tokens.fetch_sub(1, Ordering::Relaxed);
            server.serve_backlog();
        }))
    }

    /// Follows a token [`queue_token`](Self::queue_token) queued for job `seq`: one the thread
    /// pool drops unrun fails a job; if the pool refused it and the job is still in the
    /// backlog, the job is taken back and returned with the error.
    fn track_token(
        &self,
        seq: u64,
        queued: Option<Result<Future<()>, SubmitError>>,
    ) -> Result<(), (SubmitError, Box<Submission>)> {
        let token = match queued {
            None => return Ok(()),
            Some(Ok(token)) => token,
            Some(Err(e)) => {
                self.tokens.fetch_sub(1, Ordering::Relaxed);
                return match self.take_back(seq) {
                    Some(job) => Err((e, Box::new(job))),
                    // A manager thread took the job already: it runs.
                    None => Ok(()),
                };
            }
        };
        let server = self.me.clone();
        token.add_done_callback(move |token: &Future<()>| {
            if let (Err(e), Some(server)) = (token.result(), server.upgrade()) {
                // Dropped unrun: by `shutdown(cancel_futures)` (which has cancelled the
                // backlog already) or for want of a thread.
                server.tokens.fetch_sub(1, Ordering::Relaxed);
                server.fail_one(e.cloned());
            }
        });
        Ok(())
    }

    /// Starts the ticker; `None` if no thread can be started (then nothing is held).
    fn start_ticker(&self) -> Option<JoinHandle<()>> {
        let shared = self.me.clone();
        thread::Builder::new()
            .name("futurepool-procs-ticker".into())
            .spawn(move || tick(shared))
            .ok()
    }

    /// Shutdown: queues the token of the job held back — or, if `cancelled` (the backlog was
    /// cancelled), cancels it: it may have been submitted after the backlog was cancelled —,
    /// holds nothing from now on, and ends the ticker.
    pub(crate) fn close_held(&self, cancelled: bool) {
        let (job, ticker) = {
            let mut held = lock(&self.hold.held);
            held.closed = true;
            // Queued under the lock (see `release_held`): a concurrent shutdown's thread pool
            // shutdown comes after.
            let job = held
                .job
                .take()
                .map(|seq| (seq, (!cancelled).then(|| self.queue_token())));
            (job, held.ticker.take())
        };
        self.hold.tick.notify_all();
        match job {
            Some((seq, Some(queued))) => self.track_held(seq, queued),
            Some((seq, None)) => {
                // Submitted between the backlog's cancel and now (no token: nothing else
                // would ever take it from the backlog).
                if let Some(job) = self.take_back(seq) {
                    job.finish(Err(FutureError::Cancelled));
                }
            }
            None => {}
        }
        if let Some(ticker) = ticker {
            if ticker.thread().id() != thread::current().id() {
                let _ = ticker.join();
            }
        }
    }
}

/// The ticker: queues the token of a job still held at two of its looks, [`TICK`] apart;
/// sleeps until woken when no job was held during a tick; ends at shutdown.
fn tick(shared: Weak<Shared>) {
    let mut seen = None;
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut held = lock(&shared.hold.held);
        if held.closed {
            return;
        }
        if held.job.is_some() && held.job == seen {
            let seq = held.job.take().expect("a held job");
            // Queued under the lock (see `Shared::release_held`).
            let queued = shared.queue_token();
            drop(held);
            shared.hold.policy.interrupted();
            shared.track_held(seq, queued);
            seen = None;
            continue;
        }
        seen = held.job;
        if held.held_lately || held.job.is_some() {
            held.held_lately = false;
            drop(
                shared
                    .hold
                    .tick
                    .wait_timeout(held, TICK)
                    .unwrap_or_else(|p| p.into_inner()),
            );
        } else {
            held.ticker_asleep = true;
            let mut held = shared
                .hold
                .tick
                .wait(held)
                .unwrap_or_else(|p| p.into_inner());
            held.ticker_asleep = false;
        }
    }
}
