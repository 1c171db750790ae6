//! The public API beyond CPython's own tests: typed errors, take-by-value, the completing side,
//! the async bridge, `map` through the `Executor` trait.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use futurepool_core::{
    as_completed, fallible_job, job, wait, Executor, Future, FutureError, Job, MapOptions,
    OptionsError, Panic, Promise, ReturnWhen, Shutdown, Submit, SubmitError,
};

const LONG: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
enum ParseError {
    Empty,
}

#[test]
fn typed_error_without_downcasting() {
    let f = submit(|| Err::<u32, _>(ParseError::Empty));
    match f.result() {
        Err(FutureError::Raised(ParseError::Empty)) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(f.raised());
    assert_eq!(f.into_result(), Err(FutureError::Raised(ParseError::Empty)));
}

#[test]
fn panic_message_is_kept_and_counts_as_raised() {
    let f = submit(|| -> Result<u32, String> { panic!("worker exploded: {}", 42) });
    match f.result() {
        Err(FutureError::Panicked(p)) => assert_eq!(p.message(), "worker exploded: 42"),
        other => panic!("unexpected {other:?}"),
    }
    let (g, _p) = Future::<u32, String>::pending();
    let waited = wait([&g, &f], Some(LONG), ReturnWhen::FirstException);
    assert_eq!(
        waited.done.len(),
        1,
        "a panic is an exception for FIRST_EXCEPTION"
    );
    let err = f.result().unwrap_err();
    assert_eq!(err.to_string(), "task panicked: worker exploded: 42");
}

#[test]
fn panic_payload_kinds() {
    assert_eq!(Panic::from_payload(Box::new("static")).message(), "static");
    assert_eq!(
        Panic::from_payload(Box::new(String::from("owned"))).message(),
        "owned"
    );
    assert!(Panic::from_payload(Box::new(7u8))
        .message()
        .contains("not a string"));
    let p = Panic::with_location("m", "src/lib.rs:1:2");
    assert_eq!(p.to_string(), "m (at src/lib.rs:1:2)");
}

#[test]
fn result_by_reference_many_times_and_by_value() {
    let f = Future::<Vec<u8>, ()>::ready(vec![1, 2, 3]);
    let g = f.clone();
    assert_eq!(f.result().unwrap(), &[1, 2, 3]);
    assert_eq!(g.result().unwrap(), &[1, 2, 3]);
    // Shared: try_into_result gives the handle back, into_result clones.
    let f = f.try_into_result().unwrap_err();
    assert_eq!(f.clone().into_result(), Ok(vec![1, 2, 3]));
    drop(g);
    // Last handle: moved out, no Clone needed.
    struct NotClone(u8);
    let h = Future::<NotClone, ()>::ready(NotClone(9));
    assert_eq!(h.try_into_result().ok().unwrap().ok().unwrap().0, 9);
    assert_eq!(f.try_into_result().ok().unwrap(), Ok(vec![1, 2, 3]));
}

/// A done-callback still running with its lent handle does not make the owner's take-by-value
/// fail as "shared": the future is finished and the owner holds the only handle of its own, so
/// `try_into_result` waits for the callbacks to end and moves the value out (as `.await` does).
/// Before the wait, this returned the handle back while the callback slept.
#[test]
fn take_by_value_waits_for_a_running_callback_s_lent_handle() {
    struct NotClone(u8);
    for _ in 0..3 {
        let (f, p) = Future::<NotClone, ()>::pending();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        f.add_done_callback(move |f| {
            assert_eq!(f.result().ok().map(|v| v.0), Some(5));
            started_tx.send(()).unwrap();
            thread::sleep(Duration::from_millis(200));
        });
        let completer = thread::spawn(move || p.set_result(NotClone(5)).ok().unwrap());
        started_rx.recv().unwrap();
        let taken = watchdog(LONG, move || {
            f.try_into_result().ok().map(|o| o.ok().unwrap().0)
        });
        assert_eq!(
            taken,
            Some(5),
            "the callback's lent handle made the future look shared"
        );
        completer.join().unwrap();
    }
}

/// The exemption: a done-callback that takes its own future by value (through a clone) runs
/// on the thread that lends the handle, so waiting for the lending to end would deadlock; it
/// gets the handle back, as any shared future does.
#[test]
fn callback_taking_its_own_future_by_value_gets_the_handle_back() {
    let seen = watchdog(LONG, || {
        let (f, p) = Future::<u8, ()>::pending();
        let (tx, rx) = std::sync::mpsc::channel();
        f.add_done_callback(move |f| {
            let shared = f.clone().try_into_result();
            tx.send(shared.err().map(|f| *f.result().unwrap())).unwrap();
        });
        p.set_result(4).unwrap();
        let seen = rx.recv().unwrap();
        assert_eq!(f.try_into_result().ok(), Some(Ok(4)));
        seen
    });
    assert_eq!(seen, Some(4));
}

#[test]
fn zero_timeout_only_looks() {
    let (f, p) = Future::<u8>::pending();
    let start = Instant::now();
    assert_eq!(f.result_timeout(Duration::ZERO), Err(FutureError::TimedOut));
    assert!(!f.wait_timeout(Duration::ZERO));
    assert!(start.elapsed() < LONG);
    p.set_result(1).unwrap();
    assert_eq!(f.result_timeout(Duration::ZERO), Ok(&1));
}

#[test]
fn real_timeouts_expire_and_leave_the_task_alone() {
    let (f, p) = Future::<u8>::pending();
    let start = Instant::now();
    assert_eq!(
        f.result_timeout(Duration::from_millis(30)),
        Err(FutureError::TimedOut)
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert!(!f.done(), "a timed-out wait does not cancel");
    let deadline = Instant::now() + Duration::from_millis(10);
    assert_eq!(f.result_deadline(deadline), Err(FutureError::TimedOut));
    assert!(Instant::now() >= deadline);
    p.set_result(5).unwrap();
    assert_eq!(f.result_timeout(Duration::from_millis(30)), Ok(&5));
}

#[test]
fn huge_timeout_means_forever_not_overflow() {
    let f = submit(|| {
        thread::sleep(Duration::from_millis(10));
        Ok::<_, ()>(1)
    });
    assert_eq!(f.result_timeout(Duration::MAX), Ok(&1));
}

#[test]
fn callbacks_run_once_in_order_in_the_completing_thread() {
    let (f, p) = Future::<u8>::pending();
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..5 {
        let log = log.clone();
        f.add_done_callback(move |_| log.lock().unwrap().push((i, thread::current().id())));
    }
    let completer = thread::spawn(move || {
        p.set_result(1).unwrap();
        thread::current().id()
    });
    let completer_id = completer.join().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(
        log.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(log.iter().all(|(_, id)| *id == completer_id));
}

#[test]
fn callback_may_block_on_the_same_future_and_add_more_callbacks() {
    let (f, p) = Future::<u8>::pending();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    f.add_done_callback(move |f| {
        assert_eq!(f.result(), Ok(&3), "no lock is held while callbacks run");
        let h2 = h.clone();
        f.add_done_callback(move |_| {
            h2.fetch_add(1, Ordering::SeqCst);
        });
        h.fetch_add(1, Ordering::SeqCst);
    });
    p.set_result(3).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn set_running_or_notify_cancel() {
    let (f, p) = Future::<u8>::pending();
    assert!(f.cancel());
    assert_eq!(p.set_running_or_notify_cancel(), Ok(false));
    let (f, p) = Future::<u8>::pending();
    assert_eq!(p.set_running_or_notify_cancel(), Ok(true));
    assert!(f.running());
    assert!(!f.cancel());
    assert_eq!(
        p.set_running_or_notify_cancel().unwrap_err().state(),
        "running"
    );
    p.set_result(1).unwrap();
    assert_eq!(
        p.set_running_or_notify_cancel().unwrap_err().state(),
        "finished"
    );
    assert_eq!(p.set_result(2).unwrap_err().state(), "finished");
}

#[test]
fn completing_a_cancelled_future_is_refused() {
    let (f, p) = Future::<u8>::pending();
    assert!(f.cancel());
    let err = p.set_result(1).unwrap_err();
    assert_eq!(err.state(), "cancelled");
    assert_eq!(f.result(), Err(FutureError::Cancelled));
}

#[test]
fn promise_run_skips_cancelled_and_catches_panics() {
    let (f, p) = Future::<u8>::pending();
    f.cancel();
    assert!(!p.run(|| unreachable!("a cancelled task must not run")));
    let (f, p) = Future::<u8, ()>::pending();
    assert!(p.run(|| panic!("boom")));
    assert!(matches!(f.result(), Err(FutureError::Panicked(p)) if p.message() == "boom"));
}

#[test]
fn last_dropped_promise_breaks_the_future_instead_of_hanging() {
    let (f, p) = Future::<u8>::pending();
    let p2 = p.clone();
    drop(p);
    assert!(!f.done(), "another promise is still alive");
    let waiter = {
        let f = f.clone();
        thread::spawn(move || f.result().copied().map_err(|e| e.to_string()))
    };
    drop(p2);
    let got = waiter.join().unwrap();
    assert!(got.unwrap_err().contains("dropped before it completed"));
}

#[test]
fn outcomes_for_executor_failures() {
    let (f, p) = Future::<u8>::pending();
    p.set_outcome(Err(FutureError::Broken("initializer failed".into())))
        .unwrap();
    assert!(
        f.raised(),
        "Python reports BrokenExecutor through exception()"
    );
    assert_eq!(
        f.result().unwrap_err().to_string(),
        "executor is broken: initializer failed"
    );
    let (f, p) = Future::<u8>::pending();
    p.set_outcome(Err(FutureError::Cancelled)).unwrap();
    assert!(f.cancelled());
    let shut: FutureError<()> = SubmitError::ShutDown.into();
    assert_eq!(shut, FutureError::ShutDown);
}

#[test]
fn futures_hash_by_identity_like_python() {
    let a = Future::<u8>::ready(1);
    let b = Future::<u8>::ready(1);
    let set: HashSet<_> = [a.clone(), a.clone(), b.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert_eq!(a, a.clone());
    assert_ne!(a, b);
}

#[test]
fn wait_on_nothing_returns_at_once() {
    let none: [&Future<u8>; 0] = [];
    for when in [
        ReturnWhen::FirstCompleted,
        ReturnWhen::FirstException,
        ReturnWhen::AllCompleted,
    ] {
        let waited = watchdog(LONG, move || {
            let w = wait(none, None, when);
            (w.done.len(), w.not_done.len())
        });
        assert_eq!(waited, (0, 0));
    }
}

#[test]
fn cancel_wakes_wait_and_as_completed_immediately() {
    // CPython gh-92001 / gh-109934: a future cancelled while waited on must count as done.
    watchdog(LONG, || {
        let (f, _p) = Future::<u8>::pending();
        let g = f.clone();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            g.cancel()
        });
        let waited = wait([&f], None, ReturnWhen::AllCompleted);
        assert_eq!(waited.done.len(), 1);
        assert!(t.join().unwrap());

        let (h, _ph) = Future::<u8>::pending();
        let h2 = h.clone();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            h2.cancel()
        });
        let out: Vec<_> = as_completed([h], None).collect();
        assert!(out[0].as_ref().unwrap().cancelled());
        t.join().unwrap();
    });
}

#[test]
fn as_completed_yields_in_completion_order() {
    watchdog(LONG, || {
        let pairs: Vec<_> = (0..5).map(|_| Future::<usize>::pending()).collect();
        let futures: Vec<_> = pairs.iter().map(|(f, _)| f.clone()).collect();
        let order = [3, 1, 4, 0, 2];
        let promises: Vec<_> = pairs.into_iter().map(|(_, p)| p).collect();
        let it = as_completed(futures, None);
        let t = thread::spawn(move || {
            for i in order {
                promises[i].set_result(i).unwrap();
                thread::sleep(Duration::from_millis(2));
            }
        });
        let got: Vec<usize> = it.map(|f| *f.unwrap().result().unwrap()).collect();
        t.join().unwrap();
        assert_eq!(got, order);
    });
}

#[test]
fn await_from_an_async_runtime() {
    let f = submit(|| {
        thread::sleep(Duration::from_millis(20));
        Ok::<_, String>(String::from("async"))
    });
    let g = f.clone();
    assert_eq!(block_on(async move { g.done_async().await }), ());
    assert_eq!(block_on(f), Ok(String::from("async")));
    let failed = submit(|| Err::<u8, _>(ParseError::Empty));
    assert_eq!(
        block_on(failed),
        Err(FutureError::Raised(ParseError::Empty))
    );
}

/// A thread-per-task executor: enough to drive the trait's provided `map`.
struct Spawner {
    started: AtomicUsize,
    shut_down: std::sync::atomic::AtomicBool,
}

impl Spawner {
    fn new() -> Self {
        Spawner {
            started: AtomicUsize::new(0),
            shut_down: Default::default(),
        }
    }
}

impl Executor for Spawner {
    fn max_workers(&self) -> usize {
        2
    }

    fn shutdown(&self, _options: Shutdown) {
        self.shut_down.store(true, Ordering::SeqCst);
    }
}

impl<J: Job> Submit<J> for Spawner {
    fn submit_job(
        &self,
        job: &J,
        input: J::Input,
    ) -> Result<Future<J::Output, J::Error>, SubmitError> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(SubmitError::ShutDown);
        }
        self.started.fetch_add(1, Ordering::SeqCst);
        let (future, promise): (_, Promise<_, _>) = Future::pending();
        let job = job.clone();
        thread::spawn(move || promise.run(|| job.call(input)));
        Ok(future)
    }
}

