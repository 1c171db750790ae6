//! futurepool-redis beside Python's distributed executors, in one run on this machine:
//! Dask distributed (`LocalCluster`, 2 worker processes), Celery (Redis broker and result
//! backend, 2 worker processes) and RQ (2 workers), each on the same private `redis-server`
//! (Dask on its own scheduler). The peers are installed from PyPI into a benchmark-only virtual
//! environment (`target/redis-peers-venv`); a peer that cannot be installed is reported
//! skipped, never faked.
//!
//! `cargo run --release -p futurepool-bench --bin redis_peers [-- --quick] [--ours-only]`
//!
//! Measures: the round trip of one no-op task (p50, p99), submitting N no-op tasks then
//! collecting them (per-task cost and tasks/s), `map` over M items in chunks of 100, and how
//! long a task whose agent is SIGKILLed takes to be reclaimed and finished (futurepool only).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futurepool_redis::test_support::LocalServer;
use futurepool_redis::{AgentOptions, Delivery, MapOptions, RedisPool};

fn noop(_: ()) {}

fn double(x: u64) -> u64 {
    2 * x
}

/// Kills its own agent on the first attempt (a machine lost mid-task).
fn die_on_first(d: Delivery<u64>) -> u32 {
    if d.attempt == 1 {
        let agent = std::os::unix::process::parent_id();
        // SAFETY: kill(2) has no memory-safety preconditions; the target is this worker's
        // parent, the agent.
        unsafe {
            libc::kill(agent as libc::pid_t, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_secs(2));
        std::process::exit(0);
    }
    d.attempt
}

futurepool_procs::register!(noop, double, die_on_first);

const QUEUE: &str = "bench";
const LEASE: Duration = Duration::from_secs(1);

/// One peer's figures (µs; tasks per second).
#[derive(Debug, Default, Clone)]
struct Figures {
    rt_p50_us: f64,
    rt_p99_us: f64,
    submit_us_per_task: f64,
    map_us_per_item: f64,
}

struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_agent(url: &str) -> Result<Child> {
    Ok(Command::new(std::env::current_exe()?)
        .args(["--agent", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ours(url: &str, n_rt: usize, n_submit: usize, n_map: usize) -> Result<(Figures, f64)> {
    let pool = RedisPool::builder(url).queue(QUEUE).connect()?;
    // Warm-up: both agents and their worker processes started.
    let warm: Vec<_> = (0..200)
        .map(|_| pool.submit(noop, ()))
        .collect::<Result<_, _>>()?;
    for f in warm {
        f.result().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mut rt = Vec::with_capacity(n_rt);
    for _ in 0..n_rt {
        let t = Instant::now();
        pool.submit(noop, ())?
            .result()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        rt.push(t.elapsed().as_secs_f64() * 1e6);
    }
    rt.sort_by(f64::total_cmp);
    let t = Instant::now();
    let futures: Vec<_> = (0..n_submit)
        .map(|_| pool.submit(noop, ()))
        .collect::<Result<_, _>>()?;
    let submitted = t.elapsed().as_secs_f64() * 1e6 / n_submit as f64;
    for f in &futures {
        f.result().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let submit = t.elapsed().as_secs_f64() * 1e6 / n_submit as f64;
    eprintln!(
        "futurepool-redis: {n_submit} submits took {submitted:.1} µs each; \
         submit + collect {submit:.1} µs per task"
    );
    drop(futures);
    let t = Instant::now();
    let mut sum = 0u64;
    for r in pool.map(
        double,
        0..n_map as u64,
        MapOptions::new().chunksize(100).buffersize(20_000),
    )? {
        sum += r.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let map = t.elapsed().as_secs_f64() * 1e6 / n_map as f64;
    let n = n_map as u64;
    anyhow::ensure!(sum == n * (n - 1), "map computed a wrong sum");
    // Reclaim: the task kills its agent; the other agent takes it after the lease.
    let t = Instant::now();
    let attempt = *pool
        .submit_delivery(die_on_first, 1)?
        .result()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let reclaim = t.elapsed().as_secs_f64();
    anyhow::ensure!(attempt == 2, "the task ran as attempt {attempt}");
    Ok((
        Figures {
            rt_p50_us: percentile(&rt, 0.5),
            rt_p99_us: percentile(&rt, 0.99),
            submit_us_per_task: submit,
            map_us_per_item: map,
        },
        reclaim,
    ))
}

/// The benchmark-only virtual environment with the peers, made on first use.
fn venv(target: &Path) -> Result<PathBuf> {
    let dir = target.join("redis-peers-venv");
    let python = dir.join("bin/python");
    if !python.exists() {
        eprintln!(
            "creating {} (pip install dask[distributed] celery redis rq)…",
            dir.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .context("python3 -m venv")?
            .success();
        if !ok {
            bail!("python3 -m venv failed");
        }
    }
    Ok(python)
}

fn install(python: &Path, packages: &[&str]) -> Result<()> {
    let out = Command::new(python)
        .args(["-m", "pip", "install", "-q"])
        .args(packages)
        .output()?;
    if !out.status.success() {
        bail!(
            "pip install {}: {}",
            packages.join(" "),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("failed")
        );
    }
    Ok(())
}

/// Runs one Python peer; its last stdout line is `rt_p50 rt_p99 submit map` in µs.
fn peer(
    python: &Path,
    script: &Path,
    name: &str,
    socket: &str,
    sizes: (usize, usize, usize),
) -> Result<Figures> {
    let out = Command::new(python)
        .arg(script)
        .args([name, socket])
        .args([
            sizes.0.to_string(),
            sizes.1.to_string(),
            sizes.2.to_string(),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("{name} failed: {}", text.lines().last().unwrap_or(""));
    }
    let v: Vec<f64> = text
        .lines()
        .last()
        .context("no output")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if v.len() != 4 {
        bail!("{name}: unexpected output {text}");
    }
    Ok(Figures {
        rt_p50_us: v[0],
        rt_p99_us: v[1],
        submit_us_per_task: v[2],
        map_us_per_item: v[3],
    })
}

fn main() -> Result<()> {
    futurepool_procs::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--agent") {
        let url = args.get(1).context("--agent URL")?;
        let err = futurepool_redis::serve(url, AgentOptions::new().queue(QUEUE).lease(LEASE));
        bail!("agent: {err:?}");
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (n_rt, n_submit, n_map) = if quick {
        (500, 2_000, 20_000)
    } else {
        (2_000, 10_000, 100_000)
    };
    let server = LocalServer::start().context("redis-server")?;
    let url = server.url();
    let socket = server.dir().join("redis.sock").display().to_string();
    let agents = Agents(vec![spawn_agent(&url)?, spawn_agent(&url)?]);
    let (rust, reclaim) = ours(&url, n_rt, n_submit, n_map)?;
    drop(agents);
    if args.iter().any(|a| a == "--ours-only") {
        println!(
            "futurepool-redis: round trip p50 {:.0} µs, p99 {:.0} µs; {n_submit} no-op tasks: \
             {:.1} µs per task ({:.0} tasks/s); map {:.2} µs per item; reclaim {reclaim:.2} s",
            rust.rt_p50_us,
            rust.rt_p99_us,
            rust.submit_us_per_task,
            1e6 / rust.submit_us_per_task,
            rust.map_us_per_item
        );
        return Ok(());
    }

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/redis_peers.py");
    let mut rows = vec![("futurepool-redis (2 agents)".to_string(), Ok(rust.clone()))];
    match venv(&target) {
        Ok(python) => {
            for (name, label, packages) in [
                (
                    "dask",
                    "Dask distributed (LocalCluster, 2 workers)",
                    &["dask[distributed]"][..],
                ),
                (
                    "celery",
                    "Celery (Redis broker + backend, 2 processes)",
                    &["celery[redis]"][..],
                ),
                ("rq", "RQ (2 workers)", &["rq"][..]),
            ] {
                let figures = install(&python, packages)
                    .and_then(|()| peer(&python, &script, name, &socket, (n_rt, n_submit, n_map)));
                rows.push((label.to_string(), figures));
            }
        }
        Err(e) => {
            for label in ["Dask distributed", "Celery", "RQ"] {
                rows.push((
                    label.to_string(),
                    Err(anyhow::anyhow!("no virtual environment: {e}")),
                ));
            }
        }
    }
    println!(
        "futurepool-redis vs Python's distributed executors ({} cores, one private redis-server; \
         {n_rt} round trips, {n_submit} no-op tasks submitted then collected, map over {n_map} \
         items in chunks of 100)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| executor | round trip p50 | p99 | submit+collect per task | tasks/s | map per item | per-task overhead vs ours |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (label, figures) in &rows {
        match figures {
            Ok(f) => println!(
                "| {label} | {:.0} µs | {:.0} µs | {:.1} µs | {:.0} | {:.2} µs | {:.1}× |",
                f.rt_p50_us,
                f.rt_p99_us,
                f.submit_us_per_task,
                1e6 / f.submit_us_per_task,
                f.map_us_per_item,
                f.submit_us_per_task / rust.submit_us_per_task
            ),
            Err(e) => println!("| {label} | skipped: {e} | | | | | |"),
        }
    }
    println!(
        "\nreclaim: a task whose agent was SIGKILLed at its start finished on the other agent \
         as attempt 2 after {reclaim:.2} s (lease {} s)",
        LEASE.as_secs_f64()
    );
    Ok(())
}
