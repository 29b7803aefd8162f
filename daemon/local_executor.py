"""The local executor: crawls as processes of this machine, run by daemon.launcher.

It turns the launcher's crawls into the executor seam's events (daemon.executor): a
started crawl's handle is its pid and process start time (daemon.local_handle); at its
end the crawl's job.json, final stats and (without a job.json) the close reason of its
log are read here, the one place that knows where a local crawl leaves them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from coinspiders.jobfolder import MANIFEST_FILE
from daemon.events import EventBus
from daemon.executor import (
    CRAWL_ENDED,
    CRAWL_STARTED,
    CRAWL_STATS,
    CrawlEnded,
    CrawlStarted,
    CrawlStats,
    IExecutor,
    JobSpec,
    LeftRunning,
    Outcome,
)
from daemon.launcher import Crawl, Launcher
from daemon.live_stats import live_stats_path, read_stats
from daemon.local_handle import LOCAL_NODE, format_handle
from daemon.recovery import locate_crawl
from daemon.verdict import close_reason_from_log, read_log_tail, read_manifest

__all__ = ["LocalExecutor"]

log = Logger()

#: Finds a left job's live crawl process: (pid, start time), or None when it is gone.
Locate = Callable[[str, str | None], tuple[int, float | None] | None]


@implementer(IExecutor)
class LocalExecutor:
    """Crawls of this machine; every method runs on the reactor thread."""

    node = LOCAL_NODE

    def __init__(
        self,
        launcher: Launcher,
        bus: EventBus,
        *,
        locate: Locate = locate_crawl,
        stats_interval: float = 1.0,
    ) -> None:
        self.launcher = launcher
        self.reactor = launcher.reactor
        self.bus = bus
        self._locate = locate
        # Jobs whose start was asked for and has not answered yet (a warm start may
        # answer later), with what waits for that answer (a cancel meanwhile).
        self._starting: dict[str, list[Callable[[], None]]] = {}
        self._stats_interval = stats_interval
        self._stats_loop: LoopingCall | None = None
        self._last_stats: dict[str, str] = {}

    # -- start / reattach ----------------------------------------------------

    def start(self, spec: JobSpec) -> Deferred[str]:
        if spec.attempt > 1:
            self._keep_attempt_logs(spec.id, spec.attempt - 1)
        self._starting[spec.id] = []
        d: Deferred[Crawl] = maybeDeferred(
            self.launcher.start,
            spec.id,
            spec.spider,
            spec.cwd,
            dict(spec.settings),
            spec.payload,
            spec.max_runtime,
            project=spec.project,
        )

        def started(crawl: Crawl) -> str:
            handle = self._watch(crawl)
            self._settle_start(spec.id)
            return handle

        def failed(reason: Failure) -> Failure:
            self._settle_start(spec.id)
            return reason

        return d.addCallbacks(started, failed)

    def _settle_start(self, job_id: str) -> None:
        """The start answered: the job is no longer starting. What waited for that (a
        cancel) runs on the next turn, after the caller of `start` heard the answer (a
        start that failed is recorded so before the cancel's reply reads the job)."""
        waiting = self._starting.pop(job_id, ())
        if waiting:
            self.reactor.callLater(0, lambda: [waiter() for waiter in waiting])

    def reattach(self, left: Sequence[LeftRunning]) -> None:
        for job in left:
            found = self._locate(job.id, job.handle)
            if found is None:
                self._ended(Outcome(None, None, None, orphan=True), job.id)
                continue
            pid, proc_start = found
            log.info(
                "following crawl {job} (pid {pid}) started by an earlier daemon",
                job=job.id,
                pid=pid,
            )
            self._watch(self.launcher.follow(job.id, pid, proc_start, max_runtime=job.time_left))

    def _watch(self, crawl: Crawl) -> str:
        """Announce a running crawl and report its end; returns its handle."""
        handle = format_handle(crawl.pid, crawl.proc_start)
        self.bus.publish(CRAWL_STARTED, CrawlStarted(crawl.job_id, handle, self.node))
        # Added before any cancel's waiter: a cancel fires once the end was published.
        crawl.ended.addCallback(self._ended, crawl.job_id)
        self._watch_stats()
        return handle

    def _ended(self, outcome: Outcome, job_id: str) -> Outcome:
        manifest = read_manifest(self.launcher.data_dir / job_id)
        logged = None
        if manifest is None:
            # A 64 KiB tail read on the reactor thread: small enough not to block it.
            logged = close_reason_from_log(read_log_tail(self.log_path(job_id, "err")))
        stats = read_stats(self.launcher.data_dir, job_id)
        self._last_stats.pop(job_id, None)
        if not self.launcher.running:
            self._stop_stats()
        self.bus.publish(CRAWL_ENDED, CrawlEnded(job_id, outcome, manifest, stats, logged))
        return outcome

    # -- stop ----------------------------------------------------------------

    def cancel(self, job_id: str, why: str, sig: int | None = None) -> Deferred[None] | None:
        waiting = self._starting.get(job_id)
        if waiting is not None:  # stopped the moment its start answers
            done: Deferred[None] = Deferred()

            def then() -> None:
                stopped = self.launcher.stop(job_id, why, sig)
                if stopped is None:
                    done.callback(None)
                else:
                    stopped.addBoth(lambda _: done.callback(None))

            waiting.append(then)
            return done
        stopped = self.launcher.stop(job_id, why, sig)
        if stopped is None:
            return None
        return stopped.addCallback(lambda _: None)

    def stop_all(self, why: str) -> Deferred[Any]:
        waits = [self.cancel(job_id, why) for job_id in list(self.running_ids())]
        return gatherResults([w for w in waits if w is not None])

    # -- figures -------------------------------------------------------------

    def running_ids(self) -> Collection[str]:
        if not self._starting:
            return self.launcher.running.keys()
        return self.launcher.running.keys() | self._starting.keys()

    def running_count(self) -> int:
        if not self._starting:
            return len(self.launcher.running)
        return len(self.running_ids())

    def log_path(self, job_id: str, kind: str, attempt: int | None = None) -> Any:
        path = self.launcher.log_path(job_id, kind)
        if attempt is None:
            return path
        return path.with_name(f"{job_id}.{attempt}.{kind}")

    def _keep_attempt_logs(self, job_id: str, attempt: int) -> None:
        """The logs of the attempt before a retry move aside as <id>.<n>.out|err: the
        new attempt writes <id>.out|err afresh (what get-log serves by default). Its
        job.json and live stats move aside too, so the new attempt is never judged by
        the old one's manifest. (A rename moves a link itself, never its target.)"""
        folder = self.launcher.data_dir / job_id
        moves = [
            (self.launcher.log_path(job_id, kind), self.log_path(job_id, kind, attempt))
            for kind in ("out", "err")
        ]
        for name in (MANIFEST_FILE, live_stats_path(self.launcher.data_dir, job_id).name):
            stem, dot, ext = name.rpartition(".")
            moves.append((folder / name, folder / f"{stem}.{attempt}{dot}{ext}"))
        for current, kept in moves:
            try:
                current.replace(kept)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warn(
                    "job {id}: log of attempt {n} not kept: {exc}", id=job_id, n=attempt, exc=exc
                )

    def forget(self, job_id: str) -> None:
        for kind in ("out", "err"):
            current = self.launcher.log_path(job_id, kind)
            current.unlink(missing_ok=True)
            for older in current.parent.glob(f"{job_id}.*.{kind}"):
                older.unlink(missing_ok=True)

    # -- live stats ----------------------------------------------------------

    def _watch_stats(self) -> None:
        if self._stats_interval <= 0:
            return
        if self._stats_loop is None or not self._stats_loop.running:
            self._stats_loop = LoopingCall(self._poll_stats)
            self._stats_loop.clock = self.reactor
            self._stats_loop.start(self._stats_interval, now=False)

    def _poll_stats(self) -> None:
        """Each running crawl's stats.json (rewritten by the crawl about once a second):
        a CRAWL_STATS event when it changed. A few small reads per second."""
        for job_id in list(self.launcher.running):
            stats = read_stats(self.launcher.data_dir, job_id)
            if stats is not None and stats != self._last_stats.get(job_id):
                self._last_stats[job_id] = stats
                self.bus.publish(CRAWL_STATS, CrawlStats(job_id, stats))

    def _stop_stats(self) -> None:
        if self._stats_loop is not None:
            if self._stats_loop.running:
                self._stats_loop.stop()
            self._stats_loop = None
