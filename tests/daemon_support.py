"""Helpers for the daemon tests: a throwaway Scrapy project and a real daemon process.

Tests get their daemons from the conftest fixtures `start_daemon` / `start_module_daemon`
(a DaemonFactory), never by starting a DaemonProcess of their own, so that every daemon
is stopped however its test ends.

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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from tests.topology import HUB, LOOPBACK, Topology
from tests.waiting import wait_until

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


def toy_projects(folder: Path) -> dict[str, dict[str, Any]]:
    """The `projects:` entry of the daemon tests' config: the toy project, written into
    `folder/toy`, with one setting of its own (TOY_SETTING) that its spiders print."""
    toy = write_toy_project(folder / "toy")
    return {"toy": {"path": str(toy), "settings": {"TOY_SETTING": "from-config"}}}


def write_config(
    path: Path, data_dir: Path, projects: Mapping[str, Mapping[str, Any]], **extra: Any
) -> Path:
    """A daemon config.yaml: 127.0.0.1 on a random port, `projects`, and `extra` keys.

    Each value is written as JSON, which YAML reads as it is (nested keys such as `auth`
    or `tls` included)."""
    settings = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": str(data_dir),
        "slots": 2,
        "cancel_grace": 2,
        "upload_max_bytes": 2_000_000,
        "list_spiders_timeout": 30,
        **extra,
        "projects": projects,
    }
    path.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items()))
    return path


class DaemonProcess:
    """`python -m daemon` as a real child process on a random port."""

    def __init__(
        self,
        config: Path,
        workdir: Path,
        env: Mapping[str, str | None] | None = None,
        python: str = PYTHON,
        topology: Topology = LOOPBACK,
    ):
        self.config = config
        # Where it runs: the HUB of the topology (127.0.0.1, or the hub's namespace).
        self.topology = topology
        self.workdir = workdir
        # The test's environment with `env` over it; None unsets a variable the test's own
        # environment may hold (a password the daemon must not find there).
        merged = {**os.environ, **(env or {})}
        self.env = {key: value for key, value in merged.items() if value is not None}
        self.python = python  # the daemon's interpreter, which its crawls run with too
        # Sent with every get/post that names no auth of its own, so that the helpers
        # below (schedule, job, wait_status, wait_log) work on a daemon with a password.
        self.credentials: tuple[str, str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = workdir / "daemon.log"

    @property
    def url(self) -> str:
        return f"http://{self.topology.host(HUB)}:{self.port}"

    def start(self, timeout: float = 20.0) -> DaemonProcess:
        port_file = self.workdir / "port"
        port_file.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        argv = [self.python, "-m", "daemon", "--config", str(self.config)]
        self.proc = subprocess.Popen(
            self.topology.command(HUB, [*argv, "--port-file", str(port_file)]),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        proc = self.proc

        def started() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited {proc.returncode}: {self.log()}")
            return port_file.exists()

        try:
            wait_until(started, timeout, f"the daemon to write {port_file}", interval=0.02)
        except AssertionError as exc:
            raise RuntimeError(f"{exc}: {self.log()}") from None
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
        kw.setdefault("auth", self.credentials)
        return requests.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("auth", self.credentials)
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
        return wait_until(
            lambda: self.job(job_id),
            timeout,
            f"job {job_id} to be {' or '.join(statuses)}",
            until=lambda job: job["status"] in statuses,
        )

    def wait_log(self, job_id: str, needle: str, kind: str = "out", timeout: float = 30.0) -> str:
        def log_text() -> str:
            rsp = self.get(f"/get-log/data/{job_id}.{kind}")
            return rsp.text if rsp.status_code == 200 else f"HTTP {rsp.status_code}: {rsp.text}"

        return wait_until(
            log_text,
            timeout,
            f"{needle!r} in the {kind} log of job {job_id}",
            until=lambda text: needle in text and not text.startswith("HTTP "),
        )


class DaemonFactory:
    """Starts daemons, each in a folder of its own, and stops every one it started.

    The conftest fixtures `start_daemon` (one test) and `start_module_daemon` (one test
    module) hand one out; `new_dir(name)` makes a fresh folder (pytest's mktemp). Its
    daemons run as the HUB of `topology` (tests/topology.py), listening on its address."""

    def __init__(self, new_dir: Callable[[str], Path], topology: Topology = LOOPBACK) -> None:
        self.new_dir = new_dir
        self.topology = topology
        self.started: list[DaemonProcess] = []

    def __call__(
        self,
        projects: Callable[[Path], Mapping[str, Mapping[str, Any]]] = toy_projects,
        *,
        env: Mapping[str, str | None] | None = None,
        data_dir: Path | None = None,
        python: str = PYTHON,
        start: bool = True,
        **config: Any,
    ) -> DaemonProcess:
        """A started daemon serving `projects(work)` (written into its folder `work`),
        its config made by write_config with the `config` keys.

        `data_dir` replaces work/data where the test prepares the data folder itself (a
        tmpfs, job folders written beforehand, a folder another user may enter); `python`
        runs the daemon and its crawls (one a crawl user may run). `start=False` hands it
        back unstarted, for a test of a start the daemon refuses: that test calls
        `start()` itself and reads the exit status and the log."""
        work = self.new_dir("daemon")
        data = work / "data" if data_dir is None else data_dir
        config = {"host": self.topology.host(HUB), **config}
        path = write_config(work / "config.yaml", data, projects(work), **config)
        daemon = DaemonProcess(path, work, env=env, python=python, topology=self.topology)
        self.started.append(daemon)  # stopped with the rest, should it start after all
        return daemon.start() if start else daemon

    def restart(self, daemon: DaemonProcess) -> DaemonProcess:
        """A new daemon process on the config, folder, environment and interpreter of
        `daemon` (which the test has stopped or killed)."""
        again = DaemonProcess(
            daemon.config, daemon.workdir, python=daemon.python, topology=daemon.topology
        )
        again.env = daemon.env
        again.credentials = daemon.credentials
        return self._start(again)

    def _start(self, daemon: DaemonProcess) -> DaemonProcess:
        self.started.append(daemon)
        return daemon.start()

    def stop_all(self) -> None:
        """SIGTERM each daemon still running (it stops its crawls on the way out)."""
        for daemon in self.started:
            daemon.stop()


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


def write_store_without_added_columns(path: Path) -> None:
    """A job store as the daemon wrote it before the columns it now adds on open
    (daemon.job_store._ADDED_COLUMNS), with one PENDING job "old" of p/s."""
    import sqlite3

    from daemon.job_store import _SCHEMA, SCHEMA_VERSION

    old = sqlite3.connect(path)
    old.executescript(_SCHEMA)
    old.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    old.execute(
        "INSERT INTO jobs (id, status, active, actor, schedule, project, spider, created,"
        " updated) VALUES ('old', 'PENDING', 1, 'USER', 'now', 'p', 's', 1, 1)"
    )
    old.commit()
    old.close()


def zip_project(folder: Path, top: str | None = None) -> bytes:
    """A zip as scrapy-do-cl builds it (one top folder) or with scrapy.cfg at the root."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                rel = path.relative_to(folder).as_posix()
                zf.write(path, f"{top}/{rel}" if top else rel)
    return buf.getvalue()


def read_items(path: Path) -> list[dict[str, Any]]:
    """items.jl as the daemon reads it (its complete lines), [] before the file exists."""
    from daemon.coin_records import complete_lines

    lines, _ = complete_lines(path.read_bytes() if path.exists() else b"", 0)
    return [json.loads(line.data) for line in lines]
