//! Submitted tasks, and how a manager thread feeds them to its worker process several at a time.
//!
//! `submit` (and `map`, for each chunk) puts a [`Submission`] in the pool's *backlog* and a *token* on
//! the internal thread pool. A manager thread running a token serves the backlog until it is
//! empty: it checks a worker process out and sends it jobs, and while recent tasks have been
//! short ([`crate::pace`]) it keeps up to `Builder::send_ahead` + 1 ([`PIPELINE_DEPTH`] by default) of them on the
//! worker at once (at most [`PIPELINE_BYTES`] of requests queued behind the running one; never
//! the last jobs of the backlog that other workers could start at once). The worker finds its
//! next request already in its socket when it finishes one, so neither side sleeps between
//! short tasks: the system calls and wake-ups of one round trip are shared by several tasks. A worker answers in order, so the
//! oldest job sent is the one running; its deadline (`task_timeout`) runs from the moment the
//! reply before it arrived.
//!
//! A job sent ahead is marked running (its future can no longer be cancelled), as CPython's
//! `ProcessPoolExecutor` marks the items it moves to its call queue. If the worker dies or
//! times out, the running job fails (`WorkerLost`, `TimedOut`) and the jobs queued behind it,
//! which never started, go to the next worker.
//!
//! Every job in the backlog but the one held back ([`crate::hold`]) has a token in the thread
//! pool's queue (a token whose job another manager or its waiter took finds the backlog empty
//! and returns). A token the thread pool drops unrun (no thread could be started) fails one job
//! with the thread pool's error; `shutdown(cancel_futures)` cancels the backlog itself, and the
//! job held back.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futurepool_core::{FutureError, Outcome, Panic, Promise};

use serde::de::DeserializeOwned;

use crate::cancel::StopCell;
use crate::manager::{
    codec_error, decode_outcome, lock, task_deadline, Encoded, Shared, Tracked, ATTEMPTS,
};
use crate::process::{Answer, CallError, Payload, WorkerProcess};
use crate::wire::Bytes;

/// The most jobs on one worker at once by default (one running, the others waiting in its
/// socket): `Builder::send_ahead`'s default + 1.
pub(crate) const PIPELINE_DEPTH: usize = 8;

/// The most request bytes (whole frames, framing included) queued on a worker behind its
/// running job; a larger request is only ever sent to an idle worker.
///
/// Well under a socket's buffer (Linux's default is 208 KiB): a request sent ahead never waits
/// for the worker to read, since the worker may be blocked writing a large reply that the parent
/// reads only once it is done sending (both would wait for ever).
pub(crate) const PIPELINE_BYTES: usize = 64 * 1024;

/// Where a job's outcome goes: its future.
pub(crate) trait Completion: Send {
    /// Marks the future running; `false` if it was cancelled (the job is then dropped).
    fn start(&self) -> bool;
    /// Completes the future with the call's answer (or why there is none). `helped`: on the
    /// thread of a waiter that runs the job itself ([`Shared::help`]), where done-callbacks must
    /// not run: they go to a thread of their own, started on `helped`.
    fn finish(
        self: Box<Self>,
        answer: Result<Answer, FutureError<Infallible>>,
        helped: Option<&CallbackThreads>,
    );
}

/// The threads that run the done-callbacks of jobs completed on a waiter's thread
/// ([`complete`]): `shutdown(wait)` joins them ([`Shared::close`]), as it joins the manager
/// threads that run the callbacks of the other jobs — so every callback has run when it
/// returns, as with CPython, whose management thread runs them.
#[derive(Default)]
pub(crate) struct CallbackThreads(Mutex<Vec<JoinHandle<()>>>);

impl CallbackThreads {
    /// Runs `callbacks` on a thread of its own, listed to be joined; the error if no thread
    /// could be started.
    fn spawn(&self, callbacks: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let handle = std::thread::Builder::new()
            .name("futurepool-callbacks".into())
            .spawn(callbacks)?;
        let mut handles = lock(&self.0);
        // Finished ones need no join: the list stays as short as the callbacks still running.
        handles.retain(|h| !h.is_finished());
        handles.push(handle);
        Ok(())
    }

