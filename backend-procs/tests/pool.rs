//! The process pool end to end: this test binary is re-run as the worker (see
//! `test_worker!`). Cases ported from CPython's `test_process_pool.py` and `test_deadlock.py`
//! name their source.

use std::num::NonZeroUsize;
use std::process::Command;
use std::thread;
use std::time::Duration;

use futurepool_procs::{
    remote, wait, FutureError, MapOptions, ProcessPool, ReturnWhen, Shutdown, Submit, SubmitError,
};
use futurepool_testkit::watchdog;
use serde::{Deserialize, Serialize};

futurepool_procs::test_worker!();

const LIMIT: Duration = Duration::from_secs(90);

// ---- the functions workers run ---------------------------------------------------------------

fn square(x: u64) -> u64 {
    x * x
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn parse(s: String) -> Result<u32, String> {
    s.parse().map_err(|e| format!("{s:?}: {e}"))
}

fn explode(msg: String) -> u8 {
    panic!("{msg}")
}

fn segfault(_: ()) -> u8 {
    // SAFETY: signal(2) and raise(3) have no memory-safety preconditions. Rust's runtime
    // handles SIGSEGV itself (to report stack overflows), so restore the default action — end
    // the process — first: the worker dies exactly as from a real segfault.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    0
}

fn abort(_: ()) -> u8 {
    std::process::abort()
}

fn exit_with(code: i32) -> u8 {
    std::process::exit(code)
}

fn overflow_stack(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 128]);
    if n == u64::MAX {
        return 0;
    }
    overflow_stack(n + 1).wrapping_add(pad[127])
}

fn sleep_ms(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

fn init_ok(_: ()) -> Result<(), String> {
    Ok(())
}

fn init_fails(msg: String) -> Result<(), String> {
    Err(msg)
}

/// Serializes fine, never deserializes.
#[derive(Debug)]
struct Undecodable;

impl Serialize for Undecodable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(7)
    }
}

impl<'de> Deserialize<'de> for Undecodable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "Undecodable refuses to deserialize",
        ))
    }
}

/// Never serializes.
#[derive(Debug)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "Unencodable refuses to serialize",
        ))
    }
}

impl<'de> Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u8::deserialize(d).map(|_| Unencodable)
    }
}

fn make_undecodable(_: ()) -> Undecodable {
    Undecodable
}

fn make_unencodable(_: ()) -> Unencodable {
    Unencodable
}

fn take_undecodable(_: Undecodable) -> u8 {
    0
}

fn take_unencodable(_: Unencodable) -> u8 {
    0
}

fn not_registered(x: u8) -> u8 {
    x
}

futurepool_procs::register!(
    square,
    pid,
    parse,
    explode,
    segfault,
    abort,
    exit_with,
    overflow_stack,
    sleep_ms,
    echo,
    init_ok,
    init_fails,
    make_undecodable,
    make_unencodable,
    take_undecodable,
    take_unencodable,
);

// ---- basics -----------------------------------------------------------------------------------

#[test]
fn submit_and_map() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        assert_eq!(pool.submit(square, 7).unwrap().result(), Ok(&49));
        let out: Vec<_> = Submit::map(&pool, remote(square), 0..20u64, MapOptions::default())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, (0..20).map(|x| x * x).collect::<Vec<_>>());
        let worker = *pool.submit(pid, ()).unwrap().result().unwrap();
        assert_ne!(worker, std::process::id(), "ran in another process");
    });
}

#[test]
fn typed_error_comes_back_typed() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        assert_eq!(
            pool.submit_fallible(parse, "12".to_string())
                .unwrap()
                .result(),
            Ok(&12)
        );
        let f = pool.submit_fallible(parse, "x".to_string()).unwrap();
        match f.result() {
            Err(FutureError::Raised(e)) => assert!(e.contains("invalid digit"), "{e}"),
            other => panic!("{other:?}"),
        }
    });
}

