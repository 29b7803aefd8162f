"""scrapyd's `priority`: higher runs first among pending jobs. The column is added to a
store made before it, on open, without losing or changing its jobs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.domain import PENDING, USER
from daemon.job_store import _SCHEMA, Job, Store
from tests.daemon_support import write_scrapy_project, write_store_without_added_columns
from tests.scrapyd_support import WAIT_SPIDER, make_egg
from tests.test_scrapyd_api import Scrapyd, scrapyd  # noqa: F401 (fixture)


def _job(job_id: str, priority: float = 0.0) -> Job:
    return Job(
        id=job_id,
        status=PENDING,
        actor=USER,
        schedule="now",
        project="p",
        spider="s",
        priority=priority,
    )


def test_a_store_without_priority_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "daemon.sqlite"
    write_store_without_added_columns(path)  # with one PENDING job "old" in p/s
    store = Store(path)
    try:
        kept = store.get("old")
        assert kept is not None and kept.priority == 0.0 and kept.project == "p"
        store.insert(_job("low", -1))
        store.insert(_job("high", 5))
        store.insert(_job("high-later", 5))
        order = []
        while (job := store.oldest_pending()) is not None:
            order.append(job.id)
            store.mark_running(job.id)
        assert order == ["high", "high-later", "old", "low"]
    finally:
        store.close()
    # Opening it again (migrated already) changes nothing.
    again = Store(path)
    try:
        assert again.get("high").priority == 5.0
    finally:
        again.close()


def test_higher_priority_runs_first(scrapyd: Scrapyd, tmp_path: Path) -> None:  # noqa: F811
    src = write_scrapy_project(tmp_path / "src", "waiter", {"waits.py": WAIT_SPIDER})
    scrapyd.add_egg("waiter", "1", make_egg(src, "waiter"))
    until = tmp_path / "go"
    data = {"project": "waiter", "spider": "waits", "until_file": str(until)}
    first = scrapyd.post("schedule.json", data=data).json()["jobid"]
    scrapyd.wait_state(first, "running")  # one slot: the next ones wait
    low = scrapyd.post("schedule.json", data={**data, "priority": "-1"}).json()["jobid"]
    plain = scrapyd.post("schedule.json", data=data).json()["jobid"]
    high = scrapyd.post("schedule.json", data={**data, "priority": "2.5"}).json()["jobid"]
    pending = [j["id"] for j in scrapyd.get("listjobs.json").json()["pending"]]
    assert pending == [high, plain, low]
    until.touch()  # every waiting crawl ends as soon as it starts
    for job in (first, low, plain, high):
        scrapyd.wait_state(job, "finished")
    started = {j["id"]: j["start_time"] for j in scrapyd.get("listjobs.json").json()["finished"]}
    assert sorted((low, plain, high), key=started.__getitem__) == [high, plain, low]
    refused = scrapyd.post("schedule.json", data={**data, "priority": "nan"}).json()
    assert refused["status"] == "error" and refused["message"].startswith("priority is invalid")


def test_a_schema_1_store_gets_both_migrations(tmp_path: Path) -> None:
    path = tmp_path / "daemon.sqlite"
    old = sqlite3.connect(path)
    old.executescript(_SCHEMA)
    old.execute("ALTER TABLE jobs DROP COLUMN leftovers_killed")  # as schema 1 had it
    old.execute("INSERT INTO meta (key, value) VALUES ('schema', '1')")
    old.commit()
    old.close()
    store = Store(path)
    try:
        store.insert(_job("a", 3))
        assert store.oldest_pending().priority == 3.0
    finally:
        store.close()
