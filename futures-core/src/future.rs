//! [`Future`] and its completing side, [`Promise`]: the state machine everything else waits on.
//!
//! # States
//!
//! Every transition that exists, and who makes it:
//!
//! ```text
//!              Promise::set_running_or_notify_cancel (CAS)
//!   PENDING ───────────────────────────────────────────────▶ RUNNING
//!    │  │                                                      │   │
//!    │  │ finish: Promise::set_result / set_exception /        │   │ finish: the same
//!    │  │ set_outcome, or the last Promise dropped (Broken)    │   │
//!    │  └─────────────▶ COMPLETING ──▶ FINISHED ◀──────────────┘   │
//!    │                  (the cell is written)                      │
//!    │ cancel_pending: Future::cancel, or                          │ cancel_running: the executor
//!    │ Promise::set_outcome(Err(Cancelled))                        │ stopped the task on request
//!    └─────────────────────────────▶ CANCELLED ◀───────────────────┘ (a cancel hook, e.g. the
//!                                                                    process pool's
//!                                                                    cancel_kills_running), via
//!                                                                    set_outcome(Err(Cancelled))
//! ```
//!
//! FINISHED and CANCELLED are final: nothing leaves them. Every transition is one atomic
//! read-modify-write of the state word, and none takes a lock: a future nobody waits on is
//! completed without one. `finish` first claims the outcome cell (PENDING or RUNNING →
//! COMPLETING: only one completion can win the claim, and neither cancel step starts from
//! COMPLETING), writes it, then publishes it (COMPLETING → FINISHED). COMPLETING reads as
//! "running" and not done.
//!
//! # Waiters
//!
//! Everything that waits — a thread asleep in `result()`, a `wait`/`as_completed` queue, an async
//! waker, a done-callback, a cancel hook or arbiter — lives in the future's *slow part*
//! ([`Slow`]: a lock, the waiter list, a condition variable), allocated the first time somebody
//! waits. A waiter
//! registers under that lock and, still under it, sets the state word's `WAITERS` bit with a
//! read-modify-write that also reads the state: if the state was already final, it does not
//! register. A move to a final state that finds `WAITERS` set takes the lock and notifies every
//! waiter. Both are read-modify-writes of one word, so one comes first: either the waiter sees
//! the final state, or the completion sees the bit — and then takes the lock only after the
//! waiter, which holds it from its bit to its registration (or its sleep), is done: no
//! registration is missed and no wake-up is lost.
//!
//! # The outcome cell
//!
//! A finished future's outcome lives in a write-once cell that is read without a lock, so
//! `result()` on a finished future is one atomic load and a pointer. The protocol:
//!
//! * written exactly once, by the completion that claimed it (COMPLETING), *before* the state
//!   becomes FINISHED with `Release`;
//! * read only after loading FINISHED with `Acquire`, which makes the write visible, and never
//!   written again while a reader may exist;
//! * moved out (by [`Future::try_into_result`]) only by the last [`Future`] handle, once the state
//!   is final: a [`Promise`] never reads the cell, and every other reader holds a `Future` handle
//!   (done-callbacks are lent a handle, counted when the first callback registers), so none can
//!   exist.

use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::body::Body;
use crate::error::{FutureError, InvalidStateError, Panic};
use crate::loom::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use crate::loom::{Arc, Condvar, Mutex, MutexGuard, UnsafeCell};
use crate::waiter::{Entry, Queue, Waiters};

/// Not started; may be cancelled.
const PENDING: u8 = 0;
/// Taken by a worker (`set_running_or_notify_cancel` returned `true`); can no longer be cancelled.
const RUNNING: u8 = 1;
/// A completion claimed the outcome cell and is writing it; FINISHED comes next.
const COMPLETING: u8 = 2;
/// Final: the outcome cell holds the result.
const FINISHED: u8 = 4;
/// Final: cancelled before it ran. The outcome cell stays empty.
const CANCELLED: u8 = 5;
/// The bits of the state word that hold one of the states above.
const PHASE: u8 = 0b111;
/// Flag in the state word: somebody registered in the slow part (see the module docs), so the
/// move to a final state must take its lock and notify.
const WAITERS: u8 = 0b1000;
/// Flag in the state word, set at creation and never cleared: the future has a helper (see
/// [`Future::pending_with_helper`]).
const HELPER: u8 = 0b1_0000;
/// Flag in the state word: a waiter claimed the future's helper; set once, by the one thread
/// that then takes it.
const HELPED: u8 = 0b10_0000;

fn is_final(phase: u8) -> bool {
    phase >= FINISHED
}

fn state_name(phase: u8) -> &'static str {
    match phase {
        PENDING => "pending",
        RUNNING | COMPLETING => "running",
        FINISHED => "finished",
        _ => "cancelled",
    }
}

/// A future's outcome taken by value: the value or why there is none. What a finished future
/// holds, and what [`Future::into_result`] and `.await` give.
pub type Outcome<T, E = std::convert::Infallible> = Result<T, FutureError<E>>;

type Callback<T, E> = Box<dyn FnOnce(&Future<T, E>) + Send>;

/// What the first interest in a pending future runs (see [`Future::pending_with_helper`]).
type Helper = Box<dyn FnOnce(Help) + Send>;

/// Why a future's helper runs ([`Future::pending_with_helper`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Help {
    /// A thread is about to block until the future is done, without a timeout
    /// ([`Future::result`], [`Future::wait`], [`Future::try_into_result`]...): the helper may
    /// run the task right here, on that thread, and complete the future.
    Run,
    /// Somebody takes another interest in the future — a timed wait, a done-callback,
    /// `wait`/`as_completed`, an `.await`, a look at its state (`done()`, `running()`...), a
    /// cancel, or dropping its handles: the task should get going if it has not; the helper
    /// must not block.
    Start,
}

/// Where a completion hands its done-callbacks instead of running them
/// ([`Promise::set_outcome_deferring_callbacks`]); `None`: it runs them.
type Defer<'a, T, E> = Option<&'a mut dyn FnMut(DeferredCallbacks<T, E>)>;

/// The state shared by every [`Future`] and [`Promise`] of one task.
pub(crate) struct Inner<T, E> {
    /// The state (`PHASE` bits) and the `WAITERS` flag.
    state: AtomicU8,
    /// The slow part, allocated by the first waiter (null until then), freed with `Inner`.
    slow: AtomicPtr<Slow<T, E>>,
    outcome: UnsafeCell<Option<Outcome<T, E>>>,
    /// Live `Future` handles, plus one for the handle lent to done-callbacks from the moment
    /// the first callback registers until the callbacks have run.
    handles: AtomicUsize,
    /// Live `Promise` handles (a [`TaskRef`] counts as one); the last one to go leaves no
    /// future pending.
    promises: AtomicUsize,
    /// The task's closure when the future was made by [`Future::with_task`]: written before
    /// the future is shared, taken once by the task's only owner (its `TaskRef`), or dropped
    /// with the future.
    body: UnsafeCell<Body<T, E>>,
    /// The executor's helper ([`Future::pending_with_helper`]): written before the future is
    /// shared, taken once by the waiter that set `HELPED`, or dropped with the future.
    helper: UnsafeCell<Option<Helper>>,
}

/// What only waiting needs: kept out of the future's own allocation until somebody waits.
struct Slow<T, E> {
    waiters: Mutex<Waiters<Callback<T, E>>>,
    /// Woken (`notify_all`) when the state becomes final, or the lent handle is returned, and
    /// someone sleeps on it.
    finished: Condvar,
}

// SAFETY: `Inner` owns `T`/`E` values (in the outcome cell), so sending it moves them: `T: Send`,
// `E: Send`. The callbacks and the helper are `Send` by their type, and so is a task's closure in
// `body` (`Future::with_task` requires `F: Send`); the closure and the helper are never shared,
// only moved out by their one owner (the task's, the waiter that set `HELPED`), so they need no
// `Sync`. The slow part is owned (a boxed `Mutex` and `Condvar`).
unsafe impl<T: Send, E: Send> Send for Inner<T, E> {}
// SAFETY: shared `Inner`s hand out `&T`/`&E` to any thread (`T: Sync`, `E: Sync`) and let any
// thread store or take the value (`T: Send`, `E: Send`). The outcome cell follows the protocol in
// the module docs: one write by the claiming completion before a `Release` move to FINISHED,
// reads only after an `Acquire` load of FINISHED, and a move-out only by the last `Future`
// handle. The slow part is only reached through `&Slow` (a `Mutex` and a `Condvar`).
unsafe impl<T: Send + Sync, E: Send + Sync> Sync for Inner<T, E> {}

impl<T, E> Inner<T, E> {
    fn new(state: u8, outcome: Option<Outcome<T, E>>, promises: usize) -> Self {
        Inner::with_body(state, outcome, promises, Body::empty())
    }

