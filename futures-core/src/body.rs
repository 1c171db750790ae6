//! A task's closure kept in its future's own allocation: [`Body`] stores a closure of up to
//! three words inline (a larger one as a `Box` of it), erased to one function pointer, so a
//! queued task costs one allocation — the future's — instead of a future plus a boxed closure.
//!
//! The closure is written once, before the future is shared, and taken (or dropped) once, by
//! the only owner of the task ([`TaskRef`](crate::TaskRef)) or by the future's destructor.

use std::mem::{self, MaybeUninit};

/// The inline capacity, in words: a closure capturing up to three words (an `Arc`, a `String`,
/// a few integers) needs no box of its own.
const WORDS: usize = 3;

type Slot = MaybeUninit<[usize; WORDS]>;

/// A type-erased `FnOnce() -> Result<T, E>`, or nothing.
pub(crate) struct Body<T, E> {
    /// The closure's bytes (the closure itself, or a `Box` of it); initialized iff `op` is
    /// `Some`.
    data: Slot,
    /// Calls (`Some(..)` returned) or drops (`None` returned) the closure in `data`, moving it
    /// out either way.
    op: Option<Op<T, E>>,
}

/// See [`Body::op`]: `call` says whether to call the closure or only drop it.
type Op<T, E> = unsafe fn(data: *mut Slot, call: bool) -> Option<Result<T, E>>;

/// Calls or drops the `G` whose bytes `data` holds.
///
/// # Safety
///
/// `data` must hold a valid `G` that nothing else owns or will drop: this moves it out.
unsafe fn op<G: FnOnce() -> Result<T, E>, T, E>(
    data: *mut Slot,
    call: bool,
) -> Option<Result<T, E>> {
    // SAFETY: per the contract, `data` holds a `G` (written by `Body::store`, with room and
    // alignment checked) that we now own; reading it moves it out.
    let g = unsafe { data.cast::<G>().read() };
    call.then(g)
}

impl<T, E> Body<T, E> {
    /// No closure (a future made by `pending`, `ready` or `failed`).
    pub(crate) const fn empty() -> Self {
        Body {
            data: MaybeUninit::uninit(),
            op: None,
        }
    }

    /// Holds `f`: inline if it fits in three words with at most word alignment, else boxed.
    pub(crate) fn new<F>(f: F) -> Self
    where
        F: FnOnce() -> Result<T, E>,
    {
        if mem::size_of::<F>() <= mem::size_of::<Slot>()
            && mem::align_of::<F>() <= mem::align_of::<Slot>()
        {
            Body::store(f)
        } else {
            Body::store(Box::new(f))
        }
    }

    fn store<G: FnOnce() -> Result<T, E>>(g: G) -> Self {
        assert!(
            mem::size_of::<G>() <= mem::size_of::<Slot>()
                && mem::align_of::<G>() <= mem::align_of::<Slot>(),
            "Body::new boxes what does not fit"
        );
        let mut data = Slot::uninit();
        // SAFETY: the slot has room for a `G` and is aligned for it (checked above).
        unsafe { data.as_mut_ptr().cast::<G>().write(g) };
        Body {
            data,
            op: Some(op::<G, T, E>),
        }
    }

    /// Moves the closure out, leaving the body empty; `None` if it was empty.
    pub(crate) fn take(&mut self) -> Option<TakenBody<T, E>> {
        let op = self.op.take()?;
        Some(TakenBody {
            data: mem::replace(&mut self.data, Slot::uninit()),
            op,
        })
    }
}

impl<T, E> Drop for Body<T, E> {
    fn drop(&mut self) {
        if let Some(op) = self.op.take() {
            // SAFETY: `op` is `Some` exactly while `data` holds the closure it was made for;
            // taking it makes this the one place the closure is dropped.
            unsafe { op(&mut self.data, false) };
        }
    }
}

/// A closure moved out of its [`Body`]: call it once, or drop it.
pub(crate) struct TakenBody<T, E> {
    data: Slot,
    op: Op<T, E>,
}

impl<T, E> TakenBody<T, E> {
    /// Calls the closure.
    pub(crate) fn call(self) -> Result<T, E> {
        let mut this = mem::ManuallyDrop::new(self);
        // SAFETY: `data` holds the closure `op` was made for, moved out of its body; the
        // `ManuallyDrop` keeps our `Drop` from touching it again.
        unsafe { (this.op)(&mut this.data, true) }.expect("asked to call, the op calls")
    }
}

impl<T, E> Drop for TakenBody<T, E> {
    fn drop(&mut self) {
        // SAFETY: not called (`call` forgets `self`), so `data` still holds the closure.
        unsafe { (self.op)(&mut self.data, false) };
    }
}