    /// Joins every thread started so far but the calling one (a callback may shut the pool
    /// down).
    pub(crate) fn join(&self) {
        let me = std::thread::current().id();
        loop {
            let handles = std::mem::take(&mut *lock(&self.0));
            if handles.is_empty() {
                return;
            }
            for handle in handles {
                if handle.thread().id() != me && handle.join().is_err() {
                    log::error!("futurepool-procs: a done-callback thread panicked");
                }
            }
        }
    }
}

/// Completes `promise`, on a waiter's thread (`helped`) without running done-callbacks there:
/// those registered meanwhile run on a thread of their own (or, if no thread can be started,
/// here after all).
fn complete<T, E>(promise: &Promise<T, E>, outcome: Outcome<T, E>, helped: Option<&CallbackThreads>)
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    let Some(threads) = helped else {
        let _ = promise.set_outcome(outcome);
        return;
    };
    let _ = promise.set_outcome_deferring_callbacks(outcome, |later| {
        if let Err(e) = threads.spawn(move || later.run()) {
            // The closure was dropped, and with it `later`, which ran the callbacks here.
            log::warn!("no thread for done-callbacks ({e}): they ran on the waiting thread");
        }
    });
}

/// A waiter's help in progress ([`Shared::run_inline`]): ends it when dropped.
struct Helping<'a>(&'a Shared);

impl Drop for Helping<'_> {
    fn drop(&mut self) {
        self.0.workers.end_help();
    }
}

/// A typed future's completion: decodes the returned bytes.
pub(crate) struct Typed<T, E, D> {
    pub(crate) promise: Promise<T, E>,
    pub(crate) decode: D,
}

impl<T, E, D> Completion for Typed<T, E, D>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
    D: Fn(Bytes) -> Outcome<T, E> + Send,
{
    fn start(&self) -> bool {
        matches!(self.promise.set_running_or_notify_cancel(), Ok(true))
    }

    fn finish(
        self: Box<Self>,
        answer: Result<Answer, FutureError<Infallible>>,
        helped: Option<&CallbackThreads>,
    ) {
        let outcome = match answer.and_then(one) {
            Ok(bytes) => contained(|| (self.decode)(bytes)),
            Err(e) => Err(e.map_raised(|never| match never {})),
        };
        complete(&self.promise, outcome, helped);
    }
}

/// Runs the decoding of a result into the caller's type, whose `Deserialize` may be the user's
/// own: a panic in it fails this one future (`Panicked`) instead of unwinding through the
/// manager thread, which holds a worker (its slot would be lost) and the jobs sent to it.
fn contained<T, E>(decode: impl FnOnce() -> Outcome<T, E>) -> Outcome<T, E> {
    panic::catch_unwind(AssertUnwindSafe(decode))
        .unwrap_or_else(|payload| Err(FutureError::Panicked(Panic::from_payload(payload))))
}

/// A single call's encoded return value, or why there is none.
fn one(answer: Answer) -> Encoded {
    match answer {
        Answer::One(outcome) => decode_outcome(outcome),
        Answer::Chunk(_) => unreachable!("a single call is answered with one outcome"),
    }
}

/// A chunk's completion (`map`): each item's outcome, decoded. An item whose argument did not
/// encode keeps the parent's error; a chunk whose worker was lost fails each item alike.
pub(crate) struct Chunked<R> {
    pub(crate) promise: Promise<Vec<Outcome<R>>>,
    /// Per item, the error encoding its argument gave (it was not sent).
    pub(crate) unsent: Vec<Option<FutureError<Infallible>>>,
}

