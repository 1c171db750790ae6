//! loom models of the future's races, each explored under every interleaving.
//!
//! Run with `cargo xtask loom` (that is, `RUSTFLAGS="--cfg futurepool_loom"`, release mode and
//! a bounded `LOOM_MAX_PREEMPTIONS`). Timed waits are modelled as already expired (see
//! [`crate::loom`]), so these models use untimed waits and zero timeouts.

use std::future::Future as _;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

use crate::loom::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::loom::{thread, Arc};
use crate::{as_completed, wait, Future, FutureError, ReturnWhen};

type F = Future<u32, &'static str>;

#[test]
fn cancel_vs_start() {
    loom::model(|| {
        let (future, promise) = F::pending();
        let worker = thread::spawn(move || {
            let started = promise.set_running_or_notify_cancel().unwrap();
            if started {
                promise.set_result(1).unwrap();
            }
            started
        });
        let cancelled = future.cancel();
        let started = worker.join().unwrap();
        // Exactly one side wins.
        assert_ne!(cancelled, started);
        assert_eq!(future.cancelled(), cancelled);
        if started {
            assert_eq!(future.result(), Ok(&1));
        } else {
            assert_eq!(future.result(), Err(FutureError::Cancelled));
        }
    });
}

#[test]
fn complete_vs_add_callback() {
    loom::model(|| {
        let (future, promise) = F::pending();
        let calls = Arc::new(AtomicUsize::new(0));
        let completer = thread::spawn(move || promise.set_result(7).unwrap());
        let seen = calls.clone();
        future.add_done_callback(move |f| {
            assert_eq!(f.result(), Ok(&7));
            seen.fetch_add(1, Ordering::SeqCst);
        });
        completer.join().unwrap();
        // Whichever thread ran it, the callback ran exactly once by now.
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn complete_vs_result_waiter() {
    loom::model(|| {
        let (future, promise) = F::pending();
        let waiter = {
            let future = future.clone();
            thread::spawn(move || *future.result().unwrap())
        };
        promise.set_result(3).unwrap();
        assert_eq!(waiter.join().unwrap(), 3);
        assert_eq!(future.result(), Ok(&3));
    });
}

#[test]
fn complete_vs_wait() {
    loom::model(|| {
        let (future, promise) = F::pending();
        let completer = thread::spawn(move || promise.set_exception("boom").unwrap());
        let waited = wait([&future], None, ReturnWhen::FirstException);
        assert_eq!(waited.done.len(), 1);
        assert!(waited.not_done.is_empty());
        assert!(future.raised());
        completer.join().unwrap();
    });
}

#[test]
fn complete_vs_as_completed() {
    loom::model(|| {
        let (a, pa) = F::pending();
        let (b, pb) = F::pending();
        let completer = thread::spawn(move || {
            pb.set_result(2).unwrap();
            pa.set_result(1).unwrap();
        });
        let mut seen = Vec::new();
        for f in as_completed([a.clone(), b.clone(), a.clone()], None) {
            seen.push(*f.unwrap().result().unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, [1, 2]);
        completer.join().unwrap();
    });
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: StdArc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn complete_vs_async_waker() {
    loom::model(|| {
        let (future, promise) = F::pending();
        let completer = thread::spawn(move || promise.set_result(5).unwrap());
        let flag = StdArc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut done = std::pin::pin!(future.done_async());
        let first = done.as_mut().poll(&mut cx);
        completer.join().unwrap();
        if first.is_pending() {
            // The completion must have woken the registered waker: no lost wake-up.
            assert!(flag.0.load(Ordering::SeqCst));
            assert_eq!(done.as_mut().poll(&mut cx), Poll::Ready(()));
        }
        assert_eq!(future.result(), Ok(&5));
    });
}

#[test]
fn two_completers_race() {
    loom::model(|| {
        let (future, promise) = F::pending();
        let other = promise.clone();
        let t = thread::spawn(move || other.set_result(1).is_ok());
        let mine = promise.set_result(2).is_ok();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "exactly one completion is accepted");
        let expected = if theirs { 1 } else { 2 };
        assert_eq!(future.result(), Ok(&expected));
    });
}

/// Two completions of a *running* future through one shared promise (`Promise` is `Sync`: an
/// `Arc<Promise>` or a scoped borrow is one promise reached from two threads), and a cancel
/// through the same promise: exactly one outcome is accepted and the cell is written once.
/// A "sole completer" shortcut that trusted a promise count of 1 to mean one thread wrote
/// the cell twice here (and could drop a value a reader held); this model fails on it.
#[test]
fn two_completers_through_one_shared_promise() {
    loom::model(|| {
        let (future, promise) = F::pending();
        promise.set_running_or_notify_cancel().unwrap();
        let shared = Arc::new(promise);
        let other = shared.clone();
        let t = thread::spawn(move || other.set_result(1).is_ok());
        let canceller = shared.clone();
        let c = thread::spawn(move || canceller.set_outcome(Err(FutureError::Cancelled)).is_ok());
        let mine = shared.set_result(2).is_ok();
        let theirs = t.join().unwrap();
        let cancelled = c.join().unwrap();
        assert_eq!(
            [mine, theirs, cancelled].iter().filter(|&&ok| ok).count(),
            1,
            "exactly one completion is accepted"
        );
        match future.result() {
            Ok(v) => assert_eq!(*v, if theirs { 1 } else { 2 }),
            Err(FutureError::Cancelled) => assert!(cancelled),
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(future.done());
    });
}

#[test]
fn cancel_vs_complete_with_waiter() {
    loom::model(|| {
        let (future, promise) = F::pending();
        let waiter = {
            let future = future.clone();
            thread::spawn(move || future.result().copied().map_err(|e| e.cloned()))
        };
        let completer = thread::spawn(move || promise.set_result(9).is_ok());
        let cancelled = future.cancel();
        let completed = completer.join().unwrap();
        assert!(cancelled ^ completed);
        let seen = waiter.join().unwrap();
        if cancelled {
            assert_eq!(seen, Err(FutureError::Cancelled));
        } else {
            assert_eq!(seen, Ok(9));
        }
    });
}

/// Take-by-value racing a done-callback that holds the lent handle: the lent handle never makes
/// the future look shared — the take waits for the callbacks to end (no lost wake-up: loom
/// reports a deadlock if the clearing of the lender could be missed) and moves the value out,
/// with no racy access to the cell. Before the wait, the take could get its handle back.
#[test]
fn take_by_value_vs_lent_callback_handle() {
    loom::model(|| {
        let (future, promise) = Future::<String, ()>::pending();
        future.add_done_callback(|f| assert_eq!(f.result().map(String::as_str), Ok("v")));
        let completer = thread::spawn(move || promise.set_result("v".to_string()).unwrap());
        match future.try_into_result() {
            Ok(outcome) => assert_eq!(outcome, Ok("v".to_string())),
            Err(_) => panic!("the callbacks' lent handle made the future look shared"),
        }
        completer.join().unwrap();
    });
}

/// A done-callback that takes its own future by value through a clone, racing the owner's
/// take: the callback's thread is exempt from the wait (it would wait for itself: loom would
/// report the deadlock) and gets its clone back; the owner still gets the value.
#[test]
fn callback_taking_its_own_future_vs_owner_take() {
    loom::model(|| {
        let (future, promise) = Future::<String, ()>::pending();
        future.add_done_callback(|f| {
            let back = f.clone().try_into_result();
            assert!(back.is_err(), "the owner and the lent handle still exist");
        });
        let completer = thread::spawn(move || promise.set_result("v".to_string()).unwrap());
        assert_eq!(future.try_into_result().ok(), Some(Ok("v".to_string())));
        completer.join().unwrap();
    });
}

#[test]
fn dropped_promise_fails_waiter() {
    loom::model(|| {
        let (future, promise) = F::pending();
        let dropper = thread::spawn(move || drop(promise));
        assert!(matches!(future.result(), Err(FutureError::Broken(_))));
        dropper.join().unwrap();
    });
}

/// A cancel through the executor's hook racing the task's own completion: exactly one outcome
/// wins and it is consistent with what `cancel` returned.
/// The process pool's `cancel_kills_running`: the hook is installed while the future is
/// pending, and a worker starts a long task while the caller cancels. Whatever the
/// interleaving, `cancel` returns `true` and the future ends cancelled: the task is skipped
/// (cancelled before it ran) or its hook stops it. Before the retry in `Future::cancel`, a
/// cancel that lost the race to `set_running_or_notify_cancel` returned `false` without
/// running the hook, and the task ran to the end (this model then fails).
#[test]
fn cancel_racing_the_start_with_a_hook_installed_while_pending() {
    loom::model(|| {
        let (future, promise) = F::pending();
        let stopper = promise.clone();
        assert!(promise.set_cancel_hook(move || {
            let _ = stopper.set_outcome(Err(FutureError::Cancelled));
        }));
        // The task is long: it never finishes by itself within the model.
        let worker = thread::spawn(move || {
            let _ = promise.set_running_or_notify_cancel();
        });
        let cancelled = future.cancel();
        worker.join().unwrap();
        assert!(cancelled, "a running task escaped the cancel");
        assert_eq!(future.result(), Err(FutureError::Cancelled));
    });
}

/// A remote executor's arbiter (`set_cancel_arbiter`) says the task will never run while the
/// listener completes the future (a deadline, a lost task) at the same time: the future ends
/// either cancelled or with the listener's outcome, never both, and `cancel` tells which.
#[test]
fn cancel_with_an_arbiter_vs_completion() {
    loom::model(|| {
        let (future, promise) = F::pending();
        assert!(promise.set_cancel_arbiter(|| true));
        let listener = thread::spawn(move || promise.set_result(1).is_ok());
        let cancelled = future.cancel();
        let completed = listener.join().unwrap();
        assert_ne!(cancelled, completed);
        match future.result() {
            Ok(v) => assert_eq!((*v, completed), (1, true)),
            Err(FutureError::Cancelled) => assert!(cancelled),
            Err(e) => panic!("unexpected {e:?}"),
        }
    });
}

/// A cancel hook installed while another thread completes the running future (the process
/// pool installs its hook as a task starts): either it is installed first and dropped by the
/// completion, or it is refused; it never runs, and nothing of it is left behind.
#[test]
fn cancel_hook_installed_during_completion() {
    loom::model(|| {
        let (future, promise) = F::pending();
        promise.set_running_or_notify_cancel().unwrap();
        let completer = promise.clone();
        let worker = thread::spawn(move || completer.set_result(1).is_ok());
        let ran = Arc::new(AtomicBool::new(false));
        let alive = Arc::new(AtomicUsize::new(0));
        struct Capture(Arc<AtomicUsize>);
        impl Drop for Capture {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        alive.fetch_add(1, Ordering::SeqCst);
        let capture = Capture(alive.clone());
        let flag = ran.clone();
        let _installed = promise.set_cancel_hook(move || {
            let _keep = &capture;
            flag.store(true, Ordering::SeqCst);
        });
        assert!(worker.join().unwrap());
        assert_eq!(future.result(), Ok(&1));
        assert!(!future.cancel());
        assert!(
            !ran.load(Ordering::SeqCst),
            "a hook ran on a finished future"
        );
        assert_eq!(
            alive.load(Ordering::SeqCst),
            0,
            "the hook outlived the completion"
        );
    });
}

#[test]
fn cancel_hook_vs_completion() {
    loom::model(|| {
        let (future, promise) = F::pending();
        promise.set_running_or_notify_cancel().unwrap();
        let stopper = promise.clone();
        assert!(promise.set_cancel_hook(move || {
            let _ = stopper.set_outcome(Err(FutureError::Cancelled));
        }));
        let worker = thread::spawn(move || promise.set_result(1).is_ok());
        let cancelled = future.cancel();
        let completed = worker.join().unwrap();
        match future.result() {
            Ok(v) => {
                assert!(completed);
                assert_eq!(*v, 1);
            }
            Err(FutureError::Cancelled) => {
                assert!(cancelled);
                assert!(!completed);
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    });
}

/// `.await` by value racing a done-callback that holds the lent handle: the await never sees the
/// lent handle as "shared". Either it takes the value at once, or it is told to wait and its
/// waker is woken once the callbacks are done, and then it takes the value.
#[test]
fn await_by_value_vs_lent_callback_handle() {
    loom::model(|| {
        let (future, promise) = Future::<String, ()>::pending();
        future.add_done_callback(|f| assert_eq!(f.result().map(String::as_str), Ok("v")));
        let completer = thread::spawn(move || promise.set_result("v".to_string()).unwrap());
        let flag = StdArc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut awaiting = std::pin::pin!(std::future::IntoFuture::into_future(future));
        let first = awaiting.as_mut().poll(&mut cx);
        completer.join().unwrap();
        let outcome = match first {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => {
                // No lost wake-up: whatever made us wait (pending, or the lent handle) has woken us.
                assert!(flag.0.load(Ordering::SeqCst));
                match awaiting.as_mut().poll(&mut cx) {
                    Poll::Ready(outcome) => outcome,
                    Poll::Pending => panic!("woken but still pending"),
                }
            }
        };
        assert_eq!(outcome, Ok("v".to_string()));
    });
}

/// A task run by a worker (`Future::with_task`, the closure in the future's own memory) racing
/// a cancel and the drop of the last future handle: the task either runs or is skipped, never
/// both, and the closure's cell is never touched by two threads at once.
#[test]
fn task_run_vs_cancel_and_drop() {
    loom::model(|| {
        let (future, task) = F::with_task(|| Ok(1));
        let worker = thread::spawn(move || task.run(&mut || {}));
        let cancelled = future.cancel();
        drop(future);
        let ran = worker.join().unwrap();
        assert_ne!(cancelled, ran);
    });
}

/// Two waiters that both find the future pending allocate its slow part at the same time (one
/// installs it, the other frees its own and uses the installed one) while the future completes:
/// the sleeper in `result()` is woken and the callback runs exactly once, whichever thread
/// allocated first and whichever side of the completion each registration falls.
#[test]
fn two_waiters_install_the_slow_part_vs_completion() {
    loom::model(|| {
        let (future, promise) = F::pending();
        let calls = Arc::new(AtomicUsize::new(0));
        let sleeper = {
            let future = future.clone();
            thread::spawn(move || future.result().copied().map_err(|e| e.cloned()))
        };
        let completer = thread::spawn(move || promise.set_result(3).unwrap());
        let seen = calls.clone();
        future.add_done_callback(move |f| {
            assert_eq!(f.result(), Ok(&3));
            seen.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(sleeper.join().unwrap(), Ok(3));
        completer.join().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

/// The lent handle is counted when the first callback registers, not when the callbacks run: a
/// callback registered through a clone (dropped right after) while the future completes, and
/// the owner taking the value by value once the clone is gone. The take always gets the value
/// (the lent handle never makes it look shared for good), and never moves it out under a
/// running callback (loom would report the racing cell access).
#[test]
fn callback_registration_vs_completion_vs_take() {
    loom::model(|| {
        let (future, promise) = Future::<String, ()>::pending();
        let registrar = {
            let clone = future.clone();
            thread::spawn(move || {
                clone.add_done_callback(|f| assert_eq!(f.result().map(String::as_str), Ok("v")));
            })
        };
        let completer = thread::spawn(move || promise.set_result("v".to_string()).unwrap());
        registrar.join().unwrap();
        assert_eq!(future.try_into_result().ok(), Some(Ok("v".to_string())));
        completer.join().unwrap();
    });
}

/// The promise a helper completes, put where its helper finds it once the future exists. Only
/// the helper (one thread, once) takes it, so a std mutex (invisible to loom, never contended)
/// keeps the model small.
type Slot<T, E> = StdArc<std::sync::Mutex<Option<crate::Promise<T, E>>>>;

/// A waiter's helper ([`Future::pending_with_helper`]) racing the executor's own worker for the
/// task: exactly one of them runs it, and the waiter sees that one's value.
#[test]
fn helper_vs_worker() {
    loom::model(|| {
        let slot: Slot<u32, &'static str> = Default::default();
        let (future, promise) = {
            let slot = slot.clone();
            F::pending_with_helper(move |_| {
                let promise = slot.lock().unwrap().take().expect("the helper runs once");
                if promise.set_running_or_notify_cancel() == Ok(true) {
                    promise
                        .set_outcome_deferring_callbacks(Ok(1), |_| unreachable!("no callbacks"))
                        .unwrap();
                }
            })
        };
        let worker = {
            let promise = promise.clone();
            thread::spawn(move || promise.run(|| Ok(2)))
        };
        *slot.lock().unwrap() = Some(promise);
        let value = *future.result().unwrap();
        let worker_ran = worker.join().unwrap();
        assert_eq!(value, if worker_ran { 2 } else { 1 });
    });
}

/// Two threads block on the same future: the helper runs once, and both see its value.
#[test]
fn two_waiters_run_the_helper_once() {
    loom::model(|| {
        let slot: Slot<u32, &'static str> = Default::default();
        let (future, promise) = {
            let slot = slot.clone();
            F::pending_with_helper(move |_| {
                let promise = slot.lock().unwrap().take().expect("the helper runs once");
                promise.set_result(1).unwrap();
            })
        };
        *slot.lock().unwrap() = Some(promise);
        let waiter = {
            let future = future.clone();
            thread::spawn(move || *future.result().unwrap())
        };
        assert_eq!(*future.result().unwrap(), 1);
        assert_eq!(waiter.join().unwrap(), 1);
    });
}

/// A done-callback registered (from another thread) while a waiter's helper completes the
/// future: the callback runs exactly once, never on the helping waiter's thread (the helper
/// hands it over to a thread of its own), and the owner's take by value waits for it and then
/// gets the value.
#[test]
fn helper_defers_a_callback_registered_meanwhile() {
    loom::model(|| {
        let main = thread::current().id();
        let calls = Arc::new(AtomicUsize::new(0));
        let deferred = StdArc::new(std::sync::Mutex::new(None));
        let slot: Slot<String, ()> = Default::default();
        let (future, promise) = {
            let slot = slot.clone();
            let deferred = deferred.clone();
            Future::<String, ()>::pending_with_helper(move |_| {
                let promise = slot.lock().unwrap().take().expect("the helper runs once");
                promise
                    .set_outcome_deferring_callbacks(Ok("v".to_string()), |later| {
                        let spawned = thread::spawn(move || later.run());
                        *deferred.lock().unwrap() = Some(spawned);
                    })
                    .unwrap();
            })
        };
        *slot.lock().unwrap() = Some(promise);
        let registrar = {
            let clone = future.clone();
            let calls = calls.clone();
            thread::spawn(move || {
                clone.add_done_callback(move |f| {
                    assert_ne!(thread::current().id(), main, "ran on the helping waiter");
                    assert_eq!(f.result().map(String::as_str), Ok("v"));
                    calls.fetch_add(1, Ordering::SeqCst);
                });
            })
        };
        assert_eq!(future.result().map(String::as_str), Ok("v"));
        registrar.join().unwrap();
        assert_eq!(future.try_into_result().ok(), Some(Ok("v".to_string())));
        let later = deferred.lock().unwrap().take();
        if let Some(later) = later {
            later.join().unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}
