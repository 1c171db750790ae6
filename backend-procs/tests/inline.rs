//! A thread that waits for a submitted task runs it itself (`Future::pending_with_helper`,
//! `backend-procs/src/hold.rs`), and after a run of prompt waiters a task's token is held back:
//! what a user relies on either way. Every task still starts though its submitter only polls
//! `done()` or does nothing at all; `shutdown(wait)` waits for a task a waiter runs, and for the
//! done-callbacks of that task; a callback never runs on the waiting thread; a kill reaches a
//! task a waiter runs; many waiters at once each get their own value.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futurepool_procs::{FutureError, ProcessPool, Shutdown};
use futurepool_testkit::watchdog;

futurepool_procs::test_worker!();

const LIMIT: Duration = Duration::from_secs(90);

fn id(x: u64) -> u64 {
    x
}

fn sleep_ms(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

/// Creates the file `path` after `ms` milliseconds.
fn touch_after(arg: (u64, String)) -> u64 {
    thread::sleep(Duration::from_millis(arg.0));
    fs::write(&arg.1, b"ran").unwrap();
    arg.0
}

futurepool_procs::register!(id, sleep_ms, touch_after);

fn scratch(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("fp-inline-{}-{name}", std::process::id()));
    let _ = fs::remove_file(&path);
    path
}

/// Round trips in a row, each waited for right after its submit, the way that makes the pool
/// run tasks on their waiters and then hold the next task's token back.
fn warm(pool: &ProcessPool) {
    for i in 0..24u64 {
        assert_eq!(pool.submit(id, i).unwrap().result(), Ok(&i));
    }
}

fn appears_within(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if path.exists() {
            return true;
        }
        thread::sleep(Duration::from_millis(2));
    }
    path.exists()
}

/// A task whose submitter neither waits nor looks (it keeps the future and sleeps) still
/// runs: a held token is released by the ticker.
#[test]
fn a_task_nobody_looks_at_still_runs() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        for round in 0..5 {
            warm(&pool);
            let path = scratch(&format!("untouched-{round}"));
            let future = pool
                .submit(touch_after, (0, path.display().to_string()))
                .unwrap();
            assert!(
                appears_within(&path, Duration::from_secs(20)),
                "round {round}: the task did not run while nobody looked at its future"
            );
            assert_eq!(future.result(), Ok(&0));
            fs::remove_file(&path).unwrap();
        }
    });
}

/// A submitter that only polls `done()` sees the task finish.
#[test]
fn polling_done_alone_sees_the_task_finish() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        for round in 0..5u64 {
            warm(&pool);
            let future = pool.submit(id, round).unwrap();
            let start = Instant::now();
            while !future.done() {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "round {round}: never done"
                );
                thread::sleep(Duration::from_micros(200));
            }
            assert_eq!(future.result(), Ok(&round));
        }
    });
}

/// A submitter that looks at its future with a timed wait only, or drops it, still gets the
/// task run.
#[test]
fn timed_waits_and_dropped_futures_still_run() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        warm(&pool);
        let future = pool.submit(id, 5).unwrap();
        let start = Instant::now();
        let mut got = None;
        while got.is_none() && start.elapsed() < Duration::from_secs(20) {
            if let Ok(v) = future.result_timeout(Duration::from_millis(1)) {
                got = Some(*v);
            }
        }
        assert_eq!(got, Some(5));
        warm(&pool);
        let path = scratch("dropped");
        drop(
            pool.submit(touch_after, (0, path.display().to_string()))
                .unwrap(),
        );
        assert!(appears_within(&path, Duration::from_secs(20)));
        fs::remove_file(&path).unwrap();
    });
}

/// `shutdown(wait=True)` while another thread is blocked in `result()` running its own task
/// returns only once that task finished (and the waiter got its value).
#[test]
fn shutdown_waits_for_a_task_its_waiter_runs() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        warm(&pool);
        let path = scratch("shutdown-waits");
        let arg = (600, path.display().to_string());
        let (started, waited) = mpsc::channel();
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                let future = pool.submit(touch_after, arg).unwrap();
                started.send(()).unwrap();
                future.result().cloned().map_err(FutureError::cloned)
            });
            waited.recv().unwrap();
            thread::sleep(Duration::from_millis(150));
            pool.shutdown(Shutdown::new());
            assert!(
                path.exists(),
                "shutdown(wait) returned before the task finished"
            );
            assert!(pool.worker_pids().is_empty());
            assert_eq!(waiter.join().unwrap(), Ok(600));
        });
        fs::remove_file(&path).unwrap();
    });
}

