//! Runs every example of the guide and checks the lines a reader relies on, so they cannot
//! rot. The examples are built by `cargo test` next to this test binary.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `target/<profile>/examples/<name>` with a watchdog; its stdout.
fn run(name: &str) -> String {
    let exe: PathBuf = std::env::current_exe()
        .unwrap()
        .parent() // deps
        .and_then(|p| p.parent()) // <profile>
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        exe.exists(),
        "example {name} not built at {}",
        exe.display()
    );
    let mut child = Command::new(&exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("watchdog: example {name} still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn check(name: &str, needles: &[&str]) -> String {
    let out = run(name);
    for needle in needles {
        assert!(
            out.contains(needle),
            "{name}: missing {needle:?} in:\n{out}"
        );
    }
    out
}

#[test]
fn manual_threads() {
    let out = check(
        "manual_threads",
        &[
            "Worker 2 starting",
            "Worker 2 finished",
            "Return values: [0, 1, 2]",
        ],
    );
    assert_eq!(out.matches("finished").count(), 6);
}

#[test]
fn thread_pool_map() {
    check(
        "thread_pool_map",
        &[
            "Starting to fetch http://127.0.0.1:",
            "Content lengths: [34, 34, 34]",
        ],
    );
}

#[test]
fn process_pool_map() {
    check(
        "process_pool_map",
        &["Results: [333328333350000, 2666646666700000, 1124988750025000, 8999955000050000]"],
    );
}

#[test]
fn future_basics() {
    check(
        "future_basics",
        &[
            "Tasks submitted, continuing other work...",
            "Future1 done: false",
            "Result 1: Slept for 2 seconds",
            "Result 3: Slept for 1 seconds",
        ],
    );
}

#[test]
fn exception_handling() {
    check(
        "exception_handling",
        &[
            "Task 0 result: 0",
            "Task 2 failed: Number 2 is not allowed!",
            "Task 3 result: 9",
        ],
    );
}

#[test]
fn as_completed() {
    let out = check("as_completed", &["Completed: Task"]);
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("Completed: Task"))
            .count(),
        5
    );
}

#[test]
fn timeouts() {
    check(
        "timeouts",
        &[
            "Task took too long, continuing with other work",
            "Later: Completed after 5 seconds",
        ],
    );
}

#[test]
fn web_scraper() {
    check(
        "web_scraper",
        &[
            "Starting concurrent web scraping...",
            "/status/200: 200 (0 bytes",
            "/status/404: 404 (0 bytes",
            "/json: 200 (59 bytes",
            "/delay/2: 200 (34 bytes",
            "❌ http://127.0.0.1:9/",
            "Total time:",
        ],
    );
}

#[test]
fn threads_vs_processes() {
    check(
        "threads_vs_processes",
        &[
            "CPU-bound with threads:",
            "CPU-bound with processes:",
            "Threads: ",
        ],
    );
}

#[test]
fn worker_count() {
    check(
        "worker_count",
        &["Optimal workers: ", "Task ran on thread WebScraper_0"],
    );
}

#[test]
fn with_vs_shutdown() {
    check(
        "with_vs_shutdown",
        &[
            "Manual shutdown: 8 tasks done, 0 threads left",
            "Submit after shutdown: cannot schedule new futures after shutdown",
            "Scope exit: 16 tasks done",
        ],
    );
}

#[test]
fn batch_processing() {
    check(
        "batch_processing",
        &[
            "Processed 10 batches of 100: total 511213536",
            "Lazy map with bounded look-ahead: total 511213536",
        ],
    );
}

#[test]
fn pitfall_shared_state() {
    check(
        "pitfall_shared_state",
        &["Mutex counter: 400000", "Atomic counter: 400000"],
    );
}

#[test]
fn pitfall_blocking() {
    check(
        "pitfall_blocking",
        &[
            "Task taking too long, continuing...",
            "Finished in time: quick",
            "Gave up waiting: 1 (of 2) futures unfinished",
        ],
    );
}

#[test]
fn pitfall_silent_failures() {
    check(
        "pitfall_silent_failures",
        &[
            "Task 2 failed: task failed: Number 2 is not allowed!",
            "3 of 10 tasks failed",
        ],
    );
}

#[test]
fn file_processor() {
    check(
        "file_processor",
        &[
            "Processing 9 files with 6 workers...",
            "✅ file7.txt: 80 lines, 720 words",
            "❌ binary.txt: stream did not contain valid UTF-8",
            "Files processed: 8",
            "Total lines: 360",
            "Total words: 3240",
        ],
    );
}
