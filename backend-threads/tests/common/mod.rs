//! Test helpers: a watchdog so a hanging test fails in seconds, and a one-shot event.

#![allow(dead_code)]

use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Runs `body` on a thread and fails the test if it takes longer than `limit`.
pub fn watchdog<R: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let _ = tx.send(body());
    });
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

/// A one-shot event like Python's `threading.Event`.
#[derive(Clone, Default)]
pub struct Event(Arc<(Mutex<bool>, Condvar)>);

impl Event {
    pub fn set(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
    pub fn wait(&self) {
        let mut set = self.0 .0.lock().unwrap();
        while !*set {
            set = self.0 .1.wait(set).unwrap();
        }
    }
    pub fn is_set(&self) -> bool {
        *self.0 .0.lock().unwrap()
    }
}

/// A counting semaphore like Python's `threading.Semaphore(0)`.
#[derive(Clone, Default)]
pub struct Semaphore(Arc<(Mutex<usize>, Condvar)>);

impl Semaphore {
    pub fn release(&self, n: usize) {
        *self.0 .0.lock().unwrap() += n;
        self.0 .1.notify_all();
    }
    pub fn acquire(&self) {
        let mut c = self.0 .0.lock().unwrap();
        while *c == 0 {
            c = self.0 .1.wait(c).unwrap();
        }
        *c -= 1;
    }
}
