"""Crawls on worker hosts (executor: celery): a real daemon, a real redis-server and
real worker processes (tests/cluster_support.py).

Each scenario runs twice: on 127.0.0.1 (`[loopback]`, `make test`) and with the daemon
and Redis in one network namespace, each worker in its own and this test's HTTP client
in another (`[netns]`, marked cluster_netns: `make test-cluster`, tests/netns_support.py).
The two tests that check the daemon's own answers, not the network, run on loopback only.

Spiders that must run until the test says so are the toy project's `sleepy` with an
`until_file` (all processes share this machine's file system, though nothing of the
cluster relies on that)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_support import (
    FINAL,
    WorkerFactory,
    WorkerProcess,
    celery_config,
    node_states,
    running_on,
    sleepy_job,
)
from tests.cmc_server import CMCServer
from tests.daemon_support import ROOT, DaemonFactory, pid_alive, toy_projects
from tests.netns_support import CLIENT, NetnsLab
from tests.redis_support import RedisServer, free_port
from tests.topology import LOOPBACK, Topology
from tests.waiting import wait_until


@pytest.fixture(params=["loopback", pytest.param("netns", marks=pytest.mark.cluster_netns)])
def topology(request: pytest.FixtureRequest) -> Iterator[Topology]:
    """Loopback, or the session's namespaces with this test's thread in the client's."""
    if request.param == "loopback":
        yield LOOPBACK
        return
    lab: NetnsLab = request.getfixturevalue("netns_lab")
    with lab.inside(CLIENT):
        yield lab


#: For the tests of the daemon's answers, which the network does not change.
loopback_only = pytest.mark.parametrize("topology", ["loopback"], indirect=True)


@pytest.fixture
def cluster_cmc(topology: Topology, request: pytest.FixtureRequest) -> CMCServer:
    """The CMC look-alike where crawls on the workers reach it (the hub's, in namespaces)."""
    if topology is LOOPBACK:
        cmc: CMCServer = request.getfixturevalue("cmc")
        return cmc
    server: CMCServer = request.getfixturevalue("netns_cmc_server")
    server.reset()
    return server


def _worker_named(workers: list[WorkerProcess], name: str) -> WorkerProcess:
    return next(w for w in workers if w.name == name)


def _crawls(workers: list[WorkerProcess]) -> list[int]:
    return [pid for w in workers for pid in w.crawl_pids()]


