"""Fault rules and the request log, shared by the request threads and the test thread.

A fault rule matches request paths by prefix and fires for its next `times` requests
(or always, with `times` None). Slow rules add a delay and let the next matching rule
decide the answer, so "slow and then a 500" is two rules.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from .api import ERRORS

FAULT_KINDS = (
    "rate_limit",  # 429: JSON error_code 1008 on the API, Cloudflare error 1015 on pages
    "cloudflare",  # 403 Cloudflare "Sorry, you have been blocked" HTML page
    "server_error",  # 500 (or `status`)
    "slow",  # wait `delay` seconds, then answer normally (or by the next rule)
    "truncate",  # declare the full Content-Length, send `fraction` of the body, close
    "no_next_data",  # coin page without its __NEXT_DATA__ script
    "changed_next_data",  # __NEXT_DATA__ there, but the coin under detailRes.coinDetail
    "moved_market_cap",  # the coin page as usual, its marketCap under another key
    "api_error",  # `error_code` with the real HTTP status (or `status`, e.g. 200)
    "drop",  # close the connection without an answer
)


@dataclass
class Fault:
    kind: str
    path: str = ""
    times: int | None = 1
    delay: float = 0.0
    retry_after: int | None = None
    status: int | None = None
    error_code: int | None = None
    fraction: float = 0.5
    id: int = 0
    hits: int = 0

    def matches(self, path: str) -> bool:
        return path.startswith(self.path)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_fault(spec: dict[str, Any], fault_id: int) -> Fault:
    """Build a rule from its JSON form, or raise ValueError naming the bad field."""
    allowed = set(Fault.__dataclass_fields__) - {"id", "hits"}
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    kind = spec.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}; got {kind!r}")
    fault = Fault(**spec, id=fault_id)
    if not isinstance(fault.path, str) or (fault.path and not fault.path.startswith("/")):
        raise ValueError(f"fault path must be '' or start with '/'; got {fault.path!r}")
    if fault.times is not None and (not isinstance(fault.times, int) or fault.times < 1):
        raise ValueError(f"fault times must be a positive integer or null; got {fault.times!r}")
    if kind == "slow" and not (isinstance(fault.delay, int | float) and fault.delay > 0):
        raise ValueError(f"a slow fault needs delay > 0; got {fault.delay!r}")
    if kind == "api_error":
        if fault.error_code is None:
            raise ValueError("an api_error fault needs error_code")
        if fault.error_code not in ERRORS and fault.status is None:
            raise ValueError(f"unknown error_code {fault.error_code}: give its HTTP status too")
    if not 0 <= fault.fraction < 1:
        raise ValueError(f"fault fraction must be in [0, 1); got {fault.fraction!r}")
    return fault


@dataclass
class FaultBook:
    _rules: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1

    def add(self, spec: dict[str, Any]) -> Fault:
        with self._lock:
            fault = make_fault(spec, self._next_id)
            self._next_id += 1
            self._rules.append(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def take(self, path: str) -> tuple[float, Fault | None]:
        """Consume the rules matching this request: total delay, and the deciding rule."""
        delay = 0.0
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(path):
                    continue
                rule.hits += 1
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self._rules.remove(rule)
                if rule.kind == "slow":
                    delay += rule.delay
                    continue
                return delay, rule
        return delay, None


class RequestLog:
    """Every request that reached the server, oldest first (bounded, for long benchmarks)."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        entry.setdefault("time", time.time())
        with self._lock:
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def entries(self, path_prefix: str = "") -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries if e["path"].startswith(path_prefix)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
