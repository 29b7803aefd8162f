"""The exact bytes of a job as list-jobs shows it (scrapy-do's keys, timestamps in the
daemon's time zone), pinned for fixed jobs, so a faster way of shaping them can be
checked against what clients already read."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.api.job_json import JOB_COLUMNS, JobJson, job_row
from daemon.domain import COMPLETED_STATUSES, FAILED, SCHEDULED, SUCCESSFUL
from daemon.job_store import Job, Store

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
    handle="4242:1792888200.5",
    node="local",
    timezone="Europe/Berlin",
    leftovers_killed=2,
    stats='{"finish_reason": "finished", "item_scraped_count": 3}',
    anomalies='{"compared_with": 2, "findings": [{"what": "items", "expected": 9, "seen": 3}]}',
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
    '"next_run": null, "last_fire": null, "skipped": 0, "leftovers_killed": 2, '
    '"node": "local", "attempt": 1, '
    '"stats": {"finish_reason": "finished", "item_scraped_count": 3}, '
    '"paused": false, "misfires": 0, "last_run": null, '
    '"anomalies": {"compared_with": 2, "findings": [{"what": "items", "expected": 9, "seen": 3}]}, '
    '"retries": 0, "next_attempt_at": null, "attempts": null, "after": null, '
    '"on": null, "waiting_for": null}'
)
SCHEDULED_JSON = (
    '{"identifier": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9", "status": "SCHEDULED", '
    '"actor": "USER", "schedule": "every 5 minutes", "project": "coins", '
    '"spider": "cmc_api", "description": "", "timestamp": "2026-01-01 01:00:00.999999", '
    '"duration": null, "payload": "{}", "created": "2026-01-01T01:00:00.000001+01:00", '
    '"started": null, "finished": null, "exit_code": null, "parent": null, '
    '"reason": null, "settings": [], "max_runtime": null, '
    '"next_run": "2026-01-01T01:05:00+01:00", '
    '"last_fire": "2026-01-01T00:59:59.500000+01:00", "skipped": 3, '
    '"leftovers_killed": null, "node": null, "attempt": 1, "stats": null, "paused": false, '
    '"misfires": 0, "last_run": null, "anomalies": null, "retries": 0, "next_attempt_at": null, '
    '"attempts": null, "after": null, "on": null, "waiting_for": null}'
)


def dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False)


def job_dict(job: Job, tz: ZoneInfo) -> dict[str, Any]:
    """A job as list-jobs writes it, read back."""
    return json.loads(JobJson(tz).job(job_row(job)))


def test_job_dict_is_pinned_byte_for_byte() -> None:
    assert JobJson(BERLIN).job(job_row(FINISHED)) == FINISHED_JSON
    assert JobJson(BERLIN).job(job_row(SCHEDULED_JOB)) == SCHEDULED_JSON


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
    data = job_dict(FINISHED, ZoneInfo(zone))
    assert (data["timestamp"], data["created"], data["started"], data["finished"]) == times


def test_an_offset_with_seconds_is_kept() -> None:
    """Amsterdam's mean time of 1930 (+00:19:32): isoformat writes the seconds."""
    old = dataclasses.replace(
        FINISHED, created=-1262304000.0, updated=-1262303999.75, started=None, finished=None
    )
    data = job_dict(old, ZoneInfo("Europe/Amsterdam"))
    assert data["timestamp"] == "1930-01-01 00:19:32.250000"
    assert data["created"] == "1930-01-01T00:19:32+00:19:32"
    assert data["duration"] is None and data["started"] is None


def reference_dict(job: Job, tz: ZoneInfo) -> dict[str, Any]:
    """The shaping list-jobs had before rows were written straight to JSON: the spec."""

    def local(ts: float | None) -> datetime | None:
        return None if ts is None else datetime.fromtimestamp(ts, UTC).astimezone(tz)

    def iso(ts: float | None) -> str | None:
        value = local(ts)
        return value.isoformat() if value else None

    updated = local(job.updated)
    duration = None
    if job.started is not None and job.finished is not None:
        duration = round(job.finished - job.started)
    return {
        "identifier": job.id,
        "status": job.status,
        "actor": job.actor,
        "schedule": job.schedule,
        "project": job.project,
        "spider": job.spider,
        "description": job.description,
        "timestamp": str(updated.replace(tzinfo=None)) if updated else None,
        "duration": duration,
        "payload": job.payload,
        "created": iso(job.created),
        "started": iso(job.started),
        "finished": iso(job.finished),
        "exit_code": job.exit_code,
        "parent": job.parent,
        "reason": job.reason,
        "settings": sorted(job.settings),
        "max_runtime": job.max_runtime,
        "next_run": iso(job.next_run),
        "last_fire": iso(job.last_fire),
        "skipped": job.skipped,
        "leftovers_killed": job.leftovers_killed,
        "node": job.node,
        "attempt": _attempt(job),
        "stats": None if job.stats is None else json.loads(job.stats),
        "paused": job.paused,
        "misfires": job.misfires,
        "last_run": None,
        "anomalies": None if job.anomalies is None else json.loads(job.anomalies),
        "retries": job.retries,
        "next_attempt_at": iso(job.next_attempt_at),
        "attempts": None,
        "after": job.after_job,
        "on": job.after_on,
        "waiting_for": job.after_job if job.waiting else None,
    }