/// test_process_pool: a task's exception comes back with its message (and here its location).
#[test]
fn panic_comes_back_with_message_and_location() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let f = pool.submit(explode, "kaboom 42".to_string()).unwrap();
        match f.result() {
            Err(FutureError::Panicked(p)) => {
                assert_eq!(p.message(), "kaboom 42");
                assert!(p.location().unwrap().contains("tests/pool.rs"), "{p}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pool.submit(square, 3).unwrap().result(),
            Ok(&9),
            "the worker survived"
        );
    });
}

#[test]
fn unregistered_functions_and_closures_are_refused() {
    let pool = ProcessPool::new(1).unwrap();
    match pool.submit(not_registered, 1) {
        Err(SubmitError::Rejected(why)) => {
            assert!(why.contains("not registered"), "{why}");
            assert!(why.contains("register!(not_registered)"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let offset = 3u8;
    match pool.submit(move |x: u8| x + offset, 1) {
        Err(SubmitError::Rejected(why)) => assert!(why.contains("not a closure"), "{why}"),
        other => panic!("{other:?}"),
    }
}

// ---- crashes: only the task fails, the pool goes on --------------------------------------------

fn assert_lost(result: Result<&u8, FutureError<&std::convert::Infallible>>, needle: &str) {
    match result {
        Err(FutureError::WorkerLost(why)) => {
            assert!(why.contains(needle), "{needle:?} not in {why:?}")
        }
        other => panic!("expected a lost worker ({needle}), got {other:?}"),
    }
}

/// test_deadlock.ExecutorDeadlockTest (crash during func execution): segfault, abort, exit,
/// stack overflow each fail only their task; the other futures complete.
#[test]
fn crashes_fail_only_their_task() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let before: Vec<_> = (0..4u64).map(|i| pool.submit(square, i).unwrap()).collect();
        let seg = pool.submit(segfault, ()).unwrap();
        let abo = pool.submit(abort, ()).unwrap();
        let ext = pool.submit(exit_with, 3).unwrap();
        let after: Vec<_> = (4..8u64).map(|i| pool.submit(square, i).unwrap()).collect();
        assert_lost(seg.result(), "SIGSEGV");
        assert_lost(abo.result(), "SIGABRT");
        assert_lost(ext.result(), "exited with code 3");
        for (i, f) in before.iter().chain(&after).enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64 * i as u64)));
        }
        let so = pool.submit(overflow_stack, 0).unwrap();
        assert!(
            matches!(so.result(), Err(FutureError::WorkerLost(_))),
            "{:?}",
            so.result()
        );
        assert_eq!(pool.submit(square, 9).unwrap().result(), Ok(&81));
        assert!(
            pool.processes_started() >= 3,
            "crashed workers were replaced"
        );
    });
}

/// test_process_pool.test_killed_child / the OOM killer: a worker SIGKILLed from outside.
#[test]
fn worker_killed_from_outside() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let victim = pool.submit(pid, ()).unwrap();
        let pid = *victim.result().unwrap();
        let f = pool.submit(sleep_ms, 20_000).unwrap();
        while !f.running() {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(50));
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our pool's live worker.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
        match f.result() {
            Err(FutureError::WorkerLost(why)) => assert!(why.contains("SIGKILL"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(pool.submit(square, 5).unwrap().result(), Ok(&25));
    });
}

/// CPython-compatible mode: one death breaks the pool (`BrokenProcessPool`).
#[test]
fn break_on_worker_death_mode() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .break_on_worker_death(true)
            .build()
            .unwrap();
        let f = pool.submit(exit_with, 1).unwrap();
        assert!(matches!(f.result(), Err(FutureError::WorkerLost(_))));
        match pool.submit(square, 2) {
            Err(SubmitError::Broken(why)) => assert!(why.contains("terminated abruptly"), "{why}"),
            other => panic!("{other:?}"),
        }
    });
}

