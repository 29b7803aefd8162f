"""Crawl processes: spawn, stop, and learn how they ended.

A crawl starts warm (forked from its project version's zygote, see daemon.zygotes) or
cold (a new `python -m daemon.runner.boot crawl ...`); either way it is `scrapy crawl`
in its own session (so its own process group): a cancel
reaches every process the spider started, and a signal to the daemon never reaches the
crawls. stdout/stderr go straight from the child into `<logs>/<id>.out|.err` (no pipe
through the daemon), so a crawl that outlives a killed daemon keeps logging and a
restarted daemon can follow it to its end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from twisted.internet import protocol
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from daemon.children import child_env, scrapy_command
from daemon.config import CrawlUser
from daemon.domain import RESERVED_SETTINGS
from daemon.isolation import close_private_files, open_job_dir, seal_job_dir
from daemon.leftovers import JOB_ENV, children_of, kill_leftovers
from daemon.live_stats import live_stats_path
from daemon.spider_args import crawl_arguments
from daemon.zygotes import Started, ZygotePool, ZygoteUnavailable

log = Logger()

# Scrapy's Telnet console (on by Scrapy's default, its password printed in the log that
# get-log serves) and remote-control server: a shell inside the crawl for whoever reads
# logs. Forced off on the command line, which beats the project's and spider's settings.
_CONSOLES_OFF = ["-s", "REMOTE_CONTROL_ENABLED=False", "-s", "TELNETCONSOLE_ENABLED=False"]


def crawl_args(
    spider: str,
    job_id: str,
    data_dir: Path,
    settings: Mapping[str, str] | None = None,
    payload: str | None = None,
    consoles: bool = False,
) -> list[str]:
    """The `scrapy` arguments of one job; the daemon's own settings come last and win.
    `consoles` (the project is in `crawl_consoles`) leaves the consoles to the project."""
    args = ["crawl", spider]
    for key, value in (settings or {}).items():
        if key not in RESERVED_SETTINGS:
            args += ["-s", f"{key}={value}"]
    args += [
        "-s",
        f"JOB_ID={job_id}",
        "-s",
        f"DATA_DIR={Path(data_dir).resolve()}",
    ]
    if not consoles:
        args += _CONSOLES_OFF
    # Where daemon.runner.stats (which every crawl gets) writes the crawl's live stats.
    args += ["-s", f"LIVE_STATS_PATH={live_stats_path(data_dir, job_id)}"]
    args += crawl_arguments(payload)
    return args


def crawl_command(args: list[str], python: str = sys.executable) -> list[str]:
    """argv that runs `python -m scrapy <args>` as the leader of a new session."""
    return scrapy_command(args, python)


def crawl_env(
    data_dir: Path,
    base: Mapping[str, str] | None = None,
    hidden: Iterable[str] = (),
    job_id: str | None = None,
) -> dict[str, str]:
    """A crawl's environment: the daemon's without its secrets (see child_env), and
    the job's id under JOB_ENV, which tells its processes apart once it ended (see
    daemon.leftovers)."""
    env = child_env(hidden, base)
    env["SPIDER_DATA_DIR"] = str(Path(data_dir).resolve())
    env["PYTHONUNBUFFERED"] = "1"
    if job_id is not None:
        env[JOB_ENV] = job_id
    return env


@dataclass
class Outcome:
    """How a crawl ended. `exit_code`/`signal` are None for a followed orphan."""

    exit_code: int | None
    signal: int | None
    stop_reason: str | None  # "cancel", "timeout", "shutdown" when the daemon stopped it
    killed: bool = False  # needed SIGKILL after the grace period
    orphan: bool = False
    # Processes of the crawl still alive when its main process had ended, killed then.
    leftovers_killed: int | None = None


@dataclass
class Crawl:
    job_id: str
    pid: int
    proc_start: float | None
    ended: Deferred[Outcome] = field(default_factory=Deferred)
    stop_reason: str | None = None
    killed: bool = False
    orphan: bool = False
    timers: list[IDelayedCall] = field(default_factory=list)
    outcome: Outcome | None = None
    # Descendants seen when the crawl was told to stop: (pid, start time). One that left
    # the crawl's process group (setsid) is not reached by killpg, so it is killed by pid.
    descendants: list[tuple[int, float]] = field(default_factory=list)
    #: Forked from a zygote (its exit is reported by the zygote, not by SIGCHLD).
    warm: bool = False


def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def process_alive(pid: int, proc_start: float | None) -> bool:
    """True when `pid` is still the process that was started at `proc_start`."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc_start is None or abs(proc.create_time() - proc_start) < 1.0
    except (psutil.Error, OSError):
        return False


