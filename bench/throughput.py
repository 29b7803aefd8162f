"""Benchmark 2: job throughput. 150 trivial jobs queued at once, with 3 slots and with
2 x CPU slots: jobs/min from the first schedule request to the last job done, against the
ideal (slots x 60 / direct run time) and, in a peers run, against the peers' figure.

A trivial crawl is CPU-bound (Scrapy's imports and start-up), so the table also shows the
most the machine can do at all, CPU count x 60 / CPU seconds of one direct crawl.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil

from bench.adapters import Daemon
from bench.common import BenchError, log, ratio, summary, table
from bench.env import Env
from bench.project import direct_runs
from bench.runner import main_for_daemons

JOBS = 150


def measure(daemon: Daemon, jobs: int) -> dict[str, Any]:
    daemon.deploy()
    base = daemon.finished_count()
    proc = psutil.Process(daemon.pid)
    cpu0 = proc.cpu_times()
    start = time.perf_counter()
    ids = [daemon.schedule("now") for _ in range(jobs)]
    queued = time.perf_counter() - start
    deadline = start + max(300.0, jobs * 6.0)
    while daemon.finished_count() - base < jobs:
        if time.perf_counter() > deadline:
            raise BenchError(f"{daemon.name}: {jobs} jobs not done after {deadline - start:.0f} s")
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    cpu1 = proc.cpu_times()
    states: dict[str, int] = {}
    for job_id in ids:
        state = daemon.state(job_id)
        states[state] = states.get(state, 0) + 1
    return {
        "jobs": jobs,
        "seconds": elapsed,
        "queue_seconds": queued,
        "jobs_per_min": jobs / elapsed * 60,
        # CPU of the daemon itself, and of its reaped children (the crawls) per job.
        "daemon_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "crawl_cpu_s_per_job": (
            (cpu1.children_user - cpu0.children_user)
            + (cpu1.children_system - cpu0.children_system)
        )
        / jobs,
        "states": states,
    }


def run(env: Env, kinds: list[str], quick: bool = False) -> dict[str, Any]:
    jobs = 30 if quick else JOBS
    cpus = os.cpu_count() or 1
    slot_sets = sorted({3, 2 * cpus})
    direct: dict[str, float] = {}
    direct_cpu: dict[str, float] = {}
    results: dict[str, Any] = {}
    for kind in kinds:
        for slots in slot_sets:
            daemon = env.daemon(kind, slots=slots)
            if daemon.python not in direct:
                cpu: list[float] = []
                walls = direct_runs(daemon.python, env.top, 3, cpu)
                direct[daemon.python] = summary(walls)["median"]
                direct_cpu[daemon.python] = summary(cpu)["median"]
            log(f"throughput: {daemon.name}, {jobs} jobs, {slots} slots")
            with daemon:
                figures = measure(daemon, jobs)
            ideal = slots * 60 / direct[daemon.python]
            # What 2 cores can do at all: each crawl burns direct_cpu_s of CPU, mostly imports.
            cpu_bound = cpus * 60 / direct_cpu[daemon.python]
            figures.update(
                slots=slots,
                direct_s=direct[daemon.python],
                direct_cpu_s=direct_cpu[daemon.python],
                cpu_bound_jobs_per_min=cpu_bound,
                of_cpu_bound=ratio(figures["jobs_per_min"], cpu_bound),
                ideal_jobs_per_min=ideal,
                of_ideal=ratio(figures["jobs_per_min"], ideal),
            )
            results.setdefault(daemon.name, {})[str(slots)] = figures
    print_table(results)
    return {"jobs": jobs, "daemons": results}


def print_table(results: dict[str, Any]) -> None:
    ours = results.get("coinspiders", {})
    rows = []
    for name, by_slots in results.items():
        for slots, r in by_slots.items():
            vs_ours = ratio(ours.get(slots, {}).get("jobs_per_min"), r["jobs_per_min"])
            rows.append(
                [
                    name,
                    int(slots),
                    r["jobs_per_min"],
                    r["ideal_jobs_per_min"],
                    r["of_ideal"],
                    r["cpu_bound_jobs_per_min"],
                    r["of_cpu_bound"],
                    r["crawl_cpu_s_per_job"],
                    r["daemon_cpu_s"],
                    vs_ours if name != "coinspiders" else None,
                    r["seconds"],
                    ",".join(f"{k}:{v}" for k, v in r["states"].items()),
                ]
            )
    print("\n2. Throughput (trivial jobs queued at once)")
    print(
        table(
            [
                "daemon",
                "slots",
                "jobs/min",
                "ideal",
                "of ideal",
                "CPU-bound max",
                "of max",
                "CPU s/job",
                "daemon CPU s",
                "ours/this",
                "wall s",
                "states",
            ],
            rows,
        )
    )


def main() -> None:
    main_for_daemons("throughput", __doc__, run)


if __name__ == "__main__":
    main()
