//! `pool bench`: the guide's lesson "threads for I/O, processes for CPU", measured on this
//! machine. Every figure is a wall time this command just measured.

use std::hint::black_box;
use std::io::Write;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use futurepool_procs::ProcessPool;
use futurepool_threads::{MapOptions, ThreadPool};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many CPU-bound tasks (each a sum of squares).
    #[arg(long, default_value_t = NonZeroUsize::new(8).unwrap(), value_parser = crate::util::parse_count)]
    cpu_tasks: NonZeroUsize,
    /// Numbers summed per CPU-bound task.
    #[arg(long, default_value_t = NonZeroUsize::new(400_000_000).unwrap(), value_parser = crate::util::parse_count)]
    cpu_size: NonZeroUsize,
    /// How many I/O-bound tasks (each a sleep).
    #[arg(long, default_value_t = NonZeroUsize::new(16).unwrap(), value_parser = crate::util::parse_count)]
    io_tasks: NonZeroUsize,
    /// Milliseconds each I/O-bound task sleeps.
    #[arg(long, default_value_t = 100)]
    io_ms: u64,
    /// Worker threads (default: CPython's min(32, cores + 4)).
    #[arg(short = 'j', long, value_parser = crate::util::parse_count)]
    jobs: Option<NonZeroUsize>,
    /// One JSON object per measurement instead of the table.
    #[arg(long)]
    json: bool,
    /// Also run the tasks through futurepool-redis: a private redis-server and two local
    /// `pool worker` agents (sharing the cores), all stopped when the bench ends.
    #[arg(long)]
    cluster: bool,
}

/// The guide's `cpu_intensive_task`: the sum of squares below `n`, modulo 2^64. `black_box`
/// keeps the compiler from replacing the loop by its closed form; `inline(never)` makes the
/// sequential, thread and process runs execute the very same machine code.
#[inline(never)]
pub fn sum_of_squares(n: u64) -> u64 {
    let mut total = 0u64;
    for i in 0..n {
        let i = black_box(i);
        total = total.wrapping_add(i.wrapping_mul(i));
    }
    total
}

pub fn io_task(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

futurepool_procs::register!(sum_of_squares, io_task);

struct Row {
    workload: &'static str,
    mode: String,
    wall: Duration,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let workers = args
        .jobs
        .map_or_else(futurepool_threads::default_workers, NonZeroUsize::get);
    let cpu: Vec<u64> = (0..args.cpu_tasks.get())
        .map(|i| args.cpu_size.get() as u64 + i as u64)
        .collect();
    let io: Vec<u64> = vec![args.io_ms; args.io_tasks.get()];
    let cluster = if args.cluster {
        Some(crate::cluster::Cluster::start(2, cores.div_ceil(2))?)
    } else {
        None
    };
    let cluster_mode = cluster
        .as_ref()
        .map(|c| format!("redis ({}×{} agents)", c.agent_count, c.slots_each));
    let mut out = std::io::stdout().lock();
    if !args.json {
        print_header(&mut out, cores, workers, cluster.as_ref())?;
    }
    let mut bench = Bench {
        cores,
        workers,
        cluster,
        cluster_mode,
        rows: Vec::new(),
    };
    let (pool, procs) = bench.cpu_bound(&cpu)?;
    bench.io_bound(&io, &pool, &procs)?;
    drop(bench.cluster.take());

    if args.json {
        print_json(&mut out, &bench.rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&mut out, &bench.rows)?;
    print_lesson(&mut out, args, cpu.len(), io.len())?;
    Ok(ExitCode::SUCCESS)
}

/// The measurements and what they run on.
struct Bench {
    cores: usize,
    /// The thread pool's size.
    workers: usize,
    /// `--cluster`'s redis-server and agents, and their rows' mode.
    cluster: Option<crate::cluster::Cluster>,
    cluster_mode: Option<String>,
    rows: Vec<Row>,
}

impl Bench {
    /// The CPU-bound rows: sequential, the thread pool, the process pool, the agents. Returns
    /// the pools, kept for the I/O-bound rows.
    fn cpu_bound(&mut self, cpu: &[u64]) -> Result<(ThreadPool, ProcessPool)> {
        const WORKLOAD: &str = "CPU-bound (sum of squares)";
        let (workers, cores) = (self.workers, self.cores);
        let rows = &mut self.rows;
        let expected: Vec<u64> = timed(rows, WORKLOAD, "sequential".into(), || {
            Ok(cpu.iter().map(|&n| sum_of_squares(n)).collect())
        })?;
        let pool = ThreadPool::new(workers)?;
        let got: Vec<u64> = timed(rows, WORKLOAD, format!("thread pool ({workers})"), || {
            pool.map(sum_of_squares, cpu.to_vec(), MapOptions::default())?
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("{e}"))
        })?;
        anyhow::ensure!(got == expected, "the thread pool computed different sums");
        let procs = ProcessPool::new(cores)?;
        let got: Vec<u64> = timed(rows, WORKLOAD, format!("process pool ({cores})"), || {
            procs
                .map(sum_of_squares, cpu.to_vec(), MapOptions::new())?
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("{e}"))
        })?;
        anyhow::ensure!(got == expected, "the process pool computed different sums");
        if let (Some(c), Some(mode)) = (&self.cluster, &self.cluster_mode) {
            let got: Vec<u64> = timed(rows, WORKLOAD, mode.clone(), || {
                c.pool
                    .map(sum_of_squares, cpu.to_vec(), MapOptions::default())?
                    .collect::<Result<_, _>>()
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })?;
            anyhow::ensure!(got == expected, "the agents computed different sums");
        }
        Ok((pool, procs))
    }

    /// The I/O-bound rows: sequential, then on `pool`, `procs` and the agents.
    fn io_bound(&mut self, io: &[u64], pool: &ThreadPool, procs: &ProcessPool) -> Result<()> {
        const WORKLOAD: &str = "I/O-bound (sleep)";
        let (workers, cores) = (self.workers, self.cores);
        let rows = &mut self.rows;
        let all: u64 = io.iter().sum();
        timed(rows, WORKLOAD, "sequential".into(), || {
            for &ms in io {
                io_task(ms);
            }
            Ok(())
        })?;
        let slept: u64 = timed(rows, WORKLOAD, format!("thread pool ({workers})"), || {
            Ok(pool
                .map(io_task, io.to_vec(), MapOptions::new().buffersize(io.len()))?
                .map(|r| r.unwrap_or(0))
                .sum())
        })?;
        anyhow::ensure!(slept == all, "an I/O task failed");
        let slept: u64 = timed(rows, WORKLOAD, format!("process pool ({cores})"), || {
            Ok(procs
                .map(io_task, io.to_vec(), MapOptions::new())?
                .map(|r| r.unwrap_or(0))
                .sum())
        })?;
        anyhow::ensure!(slept == all, "an I/O task failed on the process pool");
        if let (Some(c), Some(mode)) = (&self.cluster, &self.cluster_mode) {
            let slept: u64 = timed(rows, WORKLOAD, mode.clone(), || {
                Ok(c.pool
                    .map(io_task, io.to_vec(), MapOptions::new().buffersize(io.len()))?
                    .map(|r| r.unwrap_or(0))
                    .sum())
            })?;
            anyhow::ensure!(slept == all, "an I/O task failed on an agent");
        }
        Ok(())
    }
}

