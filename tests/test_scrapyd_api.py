"""scrapyd's API on a real daemon: scrapyd 1.6.0's bytes for every captured request, on
the second listener and under /scrapyd/ (one slash or two); eggs as projects; jobs shared
with scrapy-do's API; logs with Range; auth; real error codes on request."""

from __future__ import annotations

import contextlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests

from daemon.__main__ import parse_args
from daemon.config import ConfigError, load_config
from tests.daemon_support import DaemonFactory, DaemonProcess, write_scrapy_project
from tests.scrapyd_support import (
    ECHO_SPIDER,
    REQUESTS,
    WAIT_SPIDER,
    make_egg,
    no_projects,
    scrapyd_config,
    scrapyd_port,
    write_egg_project,
)
from tests.waiting import wait_until

FIXTURE = Path(__file__).parent / "fixtures" / "scrapyd-1.6.0-replies.json"
HEADERS = (
    "Content-Type",
    "Allow",
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
)


class Scrapyd:
    """A daemon and the two places its scrapyd API is served."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.second = f"http://127.0.0.1:{scrapyd_port(daemon)}"
        self.mounted = daemon.url + "/scrapyd"

    def get(self, name: str, base: str | None = None, **kw: Any) -> requests.Response:
        return requests.get(f"{base or self.second}/{name}", timeout=60, **kw)

    def post(self, name: str, base: str | None = None, **kw: Any) -> requests.Response:
        return requests.post(f"{base or self.second}/{name}", timeout=60, **kw)

    def add_egg(self, project: str, version: str, egg: bytes) -> dict[str, Any]:
        rsp = self.post(
            "addversion.json",
            data={"project": project, "version": version},
            files={"egg": ("p.egg", egg)},
        )
        assert rsp.status_code == 200, rsp.text
        return rsp.json()

    def wait_state(self, job: str, state: str, timeout: float = 60.0) -> None:
        wait_until(
            lambda: self.get("status.json", params={"job": job}).json()["currstate"],
            timeout,
            f"job {job} to be {state}",
            until=lambda got: got == state,
        )


@pytest.fixture
def scrapyd(start_daemon: DaemonFactory) -> Scrapyd:
    return Scrapyd(start_daemon(no_projects, **scrapyd_config()))


@pytest.fixture
def toy_egg(tmp_path: Path) -> bytes:
    return make_egg(write_egg_project(tmp_path / "src", "toy"), "toy")


def test_replies_match_scrapyd_1_6_0_byte_for_byte(scrapyd: Scrapyd, toy_egg: bytes) -> None:
    added = scrapyd.add_egg("toy", "1.0", toy_egg)
    assert added == {
        "project": "toy",
        "version": "1.0",
        "spiders": 2,
        "status": "ok",
        "node_name": "NODE",
    }
    captured = json.loads(FIXTURE.read_text())
    assert len(captured) == len(REQUESTS)
    mismatches = []
    for base in (scrapyd.second, scrapyd.mounted, scrapyd.mounted + "/"):
        for row in captured:
            where = "params" if row["method"] == "GET" else "data"
            rsp = requests.request(
                row["method"], base + row["path"], timeout=60, **{where: row["data"] or None}
            )
            got = {
                "status": rsp.status_code,
                "headers": {h: rsp.headers[h] for h in HEADERS if h in rsp.headers},
                "body": rsp.text,
            }
            want = {k: row[k] for k in ("status", "headers", "body")}
            if got != want:
                mismatches.append((base, row["method"], row["path"], row["data"], got, want))
    assert not mismatches, mismatches[:3]


def test_scheduled_job_runs_with_its_arguments_and_is_seen_by_both_apis(
    scrapyd: Scrapyd, tmp_path: Path
) -> None:
    egg = make_egg(write_egg_project(tmp_path / "src", "eggy"), "eggy")
    scrapyd.add_egg("eggy", "r1", egg)
    rsp = scrapyd.post(
        "schedule.json",
        data={"project": "eggy", "spider": "echo", "word": "hello", "setting": "ECHO_SETTING=x"},
    )
    body = rsp.json()
    assert body["status"] == "ok", body
    job = body["jobid"]
    scrapyd.wait_state(job, "finished")
    jobs = scrapyd.get("listjobs.json", params={"project": "eggy"}).json()
    (entry,) = jobs["finished"]
    assert entry["id"] == job and entry["spider"] == "echo"
    assert entry["args"] == {"word": "hello"} and entry["settings"] == {"ECHO_SETTING": "x"}
    assert list(entry)[:7] == [
        "id", "project", "spider", "start_time", "end_time", "log_url", "items_url",
    ]  # fmt: skip
    assert entry["log_url"] == f"/logs/eggy/echo/{job}.log"
    # ScrapydWeb and Gerapy read log tails with a suffix Range.
    tail = requests.get(
        scrapyd.second + entry["log_url"], headers={"Range": "bytes=-1000"}, timeout=30
    )
    assert tail.status_code == 206 and len(tail.content) <= 1000
    full = requests.get(scrapyd.second + entry["log_url"], timeout=30).text
    assert "ECHO-ARG hello" in full and "ECHO-SETTING x" in full
    # The same job in scrapy-do's ledger, and the log under the /scrapyd/ mount.
    assert scrapyd.daemon.job(job)["status"] == "SUCCESSFUL"
    mounted = scrapyd.get("listjobs.json", base=scrapyd.mounted).json()["finished"][0]
    assert mounted["log_url"] == f"/scrapyd/logs/eggy/echo/{job}.log"
    assert "ECHO-ARG hello" in scrapyd.daemon.get(mounted["log_url"]).text
    # A scrapy-do job shows in scrapyd's listjobs, its payload as one argument.
    other = scrapyd.daemon.schedule("echo", project="eggy", payload='{"k": 1}')
    scrapyd.wait_state(other, "finished")
    finished = scrapyd.get("listjobs.json").json()["finished"]
    assert {j["id"]: j["args"] for j in finished}[other] == {"payload": '{"k": 1}'}
    status = scrapyd.get("daemonstatus.json").json()
    assert (status["pending"], status["running"], status["finished"]) == (0, 0, 2)
    # Unknown logs, and traversal attempts, are 404s.
    for path in (f"/logs/eggy/other/{job}.log", "/logs/eggy/echo/nope.log", "/logs/../x/y.log"):
        assert requests.get(scrapyd.second + path, timeout=30).status_code == 404


def test_cancel_pending_and_running_jobs(scrapyd: Scrapyd, tmp_path: Path) -> None:
    src = write_scrapy_project(tmp_path / "src", "waiter", {"waits.py": WAIT_SPIDER})
    scrapyd.add_egg("waiter", "1", make_egg(src, "waiter"))
    until = tmp_path / "go"
    ids = []
    for _ in range(2):  # one slot: the second waits
        rsp = scrapyd.post(
            "schedule.json", data={"project": "waiter", "spider": "waits", "until_file": str(until)}
        )
        ids.append(rsp.json()["jobid"])
    scrapyd.wait_state(ids[0], "running")
    jobs = scrapyd.get("listjobs.json").json()
    assert [j["id"] for j in jobs["pending"]] == [ids[1]]
    assert jobs["pending"][0]["args"] == {"until_file": str(until)}
    assert jobs["running"][0]["pid"] > 0
    wrong = scrapyd.post("cancel.json", data={"project": "other", "job": ids[1]}).json()
    assert wrong["message"] == "project 'other' not found"
    assert (
        scrapyd.post("cancel.json", data={"project": "waiter", "job": ids[1]}).json()["prevstate"]
        == "pending"
    )
    assert (
        scrapyd.post("cancel.json", data={"project": "waiter", "job": ids[0]}).json()["prevstate"]
        == "running"
    )
    scrapyd.wait_state(ids[0], "finished")
    assert scrapyd.daemon.job(ids[0])["status"] == "CANCELED"
    jobs = scrapyd.get("listjobs.json").json()
    assert jobs["pending"] == [] and [j["id"] for j in jobs["finished"]] == [ids[0]]


def test_versions_and_removal_across_both_apis(
    scrapyd: Scrapyd, toy_egg: bytes, tmp_path: Path
) -> None:
    scrapyd.add_egg("toy", "1.9", toy_egg)
    assert scrapyd.get("listversions.json", params={"project": "toy"}).json()["versions"] == ["1_9"]
    scrapyd.add_egg("toy", "1.10", toy_egg)
    assert scrapyd.get("listversions.json", params={"project": "toy"}).json()["versions"] == [
        "1_9",
        "1_10",
    ]
    ok = scrapyd.post(
        "schedule.json", data={"project": "toy", "spider": "echo", "_version": "1_10"}
    ).json()
    assert ok["status"] == "ok"
    scrapyd.wait_state(ok["jobid"], "finished")
    # A zip pushed through scrapy-do's API is a scrapyd project too.
    import io
    import zipfile

    src = write_egg_project(tmp_path / "zipped", "zipped")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(src).as_posix())
    pushed = scrapyd.daemon.post("/push-project.json", files={"archive": ("z.zip", buf.getvalue())})
    assert pushed.status_code == 200, pushed.text
    assert scrapyd.get("listprojects.json").json()["projects"] == ["toy", "zipped"]
    (version,) = scrapyd.get("listversions.json", params={"project": "zipped"}).json()["versions"]
    assert scrapyd.get("listspiders.json", params={"project": "zipped"}).json()["spiders"] == [
        "echo",
        "other",
    ]
    # An egg pushed through scrapyd's API is a scrapy-do project.
    assert "toy" in scrapyd.daemon.get("/list-projects.json").json()["projects"]
    gone = scrapyd.post("delversion.json", data={"project": "zipped", "version": version}).json()
    assert gone["status"] == "ok", gone
    assert scrapyd.post("delproject.json", data={"project": "toy"}).json()["status"] == "ok"
    assert scrapyd.get("listprojects.json").json()["projects"] == []
    assert scrapyd.daemon.get("/list-projects.json").json()["projects"] == []


def test_delproject_drops_pending_jobs(scrapyd: Scrapyd, tmp_path: Path) -> None:
    """A job of another project holds the only slot, so the deleted project's job is
    really pending when delproject runs (a running crawl would make it refuse)."""
    src = write_scrapy_project(tmp_path / "src", "waiter", {"waits.py": WAIT_SPIDER})
    egg = make_egg(src, "waiter")
    scrapyd.add_egg("waiter", "1", egg)
    scrapyd.add_egg("blocker", "1", egg)
    until = tmp_path / "go"
    data = {"spider": "waits", "until_file": str(until)}
    blocker = scrapyd.post("schedule.json", data={"project": "blocker", **data}).json()["jobid"]
    scrapyd.wait_state(blocker, "running")
    queued = scrapyd.post("schedule.json", data={"project": "waiter", **data}).json()["jobid"]
    assert [j["id"] for j in scrapyd.get("listjobs.json").json()["pending"]] == [queued]
    reply = scrapyd.post("delproject.json", data={"project": "waiter"}).json()
    assert reply["status"] == "ok", reply
    assert scrapyd.get("listjobs.json").json()["pending"] == []
    until.touch()
    scrapyd.wait_state(blocker, "finished")
    job = scrapyd.daemon.job(queued)
    assert job["status"] == "CANCELED" and job["started"] is None, job


def test_bad_eggs_are_refused_with_the_stores_checks(scrapyd: Scrapyd, tmp_path: Path) -> None:
    src = write_egg_project(tmp_path / "src", "eggy")
    no_entry = make_egg(src, "eggy", entry_point=False)
    rsp = scrapyd.post(
        "addversion.json", data={"project": "eggy", "version": "1"}, files={"egg": ("e", no_entry)}
    )
    assert rsp.status_code == 200
    assert rsp.json()["status"] == "error" and "entry_points.txt" in rsp.json()["message"]
    # Sent urlencoded, as some clients do, an egg is still read.
    egg = make_egg(src, "eggy")
    rsp = scrapyd.post("addversion.json", data={"project": "eggy", "version": "2", "egg": egg})
    assert rsp.json()["spiders"] == 2, rsp.text
    bad_name = scrapyd.post(
        "addversion.json", data={"project": "a b", "version": "1"}, files={"egg": ("e", egg)}
    ).json()
    assert bad_name["status"] == "error" and "not allowed" in bad_name["message"]
    assert scrapyd.get("listprojects.json").json()["projects"] == ["eggy"]


def test_auth_answers_scrapyds_401_on_both_listeners(start_daemon: DaemonFactory) -> None:
    auth = {"username": "user", "password": "pw"}
    daemon = start_daemon(no_projects, auth=auth, **scrapyd_config())
    api = Scrapyd(daemon)
    for base in (api.second, api.mounted):
        refused = api.get("daemonstatus.json", base=base)
        assert refused.status_code == 401 and refused.content == b"Unauthorized"
        wrong = api.get("daemonstatus.json", base=base, auth=("user", "nope"))
        assert wrong.status_code == 401 and wrong.content == b"Unauthorized"
        # A body is refused from the headers, before it is read: the same answer.
        posted = api.post("schedule.json", base=base, data={"project": "x" * 5000})
        assert posted.status_code == 401 and posted.content == b"Unauthorized"
        assert api.get("daemonstatus.json", base=base, auth=("user", "pw")).json()["status"] == "ok"
    # scrapy-do's API keeps its own envelope.
    assert daemon.get("/status.json").json()["status"] == "error"


def test_real_error_codes_on_request(start_daemon: DaemonFactory) -> None:
    api = Scrapyd(start_daemon(no_projects, **scrapyd_config(error_codes=True)))
    rsp = api.get("listspiders.json", params={"project": "nope"})
    assert rsp.status_code == 404 and rsp.json()["message"] == "project 'nope' not found"
    assert api.post("schedule.json").status_code == 400
    assert api.get("schedule.json").status_code == 405


def test_config_and_command_line(tmp_path: Path) -> None:
    args = parse_args(["--scrapyd-port", "0"])
    assert args.scrapyd_port == 0
    config = load_config(None, {"scrapyd_port": 6800}, environ={})
    assert config.scrapyd.port == 6800 and not config.scrapyd.enabled
    path = tmp_path / "c.yaml"
    path.write_text("scrapyd:\n  enabled: yes\n  node_name: n1\n")
    loaded = load_config(path, environ={})
    assert loaded.scrapyd.enabled and loaded.scrapyd.node_name == "n1"
    assert loaded.scrapyd.port is None
    for bad in (
        "scrapyd:\n  port: 70000\n",
        "scrapyd:\n  colour: red\n",
        "scrapyd:\n  enabled: 1\n",
    ):
        path.write_text(bad)
        with pytest.raises(ConfigError, match="scrapyd"):
            load_config(path, environ={})


def test_callers_own_job_ids(scrapyd: Scrapyd, tmp_path: Path) -> None:
    egg = make_egg(write_egg_project(tmp_path / "src", "eggy"), "eggy")
    scrapyd.add_egg("eggy", "1", egg)
    data = {"project": "eggy", "spider": "echo", "word": "own"}
    own = "2024-05-01T12_00_00"  # ScrapydWeb's form
    rsp = scrapyd.post("schedule.json", data={**data, "jobid": own}).json()
    assert rsp["jobid"] == own, rsp
    scrapyd.wait_state(own, "finished")
    (entry,) = scrapyd.get("listjobs.json").json()["finished"]
    assert entry["id"] == own and entry["log_url"] == f"/logs/eggy/echo/{own}.log"
    assert "ECHO-ARG own" in requests.get(scrapyd.second + entry["log_url"], timeout=30).text
    again = scrapyd.post("schedule.json", data={**data, "jobid": own}).json()
    assert again["status"] == "error" and again["message"] == f"jobid '{own}' is already used"
    for bad in ("../x1", "logs", "projects", ".1", "a/1", "x" * 101 + "1"):
        refused = scrapyd.post("schedule.json", data={**data, "jobid": bad}).json()
        assert refused["status"] == "error" and "not allowed" in refused["message"], bad
    assert len(scrapyd.get("listjobs.json").json()["finished"]) == 1


def test_monitoring_pages_honour_x_forwarded_prefix(scrapyd: Scrapyd, tmp_path: Path) -> None:
    import re

    egg = make_egg(write_egg_project(tmp_path / "src", "eggy"), "eggy")
    scrapyd.add_egg("eggy", "1", egg)
    job = scrapyd.post("schedule.json", data={"project": "eggy", "spider": "echo"}).json()["jobid"]
    scrapyd.wait_state(job, "finished")
    proxied = {"X-Forwarded-Prefix": "/proxy"}
    home = requests.get(scrapyd.second + "/", headers=proxied, timeout=30)
    assert home.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<a href="/proxy/jobs">' in home.text and "<li>eggy</li>" in home.text
    page = requests.get(scrapyd.second + "/jobs", headers=proxied, timeout=30).text
    finished = page.split('<th colspan="9">Finished</th>')[1]
    cells = re.findall(r"<td>(.*?)</td>", finished, re.S)
    assert cells[:3] == ["eggy", "echo", job]
    assert f'<a href="/proxy/logs/eggy/echo/{job}.log">Log</a>' in finished
    assert re.fullmatch(r"\d+:\d\d:\d\d", cells[5])  # runtime
    # Under /scrapyd/ (no proxy) the links carry the mount path.
    mounted = scrapyd.daemon.get("/scrapyd/jobs").text
    assert f'href="/scrapyd/logs/eggy/echo/{job}.log"' in mounted
    # Log folders, as scrapyd's file listing: project, spider, then the job logs.
    assert 'href="eggy/"' in requests.get(scrapyd.second + "/logs/", timeout=30).text
    assert 'href="echo/"' in requests.get(scrapyd.second + "/logs/eggy/", timeout=30).text
    logs = requests.get(scrapyd.second + "/logs/eggy/echo/", timeout=30).text
    assert f'href="{job}.log"' in logs
    assert requests.get(scrapyd.second + "/logs/nope/", timeout=30).status_code == 404


def test_a_taken_scrapyd_port_stops_the_start_naming_it(start_daemon: DaemonFactory) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = start_daemon(no_projects, start=False, **scrapyd_config(port=port))
        # The main listener may be up (its port file written) before the second fails.
        with contextlib.suppress(RuntimeError):
            daemon.start()
        assert daemon.proc is not None and daemon.proc.wait(30) == 2
        assert f"cannot start: cannot listen on 127.0.0.1:{port} for scrapyd's API" in daemon.log()


VERSIONED_SPIDER = """
import scrapy


