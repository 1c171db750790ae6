//! No leaks: after 1 000 tasks and 50 worker crashes and a shutdown (with large payloads, which
//! travel in shared-memory regions, both ways and into crashing workers), no zombie children, the
//! parent's open file descriptors back to their starting count, no handshake directories left
//! in the temporary directory. Alone in its test binary so other tests' processes and
//! descriptors do not blur the counts.

use std::fs;
use std::time::Duration;

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

/// Handshake directories (`.tmpXXXXXX` holding a `socket`) in the temporary directory.
fn handshake_dirs() -> usize {
    fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
                .filter(|e| e.path().join("socket").exists())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn no_leaks_after_tasks_and_crashes() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let fds_before = open_fds();
        let dirs_before = handshake_dirs();
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
        }
        let (children, zombies) = children();
        tx.send((
            fds_before,
            open_fds(),
            dirs_before,
            handshake_dirs(),
            children,
            zombies,
        ))
        .unwrap();
    });
    let (fds_before, fds_after, dirs_before, dirs_after, children, zombies) = rx
        .recv_timeout(Duration::from_secs(180))
        .expect("watchdog: the leak test hung");
    assert_eq!(zombies, 0, "zombie children left");
    assert_eq!(children, 0, "worker processes left");
    assert_eq!(fds_after, fds_before, "file descriptors leaked");
    assert_eq!(dirs_after, dirs_before, "handshake directories left behind");
}
