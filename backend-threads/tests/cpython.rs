//! Thread-pool cases ported from CPython's `Lib/test/test_concurrent_futures/`
//! (`executor.py`, `test_thread_pool.py`, `test_shutdown.py`, `test_init.py`) and manually
//! rewritten; each names its source. Plus the pool's own guarantees beyond CPython.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{watchdog, Event, Semaphore};
use futurepool_threads::{
    as_completed, wait, BuildError, Builder, FutureError, MapOptions, OptionsError, ReturnWhen,
    Shutdown, SubmitError, ThreadPool,
};

const LIMIT: Duration = Duration::from_secs(60);

fn mul(x: i64, y: i64) -> i64 {
    x * y
}

// ---- executor.py ----------------------------------------------------------------------------

/// executor.ExecutorTest.test_submit
#[test]
fn submit() {
    let pool = ThreadPool::new(4).unwrap();
    let future = pool.submit(|| 2i64.pow(8)).unwrap();
    assert_eq!(future.result(), Ok(&256));
}

/// executor.ExecutorTest.test_map
#[test]
fn map() {
    let pool = ThreadPool::new(4).unwrap();
    let got: Vec<_> = pool
        .map(
            |(x, y)| mul(x, y),
            (0..10).map(|i| (i, i)),
            MapOptions::default(),
        )
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let want: Vec<_> = (0..10).map(|i| i * i).collect();
    assert_eq!(got, want);
}

/// executor.ExecutorTest.test_map_exception: the failing item reports its error and — unlike
/// CPython, whose `map` raises and stops — iteration goes on.
#[test]
fn map_exception() {
    let pool = ThreadPool::new(4).unwrap();
    let job = futurepool_threads::fallible_job(|(a, b): (i64, i64)| {
        if b == 0 {
            Err("ZeroDivisionError".to_string())
        } else {
            Ok((a / b, a % b))
        }
    });
    let got: Vec<_> = futurepool_threads::Submit::map(
        &pool,
        job,
        [(1, 1), (1, 0), (2, 1)],
        MapOptions::default(),
    )
    .unwrap()
    .collect();
    assert_eq!(got[0], Ok((1, 0)));
    assert_eq!(
        got[1],
        Err(FutureError::Raised("ZeroDivisionError".to_string()))
    );
    assert_eq!(got[2], Ok((2, 0)));
}

/// executor.ExecutorTest.test_map_timeout
#[test]
fn map_timeout() {
    watchdog(LIMIT, || {
        let pool = ThreadPool::new(4).unwrap();
        let mut results = Vec::new();
        let opts = MapOptions::new().timeout(Duration::from_millis(500));
        for r in pool
            .map(
                |secs: u64| {
                    thread::sleep(Duration::from_millis(secs));
                    secs
                },
                [0, 0, 2000],
                opts,
            )
            .unwrap()
        {
            match r {
                Ok(v) => results.push(v),
                Err(e) => {
                    assert_eq!(e, FutureError::TimedOut);
                    break;
                }
            }
        }
        assert_eq!(results, [0, 0]);
        pool.shutdown(Shutdown::new().wait(false).cancel_futures(true));
    });
}

/// executor.ExecutorTest.test_shutdown_race_issue12456
#[test]
fn shutdown_race_issue12456() {
    let pool = ThreadPool::new(4).unwrap();
    pool.submit(|| 2i64.pow(8)).unwrap();
    pool.shutdown_and_wait();
}

