//! `pool run`: run a command for each input in parallel, with GNU parallel's syntax and
//! semantics where it accepts GNU parallel's syntax (compared side by side with GNU parallel
//! 20221122 in `pool-cli/tests/run.rs`), on futurepool's thread pool.
//!
//! One concept per module:
//! * [`input`] — input sources (`:::`, `::::`, linked `:::+`, `-a`, stdin, `-0`, `--colsep`);
//! * [`template`] — replacement strings and shell quoting;
//! * [`policy`] — `-j` forms, `--halt` and the exit code rule;
//! * [`job`] — the [`job::Runner`] interface: what a job is and what comes back;
//! * [`local`] — running a job as a local process (shell, process group, timeout, spool);
//! * [`remote`] — `--broker`: jobs run by `pool worker` agents through Redis;
//! * [`killer`] — the deadline thread (timeouts, SIGKILL after the grace period);
//! * [`spool`] — captured output in temporary files;
//! * [`output`] — our stdout/stderr behind the progress bar;
//! * [`report`] — joblog, `--results`, `--json`;
//! * [`scheduler`] — the event loop tying them together (signals, halt, retries, order).

pub mod guard;
mod input;
mod job;
mod killer;
mod local;
mod output;
mod policy;
mod remote;
mod report;
mod scheduler;
mod spool;
mod template;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use regex::bytes::Regex;

pub use remote::DEFAULT_QUEUE;

use crate::util::parse_seconds;
use input::{Combine, CommandLine, Format, Inputs};
use local::{Capture, LocalRunner, Shell};
use output::Printer;
use policy::{Halt, Jobs};
use report::{Joblog, Resume};
use scheduler::Plan;
use template::{JobValues, Template};

pub const AFTER_HELP: &str = "\
Input sources (combined as GNU parallel does: every combination, first source outermost):
  ::: A B C          the words after it
  :::: FILE...       each file's lines, one source per file (`-` is stdin)
  :::+ / ::::+       linked to the source before: paired up, the shorter one decides
  --link             every source paired up, the shorter ones wrapping around
  -a FILE            a file's lines (before any ::: source)
  (none)             stdin's lines; -0 splits on NUL instead of newline
  Inputs are bytes: non-UTF-8 passes through untouched.

