"""HTTP basic auth: every endpoint refuses a missing or wrong password with a bare 401."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests
from requests.auth import HTTPDigestAuth

from tests.daemon_support import DaemonFactory, DaemonProcess
from tests.waiting import wait_until

PASSWORD = "s3cret-ünï"


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory) -> DaemonProcess:
    return start_module_daemon(env={"COINSPIDERS_PASSWORD": PASSWORD}, auth={"username": "admin"})


def wait_ended(session: requests.Session, daemon: DaemonProcess, job_id: str) -> dict:
    """The job once it has ended, asked with `session`'s credentials."""
    return wait_until(
        lambda: session.get(daemon.url + f"/list-jobs.json?id={job_id}").json()["jobs"][0],
        30,
        f"job {job_id} to end",
        until=lambda job: job["status"] not in ("PENDING", "RUNNING"),
    )


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
    assert wait_ended(daemon_auth, daemon, job_id)["status"] == "SUCCESSFUL"
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


def test_crawls_and_listings_get_no_secret_and_no_foreign_scrapy_project(
    start_daemon: DaemonFactory,
) -> None:
    """The variable named by auth.password_env is hidden from crawls like
    COINSPIDERS_PASSWORD; SCRAPY_SETTINGS_MODULE of the daemon's environment would make
    Scrapy ignore the project's scrapy.cfg, so it is dropped too; CMC_* pass through."""
    secret = "pw-from-password-env-7f3a"
    env = {
        "TOY_DAEMON_PW": secret,
        "SCRAPY_SETTINGS_MODULE": "no_such_project.settings",
        "SCRAPY_PROJECT": "elsewhere",
        "CMC_API_KEY": "cmc-key-for-spiders",
    }
    daemon = start_daemon(env=env, auth={"username": "admin", "password_env": "TOY_DAEMON_PW"})
    session = requests.Session()
    session.auth = ("admin", secret)
    rsp = session.get(daemon.url + "/list-spiders.json?project=toy", timeout=30)
    assert rsp.status_code == 200 and "items" in rsp.json()["spiders"], rsp.text
    rsp = session.post(
        daemon.url + "/schedule-job.json",
        data={"project": "toy", "spider": "items", "when": "now"},
        timeout=10,
    )
    job_id = rsp.json()["identifier"]
    job = wait_ended(session, daemon, job_id)
    assert job["status"] == "SUCCESSFUL", job
    out = session.get(daemon.url + f"/get-log/data/{job_id}.out").text
    err = session.get(daemon.url + f"/get-log/data/{job_id}.err").text
    line = next(x for x in out.splitlines() if x.startswith("ENVIRON "))
    seen = json.loads(line.removeprefix("ENVIRON "))
    assert "TOY_DAEMON_PW" not in seen and secret not in out and secret not in err
    assert "SCRAPY_PROJECT" not in seen
    assert seen["SCRAPY_SETTINGS_MODULE"] == "toy.settings"  # from the project's scrapy.cfg
    assert seen["CMC_API_KEY"] == "cmc-key-for-spiders"