#[test]
fn map_keeps_input_order_and_reports_failures_at_their_item() {
    let ex = Spawner::new();
    let parse = fallible_job(|s: &'static str| s.parse::<u32>().map_err(|e| e.to_string()));
    let out: Vec<_> = ex
        .map(parse, ["1", "x", "3"], MapOptions::default())
        .unwrap()
        .collect();
    assert_eq!(out[0], Ok(1));
    assert!(matches!(&out[1], Err(FutureError::Raised(e)) if e.contains("invalid digit")));
    assert_eq!(out[2], Ok(3));
}

#[test]
fn map_is_lazy_over_an_infinite_input() {
    let ex = Spawner::new();
    let square = job(|x: u64| x * x);
    let opts = MapOptions::new().buffersize(4);
    let first: Vec<_> = ex
        .map(square, 0.., opts)
        .unwrap()
        .take(10)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, (0..10).map(|x| x * x).collect::<Vec<_>>());
    let started = ex.started.load(Ordering::SeqCst);
    assert!(
        started <= 10 + 4,
        "look-ahead is bounded: {started} tasks started"
    );
}

#[test]
fn map_timeout_reports_at_the_late_item_and_ends() {
    let ex = Spawner::new();
    let sleepy = job(|ms: u64| {
        thread::sleep(Duration::from_millis(ms));
        ms
    });
    let opts = MapOptions::new()
        .timeout(Duration::from_millis(1000))
        .buffersize(8);
    let out: Vec<_> = ex.map(sleepy, [0, 5_000, 0], opts).unwrap().collect();
    assert_eq!(out, vec![Ok(0), Err(FutureError::TimedOut)]);
}

