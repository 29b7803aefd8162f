"""The `when` grammar (daemon.triggers): forms, meaning, errors, DST, canonical text.

scrapy-do hands `every ...` specs to the `schedule` library; that library (installed
with scrapy-do, a test dependency) is the oracle for what those forms mean: with its
clock frozen at the same instant, its next-run times must equal ours.
"""

from __future__ import annotations

import datetime as dt
import itertools
import types
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import schedule as schedule_lib
from scrapy_do.utils import schedule_job

from daemon.triggers import (
    Cron,
    Every,
    ScheduleError,
    Timestamps,
    parse_when,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# A Monday, 03:53:58 UTC, seconds and all, so "at" rules have something to round.
NOW = datetime(2026, 11, 23, 3, 53, 58, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(when, n: int, after: datetime | None = None) -> list[datetime]:
    out: list[datetime] = []
    t = when.first() if after is None else when.next_after(after)
    while t is not None and len(out) < n:
        out.append(t)
        t = when.next_after(t)
    return out


# -- scrapy-do's examples, checked against scrapy-do's own parser -----------------------

# Every example of scrapy-do 0.5's docs (basic concepts, quick start, REST API).
SCRAPY_DO_EXAMPLES = [
    "every monday at 12:30",
    "every 2 to 3 hours",
    "every 6 minutes",
    "every hour at 00:15",
    "every 5 to 15 minutes",
    "every 10 minutes",
    "every minute",
]

# Every keyword scrapy-do lists, in a spec scrapy-do accepts.
SCRAPY_DO_KEYWORDS = [
    "every second",
    "every 30 seconds",
    "every minute",
    "every 3 minutes",
    "every hour",
    "every 4 hours",
    "every day",
    "every 2 days",
    "every week",
    "every 3 weeks",
    "every monday",
    "every tuesday",
    "every wednesday at 08:00",
    "every thursday",
    "every friday at 17:45",
    "every saturday",
    "every sunday at 23:59",
    "every day at 10:30",
    "every 2 days at 03:00",
    "every 2 to 3 days",
    "every 10 to 20 seconds",
    "EVERY 10 Minutes",
    "every 1 minutes",
]


@pytest.mark.parametrize("spec", SCRAPY_DO_EXAMPLES + SCRAPY_DO_KEYWORDS)
def test_scrapy_do_forms_parse_to_what_scrapy_do_parses(spec: str) -> None:
    job = schedule_job(schedule_lib.Scheduler(), spec)
    when = parse_when(spec, NOW, "UTC")
    assert isinstance(when, Every)
    assert when.interval == job.interval
    assert when.latest == job.latest
    assert when.unit == job.unit
    weekday = None if job.start_day is None else when.canonical.split()[1]
    assert weekday == job.start_day
    assert when.at == job.at_time


class _FrozenClock:
    """Stands in for the `datetime` module inside the schedule library."""

    def __init__(self, now: datetime) -> None:
        clock = self

        class FrozenDatetime(dt.datetime):
            @classmethod
            def now(cls, tz=None):  # type: ignore[override]
                return clock.now

        self.now = now.replace(tzinfo=None)
        self.module = types.SimpleNamespace(
            datetime=FrozenDatetime, timedelta=dt.timedelta, time=dt.time, date=dt.date
        )


# (spec, the same schedule written against the schedule library's API)
ORACLE = [
    ("every monday at 12:30", lambda s: s.every().monday.at("12:30")),
    ("every 6 minutes", lambda s: s.every(6).minutes),
    ("every hour at 00:15", lambda s: s.every().hour.at("00:15")),
    ("every 10 minutes", lambda s: s.every(10).minutes),
    ("every minute", lambda s: s.every().minute),
    ("every second", lambda s: s.every().second),
    ("every 7 seconds", lambda s: s.every(7).seconds),
    ("every hour", lambda s: s.every().hour),
    ("every 5 hours", lambda s: s.every(5).hours),
    ("every hour at :15", lambda s: s.every().hour.at(":15")),
    ("every hour at :59", lambda s: s.every().hour.at(":59")),
    ("every hour at 30:05", lambda s: s.every().hour.at("30:05")),
    ("every 2 hours at :15", lambda s: s.every(2).hours.at(":15")),
    ("every 3 hours at :59", lambda s: s.every(3).hours.at(":59")),
    ("every minute at :30", lambda s: s.every().minute.at(":30")),
    ("every minute at :50", lambda s: s.every().minute.at(":50")),
    ("every 5 minutes at :30", lambda s: s.every(5).minutes.at(":30")),
    ("every day", lambda s: s.every().day),
    ("every day at 10:00", lambda s: s.every().day.at("10:00")),
    ("every day at 03:00", lambda s: s.every().day.at("03:00")),
    ("every day at 03:53:59", lambda s: s.every().day.at("03:53:59")),
    ("every 2 days at 10:00", lambda s: s.every(2).days.at("10:00")),
    ("every 2 days at 03:00", lambda s: s.every(2).days.at("03:00")),
    ("every 3 days", lambda s: s.every(3).days),
    ("every week", lambda s: s.every().week),
    ("every 2 weeks", lambda s: s.every(2).weeks),
    ("every monday", lambda s: s.every().monday),
    ("every tuesday", lambda s: s.every().tuesday),
    ("every sunday at 12:30", lambda s: s.every().sunday.at("12:30")),
    ("every monday at 03:00", lambda s: s.every().monday.at("03:00")),
]


@pytest.mark.parametrize(("spec", "build"), ORACLE, ids=[s for s, _ in ORACLE])
def test_every_forms_fire_when_the_schedule_library_would(
    spec: str, build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same first run as the library, and the same later runs as the library would give
    if each run took no time at all (which is exactly our no-drift promise)."""
    clock = _FrozenClock(NOW)
    monkeypatch.setattr(schedule_lib, "datetime", clock.module)
    job = build(schedule_lib.Scheduler()).do(lambda: None)
    when = parse_when(spec, NOW, "UTC")
    ours = fires(when, 6)
    theirs = [job.next_run]
    for _ in range(5):
        clock.now = job.next_run
        job._schedule_next_run()
        theirs.append(job.next_run)
    assert [t.replace(tzinfo=None) for t in ours] == theirs


@pytest.mark.parametrize(
    ("spec", "low", "high", "unit"),
    [
        ("every 5 to 15 minutes", 5, 15, 60),
        ("every 2 to 3 hours", 2, 3, 3600),
        ("every 10 to 20 seconds", 10, 20, 1),
        ("every to 3 days", 1, 3, 86400),
    ],
)
def test_random_interval_stays_in_bounds_and_is_reproducible(
    spec: str, low: int, high: int, unit: int
) -> None:
    when = parse_when(spec, NOW, "UTC")
    times = fires(when, 200)
    gaps = [(b - a).total_seconds() / unit for a, b in itertools.pairwise([when.start, *times])]
    assert all(low <= g <= high and g == int(g) for g in gaps), gaps
    assert len(set(gaps)) > 1  # it is random, not a constant interval
    assert fires(parse_when(spec, NOW, "UTC"), 200) == times  # same start, same draws
    # next_after a fire time is the same draw, whoever asks (restart-safe)
    assert when.next_after(times[50]) == times[51]


# -- now, case, timestamps ---------------------------------------------------------------


@pytest.mark.parametrize("spec", ["now", "NOW", "  Now  "])
def test_now_is_not_a_schedule(spec: str) -> None:
    # A run for now is started by the jobs service (tests/test_jobs_service.py::
    # test_now_plans_one_run_started_at_once), never armed in the scheduler.
    with pytest.raises(ScheduleError, match="'now' is not a schedule"):
        parse_when(spec, NOW)


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("Every 10 Minutes", "every 10 minutes"),
        ("EVERY MONDAY AT 12:30", "every monday at 12:30"),
        ("CRON */5 * * * *", "cron */5 * * * *"),
        ("every   2  TO 3   hours", "every 2 to 3 hours"),
        ("at 2026-12-01t14:30:00z", "at 2026-12-01T14:30:00Z"),
    ],
)
def test_matching_is_case_insensitive(spec: str, canonical: str) -> None:
    assert parse_when(spec, NOW).canonical == canonical


def test_timestamp_list_with_offsets_orders_dedupes_and_reports_the_past() -> None:
    when = parse_when(
        "at 2026-12-01T15:00:00+01:00, 2026-12-01T14:30:00Z, 2026-11-01T00:00:00Z, "
        "2026-12-01T14:00:00Z",
        NOW,
        "UTC",
    )
    assert isinstance(when, Timestamps) and when.once
    assert when.times == [utc(2026, 12, 1, 14, 0), utc(2026, 12, 1, 14, 30)]
    assert when.ignored == ("2026-11-01T00:00:00Z",)
    assert fires(when, 10) == when.times
    assert when.next_after(utc(2026, 12, 1, 14, 30)) is None
    assert when.previous(utc(2026, 12, 1, 14, 10)) == utc(2026, 12, 1, 14, 0)


def test_seed_style_bare_timestamp_list_is_accepted() -> None:
    """The seed's request body: a comma-separated string of ISO 8601 timestamps."""
    now = utc(2025, 7, 1)
    when = parse_when("2025-08-01T14:30:00Z, 2025-08-01T15:00:00Z", now)
    assert when.times == [utc(2025, 8, 1, 14, 30), utc(2025, 8, 1, 15, 0)]
    assert when.ignored == ()


def test_timestamps_without_offset_use_the_timezone() -> None:
    when = parse_when("at 2026-12-01T14:30:00", NOW, BERLIN)
    assert when.times == [utc(2026, 12, 1, 13, 30)]  # CET is UTC+1
    assert when.canonical == "at 2026-12-01T14:30:00+01:00"
    summer = parse_when("at 2027-07-01T14:30", NOW, "Europe/Berlin")
    assert summer.times == [utc(2027, 7, 1, 12, 30)]  # CEST is UTC+2


# -- errors name the bad part ------------------------------------------------------------

ERRORS = [
    ("every 0 minutes", "interval '0'"),
    ("every -5 minutes", "interval '-5'"),
    ("every 1.5 minutes", "interval '1.5'"),
    ("every 10 fortnights", "'fortnights'"),
    ("cron 61 * * * *", "field 1 (minute) '61'"),
    ("cron 0 25 * * *", "field 2 (hour) '25'"),
    ("cron 0 0 * 13 *", "field 4 (month) '13'"),
    ("cron */0 * * * *", "'*/0'"),
    ("cron 0 0 30 2 *", "never fires"),
    ("cron * * *", "got 3"),
    ("cron * * * * * * *", "got 7"),
    ("cron @sometimes", "'@sometimes'"),
    ("at yesterday", "'yesterday' is not an ISO 8601"),
    ("at 14:30", "'14:30' has no date"),
    ("at 2026-13-01T00:00:00Z", "'2026-13-01T00:00:00Z' is not an ISO 8601"),
    ("at 2020-01-01T00:00:00Z, 2021-01-01T00:00:00Z", "past, nothing to run: '2020-01-01T00"),
    ("at 2027-01-01T00:00:00Z,,", "empty timestamp"),
    ("at", "needs an ISO 8601"),
    ("every 2 minute", "'minute' is singular"),
    ("every 2 monday", "interval 2"),
    ("every 2 mondays", "'mondays'"),
    ("every week at 10:00", "'at 10:00' needs days, hours, minutes or a weekday"),
    ("every 5 seconds at :10", "not seconds"),
    ("every 2 to 1 minutes", "'to 1' is below the interval 2"),
    ("every 2 to x minutes", "after 'to' 'x'"),
    ("every monday to 3", "'to 3' does not combine with a weekday"),
    ("every 5 minutes to", "'to' needs a value"),
    ("every day at 25:00", "'25:00'"),
    ("every day at :30", "':30'"),
    ("every hour at 12:30:00", "'12:30:00'"),
    ("every minute at 12:30", "'12:30'"),
    ("every day at 10:00 at 11:00", "'at' given twice"),
    ("every minutes hours", "'hours' is a second unit"),
    ("every 100000 weeks", "'100000 weeks' is too long"),
    ("every 99999999999999999999 seconds", "is too long"),
    ("every 2 to 9999999999 seconds", "'9999999999 seconds' is too long"),
    ("every", "needs a unit"),
    ("every 10", "missing unit"),
    ("hourly", "unknown form 'hourly'"),
    ("now please", "'please' after 'now'"),
    ("", "empty"),
]


@pytest.mark.parametrize(("spec", "fragment"), ERRORS, ids=[e[0] or "<empty>" for e in ERRORS])
def test_errors_name_the_bad_part(spec: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_when(spec, NOW, "UTC")
    assert fragment in str(info.value)
    assert info.value.message == str(info.value)


def test_unknown_timezone_is_named() -> None:
    with pytest.raises(ScheduleError, match="'Mars/Olympus'"):
        parse_when("every day", NOW, "Mars/Olympus")


def test_a_huge_spec_is_quoted_short_in_the_error() -> None:
    with pytest.raises(ScheduleError) as info:
        parse_when("every 5 " + "x" * 10_000, NOW)
    assert len(str(info.value)) < 500


# -- cron ----------------------------------------------------------------------------------

CRON = [
    (
        "cron */5 * * * *",
        "UTC",
        NOW,
        [utc(2026, 11, 23, 3, 55), utc(2026, 11, 23, 4, 0), utc(2026, 11, 23, 4, 5)],
    ),
    (
        "cron * * * * * */15",  # croniter's sixth field: seconds
        "UTC",
        NOW,
        [utc(2026, 11, 23, 3, 54), utc(2026, 11, 23, 3, 54, 15), utc(2026, 11, 23, 3, 54, 30)],
    ),
    (
        "cron 0 9 * * mon-fri",  # 09:00 New York time, EST = UTC-5
        "America/New_York",
        utc(2026, 11, 27, 20, 0),  # a Friday evening
        [utc(2026, 11, 30, 14, 0), utc(2026, 12, 1, 14, 0), utc(2026, 12, 2, 14, 0)],
    ),
    ("cron @daily", "UTC", NOW, [utc(2026, 11, 24), utc(2026, 11, 25), utc(2026, 11, 26)]),
    (
        # spring forward in Berlin (2026-03-29 02:00 -> 03:00): croniter moves the 02:30
        # run of that night to 03:00 CEST (01:00 UTC)
        "cron 30 2 * * *",
        "Europe/Berlin",
        utc(2026, 3, 27, 12, 0),
        [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)],
    ),
    (
        # fall back in Berlin (2026-10-25 03:00 -> 02:00): 02:30 happens twice and
        # croniter fires at both
        "cron 30 2 * * *",
        "Europe/Berlin",
        utc(2026, 10, 24, 12, 0),
        [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30), utc(2026, 10, 26, 1, 30)],
    ),
    (
        "cron 0 * * * *",  # hourly through the New York spring-forward night
        "America/New_York",
        utc(2026, 3, 8, 5, 30),
        [utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 8, 0)],
    ),
]


@pytest.mark.parametrize(("spec", "tz", "start", "expected"), CRON)
def test_cron(spec: str, tz: str, start: datetime, expected: list[datetime]) -> None:
    when = parse_when(spec, start, tz)
    assert isinstance(when, Cron)
    assert fires(when, len(expected)) == expected
    assert when.previous(expected[1]) == expected[1]
    assert when.previous(expected[1] - timedelta(microseconds=1)) == expected[0]
    assert when.previous(start) is None


# -- every ... across DST -------------------------------------------------------------------

DST = [
    (
        # a daily wall-clock time stays put across spring forward in Berlin...
        "every day at 10:30",
        BERLIN,
        utc(2026, 3, 27, 12, 0),
        [utc(2026, 3, 28, 9, 30), utc(2026, 3, 29, 8, 30), utc(2026, 3, 30, 8, 30)],
    ),
    (
        # ...and across fall back in New York
        "every day at 10:30",
        NEW_YORK,
        utc(2026, 10, 31, 16, 0),
        [utc(2026, 11, 1, 15, 30), utc(2026, 11, 2, 15, 30), utc(2026, 11, 3, 15, 30)],
    ),
    (
        # 02:30 does not exist on 2026-03-29 in Berlin: that run is one gap later (03:30)
        "every day at 02:30",
        BERLIN,
        utc(2026, 3, 27, 12, 0),
        [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)],
    ),
    (
        # 02:30 happens twice on 2026-10-25 in Berlin: one run, at the first
        "every day at 02:30",
        BERLIN,
        utc(2026, 10, 24, 12, 0),
        [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)],
    ),
    (
        # elapsed units ignore the wall clock: exactly 2 hours apart through the jump
        "every 2 hours",
        NEW_YORK,
        utc(2026, 3, 8, 5, 0),
        [utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 9, 0), utc(2026, 3, 8, 11, 0)],
    ),
    (
        "every sunday at 09:00",
        NEW_YORK,
        utc(2026, 3, 1, 20, 0),  # Sunday evening, after 09:00
        [utc(2026, 3, 8, 13, 0), utc(2026, 3, 15, 13, 0)],  # EDT from 03-08 02:00
    ),
]


