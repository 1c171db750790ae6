//! Micro-benchmarks of the future itself, side by side with CPython's `concurrent.futures.Future`
//! and a crossbeam-channel ping-pong, in one run: `cargo bench -p futurepool-core`.
//!
//! Each figure is the median of several samples after a warm-up (min–max in brackets); on a
//! shared 2-core machine only medians and ratios mean anything.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use futurepool_core::{as_completed, Future};

/// Counts live heap bytes, to measure what a pending future costs.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SAMPLES: usize = 7;

/// Runs `sample` (which returns nanoseconds per operation) once to warm up, then `SAMPLES`
/// times; returns (median, min, max).
fn measure(mut sample: impl FnMut() -> f64) -> (f64, f64, f64) {
    sample();
    let mut v: Vec<f64> = (0..SAMPLES).map(|_| sample()).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[SAMPLES / 2], v[0], v[SAMPLES - 1])
}

fn per_op(start: Instant, n: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / n as f64
}

fn create_and_complete() -> f64 {
    const N: usize = 200_000;
    let start = Instant::now();
    for i in 0..N {
        let (f, p) = Future::<usize>::pending();
        p.set_result(i).unwrap();
        std::hint::black_box(f.result().unwrap());
    }
    per_op(start, N)
}

fn result_on_finished() -> f64 {
    const N: usize = 2_000_000;
    let f = Future::<usize>::ready(7);
    let start = Instant::now();
    let mut sum = 0;
    for _ in 0..N {
        sum += *std::hint::black_box(&f).result().unwrap();
    }
    std::hint::black_box(sum);
    per_op(start, N)
}

/// One-way handoff: a round trip between two threads, each blocked in `result()` on a future the
/// other completes, divided by two.
fn handoff() -> f64 {
    const N: usize = 20_000;
    let (to_b, from_a): (Vec<_>, Vec<_>) = (0..N).map(|_| Future::<usize>::pending()).unzip();
    let (to_a, from_b): (Vec<_>, Vec<_>) = (0..N).map(|_| Future::<usize>::pending()).unzip();
    let b = thread::spawn(move || {
        for (wait_on, reply) in to_b.into_iter().zip(from_b) {
            reply.set_result(*wait_on.result().unwrap()).unwrap();
        }
    });
    let start = Instant::now();
    for (send, recv) in from_a.into_iter().zip(to_a) {
        send.set_result(1).unwrap();
        recv.result().unwrap();
    }
    let ns = per_op(start, 2 * N);
    b.join().unwrap();
    ns
}

fn crossbeam_handoff() -> f64 {
    const N: usize = 20_000;
    let (tx_ab, rx_ab) = crossbeam_channel::bounded::<usize>(1);
    let (tx_ba, rx_ba) = crossbeam_channel::bounded::<usize>(1);
    let b = thread::spawn(move || {
        for _ in 0..N {
            tx_ba.send(rx_ab.recv().unwrap()).unwrap();
        }
    });
    let start = Instant::now();
    for _ in 0..N {
        tx_ab.send(1).unwrap();
        rx_ba.recv().unwrap();
    }
    let ns = per_op(start, 2 * N);
    b.join().unwrap();
    ns
}

/// `as_completed` over 100 000 futures completed from another thread; ns per future.
fn as_completed_100k() -> f64 {
    const N: usize = 100_000;
    let (futures, promises): (Vec<_>, Vec<_>) = (0..N).map(|_| Future::<usize>::pending()).unzip();
    let start = Instant::now();
    let it = as_completed(futures, None);
    let completer = thread::spawn(move || {
        for (i, p) in promises.into_iter().enumerate() {
            p.set_result(i).unwrap();
        }
    });
    let mut n = 0;
    for f in it {
        n += *f.unwrap().result().unwrap() & 1;
    }
    std::hint::black_box(n);
    let ns = per_op(start, N);
    completer.join().unwrap();
    ns
}

