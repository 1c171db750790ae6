//! Guide: "Understanding the Global Interpreter Lock (GIL) Impact" — CPU-bound work on threads
//! and on processes. Rust has no GIL: threads run CPU-bound code in parallel too, so both take
//! about the same time; processes add isolation, not speed.
use std::time::Instant;

use futurepool_procs::{MapOptions, ProcessPool};
use futurepool_threads::ThreadPool;

fn cpu_bound_task(n: u64) -> u64 {
    let mut total = 0u64;
    for i in 0..n {
        total = total.wrapping_add(std::hint::black_box(i) * i);
    }
    total
}

futurepool_procs::register!(cpu_bound_task);

fn main() {
    futurepool_procs::init();
    let numbers = vec![50_000_000u64; 4];

    println!("CPU-bound with threads:");
    let start = Instant::now();
    let threads = ThreadPool::new(4).unwrap();
    let a: Vec<u64> = threads
        .map(cpu_bound_task, numbers.clone(), MapOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let thread_time = start.elapsed().as_secs_f64();

    println!("CPU-bound with processes:");
    let start = Instant::now();
    let procs = ProcessPool::new(4).unwrap();
    let b: Vec<u64> = procs
        .map(cpu_bound_task, numbers, MapOptions::new())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let process_time = start.elapsed().as_secs_f64();

    assert_eq!(a, b);
    println!("Threads: {thread_time:.2}s, Processes: {process_time:.2}s");
}