@pytest.mark.parametrize(("spec", "tz", "start", "expected"), DST)
def test_every_across_dst(spec: str, tz, start: datetime, expected: list[datetime]) -> None:
    when = parse_when(spec, start, tz)
    assert fires(when, len(expected)) == expected
    for a, b in itertools.pairwise(expected):
        assert when.next_after(a + (b - a) / 2) == b
        assert when.previous(a + (b - a) / 2) == a


# -- properties every schedule has ---------------------------------------------------------

VALID = [
    *SCRAPY_DO_EXAMPLES,
    *SCRAPY_DO_KEYWORDS,
    *(s for s, _ in ORACLE),
    "cron */5 * * * *",
    "cron * * * * * */15",
    "cron 0 9 * * mon-fri",
    "cron @hourly",
    "at 2026-12-01T14:30:00Z, 2027-01-01T00:00:00+05:30",
    "at 2026-12-01T14:30:00",
]


@pytest.mark.parametrize("spec", VALID)
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin"])
def test_canonical_text_parses_back_to_the_same_schedule(spec: str, tz: str) -> None:
    when = parse_when(spec, NOW, tz)
    again = parse_when(when.canonical, NOW, tz)
    assert again.canonical == when.canonical
    assert str(when) == when.canonical
    assert fires(again, 20) == fires(when, 20)


