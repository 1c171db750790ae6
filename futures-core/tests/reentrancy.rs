//! A done-callback that uses its own future again, on the completing thread, must not wait
//! for itself: awaiting or taking a clone there answers at once (`Shared`, the callback still
//! holds a handle) instead of hanging.

use std::future::{Future as _, IntoFuture};
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futurepool_core::{Future, FutureError};
use futurepool_testkit::watchdog;

#[test]
fn awaiting_a_clone_inside_its_own_done_callback_does_not_hang() {
    watchdog(Duration::from_secs(20), || {
        let (future, promise) = Future::<u32>::pending();
        let (tx, rx) = mpsc::channel();
        future.add_done_callback(move |f| {
            let mut awaiting = pin!(f.clone().into_future());
            let mut cx = Context::from_waker(Waker::noop());
            let polled = awaiting.as_mut().poll(&mut cx);
            tx.send(polled).unwrap();
        });
        promise.set_result(5).unwrap();
        match rx.recv().unwrap() {
            Poll::Ready(Err(FutureError::Shared)) => {}
            other => panic!("expected Shared at once, got {other:?}"),
        }
        // Outside the callback the value is there as usual.
        assert_eq!(future.into_result(), Ok(5));
    });
}

#[test]
fn taking_a_clone_inside_its_own_done_callback_does_not_hang() {
    watchdog(Duration::from_secs(20), || {
        let (future, promise) = Future::<u32>::pending();
        let (tx, rx) = mpsc::channel();
        future.add_done_callback(move |f| {
            tx.send(f.clone().try_into_result().is_err()).unwrap();
        });
        promise.set_result(5).unwrap();
        assert!(
            rx.recv().unwrap(),
            "the callback's own handle is still there"
        );
        assert_eq!(future.into_result(), Ok(5));
    });
}

/// Dropped after the completion: panics.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("a cancel hook's capture panics on drop");
    }
}

#[test]
fn a_hook_that_panics_when_dropped_does_not_keep_waiters_asleep() {
    watchdog(Duration::from_secs(20), || {
        let (future, promise) = Future::<u32>::pending();
        let bomb = PanicOnDrop;
        assert!(promise.set_cancel_hook(move || drop(bomb)));
        let waiter = {
            let f = future.clone();
            std::thread::spawn(move || f.result().copied().map_err(|e| e.to_string()))
        };
        // Let the waiter go to sleep on the future.
        std::thread::sleep(Duration::from_millis(100));
        let completed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            promise.set_result(9).unwrap();
        }));
        assert!(
            completed.is_err(),
            "the hook's drop panicked in the completer"
        );
        assert_eq!(waiter.join().unwrap(), Ok(9));
        assert_eq!(future.result(), Ok(&9));
    });
}
