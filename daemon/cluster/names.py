"""The names workers send in paths and queries: checked before anything is looked up."""

from __future__ import annotations

import re

from daemon.errors import DaemonError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
_JOB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_worker(name: str) -> str:
    """A worker name: letters, digits, `_.@-` (it lands in logs and in Redis keys)."""
    if not _NAME_RE.match(name):
        raise DaemonError(f"Bad worker name {name[:40]!r}", 400)
    return name


def check_job_id(job_id: str) -> str:
    if not _JOB_RE.match(job_id) or ".." in job_id:
        raise DaemonError(f"Bad job id {job_id[:40]!r}", 400)
    return job_id


def check_key(key: str) -> str:
    """A project version key (`<project>-<version folder>`) as the daemon made it."""
    if not _NAME_RE.match(key) or ".." in key:
        raise DaemonError(f"Bad project version {key[:40]!r}", 400)
    return key
