"""Crash safety: kill -9 of the daemon, crawls that outlive it or die meanwhile, and a
graceful stop — every job ends truthfully, none runs twice, no log is cut short."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from twisted.internet.task import Clock

from daemon.config import LocalProject
from daemon.domain import PENDING, RUNNING, USER
from daemon.events import EventBus
from daemon.executor import LeftRunning
from daemon.job_store import Job, Store
from daemon.jobs import JobsService
from daemon.launcher import Crawl, Launcher, Outcome, process_start_time
from daemon.local_executor import LocalExecutor
from daemon.local_handle import format_handle, parse_handle
from daemon.projects import ProjectStore
from daemon.recovery import left_running, time_left
from tests.daemon_support import DaemonFactory, pid_alive, write_toy_project
from tests.waiting import wait_until


def crawl_pid(job_id: str) -> int:
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if f"JOB_ID={job_id}" in (proc.info["cmdline"] or ()):
            return proc.info["pid"]
    raise AssertionError(f"no crawl process for {job_id}")


def test_kill_9_restart_follows_live_crawl_and_runs_pending_once(
    start_daemon: DaemonFactory,
) -> None:
    first = start_daemon(slots=1)
    gate = first.workdir / "gate"
    running = first.schedule("sleepy", payload=json.dumps({"until_file": str(gate)}))
    first.wait_log(running, "START")
    pending = first.schedule("items")
    assert first.job(pending)["status"] == "PENDING"  # one slot
    hourly = first.schedule("items", when="every 1 hour")
    next_run = first.job(hourly)["next_run"]
    pid = crawl_pid(running)
    first.stop(signal.SIGKILL)
    assert pid_alive(pid)  # its own session: the crawl outlives the daemon
    wal = first.workdir / "data" / "daemon.sqlite-wal"
    assert wal.stat().st_size > 0  # restarted below with the WAL not yet merged

    second = start_daemon.restart(first)
    job = second.job(running)
    assert job["status"] == "RUNNING"  # followed, not restarted, not failed
    assert second.job(pending)["status"] == "PENDING"  # the slot is still taken
    resumed = second.job(hourly)
    assert resumed["status"] == "SCHEDULED" and resumed["next_run"] == next_run
    gate.touch()  # now the followed crawl may finish
    job = second.wait_status(running, ("SUCCESSFUL", "FAILED"), timeout=20)
    assert job["status"] == "SUCCESSFUL", job
    assert "restarted" in job["reason"]
    out = second.get(f"/get-log/data/{running}.out").text
    assert out.count("START") == 1 and "CLOSED finished" in out  # log written to the end
    job = second.wait_status(pending, ("SUCCESSFUL", "FAILED"), timeout=20)
    assert job["status"] == "SUCCESSFUL"
    assert second.get(f"/get-log/data/{pending}.out").text.count(f"START {pending}") == 1


def _back_to_pid_columns(db: Path) -> None:
    """Rewrite a killed daemon's store as the daemon before the executor seam kept it:
    bare `pid`/`proc_start` columns, no `handle`/`node`."""
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE jobs ADD COLUMN pid INTEGER")
    conn.execute("ALTER TABLE jobs ADD COLUMN proc_start REAL")
    for job_id, handle in conn.execute("SELECT id, handle FROM jobs").fetchall():
        found = parse_handle(handle)
        if found is not None:
            conn.execute("UPDATE jobs SET pid = ?, proc_start = ? WHERE id = ?", (*found, job_id))
    conn.execute("ALTER TABLE jobs DROP COLUMN handle")
    conn.execute("ALTER TABLE jobs DROP COLUMN node")
    conn.commit()
    conn.close()


def test_a_store_with_pid_columns_is_migrated_and_its_running_crawl_reattached(
    start_daemon: DaemonFactory,
) -> None:
    first = start_daemon(slots=1, scrapyd={"enabled": True})
    done = first.schedule("items")
    first.wait_status(done, ("SUCCESSFUL",))
    gate = first.workdir / "gate"
    running = first.schedule("sleepy", payload=json.dumps({"until_file": str(gate)}))
    first.wait_log(running, "START")
    pid = crawl_pid(running)
    first.stop(signal.SIGKILL)
    _back_to_pid_columns(first.workdir / "data" / "daemon.sqlite")

    second = start_daemon.restart(first)
    job = second.job(running)
    assert job["status"] == "RUNNING" and job["node"] == "local", job  # followed
    assert second.job(done)["node"] == "local"  # an old run ran on this machine
    listed = second.get("/list-jobs.json", params={"status": "RUNNING"}).json()["jobs"]
    assert [(j["identifier"], j["node"]) for j in listed] == [(running, "local")]
    scrapyd = second.get("/scrapyd/listjobs.json", params={"project": "toy"}).json()
    assert [(j["id"], j["pid"]) for j in scrapyd["running"]] == [(running, pid)]
    gate.touch()
    job = second.wait_status(running, ("SUCCESSFUL", "FAILED"), timeout=30)
    assert job["status"] == "SUCCESSFUL" and "restarted" in job["reason"], job
    assert not pid_alive(pid)


def test_crawl_that_died_while_daemon_was_down_is_failed(start_daemon: DaemonFactory) -> None:
    first = start_daemon(slots=1)
    job_id = first.schedule("sleepy")
    first.wait_log(job_id, "START")
    pid = crawl_pid(job_id)
    first.stop(signal.SIGKILL)
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 5, f"the killed crawl {pid} to be gone")
    second = start_daemon.restart(first)
    job = second.job(job_id)
    assert job["status"] == "FAILED" and "no job.json" in job["reason"]
    assert second.get("/status.json").json()["running"] == 0


def test_graceful_stop_never_records_success(start_daemon: DaemonFactory) -> None:
    first = start_daemon(slots=1)
    job_id = first.schedule("stubborn")
    first.wait_log(job_id, "CHILD")
    pid = crawl_pid(job_id)
    assert first.stop(signal.SIGTERM) == 0  # SIGTERM, then SIGKILL after the 2 s grace
    assert not pid_alive(pid)
    second = start_daemon.restart(first)
    job = second.job(job_id)
    assert job["status"] == "FAILED" and "daemon was stopped" in job["reason"]
    assert "daemon was stopped" in second.get(f"/list-jobs.json?id={job_id}").text


def test_second_daemon_on_the_same_data_folder_is_refused(start_daemon: DaemonFactory) -> None:
    first = start_daemon(slots=1)
    res = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(first.config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert res.returncode == 2
    assert "another daemon is using the data folder" in res.stderr


# -- signals to crawl processes (the launcher with a test clock, real processes) -----------


def _sleeper(**popen: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], **popen)


def test_cancel_reaches_a_crawl_that_has_no_process_group_yet(tmp_path: Path) -> None:
    """A crawl cancelled before its setsid() has no group: SIGTERM goes to its pid, so
    it stops at once instead of being SIGKILLed after the grace period."""
    child = _sleeper()  # in the test's process group, like a crawl before its setsid()
    try:
        launcher = Launcher(Clock(), tmp_path, tmp_path / "logs", cancel_grace=3600)
        launcher.running["j"] = Crawl("j", child.pid, process_start_time(child.pid))
        launcher.stop("j", "cancel")
        assert child.wait(timeout=60) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()


def test_orphan_whose_pid_was_reused_is_never_signalled(tmp_path: Path) -> None:
    """A followed crawl's pid that now names another process (its start time differs)
    counts as ended, and that other process is left alone."""
    other = _sleeper(start_new_session=True)
    try:
        clock = Clock()
        launcher = Launcher(clock, tmp_path, tmp_path / "logs", cancel_grace=1)
        started = process_start_time(other.pid)
        assert started is not None
        crawl = launcher.follow("j", other.pid, started - 100)
        ended: list[Outcome] = []
        crawl.ended.addCallback(ended.append)
        assert launcher.stop("j", "cancel") is not None  # not signalled either
        clock.advance(1)
        assert ended and ended[0].orphan and "j" not in launcher.running
        with pytest.raises(subprocess.TimeoutExpired):
            other.wait(timeout=1)
    finally:
        other.kill()
        other.wait()


# -- recovery of RUNNING jobs (jobs service + launcher on a test clock) ---------------------

T0 = 1_700_000_000.0


def _recovering(tmp_path: Path, clock: Clock, **job: object) -> tuple[JobsService, Store, str]:
    """A store holding one RUNNING job (started at T0) as a killed daemon left it."""
    store = Store(tmp_path / "d.sqlite", clock=lambda: T0)
    toy = write_toy_project(tmp_path / "toy")
    projects = ProjectStore(tmp_path / "projects", {"toy": LocalProject(toy, {})}, reactor=clock)
    launcher = Launcher(clock, tmp_path / "data", tmp_path / "logs", cancel_grace=1)
    bus = EventBus()
    jobs = JobsService(
        store,
        LocalExecutor(launcher, bus),
        projects,
        bus,
        reactor=clock,
        slots=1,
        data_dir=tmp_path / "data",
        now=lambda: datetime.fromtimestamp(T0 + clock.seconds(), UTC),
    )
    job_id = str(uuid.uuid4())
    store.insert(Job(job_id, PENDING, USER, "now", "toy", "sleepy", **job))  # type: ignore[arg-type]
    store.mark_running(job_id)
    return jobs, store, job_id


@pytest.mark.parametrize(
    ("manifest", "status", "words"),
    [
        ({"close_reason": "finished", "succeeded": True}, "SUCCESSFUL", "restarted"),
        ({"close_reason": "shutdown"}, "FAILED", "'shutdown'"),
        (None, "FAILED", "no job.json"),
    ],
)
def test_crawl_that_ended_while_the_daemon_was_down_is_judged_by_its_job_json(
    tmp_path: Path, manifest: dict | None, status: str, words: str
) -> None:
    jobs, store, job_id = _recovering(tmp_path, Clock())
    gone = _sleeper()
    gone.kill()
    gone.wait()
    store.record_handle(job_id, format_handle(gone.pid, T0), "local")
    if manifest is not None:
        folder = tmp_path / "data" / job_id
        folder.mkdir(parents=True)
        (folder / "job.json").write_text(json.dumps(manifest))
    jobs.recover()
    job = store.get(job_id)
    assert job is not None and job.status == status and words in (job.reason or ""), job


def test_followed_crawl_keeps_the_rest_of_its_max_runtime(tmp_path: Path) -> None:
    clock = Clock()
    jobs, store, job_id = _recovering(tmp_path, clock, max_runtime=150.0)
    crawl = _sleeper(start_new_session=True)
    try:
        store.record_handle(
            job_id, format_handle(crawl.pid, process_start_time(crawl.pid)), "local"
        )
        clock.advance(100)  # the daemon comes back 100 s after the crawl started
        jobs.recover()
        assert store.get(job_id).status == RUNNING
        clock.advance(49)
        assert crawl.poll() is None and store.get(job_id).status == RUNNING
        clock.advance(2)  # 151 s after its start: stopped
        assert crawl.wait(timeout=60) == -signal.SIGTERM
        clock.advance(1)  # the next poll of the followed crawl sees it gone
        job = store.get(job_id)
        assert job.status == "FAILED" and "max_runtime" in job.reason, job
    finally:
        crawl.kill()
        crawl.wait()


def test_a_crawl_found_gone_at_recovery_frees_no_slot_a_followed_one_holds(
    tmp_path: Path,
) -> None:
    jobs, store, gone_id = _recovering(tmp_path, Clock())  # one slot
    gone = _sleeper()
    gone.kill()
    gone.wait()
    store.record_handle(gone_id, format_handle(gone.pid, T0), "local")
    live_id, waiting_id = str(uuid.uuid4()), str(uuid.uuid4())
    store.insert(Job(live_id, PENDING, USER, "now", "toy", "sleepy"))
    store.mark_running(live_id)
    store.insert(Job(waiting_id, PENDING, USER, "now", "toy", "items"))
    crawl = _sleeper(start_new_session=True)
    try:
        handle = format_handle(crawl.pid, process_start_time(crawl.pid))
        store.record_handle(live_id, handle, "local")
        jobs.startService()  # recovers (the gone crawl is reported first), then dispatches
        assert store.get(gone_id).status == "FAILED"
        assert store.get(live_id).status == RUNNING
        assert jobs.executor.running_ids() == {live_id}
        assert store.get(waiting_id).status == PENDING  # the followed crawl has the slot
    finally:
        crawl.kill()
        crawl.wait()


def test_left_running_jobs_carry_their_handle_and_time_left() -> None:
    live = Job("a", RUNNING, USER, "now", "toy", "sleepy", started=T0, max_runtime=150.0)
    live = Job(**{**live.__dict__, "handle": "42:1700000000.0", "node": "local"})
    unknown = Job("b", RUNNING, USER, "now", "toy", "sleepy", started=T0, version="v2")
    found = left_running([live, unknown], default_max_runtime=0.0, now=T0 + 100)
    assert found == [
        LeftRunning("a", "toy", None, "sleepy", "42:1700000000.0", "local", 50.0),
        LeftRunning("b", "toy", "v2", "sleepy", None, None, None),
    ]


def test_time_left_of_a_followed_crawl() -> None:
    job = Job("a", RUNNING, USER, "now", "toy", "sleepy", started=T0)
    assert time_left(job, 0.0, T0 + 10) is None  # no limit anywhere
    assert time_left(job, 60.0, T0 + 10) == 50.0  # the daemon's max_runtime
    own = Job("a", RUNNING, USER, "now", "toy", "sleepy", started=T0, max_runtime=5.0)
    assert time_left(own, 60.0, T0 + 10) == 0.0  # overran while no daemon watched
    unlimited = Job("a", RUNNING, USER, "now", "toy", "sleepy", started=T0, max_runtime=0.0)
    assert time_left(unlimited, 60.0, T0 + 10) is None  # its own 0 means no limit
