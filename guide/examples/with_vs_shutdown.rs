//! Guide: "Context Manager Benefits" — manual `shutdown` versus the scope-based cleanup Rust
//! gives for free: dropping the pool is Python's `with` exit (shut down and wait).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futurepool_threads::{Shutdown, ThreadPool};

fn main() {
    let done = Arc::new(AtomicUsize::new(0));

    // Manual cleanup (Python: try/finally executor.shutdown(wait=True)).
    let pool = ThreadPool::new(4).unwrap();
    for _ in 0..8 {
        let d = done.clone();
        pool.submit(move || d.fetch_add(1, Ordering::SeqCst))
            .unwrap();
    }
    pool.shutdown(Shutdown::new());
    println!(
        "Manual shutdown: {} tasks done, {} threads left",
        done.load(Ordering::SeqCst),
        pool.stats().live_threads
    );
    println!("Submit after shutdown: {}", pool.submit(|| ()).unwrap_err());

    // Automatic cleanup (Python: `with ThreadPoolExecutor(...) as executor:`).
    {
        let pool = ThreadPool::new(4).unwrap();
        for _ in 0..8 {
            let d = done.clone();
            pool.submit(move || d.fetch_add(1, Ordering::SeqCst))
                .unwrap();
        }
    } // <- the pool is dropped here: it shuts down and waits, even on an early return or panic
    println!("Scope exit: {} tasks done", done.load(Ordering::SeqCst));
}
