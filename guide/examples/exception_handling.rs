//! Guide: "Exception Handling in Concurrent Execution" — `risky_task`. The error is the task's
//! own type, `Raised(e)` in the future; a panic would arrive as `Panicked`.
use std::thread;

use futurepool_guide::guide_seconds;
use futurepool_threads::{FutureError, ThreadPool};

fn risky_task(n: u32) -> Result<u32, String> {
    thread::sleep(guide_seconds(1.0));
    if n == 2 {
        return Err(format!("Number {n} is not allowed!"));
    }
    Ok(n * n)
}

fn main() {
    let pool = ThreadPool::with_default_workers();
    let futures: Vec<_> = (0..4)
        .map(|i| pool.submit_fallible(move || risky_task(i)).unwrap())
        .collect();
    for (i, future) in futures.iter().enumerate() {
        match future.result() {
            Ok(result) => println!("Task {i} result: {result}"),
            Err(FutureError::Raised(e)) => println!("Task {i} failed: {e}"),
            Err(other) => println!("Task {i} failed: {other}"),
        }
    }
}
