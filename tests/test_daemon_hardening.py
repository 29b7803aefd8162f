"""Hardening (issue 9): process faults, retention, hostile requests on every endpoint, and
auth on every endpoint with flat memory, against real daemons over real HTTP.

The project used here (`hard`) has spiders made to misbehave: one never ends, one
ignores SIGTERM and starts two children that ignore it too (one of them leaves the
crawl's process group with setsid), one writes output and then waits, one ends at once.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.daemon_support import (
    ROOT,
    DaemonFactory,
    DaemonProcess,
    pid_alive,
    write_scrapy_project,
)
from tests.waiting import wait_until

HARD_SPIDERS = """
import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import scrapy

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"


class Forever(scrapy.Spider):
    name = "forever"

    async def start(self):
        print("START", flush=True)
        while True:
            await asyncio.sleep(3600)
        yield {}


class Escaper(scrapy.Spider):
    name = "escaper"

    async def start(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        inside = subprocess.Popen([sys.executable, "-c", STUBBORN])
        outside = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True)
        print("CHILDREN", inside.pid, outside.pid, flush=True)
        await asyncio.sleep(300)
        yield {}


class Writer(scrapy.Spider):
    name = "writer"

    async def start(self):
        folder = Path(self.settings.get("DATA_DIR")) / self.settings.get("JOB_ID")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "items.jl").write_text('{"n": 1}\\n')
        print("WROTE", flush=True)
        await asyncio.sleep(300)
        yield {}


class Instant(scrapy.Spider):
    name = "instant"

    async def start(self):
        return
        yield
"""


def write_hard_project(folder: Path) -> Path:
    return write_scrapy_project(folder, "hard", {"hard.py": HARD_SPIDERS})


def hard_projects(work: Path) -> dict[str, dict[str, Any]]:
    return {"hard": {"path": str(write_hard_project(work / "project"))}}


def start_hard_daemon(
    start: DaemonFactory, env: dict[str, str] | None = None, **config: Any
) -> DaemonProcess:
    """A daemon serving only `hard`: 3 slots, a 1 s cancel grace, the default upload cap."""
    defaults = {"slots": 3, "cancel_grace": 1, "upload_max_bytes": 20 * 2**20}
    return start(hard_projects, env=env, **{**defaults, **config})


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory) -> DaemonProcess:
    return start_hard_daemon(start_module_daemon, max_runtime=2, upload_max_bytes=4_000_000)


def crawl_pid(job_id: str, timeout: float = 10.0) -> int:
    def find() -> int | None:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if f"JOB_ID={job_id}" in (proc.info["cmdline"] or ()):
                return proc.info["pid"]
        return None

    return wait_until(find, timeout, f"a crawl process of job {job_id}")


def left_of(leader: int) -> list[psutil.Process]:
    """Live processes still in the crawl's session or process group."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getsid(proc.pid) == leader or os.getpgid(proc.pid) == leader:
                found.append(proc)
        except (ProcessLookupError, PermissionError):
            continue
    return found


def wait_gone(pids: list[int], leader: int, timeout: float = 3.0) -> None:
    def left() -> dict[str, list]:
        return {"alive": [p for p in pids if pid_alive(p)], "in session/group": left_of(leader)}

    wait_until(
        left,
        timeout,
        f"{pids} and the session/group of {leader} to be gone",
        until=lambda seen: not any(seen.values()),
    )


# -- process faults -------------------------------------------------------------------


