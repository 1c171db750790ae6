//! One worker process, seen from the parent: start-up with a bounded handshake, calls with an
//! optional deadline, and a clean (or forced) end that always reaps the child.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use ipc_channel::ipc::{IpcOneShotServer, IpcReceiver, IpcSender};
use ipc_channel::{IpcError, TryRecvError};

use crate::wire::{Bytes, Hello, Outcome, Reply, Request};
use crate::worker::{WORKER_ARGS, WORKER_ENV};

/// How long a worker may take to exit after `Exit` before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// What starting a worker needs.
pub(crate) struct StartSpec<'a> {
    pub(crate) exe: &'a Path,
    pub(crate) startup_timeout: Duration,
    pub(crate) initializer: Option<(String, Vec<u8>)>,
}

/// Why a worker could not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The process could not be started, died, or did not connect in time.
    Failed(String),
    /// The initializer failed (the pool breaks, as in Python).
    Init(String),
}

/// Why a call did not produce an outcome.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The worker died during the call; the text names the exit code or signal.
    Died(String),
    /// The deadline passed; the worker was killed.
    TimedOut,
}

/// A started worker process.
pub(crate) struct WorkerProcess {
    child: Child,
    requests: IpcSender<Request>,
    replies: IpcReceiver<Reply>,
    next_id: u64,
    /// Tasks this process has completed.
    pub(crate) tasks_run: usize,
    /// Set once the child has been reaped.
    reaped: bool,
}

impl fmt::Debug for WorkerProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerProcess")
            .field("pid", &self.child.id())
            .field("tasks_run", &self.tasks_run)
            .finish()
    }
}

/// 128 random bits from the kernel, as hex: the worker's one-time token.
fn token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// "exited with code 3", "killed by signal 11 (SIGSEGV)".
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = match sig {
                libc::SIGSEGV => "SIGSEGV",
                libc::SIGABRT => "SIGABRT",
                libc::SIGKILL => "SIGKILL",
                libc::SIGTERM => "SIGTERM",
                libc::SIGBUS => "SIGBUS",
                libc::SIGILL => "SIGILL",
                libc::SIGFPE => "SIGFPE",
                libc::SIGINT => "SIGINT",
                _ => "signal",
            };
            format!("killed by signal {sig} ({name})")
        }
        None => format!("ended with {status}"),
    }
}

/// The one-shot server a worker connects to. ipc-channel creates its socket in a fresh
/// temporary directory (removed when the server is dropped) but with the umask's mode, 0755
/// here; we make the directory private (0700) before any child exists. (The socket itself is
/// not writable by others even before that, so nobody else can connect; the token guards the
/// handshake anyway.)
pub(crate) fn handshake_server() -> std::io::Result<(IpcOneShotServer<Hello>, String)> {
    use std::os::unix::fs::PermissionsExt;
    let (server, name) = IpcOneShotServer::<Hello>::new()?;
    if let Some(dir) = Path::new(&name).parent() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok((server, name))
}

impl WorkerProcess {
    /// Starts a worker: spawn (never fork), handshake with a one-time token over a one-shot
    /// server in a private temporary directory, then the initializer. Bounded by
    /// `startup_timeout`: a child that dies or hangs during start-up is reported, never waited
    /// for forever.
    pub(crate) fn start(spec: &StartSpec<'_>) -> Result<WorkerProcess, StartError> {
        let failed = |what: &str, e: &dyn fmt::Display| StartError::Failed(format!("{what}: {e}"));
        let deadline = Instant::now() + spec.startup_timeout;
        let (server, name) =
            handshake_server().map_err(|e| failed("cannot create the handshake socket", &e))?;
        let token = token().map_err(|e| failed("cannot read /dev/urandom", &e))?;
        let mut child = Command::new(spec.exe)
            .args(WORKER_ARGS)
            .env(WORKER_ENV, format!("{name}\n{token}"))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| failed(&format!("cannot start {}", spec.exe.display()), &e))?;

