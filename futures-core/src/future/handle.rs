//! [`Future`]: the waiting side's handle and its methods.

#[allow(unused_imports)]
use super::*;

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
    pub(super) inner: Arc<Inner<T, E>>,
}

impl<T, E> Future<T, E> {
    pub(super) fn from_inner(inner: Arc<Inner<T, E>>) -> Self {
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
    /// `cancel()`, dropping the handles — runs it with [`Help::Nudge`]: the executor should
    /// make sure the task gets going, without blocking. So an executor may even hold a task
    /// back for a moment, expecting its submitter to wait for it, and still learn of every
    /// other use in time.
    ///
    /// The helper does not run once the future is no longer pending. [`Help::Run`] is not
    /// given while a done-callback is registered (it would run on the waiting thread, which
    /// may hold a lock the callback takes: the helper gets [`Help::Nudge`] instead); a helper
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
    /// future's own memory (up to three words inline), and the returned [`TaskRef`] is what an
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

    pub(super) fn cancel_once(&self) -> bool {
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

    pub(super) fn result_deadline_opt(
        &self,
        deadline: Option<Instant>,
    ) -> Result<&T, FutureError<&E>> {
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
    pub(super) fn take_final(self) -> Result<Outcome<T, E>, Future<T, E>> {
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
