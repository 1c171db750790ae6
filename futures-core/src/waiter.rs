//! Waiters: what a future notifies when it reaches a final state.
//!
//! A pending future keeps a list of [`Entry`]s under its lock (in the future's *slow part*,
//! allocated by the first waiter). Reaching a final state (finished or cancelled) with waiters
//! registered takes the whole list out under that lock and then — with the lock released —
//! notifies each entry once: a [`Queue`] gets the entry's token pushed, an async [`Waker`] is
//! woken, a done-callback is run. A thread blocked in `result()` does not need an entry: it
//! sleeps on the future's own condition variable.
//!
//! The no-lost-wake-up argument is the same for every kind of entry: an entry is only added under
//! the future's lock, after setting the state word's `WAITERS` flag with an atomic
//! read-modify-write that also reads the state and finds it not final; a move to a final state is
//! one read-modify-write of that same word, and takes the lock to notify when it finds the flag.
//! So an entry is either seen by the completion, or its registration sees the final state and
//! reports "already done" instead (see the docs of `future.rs`).

use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::task::Waker;
use std::time::Instant;

use crate::loom::atomic::{AtomicUsize, Ordering};
use crate::loom::thread::ThreadId;
use crate::loom::{Arc, Condvar, Mutex};

/// A FIFO of tokens shared by one `wait` or `as_completed` call and every future it waits on.
///
/// Each future gets an entry carrying its index in the caller's list as the token; a completion
/// pushes that token, so the caller learns *which* future finished in O(1) and `as_completed`
/// over `n` futures costs O(n) in total.
#[derive(Debug)]
pub struct Queue {
    tokens: Mutex<Tokens>,
    /// `tokens.len()`, readable without the lock: what the consumer spins on before sleeping.
    queued: AtomicUsize,
    ready: Condvar,
}

impl Queue {
    pub(crate) fn new() -> Arc<Queue> {
        Arc::new(Queue {
            tokens: Mutex::new(Tokens {
                fifo: VecDeque::new(),
                sleeping: false,
                waker: None,
            }),
            queued: AtomicUsize::new(0),
            ready: Condvar::new(),
        })
    }

    /// Pushes `token` and wakes the (single) consumer.
    pub(crate) fn push(&self, token: usize) {
        let mut tokens = self.tokens.lock();
        tokens.fifo.push_back(token);
        // Relaxed would do (the token itself is read under the lock); Release makes the
        // spinning consumer's Acquire load a clean "something is there" signal.
        self.queued.store(tokens.fifo.len(), Ordering::Release);
        let wake = tokens.sleeping;
        let waker = tokens.waker.take();
        drop(tokens);
        if wake {
            self.ready.notify_one();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The async consumer's pop: the oldest token, or `Pending` with `waker` stored for the next
    /// push (the same no-lost-wake-up argument as the futures': the check and the store happen
    /// under the lock every push takes).
    #[cfg(feature = "stream")]
    pub(crate) fn poll_pop(&self, waker: &Waker) -> std::task::Poll<usize> {
        let mut tokens = self.tokens.lock();
        match tokens.fifo.pop_front() {
            Some(token) => {
                // Relaxed: a hint, as in `pop`.
                self.queued.store(tokens.fifo.len(), Ordering::Relaxed);
                std::task::Poll::Ready(token)
            }
            None => {
                match &mut tokens.waker {
                    Some(w) if w.will_wake(waker) => {}
                    slot => *slot = Some(waker.clone()),
                }
                std::task::Poll::Pending
            }
        }
    }

    /// Pops the oldest token, blocking until one arrives or `deadline` passes (`None`: no
    /// deadline). `None` means the deadline passed with the queue empty.
    pub(crate) fn pop(&self, deadline: Option<Instant>) -> Option<usize> {
        let mut tokens = self.tokens.lock();
        if let Some(token) = tokens.fifo.pop_front() {
            // Relaxed: `queued` is only a hint for spinning; every token is read under the lock.
            self.queued.store(tokens.fifo.len(), Ordering::Relaxed);
            return Some(token);
        }
        if !matches!(deadline, Some(d) if Instant::now() >= d) {
            drop(tokens);
            // Acquire pairs with `push`'s Release; a stale 0 only costs the sleep below, which
            // re-checks under the lock.
            crate::loom::spin_until(|| self.queued.load(Ordering::Acquire) > 0);
            tokens = self.tokens.lock();
        }
        loop {
            if let Some(token) = tokens.fifo.pop_front() {
                // Relaxed: a hint, as above.
                self.queued.store(tokens.fifo.len(), Ordering::Relaxed);
                return Some(token);
            }
            tokens.sleeping = true;
            match deadline {
                None => {
                    tokens = self.ready.wait(tokens);
                    tokens.sleeping = false;
                }
                Some(deadline) => {
                    let (guard, expired) = self.ready.wait_deadline(tokens, deadline);
                    tokens = guard;
                    tokens.sleeping = false;
                    if expired {
                        let token = tokens.fifo.pop_front();
                        // Relaxed: a hint, as above.
                        self.queued.store(tokens.fifo.len(), Ordering::Relaxed);
                        return token;
                    }
                }
            }
        }
    }
}

/// The queue's locked part.
#[derive(Debug)]
struct Tokens {
    fifo: VecDeque<usize>,
    /// The consumer is asleep on `ready`: only then does a push pay for a wake-up.
    sleeping: bool,
    /// An async consumer waiting for the next push (`as_completed_stream`).
    waker: Option<Waker>,
}

/// One registration on a pending future.
pub(crate) enum Entry<C> {
    /// Push `token` onto `queue` (a `wait` or `as_completed` call).
    Queue { queue: Arc<Queue>, token: usize },
    /// Wake an async task. `key` identifies the registration so a re-poll can replace the waker
    /// and a dropped `.await` can withdraw it.
    Waker { key: u32, waker: Waker },
    /// A done-callback, run once in the completing thread.
    Callback(C),
}

impl<C> fmt::Debug for Entry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Queue { token, .. } => f.debug_struct("Queue").field("token", token).finish(),
            Entry::Waker { key, .. } => f.debug_struct("Waker").field("key", key).finish(),
            Entry::Callback(_) => f.write_str("Callback"),
        }
    }
}

