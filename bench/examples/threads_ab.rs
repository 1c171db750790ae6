//! Our thread pool against the crossbeam boxed-closure pool + `oneshot`, in one process and in
//! alternating rounds, for profiling and quick A/B checks of the thread pool (the comparison
//! `futurepool-bench --only goal` makes with rayon too, without the other pools' threads
//! running between our rounds).
//!
//! ```text
//! cargo build --release -p futurepool-bench --example threads_ab
//! target/release/examples/threads_ab tp,cb 1 20     # submit-all, 1 thread, 20 rounds
//! target/release/examples/threads_ab rt,cbrt 2 5    # round trip, 2 threads
//! perf record -g target/release/examples/threads_ab tp 1 40
//! ```
//!
//! Modes: `tp` (ours: submit 10⁵ no-op tasks, then wait for each), `cb` (the crossbeam pool
//! and a oneshot per task), `ry` (`rayon::spawn` and a oneshot per task), `rt` and `cbrt`
//! (round trip on an idle pool, 2·10⁴ in a row).
//! Prints, per mode, the median and minimum over the rounds (ns per task) and the process's
//! CPU time per task (all threads, from `/proc/self/stat`, 10 ms resolution).

use std::time::Instant;

use futurepool_threads::ThreadPool;

/// The process's user + system CPU time so far, in ns (Linux; 0 elsewhere).
fn cpu_ns() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, in clock ticks of 10 ms.
    (ticks(11) + ticks(12)) * 1e7
}

type BoxedJob = Box<dyn FnOnce() + Send>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let modes: Vec<String> = args
        .get(1)
        .map_or("tp,cb", String::as_str)
        .split(',')
        .map(str::to_string)
        .collect();
    let workers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let pool = ThreadPool::new(workers).unwrap();
    let (jobs, queue) = crossbeam_channel::unbounded::<BoxedJob>();
    let crossbeam: Vec<_> = (0..workers)
        .map(|_| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for job in queue {
                    job();
                }
            })
        })
        .collect();
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .unwrap();
    let n = 100_000;
    let mut walls = vec![Vec::new(); modes.len()];
    let mut cpus = vec![0.0; modes.len()];
    for _ in 0..rounds {
        for (k, mode) in modes.iter().enumerate() {
            let cpu = cpu_ns();
            let start = Instant::now();
            let count = match mode.as_str() {
                "tp" => {
                    let futures: Vec<_> = (0..n).map(|_| pool.submit(|| ()).unwrap()).collect();
                    for f in &futures {
                        f.result().unwrap();
                    }
                    n
                }
                "cb" => {
                    let receivers: Vec<_> = (0..n)
                        .map(|_| {
                            let (tx, rx) = oneshot::channel();
                            jobs.send(Box::new(move || {
                                let _ = tx.send(());
                            }))
                            .unwrap();
                            rx
                        })
                        .collect();
                    for rx in receivers {
                        rx.recv().unwrap();
                    }
                    n
                }
                "ry" => {
                    let receivers: Vec<_> = (0..n)
                        .map(|_| {
                            let (tx, rx) = oneshot::channel();
                            rayon.spawn(move || {
                                let _ = tx.send(());
                            });
                            rx
                        })
                        .collect();
                    for rx in receivers {
                        rx.recv().unwrap();
                    }
                    n
                }
                "rt" => {
                    for i in 0..n / 5 {
                        let f = pool.submit(move || i).unwrap();
                        assert_eq!(*f.result().unwrap(), i);
                    }
                    n / 5
                }
                "cbrt" => {
                    for i in 0..n / 5 {
                        let (tx, rx) = oneshot::channel();
                        jobs.send(Box::new(move || {
                            let _ = tx.send(i);
                        }))
                        .unwrap();
                        assert_eq!(rx.recv().unwrap(), i);
                    }
                    n / 5
                }
                other => panic!("unknown mode `{other}` (tp, cb, ry, rt, cbrt)"),
            };
            walls[k].push(start.elapsed().as_nanos() as f64 / count as f64);
            cpus[k] += (cpu_ns() - cpu) / count as f64;
        }
    }
    for (k, mode) in modes.iter().enumerate() {
        let mut v = walls[k].clone();
        v.sort_by(f64::total_cmp);
        println!(
            "{mode} w={workers} median {:.0} ns min {:.0} cpu {:.0} ns/op",
            v[v.len() / 2],
            v[0],
            cpus[k] / rounds as f64
        );
    }
    drop(jobs);
    for t in crossbeam {
        t.join().unwrap();
    }
}
