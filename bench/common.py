"""Shared pieces of the benchmarks: stats, ports, a small HTTP client, results and tables.

Absolute figures are noisy on a shared 2-core machine, so everything here reports medians
and percentiles and keeps the raw samples' size next to them.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import importlib.metadata
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.json"


class BenchError(Exception):
    """A benchmark that cannot run (a daemon missing or refusing); the message says why."""


# ---------------------------------------------------------------- stats


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: a p99 of 50 samples is the largest but one, never invented."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    """The figures we quote for a series of samples (same unit as the samples)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; a timeout is a BenchError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace`; children of the daemon die with its group."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------- HTTP


class Api:
    """A keep-alive HTTP/1.1 client for one daemon; reconnects once on a dropped connection."""

    def __init__(self, port: int, auth: tuple[str, str] | None = None, timeout: float = 30.0):
        self.port = port
        self.timeout = timeout
        self.headers: dict[str, str] = {}
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] = {}
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            try:
                self._conn.request(method, path, body=body, headers={**self.headers, **headers})
                response = self._conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return response.status, data
            except (ConnectionError, http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> tuple[int, bytes]:
        if params:
            path = f"{path}?{urlencode(params)}"
        return self.request("GET", path)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        status, data = self.get(path, params)
        return _decode(path, status, data)

    def post_json(
        self,
        path: str,
        fields: Mapping[str, str],
        files: Mapping[str, tuple[str, bytes]] | None = None,
    ) -> Any:
        """POST as multipart/form-data, the way `curl -F` and the documented examples do."""
        body, ctype = multipart(fields, files or {})
        status, data = self.request("POST", path, body, {"Content-Type": ctype})
        return _decode(path, status, data)


def _decode(path: str, status: int, data: bytes) -> Any:
    try:
        value = json.loads(data)
    except ValueError:
        raise BenchError(f"{path}: HTTP {status}, not JSON: {data[:200]!r}") from None
    if status >= 400:
        raise BenchError(f"{path}: HTTP {status}: {data[:300]!r}")
    return value


def multipart(
    fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes]]
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(head.encode() + str(value).encode() + b"\r\n")
    for name, (filename, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# ---------------------------------------------------------------- results and tables


def machine() -> dict[str, Any]:
    versions = {}
    for dist in ("scrapy", "twisted", "klein", "psutil", "croniter"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": versions,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def save_results(name: str, data: Mapping[str, Any], path: Path = RESULTS) -> None:
    """Merge one benchmark's figures into results.json, stamped with when and where."""
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        results = {}
    results["machine"] = machine()
    results.setdefault("benchmarks", {})[name] = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **data,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{max(digits - 1, 1)}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.rjust(w) if n and i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def load(
    port: int,
    paths: Sequence[str],
    seconds: float,
    max_requests: int = 1_000_000,
    connections: int = 1,
    auth: tuple[str, str] | None = None,
    work: Path | None = None,
) -> dict[str, Any]:
    """Run the load generator in another process against 127.0.0.1:port; return its figures."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".paths", dir=work, delete=False) as handle:
        handle.write("\n".join(paths) + "\n")
        paths_file = handle.name
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--paths-file",
        paths_file,
        "--seconds",
        str(seconds),
        "--max-requests",
        str(max_requests),
        "--connections",
        str(connections),
    ]
    if auth:
        command += ["--auth", f"{auth[0]}:{auth[1]}"]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 120, cwd=REPO
        )
    finally:
        os.unlink(paths_file)
    if result.returncode:
        raise BenchError(f"load generator failed: {result.stderr[-800:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