impl<R> Completion for Chunked<R>
where
    R: DeserializeOwned + Send + Sync + 'static,
{
    fn start(&self) -> bool {
        matches!(self.promise.set_running_or_notify_cancel(), Ok(true))
    }

    fn finish(
        self: Box<Self>,
        answer: Result<Answer, FutureError<Infallible>>,
        helped: Option<&CallbackThreads>,
    ) {
        let items = match answer {
            Err(FutureError::Cancelled) => Err(FutureError::Cancelled),
            Err(e) => Ok(self.unsent.iter().map(|_| Err(e.clone())).collect()),
            Ok(Answer::Chunk(outcomes)) => Ok(outcomes
                .into_iter()
                .zip(self.unsent)
                .map(|(outcome, unsent)| {
                    if let Some(e) = unsent {
                        return Err(e);
                    }
                    let bytes = decode_outcome(outcome)?;
                    contained(|| {
                        crate::codec::decode::<R>(&bytes).map_err(|e| codec_error("the result", &e))
                    })
                })
                .collect()),
            Ok(Answer::One(_)) => unreachable!("a chunk is answered with a chunk of outcomes"),
        };
        complete(&self.promise, items, helped);
    }
}

/// A submitted task waiting in the backlog or on a worker: its request and where its outcome
/// goes. (Not the core's `Job`, the callable: this is one submission of a call.)
pub(crate) struct Submission {
    /// Identifies the job in the backlog (for taking back one the thread pool refused).
    pub(crate) seq: u64,
    pub(crate) name: Cow<'static, str>,
    pub(crate) payload: Payload,
    /// Bytes of its request frame ([`Payload::frame_len`]): whether it fits behind a running
    /// job.
    pub(crate) bytes: usize,
    pub(crate) timeout: Option<Duration>,
    /// With `cancel_kills_running`: how a cancel reaches the worker running the job. It is
    /// attached to the worker when the job becomes the one running there (a cancel of a job
    /// still queued on a worker kills that worker as the job reaches the front).
    pub(crate) stop: Option<Arc<StopCell>>,
    pub(crate) done: Box<dyn Completion>,
    /// Taken by the thread waiting for it ([`Shared::help`]), which runs it: where its
    /// done-callbacks run.
    pub(crate) helped: Option<Arc<CallbackThreads>>,
}

impl Submission {
    pub(crate) fn finish(self, answer: Result<Answer, FutureError<Infallible>>) {
        self.done.finish(answer, self.helped.as_deref())
    }
}

/// A job on a worker: sent, not yet answered.
struct Sent {
    job: Submission,
    id: u64,
}

/// A job's answer, or why there is none.
type Settled = (Submission, Result<Answer, FutureError<Infallible>>);

/// How feeding one worker ended.
enum Fed {
    /// Nothing is left to do; the worker is idle and healthy. The last job answered is
    /// completed once the worker is checked back in, so that whoever waited for it and
    /// submits again finds the worker idle and this thread about to look for work.
    Idle { last: Option<(Submission, Answer)> },
    /// The worker is gone (or was killed); `started` is false when it was found dead before
    /// it received its first job. `settled`: the jobs it ended with, each with its outcome (the
    /// answers it wrote before its end, the error of the job it was running), completed once
    /// the worker has been reaped (so a future that says `WorkerLost` never names a worker
    /// still listed).
    Lost {
        started: bool,
        settled: Vec<Settled>,
    },
}

/// Why a worker with jobs on it was lost.
enum Loss {
    /// A call failed: the worker died, overran the running job's deadline (and was killed), or
    /// broke the protocol.
    Call(CallError),
    /// The pool killed it to stop a cancelled task (`cancel_kills_running`).
    Cancel,
}

/// The jobs on one worker, oldest first: the oldest is running (or done, its reply on the
/// way), the others wait in the worker's socket. A worker answers in order.
struct Conveyor<'w> {
    process: &'w mut WorkerProcess,
    inflight: VecDeque<Sent>,
    /// Request bytes queued behind the running job.
    queued_bytes: usize,
    /// When the running job started: it was sent to an idle worker, or the reply before it
    /// came.
    head_since: Instant,
    /// The running job's deadline (`task_timeout`, from `head_since`).
    deadline: Option<Instant>,
    /// Tasks this worker may still be sent (`max_tasks_per_child`).
    room: usize,
}

