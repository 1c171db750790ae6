//! Short tasks are sent to a worker ahead of time, several at once (see the crate's
//! `dispatch` module): what that may and may not change for a user.
//!
//! Each test submits, in one burst, enough no-op tasks that the pool's moving average of task
//! times falls well under the 1 ms below which jobs are sent ahead, then the tasks it is about:
//! when the manager thread reaches them, they are all in the queue.

use std::thread;
use std::time::{Duration, Instant};

use futurepool_procs::{FutureError, MapOptions, ProcessPool};
use futurepool_testkit::watchdog;

futurepool_procs::test_worker!();

const LIMIT: Duration = Duration::from_secs(60);

fn id(x: u64) -> u64 {
    x
}

fn sleep_ms(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

fn sleep_then_exit(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    std::process::exit(3)
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

/// `x`, except that 1 000 000 sleeps 300 ms and then exits.
fn id_or_exit(x: u64) -> u64 {
    if x == 1_000_000 {
        sleep_then_exit(300);
    }
    x
}

futurepool_procs::register!(id, sleep_ms, sleep_then_exit, pid, id_or_exit);

/// Submits 200 no-op tasks: the moving average drops from its 10 ms start to well under 1 ms
/// as they run. Returns a check that they all came back.
fn warm_up(pool: &ProcessPool) -> impl FnOnce() {
    let futures: Vec<_> = (0..200).map(|i| pool.submit(id, i).unwrap()).collect();
    move || {
        for (i, f) in futures.iter().enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64)));
        }
    }
}

/// Waits (up to 10 s) until `ready`.
fn eventually(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn tasks_queued_behind_a_crash_run_on_the_next_worker() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let first_pid = *pool.submit(pid, ()).unwrap().result().unwrap();
        let warm = warm_up(&pool);
        let crash = pool.submit(sleep_then_exit, 300).unwrap();
        let behind: Vec<_> = (0..5).map(|i| pool.submit(id, i).unwrap()).collect();
        warm();
        // Sent ahead: marked running while the crashing task still sleeps (as CPython marks
        // the items it moves to its call queue).
        eventually("the next task to be sent ahead", || behind[0].running());
        assert!(!crash.done());
        match crash.result() {
            Err(FutureError::WorkerLost(why)) => {
                assert!(why.contains("sleep_then_exit"), "{why}")
            }
            other => panic!("expected WorkerLost, got {other:?}"),
        }
        // The tasks behind it never started on the dead worker: each ran once, on the next.
        for (i, f) in behind.iter().enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64)));
        }
        let next_pid = *pool.submit(pid, ()).unwrap().result().unwrap();
        assert_ne!(next_pid, first_pid);
        assert_eq!(pool.processes_started(), 2);
    });
}

#[test]
fn a_task_sent_ahead_gets_its_whole_timeout_from_when_it_starts() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let short = pool.with_task_timeout(Duration::from_millis(1500));
        let warm = warm_up(&pool);
        // Each takes 1 s: counted from when it was sent, the second would time out at 1.5 s.
        let a = short.submit(sleep_ms, 1000).unwrap();
        let b = short.submit(sleep_ms, 1000).unwrap();
        warm();
        eventually("the second task to be sent ahead", || b.running());
        assert_eq!(a.result(), Ok(&1000));
        assert_eq!(b.result(), Ok(&1000));
        // And a task queued behind one that times out runs on the next worker.
        let warm = warm_up(&pool);
        let hung = short.submit(sleep_ms, 60_000).unwrap();
        let after = short.submit(id, 7).unwrap();
        warm();
        eventually("the task after the hung one to be sent ahead", || {
            after.running()
        });
        assert_eq!(hung.result(), Err(FutureError::TimedOut));
        assert_eq!(after.result(), Ok(&7));
    });
}

