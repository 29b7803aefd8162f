"""Arms scheduled jobs: a heap of (next fire time, job id) and one timer for the earliest.

Idle cost is one DelayedCall whatever the number of schedules. Fire times come from the
schedule objects of daemon.triggers (the next one is computed from the scheduled fire
time, never from when a run ended), so they do not drift. Firings missed while the
daemon was down (or the reactor was stuck) are coalesced into at most one run when the
newest miss is within `misfire_grace`, otherwise skipped; either way the host is told.

The host (the jobs service) implements every method of `SchedulerHost`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from daemon.events import (
    SCHEDULE_ADDED,
    SCHEDULE_ARMED,
    SCHEDULE_MISFIRED,
    SCHEDULE_REMOVED,
    EventBus,
)
from daemon.triggers import Every, ScheduleError, When, parse_when

__all__ = ["ScheduledJob", "ScheduledJobLike", "Scheduler", "SchedulerHost"]

log = Logger()

# How many missed firings are counted one by one before the event says "at least".
_COUNT_CAP = 1000


class ScheduledJobLike(Protocol):
    """What `host.scheduled_jobs()` yields for each SCHEDULED job (read-only, so a
    frozen dataclass satisfies it)."""

    @property
    def id(self) -> str: ...
    @property
    def spec(self) -> str: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def last_fire(self) -> datetime | None:
        """The scheduled time of the last firing (fired or skipped)."""

    @property
    def created(self) -> datetime:
        """The `now` the spec was parsed with: the schedule's start."""


@dataclass(frozen=True)
class ScheduledJob:
    """A plain ScheduledJobLike, for hosts that have nothing better."""

    id: str
    spec: str
    timezone: str | None
    last_fire: datetime | None
    created: datetime


class SchedulerHost(Protocol):
    """The jobs service, as the scheduler sees it."""

    def scheduled_jobs(self) -> Iterable[ScheduledJobLike]:
        """Every SCHEDULED job, read at start-up."""

    def fire(
        self, job_id: str, fire_time: datetime, next_run: datetime | None
    ) -> str | Deferred[str | None] | None:
        """Create a run of `job_id` for `fire_time` (or record a skip when its last run is
        still active and return None); persist last_fire=fire_time and next_run (None:
        the schedule has no more fire times) in the same transaction."""

    def record_event(self, job_id: str, text: str) -> None:
        """Add a line to the job's history (misfires coalesced or skipped, bad specs)."""

    def record_misfires(self, job_id: str, count: int) -> None:
        """Count fire times that gave no run because they were missed: skipped beyond
        misfire_grace, or coalesced into one run with a later one."""

    def schedule_finished(self, job_id: str) -> None:
        """The schedule has no fire time left (one-shot timestamps, all fired): the
        SCHEDULED job is over; called after the last `fire` has returned/resolved."""

    def set_next_run(self, job_id: str, next_run: datetime | None) -> None:
        """Persist a new next_run when the scheduler moved it without firing."""


@dataclass
class _Entry:
    when: When
    at: datetime
    seq: int