/// Before a job runs on `process`: lets a cancel kill it; `false` if it was already cancelled.
fn attach(job: &Submission, process: &WorkerProcess) -> bool {
    job.stop
        .as_ref()
        .is_none_or(|stop| stop.attach(process.killer()))
}

/// After a job's call: `true` if a cancel asked for it to be stopped (its worker may have been
/// killed).
fn detach(job: &Submission) -> bool {
    job.stop.as_ref().is_some_and(|stop| stop.detach())
}

impl Shared {
    /// The next job of the backlog that was not cancelled, marked running.
    fn take_job(&self) -> Option<Submission> {
        self.take_job_leaving(0, usize::MAX)
    }

    /// [`take_job`](Self::take_job) for a worker that is busy: only while at least
    /// `max_workers - 1` jobs would be left for the other workers, so that a short queue is
    /// spread over the workers instead of lining up on one, and only a job whose request is at
    /// most `room` bytes (a larger one stays for a free worker, this one's included).
    fn take_job_ahead(&self, room: usize) -> Option<Submission> {
        self.take_job_leaving(self.workers.max() - 1, room)
    }

    fn take_job_leaving(&self, leave: usize, room: usize) -> Option<Submission> {
        loop {
            let job = {
                let mut backlog = lock(&self.backlog);
                if backlog.len() <= leave || backlog.front()?.bytes > room {
                    return None;
                }
                backlog.pop_front()?
            };
            if job.done.start() {
                return Some(job);
            }
        }
    }

    /// A job the thread pool refused to queue a token for: taken back if still in the backlog,
    /// `None` if a manager thread has already taken it (and runs it).
    pub(crate) fn take_back(&self, seq: u64) -> Option<Submission> {
        let mut backlog = lock(&self.backlog);
        let at = backlog.iter().rposition(|job| job.seq == seq)?;
        backlog.remove(at)
    }

    /// Fails the oldest job in the backlog (its token was dropped unrun with `why`).
    pub(crate) fn fail_one(&self, why: FutureError<Infallible>) {
        let job = lock(&self.backlog).pop_front();
        if let Some(job) = job {
            job.finish(Err(why));
        }
    }

    /// Cancels every job still in the backlog (`shutdown(cancel_futures)`).
    pub(crate) fn cancel_backlog(&self) {
        let jobs: Vec<Submission> = lock(&self.backlog).drain(..).collect();
        for job in jobs {
            job.finish(Err(FutureError::Cancelled));
        }
    }

    /// Jobs waiting in the backlog.
    pub(crate) fn backlog_len(&self) -> usize {
        lock(&self.backlog).len()
    }

    /// A token's work on a manager thread: runs jobs from the backlog until it is empty.
    pub(crate) fn serve_backlog(&self) {
        self.serve(VecDeque::new(), None);
    }

    /// A waiter's help ([`crate::hold`]): if the job `seq` is next in the backlog and a
    /// worker is idle right now, runs it on this thread as `apply` does — no manager thread in
    /// between, so the round trip costs the two wake-ups of a bare pipe instead of four — and
    /// returns `true`. Otherwise does nothing (a manager thread runs it, as for a task nobody
    /// waits for). A token queued for the job finds it gone.
    pub(crate) fn run_inline(&self, seq: u64) -> bool {
        if lock(&self.backlog).front().is_none_or(|job| job.seq != seq) {
            return false;
        }
        let Some(tracked) = self.workers.check_out_idle_to_help() else {
            return false;
        };
        // Ends the help on the way out, unwinding included (a waker woken by the completion is
        // user code): `shutdown(wait)` waits for helpers.
        let _helping = Helping(self);
        let job = {
            let mut backlog = lock(&self.backlog);
            match backlog.front() {
                Some(job) if job.seq == seq => backlog.pop_front(),
                _ => None,
            }
        };
        match job {
            Some(mut job) => {
                self.forget_held(seq);
                if job.done.start() {
                    job.helped = Some(self.callback_threads.clone());
                    self.serve(VecDeque::from([job]), Some(tracked));
                } else {
                    // Cancelled meanwhile: its future says so.
                    self.workers.check_in(tracked);
                }
                true
            }
            // Taken by a manager thread meanwhile.
            None => {
                self.workers.check_in(tracked);
                false
            }
        }
    }