    fn with_body(
        state: u8,
        outcome: Option<Outcome<T, E>>,
        promises: usize,
        body: Body<T, E>,
    ) -> Self {
        Inner {
            state: AtomicU8::new(state),
            slow: AtomicPtr::new(std::ptr::null_mut()),
            outcome: UnsafeCell::new(outcome),
            handles: AtomicUsize::new(1),
            promises: AtomicUsize::new(promises),
            body: UnsafeCell::new(body),
            helper: UnsafeCell::new(None),
        }
    }

    /// The state (without the flag).
    fn state(&self) -> u8 {
        // Acquire: seeing FINISHED makes the outcome written before it visible.
        self.state.load(Ordering::Acquire) & PHASE
    }

    /// The slow part, if somebody ever waited.
    fn slow_if_any(&self) -> Option<&Slow<T, E>> {
        // Acquire: pairs with the Release of the installing CAS, so the part is initialized.
        let p = self.slow.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was installed once by `slow` from a leaked `Box` and is
        // only freed by `Drop for Inner`, which cannot run while `&self` is alive.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// The slow part, allocated if needed.
    fn slow(&self) -> &Slow<T, E> {
        if let Some(slow) = self.slow_if_any() {
            return slow;
        }
        let fresh = Box::into_raw(Box::new(Slow {
            waiters: Mutex::new(Waiters::new()),
            finished: Condvar::new(),
        }));
        // AcqRel: Release publishes the fresh part; Acquire (also on failure) sees the part
        // another thread installed first.
        match self.slow.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: just installed; freed only by `Drop for Inner` (see `slow_if_any`).
            Ok(_) => unsafe { &*fresh },
            Err(installed) => {
                // SAFETY: `fresh` came from `Box::into_raw` above and was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: as in `slow_if_any`.
                unsafe { &*installed }
            }
        }
    }

