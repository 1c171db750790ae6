//! The deadline thread: sends a signal to a job's process group at a given instant (`--timeout`,
//! SIGKILL after `--grace`). One thread for the whole run, asleep on a condition variable until
//! the earliest deadline: no polling.
//!
//! Process-group ids stay valid because an entry is forgotten ([`Killer::forget`]) before the
//! group's leader is reaped: while the leader is an unreaped zombie its pid, and so the group
//! id, cannot be reused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Sends `signal` to process group `pgid`; the group may already be gone (ESRCH is ignored).
pub fn signal_group(pgid: u32, signal: i32) {
    let (Some(pid), Some(sig)) = (
        rustix::process::Pid::from_raw(pgid as i32),
        rustix::process::Signal::from_named_raw(signal),
    ) else {
        return;
    };
    let _ = rustix::process::kill_process_group(pid, sig);
}

/// One scheduled signal.
#[derive(Debug)]
struct Entry {
    at: Instant,
    pgid: u32,
    signal: i32,
    /// Send SIGKILL this long after `signal` (a follow-up entry).
    then_kill_after: Option<Duration>,
    /// Set when the signal is sent (the job timed out).
    fired: Option<Arc<AtomicBool>>,
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Entry>,
    shutdown: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The deadline thread's handle; dropping it stops the thread.
#[derive(Debug, Default)]
pub struct Killer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Killer {
    /// `--timeout`: SIGTERM to `pgid` at `at`, SIGKILL `grace` later; `fired` is set when the
    /// SIGTERM goes.
    pub fn timeout(&self, at: Instant, pgid: u32, grace: Duration, fired: Arc<AtomicBool>) {
        self.schedule(at, pgid, libc::SIGTERM, Some(grace), Some(fired));
    }

    /// SIGKILL to `pgid` at `at` (the end of a grace period).
    pub fn kill_at(&self, at: Instant, pgid: u32) {
        self.schedule(at, pgid, libc::SIGKILL, None, None);
    }

    fn schedule(
        &self,
        at: Instant,
        pgid: u32,
        signal: i32,
        then_kill_after: Option<Duration>,
        fired: Option<Arc<AtomicBool>>,
    ) {
        self.start_thread();
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.entries.push(Entry {
            at,
            pgid,
            signal,
            then_kill_after,
            fired,
        });
        drop(state);
        self.shared.wake.notify_one();
    }

    /// Drops every entry for `pgid` (the job ended; call before reaping its leader).
    pub fn forget(&self, pgid: u32) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.entries.retain(|e| e.pgid != pgid);
    }

    fn start_thread(&self) {
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_none() {
            let shared = self.shared.clone();
            *thread = Some(
                thread::Builder::new()
                    .name("pool-run-killer".into())
                    .spawn(move || deadline_loop(&shared))
                    .expect("spawning the deadline thread"),
            );
        }
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown = true;
        self.shared.wake.notify_one();
        if let Some(t) = self
            .thread
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = t.join();
        }
    }
}

fn deadline_loop(shared: &Shared) {
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if state.shutdown {
            return;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        let mut i = 0;
        while i < state.entries.len() {
            if state.entries[i].at <= now {
                due.push(state.entries.swap_remove(i));
            } else {
                i += 1;
            }
        }
        for entry in due {
            signal_group(entry.pgid, entry.signal);
            if let Some(fired) = &entry.fired {
                fired.store(true, Ordering::SeqCst);
            }
            if let Some(grace) = entry.then_kill_after {
                state.entries.push(Entry {
                    at: now + grace,
                    pgid: entry.pgid,
                    signal: libc::SIGKILL,
                    then_kill_after: None,
                    fired: None,
                });
            }
        }
        state = match state.entries.iter().map(|e| e.at).min() {
            None => shared.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
            Some(next) => {
                let wait = next.saturating_duration_since(Instant::now());
                shared
                    .wake
                    .wait_timeout(state, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}
