//! [`Promise`]: the completing side's handle.

#[allow(unused_imports)]
use super::*;

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
    pub(super) inner: Arc<Inner<T, E>>,
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

    pub(super) fn complete(
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
