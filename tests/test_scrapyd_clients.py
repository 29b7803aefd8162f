"""scrapyd's real clients from the package index against the daemon: python-scrapyd-api
(every method), scrapyd-deploy (builds an egg with setuptools and uploads it, twice; a
wrong password fails) and scrapyd-client's CLI, with one scrapy.cfg URL for both."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from scrapyd_api import ScrapydAPI

from tests.daemon_support import DaemonFactory, DaemonProcess
from tests.scrapyd_support import (
    make_egg,
    no_projects,
    scrapyd_config,
    scrapyd_port,
    write_egg_project,
)
from tests.waiting import wait_until

BIN = Path(sys.executable).parent
AUTH = ("deployer", "s3cret")


@pytest.fixture
def daemon(start_daemon: DaemonFactory) -> DaemonProcess:
    auth = {"username": AUTH[0], "password": AUTH[1]}
    return start_daemon(no_projects, auth=auth, **scrapyd_config())


def _wait_finished(api: ScrapydAPI, project: str, job: str, timeout: float = 60.0) -> None:
    wait_until(
        lambda: api.job_status(project, job),
        timeout,
        f"job {job} to be finished",
        until=lambda state: state == "finished",
        interval=0.1,
    )


def _log(url: str, log_url: str) -> str:
    return requests.get(url + log_url, auth=AUTH, timeout=30).text


def test_python_scrapyd_api_every_method(daemon: DaemonProcess, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{scrapyd_port(daemon)}"
    api = ScrapydAPI(url, auth=AUTH)
    egg = make_egg(write_egg_project(tmp_path / "src", "eggy"), "eggy")
    assert api.add_version("eggy", "1.0", io.BytesIO(egg)) == 2
    assert api.list_projects() == ["eggy"]
    assert api.list_versions("eggy") == ["1_0"]
    assert api.list_spiders("eggy") == ["echo", "other"]
    job = api.schedule("eggy", "echo", settings={"ECHO_SETTING": "set"}, word="viaapi")
    _wait_finished(api, "eggy", job)
    (finished,) = api.list_jobs("eggy")["finished"]
    assert finished["id"] == job
    log = _log(url, finished["log_url"])
    assert "ECHO-ARG viaapi" in log and "ECHO-SETTING set" in log
    assert api.cancel("eggy", job) is None  # finished: nothing to cancel
    assert api.job_status("eggy", "no-such-job") == ""
    # Several versions, in version order; a job of the older one.
    assert api.add_version("eggy", "1.10", io.BytesIO(egg)) == 2
    assert api.list_versions("eggy") == ["1_0", "1_10"]
    old = api.schedule("eggy", "echo", _version="1.0", word="older")
    _wait_finished(api, "eggy", old)
    entry = {j["id"]: j for j in api.list_jobs("eggy")["finished"]}[old]
    assert entry["version"] == "1.0" and "ECHO-ARG older" in _log(url, entry["log_url"])
    assert api.delete_version("eggy", "1.10") is True
    assert api.list_versions("eggy") == ["1_0"]
    assert api.delete_version("eggy", "1.0") is True
    assert api.list_projects() == []
    assert api.add_version("eggy", "2", io.BytesIO(egg)) == 2
    assert api.delete_project("eggy") is True
    assert api.list_projects() == []


def _project_with_targets(tmp_path: Path, url: str) -> Path:
    project = write_egg_project(tmp_path / "proj", "eggy")
    (project / "scrapy.cfg").write_text(
        "[settings]\ndefault = eggy.settings\n\n"
        f"[deploy]\nurl = {url}\nproject = eggy\nusername = {AUTH[0]}\npassword = {AUTH[1]}\n\n"
        f"[deploy:wrong]\nurl = {url}\nproject = eggy\nusername = {AUTH[0]}\npassword = nope\n"
    )
    return project


def _run(project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_scrapyd_deploy_and_scrapyd_client_with_one_url(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    # One URL for both: scrapyd-deploy joins with urljoin, scrapyd-client with "/".
    project = _project_with_targets(tmp_path, daemon.url + "/scrapyd/")
    for version in ("1.9", "1.10"):
        done = _run(project, "scrapyd-deploy", "-v", version)
        assert done.returncode == 0, done.stderr
        assert '"status": "ok"' in done.stdout and '"spiders": 2' in done.stdout, done.stdout
    # python-scrapyd-api joins absolute paths: it takes host:port, so the second listener.
    api = ScrapydAPI(f"http://127.0.0.1:{scrapyd_port(daemon)}", auth=AUTH)
    assert api.list_versions("eggy") == ["1_9", "1_10"]  # both, in version order
    wrong = _run(project, "scrapyd-deploy", "wrong", "-v", "2")
    assert wrong.returncode == 1 and "Unauthorized" in wrong.stdout, (wrong.stdout, wrong.stderr)
    assert api.list_versions("eggy") == ["1_9", "1_10"]

    listed = _run(project, "scrapyd-client", "projects")
    assert listed.returncode == 0 and listed.stdout.split() == ["eggy"], listed
    spiders = _run(project, "scrapyd-client", "spiders", "-p", "eggy")
    assert spiders.stdout == "eggy:\n  echo\n  other\n", spiders
    scheduled = _run(
        project, "scrapyd-client", "schedule", "-p", "eggy", "echo", "--arg", "word=cli"
    )
    assert scheduled.returncode == 0, scheduled.stderr
    job = scheduled.stdout.strip().rsplit(" ", 1)[-1]
    _wait_finished(api, "eggy", job)
    (finished,) = api.list_jobs("eggy")["finished"]
    assert finished["log_url"] == f"/logs/eggy/echo/{job}.log"
    assert "ECHO-ARG cli" in _log(daemon.url + "/scrapyd", finished["log_url"])


def test_web_managers_requests_on_the_second_listener(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """The calls ScrapydWeb and Gerapy make to a node given as host:port: the node check
    (daemonstatus.json), listjobs parsing, and log tails read with a suffix Range."""
    url = f"http://127.0.0.1:{scrapyd_port(daemon)}"
    check = requests.get(url + "/daemonstatus.json", auth=AUTH, timeout=30).json()
    assert check["status"] == "ok" and check["node_name"] == "NODE"
    assert requests.get(url + "/daemonstatus.json", timeout=30).status_code == 401
    api = ScrapydAPI(url, auth=AUTH)
    api.add_version("eggy", "1", io.BytesIO(make_egg(write_egg_project(tmp_path / "s"), "eggy")))
    job = api.schedule("eggy", "echo", word="tail")
    _wait_finished(api, "eggy", job)
    jobs = requests.get(url + "/listjobs.json", params={"project": "eggy"}, auth=AUTH, timeout=30)
    (entry,) = jobs.json()["finished"]
    for key in ("id", "spider", "start_time", "end_time"):
        assert entry[key]
    # "YYYY-mm-dd HH:MM:SS.ffffff", as both parse it.
    assert time.strptime(entry["start_time"].split(".")[0], "%Y-%m-%d %H:%M:%S")
    tail = requests.get(
        url + entry["log_url"], headers={"Range": "bytes=-1000"}, auth=AUTH, timeout=30
    )
    assert tail.status_code == 206
    assert tail.headers["Content-Range"].startswith("bytes ")
    assert "Spider closed (finished)" in tail.text
