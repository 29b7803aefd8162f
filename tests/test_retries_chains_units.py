"""The retry and chain decisions (daemon.retries, daemon.chains) and their store side,
tested directly."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.api.job_json import JOB_COLUMNS, JobJson
from daemon.chains import ChainError, find_cycle, parse_on, refusal, satisfies
from daemon.config import ConfigError, load_config
from daemon.domain import CANCELED, FAILED, PENDING, RUNNING, SUCCESSFUL
from daemon.job_store import Job, Store
from daemon.retries import MAX_RETRY_DELAY, next_delay, retry_verdict, retryable
from tests.daemon_support import write_store_without_added_columns

UTC_ZONE = ZoneInfo("UTC")


def test_the_delay_doubles_each_attempt_and_is_capped() -> None:
    assert [next_delay(5, n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert next_delay(5, 30) == MAX_RETRY_DELAY
    assert next_delay(5, 10_000) == MAX_RETRY_DELAY  # no overflow
    assert next_delay(0, 3) == 0
    assert next_delay(100, 2, cap=150) == 150


def test_failures_are_retried_but_cancel_and_max_runtime_never() -> None:
    assert retryable(FAILED, None)  # non-zero exit, signal, start error, lost process
    assert retryable(FAILED, "shutdown")  # the daemon stopped: run it again later
    assert not retryable(FAILED, "timeout")  # max_runtime
    assert not retryable(CANCELED, "cancel")
    assert not retryable(SUCCESSFUL, None)
    assert retry_verdict(FAILED, None, attempt=2, retries=2)
    assert not retry_verdict(FAILED, None, attempt=3, retries=2)
    assert not retry_verdict(FAILED, None, attempt=1, retries=0)


def test_on_parses_and_decides_which_end_releases_a_waiter() -> None:
    assert parse_on(None) == "success" and parse_on(" Failure ") == "failure"
    with pytest.raises(ChainError, match="success, failure, always"):
        parse_on("sometimes")
    assert satisfies(SUCCESSFUL, "success") and not satisfies(FAILED, "success")
    assert satisfies(FAILED, "failure") and not satisfies(CANCELED, "failure")
    assert all(satisfies(s, "always") for s in (SUCCESSFUL, FAILED, CANCELED))
    assert refusal("a", FAILED, "success") == "job a ended FAILED; this job waited for success"


def test_a_link_that_closes_a_loop_is_found() -> None:
    links = {"b": "a", "c": "b"}
    assert find_cycle("d", "c", links.get) is None
    assert find_cycle("a", "c", links.get) == ["a", "c", "b", "a"]
    assert find_cycle("x", "x", links.get) == ["x", "x"]
    long_chain = {str(i): str(i + 1) for i in range(2000)}
    with pytest.raises(ChainError, match="longer than"):
        find_cycle("new", "0", long_chain.get)


def test_an_old_store_gains_the_retry_and_chain_columns(tmp_path: Path) -> None:
    path = tmp_path / "daemon.sqlite"
    write_store_without_added_columns(path)
    old = sqlite3.connect(path)
    old.execute("DROP TABLE job_attempts")  # as a store of the previous version has none
    old.commit()
    old.close()
    store = Store(path)
    job = store.get("old")
    assert job is not None and job.attempt == 1 and job.retries == 0 and not job.waiting
    assert store.oldest_pending() is not None and store.attempts("old") == []


def test_a_retry_keeps_the_attempt_and_waits_for_its_due_time(tmp_path: Path) -> None:
    now = [1000.0]
    store = Store(tmp_path / "daemon.sqlite", clock=lambda: now[0])
    store.insert(
        Job(
            id="j",
            status=PENDING,
            actor="USER",
            schedule="now",
            project="p",
            spider="s",
            retries=2,
            retry_delay=10,
        )
    )
    store.mark_running("j")
    job = store.retry("j", "exit code 3", 3, next_attempt_at=1010.0, stats='{"a": 1}')
    assert job is not None and job.status == PENDING and job.attempt == 2
    assert job.next_attempt_at == 1010.0 and job.started is None
    assert store.oldest_pending() is None and store.next_retry_due() == 1010.0
    now[0] = 1010.0
    assert store.oldest_pending() is not None
    store.mark_running("j")
    store.finish("j", SUCCESSFUL, None, 0, from_statuses=(RUNNING,), stats='{"b": 2}')
    assert [a[0] for a in store.attempts("j")] == [1, 2]
    assert store.figures()["jobs-run"] == 1  # one job, two attempts
    row = store.get_row("j", JOB_COLUMNS)
    shown = json.loads(JobJson(UTC_ZONE).job(row))
    assert shown["attempt"] == 2 and shown["retries"] == 2
    assert [(a["n"], a["status"], a["exit_code"], a["stats"]) for a in shown["attempts"]] == [
        (1, FAILED, 3, {"a": 1}),
        (2, SUCCESSFUL, 0, {"b": 2}),
    ]


def test_a_waiting_job_is_not_dispatched_until_released(tmp_path: Path) -> None:
    store = Store(tmp_path / "daemon.sqlite")
    store.insert(Job(id="a", status=PENDING, actor="USER", schedule="now", project="p", spider="s"))
    store.insert(
        Job(
            id="b",
            status=PENDING,
            actor="USER",
            schedule="now",
            project="p",
            spider="s",
            after_job="a",
            after_on="success",
            waiting=True,
        )
    )
    assert store.oldest_pending().id == "a"  # type: ignore[union-attr]
    store.mark_running("a")
    assert store.oldest_pending() is None
    assert [w.id for w in store.waiters("a")] == ["b"] == [w.id for w in store.waiters()]
    released = store.release("b")
    assert released is not None and not released.waiting
    assert store.oldest_pending().id == "b"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("    retries: 11\n", "'projects.p.retries': expected 0 to 10"),
        ("    retries: yes\n", "'projects.p.retries'"),
        ("    retry_delay: 4000\n", "'projects.p.retry_delay': expected 0 to 3600 seconds"),
        ("    retry_delay: soon\n", "'projects.p.retry_delay'"),
    ],
)
def test_a_projects_retry_defaults_are_checked(tmp_path: Path, extra: str, words: str) -> None:
    (tmp_path / "scrapy.cfg").write_text("")
    path = tmp_path / "config.yaml"
    path.write_text(f"projects:\n  p:\n    path: {tmp_path}\n{extra}")
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(path, environ={})
    path.write_text(f"projects:\n  p:\n    path: {tmp_path}\n    retries: 3\n    retry_delay: 5\n")
    project = load_config(path, environ={}).projects["p"]
    assert (project.retries, project.retry_delay) == (3, 5.0)
