//! `pool wc`: the guide's concurrent file processor — per-file counts identical to GNU `wc`
//! under `LC_ALL=C.UTF-8`, with GNU's columns, widths, order and quoting, counted on the
//! thread pool or the process pool, directories walked.
//!
//! * `count.rs` — the counting engine (and the batch a worker counts);
//!   `classes.rs`, `widths.rs` — glibc's character classes and display widths.
//! * `walk.rs` — operands to entries: walks, `--glob`, special files skipped.
//! * `print.rs` — columns, width, JSON; `quote.rs` — names as GNU quotes them.
//! * this file — the orchestration: operands, batches on a pool, output in order.

mod classes;
mod count;
mod print;
mod quote;
mod walk;
mod widths;

use std::ffi::{OsStr, OsString};
use std::io::{self, IsTerminal, Read};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use futurepool_procs::ProcessPool;
use futurepool_threads::{as_completed, Future, ThreadPool};

use crate::UsageError;
use count::{count_batch, count_reader, message, Batch, Counts};
use print::{Columns, Printer};
use walk::{Entry, Filter, Source};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and directories (directories are walked recursively); `-` is stdin. Without
    /// operands: stdin if it is not a terminal, else `.`.
    paths: Vec<OsString>,
    /// Print the newline counts.
    #[arg(short = 'l', long = "lines")]
    lines: bool,
    /// Print the word counts.
    #[arg(short = 'w', long = "words")]
    words: bool,
    /// Print the character counts.
    #[arg(short = 'm', long = "chars")]
    chars: bool,
    /// Print the byte counts.
    #[arg(short = 'c', long = "bytes")]
    bytes: bool,
    /// Print the longest line's display width.
    #[arg(short = 'L', long = "max-line-length")]
    max_line_length: bool,
    /// Read the operands from file F, separated by NUL bytes (`-`: stdin), like `find -print0`.
    #[arg(long = "files0-from", value_name = "F")]
    files0_from: Option<OsString>,
    /// In walked directories, only files whose name matches this pattern (e.g. `*.txt`; with a
    /// `/`, the path below the directory); repeatable.
    #[arg(long)]
    glob: Vec<String>,
    /// Count on threads or in worker processes.
    #[arg(long, value_enum, default_value_t = Backend::Threads)]
    backend: Backend,
    /// Workers (default: threads min(32, cores + 4); processes: cores).
    #[arg(short = 'j', long, value_parser = crate::util::parse_count)]
    jobs: Option<NonZeroUsize>,
    /// Print files as they finish instead of in operand and walk order.
    #[arg(long)]
    completion_order: bool,
    /// Operand and walk order (the default; kept for scripts written before it was).
    #[arg(long, hide = true, conflicts_with = "completion_order")]
    keep_order: bool,
    /// One JSON object per file (and one for the total).
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Threads,
    Processes,
}

/// A process-pool call (and a thread-pool task) counts up to this many files …
const BATCH_FILES: usize = 64;
/// … or files until this many bytes, so that a round trip per small file does not dominate
/// while large files still spread over the workers.
const BATCH_BYTES: u64 = 4 << 20;

/// The operands as NUL-separated names from `--files0-from`, and whether they streamed in
/// from something other than a regular file (GNU then sizes columns at width 1).
fn files0(from: &OsStr, plan: &mut Plan<'_>, filter: &Filter) -> Result<bool> {
    let (bytes, streamed) = if from.as_bytes() == b"-" {
        let mut buf = Vec::new();
        io::stdin().lock().read_to_end(&mut buf)?;
        (buf, walk::stdin_size().is_none())
    } else {
        let path = PathBuf::from(from);
        let streamed = !std::fs::metadata(&path).is_ok_and(|m| m.is_file());
        let bytes = std::fs::read(&path).map_err(|e| {
            UsageError(format!(
                "cannot open {} for reading: {}",
                quote::quote(from.as_bytes()),
                message(&e)
            ))
        })?;
        (bytes, streamed)
    };
    let mut names: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
    if names.last().is_some_and(|n| n.is_empty()) {
        names.pop();
    }
    for (i, name) in names.into_iter().enumerate() {
        let shown = quote::quote(from.as_bytes());
        if name.is_empty() {
            plan.push(Entry::Invalid {
                message: format!("{shown}:{}: invalid zero-length file name", i + 1),
            });
        } else if from.as_bytes() == b"-" && name == b"-" {
            plan.push(Entry::Failed {
                name: OsString::from("-"),
                why: "when reading file names from stdin, no file name of '-' allowed".into(),
            });
        } else {
            walk::expand(OsStr::from_bytes(name), filter, &mut |e| plan.push(e));
        }
    }
    Ok(streamed)
}