// ---- timeouts ----------------------------------------------------------------------------------

#[test]
fn hung_task_is_killed_at_its_timeout() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let first = *pool.submit(pid, ()).unwrap().result().unwrap();
        let f = pool
            .with_task_timeout(Duration::from_millis(300))
            .submit(sleep_ms, 60_000)
            .unwrap();
        assert_eq!(f.result(), Err(FutureError::TimedOut));
        let second = *pool.submit(pid, ()).unwrap().result().unwrap();
        assert_ne!(first, second, "the hung worker was replaced");
        assert!(!pool.worker_pids().contains(&first));
    });
}

#[test]
fn builder_task_timeout_applies_to_every_task() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .task_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        assert_eq!(pool.submit(sleep_ms, 1).unwrap().result(), Ok(&1));
        assert_eq!(
            pool.submit(sleep_ms, 30_000).unwrap().result(),
            Err(FutureError::TimedOut)
        );
    });
}

// ---- lifecycle ----------------------------------------------------------------------------------

/// test_process_pool.test_max_tasks_per_child
#[test]
fn max_tasks_per_child_replaces_the_worker() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .max_tasks_per_child(NonZeroUsize::new(3).unwrap())
            .build()
            .unwrap();
        let pids: Vec<u32> = (0..6)
            .map(|_| *pool.submit(pid, ()).unwrap().result().unwrap())
            .collect();
        assert_eq!(pids[0], pids[1]);
        assert_eq!(pids[1], pids[2]);
        assert_ne!(pids[2], pids[3], "a new worker after 3 tasks");
        assert_eq!(pids[3], pids[5]);
    });
}

/// test_init.FailingInitializerMixin (process pool): the pool breaks.
#[test]
fn failing_initializer_breaks_the_pool() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .initializer(init_fails, "no database".to_string())
            .build()
            .unwrap();
        let f = pool.submit(square, 2).unwrap();
        match f.result() {
            Err(FutureError::Broken(why)) => assert!(why.contains("no database"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            pool.submit(square, 2),
            Err(SubmitError::Broken(_))
        ));
    });
}

#[test]
fn initializer_runs_first() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .initializer(init_ok, ())
            .build()
            .unwrap();
        assert_eq!(pool.submit(square, 4).unwrap().result(), Ok(&16));
    });
}

/// test_shutdown (process pool): shutdown(wait) reaps every worker; later submits are refused.
#[test]
fn shutdown_reaps_workers_and_refuses_new_work() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let fs: Vec<_> = (0..6u64)
            .map(|i| pool.submit(sleep_ms, 20 + i).unwrap())
            .collect();
        pool.shutdown(Shutdown::default());
        assert!(fs.iter().all(|f| f.result().is_ok()));
        assert!(pool.worker_pids().is_empty());
        assert_eq!(pool.submit(square, 1).unwrap_err(), SubmitError::ShutDown);
    });
}

#[test]
fn cancel_futures_cancels_the_queue() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let running = pool.submit(sleep_ms, 300).unwrap();
        let queued: Vec<_> = (0..10u64)
            .map(|i| pool.submit(square, i).unwrap())
            .collect();
        while !running.running() {
            thread::sleep(Duration::from_millis(1));
        }
        pool.shutdown(Shutdown::new().cancel_futures(true));
        assert_eq!(running.result(), Ok(&300));
        assert!(queued.iter().all(|f| f.cancelled()));
    });
}

#[test]
fn kill_workers_fails_running_tasks() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let fs: Vec<_> = (0..2)
            .map(|_| pool.submit(sleep_ms, 30_000).unwrap())
            .collect();
        while !fs.iter().all(|f| f.running()) || pool.worker_pids().len() < 2 {
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(100));
        pool.kill_workers();
        let waited = wait(&fs, Some(Duration::from_secs(30)), ReturnWhen::AllCompleted);
        assert_eq!(waited.done.len(), 2);
        for f in &fs {
            assert!(
                matches!(f.result(), Err(FutureError::WorkerLost(_))),
                "{:?}",
                f.result()
            );
        }
    });
}