#[test]
fn tasks_beyond_the_pipeline_stay_cancellable() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let warm = warm_up(&pool);
        let slow = pool.submit(sleep_ms, 500).unwrap();
        let rest: Vec<_> = (0..40).map(|i| pool.submit(id, i).unwrap()).collect();
        warm();
        eventually("the slow task to start", || slow.running());
        // At most 8 tasks are on a worker at once: the last ones are still pending.
        let last = rest.last().unwrap();
        assert!(
            last.cancel(),
            "a task far back in the queue must be cancellable"
        );
        assert_eq!(last.result(), Err(FutureError::Cancelled));
        assert_eq!(slow.result(), Ok(&500));
        for (i, f) in rest[..39].iter().enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64)));
        }
    });
}

#[test]
fn many_short_tasks_over_two_workers_all_come_back_in_place() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let futures: Vec<_> = (0..20_000).map(|i| pool.submit(id, i).unwrap()).collect();
        for (i, f) in futures.iter().enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64)));
        }
        assert_eq!(pool.processes_started(), 2);
    });
}

#[test]
fn cancel_kills_running_with_tasks_sent_ahead() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .cancel_kills_running(true)
            .build()
            .unwrap();
        // The running task is cancelled: its worker is killed, the tasks behind it run on the
        // next worker.
        let warm = warm_up(&pool);
        let hung = pool.submit(sleep_ms, 60_000).unwrap();
        let behind: Vec<_> = (0..3).map(|i| pool.submit(id, i).unwrap()).collect();
        warm();
        eventually("the task behind the hung one to be sent ahead", || {
            behind[0].running()
        });
        assert!(hung.cancel());
        assert_eq!(hung.result(), Err(FutureError::Cancelled));
        for (i, f) in behind.iter().enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64)));
        }
        // A task sent ahead is cancelled while the one before it runs: the one before
        // finishes; the cancelled one ends `Cancelled` (its worker is killed as it reaches
        // it), and the ones after it still run.
        let warm = warm_up(&pool);
        let slow = pool.submit(sleep_ms, 300).unwrap();
        let doomed = pool.submit(sleep_ms, 60_000).unwrap();
        let after = pool.submit(id, 9).unwrap();
        warm();
        eventually("the doomed task to be sent ahead", || doomed.running());
        assert!(doomed.cancel());
        assert_eq!(slow.result(), Ok(&300));
        assert_eq!(doomed.result(), Err(FutureError::Cancelled));
        assert_eq!(after.result(), Ok(&9));
        assert_eq!(pool.submit(id, 10).unwrap().result(), Ok(&10));
    });
}

#[test]
fn map_without_chunks_sends_items_ahead_and_a_crash_fails_only_its_item() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let inputs: Vec<u64> = (0..300).chain([1_000_000]).chain(300..600).collect();
        let outcomes: Vec<_> = pool
            .map(id_or_exit, inputs.clone(), MapOptions::new().buffersize(64))
            .unwrap()
            .collect();
        assert_eq!(outcomes.len(), inputs.len());
        for (x, outcome) in inputs.iter().zip(&outcomes) {
            if *x == 1_000_000 {
                assert!(
                    matches!(outcome, Err(FutureError::WorkerLost(_))),
                    "{outcome:?}"
                );
            } else {
                assert_eq!(outcome, &Ok(*x));
            }
        }
        assert_eq!(pool.processes_started(), 2);
    });
}

#[test]
fn send_ahead_zero_keeps_short_tasks_off_a_worker_busy_with_a_long_one() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(2)
            .send_ahead(0)
            .build()
            .unwrap();
        let warm = warm_up(&pool);
        let long = pool.submit(sleep_ms, 3000).unwrap();
        let short: Vec<_> = (0..20).map(|i| pool.submit(id, i).unwrap()).collect();
        warm();
        // With tasks sent ahead (the default), some of these would wait the 3 s behind the
        // long one on its worker; here the other worker runs them all meanwhile.
        for (i, f) in short.iter().enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64)));
        }
        assert!(!long.done(), "the short tasks waited for the long one");
        assert_eq!(long.result(), Ok(&3000));
    });
}
