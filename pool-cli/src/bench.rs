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
    let mut rows = Vec::new();
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
        write!(
            out,
            "pool bench: {cores} cores, thread pool of {workers} workers, process pool of {cores}"
        )?;
        if let Some(c) = &cluster {
            write!(
                out,
                ", {} agents of {} slots on a private redis-server",
                c.agent_count, c.slots_each
            )?;
        }
        writeln!(out)?;
    }

    // CPU-bound.
    let start = Instant::now();
    let expected: Vec<u64> = cpu.iter().map(|&n| sum_of_squares(n)).collect();
    rows.push(Row {
        workload: "CPU-bound (sum of squares)",
        mode: "sequential".into(),
        wall: start.elapsed(),
    });
    let pool = ThreadPool::new(workers)?;
    let start = Instant::now();
    let got: Vec<u64> = pool
        .map(sum_of_squares, cpu.clone(), MapOptions::default())?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    rows.push(Row {
        workload: "CPU-bound (sum of squares)",
        mode: format!("thread pool ({workers})"),
        wall: start.elapsed(),
    });
    anyhow::ensure!(got == expected, "the thread pool computed different sums");
    let procs = ProcessPool::new(cores)?;
    let start = Instant::now();
    let got: Vec<u64> = procs
        .map(sum_of_squares, cpu.clone(), MapOptions::new())?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    rows.push(Row {
        workload: "CPU-bound (sum of squares)",
        mode: format!("process pool ({cores})"),
        wall: start.elapsed(),
    });
    anyhow::ensure!(got == expected, "the process pool computed different sums");
    if let (Some(c), Some(mode)) = (&cluster, &cluster_mode) {
        let start = Instant::now();
        let got: Vec<u64> = c
            .pool
            .map(sum_of_squares, cpu.clone(), MapOptions::default())?
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        rows.push(Row {
            workload: "CPU-bound (sum of squares)",
            mode: mode.clone(),
            wall: start.elapsed(),
        });
        anyhow::ensure!(got == expected, "the agents computed different sums");
    }

    // I/O-bound.
    let start = Instant::now();
    for &ms in &io {
        io_task(ms);
    }
    rows.push(Row {
        workload: "I/O-bound (sleep)",
        mode: "sequential".into(),
        wall: start.elapsed(),
    });
    let start = Instant::now();
    let slept: u64 = pool
        .map(io_task, io.clone(), MapOptions::new().buffersize(io.len()))?
        .map(|r| r.unwrap_or(0))
        .sum();
    rows.push(Row {
        workload: "I/O-bound (sleep)",
        mode: format!("thread pool ({workers})"),
        wall: start.elapsed(),
    });
    anyhow::ensure!(slept == io.iter().sum::<u64>(), "an I/O task failed");
    let start = Instant::now();
    let slept: u64 = procs
        .map(io_task, io.clone(), MapOptions::new())?
        .map(|r| r.unwrap_or(0))
        .sum();
    rows.push(Row {
        workload: "I/O-bound (sleep)",
        mode: format!("process pool ({cores})"),
        wall: start.elapsed(),
    });
    anyhow::ensure!(
        slept == io.iter().sum::<u64>(),
        "an I/O task failed on the process pool"
    );
    if let (Some(c), Some(mode)) = (&cluster, &cluster_mode) {
        let start = Instant::now();
        let slept: u64 = c
            .pool
            .map(io_task, io.clone(), MapOptions::new().buffersize(io.len()))?
            .map(|r| r.unwrap_or(0))
            .sum();
        rows.push(Row {
            workload: "I/O-bound (sleep)",
            mode: mode.clone(),
            wall: start.elapsed(),
        });
        anyhow::ensure!(
            slept == io.iter().sum::<u64>(),
            "an I/O task failed on an agent"
        );
    }
    drop(cluster);

    if args.json {
        let mut base = Duration::ZERO;
        for row in &rows {
            if row.mode == "sequential" {
                base = row.wall;
            }
            writeln!(
                out,
                "{{\"workload\":\"{}\",\"mode\":\"{}\",\"seconds\":{:.6},\"speedup\":{:.3}}}",
                row.workload,
                row.mode,
                row.wall.as_secs_f64(),
                base.as_secs_f64() / row.wall.as_secs_f64()
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "\n{:<28} {:<20} {:>12} {:>9}",
        "workload", "mode", "wall time", "speedup"
    )?;
    let mut base = Duration::ZERO;
    for row in &rows {
        if row.mode == "sequential" {
            base = row.wall;
        }
        writeln!(
            out,
            "{:<28} {:<20} {:>10.3} s {:>8.2}×",
            row.workload,
            row.mode,
            row.wall.as_secs_f64(),
            base.as_secs_f64() / row.wall.as_secs_f64()
        )?;
    }
    writeln!(
        out,
        "\n{} CPU-bound tasks of {} numbers, {} I/O-bound tasks of {} ms.",
        cpu.len(),
        args.cpu_size,
        io.len(),
        args.io_ms
    )?;
    writeln!(
        out,
        "Rust threads run CPU-bound work in parallel (no GIL), so threads match processes there,\n\
         without the process start-up and serialization; processes buy isolation (a crash or a\n\
         hang is contained and can be killed). I/O-bound work overlaps its waits: the speedup is\n\
         bounded by the worker count."
    )?;
    Ok(ExitCode::SUCCESS)
}
