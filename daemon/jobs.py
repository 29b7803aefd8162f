"""The jobs service: submit, cancel, list, dispatch to free slots, settle crashes.

It decides job states (the store records them, the launcher runs processes), and it is
the scheduler's host: `scheduled_jobs()` and `fire()`. It never calls the scheduler: it
announces schedules added and removed on the event bus, where the scheduler listens.
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from daemon.backlog import WriteBacklog
from daemon.errors import DaemonError
from daemon.events import JOB_CHANGED, SCHEDULE_ADDED, SCHEDULE_REMOVED, EventBus
from daemon.launcher import Crawl, Launcher, Outcome, find_crawl_process, process_alive
from daemon.schedule import ScheduleError, parse_when
from daemon.scheduler import ScheduledJob
from daemon.store import (
    CANCELED,
    COUNTERS,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
    SCHEDULER,
    SUCCESSFUL,
    USER,
    Job,
    StateConflict,
    Store,
    StoreFull,
)

log = Logger()
T = TypeVar("T")


class JobError(DaemonError):
    """A refused job operation; `http_status` is what the API answers."""


@dataclass(frozen=True)
class Plan:
    """A validated `when`: `when` is None for `now`, else the parsed schedule."""

    spec: str
    when: Any
    next_run: datetime | None
    ignored: tuple[str, ...]
    now: datetime | None = None  # the schedule's start: the job's creation time


class ProjectsLike(Protocol):
    def path(self, name: str) -> Path: ...
    def pin(self, name: str, version: str | None = None) -> tuple[Path, Callable[[], Any]]: ...
    def settings(self, name: str) -> dict[str, str]: ...


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding `path`
    (one statvfs call, a few microseconds: cheap enough for every status.json)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# While pending jobs wait for disk space, the free space is checked this often.
DISK_RECHECK_SECONDS = 1.0


# Scrapy's engine logs this at INFO as the last word of every crawl that ran a spider.
_SPIDER_CLOSED = re.compile(rb"\] INFO: Spider closed \((.{0,200}?)\)\r?$", re.MULTILINE)
# Only the end of the stderr log is read, on the reactor thread: 64 KiB is one small
# read (well under a millisecond), and the close line is among the last lines.
LOG_TAIL_BYTES = 64 * 1024


def close_reason_from_log(tail: bytes) -> str | None:
    """The close reason of the last `Spider closed (<reason>)` line in a log tail; None
    when the crawl never logged one (it did not run a spider, or logs elsewhere)."""
    matches = _SPIDER_CLOSED.findall(tail)
    if not matches:
        return None
    return matches[-1].decode("utf-8", "replace")


def read_log_tail(path: Path, size: int = LOG_TAIL_BYTES) -> bytes:
    """The last `size` bytes of a log file (empty when it is missing or unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - size))
            return fh.read(size)
    except OSError:
        return b""


