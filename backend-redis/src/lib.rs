//! futurepool-redis: the same `Future`/`Executor` API across many machines, on Redis Streams.
//!
//! A [`RedisPool`] submits registered functions (the ones `futurepool_procs::register!` names)
//! to a queue; agents — the same program in worker mode, on any number of machines — claim
//! tasks as they have free slots and run each in a local [`futurepool_procs::ProcessPool`], so
//! a crash, hang or kill is that task's reported result. Re-exports the core API, so this crate
//! and `futurepool-procs` are all a program needs.
//!
//! ```no_run
//! use futurepool_redis::{AgentOptions, RedisPool};
//!
//! fn square(x: u64) -> u64 { x * x }
//! futurepool_procs::register!(square);
//!
//! fn main() {
//!     futurepool_procs::init(); // the agents' worker processes stop here
//!     let url = "redis://127.0.0.1/";
//!     if std::env::args().nth(1).as_deref() == Some("agent") {
//!         let _ = futurepool_redis::serve(url, AgentOptions::new()); // one agent per machine
//!         std::process::exit(1);
//!     }
//!     let pool = RedisPool::connect(url).unwrap();
//!     assert_eq!(pool.submit(square, 12).unwrap().result(), Ok(&144));
//! }
//! ```
//!
//! # Semantics
//!
//! At-least-once delivery tied to agent liveness: a task whose agent vanishes is reclaimed by
//! another agent after the agents' lease, and fails with [`FutureError::WorkerLost`] after
//! `max_attempts` deliveries. The first result wins. `cancel()` on a queued task asks Redis
//! and removes it from the queue: `true` means no agent ever runs it. `submit` returns without
//! waiting for Redis (a sender thread pipelines what was submitted meanwhile).
//!
//! # Security
//!
//! Anyone who can write a queue's task stream can call any registered function with any
//! arguments on every agent: give that right only to trusted clients. Use an ACL user per
//! role with the rights of [`CLIENT_ACL`] and [`AGENT_ACL`] on the queue's keys (`fp:{q}:*`),
//! and `rediss://` (TLS) across untrusted networks.

#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod agent;
mod client;
mod keys;
mod limits;
mod link;
mod rights;
mod scripts;
mod server;
mod time;
mod wire;
#[cfg(test)]
mod wire_fuzz;

pub use futurepool_core::{
    as_completed, fallible_job, job, wait, AnyFuture, AsCompleted, Awaiting, DoneAsync, Executor,
    FallibleJob, FnJob, Future, FutureError, InvalidStateError, Job, Map, MapOptions, OptionsError,
    Outcome, Panic, Promise, ReturnWhen, Shutdown, Submit, SubmitError, TimeoutError, Waitable,
    Waited,
};
/// `as_completed` as a `futures_core::Stream` (feature `stream`).
#[cfg(feature = "stream")]
pub use futurepool_core::{as_completed_stream, AsCompletedStream};
pub use futurepool_procs::{remote, Remote};

pub use crate::agent::{serve, Agent, AgentError, AgentOptions};
pub use crate::client::{Builder, ConnectError, RedisPool, RemoteMap, WithTaskTimeout};
// Kept at the root for existing callers; not part of the documented API (see `test_support`).
#[doc(hidden)]
pub use crate::server::{LocalServer, SERVER_ENV};

pub mod test_support {
    //! For tests, examples and development, not for production: [`LocalServer`] starts a
    //! private `redis-server` (or the program named in [`SERVER_ENV`], such as Valkey's
    //! `valkey-server`) on a Unix socket in its own temporary directory, and stops it on drop.
    //! `pool bench --cluster` and this crate's own tests and examples use it.

    pub use crate::server::{LocalServer, SERVER_ENV};
}
pub use crate::wire::Delivery;

/// The crate README's example is compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The Redis ACL rights a client needs (commands only: add `on`, a password and the queue's
/// key pattern `~fp:{<queue>}:*`), as in
/// `ACL SETUSER app on >secret ~fp:{default}:* <CLIENT_ACL>`. Scripts run with the caller's
/// rights, so the commands they use are listed too.
pub const CLIENT_ACL: &str = "+ping +exists +pexpire +pttl +xadd +xread +xdel +xrange +xlen \
     +xpending +set +getdel +del +hget +hexists +evalsha +script|load";

/// The Redis ACL rights an agent needs (commands only), as for [`CLIENT_ACL`].
pub const AGENT_ACL: &str = "+ping +xgroup|create +xgroup|delconsumer +xinfo|consumers \
     +xreadgroup +xautoclaim +xclaim +xack +xdel +xadd +xread +xpending +exists +pexpire +get \
     +set +del +hset +hget +hdel +evalsha +script|load";
