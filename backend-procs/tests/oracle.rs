//! The pool's first promise, checked against an oracle: **only the task whose worker died
//! fails, and every future ends in exactly the outcome its task allows**.
//!
//! Each seed draws a pool (1–4 workers, `send_ahead` 0, 2 or the default, `cancel_kills_running`
//! on or off, `max_tasks_per_child` or not) and a few hundred tasks from 1–4 submitting threads:
//! normal results, `exit(3)`, `abort`, `SIGKILL` and `SIGSEGV` of itself, a stack overflow, a
//! panic, a task `SIGKILL`ed from outside while it runs, task timeouts, and `cancel()` of
//! random futures. Some threads wait for each future as soon as they submit it (so tasks are
//! held back and run by their waiters), others submit a burst and then wait (so tasks are sent
//! ahead behind running ones). The oracle then says, for each task, which outcomes are allowed:
//! the value for a task that does not crash (a reply written before the worker died counts);
//! `WorkerLost` naming the task for one that crashes its worker; `Panicked`, `TimedOut`,
//! `Cancelled` only for the task that panicked, overran or was cancelled. Each future's
//! done-callbacks must run exactly once, and no future may stay pending.
//!
//! `FUTUREPOOL_ORACLE_SEEDS` (default 16) and `FUTUREPOOL_ORACLE_TASKS` (default 240 per seed)
//! set the size: `cargo xtask oracle` runs a longer campaign. `FUTUREPOOL_ORACLE_SEED` runs one
//! seed (the failure message names it).

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futurepool_procs::{FutureError, ProcessPool};
use futurepool_testkit::watchdog;

futurepool_procs::test_worker!();

// ---- the tasks ---------------------------------------------------------------------------------

fn square(x: u64) -> u64 {
    x * x
}

/// Byte strings take the codec's bulk path (a `Vec<u8>` keeps its buffer): the sum proves
/// the bytes arrived, the reply is the bytes reversed.
fn bytes_sum(bytes: Vec<u8>) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn die_exit(_: u64) -> u64 {
    std::process::exit(3)
}

fn die_abort(_: u64) -> u64 {
    std::process::abort()
}

fn die_sigkill(_: u64) -> u64 {
    // SAFETY: `raise` has no preconditions; the worker ends here.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!("SIGKILL cannot be caught")
}

fn die_segv(_: u64) -> u64 {
    // SAFETY: `raise` has no preconditions. SIGSEGV's default action (Rust's handler lets a
    // raised one through) ends the worker, as a real fault would.
    unsafe { libc::raise(libc::SIGSEGV) };
    std::process::abort()
}

fn die_overflow(depth: u64) -> u64 {
    // Each frame keeps a buffer alive across the call: no tail call, a real overflow. (The
    // condition is never true; it keeps the compiler from calling this endless recursion.)
    let buf = std::hint::black_box([depth as u8; 512]);
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    die_overflow(depth + 1) + u64::from(buf[(depth % 512) as usize])
}

fn panics(x: u64) -> u64 {
    panic!("task {x} panics on purpose")
}

/// Writes the worker's pid to `path` and waits to be killed from outside.
fn wait_for_kill(path: String) -> u64 {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(120));
    0
}

futurepool_procs::register!(
    square,
    bytes_sum,
    sleep_ms,
    die_exit,
    die_abort,
    die_sigkill,
    die_segv,
    die_overflow,
    panics,
    wait_for_kill
);

// ---- the draw ----------------------------------------------------------------------------------

/// xorshift64*: the same seed draws the same campaign.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Square(u64),
    /// `bytes_sum` of this many bytes (`i as u8` each).
    Bytes(usize),
    /// Sleeps this long, well inside its timeout.
    Nap(u64),
    Exit,
    Abort,
    SigKill,
    Segv,
    Overflow,
    Panic,
    /// Sleeps far past its task timeout.
    Overrun,
    /// Killed from outside while it runs.
    KilledOutside,
}

impl Kind {
    fn draw(rng: &mut Rng, crash_percent: u64) -> Kind {
        if rng.chance(crash_percent) {
            return match rng.below(9) {
                0 => Kind::Exit,
                1 => Kind::Abort,
                2 => Kind::SigKill,
                3 => Kind::Segv,
                4 => Kind::Overflow,
                5 => Kind::Panic,
                6 => Kind::Overrun,
                7 => Kind::KilledOutside,
                _ => Kind::Exit,
            };
        }
        if rng.chance(10) {
            Kind::Nap(rng.below(3))
        } else if rng.chance(10) {
            Kind::Bytes([0, 1, 200, 70_000, 300_000][rng.below(5) as usize])
        } else {
            Kind::Square(rng.below(1 << 20))
        }
    }

