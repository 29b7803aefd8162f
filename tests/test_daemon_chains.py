"""Job chains over real HTTP against a real daemon: a job scheduled `after` another waits
(PENDING, `waiting_for` shown) until that job ends as `on` asks, then runs, or is
canceled with the reason; a chain survives a restart; bad links are refused."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

from tests.daemon_support import DaemonFactory
from tests.waiting import wait_until


def test_a_chain_across_a_restart_runs_b_on_success_and_cancels_c(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_daemon()
    go = tmp_path / "go"
    a = daemon.schedule("sleepy", payload=json.dumps({"until_file": str(go)}))
    b = daemon.schedule("items", after=a)  # on=success by default
    c = daemon.schedule("items", after=a, on="failure")
    daemon.wait_log(a, "START", timeout=60)
    for job_id, on in ((b, "success"), (c, "failure")):
        job = daemon.job(job_id)
        assert job["status"] == "PENDING" and job["waiting_for"] == a, job
        assert job["after"] == a and job["on"] == on and job["started"] is None
    # Down hard (the crawl lives on); A ends while no daemon watches it.
    daemon.stop(signal.SIGKILL)
    go.touch()
    manifest = daemon.workdir / "data" / a / "job.json"
    wait_until(manifest.exists, 60, "A to finish while the daemon is down")
    daemon = start_daemon.restart(daemon)
    assert daemon.wait_status(a, ("SUCCESSFUL", "FAILED"), 60)["status"] == "SUCCESSFUL"
    job_b = daemon.wait_status(b, ("SUCCESSFUL", "FAILED", "CANCELED"), 90)
    assert job_b["status"] == "SUCCESSFUL" and job_b["waiting_for"] is None
    job_c = daemon.wait_status(c, ("SUCCESSFUL", "FAILED", "CANCELED"), 30)
    assert job_c["status"] == "CANCELED" and job_c["started"] is None
    assert job_c["reason"] == f"job {a} ended SUCCESSFUL; this job waited for failure"
    assert job_c["waiting_for"] is None


def test_a_failure_releases_its_waiter_and_always_runs_after_either(
    start_daemon: DaemonFactory,
) -> None:
    daemon = start_daemon()
    a = daemon.schedule("fails")
    wait_until(lambda: daemon.job(a)["status"] != "PENDING", 60, "A to start")
    on_success = daemon.schedule("items", after=a)
    on_failure = daemon.schedule("items", after=a, on="failure")
    always = daemon.schedule("items", after=a, on="always")
    assert daemon.wait_status(a, ("FAILED",), 60)
    assert daemon.wait_status(on_failure, ("SUCCESSFUL",), 60)
    assert daemon.wait_status(always, ("SUCCESSFUL",), 60)
    job = daemon.wait_status(on_success, ("CANCELED",), 30)
    assert job["reason"] == f"job {a} ended FAILED; this job waited for success"
    # A chain after a job already ended is settled at once.
    late = daemon.schedule("items", after=a, on="failure")
    assert daemon.wait_status(late, ("SUCCESSFUL",), 60)


def test_a_waiting_job_can_be_canceled_and_its_own_waiters_follow(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_daemon()
    a = daemon.schedule("sleepy", payload=json.dumps({"until_file": str(tmp_path / "go")}))
    b = daemon.schedule("items", after=a)
    c = daemon.schedule("items", after=b, on="always")
    d = daemon.schedule("items", after=b)
    assert daemon.post("/cancel-job.json", data={"id": b}).status_code == 200
    assert daemon.wait_status(b, ("CANCELED",), 30)["reason"] == "canceled before it started"
    assert daemon.wait_status(c, ("SUCCESSFUL",), 60)
    job_d = daemon.wait_status(d, ("CANCELED",), 30)
    assert job_d["reason"] == f"job {b} ended CANCELED; this job waited for success"
    assert daemon.job(a)["status"] in ("PENDING", "RUNNING")  # untouched
    (tmp_path / "go").touch()


def test_bad_links_are_refused(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon()
    a = daemon.schedule("items")
    cases = (
        ({"after": str(uuid.uuid4())}, 404, "Unknown job"),
        ({"after": "not-an-id"}, 400, "not a UUID"),
        ({"after": a, "on": "sometimes"}, 400, "on must be one of"),
        ({"after": a, "when": "every 5 minutes"}, 400, "when=now only"),
    )
    for fields, code, needle in cases:
        data = {"project": "toy", "spider": "items", "when": "now", **fields}
        rsp = daemon.post("/schedule-job.json", data=data)
        assert rsp.status_code == code and needle in rsp.json()["msg"], (fields, rsp.text)


def test_a_job_after_a_schedule_waits_for_its_next_run_to_end(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_daemon()
    go = tmp_path / "go"
    rsp = daemon.post(
        "/schedule-job.json",
        data={
            "project": "toy",
            "spider": "sleepy",
            "when": "every 1 hour",
            "payload": json.dumps({"until_file": str(go)}),
        },
    )
    schedule = rsp.json()["identifier"]
    run = daemon.post("/run-now.json", data={"id": schedule}).json()["identifier"]
    daemon.wait_log(run, "START", timeout=60)
    waiter = daemon.schedule("items", after=schedule)
    assert daemon.job(waiter)["waiting_for"] == schedule
    go.touch()
    assert daemon.wait_status(run, ("SUCCESSFUL",), 60)
    job = daemon.wait_status(waiter, ("SUCCESSFUL", "CANCELED", "FAILED"), 60)
    assert job["status"] == "SUCCESSFUL" and job["after"] == schedule
    texts = [e["text"] for e in job["events"]]
    assert f"job {run} ended SUCCESSFUL: released (success)" in texts, texts
