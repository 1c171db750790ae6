//! Done-callbacks handed over by a completion to run elsewhere
//! ([`Promise::set_outcome_deferring_callbacks`]).

#[allow(unused_imports)]
use super::*;

/// The done-callbacks of a future completed by
/// [`Promise::set_outcome_deferring_callbacks`], and the async wakers that come after them:
/// to be run on another thread with [`run`](Self::run). The future is done already (its
/// sleepers are awake); until these have run, a blocking take of its value by value
/// ([`Future::try_into_result`]) waits for them, as for callbacks running anywhere. Dropped
/// unrun, it runs them where it is dropped: no callback is lost.
pub struct DeferredCallbacks<T, E = std::convert::Infallible> {
    /// `None` once run.
    pub(super) parts: Option<DeferredParts<T, E>>,
}

pub(super) type DeferredParts<T, E> = (Arc<Inner<T, E>>, Vec<Callback<T, E>>, Vec<Waker>);

impl<T, E> DeferredCallbacks<T, E> {
    /// Runs the callbacks, in the order they were added, on this thread, then wakes the
    /// wakers.
    pub fn run(mut self) {
        self.run_here();
    }

    pub(super) fn run_here(&mut self) {
        let Some((inner, callbacks, mut wakers)) = self.parts.take() else {
            return;
        };
        if let Some(slow) = inner.slow_if_any() {
            slow.waiters.lock().lender = Some(crate::loom::thread::current().id());
        }
        Inner::run_callbacks(&inner, callbacks, &mut wakers);
        for waker in wakers {
            waker.wake();
        }
    }
}

impl<T, E> Drop for DeferredCallbacks<T, E> {
    fn drop(&mut self) {
        self.run_here();
    }
}

impl<T, E> fmt::Debug for DeferredCallbacks<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredCallbacks").finish_non_exhaustive()
    }
}
