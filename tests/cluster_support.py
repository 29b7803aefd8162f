"""Worker processes for the cluster tests: `python -m daemon worker` as real children,
each with a work folder of its own, stopped (or killed, frozen, thawed) by pid.

Tests get them from the conftest fixture `start_worker(daemon, redis, name=..., slots=...)`,
which stops every worker it started when the test ends. A worker runs as the role of its
name in the fixture's topology (tests/topology.py): on 127.0.0.1, or in the network
namespace of that name under `make test-cluster`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tests.daemon_support import PYTHON, ROOT, DaemonProcess
from tests.redis_support import RedisServer
from tests.topology import LOOPBACK, Topology
from tests.waiting import wait_until

FINAL = ("SUCCESSFUL", "FAILED", "CANCELED")


def celery_config(redis: RedisServer, lease: float = 3.0, retries: int = 1) -> dict[str, Any]:
    """The config keys of a daemon with `executor: celery` on `redis`."""
    return {
        "executor": "celery",
        "celery": {"broker": redis.url(), "lease": lease, "retries": retries},
    }


def sleepy_job(daemon: DaemonProcess, until: Path) -> str:
    """A toy `sleepy` crawl that runs until the file `until` exists."""
    return daemon.schedule("sleepy", payload=json.dumps({"until_file": str(until)}))


def running_on(daemon: DaemonProcess, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job once it runs on a worker (its node named)."""
    return wait_until(
        lambda: daemon.job(job_id),
        timeout,
        f"job {job_id} to run on a worker",
        until=lambda job: job["status"] == "RUNNING" and job.get("node") not in (None, "celery"),
    )


def node_states(daemon: DaemonProcess) -> dict[str, str]:
    """status.json's nodes: name -> alive / lost."""
    return {n["name"]: n["state"] for n in daemon.get("/status.json").json()["nodes"]}


class WorkerProcess:
    def __init__(
        self,
        daemon: DaemonProcess,
        redis: RedisServer,
        work: Path,
        name: str,
        slots: int,
        lease: float = 3.0,
        topology: Topology = LOOPBACK,
    ) -> None:
        self.daemon = daemon
        self.topology = topology
        self.redis = redis
        self.work = work
        self.name = name
        self.slots = slots
        self.lease = lease
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = work / "worker.log"

    def start(self) -> WorkerProcess:
        argv = [
            PYTHON,
            "-m",
            "daemon",
            "worker",
            "--broker",
            self.redis.url(),
            "--daemon-url",
            self.daemon.url,
            "--slots",
            str(self.slots),
            "--name",
            self.name,
            "--work-dir",
            str(self.work / "work"),
            "--lease",
            str(self.lease),
        ]
        env = dict(os.environ)
        if self.daemon.credentials:
            env["COINSPIDERS_USERNAME"], env["COINSPIDERS_PASSWORD"] = self.daemon.credentials
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.topology.command(self.name, argv),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited {proc.returncode}: {self.log()}")
            return "ready." in self.log()

        wait_until(ready, 60, f"worker {self.name} to be ready")
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def crawl_pids(self) -> list[int]:
        """The worker's crawl processes (its descendants running scrapy)."""
        try:
            kids = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []
        return [k.pid for k in kids]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with_cont = proc.pid
        try:
            os.kill(with_cont, signal.SIGCONT)
        except ProcessLookupError:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


class WorkerFactory:
    def __init__(self, new_dir: Callable[[str], Path], topology: Topology = LOOPBACK) -> None:
        self.new_dir = new_dir
        self.topology = topology
        self.started: list[WorkerProcess] = []

    def __call__(
        self,
        daemon: DaemonProcess,
        redis: RedisServer,
        name: str,
        slots: int = 1,
        lease: float = 3.0,
    ) -> WorkerProcess:
        folder = self.new_dir(f"worker-{name}")
        worker = WorkerProcess(daemon, redis, folder, name, slots, lease, self.topology)
        self.started.append(worker)
        return worker.start()

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()