class Scheduler:
    """One timer for all schedules. `clock` is the reactor (IReactorTime) or a
    `twisted.internet.task.Clock` in tests."""

    def __init__(
        self, clock: IReactorTime, host: SchedulerHost, misfire_grace: float = 3600.0
    ) -> None:
        self.clock = clock
        self.host = host
        self.misfire_grace = timedelta(seconds=float(misfire_grace))
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[datetime, int, str]] = []
        self._seq = 0
        self._call: IDelayedCall | None = None
        self._armed_for: datetime | None = None
        self._holding = False  # True while a batch runs: re-arm once at the end
        self._started_at: datetime | None = None
        self._bus: EventBus | None = None

    # -- public API -------------------------------------------------------------

    def listen(self, bus: EventBus) -> None:
        """Arm the schedules the jobs service announces, drop the ones it cancels."""
        self._bus = bus  # told of misfires (webhooks' schedule.misfired)
        bus.subscribe(SCHEDULE_ADDED, lambda added: self.add(*added))
        bus.subscribe(SCHEDULE_ARMED, lambda armed: self.add(armed[0], armed[1], at=armed[2]))
        bus.subscribe(SCHEDULE_REMOVED, self.remove)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    def start(self) -> int:
        """Arm every scheduled job of the host. Jobs whose next fire time passed while
        the daemon was down fire (once) or are skipped on the first timer tick, which
        is immediate. Returns how many jobs were armed."""
        self._started_at = self.now()
        armed = 0
        self._holding = True
        try:
            for job in self.host.scheduled_jobs():
                if self._load(job):
                    armed += 1
        finally:
            self._holding = False
        self._rearm()
        log.info("scheduler: {n} scheduled job(s) armed", n=armed)
        return armed

    def stop(self) -> None:
        """Disarm the timer (the schedules stay in memory and in the host's store)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._armed_for = None

    def add(self, job_id: str, when: When, at: datetime | None = None) -> datetime | None:
        """Arm (or re-arm) a job from its schedule's first fire time, or from `at` (a
        fire time of `when`: a resumed or edited schedule's next one); returns it."""
        first = at or when.first()
        if first is None:
            self.remove(job_id)
            return None
        self._push(job_id, when, first)
        return first

    def remove(self, job_id: str) -> bool:
        """Stop a job's future firings. True if it was armed."""
        entry = self._entries.pop(job_id, None)
        if entry is None:
            return False
        if len(self._heap) > 2 * len(self._entries) + 64:
            self._compact()
        self._rearm()
        return True

    def next_run(self, job_id: str) -> datetime | None:
        entry = self._entries.get(job_id)
        return entry.at if entry else None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._entries

    # -- heap and timer ------------------------------------------------------------

    def _load(self, job: ScheduledJobLike) -> bool:
        try:
            when = parse_when(job.spec, job.created, job.timezone)
        except ScheduleError as exc:
            self._event(job.id, f"schedule {job.spec!r} does not parse any more: {exc}")
            return False
        due = when.next_after(job.last_fire) if job.last_fire is not None else when.first()
        if due is None:
            self._finished(job.id)
            return False
        self._push(job.id, when, due)
        return True

    def _push(self, job_id: str, when: When, at: datetime) -> None:
        self._seq += 1
        self._entries[job_id] = _Entry(when, at, self._seq)
        heapq.heappush(self._heap, (at, self._seq, job_id))
        self._rearm()

    def _compact(self) -> None:
        self._heap = [(e.at, e.seq, j) for j, e in self._entries.items()]
        heapq.heapify(self._heap)

    def _top(self) -> tuple[datetime, int, str] | None:
        """The earliest live heap item (stale ones, left by remove/re-add, are dropped)."""
        heap = self._heap
        while heap:
            _at, seq, job_id = heap[0]
            entry = self._entries.get(job_id)
            if entry is not None and entry.seq == seq:
                return heap[0]
            heapq.heappop(heap)
        return None

    def _rearm(self) -> None:
        if self._holding:
            return
        top = self._top()
        if top is None:
            self.stop()
            return
        at = top[0]
        if self._call is not None and self._call.active():
            if self._armed_for == at:
                return
            self._call.cancel()
        delay = max(0.0, (at - self.now()).total_seconds())
        self._armed_for = at
        self._call = self.clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        """Fire every job that is due. A timer can run a hair early (float rounding)
        or late (a busy reactor): everything up to max(armed time, now) is due."""
        now = self.now()
        limit = max(now, self._armed_for or now)
        self._call = None
        self._armed_for = None
        due: list[tuple[str, _Entry]] = []
        while True:
            top = self._top()
            if top is None or top[0] > limit:
                break
            job_id = heapq.heappop(self._heap)[2]
            due.append((job_id, self._entries[job_id]))
        self._holding = True
        try:
            for job_id, entry in due:
                # A host callback of an earlier job may have removed or re-armed this one.
                current = self._entries.get(job_id)
                if current is not entry:
                    continue
                try:
                    self._handle(job_id, entry, limit)
                except Exception:
                    log.failure("scheduler: job {id} could not be handled", id=job_id)
        finally:
            self._holding = False
        self._rearm()

    # -- one due job --------------------------------------------------------------------

    def _handle(self, job_id: str, entry: _Entry, now: datetime) -> None:
        when, due = entry.when, entry.at
        nxt = when.next_after(due)
        newest = due
        missed = 1
        if nxt is not None and nxt <= now:
            # More than one fire time has passed: coalesce them.
            if when.exact_previous:
                newest = max(when.previous(now) or due, due)
                missed = self._count(when, due, newest)
                nxt = when.next_after(newest)
            else:
                # A random-interval chain: walk it from the due time; after a very long
                # stop, start a fresh chain from now (the newest miss is then too old).
                while nxt is not None and nxt <= now and missed < _COUNT_CAP:
                    newest, nxt, missed = nxt, when.next_after(nxt), missed + 1
                if nxt is not None and nxt <= now:
                    nxt = when.next_after(now)
        late = now - newest
        if nxt is None:
            del self._entries[job_id]
        else:
            self._push(job_id, when, nxt)
        where = (
            "while the daemon was down"
            if self._started_at is not None and newest < self._started_at
            else "while the scheduler was held up"
        )
        if late > self.misfire_grace:
            self._misfires(job_id, missed)
            text = (
                f"missed {self._plural(missed)} {where} (newest {_iso(newest)}, "
                f"{int(late.total_seconds())} s late, beyond misfire_grace "
                f"{int(self.misfire_grace.total_seconds())} s): skipped; "
                f"next run {_iso(nxt) if nxt else 'none'}"
            )
            self._event(job_id, text)
            if self._bus is not None:
                self._bus.publish(SCHEDULE_MISFIRED, (job_id, text))
            self.host.set_next_run(job_id, nxt)
            if nxt is None:
                self._finished(job_id)
            return
        if missed > 1:
            self._misfires(job_id, missed - 1)
            self._event(
                job_id,
                f"missed {self._plural(missed)} {where} ({_iso(due)} .. {_iso(newest)}): "
                f"coalesced into one run for {_iso(newest)}",
            )
        elif late > timedelta(seconds=1) and where.endswith("down"):
            self._event(job_id, f"firing of {_iso(newest)} missed {where}: run now")
        self._fire(job_id, newest, nxt)

    def _fire(self, job_id: str, fire_time: datetime, nxt: datetime | None) -> None:
        d = maybeDeferred(self.host.fire, job_id, fire_time, nxt)
        d.addErrback(self._fire_failed, job_id, fire_time)
        if nxt is None:
            d.addBoth(lambda _: self._finished(job_id))

    def _fire_failed(self, failure: Failure, job_id: str, fire_time: datetime) -> None:
        log.failure(
            "scheduler: firing job {id} at {t} failed", failure, id=job_id, t=_iso(fire_time)
        )
        self._event(job_id, f"firing of {_iso(fire_time)} failed: {failure.getErrorMessage()}")

    @staticmethod
    def _count(when: When, first: datetime, last: datetime) -> int:
        """Fire times in [first, last]; counted up to a cap beyond which it says so."""
        if isinstance(when, Every) and not when._calendar and when.latest is None:
            return (last - first) // when.period + 1
        n, t = 1, first
        while n < _COUNT_CAP:
            following = when.next_after(t)
            if following is None or following > last:
                return n
            t = following
            n += 1
        return n

    @staticmethod
    def _plural(n: int) -> str:
        more = "at least " if n >= _COUNT_CAP else ""
        return f"{more}{n} firing{'s' if n != 1 else ''}"

    def _event(self, job_id: str, text: str) -> None:
        log.info("scheduler: job {id}: {text}", id=job_id, text=text)
        try:
            self.host.record_event(job_id, text)
        except Exception:
            log.failure("scheduler: recording an event of job {id} failed", id=job_id)

    def _misfires(self, job_id: str, count: int) -> None:
        try:
            self.host.record_misfires(job_id, count)
        except Exception:
            log.failure("scheduler: counting misfires of job {id} failed", id=job_id)

    def _finished(self, job_id: str) -> Any:
        log.info("scheduler: job {id} has no fire time left", id=job_id)
        try:
            self.host.schedule_finished(job_id)
        except Exception:
            log.failure("scheduler: finishing job {id} failed", id=job_id)
        return None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")
