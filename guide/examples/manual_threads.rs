//! Guide: "The Problem with Traditional Python Threading" — manual threads, then the same work
//! handed to an executor.
use std::thread;

use futurepool_guide::guide_seconds;
use futurepool_threads::ThreadPool;

fn worker_task(name: usize, duration: f64) -> usize {
    println!("Worker {name} starting");
    thread::sleep(guide_seconds(duration));
    println!("Worker {name} finished");
    name
}

fn main() {
    println!("-- manual threads: start, keep handles, join each");
    let threads: Vec<_> = (0..3)
        .map(|i| thread::spawn(move || worker_task(i, 2.0)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    println!("-- an executor: submit, and the pool manages the threads (and return values)");
    let pool = ThreadPool::new(3).unwrap();
    let futures: Vec<_> = (0..3)
        .map(|i| pool.submit(move || worker_task(i, 2.0)).unwrap())
        .collect();
    let names: Vec<usize> = futures.iter().map(|f| *f.result().unwrap()).collect();
    println!("Return values: {names:?}");
}