    /// Takes the slow part's lock and sets `WAITERS` (see the module docs): the lock, if the
    /// state is not final yet (the caller may register), or the final state.
    fn lock_to_register(&self) -> Result<MutexGuard<'_, Waiters<Callback<T, E>>>, u8> {
        let waiters = self.slow().waiters.lock();
        // AcqRel: Acquire, as every load of the state (a final state read here may be acted
        // on); Release: a handle counted before this (the callbacks' lent one) is seen by
        // whoever later loads the final state that a completion stores after this bit.
        let phase = self.state.fetch_or(WAITERS, Ordering::AcqRel) & PHASE;
        if is_final(phase) {
            Err(phase)
        } else {
            Ok(waiters)
        }
    }

    /// The outcome of a FINISHED future.
    ///
    /// Callers must have loaded FINISHED (with `Acquire`) and hold a `Future` handle.
    fn outcome(&self) -> &Outcome<T, E> {
        // SAFETY: per the module docs the cell was written before FINISHED was published, the
        // caller observed FINISHED with Acquire, and no write or move-out can happen while the
        // caller's `Future` handle (which `&self` is borrowed through) exists.
        let outcome = self.outcome.with(|p| unsafe { &*p });
        outcome.as_ref().expect("a finished future has an outcome")
    }

    /// Blocks until the state is final or `deadline` passes; returns the last state seen.
    fn wait_final(&self, deadline: Option<Instant>) -> u8 {
        let mut state = self.state();
        if is_final(state) {
            return state;
        }
        if matches!(deadline, Some(d) if Instant::now() >= d) {
            self.notice();
            return state;
        }
        if state == PENDING {
            let help = if deadline.is_none() {
                Help::Run
            } else {
                Help::Start
            };
            if self.help(help) {
                state = self.state();
                if is_final(state) {
                    return state;
                }
            }
        }
        if crate::loom::spin_until(|| is_final(self.state())) {
            return self.state();
        }
        let slow = self.slow();
        let mut waiters = match self.lock_to_register() {
            Ok(waiters) => waiters,
            Err(state) => return state,
        };
        loop {
            // `WAITERS` is set and we hold the lock: a completion after our look takes the
            // lock, which we release only inside the wait, and notifies.
            waiters.sleepers += 1;
            let expired = match deadline {
                None => {
                    waiters = slow.finished.wait(waiters);
                    false
                }
                Some(d) => {
                    let (guard, expired) = slow.finished.wait_deadline(waiters, d);
                    waiters = guard;
                    expired
                }
            };
            waiters.sleepers -= 1;
            let state = self.state();
            if expired || is_final(state) {
                return state;
            }
        }
    }

    /// Runs the future's helper with [`Help::Start`] if it is pending and has a helper that
    /// nothing claimed yet: every kind of interest in a future but an untimed wait calls this.
    fn notice(&self) {
        // A future without a helper (`HELPER` is part of its state from creation on), or no
        // longer pending, costs this one load.
        if self.state.load(Ordering::Acquire) & (HELPER | HELPED | PHASE) == HELPER | PENDING {
            self.help(Help::Start);
        }
    }

    /// Runs the future's helper, if it has one that nothing claimed yet — for [`Help::Run`],
    /// only while no done-callback is registered (a callback registered while the helper runs
    /// is handed to the executor: see [`Promise::set_outcome_deferring_callbacks`]; one
    /// registered before would run on the waiting thread, so the helper is then told to
    /// start the task instead). `true` if it ran.
    fn help(&self, mut help: Help) -> bool {
        let state = self.state.load(Ordering::Acquire);
        if state & (HELPER | HELPED | PHASE) != HELPER | PENDING {
            return false;
        }
        if help == Help::Run && state & WAITERS != 0 {
            // Somebody registered: a done-callback would run on this thread, which may hold a
            // lock the callback takes. Leave the task to the executor's own threads.
            if let Some(slow) = self.slow_if_any() {
                if slow.waiters.lock().lent {
                    help = Help::Start;
                }
            }
        }
        // AcqRel: Acquire as every load of the state; the claim publishes nothing.
        if self.state.fetch_or(HELPED, Ordering::AcqRel) & HELPED != 0 {
            return false;
        }
        // SAFETY: we set `HELPED` first: no other thread takes the helper, and the destructor
        // cannot run while we hold a handle.
        let helper = self.helper.with_mut(|p| unsafe { (*p).take() });
        match helper {
            Some(helper) => {
                helper(help);
                true
            }
            None => false,
        }
    }

    /// On a final future, blocks until no done-callbacks run with a lent handle (at once when
    /// none do) and returns `true`: the handle count is then free of the lent handle. Returns
    /// `false` at once when the calling thread is the one running the callbacks (a callback
    /// taking its own future would otherwise wait for itself).
    fn wait_lent_handle(&self) -> bool {
        let Some(slow) = self.slow_if_any() else {
            // Nobody ever waited: no callback, no lent handle.
            return true;
        };
        let mut waiters = slow.waiters.lock();
        if waiters.lender == Some(crate::loom::thread::current().id()) {
            return false;
        }
        // `lent` is cleared under this lock (after the lent handle is dropped), with a
        // `notify_all` when anyone sleeps: no wake-up is lost between our check and the wait.
        while waiters.lent {
            waiters.sleepers += 1;
            waiters = slow.finished.wait(waiters);
            waiters.sleepers -= 1;
        }
        true
    }

    /// The FINISHED step: from PENDING or RUNNING, stores `outcome` and notifies. Fails, giving
    /// the outcome back with the state seen, when the future is already final or another
    /// completion is under way (the first outcome is kept).
    fn finish(
        this: &Arc<Self>,
        outcome: Outcome<T, E>,
        defer: Defer<'_, T, E>,
    ) -> Result<(), (Outcome<T, E>, u8)> {
        // Claim the cell: PENDING or RUNNING → COMPLETING, keeping the flag. Acquire, as every
        // load of the state; nothing is published by the claim.
        let mut current = this.state.load(Ordering::Acquire);
        loop {
            match current & PHASE {
                PENDING | RUNNING => {}
                // Another completion claimed the cell: it wins and finishes.
                COMPLETING => return Err((outcome, FINISHED)),
                phase => return Err((outcome, phase)),
            }
            let claimed = (current & !PHASE) | COMPLETING;
            match this.state.compare_exchange_weak(
                current,
                claimed,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        // SAFETY: we claimed the cell: no other completion may write it, and no reader looks
        // at it before FINISHED (module docs).
        this.outcome.with_mut(|p| unsafe { *p = Some(outcome) });
        // COMPLETING → FINISHED, keeping the flag (nobody else moves the state out of
        // COMPLETING). Release: publishes the cell to every reader that loads FINISHED with
        // Acquire. Acquire: the flag read here, and a registration's counted lent handle.
        let before = this
            .state
            .fetch_add(FINISHED - COMPLETING, Ordering::AcqRel);
        if before & WAITERS != 0 {
            Inner::publish(this, defer);
        }
        Ok(())
    }

    /// The CANCELLED step for a task that has not started (`Future::cancel`): from PENDING
    /// only. Fails with the state seen when the future is running or already final.
    fn cancel_pending(this: &Arc<Self>) -> Result<(), u8> {
        Inner::cancel_from(this, |phase| phase == PENDING, None)
    }

    /// The CANCELLED step for a task its executor stopped on request (see
    /// [`Promise::set_cancel_hook`]): from RUNNING, or from PENDING as
    /// [`cancel_pending`](Self::cancel_pending). Fails with the state seen when already final
    /// (or being completed).
    fn cancel_running(this: &Arc<Self>, defer: Defer<'_, T, E>) -> Result<(), u8> {
        Inner::cancel_from(this, |phase| matches!(phase, PENDING | RUNNING), defer)
    }

    /// Moves to CANCELLED, keeping the flag, from a state `from` accepts.
    fn cancel_from(
        this: &Arc<Self>,
        from: impl Fn(u8) -> bool,
        defer: Defer<'_, T, E>,
    ) -> Result<(), u8> {
        let mut current = this.state.load(Ordering::Acquire);
        loop {
            if !from(current & PHASE) {
                return Err(current & PHASE);
            }
            // Release: as every final state (CANCELLED publishes no data: the cell stays
            // empty); Acquire: as every load of the state, and the flag read here.
            match this.state.compare_exchange_weak(
                current,
                (current & !PHASE) | CANCELLED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        if current & WAITERS != 0 {
            Inner::publish(this, defer);
        }
        Ok(())
    }

    /// Notifies the waiters of a future that has just become final and found `WAITERS` set:
    /// takes the waiter list and the cancel hook under the slow part's lock, then, with the lock
    /// released, wakes sleepers in `result()`, pushes `wait`/`as_completed` queues, and runs the
    /// done-callbacks in order with the lent handle, then wakes async wakers — or, with
    /// `defer`, hands the callbacks and the wakers after them to it. `this` is the `Arc` the
    /// callbacks' handle is made from.
    fn publish(this: &Arc<Self>, defer: Defer<'_, T, E>) {
        let slow = this
            .slow_if_any()
            .expect("WAITERS is only set once the slow part exists");
        let mut waiters = slow.waiters.lock();
        let entries = mem::take(&mut waiters.entries);
        let hooks = waiters.cancel.take();
        let sleepers = waiters.sleepers;
        let lent = waiters.lent;
        // Without callbacks there is nothing to hand over.
        let defer = if lent { defer } else { None };
        if lent && defer.is_none() {
            waiters.lender = Some(crate::loom::thread::current().id());
        }
        drop(waiters);
        if sleepers > 0 {
            slow.finished.notify_all();
        }
        let mut callbacks = Vec::new();
        let mut wakers = Vec::new();
        for entry in entries {
            match entry {
                Entry::Queue { queue, token } => queue.push(token),
                // After the callbacks: an `.await` wants the value by value, which it can only
                // take once the callbacks' lent handle is gone.
                Entry::Waker { waker, .. } => wakers.push(waker),
                Entry::Callback(cb) => callbacks.push(cb),
            }
        }
        match defer {
            Some(defer) => defer(DeferredCallbacks {
                parts: Some((this.clone(), callbacks, wakers)),
            }),
            None => {
                if lent {
                    Inner::run_callbacks(this, callbacks, &mut wakers);
                }
                for waker in wakers {
                    waker.wake();
                }
            }
        }
        // Last: the hook's and arbiter's drops are user code, and a panic there must not keep
        // anyone above from being notified.
        drop(hooks);
    }

    /// Runs the done-callbacks of a final future with the lent handle (on the thread that
    /// `Waiters::lender` names), then returns the handle: clears `lent` and collects the
    /// wakers and wakes the blocked takers that found it in the way.
    fn run_callbacks(this: &Arc<Self>, callbacks: Vec<Callback<T, E>>, wakers: &mut Vec<Waker>) {
        let slow = this
            .slow_if_any()
            .expect("callbacks are only registered once the slow part exists");
        // The lent handle was counted when the first callback registered.
        let lent = Future {
            inner: this.clone(),
        };
        for cb in callbacks {
            run_callback(cb, &lent);
        }
        drop(lent);
        // Wakers and blocked takers that found the lent handle in the way (see
        // `Future::poll_take` and `Future::try_into_result`).
        let mut waiters = slow.waiters.lock();
        waiters.lent = false;
        waiters.lender = None;
        for entry in mem::take(&mut waiters.entries) {
            if let Entry::Waker { waker, .. } = entry {
                wakers.push(waker);
            }
        }
        let takers = waiters.sleepers;
        drop(waiters);
        if takers > 0 {
            slow.finished.notify_all();
        }
    }
}

/// The done-callbacks of a future completed by
/// [`Promise::set_outcome_deferring_callbacks`], and the async wakers that come after them:
/// to be run on another thread with [`run`](Self::run). The future is done already (its
/// sleepers are awake); until these have run, a blocking take of its value by value
/// ([`Future::try_into_result`]) waits for them, as for callbacks running anywhere. Dropped
/// unrun, it runs them where it is dropped: no callback is lost.
pub struct DeferredCallbacks<T, E = std::convert::Infallible> {
    /// `None` once run.
    parts: Option<DeferredParts<T, E>>,
}

type DeferredParts<T, E> = (Arc<Inner<T, E>>, Vec<Callback<T, E>>, Vec<Waker>);

impl<T, E> DeferredCallbacks<T, E> {
    /// Runs the callbacks, in the order they were added, on this thread, then wakes the
    /// wakers.
    pub fn run(mut self) {
        self.run_here();
    }

    fn run_here(&mut self) {
        let Some((inner, callbacks, mut wakers)) = self.parts.take() else {
            return;
        };
        if let Some(slow) = inner.slow_if_any() {
            slow.waiters.lock().lender = Some(crate::loom::thread::current().id());
        }
        Inner::run_callbacks(&inner, callbacks, &mut wakers);
        for waker in wakers {
            waker.wake();
        }
    }
}

impl<T, E> Drop for DeferredCallbacks<T, E> {
    fn drop(&mut self) {
        self.run_here();
    }
}

impl<T, E> fmt::Debug for DeferredCallbacks<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredCallbacks").finish_non_exhaustive()
    }
}

impl<T, E> Drop for Inner<T, E> {
    fn drop(&mut self) {
        // Relaxed: we own the last reference (`Arc`'s drop synchronized with every other
        // owner), so the installing store is visible.
        let p = self.slow.load(Ordering::Relaxed);
        if !p.is_null() {
            // SAFETY: installed once from `Box::into_raw` (see `slow`); we are the last owner.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// Runs one done-callback, catching and logging a panic so later callbacks still run.
fn run_callback<T, E>(cb: Callback<T, E>, future: &Future<T, E>) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| cb(future))) {
        let panic = Panic::from_payload(payload);
        log::error!("a done-callback panicked (later callbacks still run): {panic}");
    }
}

/// A handle to the eventual outcome of a task: Python's `concurrent.futures.Future`.
///
/// Cheap to clone (one reference count); every clone sees the same state. `T` is the task's
/// value, `E` its own error type (a task that cannot fail uses the default,
/// [`std::convert::Infallible`]).
///
/// ```
/// use futurepool_core::{Future, FutureError};
///
/// let (future, promise) = Future::<u32, String>::pending();
/// assert!(!future.done());
/// promise.set_result(7).unwrap();
/// assert_eq!(future.result(), Ok(&7));
/// assert_eq!(future.into_result(), Ok(7));
/// ```
pub struct Future<T, E = std::convert::Infallible> {
    inner: Arc<Inner<T, E>>,
}

impl<T, E> Future<T, E> {
    fn from_inner(inner: Arc<Inner<T, E>>) -> Self {
        Future { inner }
    }

    /// A pending future and the promise that completes it (Python: `Future()`, whose completing
    /// methods live on the future itself; here they are on [`Promise`]).
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// assert!(!future.done());
    /// promise.set_result(7).unwrap();
    /// assert_eq!(future.result(), Ok(&7));
    /// ```
    pub fn pending() -> (Future<T, E>, Promise<T, E>) {
        let inner = Arc::new(Inner::new(PENDING, None, 1));
        (Future::from_inner(inner.clone()), Promise { inner })
    }

    /// A pending future and its promise, with a *helper*: what the first interest in the
    /// pending future runs, once. A thread about to block on it without a timeout
    /// ([`result`](Self::result), [`wait`](Self::wait), [`exception`](Self::exception),
    /// [`try_into_result`](Self::try_into_result), [`into_result`](Self::into_result)) runs it
    /// with [`Help::Run`] before it sleeps: the executor may run the task right there, saving
    /// the wake-ups of a hand-off to a thread of its own and back (the process pool sends the
    /// call to an idle worker and reads the reply itself). Any other interest — a timed wait, a
    /// done-callback, `wait`/`as_completed`, `.await`, `done()`/`running()`/`cancelled()`,
    /// `cancel()`, dropping the handles — runs it with [`Help::Start`]: the executor should
    /// make sure the task gets going, without blocking. So an executor may even hold a task
    /// back for a moment, expecting its submitter to wait for it, and still learn of every
    /// other use in time.
    ///
    /// The helper does not run once the future is no longer pending. [`Help::Run`] is not
    /// given while a done-callback is registered (it would run on the waiting thread, which
    /// may hold a lock the callback takes: the helper gets [`Help::Start`] instead); a helper
    /// that completes the future should do so with
    /// [`Promise::set_outcome_deferring_callbacks`], so that a callback registered while it ran
    /// does not run on the waiting thread either. After the helper returns, the waiter waits
    /// as usual.
    ///
    /// ```
    /// use futurepool_core::{Future, Help, Promise};
    /// use std::sync::{Arc, Mutex};
    ///
    /// // A queue of tasks that a waiter may run itself if no worker has taken its task yet.
    /// let queue: Arc<Mutex<Vec<(u32, Promise<u32>)>>> = Default::default();
    /// let q = queue.clone();
    /// let (future, promise) = Future::<u32>::pending_with_helper(move |help| {
    ///     assert_eq!(help, Help::Run);
    ///     let job = q.lock().unwrap().pop();
    ///     if let Some((x, promise)) = job {
    ///         if promise.set_running_or_notify_cancel() == Ok(true) {
    ///             let _ = promise.set_outcome_deferring_callbacks(Ok(x * 2), |later| {
    ///                 std::thread::spawn(move || later.run());
    ///             });
    ///         }
    ///     }
    /// });
    /// queue.lock().unwrap().push((21, promise));
    /// assert_eq!(future.result(), Ok(&42)); // run by this thread, in `result`
    /// ```
    pub fn pending_with_helper<H>(helper: H) -> (Future<T, E>, Promise<T, E>)
    where
        H: FnOnce(Help) + Send + 'static,
    {
        let inner = Inner::new(PENDING | HELPER, None, 1);
        inner.helper.with_mut(|p| {
            // SAFETY: the future is not shared yet: nothing else can reach the cell.
            unsafe { *p = Some(Box::new(helper)) }
        });
        let inner = Arc::new(inner);
        (Future::from_inner(inner.clone()), Promise { inner })
    }

    /// A pending future and the task that completes it, in one allocation: `body` lives in the
    /// future's own memory (up to four words inline), and the returned [`TaskRef`] is what an
    /// executor queues. Running the `TaskRef` runs `body` the way [`Promise::run`] does;
    /// dropping it unrun fails the future ([`FutureError::Broken`]), as dropping the last
    /// promise does.
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, task) = Future::<u32, String>::with_task(|| Ok(6 * 7));
    /// let worker = std::thread::spawn(move || task.run(&mut || {}));
    /// assert_eq!(future.result(), Ok(&42));
    /// assert!(worker.join().unwrap());
    /// ```
    pub fn with_task<F>(body: F) -> (Future<T, E>, TaskRef)
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let inner = Arc::new(Inner::with_body(PENDING, None, 1, Body::new(body)));
        let future = Future::from_inner(inner.clone());
        (future, TaskRef::new(inner))
    }

    /// A future that is already finished with `value`.
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let future = Future::<&str>::ready("done");
    /// assert!(future.done());
    /// assert_eq!(future.result(), Ok(&"done"));
    /// ```
    pub fn ready(value: T) -> Future<T, E> {
        Future::from_inner(Arc::new(Inner::new(FINISHED, Some(Ok(value)), 0)))
    }

    /// A future that is already finished with `error` (a [`FutureError::Cancelled`] makes a
    /// cancelled future).
    ///
    /// ```
    /// use futurepool_core::{Future, FutureError};
    ///
    /// let future = Future::<u32, String>::failed(FutureError::Raised("no".to_string()));
    /// assert!(future.raised());
    /// assert_eq!(future.result(), Err(FutureError::Raised(&"no".to_string())));
    /// ```
    pub fn failed(error: FutureError<E>) -> Future<T, E> {
        match error {
            FutureError::Cancelled => Future::from_inner(Arc::new(Inner::new(CANCELLED, None, 0))),
            error => Future::from_inner(Arc::new(Inner::new(FINISHED, Some(Err(error)), 0))),
        }
    }

    /// Attempts to cancel: `true` if the future is now cancelled (it was pending, or already
    /// cancelled), `false` if it is running or finished. Waiters and callbacks are notified at
    /// once — unlike CPython, a cancelled future counts as done for [`wait`](crate::wait) and
    /// [`as_completed`](crate::as_completed) immediately (gh-92001, gh-109934).
    ///
    /// A running task cannot be cancelled — unless its executor installed a cancel hook
    /// ([`Promise::set_cancel_hook`], the process pool's opt-in `cancel_kills_running`): then
    /// `cancel` runs the hook, which asks the executor to stop the task, and returns `true`. The
    /// future becomes cancelled once the executor has stopped it — unless the task finished in
    /// the meantime, in which case its outcome stands (the first outcome always wins).
    ///
    /// ```
    /// use futurepool_core::{Future, FutureError};
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// assert!(future.cancel()); // still pending: cancelled
    /// assert!(future.cancelled() && future.done());
    /// assert_eq!(future.result(), Err(FutureError::Cancelled));
    /// assert_eq!(promise.set_running_or_notify_cancel(), Ok(false)); // the executor skips it
    /// ```
    pub fn cancel(&self) -> bool {
        let cancelled = self.cancel_once();
        // Still pending (an executor's arbiter could not tell): the task should get going. A
        // held task that was cancelled stays where it is, and never starts.
        self.inner.notice();
        cancelled
    }

    fn cancel_once(&self) -> bool {
        loop {
            match self.inner.state() {
                CANCELLED => return true,
                // Finished, or being completed.
                FINISHED | COMPLETING => return false,
                RUNNING => {
                    let hook = {
                        // A hook lives in the slow part: none, no hook.
                        let Some(slow) = self.inner.slow_if_any() else {
                            return false;
                        };
                        let mut waiters = slow.waiters.lock();
                        if self.inner.state() != RUNNING {
                            return self.cancelled();
                        }
                        waiters.cancel.as_mut().and_then(|c| c.hook.take())
                    };
                    return match hook {
                        Some(hook) => {
                            hook();
                            true
                        }
                        None => false,
                    };
                }
                _ => {}
            }
            // PENDING: an executor whose task may be starting where we cannot see (a remote
            // queue) decides first.
            // An arbiter lives in the slow part: none, no arbiter.
            let arbiter = self.inner.slow_if_any().and_then(|slow| {
                (slow.waiters.lock().cancel.as_ref()).and_then(|c| c.arbiter.clone())
            });
            if let Some(arbiter) = arbiter {
                if !arbiter() {
                    // Started, or the executor cannot tell: not cancelled as pending.
                    match self.inner.state() {
                        RUNNING => continue,
                        CANCELLED => return true,
                        _ => return false,
                    }
                }
            }
            match Inner::cancel_pending(&self.inner) {
                Ok(()) => return true,
                // A worker started the task between our look and our cancel: cancel it as a
                // running task (its cancel hook, if it has one, was installed while pending).
                Err(RUNNING) => continue,
                Err(state) => return state == CANCELLED,
            }
        }
    }

    /// `true` if the future was cancelled.
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, _promise) = Future::<u32>::pending();
    /// assert!(!future.cancelled());
    /// future.cancel();
    /// assert!(future.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.inner.notice();
        self.inner.state() == CANCELLED
    }

    /// `true` if a worker is running the task right now.
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// assert!(!future.running());
    /// assert_eq!(promise.set_running_or_notify_cancel(), Ok(true));
    /// assert!(future.running());
    /// assert!(!future.cancel()); // a running task is not cancelled
    /// promise.set_result(1).unwrap();
    /// assert!(!future.running() && future.done());
    /// ```
    pub fn running(&self) -> bool {
        self.inner.notice();
        matches!(self.inner.state(), RUNNING | COMPLETING)
    }

    /// `true` if the future is finished or cancelled.
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// assert!(!future.done());
    /// promise.set_result(1).unwrap();
    /// assert!(future.done());
    /// ```
    pub fn done(&self) -> bool {
        self.inner.notice();
        is_final(self.inner.state())
    }

    /// `true` if the future finished with an error that counts as raised (see
    /// [`FutureError::is_raised`]); `false` while it is not done.
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<u32, &str>::pending();
    /// promise.set_exception("bad input").unwrap();
    /// assert!(future.raised());
    /// assert!(!Future::<u32, &str>::ready(1).raised());
    /// ```
    pub fn raised(&self) -> bool {
        self.inner.notice();
        self.inner.state() == FINISHED && matches!(self.inner.outcome(), Err(e) if e.is_raised())
    }

    /// Blocks until the future is done and returns its value by reference — as often as you
    /// like, from any clone.
    ///
    /// ```
    /// use futurepool_core::{Future, FutureError};
    ///
    /// let (future, promise) = Future::<u32, &str>::pending();
    /// std::thread::spawn(move || promise.set_result(5));
    /// assert_eq!(future.result(), Ok(&5)); // blocks until done
    /// assert_eq!(future.clone().result(), Ok(&5)); // as often as you like
    ///
    /// let failing = Future::<u32, &str>::failed(FutureError::Raised("oops"));
    /// assert_eq!(failing.result(), Err(FutureError::Raised(&"oops")));
    /// ```
    pub fn result(&self) -> Result<&T, FutureError<&E>> {
        self.result_deadline_opt(None)
    }

    /// Like [`result`](Self::result), but gives up after `timeout` with
    /// [`FutureError::TimedOut`]; a zero timeout only looks. The task is not affected.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futurepool_core::{Future, FutureError};
    ///
    /// let (future, _promise) = Future::<u32>::pending();
    /// assert_eq!(future.result_timeout(Duration::ZERO), Err(FutureError::TimedOut)); // only looks
    /// assert_eq!(
    ///     future.result_timeout(Duration::from_millis(10)),
    ///     Err(FutureError::TimedOut)
    /// );
    /// ```
    pub fn result_timeout(&self, timeout: Duration) -> Result<&T, FutureError<&E>> {
        self.result_deadline_opt(crate::time::deadline(Some(timeout)))
    }

    /// Like [`result`](Self::result), but gives up at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use futurepool_core::{Future, FutureError};
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert_eq!(future.result_deadline(deadline), Err(FutureError::TimedOut));
    /// promise.set_result(3).unwrap();
    /// assert_eq!(future.result_deadline(deadline), Ok(&3)); // done: no wait
    /// ```
    pub fn result_deadline(&self, deadline: Instant) -> Result<&T, FutureError<&E>> {
        self.result_deadline_opt(Some(deadline))
    }

    fn result_deadline_opt(&self, deadline: Option<Instant>) -> Result<&T, FutureError<&E>> {
        match self.inner.wait_final(deadline) {
            FINISHED => match self.inner.outcome() {
                Ok(value) => Ok(value),
                Err(error) => Err(error.as_ref()),
            },
            CANCELLED => Err(FutureError::Cancelled),
            _ => Err(FutureError::TimedOut),
        }
    }

    /// Blocks until done; `None` if the future has a value, otherwise its error (Python's
    /// `exception()`, where cancellation raises instead: here it is `Some(Cancelled)`).
    ///
    /// ```
    /// use futurepool_core::{Future, FutureError};
    ///
    /// let (future, promise) = Future::<u32, &str>::pending();
    /// promise.set_exception("disk full").unwrap();
    /// assert_eq!(future.exception(), Some(FutureError::Raised(&"disk full")));
    /// assert_eq!(Future::<u32, &str>::ready(1).exception(), None);
    /// ```
    pub fn exception(&self) -> Option<FutureError<&E>> {
        self.result().err()
    }

    /// Like [`exception`](Self::exception), with a timeout: `Some(TimedOut)` when it runs out.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futurepool_core::{Future, FutureError};
    ///
    /// let (future, _promise) = Future::<u32>::pending();
    /// assert_eq!(
    ///     future.exception_timeout(Duration::from_millis(10)),
    ///     Some(FutureError::TimedOut)
    /// );
    /// ```
    pub fn exception_timeout(&self, timeout: Duration) -> Option<FutureError<&E>> {
        self.result_timeout(timeout).err()
    }

    /// Blocks until the future is done (Python: `wait([f])`).
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// let worker = std::thread::spawn(move || promise.set_result(1));
    /// future.wait();
    /// assert!(future.done());
    /// worker.join().unwrap().unwrap();
    /// ```
    pub fn wait(&self) {
        self.inner.wait_final(None);
    }

    /// Blocks until the future is done or `timeout` passes; `true` if it is done.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// assert!(!future.wait_timeout(Duration::from_millis(10)));
    /// promise.set_result(1).unwrap();
    /// assert!(future.wait_timeout(Duration::from_millis(10)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        is_final(self.inner.wait_final(crate::time::deadline(Some(timeout))))
    }

    /// Attaches a callback that runs exactly once, with this future, when it is done: in the
    /// thread that completes or cancels it, outside any lock, in the order callbacks were added —
    /// or at once, in this thread, if the future is already done (Python's
    /// `add_done_callback`). A panicking callback is caught and logged (`log::error!`); later
    /// callbacks still run.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// let (tx, rx) = mpsc::channel();
    /// future.add_done_callback(move |f| tx.send(*f.result().unwrap()).unwrap());
    /// promise.set_result(9).unwrap(); // the callback runs here, on the completing thread
    /// assert_eq!(rx.recv(), Ok(9));
    /// ```
    pub fn add_done_callback<F>(&self, callback: F)
    where
        F: FnOnce(&Future<T, E>) + Send + 'static,
        // The callback may run on the completing thread with a handle of its own, while other
        // threads hold handles too: the values must be shareable (see `Promise`'s `Send`).
        T: Send + Sync,
        E: Send + Sync,
    {
        if !self.done() {
            // (`done` noticed the interest: the task gets going.)
            let slow = self.inner.slow();
            let mut waiters = slow.waiters.lock();
            // The lent handle is counted before `WAITERS` is set (Release), so a completion
            // after it publishes the count with the final state (see `try_into_result`).
            let counted = !waiters.lent;
            if counted {
                // Relaxed: published by the Release of the `fetch_or` below.
                self.inner.handles.fetch_add(1, Ordering::Relaxed);
            }
            // AcqRel: see `lock_to_register`.
            let phase = self.inner.state.fetch_or(WAITERS, Ordering::AcqRel) & PHASE;
            if !is_final(phase) {
                waiters.lent = true;
                waiters.entries.push(Entry::Callback(Box::new(callback)));
                return;
            }
            if counted {
                // Done already: no lent handle. A taker that saw it counted waits for this
                // lock (`wait_lent_handle`) and looks again.
                self.inner.handles.fetch_sub(1, Ordering::Release);
            }
        }
        run_callback(Box::new(callback), self);
    }

    /// Waits, then takes the outcome by value if this is the last handle to the future; otherwise
    /// gives the handle back. A handle lent to done-callbacks that are still running (on
    /// another thread) does not count: this waits for them to finish. Called from a
    /// done-callback of this same future, that lent handle does count (the callback holds it),
    /// and the handle is given back.
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<Vec<u8>>::pending();
    /// promise.set_result(vec![1, 2]).unwrap();
    /// let other = future.clone();
    /// let future = future.try_into_result().unwrap_err(); // another handle is alive: given back
    /// drop(other);
    /// assert_eq!(future.try_into_result().unwrap(), Ok(vec![1, 2])); // moved out, no clone
    /// ```
    pub fn try_into_result(self) -> Result<Outcome<T, E>, Future<T, E>> {
        self.inner.wait_final(None);
        let this = match self.take_final() {
            Ok(outcome) => return Ok(outcome),
            Err(this) => this,
        };
        if !this.inner.wait_lent_handle() {
            return Err(this);
        }
        // The callbacks are done and their handle dropped before the lender was cleared under
        // the lock `wait_lent_handle` took (or they never ran), so one more look is final.
        this.take_final()
    }

    /// Takes the outcome of a final future by value if this is the last handle, without
    /// waiting for anything.
    fn take_final(self) -> Result<Outcome<T, E>, Future<T, E>> {
        match self.inner.state() {
            CANCELLED => return Ok(Err(FutureError::Cancelled)),
            FINISHED => {}
            _ => unreachable!("take_final on a future that is not final"),
        }
        // Acquire: pairs with the Release decrement in `Drop for Future`, so every other
        // handle's reads of the cell happen before our move.
        if self.inner.handles.load(Ordering::Acquire) != 1 {
            return Err(self);
        }
        // SAFETY: the state is FINISHED (written, never to be written again), and we hold the
        // only `Future` handle; promises never read the cell, and new handles can only be made
        // from ours. So no reference into the cell exists or can be made.
        let outcome = self.inner.outcome.with_mut(|p| unsafe { (*p).take() });
        Ok(outcome.expect("a finished future has an outcome until its last handle takes it"))
    }

    /// Waits, then returns the outcome by value: moved out if this is the last handle, cloned
    /// otherwise (like `Arc::unwrap_or_clone`).
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<String>::pending();
    /// promise.set_result("owned".to_string()).unwrap();
    /// let value: String = future.into_result().unwrap();
    /// assert_eq!(value, "owned");
    /// ```
    pub fn into_result(self) -> Outcome<T, E>
    where
        T: Clone,
        E: Clone,
    {
        match self.try_into_result() {
            Ok(outcome) => outcome,
            Err(shared) => shared.result().cloned().map_err(FutureError::cloned),
        }
    }

    /// A type-erased handle to this future, for [`wait`](crate::wait) and
    /// [`as_completed`](crate::as_completed) over futures of different types.
    ///
    /// ```
    /// use futurepool_core::{wait, Future, ReturnWhen};
    ///
    /// let (number, p1) = Future::<u32>::pending();
    /// let (text, p2) = Future::<String>::pending();
    /// p1.set_result(1).unwrap();
    /// p2.set_result("two".into()).unwrap();
    /// let all = [number.erase(), text.erase()];
    /// let waited = wait(&all, None, ReturnWhen::AllCompleted);
    /// assert_eq!(waited.done.len(), 2);
    /// assert!(all[1].downcast_ref::<String, std::convert::Infallible>().is_some());
    /// ```
    pub fn erase(&self) -> crate::AnyFuture
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        crate::AnyFuture::new(self.clone())
    }

    /// An identity for this future, equal for all its clones.
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }

    /// Adds a queue entry; `false` if the future is already done (nothing was added).
    pub(crate) fn register(&self, queue: &Arc<Queue>, token: usize) -> bool {
        if self.done() {
            return false;
        }
        let Ok(mut waiters) = self.inner.lock_to_register() else {
            return false;
        };
        waiters.entries.push(Entry::Queue {
            queue: queue.clone(),
            token,
        });
        true
    }

    pub(crate) fn unregister(&self, queue: &Arc<Queue>, token: usize) {
        if !self.done() {
            if let Some(slow) = self.inner.slow_if_any() {
                slow.waiters.lock().remove_queue(queue, token);
            }
        }
    }

    /// The async bridge's registration: `Ready` when done, otherwise the waker is stored under
    /// `key` (replacing an earlier one).
    pub(crate) fn poll_done(&self, key: &mut Option<u32>, waker: &std::task::Waker) -> bool {
        if self.done() {
            return true;
        }
        let Ok(mut waiters) = self.inner.lock_to_register() else {
            return true;
        };
        let replaced = waiters.set_waker(key, waker);
        // A waker's drop is user code: never under the lock.
        drop(waiters);
        drop(replaced);
        false
    }

    /// The by-value `.await`'s step once the future is done: takes the outcome if this is the
    /// last handle. While done-callbacks still run with a lent handle, registers `waker` to be
    /// woken when they are finished and gives the handle back (`Err(Ok(self))`); a handle kept
    /// elsewhere gives `Err(Err(self))`.
    #[allow(clippy::type_complexity)]
    pub(crate) fn poll_take(
        self,
        key: &mut Option<u32>,
        waker: &std::task::Waker,
    ) -> Result<Outcome<T, E>, Result<Self, Self>> {
        let this = match self.take_final() {
            Ok(outcome) => return Ok(outcome),
            Err(this) => this,
        };
        let Some(slow) = this.inner.slow_if_any() else {
            // Nobody ever waited: no callbacks, so another handle is kept elsewhere.
            return Err(Err(this));
        };
        let (lending, replaced) = {
            let mut waiters = slow.waiters.lock();
            if waiters.lent && waiters.lender == Some(crate::loom::thread::current().id()) {
                // Awaited inside one of its own done-callbacks: the lent handle goes away only
                // once this callback returns, so waiting for it would never end.
                drop(waiters);
                return Err(Err(this));
            }
            let lending = waiters.lent;
            let replaced = if lending {
                waiters.set_waker(key, waker)
            } else {
                None
            };
            (lending, replaced)
        };
        // A waker's drop is user code: never under the lock.
        drop(replaced);
        if lending {
            return Err(Ok(this));
        }
        // The callbacks are done and their handle dropped before `lent` was cleared under the
        // lock we just took (or none ever registered), so one more look is final.
        this.take_final().map_err(Err)
    }

    pub(crate) fn forget_waker(&self, key: u32) {
        // Also once done: a waker may wait for the callbacks' lent handle (`poll_take`).
        if let Some(slow) = self.inner.slow_if_any() {
            slow.waiters.lock().remove_waker(key);
        }
    }

    #[cfg(all(test, not(futurepool_loom)))]
    pub(crate) fn entry_count(&self) -> usize {
        self.inner
            .slow_if_any()
            .map_or(0, |slow| slow.waiters.lock().entries.len())
    }
}

