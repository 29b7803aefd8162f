"""The scrapy-do REST API of the daemon over real HTTP, with real `scrapy crawl` children."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
import requests

from tests.daemon_support import (
    DaemonFactory,
    DaemonProcess,
    pid_alive,
    write_toy_project,
    zip_project,
)
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory) -> DaemonProcess:
    return start_module_daemon(slots=2)


def daemon_now(daemon: DaemonProcess) -> datetime:
    """The daemon's clock (status.json `time`, in its time zone: UTC here)."""
    return datetime.fromisoformat(daemon.get("/status.json").json()["time"]).replace(tzinfo=UTC)


# -- status ---------------------------------------------------------------------------


def test_status_has_scrapy_do_keys_and_real_figures(daemon: DaemonProcess) -> None:
    rsp = daemon.get("/status.json")
    assert rsp.status_code == 200
    assert rsp.headers["Content-Type"] == "application/json"
    body = rsp.json()
    assert body["status"] == "ok"
    for key in ("jobs-run", "jobs-successful", "jobs-failed", "jobs-canceled"):
        assert isinstance(body[key], int)
    # The daemon's own RSS in MiB (sampled at most once a second, so not to the byte).
    assert daemon.proc is not None
    rss = psutil.Process(daemon.proc.pid).memory_info().rss / 2**20
    assert abs(body["memory-usage"] - rss) < max(10, rss / 5), (body["memory-usage"], rss)
    assert isinstance(body["cpu-usage"], float)
    assert body["timezone"].startswith("UTC")
    assert body["hostname"]
    assert body["uptime"].endswith("s")
    assert body["slots"] == 2 and body["running"] >= 0 and body["pending"] >= 0
    assert isinstance(body["reactor-max-stall-ms"], int | float)
    assert body["reactor-max-stall-ms"] >= 0
    time.strptime(body["time"].split(".")[0], "%Y-%m-%d %H:%M:%S")


# -- projects -------------------------------------------------------------------------


def test_list_projects_and_spiders(daemon: DaemonProcess) -> None:
    assert "toy" in daemon.get("/list-projects.json").json()["projects"]
    rsp = daemon.get("/list-spiders.json", params={"project": "toy"})
    assert rsp.json() == {
        "status": "ok",
        "project": "toy",
        "spiders": ["fails", "items", "sleepy", "stubborn"],
    }
    rsp = daemon.get("/list-spiders.json", params={"project": "nope"})
    assert rsp.status_code == 404 and rsp.json()["status"] == "error"
    rsp = daemon.get("/list-spiders.json")
    assert rsp.status_code == 400 and "project" in rsp.json()["msg"]


def test_push_schedule_and_remove_project(daemon: DaemonProcess, tmp_path: Path) -> None:
    pushed = write_toy_project(tmp_path / "src", name="pushy")
    for top in ("pushy", None):  # scrapy-do-cl's layout, and scrapy.cfg at the root
        rsp = daemon.post("/push-project.json", files={"archive": zip_project(pushed, top)})
        assert rsp.status_code == 200, rsp.text
        assert rsp.json() == {
            "status": "ok",
            "name": "pushy",
            "spiders": ["fails", "items", "sleepy", "stubborn"],
            "name_from": "deploy",
            "replaced": top is None,
        }
    assert "pushy" in daemon.get("/list-projects.json").json()["projects"]
    job_id = daemon.schedule("items", project="pushy")
    assert daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"))["status"] == "SUCCESSFUL"
    # A project with an active job cannot be removed, nor lose that job's spider.
    running = daemon.schedule("sleepy", project="pushy")
    toys = pushed / "pushy" / "spiders" / "toys.py"
    toys.write_text(toys.read_text().replace('name = "sleepy"', 'name = "dozy"'))
    rsp = daemon.post("/push-project.json", files={"archive": zip_project(pushed, "pushy")})
    assert rsp.status_code == 409 and "sleepy" in rsp.json()["msg"], rsp.text
    rsp = daemon.post("/remove-project.json", data={"name": "pushy"})
    assert rsp.status_code == 409 and "cancel them first" in rsp.json()["msg"]
    assert daemon.post("/cancel-job.json", data={"id": running}).status_code == 200
    rsp = daemon.post("/remove-project.json", data={"name": "pushy"})
    assert rsp.json() == {"status": "ok"}
    assert "pushy" not in daemon.get("/list-projects.json").json()["projects"]
    # Its finished job keeps its log.
    assert "START" in daemon.get(f"/get-log/data/{job_id}.out").text
    rsp = daemon.post("/remove-project.json", data={"name": "pushy"})
    assert rsp.status_code == 404
    rsp = daemon.post("/push-project.json", files={"archive": b"not a zip"})
    assert rsp.status_code == 400 and rsp.json()["status"] == "error"
    rsp = daemon.post("/push-project.json", data={})
    assert rsp.status_code == 400 and "archive" in rsp.json()["msg"]


