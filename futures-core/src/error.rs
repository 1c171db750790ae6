//! Errors: what a future can end in, and what an operation on it can fail with.
//!
//! One type per operation, crossbeam-style: [`FutureError`] is what reading a future's result
//! gives (the task's own typed error, a panic, cancellation, a timed-out wait, a broken or shut
//! down executor); [`InvalidStateError`] is a second completion, with the rejected value given
//! back; [`TimeoutError`] is what `as_completed` yields past its deadline.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A panic caught in a task, with its message (and, where the backend knows it, its location).
///
/// Cheap to clone: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Panic(Arc<PanicInfo>);

/// One allocation for both strings keeps `Panic` (and so every future's outcome slot) one
/// pointer wide.
#[derive(PartialEq, Eq, Hash)]
struct PanicInfo {
    message: Box<str>,
    location: Option<Box<str>>,
}

impl Panic {
    /// A panic with this message and no known location.
    pub fn new(message: impl Into<Box<str>>) -> Panic {
        Panic(Arc::new(PanicInfo {
            message: message.into(),
            location: None,
        }))
    }

    /// A panic with this message, raised at `location` (`file:line:column`).
    pub fn with_location(message: impl Into<Box<str>>, location: impl Into<Box<str>>) -> Panic {
        Panic(Arc::new(PanicInfo {
            message: message.into(),
            location: Some(location.into()),
        }))
    }

    /// Turns the payload of [`std::panic::catch_unwind`] into a `Panic`, keeping the message of
    /// `panic!("...")` (a `&str` or `String` payload) and naming the type of anything else.
    pub fn from_payload(payload: Box<dyn Any + Send>) -> Panic {
        let message: Box<str> = match payload.downcast::<String>() {
            Ok(s) => (*s).into(),
            Err(payload) => match payload.downcast::<&'static str>() {
                Ok(s) => (*s).into(),
                Err(_) => "Box<dyn Any> (a panic payload that is not a string)".into(),
            },
        };
        Panic::new(message)
    }

    /// The panic message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Where the panic was raised, when the backend captured it.
    pub fn location(&self) -> Option<&str> {
        self.0.location.as_deref()
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.message)?;
        if let Some(location) = &self.0.location {
            write!(f, " (at {location})")?;
        }
        Ok(())
    }
}

/// Why a future has no value: everything `result()` can fail with.
///
/// `E` is the task's own error type; reading a result by reference gives `FutureError<&E>`,
/// taking it by value gives `FutureError<E>`. Python raises the task's exception from
/// `result()`; here it arrives as [`FutureError::Raised`], typed, with no downcasting.
///
/// ```
/// use std::time::Duration;
/// use futurepool_core::{Future, FutureError};
///
/// let (future, promise) = Future::<u32, &str>::pending();
/// assert_eq!(future.result_timeout(Duration::ZERO), Err(FutureError::TimedOut));
/// promise.run(|| Err("no such user"));
/// match future.result() {
///     Ok(value) => println!("got {value}"),
///     Err(FutureError::Raised(e)) => assert_eq!(*e, "no such user"), // the task's own error
///     Err(FutureError::Panicked(panic)) => println!("panicked: {}", panic.message()),
///     Err(other) => println!("{other}"), // cancelled, a broken executor, …
/// }
///
/// let (future, promise) = Future::<u32>::pending();
/// promise.run(|| panic!("boom"));
/// assert!(matches!(future.result(), Err(FutureError::Panicked(p)) if p.message() == "boom"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FutureError<E> {
    /// The task returned `Err(e)`: Python's exception raised by the callable.
    Raised(E),
    /// The task panicked. Python has no separate case: a panic is an uncaught exception.
    Panicked(Panic),
    /// The future was cancelled (Python's `CancelledError`).
    Cancelled,
    /// A wait with a timeout ran out before the future finished (Python's `TimeoutError`). The
    /// future itself is unaffected and may still finish later.
    TimedOut,
    /// The executor broke before the task could finish (Python's `BrokenExecutor`): a failed
    /// initializer, a lost worker in a pool that breaks as a whole, or a completer that went
    /// away without completing. The text says which.
    Broken(Arc<str>),
    /// The worker process running the task died — crashed, exited, was killed — or was killed
    /// on purpose (a timed-out or cancelled running task). The text names the exit code or
    /// signal. Only this task fails; the pool replaces the worker. Python's process pool breaks
    /// as a whole here.
    WorkerLost(Arc<str>),
    /// The task's argument or result could not be serialized or deserialized on its way between
    /// processes. Only this task fails.
    Codec(Arc<str>),
    /// The executor was shut down and refused the task (Python's `RuntimeError('cannot schedule
    /// new futures after shutdown')`).
    ShutDown,
    /// The outcome was wanted by value (`.await` on a [`Future`](crate::Future)) while another
    /// handle to the same future is still alive, so it could not be moved out and the types are
    /// not `Clone`. The future is done and unaffected: read it by reference with
    /// [`result`](crate::Future::result) (after [`done_async`](crate::Future::done_async)), or
    /// drop the other handles first.
    Shared,
}

