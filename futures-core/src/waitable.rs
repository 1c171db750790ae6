//! [`Waitable`]: what `wait` and `as_completed` need from a future, object-safe so that futures
//! of different result types can be waited on together, and [`AnyFuture`], an owned type-erased
//! handle.

use std::any::Any;
use std::fmt;

use crate::loom::Arc;
use crate::waiter::Queue;
use crate::Future;

mod sealed {
    pub trait Sealed {}
}

/// Anything [`wait`](crate::wait) and [`as_completed`](crate::as_completed) can wait on: a
/// [`Future`] of any type, an [`AnyFuture`], a reference or box of either, or `dyn Waitable`.
///
/// Sealed: the methods that register waiters are internal.
pub trait Waitable: sealed::Sealed + Send + Sync {
    /// `true` if finished or cancelled.
    fn done(&self) -> bool;
    /// `true` if cancelled.
    fn cancelled(&self) -> bool;
    /// `true` if finished with an error that counts as raised (a returned error, a panic, a
    /// broken executor).
    fn raised(&self) -> bool;
    #[doc(hidden)]
    fn key(&self) -> usize;
    #[doc(hidden)]
    fn register(&self, queue: &Arc<Queue>, token: usize) -> bool;
    #[doc(hidden)]
    fn unregister(&self, queue: &Arc<Queue>, token: usize);
}

impl<T: Send + Sync, E: Send + Sync> sealed::Sealed for Future<T, E> {}

impl<T: Send + Sync, E: Send + Sync> Waitable for Future<T, E> {
    fn done(&self) -> bool {
        Future::done(self)
    }
    fn cancelled(&self) -> bool {
        Future::cancelled(self)
    }
    fn raised(&self) -> bool {
        Future::raised(self)
    }
    fn key(&self) -> usize {
        Future::key(self)
    }
    fn register(&self, queue: &Arc<Queue>, token: usize) -> bool {
        Future::register(self, queue, token)
    }
    fn unregister(&self, queue: &Arc<Queue>, token: usize) {
        Future::unregister(self, queue, token)
    }
}

macro_rules! forward_waitable {
    ($($ty:ty),*) => {$(
        impl<W: Waitable + ?Sized> sealed::Sealed for $ty {}
        impl<W: Waitable + ?Sized> Waitable for $ty {
            fn done(&self) -> bool { (**self).done() }
            fn cancelled(&self) -> bool { (**self).cancelled() }
            fn raised(&self) -> bool { (**self).raised() }
            fn key(&self) -> usize { (**self).key() }
            fn register(&self, queue: &Arc<Queue>, token: usize) -> bool {
                (**self).register(queue, token)
            }
            fn unregister(&self, queue: &Arc<Queue>, token: usize) {
                (**self).unregister(queue, token)
            }
        }
    )*};
}

forward_waitable!(&W, Box<W>);

/// What an [`AnyFuture`] boxes: a `Future<T, E>` as `Waitable` and `Any`.
trait Erased: Waitable {
    fn clone_box(&self) -> Box<dyn Erased>;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn as_any(&self) -> &dyn Any;
}

impl<T, E> Erased for Future<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    fn clone_box(&self) -> Box<dyn Erased> {
        Box::new(self.clone())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An owned handle to a future of any result type, from [`Future::erase`]: what
/// `as_completed` over mixed futures yields. Get the typed future back with
/// [`downcast`](Self::downcast).
///
/// ```
/// use futurepool_core::{as_completed, Future, Waitable};
///
/// let number = Future::<u32>::ready(1);
/// let text = Future::<String>::ready("one".into());
/// let done: Vec<_> = as_completed([number.erase(), text.erase()], None)
///     .map(|f| f.unwrap())
///     .collect();
/// assert_eq!(done.len(), 2);
/// let number = done[0].clone().downcast::<u32, std::convert::Infallible>().unwrap();
/// assert_eq!(number.result(), Ok(&1));
/// ```
pub struct AnyFuture(Box<dyn Erased>);

impl AnyFuture {
    pub(crate) fn new<T, E>(future: Future<T, E>) -> AnyFuture
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        AnyFuture(Box::new(future))
    }

    /// The typed future, or this handle back if it is of another type.
    pub fn downcast<T, E>(self) -> Result<Future<T, E>, AnyFuture>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        if !self.0.as_any().is::<Future<T, E>>() {
            return Err(self);
        }
        match self.0.into_any().downcast::<Future<T, E>>() {
            Ok(future) => Ok(*future),
            Err(_) => unreachable!("the type was checked above"),
        }
    }

    /// The typed future, by reference, if it is of that type.
    pub fn downcast_ref<T, E>(&self) -> Option<&Future<T, E>>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        self.0.as_any().downcast_ref()
    }
}

impl Clone for AnyFuture {
    fn clone(&self) -> Self {
        AnyFuture(self.0.clone_box())
    }
}

impl fmt::Debug for AnyFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyFuture")
            .field("done", &self.0.done())
            .field("cancelled", &self.0.cancelled())
            .finish_non_exhaustive()
    }
}

impl sealed::Sealed for AnyFuture {}

impl Waitable for AnyFuture {
    fn done(&self) -> bool {
        self.0.done()
    }
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
    fn raised(&self) -> bool {
        self.0.raised()
    }
    fn key(&self) -> usize {
        self.0.key()
    }
    fn register(&self, queue: &Arc<Queue>, token: usize) -> bool {
        self.0.register(queue, token)
    }
    fn unregister(&self, queue: &Arc<Queue>, token: usize) {
        self.0.unregister(queue, token)
    }
}
