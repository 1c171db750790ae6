//! The process pool under faults: each test pins one way a worker, the machine or the caller
//! can misbehave, and checks that only the task concerned fails, with an error that says why,
//! and that the pool goes on. Every test runs under a watchdog.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bytes_of, echo, fork_then_abort, frame, send_raw, sleep_ms, square};
use futurepool_core::Executor;
use futurepool_procs::{FutureError, MapOptions, OptionsError, ProcessPool, Shutdown};
use futurepool_testkit::watchdog;

futurepool_procs::test_worker!();

const LIMIT: Duration = Duration::from_secs(90);

fn lost(result: Result<&u8, FutureError<&std::convert::Infallible>>) -> String {
    match result {
        Err(FutureError::WorkerLost(why)) => why.to_string(),
        other => panic!("expected WorkerLost, got {other:?}"),
    }
}

// ---- hostile bytes ---------------------------------------------------------------------------

#[test]
fn a_frame_claiming_2_pow_60_bytes_fails_the_worker_not_the_parent() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let f = pool.submit(send_raw, frame(1 << 60, b"")).unwrap();
        let why = lost(f.result());
        assert!(why.contains("1152921504606846976"), "{why}");
        assert!(why.contains("max_message_size"), "{why}");
        assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
    });
}

#[test]
fn a_malformed_frame_fails_the_worker_with_a_protocol_error() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        for body in [
            &[99u8, 1, 2][..],
            &[3, 0, 0][..],
            &[3, 1, 0, 0, 0, 0, 0, 0, 0, 9][..],
        ] {
            let f = pool
                .submit(send_raw, frame(body.len() as u64, body))
                .unwrap();
            let why = lost(f.result());
            assert!(why.contains("broke the protocol"), "{body:?}: {why}");
        }
        assert_eq!(pool.submit(square, 4).unwrap().result(), Ok(&16));
    });
}

#[test]
fn a_reply_for_another_task_fails_the_worker() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        // A well-formed `Done` for task 999 with an empty result.
        let mut body = vec![3];
        body.extend_from_slice(&999u64.to_le_bytes());
        body.push(0);
        body.extend_from_slice(&0u64.to_le_bytes());
        let f = pool
            .submit(send_raw, frame(body.len() as u64, &body))
            .unwrap();
        let why = lost(f.result());
        assert!(why.contains("unexpected reply"), "{why}");
        assert_eq!(pool.submit(square, 5).unwrap().result(), Ok(&25));
    });
}

#[test]
fn a_truncated_frame_does_not_wedge_the_task_timeout() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let started = Instant::now();
        let f = pool
            .with_task_timeout(Duration::from_secs(1))
            .submit(send_raw, frame(100, b"12345"))
            .unwrap();
        assert_eq!(f.result(), Err(FutureError::TimedOut));
        // Wide margin for a loaded machine; before, it was still pending after 15 s.
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(pool.submit(square, 6).unwrap().result(), Ok(&36));
    });
}

#[test]
fn a_result_over_max_message_size_is_refused_before_it_is_read() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .max_message_size(64 * 1024)
            .build()
            .unwrap();
        let f = pool.submit(bytes_of, 1 << 20).unwrap();
        match f.result() {
            Err(FutureError::WorkerLost(why)) => assert!(why.contains("max_message_size")),
            other => panic!("{other:?}"),
        }
        let f = pool.submit(echo, vec![1u8; 1 << 20]).unwrap();
        match f.result() {
            Err(FutureError::Codec(why)) => assert!(why.contains("max_message_size"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pool.submit(bytes_of, 10).unwrap().result(),
            Ok(&vec![7; 10])
        );
    });
}

// ---- liveness from the process -----------------------------------------------------------------