    /// The function's name as the pool reports it (a `WorkerLost` must name the task that
    /// was running).
    fn function(self) -> &'static str {
        match self {
            Kind::Square(_) => "square",
            Kind::Bytes(_) => "bytes_sum",
            Kind::Nap(_) => "sleep_ms",
            Kind::Exit => "die_exit",
            Kind::Abort => "die_abort",
            Kind::SigKill => "die_sigkill",
            Kind::Segv => "die_segv",
            Kind::Overflow => "die_overflow",
            Kind::Panic => "panics",
            Kind::Overrun => "sleep_ms",
            Kind::KilledOutside => "wait_for_kill",
        }
    }
}

#[derive(Clone, Debug)]
struct Config {
    workers: usize,
    send_ahead: Option<usize>,
    cancel_kills_running: bool,
    max_tasks_per_child: Option<usize>,
    threads: usize,
    crash_percent: u64,
}

impl Config {
    fn draw(rng: &mut Rng) -> Config {
        Config {
            workers: 1 + rng.below(4) as usize,
            send_ahead: match rng.below(3) {
                0 => Some(0),
                1 => Some(2),
                _ => None,
            },
            cancel_kills_running: rng.chance(50),
            max_tasks_per_child: rng.chance(25).then(|| 1 + rng.below(6) as usize),
            threads: 1 + rng.below(4) as usize,
            // Every fourth task crashing in some seeds (the crash loop), rarer in others.
            crash_percent: [25, 10, 4][rng.below(3) as usize],
        }
    }

    fn pool(&self) -> ProcessPool {
        let mut b = ProcessPool::builder()
            .max_workers(self.workers)
            .cancel_kills_running(self.cancel_kills_running);
        if let Some(n) = self.send_ahead {
            b = b.send_ahead(n);
        }
        if let Some(n) = self.max_tasks_per_child {
            b = b.max_tasks_per_child(NonZeroUsize::new(n).unwrap());
        }
        b.build().unwrap()
    }
}

// ---- one run -----------------------------------------------------------------------------------

type Fut = futurepool_procs::Future<u64>;

/// A submitted task and what the test did to it.
struct Record {
    kind: Kind,
    future: Fut,
    /// `Some(answer)` if `cancel()` was called.
    cancel: Option<bool>,
    callbacks: Arc<AtomicUsize>,
}

/// How long a task overrunning its timeout sleeps, and the timeout it gets.
const OVERRUN_MS: u64 = 60_000;
const OVERRUN_TIMEOUT: Duration = Duration::from_millis(40);
/// The timeout of every other task: never reached, even on a loaded machine.
const GENEROUS: Duration = Duration::from_secs(60);

fn submit(pool: &ProcessPool, kind: Kind, dir: &std::path::Path, n: usize) -> Fut {
    let generous = pool.with_task_timeout(GENEROUS);
    let f = match kind {
        Kind::Square(x) => generous.submit(square, x),
        Kind::Bytes(n) => generous.submit(bytes_sum, (0..n).map(|i| i as u8).collect::<Vec<u8>>()),
        Kind::Nap(ms) => generous.submit(sleep_ms, ms),
        Kind::Exit => pool.submit(die_exit, 0),
        Kind::Abort => pool.submit(die_abort, 0),
        Kind::SigKill => pool.submit(die_sigkill, 0),
        Kind::Segv => pool.submit(die_segv, 0),
        Kind::Overflow => pool.submit(die_overflow, 0),
        Kind::Panic => pool.submit(panics, n as u64),
        Kind::Overrun => pool
            .with_task_timeout(OVERRUN_TIMEOUT)
            .submit(sleep_ms, OVERRUN_MS),
        Kind::KilledOutside => {
            let path = dir.join(format!("pid-{n}"));
            let f = pool.submit(wait_for_kill, path.to_string_lossy().into_owned());
            if let Ok(f) = &f {
                kill_when_running(path, f.clone());
            }
            f
        }
    };
    f.expect("submit")
}