impl<E> FutureError<E> {
    /// `true` for the outcomes that count as "the task raised" for
    /// [`ReturnWhen::FirstException`](crate::ReturnWhen::FirstException): a returned error, a
    /// panic, and the executor-side failures Python also reports through `exception()` (a
    /// broken executor, a lost worker, a serialization failure). Not cancellation, a timed-out
    /// wait or a refused submission.
    pub fn is_raised(&self) -> bool {
        matches!(
            self,
            FutureError::Raised(_)
                | FutureError::Panicked(_)
                | FutureError::Broken(_)
                | FutureError::WorkerLost(_)
                | FutureError::Codec(_)
        )
    }

    /// The task's own error, if that is what this is.
    pub fn raised(self) -> Option<E> {
        match self {
            FutureError::Raised(e) => Some(e),
            _ => None,
        }
    }

    /// Applies `f` to the task's error, leaving every other case as it is.
    pub fn map_raised<F>(self, f: impl FnOnce(E) -> F) -> FutureError<F> {
        match self {
            FutureError::Raised(e) => FutureError::Raised(f(e)),
            FutureError::Panicked(p) => FutureError::Panicked(p),
            FutureError::Cancelled => FutureError::Cancelled,
            FutureError::TimedOut => FutureError::TimedOut,
            FutureError::Broken(why) => FutureError::Broken(why),
            FutureError::WorkerLost(why) => FutureError::WorkerLost(why),
            FutureError::Codec(why) => FutureError::Codec(why),
            FutureError::ShutDown => FutureError::ShutDown,
            FutureError::Shared => FutureError::Shared,
        }
    }

    /// Borrows the task's error.
    pub fn as_ref(&self) -> FutureError<&E> {
        match self {
            FutureError::Raised(e) => FutureError::Raised(e),
            FutureError::Panicked(p) => FutureError::Panicked(p.clone()),
            FutureError::Cancelled => FutureError::Cancelled,
            FutureError::TimedOut => FutureError::TimedOut,
            FutureError::Broken(why) => FutureError::Broken(why.clone()),
            FutureError::WorkerLost(why) => FutureError::WorkerLost(why.clone()),
            FutureError::Codec(why) => FutureError::Codec(why.clone()),
            FutureError::ShutDown => FutureError::ShutDown,
            FutureError::Shared => FutureError::Shared,
        }
    }
}

impl<E: Clone> FutureError<&E> {
    /// Clones the borrowed task error into an owned `FutureError<E>`.
    pub fn cloned(self) -> FutureError<E> {
        self.map_raised(E::clone)
    }
}

impl<E: fmt::Debug> fmt::Debug for FutureError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FutureError::Raised(e) => f.debug_tuple("Raised").field(e).finish(),
            FutureError::Panicked(p) => f.debug_tuple("Panicked").field(p).finish(),
            FutureError::Cancelled => f.write_str("Cancelled"),
            FutureError::TimedOut => f.write_str("TimedOut"),
            FutureError::Broken(why) => f.debug_tuple("Broken").field(why).finish(),
            FutureError::WorkerLost(why) => f.debug_tuple("WorkerLost").field(why).finish(),
            FutureError::Codec(why) => f.debug_tuple("Codec").field(why).finish(),
            FutureError::ShutDown => f.write_str("ShutDown"),
            FutureError::Shared => f.write_str("Shared"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for FutureError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FutureError::Raised(e) => write!(f, "task failed: {e}"),
            FutureError::Panicked(p) => write!(f, "task panicked: {p}"),
            FutureError::Cancelled => f.write_str("future was cancelled"),
            FutureError::TimedOut => f.write_str("timed out waiting for the future"),
            FutureError::Broken(why) => write!(f, "executor is broken: {why}"),
            FutureError::WorkerLost(why) => write!(f, "worker process lost: {why}"),
            FutureError::Codec(why) => {
                write!(f, "could not pass the task between processes: {why}")
            }
            FutureError::ShutDown => f.write_str("cannot schedule new futures after shutdown"),
            FutureError::Shared => f.write_str(
                "the outcome cannot be taken by value: another handle to the future is alive",
            ),
        }
    }
}