def test_jobs_spread_over_workers_log_live_and_their_folders_come_back(
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    daemon = start_daemon(slots=4, **celery_config(redis_server))
    start_worker(daemon, redis_server, "w1")
    start_worker(daemon, redis_server, "w2")
    until = tmp_path / "go"
    jobs = [sleepy_job(daemon, until) for _ in range(2)]
    nodes = {running_on(daemon, job_id)["node"] for job_id in jobs}
    assert nodes == {"w1", "w2"}  # one slot each: each worker took one
    seen = wait_until(
        lambda: daemon.get("/status.json").json().get("nodes", []),
        30,
        "status.json to list both busy workers",
        until=lambda found: (
            sorted((n["name"], len(n["running"])) for n in found) == [("w1", 1), ("w2", 1)]
        ),
    )
    assert all(n["state"] == "alive" and n["slots"] == 1 for n in seen), seen
    for job_id in jobs:
        # The crawl's stdout, written on the worker, read through the daemon's get-log.
        daemon.wait_log(job_id, f"START {job_id}", "out", timeout=30)
        stats = wait_until(
            lambda job_id=job_id: daemon.job(job_id)["stats"],
            30,
            f"live stats of job {job_id}",
        )
        assert "start_time" in stats
    until.touch()
    for job_id in jobs:
        job = daemon.wait_status(job_id, FINAL, timeout=60)
        assert job["status"] == "SUCCESSFUL", (job, daemon.log())
        manifest = json.loads((daemon.workdir / "data" / job_id / "job.json").read_text())
        assert manifest["close_reason"] == "finished"
        assert "CLOSED finished" in daemon.get(f"/get-log/data/{job_id}.out").text
        assert job["stats"]["finish_reason"] == "finished"


def test_a_crashing_spider_fails_with_its_reason(
    redis_server: RedisServer, start_daemon: DaemonFactory, start_worker: WorkerFactory
) -> None:
    daemon = start_daemon(**celery_config(redis_server))
    start_worker(daemon, redis_server, "w1")
    job = daemon.wait_status(daemon.schedule("fails"), FINAL, timeout=60)
    assert job["status"] == "FAILED"
    assert job["reason"].startswith("exit code 3"), job
    assert job["node"] == "w1"


def test_cancel_of_a_queued_and_of_a_running_job_leaves_no_process(
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    daemon = start_daemon(slots=3, cancel_grace=2, **celery_config(redis_server))
    worker = start_worker(daemon, redis_server, "w1")
    running = daemon.schedule("stubborn")  # ignores SIGTERM, and so does its child
    running_on(daemon, running)
    child = int(daemon.wait_log(running, "CHILD", "out").split("CHILD ")[1].split()[0])
    queued = sleepy_job(daemon, tmp_path / "never")  # the only worker slot is taken
    daemon.wait_status(queued, ("RUNNING",))  # handed to the cluster, claimed by none
    rsp = daemon.post("/cancel-job.json", data={"id": queued})
    assert rsp.status_code == 200, rsp.text
    assert daemon.wait_status(queued, FINAL)["status"] == "CANCELED"
    crawls = worker.crawl_pids()
    assert crawls and child in crawls
    rsp = daemon.post("/cancel-job.json", data={"id": running})
    assert rsp.status_code == 200, rsp.text
    job = daemon.wait_status(running, FINAL, timeout=60)
    assert job["status"] == "CANCELED", job
    assert "killed after the grace period" in job["reason"]
    wait_until(
        lambda: [p for p in crawls if pid_alive(p)],
        30,
        "no crawl process left",
        until=lambda left: not left,
    )
    # The canceled queued job never ran anywhere.
    assert f"START {queued}" not in worker.log()
    assert daemon.job(queued)["node"] is None


def test_a_worker_killed_mid_crawl_loses_its_job_to_another_as_attempt_2(
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    daemon = start_daemon(slots=2, **celery_config(redis_server))
    workers = [start_worker(daemon, redis_server, name) for name in ("w1", "w2")]
    until = tmp_path / "go"
    job_id = sleepy_job(daemon, until)
    first = running_on(daemon, job_id)
    victim = _worker_named(workers, first["node"])
    daemon.wait_log(job_id, f"START {job_id}", "out")  # attempt 1 has logged live
    crawls = victim.crawl_pids()
    assert crawls
    victim.kill()  # kill -9: no goodbye, its lease just stops being renewed
    wait_until(
        lambda: node_states(daemon),
        30,
        "status.json to show the dead worker lost",
        until=lambda states: states.get(victim.name) == "lost",
    )
    wait_until(
        lambda: [p for p in crawls if pid_alive(p)],
        30,
        "the dead worker's crawl to die with it",
        until=lambda left: not left,
    )
    second = wait_until(
        lambda: daemon.job(job_id),
        60,
        "the job to run again on the other worker",
        until=lambda job: job["status"] == "RUNNING" and job["node"] not in (None, first["node"]),
    )
    assert second["node"] != first["node"]
    assert (first["attempt"], second["attempt"]) == (1, 2)
    until.touch()
    job = daemon.wait_status(job_id, FINAL, timeout=60)
    assert job["status"] == "SUCCESSFUL", (job, daemon.log())
    # Attempt 2's log is the job's log, whole; attempt 1's is kept beside it.
    out = daemon.get(f"/get-log/data/{job_id}.out").text
    assert out.startswith(f"START {job_id}") and out.count("CLOSED finished") == 1, out
    aside = (daemon.workdir / "data" / "logs" / f"{job_id}.1.out").read_text()
    assert aside.startswith(f"START {job_id}") and "CLOSED" not in aside
    # The dead worker's attempt never came back to write anything.
    assert "refused" not in daemon.log()


def test_a_frozen_worker_loses_its_job_and_its_late_writes_are_refused(
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    daemon = start_daemon(slots=2, **celery_config(redis_server))
    workers = [start_worker(daemon, redis_server, name) for name in ("w1", "w2")]
    until = tmp_path / "go"
    job_id = sleepy_job(daemon, until)
    first = running_on(daemon, job_id)
    frozen = _worker_named(workers, first["node"])
    crawls = frozen.crawl_pids()
    frozen.signal(signal.SIGSTOP)  # a partition: it neither renews nor reports
    try:
        second = wait_until(
            lambda: daemon.job(job_id),
            60,
            "the reaper to hand the job to the other worker",
            until=lambda job: (
                job["status"] == "RUNNING" and job["node"] not in (None, first["node"])
            ),
        )
    finally:
        frozen.signal(signal.SIGCONT)
    # Woken up, the frozen worker learns its attempt is over and kills its crawl
    # rather than run the job twice; whatever it still sends for attempt 1 is refused.
    stale = daemon.post(
        f"/cluster/jobs/{job_id}/1/log/out",
        params={"worker": frozen.name, "offset": 0},
        data=b"stale bytes",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert stale.status_code == 409, stale.text
    assert f"log of job {job_id} attempt 1 from worker {frozen.name}" in daemon.log()
    wait_until(
        lambda: [p for p in crawls if pid_alive(p)],
        30,
        "the stale crawl to be killed",
        until=lambda left: not left,
    )
    until.touch()
    job = daemon.wait_status(job_id, FINAL, timeout=60)
    assert job["status"] == "SUCCESSFUL", (job, daemon.log())
    assert job["node"] == second["node"] and job["attempt"] == 2
    out = daemon.get(f"/get-log/data/{job_id}.out").text
    assert out.count(f"START {job_id}") == 1 and out.count("CLOSED finished") == 1, out
    assert "stale bytes" not in out


def test_redis_restarted_mid_run_loses_no_job_and_runs_none_twice(
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    daemon = start_daemon(slots=2, **celery_config(redis_server))
    workers = [start_worker(daemon, redis_server, name) for name in ("w1", "w2")]
    until = tmp_path / "go"
    job_id = sleepy_job(daemon, until)
    node = running_on(daemon, job_id)["node"]
    redis_server.restart()  # persistence off: it comes back empty
    # A job scheduled after the restart is published to the new Redis and runs.
    after = daemon.schedule("items")
    assert daemon.wait_status(after, FINAL, timeout=90)["status"] == "SUCCESSFUL"
    until.touch()
    job = daemon.wait_status(job_id, FINAL, timeout=60)
    assert job["status"] == "SUCCESSFUL", (job, daemon.log())
    assert job["node"] == node and job["attempt"] == 1
    # Still attempt 1: no retry was needed, none was published.
    assert not list((daemon.workdir / "data" / "logs").glob(f"{job_id}.*.*"))
    for worker in workers:
        assert f"{job_id}.2]" not in worker.log()


def test_the_daemon_killed_and_restarted_takes_back_its_jobs_on_workers(
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    # A fixed port: the workers know the daemon by its URL.
    daemon = start_daemon(slots=2, port=free_port(), **celery_config(redis_server))
    start_worker(daemon, redis_server, "w1", slots=2)
    until = tmp_path / "go"
    ends_while_down = sleepy_job(daemon, until)
    goes_on = sleepy_job(daemon, tmp_path / "later")
    for job_id in (ends_while_down, goes_on):
        running_on(daemon, job_id)
    daemon.stop(signal.SIGKILL)
    until.touch()  # one job ends while the daemon is away: its worker waits to report
    daemon = start_daemon.restart(daemon)
    job = daemon.wait_status(ends_while_down, FINAL, timeout=60)
    assert job["status"] == "SUCCESSFUL", (job, daemon.log())
    assert (daemon.workdir / "data" / ends_while_down / "job.json").is_file()
    assert daemon.job(goes_on)["status"] == "RUNNING"
    (tmp_path / "later").touch()
    job = daemon.wait_status(goes_on, FINAL, timeout=60)
    assert job["status"] == "SUCCESSFUL", (job, daemon.log())
    assert job["node"] == "w1"


def test_a_coin_crawl_on_a_worker_is_served_by_the_coin_api(
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    cluster_cmc: CMCServer,
) -> None:
    cmc = cluster_cmc
    settings = {**cmc.settings(), "AUTOTHROTTLE_ENABLED": "False", "RETRY_BACKOFF_BASE": "0.05"}

    def projects(work: Path) -> dict[str, Any]:
        return {**toy_projects(work), "coinspiders": {"path": str(ROOT), "settings": settings}}

    daemon = start_daemon(projects, **celery_config(redis_server))
    start_worker(daemon, redis_server, "w1")
    job_id = daemon.schedule(
        "coin", project="coinspiders", payload=json.dumps({"coins": "duko,bitcoin"})
    )
    job = daemon.wait_status(job_id, FINAL, timeout=120)
    assert job["status"] == "SUCCESSFUL", (
        job,
        daemon.get(f"/get-log/data/{job_id}.err").text[-3000:],
    )
    assert job["node"] == "w1"
    data = json.loads((daemon.workdir / "data" / job_id / "data.json").read_text())
    assert len(data) == 2
    served = daemon.get(f"/api/jobs/{job_id}/data/")
    assert served.status_code == 200 and served.headers["X-Job-Data"] == "complete"
    assert json.loads(served.content) == data
    slugs = wait_until(
        lambda: sorted(c["slug"] for c in daemon.get("/api/coins/", params={"job": job_id}).json()),
        30,
        "the worker's coins in the daemon's coin index",
    )
    assert slugs == ["bitcoin", "duko"]


def test_a_rolling_restart_of_the_workers_loses_no_job(
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    daemon = start_daemon(slots=4, **celery_config(redis_server))
    workers = {name: start_worker(daemon, redis_server, name) for name in ("w1", "w2")}
    until = tmp_path / "go"
    long_job = sleepy_job(daemon, until)
    first = workers[running_on(daemon, long_job)["node"]]
    other = next(w for w in workers.values() if w is not first)
    first.signal(signal.SIGTERM)  # warm: it takes nothing new and finishes what it runs
    meanwhile = daemon.schedule("items")
    job = daemon.wait_status(meanwhile, FINAL, timeout=60)
    assert (job["status"], job["node"]) == ("SUCCESSFUL", other.name), job
    until.touch()
    job = daemon.wait_status(long_job, FINAL, timeout=60)
    assert (job["status"], job["node"], job["attempt"]) == ("SUCCESSFUL", first.name, 1), job
    assert first.proc is not None and first.proc.wait(60) == 0
    # Its replacement comes up; then the other one is restarted the same way.
    again = start_worker(daemon, redis_server, first.name)
    other.signal(signal.SIGTERM)
    assert other.proc is not None and other.proc.wait(60) == 0
    last = daemon.schedule("items")
    job = daemon.wait_status(last, FINAL, timeout=60)
    assert (job["status"], job["node"]) == ("SUCCESSFUL", again.name), job


@loopback_only
def test_workers_use_the_daemons_auth_and_bad_reports_get_clear_errors(
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    daemon = start_daemon(
        env={"COINSPIDERS_PASSWORD": "s3cret-pass"},
        auth={"username": "admin"},
        **celery_config(redis_server),
    )
    daemon.credentials = ("admin", "s3cret-pass")
    start_worker(daemon, redis_server, "w1")  # given the credentials in its environment
    done = daemon.wait_status(daemon.schedule("items"), FINAL, timeout=60)
    assert done["status"] == "SUCCESSFUL", (done, daemon.log())
    out = daemon.get(f"/get-log/data/{done['identifier']}.out").text
    assert "SECRET None" in out and "s3cret-pass" not in out  # not in the crawl's env
    job_id = sleepy_job(daemon, tmp_path / "go")
    running_on(daemon, job_id)
    base = f"/cluster/jobs/{job_id}/1"
    octets = {"Content-Type": "application/octet-stream"}
    anonymous = daemon.post(f"{base}/log/out", params={"worker": "w1"}, auth=None, data=b"x")
    assert anonymous.status_code == 401
    cases = [
        (f"{base}/files", {"worker": "w1", "name": "../../etc/x"}, 400),
        (f"{base}/files", {"worker": "w1", "name": "/abs"}, 400),
        (f"{base}/log/core", {"worker": "w1"}, 400),
        (f"{base}/log/out", {"worker": "no such/name"}, 400),
        (f"{base}/log/out", {"worker": "w1", "offset": "x"}, 400),
        (f"{base}/log/out", {"worker": "w1", "offset": 10**9}, 409),  # a gap
        (f"{base}/ended", {"worker": "w1"}, 400),  # not JSON
        (f"/cluster/jobs/{job_id}/7/log/out", {"worker": "w1"}, 409),  # not its attempt
        (f"{base}/log/out", {"worker": "w2"}, 409),  # not its worker
    ]
    for path, params, code in cases:
        rsp = daemon.post(path, params=params, data=b"not json", headers=octets)
        assert rsp.status_code == code, (path, params, rsp.text)
        assert rsp.json()["status"] == "error"
    assert daemon.get("/cluster/projects/nosuch-0.zip").status_code == 404
    (tmp_path / "go").touch()
    job = daemon.wait_status(job_id, FINAL, timeout=60)
    assert job["status"] == "SUCCESSFUL", (job, daemon.log())
    assert not (daemon.workdir / "etc").exists()


@loopback_only
def test_max_runtime_stops_a_crawl_on_its_worker_counting_from_its_start(
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    daemon = start_daemon(slots=2, cancel_grace=2, **celery_config(redis_server))
    worker = start_worker(daemon, redis_server, "w1")
    blocker = sleepy_job(daemon, tmp_path / "go")
    running_on(daemon, blocker)
    # Queued behind the blocker for longer than its max_runtime: that wait does not count.
    limited = daemon.schedule(
        "sleepy", payload=json.dumps({"until_file": str(tmp_path / "never")}), max_runtime=2
    )
    daemon.wait_status(limited, ("RUNNING",))
    time.sleep(3)  # longer than its max_runtime, waiting for the only worker slot
    assert daemon.job(limited)["node"] is None
    (tmp_path / "go").touch()
    assert daemon.wait_status(blocker, FINAL, timeout=60)["status"] == "SUCCESSFUL"
    job = daemon.wait_status(limited, FINAL, timeout=60)
    assert (job["status"], job["reason"]) == ("FAILED", "stopped: exceeded its max_runtime"), job
    assert job["node"] == "w1"  # it did run, and was stopped there
    wait_until(worker.crawl_pids, 30, "no crawl left on the worker", until=lambda pids: not pids)