/// What an executor installed for `cancel`.
#[derive(Default)]
pub(crate) struct CancelHooks {
    /// What `cancel` runs while the future is RUNNING (see `Promise::set_cancel_hook`).
    pub(crate) hook: Option<Box<dyn FnOnce() + Send>>,
    /// What `cancel` asks while the future is PENDING (see `Promise::set_cancel_arbiter`).
    /// A plain `std` `Arc`: it only shares an immutable closure, called outside the lock.
    pub(crate) arbiter: Option<std::sync::Arc<dyn Fn() -> bool + Send + Sync>>,
}

/// The list of entries of one future, plus what the blocking path needs.
pub(crate) struct Waiters<C> {
    pub(crate) entries: Vec<Entry<C>>,
    /// Threads currently asleep on the future's condition variable; the completion skips the
    /// `notify_all` system call when there are none.
    pub(crate) sleepers: u32,
    /// Source of `Entry::Waker` keys.
    pub(crate) next_key: u32,
    /// The executor's say in `cancel`, boxed (few futures have one: one word for the rest).
    pub(crate) cancel: Option<Box<CancelHooks>>,
    /// The done-callbacks' lent handle is counted in the future's handles: from the first
    /// callback's registration until the callbacks have run. While it is, and the future is
    /// final, a waker may be added to a final future (`Entry::Waker`, by an `.await` that
    /// wants the value by value and found the lent handle in the way), or a blocking
    /// take-by-value sleep on the future's condition variable; the completion wakes both once
    /// the callbacks are done and the lent handle is gone.
    pub(crate) lent: bool,
    /// The thread running the done-callbacks with the lent handle, while it does (a take by
    /// value from that thread does not wait for itself).
    pub(crate) lender: Option<ThreadId>,
}

impl<C> Waiters<C> {
    pub(crate) const fn new() -> Self {
        Waiters {
            entries: Vec::new(),
            sleepers: 0,
            next_key: 0,
            cancel: None,
            lent: false,
            lender: None,
        }
    }

    /// Removes the queue entry of `queue` with `token`, if still there.
    pub(crate) fn remove_queue(&mut self, queue: &Arc<Queue>, token: usize) {
        if let Some(i) = self.entries.iter().position(|e| {
            matches!(e, Entry::Queue { queue: q, token: t } if Arc::ptr_eq(q, queue) && *t == token)
        }) {
            self.entries.remove(i);
        }
    }

    /// Registers `waker` under `key`, replacing the earlier waker of that key; allocates a key
    /// when `key` is `None`.
    /// Returns the waker it replaced, for the caller to drop once the lock is released (a
    /// waker's drop is user code).
    #[must_use]
    pub(crate) fn set_waker(&mut self, key: &mut Option<u32>, waker: &Waker) -> Option<Waker> {
        if let Some(k) = *key {
            for entry in &mut self.entries {
                if let Entry::Waker { key: ek, waker: w } = entry {
                    if *ek == k {
                        if !w.will_wake(waker) {
                            return Some(mem::replace(w, waker.clone()));
                        }
                        return None;
                    }
                }
            }
        }
        let k = self.next_key;
        self.next_key = self.next_key.wrapping_add(1);
        *key = Some(k);
        self.entries.push(Entry::Waker {
            key: k,
            waker: waker.clone(),
        });
        None
    }

    /// Withdraws the waker registered under `key`.
    pub(crate) fn remove_waker(&mut self, key: u32) {
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| matches!(e, Entry::Waker { key: k, .. } if *k == key))
        {
            self.entries.remove(i);
        }
    }
}
