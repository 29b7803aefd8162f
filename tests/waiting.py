"""Waiting in tests for something another process does: one poll loop for every test.

A test that waits must say what it waited for, and show the last thing it saw when the
wait runs out, so that a timeout reads as a failed expectation instead of a bare hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    until: Callable[[T], object] = bool,
    interval: float = 0.05,
) -> T:
    """Poll `predicate` until `until(value)` holds (by default: a true value) and return
    that value.

    `until` lets the predicate return what it read (a job, a log) rather than a bare
    True/False, so the failure shows it. Raises AssertionError naming `what` and the last
    value seen once `timeout` seconds have passed. An exception raised by `predicate` is
    not retried: it ends the wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if until(value):
            return value
        if time.monotonic() > deadline:
            seen = repr(value)
            if len(seen) > 2000:
                seen = seen[:1000] + " ... " + seen[-1000:]
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; last value seen: {seen}"
            )
        time.sleep(interval)
