"""The `when` grammar: a spec string becomes a schedule object with `next_after(t)`.

Pure (no Twisted, no clock of its own): everything that depends on time takes it as an
argument, so the scheduler, the API and the tests see the same fire times.

Forms (case-insensitive; `now`, a single run started at once, is not a schedule:
daemon.jobs.plan takes it before it gets here):
  every [N] second(s)|minute(s)|hour(s)|day(s)|week(s) [to M] [at TIME]
  every monday..sunday [at HH:MM[:SS]]
  cron <5 fields> | cron <6 fields, the 6th is seconds> | cron @daily ...
  at <ISO-8601>[, <ISO-8601> ...]      (one-shot; a bare list of timestamps works too)

Fire times are a function of the schedule and its start (the job's creation), never of
when a run ended, so they do not drift and survive restarts unchanged.
"""

from __future__ import annotations

import bisect
import random
import re
from abc import ABC, abstractmethod
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

__all__ = [
    "Cron",
    "Every",
    "ScheduleError",
    "Timestamps",
    "When",
    "parse_when",
    "resolve_zone",
]

# The longest interval accepted: a schedule that fires less than once in ten years is a
# typo, not a plan.
MAX_INTERVAL = timedelta(days=3660)
MAX_TIMESTAMPS = 1000
# Iteration cap for schedules that can only be walked step by step (random intervals).
_WALK_CAP = 100_000

_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
_SINGULAR = {"second": "seconds", "minute": "minutes", "hour": "hours", "day": "days"}
_SINGULAR["week"] = "weeks"
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week", "second")
_NUMBERISH = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$")
_CLOCK = re.compile(r"^(\d{1,2})?:(\d{2})(?::(\d{2}))?$")


class ScheduleError(ValueError):
    """A spec that does not parse; the message quotes the part that is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def resolve_zone(tz: str | tzinfo | None) -> tzinfo:
    """A tzinfo from a name (IANA, e.g. Europe/Berlin), a tzinfo, or None for UTC."""
    if tz is None:
        return UTC
    if isinstance(tz, tzinfo):
        return tz
    name = str(tz).strip()
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        # A name is looked up as a file: an over-long or folder name raises OSError.
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(
            f"unknown timezone {_q(name)} (use an IANA name like Europe/Berlin)"
        ) from None


def _utc(t: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken as UTC (what SQLite hands back)."""
    if t.tzinfo is None:
        return t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def _wall(t: datetime, tz: tzinfo) -> datetime:
    """The naive local wall-clock reading of instant `t` in `tz`."""
    return t.astimezone(tz).replace(tzinfo=None)


