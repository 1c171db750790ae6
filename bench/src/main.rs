//! `futurepool-bench`: every comparison of futurepool against its peers, side by side in one
//! run. Run it through `cargo xtask bench [--quick]`, which builds it in release mode.
//!
//! Output: a table per comparison on stdout, and `target/bench/results.json`.

mod cli;
mod codec;
mod harness;
mod procs;
mod threads;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    // This binary is also the process pool's worker.
    futurepool_procs::init();
    procspawn::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--hog") {
        procs::hog();
    }
    if let Some(pos) = args.iter().position(|a| a == "--ipc-echo") {
        procs::ipc_echo(args.get(pos + 1).context("--ipc-echo SERVER")?);
        return Ok(());
    }
    if let Some(pos) = args.iter().position(|a| a == "--map-memory") {
        let n = args.get(pos + 1).context("--map-memory N")?.parse()?;
        threads::map_memory(n);
        return Ok(());
    }
    if let Some(pos) = args.iter().position(|a| a == "--payload") {
        let mib = args.get(pos + 1).context("--payload MIB")?.parse()?;
        let (vec, buf, floor) = procs::payload_round_trip(mib);
        println!(
            "{mib} MiB of bytes to a worker and back: Vec<u8> {vec:.3} s, ByteBuf {buf:.3} s, \
             bare socketpair (floor) {floor:.3} s"
        );
        return Ok(());
    }
    if args.iter().any(|a| a == "--codec") {
        codec::run();
        return Ok(());
    }
    if let Some(pos) = args.iter().position(|a| a == "--queued-memory") {
        let n = args.get(pos + 1).context("--queued-memory N")?.parse()?;
        threads::queued_memory(n);
        return Ok(());
    }
    let mut quick = false;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--only" => {
                only = Some(
                    it.next()
                        .context("--only threads|goal|scaling|procs|cli")?
                        .clone(),
                )
            }
            other => {
                bail!(
                    "unknown option `{other}` (try --quick, --only threads|goal|scaling|procs|cli)"
                )
            }
        }
    }
    let wants = |group: &str| only.as_deref().is_none_or(|o| o == group);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("python");
    let reps = if quick { 5 } else { 7 };
    let machine = machine();
    println!("futurepool benchmarks on {machine}");
    println!("each figure: median of {reps} interleaved runs after a warm-up");

    // Quick: smaller inputs where CPython's 20-160 µs per task dominates the run time.
    let sizes = if quick {
        threads::Sizes {
            throughput_tasks: 30_000,
            round_trips: 5_000,
            as_completed_tasks: 20_000,
        }
    } else {
        threads::Sizes {
            throughput_tasks: 100_000,
            round_trips: 20_000,
            as_completed_tasks: 100_000,
        }
    };
    let mut comparisons = Vec::new();
    if wants("threads") {
        comparisons.extend(threads::run(&sizes, reps, &python));
    }
    if only.as_deref() == Some("goal") {
        comparisons.extend(threads::goal(reps.max(9)));
    }
    if wants("scaling") {
        comparisons.extend(threads::scaling(
            reps,
            if quick { 100_000 } else { 1_000_000 },
        ));
        comparisons.extend(procs::scaling(reps, if quick { 5_000 } else { 20_000 }));
    }
    let proc_sizes = if quick {
        procs::Sizes {
            round_trips: 2_000,
            throughput_tasks: 2_000,
            map_items: 200_000,
        }
    } else {
        procs::Sizes {
            round_trips: 5_000,
            throughput_tasks: 20_000,
            map_items: 200_000,
        }
    };
    let mut notes = vec![
        ("started_utc".to_string(), utc_now()),
        ("load_average_at_start".to_string(), load_average()),
    ];
    if wants("procs") {
        comparisons.extend(procs::run(&proc_sizes, reps, &python));
        notes.push((
            "load_average_before_busy_core".to_string(),
            load_average(),
        ));
        comparisons.extend(procs::beside_a_busy_core(|| {
            procs::run(&proc_sizes, reps, &python)
        })?);
        let (vec, buf, floor) = procs::payload_round_trip(256);
        println!(
            "\nprocess pool — 256 MiB of bytes to a worker and back: \
             {vec:.2} s as Vec<u8> ({:.2}× the floor), {buf:.2} s as serde_bytes::ByteBuf \
             ({:.2}×); a bare socketpair round trip (the floor): {floor:.2} s",
            vec / floor,
            buf / floor
        );
        notes.push((
            "procs_256mib_round_trip_seconds".to_string(),
            format!("{vec:.3}"),
        ));
        notes.push((
            "procs_256mib_bytebuf_round_trip_seconds".to_string(),
            format!("{buf:.3}"),
        ));
        notes.push((
            "socketpair_256mib_round_trip_seconds".to_string(),
            format!("{floor:.3}"),
        ));
    }

    if wants("cli") {
        let pool_bin = pool_binary(root.parent().unwrap());
        if pool_bin.exists() {
            let cli_sizes = if quick {
                cli::Sizes {
                    run_jobs: 300,
                    small_files: 2_000,
                    big_files: 4,
                    big_file_mib: 8,
                    fetch_requests: 150,
                }
            } else {
                cli::Sizes {
                    run_jobs: 2_000,
                    small_files: 100_000,
                    big_files: 4,
                    big_file_mib: 256,
                    fetch_requests: 1_000,
                }
            };
            comparisons.extend(cli::run(&cli_sizes, reps.min(5), &python, &pool_bin));
        } else {
            println!(
                "\npool CLI: skipped ({} not built; `cargo xtask bench` builds it)",
                pool_bin.display()
            );
        }
    }

    let exe = std::env::current_exe()?;
    let queued = 1_000_000u64;
    if wants("threads") {
        let out = Command::new(&exe)
            .arg("--queued-memory")
            .arg(queued.to_string())
            .output()?;
        let bytes: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        println!(
            "\nthread pool — peak RSS growth with {queued} queued no-op tasks: {:.1} MiB ({} bytes per task)",
            bytes as f64 / (1024.0 * 1024.0),
            bytes / queued
        );
        notes.push((
            "queued_1m_tasks_peak_rss_bytes".to_string(),
            bytes.to_string(),
        ));
        for n in [100_000u64, 1_000_000] {
            let out = Command::new(&exe)
                .arg("--map-memory")
                .arg(n.to_string())
                .output()?;
            let bytes: u64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0);
            println!(
                "thread pool — peak RSS growth of map over an endless input (look-ahead 64), {n} items read: {:.2} MiB",
                bytes as f64 / (1024.0 * 1024.0)
            );
            notes.push((
                format!("map_endless_{n}_items_peak_rss_bytes"),
                bytes.to_string(),
            ));
        }
    }

    notes.push(("load_average_at_end".to_string(), load_average()));
    let dir = root.parent().unwrap().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let json = harness::to_json(&machine, &comparisons, &notes);
    std::fs::write(dir.join("results.json"), json)?;
    std::fs::write(
        dir.join("chart.svg"),
        harness::to_svg(&machine, &comparisons),
    )?;
    println!("written: {}", dir.join("chart.svg").display());
    println!("\nwritten: {}", dir.join("results.json").display());
    comparisons.clear();
    Ok(())
}

/// "2 × `<cpu model>`, 24 GiB" from /proc.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpus} × {model}, {mem_gib:.0} GiB RAM")
}

/// The one-, five- and fifteen-minute load averages from /proc/loadavg ("unknown" elsewhere).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Now as `YYYY-MM-DD HH:MM` UTC (civil date from days since the epoch, Howard Hinnant's
/// algorithm), without a date crate.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3_600,
        rest % 3_600 / 60
    )
}

/// The release build of `pool`: beside this executable (the same target directory and
/// profile), else in `$CARGO_TARGET_DIR/release/`, else in the workspace's `target/release/`.
fn pool_binary(workspace: &std::path::Path) -> std::path::PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("pool")));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| workspace.join(d)) // `join` keeps an absolute path as it is
        .unwrap_or_else(|| workspace.join("target"));
    beside
        .into_iter()
        .chain([target_dir.join("release/pool")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| target_dir.join("release/pool"))
}