/// A done-callback registered (from another thread) while the waiter runs the task does not
/// run on the waiting thread, runs once, and has run when `shutdown(wait=True)` returns (as
/// callbacks run by a manager thread have: CPython runs them on its management thread, which
/// `shutdown(wait=True)` joins).
#[test]
fn a_callback_added_while_the_waiter_runs_the_task_runs_elsewhere_before_shutdown_returns() {
    watchdog(LIMIT, || {
        for round in 0..3 {
            let pool = ProcessPool::new(1).unwrap();
            warm(&pool);
            let ran_on = Arc::new(Mutex::new(Vec::new()));
            let finished = Arc::new(AtomicBool::new(false));
            let (tx, rx) = mpsc::channel();
            thread::scope(|s| {
                let waiter = s.spawn(|| {
                    let future = pool.submit(sleep_ms, 400).unwrap();
                    tx.send(future.clone()).unwrap();
                    let value = future.result().cloned().map_err(FutureError::cloned);
                    (thread::current().id(), value)
                });
                let future = rx.recv().unwrap();
                thread::sleep(Duration::from_millis(100));
                let (ran, done) = (ran_on.clone(), finished.clone());
                future.add_done_callback(move |f| {
                    assert_eq!(f.result(), Ok(&400));
                    thread::sleep(Duration::from_millis(300));
                    ran.lock().unwrap().push(thread::current().id());
                    done.store(true, Ordering::SeqCst);
                });
                let (waiter_id, value) = waiter.join().unwrap();
                assert_eq!(value, Ok(400));
                pool.shutdown(Shutdown::new());
                assert!(
                    finished.load(Ordering::SeqCst),
                    "round {round}: shutdown(wait) returned before the task's done-callback ran"
                );
                let ran_on = ran_on.lock().unwrap();
                assert_eq!(ran_on.len(), 1);
                assert_ne!(
                    ran_on[0], waiter_id,
                    "the callback ran on the waiting thread"
                );
            });
        }
    });
}

/// `kill_workers()` while a waiter runs its task: the waiter gets `WorkerLost` at once, and
/// the pool's drop returns.
#[test]
fn kill_workers_reaches_a_task_its_waiter_runs() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        warm(&pool);
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                let future = pool.submit(sleep_ms, 30_000).unwrap();
                let start = Instant::now();
                let outcome = future.result().cloned().map_err(FutureError::cloned);
                (outcome, start.elapsed())
            });
            thread::sleep(Duration::from_millis(300));
            pool.kill_workers();
            let (outcome, took) = waiter.join().unwrap();
            assert!(
                matches!(outcome, Err(FutureError::WorkerLost(_))),
                "{outcome:?}"
            );
            assert!(
                took < Duration::from_secs(20),
                "the kill did not reach the task"
            );
        });
    });
}

/// Many threads submitting and waiting at once, on a pool with fewer workers: each gets its
/// own value; and many threads waiting for one future all see it.
#[test]
fn many_waiters_at_once() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        warm(&pool);
        let ok = AtomicUsize::new(0);
        thread::scope(|s| {
            for t in 0..8u64 {
                let (pool, ok) = (&pool, &ok);
                s.spawn(move || {
                    for i in 0..40u64 {
                        let x = t * 1000 + i;
                        assert_eq!(pool.submit(id, x).unwrap().result(), Ok(&x));
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(ok.load(Ordering::Relaxed), 8 * 40);
        for round in 0..20u64 {
            let future = pool.submit(id, round).unwrap();
            thread::scope(|s| {
                for _ in 0..6 {
                    let future = future.clone();
                    s.spawn(move || assert_eq!(future.result(), Ok(&round)));
                }
            });
        }
    });
}

/// A held task released by some other interest in it (here `done()` on another thread) at the
/// moment the pool shuts down with `wait=True` still runs: a submitted task is never failed by
/// a `shutdown` that does not cancel.
#[test]
fn a_held_task_released_during_shutdown_still_runs() {
    watchdog(LIMIT, || {
        for round in 0..40u64 {
            let pool = ProcessPool::new(1).unwrap();
            warm(&pool);
            let future = pool.submit(id, round).unwrap();
            let poller = {
                let future = future.clone();
                thread::spawn(move || future.done())
            };
            pool.shutdown(Shutdown::new());
            poller.join().unwrap();
            assert_eq!(future.result(), Ok(&round), "round {round}");
        }
    });
}

/// An async waker that panics when woken.
struct PanickingWaker;

impl std::task::Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("this waker panics");
    }
}

/// A panic on the waiting thread while it runs its task (here: an async waker registered
/// meanwhile panics when the completion wakes it) reaches the waiter, and the pool still
/// shuts down: the waiter's help is over. (Hung, before the fix, whenever the waiter ran the
/// task: in most runs.)
#[test]
fn a_panic_while_the_waiter_runs_its_task_does_not_hang_shutdown() {
    use std::future::Future as _;
    use std::task::{Context, Waker};
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        warm(&pool);
        let (tx, rx) = mpsc::channel();
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                let future = pool.submit(sleep_ms, 400).unwrap();
                tx.send(future.clone()).unwrap();
                let _ = future.result();
            });
            let future = rx.recv().unwrap();
            thread::sleep(Duration::from_millis(100));
            let waker = Waker::from(Arc::new(PanickingWaker));
            let mut done = Box::pin(future.done_async());
            let polled = done.as_mut().poll(&mut Context::from_waker(&waker));
            assert!(polled.is_pending());
            // The waiter runs its task (and the waker's panic reaches it) when its task was
            // held or still queued; on a busy machine a manager thread may have taken the task
            // first (the panic is then that thread's). Either way nothing may hang.
            let _ = waiter.join();
            drop(done);
        });
        pool.shutdown(Shutdown::new());
        assert!(pool.worker_pids().is_empty());
    });
}

