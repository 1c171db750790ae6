//! Where job output goes: our stdout and stderr, through the progress bar's `suspend` so the
//! bar and the output never garble each other, with a closed stdout (EPIPE) remembered instead
//! of reported.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use indicatif::ProgressBar;

/// Our stdout and stderr, shared by the scheduler and `--line-buffer` readers.
#[derive(Debug)]
pub struct Printer {
    bar: Option<ProgressBar>,
    /// stdout was closed (EPIPE): print nothing more, stop the run.
    closed: AtomicBool,
    /// One writer at a time, so `--line-buffer` lines stay whole.
    lock: Mutex<()>,
}

impl Printer {
    pub fn new(bar: Option<ProgressBar>) -> Printer {
        Printer {
            bar,
            closed: AtomicBool::new(false),
            lock: Mutex::new(()),
        }
    }

    /// Whether stdout was closed by its reader.
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Counts one more job done on the bar.
    pub fn job_done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Sets the bar's length once the number of jobs is known.
    pub fn set_total(&self, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Writes to stdout with `write`, then flushes. A closed stdout is remembered and is not an
    /// error; other write errors are.
    pub fn stdout(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        if self.closed() {
            return Ok(());
        }
        let result = self.with_lock(|| {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            write(&mut out).and_then(|()| out.flush())
        });
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed.store(true, Ordering::SeqCst);
                Ok(())
            }
            other => other,
        }
    }

    /// Writes to stderr; errors there are ignored (there is nowhere left to report them).
    pub fn stderr(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) {
        let _ = self.with_lock(|| {
            let stderr = io::stderr();
            let mut err = stderr.lock();
            write(&mut err).and_then(|()| err.flush())
        });
    }

    /// A message of ours on stderr.
    pub fn note(&self, message: &str) {
        self.stderr(|err| writeln!(err, "pool run: {message}"));
    }

    fn with_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}