/// Kills the worker that writes its pid to `path`, once it does; gives up when `future` is
/// done without it (cancelled before it started).
fn kill_when_running(path: std::path::PathBuf, future: Fut) {
    std::thread::spawn(move || loop {
        if let Ok(pid) = std::fs::read_to_string(&path) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: `kill` has no memory preconditions. The pid is a live worker of this
                // test: it wrote the file and then sleeps for two minutes, waiting for this.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return;
            }
        }
        if future.done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    });
}

/// One submitting thread: `prompt` waits for each future as soon as it is submitted (the pool
/// holds tasks back for such waiters and lets them run their own), otherwise bursts of up to
/// 40 are submitted and then waited for. Random futures are cancelled.
fn submitter(
    pool: &ProcessPool,
    seed: u64,
    thread: usize,
    tasks: usize,
    crash_percent: u64,
    dir: &std::path::Path,
) -> Vec<Record> {
    let mut rng = Rng::new(seed ^ ((thread as u64 + 1) << 32));
    let prompt = rng.chance(40);
    let mut records: Vec<Record> = Vec::with_capacity(tasks);
    let mut burst = 0;
    for i in 0..tasks {
        let kind = Kind::draw(&mut rng, crash_percent);
        let future = submit(pool, kind, dir, thread * 1_000_000 + i);
        let callbacks = Arc::new(AtomicUsize::new(0));
        let count = callbacks.clone();
        future.add_done_callback(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        });
        let cancel = if rng.chance(6) {
            if rng.chance(50) {
                std::thread::sleep(Duration::from_micros(rng.below(300)));
            }
            Some(future.cancel())
        } else {
            None
        };
        if prompt {
            let _ = future.result_timeout(Duration::from_secs(90));
        }
        records.push(Record {
            kind,
            future,
            cancel,
            callbacks,
        });
        burst += 1;
        if !prompt && burst > rng.below(40) as usize {
            burst = 0;
            if rng.chance(50) {
                if let Some(last) = records.last() {
                    let _ = last.future.result_timeout(Duration::from_secs(90));
                }
            }
        }
    }
    records
}

/// What the oracle says of one record's outcome: `None` if allowed, else why not.
fn judge(record: &Record, config: &Config) -> Option<String> {
    let kind = record.kind;
    let outcome = record.future.result_timeout(Duration::ZERO);
    let cancelled = record.cancel == Some(true);
    // With `cancel_kills_running`, a cancel kills the worker running the task, and a worker
    // starts the task sent behind it the moment it has answered: that one may be killed too,
    // and then says so.
    let killed_by_a_neighbours_cancel =
        |why: &str| config.cancel_kills_running && why.contains("killed to cancel the task before");
    let names_it = |why: &str| why.contains(kind.function());
    let ok = match (&outcome, kind) {
        (Err(FutureError::TimedOut), _) if record.future.done() => {
            kind == Kind::Overrun && !cancelled_for_sure(record, config)
        }
        (Err(FutureError::TimedOut), _) => false, // still pending: checked below
        (Err(FutureError::Cancelled), _) => cancelled,
        (Ok(&v), Kind::Square(x)) => v == x * x && !cancelled_for_sure(record, config),
        (Ok(&v), Kind::Nap(ms)) => v == ms && !cancelled_for_sure(record, config),
        (Ok(&v), Kind::Bytes(n)) => {
            v == (0..n).map(|i| u64::from(i as u8)).sum::<u64>()
                && !cancelled_for_sure(record, config)
        }
        (Ok(_), _) => false,
        (Err(FutureError::Panicked(p)), Kind::Panic) => p.message().contains("on purpose"),
        (Err(FutureError::WorkerLost(why)), Kind::KilledOutside) => {
            names_it(why) && why.contains("SIGKILL")
        }
        (
            Err(FutureError::WorkerLost(why)),
            Kind::Exit | Kind::Abort | Kind::SigKill | Kind::Segv | Kind::Overflow,
        ) => names_it(why) || killed_by_a_neighbours_cancel(why),
        (Err(FutureError::WorkerLost(why)), _) => killed_by_a_neighbours_cancel(why),
        (Err(_), _) => false,
    };
    let calls = record.callbacks.load(Ordering::SeqCst);
    if !record.future.done() {
        return Some(format!("{kind:?} still pending"));
    }
    if !ok {
        return Some(format!(
            "{kind:?} (cancel() -> {:?}) ended {outcome:?}",
            record.cancel
        ));
    }
    if calls != 1 {
        return Some(format!("{kind:?}: its done-callback ran {calls} times"));
    }
    None
}

