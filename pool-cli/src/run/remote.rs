//! `pool run --broker URL`: the jobs go to `pool worker` agents through Redis
//! (`futurepool-redis`) instead of running here — GNU parallel's `--sshlogin` without ssh.
//! Everything that decides what runs and what is reported (inputs, placeholders, order,
//! retries, `--halt`, joblog, exit codes) stays in this process; an agent runs each command
//! line with the same local runner a local run uses (shell, process group, `--timeout` and
//! `--grace`) and sends back its status and whole output.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use futurepool_redis::{Future, FutureError, RedisPool};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::guard::Guard;
use super::job::{Finished, JobError, JobSpec, Runner, Status, Stop};
use super::local::{Capture, LocalRunner, Shell};
use super::spool::Spool;

/// The queue `pool run --broker` and `pool worker` use unless told otherwise.
pub const DEFAULT_QUEUE: &str = "pool-run";

/// One job as it travels to an agent.
#[derive(Serialize, Deserialize, Debug)]
pub struct RemoteJob {
    seq: usize,
    slot: usize,
    command: ByteBuf,
    timeout_ms: Option<u64>,
    grace_ms: u64,
}

/// What the agent's run of a job came to.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RemoteDone {
    /// Start time, in nanoseconds since the Unix epoch (the agent's clock).
    start_ns: u128,
    runtime_ns: u128,
    /// `Ok(code)` exited, `Err(signal)` killed by a signal.
    status: Result<i32, i32>,
    timed_out: bool,
    stdout: ByteBuf,
    stderr: ByteBuf,
}

/// Runs one job on an agent (in a worker process of its local pool): the registered function
/// behind `pool run --broker`.
pub fn run_job(job: RemoteJob) -> Result<RemoteDone, String> {
    static RUNNERS: OnceLock<Mutex<HashMap<u64, &'static LocalRunner>>> = OnceLock::new();
    // Stopping a remote job kills this worker process: the guard then kills the job's group.
    static GUARD: OnceLock<Option<Guard>> = OnceLock::new();
    let guard = GUARD
        .get_or_init(|| match Guard::start() {
            Ok(guard) => Some(guard),
            Err(e) => {
                eprintln!(
                    "pool worker: cannot start the job guard ({e}): a job stopped by killing \
                     its worker keeps running until it ends"
                );
                None
            }
        })
        .as_ref();
    // One runner per grace period, for the life of this worker process.
    let runner = *RUNNERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(job.grace_ms)
        .or_insert_with(|| {
            Box::leak(Box::new(
                LocalRunner::new(
                    Shell::from_env(),
                    Capture::Group,
                    Duration::from_millis(job.grace_ms),
                )
                .with_guard(guard),
            ))
        });
    let spec = JobSpec {
        seq: job.seq,
        slot: job.slot,
        command: job.command.into_vec(),
        values: Vec::new(),
        timeout: job.timeout_ms.map(Duration::from_millis),
    };
    let mut finished = runner.run(&spec).map_err(|e| e.to_string())?;
    let start_ns = finished
        .start
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Ok(RemoteDone {
        start_ns,
        runtime_ns: finished.runtime.as_nanos(),
        status: match finished.status {
            Status::Exited(code) => Ok(code),
            Status::Signalled(signal) => Err(signal),
        },
        timed_out: finished.timed_out,
        stdout: ByteBuf::from(finished.stdout.read_all().map_err(|e| e.to_string())?),
        stderr: ByteBuf::from(finished.stderr.read_all().map_err(|e| e.to_string())?),
    })
}

futurepool_procs::register!(run_job);

/// Sends jobs to the agents of a queue.
pub struct RemoteRunner {
    pool: RedisPool,
    grace: Duration,
    /// The futures of the jobs in flight, by sequence number (to kill them on a stop).
    running: Mutex<HashMap<usize, Future<RemoteDone, String>>>,
    stopping: AtomicBool,
}

impl std::fmt::Debug for RemoteRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRunner")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl RemoteRunner {
    /// Connects to the broker; a stop kills the running jobs' worker processes on the agents.
    pub fn connect(url: &str, queue: &str, grace: Duration) -> anyhow::Result<RemoteRunner> {
        let pool = RedisPool::builder(url)
            .queue(queue)
            .cancel_kills_running(true)
            .connect()?;
        Ok(RemoteRunner {
            pool,
            grace,
            running: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Future<RemoteDone, String>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Runner for RemoteRunner {
    fn run(&self, job: &JobSpec) -> Result<Finished, JobError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(JobError::Stopped);
        }
        let remote = RemoteJob {
            seq: job.seq,
            slot: job.slot,
            command: ByteBuf::from(job.command.clone()),
            timeout_ms: job.timeout.map(|t| t.as_millis() as u64),
            grace_ms: self.grace.as_millis() as u64,
        };
        let future = self
            .pool
            .submit_fallible(run_job, remote)
            .map_err(|e| JobError::Start(io::Error::other(e)))?;
        self.running().insert(job.seq, future.clone());
        if self.stopping.load(Ordering::Acquire) {
            future.cancel();
        }
        future.wait();
        self.running().remove(&job.seq);
        // Moved out unless a done-callback still holds its lent handle (then cloned).
        let done = match future.into_result() {
            Ok(done) => done,
            Err(FutureError::Cancelled) => return Err(JobError::Stopped),
            Err(FutureError::Raised(e)) => return Err(JobError::Start(io::Error::other(e))),
            Err(e) => {
                return Err(JobError::Start(io::Error::other(format!(
                    "on the broker's agent: {e}"
                ))))
            }
        };
        Ok(Finished {
            start: SystemTime::UNIX_EPOCH
                + Duration::from_nanos(done.start_ns.min(u128::from(u64::MAX)) as u64),
            runtime: Duration::from_nanos(done.runtime_ns.min(u128::from(u64::MAX)) as u64),
            status: match done.status {
                Ok(code) => Status::Exited(code),
                Err(signal) => Status::Signalled(signal),
            },
            timed_out: done.timed_out,
            stdout_len: done.stdout.len() as u64,
            stdout: Spool::from_bytes(&done.stdout).map_err(JobError::Start)?,
            stderr: Spool::from_bytes(&done.stderr).map_err(JobError::Start)?,
        })
    }

    fn stop_running(&self, how: Stop) {
        // The agents cannot forward a signal to a job's process group: a stop kills each
        // running job's worker process, whose guard then kills the job's group.
        let _ = how;
        self.stopping.store(true, Ordering::Release);
        for future in self.running().values() {
            future.cancel();
        }
    }
}
