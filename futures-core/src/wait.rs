//! [`wait`]: block until some or all of a set of futures are done (Python's
//! `concurrent.futures.wait`).

use std::collections::HashSet;
use std::time::Duration;

use crate::waiter::Queue;
use crate::Waitable;

/// When [`wait`] returns (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ReturnWhen {
    /// As soon as any future finishes or is cancelled.
    FirstCompleted,
    /// As soon as any future finishes by raising (a returned error, a panic, a broken
    /// executor); if none does, when all are done.
    FirstException,
    /// When all futures are done.
    #[default]
    AllCompleted,
}

/// What [`wait`] returns: the futures that were done and those that were not, each once, in the
/// order they were first given (Python returns two sets).
#[derive(Debug)]
pub struct Waited<'a, F: ?Sized> {
    /// Finished or cancelled futures.
    pub done: Vec<&'a F>,
    /// Futures not yet done when `wait` returned.
    pub not_done: Vec<&'a F>,
}

/// Keeps the first of each future (by identity), in order.
pub(crate) fn distinct<
    F: Waitable + ?Sized,
    I: IntoIterator<Item = R>,
    R: std::borrow::Borrow<F>,
>(
    futures: I,
) -> Vec<R> {
    let mut seen = HashSet::new();
    futures
        .into_iter()
        .filter(|f| seen.insert(f.borrow().key()))
        .collect()
}

/// Waits until the futures satisfy `return_when` or `timeout` passes, and returns which are done.
/// Never fails on timeout: it returns what is done by then (`None` waits without limit, a zero
/// timeout only looks). Duplicates are collapsed.
///
/// Futures of different types can be waited on together as `&dyn Waitable`:
///
/// ```
/// use futurepool_core::{wait, Future, ReturnWhen, Waitable};
///
/// let (number, promise) = Future::<u32>::pending();
/// let text = Future::<String>::ready("ready".into());
/// let all: [&dyn Waitable; 2] = [&number, &text];
/// let waited = wait(all, Some(std::time::Duration::ZERO), ReturnWhen::AllCompleted);
/// assert_eq!((waited.done.len(), waited.not_done.len()), (1, 1));
/// # drop(promise);
/// ```
pub fn wait<'a, F, I>(
    futures: I,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> Waited<'a, F>
where
    F: Waitable + ?Sized + 'a,
    I: IntoIterator<Item = &'a F>,
{
    let futures: Vec<&'a F> = distinct::<F, _, _>(futures);
    let deadline = crate::time::deadline(timeout);
    let satisfied = |done: usize, raised: bool| match return_when {
        ReturnWhen::FirstCompleted => done > 0 || futures.is_empty(),
        ReturnWhen::FirstException => raised || done == futures.len(),
        ReturnWhen::AllCompleted => done == futures.len(),
    };

    let done_now = futures.iter().filter(|f| f.done()).count();
    let raised_now =
        return_when == ReturnWhen::FirstException && futures.iter().any(|f| f.raised());
    let zero = timeout == Some(Duration::ZERO);
    if !satisfied(done_now, raised_now) && !zero {
        let queue = Queue::new();
        let mut registered = vec![false; futures.len()];
        let mut done = 0;
        let mut raised = false;
        for (token, f) in futures.iter().enumerate() {
            if f.register(&queue, token) {
                registered[token] = true;
            } else {
                done += 1;
                raised |= f.raised();
            }
        }
        while !satisfied(done, raised && return_when == ReturnWhen::FirstException) {
            match queue.pop(deadline) {
                Some(token) => {
                    registered[token] = false;
                    done += 1;
                    raised |= futures[token].raised();
                }
                None => break,
            }
        }
        for (token, f) in futures.iter().enumerate() {
            if registered[token] {
                f.unregister(&queue, token);
            }
        }
    }
    let (done, not_done) = futures.into_iter().partition(|f| f.done());
    Waited { done, not_done }
}