def _attempt(job: Job) -> int:
    """The jobs service's attempt, or a Celery handle's (`celery:<n>:<worker>:<pid>`)
    when it is further on."""
    parts = (job.handle or "").split(":")
    if parts[0] == "celery" and len(parts) > 1 and parts[1].isascii() and parts[1].isdigit():
        return max(job.attempt, int(parts[1]))
    return job.attempt


def store_with(tmp_path: Path, *jobs: Job) -> Store:
    """A store holding `jobs` with their own `updated` times (insert stamps the clock)."""
    stamps = iter([j.updated for j in jobs])
    store = Store(tmp_path / "d.sqlite", clock=lambda: next(stamps))
    for j in jobs:
        store.insert(j)
    return store


def test_rows_from_the_store_give_the_pinned_bytes(tmp_path: Path) -> None:
    store = store_with(tmp_path, SCHEDULED_JOB, FINISHED)
    writer = JobJson(BERLIN)
    assert writer.job(store.get_row(FINISHED.id, JOB_COLUMNS)) == FINISHED_JSON
    rows = store.list_rows(JOB_COLUMNS, None, limit=10)
    assert writer.jobs(rows) == FINISHED_JSON + ", " + SCHEDULED_JSON  # newest first
    assert writer.jobs(store.list_rows(JOB_COLUMNS, COMPLETED_STATUSES)) == FINISHED_JSON
    assert writer.jobs([]) == ""
    # The whole page is what one json.dumps of the envelope gives.
    page = '{"status": "ok", "jobs": [' + writer.jobs(rows) + "]}"
    expected = {
        "status": "ok",
        "jobs": [reference_dict(j, BERLIN) for j in (FINISHED, SCHEDULED_JOB)],
    }
    assert page == json.dumps(expected, ensure_ascii=False)
    with pytest.raises(ValueError, match="unknown job columns"):
        store.list_rows(["id", "id; DROP TABLE jobs"])


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/St_Johns",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Europe/Amsterdam",
]


def transitions(tz: ZoneInfo, start: float, end: float) -> list[float]:
    """UTC instants near which `tz` changes its offset (found by bisection per day)."""
    found = []
    day = start
    while day < end:
        a, b = day, day + 86400
        if datetime.fromtimestamp(a, tz).utcoffset() != datetime.fromtimestamp(b, tz).utcoffset():
            while b - a > 1:
                mid = (a + b) // 2
                same = datetime.fromtimestamp(mid, tz).utcoffset()
                if same == datetime.fromtimestamp(a, tz).utcoffset():
                    a = mid
                else:
                    b = mid
            found.append(b)
        day += 86400
    return found


@pytest.mark.parametrize("zone", ZONES)
def test_writer_matches_the_reference_around_every_offset_change(zone: str) -> None:
    """Random jobs and jobs whose times sit on the seconds around each change of offset
    (2025-2027, and 1930 for zones with odd historical offsets): same JSON, byte for byte."""
    tz = ZoneInfo(zone)
    rng = random.Random(zone)
    start = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    end = datetime(2027, 12, 31, tzinfo=UTC).timestamp()
    moments = [rng.uniform(-1.3e9, 4e9) for _ in range(200)]
    moments += [datetime(1930, 6, 1, tzinfo=UTC).timestamp() + rng.uniform(0, 1e6)]
    for edge in transitions(tz, start, end):
        moments += [edge + d for d in (-3600.5, -1.000001, -0.5, -0.0000004, 0, 0.25, 1800)]
    assert len(moments) > 200 + (7 if zone not in ("UTC", "Asia/Kathmandu") else 0)
    writer = JobJson(tz)
    for n, ts in enumerate(moments):
        started = None if n % 5 == 0 else ts - rng.choice([0.4, 0.5, 1.5, 3600.25])
        job = dataclasses.replace(
            FINISHED if n % 2 else SCHEDULED_JOB,
            created=ts - 7200.125,
            updated=ts if n % 3 else ts + 0.000001,
            started=started,
            finished=ts if n % 2 else None,
            next_run=None if n % 2 else ts + 300,
            last_fire=None if n % 2 else ts - 0.5000005,
            max_runtime=[None, 0.1, 3600.0, 1e21][n % 4],
            exit_code=[None, 0, 1, -15][n % 4],
        )
        assert writer.job(job_row(job)) == dumps(reference_dict(job, tz)), (zone, ts)


