"""The jobs service: the job state machine and dispatch (submit, cancel, fill free
slots, record how each crawl ended).

It decides job states (the store records them, the launcher runs processes); how a
crawl ended is judged by daemon.verdict, which crawls a dead daemon left running by
daemon.recovery. Reads of jobs do not pass through here: callers read the store's
JobReads face. It is the scheduler's host (daemon.scheduler.SchedulerHost) and never
calls the scheduler: it announces schedules added and removed on the event bus, where
the scheduler listens.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from daemon.backlog import WriteBacklog
from daemon.domain import (
    ACTIVE_STATUSES,
    CANCELED,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
    SCHEDULER,
    SUCCESSFUL,
    USER,
)
from daemon.errors import DaemonError
from daemon.events import JOB_CHANGED, SCHEDULE_ADDED, SCHEDULE_REMOVED, EventBus
from daemon.job_store import COUNTERS, Job, StateConflict, Store, StoreFull
from daemon.launcher import Crawl, Launcher, Outcome
from daemon.live_stats import read_stats
from daemon.recovery import Ended, Reattach, survey
from daemon.scheduler import ScheduledJob
from daemon.triggers import ScheduleError, parse_when
from daemon.verdict import close_reason_from_log, read_log_tail, read_manifest, verdict

log = Logger()


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

        def settled(result: Any) -> Any:
            self.backlog.cancel()
            return result

        d = self.launcher.stop_all("shutdown")
        d.addBoth(settled)
        return d.addCallback(lambda _: None)

    def recover(self) -> None:
        """Settle jobs left RUNNING by a daemon that died (daemon.recovery decides):
        follow live crawls (with their max_runtime left and their project folder
        pinned), record ended ones as judged by their job.json."""
        found = survey(
            self.store.jobs_in(RUNNING),
            data_dir=self.data_dir,
            default_max_runtime=self.max_runtime,
            now=self.now().timestamp(),
        )
        for decision in found:
            if isinstance(decision, Ended):
                self._record_end(decision.job.id, decision.status, decision.reason, None)
            else:
                self._reattach(decision)

    def _reattach(self, crawl: Reattach) -> None:
        job = crawl.job
        if job.pid != crawl.pid:
            self._record_process(job.id, crawl.pid, crawl.proc_start)
        log.info(
            "following crawl {job} (pid {pid}) started by an earlier daemon",
            job=job.id,
            pid=crawl.pid,
        )
        release: Callable[[], Any] = _nothing
        try:
            _cwd, release = self.projects.pin(job.project, job.version)
        except Exception as exc:  # the project is gone: nothing to keep
            log.warn("job {id}: project not pinned: {exc}", id=job.id, exc=exc)
        followed = self.launcher.follow(
            job.id, crawl.pid, crawl.proc_start, max_runtime=crawl.time_left
        )
        followed.ended.addCallback(self._on_end, job.id)
        followed.ended.addBoth(lambda result: (release(), result)[1])

    def _notify(self, job: Job | None) -> None:
        """Announce a state change of a run (RUNNING and final) on the bus."""
        if job is not None:
            self.bus.publish(JOB_CHANGED, job)

    # -- figures -------------------------------------------------------------

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
        daemon.triggers (a 400 naming the bad part when it does not parse)."""
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
        lost = sorted(self.store.active_spiders(project) - set(spiders))
        if lost:
            return (
                f"Cannot replace project {project}: spider(s) {', '.join(lost)} have "
                f"scheduled, pending or running jobs and are missing from the new archive"
            )
        return None

    def remove_guard(self, project: str, spiders: list[str]) -> str | None:
        """Refuse to remove a project while it has scheduled, pending or running jobs."""
        active = self.store.count_rows(ACTIVE_STATUSES, project)
        if active:
            return (
                f"Cannot remove project {project}: it has {active} scheduled, pending "
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
            started = self.launcher.start(
                job.id,
                job.spider,
                cwd,
                settings,
                job.payload,
                max_runtime or None,
                project=job.project,
            )
        except Exception as exc:
            self._not_started(job.id, exc, release)
            return True
        started.addCallbacks(
            self._started,
            self._failed_to_start,
            callbackArgs=(job.id, release),
            errbackArgs=(job.id, release),
        )
        return True

    def _started(self, crawl: Crawl, job_id: str, release: Callable[[], Any]) -> None:
        self._record_process(job_id, crawl.pid, crawl.proc_start)
        crawl.ended.addCallback(self._on_end, job_id)
        crawl.ended.addBoth(lambda result: (release(), result)[1])

    def _failed_to_start(self, failure: Failure, job_id: str, release: Callable[[], Any]) -> None:
        self._not_started(job_id, failure.value or Exception("no reason"), release)
        self.dispatch()

    def _not_started(self, job_id: str, exc: BaseException, release: Callable[[], Any]) -> None:
        release()
        message = getattr(exc, "message", None) or str(exc)
        log.error("job {id} could not start: {msg}", id=job_id, msg=message)
        self._record_end(job_id, FAILED, f"could not start: {message}", None)

    def _record_process(self, job_id: str, pid: int, proc_start: float | None) -> None:
        self.backlog.write(
            job_id,
            f"process of job {job_id}",
            lambda: self.store.record_process(job_id, pid, proc_start),
        )

    def _on_end(self, outcome: Outcome, job_id: str) -> Outcome:
        manifest = read_manifest(self.data_dir / job_id)
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
        # The crawl's last stats (written at its close) become the job's for good; a
        # job that never ran has no file (one failed open, no read).
        stats = read_stats(self.data_dir, job_id)

        def write() -> Job | None:
            return self.store.finish(
                job_id,
                status,
                reason,
                exit_code,
                leftovers_killed=leftovers_killed,
                at=at,
                stats=stats,
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
