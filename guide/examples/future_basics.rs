//! Guide: "The Future Object" — `submit`, `done()`, `result()`.
use std::thread;

use futurepool_guide::guide_seconds;
use futurepool_threads::ThreadPool;

fn slow_function(seconds: u32) -> String {
    thread::sleep(guide_seconds(seconds as f64));
    format!("Slept for {seconds} seconds")
}

fn main() {
    let pool = ThreadPool::with_default_workers();
    let future1 = pool.submit(|| slow_function(2)).unwrap();
    let future2 = pool.submit(|| slow_function(3)).unwrap();
    let future3 = pool.submit(|| slow_function(1)).unwrap();

    println!("Tasks submitted, continuing other work...");
    println!("Future1 done: {}", future1.done());
    println!("Future2 done: {}", future2.done());

    println!("Result 1: {}", future1.result().unwrap());
    println!("Result 2: {}", future2.result().unwrap());
    println!("Result 3: {}", future3.result().unwrap());
}
