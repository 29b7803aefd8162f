"""The dashboard's actions as JSON endpoints, over real HTTP against a real daemon:
pause / resume / edit / run now of a schedule, re-run of a finished job, bulk cancel,
and the `when` preview."""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.daemon_support import DaemonFactory, DaemonProcess, write_store_without_added_columns
from tests.waiting import wait_until

FINAL = ("SUCCESSFUL", "FAILED", "CANCELED")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def runs_of(daemon: DaemonProcess, parent: str) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for status in ("ACTIVE", "COMPLETED"):
        rsp = daemon.get("/list-jobs.json", params={"status": status, "limit": 1000})
        found |= {j["identifier"]: j for j in rsp.json()["jobs"] if j.get("parent") == parent}
    return sorted(found.values(), key=lambda j: j["created"])


def schedule(daemon: DaemonProcess, when: str, spider: str = "items", **fields: Any) -> str:
    rsp = daemon.post(
        "/schedule-job.json", data={"project": "toy", "spider": spider, "when": when, **fields}
    )
    assert rsp.status_code == 200, rsp.text
    return rsp.json()["identifier"]


def action(daemon: DaemonProcess, path: str, **data: Any) -> Any:
    return daemon.post(path, data=data)


def texts(job: dict[str, Any]) -> list[str]:
    return [e["text"] for e in job.get("events", [])]


# -- pause / resume -------------------------------------------------------------------------


def test_a_paused_schedule_does_not_fire_even_after_a_restart_and_resumes_from_now(
    start_daemon: DaemonFactory,
) -> None:
    daemon = start_daemon(slots=2)
    parent = schedule(daemon, "every 2 seconds")
    wait_until(lambda: runs_of(daemon, parent), 30, "a first run")

    rsp = action(daemon, "/pause-schedule.json", id=parent)
    assert rsp.status_code == 200, rsp.text
    body = rsp.json()
    assert body["status"] == "ok" and body["identifier"] == parent
    assert body["paused"] is True and body["next_run"] is None
    assert body["job_status"] == "SCHEDULED"
    job = daemon.job(parent)
    assert job["paused"] is True and job["status"] == "SCHEDULED" and job["next_run"] is None
    assert "paused" in texts(job)
    # pausing again is harmless
    assert action(daemon, "/pause-schedule.json", id=parent).json()["paused"] is True
    before = len(runs_of(daemon, parent))
    time.sleep(5)  # two fire times and more pass while paused
    assert len(runs_of(daemon, parent)) == before

    # Down for a while, then up: an unpaused schedule would run its missed firing at
    # once (coalesced, within misfire_grace); a paused one stays silent.
    daemon.stop()
    time.sleep(3)
    daemon = start_daemon.restart(daemon)
    job = daemon.job(parent)
    assert job["paused"] is True and job["status"] == "SCHEDULED" and job["next_run"] is None
    time.sleep(5)
    assert len(runs_of(daemon, parent)) == before

    resumed_at = datetime.now(UTC)
    rsp = action(daemon, "/resume-schedule.json", id=parent)
    assert rsp.status_code == 200, rsp.text
    body = rsp.json()
    assert body["paused"] is False
    assert instant(body["next_run"]) > resumed_at - timedelta(seconds=1)
    wait_until(
        lambda: len(runs_of(daemon, parent)),
        30,
        "a run after the resume",
        until=lambda n: n > before,
    )
    fresh = runs_of(daemon, parent)[before:]
    assert all(instant(r["created"]) >= resumed_at - timedelta(seconds=1) for r in fresh)
    job = daemon.job(parent)
    assert job["paused"] is False
    assert any(t.startswith("resumed") for t in texts(job)), texts(job)
    # The pause (and the restart within it) is no misfire: the only ones counted are
    # those of a reactor held up by a loaded machine, each told in an event of its own.
    assert not any("daemon was down" in t for t in texts(job)), texts(job)
    held_up = [
        re.search(r"missed (\d+) firings while the scheduler was held up", t) for t in texts(job)
    ]
    assert job["misfires"] == sum(int(m.group(1)) - 1 for m in held_up if m), job


