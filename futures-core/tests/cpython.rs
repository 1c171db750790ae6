//! Tests ported from CPython's `Lib/test/test_concurrent_futures/` (`test_future.py`,
//! `test_wait.py`, `test_as_completed.py`) and manually rewritten. Each test names the CPython
//! test it comes from. Where futurepool deliberately differs (a cancelled future is done at
//! once), the test asserts our behaviour and says so.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use futurepool_core::{as_completed, wait, Future, FutureError, ReturnWhen, Waitable};

const LONG: Duration = Duration::from_secs(30);

// ---- test_future.py -------------------------------------------------------------------------

/// test_future.FutureTests.test_done_callback_with_result
#[test]
fn done_callback_with_result() {
    let (f, p) = pending();
    let seen = Arc::new(AtomicI64::new(0));
    let s = seen.clone();
    f.add_done_callback(move |f| s.store(*f.result().unwrap(), Ordering::SeqCst));
    p.set_result(5).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 5);
}

/// test_future.FutureTests.test_done_callback_with_exception
#[test]
fn done_callback_with_exception() {
    let (f, p) = pending();
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    f.add_done_callback(move |f| *s.lock().unwrap() = f.exception().map(|e| e.cloned()));
    p.set_exception("test".into()).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Some(FutureError::Raised("test".to_string()))
    );
}

/// test_future.FutureTests.test_done_callback_with_cancel
#[test]
fn done_callback_with_cancel() {
    let (f, _p) = pending();
    let was_cancelled = Arc::new(AtomicBool::new(false));
    let w = was_cancelled.clone();
    f.add_done_callback(move |f| w.store(f.cancelled(), Ordering::SeqCst));
    assert!(f.cancel());
    assert!(was_cancelled.load(Ordering::SeqCst));
}

/// test_future.FutureTests.test_done_callback_raises: a panicking callback is reported and the
/// next one still runs.
#[test]
fn done_callback_raises() {
    let (f, p) = pending();
    let raising_was_called = Arc::new(AtomicBool::new(false));
    let fn_was_called = Arc::new(AtomicBool::new(false));
    let r = raising_was_called.clone();
    f.add_done_callback(move |_| {
        r.store(true, Ordering::SeqCst);
        panic!("doh!");
    });
    let c = fn_was_called.clone();
    f.add_done_callback(move |_| c.store(true, Ordering::SeqCst));
    p.set_result(5).unwrap();
    assert!(raising_was_called.load(Ordering::SeqCst));
    assert!(fn_was_called.load(Ordering::SeqCst));
    assert_eq!(f.result(), Ok(&5));
}

/// test_future.FutureTests.test_done_callback_already_successful
#[test]
fn done_callback_already_successful() {
    let (f, p) = pending();
    p.set_result(5).unwrap();
    let seen = Arc::new(AtomicI64::new(0));
    let s = seen.clone();
    f.add_done_callback(move |f| s.store(*f.result().unwrap(), Ordering::SeqCst));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        5,
        "runs at once in the caller's thread"
    );
}

/// test_future.FutureTests.test_done_callback_already_failed
#[test]
fn done_callback_already_failed() {
    let f = exception();
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    f.add_done_callback(move |f| *s.lock().unwrap() = f.exception().map(|e| e.cloned()));
    assert_eq!(
        *seen.lock().unwrap(),
        Some(FutureError::Raised("OSError".to_string()))
    );
}

/// test_future.FutureTests.test_done_callback_already_cancelled
#[test]
fn done_callback_already_cancelled() {
    let (f, _p) = pending();
    assert!(f.cancel());
    let was_cancelled = Arc::new(AtomicBool::new(false));
    let w = was_cancelled.clone();
    f.add_done_callback(move |f| w.store(f.cancelled(), Ordering::SeqCst));
    assert!(was_cancelled.load(Ordering::SeqCst));
}

/// test_future.FutureTests.test_done_callback_raises_already_succeeded
#[test]
fn done_callback_raises_already_succeeded() {
    let f = successful();
    f.add_done_callback(|_| panic!("doh!"));
    // Caught and logged: we are still here, and the future is unchanged.
    assert_eq!(f.result(), Ok(&42));
}

