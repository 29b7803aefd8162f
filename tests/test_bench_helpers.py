"""The benchmarks' own arithmetic and inputs: a wrong percentile or a schedule that fires
during an "idle" window would make every quoted figure wrong."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from bench import memory, schedules
from bench.common import multipart, percentile, summary
from bench.summary import targets
from daemon.triggers import parse_when


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_summary_of_unsorted_samples() -> None:
    figures = summary([0.3, 0.1, 0.2, 0.4])
    assert figures["n"] == 4
    assert figures["median"] == pytest.approx(0.25)
    assert figures["min"] == 0.1 and figures["max"] == 0.4
    assert figures["p99"] == 0.4


def test_multipart_body_carries_fields_and_files() -> None:
    body, ctype = multipart({"project": "benchping"}, {"archive": ("p.zip", b"PK\x03\x04")})
    boundary = ctype.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode())
    assert b'name="project"\r\n\r\nbenchping\r\n' in body
    assert b'filename="p.zip"' in body and b"PK\x03\x04" in body
    assert body.endswith(f"--{boundary}--\r\n".encode())


@pytest.mark.parametrize("weekday", range(7))
def test_schedule_specs_parse_and_stay_quiet_for_an_hour(weekday: int) -> None:
    # A Monday 2026-11-23 + weekday days, at the hour the bench could run.
    now = datetime(2026, 11, 23, 23, 59, tzinfo=UTC) + timedelta(days=weekday)
    assert now.weekday() == weekday
    for n in range(0, 10_000, 7):
        text = schedules.spec(n, today=weekday)
        first = parse_when(text, now, "UTC").next_after(now)
        assert first is not None, text
        assert first - now > timedelta(hours=1), (text, first)


def test_memory_load_mixes_all_three_endpoints() -> None:
    endpoints = {
        "status.json": ["/s"],
        "list-jobs page": ["/page"],
        "list-jobs by id": [f"/id/{n}" for n in range(20)],
    }
    paths = memory.mixed_paths(endpoints)
    assert paths.count("/s") == 20
    assert paths.count("/page") == 2
    assert sorted(p for p in paths if p.startswith("/id/")) == sorted(endpoints["list-jobs by id"])


def test_targets_table_says_met_and_not_met() -> None:
    results = {
        "dispatch": {
            "daemons": {
                "coinspiders": {
                    "to_running_s": {"median": 0.012},
                    "done_over_direct": 1.25,
                }
            }
        },
        "crawl": {"coin": {"coin_over_bare": 0.85}},
    }
    rows = {row[0]: row for row in targets(results)}
    assert rows["dispatch ->RUNNING p50"][3] == "yes"
    assert rows["dispatch ->SUCCESSFUL / direct crawl"][3] == "NO"
    assert rows["coin spider / bare download"][3] == "yes"
    assert not any("throughput" in name for name in rows)