#[test]
fn a_grandchild_holding_the_socket_does_not_delay_worker_lost() {
    watchdog(LIMIT, || {
        let dir = std::env::temp_dir().join(format!("fp-grandchild-{}", std::process::id()));
        let pool = ProcessPool::new(1).unwrap();
        let started = Instant::now();
        let f = pool
            .submit(fork_then_abort, dir.display().to_string())
            .unwrap();
        let why = lost(f.result());
        let took = started.elapsed();
        let grandchild: i32 = std::fs::read_to_string(&dir).unwrap().parse().unwrap();
        // SAFETY: kill(2) has no memory-safety preconditions; the grandchild sleeps for a
        // minute, so the pid is still its own.
        unsafe {
            libc::kill(grandchild, libc::SIGKILL);
        }
        let _ = std::fs::remove_file(&dir);
        assert!(why.contains("SIGABRT"), "{why}");
        // The grandchild holds the socket for 60 s; the death is seen through the pidfd.
        assert!(took < Duration::from_secs(30), "took {took:?}");
        assert_eq!(pool.submit(square, 7).unwrap().result(), Ok(&49));
    });
}

#[test]
fn a_worker_killed_while_idle_does_not_lose_the_next_task() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        assert_eq!(pool.submit(square, 2).unwrap().result(), Ok(&4));
        let pid = pool.worker_pids()[0];
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is the pool's idle,
        // unreaped child.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        common::wait_exited(pid);
        assert_eq!(pool.submit(square, 8).unwrap().result(), Ok(&64));
        assert_eq!(pool.processes_started(), 2);
    });
}

// ---- cancel, options, the generic interface ----------------------------------------------------

#[test]
fn cancel_right_after_the_task_starts_always_kills_it() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .cancel_kills_running(true)
            .build()
            .unwrap();
        for _ in 0..20 {
            let f = pool.submit(sleep_ms, 60_000).unwrap();
            while !f.running() {
                std::hint::spin_loop();
            }
            assert!(
                f.cancel(),
                "a running task must be cancellable with the opt-in"
            );
            assert_eq!(f.result(), Err(FutureError::Cancelled));
        }
        assert_eq!(pool.submit(square, 9).unwrap().result(), Ok(&81));
    });
}

#[test]
fn startup_timeout_of_duration_max_does_not_panic() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .startup_timeout(Duration::MAX)
            .task_timeout(Duration::MAX)
            .build()
            .unwrap();
        assert_eq!(pool.submit(square, 10).unwrap().result(), Ok(&100));
        let f = pool
            .with_task_timeout(Duration::MAX)
            .submit(square, 11)
            .unwrap();
        assert_eq!(f.result(), Ok(&121));
    });
}

fn generic_shutdown(executor: &impl Executor) {
    executor.shutdown(Shutdown::new());
}

#[test]
fn executor_shutdown_ends_and_reaps_workers_like_the_inherent_one() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let a = pool.submit(square, 2).unwrap();
        let b = pool.submit(sleep_ms, 50).unwrap();
        assert_eq!((a.result(), b.result()), (Ok(&4), Ok(&50)));
        let pids = pool.worker_pids();
        assert!(!pids.is_empty());
        generic_shutdown(&pool);
        assert!(pool.worker_pids().is_empty());
        for pid in pids {
            assert!(
                std::fs::metadata(format!("/proc/{pid}")).is_err(),
                "{pid} reaped"
            );
        }
    });
}

#[test]
fn map_refuses_zero_chunksize_and_buffersize_as_cpython_does() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(1).unwrap();
        let zero_chunks = pool.map(square, 0..10u64, MapOptions::new().chunksize(0));
        assert_eq!(zero_chunks.err(), Some(OptionsError::ZeroChunksize));
        let zero_buffer = pool.map(square, 0..10u64, MapOptions::new().buffersize(0));
        assert_eq!(zero_buffer.err(), Some(OptionsError::ZeroBuffersize));
    });
}