        // `accept` blocks until someone connects (ipc-channel #261): run it aside, and if the
        // child dies or times out, connect ourselves to release it.
        let (tx, rx) = mpsc::channel();
        let acceptor = thread::Builder::new()
            .name("futurepool-accept".into())
            .spawn(move || {
                let _ = tx.send(server.accept());
            })
            .map_err(|e| failed("cannot start the handshake thread", &e))?;
        let release = |child: &mut Child, why: String| {
            let _ = child.kill();
            let _ = child.wait();
            if let Ok(s) = IpcSender::<Hello>::connect(name.clone()) {
                let _ = s.send(Hello::Abort);
            }
            StartError::Failed(why)
        };
        let accepted = loop {
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(accepted) => break accepted,
                Err(RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        let why = format!("worker {} during start-up", describe(status));
                        let e = release(&mut child, why);
                        let _ = acceptor.join();
                        return Err(e);
                    }
                    if Instant::now() >= deadline {
                        let why = format!(
                            "worker did not connect within {:?} (does the program call \
                             futurepool_procs::init() first thing in main?)",
                            spec.startup_timeout
                        );
                        let e = release(&mut child, why);
                        let _ = acceptor.join();
                        return Err(e);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let e = release(&mut child, "the handshake thread died".into());
                    return Err(e);
                }
            }
        };
        let _ = acceptor.join();
        let (requests, replies) = match accepted {
            Ok((
                _,
                Hello::Worker {
                    token: t,
                    pid,
                    requests,
                    replies,
                },
            )) if t == token && pid == child.id() => (requests, replies),
            Ok(_) => return Err(release(&mut child, "handshake with a wrong token".into())),
            Err(e) => return Err(release(&mut child, format!("handshake failed: {e}"))),
        };
        let mut worker = WorkerProcess {
            child,
            requests,
            replies,
            next_id: 0,
            tasks_run: 0,
            reaped: false,
        };
        if worker
            .requests
            .send(Request::Init {
                task: spec
                    .initializer
                    .as_ref()
                    .map(|(name, arg)| (name.clone(), Bytes::new(arg.clone()))),
            })
            .is_err()
        {
            let why = worker.reap_description();
            return Err(StartError::Failed(format!(
                "worker {why} before its initializer"
            )));
        }
        match worker.receive(Some(deadline)) {
            Ok(Reply::Initialized(Outcome::Returned(bytes))) => {
                // An initializer returns `Result<(), String>`; none at all sends no bytes.
                if bytes.is_empty() {
                    return Ok(worker);
                }
                match crate::codec::decode::<Result<(), String>>(&bytes) {
                    Ok(Ok(())) => Ok(worker),
                    Ok(Err(e)) => Err(StartError::Init(format!("initializer failed: {e}"))),
                    Err(e) => Err(StartError::Init(format!(
                        "initializer result unreadable: {e}"
                    ))),
                }
            }
            Ok(Reply::Initialized(Outcome::Panicked { message, .. })) => {
                Err(StartError::Init(format!("initializer panicked: {message}")))
            }
            Ok(other) => Err(StartError::Init(format!("initializer failed: {other:?}"))),
            Err(CallError::Died(why)) => {
                Err(StartError::Init(format!("worker {why} in its initializer")))
            }
            Err(CallError::TimedOut) => Err(StartError::Init(format!(
                "initializer did not finish within {:?}",
                spec.startup_timeout
            ))),
        }
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `task` on `arg`; past `deadline` the worker is killed.
    pub(crate) fn call(
        &mut self,
        task: &str,
        arg: Bytes,
        deadline: Option<Instant>,
    ) -> Result<Outcome, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        if self
            .requests
            .send(Request::Run {
                id,
                task: task.to_string(),
                arg,
            })
            .is_err()
        {
            return Err(CallError::Died(self.reap_description()));
        }
        match self.receive(deadline)? {
            Reply::Done { id: got, outcome } if got == id => {
                self.tasks_run += 1;
                Ok(outcome)
            }
            other => {
                self.kill();
                Err(CallError::Died(format!(
                    "sent an unexpected reply {other:?}"
                )))
            }
        }
    }

    /// Runs `task` on each argument of a chunk; past `deadline` the worker is killed.
    pub(crate) fn call_chunk(
        &mut self,
        task: &str,
        args: Vec<Option<Bytes>>,
        deadline: Option<Instant>,
    ) -> Result<Vec<Outcome>, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let n = args.len();
        if self
            .requests
            .send(Request::RunChunk {
                id,
                task: task.to_string(),
                args,
            })
            .is_err()
        {
            return Err(CallError::Died(self.reap_description()));
        }
        match self.receive(deadline)? {
            Reply::ChunkDone { id: got, outcomes } if got == id && outcomes.len() == n => {
                self.tasks_run += n;
                Ok(outcomes)
            }
            other => {
                self.kill();
                Err(CallError::Died(format!(
                    "sent an unexpected reply {other:?}"
                )))
            }
        }
    }

    /// The next reply, or why there is none (death, deadline: then the child is killed).
    fn receive(&mut self, deadline: Option<Instant>) -> Result<Reply, CallError> {
        let result = match deadline {
            None => self.replies.recv().map_err(TryRecvError::IpcError),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                self.replies.try_recv_timeout(left)
            }
        };
        match result {
            Ok(reply) => Ok(reply),
            Err(TryRecvError::Empty) => {
                self.kill();
                Err(CallError::TimedOut)
            }
            Err(TryRecvError::IpcError(IpcError::Disconnected)) => {
                Err(CallError::Died(self.reap_description()))
            }
            Err(TryRecvError::IpcError(e)) => {
                self.kill();
                Err(CallError::Died(format!(
                    "broke its channel ({e}) and was killed"
                )))
            }
        }
    }

    /// Waits for the (dead or dying) child and says how it ended.
    fn reap_description(&mut self) -> String {
        let pid = self.child.id();
        match self.reap() {
            Some(status) => format!("(pid {pid}) {}", describe(status)),
            None => format!("(pid {pid}) ended"),
        }
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        if self.reaped {
            return None;
        }
        self.reaped = true;
        self.child.wait().ok()
    }

    /// SIGKILL and reap.
    pub(crate) fn kill(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            self.reap();
        }
    }
}

impl Drop for WorkerProcess {
    /// Asks the worker to exit, gives it a moment, then kills it; always reaps (no zombies).
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let _ = self.requests.send(Request::Exit);
        let deadline = Instant::now() + EXIT_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => {
                    self.reaped = true;
                    return;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(1)),
                _ => break,
            }
        }
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn handshake_directory_is_private_and_removed() {
        let (server, name) = super::handshake_server().unwrap();
        let dir = std::path::Path::new(&name).parent().unwrap().to_path_buf();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
        drop(server);
        assert!(!dir.exists(), "removed after use");
    }
}
