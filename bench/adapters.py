"""One adapter per daemon: start it in a tmp dir on a free port, deploy the trivial project,
schedule, poll, list and stop, each through that daemon's own HTTP API.

Job stores are filled before a daemon starts, through that daemon's own store code (ours:
`daemon.job_store`; scrapy-do: `scrapy_do.schedule.Schedule`; scrapyd: `scrapyd.sqlite`), because
running 100,000 real crawls to fill a store would take hours.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Api, BenchError, free_port, rss_mib, stop_process, tail, wait_until
from bench.project import NAME, SPIDER, build_egg, zip_project

AUTH = ("bench", "bench-secret")
DONE = {"SUCCESSFUL", "FAILED", "CANCELED"}


class Daemon:
    """What every benchmark needs from a daemon; subclasses speak each daemon's dialect."""

    name = "?"
    #: the interpreter that runs this daemon's crawls (for the direct-run baseline)
    python = sys.executable

    def __init__(self, work: Path, top: Path, slots: int = 3, auth: bool = False):
        self.work = work
        self.top = top
        self.slots = slots
        self.auth = AUTH if auth else None
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.api = Api(self.port, self.auth)
        work.mkdir(parents=True, exist_ok=True)

    # -- lifecycle
    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def ready_path(self) -> str:
        return "/status.json"

    def start(self) -> None:
        self.port = free_port()
        self.api = Api(self.port, self.auth)
        self.prepare()
        out = open(self.work / "daemon.out", "ab")  # noqa: SIM115
        err = open(self.work / "daemon.err", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.work,
            stdout=out,
            stderr=err,
            env=self.env(),
            start_new_session=True,
        )
        out.close()
        err.close()

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.proc.returncode} at start:\n"
                    f"{tail(self.work / 'daemon.err')}\n{tail(self.work / 'daemon.out')}"
                )
            try:
                status, _ = self.api.get(self.ready_path())
            except OSError:
                return False
            return status == 200

        wait_until(up, 60, f"{self.name} to answer on port {self.port}", 0.05)

    def stop(self) -> None:
        self.api.close()
        if self.proc is not None:
            stop_process(self.proc, 20)
            self.proc = None

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> float:
        return rss_mib(self.pid)

    def prepare(self) -> None:
        """Write config files before start."""

    # -- what the benchmarks call
    def deploy(self) -> None:
        """Make the trivial project known to the daemon."""

    def prefill(self, count: int) -> list[str]:
        """Put `count` finished jobs in the store (daemon stopped); return some of their ids."""
        raise NotImplementedError

    def schedule(self, when: str = "now") -> str:
        raise NotImplementedError

    def state(self, job_id: str) -> str:
        raise NotImplementedError

    def finished_count(self) -> int:
        raise NotImplementedError

    def endpoints(self, ids: list[str]) -> dict[str, list[str]]:
        """Paths for the API-load benchmark: status, a page of jobs, one job by id."""
        raise NotImplementedError


# ---------------------------------------------------------------------------- scrapy-do API


class ScrapyDoApi(Daemon):
    """Job calls of scrapy-do's REST API, which ours and scrapy-do both answer."""

    def schedule(self, when: str = "now") -> str:
        reply = self.api.post_json(
            "/schedule-job.json", {"project": NAME, "spider": SPIDER, "when": when}
        )
        if reply.get("status") != "ok":
            raise BenchError(f"{self.name} refused schedule-job: {reply}")
        return reply["identifier"]

    def state(self, job_id: str) -> str:
        jobs = self.api.get_json("/list-jobs.json", {"id": job_id}).get("jobs") or []
        return jobs[0]["status"] if jobs else "UNKNOWN"

    def finished_count(self) -> int:
        status = self.api.get_json("/status.json")
        return int(status["jobs-successful"]) + int(status["jobs-failed"])


# ---------------------------------------------------------------------------- ours


