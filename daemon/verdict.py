"""How a crawl ended: its final status and reason, judged from the process outcome, the
crawl's job.json manifest and, without one, the close reason in Scrapy's log.

`verdict` and `close_reason_from_log` are pure (tested without processes); the two
readers do the small, bounded reads they need.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coinspiders.jobfolder import MANIFEST_FILE
from daemon.domain import CANCELED, FAILED, SUCCESSFUL
from daemon.launcher import Outcome

__all__ = [
    "LOG_TAIL_BYTES",
    "MANIFEST_MAX_BYTES",
    "close_reason_from_log",
    "read_log_tail",
    "read_manifest",
    "verdict",
]

# The largest job.json read: a manifest is a few KiB; more is not one we wrote.
MANIFEST_MAX_BYTES = 1024 * 1024

# Scrapy's engine logs this at INFO as the last word of every crawl that ran a spider.
_SPIDER_CLOSED = re.compile(rb"\] INFO: Spider closed \((.{0,200}?)\)\r?$", re.MULTILINE)
# Only the end of the stderr log is read, on the reactor thread: 64 KiB is one small
# read (well under a millisecond), and the close line is among the last lines.
LOG_TAIL_BYTES = 64 * 1024


def close_reason_from_log(tail: bytes) -> str | None:
    """The close reason of the last `Spider closed (<reason>)` line in a log tail; None
    when the crawl never logged one (it did not run a spider, or logs elsewhere)."""
    matches = _SPIDER_CLOSED.findall(tail)
    if not matches:
        return None
    return matches[-1].decode("utf-8", "replace")


def read_log_tail(path: Path, size: int = LOG_TAIL_BYTES) -> bytes:
    """The last `size` bytes of a log file (empty when it is missing or unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - size))
            return fh.read(size)
    except OSError:
        return b""


def verdict(
    outcome: Outcome,
    manifest: Mapping[str, Any] | None,
    log_close_reason: str | None = None,
) -> tuple[str, str | None]:
    """Final status and reason of an ended crawl (pure: tested without processes).

    `log_close_reason` (from `close_reason_from_log`) judges crawls of projects that
    write no job.json: exit code 0 alone does not mean success, as Scrapy exits 0 when
    `start()` raises or the spider closes for another reason than "finished".
    """
    if outcome.stop_reason == "cancel":
        return CANCELED, "canceled" + (" (killed after the grace period)" if outcome.killed else "")
    if outcome.stop_reason == "timeout":
        return FAILED, "stopped: exceeded its max_runtime"
    if outcome.stop_reason == "shutdown":
        return FAILED, "interrupted: the daemon was stopped while the crawl ran"
    if outcome.stop_reason == "node lost":  # its worker host stopped renewing its lease
        return FAILED, "node lost"
    close_reason = (manifest or {}).get("close_reason")
    if outcome.orphan:
        # Not our child: its exit status is unknown, only its manifest can vouch for it.
        if close_reason == "finished" and (manifest or {}).get("succeeded", True):
            return SUCCESSFUL, "finished while the daemon restarted (exit status unknown)"
        return FAILED, "ended while the daemon restarted; exit status unknown" + (
            f", close reason {close_reason!r}" if close_reason else ", no job.json"
        )
    if outcome.signal is not None:
        try:
            name = signal.Signals(outcome.signal).name
        except ValueError:
            name = str(outcome.signal)
        return FAILED, f"killed by signal {name}"
    if manifest is None:
        close_reason = log_close_reason
    if outcome.exit_code != 0:
        detail = ""
        errors = (manifest or {}).get("job_errors") or []
        if errors and isinstance(errors, list) and isinstance(errors[0], dict):
            detail = f": {errors[0].get('message')}"
        elif close_reason and close_reason != "finished":
            detail = f": close reason {close_reason!r}"
        return FAILED, f"exit code {outcome.exit_code}{detail}"
    if manifest is None and close_reason is None:
        # A project may log elsewhere (LOG_FILE, LOG_ENABLED=False, LOG_LEVEL above INFO):
        # with nothing to contradict it, its exit status is the best witness we have.
        return SUCCESSFUL, "exit 0; close reason not logged"
    if close_reason != "finished":
        return FAILED, f"crawl closed with reason {close_reason!r}"
    return SUCCESSFUL, None


def read_manifest(job_dir: Path) -> dict[str, Any] | None:
    """The crawl's `job.json` (None when it wrote none); one that cannot be read or is
    not a JSON object stands for a crawl that did not say it finished.

    The crawl owns its folder (with `crawl_user`, the daemon does not), so the file is
    opened without following a link (a crawl must not make the daemon read another file
    as its verdict) and without blocking (a FIFO would hold the reactor), and only a
    regular file is read."""
    path = job_dir / MANIFEST_FILE
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError:  # ELOOP: a link
        return {"close_reason": "unreadable job.json"}
    try:
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return {"close_reason": "unreadable job.json"}
            data = fh.read(MANIFEST_MAX_BYTES)
        value = json.loads(data)
        return value if isinstance(value, dict) else {"close_reason": None}
    except (OSError, ValueError):
        return {"close_reason": "unreadable job.json"}
