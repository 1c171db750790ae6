//! Property tests of the thread pool: random schedules of submit, cancel, map and shutdown with
//! random task durations and panics. `cargo xtask proptest --cases N` runs them longer.
//!
//! Invariants: every future reaches exactly one final state; every task that was not cancelled
//! runs exactly once; `shutdown(wait=true)` returns only after every started task finished and
//! every worker exited; no thread outlives the pool.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::watchdog;
use futurepool_threads::{Future, FutureError, MapOptions, Shutdown, SubmitError, ThreadPool};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    /// Submit a task that sleeps this many microseconds, and panics if asked.
    Submit { micros: u64, panics: bool },
    /// Cancel the n-th future submitted so far (modulo).
    Cancel(usize),
    /// Run a map over this many inputs and drop it after reading `read` items.
    Map { inputs: usize, read: usize },
    /// Shut down (the rest of the schedule then sees refusals).
    Shutdown { wait: bool, cancel_futures: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u64..300, prop::bool::weighted(0.15)).prop_map(|(micros, panics)| Step::Submit { micros, panics }),
        2 => any::<usize>().prop_map(Step::Cancel),
        1 => (0usize..12, 0usize..12).prop_map(|(inputs, read)| Step::Map { inputs, read }),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(wait, cancel_futures)| Step::Shutdown { wait, cancel_futures }),
    ]
}

struct Tracked {
    future: Future<usize>,
    runs: Arc<AtomicUsize>,
    panics: bool,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: futurepool_testkit::proptest_cases(64), ..ProptestConfig::default() })]

    #[test]
    fn schedules(workers in 1usize..4, steps in prop::collection::vec(step(), 1..40)) {
        watchdog(Duration::from_secs(60), move || run_schedule(workers, steps));
    }
}

fn run_schedule(workers: usize, steps: Vec<Step>) {
    let pool = ThreadPool::new(workers).unwrap();
    let mut tracked: Vec<Tracked> = Vec::new();
    let mut shut = false;
    for step in steps {
        match step {
            Step::Submit { micros, panics } => {
                let runs = Arc::new(AtomicUsize::new(0));
                let r = runs.clone();
                let n = tracked.len();
                match pool.submit(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_micros(micros));
                    if panics {
                        panic!("task {n} panics");
                    }
                    n
                }) {
                    Ok(future) => tracked.push(Tracked {
                        future,
                        runs,
                        panics,
                    }),
                    Err(e) => {
                        assert!(shut, "refused while open: {e}");
                        assert_eq!(e, SubmitError::ShutDown);
                    }
                }
            }
            Step::Cancel(i) => {
                if !tracked.is_empty() {
                    let t = &tracked[i % tracked.len()];
                    let was_running_or_done = t.future.running() || t.future.done();
                    let cancelled = t.future.cancel();
                    if cancelled {
                        assert!(t.future.cancelled());
                    } else {
                        assert!(was_running_or_done || t.future.running() || t.future.done());
                    }
                }
            }
            Step::Map { inputs, read } => {
                let opts = MapOptions::new().buffersize(3);
                let out: Vec<_> = pool
                    .map(|x: usize| x * 2, 0..inputs, opts)
                    .unwrap()
                    .take(read)
                    .collect();
                for (i, r) in out.iter().enumerate() {
                    if shut {
                        assert!(matches!(r, Err(FutureError::ShutDown)) || r == &Ok(i * 2));
                    } else {
                        assert_eq!(r, &Ok(i * 2));
                    }
                }
            }
            Step::Shutdown {
                wait,
                cancel_futures,
            } => {
                pool.shutdown(Shutdown::new().wait(wait).cancel_futures(cancel_futures));
                shut = true;
                if wait {
                    assert_eq!(pool.stats().live_threads, 0, "shutdown(wait) left threads");
                    for t in &tracked {
                        assert!(
                            t.future.done(),
                            "shutdown(wait) returned with a future pending"
                        );
                    }
                }
            }
        }
    }
    pool.shutdown(Shutdown::default());
    assert_eq!(pool.stats().live_threads, 0);
    for (n, t) in tracked.iter().enumerate() {
        assert!(t.future.done());
        let runs = t.runs.load(Ordering::SeqCst);
        match t.future.result() {
            Err(FutureError::Cancelled) => assert_eq!(runs, 0, "a cancelled task ran"),
            Ok(v) => {
                assert_eq!(runs, 1);
                assert_eq!(*v, n);
                assert!(!t.panics);
            }
            Err(FutureError::Panicked(p)) => {
                assert_eq!(runs, 1);
                assert!(t.panics);
                assert_eq!(p.message(), format!("task {n} panics"));
            }
            Err(other) => panic!("unexpected outcome {other:?}"),
        }
    }
}