@pytest.mark.parametrize("spec", [s for s in VALID if not s.startswith("at")])
def test_next_after_and_previous_agree_with_the_sequence(spec: str) -> None:
    when = parse_when(spec, NOW, "Europe/Berlin")
    seq = fires(when, 30)
    assert seq == sorted(set(seq))
    for a, b in itertools.pairwise(seq):
        mid = a + (b - a) / 3
        if when.latest is None if isinstance(when, Every) else True:
            assert when.next_after(mid) == b
            assert when.previous(mid) == a
        assert when.previous(a) == a


def test_every_is_an_exact_grid_without_drift() -> None:
    when = parse_when("every 7 seconds", NOW)
    first = when.first()
    assert first == NOW + timedelta(seconds=7)
    t = first
    for _ in range(10_000):
        t = when.next_after(t)
    assert t == first + 10_000 * timedelta(seconds=7)
    # from any instant, the next fire is the next grid point
    assert when.next_after(first + timedelta(seconds=7 * 500 + 3.25)) == first + timedelta(
        seconds=7 * 501
    )


def test_start_is_the_anchor_so_a_restart_keeps_the_grid() -> None:
    created = NOW + timedelta(microseconds=250_000)
    a = parse_when("every 10 minutes", created)
    b = parse_when(a.canonical, created)  # re-parsed after a restart, same creation time
    later = created + timedelta(days=3, seconds=17)
    assert a.next_after(later) == b.next_after(later)
    assert (a.next_after(later) - a.first()) % timedelta(minutes=10) == timedelta(0)
