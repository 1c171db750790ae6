//! Python's `concurrent.futures` model for Rust: the [`Future`] state machine, [`wait`],
//! [`as_completed`] and the [`Executor`] trait. Backends (`futurepool-threads`,
//! `futurepool-procs`) re-export all of it.
//!
//! This crate does no I/O and knows no backend. All its synchronization goes through a sync
//! facade (the hidden `loom` module, not public API) that `--cfg futurepool_loom` swaps for the
//! loom model checker.
//!
//! ```
//! use futurepool_core::{as_completed, Future};
//! use std::thread;
//!
//! let (future, promise) = Future::<u64>::pending();
//! future.add_done_callback(|f| println!("done: {:?}", f.result()));
//! let worker = thread::spawn(move || promise.run(|| Ok((1..=10u64).map(|i| i * i).sum())));
//! assert_eq!(future.result(), Ok(&385));
//! worker.join().unwrap();
//! for done in as_completed([future], None) {
//!     assert_eq!(done.unwrap().into_result(), Ok(385));
//! }
//! ```

#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod as_completed;
mod body;
mod bridge;
mod error;
mod executor;
mod future;
/// The sync facade the backends share (std or loom by cfg). Not public API: hidden, and its
/// types change under `--cfg futurepool_loom`.
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub)]
pub mod loom;
mod time;
mod wait;
mod waitable;
mod waiter;

pub use crate::as_completed::{as_completed, AsCompleted};
#[cfg(feature = "stream")]
pub use crate::as_completed::{as_completed_stream, AsCompletedStream};
pub use crate::bridge::{Awaiting, DoneAsync};
pub use crate::error::{FutureError, InvalidStateError, Panic, SubmitError, TimeoutError};
pub use crate::executor::{
    fallible_job, job, Executor, FallibleJob, FnJob, Job, Map, MapOptions, OptionsError, Shutdown,
    Submit,
};
pub use crate::future::{DeferredCallbacks, Future, Help, Outcome, Promise, TaskRef};
pub use crate::wait::{wait, ReturnWhen, Waited};
pub use crate::waitable::{AnyFuture, Waitable};

#[cfg(all(test, futurepool_loom))]
mod loom_tests;
#[cfg(all(test, not(futurepool_loom)))]
mod tests;

/// The crate README's example is compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