/// Identity, as in Python: two handles are equal when they are clones of the same future.
impl<T, E> PartialEq for Future<T, E> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<T, E> Eq for Future<T, E> {}

/// Hashes the identity, so futures can go in a `HashSet` as in Python.
impl<T, E> std::hash::Hash for Future<T, E> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

impl<T, E> Clone for Future<T, E> {
    fn clone(&self) -> Self {
        // Relaxed, as `Arc::clone`: made from a live handle, so the count cannot reach one
        // (the move-out condition) because of this clone's absence; `try_into_result` reads it
        // with Acquire against the Release of `drop`.
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        Future::from_inner(self.inner.clone())
    }
}

impl<T, E> Drop for Future<T, E> {
    fn drop(&mut self) {
        // Nobody may look at it again: the task gets going (it runs whether or not anyone
        // waits, as with every executor).
        self.inner.notice();
        // Release: our reads of the outcome happen before a later move-out (see
        // `try_into_result`).
        self.inner.handles.fetch_sub(1, Ordering::Release);
    }
}

impl<T, E> fmt::Debug for Future<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state();
        let mut d = f.debug_struct("Future");
        d.field("state", &state_name(state));
        if state == FINISHED {
            d.field("ok", &self.inner.outcome().is_ok());
        }
        d.finish_non_exhaustive()
    }
}

