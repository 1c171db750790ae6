//! futurepool: ThreadPoolExecutor (filled by the thread-pool issue).
//!
//! Re-exports the whole core API, so this crate is the only dependency a user needs.

pub use futurepool_core::*;
