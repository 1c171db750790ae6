//! The state machine itself: the state word, the outcome cell, the slow part (waiters, the
//! condition variable) and every transition (see the parent module's docs for the protocol).

#[allow(unused_imports)]
use super::*;

/// The state shared by every [`Future`] and [`Promise`] of one task.
pub(crate) struct Inner<T, E> {
    /// The state (`PHASE` bits) and the `WAITERS` flag.
    pub(super) state: AtomicU8,
    /// The slow part, allocated by the first waiter (null until then), freed with `Inner`.
    pub(super) slow: AtomicPtr<Slow<T, E>>,
    pub(super) outcome: UnsafeCell<Option<Outcome<T, E>>>,
    /// Live `Future` handles, plus one for the handle lent to done-callbacks from the moment
    /// the first callback registers until the callbacks have run.
    pub(super) handles: AtomicUsize,
    /// Live `Promise` handles (a [`TaskRef`] counts as one); the last one to go leaves no
    /// future pending.
    pub(super) promises: AtomicUsize,
    /// The task's closure when the future was made by [`Future::with_task`]: written before
    /// the future is shared, taken once by the task's only owner (its `TaskRef`), or dropped
    /// with the future.
    pub(super) body: UnsafeCell<Body<T, E>>,
    /// The executor's helper ([`Future::pending_with_helper`]): written before the future is
    /// shared, taken once by the waiter that set `HELPED`, or dropped with the future.
    pub(super) helper: UnsafeCell<Option<Helper>>,
}

/// What only waiting needs: kept out of the future's own allocation until somebody waits.
pub(super) struct Slow<T, E> {
    pub(super) waiters: Mutex<Waiters<Callback<T, E>>>,
    /// Woken (`notify_all`) when the state becomes final, or the lent handle is returned, and
    /// someone sleeps on it.
    pub(super) finished: Condvar,
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
    pub(super) fn new(state: u8, outcome: Option<Outcome<T, E>>, promises: usize) -> Self {
        Inner::with_body(state, outcome, promises, Body::empty())
    }

    pub(super) fn with_body(
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
    pub(super) fn state(&self) -> u8 {
        // Acquire: seeing FINISHED makes the outcome written before it visible.
        self.state.load(Ordering::Acquire) & PHASE
    }

    /// The slow part, if somebody ever waited.
    pub(super) fn slow_if_any(&self) -> Option<&Slow<T, E>> {
        // Acquire: pairs with the Release of the installing CAS, so the part is initialized.
        let p = self.slow.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was installed once by `slow` from a leaked `Box` and is
        // only freed by `Drop for Inner`, which cannot run while `&self` is alive.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// The slow part, allocated if needed.
    pub(super) fn slow(&self) -> &Slow<T, E> {
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
    pub(super) fn lock_to_register(&self) -> Result<MutexGuard<'_, Waiters<Callback<T, E>>>, u8> {
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
    pub(super) fn outcome(&self) -> &Outcome<T, E> {
        // SAFETY: per the module docs the cell was written before FINISHED was published, the
        // caller observed FINISHED with Acquire, and no write or move-out can happen while the
        // caller's `Future` handle (which `&self` is borrowed through) exists.
        let outcome = self.outcome.with(|p| unsafe { &*p });
        outcome.as_ref().expect("a finished future has an outcome")
    }

    /// Blocks until the state is final or `deadline` passes; returns the last state seen.
    pub(super) fn wait_final(&self, deadline: Option<Instant>) -> u8 {
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
                Help::Nudge
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

    /// Runs the future's helper with [`Help::Nudge`] if it is pending and has a helper that
    /// nothing claimed yet: every kind of interest in a future but an untimed wait calls this.
    pub(super) fn notice(&self) {
        // A future without a helper (`HELPER` is part of its state from creation on), or no
        // longer pending, costs this one load.
        if self.state.load(Ordering::Acquire) & (HELPER | HELPED | PHASE) == HELPER | PENDING {
            self.help(Help::Nudge);
        }
    }

    /// Runs the future's helper, if it has one that nothing claimed yet — for [`Help::Run`],
    /// only while no done-callback is registered (a callback registered while the helper runs
    /// is handed to the executor: see [`Promise::set_outcome_deferring_callbacks`]; one
    /// registered before would run on the waiting thread, so the helper is then told to
    /// start the task instead). `true` if it ran.
    pub(super) fn help(&self, mut help: Help) -> bool {
        let state = self.state.load(Ordering::Acquire);
        if state & (HELPER | HELPED | PHASE) != HELPER | PENDING {
            return false;
        }
        if help == Help::Run && state & WAITERS != 0 {
            // Somebody registered: a done-callback would run on this thread, which may hold a
            // lock the callback takes. Leave the task to the executor's own threads.
            if let Some(slow) = self.slow_if_any() {
                if slow.waiters.lock().lent {
                    help = Help::Nudge;
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
    pub(super) fn wait_lent_handle(&self) -> bool {
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
    pub(super) fn finish(
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
    pub(super) fn cancel_pending(this: &Arc<Self>) -> Result<(), u8> {
        Inner::cancel_from(this, |phase| phase == PENDING, None)
    }

    /// The CANCELLED step for a task its executor stopped on request (see
    /// [`Promise::set_cancel_hook`]): from RUNNING, or from PENDING as
    /// [`cancel_pending`](Self::cancel_pending). Fails with the state seen when already final
    /// (or being completed).
    pub(super) fn cancel_running(this: &Arc<Self>, defer: Defer<'_, T, E>) -> Result<(), u8> {
        Inner::cancel_from(this, |phase| matches!(phase, PENDING | RUNNING), defer)
    }

    /// Moves to CANCELLED, keeping the flag, from a state `from` accepts.
    pub(super) fn cancel_from(
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
    pub(super) fn publish(this: &Arc<Self>, defer: Defer<'_, T, E>) {
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
    pub(super) fn run_callbacks(
        this: &Arc<Self>,
        callbacks: Vec<Callback<T, E>>,
        wakers: &mut Vec<Waker>,
    ) {
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
pub(super) fn run_callback<T, E>(cb: Callback<T, E>, future: &Future<T, E>) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| cb(future))) {
        let panic = Panic::from_payload(payload);
        log::error!("a done-callback panicked (later callbacks still run): {panic}");
    }
}
