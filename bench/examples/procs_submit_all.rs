//! Submit-all on the process pool in a loop, for `perf`: `procs_submit_all [tasks] [rounds]`.
use std::time::Instant;

use futurepool_procs::ProcessPool;

fn noop(_: ()) {}
futurepool_procs::register!(noop);

fn main() {
    futurepool_procs::init();
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let pool = ProcessPool::new(2).unwrap();
    for _ in 0..rounds {
        let t = Instant::now();
        let futures: Vec<_> = (0..n).map(|_| pool.submit(noop, ()).unwrap()).collect();
        for f in &futures {
            f.result().unwrap();
        }
        let per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("{per:.2} µs/task ({:.0}/s)", 1e6 / per);
    }
}
