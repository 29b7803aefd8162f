"""`coinspiders-daemon worker`: a Celery worker that runs crawls for a daemon on
another machine.

A worker needs the broker, the daemon's URL and a folder of its own: no shared file
system. For each task it claims the attempt in Redis (a late or duplicate delivery
loses the claim and is dropped), fetches the project version from the daemon (kept per
version), runs the crawl as a child in its own session with a parent-death signal (a
crawl never outlives the worker), renews its lease, watches the cancel flag, streams
the logs and live stats to the daemon, and at the end sends the job folder and the
outcome. When a renew finds another attempt current (the daemon gave up on this one),
the crawl is killed and nothing more is written: the daemon would refuse it anyway.

Credentials come from the environment: COINSPIDERS_USERNAME / COINSPIDERS_PASSWORD for
the daemon's auth; the broker URL may be given as COINSPIDERS_BROKER instead of
--broker (it may hold a password). None of them reaches a crawl.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.cluster.leases import Leases

log = logging.getLogger("coinspiders.worker")

USER_ENV = "COINSPIDERS_USERNAME"
PASSWORD_ENV = "COINSPIDERS_PASSWORD"
BROKER_ENV = "COINSPIDERS_BROKER"
#: How often the supervisor looks at its crawl, ships logs and stats (get-log on the
#: daemon is at most this much, plus one request, behind the crawl).
TICK = 0.25
#: Bytes of a log or file sent per request (well under the daemon's upload cap).
CHUNK = 512 * 1024
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerConfig:
    broker: str
    daemon_url: str
    slots: int
    name: str
    work_dir: Path
    queue: str = "coinspiders"
    prefix: str = "coinspiders"
    heartbeat: float = 1.0


class Refused(Exception):
    """The daemon answered 409: this attempt is no longer current."""


class DaemonClient:
    """Blocking HTTP to the daemon (called from the worker's own threads)."""

    def __init__(self, url: str, worker: str) -> None:
        self.url = url.rstrip("/")
        self.worker = worker
        user = os.environ.get(USER_ENV)
        password = os.environ.get(PASSWORD_ENV)
        self._auth = None
        if user and password is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._auth = f"Basic {token}"

    def _request(
        self, method: str, path: str, params: dict[str, Any], body: bytes | None, ctype: str
    ) -> bytes:
        query = urllib.parse.urlencode({"worker": self.worker, **params})
        req = urllib.request.Request(f"{self.url}/cluster{path}?{query}", data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", ctype)
        if self._auth:
            req.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(req, timeout=30) as rsp:
                data: bytes = rsp.read()
                return data
        except urllib.error.HTTPError as exc:
            text = exc.read()[:500].decode("utf-8", "replace")
            if exc.code == 409:
                raise Refused(text) from None
            raise OSError(f"HTTP {exc.code} from the daemon: {text}") from None

    def post(
        self, path: str, body: bytes = b"", ctype: str = "application/octet-stream", **params: Any
    ) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self._request("POST", path, params, body, ctype) or b"{}")
        return data

    def get(self, path: str) -> bytes:
        return self._request("GET", path, {}, None, "")


def _set_pdeathsig() -> None:
    """In the child before exec: SIGKILL when the worker thread that started it ends.
    prctl through ctypes, as daemon.leftovers does for the subreaper bit."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Worker:
    """One worker process: its config, its Redis leases and daemon client, and the
    crawls it runs now."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.leases = Leases.from_url(config.broker, prefix=config.prefix)
        self.client = DaemonClient(config.daemon_url, config.name)
        self.running: dict[str, int] = {}
        self._lock = threading.Lock()
        self._project_locks: dict[str, threading.Lock] = {}
        self.stopped = threading.Event()
        for sub in ("projects", "data", "logs"):
            (config.work_dir / sub).mkdir(parents=True, exist_ok=True)

    # -- heartbeats -----------------------------------------------------------

    def beat_forever(self) -> None:
        while not self.stopped.wait(self.config.heartbeat):
            self.beat()

    def beat(self) -> None:
        with self._lock:
            running = sorted(self.running)
        try:
            ttl = int(self.config.heartbeat * 5000)
            self.leases.heartbeat(self.config.name, self.config.slots, running, ttl)
        except Exception as exc:  # Redis away: the next beat tries again
            log.warning("heartbeat failed: %s", exc)

    # -- projects -------------------------------------------------------------

    def project(self, key: str) -> Path:
        """The unpacked project version `key`, fetched once and kept."""
        from daemon.archive import ArchiveLimits, read_archive
        from daemon.projects import unpack_archive

        with self._lock:
            lock = self._project_locks.setdefault(key, threading.Lock())
        with lock:
            dest = self.config.work_dir / "projects" / key
            if (dest / "scrapy.cfg").is_file():
                return dest
            data = self.client.get(f"/projects/{key}.zip")
            limits = ArchiveLimits(
                max_archive_bytes=1 << 30, max_unpacked_bytes=1 << 31, max_files=100_000
            )
            archive = read_archive(data, limits)
            tmp = dest.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}")
            shutil.rmtree(tmp, ignore_errors=True)
            unpack_archive(data, archive, tmp, limits)
            os.replace(tmp, dest)
            return dest

    # -- one attempt ----------------------------------------------------------

    def run_task(self, body: dict[str, Any]) -> str:
        job_id = str(body["job_id"])
        attempt = int(body["attempt"])
        claim = self.leases.claim(job_id, attempt, self.config.name)
        if claim != "ok":
            log.info("job %s attempt %s not claimed: %s", job_id, attempt, claim)
            return claim
        with self._lock:
            self.running[job_id] = attempt
        self.beat()
        try:
            return Attempt(self, body).run()
        except Exception:
            log.exception("job %s attempt %s: the supervisor failed", job_id, attempt)
            return "error"
        finally:
            with self._lock:
                self.running.pop(job_id, None)
            self.beat()


