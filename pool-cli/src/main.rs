//! `pool`: futurepool's command-line tool.
//!
//! * `pool bench` — the guide's threads-vs-processes lesson, measured: a CPU-bound task (sum of
//!   squares) and an I/O-bound task (sleep), run sequentially, on the thread pool and on the
//!   process pool, with wall times and speedups. Needs no network and no arguments.
//!
//! * `pool run` — a command for each input in parallel, like GNU parallel: placeholders, kept
//!   or completion order, whole outputs, timeouts that kill the process group, retries, halt
//!   policies, a GNU-parallel job log; exit code = failed jobs (at most 101).
//!
//! * `pool worker --broker URL` — an agent that runs `pool run --broker URL`'s jobs, on any
//!   number of machines sharing one Redis.
//!
//! * `pool wc` — the guide's concurrent file processor: GNU `wc` (C.UTF-8) in counts, columns,
//!   widths, order and quoting, directories walked, on threads or processes.
//!
//! * `pool fetch` — the guide's web scraper done properly: reqwest (rustls), per-URL status,
//!   bytes, type, final URL and time as they complete, errors per URL (classified by type), one
//!   deadline per request, retries with backoff, a redirect limit, a per-host connection
//!   limit, headers, and bodies streamed to disk (`-o`, `-O`, `--output-dir`).
//!
//! Bad input (an unknown flag, a zero count) gets a one-line error and exit code 2.

mod bench;
mod cluster;
mod fetch;
mod run;
mod util;
mod wc;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Python's concurrent.futures, done right in Rust: real jobs on a thread pool.
#[derive(Parser, Debug)]
#[command(name = "pool", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Time CPU-bound and I/O-bound work sequentially, on threads and on processes.
    Bench(bench::Args),
    /// Run a command for each input in parallel (GNU parallel / xargs -P).
    #[command(after_help = run::AFTER_HELP)]
    Run(run::Args),
    /// Count lines, words, characters, bytes (and the longest line) per file, exactly as GNU `wc`.
    Wc(wc::Args),
    /// Fetch URLs concurrently: status, size and time per URL as they complete.
    Fetch(fetch::Args),
    /// Run `pool run --broker`'s jobs here: an agent serving a Redis queue.
    Worker(worker::Args),
}

/// A progress bar on stderr for `len` items — only when stderr is a terminal, so pipes, files
/// and tests never see it.
pub fn progress(len: usize, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{bar:30}} {{pos}}/{{len}} {what} {{elapsed}} (eta {{eta}})"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// Runs `f` with the progress bar (if any) taken off the terminal and drawn again after it, so
/// the lines `f` prints are neither drawn over nor left between copies of the bar. `f` must not
/// touch the bar itself (it is locked meanwhile), and must flush what it writes.
pub fn without_bar<R>(bar: Option<&indicatif::ProgressBar>, f: impl FnOnce() -> R) -> R {
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

fn main() -> ExitCode {
    // `pool` is also its own process-pool worker: a worker process stops here.
    futurepool_procs::init();
    // And the job guard of such a worker (`pool run --broker` jobs): a guard stops here.
    run::guard::maybe_run();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with success; usage errors are one line + exit 2.
            if e.use_stderr() {
                eprintln!("pool: {}", usage_line(&e));
                return ExitCode::from(2);
            }
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Wc(args) => wc::run(&args),
        Command::Fetch(args) => fetch::run(&args),
        Command::Worker(args) => worker::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pool: {e:#}");
            exit_code(&e)
        }
    }
}

/// A clap error as one line: its first paragraph (a message may continue on the next lines,
/// such as the names of missing arguments; the usage and tips that follow are left out) and
/// where the help is.
fn usage_line(e: &clap::Error) -> String {
    let sub = std::env::args()
        .nth(1)
        .filter(|a| ["bench", "run", "wc", "fetch", "worker"].contains(&a.as_str()));
    let help = match &sub {
        Some(sub) => format!("try `pool {sub} --help`"),
        None => "try `pool --help`".to_string(),
    };
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return format!("missing a command: bench, run, wc, fetch or worker ({help})");
    }
    let text = e.to_string();
    let message: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let message = message.join(" ");
    let message = message.trim_start_matches("error: ");
    if message.is_empty() {
        format!("invalid arguments ({help})")
    } else {
        format!("{message} ({help})")
    }
}

/// Input the user must fix before any work is done (an unreadable URL list, a malformed `-H`,
/// `-o` files that do not pair with the URLs): exit code 2, like a usage error. A subcommand
/// returns it inside its `anyhow::Error`.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code of a subcommand that failed as a whole. Per-item failures (a URL, a file, a
/// job) are not errors here: each subcommand reports them itself and returns its own code (1,
/// or `pool run`'s count of failed jobs).
///
/// | code | meaning |
/// |---|---|
/// | 0 | everything succeeded |
/// | 1 | some items failed, or the subcommand failed while working (I/O, a pool error) |
/// | 2 | usage: bad flags or values (clap), or a [`UsageError`] found before any work |
fn exit_code(error: &anyhow::Error) -> ExitCode {
    if error.chain().any(|e| e.is::<UsageError>()) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}