/// The pool the batches run on, started with the first batch.
#[derive(Default)]
struct Pools {
    threads: Option<ThreadPool>,
    processes: Option<ProcessPool>,
}

impl Pools {
    fn submit(&mut self, args: &Args, batch: Batch) -> Result<Future<Vec<Result<Counts, String>>>> {
        Ok(match args.backend {
            Backend::Threads => {
                if self.threads.is_none() {
                    self.threads = Some(match args.jobs {
                        Some(j) => ThreadPool::new(j.get())?,
                        None => ThreadPool::with_default_workers(),
                    });
                }
                let pool = self.threads.as_ref().expect("just built");
                pool.submit(move || count_batch(batch))?
            }
            Backend::Processes => {
                if self.processes.is_none() {
                    let workers = args.jobs.map_or_else(
                        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
                        NonZeroUsize::get,
                    );
                    self.processes = Some(ProcessPool::new(workers)?);
                }
                let pool = self.processes.as_ref().expect("just built");
                pool.submit(count_batch, batch)?
            }
        })
    }
}

/// A step of the output, in order.
enum Step {
    /// Files `range` of `entries`, counted by one task.
    Batch(Range<usize>, Future<Vec<Result<Counts, String>>>),
    /// Any other entry (stdin, a failure, a skipped file), handled in place.
    Entry(usize),
}

/// The entries in order and the steps that count them: files are batched and submitted as
/// the walk finds them.
struct Plan<'a> {
    args: &'a Args,
    /// Whether the batches measure line widths (`-L`).
    widths: bool,
    pools: Pools,
    entries: Vec<Entry>,
    steps: Vec<Step>,
    /// The files of the batch being gathered: `entries[pending..]`, and their bytes.
    pending: usize,
    pending_bytes: u64,
    /// The first submission that failed (the pool could not start, say).
    error: Option<anyhow::Error>,
}