class Says(scrapy.Spider):
    name = "says"

    async def start(self):
        self.logger.info("SAYS %s", "{text}")
        return
        yield
"""

ONLY_IN_OLD = """
import scrapy


class Gone(scrapy.Spider):
    name = "gone"
"""


def _versioned_egg(folder: Path, text: str, extra: dict[str, str] | None = None) -> bytes:
    spiders = {"says.py": VERSIONED_SPIDER.replace("{text}", text), **(extra or {})}
    return make_egg(write_scrapy_project(folder, "multi", spiders), "multi")


def _run_and_read_log(scrapyd: Scrapyd, **fields: str) -> str:
    rsp = scrapyd.post("schedule.json", data={"project": "multi", "spider": "says", **fields})
    body = rsp.json()
    assert body["status"] == "ok", body
    scrapyd.wait_state(body["jobid"], "finished")
    log = scrapyd.get(f"logs/multi/says/{body['jobid']}.log")
    assert log.status_code == 200
    return log.text


def test_several_versions_in_version_order_each_running_its_own_code(
    scrapyd: Scrapyd, tmp_path: Path
) -> None:
    # Added out of order: the latest is the highest version, not the last added.
    scrapyd.add_egg("multi", "1.10", _versioned_egg(tmp_path / "new", "TEXT-OF-1.10"))
    old = _versioned_egg(tmp_path / "old", "TEXT-OF-1.9", {"gone.py": ONLY_IN_OLD})
    scrapyd.add_egg("multi", "1.9", old)
    scrapyd.add_egg("multi", "1.2", old)
    listed = scrapyd.get("listversions.json", params={"project": "multi"}).json()
    assert listed["versions"] == ["1_2", "1_9", "1_10"]
    # Each version's own spiders; the latest by default.
    spiders = {
        v: scrapyd.get("listspiders.json", params={"project": "multi", "_version": v}).json()
        for v in ("1.9", "1_10")
    }
    assert spiders["1.9"]["spiders"] == ["gone", "says"]
    assert spiders["1_10"]["spiders"] == ["says"]
    latest = scrapyd.get("listspiders.json", params={"project": "multi"}).json()
    assert latest["spiders"] == ["says"]
    # A crawl runs the version it was scheduled with (either spelling), else the latest.
    assert "SAYS TEXT-OF-1.9" in _run_and_read_log(scrapyd, _version="1.9")
    assert "SAYS TEXT-OF-1.10" in _run_and_read_log(scrapyd, _version="1_10")
    assert "SAYS TEXT-OF-1.10" in _run_and_read_log(scrapyd)
    gone = scrapyd.post("schedule.json", data={"project": "multi", "spider": "gone"}).json()
    assert gone["message"] == "spider 'gone' not found"
    pinned = scrapyd.post(
        "schedule.json", data={"project": "multi", "spider": "gone", "_version": "1.9"}
    ).json()
    assert pinned["status"] == "ok", pinned
    scrapyd.wait_state(pinned["jobid"], "finished")
    # delversion removes one; the next highest becomes the latest; the last takes the
    # project with it, as in scrapyd.
    assert scrapyd.post("delversion.json", data={"project": "multi", "version": "1.10"}).json() == {
        "status": "ok",
        "node_name": "NODE",
    }
    listed = scrapyd.get("listversions.json", params={"project": "multi"}).json()
    assert listed["versions"] == ["1_2", "1_9"]
    assert "SAYS TEXT-OF-1.9" in _run_and_read_log(scrapyd)
    missing = scrapyd.post("delversion.json", data={"project": "multi", "version": "1.10"})
    assert missing.json()["message"] == "version '1.10' not found"
    for version in ("1_2", "1.9"):
        done = scrapyd.post("delversion.json", data={"project": "multi", "version": version})
        assert done.json()["status"] == "ok", done.text
    assert scrapyd.get("listprojects.json").json()["projects"] == []
    assert scrapyd.get("listversions.json", params={"project": "multi"}).json()["versions"] == []


def test_versions_survive_a_restart_and_a_scrapy_do_push_replaces_the_latest(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_daemon(no_projects, **scrapyd_config())
    scrapyd = Scrapyd(daemon)
    scrapyd.add_egg("multi", "1", _versioned_egg(tmp_path / "a", "TEXT-OF-1"))
    scrapyd.add_egg("multi", "2", _versioned_egg(tmp_path / "b", "TEXT-OF-2"))
    daemon.stop()
    daemon = start_daemon.restart(daemon)
    # The log goes on in the same file: the second listener's new port is the last one.
    listening = re.compile(r"scrapyd API listening on https?://[^:]+:(\d+)")
    log = wait_until(
        daemon.log,
        20,
        "the restarted daemon's scrapyd listener",
        until=lambda text: len(listening.findall(text)) == 2,
    )
    scrapyd = Scrapyd(daemon)
    scrapyd.second = f"http://127.0.0.1:{listening.findall(log)[-1]}"
    listed = scrapyd.get("listversions.json", params={"project": "multi"}).json()
    assert listed["versions"] == ["1", "2"]
    assert "SAYS TEXT-OF-1" in _run_and_read_log(scrapyd, _version="1")
    # A push through scrapy-do's API is a new version that takes the latest's place.
    src = write_scrapy_project(
        tmp_path / "zipped", "multi", {"says.py": VERSIONED_SPIDER.replace("{text}", "PUSHED")}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(src).as_posix())
    pushed = daemon.post("/push-project.json", files={"archive": ("z.zip", buf.getvalue())})
    assert pushed.status_code == 200, pushed.text
    versions = scrapyd.get("listversions.json", params={"project": "multi"}).json()["versions"]
    assert len(versions) == 2 and versions[0] == "1" and versions[1] not in ("1", "2")
    assert "SAYS PUSHED" in _run_and_read_log(scrapyd)


ITEMS_SPIDER = """
import json
from pathlib import Path

