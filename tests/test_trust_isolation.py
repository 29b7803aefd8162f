"""Crawl isolation: what pushed code may reach.

A pushed project with Scrapy's defaults must not open the Telnet console (a Python shell
whose password Scrapy writes into the log get-log serves); with `crawl_user` set, a
crawl and `scrapy list` run as that user and cannot read the daemon's store, password,
environment or other jobs' output, nor signal the daemon; the password may be given as
a file or a hash so it need not sit in the daemon's environment.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from daemon.config import ConfigError, load_config
from daemon.isolation import runnable_by_others, trust_warnings
from daemon.passwords import PasswordHashError, check_hash_format, hash_password, verify_password
from tests.daemon_support import (
    PYTHON,
    ROOT,
    DaemonFactory,
    DaemonProcess,
    toy_projects,
    write_scrapy_project,
    zip_project,
)
from tests.waiting import wait_until

SLEEPY = """
import asyncio
import json
from pathlib import Path

import scrapy


class Sleepy(scrapy.Spider):
    name = "sleepy"

    async def start(self):
        print("START", self.settings.get("JOB_ID"), flush=True)
        args = json.loads(getattr(self, "payload", "{}"))
        while not Path(args["until_file"]).exists():
            await asyncio.sleep(0.05)
        yield {"slept": True}
"""

PROBE = """
import json
import os
from pathlib import Path

import scrapy

if os.environ.get("PROBE_DROP"):
    # Record who imported this module (first: `scrapy list` at the push).
    Path(os.environ["PROBE_DROP"], "import-uid").write_text(str(os.getuid()))


def attempt(fn):
    try:
        fn()
        return "ok"
    except PermissionError:
        return "denied"
    except OSError as exc:
        return f"error {exc.errno}"


class Probe(scrapy.Spider):
    name = "probe"

    async def start(self):
        a = json.loads(self.payload)
        data = Path(a["data_dir"])
        own = data / self.settings.get("JOB_ID")
        r = {
            "uid": os.getuid(),
            "euid": os.geteuid(),
            "gid": os.getgid(),
            "groups": os.getgroups(),
            "own_write": attempt(lambda: (own / "probe.txt").write_text("x")),
            "db_read": attempt(lambda: open(a["db"], "rb").read(1)),
            "coins_read": attempt(lambda: open(data / "coins.sqlite", "rb").read(1)),
            "password_file_read": attempt(lambda: open(a["password_file"]).read()),
            "daemon_environ": attempt(
                lambda: open(f"/proc/{a['daemon_pid']}/environ", "rb").read()
            ),
            "daemon_signal": attempt(lambda: os.kill(a["daemon_pid"], 0)),
            "data_list": attempt(lambda: os.listdir(data)),
            "logs_list": attempt(lambda: os.listdir(data / "logs")),
            "records_list": attempt(lambda: os.listdir(data / "projects" / "records")),
            "environ": dict(os.environ),
        }
        if a.get("legacy_job"):
            legacy = data / a["legacy_job"] / "out.txt"
            r["legacy_read"] = attempt(lambda: legacy.read_text())
        if a.get("other_job"):
            other = data / a["other_job"]
            r["other_list"] = attempt(lambda: os.listdir(other))
            r["other_read"] = attempt(lambda: (other / "probe.txt").read_text())
            r["other_write"] = attempt(lambda: (other / "evil.txt").write_text("x"))
            r["other_log_read"] = attempt(
                lambda: open(data / "logs" / (a["other_job"] + ".out"), "rb").read(1)
            )
        print("PROBE", json.dumps(r), flush=True)
        yield {"done": True}
