//! No leaks: after 1 000 tasks and 50 worker crashes and a shutdown (with large payloads, which
//! cross the socket in pieces, both ways and into crashing workers) and every fault case (hostile
//! frames, a truncated frame past its deadline, a grandchild holding a socket, workers killed
//! while idle): no zombie children, the parent's open file descriptors back to their starting
//! count, no thread of the pool's left (manager threads, the ticker, the threads running the
//! done-callbacks of tasks their waiters ran), nothing left in the temporary directory. Alone in
//! its test binary so other tests' processes, descriptors and threads do not blur the counts.

use std::fs;
use std::time::Duration;

mod common;

use futurepool_procs::{FutureError, ProcessPool};

futurepool_procs::test_worker!();

fn id(x: u32) -> u32 {
    x
}

fn die(code: i32) -> u32 {
    std::process::exit(code)
}

fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

fn die_holding(_: Vec<u8>) -> u32 {
    std::process::exit(3)
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

futurepool_procs::register!(id, die, echo, die_holding, nap);

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Children of this process, and how many of them are zombies.
fn children() -> (usize, usize) {
    let me = std::process::id().to_string();
    let mut all = 0;
    let mut zombies = 0;
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a.trim().to_string()) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(1) == Some(&me.as_str()) {
            all += 1;
            if fields[0] == "Z" {
                zombies += 1;
            }
        }
    }
    (all, zombies)
}

/// This process's threads that belong to a process pool (its manager threads, its ticker,
/// the threads running done-callbacks of tasks their waiters ran), by name.
fn pool_threads() -> Vec<String> {
    fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("comm")).ok())
        .map(|comm| comm.trim().to_string())
        .filter(|comm| comm.starts_with("ProcessPoolExe") || comm.starts_with("futurepool-"))
        .collect()
}

/// Round trips waited for at once (the pool then runs tasks on their waiters and holds tokens
/// back: its ticker starts), and a done-callback added while a waiter runs its task (it runs
/// on a thread of its own).
fn waiters_run_tasks(pool: &ProcessPool) {
    for i in 0..40u32 {
        assert_eq!(pool.submit(id, i).unwrap().result(), Ok(&i));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let future = pool.submit(nap, 300).unwrap();
            tx.send(future.clone()).unwrap();
            assert_eq!(future.result(), Ok(&300));
        });
        let future = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        future.add_done_callback(|_| std::thread::sleep(Duration::from_millis(200)));
        waiter.join().unwrap();
    });
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn no_leaks_after_tasks_crashes_and_faults() {
    // Everything the pool might create in the temporary directory lands in a private one.
    let tmp = std::env::temp_dir().join(format!("fp-leaks-{}", std::process::id()));
    fs::create_dir_all(&tmp).unwrap();
    std::env::set_var("TMPDIR", &tmp);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let fds_before = open_fds();
        {
            let pool = ProcessPool::new(2).unwrap();
            let mut futures = Vec::new();
            for i in 0..1000u32 {
                futures.push((i, pool.submit(id, i).unwrap()));
                if i % 20 == 0 {
                    let crash = pool.submit(die, 7).unwrap();
                    assert!(matches!(crash.result(), Err(FutureError::WorkerLost(_))));
                }
                if i % 250 == 0 {
                    let big = vec![i as u8; 3 << 19];
                    let back = pool.submit(echo, big.clone()).unwrap();
                    assert!(back.result() == Ok(&big));
                    let crash = pool.submit(die_holding, big).unwrap();
                    assert!(matches!(crash.result(), Err(FutureError::WorkerLost(_))));
                }
            }
            for (i, f) in &futures {
                assert_eq!(f.result(), Ok(i));
            }
            assert!(pool.processes_started() >= 50);
            faults(&pool);
            waiters_run_tasks(&pool);
        }
        let (children, zombies) = children();
        tx.send((fds_before, open_fds(), children, zombies, pool_threads()))
            .unwrap();
    });
    let (fds_before, fds_after, children, zombies, threads) = rx
        .recv_timeout(Duration::from_secs(180))
        .expect("watchdog: the leak test hung");
    let left = entries(&tmp);
    let _ = fs::remove_dir_all(&tmp);
    assert_eq!(zombies, 0, "zombie children left");
    assert_eq!(children, 0, "worker processes left");
    assert_eq!(fds_after, fds_before, "file descriptors leaked");
    assert!(threads.is_empty(), "pool threads left: {threads:?}");
    assert!(left.is_empty(), "left in the temporary directory: {left:?}");
}

/// The fault cases of `tests/faults.rs`, once each, on one pool.
fn faults(pool: &ProcessPool) {
    let f = pool
        .submit(common::send_raw, common::frame(1 << 60, b""))
        .unwrap();
    assert!(matches!(f.result(), Err(FutureError::WorkerLost(_))));
    let f = pool
        .submit(common::send_raw, common::frame(3, &[99, 1, 2]))
        .unwrap();
    assert!(matches!(f.result(), Err(FutureError::WorkerLost(_))));
    let f = pool
        .with_task_timeout(Duration::from_millis(300))
        .submit(common::send_raw, common::frame(100, b"12345"))
        .unwrap();
    assert_eq!(f.result(), Err(FutureError::TimedOut));
    let marker = std::env::temp_dir().join("grandchild");
    let f = pool
        .submit(common::fork_then_abort, marker.display().to_string())
        .unwrap();
    assert!(matches!(f.result(), Err(FutureError::WorkerLost(_))));
    let grandchild: i32 = fs::read_to_string(&marker).unwrap().parse().unwrap();
    fs::remove_file(&marker).unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions; the grandchild sleeps for a minute.
    unsafe {
        libc::kill(grandchild, libc::SIGKILL);
    }
    for pid in pool.worker_pids() {
        // SAFETY: as above; `pid` is one of the pool's idle, unreaped workers.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        common::wait_exited(pid);
    }
    assert_eq!(pool.submit(id, 5).unwrap().result(), Ok(&5));
}
