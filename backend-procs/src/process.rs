//! One worker process, seen from the parent: start-up, calls with an optional deadline, and a
//! clean (or forced) end that always reaps the child.
//!
//! # Liveness comes from the process, not the socket
//!
//! The parent and a worker talk over a `socketpair` made for that worker alone (the worker's
//! end is inherited as a numbered descriptor; there is no rendezvous socket in the file system
//! that another process could reach first). Every wait on the socket with a deadline — for
//! room to write, for a reply to read — is a `poll` on the socket *and* the worker's pidfd, with
//! the deadline as its timeout; a wait for a reply with no deadline is the read itself (one
//! system call per reply instead of two), which the socket's receive timeout ends every 100 ms
//! to look at the pidfd. So:
//!
//! - a worker that exits or is killed is seen at once (its end of the socket closes), and
//!   within 100 ms through its pidfd when a grandchild it forked still holds that end open;
//! - a deadline (`task_timeout`, `startup_timeout`) is kept whatever the worker sends or does
//!   not send: with a deadline the parent never blocks in a read or a write;
//! - every other read and write of the parent's says `DONTWAIT`, and a frame is only accepted
//!   whole and within the pool's `max_message_size` (see [`crate::wire`]).
//!
//! Every path that gives up on a worker kills it (SIGKILL through its pidfd when there is one),
//! then reaps it, then closes its descriptors, in that order: no `wait` on a live child, no
//! zombie, no descriptor left.
//!
//! Where `pidfd_open` is not available (Linux before 5.3), waits wake every 20 ms to check the
//! child with `try_wait` instead.

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    sendmsg, socketpair, AddressFamily, RecvFlags, SendAncillaryBuffer, SendFlags, SocketFlags,
    SocketType,
};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::wire::{
    ByteSource, Bytes, Frame, FrameReader, Outcome, ReadError, Recv, Reply, Request,
};
use crate::worker::{WORKER_ARGS, WORKER_ENV};

/// How long a worker may take to exit after `Exit` before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// How often a wait wakes to check the child when there is no pidfd.
const TICK: Duration = Duration::from_millis(20);

/// How long a read that waits for a reply without a deadline blocks before it looks whether
/// the worker is still alive (the socket's receive timeout): a worker's death closes the socket
/// at once, unless a process it started still holds the socket open.
const LOOK: Duration = Duration::from_millis(100);

/// What starting a worker needs.
pub(crate) struct StartSpec<'a> {
    pub(crate) exe: &'a Path,
    pub(crate) startup_timeout: Duration,
    pub(crate) initializer: Option<(String, Vec<u8>)>,
    pub(crate) max_message_size: u64,
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
    /// The worker was found dead before it received any of the request: the task never
    /// started, and may go to a fresh worker.
    NotStarted(String),
    /// The worker died during the call, or broke the protocol and was killed; the text says
    /// which (exit code, signal, or what was wrong).
    Died(String),
    /// The deadline passed; the worker was killed.
    TimedOut,
}

/// What a call sends: one argument, or a chunk of them (`None`: an argument that did not
/// encode, which the worker answers with an error in its place).
pub(crate) enum Payload {
    One(Bytes),
    Chunk(Vec<Option<Bytes>>),
}

impl Payload {
    /// Bytes of the request frame that sends it to run `task` (length prefix, fields and
    /// framing included): what it occupies in the worker's socket until the worker reads it.
    /// A chunk of small arguments is mostly framing (9 bytes an item), not argument bytes.
    pub(crate) fn frame_len(&self, task: &str) -> usize {
        // Prefix, tag, id, the task's name and its length.
        let head = crate::wire::HEADER + 1 + 8 + 8 + task.len();
        match self {
            Payload::One(arg) => head + 8 + arg.len(),
            Payload::Chunk(args) => {
                head + 4
                    + args
                        .iter()
                        .map(|a| 1 + a.as_ref().map_or(0, |a| 8 + a.len()))
                        .sum::<usize>()
            }
        }
    }

