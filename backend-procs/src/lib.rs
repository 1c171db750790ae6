//! futurepool-procs: Python's `ProcessPoolExecutor` for Rust, with worker processes that
//! survive crashes and tasks that can be timed out for real.
//!
//! Re-exports the whole core API, so this crate is the only dependency a user needs.
//!
//! # Setting up a program
//!
//! Workers are the program itself, re-run in worker mode (spawn semantics: the parent is never
//! forked). Two lines make that work:
//!
//! ```
//! fn square(x: u64) -> u64 { x * x }
//! futurepool_procs::register!(square);      // 1. name the functions workers may run
//!
//! fn main() {
//!     futurepool_procs::init();             // 2. first line of main: a worker stops here
//!     let pool = futurepool_procs::ProcessPool::new(2).unwrap();
//!     let future = pool.submit(square, 12).unwrap();
//!     assert_eq!(future.result(), Ok(&144));
//! }
//! ```
//!
//! In an integration test (libtest harness), put [`test_worker!`] at the top level of the test
//! file instead of calling `init()`.
//!
//! # What a worker failure does
//!
//! A worker that segfaults, aborts, exits or is killed fails only the task it was running, with
//! [`FutureError::WorkerLost`] naming the exit code or signal; the pool starts a new worker for
//! the next task. A task past its timeout ([`Builder::task_timeout`],
//! [`ProcessPool::with_task_timeout`], [`MapOptions::task_timeout`]) has its worker killed and
//! fails with [`FutureError::TimedOut`]. [`Builder::break_on_worker_death`] restores CPython's
//! "one death breaks the pool". Workers die with their parent, however it ends.
//!
//! # Platforms
//!
//! Linux only: workers are started with `fork`/`exec`, talk over a `socketpair`, and are
//! watched through their pidfd (Linux 5.3 and later; older kernels fall back to checking the
//! child every 20 ms). On any other target the crate stops with one `compile_error!` naming
//! the platform.

#![warn(missing_docs)]
#![deny(unreachable_pub)]

// Linux only: workers are watched through pidfds, which other systems do not have. Elsewhere
// the crate is this one error (the rest is cfg'd out, so no unresolved import follows it).
#[cfg(not(target_os = "linux"))]
macro_rules! linux_only {
    ($platform:literal) => {
        compile_error!(concat!(
            "futurepool-procs runs on Linux only (it watches its worker processes through Linux \
             pidfds), not on ",
            $platform,
            "; use futurepool-threads there"
        ));
    };
}
#[cfg(target_os = "macos")]
linux_only!("macOS");
#[cfg(target_os = "windows")]
linux_only!("Windows");
#[cfg(target_os = "freebsd")]
linux_only!("FreeBSD");
#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "windows",
    target_os = "freebsd"
)))]
linux_only!("this target's operating system");

#[cfg(target_os = "linux")]
mod builder;
#[cfg(target_os = "linux")]
mod cancel;
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub mod codec;
#[cfg(target_os = "linux")]
mod dispatch;
#[cfg(target_os = "linux")]
mod hold;
#[cfg(target_os = "linux")]
mod manager;
#[cfg(target_os = "linux")]
mod map;
#[cfg(target_os = "linux")]
mod pace;
#[cfg(target_os = "linux")]
mod pool;
#[cfg(target_os = "linux")]
mod process;
#[cfg(target_os = "linux")]
mod registry;
#[cfg(target_os = "linux")]
mod remote;
#[cfg(target_os = "linux")]
mod wire;
#[cfg(target_os = "linux")]
mod worker;
#[cfg(target_os = "linux")]
mod workers;

pub use futurepool_core::{
    as_completed, fallible_job, job, wait, AnyFuture, AsCompleted, Awaiting, DoneAsync, Executor,
    FallibleJob, FnJob, Future, FutureError, InvalidStateError, Job, Map, MapOptions, OptionsError,
    Outcome, Panic, Promise, ReturnWhen, Shutdown, Submit, SubmitError, TimeoutError, Waitable,
    Waited,
};
/// `as_completed` as a `futures_core::Stream` (feature `stream`).
#[cfg(feature = "stream")]
pub use futurepool_core::{as_completed_stream, AsCompletedStream};

#[cfg(target_os = "linux")]
pub use crate::builder::{BuildError, Builder};
#[cfg(target_os = "linux")]
pub use crate::map::ChunkedMap;
#[cfg(target_os = "linux")]
pub use crate::pool::{ProcessPool, Stats, WithTaskTimeout};
#[cfg(target_os = "linux")]
pub use crate::remote::{remote, Remote};

#[cfg(target_os = "linux")]
/// Turns this process into a worker if its parent pool started it as one — serving tasks until
/// the pool lets it go, then exiting — and otherwise returns at once. Call it first thing in
/// `main`, before anything looks at the arguments (Python's `if __name__ == "__main__":`).
///
/// A process becomes a worker only with the one-time token its parent put in its environment
/// and only if that parent is listening: a stray environment variable makes it exit with an
/// error instead.
pub fn init() {
    worker::maybe_run();
}

/// For integration tests under the libtest harness: defines the test that a re-run test binary
/// becomes a worker in. Put it once at the top level of each test file that uses a
/// [`ProcessPool`] (outside worker mode the test does nothing).
#[macro_export]
macro_rules! test_worker {
    () => {
        #[test]
        fn __futurepool_worker() {
            $crate::init();
        }
    };
}

#[cfg(target_os = "linux")]
#[doc(hidden)]
pub mod __private {
    pub use crate::codec;
    pub use crate::registry::{
        call, fingerprint, name_of, signature, signature_of, Entry, Signature,
    };
    pub use inventory;
}

/// The crate README's example is compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// What the pool promises to other threads, checked at compile time: a pool, its builder, its
// map iterator's errors and its snapshots can be shared and sent (a pool is commonly put in an
// `Arc` or a `static` and submitted to from many threads).
#[cfg(target_os = "linux")]
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<ProcessPool>();
    send_sync::<Builder>();
    send_sync::<BuildError>();
    send_sync::<Stats>();
    send_sync::<WithTaskTimeout<'static>>();
};
