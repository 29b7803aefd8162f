"""When a failed attempt of a job runs again, and after how long (pure: tested directly).

A job asks for `retries` more attempts after a failure; attempt n+1 waits
`retry_delay * 2**(n-1)` seconds after attempt n failed, capped, so a site that is down
is not hammered while a transient fault still gets a quick second try.
"""

from __future__ import annotations

from daemon.domain import FAILED

__all__ = ["MAX_RETRIES", "MAX_RETRY_DELAY", "next_delay", "retry_verdict", "retryable"]

#: The most retries a job may ask for: more only hides a spider that never works.
MAX_RETRIES = 10
#: No wait between attempts is longer than this (seconds).
MAX_RETRY_DELAY = 3600.0

#: Stop reasons that end a job for good: a person asked (cancel) or the job's own
#: limit was reached (max_runtime): running it again would defy either.
_NEVER_RETRIED = frozenset({"cancel", "timeout"})


def next_delay(base: float, failed_attempt: int, cap: float = MAX_RETRY_DELAY) -> float:
    """Seconds to wait before the attempt after `failed_attempt` (1 = the first)."""
    if base <= 0:
        return 0.0
    exponent = max(failed_attempt - 1, 0)
    if exponent >= 64:  # 2**64 seconds is past any cap
        return cap
    return min(base * 2**exponent, cap)


def retryable(status: str, stop_reason: str | None) -> bool:
    """Whether an attempt that ended with `status` may be retried: a failure (non-zero
    exit, a signal, a start error, a lost node or process, a daemon shutdown) yes; a
    cancel or a max_runtime stop never."""
    return status == FAILED and stop_reason not in _NEVER_RETRIED


def retry_verdict(status: str, stop_reason: str | None, attempt: int, retries: int) -> bool:
    """Whether attempt `attempt` (1-based) of a job allowed `retries` retries runs again."""
    return retryable(status, stop_reason) and attempt <= retries