def test_upload_over_cap_is_413(daemon: DaemonProcess) -> None:
    rsp = daemon.post("/push-project.json", files={"archive": b"x" * 2_500_000})
    assert rsp.status_code == 413
    assert rsp.json()["status"] == "error" and "cap" in rsp.json()["msg"]


# -- jobs -----------------------------------------------------------------------------


def test_job_runs_with_payload_settings_and_description(daemon: DaemonProcess) -> None:
    payload = {"coins": ["BTC", "ÉTH"], "n": 2}
    job_id = daemon.schedule(
        "items",
        payload=json.dumps(payload),
        description="a test",
        setting=["TOY_SETTING=from-job", "LOG_LEVEL=DEBUG"],
    )
    uuid.UUID(job_id)
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"))
    assert job["status"] == "SUCCESSFUL", job
    assert job["exit_code"] == 0 and job["reason"] is None
    assert job["actor"] == "USER" and job["schedule"] == "now"
    assert job["description"] == "a test"
    assert json.loads(job["payload"]) == payload
    assert job["settings"] == ["LOG_LEVEL", "TOY_SETTING"]
    assert isinstance(job["duration"], int)
    assert job["created"] <= job["started"] <= job["finished"]
    out = daemon.get(f"/get-log/data/{job_id}.out").text
    assert f"START {job_id}" in out
    assert "ARGS " + json.dumps(json.dumps(payload, ensure_ascii=False)) in out
    assert "SETTING from-job" in out
    assert "SECRET None" in out
    err = daemon.get(f"/get-log/data/{job_id}.err").text
    assert "DEBUG" in err and "REMOTE_CONTROL_ENABLED" not in err.split("Overridden settings")[0]


