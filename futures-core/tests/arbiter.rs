//! `Promise::set_cancel_arbiter`: an executor whose tasks may start where `cancel` cannot see
//! (a remote queue) decides whether a pending future can still be cancelled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futurepool_core::{Future, FutureError};

#[test]
fn an_arbiter_that_says_never_started_lets_cancel_succeed() {
    let (future, promise) = Future::<u32>::pending();
    let asked = Arc::new(AtomicUsize::new(0));
    let a = asked.clone();
    assert!(promise.set_cancel_arbiter(move || {
        a.fetch_add(1, Ordering::SeqCst);
        true
    }));
    assert!(future.cancel());
    assert!(future.cancelled());
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // Done now: asked no more, and no new arbiter is taken.
    assert!(future.cancel());
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert!(!promise.set_cancel_arbiter(|| true));
}

#[test]
fn a_task_that_started_elsewhere_is_not_cancelled() {
    let (future, promise) = Future::<u32>::pending();
    let p = promise.clone();
    assert!(promise.set_cancel_arbiter(move || {
        // The executor learns the task started: the future is running from now on.
        assert_eq!(p.set_running_or_notify_cancel(), Ok(true));
        false
    }));
    assert!(!future.cancel());
    assert!(future.running());
    promise.set_result(7).unwrap();
    assert_eq!(future.result(), Ok(&7));
}

#[test]
fn a_started_task_with_a_cancel_hook_is_stopped_through_it() {
    let (future, promise) = Future::<u32>::pending();
    let p = promise.clone();
    assert!(promise.set_cancel_hook(move || {
        let _ = p.set_outcome(Err(FutureError::Cancelled));
    }));
    let p = promise.clone();
    assert!(promise.set_cancel_arbiter(move || {
        assert_eq!(p.set_running_or_notify_cancel(), Ok(true));
        false
    }));
    assert!(future.cancel());
    assert!(future.cancelled());
}

#[test]
fn an_arbiter_that_cannot_tell_leaves_the_future_pending() {
    let (future, promise) = Future::<u32>::pending();
    assert!(promise.set_cancel_arbiter(|| false));
    assert!(!future.cancel());
    assert!(!future.done());
    assert!(!future.running());
    promise.set_result(1).unwrap();
    assert_eq!(future.result(), Ok(&1));
}
