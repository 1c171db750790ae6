//! futurepool-threads: Python's `ThreadPoolExecutor` for Rust.
//!
//! Re-exports the whole core API ([`Future`], [`wait`], [`as_completed`], …), so this crate is
//! the only dependency a user needs.
//!
//! ```
//! use futurepool_threads::{as_completed, ThreadPool};
//!
//! let pool = ThreadPool::new(4).unwrap();
//! let futures: Vec<_> = (1..=5u64).map(|n| pool.submit(move || n * n).unwrap()).collect();
//! let mut squares: Vec<u64> =
//!     as_completed(futures, None).map(|f| *f.unwrap().result().unwrap()).collect();
//! squares.sort();
//! assert_eq!(squares, [1, 4, 9, 16, 25]);
//! ```

mod pool;
mod scope;
mod task;

pub use futurepool_core::*;

pub use crate::pool::{default_workers, BuildError, Builder, Stats, ThreadPool};
pub use crate::scope::Scope;

#[cfg(all(test, futurepool_loom))]
mod loom_tests;