def test_project_settings_from_config_reach_the_crawl(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("items")
    daemon.wait_status(job_id, ("SUCCESSFUL",))
    assert "SETTING from-config" in daemon.get(f"/get-log/data/{job_id}.out").text


def test_failing_crawl_is_failed_with_exit_code(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("fails")
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"))
    assert job["status"] == "FAILED"
    assert job["exit_code"] == 3 and "exit code 3" in job["reason"]
    status = daemon.get("/status.json").json()
    assert status["jobs-failed"] >= 1 and status["jobs-run"] >= 1


def test_dispatch_is_immediate(daemon: DaemonProcess) -> None:
    """A job scheduled into a free slot is started before schedule-job answers (no poll
    tick): it is never seen PENDING."""
    job_id = daemon.schedule("items")
    assert daemon.job(job_id)["status"] != "PENDING"
    assert daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"))["status"] == "SUCCESSFUL"


def test_cancel_running_and_pending_jobs(daemon: DaemonProcess) -> None:
    first = daemon.schedule("sleepy", payload=json.dumps({}))
    second = daemon.schedule("sleepy")
    third = daemon.schedule("sleepy")  # two slots: this one waits
    daemon.wait_log(first, "START")
    daemon.wait_log(second, "START")
    assert daemon.job(third)["status"] == "PENDING"
    active = daemon.get("/list-jobs.json", params={"status": "active"}).json()["jobs"]
    assert {first, second, third} <= {j["identifier"] for j in active}
    assert daemon.post("/cancel-job.json", data={"id": third}).json() == {"status": "ok"}
    assert daemon.job(third)["status"] == "CANCELED"
    assert daemon.post("/cancel-job.json", data={"id": first}).json() == {"status": "ok"}
    job = daemon.job(first)
    # Stopped by its SIGTERM (Scrapy closed it), not SIGKILLed after the grace period.
    assert job["status"] == "CANCELED" and job["reason"] == "canceled", job
    assert "CLOSED shutdown" in daemon.get(f"/get-log/data/{first}.out").text
    rsp = daemon.post("/cancel-job.json", data={"id": first})
    assert rsp.status_code == 400 and rsp.json()["msg"] == f"Job {first} is not active"
    daemon.post("/cancel-job.json", data={"id": second})
    assert daemon.job(second)["status"] == "CANCELED"
    # Cancelled at once, maybe before the crawl's setsid(): SIGTERM still reaches it.
    early = daemon.schedule("sleepy")
    assert daemon.post("/cancel-job.json", data={"id": early}).json() == {"status": "ok"}
    job = daemon.job(early)
    assert job["status"] == "CANCELED" and job["reason"] == "canceled", job
    assert job["exit_code"] != -signal.SIGKILL


def test_cancel_kills_the_whole_group_after_grace(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("stubborn")
    out = daemon.wait_log(job_id, "CHILD")
    child = int(out.split("CHILD")[1].split()[0])
    assert pid_alive(child)
    crawl = next(
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if f"JOB_ID={job_id}" in (p.info["cmdline"] or ())
    )
    rsp = daemon.post("/cancel-job.json", data={"id": job_id})
    assert rsp.json() == {"status": "ok"}
    assert not pid_alive(crawl)  # the reply waited for the crawl's end
    job = daemon.job(job_id)
    assert job["status"] == "CANCELED" and "killed after the grace period" in job["reason"]
    assert job["exit_code"] == -9
    wait_until(lambda: not pid_alive(child), 3, f"the crawl's child {child} to be killed")
    assert daemon.get("/status.json").json()["running"] == 0


def test_crawl_killed_by_a_signal_is_failed_with_the_signal(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("sleepy")
    daemon.wait_log(job_id, "START")
    pid = next(
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if f"JOB_ID={job_id}" in (p.info["cmdline"] or ())
    )
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    job = daemon.wait_status(job_id, ("FAILED", "SUCCESSFUL", "CANCELED"))
    assert job["status"] == "FAILED" and "SIGKILL" in job["reason"]
    assert job["exit_code"] == -9


def test_max_runtime_fails_the_job(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("sleepy", max_runtime="1")
    job = daemon.wait_status(job_id, ("FAILED", "SUCCESSFUL", "CANCELED"), timeout=20)
    assert job["status"] == "FAILED" and "max_runtime" in job["reason"]


def test_list_jobs_filters_paging_and_errors(daemon: DaemonProcess) -> None:
    failed = daemon.schedule("fails")  # this test needs no other test to run first
    daemon.wait_status(failed, ("FAILED",))
    ids = [daemon.schedule("items", description=f"page {i}") for i in range(3)]
    for job_id in ids:
        daemon.wait_status(job_id, ("SUCCESSFUL",))
    page = daemon.get("/list-jobs.json", params={"status": "successful", "limit": 2}).json()
    assert [j["identifier"] for j in page["jobs"]] == ids[::-1][:2]  # newest first
    page = daemon.get(
        "/list-jobs.json", params={"status": "SUCCESSFUL", "limit": 1, "offset": 2}
    ).json()
    assert [j["identifier"] for j in page["jobs"]] == [ids[0]]
    completed = daemon.get("/list-jobs.json", params={"status": "Completed"}).json()["jobs"]
    assert set(ids) <= {j["identifier"] for j in completed}
    assert all(j["status"] in ("SUCCESSFUL", "FAILED", "CANCELED") for j in completed)
    by_spider = daemon.get(
        "/list-jobs.json", params={"status": "COMPLETED", "spider": "fails"}
    ).json()["jobs"]
    assert by_spider and all(j["spider"] == "fails" for j in by_spider)
    none = daemon.get(
        "/list-jobs.json", params={"status": "COMPLETED", "project": "toy", "spider": "x"}
    )
    assert none.json()["jobs"] == []
    keys = set(daemon.job(ids[0]))
    assert {
        "identifier", "status", "actor", "schedule", "project", "spider", "description",
        "timestamp", "duration", "payload", "created", "started", "finished", "exit_code",
        "parent",
    } <= keys  # fmt: skip
    for params, code in [
        ({}, 400),
        ({"status": "SLEEPING"}, 400),
        ({"id": "not-a-uuid"}, 400),
        ({"id": str(uuid.uuid4())}, 404),
        ({"status": "ACTIVE", "limit": "-1"}, 400),
        ({"status": "ACTIVE", "limit": "x"}, 400),
    ]:
        rsp = daemon.get("/list-jobs.json", params=params)
        assert rsp.status_code == code, (params, rsp.text)
        assert rsp.json()["status"] == "error" and rsp.json()["msg"]


def test_get_log_text_range_and_refusals(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("items")
    daemon.wait_status(job_id, ("SUCCESSFUL",))
    rsp = daemon.get(f"/get-log/data/{job_id}.err")
    assert rsp.status_code == 200 and rsp.headers["Content-Type"].startswith("text/plain")
    assert "Spider closed" in rsp.text
    part = daemon.get(f"/get-log/data/{job_id}.err", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == rsp.content[:10]
    for path in [
        f"/get-log/data/{uuid.uuid4()}.out",
        f"/get-log/data/{job_id}.log",
        "/get-log/data/..%2F..%2Fdaemon.sqlite",
        "/get-log/data/%2e%2e/daemon.sqlite",
        "/get-log/data/../../config.yaml",
        f"/get-log/data/{job_id}.out%00",
        "/get-log/data/%2Fetc%2Fpasswd",
    ]:
        rsp = requests.get(daemon.url + path, timeout=10)
        assert rsp.status_code == 404, path
        assert rsp.json()["status"] == "error"


def test_schedule_job_refusals(daemon: DaemonProcess) -> None:
    base = {"project": "toy", "spider": "items", "when": "now"}
    cases = [
        ({**base, "project": "nope"}, 404, "Unknown project"),
        ({**base, "spider": "nope"}, 400, "Unknown spider"),
        ({**base, "payload": "{not json"}, 400, "not a valid JSON"),
        ({**base, "payload": "[1, 2]"}, 400, "JSON object"),
        ({**base, "payload": json.dumps({"x": "y" * 70000})}, 400, "longer than"),
        ({**base, "setting": "NOEQUALS"}, 400, "KEY=VALUE"),
        ({**base, "setting": "JOB_ID=x"}, 400, "set by the daemon"),
        ({**base, "max_runtime": "soon"}, 400, "max_runtime"),
        ({**base, "when": ""}, 400, "when"),
        ({"project": "toy", "spider": "items"}, 400, "Missing argument: when"),
    ]
    for data, code, words in cases:
        rsp = daemon.post("/schedule-job.json", data=data)
        assert rsp.status_code == code, (data, rsp.text)
        assert rsp.json()["status"] == "error" and words in rsp.json()["msg"], rsp.text
    rsp = daemon.post(
        "/schedule-job.json",
        data=b"project=toy&spider=items&when=now&description=%ff%fe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert rsp.status_code == 400 and "UTF-8" in rsp.json()["msg"]
    rsp = daemon.post("/schedule-job.json", data=[*base.items(), ("spider", "fails")])
    assert rsp.status_code == 400 and "more than once" in rsp.json()["msg"]
    rsp = daemon.post("/cancel-job.json", data={"id": "../etc"})
    assert rsp.status_code == 400
    rsp = daemon.post("/cancel-job.json", data={"id": str(uuid.uuid4())})
    assert rsp.status_code == 404


def test_wrong_method_and_unknown_path(daemon: DaemonProcess) -> None:
    for method, path in [
        ("POST", "/status.json"),
        ("GET", "/schedule-job.json"),
        ("GET", "/cancel-job.json"),
        ("DELETE", "/list-jobs.json"),
        ("PUT", "/push-project.json"),
    ]:
        rsp = requests.request(method, daemon.url + path, timeout=10)
        assert rsp.status_code == 405, (method, path)
        assert rsp.json()["status"] == "error"
    rsp = daemon.get("/no-such-thing.json")
    assert rsp.status_code == 404 and rsp.json() == {
        "status": "error",
        "msg": "Not found: /no-such-thing.json",
    }


def test_bad_bodies_get_json_errors(daemon: DaemonProcess) -> None:
    rsp = daemon.get("/get-log/data/%ff%fe.out")
    assert rsp.status_code == 400 and "UTF-8" in rsp.json()["msg"]
    rsp = daemon.post(
        "/schedule-job.json",
        data=b"garbage without boundary",
        headers={"Content-Type": "multipart/form-data"},
    )
    assert rsp.status_code == 400 and rsp.json()["status"] == "error"
    # A big urlencoded body (as scrapy-do-cl sends archives) is parsed off the reactor:
    # the daemon keeps answering meanwhile, and the field arrives whole.
    big = {"archive": b"\x00\xff" * 300_000}
    rsp = daemon.post("/push-project.json", data=big)
    assert rsp.status_code == 400 and "zip" in rsp.json()["msg"].lower(), rsp.text


def test_recurring_job_spawns_runs_until_cancelled(daemon: DaemonProcess) -> None:
    rsp = daemon.post(
        "/schedule-job.json",
        data={"project": "toy", "spider": "items", "when": "every 1 second", "payload": '{"a": 1}'},
    )
    assert rsp.status_code == 200, rsp.text
    parent = rsp.json()["identifier"]
    job = daemon.job(parent)
    assert job["status"] == "SCHEDULED" and job["schedule"] == "every 1 second"
    assert job["next_run"] is not None

    def completed_runs() -> list[dict]:
        done = daemon.get("/list-jobs.json", params={"status": "COMPLETED"}).json()["jobs"]
        return [j for j in done if j["parent"] == parent]

    runs = wait_until(
        completed_runs, 20, "two completed runs", until=lambda r: len(r) >= 2, interval=0.2
    )
    assert all(r["actor"] == "SCHEDULER" and r["schedule"] == "now" for r in runs)
    assert all(json.loads(r["payload"]) == {"a": 1} for r in runs)
    assert daemon.job(parent)["last_fire"] is not None
    next_run = datetime.fromisoformat(daemon.job(parent)["next_run"])
    assert daemon.post("/cancel-job.json", data={"id": parent}).json() == {"status": "ok"}
    assert daemon.job(parent)["status"] == "CANCELED"
    settled = daemon.get("/list-jobs.json", params={"status": "ACTIVE"}).json()["jobs"]
    before = {j["identifier"] for j in settled if j["parent"] == parent}
    # Wait until the daemon's clock is past the next two fire times, then look.
    wait_until(
        lambda: daemon_now(daemon),
        30,
        "the daemon's clock to pass the next two fire times",
        until=lambda now: now >= next_run + timedelta(seconds=1.2),
        interval=0.1,
    )
    everything = daemon.get("/list-jobs.json", params={"status": "PENDING"}).json()["jobs"]
    assert not [j for j in everything if j["parent"] == parent and j["identifier"] not in before]
    for spec, words in [("every 0 minutes", "0"), ("every 10 fortnights", "fortnight"),
                        ("cron 61 * * * *", "61")]:  # fmt: skip
        rsp = daemon.post(
            "/schedule-job.json", data={"project": "toy", "spider": "items", "when": spec}
        )
        assert rsp.status_code == 400 and words in rsp.json()["msg"], rsp.text


def test_get_log_follow_streams_until_the_job_ends(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("sleepy", payload='{"seconds": 1.5}')
    daemon.wait_log(job_id, "START")
    rsp = daemon.get(f"/get-log/data/{job_id}.out", params={"follow": "1"})
    assert rsp.status_code == 200
    assert "START" in rsp.text and "CLOSED finished" in rsp.text  # written after we asked
    assert daemon.job(job_id)["status"] == "SUCCESSFUL"
    tail = daemon.get(f"/get-log/data/{job_id}.out", params={"follow": "1", "offset": "6"})
    assert tail.text == rsp.text[6:]  # a finished job: the rest, then the end


def _read_position(pid: int, path: Path) -> int | None:
    """Where process `pid` has read `path` to (its open handle's offset), None if closed."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if Path(os.readlink(fd)) == path:
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
                return int(info.split("pos:")[1].split()[0])
        except OSError:
            continue
    return None


def test_get_log_follow_waits_for_a_client_that_does_not_read(daemon: DaemonProcess) -> None:
    """Follow mode reads the log only as fast as the client takes it: with a client that
    reads nothing, the daemon stops reading once the connection's buffers are full."""
    job_id = daemon.schedule("items")
    daemon.wait_status(job_id, ("SUCCESSFUL",))
    log = (daemon.workdir / "data" / "logs" / f"{job_id}.out").resolve()
    size = 32 * 1024 * 1024
    with log.open("ab") as fh:
        fh.write(b"x" * size)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", daemon.port))
    try:
        request = f"GET /get-log/data/{job_id}.out?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        client.sendall(request.encode())
        assert daemon.proc is not None
        seen: list[int | None] = []

        def positions() -> list[int | None]:
            seen.append(_read_position(daemon.proc.pid, log))
            return seen[-8:]

        # Wait until the read position stands still over 8 polls (4 follow ticks)...
        wait_until(
            positions,
            30,
            "the daemon's read position in the log to stand still",
            until=lambda last: len(last) == 8 and len(set(last)) == 1,
            interval=0.15,
        )
        # ...well before the end of the file: the rest waits for the client.
        assert seen[-1] is not None and 0 < seen[-1] < size // 2, seen[-1]
    finally:
        client.close()
