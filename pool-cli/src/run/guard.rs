//! The job guard of a worker process that runs `pool run --broker` jobs for a `pool worker`
//! agent. The agent stops a job (Ctrl-C or `--halt now` of the `pool run` that sent it, or a
//! `--timeout` the worker can no longer enforce) by killing the worker process; the job's own
//! process group would outlive it. The guard is a small helper process that learns the
//! process group of every job the worker starts and ends (`+pgid`/`-pgid` lines on a pipe)
//! and, when the pipe closes — the worker is gone, however it died — kills the groups still
//! listed, then exits.

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// The argument that makes `pool` a guard (checked first thing in `main`).
const GUARD_ARG: &str = "__pool_job_guard";

/// Serves as a job guard, and exits, if this process was started as one.
pub fn maybe_run() {
    if std::env::args_os().nth(1).as_deref() != Some(GUARD_ARG.as_ref()) {
        return;
    }
    // Terminal signals are for the worker's session, not for the guard: it must outlive the
    // worker to do its job.
    for signal in [libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGTSTP] {
        // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code; this
        // runs before any other thread exists.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
    let mut groups = HashSet::new();
    for line in io::stdin().lock().split(b'\n') {
        let Ok(line) = line else { break };
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        let (op, pgid) = text.split_at(text.len().min(1));
        let Ok(pgid) = pgid.parse::<i32>() else {
            continue;
        };
        if pgid <= 1 {
            continue;
        }
        match op {
            "+" => {
                groups.insert(pgid);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    for pgid in groups {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names the
        // process group the worker registered (its leader was not reaped yet when it did,
        // and only the worker, now gone, could have reaped it).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    std::process::exit(0)
}

/// A worker's handle on its guard.
#[derive(Debug)]
pub struct Guard {
    pipe: Mutex<ChildStdin>,
    /// Kept so that the guard is not reaped early; it exits when the pipe closes.
    _child: Child,
}

impl Guard {
    /// Starts a guard for this process (its own process group, so that a terminal's signals
    /// for the worker's group do not reach it).
    pub fn start() -> io::Result<Guard> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(std::env::current_exe()?)
            .arg(GUARD_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no pipe to the guard"))?;
        Ok(Guard {
            pipe: Mutex::new(pipe),
            _child: child,
        })
    }

    /// A job's group is running: kill it if this process dies.
    pub fn watch(&self, pgid: u32) {
        self.send(b'+', pgid);
    }

    /// A job's group has ended (call before its leader is reaped, so the id cannot be reused
    /// while the guard still lists it).
    pub fn forget(&self, pgid: u32) {
        self.send(b'-', pgid);
    }

    fn send(&self, op: u8, pgid: u32) {
        let mut line = vec![op];
        line.extend_from_slice(pgid.to_string().as_bytes());
        line.push(b'\n');
        let mut pipe = self.pipe.lock().unwrap_or_else(|p| p.into_inner());
        // A guard that died cannot be helped; the job still runs and is stopped as usual.
        let _ = pipe.write_all(&line);
    }
}
