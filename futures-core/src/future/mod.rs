//! [`Future`] and its completing side, [`Promise`]: the state machine everything else waits on.
//!
//! # States
//!
//! Every transition that exists, and who makes it:
//!
//! ```text
//!              Promise::set_running_or_notify_cancel (CAS)
//!   PENDING ───────────────────────────────────────────────▶ RUNNING
//!    │  │                                                      │   │
//!    │  │ finish: Promise::set_result / set_exception /        │   │ finish: the same
//!    │  │ set_outcome, or the last Promise dropped (Broken)    │   │
//!    │  └─────────────▶ COMPLETING ──▶ FINISHED ◀──────────────┘   │
//!    │                  (the cell is written)                      │
//!    │ cancel_pending: Future::cancel, or                          │ cancel_running: the executor
//!    │ Promise::set_outcome(Err(Cancelled))                        │ stopped the task on request
//!    └─────────────────────────────▶ CANCELLED ◀───────────────────┘ (a cancel hook, e.g. the
//!                                                                    process pool's
//!                                                                    cancel_kills_running), via
//!                                                                    set_outcome(Err(Cancelled))
//! ```
//!
//! FINISHED and CANCELLED are final: nothing leaves them. Every transition is one atomic
//! read-modify-write of the state word, and none takes a lock: a future nobody waits on is
//! completed without one. `finish` first claims the outcome cell (PENDING or RUNNING →
//! COMPLETING: only one completion can win the claim, and neither cancel step starts from
//! COMPLETING), writes it, then publishes it (COMPLETING → FINISHED). COMPLETING reads as
//! "running" and not done.
//!
//! # Waiters
//!
//! Everything that waits — a thread asleep in `result()`, a `wait`/`as_completed` queue, an async
//! waker, a done-callback, a cancel hook or arbiter — lives in the future's *slow part*
//! ([`Slow`]: a lock, the waiter list, a condition variable), allocated the first time somebody
//! waits. A waiter
//! registers under that lock and, still under it, sets the state word's `WAITERS` bit with a
//! read-modify-write that also reads the state: if the state was already final, it does not
//! register. A move to a final state that finds `WAITERS` set takes the lock and notifies every
//! waiter. Both are read-modify-writes of one word, so one comes first: either the waiter sees
//! the final state, or the completion sees the bit — and then takes the lock only after the
//! waiter, which holds it from its bit to its registration (or its sleep), is done: no
//! registration is missed and no wake-up is lost.
//!
//! # The outcome cell
//!
//! A finished future's outcome lives in a write-once cell that is read without a lock, so
//! `result()` on a finished future is one atomic load and a pointer. The protocol:
//!
//! * written exactly once, by the completion that claimed it (COMPLETING), *before* the state
//!   becomes FINISHED with `Release`;
//! * read only after loading FINISHED with `Acquire`, which makes the write visible, and never
//!   written again while a reader may exist;
//! * moved out (by [`Future::try_into_result`]) only by the last [`Future`] handle, once the state
//!   is final: a [`Promise`] never reads the cell, and every other reader holds a `Future` handle
//!   (done-callbacks are lent a handle, counted when the first callback registers), so none can
//!   exist.

use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::body::Body;
use crate::error::{FutureError, InvalidStateError, Panic};
use crate::loom::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use crate::loom::{Arc, Condvar, Mutex, MutexGuard, UnsafeCell};
use crate::waiter::{Entry, Queue, Waiters};

/// Not started; may be cancelled.
const PENDING: u8 = 0;
/// Taken by a worker (`set_running_or_notify_cancel` returned `true`): `cancel()` no longer
/// cancels it, unless its executor installed a cancel hook ([`Promise::set_cancel_hook`]).
const RUNNING: u8 = 1;
/// A completion claimed the outcome cell and is writing it; FINISHED comes next.
const COMPLETING: u8 = 2;
/// Final: the outcome cell holds the result.
const FINISHED: u8 = 4;
/// Final: cancelled before it ran. The outcome cell stays empty.
const CANCELLED: u8 = 5;
/// The bits of the state word that hold one of the states above.
const PHASE: u8 = 0b111;
/// Flag in the state word: somebody registered in the slow part (see the module docs), so the
/// move to a final state must take its lock and notify.
const WAITERS: u8 = 0b1000;
/// Flag in the state word, set at creation and never cleared: the future has a helper (see
/// [`Future::pending_with_helper`]).
const HELPER: u8 = 0b1_0000;
/// Flag in the state word: a waiter claimed the future's helper; set once, by the one thread
/// that then takes it.
const HELPED: u8 = 0b10_0000;

fn is_final(phase: u8) -> bool {
    phase >= FINISHED
}

fn state_name(phase: u8) -> &'static str {
    match phase {
        PENDING => "pending",
        RUNNING | COMPLETING => "running",
        FINISHED => "finished",
        _ => "cancelled",
    }
}

/// A future's outcome taken by value: the value or why there is none. What a finished future
/// holds, and what [`Future::into_result`] and `.await` give.
pub type Outcome<T, E = std::convert::Infallible> = Result<T, FutureError<E>>;

type Callback<T, E> = Box<dyn FnOnce(&Future<T, E>) + Send>;

/// What the first interest in a pending future runs (see [`Future::pending_with_helper`]).
type Helper = Box<dyn FnOnce(Help) + Send>;

/// Why a future's helper runs ([`Future::pending_with_helper`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Help {
    /// A thread is about to block until the future is done, without a timeout
    /// ([`Future::result`], [`Future::wait`], [`Future::try_into_result`]...): the helper may
    /// run the task right here, on that thread, and complete the future.
    Run,
    /// Somebody takes another interest in the future — a timed wait, a done-callback,
    /// `wait`/`as_completed`, an `.await`, a look at its state (`done()`, `running()`...), a
    /// cancel, or dropping its handles: the task should get going if it has not; the helper
    /// must not block.
    Nudge,
}

/// Where a completion hands its done-callbacks instead of running them
/// ([`Promise::set_outcome_deferring_callbacks`]); `None`: it runs them.
type Defer<'a, T, E> = Option<&'a mut dyn FnMut(DeferredCallbacks<T, E>)>;

mod deferred;
mod handle;
mod inner;
mod promise;
mod task_ref;

pub use deferred::DeferredCallbacks;
pub use handle::Future;
use inner::run_callback;
pub(crate) use inner::Inner;
pub use promise::Promise;
pub use task_ref::TaskRef;