    /// The request that sends it to run `task`.
    fn request(&self, id: u64, task: &str) -> Request {
        let task = task.to_string();
        match self {
            Payload::One(arg) => Request::Run {
                id,
                task,
                arg: arg.clone(),
            },
            Payload::Chunk(args) => Request::RunChunk {
                id,
                task,
                args: args.clone(),
            },
        }
    }

    /// After it was sent to a worker as the job to run next: its argument bytes are freed now
    /// (a job that reached its worker whole is never sent again), not when its answer comes
    /// — a large argument and its large result are not held at once.
    pub(crate) fn free_arguments(&mut self) {
        match self {
            Payload::One(arg) => *arg = Bytes::new(Vec::new()),
            Payload::Chunk(args) => {
                for arg in args.iter_mut().flatten() {
                    *arg = Bytes::new(Vec::new());
                }
            }
        }
    }

    /// Tasks it counts as (`max_tasks_per_child`).
    pub(crate) fn tasks(&self) -> usize {
        match self {
            Payload::One(_) => 1,
            Payload::Chunk(args) => args.len(),
        }
    }

    /// The kind of answer it gets.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Payload::One(_) => Kind::One,
            Payload::Chunk(args) => Kind::Chunk(args.len()),
        }
    }
}

/// The kind of answer expected: one outcome, or a chunk's `n`.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    One,
    Chunk(usize),
}

/// What a call got back.
pub(crate) enum Answer {
    One(Outcome),
    Chunk(Vec<Outcome>),
}

/// Why a wait on the socket ended without the socket being ready.
enum Stop {
    /// The process has ended (and has been reaped).
    Exited,
    /// The deadline passed.
    Deadline,
    /// `poll` itself failed.
    Os(io::Error),
}

/// A started worker process.
pub(crate) struct WorkerProcess {
    child: Child,
    /// The parent's end of the socket pair, non-blocking.
    sock: OwnedFd,
    /// The child's pidfd, if the kernel has them; shared with its [`Killer`]s.
    pidfd: Option<Arc<OwnedFd>>,
    /// The exit status once reaped.
    status: Option<ExitStatus>,
    /// Replies being cut out of what the socket delivers.
    reader: FrameReader,
    next_id: u64,
    /// Tasks this process has completed.
    pub(crate) tasks_run: usize,
    /// Set once the worker broke the protocol: what is left in its socket is not read.
    untrusted: bool,
}

impl fmt::Debug for WorkerProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerProcess")
            .field("pid", &self.child.id())
            .field("tasks_run", &self.tasks_run)
            .finish()
    }
}

/// 128 random bits from the kernel, as hex: the worker's one-time token. (`getrandom`, not
/// `/dev/urandom`: no descriptor, see [`spawn`].)
fn token() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn failed(what: &str, e: &dyn fmt::Display) -> StartError {
    StartError::Failed(format!("{what}: {e}"))
}

/// Worker spawns in this process, one at a time.
///
/// A running worker costs the parent 2 descriptors (its socket and its pidfd). A spawn holds
/// up to 3 more for a moment — the worker's end of the socket pair, `/dev/null` for its stdin,
/// and one end of the pipe through which `exec` reports failure (the other is the child's) —
/// until the child has exec'd. Pools start workers from several threads at once: with 16
/// workers starting together, 16 × 5 descriptors at the same moment made a descriptor limit
/// that fits the running pool (2 per worker) fail tasks with "Too many open files". One spawn
/// at a time bounds the extra to 3 for the whole process. The lock is held for the spawn
/// only (a fork and an exec, well under a millisecond), not for the worker's start-up, which
/// goes on in parallel.
static SPAWNING: Mutex<()> = Mutex::new(());

