//! Guide: "Timeouts: Preventing Indefinite Waits" — `result(timeout)`; the task keeps running.
use std::thread;

use futurepool_guide::guide_seconds;
use futurepool_threads::{FutureError, ThreadPool};

fn slow_task(delay: f64) -> String {
    thread::sleep(guide_seconds(delay));
    format!("Completed after {delay} seconds")
}

fn main() {
    let pool = ThreadPool::with_default_workers();
    let future = pool.submit(|| slow_task(5.0)).unwrap();
    match future.result_timeout(guide_seconds(3.0)) {
        Ok(result) => println!("Result: {result}"),
        Err(FutureError::TimedOut) => {
            println!("Task took too long, continuing with other work");
        }
        Err(e) => println!("Task failed: {e}"),
    }
    // As in Python the task was not cancelled: it still finishes.
    println!("Later: {}", future.result().unwrap());
}
