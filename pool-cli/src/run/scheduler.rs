//! The scheduler: one thread deciding everything, woken only by events — a job finished, a
//! signal arrived. It starts jobs while a slot is free (reading inputs lazily), retries, applies
//! `--halt`, prints outputs (in input order with `-k`), writes the joblog, and stops the run on
//! SIGINT/SIGTERM (the signal to every job's group, SIGKILL after `--grace`, a second one kills
//! at once; exit 255), SIGHUP (no new jobs; running ones finish), SIGTSTP/SIGCONT (Ctrl-Z and
//! `fg`: the jobs are suspended and resumed with us) and a closed stdout (running
//! jobs ended, quietly).
//!
//! Jobs run on futurepool's thread pool, one worker per slot, each blocking in
//! [`Runner::run`]; the worker sends the result back on a channel.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use futurepool_threads::ThreadPool;
use signal_hook::consts::{SIGCONT, SIGHUP, SIGINT, SIGTERM, SIGTSTP};

use super::input::{InputError, Inputs, Values};
use super::job::{Finished, JobError, JobSpec, Runner, Stop};
use super::local::tag_of;
use super::output::Printer;
use super::policy::{Ending, Halt, Tally, When};
use super::report::{json_line, write_results, Joblog};
use super::template::{JobValues, Template};

/// How the scheduler runs the jobs (everything but the runner, inputs and printer).
#[derive(Debug)]
pub struct Plan {
    pub slots: usize,
    pub keep_order: bool,
    /// Attempts per job in total (`--retries`, at least 1).
    pub attempts: u32,
    pub halt: Option<Halt>,
    pub timeout: Option<Duration>,
    pub tag: bool,
    pub json: bool,
    pub results: Option<PathBuf>,
    /// The runner prints output itself as it comes (`--line-buffer`, `-u`).
    pub output_streamed: bool,
    pub joblog: Option<Joblog>,
    /// Sequence numbers not to run (`--resume`, `--resume-failed`).
    pub skip: HashSet<usize>,
    /// With `-k`: how far past the first unprinted job new jobs may start. Each finished job
    /// parked for its turn keeps its two spool files open, so this bounds open files.
    pub park_window: usize,
}

/// What wakes the scheduler.
enum Event {
    /// The next input (`None`: no more), as asked for.
    Input(Option<Result<Values, InputError>>),
    Done {
        spec: JobSpec,
        attempt: u32,
        result: Result<Finished, JobError>,
    },
    Signal(i32),
}

/// Sends the job's result when dropped, even if the runner panicked (the scheduler must
/// never wait for a job that will not come back).
struct Reply {
    tx: Sender<Event>,
    spec: Option<JobSpec>,
    attempt: u32,
    result: Option<Result<Finished, JobError>>,
}

impl Reply {
    fn send(mut self, result: Result<Finished, JobError>) {
        self.result = Some(result);
        // Drop sends it.
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(spec) = self.spec.take() {
            let result = self.result.take().unwrap_or_else(|| {
                Err(JobError::Start(io::Error::other(
                    "the job's thread panicked",
                )))
            });
            let _ = self.tx.send(Event::Done {
                spec,
                attempt: self.attempt,
                result,
            });
        }
    }
}

/// Why the run stopped starting jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    No,
    /// SIGHUP or `--halt soon`: running jobs finish and are reported.
    Soon,
    /// `--halt now`: running jobs are killed; their output is not printed.
    Halted,
    /// SIGINT/SIGTERM: the signal; exit 255.
    Interrupted(i32),
    /// stdout closed.
    Closed,
}

/// A finished job waiting for its turn to be printed (`-k`), or a hole in the sequence.
enum Parked {
    Job(JobSpec, Finished),
    Nothing,
}

struct Scheduler {
    plan: Plan,
    printer: Arc<Printer>,
    runner: Arc<dyn Runner>,
    tally: Tally,
    stopping: Stopping,
    parked: BTreeMap<usize, Parked>,
    next_to_print: usize,
}