fn bytes_per_pending_future() -> f64 {
    const N: usize = 100_000;
    let before = LIVE.load(Ordering::SeqCst);
    let pairs: Vec<_> = (0..N).map(|_| Future::<u64>::pending()).collect();
    let after = LIVE.load(Ordering::SeqCst);
    let vec_bytes = pairs.capacity() * std::mem::size_of_val(&pairs[0]);
    drop(pairs);
    (after - before - vec_bytes) as f64 / N as f64
}

const PYTHON: &str = r#"
import sys, threading, time, statistics
from concurrent.futures import Future, as_completed

def sample(f):
    f()
    xs = sorted(f() for _ in range(int(sys.argv[1])))
    return xs[len(xs) // 2], xs[0], xs[-1]

def create_and_complete():
    n = 50_000
    t = time.perf_counter()
    for i in range(n):
        f = Future(); f.set_result(i); f.result()
    return (time.perf_counter() - t) / n * 1e9

def result_on_finished():
    n = 500_000
    f = Future(); f.set_result(7)
    t = time.perf_counter()
    for _ in range(n):
        f.result()
    return (time.perf_counter() - t) / n * 1e9

def handoff():
    n = 5_000
    a = [Future() for _ in range(n)]
    b = [Future() for _ in range(n)]
    def other():
        for x, y in zip(a, b):
            y.set_result(x.result())
    th = threading.Thread(target=other); th.start()
    t = time.perf_counter()
    for x, y in zip(a, b):
        x.set_result(1); y.result()
    dt = (time.perf_counter() - t) / (2 * n) * 1e9
    th.join()
    return dt

def as_completed_100k():
    n = 100_000
    fs = [Future() for _ in range(n)]
    t = time.perf_counter()
    it = as_completed(fs)
    def complete():
        for i, f in enumerate(fs):
            f.set_result(i)
    th = threading.Thread(target=complete); th.start()
    for f in it:
        f.result()
    dt = (time.perf_counter() - t) / n * 1e9
    th.join()
    return dt

for name in sys.argv[2:]:
    m, lo, hi = sample(globals()[name])
    print(name, m, lo, hi)
"#;

fn python(names: &[&str]) -> Option<Vec<(f64, f64, f64)>> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .arg("5")
        .args(names)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines()
        .map(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect()
}

fn row(name: &str, ours: (f64, f64, f64), peer: Option<(&str, (f64, f64, f64))>) {
    let (m, lo, hi) = ours;
    print!("{name:<34} {m:>10.1} ns  [{lo:.1}–{hi:.1}]");
    if let Some((peer_name, (pm, plo, phi))) = peer {
        print!(
            "   {peer_name}: {pm:>10.1} ns [{plo:.1}–{phi:.1}]  ratio {:.1}×",
            pm / m
        );
    }
    println!();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("futurepool-core micro-benchmarks (median of {SAMPLES} samples after a warm-up)");
    println!("peers measured in the same run; ratio = peer / ours (higher is better for us)\n");
    let names = [
        "create_and_complete",
        "result_on_finished",
        "handoff",
        "as_completed_100k",
    ];
    let py = python(&names);
    let py_at = |i: usize| py.as_ref().map(|v| ("CPython", v[i]));
    row(
        "create + set_result + result",
        measure(create_and_complete),
        py_at(0),
    );
    row(
        "result() on a finished future",
        measure(result_on_finished),
        py_at(1),
    );
    let ours = measure(handoff);
    row("handoff set_result → blocked result", ours, py_at(2));
    row(
        "   vs crossbeam-channel ping-pong",
        ours,
        Some(("crossbeam", measure(crossbeam_handoff))),
    );
    let ac = measure(as_completed_100k);
    row("as_completed, per future (100 000)", ac, py_at(3));
    println!(
        "{:<34} {:>10.0} futures/s",
        "as_completed throughput",
        1e9 / ac.0
    );
    println!(
        "{:<34} {:>10.1} bytes",
        "heap per pending Future<u64>",
        bytes_per_pending_future()
    );
    if py.is_none() {
        println!("(CPython: skipped, python3 not found or failed)");
    }
    let _ = Duration::ZERO;
}