def _instant(wall: datetime, tz: tzinfo) -> datetime:
    """The instant of a local wall-clock time. A time skipped by a DST jump (02:30 on the
    spring-forward night) lands the length of the gap later (03:30); a repeated one (the
    autumn night) is taken at its first occurrence (fold=0)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


class When(ABC):
    """A schedule: the ordered set of instants at which a job fires (all in UTC).

    `start` is the moment the spec was parsed (the job's creation); the set is derived
    from it alone, so re-parsing the stored spec with the stored creation time after a
    restart gives the same instants.
    """

    kind: str = ""
    once: bool = False  # True: a finite set of fire times (timestamps)
    ignored: tuple[str, ...] = ()  # timestamps dropped because they were in the past
    # previous() is a direct computation (False: found by walking a random chain)
    exact_previous: bool = True

    def __init__(self, start: datetime, tz: tzinfo) -> None:
        self.start = _utc(start).replace(microsecond=0)
        self.tz = tz

    @abstractmethod
    def first(self) -> datetime | None:
        """The first fire time."""

    @abstractmethod
    def next_after(self, t: datetime) -> datetime | None:
        """The earliest fire time strictly after `t`, or None when there is none."""

    def previous(self, t: datetime) -> datetime | None:
        """The latest fire time at or before `t`, or None (used to coalesce misfires)."""
        t = _utc(t)
        cur = self.first()
        last = None
        for _ in range(_WALK_CAP):
            if cur is None or cur > t:
                return last
            last = cur
            cur = self.next_after(cur)
        return last

    @property
    @abstractmethod
    def canonical(self) -> str:
        """A normalised spec that parses back to the same schedule."""

    def __str__(self) -> str:
        return self.canonical

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.canonical!r}>"


class Timestamps(When):
    """One-shot instants (ISO 8601); the schedule is over after the last one."""

    kind = "at"
    once = True

    def __init__(
        self,
        start: datetime,
        tz: tzinfo,
        times: list[datetime],
        ignored: tuple[str, ...] = (),
    ) -> None:
        super().__init__(start, tz)
        by_instant = {_utc(t): t for t in times}
        self._times = sorted(by_instant)
        self._shown = [by_instant[t] for t in self._times]
        self.ignored = ignored

    @property
    def times(self) -> list[datetime]:
        return list(self._times)

    def first(self) -> datetime | None:
        return self._times[0] if self._times else None

    def next_after(self, t: datetime) -> datetime | None:
        i = bisect.bisect_right(self._times, _utc(t))
        return self._times[i] if i < len(self._times) else None

    def previous(self, t: datetime) -> datetime | None:
        i = bisect.bisect_right(self._times, _utc(t))
        return self._times[i - 1] if i else None

    @property
    def canonical(self) -> str:
        return "at " + ", ".join(t.isoformat().replace("+00:00", "Z") for t in self._shown)


class Cron(When):
    """A cron expression, evaluated by croniter in the schedule's timezone (so DST
    behaves as croniter defines it)."""

    kind = "cron"

    def __init__(self, start: datetime, tz: tzinfo, expr: str) -> None:
        super().__init__(start, tz)
        self.expr = expr

    def _iter(self, t: datetime) -> croniter:
        return croniter(self.expr, t.astimezone(self.tz))

    def first(self) -> datetime | None:
        return self.next_after(self.start)

    def next_after(self, t: datetime) -> datetime | None:
        try:
            return _utc(self._iter(_utc(t)).get_next(datetime))
        except CroniterBadDateError:
            return None

    def previous(self, t: datetime) -> datetime | None:
        t = _utc(t)
        first = self.first()
        if first is None or t < first:
            return None
        try:
            # croniter's get_prev is strictly before its start: start just after t.
            prev = _utc(self._iter(t + timedelta(microseconds=1)).get_prev(datetime))
        except CroniterBadDateError:
            return None
        return prev if prev >= first else None

    @property
    def canonical(self) -> str:
        return f"cron {self.expr}"


class Every(When):
    """scrapy-do's `every ...` forms, with the meaning of the `schedule` library they are
    handed to there: the first run follows that library's rule, and later runs are on
    the grid `first + k * N units` (seconds/minutes/hours as elapsed time; days/weeks as
    calendar days at the same local time, so a daily run stays at 10:30 across DST).
    With `to M` each gap is a random whole number of units between N and M, drawn from
    a generator seeded by the schedule and the previous fire time (reproducible), so
    `next_after(t)` is `t` plus one such gap: `t` is meant to be a fire time there."""

    kind = "every"

    def __init__(
        self,
        start: datetime,
        tz: tzinfo,
        *,
        interval: int,
        unit: str,
        at: time | None = None,
        weekday: int | None = None,
        latest: int | None = None,
    ) -> None:
        super().__init__(start, tz)
        self.interval = interval
        self.unit = unit
        self.at = at
        self.weekday = weekday
        self.latest = latest
        self._calendar = unit in ("days", "weeks")
        self.exact_previous = latest is None
        self._base_wall = self._first_wall(interval) if self._calendar else None
        self._first = self._compute_first()

    # -- the first fire time: the schedule library's rule ------------------------

    def _apply_at(self, wall: datetime) -> datetime:
        at = self.at
        if at is None:
            return wall
        if self._calendar or self.weekday is not None:
            return wall.replace(hour=at.hour, minute=at.minute, second=at.second)
        if self.unit == "hours":
            return wall.replace(minute=at.minute, second=at.second)
        return wall.replace(second=at.second)  # minutes

    def _first_wall(self, n: int) -> datetime:
        """First fire as a local wall time (calendar units and weekdays)."""
        now = _wall(self.start, self.tz)
        if self.weekday is not None:
            days_ahead = (self.weekday - now.weekday()) % 7
            cand = self._apply_at(now + timedelta(days=days_ahead))
            if cand <= now:
                cand += timedelta(days=7)
            return cand
        period = timedelta(seconds=n * _UNIT_SECONDS[self.unit])
        cand = self._apply_at(now + period)
        if n == 1 and self.latest is None and self.at is not None and cand - period > now:
            cand -= period
        return cand

    def _compute_first(self) -> datetime:
        if self._calendar:
            n = self._draw(self.start) if self.latest is not None else self.interval
            wall = self._first_wall(n) if self.latest is not None else self._base_wall
            assert wall is not None
            return _instant(wall, self.tz)
        n = self._draw(self.start) if self.latest is not None else self.interval
        period = timedelta(seconds=n * _UNIT_SECONDS[self.unit])
        cand = self.start + period
        if self.at is not None:
            cand = _instant(self._apply_at(_wall(cand, self.tz)), self.tz)
            if n == 1 and self.latest is None and cand - period > self.start:
                cand -= period
        return cand

    def _draw(self, after: datetime) -> int:
        assert self.latest is not None
        rng = random.Random(f"{self.canonical}|{self.start.isoformat()}|{after.isoformat()}")
        return rng.randint(self.interval, self.latest)

    # -- the grid ---------------------------------------------------------------

    @property
    def period(self) -> timedelta:
        if self.weekday is not None:
            return timedelta(weeks=1)
        return timedelta(seconds=self.interval * _UNIT_SECONDS[self.unit])

    def first(self) -> datetime:
        return self._first

    def _calendar_fire(self, k: int) -> datetime:
        assert self._base_wall is not None
        return _instant(self._base_wall + k * self.period, self.tz)

    def _calendar_index(self, t: datetime) -> int:
        """A k close to (at most one below) the index of the fire at or before `t`."""
        assert self._base_wall is not None
        days = (_wall(t, self.tz).date() - self._base_wall.date()).days
        return days // self.period.days - 1

    def next_after(self, t: datetime) -> datetime | None:
        t = _utc(t)
        if t < self._first:
            return self._first
        if self.latest is not None:
            return self._random_step(t)
        if not self._calendar:
            k = (t - self._first) // self.period + 1
            return self._first + k * self.period
        k = max(0, self._calendar_index(t))
        while True:
            cand = self._calendar_fire(k)
            if cand > t:
                return cand
            k += 1

    def previous(self, t: datetime) -> datetime | None:
        t = _utc(t)
        if t < self._first:
            return None
        if self.latest is not None:
            return super().previous(t)
        if not self._calendar:
            return self._first + ((t - self._first) // self.period) * self.period
        k = max(0, self._calendar_index(t))
        best = None
        while True:
            cand = self._calendar_fire(k)
            if cand > t:
                return best
            best = cand
            k += 1

    def _random_step(self, t: datetime) -> datetime:
        n = self._draw(t)
        if self._calendar:
            days = n * (7 if self.unit == "weeks" else 1)
            return _instant(self._apply_at(_wall(t, self.tz) + timedelta(days=days)), self.tz)
        return t + timedelta(seconds=n * _UNIT_SECONDS[self.unit])

    # -- display ------------------------------------------------------------------

    @property
    def canonical(self) -> str:
        parts = ["every"]
        if self.weekday is not None:
            parts.append(_WEEKDAYS[self.weekday])
        elif self.interval == 1 and self.latest is None:
            parts.append(self.unit[:-1])
        else:
            parts.append(str(self.interval))
            if self.latest is not None:
                parts += ["to", str(self.latest)]
            parts.append(self.unit)
        if self.at is not None:
            parts += ["at", self._at_text()]
        return " ".join(parts)

    def _at_text(self) -> str:
        at = self.at
        assert at is not None
        if self.weekday is not None or self._calendar:
            return at.strftime("%H:%M:%S" if at.second else "%H:%M")
        if self.unit == "hours":
            return f"{at.minute:02d}:{at.second:02d}" if at.second else f":{at.minute:02d}"
        return f":{at.second:02d}"


# -- parsing -------------------------------------------------------------------------


def parse_when(spec: str, now: datetime, tz: str | tzinfo | None = None) -> When:
    """Parse a `when` spec. `now` is the job's creation time (the schedule's start);
    `tz` applies to forms without an explicit offset (default UTC).

    Raises ScheduleError whose message quotes the bad part of the spec.
    """
    if not isinstance(spec, str):
        raise ScheduleError("the schedule spec must be a string")
    zone = resolve_zone(tz)
    now = _utc(now)
    text = " ".join(spec.split())
    if not text:
        raise ScheduleError("empty schedule spec (try 'now', 'every 10 minutes', 'cron ...')")
    tokens = text.lower().split(" ")
    head = tokens[0]
    if head == "now":
        if len(tokens) > 1:
            raise ScheduleError(f"unexpected {_q(' '.join(tokens[1:]))} after 'now'")
        # A run for now is not scheduled: the jobs service starts it (daemon.jobs.plan).
        raise ScheduleError("'now' is not a schedule: it is one run, started at once")
    if head == "every":
        return _parse_every(text, tokens[1:], now, zone)
    if head == "cron":
        return _parse_cron(text, tokens[1:], now, zone)
    if head == "at":
        return _parse_timestamps(text, text[2:].strip(), now, zone)
    if head[:1].isdigit() and "-" in head:
        return _parse_timestamps(text, text, now, zone)
    raise ScheduleError(
        f"{_q(text)}: unknown form {_q(tokens[0])} "
        "(expected 'now', 'every ...', 'cron ...' or 'at <ISO-8601 timestamp>')"
    )


def _q(spec: str) -> str:
    """The spec quoted for an error message, cut short when it is long."""
    return repr(spec if len(spec) <= 80 else spec[:77] + "...")


def _positive_int(spec: str, token: str, what: str) -> int:
    if token.isdigit() and len(token) > 12:
        raise ScheduleError(f"{_q(spec)}: {what} {_q(token)} is too long (at most 10 years)")
    if not token.isdigit():
        raise ScheduleError(f"{_q(spec)}: {what} {_q(token)} must be a whole number of at least 1")
    value = int(token)
    if value < 1:
        raise ScheduleError(f"{_q(spec)}: {what} {_q(token)} must be a whole number of at least 1")
    return value


def _parse_every(spec: str, tokens: list[str], now: datetime, tz: tzinfo) -> Every:
    if not tokens:
        raise ScheduleError(f"{_q(spec)}: 'every' needs a unit, e.g. 'every 10 minutes'")
    interval = 1
    if _NUMBERISH.match(tokens[0]):
        interval = _positive_int(spec, tokens[0], "the interval")
        tokens = tokens[1:]
    unit: str | None = None
    unit_word = ""
    weekday: int | None = None
    latest: int | None = None
    at_text: str | None = None
    i = 0
    while i < len(tokens):
        word = tokens[i]
        if word in _SINGULAR or word in _UNIT_SECONDS or word in _WEEKDAYS:
            if unit is not None:
                raise ScheduleError(
                    f"{_q(spec)}: {_q(word)} is a second unit after {_q(unit_word)}"
                )
            unit_word = word
            if word in _WEEKDAYS:
                if interval != 1:
                    raise ScheduleError(
                        f"{_q(spec)}: a weekday runs every week; drop the interval "
                        f"{interval} (or use 'every {interval} weeks')"
                    )
                weekday = _WEEKDAYS.index(word)
                unit = "weeks"
            elif word in _SINGULAR:
                if interval != 1:
                    raise ScheduleError(
                        f"{_q(spec)}: {_q(word)} is singular; write {_SINGULAR[word]!r} "
                        f"with an interval of {interval}"
                    )
                unit = _SINGULAR[word]
            else:
                unit = word
            i += 1
        elif word in ("to", "at"):
            if i + 1 >= len(tokens):
                raise ScheduleError(f"{_q(spec)}: {_q(word)} needs a value after it")
            value = tokens[i + 1]
            if word == "to":
                if latest is not None:
                    raise ScheduleError(f"{_q(spec)}: 'to' given twice")
                latest = _positive_int(spec, value, "the upper bound after 'to'")
            else:
                if at_text is not None:
                    raise ScheduleError(f"{_q(spec)}: 'at' given twice")
                at_text = value
            i += 2
        else:
            raise ScheduleError(
                f"{_q(spec)}: unknown word {_q(word)} (expected second(s), minute(s), hour(s), "
                "day(s), week(s), monday..sunday, 'to N' or 'at TIME')"
            )
    if unit is None:
        raise ScheduleError(f"{_q(spec)}: missing unit (seconds, minutes, hours, days, weeks)")
    if latest is not None:
        if weekday is not None:
            raise ScheduleError(f"{_q(spec)}: 'to {latest}' does not combine with a weekday")
        if latest < interval:
            raise ScheduleError(
                f"{_q(spec)}: the upper bound 'to {latest}' is below the interval {interval}"
            )
    for n in (interval, latest or interval):
        if n * _UNIT_SECONDS[unit] > MAX_INTERVAL.total_seconds():
            raise ScheduleError(
                f"{_q(spec)}: the interval '{n} {unit}' is too long (at most 10 years)"
            )
    at = _parse_clock(spec, at_text, unit, weekday is not None) if at_text is not None else None
    return Every(now, tz, interval=interval, unit=unit, at=at, weekday=weekday, latest=latest)


def _parse_clock(spec: str, text: str, unit: str, weekday: bool) -> time:
    """`at` as the schedule library reads it: HH:MM[:SS] for days and weekdays,
    MM:SS or :MM for hours, :SS for minutes."""
    m = _CLOCK.match(text)
    bad = f"{_q(spec)}: bad time {_q(text)} after 'at'"
    if weekday or unit == "days":
        if not m or m.group(1) is None:
            raise ScheduleError(f"{bad} (a daily or weekday run needs HH:MM or HH:MM:SS)")
        h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if h > 23 or mi > 59 or s > 59:
            raise ScheduleError(f"{bad} (out of range)")
        return time(h, mi, s)
    if unit == "hours":
        if not m or m.group(3) is not None:
            raise ScheduleError(f"{bad} (an hourly run needs MM:SS or :MM)")
        if m.group(1) is None:
            mi, s = int(m.group(2)), 0
        else:
            mi, s = int(m.group(1)), int(m.group(2))
        if mi > 59 or s > 59:
            raise ScheduleError(f"{bad} (out of range)")
        return time(0, mi, s)
    if unit == "minutes":
        if not m or m.group(1) is not None or m.group(3) is not None:
            raise ScheduleError(f"{bad} (a run every minute(s) needs :SS)")
        s = int(m.group(2))
        if s > 59:
            raise ScheduleError(f"{bad} (out of range)")
        return time(0, 0, s)
    raise ScheduleError(
        f"{_q(spec)}: 'at {text}' needs days, hours, minutes or a weekday, not {unit} "
        "(e.g. 'every monday at 12:30')"
    )


def _parse_cron(spec: str, fields: list[str], now: datetime, tz: tzinfo) -> Cron:
    if len(fields) == 1 and fields[0].startswith("@"):
        pass
    elif len(fields) not in (5, 6):
        raise ScheduleError(
            f"{_q(spec)}: cron needs 5 fields (minute hour day-of-month month day-of-week) "
            f"or 6 (the 6th is seconds), got {len(fields)}"
        )
    expr = " ".join(fields)
    try:
        croniter(expr, now.astimezone(tz))
    except (CroniterError, ValueError, KeyError, IndexError) as exc:
        raise ScheduleError(_cron_blame(spec, fields, exc)) from None
    when = Cron(now, tz, expr)
    if when.first() is None:
        raise ScheduleError(f"{_q(spec)}: cron {expr!r} never fires")
    return when


def _cron_blame(spec: str, fields: list[str], exc: Exception) -> str:
    """Name the first field croniter refuses on its own."""
    if len(fields) == 1:
        return f"{_q(spec)}: {_q(fields[0])} is not a cron alias (@hourly, @daily, ...)"
    for i, field in enumerate(fields):
        probe = ["*"] * len(fields)
        probe[i] = field
        try:
            croniter(" ".join(probe))
        except Exception:
            return f"{_q(spec)}: cron field {i + 1} ({_CRON_FIELDS[i]}) {_q(field)} is invalid"
    return f"{_q(spec)}: invalid cron expression ({exc})"


def _parse_timestamps(spec: str, body: str, now: datetime, tz: tzinfo) -> Timestamps:
    if not body:
        raise ScheduleError(f"{_q(spec)}: 'at' needs an ISO 8601 timestamp")
    items = [x.strip() for x in body.split(",")]
    if len(items) > MAX_TIMESTAMPS:
        raise ScheduleError(f"{_q(spec)}: at most {MAX_TIMESTAMPS} timestamps")
    future: list[datetime] = []
    ignored: list[str] = []
    for item in items:
        if not item:
            raise ScheduleError(f"{_q(spec)}: empty timestamp in the list")
        if _CLOCK.match(item):
            raise ScheduleError(
                f"{_q(spec)}: {_q(item)} has no date; a one-shot run needs a full timestamp "
                "like 2026-12-01T14:30:00Z (for a daily run write 'every day at HH:MM')"
            )
        try:
            t = datetime.fromisoformat(item.upper())
        except ValueError:
            raise ScheduleError(
                f"{_q(spec)}: {_q(item)} is not an ISO 8601 timestamp "
                "(e.g. 2026-12-01T14:30:00Z or 2026-12-01T15:30:00+01:00)"
            ) from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=tz)
        if _utc(t) <= now:
            ignored.append(item)
        else:
            future.append(t)
    if not future:
        raise ScheduleError(
            f"{_q(spec)}: every timestamp is in the past, nothing to run: {_q(', '.join(ignored))}"
        )
    return Timestamps(now, tz, future, tuple(ignored))
