"""A real `redis-server` for tests: started on a free 127.0.0.1 port in a folder of its
own, with persistence off (`--save ''`, no AOF), stopped by its pid. Given a topology
(tests/topology.py) it runs as the HUB there: bound to the hub's address, started in
the hub's network namespace under `make test-cluster`.

`restart()` starts it again on the same port and folder: what a test of "Redis
restarted mid-run" needs (with persistence off, the restarted server is empty, as a
broker that lost its memory is). `kill()` ends it at once (SIGKILL).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.topology import HUB, LOOPBACK, Topology
from tests.waiting import wait_until

REDIS_SERVER = (
    os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(host: str, port: int) -> bool:
    """One PING over a plain socket (no client library needed to know it is up)."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; `url` is what clients and workers are given."""

    def __init__(
        self, folder: Path, port: int | None = None, topology: Topology = LOOPBACK
    ) -> None:
        self.folder = folder
        self.topology = topology
        self.host = topology.host(HUB)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 30.0) -> RedisServer:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError(f"{REDIS_SERVER} is missing: install redis-server (apt)")
        argv = [
            REDIS_SERVER,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            # Protected mode admits loopback clients only; a lab's clients are in other
            # namespaces, on an address nothing outside the lab can reach.
            "--protected-mode",
            "yes" if self.host == "127.0.0.1" else "no",
            "--logfile",
            str(self.log_path),
        ]
        argv = self.topology.command(HUB, argv)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited {proc.returncode}: {self.log()}")
            return _ping(self.host, self.port)

        wait_until(up, timeout, f"redis-server to answer on port {self.port}", interval=0.02)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """End the server by its pid; SIGKILL if it has not gone after `timeout`."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, timeout: float = 30.0) -> RedisServer:
        """Stop (if running) and start again on the same port: an empty Redis."""
        self.stop()
        return self.start(timeout)
