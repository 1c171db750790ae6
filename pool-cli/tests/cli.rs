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

/// Each usage error is exactly one line on stderr — `pool: ` and a message that names what is
/// wrong, with a pointer to the help — and exit code 2, whoever finds it (clap, a value parser,
/// a subcommand). Stdin is empty so `pool run` cannot wait on a terminal.
#[test]
fn usage_errors_are_one_line_naming_the_problem_and_exit_2() {
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["run", "-a", "/nonexistent/inputs", "echo"],
            &["/nonexistent/inputs", "No such file"],
        ),
        (&["run"], &["COMMAND"]),
        (&[], &["a command", "run", "wc", "fetch"]),
        (&["wc", "-j", "0"], &["--jobs", "at least 1"]),
        (
            &["fetch", "-j", "0", "http://127.0.0.1:9/"],
            &["--jobs", "at least 1"],
        ),
        (
            &["fetch", "--timeout", "-1", "http://127.0.0.1:9/"],
            &["--timeout", "`-1`", "positive"],
        ),
        (&["run", "--tag", "-u", "echo", ":::", "a"], &["--tag"]),
    ];
    for (args, needles) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_pool"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("pool: "), "{args:?}: {err}");
        assert!(err.contains("--help"), "{args:?}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: no {needle:?} in {err}");
        }
        // The OS error once, not once per level of the error chain.
        assert!(err.matches("os error").count() <= 1, "{args:?}: {err}");
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
