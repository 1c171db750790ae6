//! The process-pool comparisons: futurepool's `ProcessPool` against CPython's
//! `ProcessPoolExecutor` and against ipc-channel's own ping-pong between two processes (the
//! floor for any round trip over it).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use futurepool_procs::{remote, MapOptions, ProcessPool, Submit};
use ipc_channel::ipc::{self, IpcOneShotServer, IpcReceiver, IpcSender};

use crate::harness::{compare, cpython, Comparison, Contender};

pub fn noop(x: u64) -> u64 {
    x
}

pub fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

pub fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

/// The same with `serde_bytes`: the codec then copies the bytes whole instead of one by one.
pub fn echo_buf(bytes: serde_bytes::ByteBuf) -> serde_bytes::ByteBuf {
    bytes
}

futurepool_procs::register!(noop, square, echo, echo_buf);

/// Seconds for `mib` MiB of bytes to a worker and back: as a `Vec<u8>`, as a
/// `serde_bytes::ByteBuf`, and the floor — the same bytes through a bare `socketpair` to a
/// thread that echoes them, one write of all of them and one read into a fresh buffer each
/// way. Each value to send is made before the clock starts, the check made after it stops;
/// the median of 3 interleaved rounds each. Prints the parent's peak memory in the first.
pub fn payload_round_trip(mib: usize) -> (f64, f64, f64) {
    let pool = ProcessPool::new(1).unwrap();
    pool.submit(noop, 0).unwrap().result().unwrap();
    let payload: Vec<u8> = (0..mib << 20).map(|i| i as u8).collect();
    let (mut vec, mut buf, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        let arg = payload.clone();
        let before = reset_peak_rss();
        let start = Instant::now();
        let back = pool.submit(echo, arg).unwrap();
        back.wait();
        vec.push(start.elapsed().as_secs_f64());
        if let (0, Some(before), Some(peak)) = (round, before, status_kib("VmHWM:")) {
            println!(
                "peak memory of the parent during a Vec<u8> round trip: {:.2}× the payload \
                 above what it held before (the argument given up included)",
                peak.saturating_sub(before) as f64 / (mib << 10) as f64
            );
        }
        assert!(back.result().unwrap() == &payload);
        drop(back);

        let arg = serde_bytes::ByteBuf::from(payload.clone());
        let start = Instant::now();
        let back = pool.submit(echo_buf, arg).unwrap();
        back.wait();
        buf.push(start.elapsed().as_secs_f64());
        assert!(back.result().unwrap().as_slice() == payload.as_slice());
        drop(back);

        floor.push(socketpair_round_trip(&payload));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(vec), median(buf), median(floor))
}

/// Resets this process's peak resident size (Linux: `clear_refs` 5) and returns the resident
/// size now, in KiB; `None` where that cannot be done.
fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_kib("VmRSS:")
}

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The floor of a payload round trip (see [`payload_round_trip`]).
fn socketpair_round_trip(payload: &[u8]) -> f64 {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let (mut ours, mut theirs) = UnixStream::pair().unwrap();
    let n = payload.len();
    let echo = std::thread::spawn(move || {
        let mut buf = vec![0u8; n];
        theirs.read_exact(&mut buf).unwrap();
        theirs.write_all(&buf).unwrap();
    });
    // Copied before the clock: the write sends from memory already touched, as a caller's
    // own buffer is.
    let data = payload.to_vec();
    let start = Instant::now();
    ours.write_all(&data).unwrap();
    let mut back = vec![0u8; n];
    ours.read_exact(&mut back).unwrap();
    let secs = start.elapsed().as_secs_f64();
    echo.join().unwrap();
    assert!(back == payload);
    secs
}

pub struct Sizes {
    pub round_trips: usize,
    pub throughput_tasks: usize,
    pub map_items: usize,
}

fn per(start: Instant, n: usize) -> Option<f64> {
    Some(start.elapsed().as_nanos() as f64 / n as f64)
}

fn ours_round_trip(pool: &ProcessPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    for i in 0..n as u64 {
        assert_eq!(*pool.submit(noop, i).unwrap().result().unwrap(), i);
    }
    per(start, n)
}

fn ours_apply_round_trip(pool: &ProcessPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    for i in 0..n as u64 {
        assert_eq!(pool.apply(noop, i), Ok(i));
    }
    per(start, n)
}

fn ours_throughput(pool: &ProcessPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    let futures: Vec<_> = (0..n as u64)
        .map(|i| pool.submit(noop, i).unwrap())
        .collect();
    for f in &futures {
        f.result().unwrap();
    }
    per(start, n)
}

