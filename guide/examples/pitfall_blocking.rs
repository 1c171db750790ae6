//! Guide: "Pitfall 2: Blocking the Main Thread" — use a timeout, or `as_completed` with one.
use std::thread;

use futurepool_guide::guide_seconds;
use futurepool_threads::{as_completed, FutureError, ThreadPool};

// The guide's task takes 5 s and the wait gives up after 2 s; here the task takes 30 guide
// seconds and the `as_completed` deadline is 10, so that the quick task is done in time and the
// long one is not, however loaded the machine (the lesson's outcome is the same).
fn very_long_task() -> &'static str {
    thread::sleep(guide_seconds(30.0));
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
    for done in as_completed([future.clone(), quick], Some(guide_seconds(10.0))) {
        match done {
            Ok(f) => println!("Finished in time: {}", f.result().unwrap()),
            Err(e) => println!("Gave up waiting: {e}"),
        }
    }
}