def find_crawl_process(job_id: str) -> tuple[int, float] | None:
    """A live crawl process of `job_id`, found by its command line (crash recovery):
    a word of it, in the arguments of a cold crawl and in every crawl's title
    (daemon.runner.title)."""
    needle = f"JOB_ID={job_id}"
    for proc in psutil.process_iter(["pid", "cmdline", "create_time", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if needle in (info.get("cmdline") or ()):
            return info["pid"], info["create_time"]
    return None


def _orphan_may_be_signalled(crawl: Crawl) -> bool:
    """False when the orphan's pid now belongs to another process. A pid that is free
    may still name the orphan's process group (a pid is not reused while a group of
    that id exists), so its leftovers can be signalled."""
    try:
        proc = psutil.Process(crawl.pid)
        created = proc.create_time()
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OSError):
        return False
    return crawl.proc_start is not None and abs(created - crawl.proc_start) < 1.0


def signal_crawl(crawl: Crawl, sig: int, *, ended: bool = False) -> None:
    """Signal the crawl's process group. A child that has not reached its setsid()
    yet has no group of its own: it gets the signal by pid (only while it has not
    ended, as an ended child's pid may be reused). An orphan (not our child) is only
    signalled while its pid still is that process."""
    if crawl.orphan and not _orphan_may_be_signalled(crawl):
        return
    try:
        os.killpg(crawl.pid, sig)
    except ProcessLookupError:
        if not ended and not crawl.orphan:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(crawl.pid, sig)
    except PermissionError:
        pass


def descendants_of(pid: int) -> list[tuple[int, float]]:
    """Every live descendant of `pid` as (pid, start time); [] when it is gone."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except (psutil.Error, OSError):
        return []
    out = []
    for child in children:
        with contextlib.suppress(psutil.Error, OSError):
            out.append((child.pid, child.create_time()))
    return out


def kill_escaped(pids: list[tuple[int, float]], sig: int) -> None:
    """Signal each (pid, start time) that is still that same process."""
    for pid, start in pids:
        if process_alive(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def untracked_children() -> list[int]:
    """The daemon's children that Twisted did not spawn: orphans re-parented to it."""
    from twisted.internet.process import reapProcessHandlers

    return [pid for pid in children_of(os.getpid()) if pid not in reapProcessHandlers]


class _CrawlProtocol(protocol.ProcessProtocol):
    def __init__(self, on_end: Callable[[Failure], None]) -> None:
        self._on_end = on_end

    def processEnded(self, reason: Failure) -> None:
        self._on_end(reason)


class Launcher:
    """Owns crawl processes; knows nothing of the store or of job states."""

    def __init__(
        self,
        reactor: Any,
        data_dir: Path,
        logs_dir: Path,
        cancel_grace: float,
        orphan_poll: float = 0.5,
        hidden_env: Iterable[str] = (),
        crawl_user: CrawlUser | None = None,
        console_projects: Iterable[str] = (),
        zygotes: ZygotePool | None = None,
        warm: Callable[[str | None], bool] = lambda project: True,
    ) -> None:
        self.reactor = reactor
        self.data_dir = Path(data_dir).resolve()
        self.logs_dir = Path(logs_dir).resolve()
        self.cancel_grace = cancel_grace
        self.hidden_env = tuple(hidden_env)
        self.crawl_user = crawl_user
        self.console_projects = frozenset(console_projects)
        self.running: dict[str, Crawl] = {}
        # Set when the daemon is a child subreaper (daemon.leftovers): an ended crawl's
        # surviving descendants are then all found under the daemon's own children.
        self.subreaper = False
        self._orphan_poll = orphan_poll
        self._orphan_loop: LoopingCall | None = None
        #: Warm starts when set, for the projects `warm` says yes to.
        self.zygotes = zygotes
        self.warm = warm
        if zygotes is not None:
            zygotes.on_ended = self._warm_ended
            zygotes.on_orphaned = self._warm_orphaned

    def log_path(self, job_id: str, kind: str) -> Path:
        return self.logs_dir / f"{job_id}.{kind}"

    def start(
        self,
        job_id: str,
        spider: str,
        cwd: Path,
        settings: Mapping[str, str] | None = None,
        payload: str | None = None,
        max_runtime: float | None = None,
        project: str | None = None,
    ) -> Deferred[Crawl]:
        """Start the crawl: warm when its project version has a ready zygote, else cold.
        Fires once its pid is known; fails (OSError) when it cannot be started. Until
        then the crawl holds its place in `running` (pid 0): a stop asked meanwhile is
        carried out as soon as the pid is known."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        consoles = project is not None and project in self.console_projects
        args = crawl_args(spider, job_id, self.data_dir, settings, payload, consoles)
        env = crawl_env(self.data_dir, hidden=self.hidden_env, job_id=job_id)
        crawl = Crawl(job_id=job_id, pid=0, proc_start=None)
        self.running[job_id] = crawl
        try:
            if self.crawl_user is not None:
                close_private_files(self.data_dir)
                open_job_dir(self.data_dir / job_id, self.crawl_user)
            forked = None
            if self.zygotes is not None and project is not None and self.warm(project):
                forked = self._fork(job_id, args, env, cwd, project)
            if forked is None:
                return succeed(self._start_cold(crawl, args, env, cwd, max_runtime))
        except Exception:
            self._not_started(crawl)
            return fail()

        def registered(s: Started) -> Crawl:
            crawl.warm = True
            log.info("job {id}: started warm, pid {pid}", id=job_id, pid=s.pid)
            self._register(crawl, s.pid, s.start, max_runtime)
            return crawl

        def cold(failure: Failure) -> Crawl:
            failure.trap(ZygoteUnavailable)
            try:
                return self._start_cold(crawl, args, env, cwd, max_runtime)
            except Exception:
                self._not_started(crawl)
                raise

        return forked.addCallbacks(registered, cold)

    def _fork(
        self, job_id: str, args: list[str], env: dict[str, str], cwd: Path, project: str
    ) -> Deferred[Started] | None:
        """Ask the zygote for the crawl; None when it has no ready zygote."""
        assert self.zygotes is not None
        fds = self._open_std(job_id)
        try:
            return self.zygotes.start(project, cwd, job_id, args, env, fds)
        except ZygoteUnavailable:
            return None
        finally:
            for fd in fds:
                os.close(fd)

    def _not_started(self, crawl: Crawl) -> None:
        if self.running.get(crawl.job_id) is crawl:
            del self.running[crawl.job_id]
        # A stop asked while it was starting is answered: there is nothing to stop.
        crawl.outcome = Outcome(None, None, crawl.stop_reason)
        crawl.ended.callback(crawl.outcome)
        if self.crawl_user is not None:  # no crawl: the folder goes back to root
            with contextlib.suppress(OSError):
                seal_job_dir(self.data_dir / crawl.job_id)

    def _open_std(self, job_id: str) -> list[int]:
        """The crawl's stdin (/dev/null), stdout and stderr (its log files)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        fds: list[int] = []
        try:
            fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            fds.append(os.open(self.log_path(job_id, "out"), flags, 0o644))
            fds.append(os.open(self.log_path(job_id, "err"), flags, 0o644))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def _start_cold(
        self,
        crawl: Crawl,
        args: list[str],
        env: dict[str, str],
        cwd: Path,
        max_runtime: float | None,
    ) -> Crawl:
        """Spawn a new Python for the crawl now; raises OSError when it cannot."""
        argv = crawl_command(args)
        ids: dict[str, int] = {}
        if self.crawl_user is not None:
            ids = {"uid": self.crawl_user.uid, "gid": self.crawl_user.gid}
        fds = self._open_std(crawl.job_id)
        try:
            proto = _CrawlProtocol(lambda reason: self._ended(crawl, reason))
            transport = self.reactor.spawnProcess(
                proto,
                argv[0],
                argv,
                env=env,
                path=str(cwd),
                childFDs={0: fds[0], 1: fds[1], 2: fds[2]},
                **ids,
            )
        finally:
            for fd in fds:
                os.close(fd)
        pid = transport.pid
        self._register(crawl, pid, process_start_time(pid), max_runtime)
        return crawl

    def _register(
        self, crawl: Crawl, pid: int, proc_start: float | None, max_runtime: float | None
    ) -> None:
        crawl.pid = pid
        crawl.proc_start = proc_start
        self.running[crawl.job_id] = crawl
        if max_runtime:
            crawl.timers.append(
                self.reactor.callLater(max_runtime, self.stop, crawl.job_id, "timeout")
            )
        if crawl.stop_reason is not None:  # stopped while it was starting
            self._signal_stop(crawl, None)

    def _warm_ended(self, job_id: str, exit_code: int | None, sig: int | None) -> None:
        crawl = self.running.get(job_id)
        if crawl is not None and crawl.warm and not crawl.orphan:
            self._finish(crawl, Outcome(exit_code, sig, crawl.stop_reason, crawl.killed))

    def _warm_orphaned(self, job_id: str, pid: int) -> None:
        """Its zygote died: the crawl, re-parented to the daemon (a subreaper) or to
        init, is polled until it ends, and its verdict comes from its job.json."""
        crawl = self.running.get(job_id)
        if crawl is not None and crawl.pid == pid and crawl.outcome is None:
            crawl.orphan = True
            self._poll_orphans_soon()

    def follow(
        self, job_id: str, pid: int, proc_start: float | None, max_runtime: float | None = None
    ) -> Crawl:
        """Track a crawl started by an earlier daemon until it ends (polled: it is not
        our child, so no SIGCHLD tells us); `max_runtime` is the time it has left."""
        crawl = Crawl(job_id=job_id, pid=pid, proc_start=proc_start, orphan=True)
        self.running[job_id] = crawl
        if max_runtime is not None:
            crawl.timers.append(self.reactor.callLater(max_runtime, self.stop, job_id, "timeout"))
        self._poll_orphans_soon()
        return crawl

    def _poll_orphans_soon(self) -> None:
        if self._orphan_loop is None or not self._orphan_loop.running:
            self._orphan_loop = LoopingCall(self._poll_orphans)
            self._orphan_loop.clock = self.reactor
            self._orphan_loop.start(self._orphan_poll, now=False)

    def _poll_orphans(self) -> None:
        orphans = [c for c in list(self.running.values()) if c.orphan]
        for crawl in orphans:
            if not process_alive(crawl.pid, crawl.proc_start):
                self._finish(crawl, Outcome(None, None, crawl.stop_reason, crawl.killed, True))
        if not any(c.orphan for c in self.running.values()) and self._orphan_loop:
            self._orphan_loop.stop()
            self._orphan_loop = None

    def stop(self, job_id: str, why: str, sig: int | None = None) -> Deferred[Outcome] | None:
        """Signal the crawl's process group (SIGTERM unless `sig`), SIGKILL it after the
        grace period. A signal named again while it stops is sent again (a second
        scrapyd cancel, as scrapyd sends one per request)."""
        crawl = self.running.get(job_id)
        if crawl is None:
            return None
        if crawl.stop_reason is None:
            crawl.stop_reason = why
            if crawl.pid:
                self._signal_stop(crawl, sig)
        elif sig is not None and crawl.outcome is None and crawl.pid:
            signal_crawl(crawl, sig)
        return self._wait(crawl)

    def _signal_stop(self, crawl: Crawl, sig: int | None) -> None:
        crawl.descendants = descendants_of(crawl.pid)
        signal_crawl(crawl, sig or signal.SIGTERM)
        kill_escaped(crawl.descendants, sig or signal.SIGTERM)
        crawl.timers.append(self.reactor.callLater(self.cancel_grace, self._kill, crawl))

    def _kill(self, crawl: Crawl) -> None:
        if crawl.outcome is None and crawl.pid:
            crawl.killed = True
            signal_crawl(crawl, signal.SIGKILL)
            kill_escaped(crawl.descendants, signal.SIGKILL)

    @staticmethod
    def _wait(crawl: Crawl) -> Deferred[Outcome]:
        waiter: Deferred[Outcome] = Deferred()
        if crawl.outcome is not None:
            waiter.callback(crawl.outcome)
        else:

            def relay(result: Any) -> Any:
                if not waiter.called:  # the waiter may have been cancelled (client left)
                    waiter.callback(result)
                return result

            crawl.ended.addBoth(relay)
        return waiter

    def _ended(self, crawl: Crawl, reason: Failure) -> None:
        value = reason.value
        exit_code = getattr(value, "exitCode", None)
        sig = getattr(value, "signal", None)
        self._finish(crawl, Outcome(exit_code, sig, crawl.stop_reason, crawl.killed))

    def _finish(self, crawl: Crawl, outcome: Outcome) -> None:
        # Descendants that ignored SIGTERM or outlived their leader go with it, however
        # the crawl ended: found by their job tag or process group, counted, killed.
        group_is_ours = not crawl.orphan or _orphan_may_be_signalled(crawl)
        rooted = self.subreaper and not crawl.orphan
        alone = not any(c is not crawl for c in self.running.values())
        outcome.leftovers_killed = kill_leftovers(
            crawl.job_id,
            crawl.pid if group_is_ours else None,
            roots=untracked_children if rooted else None,
            # With no other crawl running, an orphan without the job tag (a helper
            # started with a scrubbed environment) can only be a leftover too.
            take_untagged_roots=rooted and alone,
        )
        if outcome.leftovers_killed:
            log.info(
                "job {id}: killed {n} process(es) left over after the crawl ended",
                id=crawl.job_id,
                n=outcome.leftovers_killed,
            )
        signal_crawl(crawl, signal.SIGKILL, ended=True)
        kill_escaped(crawl.descendants, signal.SIGKILL)
        for timer in crawl.timers:
            if timer.active():
                timer.cancel()
        if self.crawl_user is not None:
            try:
                seal_job_dir(self.data_dir / crawl.job_id)
            except OSError as exc:
                log.error("cannot take back job folder {id}: {exc}", id=crawl.job_id, exc=exc)
        crawl.outcome = outcome
        self.running.pop(crawl.job_id, None)
        crawl.ended.callback(outcome)

    def stop_all(self, why: str) -> Deferred[list[Outcome]]:
        from twisted.internet.defer import gatherResults

        waits = [self.stop(job_id, why) for job_id in list(self.running)]
        return gatherResults([w for w in waits if w is not None])
