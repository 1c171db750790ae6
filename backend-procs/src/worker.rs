//! The worker side: what [`init`](crate::init) turns the process into when its parent started
//! it as a worker.

use std::cell::RefCell;
use std::env;
use std::process;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::thread;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::net::{sendmsg, RecvFlags, SendAncillaryBuffer, SendFlags};

use crate::registry;
use crate::wire::{Bytes, FrameReader, Outcome, Recv, Reply, Request};

/// The environment variable that carries `<descriptor> <parent pid> <token>` to a worker.
pub(crate) const WORKER_ENV: &str = "FUTUREPOOL_WORKER";

/// Arguments a worker is started with. `init()` runs before the program looks at its
/// arguments; under the libtest harness they select the test made by
/// [`test_worker!`](crate::test_worker), which calls `init()`.
pub(crate) const WORKER_ARGS: &[&str] = &[
    "__futurepool_worker",
    "--exact",
    "--nocapture",
    "--test-threads=1",
    "-q",
];

/// Exit code of a worker that could not start (bad token, no parent).
pub(crate) const EXIT_BOOT_FAILED: i32 = 97;

thread_local! {
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The location of the last panic on this thread, recorded by the worker's panic hook.
pub(crate) fn take_panic_location() -> Option<String> {
    PANIC_LOCATION.with(|l| l.borrow_mut().take())
}

/// Called by `init()`: returns if this process is not a worker; otherwise serves its parent and
/// exits.
pub(crate) fn maybe_run() {
    let Some(spec) = env::var_os(WORKER_ENV) else {
        return;
    };
    // Not inherited by anything this worker starts.
    env::remove_var(WORKER_ENV);
    let spec = spec.to_string_lossy().into_owned();
    let sock = match connect(&spec) {
        Ok(sock) => sock,
        Err(e) => {
            eprintln!("futurepool worker: {e}; refusing to start");
            process::exit(EXIT_BOOT_FAILED);
        }
    };
    match serve(sock) {
        Ok(()) => process::exit(0),
        Err(e) => {
            eprintln!("futurepool worker: {e}");
            process::exit(EXIT_BOOT_FAILED);
        }
    }
}

/// Takes over the socket our parent handed down (`<fd> <parent pid> <token>`), after checking
/// that this process really is a worker of that parent, and says hello with the token.
fn connect(spec: &str) -> Result<OwnedFd, String> {
    let mut parts = spec.split(' ');
    let (Some(fd), Some(ppid), Some(token), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("{WORKER_ENV} is set but malformed"));
    };
    let fd: RawFd = fd
        .parse()
        .map_err(|_| format!("{WORKER_ENV} is malformed"))?;
    let ppid: i32 = ppid
        .parse()
        .map_err(|_| format!("{WORKER_ENV} is malformed"))?;
    if token.len() < 32 {
        return Err("no valid parent token".into());
    }
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != Some(ppid) {
        return Err("not started by a futurepool parent (the parent pid does not match)".into());
    }
    // SAFETY: `fcntl(F_GETFD)` only reads the descriptor table; any integer is a valid
    // argument (an unopened one gives EBADF).
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(format!(
            "not started by a futurepool parent (no descriptor {fd})"
        ));
    }
    // SAFETY: descriptor `fd` is open (checked just above) and was put there for this process
    // by its parent (whose pid we checked) to be taken over here: nothing else in this process
    // knows the number (the variable that named it is removed), so this is its only owner.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let stat = rustix::fs::fstat(&sock).map_err(|e| e.to_string())?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        std::mem::forget(sock); // not ours after all: leave it alone
        return Err(format!(
            "not started by a futurepool parent ({fd} is not a socket)"
        ));
    }
    // Programs that tasks start must not inherit it (a grandchild holding the socket is
    // harmless to the parent, which watches the process, but it is not theirs).
    rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::CLOEXEC).map_err(|e| e.to_string())?;
    send(
        &sock,
        &Reply::Hello {
            token: token.to_string(),
            pid: process::id(),
        },
    )
    .map_err(|e| format!("cannot reach the parent: {e}"))?;
    Ok(sock)
}

/// Dies with the parent: the parent's end of the socket closes whenever it ends, however it
/// ends (SIGKILL included), and this thread, which waits for exactly that, kills the worker at
/// once, busy or idle. (`PR_SET_PDEATHSIG` is tied to the parent *thread* that started the
/// worker, not to the parent process, so it is not used.)
fn watch_parent(sock: &OwnedFd) -> Result<(), String> {
    let fd = sock
        .try_clone()
        .map_err(|e| format!("cannot watch the parent: {e}"))?;
    thread::Builder::new()
        .name("futurepool-parent-watch".into())
        .spawn(move || loop {
            let mut fds = [PollFd::new(&fd, PollFlags::RDHUP)];
            match poll(&mut fds, None) {
                Err(rustix::io::Errno::INTR) => continue,
                _ if fds[0].revents().is_empty() => continue,
                _ => {
                    let _ = rustix::process::kill_process(
                        rustix::process::getpid(),
                        rustix::process::Signal::KILL,
                    );
                }
            }
        })
        .map_err(|e| format!("cannot start the parent-watch thread: {e}"))?;
    Ok(())
}

fn send(sock: &OwnedFd, reply: &Reply) -> io::Result<()> {
    let frame = reply.frame();
    let mut sent = 0;
    while sent < frame.len() {
        match sendmsg(
            sock,
            &frame.slices(sent),
            &mut SendAncillaryBuffer::default(),
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) => sent += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The next request; `None` once the parent is gone.
fn receive(sock: &OwnedFd, reader: &mut FrameReader) -> Option<Request> {
    let body = loop {
        let mut source = Recv {
            sock,
            flags: RecvFlags::empty(),
            retry_interrupted: true,
        };
        match reader.read_once(&mut source) {
            Ok(Some(body)) => break body,
            Ok(None) => {}
            Err(_) => return None,
        }
    };
    match Request::decode(body) {
        Ok(request) => Some(request),
        Err(e) => {
            eprintln!("futurepool worker: a bad request from the parent: {e}");
            None
        }
    }
}

fn serve(sock: OwnedFd) -> Result<(), String> {
    watch_parent(&sock)?;
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        PANIC_LOCATION.with(|l| *l.borrow_mut() = location);
    }));
    let mut reader = FrameReader::trusted();
    loop {
        // The parent going away ends the worker.
        let Some(request) = receive(&sock, &mut reader) else {
            return Ok(());
        };
        let reply = match request {
            Request::Init { task: None } => {
                Reply::Initialized(Outcome::Returned(Bytes::new(Vec::new())))
            }
            Request::Init {
                task: Some((name, arg)),
            } => Reply::Initialized(registry::run(&name, arg)),
            Request::Run { id, task, arg } => Reply::Done {
                id,
                outcome: registry::run(&task, arg),
            },
            Request::RunChunk { id, task, args } => Reply::ChunkDone {
                id,
                outcomes: args
                    .into_iter()
                    .map(|arg| match arg {
                        Some(arg) => registry::run(&task, arg),
                        None => Outcome::BadArgument("did not serialize".into()),
                    })
                    .collect(),
            },
            Request::Exit => return Ok(()),
        };
        if send(&sock, &reply).is_err() {
            return Ok(());
        }
    }
}
