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
//! waiting for Redis (a sender thread pipelines what was submitted meanwhile). The README's "Across machines" section has the details, the security model
//! and the least-privilege ACL.

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
pub use futurepool_procs::{remote, Remote};

pub use crate::agent::{serve, Agent, AgentError, AgentOptions};
pub use crate::client::{Builder, ConnectError, RedisPool, RemoteMap, WithTaskTimeout};
pub use crate::server::{LocalServer, SERVER_ENV};
pub use crate::wire::Delivery;

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
