"""Retries over real HTTP against a real daemon: a failed job runs again under the same
id, each attempt with its own log and stats, until it succeeds or its retries run out;
cancel and max_runtime are never retried; a retry's wait survives a restart."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.daemon_support import TOY_SPIDERS, DaemonFactory, DaemonProcess, write_scrapy_project
from tests.waiting import wait_until
from tests.webhook_receiver import running_receiver

FLAKY = """
import json
import os
from pathlib import Path

import scrapy


class Flaky(scrapy.Spider):
    # Fails (exit 3) in its first `fail` attempts, counted in the file `counter`.
    name = "flaky"

    async def start(self):
        args = json.loads(getattr(self, "payload", "{}"))
        counter = Path(args["counter"])
        n = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(n))
        print("ATTEMPT", n, flush=True)
        if n <= int(args.get("fail", 0)):
            os._exit(3)
        yield {"attempt": n}
"""


def projects_with(**toy: Any) -> Any:
    def make(work: Path) -> dict[str, dict[str, Any]]:
        folder = write_scrapy_project(
            work / "toy", "toy", {"toys.py": TOY_SPIDERS, "flaky.py": FLAKY}
        )
        return {"toy": {"path": str(folder), **toy}}

    return make


def flaky(daemon: DaemonProcess, tmp: Path, fail: int, **fields: Any) -> str:
    payload = json.dumps({"counter": str(tmp / "counter"), "fail": fail})
    return daemon.schedule("flaky", payload=payload, **fields)


def log_of(daemon: DaemonProcess, job_id: str, **params: Any) -> Any:
    return daemon.get(f"/get-log/data/{job_id}.out", params=params)


def test_a_spider_that_fails_twice_then_succeeds_runs_three_attempts(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_daemon(projects_with())
    job_id = flaky(daemon, tmp_path, fail=2, retries=2, retry_delay=0.2)
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), timeout=120)
    assert job["status"] == "SUCCESSFUL", job
    assert (tmp_path / "counter").read_text() == "3"
    assert job["attempt"] == 3 and job["retries"] == 2 and job["next_attempt_at"] is None
    attempts = job["attempts"]
    assert [(a["n"], a["status"], a["exit_code"]) for a in attempts] == [
        (1, "FAILED", 3),
        (2, "FAILED", 3),
        (3, "SUCCESSFUL", 0),
    ]
    assert attempts[2]["stats"]["item_scraped_count"] == 1
    assert all(a["started"] and a["finished"] for a in attempts)
    # Three logs: the last attempt's by default, the earlier ones by attempt=.
    assert "ATTEMPT 3" in log_of(daemon, job_id).text
    for n in (1, 2, 3):
        rsp = log_of(daemon, job_id, attempt=n)
        assert rsp.status_code == 200 and f"ATTEMPT {n}" in rsp.text, (n, rsp.text)
        assert f"ATTEMPT {n + 1}" not in rsp.text
    assert log_of(daemon, job_id, attempt=4).status_code == 404
    texts = [e["text"] for e in job["events"]]
    assert any(t.startswith("attempt 1 of 3 failed (exit code 3") for t in texts), texts
    assert any(t.startswith("attempt 2 of 3 failed") for t in texts), texts
    status = daemon.get("/status.json").json()
    assert status["jobs-run"] == 1 and status["jobs-successful"] == 1
    assert status["jobs-failed"] == 0  # a failed attempt is not a failed job


def test_a_job_is_failed_when_its_retries_are_exhausted(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_daemon(projects_with())
    job_id = flaky(daemon, tmp_path, fail=9, retries=1)
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), timeout=90)
    assert job["status"] == "FAILED" and job["attempt"] == 2
    assert [(a["n"], a["status"]) for a in job["attempts"]] == [(1, "FAILED"), (2, "FAILED")]
    assert job["reason"].startswith("exit code 3")
    assert (tmp_path / "counter").read_text() == "2"


def test_cancel_and_max_runtime_are_never_retried(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(projects_with())
    canceled = daemon.schedule("sleepy", payload='{"seconds": 60}', retries=3)
    daemon.wait_log(canceled, "START", timeout=60)
    assert daemon.post("/cancel-job.json", data={"id": canceled}).status_code == 200
    job = daemon.wait_status(canceled, ("CANCELED",), timeout=30)
    timed_out = daemon.schedule("sleepy", payload='{"seconds": 60}', retries=3, max_runtime=1)
    ended = daemon.wait_status(timed_out, ("FAILED", "SUCCESSFUL"), timeout=60)
    assert ended["reason"] == "stopped: exceeded its max_runtime"
    # Neither goes back to PENDING for another attempt.
    for job_id in (canceled, timed_out):
        job = daemon.job(job_id)
        assert job["status"] in ("CANCELED", "FAILED") and job["attempt"] == 1, job
        assert [a["n"] for a in job["attempts"]] == [1]


def test_bad_retry_values_are_refused(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(projects_with())
    for fields, needle in (
        ({"retries": "11"}, "retries must be a whole number from 0 to 10"),
        ({"retries": "-1"}, "retries must be a whole number from 0 to 10"),
        ({"retries": "two"}, "retries must be a whole number from 0 to 10"),
        ({"retry_delay": "7200"}, "retry_delay must be between 0 and 3600 seconds"),
        ({"retry_delay": "soon"}, "retry_delay must be a number of seconds"),
    ):
        data = {"project": "toy", "spider": "items", "when": "now", **fields}
        rsp = daemon.post("/schedule-job.json", data=data)
        assert rsp.status_code == 400 and needle in rsp.json()["msg"], (fields, rsp.text)


def test_the_retry_wait_survives_a_restart_with_the_project_default(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """retries and retry_delay come from config.yaml's project section; the daemon goes
    down while the job waits for its second attempt, and the new daemon runs it when due."""
    daemon = start_daemon(projects_with(retries=1, retry_delay=6))
    job_id = flaky(daemon, tmp_path, fail=1)
    waiting = wait_until(
        lambda: daemon.job(job_id),
        90,
        "the job to wait for its second attempt",
        until=lambda j: j["status"] == "PENDING" and j["attempt"] == 2,
    )
    assert waiting["retries"] == 1 and waiting["next_attempt_at"] is not None
    assert [a["status"] for a in waiting["attempts"]] == ["FAILED"]
    daemon.stop(signal.SIGTERM)
    daemon = start_daemon.restart(daemon)
    again = daemon.job(job_id)
    assert again["status"] == "PENDING" and again["attempt"] == 2
    assert again["next_attempt_at"] == waiting["next_attempt_at"]
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), timeout=90)
    assert job["status"] == "SUCCESSFUL" and job["attempt"] == 2
    # It did not start before its due time.
    due = datetime.fromisoformat(waiting["next_attempt_at"])
    assert datetime.fromisoformat(job["attempts"][1]["started"]) >= due
    assert time.time() >= due.timestamp()


def test_webhooks_hear_each_attempt_start_and_only_the_final_end(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """A failed attempt that retries is not an end: no job.failed or job.finished for
    it; job.started comes per attempt; a job that fails for good sends job.failed once."""
    events = ["job.started", "job.finished", "job.failed"]
    with running_receiver() as receiver:
        daemon = start_daemon(projects_with(), webhooks=[{"url": receiver.url, "events": events}])
        recovers = flaky(daemon, tmp_path, fail=1, retries=1)
        daemon.wait_status(recovers, ("SUCCESSFUL", "FAILED"), timeout=90)
        (tmp_path / "sub").mkdir()
        gives_up = flaky(daemon, tmp_path / "sub", fail=9, retries=1)
        daemon.wait_status(gives_up, ("SUCCESSFUL", "FAILED"), timeout=90)

        def heard(job_id: str) -> list[tuple[str, str, int]]:
            return [
                (r.json["event"], r.json["job"]["status"], r.json["job"]["attempt"])
                for r in receiver.accepted()
                if r.json["job"]["identifier"] == job_id
            ]

        wait_until(lambda: heard(gives_up), 60, "the webhooks", until=lambda h: len(h) >= 4)
        assert heard(recovers) == [
            ("job.started", "RUNNING", 1),
            ("job.started", "RUNNING", 2),
            ("job.finished", "SUCCESSFUL", 2),
        ]
        assert heard(gives_up) == [
            ("job.started", "RUNNING", 1),
            ("job.started", "RUNNING", 2),
            ("job.finished", "FAILED", 2),
            ("job.failed", "FAILED", 2),
        ]
