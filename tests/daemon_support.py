"""Helpers for the daemon tests: a throwaway Scrapy project and a real daemon process.

The toy project's spiders need no network: one yields items, one sleeps (and writes a
job.json like the coinspiders pipelines do), one exits with status 3, one ignores
SIGTERM and starts a child that ignores it too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

TOY_SPIDERS = """
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import scrapy


def _write_manifest(spider, reason):
    folder = Path(spider.settings.get("DATA_DIR")) / spider.settings.get("JOB_ID")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.json").write_text(json.dumps({"close_reason": reason, "succeeded": True}))


class Items(scrapy.Spider):
    name = "items"

    async def start(self):
        print("START", self.settings.get("JOB_ID"), flush=True)
        print("ARGS", json.dumps(getattr(self, "payload", None)), flush=True)
        print("SETTING", self.settings.get("TOY_SETTING"), flush=True)
        print("ENV", os.environ.get("SPIDER_DATA_DIR"), flush=True)
        print("SECRET", os.environ.get("COINSPIDERS_PASSWORD"), flush=True)
        print("ENVIRON", json.dumps(dict(os.environ), sort_keys=True), flush=True)
        for n in range(3):
            yield {"n": n}


class Sleepy(scrapy.Spider):
    name = "sleepy"

    async def start(self):
        print("START", self.settings.get("JOB_ID"), flush=True)
        args = json.loads(getattr(self, "payload", "{}"))
        if args.get("until_file"):  # ends when the test says so, not after a guessed time
            while not Path(args["until_file"]).exists():
                await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(float(args.get("seconds", 30)))
        yield {"slept": True}

    def closed(self, reason):
        print("CLOSED", reason, flush=True)
        _write_manifest(self, reason)


class Fails(scrapy.Spider):
    name = "fails"

    async def start(self):
        print("about to fail", flush=True)
        os._exit(3)
        yield {}


class Stubborn(scrapy.Spider):
    name = "stubborn"

    async def start(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
        print("CHILD", child.pid, flush=True)
        await asyncio.sleep(300)
        yield {}
"""


def write_scrapy_project(
    folder: Path,
    name: str,
    spiders: dict[str, str],
    log_level: str = "INFO",
    telnet_console_off: bool = True,
) -> Path:
    """A minimal Scrapy project `name` in `folder` (scrapy.cfg at its top) whose spider
    modules are `spiders` (file name -> source). `telnet_console_off=False` leaves the
    Telnet console at Scrapy's default (on), as a project pushed by a user may."""
    pkg = folder / name
    (pkg / "spiders").mkdir(parents=True, exist_ok=True)
    (folder / "scrapy.cfg").write_text(
        f"[settings]\ndefault = {name}.settings\n\n[deploy]\nproject = {name}\n"
    )
    (pkg / "__init__.py").write_text("")
    (pkg / "settings.py").write_text(
        textwrap.dedent(
            f"""
            BOT_NAME = "{name}"
            SPIDER_MODULES = ["{name}.spiders"]
            TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
            LOG_LEVEL = "{log_level}"
            """
        )
        + ("TELNETCONSOLE_ENABLED = False\n" if telnet_console_off else "")
    )
    (pkg / "spiders" / "__init__.py").write_text("")
    for filename, source in spiders.items():
        (pkg / "spiders" / filename).write_text(source)
    return folder


def write_toy_project(folder: Path, name: str = "toy") -> Path:
    """The toy project of the daemon tests (spiders in TOY_SPIDERS)."""
    return write_scrapy_project(folder, name, {"toys.py": TOY_SPIDERS})


def write_config(path: Path, data_dir: Path, toy: Path, **extra: Any) -> Path:
    lines = [
        "host: 127.0.0.1",
        "port: 0",
        f"data_dir: {json.dumps(str(data_dir))}",
        f"slots: {extra.pop('slots', 2)}",
        f"cancel_grace: {extra.pop('cancel_grace', 2)}",
        f"upload_max_bytes: {extra.pop('upload_max_bytes', 2_000_000)}",
        "list_spiders_timeout: 30",
    ]
    for key, value in extra.items():
        lines.append(f"{key}: {json.dumps(value)}")
    lines += [
        "projects:",
        "  toy:",
        f"    path: {json.dumps(str(toy))}",
        "    settings:",
        "      TOY_SETTING: from-config",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class DaemonProcess:
    """`python -m daemon` as a real child process on a random port."""

    def __init__(self, config: Path, workdir: Path, env: dict[str, str] | None = None):
        self.config = config
        self.workdir = workdir
        self.env = {**os.environ, **(env or {})}
        self.python = PYTHON  # the daemon's interpreter, which its crawls run with too
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = workdir / "daemon.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> DaemonProcess:
        port_file = self.workdir / "port"
        port_file.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                self.python,
                "-m",
                "daemon",
                "--config",
                str(self.config),
                "--port-file",
                str(port_file),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start: {self.log()}")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kw)

    def schedule(self, spider: str, project: str = "toy", **fields: Any) -> str:
        data = {"project": project, "spider": spider, "when": "now", **fields}
        rsp = self.post("/schedule-job.json", data=data)
        assert rsp.status_code == 200, rsp.text
        return rsp.json()["identifier"]

    def job(self, job_id: str) -> dict[str, Any]:
        rsp = self.get("/list-jobs.json", params={"id": job_id})
        assert rsp.status_code == 200, rsp.text
        return rsp.json()["jobs"][0]

    def wait_status(
        self, job_id: str, statuses: tuple[str, ...], timeout: float = 30.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']}: {job}")
            time.sleep(0.05)

    def wait_log(self, job_id: str, needle: str, kind: str = "out", timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            rsp = self.get(f"/get-log/data/{job_id}.{kind}")
            if rsp.status_code == 200 and needle in rsp.text:
                return rsp.text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in log of {job_id}: {rsp.text[-2000:]}")
            time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
