"""A full disk and a crawl's leftover processes: the daemon settles both without a restart.

- data_dir on a 20 MB tmpfs, filled up: crawls wait below min_free_bytes, schedule-job and
  push answer 507, a crawl that ends meanwhile frees its slot and its end is written once
  space is back (tmpfs needs root; skipped with the reason where mounting is refused);
- a spider that leaves 22 `sleep` children behind, 12 in sessions of their own (2 with an
  empty environment): all are killed (and reaped) when the crawl ends on its own, and
  the job counts them.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
import sqlite3
import subprocess
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from twisted.internet.task import Clock

from daemon.backlog import WriteBacklog
from daemon.domain import PENDING, USER
from daemon.job_store import _SCHEMA, Job, Store, StoreFull
from tests.daemon_support import DaemonFactory, DaemonProcess, toy_projects
from tests.waiting import wait_until

MiB = 1024 * 1024

LITTER_SPIDER = """
import json
import os
import shutil
import subprocess
from pathlib import Path

import psutil
import scrapy


class Litter(scrapy.Spider):
    '''Starts 20 `sleep 300`, every other one in a session of its own, and 2 more in
    sessions of their own with an empty environment; then ends.'''

    name = "litter"

    async def start(self):
        args = json.loads(getattr(self, "payload", "{}"))
        children = []
        for n in range(22):
            child = subprocess.Popen(
                [shutil.which("sleep"), "300"],
                start_new_session=n % 2 == 0 or n >= 20,
                env={} if n >= 20 else None,
            )
            children.append([child.pid, psutil.Process(child.pid).create_time()])
        Path(args["pid_file"]).write_text(json.dumps(children))
        yield {"children": len(children)}