/// A cancel that returned `true` without `cancel_kills_running` leaves no other outcome; with
/// it, the task may have finished first (its outcome stands).
fn cancelled_for_sure(record: &Record, config: &Config) -> bool {
    record.cancel == Some(true) && !config.cancel_kills_running
}

/// Runs one seed; the list of wrong outcomes (empty when the pool kept its promise).
fn run_seed(seed: u64, tasks: usize) -> (Config, Vec<String>) {
    let mut rng = Rng::new(seed);
    let config = Config::draw(&mut rng);
    let dir = std::env::temp_dir().join(format!("futurepool-oracle-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pool = config.pool();
    let per_thread = tasks.div_ceil(config.threads);
    let records: Vec<Record> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..config.threads)
            .map(|t| {
                let (pool, dir, crash) = (&pool, &dir, config.crash_percent);
                s.spawn(move || submitter(pool, seed, t, per_thread, crash, dir))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    // Every future ends: a wide margin, since crashes restart workers and CI machines are slow.
    let deadline = Instant::now() + Duration::from_secs(120);
    for r in &records {
        r.future
            .wait_timeout(deadline.saturating_duration_since(Instant::now()));
    }
    // Callbacks run right after completion, on the completing thread: let them finish.
    let settle = Instant::now() + Duration::from_secs(10);
    while records
        .iter()
        .any(|r| r.callbacks.load(Ordering::SeqCst) == 0)
        && Instant::now() < settle
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let wrong: Vec<String> = records.iter().filter_map(|r| judge(r, &config)).collect();
    pool.shutdown(futurepool_procs::Shutdown::new().cancel_futures(true));
    let _ = std::fs::remove_dir_all(&dir);
    (config, wrong)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_future_ends_in_an_outcome_the_oracle_allows() {
    let seeds: Vec<u64> = match std::env::var("FUTUREPOOL_ORACLE_SEED") {
        Ok(one) => vec![one.parse().expect("FUTUREPOOL_ORACLE_SEED: a number")],
        Err(_) => (1..=env_usize("FUTUREPOOL_ORACLE_SEEDS", 16) as u64).collect(),
    };
    let tasks = env_usize("FUTUREPOOL_ORACLE_TASKS", 240);
    let limit = Duration::from_secs(240 + 30 * seeds.len() as u64);
    watchdog(limit, move || {
        let mut report = String::new();
        let mut total_wrong = 0;
        for &seed in &seeds {
            let (config, wrong) = run_seed(seed, tasks);
            total_wrong += wrong.len();
            if !wrong.is_empty() {
                let _ = writeln!(
                    report,
                    "seed {seed} ({config:?}): {} wrong of {tasks}",
                    wrong.len()
                );
                for w in wrong.iter().take(5) {
                    let _ = writeln!(report, "    {w}");
                }
            }
        }
        assert!(
            total_wrong == 0,
            "{total_wrong} futures ended in an outcome the oracle forbids \
             (rerun one with FUTUREPOOL_ORACLE_SEED=N):\n{report}"
        );
    });
}

/// The exact case of the crash loop that found the bug: 2 workers, sends ahead on, every fourth
/// task crashing its worker in turn, all submitted at once.
#[test]
fn a_crash_loop_with_sends_ahead_fails_only_the_crashing_tasks() {
    watchdog(Duration::from_secs(300), || {
        let pool = ProcessPool::new(2).unwrap();
        let kinds = [
            Kind::Exit,
            Kind::Abort,
            Kind::SigKill,
            Kind::Segv,
            Kind::Overflow,
        ];
        let dir = std::env::temp_dir();
        let records: Vec<(Kind, Fut)> = (0..600u64)
            .map(|i| {
                let kind = if i % 4 == 3 {
                    kinds[(i / 4) as usize % kinds.len()]
                } else {
                    Kind::Square(i)
                };
                (kind, submit(&pool, kind, &dir, i as usize))
            })
            .collect();
        let mut wrong = Vec::new();
        for (kind, f) in &records {
            let outcome = f.result_timeout(Duration::from_secs(120));
            let fine = match (kind, &outcome) {
                (Kind::Square(x), Ok(&v)) => v == x * x,
                (_, Err(FutureError::WorkerLost(why))) => {
                    !matches!(kind, Kind::Square(_)) && why.contains(kind.function())
                }
                _ => false,
            };
            if !fine {
                wrong.push(format!("{kind:?} ended {outcome:?}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of 600 wrong, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    });
}