/// The completing side of a [`Future`]: what an executor (or a test) uses to move it along.
/// Python keeps these methods on the future itself; splitting them out means a waiter cannot
/// complete a future by mistake, and lets the last promise to go away fail a future nobody will
/// complete instead of leaving it pending forever.
///
/// Cloneable: every clone completes the same future, and the first completion wins.
///
/// ```
/// use futurepool_core::{Future, FutureError};
///
/// let (future, promise) = Future::<String, String>::pending();
/// assert_eq!(promise.set_running_or_notify_cancel(), Ok(true)); // a worker takes it
/// assert!(!future.cancel(), "running: too late to cancel");
/// promise.set_result("done".into()).unwrap();
/// let again = promise.set_exception("late".into()).unwrap_err();
/// assert_eq!(again.into_inner(), "late"); // a second completion is refused, value given back
/// assert_eq!(future.result(), Ok(&"done".to_string()));
///
/// // A promise dropped without completing fails its future instead of leaving it pending.
/// let (future, promise) = Future::<u8>::pending();
/// drop(promise);
/// assert!(matches!(future.result(), Err(FutureError::Broken(_))));
/// ```
pub struct Promise<T, E = std::convert::Infallible> {
    inner: Arc<Inner<T, E>>,
}

impl<T, E> Promise<T, E> {
    /// Python's `set_running_or_notify_cancel`: `Ok(true)` if the future moved from pending to
    /// running (run the task), `Ok(false)` if it was cancelled (skip it; its waiters have already
    /// been notified), and an error if it is already running or finished.
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// future.cancel();
    /// // An executor asks before it runs the task: `false` means cancelled, skip it.
    /// assert_eq!(promise.set_running_or_notify_cancel(), Ok(false));
    /// ```
    pub fn set_running_or_notify_cancel(&self) -> Result<bool, InvalidStateError<()>> {
        // A CAS (in a loop, keeping the flag a waiter may set meanwhile): `cancel_pending`
        // may move PENDING to CANCELLED at any time. RUNNING publishes no data (Relaxed would
        // do on success); Acquire on both sides keeps every load of the state Acquire, and
        // the failure's FINISHED is then safe to act on.
        let mut current = self.inner.state.load(Ordering::Acquire);
        loop {
            match current & PHASE {
                PENDING => {}
                CANCELLED => return Ok(false),
                phase => return Err(InvalidStateError::new((), state_name(phase))),
            }
            match self.inner.state.compare_exchange_weak(
                current,
                (current & !PHASE) | RUNNING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(true),
                Err(seen) => current = seen,
            }
        }
    }

