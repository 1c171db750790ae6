//! Runs the built `pool` binary: success paths and bad input.

use std::process::Command;

fn pool(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pool"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bench_prints_a_table_of_wall_times_and_speedups() {
    let (code, out, err) = pool(&[
        "bench",
        "--cpu-tasks",
        "4",
        "--cpu-size",
        "100000",
        "--io-tasks",
        "4",
        "--io-ms",
        "5",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    for needle in [
        "CPU-bound (sum of squares)   sequential",
        "CPU-bound (sum of squares)   thread pool",
        "I/O-bound (sleep)            sequential",
        "I/O-bound (sleep)            thread pool",
        "CPU-bound (sum of squares)   process pool",
        "I/O-bound (sleep)            process pool",
        "speedup",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn bench_json_is_one_object_per_measurement() {
    let (code, out, err) = pool(&[
        "bench",
        "--json",
        "--cpu-tasks",
        "2",
        "--cpu-size",
        "1000",
        "--io-tasks",
        "2",
        "--io-ms",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert!(lines
        .iter()
        .all(|l| l.starts_with("{\"workload\":") && l.contains("\"speedup\":")));
    assert!(out.contains("\"mode\":\"process pool ("), "{out}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for args in [
        &["bench", "--cpu-tasks", "0"][..],
        &["frobnicate"],
        &["bench", "--nope"],
        &["bench", "-j", "0"],
    ] {
        let (code, out, err) = pool(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty());
        assert!(err.starts_with("pool: "), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        assert!(err.lines().count() <= 2, "{err}");
    }
}

#[test]
fn help_and_version_succeed() {
    let (code, out, _) = pool(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("bench"));
    let (code, out, _) = pool(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("pool "));
}
