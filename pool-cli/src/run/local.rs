//! Running one job as a local process: through the shell as GNU parallel does (`$SHELL -c` when
//! it is a POSIX-family shell, else `/bin/sh -c`), in its own process group, its output spooled
//! to temporary files.
//!
//! * Waiting: `waitid(WEXITED | WNOWAIT)` blocks until the job's process exits without reaping
//!   it, so its process-group id stays ours while the group is signalled and the deadline
//!   thread forgets it; then it is reaped. Output goes to files, so a background process that
//!   keeps the job's stdout open does not keep us waiting.
//! * `--timeout`: the deadline thread sends SIGTERM to the group, SIGKILL after `--grace`;
//!   a timed-out job's whole group is killed when its leader ends.
//! * The fast path: a command of plain words whose first word is an executable found on
//!   `PATH` (not a builtin, keyword, assignment or exported function) is executed directly,
//!   with the environment changes bash or dash would make (`PWD`, and bash's `_`, `SHLVL`),
//!   saving a shell start per job. Anything else goes through the shell.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use super::guard::Guard;
use super::job::{Finished, JobError, JobSpec, Runner, Status, Stop};
use super::killer::{signal_group, Killer};
use super::output::Printer;
use super::spool::{tag_lines, Spool};
use super::template::safe_byte;

/// Where a job's stdout and stderr go.
#[derive(Debug, Clone)]
pub enum Capture {
    /// Spooled, printed whole when the job ends (GNU parallel's default `--group`).
    Group,
    /// Forwarded line by line as the job prints (`--line-buffer`), tagged if `tag`.
    Lines { printer: Arc<Printer>, tag: bool },
    /// Straight to our stdout and stderr (`-u`).
    Inherit,
}

/// The shell jobs run in, and what running without it must imitate.
#[derive(Debug, Clone)]
pub struct Shell {
    path: PathBuf,
    flavour: Flavour,
    /// `PWD` as the shell would export it.
    pwd: Option<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Bash,
    Dash,
    /// Another shell: never bypassed.
    Other,
}

impl Shell {
    /// `$PARALLEL_SHELL`, else `$SHELL`, the first that is a POSIX-family shell (our quoting
    /// is POSIX `sh` quoting), else `/bin/sh`.
    pub fn from_env() -> Shell {
        let posix = |p: &Path| {
            p.is_absolute()
                && matches!(
                    p.file_name().and_then(OsStr::to_str),
                    Some("sh" | "bash" | "dash" | "ksh" | "mksh" | "zsh" | "ash" | "yash")
                )
        };
        let path = ["PARALLEL_SHELL", "SHELL"]
            .into_iter()
            .filter_map(std::env::var_os)
            .map(PathBuf::from)
            .find(|p| posix(p))
            .unwrap_or_else(|| PathBuf::from("/bin/sh"));
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let flavour = match real.file_name().and_then(OsStr::to_str) {
            Some("bash") => Flavour::Bash,
            Some("dash") => Flavour::Dash,
            _ => Flavour::Other,
        };
        // Both shells keep an inherited PWD that names the current directory, else set it.
        let pwd = std::env::current_dir().ok().map(|cwd| {
            let same = |p: &OsStr| {
                let (Ok(a), Ok(b)) = (std::fs::metadata(p), std::fs::metadata(&cwd)) else {
                    return false;
                };
                Path::new(p).is_absolute() && a.dev() == b.dev() && a.ino() == b.ino()
            };
            match std::env::var_os("PWD") {
                Some(p) if same(&p) => p,
                _ => cwd.into_os_string(),
            }
        });
        Shell { path, flavour, pwd }
    }

    /// `$SHELL -c command`, or the program itself when that is provably the same.
    fn command(&self, command: &[u8]) -> Command {
        if let Some(cmd) = self.direct(command) {
            return cmd;
        }
        let mut sh = Command::new(&self.path);
        sh.arg("-c").arg(OsStr::from_bytes(command));
        sh
    }