class Ours(ScrapyDoApi):
    name = "coinspiders"

    def __init__(self, *args: Any, **kwargs: Any):
        if importlib.util.find_spec("daemon.__main__") is None:
            raise BenchError("our daemon is not there yet (no daemon/__main__.py)")
        super().__init__(*args, **kwargs)
        self.data = self.work / "data"

    def prepare(self) -> None:
        lines = [
            f"slots: {self.slots}",
            "completed_cap: 0",
            "projects:",
            f"  {NAME}:",
            f"    path: {json.dumps(str(self.top))}",
        ]
        if self.auth:
            lines += ["auth:", f"  username: {self.auth[0]}", f"  password: {self.auth[1]}"]
        (self.work / "config.yaml").write_text("\n".join(lines) + "\n")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("COINSPIDERS_PASSWORD", None)
        env["PYTHONPATH"] = str(REPO)
        return env

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "daemon",
            "--config",
            str(self.work / "config.yaml"),
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data),
        ]

    def prefill(self, count: int) -> list[str]:
        from bench import fill

        return fill.fill_ours(self.data, count, NAME, SPIDER)

    def endpoints(self, ids: list[str]) -> dict[str, list[str]]:
        return {
            "status.json": ["/status.json"],
            "list-jobs page": ["/list-jobs.json?status=COMPLETED&limit=100"],
            "list-jobs by id": [f"/list-jobs.json?id={i}" for i in ids],
            # scrapy-do's request as is: the default limit is 1,000 jobs.
            "list-jobs 1,000": ["/list-jobs.json?status=COMPLETED"],
        }


# ---------------------------------------------------------------------------- scrapy-do


class ScrapyDo(ScrapyDoApi):
    name = "scrapy-do"

    def __init__(self, venv: Path, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.venv = venv
        self.python = str(venv / "bin" / "python")
        self.store = self.work / "store"
        if self.auth:
            raise BenchError("scrapy-do's auth is HTTP digest; the bench runs it with auth off")

    def prepare(self) -> None:
        (self.work / "scrapy-do.conf").write_text(
            "[scrapy-do]\n"
            f"project-store = {self.store}\n"
            f"job-slots = {self.slots}\n"
            "completed-cap = 10000000\n\n"
            "[web]\n"
            f"interfaces = 127.0.0.1:{self.port}\n"
            "https = off\nauth = off\n"
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)
        return env

    def command(self) -> list[str]:
        return [
            str(self.venv / "bin" / "scrapy-do"),
            "-n",
            "--pidfile=",
            "scrapy-do",
            "--config",
            str(self.work / "scrapy-do.conf"),
        ]

    def deploy(self) -> None:
        reply = self.api.post_json(
            "/push-project.json", {}, {"archive": ("benchping.zip", zip_project(self.top))}
        )
        if reply.get("status") != "ok" or SPIDER not in reply.get("spiders", []):
            raise BenchError(f"scrapy-do refused the project: {reply}")

    def prefill(self, count: int) -> list[str]:
        self.store.mkdir(parents=True, exist_ok=True)
        return _peer_fill(self.python, _FILL_SCRAPY_DO, self.store / "schedule.db", count)

    def endpoints(self, ids: list[str]) -> dict[str, list[str]]:
        return {
            "status.json": ["/status.json"],
            "list-jobs page": ["/list-jobs.json?status=COMPLETED"],
            "list-jobs by id": [f"/list-jobs.json?id={i}" for i in ids],
        }


# ---------------------------------------------------------------------------- scrapyd


class Scrapyd(Daemon):
    name = "scrapyd"

    def __init__(self, venv: Path, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.venv = venv
        self.python = str(venv / "bin" / "python")

    def ready_path(self) -> str:
        return "/daemonstatus.json"

    def prepare(self) -> None:
        lines = [
            "[scrapyd]",
            "bind_address = 127.0.0.1",
            f"http_port = {self.port}",
            f"max_proc = {self.slots}",
            f"eggs_dir = {self.work / 'eggs'}",
            f"logs_dir = {self.work / 'logs'}",
            f"dbs_dir = {self.work / 'dbs'}",
            "jobstorage = scrapyd.jobstorage.SqliteJobStorage",
            "finished_to_keep = 10000000",
        ]
        if self.auth:
            lines += [f"username = {self.auth[0]}", f"password = {self.auth[1]}"]
        (self.work / "scrapyd.conf").write_text("\n".join(lines) + "\n")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)
        return env

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "scrapyd"), "--pidfile="]

    def deploy(self) -> None:
        egg = build_egg(self.top, self.python, self.work)
        reply = self.api.post_json(
            "/addversion.json",
            {"project": NAME, "version": "1"},
            {"egg": ("benchping.egg", egg)},
        )
        if reply.get("status") != "ok" or reply.get("spiders") != 1:
            raise BenchError(f"scrapyd refused the egg: {reply}")

    def prefill(self, count: int) -> list[str]:
        (self.work / "dbs").mkdir(parents=True, exist_ok=True)
        return _peer_fill(self.python, _FILL_SCRAPYD, self.work / "dbs" / "jobs.db", count)

    def schedule(self, when: str = "now") -> str:
        if when != "now":
            raise BenchError("scrapyd has no schedules, only immediate jobs")
        reply = self.api.post_json("/schedule.json", {"project": NAME, "spider": SPIDER})
        if reply.get("status") != "ok":
            raise BenchError(f"scrapyd refused schedule.json: {reply}")
        return reply["jobid"]

    def state(self, job_id: str) -> str:
        state = self.api.get_json("/status.json", {"job": job_id}).get("currstate")
        # scrapyd does not tell a failed crawl from a good one: "finished" is all it knows.
        return {"pending": "PENDING", "running": "RUNNING", "finished": "SUCCESSFUL"}.get(
            state, "UNKNOWN"
        )

    def finished_count(self) -> int:
        return int(self.api.get_json("/daemonstatus.json")["finished"])

    def endpoints(self, ids: list[str]) -> dict[str, list[str]]:
        return {
            "status.json": ["/daemonstatus.json"],
            "list-jobs page": ["/listjobs.json"],
            "list-jobs by id": [f"/status.json?job={i}" for i in ids],
        }


