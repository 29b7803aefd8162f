"""The jobs service: the job state machine and dispatch (submit, cancel, fill free
slots, record how each crawl ended).

It decides job states (the store records them); crawls run behind the executor seam
(daemon.executor), whose events say when a crawl started and how it ended; how it ended
is judged by daemon.verdict from what the ended event carries, so nothing here knows
pids, log files or job folders. Reads of jobs do not pass through here: callers read
the store's JobReads face. It is the scheduler's host (daemon.scheduler.SchedulerHost)
and never calls the scheduler: it announces schedules added and removed on the event
bus, where the scheduler listens.
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
from daemon.chains import ChainError, find_cycle, refusal, satisfies
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
from daemon.executor import (
    CRAWL_ENDED,
    CRAWL_STARTED,
    CrawlEnded,
    CrawlStarted,
    IExecutor,
    JobSpec,
)
from daemon.job_store import COUNTERS, Job, StateConflict, Store, StoreFull
from daemon.recovery import left_running
from daemon.retries import next_delay, retry_verdict
from daemon.scheduler import ScheduledJob
from daemon.triggers import ScheduleError, parse_when
from daemon.verdict import verdict

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
        executor: IExecutor,
        projects: ProjectsLike,
        bus: EventBus,
        *,
        reactor: Any,
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
        self.executor = executor
        self.reactor = reactor
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
        self.backlog = WriteBacklog(reactor, on_drained=self.dispatch)
        self._recheck: IDelayedCall | None = None
        self._held_for_disk = False
        # Each running crawl's project folder stays pinned until the crawl's end.
        self._pins: dict[str, Callable[[], Any]] = {}
        self._dispatching = False
        self._dispatch_again = False
        self._recovering = False
        self._soon: IDelayedCall | None = None
        # Wakes dispatch at the earliest retry time of a job waiting to run again.
        self._retry_timer: IDelayedCall | None = None
        bus.subscribe(CRAWL_STARTED, self._on_started)
        bus.subscribe(CRAWL_ENDED, self._on_ended)

    # -- service life --------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.recover()
        self.settle_chains()
        self.dispatch()

    def stopService(self) -> Deferred[None]:
        """Stop every crawl (SIGTERM, SIGKILL after the grace) and record it FAILED."""
        super().stopService()
        self._stopping = True
        for call in (self._recheck, self._soon, self._retry_timer):
            if call is not None and call.active():
                call.cancel()

        def settled(result: Any) -> Any:
            self.backlog.cancel()
            return result

        d = self.executor.stop_all("shutdown")
        d.addBoth(settled)
        return d.addCallback(lambda _: None)

    def recover(self) -> None:
        """Hand the jobs a dead daemon left RUNNING back to the executor, which follows
        the live ones (with their max_runtime left and their project folder pinned) and
        reports the ended ones ended (judged then by their job.json alone)."""
        left = left_running(
            self.store.jobs_in(RUNNING),
            default_max_runtime=self.max_runtime,
            now=self.now().timestamp(),
        )
        for job in left:
            try:
                _cwd, self._pins[job.id] = self.projects.pin(job.project, job.version)
            except Exception as exc:  # the project is gone: nothing to keep
                log.warn("job {id}: project not pinned: {exc}", id=job.id, exc=exc)
        # An end reported during reattach frees no slot yet: a crawl re-attached after
        # it may still hold one. Dispatch waits until every left job is settled.
        self._recovering = True
        try:
            self.executor.reattach(left)
        finally:
            self._recovering = False

    def _notify(self, job: Job | None) -> None:
        """Announce a state change of a run (RUNNING and final) on the bus."""
        if job is not None:
            self.bus.publish(JOB_CHANGED, job)

    # -- figures -------------------------------------------------------------

    def log_path(self, job_id: str, kind: str = "err", attempt: int | None = None) -> Path:
        """The crawl's `.out` or `.err` log (`.err` is Scrapy's own log); with `attempt`,
        an earlier attempt's."""
        if attempt is None:
            return self.executor.log_path(job_id, kind)
        return self.executor.log_path(job_id, kind, attempt)

    def figures(self) -> dict[str, int | None]:
        counts = self.store.figures()
        return {
            **{name: counts[name] for name in COUNTERS},
            "slots": self.slots,
            "running": self.executor.running_count(),
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
        retries: int = 0,
        retry_delay: float = 0.0,
        after: str | None = None,
        on: str = "success",
    ) -> Job:
        """Record a job: PENDING (and dispatched at once) for `now`, else SCHEDULED and
        handed to the scheduler with its parsed `when`. `job_id` is a caller's own id
        (scrapyd's `jobid`), checked by the caller; a new UUID otherwise. With `after`,
        a PENDING job waits until that job (a run, or a scheduled job's next run) ends
        as `on` asks (daemon.chains); a scheduled job's runs each retry as it says."""
        plan = plan or Plan("now", None, None, ())
        recurring = plan.when is not None
        new_id = job_id or str(uuid.uuid4())
        if after is not None:
            self._check_chain(new_id, after, recurring)
        job = Job(
            id=new_id,
            retries=retries,
            retry_delay=retry_delay,
            after_job=after,
            after_on=on if after is not None else None,
            waiting=after is not None,
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
            if after is not None:
                self.record_event(job.id, f"waits for job {after} to end ({on})")
                self._settle_waiter(job)  # its predecessor may have ended already
                job = self.store.get(job.id) or job
            self.dispatch_soon()
        return job

    def _check_chain(self, new_id: str, after: str, recurring: bool) -> None:
        if recurring:
            raise JobError("after works with when=now only: a chained job runs once")
        if self.store.get(after) is None:
            raise JobError(f"Unknown job in after: {after}", 404)
        try:
            loop = find_cycle(new_id, after, self._waits_for)
        except ChainError as exc:
            raise JobError(str(exc)) from None
        if loop is not None:
            raise JobError("after would close a cycle: " + " -> ".join(loop))

    def _waits_for(self, job_id: str) -> str | None:
        row = self.store.get_row(job_id, ("after_job",))
        return row[0] if row else None

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
        ended = job_id not in self.executor.running_ids() and self.backlog.holds(job_id)
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
            waiter = self.executor.cancel(job_id, "cancel", sig)
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
        run = _run_of(parent, SCHEDULER)
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
        run = _run_of(parent, USER)
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
        new = self.store.insert(_copy_of(old, USER, priority=old.priority, version=old.version))
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

    def dispatch_soon(self) -> None:
        """Dispatch once the reply that recorded the job has gone out: starting a crawl
        (a store write and a fork) costs more than the whole request. The job is
        PENDING in the store already, so nothing is lost if the daemon dies meanwhile,
        and `mark_running` lets only one dispatch start it.

        Two hops: a reply is written to its socket when the reactor next polls for I/O,
        which comes after the timed calls that are due; the second hop lands after
        that poll."""
        if self._soon is None or not self._soon.active():
            self._soon = self.reactor.callLater(0, self._dispatch_next)

    def _dispatch_next(self) -> None:
        self._soon = self.reactor.callLater(0, self.dispatch)

    def dispatch(self) -> None:
        """Fill every free slot with the oldest pending job, now (called on every event
        that can free a slot or add a job: no polling, except while jobs wait for disk
        space: then the free space is checked every DISK_RECHECK_SECONDS).

        Nothing starts while state changes wait to be written (one of them may be the
        cancel of the very job that would start) or while the free space under
        data_dir is below min_free_bytes. A dispatch asked for while one runs (a start
        that failed at once) makes the running one look again instead of nesting."""
        if self._stopping or not self.running or self._recovering:
            return
        if self._dispatching:
            self._dispatch_again = True
            return
        self._dispatching = True
        try:
            self._dispatch_again = True
            while self._dispatch_again:
                self._dispatch_again = False
                self._fill()
        finally:
            self._dispatching = False

    def _fill(self) -> None:
        while self.executor.running_count() < self.slots:
            if self.backlog:
                return  # its drain dispatches again
            job = self.store.oldest_pending()
            if job is None:
                self._arm_retry_timer()
                return
            if self.disk_low() or not self._start(job):
                self._wait_for_disk()
                return
        self._held_for_disk = False

    def _arm_retry_timer(self) -> None:
        """Dispatch again when the next job waiting to retry is due (its due time is in
        the store, so a restart arms the same timer)."""
        due = self.store.next_retry_due()
        if due is None:
            return
        delay = max(due - self.store.now(), 0.0)
        timer = self._retry_timer
        if timer is not None and timer.active():
            if timer.getTime() <= self.reactor.seconds() + delay:
                return
            timer.cancel()
        self._retry_timer = self.reactor.callLater(delay, self.dispatch)

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
            self._recheck = self.reactor.callLater(DISK_RECHECK_SECONDS, self.dispatch)

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
        try:
            # Keeps a pushed project's folder on disk while this crawl runs in it.
            cwd, release = self.projects.pin(job.project, job.version)
        except Exception as exc:
            self._could_not_start(job.id, exc)
            return True
        self._pins[job.id] = release
        try:
            settings = {**self.projects.settings(job.project), **job.settings}
        except Exception as exc:
            self._could_not_start(job.id, exc)
            return True
        max_runtime = job.max_runtime if job.max_runtime is not None else self.max_runtime
        spec = JobSpec(
            id=job.id,
            project=job.project,
            version=job.version,
            spider=job.spider,
            cwd=cwd,
            settings=settings,
            payload=job.payload,
            max_runtime=max_runtime or None,
            attempt=job.attempt,
        )
        self.executor.start(spec).addErrback(self._start_failed, job.id)
        return True

    def _start_failed(self, failure: Failure, job_id: str) -> None:
        self._could_not_start(job_id, failure.value or Exception(failure.getErrorMessage()))

    def _could_not_start(self, job_id: str, exc: BaseException) -> None:
        self._release(job_id)
        message = getattr(exc, "message", None) or str(exc)
        log.error("job {id} could not start: {msg}", id=job_id, msg=message)
        self._end_attempt(job_id, FAILED, f"could not start: {message}", None, None)
        self.dispatch()

    def _release(self, job_id: str) -> None:
        release = self._pins.pop(job_id, None)
        if release is not None:
            release()

    def _on_started(self, event: CrawlStarted) -> None:
        self.backlog.write(
            event.job_id,
            f"handle of job {event.job_id}",
            lambda: self.store.record_handle(event.job_id, event.handle, event.node),
        )

    def _on_ended(self, event: CrawlEnded) -> None:
        self._release(event.job_id)
        outcome = event.outcome
        status, reason = verdict(outcome, event.manifest, event.log_close_reason)
        exit_code = outcome.exit_code
        if exit_code is None and outcome.signal is not None:
            exit_code = -outcome.signal  # as subprocess reports a death by signal
        self._end_attempt(
            event.job_id,
            status,
            reason,
            exit_code,
            outcome.stop_reason,
            outcome.leftovers_killed,
            event.stats,
        )
        self.dispatch()

    def _end_attempt(
        self,
        job_id: str,
        status: str,
        reason: str | None,
        exit_code: int | None,
        stop_reason: str | None,
        leftovers_killed: int | None = None,
        stats: str | None = None,
    ) -> None:
        """An attempt ended: the job's end, or (a failure with retries left, see
        daemon.retries) its next attempt, PENDING until its due time. Not a final
        status, so nothing announces the job ended (webhooks hear the last attempt)."""
        job = self.store.get(job_id)
        if job is None or job.status != RUNNING:
            self._record_end(job_id, status, reason, exit_code, leftovers_killed, stats)
            return
        if not retry_verdict(status, stop_reason, job.attempt, job.retries):
            self._record_end(job_id, status, reason, exit_code, leftovers_killed, stats)
            return
        at = self.store.now()
        due = at + next_delay(job.retry_delay, job.attempt)
        text = (
            f"attempt {job.attempt} of {job.retries + 1} failed ({reason}); attempt "
            f"{job.attempt + 1} at {datetime.fromtimestamp(due, UTC).isoformat()}"
        )

        def written(updated: Job | None) -> None:
            if updated is None:
                return
            log.info("job {id}: {text}", id=job_id, text=text)
            self.record_event(job_id, text)
            self._notify(updated)
            self._arm_retry_timer()

        self.backlog.write(
            job_id,
            f"retry of job {job_id}",
            lambda: self.store.retry(job_id, reason, exit_code, due, at=at, stats=stats),
            written,
        )

    # -- chains --------------------------------------------------------------

    def settle_chains(self) -> None:
        """At start: every waiting job whose predecessor ended (or went) while the
        daemon was down is released or canceled, as it would have been then."""
        for waiter in self.store.waiters():
            self._settle_waiter(waiter)

    def _settle_waiter(self, waiter: Job) -> None:
        after = waiter.after_job
        if after is None:
            return
        before = self.store.get(after)
        if before is None:
            self._record_end(waiter.id, CANCELED, f"job {after} it waited for is gone", None)
        elif before.schedule == "now":
            if not before.active:
                self._chain_end(waiter, before)
        else:
            run = self.store.first_run_ended(before.id, waiter.created)
            if run is not None:
                self._chain_end(waiter, run)
            elif not before.active and not self.store.active_runs_of(before.id):
                self._chain_end(waiter, before, f"scheduled job {after} ended {before.status}")

    def _chains_after(self, ended: Job) -> None:
        """A job is final: the jobs waiting for it (or, for a run, for its schedule's
        next run) run or are canceled."""
        if ended.schedule == "now":
            waiting = self.store.waiters(ended.id)
            if ended.parent is not None:
                waiting += [
                    w
                    for w in self.store.waiters(ended.parent)
                    if ended.finished is None or ended.finished >= w.created
                ]
        else:
            waiting = self.store.waiters(ended.id)
        for waiter in waiting:
            self._settle_waiter(waiter)

    def _chain_end(self, waiter: Job, ended: Job, gone: str | None = None) -> None:
        on = waiter.after_on or "success"
        if gone is None and satisfies(ended.status, on):
            text = f"job {ended.id} ended {ended.status}: released ({on})"

            def written(job: Job | None) -> None:
                if job is not None:
                    log.info("job {id}: {text}", id=waiter.id, text=text)
                    self.record_event(waiter.id, text)
                    self._notify(job)
                    self.dispatch_soon()

            self.backlog.write(
                waiter.id,
                f"release of job {waiter.id}",
                lambda: self.store.release(waiter.id),
                written,
            )
            return
        reason = (
            (gone + f"; this job waited for {on}") if gone else refusal(ended.id, ended.status, on)
        )
        self._record_end(waiter.id, CANCELED, reason, None)

    def _record_end(
        self,
        job_id: str,
        status: str,
        reason: str | None,
        exit_code: int | None,
        leftovers_killed: int | None = None,
        stats: str | None = None,
    ) -> Job | None:
        """Record a job's end; on a full disk it is written later (with the time it
        really ended) and None is returned meanwhile. `stats`: the crawl's final stats
        (from its ended event), the job's for good."""
        at = self.store.now()
        ended: list[Job | None] = []

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
                self._chains_after(job)
                self._purge()

        self.backlog.write(job_id, f"end of job {job_id} ({status})", write, written)
        return ended[0] if ended else None

    def _purge(self) -> None:
        try:
            purged = self.store.purge_completed(self.completed_cap)
        except StoreFull:
            return  # forgetting old jobs can wait for the next end
        for job_id in purged:
            self.executor.forget(job_id)


def _copy_of(source: Job, actor: str, **fields: Any) -> Job:
    """A new PENDING run with the arguments of `source` (project, spider, payload,
    settings, limits, retries); `fields` adds what the caller keeps besides."""
    return Job(
        id=str(uuid.uuid4()),
        status=PENDING,
        actor=actor,
        schedule="now",
        project=source.project,
        spider=source.spider,
        description=source.description,
        payload=source.payload,
        settings=dict(source.settings),
        max_runtime=source.max_runtime,
        retries=source.retries,
        retry_delay=source.retry_delay,
        **fields,
    )


def _run_of(schedule: Job, actor: str) -> Job:
    """A run of a scheduled job: what a firing (actor SCHEDULER) and run-now (actor
    USER) add."""
    return _copy_of(schedule, actor, parent=schedule.id)


def _nothing() -> None:
    return None


def _latest(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _fail(exc: Exception) -> Deferred[Any]:
    from twisted.internet.defer import fail

    return fail(exc)
