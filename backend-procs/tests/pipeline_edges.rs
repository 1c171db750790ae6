//! Edge cases of sending jobs ahead (the `dispatch` module), found in review.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use futurepool_procs::{FutureError, MapOptions, ProcessPool, Shutdown};
use futurepool_testkit::watchdog;

futurepool_procs::test_worker!();

const LIMIT: Duration = Duration::from_secs(60);

fn id(x: u64) -> u64 {
    x
}

fn unit(_: ()) {}

fn sleep_then_exit(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    std::process::exit(3)
}

/// Appends a line to the file `path` (one per run), then sleeps 200 ms.
fn mark(path: String) -> u8 {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(b"run\n").unwrap();
    drop(file);
    thread::sleep(Duration::from_millis(200));
    0
}

/// A result whose `Deserialize` panics in the parent (a user's hand-written impl that
/// unwraps).
#[derive(Debug)]
struct Touchy;

impl serde::Serialize for Touchy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(7)
    }
}

impl<'de> serde::Deserialize<'de> for Touchy {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Touchy, D::Error> {
        panic!("Touchy does not deserialize")
    }
}

fn touchy(_: u64) -> Touchy {
    Touchy
}

fn len_of(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

/// `n` bytes of text, one letter repeated (the letter depends on `n`).
fn text_of(n: usize) -> String {
    let c = char::from(b'a' + (n % 26) as u8);
    std::iter::repeat_n(c, n).collect()
}

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

futurepool_procs::register!(
    id,
    unit,
    hold,
    sleep_ms,
    text_of,
    pid,
    sleep_then_exit,
    mark,
    len_of,
    touchy
);

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

/// Replies whose frames end at, just before and just after the parent's 64 KiB read buffer
/// (and twice that), each followed by small replies that arrive in the same reads, from a
/// worker that was sent the requests ahead (several of them in one of its reads).
#[test]
fn replies_around_the_read_buffers_size_arrive_whole_and_in_place() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        // A reply frame is 8 (prefix) + 18 (tag, id, outcome tag, length) + the result, and a
        // result of n < 2^21 bytes of text is its length as a 3-byte varint + the text: n + 29.
        let read = 64 * 1024;
        let lengths: Vec<usize> = (read - 29 - 24..read - 29 + 24)
            .chain(2 * read - 29 - 8..2 * read - 29 + 8)
            .chain([read - 29 - 8 - 1, 100, 0, 1])
            .collect();
        for _ in 0..2 {
            let warm = warm_up_async(&pool);
            let futures: Vec<_> = lengths
                .iter()
                .map(|&n| {
                    (
                        pool.submit(text_of, n).unwrap(),
                        pool.submit(id, n as u64).unwrap(),
                    )
                })
                .collect();
            warm();
            for (&n, (text, echo)) in lengths.iter().zip(&futures) {
                assert_eq!(text.result().map(|t| t.as_str()), Ok(text_of(n).as_str()));
                assert_eq!(echo.result(), Ok(&(n as u64)));
            }
        }
        assert_eq!(pool.processes_started(), 1);
    });
}

/// `max_tasks_per_child` holds while tasks are sent ahead: no worker runs more than its
/// share, counted per pid, over single tasks and over map items sent one by one.
#[test]
fn max_tasks_per_child_holds_with_tasks_sent_ahead() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(2)
            .max_tasks_per_child(std::num::NonZeroUsize::new(5).unwrap())
            .build()
            .unwrap();
        let mut per_pid = std::collections::HashMap::<u32, usize>::new();
        let pids: Vec<_> = (0..600).map(|i| pool.submit(pid, i).unwrap()).collect();
        for f in &pids {
            *per_pid.entry(*f.result().unwrap()).or_default() += 1;
        }
        for p in pool
            .map(pid, 0..600, MapOptions::new().buffersize(64))
            .unwrap()
        {
            *per_pid.entry(p.unwrap()).or_default() += 1;
        }
        assert_eq!(per_pid.values().sum::<usize>(), 1200);
        assert!(per_pid.values().all(|&n| n <= 5), "{per_pid:?}");
    });
}

