//! Test helpers shared by the workspace's test suites (a dev-dependency of the libraries; the
//! guide and the benchmarks use its HTTP server): a watchdog so a
//! test that could hang fails in seconds, Python's `threading.Event` and `Semaphore`, and one
//! local HTTP server ([`http::HttpServer`]) with well-behaved and hostile endpoints, shared by
//! the CLI tests, the guide's examples and the benchmarks; [`command::output_within`] runs a
//! program under a deadline; [`tools::skip`] reports a test skipped for want of an outside
//! program (`redis-server`, GNU parallel, tmux); [`terminal::screen_after`] runs a command in
//! a real terminal (tmux) and reads the screen.

pub mod command;
pub mod http;
pub mod terminal;
pub mod tools;

use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Runs `body` on a thread and fails the test if it takes longer than `limit`; a panic in the
/// body is re-raised. The body's thread has the test thread's name (the test's, which
/// [`tools::skip`] reports).
pub fn watchdog<R: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    let mut builder = thread::Builder::new();
    if let Some(name) = thread::current().name() {
        builder = builder.name(name.to_string());
    }
    let handle = builder
        .spawn(move || {
            let _ = tx.send(body());
        })
        .expect("watchdog: cannot spawn the test body's thread");
    match rx.recv_timeout(limit) {
        Ok(r) => {
            handle.join().unwrap();
            r
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(handle.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: test body still running after {limit:?}")
        }
    }
}

/// `PROPTEST_CASES` (set by `cargo xtask proptest --cases N`) or the suite's quick default.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A one-shot event like Python's `threading.Event`.
#[derive(Clone, Default, Debug)]
pub struct Event(Arc<(Mutex<bool>, Condvar)>);

impl Event {
    /// Sets the event, waking every waiter.
    pub fn set(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    /// Blocks until the event is set.
    pub fn wait(&self) {
        let mut set = self.0 .0.lock().unwrap();
        while !*set {
            set = self.0 .1.wait(set).unwrap();
        }
    }

    /// `true` once set.
    pub fn is_set(&self) -> bool {
        *self.0 .0.lock().unwrap()
    }
}

/// A counting semaphore like Python's `threading.Semaphore(0)`.
#[derive(Clone, Default, Debug)]
pub struct Semaphore(Arc<(Mutex<usize>, Condvar)>);

impl Semaphore {
    /// Adds `n` permits.
    pub fn release(&self, n: usize) {
        *self.0 .0.lock().unwrap() += n;
        self.0 .1.notify_all();
    }

    /// Takes one permit, waiting for it.
    pub fn acquire(&self) {
        let mut c = self.0 .0.lock().unwrap();
        while *c == 0 {
            c = self.0 .1.wait(c).unwrap();
        }
        *c -= 1;
    }
}

/// The crate README's example is compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