/// executor.ExecutorTest.test_no_stale_references: the pool keeps no reference to a finished
/// task's closure or result.
#[test]
fn no_stale_references() {
    struct Canary(Arc<AtomicUsize>);
    impl Drop for Canary {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let pool = ThreadPool::new(2).unwrap();
    let captured = Canary(dropped.clone());
    let result_canary = Canary(dropped.clone());
    let f = pool
        .submit(move || {
            let _keep = &captured;
            result_canary
        })
        .unwrap();
    f.wait();
    // The closure (and its capture) is gone once the task ran; the result lives in the future.
    let deadline = Instant::now() + LIMIT;
    while dropped.load(Ordering::SeqCst) < 1 && Instant::now() < deadline {
        thread::yield_now();
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    drop(f);
    // The worker drops its promise (its last handle) just after completing the future, so the
    // result may outlive our handle by a moment; a leak keeps it forever.
    while dropped.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        thread::yield_now();
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "the pool holds no handle to the future"
    );
}

/// executor.ExecutorTest.test_max_workers_negative (0 here: the type rules out negatives)
#[test]
fn zero_workers_is_an_error() {
    assert_eq!(ThreadPool::new(0).unwrap_err(), BuildError::ZeroWorkers);
    assert_eq!(
        ThreadPool::new(0).unwrap_err().to_string(),
        "max_workers must be greater than 0"
    );
}

/// executor.ExecutorTest.test_map_buffersize_on_infinite_iterable
#[test]
fn map_buffersize_on_infinite_iterable() {
    let pool = ThreadPool::new(2).unwrap();
    let opts = MapOptions::new().buffersize(2);
    let mut it = pool.map(|x: u64| x.to_string(), 0.., opts).unwrap();
    assert_eq!(it.next(), Some(Ok("0".into())));
    assert_eq!(it.next(), Some(Ok("1".into())));
    assert_eq!(it.next(), Some(Ok("2".into())));
}

/// executor.ExecutorTest.test_map_buffersize_validation (0 here: the type rules out the rest),
/// and test_process_pool's `chunksize must be >= 1.`: `map` refuses before submitting anything.
#[test]
fn map_refuses_zero_buffersize_and_chunksize() {
    let pool = ThreadPool::new(2).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    for (opts, expected, text) in [
        (
            MapOptions::new().buffersize(0),
            OptionsError::ZeroBuffersize,
            "buffersize must be None or > 0",
        ),
        (
            MapOptions::new().chunksize(0),
            OptionsError::ZeroChunksize,
            "chunksize must be >= 1",
        ),
    ] {
        let r = ran.clone();
        let error = pool
            .map(
                move |x: u8| r.fetch_add(usize::from(x), Ordering::SeqCst),
                [1, 2],
                opts,
            )
            .err()
            .expect("refused");
        assert_eq!(error, expected);
        assert_eq!(error.to_string(), text);
    }
    // A chunksize above 1 is accepted; the thread pool runs one task per item.
    let out: Vec<_> = pool
        .map(|x: u8| x * 2, [1, 2, 3], MapOptions::new().chunksize(2))
        .unwrap()
        .collect();
    assert_eq!(out, vec![Ok(2), Ok(4), Ok(6)]);
    pool.shutdown_and_wait();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "nothing was submitted");
    assert_eq!(pool.stats().live_threads, 0);
}

/// A thread cannot be stopped, so the thread pool refuses a per-task timeout up front instead of
/// ignoring it.
#[test]
fn map_refuses_task_timeout() {
    let pool = ThreadPool::new(1).unwrap();
    let opts = MapOptions::new().task_timeout(Duration::from_secs(1));
    let error = pool.map(|x: u8| x, [1], opts).err().expect("refused");
    assert!(matches!(error, OptionsError::Unsupported(_)), "{error:?}");
    assert!(error.to_string().contains("task_timeout"), "{error}");
    assert_eq!(pool.stats().live_threads, 0, "no task was submitted");
}

/// executor.ExecutorTest.test_map_buffersize_when_buffer_is_full: at most `buffersize` tasks
/// are in flight ahead of the consumer.
#[test]
fn map_buffersize_when_buffer_is_full() {
    let pool = ThreadPool::new(2).unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let p = pulled.clone();
    let inputs = (0..).inspect(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
    });
    let opts = MapOptions::new().buffersize(4);
    let mut it = pool.map(|x: u64| x, inputs, opts).unwrap();
    assert_eq!(it.next(), Some(Ok(0)));
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        4,
        "input is read only as far as the buffer"
    );
}

