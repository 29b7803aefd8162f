"""Words the whole daemon shares: job statuses and actors, the settings a job may not
set, and the parsers of request values that more than one API accepts.

Pure (no Twisted, no I/O): the store, the launcher and every API import these from
here, so a route never reaches into the store or the launcher for a constant.
"""

from __future__ import annotations

import json
import re
import uuid

from daemon.errors import DaemonError

__all__ = [
    "ACTIVE_STATUSES",
    "ALL_STATUSES",
    "CANCELED",
    "COMPLETED_STATUSES",
    "FAILED",
    "MAX_PAYLOAD_BYTES",
    "MAX_SETTINGS",
    "PENDING",
    "RESERVED_SETTINGS",
    "RUNNING",
    "SCHEDULED",
    "SCHEDULER",
    "SUCCESSFUL",
    "USER",
    "RequestError",
    "parse_job_id",
    "parse_payload",
    "parse_settings",
    "parse_status",
]

SCHEDULED = "SCHEDULED"
PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCESSFUL = "SUCCESSFUL"
FAILED = "FAILED"
CANCELED = "CANCELED"
ACTIVE_STATUSES = (SCHEDULED, PENDING, RUNNING)
COMPLETED_STATUSES = (SUCCESSFUL, FAILED, CANCELED)
ALL_STATUSES = ACTIVE_STATUSES + COMPLETED_STATUSES

# Who created a job: a client, or the scheduler firing a scheduled job.
USER = "USER"
SCHEDULER = "SCHEDULER"

# Settings the daemon sets itself on every crawl; a job may not override them.
RESERVED_SETTINGS = frozenset(
    {"JOB_ID", "DATA_DIR", "LIVE_STATS_PATH", "REMOTE_CONTROL_ENABLED", "TELNETCONSOLE_ENABLED"}
)

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_SETTINGS = 100
_SETTING_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


class RequestError(DaemonError):
    """A request value that does not parse; each API renders it in its own envelope
    (400 unless said otherwise)."""


def parse_status(raw: str) -> tuple[str, ...]:
    """A list-jobs status (case-insensitive) -> the statuses it stands for."""
    value = raw.strip().upper()
    if value == "ACTIVE":
        return ACTIVE_STATUSES
    if value == "COMPLETED":
        return COMPLETED_STATUSES
    if value in ALL_STATUSES:
        return (value,)
    choices = ", ".join((*ALL_STATUSES, "ACTIVE", "COMPLETED"))
    raise RequestError(f"Unknown status {raw[:40]!r}; use one of {choices}")


def parse_job_id(raw: str) -> str:
    """The canonical form of a UUID job id, or a 400 naming the problem."""
    try:
        return str(uuid.UUID(raw.strip()))
    except ValueError:
        raise RequestError(f"Invalid job id {raw[:60]!r}: not a UUID") from None


def parse_payload(raw: str | None) -> str:
    """A JSON object, normalised as scrapy-do stores it; '{}' when absent."""
    if raw is None or raw.strip() == "":
        return "{}"
    if len(raw.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise RequestError(f"payload is longer than {MAX_PAYLOAD_BYTES} bytes")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise RequestError(f"Payload is not a valid JSON string: {exc}") from None
    if not isinstance(value, dict):
        raise RequestError("payload must be a JSON object")
    return json.dumps(value, ensure_ascii=False)


def parse_settings(values: list[str]) -> dict[str, str]:
    """Repeated `setting=KEY=VALUE` (as scrapyd's schedule.json) -> a dict."""
    if len(values) > MAX_SETTINGS:
        raise RequestError(f"at most {MAX_SETTINGS} settings per job")
    settings: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _SETTING_KEY_RE.match(key):
            raise RequestError(f"setting {item[:60]!r} is not KEY=VALUE with a plain KEY")
        if key in RESERVED_SETTINGS:
            raise RequestError(f"setting {key} is set by the daemon and cannot be given")
        if "\x00" in value:
            raise RequestError(f"setting {key} contains a NUL byte")
        settings[key] = value
    return settings