/// With `break_on_worker_death`, a worker's death breaks the pool: the tasks still queued fail
/// `Broken` (CPython's `BrokenProcessPool`), including those another manager thread would have
/// taken next for its own, healthy worker.
#[test]
fn break_on_worker_death_fails_the_queued_tasks_a_busy_manager_would_take() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(2)
            .break_on_worker_death(true)
            .build()
            .unwrap();
        let crash = pool.submit(sleep_then_exit, 300).unwrap();
        // About 5 s of work for the other worker: the last of these has not started when the
        // crash (at 300 ms) breaks the pool.
        let queued: Vec<_> = (0..1000)
            .map(|_| pool.submit(sleep_ms, 5).unwrap())
            .collect();
        assert!(matches!(crash.result(), Err(FutureError::WorkerLost(_))));
        match queued.last().unwrap().result() {
            Err(FutureError::Broken(why)) => {
                assert!(why.contains("terminated abruptly"), "{why}")
            }
            other => panic!("a task queued when the pool broke ended {other:?}"),
        }
    });
}

/// With `cancel_kills_running`, a cancel of a task that lands after the task's worker has
/// answered it (and started the task sent ahead behind it) kills the worker while it runs the
/// next task: that task has started, so it must not be run again on the next worker (it fails
/// instead). The cancel is aimed at that moment: as soon as the next task has started. Not
/// every round hits the window (the manager thread may read the reply first); 20 rounds do.
#[test]
fn a_late_cancel_does_not_run_the_next_task_twice() {
    watchdog(Duration::from_secs(120), || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .cancel_kills_running(true)
            .build()
            .unwrap();
        for round in 0..20 {
            let path = scratch(&format!("mark-{round}"));
            let _ = fs::remove_file(&path);
            let warm = warm_up_async(&pool);
            let first = pool.submit(sleep_ms, 30).unwrap();
            let next = pool
                .submit(mark, path.to_string_lossy().into_owned())
                .unwrap();
            warm();
            eventually("the next task to be sent ahead", || next.running());
            while !path.exists() {
                std::hint::spin_loop();
            }
            first.cancel();
            let outcome = next.result().cloned();
            let runs = fs::read_to_string(&path).unwrap().lines().count();
            let _ = fs::remove_file(&path);
            // Killed before it wrote its line, it ran 0 times as far as the file can tell.
            match outcome {
                Ok(0) => assert_eq!(runs, 1, "round {round}: the next task ran {runs} times"),
                Err(FutureError::WorkerLost(_)) => {
                    assert!(runs <= 1, "round {round}: the next task ran {runs} times")
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
    });
}

/// `shutdown(wait=false, cancel_futures=true)` (even rounds) or `kill_workers()` (odd rounds)
/// while other threads submit and the manager threads are draining the backlog: every future
/// handed out completes (ran, cancelled, or lost with its killed worker), none is left
/// pending, whichever way each submit raced the shutdown.
#[test]
fn shutdown_or_kill_while_submitting_leaves_no_future_pending() {
    watchdog(LIMIT, || {
        for round in 0..10 {
            let pool = ProcessPool::new(2).unwrap();
            warm_up(&pool);
            let futures = thread::scope(|s| {
                let submitters: Vec<_> = (0..3)
                    .map(|_| {
                        s.spawn(|| {
                            let mut futures = Vec::new();
                            while let Ok(f) = pool.submit(id, futures.len() as u64) {
                                futures.push(f);
                            }
                            futures
                        })
                    })
                    .collect();
                thread::sleep(Duration::from_millis(20 + 5 * round));
                if round % 2 == 0 {
                    pool.shutdown(Shutdown::new().wait(false).cancel_futures(true));
                } else {
                    pool.kill_workers();
                }
                submitters
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            });
            for f in &futures {
                match f.result() {
                    Ok(_) | Err(FutureError::Cancelled) => {}
                    Err(FutureError::WorkerLost(_)) if round % 2 == 1 => {}
                    other => panic!("round {round}: {other:?}"),
                }
            }
        }
    });
}

/// A task too large to be sent ahead to a busy worker stays in the queue for a worker that is
/// free, instead of being taken (and marked running) by the busy one and held until its long
/// task ends while the other worker idles.
#[test]
fn a_large_task_waits_for_a_free_worker_not_behind_a_long_one() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        warm_up(&pool);
        let flag = scratch("hold-large");
        let _ = fs::remove_file(&flag);
        thread::scope(|s| {
            // One worker held by `apply` (1.5 s), the other by a 2.5 s task: the manager thread
            // that takes `long` waits for the first; when it gets it, `large` and the short
            // tasks are queued, and the other manager thread is busy until 2.5 s.
            let held = s.spawn(|| pool.apply(hold, flag.to_string_lossy().into_owned()));
            wait_for_file(&flag);
            let medium = pool.submit(sleep_ms, 2500).unwrap();
            eventually("the 2.5 s task to start", || medium.running());
            let long = pool.submit(sleep_ms, 20_000).unwrap();
            let large = pool.submit(len_of, vec![1u8; 200_000]).unwrap();
            let short: Vec<_> = (0..4).map(|i| pool.submit(id, i).unwrap()).collect();
            assert_eq!(held.join().unwrap(), Ok(0));
            assert_eq!(medium.result(), Ok(&2500));
            for (i, f) in short.iter().enumerate() {
                assert_eq!(f.result(), Ok(&(i as u64)));
            }
            assert_eq!(large.result(), Ok(&200_000));
            assert!(
                !long.done(),
                "the large task waited for the 20 s one while the other worker was free"
            );
            pool.kill_workers(); // no 20 s wait in the drop
            assert!(matches!(long.result(), Err(FutureError::WorkerLost(_))));
        });
        let _ = fs::remove_file(&flag);
    });
}

