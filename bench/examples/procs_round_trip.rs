//! Warm round trips on the process pool in a loop, for `perf`:
//! `procs_round_trip [n] [rounds] [submit|apply|both]` — `submit(..)?.result()` and `apply`, `n`
//! in a row per round (both by default, alternating). With `CTXT=1` set it prints, at the end,
//! each thread's voluntary and involuntary context switches (this process and its workers).
use std::time::Instant;

use futurepool_procs::ProcessPool;

fn noop(x: u64) -> u64 {
    x
}
futurepool_procs::register!(noop);

fn main() {
    futurepool_procs::init();
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let mode = args.next().unwrap_or_default();
    let pool = ProcessPool::new(2).unwrap();
    let warm: Vec<_> = (0..2).map(|i| pool.submit(noop, i).unwrap()).collect();
    warm.iter().for_each(|f| {
        f.result().unwrap();
    });
    for _ in 0..rounds {
        let t = Instant::now();
        for i in 0..n {
            if mode != "apply" {
                assert_eq!(*pool.submit(noop, i).unwrap().result().unwrap(), i);
            }
        }
        let submit = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        let t = Instant::now();
        for i in 0..n {
            if mode != "submit" {
                assert_eq!(pool.apply(noop, i), Ok(i));
            }
        }
        let apply = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("submit→result {submit:.2} µs, apply {apply:.2} µs");
    }
    if std::env::var_os("CTXT").is_some() {
        let mut pids = pool.worker_pids();
        pids.push(std::process::id());
        for pid in pids {
            for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
                let path = task.unwrap().path();
                let status = std::fs::read_to_string(path.join("status")).unwrap();
                let comm = std::fs::read_to_string(path.join("comm")).unwrap();
                let pick = |k: &str| {
                    status
                        .lines()
                        .find(|l| l.starts_with(k))
                        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
                        .unwrap_or_default()
                };
                println!(
                    "{pid} {} vol {} invol {}",
                    comm.trim(),
                    pick("voluntary_ctxt_switches"),
                    pick("nonvoluntary_ctxt_switches")
                );
            }
        }
    }
}