#[test]
fn map_after_shutdown_reports_the_refusal() {
    let ex = Spawner::new();
    let id = job(|x: u8| x);
    ex.shutdown(Shutdown::default());
    let out: Vec<_> = ex
        .map(id, [1, 2, 3], MapOptions::default())
        .unwrap()
        .collect();
    assert_eq!(out, vec![Err(FutureError::ShutDown)]);
}

#[test]
fn map_checks_its_options_before_submitting() {
    let ex = Spawner::new();
    let id = job(|x: u8| x);
    let refused = |opts: MapOptions| ex.map(id.clone(), [1, 2, 3], opts).err().unwrap();
    assert_eq!(
        refused(MapOptions::new().buffersize(0)),
        OptionsError::ZeroBuffersize
    );
    assert_eq!(
        refused(MapOptions::new().chunksize(0)),
        OptionsError::ZeroChunksize
    );
    // The default `enforces_task_timeout` is false: a per-task timeout is refused, not ignored.
    assert!(matches!(
        refused(MapOptions::new().task_timeout(Duration::from_secs(1))),
        OptionsError::Unsupported(_)
    ));
    assert_eq!(
        ex.started.load(Ordering::SeqCst),
        0,
        "nothing was submitted"
    );
    let error: Box<dyn std::error::Error + Send + Sync> = OptionsError::ZeroChunksize.into();
    assert_eq!(error.to_string(), "chunksize must be >= 1");
}