/// A result whose decoding panics in the parent fails its own future (`Panicked`, as before
/// tasks were sent ahead, when the decoding ran in the thread pool's task) and nothing else:
/// the tasks sent ahead behind it still complete, and the pool's one worker slot is not lost
/// (a later task would wait for it for ever).
#[test]
fn a_result_that_panics_while_decoding_fails_only_its_future() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let warm = warm_up_async(&pool);
        let bad = pool.submit(touchy, 0).unwrap();
        let behind: Vec<_> = (0..3).map(|i| pool.submit(id, i).unwrap()).collect();
        warm();
        assert!(
            matches!(bad.result(), Err(FutureError::Panicked(_))),
            "{:?}",
            bad.result()
        );
        for (i, f) in behind.iter().enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64)));
        }
        assert_eq!(pool.submit(id, 9).unwrap().result(), Ok(&9));
        // In a map's chunk: each item fails alike, the pool goes on.
        let items: Vec<_> = pool
            .map(touchy, 0..6, MapOptions::new().chunksize(3))
            .unwrap()
            .collect();
        assert_eq!(items.len(), 6);
        assert!(
            items
                .iter()
                .all(|o| matches!(o, Err(FutureError::Panicked(_)))),
            "{items:?}"
        );
        assert_eq!(pool.submit(id, 10).unwrap().result(), Ok(&10));
    });
}

/// A task sent ahead finishes well within its timeout while the manager thread runs a slow
/// done-callback of the task before it: its reply waits in the socket. It is delivered (not
/// `TimedOut` with its worker killed), and the task after it, which the worker started as soon
/// as it had answered, runs once.
#[test]
fn a_slow_callback_does_not_time_out_the_task_answered_meanwhile() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .task_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let path = scratch("after-slow-callback");
        let _ = fs::remove_file(&path);
        let warm = warm_up_async(&pool);
        let first = pool.submit(id, 1).unwrap();
        first.add_done_callback(|_| thread::sleep(Duration::from_millis(1500)));
        let second = pool.submit(sleep_ms, 20).unwrap();
        let third = pool
            .submit(mark, path.to_string_lossy().into_owned())
            .unwrap();
        warm();
        assert_eq!(first.result(), Ok(&1));
        assert_eq!(second.result(), Ok(&20));
        assert_eq!(third.result(), Ok(&0));
        let runs = fs::read_to_string(&path).unwrap().lines().count();
        let _ = fs::remove_file(&path);
        assert_eq!(runs, 1, "the third task ran {runs} times");
        assert_eq!(pool.processes_started(), 1);
    });
}
