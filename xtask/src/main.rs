//! `cargo xtask <command>`: the project's own tasks, with no dependencies beyond std, anyhow and
//! serde_json (to read `cargo metadata`).
//!
//! * `test [ARGS]` — the README's test command: `cargo test --workspace ARGS` with a
//!   Redis-compatible server found or installed into `target/` (see `test.rs`).
//! * `package [--run]` — `cargo package` of every published crate, then their tests built (and
//!   run, with `--run`) from the unpacked packages alone (see `package.rs`).
//! * `loom` — the loom model checks of every crate, release mode, bounded preemptions.
//! * `proptest [--cases N]` — the property tests with more cases than the default run.
//! * `bench [--quick]` — every comparison against the peers, side by side; a full run (no
//!   options) also copies its results to `docs/` and writes `docs/benchmarks.md` from them.
//! * `bench-doc [RESULTS]` — `docs/benchmarks.md` from a results file (default
//!   `docs/bench-results.json`).
//! * `oracle [--seeds N] [--tasks N]` — the process pool's randomized fault campaign against its
//!   oracle (`backend-procs/tests/oracle.rs`), longer than the test suite's run.
//! * `msrv` — checks that no locked dependency needs a newer Rust than our `rust-version`.
//! * `ci` — runs `.ci/run`, the one definition of CI (it may install the optional tools).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

mod benchdoc;
mod package;
mod test;

/// The crates that have loom models (their models live under `src/`, cfg `futurepool_loom`).
const LOOM_CRATES: &[&str] = &["futurepool-core", "futurepool-threads"];

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => ("help", &[][..]),
    };
    match command {
        "test" => test::test(rest),
        "package" => package::package(rest),
        "loom" => loom(rest),
        "proptest" => proptest(rest),
        "ci" => ci(),
        "msrv" => msrv(),
        "bench" => bench(rest),
        "oracle" => oracle(rest),
        "bench-doc" => {
            let results = match rest.first() {
                Some(path) => PathBuf::from(path),
                None => root().join("docs/bench-results.json"),
            };
            benchdoc::write(&results, &root().join("docs/benchmarks.md"))
        }
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask <test [ARGS] | package [--run] | loom [FILTER] | proptest [--cases N] | bench [--quick] | bench-doc [RESULTS] | oracle [--seeds N] [--tasks N] | msrv | ci>"
            );
            Ok(())
        }
        other => bail!("unknown xtask command `{other}` (try `cargo xtask help`)"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .into()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(what: &str, mut cmd: Command) -> Result<()> {
    eprintln!("xtask: {what}");
    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("could not start {what}"))?;
    eprintln!("xtask: {what}: {status} in {:.1?}", start.elapsed());
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Model checks. A separate target directory keeps the `--cfg futurepool_loom` build from
/// invalidating the normal one.
fn loom(args: &[String]) -> Result<()> {
    for krate in LOOM_CRATES {
        let mut cmd = cargo();
        cmd.args(["test", "--release", "--lib", "-p", krate, "--target-dir"])
            .arg(root().join("target/loom"))
            .arg("--")
            .arg("--test-threads=2")
            .args(args)
            .env("RUSTFLAGS", "--cfg futurepool_loom")
            .env(
                "LOOM_MAX_PREEMPTIONS",
                env::var("LOOM_MAX_PREEMPTIONS").unwrap_or("5".into()),
            )
            .env(
                "LOOM_MAX_BRANCHES",
                env::var("LOOM_MAX_BRANCHES").unwrap_or("10000".into()),
            );
        run(&format!("loom models of {krate}"), cmd)?;
    }
    Ok(())
}

fn proptest(args: &[String]) -> Result<()> {
    let mut cases = "10000".to_string();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--cases" => cases = it.next().context("--cases needs a number")?.clone(),
            other => bail!("unknown proptest option `{other}`"),
        }
    }
    cases
        .parse::<u32>()
        .context("--cases takes a whole number")?;
    let mut cmd = cargo();
    cmd.args(["test", "--release", "--workspace", "--test", "proptests"])
        .env("PROPTEST_CASES", &cases);
    run(&format!("proptests with {cases} cases"), cmd)
}

