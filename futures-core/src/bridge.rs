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

impl<T, E> IntoFuture for Future<T, E> {
    type Output = Outcome<T, E>;
    type IntoFuture = Awaiting<T, E>;

    /// `.await` gives the outcome by value, moved out of the future — no `Clone` needed, as
    /// with `tokio::task::JoinHandle`. The awaited handle must be the last one: if another
    /// handle is still alive when the future is done, `.await` gives
    /// [`FutureError::Shared`](crate::FutureError::Shared) (read a shared future by reference
    /// with [`done_async`](Future::done_async) and [`result`](Future::result) instead). A
    /// done-callback's lent handle is not in the way: `.await` waits for the callbacks.
    ///
    /// ```
    /// use futurepool_core::Future;
    ///
    /// struct NotClone(u32);
    /// let (future, promise) = Future::<NotClone>::pending();
    /// let worker = std::thread::spawn(move || promise.set_result(NotClone(7)).ok());
    /// let value = smol_like_block_on(async { future.await.unwrap() });
    /// assert_eq!(value.0, 7);
    /// worker.join().unwrap();
    /// # fn smol_like_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     use std::sync::Arc;
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl Wake for Unpark { fn wake(self: Arc<Self>) { self.0.unpark() } }
    /// #     let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// ```
    fn into_future(self) -> Awaiting<T, E> {
        Awaiting {
            future: Some(self),
            key: None,
        }
    }
}

impl<T, E> std::future::Future for Awaiting<T, E> {
    type Output = Outcome<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let future = this.future.take().expect("polled after completion");
        if !future.poll_done(&mut this.key, cx.waker()) {
            this.future = Some(future);
            return Poll::Pending;
        }
        match future.poll_take(&mut this.key, cx.waker()) {
            Ok(outcome) => {
                this.key = None;
                Poll::Ready(outcome)
            }
            // Done-callbacks still hold a lent handle; woken when they are finished.
            Err(Ok(future)) => {
                this.future = Some(future);
                Poll::Pending
            }
            Err(Err(shared)) => {
                if let Some(key) = this.key.take() {
                    shared.forget_waker(key);
                }
                Poll::Ready(Err(crate::FutureError::Shared))
            }
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
