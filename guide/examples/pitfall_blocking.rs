//! Guide: "Pitfall 2: Blocking the Main Thread" — use a timeout, or `as_completed` with one.
use std::thread;

use futurepool_guide::guide_seconds;
use futurepool_threads::{as_completed, FutureError, ThreadPool};

fn very_long_task() -> &'static str {
    thread::sleep(guide_seconds(5.0));
    "finally done"
}

fn main() {
    let pool = ThreadPool::with_default_workers();
    let future = pool.submit(very_long_task).unwrap();
    match future.result_timeout(guide_seconds(1.0)) {
        Ok(result) => println!("Result: {result}"),
        Err(FutureError::TimedOut) => println!("Task taking too long, continuing..."),
        Err(e) => println!("Task failed: {e}"),
    }

    let quick = pool.submit(|| "quick").unwrap();
    for done in as_completed([future.clone(), quick], Some(guide_seconds(2.0))) {
        match done {
            Ok(f) => println!("Finished in time: {}", f.result().unwrap()),
            Err(e) => println!("Gave up waiting: {e}"),
        }
    }
}
