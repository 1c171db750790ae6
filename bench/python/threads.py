"""CPython's ThreadPoolExecutor on the same workloads as bench/src/threads.rs.

Usage: python3 threads.py WORKERS CASE[:N]...  Prints one line per case: name and nanoseconds per
task (for `round_trip`: per submit→result).
"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed


def noop():
    return None


def throughput(ex, n=100_000):
    t = time.perf_counter()
    fs = [ex.submit(noop) for _ in range(n)]
    for f in fs:
        f.result()
    return (time.perf_counter() - t) / n * 1e9


def round_trip(ex, n=2_000):
    ex.submit(noop).result()
    t = time.perf_counter()
    for _ in range(n):
        ex.submit(noop).result()
    return (time.perf_counter() - t) / n * 1e9


def as_completed_all(ex, n=100_000):
    t = time.perf_counter()
    fs = [ex.submit(noop) for _ in range(n)]
    for f in as_completed(fs):
        f.result()
    return (time.perf_counter() - t) / n * 1e9


def main():
    workers = int(sys.argv[1])
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for case in sys.argv[2:]:
            # `name` or `name:N` (N tasks, the size the Rust side uses in the same run).
            name, _, n = case.partition(":")
            print(case, globals()[name](ex, *([int(n)] if n else [])), flush=True)


if __name__ == "__main__":
    main()
