"""HTTP basic auth: every endpoint refuses a missing or wrong password with a bare 401."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import requests
from requests.auth import HTTPDigestAuth

from tests.daemon_support import DaemonProcess, write_config, write_toy_project

PASSWORD = "s3cret-ünï"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("auth")
    toy = write_toy_project(work / "toy")
    config = write_config(work / "config.yaml", work / "data", toy)
    with config.open("a") as fh:
        fh.write("auth:\n  username: admin\n")
    proc = DaemonProcess(config, work, env={"COINSPIDERS_PASSWORD": PASSWORD}).start()
    yield proc
    proc.stop()


PATHS = [
    ("GET", "/status.json"),
    ("GET", "/list-projects.json"),
    ("GET", "/list-spiders.json?project=toy"),
    ("GET", "/list-jobs.json?status=ACTIVE"),
    ("GET", "/get-log/data/00000000-0000-4000-8000-000000000000.out"),
    ("POST", "/schedule-job.json"),
    ("POST", "/cancel-job.json"),
    ("POST", "/push-project.json"),
    ("POST", "/remove-project.json"),
    ("GET", "/no-such-path"),
]


@pytest.mark.parametrize(
    "auth",
    [
        None,
        ("admin", "wrong"),
        ("root", PASSWORD),
        ("admin", PASSWORD + "x"),
        HTTPDigestAuth("admin", "wrong"),
        HTTPDigestAuth("root", PASSWORD),
    ],
)
def test_every_endpoint_needs_the_password(daemon: DaemonProcess, auth) -> None:
    for method, path in PATHS:
        rsp = requests.request(method, daemon.url + path, auth=auth, timeout=10)
        assert rsp.status_code == 401, (method, path)
        assert rsp.json() == {"status": "error", "msg": "Authentication required"}
        challenge = rsp.headers["WWW-Authenticate"]
        assert challenge.startswith("Digest ") and ", Basic realm=" in challenge


def test_right_password_gets_in_and_is_never_echoed(daemon: DaemonProcess) -> None:
    auth = ("admin", PASSWORD)
    rsp = requests.get(daemon.url + "/status.json", auth=auth, timeout=10)
    assert rsp.status_code == 200 and rsp.json()["status"] == "ok"
    rsp = requests.post(
        daemon.url + "/schedule-job.json",
        data={"project": "toy", "spider": "items", "when": "now"},
        auth=auth,
        timeout=10,
    )
    job_id = rsp.json()["identifier"]
    daemon_auth = requests.Session()
    daemon_auth.auth = auth
    for _ in range(200):
        job = daemon_auth.get(daemon.url + f"/list-jobs.json?id={job_id}").json()["jobs"][0]
        if job["status"] == "SUCCESSFUL":
            break
        time.sleep(0.05)
    out = daemon_auth.get(daemon.url + f"/get-log/data/{job_id}.out").text
    assert "SECRET None" in out  # the crawl does not inherit the password
    assert PASSWORD not in Path(daemon.log_path).read_text(encoding="utf-8", errors="replace")


def test_digest_auth_and_scrapy_do_cl_with_a_password(daemon: DaemonProcess) -> None:
    rsp = requests.get(
        daemon.url + "/list-projects.json", auth=HTTPDigestAuth("admin", PASSWORD), timeout=10
    )
    assert rsp.status_code == 200 and "toy" in rsp.json()["projects"]
    client = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "scrapy-do-cl"
    if not client.exists():
        pytest.skip("scrapy-do-cl is not installed")
    base = [str(client), "--url", daemon.url, "--username", "admin"]
    env = {"HOME": str(daemon.workdir), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [*base, "--password", PASSWORD, "list-projects"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert res.returncode == 0 and "toy" in res.stdout, res.stdout + res.stderr
    res = subprocess.run(
        [*base, "--password", "nope", "list-projects"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert res.returncode == 1 and "Authentication required" in res.stdout
