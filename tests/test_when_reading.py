"""The plain reading of a `when` spec (daemon.when_reading.describe), pinned word for word."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daemon.triggers import parse_when
from daemon.when_reading import describe

# A Thursday, 13:00 in Berlin.
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "reading"),
    [
        ("every day at 12:30", "every day at 12:30"),
        ("every 2 days at 08:05:09", "every 2 days at 08:05:09"),
        ("every 10 minutes", "every 10 minutes"),
        ("every minute", "every minute"),
        ("every 30 seconds", "every 30 seconds"),
        ("every hour at :15", "every hour at 15 minutes past the hour"),
        ("every 2 hours at 05:30", "every 2 hours at 5 min 30 s past the hour"),
        ("every minute at :30", "every minute at second 30"),
        ("every 5 to 10 minutes", "every 5 to 10 minutes (a random interval each time)"),
        ("every monday at 12:30", "every Monday at 12:30"),
        ("EVERY   Friday   at 7:00", "every Friday at 07:00"),
        # no `at`: the time of day comes from when it was scheduled (13:00 in Berlin)
        ("every monday", "every Monday at 13:00 (the time of day it was scheduled)"),
        ("every day", "every day at 13:00 (the time of day it was scheduled)"),
        ("every week", "every week on Thursdays at 13:00 (the time of day it was scheduled)"),
        ("cron 30 12 * * *", "every day at 12:30"),
        ("cron 30 12 * * * 15", "every day at 12:30:15"),
        ("cron */5 * * * *", "every 5 minutes"),
        ("cron * * * * *", "every minute"),
        ("cron * * * * * */10", "every 10 seconds"),
        ("cron 0 * * * *", "every hour, on the hour"),
        ("cron 20 * * * *", "every hour at 20 minutes past"),
        ("cron 0 */6 * * *", "every 6 hours, on the hour"),
        ("cron 0 0,12 * * *", "every day at 00:00 and 12:00"),
        ("cron 0 9-17 * * 1-5", "every hour on the hour, from 09:00 to 17:00, on Monday to Friday"),
        ("cron 0 12 * * mon-fri", "every Monday to Friday at 12:00"),
        ("cron 0 12 * * mon,wed,fri", "every Monday, Wednesday and Friday at 12:00"),
        ("cron 0 0 * * 0", "every Sunday at 00:00"),
        ("cron 0 0 * * 7", "every Sunday at 00:00"),
        ("cron 0 9 1 * *", "on day 1 of the month at 09:00"),
        ("cron 0 12 15 * 1", "on day 15 of the month or on every Monday at 12:00"),
        ("cron 0 12 * jan,jul *", "every day in January and July at 12:00"),
        ("cron 0 0 1 1 *", "every year on 1 January at 00:00"),
        ("cron */10 * * * 1-5", "every 10 minutes, on Monday to Friday"),
        ("cron @daily", "every day at 00:00"),
        ("cron @hourly", "every hour, on the hour"),
        ("cron @weekly", "every Sunday at 00:00"),
        ("cron @monthly", "on day 1 of the month at 00:00"),
        ("cron @yearly", "every year on 1 January at 00:00"),
        # beyond these words: the fields as written, never a guess
        ("cron 5,35 */2 * * *", "cron: minute 5,35, hour */2"),
        ("cron 0 8 * * 1#2", "cron: minute 0, hour 8, day of week 1#2"),
        ("cron 0 0 L * *", "cron: minute 0, hour 0, day of month l"),
        ("at 2027-01-01T10:00:00Z", "once, on 2027-01-01 11:00"),
        (
            "at 2027-02-01T10:00:00Z, 2027-01-01T10:00:00Z",
            "2 times, from 2027-01-01 11:00 to 2027-02-01 11:00",
        ),
    ],
)
def test_reading(spec: str, reading: str) -> None:
    assert describe(parse_when(spec, NOW, "Europe/Berlin")) == reading


def test_times_are_read_in_the_schedules_own_zone() -> None:
    at = "at 2027-01-01T10:00:00Z"
    assert describe(parse_when(at, NOW, "UTC")) == "once, on 2027-01-01 10:00"
    assert describe(parse_when(at, NOW, "Asia/Kathmandu")) == "once, on 2027-01-01 15:45"
    daily = "every day"
    assert describe(parse_when(daily, NOW, "UTC")).startswith("every day at 12:00 ")
