//! Guide: "as_completed(): Processing Results as They Finish" — random delays, results in
//! completion order.
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use futurepool_guide::guide_seconds;
use futurepool_threads::{as_completed, ThreadPool};

/// A uniform number in [1, 4) from a tiny xorshift generator seeded with `seed`.
fn random_delay(seed: u64) -> f64 {
    let mut x = seed | 1;
    for _ in 0..8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    1.0 + 3.0 * (x % 10_000) as f64 / 10_000.0
}

fn task_with_random_delay(task_id: u64, seed: u64) -> String {
    let delay = random_delay(seed ^ task_id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    thread::sleep(guide_seconds(delay));
    format!("Task {task_id} completed after {delay:.2} seconds")
}

fn main() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let pool = ThreadPool::new(3).unwrap();
    let futures: Vec<_> = (0..5)
        .map(|i| {
            pool.submit(move || task_with_random_delay(i, seed))
                .unwrap()
        })
        .collect();
    for future in as_completed(futures, None) {
        let future = future.unwrap();
        println!("Completed: {}", future.result().unwrap());
    }
}