/// test_future.FutureTests.test_repr (our `Debug` names the state)
#[test]
fn debug_names_state() {
    let (p, _pp) = pending();
    let (r, _rp) = running();
    assert!(format!("{p:?}").contains("pending"));
    assert!(format!("{r:?}").contains("running"));
    assert!(format!("{:?}", cancelled()).contains("cancelled"));
    assert!(format!("{:?}", exception()).contains("finished"));
    assert!(format!("{:?}", successful()).contains("finished"));
}

/// test_future.FutureTests.test_cancel
#[test]
fn cancel() {
    let (f1, _p1) = pending();
    let (f2, _p2) = running();
    let f3 = cancelled();
    let f5 = exception();
    let f6 = successful();

    assert!(f1.cancel());
    assert!(f1.cancelled());
    assert!(!f2.cancel());
    assert!(f2.running());
    assert!(f3.cancel());
    assert!(f3.cancelled());
    assert!(!f5.cancel());
    assert!(f5.done() && !f5.cancelled());
    assert!(!f6.cancel());
    assert_eq!(f6.result(), Ok(&42));
}

/// test_future.FutureTests.test_cancelled / test_done / test_running
#[test]
fn cancelled_done_running() {
    let (p, _pp) = pending();
    let (r, _rp) = running();
    let (c, e, s) = (cancelled(), exception(), successful());
    assert_eq!(
        [
            p.cancelled(),
            r.cancelled(),
            c.cancelled(),
            e.cancelled(),
            s.cancelled()
        ],
        [false, false, true, false, false]
    );
    assert_eq!(
        [p.done(), r.done(), c.done(), e.done(), s.done()],
        [false, false, true, true, true]
    );
    assert_eq!(
        [
            p.running(),
            r.running(),
            c.running(),
            e.running(),
            s.running()
        ],
        [false, true, false, false, false]
    );
}

/// test_future.FutureTests.test_result_with_timeout
#[test]
fn result_with_timeout() {
    let (p, _pp) = pending();
    let (r, _rp) = running();
    assert_eq!(p.result_timeout(Duration::ZERO), Err(FutureError::TimedOut));
    assert_eq!(r.result_timeout(Duration::ZERO), Err(FutureError::TimedOut));
    assert_eq!(
        cancelled().result_timeout(Duration::ZERO),
        Err(FutureError::Cancelled)
    );
    assert_eq!(
        exception().result_timeout(Duration::ZERO),
        Err(FutureError::Raised(&"OSError".to_string()))
    );
    assert_eq!(successful().result_timeout(Duration::ZERO), Ok(&42));
}

/// test_future.FutureTests.test_result_with_success
#[test]
fn result_with_success() {
    let (f1, p1) = pending();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        p1.set_result(42).unwrap();
    });
    assert_eq!(f1.result_timeout(LONG), Ok(&42));
    t.join().unwrap();
}

/// test_future.FutureTests.test_result_with_cancel
#[test]
fn result_with_cancel() {
    let (f1, _p1) = pending();
    let f = f1.clone();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        f.cancel();
    });
    assert_eq!(f1.result_timeout(LONG), Err(FutureError::Cancelled));
    t.join().unwrap();
}

/// test_future.FutureTests.test_exception_with_timeout
#[test]
fn exception_with_timeout() {
    let (p, _pp) = pending();
    let (r, _rp) = running();
    assert_eq!(
        p.exception_timeout(Duration::ZERO),
        Some(FutureError::TimedOut)
    );
    assert_eq!(
        r.exception_timeout(Duration::ZERO),
        Some(FutureError::TimedOut)
    );
    assert_eq!(
        cancelled().exception_timeout(Duration::ZERO),
        Some(FutureError::Cancelled)
    );
    assert_eq!(
        exception().exception_timeout(Duration::ZERO),
        Some(FutureError::Raised(&"OSError".to_string()))
    );
    assert_eq!(successful().exception_timeout(Duration::ZERO), None);
}

/// test_future.FutureTests.test_exception_with_success
#[test]
fn exception_with_success() {
    let (f1, p1) = pending();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        p1.set_exception("OSError".into()).unwrap();
    });
    assert_eq!(
        f1.exception_timeout(LONG),
        Some(FutureError::Raised(&"OSError".to_string()))
    );
    t.join().unwrap();
}

