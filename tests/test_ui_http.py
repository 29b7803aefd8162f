"""The dashboard over plain HTTP against a real daemon: the redirect, auth, the
cross-site guard of state-changing routes, the job folder's walls, and the event stream
(changes, log resume by Last-Event-ID, the heartbeat, dropping a reader that stops)."""

from __future__ import annotations

import html
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon_support import DaemonFactory, DaemonProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)
PASSWORD = "s3cret-ui"


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory) -> DaemonProcess:
    return start_module_daemon(completed_cap=0)


@pytest.fixture(scope="module")
def finished(daemon: DaemonProcess) -> str:
    job_id = daemon.schedule("items")
    daemon.wait_status(job_id, ("SUCCESSFUL",))
    return job_id


def jobs_of(daemon: DaemonProcess) -> int:
    return len(daemon.get("/list-jobs.json", params={"status": "completed"}).json()["jobs"]) + len(
        daemon.get("/list-jobs.json", params={"status": "active"}).json()["jobs"]
    )


def test_root_redirects_relatively_to_the_dashboard(daemon: DaemonProcess) -> None:
    rsp = daemon.get("/", allow_redirects=False)
    assert (rsp.status_code, rsp.headers["Location"]) == (302, "ui/")
    rsp = daemon.get("/ui", allow_redirects=False)
    assert (rsp.status_code, rsp.headers["Location"]) == (302, "ui/")
    assert daemon.post("/").status_code == 405
    page = daemon.get("/ui/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    # Every link and asset is relative: nothing starts with "/" or names a host.
    refs = re.findall(r'(?:href|src|hx-get|hx-post)="([^"]*)"', page.text)
    assert refs and not [r for r in refs if r.startswith("/") or "://" in r], refs


@pytest.mark.parametrize(
    "headers",
    [{}, {"HX-Request": "true", "Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-origin"}],
)
def test_state_changing_routes_refuse_cross_site_requests(
    daemon: DaemonProcess, headers: dict[str, str]
) -> None:
    before = jobs_of(daemon)
    rsp = daemon.post(
        "/ui/actions/run", data={"project": "toy", "spider": "items"}, headers=headers
    )
    assert rsp.status_code == 403
    assert jobs_of(daemon) == before  # nothing was started


def test_the_dashboards_own_request_runs_the_spider(daemon: DaemonProcess) -> None:
    rsp = daemon.post(
        "/ui/actions/run",
        data={"project": "toy", "spider": "items"},
        headers={"HX-Request": "true", "Sec-Fetch-Site": "same-origin"},
    )
    assert rsp.status_code == 200, rsp.text
    job_id = re.search(r'href="jobs/([0-9a-f-]{36})"', rsp.text).group(1)  # type: ignore[union-attr]
    daemon.wait_status(job_id, ("SUCCESSFUL",))
    bad = daemon.post(
        "/ui/actions/run", data={"project": "toy", "spider": "nope"}, headers={"HX-Request": "true"}
    )
    assert bad.status_code == 404 and "No spider nope in toy" in bad.text


def test_the_job_folder_is_walled(daemon: DaemonProcess, finished: str, tmp_path: Path) -> None:
    folder = daemon.workdir / "data" / finished
    folder.mkdir(exist_ok=True)
    (folder / "items.jl").write_text('{"n": 0}\n')
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (folder / "link.txt").symlink_to(secret)
    assert daemon.get(f"/ui/jobs/{finished}/file/items.jl").text == '{"n": 0}\n'
    for name in ("link.txt", "..%2Fdaemon.sqlite", "../daemon.sqlite", "%2E%2E/daemon.sqlite"):
        rsp = daemon.get(f"/ui/jobs/{finished}/file/{name}")
        assert rsp.status_code == 404, name
        assert "outside" not in rsp.text and "SQLite" not in rsp.text


def test_pages_need_the_same_auth_as_the_api(start_daemon: DaemonFactory) -> None:
    guarded = start_daemon(env={"COINSPIDERS_PASSWORD": PASSWORD}, auth={"username": "admin"})
    for path in ("/ui/", "/ui/jobs", "/ui/events", "/ui/static/app.js"):
        assert requests.get(guarded.url + path, timeout=10).status_code == 401, path
    ok = requests.get(guarded.url + "/ui/jobs", auth=("admin", PASSWORD), timeout=10)
    assert ok.status_code == 200


# -- the event stream --------------------------------------------------------------------


class Events:
    """A raw SSE reader on a socket (so the test decides when bytes are read)."""

    def __init__(self, daemon: DaemonProcess, query: str, headers: dict[str, str] | None = None):
        self.sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=60)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(
            f"GET /ui/events{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
            f"{extra}\r\n".encode()
        )
        self.buffer = b""

    def read_until(self, needle: bytes, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.buffer:
            assert time.monotonic() < deadline, f"{needle!r} not in {self.buffer[-500:]!r}"
            chunk = self.sock.recv(65536)
            assert chunk, f"closed before {needle!r}: {self.buffer[-500:]!r}"
            self.buffer += chunk
        return self.buffer

    def events(self) -> list[dict[str, str]]:
        body = self.buffer.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")
        # Chunked transfer: drop the chunk-size lines (hex digits alone on a line).
        body = re.sub(r"\r\n[0-9a-f]+\r\n", "", "\r\n" + body)
        out = []
        for block in body.split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                key, _, value = line.partition(": ")
                if key in ("id", "event", "data"):
                    fields[key] = value
            if "event" in fields:
                out.append(fields)
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def open_events() -> Iterator[Any]:
    opened: list[Events] = []

    def open_(daemon: DaemonProcess, query: str = "", **kw: Any) -> Events:
        events = Events(daemon, query, **kw)
        opened.append(events)
        return events

    yield open_
    for events in opened:
        events.close()


def log_lines(events: list[dict[str, str]]) -> list[str]:
    lines: list[str] = []
    for event in events:
        if event["event"] == "log":
            lines += [html.unescape(t) for t in re.findall(r"<div[^>]*>(.*?)</div>", event["data"])]
    return lines


def test_a_job_change_reaches_an_open_stream(daemon: DaemonProcess, open_events: Any) -> None:
    stream = open_events(daemon)
    stream.read_until(b": open")
    job_id = daemon.schedule("items")
    stream.read_until(job_id.encode())
    changed = [e for e in stream.events() if e["event"] == "changed"]
    assert any(job_id in e["data"] for e in changed)


def test_a_log_resumes_from_last_event_id_without_gap_or_duplicate(
    daemon: DaemonProcess, finished: str, open_events: Any
) -> None:
    log = daemon.workdir / "data" / "logs" / f"{finished}.err"
    if not log.exists():
        log = next((daemon.workdir / "data").rglob(f"{finished}.err"))
    with log.open("a") as fh:
        for n in range(20000):
            fh.write(f"filler line {n:05d} <tag> & more\n")
    whole = log.read_bytes().decode().rstrip("\n").split("\n")
    first = open_events(daemon, f"?log={finished}.err&from=0")
    first.read_until(b"event: logend")
    events = first.events()
    assert log_lines(events) == whole
    ids = [int(e["id"]) for e in events if e["event"] == "log"]
    assert len(ids) > 3 and ids == sorted(ids) and ids[-1] == log.stat().st_size
    # A browser reconnecting sends the last id it got; the stream goes on from there.
    cut = ids[1]
    again = open_events(daemon, f"?log={finished}.err&from=0", headers={"Last-Event-ID": str(cut)})
    again.read_until(b"event: logend")
    resumed = log_lines(again.events())
    expected = log.read_bytes()[cut:].decode().rstrip("\n").split("\n")
    assert resumed == expected
    assert log_lines(events)[: len(whole) - len(resumed)] + resumed == whole


def test_a_reader_that_stops_reading_is_dropped(
    daemon: DaemonProcess, finished: str, open_events: Any
) -> None:
    log = next((daemon.workdir / "data").rglob(f"{finished}.out"))
    line = b"x" * 1000 + b"\n"
    with log.open("ab") as fh:
        fh.write(line * 30000)  # 30 MB
    stalled = Events.__new__(Events)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", daemon.port))
    sock.sendall(f"GET /ui/events?log={finished}.out&from=0 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    stalled.sock, stalled.buffer = sock, b""
    wait_until(
        daemon.log,
        60,
        "the daemon to drop the stalled stream",
        until=lambda t: "dropped a stream" in t,
    )
    received = 0
    sock.settimeout(30)
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        pass
    sock.close()
    assert received < 10 * 1024 * 1024  # cut off, not handed the 30 MB
    # The daemon is fine: a new stream works.
    assert daemon.get("/ui/jobs").status_code == 200


def test_heartbeat_comment_every_15_seconds(daemon: DaemonProcess, open_events: Any) -> None:
    stream = open_events(daemon)
    stream.read_until(b": open")
    stream.read_until(b": keep-alive", timeout=40)


def test_a_job_page_carries_the_logs_tail_not_the_whole_log(
    daemon: DaemonProcess, finished: str
) -> None:
    log = next((daemon.workdir / "data").rglob(f"{finished}.out"))
    with log.open("ab") as fh:
        for n in range(100_000):
            fh.write(f"big line {n:06d}\n".encode())
    page = daemon.get(f"/ui/jobs/{finished}?log=out")
    assert page.status_code == 200
    assert "big line 099999" in page.text and "big line 000000" not in page.text
    assert len(page.content) < 150_000  # 64 KiB of log and the page around it
    assert re.search(r"The last 6\d\.\d KiB of \d+\.\d MiB", page.text)
    assert f'href="../get-log/data/{finished}.out" download' in page.text


def test_a_job_page_previews_the_folder(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("items")
    daemon.wait_status(job_id, ("SUCCESSFUL",))
    folder = daemon.workdir / "data" / job_id
    (folder / "Images").mkdir(parents=True, exist_ok=True)
    (folder / "Images" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "data.json").write_text('{"coins": []}')
    with (folder / "items.jl").open("w") as fh:
        for n in range(30):
            fh.write(f'{{"n": {n}, "name": "<i>x{n}</i>"}}\n')
    page = daemon.get(f"/ui/jobs/{job_id}").text
    previews = re.findall(r"<li><code>(.*?)</code></li>", page)
    assert len(previews) == 20 and html.unescape(previews[0]) == '{"n": 0, "name": "<i>x0</i>"}'
    assert "<i>x0</i>" not in page  # escaped, never markup
    assert f'src="jobs/{job_id}/file/Images/1.png"' in page
    assert f'href="jobs/{job_id}/file/data.json"' in page
    logo = daemon.get(f"/ui/jobs/{job_id}/file/Images/1.png")
    assert logo.status_code == 200, logo.text[-600:]
    assert logo.headers["Content-Type"] == "image/png"
    assert daemon.get(f"/ui/jobs/{job_id}/file/data.json").json() == {"coins": []}


def test_the_jobs_time_filter_reads_times_in_the_daemons_zone(
    daemon: DaemonProcess, finished: str
) -> None:
    def total(query: str) -> str:
        page = daemon.get("/ui/jobs" + query)
        assert page.status_code == 200, page.text
        return re.search(r"Page \d+ of \d+ · ([\d,]+) jobs", page.text).group(1)  # type: ignore[union-attr]

    later = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + 3600))
    earlier = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 3600))
    assert total(f"?since={later}") == "0"
    assert int(total(f"?since={earlier}")) >= 1
    assert total(f"?until={earlier}") == "0"
    assert total(f"?id={finished[:8]}") == "1"
    bad = daemon.get("/ui/jobs?since=yesterday")
    assert bad.status_code == 400 and "since must be a date" in bad.text