/// Spawns the worker executable with its end of a fresh socket pair: the child, the parent's
/// end (blocking, see the module doc) and the child's pidfd, if the kernel has them.
fn spawn(exe: &Path, token: &str) -> Result<(Child, OwnedFd, Option<Arc<OwnedFd>>), StartError> {
    let _one_at_a_time = SPAWNING.lock().unwrap_or_else(|p| p.into_inner());
    let (sock, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(|e| failed("cannot create a socket pair", &io::Error::from(e)))?;
    // Both ends block (O_NONBLOCK is per open file description, and the two ends are two
    // descriptions): the parent's reads and writes say `DONTWAIT` where they must not wait,
    // and a read for a reply with no deadline waits in the read itself, up to `LOOK`.
    let configure = |e: Errno| failed("cannot configure the socket", &io::Error::from(e));
    rustix::io::ioctl_fionbio(&theirs, false).map_err(configure)?;
    rustix::io::ioctl_fionbio(&sock, false).map_err(configure)?;
    rustix::net::sockopt::set_socket_timeout(
        &sock,
        rustix::net::sockopt::Timeout::Recv,
        Some(LOOK),
    )
    .map_err(configure)?;
    let fd = theirs.as_raw_fd();
    let mut command = Command::new(exe);
    command
        .args(WORKER_ARGS)
        .env(WORKER_ENV, format!("{fd} {} {token}", std::process::id()))
        .stdin(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes one `fcntl` call (async-signal-safe, no
    // allocation, no lock) on a descriptor number that is open in the child (`theirs` is alive
    // in the parent across `spawn`, so the child's copy exists). Clearing FD_CLOEXEC there lets
    // exactly this descriptor, and no other, survive the exec.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| failed(&format!("cannot start {}", exe.display()), &e))?;
    drop(theirs);
    let pidfd = match Pid::from_raw(child.id() as i32).map(|p| pidfd_open(p, PidfdFlags::empty())) {
        Some(Ok(fd)) => Some(Arc::new(fd)),
        Some(Err(Errno::NOSYS)) | None => None,
        Some(Err(e)) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(
                "cannot watch the worker (pidfd)",
                &io::Error::from(e),
            ));
        }
    };
    Ok((child, sock, pidfd))
}

/// "exited with code 3", "killed by signal 11 (SIGSEGV)".
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = Signal::from_named_raw(sig)
                .map(signal_name)
                .unwrap_or("signal");
            format!("killed by signal {sig} ({name})")
        }
        None => format!("ended with {status}"),
    }
}

fn signal_name(sig: Signal) -> &'static str {
    match sig {
        Signal::SEGV => "SIGSEGV",
        Signal::ABORT => "SIGABRT",
        Signal::KILL => "SIGKILL",
        Signal::TERM => "SIGTERM",
        Signal::BUS => "SIGBUS",
        Signal::ILL => "SIGILL",
        Signal::FPE => "SIGFPE",
        Signal::INT => "SIGINT",
        Signal::HUP => "SIGHUP",
        Signal::PIPE => "SIGPIPE",
        Signal::USR1 => "SIGUSR1",
        Signal::USR2 => "SIGUSR2",
        Signal::XCPU => "SIGXCPU",
        Signal::XFSZ => "SIGXFSZ",
        _ => "signal",
    }
}

impl WorkerProcess {
    /// Starts a worker: spawn (never fork the parent's state into a worker: the child execs at
    /// once), hand it its end of a fresh socket pair, read its hello (the one-time token and
    /// its pid), then run the initializer. Bounded by `startup_timeout`: a child that dies or
    /// hangs during start-up is killed and reaped, never waited for forever.
    pub(crate) fn start(spec: &StartSpec<'_>) -> Result<WorkerProcess, StartError> {
        let deadline = Instant::now().checked_add(spec.startup_timeout);
        let token = token().map_err(|e| failed("cannot draw the worker's token", &e))?;
        let (child, sock, pidfd) = spawn(spec.exe, &token)?;
        let mut worker = WorkerProcess {
            child,
            sock,
            pidfd,
            status: None,
            reader: FrameReader::untrusted(spec.max_message_size),
            next_id: 0,
            tasks_run: 0,
            untrusted: false,
        };
        worker.greet(&token, deadline, spec.startup_timeout)?;
        worker.initialize(spec.initializer.as_ref(), deadline, spec.startup_timeout)?;
        Ok(worker)
    }

