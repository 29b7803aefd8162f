"""Job chains: a job that waits for another job's run to end (pure: tested directly).

`after` names a run or a scheduled job; `on` says which end the waiter wants. A
scheduled job's ends are its runs' ends: the waiter takes the first run of it that ends
after the waiter was made.
"""

from __future__ import annotations

from collections.abc import Callable

from daemon.domain import CANCELED, FAILED, SUCCESSFUL

__all__ = ["MAX_CHAIN", "ON_VALUES", "ChainError", "find_cycle", "parse_on", "satisfies"]

SUCCESS = "success"
FAILURE = "failure"
ALWAYS = "always"
ON_VALUES = (SUCCESS, FAILURE, ALWAYS)
#: The longest chain of waiters followed when a new link is checked.
MAX_CHAIN = 1000


class ChainError(ValueError):
    """A chain that cannot be made; the message says why."""


def parse_on(raw: str | None) -> str:
    """`on` (case-insensitive; default success) or a ChainError naming the choices."""
    value = (raw or SUCCESS).strip().lower() or SUCCESS
    if value not in ON_VALUES:
        raise ChainError(f"on must be one of {', '.join(ON_VALUES)}, got {(raw or '')[:40]!r}")
    return value


def satisfies(status: str, on: str) -> bool:
    """Whether a predecessor that ended with `status` lets a waiter on `on` run."""
    if on == ALWAYS:
        return status in (SUCCESSFUL, FAILED, CANCELED)
    if on == FAILURE:
        return status == FAILED
    return status == SUCCESSFUL


def refusal(after: str, status: str, on: str) -> str:
    """The reason a waiter is canceled with when its predecessor ended otherwise."""
    return f"job {after} ended {status}; this job waited for {on}"


def find_cycle(new_id: str, after: str, waits_for: Callable[[str], str | None]) -> list[str] | None:
    """The loop `new_id` -> after -> ... -> new_id that adding the link would close
    (None when there is none). `waits_for(id)` gives the job a job waits for."""
    path = [new_id]
    current: str | None = after
    seen: set[str] = {new_id}
    while current is not None:
        path.append(current)
        if current in seen:
            return path if current == new_id else None
        if len(path) > MAX_CHAIN:
            raise ChainError(f"the chain behind job {after} is longer than {MAX_CHAIN} jobs")
        seen.add(current)
        current = waits_for(current)
    return None