/// An executor that can stop a task: it fails the task's future with `TimedOut` once the
/// per-task timeout passes (a stand-in for the process pool, which kills the worker).
struct Stopper;

impl Executor for Stopper {
    fn max_workers(&self) -> usize {
        2
    }

    fn shutdown(&self, _options: Shutdown) {}
}

impl<J: Job> Submit<J> for Stopper {
    fn submit_job(
        &self,
        job: &J,
        input: J::Input,
    ) -> Result<Future<J::Output, J::Error>, SubmitError> {
        let (future, promise): (_, Promise<_, _>) = Future::pending();
        promise.run(|| job.call(input));
        Ok(future)
    }

    fn submit_job_timeout(
        &self,
        _job: &J,
        _input: J::Input,
        _timeout: Duration,
    ) -> Result<Future<J::Output, J::Error>, SubmitError> {
        Ok(Future::failed(FutureError::TimedOut))
    }

    fn enforces_task_timeout(&self) -> bool {
        true
    }
}

#[test]
fn map_passes_task_timeout_to_executors_that_enforce_it() {
    let id = job(|x: u8| x);
    let out: Vec<_> = Stopper
        .map(id.clone(), [1, 2], MapOptions::new())
        .unwrap()
        .collect();
    assert_eq!(out, vec![Ok(1), Ok(2)]);
    let opts = MapOptions::new().task_timeout(Duration::from_millis(1));
    let out: Vec<_> = Stopper.map(id, [1, 2], opts).unwrap().collect();
    assert_eq!(
        out,
        vec![Err(FutureError::TimedOut), Err(FutureError::TimedOut)]
    );
}