# -- schedules, re-run and bulk cancel from the dashboard ----------------------------------

OWN = {"HX-Request": "true", "Sec-Fetch-Site": "same-origin"}


def test_the_when_preview_answers_the_servers_error_or_the_next_five_times(
    daemon: DaemonProcess,
) -> None:
    bad = daemon.get("/ui/schedules/preview", params={"when": "every blue moon"}, headers=OWN)
    api = daemon.get("/preview-when.json", params={"when": "every blue moon"})
    assert bad.status_code == 200 and api.status_code == 400
    assert 'role="alert"' in bad.text and api.json()["msg"] in html.unescape(bad.text)
    good = daemon.get(
        "/ui/schedules/preview",
        params={"when": "every day at 03:00", "tz": "Asia/Tokyo"},
        headers=OWN,
    )
    times = re.findall(r"<li><time datetime=\"([^\"]+)\">", good.text)
    expected = daemon.get(
        "/preview-when.json", params={"when": "every day at 03:00", "count": 5}
    ).json()["next_runs"]
    assert times == [run["utc"] for run in expected]
    assert good.text.count("Asia/Tokyo") == 5  # each time in the browser's zone too
    assert "every day at 03:00" in good.text  # the plain reading


def test_a_schedule_saved_paused_resumed_and_edited_from_the_page(daemon: DaemonProcess) -> None:
    form = {
        "project": "toy",
        "spider": "items",
        "when": "every day at 03:00",
        "pk": ["coins", ""],
        "pv": ["BTC,ETH", ""],
        "sk": ["DOWNLOAD_DELAY"],
        "sv": ["0.5"],
    }
    bad_setting = daemon.post("/ui/actions/schedule", data={**form, "sk": ["no good"]}, headers=OWN)
    assert bad_setting.status_code == 400 and "not KEY=VALUE" in bad_setting.text
    saved = daemon.post("/ui/actions/schedule", data=form, headers=OWN)
    assert saved.status_code == 200, saved.text
    assert "schedule-job.json" in saved.text  # its curl
    job_id = re.search(r'href="jobs/([0-9a-f-]{36})"', saved.text).group(1)  # type: ignore[union-attr]
    try:
        job = daemon.job(job_id)
        assert job["payload"] == '{"coins": "BTC,ETH"}' and job["settings"] == ["DOWNLOAD_DELAY"]
        page = daemon.get("/ui/schedules")
        assert f'data-id="{job_id}" data-paused="no"' in page.text
        paused = daemon.post("/ui/actions/pause", data={"id": job_id}, headers=OWN)
        assert paused.status_code == 200 and daemon.job(job_id)["paused"] is True
        rows = daemon.get("/ui/schedules/rows", params={"tz": "Asia/Tokyo"})
        assert f'data-id="{job_id}" data-paused="yes"' in rows.text
        resumed = daemon.post("/ui/actions/resume", data={"id": job_id}, headers=OWN)
        assert resumed.status_code == 200 and daemon.job(job_id)["paused"] is False
        rows = daemon.get("/ui/schedules/rows", params={"tz": "Asia/Tokyo"})
        assert re.search(r"\d\d:\d\d:\d\d JST", rows.text)  # next run in the browser's zone
        refused = daemon.post(
            "/ui/actions/edit", data={"id": job_id, "when": "every blue moon"}, headers=OWN
        )
        assert refused.status_code == 400 and daemon.job(job_id)["schedule"] == form["when"]
        edited = daemon.post(
            "/ui/actions/edit", data={"id": job_id, "when": "every monday at 04:00"}, headers=OWN
        )
        assert edited.status_code == 200 and daemon.job(job_id)["schedule"] == (
            "every monday at 04:00"
        )
    finally:
        daemon.post("/cancel-job.json", data={"id": job_id})


