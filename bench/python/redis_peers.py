"""Python's distributed executors, measured as bench/src/bin/redis_peers.rs measures
futurepool-redis: round trip of one no-op task (p50, p99), N no-op tasks submitted then
collected (µs per task), map over M items in chunks of 100 (µs per item).

usage: redis_peers.py dask|celery|rq REDIS_SOCKET N_RT N_SUBMIT N_MAP
Prints one line: "p50_us p99_us submit_us_per_task map_us_per_item".
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import time

PEER, SOCKET, N_RT, N_SUBMIT, N_MAP = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])

TASKS = textwrap.dedent(
    """
    def noop():
        return None

    def double_chunk(xs):
        return [2 * x for x in xs]
    """
)


def chunks():
    return [list(range(i, min(i + 100, N_MAP))) for i in range(0, N_MAP, 100)]


def report(rt, submit_total, map_total, flat):
    assert sum(flat) == N_MAP * (N_MAP - 1), "map computed a wrong sum"
    rt.sort()
    p = lambda q: rt[round((len(rt) - 1) * q)] * 1e6
    print(f"{p(0.5):.1f} {p(0.99):.1f} {submit_total * 1e6 / N_SUBMIT:.2f} {map_total * 1e6 / N_MAP:.3f}")


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def run_dask():
    from dask.distributed import Client, LocalCluster
    from bench_tasks import double_chunk, noop

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather([client.submit(noop, pure=False) for _ in range(200)])
        rt = [timed(lambda: client.submit(noop, pure=False).result()) for _ in range(N_RT)]
        submit = timed(lambda: client.gather([client.submit(noop, pure=False) for _ in range(N_SUBMIT)]))
        out = []
        m = timed(lambda: out.extend(client.gather(client.map(double_chunk, chunks(), pure=False))))
        report(rt, submit, m, [x for c in out for x in c])


def run_celery(workdir):
    url = f"redis+socket://{SOCKET}"
    with open(os.path.join(workdir, "bench_celery.py"), "w") as f:
        f.write(
            textwrap.dedent(
                f"""
                from celery import Celery
                app = Celery("bench", broker={url!r}, backend={url!r})
                app.conf.update(task_default_queue="fpbench", worker_hijack_root_logger=False,
                                broker_connection_retry_on_startup=True)
                from bench_tasks import noop as _noop, double_chunk as _double_chunk
                noop = app.task(name="noop")(_noop)
                double_chunk = app.task(name="double_chunk")(_double_chunk)
                """
            )
        )
    import bench_celery
    from celery import group

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench_celery", "worker", "-c", "2", "-P", "prefork",
         "-Q", "fpbench", "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=workdir, env=dict(os.environ, PYTHONPATH=workdir), stdout=subprocess.DEVNULL,
    )
    try:
        for r in [bench_celery.noop.delay() for _ in range(200)]:
            r.get(timeout=120)
        rt = [timed(lambda: bench_celery.noop.delay().get(timeout=60)) for _ in range(N_RT)]

        def submit():
            for r in [bench_celery.noop.delay() for _ in range(N_SUBMIT)]:
                r.get(timeout=600)

        s = timed(submit)
        out = []
        m = timed(lambda: out.extend(group(bench_celery.double_chunk.s(c) for c in chunks())().get(timeout=600)))
        report(rt, s, m, [x for c in out for x in c])
    finally:
        worker.terminate()
        worker.wait()


def run_rq(workdir):
    from redis import Redis
    from rq import Queue

    import bench_tasks

    conn = Redis(unix_socket_path=SOCKET)
    q = Queue("fpbench", connection=conn)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "rq.cli", "worker", "fpbench", "--url", f"unix://{SOCKET}", "-q"],
            cwd=workdir, env=dict(os.environ, PYTHONPATH=workdir), stdout=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]

    def wait(job):
        r = job.latest_result(timeout=600)
        if r is None or r.type != r.Type.SUCCESSFUL:
            raise RuntimeError(f"rq job {job.id} failed: {r and r.exc_string}")
        return r.return_value

    try:
        for j in [q.enqueue(bench_tasks.noop) for _ in range(20)]:
            wait(j)
        rt = [timed(lambda: wait(q.enqueue(bench_tasks.noop))) for _ in range(N_RT)]

        def submit():
            jobs = q.enqueue_many([Queue.prepare_data(bench_tasks.noop) for _ in range(N_SUBMIT)])
            for j in jobs:
                wait(j)

        s = timed(submit)
        out = []

        def mapped():
            jobs = q.enqueue_many([Queue.prepare_data(bench_tasks.double_chunk, args=(c,)) for c in chunks()])
            for j in jobs:
                out.append(wait(j))

        m = timed(mapped)
        report(rt, s, m, [x for c in out for x in c])
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait()


def main():
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, "bench_tasks.py"), "w") as f:
            f.write(TASKS)
        sys.path.insert(0, workdir)
        os.environ["PYTHONPATH"] = workdir
        if PEER == "dask":
            run_dask()
        elif PEER == "celery":
            run_celery(workdir)
        elif PEER == "rq":
            run_rq(workdir)
        else:
            raise SystemExit(f"unknown peer {PEER}")


if __name__ == "__main__":
    main()