    /// Runs the jobs in `ready` (taken, marked running) and then, on a manager thread, the
    /// backlog's until it is empty; a waiter's help (`first` is the idle worker it checked out)
    /// runs only its own job.
    fn serve(&self, mut ready: VecDeque<Submission>, mut first: Option<Tracked>) {
        let helping = first.is_some();
        // Workers in a row found dead before they received anything.
        let mut dead_on_arrival = 0;
        loop {
            if ready.is_empty() {
                if helping {
                    break;
                }
                match self.take_job() {
                    Some(job) => ready.push_back(job),
                    None => break,
                }
            }
            if let Some(why) = self.broken() {
                for job in ready.drain(..) {
                    job.finish(Err(FutureError::Broken(why.clone())));
                }
                continue;
            }
            if self.fail_if_killed(&mut ready) {
                continue;
            }
            let checked_out = match first.take() {
                Some(tracked) => Ok(tracked),
                None => self.check_out(),
            };
            let mut tracked = match checked_out {
                Ok(tracked) => tracked,
                Err(e) => {
                    let job = ready.pop_front().expect("a job is ready");
                    job.finish(Err(e));
                    continue;
                }
            };
            if self.killed.load(Ordering::SeqCst) {
                // Killed while this thread checked a worker out (a worker it started was
                // listed before this check, so the kill reached it).
                self.workers.discard(tracked);
                self.fail_if_killed(&mut ready);
                continue;
            }
            // A worker that died while idle (the OOM killer's favourite) is found out by the
            // send (the job goes to the next worker: `Fed::Lost` with `started == false`).
            let started = match self.feed(&mut tracked.process, &mut ready, !helping) {
                Fed::Idle { last } => {
                    self.workers.check_in_or_retire(tracked);
                    if let Some((job, answer)) = last {
                        job.finish(Ok(answer));
                    }
                    true
                }
                Fed::Lost { started, settled } => {
                    self.workers.discard(tracked);
                    for (job, outcome) in settled {
                        job.finish(outcome);
                    }
                    started
                }
            };
            if started {
                dead_on_arrival = 0;
            } else {
                dead_on_arrival += 1;
                if dead_on_arrival == ATTEMPTS {
                    dead_on_arrival = 0;
                    let job = ready.pop_front().expect("the job that was not sent");
                    let why = format!(
                        "{ATTEMPTS} worker processes in a row died before {} could start",
                        job.name
                    );
                    job.finish(Err(FutureError::WorkerLost(why.into())));
                }
            }
        }
        if let Some(tracked) = first {
            // Unused: the pool broke or was killed before the job was sent.
            self.workers.check_in(tracked);
        }
    }

    /// After `kill_workers`/`terminate_workers`: fails the jobs taken from the backlog (sent
    /// ahead to a worker that was killed, or about to be sent), which are running tasks, as the
    /// one the worker ran failed; no worker is started for them. `false` if not killed.
    fn fail_if_killed(&self, ready: &mut VecDeque<Submission>) -> bool {
        if !self.killed.load(Ordering::SeqCst) {
            return false;
        }
        for job in ready.drain(..) {
            let why = format!("the pool's workers were killed before {} ran", job.name);
            job.finish(Err(FutureError::WorkerLost(why.into())));
        }
        true
    }