#[test]
fn cancel_hook_lets_an_executor_stop_a_running_task() {
    // Installed while pending (as the process pool does): a pending cancel does not need it.
    let (f, p) = Future::<u8>::pending();
    assert!(p.set_cancel_hook(|| panic!("a pending future is cancelled without its hook")));
    assert!(f.cancel());
    assert!(!p.set_cancel_hook(|| {}), "no hook on a done future");
    assert_eq!(p.set_running_or_notify_cancel(), Ok(false));

    let (f, p) = Future::<u8>::pending();
    assert_eq!(p.set_running_or_notify_cancel(), Ok(true));
    assert!(!f.cancel(), "running, no hook: Python's rule");
    let stopper = p.clone();
    assert!(p.set_cancel_hook(move || {
        stopper.set_outcome(Err(FutureError::Cancelled)).unwrap();
    }));
    assert!(f.cancel(), "the hook stops the task");
    assert!(f.cancelled());
    assert_eq!(f.result(), Err(FutureError::Cancelled));
    assert!(p.set_result(1).is_err(), "the first outcome is kept");
}

#[test]
fn cancel_hook_is_dropped_at_completion() {
    let (f, p) = Future::<u8>::pending();
    p.set_running_or_notify_cancel().unwrap();
    assert!(p.set_cancel_hook(|| panic!("must not run after completion")));
    p.set_result(3).unwrap();
    assert!(!f.cancel());
    assert_eq!(f.result(), Ok(&3));
}

