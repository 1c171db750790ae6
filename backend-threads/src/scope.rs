//! Scoped tasks: [`ThreadPool::scope`], whose tasks may borrow from the caller's stack.
//!
//! The pool's queue holds `'static` tasks, so a scoped task's lifetime is erased when it is
//! queued (the one `unsafe` in this crate). That is sound because `scope` does not return — not
//! even by unwinding — until every task submitted through it has been dropped: each task carries
//! a [`Ticket`] that is released when the task's closure is dropped, whether it ran, was
//! cancelled, or was failed by a broken pool, and `scope` waits for the last ticket.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};

use futurepool_core::loom::{Arc, Condvar, Mutex};
use futurepool_core::{Future, SubmitError};

use crate::task::{self, BoxedTask, Task};
use crate::ThreadPool;

/// A scope for tasks that borrow from the stack; see [`ThreadPool::scope`].
pub struct Scope<'scope, 'env: 'scope> {
    pool: &'scope ThreadPool,
    tickets: Arc<Tickets>,
    /// Invariant in `'scope`, as in `std::thread::Scope`.
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// Counts the scope's tasks that have not been dropped yet.
struct Tickets {
    outstanding: Mutex<usize>,
    all_dropped: Condvar,
}

/// Held by one scoped task's closure; dropping it releases the task's hold on the scope.
struct Ticket(Arc<Tickets>);

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut n = self.0.outstanding.lock();
        *n -= 1;
        if *n == 0 {
            drop(n);
            self.0.all_dropped.notify_all();
        }
    }
}

pub(crate) fn run<'env, F, R>(pool: &ThreadPool, body: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    let scope = Scope {
        pool,
        tickets: Arc::new(Tickets {
            outstanding: Mutex::new(0),
            all_dropped: Condvar::new(),
        }),
        _scope: PhantomData,
        _env: PhantomData,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| body(&scope)));
    let mut n = scope.tickets.outstanding.lock();
    while *n > 0 {
        n = scope.tickets.all_dropped.wait(n);
    }
    drop(n);
    match result {
        Ok(r) => r,
        Err(payload) => panic::resume_unwind(payload),
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Schedules `f`, which may borrow anything that outlives the scope.
    pub fn submit<F, T>(&'scope self, f: F) -> Result<Future<T>, SubmitError>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'static,
    {
        self.submit_fallible(move || Ok(f()))
    }

    /// Schedules a fallible `f` that may borrow from the scope.
    pub fn submit_fallible<F, T, E>(&'scope self, f: F) -> Result<Future<T, E>, SubmitError>
    where
        F: FnOnce() -> Result<T, E> + Send + 'scope,
        T: Send + 'static,
        E: Send + 'static,
    {
        *self.tickets.outstanding.lock() += 1;
        let ticket = Ticket(self.tickets.clone());
        let body = move || {
            let ticket = ticket;
            let outcome = f();
            drop(ticket);
            outcome
        };
        let (future, promise) = Future::pending();
        let task: Box<dyn Task + 'scope> = Box::new(task::ClosureTask { body, promise });
        // SAFETY: only the lifetime changes. Everything the task borrows lives for 'scope, and
        // `run` does not return (normally or by unwinding) before the task's `Ticket` is
        // dropped, which happens when the closure holding the borrows is dropped: after it ran
        // (the ticket is dropped right after `f` returns) or when the unrun task is dropped by
        // a cancel or a broken pool. If the push fails, the task is dropped right here.
        let task: BoxedTask<'static> =
            unsafe { std::mem::transmute::<Box<dyn Task + 'scope>, Box<dyn Task + 'static>>(task) };
        self.pool.push_scoped(task)?;
        Ok(future)
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("outstanding", &*self.tickets.outstanding.lock())
            .finish_non_exhaustive()
    }
}