/// test_future.FutureTests.test_multiple_set_result
#[test]
fn multiple_set_result() {
    let (f, p) = pending();
    p.set_result(1).unwrap();
    let err = p.set_result(2).unwrap_err();
    assert_eq!(err.state(), "finished");
    assert_eq!(err.into_inner(), 2, "the rejected value is given back");
    assert!(f.done());
    assert_eq!(f.result(), Ok(&1));
}

/// test_future.FutureTests.test_multiple_set_exception
#[test]
fn multiple_set_exception() {
    let (f, p) = pending();
    p.set_exception("ValueError".into()).unwrap();
    let err = p.set_exception("Exception".into()).unwrap_err();
    assert_eq!(err.into_inner(), "Exception");
    assert_eq!(
        f.exception(),
        Some(FutureError::Raised(&"ValueError".to_string()))
    );
}

/// test_future.FutureTests.test_get_snapshot (concurrent readers of a finished future agree)
#[test]
fn concurrent_readers_of_finished_future() {
    let f = F::ready(100);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let f = f.clone();
            thread::spawn(move || {
                for _ in 0..1000 {
                    assert!(f.done() && !f.cancelled());
                    assert_eq!(f.result(), Ok(&100));
                    assert_eq!(f.exception(), None);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
}

// ---- test_wait.py ---------------------------------------------------------------------------

/// test_wait.WaitTests.test_20369: duplicates are collapsed.
#[test]
fn wait_20369_duplicates() {
    let future = submit(|| Ok::<_, String>(2i64));
    let waited = wait([&future, &future], None, ReturnWhen::AllCompleted);
    assert_eq!(waited.done.len(), 1);
    assert!(waited.not_done.is_empty());
}

/// test_wait.WaitTests.test_first_completed — except that our cancelled future counts as done
/// immediately (CPython leaves a cancelled-but-not-notified future in `not_done`).
#[test]
fn wait_first_completed() {
    watchdog(LONG, || {
        let event = Event::default();
        let e = event.clone();
        let future1 = submit(|| Ok::<_, String>(21i64 * 2));
        future1.wait();
        let future2 = submit(move || {
            e.wait();
            Ok::<_, String>(0)
        });
        let (c, s) = (cancelled(), successful());
        let _ = s;
        let waited = wait([&future1, &future2], None, ReturnWhen::FirstCompleted);
        assert_eq!(waited.done.len(), 1);
        assert!(std::ptr::eq(waited.done[0], &future1));
        assert_eq!(waited.not_done.len(), 1);

        let waited = wait([&c, &future2], None, ReturnWhen::FirstCompleted);
        assert_eq!(waited.done.len(), 1, "a cancelled future is done at once");
        assert!(std::ptr::eq(waited.done[0], &c));
        event.set();
        future2.result().unwrap();
    });
}

/// test_wait.WaitTests.test_first_completed_some_already_completed
#[test]
fn wait_first_completed_some_already_completed() {
    watchdog(LONG, || {
        let event = Event::default();
        let e = event.clone();
        let future1 = submit(move || {
            e.wait();
            Ok::<_, String>(0i64)
        });
        let (c, s) = (cancelled(), successful());
        let waited = wait([&c, &s, &future1], None, ReturnWhen::FirstCompleted);
        assert_eq!(waited.done.len(), 2);
        assert!(std::ptr::eq(waited.not_done[0], &future1));
        event.set();
        future1.result().unwrap();
    });
}

/// test_wait.WaitTests.test_first_exception
#[test]
fn wait_first_exception() {
    watchdog(LONG, || {
        let event1 = Event::default();
        let event2 = Event::default();
        let future1 = submit(|| Ok::<_, String>(42i64));
        let e1 = event1.clone();
        let future2 = submit(move || {
            e1.wait();
            Err::<i64, _>("this is an exception".to_string())
        });
        let e2 = event2.clone();
        let future3 = submit(move || {
            e2.wait();
            Ok::<_, String>(0i64)
        });
        let f1 = future1.clone();
        let t = thread::spawn(move || {
            f1.result().unwrap();
            event1.set();
        });
        let waited = wait(
            [&future1, &future2, &future3],
            None,
            ReturnWhen::FirstException,
        );
        assert_eq!(waited.done.len(), 2);
        assert_eq!(waited.not_done.len(), 1);
        assert!(std::ptr::eq(waited.not_done[0], &future3));
        t.join().unwrap();
        event2.set();
        future3.result().unwrap();
    });
}

/// test_wait.WaitTests.test_first_exception_some_already_complete — with our cancelled future
/// in `done`.
#[test]
fn wait_first_exception_some_already_complete() {
    watchdog(LONG, || {
        let event = Event::default();
        let future1 = submit(|| Err::<i64, _>("ZeroDivisionError".to_string()));
        let e = event.clone();
        let future2 = submit(move || {
            e.wait();
            Ok::<_, String>(0i64)
        });
        let (s, c) = (successful(), cancelled());
        let waited = wait(
            [&s, &c, &future1, &future2],
            None,
            ReturnWhen::FirstException,
        );
        assert_eq!(waited.done.len(), 3);
        assert_eq!(waited.not_done.len(), 1);
        assert!(std::ptr::eq(waited.not_done[0], &future2));
        event.set();
        future2.result().unwrap();
    });
}

/// test_wait.WaitTests.test_first_exception_one_already_failed
#[test]
fn wait_first_exception_one_already_failed() {
    watchdog(LONG, || {
        let event = Event::default();
        let e = event.clone();
        let future1 = submit(move || {
            e.wait();
            Ok::<_, String>(0i64)
        });
        let x = exception();
        let waited = wait([&x, &future1], None, ReturnWhen::FirstException);
        assert_eq!(waited.done.len(), 1);
        assert!(std::ptr::eq(waited.done[0], &x));
        event.set();
        future1.result().unwrap();
    });
}

/// test_wait.WaitTests.test_all_completed
#[test]
fn wait_all_completed() {
    watchdog(LONG, || {
        let future1 = submit(|| Err::<i64, _>("ZeroDivisionError".to_string()));
        let future2 = submit(|| Ok::<_, String>(42i64));
        let (s, c, x) = (successful(), cancelled(), exception());
        let waited = wait(
            [&s, &c, &x, &future1, &future2],
            None,
            ReturnWhen::AllCompleted,
        );
        assert_eq!(waited.done.len(), 5);
        assert!(waited.not_done.is_empty());
    });
}

/// test_wait.WaitTests.test_timeout
#[test]
fn wait_timeout() {
    watchdog(LONG, || {
        let event = Event::default();
        let e = event.clone();
        let future = submit(move || {
            e.wait();
            Ok::<_, String>(0i64)
        });
        let (c, x, s) = (cancelled(), exception(), successful());
        let waited = wait(
            [&c, &x, &s, &future],
            Some(Duration::from_millis(50)),
            ReturnWhen::AllCompleted,
        );
        assert_eq!(waited.done.len(), 3);
        assert!(std::ptr::eq(waited.not_done[0], &future));
        event.set();
        future.result().unwrap();
    });
}

/// test_wait.ThreadPoolWaitTests.test_pending_calls_race (issue #14406)
#[test]
fn wait_pending_calls_race() {
    watchdog(LONG, || {
        let event = Event::default();
        let fs: Vec<_> = (0..100)
            .map(|_| {
                let e = event.clone();
                submit(move || {
                    e.wait();
                    Ok::<_, String>(0i64)
                })
            })
            .collect();
        event.set();
        let waited = wait(&fs, None, ReturnWhen::AllCompleted);
        assert_eq!(waited.done.len(), 100);
    });
}

// ---- test_as_completed.py -------------------------------------------------------------------

/// test_as_completed.AsCompletedTests.test_no_timeout
#[test]
fn as_completed_no_timeout() {
    watchdog(LONG, || {
        let future1 = submit(|| Ok::<_, String>(42i64));
        let future2 = submit(|| Ok::<_, String>(42i64));
        let all = [cancelled(), exception(), successful(), future1, future2];
        let completed: Vec<F> = as_completed(all.iter().cloned(), None)
            .map(Result::unwrap)
            .collect();
        assert_eq!(completed.len(), 5);
        assert!(completed.iter().all(|f| f.done()));
    });
}

/// test_as_completed.AsCompletedTests.test_future_times_out
#[test]
fn as_completed_future_times_out() {
    watchdog(LONG, || {
        for timeout in [Duration::ZERO, Duration::from_millis(100)] {
            let event = Event::default();
            let e = event.clone();
            let future = submit(move || {
                e.wait();
                Ok::<_, String>(0i64)
            });
            let all = [cancelled(), exception(), successful(), future.clone()];
            let mut completed = 0;
            let mut timed_out = None;
            for f in as_completed(all, Some(timeout)) {
                match f {
                    Ok(f) => {
                        assert!(f.done());
                        completed += 1;
                    }
                    Err(e) => timed_out = Some(e),
                }
            }
            assert_eq!(completed, 3, "the sleeping future was not yielded");
            let e = timed_out.expect("a timeout error");
            assert_eq!((e.unfinished, e.total), (1, 4));
            event.set();
            future.result().unwrap();
        }
    });
}

/// test_as_completed.AsCompletedTests.test_duplicate_futures (issues 20367, 31641)
#[test]
fn as_completed_duplicate_futures() {
    watchdog(LONG, || {
        let future1 = submit(|| {
            thread::sleep(Duration::from_millis(20));
            Ok::<_, String>(1i64)
        });
        let completed: Vec<_> = as_completed(std::iter::repeat_n(future1, 3), None).collect();
        assert_eq!(completed.len(), 1);
    });
}

/// test_as_completed.AsCompletedTests.test_free_reference_yielded_future (issue 14406): the
/// iterator holds no reference to a future it yielded. We check it the Rust way: after
/// yielding, the yielded handle plus the caller's are the only handles (`try_into_result`
/// succeeds once the caller's copy is gone).
#[test]
fn as_completed_free_reference_yielded_future() {
    type Slot = (
        Future<String, ()>,
        Option<futurepool_core::Promise<String, ()>>,
    );
    let mut list: Vec<Slot> = (0..8)
        .map(|_| {
            let (f, p) = Future::pending();
            (f, Some(p))
        })
        .collect();
    list.push((Future::failed(FutureError::Cancelled), None));
    list.push((Future::ready("42".into()), None));

    let handles: Vec<_> = list.iter().map(|(f, _)| f.clone()).collect();
    let mut yielded = 0;
    let mut it = as_completed(handles, Some(Duration::ZERO));
    for item in &mut it {
        match item {
            Ok(f) => {
                let pos = list.iter().position(|(g, _)| *g == f).unwrap();
                list.remove(pos);
                // Only the yielded handle remains: it is the last one.
                assert!(f.try_into_result().is_ok());
                yielded += 1;
            }
            Err(e) => assert_eq!(e.to_string(), "8 (of 10) futures unfinished"),
        }
    }
    assert_eq!(yielded, 2);
    drop(it);

    let handles: Vec<_> = list.iter().map(|(f, _)| f.clone()).collect();
    list[0].1.take().unwrap().set_result("test".into()).unwrap();
    for f in as_completed(handles, None) {
        let f = f.unwrap();
        let pos = list.iter().position(|(g, _)| *g == f).unwrap();
        list.remove(pos);
        assert!(
            f.try_into_result().is_ok(),
            "the iterator kept no other handle"
        );
        if let Some((_, p)) = list.first_mut() {
            p.take().unwrap().set_result("test".into()).unwrap();
        }
    }
    assert!(list.is_empty());
}

/// test_as_completed.AsCompletedTests.test_correct_timeout_exception_msg
#[test]
fn as_completed_correct_timeout_exception_msg() {
    let (p, _pp) = pending();
    let (r, _rp) = running();
    let all = [cancelled(), p, r, successful()];
    let err = as_completed(all, Some(Duration::ZERO))
        .find_map(Result::err)
        .expect("a timeout error");
    assert_eq!(err.to_string(), "2 (of 4) futures unfinished");
}

/// Not in CPython: futures of different types waited on together.
#[test]
fn heterogeneous_as_completed() {
    let a = submit(|| Ok::<_, String>(1u8));
    let b = submit(|| Ok::<_, ()>("two".to_string()));
    let all: Vec<_> = as_completed([a.erase(), b.erase()], Some(LONG))
        .map(Result::unwrap)
        .collect();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(Waitable::done));
}