/// Runs `work` and, if it succeeds, adds a row with its wall time.
fn timed<T>(
    rows: &mut Vec<Row>,
    workload: &'static str,
    mode: String,
    work: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let start = Instant::now();
    let value = work()?;
    rows.push(Row {
        workload,
        mode,
        wall: start.elapsed(),
    });
    Ok(value)
}

/// The line saying what the pools are.
fn print_header(
    out: &mut impl Write,
    cores: usize,
    workers: usize,
    cluster: Option<&crate::cluster::Cluster>,
) -> Result<()> {
    write!(
        out,
        "pool bench: {cores} cores, thread pool of {workers} workers, process pool of {cores}"
    )?;
    if let Some(c) = cluster {
        write!(
            out,
            ", {} agents of {} slots on a private redis-server",
            c.agent_count, c.slots_each
        )?;
    }
    writeln!(out)?;
    Ok(())
}

/// Each row with its speedup over the sequential row before it.
fn with_speedups(rows: &[Row]) -> Vec<(&Row, f64)> {
    let mut base = Duration::ZERO;
    rows.iter()
        .map(|row| {
            if row.mode == "sequential" {
                base = row.wall;
            }
            (row, base.as_secs_f64() / row.wall.as_secs_f64())
        })
        .collect()
}

/// `--json`: one object per row.
fn print_json(out: &mut impl Write, rows: &[Row]) -> Result<()> {
    for (row, speedup) in with_speedups(rows) {
        writeln!(
            out,
            "{{\"workload\":\"{}\",\"mode\":\"{}\",\"seconds\":{:.6},\"speedup\":{:.3}}}",
            row.workload,
            row.mode,
            row.wall.as_secs_f64(),
            speedup
        )?;
    }
    Ok(())
}

/// The table of rows.
fn print_table(out: &mut impl Write, rows: &[Row]) -> Result<()> {
    writeln!(
        out,
        "\n{:<28} {:<20} {:>12} {:>9}",
        "workload", "mode", "wall time", "speedup"
    )?;
    for (row, speedup) in with_speedups(rows) {
        writeln!(
            out,
            "{:<28} {:<20} {:>10.3} s {:>8.2}×",
            row.workload,
            row.mode,
            row.wall.as_secs_f64(),
            speedup
        )?;
    }
    Ok(())
}

/// What was measured, and the lesson.
fn print_lesson(
    out: &mut impl Write,
    args: &Args,
    cpu_tasks: usize,
    io_tasks: usize,
) -> Result<()> {
    writeln!(
        out,
        "\n{} CPU-bound tasks of {} numbers, {} I/O-bound tasks of {} ms.",
        cpu_tasks, args.cpu_size, io_tasks, args.io_ms
    )?;
    writeln!(
        out,
        "Rust threads run CPU-bound work in parallel (no GIL), so threads match processes there,\n\
         without the process start-up and serialization; processes buy isolation (a crash or a\n\
         hang is contained and can be killed). I/O-bound work overlaps its waits: the speedup is\n\
         bounded by the worker count."
    )?;
    Ok(())
}