import scrapy


class Writes(scrapy.Spider):
    name = "writes"

    async def start(self):
        # As the coinspiders pipelines do: the job folder's items.jl.
        folder = Path(self.settings.get("DATA_DIR")) / self.settings.get("JOB_ID")
        folder.mkdir(exist_ok=True)
        with open(folder / "items.jl", "w") as fh:
            for n in range(50):
                fh.write(json.dumps({"n": n}) + "\\n")
        return
        yield


class Links(scrapy.Spider):
    name = "links"

    async def start(self):
        # A crawl that points items.jl at a file of the daemon's.
        folder = Path(self.settings.get("DATA_DIR")) / self.settings.get("JOB_ID")
        folder.mkdir(exist_ok=True)
        (folder / "items.jl").symlink_to(self.target)
        return
        yield
"""


def test_items_are_served_and_listed_for_a_job_that_wrote_them(
    scrapyd: Scrapyd, tmp_path: Path
) -> None:
    src = write_scrapy_project(
        tmp_path / "src", "itemy", {"writes.py": ITEMS_SPIDER, "echo.py": ECHO_SPIDER}
    )
    scrapyd.add_egg("itemy", "1", make_egg(src, "itemy"))
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-OF-THE-DAEMON\n")
    ids = {}
    for spider in ("writes", "echo", "links"):
        fields = {"project": "itemy", "spider": spider, "target": str(secret)}
        rsp = scrapyd.post("schedule.json", data=fields)
        ids[spider] = rsp.json()["jobid"]
        scrapyd.wait_state(ids[spider], "finished")
    finished = {j["id"]: j for j in scrapyd.get("listjobs.json").json()["finished"]}
    url = finished[ids["writes"]]["items_url"]
    assert url == f"/items/itemy/writes/{ids['writes']}.jl"
    assert finished[ids["echo"]]["items_url"] is None  # wrote no items.jl
    assert finished[ids["links"]]["items_url"] is None  # a link is not served
    linked = requests.get(f"{scrapyd.second}/items/itemy/links/{ids['links']}.jl", timeout=30)
    assert linked.status_code == 404 and "SECRET" not in linked.text
    full = requests.get(scrapyd.second + url, timeout=30)
    assert full.status_code == 200
    lines = full.text.splitlines()
    assert len(lines) == 50 and json.loads(lines[-1]) == {"n": 49}
    tail = requests.get(scrapyd.second + url, headers={"Range": "bytes=-10"}, timeout=30)
    assert tail.status_code == 206 and tail.text == '{"n": 49}' + "\n"
    mounted = scrapyd.get("listjobs.json", base=scrapyd.mounted).json()["finished"]
    mounted_url = {j["id"]: j["items_url"] for j in mounted}[ids["writes"]]
    assert mounted_url == f"/scrapyd{url}"
    assert scrapyd.daemon.get(mounted_url).text == full.text
    for path in (
        f"/items/itemy/echo/{ids['writes']}.jl",
        f"/items/itemy/echo/{ids['echo']}.jl",
        f"/items/itemy/writes/{ids['writes']}.log",
        "/items/../x/y.jl",
    ):
        assert requests.get(scrapyd.second + path, timeout=30).status_code == 404, path


HUP_SPIDER = """
import asyncio
import signal
from pathlib import Path