def test_rerun_and_bulk_cancel_from_the_dashboard(daemon: DaemonProcess, finished: str) -> None:
    rerun = daemon.post("/ui/actions/rerun", data={"id": finished}, headers=OWN)
    assert rerun.status_code == 200, rerun.text
    new_id = re.search(r'href="jobs/([0-9a-f-]{36})"', rerun.text).group(1)  # type: ignore[union-attr]
    assert new_id != finished and daemon.job(new_id)["spider"] == "items"
    a = daemon.schedule("items", when="every day at 03:00")
    b = daemon.schedule("items", when="every day at 04:00")
    kept = daemon.get("/ui/jobs/rows", params={"sel": [a]}).text
    assert re.search(rf'value="{a}"[^>]*checked', kept)  # a live refresh keeps the ticks
    assert not re.search(rf'value="{b}"[^>]*checked', kept)
    done = daemon.post("/ui/actions/cancel-many", data={"sel": [a, b, finished]}, headers=OWN)
    assert done.status_code == 200 and "Canceled 2 of 3 selected jobs" in done.text, done.text
    assert daemon.job(a)["status"] == daemon.job(b)["status"] == "CANCELED"
    nothing = daemon.post("/ui/actions/cancel-many", data={}, headers=OWN)
    assert nothing.status_code == 400


def test_attempts_and_chain_waits_show_where_jobs_show(daemon: DaemonProcess) -> None:
    """A job that may retry shows its attempt, one that waits for another says which,
    on the Jobs rows and on its page."""
    first = daemon.schedule("items", when="every day at 03:00")
    waiter = daemon.schedule("items", after=first, on="always", retries="2")
    try:
        rows = daemon.get("/ui/jobs/rows").text
        row = re.search(rf'<tr data-id="{waiter}".*?</tr>', rows, re.S)
        assert row, rows[:2000]
        assert "attempt 1/3" in row.group(0)
        assert f'waits for <a href="jobs/{first}">{first[:8]}</a> (always)' in row.group(0)
        page = daemon.get(f"/ui/jobs/{waiter}").text
        assert re.search(r'data-testid="attempt">1 of 3', page), page[:3000]
        assert re.search(
            rf'data-testid="after"><a href="jobs/{first}">{first}</a> on always '
            r"\(waiting\)",
            page,
        )
    finally:
        daemon.post("/cancel-jobs.json", data={"id": [waiter, first]})
