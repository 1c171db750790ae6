//! `pool run`: run a command for each input in parallel, like GNU parallel or `xargs -P`, on the
//! thread pool.
//!
//! The template's words are joined into a shell command (run with `/bin/sh -c`) in which `{}` is
//! the input, `{.}` the input without its extension, `{/}` its basename, `{#}` the job number;
//! every substituted value is shell-quoted. A template with no placeholder gets the input
//! appended. Each job runs in its own process group, its output captured and printed whole when
//! it ends (never interleaved); `-k` prints in input order, otherwise in completion order.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::num::NonZeroUsize;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::{json_string, parse_seconds};
use anyhow::{bail, Context, Result};
use futurepool_threads::{as_completed, Future, ThreadPool};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Jobs run at once (default: the number of cores).
    #[arg(short = 'j', long)]
    jobs: Option<NonZeroUsize>,
    /// Print each job's output in input order (default: as jobs finish).
    #[arg(short = 'k', long)]
    keep_order: bool,
    /// Seconds a job may run; then its whole process group gets SIGTERM, and SIGKILL after
    /// a grace period.
    #[arg(long, value_parser = parse_seconds)]
    timeout: Option<Duration>,
    /// Seconds between SIGTERM and SIGKILL for a timed-out job.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    grace: Duration,
    /// Run a failing job up to this many more times.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Stop after failures: `now,fail=N` kills running jobs, `soon,fail=N` lets them finish;
    /// both start no new job.
    #[arg(long, value_parser = parse_halt)]
    halt: Option<Halt>,
    /// Write a job log in GNU parallel's column format.
    #[arg(long, value_name = "FILE")]
    joblog: Option<std::path::PathBuf>,
    /// Print the commands instead of running them.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object per job instead of the jobs' output.
    #[arg(long)]
    json: bool,
    /// The command template, then `:::` and the inputs (without `:::`, one input per stdin
    /// line).
    #[arg(
        trailing_var_arg = true,
        required = true,
        value_name = "COMMAND [::: INPUTS]"
    )]
    words: Vec<String>,
}

/// `--halt` policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Halt {
    now: bool,
    fail: usize,
}

fn parse_halt(s: &str) -> Result<Halt, String> {
    let bad = || format!("`{s}`: expected now,fail=N or soon,fail=N");
    let (when, rule) = s.split_once(',').ok_or_else(bad)?;
    let now = match when {
        "now" => true,
        "soon" => false,
        _ => return Err(bad()),
    };
    let n = rule
        .strip_prefix("fail=")
        .ok_or_else(bad)?
        .parse::<usize>()
        .map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    Ok(Halt { now, fail: n })
}

/// Single-quotes `s` for `/bin/sh`.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Builds one job's shell command from the template.
fn render(template: &[String], input: &str, seq: usize) -> String {
    let base = input.rsplit('/').next().unwrap_or(input);
    let no_ext = match input.rfind('.') {
        Some(dot) if dot > input.rfind('/').map_or(0, |s| s + 1) => &input[..dot],
        _ => input,
    };
    let mut any = false;
    let mut words = Vec::new();
    for word in template {
        let mut out = String::new();
        let mut rest = word.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let (value, len) = if tail.starts_with("{}") {
                (shell_quote(input), 2)
            } else if tail.starts_with("{.}") {
                (shell_quote(no_ext), 3)
            } else if tail.starts_with("{/}") {
                (shell_quote(base), 3)
            } else if tail.starts_with("{#}") {
                (seq.to_string(), 3)
            } else {
                out.push('{');
                rest = &tail[1..];
                continue;
            };
            any = true;
            out.push_str(&value);
            rest = &tail[len..];
        }
        out.push_str(rest);
        words.push(out);
    }
    if !any {
        words.push(shell_quote(input));
    }
    words.join(" ")
}

/// What one job did.
#[derive(Debug, Clone)]
struct JobResult {
    seq: usize,
    input: String,
    command: String,
    start: SystemTime,
    runtime: Duration,
    exit: i32,
    signal: i32,
    timed_out: bool,
    output: Vec<u8>,
    errors: Vec<u8>,
}

impl JobResult {
    fn failed(&self) -> bool {
        self.exit != 0 || self.signal != 0 || self.timed_out
    }
}

/// Shared between the jobs: running process groups (for `--halt now`) and the stop flag.
#[derive(Default)]
struct Control {
    running: Mutex<HashSet<i32>>,
    stop: AtomicBool,
    failures: AtomicUsize,
}

