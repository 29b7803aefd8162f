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
from daemon.events import (
    JOB_ADDED,
    JOB_CHANGED,
    SCHEDULE_ADDED,
    SCHEDULE_ARMED,
    SCHEDULE_REMOVED,
    EventBus,
)
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
            self.bus.publish(JOB_ADDED, job.id)
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
        """The unpaused schedules, each from the start its spec was parsed with (an
        edit's), with nothing due before its last resume or edit (`not_before`)."""
        return [
            ScheduledJob(
                id=j.id,
                spec=j.schedule,
                timezone=j.timezone or self.timezone,
                last_fire=_ts(_latest(j.last_fire, j.not_before)),
                created=_ts(j.spec_start or j.created) or self.now(),
            )
            for j in self.store.jobs_in(SCHEDULED)
            if not j.paused
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
            self.bus.publish(JOB_ADDED, inserted.id)
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

    def record_misfires(self, job_id: str, count: int) -> None:
        self.backlog.write(
            job_id,
            f"misfires of job {job_id}",
            lambda: self.store.add_misfires(job_id, count),
        )

    # -- schedule and job actions (pause, resume, edit, run now, re-run, bulk cancel) --

    def _schedule_of(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise JobError(f"Unknown job: {job_id}", 404)
        if job.status != SCHEDULED:
            raise JobError(f"Job {job_id} is not an active scheduled job (it is {job.status})", 409)
        return job

    def _changed(self, job_id: str, job: Job | None, text: str) -> Job:
        """After a schedule's row changed: its history line, and JOB_CHANGED for
        listeners (a dashboard); a row that changed meanwhile (canceled) is a 409."""
        if job is None:
            raise JobError(f"Job {job_id} changed meanwhile; it is not scheduled any more", 409)
        log.info("job {id}: {text}", id=job_id, text=text)
        self.record_event(job_id, text)
        self._notify(job)
        return job

    def pause(self, job_id: str) -> Job:
        """Stop a schedule's firings until it is resumed (kept across restarts); its
        pending or running run is left alone. Pausing a paused schedule changes nothing."""
        job = self._schedule_of(job_id)
        if job.paused:
            return job
        updated = self.store.set_paused(job_id, True, None)
        if updated is not None:
            self.bus.publish(SCHEDULE_REMOVED, job_id)
        return self._changed(job_id, updated, "paused")

    def resume(self, job_id: str) -> Job:
        """Arm a paused schedule again at its first fire time after now: fire times that
        fell in the pause are not run (they are neither caught up nor counted as
        misfires). A one-shot schedule whose times all passed meanwhile is complete."""
        job = self._schedule_of(job_id)
        if not job.paused:
            return job
        start = _ts(job.spec_start or job.created) or self.now()
        try:
            when = parse_when(job.schedule, start, job.timezone or self.timezone)
        except ScheduleError as exc:
            raise JobError(f"Job {job_id} cannot resume: its when {exc}", 409) from None
        now = self.now()
        last = _ts(job.last_fire)
        nxt = when.next_after(max(now, last) if last else now)
        updated = self.store.set_paused(
            job_id, False, nxt.timestamp() if nxt else None, not_before=now.timestamp()
        )
        if updated is not None and nxt is None:
            reason = "schedule complete: its fire times passed while it was paused"
            ended = self._record_end(job_id, SUCCESSFUL, reason, None)
            return ended or updated
        if updated is not None and nxt is not None:
            self.bus.publish(SCHEDULE_ARMED, (job_id, when, nxt))
        next_text = nxt.astimezone(UTC).isoformat() if nxt else "none"
        return self._changed(
            job_id, updated, f"resumed; fire times while paused skipped; next run {next_text}"
        )

    def edit(self, job_id: str, plan: Plan) -> Job:
        """Replace a schedule's `when` (validated by `plan`) in one write and re-arm it
        from the new spec's first fire time (a paused schedule stays paused). The new
        fire times count from now, as for a new schedule: the preview shows them."""
        if plan.when is None or plan.now is None:
            raise JobError(
                "a scheduled job's when cannot be 'now' (run-now.json starts one run of it)"
            )
        job = self._schedule_of(job_id)
        first = plan.next_run
        updated = self.store.replace_schedule(
            job_id,
            plan.spec,
            self.timezone,
            plan.now.timestamp(),
            first.timestamp() if first else None,
        )
        if updated is not None and not updated.paused and first is not None:
            self.bus.publish(SCHEDULE_ARMED, (job_id, plan.when, first))
        text = f"when changed from {job.schedule!r} to {plan.spec!r}"
        return self._changed(job_id, updated, text)

    def run_now(self, job_id: str) -> Job:
        """One run of a schedule now, as a firing makes it (same fields, parent = the
        schedule) but with actor USER, since a person asked for it; the schedule's
        fire times do not move. Refused (409) while its last run is still pending or
        running, the rule a firing follows by skipping. A paused schedule may run now."""
        parent = self._schedule_of(job_id)
        run = Job(
            id=str(uuid.uuid4()),
            status=PENDING,
            actor=USER,
            schedule="now",
            project=parent.project,
            spider=parent.spider,
            description=parent.description,
            payload=parent.payload,
            settings=dict(parent.settings),
            max_runtime=parent.max_runtime,
            parent=job_id,
        )
        try:
            busy = self.store.add_run(job_id, run)
        except StateConflict:
            raise JobError(f"Job {job_id} is not scheduled any more", 409) from None
        if busy is not None:
            raise JobError(
                f"The last run of job {job_id} ({busy}) is still pending or running; "
                "wait for it to end or cancel it",
                409,
            )
        self.record_event(job_id, f"run {run.id} started on request (run now)")
        self.dispatch()
        return self.store.get(run.id) or run

    def rerunnable(self, job_id: str) -> Job:
        """The finished run `job_id`, or the refusal rerun() would give (404, 409)."""
        old = self.store.get(job_id)
        if old is None:
            raise JobError(f"Unknown job: {job_id}", 404)
        if old.schedule != "now":
            raise JobError(
                f"Job {job_id} is a schedule ({old.schedule!r}), not a run: schedule it "
                "again with schedule-job.json",
                409,
            )
        if old.active:
            raise JobError(f"Job {job_id} is {old.status}: only a finished job can be re-run", 409)
        return old

    def rerun(self, job_id: str) -> Job:
        """A new PENDING run with the arguments of a finished one: project, spider,
        payload, settings, max_runtime, priority, description and version (a job pinned
        to a version runs that version again; one that ran the latest runs the latest
        now). Not linked to the schedule that fired the original, so that schedule's
        skip rule does not count it; its history names the original."""
        old = self.rerunnable(job_id)
        new = self.store.insert(
            Job(
                id=str(uuid.uuid4()),
                status=PENDING,
                actor=USER,
                schedule="now",
                project=old.project,
                spider=old.spider,
                description=old.description,
                payload=old.payload,
                settings=dict(old.settings),
                max_runtime=old.max_runtime,
                priority=old.priority,
                version=old.version,
            )
        )
        origin = f" (a run of scheduled job {old.parent})" if old.parent else ""
        self.record_event(new.id, f"re-run of job {job_id}{origin}")
        log.info("job {id} PENDING: re-run of {old}", id=new.id, old=job_id)
        self.dispatch()
        return self.store.get(new.id) or new

    def cancel_many(self, job_ids: list[str]) -> Deferred[list[dict[str, Any]]]:
        """Cancel each job as cancel() does, all at once; fires when every one is
        settled, with one result per id in order: canceled, not active, unknown or
        error (with its message). One id's refusal never stops the others."""
        from twisted.internet.defer import gatherResults

        def one(job_id: str) -> Deferred[dict[str, Any]]:
            def done(job: Job | None) -> dict[str, Any]:
                current = job or self.store.get(job_id)
                status = current.status if current else None
                return {"id": job_id, "result": "canceled", "status": status}

            def refused(failure: Any) -> dict[str, Any]:
                exc = failure.value
                code = getattr(exc, "http_status", None)
                if code == 404:
                    return {"id": job_id, "result": "unknown", "status": None}
                current = self.store.get(job_id)
                status = current.status if current else None
                if isinstance(exc, JobError) and code == 400:
                    return {"id": job_id, "result": "not active", "status": status}
                message = getattr(exc, "message", None) or "internal error; see the daemon log"
                if not isinstance(exc, DaemonError):
                    log.failure("cancel of job {id} failed", failure, id=job_id)
                return {"id": job_id, "result": "error", "status": status, "msg": message}

            try:
                d = self.cancel(job_id)
            except Exception as exc:  # a synchronous fault of one id: reported, not raised
                return _fail(exc).addCallbacks(done, refused)
            return d.addCallbacks(done, refused)

        return gatherResults([one(job_id) for job_id in job_ids])

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


def _latest(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _fail(exc: Exception) -> Deferred[Any]:
    from twisted.internet.defer import fail

    return fail(exc)
