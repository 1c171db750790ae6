//! The async bridge: `.await` a [`Future`] from any async runtime (Python's
//! `asyncio.wrap_future`). No runtime dependency: a pending future keeps the task's
//! [`Waker`](std::task::Waker) as one more waiter entry, woken by the completion like every
//! other waiter.

use std::fmt;
use std::future::IntoFuture;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::Future;
use crate::Outcome;

/// Resolves when the future is done; from [`Future::done_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct DoneAsync<'a, T, E> {
    future: &'a Future<T, E>,
    key: Option<u32>,
}

impl<T, E> Future<T, E> {
    /// An async view that resolves when this future is done; read the result afterwards with
    /// [`result`](Future::result). To await the value itself, `.await` the future (it implements
    /// [`IntoFuture`]).
    pub fn done_async(&self) -> DoneAsync<'_, T, E> {
        DoneAsync {
            future: self,
            key: None,
        }
    }
}

impl<T, E> std::future::Future for DoneAsync<'_, T, E> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.future.poll_done(&mut this.key, cx.waker()) {
            this.key = None;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<T, E> Drop for DoneAsync<'_, T, E> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.future.forget_waker(key);
        }
    }
}

impl<T, E> fmt::Debug for DoneAsync<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoneAsync")
            .field("future", self.future)
            .finish()
    }
}

/// Resolves to the future's outcome by value; what `.await` on a [`Future`] runs.
#[must_use = "futures do nothing unless awaited"]
pub struct Awaiting<T, E> {
    future: Option<Future<T, E>>,
    key: Option<u32>,
}

impl<T: Clone, E: Clone> IntoFuture for Future<T, E> {
    type Output = Outcome<T, E>;
    type IntoFuture = Awaiting<T, E>;

    /// `.await` gives the outcome by value: moved out if this was the last handle, cloned
    /// otherwise (as [`Future::into_result`]).
    fn into_future(self) -> Awaiting<T, E> {
        Awaiting {
            future: Some(self),
            key: None,
        }
    }
}

impl<T: Clone, E: Clone> std::future::Future for Awaiting<T, E> {
    type Output = Outcome<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let future = this.future.as_ref().expect("polled after completion");
        if future.poll_done(&mut this.key, cx.waker()) {
            this.key = None;
            let future = this.future.take().expect("checked above");
            Poll::Ready(future.into_result())
        } else {
            Poll::Pending
        }
    }
}

impl<T, E> Unpin for Awaiting<T, E> {}

impl<T, E> Drop for Awaiting<T, E> {
    fn drop(&mut self) {
        if let (Some(future), Some(key)) = (&self.future, self.key) {
            future.forget_waker(key);
        }
    }
}

impl<T, E> fmt::Debug for Awaiting<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Awaiting")
            .field("future", &self.future)
            .finish()
    }
}
