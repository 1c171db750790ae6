//! A queued task: the user's closure and the promise it completes, behind one object-safe
//! trait so the queue holds tasks of every result type.

use std::sync::Arc;

use futurepool_core::{FutureError, Promise};

/// What the pool's queue holds.
pub(crate) trait Runnable: Send {
    /// Runs the task on a worker: skipped if its future was cancelled, panics caught.
    /// `finishing` is called after the closure returned and before the future completes (see
    /// [`Promise::run_finishing`]); not at all if the task was skipped.
    fn run(self: Box<Self>, finishing: &mut dyn FnMut());
    /// Cancels the task without running it (`shutdown(cancel_futures=True)`).
    fn cancel(self: Box<Self>);
    /// Fails the task without running it (a broken pool).
    fn fail(self: Box<Self>, why: Arc<str>);
}

pub(crate) type Task<'scope> = Box<dyn Runnable + 'scope>;

/// A closure and its promise.
pub(crate) struct Job<F, T, E> {
    pub(crate) body: F,
    pub(crate) promise: Promise<T, E>,
}

impl<F, T, E> Runnable for Job<F, T, E>
where
    F: FnOnce() -> Result<T, E> + Send,
    T: Send + Sync,
    E: Send + Sync,
{
    fn run(self: Box<Self>, finishing: &mut dyn FnMut()) {
        let Job { body, promise } = *self;
        promise.run_finishing(body, finishing);
    }

    fn cancel(self: Box<Self>) {
        let _ = self.promise.set_outcome(Err(FutureError::Cancelled));
    }

    fn fail(self: Box<Self>, why: Arc<str>) {
        let _ = self.promise.set_outcome(Err(FutureError::Broken(why)));
    }
}