// ---- serialization failures fail one future ------------------------------------------------------

/// test_deadlock: error during pickling of the argument / unpickling of the result, both ways.
#[test]
fn serialization_failures_fail_only_their_future() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let cases = [
            pool.submit(take_unencodable, Unencodable).unwrap(),
            pool.submit(take_undecodable, Undecodable).unwrap(),
        ];
        for f in &cases {
            assert!(
                matches!(f.result(), Err(FutureError::Codec(_))),
                "{:?}",
                f.result()
            );
        }
        let bad_result = pool.submit(make_unencodable, ()).unwrap();
        assert!(matches!(bad_result.result(), Err(FutureError::Codec(_))));
        let undecodable = pool.submit(make_undecodable, ()).unwrap();
        match undecodable.result() {
            Err(FutureError::Codec(why)) => {
                // postcard drops a type's own error message; the type is named instead.
                assert!(why.contains("Undecodable"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pool.submit(square, 6).unwrap().result(),
            Ok(&36),
            "the pool still works"
        );
    });
}

#[test]
fn large_payload_round_trip() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let payload: Vec<u8> = (0..(32usize << 20)).map(|i| (i % 251) as u8).collect();
        let f = pool.submit(echo, payload.clone()).unwrap();
        assert_eq!(f.result().unwrap().len(), payload.len());
        assert!(f.result().unwrap() == &payload);
    });
}

// ---- bootstrap safety ---------------------------------------------------------------------------

#[test]
fn stray_environment_variable_does_not_make_a_worker() {
    let exe = std::env::current_exe().unwrap();
    for value in [
        "junk",
        "/nonexistent/socket\n0123456789abcdef0123456789abcdef",
        "x\nshort",
    ] {
        let out = Command::new(&exe)
            .args(["__futurepool_worker", "--exact", "--nocapture", "-q"])
            .env("FUTUREPOOL_WORKER", value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(97), "{value:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("futurepool worker:"), "{err}");
    }
}

#[test]
fn wrong_worker_executable_fails_fast_instead_of_hanging() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .worker_executable("/bin/true")
            .startup_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let f = pool.submit(square, 1).unwrap();
        match f.result() {
            Err(FutureError::WorkerLost(why)) => assert!(why.contains("start-up"), "{why}"),
            other => panic!("{other:?}"),
        }
        let pool = ProcessPool::builder()
            .max_workers(1)
            .worker_executable("/bin/sleep")
            .startup_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        // `sleep __futurepool_worker …` fails at once; either way no hang and a clear error.
        let f = pool.submit(square, 1).unwrap();
        assert!(matches!(f.result(), Err(FutureError::WorkerLost(_))));
    });
}

// ---- map with chunks ------------------------------------------------------------------------------

/// test_process_pool / executor.py test_map with chunksize: order kept across chunks.
#[test]
fn map_with_chunks_keeps_order() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        for chunksize in [1, 7, 256] {
            let out: Vec<u64> = pool
                .map(square, 0..1000u64, MapOptions::new().chunksize(chunksize))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(
                out,
                (0..1000u64).map(|x| x * x).collect::<Vec<_>>(),
                "chunksize {chunksize}"
            );
        }
    });
}

fn crash_on_13(x: u64) -> u64 {
    if x == 13 {
        std::process::exit(13);
    }
    x
}

futurepool_procs::register!(crash_on_13);

#[test]
fn map_crash_fails_only_its_chunk() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let out: Vec<_> = pool
            .map(crash_on_13, 0..40u64, MapOptions::new().chunksize(10))
            .unwrap()
            .collect();
        assert_eq!(out.len(), 40);
        for (i, r) in out.iter().enumerate() {
            if (10..20).contains(&i) {
                assert!(
                    matches!(r, Err(FutureError::WorkerLost(w)) if w.contains("code 13")),
                    "{i}: {r:?}"
                );
            } else {
                assert_eq!(r, &Ok(i as u64));
            }
        }
    });
}