    /// Reads the new worker's hello: its pid and the token it was given (so the socket is
    /// known to lead to the process just started). Kills it if the hello is wrong or late.
    fn greet(
        &mut self,
        token: &str,
        deadline: Option<Instant>,
        startup_timeout: Duration,
    ) -> Result<(), StartError> {
        let pid = self.pid();
        let why = match self.receive(deadline) {
            Ok(Reply::Hello { token: t, pid: p }) if t == token && p == pid => return Ok(()),
            Ok(Reply::Hello { .. }) => "sent a wrong token".to_string(),
            Ok(other) => format!("sent {other:?} instead of its hello"),
            Err(CallError::TimedOut) => format!(
                "did not connect within {startup_timeout:?} (does the program call \
                 futurepool_procs::init() first thing in main?)"
            ),
            Err(CallError::Died(why) | CallError::NotStarted(why)) => {
                format!("{why} during start-up")
            }
        };
        self.kill();
        Err(StartError::Failed(format!("worker (pid {pid}) {why}")))
    }

    /// Runs the pool's initializer, if any, on the new worker (an `Init` request either way:
    /// the worker waits for it before it takes tasks).
    fn initialize(
        &mut self,
        initializer: Option<&(String, Vec<u8>)>,
        deadline: Option<Instant>,
        startup_timeout: Duration,
    ) -> Result<(), StartError> {
        let init = Request::Init {
            task: initializer.map(|(name, arg)| (name.clone(), Bytes::new(arg.clone()))),
        };
        let reply = self
            .send(&init.frame(), deadline)
            .and_then(|()| self.receive(deadline));
        let why = match reply {
            // An initializer returns `Result<(), String>`; none at all sends no bytes.
            Ok(Reply::Initialized(Outcome::Returned(bytes))) if bytes.is_empty() => return Ok(()),
            Ok(Reply::Initialized(Outcome::Returned(bytes))) => {
                match crate::codec::decode::<Result<(), String>>(&bytes) {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => format!("initializer failed: {e}"),
                    Err(e) => format!("initializer result unreadable: {e}"),
                }
            }
            Ok(Reply::Initialized(Outcome::Panicked { message, .. })) => {
                format!("initializer panicked: {message}")
            }
            Ok(other) => {
                self.kill();
                format!("initializer failed: {other:?}")
            }
            Err(CallError::Died(why) | CallError::NotStarted(why)) => {
                format!("worker (pid {}) {why} in its initializer", self.pid())
            }
            Err(CallError::TimedOut) => {
                format!("initializer did not finish within {startup_timeout:?}")
            }
        };
        Err(StartError::Init(why))
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A handle that can kill this worker from another thread (`cancel_kills_running`),
    /// safely even after it has been reaped.
    pub(crate) fn killer(&self) -> Killer {
        Killer {
            pidfd: self.pidfd.clone(),
            pid: self.child.id(),
        }
    }

    /// `true` if the process has ended (it is then reaped).
    pub(crate) fn has_exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        match &self.pidfd {
            Some(pidfd) => {
                let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
                let zero = Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                if matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0) {
                    self.reap();
                    true
                } else {
                    false
                }
            }
            None => self.try_reap(),
        }
    }

    /// Runs `task` on `arg`; past `deadline` the worker is killed.
    ///
    /// `arg` is taken (and so freed, if nobody else holds it) once the request is sent, before
    /// the reply is waited for: a large argument and a large result are not held together. It
    /// is left in place when the worker was found dead before receiving any of it
    /// ([`CallError::NotStarted`]), for the next worker.
    pub(crate) fn call(
        &mut self,
        task: &str,
        arg: &mut Option<Bytes>,
        deadline: Option<Instant>,
    ) -> Result<Outcome, CallError> {
        let payload = Payload::One(arg.clone().expect("an argument to send"));
        let id = self.send_job(task, &payload, deadline)?;
        *arg = None;
        drop(payload);
        match self.receive_answer(id, Kind::One, deadline)? {
            Answer::One(outcome) => Ok(outcome),
            Answer::Chunk(_) => unreachable!("receive_answer checks the reply's kind"),
        }
    }

    /// Sends a request to run `task` on `payload` (a wait for room to send ends at `deadline`:
    /// the worker is then killed); the request's id.
    pub(crate) fn send_job(
        &mut self,
        task: &str,
        payload: &Payload,
        deadline: Option<Instant>,
    ) -> Result<u64, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = payload.request(id, task);
        let frame = request.frame();
        drop(request);
        self.send(&frame, deadline)?;
        Ok(id)
    }

    /// Waits for the answer to request `id` (the oldest one unanswered: a worker answers in
    /// order), which must be of the request's kind; past `deadline` the worker is killed.
    pub(crate) fn receive_answer(
        &mut self,
        id: u64,
        kind: Kind,
        deadline: Option<Instant>,
    ) -> Result<Answer, CallError> {
        let reply = self.receive(deadline)?;
        self.answer_of(reply, id, kind)
            .map_err(|other| self.protocol_error(format!("sent an unexpected reply {other:?}")))
    }

    /// After the worker's end (it died, or was killed): the answer to request `id` (the oldest
    /// one unanswered) if the worker wrote all of it before it ended — that task finished,
    /// whatever happened after. `None` if it did not, or if the socket cannot be trusted.
    pub(crate) fn answer_left(&mut self, id: u64, kind: Kind) -> Option<Answer> {
        // Dead for sure first: a live worker could still be writing.
        self.kill();
        if self.untrusted {
            return None;
        }
        let reply = self.read_remains()?;
        match self.answer_of(reply, id, kind) {
            Ok(answer) => Some(answer),
            Err(_) => {
                self.untrusted = true;
                None
            }
        }
    }

    /// `reply` as the answer to request `id` of `kind`; the reply back if it is not that.
    fn answer_of(&mut self, reply: Reply, id: u64, kind: Kind) -> Result<Answer, Reply> {
        match (reply, kind) {
            (Reply::Done { id: got, outcome }, Kind::One) if got == id => {
                self.tasks_run += 1;
                Ok(Answer::One(outcome))
            }
            (Reply::ChunkDone { id: got, outcomes }, Kind::Chunk(n))
                if got == id && outcomes.len() == n =>
            {
                self.tasks_run += n;
                Ok(Answer::Chunk(outcomes))
            }
            (other, _) => Err(other),
        }
    }

    /// Kills the worker for breaking the protocol.
    fn protocol_error(&mut self, why: String) -> CallError {
        self.untrusted = true;
        self.kill();
        CallError::Died(format!(
            "(pid {}) broke the protocol ({why}) and was killed",
            self.pid()
        ))
    }

    /// Waits until the socket is ready for `interest`, the process ends, or the deadline.
    /// With no interest, waits for the process to end (or the deadline).
    ///
    /// Past the deadline the socket is still looked at once: a reply that is already there
    /// (the manager thread was busy elsewhere, e.g. completing the task before, while the
    /// worker answered) is read rather than the worker killed.
    fn wait(&mut self, interest: Option<PollFlags>, deadline: Option<Instant>) -> Result<(), Stop> {
        loop {
            let (left, last_look) = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    (Some(left), left.is_zero())
                }
                None => (None, false),
            };
            let left = match (&self.pidfd, left) {
                (None, Some(l)) => Some(l.min(TICK)),
                (None, None) => Some(TICK),
                (Some(_), l) => l,
            };
            let timeout = left.map(|l| Timespec {
                tv_sec: l.as_secs() as i64,
                tv_nsec: l.subsec_nanos() as _,
            });
            let (ready, exited) = {
                let mut fds = Vec::with_capacity(2);
                if let Some(pidfd) = &self.pidfd {
                    fds.push(PollFd::new(pidfd, PollFlags::IN));
                }
                if let Some(interest) = interest {
                    fds.push(PollFd::new(&self.sock, interest));
                }
                match poll(&mut fds, timeout.as_ref()) {
                    Ok(_) => {}
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(Stop::Os(e.into())),
                }
                let exited = self.pidfd.is_some() && !fds[0].revents().is_empty();
                let ready = interest.is_some() && !fds[fds.len() - 1].revents().is_empty();
                (ready, exited)
            };
            if ready {
                return Ok(());
            }
            if last_look {
                return Err(Stop::Deadline);
            }
            if exited || (self.pidfd.is_none() && self.try_reap()) {
                self.reap();
                return Err(Stop::Exited);
            }
        }
    }

    /// Sends a whole frame before `deadline`.
    fn send(&mut self, frame: &Frame, deadline: Option<Instant>) -> Result<(), CallError> {
        let mut sent = 0;
        while sent < frame.len() {
            let result = sendmsg(
                &self.sock,
                &frame.slices(sent),
                &mut SendAncillaryBuffer::default(),
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            );
            match result {
                Ok(n) => sent += n,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => match self.wait(Some(PollFlags::OUT), deadline) {
                    Ok(()) => {}
                    Err(Stop::Exited) => return Err(self.died_while_sending(sent)),
                    Err(Stop::Deadline) => {
                        self.kill();
                        return Err(CallError::TimedOut);
                    }
                    Err(Stop::Os(e)) => {
                        self.kill();
                        return Err(CallError::Died(format!(
                            "(pid {}) could not be waited for ({e}) and was killed",
                            self.pid()
                        )));
                    }
                },
                Err(Errno::PIPE | Errno::CONNRESET) => {
                    // Our peer is gone: the worker has exited (or closed its end and is about
                    // to); see how it ended.
                    self.settle();
                    return Err(self.died_while_sending(sent));
                }
                Err(e) => {
                    self.kill();
                    return Err(CallError::Died(format!(
                        "(pid {}) could not be sent its task ({}) and was killed",
                        self.pid(),
                        io::Error::from(e)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The error for a worker found dead while (or before) sending it a request.
    fn died_while_sending(&mut self, sent: usize) -> CallError {
        let why = self.reap_description();
        if sent == 0 {
            CallError::NotStarted(why)
        } else {
            CallError::Died(why)
        }
    }

    /// After the peer closed the socket: wait (briefly) for the process to end; kill it if it
    /// lingers with its socket closed.
    fn settle(&mut self) {
        let grace = Instant::now().checked_add(Duration::from_secs(1));
        match self.wait(None, grace) {
            Err(Stop::Exited) => {}
            _ => self.kill(),
        }
    }

    /// One read of what has arrived; a whole body once there is one.
    fn read_some(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        self.reader.read_once(&mut Recv {
            sock: &self.sock,
            flags: RecvFlags::DONTWAIT,
            retry_interrupted: true,
        })
    }

    /// One read that waits for something to arrive, up to the socket's receive timeout
    /// (`LOOK`) or a signal; a whole body once there is one.
    fn read_waiting(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        self.reader.read_once(&mut Recv {
            sock: &self.sock,
            flags: RecvFlags::empty(),
            retry_interrupted: false,
        })
    }

    /// Everything left in the socket of a worker that has ended: a reply it sent just before
    /// the end, if whole.
    fn read_remains(&mut self) -> Option<Reply> {
        loop {
            let mut source = Noting {
                source: Recv {
                    sock: &self.sock,
                    flags: RecvFlags::DONTWAIT,
                    retry_interrupted: true,
                },
                got: false,
            };
            match self.reader.read_once(&mut source) {
                Ok(Some(body)) => return Reply::decode(body).ok(),
                Ok(None) if source.got => continue,
                _ => return None,
            }
        }
    }

    /// The next reply, or why there is none (death, deadline: then the child is killed).
    fn receive(&mut self, deadline: Option<Instant>) -> Result<Reply, CallError> {
        // What is already buffered first; then wait before reading, since a reply is rarely
        // there the moment a request has gone (a read would only say "not yet").
        let mut read = self.reader.buffered();
        loop {
            match read {
                Ok(Some(body)) => {
                    return Reply::decode(body).map_err(|e| self.protocol_error(e.0));
                }
                Ok(None) => {}
                Err(ReadError::Closed) => {
                    self.settle();
                    return Err(CallError::Died(self.reap_description()));
                }
                Err(ReadError::Protocol(why)) => return Err(self.protocol_error(why)),
                Err(ReadError::Os(e)) => {
                    return Err(self.protocol_error(format!("its socket failed: {e}")));
                }
            }
            if deadline.is_none() {
                // Wait in the read itself: one system call per reply instead of a poll and a
                // read. Each wait ends after `LOOK` to see whether the worker is still alive.
                read = self.read_waiting();
                if matches!(read, Ok(None)) && self.has_exited() {
                    // A reply sent just before the end is still in the socket.
                    if let Some(reply) = self.read_remains() {
                        return Ok(reply);
                    }
                    return Err(CallError::Died(self.reap_description()));
                }
                continue;
            }
            match self.wait(Some(PollFlags::IN), deadline) {
                Ok(()) => {}
                Err(Stop::Exited) => {
                    // A reply sent just before the end is still in the socket.
                    if let Some(reply) = self.read_remains() {
                        return Ok(reply);
                    }
                    return Err(CallError::Died(self.reap_description()));
                }
                Err(Stop::Deadline) => {
                    self.kill();
                    return Err(CallError::TimedOut);
                }
                Err(Stop::Os(e)) => {
                    return Err(self.protocol_error(format!("cannot wait for it: {e}")));
                }
            }
            read = self.read_some();
        }
    }

    /// Waits for the (dead or dying) child and says how it ended.
    fn reap_description(&mut self) -> String {
        let pid = self.pid();
        match self.reap() {
            Some(status) => format!("(pid {pid}) {}", describe(status)),
            None => format!("(pid {pid}) ended"),
        }
    }

    /// Reaps the child, waiting for it; only called once it has ended or been killed.
    fn reap(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
        self.status
    }

    /// Reaps the child if it has ended, without waiting.
    fn try_reap(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.status = Some(status);
                true
            }
            _ => false,
        }
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.reap();
        }
    }
}

/// A source that notes whether a read brought anything.
struct Noting<S> {
    source: S,
    got: bool,
}

impl<S: ByteSource> ByteSource for Noting<S> {
    fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        let n = self.source.read(buf)?;
        self.got |= n.is_some();
        Ok(n)
    }

    fn read_uninit<'a>(
        &mut self,
        buf: &'a mut [MaybeUninit<u8>],
    ) -> Result<Option<&'a mut [u8]>, ReadError> {
        let got = self.source.read_uninit(buf)?;
        self.got |= got.is_some();
        Ok(got)
    }
}

