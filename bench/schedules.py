"""Benchmark 5: 10,000 recurring schedules armed. Daemon CPU while idle (psutil cpu_times
over 10 s, nothing due in that window) and RSS, before and after adding them, and again
after a restart (how long the daemon takes to answer with 10,000 schedules to re-arm).

Schedules are added through schedule-job.json (two keep-alive connections), with specs in
scrapy-do's grammar so scrapy-do can run the same set (`--daemon scrapy-do`).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench.adapters import Daemon
from bench.common import Api, BenchError, log, table
from bench.env import Env
from bench.runner import main_for_daemons

SCHEDULES = 10_000
IDLE_SECONDS = 10.0
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def spec(n: int, today: int | None = None) -> str:
    """Recurring specs none of which can fire within a few hours of being set: intervals
    of 2 h or more, and weekdays other than today and tomorrow (`today`: 0 = Monday)."""
    if today is None:
        today = datetime.now(UTC).weekday()
    kind = n % 3
    if kind == 0:
        return f"every {2 + n % 20} hours"
    if kind == 1:
        return f"every {1 + n % 6} days"
    days = [d for d in WEEKDAYS if WEEKDAYS.index(d) not in (today, (today + 1) % 7)]
    return f"every {days[n % len(days)]} at {n % 24:02d}:{n % 60:02d}"


def add_schedules(daemon: Daemon, count: int, connections: int = 2) -> float:
    errors: list[str] = []
    today = datetime.now(UTC).weekday()

    def worker(offset: int) -> None:
        api = Api(daemon.port, daemon.auth)
        fields = {"project": "benchping", "spider": "ping"}
        try:
            for n in range(offset, count, connections):
                path = "/schedule-job.json" if daemon.name != "scrapyd" else "/schedule.json"
                reply = api.post_json(path, {**fields, "when": spec(n, today)})
                if reply.get("status") != "ok":
                    errors.append(str(reply))
                    return
        except BenchError as exc:
            errors.append(str(exc))
        finally:
            api.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"{daemon.name} refused a recurring schedule: {errors[0][:300]}")
    return time.perf_counter() - start


def idle_cpu(daemon: Daemon, seconds: float) -> float:
    """Percent of one core the daemon used over `seconds` with nobody talking to it."""
    import psutil

    proc = psutil.Process(daemon.pid)
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return used / seconds * 100


def measure(env: Env, kind: str, count: int, seconds: float) -> dict[str, Any]:
    daemon = env.daemon(kind)
    figures: dict[str, Any] = {"schedules": count, "idle_seconds": seconds}
    with daemon:
        daemon.deploy()
        time.sleep(2)
        figures["rss_empty_mib"] = daemon.rss()
        figures["idle_cpu_empty_pct"] = idle_cpu(daemon, seconds)
        figures["add_seconds"] = add_schedules(daemon, count)
        figures["adds_per_s"] = count / figures["add_seconds"]
        time.sleep(3)
        figures["rss_armed_mib"] = daemon.rss()
        figures["idle_cpu_armed_pct"] = idle_cpu(daemon, seconds)
        daemon.stop()
        start = time.perf_counter()
        daemon.start()
        figures["restart_seconds"] = time.perf_counter() - start
        time.sleep(3)
        figures["rss_restarted_mib"] = daemon.rss()
        figures["idle_cpu_restarted_pct"] = idle_cpu(daemon, seconds)
    return figures


def run(env: Env, kinds: list[str], quick: bool = False) -> dict[str, Any]:
    count = 1_000 if quick else SCHEDULES
    seconds = 3.0 if quick else IDLE_SECONDS
    results: dict[str, Any] = {}
    for kind in kinds:
        if kind == "scrapyd":
            log("schedules: scrapyd has no recurring schedules; skipped")
            continue
        log(f"schedules: {kind}, {count:,} recurring schedules, {seconds:.0f} s idle windows")
        name = "coinspiders" if kind == "ours" else kind
        results[name] = measure(env, kind, count, seconds)
    print_table(results)
    return {"daemons": results}


def print_table(results: dict[str, Any]) -> None:
    rows = [
        [
            name,
            r["schedules"],
            r["adds_per_s"],
            r["idle_cpu_empty_pct"],
            r["idle_cpu_armed_pct"],
            r["rss_empty_mib"],
            r["rss_armed_mib"],
            r["restart_seconds"],
            r["idle_cpu_restarted_pct"],
            r["rss_restarted_mib"],
        ]
        for name, r in results.items()
    ]
    print("\n5. Recurring schedules armed (idle CPU in % of one core)")
    print(
        table(
            [
                "daemon",
                "schedules",
                "adds/s",
                "CPU empty %",
                "CPU armed %",
                "RSS empty",
                "RSS armed",
                "restart s",
                "CPU restarted %",
                "RSS restarted",
            ],
            rows,
        )
    )


def main() -> None:
    main_for_daemons("schedules", __doc__, run)


if __name__ == "__main__":
    main()
