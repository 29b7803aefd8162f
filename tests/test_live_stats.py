"""Live stats of every crawl (daemon.runner.stats in the crawl, daemon.live_stats in the
daemon): seen while the crawl runs, kept in the store once it ended, under Scrapy's
own names plus field_coverage, through list-jobs and GET /api/jobs/<id>/stats."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from daemon.domain import RUNNING, SUCCESSFUL
from daemon.job_store import Job, Store
from daemon.live_stats import live_stats_path, read_stats
from daemon.runner.stats import FieldCoverage, stats_text
from tests.daemon_support import DaemonFactory, DaemonProcess, write_scrapy_project
from tests.waiting import wait_until

SPIDERS = """
import asyncio
import json
from pathlib import Path

import scrapy


class Pairs(scrapy.Spider):
    # Items in pairs, one with a name and one with an empty name, until told to stop.
    name = "pairs"

    async def start(self):
        stop = Path(json.loads(getattr(self, "payload", "{}"))["stop_file"])
        n = 0
        while not stop.exists():
            yield {"n": n, "name": f"coin {n}", "tags": ["a"]}
            yield {"n": n + 1, "name": "", "tags": []}
            n += 2
            await asyncio.sleep(0.1)
"""

MARKER = """
from scrapy import signals


class Marker:
    # A project's own extension: counts its spider_opened in the crawl's stats.
    def __init__(self, crawler):
        self.crawler = crawler
        crawler.signals.connect(self.opened, signal=signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def opened(self, spider):
        self.crawler.stats.inc_value("marker/opened")
"""


def stats_projects(work: Path) -> dict[str, dict[str, Any]]:
    folder = write_scrapy_project(work / "statsproj", "statsproj", {"pairs.py": SPIDERS})
    (folder / "statsproj" / "marker.py").write_text(MARKER)
    with (folder / "statsproj" / "settings.py").open("a") as fh:
        fh.write('EXTENSIONS = {"statsproj.marker.Marker": 500}\n')
    return {"statsproj": {"path": str(folder)}}


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory) -> DaemonProcess:
    return start_module_daemon(stats_projects, slots=2)


def api_stats(daemon: DaemonProcess, job_id: str) -> dict[str, Any]:
    rsp = daemon.get(f"/api/jobs/{job_id}/stats")
    assert rsp.status_code == 200, rsp.text
    return rsp.json()


def count(stats: dict[str, Any] | None) -> int:
    return (stats or {}).get("item_scraped_count", 0)


def test_stats_rise_while_running_and_are_kept_at_the_end(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    job_id = daemon.schedule("pairs", "statsproj", payload=json.dumps({"stop_file": str(stop)}))
    first = wait_until(
        lambda: daemon.job(job_id),
        60,
        "live stats in list-jobs",
        until=lambda job: job["status"] == RUNNING and count(job["stats"]) >= 2,
    )
    seen = count(first["stats"])
    assert "start_time" in first["stats"]  # a datetime, written as ISO text
    assert isinstance(first["stats"]["start_time"], str)
    later = wait_until(
        lambda: api_stats(daemon, job_id),
        60,
        "item_scraped_count to grow in /api/jobs/<id>/stats",
        until=lambda doc: doc["status"] == RUNNING and count(doc["stats"]) > seen,
    )
    assert later["job_id"] == job_id
    assert later["stats"]["field_coverage"]["n"] == 1.0
    stop.write_text("")
    job = daemon.wait_status(job_id, (SUCCESSFUL,), timeout=60)
    final = job["stats"]
    assert final["finish_reason"] == "finished"
    assert final["item_scraped_count"] >= count(later["stats"])
    assert final["item_scraped_count"] % 2 == 0
    assert final["field_coverage"] == {"n": 1.0, "name": 0.5, "tags": 0.5}
    assert isinstance(final["elapsed_time_seconds"], float)
    assert final["log_count/INFO"] > 0
    # The project's own EXTENSIONS kept working next to the daemon's.
    assert final["marker/opened"] == 1
    doc = api_stats(daemon, job_id)
    assert doc == {"job_id": job_id, "status": SUCCESSFUL, "stats": final}
    # Kept in the store: the file going away changes nothing.
    live_stats_path(daemon.workdir / "data", job_id).unlink()
    assert api_stats(daemon, job_id)["stats"] == final
    assert daemon.job(job_id)["stats"] == final


def test_stats_of_unknown_jobs_and_bad_requests(daemon: DaemonProcess) -> None:
    rsp = daemon.get("/api/jobs/no-such-job/stats")
    assert rsp.status_code == 404 and "not found" in rsp.json()["message"]
    rsp = daemon.get("/api/jobs/..%2F..%2Fetc/stats")
    assert rsp.status_code == 404
    job_id = daemon.schedule("pairs", "statsproj", when="every day at 03:00")
    rsp = daemon.get(f"/api/jobs/{job_id}/stats", params={"x": "1"})
    assert rsp.status_code == 400, rsp.text
    assert api_stats(daemon, job_id) == {"job_id": job_id, "status": "SCHEDULED", "stats": None}
    assert daemon.job(job_id)["stats"] is None


# -- units ----------------------------------------------------------------------------


def test_field_coverage_counts_non_empty_values_per_field() -> None:
    cov = FieldCoverage()
    assert cov.shares() == {}
    cov.add({"a": 1, "b": "", "c": None})
    cov.add({"a": 0, "b": "x", "d": []})
    cov.add({"a": "  ", "b": "y", "d": [1], "e": False})
    cov.add("not an item")  # skipped, not counted
    assert cov.items == 3
    # A field missing from an item counts as empty there.
    assert cov.shares() == {"a": 0.6667, "b": 0.6667, "c": 0.0, "d": 0.3333, "e": 0.3333}


def test_stats_text_writes_datetimes_as_iso_text() -> None:
    from datetime import UTC, datetime

    cov = FieldCoverage()
    cov.add({"x": 1})
    text = stats_text({"start_time": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "n": 2}, cov)
    assert json.loads(text) == {
        "start_time": "2026-01-02T03:04:05+00:00",
        "n": 2,
        "field_coverage": {"x": 1.0},
    }


def test_read_stats_refuses_links_big_files_and_non_objects(tmp_path: Path) -> None:
    path = live_stats_path(tmp_path, "job")
    assert read_stats(tmp_path, "job") is None
    path.parent.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "x"}')
    path.symlink_to(secret)
    assert read_stats(tmp_path, "job") is None
    path.unlink()
    for bad in ("[1, 2]", "{not json", '{"a": NaN}', '{"a": "' + "x" * (1 << 20) + '"}'):
        path.write_text(bad)
        assert read_stats(tmp_path, "job") is None, bad[:20]
    path.write_text('{"b": 1,  "a": "\u00e9"}')
    assert read_stats(tmp_path, "job") == '{"b": 1, "a": "\u00e9"}'


def test_a_store_without_the_stats_column_gets_it_on_open(tmp_path: Path) -> None:
    path = tmp_path / "daemon.sqlite"
    store = Store(path)
    store.insert(
        Job(id="old", status=RUNNING, actor="USER", schedule="now", project="p", spider="s")
    )
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE jobs DROP COLUMN stats")
    store = Store(path)
    assert store.get("old") is not None and store.get("old").stats is None
    job = store.finish("old", SUCCESSFUL, stats='{"item_scraped_count": 1}')
    assert job is not None and job.stats == '{"item_scraped_count": 1}'