fn ours_map(pool: &ProcessPool, n: usize, chunksize: usize) -> Option<f64> {
    let start = Instant::now();
    let total: u64 = pool
        .map(square, 0..n as u64, MapOptions::new().chunksize(chunksize))
        .unwrap()
        .map(|r| r.unwrap())
        .fold(0u64, u64::wrapping_add);
    assert!(total > 0);
    per(start, n)
}

fn ours_map_unchunked(pool: &ProcessPool, n: usize) -> Option<f64> {
    let start = Instant::now();
    let total: u64 = Submit::map(pool, remote(square), 0..n as u64, MapOptions::default())
        .unwrap()
        .map(|r| r.unwrap())
        .fold(0u64, u64::wrapping_add);
    assert!(total > 0);
    per(start, n)
}

fn ours_startup(workers: usize) -> Option<f64> {
    let start = Instant::now();
    let pool = ProcessPool::new(workers).unwrap();
    let fs: Vec<_> = (0..workers as u64)
        .map(|i| pool.submit(noop, i).unwrap())
        .collect();
    for f in &fs {
        f.result().unwrap();
    }
    drop(pool);
    Some(start.elapsed().as_nanos() as f64)
}

fn procspawn_round_trip(pool: &procspawn::Pool, n: usize) -> Option<f64> {
    let start = Instant::now();
    for i in 0..n as u64 {
        let h = pool.spawn(i, |x: u64| x);
        assert_eq!(h.join().ok()?, i);
    }
    per(start, n)
}

/// procspawn opens descriptors per queued task and dies with EMFILE ("Too many open files")
/// when 20 000 are submitted at once here, so it gets at most 256 in flight.
fn procspawn_throughput(pool: &procspawn::Pool, n: usize) -> Option<f64> {
    const IN_FLIGHT: usize = 256;
    let start = Instant::now();
    let mut window = std::collections::VecDeque::new();
    for i in 0..n as u64 {
        if window.len() == IN_FLIGHT {
            let h: procspawn::JoinHandle<u64> = window.pop_front().unwrap();
            h.join().ok()?;
        }
        window.push_back(pool.spawn(i, |x: u64| x));
    }
    for h in window {
        h.join().ok()?;
    }
    per(start, n)
}

fn procspawn_startup(workers: usize) -> Option<f64> {
    let start = Instant::now();
    let pool = procspawn::Pool::new(workers).ok()?;
    let handles: Vec<_> = (0..workers as u64)
        .map(|i| pool.spawn(i, |x: u64| x))
        .collect();
    for h in handles {
        h.join().ok()?;
    }
    pool.shutdown();
    Some(start.elapsed().as_nanos() as f64)
}

/// Scaling: submit-all throughput with 1, 2, … worker processes up to the core count.
pub fn scaling(reps: usize, tasks: usize) -> Vec<Comparison> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut out = Vec::new();
    let mut w = 1;
    while w <= cores {
        let pool = ProcessPool::new(w).unwrap();
        out.push(compare(
            "process pool scaling",
            &format!("submit {tasks} no-op tasks, then collect, {w} worker(s)"),
            "task",
            reps,
            vec![Contender::new(
                format!("futurepool ProcessPool({w})"),
                || ours_throughput(&pool, tasks),
            )],
        ));
        w *= 2;
    }
    out
}

/// Child mode of the ping-pong: echo byte vectors until the parent hangs up.
pub fn ipc_echo(server: &str) {
    let (tx, rx): (IpcSender<Vec<u8>>, IpcReceiver<Vec<u8>>) = ipc::channel().unwrap();
    let (back_tx, back_rx): (IpcSender<Vec<u8>>, IpcReceiver<Vec<u8>>) = ipc::channel().unwrap();
    let hello =
        IpcSender::<(IpcSender<Vec<u8>>, IpcReceiver<Vec<u8>>)>::connect(server.into()).unwrap();
    hello.send((tx, back_rx)).unwrap();
    while let Ok(msg) = rx.recv() {
        if back_tx.send(msg).is_err() {
            break;
        }
    }
}

/// ipc-channel's raw round trip between this process and a child echoing 8-byte messages.
pub struct PingPong {
    child: std::process::Child,
    to: IpcSender<Vec<u8>>,
    from: IpcReceiver<Vec<u8>>,
}

impl PingPong {
    pub fn start() -> PingPong {
        let (server, name) =
            IpcOneShotServer::<(IpcSender<Vec<u8>>, IpcReceiver<Vec<u8>>)>::new().unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .arg("--ipc-echo")
            .arg(&name)
            .spawn()
            .unwrap();
        let (_, (to, from)) = server.accept().unwrap();
        PingPong { child, to, from }
    }