    /// Finishes the future with `value` (Python's `set_result`). A second completion is refused
    /// and `value` is given back; the first outcome is kept.
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// promise.set_result(1).unwrap();
    /// let rejected = promise.set_result(2).unwrap_err(); // the first outcome stays
    /// assert_eq!(rejected.into_inner(), 2);
    /// assert_eq!(future.result(), Ok(&1));
    /// ```
    pub fn set_result(&self, value: T) -> Result<(), InvalidStateError<T>> {
        self.set_outcome(Ok(value)).map_err(|e| {
            let state = e.state();
            match e.into_inner() {
                Ok(value) => InvalidStateError::new(value, state),
                Err(_) => unreachable!("the rejected outcome is the one passed in"),
            }
        })
    }

    /// Finishes the future with the task's own error (Python's `set_exception`).
    ///
    /// ```
    /// use futurepool_core::{Future, FutureError};
    ///
    /// let (future, promise) = Future::<u32, String>::pending();
    /// promise.set_exception("no route".to_string()).unwrap();
    /// assert_eq!(future.result(), Err(FutureError::Raised(&"no route".to_string())));
    /// ```
    pub fn set_exception(&self, error: E) -> Result<(), InvalidStateError<E>> {
        self.set_outcome(Err(FutureError::Raised(error)))
            .map_err(|e| {
                let state = e.state();
                match e.into_inner() {
                    Err(FutureError::Raised(error)) => InvalidStateError::new(error, state),
                    _ => unreachable!("the rejected outcome is the one passed in"),
                }
            })
    }