fn signal_group(pgid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names the process
    // group the job was started in (its leader is our unreaped child, so the id is ours).
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Runs one job to completion (with retries), capturing its output.
fn run_job(
    seq: usize,
    input: String,
    command: String,
    timeout: Option<Duration>,
    grace: Duration,
    retries: u32,
    control: &Control,
) -> io::Result<JobResult> {
    let mut attempt = 0;
    loop {
        let result = run_once(seq, &input, &command, timeout, grace, control)?;
        if !result.failed() || attempt >= retries || control.stop.load(Ordering::SeqCst) {
            return Ok(result);
        }
        attempt += 1;
    }
}

fn run_once(
    seq: usize,
    input: &str,
    command: &str,
    timeout: Option<Duration>,
    grace: Duration,
    control: &Control,
) -> io::Result<JobResult> {
    let start = SystemTime::now();
    let started = Instant::now();
    let mut child = shell_free(command)
        .unwrap_or_else(|| {
            let mut sh = Command::new("/bin/sh");
            sh.arg("-c").arg(command);
            sh
        })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pgid = child.id() as i32;
    control.running.lock().unwrap().insert(pgid);
    // Drain both pipes on helper threads so a chatty job cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let mut timed_out = false;
    let mut term_sent: Option<Instant> = None;
    let status = if timeout.is_none() {
        child.wait()?
    } else {
        loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            let now = Instant::now();
            if let Some(limit) = timeout {
                if term_sent.is_none() && now.duration_since(started) >= limit {
                    timed_out = true;
                    signal_group(pgid, libc::SIGTERM);
                    term_sent = Some(now);
                }
            }
            if let Some(sent) = term_sent {
                if now.duration_since(sent) >= grace {
                    signal_group(pgid, libc::SIGKILL);
                }
            }
            thread::sleep(Duration::from_millis(1));
        }
    };
    // The leader is gone; make sure nothing of its group outlives a timeout.
    if timed_out {
        signal_group(pgid, libc::SIGKILL);
    }
    control.running.lock().unwrap().remove(&pgid);
    let output = out_reader.join().unwrap_or_default();
    let errors = err_reader.join().unwrap_or_default();
    Ok(JobResult {
        seq,
        input: input.to_string(),
        command: command.to_string(),
        start,
        runtime: started.elapsed(),
        exit: status.code().unwrap_or(-1),
        signal: status.signal().unwrap_or(0),
        timed_out,
        output,
        errors,
    })
}

/// A command that needs no shell (plain words, nothing `sh` would interpret) runs directly,
/// saving a `/bin/sh` start per job; the result is the same.
fn shell_free(command: &str) -> Option<Command> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b);
    if !command.bytes().all(|b| plain(b) || b == b' ') {
        return None;
    }
    let mut words = command.split(' ').filter(|w| !w.is_empty());
    let program = words.next()?;
    if matches!(
        program,
        "exit" | "cd" | "export" | "set" | "exec" | "." | "eval" | "ulimit" | "umask"
    ) {
        return None; // shell builtins with no executable of their own
    }
    let mut cmd = Command::new(program);
    cmd.args(words);
    Some(cmd)
}

fn joblog_line(r: &JobResult) -> String {
    let start = r
        .start
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    format!(
        "{}\t:\t{:.3}\t{:>9.3}\t0\t{}\t{}\t{}\t{}\n",
        r.seq,
        start,
        r.runtime.as_secs_f64(),
        r.output.len(),
        r.exit,
        r.signal,
        r.command
    )
}

fn json_line(r: &JobResult) -> String {
    format!(
        "{{\"seq\":{},\"input\":{},\"command\":{},\"exit\":{},\"signal\":{},\"timed_out\":{},\"runtime\":{:.3},\"stdout\":{},\"stderr\":{}}}\n",
        r.seq,
        json_string(&r.input),
        json_string(&r.command),
        r.exit,
        r.signal,
        r.timed_out,
        r.runtime.as_secs_f64(),
        json_string(&String::from_utf8_lossy(&r.output)),
        json_string(&String::from_utf8_lossy(&r.errors)),
    )
}