    /// Sends jobs (from `ready`, then, if `backlog`, the backlog) to `process` and completes
    /// them as its replies come, until there is nothing left or the worker is lost. Jobs that
    /// were sent but never started on a lost worker are put back at the front of `ready`.
    fn feed(
        &self,
        process: &mut WorkerProcess,
        ready: &mut VecDeque<Submission>,
        backlog: bool,
    ) -> Fed {
        let room = self.workers.room_left(process.tasks_run);
        let mut belt = Conveyor {
            process,
            inflight: VecDeque::new(),
            queued_bytes: 0,
            head_since: Instant::now(),
            deadline: None,
            room,
        };
        loop {
            if let Some(fed) = self.load(&mut belt, ready, backlog) {
                return fed;
            }
            let Some(head) = belt.inflight.front() else {
                return Fed::Idle { last: None };
            };
            let (id, kind) = (head.id, head.job.payload.kind());
            let fed = match belt.process.receive_answer(id, kind, belt.deadline) {
                Ok(answer) => self.answered(&mut belt, answer, ready, backlog),
                Err(e) => Some(self.wind_up(&mut belt, ready, Loss::Call(e))),
            };
            if let Some(fed) = fed {
                return fed;
            }
        }
    }

    /// Sends the worker jobs while it has room: one if it is idle, and while recent tasks were
    /// short, more behind the running one. `Some` if the worker was lost meanwhile.
    fn load(
        &self,
        belt: &mut Conveyor<'_>,
        ready: &mut VecDeque<Submission>,
        backlog: bool,
    ) -> Option<Fed> {
        loop {
            let depth = if self.pace.sends_ahead() {
                self.pipeline_depth
            } else {
                1
            };
            if belt.room == 0 || belt.inflight.len() >= depth || belt.queued_bytes >= PIPELINE_BYTES
            {
                return None;
            }
            let first = belt.inflight.is_empty();
            let job = match ready.pop_front() {
                Some(job) => job,
                None if !backlog => return None,
                None if first => self.take_job()?,
                None => self.take_job_ahead(PIPELINE_BYTES - belt.queued_bytes)?,
            };
            if !first && belt.queued_bytes + job.bytes > PIPELINE_BYTES {
                // One put back after a worker was lost, too large to queue now: it waits for
                // this worker.
                ready.push_front(job);
                return None;
            }
            if first && !attach(&job, belt.process) {
                job.finish(Err(FutureError::Cancelled)); // cancelled before it was sent
                continue;
            }
            if let Some(fed) = self.send(belt, job, ready) {
                return Some(fed);
            }
        }
    }

    /// Sends `job` to the worker: to run at once if the worker is idle, else queued behind the
    /// jobs on it. `Some` if the worker was lost.
    fn send(
        &self,
        belt: &mut Conveyor<'_>,
        mut job: Submission,
        ready: &mut VecDeque<Submission>,
    ) -> Option<Fed> {
        let first = belt.inflight.is_empty();
        let now = Instant::now();
        // A job queued behind the running one: the wait for room to send it is the running
        // job's time.
        let deadline = if first {
            task_deadline(job.timeout, now)
        } else {
            belt.deadline
        };
        match belt.process.send_job(&job.name, &job.payload, deadline) {
            Ok(id) => {
                belt.room = belt.room.saturating_sub(job.payload.tasks());
                if first {
                    belt.head_since = now;
                    belt.deadline = deadline;
                    if job.bytes > PIPELINE_BYTES {
                        job.payload.free_arguments();
                    }
                } else {
                    belt.queued_bytes += job.bytes;
                }
                belt.inflight.push_back(Sent { job, id });
                None
            }
            Err(CallError::TimedOut) if first => {
                // Its own deadline passed while its request was being sent.
                Some(Fed::Lost {
                    started: true,
                    settled: vec![(job, Err(FutureError::TimedOut))],
                })
            }
            Err(e) => {
                // The worker cannot have started this job (it is sequential, and did not
                // receive all of it): it goes to the next worker. Its stop cell lets go of this
                // worker (without a pidfd its pid could be reused).
                if first {
                    detach(&job);
                    if let CallError::Died(why) = &e {
                        // Died while receiving it: with `break_on_worker_death`, the pool
                        // breaks at once, as for any death.
                        self.note_death(why);
                    }
                }
                ready.push_front(job);
                if first {
                    return Some(Fed::Lost {
                        started: false,
                        settled: Vec::new(),
                    });
                }
                // It ended with jobs on it: those it answered first finished.
                Some(self.wind_up(belt, ready, Loss::Call(e)))
            }
        }
    }