"""


def push(daemon: DaemonProcess, folder: Path) -> list[str]:
    rsp = daemon.post("/push-project.json", files={"archive": zip_project(folder)})
    assert rsp.status_code == 200, rsp.text
    return rsp.json()["spiders"]


def crawl_process(job_id: str, timeout: float = 30.0) -> psutil.Process:
    needle = f"JOB_ID={job_id}"

    def find() -> psutil.Process | None:
        for proc in psutil.process_iter(["cmdline"]):
            if needle in (proc.info.get("cmdline") or ()):
                return proc
        return None

    return wait_until(find, timeout, f"a crawl process of job {job_id}")


def listening_ports(proc: psutil.Process) -> list[int]:
    """TCP ports the crawl (or anything it started) listens on."""
    ports = []
    for p in [proc, *proc.children(recursive=True)]:
        for conn in p.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                ports.append(conn.laddr.port)
    return ports


# -- 1. Telnet console and remote control -----------------------------------------------


def test_pushed_crawl_with_scrapy_defaults_opens_no_console(
    tmp_path: Path, start_daemon: DaemonFactory
) -> None:
    """Scrapy's defaults (TELNETCONSOLE_ENABLED and REMOTE_CONTROL_ENABLED on) in a pushed
    project: its crawl listens on no port and no log holds a Telnet password. A project
    named in `crawl_consoles` keeps its consoles, with a warning at start."""
    for name in ("plain", "consoled"):
        write_scrapy_project(tmp_path / name, name, {"sleep.py": SLEEPY}, telnet_console_off=False)
    daemon = start_daemon(crawl_consoles=["consoled"])
    assert "crawl_consoles: crawls of project consoled may open" in daemon.log()
    for name in ("plain", "consoled"):
        assert push(daemon, tmp_path / name) == ["sleepy"]
    # A job cannot switch the console back on either.
    rsp = daemon.post(
        "/schedule-job.json",
        data={
            "project": "plain",
            "spider": "sleepy",
            "when": "now",
            "setting": "TELNETCONSOLE_ENABLED=True",
        },
    )
    assert rsp.status_code == 400, rsp.text
    until = tmp_path / "until"
    payload = json.dumps({"until_file": str(until)})
    plain = daemon.schedule("sleepy", project="plain", payload=payload)
    consoled = daemon.schedule("sleepy", project="consoled", payload=payload)
    # The opted-in crawl shows what a console looks like in the log and on the wire,
    # so the checks of the plain crawl below can tell.
    daemon.wait_log(consoled, "Telnet console listening", kind="err")
    consoled_err = daemon.wait_log(consoled, "Telnet Password", kind="err")
    daemon.wait_log(consoled, "START")
    assert listening_ports(crawl_process(consoled))
    daemon.wait_log(plain, "START")
    plain_proc = crawl_process(plain)
    assert listening_ports(plain_proc) == []
    assert "Telnet Password" in consoled_err
    until.touch()
    for job_id in (plain, consoled):
        assert daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"))["status"] == "SUCCESSFUL"
    for kind in ("out", "err"):
        text = daemon.get(f"/get-log/data/{plain}.{kind}").text
        assert "Telnet" not in text
        assert "TELNETCONSOLE_ENABLED" not in text.split("Overridden settings")[0]


# -- 2. crawl_user -------------------------------------------------------------------------

CRAWL_USER = "coinspiders-test-crawl"


def _crawl_user() -> str:
    if os.geteuid() != 0:
        print("skipped: needs root to start crawls as another user")
        pytest.skip("needs root to start crawls as another user")
    try:
        pwd.getpwnam(CRAWL_USER)
        return CRAWL_USER
    except KeyError:
        pass
    done = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", CRAWL_USER],
        capture_output=True,
        text=True,
    )
    if done.returncode == 0:
        return CRAWL_USER
    print(f"useradd failed ({done.stderr.strip()}); using nobody")
    return "nobody"


def _runnable_by_all(path: Path) -> bool:
    real = path.resolve()
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [real, *real.parents])


def _interpreter_for_crawls() -> tuple[str, dict[str, str]]:
    """An interpreter the crawl user may run, and the environment it needs.

    The test venv's python may live under /root (pyenv): then the system's python of
    the same version runs the daemon, with the venv's site-packages on PYTHONPATH. The
    checkout and its venv must be where other users may enter (a clone under a 0700
    folder, as `mktemp -d` makes, is not)."""
    needed = [Path(p) for p in sys.path if p.endswith("site-packages")] + [ROOT]
    closed = [str(p) for p in needed if p.exists() and not _runnable_by_all(p)]
    if closed:
        print(f"skipped: other users cannot enter {closed[0]}")
        pytest.skip(f"other users cannot enter {closed[0]}")
    if _runnable_by_all(Path(sys.executable)):
        return sys.executable, {}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path("/usr/bin") / version, Path("/usr/local/bin") / version):
        if candidate.exists() and _runnable_by_all(candidate):
            site = [p for p in sys.path if p.endswith("site-packages")]
            path = os.pathsep.join([*site, str(ROOT)])
            return str(candidate), {"PYTHONPATH": path}
    print(f"skipped: no {version} that other users may run")
    pytest.skip(f"no {version} that other users may run")


@pytest.fixture
def shared_base() -> Iterator[Path]:
    """A folder the crawl user can traverse (pytest's tmp_path is root's 0700)."""
    base = Path(tempfile.mkdtemp(prefix="coinspiders-trust-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_crawls_run_as_crawl_user_and_cannot_reach_the_daemon(
    shared_base: Path, start_daemon: DaemonFactory
) -> None:
    user = _crawl_user()
    entry = pwd.getpwnam(user)
    base = shared_base
    write_scrapy_project(base / "probed", "probed", {"probe.py": PROBE})
    drop = base / "drop"
    drop.mkdir()
    drop.chmod(0o777)
    password = "file-secret-42"
    pwfile = base / "password"
    pwfile.write_text(password + "\n", encoding="utf-8")
    pwfile.chmod(0o600)
    data = base / "data"
    # A job folder left by a daemon that ran without crawl_user (0755, its files 0644).
    legacy = str(uuid.uuid4())
    (data / legacy).mkdir(parents=True)
    (data / legacy / "out.txt").write_text("old output")
    python, python_env = _interpreter_for_crawls()
    # The toy project and the data folder where the crawl user can reach them.
    daemon = start_daemon(
        lambda work: toy_projects(base),
        data_dir=data,
        python=python,
        env={"COINSPIDERS_PASSWORD": None, "PROBE_DROP": str(drop), **python_env},
        crawl_user=user,
        auth={"username": "admin", "password_file": str(pwfile)},
    )
    daemon.credentials = ("admin", password)
    assert daemon.get("/status.json", auth=None).status_code == 401
    assert daemon.get("/status.json").status_code == 200
    assert push(daemon, base / "probed") == ["probe"]
    # `scrapy list` imported the pushed code as the crawl user.
    assert (drop / "import-uid").read_text() == str(entry.pw_uid)

    args = {
        "data_dir": str(data),
        "db": str(data / "daemon.sqlite"),
        "password_file": str(pwfile),
        "daemon_pid": daemon.proc.pid,
        "legacy_job": legacy,
    }
    first = daemon.schedule("probe", project="probed", payload=json.dumps(args))
    assert daemon.wait_status(first, ("SUCCESSFUL", "FAILED"))["status"] == "SUCCESSFUL"
    second = daemon.schedule(
        "probe", project="probed", payload=json.dumps({**args, "other_job": first})
    )
    assert daemon.wait_status(second, ("SUCCESSFUL", "FAILED"))["status"] == "SUCCESSFUL"
    out = daemon.wait_log(second, "PROBE")
    r = json.loads(out.split("PROBE ", 1)[1].splitlines()[0])
    first_r = json.loads(daemon.wait_log(first, "PROBE").split("PROBE ", 1)[1].splitlines()[0])
    daemon.stop()

    assert (r["uid"], r["euid"], r["gid"]) == (entry.pw_uid, entry.pw_uid, entry.pw_gid)
    assert 0 not in r["groups"]  # root's supplementary groups were dropped
    assert r["own_write"] == "ok" and first_r["own_write"] == "ok"
    assert r["db_read"] == "denied"
    assert r["coins_read"] == "denied"
    assert r["password_file_read"] == "denied"
    assert r["daemon_environ"] == "denied"
    assert r["daemon_signal"] == "denied"
    assert r["data_list"] == "denied"
    assert r["logs_list"] == "denied"
    assert r["records_list"] == "denied"
    assert r["other_list"] == "denied"
    assert r["other_read"] == "denied"
    assert r["other_write"] == "denied"
    assert r["other_log_read"] == "denied"
    assert r["legacy_read"] == "denied"
    assert password not in json.dumps(r["environ"], ensure_ascii=False)
    # The daemon (root) still has the first job's output, and nothing the second wrote.
    assert (data / first / "probe.txt").read_text() == "x"
    assert not (data / first / "evil.txt").exists()
    for job_id in (first, second):
        st = (data / job_id).stat()
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
    assert stat.S_IMODE((data / "daemon.sqlite").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o711
    assert password not in daemon.log()


def test_crawl_user_must_exist_and_needs_root(tmp_path: Path) -> None:
    def load(text: str, euid: int = 0) -> Any:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return load_config(path, environ={}, euid=euid)

    nobody = pwd.getpwnam("nobody")
    cfg = load("crawl_user: nobody\n")
    assert cfg.crawl_user is not None and cfg.crawl_user.uid == nobody.pw_uid
    with pytest.raises(ConfigError, match=r"crawl_user.*no user"):
        load("crawl_user: no-such-user-here\n")
    with pytest.raises(ConfigError, match=r"crawl_group.*no group"):
        load("crawl_user: nobody\ncrawl_group: no-such-group-here\n")
    with pytest.raises(ConfigError, match="not root"):
        load("crawl_user: nobody\n", euid=nobody.pw_uid + 1)
    with pytest.raises(ConfigError, match="must not be root"):
        load("crawl_user: root\n")
    with pytest.raises(ConfigError, match="crawl_group' needs"):
        load("crawl_group: nogroup\n")
    with pytest.raises(ConfigError, match="crawl_consoles"):
        load("crawl_consoles: all\n")


# -- passwords -------------------------------------------------------------------------------


def test_password_file_and_password_hash_config(tmp_path: Path) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_text("s3cret\n")
    path = tmp_path / "config.yaml"
    path.write_text("auth:\n  username: admin\n  password_file: pw\n")
    auth = load_config(path, environ={}).auth
    assert auth is not None and auth.password == "s3cret"
    hashed = hash_password("s3cret", iterations=20_000)
    path.write_text(f"auth:\n  username: admin\n  password_hash: '{hashed}'\n")
    auth = load_config(path, environ={}).auth
    assert auth is not None and auth.password is None and auth.password_hash == hashed
    assert verify_password(b"s3cret", hashed) and not verify_password(b"s3cret!", hashed)
    for bad in ("plain", "pbkdf2_sha256$10$AAAA$AAAA", hashed.replace("$", "$x", 1)):
        with pytest.raises(PasswordHashError):
            check_hash_format(bad)
        path.write_text(f"auth:\n  username: admin\n  password_hash: '{bad}'\n")
        with pytest.raises(ConfigError, match=r"auth\.password_hash"):
            load_config(path, environ={})
    path.write_text("auth:\n  username: admin\n  password_file: pw\n  password: x\n")
    with pytest.raises(ConfigError, match="only one"):
        load_config(path, environ={})
    path.write_text("auth:\n  username: admin\n  password_file: missing\n")
    with pytest.raises(ConfigError, match=r"password_file.*cannot read"):
        load_config(path, environ={})


def test_password_hash_serves_basic_and_refuses_digest(start_daemon: DaemonFactory) -> None:
    hashed = subprocess.run(
        [PYTHON, "-m", "daemon", "hash-password"],
        input="hash-me-42\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.strip()
    assert hashed.startswith("pbkdf2_sha256$") and "hash-me" not in hashed
    daemon = start_daemon(
        env={"COINSPIDERS_PASSWORD": None}, auth={"username": "admin", "password_hash": hashed}
    )
    good = ("admin", "hash-me-42")
    # The first request is checked in a thread, then routed: its body still arrives.
    token = base64.b64encode(b"admin:hash-me-42").decode()
    fresh = requests.post(
        daemon.url + "/schedule-job.json",
        data={"project": "toy", "spider": "items", "when": "now"},
        headers={"Authorization": f"Basic {token}"},
        timeout=30,
    )
    assert fresh.status_code == 200, fresh.text
    for _ in range(3):  # from memory now
        assert daemon.get("/status.json", auth=good).status_code == 200
    assert daemon.get("/status.json", auth=("admin", "wrong")).status_code == 401
    assert daemon.get("/status.json", auth=("root", "hash-me-42")).status_code == 401
    rsp = daemon.get("/status.json")
    assert rsp.status_code == 401
    challenges = rsp.headers["WWW-Authenticate"]
    assert "Basic" in challenges and "Digest" not in challenges
    rsp = daemon.get("/status.json", auth=requests.auth.HTTPDigestAuth(*good))
    assert rsp.status_code == 401


def test_hash_password_cli_reads_stdin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "hash-password"],
        input="",
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "empty" in done.stderr


def test_trust_warnings(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("crawl_consoles: [a, b]\nauth:\n  username: u\n  password: p\n")
    path.chmod(0o644)
    cfg = load_config(path, environ={}, euid=0)
    warnings = trust_warnings(cfg, 0)
    consoles = [w for w in warnings if w.startswith("crawl_consoles:")]
    assert len(consoles) == 2 and "project a " in consoles[0] and "project b " in consoles[1]
    assert any("every pushed project runs as root" in w for w in warnings)
    assert trust_warnings(cfg, 1000) == consoles  # not root: no root warning
    path.write_text("crawl_user: nobody\nauth:\n  username: u\n  password: p\n")
    cfg = load_config(path, environ={}, euid=0)
    warnings = trust_warnings(cfg, 0, python=sys.executable)
    assert any("auth.password is in" in w for w in warnings)
    assert not any("runs as root" in w for w in warnings)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    (closed / "python").write_text("")
    (closed / "python").chmod(0o755)
    assert not runnable_by_others(closed / "python")
    assert any("may be unable to run" in w for w in trust_warnings(cfg, 0, str(closed / "python")))
    path.chmod(0o600)
    assert not any("auth.password is in" in w for w in trust_warnings(cfg, 0))
