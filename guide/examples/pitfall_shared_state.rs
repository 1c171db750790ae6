//! Guide: "Pitfall 1: Shared State in Threads". The racy version (`counter += 1` from several
//! threads) does not compile in Rust — see the `compile_fail` doc test in `src/lib.rs`. These
//! are the two versions that do: a `Mutex`, and an atomic.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use futurepool_threads::ThreadPool;

fn main() {
    let pool = ThreadPool::new(4).unwrap();

    let counter = Mutex::new(0u64);
    pool.scope(|s| {
        for _ in 0..4 {
            s.submit(|| {
                for _ in 0..100_000 {
                    *counter.lock().unwrap() += 1; // with lock: counter += 1
                }
            })
            .unwrap();
        }
    });
    println!("Mutex counter: {}", counter.into_inner().unwrap());

    let counter = AtomicU64::new(0);
    pool.scope(|s| {
        for _ in 0..4 {
            s.submit(|| {
                for _ in 0..100_000 {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap();
        }
    });
    println!("Atomic counter: {}", counter.into_inner());
}