/// executor.ExecutorTest.test_swallows_falsey_exceptions: an error value that is "empty" is
/// still an error.
#[test]
fn swallows_falsey_exceptions() {
    let pool = ThreadPool::new(2).unwrap();
    let f = pool
        .submit_fallible(|| Err::<(), _>(String::new()))
        .unwrap();
    assert_eq!(f.exception(), Some(FutureError::Raised(&String::new())));
}

/// Dropping a `map` iterator cancels the tasks that have not started.
#[test]
fn dropping_map_cancels_unstarted_tasks() {
    watchdog(LIMIT, || {
        let pool = ThreadPool::new(1).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let gate = Event::default();
        let (r, g) = (ran.clone(), gate.clone());
        let opts = MapOptions::new().buffersize(8);
        let mut it = pool
            .map(
                move |x: u32| {
                    if x > 0 {
                        g.wait();
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                },
                0..100,
                opts,
            )
            .unwrap();
        assert_eq!(it.next(), Some(Ok(())));
        drop(it);
        gate.set();
        pool.shutdown_and_wait();
        let ran = ran.load(Ordering::SeqCst);
        assert!(ran <= 2, "{ran} tasks ran: the rest were cancelled");
    });
}

// ---- test_thread_pool.py --------------------------------------------------------------------

/// test_thread_pool.ThreadPoolExecutorTest.test_map_submits_without_iteration
#[test]
fn map_submits_without_iteration() {
    // Our map is lazy by design: nothing runs until it is iterated (Python submits at the
    // call). Iterating to the end runs every task.
    let pool = ThreadPool::new(4).unwrap();
    let finished = Arc::new(Mutex::new(Vec::new()));
    let f = finished.clone();
    let it = pool
        .map(
            move |x: u32| f.lock().unwrap().push(x),
            0..10,
            MapOptions::default(),
        )
        .unwrap();
    assert!(finished.lock().unwrap().is_empty());
    assert_eq!(it.count(), 10);
    let set: HashSet<_> = finished.lock().unwrap().iter().copied().collect();
    assert_eq!(set, (0..10).collect());
}

/// test_thread_pool.ThreadPoolExecutorTest.test_default_workers
#[test]
fn default_workers() {
    let cpus = thread::available_parallelism().unwrap().get();
    assert_eq!(futurepool_threads::default_workers(), (cpus + 4).min(32));
    assert_eq!(
        ThreadPool::with_default_workers().max_workers(),
        (cpus + 4).min(32)
    );
}

/// test_thread_pool.ThreadPoolExecutorTest.test_saturation: 60 blocked tasks on 4 workers
/// use exactly 4 threads.
#[test]
fn saturation() {
    watchdog(LIMIT, || {
        let pool = ThreadPool::new(4).unwrap();
        let sem = Semaphore::default();
        let futures: Vec<_> = (0..15 * 4)
            .map(|_| {
                let s = sem.clone();
                pool.submit(move || s.acquire()).unwrap()
            })
            .collect();
        assert_eq!(pool.stats().live_threads, 4);
        sem.release(60);
        for f in &futures {
            f.result().unwrap();
        }
        pool.shutdown_and_wait();
        assert_eq!(pool.stats().live_threads, 0);
    });
}

/// test_thread_pool.ThreadPoolExecutorTest.test_idle_thread_reuse
#[test]
fn idle_thread_reuse() {
    let pool = ThreadPool::new(4).unwrap();
    for _ in 0..3 {
        pool.submit(|| 2i64.pow(8)).unwrap().result().unwrap();
    }
    assert_eq!(pool.stats().live_threads, 1);
}

/// test_thread_pool.ThreadPoolExecutorTest.test_executor_map_current_future_cancel: dropping
/// a map whose first task is blocked cancels the queued ones and does not hang.
#[test]
fn map_current_future_cancel() {
    watchdog(LIMIT, || {
        let stop = Event::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let pool = ThreadPool::new(1).unwrap();
        {
            let (s, l) = (stop.clone(), log.clone());
            let mut it = pool
                .map(
                    move |x: &'static str| {
                        l.lock().unwrap().push(format!("{x} starts"));
                        s.wait();
                        l.lock().unwrap().push(format!("{x} stops"));
                    },
                    ["first", "second"],
                    MapOptions::new().timeout(Duration::from_millis(100)),
                )
                .unwrap();
            assert_eq!(it.next(), Some(Err(FutureError::TimedOut)));
        }
        stop.set();
        pool.shutdown_and_wait();
        assert_eq!(*log.lock().unwrap(), ["first starts", "first stops"]);
    });
}

