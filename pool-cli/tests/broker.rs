//! `pool run --broker` against `pool worker` agents on a private `redis-server`: the same
//! output, joblog and exit code as the same `pool run` without `--broker`.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use futurepool_redis::LocalServer;
use futurepool_testkit::watchdog;

/// `pool worker` processes, killed and reaped on drop.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn workers(url: &str, n: usize) -> Workers {
    Workers(
        (0..n)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_pool"))
                    .args(["worker", "--broker", url, "-j", "2", "--lease", "2"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    )
}

fn pool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pool"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A joblog's lines without the columns that differ between runs (host, start, runtime).
fn joblog(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.splitn(9, '\t').collect();
            format!("{}\t{}", cols[0], cols[4..].join("\t"))
        })
        .collect()
}

#[test]
fn run_with_a_broker_equals_the_local_run() {
    watchdog(Duration::from_secs(180), || {
        let server = LocalServer::start().unwrap();
        let url = server.url();
        let _workers = workers(&url, 2);
        let dir = server.dir();
        let cases: [&[&str]; 3] = [
            &[
                "-k",
                "--tag",
                "echo out {} {#}; echo err {} >&2; exit $(( {} % 3 ))",
                ":::",
                "1",
                "2",
                "3",
                "4",
                "5",
                "6",
                "7",
                "8",
                "9",
            ],
            &[
                "-k",
                "--timeout",
                "1",
                "sleep {}; echo slept {}",
                ":::",
                "0",
                "5",
            ],
            &[
                "--halt",
                "now,fail=1",
                "-j1",
                "-k",
                "echo {}; exit {}",
                ":::",
                "0",
                "0",
                "4",
                "0",
            ],
        ];
        for (i, case) in cases.iter().enumerate() {
            let local_log = dir.join(format!("local-{i}.log"));
            let remote_log = dir.join(format!("remote-{i}.log"));
            let mut local_args = vec!["run", "--joblog", local_log.to_str().unwrap()];
            local_args.extend_from_slice(case);
            let mut remote_args = vec![
                "run",
                "--broker",
                &url,
                "--joblog",
                remote_log.to_str().unwrap(),
            ];
            remote_args.extend_from_slice(case);
            let local = pool(&local_args);
            let remote = pool(&remote_args);
            assert_eq!(
                String::from_utf8_lossy(&remote.stdout),
                String::from_utf8_lossy(&local.stdout),
                "case {i}: stdout (remote stderr: {}, joblog: {:?})",
                String::from_utf8_lossy(&remote.stderr),
                std::fs::read_to_string(&remote_log)
            );
            assert_eq!(
                remote.status.code(),
                local.status.code(),
                "case {i}: exit code"
            );
            assert_eq!(joblog(&remote_log), joblog(&local_log), "case {i}: joblog");
            if i == 0 {
                assert_eq!(
                    String::from_utf8_lossy(&remote.stderr),
                    String::from_utf8_lossy(&local.stderr),
                    "case {i}: stderr"
                );
                assert_eq!(local.status.code(), Some(6));
            }
        }
    });
}

#[test]
fn worker_and_broker_errors_are_one_line() {
    watchdog(Duration::from_secs(60), || {
        let zero = pool(&["worker", "--broker", "redis://127.0.0.1/", "-j", "0"]);
        assert_eq!(zero.status.code(), Some(2));
        let bad = pool(&["worker", "--broker", "not a url"]);
        assert_eq!(
            bad.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
        let gone = pool(&["worker", "--broker", "redis+unix:///nonexistent/redis.sock"]);
        assert_eq!(gone.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&gone.stderr).contains("cannot use Redis"));
        let run = pool(&[
            "run",
            "--broker",
            "redis+unix:///nonexistent/redis.sock",
            "echo",
            ":::",
            "a",
        ]);
        assert_eq!(run.status.code(), Some(1));
        let mixed = pool(&["run", "--broker", "redis://h/", "-u", "echo", ":::", "a"]);
        assert_eq!(mixed.status.code(), Some(2));
    });
}

#[test]
fn bench_cluster_runs_the_tasks_on_two_agents_and_stops_them() {
    watchdog(Duration::from_secs(180), || {
        let out = pool(&[
            "bench",
            "--cluster",
            "--cpu-tasks",
            "4",
            "--cpu-size",
            "1000",
            "--io-tasks",
            "4",
            "--io-ms",
            "10",
            "--json",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let cluster_rows = text.lines().filter(|l| l.contains("redis (2×")).count();
        assert_eq!(cluster_rows, 2, "{text}");
        // Without redis-server: how to install it, exit 2.
        let missing = Command::new(env!("CARGO_BIN_EXE_pool"))
            .args(["bench", "--cluster", "--cpu-size", "10"])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert_eq!(missing.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("apt-get install redis-server"));
    });
}