    /// Finishes the future with any outcome: a value, the task's error, a panic, a broken
    /// executor… `Err(FutureError::Cancelled)` cancels the future if it is pending — or running:
    /// the executor stopped the task (see [`set_cancel_hook`](Self::set_cancel_hook)).
    ///
    /// ```
    /// use futurepool_core::{Future, FutureError};
    ///
    /// let (future, promise) = Future::<u32, String>::pending();
    /// promise.set_outcome(Err(FutureError::Broken("worker gone".into()))).unwrap();
    /// assert!(matches!(future.result(), Err(FutureError::Broken(_))));
    /// ```
    pub fn set_outcome(
        &self,
        outcome: Outcome<T, E>,
    ) -> Result<(), InvalidStateError<Outcome<T, E>>> {
        self.complete(outcome, None)
    }

    /// Like [`set_outcome`](Self::set_outcome), but done-callbacks registered on the future are
    /// not run here: if there are any, `defer` gets them ([`DeferredCallbacks`]) to run on
    /// another thread. For a completion made on a thread that must not run user code — a
    /// waiter's, in a helper ([`Future::pending_with_helper`]), which may hold a lock a
    /// callback takes. Waiters blocked in `result()` and `wait`/`as_completed` queues are
    /// notified here, as always; `defer` is not called when there are no callbacks.
    pub fn set_outcome_deferring_callbacks(
        &self,
        outcome: Outcome<T, E>,
        mut defer: impl FnMut(DeferredCallbacks<T, E>),
    ) -> Result<(), InvalidStateError<Outcome<T, E>>> {
        self.complete(outcome, Some(&mut defer))
    }

    fn complete(
        &self,
        outcome: Outcome<T, E>,
        defer: Defer<'_, T, E>,
    ) -> Result<(), InvalidStateError<Outcome<T, E>>> {
        match outcome {
            Err(FutureError::Cancelled) => {
                Inner::cancel_running(&self.inner, defer).map_err(|state| {
                    InvalidStateError::new(Err(FutureError::Cancelled), state_name(state))
                })
            }
            outcome => Inner::finish(&self.inner, outcome, defer)
                .map_err(|(rejected, state)| InvalidStateError::new(rejected, state_name(state))),
        }
    }

    /// Runs `task` for this future, the way a worker does: marks it running (or skips it if
    /// it was cancelled), runs the task catching a panic, and stores the outcome. Returns `false`
    /// if the task did not run.
    ///
    /// ```
    /// use futurepool_core::{Future, FutureError};
    ///
    /// let (future, promise) = Future::<u32, String>::pending();
    /// let worker = std::thread::spawn(move || promise.run(|| "42".parse().map_err(|_| "nan".into())));
    /// assert_eq!(future.result(), Ok(&42));
    /// assert!(worker.join().unwrap(), "the task ran");
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// assert!(future.cancel());
    /// assert!(!promise.run(|| unreachable!("a cancelled task is skipped")));
    /// assert_eq!(future.result(), Err(FutureError::Cancelled));
    /// ```
    pub fn run<F>(&self, task: F) -> bool
    where
        F: FnOnce() -> Result<T, E>,
    {
        self.run_calling_before_completion(task, || {})
    }

    /// Like [`run`](Self::run), and calls `before_completion` after the task returned (or
    /// panicked) and before its outcome is stored, so that whoever sees the future done also
    /// sees what `before_completion` did. The thread pool's workers count themselves idle
    /// there: after a `result()` returns, the next `submit` reuses that worker instead of
    /// starting a thread. `before_completion` is not called if the task did not run.
    pub fn run_calling_before_completion<F, G>(&self, task: F, before_completion: G) -> bool
    where
        F: FnOnce() -> Result<T, E>,
        G: FnOnce(),
    {
        match self.set_running_or_notify_cancel() {
            Ok(true) => {}
            Ok(false) | Err(_) => return false,
        }
        let outcome = match panic::catch_unwind(AssertUnwindSafe(task)) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(FutureError::Raised(error)),
            Err(payload) => Err(FutureError::Panicked(Panic::from_payload(payload))),
        };
        before_completion();
        // The future is RUNNING and only completions can end it; another promise clone may have
        // completed it meanwhile, in which case its outcome is kept and ours dropped.
        let _ = self.set_outcome(outcome);
        true
    }

    /// Installs what [`Future::cancel`] runs on this future while it is RUNNING: the
    /// executor's way to stop a running task on request (the process pool kills its worker).
    /// The hook must make the executor complete the future, normally with
    /// `set_outcome(Err(Cancelled))`. Install it while the future is still pending (before
    /// `set_running_or_notify_cancel`) so that there is no moment at which the task runs but
    /// cannot be cancelled; a pending future is cancelled as usual and the hook is not run.
    /// Returns `false` (and drops the hook) if the future is already done. The hook is dropped
    /// when the future completes.
    pub fn set_cancel_hook<H>(&self, hook: H) -> bool
    where
        H: FnOnce() + Send + 'static,
    {
        let mut waiters = match self.inner.lock_to_register() {
            Ok(waiters) => waiters,
            Err(_) => return false,
        };
        if self.inner.state() == COMPLETING {
            // Being completed: done in a moment, and the hook would never run.
            return false;
        }
        let replaced = waiters
            .cancel
            .get_or_insert_with(Box::default)
            .hook
            .replace(Box::new(hook));
        // A replaced hook's drop is user code: not under the lock.
        drop(waiters);
        drop(replaced);
        true
    }

    /// Installs what [`Future::cancel`] asks before it cancels this future while it is
    /// pending: the executor's arbiter, for tasks that may be starting where `cancel` cannot
    /// see (a remote queue, where an agent may take the task this instant). The arbiter
    /// returns `true` if the task will never run (the future is then cancelled) and `false` if
    /// it has started or the executor cannot tell; then the executor should have marked the
    /// future running ([`set_running_or_notify_cancel`](Self::set_running_or_notify_cancel)),
    /// and `cancel` treats it as a running future (running its cancel hook, if any), or returns
    /// `false` if it is still pending. The arbiter is called without any lock held, once per
    /// `cancel` call made while pending, and dropped when the future completes. Returns
    /// `false` (and drops it) if the future is no longer pending.
    pub fn set_cancel_arbiter<A>(&self, arbiter: A) -> bool
    where
        A: Fn() -> bool + Send + Sync + 'static,
    {
        let mut waiters = match self.inner.lock_to_register() {
            Ok(waiters) => waiters,
            Err(_) => return false,
        };
        if self.inner.state() != PENDING {
            return false;
        }
        let replaced = waiters
            .cancel
            .get_or_insert_with(Box::default)
            .arbiter
            .replace(std::sync::Arc::new(arbiter));
        // A replaced arbiter's drop is user code: not under the lock.
        drop(waiters);
        drop(replaced);
        true
    }

    /// `true` if the future was cancelled (a worker can skip work nobody waits for); the same
    /// question as [`Future::cancelled`].
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (future, promise) = Future::<u32>::pending();
    /// future.cancel();
    /// assert!(promise.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.inner.state() == CANCELLED
    }

    /// `true` if the future is finished or cancelled; the same question as [`Future::done`].
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// let (_future, promise) = Future::<u32>::pending();
    /// assert!(!promise.done());
    /// promise.set_result(1).unwrap();
    /// assert!(promise.done());
    /// ```
    pub fn done(&self) -> bool {
        is_final(self.inner.state())
    }
}