/// Writes to stdout; a closed pipe ends the program quietly.
fn emit(out: &mut impl Write, bytes: &[u8]) -> Result<bool> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let (template, inputs): (Vec<String>, Vec<String>) =
        match args.words.iter().position(|w| w == ":::") {
            Some(pos) => (args.words[..pos].to_vec(), args.words[pos + 1..].to_vec()),
            None => {
                let stdin = io::stdin();
                let lines: Vec<String> = stdin
                    .lock()
                    .lines()
                    .collect::<Result<_, _>>()
                    .context("reading inputs from stdin")?;
                (args.words.clone(), lines)
            }
        };
    if template.is_empty() {
        bail!("no command given (usage: pool run COMMAND... ::: INPUTS...)");
    }
    let commands: Vec<(usize, String, String)> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            let command = render(&template, &input, i + 1);
            (i + 1, input, command)
        })
        .collect();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if args.dry_run {
        for (_, _, command) in &commands {
            if !emit(&mut out, format!("{command}\n").as_bytes())? {
                return Ok(ExitCode::SUCCESS);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut joblog = match &args.joblog {
        Some(path) => {
            let mut f = File::create(path).with_context(|| format!("{}", path.display()))?;
            f.write_all(
                b"Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n",
            )?;
            Some(f)
        }
        None => None,
    };
    let jobs = args.jobs.map_or_else(
        || thread::available_parallelism().map_or(1, NonZeroUsize::get),
        NonZeroUsize::get,
    );
    let pool = ThreadPool::builder()
        .max_workers(jobs)
        .thread_name_prefix("pool-run")
        .build()?;
    let control = Arc::new(Control::default());
    let total = commands.len();
    let mut futures: Vec<Future<JobResult, String>> = Vec::with_capacity(total);
    for (seq, input, command) in commands {
        let control = control.clone();
        let (timeout, grace, retries) = (args.timeout, args.grace, args.retries);
        futures.push(pool.submit_fallible(move || {
            if control.stop.load(Ordering::SeqCst) {
                return Err("halted".to_string());
            }
            run_job(seq, input, command, timeout, grace, retries, &control)
                .map_err(|e| format!("cannot run the job: {e}"))
        })?);
    }

    let mut failed = 0usize;
    let mut next_in_order = 1usize;
    let mut held: BTreeMap<usize, JobResult> = BTreeMap::new();
    let mut open = true;
    let handle = |r: JobResult,
                  out: &mut io::StdoutLock<'_>,
                  joblog: &mut Option<File>,
                  open: &mut bool|
     -> Result<()> {
        if let Some(log) = joblog.as_mut() {
            log.write_all(joblog_line(&r).as_bytes())?;
        }
        if *open {
            let bytes = if args.json {
                json_line(&r).into_bytes()
            } else {
                r.output.clone()
            };
            *open = emit(out, &bytes)?;
            if !args.json && !r.errors.is_empty() {
                let _ = io::stderr().write_all(&r.errors);
            }
            if r.timed_out && !args.json {
                eprintln!("pool run: job {} timed out: {}", r.seq, r.command);
            }
        }
        Ok(())
    };
    let bar = crate::progress(total, "jobs");
    for done in as_completed(futures.iter().cloned(), None) {
        let future = done.expect("no timeout");
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        let result = match future.result() {
            Ok(r) => r.clone(),
            Err(e) => {
                // Halted before it started, or could not be started at all.
                if !control.stop.load(Ordering::SeqCst) {
                    eprintln!("pool run: {e}");
                    failed += 1;
                }
                continue;
            }
        };
        let killed_by_halt = args.halt.is_some_and(|h| h.now)
            && control.stop.load(Ordering::SeqCst)
            && result.signal != 0;
        if result.failed() && !killed_by_halt {
            failed += 1;
            let failures = control.failures.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(halt) = args.halt {
                if failures >= halt.fail && !control.stop.swap(true, Ordering::SeqCst) {
                    for f in &futures {
                        f.cancel();
                    }
                    if halt.now {
                        for &pgid in control.running.lock().unwrap().iter() {
                            signal_group(pgid, libc::SIGTERM);
                        }
                    }
                    eprintln!(
                        "pool run: halting after {failures} failure(s) ({})",
                        if halt.now {
                            "running jobs killed"
                        } else {
                            "waiting for running jobs"
                        }
                    );
                }
            }
        }
        if args.keep_order {
            held.insert(result.seq, result);
            while let Some(r) = held.remove(&next_in_order) {
                handle(r, &mut out, &mut joblog, &mut open)?;
                next_in_order += 1;
            }
        } else {
            handle(result, &mut out, &mut joblog, &mut open)?;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // With -k, jobs after a halted one are printed in order too.
    for (_, r) in std::mem::take(&mut held) {
        handle(r, &mut out, &mut joblog, &mut open)?;
    }
    drop(pool);
    if failed > 0 {
        eprintln!("pool run: {failed} of {total} jobs failed");
    }
    Ok(ExitCode::from(failed.min(101) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn placeholders() {
        assert_eq!(render(&words("echo {}"), "a b.txt", 1), "echo 'a b.txt'");
        assert_eq!(
            render(&words("convert {} {.}.png"), "dir/x.jpg", 1),
            "convert dir/x.jpg dir/x.png"
        );
        assert_eq!(render(&words("echo {/} {#}"), "/tmp/a.b/c", 7), "echo c 7");
        assert_eq!(
            render(&words("echo {.}"), "dir.d/file", 1),
            "echo dir.d/file"
        );
        assert_eq!(render(&words("gzip"), "f", 1), "gzip f");
        assert_eq!(render(&words("echo {x}"), "f", 1), "echo {x} f");
        assert_eq!(render(&words("echo {}"), "it's", 1), r"echo 'it'\''s'");
    }

    #[test]
    fn halt_policy() {
        assert_eq!(parse_halt("now,fail=1"), Ok(Halt { now: true, fail: 1 }));
        assert_eq!(
            parse_halt("soon,fail=3"),
            Ok(Halt {
                now: false,
                fail: 3
            })
        );
        assert!(parse_halt("later,fail=1").is_err());
        assert!(parse_halt("now,fail=0").is_err());
        assert!(parse_halt("now").is_err());
    }
}
