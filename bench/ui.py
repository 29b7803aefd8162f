"""Benchmark: the dashboard with 100,000 jobs stored.

- the Jobs page and its rows fragment (first page, a filtered page, a page deep in the
  list): p50 through the load generator, one keep-alive connection;
- opening the page of a job whose log is 1 GiB: p50/max of the page's time, and the
  daemon's RSS before and after (the page reads the last 64 KiB, never the file). The
  log is a sparse file with real lines in its last megabyte: its size is what the
  daemon sees; a daemon that read it whole would show the time and the RSS;
- a job's state change reaching an open Jobs page: from the schedule-job reply to the
  page holding the new row, the way a page gets it (the `changed` event on its stream,
  then a fetch of its rows fragment); p50/p95 over repeated jobs.
"""

from __future__ import annotations

import argparse
import socket
import time
from typing import Any

from bench.common import load, log, percentile, table
from bench.env import Env
from bench.runner import guard

STORED = 100_000
LOG_BYTES = 1 << 30
SECONDS = 3.0


def _open_stream(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /ui/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
    data = b""
    while b": open" not in data:
        data += sock.recv(65536)
    return sock


def _wait_for(sock: socket.socket, needle: bytes) -> None:
    data = b""
    while needle not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("the event stream closed")
        data = data[-200:] + chunk


def run(env: Env, quick: bool = False) -> dict[str, Any]:
    stored = 10_000 if quick else STORED
    seconds = 1.0 if quick else SECONDS
    daemon = env.daemon("ours", slots=3)
    ids = daemon.prefill(stored)
    big = ids[len(ids) // 2]
    logs = daemon.data / "logs"  # type: ignore[attr-defined]
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{big}.err").open("wb") as fh:
        fh.truncate(LOG_BYTES - (1 << 20))
        fh.seek(0, 2)
        line = b"2026-01-01 00:00:00 [bench] INFO: a line of a long crawl's log\n"
        fh.write(line * ((1 << 20) // len(line)))
    figures: dict[str, Any] = {"stored": stored}
    with daemon:
        pages = {
            "jobs page": ["/ui/jobs"],
            "jobs rows fragment": ["/ui/jobs/rows"],
            "jobs page, filtered": ["/ui/jobs?status=successful&project=bench"],
            "jobs page 1,000": ["/ui/jobs?page=1000"],
        }
        for paths in pages.values():
            load(daemon.port, paths, 1.0, 50, work=env.root)  # warm-up
        for name, paths in pages.items():
            figures[name] = load(daemon.port, paths, seconds, work=env.root)
            log(f"ui: {name}: p50 {figures[name]['p50_ms']:.1f} ms")

        rss_before = daemon.rss()
        times = []
        for _ in range(5 if quick else 20):
            start = time.perf_counter()
            status, body = daemon.api.get(f"/ui/jobs/{big}")
            times.append(time.perf_counter() - start)
            if status != 200 or b"a line of a long crawl" not in body:
                raise RuntimeError(f"the big log's page answered {status}")
        rss_after = daemon.rss()
        figures["1 GiB log page"] = {
            "p50_ms": percentile(times, 50) * 1000,
            "max_ms": max(times) * 1000,
            "rss_before_mib": rss_before,
            "rss_after_mib": rss_after,
        }
        log(f"ui: 1 GiB log page p50 {figures['1 GiB log page']['p50_ms']:.1f} ms")

        stream = _open_stream(daemon.port)
        delays = []
        for _ in range(5 if quick else 20):
            job_id = daemon.schedule()
            start = time.perf_counter()
            _wait_for(stream, job_id.encode())
            _, rows = daemon.api.get("/ui/jobs/rows")
            if job_id.encode() not in rows:
                raise RuntimeError("the changed job is not in the rows fragment")
            delays.append(time.perf_counter() - start)
            while daemon.state(job_id) not in ("SUCCESSFUL", "FAILED"):
                time.sleep(0.05)
        stream.close()
        figures["state change to page"] = {
            "p50_ms": percentile(delays, 50) * 1000,
            "p95_ms": percentile(delays, 95) * 1000,
        }
    print_table(figures)
    return figures


def print_table(figures: dict[str, Any]) -> None:
    rows = []
    for name in ("jobs page", "jobs rows fragment", "jobs page, filtered", "jobs page 1,000"):
        rows.append([name, f"{figures[name]['p50_ms']:.1f} ms p50", "< 50 ms"])
    big = figures["1 GiB log page"]
    rows.append(
        [
            "1 GiB log page",
            f"{big['p50_ms']:.1f} ms p50, RSS {big['rss_before_mib']:.0f}->"
            f"{big['rss_after_mib']:.0f} MiB",
            "< 200 ms, no growth",
        ]
    )
    change = figures["state change to page"]
    rows.append(["state change -> Jobs page", f"{change['p95_ms']:.0f} ms p95", "< 1 s"])
    print(table(["dashboard", f"{figures['stored']:,} jobs", "target"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    def body() -> None:
        from bench.common import save_results
        from bench.env import bench_env

        with bench_env() as env:
            save_results("ui", run(env, args.quick))

    guard("ui", body)


if __name__ == "__main__":
    main()
