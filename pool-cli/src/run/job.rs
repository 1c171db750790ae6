//! One job as the scheduler sees it: what to run ([`JobSpec`]), what came back ([`Finished`]),
//! and the [`Runner`] interface between them. [`super::local::LocalRunner`] runs jobs as
//! local processes; another runner (a remote broker) only has to implement the two methods.

use std::fmt;
use std::io;
use std::time::{Duration, SystemTime};

use super::spool::Spool;

/// What to run: everything a runner needs, nothing it must look up.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Sequence number (`{#}`, the joblog's `Seq`), from 1.
    pub seq: usize,
    /// Job slot (`{%}`), from 1.
    pub slot: usize,
    /// The rendered shell command line (bytes; not necessarily UTF-8).
    pub command: Vec<u8>,
    /// The input values the command was made from (`--tag`, `--results`, JSON).
    pub values: Vec<Vec<u8>>,
    /// How long the job may run.
    pub timeout: Option<Duration>,
}

/// How a job's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exited with this code (127: command not found).
    Exited(i32),
    /// Killed by this signal.
    Signalled(i32),
}

/// What a job did.
#[derive(Debug)]
pub struct Finished {
    pub start: SystemTime,
    pub runtime: Duration,
    pub status: Status,
    /// `--timeout` expired and the job was killed.
    pub timed_out: bool,
    /// Bytes the job wrote to stdout (the joblog's `Receive`).
    pub stdout_len: u64,
    /// The job's stdout, unless it went straight to ours (`-u`, `--line-buffer`).
    pub stdout: Spool,
    /// The job's stderr, likewise.
    pub stderr: Spool,
}

impl Finished {
    /// GNU parallel's joblog view: a timed-out job has `Exitval` −1 and the signal that
    /// ended it (SIGTERM if it exited by itself after the signal).
    pub fn exit_and_signal(&self) -> (i32, i32) {
        match (self.status, self.timed_out) {
            (Status::Exited(_), true) => (-1, libc::SIGTERM),
            (Status::Signalled(s), true) => (-1, s),
            (Status::Exited(c), false) => (c, 0),
            (Status::Signalled(s), false) => (0, s),
        }
    }
}

/// A job that could not be run at all (no process was started).
#[derive(Debug)]
pub enum JobError {
    /// The run is stopping; the job was not started.
    Stopped,
    /// Creating the spool files or the process failed for a reason other than the command
    /// (too many open files, no memory, …).
    Start(io::Error),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Stopped => f.write_str("not started: the run is stopping"),
            JobError::Start(e) => write!(f, "cannot start the job: {e}"),
        }
    }
}

impl std::error::Error for JobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JobError::Stopped => None,
            JobError::Start(e) => Some(e),
        }
    }
}

/// How to stop the running jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Send this signal now, SIGKILL after the grace period.
    Signal(i32),
    /// SIGKILL now.
    Kill,
}

/// Runs jobs. Called from several worker threads at once.
pub trait Runner: Send + Sync {
    /// Runs one job to its end, blocking the calling thread.
    fn run(&self, job: &JobSpec) -> Result<Finished, JobError>;

    /// Stops every running job, and every job started from now on.
    fn stop_running(&self, how: Stop);

    /// Ctrl-Z: suspends every running job (a runner that cannot does nothing).
    fn suspend_running(&self) {}

    /// `fg`/`bg` after Ctrl-Z: resumes every running job.
    fn resume_running(&self) {}
}
