"""wait_until, the one poll loop of the tests: what it returns and how it fails."""

from __future__ import annotations

import pytest

from tests.waiting import wait_until


def test_returns_the_first_value_that_satisfies_it() -> None:
    values = iter([0, None, 3, 4])
    assert wait_until(lambda: next(values), 5, "a number", interval=0) == 3
    seen = iter([{"status": "RUNNING"}, {"status": "DONE", "n": 1}])
    job = wait_until(lambda: next(seen), 5, "the end", until=lambda j: j["status"] == "DONE")
    assert job == {"status": "DONE", "n": 1}


def test_running_out_names_what_was_awaited_and_the_last_value_seen() -> None:
    with pytest.raises(AssertionError) as failed:
        wait_until(
            lambda: {"status": "RUNNING"},
            0.05,
            "job x to end",
            until=lambda job: job["status"] == "DONE",
            interval=0.01,
        )
    assert "waiting for job x to end" in str(failed.value)
    assert "last value seen: {'status': 'RUNNING'}" in str(failed.value)


def test_an_error_of_the_predicate_ends_the_wait_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("the daemon exited")

    with pytest.raises(RuntimeError, match="the daemon exited"):
        wait_until(broken, 60, "anything")
    assert calls == [1]
