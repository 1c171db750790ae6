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
