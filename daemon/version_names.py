"""Version names as scrapyd shows them, in the order clients expect.

scrapyd stores an egg under its version with every character outside [A-Za-z0-9_-]
replaced by "_" and lists those names, so "1.0" comes back as "1_0" and clients
(ScrapydWeb, scrapyd-client) show that; a request may name either form.
"""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_RUNS = re.compile(r"(\d+)")


def listed_name(version: str) -> str:
    """The name scrapyd lists a version under ("1.0" -> "1_0")."""
    return _UNSAFE.sub("_", version)


def same_version(stored: str, asked: str) -> bool:
    """Whether a request's `_version`/`version` names the stored version."""
    return listed_name(stored) == listed_name(asked)


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _RUNS.split(name) if p)


def sort_versions(names: list[str]) -> list[str]:
    """Oldest first, the last one the default: true version order when every name is a
    version ("1_9" < "1_10", read with "_" as "."), else digits compared as numbers."""
    try:
        return sorted(names, key=lambda n: Version(n.replace("_", ".")))
    except InvalidVersion:
        return sorted(names, key=_natural)