"""


# -- a full disk ---------------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 20 MB tmpfs at tmp_path/data, unmounted afterwards (also when the test fails)."""
    mount = tmp_path / "data"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}"
        print(reason)
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Write a filler file until `leave` bytes are free (0: until the disk refuses)."""
    filler = folder / f"filler-{len(list(folder.glob('filler-*')))}"
    with filler.open("wb", buffering=0) as fh:  # unbuffered: no write left for close()
        for chunk in (MiB, 4096):
            while True:
                free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
                if leave and free - chunk < leave:
                    break
                try:
                    fh.write(b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return filler


def project_zip(name: str = "pushed") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}/scrapy.cfg", f"[settings]\ndefault = {name}.settings\n")
        zf.writestr(f"{name}/{name}/__init__.py", "")
        zf.writestr(f"{name}/{name}/settings.py", f"SPIDER_MODULES = ['{name}.spiders']\n")
        zf.writestr(f"{name}/{name}/spiders/__init__.py", "")
    return buf.getvalue()


@pytest.fixture
def full_disk_daemon(tmpfs: Path, start_daemon: DaemonFactory) -> Iterator[DaemonProcess]:
    """The toy daemon with its data folder on the tmpfs (stopped before it is unmounted)."""
    daemon = start_daemon(data_dir=tmpfs, slots=2, min_free_bytes=4 * MiB)
    try:
        yield daemon
    finally:
        daemon.stop(signal.SIGKILL)


def status(daemon: DaemonProcess) -> dict:
    rsp = daemon.get("/status.json")
    assert rsp.status_code == 200, rsp.text
    return rsp.json()


def test_full_disk_holds_new_crawls_refuses_writes_and_settles_without_restart(
    full_disk_daemon: DaemonProcess, tmpfs: Path, tmp_path: Path
) -> None:
    daemon = full_disk_daemon
    first = status(daemon)
    assert first["min-free-bytes"] == 4 * MiB
    assert 10 * MiB < first["disk-free-bytes"] <= 20 * MiB, first
    gate = tmp_path / "gate"  # outside the tmpfs
    sleeper = daemon.schedule("sleepy", payload=json.dumps({"until_file": str(gate)}))
    daemon.wait_log(sleeper, "START")

    # Below the floor: a new job is accepted but waits PENDING although a slot is free.
    fill(tmpfs, leave=2 * MiB)
    assert status(daemon)["disk-free-bytes"] < 4 * MiB
    waiting = daemon.schedule("items")
    time.sleep(3)  # an items crawl with a free slot would have started by now
    assert daemon.job(waiting)["status"] == "PENDING"
    assert status(daemon)["running"] == 1

    # Full: nothing can be recorded, so schedule-job and push say so with 507.
    fill(tmpfs)
    rsp = daemon.post(
        "/schedule-job.json", data={"project": "toy", "spider": "items", "when": "now"}
    )
    assert rsp.status_code == 507, rsp.text
    assert rsp.json()["status"] == "error" and "disk" in rsp.json()["msg"]
    rsp = daemon.post("/push-project.json", files={"archive": ("p.zip", project_zip())})
    assert rsp.status_code == 507, rsp.text

    # The crawl ends on the full disk: its slot is freed, its end waits to be written.
    gate.touch()
    wait_until(
        lambda: status(daemon),
        30,
        "the ended crawl's slot to be freed with its end waiting",
        until=lambda now: now["running"] == 0 and now["state-writes-waiting"] > 0,
    )
    assert daemon.job(sleeper)["status"] == "RUNNING"  # what the store holds until then
    assert daemon.job(waiting)["status"] == "PENDING"

    # Space comes back: everything settles, no restart.
    for filler in tmpfs.glob("filler-*"):
        filler.unlink()
    freed_at = time.time()
    ended = daemon.wait_status(sleeper, ("SUCCESSFUL", "FAILED", "CANCELED"), timeout=30)
    # Written late, but with the time the crawl really ended.
    assert datetime.fromisoformat(ended["finished"]).timestamp() < freed_at, ended
    assert daemon.wait_status(waiting, ("SUCCESSFUL", "FAILED"), timeout=60)["status"] == (
        "SUCCESSFUL"
    )
    after = daemon.schedule("items")
    assert daemon.wait_status(after, ("SUCCESSFUL", "FAILED"), timeout=60)["status"] == (
        "SUCCESSFUL"
    )
    final = status(daemon)
    assert final["state-writes-waiting"] == 0 and final["running"] == 0
    assert "Unhandled error" not in daemon.log()


# -- the write backlog and the store, directly -----------------------------------------------


def test_backlog_keeps_order_retries_with_backoff_and_reports_the_drain() -> None:
    clock = Clock()
    drained: list[int] = []
    backlog = WriteBacklog(clock, on_drained=lambda: drained.append(1), first_delay=1.0)
    disk = {"full": True}
    written: list[str] = []

    def writer(name: str):
        def run() -> str:
            if disk["full"]:
                raise StoreFull()
            written.append(name)
            return name

        return run

    seen: list[str] = []
    assert backlog.write("a", "end of a", writer("a1"), seen.append) is False
    assert backlog.write("b", "end of b", writer("b1"), seen.append) is False
    assert backlog.write("a", "event of a", writer("a2"), seen.append) is False
    assert len(backlog) == 3 and backlog.holds("a") and not backlog.holds("c")
    clock.advance(1.0)  # first retry: still full, the next one waits twice as long
    assert written == [] and len(backlog) == 3
    disk["full"] = False
    clock.advance(1.0)
    assert written == [] and len(backlog) == 3  # not yet: backoff is now 2 s
    clock.advance(1.0)
    assert written == ["a1", "b1", "a2"] and seen == written
    assert len(backlog) == 0 and drained == [1]
    assert backlog.write("c", "end of c", writer("c1"), seen.append) is True  # straight through


def test_store_of_schema_1_gains_the_leftovers_column(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    old_schema = _SCHEMA.replace(",\n    leftovers_killed INTEGER", "")
    assert old_schema != _SCHEMA
    conn = sqlite3.connect(path)
    conn.executescript(old_schema)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema', '1')")
    conn.execute(
        "INSERT INTO jobs (id, status, active, actor, schedule, project, spider, created,"
        " updated) VALUES ('old', 'PENDING', 1, 'USER', 'now', 'p', 's', 1.0, 1.0)"
    )
    conn.commit()
    conn.close()
    store = Store(path)
    old = store.get("old")
    assert old is not None and old.status == PENDING and old.leftovers_killed is None
    store.insert(Job("new", PENDING, USER, "now", "p", "s"))
    store.mark_running("new")
    done = store.finish("new", "SUCCESSFUL", leftovers_killed=7)
    assert done is not None and done.leftovers_killed == 7
    store.close()
    assert Store(path).get("new").leftovers_killed == 7  # reopens as schema 2


# -- leftovers of a crawl that ends on its own ------------------------------------------------


def litter_projects(work: Path) -> dict[str, dict[str, Any]]:
    """The toy project with the Litter spider besides its own."""
    projects = toy_projects(work)
    (Path(projects["toy"]["path"]) / "toy" / "spiders" / "litter.py").write_text(LITTER_SPIDER)
    return projects


def test_children_left_by_a_crawl_that_ends_on_its_own_are_killed_and_counted(
    tmp_path: Path, start_daemon: DaemonFactory
) -> None:
    daemon = start_daemon(litter_projects)
    pid_file = tmp_path / "children.json"
    children: list[list[float]] = []
    try:
        job_id = daemon.schedule("litter", payload=json.dumps({"pid_file": str(pid_file)}))
        job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED", "CANCELED"), timeout=60)
        children = json.loads(pid_file.read_text())
        assert len(children) == 22
        assert job["status"] == "SUCCESSFUL", job
        assert job["leftovers_killed"] == 22, job

        def same_process_exists(pid: int, started: float) -> bool:
            try:
                return abs(psutil.Process(pid).create_time() - started) < 0.01
            except psutil.NoSuchProcess:
                return False

        # Gone, zombies included: the daemon (their subreaper) reaped them.
        wait_until(
            lambda: not any(same_process_exists(int(p), t) for p, t in children),
            15,
            "the crawl's children to be killed and reaped",
        )
        in_list = daemon.get("/list-jobs.json", params={"status": "COMPLETED"}).json()["jobs"]
        assert [j["leftovers_killed"] for j in in_list if j["identifier"] == job_id] == [22]

        plain = daemon.schedule("items")  # a crawl that leaves nothing counts 0
        assert daemon.wait_status(plain, ("SUCCESSFUL", "FAILED"))["leftovers_killed"] == 0
    finally:
        daemon.stop(signal.SIGKILL)
        for pid, _started in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
