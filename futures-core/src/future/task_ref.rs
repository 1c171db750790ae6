//! [`TaskRef`]: a queued run of a closure and the future it completes, in one allocation.

#[allow(unused_imports)]
use super::*;

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
pub(super) type Cell<S> = Arc<S>;
#[cfg(futurepool_loom)]
pub(super) type Cell<S> = Box<S>;

/// Under loom, the task is its promise, boxed.
#[cfg(futurepool_loom)]
pub(super) struct LoomCell<T, E>(Promise<T, E>);

impl TaskRef {
    pub(super) fn new<T: Send + 'static, E: Send + 'static>(inner: Arc<Inner<T, E>>) -> TaskRef {
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
pub(super) unsafe fn take_body<T, E>(inner: &Inner<T, E>) -> Option<crate::body::TakenBody<T, E>> {
    // SAFETY: per the contract nobody else touches the body now: it was written before the
    // future was shared, and only the owner or the last handle's destructor (which cannot run
    // while the owner holds its reference) ever touch it again.
    inner.body.with_mut(|p| unsafe { (*p).take() })
}

pub(super) fn run_promise<T, E>(
    promise: Promise<T, E>,
    before_completion: &mut dyn FnMut(),
) -> bool {
    // SAFETY: called by the task's owner (a consumed `TaskRef`), once.
    match unsafe { take_body(&promise.inner) } {
        Some(body) => promise.run_calling_before_completion(|| body.call(), before_completion),
        None => false,
    }
}

pub(super) fn settle_promise<T, E>(promise: Promise<T, E>, error: FutureError<E>) {
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