import scrapy


class Hangs(scrapy.Spider):
    name = "hangs"

    async def start(self):
        got = []
        signal.signal(signal.SIGHUP, lambda *_: got.append(True))
        self.logger.info("HANGS-READY")
        while not got:
            await asyncio.sleep(0.05)
        self.logger.info("HANGS-GOT-HUP")
        yield {"done": True}
"""


def test_cancel_sends_the_signal_asked_for(scrapyd: Scrapyd, tmp_path: Path) -> None:
    src = write_scrapy_project(tmp_path / "src", "sig", {"hangs.py": HUP_SPIDER})
    scrapyd.add_egg("sig", "1", make_egg(src, "sig"))
    job = scrapyd.post("schedule.json", data={"project": "sig", "spider": "hangs"}).json()["jobid"]
    scrapyd.wait_state(job, "running")
    wait_until(
        lambda: scrapyd.get(f"logs/sig/hangs/{job}.log").text,
        60,
        "the spider to be ready for SIGHUP",
        until=lambda text: "HANGS-READY" in text,
    )
    # Names and numbers Twisted's signalProcess does not take: scrapyd's own errors.
    for bad, message in (
        ("FOO", "TypeError: 'str' object cannot be interpreted as an integer"),
        ("999", "OSError: [Errno 22] Invalid argument"),
    ):
        refused = scrapyd.post("cancel.json", data={"project": "sig", "job": job, "signal": bad})
        assert refused.json()["message"] == message
    assert scrapyd.get("status.json", params={"job": job}).json()["currstate"] == "running"
    sent = scrapyd.post("cancel.json", data={"project": "sig", "job": job, "signal": "HUP"})
    assert sent.json()["prevstate"] == "running"
    scrapyd.wait_state(job, "finished")
    assert "HANGS-GOT-HUP" in scrapyd.get(f"logs/sig/hangs/{job}.log").text