Replacement strings (values are shell-quoted; a command without one gets {} appended):
  {}     the input (all values, space-separated)   {.}   without extension
  {/}    basename        {//}  dirname              {/.}  basename without extension
  {#}    job number      {%}   job slot (1..=-j)
  {N} {N.} {N/} {N//} {N/.}   the N-th source's value (or column with --colsep); {-1} the last

Commands run through $PARALLEL_SHELL -c or $SHELL -c (else /bin/sh -c), each in its own process group; plain commands
that provably need no shell are executed directly. A job's output is printed whole when it ends.

Exit code: the number of failed jobs (at most 101); with --halt ...,fail=1 the failing job's own
code; with --halt ...% the percentage that failed; 255 when stopped by SIGINT/SIGTERM (the
signal goes to every job's process group, SIGKILL follows after --grace; a second Ctrl-C kills
at once). SIGHUP: no new jobs, the running ones finish. Ctrl-Z suspends the jobs with pool;
fg resumes them. A closed stdout stops the run quietly.

Examples:
  pool run -k -j4 'gzip -9 {}' ::: *.log
  pool run --tag 'wc -l < {}' ::: a.txt b.txt
  pool run echo {1} {2} ::: a b ::: 1 2            # a 1, a 2, b 1, b 2
  find . -name '*.jpg' -print0 | pool run -0 convert {} {.}.png
  pool run --joblog log --resume-failed --retries 3 ./flaky.sh ::: 1 2 3";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Jobs at once: N, +N (cores + N), -N (cores - N), N% (of cores), 0 (as many as possible).
    /// Default: the number of cores.
    #[arg(short = 'j', long, value_parser = Jobs::parse, allow_hyphen_values = true)]
    jobs: Option<Jobs>,
    /// Print each job's output in input order (default: as jobs finish).
    #[arg(short = 'k', long)]
    keep_order: bool,
    /// Seconds a job may run; then its whole process group gets SIGTERM, and SIGKILL after
    /// --grace.
    #[arg(long, allow_hyphen_values = true, value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Seconds between SIGTERM and SIGKILL (timeouts, --halt now, Ctrl-C).
    #[arg(long, allow_hyphen_values = true, default_value = "1", value_parser = parse_seconds)]
    grace: Duration,
    /// Attempts per failing job in total (GNU parallel's meaning: 3 = at most 3 runs).
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Stop on failures or successes: never, now|soon,fail|success|done=N|N%, or GNU's
    /// 0/1/2/-1/-2/N%. `now` kills running jobs, `soon` lets them finish; no job starts after.
    #[arg(long, value_parser = parse_halt)]
    halt: Option<HaltArg>,
    /// Write a job log in GNU parallel's column format.
    #[arg(long, value_name = "FILE")]
    joblog: Option<PathBuf>,
    /// With --joblog: skip the jobs already in the log.
    #[arg(long)]
    resume: bool,
    /// With --joblog: skip the jobs that succeeded, run the failed ones again.
    #[arg(long)]
    resume_failed: bool,
    /// Print the commands instead of running them.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object per job instead of the jobs' output.
    #[arg(long)]
    json: bool,
    /// Read inputs from FILE (an input source; repeatable).
    #[arg(short = 'a', long = "arg-file", value_name = "FILE")]
    arg_files: Vec<PathBuf>,
    /// Inputs are separated by NUL, not newline.
    #[arg(short = '0', long = "null")]
    null: bool,
    /// Pair the input sources up instead of combining every value of one with every value of
    /// the others; shorter sources wrap around.
    #[arg(long, alias = "xapply")]
    link: bool,
    /// Split each input into columns {1}, {2}, … at this regular expression.
    #[arg(long, value_name = "REGEX")]
    colsep: Option<String>,
    /// Print output line by line as jobs produce it (lines are never mixed).
    #[arg(long, alias = "lb")]
    line_buffer: bool,
    /// Jobs write straight to our stdout and stderr (output may mix).
    #[arg(short = 'u', long)]
    ungroup: bool,
    /// Print each job's output whole when it ends (the default).
    #[arg(long, conflicts_with_all = ["line_buffer", "ungroup"])]
    group: bool,
    /// Prefix each output line with the job's values and a tab.
    #[arg(long)]
    tag: bool,
    /// Save each job's output in DIR/1/VALUE/.../{stdout,stderr,seq} instead of printing it.
    #[arg(long, alias = "res", value_name = "DIR")]
    results: Option<PathBuf>,
    /// Send the jobs to `pool worker` agents through this Redis (`redis://[user:pass@]host`,
    /// `rediss://…` for TLS) instead of running them here; everything else works as in a local
    /// run. Not with --line-buffer or -u (an agent's output comes back whole).
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// With --broker: the queue the agents serve.
    #[arg(long, default_value = remote::DEFAULT_QUEUE, requires = "broker")]
    queue: String,
    /// Show the progress bar (it is shown whenever stderr is a terminal).
    #[arg(long, alias = "eta", alias = "progress")]
    bar: bool,
    /// The command template, then the input sources (without any, one input per stdin line).
    #[arg(
        trailing_var_arg = true,
        required = true,
        value_name = "COMMAND [::: INPUTS]"
    )]
    words: Vec<OsString>,
}

/// `--halt`'s parsed value (`never` is `None`).
#[derive(Debug, Clone, Copy)]
struct HaltArg(Option<Halt>);

fn parse_halt(s: &str) -> Result<HaltArg, String> {
    Halt::parse(s).map(HaltArg).map_err(|e| e.to_string())
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    if s.ends_with('%') {
        return Err(format!(
            "`{s}`: a timeout relative to the median runtime is not supported; give seconds"
        ));
    }
    parse_seconds(s)
}

