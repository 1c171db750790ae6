//! Property tests. `cargo xtask proptest --cases N` runs them longer; failures found are kept in
//! `proptest-regressions/` and replayed first.
//!
//! * `model`: random operation sequences from several threads against a sequential reference
//!   model; every observation is checked against the model.
//! * `wait_partitions` and `as_completed_each_once`: random completion schedules from another
//!   thread; checks the partitions and the yield order.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::watchdog;
use futurepool_core::{as_completed, wait, Future, FutureError, Promise, ReturnWhen};
use proptest::prelude::*;

const N: usize = 3;
const LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Op {
    Cancel(usize),
    SetRunning(usize),
    SetResult(usize, u8),
    SetException(usize, u8),
    Look(usize),
    AddCallback(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..N;
    prop_oneof![
        i.clone().prop_map(Op::Cancel),
        i.clone().prop_map(Op::SetRunning),
        (i.clone(), any::<u8>()).prop_map(|(i, v)| Op::SetResult(i, v)),
        (i.clone(), any::<u8>()).prop_map(|(i, v)| Op::SetException(i, v)),
        i.clone().prop_map(Op::Look),
        i.prop_map(Op::AddCallback),
    ]
}

/// The sequential reference: a future is a plain enum.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Model {
    Pending,
    Running,
    Finished(Result<u8, u8>),
    Cancelled,
}

/// What an operation returned, in a form both sides can produce.
#[derive(Debug, PartialEq)]
enum Seen {
    Bool(bool),
    Running(Result<bool, &'static str>),
    Completed(Result<(), &'static str>),
    Look(Result<u8, FutureError<u8>>),
    Unit,
}

struct World {
    model: [Model; N],
    callbacks_expected: [usize; N],
}

fn model_step(world: &mut World, op: Op) -> Seen {
    fn state_name(m: Model) -> &'static str {
        match m {
            Model::Pending => "pending",
            Model::Running => "running",
            Model::Finished(_) => "finished",
            Model::Cancelled => "cancelled",
        }
    }
    match op {
        Op::Cancel(i) => match world.model[i] {
            Model::Pending | Model::Cancelled => {
                world.model[i] = Model::Cancelled;
                Seen::Bool(true)
            }
            _ => Seen::Bool(false),
        },
        Op::SetRunning(i) => match world.model[i] {
            Model::Pending => {
                world.model[i] = Model::Running;
                Seen::Running(Ok(true))
            }
            Model::Cancelled => Seen::Running(Ok(false)),
            m => Seen::Running(Err(state_name(m))),
        },
        Op::SetResult(i, v) | Op::SetException(i, v) => match world.model[i] {
            Model::Pending | Model::Running => {
                let outcome = if matches!(op, Op::SetResult(..)) {
                    Ok(v)
                } else {
                    Err(v)
                };
                world.model[i] = Model::Finished(outcome);
                Seen::Completed(Ok(()))
            }
            m => Seen::Completed(Err(state_name(m))),
        },
        Op::Look(i) => Seen::Look(match world.model[i] {
            Model::Pending | Model::Running => Err(FutureError::TimedOut),
            Model::Cancelled => Err(FutureError::Cancelled),
            Model::Finished(Ok(v)) => Ok(v),
            Model::Finished(Err(e)) => Err(FutureError::Raised(e)),
        }),
        Op::AddCallback(_) => Seen::Unit,
    }
}

fn real_step(
    futures: &[Future<u8, u8>],
    promises: &[Promise<u8, u8>],
    calls: &Arc<Vec<AtomicUsize>>,
    op: Op,
) -> Seen {
    match op {
        Op::Cancel(i) => Seen::Bool(futures[i].cancel()),
        Op::SetRunning(i) => Seen::Running(
            promises[i]
                .set_running_or_notify_cancel()
                .map_err(|e| e.state()),
        ),
        Op::SetResult(i, v) => Seen::Completed(promises[i].set_result(v).map_err(|e| e.state())),
        Op::SetException(i, v) => {
            Seen::Completed(promises[i].set_exception(v).map_err(|e| e.state()))
        }
        Op::Look(i) => Seen::Look(
            futures[i]
                .result_timeout(Duration::ZERO)
                .copied()
                .map_err(|e| e.cloned()),
        ),
        Op::AddCallback(i) => {
            let calls = calls.clone();
            futures[i].add_done_callback(move |_| {
                calls[i].fetch_add(1, Ordering::SeqCst);
            });
            Seen::Unit
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: futurepool_testkit::proptest_cases(256), ..ProptestConfig::default() })]

    /// Several threads apply random operations; each operation runs atomically with respect to
    /// the model (a global lock orders them), so the real futures must agree with the
    /// sequential model at every step, including how many done-callbacks have run.
    #[test]
    fn model(threads in prop::collection::vec(prop::collection::vec(op(), 0..12), 1..4)) {
        let (futures, promises): (Vec<_>, Vec<_>) = (0..N).map(|_| Future::<u8, u8>::pending()).unzip();
        let calls: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
        let world = Arc::new(Mutex::new(World { model: [Model::Pending; N], callbacks_expected: [0; N] }));
        let futures = Arc::new(futures);
        let promises = Arc::new(promises);
        let handles: Vec<_> = threads.into_iter().map(|ops| {
            let (futures, promises, calls, world) = (futures.clone(), promises.clone(), calls.clone(), world.clone());
            thread::spawn(move || {
                for op in ops {
                    let mut w = world.lock().unwrap();
                    let expected = model_step(&mut w, op);
                    let seen = real_step(&futures, &promises, &calls, op);
                    assert_eq!(&seen, &expected, "op {:?}", op);
                    if let Op::AddCallback(i) = op {
                        // Runs at once if the future is done, at its completion otherwise.
                        w.callbacks_expected[i] += 1;
                    }
                    for i in 0..N {
                        let done = matches!(w.model[i], Model::Finished(_) | Model::Cancelled);
                        let ran = calls[i].load(Ordering::SeqCst);
                        let expect = if done { w.callbacks_expected[i] } else { 0 };
                        assert_eq!(ran, expect, "callbacks of future {} after {:?}", i, op);
                        assert_eq!(futures[i].done(), done);
                    }
                }
            })
        }).collect();
        for h in handles {
            h.join().unwrap();
        }
    }

