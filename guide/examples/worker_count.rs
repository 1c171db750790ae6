//! Guide: "Controlling Thread/Process Pool Size" — the default worker count and thread names.
use futurepool_threads::{default_workers, ThreadPool};

fn get_optimal_workers() -> usize {
    // For I/O-bound work, more threads than cores: CPython's min(32, cpu_count + 4).
    let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpu_count + 4).min(32)
}

fn main() {
    let workers = get_optimal_workers();
    assert_eq!(workers, default_workers());
    println!("Optimal workers: {workers}");
    let pool = ThreadPool::builder()
        .max_workers(workers)
        .thread_name_prefix("WebScraper")
        .build()
        .unwrap();
    let name = pool
        .submit(|| std::thread::current().name().map(String::from))
        .unwrap();
    println!(
        "Task ran on thread {}",
        name.result().unwrap().as_deref().unwrap_or("?")
    );
    println!("Pool: {:?}", pool.stats());
}
