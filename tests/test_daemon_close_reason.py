"""Crawls of projects that write no job.json are judged by Scrapy's close reason, read
from the end of their stderr log (exit code 0 alone does not mean success)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.domain import FAILED, SUCCESSFUL
from daemon.launcher import Outcome
from daemon.verdict import close_reason_from_log, read_log_tail, read_manifest, verdict
from tests.daemon_support import DaemonFactory, DaemonProcess, toy_projects

BROKEN_SPIDERS = """
import scrapy
from scrapy.exceptions import CloseSpider


class Boom(scrapy.Spider):
    name = "boom"

    async def start(self):
        raise RuntimeError("start exploded")
        yield {}


class Gives(scrapy.Spider):
    name = "gives_up"

    async def start(self):
        raise CloseSpider("nothing_to_do")
        yield {}
"""

LOG = (
    b"2026-11-23 05:20:00 [scrapy.core.engine] INFO: Closing spider (start_error)\n"
    b"{'finish_reason': 'start_error'}\n"
    b"2026-11-23 05:20:00 [scrapy.core.engine] INFO: Spider closed (start_error)\n"
)


# -- pure parts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (LOG, "start_error"),
        (LOG.replace(b"\n", b"\r\n"), "start_error"),
        (b"x INFO: Spider closed (finished)\n", None),  # not a Scrapy log line
        (b"[scrapy.core.engine] INFO: Spider closed (finished)", "finished"),
        (b"[e] INFO: Spider closed (a)\n[e] INFO: Spider closed (b)\n", "b"),
        (b"[e] INFO: Spider closed (odd (reason))\n", "odd (reason)"),
        (b"[e] INFO: Closing spider (finished)\n", None),
        (b"", None),
        (b"\xff\xfe garbage [e] INFO: Spider closed (caf\xc3\xa9)\n", "caf\u00e9"),
    ],
)
def test_close_reason_from_log(tail: bytes, reason: str | None) -> None:
    assert close_reason_from_log(tail) == reason


def test_read_log_tail_reads_only_the_end(tmp_path: Path) -> None:
    path = tmp_path / "job.err"
    path.write_bytes(b"a" * 100_000 + LOG)
    tail = read_log_tail(path)
    assert len(tail) == 64 * 1024 and tail.endswith(LOG)
    assert close_reason_from_log(tail) == "start_error"
    assert read_log_tail(path, 10) == LOG[-10:]
    assert read_log_tail(tmp_path / "missing.err") == b""


@pytest.mark.parametrize(
    ("outcome", "manifest", "logged", "status", "words"),
    [
        (Outcome(0, None, None), None, "finished", SUCCESSFUL, None),
        (Outcome(0, None, None), None, "start_error", FAILED, "'start_error'"),
        (Outcome(0, None, None), None, None, SUCCESSFUL, "close reason not logged"),
        (Outcome(2, None, None), None, "shutdown", FAILED, "exit code 2: close reason"),
        (Outcome(1, None, None), None, "finished", FAILED, "exit code 1"),
        # job.json, when there is one, wins over the log.
        (Outcome(0, None, None), {"close_reason": "finished"}, "start_error", SUCCESSFUL, None),
        (Outcome(0, None, None), {"close_reason": "shutdown"}, "finished", FAILED, "shutdown"),
    ],
)
def test_verdict_uses_the_logged_close_reason_without_job_json(
    outcome: Outcome, manifest: dict | None, logged: str | None, status: str, words: str | None
) -> None:
    got, reason = verdict(outcome, manifest, logged)
    assert got == status
    if words:
        assert reason is not None and words in reason
    else:
        assert reason is None


# -- end to end: a real daemon running real crawls --------------------------------------


def toy_with_broken_spiders(work: Path) -> dict[str, Any]:
    projects = toy_projects(work)
    (Path(projects["toy"]["path"]) / "toy" / "spiders" / "broken.py").write_text(BROKEN_SPIDERS)
    return projects


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory) -> DaemonProcess:
    return start_module_daemon(toy_with_broken_spiders, slots=2)


def test_start_that_raises_is_failed_with_the_close_reason(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("boom")
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"))
    assert job["status"] == "FAILED", job
    assert job["exit_code"] == 0  # Scrapy itself reports nothing wrong
    assert "'start_error'" in job["reason"]


def test_spider_closed_for_another_reason_is_failed(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("gives_up")
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"))
    assert job["status"] == "FAILED", job
    assert "'nothing_to_do'" in job["reason"]


def test_normal_crawl_without_job_json_is_still_successful(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule("items")
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"))
    assert job["status"] == "SUCCESSFUL", job
    assert job["exit_code"] == 0


def test_crawl_with_job_json_is_judged_by_it(daemon: DaemonProcess, tmp_path: Path) -> None:
    until = tmp_path / "go"
    until.touch()
    job_id = daemon.schedule("sleepy", payload=f'{{"until_file": "{until}"}}')
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"))
    assert job["status"] == "SUCCESSFUL", job


def test_manifest_is_read_only_from_a_regular_file_in_the_job_folder(tmp_path: Path) -> None:
    """The crawl owns its folder: a job.json that is a link (to a file the daemon could
    read and the crawl could not) or a FIFO (which would block the reader) is not
    believed, and reading it never blocks."""
    import os

    secret = tmp_path / "elsewhere.json"
    secret.write_text('{"close_reason": "finished", "succeeded": true}')
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "job.json").symlink_to(secret)
    assert read_manifest(linked) == {"close_reason": "unreadable job.json"}
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "job.json")
    assert read_manifest(fifo) == {"close_reason": "unreadable job.json"}
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "job.json").write_text('{"close_reason": "finished"}')
    assert read_manifest(plain) == {"close_reason": "finished"}
    assert read_manifest(tmp_path / "missing") is None
