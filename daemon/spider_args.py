"""How a job's payload becomes the spider's arguments on the `scrapy crawl` line.

A job scheduled through scrapy-do's API passes its payload as one argument,
`-a payload=<json>`. A job scheduled through scrapyd's API passes each of its
arguments as its own `-a key=value`, as scrapyd does; its payload records them (and
the project version asked for) under one reserved key, so both kinds share the jobs
table unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SCRAPYD_KEY = "_scrapyd"


def scrapyd_payload(args: Mapping[str, str], version: str | None) -> str:
    """The payload of a job scheduled through scrapyd's API."""
    return json.dumps({SCRAPYD_KEY: {"args": dict(args), "version": version}}, ensure_ascii=False)


def read_scrapyd_payload(payload: str | None) -> tuple[dict[str, str], str | None] | None:
    """(arguments, version) of a scrapyd-scheduled job's payload; None for any other."""
    if not payload or SCRAPYD_KEY not in payload:
        return None
    try:
        value: Any = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(value, dict) or set(value) != {SCRAPYD_KEY}:
        return None
    inner = value[SCRAPYD_KEY]
    if not isinstance(inner, dict):
        return None
    args = inner.get("args")
    version = inner.get("version")
    if not isinstance(args, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in args.items()
    ):
        return None
    return dict(args), version if isinstance(version, str) else None


def crawl_arguments(payload: str | None) -> list[str]:
    """The `-a` options of a job's `scrapy crawl` command."""
    scrapyd = read_scrapyd_payload(payload)
    if scrapyd is not None:
        out: list[str] = []
        for key, value in scrapyd[0].items():
            out += ["-a", f"{key}={value}"]
        return out
    if payload and payload != "{}":
        return ["-a", f"payload={payload}"]
    return []