/// The process pool's oracle campaign at length: every seed draws a pool and a mix of
/// crashes, panics, timeouts, kills from outside and cancels; every outcome is checked.
fn oracle(args: &[String]) -> Result<()> {
    let (mut seeds, mut tasks) = (200u64, 800u64);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = |it: &mut std::slice::Iter<String>| -> Result<u64> {
            it.next()
                .with_context(|| format!("{arg} needs a number"))?
                .parse()
                .with_context(|| format!("{arg} takes a whole number"))
        };
        match arg.as_str() {
            "--seeds" => seeds = value(&mut it)?,
            "--tasks" => tasks = value(&mut it)?,
            other => bail!("unknown oracle option `{other}`"),
        }
    }
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        "futurepool-procs",
        "--test",
        "oracle",
        "--",
        "--nocapture",
    ])
    .env("FUTUREPOOL_ORACLE_SEEDS", seeds.to_string())
    .env("FUTUREPOOL_ORACLE_TASKS", tasks.to_string())
    .env("RUST_BACKTRACE", "0");
    run(
        &format!("the process pool's oracle, {seeds} seeds x {tasks} tasks"),
        cmd,
    )
}

/// Every comparison against the peers, in release mode (see `bench/`).
fn bench(args: &[String]) -> Result<()> {
    let mut build = cargo();
    build.args(["build", "--release", "--quiet", "-p", "futurepool-cli"]);
    run("building pool", build)?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "futurepool-bench",
        "--",
    ])
    .args(args);
    run("benchmarks", cmd)?;
    if args.is_empty() {
        let docs = root().join("docs");
        for (from, to) in [
            ("results.json", "bench-results.json"),
            ("chart.svg", "bench-chart.svg"),
        ] {
            std::fs::copy(root().join("target/bench").join(from), docs.join(to))
                .with_context(|| format!("copying target/bench/{from} to docs/{to}"))?;
        }
        benchdoc::write(
            &docs.join("bench-results.json"),
            &docs.join("benchmarks.md"),
        )?;
    }
    Ok(())
}

/// A `major.minor[.patch]` version as a comparable triple.
fn rust_version(text: &str) -> Result<(u64, u64, u64)> {
    let mut parts = text.split('.').map(|p| {
        p.parse::<u64>()
            .with_context(|| format!("bad rust-version `{text}`"))
    });
    let major = parts.next().context("empty rust-version")??;
    let minor = parts.next().transpose()?.unwrap_or(0);
    let patch = parts.next().transpose()?.unwrap_or(0);
    Ok((major, minor, patch))
}

/// The MSRV claim checked against the lockfile: every workspace member's `rust-version` must be
/// at least the `rust-version` of every package the locked graph builds for this host (normal,
/// build and dev dependencies: what `cargo build` and `cargo test` compile). Dependencies behind
/// `cfg(futurepool_loom)` (loom and its own dependencies) are left out by `--filter-platform`:
/// they build only for the model checks, never for a user.
fn msrv() -> Result<()> {
    let host = String::from_utf8(
        Command::new("rustc")
            .args(["--print", "host-tuple"])
            .output()
            .context("running rustc --print host-tuple")?
            .stdout,
    )?;
    let output = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
        ])
        .arg(host.trim())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .context("no workspace_members")?
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let resolved: std::collections::HashSet<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .context("no resolve graph")?
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let packages = metadata["packages"].as_array().context("no packages")?;
    let mut claims = Vec::new();
    let mut needs = Vec::new();
    for package in packages {
        let id = package["id"].as_str().unwrap_or_default();
        let name = package["name"].as_str().unwrap_or_default();
        let version = package["version"].as_str().unwrap_or_default();
        let Some(rv) = package["rust_version"].as_str() else {
            continue;
        };
        if members.contains(&id) {
            claims.push((rust_version(rv)?, name.to_string()));
        } else if resolved.contains(id) {
            needs.push((
                rust_version(rv)?,
                format!("{name} {version} (rust-version {rv})"),
            ));
        }
    }
    let (claim, member) = claims
        .iter()
        .min()
        .context("no workspace member states a rust-version")?;
    let too_new: Vec<&String> = needs
        .iter()
        .filter(|(need, _)| need > claim)
        .map(|(_, what)| what)
        .collect();
    let newest = needs.iter().max();
    if !too_new.is_empty() {
        bail!(
            "{member} claims rust-version {}.{}.{}, but the locked dependencies need newer: {}",
            claim.0,
            claim.1,
            claim.2,
            too_new
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    eprintln!(
        "xtask: msrv: rust-version {}.{}.{} covers all {} locked dependencies with a rust-version \
         (the newest need: {})",
        claim.0,
        claim.1,
        claim.2,
        needs.len(),
        newest.map_or("none", |(_, what)| what.as_str())
    );
    Ok(())
}

fn ci() -> Result<()> {
    // One definition of CI: `.ci/run` (it also provisions the machine: a PATH without the
    // optional tools, then those tools). This runs exactly that.
    let mut cmd = Command::new("bash");
    cmd.arg(root().join(".ci/run")).current_dir(root());
    run("CI (.ci/run)", cmd)
}