# ---------------------------------------------------------------------------- filling peers

_FILL_SCRAPY_DO = """
import sys, uuid, datetime
from scrapy_do.schedule import Schedule
path, count = sys.argv[1], int(sys.argv[2])
schedule = Schedule(path)
base = datetime.datetime.now() - datetime.timedelta(seconds=count)
rows = [(str(uuid.uuid4()), 5, 2, "now", "benchping", "ping",
         base + datetime.timedelta(seconds=n), 1, "", "{}") for n in range(count)]
schedule.db.executemany(
    "INSERT INTO schedule (identifier, status, actor, schedule, project, spider, timestamp,"
    " duration, description, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
schedule.db.commit()
print("\\n".join(r[0] for r in rows[:: max(1, count // 200)]))
"""

_FILL_SCRAPYD = """
import sys, uuid, datetime
from scrapyd.sqlite import SqliteFinishedJobs
path, count = sys.argv[1], int(sys.argv[2])
jobs = SqliteFinishedJobs(path, "finished_jobs")
base = datetime.datetime.now() - datetime.timedelta(seconds=count)
fmt = "%Y-%m-%d %H:%M:%S.%f"
rows = []
for n in range(count):
    start = base + datetime.timedelta(seconds=n)
    end = start + datetime.timedelta(seconds=0.6)
    rows.append(("benchping", "ping", uuid.uuid1().hex, start.strftime(fmt), end.strftime(fmt)))
jobs.conn.executemany(
    "INSERT INTO finished_jobs (project, spider, job, start_time, end_time)"
    " VALUES (?, ?, ?, ?, ?)", rows)
jobs.conn.commit()
print("\\n".join(r[2] for r in rows[:: max(1, count // 200)]))
"""


def _peer_fill(python: str, script: str, path: Path, count: int) -> list[str]:
    started = time.perf_counter()
    result = subprocess.run(
        [python, "-c", script, str(path), str(count)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode:
        raise BenchError(f"filling {path.name} failed: {result.stderr[-800:]}")
    del started
    return result.stdout.split()