/// A task submitted (and held) while `shutdown(cancel_futures=True)` is under way, after the
/// backlog was cancelled: its future still completes (run or cancelled), it is not left
/// pending for ever.
#[test]
fn a_task_held_while_shutdown_cancels_still_completes() {
    watchdog(LIMIT, || {
        for round in 0..40u64 {
            let pool = ProcessPool::new(1).unwrap();
            warm(&pool);
            thread::scope(|s| {
                let submitter = s.spawn(|| {
                    let mut outcomes = Vec::new();
                    for i in 0.. {
                        let Ok(future) = pool.submit(id, i) else {
                            break;
                        };
                        if i % 10 == 9 {
                            // A waiter that comes late: its task was held, and the shutdown
                            // may come meanwhile.
                            thread::sleep(Duration::from_millis(30));
                        }
                        // A future left pending for ever hangs here (the watchdog fails
                        // the test).
                        outcomes.push((i, future.result().cloned().ok()));
                    }
                    outcomes
                });
                thread::sleep(Duration::from_millis(5 + 7 * (round % 5)));
                pool.shutdown(Shutdown::new().cancel_futures(true));
                for (i, got) in submitter.join().unwrap() {
                    assert!(
                        got.is_none() || got == Some(i),
                        "round {round}: task {i}: {got:?}"
                    );
                }
            });
        }
    });
}

/// A task a manager thread has taken (it waits for the only worker) is not starved by a
/// thread that submits and waits in a loop, running each of its tasks itself: the waiter
/// leaves an idle worker to a manager thread that waits for one.
#[test]
fn a_waiter_looping_does_not_starve_a_task_taken_by_a_manager_thread() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        warm(&pool);
        let other_done = AtomicBool::new(false);
        thread::scope(|s| {
            let looper = s.spawn(|| {
                let start = Instant::now();
                let mut rounds = 0u64;
                while !other_done.load(Ordering::SeqCst) {
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "the other task starved for 30 s ({rounds} round trips meanwhile)"
                    );
                    assert_eq!(pool.submit(id, rounds).unwrap().result(), Ok(&rounds));
                    rounds += 1;
                }
                rounds
            });
            for i in 0..20u64 {
                thread::sleep(Duration::from_millis(20));
                let other = pool.submit(sleep_ms, i).unwrap();
                // Its own waiter would run it (or release it): look only from afar.
                while !other.done() {
                    thread::sleep(Duration::from_millis(1));
                }
                assert_eq!(other.result(), Ok(&i));
            }
            other_done.store(true, Ordering::SeqCst);
            looper.join().unwrap();
        });
    });
}

/// `stats()` counts a task its waiter runs as running: one busy worker, nothing queued.
#[test]
fn stats_count_a_task_its_waiter_runs() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        warm(&pool);
        let (tx, rx) = mpsc::channel();
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                let future = pool.submit(sleep_ms, 800).unwrap();
                tx.send(()).unwrap();
                assert_eq!(future.result(), Ok(&800));
            });
            rx.recv().unwrap();
            thread::sleep(Duration::from_millis(200));
            let stats = pool.stats();
            assert_eq!(
                (stats.busy_workers, stats.queued_tasks),
                (1, 0),
                "{stats:?}"
            );
            waiter.join().unwrap();
        });
    });
}