#[test]
fn map_refuses_unregistered_functions() {
    let pool = ProcessPool::new(1).unwrap();
    let out: Vec<_> = pool
        .map(not_registered, 0..5u8, MapOptions::new().chunksize(2))
        .unwrap()
        .collect();
    assert_eq!(out.len(), 1);
    assert!(
        matches!(&out[0], Err(FutureError::Broken(why)) if why.contains("not registered")),
        "{out:?}"
    );
}

// ---- cancelling running work ----------------------------------------------------------------------

#[test]
fn cancel_kills_a_running_task_when_opted_in() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .cancel_kills_running(true)
            .build()
            .unwrap();
        let first = *pool.submit(pid, ()).unwrap().result().unwrap();
        let f = pool.submit(sleep_ms, 60_000).unwrap();
        while !f.running() {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(50));
        assert!(f.cancel(), "cancel reaches a running task");
        assert_eq!(f.result(), Err(FutureError::Cancelled));
        let second = *pool.submit(pid, ()).unwrap().result().unwrap();
        assert_ne!(first, second, "the killed worker was replaced");
    });
}

#[test]
fn without_opt_in_a_running_task_cannot_be_cancelled() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let f = pool.submit(sleep_ms, 200).unwrap();
        while !f.running() {
            thread::sleep(Duration::from_millis(1));
        }
        assert!(!f.cancel(), "Python's rule");
        assert_eq!(f.result(), Ok(&200));
    });
}

// ---- more of test_deadlock.py --------------------------------------------------------------------

/// Aborts the worker while it decodes the argument.
#[derive(Debug)]
struct AbortOnDecode;

impl Serialize for AbortOnDecode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(1)
    }
}

impl<'de> Deserialize<'de> for AbortOnDecode {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        std::process::abort()
    }
}

fn take_abort_on_decode(_: AbortOnDecode) -> u8 {
    0
}

futurepool_procs::register!(take_abort_on_decode);

/// test_deadlock.ExecutorDeadlockTest.test_crash_at_task_unpickle
#[test]
fn crash_while_the_worker_decodes_the_task() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let f = pool.submit(take_abort_on_decode, AbortOnDecode).unwrap();
        assert!(matches!(f.result(), Err(FutureError::WorkerLost(w)) if w.contains("SIGABRT")));
        assert_eq!(pool.submit(square, 8).unwrap().result(), Ok(&64));
    });
}

/// test_deadlock.ExecutorDeadlockTest.test_crash_big_data: the worker dies while a large
/// argument is on its way.
#[test]
fn crash_while_a_large_argument_is_sent() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let f = pool.submit(exit_with, 5).unwrap();
        let big = pool.submit(echo, vec![7u8; 16 << 20]).unwrap();
        assert!(matches!(f.result(), Err(FutureError::WorkerLost(_))));
        assert_eq!(big.result().map(Vec::len), Ok(16 << 20));
    });
}

/// test_deadlock.ExecutorDeadlockTest.test_shutdown_deadlock: a worker that crashes while a
/// `shutdown(wait=true)` is waiting for it.
#[test]
fn crash_during_shutdown_wait() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let slow = pool.submit(sleep_ms, 200).unwrap();
        let crash = pool.submit(exit_with, 9).unwrap();
        pool.shutdown(Shutdown::default());
        assert_eq!(slow.result(), Ok(&200));
        assert!(matches!(crash.result(), Err(FutureError::WorkerLost(_))));
        assert!(pool.worker_pids().is_empty());
    });
}