impl Plan<'_> {
    fn push(&mut self, entry: Entry) {
        let size = match &entry {
            Entry::Input {
                source: Source::File(_),
                size,
            } => size.unwrap_or(0),
            _ => {
                self.flush();
                self.steps.push(Step::Entry(self.entries.len()));
                self.entries.push(entry);
                self.pending = self.entries.len();
                return;
            }
        };
        self.entries.push(entry);
        self.pending_bytes += size;
        if self.entries.len() - self.pending >= BATCH_FILES || self.pending_bytes >= BATCH_BYTES {
            self.flush();
        }
    }

    /// Submits the files gathered so far as one batch.
    fn flush(&mut self) {
        let range = self.pending..self.entries.len();
        self.pending = self.entries.len();
        self.pending_bytes = 0;
        if range.is_empty() || self.error.is_some() {
            return;
        }
        let names = self.entries[range.clone()]
            .iter()
            .map(|e| match e {
                Entry::Input {
                    source: Source::File(path),
                    ..
                } => path.as_os_str().as_bytes().to_vec(),
                _ => unreachable!("a batch holds files only"),
            })
            .collect();
        let batch = Batch {
            names,
            widths: self.widths,
        };
        match self.pools.submit(self.args, batch) {
            Ok(future) => self.steps.push(Step::Batch(range, future)),
            Err(e) => self.error = Some(e),
        }
    }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let mut columns = Columns {
        lines: args.lines,
        words: args.words,
        chars: args.chars,
        bytes: args.bytes,
        max_line: args.max_line_length,
    };
    if columns
        == (Columns {
            lines: false,
            words: false,
            chars: false,
            bytes: false,
            max_line: false,
        })
    {
        // pool's default: all four counts (GNU's default leaves out characters).
        columns = Columns {
            lines: true,
            words: true,
            chars: true,
            bytes: true,
            max_line: false,
        };
    }
    let filter = Filter::new(&args.glob).map_err(UsageError)?;
    let mut plan = Plan {
        args,
        widths: columns.max_line,
        pools: Pools::default(),
        entries: Vec::new(),
        steps: Vec::new(),
        pending: 0,
        pending_bytes: 0,
        error: None,
    };
    let mut streamed = false;
    match &args.files0_from {
        Some(_) if !args.paths.is_empty() => {
            return Err(UsageError(format!(
                "extra operand {}: file operands cannot be combined with --files0-from",
                quote::quote(args.paths[0].as_bytes())
            ))
            .into())
        }
        Some(from) => streamed = files0(from, &mut plan, &filter)?,
        None if args.paths.is_empty() && !io::stdin().is_terminal() => plan.push(Entry::Input {
            source: Source::Stdin { named: false },
            size: walk::stdin_size(),
        }),
        None if args.paths.is_empty() => {
            walk::expand(OsStr::new("."), &filter, &mut |e| plan.push(e))
        }
        None => {
            for operand in &args.paths {
                walk::expand(operand, &filter, &mut |e| plan.push(e));
            }
        }
    }
    plan.flush();
    if let Some(e) = plan.error.take() {
        return Err(e);
    }
    // The pool outlives the loop below that reads the futures.
    let Plan {
        entries,
        steps,
        pools,
        ..
    } = plan;
    let width = print::width(&entries, &columns, streamed);
    let operands = entries.iter().filter(|e| e.is_operand()).count();

    let mut printer = Printer::new(args.json, width, columns);
    let mut total = Counts::default();
    let mut failed = false;
    let bar = crate::progress(entries.len(), "files");
    let mut report = |step: &Step, printer: &mut Printer| -> Result<()> {
        match step {
            Step::Batch(range, future) => {
                let outcomes: Vec<Result<Counts, String>> = match future.result() {
                    Ok(outcomes) => outcomes.clone(),
                    Err(e) => vec![Err(e.to_string()); range.len()],
                };
                crate::without_bar(bar.as_ref(), || -> Result<()> {
                    for (k, outcome) in range.clone().zip(outcomes) {
                        let Entry::Input {
                            source: Source::File(path),
                            ..
                        } = &entries[k]
                        else {
                            unreachable!("batches hold files");
                        };
                        match outcome {
                            Ok(c) => {
                                total += c;
                                printer.counts(&c, Some(path.as_os_str()))?;
                            }
                            Err(why) => {
                                failed = true;
                                printer.problem(path.as_os_str(), &why);
                            }
                        }
                    }
                    printer.settle();
                    Ok(())
                })?;
                if let Some(bar) = &bar {
                    bar.inc(range.len() as u64);
                }
            }
            Step::Entry(k) => {
                crate::without_bar(bar.as_ref(), || -> Result<()> {
                    match &entries[*k] {
                        Entry::Input {
                            source: Source::Stdin { named },
                            ..
                        } => {
                            let name = named.then_some(OsStr::new("-"));
                            match count_reader(&mut io::stdin().lock(), columns.max_line) {
                                Ok(c) => {
                                    total += c;
                                    printer.counts(&c, name)?;
                                }
                                Err(e) => {
                                    failed = true;
                                    printer.problem(OsStr::new("-"), &message(&e));
                                }
                            }
                        }
                        Entry::Input {
                            source: Source::File(_),
                            ..
                        } => unreachable!("files are batched"),
                        Entry::Failed { name, why } => {
                            failed = true;
                            printer.problem(name, why);
                        }
                        Entry::Invalid { message } => {
                            failed = true;
                            printer.message(message);
                        }
                        Entry::Skipped { name, what } => {
                            printer.problem(name, &format!("skipped: {what}, not a regular file"));
                        }
                    }
                    printer.settle();
                    Ok(())
                })?;
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
            }
        }
        Ok(())
    };
    if args.completion_order {
        let (batches, others): (Vec<&Step>, Vec<&Step>) =
            steps.iter().partition(|s| matches!(s, Step::Batch(..)));
        for step in others {
            report(step, &mut printer)?;
        }
        let index: std::collections::HashMap<Future<Vec<Result<Counts, String>>>, &Step> = batches
            .iter()
            .filter_map(|s| match s {
                Step::Batch(_, f) => Some((f.clone(), *s)),
                Step::Entry(_) => None,
            })
            .collect();
        for done in as_completed(index.keys().cloned().collect::<Vec<_>>(), None) {
            let future = done.expect("no timeout");
            report(index[&future], &mut printer)?;
        }
    } else {
        for step in &steps {
            report(step, &mut printer)?;
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if operands > 1 {
        printer.counts(&total, Some(OsStr::new("total")))?;
    }
    printer.finish()?;
    drop(pools);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
