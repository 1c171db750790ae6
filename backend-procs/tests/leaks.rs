//! No leaks: after 1 000 tasks and 50 worker crashes and a shutdown (with large payloads, which
//! cross the socket in pieces, both ways and into crashing workers) and every fault case (hostile
//! frames, a truncated frame past its deadline, a grandchild holding a socket, workers killed
//! while idle): no zombie children, the parent's open file descriptors back to their starting
//! count, nothing left in the temporary directory. Alone in its test binary so other tests' processes and
//! descriptors do not blur the counts.

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

futurepool_procs::register!(id, die, echo, die_holding);

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
        }
        let (children, zombies) = children();
        tx.send((fds_before, open_fds(), children, zombies))
            .unwrap();
    });
    let (fds_before, fds_after, children, zombies) = rx
        .recv_timeout(Duration::from_secs(180))
        .expect("watchdog: the leak test hung");
    let left = entries(&tmp);
    let _ = fs::remove_dir_all(&tmp);
    assert_eq!(zombies, 0, "zombie children left");
    assert_eq!(children, 0, "worker processes left");
    assert_eq!(fds_after, fds_before, "file descriptors leaked");
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