    /// The fast path (see the module docs), if it applies.
    fn direct(&self, command: &[u8]) -> Option<Command> {
        if self.flavour == Flavour::Other {
            return None;
        }
        if !command.iter().all(|&b| b == b' ' || safe_byte(b)) {
            return None;
        }
        let mut words = command.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let first = words.next()?;
        let name = std::str::from_utf8(first).ok()?;
        if name.contains('=') || name.starts_with('%') || BUILTINS.contains(&name) {
            return None;
        }
        if self.flavour == Flavour::Bash
            && (std::env::var_os("BASH_ENV").is_some()
                || std::env::var_os(format!("BASH_FUNC_{name}%%")).is_some())
        {
            return None;
        }
        let program = if name.contains('/') {
            let p = PathBuf::from(name);
            executable(&p).then_some(p)?
        } else {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .filter(|dir| !dir.as_os_str().is_empty())
                .map(|dir| dir.join(name))
                .find(|p| executable(p))?
        };
        let mut cmd = Command::new(&program);
        cmd.arg0(name);
        cmd.args(words.map(OsStr::from_bytes));
        if let Some(pwd) = &self.pwd {
            cmd.env("PWD", pwd);
        }
        if self.flavour == Flavour::Bash {
            // bash -c with one simple command counts itself in SHLVL and out again before
            // exec'ing, and exports `_` as the program's path.
            let level = std::env::var("SHLVL")
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(0);
            cmd.env("SHLVL", level.to_string());
            cmd.env("_", &program);
        }
        Some(cmd)
    }
}

/// Builtins and reserved words of bash and dash: such a first word always goes to the shell.
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "[[",
    "]]",
    "{",
    "}",
    "!",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "case",
    "cd",
    "chdir",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "coproc",
    "declare",
    "dirs",
    "disown",
    "do",
    "done",
    "echo",
    "elif",
    "else",
    "enable",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "getopts",
    "hash",
    "help",
    "history",
    "if",
    "in",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "select",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "then",
    "time",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
];

fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The process groups of the running jobs (each with its "stopped by us" flag), and whether
/// the run is stopping.
#[derive(Debug, Default)]
struct Running {
    groups: HashMap<u32, Arc<AtomicBool>>,
    stopping: Option<Stop>,
}

/// Runs jobs as local processes.
#[derive(Debug)]
pub struct LocalRunner {
    shell: Shell,
    capture: Capture,
    grace: Duration,
    running: Mutex<Running>,
    killer: Killer,
    /// Kills the jobs' groups if this process dies (a `pool worker`'s worker process).
    guard: Option<&'static Guard>,
}

impl LocalRunner {
    pub fn new(shell: Shell, capture: Capture, grace: Duration) -> LocalRunner {
        LocalRunner {
            shell,
            capture,
            grace,
            running: Mutex::new(Running::default()),
            killer: Killer::default(),
            guard: None,
        }
    }

