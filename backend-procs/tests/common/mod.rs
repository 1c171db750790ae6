//! Task functions that misbehave on purpose, shared by the fault and leak tests. A worker runs
//! them; each breaks one promise a worker normally keeps.

#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::time::Duration;

/// The worker's channel to its parent: the one socket among its descriptors (the parent-watch
/// thread holds a duplicate of the same socket).
pub fn channel_fd() -> i32 {
    let mut fds: Vec<i32> = fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read_link(e.path())
                .map(|l| l.to_string_lossy().starts_with("socket:"))
                .unwrap_or(false)
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    *fds.first().expect("a worker has its channel")
}

/// Writes `bytes` on the worker's channel as if they were its reply, then hangs: whatever
/// happens next is the parent's doing.
pub fn send_raw(bytes: Vec<u8>) -> u8 {
    let fd = channel_fd();
    let mut sent = 0;
    while sent < bytes.len() {
        // SAFETY: `fd` is an open descriptor of this process (listed just now in
        // /proc/self/fd) and the pointer and length describe the live slice `bytes[sent..]`.
        let n = unsafe { libc::write(fd, bytes[sent..].as_ptr().cast(), bytes.len() - sent) };
        assert!(n > 0, "write failed");
        sent += n as usize;
    }
    std::thread::sleep(Duration::from_secs(600));
    0
}

/// A frame prefix announcing `len` bytes, followed by `body`.
pub fn frame(len: u64, body: &[u8]) -> Vec<u8> {
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Forks a grandchild that sleeps for a minute holding the worker's channel open, writes its
/// pid to `path`, and aborts the worker.
pub fn fork_then_abort(path: String) -> u8 {
    // SAFETY: the child only calls async-signal-safe functions (`sleep`, `_exit`) before it
    // ends; the parent goes on as usual.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: async-signal-safe calls only, in the forked child.
        unsafe {
            libc::sleep(60);
            libc::_exit(0);
        }
    }
    fs::write(&path, pid.to_string()).unwrap();
    std::process::abort()
}

pub fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

pub fn square(x: u64) -> u64 {
    x * x
}

pub fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

pub fn bytes_of(n: usize) -> Vec<u8> {
    vec![7; n]
}

futurepool_procs::register!(send_raw, fork_then_abort, sleep_ms, square, echo, bytes_of);

/// `true` once `pid` has ended: gone, or a zombie nobody has reaped yet whose other threads
/// have exited too. (A killed process's leader shows `Z` while its other threads are still
/// exiting; its pidfd turns readable, and its socket closes, only once the last one is gone.)
pub fn is_dead(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("");
            let threads = fs::read_dir(format!("/proc/{pid}/task"))
                .map(|d| d.count())
                .unwrap_or(0);
            (state == "Z" || state == "X") && threads <= 1
        }
    }
}

/// A program that owns a pool whose one worker is busy on a long task (`busy-…`) or idle
/// (`idle-…`), prints `worker <pid>`, then ends as the mode says: `…-sigkill` waits to be
/// killed, `…-exit` calls `process::exit`, `…-abort` aborts, `…-panic` panics. The pool is
/// leaked so that no destructor gets a say: the worker must notice its parent's end by itself.
pub fn parent_program(mode: &str) {
    use std::io::Write;
    let pool: &'static futurepool_procs::ProcessPool =
        Box::leak(Box::new(futurepool_procs::ProcessPool::new(1).unwrap()));
    if mode.starts_with("busy") {
        let f = pool.submit(sleep_ms, 600_000).unwrap();
        while !f.running() || pool.worker_pids().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::mem::forget(f);
    } else {
        assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    }
    println!("worker {}", pool.worker_pids()[0]);
    std::io::stdout().flush().unwrap();
    if mode.ends_with("sigkill") {
        std::thread::sleep(Duration::from_secs(600));
    } else if mode.ends_with("exit") {
        std::process::exit(0);
    } else if mode.ends_with("abort") {
        std::process::abort();
    } else {
        std::panic::set_hook(Box::new(|_| {
            eprintln!("(the parent program panics on purpose: its worker must die with it)")
        }));
        panic!("the parent program panics");
    }
}

/// Waits until our own child `pid` has exited as far as `waitid` (and so a pidfd) can tell —
/// every thread of it gone — without reaping it: the pool reaps its workers itself.
pub fn wait_exited(pid: u32) {
    loop {
        // SAFETY: `waitid` writes only into the zeroed `siginfo_t` we pass; WNOWAIT leaves the
        // child to be reaped by its owner, WNOHANG makes this a poll.
        let exited = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            // ECHILD: already reaped by the pool, so it has exited.
            (r == 0 && info.si_pid() != 0)
                || (r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
        };
        if exited {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
