"""HTTP load generator, run in its own process so it never shares a GIL with what it measures.

`python -m bench.loadgen --port P --paths-file F --seconds S [--max-requests N]
[--connections C] [--auth user:pass]` sends GETs over keep-alive connections (one thread
each), cycling through the paths in F, and prints one JSON line: requests, errors, seconds,
rps, p50_ms, p99_ms. Bounded by both time and count, so it always stops by itself.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import sys
import threading
import time
from pathlib import Path

from bench.common import percentile


def _worker(
    port: int,
    paths: list[str],
    offset: int,
    deadline: float,
    budget: list[int],
    lock: threading.Lock,
    headers: dict[str, str],
    latencies: list[float],
    errors: list[str],
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    cycle = itertools.islice(itertools.cycle(paths), offset, None)
    clock = time.perf_counter
    while clock() < deadline:
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        path = next(cycle)
        start = clock()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"HTTP {response.status} {path}")
            if response.will_close:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append(clock() - start)
    conn.close()


def run(
    port: int,
    paths: list[str],
    seconds: float,
    max_requests: int,
    connections: int = 1,
    auth: str | None = None,
) -> dict[str, object]:
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    latencies: list[float] = []
    errors: list[str] = []
    budget = [max_requests]
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + seconds
    threads = [
        threading.Thread(
            target=_worker,
            args=(port, paths, n, deadline, budget, lock, headers, latencies, errors),
        )
        for n in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(elapsed, 3),
        "connections": connections,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--paths-file", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--auth")
    args = parser.parse_args()
    paths = [p for p in args.paths_file.read_text().splitlines() if p]
    if not paths:
        sys.exit("no paths to request")
    result = run(args.port, paths, args.seconds, args.max_requests, args.connections, args.auth)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