def verdict(
    outcome: Outcome,
    manifest: Mapping[str, Any] | None,
    log_close_reason: str | None = None,
) -> tuple[str, str | None]:
    """Final status and reason of an ended crawl (pure: tested without processes).

    `log_close_reason` (from `close_reason_from_log`) judges crawls of projects that
    write no job.json: exit code 0 alone does not mean success, as Scrapy exits 0 when
    `start()` raises or the spider closes for another reason than "finished".
    """
    if outcome.stop_reason == "cancel":
        return CANCELED, "canceled" + (" (killed after the grace period)" if outcome.killed else "")
    if outcome.stop_reason == "timeout":
        return FAILED, "stopped: exceeded its max_runtime"
    if outcome.stop_reason == "shutdown":
        return FAILED, "interrupted: the daemon was stopped while the crawl ran"
    close_reason = (manifest or {}).get("close_reason")
    if outcome.orphan:
        # Not our child: its exit status is unknown, only its manifest can vouch for it.
        if close_reason == "finished" and (manifest or {}).get("succeeded", True):
            return SUCCESSFUL, "finished while the daemon restarted (exit status unknown)"
        return FAILED, "ended while the daemon restarted; exit status unknown" + (
            f", close reason {close_reason!r}" if close_reason else ", no job.json"
        )
    if outcome.signal is not None:
        try:
            name = signal.Signals(outcome.signal).name
        except ValueError:
            name = str(outcome.signal)
        return FAILED, f"killed by signal {name}"
    if manifest is None:
        close_reason = log_close_reason
    if outcome.exit_code != 0:
        detail = ""
        errors = (manifest or {}).get("job_errors") or []
        if errors and isinstance(errors, list) and isinstance(errors[0], dict):
            detail = f": {errors[0].get('message')}"
        elif close_reason and close_reason != "finished":
            detail = f": close reason {close_reason!r}"
        return FAILED, f"exit code {outcome.exit_code}{detail}"
    if manifest is None and close_reason is None:
        # A project may log elsewhere (LOG_FILE, LOG_ENABLED=False, LOG_LEVEL above INFO):
        # with nothing to contradict it, its exit status is the best witness we have.
        return SUCCESSFUL, "exit 0; close reason not logged"
    if close_reason != "finished":
        return FAILED, f"crawl closed with reason {close_reason!r}"
    return SUCCESSFUL, None