/// test_process_pool.test_max_tasks_early_shutdown / with failures.
#[test]
fn max_tasks_per_child_with_failures_and_early_shutdown() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .max_tasks_per_child(NonZeroUsize::new(2).unwrap())
            .build()
            .unwrap();
        let a = pool.submit(explode, "first".into()).unwrap();
        let b = pool.submit(square, 3).unwrap();
        let c = pool.submit(exit_with, 4).unwrap();
        let d = pool.submit(square, 5).unwrap();
        pool.shutdown(Shutdown::default());
        assert!(matches!(a.result(), Err(FutureError::Panicked(_))));
        assert_eq!(b.result(), Ok(&9));
        assert!(matches!(c.result(), Err(FutureError::WorkerLost(_))));
        assert_eq!(d.result(), Ok(&25));
        assert!(pool.processes_started() >= 3);
    });
}

/// The Redis backend's agents run tasks by name on encoded bytes: the same function, the same
/// codec, the same outcomes as a typed submit.
#[test]
fn submit_encoded_runs_a_function_by_name() {
    watchdog(LIMIT, || {
        use futurepool_procs::__private::{codec, name_of};
        let pool = ProcessPool::new(1).unwrap();
        let arg = codec::encode(&12u64).unwrap();
        let f = pool.submit_encoded(name_of(&square), arg, None).unwrap();
        assert_eq!(codec::decode::<u64>(f.result().unwrap()).unwrap(), 144);
        let arg = codec::encode(&"x".to_string()).unwrap();
        let f = pool.submit_encoded(name_of(&parse), arg, None).unwrap();
        let back: Result<u32, String> = codec::decode(f.result().unwrap()).unwrap();
        assert!(back.unwrap_err().contains("invalid digit"));
        let slow = codec::encode(&10_000u64).unwrap();
        let f = pool
            .submit_encoded(name_of(&sleep_ms), slow, Some(Duration::from_millis(200)))
            .unwrap();
        assert_eq!(f.result(), Err(FutureError::TimedOut));
        assert!(matches!(
            pool.submit_encoded("no::such::function", Vec::new(), None),
            Err(futurepool_procs::SubmitError::Rejected(_))
        ));
    });
}

// ---- apply: the caller's own round trip -----------------------------------------------------------

/// `multiprocessing.Pool.apply`: the result on the calling thread, with the same failures as a
/// submitted task, and the same workers (no extra processes).
#[test]
fn apply_runs_on_the_callers_thread_with_the_pools_workers() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        assert_eq!(pool.apply(square, 9), Ok(81));
        assert!(matches!(
            pool.apply(explode, "boom".into()),
            Err(FutureError::Panicked(p)) if p.message() == "boom"
        ));
        assert!(
            matches!(pool.apply(exit_with, 3), Err(FutureError::WorkerLost(w)) if w.contains("code 3"))
        );
        assert_eq!(
            pool.with_task_timeout(Duration::from_millis(300))
                .apply(sleep_ms, 60_000),
            Err(FutureError::TimedOut)
        );
        assert!(matches!(
            pool.apply(not_registered, 1),
            Err(FutureError::Broken(why)) if why.contains("not registered")
        ));
        // Many callers and submitted tasks share at most max_workers processes.
        let futures: Vec<_> = (0..20u64)
            .map(|i| pool.submit(square, i).unwrap())
            .collect();
        thread::scope(|s| {
            for t in 0..4u64 {
                let pool = &pool;
                s.spawn(move || {
                    for i in 0..25 {
                        assert_eq!(pool.apply(square, t * 100 + i), Ok((t * 100 + i).pow(2)));
                    }
                });
            }
        });
        for (i, f) in futures.iter().enumerate() {
            assert_eq!(f.result(), Ok(&((i * i) as u64)));
        }
        assert!(pool.worker_pids().len() <= 2, "{:?}", pool.worker_pids());
        pool.shutdown(Shutdown::new());
        assert_eq!(pool.apply(square, 2), Err(FutureError::ShutDown));
        assert!(pool.worker_pids().is_empty());
    });
}
