"""What only network namespaces show, and the guard that keeps `make test-cluster`'s
traffic on this machine (tests/netns_support.py). Marked cluster_netns: run by
`make test-cluster` (as root), left out of `make test`.

The cluster scenarios themselves run in namespaces as the `[netns]` variants of
tests/test_cluster.py."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster_support import (
    FINAL,
    WorkerFactory,
    celery_config,
    node_states,
    running_on,
    sleepy_job,
)
from tests.daemon_support import PYTHON, ROOT, DaemonFactory, pid_alive
from tests.netns_support import CLIENT, NetnsLab, guard_routes, ip, our_namespaces
from tests.redis_support import RedisServer
from tests.topology import HUB, Topology
from tests.waiting import wait_until

pytestmark = pytest.mark.cluster_netns


@pytest.fixture
def topology(netns_lab: NetnsLab) -> Iterator[Topology]:
    """The session's namespaces, this test's thread in the client's."""
    with netns_lab.inside(CLIENT):
        yield netns_lab


def _routes(lab: NetnsLab, role: str) -> list[str]:
    listed = json.loads(ip("-n", lab.names[role], "-j", "-4", "route", "show").stdout)
    return sorted(route["dst"] for route in listed)


def test_while_the_lab_exists_its_prefix_is_unreachable_from_the_root_namespace(
    netns_lab: NetnsLab,
) -> None:
    prefix = str(netns_lab.prefix)
    with netns_lab.in_root():
        assert prefix in guard_routes()
        shown = ip("route", "show", prefix).stdout
        assert shown.split()[:2] == ["unreachable", prefix], shown
        for role in netns_lab.roles:
            got = ip("route", "get", netns_lab.host(role), check=False)
            assert got.returncode != 0 and "No route to host" in got.stderr, (role, got)
        # A client left in the root namespace fails at once: nothing is sent.
        with pytest.raises(OSError) as refused:
            socket.create_connection((netns_lab.host(HUB), 9), timeout=5).close()
        assert refused.value.errno == errno.EHOSTUNREACH
        # No address of the lab on any interface of the root namespace.
        assert netns_lab.host(HUB).rsplit(".", 1)[0] + "." not in ip("-4", "addr").stdout
    # Inside, each namespace knows the prefix and nothing else: no default route.
    for role in netns_lab.roles:
        assert _routes(netns_lab, role) == [prefix], role
        assert "default" not in ip("-n", netns_lab.names[role], "-6", "route", "show").stdout
    # ...and the lab's own traffic flows: a client reaches a server in the hub.
    with netns_lab.inside(HUB):
        server = socket.create_server((netns_lab.host(HUB), 0))
    with server, netns_lab.inside(CLIENT):
        port = server.getsockname()[1]
        with socket.create_connection((netns_lab.host(HUB), port), timeout=10) as conn:
            peer, _ = server.accept()
            with peer:
                assert peer.getpeername()[0] == netns_lab.host(CLIENT)
                assert conn.getsockname()[0] == netns_lab.host(CLIENT)


def test_a_destroyed_lab_leaves_no_namespace_route_or_state(netns_lab: NetnsLab) -> None:
    with netns_lab.in_root():
        lab = NetnsLab(workers=("w1",), tag="gone").create()
        try:
            assert lab.prefix != netns_lab.prefix  # two labs at once: two prefixes
            assert {str(lab.prefix), str(netns_lab.prefix)} <= set(guard_routes())
            assert set(lab.names.values()) <= set(our_namespaces())
            assert lab.state_path.is_file()
        finally:
            lab.destroy()
        assert not set(lab.names.values()) & set(our_namespaces())
        assert str(lab.prefix) not in guard_routes()
        assert not lab.state_path.exists()
        # The session's lab is untouched.
        assert str(netns_lab.prefix) in guard_routes()
        assert set(netns_lab.names.values()) <= set(our_namespaces())