impl Drop for WorkerProcess {
    /// Asks the worker to exit, gives it a moment, then kills it; always reaps (no zombies).
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let grace = Instant::now().checked_add(EXIT_GRACE);
        if self.send(&Request::Exit.frame(), grace).is_ok() {
            if let Err(Stop::Exited) = self.wait(None, grace) {
                return;
            }
        }
        self.kill();
    }
}

/// Kills one worker from another thread. With a pidfd the signal can never reach another
/// process, whenever it is sent; without one, the pid is signalled only while the caller
/// guarantees the worker is unreaped (see `StopCell`).
#[derive(Debug)]
pub(crate) struct Killer {
    pidfd: Option<Arc<OwnedFd>>,
    pid: u32,
}

impl Killer {
    /// SIGKILL.
    pub(crate) fn kill(&self) {
        self.signal(Signal::KILL);
    }

    pub(crate) fn signal(&self, signal: Signal) {
        match &self.pidfd {
            Some(fd) => {
                let _ = pidfd_send_signal(fd.as_fd(), signal);
            }
            None => {
                if let Some(pid) = Pid::from_raw(self.pid as i32) {
                    let _ = rustix::process::kill_process(pid, signal);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_len_is_the_request_frames_length() {
        let name = "some::task";
        let arg = |n: usize| Bytes::new(vec![1; n]);
        let payloads = [
            Payload::One(arg(0)),
            Payload::One(arg(100)),
            Payload::One(arg(20_000)),
            Payload::Chunk(vec![]),
            Payload::Chunk(vec![Some(arg(0)), None, Some(arg(3)), Some(arg(17_000))]),
        ];
        for payload in &payloads {
            assert_eq!(
                payload.frame_len(name),
                payload.request(5, name).frame().len()
            );
        }
    }
}