/// A usage error found after argument parsing: one line and exit 2, like clap's.
fn usage(message: impl std::fmt::Display) -> Result<ExitCode> {
    eprintln!("pool: {message} (try `pool run --help`)");
    Ok(ExitCode::from(2))
}

/// The most jobs that can be open at once: each needs about four file descriptors.
fn max_possible_jobs() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024);
    (limit.saturating_sub(64) / 4).clamp(1, 1024) as usize
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let command_line = match CommandLine::parse(&args.words, &args.arg_files) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let template = match Template::parse(&command_line.template) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let colsep = match args.colsep.as_deref().map(Regex::new).transpose() {
        Ok(c) => c,
        Err(e) => return usage(format!("--colsep: {e}")),
    };
    if (args.resume || args.resume_failed) && args.joblog.is_none() {
        return usage("--resume and --resume-failed need --joblog FILE");
    }
    if args.tag && args.ungroup {
        return usage("--tag cannot be combined with -u (output is not captured)");
    }
    if args.json && (args.line_buffer || args.ungroup || args.results.is_some()) {
        return usage("--json cannot be combined with --line-buffer, -u or --results");
    }
    if args.results.is_some() && (args.line_buffer || args.ungroup) {
        return usage("--results cannot be combined with --line-buffer or -u");
    }
    if args.broker.is_some() && (args.line_buffer || args.ungroup) {
        return usage(
            "--broker cannot be combined with --line-buffer or -u (output comes back whole)",
        );
    }
    let halt = args.halt.and_then(|h| h.0);
    let format = Format {
        terminator: if args.null { b'\0' } else { b'\n' },
        colsep,
    };
    let combine = if args.link {
        Combine::LinkAll
    } else {
        Combine::Product
    };
    // An input file that cannot be opened is the user's to fix before anything runs.
    let mut inputs = match Inputs::open(&command_line.sources, &format, combine) {
        Ok(inputs) => inputs,
        Err(e) => return usage(e),
    };
    if halt.is_some_and(|h| h.needs_total()) {
        inputs = inputs.collect_all()?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slots = args
        .jobs
        .unwrap_or(Jobs::PercentOfCores(100))
        .slots(cores, max_possible_jobs());

    if args.dry_run {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for (i, values) in inputs.enumerate() {
            let values = values?;
            let mut line = template.render(JobValues {
                args: &values,
                seq: i + 1,
                slot: i % slots + 1,
            });
            line.push(b'\n');
            match out.write_all(&line) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                other => other?,
            }
        }
        return Ok(ExitCode::SUCCESS);
    }

    let resume = if args.resume_failed {
        Some(Resume::Failed)
    } else if args.resume {
        Some(Resume::All)
    } else {
        None
    };
    let (joblog, skip) = match &args.joblog {
        Some(path) => {
            let (log, skip) = Joblog::open(path, resume)?;
            (Some(log), skip)
        }
        None => (None, Default::default()),
    };
    let bar = crate::progress(inputs.total().unwrap_or(0), "jobs");
    let printer = Arc::new(Printer::new(bar));
    let capture = if args.line_buffer {
        Capture::Lines {
            printer: printer.clone(),
            tag: args.tag,
        }
    } else if args.ungroup {
        Capture::Inherit
    } else {
        Capture::Group
    };
    let runner: Arc<dyn job::Runner> = match &args.broker {
        Some(url) => Arc::new(remote::RemoteRunner::connect(url, &args.queue, args.grace)?),
        None => Arc::new(LocalRunner::new(Shell::from_env(), capture, args.grace)),
    };
    let plan = Plan {
        slots,
        keep_order: args.keep_order,
        attempts: args.retries.max(1),
        halt,
        timeout: args.timeout,
        tag: args.tag,
        json: args.json,
        results: args.results.clone(),
        output_streamed: args.line_buffer || args.ungroup,
        joblog,
        skip,
        park_window: max_possible_jobs().max(slots),
    };
    let code = scheduler::run(runner, &template, inputs, plan, printer)?;
    Ok(ExitCode::from(code))
}