    /// The running job's answer came: completes it, and the next job on the worker becomes
    /// the running one. `Some` when feeding this worker ends.
    fn answered(
        &self,
        belt: &mut Conveyor<'_>,
        answer: Answer,
        ready: &mut VecDeque<Submission>,
        backlog: bool,
    ) -> Option<Fed> {
        let done = belt.inflight.pop_front().expect("the head");
        if detach(&done.job) {
            // A cancel raced the reply and killed the worker (this job's killer was attached):
            // the job finished, and its outcome stands. A worker starts the request queued
            // behind as soon as it has answered, so the next job may have been killed too.
            let mut fed = self.wind_up(belt, ready, Loss::Cancel);
            if let Fed::Lost { settled, .. } = &mut fed {
                settled.insert(0, (done.job, Ok(answer)));
            }
            return Some(fed);
        }
        let now = Instant::now();
        self.pace.note(now - belt.head_since);
        belt.head_since = now;
        let next_cancelled = match belt.inflight.front() {
            Some(next) => {
                belt.queued_bytes -= next.job.bytes;
                belt.deadline = task_deadline(next.job.timeout, now);
                !attach(&next.job, belt.process)
            }
            None => false,
        };
        if belt.inflight.is_empty() && ready.is_empty() && (!backlog || self.backlog_len() == 0) {
            return Some(Fed::Idle {
                last: Some((done.job, answer)),
            });
        }
        done.job.finish(Ok(answer));
        // Cancelled while queued on the worker, where it has started by now.
        next_cancelled.then(|| self.wind_up(belt, ready, Loss::Cancel))
    }

    /// The worker with `belt`'s jobs on it is gone (died, overran a deadline, broke the
    /// protocol, or was killed for a cancel). It ran them in order, and the replies it wrote
    /// before its end are still in its socket: each job answered there finished and keeps its
    /// answer. The first job without one is the job it was running, which fails (`Cancelled`
    /// if it was cancelled, whatever else happened); the jobs behind it never started and go
    /// back to the front of `ready`, in order.
    fn wind_up(
        &self,
        belt: &mut Conveyor<'_>,
        ready: &mut VecDeque<Submission>,
        loss: Loss,
    ) -> Fed {
        let mut settled = Vec::new();
        while let Some(head) = belt.inflight.front() {
            let Some(answer) = belt.process.answer_left(head.id, head.job.payload.kind()) else {
                break;
            };
            let done = belt.inflight.pop_front().expect("the head");
            detach(&done.job);
            settled.push((done.job, Ok(answer)));
        }
        // None left: it had answered everything sent, and ended between tasks.
        if let Some(head) = belt.inflight.pop_front() {
            for sent in belt.inflight.drain(..).rev() {
                ready.push_front(sent.job);
            }
            let error = self.blame(&head, belt.process.pid(), loss);
            settled.push((head.job, Err(error)));
        }
        Fed::Lost {
            started: true,
            settled,
        }
    }

    /// The error of the job a lost worker was running.
    fn blame(&self, head: &Sent, pid: u32, loss: Loss) -> FutureError<Infallible> {
        if detach(&head.job) {
            return FutureError::Cancelled;
        }
        let why = match loss {
            Loss::Call(CallError::TimedOut) => return FutureError::TimedOut,
            Loss::Call(CallError::Died(why) | CallError::NotStarted(why)) => {
                self.note_death(&why);
                format!("worker {why} while running {}", head.job.name)
            }
            Loss::Cancel => format!(
                "worker (pid {pid}) was killed to cancel the task before {}, which it had started",
                head.job.name
            ),
        };
        FutureError::WorkerLost(why.into())
    }
}
