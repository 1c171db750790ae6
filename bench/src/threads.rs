//! The thread-pool comparisons: futurepool's `ThreadPool` against CPython's
//! `ThreadPoolExecutor`, `rayon::spawn` + a oneshot, a boxed-closure crossbeam pool + a oneshot,
//! and tokio's `spawn_blocking`, all with the same number of threads.

use std::path::Path;
use std::thread;
use std::time::Instant;

use futurepool_threads::{as_completed, ThreadPool};

use crate::harness::{compare, cpython, Comparison, Contender};

/// Sizes of one run.
pub struct Sizes {
    pub throughput_tasks: usize,
    pub round_trips: usize,
    pub as_completed_tasks: usize,
}

fn per(start: Instant, n: usize) -> Option<f64> {
    Some(start.elapsed().as_nanos() as f64 / n as f64)
}

fn ours_throughput(pool: &ThreadPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    let futures: Vec<_> = (0..n).map(|_| pool.submit(|| ()).unwrap()).collect();
    for f in &futures {
        f.result().unwrap();
    }
    per(start, n)
}

fn ours_round_trip(pool: &ThreadPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    for i in 0..n {
        let f = pool.submit(move || i).unwrap();
        assert_eq!(*f.result().unwrap(), i);
    }
    per(start, n)
}

