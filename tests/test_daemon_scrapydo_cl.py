"""scrapy-do's own command-line client, unchanged, against our daemon: every sub-command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.daemon_support import DaemonFactory, DaemonProcess, write_toy_project

CLIENT = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "scrapy-do-cl"


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory, tmp_path_factory: pytest.TempPathFactory):
    return start_module_daemon(env={"HOME": str(tmp_path_factory.mktemp("home"))})


def cl(daemon: DaemonProcess, *args: str, ok: bool = True) -> str:
    if not CLIENT.exists():
        pytest.skip("scrapy-do-cl is not installed")
    res = subprocess.run(
        [str(CLIENT), "--url", daemon.url, "--print-format", "simple", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(daemon.workdir), "PATH": "/usr/bin:/bin"},
    )
    assert (res.returncode == 0) == ok, res.stdout + res.stderr
    return res.stdout


UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_scrapy_do_cl_every_sub_command(daemon: DaemonProcess, tmp_path: Path) -> None:
    out = cl(daemon, "status")
    assert "jobs-run" in out and "memory-usage" in out

    project = write_toy_project(tmp_path / "clitoy", name="clitoy")
    out = cl(daemon, "push-project", "--project-path", str(project))
    assert "clitoy" in out and "sleepy" in out and "items" in out

    assert "clitoy" in cl(daemon, "list-projects")
    out = cl(daemon, "list-spiders", "--project", "clitoy")
    assert {"fails", "items", "sleepy", "stubborn"} <= set(out.split())

    out = cl(
        daemon,
        "schedule-job",
        "--project",
        "clitoy",
        "--spider",
        "items",
        "--description",
        "from the cli",
        "--payload",
        '{"coins": ["BTC"]}',
    )
    job_id = re.search(UUID, out).group(0)
    daemon.wait_status(job_id, ("SUCCESSFUL",))
    out = cl(daemon, "list-jobs", "--job-id", job_id)
    assert job_id in out and "SUCCESSFUL" in out and "from the cli" in out
    assert '{"coins": ["BTC"]}' in out
    out = cl(daemon, "list-jobs", "--status", "COMPLETED")
    assert job_id in out

    assert "Spider closed" in cl(daemon, "get-log", "--job-id", job_id)
    assert f"START {job_id}" in cl(daemon, "get-log", "--job-id", job_id, "--log-type", "out")

    out = cl(daemon, "schedule-job", "--project", "clitoy", "--spider", "sleepy")
    sleepy = re.search(UUID, out).group(0)
    daemon.wait_log(sleepy, "START")
    assert sleepy in cl(daemon, "list-jobs")  # default: ACTIVE
    assert "Canceled." in cl(daemon, "cancel-job", "--job-id", sleepy)
    assert daemon.job(sleepy)["status"] == "CANCELED"
    out = cl(daemon, "cancel-job", "--job-id", sleepy, ok=False)
    assert "is not active" in out

    assert "Removed." in cl(daemon, "remove-project", "--name", "clitoy")
    assert "clitoy" not in cl(daemon, "list-projects")
    out = cl(daemon, "list-spiders", "--project", "clitoy", ok=False)
    assert "Unknown project" in out