def test_cancel_leaves_no_descendant_even_one_that_left_the_group(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("escaper", project="hard", max_runtime="60")
    out = daemon.wait_log(job_id, "CHILDREN")
    inside, outside = (int(x) for x in out.split("CHILDREN")[1].split()[:2])
    leader = crawl_pid(job_id)
    assert pid_alive(inside) and pid_alive(outside)
    assert os.getsid(outside) == outside != leader  # out of reach of killpg
    assert daemon.post("/cancel-job.json", data={"id": job_id}).json() == {"status": "ok"}
    job = daemon.job(job_id)  # SIGTERM ignored: SIGKILL after the 1 s grace
    assert job["status"] == "CANCELED" and "killed after the grace period" in job["reason"]
    wait_gone([leader, inside, outside], leader)
    assert daemon.get("/status.json").json()["running"] == 0  # the slot is free
    # Its own max_runtime: a Scrapy start on a loaded machine can take the config's 2 s.
    nxt = daemon.schedule("instant", project="hard", max_runtime="60")
    job = daemon.wait_status(nxt, ("SUCCESSFUL", "FAILED"))
    assert job["status"] == "SUCCESSFUL", (job["reason"], job["exit_code"])


def test_max_runtime_from_config_and_per_job(daemon: DaemonProcess) -> None:
    """config max_runtime is 2 s; a job may shorten or lengthen its own."""
    by_config = daemon.schedule("forever", project="hard")
    shorter = daemon.schedule("forever", project="hard", max_runtime="1")
    longer = daemon.schedule("forever", project="hard", max_runtime="60")
    leaders = {job_id: crawl_pid(job_id) for job_id in (by_config, shorter, longer)}
    for job_id in (shorter, by_config):
        job = daemon.wait_status(job_id, ("FAILED", "SUCCESSFUL", "CANCELED"), timeout=20)
        assert job["status"] == "FAILED", job
        assert job["reason"] == "stopped: exceeded its max_runtime"
        wait_gone([leaders[job_id]], leaders[job_id])
    jobs = {j: daemon.job(j) for j in (by_config, shorter, longer)}
    assert jobs[shorter]["max_runtime"] == 1 and jobs[by_config]["max_runtime"] is None
    ran = {
        j: (_ts(jobs[j]["finished"]) - _ts(jobs[j]["started"]) if jobs[j]["finished"] else None)
        for j in jobs
    }
    # Never stopped before its own limit; the job's 1 s before the config's 2 s.
    assert 1 <= ran[shorter] < ran[by_config] and ran[by_config] >= 2
    assert jobs[longer]["status"] == "RUNNING"  # past the config's 2 s, within its own 60
    daemon.post("/cancel-job.json", data={"id": longer})
    assert daemon.job(longer)["status"] == "CANCELED"
    wait_gone([leaders[longer]], leaders[longer])


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


# -- retention ------------------------------------------------------------------------


def test_completed_cap_never_touches_an_active_jobs_logs_or_output(
    start_daemon: DaemonFactory,
) -> None:
    daemon = start_hard_daemon(start_daemon, completed_cap=2, slots=2)
    data = daemon.workdir / "data"
    hourly = daemon.schedule("instant", project="hard", when="every 1 hour")  # oldest
    writer = daemon.schedule("writer", project="hard")
    daemon.wait_log(writer, "WROTE")
    done = []
    for _ in range(4):
        done.append(daemon.schedule("instant", project="hard"))
        daemon.wait_status(done[-1], ("SUCCESSFUL",))
    for job_id in done[:2]:  # forgotten, logs gone
        assert daemon.get("/list-jobs.json", params={"id": job_id}).status_code == 404
        assert not (data / "logs" / f"{job_id}.err").exists()
    for job_id in done[2:]:
        assert daemon.job(job_id)["status"] == "SUCCESSFUL"
    # The active jobs, older than every completed one, are all there.
    assert daemon.job(hourly)["status"] == "SCHEDULED"
    assert daemon.job(writer)["status"] == "RUNNING"
    assert "WROTE" in (data / "logs" / f"{writer}.out").read_text()
    assert (data / "logs" / f"{writer}.err").stat().st_size > 0
    assert (data / writer / "items.jl").read_text() == '{"n": 1}\n'
    daemon.post("/cancel-job.json", data={"id": writer})
    daemon.post("/cancel-job.json", data={"id": hourly})


# -- hostile requests -----------------------------------------------------------------

JOB = str(uuid.uuid4())
BASE = {"project": "hard", "spider": "instant"}
FORM = "application/x-www-form-urlencoded"
BAD_WHENS = [
    "", " ", "never", "every", "every 0 minutes", "every -5 minutes", "every 1.5.2 hours",
    "every 10 fortnights", "every monday at 25:00", "every day at 12:61", "cron 61 * * * *",
    "cron * * *", "cron a b c d e", "at 2001-02-30T00:00:00", "at yesterday",
    "at 2000-01-01T00:00:00",
    "now now", "now\x00", "every 1 minute\x00", "x" * 5000, "every 99999999999999999999 days",
]  # fmt: skip
BAD_IDS = ["", "x", "../etc/passwd", "0" * 36, JOB + "0", JOB[:-1], f"{JOB}\x00", "%00", "' OR 1=1"]
BAD_LOGS = [
    "..", "../daemon.sqlite", "..%2fdaemon.sqlite", "%2e%2e", "%2e%2e%2f%2e%2e%2fconfig.yaml",
    "%2Fetc%2Fpasswd", "/etc/passwd", f"{JOB}.out%00", f"{JOB}%00.out", f"%00{JOB}.out",
    f"{JOB}.OUT", f"{JOB}.log", f"..%5c{JOB}.out", f"{JOB}.out/..", "a" * 3000, f"{JOB}.err.out",
]  # fmt: skip


def hostile_cases() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(label, method, path, requests kwargs): every one must get a 4xx JSON error."""
    cases: list[tuple[str, str, str, dict[str, Any]]] = []
    add = cases.append
    for when in BAD_WHENS:
        add((f"when={when[:30]!r}", "POST", "/schedule-job.json", {"data": {**BASE, "when": when}}))
    now = {**BASE, "when": "now"}
    for payload in ["{not json", "[1, 2]", '"text"', "1", "null", "true", '{"a": 1', "\x00"]:
        add((f"payload={payload!r}", "POST", "/schedule-job.json",
             {"data": {**now, "payload": payload}}))  # fmt: skip
    megabytes = json.dumps({"x": "y" * 3_000_000})
    add(("payload of 3 MB", "POST", "/schedule-job.json", {"data": {**now, "payload": megabytes}}))
    add(
        ("body over the cap", "POST", "/schedule-job.json", {"data": {**now, "x": "y" * 4_100_000}})
    )
    for bad in BAD_IDS:
        add((f"list id={bad!r}", "GET", "/list-jobs.json", {"params": {"id": bad}}))
        add((f"cancel id={bad!r}", "POST", "/cancel-job.json", {"data": {"id": bad}}))
        add((f"data of {bad!r}", "GET", f"/api/jobs/{requests.utils.quote(bad, safe='')}/data/",
             {}))  # fmt: skip
    add(("cancel unknown id", "POST", "/cancel-job.json", {"data": {"id": JOB}}))
    for name in BAD_LOGS:
        add((f"log {name[:40]!r}", "GET", f"/get-log/data/{name}", {}))
    for status in ["RUNNINGX", "", " ", "ACTIVE,PENDING", "%00", "\x00", "ünknown", "x" * 500]:
        add((f"status={status[:20]!r}", "GET", "/list-jobs.json", {"params": {"status": status}}))
    for key, value in [("limit", "-1"), ("limit", "10001"), ("limit", "1e3"), ("offset", "-5"),
                       ("offset", "x"), ("limit", "9" * 400)]:  # fmt: skip
        add((f"{key}={value[:10]}", "GET", "/list-jobs.json",
             {"params": {"status": "ACTIVE", key: value}}))  # fmt: skip
    # Duplicated parameters, on every endpoint that takes one.
    for method, path, params in [
        ("GET", "/list-spiders.json", [("project", "hard"), ("project", "hard")]),
        ("GET", "/list-jobs.json", [("status", "ACTIVE"), ("status", "FAILED")]),
        ("GET", "/list-jobs.json", [("id", JOB), ("id", JOB)]),
        ("POST", "/schedule-job.json", [*now.items(), ("when", "now")]),
        ("POST", "/schedule-job.json", [*now.items(), ("payload", "{}"), ("payload", "{}")]),
        ("POST", "/cancel-job.json", [("id", JOB), ("id", JOB)]),
        ("POST", "/remove-project.json", [("name", "x"), ("name", "y")]),
        ("GET", "/api/coins/", [("limit", "1"), ("limit", "2")]),
        ("GET", "/api/crypto/scraping_status/abc/", [("task_ids", "[]"), ("task_ids", "[]")]),
    ]:
        key = "params" if method == "GET" else "data"
        add((f"duplicate on {path}", method, path, {key: params}))
    # Missing parameters.
    for method, path, fields in [
        ("GET", "/list-spiders.json", {}),
        ("GET", "/list-jobs.json", {"project": "hard"}),
        ("POST", "/schedule-job.json", {"project": "hard", "when": "now"}),
        ("POST", "/schedule-job.json", {"spider": "instant", "when": "now"}),
        ("POST", "/schedule-job.json", BASE),
        ("POST", "/cancel-job.json", {}),
        ("POST", "/remove-project.json", {}),
        ("POST", "/push-project.json", {}),
        ("POST", "/api/crypto/start_scraping/", {}),
        ("GET", "/api/crypto/scraping_status/abc/", {}),
    ]:
        key = "params" if method == "GET" else "data"
        add((f"missing on {path} {sorted(fields)}", method, path, {key: fields}))
    # Non-UTF-8 bodies, parameters and paths.
    for field in ("project", "spider", "when", "description", "payload", "setting"):
        body = "&".join(f"{k}={v}" for k, v in now.items() if k != field) + f"&{field}=%ff%fe"
        add((f"non-UTF-8 {field}", "POST", "/schedule-job.json",
             {"data": body.encode(), "headers": {"Content-Type": FORM}}))  # fmt: skip
    add(("non-UTF-8 id", "POST", "/cancel-job.json",
         {"data": b"id=%ff", "headers": {"Content-Type": FORM}}))  # fmt: skip
    add(("non-UTF-8 name", "POST", "/remove-project.json",
         {"data": b"name=%c3%28", "headers": {"Content-Type": FORM}}))  # fmt: skip
    add(("non-UTF-8 query", "GET", "/list-jobs.json?status=%ff", {}))
    add(("non-UTF-8 path", "GET", "/get-log/data/%ff%fe.out", {}))
    add(("non-UTF-8 coin", "GET", "/api/coins/%ff/", {}))
    bad_json = {"data": b'{"coins": ["\xff"]}', "headers": {"Content-Type": "application/json"}}
    add(("non-UTF-8 JSON body", "POST", "/api/crypto/start_scraping/", bad_json))
    add(("JSON not an object", "POST", "/api/crypto/start_scraping/", {"json": ["BTC"]}))
    add(("coins not a list", "POST", "/api/crypto/start_scraping/", {"json": {"coins": 5}}))
    add(("coins of NULs", "POST", "/api/crypto/start_scraping/", {"json": {"coins": ["\x00"]}}))
    add(("multipart without boundary", "POST", "/schedule-job.json",
         {"data": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data"}}))  # fmt: skip
    add(("archive not a zip", "POST", "/push-project.json", {"files": {"archive": b"PK\x03\x04"}}))
    add(("bad task_ids", "GET", "/api/crypto/scraping_status/abc/", {"params": {"task_ids": "{"}}))
    add(("bad since", "GET", "/api/coins/bitcoin/history/", {"params": {"since": "soon"}}))
    add(("bad source", "GET", "/api/coins/", {"params": {"source": "web"}}))
    add(("coin key with NUL", "GET", "/api/coins/a%00b/", {}))
    # Wrong methods on every route of the description.
    spec = json.loads((ROOT / "daemon" / "openapi.json").read_text(encoding="utf-8"))
    for path, ops in spec["paths"].items():
        concrete = path.replace("{name}", f"{JOB}.out").replace("{coin}", "bitcoin")
        concrete = concrete.replace("{job_id}", JOB)
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - {m.upper() for m in ops}:
            add((f"{method} {path}", method, concrete, {}))
    return cases


def test_hostile_requests_on_every_endpoint_get_4xx_json(daemon: DaemonProcess) -> None:
    session = requests.Session()
    failures = []
    cases = hostile_cases()
    for label, method, path, kwargs in cases:
        rsp = session.request(method, daemon.url + path, timeout=30, **kwargs)
        text = rsp.text
        try:
            body = rsp.json()
        except ValueError:
            body = None
        problems = []
        if not 400 <= rsp.status_code < 500:
            problems.append(f"status {rsp.status_code}")
        if not rsp.headers.get("Content-Type", "").startswith("application/json"):
            problems.append(f"type {rsp.headers.get('Content-Type')}")
        if not isinstance(body, dict) or not (
            body.get("msg") or body.get("message") or body.get("error")
        ):
            problems.append("no JSON error message")
        if "Traceback" in text or 'File "' in text:
            problems.append("traceback in body")
        if problems:
            failures.append(f"{label}: {problems}: {text[:200]!r}")
    assert not failures, "\n".join(failures)
    assert len(cases) > 150
    log = daemon.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Unhandled" not in log, log
    # Nothing of all that was scheduled.
    assert daemon.get("/list-jobs.json", params={"status": "PENDING"}).json()["jobs"] == []


# -- auth -----------------------------------------------------------------------------

PASSWORD = "pässwörd-9"


@pytest.fixture(scope="module")
def auth_daemon(start_module_daemon: DaemonFactory) -> DaemonProcess:
    env = {"COINSPIDERS_PASSWORD": PASSWORD}
    return start_hard_daemon(start_module_daemon, env=env, auth={"username": "admin"})


def every_route() -> list[tuple[str, str]]:
    spec = json.loads((ROOT / "daemon" / "openapi.json").read_text(encoding="utf-8"))
    out = []
    for path, ops in spec["paths"].items():
        concrete = path.replace("{name}", f"{JOB}.out").replace("{coin}", "bitcoin")
        concrete = concrete.replace("{job_id}", JOB)
        out += [(method.upper(), concrete) for method in ops]
    return out


def test_every_route_needs_the_password_and_401_says_nothing_more(
    auth_daemon: DaemonProcess,
) -> None:
    routes = every_route()
    assert ("GET", "/openapi.json") in routes and ("GET", "/api/coins/") in routes
    wrong = [None, ("admin", "wrong"), ("root", PASSWORD), ("admin", PASSWORD[:-1]), ("", "")]
    for method, path in [*routes, ("GET", "/nowhere")]:
        for auth in wrong:
            rsp = requests.request(method, auth_daemon.url + path, auth=auth, timeout=10)
            assert rsp.status_code == 401, (method, path, auth)
            assert rsp.json() == {"status": "error", "msg": "Authentication required"}
            assert PASSWORD not in rsp.text
        rsp = requests.request(method, auth_daemon.url + path, auth=("admin", PASSWORD), timeout=10)
        assert rsp.status_code != 401, (method, path)
    headers = {"Authorization": "Basic !!!not-base64"}
    rsp = requests.get(auth_daemon.url + "/status.json", headers=headers, timeout=10)
    assert rsp.status_code == 401
    assert PASSWORD not in auth_daemon.log_path.read_text(errors="replace")


RSS_WARMUP = 2000
RSS_REQUESTS = 10_000


def test_rss_stays_flat_over_10000_authenticated_requests(auth_daemon: DaemonProcess) -> None:
    token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    paths = ["/status.json", "/list-projects.json", "/list-jobs.json?status=ACTIVE&limit=5"]
    conn = http.client.HTTPConnection("127.0.0.1", auth_daemon.port, timeout=30)
    proc = psutil.Process(auth_daemon.proc.pid)

    def burst(count: int) -> None:
        for n in range(count):
            conn.request("GET", paths[n % len(paths)], headers=headers)
            rsp = conn.getresponse()
            rsp.read()
            assert rsp.status == 200

    burst(RSS_WARMUP)
    before = proc.memory_info().rss
    t0 = time.monotonic()
    burst(RSS_REQUESTS)
    elapsed = time.monotonic() - t0
    after = proc.memory_info().rss
    conn.close()
    growth = (after - before) / 1024
    print(
        f"RSS over {RSS_REQUESTS} authenticated requests: {before / 2**20:.1f} MiB -> "
        f"{after / 2**20:.1f} MiB ({growth:+.0f} KiB, {growth * 1024 / RSS_REQUESTS:+.1f} B per "
        f"request) in {elapsed:.1f} s"
    )
    assert after - before < 5 * 2**20


def test_upload_over_the_cap_is_413_and_never_kept_in_memory(daemon: DaemonProcess) -> None:
    """50 MB announced against a 4 MB cap: the body is dropped as it arrives (the daemon's
    memory does not grow with it), then answered 413 in the JSON envelope."""
    import socket

    proc = psutil.Process(daemon.proc.pid)
    size, chunk = 50 * 2**20, b"\0" * 2**20
    before = peak = proc.memory_info().rss
    biggest_file = 0

    def largest_open_file() -> int:
        """Twisted spools big bodies to an unlinked temp file: none may grow either."""
        sizes = [0]
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            try:
                st = os.stat(f"/proc/{proc.pid}/fd/{fd}")
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                sizes.append(st.st_size)
        return max(sizes)

    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
        head = (
            "POST /push-project.json HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {size}\r\n\r\n"
        )
        sock.sendall(head.encode())
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
            peak = max(peak, proc.memory_info().rss)
            biggest_file = max(biggest_file, largest_open_file())
        reply = b""
        while not reply.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"status": "error"' in reply and b"upload cap of 4000000 bytes" in reply
    print(f"RSS while 50 MB were refused: {before / 2**20:.1f} -> peak {peak / 2**20:.1f} MiB")
    assert peak - before < 10 * 2**20
    assert biggest_file < 4_000_000


# -- unreadable config and store ------------------------------------------------------


def _refused_start(config: Path) -> str:
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and "listening" not in res.stdout
    return res.stderr


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00\x01 not text", b"port: [1,\n  x: :\n", b"- a list\n- not a mapping\n"],
    ids=["not-utf8", "bad-yaml", "not-a-mapping"],
)
def test_unreadable_config_stops_the_start_naming_the_file(tmp_path: Path, content: bytes) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(content)
    assert str(config) in _refused_start(config)
    assert config.read_bytes() == content
    assert not (tmp_path / "data").exists()


def test_truncated_store_stops_the_start_naming_the_file(tmp_path: Path) -> None:
    import sqlite3

    data = tmp_path / "data"
    data.mkdir()
    store = data / "daemon.sqlite"
    conn = sqlite3.connect(store)
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 2000)
    conn.commit()
    conn.close()
    cut = store.read_bytes()[: store.stat().st_size // 2]
    store.write_bytes(cut)
    config = tmp_path / "config.yaml"
    config.write_text(f"port: 0\ndata_dir: {json.dumps(str(data))}\n")
    assert f"store {store} is unusable" in _refused_start(config)
    assert store.read_bytes() == cut
