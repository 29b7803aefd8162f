"""Load on one daemon: many clients on 127.0.0.1 scheduling, listing and cancelling at once.

Each client (a thread with its own keep-alive session) loops until the time is up:
schedule a job (alternately `now` and `every 1 hour`), list jobs (a page of the active
ones, or its own last job by id), and cancel every second job it scheduled. The only
slot is held by a crawl that never ends, so `now` jobs wait PENDING and no crawl starts
during the run: what is measured is the daemon, not Scrapy.

Afterwards every identifier a client received is looked up in list-jobs (by status,
all pages): none may be missing or listed twice, a cancelled one must be CANCELED and
the others PENDING or SCHEDULED. The daemon's `reactor-max-stall-ms` (the longest delay
of its reactor since start) must stay under 100 ms; `reactor-max-busy-ms` (the longest CPU time its
reactor thread spent in one loop iteration, i.e. stalls of the daemon's own making) is
reported with it, as other programs holding the CPUs delay the reactor too.

    python -m tests.load_daemon --seconds 60 --clients 50

tests/test_daemon_load.py runs a short version in `make test`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.daemon_support import DaemonFactory, DaemonProcess

MAX_STALL_MS = 100.0


@dataclass
class ClientLog:
    scheduled: list[str] = field(default_factory=list)
    canceled: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    requests: int = 0


@dataclass
class LoadResult:
    seconds: float
    clients: int
    requests: int
    errors: list[str]
    scheduled: int
    canceled: int
    missing: list[str]
    duplicated: list[str]
    wrong_status: list[str]
    stall_before_ms: float
    stall_after_ms: float
    stall_listing_ms: float  # after the check read every job in pages of 10,000
    busy_after_ms: float  # the longest CPU time of one reactor loop iteration
    load_average: float  # of the machine over the last minute, at the end
    p50_ms: float
    p99_ms: float
    max_ms: float

    def summary(self) -> str:
        return (
            f"{self.clients} clients, {self.seconds:.0f} s: {self.requests} requests "
            f"({self.requests / self.seconds:.0f}/s), {len(self.errors)} errors; "
            f"{self.scheduled} jobs scheduled, {self.canceled} cancelled; "
            f"{len(self.missing)} missing, {len(self.duplicated)} duplicated, "
            f"{len(self.wrong_status)} in a wrong state; latency p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms; reactor max stall "
            f"{self.stall_before_ms:.1f} ms before, {self.stall_after_ms:.1f} ms after "
            f"({self.stall_listing_ms:.1f} ms once the check listed every job in pages of 10,000), "
            f"longest loop iteration on a CPU {self.busy_after_ms:.1f} ms; load average "
            f"{self.load_average:.1f} on {os.cpu_count()} CPUs"
        )


def _client(url: str, project: str, spider: str, deadline: float, n: int, out: ClientLog) -> None:
    session = requests.Session()

    def call(method: str, path: str, **kw: Any) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        try:
            rsp = session.request(method, url + path, timeout=30, **kw)
        except requests.RequestException as exc:
            out.errors.append(f"{method} {path}: {exc!r}")
            return None
        finally:
            out.requests += 1
        out.latencies.append(time.perf_counter() - t0)
        if rsp.status_code != 200:
            out.errors.append(f"{method} {path}: {rsp.status_code} {rsp.text[:200]}")
            return None
        return rsp.json()

    turn = 0
    while time.monotonic() < deadline:
        when = "now" if (turn + n) % 2 == 0 else "every 1 hour"
        data = {"project": project, "spider": spider, "when": when, "description": f"c{n}"}
        body = call("POST", "/schedule-job.json", data=data)
        if body is not None:
            out.scheduled.append(body["identifier"])
        if turn % 2 == 0:
            call("GET", "/list-jobs.json", params={"status": "ACTIVE", "limit": 20})
        elif out.scheduled:
            call("GET", "/list-jobs.json", params={"id": out.scheduled[-1]})
        if turn % 2 == 1 and len(out.scheduled) >= 2:
            victim = out.scheduled[-2]
            if call("POST", "/cancel-job.json", data={"id": victim}) is not None:
                out.canceled.add(victim)
        turn += 1
    session.close()


def _all_jobs(url: str, status: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    while True:
        rsp = requests.get(
            url + "/list-jobs.json",
            params={"status": status, "limit": 10000, "offset": len(jobs)},
            timeout=60,
        )
        rsp.raise_for_status()
        page = rsp.json()["jobs"]
        jobs += page
        if len(page) < 10000:
            return jobs


def run_load(
    daemon: DaemonProcess, seconds: float, clients: int = 50, project: str = "hard"
) -> LoadResult:
    """Load `daemon` (whose only slot is already busy) and check what it recorded."""
    url = daemon.url
    stall_before = daemon.get("/status.json").json()["reactor-max-stall-ms"]
    logs = [ClientLog() for _ in range(clients)]
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_client, args=(url, project, "instant", deadline, n, logs[n]))
        for n in range(clients)
    ]
    t0 = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - t0
    after = daemon.get("/status.json").json()
    stall_after, busy_after = after["reactor-max-stall-ms"], after["reactor-max-busy-ms"]
    load_average = os.getloadavg()[0]

    scheduled = [job_id for log in logs for job_id in log.scheduled]
    canceled = {job_id for log in logs for job_id in log.canceled}
    listed = _all_jobs(url, "ACTIVE") + _all_jobs(url, "COMPLETED")
    counts = Counter(job["identifier"] for job in listed)
    status = {job["identifier"]: job["status"] for job in listed}
    missing = [job_id for job_id in scheduled if job_id not in counts]
    duplicated = [job_id for job_id, n in counts.items() if n > 1]
    duplicated += [job_id for job_id, n in Counter(scheduled).items() if n > 1]
    wrong = []
    for job_id in scheduled:
        expected = ("CANCELED",) if job_id in canceled else ("PENDING", "SCHEDULED")
        if job_id in status and status[job_id] not in expected:
            wrong.append(f"{job_id}: {status[job_id]}, expected {expected}")
    stall_listing = daemon.get("/status.json").json()["reactor-max-stall-ms"]
    latencies = sorted(x * 1000 for log in logs for x in log.latencies) or [0.0]
    return LoadResult(
        seconds=elapsed,
        clients=clients,
        requests=sum(log.requests for log in logs),
        errors=[e for log in logs for e in log.errors],
        scheduled=len(scheduled),
        canceled=len(canceled),
        missing=missing,
        duplicated=duplicated,
        wrong_status=wrong,
        stall_before_ms=stall_before,
        stall_after_ms=stall_after,
        stall_listing_ms=stall_listing,
        busy_after_ms=busy_after,
        load_average=load_average,
        p50_ms=statistics.median(latencies),
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        max_ms=latencies[-1],
    )


def start_loaded_daemon(start: DaemonFactory) -> tuple[DaemonProcess, str]:
    """A daemon with one slot, held by a crawl that never ends; returns it and that job."""
    from tests.test_daemon_hardening import start_hard_daemon

    daemon = start_hard_daemon(start, slots=1, completed_cap=0, max_runtime=0)
    blocker = daemon.schedule("forever", project="hard")
    daemon.wait_log(blocker, "START")
    return daemon, blocker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        start = DaemonFactory(lambda name: Path(tempfile.mkdtemp(prefix=name, dir=tmp)))
        try:
            daemon, _blocker = start_loaded_daemon(start)
            result = run_load(daemon, args.seconds, args.clients)
        finally:
            start.stop_all()
    print(result.summary())
    for line in (result.errors + result.missing + result.duplicated + result.wrong_status)[:20]:
        print("  ", line)
    bad = result.errors or result.missing or result.duplicated or result.wrong_status
    stalled = max(result.stall_after_ms, result.busy_after_ms) >= MAX_STALL_MS
    return 1 if bad or stalled else 0


if __name__ == "__main__":
    raise SystemExit(main())
