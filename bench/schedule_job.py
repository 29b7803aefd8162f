"""Benchmark: the `schedule-job when=now` request alone, and schedule -> RUNNING.

The reply time is the client's (request sent to reply read, one kept-alive connection).
The time to RUNNING is the job's `started` (the daemon's clock, which is this machine's)
minus the wall time the request was sent: no poll slack in it, unlike the dispatch
benchmark's. Each sample is taken on an idle daemon (the previous job has ended and
0.2 s passed), so a sample never waits for a slot. `status.json` replies, timed the same
way in the same run, are the floor any request of this daemon pays on this machine.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from bench.adapters import DONE, Daemon
from bench.common import BenchError, log, summary, table
from bench.env import Env
from bench.runner import main_for_daemons

SAMPLES = 40


def _epoch(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


def sample(daemon: Daemon, timeout: float = 120.0) -> tuple[float, float]:
    """(reply seconds, schedule -> RUNNING seconds) of one job, once it has ended."""
    sent_wall = time.time()
    start = time.perf_counter()
    job_id = daemon.schedule("now")
    replied = time.perf_counter() - start
    while True:
        jobs = daemon.api.get_json("/list-jobs.json", {"id": job_id}).get("jobs") or []
        job = jobs[0] if jobs else {}
        if job.get("status") in DONE:
            break
        if time.perf_counter() - start > timeout:
            raise BenchError(f"{daemon.name}: job {job_id} not done after {timeout:.0f} s")
        time.sleep(0.05)
    started = _epoch(job.get("started"))
    if started is None:
        raise BenchError(f"{daemon.name}: job {job_id} ended {job.get('status')} without starting")
    return replied, started - sent_wall


def measure(daemon: Daemon, samples: int) -> dict[str, Any]:
    daemon.deploy()
    sample(daemon)  # warm-up: the first request lists the spiders, the first crawl is cold
    replies, running, floor = [], [], []
    for _ in range(samples):
        time.sleep(0.2)
        start = time.perf_counter()
        daemon.api.get_json("/status.json")
        floor.append(time.perf_counter() - start)
        replied, to_running = sample(daemon)
        replies.append(replied)
        running.append(to_running)
    return {
        "reply_s": summary(replies),
        "to_running_s": summary(running),
        "status_json_s": summary(floor),
    }


def run(env: Env, kinds: list[str], quick: bool = False) -> dict[str, Any]:
    samples = 10 if quick else SAMPLES
    results: dict[str, Any] = {}
    for kind in kinds:
        daemon = env.daemon(kind)
        if kind != "ours":
            log(f"schedule_job: {kind} has no job start time in its replies: skipped")
            continue
        log(f"schedule_job: {daemon.name}, {samples} samples on an idle daemon")
        with daemon:
            results[daemon.name] = measure(daemon, samples)
    print_table(results)
    return {"samples": samples, "daemons": results}


def print_table(results: dict[str, Any]) -> None:
    rows = [
        [
            name,
            r["reply_s"]["median"] * 1000,
            r["reply_s"]["p99"] * 1000,
            r["to_running_s"]["median"] * 1000,
            r["to_running_s"]["p99"] * 1000,
            r["status_json_s"]["median"] * 1000,
        ]
        for name, r in results.items()
    ]
    print("\nschedule-job request and schedule -> RUNNING (idle daemon)")
    print(
        table(
            [
                "daemon",
                "reply p50 ms",
                "reply p99 ms",
                "->RUNNING p50 ms",
                "->RUNNING p99 ms",
                "status.json p50 ms",
            ],
            rows,
        )
    )


def main() -> None:
    main_for_daemons("schedule_job", __doc__, run)


if __name__ == "__main__":
    main()