/// `map` with a per-task timeout: each chunk is one call, killed past it.
#[test]
fn map_task_timeout_fails_only_the_slow_chunk() {
    watchdog(LIMIT, || {
        let pool = ProcessPool::new(2).unwrap();
        let options = MapOptions::new()
            .chunksize(2)
            .task_timeout(Duration::from_millis(500));
        let out: Vec<_> = pool
            .map(sleep_ms, [0, 0, 60_000, 0, 0, 0], options)
            .unwrap()
            .collect();
        assert_eq!(out.len(), 6);
        assert_eq!(out[0], Ok(0));
        assert_eq!(out[2], Err(FutureError::TimedOut));
        assert_eq!(out[3], Err(FutureError::TimedOut));
        assert_eq!(out[5], Ok(0));
    });
}

// ---- the machine in trouble: programs that own a pool, run as children ------------------------

/// Runs this test binary as a program that owns a pool (`__pool_program`, below) in `mode`,
/// with `env`; returns its output.
fn program(mode: &str, env: &[(&str, &str)]) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "__pool_program",
            "--exact",
            "--nocapture",
            "-q",
            "--test-threads=1",
        ])
        .env("FP_PROGRAM", mode)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

fn output_of(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The program side of the tests below; does nothing in an ordinary test run.
#[test]
fn __pool_program() {
    let Ok(mode) = std::env::var("FP_PROGRAM") else {
        return;
    };
    match mode.as_str() {
        "nofile" => nofile_program(),
        "nofile-fits" => nofile_fits_program(),
        "tmpdir" => {
            let pool = ProcessPool::new(2).unwrap();
            let got: Vec<u64> = (1..=4)
                .map(|i| *pool.submit(square, i).unwrap().result().unwrap())
                .collect();
            println!("tmpdir {got:?}");
        }
        _ => common::parent_program(&mode),
    }
}

fn set_nofile(soft: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the local `rlimit` only.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let old = lim.rlim_cur;
        lim.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        old
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// The descriptor limit that leaves exactly `free` descriptor numbers unused (a limit bounds
/// the numbers, and a process may hold high ones inherited from its parent).
fn limit_leaving(free: u64) -> u64 {
    let open: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own descriptor, counted above, is closed by now: one more number free.
    let mut limit = free;
    while limit - open.iter().filter(|&&fd| fd < limit).count() as u64 + 1 < free {
        limit += 1;
    }
    limit
}

/// A descriptor limit that fits the running pool — 2 per worker, plus the 3 more that the one
/// worker start in progress holds for a moment, plus what the program (and the pool) had open
/// before — and a burst that makes all 16 workers start at once: every task succeeds.
fn nofile_fits_program() {
    const WORKERS: u64 = 16;
    let pool = ProcessPool::new(WORKERS as usize).unwrap();
    set_nofile(limit_leaving(2 * WORKERS + 3));
    let futures: Vec<_> = (0..1050u64)
        .map(|i| match i % 3 {
            0 => pool.submit(sleep_ms, 3).unwrap(),
            _ => pool.submit(square, i).unwrap(),
        })
        .collect();
    let mut errors = Vec::new();
    for (i, f) in futures.iter().enumerate() {
        let want = if i % 3 == 0 { 3 } else { (i * i) as u64 };
        match f.result() {
            Ok(&v) if v == want => {}
            other => errors.push(format!("task {i}: {other:?}")),
        }
    }
    println!("fits failed={}", errors.len());
    for e in errors.iter().take(3) {
        println!("error: {e}");
    }
    println!("workers started: {}", pool.processes_started());
}

/// Issue 21: each worker start used to hold 5–6 descriptors at once, and all 16 manager
/// threads started theirs at the same time: a limit that fits the running pool failed tasks
/// with "Too many open files".
#[test]
fn a_descriptor_limit_that_fits_the_running_pool_fails_no_task() {
    watchdog(Duration::from_secs(240), || {
        let runs: usize = std::env::var("FUTUREPOOL_NOFILE_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(6);
        for run in 0..runs {
            let out = output_of(program("nofile-fits", &[]));
            assert!(out.contains("fits failed=0"), "run {run}: {out}");
        }
    });
}

/// Out of descriptors: tasks fail with an error naming the OS error, nothing hangs, and once
/// descriptors are back, the same pool and a new one work.
fn nofile_program() {
    let pool = ProcessPool::new(16).unwrap();
    let old = set_nofile(open_fds() + 4);
    let futures: Vec<_> = (0..64u64)
        .map(|i| pool.submit(square, i).unwrap())
        .collect();
    let mut ok = 0;
    let mut errors = Vec::new();
    for (i, f) in futures.iter().enumerate() {
        match f.result() {
            Ok(v) => {
                assert_eq!(*v, (i * i) as u64);
                ok += 1;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    set_nofile(old);
    println!("starved ok={ok} failed={}", errors.len());
    for e in errors.iter().take(3) {
        println!("error: {e}");
    }
    let all = errors.iter().all(|e| e.contains("Too many open files"));
    println!("all errors name EMFILE: {all}");
    let after: u64 = (0..64u64)
        .map(|i| *pool.submit(square, i).unwrap().result().unwrap())
        .sum();
    println!("same pool after: {after}");
    let fresh = ProcessPool::new(2).unwrap();
    println!(
        "new pool after: {}",
        fresh.submit(square, 12).unwrap().result().unwrap()
    );
}

#[test]
fn out_of_descriptors_gives_a_clear_error_and_no_lasting_harm() {
    watchdog(LIMIT, || {
        let out = output_of(program("nofile", &[]));
        assert!(out.contains("failed="), "{out}");
        assert!(!out.contains("failed=0"), "the limit must bite: {out}");
        assert!(out.contains("all errors name EMFILE: true"), "{out}");
        assert!(out.contains("same pool after: 85344"), "{out}"); // sum of i² for i < 64
        assert!(out.contains("new pool after: 144"), "{out}");
    });
}

#[test]
fn an_unusable_tmpdir_does_not_matter() {
    watchdog(LIMIT, || {
        let out = output_of(program("tmpdir", &[("TMPDIR", "/nonexistent/futurepool")]));
        assert!(out.contains("tmpdir [1, 4, 9, 16]"), "{out}");
    });
}

// ---- the parent dies ---------------------------------------------------------------------------

/// Starts a program whose pool has one worker (busy on a long task or idle), ends the program
/// the way `how` says, and checks the worker is gone soon after.
fn worker_dies_with_parent(busy: bool, how: &'static str) {
    watchdog(LIMIT, move || {
        let mode = format!("{}-{how}", if busy { "busy" } else { "idle" });
        let mut child = program(&mode, &[]);
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        while !line.starts_with("worker ") {
            line.clear();
            let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
            assert!(n > 0, "the program ended before printing its worker");
        }
        let worker: u32 = line["worker ".len()..].trim().parse().unwrap();
        if how == "sigkill" {
            child.kill().unwrap();
        }
        let _ = child.wait();
        let parent_gone = Instant::now();
        while !common::is_dead(worker) {
            assert!(
                parent_gone.elapsed() < Duration::from_secs(20),
                "worker {worker} outlived its parent ({mode})"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "{mode}: worker gone {:?} after its parent",
            parent_gone.elapsed()
        );
    });
}

#[test]
fn a_busy_worker_dies_when_its_parent_is_sigkilled() {
    worker_dies_with_parent(true, "sigkill");
}

#[test]
fn a_busy_worker_dies_when_its_parent_exits() {
    worker_dies_with_parent(true, "exit");
}

#[test]
fn a_busy_worker_dies_when_its_parent_aborts() {
    worker_dies_with_parent(true, "abort");
}

#[test]
fn a_busy_worker_dies_when_its_parent_panics() {
    worker_dies_with_parent(true, "panic");
}

#[test]
fn an_idle_worker_dies_when_its_parent_is_sigkilled() {
    worker_dies_with_parent(false, "sigkill");
}