class Attempt:
    """Supervises one claimed attempt from the project fetch to the release."""

    def __init__(self, worker: Worker, body: dict[str, Any]) -> None:
        self.worker = worker
        self.body = body
        self.job_id = str(body["job_id"])
        self.attempt = int(body["attempt"])
        self.name = worker.config.name
        self.leases = worker.leases
        self.client = worker.client
        work = worker.config.work_dir
        self.data_dir = (work / "data").resolve()
        self.job_dir = self.data_dir / self.job_id
        self.logs = {kind: work / "logs" / f"{self.job_id}.{kind}" for kind in ("out", "err")}
        self.sent = {kind: 0 for kind in self.logs}
        self.grace = float(body.get("grace", 10.0))
        self.lease_every = max(0.2, self.leases.lease_ms / 3000.0)
        self.lost = False
        self.stats_mtime = 0.0
        self.pid = 0
        self.start_reported = False

    def path(self, what: str) -> str:
        return f"/jobs/{self.job_id}/{self.attempt}/{what}"

    def run(self) -> str:
        from daemon.children import child_env
        from daemon.launcher import crawl_args, crawl_command
        from daemon.leftovers import JOB_ENV

        shutil.rmtree(self.job_dir, ignore_errors=True)
        self.job_dir.mkdir(parents=True)
        for path in self.logs.values():
            path.unlink(missing_ok=True)
        try:
            cwd = self.worker.project(str(self.body["project_key"]))
        except Exception as exc:
            log.error("job %s: cannot fetch its project: %s", self.job_id, exc)
            return self.finish(
                {"start_error": f"worker {self.name} cannot fetch the project: {exc}"}
            )
        args = crawl_args(
            str(self.body["spider"]),
            self.job_id,
            self.data_dir,
            dict(self.body.get("settings") or {}),
            str(self.body.get("payload") or "{}"),
        )
        env = child_env((USER_ENV, BROKER_ENV))
        env["SPIDER_DATA_DIR"] = str(self.data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env[JOB_ENV] = self.job_id
        with self.logs["out"].open("ab") as out, self.logs["err"].open("ab") as err:
            proc = subprocess.Popen(
                crawl_command(args),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=_set_pdeathsig,
            )
        self.pid = proc.pid
        try:
            self.client.post(self.path("started"), pid=proc.pid)
            self.start_reported = True
        except Refused as exc:
            log.warning("job %s attempt %s: start refused: %s", self.job_id, self.attempt, exc)
            self.kill(proc, signal.SIGKILL)
            proc.wait()
            self.lost = True
            return "refused"
        except OSError as exc:  # the daemon is away: the crawl runs, the end waits for it
            log.warning("job %s: cannot report its start: %s", self.job_id, exc)
        outcome = self.supervise(proc)
        if self.lost:
            self.cleanup()
            return "lost"
        return self.finish(outcome)

    @staticmethod
    def kill(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if proc.poll() is None:
                os.kill(proc.pid, sig)

    def supervise(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        renewed = time.monotonic()
        stopping_at: float | None = None
        killed = False
        stop_sig: int | None = None
        while True:
            code = proc.poll()
            now = time.monotonic()
            # Ship first: a worker that wakes from a freeze learns from the daemon's
            # 409 (or from Redis) that its attempt is over, whichever answers first.
            self.ship()
            if not self.lost and now - renewed >= self.lease_every:
                try:
                    if self.leases.renew(self.job_id, self.attempt, self.name):
                        renewed = now
                    else:
                        self.lost = True
                except Exception as exc:
                    log.warning("job %s: cannot renew its lease: %s", self.job_id, exc)
                with contextlib.suppress(Exception):
                    sig = self.leases.canceled(self.job_id)
                    if sig and stopping_at is None and code is None:
                        stop_sig = sig
                        stopping_at = now
                        self.kill(proc, sig)
            if self.lost:
                log.warning(
                    "job %s attempt %s is no longer this worker's; killing the crawl",
                    self.job_id,
                    self.attempt,
                )
                self.kill(proc, signal.SIGKILL)
                proc.wait()
                return {}
            late = stopping_at is not None and now - stopping_at > self.grace
            if late and code is None and not killed:
                killed = True
                self.kill(proc, signal.SIGKILL)
            if code is not None:
                # Whatever the crawl left in its process group goes with it.
                self.kill(proc, signal.SIGKILL)
                self.ship()
                return {
                    "exit_code": code if code >= 0 else None,
                    "signal": -code if code < 0 else None,
                    "killed": killed,
                    "canceled": stop_sig is not None,
                }
            time.sleep(TICK)

    def ship(self) -> None:
        """New log bytes and changed stats to the daemon; a failure leaves them for
        the next tick (offsets only move on success)."""
        try:
            if not self.start_reported:  # the daemon was away when the crawl started
                self.client.post(self.path("started"), pid=self.pid)
                self.start_reported = True
            for kind, path in self.logs.items():
                with contextlib.suppress(FileNotFoundError), path.open("rb") as fh:
                    fh.seek(self.sent[kind])
                    while chunk := fh.read(CHUNK):
                        rsp = self.client.post(
                            self.path(f"log/{kind}"), chunk, offset=self.sent[kind]
                        )
                        self.sent[kind] = int(rsp.get("size", self.sent[kind] + len(chunk)))
            stats = self.job_dir / "stats.json"
            with contextlib.suppress(FileNotFoundError):
                mtime = stats.stat().st_mtime
                if mtime != self.stats_mtime:
                    self.client.post(self.path("stats"), stats.read_bytes(), "application/json")
                    self.stats_mtime = mtime
        except Refused as exc:
            log.warning("job %s attempt %s: write refused: %s", self.job_id, self.attempt, exc)
            self.lost = True
        except OSError as exc:
            log.debug("job %s: cannot ship logs now: %s", self.job_id, exc)

    def upload_folder(self) -> None:
        for path in sorted(self.job_dir.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            name = path.relative_to(self.job_dir).as_posix()
            offset = 0
            with path.open("rb") as fh:
                while True:
                    chunk = fh.read(CHUNK)
                    if not chunk and offset > 0:
                        break
                    rsp = self.client.post(self.path("files"), chunk, name=name, offset=offset)
                    offset = int(rsp.get("size", offset + len(chunk)))
                    if not chunk:
                        break

    def finish(self, outcome: dict[str, Any]) -> str:
        """Send the folder and the end until the daemon takes them (it may be
        restarting), renewing the lease meanwhile; then release it."""
        from daemon.verdict import close_reason_from_log, read_log_tail, read_manifest

        report = dict(outcome)
        report["manifest"] = read_manifest(self.job_dir)
        if report["manifest"] is None:
            report["log_close_reason"] = close_reason_from_log(read_log_tail(self.logs["err"]))
        stats = self.job_dir / "stats.json"
        with contextlib.suppress(OSError):
            report["stats"] = stats.read_text()
        body = json.dumps(report).encode()
        result = "ended"
        while True:
            try:
                self.ship()
                if self.lost:
                    result = "lost"
                    break
                if "start_error" not in report:
                    self.upload_folder()
                self.client.post(self.path("ended"), body, "application/json")
                break
            except Refused as exc:
                log.warning("job %s attempt %s: end refused: %s", self.job_id, self.attempt, exc)
                result = "refused"
                break
            except OSError as exc:
                log.warning("job %s: cannot report its end yet: %s", self.job_id, exc)
            try:
                if not self.leases.renew(self.job_id, self.attempt, self.name):
                    result = "lost"
                    break
            except Exception as exc:
                log.warning("job %s: cannot renew its lease: %s", self.job_id, exc)
            time.sleep(1.0)
        with contextlib.suppress(Exception):
            self.leases.release(self.job_id, self.attempt, self.name)
        self.cleanup()
        return result

    def cleanup(self) -> None:
        shutil.rmtree(self.job_dir, ignore_errors=True)
        for path in self.logs.values():
            path.unlink(missing_ok=True)


# -- the command ---------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="coinspiders-daemon worker",
        description="Run crawls for a coinspiders daemon, taking them from a Celery broker.",
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get(BROKER_ENV),
        help="redis://HOST:PORT/DB (or $COINSPIDERS_BROKER)",
    )
    parser.add_argument(
        "--daemon-url", required=True, help="the daemon's URL, e.g. http://host:7654"
    )
    parser.add_argument("--slots", type=int, default=2, help="crawls run at once")
    parser.add_argument("--name", default=socket.gethostname(), help="this worker's node name")
    parser.add_argument("--work-dir", required=True, help="a folder of this worker's own")
    parser.add_argument(
        "--queue", default="coinspiders", help="the Celery queue (config celery.queue)"
    )
    parser.add_argument(
        "--prefix", default="coinspiders", help="Redis key prefix (config celery.prefix)"
    )
    parser.add_argument(
        "--lease", type=float, default=10.0, help="lease time in seconds (config celery.lease)"
    )
    args = parser.parse_args(argv)
    if not args.broker:
        parser.error("--broker (or $COINSPIDERS_BROKER) is required")
    if args.slots < 1:
        parser.error("--slots: at least 1")
    from daemon.cluster.names import check_worker
    from daemon.errors import DaemonError

    try:
        check_worker(args.name)
    except DaemonError as exc:
        parser.error(f"--name: {exc.message}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s [%(name)s] %(levelname)s: %(message)s",
    )
    config = WorkerConfig(
        broker=args.broker,
        daemon_url=args.daemon_url,
        slots=args.slots,
        name=args.name,
        work_dir=Path(args.work_dir).resolve(),
        queue=args.queue,
        prefix=args.prefix,
    )
    from daemon.cluster.tasks import TASK_NAME, celery_app

    worker = Worker(config)
    worker.leases.lease_ms = int(args.lease * 1000)
    app = celery_app(config.broker, config.queue)

    @app.task(name=TASK_NAME, acks_late=True, ignore_result=True)
    def run_attempt(body: dict[str, Any]) -> str:
        return worker.run_task(body)

    beat = threading.Thread(target=worker.beat_forever, name="heartbeat", daemon=True)
    beat.start()
    try:
        while True:
            celery_worker = app.Worker(
                hostname=f"{config.name}@%h",
                pool_cls="threads",
                concurrency=config.slots,
                queues=[config.queue],
                prefetch_multiplier=1,
                without_gossip=True,
                without_mingle=True,
                loglevel="INFO",
            )
            celery_worker.start()
            # Celery's consumer can die of a broker connection lost at the wrong time
            # ("Unrecoverable error", exit code 1): the crawls it ran went on under
            # their own supervisors; take tasks again. A requested stop exits 0.
            if celery_worker.exitcode != 1:
                break
            log.warning("the Celery worker failed; starting it again")
            time.sleep(1.0)
    finally:
        worker.stopped.set()
    return 0