/// Runs every job; returns the exit code.
pub fn run(
    runner: Arc<dyn Runner>,
    template: &Template,
    mut inputs: Inputs,
    plan: Plan,
    printer: Arc<Printer>,
) -> Result<u8> {
    let (tx, rx) = mpsc::channel::<Event>();
    // A signal ignored when we started stays ignored, for us and the jobs (`nohup pool run …`
    // keeps running through a hangup; `pool run … &` in a script is not stopped by Ctrl-C).
    let handled: Vec<i32> = [SIGINT, SIGTERM, SIGHUP, SIGTSTP, SIGCONT]
        .into_iter()
        .filter(|&signal| !ignored_at_start(signal))
        .collect();
    let mut signals =
        signal_hook::iterator::Signals::new(handled).context("installing signal handlers")?;
    let signal_handle = signals.handle();
    let signal_tx = tx.clone();
    let signal_thread = thread::Builder::new()
        .name("pool-run-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal_tx.send(Event::Signal(signal)).is_err() {
                    break;
                }
            }
        })?;
    let pool = ThreadPool::builder()
        .max_workers(plan.slots)
        .thread_name_prefix("pool-run")
        .build()?;
    if let Some(total) = inputs.total() {
        printer.set_total(total);
    }
    let mut s = Scheduler {
        tally: Tally::new(plan.halt, inputs.total()),
        plan,
        printer,
        runner,
        stopping: Stopping::No,
        parked: BTreeMap::new(),
        next_to_print: 1,
    };
    let total_known = inputs.total().is_some();
    // Inputs are read on their own thread, one per request, so that a signal is handled at
    // once even while stdin has nothing to give (the scheduler never blocks on input).
    let (want_tx, want_rx) = mpsc::channel::<()>();
    let input_tx = tx.clone();
    thread::Builder::new()
        .name("pool-run-inputs".into())
        .spawn(move || {
            while want_rx.recv().is_ok() {
                let next = inputs.next();
                let last = !matches!(next, Some(Ok(_)));
                if input_tx.send(Event::Input(next)).is_err() || last {
                    break;
                }
            }
        })?;
    let mut free_slots: BTreeSet<usize> = (1..=s.plan.slots).collect();
    let mut running = 0usize;
    // Inputs asked for and not yet arrived.
    let mut requested = 0usize;
    let mut seq = 0usize;
    let mut exhausted = false;
    let mut input_error = None;
    let mut interrupts = 0;
    loop {
        while s.stopping == Stopping::No
            && !exhausted
            && running + requested < s.plan.slots
            && (!s.plan.keep_order || seq + requested < s.next_to_print + s.plan.park_window)
        {
            if want_tx.send(()).is_err() {
                // The reader has ended, after sending its last answer (no more inputs, or an
                // error): that answer is still on its way and ends the inputs.
                break;
            }
            requested += 1;
        }
        let waiting_for_input = requested > 0 && !exhausted && s.stopping == Stopping::No;
        if running == 0 && !waiting_for_input {
            break;
        }
        let event = rx.recv().expect("the scheduler holds a sender");
        match event {
            Event::Input(next) => {
                requested -= 1;
                let values = match next {
                    None => {
                        exhausted = true;
                        continue;
                    }
                    Some(Err(e)) => {
                        input_error = Some(e);
                        exhausted = true;
                        continue;
                    }
                    Some(Ok(values)) => values,
                };
                if s.stopping != Stopping::No {
                    continue;
                }
                seq += 1;
                if !total_known {
                    s.printer.set_total(seq);
                }
                if s.plan.skip.contains(&seq) {
                    s.park(seq, Parked::Nothing)?;
                    continue;
                }
                let slot = free_slots
                    .pop_first()
                    .expect("a free slot: running + requested <= slots");
                let command = template.render(JobValues {
                    args: &values,
                    seq,
                    slot,
                });
                let spec = JobSpec {
                    seq,
                    slot,
                    command,
                    values,
                    timeout: s.plan.timeout,
                };
                s.tally.started();
                submit(&pool, &s.runner, &tx, spec, 1)?;
                running += 1;
            }
            Event::Signal(SIGTSTP) => {
                // Ctrl-Z: the jobs (in their own process groups, which the terminal does not
                // reach) stop with us, as GNU parallel does; then we stop.
                s.runner.suspend_running();
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::STOP,
                );
            }
            Event::Signal(SIGCONT) => s.runner.resume_running(),
            Event::Signal(SIGHUP) => {
                if s.stopping == Stopping::No {
                    s.stopping = Stopping::Soon;
                    s.printer.note(&format!(
                        "SIGHUP received: no new jobs; waiting for {running} running job(s)"
                    ));
                }
            }
            Event::Signal(signal) => {
                interrupts += 1;
                if interrupts == 1 {
                    s.stopping = Stopping::Interrupted(signal);
                    s.runner.stop_running(Stop::Signal(signal));
                } else {
                    s.runner.stop_running(Stop::Kill);
                }
            }
            Event::Done {
                spec,
                attempt,
                result,
            } => {
                let retry = match &result {
                    Ok(f) => {
                        ending(f).failed()
                            && attempt < s.plan.attempts
                            && s.stopping == Stopping::No
                    }
                    Err(_) => false,
                };
                if retry {
                    submit(&pool, &s.runner, &tx, spec, attempt + 1)?;
                    continue;
                }
                running -= 1;
                free_slots.insert(spec.slot);
                s.printer.job_done();
                s.finished(spec, result)?;
            }
        }
    }
    // With -k, what is still parked follows in order (jobs after a halt, skipped holes).
    for (_, parked) in std::mem::take(&mut s.parked) {
        if let Parked::Job(spec, finished) = parked {
            s.deliver(spec, finished)?;
        }
    }
    s.printer.finish();
    signal_handle.close();
    let _ = signal_thread.join();
    drop(pool);
    if let Some(e) = input_error {
        return Err(e.into());
    }
    if let Stopping::Interrupted(signal) = s.stopping {
        s.printer.note(&format!(
            "stopped by signal {signal}; running jobs were stopped"
        ));
        return Ok(255);
    }
    let failed = s.tally.failed_count();
    if failed > 0 && s.stopping != Stopping::Closed {
        s.printer.note(&format!(
            "{failed} of {} jobs failed",
            s.tally.started_count()
        ));
    }
    Ok(s.tally.exit_code())
}

