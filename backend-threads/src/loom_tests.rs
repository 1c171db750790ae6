//! loom models of the pool's own races. Run with `cargo xtask loom`.

use futurepool_core::loom::atomic::{AtomicUsize, Ordering};
use futurepool_core::loom::{thread, Arc};
use futurepool_core::{FutureError, Shutdown, SubmitError};

use crate::ThreadPool;

/// submit vs shutdown: a submission is either refused or its task runs, and
/// `shutdown(wait=true)` returns only after every accepted task has finished.
#[test]
fn submit_vs_shutdown() {
    loom::model(|| {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        let submitter = {
            let (pool, ran) = (pool.clone(), ran.clone());
            thread::spawn(move || {
                pool.submit(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
            })
        };
        pool.shutdown(Shutdown::new());
        let submitted = submitter.join().unwrap();
        match submitted {
            Ok(future) => {
                // Accepted before the shutdown: it has run (the shutdown waited for it, or the
                // worker finishes it now).
                future.wait();
                assert_eq!(future.result(), Ok(&()));
                assert_eq!(ran.load(Ordering::SeqCst), 1);
            }
            Err(e) => {
                assert_eq!(e, SubmitError::ShutDown);
                assert_eq!(ran.load(Ordering::SeqCst), 0);
            }
        }
        pool.shutdown(Shutdown::default());
        assert_eq!(
            pool.stats().live_threads,
            0,
            "no thread outlives shutdown(wait=true)"
        );
    });
}

/// Idle-thread accounting vs new submissions: a worker going idle (spinning, then asleep)
/// while the next task arrives must pick it up — a lost wake-up shows as a loom deadlock.
#[test]
fn idle_accounting_vs_submission() {
    loom::model(|| {
        let pool = ThreadPool::new(1).unwrap();
        let first = pool.submit(|| 1).unwrap();
        assert_eq!(first.result(), Ok(&1));
        let second = pool.submit(|| 2).unwrap();
        assert_eq!(second.result(), Ok(&2));
        assert_eq!(pool.stats().live_threads, 1, "the idle thread was reused");
        drop(pool);
    });
}

/// cancel_futures vs a worker taking the task: each task either runs exactly once or is
/// cancelled, never both, never neither.
#[test]
fn cancel_futures_vs_worker() {
    loom::model(|| {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let future = pool
            .submit(move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let stopper = {
            let pool = pool.clone();
            thread::spawn(move || pool.shutdown(Shutdown::new().cancel_futures(true)))
        };
        stopper.join().unwrap();
        assert!(future.done(), "shutdown(wait) leaves no future pending");
        match future.result() {
            Ok(()) => assert_eq!(ran.load(Ordering::SeqCst), 1),
            Err(FutureError::Cancelled) => assert_eq!(ran.load(Ordering::SeqCst), 0),
            Err(other) => panic!("unexpected {other:?}"),
        }
    });
}

/// Sequential submit-and-wait reuses the one worker under every interleaving (CPython's
/// `test_idle_thread_reuse`): the worker counts itself idle before the future completes, so a
/// caller that saw the result never finds it busy and starts a second thread.
#[test]
fn result_then_submit_reuses_the_worker() {
    loom::model(|| {
        let pool = ThreadPool::new(2).unwrap();
        assert_eq!(pool.submit(|| 1).unwrap().result(), Ok(&1));
        assert_eq!(pool.submit(|| 2).unwrap().result(), Ok(&2));
        assert_eq!(pool.stats().live_threads, 1);
    });
}

/// Two submitters at once vs a worker going to sleep: every task runs (a lost wake-up shows as
/// a loom deadlock), and no more threads start than allowed.
#[test]
fn two_submitters_vs_a_sleeping_worker() {
    // Three threads and the worker's sleep protocol: two preemptions keep the search in
    // seconds rather than tens of minutes, and still cover a submitter preempted between its
    // push and its read of `sleepers` while the other submits and the worker falls asleep.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        assert_eq!(pool.submit(|| 0).unwrap().result(), Ok(&0));
        let other = {
            let pool = pool.clone();
            thread::spawn(move || *pool.submit(|| 1).unwrap().result().unwrap())
        };
        assert_eq!(pool.submit(|| 2).unwrap().result(), Ok(&2));
        assert_eq!(other.join().unwrap(), 1);
        assert!(pool.stats().live_threads <= 1);
    });
}

/// Shutdown racing the first submission, on a pool with no thread yet: an accepted task runs,
/// a refused one does not, and no thread outlives the second `shutdown(wait=true)`.
#[test]
fn shutdown_vs_first_submission() {
    loom::model(|| {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        let submitter = {
            let (pool, ran) = (pool.clone(), ran.clone());
            thread::spawn(move || {
                pool.submit(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
                .is_ok()
            })
        };
        pool.shutdown(Shutdown::new());
        let accepted = submitter.join().unwrap();
        pool.shutdown(Shutdown::new());
        assert_eq!(ran.load(Ordering::SeqCst), usize::from(accepted));
        assert_eq!(pool.stats().live_threads, 0);
    });
}

/// A batch never waits behind a long task while a thread sleeps: with two workers, the first
/// task blocks until the second has run. A worker that moves both from the tail into the head
/// and runs the first must see the second taken by the other worker (woken by a push, and
/// never asleep while the head holds a task) — otherwise the first task waits forever, which
/// loom reports as a deadlock.
#[test]
fn a_batch_never_waits_behind_a_long_task() {
    // Three threads, two locks and a warm-up: one preemption keeps the search in minutes.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(1);
    model.check(|| {
        let pool = ThreadPool::new(2).unwrap();
        // Two threads, both started and idle (or asleep) by now.
        let warm: Vec<_> = (0..2).map(|_| pool.submit(|| ()).unwrap()).collect();
        for f in &warm {
            f.wait();
        }
        let (gate, opener) = futurepool_core::Future::<()>::pending();
        let waiter = pool.submit(move || gate.result().is_ok()).unwrap();
        let other = pool.submit(move || opener.set_result(()).is_ok()).unwrap();
        assert_eq!(waiter.result(), Ok(&true));
        assert_eq!(other.result(), Ok(&true));
    });
}
