//! Guide: "Pitfall 3: Not Handling Exceptions Properly" — a failure is only seen if the result
//! is read. (Rust helps: an unread `Result` from `submit` is a warning.)
use futurepool_threads::ThreadPool;

fn risky_task(n: u32) -> Result<u32, String> {
    if n % 3 == 2 {
        Err(format!("Number {n} is not allowed!"))
    } else {
        Ok(n * n)
    }
}

fn main() {
    let pool = ThreadPool::with_default_workers();

    // Problem: submitted and never read — the failures go unnoticed.
    let _ignored: Vec<_> = (0..10)
        .map(|i| pool.submit_fallible(move || risky_task(i)))
        .collect();

    // Solution: always read the results.
    let futures: Vec<_> = (0..10)
        .map(|i| pool.submit_fallible(move || risky_task(i)).unwrap())
        .collect();
    let mut failed = 0;
    for (i, future) in futures.iter().enumerate() {
        if let Err(e) = future.result() {
            println!("Task {i} failed: {e}");
            failed += 1;
        }
    }
    println!("{failed} of {} tasks failed", futures.len());
}