/// Whether `signal`'s disposition is "ignore" (inherited from whoever started us).
fn ignored_at_start(signal: i32) -> bool {
    // SAFETY: `sigaction` is plain data, all-zero is a valid value; sigaction(2) with a null
    // new action only reads the current one into `old`, which we own.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

fn submit(
    pool: &ThreadPool,
    runner: &Arc<dyn Runner>,
    tx: &Sender<Event>,
    spec: JobSpec,
    attempt: u32,
) -> Result<()> {
    let runner = runner.clone();
    let reply = Reply {
        tx: tx.clone(),
        spec: Some(spec),
        attempt,
        result: None,
    };
    pool.submit(move || {
        let result = runner.run(reply.spec.as_ref().expect("set until sent"));
        reply.send(result);
    })?;
    Ok(())
}

/// How the exit code rule sees a job: as its joblog line does (a timed-out job is exit -1 and
/// its signal, which makes `--halt now,fail=1` exit 255, as GNU parallel does).
fn ending(f: &Finished) -> Ending {
    let (exit, signal) = f.exit_and_signal();
    Ending { exit, signal }
}

impl Scheduler {
    /// A job is over (after its retries).
    fn finished(&mut self, spec: JobSpec, result: Result<Finished, JobError>) -> Result<()> {
        let seq = spec.seq;
        let finished = match result {
            Ok(f) => f,
            Err(JobError::Stopped) => return self.park(seq, Parked::Nothing),
            Err(e) => {
                self.printer.note(&format!("job {seq}: {e}"));
                if self.counting() {
                    // Never started: a failure, with GNU parallel's "other error" code.
                    self.tally.finished(Ending {
                        exit: 255,
                        signal: 0,
                    });
                }
                return self.park(seq, Parked::Nothing);
            }
        };
        if self.counting() {
            match self.tally.finished(ending(&finished)) {
                Some(When::Soon) => {
                    self.stopping = Stopping::Soon;
                    let failed = self.tally.failed_count();
                    self.printer.note(&format!(
                        "halting after job {seq} ({failed} failed): no new jobs"
                    ));
                }
                Some(When::Now) => {
                    self.stopping = Stopping::Halted;
                    self.runner.stop_running(Stop::Signal(libc::SIGTERM));
                    let failed = self.tally.failed_count();
                    self.printer.note(&format!(
                        "halting now after job {seq} ({failed} failed): running jobs killed"
                    ));
                }
                None => {}
            }
        } else if let Some(log) = &mut self.plan.joblog {
            // Killed by the halt or a signal: logged, not printed.
            log.write(&spec, &finished)?;
            return self.park(seq, Parked::Nothing);
        }
        self.park(seq, Parked::Job(spec, finished))
    }

    /// Whether finished jobs still count (they do not once the run was halted or interrupted
    /// and they were killed for it).
    fn counting(&self) -> bool {
        matches!(self.stopping, Stopping::No | Stopping::Soon)
    }

    /// Prints now, or holds until the earlier jobs are printed (`-k`).
    fn park(&mut self, seq: usize, parked: Parked) -> Result<()> {
        if !self.plan.keep_order {
            if let Parked::Job(spec, finished) = parked {
                self.deliver(spec, finished)?;
            }
            return Ok(());
        }
        self.parked.insert(seq, parked);
        while let Some(parked) = self.parked.remove(&self.next_to_print) {
            if let Parked::Job(spec, finished) = parked {
                self.deliver(spec, finished)?;
            }
            self.next_to_print += 1;
        }
        Ok(())
    }

    /// The job's joblog line, results and output.
    fn deliver(&mut self, spec: JobSpec, mut finished: Finished) -> Result<()> {
        if let Some(log) = &mut self.plan.joblog {
            log.write(&spec, &finished)?;
        }
        if let Some(dir) = &self.plan.results {
            write_results(dir, &spec, &mut finished)?;
        } else if self.plan.json {
            let line = json_line(&spec, &mut finished)?;
            self.printer.stdout(|w| w.write_all(&line))?;
        } else if !self.plan.output_streamed {
            let tag = self.plan.tag.then(|| tag_of(&spec.values));
            self.printer
                .stdout(|w| finished.stdout.copy_to(w, tag.as_deref()))?;
            self.printer
                .stderr(|w| finished.stderr.copy_to(w, tag.as_deref()));
        }
        if finished.timed_out && !self.plan.json {
            let command = String::from_utf8_lossy(&spec.command);
            self.printer
                .note(&format!("job {} timed out: {command}", spec.seq));
        }
        if self.printer.closed() && self.stopping != Stopping::Closed {
            self.stopping = Stopping::Closed;
            self.runner.stop_running(Stop::Signal(libc::SIGTERM));
        }
        Ok(())
    }
}