def test_numbers_and_loose_column_types_as_json_dumps_writes_them() -> None:
    writer = JobJson(ZoneInfo("UTC"))
    odd = dataclasses.replace(
        FINISHED,
        max_runtime=float("inf"),
        exit_code=2**70,
        skipped=True,
        description=12,  # a loosely typed SQLite column: written as json.dumps would
        settings={},
    )
    data = json.loads(writer.job(job_row(odd)))
    assert data["max_runtime"] == float("inf") and data["exit_code"] == 2**70
    assert data["skipped"] is True and data["description"] == 12 and data["settings"] == []
    assert writer.job(job_row(odd)) == dumps(reference_dict(odd, ZoneInfo("UTC")))


def test_a_completed_page_among_many_jobs(tmp_path: Path) -> None:
    """The page list-jobs answers for ?status=COMPLETED&limit=100, job for job."""
    base = datetime(2026, 3, 29, 0, 0, tzinfo=UTC).timestamp()  # summer time begins at 1:00
    jobs = [
        dataclasses.replace(
            FINISHED,
            id=f"00000000-0000-4000-8000-{n:012d}",
            status=SUCCESSFUL if n % 4 else SCHEDULED,
            created=base + n * 37.123457,
            updated=base + n * 37.123457 + 30,
            started=base + n * 37.123457 + 1,
            finished=(base + n * 37.123457 + 30) if n % 4 else None,
            settings={} if n % 3 else {"A": "1"},
        )
        for n in range(300)
    ]
    store = store_with(tmp_path, *jobs)
    rows = store.list_rows(JOB_COLUMNS, COMPLETED_STATUSES, limit=100, offset=5)
    assert len(rows) == 100
    expected = [reference_dict(j, BERLIN) for j in reversed(jobs) if j.status != SCHEDULED][5:105]
    assert JobJson(BERLIN).jobs(rows) == json.dumps(expected, ensure_ascii=False)[1:-1]


def test_a_schedule_shows_its_newest_run_paused_and_misfires(tmp_path: Path) -> None:
    """last_run is the schedule's newest run (the store computes it per row); paused and
    misfires are its own columns; a run has no last_run."""
    older = dataclasses.replace(
        FINISHED, id="00000000-0000-4000-8000-000000000001", parent=SCHEDULED_JOB.id
    )
    newer = dataclasses.replace(
        FINISHED,
        id="00000000-0000-4000-8000-000000000002",
        parent=SCHEDULED_JOB.id,
        status=SUCCESSFUL,
        started=1767226000.0,
        finished=1767226060.0,
        updated=1767226060.0,
    )
    paused = dataclasses.replace(SCHEDULED_JOB, paused=True, misfires=4)
    store = store_with(tmp_path, paused, older, newer)
    rows = store.list_rows(JOB_COLUMNS, None, limit=10)
    shown = json.loads("[" + JobJson(BERLIN).jobs(rows) + "]")
    schedule = next(j for j in shown if j["identifier"] == SCHEDULED_JOB.id)
    assert schedule["paused"] is True and schedule["misfires"] == 4
    assert schedule["last_run"] == {
        "identifier": newer.id,
        "status": "SUCCESSFUL",
        "created": datetime.fromtimestamp(newer.created, BERLIN).isoformat(),
        "started": "2026-01-01T01:06:40+01:00",
        "finished": "2026-01-01T01:07:40+01:00",
    }
    assert all(j["last_run"] is None for j in shown if j["identifier"] != SCHEDULED_JOB.id)
    assert all(j["paused"] is False for j in shown if j["identifier"] != SCHEDULED_JOB.id)
