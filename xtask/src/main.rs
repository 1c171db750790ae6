//! `cargo xtask <command>`: the project's own tasks, with no dependencies beyond std and anyhow.
//!
//! * `loom` — the loom model checks of every crate, release mode, bounded preemptions.
//! * `proptest [--cases N]` — the property tests with more cases than the default run.
//! * `bench [--quick]` — every comparison against the peers, side by side.
//! * `ci` — what `.ci/run` runs: tests, loom, clippy, rustdoc, fmt.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The crates that have loom models (their models live under `src/`, cfg `futurepool_loom`).
const LOOM_CRATES: &[&str] = &["futurepool-core", "futurepool-threads"];

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => ("help", &[][..]),
    };
    match command {
        "loom" => loom(rest),
        "proptest" => proptest(rest),
        "ci" => ci(),
        "bench" => bench(rest),
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask <loom [FILTER] | proptest [--cases N] | bench [--quick] | ci>"
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
    run("benchmarks", cmd)
}

fn ci() -> Result<()> {
    let mut test = cargo();
    test.args(["test", "--workspace", "--all-targets"]);
    run("tests", test)?;
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc"]);
    run("doc tests", doc)?;
    loom(&[])?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("clippy", clippy)?;
    let mut doc = cargo();
    doc.args(["doc", "--no-deps", "--workspace", "--quiet"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("rustdoc", doc)?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run("fmt", fmt)
}
