"""Zygotes on the daemon's side: one per project version in use, started, fed, retired.

A zygote (daemon.runner.zygote) is spawned like a crawl (reactor.spawnProcess, the
crawls' environment and user, in the project's folder) with one end of a SOCK_SEQPACKET
socket pair as its fd 3: one JSON message per packet, and a crawl's stdin/stdout/stderr
handed over with its start message (SCM_RIGHTS), so the zygote, which may run as the
unprivileged crawl user, never opens the daemon's log folder.

A job is started warm only from a zygote that is ready; a version's first job starts
cold while its zygote boots, and a zygote that fails to boot (a spider module that does
not import, say) leaves its version cold: the crawl then shows the error a cold
`scrapy crawl` shows. A new version of a project retires the old version's zygote: it
starts nothing more and exits once its last crawl has ended. An idle zygote is
retired after `idle` seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from daemon.config import CrawlUser
from daemon.runner.zygote import CONTROL_FD, TAG_ENV, TAG_PLACEHOLDER

log = Logger()

#: Room in the zygote's argv for the titles of its crawls (daemon.runner.title writes
#: a title over the argv area only, which a fork keeps).
_TITLE_ROOM = " " * 160
_MAX_PACKET = 1 << 20


class ZygoteUnavailable(Exception):
    """No warm start for this job: the caller starts it cold."""


@dataclass
class Started:
    pid: int
    start: float | None


@dataclass
class Zygote:
    project: str
    key: tuple[str, int]  # the project folder, and its code's newest mtime
    pid: int = 0
    ready: bool = False
    failed: bool = False
    retired: bool = False
    dead: bool = False
    sock: socket.socket | None = None
    reader: Any = None
    transport: Any = None
    last_used: float = field(default_factory=time.monotonic)
    #: pid -> job id of its running crawls
    crawls: dict[int, str] = field(default_factory=dict)
    #: job id -> the Deferred of a start asked but not confirmed yet
    starting: dict[str, Deferred[Started]] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)
    #: The last line of the error a zygote that failed to boot reported.
    error: str = ""


@implementer(IReadDescriptor)
class _Reader:
    """The daemon's end of a zygote's socket, read by the reactor."""

    def __init__(
        self,
        sock: socket.socket,
        on_message: Callable[[dict[str, Any]], None],
        on_close: Callable[[], None],
    ) -> None:
        self.sock = sock
        self.on_message = on_message
        self.on_close = on_close

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return "zygote"

    def doRead(self) -> None:
        while True:
            try:
                data = self.sock.recv(_MAX_PACKET)
            except BlockingIOError:
                return None
            except OSError:
                data = b""
            if not data:
                self.on_close()
                return None
            try:
                message = json.loads(data)
            except ValueError:
                continue
            self.on_message(message)

    def connectionLost(self, reason: Failure) -> None:
        self.on_close()


class _ZygoteProtocol(protocol.ProcessProtocol):
    def __init__(self, on_end: Callable[[], None]) -> None:
        self._on_end = on_end

    def processEnded(self, reason: Failure) -> None:
        self._on_end()


def code_mark(folder: Path) -> int:
    """The newest mtime (ns) of scrapy.cfg and of the Python files of the package its
    settings module lies in: a local project edited in place gets a new zygote, as a
    pushed version does. Only that package is walked (a project folder may also hold
    a virtualenv or a data folder of thousands of files)."""
    import configparser

    cfg = folder / "scrapy.cfg"
    newest = 0
    with contextlib.suppress(OSError):
        newest = cfg.stat().st_mtime_ns
    parser = configparser.ConfigParser()
    with contextlib.suppress(configparser.Error, OSError, UnicodeDecodeError):
        parser.read(cfg, encoding="utf-8")
    module = parser.get("settings", "default", fallback="")
    package = module.split(".")[0]
    if not package or package.startswith("."):
        return newest
    for root, dirs, files in os.walk(folder / package):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.stat(os.path.join(root, name)).st_mtime_ns)
    return newest


class ZygotePool:
    """The daemon's zygotes, by project version."""

    def __init__(
        self,
        reactor: Any,
        logs_dir: Path,
        env: Mapping[str, str],
        crawl_user: CrawlUser | None = None,
        idle: float = 300.0,
        immutable_root: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.reactor = reactor
        self.logs_dir = Path(logs_dir)
        self.env = {**env, TAG_ENV: TAG_PLACEHOLDER}
        self.crawl_user = crawl_user
        self.idle = idle
        #: Folders under it are pushed versions (never change): no mtime walk for them.
        self.immutable_root = immutable_root
        self.python = python
        #: Seconds a zygote has to confirm a fork before it is taken for stuck.
        self.start_timeout = 30.0
        self.zygotes: list[Zygote] = []
        #: Called with (job id) when a zygote died with that crawl still running.
        self.on_orphaned: Callable[[str, int], None] = lambda job_id, pid: None
        #: Called with (job id, exit code, signal) when a crawl of a zygote ended.
        self.on_ended: Callable[[str, int | None, int | None], None] = lambda *a: None
        self._loop: LoopingCall | None = None

    # -- starting crawls -------------------------------------------------------------

    def _key(self, cwd: Path) -> tuple[str, int]:
        folder = Path(cwd).resolve()
        if self.immutable_root is not None and folder.is_relative_to(self.immutable_root):
            return str(folder), 0
        return str(folder), code_mark(folder)

    def start(
        self,
        project: str,
        cwd: Path,
        job_id: str,
        args: list[str],
        env: Mapping[str, str],
        fds: Iterable[int],
    ) -> Deferred[Started]:
        """Fork the crawl from the project version's zygote; fails with
        ZygoteUnavailable (start it cold) while that zygote is not ready."""
        key = self._key(cwd)
        zygote = self._current(project, key, cwd)
        if zygote is None or not zygote.ready or zygote.sock is None:
            raise ZygoteUnavailable("no ready zygote")
        message = json.dumps({"op": "start", "job": job_id, "args": args, "env": dict(env)})
        try:
            socket.send_fds(zygote.sock, [message.encode()], list(fds))
        except OSError as exc:
            raise ZygoteUnavailable(f"zygote {zygote.pid}: {exc}") from None
        zygote.last_used = time.monotonic()
        waiter: Deferred[Started] = Deferred()
        zygote.starting[job_id] = waiter
        timer = self.reactor.callLater(self.start_timeout, self._too_slow, zygote, job_id)
        waiter.addBoth(lambda result: (timer.active() and timer.cancel(), result)[1])
        return waiter

    def _too_slow(self, zygote: Zygote, job_id: str) -> None:
        """A zygote that does not confirm a fork in time is stuck (stopped, swapping):
        it is killed, so it can never fork that crawl late, and the job starts cold."""
        if zygote.reader is not None:
            zygote.reader.doRead()  # a confirmation that came in meanwhile counts
        waiter = zygote.starting.pop(job_id, None)
        if waiter is None:
            return
        log.error(
            "zygote {pid} of {project} did not start job {id} within {s} s: killed",
            pid=zygote.pid,
            project=zygote.project,
            id=job_id,
            s=self.start_timeout,
        )
        self.retire(zygote)
        with contextlib.suppress(Exception):
            zygote.transport.signalProcess("KILL")
        waiter.errback(Failure(ZygoteUnavailable("the zygote did not answer")))

    def _current(self, project: str, key: tuple[str, int], cwd: Path) -> Zygote | None:
        """The live zygote of this version, spawned if there is none; older versions of
        the project are retired, and failures of its older versions forgotten."""
        self.zygotes = [
            z for z in self.zygotes if not (z.project == project and z.failed and z.key != key)
        ]
        found = None
        for zygote in self.zygotes:
            if zygote.project != project or zygote.retired or zygote.dead:
                continue
            if zygote.key == key:
                found = zygote
            else:
                self.retire(zygote)
        if found is not None:
            return None if found.failed else found
        if any(z.key == key and z.failed for z in self.zygotes):
            return None
        self._spawn(project, key, cwd)
        return None

    def _spawn(self, project: str, key: tuple[str, int], cwd: Path) -> None:
        zygote = Zygote(project=project, key=key)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ids: dict[str, int] = {}
        if self.crawl_user is not None:
            ids = {"uid": self.crawl_user.uid, "gid": self.crawl_user.gid}
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        err = os.open(self.logs_dir / "zygotes.log", flags, 0o600)
        try:
            argv = [self.python, "-m", "daemon.runner.zygote", project, _TITLE_ROOM]
            zygote.transport = self.reactor.spawnProcess(
                _ZygoteProtocol(lambda: self._died(zygote)),
                argv[0],
                argv,
                env=self.env,
                path=str(cwd),
                childFDs={0: null, 1: err, 2: err, CONTROL_FD: theirs.fileno()},
                **ids,
            )
        except Exception as exc:
            log.error("cannot start a zygote for {project}: {exc}", project=project, exc=exc)
            ours.close()
            zygote.failed = True
            self.zygotes.append(zygote)
            return
        finally:
            theirs.close()
            os.close(null)
            os.close(err)
        ours.setblocking(False)
        zygote.pid = zygote.transport.pid
        zygote.sock = ours
        zygote.reader = _Reader(
            ours, lambda m: self._message(zygote, m), lambda: self._closed(zygote)
        )
        self.reactor.addReader(zygote.reader)
        self.zygotes.append(zygote)
        self._arm()

    # -- what zygotes say ------------------------------------------------------------

    def _message(self, zygote: Zygote, message: dict[str, Any]) -> None:
        event = message.get("event")
        if event == "ready":
            zygote.ready = True
            log.info("zygote {pid} of {project} is ready", pid=zygote.pid, project=zygote.project)
            deferToThread(_memory, [zygote.pid]).addCallback(self._store_memory)
        elif event == "failed":
            zygote.failed = True
            lines = str(message.get("error", "")).strip().splitlines()
            zygote.error = lines[-1] if lines else "unknown error"
            log.warn(
                "zygote of {project} failed, its crawls start cold: {error}",
                project=zygote.project,
                error=zygote.error,
            )
        elif event == "started":
            job_id = str(message.get("job"))
            pid = int(message["pid"])
            zygote.crawls[pid] = job_id
            waiter = zygote.starting.pop(job_id, None)
            if waiter is not None:
                waiter.callback(Started(pid, message.get("start")))
        elif event == "ended":
            pid = int(message["pid"])
            job_id = zygote.crawls.pop(pid, "") or str(message.get("job"))
            zygote.last_used = time.monotonic()
            self.on_ended(job_id, message.get("exit_code"), message.get("signal"))

    def _closed(self, zygote: Zygote) -> None:
        if zygote.reader is not None:
            self.reactor.removeReader(zygote.reader)
            zygote.reader = None
        if zygote.sock is not None:
            zygote.sock.close()
            zygote.sock = None
        zygote.ready = False

    def _died(self, zygote: Zygote) -> None:
        """The zygote ended. Its crawls still running were re-parented to the daemon
        (a child subreaper): they are followed like orphans from now on."""
        # Read what it said last (an "ended" may still wait in the socket).
        if zygote.reader is not None:
            zygote.reader.doRead()
        self._closed(zygote)
        zygote.dead = True
        if not zygote.failed and not zygote.retired:
            log.warn("zygote {pid} of {project} ended", pid=zygote.pid, project=zygote.project)
        for waiter in list(zygote.starting.values()):
            waiter.errback(Failure(ZygoteUnavailable("the zygote ended")))
        zygote.starting.clear()
        for pid, job_id in list(zygote.crawls.items()):
            self.on_orphaned(job_id, pid)
        zygote.crawls.clear()
        if not zygote.failed:
            with contextlib.suppress(ValueError):
                self.zygotes.remove(zygote)

    # -- retiring --------------------------------------------------------------------

    def retire(self, zygote: Zygote) -> None:
        """Start nothing more from it; it exits once its last crawl ended."""
        if zygote.retired:
            return
        zygote.retired = True
        zygote.ready = False
        if zygote.sock is not None:
            with contextlib.suppress(OSError):
                zygote.sock.send(b'{"op": "retire"}')

    def retire_all(self) -> None:
        for zygote in list(self.zygotes):
            self.retire(zygote)

    def _arm(self) -> None:
        if self._loop is None:
            self._loop = LoopingCall(self._tick)
            self._loop.clock = self.reactor
            self._loop.start(min(5.0, max(0.5, self.idle / 2)), now=False)

    def _tick(self) -> None:
        now = time.monotonic()
        for zygote in self.zygotes:
            if (
                not zygote.retired
                and not zygote.dead
                and not zygote.crawls
                and not zygote.starting
                and now - zygote.last_used >= self.idle
            ):
                log.info(
                    "zygote {pid} of {project} idle: stopped",
                    pid=zygote.pid,
                    project=zygote.project,
                )
                self.retire(zygote)
        pids = [z.pid for z in self.zygotes if not z.dead and z.pid]
        deferToThread(_memory, pids).addCallback(self._store_memory)
        if not self.zygotes and self._loop is not None and self._loop.running:
            self._loop.stop()
            self._loop = None

    def _store_memory(self, figures: dict[int, dict[str, int]]) -> None:
        for zygote in self.zygotes:
            if zygote.pid in figures:
                zygote.memory = figures[zygote.pid]

    def status(self) -> list[dict[str, Any]]:
        """For status.json: each zygote, its crawls and memory (sampled every few
        seconds in a worker thread: PSS reads /proc/<pid>/smaps_rollup); one that failed
        to boot says why (its version's crawls start cold)."""
        out: list[dict[str, Any]] = []
        for z in self.zygotes:
            if z.failed:
                out.append({"project": z.project, "failed": True, "error": z.error})
            elif not z.dead:
                out.append(
                    {
                        "project": z.project,
                        "pid": z.pid,
                        "ready": z.ready,
                        "retired": z.retired,
                        "jobs": len(z.crawls),
                        **z.memory,
                    }
                )
        return out

    def stop(self) -> None:
        """The daemon stops: zygotes exit (their crawls were stopped before)."""
        for zygote in self.zygotes:
            self._closed(zygote)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
            self._loop = None


def _memory(pids: list[int]) -> dict[int, dict[str, int]]:
    out = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error, OSError):
            info = psutil.Process(pid).memory_full_info()
            out[pid] = {"rss": int(info.rss), "pss": int(getattr(info, "pss", 0))}
    return out
