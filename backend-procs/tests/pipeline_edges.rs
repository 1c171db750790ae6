//! Edge cases of sending jobs ahead (the `dispatch` module), found in review.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use futurepool_procs::{FutureError, MapOptions, ProcessPool};
use futurepool_testkit::watchdog;

futurepool_procs::test_worker!();

const LIMIT: Duration = Duration::from_secs(60);

fn id(x: u64) -> u64 {
    x
}

fn unit(_: ()) {}

fn sleep_ms(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

/// Creates the file `path`, then sleeps 1.5 s (holds its worker while the test queues work).
fn hold(path: String) -> u8 {
    fs::write(path, b"").unwrap();
    thread::sleep(Duration::from_millis(1500));
    0
}

futurepool_procs::register!(id, unit, hold, sleep_ms);

/// Submits 200 no-op tasks and waits for them: the pool's moving average of task times drops
/// well under the 1 ms below which jobs are sent ahead.
fn warm_up(pool: &ProcessPool) {
    let futures: Vec<_> = (0..200).map(|i| pool.submit(id, i).unwrap()).collect();
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(f.result(), Ok(&(i as u64)));
    }
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("futurepool-edges-{}-{name}", std::process::id()))
}

/// Submits 200 no-op tasks without waiting (so that the tasks submitted next are queued when
/// the manager thread reaches them, by then sending ahead); returns a check that they came back.
fn warm_up_async(pool: &ProcessPool) -> impl FnOnce() {
    let futures: Vec<_> = (0..200).map(|i| pool.submit(id, i).unwrap()).collect();
    move || {
        for (i, f) in futures.iter().enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64)));
        }
    }
}

/// Waits (up to 20 s) until `ready`.
fn eventually(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// Waits (up to 20 s) until `path` exists.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// A chunk whose request frame is larger than a socket buffer (its arguments are zero bytes
/// each, so it counts as 0 bytes against `PIPELINE_BYTES`, but each item costs 9 bytes of
/// framing) is sent ahead behind a chunk whose reply is larger than a socket buffer too: the
/// parent blocks writing the second request while the worker blocks writing the first reply.
#[test]
fn a_large_chunk_sent_ahead_does_not_deadlock_against_a_large_reply() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        warm_up(&pool);
        // The only worker is held by `apply` on another thread (no manager thread, so the
        // moving average stays low) while both chunks are queued: the manager thread then
        // takes the first and, the pool being fast, sends the second ahead.
        let flag = scratch("hold");
        let _ = fs::remove_file(&flag);
        thread::scope(|s| {
            let held = s.spawn(|| pool.apply(hold, flag.to_string_lossy().into_owned()));
            wait_for_file(&flag);
            let n = 33_000;
            let outcomes: Vec<_> = pool
                .map(
                    unit,
                    vec![(); 2 * n],
                    MapOptions::new().chunksize(n).buffersize(2 * n),
                )
                .unwrap()
                .collect();
            assert_eq!(outcomes.len(), 2 * n);
            assert!(outcomes.iter().all(|o| o.is_ok()));
            assert_eq!(held.join().unwrap(), Ok(0));
        });
        let _ = fs::remove_file(&flag);
    });
}

/// `kill_workers()` ends the pool's workers and fails its running tasks (Python's
/// `kill_workers`: the pool breaks, every pending work item fails). A task sent ahead is
/// running (it could not be cancelled), so it fails too: it must not be run on a worker
/// started after the kill.
#[test]
fn kill_workers_fails_the_tasks_sent_ahead_and_starts_no_worker() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let warm = warm_up_async(&pool);
        let hung = pool.submit(sleep_ms, 60_000).unwrap();
        let behind: Vec<_> = (0..3).map(|i| pool.submit(id, i).unwrap()).collect();
        warm();
        eventually("the tasks behind the hung one to be sent ahead", || {
            behind[0].running()
        });
        let started = pool.processes_started();
        pool.kill_workers();
        assert!(
            matches!(hung.result(), Err(FutureError::WorkerLost(_))),
            "{:?}",
            hung.result()
        );
        for f in &behind {
            assert!(
                f.result().is_err(),
                "a task sent ahead ran after kill_workers: {:?}",
                f.result()
            );
        }
        assert_eq!(
            pool.processes_started(),
            started,
            "a worker was started after kill_workers"
        );
    });
}