// SAFETY: a promise only ever moves values *into* the future (`set_result`, `set_outcome`, `run`;
// a refused value is handed back to the same caller) and never lends out `&T` or `&E`: it does not
// read the outcome cell (see the module docs). What a promise's thread may do with the values is
// therefore: write them into the cell (`T: Send`, `E: Send`), and drop them with the last handle
// (`Send` again). The one place a completion reads them is a done-callback, run on the
// completing thread with a lent handle — and `add_done_callback` requires `T: Sync, E: Sync`.
// So a task whose error is `Send` but not `Sync` (`Box<dyn Error + Send>`) can be completed on
// another thread; its `Future` stays `!Send` (it needs `Sync` values to be shared).
unsafe impl<T: Send, E: Send> Send for Promise<T, E> {}
// SAFETY: as for `Send`: every `&Promise` method moves values in or reads only the state.
unsafe impl<T: Send, E: Send> Sync for Promise<T, E> {}

impl<T, E> Clone for Promise<T, E> {
    fn clone(&self) -> Self {
        // Relaxed, as `Arc::clone`: a new promise is made from a live one, so the count cannot
        // reach zero meanwhile; nothing is published by counting.
        self.inner.promises.fetch_add(1, Ordering::Relaxed);
        Promise {
            inner: self.inner.clone(),
        }
    }
}

impl<T, E> Drop for Promise<T, E> {
    fn drop(&mut self) {
        // AcqRel, as `Arc`'s drop: the last promise to go must see everything the other
        // promises did before they went (Acquire), and its own work must be seen by whoever
        // drops after it (Release).
        if self.inner.promises.fetch_sub(1, Ordering::AcqRel) == 1 && !self.done() {
            // Nobody can complete the future any more: fail it rather than leave its waiters
            // hanging (a queue dropped with tasks in it, a task closure dropped unrun).
            let _ = Inner::finish(
                &self.inner,
                Err(FutureError::Broken(
                    "the task was dropped before it completed its future".into(),
                )),
                None,
            );
        }
    }
}

impl<T, E> fmt::Debug for Promise<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise")
            .field("state", &state_name(self.inner.state()))
            .finish_non_exhaustive()
    }
}

// What the types promise to other threads, checked at compile time: a future, its promise and the
// errors cross threads and are shared between them whenever their values can be.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Future<Vec<u8>, String>>();
    send_sync::<Promise<Vec<u8>, String>>();
    send_sync::<crate::AnyFuture>();
    send_sync::<FutureError<String>>();
    send_sync::<crate::SubmitError>();
    send_sync::<crate::TimeoutError>();
    send_sync::<crate::OptionsError>();
    send_sync::<InvalidStateError<String>>();
    send_sync::<Panic>();
};

/// A queued run of a closure and the future it completes, made by [`Future::with_task`]: what
/// an executor's queue holds. One allocation with the future (the closure lives in it).
///
/// Run it once ([`run`](Self::run)), or cancel or fail it; dropping it unrun fails the future
/// with [`FutureError::Broken`].
pub struct TaskRef {
    /// `None` once run, cancelled or failed.
    #[cfg(not(futurepool_loom))]
    cell: Option<Arc<dyn RunCell>>,
    /// loom's `Arc` cannot be unsized: under the model checker a task is a boxed promise (the
    /// protocol is the same, only the memory layout differs).
    #[cfg(futurepool_loom)]
    cell: Option<Box<dyn RunCell>>,
}

/// What a [`TaskRef`] can do with the future and closure it points to, erased over their types.
trait RunCell {
    fn run(self: Cell<Self>, before_completion: &mut dyn FnMut()) -> bool;
    fn cancel(self: Cell<Self>);
    fn fail(self: Cell<Self>, why: std::sync::Arc<str>);
}

#[cfg(not(futurepool_loom))]
type Cell<S> = Arc<S>;
#[cfg(futurepool_loom)]
type Cell<S> = Box<S>;

/// Under loom, the task is its promise, boxed.
#[cfg(futurepool_loom)]
struct LoomCell<T, E>(Promise<T, E>);

impl TaskRef {
    fn new<T: Send + 'static, E: Send + 'static>(inner: Arc<Inner<T, E>>) -> TaskRef {
        #[cfg(not(futurepool_loom))]
        return TaskRef { cell: Some(inner) };
        #[cfg(futurepool_loom)]
        TaskRef {
            cell: Some(Box::new(LoomCell(Promise { inner }))),
        }
    }

    #[cfg(not(futurepool_loom))]
    fn take(mut self) -> Arc<dyn RunCell> {
        self.cell
            .take()
            .expect("a TaskRef holds its cell until consumed")
    }

    #[cfg(futurepool_loom)]
    fn take(mut self) -> Box<dyn RunCell> {
        self.cell
            .take()
            .expect("a TaskRef holds its cell until consumed")
    }

    /// Runs the task, the way [`Promise::run_calling_before_completion`] does: marks the future
    /// running (or skips the task if it was cancelled: `false`), runs the closure catching a
    /// panic, calls `before_completion`, and completes the future.
    pub fn run(self, before_completion: &mut dyn FnMut()) -> bool {
        self.take().run(before_completion)
    }

    /// Cancels the task without running it (`shutdown(cancel_futures=True)`).
    pub fn cancel(self) {
        self.take().cancel()
    }

    /// Fails the task without running it ([`FutureError::Broken`] with `why`: a broken pool).
    pub fn fail(self, why: std::sync::Arc<str>) {
        self.take().fail(why)
    }
}

impl Drop for TaskRef {
    /// Dropped unrun (a queue dropped with tasks in it): fail the future rather than leave it
    /// pending, and drop the closure now, as dropping the last `Promise` would.
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.fail("the task was dropped before it completed its future".into());
        }
    }
}

// SAFETY: a `TaskRef` is a `Promise` plus the closure's sole ownership: what crosses threads is
// the right to move the closure out and call it there (`F: Send`, required by `with_task`) and
// to move values into the future (`T: Send`, `E: Send`, as for `Promise`). It never lends out
// `&T`/`&E` except to done-callbacks, which require `Sync` values (see `Promise`'s `Send`).
unsafe impl Send for TaskRef {}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRef").finish_non_exhaustive()
    }
}

/// Takes the closure out of the future's body.
///
/// # Safety
///
/// Only the task's one owner may call this, once (a `TaskRef` is consumed by `run`, `cancel`
/// and `fail`, and is not `Clone`).
unsafe fn take_body<T, E>(inner: &Inner<T, E>) -> Option<crate::body::TakenBody<T, E>> {
    // SAFETY: per the contract nobody else touches the body now: it was written before the
    // future was shared, and only the owner or the last handle's destructor (which cannot run
    // while the owner holds its reference) ever touch it again.
    inner.body.with_mut(|p| unsafe { (*p).take() })
}

fn run_promise<T, E>(promise: Promise<T, E>, before_completion: &mut dyn FnMut()) -> bool {
    // SAFETY: called by the task's owner (a consumed `TaskRef`), once.
    match unsafe { take_body(&promise.inner) } {
        Some(body) => promise.run_calling_before_completion(|| body.call(), before_completion),
        None => false,
    }
}

fn settle_promise<T, E>(promise: Promise<T, E>, error: FutureError<E>) {
    // SAFETY: as in `run_promise`. The closure is dropped unrun, outside any lock.
    drop(unsafe { take_body(&promise.inner) });
    let _ = promise.set_outcome(Err(error));
}

#[cfg(not(futurepool_loom))]
impl<T: Send + 'static, E: Send + 'static> RunCell for Inner<T, E> {
    fn run(self: Arc<Self>, before_completion: &mut dyn FnMut()) -> bool {
        run_promise(Promise { inner: self }, before_completion)
    }
    fn cancel(self: Arc<Self>) {
        settle_promise(Promise { inner: self }, FutureError::Cancelled)
    }
    fn fail(self: Arc<Self>, why: std::sync::Arc<str>) {
        settle_promise(Promise { inner: self }, FutureError::Broken(why))
    }
}

#[cfg(futurepool_loom)]
impl<T, E> RunCell for LoomCell<T, E> {
    fn run(self: Box<Self>, before_completion: &mut dyn FnMut()) -> bool {
        run_promise(self.0, before_completion)
    }
    fn cancel(self: Box<Self>) {
        settle_promise(self.0, FutureError::Cancelled)
    }
    fn fail(self: Box<Self>, why: std::sync::Arc<str>) {
        settle_promise(self.0, FutureError::Broken(why))
    }
}