fn ours_as_completed(pool: &ThreadPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    let futures: Vec<_> = (0..n).map(|i| pool.submit(move || i).unwrap()).collect();
    let mut sum = 0usize;
    for f in as_completed(futures, None) {
        sum += *f.unwrap().result().unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
    per(start, n)
}

fn rayon_throughput(pool: &rayon::ThreadPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    let receivers: Vec<_> = (0..n)
        .map(|_| {
            let (tx, rx) = oneshot::channel();
            pool.spawn(move || {
                let _ = tx.send(());
            });
            rx
        })
        .collect();
    for rx in receivers {
        rx.recv().unwrap();
    }
    per(start, n)
}

fn rayon_round_trip(pool: &rayon::ThreadPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    for i in 0..n {
        let (tx, rx) = oneshot::channel();
        pool.spawn(move || {
            let _ = tx.send(i);
        });
        assert_eq!(rx.recv().unwrap(), i);
    }
    per(start, n)
}

type BoxedJob = Box<dyn FnOnce() + Send>;

/// The classic hand-rolled pool: N threads pulling boxed closures from a crossbeam channel.
pub struct CrossbeamPool {
    tx: Option<crossbeam_channel::Sender<BoxedJob>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl CrossbeamPool {
    pub fn new(n: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<BoxedJob>();
        let threads = (0..n)
            .map(|_| {
                let rx = rx.clone();
                thread::spawn(move || {
                    for job in rx {
                        job();
                    }
                })
            })
            .collect();
        CrossbeamPool {
            tx: Some(tx),
            threads,
        }
    }

    fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.tx.as_ref().unwrap().send(Box::new(f)).unwrap();
    }
}

impl Drop for CrossbeamPool {
    fn drop(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn crossbeam_throughput(pool: &CrossbeamPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    let receivers: Vec<_> = (0..n)
        .map(|_| {
            let (tx, rx) = oneshot::channel();
            pool.spawn(move || {
                let _ = tx.send(());
            });
            rx
        })
        .collect();
    for rx in receivers {
        rx.recv().unwrap();
    }
    per(start, n)
}

fn crossbeam_round_trip(pool: &CrossbeamPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    for i in 0..n {
        let (tx, rx) = oneshot::channel();
        pool.spawn(move || {
            let _ = tx.send(i);
        });
        assert_eq!(rx.recv().unwrap(), i);
    }
    per(start, n)
}

fn tokio_throughput(rt: &tokio::runtime::Runtime, n: usize) -> Option<f64> {
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| rt.spawn_blocking(|| ())).collect();
    rt.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
    per(start, n)
}

fn tokio_round_trip(rt: &tokio::runtime::Runtime, n: usize) -> Option<f64> {
    let start = Instant::now();
    for i in 0..n {
        let h = rt.spawn_blocking(move || i);
        assert_eq!(rt.block_on(h).unwrap(), i);
    }
    per(start, n)
}

pub fn run(sizes: &Sizes, reps: usize, python: &Path) -> Vec<Comparison> {
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    let ours = ThreadPool::new(workers).unwrap();
    let ours_default = ThreadPool::with_default_workers();
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .unwrap();
    let crossbeam = CrossbeamPool::new(workers);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(workers)
        .build()
        .unwrap();
    let script = python.join("threads.py");
    let w = workers;
    let mut out = Vec::new();

    let n = sizes.throughput_tasks;
    out.push(compare(
        "thread pool",
        &format!("submit {n} no-op tasks, then collect ({w} threads each)"),
        "task",
        reps,
        vec![
            Contender::new(format!("futurepool ThreadPool({w})"), || {
                ours_throughput(&ours, n)
            }),
            Contender::new(
                format!(
                    "futurepool ThreadPool(default {})",
                    ours_default.max_workers()
                ),
                || ours_throughput(&ours_default, n),
            ),
            Contender::new("rayon::spawn + oneshot", || rayon_throughput(&rayon, n)),
            Contender::new("crossbeam boxed-closure pool + oneshot", || {
                crossbeam_throughput(&crossbeam, n)
            }),
            Contender::new("tokio spawn_blocking", || tokio_throughput(&tokio, n)),
            Contender::new(format!("CPython ThreadPoolExecutor({w})"), || {
                cpython(&script, w, &format!("throughput:{n}"))
            }),
        ],
    ));

    let n = sizes.round_trips;
    out.push(compare(
        "thread pool",
        &format!("round trip submit → result on an idle pool ({n} in a row)"),
        "round trip",
        reps,
        vec![
            Contender::new(format!("futurepool ThreadPool({w})"), || {
                ours_round_trip(&ours, n)
            }),
            Contender::new("rayon::spawn + oneshot", || rayon_round_trip(&rayon, n)),
            Contender::new("crossbeam boxed-closure pool + oneshot", || {
                crossbeam_round_trip(&crossbeam, n)
            }),
            Contender::new("tokio spawn_blocking + block_on", || {
                tokio_round_trip(&tokio, n)
            }),
            Contender::new(format!("CPython ThreadPoolExecutor({w})"), || {
                cpython(&script, w, &format!("round_trip:{n}"))
            }),
        ],
    ));

    let n = sizes.as_completed_tasks;
    out.push(compare(
        "thread pool",
        &format!("submit {n} tasks, then as_completed over all"),
        "task",
        reps,
        vec![
            Contender::new(format!("futurepool ThreadPool({w})"), || {
                ours_as_completed(&ours, n)
            }),
            Contender::new(format!("CPython ThreadPoolExecutor({w})"), || {
                cpython(&script, w, &format!("as_completed_all:{n}"))
            }),
        ],
    ));
    out
}

/// Scaling: throughput at every worker count from 1 up to the core count, and submit-all at
/// 10³ … 10⁶ tasks (the cost per task must stay flat: linear in total).
pub fn scaling(reps: usize, max_tasks: usize) -> Vec<Comparison> {
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    let mut out = Vec::new();
    let n = 100_000;
    let mut w = 1;
    while w <= cores {
        let ours = ThreadPool::new(w).unwrap();
        let rayon = rayon::ThreadPoolBuilder::new()
            .num_threads(w)
            .build()
            .unwrap();
        let crossbeam = CrossbeamPool::new(w);
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(w)
            .build()
            .unwrap();
        out.push(compare(
            "thread pool scaling",
            &format!("submit {n} no-op tasks, then collect, {w} thread(s)"),
            "task",
            reps,
            vec![
                Contender::new(format!("futurepool ThreadPool({w})"), || {
                    ours_throughput(&ours, n)
                }),
                Contender::new("rayon::spawn + oneshot", || rayon_throughput(&rayon, n)),
                Contender::new("crossbeam boxed-closure pool + oneshot", || {
                    crossbeam_throughput(&crossbeam, n)
                }),
                Contender::new("tokio spawn_blocking", || tokio_throughput(&tokio, n)),
            ],
        ));
        w *= 2;
    }
    let ours = ThreadPool::new(cores).unwrap();
    let mut size = 1_000;
    while size <= max_tasks {
        out.push(compare(
            "thread pool scaling",
            &format!("submit {size} no-op tasks, then collect"),
            "task",
            reps,
            vec![Contender::new(
                format!("futurepool ThreadPool({cores})"),
                || ours_throughput(&ours, size),
            )],
        ));
        size *= 10;
    }
    out
}

/// Issue 14's thread-pool goal, on its own: submit-all of 10⁵ no-op tasks then collect, and
/// the round trip on an idle pool, with 1 and 2 threads, against `rayon::spawn` + `oneshot` and
/// the crossbeam boxed-closure pool + `oneshot` (each peer pays for a oneshot per task, as we
/// pay for a future). `cargo xtask bench --only goal`.
pub fn goal(reps: usize) -> Vec<Comparison> {
    let mut out = Vec::new();
    for w in [1, 2] {
        let ours = ThreadPool::new(w).unwrap();
        let rayon = rayon::ThreadPoolBuilder::new()
            .num_threads(w)
            .build()
            .unwrap();
        let crossbeam = CrossbeamPool::new(w);
        let n = 100_000;
        out.push(compare(
            "thread pool goal",
            &format!("submit {n} no-op tasks, then collect, {w} thread(s)"),
            "task",
            reps,
            vec![
                Contender::new(format!("futurepool ThreadPool({w})"), || {
                    ours_throughput(&ours, n)
                }),
                Contender::new("rayon::spawn + oneshot", || rayon_throughput(&rayon, n)),
                Contender::new("crossbeam boxed-closure pool + oneshot", || {
                    crossbeam_throughput(&crossbeam, n)
                }),
            ],
        ));
        let n = 20_000;
        out.push(compare(
            "thread pool goal",
            &format!("round trip on an idle pool ({n} in a row), {w} thread(s)"),
            "round trip",
            reps,
            vec![
                Contender::new(format!("futurepool ThreadPool({w})"), || {
                    ours_round_trip(&ours, n)
                }),
                Contender::new("rayon::spawn + oneshot", || rayon_round_trip(&rayon, n)),
                Contender::new("crossbeam boxed-closure pool + oneshot", || {
                    crossbeam_round_trip(&crossbeam, n)
                }),
            ],
        ));
    }
    out
}

/// Child-process mode: `map` over an endless input with a bounded look-ahead, consuming `n`
/// items; prints the growth of peak RSS in bytes (it must not grow with `n`).
pub fn map_memory(n: usize) {
    let pool = ThreadPool::new(2).unwrap();
    let before = peak_rss();
    let opts = futurepool_threads::MapOptions::new().buffersize(64);
    let sum = pool
        .map(|x: u64| x & 1, 0.., opts)
        .unwrap()
        .take(n)
        .map(Result::unwrap)
        .sum::<u64>();
    assert_eq!(sum as usize, n / 2);
    println!("{}", peak_rss().saturating_sub(before));
}

/// Child-process mode: queue `n` no-op tasks behind a blocked worker and print the growth of
/// peak RSS in bytes (so the parent's own memory does not count).
pub fn queued_memory(n: usize) {
    let before = peak_rss();
    let pool = ThreadPool::new(1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let gate = pool.submit(move || rx.recv().ok()).unwrap();
    let futures: Vec<_> = (0..n).map(|_| pool.submit(|| ()).unwrap()).collect();
    let after = peak_rss();
    println!("{}", after.saturating_sub(before));
    drop(tx);
    gate.result().unwrap();
    drop(futures);
}

/// Peak resident set size of this process, in bytes (Linux `VmHWM`).
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
