//! `pool run --broker` against `pool worker` agents on a private `redis-server`: the same
//! output, joblog and exit code as the same `pool run` without `--broker`.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use futurepool_redis::test_support::LocalServer;
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

/// A private server, or `None` (the test reported as skipped) where no server program is
/// installed; a failure instead under `FUTUREPOOL_REQUIRE_TOOLS=redis-server`.
fn server() -> Option<LocalServer> {
    match LocalServer::start() {
        Ok(server) => Some(server),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            futurepool_testkit::tools::skip("redis-server", &e.to_string());
            None
        }
        Err(e) => panic!("cannot start the test's server: {e}"),
    }
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
        let Some(server) = server() else {
            return;
        };
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
fn bench_cluster_without_a_server_says_how_to_install_one() {
    watchdog(Duration::from_secs(60), || {
        let missing = Command::new(env!("CARGO_BIN_EXE_pool"))
            .args(["bench", "--cluster", "--cpu-size", "10"])
            .env("PATH", "/nonexistent")
            .env_remove(futurepool_redis::test_support::SERVER_ENV)
            .output()
            .unwrap();
        assert_eq!(missing.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("apt-get install redis-server"));
    });
}

#[test]
fn bench_cluster_runs_the_tasks_on_two_agents_and_stops_them() {
    watchdog(Duration::from_secs(180), || {
        // `pool bench --cluster` starts its own server: only whether one can start is asked.
        let Some(probe) = server() else {
            return;
        };
        drop(probe);
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
    });
}

/// The processes of process group `pgid` that are alive (not zombies), from `/proc`.
fn alive_in_group(pgid: i32) -> Vec<i32> {
    let mut alive = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, pgrp.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            alive.push(pid);
        }
    }
    alive
}

/// Waits up to `limit` for `path` to hold a number.
fn read_pid(path: &std::path::Path, limit: Duration) -> i32 {
    let until = std::time::Instant::now() + limit;
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            std::time::Instant::now() < until,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `limit` for every process of group `pgid` to end.
fn group_ends(pgid: i32, limit: Duration) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if alive_in_group(pgid).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Stopping a remote job kills the agent's worker process that runs it; the job's own
/// process group (here a shell and its `sleep`) must die with it, not run on unowned: after
/// Ctrl-C of `pool run --broker`, and after the agent itself is SIGKILLed.
#[test]
fn a_stopped_remote_job_leaves_no_process_behind() {
    watchdog(Duration::from_secs(120), || {
        let Some(server) = server() else {
            return;
        };
        let url = server.url();
        let dir = server.dir();

        // Ctrl-C of the sending `pool run`.
        let _workers = workers(&url, 1);
        let pidfile = dir.join("job-1.pid");
        let run = Command::new(env!("CARGO_BIN_EXE_pool"))
            .args([
                "run",
                "--broker",
                &url,
                "echo $$ > {}; sleep 600; echo never",
            ])
            .args([":::", pidfile.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pgid = read_pid(&pidfile, Duration::from_secs(30));
        assert!(!alive_in_group(pgid).is_empty(), "the job runs");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's.
        unsafe {
            libc::kill(run.id() as i32, libc::SIGINT);
        }
        let out = run.wait_with_output().unwrap();
        assert!(!out.status.success());
        assert!(
            group_ends(pgid, Duration::from_secs(20)),
            "the job's processes {:?} outlived the stopped run",
            alive_in_group(pgid)
        );

        // The agent SIGKILLed while its job runs.
        let mut agent = workers(&url, 1);
        let pidfile = dir.join("job-2.pid");
        let mut run = Command::new(env!("CARGO_BIN_EXE_pool"))
            .args(["run", "--broker", &url, "echo $$ > {}; sleep 600"])
            .args([":::", pidfile.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pgid = read_pid(&pidfile, Duration::from_secs(30));
        drop(_workers);
        agent.0[0].kill().unwrap();
        agent.0[0].wait().unwrap();
        assert!(
            group_ends(pgid, Duration::from_secs(20)),
            "the job's processes {:?} outlived their agent",
            alive_in_group(pgid)
        );
        let _ = run.kill();
        let _ = run.wait();
    });
}

/// Issue 22 point 9: `pool bench --cluster` ended by SIGTERM (`timeout(1)`, systemd), SIGINT
/// or SIGHUP stops what it started: its private `redis-server`, its temporary directory and
/// both agents kept running.
#[test]
fn bench_cluster_ended_by_a_signal_stops_its_redis_and_agents() {
    use std::os::unix::process::CommandExt;
    watchdog(Duration::from_secs(180), || {
        for signal in [libc::SIGTERM, libc::SIGHUP] {
            // Its own process group: everything it starts is in it.
            let mut bench = Command::new(env!("CARGO_BIN_EXE_pool"))
                .args([
                    "bench",
                    "--cluster",
                    "--cpu-tasks",
                    "100000",
                    "--io-tasks",
                    "100000",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap();
            let pgid = bench.id() as i32;
            let dir_prefix = format!("futurepool-redis-{pgid}-");
            let dirs = || -> Vec<std::path::PathBuf> {
                std::fs::read_dir(std::env::temp_dir())
                    .unwrap()
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&dir_prefix))
                    .map(|e| e.path())
                    .collect()
            };
            // Up: the bench, its server, two agents (and their workers).
            let until = std::time::Instant::now() + Duration::from_secs(60);
            while alive_in_group(pgid).len() < 4 || dirs().is_empty() {
                assert!(
                    std::time::Instant::now() < until,
                    "the cluster never came up"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(500));
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pgid, signal) };
            let status = bench.wait().unwrap();
            let ended = group_ends(pgid, Duration::from_secs(10));
            let left = dirs();
            // Clean up whatever is left, before asserting.
            // SAFETY: as above; the group is this test's.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            for dir in &left {
                let _ = std::fs::remove_dir_all(dir);
            }
            assert!(
                ended,
                "signal {signal}: processes left in the bench's group"
            );
            assert!(left.is_empty(), "signal {signal}: {left:?} left behind");
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status)
                    .map_or_else(|| status.code(), |s| Some(128 + s)),
                Some(128 + signal)
            );
        }
    });
}
