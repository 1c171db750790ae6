//! [`as_completed`]: the futures, each once, in the order they finish (Python's
//! `concurrent.futures.as_completed`).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::error::TimeoutError;
use crate::loom::Arc;
use crate::waiter::Queue;
use crate::Waitable;

/// Yields the given futures as they complete: first those already done (in the order given),
/// then the rest in completion order; each future once, even if given twice.
///
/// Past `timeout` (counted from this call) it yields one `Err(TimeoutError)` saying how many
/// of how many are unfinished, and ends. It holds no reference to a future it has yielded, and
/// dropping it early withdraws its registrations from the futures still pending.
///
/// Costs O(n) in total for n futures: each completion pushes its index onto a queue the
/// iterator pops; nothing polls.
///
/// ```
/// use std::time::Duration;
/// use futurepool_core::{as_completed, Future};
///
/// let (slow, slow_promise) = Future::<u32>::pending();
/// let (fast, fast_promise) = Future::<u32>::pending();
/// let done = Future::<u32>::ready(1);
/// let it = as_completed([slow, fast, done], Some(Duration::from_secs(30)));
/// let worker = std::thread::spawn(move || {
///     fast_promise.set_result(2).unwrap();
///     slow_promise.set_result(3).unwrap();
/// });
/// let order: Vec<u32> = it.map(|f| *f.expect("within the timeout").result().unwrap()).collect();
/// assert_eq!(order, [1, 2, 3]); // done first, then in completion order
/// worker.join().unwrap();
///
/// // Past the deadline: one error saying how many are unfinished, then the end.
/// let (never, _promise) = Future::<u32>::pending();
/// let mut it = as_completed([never], Some(Duration::ZERO));
/// assert_eq!(it.next().unwrap().unwrap_err().to_string(), "1 (of 1) futures unfinished");
/// assert!(it.next().is_none());
/// ```
pub fn as_completed<F, I>(futures: I, timeout: Option<Duration>) -> AsCompleted<F>
where
    F: Waitable,
    I: IntoIterator<Item = F>,
{
    let futures: Vec<F> = crate::wait::distinct::<F, _, _>(futures);
    let total = futures.len();
    let queue = Queue::new();
    let mut ready = VecDeque::new();
    let mut pending = Vec::with_capacity(total);
    for f in futures {
        if f.done() {
            ready.push_back(f);
            continue;
        }
        let token = pending.len();
        if f.register(&queue, token) {
            pending.push(Some(f));
        } else {
            ready.push_back(f);
        }
    }
    let remaining = pending.len();
    AsCompleted {
        ready,
        pending,
        remaining,
        queue,
        total,
        timeout,
        deadline: crate::time::deadline(timeout),
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<F: Waitable> {
    /// Done before the call: yielded first.
    ready: VecDeque<F>,
    /// Registered futures by token; `None` once yielded.
    pending: Vec<Option<F>>,
    /// `Some` entries left in `pending`.
    remaining: usize,
    queue: Arc<Queue>,
    total: usize,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
}

impl<F: Waitable> AsCompleted<F> {
    /// How many futures have not been yielded yet.
    pub fn remaining(&self) -> usize {
        self.ready.len() + self.remaining
    }

    fn withdraw(&mut self) {
        for (token, f) in self.pending.iter_mut().enumerate() {
            if let Some(f) = f.take() {
                f.unregister(&self.queue, token);
            }
        }
        self.remaining = 0;
    }
}

impl<F: Waitable> Iterator for AsCompleted<F> {
    type Item = Result<F, TimeoutError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(f) = self.ready.pop_front() {
            return Some(Ok(f));
        }
        if self.remaining == 0 {
            return None;
        }
        loop {
            match self.queue.pop(self.deadline) {
                Some(token) => {
                    if let Some(f) = self.pending[token].take() {
                        self.remaining -= 1;
                        return Some(Ok(f));
                    }
                }
                None => {
                    let error = TimeoutError {
                        unfinished: self.remaining,
                        total: self.total,
                        timeout: self.timeout.unwrap_or_default(),
                    };
                    self.withdraw();
                    return Some(Err(error));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // A timeout error may stand in for all the unfinished ones.
        let n = self.remaining();
        (n.min(self.ready.len() + 1), Some(n))
    }
}

impl<F: Waitable> Drop for AsCompleted<F> {
    fn drop(&mut self) {
        self.withdraw();
    }
}

impl<F: Waitable> fmt::Debug for AsCompleted<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("total", &self.total)
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

/// [`as_completed`] for async code, without a timeout (wrap it in your runtime's timeout): a
/// [`Stream`](futures_core::Stream) of the futures, each once — first those already done, then
/// the rest in completion order. Nothing polls and no thread blocks: a completion wakes the
/// stream's task. Dropping the stream withdraws its registrations. Needs the `stream` feature.
///
/// ```
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
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
/// use std::pin::Pin;
/// use futures_core::Stream;
/// use futurepool_core::{as_completed_stream, Future};
///
/// let (a, promise) = Future::<u32>::pending();
/// let b = Future::<u32>::ready(1);
/// let mut stream = as_completed_stream([a, b]);
/// let worker = std::thread::spawn(move || promise.set_result(2).unwrap());
/// let mut seen = Vec::new();
/// block_on(std::future::poll_fn(|cx| loop {
///     match Pin::new(&mut stream).poll_next(cx) {
///         std::task::Poll::Ready(Some(f)) => seen.push(*f.result().unwrap()),
///         std::task::Poll::Ready(None) => return std::task::Poll::Ready(()),
///         std::task::Poll::Pending => return std::task::Poll::Pending,
///     }
/// }));
/// assert_eq!(seen, [1, 2]);
/// worker.join().unwrap();
/// ```
#[cfg(feature = "stream")]
pub fn as_completed_stream<F, I>(futures: I) -> AsCompletedStream<F>
where
    F: Waitable,
    I: IntoIterator<Item = F>,
{
    AsCompletedStream(as_completed(futures, None))
}

/// The stream of [`as_completed_stream`].
#[cfg(feature = "stream")]
#[derive(Debug)]
pub struct AsCompletedStream<F: Waitable>(AsCompleted<F>);

// The stream never pins the futures it holds: they are moved in and out by value.
#[cfg(feature = "stream")]
impl<F: Waitable> Unpin for AsCompletedStream<F> {}

#[cfg(feature = "stream")]
impl<F: Waitable> futures_core::Stream for AsCompletedStream<F> {
    type Item = F;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<F>> {
        use std::task::Poll;
        let this = &mut self.get_mut().0;
        if let Some(f) = this.ready.pop_front() {
            return Poll::Ready(Some(f));
        }
        while this.remaining > 0 {
            let Poll::Ready(token) = this.queue.poll_pop(cx.waker()) else {
                return Poll::Pending;
            };
            if let Some(f) = this.pending[token].take() {
                this.remaining -= 1;
                return Poll::Ready(Some(f));
            }
        }
        Poll::Ready(None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.remaining();
        (n, Some(n))
    }
}