/// The pool's options hold for a task its waiter runs: `task_timeout` kills it,
/// `cancel_kills_running` cancels it, `max_tasks_per_child` replaces the worker, and a worker
/// that dies under it fails it (and, with `break_on_worker_death`, breaks the pool).
#[test]
fn options_hold_for_a_task_its_waiter_runs() {
    watchdog(LIMIT, || {
        // task_timeout
        let pool = ProcessPool::builder()
            .max_workers(1)
            .task_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        warm(&pool);
        let start = Instant::now();
        assert_eq!(
            pool.submit(sleep_ms, 30_000).unwrap().result(),
            Err(FutureError::TimedOut)
        );
        assert!(start.elapsed() < Duration::from_secs(20));
        warm(&pool);
        drop(pool);

        // cancel_kills_running
        let pool = ProcessPool::builder()
            .max_workers(1)
            .cancel_kills_running(true)
            .build()
            .unwrap();
        warm(&pool);
        let (tx, rx) = mpsc::channel();
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                let future = pool.submit(sleep_ms, 30_000).unwrap();
                tx.send(future.clone()).unwrap();
                future.result().cloned().map_err(FutureError::cloned)
            });
            let future = rx.recv().unwrap();
            thread::sleep(Duration::from_millis(200));
            assert!(future.running());
            future.cancel();
            assert_eq!(waiter.join().unwrap(), Err(FutureError::Cancelled));
        });
        warm(&pool);
        drop(pool);

        // max_tasks_per_child
        let pool = ProcessPool::builder()
            .max_workers(1)
            .max_tasks_per_child(std::num::NonZeroUsize::new(3).unwrap())
            .build()
            .unwrap();
        warm(&pool);
        assert_eq!(pool.processes_started(), 8, "24 tasks, 3 per worker");
        drop(pool);

        // a worker dying under the waiter, with break_on_worker_death
        let pool = ProcessPool::builder()
            .max_workers(1)
            .break_on_worker_death(true)
            .build()
            .unwrap();
        warm(&pool);
        let (tx, rx) = mpsc::channel();
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                let future = pool.submit(sleep_ms, 30_000).unwrap();
                tx.send(()).unwrap();
                future.result().cloned().map_err(FutureError::cloned)
            });
            rx.recv().unwrap();
            thread::sleep(Duration::from_millis(200));
            for pid in pool.worker_pids() {
                // SAFETY: kill(2) has no memory-safety preconditions; `pid` is the pool's
                // worker, not yet reaped.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
            let outcome = waiter.join().unwrap();
            assert!(
                matches!(outcome, Err(FutureError::WorkerLost(_))),
                "{outcome:?}"
            );
        });
        assert!(pool.submit(id, 1).is_err(), "the pool is broken");
    });
}

/// The Redis backend's agents' way: `submit_encoded`, then a done-callback that submits the
/// next item — on a pool whose recent tasks were run by prompt waiters (so the first may be
/// held): every item runs, in order, and the chain ends.
#[test]
fn a_chain_of_submits_from_done_callbacks_runs_to_the_end() {
    use futurepool_procs::__private::{codec, name_of};

    fn next(pool: Arc<ProcessPool>, i: u64, tx: mpsc::Sender<u64>) {
        if i == 50 {
            tx.send(i).unwrap();
            return;
        }
        let arg = codec::encode(&i).unwrap();
        let future = pool.submit_encoded(name_of(&id), arg, None).unwrap();
        let after = pool.clone();
        future.add_done_callback(move |f| {
            let got: u64 = codec::decode(f.result().unwrap()).unwrap();
            assert_eq!(got, i);
            next(after, i + 1, tx);
        });
    }

    watchdog(LIMIT, || {
        let pool = Arc::new(ProcessPool::new(1).unwrap());
        for _ in 0..3 {
            warm(&pool);
            let (tx, rx) = mpsc::channel();
            next(pool.clone(), 0, tx);
            assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok(50));
        }
    });
}

/// `cancel()` right after the submit, on a pool that holds tasks back: the future ends
/// cancelled (or, if a manager thread started the task first, with its value), and the pool
/// goes on.
#[test]
fn cancelling_a_task_held_back() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let mut cancelled = 0;
        for round in 0..10u64 {
            warm(&pool);
            let future = pool.submit(sleep_ms, 100 + round).unwrap();
            if future.cancel() {
                cancelled += 1;
                assert_eq!(future.result(), Err(FutureError::Cancelled));
            } else {
                assert_eq!(future.result(), Ok(&(100 + round)));
            }
        }
        assert!(
            cancelled > 0,
            "no cancel of a task just submitted succeeded"
        );
        warm(&pool);
    });
}