    /// Has `guard` kill the jobs' process groups if this process dies first.
    pub fn with_guard(mut self, guard: Option<&'static Guard>) -> LocalRunner {
        self.guard = guard;
        self
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signals one group as `how` says (SIGKILL later for a signal).
    fn stop_group(&self, pgid: u32, how: Stop) {
        match how {
            Stop::Kill => signal_group(pgid, libc::SIGKILL),
            Stop::Signal(signal) => {
                signal_group(pgid, signal);
                self.killer.kill_at(Instant::now() + self.grace, pgid);
            }
        }
    }

    /// The job's stdout/stderr handles, the spools behind them and any line readers' pipes.
    fn outputs(&self) -> io::Result<(Spool, Spool, Stdio, Stdio)> {
        match &self.capture {
            Capture::Group => {
                let (out, err) = (Spool::temp()?, Spool::temp()?);
                let (o, e) = (out.stdio()?, err.stdio()?);
                Ok((out, err, o, e))
            }
            Capture::Lines { .. } => {
                Ok((Spool::none(), Spool::none(), Stdio::piped(), Stdio::piped()))
            }
            Capture::Inherit => Ok((
                Spool::none(),
                Spool::none(),
                Stdio::inherit(),
                Stdio::inherit(),
            )),
        }
    }

    /// Starts `--line-buffer` forwarding threads for the child's pipes; dropping the returned
    /// stop handle makes them take what is already in the pipes and end (the job is over even
    /// if a background child of it keeps the pipes open).
    fn forward_lines(
        &self,
        job: &JobSpec,
        child: &mut Child,
    ) -> io::Result<(Vec<JoinHandle<u64>>, Option<OwnedFd>)> {
        let Capture::Lines { printer, tag } = &self.capture else {
            return Ok((Vec::new(), None));
        };
        let (stop_read, stop_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let stop_read = Arc::new(stop_read);
        let tag = tag.then(|| tag_of(&job.values));
        let mut threads = Vec::new();
        if let Some(out) = child.stdout.take() {
            let (printer, tag, stop) = (printer.clone(), tag.clone(), stop_read.clone());
            threads.push(thread::spawn(move || {
                forward(out, &stop, &printer, tag, Stream::Stdout)
            }));
        }
        if let Some(err) = child.stderr.take() {
            let (printer, tag, stop) = (printer.clone(), tag.clone(), stop_read.clone());
            threads.push(thread::spawn(move || {
                forward(err, &stop, &printer, tag, Stream::Stderr)
            }));
        }
        Ok((threads, Some(stop_write)))
    }
}

/// `--tag`'s prefix: the values, space-separated, then a tab (as GNU parallel prints it).
pub fn tag_of(values: &[Vec<u8>]) -> Vec<u8> {
    let mut tag = values.join(&b' ');
    tag.push(b'\t');
    tag
}

/// Which of our streams a job's stream goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// Copies whole lines from `from` to our stdout or stderr as they arrive, until `from` ends or
/// `stop` is closed (then what is already in the pipe is taken, and no more); returns bytes read.
fn forward(
    mut from: impl Read + AsFd,
    stop: &OwnedFd,
    printer: &Printer,
    tag: Option<Vec<u8>>,
    to: Stream,
) -> u64 {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    const MAX_PARTIAL: usize = 1 << 20;
    /// After the stop: at most this much more (a background child may never stop writing).
    const MAX_DRAIN: u64 = 1 << 20;
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut total = 0u64;
    let emit = |bytes: &[u8]| {
        let mut start = true;
        let write = |w: &mut dyn io::Write| match &tag {
            Some(tag) => tag_lines(bytes, tag, &mut start, w),
            None => w.write_all(bytes),
        };
        match to {
            Stream::Stdout => {
                let _ = printer.stdout(write);
            }
            Stream::Stderr => printer.stderr(write),
        }
    };
    let mut drained: Option<u64> = None;
    loop {
        let readable = {
            let mut fds = [
                PollFd::new(&from, PollFlags::IN),
                PollFd::new(stop, PollFlags::IN),
            ];
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let watched = if drained.is_some() { 1 } else { 2 };
            let timeout = drained.is_some().then_some(&zero);
            match poll(&mut fds[..watched], timeout) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break,
            }
            if drained.is_none() && !fds[1].revents().is_empty() {
                drained = Some(0);
                continue;
            }
            !fds[0].revents().is_empty()
        };
        if !readable {
            break; // Draining, and nothing more is there.
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        total += n as u64;
        if let Some(d) = &mut drained {
            *d += n as u64;
            if *d > MAX_DRAIN {
                break;
            }
        }
        pending.extend_from_slice(&buf[..n]);
        let cut = match pending.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if pending.len() > MAX_PARTIAL => pending.len(),
            None => continue,
        };
        emit(&pending[..cut]);
        pending.drain(..cut);
    }
    if !pending.is_empty() {
        emit(&pending);
    }
    total
}

/// Blocks until `pid` has exited, leaving it unreaped (`WNOWAIT`).
fn wait_exited(pid: u32) -> io::Result<()> {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let pid = Pid::from_raw(pid as i32).ok_or_else(|| io::Error::other("pid 0"))?;
    loop {
        match waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl Runner for LocalRunner {
    fn run(&self, job: &JobSpec) -> Result<Finished, JobError> {
        if self.running().stopping.is_some() {
            return Err(JobError::Stopped);
        }
        let (stdout, mut stderr, out, err) = self.outputs().map_err(JobError::Start)?;
        let mut cmd = self.shell.command(&job.command);
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .env("PARALLEL_SEQ", job.seq.to_string())
            .env("PARALLEL_JOBSLOT", job.slot.to_string());
        let start = SystemTime::now();
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            // Only the fast path gets here with a missing or unrunnable program (the shell
            // reports those itself): answer as the shell would.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EACCES)) => {
                let code = if e.raw_os_error() == Some(libc::ENOENT) {
                    127
                } else {
                    126
                };
                let program = cmd.get_program().to_string_lossy().into_owned();
                let message = format!("pool run: {program}: {e}\n");
                match &self.capture {
                    Capture::Group => {
                        stderr = Spool::from_bytes(message.as_bytes()).map_err(JobError::Start)?
                    }
                    Capture::Lines { printer, .. } => {
                        printer.stderr(|w| w.write_all(message.as_bytes()))
                    }
                    Capture::Inherit => eprint!("{message}"),
                }
                return Ok(Finished {
                    start,
                    runtime: started.elapsed(),
                    status: Status::Exited(code),
                    timed_out: false,
                    stdout_len: 0,
                    stdout,
                    stderr,
                });
            }
            Err(e) => return Err(JobError::Start(e)),
        };
        // Our copies of the child's stdout/stderr handles: closed now, not at the job's end.
        drop(cmd);
        let pgid = child.id();
        if let Some(guard) = self.guard {
            guard.watch(pgid);
        }
        let stopped = Arc::new(AtomicBool::new(false));
        {
            let mut running = self.running();
            running.groups.insert(pgid, stopped.clone());
            if let Some(how) = running.stopping {
                stopped.store(true, Ordering::SeqCst);
                self.stop_group(pgid, how);
            }
        }
        let timed_out = Arc::new(AtomicBool::new(false));
        if let Some(limit) = job.timeout {
            self.killer
                .timeout(started + limit, pgid, self.grace, timed_out.clone());
        }
        let (readers, stop_readers) = match self.forward_lines(job, &mut child) {
            Ok(r) => r,
            Err(e) => {
                self.running().groups.remove(&pgid);
                self.killer.forget(pgid);
                signal_group(pgid, libc::SIGKILL);
                if let Some(guard) = self.guard {
                    guard.forget(pgid);
                }
                let _ = child.wait();
                return Err(JobError::Start(e));
            }
        };
        let waited = wait_exited(pgid);
        drop(stop_readers);
        let runtime = started.elapsed();
        self.running().groups.remove(&pgid);
        self.killer.forget(pgid);
        let timed_out = timed_out.load(Ordering::SeqCst);
        if timed_out || stopped.load(Ordering::SeqCst) {
            // A job we ended: the leader is a zombie, so the group id is still this job's;
            // end the rest of the group (a background child ignoring SIGINT, say) with it.
            signal_group(pgid, libc::SIGKILL);
        }
        if waited.is_err() {
            let _ = child.kill();
        }
        if let Some(guard) = self.guard {
            // Before the leader is reaped: until then the group id cannot be reused.
            guard.forget(pgid);
        }
        let status = child.wait().map_err(JobError::Start)?;
        let mut stdout_len = stdout.len().unwrap_or(0);
        for (i, reader) in readers.into_iter().enumerate() {
            let n = reader.join().unwrap_or(0);
            if i == 0 {
                stdout_len = n;
            }
        }
        let status = match (status.code(), status.signal()) {
            (Some(code), _) => Status::Exited(code),
            (None, Some(signal)) => Status::Signalled(signal),
            (None, None) => Status::Exited(-1),
        };
        Ok(Finished {
            start,
            runtime,
            status,
            timed_out,
            stdout_len,
            stdout,
            stderr,
        })
    }

    fn suspend_running(&self) {
        for &pgid in self.running().groups.keys() {
            signal_group(pgid, libc::SIGTSTP);
        }
    }

    fn resume_running(&self) {
        for &pgid in self.running().groups.keys() {
            signal_group(pgid, libc::SIGCONT);
        }
    }

    fn stop_running(&self, how: Stop) {
        let mut running = self.running();
        running.stopping = Some(how);
        for (&pgid, stopped) in &running.groups {
            stopped.store(true, Ordering::SeqCst);
            self.stop_group(pgid, how);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash() -> Shell {
        Shell {
            path: PathBuf::from("/bin/bash"),
            flavour: Flavour::Bash,
            pwd: None,
        }
    }

    #[test]
    fn fast_path_only_where_the_shell_would_do_the_same() {
        let sh = bash();
        assert!(sh.direct(b"/bin/true a b").is_some());
        assert!(sh.direct(b"ls -l").is_some());
        for shelly in [
            &b"FOO=1 printenv FOO"[..],
            b"type ls",
            b"command -v ls",
            b"echo a",
            b"true",
            b"ls *.txt",
            b"ls > x",
            b"ls 'a b'",
            b"ls ~",
            b"ls $HOME",
            b"no-such-command-here x",
            b"ls; ls",
        ] {
            assert!(
                sh.direct(shelly).is_none(),
                "{}",
                String::from_utf8_lossy(shelly)
            );
        }
        let other = Shell {
            flavour: Flavour::Other,
            ..bash()
        };
        assert!(other.direct(b"/bin/true").is_none());
    }
}