def test_pause_resume_refuse_what_is_not_an_active_schedule(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(slots=1)
    run = daemon.schedule("items")
    daemon.wait_status(run, FINAL)
    for path in ("/pause-schedule.json", "/resume-schedule.json", "/run-now.json"):
        rsp = action(daemon, path, id=run)
        assert rsp.status_code == 409, rsp.text
        assert "not an active scheduled job" in rsp.json()["msg"]
        rsp = action(daemon, path, id="00000000-0000-4000-8000-000000000000")
        assert rsp.status_code == 404 and rsp.json()["status"] == "error"
        rsp = action(daemon, path, id="nope")
        assert rsp.status_code == 400 and "not a UUID" in rsp.json()["msg"]
        rsp = action(daemon, path, id=run, when="now")
        assert rsp.status_code == 400 and "Unknown parameter(s): when" in rsp.json()["msg"]


def test_an_old_store_opens_with_its_schedules_unpaused_and_can_pause_them(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """A daemon.sqlite of the previous version (no paused/misfires columns) is migrated on
    open: its schedule is listed unpaused with no misfires, and a pause sticks."""
    data = tmp_path / "data"
    data.mkdir()
    path = data / "daemon.sqlite"
    write_store_without_added_columns(path)
    old = sqlite3.connect(path)
    old.execute("DELETE FROM jobs")
    now = time.time()
    old.execute(
        "INSERT INTO jobs (id, status, active, actor, schedule, project, spider, created,"
        " updated, timezone) VALUES (?, 'SCHEDULED', 1, 'USER', 'every 1 hours', 'toy',"
        " 'items', ?, ?, 'UTC')",
        ("11111111-1111-4111-8111-111111111111", now, now),
    )
    old.commit()
    old.close()
    daemon = start_daemon(data_dir=data)
    job_id = "11111111-1111-4111-8111-111111111111"
    job = daemon.job(job_id)
    assert job["paused"] is False and job["misfires"] == 0 and job["last_run"] is None
    assert action(daemon, "/pause-schedule.json", id=job_id).status_code == 200
    daemon.stop()
    daemon = start_daemon.restart(daemon)
    assert daemon.job(job_id)["paused"] is True
    # a canceled schedule is over, not paused
    assert action(daemon, "/cancel-job.json", id=job_id).status_code == 200
    job = daemon.job(job_id)
    assert job["status"] == "CANCELED" and job["paused"] is False


# -- edit -----------------------------------------------------------------------------------


def test_edit_validates_like_schedule_job_rearms_at_once_and_survives_a_restart(
    start_daemon: DaemonFactory,
) -> None:
    daemon = start_daemon(slots=2)
    parent = schedule(daemon, "every 1 hours")
    first_next = daemon.job(parent)["next_run"]

    for bad in ("every 3 parsecs", "cron 61 * * * *", "at 2001-01-01T00:00:00Z", "  "):
        rsp = action(daemon, "/edit-schedule.json", id=parent, when=bad)
        assert rsp.status_code == 400, rsp.text
        same = daemon.post(
            "/schedule-job.json", data={"project": "toy", "spider": "items", "when": bad}
        )
        assert same.status_code == 400
        assert rsp.json() == same.json()  # the parser's own message, word for word
    rsp = action(daemon, "/edit-schedule.json", id=parent, when="now")
    assert rsp.status_code == 400 and "run-now.json" in rsp.json()["msg"]
    job = daemon.job(parent)
    assert job["schedule"] == "every 1 hours" and job["next_run"] == first_next

    rsp = daemon.post(
        "/edit-schedule.json",
        json={"id": parent, "when": "every 2 seconds"},
    )
    assert rsp.status_code == 200, rsp.text
    body = rsp.json()
    assert body["schedule"] == "every 2 seconds" and body["paused"] is False
    assert instant(body["next_run"]) < instant(first_next)
    # re-armed at once: the hourly schedule would not run for an hour
    wait_until(lambda: runs_of(daemon, parent), 30, "a run of the edited schedule")
    job = daemon.job(parent)
    assert job["schedule"] == "every 2 seconds"
    assert "when changed from 'every 1 hours' to 'every 2 seconds'" in texts(job)

    # Down long enough to miss firings: the edited spec comes back, coalesces them (misfires
    # counted) and runs on; last_run names the newest run.
    daemon.stop()
    stopped = datetime.now(UTC)
    time.sleep(5)
    daemon = start_daemon.restart(daemon)

    def after_restart() -> list[dict[str, Any]]:
        return [r for r in runs_of(daemon, parent) if instant(r["created"]) > stopped]

    wait_until(after_restart, 30, "a run after the restart", until=lambda runs: len(runs) >= 2)
    job = daemon.job(parent)
    assert job["schedule"] == "every 2 seconds" and job["status"] == "SCHEDULED"
    assert job["misfires"] >= 1, job
    newest = runs_of(daemon, parent)[-1]
    last_run = wait_until(
        lambda: daemon.job(parent)["last_run"],
        30,
        "last_run to be the newest run",
        until=lambda lr: lr and lr["identifier"] == runs_of(daemon, parent)[-1]["identifier"],
    )
    assert last_run["status"] in ("PENDING", "RUNNING", *FINAL)
    assert newest["parent"] == parent


def test_editing_a_paused_schedule_keeps_it_paused(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(slots=1)
    parent = schedule(daemon, "every 1 hours")
    action(daemon, "/pause-schedule.json", id=parent)
    rsp = action(daemon, "/edit-schedule.json", id=parent, when="every 2 seconds")
    assert rsp.status_code == 200, rsp.text
    assert rsp.json()["paused"] is True and rsp.json()["next_run"] is None
    time.sleep(4)
    assert runs_of(daemon, parent) == []
    rsp = action(daemon, "/resume-schedule.json", id=parent)
    assert rsp.json()["paused"] is False
    wait_until(lambda: runs_of(daemon, parent), 30, "a run once resumed")


# -- preview --------------------------------------------------------------------------------


def test_preview_reads_the_spec_and_lists_its_next_fire_times(
    start_daemon: DaemonFactory,
) -> None:
    daemon = start_daemon(timezone="Europe/Berlin")
    rsp = daemon.get("/preview-when.json", params={"when": "every day at 12:30"})
    assert rsp.status_code == 200, rsp.text
    body = rsp.json()
    assert body["status"] == "ok" and body["reading"] == "every day at 12:30"
    assert body["timezone"] == "Europe/Berlin" and body["ignored"] == []
    runs = body["next_runs"]
    assert len(runs) == 5
    for entry in runs:
        local, utc = instant(entry["time"]), instant(entry["utc"])
        assert local == utc and entry["utc"].endswith("Z")
        assert (local.hour, local.minute) == (12, 30) and local.utcoffset() != timedelta(0)
        assert "local" not in entry
    days = [instant(e["time"]).date() for e in runs]
    assert [(b - a).days for a, b in itertools.pairwise(days)] == [1, 1, 1, 1]

    # The same first fire time a schedule made with this spec gets.
    made = daemon.post(
        "/schedule-job.json",
        data={"project": "toy", "spider": "items", "when": "every day at 12:30"},
    )
    assert instant(made.json()["next_run"]) == instant(runs[0]["time"])

    rsp = daemon.get(
        "/preview-when.json",
        params={"when": "cron 0 9 * * 1-5", "count": "20", "timezone": "America/New_York"},
    )
    body = rsp.json()
    assert body["reading"] == "every Monday to Friday at 09:00", body
    assert len(body["next_runs"]) == 20
    for entry in body["next_runs"]:
        assert instant(entry["local"]) == instant(entry["utc"])
        assert entry["local"].endswith(("-05:00", "-04:00"))
        assert instant(entry["time"]).weekday() < 5

    past = "2001-01-01T00:00:00Z"
    future = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    body = daemon.get(
        "/preview-when.json", params={"when": f"at {past}, {future.isoformat()}"}
    ).json()
    assert body["ignored"] == [past]
    assert [instant(e["utc"]) for e in body["next_runs"]] == [future]
    assert body["reading"].startswith("once, on ")

    body = daemon.get("/preview-when.json", params={"when": "now"}).json()
    assert body["next_runs"] == [] and body["when"] == "now"


def test_preview_refuses_a_bad_spec_with_the_parsers_message(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    for bad in ("every 3 parsecs", "cron 0 25 * * *", "every day at 25:00", ""):
        rsp = daemon.get("/preview-when.json", params={"when": bad})
        assert rsp.status_code == 400, rsp.text
        same = daemon.post(
            "/schedule-job.json", data={"project": "toy", "spider": "items", "when": bad}
        )
        assert rsp.json() == same.json()
    rsp = daemon.get("/preview-when.json", params={"when": "cron 0 25 * * *"})
    assert "cron field 2 (hour) '25' is invalid" in rsp.json()["msg"]
    for params, needle in (
        ({"when": "every day", "count": "21"}, "'count' must be between 1 and 20"),
        ({"when": "every day", "count": "0"}, "'count' must be between 1 and 20"),
        ({"when": "every day", "timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"when": "every day", "timezone": "Europe"}, "unknown timezone"),
        ({"when": "every day", "timezone": "x" * 300}, "unknown timezone"),
        ({"when": "every day", "colour": "red"}, "Unknown parameter(s): colour"),
        ({}, "Missing argument: when"),
    ):
        rsp = daemon.get("/preview-when.json", params=params)
        assert rsp.status_code == 400 and needle in rsp.json()["msg"], (params, rsp.text)


# -- run now --------------------------------------------------------------------------------


def test_run_now_starts_one_run_of_the_schedule_and_not_two_at_once(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_daemon(slots=2)
    until = tmp_path / "go"
    parent = schedule(
        daemon, "every 1 hours", spider="sleepy", payload=f'{{"until_file": "{until}"}}'
    )
    next_run = daemon.job(parent)["next_run"]
    rsp = action(daemon, "/run-now.json", id=parent)
    assert rsp.status_code == 200, rsp.text
    run_id = rsp.json()["identifier"]
    assert rsp.json()["parent"] == parent
    run = daemon.wait_status(run_id, ("RUNNING",))
    assert run["parent"] == parent and run["actor"] == "USER" and run["spider"] == "sleepy"
    assert run["payload"] == daemon.job(parent)["payload"]

    again = action(daemon, "/run-now.json", id=parent)
    assert again.status_code == 409, again.text
    assert run_id in again.json()["msg"] and "still pending or running" in again.json()["msg"]
    job = daemon.job(parent)
    assert job["next_run"] == next_run  # the schedule's own fire times do not move
    assert job["last_run"]["identifier"] == run_id and job["last_run"]["status"] == "RUNNING"

    until.touch()
    daemon.wait_status(run_id, FINAL)
    second = action(daemon, "/run-now.json", id=parent)
    assert second.status_code == 200, second.text
    assert second.json()["identifier"] != run_id
    action(daemon, "/cancel-job.json", id=parent)


# -- re-run ---------------------------------------------------------------------------------


def test_rerun_makes_a_new_job_with_the_same_arguments(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(slots=1)
    first = daemon.schedule(
        "items",
        payload='{"colour": "blue"}',
        description="the original",
        max_runtime="120",
        setting="TOY_SETTING=from-job",
    )
    assert daemon.wait_status(first, FINAL)["status"] == "SUCCESSFUL"
    rsp = daemon.post("/rerun-job.json", json={"id": first})
    assert rsp.status_code == 200, rsp.text
    new_id = rsp.json()["identifier"]
    assert new_id != first and rsp.json()["rerun_of"] == first
    new = daemon.wait_status(new_id, FINAL)
    old = daemon.job(first)
    assert new["status"] == "SUCCESSFUL" and new["actor"] == "USER"
    for key in ("project", "spider", "payload", "description", "max_runtime", "settings"):
        assert new[key] == old[key], key
    assert f"re-run of job {first}" in texts(new)
    out = daemon.wait_log(new_id, "SETTING from-job")
    assert "blue" in out.split("ARGS", 1)[1].splitlines()[0]


def test_rerun_refuses_active_scheduled_and_unknown_jobs(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_daemon(slots=1)
    running = daemon.schedule("sleepy", payload=f'{{"until_file": "{tmp_path / "go"}"}}')
    daemon.wait_status(running, ("RUNNING",))
    rsp = action(daemon, "/rerun-job.json", id=running)
    assert rsp.status_code == 409 and "only a finished job can be re-run" in rsp.json()["msg"]
    parent = schedule(daemon, "every 1 hours")
    rsp = action(daemon, "/rerun-job.json", id=parent)
    assert rsp.status_code == 409 and "is a schedule" in rsp.json()["msg"]
    rsp = action(daemon, "/rerun-job.json", id="00000000-0000-4000-8000-000000000000")
    assert rsp.status_code == 404 and rsp.json()["msg"].startswith("Unknown job")
    (tmp_path / "go").touch()


# -- bulk cancel ----------------------------------------------------------------------------


def test_bulk_cancel_reports_each_id_and_one_bad_id_stops_nothing(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_daemon(slots=1)
    done = daemon.schedule("items")
    daemon.wait_status(done, FINAL)
    payload = f'{{"until_file": "{tmp_path / "never"}"}}'
    running = daemon.schedule("sleepy", payload=payload)
    daemon.wait_status(running, ("RUNNING",))
    pending = daemon.schedule("sleepy", payload=payload)  # the only slot is taken
    assert daemon.job(pending)["status"] == "PENDING"
    parent = schedule(daemon, "every 1 hours")
    unknown = "00000000-0000-4000-8000-000000000000"

    ids = [unknown, running, pending, done, running.upper(), parent]
    # one malformed id: nothing is canceled, the request is refused naming it
    rsp = daemon.post("/cancel-jobs.json", json={"ids": [*ids, "not-an-id"]})
    assert rsp.status_code == 400 and "'not-an-id': not a UUID" in rsp.json()["msg"]
    assert daemon.job(running)["status"] == "RUNNING"
    assert daemon.job(pending)["status"] == "PENDING"

    rsp = daemon.post("/cancel-jobs.json", json={"ids": ids})
    assert rsp.status_code == 200, rsp.text
    body = rsp.json()
    results = [(r["id"], r["result"], r["status"]) for r in body["results"]]
    assert results == [
        (unknown, "unknown", None),
        (running, "canceled", "CANCELED"),
        (pending, "canceled", "CANCELED"),
        (done, "not active", "SUCCESSFUL"),
        (parent, "canceled", "CANCELED"),
    ]
    assert body["counts"] == {
        "canceled": 3,
        "not active": 1,
        "unknown": 1,
        "error": 0,
    }
    for job_id in (running, pending, parent):
        assert daemon.job(job_id)["status"] == "CANCELED"

    # a form with id repeated works the same
    again = daemon.post("/cancel-jobs.json", data={"id": [running, unknown]})
    assert [r["result"] for r in again.json()["results"]] == ["not active", "unknown"]


def test_bulk_cancel_refuses_an_empty_or_oversized_request(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    rsp = daemon.post("/cancel-jobs.json", data={})
    assert rsp.status_code == 400 and "Missing argument: id" in rsp.json()["msg"]
    many = [f"00000000-0000-4000-8000-{n:012d}" for n in range(1001)]
    rsp = daemon.post("/cancel-jobs.json", json={"ids": many})
    assert rsp.status_code == 400 and "at most 1000 ids" in rsp.json()["msg"]
    rsp = daemon.post("/cancel-jobs.json", json={"ids": [1, 2]})
    assert rsp.status_code == 400 and "ids must be a list of strings" in rsp.json()["msg"]
    rsp = daemon.post("/cancel-jobs.json", data={"job": "x"})
    assert rsp.status_code == 400 and "Unknown parameter(s): job" in rsp.json()["msg"]
