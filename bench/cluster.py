"""`python -m bench.cluster`: the daemon with `executor: celery` on this machine, a real
redis-server and real worker processes (the test suite's helpers, tests/), measuring:

- schedule-job -> RUNNING and -> claimed by a worker (its node known), p50 over samples;
- trivial jobs per minute with 1, 2 and 3 workers (one slot each);
- failover: a worker killed (-9) mid-crawl -> its job running on another worker.

All on 127.0.0.1; on a shared 2-core machine the figures are rough.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BenchError, log
from bench.env import Env
from tests.cluster_support import WorkerFactory, celery_config
from tests.daemon_support import DaemonFactory, DaemonProcess
from tests.redis_support import RedisServer
from tests.waiting import wait_until


def _factory(base: Path) -> Any:
    counter = itertools.count()

    def new_dir(name: str) -> Path:
        path = base / f"{name}{next(counter)}"
        path.mkdir(parents=True)
        return path

    return new_dir


def dispatch(daemon: DaemonProcess, samples: int) -> dict[str, float]:
    to_running, to_claimed = [], []
    for _ in range(samples):
        start = time.perf_counter()
        job_id = daemon.schedule("items")
        wait_until(
            lambda j=job_id: daemon.job(j)["status"] != "PENDING", 30, "RUNNING", interval=0.002
        )
        to_running.append(time.perf_counter() - start)
        wait_until(lambda j=job_id: daemon.job(j)["node"], 60, "a node", interval=0.005)
        to_claimed.append(time.perf_counter() - start)
        daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), timeout=120)
    return {
        "schedule_to_running_p50_ms": round(statistics.median(to_running) * 1000, 1),
        "schedule_to_claimed_p50_ms": round(statistics.median(to_claimed) * 1000, 1),
    }


def throughput(daemon: DaemonProcess, jobs: int) -> float:
    start = time.perf_counter()
    ids = [daemon.schedule("items") for _ in range(jobs)]
    for job_id in ids:
        daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), timeout=600)
    return round(jobs / (time.perf_counter() - start) * 60, 1)


def failover(daemon: DaemonProcess, workers: list[Any], until: Path) -> float:
    job_id = daemon.schedule("sleepy", payload=json.dumps({"until_file": str(until)}))
    first = wait_until(lambda: daemon.job(job_id)["node"], 120, "a node", interval=0.01)
    victim = next(w for w in workers if w.name == first)
    victim.kill()
    start = time.perf_counter()
    wait_until(
        lambda: daemon.job(job_id)["node"] not in (None, first),
        120,
        "the job on another worker",
        interval=0.05,
    )
    took = time.perf_counter() - start
    until.touch()
    daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), timeout=120)
    return round(took, 2)


def measure(jobs: int = 12, samples: int = 10, lease: float = 10.0) -> dict[str, Any]:
    """Every figure of this module, from one daemon, one Redis and up to 3 workers."""
    if shutil.which("redis-server") is None:
        raise BenchError("redis-server is not installed (Debian package redis-server)")
    base = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    new_dir = _factory(base)
    redis = RedisServer(new_dir("redis")).start()
    daemons = DaemonFactory(new_dir)
    workers = WorkerFactory(new_dir)
    results: dict[str, Any] = {}
    try:
        config = celery_config(redis, lease=lease)
        daemon = daemons(slots=6, **config)
        started = [workers(daemon, redis, "w1", lease=lease)]
        results.update(dispatch(daemon, samples))
        for count in (1, 2, 3):
            while len(started) < count:
                started.append(workers(daemon, redis, f"w{len(started) + 1}", lease=lease))
            results[f"jobs_per_min_{count}_workers"] = throughput(daemon, jobs)
        results["failover_seconds"] = failover(daemon, started, base / "go")
        results["lease_seconds"] = lease
    finally:
        workers.stop_all()
        daemons.stop_all()
        redis.stop(signal.SIGTERM)
        shutil.rmtree(base, ignore_errors=True)
    return results


def run(env: Env, quick: bool = False) -> dict[str, Any]:
    """The `cluster` step of `make bench`."""
    log("cluster: the Celery executor with 1-3 workers on this machine")
    return measure(jobs=6 if quick else 12, samples=5 if quick else 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=12, help="jobs per throughput run")
    parser.add_argument("--samples", type=int, default=10, help="dispatch samples")
    parser.add_argument("--lease", type=float, default=10.0, help="celery.lease (seconds)")
    args = parser.parse_args()
    print(json.dumps(measure(args.jobs, args.samples, args.lease), indent=2))


if __name__ == "__main__":
    main()
