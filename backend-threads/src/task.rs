//! A queued task: the user's closure and the promise it completes, behind one object-safe
//! trait so the queue holds tasks of every result type.
//!
//! Names, one family: a core [`Job`](futurepool_core::Job) is a callable an executor can run on
//! many inputs; a *task* is one queued run of a closure. The queue holds [`QueuedTask`]s: a core
//! [`TaskRef`] (the closure in its future's own allocation: `submit`'s one allocation per task),
//! or a [`BoxedTask`] ([`Task`] the trait, [`ClosureTask`] its implementation) for a scoped
//! task, whose borrowing closure cannot live in a `'static` future.

use std::sync::Arc;

use futurepool_core::{FutureError, Promise, TaskRef};

/// What the pool's queue holds.
pub(crate) trait Task: Send {
    /// Runs the task on a worker: skipped if its future was cancelled, panics caught.
    /// `finishing` is called after the closure returned and before the future completes (see
    /// [`Promise::run_calling_before_completion`]); not at all if the task was skipped.
    fn run(self: Box<Self>, finishing: &mut dyn FnMut());
    /// Cancels the task without running it (`shutdown(cancel_futures=True)`).
    fn cancel(self: Box<Self>);
    /// Fails the task without running it (a broken pool).
    fn fail(self: Box<Self>, why: Arc<str>);
}

/// A task as the queue holds it; `'scope` is `'static` except inside [`ThreadPool::scope`](crate::ThreadPool::scope).
pub(crate) type BoxedTask<'scope> = Box<dyn Task + 'scope>;

/// A closure and its promise.
pub(crate) struct ClosureTask<F, T, E> {
    pub(crate) body: F,
    pub(crate) promise: Promise<T, E>,
}

impl<F, T, E> Task for ClosureTask<F, T, E>
where
    F: FnOnce() -> Result<T, E> + Send,
    T: Send,
    E: Send,
{
    fn run(self: Box<Self>, finishing: &mut dyn FnMut()) {
        let ClosureTask { body, promise } = *self;
        promise.run_calling_before_completion(body, finishing);
    }

    fn cancel(self: Box<Self>) {
        let _ = self.promise.set_outcome(Err(FutureError::Cancelled));
    }

    fn fail(self: Box<Self>, why: Arc<str>) {
        let _ = self.promise.set_outcome(Err(FutureError::Broken(why)));
    }
}

/// What the pool's queue holds; see the module docs.
pub(crate) enum QueuedTask {
    /// `submit`: one allocation, shared with the future.
    Cell(TaskRef),
    /// `scope`'s tasks.
    Boxed(BoxedTask<'static>),
}

impl QueuedTask {
    /// See [`Task::run`].
    pub(crate) fn run(self, finishing: &mut dyn FnMut()) {
        match self {
            QueuedTask::Cell(task) => {
                task.run(finishing);
            }
            QueuedTask::Boxed(task) => task.run(finishing),
        }
    }

    /// See [`Task::cancel`].
    pub(crate) fn cancel(self) {
        match self {
            QueuedTask::Cell(task) => task.cancel(),
            QueuedTask::Boxed(task) => task.cancel(),
        }
    }

    /// See [`Task::fail`].
    pub(crate) fn fail(self, why: Arc<str>) {
        match self {
            QueuedTask::Cell(task) => task.fail(why),
            QueuedTask::Boxed(task) => task.fail(why),
        }
    }
}