/// `source()` is the task's own error for [`Raised`](FutureError::Raised) and the [`Panic`] for
/// [`Panicked`](FutureError::Panicked), so error reporters (anyhow's `{:#}`, `Report`) show the
/// chain. An owned `FutureError<E>` is `?`-able into `anyhow::Error` and
/// `Box<dyn Error + Send + Sync>` when `E` is an error type; a borrowed one from
/// [`result`](crate::Future::result) becomes owned with [`cloned`](FutureError::cloned) (or take
/// the value with [`into_result`](crate::Future::into_result)). A task whose error type is not
/// an `Error` (a `String`, say) maps it first: `e.map_raised(|s| -> Box<dyn Error + Send + Sync> {
/// s.into() })` makes a `FutureError` whose `Display` reads the same.
///
/// ```
/// use std::error::Error;
/// use futurepool_core::{Future, FutureError};
///
/// #[derive(Debug, Clone)]
/// struct Invalid;
/// impl std::fmt::Display for Invalid {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("invalid input")
///     }
/// }
/// impl Error for Invalid {}
///
/// fn run() -> Result<u32, Box<dyn Error + Send + Sync>> {
///     let (future, promise) = Future::<u32, Invalid>::pending();
///     promise.set_exception(Invalid).unwrap();
///     Ok(future.into_result()?) // FutureError<Invalid> is an Error: `?` boxes it
/// }
///
/// let error = run().unwrap_err();
/// assert_eq!(error.to_string(), "task failed: invalid input");
/// assert_eq!(error.source().unwrap().to_string(), "invalid input");
/// ```
impl<E: std::error::Error + 'static> std::error::Error for FutureError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FutureError::Raised(e) => Some(e),
            FutureError::Panicked(p) => Some(p),
            _ => None,
        }
    }
}

impl std::error::Error for Panic {}

/// A future was completed twice (Python's `InvalidStateError`). The first outcome is kept; the
/// rejected one is given back.
#[derive(Clone, PartialEq, Eq)]
pub struct InvalidStateError<V> {
    rejected: V,
    state: &'static str,
}

impl<V> InvalidStateError<V> {
    pub(crate) fn new(rejected: V, state: &'static str) -> Self {
        InvalidStateError { rejected, state }
    }

    /// The outcome that was not stored.
    pub fn into_inner(self) -> V {
        self.rejected
    }

    /// The state the future was in (`"finished"` or `"cancelled"`).
    pub fn state(&self) -> &'static str {
        self.state
    }
}

impl<V> fmt::Debug for InvalidStateError<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidStateError")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<V> fmt::Display for InvalidStateError<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid state: the future is already {}", self.state)
    }
}

impl<V> std::error::Error for InvalidStateError<V> {}

/// `as_completed` ran past its deadline with futures still unfinished (Python: `TimeoutError:
/// 3 (of 5) futures unfinished`).
///
/// `#[non_exhaustive]`: its fields can be read, and more may be added; only `as_completed`
/// builds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeoutError {
    /// How many futures had not finished.
    pub unfinished: usize,
    /// How many distinct futures were waited on.
    pub total: usize,
    /// The timeout the wait was given.
    pub timeout: Duration,
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (of {}) futures unfinished",
            self.unfinished, self.total
        )
    }
}

impl std::error::Error for TimeoutError {}

/// Why an executor refused a task at `submit`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError {
    /// `shutdown` was called (Python's `RuntimeError`).
    ShutDown,
    /// The pool is broken (Python's `BrokenThreadPool` / `BrokenProcessPool`); the text says why.
    Broken(Arc<str>),
    /// The task could not be sent (for instance its argument failed to serialize).
    Rejected(Arc<str>),
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::ShutDown => f.write_str("cannot schedule new futures after shutdown"),
            SubmitError::Broken(why) => write!(f, "executor is broken: {why}"),
            SubmitError::Rejected(why) => write!(f, "task rejected: {why}"),
        }
    }
}

impl std::error::Error for SubmitError {}

impl<E> From<SubmitError> for FutureError<E> {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::ShutDown => FutureError::ShutDown,
            SubmitError::Broken(why) => FutureError::Broken(why),
            SubmitError::Rejected(why) => FutureError::Broken(why),
        }
    }
}