    fn run(&self, n: usize) -> Option<f64> {
        let start = Instant::now();
        for i in 0..n as u64 {
            self.to.send(i.to_le_bytes().to_vec()).unwrap();
            self.from.recv().unwrap();
        }
        per(start, n)
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        let (dead_tx, _) = ipc::channel::<Vec<u8>>().unwrap();
        self.to = dead_tx;
        let _ = self.child.wait();
    }
}

/// `--hog`: one core kept busy until killed (the load a build or another service puts beside a
/// pool on a 2-core machine).
pub fn hog() -> ! {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// `run` again with a CPU hog (this binary with `--hog`, a process of its own) beside it: the
/// figures a loaded machine gives. Each comparison's group says so.
pub fn beside_a_busy_core(
    run: impl FnOnce() -> Vec<Comparison>,
) -> anyhow::Result<Vec<Comparison>> {
    let mut hog = Command::new(std::env::current_exe()?)
        .arg("--hog")
        .stdin(std::process::Stdio::null())
        .spawn()?;
    println!("\n(a CPU hog, pid {}, keeps one core busy for the comparisons below)", hog.id());
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
    let _ = hog.kill();
    let _ = hog.wait();
    let mut out = out.unwrap_or_else(|p| std::panic::resume_unwind(p));
    for c in &mut out {
        c.group = format!("{}, one core busy beside it", c.group);
    }
    Ok(out)
}

pub fn run(sizes: &Sizes, reps: usize, python: &Path) -> Vec<Comparison> {
    let w = 2;
    let pool = ProcessPool::new(w).unwrap();
    // Warm: both workers started.
    let warm: Vec<_> = (0..w as u64)
        .map(|i| pool.submit(noop, i).unwrap())
        .collect();
    warm.iter().for_each(|f| {
        f.result().unwrap();
    });
    let ping = PingPong::start();
    let pspawn = procspawn::Pool::new(w).unwrap();
    for h in (0..w as u64)
        .map(|i| pspawn.spawn(i, |x: u64| x))
        .collect::<Vec<_>>()
    {
        h.join().unwrap();
    }
    let script = python.join("procs.py");
    let mut out = Vec::new();

    let n = sizes.round_trips;
    out.push(compare(
        "process pool",
        &format!("round trip submit → result on a warm pool ({n} in a row)"),
        "round trip",
        reps,
        vec![
            Contender::new(format!("futurepool ProcessPool({w})"), || {
                ours_round_trip(&pool, n)
            }),
            Contender::new(format!("futurepool ProcessPool({w}).apply"), || {
                ours_apply_round_trip(&pool, n)
            }),
            Contender::new("ipc-channel raw ping-pong (floor)", || ping.run(n)),
            Contender::new(format!("procspawn Pool({w})"), || {
                procspawn_round_trip(&pspawn, n)
            }),
            Contender::new(format!("CPython ProcessPoolExecutor({w})"), || {
                cpython(&script, w, &format!("round_trip:{n}"))
            }),
        ],
    ));

    let n = sizes.throughput_tasks;
    out.push(compare(
        "process pool",
        &format!("submit {n} no-op tasks, then collect"),
        "task",
        reps,
        vec![
            Contender::new(format!("futurepool ProcessPool({w})"), || {
                ours_throughput(&pool, n)
            }),
            Contender::new(format!("procspawn Pool({w})"), || {
                procspawn_throughput(&pspawn, n)
            }),
            Contender::new(format!("CPython ProcessPoolExecutor({w})"), || {
                cpython(&script, w, &format!("throughput:{n}"))
            }),
        ],
    ));

    let n = sizes.map_items;
    out.push(compare(
        "process pool",
        &format!("map over {n} items, chunksize 256"),
        "item",
        reps,
        vec![
            Contender::new(
                format!("futurepool ProcessPool({w}).map, chunksize 256"),
                || ours_map(&pool, n, 256),
            ),
            Contender::new(
                format!("futurepool ProcessPool({w}).map, no chunks"),
                || ours_map_unchunked(&pool, n / 10),
            ),
            Contender::new(format!("CPython ProcessPoolExecutor({w}).map"), || {
                cpython(&script, w, &format!("map_chunks:{n}"))
            }),
        ],
    ));

    out.push(compare(
        "process pool",
        &format!("start {w} workers, run one task each, shut down"),
        "pool",
        reps,
        vec![
            Contender::new(format!("futurepool ProcessPool({w})"), || ours_startup(w)),
            Contender::new(format!("procspawn Pool({w})"), || procspawn_startup(w)),
            Contender::new(format!("CPython ProcessPoolExecutor({w})"), || {
                cpython(&script, w, "startup")
            }),
        ],
    ));
    out
}
