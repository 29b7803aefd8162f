"""The exact bytes of a job as list-jobs shows it (scrapy-do's keys, timestamps in the
daemon's time zone), pinned for fixed jobs, so a faster way of shaping them can be
checked against what clients already read."""

from __future__ import annotations

import dataclasses
import json
from zoneinfo import ZoneInfo

import pytest

from daemon.api.scrapydo import job_to_dict
from daemon.store import FAILED, SCHEDULED, Job

BERLIN = ZoneInfo("Europe/Berlin")

# Ends the night summer time ends in Berlin (25 Oct 2026): 02:30 comes twice.
FINISHED = Job(
    id="0b5c6f4e-8a52-4d2e-9a7e-6c1f2b3a4d5e",
    status=FAILED,
    actor="SCHEDULER",
    schedule="now",
    project="coins",
    spider="coin",
    description='Bitcoin & "Ether" \u00e9t\u00e9 \U0001f680\n</script>',
    payload='{"coins": ["bitcoin", "\u00e9th"], "n": 2}',
    settings={"CMC_API_KEY": "secret-value", "AUTOTHROTTLE_ENABLED": "1"},
    max_runtime=1.5,
    created=1792888200.25 - 3600.5,
    updated=1792891800.0,  # 02:30 CET, the second 02:30 of the night
    started=1792888200.25,  # 02:30:00.25 CEST, the first one
    finished=1792891800.0,
    exit_code=-9,
    parent="7d1e2c3b-4a59-4687-8b9c-0d1e2f3a4b5c",
    reason="killed by signal SIGKILL \u2014 after 1 h",
    pid=4242,
    proc_start=1792888200.5,
    timezone="Europe/Berlin",
    seq=17,
)
# Winter time; microseconds at both ends and one that rounds.
SCHEDULED_JOB = Job(
    id="1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
    status=SCHEDULED,
    actor="USER",
    schedule="every 5 minutes",
    project="coins",
    spider="cmc_api",
    created=1767225600.000001,
    updated=1767225600.999999,
    next_run=1767225900.0,
    last_fire=1767225599.5000004,
    timezone="Asia/Kathmandu",
    skipped=3,
    seq=18,
)

FINISHED_JSON = (
    '{"identifier": "0b5c6f4e-8a52-4d2e-9a7e-6c1f2b3a4d5e", "status": "FAILED", '
    '"actor": "SCHEDULER", "schedule": "now", "project": "coins", "spider": "coin", '
    '"description": "Bitcoin & \\"Ether\\" \u00e9t\u00e9 \U0001f680\\n</script>", '
    '"timestamp": "2026-10-25 02:30:00", "duration": 3600, '
    '"payload": "{\\"coins\\": [\\"bitcoin\\", \\"\u00e9th\\"], \\"n\\": 2}", '
    '"created": "2026-10-25T01:29:59.750000+02:00", '
    '"started": "2026-10-25T02:30:00.250000+02:00", '
    '"finished": "2026-10-25T02:30:00+01:00", "exit_code": -9, '
    '"parent": "7d1e2c3b-4a59-4687-8b9c-0d1e2f3a4b5c", '
    '"reason": "killed by signal SIGKILL \u2014 after 1 h", '
    '"settings": ["AUTOTHROTTLE_ENABLED", "CMC_API_KEY"], "max_runtime": 1.5, '
    '"next_run": null, "last_fire": null, "skipped": 0}'
)
SCHEDULED_JSON = (
    '{"identifier": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9", "status": "SCHEDULED", '
    '"actor": "USER", "schedule": "every 5 minutes", "project": "coins", '
    '"spider": "cmc_api", "description": "", "timestamp": "2026-01-01 01:00:00.999999", '
    '"duration": null, "payload": "{}", "created": "2026-01-01T01:00:00.000001+01:00", '
    '"started": null, "finished": null, "exit_code": null, "parent": null, '
    '"reason": null, "settings": [], "max_runtime": null, '
    '"next_run": "2026-01-01T01:05:00+01:00", '
    '"last_fire": "2026-01-01T00:59:59.500000+01:00", "skipped": 3}'
)


def dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False)


def test_job_dict_is_pinned_byte_for_byte() -> None:
    assert dumps(job_to_dict(FINISHED, BERLIN)) == FINISHED_JSON
    assert dumps(job_to_dict(SCHEDULED_JOB, BERLIN)) == SCHEDULED_JSON


@pytest.mark.parametrize(
    ("zone", "times"),
    [
        (
            "UTC",
            (
                "2026-10-25 01:30:00",
                "2026-10-24T23:29:59.750000+00:00",
                "2026-10-25T00:30:00.250000+00:00",
                "2026-10-25T01:30:00+00:00",
            ),
        ),
        (
            "Asia/Kathmandu",
            (
                "2026-10-25 07:15:00",
                "2026-10-25T05:14:59.750000+05:45",
                "2026-10-25T06:15:00.250000+05:45",
                "2026-10-25T07:15:00+05:45",
            ),
        ),
        (
            "America/St_Johns",
            (
                "2026-10-24 23:00:00",
                "2026-10-24T20:59:59.750000-02:30",
                "2026-10-24T22:00:00.250000-02:30",
                "2026-10-24T23:00:00-02:30",
            ),
        ),
    ],
)
def test_job_times_in_other_zones(zone: str, times: tuple[str, ...]) -> None:
    data = job_to_dict(FINISHED, ZoneInfo(zone))
    assert (data["timestamp"], data["created"], data["started"], data["finished"]) == times


def test_an_offset_with_seconds_is_kept() -> None:
    """Amsterdam's mean time of 1930 (+00:19:32): isoformat writes the seconds."""
    old = dataclasses.replace(
        FINISHED, created=-1262304000.0, updated=-1262303999.75, started=None, finished=None
    )
    data = job_to_dict(old, ZoneInfo("Europe/Amsterdam"))
    assert data["timestamp"] == "1930-01-01 00:19:32.250000"
    assert data["created"] == "1930-01-01T00:19:32+00:19:32"
    assert data["duration"] is None and data["started"] is None
