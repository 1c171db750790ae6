//! The sync facade: every lock, atomic, condition variable and shared cell in futurepool goes
//! through here, so that `--cfg futurepool_loom` swaps them for [loom]'s model-checked versions.
//!
//! The cfg is crate-specific on purpose: a bare `loom` cfg would also switch tokio (inside
//! reqwest, used by the CLI) into its own loom mode.
//!
//! The std flavour strips mutex poisoning: a panic while a futurepool lock is held can only come
//! from our own code (user callbacks and tasks never run under a lock), and every critical section
//! leaves the protected data consistent before anything that could panic.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(futurepool_loom))]
mod imp {
    pub use std::sync::atomic;
    pub use std::sync::Arc;
    pub use std::thread;

    /// A mutex without poisoning (see the module docs).
    #[derive(Debug, Default)]
    pub struct Mutex<T>(std::sync::Mutex<T>);

    pub type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }

        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    /// A condition variable whose timed wait takes a deadline.
    #[derive(Debug, Default)]
    pub struct Condvar(std::sync::Condvar);

    impl Condvar {
        pub fn new() -> Self {
            Condvar(std::sync::Condvar::new())
        }

        pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(|p| p.into_inner())
        }

        /// Waits until notified (or spuriously woken) or until `deadline` has passed; the flag
        /// says whether the deadline has passed.
        pub fn wait_deadline<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            deadline: std::time::Instant,
        ) -> (MutexGuard<'a, T>, bool) {
            let now = std::time::Instant::now();
            if now >= deadline {
                return (guard, true);
            }
            let guard = match self.0.wait_timeout(guard, deadline - now) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
            (guard, std::time::Instant::now() >= deadline)
        }

        pub fn notify_one(&self) {
            self.0.notify_one()
        }

        pub fn notify_all(&self) {
            self.0.notify_all()
        }
    }

    /// Starts a thread named `name` (with `stack_size` bytes of stack, if given).
    pub fn spawn_thread<F>(
        name: String,
        stack_size: Option<usize>,
        body: F,
    ) -> std::io::Result<thread::JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        let mut builder = thread::Builder::new().name(name);
        if let Some(size) = stack_size {
            builder = builder.stack_size(size);
        }
        builder.spawn(body)
    }

    /// Yields a few times, re-checking `ready` each time: a blocked waiter whose completer is
    /// running on another core usually sees the completion here, without the futex sleep and
    /// wake-up that cost microseconds. Returns `ready()`'s last answer.
    pub fn spin_until(ready: impl FnMut() -> bool) -> bool {
        spin_for(30, ready)
    }

    /// [`spin_until`] with `steps` rounds of one `yield_now` each. No busy-spinning: on a
    /// loaded machine the thread we wait for may share our core, and `pause` loops there only
    /// delay it (measured: an idle-pool round trip of 3.3–5.9 µs with six rounds of growing
    /// busy-spins first, 1.4–1.6 µs without, on a machine at load 4; the same on an idle one).
    pub fn spin_for(steps: u32, mut ready: impl FnMut() -> bool) -> bool {
        for _ in 0..steps {
            if ready() {
                return true;
            }
            std::thread::yield_now();
        }
        ready()
    }

    /// An `UnsafeCell` with loom's closure-based access API.
    #[derive(Debug)]
    pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(futurepool_loom)]
mod imp {
    pub use loom::cell::UnsafeCell;
    pub use loom::sync::atomic;
    pub use loom::sync::Arc;
    pub use loom::thread;

    /// loom threads have no names or stack sizes; spawning never fails.
    pub fn spawn_thread<F>(
        _name: String,
        _stack_size: Option<usize>,
        body: F,
    ) -> std::io::Result<thread::JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        Ok(thread::spawn(body))
    }

    /// No spinning under loom: it would only multiply the interleavings to explore.
    pub fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
        ready()
    }

    /// See [`spin_until`].
    pub fn spin_for(_steps: u32, mut ready: impl FnMut() -> bool) -> bool {
        ready()
    }

    /// loom's mutex, with the poison-free API of the std flavour.
    #[derive(Debug, Default)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }

    /// loom's condition variable. loom has no time, so a timed wait is modelled as a wait whose
    /// deadline has already passed: it returns at once and the caller re-checks its condition,
    /// exactly as after a spurious wake-up. Timed paths get real-time tests in the std build.
    #[derive(Debug, Default)]
    pub struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }

        pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap()
        }

        pub fn wait_deadline<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _deadline: std::time::Instant,
        ) -> (MutexGuard<'a, T>, bool) {
            (guard, true)
        }

        pub fn notify_one(&self) {
            self.0.notify_one()
        }

        pub fn notify_all(&self) {
            self.0.notify_all()
        }
    }
}

pub use imp::*;
