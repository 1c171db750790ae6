//! futurepool-threads: Python's `ThreadPoolExecutor` for Rust.
//!
//! Re-exports the core API ([`Future`], [`wait`], [`as_completed`], …), so this crate is the
//! only dependency a user needs.
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
//!
//! # What the compiler rejects
//!
//! A task runs on another thread, so its closure must be `Send`; an `Rc` is refused (an `Arc`
//! is fine):
//!
//! ```compile_fail,E0277
//! use std::rc::Rc;
//!
//! let pool = futurepool_threads::ThreadPool::new(1).unwrap();
//! let shared = Rc::new(5);
//! let future = pool.submit(move || *shared + 1).unwrap();
//! ```
//!
//! ```
//! use std::sync::Arc;
//!
//! let pool = futurepool_threads::ThreadPool::new(1).unwrap();
//! let shared = Arc::new(5);
//! assert_eq!(pool.submit(move || *shared + 1).unwrap().result(), Ok(&6));
//! ```
//!
//! A task of [`ThreadPool::submit`] may outlive the caller's stack frame, so it cannot borrow
//! from it; [`ThreadPool::scope`] tasks can borrow what outlives the scope, but not a value the
//! scope's own body creates and drops:
//!
//! ```compile_fail,E0373
//! let pool = futurepool_threads::ThreadPool::new(1).unwrap();
//! let local = vec![1, 2, 3];
//! let future = pool.submit(|| local.len()).unwrap();
//! ```
//!
//! ```compile_fail,E0597
//! let pool = futurepool_threads::ThreadPool::new(1).unwrap();
//! pool.scope(|s| {
//!     let inner = vec![1, 2, 3];
//!     s.submit(|| inner.len()).unwrap();
//! });
//! ```
//!
//! ```
//! let pool = futurepool_threads::ThreadPool::new(1).unwrap();
//! let outer = vec![1, 2, 3];
//! let len = pool.scope(|s| *s.submit(|| outer.len()).unwrap().result().unwrap());
//! assert_eq!(len, 3);
//! ```

#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod pool;
mod scope;
mod task;

// The core API by an explicit list (as rayon re-exports rayon-core), so an item added to the core
// is a decision here too, and the core's hidden sync facade is not re-exported.
pub use futurepool_core::{
    as_completed, fallible_job, job, wait, AnyFuture, AsCompleted, Awaiting, DoneAsync, Executor,
    FallibleJob, FnJob, Future, FutureError, InvalidStateError, Job, Map, MapOptions, OptionsError,
    Outcome, Panic, Promise, ReturnWhen, Shutdown, Submit, SubmitError, TimeoutError, Waitable,
    Waited,
};
/// `as_completed` as a `futures_core::Stream` (feature `stream`).
#[cfg(feature = "stream")]
pub use futurepool_core::{as_completed_stream, AsCompletedStream};

pub use crate::pool::{default_workers, BuildError, Builder, Stats, ThreadPool};
pub use crate::scope::Scope;

/// The crate README's example is compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(all(test, futurepool_loom))]
mod loom_tests;