// ---- test_shutdown.py -----------------------------------------------------------------------

/// test_shutdown.ExecutorShutdownTest.test_run_after_shutdown
#[test]
fn run_after_shutdown() {
    let pool = ThreadPool::new(2).unwrap();
    pool.shutdown_and_wait();
    assert_eq!(
        pool.submit(|| 2i64.pow(8)).unwrap_err(),
        SubmitError::ShutDown
    );
    assert_eq!(
        pool.submit(|| ()).unwrap_err().to_string(),
        "cannot schedule new futures after shutdown"
    );
}

/// test_shutdown.ExecutorShutdownTest.test_hang_issue12364
#[test]
fn hang_issue12364() {
    watchdog(LIMIT, || {
        let pool = ThreadPool::new(5).unwrap();
        let fs: Vec<_> = (0..50)
            .map(|_| {
                pool.submit(|| thread::sleep(Duration::from_millis(1)))
                    .unwrap()
            })
            .collect();
        pool.shutdown_and_wait();
        for f in fs {
            f.result().unwrap();
        }
    });
}

/// test_shutdown.ExecutorShutdownTest.test_cancel_futures: 50 tasks behind one blocked
/// worker; `cancel_futures` cancels the queued ones.
#[test]
fn cancel_futures() {
    watchdog(LIMIT, || {
        let pool = ThreadPool::new(1).unwrap();
        let gate = Event::default();
        let fs: Vec<_> = (0..50)
            .map(|_| {
                let g = gate.clone();
                pool.submit(move || g.wait()).unwrap()
            })
            .collect();
        // Let the worker take the first task.
        while !fs[0].running() {
            thread::yield_now();
        }
        // Open the gate only once the queued 49 are done (cancelled), so the running task
        // cannot finish early and let the worker take another one.
        let opener = {
            let g = gate.clone();
            let queued: Vec<_> = fs[1..].to_vec();
            thread::spawn(move || {
                while !queued.iter().all(|f| f.done()) {
                    thread::sleep(Duration::from_millis(1));
                }
                g.set();
            })
        };
        pool.shutdown(Shutdown::new().cancel_futures(true));
        opener.join().unwrap();
        let cancelled = fs.iter().filter(|f| f.cancelled()).count();
        assert_eq!(cancelled, 49, "all but the running one");
        assert!(fs.iter().all(|f| f.done()));
        assert_eq!(fs[0].result(), Ok(&()));
    });
}

/// test_shutdown.ThreadPoolShutdownTest.test_threads_terminate / test_shutdown_no_wait
#[test]
fn threads_terminate() {
    watchdog(LIMIT, || {
        let pool = ThreadPool::new(3).unwrap();
        let sem = Semaphore::default();
        for _ in 0..3 {
            let s = sem.clone();
            pool.submit(move || s.acquire()).unwrap();
        }
        assert_eq!(pool.stats().live_threads, 3);
        sem.release(3);
        pool.shutdown_and_wait();
        assert_eq!(pool.stats().live_threads, 0);
    });
}

