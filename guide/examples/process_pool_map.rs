//! Guide: "ProcessPoolExecutor: For CPU-Bound Tasks" — `map` over CPU-bound work in worker
//! processes. The function is registered by name; `init()` is the `__main__` guard.
use futurepool_procs::{MapOptions, ProcessPool};

fn cpu_intensive_task(n: u64) -> u64 {
    println!("Processing {n}");
    let result = (0..n).map(|i| i * i).sum();
    println!("Finished processing {n}");
    result
}

futurepool_procs::register!(cpu_intensive_task);

fn main() {
    futurepool_procs::init();
    let numbers = vec![100_000u64, 200_000, 150_000, 300_000];
    let pool = ProcessPool::new(2).unwrap();
    let results: Vec<u64> = pool
        .map(cpu_intensive_task, numbers, MapOptions::new())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    println!("Results: {results:?}");
}
