"""Benchmark 1: dispatch latency, `schedule-job when=now` -> RUNNING and -> SUCCESSFUL, against
the wall time of the same spider run directly with `scrapy crawl`.

Each sample schedules one job on an idle daemon and polls its state every 5 ms until it
runs, then every 10 ms until it is done, so the figures carry up to ~10 ms of poll slack.
Direct runs alternate with the daemon's samples (one each, 20 pairs), so both see the same
load from whatever else the machine is doing; the ratio is of their medians.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.adapters import DONE, Daemon
from bench.common import BenchError, log, ratio, summary, table
from bench.env import Env
from bench.project import direct_runs
from bench.runner import main_for_daemons

SAMPLES = 20


def sample(daemon: Daemon, timeout: float = 120.0) -> tuple[float, float, str, float]:
    start = time.perf_counter()
    job_id = daemon.schedule("now")
    replied = time.perf_counter() - start
    to_running: float | None = None
    while True:
        state = daemon.state(job_id)
        now = time.perf_counter() - start
        if to_running is None and (state == "RUNNING" or state in DONE):
            to_running = now
        if state in DONE:
            return to_running, now, state, replied
        if now > timeout:
            raise BenchError(f"{daemon.name}: job {job_id} still {state} after {timeout:.0f} s")
        time.sleep(0.005 if to_running is None else 0.01)


def measure(daemon: Daemon, samples: int, top: Path) -> dict[str, Any]:
    running, done, replies, direct, states = [], [], [], [], {}
    daemon.deploy()
    direct_runs(daemon.python, top, 0)  # warm-up: first crawls pay for cold caches
    sample(daemon)
    time.sleep(0.5)
    for _ in range(samples):
        direct += direct_runs(daemon.python, top, 1, warm_up=False)
        time.sleep(0.3)
        to_running, to_done, state, replied = sample(daemon)
        replies.append(replied)
        running.append(to_running)
        done.append(to_done)
        states[state] = states.get(state, 0) + 1
        time.sleep(0.3)
    return {
        "schedule_reply_s": summary(replies),
        "to_running_s": summary(running),
        "to_done_s": summary(done),
        "direct_s": summary(direct),
        "done_over_direct": ratio(statistics.median(done), statistics.median(direct)),
        "states": states,
    }


def run(env: Env, kinds: list[str], quick: bool = False) -> dict[str, Any]:
    samples = 5 if quick else SAMPLES
    results: dict[str, Any] = {}
    for kind in kinds:
        daemon = env.daemon(kind)
        log(f"dispatch: {daemon.name}, {samples} samples, each after a direct `scrapy crawl`")
        with daemon:
            results[daemon.name] = measure(daemon, samples, env.top)
    print_table(results)
    return {"samples": samples, "daemons": results}


def print_table(results: dict[str, Any]) -> None:
    rows = [
        [
            name,
            r["schedule_reply_s"]["median"] * 1000,
            r["to_running_s"]["median"] * 1000,
            r["to_running_s"]["p99"] * 1000,
            r["to_done_s"]["median"],
            r["to_done_s"]["p99"],
            r["direct_s"]["median"],
            r["done_over_direct"],
            ",".join(f"{k}:{v}" for k, v in r["states"].items()),
        ]
        for name, r in results.items()
    ]
    print("\n1. Dispatch latency (schedule-job when=now)")
    print(
        table(
            [
                "daemon",
                "reply p50 ms",
                "->RUNNING p50 ms",
                "p99 ms",
                "->DONE p50 s",
                "p99 s",
                "direct crawl s",
                "DONE/direct",
                "states",
            ],
            rows,
        )
    )


def main() -> None:
    main_for_daemons("dispatch", __doc__, run)


if __name__ == "__main__":
    main()