KILLED_RUN = """
import json, time
from tests.netns_support import NetnsLab
lab = NetnsLab(workers=("w1",), tag="killed").create()
print(json.dumps({"names": list(lab.names.values()), "prefix": str(lab.prefix)}), flush=True)
time.sleep(600)
"""


def test_the_next_lab_removes_what_a_killed_run_left(netns_lab: NetnsLab) -> None:
    with netns_lab.in_root():
        child = subprocess.Popen(
            [PYTHON, "-c", KILLED_RUN], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        left = json.loads(child.stdout.readline() or "null")
        child.kill()  # kill -9: its finally never runs
        child.wait(10)
        assert left, "the child made no lab"
        assert set(left["names"]) <= set(our_namespaces())
        assert left["prefix"] in guard_routes()
        lab = NetnsLab(workers=(), tag="next").create()
        lab.destroy()
        assert not set(left["names"]) & set(our_namespaces())
        assert left["prefix"] not in guard_routes()
        # A live owner's lab (the session's) is not touched.
        assert set(netns_lab.names.values()) <= set(our_namespaces())


def test_a_worker_cut_off_by_its_link_loses_its_job_and_its_late_writes_are_refused(
    netns_lab: NetnsLab,
    redis_server: RedisServer,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    daemon = start_daemon(slots=2, **celery_config(redis_server))
    workers = {name: start_worker(daemon, redis_server, name) for name in ("w1", "w2")}
    until = tmp_path / "go"
    job_id = sleepy_job(daemon, until)
    first = running_on(daemon, job_id)
    cut = workers[first["node"]]
    daemon.wait_log(job_id, f"START {job_id}", "out")
    crawls = cut.crawl_pids()
    assert crawls
    netns_lab.link(cut.name, up=False)  # the cable, not the process: it runs on, unheard
    try:
        wait_until(
            lambda: node_states(daemon),
            30,
            "status.json to show the cut-off worker lost",
            until=lambda states: states.get(cut.name) == "lost",
        )
        second = wait_until(
            lambda: daemon.job(job_id),
            60,
            "the reaper to hand the job to the other worker",
            until=lambda job: (
                job["status"] == "RUNNING" and job["node"] not in (None, first["node"])
            ),
        )
        assert (first["attempt"], second["attempt"]) == (1, 2)
        # Cut off, the old worker heard nothing: its crawl of attempt 1 still runs.
        assert all(pid_alive(pid) for pid in crawls), crawls
    finally:
        netns_lab.link(cut.name, up=True)
    # Back on the network, a write for attempt 1 from the old worker's own address
    # is refused, and the old worker kills its crawl rather than run the job twice.
    with netns_lab.inside(cut.name):
        stale = daemon.post(
            f"/cluster/jobs/{job_id}/1/log/out",
            params={"worker": cut.name, "offset": 0},
            data=b"stale bytes",
            headers={"Content-Type": "application/octet-stream"},
        )
    assert stale.status_code == 409, stale.text
    assert f"log of job {job_id} attempt 1 from worker {cut.name}" in daemon.log()
    wait_until(
        lambda: [pid for pid in crawls if pid_alive(pid)],
        90,
        "the cut-off worker's stale crawl to be killed",
        until=lambda alive: not alive,
    )
    assert "is no longer this worker's" in cut.log() or "refused" in cut.log()
    until.touch()
    job = daemon.wait_status(job_id, FINAL, timeout=60)
    assert job["status"] == "SUCCESSFUL", (job, daemon.log())
    assert (job["node"], job["attempt"]) == (second["node"], 2)
    out = daemon.get(f"/get-log/data/{job_id}.out").text
    assert out.count(f"START {job_id}") == 1 and out.count("CLOSED finished") == 1, out
    assert "stale bytes" not in out
    wait_until(
        lambda: node_states(daemon),
        30,
        "the reconnected worker to be alive again",
        until=lambda states: states.get(cut.name) == "alive",
    )