    /// `wait` returns a partition of the distinct inputs that satisfies its condition.
    #[test]
    fn wait_partitions(
        plan in prop::collection::vec((0u8..4, 0u64..3), 1..8),
        picks in prop::collection::vec(0usize..8, 1..12),
        when in prop_oneof![Just(ReturnWhen::FirstCompleted), Just(ReturnWhen::FirstException), Just(ReturnWhen::AllCompleted)],
        timeout_ms in prop::option::of(0u64..20),
    ) {
        // plan[i] = (what happens to future i: 0 value, 1 error, 2 cancel, 3 stays pending; delay ms)
        watchdog(LIMIT, move || {
            let (futures, promises): (Vec<_>, Vec<_>) = plan.iter().map(|_| Future::<u8, u8>::pending()).unzip();
            let completer = {
                let futures = futures.clone();
                let plan = plan.clone();
                thread::spawn(move || {
                    let mut keep = Vec::new();
                    for ((what, delay), (f, p)) in plan.into_iter().zip(futures.into_iter().zip(promises)) {
                        thread::sleep(Duration::from_millis(delay));
                        match what {
                            0 => { p.set_result(1).unwrap(); }
                            1 => { p.set_exception(2).unwrap(); }
                            2 => { f.cancel(); }
                            _ => keep.push(p),
                        }
                    }
                    keep
                })
            };
            let chosen: Vec<&Future<u8, u8>> = picks.iter().map(|&i| &futures[i % futures.len()]).collect();
            let distinct: HashSet<&Future<u8, u8>> = chosen.iter().copied().collect();
            let any_pending_forever = distinct.iter().any(|f| {
                let i = futures.iter().position(|g| g == *f).unwrap();
                plan[i].0 == 3
            });
            let timeout = timeout_ms.map(Duration::from_millis).or(if any_pending_forever { Some(Duration::from_millis(30)) } else { None });
            let waited = wait(chosen.iter().copied(), timeout, when);
            let done: HashSet<_> = waited.done.iter().copied().collect();
            let not_done: HashSet<_> = waited.not_done.iter().copied().collect();
            assert_eq!(done.len(), waited.done.len(), "no duplicates in done");
            assert!(done.is_disjoint(&not_done));
            assert_eq!(&done | &not_done, distinct);
            assert!(waited.done.iter().all(|f| f.done()));
            if timeout.is_none() {
                match when {
                    ReturnWhen::AllCompleted => assert!(not_done.is_empty()),
                    ReturnWhen::FirstCompleted => assert!(!done.is_empty()),
                    ReturnWhen::FirstException => assert!(not_done.is_empty() || done.iter().any(|f| f.raised())),
                }
            }
            drop(completer.join().unwrap());
        });
    }

    /// `as_completed` yields each distinct future exactly once, never before it is done, and
    /// (without a timeout) all of them.
    #[test]
    fn as_completed_each_once(
        plan in prop::collection::vec((0u8..3, 0u64..3), 1..10),
        picks in prop::collection::vec(0usize..10, 1..15),
    ) {
        watchdog(LIMIT, move || {
            let (futures, promises): (Vec<_>, Vec<_>) = plan.iter().map(|_| Future::<u8, u8>::pending()).unzip();
            let chosen: Vec<Future<u8, u8>> = picks.iter().map(|&i| futures[i % futures.len()].clone()).collect();
            let distinct: HashSet<Future<u8, u8>> = chosen.iter().cloned().collect();
            let it = as_completed(chosen, None);
            let order = Arc::new(Mutex::new(HashMap::new()));
            let completer = {
                let order = order.clone();
                let futures = futures.clone();
                thread::spawn(move || {
                    for (n, ((what, delay), (f, p))) in plan.into_iter().zip(futures.into_iter().zip(promises)).enumerate() {
                        thread::sleep(Duration::from_millis(delay));
                        order.lock().unwrap().insert(f.clone(), n);
                        match what {
                            0 => { p.set_result(1).unwrap(); }
                            1 => { p.set_exception(2).unwrap(); }
                            _ => { f.cancel(); }
                        }
                    }
                })
            };
            let mut seen = HashSet::new();
            let mut last = None;
            for f in it {
                let f = f.unwrap();
                assert!(f.done(), "yielded before done");
                let n = order.lock().unwrap()[&f];
                // Completions happen in plan order, one thread: the yields follow it.
                if let Some(last) = last { assert!(n > last, "out of completion order"); }
                last = Some(n);
                assert!(seen.insert(f), "yielded twice");
            }
            assert_eq!(seen, distinct);
            completer.join().unwrap();
        });
    }
}