/// `Future::with_task`: the closure lives in the future's allocation (inline up to three words,
/// boxed beyond); it runs once, is dropped unrun by cancel, fail or a dropped `TaskRef`, and a
/// panic fails only its future.
#[test]
fn with_task_runs_or_drops_its_closure_exactly_once() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));

    // Small (inline) and large (boxed) closures both run once and drop their captures.
    let small = Counted(drops.clone());
    let (f, task) = Future::<u32>::with_task(move || {
        let _keep = &small;
        Ok(1)
    });
    assert!(task.run(&mut || {}));
    assert_eq!(f.result(), Ok(&1));
    let big = (Counted(drops.clone()), [7u64; 8]);
    let (g, task) = Future::<u64>::with_task(move || {
        let (_keep, numbers) = &big;
        Ok(numbers.iter().sum::<u64>())
    });
    assert!(thread::spawn(move || task.run(&mut || {})).join().unwrap());
    assert_eq!(g.result(), Ok(&56));
    assert_eq!(drops.load(Ordering::SeqCst), 2);

    // Cancelled, failed, dropped: never run, captures dropped at once.
    let c = Counted(drops.clone());
    let (f, task) = Future::<u32>::with_task(move || -> Result<u32, std::convert::Infallible> {
        let _keep = &c;
        unreachable!("cancelled")
    });
    task.cancel();
    assert_eq!(f.result(), Err(FutureError::Cancelled));
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    let c = Counted(drops.clone());
    let (f, task) = Future::<u32>::with_task(move || -> Result<u32, std::convert::Infallible> {
        let _keep = &c;
        unreachable!("failed")
    });
    task.fail("pool broke".into());
    assert!(matches!(f.result(), Err(FutureError::Broken(why)) if &*why == "pool broke"));
    assert_eq!(drops.load(Ordering::SeqCst), 4);
    let c = Counted(drops.clone());
    let (f, task) = Future::<u32>::with_task(move || -> Result<u32, std::convert::Infallible> {
        let _keep = &c;
        unreachable!("dropped")
    });
    drop(task);
    assert!(matches!(f.result(), Err(FutureError::Broken(_))));
    assert_eq!(drops.load(Ordering::SeqCst), 5);

    // A cancelled future's task is skipped; a panic fails only its future.
    let (f, task) = Future::<u32>::with_task(|| unreachable!("skipped"));
    assert!(f.cancel());
    assert!(!task.run(&mut || panic!("not called for a skipped task")));
    let (f, task) = Future::<u32, String>::with_task(|| panic!("boom"));
    let mut before = 0;
    assert!(task.run(&mut || before += 1));
    assert_eq!(before, 1);
    assert!(matches!(f.result(), Err(FutureError::Panicked(p)) if p.message() == "boom"));
    // A future dropped before its task runs: the task still runs, nobody reads it.
    let c = Counted(drops.clone());
    let (f, task) = Future::<u32>::with_task(move || {
        let _keep = &c;
        Ok(3)
    });
    drop(f);
    assert!(task.run(&mut || {}));
    assert_eq!(drops.load(Ordering::SeqCst), 6);
}
