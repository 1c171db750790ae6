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

// ---- pool run ---------------------------------------------------------------------------------

fn pool_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pool"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pool-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn run_keeps_input_order_with_k_and_substitutes_placeholders() {
    let (code, out, err) = pool(&[
        "run",
        "-k",
        "-j",
        "3",
        "sleep 0.0{#}; echo {} {.} {/} {#}",
        ":::",
        "c/x.txt",
        "b",
        "a b.tar",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "c/x.txt c/x x.txt 1\nb b b 2\na b.tar a b a b.tar 3\n");
}

#[test]
fn run_reads_inputs_from_stdin_and_appends_them_without_placeholder() {
    let (code, out, _) = pool_stdin(&["run", "-k", "echo", "got"], "x\ny z\n");
    assert_eq!(code, 0);
    assert_eq!(out, "got x\ngot y z\n");
}

#[test]
fn run_prints_each_jobs_output_whole() {
    let (code, out, _) = pool(&[
        "run",
        "-j",
        "4",
        "for i in 1 2 3; do echo {}$i; sleep 0.01; done",
        ":::",
        "a",
        "b",
        "c",
        "d",
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 12);
    for block in lines.chunks(3) {
        let job = &block[0][..1];
        assert_eq!(
            block,
            [format!("{job}1"), format!("{job}2"), format!("{job}3")],
            "interleaved: {out}"
        );
    }
}

#[test]
fn run_exit_code_counts_failed_jobs_capped_at_101() {
    let (code, _, err) = pool(&["run", "exit {}", ":::", "0", "1", "2", "0", "3"]);
    assert_eq!(code, 3);
    assert!(err.contains("pool run: 3 of 5 jobs failed"), "{err}");
    let many: Vec<String> = (0..105).map(|i| i.to_string()).collect();
    let mut args = vec!["run", "-j", "8", "exit 1", ":::"];
    args.extend(many.iter().map(String::as_str));
    let (code, _, _) = pool(&args);
    assert_eq!(code, 101);
}

#[test]
fn run_timeout_kills_the_whole_process_group() {
    let dir = scratch("timeout");
    let marker = dir.join("marker");
    let cmd = format!("(sleep 2; touch {}) & sleep 30 # {{}}", marker.display());
    let start = std::time::Instant::now();
    let (code, _, err) = pool(&[
        "run",
        "--timeout",
        "0.3",
        "--grace",
        "0.2",
        &cmd,
        ":::",
        "x",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        !marker.exists(),
        "the background child survived the timeout"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_retries_a_failing_job() {
    let dir = scratch("retries");
    let flag = dir.join("flag");
    let cmd = format!(
        "test -e {0} || {{ touch {0}; exit 1; }}; echo ok {{}}",
        flag.display()
    );
    let (code, out, _) = pool(&["run", "--retries", "1", &cmd, ":::", "x"]);
    assert_eq!((code, out.as_str()), (0, "ok x\n"));
    let _ = std::fs::remove_dir_all(&dir);
    let (code, _, _) = pool(&["run", "--retries", "2", "exit 1", ":::", "x"]);
    assert_eq!(code, 1);
}

#[test]
fn run_halt_now_stops_after_the_first_failure() {
    let (code, out, err) = pool(&[
        "run",
        "-j",
        "1",
        "--halt",
        "now,fail=1",
        "sleep 0.05; echo {}; exit {}",
        ":::",
        "0",
        "1",
        "0",
        "0",
        "0",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("halting"), "{err}");
    assert!(out.lines().count() <= 3, "no new job after the halt: {out}");
}

#[test]
fn run_joblog_has_gnu_parallels_columns() {
    let dir = scratch("joblog");
    let log = dir.join("log.tsv");
    let (code, _, _) = pool(&[
        "run",
        "--joblog",
        log.to_str().unwrap(),
        "-k",
        "echo {}; exit {}",
        ":::",
        "0",
        "3",
    ]);
    assert_eq!(code, 1);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand")
    );
    let mut rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    rows.sort_by_key(|r| r[0].to_string());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][0], "2");
    assert_eq!(rows[1][6], "3", "exit value");
    assert_eq!(rows[1][5], "2", "bytes received");
    assert_eq!(rows[1][8], "echo 3; exit 3");
    assert!(
        rows[0][2].parse::<f64>().unwrap() > 1.0e9,
        "start time in epoch seconds"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_dry_run_prints_quoted_commands() {
    let (code, out, _) = pool(&[
        "run",
        "--dry-run",
        "convert {} {.}.png",
        ":::",
        "a.jpg",
        "b c.jpg",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out, "convert a.jpg a.png\nconvert 'b c.jpg' 'b c'.png\n");
}

#[test]
fn run_bad_input_is_exit_2() {
    for args in [
        &["run"][..],
        &["run", "-j", "0", "echo", ":::", "x"],
        &["run", "--halt", "never", "echo"],
        &["run", "--timeout", "-1", "echo"],
    ] {
        let (code, out, err) = pool(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(err.starts_with("pool: "), "{err}");
    }
}

#[test]
fn run_broken_pipe_exits_quietly() {
    let many: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pool"))
        .args(["run", "-k", "echo"])
        .arg(":::")
        .args(&many)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 2];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn run_json_is_one_object_per_job() {
    let (code, out, _) = pool(&["run", "-k", "--json", "echo {}; exit {}", ":::", "0", "2"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0]
            .starts_with("{\"seq\":1,\"input\":\"0\",\"command\":\"echo 0; exit 0\",\"exit\":0,"),
        "{out}"
    );
    assert!(
        lines[1].contains("\"exit\":2") && lines[1].contains("\"stdout\":\"2\\n\""),
        "{out}"
    );
}
