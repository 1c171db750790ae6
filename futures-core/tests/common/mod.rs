//! Helpers shared by the integration tests: futures in each of Python's states, a
//! thread-per-task "executor", a watchdog and a minimal `block_on`.

#![allow(dead_code, unused_imports)]

use std::future::Future as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use futurepool_core::{Future, FutureError, Promise};

pub type F = Future<i64, String>;

/// Python's `PENDING_FUTURE`; keep the promise alive for as long as it must stay pending.
pub fn pending() -> (F, Promise<i64, String>) {
    F::pending()
}

/// Python's `RUNNING_FUTURE`.
pub fn running() -> (F, Promise<i64, String>) {
    let (f, p) = F::pending();
    assert!(p.set_running_or_notify_cancel().unwrap());
    (f, p)
}

/// Python's `CANCELLED_FUTURE` and `CANCELLED_AND_NOTIFIED_FUTURE` (one state here).
pub fn cancelled() -> F {
    let f = F::failed(FutureError::Cancelled);
    assert!(f.cancelled());
    f
}

/// Python's `EXCEPTION_FUTURE` (`OSError()`).
pub fn exception() -> F {
    F::failed(FutureError::Raised("OSError".into()))
}

/// Python's `SUCCESSFUL_FUTURE`.
pub fn successful() -> F {
    F::ready(42)
}

/// Runs `task` on a new thread, Python-executor style.
pub fn submit<T, E>(task: impl FnOnce() -> Result<T, E> + Send + 'static) -> Future<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    let (future, promise) = Future::pending();
    thread::spawn(move || promise.run(task));
    future
}

pub use futurepool_testkit::{watchdog, Event};

struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A minimal executor for one `std::future::Future`: parks the thread between polls.
pub fn block_on<Fut: std::future::IntoFuture>(fut: Fut) -> Fut::Output {
    let mut fut = std::pin::pin!(fut.into_future());
    let state = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(state.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        while !state.woken.swap(false, Ordering::SeqCst) {
            thread::park();
        }
    }
}