class JobsService(Service):
    """One instance per daemon; every method runs on the reactor thread."""

    name = "jobs"

    def __init__(
        self,
        store: Store,
        launcher: Launcher,
        projects: ProjectsLike,
        bus: EventBus,
        *,
        slots: int,
        data_dir: Path,
        timezone: str = "UTC",
        max_runtime: float = 0.0,
        completed_cap: int = 0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        min_free_bytes: int = 0,
        disk_free: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self.launcher = launcher
        self.projects = projects
        self.slots = slots
        self.data_dir = Path(data_dir).resolve()
        self.timezone = timezone
        self.max_runtime = max_runtime
        self.completed_cap = completed_cap
        self.now = now
        self.bus = bus
        self._stopping = False
        self.min_free_bytes = min_free_bytes
        self.disk_free = disk_free or (lambda: free_bytes(self.data_dir))
        # State changes that found the disk full: written, in order, once space is back.
        self.backlog = WriteBacklog(launcher.reactor, on_drained=self.dispatch)
        self._recheck: IDelayedCall | None = None
        self._held_for_disk = False

    # -- service life --------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.recover()
        self.dispatch()

    def stopService(self) -> Deferred[None]:
        """Stop every crawl (SIGTERM, SIGKILL after the grace) and record it FAILED."""
        super().stopService()
        self._stopping = True
        if self._recheck is not None and self._recheck.active():
            self._recheck.cancel()
        d = self.launcher.stop_all("shutdown")
        d.addBoth(lambda result: (self.backlog.cancel(), result)[1])
        return d.addCallback(lambda _: None)

    def recover(self) -> None:
        """Settle jobs left RUNNING by a daemon that died: follow live crawls (with their
        max_runtime left and their project folder pinned), judge ended ones by their
        job.json (their exit status is lost)."""
        for job in self.store.jobs_in(RUNNING):
            alive = None
            # pid + start time identify the process; without a start time only the
            # command line (JOB_ID=<id>) can tell it from a process that reused the pid.
            known = job.pid is not None and job.proc_start is not None
            if known and process_alive(job.pid, job.proc_start):
                alive = (job.pid, job.proc_start)
            else:
                alive = find_crawl_process(job.id)
            if alive is None:
                outcome = Outcome(None, None, None, orphan=True)
                status, reason = verdict(outcome, self._manifest(job.id))
                self._record_end(job.id, status, reason, None)
                continue
            pid, start = alive
            if job.pid != pid:
                self._record_process(job.id, pid, start)
            log.info(
                "following crawl {job} (pid {pid}) started by an earlier daemon",
                job=job.id,
                pid=pid,
            )
            release: Callable[[], Any] = _nothing
            try:
                _cwd, release = self.projects.pin(job.project, job.version)
            except Exception as exc:  # the project is gone: nothing to keep
                log.warn("job {id}: project not pinned: {exc}", id=job.id, exc=exc)
            max_runtime = job.max_runtime if job.max_runtime is not None else self.max_runtime
            left = None
            if max_runtime:
                ran = self.now().timestamp() - (job.started or self.now().timestamp())
                left = max(0.0, max_runtime - ran)
            crawl = self.launcher.follow(job.id, pid, start, max_runtime=left)
            crawl.ended.addCallback(self._on_end, job.id)
            crawl.ended.addBoth(lambda result, release=release: (release(), result)[1])

    def _notify(self, job: Job | None) -> None:
        """Announce a state change of a run (RUNNING and final) on the bus."""
        if job is not None:
            self.bus.publish(JOB_CHANGED, job)

    # -- queries -------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def list(
        self,
        statuses: Iterable[str] | None,
        project: str | None = None,
        spider: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        return self.store.list_jobs(statuses, project, spider, limit, offset)

    def list_in_thread(
        self,
        columns: Sequence[str],
        statuses: Iterable[str] | None,
        project: str | None,
        spider: str | None,
        limit: int,
        offset: int,
        shape: Callable[[list[tuple[Any, ...]], int], T],
    ) -> Deferred[T]:
        """A page of rows (tuples of `columns`) and the count of every job matching the
        filters, read (in one snapshot, so they agree) and shaped (e.g. written as JSON)
        in a worker thread: a page of 10,000 jobs takes tens of milliseconds, which must
        not hold the reactor."""
        wanted = tuple(statuses) if statuses is not None else None

        def page(conn: Any) -> T:
            conn.execute("BEGIN")
            try:
                rows = self.store.list_rows(columns, wanted, project, spider, limit, offset, conn)
                total = self.store.count_rows(wanted, project, spider, conn)
            finally:
                conn.execute("COMMIT")
            return shape(rows, total)

        return self.store.read_in_thread(page)

    def project_has_jobs(self, project: str) -> Deferred[bool]:
        """Whether the store remembers any job of `project` (one removed may have some)."""
        return self.store.read_in_thread(
            lambda conn: self.store.count_rows(None, project, None, conn) > 0
        )

    def get_row(self, job_id: str, columns: Sequence[str]) -> tuple[Any, ...] | None:
        return self.store.get_row(job_id, columns)

    def job_dir(self, job_id: str) -> Path:
        """`<data_dir>/<id>/`, the crawl's output folder (may not exist yet)."""
        return self.data_dir / str(uuid.UUID(job_id))

    def log_path(self, job_id: str, kind: str = "err") -> Path:
        """The crawl's `.out` or `.err` log (`.err` is Scrapy's own log)."""
        return self.launcher.log_path(job_id, kind)

    def figures(self) -> dict[str, int | None]:
        counts = self.store.figures()
        return {
            **{name: counts[name] for name in COUNTERS},
            "slots": self.slots,
            "running": len(self.launcher.running),
            "pending": counts["pending"],
            "jobs-scheduled": counts["jobs-scheduled"],
            "disk-free-bytes": self._free_bytes(),
            "min-free-bytes": self.min_free_bytes,
            "state-writes-waiting": len(self.backlog),
        }

    def _free_bytes(self) -> int | None:
        try:
            return self.disk_free()
        except OSError:
            return None

    def disk_low(self) -> bool:
        """Below `min_free_bytes` under data_dir: new crawls wait (a crawl started now
        would fail writing its items and logs, and its end might not be recordable)."""
        free = self._free_bytes()
        return self.min_free_bytes > 0 and free is not None and free < self.min_free_bytes

    # -- submit / cancel -----------------------------------------------------

    def plan(self, spec: str) -> Plan:
        """Validate a `when` spec: `now` always; any other form through the grammar of
        daemon.schedule (a 400 naming the bad part when it does not parse)."""
        text = spec.strip()
        if not text:
            raise JobError("when must not be empty")
        if text.lower() == "now":
            return Plan("now", None, None, ())
        now = self.now()
        try:
            when = parse_when(text, now, self.timezone)
        except ScheduleError as exc:
            raise JobError(str(exc)) from None
        ignored = tuple(str(i) for i in when.ignored)
        return Plan(text, when, when.first(), ignored, now)

    def submit(
        self,
        project: str,
        spider: str,
        *,
        plan: Plan | None = None,
        description: str = "",
        payload: str = "{}",
        settings: Mapping[str, str] | None = None,
        max_runtime: float | None = None,
        actor: str = USER,
        job_id: str | None = None,
        priority: float = 0.0,
        version: str | None = None,
    ) -> Job:
        """Record a job: PENDING (and dispatched at once) for `now`, else SCHEDULED and
        handed to the scheduler with its parsed `when`. `job_id` is a caller's own id
        (scrapyd's `jobid`), checked by the caller; a new UUID otherwise."""
        plan = plan or Plan("now", None, None, ())
        recurring = plan.when is not None
        job = Job(
            id=job_id or str(uuid.uuid4()),
            priority=priority,
            version=version,
            status=SCHEDULED if recurring else PENDING,
            actor=actor,
            schedule=plan.spec,
            project=project,
            spider=spider,
            description=description,
            payload=payload,
            settings=dict(settings or {}),
            max_runtime=max_runtime,
            timezone=self.timezone if recurring else None,
            next_run=plan.next_run.timestamp() if plan.next_run else None,
            created=plan.now.timestamp() if recurring and plan.now else 0.0,
        )
        job = self.store.insert(job)
        log.info(
            "job {id} {status}: {project}/{spider} when={when!r}",
            id=job.id,
            status=job.status,
            project=project,
            spider=spider,
            when=plan.spec,
        )
        if recurring:
            self.bus.publish(SCHEDULE_ADDED, (job.id, plan.when))
        else:
            self.dispatch()
        return self.store.get(job.id) or job

    # -- guards for the project store ----------------------------------------

    def push_guard(self, project: str, spiders: list[str]) -> str | None:
        """Refuse a push that would drop a spider with active jobs."""
        lost = sorted({j.spider for j in self.store.has_active(project)} - set(spiders))
        if lost:
            return (
                f"Cannot replace project {project}: spider(s) {', '.join(lost)} have "
                f"scheduled, pending or running jobs and are missing from the new archive"
            )
        return None

    def remove_guard(self, project: str, spiders: list[str]) -> str | None:
        """Refuse to remove a project while it has scheduled, pending or running jobs."""
        active = self.store.has_active(project)
        if active:
            return (
                f"Cannot remove project {project}: it has {len(active)} scheduled, pending "
                f"or running job(s); cancel them first"
            )
        return None

    def cancel(self, job_id: str, sig: int | None = None) -> Deferred[Job | None]:
        """Cancel a job: a scheduled one stops firing (its pending runs go too), a pending
        one is dropped, a running one is stopped (with `sig` first if given, scrapyd's
        cancel `signal`); fires once the job is final."""
        job = self.store.get(job_id)
        if job is None:
            return _fail(JobError(f"Unknown job: {job_id}", 404))
        ended = job_id not in self.launcher.running and self.backlog.holds(job_id)
        if job.status == RUNNING and ended:  # the disk has not let us record its end yet
            return _fail(JobError(f"Job {job_id} is not active", 400))
        if job.status == SCHEDULED:
            self.bus.publish(SCHEDULE_REMOVED, job_id)
            for run in self.store.active_runs_of(job_id):
                if run.status == PENDING:
                    self._record_end(run.id, CANCELED, "its scheduled job was canceled", None)
            return succeed(self._record_end(job_id, CANCELED, "canceled", None))
        if job.status == PENDING:
            return succeed(self._record_end(job_id, CANCELED, "canceled before it started", None))
        if job.status == RUNNING:
            waiter = self.launcher.stop(job_id, "cancel", sig)
            if waiter is None:  # RUNNING in the store, no process: settle it now
                return succeed(self._record_end(job_id, CANCELED, "canceled", None))
            return waiter.addCallback(lambda _: self.store.get(job_id))
        return _fail(JobError(f"Job {job_id} is not active", 400))

    # -- scheduler host protocol ---------------------------------------------

    def scheduled_jobs(self) -> list[ScheduledJob]:
        return [
            ScheduledJob(
                id=j.id,
                spec=j.schedule,
                timezone=j.timezone or self.timezone,
                last_fire=_ts(j.last_fire),
                created=_ts(j.created) or self.now(),
            )
            for j in self.store.jobs_in(SCHEDULED)
        ]

    def fire(
        self, job_id: str, fire_time: datetime, next_run: datetime | None = None
    ) -> str | None:
        """One firing: a PENDING run (actor SCHEDULER, parent = job_id) dispatched at
        once, or a recorded skip when the last run is still pending/running. last_fire
        and next_run (None: no fire time left) are stored in the same transaction."""
        parent = self.store.get(job_id)
        if parent is None or parent.status != SCHEDULED:
            return None
        run = Job(
            id=str(uuid.uuid4()),
            status=PENDING,
            actor=SCHEDULER,
            schedule="now",
            project=parent.project,
            spider=parent.spider,
            description=parent.description,
            payload=parent.payload,
            settings=dict(parent.settings),
            max_runtime=parent.max_runtime,
            parent=job_id,
        )
        fired: list[str] = []

        def done(inserted: Job | None) -> None:
            if inserted is None:
                text = f"firing of {fire_time.isoformat()} skipped: the last run is still active"
                log.info("job {id}: {text}", id=job_id, text=text)
                self.record_event(job_id, text)
                return
            fired.append(inserted.id)
            self.dispatch()

        # A firing that finds the disk full is written (with its own fire time) later.
        self.backlog.write(
            job_id,
            f"firing of job {job_id} at {fire_time.isoformat()}",
            lambda: self.store.fire(
                job_id, fire_time.timestamp(), next_run.timestamp() if next_run else None, run
            ),
            done,
        )
        return fired[0] if fired else None

    def set_next_run(self, job_id: str, next_run: datetime | None) -> None:
        value = next_run.timestamp() if next_run else None
        self.backlog.write(
            job_id, f"next run of job {job_id}", lambda: self.store.set_next_run(job_id, value)
        )

    def record_event(self, job_id: str, text: str) -> None:
        at = self.store.now()
        self.backlog.write(
            job_id, f"event of job {job_id}", lambda: self.store.add_event(job_id, text, at)
        )

    def events(self, job_id: str, limit: int = 50) -> list[tuple[float, str]]:
        return self.store.events(job_id, limit)

    def schedule_finished(self, job_id: str) -> None:
        """A schedule with no fire time left (one-shot timestamps, all fired) is over."""
        self._record_end(job_id, SUCCESSFUL, "schedule complete: no fire time left", None)

    # -- dispatch and process ends -------------------------------------------

    def dispatch(self) -> None:
        """Fill every free slot with the oldest pending job, now (called on every event
        that can free a slot or add a job: no polling, except while jobs wait for disk
        space: then the free space is checked every DISK_RECHECK_SECONDS).

        Nothing starts while state changes wait to be written (one of them may be the
        cancel of the very job that would start) or while the free space under
        data_dir is below min_free_bytes."""
        if self._stopping or not self.running:
            return
        while len(self.launcher.running) < self.slots:
            if self.backlog:
                return  # its drain dispatches again
            job = self.store.oldest_pending()
            if job is None:
                return
            if self.disk_low() or not self._start(job):
                self._wait_for_disk()
                return
        self._held_for_disk = False

    def _wait_for_disk(self) -> None:
        if not self._held_for_disk:
            self._held_for_disk = True
            log.warn(
                "pending jobs wait: {free} bytes free under the data folder, "
                "min_free_bytes is {floor}",
                free=self._free_bytes(),
                floor=self.min_free_bytes,
            )
        if self._recheck is None or not self._recheck.active():
            self._recheck = self.launcher.reactor.callLater(DISK_RECHECK_SECONDS, self.dispatch)

    def _start(self, job: Job) -> bool:
        """False when the disk is too full to even record the start (it stays PENDING)."""
        try:
            job = self.store.mark_running(job.id)
        except StateConflict:
            return True
        except StoreFull:
            return False
        self._held_for_disk = False
        self._notify(job)
        release: Callable[[], Any] = _nothing
        try:
            # Keeps a pushed project's folder on disk while this crawl runs in it.
            cwd, release = self.projects.pin(job.project, job.version)
            settings = {**self.projects.settings(job.project), **job.settings}
            max_runtime = job.max_runtime if job.max_runtime is not None else self.max_runtime
            crawl: Crawl = self.launcher.start(
                job.id,
                job.spider,
                cwd,
                settings,
                job.payload,
                max_runtime or None,
                project=job.project,
            )
        except Exception as exc:
            release()
            message = getattr(exc, "message", None) or str(exc)
            log.error("job {id} could not start: {msg}", id=job.id, msg=message)
            self._record_end(job.id, FAILED, f"could not start: {message}", None)
            return True
        self._record_process(job.id, crawl.pid, crawl.proc_start)
        crawl.ended.addCallback(self._on_end, job.id)
        crawl.ended.addBoth(lambda result: (release(), result)[1])
        return True

    def _record_process(self, job_id: str, pid: int, proc_start: float | None) -> None:
        self.backlog.write(
            job_id,
            f"process of job {job_id}",
            lambda: self.store.record_process(job_id, pid, proc_start),
        )

    def _on_end(self, outcome: Outcome, job_id: str) -> Outcome:
        manifest = self._manifest(job_id)
        logged = None
        if manifest is None:
            # A 64 KiB tail read on the reactor thread: small enough not to block it.
            tail = read_log_tail(self.launcher.log_path(job_id, "err"))
            logged = close_reason_from_log(tail)
        status, reason = verdict(outcome, manifest, logged)
        exit_code = outcome.exit_code
        if exit_code is None and outcome.signal is not None:
            exit_code = -outcome.signal  # as subprocess reports a death by signal
        self._record_end(job_id, status, reason, exit_code, outcome.leftovers_killed)
        self.dispatch()
        return outcome

    def _manifest(self, job_id: str) -> dict[str, Any] | None:
        path = self.data_dir / job_id / "job.json"
        try:
            with path.open("rb") as fh:
                data = fh.read(1024 * 1024)
            value = json.loads(data)
            return value if isinstance(value, dict) else {"close_reason": None}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"close_reason": "unreadable job.json"}

    def _record_end(
        self,
        job_id: str,
        status: str,
        reason: str | None,
        exit_code: int | None,
        leftovers_killed: int | None = None,
    ) -> Job | None:
        """Record a job's end; on a full disk it is written later (with the time it
        really ended) and None is returned meanwhile."""
        at = self.store.now()
        ended: list[Job | None] = []

        def write() -> Job | None:
            return self.store.finish(
                job_id, status, reason, exit_code, leftovers_killed=leftovers_killed, at=at
            )

        def written(job: Job | None) -> None:
            ended.append(job)
            if job is not None:
                log.info(
                    "job {id} {status}{why}",
                    id=job_id,
                    status=status,
                    why=f" ({reason})" if reason else "",
                )
                self._notify(job)
                self._purge()

        self.backlog.write(job_id, f"end of job {job_id} ({status})", write, written)
        return ended[0] if ended else None

    def _purge(self) -> None:
        try:
            purged = self.store.purge_completed(self.completed_cap)
        except StoreFull:
            return  # forgetting old jobs can wait for the next end
        for job_id in purged:
            for kind in ("out", "err"):
                self.launcher.log_path(job_id, kind).unlink(missing_ok=True)


def _nothing() -> None:
    return None


def _fail(exc: Exception) -> Deferred[Any]:
    from twisted.internet.defer import fail

    return fail(exc)
