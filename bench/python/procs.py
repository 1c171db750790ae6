"""CPython's ProcessPoolExecutor on the same workloads as bench/src/procs.rs.

Usage: python3 procs.py WORKERS CASE...  Prints one line per case: name and nanoseconds per
operation (per task; per item for `map_chunks`; per pool for `startup`).
"""
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def noop(x):
    return x


def square(x):
    return x * x


def round_trip(ex, n=2_000):
    ex.submit(noop, 0).result()
    t = time.perf_counter()
    for i in range(n):
        ex.submit(noop, i).result()
    return (time.perf_counter() - t) / n * 1e9


def throughput(ex, n=20_000):
    ex.submit(noop, 0).result()
    t = time.perf_counter()
    fs = [ex.submit(noop, i) for i in range(n)]
    for f in fs:
        f.result()
    return (time.perf_counter() - t) / n * 1e9


def map_chunks(ex, n=200_000):
    ex.submit(noop, 0).result()
    t = time.perf_counter()
    total = sum(ex.map(square, range(n), chunksize=256))
    assert total > 0
    return (time.perf_counter() - t) / n * 1e9


def startup(workers):
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as ex:
        fs = [ex.submit(noop, i) for i in range(workers)]
        for f in fs:
            f.result()
        dt = time.perf_counter() - t
    return dt * 1e9


def main():
    workers = int(sys.argv[1])
    cases = sys.argv[2:]
    if "startup" in cases:
        print("startup", startup(workers), flush=True)
        cases = [c for c in cases if c != "startup"]
    if cases:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for case in cases:
                # `name` or `name:N` (N tasks, the size the Rust side uses in the same run).
                name, _, n = case.partition(":")
                print(case, globals()[name](ex, *([int(n)] if n else [])), flush=True)


if __name__ == "__main__":
    main()