/// test_shutdown.ThreadPoolShutdownTest.test_shutdown_no_wait: returns at once; the queue
/// still runs.
#[test]
fn shutdown_no_wait() {
    watchdog(LIMIT, || {
        let pool = ThreadPool::new(2).unwrap();
        let gate = Event::default();
        let fs: Vec<_> = (0..4)
            .map(|_| {
                let g = gate.clone();
                pool.submit(move || g.wait()).unwrap()
            })
            .collect();
        pool.shutdown(Shutdown::new().wait(false));
        assert!(!fs[3].done());
        gate.set();
        for f in &fs {
            assert_eq!(f.result(), Ok(&()));
        }
    });
}

/// test_shutdown.ThreadPoolShutdownTest.test_context_manager_shutdown / test_del_shutdown:
/// dropping the pool waits for its work.
#[test]
fn drop_is_shutdown_and_wait() {
    watchdog(LIMIT, || {
        let done = Arc::new(AtomicUsize::new(0));
        {
            let pool = ThreadPool::new(2).unwrap();
            for _ in 0..10 {
                let d = done.clone();
                pool.submit(move || {
                    thread::sleep(Duration::from_millis(2));
                    d.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            }
        }
        assert_eq!(done.load(Ordering::SeqCst), 10);
    });
}

/// test_shutdown.ThreadPoolShutdownTest.test_thread_names_assigned / _default
#[test]
fn thread_names() {
    let pool = Builder::new()
        .max_workers(3)
        .thread_name_prefix("SpecialPool")
        .build()
        .unwrap();
    let names: Vec<_> = (0..3)
        .map(|_| {
            pool.submit(|| thread::current().name().map(String::from))
                .unwrap()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|f| f.result().unwrap().clone().unwrap())
        .collect();
    for name in names {
        assert!(name.starts_with("SpecialPool_"), "{name}");
        let n: usize = name["SpecialPool_".len()..].parse().unwrap();
        assert!(n < 3);
    }
    let pool = ThreadPool::new(1).unwrap();
    let name = pool
        .submit(|| thread::current().name().map(String::from))
        .unwrap();
    let name = name.result().unwrap().clone().unwrap();
    assert!(
        name.starts_with("ThreadPoolExecutor-") && name.ends_with("_0"),
        "{name}"
    );
}

/// Better than CPython (gh-130975): a pool dropped while unwinding cancels its queue.
#[test]
fn drop_during_panic_cancels_queue() {
    watchdog(LIMIT, || {
        let ran = Arc::new(AtomicUsize::new(0));
        let gate = Event::default();
        let mut fs = Vec::new();
        let r = ran.clone();
        let g = gate.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let pool = ThreadPool::new(1).unwrap();
            for _ in 0..20 {
                let (r, g) = (r.clone(), g.clone());
                fs.push(
                    pool.submit(move || {
                        g.wait();
                        r.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap(),
                );
            }
            while !fs[0].running() {
                thread::yield_now();
            }
            // Open the gate only once the pool's drop (while unwinding) has cancelled the queue.
            let g = g.clone();
            let queued: Vec<_> = fs[1..].to_vec();
            thread::spawn(move || {
                while !queued.iter().all(|f| f.done()) {
                    thread::sleep(Duration::from_millis(1));
                }
                g.set();
            });
            // `resume_unwind` skips the panic hook (whose backtrace printing can take longer
            // than the gate's delay): the unwinding starts at once.
            std::panic::resume_unwind(Box::new("caller failed"));
        }));
        assert!(result.is_err());
        let ran = ran.load(Ordering::SeqCst);
        assert_eq!(
            ran, 1,
            "only the running task finished; the queue was cancelled"
        );
        assert!(fs.iter().all(|f| f.done()));
        assert!(fs.iter().any(|f| f.cancelled()));
        drop(gate);
    });
}

/// shutdown(wait) from inside one of the pool's own tasks does not deadlock.
#[test]
fn shutdown_from_a_task() {
    watchdog(LIMIT, || {
        let pool = Arc::new(ThreadPool::new(2).unwrap());
        let p = pool.clone();
        let f = pool.submit(move || p.shutdown_and_wait()).unwrap();
        f.result().unwrap();
        assert_eq!(pool.submit(|| ()).unwrap_err(), SubmitError::ShutDown);
    });
}

// ---- test_init.py ---------------------------------------------------------------------------

/// test_init.InitializerMixin.test_initializer: every worker ran the initializer first.
#[test]
fn initializer_runs_in_each_worker() {
    thread_local! { static INITIALIZED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) }; }
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let pool = Builder::new()
        .max_workers(3)
        .initializer(move || {
            INITIALIZED.with(|i| i.set(true));
            c.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .build()
        .unwrap();
    let sem = Semaphore::default();
    let fs: Vec<_> = (0..3)
        .map(|_| {
            let s = sem.clone();
            pool.submit(move || {
                s.acquire();
                INITIALIZED.with(|i| i.get())
            })
            .unwrap()
        })
        .collect();
    sem.release(3);
    assert!(fs.iter().all(|f| *f.result().unwrap()));
    pool.shutdown_and_wait();
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

/// test_init.FailingInitializerMixin.test_initializer: a failing initializer breaks the pool;
/// queued futures fail with a broken-executor error; later submits are refused.
#[test]
fn failing_initializer_breaks_the_pool() {
    watchdog(LIMIT, || {
        let pool = Builder::new()
            .max_workers(2)
            .initializer(|| Err("error in initializer".into()))
            .build()
            .unwrap();
        let fs: Vec<_> = (0..10).filter_map(|_| pool.submit(|| 1).ok()).collect();
        assert!(!fs.is_empty());
        for f in &fs {
            match f.result() {
                Err(FutureError::Broken(why)) => {
                    assert!(why.contains("initializer failed"), "{why}");
                    assert!(why.contains("error in initializer"), "{why}");
                }
                other => panic!("expected a broken pool, got {other:?}"),
            }
        }
        match pool.submit(|| 1) {
            Err(SubmitError::Broken(why)) => assert!(why.contains("initializer")),
            other => panic!("expected a refusal, got {other:?}"),
        }
    });
}

/// An initializer that panics breaks the pool the same way.
#[test]
fn panicking_initializer_breaks_the_pool() {
    watchdog(LIMIT, || {
        let pool = Builder::new()
            .max_workers(1)
            .initializer(|| panic!("init boom"))
            .build()
            .unwrap();
        let f = pool.submit(|| 1).unwrap();
        assert!(matches!(f.result(), Err(FutureError::Broken(why)) if why.contains("init boom")));
    });
}

// ---- beyond CPython -------------------------------------------------------------------------

#[test]
fn panicking_task_fails_only_its_future_and_the_worker_survives() {
    let pool = ThreadPool::new(1).unwrap();
    let bad = pool
        .submit(|| -> u8 { panic!("task {} exploded", 7) })
        .unwrap();
    let good = pool.submit(|| 5u8).unwrap();
    match bad.result() {
        Err(FutureError::Panicked(p)) => assert_eq!(p.message(), "task 7 exploded"),
        other => panic!("{other:?}"),
    }
    assert_eq!(good.result(), Ok(&5));
    assert_eq!(pool.stats().live_threads, 1, "the same worker ran both");
}

#[test]
fn typed_errors() {
    #[derive(Debug, PartialEq)]
    struct NotFound(&'static str);
    let pool = ThreadPool::new(1).unwrap();
    let f = pool
        .submit_fallible(|| Err::<u8, _>(NotFound("x")))
        .unwrap();
    assert_eq!(f.result(), Err(FutureError::Raised(&NotFound("x"))));
}

#[test]
fn scoped_tasks_borrow_from_the_stack() {
    let pool = ThreadPool::new(2).unwrap();
    let mut words = vec!["a".to_string(), "bb".into(), "ccc".into()];
    let lens: usize = pool.scope(|s| {
        let fs: Vec<_> = words
            .iter()
            .map(|w| s.submit(move || w.len()).unwrap())
            .collect::<Vec<_>>();
        fs.iter().map(|f| *f.result().unwrap()).sum()
    });
    assert_eq!(lens, 6);
    words.push("still mine".into());
    // A scoped task may also write through a borrow; scope returns after it is done.
    let mut total = 0u64;
    pool.scope(|s| {
        let t = &mut total;
        s.submit(move || *t += 41).unwrap();
    });
    assert_eq!(total, 41);
}

#[test]
fn scope_waits_for_tasks_even_when_its_body_panics() {
    watchdog(LIMIT, || {
        let pool = ThreadPool::new(2).unwrap();
        let finished = AtomicUsize::new(0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.scope(|s| {
                for _ in 0..4 {
                    s.submit(|| {
                        thread::sleep(Duration::from_millis(10));
                        finished.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
                panic!("body failed");
            })
        }));
        assert!(r.is_err());
        assert_eq!(finished.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn stats_report_threads_idle_and_queue() {
    watchdog(LIMIT, || {
        let pool = ThreadPool::new(2).unwrap();
        let s0 = pool.stats();
        assert_eq!(
            (
                s0.live_threads,
                s0.idle_threads,
                s0.queued_tasks,
                s0.max_workers
            ),
            (0, 0, 0, 2)
        );
        let gate = Event::default();
        let fs: Vec<_> = (0..5)
            .map(|_| {
                let g = gate.clone();
                pool.submit(move || g.wait()).unwrap()
            })
            .collect();
        while !(fs[0].running() && fs[1].running()) {
            thread::yield_now();
        }
        let s = pool.stats();
        assert_eq!((s.live_threads, s.idle_threads, s.queued_tasks), (2, 0, 3));
        gate.set();
        for f in &fs {
            f.result().unwrap();
        }
        let deadline = Instant::now() + LIMIT;
        while pool.stats().idle_threads != 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(pool.stats().idle_threads, 2);
    });
}

#[test]
fn wait_and_as_completed_over_pool_futures() {
    watchdog(LIMIT, || {
        let pool = ThreadPool::new(4).unwrap();
        let fs: Vec<_> = (0..100u64)
            .map(|i| {
                pool.submit(move || {
                    thread::sleep(Duration::from_micros(100 * (i % 7)));
                    i
                })
                .unwrap()
            })
            .collect();
        let waited = wait(&fs, None, ReturnWhen::AllCompleted);
        assert_eq!(waited.done.len(), 100);
        let sum: u64 = as_completed(fs, None)
            .map(|f| *f.unwrap().result().unwrap())
            .sum();
        assert_eq!(sum, 4950);
    });
}

#[test]
fn stack_size_is_applied() {
    // Recursing through ~6 MiB of stack overflows Rust's default 2 MiB thread stack; with a
    // 32 MiB stack it completes.
    fn deep(n: u64) -> u64 {
        let pad = std::hint::black_box([n; 64]); // 512 bytes a frame
        if n == 0 {
            pad[0]
        } else {
            deep(n - 1).wrapping_add(pad[63])
        }
    }
    let pool = Builder::new()
        .max_workers(1)
        .stack_size(32 << 20)
        .build()
        .unwrap();
    let f = pool.submit(|| deep(12_000)).unwrap();
    assert!(f.result().is_ok());
}

#[test]
fn shutdown_is_idempotent() {
    let pool = ThreadPool::new(2).unwrap();
    pool.submit(|| ()).unwrap();
    for options in [
        Shutdown::new().wait(false),
        Shutdown::new().cancel_futures(true),
        Shutdown::default(),
    ] {
        pool.shutdown(options);
    }
    assert_eq!(pool.stats().live_threads, 0);
    assert_eq!(pool.submit(|| ()).unwrap_err(), SubmitError::ShutDown);
}
